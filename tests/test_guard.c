/*
 * test_guard.c — over-read guard for every codec entry point that reads
 * input: each sample, and every prefix of it, is placed so its last byte
 * sits just before a PROT_NONE page. Reading one byte too far faults at
 * once (SIGSEGV), with or without a sanitizer.
 */
#include "test.h"

/* Copies in[0..n) against a guard page and returns it (guard_free it). */
static unsigned char *guarded(const void *in, size_t n) {
    unsigned char *g = guard_alloc(n);
    if (n) memcpy(g, in, n);
    return g;
}

static void frames(void) {
    static const struct {
        const char *bytes;
        size_t len;
    } samples[] = {
        {"\x81\x05Hello", 7},
        {"\x01\x03Hel\x80\x02lo", 9},
        {"\x82\x7e\x00\x03" "abc", 7},
        {"\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x02" "ab", 12},
        {"\x88\x05\x03\xe8" "bye", 7},
        {"\x88\x02\x03\xe8", 4},
        {"\x89\x00\x8a\x01x", 5},
        {"\x81\x04\xf0\x9f\x98\x80", 6},
        {"\x81\x03\xe2\x82", 5},
    };
    for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
        for (size_t n = 0; n <= samples[s].len; n++) {
            unsigned char *g = guarded(samples[s].bytes, n);
            mmws_frame_parser p;
            mmws_frame f;
            mmws_frame_parser_init(&p, 1u << 20, MMWS_FRAME_VALIDATE_UTF8);
            size_t pos = 0;
            int rc;
            while ((rc = mmws_frame_parse(&p, g + pos, n - pos, &f)) == 0)
                pos += (size_t)f.frame_len;
            CHECK(pos <= n);
            CHECK(rc == MMWS_EINCOMPLETE || rc == MMWS_EUTF8);
            guard_free(g, n);
        }
    }
}

static void close_payloads(void) {
    const char *payload = "\x03\xe8" "caf\xc3\xa9";
    for (size_t n = 0; n <= 7; n++) {
        unsigned char *g = guarded(payload, n);
        unsigned code;
        const uint8_t *reason;
        size_t rlen;
        int rc = mmws_close_parse(g, n, &code, &reason, &rlen);
        CHECK(rc == 0 || rc == MMWS_EPROTO || rc == MMWS_EUTF8);
        guard_free(g, n);
    }
}

static void urls(void) {
    static const char *samples[] = {
        "wss://stream.binance.com:9443/ws/btcusdt@bookTicker",
        "wss://[2001:db8::1]:8443/a?b=c",
        "ws://127.0.0.1",
        "wss://h?x=1",
    };
    for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
        size_t len = strlen(samples[s]);
        for (size_t n = 0; n <= len; n++) {
            unsigned char *g = guarded(samples[s], n);
            mmws_url u;
            int rc = mmws_url_parse((const char *)g, n,
                                    MMWS_URL_ALLOW_PLAINTEXT, 0, &u);
            CHECK(rc <= 0);
            guard_free(g, n);
        }
    }
}

static void handshake_responses(void) {
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    static const char resp[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n\x81\x02hi";
    static const char busy[] =
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n\r\n";
    const char *samples[] = {resp, busy};
    for (size_t s = 0; s < 2; s++) {
        size_t len = strlen(samples[s]);
        for (size_t n = 0; n <= len; n++) {
            unsigned char *g = guarded(samples[s], n);
            mmws_handshake_parser p;
            CHECK_RC(mmws_handshake_parser_init(&p, key, NULL, 0, 0), 0);
            int rc = mmws_handshake_parse(&p, (const char *)g, n);
            if (n == len) CHECK_RC(rc, s == 0 ? 0 : MMWS_EHS_STATUS);
            else CHECK(rc == MMWS_EINCOMPLETE || (s == 0 && rc == 0));
            guard_free(g, n);
        }
    }
}

static void utf8(void) {
    static const char *samples[] = {
        "{\"u\":400900217,\"s\":\"BNBUSDT\",\"b\":\"25.35190000\"}",
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80",
        "0123456789abcdef0123456789abcdef0123456789abcdef\xe2\x82",
    };
    for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
        size_t len = strlen(samples[s]);
        for (size_t n = 0; n <= len; n++) {
            unsigned char *g = guarded(samples[s], n);
            int rc = mmws_utf8_check(g, n);
            CHECK(rc == 0 || rc == MMWS_EUTF8);
            guard_free(g, n);
        }
    }
}

int main(void) {
    RUN(frames);
    RUN(close_payloads);
    RUN(urls);
    RUN(handshake_responses);
    RUN(utf8);
    return TEST_END("test_guard");
}
