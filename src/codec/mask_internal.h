/*
 * mask_internal.h — the masking variants behind mmws_mask() and
 * mmws__mask_copy(), exposed to the tests and the benchmark so each one can
 * be checked and timed on its own.
 * Not installed; not part of the API.
 */
#ifndef MMWS_MASK_INTERNAL_H
#define MMWS_MASK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Same contract as mmws_mask(). */
typedef void (*mmws__mask_fn)(uint8_t *data, size_t len, const uint8_t key[4],
                              size_t offset);

/* Same contract as mmws__mask_copy(). */
typedef void (*mmws__mask_copy_fn)(uint8_t *dst, const uint8_t *src,
                                   size_t len, const uint8_t key[4],
                                   size_t offset);

typedef struct mmws__mask_variant {
    const char *name;        /* as returned by mmws_mask_impl() */
    const char *needs;       /* CPU features it requires, for messages */
    int (*supported)(void);  /* 1 if this CPU and OS can run it */
    mmws__mask_fn fn;        /* the implementation; call only if supported */
    mmws__mask_copy_fn copy; /* its copying form, for mmws__mask_copy() */
} mmws__mask_variant;

/* Every variant built into this binary, fastest first; the last one is the
 * portable scalar code, which is always supported. */
extern const mmws__mask_variant mmws__mask_variants[];
extern const size_t mmws__mask_variant_count;

/*
 * dst[i] = src[i] ^ key[(offset + i) & 3] for i in [0, len): mmws_mask()
 * fused with a copy, so each byte is read and written once (the frame
 * builder's send path). dst and src are either the same pointer (masks in
 * place) or do not overlap at all; any alignment; both may be NULL only
 * when len is 0. Nothing outside dst[0..len) and src[0..len) is touched.
 * Uses the variant mmws_mask() uses, chosen at the first call of either.
 */
void mmws__mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                     const uint8_t key[4], size_t offset);

#endif /* MMWS_MASK_INTERNAL_H */
