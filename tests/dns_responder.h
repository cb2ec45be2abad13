/*
 * dns_responder.h — a tiny DNS server on 127.0.0.1 for tests, so no query
 * ever leaves loopback: "a.test" A 127.0.0.1; "dual.test" A 127.0.0.1 and
 * AAAA ::1; "many.test" A 127.0.0.1, 127.0.0.2, 127.0.0.3; "slow.test"
 * never answered; anything else NXDOMAIN. One per test program (a static
 * instance); start it, point c-ares at srv.servers, stop it. Header-only.
 */
#ifndef MMWS_TEST_DNS_RESPONDER_H
#define MMWS_TEST_DNS_RESPONDER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------ the responder -- */

/* The test's DNS server. */
typedef struct dns_server {
    int fd;               /* UDP socket on 127.0.0.1 */
    int stop[2];          /* pipe: a byte on it ends the thread */
    pthread_t th;         /* the serving thread */
    char servers[32];     /* "127.0.0.1:PORT" for opt.servers */
    _Atomic int queries;  /* queries received */
} dns_server;

static dns_server srv;

/* Appends a 16-bit big-endian value. */
static inline size_t put16(uint8_t *p, size_t off, unsigned v) {
    p[off] = (uint8_t)(v >> 8);
    p[off + 1] = (uint8_t)v;
    return off + 2;
}

/* Appends one answer record (name: pointer to the question). */
static inline size_t put_rr(uint8_t *p, size_t off, unsigned type, const void *rdata,
                     unsigned rdlen) {
    off = put16(p, off, 0xC00C);
    off = put16(p, off, type);
    off = put16(p, off, 1);
    off = put16(p, off, 0);
    off = put16(p, off, 60);
    off = put16(p, off, rdlen);
    memcpy(p + off, rdata, rdlen);
    return off + rdlen;
}

/* Builds the reply to one query into out; returns its length, or 0 to
 * send nothing. */
static inline size_t answer(const uint8_t *q, size_t qlen, uint8_t *out) {
    if (qlen < 12 || (q[4] << 8 | q[5]) < 1) return 0;
    char name[256];
    size_t nlen = 0, off = 12;
    while (off < qlen && q[off] != 0) {
        size_t l = q[off++];
        if (l > 63 || off + l > qlen || nlen + l + 1 >= sizeof name) return 0;
        if (nlen) name[nlen++] = '.';
        for (size_t i = 0; i < l; i++) {
            char c = (char)q[off + i];
            name[nlen++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        off += l;
    }
    name[nlen] = '\0';
    if (off + 5 > qlen) return 0;
    off++;
    unsigned qtype = (unsigned)(q[off] << 8 | q[off + 1]);
    size_t qend = off + 4;
    if (strcmp(name, "slow.test") == 0) return 0;

    static const uint8_t v4[3][4] = {{127, 0, 0, 1}, {127, 0, 0, 2},
                                     {127, 0, 0, 3}};
    static const uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                   0, 0, 0, 0, 0, 0, 0, 1};
    unsigned rcode = 0, n4 = 0, n6 = 0;
    if (strcmp(name, "a.test") == 0)
        n4 = 1;
    else if (strcmp(name, "dual.test") == 0)
        n4 = 1, n6 = 1;
    else if (strcmp(name, "many.test") == 0)
        n4 = 3;
    else
        rcode = 3;
    if (qtype != 1) n4 = 0;
    if (qtype != 28) n6 = 0;

    memcpy(out, q, 2);
    out[2] = (uint8_t)(0x80 | (q[2] & 0x01)); /* QR, RD copied */
    out[3] = (uint8_t)(0x80 | rcode);         /* RA, rcode */
    put16(out, 4, 1);
    put16(out, 6, n4 + n6);
    put16(out, 8, 0);
    put16(out, 10, 0);
    memcpy(out + 12, q + 12, qend - 12);
    size_t o = qend;
    for (unsigned i = 0; i < n4; i++) o = put_rr(out, o, 1, v4[i], 4);
    for (unsigned i = 0; i < n6; i++) o = put_rr(out, o, 28, v6, 16);
    return o;
}

/* Answers queries until a byte arrives on the stop pipe. */
static inline void *server_main(void *arg) {
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{srv.fd, POLLIN, 0}, {srv.stop[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents) break;
        uint8_t q[512], out[1024];
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(srv.fd, q, sizeof q, 0, (struct sockaddr *)&from,
                             &flen);
        if (n <= 0) continue;
        atomic_fetch_add(&srv.queries, 1);
        size_t r = answer(q, (size_t)n, out);
        if (r) sendto(srv.fd, out, r, 0, (struct sockaddr *)&from, flen);
    }
    return NULL;
}

/* Binds the responder to 127.0.0.1 on a free port and starts it. */
static inline void server_start(void) {
    srv.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&sin, len) != 0 ||
        getsockname(srv.fd, (struct sockaddr *)&sin, &len) != 0 ||
        pipe(srv.stop) != 0) {
        perror("dns server");
        exit(2);
    }
    snprintf(srv.servers, sizeof srv.servers, "127.0.0.1:%u",
             (unsigned)ntohs(sin.sin_port));
    atomic_init(&srv.queries, 0);
    if (pthread_create(&srv.th, NULL, server_main, NULL) != 0) exit(2);
}

/* Stops the responder thread and closes its fds. */
static inline void server_stop(void) {
    if (write(srv.stop[1], "x", 1) != 1) exit(2);
    pthread_join(srv.th, NULL);
    close(srv.fd);
    close(srv.stop[0]);
    close(srv.stop[1]);
}

#endif /* MMWS_TEST_DNS_RESPONDER_H */
