/*
 * bench_handoff.c — threaded mode's hand-off (ring/spsc.c) between the I/O
 * thread and the consumer, against the obvious baseline measured in the
 * same run: the same messages through an mmws_ring guarded by a pthread
 * mutex and condition variable.
 *
 *  - throughput: one producer thread, one consumer thread, 200-byte
 *    messages, lossless (a full ring makes the producer retry);
 *  - round trip: two threads bounce one message through two queues
 *    (median of 200k round trips), consumer waiting in spin mode for the
 *    SPSC ring, on the condition variable for the baseline.
 */
#include <pthread.h>
#include <stdatomic.h>

#include <mmws/mmws.h>

#include "bench.h"
#include "ring/spsc_internal.h"

#define MSG 200
#define N_MSGS 2000000ull
#define RTTS 200000

/* ------------------------------------------------ the mutex baseline -- */

typedef struct mq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mmws_ring *r;
    uint8_t *buf; /* the consumer's copy, as the SPSC ring does */
} mq;

static void mq_init(mq *q) {
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    mmws_ring_config rc;
    mmws_ring_config_default(&rc);
    rc.capacity = 4096;
    rc.policy = MMWS_RING_REJECT_NEWEST;
    if (mmws_ring_new(&rc, &q->r) != 0) exit(1);
    q->buf = malloc(65536);
}

static void mq_free(mq *q) {
    mmws_ring_free(q->r);
    free(q->buf);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

static void mq_push(mq *q, const mmws_msg *m) {
    for (;;) {
        pthread_mutex_lock(&q->mu);
        int rc = mmws_ring_insert(q->r, m);
        pthread_mutex_unlock(&q->mu);
        if (rc == 0) break;
    }
    pthread_cond_signal(&q->cv);
}

static void mq_pop(mq *q, mmws_msg *out) {
    pthread_mutex_lock(&q->mu);
    while (mmws_ring_consume(q->r, out) != 0) pthread_cond_wait(&q->cv, &q->mu);
    memcpy(q->buf, out->data, out->len);
    out->data = q->buf;
    pthread_mutex_unlock(&q->mu);
}

/* ---------------------------------------------------------- the SPSC -- */

static mmws__spsc *spsc_make(void) {
    mmws_ring_config rc;
    mmws_ring_config_default(&rc);
    rc.capacity = 4096;
    rc.policy = MMWS_RING_REJECT_NEWEST;
    mmws__spsc *q;
    if (mmws__spsc_new(&rc, 0, &q) != 0) exit(1);
    return q;
}

static void spsc_push(mmws__spsc *q, const mmws_msg *m) {
    while (mmws__spsc_push(q, m) != 0) {
    }
}

static void spsc_pop(mmws__spsc *q, mmws_msg *out) {
    while (mmws__spsc_pop(q, out) != 0)
        mmws__spsc_wait(q, 1, UINT64_MAX, NULL);
}

/* -------------------------------------------------------- throughput -- */

typedef struct tp {
    int spsc;
    mmws__spsc *s;
    mq m;
} tp;

static void *tp_producer(void *arg) {
    tp *t = arg;
    uint8_t payload[MSG];
    memset(payload, 'x', sizeof payload);
    mmws_msg m = {payload, MSG, MMWS_OP_TEXT, 0, 1, 0};
    for (uint64_t i = 0; i < N_MSGS; i++) {
        m.seq = i;
        if (t->spsc)
            spsc_push(t->s, &m);
        else
            mq_push(&t->m, &m);
    }
    return NULL;
}

static double throughput(int spsc) {
    tp t;
    memset(&t, 0, sizeof t);
    t.spsc = spsc;
    if (spsc)
        t.s = spsc_make();
    else
        mq_init(&t.m);
    pthread_t th;
    uint64_t t0 = bench_now_ns();
    pthread_create(&th, NULL, tp_producer, &t);
    mmws_msg m;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < N_MSGS; i++) {
        if (spsc)
            spsc_pop(t.s, &m);
        else
            mq_pop(&t.m, &m);
        sum += m.seq + m.data[0];
    }
    uint64_t t1 = bench_now_ns();
    pthread_join(th, NULL);
    bench_clobber(&sum);
    if (spsc)
        mmws__spsc_free(t.s);
    else
        mq_free(&t.m);
    return (double)N_MSGS / ((double)(t1 - t0) / 1e9);
}

/* -------------------------------------------------------- round trip -- */

typedef struct rt {
    int spsc;
    mmws__spsc *a, *b; /* there and back */
    mq ma, mb;
} rt;

static void *rt_echo(void *arg) {
    rt *t = arg;
    mmws_msg m;
    for (int i = 0; i < RTTS; i++) {
        if (t->spsc) {
            spsc_pop(t->a, &m);
            spsc_push(t->b, &m);
        } else {
            mq_pop(&t->ma, &m);
            mq_push(&t->mb, &m);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double round_trip(int spsc) {
    rt t;
    memset(&t, 0, sizeof t);
    t.spsc = spsc;
    if (spsc) {
        t.a = spsc_make();
        t.b = spsc_make();
    } else {
        mq_init(&t.ma);
        mq_init(&t.mb);
    }
    uint64_t *lat = malloc(RTTS * sizeof *lat);
    pthread_t th;
    pthread_create(&th, NULL, rt_echo, &t);
    uint8_t payload[64] = {0};
    mmws_msg m = {payload, sizeof payload, MMWS_OP_TEXT, 0, 1, 0}, back;
    for (int i = 0; i < RTTS; i++) {
        uint64_t t0 = bench_now_ns();
        if (spsc) {
            spsc_push(t.a, &m);
            spsc_pop(t.b, &back);
        } else {
            mq_push(&t.ma, &m);
            mq_pop(&t.mb, &back);
        }
        lat[i] = bench_now_ns() - t0;
    }
    pthread_join(th, NULL);
    qsort(lat, RTTS, sizeof *lat, cmp_u64);
    double med = (double)lat[RTTS / 2];
    free(lat);
    if (spsc) {
        mmws__spsc_free(t.a);
        mmws__spsc_free(t.b);
    } else {
        mq_free(&t.ma);
        mq_free(&t.mb);
    }
    return med;
}

int main(void) {
    double best_s = 0, best_m = 0;
    for (int r = 0; r < 3; r++) {
        double s = throughput(1), m = throughput(0);
        if (s > best_s) best_s = s;
        if (m > best_m) best_m = m;
    }
    printf("hand-off throughput, %d B messages   spsc %6.2f M msg/s   "
           "mutex+condvar ring %6.2f M msg/s   ratio %5.2fx\n", MSG,
           best_s / 1e6, best_m / 1e6, best_s / best_m);
    double rs = round_trip(1), rm = round_trip(0);
    printf("hand-off round trip (median)          spsc %7.0f ns        "
           "mutex+condvar ring %7.0f ns        ratio %5.2fx (lower is "
           "better)\n", rs, rm, rs / rm);
    return 0;
}
