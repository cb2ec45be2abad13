/*
 * loop.h — the event loop every mmws object runs on (net layer).
 *
 * One loop per thread, no global state: several loops may run in one
 * process. Level-triggered epoll with monotonic timers; the time is read
 * once per iteration and cached (mmws_loop_now_ns). Objects created on a
 * loop are used only on that loop's thread; mmws_loop_wake() and
 * mmws_loop_stop() are the exceptions and may be called from any thread.
 */
#ifndef MMWS_LOOP_H
#define MMWS_LOOP_H

#include <mmws/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mmws_loop mmws_loop;

typedef struct mmws_loop_config {
    /* 1: never sleep; epoll_wait is polled with a zero timeout (for a
     * thread pinned to its own core). Default 0. */
    int busy_poll;
    /* Events taken from epoll per iteration. Default 64, 1..4096. */
    unsigned max_events;
} mmws_loop_config;

/* Fills cfg with the defaults above. */
MMWS_API void mmws_loop_config_default(mmws_loop_config *cfg);

/*
 * Creates a loop (cfg NULL means the defaults). Returns NULL if the config
 * is invalid (errno EINVAL) or a system call or allocation failed (errno
 * says which).
 */
MMWS_API mmws_loop *mmws_loop_new(const mmws_loop_config *cfg);

/* Frees the loop. Every object created on it must be freed first.
 * mmws_loop_free(NULL) is a no-op. */
MMWS_API void mmws_loop_free(mmws_loop *loop);

/*
 * Runs iterations until mmws_loop_stop() is called (from a callback or
 * another thread). Returns 0, or MMWS_ESYS if epoll_wait failed.
 */
MMWS_API int mmws_loop_run(mmws_loop *loop);

/*
 * Runs one iteration: waits up to timeout_ms for events (-1: until the
 * next timer or event; 0: do not wait; busy_poll loops never wait), then
 * runs due timers and ready callbacks. Returns the number of callbacks run
 * (>= 0), MMWS_ESYS (epoll_wait failed), MMWS_EINVAL (loop NULL), or
 * MMWS_ESTATE when called from inside one of the loop's own callbacks.
 */
MMWS_API int mmws_loop_run_once(mmws_loop *loop, int timeout_ms);

/* Makes mmws_loop_run() return after the current iteration. Any thread. */
MMWS_API void mmws_loop_stop(mmws_loop *loop);

/* Interrupts a wait in progress (eventfd). Any thread. */
MMWS_API void mmws_loop_wake(mmws_loop *loop);

/* Monotonic time in nanoseconds, cached at the start of the iteration. */
MMWS_API uint64_t mmws_loop_now_ns(const mmws_loop *loop);

/* CLOCK_MONOTONIC now, in nanoseconds (not cached). */
MMWS_API uint64_t mmws_now_ns(void);

#ifdef __cplusplus
}
#endif

#endif /* MMWS_LOOP_H */
