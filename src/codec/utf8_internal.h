/*
 * utf8_internal.h — the ASCII scanners behind mmws_utf8_validate(), exposed
 * so tests can check every variant on this CPU and the bench can name the
 * one in use. Not part of the public API.
 */
#ifndef MMWS_UTF8_INTERNAL_H
#define MMWS_UTF8_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Each returns the number of leading bytes of s[0..len) below 0x80 (len if
 * all are), reading nothing outside s[0..len). _word uses portable 64-bit
 * words; _sse2 and _avx2 exist only on x86-64 and _avx2 may be called only
 * when mmws__utf8_have_avx2() says so.
 */
size_t mmws__utf8_ascii_prefix_word(const uint8_t *s, size_t len);
#if defined(__x86_64__)
size_t mmws__utf8_ascii_prefix_sse2(const uint8_t *s, size_t len);
size_t mmws__utf8_ascii_prefix_avx2(const uint8_t *s, size_t len);
#endif

/* 1 if this CPU runs the AVX2 scanner. */
int mmws__utf8_have_avx2(void);

/* Name of the scanner used for long ASCII runs: "avx2", "sse2", "word". */
const char *mmws__utf8_impl(void);

#endif /* MMWS_UTF8_INTERNAL_H */
