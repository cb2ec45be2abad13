/*
 * ring.c — mmws_ring, a FIFO of byte messages (the seed's BytesRingBuffer).
 *
 * Metadata lives in a power-of-two array of slots (message number n in
 * slots[n & mask]); payload bytes live in one arena used as a circular
 * byte buffer in which each message is contiguous. A message that does not
 * fit before the arena's end starts again at offset 0; the skipped tail is
 * wasted until the oldest message moves past it.
 *
 * Arena positions are kept twice: physically (an offset in the arena) and
 * as a 64-bit virtual position that only grows — every step the writer
 * takes, including a skip, adds the same amount to both. A message may be
 * written at virtual position p only if it ends before the oldest live
 * message comes round again:
 *
 *     p + len <= oldest.v + arena_bytes
 *
 * so nothing is accounted when a message leaves: skipped tails and holes
 * are reclaimed simply because the oldest position moves on.
 *
 * The consumed view. consume hands out a pointer into the arena that stays
 * valid until the next consume, so the last consumed message's bytes (the
 * "reserved" range) must survive inserts. They are no longer part of the
 * FIFO — dropping live messages never frees them — so the writer jumps over
 * the reserved range the way it jumps over the arena's tail. If a message
 * cannot fit anywhere outside the reserved range even with the ring empty,
 * OVERWRITE_OLDEST cannot make room without breaking the view: the insert
 * is refused with MMWS_EQUEUEFULL and counted in dropped_newest, and no
 * live message is dropped in vain. This needs a message larger than about
 * half the arena; size the arena at least twice the largest message to
 * never see it.
 *
 * only_insert_unique keeps a dedup filter of XXH3 payload keys whose value
 * is the number of the message each key last came from. A key seen before
 * is a duplicate if that message is gone (consumed or dropped: the hash is
 * trusted), or if it is still in the ring (or the reserved view) and its
 * bytes are equal. Different bytes behind the same key are a collision:
 * the message is stored, and the key now names it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring_internal.h"

/* Largest arena: 1 TiB, far below where virtual positions could wrap. */
#define RING_MAX_ARENA ((size_t)1 << 40)

typedef struct ring_slot {
    uint64_t v;        /* virtual arena position of the first byte */
    size_t off;        /* physical offset of the first byte */
    size_t len;        /* payload bytes */
    uint64_t recv_ns;  /* the inserted message's metadata, copied */
    uint64_t conn_id;
    uint64_t seq;
    uint8_t opcode;
} ring_slot;

struct mmws_ring {
    ring_slot *slots;         /* cap entries */
    uint8_t *arena;           /* arena_bytes bytes of payload */
    size_t mask;              /* cap − 1; cap is a power of two */
    size_t arena_bytes;       /* the arena's size */
    uint64_t head;            /* number of the oldest live message */
    uint64_t tail;            /* number the next stored message gets */
    uint64_t tv;              /* virtual position where the next message
                                 may start */
    size_t tp;                /* the same position, physical (< arena) */
    int res_valid;            /* the last consumed message's bytes are
                                 reserved (its view is still valid) */
    size_t res_off;           /* their physical range */
    size_t res_len;
    uint64_t res_n;           /* that message's number */
    mmws_ring_policy policy;  /* what insert does when full */
    mmws_dedup *dedup;        /* only_insert_unique: payload key → number
                                 of the message it last came from; or NULL */
    mmws_ring_stats stats;    /* counters for mmws_ring_stats_get */
};

/* The payload hash; tests replace it to force collisions. */
static uint64_t (*ring_hash)(const void *, size_t) = mmws_hash64;

void mmws__ring_set_hash_for_test(uint64_t (*fn)(const void *, size_t)) {
    ring_hash = fn ? fn : mmws_hash64;
}

/* Writes a sentence for mmws_last_error() and returns rc. */
__attribute__((format(printf, 2, 3))) static int
ring_fail(int rc, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    mmws__set_last_error(buf);
    return rc;
}

void mmws_ring_config_default(mmws_ring_config *cfg) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->capacity = 1024;
    cfg->arena_bytes = (size_t)4 << 20;
    cfg->policy = MMWS_RING_OVERWRITE_OLDEST;
    cfg->only_insert_unique = 0;
    cfg->unique_window = 0; /* 0: the same as the (rounded) capacity */
}

int mmws__ring_cfg_check(const mmws_ring_config *cfg) {
    if (cfg->capacity == 0 || cfg->capacity > MMWS__RING_MAX_COUNT)
        return ring_fail(MMWS_ECONFIG,
                         "ring capacity must be 1..%zu messages (got %zu)",
                         MMWS__RING_MAX_COUNT, cfg->capacity);
    if (cfg->arena_bytes == 0 || cfg->arena_bytes > RING_MAX_ARENA)
        return ring_fail(MMWS_ECONFIG,
                         "ring arena_bytes must be 1..%zu (got %zu)",
                         RING_MAX_ARENA, cfg->arena_bytes);
    if (cfg->policy != MMWS_RING_OVERWRITE_OLDEST &&
        cfg->policy != MMWS_RING_REJECT_NEWEST)
        return ring_fail(MMWS_ECONFIG,
                         "ring policy must be MMWS_RING_OVERWRITE_OLDEST or "
                         "MMWS_RING_REJECT_NEWEST (got %d)",
                         (int)cfg->policy);
    if (cfg->only_insert_unique != 0 && cfg->only_insert_unique != 1)
        return ring_fail(MMWS_ECONFIG,
                         "ring only_insert_unique must be 0 or 1 (got %d)",
                         cfg->only_insert_unique);
    if (cfg->unique_window > MMWS__RING_MAX_COUNT)
        return ring_fail(MMWS_ECONFIG,
                         "ring unique_window must be 0 (the capacity) or "
                         "1..%zu (got %zu)",
                         MMWS__RING_MAX_COUNT, cfg->unique_window);
    return 0;
}

int mmws_ring_new(const mmws_ring_config *cfg, mmws_ring **out) {
    mmws_ring_config def;
    if (!out)
        return ring_fail(MMWS_EINVAL, "mmws_ring_new: out must not be NULL");
    *out = NULL;
    if (!cfg) {
        mmws_ring_config_default(&def);
        cfg = &def;
    }
    int rc = mmws__ring_cfg_check(cfg);
    if (rc) return rc;

    size_t cap = 1;
    while (cap < cfg->capacity) cap <<= 1;
    mmws_ring *r = calloc(1, sizeof *r);
    if (!r) return ring_fail(MMWS_ENOMEM, "mmws_ring_new: out of memory");
    r->slots = calloc(cap, sizeof *r->slots);
    r->arena = malloc(cfg->arena_bytes);
    if (!r->slots || !r->arena) {
        mmws_ring_free(r);
        return ring_fail(MMWS_ENOMEM,
                         "mmws_ring_new: out of memory for %zu slots and a "
                         "%zu-byte arena",
                         cap, cfg->arena_bytes);
    }
    if (cfg->only_insert_unique) {
        size_t w = cfg->unique_window ? cfg->unique_window : cap;
        if (mmws__dedup_new_valued(w, &r->dedup) != 0) {
            mmws_ring_free(r);
            return ring_fail(MMWS_ENOMEM,
                             "mmws_ring_new: out of memory for a unique "
                             "window of %zu",
                             w);
        }
    }
    r->mask = cap - 1;
    r->arena_bytes = cfg->arena_bytes;
    r->policy = cfg->policy;
    *out = r;
    return 0;
}

void mmws_ring_free(mmws_ring *r) {
    if (!r) return;
    mmws_dedup_free(r->dedup);
    free(r->arena);
    free(r->slots);
    free(r);
}

static inline size_t ring_count(const mmws_ring *r) {
    return (size_t)(r->tail - r->head);
}

/* Fills out from a slot. */
static inline void ring_view(const mmws_ring *r, const ring_slot *s,
                             mmws_msg *out) {
    out->data = r->arena + s->off;
    out->len = s->len;
    out->opcode = s->opcode;
    out->recv_ns = s->recv_ns;
    out->conn_id = s->conn_id;
    out->seq = s->seq;
}

/*
 * Finds where a message of len bytes (≤ arena) can start without touching
 * a live message or the reserved range: from the tail, skipping the
 * arena's end and the reserved range as needed. Returns 1 with the virtual
 * and physical start, or 0 if it does not fit before the oldest live
 * message (the caller drops it or refuses the message).
 */
static int ring_place(const mmws_ring *r, size_t len, uint64_t *pv,
                      size_t *pp) {
    const size_t a = r->arena_bytes;
    const size_t rend = r->res_off + r->res_len;
    const int obstacle = r->res_valid && r->res_len > 0;
    uint64_t p = r->tv, limit;
    size_t ph = r->tp;
    if (r->tail != r->head) {
        limit = r->slots[r->head & r->mask].v + a;
    } else {
        /* Empty: start afresh right after the reserved range (or at 0),
         * so all the rest of the arena is one free run. */
        ph = obstacle ? (rend == a ? 0 : rend) : 0;
        limit = p + a;
    }
    for (;;) {
        if (len > a - ph) {
            p += a - ph;
            ph = 0;
        } else if (obstacle && ph < rend && ph + len > r->res_off) {
            p += rend - ph;
            ph = rend;
        } else {
            break;
        }
        if (p + len > limit) return 0;
    }
    if (p + len > limit) return 0;
    *pv = p;
    *pp = ph;
    return 1;
}

/* 1 if a message of len bytes can be placed once every live message is
 * dropped, i.e. it fits outside the reserved range (see ring_place). */
static int ring_fits_when_empty(const mmws_ring *r, size_t len) {
    if (!r->res_valid || r->res_len == 0) return 1;
    size_t rend = r->res_off + r->res_len;
    return len <= r->arena_bytes - rend || len <= r->res_off;
}

static inline void ring_drop_oldest(mmws_ring *r) {
    r->head++;
    r->stats.dropped_oldest++;
}

/* The bytes of message number n if they are still in the arena (live or
 * the reserved view); 0 if not. */
static int ring_find_bytes(const mmws_ring *r, uint64_t n,
                           const uint8_t **data, size_t *len) {
    if (n - r->head < r->tail - r->head) {
        const ring_slot *s = &r->slots[n & r->mask];
        *data = r->arena + s->off;
        *len = s->len;
        return 1;
    }
    if (r->res_valid && n == r->res_n) {
        *data = r->arena + r->res_off;
        *len = r->res_len;
        return 1;
    }
    return 0;
}

int mmws_ring_insert(mmws_ring *r, const mmws_msg *m) {
    if (!r || !m || (!m->data && m->len)) return MMWS_EINVAL;
    const size_t len = m->len;
    if (len > r->arena_bytes) return MMWS_ETOOBIG;

    uint64_t key = 0;
    int known = 0; /* the key is already in the filter (a collision) */
    if (r->dedup) {
        uint64_t n;
        key = ring_hash(m->data, len);
        if (mmws__dedup_find(r->dedup, key, &n)) {
            const uint8_t *data;
            size_t dlen;
            if (!ring_find_bytes(r, n, &data, &dlen) ||
                (dlen == len && (len == 0 || memcmp(data, m->data, len) == 0))) {
                r->stats.duplicates++;
                return 1;
            }
            known = 1;
        }
    }

    uint64_t pv;
    size_t pp;
    if (r->policy == MMWS_RING_REJECT_NEWEST) {
        if (ring_count(r) > r->mask || !ring_place(r, len, &pv, &pp)) {
            r->stats.dropped_newest++;
            return MMWS_EQUEUEFULL;
        }
    } else {
        if (!ring_fits_when_empty(r, len)) {
            r->stats.dropped_newest++;
            return MMWS_EQUEUEFULL;
        }
        if (ring_count(r) > r->mask) ring_drop_oldest(r);
        while (!ring_place(r, len, &pv, &pp)) {
            if (r->tail == r->head) { /* not reached: checked above */
                r->stats.dropped_newest++;
                return MMWS_EQUEUEFULL;
            }
            ring_drop_oldest(r);
        }
    }

    /* memmove: m->data may be a peeked view of a message just dropped. */
    if (len) memmove(r->arena + pp, m->data, len);
    uint64_t n = r->tail++;
    ring_slot *s = &r->slots[n & r->mask];
    s->v = pv;
    s->off = pp;
    s->len = len;
    s->recv_ns = m->recv_ns;
    s->conn_id = m->conn_id;
    s->seq = m->seq;
    s->opcode = m->opcode;
    r->tv = pv + len;
    r->tp = pp + len == r->arena_bytes ? 0 : pp + len;
    r->stats.inserted++;
    if (r->dedup) {
        if (known)
            mmws__dedup_set_value(r->dedup, key, n);
        else
            mmws__dedup_insert_new(r->dedup, key, n);
    }
    return 0;
}

int mmws_ring_consume(mmws_ring *r, mmws_msg *out) {
    if (!r || !out) return MMWS_EINVAL;
    r->res_valid = 0;
    if (r->tail == r->head) return MMWS_EINCOMPLETE;
    const ring_slot *s = &r->slots[r->head & r->mask];
    ring_view(r, s, out);
    r->res_valid = 1;
    r->res_off = s->off;
    r->res_len = s->len;
    r->res_n = r->head;
    r->head++;
    r->stats.consumed++;
    return 0;
}

size_t mmws_ring_consume_all(mmws_ring *r,
                             void (*cb)(void *user, const mmws_msg *m),
                             void *user) {
    if (!r || !cb) return 0;
    /* At most the messages present now, so a callback that inserts
     * cannot keep the loop going forever. */
    size_t todo = ring_count(r), n = 0;
    mmws_msg m;
    while (n < todo && mmws_ring_consume(r, &m) == 0) {
        cb(user, &m);
        n++;
    }
    r->res_valid = 0; /* the last view ended with its callback */
    return n;
}

int mmws_ring_get(const mmws_ring *r, size_t index, mmws_msg *out) {
    if (!r || !out) return MMWS_EINVAL;
    if (index >= ring_count(r)) return MMWS_EINCOMPLETE;
    ring_view(r, &r->slots[(r->head + index) & r->mask], out);
    return 0;
}

int mmws_ring_peek_oldest(const mmws_ring *r, mmws_msg *out) {
    return mmws_ring_get(r, 0, out);
}

int mmws_ring_peek_newest(const mmws_ring *r, mmws_msg *out) {
    if (!r || !out) return MMWS_EINVAL;
    if (r->tail == r->head) return MMWS_EINCOMPLETE;
    ring_view(r, &r->slots[(r->tail - 1) & r->mask], out);
    return 0;
}

size_t mmws_ring_size(const mmws_ring *r) { return r ? ring_count(r) : 0; }

size_t mmws_ring_capacity(const mmws_ring *r) { return r ? r->mask + 1 : 0; }

int mmws_ring_empty(const mmws_ring *r) { return !r || r->tail == r->head; }

int mmws_ring_full(const mmws_ring *r) {
    return r && ring_count(r) > r->mask;
}

void mmws_ring_clear(mmws_ring *r) {
    if (!r) return;
    r->head = r->tail;
    r->tp = 0;
    r->res_valid = 0;
    mmws_dedup_clear(r->dedup);
}

void mmws_ring_stats_get(const mmws_ring *r, mmws_ring_stats *out) {
    if (!out) return;
    if (!r) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = r->stats;
}
