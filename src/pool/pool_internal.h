/* pool_internal.h — what single.c and pool.c share. Not public. */
#ifndef MMWS_POOL_INTERNAL_H
#define MMWS_POOL_INTERNAL_H

#include <mmws/pool.h>

/* Runs the loop until pred(arg) holds or timeout_ms passes (-1: no
 * bound). Returns 0, MMWS_ETIMEDOUT, or the loop's error. */
int mmws__drive_until(mmws_loop *loop, int (*pred)(void *), void *arg,
                      int timeout_ms);

/* ------------------------------------------------------ threaded mode -- */

typedef struct mmws__thread mmws__thread;

/* What the single or pool does for its I/O thread (called there). */
typedef struct mmws__thread_ops {
    /* Sends one queued message; 0 or the error (sentence in
     * mmws_last_error()). flags: the owner's (the pool's only_fastest). */
    int (*send)(void *obj, const uint8_t *data, size_t len, unsigned flags);
    /* Fills the owner's snapshot (snap_len bytes). */
    void (*snapshot)(void *obj, void *snap);
    /* 1 once no message can come any more (a single closed for good). */
    int (*finished)(void *obj);
} mmws__thread_ops;

/* Checks tcfg (sentence in err). */
int mmws__thread_cfg_check(const mmws_thread_config *tcfg, char *err,
                           size_t err_len);

/* Creates the hand-off rings, the wake-up fd, publishes a first snapshot,
 * and starts the I/O thread running loop. 0 or an MMWS_E* code with the
 * sentence in mmws_last_error(). */
int mmws__thread_start(mmws_loop *loop, const mmws_ring_config *ring,
                       const mmws_thread_config *tcfg,
                       const mmws__thread_ops *ops, void *obj,
                       size_t snap_len, mmws__thread **out);

/* Stops and joins the I/O thread and frees everything (NULL: no-op). After
 * it, the caller owns the loop and the objects on it again. */
void mmws__thread_stop(mmws__thread *t);

/* I/O thread: hands a message to the consumer (counted if dropped). */
void mmws__thread_deliver(mmws__thread *t, const mmws_msg *m);

/* Consumer: as mmws_single_next. */
int mmws__thread_next(mmws__thread *t, mmws_msg *out, int timeout_ms);

/* Consumer: queues a send. 0, MMWS_EQUEUEFULL, MMWS_ETOOBIG. */
int mmws__thread_send(mmws__thread *t, const void *data, size_t len,
                      unsigned flags);

/* Consumer: copies the latest snapshot into snap. */
void mmws__thread_snapshot(mmws__thread *t, void *snap);

/* Any thread. */
void mmws__thread_stats(mmws__thread *t, mmws_thread_stats *out);

/* Sets mmws_last_error() to "<fn>: not available in threaded mode ..."
 * and returns MMWS_ESTATE. */
int mmws__thread_refuse(const char *fn);

#endif /* MMWS_POOL_INTERNAL_H */
