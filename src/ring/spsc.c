/*
 * spsc.c — the lock-free single-producer / single-consumer hand-off of
 * threaded mode (see spsc_internal.h for why it is hand-written).
 *
 * Indexes are 64-bit message counts that never wrap in practice:
 *   head     written by the producer only: messages published;
 *   tail     the oldest unread message; advanced by the consumer (pop) and
 *            by the producer (dropping the oldest under OVERWRITE_OLDEST),
 *            always by compare-and-swap, so each message is taken by
 *            exactly one of them;
 *   reading  the message the consumer is copying out (NONE otherwise).
 * The consumer announces `reading` before it claims the message with its
 * CAS on `tail`, and clears it after the copy. The producer reuses slots
 * and arena bytes only below min(tail, reading): a message the consumer
 * claimed is never overwritten while it is being copied, and every store
 * and load of tail and reading is sequentially consistent, so a producer
 * that sees the consumer's claim in `tail` also sees its `reading`.
 *
 * Payloads live in an arena of arena_bytes; each message is contiguous
 * (skipping the arena's end when it does not fit there). Byte positions
 * are also 64-bit counts: the live bytes are [start of the oldest live
 * message, byte_head), and a new message fits while that span stays
 * within the arena.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring/ring_internal.h"
#include "ring/spsc_internal.h"

#define NONE UINT64_MAX
/* How long the producer waits for the consumer to finish copying the one
 * message blocking the space it needs (a memcpy: microseconds; longer only
 * if the consumer thread was preempted mid-copy) before it drops the new
 * message instead (counted in dropped_newest): HOLD_SPINS pauses, then
 * sched_yield (a preempted consumer sharing our core gets to finish) until
 * HOLD_NS have passed. */
#define HOLD_SPINS 2000u
#define HOLD_NS 2000000ull
/* Polls of an empty ring before a blocking wait goes to sleep: a message
 * arriving within about a microsecond costs no futex round trip. */
#define PRE_SLEEP_SPINS 256u
/* First size of the consumer's copy buffer. */
#define BUF_MIN 4096u

typedef struct slot {
    uint64_t mono;    /* byte position as a count (see above) */
    uint64_t at;      /* its offset in the arena (mono % arena size) */
    size_t len;
    uint64_t recv_ns, conn_id, seq;
    uint8_t opcode;
} slot;

struct mmws__spsc {
    /* Set at creation, read by both. */
    slot *slots;
    uint8_t *arena;
    uint64_t mask;            /* slots - 1 */
    uint64_t asize;           /* arena bytes */
    mmws_ring_policy policy;
    int block;

    /* Producer only. */
    _Alignas(64) uint64_t phead;  /* its copy of head */
    uint64_t byte_head;           /* bytes used, as a count */
    uint64_t at_head;             /* byte_head's offset in the arena */
    uint64_t free_below;          /* a past min(tail, reading): see push */
    _Atomic uint64_t inserted, dropped_oldest, dropped_newest;

    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) _Atomic uint64_t reading;
    _Atomic uint64_t consumed;
    _Atomic uint32_t sleeping;    /* futex word: 1 while the consumer
                                     sleeps or is about to */

    /* Consumer only. */
    _Alignas(64) uint64_t head_seen; /* a past head: see pop */
    uint8_t *buf;
    size_t buf_cap;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static uint64_t mono_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int mmws__spsc_new(const mmws_ring_config *cfg, int block, mmws__spsc **out) {
    int rc = mmws__ring_cfg_check(cfg);
    if (rc) return rc;
    size_t n = 1;
    while (n < cfg->capacity) n <<= 1;
    /* The struct is cache-line aligned so the two threads' fields do not
     * share lines; aligned_alloc needs a size that is a multiple. */
    size_t sz = (sizeof(mmws__spsc) + 63) & ~(size_t)63;
    mmws__spsc *q = aligned_alloc(64, sz);
    if (!q) goto nomem;
    memset(q, 0, sizeof *q);
    q->slots = calloc(n, sizeof *q->slots);
    q->arena = malloc(cfg->arena_bytes);
    q->buf_cap = cfg->arena_bytes < BUF_MIN ? cfg->arena_bytes : BUF_MIN;
    q->buf = malloc(q->buf_cap ? q->buf_cap : 1);
    if (!q->slots || !q->arena || !q->buf) goto nomem;
    q->mask = n - 1;
    q->asize = cfg->arena_bytes;
    q->policy = cfg->policy;
    q->block = block;
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    atomic_init(&q->reading, NONE);
    atomic_init(&q->consumed, 0);
    atomic_init(&q->sleeping, 0);
    atomic_init(&q->inserted, 0);
    atomic_init(&q->dropped_oldest, 0);
    atomic_init(&q->dropped_newest, 0);
    *out = q;
    return 0;
nomem:
    mmws__spsc_free(q);
    mmws__set_last_error("threaded mode: out of memory for the hand-off ring");
    return MMWS_ENOMEM;
}

void mmws__spsc_free(mmws__spsc *q) {
    if (!q) return;
    free(q->slots);
    free(q->arena);
    free(q->buf);
    free(q);
}

static void drop_newest(mmws__spsc *q) {
    atomic_fetch_add_explicit(&q->dropped_newest, 1, memory_order_relaxed);
}

int mmws__spsc_push(mmws__spsc *q, const mmws_msg *m) {
    size_t len = m->len;
    if (len > q->asize) {
        drop_newest(q);
        return MMWS_ETOOBIG;
    }
    uint64_t h = q->phead, pos, at, hold_end = 0;
    unsigned spins = 0;
    at = q->at_head;
    pos = q->byte_head;
    if (at + len > q->asize) { /* skip the arena's end */
        pos += q->asize - at;
        at = 0;
    }
    /* Fast path: what was free when we last looked is still free (the
     * limit only rises, except for a stale claim whose CAS must fail and
     * which therefore never reads), so the consumer's cache lines are
     * read only when the ring looks full. */
    uint64_t f = q->free_below;
    uint64_t live = f < h ? q->slots[f & q->mask].mono : pos;
    if (h - f <= q->mask && pos + len - live <= q->asize) goto store;
    for (;;) {
        uint64_t t = atomic_load(&q->tail);
        uint64_t r = atomic_load(&q->reading);
        f = r < t ? r : t; /* nothing below f is in use */
        q->free_below = f;
        live = f < h ? q->slots[f & q->mask].mono : pos;
        if (h - f <= q->mask && pos + len - live <= q->asize) break;
        if (q->policy == MMWS_RING_REJECT_NEWEST) {
            drop_newest(q);
            return MMWS_EQUEUEFULL;
        }
        if (r != NONE) {
            /* The consumer is copying message r out; wait for it rather
             * than overwrite what it reads. */
            if (++spins <= HOLD_SPINS) {
                cpu_relax();
                continue;
            }
            uint64_t now = mono_now_ns();
            if (!hold_end) hold_end = now + HOLD_NS;
            if (now >= hold_end) {
                drop_newest(q);
                return MMWS_EQUEUEFULL;
            }
            sched_yield();
            continue;
        }
        /* Drop the oldest unread message, unless the consumer takes it
         * first (then the CAS fails and we look again). */
        if (atomic_compare_exchange_strong(&q->tail, &t, t + 1))
            atomic_fetch_add_explicit(&q->dropped_oldest, 1,
                                      memory_order_relaxed);
    }
store:;
    slot *s = &q->slots[h & q->mask];
    s->mono = pos;
    s->at = at;
    s->len = len;
    s->recv_ns = m->recv_ns;
    s->conn_id = m->conn_id;
    s->seq = m->seq;
    s->opcode = m->opcode;
    if (len) memcpy(q->arena + at, m->data, len);
    q->byte_head = pos + len;
    q->at_head = at + len;
    q->phead = h + 1;
    atomic_fetch_add_explicit(&q->inserted, 1, memory_order_relaxed);
    if (q->block) {
        /* Publish, then look for a sleeper: both sequentially consistent,
         * against the consumer's "sleeping = 1, then look at head". */
        atomic_store(&q->head, h + 1);
        if (atomic_load_explicit(&q->sleeping, memory_order_seq_cst))
            mmws__spsc_wake(q);
    } else {
        atomic_store_explicit(&q->head, h + 1, memory_order_release);
    }
    return 0;
}

int mmws__spsc_pop(mmws__spsc *q, mmws_msg *out) {
    for (;;) {
        uint64_t t = atomic_load(&q->tail);
        uint64_t h = q->head_seen;
        if (t >= h) { /* look at the producer's line only when needed */
            h = atomic_load_explicit(&q->head, memory_order_acquire);
            q->head_seen = h;
            if (t >= h) return MMWS_EINCOMPLETE;
        }
        atomic_store(&q->reading, t);
        if (!atomic_compare_exchange_strong(&q->tail, &t, t + 1))
            continue; /* the producer dropped it: take the next */
        const slot *s = &q->slots[t & q->mask];
        size_t len = s->len;
        if (len > q->buf_cap) {
            size_t cap = q->buf_cap * 2 > len ? q->buf_cap * 2 : len;
            if (cap > q->asize) cap = q->asize;
            uint8_t *nb = realloc(q->buf, cap);
            if (!nb) {
                atomic_store(&q->reading, NONE);
                drop_newest(q);
                mmws__set_last_error("threaded mode: out of memory growing "
                                     "the consumer's copy buffer");
                return MMWS_ENOMEM;
            }
            q->buf = nb;
            q->buf_cap = cap;
        }
        if (len) memcpy(q->buf, q->arena + s->at, len);
        out->data = q->buf;
        out->len = len;
        out->opcode = s->opcode;
        out->recv_ns = s->recv_ns;
        out->conn_id = s->conn_id;
        out->seq = s->seq;
        atomic_store(&q->reading, NONE);
        atomic_fetch_add_explicit(&q->consumed, 1, memory_order_relaxed);
        return 0;
    }
}

static int ready(const mmws__spsc *q) {
    return atomic_load_explicit(&q->head, memory_order_acquire) !=
           atomic_load_explicit(&q->tail, memory_order_relaxed);
}

int mmws__spsc_wait(mmws__spsc *q, int spin, uint64_t deadline_ns,
                    const _Atomic int *closed) {
    for (unsigned i = 0;; i++) {
        if (ready(q)) return 1;
        if (closed && atomic_load(closed)) return 0;
        if (spin || !q->block || i < PRE_SLEEP_SPINS) {
            cpu_relax();
            if ((i & 255u) == 255u && deadline_ns != UINT64_MAX &&
                mono_now_ns() >= deadline_ns)
                return 0;
            continue;
        }
        uint64_t now = mono_now_ns();
        if (now >= deadline_ns) return 0;
        atomic_store(&q->sleeping, 1);
        if (ready(q) || (closed && atomic_load(closed))) {
            atomic_store(&q->sleeping, 0);
            continue;
        }
        /* Sleep at most a second at a time: a lost wake-up (there should
         * be none) would cost a second, never a hang. */
        uint64_t left = deadline_ns - now;
        if (left > 1000000000ull) left = 1000000000ull;
        struct timespec ts = {(time_t)(left / 1000000000ull),
                              (long)(left % 1000000000ull)};
        syscall(SYS_futex, &q->sleeping, FUTEX_WAIT_PRIVATE, 1, &ts, NULL, 0);
        atomic_store(&q->sleeping, 0);
    }
}

void mmws__spsc_wake(mmws__spsc *q) {
    if (atomic_exchange(&q->sleeping, 0))
        syscall(SYS_futex, &q->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void mmws__spsc_stats(const mmws__spsc *q, mmws_ring_stats *out) {
    memset(out, 0, sizeof *out);
    out->inserted = atomic_load_explicit(&q->inserted, memory_order_relaxed);
    out->consumed = atomic_load_explicit(&q->consumed, memory_order_relaxed);
    out->dropped_oldest =
        atomic_load_explicit(&q->dropped_oldest, memory_order_relaxed);
    out->dropped_newest =
        atomic_load_explicit(&q->dropped_newest, memory_order_relaxed);
}

size_t mmws__spsc_size(const mmws__spsc *q) {
    uint64_t t = atomic_load(&q->tail);
    uint64_t h = atomic_load(&q->head);
    return h > t ? (size_t)(h - t) : 0;
}
