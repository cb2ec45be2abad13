/*
 * test_conn.c — mmws_conn against two independent WebSocket servers, Node's
 * `ws` and Python's `websockets`, started here on loopback with a test PKI
 * generated for this run (tests/harness.h). Every case runs against both.
 *
 * No assertion is on a duration: waits are bounded only so that a broken
 * build fails instead of hanging, and backoff is checked on the delays the
 * connection scheduled, not on the clock.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"
#include "test.h"

static char certs[256];

/* What a test connection saw. */
typedef struct seen {
    size_t msgs;
    size_t subs;          /* echoes of the on_connect payload "SUB" */
    size_t last_len;
    uint8_t last_op;
    int last_ok;          /* payload matched the server's pattern */
    uint64_t last_seq;
    int seq_ok;
    size_t up, down;      /* transitions to CONNECTED / DISCONNECTED */
    uint32_t caps[64];    /* backoff ceilings at each DISCONNECTED */
    uint32_t delays[64];
    size_t ncaps;
    char last_text[256];
} seen;

/* The servers' payload pattern (see tests/servers). */
static int pattern_ok(const uint8_t *p, size_t n, int binary) {
    static const char text[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < n; i++)
        if (p[i] != (binary ? (uint8_t)(i % 251) : (uint8_t)text[i % 36]))
            return 0;
    return 1;
}

static void on_msg(void *user, const mmws_msg *m) {
    seen *s = user;
    s->msgs++;
    s->last_len = m->len;
    s->last_op = m->opcode;
    s->seq_ok = m->seq == s->last_seq + 1;
    s->last_seq = m->seq;
    if (m->len == 3 && memcmp(m->data, "SUB", 3) == 0) s->subs++;
    s->last_ok = pattern_ok(m->data, m->len, m->opcode == MMWS_OP_BINARY);
    size_t n = m->len < sizeof s->last_text - 1 ? m->len : sizeof s->last_text - 1;
    memcpy(s->last_text, m->data, n);
    s->last_text[n] = '\0';
}

static mmws_conn *g_conn;

static void on_state(void *user, mmws_conn *c, mmws_state from,
                     mmws_state to) {
    seen *s = user;
    (void)from;
    if (to == MMWS_CONNECTED) s->up++;
    if (to == MMWS_DISCONNECTED) {
        s->down++;
        mmws_conn_stats st;
        mmws_conn_stats_get(c, &st);
        if (s->ncaps < 64 && mmws_conn_phase(c) == MMWS_PHASE_BACKOFF) {
            s->caps[s->ncaps] = st.last_backoff_cap_ms;
            s->delays[s->ncaps++] = st.last_backoff_ms;
        }
    }
}

/* Runs the loop until *flag is non-zero or 15 s pass (a hang guard, not a
 * timing assertion). Returns the flag. */
#define RUN_UNTIL(loop, cond)                                              \
    do {                                                                   \
        uint64_t t_end_ = mmws_now_ns() + 15000000000ull;                  \
        while (!(cond) && mmws_now_ns() < t_end_)                          \
            mmws_loop_run_once((loop), 50);                                \
        if (!(cond)) {                                                     \
            t_failed++;                                                    \
            T_FAIL_HDR();                                                  \
            fprintf(stderr, "timed out waiting for %s (last error: %s)\n", \
                    #cond, g_conn ? mmws_conn_last_error(g_conn) : "");    \
        }                                                                  \
        t_checks++;                                                        \
    } while (0)

typedef struct fixture {
    const char *kind;
    th_server srv;
    mmws_loop *loop;
    mmws_conn *conn;
    seen s;
    char url[128];
    char ca[300];
} fixture;

/* Starts a server (mode NULL = normal; cert "server", "selfsigned", ...). */
static int fx_server(fixture *fx, const char *kind, const char *mode,
                     const char *cert) {
    char crt[300], key[300];
    memset(fx, 0, sizeof *fx);
    fx->kind = kind;
    snprintf(crt, sizeof crt, "%s/%s.pem", certs, cert);
    snprintf(key, sizeof key, "%s/%s.key", certs, cert);
    snprintf(fx->ca, sizeof fx->ca, "%s/ca.pem", certs);
    if (th_server_start(&fx->srv, kind, mode, crt, key) != 0) {
        CHECK_FAIL("server start");
        return -1;
    }
    snprintf(fx->url, sizeof fx->url, "wss://localhost:%d/stream", fx->srv.port);
    fx->loop = mmws_loop_new(NULL);
    return fx->loop ? 0 : -1;
}

/* A config for fast tests: small backoff, on_connect "SUB". */
static void fx_config(fixture *fx, mmws_conn_config *cfg) {
    static const char *subs[] = {"SUB"};
    mmws_conn_config_default(cfg, fx->url);
    cfg->tls_ca_file = fx->ca;
    cfg->on_connect = subs;
    cfg->on_connect_count = 1;
    cfg->backoff_base_ms = 5;
    cfg->backoff_cap_ms = 40;
    cfg->deliver_binary = 1;
    cfg->dns_servers = "127.0.0.1:1"; /* never leave loopback */
    cfg->resolve = "127.0.0.1";
}

static int fx_connect(fixture *fx, const mmws_conn_config *cfg) {
    int rc = mmws_conn_new(fx->loop, cfg, on_msg, &fx->s, &fx->conn);
    CHECK_RC(rc, 0);
    if (rc) {
        fprintf(stderr, "  mmws_conn_new: %s\n", mmws_last_error());
        return -1;
    }
    g_conn = fx->conn;
    mmws_conn_set_on_state(fx->conn, on_state, &fx->s);
    return 0;
}

static void fx_done(fixture *fx) {
    mmws_conn_free(fx->conn);
    g_conn = NULL;
    mmws_loop_free(fx->loop);
    th_server_stop(&fx->srv);
}

static void send_cmd(fixture *fx, const char *json) {
    char buf[256];
    snprintf(buf, sizeof buf, "#%s", json);
    CHECK_RC(mmws_conn_send_text(fx->conn, buf, strlen(buf)), 0);
}

/* ------------------------------------------------------------- cases -- */

static void tls_verified_echo(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    if (fx_connect(&fx, &cfg)) goto out;
    CHECK_RC(mmws_conn_send_text(fx.conn, "x", 1), MMWS_ENOTCONN);
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    CHECK_EQ(mmws_conn_state(fx.conn), MMWS_CONNECTED);
    CHECK_RC(mmws_conn_send_text(fx.conn, "hello", 5), 0);
    RUN_UNTIL(fx.loop, fx.s.msgs == 2);
    CHECK_STR(fx.s.last_text, "hello");
    CHECK(fx.s.seq_ok);
    /* Also by IP literal: the certificate names 127.0.0.1 too. */
    mmws_conn_free(fx.conn);
    fx.conn = NULL;
    memset(&fx.s, 0, sizeof fx.s);
    snprintf(fx.url, sizeof fx.url, "wss://127.0.0.1:%d/", fx.srv.port);
    fx_config(&fx, &cfg);
    cfg.resolve = NULL;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
out:
    fx_done(&fx);
}

/* A certificate the client must refuse: no connection, a clear error. */
static void tls_refused(const char *kind, const char *cert, const char *want) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, cert)) return;
    fx_config(&fx, &cfg);
    cfg.auto_reconnect = 0;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, mmws_conn_phase(fx.conn) == MMWS_PHASE_CLOSED);
    CHECK_EQ(fx.s.up, 0);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_RC(st.last_error_code, MMWS_ETLS);
    if (!strstr(mmws_conn_last_error(fx.conn), want)) {
        t_failed++;
        T_FAIL_HDR();
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n",
                mmws_conn_last_error(fx.conn), want);
    }
    t_checks++;
out:
    fx_done(&fx);
}

static void tls_failures(const char *kind) {
    tls_refused(kind, "selfsigned", "self-signed certificate");
    tls_refused(kind, "wronghost", "hostname mismatch");
    tls_refused(kind, "expired", "certificate has expired");
}

static void sizes(const char *kind) {
    static const size_t lens[] = {0, 125, 126, 65535, 65536, 3u << 20};
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.max_frame_size = 4u << 20;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    uint8_t *buf = malloc(3u << 20);
    for (size_t b = 0; b < 2; b++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            /* Server -> client, whole and fragmented. */
            for (int frag = 0; frag < 2; frag++) {
                char cmd[160];
                size_t before = fx.s.msgs;
                snprintf(cmd, sizeof cmd,
                         "{\"cmd\":\"send\",\"count\":1,\"size\":%zu,"
                         "\"binary\":%s,\"fragment\":%d}",
                         lens[i], b ? "true" : "false",
                         frag ? 1000 : 0);
                send_cmd(&fx, cmd);
                RUN_UNTIL(fx.loop, fx.s.msgs == before + 1);
                CHECK_EQ(fx.s.last_len, lens[i]);
                CHECK_EQ(fx.s.last_op, b ? MMWS_OP_BINARY : MMWS_OP_TEXT);
                CHECK(fx.s.last_ok);
            }
            /* Client -> server -> client (echo). */
            for (size_t j = 0; j < lens[i]; j++)
                buf[j] = b ? (uint8_t)(j % 251)
                           : (uint8_t)"abcdefghijklmnopqrstuvwxyz0123456789"[j % 36];
            size_t before = fx.s.msgs;
            CHECK_RC(b ? mmws_conn_send_binary(fx.conn, buf, lens[i])
                       : mmws_conn_send_text(fx.conn, buf, lens[i]), 0);
            RUN_UNTIL(fx.loop, fx.s.msgs == before + 1);
            CHECK_EQ(fx.s.last_len, lens[i]);
            CHECK(fx.s.last_ok);
        }
    }
    free(buf);
    CHECK(fx.s.seq_ok);
out:
    fx_done(&fx);
}

static void too_big(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.max_frame_size = 1000;
    cfg.auto_reconnect = 0;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    send_cmd(&fx, "{\"cmd\":\"send\",\"count\":1,\"size\":2000,\"binary\":false,"
                  "\"fragment\":0}");
    RUN_UNTIL(fx.loop, mmws_conn_phase(fx.conn) == MMWS_PHASE_CLOSED);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_RC(st.last_error_code, MMWS_ETOOBIG);
    CHECK_EQ(st.last_close_code, 1009);
    CHECK(strstr(mmws_conn_last_error(fx.conn), "1009") != NULL);
    /* Also a message over the bound in small fragments. */
    mmws_conn_free(fx.conn);
    fx.conn = NULL;
    memset(&fx.s, 0, sizeof fx.s);
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    send_cmd(&fx, "{\"cmd\":\"send\",\"count\":1,\"size\":2000,\"binary\":true,"
                  "\"fragment\":300}");
    RUN_UNTIL(fx.loop, mmws_conn_phase(fx.conn) == MMWS_PHASE_CLOSED);
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_RC(st.last_error_code, MMWS_ETOOBIG);
out:
    fx_done(&fx);
}

static void ping_rtt(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.latency_ping_interval_ms = 20;
    if (fx_connect(&fx, &cfg)) goto out;
    CHECK(mmws_conn_latency_ms(fx.conn) == 1000.0);
    CHECK(mmws_conn_latency_ema_ms(fx.conn) == 1000.0);
    mmws_conn_stats st = {0};
    RUN_UNTIL(fx.loop, (mmws_conn_stats_get(fx.conn, &st), st.pongs_received >= 3));
    double last = mmws_conn_latency_ms(fx.conn), ema = mmws_conn_latency_ema_ms(fx.conn);
    CHECK(last > 0.0 && last < 1000.0);
    CHECK(ema > 0.0 && ema < 1000.0);
    CHECK_EQ(st.dropped_unsolicited_pong, 0);
    /* A server ping is answered with the same payload (the server checks
     * nothing; the connection must stay up and the pong not count as ours). */
    send_cmd(&fx, "{\"cmd\":\"ping\",\"payload\":\"abc\"}");
    CHECK_RC(mmws_conn_send_text(fx.conn, "after", 5), 0);
    RUN_UNTIL(fx.loop, strcmp(fx.s.last_text, "after") == 0);
    CHECK_EQ(mmws_conn_state(fx.conn), MMWS_CONNECTED);
out:
    fx_done(&fx);
}

/* A fault the connection must detect, then reconnect and replay SUB. */
static void fault_reconnect(const char *kind, const char *cmd, int want_code) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.latency_ping_interval_ms = 50;
    cfg.pong_timeout_ms = 200;
    cfg.idle_timeout_ms = 0;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    send_cmd(&fx, cmd);
    RUN_UNTIL(fx.loop, fx.s.down >= 1);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    if (want_code) CHECK_RC(st.last_error_code, want_code);
    CHECK(mmws_conn_last_error(fx.conn)[0] != '\0');
    RUN_UNTIL(fx.loop, fx.s.subs == 2); /* the server saw SUB again */
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_EQ(st.reconnects, 1);
out:
    fx_done(&fx);
}

static void faults(const char *kind) {
    fault_reconnect(kind, "{\"cmd\":\"close\",\"code\":4001,\"reason\":\"bye\"}",
                    0);
    fault_reconnect(kind, "{\"cmd\":\"kill\"}", 0);
    fault_reconnect(kind, "{\"cmd\":\"stall\"}", MMWS_EDEAD);
}

static void server_close_code(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.auto_reconnect = 0;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    send_cmd(&fx, "{\"cmd\":\"close\",\"code\":4001,\"reason\":\"bye\"}");
    RUN_UNTIL(fx.loop, mmws_conn_phase(fx.conn) == MMWS_PHASE_CLOSED);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_EQ(st.last_close_code, 4001);
    CHECK(strstr(mmws_conn_last_error(fx.conn), "4001") != NULL);
    CHECK_RC(mmws_conn_send_text(fx.conn, "x", 1), MMWS_ENOTCONN);
out:
    fx_done(&fx);
}

static void no_upgrade(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, "noupgrade", "server")) return;
    fx_config(&fx, &cfg);
    cfg.handshake_timeout_ms = 200;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.down >= 2);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_RC(st.last_error_code, MMWS_ETIMEDOUT);
    CHECK(strstr(mmws_conn_last_error(fx.conn), "handshake_timeout_ms") != NULL);
    CHECK_EQ(fx.s.up, 0);
out:
    fx_done(&fx);
}

static void status_429(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, "status:429", "server")) return;
    fx_config(&fx, &cfg);
    cfg.backoff_cap_ms = 10000;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.down >= 1);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_RC(st.last_error_code, MMWS_EHS_STATUS);
    CHECK_EQ(st.last_http_status, 429);
    CHECK(strstr(mmws_conn_last_error(fx.conn), "429") != NULL);
    CHECK_EQ(st.last_backoff_ms, 3000); /* Retry-After: 3 obeyed */
out:
    fx_done(&fx);
}

/* A loopback port nothing listens on (bound, then closed). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return 9;
    close(fd);
    return ntohs(a.sin_port);
}

/* Connection refused: the scheduled delays grow and stay under the cap. */
static void refused_backoff(void) {
    int port = free_port();
    mmws_loop *loop = mmws_loop_new(NULL);
    seen s;
    memset(&s, 0, sizeof s);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    cfg.allow_plaintext = 1;
    cfg.backoff_base_ms = 1;
    cfg.backoff_cap_ms = 16;
    mmws_conn *c = NULL;
    CHECK_RC(mmws_conn_new(loop, &cfg, on_msg, &s, &c), 0);
    g_conn = c;
    mmws_conn_set_on_state(c, on_state, &s);
    RUN_UNTIL(loop, s.ncaps >= 8);
    static const uint32_t want[] = {1, 2, 4, 8, 16, 16, 16, 16};
    for (size_t i = 0; i < 8; i++) {
        CHECK_EQ(s.caps[i], want[i]);
        CHECK(s.delays[i] <= s.caps[i]);
    }
    mmws_conn_stats st;
    mmws_conn_stats_get(c, &st);
    CHECK_RC(st.last_error_code, MMWS_ECONNECT);
    CHECK(strstr(mmws_conn_last_error(c), "refused") != NULL);
    CHECK_EQ(s.up, 0);
    mmws_conn_free(c);
    g_conn = NULL;
    mmws_loop_free(loop);
}

/* A name that does not resolve (DNS asked only on loopback). */
static void dns_failure(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    seen s;
    memset(&s, 0, sizeof s);
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, "wss://no-such-host.invalid/ws");
    cfg.dns_servers = "127.0.0.1:1";
    cfg.connect_timeout_ms = 2000;
    cfg.backoff_base_ms = 1;
    cfg.backoff_cap_ms = 4;
    mmws_conn *c = NULL;
    CHECK_RC(mmws_conn_new(loop, &cfg, on_msg, &s, &c), 0);
    g_conn = c;
    mmws_conn_set_on_state(c, on_state, &s);
    RUN_UNTIL(loop, s.ncaps >= 2);
    mmws_conn_stats st;
    mmws_conn_stats_get(c, &st);
    CHECK(st.last_error_code == MMWS_EDNS || st.last_error_code == MMWS_ETIMEDOUT);
    CHECK(strstr(mmws_conn_last_error(c), "no-such-host.invalid") != NULL);
    mmws_conn_free(c);
    g_conn = NULL;
    mmws_loop_free(loop);
}

/* 100 connect/close cycles: no fd growth (leaks: LSan at exit). */
static void reconnect_cycles(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.backoff_base_ms = 1;
    cfg.backoff_cap_ms = 1;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    int fds = th_fd_count();
    for (size_t i = 2; i <= 100; i++) {
        send_cmd(&fx, i % 2 ? "{\"cmd\":\"kill\"}"
                            : "{\"cmd\":\"close\",\"code\":1001,\"reason\":\"\"}");
        RUN_UNTIL(fx.loop, fx.s.subs == i);
        if (fx.s.subs != i) break;
    }
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_EQ(st.reconnects, 99);
    CHECK_EQ(th_fd_count(), fds);
out:
    fx_done(&fx);
}


/* Outbound budget, app heartbeat, BINARY drop, idle timeout, user close,
 * free inside the callback, several addresses, IPv6. */
static void budget_and_heartbeat(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.latency_ping_interval_ms = 0;
    cfg.max_msgs_per_sec = 4; /* SUB is the first of the second's four */
    cfg.deliver_binary = 0;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    int ok = 0, limited = 0;
    for (int i = 0; i < 6; i++) {
        int rc = mmws_conn_send_text(fx.conn, "m", 1);
        if (rc == 0) ok++;
        else if (rc == MMWS_ERATELIMIT) limited++;
    }
    /* At most 4 frames a second, SUB included (unless the one-second
     * window turned over since SUB went out: then 4 here). */
    CHECK(ok >= 1 && ok <= 4);
    CHECK(limited >= 2);
    CHECK_EQ(ok + limited, 6);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_EQ(st.rejected_rate, (uint64_t)limited);
    mmws_conn_free(fx.conn);
    fx.conn = NULL;

    /* App heartbeat: "hb" echoed back is an RTT sample, not a message. */
    memset(&fx.s, 0, sizeof fx.s);
    fx_config(&fx, &cfg);
    cfg.latency_ping_interval_ms = 0;
    cfg.app_ping_payload = "hb";
    cfg.app_pong_payload = "hb";
    cfg.app_ping_interval_ms = 20;
    cfg.deliver_binary = 0;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, mmws_conn_latency_ms(fx.conn) < 1000.0);
    CHECK(mmws_conn_latency_ms(fx.conn) > 0.0);
    /* BINARY is counted as dropped, not delivered, by default. */
    send_cmd(&fx, "{\"cmd\":\"send\",\"count\":2,\"size\":10,"
                  "\"binary\":true,\"fragment\":0}");
    RUN_UNTIL(fx.loop, (mmws_conn_stats_get(fx.conn, &st), st.dropped_binary == 2));
    CHECK_EQ(fx.s.msgs, 1); /* only SUB: no "hb", no BINARY */
out:
    fx_done(&fx);
}

static void idle_and_user_close(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.latency_ping_interval_ms = 0;
    cfg.idle_timeout_ms = 150;
    cfg.auto_reconnect = 0;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    send_cmd(&fx, "{\"cmd\":\"stall\"}");
    RUN_UNTIL(fx.loop, mmws_conn_phase(fx.conn) == MMWS_PHASE_CLOSED);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_RC(st.last_error_code, MMWS_EDEAD);
    CHECK(strstr(mmws_conn_last_error(fx.conn), "idle_timeout_ms") != NULL);
    mmws_conn_free(fx.conn);
    fx.conn = NULL;

    /* The user's close: handshake completes, no reconnect. */
    memset(&fx.s, 0, sizeof fx.s);
    fx_config(&fx, &cfg);
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    CHECK_RC(mmws_conn_close(fx.conn, 1000, "done"), 0);
    CHECK_RC(mmws_conn_send_text(fx.conn, "x", 1), MMWS_ENOTCONN);
    RUN_UNTIL(fx.loop, mmws_conn_phase(fx.conn) == MMWS_PHASE_CLOSED);
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_EQ(st.last_close_code, 1000);
    CHECK_EQ(st.last_error_code, 0);
    CHECK_EQ(st.reconnects, 0);
    CHECK_RC(mmws_conn_close(fx.conn, 999, NULL), MMWS_ECLOSECODE);
out:
    fx_done(&fx);
}

static int freed_in_cb;
static void free_on_message(void *user, const mmws_msg *m) {
    (void)m;
    mmws_conn_free(*(mmws_conn **)user);
    *(mmws_conn **)user = NULL;
    freed_in_cb++;
}

static void free_inside_callback(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    /* Several messages in one read: the free must stop the rest. */
    static const char *burst[] = {"a", "b", "c"};
    cfg.on_connect = burst;
    cfg.on_connect_count = 3;
    mmws_conn *c = NULL;
    freed_in_cb = 0;
    CHECK_RC(mmws_conn_new(fx.loop, &cfg, free_on_message, &c, &c), 0);
    RUN_UNTIL(fx.loop, freed_in_cb == 1);
    for (int i = 0; i < 20; i++) mmws_loop_run_once(fx.loop, 10);
    CHECK_EQ(freed_in_cb, 1);
    CHECK(c == NULL);
    fx_done(&fx);
}

static void addresses(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    /* 127.0.0.2 refuses (the server listens on 127.0.0.1 only): the next
     * address is tried within the same attempt. */
    cfg.resolve = "127.0.0.2,127.0.0.1";
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    CHECK_EQ(fx.s.down, 0);
    fx_done(&fx);

    /* IPv6 loopback. */
    char crt[300], key[300];
    memset(&fx, 0, sizeof fx);
    snprintf(crt, sizeof crt, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    snprintf(fx.ca, sizeof fx.ca, "%s/ca.pem", certs);
    if (th_server_start_host(&fx.srv, kind, NULL, crt, key, "::1") != 0) {
        CHECK_FAIL("server on ::1");
        return;
    }
    fx.loop = mmws_loop_new(NULL);
    snprintf(fx.url, sizeof fx.url, "wss://[::1]:%d/", fx.srv.port);
    fx_config(&fx, &cfg);
    cfg.resolve = NULL;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
out:
    fx_done(&fx);
}

/* A stalled peer: the send queue fills to its bound and refuses more. */
static void queue_bound(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.latency_ping_interval_ms = 0;
    cfg.idle_timeout_ms = 0;
    cfg.max_send_queue = 1u << 20;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    send_cmd(&fx, "{\"cmd\":\"stall\"}");
    size_t len = 256u << 10;
    uint8_t *buf = calloc(1, len);
    int rc = 0, sends = 0;
    /* The kernel's socket buffers take some first; bounded at 1 GiB. */
    while (sends < 4096 && (rc = mmws_conn_send_binary(fx.conn, buf, len)) == 0) {
        sends++;
        mmws_loop_run_once(fx.loop, 0);
    }
    CHECK_RC(rc, MMWS_EQUEUEFULL);
    mmws_conn_stats st;
    mmws_conn_stats_get(fx.conn, &st);
    CHECK_EQ(st.rejected_queue, 1);
    CHECK(st.send_queue_bytes <= cfg.max_send_queue);
    CHECK_EQ(mmws_conn_state(fx.conn), MMWS_CONNECTED);
    free(buf);
out:
    fx_done(&fx);
}

/* set_on_connect replaces what later reconnects send; backoff resets after
 * a connection that stayed up for backoff_reset_ms. */
static void replay_and_reset(const char *kind) {
    fixture fx;
    mmws_conn_config cfg;
    if (fx_server(&fx, kind, NULL, "server")) return;
    fx_config(&fx, &cfg);
    cfg.backoff_base_ms = 1;
    cfg.backoff_cap_ms = 64;
    cfg.backoff_reset_ms = 1;
    if (fx_connect(&fx, &cfg)) goto out;
    RUN_UNTIL(fx.loop, fx.s.subs == 1);
    static const char *next[] = {"NEW"};
    CHECK_RC(mmws_conn_set_on_connect(fx.conn, next, 1), 0);
    for (int round = 0; round < 3; round++) {
        /* Stay up past backoff_reset_ms before the fault. */
        uint64_t until = mmws_now_ns() + 5000000ull;
        while (mmws_now_ns() < until) mmws_loop_run_once(fx.loop, 1);
        send_cmd(&fx, "{\"cmd\":\"kill\"}");
        size_t msgs = fx.s.msgs;
        RUN_UNTIL(fx.loop, fx.s.msgs > msgs && strcmp(fx.s.last_text, "NEW") == 0);
    }
    CHECK_EQ(fx.s.subs, 1);
    CHECK_EQ(fx.s.ncaps, 3);
    for (size_t i = 0; i < fx.s.ncaps; i++) CHECK_EQ(fx.s.caps[i], 1);
out:
    fx_done(&fx);
}

static void config_errors(void) {
    mmws_conn_config cfg;
    char err[256];
    mmws_conn_config_default(&cfg, "http://x");
    CHECK_RC(mmws_conn_config_validate(&cfg, err, sizeof err), MMWS_EURL_SCHEME);
    CHECK_STR(err, "wss_url must start with wss:// (got \"http://x\")");
    mmws_conn_config_default(&cfg, "ws://x");
    CHECK_RC(mmws_conn_config_validate(&cfg, err, sizeof err),
             MMWS_EURL_PLAINTEXT);
    mmws_conn_config_default(&cfg, "wss://x");
    cfg.max_frame_size = 0;
    CHECK_RC(mmws_conn_config_validate(&cfg, err, sizeof err), MMWS_ECONFIG);
    CHECK(strstr(err, "max_frame_size") != NULL);
    mmws_conn_config_default(&cfg, "wss://x");
    cfg.backoff_cap_ms = 1;
    CHECK_RC(mmws_conn_config_validate(&cfg, err, sizeof err), MMWS_ECONFIG);
    CHECK(strstr(err, "backoff_cap_ms") != NULL);
    mmws_conn_config_default(&cfg, "wss://x");
    mmws_header h = {"X-Evil", "a\r\nInjected: 1"};
    cfg.headers = &h;
    cfg.header_count = 1;
    CHECK_RC(mmws_conn_config_validate(&cfg, err, sizeof err), MMWS_ECONFIG);
    CHECK(strstr(err, "headers") != NULL);
    mmws_conn_config_default(&cfg, "wss://x");
    cfg.resolve = "not-an-ip";
    CHECK_RC(mmws_conn_config_validate(&cfg, err, sizeof err), MMWS_ECONFIG);
    mmws_conn_config_default(&cfg, "wss://x");
    cfg.tls_ca_file = "/nonexistent/ca.pem";
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn *c = NULL;
    seen s;
    memset(&s, 0, sizeof s);
    CHECK_RC(mmws_conn_new(loop, &cfg, on_msg, &s, &c), MMWS_ECONFIG);
    CHECK(strstr(mmws_last_error(), "/nonexistent/ca.pem") != NULL);
    CHECK(c == NULL);
    mmws_conn_config_default(&cfg, "ftp://x");
    CHECK_RC(mmws_conn_new(loop, &cfg, on_msg, &s, &c), MMWS_EURL_SCHEME);
    CHECK(strstr(mmws_last_error(), "wss_url must start with wss://") != NULL);
    mmws_loop_free(loop);
}

static const char *kinds[] = {"node", "python"};

#define EACH_KIND(fn)                                                      \
    static void fn##_all(void) {                                           \
        for (size_t k = 0; k < 2; k++) fn(kinds[k]);                       \
    }
EACH_KIND(tls_verified_echo)
EACH_KIND(tls_failures)
EACH_KIND(sizes)
EACH_KIND(too_big)
EACH_KIND(ping_rtt)
EACH_KIND(faults)
EACH_KIND(server_close_code)
EACH_KIND(no_upgrade)
EACH_KIND(status_429)
EACH_KIND(reconnect_cycles)
EACH_KIND(budget_and_heartbeat)
EACH_KIND(idle_and_user_close)
EACH_KIND(free_inside_callback)
EACH_KIND(addresses)
EACH_KIND(queue_bound)
EACH_KIND(replay_and_reset)

int main(void) {
    char why[256];
    for (size_t k = 0; k < 2; k++)
        if (!th_servers_available(kinds[k], why, sizeof why)) {
            printf("test_conn: %s server unavailable: %s\n", kinds[k], why);
            return getenv("MMWS_ALLOW_SKIP") ? 0 : 1;
        }
    if (th_certs(certs, sizeof certs) != 0) return 1;
    RUN(config_errors);
    RUN(tls_verified_echo_all);
    RUN(tls_failures_all);
    RUN(sizes_all);
    RUN(too_big_all);
    RUN(ping_rtt_all);
    RUN(server_close_code_all);
    RUN(faults_all);
    RUN(no_upgrade_all);
    RUN(status_429_all);
    RUN(refused_backoff);
    RUN(dns_failure);
    RUN(reconnect_cycles_all);
    RUN(budget_and_heartbeat_all);
    RUN(idle_and_user_close_all);
    RUN(free_inside_callback_all);
    RUN(addresses_all);
    RUN(queue_bound_all);
    RUN(replay_and_reset_all);
    th_certs_remove(certs);
    return TEST_END("test_conn");
}
