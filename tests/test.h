/*
 * test.h — the tiny assertion kit every test program uses.
 *
 * Each check prints both sides when it fails and the run goes on; main()
 * ends with TEST_END(), which prints "<prog>: N checks, F failed" and
 * returns non-zero if anything failed. Header-only, static functions.
 */
#ifndef MMWS_TEST_H
#define MMWS_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mmws/mmws.h>

static unsigned long t_checks;
static unsigned long t_failed;
static const char *t_case = "";

#define T_FAIL_HDR() \
    fprintf(stderr, "FAIL %s:%d [%s] ", __FILE__, __LINE__, t_case)

#define CHECK(cond)                                                    \
    do {                                                               \
        t_checks++;                                                    \
        if (!(cond)) {                                                 \
            t_failed++;                                                \
            T_FAIL_HDR();                                              \
            fprintf(stderr, "%s\n", #cond);                            \
        }                                                              \
    } while (0)

/* An unconditional failure with a message. */
#define CHECK_FAIL(msg)                                                \
    do {                                                               \
        t_checks++;                                                    \
        t_failed++;                                                    \
        T_FAIL_HDR();                                                  \
        fprintf(stderr, "%s\n", (msg));                                \
    } while (0)

/* Integer equality; prints both values. */
#define CHECK_EQ(a, b)                                                 \
    do {                                                               \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);        \
        t_checks++;                                                    \
        if (t_a_ != t_b_) {                                            \
            t_failed++;                                                \
            T_FAIL_HDR();                                              \
            fprintf(stderr, "%s == %s: %lld != %lld\n", #a, #b, t_a_,  \
                    t_b_);                                             \
        }                                                              \
    } while (0)

/* Error-code equality; prints both codes by name. */
#define CHECK_RC(a, b)                                                 \
    do {                                                               \
        int t_a_ = (int)(a), t_b_ = (int)(b);                          \
        t_checks++;                                                    \
        if (t_a_ != t_b_) {                                            \
            t_failed++;                                                \
            T_FAIL_HDR();                                              \
            fprintf(stderr, "%s: got %s (%d), want %s (%d)\n", #a,     \
                    mmws_errname(t_a_), t_a_, mmws_errname(t_b_), t_b_); \
        }                                                              \
    } while (0)

/* Byte-string equality; prints both as escaped text. */
#define CHECK_MEM(a, alen, b, blen) \
    t_check_mem(__FILE__, __LINE__, #a, (const void *)(a), (size_t)(alen), \
                (const void *)(b), (size_t)(blen))
#define CHECK_STR(a, b) \
    CHECK_MEM((a), strlen(a), (b), strlen(b))

static inline void t_print_escaped(const void *p, size_t n) {
    const unsigned char *s = p;
    size_t shown = n > 200 ? 200 : n;
    fputc('"', stderr);
    for (size_t i = 0; i < shown; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
            fputc(s[i], stderr);
        else
            fprintf(stderr, "\\x%02x", s[i]);
    }
    fputc('"', stderr);
    if (shown < n) fprintf(stderr, "...(%zu bytes)", n);
}

static inline void t_check_mem(const char *file, int line, const char *expr,
                        const void *a, size_t alen, const void *b,
                        size_t blen) {
    t_checks++;
    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0)) return;
    t_failed++;
    fprintf(stderr, "FAIL %s:%d [%s] %s:\n  got  ", file, line, t_case, expr);
    t_print_escaped(a, alen);
    fprintf(stderr, "\n  want ");
    t_print_escaped(b, blen);
    fputc('\n', stderr);
}

/* Runs one test case function, naming it in failure messages. */
#define RUN(fn)                                                        \
    do {                                                               \
        unsigned long t_before_ = t_failed;                            \
        t_case = #fn;                                                  \
        fn();                                                          \
        printf("%s %s\n", t_failed == t_before_ ? "ok  " : "FAIL", #fn); \
    } while (0)

#define TEST_END(prog)                                                 \
    (printf("%s: %lu checks, %lu failed\n", (prog), t_checks, t_failed), \
     t_failed ? 1 : 0)

/*
 * Guard page: returns a pointer to len bytes whose last byte sits just
 * before a PROT_NONE page, so any read past the end faults at once. Copy
 * the input there with memcpy; release with guard_free(p, len).
 */
static inline unsigned char *guard_alloc(size_t len) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + pg - 1) / pg;
    if (data_pages == 0) data_pages = 1;
    size_t total = (data_pages + 1) * pg;
    unsigned char *base = mmap(NULL, total, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(base + data_pages * pg, pg, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    return base + data_pages * pg - len;
}

static inline void guard_free(unsigned char *p, size_t len) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + pg - 1) / pg;
    if (data_pages == 0) data_pages = 1;
    unsigned char *base = p + len - data_pages * pg;
    munmap(base, (data_pages + 1) * pg);
}

/* xorshift64*: deterministic pseudo-random numbers for tests. */
static uint64_t t_rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t t_rand(void) {
    uint64_t x = t_rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t_rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif /* MMWS_TEST_H */
