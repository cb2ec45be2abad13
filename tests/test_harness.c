/*
 * test_harness.c — proves the integration-test harness and both test
 * servers (Node ws, Python websockets) work, with a minimal blocking
 * WebSocket client written here (not the library): upgrade, echo, the
 * command protocol, fragmentation, pings, RST; wss:// checked with
 * `openssl s_client`; the status:429 and noupgrade modes; clean stop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "test.h"
#include "harness.h"

static char g_certs[1024]; /* the test PKI, made once */
static int g_certs_ok;

/* ------------------------------------------------- a minimal ws client -- */

/* Blocking TCP connection to 127.0.0.1:port; a 10 s receive bound only
 * keeps a broken server from hanging the test. */
static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n bytes; 0, or -1 on EOF/error (errno kept). */
static int recv_all(int fd, void *p, size_t n) {
    unsigned char *b = p;
    while (n) {
        ssize_t r = recv(fd, b, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) errno = 0;
        if (r <= 0) return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads an HTTP response head (up to "\r\n\r\n") into buf; its length or -1. */
static int recv_head(int fd, char *buf, size_t cap) {
    size_t got = 0;
    while (got < cap - 1) {
        if (recv_all(fd, buf + got, 1) != 0) break;
        got++;
        buf[got] = '\0';
        if (got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0)
            return (int)got;
    }
    buf[got] = '\0';
    return -1;
}

/* Reads until EOF into buf (NUL-terminated); the byte count. */
static size_t recv_to_eof(int fd, char *buf, size_t cap) {
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
        if (got == cap - 1) break;
    }
    buf[got] = '\0';
    return got;
}

static const char UPGRADE[] =
    "GET /harness HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

/* Connects and upgrades; the fd, or -1 (and failed checks). */
static int ws_open(int port) {
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0) return -1;
    char head[2048];
    CHECK(send_all(fd, UPGRADE, sizeof UPGRADE - 1) == 0);
    int n = recv_head(fd, head, sizeof head);
    CHECK(n > 0);
    CHECK_MEM(head, 12, "HTTP/1.1 101", 12);
    /* RFC 6455 §1.3's example key and its accept value. */
    CHECK(strcasestr(head, "\r\nSec-WebSocket-Accept: "
                           "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    if (n <= 0 || memcmp(head, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "  response head: %s\n", head);
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends one masked frame (client frames are always masked). */
static int ws_send(int fd, int fin, int opcode, const void *data, size_t n) {
    unsigned char h[14];
    size_t hl = 0;
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    h[hl++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        h[hl++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    memcpy(h + hl, mask, 4);
    hl += 4;
    unsigned char *m = malloc(hl + n);
    if (!m) return -1;
    memcpy(m, h, hl);
    const unsigned char *d = data;
    for (size_t i = 0; i < n; i++) m[hl + i] = d[i] ^ mask[i % 4];
    int rc = send_all(fd, m, hl + n);
    free(m);
    return rc;
}

static int ws_send_text(int fd, const char *s) {
    return ws_send(fd, 1, 1, s, strlen(s));
}

/* One received frame; payload NUL-terminated in buf. */
typedef struct frame_in {
    int fin, opcode, masked;
    size_t len;
} frame_in;

/* Reads one frame (payload up to cap-1 bytes) into f and buf; 0 or -1. */
static int ws_recv(int fd, frame_in *f, char *buf, size_t cap) {
    unsigned char h[8];
    if (recv_all(fd, h, 2) != 0) return -1;
    f->fin = h[0] >> 7;
    f->opcode = h[0] & 0x0f;
    f->masked = h[1] >> 7;
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        if (recv_all(fd, h, 2) != 0) return -1;
        n = (uint64_t)h[0] << 8 | h[1];
    } else if (n == 127) {
        if (recv_all(fd, h, 8) != 0) return -1;
        n = 0;
        for (int i = 0; i < 8; i++) n = n << 8 | h[i];
    }
    if (n >= cap) return -1;
    f->len = (size_t)n;
    if (recv_all(fd, buf, f->len) != 0) return -1;
    buf[f->len] = '\0';
    return 0;
}

/* Expects one frame with these fields and payload (a string literal). */
#define EXPECT_FRAME(fd, fin_, op_, payload)                               \
    do {                                                                   \
        frame_in f_;                                                       \
        char b_[512];                                                      \
        int rc_ = ws_recv((fd), &f_, b_, sizeof b_);                       \
        CHECK_EQ(rc_, 0);                                                  \
        if (rc_ == 0) {                                                    \
            CHECK_EQ(f_.fin, (fin_));                                      \
            CHECK_EQ(f_.opcode, (op_));                                    \
            CHECK_EQ(f_.masked, 0);                                        \
            CHECK_MEM(b_, f_.len, "" payload, sizeof("" payload) - 1);    \
        }                                                                  \
    } while (0)

/* ------------------------------------------------------------- helpers -- */

/* Stops s and checks the process is gone and exited cleanly (SIGTERM). */
static void stop_and_check(th_server *s) {
    pid_t pid = s->pid;
    int st = th_server_stop_status(s);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    CHECK_EQ(s->pid, 0);
    errno = 0;
    CHECK_EQ(kill(pid, 0), -1);
    CHECK_EQ(errno, ESRCH);
}

static int start(th_server *s, const char *kind, const char *mode, int tls) {
    char cert[1200], key[1200];
    if (tls && !g_certs_ok) {
        CHECK(g_certs_ok);
        return -1;
    }
    snprintf(cert, sizeof cert, "%s/server.pem", g_certs);
    snprintf(key, sizeof key, "%s/server.key", g_certs);
    int rc = th_server_start(s, kind, mode, tls ? cert : NULL,
                             tls ? key : NULL);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_STR(s->name, kind);
        CHECK(s->pid > 0);
        CHECK(s->port > 0 && s->port < 65536);
    }
    return rc;
}

/* -------------------------------------------------------------- checks -- */

/* ws://: upgrade, echo, commands, fragmentation, pings, RST. */
static void plain(const char *kind) {
    th_server s;
    if (start(&s, kind, NULL, 0) != 0) return;

    int fd = ws_open(s.port);
    if (fd >= 0) {
        CHECK_EQ(ws_send_text(fd, "hello"), 0);
        EXPECT_FRAME(fd, 1, 1, "hello");
        CHECK_EQ(ws_send_text(fd, "#{\"cmd\":\"count\"}"), 0);
        EXPECT_FRAME(fd, 1, 1, "{\"connections\":1,\"messages\":1}");

        /* A fragmented message from us is echoed whole; binary keeps its
         * opcode. */
        CHECK_EQ(ws_send(fd, 0, 2, "\x00\x01", 2), 0);
        CHECK_EQ(ws_send(fd, 1, 0, "\x02", 1), 0);
        EXPECT_FRAME(fd, 1, 2, "\x00\x01\x02");

        /* Server-side fragmentation: 10 bytes in frames of 4. */
        CHECK_EQ(ws_send_text(fd, "#{\"cmd\":\"send\",\"count\":1,\"size\":10,"
                                  "\"binary\":false,\"fragment\":4}"), 0);
        EXPECT_FRAME(fd, 0, 1, "abcd");
        EXPECT_FRAME(fd, 0, 0, "efgh");
        EXPECT_FRAME(fd, 1, 0, "ij");

        /* Our PING is answered; the server PINGs on command. */
        CHECK_EQ(ws_send(fd, 1, 9, "p1", 2), 0);
        EXPECT_FRAME(fd, 1, 10, "p1");
        CHECK_EQ(ws_send_text(fd, "#{\"cmd\":\"ping\",\"payload\":\"sp\"}"), 0);
        EXPECT_FRAME(fd, 1, 9, "sp");

        /* Server-initiated close handshake. */
        CHECK_EQ(ws_send_text(fd, "#{\"cmd\":\"close\",\"code\":4001,"
                                  "\"reason\":\"bye\"}"), 0);
        EXPECT_FRAME(fd, 1, 8, "\x0f\xa1" "bye");
        CHECK_EQ(ws_send(fd, 1, 8, "\x0f\xa1", 2), 0);
        char rest[64];
        CHECK_EQ(recv_to_eof(fd, rest, sizeof rest), 0);
        close(fd);
    }

    /* kill: the connection ends with a RST. */
    fd = ws_open(s.port);
    if (fd >= 0) {
        CHECK_EQ(ws_send_text(fd, "#{\"cmd\":\"kill\"}"), 0);
        char b;
        errno = 0;
        ssize_t r = recv(fd, &b, 1, 0);
        CHECK_EQ(r, -1);
        CHECK_EQ(errno, ECONNRESET);
        close(fd);
    }

    /* The counters span connections: 3 accepted, 2 messages (hello and
     * the fragmented binary one). */
    fd = ws_open(s.port);
    if (fd >= 0) {
        CHECK_EQ(ws_send_text(fd, "#{\"cmd\":\"count\"}"), 0);
        EXPECT_FRAME(fd, 1, 1, "{\"connections\":3,\"messages\":2}");
        close(fd);
    }
    stop_and_check(&s);
}

static int run_status(const char *cmd) {
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* wss://: the port accepts, and openssl verifies the chain against ca.pem
 * (and rejects it against an unrelated CA). */
static void tls(const char *kind) {
    th_server s;
    if (start(&s, kind, NULL, 1) != 0) return;
    int fd = tcp_connect(s.port);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);

    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%d -servername localhost "
             "-CAfile '%s/ca.pem' -verify_return_error </dev/null "
             ">/dev/null 2>&1", s.port, g_certs);
    CHECK_EQ(run_status(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%d -servername localhost "
             "-CAfile '%s/selfsigned.pem' -verify_return_error </dev/null "
             ">/dev/null 2>&1", s.port, g_certs);
    CHECK(run_status(cmd) != 0);
    stop_and_check(&s);
}

/* status:429 answers the upgrade with 429 and Retry-After, then closes. */
static void status_429(const char *kind) {
    th_server s;
    if (start(&s, kind, "status:429", 0) != 0) return;
    int fd = tcp_connect(s.port);
    CHECK(fd >= 0);
    if (fd >= 0) {
        char resp[2048];
        CHECK_EQ(send_all(fd, UPGRADE, sizeof UPGRADE - 1), 0);
        size_t n = recv_to_eof(fd, resp, sizeof resp);
        CHECK(n >= 12);
        CHECK_MEM(resp, n < 12 ? n : 12, "HTTP/1.1 429", 12);
        CHECK(strstr(resp, "\r\nRetry-After: 3\r\n") != NULL);
        close(fd);
    }
    stop_and_check(&s);
}

/* noupgrade accepts and sends nothing back (a verdict on 300 ms of
 * silence, as asked of this mode). */
static void noupgrade(const char *kind) {
    th_server s;
    if (start(&s, kind, "noupgrade", 0) != 0) return;
    int fd = tcp_connect(s.port);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_EQ(send_all(fd, UPGRADE, sizeof UPGRADE - 1), 0);
        struct pollfd p = {fd, POLLIN, 0};
        CHECK_EQ(poll(&p, 1, 300), 0);
        close(fd);
    }
    stop_and_check(&s);
}

/* th_server_kill ends the server at once; a bad mode fails the start. */
static void kill_and_errors(const char *kind) {
    th_server s;
    if (start(&s, kind, NULL, 0) == 0) {
        pid_t pid = s.pid;
        th_server_kill(&s);
        CHECK_EQ(s.pid, 0);
        errno = 0;
        CHECK_EQ(kill(pid, 0), -1);
        CHECK_EQ(errno, ESRCH);
    }
    fprintf(stderr, "(a usage error from the %s server is expected next)\n",
            kind);
    CHECK_EQ(th_server_start(&s, kind, "bogus", NULL, NULL), -1);
    CHECK_EQ(s.pid, 0);
}

/* --------------------------------------------------------------- cases -- */

/* -1: missing and not allowed to skip, 0: skip, 1: go. */
static int g_node, g_python;

#define KIND_CASE(fn, kind, avail)                                         \
    static void fn##_##kind(void) {                                        \
        CHECK((avail) >= 0); /* servers missing: see "skip:" above */      \
        if ((avail) > 0) fn(#kind);                                        \
    }
#define KIND_CASES(kind, avail)             \
    KIND_CASE(plain, kind, avail)           \
    KIND_CASE(tls, kind, avail)             \
    KIND_CASE(status_429, kind, avail)      \
    KIND_CASE(noupgrade, kind, avail)       \
    KIND_CASE(kill_and_errors, kind, avail)
KIND_CASES(node, g_node)
KIND_CASES(python, g_python)

int main(void) {
    int fds_before = th_fd_count();
    CHECK(fds_before > 0);

    g_certs_ok = th_certs(g_certs, sizeof g_certs) == 0;
    CHECK(g_certs_ok);

    g_node = th_require_servers("node");
    g_python = th_require_servers("python");

    RUN(plain_node);
    RUN(tls_node);
    RUN(status_429_node);
    RUN(noupgrade_node);
    RUN(kill_and_errors_node);
    RUN(plain_python);
    RUN(tls_python);
    RUN(status_429_python);
    RUN(noupgrade_python);
    RUN(kill_and_errors_python);

    if (g_certs_ok) th_certs_remove(g_certs);
    CHECK_EQ(th_fd_count(), fds_before);
    return TEST_END("test_harness");
}
