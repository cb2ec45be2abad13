/*
 * test_sim.c — the exchange simulator (tools/mmws-sim) driven the way the
 * demo and the pool tests drive it: mmws_conn clients on the stream, the
 * control port for faults, raw sockets for junk. Plain and TLS (test PKI
 * from tests/certs.sh).
 *
 * No assertion is on a duration: waits are bounded only so that a broken
 * build fails instead of hanging. Every simulator must exit 0 on SIGTERM,
 * which under ASan also means it freed everything.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"
#include "sim.h"
#include "test.h"

static char certs[256];


/* ctl() that must answer: the reply's first line must not be an error. */
static int ctl_ok(const simproc *sp, const char *cmd, char *out, size_t cap) {
    int rc = ctl(sp, cmd, out, cap);
    CHECK_RC(rc, 0);
    if (rc == 0 && strncmp(out, "error", 5) == 0) {
        CHECK_FAIL(out);
        return -1;
    }
    return rc;
}

/* The value of "key=" in a list/stats line (first word or after a
 * space), or -1. */
static long long field(const char *line, const char *key) {
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    if (strncmp(line, k + 1, strlen(k + 1)) == 0)
        return strtoll(line + strlen(k + 1), NULL, 10);
    const char *p = strstr(line, k);
    return p ? strtoll(p + strlen(k), NULL, 10) : -1;
}

/* The line of "list" output for connection id, copied to out; 0 or -1. */
static int list_line(const char *list, unsigned long long id, char *out,
                     size_t cap) {
    char k[64];
    snprintf(k, sizeof k, "conn %llu ", id);
    const char *p = list;
    while (p && *p) {
        if (strncmp(p, k, strlen(k)) == 0) {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n >= cap) n = cap - 1;
            memcpy(out, p, n);
            out[n] = '\0';
            return 0;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}

/* -------------------------------------------------------------- client -- */

#define MAX_EVENTS 16

/* What one mmws_conn saw of the stream. */
typedef struct client {
    mmws_conn *conn;
    uint64_t msgs;        /* stream messages, all connections */
    uint64_t cur_msgs;    /* stream messages in the current connection */
    uint64_t first_u;     /* first update id of the current connection */
    uint64_t last_u;      /* 0 until the first of the connection */
    uint64_t gaps;        /* update ids that were not last_u + 1 */
    uint64_t bad;         /* messages that did not parse */
    uint64_t acks;
    long long ack_id;     /* id of the last ack */
    size_t up, down;
    unsigned close_codes[MAX_EVENTS]; /* at each DISCONNECTED */
    int errors[MAX_EVENTS];
} client;

/* Parses the decimal number after key (e.g. "\"u\":") in p[0..n). */
static int find_num(const uint8_t *p, size_t n, const char *key,
                    uint64_t *out) {
    size_t kl = strlen(key);
    const uint8_t *k = memmem(p, n, key, kl);
    if (!k) return -1;
    const uint8_t *q = k + kl, *end = p + n;
    uint64_t v = 0;
    int digits = 0;
    if (q < end && *q == '-') return -1;
    while (q < end && *q >= '0' && *q <= '9') {
        v = v * 10 + (uint64_t)(*q++ - '0');
        digits++;
    }
    if (!digits) return -1;
    *out = v;
    return 0;
}

static void on_msg(void *user, const mmws_msg *m) {
    client *cl = user;
    uint64_t u, ts, id;
    if (m->len >= 10 && memcmp(m->data, "{\"result\":", 10) == 0) {
        cl->acks++;
        cl->ack_id = find_num(m->data, m->len, "\"id\":", &id) == 0
                         ? (long long)id : -1;
        return;
    }
    if (find_num(m->data, m->len, "\"u\":", &u) != 0 ||
        find_num(m->data, m->len, "\"ts\":", &ts) != 0 || ts == 0 ||
        !memmem(m->data, m->len, "\"e\":\"bookTicker\"", 16)) {
        cl->bad++;
        return;
    }
    if (cl->last_u && u != cl->last_u + 1) cl->gaps++;
    if (!cl->last_u) cl->first_u = u;
    cl->last_u = u;
    cl->msgs++;
    cl->cur_msgs++;
}

static void on_state(void *user, mmws_conn *c, mmws_state from,
                     mmws_state to) {
    client *cl = user;
    (void)from;
    if (to == MMWS_CONNECTED) {
        cl->up++;
        cl->last_u = 0;
        cl->cur_msgs = 0;
    }
    if (to == MMWS_DISCONNECTED) {
        mmws_conn_stats st;
        mmws_conn_stats_get(c, &st);
        if (cl->down < MAX_EVENTS) {
            cl->close_codes[cl->down] = st.last_close_code;
            cl->errors[cl->down] = st.last_error_code;
        }
        cl->down++;
    }
}

/* Runs the loop until cond or `secs` pass (a hang guard, not a timing
 * assertion); a timeout is a failed check. */
#define RUN_UNTIL_S(loop, cond, secs)                                      \
    do {                                                                   \
        uint64_t t_end_ = mmws_now_ns() + (uint64_t)(secs) * 1000000000ull; \
        while (!(cond) && mmws_now_ns() < t_end_)                          \
            mmws_loop_run_once((loop), 20);                                \
        t_checks++;                                                        \
        if (!(cond)) {                                                     \
            t_failed++;                                                    \
            T_FAIL_HDR();                                                  \
            fprintf(stderr, "timed out waiting for %s\n", #cond);          \
        }                                                                  \
    } while (0)
#define RUN_UNTIL(loop, cond) RUN_UNTIL_S(loop, cond, 15)

/* Runs the loop for about ms (lets traffic flow; nothing is asserted on
 * it). */
static void run_for(mmws_loop *loop, unsigned ms) {
    uint64_t end = mmws_now_ns() + (uint64_t)ms * 1000000ull;
    while (mmws_now_ns() < end) mmws_loop_run_once(loop, 10);
}

static char g_url[128];
static char g_ca[300];

/* A client on the simulator with one SUBSCRIBE (id sub_id) on connect. */
static int client_new(mmws_loop *loop, client *cl, const simproc *sp,
                      int tls, int sub_id, const mmws_conn_config *tweak) {
    static char subs[4][128];
    static const char *subp[4];
    int slot = sub_id & 3;
    snprintf(subs[slot], sizeof subs[slot],
             "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@bookTicker\"],"
             "\"id\":%d}", sub_id);
    subp[slot] = subs[slot];
    snprintf(g_url, sizeof g_url, "%s://%s:%d/ws/btcusdt@bookTicker",
             tls ? "wss" : "ws", tls ? "localhost" : "127.0.0.1", sp->port);
    snprintf(g_ca, sizeof g_ca, "%s/ca.pem", certs);
    mmws_conn_config cfg;
    if (tweak) cfg = *tweak;
    else mmws_conn_config_default(&cfg, NULL);
    cfg.wss_url = g_url;
    cfg.allow_plaintext = !tls;
    cfg.tls_ca_file = tls ? g_ca : NULL;
    cfg.resolve = "127.0.0.1";
    cfg.dns_servers = "127.0.0.1:1";
    cfg.backoff_base_ms = 5;
    cfg.backoff_cap_ms = 40;
    cfg.on_connect = &subp[slot];
    cfg.on_connect_count = 1;
    memset(cl, 0, sizeof *cl);
    int rc = mmws_conn_new(loop, &cfg, on_msg, cl, &cl->conn);
    CHECK_RC(rc, 0);
    if (rc) {
        fprintf(stderr, "  mmws_conn_new: %s\n", mmws_last_error());
        return -1;
    }
    mmws_conn_set_on_state(cl->conn, on_state, cl);
    return 0;
}

static int start_or_fail(simproc *sp, const char *const *args) {
    int rc = sim_start(sp, args);
    CHECK_RC(rc, 0);
    return rc;
}

static void stop_and_check(simproc *sp) {
    int st = sim_stop(sp);
    CHECK(st != -1 && WIFEXITED(st));
    if (st != -1 && WIFEXITED(st)) CHECK_EQ(WEXITSTATUS(st), 0);
    else fprintf(stderr, "  simulator wait status %d\n", st);
}

/* -------------------------------------------------------------- cases -- */

/* Two clients on profiles 0:0 and 2000:0: gap-free streams, acks, list,
 * received, kill, close 4000, client close. */
static void stream_case(int tls) {
    char crt[300], key[300], out[65536], line[512];
    snprintf(crt, sizeof crt, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    const char *plain[] = {"--profiles", "0:0,2000:0", "--seed", "7", NULL};
    const char *secure[] = {"--profiles", "0:0,2000:0", "--seed", "7",
                            "--tls", crt, key, NULL};
    simproc sp;
    if (start_or_fail(&sp, tls ? secure : plain)) return;
    mmws_loop *loop = mmws_loop_new(NULL);
    client a, b;
    memset(&b, 0, sizeof b);
    if (client_new(loop, &a, &sp, tls, 1, NULL)) goto out;
    RUN_UNTIL(loop, a.up == 1);
    if (client_new(loop, &b, &sp, tls, 2, NULL)) goto out;
    RUN_UNTIL(loop, b.up == 1);
    RUN_UNTIL(loop, a.msgs >= 200 && b.msgs >= 200 && a.acks && b.acks);
    CHECK_EQ(a.gaps, 0);
    CHECK_EQ(b.gaps, 0);
    CHECK_EQ(a.bad, 0);
    CHECK_EQ(b.bad, 0);
    CHECK_EQ(a.acks, 1);
    CHECK_EQ(a.ack_id, 1);
    CHECK_EQ(b.acks, 1);
    CHECK_EQ(b.ack_id, 2);

    /* list: both, in accept order, with their profiles. */
    if (ctl_ok(&sp, "list", out, sizeof out) == 0) {
        CHECK(list_line(out, 1, line, sizeof line) == 0);
        CHECK_EQ(field(line, "delay_us"), 0);
        CHECK_EQ(field(line, "jitter_us"), 0);
        CHECK(field(line, "sent") > 0);
        CHECK_EQ(field(line, "received"), 1);
        CHECK(field(line, "last_u") > 0);
        CHECK(field(line, "port") > 0);
        CHECK(strstr(line, "state=open") != NULL);
        CHECK(list_line(out, 2, line, sizeof line) == 0);
        CHECK_EQ(field(line, "delay_us"), 2000);
        CHECK_EQ(field(line, "jitter_us"), 0);
        CHECK(list_line(out, 3, line, sizeof line) != 0);
    }

    /* received: the subscribe, then a routed send. */
    CHECK_RC(mmws_conn_send_text(a.conn, "routed-to-A", 11), 0);
    int found = 0;
    for (int i = 0; i < 100 && !found; i++) {
        run_for(loop, 20);
        if (ctl_ok(&sp, "received 1", out, sizeof out) != 0) break;
        found = strstr(out, "routed-to-A\n") != NULL;
    }
    CHECK(found);
    CHECK(strstr(out, "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@"
                      "bookTicker\"],\"id\":1}\nrouted-to-A\nend\n") != NULL);
    if (ctl_ok(&sp, "received 2", out, sizeof out) == 0)
        CHECK(strstr(out, "routed-to-A") == NULL);

    /* kill 1: A reconnects by itself; B goes on without a gap. */
    if (ctl_ok(&sp, "kill 1", out, sizeof out) == 0)
        CHECK_STR(out, "ok 1\nend\n");
    uint64_t b_before = b.msgs;
    RUN_UNTIL(loop, a.up == 2 && a.cur_msgs >= 100);
    RUN_UNTIL(loop, b.msgs >= b_before + 200);
    CHECK_EQ(a.down, 1);
    CHECK_EQ(a.gaps, 0);
    CHECK_EQ(b.gaps, 0);
    CHECK_EQ(b.down, 0);
    CHECK_EQ(a.acks, 2); /* the subscribe was replayed */
    /* The killed connection keeps its record. */
    if (ctl_ok(&sp, "received 1", out, sizeof out) == 0)
        CHECK(strstr(out, "routed-to-A\n") != NULL);
    if (ctl_ok(&sp, "list", out, sizeof out) == 0) {
        CHECK(list_line(out, 1, line, sizeof line) != 0);
        CHECK(list_line(out, 3, line, sizeof line) == 0); /* A again */
        CHECK_EQ(field(line, "delay_us"), 0); /* round-robin: third is 0:0 */
    }

    /* close 2 4000: B sees 4000 and reconnects. */
    ctl_ok(&sp, "close 2 4000 test close", out, sizeof out);
    RUN_UNTIL(loop, b.down == 1 && b.up == 2);
    CHECK_EQ(b.close_codes[0], 4000);
    CHECK_EQ(b.errors[0], 0);
    RUN_UNTIL(loop, b.cur_msgs >= 50);
    CHECK_EQ(b.gaps, 0);

    if (ctl_ok(&sp, "stats", out, sizeof out) == 0) {
        CHECK(field(out, "generated") > 0);
        CHECK_EQ(field(out, "connections_total"), 4);
        CHECK_EQ(field(out, "live"), 2);
        CHECK_EQ(field(out, "slow_closed"), 0);
    }

    /* The client closes: the simulator echoes the code. */
    CHECK_RC(mmws_conn_close(a.conn, 1000, "bye"), 0);
    RUN_UNTIL(loop, mmws_conn_phase(a.conn) == MMWS_PHASE_CLOSED);
    mmws_conn_stats st;
    mmws_conn_stats_get(a.conn, &st);
    CHECK_EQ(st.last_close_code, 1000);
    CHECK_RC(st.last_error_code, 0);
out:
    mmws_conn_free(a.conn);
    mmws_conn_free(b.conn);
    mmws_loop_free(loop);
    stop_and_check(&sp);
}

static void stream_plain(void) { stream_case(0); }
static void stream_tls(void) { stream_case(1); }

/* stall: no pongs, so the client's pong timeout fires; it reconnects. */
static void stall(void) {
    char out[4096];
    const char *args[] = {NULL};
    simproc sp;
    if (start_or_fail(&sp, args)) return;
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, NULL);
    cfg.latency_ping_interval_ms = 50;
    cfg.pong_timeout_ms = 300;
    client a;
    if (client_new(loop, &a, &sp, 0, 1, &cfg)) goto out;
    RUN_UNTIL(loop, a.up == 1);
    mmws_conn_stats st;
    RUN_UNTIL(loop, (mmws_conn_stats_get(a.conn, &st), st.pongs_received >= 2));
    if (ctl_ok(&sp, "stall 1", out, sizeof out) == 0)
        CHECK_STR(out, "ok\nend\n");
    if (ctl_ok(&sp, "list", out, sizeof out) == 0)
        CHECK(strstr(out, "state=stalled") != NULL);
    RUN_UNTIL(loop, a.down == 1);
    CHECK_RC(a.errors[0], MMWS_EDEAD);
    RUN_UNTIL(loop, a.up == 2 && a.cur_msgs >= 20);
    CHECK_EQ(a.gaps, 0);
    /* The stalled connection goes once the client has dropped it. */
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        run_for(loop, 20);
        if (ctl_ok(&sp, "list", out, sizeof out) != 0) break;
        gone = strstr(out, "conn 1 ") == NULL;
    }
    CHECK(gone);
    CHECK_RC(ctl(&sp, "stall 99", out, sizeof out), 0);
    CHECK(strncmp(out, "error ", 6) == 0);
out:
    mmws_conn_free(a.conn);
    mmws_loop_free(loop);
    stop_and_check(&sp);
}

/* --max-age-ms: connections end with 1000 and reconnect. */
static void max_age(void) {
    const char *args[] = {"--max-age-ms", "500", NULL};
    simproc sp;
    if (start_or_fail(&sp, args)) return;
    mmws_loop *loop = mmws_loop_new(NULL);
    client a;
    if (client_new(loop, &a, &sp, 0, 1, NULL)) goto out;
    RUN_UNTIL(loop, a.up >= 3 && a.acks >= 3);
    CHECK(a.down >= 2);
    CHECK_EQ(a.close_codes[0], 1000);
    CHECK_EQ(a.close_codes[1], 1000);
    CHECK_RC(a.errors[0], 0);
    CHECK_EQ(a.gaps, 0);
    CHECK(a.acks <= a.up); /* one per connection */
out:
    mmws_conn_free(a.conn);
    mmws_loop_free(loop);
    stop_and_check(&sp);
}

/* --rate 0: as fast as the socket takes it, in order. */
static void firehose(void) {
    char out[4096];
    const char *args[] = {"--rate", "0", NULL};
    simproc sp;
    if (start_or_fail(&sp, args)) return;
    mmws_loop *loop = mmws_loop_new(NULL);
    client a;
    if (client_new(loop, &a, &sp, 0, 1, NULL)) goto out;
    RUN_UNTIL(loop, a.up == 1);
    uint64_t t0 = mmws_now_ns();
    RUN_UNTIL_S(loop, a.msgs >= 10000, 60);
    uint64_t dt = mmws_now_ns() - t0;
    CHECK_EQ(a.gaps, 0);
    CHECK_EQ(a.bad, 0);
    CHECK_EQ(a.first_u, 1); /* the firehose waits for a connection */
    CHECK_EQ(a.down, 0);
    printf("     firehose: %llu messages in %.3f s (%.0f/s; information "
           "only)\n", (unsigned long long)a.msgs, (double)dt / 1e9,
           (double)a.msgs * 1e9 / (double)(dt ? dt : 1));
    if (ctl_ok(&sp, "stats", out, sizeof out) == 0)
        CHECK_EQ(field(out, "slow_closed"), 0);
    /* Rate changes and pause/resume keep the order. */
    ctl_ok(&sp, "rate 2000", out, sizeof out);
    ctl_ok(&sp, "pause", out, sizeof out);
    ctl_ok(&sp, "resume", out, sizeof out);
    uint64_t m = a.msgs;
    RUN_UNTIL(loop, a.msgs >= m + 50);
    CHECK_EQ(a.gaps, 0);
out:
    mmws_conn_free(a.conn);
    mmws_loop_free(loop);
    stop_and_check(&sp);
}

/* ---------------------------------------------------------- raw peers -- */

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int raw_port(int fd) {
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &l) != 0) return -1;
    return ntohs(a.sin_port);
}

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    uint8_t *b = p;
    while (n) {
        ssize_t r = recv(fd, b, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads an HTTP response header into out (NUL-terminated). */
static int read_header(int fd, char *out, size_t cap) {
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t r = recv(fd, out + got, 1, 0);
        if (r <= 0) break;
        got++;
        out[got] = '\0';
        if (got >= 4 && memcmp(out + got - 4, "\r\n\r\n", 4) == 0) return 0;
    }
    out[got] = '\0';
    return -1;
}

static int raw_upgrade(int fd) {
    static const char req[] =
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    char resp[1024];
    if (write_all(fd, req, sizeof req - 1) ||
        read_header(fd, resp, sizeof resp))
        return -1;
    CHECK(strncmp(resp, "HTTP/1.1 101", 12) == 0);
    CHECK(strstr(resp, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") !=
          NULL);
    return 0;
}

/* Sends a client frame, masked (or not, to test the refusal). */
static int raw_frame(int fd, int fin, unsigned op, const char *p, size_t n,
                     int masked) {
    uint8_t f[256];
    uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t hl = 2;
    f[0] = (uint8_t)((fin ? 0x80u : 0u) | op);
    f[1] = (uint8_t)((masked ? 0x80u : 0u) | n);
    if (masked) {
        memcpy(f + 2, key, 4);
        hl = 6;
    }
    memcpy(f + hl, p, n);
    if (masked) mmws_mask(f + hl, n, key, 0);
    return write_all(fd, f, hl + n);
}

/* Reads server frames until one that is not a stream message. */
static int raw_next(int fd, unsigned *op, uint8_t *buf, size_t cap,
                    size_t *len) {
    for (int i = 0; i < 100000; i++) {
        uint8_t h[10];
        if (read_all(fd, h, 2)) return -1;
        if (h[1] & 0x80) CHECK_FAIL("masked server frame");
        uint64_t n = h[1] & 127u;
        if (n == 126) {
            if (read_all(fd, h + 2, 2)) return -1;
            n = (uint64_t)h[2] << 8 | h[3];
        } else if (n == 127) {
            if (read_all(fd, h + 2, 8)) return -1;
            n = 0;
            for (int k = 0; k < 8; k++) n = n << 8 | h[2 + k];
        }
        if (n > cap) return -1;
        if (read_all(fd, buf, (size_t)n)) return -1;
        *op = h[0] & 15u;
        *len = (size_t)n;
        if (*op == MMWS_OP_TEXT && n > 16 &&
            memcmp(buf, "{\"e\":\"bookTicker\"", 17) == 0)
            continue;
        return 0;
    }
    return -1;
}

/* 1 once the peer has closed (EOF or reset) within the receive timeout. */
static int raw_closed(int fd) {
    uint8_t b[4096];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r == 0) return 1;
        if (r < 0) return errno == ECONNRESET;
    }
}

/* Junk, fragmentation, ping, half frames: the simulator stays up. */
static void junk(void) {
    char out[8192], line[512], want[64];
    uint8_t buf[70000];
    unsigned op;
    size_t n;
    const char *args[] = {"--rate", "200", NULL};
    simproc sp;
    if (start_or_fail(&sp, args)) return;

    /* Fragments with a ping in between; the pong comes; the record has
     * the reassembled text. */
    int fd = raw_connect(sp.port);
    CHECK(fd >= 0);
    if (fd >= 0 && raw_upgrade(fd) == 0) {
        CHECK_RC(raw_frame(fd, 0, MMWS_OP_TEXT, "frag-", 5, 1), 0);
        CHECK_RC(raw_frame(fd, 1, MMWS_OP_PING, "p1", 2, 1), 0);
        CHECK_RC(raw_frame(fd, 1, MMWS_OP_CONT, "mented", 6, 1), 0);
        CHECK_RC(raw_frame(fd, 1, MMWS_OP_TEXT,
                           "{\"method\":\"UNSUBSCRIBE\",\"id\":\"x9\"}", 33, 1),
                 0);
        CHECK_RC(raw_next(fd, &op, buf, sizeof buf, &n), 0);
        CHECK_EQ(op, MMWS_OP_PONG);
        CHECK_MEM(buf, n, "p1", 2);
        CHECK_RC(raw_next(fd, &op, buf, sizeof buf, &n), 0);
        CHECK_EQ(op, MMWS_OP_TEXT);
        CHECK_MEM(buf, n, "{\"result\":null,\"id\":\"x9\"}", 25);
        int port = raw_port(fd);
        if (ctl_ok(&sp, "list", out, sizeof out) == 0) {
            snprintf(want, sizeof want, " port=%d ", port);
            const char *l = strstr(out, want);
            CHECK(l != NULL);
            while (l && l > out && l[-1] != '\n') l--;
            unsigned long long id = 0;
            CHECK(l && sscanf(l, "conn %llu", &id) == 1);
            snprintf(line, sizeof line, "received %llu", id);
            if (ctl_ok(&sp, line, out, sizeof out) == 0)
                CHECK(strncmp(out, "frag-mented\n{\"method\"", 21) == 0);
        }
        /* An unmasked frame: close 1002, then the socket closes. */
        CHECK_RC(raw_frame(fd, 1, MMWS_OP_TEXT, "nomask", 6, 0), 0);
        CHECK_RC(raw_next(fd, &op, buf, sizeof buf, &n), 0);
        CHECK_EQ(op, MMWS_OP_CLOSE);
        CHECK(n >= 2 && (buf[0] << 8 | buf[1]) == 1002);
        CHECK(raw_closed(fd));
    }
    if (fd >= 0) close(fd);

    /* A client close is echoed with its code. */
    fd = raw_connect(sp.port);
    if (fd >= 0 && raw_upgrade(fd) == 0) {
        CHECK_RC(raw_frame(fd, 1, MMWS_OP_CLOSE, "\x0f\xa1" "bye", 5, 1), 0);
        CHECK_RC(raw_next(fd, &op, buf, sizeof buf, &n), 0);
        CHECK_EQ(op, MMWS_OP_CLOSE);
        CHECK(n == 2 && (buf[0] << 8 | buf[1]) == 4001);
        CHECK(raw_closed(fd));
    }
    if (fd >= 0) close(fd);

    /* Not HTTP: 400. Too long: 431. */
    fd = raw_connect(sp.port);
    if (fd >= 0) {
        CHECK_RC(write_all(fd, "GARBAGE\r\n\r\n", 11), 0);
        CHECK_RC(read_header(fd, out, sizeof out), 0);
        CHECK(strncmp(out, "HTTP/1.1 400", 12) == 0);
        CHECK(raw_closed(fd));
        close(fd);
    }
    fd = raw_connect(sp.port);
    if (fd >= 0) {
        memset(buf, 'A', 9000);
        (void)write_all(fd, buf, 9000);
        CHECK_RC(read_header(fd, out, sizeof out), 0);
        CHECK(strncmp(out, "HTTP/1.1 431", 12) == 0);
        close(fd);
    }
    /* No version: 426. */
    fd = raw_connect(sp.port);
    if (fd >= 0) {
        static const char req[] = "GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
                                  "Sec-WebSocket-Key: abc\r\n\r\n";
        CHECK_RC(write_all(fd, req, sizeof req - 1), 0);
        CHECK_RC(read_header(fd, out, sizeof out), 0);
        CHECK(strncmp(out, "HTTP/1.1 426", 12) == 0);
        close(fd);
    }
    /* Half a frame, then gone; random bytes after the upgrade; a frame
     * claiming 2^63 bytes; connect-and-leave. */
    fd = raw_connect(sp.port);
    if (fd >= 0 && raw_upgrade(fd) == 0)
        CHECK_RC(write_all(fd, "\x81\xfe\x01", 3), 0);
    if (fd >= 0) close(fd);
    fd = raw_connect(sp.port);
    if (fd >= 0 && raw_upgrade(fd) == 0) {
        for (size_t i = 0; i < 4096; i++) buf[i] = (uint8_t)t_rand();
        (void)write_all(fd, buf, 4096);
        CHECK(raw_closed(fd));
    }
    if (fd >= 0) close(fd);
    fd = raw_connect(sp.port);
    if (fd >= 0 && raw_upgrade(fd) == 0) {
        (void)write_all(fd, "\x82\xff\x80\0\0\0\0\0\0\0\1\2\3\4", 14);
        CHECK(raw_closed(fd));
    }
    if (fd >= 0) close(fd);
    fd = raw_connect(sp.port);
    if (fd >= 0) close(fd);

    /* The control port: unknown commands, bad arguments, forget. */
    CHECK_RC(ctl(&sp, "bogus", out, sizeof out), 0);
    CHECK(strncmp(out, "error ", 6) == 0);
    CHECK_RC(ctl(&sp, "kill 12345", out, sizeof out), 0);
    CHECK(strncmp(out, "error ", 6) == 0);
    CHECK_RC(ctl(&sp, "close 1 999", out, sizeof out), 0);
    CHECK(strncmp(out, "error ", 6) == 0);
    CHECK_RC(ctl(&sp, "rate x", out, sizeof out), 0);
    CHECK(strncmp(out, "error ", 6) == 0);
    CHECK_RC(ctl(&sp, "kill random", out, sizeof out), 0);
    CHECK(strncmp(out, "error ", 6) == 0); /* nothing live */
    ctl_ok(&sp, "forget 1", out, sizeof out);
    CHECK_RC(ctl(&sp, "received 1", out, sizeof out), 0);
    CHECK(strncmp(out, "error ", 6) == 0);
    ctl_ok(&sp, "forget all", out, sizeof out);
    if (ctl_ok(&sp, "stats", out, sizeof out) == 0) {
        CHECK_EQ(field(out, "live"), 0);
        CHECK(field(out, "connections_total") >= 8);
    }
    stop_and_check(&sp);
}

/* TLS: plaintext and junk on the TLS port, a TLS kill. */
static void junk_tls(void) {
    char crt[300], key[300], out[4096];
    snprintf(crt, sizeof crt, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    const char *args[] = {"--tls", crt, key, NULL};
    simproc sp;
    if (start_or_fail(&sp, args)) return;
    int fd = raw_connect(sp.port);
    if (fd >= 0) {
        (void)write_all(fd, "GET / HTTP/1.1\r\n\r\n", 18);
        CHECK(raw_closed(fd));
        close(fd);
    }
    fd = raw_connect(sp.port);
    if (fd >= 0) close(fd);
    if (ctl_ok(&sp, "stats", out, sizeof out) == 0)
        CHECK_EQ(field(out, "live"), 0);
    stop_and_check(&sp);
}

/* A client that does not read falls a whole log behind: 1008, counted. */
static void too_slow(void) {
    char out[4096];
    const char *args[] = {"--rate", "100000", "--size", "1000", NULL};
    simproc sp;
    if (start_or_fail(&sp, args)) return;
    int fd = raw_connect(sp.port);
    if (fd >= 0) {
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    if (fd >= 0 && raw_upgrade(fd) == 0) {
        long long slow = 0, deadline = th_now_ms() + 15000;
        while (slow < 1 && th_now_ms() < deadline) {
            th_sleep_ms(50);
            if (ctl_ok(&sp, "stats", out, sizeof out) != 0) break;
            slow = field(out, "slow_closed");
        }
        CHECK_EQ(slow, 1);
        /* It ends once the close times out (the client never answers). */
        long long live = 1;
        deadline = th_now_ms() + 15000;
        while (live != 0 && th_now_ms() < deadline) {
            th_sleep_ms(50);
            if (ctl_ok(&sp, "stats", out, sizeof out) != 0) break;
            live = field(out, "live");
        }
        CHECK_EQ(live, 0);
    }
    if (fd >= 0) close(fd);
    stop_and_check(&sp);
}

/* Bad command lines exit 2. */
static void usage(void) {
    const char *bad[][3] = {{"--rate", "x", NULL},
                            {"--profiles", "1:2,3", NULL},
                            {"--bogus", NULL, NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *bd = getenv("MMWS_BUILD_DIR");
        char prog[2048];
        (void)th_fmt(prog, sizeof prog, "%s/mmws-sim", bd && *bd ? bd : ".");
        char *argv[] = {prog, (char *)(uintptr_t)bad[i][0],
                        (char *)(uintptr_t)bad[i][1], NULL};
        int st = th_run(argv, 1);
        CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (th_certs(certs, sizeof certs) != 0) {
        CHECK_FAIL("th_certs");
        return TEST_END("test_sim");
    }
    RUN(stream_plain);
    RUN(stream_tls);
    RUN(stall);
    RUN(max_age);
    RUN(firehose);
    RUN(junk);
    RUN(junk_tls);
    RUN(too_slow);
    RUN(usage);
    th_certs_remove(certs);
    return TEST_END("test_sim");
}
