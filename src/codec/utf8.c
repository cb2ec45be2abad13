/*
 * utf8.c — incremental UTF-8 validation (RFC 3629, for RFC 6455 8.1).
 *
 * Every TEXT message and close reason passes through here on the receive
 * path, so it is hand-written for speed rather than built on iconv or a
 * general decoder: a vector scan skips ASCII 16 or 32 bytes at a time while
 * the validator sits between code points (market-data JSON is almost all
 * ASCII), and a small table-driven automaton takes over for the bytes of a
 * multibyte sequence. The automaton's state is the caller's uint32_t, so a
 * code point may be split across calls at any byte.
 *
 * No function reads outside s[0..len): short tails are checked with
 * overlapping loads that end exactly at s + len.
 */
#include <string.h>

#include <mmws/codec.h>

#include "codec/utf8_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if !defined(__BYTE_ORDER__)
#error "utf8.c needs __BYTE_ORDER__ (GCC or clang)"
#endif

/*
 * Byte classes. Continuation bytes are split by the ranges that the second
 * byte after E0, ED, F0 and F4 must fall in; C0, C1 and F5..FF can never
 * appear.
 */
enum {
    C_ASCII, /* 00..7F */
    C_C80,   /* 80..8F */
    C_C90,   /* 90..9F */
    C_CA0,   /* A0..BF */
    C_BAD,   /* C0, C1, F5..FF */
    C_L2,    /* C2..DF: lead of 2 */
    C_E0,    /* E0: lead of 3, next A0..BF (no overlongs) */
    C_L3,    /* E1..EC, EE, EF: lead of 3 */
    C_ED,    /* ED: lead of 3, next 80..9F (no surrogates) */
    C_F0,    /* F0: lead of 4, next 90..BF (no overlongs) */
    C_L4,    /* F1..F3: lead of 4 */
    C_F4,    /* F4: lead of 4, next 80..8F (nothing above U+10FFFF) */
    C_ROW = 16 /* row width of the transition table */
};

/*
 * States, premultiplied by C_ROW so the next state is one load from
 * trans[state + class]. ACCEPT must be 0 (MMWS_UTF8_ACCEPT); REJECT maps
 * to itself on every byte, which makes an error sticky.
 */
enum {
    S_ACCEPT = 0 * C_ROW, /* between code points */
    S_REJECT = 1 * C_ROW, /* invalid; stays invalid */
    S_NEED1 = 2 * C_ROW,  /* one more 80..BF */
    S_NEED2 = 3 * C_ROW,  /* two more 80..BF */
    S_NEED3 = 4 * C_ROW,  /* three more 80..BF */
    S_E0 = 5 * C_ROW,     /* after E0: A0..BF, then one more */
    S_ED = 6 * C_ROW,     /* after ED: 80..9F, then one more */
    S_F0 = 7 * C_ROW,     /* after F0: 90..BF, then two more */
    S_F4 = 8 * C_ROW,     /* after F4: 80..8F, then two more */
    S_LAST = S_F4
};

static const uint8_t byte_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 90..9F */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0..DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0..EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0..FF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* Columns: ASCII C80 C90 CA0 BAD L2 E0 L3 ED F0 L4 F4, then padding. */
#define R_ S_REJECT
static const uint8_t trans[S_LAST + C_ROW] = {
    /* ACCEPT */
    S_ACCEPT, R_, R_, R_, R_, S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3,
    S_F4, R_, R_, R_, R_,
    /* REJECT */
    R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_,
    /* NEED1 */
    R_, S_ACCEPT, S_ACCEPT, S_ACCEPT, R_, R_, R_, R_, R_, R_, R_, R_,
    R_, R_, R_, R_,
    /* NEED2 */
    R_, S_NEED1, S_NEED1, S_NEED1, R_, R_, R_, R_, R_, R_, R_, R_,
    R_, R_, R_, R_,
    /* NEED3 */
    R_, S_NEED2, S_NEED2, S_NEED2, R_, R_, R_, R_, R_, R_, R_, R_,
    R_, R_, R_, R_,
    /* E0 */
    R_, R_, R_, S_NEED1, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_,
    /* ED */
    R_, S_NEED1, S_NEED1, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_,
    /* F0 */
    R_, R_, S_NEED2, S_NEED2, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_,
    /* F4 */
    R_, S_NEED2, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_,
};
#undef R_

/* Unaligned 64-bit load without aliasing trouble. */
static inline uint64_t load64(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Unaligned 32-bit load without aliasing trouble. */
static inline uint32_t load32(const uint8_t *p) {
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Index of the first byte of w (in memory order) that has bit 7 set;
 * w != 0 and has no other bits. */
static inline size_t first_high_byte(uint64_t w) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (size_t)__builtin_clzll(w) >> 3;
#else
    return (size_t)__builtin_ctzll(w) >> 3;
#endif
}

#define HIGH64 0x8080808080808080ull

/* ASCII prefix of fewer than 8 bytes: two overlapping 4-byte loads decide
 * the common all-ASCII case, a byte loop finds the position otherwise. */
static inline size_t ascii_prefix_tiny(const uint8_t *s, size_t len) {
    if (len >= 4 &&
        ((load32(s) | load32(s + len - 4)) & 0x80808080u) == 0)
        return len;
    for (size_t i = 0; i < len; i++)
        if (s[i] & 0x80) return i;
    return len;
}

/* The portable scanner: 32 bytes per step while clean, then 8, then one
 * overlapping word ending at s + len whose already-checked bytes are
 * shifted out. */
size_t mmws__utf8_ascii_prefix_word(const uint8_t *s, size_t len) {
    if (len < 8) return ascii_prefix_tiny(s, len);
    size_t i = 0;
    while (len - i >= 32) {
        uint64_t w = load64(s + i) | load64(s + i + 8) | load64(s + i + 16) |
                     load64(s + i + 24);
        if (w & HIGH64) break;
        i += 32;
    }
    while (len - i >= 8) {
        uint64_t w = load64(s + i) & HIGH64;
        if (w) return i + first_high_byte(w);
        i += 8;
    }
    if (i == len) return len;
    unsigned skip = (unsigned)(8 - (len - i)) * 8;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint64_t w = (load64(s + len - 8) & HIGH64) << skip;
#else
    uint64_t w = (load64(s + len - 8) & HIGH64) >> skip;
#endif
    return w ? i + first_high_byte(w) : len;
}

#if defined(__x86_64__)

/* SSE2 scanner (x86-64 baseline): 64 bytes per step while clean, then 16,
 * then one overlapping 16-byte load ending at s + len. */
size_t mmws__utf8_ascii_prefix_sse2(const uint8_t *s, size_t len) {
    if (len < 16) return mmws__utf8_ascii_prefix_word(s, len);
    size_t i = 0;
    while (len - i >= 64) {
        const __m128i *p = (const __m128i *)(s + i);
        __m128i v = _mm_or_si128(
            _mm_or_si128(_mm_loadu_si128(p), _mm_loadu_si128(p + 1)),
            _mm_or_si128(_mm_loadu_si128(p + 2), _mm_loadu_si128(p + 3)));
        if (_mm_movemask_epi8(v) != 0) break;
        i += 64;
    }
    while (len - i >= 16) {
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_loadu_si128((const __m128i *)(s + i)));
        if (m) return i + (size_t)__builtin_ctz(m);
        i += 16;
    }
    if (i == len) return len;
    unsigned m = (unsigned)_mm_movemask_epi8(
        _mm_loadu_si128((const __m128i *)(s + len - 16)));
    m >>= 16 - (len - i);
    return m ? i + (size_t)__builtin_ctz(m) : len;
}

/* AVX2 scanner: 128 bytes per step while clean, then 32, then one
 * overlapping 32-byte load ending at s + len. */
__attribute__((target("avx2")))
size_t mmws__utf8_ascii_prefix_avx2(const uint8_t *s, size_t len) {
    if (len < 32) return mmws__utf8_ascii_prefix_sse2(s, len);
    size_t i = 0;
    while (len - i >= 128) {
        const __m256i *p = (const __m256i *)(s + i);
        __m256i v = _mm256_or_si256(
            _mm256_or_si256(_mm256_loadu_si256(p), _mm256_loadu_si256(p + 1)),
            _mm256_or_si256(_mm256_loadu_si256(p + 2),
                            _mm256_loadu_si256(p + 3)));
        if (_mm256_movemask_epi8(v) != 0) break;
        i += 128;
    }
    while (len - i >= 32) {
        unsigned m = (unsigned)_mm256_movemask_epi8(
            _mm256_loadu_si256((const __m256i *)(s + i)));
        if (m) return i + (size_t)__builtin_ctz(m);
        i += 32;
    }
    if (i == len) return len;
    unsigned m = (unsigned)_mm256_movemask_epi8(
        _mm256_loadu_si256((const __m256i *)(s + len - 32)));
    m >>= 32 - (len - i);
    return m ? i + (size_t)__builtin_ctz(m) : len;
}

/* Below this many bytes the AVX2 scanner does not beat SSE2. */
#define AVX2_MIN_LEN 128

/* libgcc / compiler-rt fill the feature bits before main(); reading them
 * is one load, so there is no cached copy to race on. */
int mmws__utf8_have_avx2(void) {
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

/* The scanner the validator uses for a run of len bytes. */
static inline size_t ascii_prefix(const uint8_t *s, size_t len) {
    if (len >= AVX2_MIN_LEN && __builtin_cpu_supports("avx2"))
        return mmws__utf8_ascii_prefix_avx2(s, len);
    return mmws__utf8_ascii_prefix_sse2(s, len);
}

#else /* !__x86_64__ */

/* No vector scanner without x86-64. */
int mmws__utf8_have_avx2(void) { return 0; }

/* The scanner the validator uses for a run of len bytes. */
static inline size_t ascii_prefix(const uint8_t *s, size_t len) {
    return mmws__utf8_ascii_prefix_word(s, len);
}

#endif

/* Names the scanner long ASCII runs go through. */
const char *mmws__utf8_impl(void) {
#if defined(__x86_64__)
    return mmws__utf8_have_avx2() ? "avx2" : "sse2";
#else
    return "word";
#endif
}

/* Runs the automaton from st over s[0..end), skipping ASCII runs with the
 * vector scanner whenever it is between code points; stops early on
 * REJECT. (Checking whole characters with range tests instead measured
 * slower on mixed text: the automaton's loop mispredicts less.) */
static uint32_t run(uint32_t st, const uint8_t *s, const uint8_t *end) {
    while (s < end) {
        if (st == S_ACCEPT && *s < 0x80) {
            s += ascii_prefix(s, (size_t)(end - s));
            if (s == end) break;
        }
        st = trans[st + byte_class[*s++]];
        if (st == S_REJECT) break;
    }
    return st;
}

/* 1 if st is a value this file can produce. */
static inline int state_known(uint32_t st) {
    return st % C_ROW == 0 && st <= S_LAST;
}

/*
 * Validates s[0..len) as a continuation of *state. An unknown state (not
 * one this file wrote) is treated as invalid. NULL state, or NULL s with
 * len > 0, is MMWS_EINVAL. Both public entry points inline this: in a
 * shared library a call to an exported function goes through the PLT and
 * is never inlined, which costs more than the scan of a short message.
 */
static inline int validate(uint32_t *state, const uint8_t *s, size_t len) {
    if (state == NULL || (s == NULL && len != 0)) return MMWS_EINVAL;
    uint32_t st = *state;
    if (st == S_ACCEPT) {
        if (len == 0) return 0;
        size_t n = ascii_prefix(s, len);
        if (n == len) return 0;
        s += n;
        len -= n;
    } else if (st == S_REJECT || !state_known(st)) {
        *state = S_REJECT;
        return MMWS_EUTF8;
    } else if (len == 0) {
        return 0;
    }
    st = run(st, s, s + len);
    *state = st;
    return st == S_REJECT ? MMWS_EUTF8 : 0;
}

/* See validate(). */
int mmws_utf8_validate(uint32_t *state, const uint8_t *s, size_t len) {
    return validate(state, s, len);
}

/* 0 between code points, MMWS_EUTF8 for an unfinished or invalid state. */
int mmws_utf8_finish(uint32_t state) {
    return state == S_ACCEPT ? 0 : MMWS_EUTF8;
}

/* Whole-string check: validate from ACCEPT, then finish. */
int mmws_utf8_check(const uint8_t *s, size_t len) {
    uint32_t st = MMWS_UTF8_ACCEPT;
    int rc = validate(&st, s, len);
    return rc != 0 ? rc : (st == S_ACCEPT ? 0 : MMWS_EUTF8);
}
