/*
 * ring.h — mmws_ring, a ring of byte messages (the seed's BytesRingBuffer),
 * and mmws_dedup, the O(1) duplicate filter it and the pool use.
 *
 * The ring holds up to `capacity` messages (rounded up to a power of two)
 * whose bytes live in an arena sized at creation: insert copies, nothing is
 * allocated after mmws_ring_new. When full, the oldest message is
 * overwritten (the seed's default) or the newest is rejected; either way a
 * drop counter says so — never silent loss. Single-threaded: use it on one
 * thread (the pool's threaded mode adds its own hand-off).
 *
 * Bounds: capacity 1..2^30, arena_bytes 1..2^40, unique_window <= 2^30.
 * Memory: the arena, 32 bytes per slot, and for the unique filter 16 bytes
 * per window entry.
 */
#ifndef MMWS_RING_H
#define MMWS_RING_H

#include <mmws/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- dedup -- */

/*
 * A filter over the last `window` 64-bit keys: "seen" answers in O(1), the
 * oldest key is forgotten when a new one pushes it out of the window.
 */
typedef struct mmws_dedup mmws_dedup;

/* Creates a filter remembering `window` keys (> 0; rounded up to a power
 * of two). Returns 0, MMWS_EINVAL or MMWS_ENOMEM. */
MMWS_API int mmws_dedup_new(size_t window, mmws_dedup **out);
MMWS_API void mmws_dedup_free(mmws_dedup *d);

/* Returns 1 if key is among the remembered keys, else remembers it
 * (forgetting the oldest if the window is full) and returns 0. */
MMWS_API int mmws_dedup_check_insert(mmws_dedup *d, uint64_t key);

/* Returns 1 if key is remembered, without inserting. */
MMWS_API int mmws_dedup_contains(const mmws_dedup *d, uint64_t key);

/* Forgets every key. */
MMWS_API void mmws_dedup_clear(mmws_dedup *d);

/* XXH3-64 of data (the default dedup key). */
MMWS_API uint64_t mmws_hash64(const void *data, size_t len);

/* -------------------------------------------------------------- ring -- */

typedef struct mmws_ring mmws_ring;

typedef enum mmws_ring_policy {
    MMWS_RING_OVERWRITE_OLDEST = 0, /* the seed's behaviour */
    MMWS_RING_REJECT_NEWEST = 1
} mmws_ring_policy;

typedef struct mmws_ring_config {
    size_t capacity;          /* messages; rounded up to a power of two.
                                 Default 1024 */
    size_t arena_bytes;       /* bytes for payloads. Default 4 MiB */
    mmws_ring_policy policy;  /* default MMWS_RING_OVERWRITE_OLDEST */
    int only_insert_unique;   /* 1: a message equal to one inserted within
                                 the last unique_window is not stored */
    size_t unique_window;     /* keys remembered by the unique filter; 0
                                 (the default) means capacity; rounded up
                                 to a power of two. A key stays remembered
                                 after its message leaves the ring */
} mmws_ring_config;

typedef struct mmws_ring_stats {
    uint64_t inserted;        /* messages stored */
    uint64_t consumed;        /* messages taken by consume */
    uint64_t dropped_oldest;  /* overwritten before being consumed */
    uint64_t dropped_newest;  /* rejected because the ring was full */
    uint64_t duplicates;      /* refused by the unique filter */
} mmws_ring_stats;

MMWS_API void mmws_ring_config_default(mmws_ring_config *cfg);

/* Creates a ring. Returns 0, MMWS_ECONFIG (a field out of range; the
 * sentence is in mmws_last_error()) or MMWS_ENOMEM. */
MMWS_API int mmws_ring_new(const mmws_ring_config *cfg, mmws_ring **out);
MMWS_API void mmws_ring_free(mmws_ring *r);

/*
 * Copies m (data, len and the metadata fields) into the ring. Returns 0
 * (stored), 1 (a duplicate, not stored; counted), MMWS_EQUEUEFULL (full
 * with REJECT_NEWEST; counted in dropped_newest), MMWS_ETOOBIG (larger
 * than the arena), or MMWS_EINVAL. With OVERWRITE_OLDEST, the oldest
 * messages are dropped (and counted) until the new one fits; if it cannot
 * fit even then (a message over about half the arena while the last
 * consumed view still holds its bytes), MMWS_EQUEUEFULL, counted in
 * dropped_newest.
 */
MMWS_API int mmws_ring_insert(mmws_ring *r, const mmws_msg *m);

/* Takes the oldest message into *out; out->data stays valid until the
 * next consume (or clear/free), an empty one included. Returns 0 or
 * MMWS_EINCOMPLETE if empty. */
MMWS_API int mmws_ring_consume(mmws_ring *r, mmws_msg *out);

/* Calls cb for every message, oldest first, consuming them; returns how
 * many. data is valid during the call. */
MMWS_API size_t mmws_ring_consume_all(mmws_ring *r,
                                      void (*cb)(void *user, const mmws_msg *m),
                                      void *user);

/* Views without consuming (valid until the next insert, consume or clear).
 * Index 0 is the oldest. Return 0 or MMWS_EINCOMPLETE (empty / out of
 * range). */
MMWS_API int mmws_ring_peek_oldest(const mmws_ring *r, mmws_msg *out);
MMWS_API int mmws_ring_peek_newest(const mmws_ring *r, mmws_msg *out);
MMWS_API int mmws_ring_get(const mmws_ring *r, size_t index, mmws_msg *out);

MMWS_API size_t mmws_ring_size(const mmws_ring *r);
MMWS_API size_t mmws_ring_capacity(const mmws_ring *r);
MMWS_API int mmws_ring_empty(const mmws_ring *r);
MMWS_API int mmws_ring_full(const mmws_ring *r);
/* Drops every message (not counted as dropped) and the unique filter. */
MMWS_API void mmws_ring_clear(mmws_ring *r);
MMWS_API void mmws_ring_stats_get(const mmws_ring *r, mmws_ring_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* MMWS_RING_H */
