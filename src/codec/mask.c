/*
 * mask.c — RFC 6455 5.3 payload masking: data[i] ^= key[(offset + i) & 3].
 *
 * Every client frame is masked, so this runs over every byte we send, on
 * the latency-critical path of an order going out. It is hand-written
 * rather than taken from a library because no small C library offers it
 * (WebSocket libraries mask with a byte or word loop inside their own
 * send paths), and because the whole job is one XOR whose speed depends
 * only on how the loads and stores are laid out, which is what this file
 * controls.
 *
 * The layout every variant uses, for a vector width W <= len:
 *   - the first W bytes (head) and the last W bytes (tail) are loaded and
 *     XORed with the key rotated to their position before anything is
 *     stored;
 *   - the middle is XORed in W-byte blocks starting at the first W-aligned
 *     address after data, so those loads and stores never split a line;
 *   - head and tail are stored last. Where they overlap the middle (or each
 *     other) they write the same values it did, since all were computed
 *     from the original bytes.
 * So there are no byte loops for len >= 4, and nothing outside data[0..len)
 * is ever read or written. Lengths below W fall to the next narrower width.
 *
 * mmws__mask_copy() is the same XOR fused with the copy into the send
 * buffer (dst[i] = src[i] ^ key), so building a frame reads and writes each
 * payload byte once instead of twice (memcpy, then mask in place). Its
 * variants use the same layout with the middle aligned to dst: the stores
 * never split a line, the loads from src may. Since head and tail are
 * loaded before anything is stored, dst == src works too, and masks in
 * place; any other overlap does not.
 *
 * There is no AVX-512 variant: on the AMD EPYC (Zen 4, which splits 512-bit
 * operations in two) it was measured on, 64-byte blocks ran no faster than
 * AVX2 at 8 KiB and 1 MiB (both ~90 GB/s, the store bandwidth) and cost
 * 1-3 ns more per call below 600 bytes, the size of a typical order.
 */
#include <stdatomic.h>
#include <string.h>

#include <mmws/codec.h>

#include "codec/mask_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* The 4 key bytes as they apply from payload position off, as a word whose
 * memory order is key[off & 3], key[(off + 1) & 3], ... */
static inline uint32_t key_at(const uint8_t key[4], size_t off) {
    uint32_t k;
    memcpy(&k, key, 4);
    unsigned s = (unsigned)(off & 3) * 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (k << s) | (k >> ((32 - s) & 31));
#else
    return (k >> s) | (k << ((32 - s) & 31));
#endif
}

/* key_at() twice over, for 8-byte words. */
static inline uint64_t key64_at(const uint8_t key[4], size_t off) {
    uint64_t k = key_at(key, off);
    return k | (k << 32);
}

/* Masks len < 16 bytes: two overlapping words of 8 or 4, or single bytes. */
static inline void mask_small(uint8_t *d, size_t len, const uint8_t key[4],
                              size_t off) {
    if (len >= 8) {
        uint64_t h, t;
        memcpy(&h, d, 8);
        memcpy(&t, d + len - 8, 8);
        h ^= key64_at(key, off);
        t ^= key64_at(key, off + len - 8);
        memcpy(d, &h, 8);
        memcpy(d + len - 8, &t, 8);
    } else if (len >= 4) {
        uint32_t h, t;
        memcpy(&h, d, 4);
        memcpy(&t, d + len - 4, 4);
        h ^= key_at(key, off);
        t ^= key_at(key, off + len - 4);
        memcpy(d, &h, 4);
        memcpy(d + len - 4, &t, 4);
    } else {
        for (size_t i = 0; i < len; i++) d[i] ^= key[(off + i) & 3];
    }
}

/* Portable variant: 8-byte words, head/middle/tail as described above. */
static void mask_scalar(uint8_t *d, size_t len, const uint8_t key[4],
                        size_t off) {
    if (len < 16) {
        mask_small(d, len, key, off);
        return;
    }
    uint64_t h, t;
    memcpy(&h, d, 8);
    memcpy(&t, d + len - 8, 8);
    h ^= key64_at(key, off);
    t ^= key64_at(key, off + len - 8);
    size_t i = 8 - (size_t)((uintptr_t)d & 7);
    uint64_t k = key64_at(key, off + i);
    for (; i + 32 <= len; i += 32) {
        uint64_t w[4];
        memcpy(w, d + i, 32);
        w[0] ^= k;
        w[1] ^= k;
        w[2] ^= k;
        w[3] ^= k;
        memcpy(d + i, w, 32);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        w ^= k;
        memcpy(d + i, &w, 8);
    }
    memcpy(d, &h, 8);
    memcpy(d + len - 8, &t, 8);
}

/* 1: the portable variant runs everywhere. */
static int mask_scalar_supported(void) { return 1; }

/* mask_small() from s into d. */
static inline void mask_copy_small(uint8_t *d, const uint8_t *s, size_t len,
                                   const uint8_t key[4], size_t off) {
    if (len >= 8) {
        uint64_t h, t;
        memcpy(&h, s, 8);
        memcpy(&t, s + len - 8, 8);
        h ^= key64_at(key, off);
        t ^= key64_at(key, off + len - 8);
        memcpy(d, &h, 8);
        memcpy(d + len - 8, &t, 8);
    } else if (len >= 4) {
        uint32_t h, t;
        memcpy(&h, s, 4);
        memcpy(&t, s + len - 4, 4);
        h ^= key_at(key, off);
        t ^= key_at(key, off + len - 4);
        memcpy(d, &h, 4);
        memcpy(d + len - 4, &t, 4);
    } else {
        for (size_t i = 0; i < len; i++) d[i] = s[i] ^ key[(off + i) & 3];
    }
}

/* mask_scalar() from s into d, the middle aligned to d. */
static void mask_copy_scalar(uint8_t *d, const uint8_t *s, size_t len,
                             const uint8_t key[4], size_t off) {
    if (len < 16) {
        mask_copy_small(d, s, len, key, off);
        return;
    }
    uint64_t h, t;
    memcpy(&h, s, 8);
    memcpy(&t, s + len - 8, 8);
    h ^= key64_at(key, off);
    t ^= key64_at(key, off + len - 8);
    size_t i = 8 - (size_t)((uintptr_t)d & 7);
    uint64_t k = key64_at(key, off + i);
    for (; i + 32 <= len; i += 32) {
        uint64_t w[4];
        memcpy(w, s + i, 32);
        w[0] ^= k;
        w[1] ^= k;
        w[2] ^= k;
        w[3] ^= k;
        memcpy(d + i, w, 32);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        w ^= k;
        memcpy(d + i, &w, 8);
    }
    memcpy(d, &h, 8);
    memcpy(d + len - 8, &t, 8);
}

#if defined(__x86_64__)

/* SSE2 body for len >= 16 (SSE2 is part of x86-64, so no target needed). */
static inline void mask_sse2_wide(uint8_t *d, size_t len, const uint8_t key[4],
                                  size_t off) {
    __m128i h = _mm_loadu_si128((const void *)d);
    __m128i t = _mm_loadu_si128((const void *)(d + len - 16));
    h = _mm_xor_si128(h, _mm_set1_epi32((int)key_at(key, off)));
    t = _mm_xor_si128(t, _mm_set1_epi32((int)key_at(key, off + len - 16)));
    size_t i = 16 - (size_t)((uintptr_t)d & 15);
    __m128i k = _mm_set1_epi32((int)key_at(key, off + i));
    for (; i + 64 <= len; i += 64) {
        __m128i *p = (void *)(d + i);
        __m128i a = _mm_load_si128(p), b = _mm_load_si128(p + 1);
        __m128i c = _mm_load_si128(p + 2), e = _mm_load_si128(p + 3);
        _mm_store_si128(p, _mm_xor_si128(a, k));
        _mm_store_si128(p + 1, _mm_xor_si128(b, k));
        _mm_store_si128(p + 2, _mm_xor_si128(c, k));
        _mm_store_si128(p + 3, _mm_xor_si128(e, k));
    }
    for (; i + 16 <= len; i += 16) {
        __m128i *p = (void *)(d + i);
        _mm_store_si128(p, _mm_xor_si128(_mm_load_si128(p), k));
    }
    _mm_storeu_si128((void *)d, h);
    _mm_storeu_si128((void *)(d + len - 16), t);
}

/* SSE2 variant. */
static void mask_sse2(uint8_t *d, size_t len, const uint8_t key[4],
                      size_t off) {
    if (len < 16)
        mask_small(d, len, key, off);
    else
        mask_sse2_wide(d, len, key, off);
}

/* 1 if the CPU has SSE2 (always, on x86-64). */
static int mask_sse2_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse2") != 0;
}

/* mask_sse2_wide() from s into d: unaligned loads, aligned stores. */
static inline void mask_copy_sse2_wide(uint8_t *d, const uint8_t *s,
                                       size_t len, const uint8_t key[4],
                                       size_t off) {
    __m128i h = _mm_loadu_si128((const void *)s);
    __m128i t = _mm_loadu_si128((const void *)(s + len - 16));
    h = _mm_xor_si128(h, _mm_set1_epi32((int)key_at(key, off)));
    t = _mm_xor_si128(t, _mm_set1_epi32((int)key_at(key, off + len - 16)));
    size_t i = 16 - (size_t)((uintptr_t)d & 15);
    __m128i k = _mm_set1_epi32((int)key_at(key, off + i));
    for (; i + 64 <= len; i += 64) {
        const uint8_t *q = s + i;
        __m128i *p = (void *)(d + i);
        __m128i a = _mm_loadu_si128((const void *)q);
        __m128i b = _mm_loadu_si128((const void *)(q + 16));
        __m128i c = _mm_loadu_si128((const void *)(q + 32));
        __m128i e = _mm_loadu_si128((const void *)(q + 48));
        _mm_store_si128(p, _mm_xor_si128(a, k));
        _mm_store_si128(p + 1, _mm_xor_si128(b, k));
        _mm_store_si128(p + 2, _mm_xor_si128(c, k));
        _mm_store_si128(p + 3, _mm_xor_si128(e, k));
    }
    for (; i + 16 <= len; i += 16) {
        __m128i a = _mm_loadu_si128((const void *)(s + i));
        _mm_store_si128((void *)(d + i), _mm_xor_si128(a, k));
    }
    _mm_storeu_si128((void *)d, h);
    _mm_storeu_si128((void *)(d + len - 16), t);
}

/* SSE2 copying variant. */
static void mask_copy_sse2(uint8_t *d, const uint8_t *s, size_t len,
                           const uint8_t key[4], size_t off) {
    if (len < 16)
        mask_copy_small(d, s, len, key, off);
    else
        mask_copy_sse2_wide(d, s, len, key, off);
}

/* AVX2 body for len >= 32. */
__attribute__((target("avx2"))) static inline void
mask_avx2_wide(uint8_t *d, size_t len, const uint8_t key[4], size_t off) {
    __m256i h = _mm256_loadu_si256((const void *)d);
    __m256i t = _mm256_loadu_si256((const void *)(d + len - 32));
    h = _mm256_xor_si256(h, _mm256_set1_epi32((int)key_at(key, off)));
    t = _mm256_xor_si256(t,
                         _mm256_set1_epi32((int)key_at(key, off + len - 32)));
    size_t i = 32 - (size_t)((uintptr_t)d & 31);
    __m256i k = _mm256_set1_epi32((int)key_at(key, off + i));
    for (; i + 128 <= len; i += 128) {
        __m256i *p = (void *)(d + i);
        __m256i a = _mm256_load_si256(p), b = _mm256_load_si256(p + 1);
        __m256i c = _mm256_load_si256(p + 2), e = _mm256_load_si256(p + 3);
        _mm256_store_si256(p, _mm256_xor_si256(a, k));
        _mm256_store_si256(p + 1, _mm256_xor_si256(b, k));
        _mm256_store_si256(p + 2, _mm256_xor_si256(c, k));
        _mm256_store_si256(p + 3, _mm256_xor_si256(e, k));
    }
    for (; i + 32 <= len; i += 32) {
        __m256i *p = (void *)(d + i);
        _mm256_store_si256(p, _mm256_xor_si256(_mm256_load_si256(p), k));
    }
    _mm256_storeu_si256((void *)d, h);
    _mm256_storeu_si256((void *)(d + len - 32), t);
}

/* AVX2 variant. */
__attribute__((target("avx2"))) static void
mask_avx2(uint8_t *d, size_t len, const uint8_t key[4], size_t off) {
    if (len < 16)
        mask_small(d, len, key, off);
    else if (len < 32)
        mask_sse2_wide(d, len, key, off);
    else
        mask_avx2_wide(d, len, key, off);
}

/* 1 if the CPU and OS support AVX2. */
static int mask_avx2_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
}

/* mask_avx2_wide() from s into d: unaligned loads, aligned stores. */
__attribute__((target("avx2"))) static inline void
mask_copy_avx2_wide(uint8_t *d, const uint8_t *s, size_t len,
                    const uint8_t key[4], size_t off) {
    __m256i h = _mm256_loadu_si256((const void *)s);
    __m256i t = _mm256_loadu_si256((const void *)(s + len - 32));
    h = _mm256_xor_si256(h, _mm256_set1_epi32((int)key_at(key, off)));
    t = _mm256_xor_si256(t,
                         _mm256_set1_epi32((int)key_at(key, off + len - 32)));
    size_t i = 32 - (size_t)((uintptr_t)d & 31);
    __m256i k = _mm256_set1_epi32((int)key_at(key, off + i));
    for (; i + 128 <= len; i += 128) {
        const uint8_t *q = s + i;
        __m256i *p = (void *)(d + i);
        __m256i a = _mm256_loadu_si256((const void *)q);
        __m256i b = _mm256_loadu_si256((const void *)(q + 32));
        __m256i c = _mm256_loadu_si256((const void *)(q + 64));
        __m256i e = _mm256_loadu_si256((const void *)(q + 96));
        _mm256_store_si256(p, _mm256_xor_si256(a, k));
        _mm256_store_si256(p + 1, _mm256_xor_si256(b, k));
        _mm256_store_si256(p + 2, _mm256_xor_si256(c, k));
        _mm256_store_si256(p + 3, _mm256_xor_si256(e, k));
    }
    for (; i + 32 <= len; i += 32) {
        __m256i a = _mm256_loadu_si256((const void *)(s + i));
        _mm256_store_si256((void *)(d + i), _mm256_xor_si256(a, k));
    }
    _mm256_storeu_si256((void *)d, h);
    _mm256_storeu_si256((void *)(d + len - 32), t);
}

/* AVX2 copying variant. */
__attribute__((target("avx2"))) static void
mask_copy_avx2(uint8_t *d, const uint8_t *s, size_t len, const uint8_t key[4],
               size_t off) {
    if (len < 16)
        mask_copy_small(d, s, len, key, off);
    else if (len < 32)
        mask_copy_sse2_wide(d, s, len, key, off);
    else
        mask_copy_avx2_wide(d, s, len, key, off);
}

#endif /* __x86_64__ */

const mmws__mask_variant mmws__mask_variants[] = {
#if defined(__x86_64__)
    {"avx2", "avx2", mask_avx2_supported, mask_avx2, mask_copy_avx2},
    {"sse2", "sse2", mask_sse2_supported, mask_sse2, mask_copy_sse2},
#endif
    {"scalar", "nothing", mask_scalar_supported, mask_scalar,
     mask_copy_scalar},
};
const size_t mmws__mask_variant_count =
    sizeof mmws__mask_variants / sizeof mmws__mask_variants[0];

static void mask_first_call(uint8_t *d, size_t len, const uint8_t key[4],
                            size_t off);
static void mask_copy_first_call(uint8_t *d, const uint8_t *s, size_t len,
                                 const uint8_t key[4], size_t off);

/* The variant mmws_mask() calls. It starts as mask_first_call, which
 * replaces itself; threads racing there store the same pointer. */
static _Atomic(mmws__mask_fn) mask_fn = mask_first_call;
/* The same for mmws__mask_copy(); the first call of either sets both. */
static _Atomic(mmws__mask_copy_fn) mask_copy_fn = mask_copy_first_call;
static _Atomic(const mmws__mask_variant *) mask_chosen;

/* Returns the fastest supported variant, choosing it on the first call. */
static const mmws__mask_variant *mask_choose(void) {
    const mmws__mask_variant *v =
        atomic_load_explicit(&mask_chosen, memory_order_acquire);
    if (v) return v;
    v = &mmws__mask_variants[mmws__mask_variant_count - 1];
    for (size_t i = 0; i < mmws__mask_variant_count; i++) {
        if (mmws__mask_variants[i].supported()) {
            v = &mmws__mask_variants[i];
            break;
        }
    }
    atomic_store_explicit(&mask_chosen, v, memory_order_release);
    atomic_store_explicit(&mask_fn, v->fn, memory_order_relaxed);
    atomic_store_explicit(&mask_copy_fn, v->copy, memory_order_relaxed);
    return v;
}

/* Chooses the variant, then masks with it. */
static void mask_first_call(uint8_t *d, size_t len, const uint8_t key[4],
                            size_t off) {
    mask_choose()->fn(d, len, key, off);
}

/* Chooses the variant, then copies and masks with it. */
static void mask_copy_first_call(uint8_t *d, const uint8_t *s, size_t len,
                                 const uint8_t key[4], size_t off) {
    mask_choose()->copy(d, s, len, key, off);
}

void mmws_mask(uint8_t *data, size_t len, const uint8_t key[4],
               size_t offset) {
    atomic_load_explicit(&mask_fn, memory_order_relaxed)(data, len, key,
                                                          offset);
}

void mmws__mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                     const uint8_t key[4], size_t offset) {
    atomic_load_explicit(&mask_copy_fn, memory_order_relaxed)(dst, src, len,
                                                               key, offset);
}

const char *mmws_mask_impl(void) { return mask_choose()->name; }
