/*
 * spsc_internal.h — the cross-thread hand-off of threaded mode (ring
 * layer, internal): a lock-free single-producer / single-consumer ring of
 * byte messages with the policies of mmws_ring.
 *
 * The producer (the I/O thread) copies each message into an arena sized at
 * creation; the consumer copies it out into its own buffer, so the view it
 * returns never pins arena space while the consumer is busy elsewhere, and
 * the producer can overwrite the oldest unread messages at any time
 * (OVERWRITE_OLDEST) without waiting for the consumer. Every message that
 * does not reach the consumer is counted (dropped_oldest / dropped_newest).
 *
 * Hand-written, not a library queue: this is the hot path between the two
 * threads (one copy in, one copy out, no lock, no syscall unless the
 * consumer sleeps), and it must implement the ring's overwrite policy,
 * which the lock-free queues we could take from Debian (liburcu, boost)
 * do not.
 */
#ifndef MMWS_RING_SPSC_INTERNAL_H
#define MMWS_RING_SPSC_INTERNAL_H

#include <mmws/ring.h>

typedef struct mmws__spsc mmws__spsc;

/* Creates a hand-off with cfg's capacity, arena_bytes and policy (the
 * unique filter is the producer's business). `block` 1: the consumer may
 * sleep in mmws__spsc_wait, so every push checks whether to wake it.
 * Returns 0, MMWS_ECONFIG (sentence in mmws_last_error()) or MMWS_ENOMEM. */
int mmws__spsc_new(const mmws_ring_config *cfg, int block, mmws__spsc **out);
void mmws__spsc_free(mmws__spsc *q);

/* Producer: copies m in. 0, MMWS_EQUEUEFULL (REJECT_NEWEST and full, or
 * the consumer held the only space for too long; counted in
 * dropped_newest), MMWS_ETOOBIG (over the arena; counted in
 * dropped_newest). */
int mmws__spsc_push(mmws__spsc *q, const mmws_msg *m);

/* Consumer: takes the oldest message; out->data is valid until the next
 * pop. 0, MMWS_EINCOMPLETE (empty) or MMWS_ENOMEM (the copy buffer could
 * not grow; the message is counted in dropped_newest). */
int mmws__spsc_pop(mmws__spsc *q, mmws_msg *out);

/* Consumer: waits until the ring is not empty, *closed is set, or
 * deadline_ns (CLOCK_MONOTONIC; UINT64_MAX none) passes. spin 1:
 * busy-waits, else sleeps on a futex (needs block at creation). Returns 1
 * if a message is there, 0 otherwise. */
int mmws__spsc_wait(mmws__spsc *q, int spin, uint64_t deadline_ns,
                    const _Atomic int *closed);

/* Any thread: wakes a consumer sleeping in mmws__spsc_wait. */
void mmws__spsc_wake(mmws__spsc *q);

/* Any thread: counters (inserted, consumed, dropped_oldest,
 * dropped_newest; duplicates stays 0) and the messages unread. */
void mmws__spsc_stats(const mmws__spsc *q, mmws_ring_stats *out);
size_t mmws__spsc_size(const mmws__spsc *q);

#endif /* MMWS_RING_SPSC_INTERNAL_H */
