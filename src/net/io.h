/*
 * io.h — the loop's internal interface for the layers above it: watching
 * file descriptors and running timers. Not public; every symbol is
 * mmws__. The structs are embedded in their owners (no allocation per
 * watcher or per timer start).
 */
#ifndef MMWS_NET_IO_H
#define MMWS_NET_IO_H

#include <mmws/loop.h>

/* Interest and readiness bits. */
#define MMWS__IO_READ 0x1u
#define MMWS__IO_WRITE 0x2u
#define MMWS__IO_ERROR 0x4u /* EPOLLERR or EPOLLHUP; reported, never asked */

typedef struct mmws__io mmws__io;
typedef void (*mmws__io_cb)(mmws__io *io, unsigned events);

/* A watched fd. Owned by the caller; must stay in place while active and
 * be stopped (mmws__io_stop) before its owner is freed. */
struct mmws__io {
    int fd;             /* the watched fd, -1 when stopped */
    unsigned events;    /* the interest now registered (READ | WRITE) */
    mmws__io_cb cb;     /* called with the ready bits, on the loop thread */
    void *data;         /* the owner's pointer */
    mmws_loop *loop;    /* the loop it is registered with, NULL if none */
};

/*
 * Registers fd with interest events (READ and/or WRITE) and cb. Returns 0
 * or MMWS_ESYS (epoll_ctl failed; errno says why). The fd is not closed by
 * the loop.
 */
int mmws__io_start(mmws_loop *loop, mmws__io *io, int fd, unsigned events,
                   mmws__io_cb cb, void *data);

/* Changes the interest of an active watcher (a no-op if unchanged).
 * Returns 0 or MMWS_ESYS. */
int mmws__io_modify(mmws__io *io, unsigned events);

/*
 * Stops watching (safe on a stopped watcher). Events for this watcher
 * still pending in the current batch are discarded, so a watcher stopped
 * (and its fd closed, or the fd number reused) inside a callback never
 * receives a stale event. Call before closing the fd.
 */
void mmws__io_stop(mmws__io *io);

typedef struct mmws__timer mmws__timer;
typedef void (*mmws__timer_cb)(mmws__timer *t);

/* A one-shot timer. Owned by the caller; must stay in place while active. */
struct mmws__timer {
    uint64_t due_ns;      /* monotonic due time while active */
    size_t heap_index;    /* position in the loop's heap, SIZE_MAX if idle */
    mmws__timer_cb cb;    /* called once when due, on the loop thread */
    void *data;           /* the owner's pointer */
    mmws_loop *loop;      /* set by mmws__timer_init, NULL when not
                             registered */
};

/*
 * Registers an idle timer on loop and reserves its room in the loop's
 * heap, so that starting it never allocates. Returns 0, or MMWS_ENOMEM
 * (t is then unregistered: starts return MMWS_EINVAL, stops do nothing).
 * Every registered timer is given back with mmws__timer_fini before its
 * memory goes.
 */
int mmws__timer_init(mmws_loop *loop, mmws__timer *t, mmws__timer_cb cb,
                     void *data);

/* Stops t and unregisters it; safe on an unregistered timer. */
void mmws__timer_fini(mmws__timer *t);

/*
 * (Re)starts t to fire delay_ns after the loop's cached now. Returns 0, or
 * MMWS_EINVAL if t is not registered; never fails for memory.
 */
int mmws__timer_start(mmws__timer *t, uint64_t delay_ns);

/* Stops t if active; safe on an idle timer and inside its own callback. */
void mmws__timer_stop(mmws__timer *t);

/* 1 if t is waiting to fire. */
int mmws__timer_active(const mmws__timer *t);

/* 1 while the loop is running callbacks (called from inside one). */
int mmws__loop_running(const mmws_loop *loop);

#endif /* MMWS_NET_IO_H */
