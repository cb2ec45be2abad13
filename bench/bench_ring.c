/*
 * bench_ring.c — nanoseconds per 200-byte message for the unique filter
 * (hashing included) and for the ring, beside memcpy of the same 200 bytes
 * measured in the same run.
 *
 *   dedup hit / miss   mmws_hash64 + mmws_dedup_check_insert, window 16384
 *                      (the pool's default hash_capacity), full; a miss
 *                      also forgets the oldest key. Target <= 30 ns.
 *   ring               insert + consume with 512 messages waiting (the
 *                      arena's working set ~100 KB), with and without
 *                      only_insert_unique; a refused duplicate; an insert
 *                      into a full ring that drops the oldest.
 */
#include <mmws/mmws.h>

#include "bench.h"

#define MSG_LEN 200
#define WINDOW 16384

static uint8_t msg[MSG_LEN];
static uint64_t counter;

/* Makes msg a new payload: its first 8 bytes count up. */
static inline void msg_next(void) {
    counter++;
    memcpy(msg, &counter, sizeof counter);
}

static void row(const char *label, double ns, double base_ns,
                double target_ns) {
    printf("%-44s %7.2f ns/msg   memcpy(200 B) %5.2f ns   ratio %6.2fx", label,
           ns, base_ns, ns / base_ns);
    if (target_ns > 0)
        printf("  (target <= %.0f ns%s)", target_ns,
               ns <= target_ns ? "" : ", MISSED");
    printf("\n");
}

static void hash_only(void *arg) {
    uint64_t *sink = arg;
    *sink += mmws_hash64(msg, MSG_LEN);
    bench_clobber(sink);
}

static void dedup_hit(void *arg) {
    mmws_dedup *d = arg;
    int seen = mmws_dedup_check_insert(d, mmws_hash64(msg, MSG_LEN));
    bench_clobber(&seen);
}

static void dedup_miss(void *arg) {
    mmws_dedup *d = arg;
    msg_next();
    int seen = mmws_dedup_check_insert(d, mmws_hash64(msg, MSG_LEN));
    bench_clobber(&seen);
}

static void ring_insert_consume(void *arg) {
    mmws_ring *r = arg;
    mmws_msg m = {msg, MSG_LEN, MMWS_OP_TEXT, 1, 1, counter};
    msg_next();
    mmws_ring_insert(r, &m);
    mmws_msg out;
    mmws_ring_consume(r, &out);
    bench_clobber(out.data);
}

static void ring_insert_dup(void *arg) {
    mmws_ring *r = arg;
    mmws_msg m = {msg, MSG_LEN, MMWS_OP_TEXT, 1, 1, 0};
    int rc = mmws_ring_insert(r, &m);
    bench_clobber(&rc);
}

static void ring_insert_full(void *arg) {
    mmws_ring *r = arg;
    mmws_msg m = {msg, MSG_LEN, MMWS_OP_TEXT, 1, 1, counter};
    msg_next();
    int rc = mmws_ring_insert(r, &m);
    bench_clobber(&rc);
}

static mmws_ring *ring_new(int unique) {
    mmws_ring_config cfg;
    mmws_ring_config_default(&cfg);
    cfg.only_insert_unique = unique;
    cfg.unique_window = WINDOW;
    mmws_ring *r;
    if (mmws_ring_new(&cfg, &r) != 0) {
        fprintf(stderr, "bench_ring: %s\n", mmws_last_error());
        exit(2);
    }
    return r;
}

/* Leaves n distinct messages waiting in r. */
static void ring_fill(mmws_ring *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        mmws_msg m = {msg, MSG_LEN, MMWS_OP_TEXT, 1, 1, counter};
        msg_next();
        mmws_ring_insert(r, &m);
    }
}

int main(void) {
    for (size_t i = 0; i < MSG_LEN; i++) msg[i] = (uint8_t)(i * 37 + 11);
    double base = bench_memcpy_ns(msg, MSG_LEN);

    uint64_t sink = 0;
    row("mmws_hash64 (XXH3-64), 200 B", bench_best_ns(hash_only, &sink),
        base, 0);

    mmws_dedup *d;
    if (mmws_dedup_new(WINDOW, &d) != 0) return 2;
    for (size_t i = 0; i < WINDOW; i++) {
        msg_next();
        mmws_dedup_check_insert(d, mmws_hash64(msg, MSG_LEN));
    }
    /* msg is now the newest remembered payload: every call hits. */
    row("dedup hit  (hash + check), window 16384", bench_best_ns(dedup_hit, d),
        base, 30);
    row("dedup miss (hash + check + forget oldest)",
        bench_best_ns(dedup_miss, d), base, 30);
    mmws_dedup_free(d);

    mmws_ring *r = ring_new(0);
    ring_fill(r, 512);
    row("ring insert + consume", bench_best_ns(ring_insert_consume, r), base,
        0);
    mmws_ring_free(r);

    r = ring_new(1);
    ring_fill(r, 512);
    row("ring insert + consume, only_insert_unique",
        bench_best_ns(ring_insert_consume, r), base, 0);
    /* msg holds the newest message's payload, which is still waiting. */
    mmws_msg m = {msg, MSG_LEN, MMWS_OP_TEXT, 1, 1, 0};
    if (mmws_ring_insert(r, &m) != 1) {
        fprintf(stderr, "bench_ring: expected a duplicate\n");
        return 1;
    }
    row("ring insert of a duplicate (refused)",
        bench_best_ns(ring_insert_dup, r), base, 0);
    mmws_ring_free(r);

    r = ring_new(0);
    ring_fill(r, mmws_ring_capacity(r));
    row("ring insert into a full ring (drops oldest)",
        bench_best_ns(ring_insert_full, r), base, 0);
    mmws_ring_stats st;
    mmws_ring_stats_get(r, &st);
    if (st.dropped_oldest == 0) {
        fprintf(stderr, "bench_ring: expected drops\n");
        return 1;
    }
    mmws_ring_free(r);
    return 0;
}
