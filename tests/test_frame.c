/*
 * test_frame.c — the frame parser and builder: RFC 6455 5.7 examples,
 * length encodings at every boundary, every protocol error with its close
 * code, each fed whole, one byte at a time and split at every offset.
 */
#include "feed.h"

#define MAX_DEFAULT (1u << 20)
#define V MMWS_FRAME_VALIDATE_UTF8

static const uint8_t rfc_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Feeds bytes every way; checks the verdict and close code; returns it. */
static feed_result *expect(const uint8_t *in, size_t n, uint64_t max,
                           unsigned flags, int want_rc, unsigned want_close) {
    feed_result *r = feed_all_splits(in, n, max, flags);
    CHECK_RC(r->rc, want_rc);
    CHECK_EQ(r->close_code, want_close);
    return r;
}

static void expect_error(const uint8_t *in, size_t n, int want_rc,
                         unsigned want_close) {
    feed_result_free(expect(in, n, MAX_DEFAULT, V, want_rc, want_close));
}

/* Appends a server (unmasked) frame to buf; returns the new length. */
static size_t put_server_frame(uint8_t *buf, size_t at, unsigned b0,
                               const void *payload, uint64_t n) {
    buf[at++] = (uint8_t)b0;
    if (n <= 125) {
        buf[at++] = (uint8_t)n;
    } else if (n <= 0xFFFF) {
        buf[at++] = 126;
        buf[at++] = (uint8_t)(n >> 8);
        buf[at++] = (uint8_t)n;
    } else {
        buf[at++] = 127;
        for (int s = 56; s >= 0; s -= 8) buf[at++] = (uint8_t)(n >> s);
    }
    if (payload && n) memcpy(buf + at, payload, (size_t)n);
    return at + (size_t)n;
}

static void rfc_examples(void) {
    /* 5.7: a single-frame unmasked text message. */
    static const uint8_t hello[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    feed_result *r = expect(hello, sizeof hello, MAX_DEFAULT, V, 0, 0);
    CHECK_EQ(r->nevents, 1);
    CHECK_EQ(r->ev[0].opcode, MMWS_OP_TEXT);
    CHECK_EQ(r->ev[0].fin, 1);
    CHECK_MEM(r->data, r->data_len, "Hello", 5);
    feed_result_free(r);

    /* 5.7: a fragmented unmasked text message. */
    static const uint8_t frag[] = {0x01, 0x03, 'H', 'e', 'l',
                                   0x80, 0x02, 'l', 'o'};
    r = expect(frag, sizeof frag, MAX_DEFAULT, V, 0, 0);
    CHECK_EQ(r->nevents, 2);
    CHECK_EQ(r->ev[0].fin, 0);
    CHECK_EQ(r->ev[1].opcode, MMWS_OP_CONT);
    CHECK_EQ(r->ev[1].message_opcode, MMWS_OP_TEXT);
    CHECK_EQ(r->ev[1].fin, 1);
    CHECK_MEM(r->data, r->data_len, "Hello", 5);
    feed_result_free(r);

    /* 5.7: unmasked ping; then the masked pong a client sends back. */
    static const uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
    r = expect(ping, sizeof ping, MAX_DEFAULT, V, 0, 0);
    CHECK_EQ(r->nevents, 1);
    CHECK_EQ(r->ev[0].opcode, MMWS_OP_PING);
    CHECK_EQ(r->ev[0].message_opcode, MMWS_OP_PING);
    feed_result_free(r);

    static const uint8_t masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t out[64];
    size_t n = 0;
    CHECK_RC(mmws_frame_build(out, sizeof out, MMWS_OP_TEXT, 1, "Hello", 5,
                              rfc_key, &n), 0);
    CHECK_MEM(out, n, masked_hello, sizeof masked_hello);
    CHECK_RC(mmws_frame_build(out, sizeof out, MMWS_OP_PONG, 1, "Hello", 5,
                              rfc_key, &n), 0);
    CHECK_MEM(out, n, masked_pong, sizeof masked_pong);

    /* A server must not mask: the same masked bytes fail the connection. */
    expect_error(masked_hello, sizeof masked_hello, MMWS_EPROTO, 1002);

    /* 5.7: 256 bytes and 64 KiB binary in one unmasked frame each. */
    static uint8_t big[65536 + 10];
    uint8_t *pl = malloc(65536);
    for (size_t i = 0; i < 65536; i++) pl[i] = (uint8_t)(i * 7);
    size_t len = put_server_frame(big, 0, 0x82, pl, 256);
    CHECK_EQ(big[1], 0x7E);
    CHECK_EQ(big[2], 0x01);
    CHECK_EQ(big[3], 0x00);
    r = expect(big, len, MAX_DEFAULT, V, 0, 0);
    CHECK_EQ(r->nevents, 1);
    CHECK_MEM(r->data, r->data_len, pl, 256);
    feed_result_free(r);

    len = put_server_frame(big, 0, 0x82, pl, 65536);
    static const uint8_t hdr64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK_MEM(big, 10, hdr64, 10);
    r = expect(big, len, MAX_DEFAULT, V, 0, 0);
    CHECK_EQ(r->nevents, 1);
    CHECK_MEM(r->data, r->data_len, pl, 65536);
    feed_result_free(r);
    free(pl);
}

/* Lengths 0, 125, 126, 127, 65535, 65536 parse and build at the edges. */
static void length_boundaries(void) {
    static const uint64_t lens[] = {0, 1, 124, 125, 126, 127, 65535, 65536,
                                    70000};
    uint8_t *pl = malloc(70000), *buf = malloc(70000 + 14);
    for (size_t i = 0; i < 70000; i++) pl[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = put_server_frame(buf, 0, 0x81, pl, lens[i]);
        size_t want_hdr = lens[i] <= 125 ? 2 : lens[i] <= 0xFFFF ? 4 : 10;
        CHECK_EQ(n, want_hdr + lens[i]);
        feed_result *r = expect(buf, n, MAX_DEFAULT, V, 0, 0);
        CHECK_EQ(r->nevents, 1);
        CHECK_MEM(r->data, r->data_len, pl, lens[i]);
        feed_result_free(r);

        /* The client header for the same length. */
        CHECK_EQ(mmws_frame_header_len(lens[i]), want_hdr + 4);
        size_t hl = 0;
        CHECK_RC(mmws_frame_write_header(buf, 14, MMWS_OP_BINARY, 1, lens[i],
                                         rfc_key, &hl), 0);
        CHECK_EQ(hl, want_hdr + 4);
        CHECK_EQ(buf[0], 0x82);
        CHECK_EQ(buf[1] & 0x80, 0x80);
        CHECK_MEM(buf + hl - 4, 4, rfc_key, 4);
    }
    /* Non-minimal length encodings are accepted (a sender MUST, we don't). */
    static const uint8_t nonmin16[] = {0x81, 126, 0, 2, 'h', 'i'};
    static const uint8_t nonmin64[] = {0x81, 127, 0, 0, 0, 0, 0, 0, 0, 2,
                                       'h', 'i'};
    feed_result *r = expect(nonmin16, sizeof nonmin16, MAX_DEFAULT, V, 0, 0);
    CHECK_MEM(r->data, r->data_len, "hi", 2);
    feed_result_free(r);
    r = expect(nonmin64, sizeof nonmin64, MAX_DEFAULT, V, 0, 0);
    CHECK_MEM(r->data, r->data_len, "hi", 2);
    feed_result_free(r);
    free(pl);
    free(buf);
}

/* MMWS_EINCOMPLETE reports how many bytes are needed. */
static void incomplete_need(void) {
    mmws_frame_parser p;
    mmws_frame f;
    CHECK_RC(mmws_frame_parser_init(&p, MAX_DEFAULT, V), 0);
    uint8_t b[16] = {0x82, 126, 0x01, 0x00};
    CHECK_RC(mmws_frame_parse(&p, b, 0, &f), MMWS_EINCOMPLETE);
    CHECK_EQ(f.frame_len, 2);
    CHECK_RC(mmws_frame_parse(&p, b, 2, &f), MMWS_EINCOMPLETE);
    CHECK_EQ(f.frame_len, 4);
    CHECK_RC(mmws_frame_parse(&p, b, 4, &f), MMWS_EINCOMPLETE);
    CHECK_EQ(f.frame_len, 4 + 256);
    b[1] = 127;
    CHECK_RC(mmws_frame_parse(&p, b, 9, &f), MMWS_EINCOMPLETE);
    CHECK_EQ(f.frame_len, 10);
    /* Nothing changed in the parser: a complete frame still parses. */
    static const uint8_t ok[] = {0x81, 0x01, 'x'};
    CHECK_RC(mmws_frame_parse(&p, ok, sizeof ok, &f), 0);
    CHECK_EQ(f.frame_len, 3);
}

static void protocol_errors(void) {
    /* RSV1, RSV2, RSV3 without an extension. */
    static const uint8_t rsv1[] = {0xC1, 0x00}, rsv2[] = {0xA1, 0x00},
                         rsv3[] = {0x91, 0x00};
    expect_error(rsv1, 2, MMWS_EPROTO, 1002);
    expect_error(rsv2, 2, MMWS_EPROTO, 1002);
    expect_error(rsv3, 2, MMWS_EPROTO, 1002);

    /* Every reserved opcode. */
    for (unsigned op = 3; op <= 15; op++) {
        if (op >= 8 && op <= 10) continue;
        uint8_t b[2] = {(uint8_t)(0x80 | op), 0};
        expect_error(b, 2, MMWS_EPROTO, 1002);
    }

    /* A fragmented control frame, and one over 125 bytes. */
    static const uint8_t frag_ping[] = {0x09, 0x00};
    expect_error(frag_ping, 2, MMWS_EPROTO, 1002);
    uint8_t long_ping[4 + 126] = {0x89, 126, 0, 126};
    expect_error(long_ping, sizeof long_ping, MMWS_EPROTO, 1002);
    static const uint8_t long_close7[] = {0x88, 127};
    expect_error(long_close7, 2, MMWS_EPROTO, 1002);

    /* Continuation without a start; a new message inside a fragmented one. */
    static const uint8_t cont[] = {0x80, 0x01, 'x'};
    expect_error(cont, sizeof cont, MMWS_EPROTO, 1002);
    static const uint8_t nested[] = {0x01, 0x01, 'a', 0x81, 0x01, 'b'};
    expect_error(nested, sizeof nested, MMWS_EPROTO, 1002);
    static const uint8_t nested_bin[] = {0x02, 0x01, 'a', 0x02, 0x01, 'b'};
    expect_error(nested_bin, sizeof nested_bin, MMWS_EPROTO, 1002);

    /* A 64-bit length with the most significant bit set. */
    static const uint8_t msb[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
    expect_error(msb, sizeof msb, MMWS_EPROTO, 1002);

    /* The detail names the violation. */
    mmws_frame_parser p;
    mmws_frame f;
    mmws_frame_parser_init(&p, MAX_DEFAULT, V);
    static const uint8_t op3[] = {0x83, 0x00};
    CHECK_RC(mmws_frame_parse(&p, op3, 2, &f), MMWS_EPROTO);
    CHECK_STR(p.detail, "reserved opcode 0x3");
    /* ...and the parser stays failed. */
    static const uint8_t ok[] = {0x81, 0x00};
    CHECK_RC(mmws_frame_parse(&p, ok, 2, &f), MMWS_EPROTO);
}

static void size_limits(void) {
    /* A frame one byte over the maximum fails on its header alone. */
    uint8_t hdr[4] = {0x82, 126, 0x03, 0xE9}; /* 1001 bytes */
    feed_result *r = expect(hdr, 4, 1000, V, MMWS_ETOOBIG, 1009);
    feed_result_free(r);
    uint8_t *buf = calloc(1, 2000);
    size_t n = put_server_frame(buf, 0, 0x82, NULL, 1000);
    r = expect(buf, n, 1000, V, 0, 0);
    CHECK_EQ(r->nevents, 1);
    feed_result_free(r);

    /* A message over the maximum in fragments fails on the fragment that
     * crosses it; control frames in between do not count. */
    n = put_server_frame(buf, 0, 0x02, NULL, 600);
    n = put_server_frame(buf, n, 0x89, "p", 1);
    n = put_server_frame(buf, n, 0x00, NULL, 400);
    size_t at_limit = n;
    n = put_server_frame(buf, n, 0x80, NULL, 1);
    r = expect(buf, n, 1000, V, MMWS_ETOOBIG, 1009);
    CHECK_EQ(r->nevents, 3);
    feed_result_free(r);
    put_server_frame(buf, at_limit, 0x80, NULL, 0);
    r = expect(buf, at_limit + 2, 1000, V, 0, 0);
    CHECK_EQ(r->nevents, 4);
    feed_result_free(r);

    /* The largest 64-bit length is refused before any payload. */
    static const uint8_t huge[] = {0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 0xFF};
    expect_error(huge, sizeof huge, MMWS_ETOOBIG, 1009);
    free(buf);

    mmws_frame_parser p;
    CHECK_RC(mmws_frame_parser_init(&p, 0, 0), MMWS_EINVAL);
    CHECK_RC(mmws_frame_parser_init(&p, 1, 0x80), MMWS_EINVAL);
    CHECK_RC(mmws_frame_parser_init(NULL, 1, 0), MMWS_EINVAL);
}

static void control_interleaved(void) {
    uint8_t buf[128];
    size_t n = put_server_frame(buf, 0, 0x01, "Hel", 3);
    n = put_server_frame(buf, n, 0x89, "ping", 4);
    n = put_server_frame(buf, n, 0x8A, "", 0);
    n = put_server_frame(buf, n, 0x00, "l", 1);
    n = put_server_frame(buf, n, 0x80, "o", 1);
    n = put_server_frame(buf, n, 0x82, "\x00\xff", 2);
    feed_result *r = expect(buf, n, MAX_DEFAULT, V, 0, 0);
    CHECK_EQ(r->nevents, 6);
    CHECK_EQ(r->ev[1].opcode, MMWS_OP_PING);
    CHECK_EQ(r->ev[1].message_opcode, MMWS_OP_PING);
    CHECK_EQ(r->ev[3].message_opcode, MMWS_OP_TEXT);
    CHECK_EQ(r->ev[4].fin, 1);
    CHECK_EQ(r->ev[5].message_opcode, MMWS_OP_BINARY);
    feed_result_free(r);
}

static void utf8_rules(void) {
    uint8_t buf[128];
    /* Valid: a code point split across fragments. "é" = C3 A9. */
    size_t n = put_server_frame(buf, 0, 0x01, "caf\xC3", 4);
    n = put_server_frame(buf, n, 0x80, "\xA9", 1);
    feed_result *r = expect(buf, n, MAX_DEFAULT, V, 0, 0);
    CHECK_MEM(r->data, r->data_len, "caf\xC3\xA9", 5);
    feed_result_free(r);

    /* Invalid in a single frame. */
    n = put_server_frame(buf, 0, 0x81, "a\xFF", 2);
    expect_error(buf, n, MMWS_EUTF8, 1007);
    /* Truncated at the end of the final fragment only. */
    n = put_server_frame(buf, 0, 0x01, "ok", 2);
    n = put_server_frame(buf, n, 0x80, "\xE2\x82", 2);
    r = expect(buf, n, MAX_DEFAULT, V, MMWS_EUTF8, 1007);
    CHECK_EQ(r->nevents, 1); /* the first fragment was fine */
    feed_result_free(r);
    /* Invalid in a middle fragment fails at that fragment. */
    n = put_server_frame(buf, 0, 0x01, "ok", 2);
    n = put_server_frame(buf, n, 0x00, "\xED\xA0\x80", 3); /* surrogate */
    n = put_server_frame(buf, n, 0x80, "ok", 2);
    r = expect(buf, n, MAX_DEFAULT, V, MMWS_EUTF8, 1007);
    CHECK_EQ(r->nevents, 1);
    feed_result_free(r);
    /* BINARY is never validated; TEXT is not without the flag. */
    n = put_server_frame(buf, 0, 0x82, "\xFF", 1);
    feed_result_free(expect(buf, n, MAX_DEFAULT, V, 0, 0));
    n = put_server_frame(buf, 0, 0x81, "\xFF", 1);
    feed_result_free(expect(buf, n, MAX_DEFAULT, 0, 0, 0));
}

static void close_frames(void) {
    uint8_t buf[200];
    /* Empty close, a normal close with a reason, 1012 (IANA) received. */
    size_t n = put_server_frame(buf, 0, 0x88, NULL, 0);
    n = put_server_frame(buf, n, 0x88, "\x03\xE8" "bye", 5);
    n = put_server_frame(buf, n, 0x88, "\x03\xF4", 2);
    feed_result *r = expect(buf, n, MAX_DEFAULT, V, 0, 0);
    CHECK_EQ(r->nevents, 3);
    feed_result_free(r);

    /* A 1-byte payload, invalid codes, and a reason that is not UTF-8. */
    n = put_server_frame(buf, 0, 0x88, "\x03", 1);
    expect_error(buf, n, MMWS_EPROTO, 1002);
    static const unsigned bad[] = {0,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t code[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        n = put_server_frame(buf, 0, 0x88, code, 2);
        expect_error(buf, n, MMWS_EPROTO, 1002);
    }
    n = put_server_frame(buf, 0, 0x88, "\x03\xE8\xC0\xAF", 4);
    expect_error(buf, n, MMWS_EUTF8, 1007);
}

static void builder_errors(void) {
    uint8_t out[300];
    size_t n = 0;
    for (unsigned op = 0; op < 16; op++) {
        int defined = op <= 2 || (op >= 8 && op <= 10);
        int rc = mmws_frame_build(out, sizeof out, op, 1, "", 0, rfc_key, &n);
        if (op == MMWS_OP_CLOSE) continue; /* empty close is fine */
        CHECK_RC(rc, defined ? 0 : MMWS_EOPCODE);
    }
    uint8_t p126[126] = {0};
    CHECK_RC(mmws_frame_build(out, sizeof out, MMWS_OP_PING, 1, p126, 126,
                              rfc_key, &n), MMWS_EPROTO);
    CHECK_RC(mmws_frame_build(out, sizeof out, MMWS_OP_PING, 0, "x", 1,
                              rfc_key, &n), MMWS_EPROTO);
    CHECK_RC(mmws_frame_build(out, sizeof out, MMWS_OP_PING, 1, p126, 125,
                              rfc_key, &n), 0);
    CHECK_EQ(n, 6 + 125);
    CHECK_RC(mmws_frame_build(NULL, 1, MMWS_OP_TEXT, 1, "x", 1, rfc_key, &n),
             MMWS_EINVAL);
    CHECK_RC(mmws_frame_build(out, 1, MMWS_OP_TEXT, 1, NULL, 1, rfc_key, &n),
             MMWS_EINVAL);
    CHECK_RC(mmws_frame_build(out, 1, MMWS_OP_TEXT, 1, "x", 1, NULL, &n),
             MMWS_EINVAL);
    CHECK_RC(mmws_frame_write_header(out, 14, MMWS_OP_BINARY, 1,
                                     UINT64_C(1) << 63, rfc_key, &n),
             MMWS_EINVAL);

    /* ENOSPC at every capacity below the need, and nothing written past. */
    for (size_t cap = 0; cap < 6 + 200; cap++) {
        memset(out, 0xEE, sizeof out);
        int rc = mmws_frame_build(out, cap, MMWS_OP_TEXT, 1, p126, 126,
                                  rfc_key, &n);
        if (cap < 8 + 126) {
            CHECK_RC(rc, MMWS_ENOSPC);
        } else {
            CHECK_RC(rc, 0);
        }
        size_t past = cap;
        while (past < sizeof out && out[past] == 0xEE) past++;
        CHECK_EQ(past, sizeof out); /* nothing written at or past cap */
    }

    /* CLOSE payloads: validated like received ones, plus send rules. */
    CHECK_RC(mmws_frame_build(out, sizeof out, MMWS_OP_CLOSE, 1, "\x03", 1,
                              rfc_key, &n), MMWS_EPROTO);
    CHECK_RC(mmws_frame_build(out, sizeof out, MMWS_OP_CLOSE, 1, "\x03\xED",
                              2, rfc_key, &n), MMWS_ECLOSECODE);
    CHECK_RC(mmws_frame_build(out, sizeof out, MMWS_OP_CLOSE, 1,
                              "\x03\xE8\xFF", 3, rfc_key, &n), MMWS_EUTF8);
}

/* Unmasks a built client frame; returns a pointer to its payload. */
static const uint8_t *unmask(uint8_t *frame, size_t n, size_t *plen) {
    uint64_t len = frame[1] & 0x7F;
    size_t hdr = 2;
    if (len == 126) {
        len = (uint64_t)frame[2] << 8 | frame[3];
        hdr = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++) len = len << 8 | frame[i];
        hdr = 10;
    }
    uint8_t *key = frame + hdr;
    for (uint64_t i = 0; i < len; i++) frame[hdr + 4 + i] ^= key[i & 3];
    *plen = (size_t)len;
    CHECK_EQ(hdr + 4 + len, n);
    return frame + hdr + 4;
}

static void build_close(void) {
    uint8_t out[200];
    size_t n = 0, pl = 0;
    CHECK_RC(mmws_frame_build_close(out, sizeof out, 1000, "bye", 3, rfc_key,
                                    &n), 0);
    CHECK_EQ(out[0], 0x88);
    const uint8_t *p = unmask(out, n, &pl);
    CHECK_MEM(p, pl, "\x03\xE8" "bye", 5);

    CHECK_RC(mmws_frame_build_close(out, sizeof out, 0, NULL, 0, rfc_key, &n),
             0);
    CHECK_EQ(n, 6);
    CHECK_RC(mmws_frame_build_close(out, sizeof out, 0, "x", 1, rfc_key, &n),
             MMWS_EINVAL);
    CHECK_RC(mmws_frame_build_close(out, sizeof out, 4999, NULL, 0, rfc_key,
                                    &n), 0);
    static const unsigned bad[] = {1,    999,  1004, 1005, 1006, 1012,
                                   1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_RC(mmws_frame_build_close(out, sizeof out, bad[i], NULL, 0,
                                        rfc_key, &n), MMWS_ECLOSECODE);
    char reason[124];
    memset(reason, 'r', sizeof reason);
    CHECK_RC(mmws_frame_build_close(out, sizeof out, 1000, reason, 123,
                                    rfc_key, &n), 0);
    CHECK_EQ(n, 6 + 125);
    CHECK_RC(mmws_frame_build_close(out, sizeof out, 1000, reason, 124,
                                    rfc_key, &n), MMWS_ERANGE);
    CHECK_RC(mmws_frame_build_close(out, sizeof out, 1000, "\xC0\x80", 2,
                                    rfc_key, &n), MMWS_EUTF8);
    CHECK_RC(mmws_frame_build_close(out, 10, 1000, "bye", 3, rfc_key, &n),
             MMWS_ENOSPC);
    CHECK_RC(mmws_frame_build_close(out, 11, 1000, "bye", 3, rfc_key, &n), 0);
}

static void wrap_in_place(void) {
    static const size_t lens[] = {0, 5, 125, 126, 65535, 65536};
    uint8_t *buf = malloc(14 + 65536);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t *payload = buf + MMWS_FRAME_MAX_HEADER, *frame = NULL;
        for (size_t j = 0; j < lens[i]; j++) payload[j] = (uint8_t)(j * 3);
        size_t flen = 0, pl = 0;
        CHECK_RC(mmws_frame_wrap(payload, lens[i], MMWS_FRAME_MAX_HEADER,
                                 MMWS_OP_BINARY, 1, rfc_key, &frame, &flen),
                 0);
        CHECK(frame + flen == payload + lens[i]);
        CHECK_EQ(flen, mmws_frame_header_len(lens[i]) + lens[i]);
        /* Identical to the copying builder's output. */
        uint8_t *copy = malloc(flen), *src = malloc(lens[i] + 1);
        for (size_t j = 0; j < lens[i]; j++) src[j] = (uint8_t)(j * 3);
        size_t clen = 0;
        CHECK_RC(mmws_frame_build(copy, flen, MMWS_OP_BINARY, 1, src, lens[i],
                                  rfc_key, &clen), 0);
        CHECK_MEM(frame, flen, copy, clen);
        const uint8_t *p = unmask(frame, flen, &pl);
        CHECK_MEM(p, pl, src, lens[i]);
        free(copy);
        free(src);
        /* Too little headroom. */
        CHECK_RC(mmws_frame_wrap(payload, lens[i],
                                 mmws_frame_header_len(lens[i]) - 1,
                                 MMWS_OP_BINARY, 1, rfc_key, &frame, &flen),
                 MMWS_ENOSPC);
    }
    free(buf);
}

int main(void) {
    RUN(rfc_examples);
    RUN(length_boundaries);
    RUN(incomplete_need);
    RUN(protocol_errors);
    RUN(size_limits);
    RUN(control_interleaved);
    RUN(utf8_rules);
    RUN(close_frames);
    RUN(builder_errors);
    RUN(build_close);
    RUN(wrap_in_place);
    return TEST_END("test_frame");
}
