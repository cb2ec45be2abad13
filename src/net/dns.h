/*
 * dns.h — non-blocking name resolution with c-ares, driven by the loop
 * (net layer, internal). Each query has its own c-ares channel, so a
 * query's servers can be overridden (tests point them at loopback) and a
 * cancel never touches another query.
 */
#ifndef MMWS_NET_DNS_H
#define MMWS_NET_DNS_H

#include <sys/socket.h>

#include "net/io.h"

/* Most addresses kept from one answer; the connection tries them in turn. */
#define MMWS__DNS_MAX_ADDRS 16

/* The answer: every A and AAAA address, in c-ares' (RFC 6724) order, each
 * with the port already set. */
typedef struct mmws__addrs {
    size_t count;
    struct sockaddr_storage addr[MMWS__DNS_MAX_ADDRS];
    socklen_t len[MMWS__DNS_MAX_ADDRS];
} mmws__addrs;

typedef struct mmws__dns_options {
    /* c-ares server list ("127.0.0.1:5353,[::1]:53"), NULL for the
     * system's (/etc/resolv.conf). */
    const char *servers;
    /* Whole-query bound in ms; 0 means 5000. */
    uint32_t timeout_ms;
} mmws__dns_options;

/*
 * Called once per query, on the loop thread, never from inside
 * mmws__dns_resolve(): rc 0 with addrs (valid during the call), or
 * MMWS_EDNS / MMWS_ETIMEDOUT / MMWS_ENOMEM with detail, a sentence naming
 * the host and c-ares' reason ("no address for \"x.invalid\": Domain name
 * not found"). The query is freed after the call returns.
 */
typedef void (*mmws__dns_cb)(void *data, int rc, const mmws__addrs *addrs,
                             const char *detail);

typedef struct mmws__dns_query mmws__dns_query;

/*
 * Starts resolving host (NUL-terminated; an IPv4 or IPv6 literal is
 * answered without c-ares, still through cb). *out receives the query for
 * mmws__dns_cancel. Returns 0, MMWS_EINVAL, MMWS_ENOMEM, or MMWS_EDNS
 * (c-ares could not start; detail then written to detail_out).
 */
int mmws__dns_resolve(mmws_loop *loop, const char *host, uint16_t port,
                      const mmws__dns_options *opt, mmws__dns_cb cb,
                      void *data, mmws__dns_query **out, char *detail_out,
                      size_t detail_len);

/* Cancels a query whose callback has not run yet: cb is never called and
 * everything is freed. */
void mmws__dns_cancel(mmws__dns_query *q);

#endif /* MMWS_NET_DNS_H */
