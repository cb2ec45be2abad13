/*
 * feed.h — drives the frame parser the way a connection does: bytes arrive
 * in chunks, are appended to a receive buffer, and every complete frame in
 * it is parsed in place and consumed. Used by the frame and round-trip
 * tests to compare the events of the same bytes fed whole, one byte at a
 * time and split at every offset.
 */
#ifndef MMWS_TEST_FEED_H
#define MMWS_TEST_FEED_H

#include "test.h"

#define FEED_MAX_EVENTS 20000

typedef struct feed_event {
    uint8_t opcode, fin, message_opcode;
    size_t off, len; /* payload bytes in feed_result.data */
} feed_event;

typedef struct feed_result {
    int rc;              /* 0, MMWS_EINCOMPLETE (bytes left over) or error */
    uint16_t close_code; /* on error */
    size_t nevents;
    feed_event ev[FEED_MAX_EVENTS];
    size_t data_len, data_cap;
    uint8_t *data;       /* payloads, concatenated */
} feed_result;

static inline feed_result *feed_result_new(size_t data_cap) {
    feed_result *r = calloc(1, sizeof *r);
    r->data = malloc(data_cap ? data_cap : 1);
    r->data_cap = data_cap;
    return r;
}

static inline void feed_result_free(feed_result *r) {
    if (!r) return;
    free(r->data);
    free(r);
}

/*
 * Feeds in[0..n) in chunks ending at cuts[0..ncuts) (ascending, the last
 * may be < n: then n is appended) to a fresh parser. Fills *r.
 */
static inline void feed_run(const uint8_t *in, size_t n, const size_t *cuts,
                     size_t ncuts, uint64_t max_message, unsigned flags,
                     feed_result *r) {
    mmws_frame_parser p;
    mmws_frame f;
    size_t pos = 0;
    r->rc = 0;
    r->close_code = 0;
    r->nevents = 0;
    r->data_len = 0;
    if (mmws_frame_parser_init(&p, max_message, flags) != 0) {
        r->rc = MMWS_EINVAL;
        return;
    }
    for (size_t c = 0; c <= ncuts; c++) {
        size_t have = c < ncuts ? cuts[c] : n;
        if (have > n) have = n;
        for (;;) {
            int rc = mmws_frame_parse(&p, in + pos, have - pos, &f);
            if (rc == MMWS_EINCOMPLETE) {
                CHECK(f.frame_len > have - pos);
                break;
            }
            if (rc != 0) {
                r->rc = rc;
                r->close_code = p.close_code;
                return;
            }
            CHECK(f.frame_len <= have - pos);
            CHECK(f.payload == in + pos + f.header_len);
            CHECK_EQ(f.frame_len, f.header_len + f.payload_len);
            if (r->nevents < FEED_MAX_EVENTS &&
                r->data_len + f.payload_len <= r->data_cap) {
                feed_event *e = &r->ev[r->nevents++];
                e->opcode = f.opcode;
                e->fin = f.fin;
                e->message_opcode = f.message_opcode;
                e->off = r->data_len;
                e->len = (size_t)f.payload_len;
                if (f.payload_len)
                    memcpy(r->data + r->data_len, f.payload, e->len);
                r->data_len += e->len;
            } else {
                r->rc = MMWS_ENOSPC; /* test capacity, not a parser error */
                return;
            }
            pos += (size_t)f.frame_len;
        }
        if (have == n) break;
    }
    if (pos != n) r->rc = MMWS_EINCOMPLETE;
}

/* 1 if two results are identical (events, payload bytes, verdict). */
static inline int feed_same(const feed_result *a, const feed_result *b) {
    if (a->rc != b->rc || a->close_code != b->close_code ||
        a->nevents != b->nevents || a->data_len != b->data_len)
        return 0;
    for (size_t i = 0; i < a->nevents; i++) {
        const feed_event *x = &a->ev[i], *y = &b->ev[i];
        if (x->opcode != y->opcode || x->fin != y->fin ||
            x->message_opcode != y->message_opcode || x->off != y->off ||
            x->len != y->len)
            return 0;
    }
    return a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0;
}

/*
 * Feeds in[0..n) whole, one byte at a time, and in two pieces split at
 * every offset (every offset up to 4096 bytes; beyond, the first and last
 * 300 and every 97th), checking each gives the same result as whole.
 * Returns the whole-feed result (caller frees).
 */
static inline feed_result *feed_all_splits(const uint8_t *in, size_t n,
                                    uint64_t max_message, unsigned flags) {
    size_t cap = n + 16;
    feed_result *whole = feed_result_new(cap), *other = feed_result_new(cap);
    feed_run(in, n, NULL, 0, max_message, flags, whole);

    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    for (size_t i = 0; i < n; i++) cuts[i] = i + 1;
    feed_run(in, n, cuts, n, max_message, flags, other);
    if (!feed_same(whole, other)) {
        t_failed++;
        T_FAIL_HDR();
        fprintf(stderr, "byte-at-a-time differs from whole (rc %s vs %s)\n",
                mmws_errname(other->rc), mmws_errname(whole->rc));
    }
    t_checks++;
    free(cuts);

    for (size_t k = 0; k <= n; k++) {
        if (n > 4096 && k > 300 && k + 300 < n && k % 97) continue;
        size_t cut = k;
        feed_run(in, n, &cut, 1, max_message, flags, other);
        t_checks++;
        if (!feed_same(whole, other)) {
            t_failed++;
            T_FAIL_HDR();
            fprintf(stderr, "split at %zu differs from whole (rc %s vs %s)\n",
                    k, mmws_errname(other->rc), mmws_errname(whole->rc));
            break;
        }
    }
    feed_result_free(other);
    return whole;
}

#endif /* MMWS_TEST_FEED_H */
