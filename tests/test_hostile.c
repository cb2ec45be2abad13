/*
 * test_hostile.c — mmws_conn against a scripted server (issue 5, first
 * cases): after a correct handshake the server sends exact bytes, in
 * chosen chunks, and reads back what the client answers. For each case
 * the test asserts what RFC 6455 requires: the message delivered, the
 * pongs echoed, or the connection failed with the specific close code.
 *
 * The server runs on its own thread with blocking sockets on 127.0.0.1;
 * the client is an ordinary mmws_conn on the test's loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "test.h"

typedef struct hostile hostile;
typedef void (*script_fn)(hostile *h, int fd);

/* One scripted server: accepts one connection, upgrades it, runs the
 * script, and records what the client sent back. */
struct hostile {
    int lfd, port;
    pthread_t th;
    script_fn script;
    const void *arg;           /* the script's parameter */
    size_t arg_len;
    int client_close;          /* close code the client sent, -1 none */
    int pongs_ok;              /* pongs that matched, in order */
    int pong_before_last;      /* pong seen before the last data frame */
    const char *raw;           /* if set: sent instead of a proper 101 */
    size_t raw_chunk;          /* bytes per write of raw (0: all at once) */
    unsigned raw_pause_ms;     /* pause between those writes */
    volatile int stop;         /* the client is done: end the script */
    volatile int done;
};

/* ------------------------------------------------------ server side -- */

static int srv_write(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Builds an unmasked server frame into out; returns its length. */
static size_t srv_frame(uint8_t *out, unsigned b0, const void *payload,
                        size_t len) {
    size_t h = 2;
    out[0] = (uint8_t)b0;
    if (len <= 125) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    if (len) memcpy(out + h, payload, len);
    return h + len;
}

/* Reads exactly n bytes within timeout_ms; 0 or -1. */
static int srv_read(int fd, void *p, size_t n, int timeout_ms) {
    uint8_t *b = p;
    while (n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, timeout_ms) <= 0) return -1;
        ssize_t r = recv(fd, b, n, 0);
        if (r <= 0) return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads one masked client frame; payload unmasked into buf (cap bytes,
 * the rest discarded). Returns the opcode or -1. */
static int srv_read_frame(int fd, uint8_t *buf, size_t cap, size_t *len,
                          int timeout_ms) {
    uint8_t h[14];
    if (srv_read(fd, h, 2, timeout_ms)) return -1;
    uint64_t n = h[1] & 0x7F;
    if (n == 126) {
        if (srv_read(fd, h + 2, 2, timeout_ms)) return -1;
        n = (uint64_t)h[2] << 8 | h[3];
    } else if (n == 127) {
        if (srv_read(fd, h + 2, 8, timeout_ms)) return -1;
        n = 0;
        for (int i = 2; i < 10; i++) n = n << 8 | h[i];
    }
    uint8_t key[4];
    if (!(h[1] & 0x80) || srv_read(fd, key, 4, timeout_ms)) return -1;
    *len = (size_t)n;
    /* In chunks: a byte per recv made the 8 MiB of pong_priority take
     * over 15 s on a loaded machine. */
    uint8_t chunk[16384];
    for (uint64_t i = 0; i < n;) {
        size_t k = n - i < sizeof chunk ? (size_t)(n - i) : sizeof chunk;
        if (srv_read(fd, chunk, k, timeout_ms)) return -1;
        for (size_t j = 0; j < k; j++, i++)
            if (i < cap) buf[i] = chunk[j] ^ key[i & 3];
    }
    return h[0] & 0x0F;
}

/* Reads frames until the client's CLOSE; returns its code (1005 if
 * empty) or -1. */
static int srv_expect_close(int fd) {
    uint8_t buf[256];
    size_t len;
    for (int i = 0; i < 1000; i++) {
        int op = srv_read_frame(fd, buf, sizeof buf, &len, 5000);
        if (op < 0) return -1;
        if (op == MMWS_OP_CLOSE) return len >= 2 ? buf[0] << 8 | buf[1] : 1005;
    }
    return -1;
}

/* Answers the upgrade request req with a correct 101; 0 or -1. */
static int srv_answer_upgrade(int fd, const char *req) {
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    if (!k) return -1;
    char accept_val[MMWS_HS_ACCEPT_LEN + 1];
    if (mmws_handshake_accept(k + 19, MMWS_HS_KEY_LEN, accept_val)) return -1;
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept_val);
    return srv_write(fd, resp, (size_t)n);
}

/* Accepts, answers the upgrade, runs the script. */
static void *srv_main(void *arg) {
    hostile *h = arg;
    int fd = accept(h->lfd, NULL, NULL);
    if (fd < 0) goto out;
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
        if (srv_read(fd, req + got, 1, 5000)) goto out_fd;
        got++;
        req[got] = '\0';
        if (got >= 4 && memcmp(req + got - 4, "\r\n\r\n", 4) == 0) break;
    }
    if (h->raw) {
        /* The handshake itself is the script: exact bytes, in chunks of
         * h->raw_chunk with h->raw_pause_ms between them. */
        const char *r = h->raw;
        size_t left = strlen(r);
        while (left) {
            size_t n = h->raw_chunk && h->raw_chunk < left ? h->raw_chunk : left;
            if (srv_write(fd, r, n)) break;
            r += n;
            left -= n;
            if (h->raw_pause_ms) usleep((useconds_t)h->raw_pause_ms * 1000);
            if (h->stop) break;
        }
        /* Hold the socket until the client gives up. */
        uint8_t sink[256];
        while (!h->stop && srv_read(fd, sink, 1, 100) == 0) {
        }
        goto out_fd;
    }
    if (srv_answer_upgrade(fd, req)) goto out_fd;
    h->script(h, fd);
out_fd:
    close(fd);
out:
    h->done = 1;
    return NULL;
}

static void srv_start(hostile *h, script_fn script, const void *arg,
                      size_t arg_len) {
    memset(h, 0, sizeof *h);
    h->script = script;
    h->arg = arg;
    h->arg_len = arg_len;
    h->client_close = -1;
    h->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(h->lfd, (struct sockaddr *)&a, sizeof a) || listen(h->lfd, 1) ||
        getsockname(h->lfd, (struct sockaddr *)&a, &al)) {
        perror("hostile listen");
        exit(2);
    }
    h->port = ntohs(a.sin_port);
    pthread_create(&h->th, NULL, srv_main, h);
}

static void srv_join(hostile *h) {
    pthread_join(h->th, NULL);
    close(h->lfd);
}

/* ------------------------------------------------------ client side -- */

typedef struct seen {
    size_t msgs;
    size_t last_len;
    char last[256];
} seen;

static void on_msg(void *user, const mmws_msg *m) {
    seen *s = user;
    s->msgs++;
    s->last_len = m->len;
    size_t n = m->len < sizeof s->last - 1 ? m->len : sizeof s->last - 1;
    memcpy(s->last, m->data, n);
    s->last[n] = '\0';
}

/* Runs one case: a client connects to a scripted server; the loop runs
 * until the server's script ends and the client is closed (or 15 s). */
static mmws_conn *run_case(hostile *h, seen *s, mmws_loop *loop,
                           size_t max_frame) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", h->port);
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    cfg.allow_plaintext = 1;
    cfg.auto_reconnect = 0;
    cfg.latency_ping_interval_ms = 0;
    cfg.max_frame_size = max_frame;
    memset(s, 0, sizeof *s);
    mmws_conn *c = NULL;
    if (mmws_conn_new(loop, &cfg, on_msg, s, &c)) return NULL;
    uint64_t end = mmws_now_ns() + 15000000000ull;
    while (mmws_now_ns() < end &&
           !(h->done && mmws_conn_phase(c) == MMWS_PHASE_CLOSED))
        mmws_loop_run_once(loop, 10);
    srv_join(h);
    return c;
}

/* ----------------------------------------------------------- scripts -- */

/* Sends arg bytes as they are, then reads the client's close code. */
static void script_bytes(hostile *h, int fd) {
    if (srv_write(fd, h->arg, h->arg_len) == 0)
        h->client_close = srv_expect_close(fd);
}

/* Same, one byte per write. */
static void script_bytes_1(hostile *h, int fd) {
    const uint8_t *b = h->arg;
    for (size_t i = 0; i < h->arg_len; i++)
        if (srv_write(fd, b + i, 1)) return;
    /* Then a clean close so the case ends. */
    uint8_t f[8];
    size_t n = srv_frame(f, 0x88, "\x03\xE8", 2);
    srv_write(fd, f, n);
    h->client_close = srv_expect_close(fd);
}

/* Ten pings in one write; ten pongs with the same payloads, in order. */
static void script_ping_burst(hostile *h, int fd) {
    uint8_t buf[200];
    size_t n = 0;
    for (int i = 0; i < 10; i++) {
        char p[4];
        snprintf(p, sizeof p, "p%d", i);
        n += srv_frame(buf + n, 0x89, p, strlen(p));
    }
    if (srv_write(fd, buf, n)) return;
    for (int i = 0; i < 10; i++) {
        uint8_t pl[16];
        size_t len;
        char want[4];
        snprintf(want, sizeof want, "p%d", i);
        if (srv_read_frame(fd, pl, sizeof pl, &len, 5000) != MMWS_OP_PONG) return;
        if (len == strlen(want) && memcmp(pl, want, len) == 0) h->pongs_ok++;
    }
    n = srv_frame(buf, 0x88, "\x03\xE8", 2);
    srv_write(fd, buf, n);
    h->client_close = srv_expect_close(fd);
}

/* The pong jumps the queue: the client has many frames queued (the
 * server does not read), the server pings, then reads everything. */
static void script_pong_priority(hostile *h, int fd) {
    /* Give the client time to fill its queue; the verdict does not depend
     * on how long this takes (the client stops queueing at 4 MiB). */
    size_t len;
    usleep(300000);
    uint8_t f[16];
    size_t n = srv_frame(f, 0x89, "prio", 4);
    if (srv_write(fd, f, n)) return;
    usleep(100000);
    /* Read: data frames "d<i>" then, somewhere, the PONG. */
    int last_data = -1, pong_at = -1;
    for (int i = 0; i < 100000; i++) {
        static uint8_t big[1 << 17];
        int op = srv_read_frame(fd, big, sizeof big, &len, 3000);
        if (op < 0) break;
        if (op == MMWS_OP_PONG) pong_at = i;
        if (op == MMWS_OP_BINARY && len >= 1 && big[0] == 'L') {
            last_data = i;
            break;
        }
    }
    h->pong_before_last = pong_at >= 0 && last_data >= 0 && pong_at < last_data;
    n = srv_frame(f, 0x88, "\x03\xE8", 2);
    srv_write(fd, f, n);
    h->client_close = srv_expect_close(fd);
}

/* --------------------------------------------------------------- cases -- */

static void expect_fail(const uint8_t *bytes, size_t n, int want_close) {
    hostile h;
    seen s;
    mmws_loop *loop = mmws_loop_new(NULL);
    srv_start(&h, script_bytes, bytes, n);
    mmws_conn *c = run_case(&h, &s, loop, 1u << 20);
    CHECK_EQ(h.client_close, want_close);
    CHECK(c && mmws_conn_phase(c) == MMWS_PHASE_CLOSED);
    CHECK_EQ(s.msgs, 0);
    mmws_conn_free(c);
    mmws_loop_free(loop);
}

static void reserved_bits_and_opcodes(void) {
    static const uint8_t rsv[3][2] = {{0xC1, 0}, {0xA1, 0}, {0x91, 0}};
    for (int i = 0; i < 3; i++) expect_fail(rsv[i], 2, 1002);
    for (unsigned op = 3; op <= 15; op++) {
        if (op >= 8 && op <= 10) continue;
        uint8_t f[2] = {(uint8_t)(0x80 | op), 0};
        expect_fail(f, 2, 1002);
    }
}

static void control_frames(void) {
    uint8_t f[200];
    memset(f, 'x', sizeof f);
    f[0] = 0x89; f[1] = 126; f[2] = 0; f[3] = 126; /* ping of 126 bytes */
    expect_fail(f, 4 + 126, 1002);
    static const uint8_t frag_ping[] = {0x09, 0x01, 'x'};
    expect_fail(frag_ping, sizeof frag_ping, 1002);
    static const uint8_t cont[] = {0x80, 0x01, 'x'};
    expect_fail(cont, sizeof cont, 1002);
    static const uint8_t nested[] = {0x01, 0x01, 'a', 0x81, 0x01, 'b'};
    expect_fail(nested, sizeof nested, 1002);
}

static void utf8_cases(void) {
    /* Invalid only in the final fragment -> 1007, nothing delivered. */
    static const uint8_t bad[] = {0x01, 0x02, 'o', 'k', 0x80, 0x01, 0xC3};
    expect_fail(bad, sizeof bad, 1007);
    static const uint8_t bad_whole[] = {0x81, 0x02, 'a', 0xFF};
    expect_fail(bad_whole, sizeof bad_whole, 1007);
    /* Split inside a code point, one byte per write: delivered. */
    static const uint8_t good[] = {0x01, 0x04, 'c', 'a', 'f', 0xC3,
                                   0x80, 0x01, 0xA9};
    hostile h;
    seen s;
    mmws_loop *loop = mmws_loop_new(NULL);
    srv_start(&h, script_bytes_1, good, sizeof good);
    mmws_conn *c = run_case(&h, &s, loop, 1u << 20);
    CHECK_EQ(s.msgs, 1);
    CHECK_STR(s.last, "caf\xC3\xA9");
    CHECK_EQ(h.client_close, 1000);
    mmws_conn_free(c);
    mmws_loop_free(loop);
}

static void close_codes(void) {
    static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016,
                                   2999, 5000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t f[4] = {0x88, 2, (uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        expect_fail(f, 4, 1002);
    }
    static const uint8_t one[] = {0x88, 1, 0x03};
    expect_fail(one, sizeof one, 1002);
    static const uint8_t bad_reason[] = {0x88, 4, 0x03, 0xE8, 0xC0, 0xAF};
    expect_fail(bad_reason, sizeof bad_reason, 1007);
    /* A valid code is echoed; data after the close is never delivered. */
    static const uint8_t then_data[] = {0x88, 2, 0x0F, 0xA0,
                                        0x81, 4, 'l', 'a', 't', 'e'};
    expect_fail(then_data, sizeof then_data, 4000);
}

static void lengths_byte_by_byte(void) {
    static const size_t lens[] = {0, 125, 126, 127, 65535, 65536};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t *f = malloc(lens[i] + 10), *pl = malloc(lens[i] + 1);
        memset(pl, 'a', lens[i]);
        size_t n = srv_frame(f, 0x81, pl, lens[i]);
        hostile h;
        seen s;
        mmws_loop *loop = mmws_loop_new(NULL);
        srv_start(&h, script_bytes_1, f, n);
        mmws_conn *c = run_case(&h, &s, loop, 1u << 20);
        CHECK_EQ(s.msgs, 1);
        CHECK_EQ(s.last_len, lens[i]);
        CHECK_EQ(h.client_close, 1000);
        mmws_conn_free(c);
        mmws_loop_free(loop);
        free(f);
        free(pl);
    }
}

static void ping_burst(void) {
    hostile h;
    seen s;
    mmws_loop *loop = mmws_loop_new(NULL);
    srv_start(&h, script_ping_burst, NULL, 0);
    mmws_conn *c = run_case(&h, &s, loop, 1u << 20);
    CHECK_EQ(h.pongs_ok, 10);
    CHECK_EQ(h.client_close, 1000);
    mmws_conn_free(c);
    mmws_loop_free(loop);
}

static void pong_priority(void) {
    hostile h;
    seen s;
    mmws_loop *loop = mmws_loop_new(NULL);
    srv_start(&h, script_pong_priority, NULL, 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", h.port);
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    cfg.allow_plaintext = 1;
    cfg.auto_reconnect = 0;
    cfg.latency_ping_interval_ms = 0;
    cfg.max_send_queue = 64u << 20;
    memset(&s, 0, sizeof s);
    mmws_conn *c = NULL;
    CHECK_RC(mmws_conn_new(loop, &cfg, on_msg, &s, &c), 0);
    while (mmws_conn_state(c) != MMWS_CONNECTED && !h.done)
        mmws_loop_run_once(loop, 10);
    /* Fill the kernel buffers and then the client's own queue. */
    static uint8_t chunk[1 << 16];
    memset(chunk, 'd', sizeof chunk);
    mmws_conn_stats st;
    int sent = 0;
    do {
        if (mmws_conn_send_binary(c, chunk, sizeof chunk) != 0) break;
        sent++;
        mmws_conn_stats_get(c, &st);
    } while (st.send_queue_bytes < (4u << 20) && sent < 4000);
    chunk[0] = 'L'; /* the last queued frame */
    CHECK_RC(mmws_conn_send_binary(c, chunk, sizeof chunk), 0);
    mmws_conn_stats_get(c, &st);
    CHECK(st.send_queue_bytes > sizeof chunk);
    uint64_t end = mmws_now_ns() + 15000000000ull;
    while (mmws_now_ns() < end &&
           !(h.done && mmws_conn_phase(c) == MMWS_PHASE_CLOSED))
        mmws_loop_run_once(loop, 10);
    srv_join(&h);
    CHECK(h.pong_before_last);
    CHECK_EQ(h.client_close, 1000);
    mmws_conn_free(c);
    mmws_loop_free(loop);
}


/* A handshake the client must refuse, with the error it must report. */
static void expect_refused(const char *response, size_t chunk,
                           unsigned pause_ms, int want_code, int want_status,
                           const char *want_text) {
    hostile h;
    seen s;
    mmws_loop *loop = mmws_loop_new(NULL);
    srv_start(&h, script_bytes, NULL, 0);
    h.raw = response;
    h.raw_chunk = chunk;
    h.raw_pause_ms = pause_ms;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", h.port);
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    cfg.allow_plaintext = 1;
    cfg.auto_reconnect = 0;
    cfg.latency_ping_interval_ms = 0;
    cfg.handshake_timeout_ms = 300;
    cfg.max_handshake_size = 1024;
    memset(&s, 0, sizeof s);
    mmws_conn *c = NULL;
    CHECK_RC(mmws_conn_new(loop, &cfg, on_msg, &s, &c), 0);
    uint64_t end = mmws_now_ns() + 15000000000ull;
    while (mmws_now_ns() < end && mmws_conn_phase(c) != MMWS_PHASE_CLOSED)
        mmws_loop_run_once(loop, 10);
    h.stop = 1;
    srv_join(&h);
    mmws_conn_stats st;
    mmws_conn_stats_get(c, &st);
    CHECK_RC(st.last_error_code, want_code);
    CHECK_EQ(st.last_http_status, want_status);
    CHECK_EQ(st.connects, 0);
    if (!strstr(mmws_conn_last_error(c), want_text)) {
        CHECK_FAIL("error text");
        fprintf(stderr, "  \"%s\" lacks \"%s\"\n", mmws_conn_last_error(c),
                want_text);
    }
    mmws_conn_free(c);
    mmws_loop_free(loop);
}

static void handshake_faults(void) {
    expect_refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                   "AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
                   0, 0, MMWS_EHS_ACCEPT, 0, "Sec-WebSocket-Accept");
    expect_refused("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: x\r\n\r\n",
                   0, 0, MMWS_EHS_UPGRADE, 0, "Upgrade");
    static const int codes[] = {301, 403, 429, 503};
    static const char *const lines[] = {
        "HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n\r\n",
        "HTTP/1.1 403 Forbidden\r\n\r\n",
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n\r\n",
        "HTTP/1.1 503 Service Unavailable\r\n\r\n"};
    for (int i = 0; i < 4; i++) {
        char want[8];
        snprintf(want, sizeof want, "%d", codes[i]);
        expect_refused(lines[i], 0, 0, MMWS_EHS_STATUS, codes[i], want);
    }
    /* Headers over max_handshake_size (1024 here). */
    static char big[2200];
    size_t n = (size_t)snprintf(big, sizeof big, "HTTP/1.1 101 OK\r\n");
    while (n < 2000) n += (size_t)snprintf(big + n, sizeof big - n, "X-Pad: %s\r\n",
                                          "0123456789012345678901234567890123456789");
    expect_refused(big, 0, 0, MMWS_EHS_TOOBIG, 0, "");
    /* Headers one byte at a time, slower than the handshake timeout. */
    expect_refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
                   1, 50, MMWS_ETIMEDOUT, 0, "handshake_timeout_ms");
    /* Garbage instead of HTTP. */
    expect_refused("\x16\x03\x01 garbage, not HTTP\r\n\r\n", 0, 0,
                   MMWS_EHS_MALFORMED, 0, "");
}

/* Sends arg bytes in writes of h->raw_chunk (0: one write), then a clean
 * close, and reads the client's close code. */
static void script_chunks_then_close(hostile *h, int fd) {
    const uint8_t *b = h->arg;
    size_t step = h->raw_chunk ? h->raw_chunk : h->arg_len;
    for (size_t i = 0; i < h->arg_len; i += step) {
        size_t n = h->arg_len - i < step ? h->arg_len - i : step;
        if (srv_write(fd, b + i, n)) return;
    }
    uint8_t f[8];
    size_t n = srv_frame(f, 0x88, "\x03\xE8", 2);
    srv_write(fd, f, n);
    h->client_close = srv_expect_close(fd);
}

/* A 16 MiB TEXT message, in one write and in 64 KiB writes: delivered
 * whole under a 32 MiB bound; refused with 1009 under 16 MiB - 1. */
static void sixteen_mib(void) {
    size_t len = 16u << 20;
    uint8_t *f = malloc(len + 10), *pl = malloc(len);
    memset(pl, 'z', len);
    size_t n = srv_frame(f, 0x81, pl, len);
    free(pl);
    static const size_t chunks[2] = {0, 65536};
    for (int k = 0; k < 2; k++) {
        hostile h;
        seen s;
        mmws_loop *loop = mmws_loop_new(NULL);
        srv_start(&h, script_chunks_then_close, f, n);
        h.raw_chunk = chunks[k];
        mmws_conn *c = run_case(&h, &s, loop, 32u << 20);
        CHECK_EQ(s.msgs, 1);
        CHECK_EQ(s.last_len, len);
        CHECK_EQ(h.client_close, 1000);
        mmws_conn_free(c);
        mmws_loop_free(loop);
    }
    hostile h;
    seen s;
    mmws_loop *loop = mmws_loop_new(NULL);
    /* The header alone must be enough to refuse it. */
    srv_start(&h, script_bytes, f, 10);
    mmws_conn *c = run_case(&h, &s, loop, len - 1);
    CHECK_EQ(h.client_close, 1009);
    CHECK_EQ(s.msgs, 0);
    mmws_conn_free(c);
    mmws_loop_free(loop);
    free(f);
}

/* ------------------------------------------ pool: joining connections -- */

/*
 * Found by the soak: a joining connection B holds u=10..12 (it is ahead of
 * the stream); another joining connection C holds u=5..12 and joins when
 * the stream reaches 5, delivering 6..12 from its hold. The delivered
 * stream has then passed B's hold, and B must join; before the fix only a
 * message delivered straight from a connection was matched against the
 * holds, so B held forever (and kept its eviction victim open).
 */
typedef struct trio {
    int lfd, port, fds[8];
    size_t nfds;
    pthread_t th;
    _Atomic int step, done_step;
} trio;

static void trio_send(int fd, unsigned from, unsigned to) {
    for (unsigned u = from; u <= to; u++) {
        char t[16];
        uint8_t f[32];
        int n = snprintf(t, sizeof t, "u=%u", u);
        srv_write(fd, f, srv_frame(f, 0x81, t, (size_t)n));
    }
}

/* Accepts the next connection (waiting up to 10 s), answers its upgrade
 * and appends it to fds (-1 if none came). */
static void trio_accept(trio *t) {
    struct pollfd pf = {t->lfd, POLLIN, 0};
    int fd = poll(&pf, 1, 10000) == 1 ? accept(t->lfd, NULL, NULL) : -1;
    char req[4096];
    size_t got = 0;
    while (fd >= 0 && got < sizeof req - 1) {
        if (srv_read(fd, req + got, 1, 5000)) break;
        req[++got] = '\0';
        if (got >= 4 && memcmp(req + got - 4, "\r\n\r\n", 4) == 0) {
            srv_answer_upgrade(fd, req);
            break;
        }
    }
    if (t->nfds < sizeof t->fds / sizeof t->fds[0])
        t->fds[t->nfds++] = fd;
    else if (fd >= 0)
        close(fd);
}

static void trio_cut(trio *t, size_t i) {
    if (t->fds[i] < 0) return;
    shutdown(t->fds[i], SHUT_RDWR);
    close(t->fds[i]);
    t->fds[i] = -1;
}

static void *trio_main(void *arg) {
    trio *t = arg;
    for (int i = 0; i < 3; i++) trio_accept(t);
    atomic_store(&t->done_step, 0);
    for (;;) {
        int st = atomic_load(&t->step);
        if (st == atomic_load(&t->done_step)) {
            usleep(1000);
            continue;
        }
        switch (st) {
        case 1: trio_send(t->fds[0], 1, 3); break;   /* A: joins */
        case 2: trio_send(t->fds[1], 10, 12); break; /* B: ahead, holds */
        case 3: trio_send(t->fds[2], 5, 12); break;  /* C: ahead, holds */
        case 4: trio_send(t->fds[0], 4, 5); break;   /* the stream meets C */
        case 5: trio_send(t->fds[1], 13, 13); break; /* B goes on */
        /* pool_takeover_order */
        case 11: trio_send(t->fds[0], 1, 3); break;  /* A: joins */
        case 12: trio_send(t->fds[1], 6, 7); break;  /* B: ahead, holds */
        case 13: trio_send(t->fds[2], 4, 7); break;  /* C: holds from 4 */
        case 14: trio_cut(t, 0); break;               /* A is cut */
        case 15:                                      /* both go on */
            trio_send(t->fds[1], 8, 8);
            trio_send(t->fds[2], 8, 8);
            break;
        /* pool_takeover_from_closing */
        case 21:              /* all join; B's copies come 500 ms late */
            trio_send(t->fds[0], 1, 3);
            trio_send(t->fds[2], 1, 3);
            usleep(500000);
            trio_send(t->fds[1], 1, 3);
            break;
        case 22:   /* B (slowest) is evicted: R replaces it and joins */
            trio_accept(t);
            trio_send(t->fds[0], 4, 5);
            trio_send(t->fds[3], 4, 5);
            break;
        case 23:   /* B's close goes unanswered; A, C and R are cut */
            trio_cut(t, 0);
            trio_cut(t, 2);
            trio_cut(t, 3);
            break;
        case 24:   /* their replacements: the first speaks */
            for (int i = 0; i < 3; i++) trio_accept(t);
            trio_send(t->fds[4], 6, 7);
            break;
        default: break;
        }
        atomic_store(&t->done_step, st);
        if (st == 99) break;
    }
    for (size_t i = 0; i < t->nfds; i++)
        if (t->fds[i] >= 0) close(t->fds[i]);
    return NULL;
}

static uint64_t trio_key(void *user, const uint8_t *d, size_t n) {
    (void)user;
    uint64_t u = 0;
    for (size_t i = 2; i < n; i++) u = u * 10 + (uint64_t)(d[i] - '0');
    return u;
}

typedef struct trio_seen {
    unsigned u[64];
    size_t n;
} trio_seen;

static void trio_msg(void *user, const mmws_msg *m) {
    trio_seen *s = user;
    if (s->n < 64) s->u[s->n++] = (unsigned)trio_key(NULL, m->data, m->len);
}

typedef struct trio_step {
    int step;
    size_t delivered, held;
} trio_step;

/* Runs the trio server through plan against a pool of 3; after each step
 * the delivered count and the held count must be the plan's, and the
 * messages delivered are 1, 2, 3, ... in order. */
static void trio_run(const trio_step *plan, size_t nplan,
                     uint32_t evict_s) {
    trio t;
    memset(&t, 0, sizeof t);
    atomic_init(&t.step, 0);
    atomic_init(&t.done_step, -1);
    t.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(t.lfd, (struct sockaddr *)&a, sizeof a) || listen(t.lfd, 8) ||
        getsockname(t.lfd, (struct sockaddr *)&a, &al)) {
        CHECK_FAIL("listen");
        return;
    }
    pthread_create(&t.th, NULL, trio_main, &t);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", ntohs(a.sin_port));
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    cfg.allow_plaintext = 1;
    cfg.latency_ping_interval_ms = 0;
    /* A close the server does not answer stays unanswered for the test. */
    cfg.close_timeout_ms = 600000;
    mmws_pool_config pc;
    mmws_pool_config_default(&pc);
    pc.num_connections = 3;
    pc.evict_interval_s = evict_s ? evict_s : 3600;
    pc.key_fn = trio_key;
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_pool *p = NULL;
    trio_seen got = {{0}, 0};
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, trio_msg, &got, &p), 0);
    mmws_pool_stats st;
    /* Each step: the server sends, the loop runs until what it must lead
     * to is seen (bounded). */
    uint64_t end = mmws_now_ns() + 15000000000ull;
    while (mmws_now_ns() < end && (atomic_load(&t.done_step) != 0 ||
                                   mmws_pool_connected_count(p) < 3))
        mmws_loop_run_once(loop, 10);
    CHECK_EQ(mmws_pool_connected_count(p), 3);
    for (size_t i = 0; i < nplan; i++) {
        atomic_store(&t.step, plan[i].step);
        end = mmws_now_ns() + 5000000000ull;
        do {
            mmws_loop_run_once(loop, 10);
            mmws_pool_stats_get(p, &st);
        } while (mmws_now_ns() < end &&
                 (atomic_load(&t.done_step) != plan[i].step ||
                  got.n != plan[i].delivered || st.held != plan[i].held));
        CHECK_EQ(got.n, plan[i].delivered);
        CHECK_EQ(st.held, plan[i].held);
    }
    int in_order = 1;
    for (size_t i = 0; i < got.n; i++)
        if (got.u[i] != i + 1) in_order = 0;
    CHECK(in_order);
    atomic_store(&t.step, 99);
    pthread_join(t.th, NULL);
    mmws_pool_free(p);
    mmws_loop_free(loop);
    close(t.lfd);
}

static void pool_hold_chain(void) {
    static const trio_step plan[] = {
        {1, 3, 0}, {2, 3, 3}, {3, 3, 11}, {4, 12, 0}, {5, 13, 0}};
    trio_run(plan, sizeof plan / sizeof plan[0], 0);
}

/*
 * Found by the soak: the connection carrying the stream (A) is cut while
 * two joining connections hold: B holds 6..7, C holds 4..7. The stream
 * must go on from C (its hold reaches furthest back) and B meet it at 6.
 * Before the fix the first joiner in creation order (or the first to
 * speak) took over: B delivered 6, 7 after 3, and C's 4, 5 came after
 * them, out of order, or stayed held.
 */
static void pool_takeover_order(void) {
    static const trio_step plan[] = {
        {11, 3, 0}, {12, 3, 2}, {13, 3, 6}, {14, 7, 0}, {15, 8, 0}};
    trio_run(plan, sizeof plan / sizeof plan[0], 0);
}

/*
 * A joined connection that is closing drops what it receives, so it does
 * not carry the stream. B (the slowest) is evicted: its replacement R
 * joins and B's close is sent, which the server never answers. A, C and R
 * are then cut, and the first of their replacements speaks: with nobody
 * carrying the stream it must join at once. Before the fix B, closing,
 * counted as carrying: the new connection held 6 and 7 until B's close
 * timed out (close_timeout_ms, here 10 minutes).
 */
static void pool_takeover_from_closing(void) {
    static const trio_step plan[] = {
        {21, 3, 0}, {22, 5, 0}, {23, 5, 0}, {24, 7, 0}};
    trio_run(plan, sizeof plan / sizeof plan[0], 2);
}

int main(void) {
    RUN(reserved_bits_and_opcodes);
    RUN(control_frames);
    RUN(utf8_cases);
    RUN(close_codes);
    RUN(lengths_byte_by_byte);
    RUN(ping_burst);
    RUN(pong_priority);
    RUN(handshake_faults);
    RUN(sixteen_mib);
    RUN(pool_hold_chain);
    RUN(pool_takeover_order);
    RUN(pool_takeover_from_closing);
    return TEST_END("test_hostile");
}
