/*
 * thread.c — threaded mode for mmws_single and mmws_pool: the loop runs on
 * an I/O thread of its own; messages reach the consumer through a
 * lock-free SPSC ring (ring/spsc.c), sends travel the other way through a
 * second one plus an eventfd that wakes the loop, and state and stats are
 * read from a snapshot the I/O thread publishes every
 * snapshot_interval_ms (so the consumer never touches the loop's objects
 * while the I/O thread runs).
 *
 * The I/O thread never blocks on the consumer: delivery is a copy into the
 * ring (the policy decides what overflows, counted), the snapshot is
 * published with a trylock (skipped if the consumer holds the lock, done
 * again at the next tick).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "codec/err_internal.h"
#include "net/io.h"
#include "pool/pool_internal.h"
#include "ring/spsc_internal.h"

#define MS 1000000ull

struct mmws__thread {
    mmws_loop *loop;
    mmws__thread_ops ops;
    void *obj;
    mmws_wait_mode wait;
    uint32_t snap_ms;

    mmws__spsc *in;         /* I/O thread -> consumer: messages */
    mmws__spsc *out;        /* consumer -> I/O thread: sends */
    int efd;                /* wakes the loop for sends */
    mmws__io io;
    mmws__timer t_snap;

    pthread_t th;
    int started;
    _Atomic int quit;       /* set by stop */
    _Atomic int done;       /* the I/O thread has ended */
    _Atomic int loop_rc;    /* why it ended, if the loop failed */

    pthread_mutex_t mu;     /* guards snap and last_send_error */
    void *snap, *scratch;   /* published snapshot; the I/O thread's own */
    size_t snap_len;
    char last_send_error[160];
    _Atomic uint64_t sends_queued, sends_done, sends_failed;
};

void mmws_thread_config_default(mmws_thread_config *cfg) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->cpu = -1;
    cfg->wait = MMWS_WAIT_BLOCK;
    cfg->send_queue_messages = 1024;
    cfg->send_queue_bytes = (size_t)1 << 20;
    cfg->snapshot_interval_ms = 50;
}

int mmws__thread_refuse(const char *fn) {
    char buf[200];
    snprintf(buf, sizeof buf,
             "%s: not available in threaded mode (the loop belongs to the "
             "I/O thread; see mmws_pool_start_thread)", fn);
    mmws__set_last_error(buf);
    return MMWS_ESTATE;
}

int mmws__thread_cfg_check(const mmws_thread_config *c, char *err,
                           size_t n) {
    if (c->cpu < -1 || c->cpu >= CPU_SETSIZE) {
        snprintf(err, n, "thread cpu must be -1 (not pinned) or 0..%d (got "
                 "%d)", CPU_SETSIZE - 1, c->cpu);
        return MMWS_ECONFIG;
    }
    if (c->cpu >= 0) {
        cpu_set_t allowed;
        CPU_ZERO(&allowed);
        if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 &&
            !CPU_ISSET((size_t)c->cpu, &allowed)) {
            snprintf(err, n, "thread cpu %d is not one this process may run "
                     "on (%d CPUs allowed)", c->cpu, CPU_COUNT(&allowed));
            return MMWS_ECONFIG;
        }
    }
    if (c->wait != MMWS_WAIT_BLOCK && c->wait != MMWS_WAIT_SPIN) {
        snprintf(err, n, "thread wait must be MMWS_WAIT_BLOCK or "
                 "MMWS_WAIT_SPIN (got %d)", (int)c->wait);
        return MMWS_ECONFIG;
    }
    if (c->send_queue_messages == 0 || c->send_queue_messages > (1u << 20)) {
        snprintf(err, n, "thread send_queue_messages must be 1..%u (got "
                 "%zu)", 1u << 20, c->send_queue_messages);
        return MMWS_ECONFIG;
    }
    if (c->send_queue_bytes == 0 || c->send_queue_bytes > (1u << 30)) {
        snprintf(err, n, "thread send_queue_bytes must be 1..%u (got %zu)",
                 1u << 30, c->send_queue_bytes);
        return MMWS_ECONFIG;
    }
    if (c->snapshot_interval_ms == 0 || c->snapshot_interval_ms > 60000) {
        snprintf(err, n, "thread snapshot_interval_ms must be 1..60000 (got "
                 "%u)", c->snapshot_interval_ms);
        return MMWS_ECONFIG;
    }
    return 0;
}

/* I/O thread: publishes the owner's state; `wait` 0 skips if the consumer
 * holds the lock (the loop must not block on it). */
static void publish(mmws__thread *t, int wait) {
    t->ops.snapshot(t->obj, t->scratch);
    if (wait) {
        pthread_mutex_lock(&t->mu);
    } else if (pthread_mutex_trylock(&t->mu) != 0) {
        return;
    }
    memcpy(t->snap, t->scratch, t->snap_len);
    pthread_mutex_unlock(&t->mu);
}

static void on_snap_timer(mmws__timer *tm) {
    mmws__thread *t = tm->data;
    publish(t, 0);
    mmws__timer_start(&t->t_snap, t->snap_ms * MS);
}

/* I/O thread: the consumer queued sends. */
static void on_wake(mmws__io *io, unsigned events) {
    (void)events;
    mmws__thread *t = io->data;
    uint64_t v;
    while (read(t->efd, &v, sizeof v) > 0) {
    }
    mmws_msg m;
    while (mmws__spsc_pop(t->out, &m) == 0) {
        int rc = t->ops.send(t->obj, m.data, m.len, m.opcode);
        if (rc == 0) {
            atomic_fetch_add(&t->sends_done, 1);
            continue;
        }
        atomic_fetch_add(&t->sends_failed, 1);
        pthread_mutex_lock(&t->mu);
        snprintf(t->last_send_error, sizeof t->last_send_error,
                 "queued send of %zu bytes failed: %s (%s)", m.len,
                 mmws_strerror(rc), mmws_errname(rc));
        pthread_mutex_unlock(&t->mu);
    }
}

static void *io_main(void *arg) {
    mmws__thread *t = arg;
    while (!atomic_load(&t->quit)) {
        int rc = mmws_loop_run_once(t->loop, -1);
        if (rc < 0) {
            atomic_store(&t->loop_rc, rc);
            break;
        }
        if (t->ops.finished && t->ops.finished(t->obj)) break;
    }
    publish(t, 1);
    atomic_store(&t->done, 1);
    mmws__spsc_wake(t->in);
    return NULL;
}

static void thread_free(mmws__thread *t) {
    mmws__timer_fini(&t->t_snap);
    mmws__io_stop(&t->io);
    if (t->efd >= 0) close(t->efd);
    mmws__spsc_free(t->in);
    mmws__spsc_free(t->out);
    free(t->snap);
    free(t->scratch);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int mmws__thread_start(mmws_loop *loop, const mmws_ring_config *ring,
                       const mmws_thread_config *tcfg,
                       const mmws__thread_ops *ops, void *obj,
                       size_t snap_len, mmws__thread **out) {
    char err[200];
    mmws_thread_config def;
    if (!tcfg) {
        mmws_thread_config_default(&def);
        tcfg = &def;
    }
    int rc = mmws__thread_cfg_check(tcfg, err, sizeof err);
    if (rc) {
        mmws__set_last_error(err);
        return rc;
    }
    if (ring->only_insert_unique) {
        mmws__set_last_error("threaded mode: the ring's only_insert_unique "
                             "is not supported (a pool removes duplicates "
                             "itself)");
        return MMWS_ECONFIG;
    }
    mmws__thread *t = calloc(1, sizeof *t);
    if (!t) {
        mmws__set_last_error("threaded mode: out of memory");
        return MMWS_ENOMEM;
    }
    t->efd = -1;
    t->io.fd = -1;
    pthread_mutex_init(&t->mu, NULL);
    t->loop = loop;
    t->ops = *ops;
    t->obj = obj;
    t->wait = tcfg->wait;
    t->snap_ms = tcfg->snapshot_interval_ms;
    t->snap_len = snap_len;
    mmws_ring_config sq;
    mmws_ring_config_default(&sq);
    sq.capacity = tcfg->send_queue_messages;
    sq.arena_bytes = tcfg->send_queue_bytes;
    sq.policy = MMWS_RING_REJECT_NEWEST;
    t->snap = calloc(1, snap_len);
    t->scratch = calloc(1, snap_len);
    if (!t->snap || !t->scratch) {
        thread_free(t);
        mmws__set_last_error("threaded mode: out of memory");
        return MMWS_ENOMEM;
    }
    rc = mmws__spsc_new(ring, tcfg->wait == MMWS_WAIT_BLOCK, &t->in);
    if (!rc) rc = mmws__spsc_new(&sq, 0, &t->out);
    if (rc) {
        thread_free(t);
        return rc;
    }
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->efd < 0 ||
        mmws__io_start(loop, &t->io, t->efd, MMWS__IO_READ, on_wake, t)) {
        snprintf(err, sizeof err, "threaded mode: eventfd for the send "
                 "queue: %s", strerror(errno));
        thread_free(t);
        mmws__set_last_error(err);
        return MMWS_ESYS;
    }
    if (mmws__timer_init(loop, &t->t_snap, on_snap_timer, t)) {
        thread_free(t);
        mmws__set_last_error("threaded mode: out of memory (timer)");
        return MMWS_ENOMEM;
    }
    mmws__timer_start(&t->t_snap, t->snap_ms * MS);
    publish(t, 1);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (tcfg->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((size_t)tcfg->cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    }
    /* The owner's pointer is set before the thread starts: its first
     * delivery reads it. */
    *out = t;
    int e = pthread_create(&t->th, &attr, io_main, t);
    pthread_attr_destroy(&attr);
    if (e) {
        *out = NULL;
        snprintf(err, sizeof err, "threaded mode: could not start the I/O "
                 "thread: %s", strerror(e));
        thread_free(t);
        mmws__set_last_error(err);
        return MMWS_ESYS;
    }
    t->started = 1;
    return 0;
}

void mmws__thread_stop(mmws__thread *t) {
    if (!t) return;
    if (t->started) {
        atomic_store(&t->quit, 1);
        mmws_loop_wake(t->loop);
        pthread_join(t->th, NULL);
    }
    thread_free(t);
}

void mmws__thread_deliver(mmws__thread *t, const mmws_msg *m) {
    mmws__spsc_push(t->in, m); /* every drop is counted by the ring */
}

int mmws__thread_next(mmws__thread *t, mmws_msg *out, int timeout_ms) {
    uint64_t deadline = UINT64_MAX;
    if (timeout_ms >= 0)
        deadline = mmws_now_ns() + (uint64_t)(unsigned)timeout_ms * MS;
    for (;;) {
        int rc = mmws__spsc_pop(t->in, out);
        if (rc != MMWS_EINCOMPLETE) return rc;
        if (atomic_load(&t->done)) {
            /* A message pushed just before the end is still taken. */
            rc = mmws__spsc_pop(t->in, out);
            if (rc != MMWS_EINCOMPLETE) return rc;
            int lrc = atomic_load(&t->loop_rc);
            return lrc ? lrc : MMWS_ESTATE;
        }
        if (timeout_ms == 0) return MMWS_ETIMEDOUT;
        if (!mmws__spsc_wait(t->in, t->wait == MMWS_WAIT_SPIN, deadline,
                             &t->done) &&
            !atomic_load(&t->done) && mmws_now_ns() >= deadline)
            return MMWS_ETIMEDOUT;
    }
}

int mmws__thread_send(mmws__thread *t, const void *data, size_t len,
                      unsigned flags) {
    if (atomic_load(&t->done)) {
        mmws__set_last_error("send: the I/O thread has ended (the "
                             "connection closed for good)");
        return MMWS_ENOTCONN;
    }
    mmws_msg m = {0};
    m.data = data;
    m.len = len;
    m.opcode = (uint8_t)flags;
    int rc = mmws__spsc_push(t->out, &m);
    if (rc == MMWS_ETOOBIG) {
        char buf[160];
        snprintf(buf, sizeof buf, "send: %zu bytes is more than the send "
                 "queue holds (send_queue_bytes)", len);
        mmws__set_last_error(buf);
        return rc;
    }
    if (rc) {
        mmws__set_last_error("send: the send queue is full (the I/O thread "
                             "has not caught up; send_queue_messages / "
                             "send_queue_bytes)");
        return rc;
    }
    atomic_fetch_add(&t->sends_queued, 1);
    uint64_t one = 1;
    if (write(t->efd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is saturated, so a wake-up is pending. */
    }
    return 0;
}

void mmws__thread_snapshot(mmws__thread *t, void *snap) {
    pthread_mutex_lock(&t->mu);
    memcpy(snap, t->snap, t->snap_len);
    pthread_mutex_unlock(&t->mu);
}

void mmws__thread_stats(mmws__thread *t, mmws_thread_stats *out) {
    memset(out, 0, sizeof *out);
    mmws__spsc_stats(t->in, &out->handoff);
    out->handoff_pending = mmws__spsc_size(t->in);
    out->sends_queued = atomic_load(&t->sends_queued);
    out->sends_done = atomic_load(&t->sends_done);
    out->sends_failed = atomic_load(&t->sends_failed);
    pthread_mutex_lock(&t->mu);
    memcpy(out->last_send_error, t->last_send_error,
           sizeof out->last_send_error);
    pthread_mutex_unlock(&t->mu);
}
