/*
 * test_loop.c — the event loop: timer order and heap, stop/restart from
 * callbacks, fd watchers on pipes and socketpairs, stale events after a
 * stop inside a batch, owners freed from callbacks, cross-thread wake and
 * stop, busy polling, and loops on several threads.
 *
 * No check depends on how long anything took: only on what fired, in
 * which order. alarm() turns a hang (a wake that never arrives) into a
 * failure instead of a stuck test run.
 */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "net/io.h"

#define MS 1000000ull

/* Sleeps for ms milliseconds (helper threads only). */
static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Makes a non-blocking pipe; exits on failure. */
static void make_pipe(int p[2]) {
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
        perror("pipe2");
        exit(2);
    }
}

/* Writes one byte; exits on failure. */
static void put_byte(int fd) {
    if (write(fd, "x", 1) != 1) {
        perror("write");
        exit(2);
    }
}

/* ----------------------------------------------------------- config -- */

static void test_config(void) {
    mmws_loop_config cfg;
    mmws_loop_config_default(&cfg);
    CHECK_EQ(cfg.busy_poll, 0);
    CHECK_EQ(cfg.max_events, 64);
    cfg.max_events = 0;
    errno = 0;
    CHECK(mmws_loop_new(&cfg) == NULL);
    CHECK_EQ(errno, EINVAL);
    cfg.max_events = 4097;
    CHECK(mmws_loop_new(&cfg) == NULL);
    cfg.max_events = 4096;
    cfg.busy_poll = 2;
    CHECK(mmws_loop_new(&cfg) == NULL);
    cfg.busy_poll = 1;
    mmws_loop *loop = mmws_loop_new(&cfg);
    CHECK(loop != NULL);
    mmws_loop_free(loop);
    mmws_loop_free(NULL);
    CHECK(mmws_now_ns() > 0);
}

/* ------------------------------------------------------------ timers -- */

/* Records the order timers fire in. */
typedef struct order_rec {
    int fired[16];  /* ids in firing order */
    int n;          /* entries in fired */
} order_rec;

/* A timer with an id, recording into an order_rec. */
typedef struct id_timer {
    mmws__timer t;   /* the timer */
    int id;          /* its id */
    order_rec *rec;  /* where it records firing */
} id_timer;

/* Appends the timer's id to its record. */
static void id_timer_cb(mmws__timer *t) {
    id_timer *it = t->data;
    if (it->rec->n < 16) it->rec->fired[it->rec->n++] = it->id;
}

/* Timers started out of order fire in due order. */
static void test_timer_order(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    order_rec rec = {{0}, 0};
    static const uint64_t delays[5] = {30, 5, 20, 0, 10};
    static const int want[5] = {3, 1, 4, 2, 0};
    id_timer ts[5];
    for (int i = 0; i < 5; i++) {
        ts[i].id = i;
        ts[i].rec = &rec;
        mmws__timer_init(loop, &ts[i].t, id_timer_cb, &ts[i]);
        CHECK(!mmws__timer_active(&ts[i].t));
        CHECK_RC(mmws__timer_start(&ts[i].t, delays[i] * MS), 0);
        CHECK(mmws__timer_active(&ts[i].t));
    }
    int errs = 0;
    while (rec.n < 5) errs += mmws_loop_run_once(loop, -1) < 0;
    CHECK_EQ(errs, 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(rec.fired[i], want[i]);
        CHECK(!mmws__timer_active(&ts[i].t));
    }
    mmws_loop_free(loop);
}

/* Timers whose callbacks stop or restart each other. */
typedef struct ctl_timers {
    mmws__timer a, b, c;  /* a stops b, a restarts itself, c restarts b */
    int a_runs, b_runs, c_runs; /* how often each fired */
} ctl_timers;

/* Stops b and re-arms itself twice. */
static void ctl_a(mmws__timer *t) {
    ctl_timers *c = t->data;
    c->a_runs++;
    mmws__timer_stop(&c->b);
    mmws__timer_stop(t); /* a no-op: a is idle while it runs */
    if (c->a_runs < 3) mmws__timer_start(t, 1 * MS);
}

/* Counts b's runs (none expected until c restarts it). */
static void ctl_b(mmws__timer *t) {
    ctl_timers *c = t->data;
    c->b_runs++;
}

/* Restarts the idle timer b. */
static void ctl_c(mmws__timer *t) {
    ctl_timers *c = t->data;
    c->c_runs++;
    mmws__timer_start(&c->b, 2 * MS);
}

/* Timers stopped and restarted from callbacks, and restarted while active. */
static void test_timer_stop_restart(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    ctl_timers c;
    memset(&c, 0, sizeof c);
    mmws__timer_init(loop, &c.a, ctl_a, &c);
    mmws__timer_init(loop, &c.b, ctl_b, &c);
    mmws__timer_init(loop, &c.c, ctl_c, &c);
    mmws__timer_stop(&c.a); /* stop on an idle timer */
    mmws__timer_start(&c.a, 1 * MS);
    mmws__timer_start(&c.b, 5 * MS); /* stopped by a's first run */
    while (c.a_runs < 3) mmws_loop_run_once(loop, -1);
    CHECK_EQ(c.a_runs, 3);
    CHECK_EQ(c.b_runs, 0);
    CHECK(!mmws__timer_active(&c.a));
    CHECK(!mmws__timer_active(&c.b));
    /* Restart an active timer for a later, then an earlier time. */
    mmws__timer_start(&c.c, 1 * MS);
    mmws__timer_start(&c.c, 50 * MS);
    mmws__timer_start(&c.c, 0);
    while (c.c_runs < 1) mmws_loop_run_once(loop, -1);
    CHECK_EQ(c.c_runs, 1);
    CHECK(mmws__timer_active(&c.b));
    while (c.b_runs < 1) mmws_loop_run_once(loop, -1);
    CHECK_EQ(c.b_runs, 1);
    CHECK_EQ(c.c_runs, 1);
    mmws_loop_free(loop);
}

/* A timer that restarts itself with a zero delay. */
typedef struct zero_timer {
    mmws__timer t;  /* the timer */
    int runs;       /* how often it fired */
    uint64_t seen_now[8]; /* the loop's cached now at each run */
} zero_timer;

/* Records the cached now, then restarts with no delay. */
static void zero_cb(mmws__timer *t) {
    zero_timer *z = t->data;
    if (z->runs < 8) z->seen_now[z->runs] = mmws_loop_now_ns(t->loop);
    z->runs++;
    mmws__timer_start(t, 0);
}

/* A timer restarted for 0 ns in its callback runs once per iteration. */
static void test_timer_zero_restart(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    zero_timer z;
    memset(&z, 0, sizeof z);
    mmws__timer_init(loop, &z.t, zero_cb, &z);
    mmws__timer_start(&z.t, 0);
    for (int i = 1; i <= 5; i++) {
        CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
        CHECK_EQ(z.runs, i);
    }
    for (int i = 1; i < 5; i++) CHECK(z.seen_now[i] >= z.seen_now[i - 1]);
    mmws__timer_stop(&z.t);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 0);
    CHECK_EQ(z.runs, 5);
    mmws_loop_free(loop);
}

/* A timer whose owner is freed by a callback that runs before it. */
typedef struct owned_timer {
    mmws__timer t;                /* the timer */
    struct owned_timer **others;  /* both owners; NULL once freed */
    int *runs;                    /* shared count of callbacks run */
} owned_timer;

/* The first of the two to run frees both owners. */
static void owned_cb(mmws__timer *t) {
    owned_timer *o = t->data;
    (*o->runs)++;
    owned_timer **others = o->others;
    for (int i = 0; i < 2; i++) {
        if (!others[i]) continue;
        mmws__timer_stop(&others[i]->t);
        free(others[i]);
        others[i] = NULL;
    }
}

/* A timer freed while waiting in the run queue never runs. */
static void test_timer_free_in_callback(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    owned_timer *others[2];
    int runs = 0;
    for (int i = 0; i < 2; i++) {
        others[i] = calloc(1, sizeof **others);
        others[i]->others = others;
        others[i]->runs = &runs;
        mmws__timer_init(loop, &others[i]->t, owned_cb, others[i]);
        mmws__timer_start(&others[i]->t, 1 * MS);
    }
    while (others[0] || others[1]) mmws_loop_run_once(loop, -1);
    CHECK_EQ(runs, 1);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 0);
    mmws_loop_free(loop);
}

#define NRAND 10000

/* The state of the random-timer heap test. */
typedef struct rand_state {
    mmws__timer t[NRAND];  /* the timers */
    int stopped[NRAND];    /* 1 if stopped before running */
    int fired[NRAND];      /* times each fired */
    uint64_t last_due;     /* due time of the previous timer to fire */
    size_t nfired;         /* timers fired so far */
    int out_of_order;      /* timers that fired before an earlier one */
    int early;             /* timers that fired before their due time */
} rand_state;

/* Checks the timer fires after every earlier-due one and not early. */
static void rand_cb(mmws__timer *t) {
    rand_state *s = t->data;
    size_t i = (size_t)(t - s->t);
    s->fired[i]++;
    s->nfired++;
    if (t->due_ns < s->last_due) s->out_of_order++;
    if (mmws_loop_now_ns(t->loop) < t->due_ns) s->early++;
    s->last_due = t->due_ns;
}

/* 10000 timers with random delays, some moved, some stopped. */
static void test_timer_heap_random(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    rand_state *s = calloc(1, sizeof *s);
    size_t want = 0;
    for (size_t i = 0; i < NRAND; i++) {
        mmws__timer_init(loop, &s->t[i], rand_cb, s);
        CHECK_RC(mmws__timer_start(&s->t[i], t_rand() % (40 * MS)), 0);
    }
    /* Move some to new times (in place) and stop others. */
    for (size_t i = 0; i < NRAND; i += 3)
        mmws__timer_start(&s->t[i], t_rand() % (40 * MS));
    for (size_t i = 0; i < NRAND; i++) {
        if (t_rand() % 7 == 0) {
            mmws__timer_stop(&s->t[i]);
            s->stopped[i] = 1;
        } else {
            want++;
        }
    }
    int errs = 0;
    while (s->nfired < want) errs += mmws_loop_run_once(loop, -1) < 0;
    CHECK_EQ(errs, 0);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 0);
    CHECK_EQ(s->nfired, want);
    CHECK_EQ(s->out_of_order, 0);
    CHECK_EQ(s->early, 0);
    size_t wrong = 0;
    for (size_t i = 0; i < NRAND; i++)
        if (s->fired[i] != (s->stopped[i] ? 0 : 1)) wrong++;
    CHECK_EQ(wrong, 0);
    free(s);
    mmws_loop_free(loop);
}

/* ---------------------------------------------------------- watchers -- */

/* Counts the callbacks of one watcher and remembers the last bits. */
typedef struct io_rec {
    mmws__io io;       /* the watcher */
    int calls;         /* callbacks so far */
    unsigned last;     /* bits of the last callback */
    unsigned all;      /* union of all bits seen */
} io_rec;

/* Records the call. */
static void rec_cb(mmws__io *io, unsigned events) {
    io_rec *r = io->data;
    r->calls++;
    r->last = events;
    r->all |= events;
}

/* Readable, writable, interest changes and both kinds of close on a pipe. */
static void test_io_pipe(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    int p[2];
    make_pipe(p);
    io_rec rd, wr;
    memset(&rd, 0, sizeof rd);
    memset(&wr, 0, sizeof wr);
    CHECK_RC(mmws__io_start(loop, &rd.io, p[0], MMWS__IO_READ, rec_cb, &rd),
             0);
    CHECK_EQ(rd.io.fd, p[0]);
    CHECK(rd.io.loop == loop);
    CHECK_RC(mmws__io_start(loop, &wr.io, p[1], MMWS__IO_WRITE, rec_cb, &wr),
             0);

    /* Only the write end is ready. */
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(rd.calls, 0);
    CHECK_EQ(wr.calls, 1);
    CHECK_EQ(wr.last, MMWS__IO_WRITE);

    /* Stop asking for writability; the read end becomes ready. */
    CHECK_RC(mmws__io_modify(&wr.io, 0), 0);
    CHECK_RC(mmws__io_modify(&wr.io, 0), 0);
    CHECK_EQ(wr.io.events, 0);
    put_byte(p[1]);
    CHECK_EQ(mmws_loop_run_once(loop, -1), 1);
    CHECK_EQ(rd.calls, 1);
    CHECK_EQ(rd.last, MMWS__IO_READ);
    CHECK_EQ(wr.calls, 1);

    /* Level-triggered: still readable until drained. */
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(rd.calls, 2);
    char c;
    CHECK_EQ(read(p[0], &c, 1), 1);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 0);
    CHECK_EQ(rd.calls, 2);

    /* Interest in both on the read end: only READ is ever ready. */
    CHECK_RC(mmws__io_modify(&rd.io, MMWS__IO_READ | MMWS__IO_WRITE), 0);
    CHECK_EQ(rd.io.events, MMWS__IO_READ | MMWS__IO_WRITE);
    put_byte(p[1]);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(rd.last, MMWS__IO_READ);

    /* Writer closes: the reader sees HUP as READ (EOF) and ERROR. */
    CHECK_EQ(read(p[0], &c, 1), 1);
    mmws__io_stop(&wr.io);
    CHECK_EQ(wr.io.fd, -1);
    CHECK(wr.io.loop == NULL);
    mmws__io_stop(&wr.io); /* twice is fine */
    close(p[1]);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(rd.last, MMWS__IO_READ | MMWS__IO_ERROR);
    CHECK_EQ(read(p[0], &c, 1), 0);

    /* modify on a stopped watcher fails without touching epoll. */
    mmws__io_stop(&rd.io);
    CHECK_RC(mmws__io_modify(&rd.io, MMWS__IO_READ), MMWS_ESYS);
    close(p[0]);

    /* Reader closes: the writer gets ERROR (EPOLLERR) with WRITE. */
    make_pipe(p);
    memset(&wr, 0, sizeof wr);
    CHECK_RC(mmws__io_start(loop, &wr.io, p[1], MMWS__IO_WRITE, rec_cb, &wr),
             0);
    close(p[0]);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK(wr.last & MMWS__IO_ERROR);
    CHECK(wr.last & MMWS__IO_WRITE);
    mmws__io_stop(&wr.io);
    close(p[1]);

    /* A bad fd fails with MMWS_ESYS and leaves the watcher stopped. */
    io_rec bad;
    memset(&bad, 0, sizeof bad);
    CHECK_RC(mmws__io_start(loop, &bad.io, 1 << 20, MMWS__IO_READ, rec_cb,
                            &bad), MMWS_ESYS);
    CHECK(bad.io.loop == NULL);
    mmws__io_stop(&bad.io);
    mmws_loop_free(loop);
}

/* Readiness, half-close and close on a socketpair. */
static void test_io_socketpair(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    io_rec a;
    memset(&a, 0, sizeof a);
    CHECK_RC(mmws__io_start(loop, &a.io, sv[0], MMWS__IO_READ | MMWS__IO_WRITE,
                            rec_cb, &a), 0);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(a.last, MMWS__IO_WRITE);
    CHECK_EQ(write(sv[1], "hi", 2), 2);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(a.last, MMWS__IO_READ | MMWS__IO_WRITE);
    char buf[8];
    CHECK_EQ(read(sv[0], buf, sizeof buf), 2);

    /* Starting the same watcher on the same fd again changes interest. */
    CHECK_RC(mmws__io_start(loop, &a.io, sv[0], MMWS__IO_READ, rec_cb, &a), 0);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 0);

    /* Peer half-close: READ (to read EOF), no ERROR yet. */
    CHECK_EQ(shutdown(sv[1], SHUT_WR), 0);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(a.last, MMWS__IO_READ);
    CHECK_EQ(read(sv[0], buf, sizeof buf), 0);

    /* Peer close: READ and ERROR (EPOLLHUP). */
    close(sv[1]);
    a.calls = 0;
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(a.last, MMWS__IO_READ | MMWS__IO_ERROR);
    mmws__io_stop(&a.io);
    close(sv[0]);

    /* A watcher with no interest still gets ERROR when the peer closes. */
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    memset(&a, 0, sizeof a);
    CHECK_RC(mmws__io_start(loop, &a.io, sv[0], 0, rec_cb, &a), 0);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 0);
    close(sv[1]);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(a.last, MMWS__IO_ERROR);
    mmws__io_stop(&a.io);
    close(sv[0]);
    mmws_loop_free(loop);
}

/*
 * The stale-event case. Two pipes are readable in one batch; whichever
 * watcher runs first stops the other, closes its fd, puts a new readable
 * pipe end at the same fd number and starts a watcher on it (a fresh one,
 * and the stopped one restarted). Neither may run in this batch.
 */
typedef struct stale_owner {
    mmws__io io;                    /* the watcher */
    int fd;                         /* its read end */
    int wfd;                        /* the matching write end */
    int calls;                      /* callbacks so far */
    struct stale_owner **pair;      /* the two original owners */
    struct stale_owner *fresh;      /* a third owner (new watcher) */
    int restart_same;               /* 1: restart the stopped watcher */
    int *first;                     /* index of the first to run, or -1 */
} stale_owner;

/* Counts calls of the watcher started on the reused fd number. */
static void stale_fresh_cb(mmws__io *io, unsigned events) {
    stale_owner *o = io->data;
    (void)events;
    o->calls++;
}

/* The first to run replaces the other's fd with a new one of the same
 * number, watched by a fresh or the restarted watcher. */
static void stale_cb(mmws__io *io, unsigned events) {
    stale_owner *o = io->data;
    (void)events;
    o->calls++;
    if (*o->first >= 0) return;
    int me = o == o->pair[0] ? 0 : 1;
    *o->first = me;
    stale_owner *other = o->pair[1 - me];
    int num = other->fd;
    mmws__io_stop(&other->io);
    close(other->fd);
    close(other->wfd);
    int p[2];
    make_pipe(p);
    put_byte(p[1]);
    /* pipe() usually hands out the freed number itself; else move it. */
    if (p[0] != num) {
        if (dup3(p[0], num, O_CLOEXEC) != num) {
            perror("dup3");
            exit(2);
        }
        close(p[0]);
    }
    stale_owner *target = o->restart_same ? other : o->fresh;
    target->fd = num;
    target->wfd = p[1];
    if (mmws__io_start(io->loop, &target->io, num, MMWS__IO_READ,
                       stale_fresh_cb, target) != 0) {
        perror("io_start");
        exit(2);
    }
    if (!o->restart_same) {
        /* A stale delivery to the freed owner would be caught by ASan. */
        o->pair[1 - me] = NULL;
        free(other);
    }
}

/* Runs the stale-event case; restart_same picks the restarted watcher. */
static void stale_case(int restart_same) {
    mmws_loop *loop = mmws_loop_new(NULL);
    stale_owner *pair[2];
    int first = -1;
    stale_owner *fresh = calloc(1, sizeof *fresh);
    for (int i = 0; i < 2; i++) {
        pair[i] = calloc(1, sizeof **pair);
        int p[2];
        make_pipe(p);
        pair[i]->fd = p[0];
        pair[i]->wfd = p[1];
        pair[i]->pair = pair;
        pair[i]->fresh = fresh;
        pair[i]->restart_same = restart_same;
        pair[i]->first = &first;
        CHECK_RC(mmws__io_start(loop, &pair[i]->io, p[0], MMWS__IO_READ,
                                stale_cb, pair[i]), 0);
        put_byte(p[1]);
    }
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK(first == 0 || first == 1);
    if (first < 0) first = 0;
    stale_owner *o = pair[first], *other = pair[1 - first];
    stale_owner *target = restart_same ? other : fresh;
    CHECK_EQ(o->calls, 1);
    CHECK_EQ(target->calls, 0);
    CHECK(restart_same ? other != NULL : other == NULL);
    /* The next iteration sees the new pipe, through the new watcher. */
    mmws__io_stop(&o->io);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(target->calls, 1);
    mmws__io_stop(&target->io);
    close(o->fd);
    close(o->wfd);
    close(target->fd);
    close(target->wfd);
    free(pair[0]);
    free(pair[1]);
    free(fresh);
    mmws_loop_free(loop);
}

/* The reused fd number gets a new watcher; the old owner is freed. */
static void test_io_stale_fresh_watcher(void) { stale_case(0); }
/* The stopped watcher itself is restarted on the reused fd number. */
static void test_io_stale_same_watcher(void) { stale_case(1); }

/* An owner of a watcher and a timer, freed from its own callbacks. */
typedef struct owner {
    mmws__io io;      /* read end of a pipe */
    mmws__timer t;    /* a timer that frees the owner too */
    int p[2];         /* the pipe */
    int *freed;       /* set when freed */
} owner;

/* Stops everything the owner has, closes its fds and frees it. */
static void owner_free(owner *o) {
    mmws__io_stop(&o->io);
    mmws__timer_stop(&o->t);
    close(o->p[0]);
    close(o->p[1]);
    (*o->freed)++;
    free(o);
}

/* Frees the owner from its watcher's callback. */
static void owner_io_cb(mmws__io *io, unsigned events) {
    (void)events;
    owner_free(io->data);
}

/* Frees the owner from its timer's callback. */
static void owner_timer_cb(mmws__timer *t) { owner_free(t->data); }

/* Also stops a watcher from a timer callback in the same iteration. */
static void test_free_owner_in_callback(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    int freed = 0;
    /* Freed by its io callback while its timer is still pending. */
    owner *a = calloc(1, sizeof *a);
    make_pipe(a->p);
    a->freed = &freed;
    mmws__timer_init(loop, &a->t, owner_timer_cb, a);
    mmws__timer_start(&a->t, 60000 * MS);
    mmws__io_start(loop, &a->io, a->p[0], MMWS__IO_READ, owner_io_cb, a);
    put_byte(a->p[1]);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(freed, 1);

    /* Freed by its timer while its fd has an event in the same batch. */
    owner *b = calloc(1, sizeof *b);
    make_pipe(b->p);
    b->freed = &freed;
    mmws__timer_init(loop, &b->t, owner_timer_cb, b);
    mmws__io_start(loop, &b->io, b->p[0], MMWS__IO_READ, owner_io_cb, b);
    put_byte(b->p[1]);
    mmws__timer_start(&b->t, 0);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_EQ(freed, 2);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 0);
    mmws_loop_free(loop);
}

/* Active watchers and timers at mmws_loop_free are detached, not broken. */
static void test_free_with_active(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    int p[2];
    make_pipe(p);
    io_rec r;
    memset(&r, 0, sizeof r);
    mmws__io_start(loop, &r.io, p[0], MMWS__IO_READ, rec_cb, &r);
    zero_timer z;
    memset(&z, 0, sizeof z);
    mmws__timer_init(loop, &z.t, zero_cb, &z);
    mmws__timer_start(&z.t, 1000 * MS);
    mmws_loop_free(loop);
    CHECK_EQ(r.io.fd, -1);
    CHECK(r.io.loop == NULL);
    CHECK(!mmws__timer_active(&z.t));
    mmws__io_stop(&r.io);
    mmws__timer_stop(&z.t);
    CHECK_RC(mmws__timer_start(&z.t, 0), MMWS_EINVAL);
    close(p[0]);
    close(p[1]);
}

/* A callback that tries to run the loop again from inside it. */
static int reentry_rc;
/* Tries to run an iteration from inside one. */
static void reentry_cb(mmws__timer *t) {
    reentry_rc = mmws_loop_run_once(t->loop, 0);
}

/* run_once inside a callback is refused with MMWS_ESTATE. */
static void test_reentry_refused(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws__timer t;
    mmws__timer_init(loop, &t, reentry_cb, NULL);
    mmws__timer_start(&t, 0);
    CHECK_EQ(mmws_loop_run_once(loop, 0), 1);
    CHECK_RC(reentry_rc, MMWS_ESTATE);
    mmws_loop_free(loop);
}

/* ----------------------------------------------------------- threads -- */

/* What a helper thread does to a loop after a pause. */
typedef struct poke {
    mmws_loop *loop; /* the loop */
    int stop;        /* 1: mmws_loop_stop, 0: mmws_loop_wake */
} poke;

/* Wakes or stops the loop after a pause. */
static void *poke_main(void *arg) {
    poke *p = arg;
    sleep_ms(50);
    if (p->stop)
        mmws_loop_stop(p->loop);
    else
        mmws_loop_wake(p->loop);
    return NULL;
}

/* Another thread ends a wait with no timeout and stops run(). */
static void test_wake_and_stop_from_thread(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    pthread_t th;
    poke pk = {loop, 0};
    CHECK_EQ(pthread_create(&th, NULL, poke_main, &pk), 0);
    /* Blocks with no timer and no watcher until woken. */
    CHECK_EQ(mmws_loop_run_once(loop, -1), 0);
    pthread_join(th, NULL);

    pk.stop = 1;
    CHECK_EQ(pthread_create(&th, NULL, poke_main, &pk), 0);
    CHECK_RC(mmws_loop_run(loop), 0);
    pthread_join(th, NULL);

    /* The stop flag is cleared: stop from a callback ends the next run. */
    mmws_loop_stop(loop);
    CHECK_RC(mmws_loop_run(loop), 0);
    mmws_loop_free(loop);
}

/* A timer that stops its loop on its third run. */
static void stopper_cb(mmws__timer *t) {
    int *n = t->data;
    if (++*n == 3)
        mmws_loop_stop(t->loop);
    else
        mmws__timer_start(t, 1 * MS);
}

/* mmws_loop_stop from a callback ends run() after that iteration. */
static void test_stop_from_callback(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    int n = 0;
    mmws__timer t;
    mmws__timer_init(loop, &t, stopper_cb, &n);
    mmws__timer_start(&t, 1 * MS);
    CHECK_RC(mmws_loop_run(loop), 0);
    CHECK_EQ(n, 3);
    mmws_loop_free(loop);
}

/* busy_poll: run_once never waits, whatever the timeout. */
static void test_busy_poll(void) {
    mmws_loop_config cfg;
    mmws_loop_config_default(&cfg);
    cfg.busy_poll = 1;
    mmws_loop *loop = mmws_loop_new(&cfg);
    /* Nothing ready, timeout -1: every call still returns at once. */
    int iters = 0;
    for (int i = 0; i < 1000; i++)
        if (mmws_loop_run_once(loop, -1) == 0) iters++;
    CHECK_EQ(iters, 1000);
    /* A timer is reached by polling, over more than one iteration. */
    zero_timer z;
    memset(&z, 0, sizeof z);
    mmws__timer_init(loop, &z.t, zero_cb, &z);
    mmws__timer_start(&z.t, 20 * MS);
    long spins = 0;
    while (z.runs == 0) {
        mmws_loop_run_once(loop, -1);
        spins++;
    }
    CHECK(spins > 1);
    mmws__timer_stop(&z.t);
    mmws_loop_free(loop);
}

/* One thread's private loop: timers and a pipe ping-pong. */
typedef struct worker {
    mmws_loop *loop;  /* created by the thread */
    mmws__timer t;    /* restarts itself until ticks reaches 200 */
    mmws__io rd;      /* read end watcher */
    int p[2];         /* the pipe */
    int ticks;        /* timer runs */
    int reads;        /* bytes read through the watcher */
    int ok;           /* 1 if the thread finished with the right counts */
} worker;

/* Writes a byte per tick and restarts until 200 ticks. */
static void worker_tick(mmws__timer *t) {
    worker *w = t->data;
    w->ticks++;
    put_byte(w->p[1]);
    if (w->ticks < 200) mmws__timer_start(t, 0);
}

/* Reads the bytes; stops the loop once all 200 arrived. */
static void worker_read(mmws__io *io, unsigned events) {
    worker *w = io->data;
    char buf[64];
    (void)events;
    ssize_t n = read(io->fd, buf, sizeof buf);
    if (n > 0) w->reads += (int)n;
    if (w->reads == 200) mmws_loop_stop(io->loop);
}

/* Creates, runs and frees a loop on this thread. */
static void *worker_main(void *arg) {
    worker *w = arg;
    w->loop = mmws_loop_new(NULL);
    if (!w->loop) return NULL;
    make_pipe(w->p);
    mmws__timer_init(w->loop, &w->t, worker_tick, w);
    mmws__timer_start(&w->t, 0);
    mmws__io_start(w->loop, &w->rd, w->p[0], MMWS__IO_READ, worker_read, w);
    int rc = mmws_loop_run(w->loop);
    w->ok = rc == 0 && w->ticks == 200 && w->reads == 200;
    mmws__io_stop(&w->rd);
    close(w->p[0]);
    close(w->p[1]);
    mmws_loop_free(w->loop);
    return NULL;
}

/* Two loops run at the same time on two threads. */
static void test_two_loops_two_threads(void) {
    worker w[2];
    pthread_t th[2];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(w[i].ok, 1);
        CHECK_EQ(w[i].ticks, 200);
        CHECK_EQ(w[i].reads, 200);
    }
}

/* Small batches: more ready fds than max_events all get delivered. */
static void test_small_batches(void) {
    mmws_loop_config cfg;
    mmws_loop_config_default(&cfg);
    cfg.max_events = 1;
    mmws_loop *loop = mmws_loop_new(&cfg);
    int p[3][2];
    io_rec r[3];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++) {
        make_pipe(p[i]);
        mmws__io_start(loop, &r[i].io, p[i][0], MMWS__IO_READ, rec_cb, &r[i]);
        put_byte(p[i][1]);
    }
    int total = 0;
    for (int i = 0; i < 3; i++) total += mmws_loop_run_once(loop, 0);
    CHECK_EQ(total, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(r[i].calls, 1);
        mmws__io_stop(&r[i].io);
        close(p[i][0]);
        close(p[i][1]);
    }
    mmws_loop_free(loop);
}

/* Counts its runs (data: an int). */
static void count_cb(mmws__timer *t) { (*(int *)t->data)++; }

/* Registration reserves a timer's room: far past the 16 reserved at loop
 * creation, every registered timer starts (and fires); a finished timer
 * is unregistered (starts refused, stops and a second fini harmless), and
 * its room is reused. */
static void test_timer_registration(void) {
    enum { N = 200 };
    mmws_loop *loop = mmws_loop_new(NULL);
    static mmws__timer ts[N];
    int runs = 0;
    mmws__timer orphan;
    CHECK_RC(mmws__timer_init(NULL, &orphan, count_cb, &runs), MMWS_EINVAL);
    CHECK_RC(mmws__timer_start(&orphan, 0), MMWS_EINVAL);
    for (int i = 0; i < N; i++)
        CHECK_RC(mmws__timer_init(loop, &ts[i], count_cb, &runs), 0);
    for (int i = 0; i < N; i++)
        CHECK_RC(mmws__timer_start(&ts[i], (uint64_t)(unsigned)(i % 7) * MS), 0);
    while (runs < N && mmws_loop_run_once(loop, 100) >= 0) {}
    CHECK_EQ(runs, N);
    for (int i = 0; i < N; i += 2) {
        CHECK_RC(mmws__timer_start(&ts[i], 50 * MS), 0);
        mmws__timer_fini(&ts[i]);       /* stops it too */
        CHECK(!mmws__timer_active(&ts[i]));
        CHECK_RC(mmws__timer_start(&ts[i], 0), MMWS_EINVAL);
        mmws__timer_stop(&ts[i]);
        mmws__timer_fini(&ts[i]);
    }
    for (int i = 0; i < N; i += 2) /* room given back is taken again */
        CHECK_RC(mmws__timer_init(loop, &ts[i], count_cb, &runs), 0);
    runs = 0;
    for (int i = 0; i < N; i++) CHECK_RC(mmws__timer_start(&ts[i], 0), 0);
    while (runs < N && mmws_loop_run_once(loop, 100) >= 0) {}
    CHECK_EQ(runs, N);
    for (int i = 0; i < N; i++) mmws__timer_fini(&ts[i]);
    mmws_loop_free(loop);
}

/* Runs every case; the alarm turns a hang into a failure. */
int main(void) {
    alarm(120);
    RUN(test_config);
    RUN(test_timer_order);
    RUN(test_timer_stop_restart);
    RUN(test_timer_zero_restart);
    RUN(test_timer_free_in_callback);
    RUN(test_timer_heap_random);
    RUN(test_timer_registration);
    RUN(test_io_pipe);
    RUN(test_io_socketpair);
    RUN(test_io_stale_fresh_watcher);
    RUN(test_io_stale_same_watcher);
    RUN(test_free_owner_in_callback);
    RUN(test_free_with_active);
    RUN(test_reentry_refused);
    RUN(test_wake_and_stop_from_thread);
    RUN(test_stop_from_callback);
    RUN(test_busy_poll);
    RUN(test_two_loops_two_threads);
    RUN(test_small_batches);
    return TEST_END("test_loop");
}
