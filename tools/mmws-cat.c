/*
 * mmws-cat — a small WebSocket command-line client on mmws's public API,
 * like websocat: prints each message on its own line.
 *
 *   mmws-cat [options] URL
 *     --send MSG        send MSG (TEXT) on connect; repeatable, in order
 *     --count N         exit 0 after N messages
 *     --seconds S       exit 0 after S seconds
 *     --echo            send every message back unchanged; exit 0 when the
 *                       server closes cleanly
 *     --max-size BYTES  largest message accepted (default 1 MiB)
 *     --ca FILE         trust FILE's CAs instead of the system store
 *     --insecure        do not verify the server's certificate
 *     --binary          also print BINARY messages (raw bytes)
 *     --resolve ADDRS   connect to these addresses instead of DNS
 *   A ws:// URL allows plaintext. Exit codes: 0 done, 1 connection or
 *   protocol failure, 2 bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mmws/mmws.h>

typedef struct cat {
    mmws_loop *loop;
    mmws_conn *conn;
    int echo;
    uint64_t count, seen;
    int done, rc;
} cat;

static void usage(void) {
    fprintf(stderr,
            "usage: mmws-cat [--send MSG]... [--count N] [--seconds S] "
            "[--echo]\n"
            "                [--max-size BYTES] [--ca FILE] [--insecure] "
            "[--binary]\n"
            "                [--resolve ADDR[,ADDR]] URL\n");
}

static void on_message(void *user, const mmws_msg *m) {
    cat *c = user;
    /* One read can carry many messages: nothing after the count. */
    if (c->done) return;
    fwrite(m->data, 1, m->len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (c->echo) {
        int rc = m->opcode == MMWS_OP_BINARY
                     ? mmws_conn_send_binary(c->conn, m->data, m->len)
                     : mmws_conn_send_text(c->conn, m->data, m->len);
        if (rc) {
            fprintf(stderr, "mmws-cat: echo failed: %s\n", mmws_strerror(rc));
            c->rc = 1;
            c->done = 1;
        }
    }
    if (c->count && ++c->seen >= c->count) c->done = 1;
}

static void on_state(void *user, mmws_conn *conn, mmws_state from,
                     mmws_state to) {
    cat *c = user;
    (void)from;
    if (to != MMWS_DISCONNECTED) return;
    mmws_conn_stats st;
    mmws_conn_stats_get(conn, &st);
    int clean = st.last_error_code == 0 && st.last_close_code == 1000;
    if (!clean)
        fprintf(stderr, "mmws-cat: %s\n", mmws_conn_last_error(conn));
    c->rc = clean ? 0 : 1;
    c->done = 1;
}

/* Parses a decimal number option; exits 2 on junk. */
static uint64_t num(const char *opt, const char *v) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') {
        fprintf(stderr, "mmws-cat: %s needs a number (got \"%s\")\n", opt, v);
        exit(2);
    }
    return n;
}

/* The --send payloads; at most one per argument. */
static const char **sends;

static void free_sends(void) { free(sends); }

int main(int argc, char **argv) {
    sends = calloc((size_t)argc, sizeof *sends);
    if (!sends || atexit(free_sends) != 0) return 1;
    size_t nsend = 0;
    const char *url = NULL;
    cat c = {0};
    uint64_t seconds = 0;
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, NULL);
    cfg.auto_reconnect = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--send") && more) sends[nsend++] = argv[++i];
        else if (!strcmp(a, "--count") && more) c.count = num(a, argv[++i]);
        else if (!strcmp(a, "--seconds") && more) seconds = num(a, argv[++i]);
        else if (!strcmp(a, "--echo")) c.echo = 1;
        else if (!strcmp(a, "--max-size") && more)
            cfg.max_frame_size = (size_t)num(a, argv[++i]);
        else if (!strcmp(a, "--ca") && more) cfg.tls_ca_file = argv[++i];
        else if (!strcmp(a, "--insecure")) cfg.tls_verify = 0;
        else if (!strcmp(a, "--binary")) cfg.deliver_binary = 1;
        else if (!strcmp(a, "--resolve") && more) cfg.resolve = argv[++i];
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (a[0] == '-' || url) {
            fprintf(stderr, "mmws-cat: unexpected argument \"%s\"\n", a);
            usage();
            return 2;
        } else url = a;
    }
    if (!url) {
        usage();
        return 2;
    }
    cfg.wss_url = url;
    cfg.allow_plaintext = strncasecmp(url, "ws://", 5) == 0;
    cfg.on_connect = sends;
    cfg.on_connect_count = nsend;
    if (c.echo) cfg.deliver_binary = 1;
    c.loop = mmws_loop_new(NULL);
    if (!c.loop) {
        fprintf(stderr, "mmws-cat: cannot create the loop: %s\n",
                strerror(errno));
        return 1;
    }
    int rc = mmws_conn_new(c.loop, &cfg, on_message, &c, &c.conn);
    if (rc) {
        fprintf(stderr, "mmws-cat: %s\n", mmws_last_error());
        mmws_loop_free(c.loop);
        return 2;
    }
    mmws_conn_set_on_state(c.conn, on_state, &c);
    uint64_t end = seconds ? mmws_now_ns() + seconds * 1000000000ull : 0;
    while (!c.done) {
        if (end && mmws_now_ns() >= end) break;
        if (mmws_loop_run_once(c.loop, 100) < 0) {
            fprintf(stderr, "mmws-cat: event loop failed\n");
            c.rc = 1;
            break;
        }
    }
    mmws_conn_free(c.conn);
    mmws_loop_free(c.loop);
    return c.rc;
}
