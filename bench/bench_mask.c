/*
 * bench_mask.c — in-place masking speed of each variant and of mmws_mask(),
 * against memcpy of the same size, at 8 KiB (in L1), 100000 B (the echo
 * benchmark's message, in L2) and 1 MiB (in L2/L3). A row per size masks
 * from data + 1 to show what misalignment costs.
 *
 * Then the frame builder's job, a masked copy into a separate buffer: each
 * copy+mask variant (mmws__mask_copy), the two-pass way it replaced
 * (memcpy, then mmws_mask in place), and the fused copy from src + 1 and
 * to dst + 8 (where a frame's payload goes).
 */
#include <mmws/mmws.h>

#include "bench.h"
#include "codec/mask_internal.h"

/* One timed call: mask buf[0..len) in place. */
struct mask_job {
    mmws__mask_fn fn;
    uint8_t *buf;
    size_t len;
    uint8_t key[4];
};

static void mask_job_run(void *arg) {
    struct mask_job *j = arg;
    j->fn(j->buf, j->len, j->key, 0);
    bench_clobber(j->buf);
}

/* Times fn on buf[0..len) and prints it against base_ns (memcpy). */
static void row(const char *label, mmws__mask_fn fn, uint8_t *buf, size_t len,
                double base_ns, double target) {
    struct mask_job j = {fn, buf, len, {0x37, 0xfa, 0x21, 0x3d}};
    bench_report(label, len, bench_best_ns(mask_job_run, &j), base_ns, target);
}

/* One timed call: dst[0..len) = src[0..len) masked, fused or two-pass. */
struct copy_job {
    mmws__mask_copy_fn fn; /* NULL: memcpy, then mmws_mask() */
    uint8_t *dst;
    const uint8_t *src;
    size_t len;
    uint8_t key[4];
};

static void copy_job_run(void *arg) {
    struct copy_job *j = arg;
    if (j->fn) {
        j->fn(j->dst, j->src, j->len, j->key, 0);
    } else {
        memcpy(j->dst, j->src, j->len);
        mmws_mask(j->dst, j->len, j->key, 0);
    }
    bench_clobber(j->dst);
}

/* Times a masked copy of src[0..len) into dst and prints it against
 * base_ns (memcpy). */
static void copy_row(const char *label, mmws__mask_copy_fn fn, uint8_t *dst,
                     const uint8_t *src, size_t len, double base_ns,
                     double target) {
    struct copy_job j = {fn, dst, src, len, {0x37, 0xfa, 0x21, 0x3d}};
    bench_report(label, len, bench_best_ns(copy_job_run, &j), base_ns,
                 target);
}

int main(void) {
    static const size_t sizes[] = {8192, 100000, 1u << 20};
    printf("mmws_mask dispatches to: %s\n", mmws_mask_impl());
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t len = sizes[s];
        uint8_t *buf = aligned_alloc(64, len + 64);
        if (!buf) {
            fprintf(stderr, "bench_mask: out of memory\n");
            return 2;
        }
        for (size_t i = 0; i < len + 64; i++) buf[i] = (uint8_t)(i * 131u);
        double base = bench_memcpy_ns(buf, len);
        double target = 0.8;
        char label[64];
        printf("-- %zu bytes\n", len);
        for (size_t v = 0; v < mmws__mask_variant_count; v++) {
            const mmws__mask_variant *mv = &mmws__mask_variants[v];
            if (!mv->supported()) {
                printf("mask %-12s skipped: CPU lacks %s\n", mv->name,
                       mv->needs);
                continue;
            }
            snprintf(label, sizeof label, "mask %s %zu", mv->name, len);
            row(label, mv->fn, buf, len, base, target);
        }
        snprintf(label, sizeof label, "mmws_mask (%s) %zu", mmws_mask_impl(),
                 len);
        row(label, mmws_mask, buf, len, base, target);
        snprintf(label, sizeof label, "mmws_mask %zu at +1", len);
        row(label, mmws_mask, buf + 1, len, base, target);

        uint8_t *dst = aligned_alloc(64, len + 64);
        if (!dst) {
            fprintf(stderr, "bench_mask: out of memory\n");
            return 2;
        }
        memset(dst, 0, len + 64);
        for (size_t v = 0; v < mmws__mask_variant_count; v++) {
            const mmws__mask_variant *mv = &mmws__mask_variants[v];
            if (!mv->supported()) {
                printf("copy+mask %-7s skipped: CPU lacks %s\n", mv->name,
                       mv->needs);
                continue;
            }
            snprintf(label, sizeof label, "copy+mask %s %zu", mv->name, len);
            copy_row(label, mv->copy, dst, buf, len, base, target);
        }
        snprintf(label, sizeof label, "two-pass memcpy+mmws_mask %zu", len);
        copy_row(label, NULL, dst, buf, len, base, target);
        snprintf(label, sizeof label, "mmws__mask_copy %zu src+1", len);
        copy_row(label, mmws__mask_copy, dst, buf + 1, len, base, target);
        /* As in mmws_frame_build(): the payload lands after an 8-byte
         * header, so only the source is aligned. */
        snprintf(label, sizeof label, "mmws__mask_copy %zu dst+8", len);
        copy_row(label, mmws__mask_copy, dst + 8, buf, len, base, target);
        free(dst);
        free(buf);
    }
    return 0;
}
