/*
 * fuzz_utf8.c — mmws_utf8_check / _validate against a naive reference.
 *
 * Each input is checked whole, split in two at a point taken from its first
 * bytes (the state carried across), split in three, and for short inputs
 * fed one byte at a time; every way must agree with a reference decoder
 * that computes code points with plain arithmetic. Any disagreement
 * aborts. Pieces are copied into exact-size blocks so ASan sees an
 * over-read of any piece.
 */
#include <stdlib.h>
#include <string.h>

#include <mmws/codec.h>

#include "fuzz.h"

enum { REF_VALID, REF_PARTIAL, REF_INVALID };

/* Reference verdict of s[0..len): valid, a valid prefix cut inside a
 * character, or invalid (overlong, surrogate, above U+10FFFF, bad byte). */
static int ref_utf8(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint32_t b = s[i], cp, min;
        size_t n;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xC0 && b < 0xE0) {
            n = 2, cp = b - 0xC0, min = 0x80;
        } else if (b >= 0xE0 && b < 0xF0) {
            n = 3, cp = b - 0xE0, min = 0x800;
        } else if (b >= 0xF0 && b < 0xF8) {
            n = 4, cp = b - 0xF0, min = 0x10000;
        } else {
            return REF_INVALID;
        }
        size_t k = 1;
        for (; k < n && i + k < len; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return REF_INVALID;
            cp = cp * 64 + (uint32_t)(s[i + k] - 0x80);
        }
        uint32_t span = 1;
        for (size_t j = k; j < n; j++) span *= 64;
        uint32_t lo = cp * span, hi = lo + span - 1;
        if (lo < min) lo = min;
        if (hi > 0x10FFFF) hi = 0x10FFFF;
        if (lo > hi) return REF_INVALID;
        if (lo >= 0xD800 && hi <= 0xDFFF) return REF_INVALID;
        if (k < n) return REF_PARTIAL;
        i += n;
    }
    return REF_VALID;
}

/* Validates s[0..len) from *st in an exact-size copy. */
static int piece(uint32_t *st, const uint8_t *s, size_t len) {
    uint8_t *p = malloc(len ? len : 1);
    if (!p) abort();
    if (len) memcpy(p, s, len);
    int rc = mmws_utf8_validate(st, p, len);
    free(p);
    return rc;
}

/* Aborts unless the last validate's rc and the final state *st match
 * verdict v. */
static void expect(int rc, const uint32_t *st, int v) {
    if (rc != (v == REF_INVALID ? MMWS_EUTF8 : 0)) abort();
    if (mmws_utf8_finish(*st) != (v == REF_VALID ? 0 : MMWS_EUTF8)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int v = ref_utf8(data, size);
    if (mmws_utf8_check(data, size) != (v == REF_VALID ? 0 : MMWS_EUTF8))
        abort();

    uint32_t st = MMWS_UTF8_ACCEPT;
    expect(mmws_utf8_validate(&st, data, size), &st, v);

    /* Two and three pieces at data-derived points. */
    size_t a = 0, b = 0;
    if (size >= 2) {
        a = ((size_t)data[0] | (size_t)data[1] << 8) % (size + 1);
        b = a + ((size_t)data[size - 1] * 7) % (size - a + 1);
    }
    st = MMWS_UTF8_ACCEPT;
    int r1 = piece(&st, data, a);
    if (r1 != (ref_utf8(data, a) == REF_INVALID ? MMWS_EUTF8 : 0)) abort();
    expect(piece(&st, data + a, size - a), &st, v);

    st = MMWS_UTF8_ACCEPT;
    piece(&st, data, a);
    piece(&st, data + a, b - a);
    expect(piece(&st, data + b, size - b), &st, v);

    if (size <= 256) {
        st = MMWS_UTF8_ACCEPT;
        int rc = 0;
        for (size_t i = 0; i < size; i++) {
            int r = piece(&st, data + i, 1);
            if (rc != 0 && r == 0) abort(); /* errors are sticky */
            rc = r;
        }
        expect(rc, &st, v);
    }
    return 0;
}
