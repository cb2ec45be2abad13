/*
 * mmws-bench-echo URL SIZE SECONDS [CAFILE] — the mmws client of the echo
 * benchmark (bench/echo, scripts/bench-echo.sh): sends a BINARY message of
 * SIZE bytes, waits for its echo, sends the next, for SECONDS after the
 * connection opens; prints the round trips per second as its last line.
 * Built on the public API only, with the settings a latency-sensitive user
 * would pick: no latency pings (they would share the link with the
 * measured traffic) and the default (sleeping) loop, since server and
 * client share one core in the benchmark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mmws/mmws.h>

typedef struct bench {
    mmws_conn *conn;
    uint8_t *msg;
    size_t size;
    uint64_t trips, start_ns, end_ns;
    int failed, done;
} bench;

static void on_message(void *user, const mmws_msg *m) {
    bench *b = user;
    if (m->len != b->size) {
        fprintf(stderr, "mmws-bench-echo: echo of %zu bytes, sent %zu\n",
                m->len, b->size);
        b->failed = b->done = 1;
        return;
    }
    b->trips++;
    if (m->recv_ns >= b->end_ns) {
        b->end_ns = m->recv_ns;
        b->done = 1;
        return;
    }
    int rc = mmws_conn_send_binary(b->conn, b->msg, b->size);
    if (rc) {
        fprintf(stderr, "mmws-bench-echo: send: %s\n", mmws_strerror(rc));
        b->failed = b->done = 1;
    }
}

static void on_state(void *user, mmws_conn *c, mmws_state from,
                     mmws_state to) {
    bench *b = user;
    (void)from;
    if (to == MMWS_CONNECTED) {
        b->start_ns = mmws_now_ns();
        b->end_ns += b->start_ns;
        int rc = mmws_conn_send_binary(c, b->msg, b->size);
        if (rc) {
            fprintf(stderr, "mmws-bench-echo: send: %s\n", mmws_strerror(rc));
            b->failed = b->done = 1;
        }
    } else if (to == MMWS_DISCONNECTED) {
        fprintf(stderr, "mmws-bench-echo: %s\n", mmws_conn_last_error(c));
        b->failed = b->done = 1;
    }
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: mmws-bench-echo URL SIZE SECONDS [CAFILE]\n");
        return 2;
    }
    bench b = {0};
    b.size = (size_t)strtoull(argv[2], NULL, 10);
    double secs = strtod(argv[3], NULL);
    if (b.size == 0 || secs <= 0) {
        fprintf(stderr, "mmws-bench-echo: SIZE and SECONDS must be > 0\n");
        return 2;
    }
    b.end_ns = (uint64_t)(secs * 1e9);
    b.msg = malloc(b.size);
    for (size_t i = 0; i < b.size; i++) b.msg[i] = (uint8_t)(i * 7);

    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, argv[1]);
    cfg.allow_plaintext = strncasecmp(argv[1], "ws://", 5) == 0;
    cfg.auto_reconnect = 0;
    cfg.deliver_binary = 1;
    cfg.latency_ping_interval_ms = 0;
    cfg.idle_timeout_ms = 0;
    cfg.max_frame_size = b.size > (1u << 20) ? b.size : (1u << 20);
    if (argc == 5) cfg.tls_ca_file = argv[4];

    mmws_loop *loop = mmws_loop_new(NULL);
    if (!loop || mmws_conn_new(loop, &cfg, on_message, &b, &b.conn) != 0) {
        fprintf(stderr, "mmws-bench-echo: %s\n", mmws_last_error());
        return 1;
    }
    mmws_conn_set_on_state(b.conn, on_state, &b);
    while (!b.done) mmws_loop_run_once(loop, -1);
    mmws_conn_set_on_state(b.conn, NULL, NULL);
    mmws_conn_free(b.conn);
    mmws_loop_free(loop);
    free(b.msg);
    if (b.failed) return 1;
    printf("%.0f\n", (double)b.trips / ((double)(b.end_ns - b.start_ns) / 1e9));
    return 0;
}
