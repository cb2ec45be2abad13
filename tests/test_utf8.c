/*
 * test_utf8.c — mmws_utf8_validate / _finish / _check.
 *
 * Markus Kuhn's decoder stress-test categories (rebuilt here as byte
 * strings), exhaustive comparison against a naive reference decoder for
 * every 1-, 2- and 3-byte input and every 4-byte input with a lead of
 * F0..F4, randomised inputs around the vector scanner's 16/32/128-byte
 * steps, and inputs that end at a guard page. Every input is fed whole,
 * one byte at a time and split at every offset, and must give the same
 * verdict each way.
 */
#include "test.h"

#include "codec/utf8_internal.h"

/* Verdicts of the reference decoder. */
enum { REF_VALID, REF_PARTIAL, REF_INVALID };

/*
 * Naive reference: decodes each sequence into a code point with plain
 * arithmetic and checks it against RFC 3629 (shortest form, no surrogates,
 * at most U+10FFFF). A sequence cut off by the end of input is PARTIAL if
 * some continuation of it would be valid, i.e. if the interval of code
 * points it could still become meets the valid set.
 */
static int ref_utf8(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        size_t n;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            n = 2, cp = b & 0x1Fu, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            n = 3, cp = b & 0x0Fu, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            n = 4, cp = b & 0x07u, min = 0x10000;
        } else {
            return REF_INVALID; /* continuation byte or F8..FF */
        }
        size_t have = 1;
        while (have < n && i + have < len) {
            uint8_t c = s[i + have];
            if ((c & 0xC0) != 0x80) return REF_INVALID;
            cp = (cp << 6) | (c & 0x3Fu);
            have++;
        }
        unsigned free_bits = (unsigned)(6 * (n - have));
        uint32_t lo = cp << free_bits;
        uint32_t hi = lo | ((1u << free_bits) - 1);
        if (hi < min || lo > 0x10FFFF) return REF_INVALID;
        if (lo < min) lo = min;
        if (hi > 0x10FFFF) hi = 0x10FFFF;
        if (lo >= 0xD800 && hi <= 0xDFFF) return REF_INVALID;
        if (have < n) return REF_PARTIAL;
        i += n;
    }
    return REF_VALID;
}

/* What validate must return for an input whose reference verdict is v. */
static int want_validate(int v) { return v == REF_INVALID ? MMWS_EUTF8 : 0; }

/* What finish must return after validating such an input. */
static int want_finish(int v) { return v == REF_VALID ? 0 : MMWS_EUTF8; }

static const char *ref_name(int v) {
    return v == REF_VALID ? "valid" : v == REF_PARTIAL ? "partial" : "invalid";
}

/* Length of the shortest invalid prefix of s, or len + 1 if none is. */
static size_t first_bad(const uint8_t *s, size_t len) {
    for (size_t k = 1; k <= len; k++)
        if (ref_utf8(s, k) == REF_INVALID) return k;
    return len + 1;
}

/* Copies s[0..len) into a heap block of exactly len bytes, so ASan sees any
 * read past the piece. */
static uint8_t *exact_copy(const uint8_t *s, size_t len) {
    uint8_t *p = malloc(len ? len : 1);
    if (!p) {
        perror("malloc");
        exit(2);
    }
    if (len) memcpy(p, s, len);
    return p;
}

/*
 * Feeds s whole, one byte at a time, and split in two at every offset,
 * each piece in its own exact-size block, and checks each way against the
 * reference verdict want: the return of every call, the sticky error, the
 * byte at which the error is reported, and finish.
 */
static void check_ways(const char *what, const uint8_t *s, size_t len,
                       int want) {
    unsigned long before = t_failed;
    uint8_t *whole = exact_copy(s, len);

    uint32_t st = MMWS_UTF8_ACCEPT;
    CHECK_RC(mmws_utf8_validate(&st, whole, len), want_validate(want));
    if (want != REF_INVALID) CHECK_RC(mmws_utf8_finish(st), want_finish(want));
    CHECK_RC(mmws_utf8_check(whole, len),
             want == REF_VALID ? 0 : MMWS_EUTF8);
    /* Sticky: more clean ASCII never revives an invalid state. */
    if (want == REF_INVALID) {
        CHECK_RC(mmws_utf8_validate(&st, (const uint8_t *)"abc", 3),
                 MMWS_EUTF8);
        CHECK_RC(mmws_utf8_finish(st), MMWS_EUTF8);
    }

    size_t bad = first_bad(whole, len), failed_at = len + 1;
    st = MMWS_UTF8_ACCEPT;
    for (size_t i = 0; i < len; i++) {
        uint8_t *one = exact_copy(whole + i, 1);
        int rc = mmws_utf8_validate(&st, one, 1);
        free(one);
        if (rc != 0 && failed_at == len + 1) failed_at = i + 1;
        if (failed_at <= i + 1) CHECK_RC(rc, MMWS_EUTF8);
    }
    CHECK_EQ(failed_at, bad);
    CHECK_RC(mmws_utf8_finish(st), want_finish(want));

    for (size_t k = 0; k <= len; k++) {
        uint8_t *a = exact_copy(whole, k), *b = exact_copy(whole + k, len - k);
        st = MMWS_UTF8_ACCEPT;
        int r1 = mmws_utf8_validate(&st, a, k);
        CHECK_RC(r1, want_validate(ref_utf8(whole, k)));
        int r2 = mmws_utf8_validate(&st, b, len - k);
        CHECK_RC(r2, want_validate(want));
        CHECK_RC(mmws_utf8_finish(st), want_finish(want));
        free(a);
        free(b);
    }
    free(whole);
    if (t_failed != before) {
        fprintf(stderr, "  ... in %s (want %s): ", what, ref_name(want));
        t_print_escaped(s, len);
        fputc('\n', stderr);
    }
}

/* A named literal input and the verdict RFC 3629 gives it. */
struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len;
    int want;
};

#define CASE(name, lit, want) {name, lit, sizeof(lit) - 1, want}

/* Checks a table of cases: the reference agrees with the stated verdict,
 * then every way of feeding agrees with it too. */
static void run_cases(const struct utf8_case *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = (const uint8_t *)c[i].bytes;
        int ref = ref_utf8(s, c[i].len);
        CHECK_EQ(ref, c[i].want);
        if (ref != c[i].want)
            fprintf(stderr, "  reference disagrees on %s\n", c[i].name);
        check_ways(c[i].name, s, c[i].len, c[i].want);
    }
}

#define RUN_CASES(arr) run_cases(arr, sizeof(arr) / sizeof(arr[0]))

/* ------------------------------------------------------ Kuhn categories -- */

/* 1: correct UTF-8 text. */
static void test_kuhn_correct(void) {
    static const struct utf8_case cases[] = {
        CASE("kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",
             REF_VALID),
        CASE("kosme in ascii", "Greek: \xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC"
                               "\xCE\xB5 (kosme).", REF_VALID),
        CASE("empty", "", REF_VALID),
    };
    RUN_CASES(cases);
}

/* 2: boundary code points of each sequence length. */
static void test_kuhn_boundaries(void) {
    static const struct utf8_case cases[] = {
        /* 2.1 first possible sequence of each length */
        CASE("U+0000", "\x00", REF_VALID),
        CASE("U+0080", "\xC2\x80", REF_VALID),
        CASE("U+0800", "\xE0\xA0\x80", REF_VALID),
        CASE("U+10000", "\xF0\x90\x80\x80", REF_VALID),
        CASE("5-byte U+200000", "\xF8\x88\x80\x80\x80", REF_INVALID),
        CASE("6-byte U+4000000", "\xFC\x84\x80\x80\x80\x80", REF_INVALID),
        /* 2.2 last possible sequence of each length */
        CASE("U+007F", "\x7F", REF_VALID),
        CASE("U+07FF", "\xDF\xBF", REF_VALID),
        CASE("U+FFFF", "\xEF\xBF\xBF", REF_VALID),
        CASE("4-byte U+1FFFFF", "\xF7\xBF\xBF\xBF", REF_INVALID),
        CASE("5-byte U+3FFFFFF", "\xFB\xBF\xBF\xBF\xBF", REF_INVALID),
        CASE("6-byte U+7FFFFFFF", "\xFD\xBF\xBF\xBF\xBF\xBF", REF_INVALID),
        /* 2.3 other boundaries */
        CASE("U+D7FF", "\xED\x9F\xBF", REF_VALID),
        CASE("U+E000", "\xEE\x80\x80", REF_VALID),
        CASE("U+FFFD", "\xEF\xBF\xBD", REF_VALID),
        CASE("U+10FFFF", "\xF4\x8F\xBF\xBF", REF_VALID),
        CASE("U+110000", "\xF4\x90\x80\x80", REF_INVALID),
        CASE("U+13FFFF", "\xF4\xBF\xBF\xBF", REF_INVALID),
        CASE("U+140000", "\xF5\x80\x80\x80", REF_INVALID),
        CASE("all boundaries", "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF"
                               "\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80"
                               "\xF4\x8F\xBF\xBF", REF_VALID),
    };
    RUN_CASES(cases);
}

/* 3.1: unexpected continuation bytes, alone, in runs and all 64. */
static void test_kuhn_continuations(void) {
    uint8_t buf[80];
    for (unsigned b = 0x80; b <= 0xBF; b++) {
        buf[0] = (uint8_t)b;
        check_ways("lone continuation", buf, 1, REF_INVALID);
        memcpy(buf, "ab", 2);
        buf[2] = (uint8_t)b;
        check_ways("continuation after ascii", buf, 3, REF_INVALID);
    }
    /* Kuhn's runs alternate 80 and BF: 80 BF, 80 BF 80, ... */
    for (size_t n = 2; n <= 7; n++) {
        for (size_t i = 0; i < n; i++) buf[i] = i % 2 ? 0xBF : 0x80;
        check_ways("continuation run", buf, n, REF_INVALID);
    }
    for (unsigned b = 0x80; b <= 0xBF; b++) buf[b - 0x80] = (uint8_t)b;
    check_ways("all 64 continuation bytes", buf, 64, REF_INVALID);
    /* After a complete 2-byte character, one continuation too many. */
    check_ways("extra continuation", (const uint8_t *)"\xC3\xA9\xA9", 3,
               REF_INVALID);
}

/* 3.2: every lead byte alone, followed by a space; singly and all in a
 * row as in Kuhn's file. */
static void test_kuhn_lonely_starts(void) {
    static const struct {
        unsigned lo, hi;
    } groups[] = {{0xC0, 0xDF}, {0xE0, 0xEF}, {0xF0, 0xF7}, {0xF8, 0xFB},
                  {0xFC, 0xFD}};
    uint8_t buf[64];
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        size_t n = 0;
        for (unsigned b = groups[g].lo; b <= groups[g].hi; b++) {
            uint8_t one[2] = {(uint8_t)b, ' '};
            check_ways("lonely start + space", one, 2, REF_INVALID);
            buf[n++] = (uint8_t)b;
            buf[n++] = ' ';
        }
        check_ways("lonely starts in a row", buf, n, REF_INVALID);
    }
}

/* 3.3 and 3.4: sequences with the last continuation byte missing, alone,
 * at the end of a message, in mid-string and concatenated. */
static void test_kuhn_last_byte_missing(void) {
    /*
     * Kuhn's list is made of overlong or out-of-range forms, so most are
     * already invalid before the missing byte would matter; DF and EF BF
     * are honest prefixes of U+07FF and U+FFFF and only fail at finish.
     */
    static const struct utf8_case kuhn[] = {
        CASE("2-byte U+0000 cut", "\xC0", REF_INVALID),
        CASE("3-byte U+0000 cut", "\xE0\x80", REF_INVALID),
        CASE("4-byte U+0000 cut", "\xF0\x80\x80", REF_INVALID),
        CASE("5-byte U+0000 cut", "\xF8\x80\x80\x80", REF_INVALID),
        CASE("6-byte U+0000 cut", "\xFC\x80\x80\x80\x80", REF_INVALID),
        CASE("2-byte U+07FF cut", "\xDF", REF_PARTIAL),
        CASE("3-byte U+FFFF cut", "\xEF\xBF", REF_PARTIAL),
        CASE("4-byte U+1FFFFF cut", "\xF7\xBF\xBF", REF_INVALID),
        CASE("5-byte U+3FFFFFF cut", "\xFB\xBF\xBF\xBF", REF_INVALID),
        CASE("6-byte U+7FFFFFFF cut", "\xFD\xBF\xBF\xBF\xBF", REF_INVALID),
        CASE("3.4 all of the above", "\xC0\xE0\x80\xF0\x80\x80\xF8\x80\x80"
                                     "\x80\xFC\x80\x80\x80\x80\xDF\xEF\xBF"
                                     "\xF7\xBF\xBF\xFB\xBF\xBF\xBF\xFD\xBF"
                                     "\xBF\xBF\xBF", REF_INVALID),
    };
    RUN_CASES(kuhn);

    /* Valid characters of each length with their tail cut: at the end of a
     * message they are valid so far and fail only at finish; followed by
     * anything but a continuation they fail at once. */
    static const struct {
        const char *name, *full;
        size_t len;
    } chars[] = {
        {"U+0080", "\xC2\x80", 2},        {"U+07FF", "\xDF\xBF", 2},
        {"U+0800", "\xE0\xA0\x80", 3},    {"U+1000", "\xE1\x80\x80", 3},
        {"U+D7FF", "\xED\x9F\xBF", 3},    {"U+FFFF", "\xEF\xBF\xBF", 3},
        {"U+10000", "\xF0\x90\x80\x80", 4},
        {"U+40000", "\xF1\x80\x80\x80", 4},
        {"U+10FFFF", "\xF4\x8F\xBF\xBF", 4},
    };
    uint8_t buf[64], cat[64];
    size_t catn = 0;
    for (size_t c = 0; c < sizeof chars / sizeof chars[0]; c++) {
        const uint8_t *full = (const uint8_t *)chars[c].full;
        size_t n = chars[c].len;
        for (size_t keep = 1; keep < n; keep++) {
            memcpy(buf, "ok ", 3);
            memcpy(buf + 3, full, keep);
            check_ways(chars[c].name, buf + 3, keep, REF_PARTIAL);
            check_ways(chars[c].name, buf, 3 + keep, REF_PARTIAL);
            buf[3 + keep] = ' ';
            check_ways(chars[c].name, buf, 4 + keep, REF_INVALID);
            memcpy(buf + 3 + keep, full, n);
            check_ways(chars[c].name, buf, 3 + keep + n, REF_INVALID);
        }
        memcpy(cat + catn, full, n - 1);
        catn += n - 1;
        check_ways(chars[c].name, full, n, REF_VALID);
    }
    check_ways("concatenated cut sequences", cat, catn, REF_INVALID);
}

/* 3.5: bytes that never appear in UTF-8. */
static void test_kuhn_impossible(void) {
    static const struct utf8_case cases[] = {
        CASE("FE", "\xFE", REF_INVALID),
        CASE("FF", "\xFF", REF_INVALID),
        CASE("FE FE FF FF", "\xFE\xFE\xFF\xFF", REF_INVALID),
        CASE("FF after text", "text\xFF", REF_INVALID),
        CASE("FE before text", "\xFEtext", REF_INVALID),
    };
    RUN_CASES(cases);
}

/* 4: overlong forms. */
static void test_kuhn_overlong(void) {
    static const struct utf8_case cases[] = {
        /* 4.1 "/" (U+002F) */
        CASE("overlong / 2", "\xC0\xAF", REF_INVALID),
        CASE("overlong / 3", "\xE0\x80\xAF", REF_INVALID),
        CASE("overlong / 4", "\xF0\x80\x80\xAF", REF_INVALID),
        CASE("overlong / 5", "\xF8\x80\x80\x80\xAF", REF_INVALID),
        CASE("overlong / 6", "\xFC\x80\x80\x80\x80\xAF", REF_INVALID),
        /* 4.2 the largest code point that is still overlong */
        CASE("max overlong 2", "\xC1\xBF", REF_INVALID),
        CASE("max overlong 3", "\xE0\x9F\xBF", REF_INVALID),
        CASE("max overlong 4", "\xF0\x8F\xBF\xBF", REF_INVALID),
        CASE("max overlong 5", "\xF8\x87\xBF\xBF\xBF", REF_INVALID),
        CASE("max overlong 6", "\xFC\x83\xBF\xBF\xBF\xBF", REF_INVALID),
        /* 4.3 NUL */
        CASE("overlong NUL 2", "\xC0\x80", REF_INVALID),
        CASE("overlong NUL 3", "\xE0\x80\x80", REF_INVALID),
        CASE("overlong NUL 4", "\xF0\x80\x80\x80", REF_INVALID),
        CASE("overlong NUL 5", "\xF8\x80\x80\x80\x80", REF_INVALID),
        CASE("overlong NUL 6", "\xFC\x80\x80\x80\x80\x80", REF_INVALID),
        /* the shortest forms right above them are fine */
        CASE("min 2", "\xC2\x80", REF_VALID),
        CASE("min 3", "\xE0\xA0\x80", REF_VALID),
        CASE("min 4", "\xF0\x90\x80\x80", REF_VALID),
    };
    RUN_CASES(cases);
}

/* 5.1, 5.2: UTF-16 surrogates, alone and paired (CESU-8), are invalid. */
static void test_kuhn_surrogates(void) {
    static const struct utf8_case cases[] = {
        CASE("U+D800", "\xED\xA0\x80", REF_INVALID),
        CASE("U+DB7F", "\xED\xAD\xBF", REF_INVALID),
        CASE("U+DB80", "\xED\xAE\x80", REF_INVALID),
        CASE("U+DBFF", "\xED\xAF\xBF", REF_INVALID),
        CASE("U+DC00", "\xED\xB0\x80", REF_INVALID),
        CASE("U+DF80", "\xED\xBE\x80", REF_INVALID),
        CASE("U+DFFF", "\xED\xBF\xBF", REF_INVALID),
        CASE("D800 DC00", "\xED\xA0\x80\xED\xB0\x80", REF_INVALID),
        CASE("D800 DFFF", "\xED\xA0\x80\xED\xBF\xBF", REF_INVALID),
        CASE("DB7F DC00", "\xED\xAD\xBF\xED\xB0\x80", REF_INVALID),
        CASE("DB7F DFFF", "\xED\xAD\xBF\xED\xBF\xBF", REF_INVALID),
        CASE("DB80 DC00", "\xED\xAE\x80\xED\xB0\x80", REF_INVALID),
        CASE("DB80 DFFF", "\xED\xAE\x80\xED\xBF\xBF", REF_INVALID),
        CASE("DBFF DC00", "\xED\xAF\xBF\xED\xB0\x80", REF_INVALID),
        CASE("DBFF DFFF", "\xED\xAF\xBF\xED\xBF\xBF", REF_INVALID),
        CASE("surrogate mid-text", "abc\xED\xA0\x80xyz", REF_INVALID),
    };
    RUN_CASES(cases);
}

/* 5.3: noncharacters. RFC 3629 forbids only surrogates and values past
 * U+10FFFF; U+FFFE, U+FFFF, U+FDD0..U+FDEF and U+nFFFE/U+nFFFF are
 * well-formed UTF-8 and must be accepted. */
static void test_kuhn_noncharacters(void) {
    static const struct utf8_case cases[] = {
        CASE("U+FFFE", "\xEF\xBF\xBE", REF_VALID),
        CASE("U+FFFF", "\xEF\xBF\xBF", REF_VALID),
        CASE("U+FDD0", "\xEF\xB7\x90", REF_VALID),
        CASE("U+FDEF", "\xEF\xB7\xAF", REF_VALID),
        CASE("U+1FFFE", "\xF0\x9F\xBF\xBE", REF_VALID),
        CASE("U+10FFFE", "\xF4\x8F\xBF\xBE", REF_VALID),
    };
    RUN_CASES(cases);
}

/* ------------------------------------------------------------- the API -- */

/* State handling: ACCEPT is 0, errors stick, unknown states and bad
 * arguments are refused without a crash. */
static void test_api(void) {
    CHECK_EQ(MMWS_UTF8_ACCEPT, 0);
    CHECK_RC(mmws_utf8_finish(MMWS_UTF8_ACCEPT), 0);
    CHECK_RC(mmws_utf8_check(NULL, 0), 0);

    uint32_t st = MMWS_UTF8_ACCEPT;
    CHECK_RC(mmws_utf8_validate(&st, NULL, 0), 0);
    CHECK_EQ(st, MMWS_UTF8_ACCEPT);

    /* A split code point survives empty calls and completes later. */
    CHECK_RC(mmws_utf8_validate(&st, (const uint8_t *)"\xF0\x9F", 2), 0);
    CHECK(st != MMWS_UTF8_ACCEPT);
    CHECK_RC(mmws_utf8_finish(st), MMWS_EUTF8);
    CHECK_RC(mmws_utf8_validate(&st, NULL, 0), 0);
    CHECK_RC(mmws_utf8_validate(&st, (const uint8_t *)"\x98", 1), 0);
    CHECK_RC(mmws_utf8_validate(&st, (const uint8_t *)"\x80", 1), 0);
    CHECK_EQ(st, MMWS_UTF8_ACCEPT);

    /* Sticky errors, including on empty input. */
    CHECK_RC(mmws_utf8_validate(&st, (const uint8_t *)"\xC0\xAF", 2),
             MMWS_EUTF8);
    uint32_t bad = st;
    CHECK(bad != MMWS_UTF8_ACCEPT);
    CHECK_RC(mmws_utf8_validate(&st, NULL, 0), MMWS_EUTF8);
    CHECK_RC(mmws_utf8_validate(&st, (const uint8_t *)"plain", 5),
             MMWS_EUTF8);
    CHECK_EQ(st, bad);
    CHECK_RC(mmws_utf8_finish(st), MMWS_EUTF8);

    /* A state no call produced is invalid, not undefined behaviour. */
    const uint32_t junk[] = {1, 7, 15, 17, 1000, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        st = junk[i];
        CHECK_RC(mmws_utf8_validate(&st, (const uint8_t *)"a", 1),
                 MMWS_EUTF8);
        CHECK_RC(mmws_utf8_finish(st), MMWS_EUTF8);
        st = junk[i];
        CHECK_RC(mmws_utf8_validate(&st, NULL, 0), MMWS_EUTF8);
        CHECK_RC(mmws_utf8_finish(junk[i]), MMWS_EUTF8);
    }

    /* NULL pointers. */
    CHECK_RC(mmws_utf8_validate(NULL, (const uint8_t *)"a", 1), MMWS_EINVAL);
    st = MMWS_UTF8_ACCEPT;
    CHECK_RC(mmws_utf8_validate(&st, NULL, 1), MMWS_EINVAL);
    CHECK_RC(mmws_utf8_check(NULL, 1), MMWS_EINVAL);
}

/* ---------------------------------------------------------- exhaustive -- */

/* Every input of 1, 2 and 3 bytes, whole and with the state carried across
 * the last byte. */
static void test_exhaustive_short(void) {
    unsigned long bad = 0;
    uint8_t b[3];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        int ref = ref_utf8(b, 1);
        uint32_t st1 = MMWS_UTF8_ACCEPT;
        int rc = mmws_utf8_validate(&st1, b, 1);
        if (rc != want_validate(ref) ||
            (rc == 0 && mmws_utf8_finish(st1) != want_finish(ref)))
            bad++;
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            ref = ref_utf8(b, 2);
            uint32_t st2 = st1;
            rc = mmws_utf8_validate(&st2, b + 1, 1);
            if (rc != want_validate(ref) ||
                mmws_utf8_finish(st2) != want_finish(ref) ||
                mmws_utf8_check(b, 2) != (ref == REF_VALID ? 0 : MMWS_EUTF8))
                bad++;
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (uint8_t)z;
                ref = ref_utf8(b, 3);
                uint32_t st3 = st2;
                rc = mmws_utf8_validate(&st3, b + 2, 1);
                if (rc != want_validate(ref) ||
                    mmws_utf8_finish(st3) != want_finish(ref) ||
                    mmws_utf8_check(b, 3) !=
                        (ref == REF_VALID ? 0 : MMWS_EUTF8)) {
                    if (bad++ < 10)
                        fprintf(stderr, "mismatch %02x %02x %02x ref %s\n",
                                x, y, z, ref_name(ref));
                }
            }
        }
    }
    CHECK_EQ(bad, 0);
}

/* Every 4-byte input with a lead of F0..F4, whole and split after 3 bytes.
 * Other leads end their character (or fail) within 3 bytes, and what can
 * follow is what the shorter sweeps cover from ACCEPT. */
static void test_exhaustive_four(void) {
    unsigned long bad = 0, valid = 0;
    uint8_t b[4];
    for (unsigned w = 0xF0; w <= 0xF4; w++) {
        b[0] = (uint8_t)w;
        for (unsigned x = 0; x < 256; x++) {
            b[1] = (uint8_t)x;
            for (unsigned y = 0; y < 256; y++) {
                b[2] = (uint8_t)y;
                uint32_t st3 = MMWS_UTF8_ACCEPT;
                int r3 = mmws_utf8_validate(&st3, b, 3);
                if (r3 != want_validate(ref_utf8(b, 3))) bad++;
                for (unsigned z = 0; z < 256; z++) {
                    b[3] = (uint8_t)z;
                    int ref = ref_utf8(b, 4);
                    int want = ref == REF_VALID ? 0 : MMWS_EUTF8;
                    uint32_t st4 = st3;
                    int rc = mmws_utf8_validate(&st4, b + 3, 1);
                    if (rc == 0) rc = mmws_utf8_finish(st4);
                    if (rc != want || mmws_utf8_check(b, 4) != want) {
                        if (bad++ < 10)
                            fprintf(stderr,
                                    "mismatch %02x %02x %02x %02x ref %s\n",
                                    w, x, y, z, ref_name(ref));
                    }
                    valid += ref == REF_VALID;
                }
            }
        }
    }
    CHECK_EQ(bad, 0);
    /* U+10000..U+10FFFF: every supplementary code point exactly once. */
    CHECK_EQ(valid, 0x100000);
}

/* ---------------------------------------------------------- randomised -- */

/* A byte biased towards the interesting classes. */
static uint8_t rand_byte(void) {
    uint64_t r = t_rand();
    switch (r % 8) {
    case 0:
    case 1:
    case 2: return (uint8_t)(0x20 + (r >> 8) % 0x5F);  /* ASCII */
    case 3:
    case 4: return (uint8_t)(0x80 + (r >> 8) % 0x40);  /* continuation */
    case 5: return (uint8_t)(0xC0 + (r >> 8) % 0x20);  /* 2-byte lead */
    case 6: return (uint8_t)(0xE0 + (r >> 8) % 0x10);  /* 3-byte lead */
    default: return (uint8_t)(0xF0 + (r >> 8) % 0x10); /* 4-byte lead, bad */
    }
}

/* Short random byte strings against the reference, every way. */
static void test_random_bytes(void) {
    uint8_t buf[48];
    int seen[3] = {0, 0, 0};
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(t_rand() % (iter % 2 ? sizeof buf : 6));
        for (size_t i = 0; i < len; i++) buf[i] = rand_byte();
        int ref = ref_utf8(buf, len);
        seen[ref]++;
        check_ways("random bytes", buf, len, ref);
    }
    /* The mix must exercise all three verdicts. */
    CHECK(seen[REF_VALID] > 100);
    CHECK(seen[REF_PARTIAL] > 100);
    CHECK(seen[REF_INVALID] > 100);
}

/* Encodes code point cp (valid, not a surrogate) into out; returns its
 * length. */
static size_t encode(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* A random valid code point of a random encoded length. */
static uint32_t rand_cp(void) {
    uint64_t r = t_rand();
    switch (r % 4) {
    case 0: return (uint32_t)(0x80 + (r >> 8) % (0x800 - 0x80));
    case 1: {
        uint32_t cp = (uint32_t)(0x800 + (r >> 8) % (0x10000 - 0x800));
        return (cp >= 0xD800 && cp <= 0xDFFF) ? cp + 0x800 : cp;
    }
    case 2: return (uint32_t)(0x10000 + (r >> 8) % 0x100000);
    default: return (uint32_t)((r >> 8) % 0x80);
    }
}

/* Fills buf (cap bytes, cap >= 4) with valid UTF-8: random characters
 * mixed with ASCII runs long enough for the vector scanner. Returns the
 * length. */
static size_t rand_valid(uint8_t *buf, size_t cap) {
    size_t target = (size_t)(t_rand() % (cap - 3)), n = 0;
    while (n < target) {
        if (t_rand() % 3 == 0) {
            size_t run = (size_t)(t_rand() % 80);
            if (run > cap - n) run = cap - n;
            for (size_t i = 0; i < run; i++)
                buf[n++] = (uint8_t)('a' + t_rand() % 26);
        } else {
            if (cap - n < 4) break;
            n += encode(rand_cp(), buf + n);
        }
    }
    return n;
}

/* Random valid strings, then the same with one bad byte injected near a
 * 16-, 32-, 64- or 128-byte boundary, where the scanners change step. */
static void test_random_valid_and_injected(void) {
    static const uint8_t inject[] = {0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFF,
                                     0xE0, 0xED, 0xF0, 0xF4, 0xC2, 0x00};
    uint8_t buf[300];
    int seen_invalid = 0;
    for (int iter = 0; iter < 1500; iter++) {
        size_t len = rand_valid(buf, sizeof buf);
        CHECK_EQ(ref_utf8(buf, len), REF_VALID);
        check_ways("random valid", buf, len, REF_VALID);
        if (len == 0) continue;
        size_t step = (size_t)16 << (t_rand() % 4);
        size_t base = step * (size_t)(t_rand() % (len / step + 1));
        size_t pos = base + (size_t)(t_rand() % 5);
        pos = pos >= 2 ? pos - 2 : 0;
        if (pos >= len) pos = len - 1;
        buf[pos] = inject[t_rand() % sizeof inject];
        int ref = ref_utf8(buf, len);
        seen_invalid += ref == REF_INVALID;
        check_ways("random injected", buf, len, ref);
    }
    CHECK(seen_invalid > 600);
}

/* Long mostly-ASCII messages with one bad byte at every position: the
 * verdict of the whole call must flip exactly there. */
static void test_bad_byte_everywhere(void) {
    uint8_t buf[600];
    for (size_t len = 1; len <= sizeof buf; len += 37) {
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)('A' + i % 26);
        uint8_t *p = exact_copy(buf, len);
        CHECK_RC(mmws_utf8_check(p, len), 0);
        for (size_t pos = 0; pos < len; pos++) {
            p[pos] = 0xFF;
            CHECK_RC(mmws_utf8_check(p, len), MMWS_EUTF8);
            p[pos] = 0xC3; /* a lead with its continuation missing */
            CHECK_RC(mmws_utf8_check(p, len), MMWS_EUTF8);
            if (pos + 1 < len) {
                p[pos + 1] = 0xA9; /* now é: valid */
                CHECK_RC(mmws_utf8_check(p, len), 0);
                p[pos + 1] = buf[pos + 1];
            }
            p[pos] = buf[pos];
        }
        free(p);
    }
}

/* -------------------------------------------------------- guard pages -- */

/* Validates s[0..len) that ends at a guard page: whole, byte by byte from
 * the end, and with the second piece of every split ending at the guard. */
static void check_at_guard(const uint8_t *src, size_t len) {
    unsigned char *g = guard_alloc(len);
    if (len) memcpy(g, src, len);
    int want = ref_utf8(src, len);
    CHECK_RC(mmws_utf8_check(g, len), want == REF_VALID ? 0 : MMWS_EUTF8);
    for (size_t k = 0; k <= len; k++) {
        uint32_t st = MMWS_UTF8_ACCEPT;
        int r1 = mmws_utf8_validate(&st, g, k);
        CHECK_RC(r1, want_validate(ref_utf8(src, k)));
        CHECK_RC(mmws_utf8_validate(&st, g + k, len - k), want_validate(want));
        CHECK_RC(mmws_utf8_finish(st), want_finish(want));
    }
    /* The scanners themselves, each from every start offset. */
    for (size_t k = 0; k <= len; k++) {
        size_t n = len - k, want_n = 0;
        while (want_n < n && g[k + want_n] < 0x80) want_n++;
        CHECK_EQ(mmws__utf8_ascii_prefix_word(g + k, n), want_n);
#if defined(__x86_64__)
        CHECK_EQ(mmws__utf8_ascii_prefix_sse2(g + k, n), want_n);
        if (mmws__utf8_have_avx2())
            CHECK_EQ(mmws__utf8_ascii_prefix_avx2(g + k, n), want_n);
#endif
    }
    guard_free(g, len);
}

/* Inputs of every length 0..100 (and some longer ones for the 128-byte
 * steps) ending at a PROT_NONE page: ASCII, ASCII with a bad last byte,
 * multibyte text cut anywhere, and ASCII with one multibyte character at
 * every position. */
static void test_guard_page(void) {
    static const char text[] =
        "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5 \xF0\x9D\x84\x9E \xE2"
        "\x82\xAC\xE6\x97\xA5\xE6\x9C\xAC";
    uint8_t buf[400] = {0};
    for (size_t len = 0; len <= 300; len += len < 100 ? 1 : 23) {
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)('a' + i % 26);
        check_at_guard(buf, len);
        if (len) {
            buf[len - 1] = 0x80;
            check_at_guard(buf, len);
            buf[len - 1] = 'z';
        }
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)text[i % (sizeof text - 1)];
        check_at_guard(buf, len);
    }
    /* One 2-byte character at every position of a 100-byte ASCII run. */
    for (size_t pos = 0; pos + 2 <= 100; pos++) {
        for (size_t i = 0; i < 100; i++) buf[i] = (uint8_t)('0' + i % 10);
        buf[pos] = 0xC3;
        buf[pos + 1] = 0xA9;
        check_at_guard(buf, 100);
    }
}

/* Scanners agree with a byte loop on random buffers with sparse high
 * bytes, at every alignment. */
static void test_scanners(void) {
    uint8_t buf[520];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = (size_t)(t_rand() % sizeof buf);
        size_t off = (size_t)(t_rand() % 8);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(t_rand() % 97 == 0 ? 0x80 | t_rand()
                                                  : t_rand() % 0x80);
        uint8_t *block = malloc(off + len ? off + len : 1), *p = block + off;
        if (!block) exit(2);
        if (len) memcpy(p, buf, len);
        size_t want = 0;
        while (want < len && p[want] < 0x80) want++;
        CHECK_EQ(mmws__utf8_ascii_prefix_word(p, len), want);
#if defined(__x86_64__)
        CHECK_EQ(mmws__utf8_ascii_prefix_sse2(p, len), want);
        if (mmws__utf8_have_avx2())
            CHECK_EQ(mmws__utf8_ascii_prefix_avx2(p, len), want);
#endif
        free(block);
    }
}

int main(void) {
    uint64_t seed = 0x6D6D77735554463Full;
    const char *env = getenv("MMWS_TEST_SEED");
    if (env && *env) seed = strtoull(env, NULL, 0);
    t_rng_state = seed ? seed : 1;
    printf("test_utf8: seed 0x%016" PRIx64 " (set MMWS_TEST_SEED to vary), "
           "scanner %s\n", seed, mmws__utf8_impl());

    RUN(test_api);
    RUN(test_kuhn_correct);
    RUN(test_kuhn_boundaries);
    RUN(test_kuhn_continuations);
    RUN(test_kuhn_lonely_starts);
    RUN(test_kuhn_last_byte_missing);
    RUN(test_kuhn_impossible);
    RUN(test_kuhn_overlong);
    RUN(test_kuhn_surrogates);
    RUN(test_kuhn_noncharacters);
    RUN(test_exhaustive_short);
    RUN(test_exhaustive_four);
    RUN(test_random_bytes);
    RUN(test_random_valid_and_injected);
    RUN(test_bad_byte_everywhere);
    RUN(test_scanners);
    RUN(test_guard_page);
    return TEST_END("test_utf8");
}
