/*
 * test_thread.c — threaded mode (issue 5 §3): the loop on an I/O thread,
 * messages handed to the consumer through the lock-free SPSC ring.
 *
 *  - the hand-off ring alone, two threads, millions of messages of mixed
 *    sizes under both policies: every message arrives whole and in order,
 *    and inserted = consumed + dropped exactly;
 *  - a consumer that sleeps (MMWS_STALL_MS, default 60000: a minute) while
 *    the servers, in heartbeat mode, ping every 500 ms and disconnect a
 *    client that does not answer: after the stall the connection is the
 *    same one (the servers count connections), the ring kept the newest
 *    (OVERWRITE_OLDEST) or the oldest (REJECT_NEWEST) messages by their
 *    sequence numbers, and every other message is counted as dropped;
 *  - a pool on its own thread against the simulator: ids without gaps,
 *    the state and stats snapshots, refusals of loop-thread calls;
 *  - spin and poll waiting, CPU pinning, sends queued from the consumer,
 *    bad thread configs, a single closed for good.
 *
 * Runs under ASan+UBSan in `make test`, and under TSan (scripts/test.sh
 * builds build/tsan and runs this test there, MMWS_STALL_MS=3000).
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "harness.h"
#include "ring/spsc_internal.h"
#include "sim.h"
#include "test.h"

#define WAIT_UNTIL(cond, ms)                                              \
    do {                                                                  \
        long long t_end_ = th_now_ms() + (ms);                            \
        while (!(cond) && th_now_ms() < t_end_) th_sleep_ms(5);           \
        CHECK(cond);                                                      \
    } while (0)

/* ------------------------------------------------- the SPSC ring alone -- */

/* Message i: 8 bytes of i, then bytes derived from i; its length varies
 * from 8 to 8 + 600, and every 97th is large (to wrap the arena often). */
static size_t msg_len(uint64_t i) {
    return 8 + (i % 97 == 0 ? 20000 : (size_t)((i * 2654435761u) % 600));
}
static uint8_t msg_byte(uint64_t i, size_t k) {
    return (uint8_t)(i * 31 + k * 7);
}

typedef struct spsc_run {
    mmws__spsc *q;
    uint64_t n;                 /* messages the producer offers */
    _Atomic int done;
    uint64_t stored, refused;   /* push results */
} spsc_run;

static void *producer(void *arg) {
    spsc_run *r = arg;
    uint8_t *buf = malloc(8 + 20000);
    for (uint64_t i = 1; i <= r->n; i++) {
        size_t len = msg_len(i);
        memcpy(buf, &i, 8);
        for (size_t k = 8; k < len; k++) buf[k] = msg_byte(i, k);
        mmws_msg m = {buf, len, MMWS_OP_BINARY, i, 7, i};
        if (mmws__spsc_push(r->q, &m) == 0)
            r->stored++;
        else
            r->refused++;
    }
    free(buf);
    atomic_store(&r->done, 1);
    mmws__spsc_wake(r->q);
    return NULL;
}

/* One run: a producer thread offers n messages; this thread consumes,
 * pausing now and then (slow_every) so the ring overflows. */
static void spsc_case(mmws_ring_policy policy, int block, int spin,
                      uint64_t n, unsigned slow_every) {
    mmws_ring_config rc;
    mmws_ring_config_default(&rc);
    rc.capacity = 256;
    rc.arena_bytes = 64 * 1024;
    rc.policy = policy;
    spsc_run r = {0};
    r.n = n;
    atomic_init(&r.done, 0);
    CHECK_RC(mmws__spsc_new(&rc, block, &r.q), 0);
    if (!r.q) return;
    pthread_t th;
    pthread_create(&th, NULL, producer, &r);
    uint64_t got = 0, last = 0, bad = 0, order = 0, meta = 0;
    mmws_msg m;
    for (;;) {
        int rc2 = mmws__spsc_pop(r.q, &m);
        if (rc2 == MMWS_EINCOMPLETE) {
            if (atomic_load(&r.done) && mmws__spsc_size(r.q) == 0) break;
            mmws__spsc_wait(r.q, spin, mmws_now_ns() + 100000000ull, &r.done);
            continue;
        }
        if (rc2 != 0) {
            bad++;
            break;
        }
        uint64_t i;
        memcpy(&i, m.data, 8);
        if (i <= last) order++;
        last = i;
        if (m.len != msg_len(i) || m.seq != i || m.recv_ns != i ||
            m.conn_id != 7 || m.opcode != MMWS_OP_BINARY)
            meta++;
        for (size_t k = 8; k < m.len; k++)
            if (m.data[k] != msg_byte(i, k)) {
                bad++;
                break;
            }
        got++;
        if (slow_every && got % slow_every == 0) th_sleep_ms(1);
    }
    pthread_join(th, NULL);
    mmws_ring_stats st;
    mmws__spsc_stats(r.q, &st);
    CHECK_EQ(bad, 0);
    CHECK_EQ(order, 0);
    CHECK_EQ(meta, 0);
    CHECK_EQ(st.consumed, got);
    CHECK_EQ(st.inserted, r.stored);
    CHECK_EQ(r.stored + r.refused, n);
    CHECK_EQ(st.dropped_newest, r.refused);
    CHECK_EQ(st.inserted, st.consumed + st.dropped_oldest);
    if (policy == MMWS_RING_REJECT_NEWEST) CHECK_EQ(st.dropped_oldest, 0);
    if (slow_every) CHECK(st.dropped_oldest + st.dropped_newest > 0);
    /* The newest message is kept, unless the producer gave up waiting
     * for the consumer's copy (counted in refused). */
    if (policy == MMWS_RING_OVERWRITE_OLDEST) CHECK(last == n || r.refused);
    printf("  spsc policy=%d block=%d spin=%d: %llu offered, %llu consumed, "
           "%llu dropped oldest, %llu dropped newest\n", (int)policy, block,
           spin, (unsigned long long)n, (unsigned long long)got,
           (unsigned long long)st.dropped_oldest,
           (unsigned long long)st.dropped_newest);
    mmws__spsc_free(r.q);
}

static void spsc_fast_consumer(void) {
    spsc_case(MMWS_RING_OVERWRITE_OLDEST, 1, 0, 300000, 0);
    spsc_case(MMWS_RING_OVERWRITE_OLDEST, 0, 1, 300000, 0);
}

static void spsc_slow_consumer(void) {
    spsc_case(MMWS_RING_OVERWRITE_OLDEST, 1, 0, 200000, 500);
    spsc_case(MMWS_RING_REJECT_NEWEST, 1, 0, 200000, 500);
    spsc_case(MMWS_RING_OVERWRITE_OLDEST, 0, 1, 200000, 500);
}

static void spsc_edges(void) {
    mmws_ring_config rc;
    mmws_ring_config_default(&rc);
    rc.capacity = 4;
    rc.arena_bytes = 100;
    mmws__spsc *q = NULL;
    CHECK_RC(mmws__spsc_new(&rc, 1, &q), 0);
    if (!q) return;
    uint8_t big[101] = {0};
    mmws_msg m = {big, 101, MMWS_OP_TEXT, 0, 0, 0};
    CHECK_RC(mmws__spsc_push(q, &m), MMWS_ETOOBIG);
    m.len = 100; /* exactly the arena */
    CHECK_RC(mmws__spsc_push(q, &m), 0);
    m.len = 0;   /* nothing: fits beside them */
    CHECK_RC(mmws__spsc_push(q, &m), 0);
    m.len = 1;   /* pushes the 100 bytes out */
    CHECK_RC(mmws__spsc_push(q, &m), 0);
    mmws_msg o;
    CHECK_RC(mmws__spsc_pop(q, &o), 0);
    CHECK_EQ(o.len, 0);
    CHECK(o.data != NULL);
    CHECK_RC(mmws__spsc_pop(q, &o), 0);
    CHECK_EQ(o.len, 1);
    CHECK_RC(mmws__spsc_pop(q, &o), MMWS_EINCOMPLETE);
    mmws_ring_stats st;
    mmws__spsc_stats(q, &st);
    CHECK_EQ(st.dropped_newest, 1);
    CHECK_EQ(st.dropped_oldest, 1);
    /* A wait with nothing coming ends at its deadline. */
    CHECK_EQ(mmws__spsc_wait(q, 0, mmws_now_ns() + 20000000ull, NULL), 0);
    CHECK_EQ(mmws__spsc_wait(q, 1, mmws_now_ns() + 20000000ull, NULL), 0);
    mmws__spsc_free(q);
    rc.capacity = 0;
    q = NULL;
    CHECK_RC(mmws__spsc_new(&rc, 1, &q), MMWS_ECONFIG);
    CHECK(strstr(mmws_last_error(), "capacity") != NULL);
}

/* -------------------------------------------- against real servers -- */

static void conn_cfg(mmws_conn_config *cfg, char *url, size_t len, int port) {
    snprintf(url, len, "ws://127.0.0.1:%d/", port);
    mmws_conn_config_default(cfg, url);
    cfg->allow_plaintext = 1;
    cfg->backoff_base_ms = 1;
    cfg->backoff_cap_ms = 10;
    cfg->latency_ping_interval_ms = 1000;
}

/* Reads {"connections":N,...} from a count reply; -1 if not one. */
static long count_connections(const mmws_msg *m) {
    const char *p = memmem(m->data, m->len, "\"connections\":", 14);
    if (!p) return -1;
    /* The view is not NUL-terminated: digits only, by hand. */
    const char *end = (const char *)m->data + m->len;
    long n = 0;
    for (p += 14; p < end && *p >= '0' && *p <= '9'; p++) n = n * 10 + (*p - '0');
    return n;
}

/* Asks the server how many connections it has accepted (the reply comes
 * through the hand-off, after whatever is still queued there). */
static long server_connections(mmws_single *s) {
    static const char cmd[] = "#{\"cmd\":\"count\"}";
    if (mmws_single_send_data(s, cmd, sizeof cmd - 1) != 0) return -2;
    mmws_msg m;
    long long end = th_now_ms() + 15000;
    while (th_now_ms() < end) {
        if (mmws_single_next(s, &m, 1000) != 0) continue;
        long n = count_connections(&m);
        if (n >= 0) return n;
    }
    return -3;
}

typedef struct stalled {
    const char *kind;
    mmws_ring_policy policy;
    th_server srv;
    mmws_loop *loop;
    mmws_single *s;
    char url[64];
} stalled;

#define FLOOD 20000u   /* messages sent while the consumer sleeps */
#define CAP 1024u      /* the hand-off ring's capacity */

static int stalled_start(stalled *t) {
    if (th_server_start(&t->srv, t->kind, "heartbeat:500", NULL, NULL) != 0) {
        CHECK_FAIL("server start");
        return -1;
    }
    t->loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    conn_cfg(&cfg, t->url, sizeof t->url, t->srv.port);
    mmws_ring_config rc;
    mmws_ring_config_default(&rc);
    rc.capacity = CAP;
    rc.policy = t->policy;
    CHECK_RC(mmws_single_new(t->loop, &cfg, &rc, NULL, NULL, &t->s), 0);
    if (!t->s) return -1;
    mmws_thread_config tc;
    mmws_thread_config_default(&tc);
    CHECK_RC(mmws_single_start_thread(t->s, &tc), 0);
    WAIT_UNTIL(mmws_single_get_state(t->s) == MMWS_CONNECTED, 15000);
    char cmd[128];
    int n = snprintf(cmd, sizeof cmd,
                     "#{\"cmd\":\"send\",\"count\":%u,\"size\":100}", FLOOD);
    CHECK_RC(mmws_single_send_data(t->s, cmd, (size_t)n), 0);
    return 0;
}

static void stalled_check(stalled *t) {
    /* Whatever the I/O thread could not hand over is counted; the ring
     * holds the newest (overwrite) or the oldest (reject) messages. */
    mmws_thread_stats ts;
    WAIT_UNTIL(mmws_single_thread_stats(t->s, &ts) == 0 &&
                   ts.handoff.inserted + ts.handoff.dropped_newest >= FLOOD,
               30000);
    CHECK_EQ(mmws_single_get_state(t->s), MMWS_CONNECTED);
    mmws_msg m;
    uint64_t first = 0, last = 0, got = 0, wrong = 0;
    while (mmws_single_next(t->s, &m, 0) == 0) {
        if (m.len != 100) wrong++;
        if (!first) first = m.seq;
        last = m.seq;
        got++;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(got, CAP);
    CHECK_EQ(mmws_single_thread_stats(t->s, &ts), 0);
    CHECK_EQ(ts.handoff.consumed, got);
    CHECK_EQ(ts.handoff.dropped_oldest + ts.handoff.dropped_newest,
             FLOOD - CAP);
    CHECK_EQ(ts.sends_queued, 1);
    CHECK_EQ(ts.sends_done, 1);
    if (t->policy == MMWS_RING_OVERWRITE_OLDEST) {
        CHECK_EQ(first, FLOOD - CAP + 1);
        CHECK_EQ(last, FLOOD);
        CHECK_EQ(ts.handoff.dropped_oldest, FLOOD - CAP);
    } else {
        CHECK_EQ(first, 1);
        CHECK_EQ(last, CAP);
        CHECK_EQ(ts.handoff.dropped_newest, FLOOD - CAP);
    }
    /* The heartbeat never cut it: still the first connection. */
    CHECK_EQ(server_connections(t->s), 1);
    CHECK_EQ(mmws_single_get_state(t->s), MMWS_CONNECTED);
    printf("  %s %s: after the stall %llu kept (seq %llu..%llu), %llu "
           "dropped, one connection throughout\n", t->kind,
           t->policy == MMWS_RING_OVERWRITE_OLDEST ? "overwrite" : "reject",
           (unsigned long long)got, (unsigned long long)first,
           (unsigned long long)last,
           (unsigned long long)(ts.handoff.dropped_oldest +
                                ts.handoff.dropped_newest));
}

static void stalled_free(stalled *t) {
    mmws_single_free(t->s);
    mmws_loop_free(t->loop);
    th_server_stop(&t->srv);
}

/* Both servers and both policies at once, through one stall. */
static void consumer_stalls(void) {
    const char *env = getenv("MMWS_STALL_MS");
    long stall = env && *env ? atol(env) : 60000;
    stalled t[3];
    memset(t, 0, sizeof t);
    t[0].kind = "python";
    t[0].policy = MMWS_RING_OVERWRITE_OLDEST;
    t[1].kind = "node";
    t[1].policy = MMWS_RING_REJECT_NEWEST;
    t[2].kind = "node";
    t[2].policy = MMWS_RING_OVERWRITE_OLDEST;
    int ok = 1;
    for (int i = 0; i < 3; i++)
        if (stalled_start(&t[i]) != 0) ok = 0;
    if (ok) {
        printf("  consumer sleeps %ld ms (servers ping every 500 ms)\n",
               stall);
        th_sleep_ms(stall);
        for (int i = 0; i < 3; i++) stalled_check(&t[i]);
    }
    for (int i = 0; i < 3; i++) stalled_free(&t[i]);
}

static void on_message(void *user, const mmws_msg *m) {
    (void)user;
    (void)m;
}

/* Spin and poll waiting, queued sends, refusals, closing for good. */
static void single_modes(void) {
    th_server srv;
    if (th_server_start(&srv, "node", NULL, NULL, NULL) != 0) {
        CHECK_FAIL("server start");
        return;
    }
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    char url[64];
    conn_cfg(&cfg, url, sizeof url, srv.port);
    cfg.auto_reconnect = 0;
    mmws_single *s = NULL;

    /* Callback mode cannot be threaded. */
    CHECK_RC(mmws_single_new(loop, &cfg, NULL, on_message, NULL, &s), 0);
    CHECK_RC(mmws_single_start_thread(s, NULL), MMWS_ESTATE);
    CHECK(strstr(mmws_last_error(), "iteration mode") != NULL);
    mmws_single_free(s);

    CHECK_RC(mmws_single_new(loop, &cfg, NULL, NULL, NULL, &s), 0);
    mmws_thread_config tc;
    mmws_thread_config_default(&tc);
    tc.cpu = CPU_SETSIZE + 5;
    CHECK_RC(mmws_single_start_thread(s, &tc), MMWS_ECONFIG);
    CHECK(strstr(mmws_last_error(), "cpu") != NULL);
    mmws_thread_config_default(&tc);
    tc.send_queue_bytes = 0;
    CHECK_RC(mmws_single_start_thread(s, &tc), MMWS_ECONFIG);
    CHECK(strstr(mmws_last_error(), "send_queue_bytes") != NULL);
    mmws_thread_config_default(&tc);
    tc.wait = (mmws_wait_mode)7;
    CHECK_RC(mmws_single_start_thread(s, &tc), MMWS_ECONFIG);
    CHECK(strstr(mmws_last_error(), "wait") != NULL);

    mmws_thread_config_default(&tc);
    tc.wait = MMWS_WAIT_SPIN;
    tc.send_queue_bytes = 4096;
    CHECK_RC(mmws_single_start_thread(s, &tc), 0);
    CHECK_RC(mmws_single_start_thread(s, &tc), MMWS_ESTATE);
    CHECK(mmws_single_conn(s) == NULL);
    CHECK(mmws_single_ring(s) == NULL);
    CHECK_RC(mmws_single_set_on_connect(s, NULL, 0), MMWS_ESTATE);
    CHECK(strstr(mmws_last_error(), "threaded mode") != NULL);
    WAIT_UNTIL(mmws_single_get_state(s) == MMWS_CONNECTED, 15000);

    mmws_msg m;
    CHECK_RC(mmws_single_next(s, &m, 0), MMWS_ETIMEDOUT);   /* poll */
    CHECK_RC(mmws_single_next(s, &m, 30), MMWS_ETIMEDOUT);  /* spin */
    static uint8_t big[5000];
    memset(big, 'a', sizeof big);
    CHECK_RC(mmws_single_send_data(s, big, sizeof big), MMWS_ETOOBIG);
    CHECK(strstr(mmws_last_error(), "send_queue_bytes") != NULL);
    CHECK_RC(mmws_single_send_data(s, "\xff", 1), MMWS_EUTF8);
    /* Echoes come back in order. */
    for (int i = 0; i < 100; i++) {
        char b[16];
        int n = snprintf(b, sizeof b, "m%d", i);
        CHECK_RC(mmws_single_send_data(s, b, (size_t)n), 0);
    }
    int in_order = 0;
    for (int i = 0; i < 100; i++) {
        char b[16];
        int n = snprintf(b, sizeof b, "m%d", i);
        if (mmws_single_next(s, &m, 10000) == 0 && m.len == (size_t)n &&
            memcmp(m.data, b, (size_t)n) == 0)
            in_order++;
    }
    CHECK_EQ(in_order, 100);

    /* The server closes; without auto_reconnect the I/O thread ends, the
     * consumer gets what was left, then MMWS_ESTATE. */
    static const char close_cmd[] = "#{\"cmd\":\"close\",\"code\":1001}";
    CHECK_RC(mmws_single_send_data(s, "last", 4), 0);
    CHECK_RC(mmws_single_send_data(s, close_cmd, sizeof close_cmd - 1), 0);
    CHECK_RC(mmws_single_next(s, &m, 10000), 0);
    CHECK_MEM(m.data, m.len, "last", 4);
    CHECK_RC(mmws_single_next(s, &m, 10000), MMWS_ESTATE);
    CHECK_RC(mmws_single_send_data(s, "x", 1), MMWS_ENOTCONN);
    CHECK_EQ(mmws_single_get_state(s), MMWS_DISCONNECTED);
    mmws_single_free(s);
    mmws_loop_free(loop);
    th_server_stop(&srv);
}

/* The I/O thread pinned: exactly one thread of the process has the
 * one-CPU mask. */
static int threads_pinned_to(int cpu) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    struct dirent *e;
    int n = 0;
    char want[32];
    snprintf(want, sizeof want, "%d", cpu);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
                char *v = line + 18;
                while (*v == ' ' || *v == '\t') v++;
                v[strcspn(v, "\n")] = 0;
                if (strcmp(v, want) == 0) n++;
            }
        fclose(f);
    }
    closedir(d);
    return n;
}

static void pinned(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2) {
        printf("  pinning: skipped, this process may use fewer than 2 CPUs "
               "(a pinned thread cannot be told apart)\n");
        return;
    }
    int cpu = 0;
    while (!CPU_ISSET((size_t)cpu, &set)) cpu++;
    th_server srv;
    if (th_server_start(&srv, "python", NULL, NULL, NULL) != 0) {
        CHECK_FAIL("server start");
        return;
    }
    int before = threads_pinned_to(cpu);
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    char url[64];
    conn_cfg(&cfg, url, sizeof url, srv.port);
    mmws_single *s = NULL;
    CHECK_RC(mmws_single_new(loop, &cfg, NULL, NULL, NULL, &s), 0);
    mmws_thread_config tc;
    mmws_thread_config_default(&tc);
    tc.cpu = cpu;
    CHECK_RC(mmws_single_start_thread(s, &tc), 0);
    CHECK_EQ(threads_pinned_to(cpu), before + 1);
    WAIT_UNTIL(mmws_single_get_state(s) == MMWS_CONNECTED, 15000);
    CHECK_RC(mmws_single_send_data(s, "pinned", 6), 0);
    mmws_msg m;
    CHECK_RC(mmws_single_next(s, &m, 10000), 0);
    CHECK_MEM(m.data, m.len, "pinned", 6);
    mmws_single_free(s);
    CHECK_EQ(threads_pinned_to(cpu), before);
    mmws_loop_free(loop);
    th_server_stop(&srv);
}

/* A pool of 3 on its own thread against the simulator: every id once and
 * in order while the consumer keeps up; snapshots; refusals; a short
 * stall whose drops the stats count. */
static void pool_threaded(void) {
    simproc sp;
    const char *args[] = {"--rate", "2000", NULL};
    if (sim_start(&sp, args) != 0) {
        CHECK_FAIL("mmws-sim start");
        return;
    }
    mmws_loop *loop = mmws_loop_new(NULL);
    static const char *subs[] = {
        "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@bookTicker\"],"
        "\"id\":1}"};
    char url[96];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws/btcusdt@bookTicker",
             sp.port);
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    cfg.allow_plaintext = 1;
    cfg.on_connect = subs;
    cfg.on_connect_count = 1;
    cfg.latency_ping_interval_ms = 100;
    mmws_pool_config pc;
    mmws_pool_config_default(&pc);
    pc.num_connections = 3;
    pc.ring.capacity = 64;
    mmws_pool *p = NULL;
    CHECK_RC(mmws_pool_new(loop, &cfg, &pc, NULL, NULL, &p), 0);
    if (!p) goto out;
    mmws_thread_config tc;
    mmws_thread_config_default(&tc);
    tc.snapshot_interval_ms = 10;
    CHECK_RC(mmws_pool_start_thread(p, &tc), 0);
    WAIT_UNTIL(mmws_pool_connected_count(p) == 3, 15000);
    CHECK_EQ(mmws_pool_size(p), 3);
    CHECK_EQ(mmws_pool_get_state(p), MMWS_CONNECTED);
    mmws_pool_conn_info info;
    CHECK_RC(mmws_pool_conn_info_get(p, 0, &info), MMWS_ESTATE);

    uint64_t next_u = 0, gaps = 0, delivered = 0;
    mmws_msg m;
    long long end = th_now_ms() + 2000;
    while (th_now_ms() < end) {
        if (mmws_pool_next(p, &m, 100) != 0) continue;
        const char *u = memmem(m.data, m.len, "\"u\":", 4);
        if (!u) continue;
        uint64_t v = strtoull(u + 4, NULL, 10);
        if (next_u && v != next_u) gaps++;
        next_u = v + 1;
        delivered++;
    }
    CHECK(delivered > 100);
    CHECK_EQ(gaps, 0);
    /* The sim answers the SUBSCRIBE: a routed send reaches it. */
    CHECK_RC(mmws_pool_send_data(p, "{\"method\":\"LIST_SUBSCRIPTIONS\","
             "\"id\":9}", 39, 1), 0);

    th_sleep_ms(500); /* a short stall: 2000/s into 64 slots */
    mmws_thread_stats ts;
    CHECK_RC(mmws_pool_thread_stats(p, &ts), 0);
    CHECK(ts.handoff.dropped_oldest > 0);
    WAIT_UNTIL(mmws_pool_thread_stats(p, &ts) == 0 &&
                   ts.sends_done + ts.sends_failed == 1, 5000);
    CHECK_EQ(ts.sends_done, 1);
    mmws_pool_stats st;
    mmws_pool_stats_get(p, &st);
    CHECK(st.delivered >= delivered);
    CHECK(st.ring_dropped >= ts.handoff.dropped_oldest);
    mmws_pool_free(p); /* joins the I/O thread */
out:
    mmws_loop_free(loop);
    sim_stop(&sp);
}

int main(void) {
    if (th_require_servers("node") <= 0 || th_require_servers("python") <= 0)
        return getenv("MMWS_ALLOW_SKIP") ? 0 : 1;
    int fds = th_fd_count();
    RUN(spsc_edges);
    RUN(spsc_fast_consumer);
    RUN(spsc_slow_consumer);
    RUN(single_modes);
    RUN(pinned);
    RUN(pool_threaded);
    RUN(consumer_stalls);
    CHECK_EQ(th_fd_count(), fds);
    return TEST_END("test_thread");
}
