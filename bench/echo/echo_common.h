/*
 * echo_common.h — helpers shared by the round-trip echo clients
 * (beast_client.cpp, lws_client.c, ceiling_client.c). Header-only, static
 * functions, valid C11 and C++17.
 *
 * Every client has the same command line and output:
 *   NAME URL SIZE SECONDS [CAFILE]
 * sends a binary message of SIZE bytes, waits for the whole echo, sends the
 * next, for SECONDS; prints round trips per second as its last stdout line
 * (a plain number) and exits 0, or exits non-zero with a message on stderr.
 */
#ifndef ECHO_COMMON_H
#define ECHO_COMMON_H

/* clock_gettime, getaddrinfo under -std=c11. Include this header first. */
#if !defined(__cplusplus) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest SIZE any client accepts (the server's read limit is 64 MiB). */
#define ECHO_MAX_SIZE (64u * 1024u * 1024u - 16u)

/* A parsed ws:// or wss:// URL; fields are NUL-terminated copies. */
typedef struct echo_url {
    int tls;          /* 1 for wss://, 0 for ws:// */
    char host[256];   /* host name or IP literal, without brackets */
    char port[8];     /* decimal port, defaulted from the scheme */
    char path[1024];  /* request target, at least "/" */
} echo_url;

/* The parsed command line. */
typedef struct echo_args {
    echo_url url;
    size_t size;        /* message payload bytes */
    double seconds;     /* measuring time */
    const char *cafile; /* CA bundle for wss://, or NULL for the system's */
} echo_args;

static inline uint64_t echo_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Parses URL into *u; returns 0, or -1 with a message on stderr. */
static inline int echo_parse_url(const char *url, echo_url *u) {
    const char *p, *host_end, *after;
    size_t hl;
    memset(u, 0, sizeof *u);
    if (strncmp(url, "ws://", 5) == 0) {
        u->tls = 0;
        p = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        u->tls = 1;
        p = url + 6;
    } else {
        fprintf(stderr, "url must start with ws:// or wss:// (got \"%s\")\n", url);
        return -1;
    }
    if (*p == '[') { /* IPv6 literal */
        host_end = strchr(p, ']');
        if (!host_end) goto bad;
        p++;
        after = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/?");
        after = host_end;
    }
    hl = (size_t)(host_end - p);
    if (hl == 0 || hl >= sizeof u->host) goto bad;
    memcpy(u->host, p, hl);
    if (*after == ':') {
        const char *ps = after + 1;
        size_t pl = strspn(ps, "0123456789");
        if (pl == 0 || pl >= sizeof u->port) goto bad;
        memcpy(u->port, ps, pl);
        after = ps + pl;
    } else {
        strcpy(u->port, u->tls ? "443" : "80");
    }
    if (*after == '\0') {
        strcpy(u->path, "/");
    } else if (*after == '/' || *after == '?') {
        size_t tl = strlen(after);
        if (tl + 2 > sizeof u->path) goto bad;
        if (*after == '?') u->path[0] = '/';
        strcat(u->path, after);
    } else {
        goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "cannot parse url \"%s\"\n", url);
    return -1;
}

/* Parses argv into *a; returns 0, or -1 with usage/message on stderr. */
static inline int echo_parse_args(int argc, char **argv, echo_args *a) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s URL SIZE SECONDS [CAFILE]\n", argv[0]);
        return -1;
    }
    if (echo_parse_url(argv[1], &a->url) != 0) return -1;
    char *end;
    unsigned long long sz = strtoull(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || sz == 0 || sz > ECHO_MAX_SIZE) {
        fprintf(stderr, "SIZE must be 1..%u (got \"%s\")\n", ECHO_MAX_SIZE, argv[2]);
        return -1;
    }
    a->size = (size_t)sz;
    a->seconds = strtod(argv[3], &end);
    if (*argv[3] == '\0' || *end != '\0' || !(a->seconds > 0.0) || a->seconds > 86400.0) {
        fprintf(stderr, "SECONDS must be > 0 (got \"%s\")\n", argv[3]);
        return -1;
    }
    a->cafile = argc == 5 ? argv[4] : NULL;
    return 0;
}

/* Fills buf with a deterministic, non-trivial pattern. */
static inline void echo_fill(unsigned char *buf, size_t n) {
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
}

/* Prints the result line: round trips per second. */
static inline void echo_report(uint64_t trips, uint64_t elapsed_ns) {
    double rps = elapsed_ns ? (double)trips * 1e9 / (double)elapsed_ns : 0.0;
    fprintf(stderr, "%llu round trips in %.3f s\n", (unsigned long long)trips,
            (double)elapsed_ns / 1e9);
    printf("%.1f\n", rps);
    fflush(stdout);
}

#endif
