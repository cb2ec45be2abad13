/*
 * dedup.c — mmws_dedup: "seen among the last `window` keys" in O(1), and
 * mmws_hash64.
 *
 * The remembered keys sit in an open-addressing table with linear probing
 * and 2 × window slots, so it is never more than half full and a probe
 * ends after ~1.5 slots on average. A FIFO of the same keys in insertion
 * order says which one to forget when a new key pushes the oldest out.
 *
 * Forgetting leaves no tombstone: the entries after the hole that are
 * allowed to live there are shifted back into it (backward-shift deletion,
 * Knuth vol. 3, 6.4 Algorithm R), so lookups do not slow down however long
 * the filter runs. Everything is allocated by new; check_insert never
 * allocates.
 *
 * An empty table slot holds 0, so key 0 itself is remembered by a flag
 * beside the table (it still takes its place in the FIFO).
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

struct mmws_dedup {
    uint64_t *table;   /* 2 × window slots; 0 = empty (key 0: has_zero) */
    uint64_t *vals;    /* NULL, or a value per table slot (valued filter) */
    uint64_t *fifo;    /* window keys in insertion order, oldest at head */
    size_t mask;       /* table slots − 1 */
    unsigned shift;    /* 64 − log2(table slots): home = key·MULT >> shift */
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

/* The slot holding key (≠ 0), or the empty slot where its probe ends. The
 * table always has an empty slot, so the loop ends. */
static inline size_t dedup_probe(const mmws_dedup *d, uint64_t key) {
    size_t i = dedup_home(d, key);
    uint64_t k;
    while ((k = d->table[i]) != 0 && k != key) i = (i + 1) & d->mask;
    return i;
}

/* Empties slot i, shifting back the entries of its cluster that may move
 * there: the entry at j may fill the hole at i only if i lies on its probe
 * path, i.e. between its home h and j (cyclically). */
static void dedup_remove_at(mmws_dedup *d, size_t i) {
    size_t j = i;
    for (;;) {
        j = (j + 1) & d->mask;
        uint64_t k = d->table[j];
        if (k == 0) break;
        size_t h = dedup_home(d, k);
        if (((i - h) & d->mask) < ((j - h) & d->mask)) {
            d->table[i] = k;
            if (d->vals) d->vals[i] = d->vals[j];
            i = j;
        }
    }
    d->table[i] = 0;
}

/* Forgets the oldest key (the window is not empty). */
static void dedup_forget_oldest(mmws_dedup *d) {
    uint64_t key = d->fifo[d->head];
    d->head = (d->head + 1) & (d->window - 1);
    d->count--;
    if (key == 0)
        d->has_zero = 0;
    else
        dedup_remove_at(d, dedup_probe(d, key));
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
    size_t slots = 2 * w;
    unsigned bits = 0;
    while (((size_t)1 << bits) < slots) bits++;

    mmws_dedup *d = calloc(1, sizeof *d);
    if (!d) return MMWS_ENOMEM;
    d->table = calloc(slots, sizeof *d->table);
    d->fifo = malloc(w * sizeof *d->fifo);
    if (valued) d->vals = calloc(slots, sizeof *d->vals);
    if (!d->table || !d->fifo || (valued && !d->vals)) {
        mmws_dedup_free(d);
        return MMWS_ENOMEM;
    }
    d->mask = slots - 1;
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
    free(d->table);
    free(d->vals);
    free(d->fifo);
    free(d);
}

int mmws_dedup_check_insert(mmws_dedup *d, uint64_t key) {
    if (!d) return 0;
    if (key == 0) {
        if (d->has_zero) return 1;
    } else {
        size_t i = dedup_probe(d, key);
        if (d->table[i] == key) return 1;
        if (d->count < d->window) {
            /* Nothing to forget, so the slot the probe ended on is the
             * key's. */
            d->table[i] = key;
            if (d->vals) d->vals[i] = 0;
            dedup_fifo_push(d, key);
            return 0;
        }
    }
    mmws__dedup_insert_new(d, key, 0);
    return 0;
}

int mmws_dedup_contains(const mmws_dedup *d, uint64_t key) {
    if (!d) return 0;
    if (key == 0) return d->has_zero;
    return d->table[dedup_probe(d, key)] == key;
}

void mmws_dedup_clear(mmws_dedup *d) {
    if (!d) return;
    memset(d->table, 0, (d->mask + 1) * sizeof *d->table);
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
    size_t i = dedup_probe(d, key);
    if (d->table[i] != key) return 0;
    *val = d->vals ? d->vals[i] : 0;
    return 1;
}

void mmws__dedup_insert_new(mmws_dedup *d, uint64_t key, uint64_t val) {
    /* Forget first: the backward shift may move entries on key's path, so
     * the free slot is looked up after it. */
    if (d->count == d->window) dedup_forget_oldest(d);
    dedup_fifo_push(d, key);
    if (key == 0) {
        d->has_zero = 1;
        d->zero_val = val;
        return;
    }
    size_t i = dedup_probe(d, key);
    d->table[i] = key;
    if (d->vals) d->vals[i] = val;
}

void mmws__dedup_set_value(mmws_dedup *d, uint64_t key, uint64_t val) {
    if (key == 0) {
        if (d->has_zero) d->zero_val = val;
        return;
    }
    size_t i = dedup_probe(d, key);
    if (d->table[i] == key && d->vals) d->vals[i] = val;
}

size_t mmws__dedup_home(const mmws_dedup *d, uint64_t key) {
    return dedup_home(d, key);
}

size_t mmws__dedup_slots(const mmws_dedup *d) { return d->mask + 1; }
