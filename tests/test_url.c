/* test_url.c — mmws_url_parse: valid forms, every error, guard pages. */
#include "test.h"

#define PT MMWS_URL_ALLOW_PLAINTEXT

/* One URL that must parse, and what it must parse to. */
typedef struct url_ok {
    const char *url;
    unsigned flags;
    const char *host;
    const char *resource;
    unsigned port;
    int secure, ipv6, port_explicit;
} url_ok;

static const url_ok ok_cases[] = {
    {"wss://example.com", 0, "example.com", "", 443, 1, 0, 0},
    {"wss://example.com/", 0, "example.com", "/", 443, 1, 0, 0},
    {"WSS://Example.COM/Path", 0, "Example.COM", "/Path", 443, 1, 0, 0},
    {"wSs://h", 0, "h", "", 443, 1, 0, 0},
    {"wss://fstream.binance.com/ws/btcusdt@bookTicker", 0,
     "fstream.binance.com", "/ws/btcusdt@bookTicker", 443, 1, 0, 0},
    {"wss://h:443/x", 0, "h", "/x", 443, 1, 0, 1},
    {"wss://h:9443/x?y=1&z=%20", 0, "h", "/x?y=1&z=%20", 9443, 1, 0, 1},
    {"wss://h:1", 0, "h", "", 1, 1, 0, 1},
    {"wss://h:65535", 0, "h", "", 65535, 1, 0, 1},
    {"wss://h:00080", 0, "h", "", 80, 1, 0, 1},
    {"wss://h?q=1", 0, "h", "?q=1", 443, 1, 0, 0},
    {"wss://h:8443?q", 0, "h", "?q", 8443, 1, 0, 1},
    {"wss://h/a:b@c", 0, "h", "/a:b@c", 443, 1, 0, 0},
    {"wss://a-b_c~d.e-f.G9", 0, "a-b_c~d.e-f.G9", "", 443, 1, 0, 0},
    {"wss://127.0.0.1:8080/", 0, "127.0.0.1", "/", 8080, 1, 0, 1},
    {"wss://[::1]", 0, "::1", "", 443, 1, 1, 0},
    {"wss://[::1]:9000/p", 0, "::1", "/p", 9000, 1, 1, 1},
    {"wss://[2001:db8::1]/x", 0, "2001:db8::1", "/x", 443, 1, 1, 0},
    {"wss://[::]?a", 0, "::", "?a", 443, 1, 1, 0},
    {"wss://[::ffff:192.0.2.1]:1", 0, "::ffff:192.0.2.1", "", 1, 1, 1, 1},
    {"wss://[ABCD:EF01:2345:6789:ABCD:EF01:2345:6789]", 0,
     "ABCD:EF01:2345:6789:ABCD:EF01:2345:6789", "", 443, 1, 1, 0},
    {"ws://localhost", PT, "localhost", "", 80, 0, 0, 0},
    {"WS://localhost:80/", PT, "localhost", "/", 80, 0, 0, 1},
    {"ws://localhost:9001/echo", PT, "localhost", "/echo", 9001, 0, 0, 1},
    {"wss://h", PT, "h", "", 443, 1, 0, 0},
};

/* One URL that must fail, and the code it must fail with. */
typedef struct url_bad {
    const char *url;
    unsigned flags;
    int rc;
} url_bad;

static const url_bad bad_cases[] = {
    /* characters, checked before anything else */
    {"wss://a b", 0, MMWS_EURL_CHAR},
    {"wss://a\tb", 0, MMWS_EURL_CHAR},
    {"wss://ab/\r\nX: y", 0, MMWS_EURL_CHAR},
    {"wss://h/\x7f", 0, MMWS_EURL_CHAR},
    {"wss://h/\xc3\xa9", 0, MMWS_EURL_CHAR},
    {"http://a b", 0, MMWS_EURL_CHAR},
    {" wss://h", 0, MMWS_EURL_CHAR},
    /* scheme */
    {"", 0, MMWS_EURL_SCHEME},
    {"w", 0, MMWS_EURL_SCHEME},
    {"wss", 0, MMWS_EURL_SCHEME},
    {"wss:/", 0, MMWS_EURL_SCHEME},
    {"wss:/x", 0, MMWS_EURL_SCHEME},
    {"wss:x", 0, MMWS_EURL_SCHEME},
    {"http://h", 0, MMWS_EURL_SCHEME},
    {"https://h", PT, MMWS_EURL_SCHEME},
    {"example.com/ws", 0, MMWS_EURL_SCHEME},
    {"//h/x", 0, MMWS_EURL_SCHEME},
    {"wsss://h", 0, MMWS_EURL_SCHEME},
    {"ws:/h", PT, MMWS_EURL_SCHEME},
    /* plaintext */
    {"ws://h", 0, MMWS_EURL_PLAINTEXT},
    {"WS://h/#x", 0, MMWS_EURL_PLAINTEXT},
    /* fragment, anywhere */
    {"wss://h#", 0, MMWS_EURL_FRAGMENT},
    {"wss://h/x#y", 0, MMWS_EURL_FRAGMENT},
    {"wss://h?q#f", 0, MMWS_EURL_FRAGMENT},
    {"wss://#", 0, MMWS_EURL_FRAGMENT},
    {"wss://u@h/#", 0, MMWS_EURL_FRAGMENT},
    {"ws://h#", PT, MMWS_EURL_FRAGMENT},
    /* userinfo */
    {"wss://user@h", 0, MMWS_EURL_USERINFO},
    {"wss://user:pw@h/x", 0, MMWS_EURL_USERINFO},
    {"wss://@h", 0, MMWS_EURL_USERINFO},
    {"wss://h@", 0, MMWS_EURL_USERINFO},
    {"wss://[::1]@h", 0, MMWS_EURL_USERINFO},
    /* host */
    {"wss://", 0, MMWS_EURL_HOST},
    {"wss:///x", 0, MMWS_EURL_HOST},
    {"wss://?x", 0, MMWS_EURL_HOST},
    {"wss://:443", 0, MMWS_EURL_HOST},
    {"wss://:443/", 0, MMWS_EURL_HOST},
    {"wss://h!", 0, MMWS_EURL_HOST},
    {"wss://h%41", 0, MMWS_EURL_HOST},
    {"wss://a,b", 0, MMWS_EURL_HOST},
    {"wss://a]b", 0, MMWS_EURL_HOST},
    {"wss://a[b", 0, MMWS_EURL_HOST},
    {"wss://h;x", 0, MMWS_EURL_HOST},
    {"wss://[", 0, MMWS_EURL_HOST},
    {"wss://[]", 0, MMWS_EURL_HOST},
    {"wss://[:]", 0, MMWS_EURL_HOST},
    {"wss://[::1", 0, MMWS_EURL_HOST},
    {"wss://[::1/x]", 0, MMWS_EURL_HOST},
    {"wss://[::1]x", 0, MMWS_EURL_HOST},
    {"wss://[::1]]", 0, MMWS_EURL_HOST},
    {"wss://[::1]443", 0, MMWS_EURL_HOST},
    {"wss://[::1%eth0]", 0, MMWS_EURL_HOST},
    {"wss://[fe80::1%25eth0]", 0, MMWS_EURL_HOST},
    {"wss://[::g]", 0, MMWS_EURL_HOST},
    {"wss://[1234]", 0, MMWS_EURL_HOST},
    {"wss://[1:2]", 0, MMWS_EURL_HOST},
    {"wss://[v1.x]", 0, MMWS_EURL_HOST},
    {"wss://[0000:0000:0000:0000:0000:0000:0000:0000:000000]", 0,
     MMWS_EURL_HOST},
    {"wss://[::1]:0x", 0, MMWS_EURL_PORT},
    /* port */
    {"wss://h:", 0, MMWS_EURL_PORT},
    {"wss://h:/", 0, MMWS_EURL_PORT},
    {"wss://h:?q", 0, MMWS_EURL_PORT},
    {"wss://h:0", 0, MMWS_EURL_PORT},
    {"wss://h:00000", 0, MMWS_EURL_PORT},
    {"wss://h:65536", 0, MMWS_EURL_PORT},
    {"wss://h:99999", 0, MMWS_EURL_PORT},
    {"wss://h:000443", 0, MMWS_EURL_PORT},
    {"wss://h:4a3", 0, MMWS_EURL_PORT},
    {"wss://h:+443", 0, MMWS_EURL_PORT},
    {"wss://h:-1", 0, MMWS_EURL_PORT},
    {"wss://h:443:443", 0, MMWS_EURL_PORT},
    {"wss://h::443", 0, MMWS_EURL_PORT},
    {"wss://[::1]:", 0, MMWS_EURL_PORT},
    {"wss://[::1]:/", 0, MMWS_EURL_PORT},
    {"wss://[::1]:65536", 0, MMWS_EURL_PORT},
};

#define N_OK (sizeof ok_cases / sizeof ok_cases[0])
#define N_BAD (sizeof bad_cases / sizeof bad_cases[0])

/* Fills u with a byte pattern so an untouched struct can be recognised. */
static void poison(mmws_url *u) { memset(u, 0xA5, sizeof *u); }

/* 1 if u still holds the poison() pattern. */
static int poisoned(const mmws_url *u) {
    mmws_url ref;
    poison(&ref);
    return memcmp(u, &ref, sizeof ref) == 0;
}

static void test_valid(void) {
    for (size_t i = 0; i < N_OK; i++) {
        const url_ok *c = &ok_cases[i];
        size_t len = strlen(c->url);
        mmws_url u;
        poison(&u);
        t_case = c->url;
        CHECK_RC(mmws_url_parse(c->url, len, c->flags, 0, &u), 0);
        CHECK_MEM(u.host, u.host_len, c->host, strlen(c->host));
        CHECK_MEM(u.resource, u.resource_len, c->resource,
                  strlen(c->resource));
        CHECK_EQ(u.port, c->port);
        CHECK_EQ(u.secure, c->secure);
        CHECK_EQ(u.ipv6, c->ipv6);
        CHECK_EQ(u.port_explicit, c->port_explicit);
        CHECK(u.host >= c->url && u.host + u.host_len <= c->url + len);
        CHECK(u.resource >= c->url && u.resource + u.resource_len <= c->url + len);
    }
}

static void test_errors(void) {
    for (size_t i = 0; i < N_BAD; i++) {
        const url_bad *c = &bad_cases[i];
        mmws_url u;
        poison(&u);
        t_case = c->url;
        CHECK_RC(mmws_url_parse(c->url, strlen(c->url), c->flags, 0, &u),
                 c->rc);
        CHECK(poisoned(&u));
    }
}

/* Bytes outside the string's length are never looked at. */
static void test_no_nul_needed(void) {
    const char s[] = "wss://h:443/x#frag";
    mmws_url u;
    CHECK_RC(mmws_url_parse(s, 11, 0, 0, &u), 0);
    CHECK_MEM(u.host, u.host_len, "h", 1);
    CHECK_EQ(u.resource_len, 0);
    CHECK_RC(mmws_url_parse(s, 12, 0, 0, &u), 0);
    CHECK_MEM(u.resource, u.resource_len, "/", 1);
    CHECK_RC(mmws_url_parse(s, 14, 0, 0, &u), MMWS_EURL_FRAGMENT);
    CHECK_RC(mmws_url_parse("wss://h\0x", 9, 0, 0, &u), MMWS_EURL_CHAR);
}

static void test_bad_args(void) {
    mmws_url u;
    poison(&u);
    CHECK_RC(mmws_url_parse(NULL, 0, 0, 0, &u), MMWS_EINVAL);
    CHECK_RC(mmws_url_parse("wss://h", 7, 0, 0, NULL), MMWS_EINVAL);
    CHECK(poisoned(&u));
}

static void test_max_len(void) {
    static char big[MMWS_URL_DEFAULT_MAX_LEN + 2];
    mmws_url u;
    memcpy(big, "wss://h/", 8);
    memset(big + 8, 'a', sizeof big - 8);
    CHECK_RC(mmws_url_parse(big, MMWS_URL_DEFAULT_MAX_LEN, 0, 0, &u), 0);
    CHECK_EQ(u.resource_len, MMWS_URL_DEFAULT_MAX_LEN - 7);
    poison(&u);
    CHECK_RC(mmws_url_parse(big, MMWS_URL_DEFAULT_MAX_LEN + 1, 0, 0, &u),
             MMWS_EURL_TOOLONG);
    CHECK(poisoned(&u));
    CHECK_RC(mmws_url_parse("wss://h/xy", 10, 0, 10, &u), 0);
    CHECK_RC(mmws_url_parse("wss://h/xy", 10, 0, 9, &u), MMWS_EURL_TOOLONG);
    /* TOOLONG wins over every other error. */
    CHECK_RC(mmws_url_parse("http://a b", 10, 0, 9, &u), MMWS_EURL_TOOLONG);
    CHECK_RC(mmws_url_parse(big, MMWS_URL_DEFAULT_MAX_LEN, 0,
                            MMWS_URL_DEFAULT_MAX_LEN + 1, &u), 0);
    CHECK_RC(mmws_url_parse(big, sizeof big, 0, sizeof big, &u), 0);
}

/* Host length bounds: 253 bytes of reg-name pass, 254 fail. */
static void test_host_len(void) {
    char s[6 + 260];
    mmws_url u;
    memcpy(s, "wss://", 6);
    memset(s + 6, 'a', 254);
    CHECK_RC(mmws_url_parse(s, 6 + 253, 0, 0, &u), 0);
    CHECK_EQ(u.host_len, 253);
    CHECK_RC(mmws_url_parse(s, 6 + 254, 0, 0, &u), MMWS_EURL_HOST);
    /* IPv6 literal: 45 characters inside the brackets pass, 46 fail. */
    const char *v45 = "wss://[0000:0000:0000:0000:0000:ffff:192.168.100.200]";
    CHECK_RC(mmws_url_parse(v45, strlen(v45), 0, 0, &u), 0);
    CHECK_EQ(u.host_len, 45);
    const char *v46 = "wss://[0000:0000:0000:0000:0000:ffff:192.168.100.2000]";
    CHECK_RC(mmws_url_parse(v46, strlen(v46), 0, 0, &u), MMWS_EURL_HOST);
}

/* Every valid port value round-trips; the two out-of-range ones fail. */
static void test_all_ports(void) {
    char s[32];
    mmws_url u;
    unsigned bad = 0;
    for (unsigned port = 0; port <= 65536; port++) {
        int n = snprintf(s, sizeof s, "wss://h:%u/", port);
        int rc = mmws_url_parse(s, (size_t)n, 0, 0, &u);
        if (port == 0 || port == 65536) {
            bad += rc != MMWS_EURL_PORT;
        } else {
            bad += rc != 0 || u.port != port || !u.port_explicit;
        }
    }
    CHECK_EQ(bad, 0);
}

/*
 * Every prefix of every case, placed against a PROT_NONE page: the parser
 * must not read a byte past len, and must agree with a normal buffer.
 */
static void test_guard_pages(void) {
    unsigned mismatches = 0;
    for (size_t i = 0; i < N_OK + N_BAD; i++) {
        const char *s = i < N_OK ? ok_cases[i].url : bad_cases[i - N_OK].url;
        unsigned flags =
            i < N_OK ? ok_cases[i].flags : bad_cases[i - N_OK].flags;
        size_t len = strlen(s);
        for (size_t n = 0; n <= len; n++) {
            unsigned char *g = guard_alloc(n);
            memcpy(g, s, n);
            mmws_url a, b;
            int ra = mmws_url_parse((const char *)g, n, flags, 0, &a);
            int rb = mmws_url_parse(s, n, flags, 0, &b);
            if (ra != rb ||
                (ra == 0 && (a.host_len != b.host_len ||
                             a.host - (const char *)g != b.host - s ||
                             a.resource_len != b.resource_len ||
                             a.port != b.port)))
                mismatches++;
            guard_free(g, n);
        }
    }
    CHECK_EQ(mismatches, 0);
}

/* Random mutations of valid URLs: never a crash, and views stay inside. */
static void test_random(void) {
    unsigned escapes = 0;
    char s[96];
    for (int iter = 0; iter < 200000; iter++) {
        const char *base = ok_cases[t_rand() % N_OK].url;
        size_t len = strlen(base);
        memcpy(s, base, len);
        int edits = (int)(t_rand() % 4);
        for (int e = 0; e < edits && len > 0; e++) {
            static const char alphabet[] = "ws:/[]?#@.%a0:9 \x01\x80";
            s[t_rand() % len] = alphabet[t_rand() % (sizeof alphabet - 1)];
        }
        if (t_rand() % 4 == 0) len = (size_t)(t_rand() % (len + 1));
        mmws_url u;
        if (mmws_url_parse(s, len, PT, 0, &u) == 0)
            escapes += u.host < s || u.host + u.host_len > s + len ||
                       u.host_len == 0 || u.port == 0 ||
                       u.resource < s || u.resource + u.resource_len > s + len;
    }
    CHECK_EQ(escapes, 0);
}

int main(void) {
    RUN(test_valid);
    RUN(test_errors);
    RUN(test_no_nul_needed);
    RUN(test_bad_args);
    RUN(test_max_len);
    RUN(test_host_len);
    RUN(test_all_ports);
    RUN(test_guard_pages);
    RUN(test_random);
    return TEST_END("test_url");
}
