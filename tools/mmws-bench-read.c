/*
 * mmws-bench-read URL SECONDS [CAFILE] — the mmws client of the firehose
 * benchmark (scripts/bench-pool.sh): reads the stream of a fresh mmws-sim
 * started with --rate 0 for SECONDS after the first message, checks that
 * the update id "u" grows by exactly 1 from message to message, and prints
 * messages per second as its last stdout line. Its peers are
 * bench/echo/beast_reader.cpp and bench/echo/lws_reader.c (same command
 * line, same output, same per-message work: find "u" and parse it).
 *
 * Settings a throughput-minded user would pick: one mmws_conn, the default
 * 256 KiB read buffer, the default sleeping loop (busy_poll was measured
 * and is slower here: the client then drains the socket in small reads and
 * the producer makes more syscalls), no latency pings (the peers send
 * none), UTF-8 validation left ON (the library default; Beast validates
 * too). The clock is not read per message: msg->recv_ns, taken
 * once per read syscall, says when to stop.
 *
 * stderr gets one line "messages=N seconds=T first_u=F gaps=G missing=M
 * cpu_ns_per_msg=C"; a gap is a message whose u is not the previous u + 1
 * (missing counts the update ids skipped). Exit 0, 1 on a connection
 * failure or when no message arrived, 2 on bad usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mmws/mmws.h>

typedef struct reader {
    uint64_t limit_ns;   /* measuring time */
    uint64_t t0, t1;     /* recv_ns of the first and the last counted */
    uint64_t count;      /* messages after the first, up to t0 + limit */
    uint64_t first_u, last_u;
    uint64_t gaps, missing, unparsed;
    uint64_t cpu0;       /* process CPU time at the first message */
    int started, done, failed;
} reader;

static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The value of "u" in a simulator message, or 0 if there is none: the
 * same bounded scan as the peers' (the key is near the start). */
static uint64_t parse_u(const uint8_t *p, size_t len) {
    for (size_t i = 0; i + 4 <= len; i++) {
        if (p[i] == '"' && p[i + 1] == 'u' && p[i + 2] == '"' &&
            p[i + 3] == ':') {
            uint64_t v = 0;
            for (i += 4; i < len && p[i] >= '0' && p[i] <= '9'; i++)
                v = v * 10u + (uint64_t)(p[i] - '0');
            return v;
        }
    }
    return 0;
}

static void on_message(void *user, const mmws_msg *m) {
    reader *r = user;
    if (r->done) return;
    uint64_t u = parse_u(m->data, m->len);
    if (!u) {
        r->unparsed++;
        return;
    }
    if (!r->started) {
        r->started = 1;
        r->t0 = r->t1 = m->recv_ns;
        r->first_u = r->last_u = u;
        r->cpu0 = cpu_ns();
        return;
    }
    if (u != r->last_u + 1) {
        r->gaps++;
        if (u > r->last_u) r->missing += u - r->last_u - 1;
    }
    r->last_u = u;
    r->count++;
    r->t1 = m->recv_ns;
    if (m->recv_ns - r->t0 >= r->limit_ns) r->done = 1;
}

static void on_state(void *user, mmws_conn *c, mmws_state from,
                     mmws_state to) {
    reader *r = user;
    (void)from;
    if (to == MMWS_DISCONNECTED && !r->done) {
        fprintf(stderr, "mmws-bench-read: %s\n", mmws_conn_last_error(c));
        r->failed = r->done = 1;
    }
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: mmws-bench-read URL SECONDS [CAFILE]\n");
        return 2;
    }
    char *end;
    double secs = strtod(argv[2], &end);
    if (*argv[2] == '\0' || *end != '\0' || !(secs > 0.0) || secs > 86400.0) {
        fprintf(stderr, "mmws-bench-read: SECONDS must be > 0 (got \"%s\")\n",
                argv[2]);
        return 2;
    }
    reader r;
    memset(&r, 0, sizeof r);
    r.limit_ns = (uint64_t)(secs * 1e9);

    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, argv[1]);
    cfg.allow_plaintext = strncasecmp(argv[1], "ws://", 5) == 0;
    cfg.auto_reconnect = 0;
    cfg.latency_ping_interval_ms = 0;
    if (argc == 4) cfg.tls_ca_file = argv[3];

    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn *conn = NULL;
    if (!loop) {
        perror("mmws-bench-read: mmws_loop_new");
        return 1;
    }
    if (mmws_conn_new(loop, &cfg, on_message, &r, &conn) != 0) {
        fprintf(stderr, "mmws-bench-read: %s\n", mmws_last_error());
        mmws_loop_free(loop);
        return 1;
    }
    mmws_conn_set_on_state(conn, on_state, &r);
    while (!r.done) {
        int rc = mmws_loop_run_once(loop, -1);
        if (rc < 0) {
            fprintf(stderr, "mmws-bench-read: loop: %s\n", mmws_strerror(rc));
            r.failed = 1;
            break;
        }
    }
    uint64_t cpu = r.started ? cpu_ns() - r.cpu0 : 0;
    mmws_conn_set_on_state(conn, NULL, NULL);
    mmws_conn_free(conn);
    mmws_loop_free(loop);
    if (r.failed) return 1;
    if (!r.count || r.t1 <= r.t0) {
        fprintf(stderr, "mmws-bench-read: no messages counted\n");
        return 1;
    }
    double el = (double)(r.t1 - r.t0) / 1e9;
    fprintf(stderr,
            "messages=%" PRIu64 " seconds=%.3f first_u=%" PRIu64
            " gaps=%" PRIu64 " missing=%" PRIu64 " unparsed=%" PRIu64
            " cpu_ns_per_msg=%.0f\n",
            r.count, el, r.first_u, r.gaps, r.missing, r.unparsed,
            (double)cpu / (double)r.count);
    printf("%.0f\n", (double)r.count / el);
    return 0;
}
