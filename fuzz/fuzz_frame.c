/*
 * fuzz_frame.c — the frame parser over arbitrary bytes. The first byte
 * picks the maximum message size and flags; the rest is a server stream,
 * parsed whole and again in chunks of a data-derived size. Both runs must
 * agree frame for frame and on the verdict, and every frame must lie
 * inside the input. Then the payload of each frame is rebuilt with the
 * client builder and checked to unmask back to itself.
 */
#include <stdlib.h>
#include <string.h>

#include <mmws/codec.h>

#include "fuzz.h"

#define MAX_FRAMES 512

typedef struct run {
    int rc;
    unsigned close_code;
    size_t n;
    size_t end[MAX_FRAMES]; /* offset just past each frame */
    uint8_t op[MAX_FRAMES];
} run;

/* Parses data[0..len) arriving in chunks of `chunk` bytes. */
static void parse_stream(const uint8_t *data, size_t len, size_t chunk,
                         uint64_t max, unsigned flags, run *r) {
    mmws_frame_parser p;
    mmws_frame f;
    size_t pos = 0, have = 0;
    memset(r, 0, sizeof *r);
    if (mmws_frame_parser_init(&p, max, flags) != 0) abort();
    while (have < len) {
        have = len - have < chunk ? len : have + chunk;
        for (;;) {
            int rc = mmws_frame_parse(&p, data + pos, have - pos, &f);
            if (rc == MMWS_EINCOMPLETE) {
                if (f.frame_len <= have - pos) abort();
                break;
            }
            if (rc != 0) {
                if (p.close_code != 1002 && p.close_code != 1007 &&
                    p.close_code != 1009)
                    abort();
                if (p.detail[0] == '\0') abort();
                r->rc = rc;
                r->close_code = p.close_code;
                return;
            }
            if (f.frame_len > have - pos || f.payload != data + pos + f.header_len ||
                f.header_len + f.payload_len != f.frame_len)
                abort();
            if ((f.opcode & 8) && (f.payload_len > 125 || !f.fin)) abort();
            if (!(f.opcode & 8) && f.payload_len > max) abort();
            pos += (size_t)f.frame_len;
            if (r->n < MAX_FRAMES) {
                r->end[r->n] = pos;
                r->op[r->n] = f.opcode;
            }
            r->n++;
        }
    }
    r->rc = pos == len ? 0 : MMWS_EINCOMPLETE;
}

/* Builds a client frame of payload, unmasks it and compares. */
static void check_build(const uint8_t *payload, size_t n, unsigned opcode) {
    static uint8_t out[70000];
    const uint8_t key[4] = {0xA5, 0x01, 0xFF, 0x3C};
    size_t len = 0;
    if (n > sizeof out - 14) return;
    int rc = mmws_frame_build(out, sizeof out, opcode, 1, payload, n, key, &len);
    if (rc != 0) {
        if ((opcode & 8) && (n > 125 || opcode == MMWS_OP_CLOSE)) return;
        abort();
    }
    size_t hdr = len - n;
    if (hdr != mmws_frame_header_len(n)) abort();
    for (size_t i = 0; i < n; i++)
        if ((out[hdr + i] ^ key[i & 3]) != payload[i]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const uint64_t maxes[4] = {1, 200, 70000, 1u << 20};
    uint64_t max = maxes[data[0] & 3];
    unsigned flags = (data[0] >> 2) & 1 ? MMWS_FRAME_VALIDATE_UTF8 : 0;
    size_t chunk = 1 + data[1];
    data += 2;
    size -= 2;

    static run whole, split;
    parse_stream(data, size, size ? size : 1, max, flags, &whole);
    parse_stream(data, size, chunk, max, flags, &split);
    if (whole.rc != split.rc || whole.close_code != split.close_code ||
        whole.n != split.n)
        abort();
    size_t shown = whole.n < MAX_FRAMES ? whole.n : MAX_FRAMES;
    for (size_t i = 0; i < shown; i++)
        if (whole.end[i] != split.end[i] || whole.op[i] != split.op[i]) abort();

    static const unsigned ops[6] = {MMWS_OP_TEXT, MMWS_OP_BINARY,
                                    MMWS_OP_CONT, MMWS_OP_PING,
                                    MMWS_OP_PONG, MMWS_OP_CLOSE};
    if (size) check_build(data, size, ops[data[0] % 6]);
    return 0;
}
