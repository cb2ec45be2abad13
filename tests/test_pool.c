/*
 * test_pool.c — mmws_pool against the exchange simulator (tools/mmws-sim):
 * every update id delivered exactly once, in order, with connections
 * killed under it; duplicates counted; routed sends reach the best-scored
 * connection; broadcasts reach all; eviction and rotation never lower the
 * number of live connections; the connection budget holds; config errors
 * are clear. Waits are bounded only so a failure cannot hang.
 */
#include <openssl/ssl.h>

#include "dns_responder.h"
#include "harness.h"
#include "sim.h"
#include "test.h"

static char certs[256];

/* The library's SSL_CTX_new calls (linked with --wrap, see CMakeLists):
 * a pool builds one TLS context for all its connections. */
SSL_CTX *__real_SSL_CTX_new(const SSL_METHOD *m);
SSL_CTX *__wrap_SSL_CTX_new(const SSL_METHOD *m);
static unsigned long ssl_ctx_news;
SSL_CTX *__wrap_SSL_CTX_new(const SSL_METHOD *m) {
    ssl_ctx_news++;
    return __real_SSL_CTX_new(m);
}

/* Starts the simulator over wss:// with the test PKI and extra args
 * (a space-separated string, split here). */
static int start_sim(simproc *sp, const char *extra) {
    static char buf[512];
    const char *argv[24];
    char crt[300], key[300];
    size_t n = 0;
    snprintf(crt, sizeof crt, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    argv[n++] = "--tls";
    argv[n++] = crt;
    argv[n++] = key;
    snprintf(buf, sizeof buf, "%s", extra);
    for (char *t = strtok(buf, " "); t && n < 23; t = strtok(NULL, " "))
        argv[n++] = t;
    argv[n] = NULL;
    return sim_start(sp, argv);
}

/* One control command; the reply (up to "end") in out. */
static int sim_cmd(const simproc *sp, const char *cmd, char *out, size_t cap) {
    return ctl(sp, cmd, out, cap);
}

/* What the pool delivered, checked as it arrives. */
typedef struct watch {
    uint64_t next_u;     /* the id expected next (0: none seen yet) */
    uint64_t delivered, gaps, out_of_order;
} watch;

static void on_message(void *user, const mmws_msg *m) {
    watch *w = user;
    const char *p = memmem(m->data, m->len, "\"u\":", 4);
    if (!p) return; /* subscribe acks and the like */
    uint64_t u = strtoull(p + 4, NULL, 10);
    if (w->next_u && u != w->next_u) {
        if (u > w->next_u) w->gaps += u - w->next_u;
        else w->out_of_order++;
    }
    w->next_u = u + 1;
    w->delivered++;
}

static void pool_cfg(mmws_conn_config *cfg, mmws_pool_config *pc, char *url,
                     size_t len, char *ca, size_t ca_len, int port) {
    static const char *subs[] = {
        "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@bookTicker\"],\"id\":1}"};
    snprintf(url, len, "wss://localhost:%d/ws/btcusdt@bookTicker", port);
    snprintf(ca, ca_len, "%s/ca.pem", certs);
    mmws_conn_config_default(cfg, url);
    cfg->tls_ca_file = ca;
    cfg->resolve = "127.0.0.1";
    cfg->on_connect = subs;
    cfg->on_connect_count = 1;
    cfg->latency_ping_interval_ms = 100;
    mmws_pool_config_default(pc);
    pc->replace_base_ms = 5;
    pc->replace_cap_ms = 50;
}

#define RUN_LOOP_UNTIL(loop, cond, each)                                  \
    do {                                                                  \
        uint64_t t_end_ = mmws_now_ns() + 30000000000ull;                 \
        while (!(cond) && mmws_now_ns() < t_end_) {                       \
            mmws_loop_run_once((loop), 20);                               \
            each;                                                         \
        }                                                                 \
        t_checks++;                                                       \
        if (!(cond)) {                                                    \
            t_failed++;                                                   \
            T_FAIL_HDR();                                                 \
            fprintf(stderr, "timed out waiting for %s\n", #cond);        \
        }                                                                 \
    } while (0)

/* A few thousand messages with random connections killed (never all):
 * every id once, in order. Then routing and broadcast. */
static void exactly_once_under_faults(void) {
    simproc s;
    if (start_sim(&s, "--rate 2000 --profiles 0:0,1500:300,3000:300,4500:300,6000:300") != 0) {
        CHECK_FAIL("mmws-sim start");
        return;
    }
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    mmws_pool_config pc;
    char url[128], ca[300], out[65536];
    pool_cfg(&cfg, &pc, url, sizeof url, ca, sizeof ca, s.port);
    watch w = {0};
    mmws_pool *p = NULL;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, on_message, &w, &p), 0);
    if (!p) goto out;
    RUN_LOOP_UNTIL(loop, mmws_pool_connected_count(p) == 5, (void)0);
    uint64_t kills = 0, next_kill = 400;
    RUN_LOOP_UNTIL(loop, w.delivered >= 4000, {
        if (w.delivered >= next_kill && mmws_pool_connected_count(p) >= 3) {
            sim_cmd(&s, "kill random", out, sizeof out);
            if (strncmp(out, "ok", 2) == 0) kills++;
            next_kill += 400;
        }
    });
    mmws_pool_stats st;
    RUN_LOOP_UNTIL(loop, (mmws_pool_stats_get(p, &st),
                          mmws_pool_connected_count(p) == 5 &&
                              st.replacements >= kills),
                   (void)0);
    printf("  delivered=%llu duplicates=%llu kills=%llu replacements=%llu\n",
           (unsigned long long)w.delivered, (unsigned long long)st.duplicates,
           (unsigned long long)kills, (unsigned long long)st.replacements);
    CHECK_EQ(w.gaps, 0);
    CHECK_EQ(w.out_of_order, 0);
    CHECK(kills >= 5);
    CHECK(st.duplicates > w.delivered); /* 4 extra copies of most */
    CHECK(st.replacements >= kills);
    CHECK(st.delivered >= w.delivered); /* plus subscribe acks */

    /* Routing: let scores settle with all five up, then the best-scored
     * connection must be the simulator's fastest (delay 0). */
    RUN_LOOP_UNTIL(loop, mmws_pool_connected_count(p) == 5, (void)0);
    uint64_t settle = w.delivered + 1000;
    RUN_LOOP_UNTIL(loop, w.delivered >= settle, (void)0);
    CHECK_RC(mmws_pool_send_data(p, "ROUTED-1", 8, 1), 0);
    CHECK_RC(mmws_pool_send_data(p, "ALL-1", 5, 0), 0);
    settle = w.delivered + 200;
    RUN_LOOP_UNTIL(loop, w.delivered >= settle, (void)0);
    sim_cmd(&s, "list", out, sizeof out);
    /* For each live connection: its delay and whether it got each send. */
    int routed = 0, routed_fastest = 0, all = 0, live = 0, min_delay = 1 << 30;
    char *save = NULL;
    char listing[65536];
    snprintf(listing, sizeof listing, "%s", out);
    for (char *line = strtok_r(listing, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int id, delay;
        if (sscanf(line, "conn %d", &id) != 1) continue;
        char *d = strstr(line, "delay_us=");
        delay = d ? atoi(d + 9) : -1;
        if (delay < min_delay) min_delay = delay;
    }
    snprintf(listing, sizeof listing, "%s", out);
    for (char *line = strtok_r(listing, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int id;
        if (sscanf(line, "conn %d", &id) != 1) continue;
        char *d = strstr(line, "delay_us=");
        int delay = d ? atoi(d + 9) : -1;
        char cmd[64], rec[65536];
        snprintf(cmd, sizeof cmd, "received %d", id);
        sim_cmd(&s, cmd, rec, sizeof rec);
        live++;
        if (strstr(rec, "ROUTED-1")) {
            routed++;
            if (delay == min_delay) routed_fastest = 1;
        }
        if (strstr(rec, "ALL-1")) all++;
    }
    CHECK_EQ(routed, 1);
    CHECK(routed_fastest);
    CHECK_EQ(all, live);
    CHECK(live >= 5);

    /* Per-connection view and scores. */
    mmws_pool_conn_info info;
    double best = 1e9;
    for (size_t i = 0; i < mmws_pool_size(p); i++) {
        CHECK_RC(mmws_pool_conn_info_get(p, i, &info), 0);
        CHECK(info.score_ms >= 0.0);
        if (info.state == MMWS_CONNECTED && info.score_ms < best)
            best = info.score_ms;
    }
    CHECK(best < 1000.0);
    CHECK_RC(mmws_pool_conn_info_get(p, 999, &info), MMWS_EINVAL);
    mmws_pool_free(p);
out:
    mmws_loop_free(loop);
    sim_stop(&s);
}

/* Eviction and rotation: replacements come up before victims go, so the
 * live count never drops below num_connections once reached. */
static void evict_and_rotate(void) {
    simproc s;
    if (start_sim(&s, "--rate 1000 --profiles 0:0,500:100,1000:100,8000:100,9000:100") != 0) {
        CHECK_FAIL("mmws-sim start");
        return;
    }
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    mmws_pool_config pc;
    char url[128], ca[300];
    pool_cfg(&cfg, &pc, url, sizeof url, ca, sizeof ca, s.port);
    pc.evict_interval_s = 1;
    pc.max_connection_age_s = 2;
    watch w = {0};
    mmws_pool *p = NULL;
    unsigned long ctx_before = ssl_ctx_news;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, on_message, &w, &p), 0);
    if (!p) goto out;
    RUN_LOOP_UNTIL(loop, mmws_pool_connected_count(p) == 5, (void)0);
    size_t min_live = 5;
    mmws_pool_stats st = {0};
    RUN_LOOP_UNTIL(loop, (mmws_pool_stats_get(p, &st),
                          st.evictions >= 2 && st.rotations >= 1 &&
                              w.delivered >= 3000),
                   {
                       size_t n = mmws_pool_connected_count(p);
                       if (n < min_live) min_live = n;
                   });
    printf("  delivered=%llu evictions=%llu rotations=%llu min_live=%zu\n",
           (unsigned long long)w.delivered, (unsigned long long)st.evictions,
           (unsigned long long)st.rotations, min_live);
    CHECK_EQ(min_live, 5);
    CHECK_EQ(w.gaps, 0);
    CHECK_EQ(w.out_of_order, 0);
    /* Every connection (first five, replacements, rotations) shared one
     * TLS context: no handshake failed here, so none was rebuilt. */
    printf("  connections=%llu tls_contexts=%lu\n",
           (unsigned long long)st.attempts, ssl_ctx_news - ctx_before);
    CHECK(st.attempts > 5);
    CHECK_EQ(ssl_ctx_news - ctx_before, 1);
    mmws_pool_free(p);
out:
    mmws_loop_free(loop);
    sim_stop(&s);
}

/* The budget: 6 attempts allowed; after two kills the second replacement
 * must wait (budget_denied) and the pool stays within 6. */
static void budget_holds(void) {
    simproc s;
    char out[4096];
    if (start_sim(&s, "--rate 200") != 0) {
        CHECK_FAIL("mmws-sim start");
        return;
    }
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    mmws_pool_config pc;
    char url[128], ca[300];
    pool_cfg(&cfg, &pc, url, sizeof url, ca, sizeof ca, s.port);
    pc.max_new_connections = 6;
    pc.budget_window_s = 3600;
    watch w = {0};
    mmws_pool *p = NULL;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, on_message, &w, &p), 0);
    if (!p) goto out;
    RUN_LOOP_UNTIL(loop, mmws_pool_connected_count(p) == 5, (void)0);
    sim_cmd(&s, "kill random", out, sizeof out);
    mmws_pool_stats st0 = {0};
    RUN_LOOP_UNTIL(loop, (mmws_pool_stats_get(p, &st0),
                          st0.replacements == 1 &&
                              mmws_pool_connected_count(p) == 5),
                   (void)0);
    sim_cmd(&s, "kill random", out, sizeof out);
    mmws_pool_stats st = {0};
    RUN_LOOP_UNTIL(loop, (mmws_pool_stats_get(p, &st), st.budget_denied >= 1 &&
                          mmws_pool_connected_count(p) == 4),
                   (void)0);
    if (mmws_pool_connected_count(p) != 4) {
        sim_cmd(&s, "list", out, sizeof out);
        fprintf(stderr, "sim list:\n%s", out);
    }
    CHECK_EQ(st.attempts, 6);
    CHECK_EQ(mmws_pool_connected_count(p), 4);
    /* Sends still work over the four. */
    CHECK_RC(mmws_pool_send_data(p, "x", 1, 1), 0);
    mmws_pool_free(p);
out:
    mmws_loop_free(loop);
    sim_stop(&s);
}

/* Copies the file from to to; 0 or -1. */
static int copy_file(const char *from, const char *to) {
    char buf[8192];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int rc = in && out ? 0 : -1;
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc;
}

/*
 * The pool's shared TLS context is dropped when a handshake fails before
 * any has succeeded with it: here the CA file trusts another CA at first
 * ("unknown ca", as when OpenSSL loses the CA to a failed allocation), then
 * is fixed on disk; the next connections build a fresh context and the
 * pool comes up. Kept for ever, the first context would fail every
 * handshake (found by test_alloc's OpenSSL sweep of the pool).
 */
static void shared_tls_context_rebuilt(void) {
    simproc s;
    char other[256], live[300], good[300], wrong[300];
    if (th_certs(other, sizeof other) != 0) {
        CHECK_FAIL("second PKI");
        return;
    }
    snprintf(live, sizeof live, "%s/ca-live.pem", other);
    snprintf(good, sizeof good, "%s/ca.pem", certs);
    snprintf(wrong, sizeof wrong, "%s/ca.pem", other);
    CHECK_RC(copy_file(wrong, live), 0);
    if (start_sim(&s, "--rate 1000 --profiles 0:0,100:50") != 0) {
        CHECK_FAIL("mmws-sim start");
        th_certs_remove(other);
        return;
    }
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    mmws_pool_config pc;
    char url[128], ca[300];
    pool_cfg(&cfg, &pc, url, sizeof url, ca, sizeof ca, s.port);
    cfg.tls_ca_file = live;
    pc.num_connections = 2;
    watch w = {0};
    mmws_pool *p = NULL;
    unsigned long ctx_before = ssl_ctx_news;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, on_message, &w, &p), 0);
    if (p) {
        mmws_pool_stats st = {0};
        RUN_LOOP_UNTIL(loop, (mmws_pool_stats_get(p, &st), st.attempts >= 6),
                       (void)0);
        CHECK_EQ(mmws_pool_connected_count(p), 0);
        CHECK_EQ(w.delivered, 0);
        CHECK_RC(copy_file(good, live), 0);
        RUN_LOOP_UNTIL(loop, mmws_pool_connected_count(p) == 2 &&
                                 w.delivered >= 100, (void)0);
        CHECK_EQ(w.gaps, 0);
        printf("  attempts before the fix on disk >= 6, contexts built %lu\n",
               ssl_ctx_news - ctx_before);
        CHECK(ssl_ctx_news - ctx_before > 1);
        mmws_pool_free(p);
    }
    mmws_loop_free(loop);
    sim_stop(&s);
    th_certs_remove(other);
}

/* The venue's update id as the dedup key (exact and cheaper than a hash). */
static uint64_t key_by_u(void *user, const uint8_t *data, size_t len) {
    (*(uint64_t *)user)++;
    const char *p = memmem(data, len, "\"u\":", 4);
    return p ? strtoull(p + 4, NULL, 10) : mmws_hash64(data, len);
}

static void key_function_and_no_connection(void) {
    simproc s;
    if (start_sim(&s, "--rate 1000 --profiles 0:0,1000:200") != 0) {
        CHECK_FAIL("mmws-sim start");
        return;
    }
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    mmws_pool_config pc;
    char url[128], ca[300];
    pool_cfg(&cfg, &pc, url, sizeof url, ca, sizeof ca, s.port);
    uint64_t calls = 0;
    pc.num_connections = 2;
    pc.key_fn = key_by_u;
    pc.key_user = &calls;
    watch w = {0};
    mmws_pool *p = NULL;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, on_message, &w, &p), 0);
    if (p) {
        mmws_pool_stats st = {0};
        RUN_LOOP_UNTIL(loop, w.delivered >= 500, (void)0);
        mmws_pool_stats_get(p, &st);
        CHECK_EQ(w.gaps, 0);
        CHECK(st.duplicates > 0);
        CHECK_EQ(calls, st.delivered + st.duplicates + st.held);
        mmws_pool_free(p);
    }
    sim_stop(&s);

    /* Nothing to connect to: sends are refused, never lost silently. */
    cfg.resolve = "127.0.0.1";
    snprintf(url, sizeof url, "ws://127.0.0.1:1/");
    cfg.wss_url = url;
    cfg.allow_plaintext = 1;
    pc.key_fn = NULL;
    p = NULL;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, on_message, &w, &p), 0);
    if (p) {
        for (int i = 0; i < 10; i++) mmws_loop_run_once(loop, 10);
        CHECK_RC(mmws_pool_send_data(p, "x", 1, 1), MMWS_ENOTCONN);
        CHECK_RC(mmws_pool_send_data(p, "x", 1, 0), MMWS_ENOTCONN);
        CHECK_EQ(mmws_pool_get_state(p) == MMWS_CONNECTED, 0);
        mmws_pool_free(p);
    }
    mmws_loop_free(loop);
}

/* The pool resolves the host once and spreads its connections over every
 * address (DNS answered on loopback by tests/dns_responder.h: many.test is
 * 127.0.0.1, .2 and .3; the simulator listens on .1 only, so a connection
 * spread to .2 or .3 falls back to .1 after a refusal). */
static void dns_spread(void) {
    simproc s;
    if (start_sim(&s, "--rate 500") != 0) {
        CHECK_FAIL("mmws-sim start");
        return;
    }
    server_start();
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    mmws_pool_config pc;
    char url[128], ca[300];
    pool_cfg(&cfg, &pc, url, sizeof url, ca, sizeof ca, s.port);
    snprintf(url, sizeof url, "wss://many.test:%d/ws", s.port);
    cfg.wss_url = url;
    cfg.resolve = NULL;
    cfg.dns_servers = srv.servers;
    cfg.tls_verify = 0; /* the test certificate does not name many.test */
    pc.num_connections = 3;
    watch w = {0};
    mmws_pool *p = NULL;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, on_message, &w, &p), 0);
    if (p) {
        RUN_LOOP_UNTIL(loop, mmws_pool_connected_count(p) == 3 &&
                                 w.delivered >= 200, (void)0);
        int seen[4] = {0};
        for (size_t i = 0; i < mmws_pool_size(p); i++) {
            mmws_pool_conn_info ci;
            if (mmws_pool_conn_info_get(p, i, &ci)) continue;
            if (!strcmp(ci.addr, "127.0.0.1")) seen[1]++;
            if (!strcmp(ci.addr, "127.0.0.2")) seen[2]++;
            if (!strcmp(ci.addr, "127.0.0.3")) seen[3]++;
        }
        CHECK_EQ(seen[1], 1);
        CHECK_EQ(seen[2], 1);
        CHECK_EQ(seen[3], 1);
        CHECK_EQ(w.gaps, 0);
        CHECK(atomic_load(&srv.queries) >= 1);
        mmws_pool_free(p);
    }
    mmws_loop_free(loop);
    server_stop();
    sim_stop(&s);
}

static void config_errors(void) {
    mmws_pool_config pc;
    char err[160];
    mmws_pool_config_default(&pc);
    CHECK_EQ(pc.num_connections, 5);
    CHECK_EQ(pc.evict_interval_s, 60);
    CHECK_EQ(pc.hash_capacity, 16384);
    pc.num_connections = 1;
    CHECK_RC(mmws_pool_config_validate(&pc, err, sizeof err), MMWS_ECONFIG);
    CHECK_STR(err, "num_connections must be 2..64 (got 1)");
    mmws_pool_config_default(&pc);
    pc.evict_interval_s = 0;
    CHECK_RC(mmws_pool_config_validate(&pc, err, sizeof err), MMWS_ECONFIG);
    CHECK(strstr(err, "evict_interval_s") != NULL);
    mmws_pool_config_default(&pc);
    pc.hash_capacity = 0;
    CHECK_RC(mmws_pool_config_validate(&pc, err, sizeof err), MMWS_ECONFIG);
    CHECK(strstr(err, "hash_capacity") != NULL);
    mmws_pool_config_default(&pc);
    CHECK_EQ(pc.join_hold_max, 4096);
    pc.join_hold_max = 0;
    CHECK_RC(mmws_pool_config_validate(&pc, err, sizeof err), MMWS_ECONFIG);
    CHECK_STR(err, "join_hold_max must be 1..1048576 (got 0)");
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, "wss://x");
    mmws_pool *p = NULL;
    pc.hash_capacity = 16384;
    pc.num_connections = 0;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, on_message, NULL, &p), MMWS_ECONFIG);
    CHECK(strstr(mmws_last_error(), "num_connections") != NULL);
    CHECK(p == NULL);
    mmws_loop_free(loop);
}

int main(void) {
    if (th_certs(certs, sizeof certs) != 0) return 1;
    RUN(config_errors);
    RUN(exactly_once_under_faults);
    RUN(evict_and_rotate);
    RUN(budget_holds);
    RUN(key_function_and_no_connection);
    RUN(dns_spread);
    RUN(shared_tls_context_rebuilt);
    th_certs_remove(certs);
    return TEST_END("test_pool");
}
