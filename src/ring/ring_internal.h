/*
 * ring_internal.h — what ring.c needs from dedup.c beyond the public API,
 * and the hooks the tests use. Not public.
 */
#ifndef MMWS_RING_INTERNAL_H
#define MMWS_RING_INTERNAL_H

#include <mmws/ring.h>

#include "codec/err_internal.h"

/* Largest dedup window, ring capacity and unique_window (2^30). */
#define MMWS__RING_MAX_COUNT ((size_t)1 << 30)

/* Checks every field of a ring config; 0 or MMWS_ECONFIG with the
 * sentence in mmws_last_error(). */
int mmws__ring_cfg_check(const mmws_ring_config *cfg);

/*
 * A dedup filter that also keeps one 64-bit value per remembered key (the
 * ring stores the number of the message the key came from, to find it for
 * the byte comparison). The public functions work on it unchanged; they
 * store value 0.
 */
int mmws__dedup_new_valued(size_t window, mmws_dedup **out);

/* Returns 1 and the key's value in *val if key is remembered, else 0.
 * The value is 0 for a filter made by mmws_dedup_new. */
int mmws__dedup_find(const mmws_dedup *d, uint64_t key, uint64_t *val);

/* Remembers key, which must not be remembered yet, with val (forgetting
 * the oldest key if the window is full). */
void mmws__dedup_insert_new(mmws_dedup *d, uint64_t key, uint64_t val);

/* Replaces the value of a remembered key; no-op if it is not remembered. */
void mmws__dedup_set_value(mmws_dedup *d, uint64_t key, uint64_t val);

/* The bucket where key's probe starts (tests use it to build keys that
 * collide in the table), and the number of buckets (of 8 keys each). */
size_t mmws__dedup_home(const mmws_dedup *d, uint64_t key);
size_t mmws__dedup_buckets(const mmws_dedup *d);

/* Tests only: replaces the ring's payload hash (NULL restores
 * mmws_hash64), to force collisions between different payloads. Affects
 * every ring in the process; not thread-safe. */
void mmws__ring_set_hash_for_test(uint64_t (*fn)(const void *data,
                                                 size_t len));



#endif /* MMWS_RING_INTERNAL_H */
