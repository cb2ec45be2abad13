/*
 * frame.c — RFC 6455 5.2 framing for a client: parsing server frames in
 * place and building masked client frames.
 *
 * The parser is the receive hot path: a complete frame in the caller's
 * buffer costs a handful of branches and no copy (the payload is returned
 * as a pointer into the buffer), so it is written here rather than taken
 * from a library. It keeps only the state that spans frames: the open
 * fragmented message (opcode, length so far, UTF-8 state).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mmws/codec.h>

#include "codec/mask_internal.h"

/* A frame header + payload must fit in size_t and uint64_t arithmetic. */
#define FRAME_MAX_MESSAGE ((uint64_t)SIZE_MAX - MMWS_FRAME_MAX_HEADER)

int mmws_frame_parser_init(mmws_frame_parser *p, uint64_t max_message,
                           unsigned flags) {
    if (!p || max_message == 0 || max_message > FRAME_MAX_MESSAGE ||
        (flags & ~MMWS_FRAME_VALIDATE_UTF8))
        return MMWS_EINVAL;
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
    p->flags = (uint8_t)flags;
    return 0;
}

/* Records the close code and a detail sentence; returns rc. */
__attribute__((format(printf, 4, 5))) static int
frame_fail(mmws_frame_parser *p, int rc, uint16_t close_code,
           const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    p->close_code = close_code;
    return rc;
}

/* The error a failed parser keeps returning, derived from its close code. */
static int frame_sticky_error(const mmws_frame_parser *p) {
    switch (p->close_code) {
    case MMWS_CLOSE_TOO_BIG: return MMWS_ETOOBIG;
    case MMWS_CLOSE_INVALID_DATA: return MMWS_EUTF8;
    default: return MMWS_EPROTO;
    }
}

static int opcode_is_defined(unsigned op) {
    return op <= MMWS_OP_BINARY || (op >= MMWS_OP_CLOSE && op <= MMWS_OP_PONG);
}

static const char *opcode_name(unsigned op) {
    switch (op) {
    case MMWS_OP_CONT: return "CONT";
    case MMWS_OP_TEXT: return "TEXT";
    case MMWS_OP_BINARY: return "BINARY";
    case MMWS_OP_CLOSE: return "CLOSE";
    case MMWS_OP_PING: return "PING";
    case MMWS_OP_PONG: return "PONG";
    default: return "reserved";
    }
}

/* Validates a complete CLOSE payload (RFC 6455 5.5.1, 7.4). */
static int check_close_payload(mmws_frame_parser *p, const uint8_t *payload,
                               size_t len) {
    unsigned code;
    const uint8_t *reason;
    size_t reason_len;
    int rc = mmws_close_parse(payload, len, &code, &reason, &reason_len);
    if (rc == 0) return 0;
    if (rc == MMWS_EUTF8)
        return frame_fail(p, rc, MMWS_CLOSE_INVALID_DATA,
                          "close reason is not valid UTF-8");
    if (len == 1)
        return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                          "close frame with a 1-byte payload");
    return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                      "close code %u is not valid on the wire",
                      (unsigned)payload[0] << 8 | payload[1]);
}

int mmws_frame_parse(mmws_frame_parser *p, const uint8_t *buf, size_t len,
                     mmws_frame *f) {
    if (!p || !f || (!buf && len)) return MMWS_EINVAL;
    if (p->close_code) return frame_sticky_error(p);
    f->frame_len = 2;
    if (len < 2) return MMWS_EINCOMPLETE;

    const unsigned b0 = buf[0], b1 = buf[1];
    const unsigned op = b0 & 0x0Fu, rsv = (b0 >> 4) & 0x07u;
    const unsigned fin = b0 >> 7;
    const int control = (op & 0x08u) != 0;

    if (rsv & ~(unsigned)p->rsv_allowed)
        return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                          "RSV%s bit set without a negotiated extension",
                          rsv & 4 ? "1" : rsv & 2 ? "2" : "3");
    if (!opcode_is_defined(op))
        return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                          "reserved opcode 0x%X", op);
    if (b1 & 0x80u)
        return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                          "masked frame from the server");
    if (control) {
        if (!fin)
            return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                              "fragmented %s frame", opcode_name(op));
        if ((b1 & 0x7Fu) > MMWS_CONTROL_MAX_PAYLOAD)
            return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                              "%s frame with a payload over 125 bytes",
                              opcode_name(op));
    } else if (op == MMWS_OP_CONT && !p->message_opcode) {
        return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                          "continuation frame without a message to continue");
    } else if (op != MMWS_OP_CONT && p->message_opcode) {
        return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                          "new %s frame inside a fragmented %s message",
                          opcode_name(op), opcode_name(p->message_opcode));
    }

    size_t hdr = 2;
    uint64_t plen = b1 & 0x7Fu;
    if (plen == 126) {
        hdr = 4;
        f->frame_len = hdr;
        if (len < hdr) return MMWS_EINCOMPLETE;
        plen = (uint64_t)buf[2] << 8 | buf[3];
    } else if (plen == 127) {
        hdr = 10;
        f->frame_len = hdr;
        if (len < hdr) return MMWS_EINCOMPLETE;
        plen = 0;
        for (size_t i = 2; i < 10; i++) plen = plen << 8 | buf[i];
        if (plen >> 63)
            return frame_fail(p, MMWS_EPROTO, MMWS_CLOSE_PROTOCOL_ERROR,
                              "64-bit payload length with the top bit set");
    }

    /* Bounded before the payload arrives, so a huge length costs nothing. */
    const uint64_t so_far = op == MMWS_OP_CONT ? p->message_len : 0;
    if (!control && plen > p->max_message - so_far)
        return frame_fail(p, MMWS_ETOOBIG, MMWS_CLOSE_TOO_BIG,
                          "frame of %llu bytes after %llu of its message "
                          "exceeds the maximum message size of %llu",
                          (unsigned long long)plen,
                          (unsigned long long)so_far,
                          (unsigned long long)p->max_message);

    f->frame_len = hdr + plen;
    if (len - hdr < plen) return MMWS_EINCOMPLETE;

    const uint8_t *payload = buf + hdr;
    const unsigned msg_op = op == MMWS_OP_CONT ? p->message_opcode : op;
    if (control) {
        if (op == MMWS_OP_CLOSE) {
            int rc = check_close_payload(p, payload, (size_t)plen);
            if (rc) return rc;
        }
    } else {
        uint32_t st = op == MMWS_OP_CONT ? p->utf8_state : MMWS_UTF8_ACCEPT;
        if ((p->flags & MMWS_FRAME_VALIDATE_UTF8) && msg_op == MMWS_OP_TEXT) {
            if (mmws_utf8_validate(&st, payload, (size_t)plen) != 0)
                return frame_fail(p, MMWS_EUTF8, MMWS_CLOSE_INVALID_DATA,
                                  "invalid UTF-8 in a TEXT message");
            if (fin && mmws_utf8_finish(st) != 0)
                return frame_fail(p, MMWS_EUTF8, MMWS_CLOSE_INVALID_DATA,
                                  "TEXT message ends inside a UTF-8 "
                                  "sequence");
        }
        if (fin) {
            p->message_opcode = 0;
            p->message_len = 0;
            p->utf8_state = MMWS_UTF8_ACCEPT;
        } else {
            p->message_opcode = (uint8_t)msg_op;
            p->message_len = so_far + plen;
            p->utf8_state = st;
        }
    }

    f->payload = payload;
    f->payload_len = plen;
    f->header_len = (uint8_t)hdr;
    f->opcode = (uint8_t)op;
    f->fin = (uint8_t)fin;
    f->rsv = (uint8_t)rsv;
    f->message_opcode = (uint8_t)msg_op;
    return 0;
}

/* ------------------------------------------------------------- builder -- */

size_t mmws_frame_header_len(uint64_t payload_len) {
    return payload_len <= 125 ? 6 : payload_len <= 0xFFFF ? 8 : 14;
}

/* Checks opcode, fragmentation and length rules common to all builders. */
static int check_frame(unsigned opcode, int fin, uint64_t payload_len) {
    if (!opcode_is_defined(opcode)) return MMWS_EOPCODE;
    if (payload_len >> 63) return MMWS_EINVAL;
    if ((opcode & 0x08u) && (!fin || payload_len > MMWS_CONTROL_MAX_PAYLOAD))
        return MMWS_EPROTO;
    return 0;
}

/* Checks a CLOSE payload we are about to send. */
static int check_close_send(const uint8_t *payload, size_t len) {
    if (len == 0) return 0;
    if (len == 1) return MMWS_EPROTO;
    if (!mmws_close_code_valid_send((unsigned)payload[0] << 8 | payload[1]))
        return MMWS_ECLOSECODE;
    return mmws_utf8_check(payload + 2, len - 2);
}

/* Writes the header; the caller has checked everything and cap. */
static size_t put_header(uint8_t *out, unsigned opcode, int fin,
                         uint64_t n, const uint8_t mask[4]) {
    size_t i = 2;
    out[0] = (uint8_t)((fin ? 0x80u : 0u) | opcode);
    if (n <= 125) {
        out[1] = (uint8_t)(0x80u | n);
    } else if (n <= 0xFFFF) {
        out[1] = 0x80u | 126u;
        out[2] = (uint8_t)(n >> 8);
        out[3] = (uint8_t)n;
        i = 4;
    } else {
        out[1] = 0x80u | 127u;
        for (int s = 56; s >= 0; s -= 8) out[i++] = (uint8_t)(n >> s);
    }
    memcpy(out + i, mask, 4);
    return i + 4;
}

int mmws_frame_write_header(uint8_t *out, size_t cap, unsigned opcode,
                            int fin, uint64_t payload_len,
                            const uint8_t mask[4], size_t *out_len) {
    if (!out || !mask || !out_len) return MMWS_EINVAL;
    int rc = check_frame(opcode, fin, payload_len);
    if (rc) return rc;
    if (cap < mmws_frame_header_len(payload_len)) return MMWS_ENOSPC;
    *out_len = put_header(out, opcode, fin, payload_len, mask);
    return 0;
}

/* 1 if [a, a + alen) and [b, b + blen) share no byte. Compared as integers:
 * the caller may pass pointers into different objects. */
static int disjoint(const void *a, size_t alen, const void *b, size_t blen) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return alen == 0 || blen == 0 || x + alen <= y || y + blen <= x;
}

int mmws_frame_build(uint8_t *out, size_t cap, unsigned opcode, int fin,
                     const void *payload, size_t len, const uint8_t mask[4],
                     size_t *out_len) {
    if (!out || !mask || !out_len || (!payload && len)) return MMWS_EINVAL;
    int rc = check_frame(opcode, fin, len);
    if (rc) return rc;
    if (opcode == MMWS_OP_CLOSE && (rc = check_close_send(payload, len)))
        return rc;
    size_t hdr = mmws_frame_header_len(len);
    if (cap < hdr || cap - hdr < len) return MMWS_ENOSPC;
    /* One pass (copy fused with the mask) unless payload partly overlaps
     * where it goes; either way it is read before the header is written,
     * so it may also lie where the header goes. */
    if (payload == out + hdr || disjoint(out + hdr, len, payload, len)) {
        mmws__mask_copy(out + hdr, payload, len, mask, 0);
        put_header(out, opcode, fin, len, mask);
    } else {
        memmove(out + hdr, payload, len);
        put_header(out, opcode, fin, len, mask);
        mmws_mask(out + hdr, len, mask, 0);
    }
    *out_len = hdr + len;
    return 0;
}

int mmws_frame_wrap(uint8_t *payload, size_t len, size_t headroom,
                    unsigned opcode, int fin, const uint8_t mask[4],
                    uint8_t **frame, size_t *frame_len) {
    if (!payload || !mask || !frame || !frame_len) return MMWS_EINVAL;
    int rc = check_frame(opcode, fin, len);
    if (rc) return rc;
    if (opcode == MMWS_OP_CLOSE && (rc = check_close_send(payload, len)))
        return rc;
    size_t hdr = mmws_frame_header_len(len);
    if (headroom < hdr) return MMWS_ENOSPC;
    put_header(payload - hdr, opcode, fin, len, mask);
    mmws_mask(payload, len, mask, 0);
    *frame = payload - hdr;
    *frame_len = hdr + len;
    return 0;
}

int mmws_frame_build_close(uint8_t *out, size_t cap, unsigned code,
                           const char *reason, size_t reason_len,
                           const uint8_t mask[4], size_t *out_len) {
    if (!out || !mask || !out_len || (!reason && reason_len))
        return MMWS_EINVAL;
    if (code == 0) {
        if (reason_len) return MMWS_EINVAL; /* a reason needs a code */
        return mmws_frame_build(out, cap, MMWS_OP_CLOSE, 1, NULL, 0, mask,
                                out_len);
    }
    if (!mmws_close_code_valid_send(code)) return MMWS_ECLOSECODE;
    if (reason_len > MMWS_CLOSE_MAX_REASON) return MMWS_ERANGE;
    if (reason_len && mmws_utf8_check((const uint8_t *)reason, reason_len))
        return MMWS_EUTF8;
    size_t n = 2 + reason_len, hdr = mmws_frame_header_len(n);
    if (cap < hdr + n) return MMWS_ENOSPC;
    uint8_t *dst = out + hdr + 2;
    const uint8_t *src = (const uint8_t *)reason;
    if (src == dst || disjoint(out, hdr + n, src, reason_len)) {
        /* The reason is read once, after nothing it could lie under has
         * been written. */
        put_header(out, MMWS_OP_CLOSE, 1, n, mask);
        out[hdr] = (uint8_t)((code >> 8) ^ mask[0]);
        out[hdr + 1] = (uint8_t)(code ^ mask[1]);
        mmws__mask_copy(dst, src, reason_len, mask, 2);
    } else {
        put_header(out, MMWS_OP_CLOSE, 1, n, mask);
        out[hdr] = (uint8_t)(code >> 8);
        out[hdr + 1] = (uint8_t)code;
        memmove(dst, src, reason_len);
        mmws_mask(out + hdr, n, mask, 0);
    }
    *out_len = hdr + n;
    return 0;
}
