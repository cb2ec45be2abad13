/*
 * last_error.h — the per-thread sentence behind mmws_last_error(), set by
 * constructors that fail before there is an object to hold an error.
 * Lowest layer, so every layer may use it. Not public.
 */
#ifndef MMWS_LAST_ERROR_H
#define MMWS_LAST_ERROR_H

/* Stores text (truncated to 255 bytes) for mmws_last_error() on this
 * thread. */
void mmws__set_last_error(const char *text);

#endif /* MMWS_LAST_ERROR_H */
