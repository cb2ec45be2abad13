/*
 * dedup.c — mmws_dedup: "seen among the last `window` keys" in O(1), and
 * mmws_hash64.
 *
 * The remembered keys sit in a table of buckets of 8 keys (one cache line
 * each) with at least 2 × window slots, so it is at most half full. A key
 * lives in its home bucket unless that bucket was full when it came, in
 * which case it went to the next bucket with room (linear probing by
 * bucket). Each bucket counts the keys whose probe passed it (`ovf`): a
 * lookup reads one line, compares all 8 keys without a branch per key, and
 * goes on to the next bucket only if the count is non-zero — rarely at
 * this load. A FIFO of the keys in insertion order says which one to
 * forget when a new key pushes the oldest out.
 *
 * Forgetting leaves no tombstone: the bucket's last key moves into the
 * hole and the passing counts of the buckets between the key's home and
 * its bucket go down by one, so a lookup costs the same however long the
 * filter has run. Everything is allocated by new;
 * check_insert never allocates. (A first version, one key per slot with
 * backward-shift deletion, spent ~40 ns per miss, hash excluded, in the
 * mispredicted branches of its probe and shift loops at half load; this
 * one ~18.)
 *
 * An empty slot holds 0, so key 0 itself is remembered by a flag beside
 * the table (it still takes its place in the FIFO).
 */
#include <stdlib.h>
#include <string.h>

/*
 * XXH3 comes from libxxhash rather than a hash of our own: it is the
 * fastest well-maintained 64-bit hash for short inputs (a 200-byte message
 * in ~10 ns) with good enough distribution for a dedup key, and Debian and
 * every other distribution ship it. Inlined here so the pool's hot path
 * pays no call through the PLT.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "ring/ring_internal.h"

/* 2^64 / golden ratio: multiplicative (Fibonacci) hashing of the key into
 * the table, so sequential keys spread as well as random ones. */
#define DEDUP_MULT 0x9E3779B97F4A7C15ull
#define WAYS 8 /* keys per bucket: 64 bytes */

struct mmws_dedup {
    uint64_t *keys;    /* buckets × WAYS keys, 64-byte aligned; a bucket's
                          used keys come first, the rest are 0 */
    uint64_t *vals;    /* NULL, or a value per key slot (valued filter) */
    uint8_t *used;     /* keys in each bucket */
    uint32_t *ovf;     /* keys stored past each bucket whose probe passed
                          through it (they came when it was full) */
    uint64_t *fifo;    /* window keys in insertion order, oldest at head */
    size_t bmask;      /* buckets − 1 (buckets: a power of two ≥ 2) */
    unsigned shift;    /* 64 − log2(buckets): home = key·MULT >> shift */
    size_t window;     /* keys remembered at most; a power of two */
    size_t count;      /* keys remembered now (≤ window) */
    size_t head;       /* fifo index of the oldest remembered key */
    int has_zero;      /* key 0 is remembered */
    uint64_t zero_val; /* key 0's value */
};

uint64_t mmws_hash64(const void *data, size_t len) {
    return XXH3_64bits(data, len);
}

static inline size_t dedup_home(const mmws_dedup *d, uint64_t key) {
    return (size_t)((key * DEDUP_MULT) >> d->shift);
}

/* Bit i set if bucket slot i holds key; straight-line compares. */
static inline unsigned bucket_match(const uint64_t *k, uint64_t key) {
    unsigned m = 0;
    for (unsigned i = 0; i < WAYS; i++) m |= (unsigned)(k[i] == key) << i;
    return m;
}

/* The slot index of key (≠ 0), or SIZE_MAX if it is not remembered. */
static inline size_t dedup_find(const mmws_dedup *d, uint64_t key) {
    size_t b = dedup_home(d, key);
    for (size_t n = 0; n <= d->bmask; n++) {
        unsigned m = bucket_match(&d->keys[b * WAYS], key);
        if (m) return b * WAYS + (size_t)__builtin_ctz(m);
        if (d->ovf[b] == 0) break;
        b = (b + 1) & d->bmask;
    }
    return SIZE_MAX;
}

/* Stores key (≠ 0, not remembered) in the first bucket with room from its
 * home on. The table is at most half full, so there is one. */
static inline void dedup_put(mmws_dedup *d, uint64_t key, uint64_t val) {
    size_t b = dedup_home(d, key);
    while (d->used[b] == WAYS) {
        d->ovf[b]++;
        b = (b + 1) & d->bmask;
    }
    size_t i = b * WAYS + d->used[b]++;
    d->keys[i] = key;
    if (d->vals) d->vals[i] = val;
}

/* Removes key (≠ 0, remembered): the bucket's last key fills the hole and
 * the buckets its probe passed count one key fewer. */
static void dedup_remove(mmws_dedup *d, uint64_t key) {
    size_t b = dedup_home(d, key);
    unsigned m;
    while ((m = bucket_match(&d->keys[b * WAYS], key)) == 0) {
        d->ovf[b]--;
        b = (b + 1) & d->bmask;
    }
    size_t i = b * WAYS + (size_t)__builtin_ctz(m);
    size_t last = b * WAYS + --d->used[b];
    d->keys[i] = d->keys[last];
    d->keys[last] = 0;
    if (d->vals) d->vals[i] = d->vals[last];
}

/* Forgets the oldest key (the window is not empty). */
static void dedup_forget_oldest(mmws_dedup *d) {
    uint64_t key = d->fifo[d->head];
    d->head = (d->head + 1) & (d->window - 1);
    d->count--;
    if (key == 0)
        d->has_zero = 0;
    else
        dedup_remove(d, key);
}

/* Appends key to the FIFO (there is room). */
static inline void dedup_fifo_push(mmws_dedup *d, uint64_t key) {
    d->fifo[(d->head + d->count) & (d->window - 1)] = key;
    d->count++;
}

static int dedup_new(size_t window, int valued, mmws_dedup **out) {
    if (!out) return MMWS_EINVAL;
    *out = NULL;
    if (window == 0 || window > MMWS__RING_MAX_COUNT) return MMWS_EINVAL;
    size_t w = 1;
    while (w < window) w <<= 1;
    size_t nb = 2; /* buckets: 2 × w slots, at least 2 buckets */
    unsigned bits = 1;
    while (nb * WAYS < 2 * w) {
        nb <<= 1;
        bits++;
    }

    mmws_dedup *d = calloc(1, sizeof *d);
    if (!d) return MMWS_ENOMEM;
    d->keys = aligned_alloc(64, nb * WAYS * sizeof *d->keys);
    d->used = calloc(nb, sizeof *d->used);
    d->ovf = calloc(nb, sizeof *d->ovf);
    d->fifo = malloc(w * sizeof *d->fifo);
    if (valued) d->vals = calloc(nb * WAYS, sizeof *d->vals);
    if (!d->keys || !d->used || !d->ovf || !d->fifo ||
        (valued && !d->vals)) {
        mmws_dedup_free(d);
        return MMWS_ENOMEM;
    }
    memset(d->keys, 0, nb * WAYS * sizeof *d->keys);
    d->bmask = nb - 1;
    d->shift = 64u - bits;
    d->window = w;
    *out = d;
    return 0;
}

int mmws_dedup_new(size_t window, mmws_dedup **out) {
    return dedup_new(window, 0, out);
}

int mmws__dedup_new_valued(size_t window, mmws_dedup **out) {
    return dedup_new(window, 1, out);
}

void mmws_dedup_free(mmws_dedup *d) {
    if (!d) return;
    free(d->keys);
    free(d->vals);
    free(d->used);
    free(d->ovf);
    free(d->fifo);
    free(d);
}

int mmws_dedup_check_insert(mmws_dedup *d, uint64_t key) {
    if (!d) return 0;
    if (key == 0 ? d->has_zero : dedup_find(d, key) != SIZE_MAX) return 1;
    mmws__dedup_insert_new(d, key, 0);
    return 0;
}

int mmws_dedup_contains(const mmws_dedup *d, uint64_t key) {
    if (!d) return 0;
    if (key == 0) return d->has_zero;
    return dedup_find(d, key) != SIZE_MAX;
}

void mmws_dedup_clear(mmws_dedup *d) {
    if (!d) return;
    size_t nb = d->bmask + 1;
    memset(d->keys, 0, nb * WAYS * sizeof *d->keys);
    memset(d->used, 0, nb * sizeof *d->used);
    memset(d->ovf, 0, nb * sizeof *d->ovf);
    d->count = 0;
    d->head = 0;
    d->has_zero = 0;
}

int mmws__dedup_find(const mmws_dedup *d, uint64_t key, uint64_t *val) {
    if (key == 0) {
        if (!d->has_zero) return 0;
        *val = d->zero_val;
        return 1;
    }
    size_t i = dedup_find(d, key);
    if (i == SIZE_MAX) return 0;
    *val = d->vals ? d->vals[i] : 0;
    return 1;
}

void mmws__dedup_insert_new(mmws_dedup *d, uint64_t key, uint64_t val) {
    if (d->count == d->window) dedup_forget_oldest(d);
    dedup_fifo_push(d, key);
    if (key == 0) {
        d->has_zero = 1;
        d->zero_val = val;
    } else {
        dedup_put(d, key, val);
    }
}

void mmws__dedup_set_value(mmws_dedup *d, uint64_t key, uint64_t val) {
    if (key == 0) {
        if (d->has_zero) d->zero_val = val;
        return;
    }
    size_t i = dedup_find(d, key);
    if (i != SIZE_MAX && d->vals) d->vals[i] = val;
}

size_t mmws__dedup_home(const mmws_dedup *d, uint64_t key) {
    return dedup_home(d, key);
}

size_t mmws__dedup_buckets(const mmws_dedup *d) { return d->bmask + 1; }
