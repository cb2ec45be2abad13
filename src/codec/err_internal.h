/*
 * err_internal.h — error sentences for every layer: the per-thread one
 * behind mmws_last_error() (set by constructors that fail before there is
 * an object to hold an error) and the printf-style detail writer objects
 * use for theirs. Lowest layer, so every layer may use it. Not public.
 */
#ifndef MMWS_ERR_INTERNAL_H
#define MMWS_ERR_INTERNAL_H

#include <stddef.h>

/* Stores text (truncated to 255 bytes) for mmws_last_error() on this
 * thread. */
void mmws__set_last_error(const char *text);

/* Writes a printf-style sentence into buf (len bytes, truncated), if buf
 * is not NULL and len > 0. */
void mmws__detail(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* MMWS_ERR_INTERNAL_H */
