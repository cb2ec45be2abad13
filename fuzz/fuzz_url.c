/*
 * fuzz_url.c — mmws_url_parse on arbitrary bytes, with and without
 * MMWS_URL_ALLOW_PLAINTEXT. Every accepted URL must give views inside the
 * input, a non-empty host and a non-zero port, and must turn into an
 * upgrade request (or ENOSPC in a buffer that is too small) without a byte
 * written past the buffer's capacity.
 */
#include <stdlib.h>
#include <string.h>

#include <mmws/codec.h>

#include "fuzz.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define CANARY 0xCC

/* Aborts unless u holds views into s[0..n) and a usable host and port. */
static void check_url(const mmws_url *u, const char *s, size_t n,
                      unsigned flags) {
    if (u->host_len == 0 || u->host < s || u->host_len > n ||
        u->host > s + n - u->host_len)
        abort();
    if (u->resource < s || u->resource_len > n ||
        u->resource > s + n - u->resource_len)
        abort();
    if (u->port == 0) abort();
    if (!u->port_explicit && u->port != (u->secure ? 443 : 80)) abort();
    if (!u->secure && !(flags & MMWS_URL_ALLOW_PLAINTEXT)) abort();
    if (u->resource_len > 0 && u->resource[0] != '/' && u->resource[0] != '?')
        abort();
}

/* Builds the request for u into a buffer of cap bytes plus a canary
 * tail; aborts on any result but 0 or ENOSPC, or on a write past cap. */
static void check_build(const mmws_url *u, size_t cap, int must_fit) {
    static char buf[8192 + 64];
    static const char *const protos[] = {"chat", "v2"};
    static const mmws_header hdrs[] = {{"Origin", "https://example.com"}};
    mmws_handshake_request req = {u, KEY, protos, 2, hdrs, 1};
    size_t n = 0;
    memset(buf, CANARY, sizeof buf);
    int rc = mmws_handshake_build(&req, buf, cap, &n);
    if (rc != 0 && rc != MMWS_ENOSPC) abort();
    if (rc == MMWS_ENOSPC && must_fit) abort();
    if (rc == 0 && (n > cap || n < 4 || memcmp(buf, "GET ", 4) != 0 ||
                    memcmp(buf + n - 4, "\r\n\r\n", 4) != 0))
        abort();
    for (size_t i = rc == 0 ? n : cap; i < sizeof buf; i++)
        if ((unsigned char)buf[i] != CANARY) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    mmws_url strict, plain;
    int rs = mmws_url_parse(s, size, 0, 0, &strict);
    int rp = mmws_url_parse(s, size, MMWS_URL_ALLOW_PLAINTEXT, 0, &plain);

    /* Allowing plaintext changes only the verdict on ws:// URLs. */
    if (rs == 0 && (rp != 0 || memcmp(&strict, &plain, sizeof strict) != 0))
        abort();
    if (rs != rp && rs != MMWS_EURL_PLAINTEXT) abort();
    if (rs == 0) check_url(&strict, s, size, 0);
    if (rp != 0) return 0;
    check_url(&plain, s, size, MMWS_URL_ALLOW_PLAINTEXT);

    /* A URL within the default bound always fits in 8 KiB. */
    check_build(&plain, 8192, 1);
    check_build(&plain, size % 256, 0);
    return 0;
}
