/*
 * fuzz_conn.c — a whole mmws_conn (handshake, frames, sends, close) driven
 * through an in-memory transport, so the connection's state machine is
 * fuzzed, not only the codec under it.
 *
 * The connection runs on a real mmws_loop. Its transport comes from the
 * internal test hook mmws__conn_set_transport_factory: an eventfd that
 * stays readable and writable (so epoll reports readiness on every
 * iteration) with read/write ops that play a script instead of a socket.
 *
 * Input layout (missing bytes read as 0):
 *   [0]  config:  bits 0-1 response mode (0 correct 101, 1 correct 101
 *                 choosing subprotocol "chat", 2 correct 101 with extra and
 *                 oddly cased headers, 3 raw: the script is the whole
 *                 response, "{A}" in it replaced by the right
 *                 Sec-WebSocket-Accept); 2 small max_frame_size ([11]);
 *                 3 auto_reconnect; 4 validate_utf8 off; 5 deliver_binary;
 *                 6 small max_send_queue and max_handshake_size;
 *                 7 on_connect messages and an outbound budget of 3/s
 *   [1]  transport: bits 0-1 handshake op (0 done, 1 WANTREAD once,
 *                 2 WANTWRITE then WANTREAD, 3 TLS error); 2-3 once the
 *                 script is used up (0 nothing more, 1 FIN, 2 ECLOSED,
 *                 3 EIO); 4-5 writes (0 whole, 1 short, 2 every other one
 *                 WANTWRITE/WANTREAD, then retried as TLS must, 3 EIO from
 *                 the 3rd); 6 the factory fails; 7 the server answers the
 *                 client's close with its own
 *   [2..5]  read chunk sizes, cycled (0: no data this time, as after a
 *                 spurious wakeup; 200..255: (n - 199) * 256 bytes)
 *   [6..9]  actions run from callbacks, cycled (see act())
 *   [10] misc:    bit 0 pending() reports the unread script (as TLS's
 *                 buffered records); 1 a chunk of 0 is WANTWRITE;
 *                 2 application heartbeat payloads; 3 offer subprotocols;
 *                 4 read_buffer_size 64 KiB (else the 4 KiB minimum);
 *                 5-7 the close code of the final mmws_conn_close
 *   [11] max_frame_size when [0] bit 2: 1 + 8 * [11]
 *   [12..] the server's bytes (after the generated 101, or all of it)
 *
 * Oracles besides the sanitizers: the client's request and every client
 * frame are checked (masked, no RSV, valid opcodes, control frames short
 * and unfragmented, one close at most and no data after it, close codes
 * valid, text UTF-8 when validation is on); a write the transport refused
 * with WANTWRITE/WANTREAD must be retried with the same bytes and length
 * (TLS's rule); delivered messages respect the bounds and the config;
 * every call returns 0 or a known MMWS_E* code; a connection that ended
 * with a clean close sent its own close frame; and once the server's close
 * has been read (with every frame before it valid), the close handshake is
 * finished, not left waiting. FUZZ_CONN_TRACE=1 prints what each input
 * did (actions, final phase, last error).
 *
 * Deterministic: every timeout and backoff is 24 h, so no timer fires
 * within a run (a backoff could draw a near-zero delay with probability
 * about 1e-7; the factory then refuses a second transport).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <mmws/mmws.h>

#include "conn/conn_internal.h"
#include "fuzz.h"

#define HDR 12
#define LONG_MS (24u * 3600u * 1000u)
/* Extra loop iterations after the script is used up, and after the final
 * close, to let queued writes and the close exchange finish. */
#define SETTLE 8
/* The large send (over 65535 bytes: a 64-bit length, and over any small
 * max_send_queue). */
#define BIG_LEN 70000u

typedef struct harness {
    uint8_t f0, f1, f10, f11;
    uint8_t chunks[4];
    uint8_t actions[4];
    const uint8_t *script;
    size_t script_len;

    /* What the server sends: built once the client's key is known. */
    uint8_t *stream;
    size_t stream_len, stream_cap, stream_pos;
    int stream_ready;
    int echoed_close;          /* the server's close answer was appended */
    size_t close_at;           /* stream offset just past the script's
                                  first close frame when every frame before
                                  it is valid (harness modes), else 0 */

    /* What the client sent, not yet parsed. */
    uint8_t *cbuf;
    size_t clen, ccap;
    int request_done;
    char key[MMWS_HS_KEY_LEN + 1];
    int client_close;          /* a close frame came from the client */
    unsigned client_frames;    /* frames the client sent */

    /* TLS retry rule: the write refused last, which must come again. */
    int retry_pending;
    size_t retry_len;
    uint64_t retry_hash;

    unsigned read_calls, write_calls, hs_calls, factory_calls, act_count;
    unsigned big_sent;         /* large sends made */
    int live;                  /* transports not yet destroyed */
    mmws_conn *c;
    int freed;                 /* mmws_conn_free was called */
    int opened;                /* the connection reached CONNECTED */
    size_t max_frame;          /* the config's max_frame_size */
    uint64_t last_seq;
} harness;

typedef struct fz_transport {
    mmws__transport base;      /* first: the connection sees only this */
    harness *h;
} fz_transport;

static uint8_t big[BIG_LEN];
static int trace = -1; /* FUZZ_CONN_TRACE set: say what each input does */

/* Aborts unless rc is 0 or a code mmws knows. */
static void check_rc(int rc) {
    if (rc > 0 || (rc < 0 && strcmp(mmws_errname(rc), "MMWS_E?") == 0))
        abort();
}

static uint64_t fnv(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) x = (x ^ b[i]) * 1099511628211ull;
    return x;
}

/* Appends n bytes to a growing buffer. */
static void append(uint8_t **buf, size_t *len, size_t *cap, const void *p,
                   size_t n) {
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 1024;
        while (nc < *len + n) nc *= 2;
        uint8_t *nb = realloc(*buf, nc);
        if (!nb) abort();
        *buf = nb;
        *cap = nc;
    }
    if (n) memcpy(*buf + *len, p, n);
    *len += n;
}

static void stream_add(harness *h, const void *p, size_t n) {
    append(&h->stream, &h->stream_len, &h->stream_cap, p, n);
}

static void stream_str(harness *h, const char *s) {
    stream_add(h, s, strlen(s));
}

/* Where the script's first close frame ends, if the connection must reach
 * it: every frame before it valid for the config (the codec's parser, fuzzed
 * on its own, is the reference). 0 if there is none. */
static size_t close_end(const harness *h) {
    mmws_frame_parser p;
    if (mmws_frame_parser_init(&p, h->max_frame,
                               (h->f0 & 0x10) ? 0 : MMWS_FRAME_VALIDATE_UTF8))
        abort();
    size_t pos = 0;
    while (pos < h->script_len) {
        mmws_frame f;
        if (mmws_frame_parse(&p, h->script + pos, h->script_len - pos, &f))
            return 0;
        pos += (size_t)f.frame_len;
        if (f.opcode == MMWS_OP_CLOSE) return pos;
    }
    return 0;
}

/* The request is complete: check it, take its key and build what the
 * server sends. */
static void on_request(harness *h, const char *req, size_t len) {
    static const char start[] = "GET /fuzz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    static const char keyh[] = "\r\nSec-WebSocket-Key: ";
    if (len < sizeof start - 1 || memcmp(req, start, sizeof start - 1) != 0)
        abort();
    const char *k = memmem(req, len, keyh, sizeof keyh - 1);
    if (!k) abort();
    k += sizeof keyh - 1;
    if ((size_t)(req + len - k) < MMWS_HS_KEY_LEN + 2 ||
        memcmp(k + MMWS_HS_KEY_LEN, "\r\n", 2) != 0)
        abort();
    memcpy(h->key, k, MMWS_HS_KEY_LEN);
    h->key[MMWS_HS_KEY_LEN] = '\0';
    if (!memmem(req, len, "\r\nSec-WebSocket-Version: 13\r\n", 29)) abort();
    if (!memmem(req, len, "\r\nX-Fuzz: 1\r\n", 13)) abort();

    char accept[MMWS_HS_ACCEPT_LEN + 1];
    if (mmws_handshake_accept(h->key, MMWS_HS_KEY_LEN, accept) != 0) abort();
    switch (h->f0 & 3) {
    case 0:
        stream_str(h, "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: ");
        stream_str(h, accept);
        stream_str(h, "\r\n\r\n");
        break;
    case 1:
        stream_str(h, "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Protocol: chat\r\n"
                      "Sec-WebSocket-Accept: ");
        stream_str(h, accept);
        stream_str(h, "\r\n\r\n");
        break;
    case 2:
        stream_str(h, "HTTP/1.1 101 OK\r\nServer: fuzz\r\n"
                      "UPGRADE:\tWebSocket \r\nconnection: keep-alive, upgrade\r\n"
                      "sec-websocket-accept:   ");
        stream_str(h, accept);
        stream_str(h, "\r\nSet-Cookie: a=b\r\n\r\n");
        break;
    default: {
        /* Raw: the script is the response; "{A}" stands for the accept. */
        size_t i = 0;
        while (i < h->script_len) {
            if (i + 3 <= h->script_len &&
                memcmp(h->script + i, "{A}", 3) == 0) {
                stream_str(h, accept);
                i += 3;
            } else {
                stream_add(h, h->script + i, 1);
                i++;
            }
        }
        h->stream_ready = 1;
        return;
    }
    }
    size_t end = close_end(h);
    if (end) h->close_at = h->stream_len + end;
    stream_add(h, h->script, h->script_len);
    h->stream_ready = 1;
}

/* Checks one client frame (payload already unmasked). */
static void on_client_frame(harness *h, unsigned b0, const uint8_t *p,
                            uint64_t n) {
    unsigned op = b0 & 0x0Fu;
    h->client_frames++;
    if (!(b0 & 0x80u) || (b0 & 0x70u)) abort(); /* never fragments, no RSV */
    switch (op) {
    case MMWS_OP_TEXT:
    case MMWS_OP_BINARY:
        if (h->client_close) abort(); /* data after our close */
        if (op == MMWS_OP_TEXT && !(h->f0 & 0x10) &&
            mmws_utf8_check(p, (size_t)n) != 0)
            abort();
        break;
    case MMWS_OP_PING:
    case MMWS_OP_PONG:
        if (n > MMWS_CONTROL_MAX_PAYLOAD) abort();
        break;
    case MMWS_OP_CLOSE: {
        if (h->client_close) abort(); /* a second close */
        h->client_close = 1;
        if (n > MMWS_CONTROL_MAX_PAYLOAD || n == 1) abort();
        if (n >= 2) {
            unsigned code = (unsigned)p[0] << 8 | p[1];
            if (!mmws_close_code_valid_recv(code)) abort();
            if (mmws_utf8_check(p + 2, (size_t)n - 2) != 0) abort();
        }
        if ((h->f1 & 0x80) && !h->echoed_close) {
            /* The server's answer: the client's code, unmasked. */
            uint8_t fr[4] = {0x88, 0, 0, 0};
            size_t fl = 2;
            if (n >= 2) {
                fr[1] = 2;
                fr[2] = p[0];
                fr[3] = p[1];
                fl = 4;
            }
            stream_add(h, fr, fl);
            h->echoed_close = 1;
        }
        break;
    }
    default:
        abort();
    }
}

/* Takes bytes the client wrote: the request, then masked frames. */
static void client_bytes(harness *h, const uint8_t *p, size_t n) {
    append(&h->cbuf, &h->clen, &h->ccap, p, n);
    if (!h->request_done) {
        const uint8_t *end = memmem(h->cbuf, h->clen, "\r\n\r\n", 4);
        if (!end) {
            if (h->clen > 8192) abort(); /* far past request_cap */
            return;
        }
        size_t rl = (size_t)(end - h->cbuf) + 4;
        h->request_done = 1;
        on_request(h, (const char *)h->cbuf, rl);
        memmove(h->cbuf, h->cbuf + rl, h->clen - rl);
        h->clen -= rl;
    }
    size_t pos = 0;
    while (h->clen - pos >= 2) {
        uint8_t *f = h->cbuf + pos;
        size_t avail = h->clen - pos;
        if (!(f[1] & 0x80u)) abort(); /* client frames are masked */
        uint64_t len = f[1] & 0x7Fu;
        size_t hl = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
            if (len < 126) abort(); /* minimal encoding */
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 2; i < 10; i++) len = len << 8 | f[i];
            hl = 10;
            if (len <= 0xFFFF || len > BIG_LEN) abort();
        }
        if (avail < hl + 4 || avail - hl - 4 < len) break;
        uint8_t *pl = f + hl + 4;
        for (size_t i = 0; i < (size_t)len; i++) pl[i] ^= f[hl + (i & 3)];
        on_client_frame(h, f[0], pl, len);
        pos += hl + 4 + (size_t)len;
    }
    memmove(h->cbuf, h->cbuf + pos, h->clen - pos);
    h->clen -= pos;
}

/* ---------------------------------------------------------- transport -- */

static harness *of(mmws__transport *t) { return ((fz_transport *)t)->h; }

static int fz_handshake(mmws__transport *t) {
    harness *h = of(t);
    unsigned n = h->hs_calls++;
    switch (h->f1 & 3) {
    case 1: return n == 0 ? MMWS_EWANTREAD : 0;
    case 2: return n == 0 ? MMWS_EWANTWRITE : n == 1 ? MMWS_EWANTREAD : 0;
    case 3:
        snprintf(t->detail, sizeof t->detail, "fuzz: handshake refused");
        return MMWS_ETLS;
    default: return 0;
    }
}

static ptrdiff_t fz_read(mmws__transport *t, void *buf, size_t len) {
    harness *h = of(t);
    unsigned k = h->read_calls++;
    if (len == 0) abort(); /* the connection always offers room */
    if (!h->stream_ready) return MMWS_EWANTREAD;
    if (h->stream_pos == h->stream_len) {
        switch ((h->f1 >> 2) & 3) {
        case 1: return 0;
        case 2: return MMWS_ECLOSED;
        case 3:
            snprintf(t->detail, sizeof t->detail, "fuzz: read failed");
            return MMWS_EIO;
        default: return MMWS_EWANTREAD;
        }
    }
    uint8_t ch = h->chunks[k & 3];
    if (ch == 0) return (h->f10 & 2) ? MMWS_EWANTWRITE : MMWS_EWANTREAD;
    size_t n = ch < 200 ? ch : (size_t)(ch - 199) * 256;
    if (n > h->stream_len - h->stream_pos) n = h->stream_len - h->stream_pos;
    if (n > len) n = len;
    memcpy(buf, h->stream + h->stream_pos, n);
    h->stream_pos += n;
    return (ptrdiff_t)n;
}

static ptrdiff_t fz_write(mmws__transport *t, const void *buf, size_t len) {
    harness *h = of(t);
    unsigned k = ++h->write_calls;
    if (len == 0) abort(); /* the connection never writes nothing */
    if (h->retry_pending) {
        /* TLS: a refused write must come again, same bytes and length. */
        if (len != h->retry_len || fnv(buf, len) != h->retry_hash) abort();
        h->retry_pending = 0;
    } else {
        switch ((h->f1 >> 4) & 3) {
        case 2:
            if (k % 2 == 0) {
                h->retry_pending = 1;
                h->retry_len = len;
                h->retry_hash = fnv(buf, len);
                return k % 4 == 0 ? MMWS_EWANTREAD : MMWS_EWANTWRITE;
            }
            break;
        case 3:
            if (k >= 3) {
                snprintf(t->detail, sizeof t->detail, "fuzz: write failed");
                return MMWS_EIO;
            }
            break;
        default: break;
        }
    }
    size_t n = len;
    if (((h->f1 >> 4) & 3) == 1) {
        size_t lim = (size_t)h->chunks[k & 3] + 1;
        if (n > lim) n = lim;
    }
    client_bytes(h, buf, n);
    return (ptrdiff_t)n;
}

static size_t fz_pending(const mmws__transport *t) {
    const harness *h = ((const fz_transport *)t)->h;
    if (!(h->f10 & 1) || !h->stream_ready) return 0;
    return h->stream_len - h->stream_pos;
}

static void fz_shutdown(mmws__transport *t) { (void)t; }

static void fz_destroy(mmws__transport *t) {
    harness *h = of(t);
    close(t->fd);
    free(t);
    h->live--;
}

static const mmws__transport_ops fz_ops = {
    "fuzz", fz_handshake, fz_read, fz_write, fz_pending, fz_shutdown,
    fz_destroy};

static mmws__transport *make_transport(void *user, char *detail,
                                       size_t detail_len) {
    harness *h = user;
    if (h->factory_calls++ > 0 || (h->f1 & 0x40)) {
        snprintf(detail, detail_len, "the fuzz input allows %s",
                 h->factory_calls > 1 ? "one connection only"
                                      : "no connection");
        return NULL;
    }
    fz_transport *ft = calloc(1, sizeof *ft);
    if (!ft) abort();
    /* Counter 1: readable and writable until someone reads it (nobody
     * does), so level-triggered epoll reports it every iteration. */
    ft->base.fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ft->base.fd < 0) abort();
    ft->base.ops = &fz_ops;
    ft->h = h;
    h->live++;
    return &ft->base;
}

/* ---------------------------------------------------------- callbacks -- */

/* One action from the input, run inside a callback (msg: the message
 * being delivered, or NULL). */
static void act(harness *h, const mmws_msg *msg) {
    static const char *const subs[] = {"{\"op\":\"again\"}"};
    static const char bad_utf8[] = "\xC3\x28";
    static const char reason123[] =
        "0123456789012345678901234567890123456789012345678901234567890123"
        "456789012345678901234567890123456789012345678901234567890";
    mmws_conn *c = h->c;
    if (h->freed) abort(); /* a callback after free */
    unsigned a = h->actions[h->act_count++ & 3];
    /* The high nibble skips some callbacks so actions do not all land on
     * the first ones. */
    if ((a >> 4) && h->act_count % ((a >> 4) + 1u) != 0) return;
    int rc = 0;
    switch (a & 15) {
    case 1:
        if (msg && msg->opcode == MMWS_OP_TEXT)
            rc = mmws_conn_send_text(c, msg->data, msg->len);
        else
            rc = mmws_conn_send_text(c, "hi", 2);
        break;
    case 2:
        rc = mmws_conn_send_binary(c, msg ? msg->data : big,
                                   msg ? msg->len : 3);
        break;
    case 3: rc = mmws_conn_send_ping(c, "p", 1); break;
    case 4: rc = mmws_conn_send_pong(c, NULL, 0); break;
    case 5: rc = mmws_conn_send_text(c, reason123, 122); break;
    case 6:
        /* Once per run at full size: thousands of 70 KB sends would make
         * a slow input without reaching anything new. */
        rc = mmws_conn_send_binary(c, big, h->big_sent++ ? 300 : sizeof big);
        break;
    case 7: rc = mmws_conn_close(c, 1000, "bye"); break;
    case 8: rc = mmws_conn_close(c, 0, NULL); break;
    case 9:
        rc = mmws_conn_close(c, 1005, NULL);
        if (rc != MMWS_ECLOSECODE) abort();
        break;
    case 10:
        mmws_conn_free(c);
        h->freed = 1;
        return;
    case 11:
        /* Refused like mmws_conn_new refuses it when over max_frame_size. */
        rc = mmws_conn_set_on_connect(c, subs, 1);
        if (rc != (h->max_frame < strlen(subs[0]) ? MMWS_EINVAL : 0)) abort();
        break;
    case 12:
        rc = mmws_conn_send_text(c, bad_utf8, 2);
        if (!(h->f0 & 0x10) && rc == 0) abort();
        break;
    case 13: {
        mmws_conn_stats st;
        mmws_conn_stats_get(c, &st);
        if (st.phase != mmws_conn_phase(c)) abort();
        if (strlen(mmws_conn_last_error(c)) >= MMWS__ERR_LEN) abort();
        (void)mmws_conn_latency_ms(c);
        (void)mmws_phase_name(st.phase);
        break;
    }
    case 14: rc = mmws_conn_close(c, 4000, reason123); break;
    case 15:
        for (int i = 0; i < 3 && rc == 0; i++)
            rc = mmws_conn_send_text(c, "burst", 5);
        break;
    default: break;
    }
    if (trace)
        fprintf(stderr, "conn: action %u in %s: %s\n", a & 15,
                msg ? "on_message" : "on_state", mmws_errname(rc));
    check_rc(rc);
}

static void on_message(void *user, const mmws_msg *m) {
    harness *h = user;
    if (m->opcode != MMWS_OP_TEXT && m->opcode != MMWS_OP_BINARY) abort();
    if (m->opcode == MMWS_OP_BINARY && !(h->f0 & 0x20)) abort();
    if ((h->f0 & 4) && m->len > 1u + 8u * h->f11) abort();
    if (m->opcode == MMWS_OP_TEXT && !(h->f0 & 0x10) &&
        mmws_utf8_check(m->data, m->len) != 0)
        abort();
    if (m->len && !m->data) abort();
    if (m->seq != h->last_seq + 1) abort();
    h->last_seq = m->seq;
    /* Touch every byte: a view into a freed or short buffer shows up. */
    (void)fnv(m->data, m->len);
    act(h, m);
}

static void on_state(void *user, mmws_conn *c, mmws_state from,
                     mmws_state to) {
    harness *h = user;
    if (c != h->c || from == to) abort();
    if (to == MMWS_CONNECTED) h->opened = 1;
    act(h, NULL);
}

static void on_log(void *user, int level, const char *text) {
    (void)user;
    if (level < 0 || strlen(text) >= 512) abort();
}

/* ---------------------------------------------------------------- run -- */

/* After the script: a close handshake the connection saw must be done. */
static void check_end(const harness *h) {
    const char *err = mmws_conn_last_error(h->c);
    mmws_phase ph = mmws_conn_phase(h->c);
    /* A close that ended the connection cleanly went out (RFC 6455 5.5.1:
     * a close is answered with a close), unless the transport ended
     * first. */
    if ((ph == MMWS_PHASE_CLOSED || ph == MMWS_PHASE_BACKOFF) &&
        ((h->f1 >> 2) & 3) == 0 && strncmp(err, "closed by the ", 14) == 0 &&
        !h->client_close)
        abort();
    /* The server's close was read: unless the attempt failed for a reason
     * of the transport's, it is handled, not left in a buffer. */
    if (h->opened && h->close_at && h->stream_pos >= h->close_at &&
        (h->f1 & 3) != 3 && ((h->f1 >> 4) & 3) != 3) {
        if (ph != MMWS_PHASE_CLOSED && ph != MMWS_PHASE_BACKOFF) abort();
        if (strncmp(err, "connection closed by the server without", 39) == 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const on_connect[] = {"{\"op\":\"subscribe\"}", "x"};
    static const char *const protos[] = {"chat", "v2"};
    static const mmws_header headers[] = {{"X-Fuzz", "1"}};
    static const unsigned codes[] = {1000, 1001, 0, 4000, 3000, 1011, 1003, 2999};
    if (trace < 0) trace = getenv("FUZZ_CONN_TRACE") != NULL;
    uint8_t hdr[HDR] = {0};
    memcpy(hdr, data, size < HDR ? size : HDR);

    harness h;
    memset(&h, 0, sizeof h);
    h.f0 = hdr[0];
    h.f1 = hdr[1];
    memcpy(h.chunks, hdr + 2, 4);
    memcpy(h.actions, hdr + 6, 4);
    h.f10 = hdr[10];
    h.f11 = hdr[11];
    h.script = data + (size < HDR ? size : HDR);
    h.script_len = size < HDR ? 0 : size - HDR;

    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, "ws://127.0.0.1/fuzz");
    cfg.allow_plaintext = 1;
    cfg.auto_reconnect = (h.f0 >> 3) & 1;
    if (h.f0 & 4) cfg.max_frame_size = 1u + 8u * h.f11;
    h.max_frame = cfg.max_frame_size;
    cfg.validate_utf8 = !(h.f0 & 0x10);
    cfg.deliver_binary = (h.f0 >> 5) & 1;
    if (h.f0 & 0x40) {
        cfg.max_send_queue = 1024;
        cfg.max_handshake_size = 256;
    }
    if (h.f0 & 0x80) {
        /* Both fit any max_frame_size here: [0] is 18 bytes. */
        cfg.on_connect = on_connect;
        if (cfg.max_frame_size < 18) cfg.on_connect = on_connect + 1;
        cfg.on_connect_count = cfg.max_frame_size < 18 ? 1 : 2;
        cfg.max_msgs_per_sec = 3;
    }
    cfg.read_buffer_size = (h.f10 & 0x10) ? 65536 : 4096;
    if (h.f10 & 4) {
        cfg.app_ping_payload = "ping";
        cfg.app_pong_payload = "pong";
        cfg.app_ping_interval_ms = LONG_MS;
    }
    if (h.f10 & 8) {
        cfg.subprotocols = protos;
        cfg.subprotocol_count = 2;
    }
    cfg.headers = headers;
    cfg.header_count = 1;
    cfg.latency_ping_interval_ms = LONG_MS;
    cfg.pong_timeout_ms = LONG_MS;
    cfg.idle_timeout_ms = LONG_MS;
    cfg.connect_timeout_ms = LONG_MS;
    cfg.handshake_timeout_ms = LONG_MS;
    cfg.close_timeout_ms = LONG_MS;
    cfg.backoff_base_ms = LONG_MS;
    cfg.backoff_cap_ms = LONG_MS;
    cfg.backoff_reset_ms = LONG_MS;

    mmws_loop *loop = mmws_loop_new(NULL);
    if (!loop) abort();
    if (mmws_conn_new(loop, &cfg, on_message, &h, &h.c) != 0) {
        fprintf(stderr, "mmws_conn_new: %s\n", mmws_last_error());
        abort();
    }
    mmws_conn_set_on_state(h.c, on_state, &h);
    mmws_conn_set_log(h.c, on_log, &h);
    mmws__conn_set_transport_factory(h.c, make_transport, &h);

    /* Enough iterations for one-byte chunks and spurious wakeups. */
    size_t max_iter = 2 * h.script_len + 256, settle = 0;
    for (size_t i = 0; i < max_iter && !h.freed && settle < SETTLE; i++) {
        if (mmws_loop_run_once(loop, 0) < 0) abort();
        mmws_phase ph = h.freed ? MMWS_PHASE_CLOSED : mmws_conn_phase(h.c);
        if (ph == MMWS_PHASE_CLOSED || ph == MMWS_PHASE_BACKOFF ||
            (h.stream_ready && h.stream_pos == h.stream_len))
            settle++;
    }
    if (trace) {
        /* FUZZ_CONN_TRACE=1: one line per input, to see what a seed
         * reaches. */
        mmws_conn_stats st = {0};
        if (!h.freed) mmws_conn_stats_get(h.c, &st);
        fprintf(stderr, "conn: %s, %llu msgs in, %llu frames in, %llu out, "
                "client frames %u, last error: %s\n",
                h.freed ? "freed in a callback" : mmws_phase_name(st.phase),
                (unsigned long long)st.msgs_in,
                (unsigned long long)st.frames_in,
                (unsigned long long)st.msgs_out, h.client_frames,
                h.freed ? "-" : mmws_conn_last_error(h.c));
    }
    if (!h.freed) check_end(&h);
    if (!h.freed) {
        unsigned code = codes[h.f10 >> 5];
        int rc = mmws_conn_close(h.c, code, code ? "done" : NULL);
        if (code == 2999 ? rc != MMWS_ECLOSECODE : rc != 0) abort();
        for (int i = 0; i < SETTLE && !h.freed; i++)
            if (mmws_loop_run_once(loop, 0) < 0) abort();
    }
    if (!h.freed) {
        mmws_conn_free(h.c);
        h.freed = 1;
    }
    /* One more iteration: a freed connection must leave nothing behind
     * that the loop still calls. */
    if (mmws_loop_run_once(loop, 0) < 0) abort();
    if (h.live != 0) abort(); /* a transport was not destroyed */
    mmws_loop_free(loop);
    free(h.stream);
    free(h.cbuf);
    return 0;
}
