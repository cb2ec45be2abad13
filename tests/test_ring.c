/* test_ring.c — mmws_ring and mmws_dedup: FIFO order, both full policies
 * and their counters, arena layout (skipped tails, the consumed view kept
 * safe), the unique filter with forced hash collisions, and randomised
 * runs against simple reference models. */
#include "test.h"

#include "ring/ring_internal.h"

/* ------------------------------------------------------------ helpers -- */

static mmws_ring *ring_make(size_t cap, size_t arena, mmws_ring_policy pol,
                            int unique, size_t window) {
    mmws_ring_config cfg;
    mmws_ring_config_default(&cfg);
    cfg.capacity = cap;
    cfg.arena_bytes = arena;
    cfg.policy = pol;
    cfg.only_insert_unique = unique;
    cfg.unique_window = window;
    mmws_ring *r = NULL;
    int rc = mmws_ring_new(&cfg, &r);
    if (rc != 0) {
        fprintf(stderr, "mmws_ring_new: %s: %s\n", mmws_errname(rc),
                mmws_last_error());
        exit(2);
    }
    return r;
}

static mmws_msg msg_of(const void *data, size_t len, uint64_t seq) {
    mmws_msg m;
    memset(&m, 0, sizeof m);
    m.data = data;
    m.len = len;
    m.opcode = MMWS_OP_TEXT;
    m.recv_ns = 1000 + seq;
    m.conn_id = seq % 7;
    m.seq = seq;
    return m;
}

/* Inserts the NUL-terminated string s with sequence number seq. */
static int ins_str(mmws_ring *r, const char *s, uint64_t seq) {
    mmws_msg m = msg_of(s, strlen(s), seq);
    return mmws_ring_insert(r, &m);
}

/* Inserts len bytes, every one equal to fill. */
static int ins_fill(mmws_ring *r, size_t len, uint8_t fill, uint64_t seq) {
    static uint8_t buf[1 << 16];
    memset(buf, fill, len);
    mmws_msg m = msg_of(buf, len, seq);
    return mmws_ring_insert(r, &m);
}

/* 1 if every byte of m is fill. */
static int all_bytes(const mmws_msg *m, uint8_t fill) {
    for (size_t i = 0; i < m->len; i++)
        if (m->data[i] != fill) return 0;
    return 1;
}

static mmws_ring_stats stats_of(const mmws_ring *r) {
    mmws_ring_stats s;
    mmws_ring_stats_get(r, &s);
    return s;
}

/* ------------------------------------------------------------- config -- */

static void test_config(void) {
    mmws_ring_config cfg;
    mmws_ring_config_default(&cfg);
    CHECK_EQ(cfg.capacity, 1024);
    CHECK_EQ(cfg.arena_bytes, 4u << 20);
    CHECK_EQ(cfg.policy, MMWS_RING_OVERWRITE_OLDEST);
    CHECK_EQ(cfg.only_insert_unique, 0);

    mmws_ring *r = (mmws_ring *)1;
    CHECK_RC(mmws_ring_new(&cfg, NULL), MMWS_EINVAL);

    struct {
        size_t cap, arena;
        int policy, unique;
        size_t window;
        const char *names;
    } bad[] = {
        {0, 100, 0, 0, 0, "capacity"},
        {((size_t)1 << 30) + 1, 100, 0, 0, 0, "capacity"},
        {8, 0, 0, 0, 0, "arena_bytes"},
        {8, ((size_t)1 << 40) + 1, 0, 0, 0, "arena_bytes"},
        {8, 100, 2, 0, 0, "policy"},
        {8, 100, -1, 0, 0, "policy"},
        {8, 100, 0, 2, 0, "only_insert_unique"},
        {8, 100, 0, 1, ((size_t)1 << 30) + 1, "unique_window"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mmws_ring_config_default(&cfg);
        cfg.capacity = bad[i].cap;
        cfg.arena_bytes = bad[i].arena;
        cfg.policy = (mmws_ring_policy)bad[i].policy;
        cfg.only_insert_unique = bad[i].unique;
        cfg.unique_window = bad[i].window;
        r = (mmws_ring *)1;
        CHECK_RC(mmws_ring_new(&cfg, &r), MMWS_ECONFIG);
        CHECK(r == NULL);
        CHECK(strstr(mmws_last_error(), bad[i].names) != NULL);
        if (!strstr(mmws_last_error(), bad[i].names))
            fprintf(stderr, "  last error: %s\n", mmws_last_error());
    }
    mmws_ring_config_default(&cfg);
    cfg.capacity = 0;
    mmws_ring_new(&cfg, &r);
    CHECK_STR(mmws_last_error(),
              "ring capacity must be 1..1073741824 messages (got 0)");

    /* Rounding, and NULL config = defaults. */
    r = ring_make(1000, 100, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    CHECK_EQ(mmws_ring_capacity(r), 1024);
    mmws_ring_free(r);
    r = ring_make(1, 1, MMWS_RING_OVERWRITE_OLDEST, 1, 0);
    CHECK_EQ(mmws_ring_capacity(r), 1);
    mmws_ring_free(r);
    CHECK_RC(mmws_ring_new(NULL, &r), 0);
    CHECK_EQ(mmws_ring_capacity(r), 1024);
    mmws_ring_free(r);
    mmws_ring_free(NULL);

    /* NULL arguments are errors, not crashes. */
    mmws_msg m;
    CHECK_RC(mmws_ring_insert(NULL, &m), MMWS_EINVAL);
    CHECK_RC(mmws_ring_consume(NULL, &m), MMWS_EINVAL);
    CHECK_EQ(mmws_ring_size(NULL), 0);
    r = ring_make(4, 64, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    CHECK_RC(mmws_ring_insert(r, NULL), MMWS_EINVAL);
    m = msg_of(NULL, 3, 1);
    CHECK_RC(mmws_ring_insert(r, &m), MMWS_EINVAL);
    m = msg_of(NULL, 0, 1);
    CHECK_RC(mmws_ring_insert(r, &m), 0); /* empty message, no bytes */
    mmws_ring_free(r);
}

/* ----------------------------------------------------------- basics -- */

static void test_basic_fifo(void) {
    mmws_ring *r = ring_make(4, 64, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    mmws_msg m;
    CHECK(mmws_ring_empty(r));
    CHECK(!mmws_ring_full(r));
    CHECK_EQ(mmws_ring_size(r), 0);
    CHECK_RC(mmws_ring_consume(r, &m), MMWS_EINCOMPLETE);
    CHECK_RC(mmws_ring_peek_oldest(r, &m), MMWS_EINCOMPLETE);
    CHECK_RC(mmws_ring_peek_newest(r, &m), MMWS_EINCOMPLETE);
    CHECK_RC(mmws_ring_get(r, 0, &m), MMWS_EINCOMPLETE);

    CHECK_RC(ins_str(r, "alpha", 1), 0);
    CHECK_RC(ins_str(r, "beta", 2), 0);
    CHECK_RC(ins_str(r, "gamma", 3), 0);
    CHECK_EQ(mmws_ring_size(r), 3);
    CHECK(!mmws_ring_empty(r));
    CHECK(!mmws_ring_full(r));

    CHECK_RC(mmws_ring_peek_oldest(r, &m), 0);
    CHECK_MEM(m.data, m.len, "alpha", 5);
    CHECK_RC(mmws_ring_peek_newest(r, &m), 0);
    CHECK_MEM(m.data, m.len, "gamma", 5);
    CHECK_RC(mmws_ring_get(r, 1, &m), 0);
    CHECK_MEM(m.data, m.len, "beta", 4);
    CHECK_EQ(m.seq, 2);
    CHECK_EQ(m.recv_ns, 1002);
    CHECK_EQ(m.conn_id, 2);
    CHECK_EQ(m.opcode, MMWS_OP_TEXT);
    CHECK_RC(mmws_ring_get(r, 3, &m), MMWS_EINCOMPLETE);
    CHECK_RC(mmws_ring_get(r, (size_t)-1, &m), MMWS_EINCOMPLETE);

    CHECK_RC(ins_str(r, "delta", 4), 0);
    CHECK(mmws_ring_full(r));

    CHECK_RC(mmws_ring_consume(r, &m), 0);
    CHECK_MEM(m.data, m.len, "alpha", 5);
    CHECK_EQ(m.seq, 1);
    CHECK_RC(mmws_ring_consume(r, &m), 0);
    CHECK_MEM(m.data, m.len, "beta", 4);
    CHECK_EQ(mmws_ring_size(r), 2);

    mmws_ring_stats s = stats_of(r);
    CHECK_EQ(s.inserted, 4);
    CHECK_EQ(s.consumed, 2);
    CHECK_EQ(s.dropped_oldest, 0);
    CHECK_EQ(s.dropped_newest, 0);

    mmws_ring_clear(r);
    CHECK(mmws_ring_empty(r));
    CHECK_RC(mmws_ring_consume(r, &m), MMWS_EINCOMPLETE);
    s = stats_of(r);
    CHECK_EQ(s.dropped_oldest, 0); /* clear is not a drop */
    CHECK_RC(ins_str(r, "after", 5), 0);
    CHECK_RC(mmws_ring_consume(r, &m), 0);
    CHECK_MEM(m.data, m.len, "after", 5);
    mmws_ring_free(r);
}

/* Many laps of slots and arena with messages of varying size, consumed in
 * bursts; every byte and every field checked. */
static void test_wraparound(void) {
    mmws_ring *r = ring_make(8, 100, MMWS_RING_REJECT_NEWEST, 0, 0);
    uint64_t next_in = 0, next_out = 0;
    uint8_t buf[64];
    for (int cycle = 0; cycle < 200000; cycle++) {
        int burst = (int)(t_rand() % 5);
        for (int i = 0; i < burst; i++) {
            size_t len = (size_t)(next_in * 7 % 41);
            memset(buf, (int)(next_in & 0xff), len);
            mmws_msg m = msg_of(buf, len, next_in);
            int rc = mmws_ring_insert(r, &m);
            if (rc == 0)
                next_in++;
            else if (rc != MMWS_EQUEUEFULL)
                CHECK_RC(rc, 0);
        }
        int take = (int)(t_rand() % 5);
        for (int i = 0; i < take; i++) {
            mmws_msg m;
            if (mmws_ring_consume(r, &m) != 0) break;
            if (m.seq != next_out || m.len != (size_t)(next_out * 7 % 41) ||
                !all_bytes(&m, (uint8_t)(next_out & 0xff))) {
                CHECK_EQ(m.seq, next_out);
                CHECK_EQ(m.len, next_out * 7 % 41);
                CHECK_FAIL("consumed bytes differ");
                mmws_ring_free(r);
                return;
            }
            next_out++;
        }
    }
    CHECK(next_out > 100000);
    mmws_ring_stats s = stats_of(r);
    CHECK_EQ(s.inserted, next_in);
    CHECK_EQ(s.consumed, next_out);
    CHECK_EQ(s.inserted, s.consumed + mmws_ring_size(r));
    mmws_ring_free(r);
}

/* ------------------------------------------------------------ policies -- */

static void test_overwrite_oldest(void) {
    mmws_ring *r = ring_make(4, 1000, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    for (uint64_t i = 0; i < 10; i++)
        CHECK_RC(ins_fill(r, 10, (uint8_t)i, i), 0);
    mmws_ring_stats s = stats_of(r);
    CHECK_EQ(s.inserted, 10);
    CHECK_EQ(s.dropped_oldest, 6);
    CHECK_EQ(s.dropped_newest, 0);
    CHECK_EQ(mmws_ring_size(r), 4);
    for (uint64_t i = 6; i < 10; i++) {
        mmws_msg m;
        CHECK_RC(mmws_ring_consume(r, &m), 0);
        CHECK_EQ(m.seq, i);
        CHECK(all_bytes(&m, (uint8_t)i));
    }
    mmws_ring_free(r);
}

static void test_reject_newest(void) {
    mmws_ring *r = ring_make(4, 1000, MMWS_RING_REJECT_NEWEST, 0, 0);
    for (uint64_t i = 0; i < 6; i++)
        CHECK_RC(ins_fill(r, 10, (uint8_t)i, i), i < 4 ? 0 : MMWS_EQUEUEFULL);
    mmws_ring_stats s = stats_of(r);
    CHECK_EQ(s.inserted, 4);
    CHECK_EQ(s.dropped_newest, 2);
    CHECK_EQ(s.dropped_oldest, 0);
    mmws_msg m;
    CHECK_RC(mmws_ring_peek_newest(r, &m), 0);
    CHECK_EQ(m.seq, 3);

    /* Arena full before the slots: 3 × 300 in 1000 leaves no room for 300
     * more (the consumed view keeps its bytes). */
    mmws_ring_clear(r);
    for (uint64_t i = 0; i < 3; i++) CHECK_RC(ins_fill(r, 300, 1, i), 0);
    CHECK_RC(ins_fill(r, 300, 1, 3), MMWS_EQUEUEFULL);
    CHECK_RC(ins_fill(r, 100, 1, 3), 0);
    CHECK_RC(mmws_ring_consume(r, &m), 0); /* [0,300) reserved */
    /* The tail is at 0, the view at [0,300), the rest live: no room. */
    CHECK_RC(ins_fill(r, 1, 1, 4), MMWS_EQUEUEFULL);
    CHECK_RC(mmws_ring_consume(r, &m), 0); /* [0,300) freed */
    CHECK_RC(ins_fill(r, 300, 2, 5), 0);
    CHECK_RC(mmws_ring_peek_newest(r, &m), 0);
    CHECK(all_bytes(&m, 2));
    s = stats_of(r);
    CHECK_EQ(s.dropped_newest, 4);
    mmws_ring_free(r);
}

/* ------------------------------------------------------------- arena -- */

static void test_arena_layout(void) {
    mmws_ring *r = ring_make(64, 100, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    mmws_msg a, b, m;
    CHECK_RC(ins_fill(r, 40, 'A', 1), 0);
    CHECK_RC(ins_fill(r, 40, 'B', 2), 0);
    CHECK_RC(mmws_ring_peek_oldest(r, &a), 0);
    const uint8_t *base = a.data;
    CHECK_RC(mmws_ring_consume(r, &a), 0); /* reserves [0,40) */
    CHECK(a.data == base);
    CHECK_RC(mmws_ring_consume(r, &b), 0); /* reserves [40,80) */
    CHECK(b.data == base + 40);

    /* Empty ring, [40,80) reserved: 30 bytes do not fit in [80,100), so
     * the message skips the tail and goes to 0. */
    CHECK_RC(ins_fill(r, 30, 'C', 3), 0);
    CHECK_RC(mmws_ring_peek_newest(r, &m), 0);
    CHECK(m.data == base);
    CHECK(all_bytes(&b, 'B'));

    /* 50 bytes fit nowhere outside [40,80), even with C dropped: refused,
     * and C is not dropped in vain. */
    CHECK_RC(ins_fill(r, 50, 'D', 4), MMWS_EQUEUEFULL);
    mmws_ring_stats s = stats_of(r);
    CHECK_EQ(s.dropped_newest, 1);
    CHECK_EQ(s.dropped_oldest, 0);
    CHECK_EQ(mmws_ring_size(r), 1);

    /* 20 bytes fit right after the view's range... */
    CHECK_RC(ins_fill(r, 20, 'E', 5), 0);
    CHECK_RC(mmws_ring_peek_newest(r, &m), 0);
    CHECK(m.data == base + 80);
    /* ...and 15 more fit nowhere but [0,30), where C is: C is dropped. */
    CHECK_RC(ins_fill(r, 15, 'F', 6), 0);
    CHECK_RC(mmws_ring_peek_newest(r, &m), 0);
    CHECK(m.data == base);
    s = stats_of(r);
    CHECK_EQ(s.dropped_oldest, 1);
    CHECK(all_bytes(&b, 'B'));
    CHECK_RC(mmws_ring_consume(r, &m), 0); /* E; frees [40,80) */
    CHECK(all_bytes(&m, 'E'));
    CHECK_EQ(m.len, 20);
    CHECK_RC(mmws_ring_consume(r, &m), 0); /* F */
    CHECK(all_bytes(&m, 'F'));
    CHECK_EQ(m.len, 15);

    /* Arena-sized messages: each replaces the last... */
    mmws_ring_clear(r);
    CHECK_RC(ins_fill(r, 100, 'G', 7), 0);
    CHECK_RC(ins_fill(r, 100, 'H', 8), 0);
    s = stats_of(r);
    CHECK_EQ(s.dropped_oldest, 2);
    CHECK_RC(mmws_ring_consume(r, &m), 0);
    CHECK(all_bytes(&m, 'H'));
    CHECK_EQ(m.len, 100);
    /* ...but not while the consumed one's view is alive. */
    CHECK_RC(ins_fill(r, 100, 'I', 9), MMWS_EQUEUEFULL);
    CHECK(all_bytes(&m, 'H'));
    CHECK_RC(mmws_ring_consume(r, &m), MMWS_EINCOMPLETE); /* ends the view */
    CHECK_RC(ins_fill(r, 100, 'I', 9), 0);

    /* Too big: refused, nothing stored or counted as a drop. */
    s = stats_of(r);
    CHECK_RC(ins_fill(r, 101, 'J', 10), MMWS_ETOOBIG);
    mmws_ring_stats s2 = stats_of(r);
    CHECK_EQ(s2.inserted, s.inserted);
    CHECK_EQ(s2.dropped_oldest, s.dropped_oldest);
    CHECK_EQ(s2.dropped_newest, s.dropped_newest);
    CHECK_EQ(mmws_ring_size(r), 1);
    CHECK_RC(mmws_ring_peek_oldest(r, &m), 0);
    CHECK(all_bytes(&m, 'I'));
    mmws_ring_free(r);

    /* One-byte messages filling a 16-byte arena and 16 slots exactly. */
    r = ring_make(16, 16, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    for (uint64_t i = 0; i < 16; i++)
        CHECK_RC(ins_fill(r, 1, (uint8_t)i, i), 0);
    CHECK(mmws_ring_full(r));
    CHECK_EQ(stats_of(r).dropped_oldest, 0);
    CHECK_RC(ins_fill(r, 1, 16, 16), 0);
    CHECK_EQ(stats_of(r).dropped_oldest, 1);
    for (uint64_t i = 1; i <= 16; i++) {
        CHECK_RC(mmws_ring_get(r, (size_t)(i - 1), &m), 0);
        CHECK(m.len == 1 && m.data[0] == i);
    }
    /* Zero-byte messages take a slot but no arena. */
    mmws_ring_clear(r);
    for (uint64_t i = 0; i < 16; i++) CHECK_RC(ins_fill(r, 0, 0, i), 0);
    CHECK_RC(ins_fill(r, 16, 'K', 99), 0);
    CHECK_EQ(mmws_ring_size(r), 16);
    CHECK_RC(mmws_ring_peek_newest(r, &m), 0);
    CHECK(m.len == 16 && all_bytes(&m, 'K'));
    mmws_ring_free(r);
}

/* Variable sizes in a tight arena: drops are counted, every survivor is
 * intact and in order, and inserted = consumed + dropped + size. */
static void test_arena_exhaustion(void) {
    mmws_ring *r = ring_make(256, 1000, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    uint64_t expect = 0; /* the oldest seq we may still see */
    uint64_t refused = 0; /* blocked by the consumed view */
    for (uint64_t i = 0; i < 50000; i++) {
        size_t len = 1 + (size_t)(t_rand() % 400);
        int rc = ins_fill(r, len, (uint8_t)(i * 13), i);
        if (rc == MMWS_EQUEUEFULL)
            refused++;
        else
            CHECK_RC(rc, 0);
        if (i % 7 == 0) {
            mmws_msg m;
            if (mmws_ring_consume(r, &m) == 0) {
                if (m.seq < expect || !all_bytes(&m, (uint8_t)(m.seq * 13))) {
                    CHECK_FAIL("consumed message out of order or corrupt");
                    break;
                }
                expect = m.seq + 1;
            }
        }
    }
    mmws_ring_stats s = stats_of(r);
    CHECK(s.dropped_oldest > 0);
    CHECK_EQ(s.dropped_newest, refused);
    CHECK_EQ(s.inserted + refused, 50000);
    CHECK_EQ(s.inserted,
             s.consumed + s.dropped_oldest + mmws_ring_size(r));
    mmws_ring_free(r);
}

/* An insert after consume must not touch the consumed view's bytes, even
 * when it overwrites everything else many times. */
static void test_view_survives_inserts(void) {
    mmws_ring *r = ring_make(8, 512, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    uint8_t want[200];
    for (size_t i = 0; i < sizeof want; i++) want[i] = (uint8_t)t_rand();
    mmws_msg m = msg_of(want, sizeof want, 1);
    CHECK_RC(mmws_ring_insert(r, &m), 0);
    mmws_msg v;
    CHECK_RC(mmws_ring_consume(r, &v), 0);
    for (uint64_t i = 0; i < 1000; i++) {
        size_t len = 1 + (size_t)(t_rand() % 300);
        int rc = ins_fill(r, len, 0xEE, i + 2);
        CHECK(rc == 0 || rc == MMWS_EQUEUEFULL);
    }
    CHECK_MEM(v.data, v.len, want, sizeof want);
    CHECK(stats_of(r).dropped_oldest > 0);
    mmws_ring_free(r);
}

/* -------------------------------------------------------- consume_all -- */

struct collect {
    uint64_t seqs[16];
    size_t n;
    int bad;
    mmws_ring *r;
};

static void collect_cb(void *user, const mmws_msg *m) {
    struct collect *c = user;
    if (!all_bytes(m, (uint8_t)m->seq) || m->len != m->seq + 1) c->bad = 1;
    if (c->n < 16) c->seqs[c->n] = m->seq;
    c->n++;
    /* Inserting from the callback is legal and does not extend the run. */
    if (c->r) ins_fill(c->r, 3, 3, 2);
}

static void test_consume_all(void) {
    mmws_ring *r = ring_make(16, 1000, MMWS_RING_OVERWRITE_OLDEST, 0, 0);
    for (uint64_t i = 0; i < 5; i++)
        CHECK_RC(ins_fill(r, (size_t)i + 1, (uint8_t)i, i), 0);
    struct collect c;
    memset(&c, 0, sizeof c);
    CHECK_EQ(mmws_ring_consume_all(r, collect_cb, &c), 5);
    CHECK_EQ(c.n, 5);
    CHECK(!c.bad);
    for (uint64_t i = 0; i < 5; i++) CHECK_EQ(c.seqs[i], i);
    CHECK(mmws_ring_empty(r));
    CHECK_EQ(stats_of(r).consumed, 5);
    CHECK_EQ(mmws_ring_consume_all(r, collect_cb, &c), 0);

    CHECK_RC(ins_fill(r, 1, 0, 0), 0);
    CHECK_RC(ins_fill(r, 2, 1, 1), 0);
    memset(&c, 0, sizeof c);
    c.r = r;
    CHECK_EQ(mmws_ring_consume_all(r, collect_cb, &c), 2);
    CHECK_EQ(mmws_ring_size(r), 2); /* what the callback inserted */
    mmws_ring_free(r);
}

/* -------------------------------------------------------- unique filter -- */

static void test_unique(void) {
    mmws_ring *r = ring_make(64, 4096, MMWS_RING_OVERWRITE_OLDEST, 1, 8);
    char s[16];
    for (int i = 0; i < 8; i++) {
        snprintf(s, sizeof s, "m%d", i);
        CHECK_RC(ins_str(r, s, (uint64_t)i), 0);
    }
    CHECK_RC(ins_str(r, "m0", 100), 1);
    CHECK_RC(ins_str(r, "m7", 101), 1);
    mmws_ring_stats st = stats_of(r);
    CHECK_EQ(st.duplicates, 2);
    CHECK_EQ(st.inserted, 8);
    CHECK_EQ(st.dropped_newest, 0);
    CHECK_EQ(mmws_ring_size(r), 8);

    /* A consumed message's key is still remembered: the hash is trusted. */
    mmws_msg m;
    CHECK_RC(mmws_ring_consume(r, &m), 0);
    CHECK_RC(mmws_ring_consume(r, &m), 0);
    CHECK_RC(ins_str(r, "m0", 102), 1);

    /* One new key pushes m0 out of the 8-key window; m1 is still in. */
    CHECK_RC(ins_str(r, "n0", 200), 0);
    CHECK_RC(ins_str(r, "m0", 103), 0);
    CHECK_RC(ins_str(r, "m0", 104), 1);
    /* m0's re-insert pushed m1 out. */
    CHECK_RC(ins_str(r, "m1", 105), 0);
    /* ...and m1's pushed m2 out; m3 is still in. */
    CHECK_RC(ins_str(r, "m3", 106), 1);
    CHECK_RC(ins_str(r, "m2", 107), 0);
    CHECK_EQ(stats_of(r).duplicates, 5);
    CHECK_EQ(stats_of(r).dropped_oldest, 0);

    /* clear forgets the keys. */
    mmws_ring_clear(r);
    CHECK_RC(ins_str(r, "m2", 107), 0);

    /* Empty payloads dedup like any other. */
    CHECK_RC(ins_str(r, "", 108), 0);
    CHECK_RC(ins_str(r, "", 109), 1);
    mmws_ring_free(r);

    /* A message refused because the ring is full is not remembered. */
    r = ring_make(2, 4096, MMWS_RING_REJECT_NEWEST, 1, 0);
    CHECK_RC(ins_str(r, "a", 1), 0);
    CHECK_RC(ins_str(r, "b", 2), 0);
    CHECK_RC(ins_str(r, "c", 3), MMWS_EQUEUEFULL);
    CHECK_RC(mmws_ring_consume(r, &m), 0);
    CHECK_RC(ins_str(r, "c", 4), 0);
    CHECK_RC(ins_str(r, "c", 5), 1); /* duplicates win over "full" */
    st = stats_of(r);
    CHECK_EQ(st.dropped_newest, 1);
    CHECK_EQ(st.duplicates, 1);
    mmws_ring_free(r);
}

static uint64_t const_hash(const void *data, size_t len) {
    (void)data;
    (void)len;
    return 42;
}

static uint64_t zero_hash(const void *data, size_t len) {
    (void)data;
    (void)len;
    return 0;
}

/* Every payload hashes alike: different bytes must all be stored; equal
 * bytes behind the key's latest message are still refused. */
static void test_unique_collisions(void) {
    uint64_t (*hashes[2])(const void *, size_t) = {const_hash, zero_hash};
    for (int h = 0; h < 2; h++) {
        mmws__ring_set_hash_for_test(hashes[h]);
        mmws_ring *r = ring_make(16, 4096, MMWS_RING_OVERWRITE_OLDEST, 1, 16);
        CHECK_RC(ins_str(r, "abc", 1), 0);
        CHECK_RC(ins_str(r, "xyz", 2), 0);     /* collision: stored */
        CHECK_RC(ins_str(r, "xyz", 3), 1);     /* equal to the latest */
        CHECK_RC(ins_str(r, "abcd", 4), 0);    /* collision: stored */
        CHECK_RC(ins_str(r, "", 5), 0);        /* collision: stored */
        CHECK_EQ(mmws_ring_size(r), 4);
        mmws_msg m;
        CHECK_RC(mmws_ring_get(r, 1, &m), 0);
        CHECK_MEM(m.data, m.len, "xyz", 3);
        CHECK_EQ(stats_of(r).duplicates, 1);

        /* The latest copy is the consumed view: still compared. */
        mmws_ring_clear(r);
        CHECK_RC(ins_str(r, "one", 6), 0);
        CHECK_RC(mmws_ring_consume(r, &m), 0);
        CHECK_RC(ins_str(r, "two", 7), 0);     /* differs from the view */
        CHECK_RC(mmws_ring_consume(r, &m), 0);
        CHECK_RC(ins_str(r, "two", 8), 1);     /* equals the view */
        CHECK_MEM(m.data, m.len, "two", 3);
        /* Once the copy is gone the key alone decides (documented). */
        CHECK_RC(mmws_ring_consume(r, &m), MMWS_EINCOMPLETE);
        CHECK_RC(ins_str(r, "three", 9), 1);
        mmws_ring_free(r);
    }
    mmws__ring_set_hash_for_test(NULL);
    mmws_ring *r = ring_make(16, 4096, MMWS_RING_OVERWRITE_OLDEST, 1, 16);
    CHECK_RC(ins_str(r, "abc", 1), 0);
    CHECK_RC(ins_str(r, "xyz", 2), 0);
    CHECK_RC(ins_str(r, "abc", 3), 1);
    mmws_ring_free(r);
}

/* ------------------------------------------------------------- dedup -- */

static void test_dedup_basic(void) {
    mmws_dedup *d = (mmws_dedup *)1;
    CHECK_RC(mmws_dedup_new(0, &d), MMWS_EINVAL);
    CHECK(d == NULL);
    CHECK_RC(mmws_dedup_new(4, NULL), MMWS_EINVAL);
    CHECK_RC(mmws_dedup_new(((size_t)1 << 30) + 1, &d), MMWS_EINVAL);
    mmws_dedup_free(NULL);

    CHECK_RC(mmws_dedup_new(3, &d), 0); /* rounded up to 4 */
    CHECK_EQ(mmws_dedup_check_insert(d, 0), 0);
    CHECK_EQ(mmws_dedup_check_insert(d, 0), 1);
    CHECK_EQ(mmws_dedup_contains(d, 0), 1);
    CHECK_EQ(mmws_dedup_check_insert(d, UINT64_MAX), 0);
    CHECK_EQ(mmws_dedup_check_insert(d, 7), 0);
    CHECK_EQ(mmws_dedup_check_insert(d, 8), 0);
    CHECK_EQ(mmws_dedup_contains(d, 5), 0);
    CHECK_EQ(mmws_dedup_contains(d, 0), 1);
    CHECK_EQ(mmws_dedup_check_insert(d, 9), 0); /* forgets 0 */
    CHECK_EQ(mmws_dedup_contains(d, 0), 0);
    CHECK_EQ(mmws_dedup_contains(d, UINT64_MAX), 1);
    CHECK_EQ(mmws_dedup_check_insert(d, 0), 0); /* forgets UINT64_MAX */
    CHECK_EQ(mmws_dedup_contains(d, UINT64_MAX), 0);
    CHECK_EQ(mmws_dedup_contains(d, 7), 1);
    mmws_dedup_clear(d);
    CHECK_EQ(mmws_dedup_contains(d, 7), 0);
    CHECK_EQ(mmws_dedup_contains(d, 0), 0);
    CHECK_EQ(mmws_dedup_check_insert(d, 7), 0);
    CHECK_EQ(mmws_dedup_check_insert(d, 7), 1);
    mmws_dedup_free(d);

    /* mmws_hash64 is XXH3-64: known answers of the reference. */
    CHECK(mmws_hash64("", 0) == 0x2D06800538D394C2ull);
    CHECK(mmws_hash64(NULL, 0) == 0x2D06800538D394C2ull);
    CHECK(mmws_hash64("abc", 3) != mmws_hash64("abd", 3));
}

/* The reference: the last `window` distinct keys, in a plain array. */
struct ref_dedup {
    uint64_t keys[4096];
    size_t window, n, head;
};

static int ref_contains(const struct ref_dedup *rd, uint64_t key) {
    for (size_t i = 0; i < rd->n; i++)
        if (rd->keys[(rd->head + i) % rd->window] == key) return 1;
    return 0;
}

static int ref_check_insert(struct ref_dedup *rd, uint64_t key) {
    if (ref_contains(rd, key)) return 1;
    if (rd->n == rd->window) {
        rd->head = (rd->head + 1) % rd->window;
        rd->n--;
    }
    rd->keys[(rd->head + rd->n) % rd->window] = key;
    rd->n++;
    return 0;
}

/* Runs ops keys from pick() through a filter and the reference. */
static void dedup_vs_ref(size_t window, uint64_t (*pick)(void *), void *arg,
                         int ops) {
    static struct ref_dedup rd;
    memset(&rd, 0, sizeof rd);
    rd.window = window;
    mmws_dedup *d;
    if (mmws_dedup_new(window, &d) != 0) {
        CHECK_FAIL("mmws_dedup_new");
        return;
    }
    long hits = 0;
    for (int i = 0; i < ops; i++) {
        uint64_t key = pick(arg);
        if (t_rand() % 4 == 0) {
            int got = mmws_dedup_contains(d, key);
            int want = ref_contains(&rd, key);
            if (got != want) {
                CHECK_EQ(got, want);
                fprintf(stderr, "  contains op %d key %" PRIu64 "\n", i, key);
                break;
            }
        } else {
            int got = mmws_dedup_check_insert(d, key);
            int want = ref_check_insert(&rd, key);
            hits += want;
            if (got != want) {
                CHECK_EQ(got, want);
                fprintf(stderr, "  check_insert op %d key %" PRIu64 "\n", i,
                        key);
                break;
            }
        }
    }
    /* Both hits and misses were exercised. */
    CHECK(hits > ops / 20);
    CHECK(hits < ops - ops / 20);
    mmws_dedup_free(d);
}

/* Keys from a small domain (including 0): hits and misses both common. */
static uint64_t pick_small(void *arg) {
    return t_rand() % *(uint64_t *)arg;
}

/* Full-range 64-bit keys, half of them repeats of recent keys. */
static uint64_t pick_recent(void *arg) {
    uint64_t *hist = arg; /* hist[0] = count, hist[1..512] keys */
    if (hist[0] > 0 && t_rand() % 2) return hist[1 + t_rand() % hist[0]];
    uint64_t k = t_rand();
    if (hist[0] < 512)
        hist[1 + hist[0]++] = k;
    else
        hist[1 + t_rand() % 512] = k;
    return k;
}

/* Keys that all share a few home slots: long clusters that wrap around
 * the table end, so every case of the backward shift is taken. */
static uint64_t pick_colliding(void *arg) {
    const uint64_t *keys = arg; /* keys[0] = count */
    return keys[1 + t_rand() % keys[0]];
}

static void test_dedup_stress(void) {
    uint64_t domain = 3000;
    dedup_vs_ref(1024, pick_small, &domain, 100000);
    domain = 40;
    dedup_vs_ref(32, pick_small, &domain, 100000);

    static uint64_t hist[513];
    memset(hist, 0, sizeof hist);
    dedup_vs_ref(256, pick_recent, hist, 100000);

    /* 96 keys whose home is the last of the 8 buckets (window 32, 64
     * slots), plus key 0: chains of full buckets that wrap round the
     * table, so every path of the passing counts is taken. */
    mmws_dedup *d;
    CHECK_RC(mmws_dedup_new(32, &d), 0);
    size_t buckets = mmws__dedup_buckets(d);
    CHECK_EQ(buckets, 8);
    static uint64_t keys[1 + 97];
    keys[0] = 0;
    for (uint64_t k = 1; keys[0] < 96; k++)
        if (mmws__dedup_home(d, k) == buckets - 1) keys[1 + keys[0]++] = k;
    keys[1 + keys[0]++] = 0;
    mmws_dedup_free(d);
    dedup_vs_ref(32, pick_colliding, keys, 100000);
}

/* --------------------------------------------------- randomised model -- */

#define MODEL_CAP 4096
#define MODEL_MAXLEN 512

struct model_msg {
    uint8_t data[MODEL_MAXLEN];
    size_t len;
    uint64_t seq;
};

/* The reference ring: a plain queue of copies. */
static struct model_msg model[MODEL_CAP];
static size_t model_head, model_n;

static struct model_msg *model_at(size_t i) {
    return &model[(model_head + i) % MODEL_CAP];
}

static void model_pop(void) {
    model_head = (model_head + 1) % MODEL_CAP;
    model_n--;
}

static int msg_equals_model(const mmws_msg *m, const struct model_msg *mm) {
    return m->len == mm->len && m->seq == mm->seq &&
           m->recv_ns == 1000 + mm->seq && m->conn_id == mm->seq % 7 &&
           (m->len == 0 || memcmp(m->data, mm->data, m->len) == 0);
}

static int cmp_range(const void *a, const void *b) {
    const uintptr_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Every live message and the consumed view: pairwise disjoint, within one
 * arena's span. */
static int ranges_ok(const mmws_ring *r, const mmws_msg *view, size_t arena) {
    static uintptr_t rg[MODEL_CAP + 1][2];
    size_t n = 0;
    for (size_t i = 0; i < mmws_ring_size(r); i++) {
        mmws_msg m;
        mmws_ring_get(r, i, &m);
        if (m.len == 0) continue;
        rg[n][0] = (uintptr_t)m.data;
        rg[n++][1] = (uintptr_t)m.data + m.len;
    }
    if (view && view->len) {
        rg[n][0] = (uintptr_t)view->data;
        rg[n++][1] = (uintptr_t)view->data + view->len;
    }
    qsort(rg, n, sizeof rg[0], cmp_range);
    for (size_t i = 1; i < n; i++)
        if (rg[i][0] < rg[i - 1][1]) return 0;
    return n == 0 || rg[n - 1][1] - rg[0][0] <= arena;
}

struct model_cfg {
    size_t cap, arena, maxlen;
    mmws_ring_policy policy;
    int unique;
    size_t window;      /* unique window (a power of two here) */
    int exact_drops;    /* the arena never limits: drops are predictable */
};

static void run_model(const struct model_cfg *mc, int ops) {
    mmws_ring *r = ring_make(mc->cap, mc->arena, mc->policy, mc->unique,
                             mc->window);
    size_t cap = mmws_ring_capacity(r);
    static struct ref_dedup keys; /* model of the unique filter */
    memset(&keys, 0, sizeof keys);
    keys.window = mc->window;
    model_head = model_n = 0;
    static uint8_t view_copy[MODEL_MAXLEN];
    mmws_msg view;
    int have_view = 0;
    uint8_t buf[MODEL_MAXLEN];
    uint64_t seq = 0;
    int failed = 0;

    for (int op = 0; op < ops && !failed; op++) {
        unsigned what = (unsigned)(t_rand() % 100);
        if (what < 55) {
            /* insert; with the filter, often a payload from a few ops ago */
            size_t len;
            if (mc->unique && t_rand() % 3 == 0) {
                len = (size_t)(t_rand() % 4);
                memset(buf, 'd', len);
            } else {
                len = (size_t)(t_rand() % (mc->maxlen + 1));
                for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)t_rand();
            }
            mmws_msg m = msg_of(buf, len, ++seq);
            mmws_ring_stats before = stats_of(r);
            size_t n_before = model_n;
            int rc = mmws_ring_insert(r, &m);
            mmws_ring_stats after = stats_of(r);
            uint64_t dropped = after.dropped_oldest - before.dropped_oldest;
            if (mc->unique) {
                uint64_t key = mmws_hash64(buf, len);
                int dup = ref_contains(&keys, key);
                if ((rc == 1) != dup) {
                    CHECK_EQ(rc, dup);
                    failed = 1;
                    break;
                }
                if (rc == 0) ref_check_insert(&keys, key);
            }
            if (rc == 0) {
                if (dropped > n_before) {
                    CHECK_FAIL("dropped more than were stored");
                    failed = 1;
                    break;
                }
                for (uint64_t i = 0; i < dropped; i++) model_pop();
                struct model_msg *mm = model_at(model_n++);
                memcpy(mm->data, buf, len);
                mm->len = len;
                mm->seq = seq;
                if (mc->exact_drops || mc->policy == MMWS_RING_REJECT_NEWEST)
                    CHECK_EQ(dropped, n_before == cap ? 1 : 0);
                if (n_before == 0 && !have_view) CHECK_EQ(dropped, 0);
            } else if (rc == 1 || rc == MMWS_EQUEUEFULL) {
                CHECK_EQ(dropped, 0);
                if (rc == MMWS_EQUEUEFULL) {
                    CHECK_EQ(after.dropped_newest, before.dropped_newest + 1);
                    if (mc->exact_drops) CHECK_EQ(n_before, cap);
                    if (mc->policy == MMWS_RING_OVERWRITE_OLDEST)
                        CHECK(have_view); /* only the view can block it */
                }
            } else {
                CHECK_RC(rc, 0);
                failed = 1;
            }
        } else if (what < 85) {
            mmws_msg m;
            int rc = mmws_ring_consume(r, &m);
            have_view = 0;
            if (model_n == 0) {
                CHECK_RC(rc, MMWS_EINCOMPLETE);
            } else if (rc != 0 || !msg_equals_model(&m, model_at(0))) {
                CHECK_FAIL("consumed message differs from the model");
                failed = 1;
            } else {
                model_pop();
                view = m;
                memcpy(view_copy, m.data, m.len);
                have_view = 1;
            }
        } else if (what < 95) {
            mmws_msg m;
            size_t i = model_n ? (size_t)(t_rand() % (model_n + 1)) : 0;
            int rc = mmws_ring_get(r, i, &m);
            if (i >= model_n)
                CHECK_RC(rc, MMWS_EINCOMPLETE);
            else if (rc != 0 || !msg_equals_model(&m, model_at(i))) {
                CHECK_FAIL("get differs from the model");
                failed = 1;
            }
            if (model_n) {
                CHECK_RC(mmws_ring_peek_newest(r, &m), 0);
                CHECK(msg_equals_model(&m, model_at(model_n - 1)));
                CHECK_RC(mmws_ring_peek_oldest(r, &m), 0);
                CHECK(msg_equals_model(&m, model_at(0)));
            }
        } else if (what < 96) {
            mmws_ring_clear(r);
            model_head = model_n = 0;
            keys.n = keys.head = 0;
            have_view = 0;
        }

        if (mmws_ring_size(r) != model_n) {
            CHECK_EQ(mmws_ring_size(r), model_n);
            failed = 1;
        }
        CHECK_EQ(mmws_ring_full(r), model_n == cap);
        if (have_view && memcmp(view.data, view_copy, view.len) != 0) {
            CHECK_FAIL("the consumed view was overwritten");
            failed = 1;
        }
        if (op % 64 == 0 || failed) {
            for (size_t i = 0; i < model_n; i++) {
                mmws_msg m;
                if (mmws_ring_get(r, i, &m) != 0 ||
                    !msg_equals_model(&m, model_at(i))) {
                    CHECK_FAIL("ring differs from the model");
                    failed = 1;
                    break;
                }
            }
            if (!ranges_ok(r, have_view ? &view : NULL, mc->arena)) {
                CHECK_FAIL("stored messages overlap");
                failed = 1;
            }
        }
        if (failed) fprintf(stderr, "  at op %d\n", op);
    }
    mmws_ring_stats s = stats_of(r);
    CHECK(s.inserted > 0);
    mmws_ring_free(r);
}

static void test_random_vs_model(void) {
    uint64_t seed = 0x5EED0000u + 2024u;
    printf("random model seed %" PRIu64 "\n", seed);
    t_rng_state = seed;
    static const struct model_cfg cfgs[] = {
        /* slots limit, never the arena: drops exactly predictable */
        {16, 8192, 200, MMWS_RING_OVERWRITE_OLDEST, 0, 0, 1},
        {16, 8192, 200, MMWS_RING_REJECT_NEWEST, 0, 0, 1},
        /* the arena limits: tails skipped, the view jumped over */
        {64, 1000, 300, MMWS_RING_OVERWRITE_OLDEST, 0, 0, 0},
        {64, 1000, 300, MMWS_RING_REJECT_NEWEST, 0, 0, 0},
        {8, 97, 97, MMWS_RING_OVERWRITE_OLDEST, 0, 0, 0},
        {1, 50, 50, MMWS_RING_OVERWRITE_OLDEST, 0, 0, 0},
        /* the unique filter, window below and above the capacity */
        {32, 2000, 100, MMWS_RING_OVERWRITE_OLDEST, 1, 16, 0},
        {8, 2000, 100, MMWS_RING_REJECT_NEWEST, 1, 64, 0},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        run_model(&cfgs[i], 60000);
}

int main(void) {
    RUN(test_config);
    RUN(test_basic_fifo);
    RUN(test_wraparound);
    RUN(test_overwrite_oldest);
    RUN(test_reject_newest);
    RUN(test_arena_layout);
    RUN(test_arena_exhaustion);
    RUN(test_view_survives_inserts);
    RUN(test_consume_all);
    RUN(test_unique);
    RUN(test_unique_collisions);
    RUN(test_dedup_basic);
    RUN(test_dedup_stress);
    RUN(test_random_vs_model);
    return TEST_END("test_ring");
}
