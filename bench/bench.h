/*
 * bench.h — timing helpers shared by the bench_* programs.
 *
 * Every figure is measured as the best of several runs, each long enough
 * (BENCH_MIN_NS) to swamp clock resolution, and is printed beside a
 * baseline measured in the same process on the same buffer, as a ratio.
 * Header-only, static functions.
 */
#ifndef MMWS_BENCH_H
#define MMWS_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MIN_NS 200000000ull /* 0.2 s per run */
#define BENCH_RUNS 5              /* best of */

static inline uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Keeps the compiler from proving p's contents unused. */
static inline void bench_clobber(const void *p) {
    __asm__ volatile("" : : "r"(p) : "memory");
}

/*
 * Calls fn(arg) repeatedly; returns the best nanoseconds per call over
 * BENCH_RUNS runs of at least BENCH_MIN_NS each. Calls are made in batches
 * (sized so one batch takes >= 20 us) between clock reads, so the clock's
 * own cost does not swamp short operations.
 */
static inline double bench_best_ns(void (*fn)(void *), void *arg) {
    uint64_t batch = 1;
    for (;;) {
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < batch; i++) fn(arg);
        if (bench_now_ns() - t0 >= 20000 || batch >= (1ull << 30)) break;
        batch *= 2;
    }
    double best = 1e300;
    for (int r = 0; r < BENCH_RUNS; r++) {
        uint64_t iters = 0, t0 = bench_now_ns(), t1;
        do {
            for (uint64_t i = 0; i < batch; i++) fn(arg);
            iters += batch;
            t1 = bench_now_ns();
        } while (t1 - t0 < BENCH_MIN_NS);
        double per = (double)(t1 - t0) / (double)iters;
        if (per < best) best = per;
    }
    return best;
}

/* The memcpy baseline: copies len bytes from src to dst. */
struct bench_copy {
    void *dst;
    const void *src;
    size_t len;
};

static inline void bench_memcpy_fn(void *arg) {
    struct bench_copy *c = arg;
    memcpy(c->dst, c->src, c->len);
    bench_clobber(c->dst);
}

/* Best ns for one memcpy of len bytes between two fresh buffers. */
static inline double bench_memcpy_ns(const void *src, size_t len) {
    struct bench_copy c = {malloc(len ? len : 1), src, len};
    if (!c.dst) {
        fprintf(stderr, "bench: out of memory\n");
        exit(2);
    }
    double ns = bench_best_ns(bench_memcpy_fn, &c);
    free(c.dst);
    return ns;
}

/* Prints "label: X GB/s  memcpy Y GB/s  ratio Z.ZZx (target >= T)". */
static inline void bench_report(const char *label, size_t bytes, double ns,
                         double base_ns, double target) {
    double gbs = (double)bytes / ns, base = (double)bytes / base_ns;
    printf("%-40s %7.2f GB/s   memcpy %8.2f GB/s   ratio %5.2fx", label, gbs,
           base, gbs / base);
    if (target > 0) printf("  (target >= %.2fx%s)", target,
                           gbs / base >= target ? "" : ", MISSED");
    printf("\n");
}

#endif /* MMWS_BENCH_H */
