/*
 * fuzz_handshake.c — the handshake response checker on arbitrary bytes.
 * The input is parsed whole, then again on a fresh parser in two calls
 * split at a data-derived offset, then one byte at a time (short inputs);
 * every run must reach the same verdict, status, header_len, subprotocol
 * and Retry-After, and a complete header must lie inside the input.
 */
#include <stdlib.h>
#include <string.h>

#include <mmws/codec.h>

#include "fuzz.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
/* Small enough that the fuzzer reaches the bound, large enough for real
 * responses. */
#define MAX_HEADER 1024
/* Longest input also fed one byte at a time. */
#define BYTEWISE_MAX 2048

static const char *const protos[] = {"chat", "v2"};

/* What one run ended with. */
typedef struct verdict {
    int rc;
    int status;
    int protocol_index;
    uint32_t retry_after;
    size_t header_len;
} verdict;

/* Initialises a parser and aborts if that fails. */
static void init(mmws_handshake_parser *p) {
    if (mmws_handshake_parser_init(p, KEY, protos, 2, MAX_HEADER) != 0)
        abort();
}

/* Records p's results after rc, aborting on anything out of contract. */
static void take(verdict *v, int rc, const mmws_handshake_parser *p,
                 size_t size) {
    v->rc = rc;
    v->status = p->status;
    v->protocol_index = p->protocol_index;
    v->retry_after = p->retry_after_s;
    v->header_len = rc == 0 ? p->header_len : 0;
    if (rc > 0 || (rc != 0 && rc != MMWS_EINCOMPLETE && p->detail[0] == '\0'))
        abort();
    if (rc == 0 && (p->header_len < 4 || p->header_len > size ||
                    p->header_len > MAX_HEADER))
        abort();
    if (p->protocol_index < -1 || p->protocol_index > 1) abort();
    if (p->retry_after_s > 86400) abort();
    if (memchr(p->detail, '\0', sizeof p->detail) == NULL) abort();
}

/* Aborts unless a and b are the same verdict. */
static void agree(const verdict *a, const verdict *b) {
    if (a->rc != b->rc || a->status != b->status ||
        a->protocol_index != b->protocol_index ||
        a->retry_after != b->retry_after || a->header_len != b->header_len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    mmws_handshake_parser p;
    verdict whole, split;

    init(&p);
    take(&whole, mmws_handshake_parse(&p, s, size), &p, size);

    size_t cut = 0;
    if (size > 0) cut = ((size_t)data[0] * 131u + size) % (size + 1);
    init(&p);
    int rc = mmws_handshake_parse(&p, s, cut);
    if (rc == MMWS_EINCOMPLETE) rc = mmws_handshake_parse(&p, s, size);
    take(&split, rc, &p, size);
    agree(&whole, &split);

    if (size <= BYTEWISE_MAX) {
        init(&p);
        rc = MMWS_EINCOMPLETE;
        for (size_t n = 0; n <= size && rc == MMWS_EINCOMPLETE; n++)
            rc = mmws_handshake_parse(&p, s, n);
        take(&split, rc, &p, size);
        agree(&whole, &split);
    }
    return 0;
}
