/*
 * loop.c — the event loop (net layer): level-triggered epoll, a min-heap
 * of monotonic one-shot timers, and an eventfd that other threads write to
 * wake or stop the loop.
 *
 * One iteration, read top to bottom (mmws_loop_run_once):
 *
 *   1. wait    epoll_wait for at most the time to the nearest timer
 *              (rounded up to whole ms, capped by the caller's timeout;
 *              0 in busy_poll mode);
 *   2. now     read CLOCK_MONOTONIC once and cache it (mmws_loop_now_ns);
 *   3. timers  pop every timer due at the cached now into the run queue,
 *              then run the queue; a timer (re)started by a callback goes
 *              back to the heap and waits for a later iteration, even with
 *              a zero delay;
 *   4. io      deliver the batch of fd events in the order epoll gave them.
 *
 * From step 3 until the batch is done, mmws__io_stop() blanks the entries
 * of the batch not yet delivered that belong to the stopped watcher (the
 * technique of libuv's uv__platform_invalidate_fd), so a watcher stopped
 * inside a callback — its fd closed, its owner freed, its fd number reused
 * by a new watcher — never receives an event of this batch. Likewise a
 * timer stopped while in the run queue leaves an empty slot behind.
 *
 * The loop keeps a table of active watchers indexed by fd and knows every
 * active timer through the heap, so mmws_loop_free() can detach the ones
 * still active instead of leaving them pointing at freed memory.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "net/io.h"

/* heap_index of an idle timer. */
#define IDLE SIZE_MAX
/* heap_index bit of a timer waiting in the run queue; the low bits are its
 * position there. */
#define RUNQ_BIT (((size_t)1) << (sizeof(size_t) * CHAR_BIT - 1))

/* The smallest timer heap and watcher table allocated. */
#define MIN_TIMERS 16
#define MIN_FDS 64

struct mmws_loop {
    int epfd;                    /* the epoll instance */
    int wakefd;                  /* eventfd written by mmws_loop_wake/stop */
    int busy_poll;               /* 1: epoll_wait never sleeps */
    _Atomic int stop;            /* set by mmws_loop_stop, cleared by run */
    int running;                 /* 1 inside run_once: no reentry */
    uint64_t now;                /* monotonic ns cached this iteration */

    struct epoll_event *events;  /* the batch buffer, max_events long */
    int max_events;              /* length of events */
    int nevents;                 /* entries of the batch being processed */
    int next_event;              /* index of the next entry to deliver */

    mmws__timer **heap;          /* min-heap of active timers by due_ns */
    size_t heap_len;             /* timers in the heap */
    mmws__timer **runq;          /* timers due this iteration, NULL holes
                                    where one was stopped or restarted */
    size_t runq_len;             /* slots of runq in use this iteration */
    size_t timer_cap;            /* capacity of both heap and runq */
    size_t timers;               /* timers registered (init, not fini):
                                    timer_cap >= timers always, so a start
                                    never allocates */

    mmws__io **fds;              /* active watchers indexed by fd */
    size_t fds_cap;              /* length of fds */
};

/* Reads CLOCK_MONOTONIC in nanoseconds. */
uint64_t mmws_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fills cfg with the documented defaults. */
void mmws_loop_config_default(mmws_loop_config *cfg) {
    if (!cfg) return;
    cfg->busy_poll = 0;
    cfg->max_events = 64;
}

/* Creates the epoll instance, the eventfd and the batch buffer. */
static int timers_grow(mmws_loop *loop);

mmws_loop *mmws_loop_new(const mmws_loop_config *cfg) {
    mmws_loop_config def;
    if (!cfg) {
        mmws_loop_config_default(&def);
        cfg = &def;
    }
    if ((cfg->busy_poll != 0 && cfg->busy_poll != 1) ||
        cfg->max_events < 1 || cfg->max_events > 4096) {
        errno = EINVAL;
        return NULL;
    }
    mmws_loop *loop = calloc(1, sizeof *loop);
    if (!loop) return NULL;
    loop->epfd = -1;
    loop->wakefd = -1;
    loop->busy_poll = cfg->busy_poll;
    loop->max_events = (int)cfg->max_events;
    atomic_init(&loop->stop, 0);
    loop->events = calloc(cfg->max_events, sizeof *loop->events);
    if (!loop->events) goto fail;
    /* Room for MIN_TIMERS timers now; more are reserved as timers are
     * registered (mmws__timer_init). */
    if (timers_grow(loop) != 0) {
        errno = ENOMEM;
        goto fail;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) goto fail;
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wakefd < 0) goto fail;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = loop; /* marks the eventfd in a batch */
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) != 0)
        goto fail;
    loop->now = mmws_now_ns();
    return loop;
fail:;
    int saved = errno;
    if (loop->wakefd >= 0) close(loop->wakefd);
    if (loop->epfd >= 0) close(loop->epfd);
    free(loop->events);
    free(loop->heap);
    free(loop->runq);
    free(loop);
    errno = saved;
    return NULL;
}

/* Detaches whatever is still active, then releases the loop. */
void mmws_loop_free(mmws_loop *loop) {
    if (!loop) return;
    for (size_t i = 0; i < loop->heap_len; i++) {
        loop->heap[i]->heap_index = IDLE;
        loop->heap[i]->loop = NULL;
    }
    for (size_t i = 0; i < loop->runq_len; i++) {
        if (!loop->runq[i]) continue;
        loop->runq[i]->heap_index = IDLE;
        loop->runq[i]->loop = NULL;
    }
    for (size_t fd = 0; fd < loop->fds_cap; fd++) {
        mmws__io *io = loop->fds[fd];
        if (!io) continue;
        io->fd = -1;
        io->events = 0;
        io->loop = NULL;
    }
    close(loop->wakefd);
    close(loop->epfd);
    free(loop->events);
    free(loop->heap);
    free(loop->runq);
    free(loop->fds);
    free(loop);
}

/* Sets the stop flag and interrupts a wait in progress. */
void mmws_loop_stop(mmws_loop *loop) {
    if (!loop) return;
    atomic_store(&loop->stop, 1);
    mmws_loop_wake(loop);
}

/* Adds one to the eventfd; the loop drains it when it wakes. */
void mmws_loop_wake(mmws_loop *loop) {
    if (!loop) return;
    uint64_t one = 1;
    ssize_t r;
    do {
        r = write(loop->wakefd, &one, sizeof one);
    } while (r < 0 && errno == EINTR);
    /* EAGAIN means the counter is saturated: the loop is woken anyway. */
}

/* Returns the time cached at the start of this iteration. */
uint64_t mmws_loop_now_ns(const mmws_loop *loop) {
    return loop ? loop->now : 0;
}

/* ------------------------------------------------------------- timers -- */

/* 1 if timer a must fire before timer b. */
static int timer_less(const mmws__timer *a, const mmws__timer *b) {
    return a->due_ns < b->due_ns;
}

/* Puts t at heap position i and records it there. */
static void heap_set(mmws_loop *loop, size_t i, mmws__timer *t) {
    loop->heap[i] = t;
    t->heap_index = i;
}

/* Moves the timer at position i towards the root while it is due sooner
 * than its parent. */
static void heap_up(mmws_loop *loop, size_t i) {
    mmws__timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_less(t, loop->heap[parent])) break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

/* Moves the timer at position i towards the leaves while a child is due
 * sooner. */
static void heap_down(mmws_loop *loop, size_t i) {
    mmws__timer *t = loop->heap[i];
    size_t n = loop->heap_len;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n &&
            timer_less(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_less(loop->heap[child], t)) break;
        heap_set(loop, i, loop->heap[child]);
        i = child;
    }
    heap_set(loop, i, t);
}

/* Removes the timer at heap position i (which must be valid). */
static void heap_remove(mmws_loop *loop, size_t i) {
    mmws__timer *t = loop->heap[i];
    mmws__timer *last = loop->heap[--loop->heap_len];
    t->heap_index = IDLE;
    if (last == t) return;
    heap_set(loop, i, last);
    if (i > 0 && timer_less(last, loop->heap[(i - 1) / 2]))
        heap_up(loop, i);
    else
        heap_down(loop, i);
}

/* Doubles the heap and the run queue. Returns 0 or MMWS_ENOMEM. */
static int timers_grow(mmws_loop *loop) {
    size_t cap = loop->timer_cap ? loop->timer_cap * 2 : MIN_TIMERS;
    if (cap > SIZE_MAX / 2 / sizeof(mmws__timer *)) return MMWS_ENOMEM;
    mmws__timer **heap = realloc(loop->heap, cap * sizeof *heap);
    if (!heap) return MMWS_ENOMEM;
    loop->heap = heap;
    mmws__timer **runq = realloc(loop->runq, cap * sizeof *runq);
    if (!runq) return MMWS_ENOMEM;
    loop->runq = runq;
    loop->timer_cap = cap;
    return 0;
}

/* Records the loop and callback and reserves t's room in the heap and
 * the run queue, so that no later start can fail for memory (a connect or
 * backoff timer that silently did not start would be a hang). */
int mmws__timer_init(mmws_loop *loop, mmws__timer *t, mmws__timer_cb cb,
                     void *data) {
    t->due_ns = 0;
    t->heap_index = IDLE;
    t->cb = cb;
    t->data = data;
    t->loop = NULL;
    if (!loop) return MMWS_EINVAL;
    if (loop->timers == loop->timer_cap && timers_grow(loop) != 0)
        return MMWS_ENOMEM;
    loop->timers++;
    t->loop = loop;
    return 0;
}

/* Stops t and gives its room back; t is unregistered (safe to repeat). */
void mmws__timer_fini(mmws__timer *t) {
    if (!t->loop) return;
    mmws__timer_stop(t);
    t->loop->timers--;
    t->loop = NULL;
}

/* Moves an active timer to its new due time in place, or inserts an idle
 * one (or one taken out of the run queue) into the heap. */
int mmws__timer_start(mmws__timer *t, uint64_t delay_ns) {
    mmws_loop *loop = t->loop;
    if (!loop) return MMWS_EINVAL;
    uint64_t due = loop->now + delay_ns;
    if (due < loop->now) due = UINT64_MAX;
    if (t->heap_index != IDLE && !(t->heap_index & RUNQ_BIT)) {
        t->due_ns = due;
        heap_up(loop, t->heap_index);
        heap_down(loop, t->heap_index);
        return 0;
    }
    /* heap_len < timers <= timer_cap: t is registered and not in the
     * heap, so there is room (reserved by mmws__timer_init). */
    if ((t->heap_index & RUNQ_BIT) && t->heap_index != IDLE)
        loop->runq[t->heap_index & ~RUNQ_BIT] = NULL;
    t->due_ns = due;
    loop->heap[loop->heap_len] = t;
    t->heap_index = loop->heap_len++;
    heap_up(loop, t->heap_index);
    return 0;
}

/* Takes t out of the heap or leaves a hole in the run queue. */
void mmws__timer_stop(mmws__timer *t) {
    mmws_loop *loop = t->loop;
    if (t->heap_index == IDLE || !loop) return;
    if (t->heap_index & RUNQ_BIT) {
        loop->runq[t->heap_index & ~RUNQ_BIT] = NULL;
        t->heap_index = IDLE;
        return;
    }
    heap_remove(loop, t->heap_index);
}

/* Active means in the heap or in this iteration's run queue. */
int mmws__timer_active(const mmws__timer *t) {
    return t->heap_index != IDLE;
}

/* Moves every timer due at the cached now into the run queue, then runs
 * the queue in due order. Returns the number of callbacks run. */
static int run_timers(mmws_loop *loop) {
    size_t n = 0;
    while (loop->heap_len > 0 && loop->heap[0]->due_ns <= loop->now) {
        mmws__timer *t = loop->heap[0];
        heap_remove(loop, 0);
        loop->runq[n] = t;
        t->heap_index = RUNQ_BIT | n;
        n++;
    }
    loop->runq_len = n;
    int ran = 0;
    for (size_t i = 0; i < n; i++) {
        mmws__timer *t = loop->runq[i];
        if (!t) continue;
        loop->runq[i] = NULL;
        t->heap_index = IDLE;
        t->cb(t);
        ran++;
    }
    loop->runq_len = 0;
    return ran;
}

/* Milliseconds from now until the nearest timer, rounded up; -1 if none. */
static int next_timer_ms(const mmws_loop *loop) {
    if (loop->heap_len == 0) return -1;
    uint64_t due = loop->heap[0]->due_ns;
    uint64_t now = mmws_now_ns();
    if (due <= now) return 0;
    uint64_t ms = (due - now + 999999u) / 1000000u;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ---------------------------------------------------------- watchers -- */

/* The epoll bits for an interest set. */
static uint32_t epoll_bits(unsigned events) {
    uint32_t e = 0;
    if (events & MMWS__IO_READ) e |= EPOLLIN | EPOLLRDHUP;
    if (events & MMWS__IO_WRITE) e |= EPOLLOUT;
    return e;
}

/* Makes room in the watcher table for fd. Returns 0, or -1 with errno. */
static int fds_reserve(mmws_loop *loop, int fd) {
    size_t need = (size_t)fd + 1;
    if (need <= loop->fds_cap) return 0;
    size_t cap = loop->fds_cap ? loop->fds_cap : MIN_FDS;
    while (cap < need) cap *= 2;
    mmws__io **fds = realloc(loop->fds, cap * sizeof *fds);
    if (!fds) {
        errno = ENOMEM;
        return -1;
    }
    memset(fds + loop->fds_cap, 0, (cap - loop->fds_cap) * sizeof *fds);
    loop->fds = fds;
    loop->fds_cap = cap;
    return 0;
}

/* 1 if io is the watcher registered on loop for its fd. Only compares the
 * fields, so an uninitialised struct is never dereferenced. */
static int io_registered(const mmws_loop *loop, const mmws__io *io) {
    return io->loop == loop && io->fd >= 0 &&
           (size_t)io->fd < loop->fds_cap && loop->fds[io->fd] == io;
}

/* Registers fd, or (for a watcher already registered on the same fd)
 * updates its interest and callback. */
int mmws__io_start(mmws_loop *loop, mmws__io *io, int fd, unsigned events,
                   mmws__io_cb cb, void *data) {
    if (!loop || !io || fd < 0 || !cb) {
        errno = EINVAL;
        return MMWS_ESYS;
    }
    events &= MMWS__IO_READ | MMWS__IO_WRITE;
    if (io_registered(loop, io) && io->fd == fd) {
        io->cb = cb;
        io->data = data;
        return mmws__io_modify(io, events);
    }
    if (io_registered(loop, io)) mmws__io_stop(io);
    if (fds_reserve(loop, fd) != 0) return MMWS_ESYS;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = epoll_bits(events);
    ev.data.ptr = io;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return MMWS_ESYS;
    io->fd = fd;
    io->events = events;
    io->cb = cb;
    io->data = data;
    io->loop = loop;
    loop->fds[fd] = io;
    return 0;
}

/* Re-registers the interest with EPOLL_CTL_MOD when it changes. */
int mmws__io_modify(mmws__io *io, unsigned events) {
    mmws_loop *loop = io->loop;
    if (!loop || io->fd < 0) {
        errno = EBADF;
        return MMWS_ESYS;
    }
    events &= MMWS__IO_READ | MMWS__IO_WRITE;
    if (events == io->events) return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = epoll_bits(events);
    ev.data.ptr = io;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0)
        return MMWS_ESYS;
    io->events = events;
    return 0;
}

/* Deregisters io and blanks its entries in the batch not yet delivered. */
void mmws__io_stop(mmws__io *io) {
    mmws_loop *loop = io->loop;
    if (!loop) return;
    if (io->fd >= 0) {
        /* Fails only if the fd is already closed (EBADF) or no longer
         * registered (ENOENT); either way nothing is left to remove. */
        (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
        if ((size_t)io->fd < loop->fds_cap && loop->fds[io->fd] == io)
            loop->fds[io->fd] = NULL;
    }
    for (int i = loop->next_event; i < loop->nevents; i++)
        if (loop->events[i].data.ptr == io) loop->events[i].data.ptr = NULL;
    io->fd = -1;
    io->events = 0;
    io->loop = NULL;
}

/* The MMWS__IO_* bits of an epoll event, limited to what io asked for
 * plus MMWS__IO_ERROR. */
static unsigned ready_bits(const mmws__io *io, uint32_t e) {
    unsigned r = 0;
    if (e & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) r |= MMWS__IO_READ;
    if (e & EPOLLOUT) r |= MMWS__IO_WRITE;
    r &= io->events;
    if (e & (EPOLLERR | EPOLLHUP)) r |= MMWS__IO_ERROR;
    return r;
}

/* Empties the wake eventfd. */
static void drain_wake(mmws_loop *loop) {
    uint64_t v;
    ssize_t r;
    do {
        r = read(loop->wakefd, &v, sizeof v);
    } while (r < 0 && errno == EINTR);
}

/* Delivers the batch in order, skipping blanked entries. Returns the
 * number of callbacks run. */
static int run_io(mmws_loop *loop) {
    int ran = 0;
    while (loop->next_event < loop->nevents) {
        struct epoll_event *ev = &loop->events[loop->next_event++];
        void *p = ev->data.ptr;
        if (!p) continue;
        if (p == loop) {
            drain_wake(loop);
            continue;
        }
        mmws__io *io = p;
        unsigned bits = ready_bits(io, ev->events);
        if (!bits) continue;
        io->cb(io, bits);
        ran++;
    }
    return ran;
}

/* ------------------------------------------------------------ running -- */

/* One iteration: wait, cache now, run timers, deliver the batch. */
int mmws_loop_run_once(mmws_loop *loop, int timeout_ms) {
    if (!loop) return MMWS_EINVAL;
    if (loop->running) return MMWS_ESTATE;
    int wait;
    if (loop->busy_poll || timeout_ms == 0) {
        wait = 0;
    } else {
        wait = next_timer_ms(loop);
        if (timeout_ms > 0 && (wait < 0 || wait > timeout_ms))
            wait = timeout_ms;
    }
    int n = epoll_wait(loop->epfd, loop->events, loop->max_events, wait);
    if (n < 0) {
        if (errno != EINTR) return MMWS_ESYS;
        n = 0;
    }
    loop->now = mmws_now_ns();
    loop->running = 1;
    loop->nevents = n;
    loop->next_event = 0;
    int ran = run_timers(loop);
    ran += run_io(loop);
    loop->nevents = 0;
    loop->next_event = 0;
    loop->running = 0;
    return ran;
}

int mmws__loop_running(const mmws_loop *loop) { return loop->running; }

/* Iterates until the stop flag is seen, then clears it. */
int mmws_loop_run(mmws_loop *loop) {
    if (!loop) return MMWS_EINVAL;
    int rc = 0;
    while (!atomic_load(&loop->stop)) {
        int r = mmws_loop_run_once(loop, -1);
        if (r < 0) {
            rc = r;
            break;
        }
    }
    atomic_store(&loop->stop, 0);
    return rc;
}
