/*
 * test_roundtrip.c — randomised build -> parse: thousands of messages of
 * random type, length (weighted to the 7/16/64-bit length boundaries) and
 * fragmentation, with control frames interleaved, are built with the
 * client builder (random masks), unmasked as a server would send them, and
 * parsed back over random read splits. The seed is fixed and printed; set
 * MMWS_TEST_SEED to replay another.
 */
#include "feed.h"

#define MESSAGES 3000

/* Random payload length, weighted towards the encoding boundaries. */
static size_t rand_len(void) {
    switch (t_rand() % 8) {
    case 0: return (size_t)(t_rand() % 4);
    case 1: return 123 + (size_t)(t_rand() % 6);       /* 123..128 */
    case 2: return 65533 + (size_t)(t_rand() % 6);     /* 65533..65538 */
    case 3: return (size_t)(t_rand() % 70000);
    default: return (size_t)(t_rand() % 400);
    }
}

/* Fills p with n bytes: valid UTF-8 for text (ASCII and 2-4 byte code
 * points), anything for binary. */
static void rand_payload(uint8_t *p, size_t n, int text) {
    size_t i = 0;
    while (i < n) {
        uint64_t r = t_rand();
        if (!text) {
            p[i++] = (uint8_t)r;
            continue;
        }
        unsigned kind = (unsigned)(r % 16), room = (unsigned)(n - i);
        if (kind == 0 && room >= 4) {
            p[i++] = 0xF0;
            p[i++] = 0x9F;
            p[i++] = 0x98;
            p[i++] = 0x80; /* U+1F600 */
        } else if (kind == 1 && room >= 3) {
            p[i++] = 0xE2;
            p[i++] = 0x82;
            p[i++] = 0xAC; /* U+20AC */
        } else if (kind == 2 && room >= 2) {
            p[i++] = 0xC3;
            p[i++] = 0xA9; /* U+00E9 */
        } else {
            p[i++] = (uint8_t)(0x20 + (r >> 8) % 95);
        }
    }
}

typedef struct stream {
    uint8_t *bytes;
    size_t len, cap;
    feed_result *want;
} stream;

/* Builds one client frame, unmasks it into server form, appends it to the
 * stream and records the event the parser must report. */
static void add_frame(stream *s, unsigned opcode, int fin, unsigned msg_op,
                      const uint8_t *payload, size_t n) {
    uint8_t key[4];
    uint64_t r = t_rand();
    memcpy(key, &r, 4);
    size_t need = mmws_frame_header_len(n) + n, out_len = 0;
    uint8_t *frame = malloc(need);
    CHECK_RC(mmws_frame_build(frame, need, opcode, fin, payload, n, key,
                              &out_len), 0);
    CHECK_EQ(out_len, need);
    /* What the server would send: same header without the mask bit/key. */
    size_t hdr = need - n - 4;
    CHECK_EQ(frame[1] & 0x80, 0x80);
    CHECK_MEM(frame + hdr, 4, key, 4);
    uint8_t *dst = s->bytes + s->len;
    memcpy(dst, frame, hdr);
    dst[1] &= 0x7F;
    for (size_t i = 0; i < n; i++) dst[hdr + i] = frame[hdr + 4 + i] ^ key[i & 3];
    s->len += hdr + n;
    free(frame);

    feed_result *w = s->want;
    feed_event *e = &w->ev[w->nevents++];
    e->opcode = (uint8_t)opcode;
    e->fin = (uint8_t)fin;
    e->message_opcode = (uint8_t)msg_op;
    e->off = w->data_len;
    e->len = n;
    memcpy(w->data + w->data_len, payload, n);
    w->data_len += n;
}

static void control_frame(stream *s) {
    uint8_t p[125];
    size_t n = (size_t)(t_rand() % 126);
    rand_payload(p, n, 0);
    add_frame(s, t_rand() % 2 ? MMWS_OP_PING : MMWS_OP_PONG, 1,
              0, p, n);
    feed_event *e = &s->want->ev[s->want->nevents - 1];
    e->message_opcode = e->opcode;
}

static void roundtrip(void) {
    stream s = {0};
    s.cap = (size_t)64 << 20;
    s.bytes = malloc(s.cap);
    s.want = feed_result_new(s.cap);
    uint8_t *msg = malloc(70000);
    size_t frames = 0;
    int m;

    for (m = 0; m < MESSAGES && s.want->nevents + 16 < FEED_MAX_EVENTS;
         m++) {
        if (s.len + 4 * 70000 > s.cap) break;
        int text = (int)(t_rand() % 2);
        unsigned op = text ? MMWS_OP_TEXT : MMWS_OP_BINARY;
        size_t n = rand_len();
        rand_payload(msg, n, text);
        /* Split into 1-4 fragments at random points (text fragments may
         * split a code point: the validator carries state). */
        size_t parts = 1 + (size_t)(t_rand() % 4), at = 0;
        for (size_t k = 0; k < parts; k++) {
            size_t left = n - at;
            size_t take = k + 1 == parts ? left
                                         : (left ? (size_t)(t_rand() % (left + 1)) : 0);
            add_frame(&s, k == 0 ? op : MMWS_OP_CONT, k + 1 == parts, op,
                      msg + at, take);
            at += take;
            frames++;
            if (t_rand() % 8 == 0) {
                control_frame(&s);
                frames++;
            }
        }
    }
    /* A close frame ends the stream. */
    add_frame(&s, MMWS_OP_CLOSE, 1, MMWS_OP_CLOSE, (const uint8_t *)"\x03\xE8" "done", 6);
    frames++;
    printf("  %d messages, %zu frames, %zu bytes\n", m, frames, s.len);
    CHECK(m >= MESSAGES / 2);

    feed_result *got = feed_result_new(s.cap);
    /* Whole; then several random chunk schedules; then byte at a time. */
    feed_run(s.bytes, s.len, NULL, 0, 1u << 20, MMWS_FRAME_VALIDATE_UTF8, got);
    CHECK_RC(got->rc, 0);
    CHECK(feed_same(got, s.want));
    size_t *cuts = malloc((s.len + 1) * sizeof *cuts);
    for (int sched = 0; sched < 6; sched++) {
        size_t nc = 0, pos = 0, maxchunk = sched < 2 ? 16 : sched < 4 ? 1500 : 70000;
        while (pos < s.len) {
            pos += 1 + (size_t)(t_rand() % maxchunk);
            cuts[nc++] = pos < s.len ? pos : s.len;
        }
        feed_run(s.bytes, s.len, cuts, nc, 1u << 20, MMWS_FRAME_VALIDATE_UTF8, got);
        CHECK_RC(got->rc, 0);
        CHECK(feed_same(got, s.want));
    }
    for (size_t i = 0; i < s.len; i++) cuts[i] = i + 1;
    feed_run(s.bytes, s.len, cuts, s.len, 1u << 20, MMWS_FRAME_VALIDATE_UTF8, got);
    CHECK_RC(got->rc, 0);
    CHECK(feed_same(got, s.want));

    free(cuts);
    free(msg);
    free(s.bytes);
    feed_result_free(s.want);
    feed_result_free(got);
}

int main(void) {
    const char *env = getenv("MMWS_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0x6D6D7773u;
    if (seed == 0) seed = 1;
    t_rng_state = seed;
    printf("test_roundtrip: seed=0x%" PRIx64 " (replay with MMWS_TEST_SEED)\n",
           seed);
    RUN(roundtrip);
    return TEST_END("test_roundtrip");
}
