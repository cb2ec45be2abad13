/*
 * test_single.c — mmws_single against the Node and Python test servers:
 * callback mode, pull iteration, and a reconnect while the consumer is
 * iterating (the on_connect payload is replayed and iteration goes on).
 */
#include "harness.h"
#include "test.h"

static char certs[256];

static size_t cb_count;
static void on_message(void *user, const mmws_msg *m) {
    (void)user;
    (void)m;
    cb_count++;
}

static void config(mmws_conn_config *cfg, char *url, size_t len, int port,
                   char *ca, size_t ca_len) {
    static const char *subs[] = {"SUB"};
    snprintf(url, len, "wss://localhost:%d/", port);
    snprintf(ca, ca_len, "%s/ca.pem", certs);
    mmws_conn_config_default(cfg, url);
    cfg->tls_ca_file = ca;
    cfg->resolve = "127.0.0.1";
    cfg->on_connect = subs;
    cfg->on_connect_count = 1;
    cfg->backoff_base_ms = 1;
    cfg->backoff_cap_ms = 10;
}

static void against(const char *kind) {
    th_server srv;
    char crt[300], key[300], url[128], ca[300];
    snprintf(crt, sizeof crt, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    if (th_server_start(&srv, kind, NULL, crt, key) != 0) {
        CHECK_FAIL("server start");
        return;
    }
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    config(&cfg, url, sizeof url, srv.port, ca, sizeof ca);

    /* Callback mode. */
    mmws_single *s = NULL;
    cb_count = 0;
    CHECK_RC(mmws_single_new(loop, &cfg, NULL, on_message, NULL, &s), 0);
    uint64_t end = mmws_now_ns() + 15000000000ull;
    while (cb_count < 1 && mmws_now_ns() < end) mmws_loop_run_once(loop, 50);
    CHECK_EQ(cb_count, 1);
    CHECK_EQ(mmws_single_get_state(s), MMWS_CONNECTED);
    CHECK_STR(mmws_single_get_config(s)->wss_url, url);
    mmws_msg m;
    CHECK_RC(mmws_single_next(s, &m, 0), MMWS_ESTATE);
    mmws_single_free(s);

    /* Iteration mode, with a reconnect while iterating. */
    CHECK_RC(mmws_single_new(loop, &cfg, NULL, NULL, NULL, &s), 0);
    CHECK_RC(mmws_single_next(s, &m, 15000), 0);
    CHECK_MEM(m.data, m.len, "SUB", 3);
    CHECK_RC(mmws_single_send_data(s, "one", 3), 0);
    CHECK_RC(mmws_single_next(s, &m, 15000), 0);
    CHECK_MEM(m.data, m.len, "one", 3);
    CHECK_RC(mmws_single_send_data(s, "#{\"cmd\":\"kill\"}", 15), 0);
    CHECK_RC(mmws_single_next(s, &m, 15000), 0); /* replayed after reconnect */
    CHECK_MEM(m.data, m.len, "SUB", 3);
    mmws_conn_stats st;
    mmws_conn_stats_get(mmws_single_conn(s), &st);
    CHECK_EQ(st.reconnects, 1);
    static const char *next[] = {"NEXT"};
    CHECK_RC(mmws_single_set_on_connect(s, next, 1), 0);
    static const char close_cmd[] =
        "#{\"cmd\":\"close\",\"code\":1001,\"reason\":\"\"}";
    CHECK_RC(mmws_single_send_data(s, close_cmd, sizeof close_cmd - 1), 0);
    CHECK_RC(mmws_single_next(s, &m, 15000), 0);
    CHECK_MEM(m.data, m.len, "NEXT", 4);
    CHECK_RC(mmws_single_next(s, &m, 20), MMWS_ETIMEDOUT);
    CHECK_RC(mmws_single_close(s), 0);
    CHECK_RC(mmws_single_next(s, &m, 15000), MMWS_ESTATE);
    CHECK_RC(mmws_single_send_data(s, "x", 1), MMWS_ENOTCONN);
    mmws_single_free(s);

    /* Bad config: a clear error, nothing created. */
    cfg.wss_url = "http://x";
    s = NULL;
    CHECK_RC(mmws_single_new(loop, &cfg, NULL, NULL, NULL, &s), MMWS_EURL_SCHEME);
    CHECK(s == NULL);
    CHECK(strstr(mmws_last_error(), "wss_url must start with wss://") != NULL);

    mmws_loop_free(loop);
    th_server_stop(&srv);
}

static void node(void) { against("node"); }
static void python(void) { against("python"); }

int main(void) {
    if (th_require_servers("node") <= 0 || th_require_servers("python") <= 0)
        return getenv("MMWS_ALLOW_SKIP") ? 0 : 1;
    if (th_certs(certs, sizeof certs) != 0) return 1;
    RUN(node);
    RUN(python);
    th_certs_remove(certs);
    return TEST_END("test_single");
}
