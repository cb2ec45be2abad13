/*
 * transport.h — one byte-stream interface with a TCP and a TLS
 * implementation (net layer, internal), so the connection code has no
 * `if (tls)`. All calls are non-blocking; MMWS_EWANTREAD/MMWS_EWANTWRITE
 * say which readiness to wait for before calling again.
 */
#ifndef MMWS_NET_TRANSPORT_H
#define MMWS_NET_TRANSPORT_H

#include <stddef.h>
#include <sys/socket.h>

#include <mmws/common.h>

#define MMWS__DETAIL_LEN 256

typedef struct mmws__transport mmws__transport;

typedef struct mmws__transport_ops {
    const char *name; /* "tcp" or "tls" */
    /* Advances the transport's own handshake (TLS): 0 when done,
     * MMWS_EWANTREAD/WRITE, or MMWS_ETLS with t->detail. TCP: 0. */
    int (*handshake)(mmws__transport *t);
    /* Reads up to len bytes: > 0 the count; 0 the peer ended the stream
     * cleanly (FIN; TLS close_notify); MMWS_EWANTREAD/WRITE; MMWS_ECLOSED
     * (TLS: EOF without close_notify); MMWS_EIO or MMWS_ETLS (detail). */
    ptrdiff_t (*read)(mmws__transport *t, void *buf, size_t len);
    /* Writes up to len bytes: > 0 the count (may be short);
     * MMWS_EWANTREAD/WRITE (TLS: retry with the same buf and len);
     * MMWS_EIO or MMWS_ETLS (detail). */
    ptrdiff_t (*write)(mmws__transport *t, const void *buf, size_t len);
    /* Bytes already received and decrypted inside the transport, which a
     * read returns without the fd becoming readable again. */
    size_t (*pending)(const mmws__transport *t);
    /* Best effort: TLS close_notify, then shutdown(SHUT_WR). */
    void (*shutdown)(mmws__transport *t);
    /* Frees the transport and closes its fd. */
    void (*destroy)(mmws__transport *t);
} mmws__transport_ops;

struct mmws__transport {
    const mmws__transport_ops *ops;
    int fd;                         /* the socket, owned */
    char detail[MMWS__DETAIL_LEN];  /* what the last error was */
};

/*
 * Creates a non-blocking TCP socket for addr, sets TCP_NODELAY and starts
 * connecting. Returns 0 with *fd set (connected or in progress: wait for
 * writability, then call mmws__tcp_connect_finish), or MMWS_ECONNECT /
 * MMWS_ESYS with detail ("connect 127.0.0.1:9: Connection refused").
 */
int mmws__tcp_connect_start(const struct sockaddr *addr, socklen_t len,
                            int *fd, char *detail, size_t detail_len);

/* After writability: 0 if connected, or MMWS_ECONNECT with detail naming
 * the address and the socket error. */
int mmws__tcp_connect_finish(int fd, const struct sockaddr *addr,
                             char *detail, size_t detail_len);

/* Formats addr as "1.2.3.4:443" or "[::1]:443" into buf. */
void mmws__addr_format(const struct sockaddr *addr, char *buf, size_t len);

/* Wraps a connected socket; NULL on allocation failure (fd not closed). */
mmws__transport *mmws__tcp_new(int fd);

/* TLS settings, from the connection config. Strings borrowed. */
typedef struct mmws__tls_config {
    int verify;             /* peer and hostname verification (default 1) */
    const char *ca_file;    /* PEM bundle, NULL for the system store */
    const char *ca_dir;     /* hashed CA directory, NULL for none */
    const char *cert_file;  /* client certificate (PEM), NULL for none */
    const char *key_file;   /* its private key, NULL: in cert_file */
} mmws__tls_config;

typedef struct mmws__tls_ctx mmws__tls_ctx;

/*
 * Creates the shared TLS context (TLS 1.2 minimum, system trust store
 * unless ca_file/ca_dir, client certificate if given). NULL with detail
 * naming the file and OpenSSL's reason on failure; errno is then ENOMEM
 * when an allocation failed (detail says "out of memory").
 */
mmws__tls_ctx *mmws__tls_ctx_new(const mmws__tls_config *cfg, char *detail,
                                 size_t detail_len);
/* A context is shared by reference (one loop's thread only): building one
 * loads the trust store, with the system's bundle ~225,000 allocations and
 * ~26 ms, so a pool builds it once for all its connections. _ref adds a
 * holder and returns ctx; _free drops one and frees with the last. */
mmws__tls_ctx *mmws__tls_ctx_ref(mmws__tls_ctx *ctx);
void mmws__tls_ctx_free(mmws__tls_ctx *ctx);

/*
 * Wraps a connected socket in a TLS client for host: SNI set (names only),
 * and with verification on, the certificate checked against host (a name,
 * or an IP address for literals). NULL with detail on failure (fd not
 * closed). The handshake runs through ops->handshake.
 */
mmws__transport *mmws__tls_new(mmws__tls_ctx *ctx, int fd, const char *host,
                               char *detail, size_t detail_len);

#endif /* MMWS_NET_TRANSPORT_H */
