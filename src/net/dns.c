/*
 * dns.c — name resolution with c-ares, driven by the loop (net layer).
 *
 * Each query owns an ares channel (so its servers can be overridden and a
 * cancel touches nothing else). c-ares tells us which sockets to watch
 * through its socket-state callback; we watch them with mmws__io watchers
 * embedded in the query and call ares_process_fd on readiness. One timer
 * serves both c-ares' own retransmission timeouts (ares_timeout) and the
 * whole-query bound.
 *
 * c-ares may call its completion callback synchronously (from inside
 * ares_getaddrinfo for an /etc/hosts hit or an early error, or from inside
 * ares_process_fd), and ares_destroy calls it once more with
 * ARES_EDESTRUCTION for anything pending. So that callback only records
 * the result in the query; the user's callback runs afterwards, once no
 * c-ares call is on the stack, after the channel has been destroyed — or,
 * when the result arrives inside mmws__dns_resolve (and for IP literals),
 * from a zero-delay timer.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"

/* Sockets one query may have open at once: c-ares uses one UDP socket per
 * server, plus a TCP one when an answer is truncated. */
#define MAX_SOCKS 8

/* Longest host name accepted (253 characters plus a trailing dot). */
#define MAX_HOST 254

/* The whole-query bound when the options give none. */
#define DEFAULT_TIMEOUT_MS 5000u

struct mmws__dns_query {
    mmws_loop *loop;            /* the loop the query runs on */
    ares_channel channel;       /* this query's channel; NULL for literals
                                   and once destroyed */
    mmws__dns_cb cb;            /* the user's callback */
    void *data;                 /* the user's pointer */
    uint16_t port;              /* set in every returned address */
    uint32_t timeout_ms;        /* the whole-query bound */
    uint64_t deadline_ns;       /* loop time at which the bound expires */
    mmws__timer timer;          /* c-ares timeouts, the bound, and
                                   delivery of results known early */
    mmws__io socks[MAX_SOCKS];  /* watchers of the channel's sockets; a
                                   slot is free when its loop is NULL */
    int sock_errno;             /* nonzero: a socket could not be watched */
    int done;                   /* 1 once rc, addrs and detail are final */
    int closing;                /* 1 while the channel is destroyed:
                                   c-ares callbacks are ignored */
    int in_cb;                  /* 1 while the user's callback runs */
    int rc;                     /* the result code for the callback */
    mmws__addrs addrs;          /* the answer */
    char detail[384];           /* what went wrong, naming the host */
    char host[];                /* the name asked for */
};

/* Guards the one call of ares_library_init in this process. */
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
/* ares_library_init's status, written once under lib_once. */
static int lib_status = ARES_SUCCESS;

/* Initialises c-ares (needed only on Windows in 1.18, harmless here). */
static void lib_init(void) {
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* Copies src to a detail buffer that may be NULL or empty. */
static void put_detail(char *out, size_t len, const char *src) {
    if (out && len > 0) snprintf(out, len, "%s", src);
}

/* Makes the result final, unless it already is. */
static void set_result(mmws__dns_query *q, int rc) {
    if (q->done) return;
    q->rc = rc;
    q->done = 1;
}

/* Stops every socket watcher still active (c-ares closes its sockets in
 * ares_destroy and says so, but nothing may outlive the query). */
static void stop_socks(mmws__dns_query *q) {
    for (size_t i = 0; i < MAX_SOCKS; i++) mmws__io_stop(&q->socks[i]);
}

/* Destroys the channel (ignoring the callbacks that triggers) and stops
 * the timer and the watchers. */
static void teardown(mmws__dns_query *q) {
    mmws__timer_fini(&q->timer);
    if (q->channel) {
        q->closing = 1;
        ares_destroy(q->channel);
        q->channel = NULL;
    }
    stop_socks(q);
}

/* Tears the query down, calls the user's callback, frees the query. */
static void finish(mmws__dns_query *q) {
    teardown(q);
    q->in_cb = 1;
    q->cb(q->data, q->rc, &q->addrs, q->rc == 0 ? "" : q->detail);
    free(q);
}

/* Copies c-ares' A and AAAA nodes, in order, with the port set. */
static void copy_nodes(mmws__dns_query *q, const struct ares_addrinfo *res) {
    const struct ares_addrinfo_node *n;
    for (n = res ? res->nodes : NULL; n; n = n->ai_next) {
        if (q->addrs.count == MMWS__DNS_MAX_ADDRS) break;
        size_t i = q->addrs.count;
        struct sockaddr_storage *ss = &q->addrs.addr[i];
        memset(ss, 0, sizeof *ss);
        if (n->ai_family == AF_INET &&
            n->ai_addrlen >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in sin;
            memcpy(&sin, n->ai_addr, sizeof sin);
            sin.sin_port = htons(q->port);
            memcpy(ss, &sin, sizeof sin);
            q->addrs.len[i] = sizeof sin;
        } else if (n->ai_family == AF_INET6 &&
                   n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 sin6;
            memcpy(&sin6, n->ai_addr, sizeof sin6);
            sin6.sin6_port = htons(q->port);
            memcpy(ss, &sin6, sizeof sin6);
            q->addrs.len[i] = sizeof sin6;
        } else {
            continue;
        }
        q->addrs.count++;
    }
}

/* ares_getaddrinfo's callback: records the outcome, nothing more. */
static void on_addrinfo(void *arg, int status, int timeouts,
                        struct ares_addrinfo *res) {
    mmws__dns_query *q = arg;
    (void)timeouts;
    if (q->closing || q->done) {
        if (res) ares_freeaddrinfo(res);
        return;
    }
    if (status == ARES_SUCCESS) {
        copy_nodes(q, res);
        if (q->addrs.count > 0) {
            set_result(q, 0);
        } else {
            snprintf(q->detail, sizeof q->detail,
                     "no address for \"%s\": the answer has no A or AAAA "
                     "record", q->host);
            set_result(q, MMWS_EDNS);
        }
    } else if (status == ARES_ETIMEOUT) {
        snprintf(q->detail, sizeof q->detail,
                 "DNS query for \"%s\" timed out: %s", q->host,
                 ares_strerror(status));
        set_result(q, MMWS_ETIMEDOUT);
    } else if (status == ARES_ENOMEM) {
        snprintf(q->detail, sizeof q->detail,
                 "DNS query for \"%s\" failed: %s", q->host,
                 ares_strerror(status));
        set_result(q, MMWS_ENOMEM);
    } else {
        snprintf(q->detail, sizeof q->detail, "no address for \"%s\": %s",
                 q->host, ares_strerror(status));
        set_result(q, MMWS_EDNS);
    }
    if (res) ares_freeaddrinfo(res);
}

/* Records that a channel socket could not be watched. */
static void sock_failed(mmws__dns_query *q, int err) {
    if (q->done) return;
    q->sock_errno = err ? err : EIO;
    snprintf(q->detail, sizeof q->detail,
             "DNS query for \"%s\" failed: cannot watch its socket: %s",
             q->host, strerror(q->sock_errno));
    set_result(q, MMWS_EDNS);
}

/* Declared early: on_sock_state starts watchers with it. */
static void on_sock_ready(mmws__io *io, unsigned events);

/* c-ares' socket-state callback: starts, changes or stops a watcher. */
static void on_sock_state(void *data, ares_socket_t s, int readable,
                          int writable) {
    mmws__dns_query *q = data;
    mmws__io *slot = NULL, *free_slot = NULL;
    for (size_t i = 0; i < MAX_SOCKS; i++) {
        mmws__io *io = &q->socks[i];
        if (io->loop && io->fd == s) slot = io;
        if (!io->loop && !free_slot) free_slot = io;
    }
    if (!readable && !writable) {
        if (slot) mmws__io_stop(slot);
        return;
    }
    unsigned ev = (readable ? MMWS__IO_READ : 0u) |
                  (writable ? MMWS__IO_WRITE : 0u);
    if (slot) {
        if (mmws__io_modify(slot, ev) != 0) sock_failed(q, errno);
        return;
    }
    if (!free_slot) {
        sock_failed(q, EMFILE);
        return;
    }
    if (mmws__io_start(q->loop, free_slot, s, ev, on_sock_ready, q) != 0)
        sock_failed(q, errno);
}

/* Arms the timer for the nearer of c-ares' next timeout and the bound
 * (a registered timer's start cannot fail). */
static void rearm(mmws__dns_query *q) {
    uint64_t now = mmws_loop_now_ns(q->loop);
    uint64_t delay = q->deadline_ns > now ? q->deadline_ns - now : 0;
    struct timeval tvbuf;
    const struct timeval *tv = ares_timeout(q->channel, NULL, &tvbuf);
    if (tv) {
        uint64_t d = (uint64_t)tv->tv_sec * 1000000000u +
                     (uint64_t)tv->tv_usec * 1000u;
        if (d < delay) delay = d;
    }
    mmws__timer_start(&q->timer, delay);
}

/* After c-ares ran: delivers the result if there is one, else re-arms the
 * timer. Called from loop callbacks only, so the user's callback may run. */
static void after_ares(mmws__dns_query *q) {
    if (!q->done) rearm(q);
    if (q->done) finish(q);
}

/* A channel socket is ready: let c-ares read or write it. */
static void on_sock_ready(mmws__io *io, unsigned events) {
    mmws__dns_query *q = io->data;
    ares_socket_t fd = io->fd;
    ares_socket_t rfd = (events & (MMWS__IO_READ | MMWS__IO_ERROR))
                            ? fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (events & MMWS__IO_WRITE) ? fd : ARES_SOCKET_BAD;
    ares_process_fd(q->channel, rfd, wfd);
    after_ares(q);
}

/* The timer: delivers an early result, enforces the bound, or lets c-ares
 * handle its retransmission timeouts. */
static void on_timer(mmws__timer *t) {
    mmws__dns_query *q = t->data;
    if (!q->done && mmws_loop_now_ns(q->loop) >= q->deadline_ns) {
        snprintf(q->detail, sizeof q->detail,
                 "DNS query for \"%s\" timed out after %u ms", q->host,
                 (unsigned)q->timeout_ms);
        set_result(q, MMWS_ETIMEDOUT);
    }
    if (q->done) {
        finish(q);
        return;
    }
    ares_process_fd(q->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    after_ares(q);
}

/* Answers an IPv4 or IPv6 literal; returns 1 if host was one. */
static int parse_literal(mmws__dns_query *q) {
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, q->host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(q->port);
        memcpy(&q->addrs.addr[0], &sin, sizeof sin);
        q->addrs.len[0] = sizeof sin;
    } else if (inet_pton(AF_INET6, q->host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(q->port);
        memcpy(&q->addrs.addr[0], &sin6, sizeof sin6);
        q->addrs.len[0] = sizeof sin6;
    } else {
        return 0;
    }
    q->addrs.count = 1;
    set_result(q, 0);
    return 1;
}

/* Creates the query's channel and sends the question. Returns 0 or
 * MMWS_EDNS / MMWS_ENOMEM with detail_out written. */
static int start_ares(mmws__dns_query *q, const mmws__dns_options *opt,
                      char *detail_out, size_t detail_len) {
    char msg[512];
    struct ares_options o;
    memset(&o, 0, sizeof o);
    /* c-ares doubles the per-try timeout on the second try: t + 2t. */
    uint32_t per_try = q->timeout_ms / 3;
    o.flags = ARES_FLAG_NOSEARCH;
    o.timeout = per_try > 0 ? (int)per_try : 1;
    o.tries = 2;
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = q;
    o.domains = NULL;
    o.ndomains = 0;
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
               ARES_OPT_SOCK_STATE_CB | ARES_OPT_DOMAINS;
    int st = ares_init_options(&q->channel, &o, mask);
    if (st != ARES_SUCCESS) {
        q->channel = NULL;
        snprintf(msg, sizeof msg,
                 "cannot start DNS query for \"%s\": %s", q->host,
                 ares_strerror(st));
        put_detail(detail_out, detail_len, msg);
        return st == ARES_ENOMEM ? MMWS_ENOMEM : MMWS_EDNS;
    }
    if (opt && opt->servers) {
        st = ares_set_servers_ports_csv(q->channel, opt->servers);
        if (st != ARES_SUCCESS) {
            snprintf(msg, sizeof msg,
                     "cannot start DNS query for \"%s\": bad server list "
                     "\"%.100s\": %s", q->host, opt->servers,
                     ares_strerror(st));
            put_detail(detail_out, detail_len, msg);
            return st == ARES_ENOMEM ? MMWS_ENOMEM : MMWS_EDNS;
        }
    }
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)q->port);
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = ARES_AI_NUMERICSERV;
    ares_getaddrinfo(q->channel, q->host, service, &hints, on_addrinfo, q);
    return 0;
}

/* Validates, then answers a literal or starts c-ares; the result always
 * arrives through a later loop callback. */
int mmws__dns_resolve(mmws_loop *loop, const char *host, uint16_t port,
                      const mmws__dns_options *opt, mmws__dns_cb cb,
                      void *data, mmws__dns_query **out, char *detail_out,
                      size_t detail_len) {
    if (out) *out = NULL;
    if (!loop || !host || !cb || !out) {
        put_detail(detail_out, detail_len, "dns: NULL argument");
        return MMWS_EINVAL;
    }
    size_t hlen = strlen(host);
    if (hlen == 0 || hlen > MAX_HOST) {
        put_detail(detail_out, detail_len,
                   hlen ? "host name longer than 254 characters"
                        : "host name is empty");
        return MMWS_EINVAL;
    }
    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS) {
        char msg[160];
        snprintf(msg, sizeof msg, "cannot initialise c-ares: %s",
                 ares_strerror(lib_status));
        put_detail(detail_out, detail_len, msg);
        return MMWS_EDNS;
    }
    mmws__dns_query *q = calloc(1, sizeof *q + hlen + 1);
    if (!q) {
        put_detail(detail_out, detail_len, "dns: out of memory");
        return MMWS_ENOMEM;
    }
    memcpy(q->host, host, hlen + 1);
    q->loop = loop;
    q->cb = cb;
    q->data = data;
    q->port = port;
    q->timeout_ms = opt && opt->timeout_ms ? opt->timeout_ms
                                           : DEFAULT_TIMEOUT_MS;
    q->deadline_ns =
        mmws_loop_now_ns(loop) + (uint64_t)q->timeout_ms * 1000000u;
    if (mmws__timer_init(loop, &q->timer, on_timer, q) != 0) {
        free(q);
        put_detail(detail_out, detail_len, "dns: out of memory for a timer");
        return MMWS_ENOMEM;
    }
    for (size_t i = 0; i < MAX_SOCKS; i++) q->socks[i].fd = -1;

    if (!parse_literal(q)) {
        int rc = start_ares(q, opt, detail_out, detail_len);
        if (rc != 0) {
            teardown(q);
            free(q);
            return rc;
        }
    }
    if (q->done)
        mmws__timer_start(&q->timer, 0);
    else
        rearm(q);
    *out = q;
    return 0;
}

/* Destroys the channel without delivering anything and frees the query. */
void mmws__dns_cancel(mmws__dns_query *q) {
    if (!q || q->in_cb) return;
    teardown(q);
    free(q);
}
