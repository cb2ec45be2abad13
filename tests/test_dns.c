/*
 * test_dns.c — the c-ares resolver against a tiny DNS responder started
 * by the test on 127.0.0.1, so no packet ever leaves loopback and the
 * system's resolvers are never asked: every query that reaches c-ares
 * names the responder in opt.servers.
 *
 * The responder answers:
 *   a.test     A 127.0.0.1 (AAAA: no data)
 *   dual.test  A 127.0.0.1 and AAAA ::1
 *   many.test  A 127.0.0.1, 127.0.0.2, 127.0.0.3 (AAAA: no data)
 *   slow.test  never
 *   other      NXDOMAIN
 *
 * No check depends on how long anything took; alarm() turns a hang into a
 * failure.
 */
#include "test.h"

#include <ares.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "net/dns.h"

#include "dns_responder.h"

/* ---------------------------------------------------------- helpers -- */

/* One query's outcome as the callback saw it. */
typedef struct result {
    int calls;                 /* times the callback ran */
    int rc;                    /* its rc */
    mmws__addrs addrs;         /* a copy of the answer */
    char detail[256];          /* a copy of the detail */
    int *resolving;            /* set while mmws__dns_resolve runs */
    int called_inside;         /* 1 if called from inside resolve */
} result;

/* Copies what the callback was given. */
static void on_result(void *data, int rc, const mmws__addrs *addrs,
                      const char *detail) {
    result *r = data;
    r->calls++;
    r->rc = rc;
    if (r->resolving && *r->resolving) r->called_inside = 1;
    if (addrs) r->addrs = *addrs;
    snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "(null)");
}

/* Options that point c-ares at the responder. */
static mmws__dns_options opts(uint32_t timeout_ms) {
    mmws__dns_options o;
    o.servers = srv.servers;
    o.timeout_ms = timeout_ms;
    return o;
}

/* Starts a query and runs the loop until its callback has run. */
static void resolve_wait(mmws_loop *loop, const char *host, uint16_t port,
                         uint32_t timeout_ms, result *r) {
    memset(r, 0, sizeof *r);
    int resolving = 1;
    r->resolving = &resolving;
    mmws__dns_options o = opts(timeout_ms);
    mmws__dns_query *q = NULL;
    char detail[256] = "";
    int rc = mmws__dns_resolve(loop, host, port, &o, on_result, r, &q, detail,
                               sizeof detail);
    resolving = 0;
    CHECK_RC(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  detail: %s\n", detail);
        return;
    }
    CHECK(q != NULL);
    CHECK_EQ(r->calls, 0);
    int errs = 0;
    while (r->calls == 0) errs += mmws_loop_run_once(loop, -1) < 0;
    CHECK_EQ(errs, 0);
    CHECK_EQ(r->calls, 1);
    CHECK_EQ(r->called_inside, 0);
}

/* 1 if addrs holds v4 address a.b.c.d with port. */
static int has_v4(const mmws__addrs *addrs, const char *ip, uint16_t port) {
    struct in_addr want;
    inet_pton(AF_INET, ip, &want);
    for (size_t i = 0; i < addrs->count; i++) {
        struct sockaddr_in sin;
        if (addrs->addr[i].ss_family != AF_INET) continue;
        if (addrs->len[i] != sizeof sin) continue;
        memcpy(&sin, &addrs->addr[i], sizeof sin);
        if (sin.sin_addr.s_addr == want.s_addr && ntohs(sin.sin_port) == port)
            return 1;
    }
    return 0;
}

/* 1 if addrs holds v6 address ip with port. */
static int has_v6(const mmws__addrs *addrs, const char *ip, uint16_t port) {
    struct in6_addr want;
    inet_pton(AF_INET6, ip, &want);
    for (size_t i = 0; i < addrs->count; i++) {
        struct sockaddr_in6 sin6;
        if (addrs->addr[i].ss_family != AF_INET6) continue;
        if (addrs->len[i] != sizeof sin6) continue;
        memcpy(&sin6, &addrs->addr[i], sizeof sin6);
        if (memcmp(&sin6.sin6_addr, &want, sizeof want) == 0 &&
            ntohs(sin6.sin6_port) == port)
            return 1;
    }
    return 0;
}

/* Counts the open file descriptors of this process. */
static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* A timer that sets a flag, to let the loop run for a while. */
static void flag_cb(mmws__timer *t) { *(int *)t->data = 1; }

/* Runs the loop for ms milliseconds of loop time. */
static void run_for(mmws_loop *loop, uint64_t ms) {
    int fired = 0;
    mmws__timer t;
    mmws__timer_init(loop, &t, flag_cb, &fired);
    mmws__timer_start(&t, ms * 1000000u);
    while (!fired) mmws_loop_run_once(loop, -1);
}

/* ------------------------------------------------------------ tests -- */

/* One A record, with the port set; case does not matter. */
static void test_a(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    result r;
    resolve_wait(loop, "a.test", 443, 2000, &r);
    CHECK_RC(r.rc, 0);
    CHECK_EQ(r.addrs.count, 1);
    CHECK(has_v4(&r.addrs, "127.0.0.1", 443));
    CHECK_STR(r.detail, "");
    /* Upper case is the same name. */
    resolve_wait(loop, "A.TEST", 80, 2000, &r);
    CHECK_RC(r.rc, 0);
    CHECK(has_v4(&r.addrs, "127.0.0.1", 80));
    mmws_loop_free(loop);
}

/* A and AAAA both returned. */
static void test_dual(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    result r;
    resolve_wait(loop, "dual.test", 8443, 2000, &r);
    CHECK_RC(r.rc, 0);
    CHECK_EQ(r.addrs.count, 2);
    CHECK(has_v4(&r.addrs, "127.0.0.1", 8443));
    CHECK(has_v6(&r.addrs, "::1", 8443));
    mmws_loop_free(loop);
}

/* Every A record of the answer is kept. */
static void test_many(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    result r;
    resolve_wait(loop, "many.test", 9, 2000, &r);
    CHECK_RC(r.rc, 0);
    CHECK_EQ(r.addrs.count, 3);
    CHECK(has_v4(&r.addrs, "127.0.0.1", 9));
    CHECK(has_v4(&r.addrs, "127.0.0.2", 9));
    CHECK(has_v4(&r.addrs, "127.0.0.3", 9));
    mmws_loop_free(loop);
}

/* NXDOMAIN: MMWS_EDNS naming the host and c-ares' reason. */
static void test_nxdomain(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    result r;
    resolve_wait(loop, "nx.test", 443, 2000, &r);
    CHECK_RC(r.rc, MMWS_EDNS);
    CHECK(strstr(r.detail, "\"nx.test\"") != NULL);
    CHECK(strstr(r.detail, ares_strerror(ARES_ENOTFOUND)) != NULL);
    if (!strstr(r.detail, "nx.test"))
        fprintf(stderr, "  detail: %s\n", r.detail);
    mmws_loop_free(loop);
}

/* A server that never answers: MMWS_ETIMEDOUT within the bound. */
static void test_slow_times_out(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    result r;
    resolve_wait(loop, "slow.test", 443, 300, &r);
    CHECK_RC(r.rc, MMWS_ETIMEDOUT);
    CHECK(strstr(r.detail, "\"slow.test\"") != NULL);
    CHECK(strstr(r.detail, "timed out") != NULL);
    mmws_loop_free(loop);
}

/* IP literals are answered without a query, through the loop. */
static void test_literals(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    int before = atomic_load(&srv.queries);
    result r;
    resolve_wait(loop, "127.0.0.1", 443, 2000, &r);
    CHECK_RC(r.rc, 0);
    CHECK_EQ(r.addrs.count, 1);
    CHECK(has_v4(&r.addrs, "127.0.0.1", 443));
    resolve_wait(loop, "::1", 8080, 2000, &r);
    CHECK_RC(r.rc, 0);
    CHECK_EQ(r.addrs.count, 1);
    CHECK(has_v6(&r.addrs, "::1", 8080));
    CHECK_EQ(atomic_load(&srv.queries), before);

    /* Without options too (no c-ares, so no system resolver). */
    memset(&r, 0, sizeof r);
    mmws__dns_query *q = NULL;
    CHECK_RC(mmws__dns_resolve(loop, "10.1.2.3", 1, NULL, on_result, &r, &q,
                               NULL, 0), 0);
    CHECK_EQ(r.calls, 0);
    while (r.calls == 0) mmws_loop_run_once(loop, -1);
    CHECK_RC(r.rc, 0);
    CHECK(has_v4(&r.addrs, "10.1.2.3", 1));
    mmws_loop_free(loop);
}

/* Invalid arguments and a bad server list fail without a callback. */
static void test_bad_arguments(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    result r;
    memset(&r, 0, sizeof r);
    mmws__dns_query *q = (mmws__dns_query *)&r;
    char detail[128] = "";
    mmws__dns_options o = opts(1000);
    CHECK_RC(mmws__dns_resolve(loop, NULL, 1, &o, on_result, &r, &q, detail,
                               sizeof detail), MMWS_EINVAL);
    CHECK(q == NULL);
    CHECK_RC(mmws__dns_resolve(loop, "", 1, &o, on_result, &r, &q, detail,
                               sizeof detail), MMWS_EINVAL);
    CHECK_RC(mmws__dns_resolve(loop, "a.test", 1, &o, NULL, &r, &q, detail,
                               sizeof detail), MMWS_EINVAL);
    CHECK_RC(mmws__dns_resolve(NULL, "a.test", 1, &o, on_result, &r, &q,
                               detail, sizeof detail), MMWS_EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_RC(mmws__dns_resolve(loop, longname, 1, &o, on_result, &r, &q,
                               detail, sizeof detail), MMWS_EINVAL);
    o.servers = "not a server";
    CHECK_RC(mmws__dns_resolve(loop, "a.test", 1, &o, on_result, &r, &q,
                               detail, sizeof detail), MMWS_EDNS);
    CHECK(strstr(detail, "a.test") != NULL);
    CHECK(strstr(detail, "not a server") != NULL);
    CHECK(q == NULL);
    mmws_loop_run_once(loop, 0);
    CHECK_EQ(r.calls, 0);
    mmws_loop_free(loop);
}

/* Cancelled queries never call back and leak nothing (ASan/LSan). */
static void test_cancel(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    result r[3];
    memset(r, 0, sizeof r);
    mmws__dns_query *q[3];
    mmws__dns_options o = opts(200);
    /* Cancelled at once: an answer that would come, a silent server, and
     * a literal whose zero-delay delivery is pending. */
    CHECK_RC(mmws__dns_resolve(loop, "a.test", 1, &o, on_result, &r[0], &q[0],
                               NULL, 0), 0);
    CHECK_RC(mmws__dns_resolve(loop, "slow.test", 1, &o, on_result, &r[1],
                               &q[1], NULL, 0), 0);
    CHECK_RC(mmws__dns_resolve(loop, "::1", 1, &o, on_result, &r[2], &q[2],
                               NULL, 0), 0);
    mmws__dns_cancel(q[0]);
    mmws__dns_cancel(q[2]);
    /* Cancelled while c-ares waits for the silent server. */
    for (int i = 0; i < 3; i++) mmws_loop_run_once(loop, 0);
    mmws__dns_cancel(q[1]);
    mmws__dns_cancel(NULL);
    run_for(loop, 400);
    for (int i = 0; i < 3; i++) CHECK_EQ(r[i].calls, 0);
    mmws_loop_free(loop);
}

/* Several queries in flight on one loop at once. */
static void test_concurrent(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    static const char *names[4] = {"a.test", "dual.test", "many.test",
                                   "nx.test"};
    static const int want_rc[4] = {0, 0, 0, MMWS_EDNS};
    static const size_t want_n[4] = {1, 2, 3, 0};
    result r[20];
    memset(r, 0, sizeof r);
    mmws__dns_options o = opts(2000);
    for (int i = 0; i < 20; i++) {
        mmws__dns_query *q;
        CHECK_RC(mmws__dns_resolve(loop, names[i % 4], (uint16_t)(1000 + i),
                                   &o, on_result, &r[i], &q, NULL, 0), 0);
    }
    for (;;) {
        int pending = 0;
        for (int i = 0; i < 20; i++) pending += r[i].calls == 0;
        if (!pending) break;
        mmws_loop_run_once(loop, -1);
    }
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(r[i].calls, 1);
        CHECK_RC(r[i].rc, want_rc[i % 4]);
        if (r[i].rc == 0) CHECK_EQ(r[i].addrs.count, want_n[i % 4]);
    }
    mmws_loop_free(loop);
}

/* 200 queries (answered, NXDOMAIN, cancelled) leave no fd behind. */
static void test_no_fd_growth(void) {
    mmws_loop *loop = mmws_loop_new(NULL);
    int before = count_fds();
    int ok = 0, nx = 0;
    for (int i = 0; i < 200; i++) {
        result r;
        if (i % 10 == 9) {
            memset(&r, 0, sizeof r);
            mmws__dns_options o = opts(1000);
            mmws__dns_query *q;
            CHECK_RC(mmws__dns_resolve(loop, "slow.test", 1, &o, on_result,
                                       &r, &q, NULL, 0), 0);
            mmws_loop_run_once(loop, 0);
            mmws__dns_cancel(q);
            CHECK_EQ(r.calls, 0);
            continue;
        }
        resolve_wait(loop, i % 3 ? "dual.test" : "nx.test", 443, 2000, &r);
        if (r.rc == 0) ok++;
        if (r.rc == MMWS_EDNS) nx++;
    }
    int after = count_fds();
    CHECK_EQ(after, before);
    CHECK_EQ(ok + nx, 180);
    CHECK_EQ(nx, 60);
    mmws_loop_free(loop);
}

/* Starts the responder and runs every case. */
int main(void) {
    alarm(120);
    server_start();
    RUN(test_a);
    RUN(test_dual);
    RUN(test_many);
    RUN(test_nxdomain);
    RUN(test_slow_times_out);
    RUN(test_literals);
    RUN(test_bad_arguments);
    RUN(test_cancel);
    RUN(test_concurrent);
    RUN(test_no_fd_growth);
    server_stop();
    return TEST_END("test_dns");
}
