/*
 * mmws-bench-hedge URL SECONDS [CAFILE] — what redundancy buys: one-way
 * delivered latency of single connections against pools of 3 and 5, on
 * the same stream from one mmws-sim (scripts/bench-pool.sh starts it with
 * the same delay and an independent jitter draw per connection).
 *
 * Latency of a message = msg->recv_ns (CLOCK_MONOTONIC right after the read
 * syscall that completed it) - its "ts" (CLOCK_MONOTONIC at generation in
 * the simulator; same host, same clock). Measured side by side, on one
 * loop, over the same window, so that whatever the host does to the
 * simulator (a descheduled tick delays every connection alike) hits every
 * series equally:
 *   singles  5 mmws_conn, each with its own samples; "best" is the one
 *            with the lowest p99
 *   pool 3   an mmws_pool of 3, callback mode: the first copy of each
 *            message, as delivered
 *   pool 5   an mmws_pool of 5, likewise
 * (13 connections: 5 + 3 + 5.) It waits until all are up, discards a 1 s
 * warm-up, then records every message received during SECONDS. Public API
 * only; the default (sleeping) loop; latency pings at the default 1 s;
 * pool eviction pushed past the run (evict_interval_s 3600: every
 * connection has the same profile, so eviction could only churn); the
 * dedup key is the default (XXH3-64 of the payload). Per-pool details
 * (first_share, lag) go to stderr.
 *
 * Prints one table row per single and per pool (p50/p99/p99.9/max in µs,
 * gaps = update ids skipped, dups = an id delivered twice or going back,
 * drops = connections lost during the window), two "ideal" rows (per
 * update id, the smallest latency among singles 1-3 / 1-5: a pool of 3 / 5
 * with no cost of its own, on the same draws), then the targets: pool p99
 * <= 0.7 x the best single's p99, pool p50 <= the best single's p50.
 * Exit 0 when the measurement ran (a missed target is reported, not an
 * error); 1 when a connection could not be made or a series got no
 * sample; 2 on bad usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mmws/mmws.h>

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define HEDGE_SINGLES 5
#define HEDGE_WARMUP_NS (1000ull * NS_PER_MS)
#define HEDGE_CONNECT_NS (10000ull * NS_PER_MS)
#define HEDGE_P99_FACTOR 0.7

/* The latency samples of one series (a single connection or a pool). */
typedef struct series {
    uint64_t *ns;          /* latencies, ns */
    uint64_t *uid;         /* their update ids */
    size_t n, cap;
    uint64_t last_u;       /* update id of the previous message, 0 none */
    uint64_t gaps;         /* update ids skipped */
    uint64_t dups;         /* an id not above the previous one */
    uint64_t unparsed;     /* messages without "u" or "ts" */
    uint64_t drops;        /* connections lost while measuring */
    int oom;
} series;

/* One phase: where samples go and when. */
typedef struct phase {
    uint64_t start_ns, end_ns; /* recording window (recv_ns) */
    int recording;
} phase;

/* What a callback needs: its series and the phase. */
typedef struct sink {
    series *s;
    phase *ph;
} sink;

/* The unsigned decimal after key (e.g. "\"u\":") in p, or 0. */
static uint64_t json_u64(const uint8_t *p, size_t len, const char *key) {
    size_t kl = strlen(key);
    const uint8_t *k = memmem(p, len, key, kl);
    if (!k) return 0;
    const uint8_t *e = p + len;
    uint64_t v = 0;
    for (k += kl; k < e && *k >= '0' && *k <= '9'; k++)
        v = v * 10u + (uint64_t)(*k - '0');
    return v;
}

static void series_add(series *s, const mmws_msg *m) {
    uint64_t u = json_u64(m->data, m->len, "\"u\":");
    uint64_t ts = json_u64(m->data, m->len, "\"ts\":");
    if (!u || !ts) {
        s->unparsed++;
        return;
    }
    if (s->last_u) {
        if (u <= s->last_u) s->dups++;
        else s->gaps += u - s->last_u - 1;
    }
    if (u > s->last_u) s->last_u = u;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 65536;
        uint64_t *ns = realloc(s->ns, cap * sizeof *ns);
        if (ns) s->ns = ns;
        uint64_t *uid = ns ? realloc(s->uid, cap * sizeof *uid) : NULL;
        if (!uid) {
            s->oom = 1;
            return;
        }
        s->uid = uid;
        s->cap = cap;
    }
    s->uid[s->n] = u;
    s->ns[s->n++] = m->recv_ns > ts ? m->recv_ns - ts : 0;
}

static void on_message(void *user, const mmws_msg *m) {
    sink *k = user;
    if (!k->ph->recording || m->recv_ns < k->ph->start_ns ||
        m->recv_ns >= k->ph->end_ns)
        return;
    series_add(k->s, m);
}

static void on_state(void *user, mmws_conn *c, mmws_state from,
                     mmws_state to) {
    sink *k = user;
    (void)c;
    (void)to;
    if (from == MMWS_CONNECTED && k->ph->recording) k->s->drops++;
}

/*
 * The ideal hedge of singles 0..k-1: for every update id that all of them
 * recorded, the smallest of their latencies — what a pool of k with no
 * overhead of its own would deliver. Fills *out (samples only); 0 or -1.
 */
static int ideal_min(const series *single, int k, series *out) {
    uint64_t lo = 0, hi = UINT64_MAX;
    for (int i = 0; i < k; i++) {
        if (!single[i].n) return -1;
        if (single[i].uid[0] > lo) lo = single[i].uid[0];
        if (single[i].uid[single[i].n - 1] < hi)
            hi = single[i].uid[single[i].n - 1];
    }
    if (hi < lo) return -1;
    size_t span = (size_t)(hi - lo + 1);
    uint64_t *best = malloc(span * sizeof *best);
    uint8_t *seen = calloc(span, 1);
    out->ns = malloc(span * sizeof *out->ns);
    if (!best || !seen || !out->ns) {
        free(best);
        free(seen);
        out->oom = 1;
        return -1;
    }
    for (size_t j = 0; j < span; j++) best[j] = UINT64_MAX;
    for (int i = 0; i < k; i++) {
        for (size_t j = 0; j < single[i].n; j++) {
            uint64_t u = single[i].uid[j];
            if (u < lo || u > hi) continue;
            size_t x = (size_t)(u - lo);
            if (seen[x] == (uint8_t)i) { /* first copy from single i */
                seen[x] = (uint8_t)(i + 1);
                if (single[i].ns[j] < best[x]) best[x] = single[i].ns[j];
            }
        }
    }
    out->n = 0;
    for (size_t j = 0; j < span; j++)
        if (seen[j] == (uint8_t)k) out->ns[out->n++] = best[j];
    free(best);
    free(seen);
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Percentiles of a series, in µs. */
typedef struct summary {
    size_t n;
    double p50, p99, p999, max;
} summary;

/* Nearest rank on sorted samples. */
static double rank_us(const uint64_t *v, size_t n, double p) {
    double r = p * (double)n;
    size_t i = (size_t)r;
    if ((double)i < r) i++;   /* ceil */
    i = i ? i - 1 : 0;
    if (i >= n) i = n - 1;
    return (double)v[i] / 1e3;
}

static summary summarize(series *s) {
    summary r;
    memset(&r, 0, sizeof r);
    r.n = s->n;
    if (!s->n) return r;
    qsort(s->ns, s->n, sizeof *s->ns, cmp_u64);
    r.p50 = rank_us(s->ns, s->n, 0.50);
    r.p99 = rank_us(s->ns, s->n, 0.99);
    r.p999 = rank_us(s->ns, s->n, 0.999);
    r.max = (double)s->ns[s->n - 1] / 1e3;
    return r;
}

static void print_row(const char *name, size_t conns, const summary *r,
                      const series *s, const char *note) {
    printf("%-14s %5zu %8zu %8.0f %8.0f %9.0f %8.0f %6" PRIu64 " %5" PRIu64
           " %5" PRIu64 "  %s\n",
           name, conns, r->n, r->p50, r->p99, r->p999, r->max, s->gaps,
           s->dups, s->drops, note);
}

/* Runs the loop until done() or deadline; 0, or -1 at the deadline. */
typedef int (*until_fn)(void *arg);
static int run_until(mmws_loop *loop, until_fn done, void *arg,
                     uint64_t deadline) {
    while (!done || !done(arg)) {
        uint64_t now = mmws_now_ns();
        if (now >= deadline) return done ? -1 : 0;
        uint64_t left_ms = (deadline - now) / NS_PER_MS + 1;
        int rc = mmws_loop_run_once(loop, left_ms > 100 ? 100 : (int)left_ms);
        if (rc < 0) {
            fprintf(stderr, "mmws-bench-hedge: loop: %s\n", mmws_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/* Records for `seconds` after a warm-up; the caller's objects are up. */
static int record(mmws_loop *loop, phase *ph, double seconds) {
    if (run_until(loop, NULL, NULL, mmws_now_ns() + HEDGE_WARMUP_NS) != 0)
        return -1;
    ph->start_ns = mmws_now_ns();
    ph->end_ns = ph->start_ns + (uint64_t)(seconds * 1e9);
    ph->recording = 1;
    int rc = run_until(loop, NULL, NULL, ph->end_ns);
    ph->recording = 0;
    return rc;
}

/* Everything measured at once: the singles and both pools. */
typedef struct bench {
    mmws_conn *single[HEDGE_SINGLES];
    mmws_pool *pool3, *pool5;
} bench;

static int all_up(void *arg) {
    bench *b = arg;
    for (int i = 0; i < HEDGE_SINGLES; i++)
        if (mmws_conn_state(b->single[i]) != MMWS_CONNECTED) return 0;
    return mmws_pool_connected_count(b->pool3) >= 3 &&
           mmws_pool_connected_count(b->pool5) >= 5;
}

static int pool_open(mmws_loop *loop, const mmws_conn_config *cfg, size_t n,
                     sink *k, mmws_pool **out) {
    mmws_pool_config pcfg;
    mmws_pool_config_default(&pcfg);
    pcfg.num_connections = n;
    pcfg.evict_interval_s = 3600;
    if (mmws_pool_new(loop, cfg, &pcfg, on_message, k, out) != 0) {
        fprintf(stderr, "mmws-bench-hedge: pool of %zu: %s\n", n,
                mmws_last_error());
        return -1;
    }
    return 0;
}

static void pool_report(mmws_pool *p, size_t n, const mmws_pool_stats *st0,
                        series *s) {
    mmws_pool_stats st1;
    mmws_pool_stats_get(p, &st1);
    s->drops = (st1.replacements - st0->replacements) +
               (st1.evictions - st0->evictions) +
               (st1.rotations - st0->rotations);
    fprintf(stderr,
            "pool of %zu: delivered=%" PRIu64 " duplicates=%" PRIu64
            " (whole run)\n", n, st1.delivered, st1.duplicates);
    for (size_t i = 0; i < mmws_pool_size(p); i++) {
        mmws_pool_conn_info ci;
        if (mmws_pool_conn_info_get(p, i, &ci) != 0) continue;
        fprintf(stderr,
                "  conn %zu: first_share=%.2f lag_ema_ms=%.3f "
                "latency_ema_ms=%.3f\n",
                i, ci.first_share, ci.lag_ema_ms, ci.latency_ema_ms);
    }
}

/* Opens everything, waits until it is all up, records. 0 or -1. */
static int run_all(mmws_loop *loop, const mmws_conn_config *cfg,
                   double seconds, series *single, series *pool3,
                   series *pool5) {
    phase ph;
    memset(&ph, 0, sizeof ph);
    sink k[HEDGE_SINGLES + 2];
    bench b;
    memset(&b, 0, sizeof b);
    int rc = 0;
    for (int i = 0; i < HEDGE_SINGLES && rc == 0; i++) {
        k[i].s = &single[i];
        k[i].ph = &ph;
        if (mmws_conn_new(loop, cfg, on_message, &k[i], &b.single[i]) != 0) {
            fprintf(stderr, "mmws-bench-hedge: %s\n", mmws_last_error());
            rc = -1;
            break;
        }
        mmws_conn_set_on_state(b.single[i], on_state, &k[i]);
    }
    k[HEDGE_SINGLES].s = pool3;
    k[HEDGE_SINGLES].ph = &ph;
    k[HEDGE_SINGLES + 1].s = pool5;
    k[HEDGE_SINGLES + 1].ph = &ph;
    if (rc == 0) rc = pool_open(loop, cfg, 3, &k[HEDGE_SINGLES], &b.pool3);
    if (rc == 0) rc = pool_open(loop, cfg, 5, &k[HEDGE_SINGLES + 1], &b.pool5);
    if (rc == 0 &&
        run_until(loop, all_up, &b, mmws_now_ns() + HEDGE_CONNECT_NS) != 0) {
        for (int i = 0; i < HEDGE_SINGLES; i++)
            if (mmws_conn_state(b.single[i]) != MMWS_CONNECTED)
                fprintf(stderr, "mmws-bench-hedge: single %d not connected: "
                        "%s\n", i + 1, mmws_conn_last_error(b.single[i]));
        fprintf(stderr, "mmws-bench-hedge: pools connected: %zu of 3, %zu of "
                "5\n", mmws_pool_connected_count(b.pool3),
                mmws_pool_connected_count(b.pool5));
        rc = -1;
    }
    if (rc == 0) {
        mmws_pool_stats st3, st5;
        mmws_pool_stats_get(b.pool3, &st3);
        mmws_pool_stats_get(b.pool5, &st5);
        rc = record(loop, &ph, seconds);
        pool_report(b.pool3, 3, &st3, pool3);
        pool_report(b.pool5, 5, &st5, pool5);
    }
    for (int i = 0; i < HEDGE_SINGLES; i++) {
        if (!b.single[i]) continue;
        mmws_conn_set_on_state(b.single[i], NULL, NULL);
        mmws_conn_free(b.single[i]);
    }
    mmws_pool_free(b.pool3);
    mmws_pool_free(b.pool5);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: mmws-bench-hedge URL SECONDS [CAFILE]\n");
        return 2;
    }
    char *end;
    double secs = strtod(argv[2], &end);
    if (*argv[2] == '\0' || *end != '\0' || !(secs > 0.0) || secs > 3600.0) {
        fprintf(stderr, "mmws-bench-hedge: SECONDS must be in (0, 3600] "
                        "(got \"%s\")\n", argv[2]);
        return 2;
    }
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, argv[1]);
    cfg.allow_plaintext = strncasecmp(argv[1], "ws://", 5) == 0;
    if (argc == 4) cfg.tls_ca_file = argv[3];
    char err[256];
    if (mmws_conn_config_validate(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mmws-bench-hedge: %s\n", err);
        return 2;
    }

    mmws_loop *loop = mmws_loop_new(NULL);
    if (!loop) {
        perror("mmws-bench-hedge: mmws_loop_new");
        return 1;
    }
    series single[HEDGE_SINGLES], pool3, pool5;
    memset(single, 0, sizeof single);
    memset(&pool3, 0, sizeof pool3);
    memset(&pool5, 0, sizeof pool5);

    int rc = run_all(loop, &cfg, secs, single, &pool3, &pool5);
    mmws_loop_free(loop);
    if (rc != 0) {
        for (int i = 0; i < HEDGE_SINGLES; i++) {
            free(single[i].ns);
            free(single[i].uid);
        }
        free(pool3.ns);
        free(pool3.uid);
        free(pool5.ns);
        free(pool5.uid);
        fprintf(stderr, "mmws-bench-hedge: no measurement\n");
        return 1;
    }

    int failed = 0;
    /* Before summarize() sorts the singles' samples. */
    series ideal3, ideal5;
    memset(&ideal3, 0, sizeof ideal3);
    memset(&ideal5, 0, sizeof ideal5);
    ideal_min(single, 3, &ideal3);
    ideal_min(single, 5, &ideal5);
    summary ss[HEDGE_SINGLES], s3, s5, i3, i5;
    i3 = summarize(&ideal3);
    i5 = summarize(&ideal5);
    int best = -1;
    for (int i = 0; i < HEDGE_SINGLES; i++) {
        ss[i] = summarize(&single[i]);
        if (ss[i].n && (best < 0 || ss[i].p99 < ss[best].p99)) best = i;
    }
    s3 = summarize(&pool3);
    s5 = summarize(&pool5);
    for (int i = 0; i < HEDGE_SINGLES; i++)
        if (single[i].oom || !ss[i].n) failed = 1;
    if (pool3.oom || pool5.oom || !s3.n || !s5.n) failed = 1;

    printf("%-14s %5s %8s %8s %8s %9s %8s %6s %5s %5s\n", "set", "conns",
           "samples", "p50_us", "p99_us", "p99.9_us", "max_us", "gaps",
           "dups", "drops");
    for (int i = 0; i < HEDGE_SINGLES; i++) {
        char name[32];
        snprintf(name, sizeof name, "single %d", i + 1);
        print_row(name, 1, &ss[i], &single[i], i == best ? "<- best" : "");
    }
    if (best >= 0) {
        char note[32];
        snprintf(note, sizeof note, "(single %d)", best + 1);
        print_row("best single", 1, &ss[best], &single[best], note);
    }
    print_row("pool of 3", 3, &s3, &pool3, "");
    print_row("pool of 5", 5, &s5, &pool5, "");
    if (i3.n) print_row("ideal 3", 3, &i3, &ideal3, "min of singles 1-3");
    if (i5.n) print_row("ideal 5", 5, &i5, &ideal5, "min of singles 1-5");

    if (best >= 0 && s3.n && s5.n) {
        const summary *b = &ss[best];
        printf("\ntarget: pool p99 <= %.1f x best single p99 (%.0f us -> <= "
               "%.0f us), pool p50 <= best single p50 (%.0f us)\n",
               HEDGE_P99_FACTOR, b->p99, HEDGE_P99_FACTOR * b->p99, b->p50);
        const summary *ps[2] = {&s3, &s5};
        const char *pn[2] = {"pool of 3", "pool of 5"};
        for (int j = 0; j < 2; j++) {
            int ok99 = ps[j]->p99 <= HEDGE_P99_FACTOR * b->p99;
            int ok50 = ps[j]->p50 <= b->p50;
            printf("  %-10s p99 %.0f us = %.2fx best [%s]   p50 %.0f us = "
                   "%.2fx best [%s]\n",
                   pn[j], ps[j]->p99, ps[j]->p99 / b->p99,
                   ok99 ? "met" : "MISSED", ps[j]->p50, ps[j]->p50 / b->p50,
                   ok50 ? "met" : "MISSED");
        }
    }
    for (int i = 0; i < HEDGE_SINGLES; i++) {
        free(single[i].ns);
        free(single[i].uid);
    }
    free(pool3.ns);
    free(pool3.uid);
    free(pool5.ns);
    free(pool5.uid);
    free(ideal3.ns);
    free(ideal5.ns);
    if (failed) fprintf(stderr, "mmws-bench-hedge: a phase failed\n");
    return failed;
}
