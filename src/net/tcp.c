/*
 * tcp.c — non-blocking TCP connect and the plain TCP transport (net layer).
 *
 * read and write are one syscall each: recv/send straight into the
 * caller's buffer, errno mapped to MMWS_EWANTREAD/WRITE or MMWS_EIO.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/err_internal.h"
#include "net/transport.h"


void mmws__addr_format(const struct sockaddr *addr, char *buf, size_t len) {
    char host[INET6_ADDRSTRLEN];
    if (buf == NULL || len == 0) return;
    if (addr != NULL && addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (addr != NULL && addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 =
            (const struct sockaddr_in6 *)(const void *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        if (in6->sin6_scope_id != 0)
            snprintf(buf, len, "[%s%%%u]:%u", host,
                     (unsigned)in6->sin6_scope_id,
                     (unsigned)ntohs(in6->sin6_port));
        else
            snprintf(buf, len, "[%s]:%u", host,
                     (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "(address family %d)",
                 addr != NULL ? (int)addr->sa_family : -1);
    }
}

int mmws__tcp_connect_start(const struct sockaddr *addr, socklen_t len,
                            int *fd, char *detail, size_t detail_len) {
    char where[INET6_ADDRSTRLEN + 32];
    char ebuf[128];
    if (addr == NULL || fd == NULL) {
        mmws__detail(detail, detail_len, "connect: no address");
        return MMWS_EINVAL;
    }
    *fd = -1;
    int s = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   IPPROTO_TCP);
    if (s < 0) {
        int e = errno;
        mmws__detail(detail, detail_len, "socket: %s",
                   strerror_r(e, ebuf, sizeof ebuf));
        return MMWS_ESYS;
    }
    int one = 1;
    if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        int e = errno;
        close(s);
        mmws__detail(detail, detail_len, "setsockopt TCP_NODELAY: %s",
                   strerror_r(e, ebuf, sizeof ebuf));
        return MMWS_ESYS;
    }
    /* EINTR: the connect goes on in the background, like EINPROGRESS. */
    if (connect(s, addr, len) != 0 && errno != EINPROGRESS && errno != EINTR) {
        int e = errno;
        close(s);
        mmws__addr_format(addr, where, sizeof where);
        mmws__detail(detail, detail_len, "connect %s: %s", where,
                   strerror_r(e, ebuf, sizeof ebuf));
        return MMWS_ECONNECT;
    }
    *fd = s;
    return 0;
}

int mmws__tcp_connect_finish(int fd, const struct sockaddr *addr,
                             char *detail, size_t detail_len) {
    char where[INET6_ADDRSTRLEN + 32];
    char ebuf[128];
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) err = errno;
    if (err == 0) return 0;
    mmws__addr_format(addr, where, sizeof where);
    mmws__detail(detail, detail_len, "connect %s: %s", where,
               strerror_r(err, ebuf, sizeof ebuf));
    return MMWS_ECONNECT;
}

/* Records "<op>: <strerror(e)>" as the transport's last error. */
static void tcp_errno_detail(mmws__transport *t, const char *op, int e) {
    char ebuf[128];
    mmws__detail(t->detail, sizeof t->detail, "%s: %s", op,
               strerror_r(e, ebuf, sizeof ebuf));
}

/* TCP has no handshake of its own. */
static int tcp_handshake(mmws__transport *t) {
    (void)t;
    return 0;
}

/* One recv; len must be > 0, since 0 is reported as end of stream. */
static ptrdiff_t tcp_read(mmws__transport *t, void *buf, size_t len) {
    for (;;) {
        ssize_t n = recv(t->fd, buf, len, 0);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return MMWS_EWANTREAD;
        tcp_errno_detail(t, "recv", errno);
        return MMWS_EIO;
    }
}

/* One send, without SIGPIPE on a connection the peer has reset. */
static ptrdiff_t tcp_write(mmws__transport *t, const void *buf, size_t len) {
    for (;;) {
        ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return MMWS_EWANTWRITE;
        tcp_errno_detail(t, "send", errno);
        return MMWS_EIO;
    }
}

/* The kernel holds every received byte; nothing is buffered here. */
static size_t tcp_pending(const mmws__transport *t) {
    (void)t;
    return 0;
}

/* Sends FIN; reading goes on until the peer's FIN. */
static void tcp_shutdown(mmws__transport *t) {
    (void)shutdown(t->fd, SHUT_WR);
}

/* Closes the socket and frees the transport. */
static void tcp_destroy(mmws__transport *t) {
    if (t->fd >= 0) close(t->fd);
    free(t);
}

static const mmws__transport_ops tcp_ops = {
    "tcp",       tcp_handshake, tcp_read,     tcp_write,
    tcp_pending, tcp_shutdown,  tcp_destroy,
};

mmws__transport *mmws__tcp_new(int fd) {
    mmws__transport *t = malloc(sizeof *t);
    if (t == NULL) return NULL;
    t->ops = &tcp_ops;
    t->fd = fd;
    t->detail[0] = '\0';
    return t;
}
