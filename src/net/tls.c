/*
 * tls.c — the TLS transport over OpenSSL (net layer).
 *
 * Non-blocking rules kept here (as in hiredis ssl.c): a read or write that
 * returns MMWS_EWANTREAD/MMWS_EWANTWRITE is retried once the fd is ready in
 * the direction asked for, which can be the other direction (a write may
 * need to read, a read may need to write); a write is retried with the same
 * bytes and length. SNI is only a hint: the certificate is checked against
 * the host with SSL_set1_host (names) or the IP parameter (literals).
 *
 * The socket is wrapped in a BIO of our own instead of SSL_set_fd's, so
 * that sends use MSG_NOSIGNAL (a peer that resets the connection yields
 * MMWS_EIO, never SIGPIPE) and a failed recv/send keeps its errno for the
 * detail. It is as thin as OpenSSL's: one recv or send per call.
 *
 * The OpenSSL error queue is per thread. It is cleared before every SSL_*
 * call and drained into the detail after every failure, so one
 * connection's errors never show up on another.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "codec/err_internal.h"
#include "net/transport.h"

struct mmws__tls_ctx {
    SSL_CTX *ssl_ctx;     /* settings and trust store shared by connections */
    BIO_METHOD *bio_meth; /* the socket BIO every connection's SSL uses */
    int verify;           /* 1: check the peer's chain and host name */
    int refs;             /* holders (connections, a pool); one loop's
                             thread only */
};

/* A TLS connection; handed out as its first member. */
typedef struct tls_transport {
    mmws__transport base; /* ops, the owned fd and the detail buffer */
    SSL *ssl;             /* the connection; owns the BIO */
    const char *sys_op;   /* "recv" or "send" after one failed, else NULL */
    int sys_errno;        /* that call's errno */
    int eof;              /* 1 once recv returned 0 (the peer's FIN) */
    int fatal;            /* 1 after an error that forbids SSL_shutdown */
} tls_transport;


/*
 * Takes the oldest queued OpenSSL error (the root cause), writes its reason
 * and any text OpenSSL attached to it into buf, and empties the queue.
 * When any queued error is an allocation failure the text starts with "out
 * of memory: " and errno is ENOMEM. Returns the error code, 0 if the queue
 * was empty ("unknown error").
 */
static unsigned long drain_errors(char *buf, size_t len) {
    const char *data = NULL;
    int flags = 0;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    unsigned long e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
#else
    unsigned long e = ERR_get_error_line_data(NULL, NULL, &data, &flags);
#endif
    char text[256];
    if (e == 0) {
        mmws__detail(text, sizeof text, "unknown error");
    } else {
        const char *reason = ERR_reason_error_string(e);
        char whole[256];
        if (reason == NULL) {
            ERR_error_string_n(e, whole, sizeof whole);
            reason = whole;
        }
        if (data != NULL && (flags & ERR_TXT_STRING) && data[0] != '\0')
            mmws__detail(text, sizeof text, "%s (%s)", reason, data);
        else
            mmws__detail(text, sizeof text, "%s", reason);
    }
    /* A failed allocation deep inside OpenSSL often surfaces as a generic
     * reason ("init fail", "PEM lib") with the malloc failure queued
     * after it: the sentence then names memory, and errno says ENOMEM so
     * a caller can tell "no memory" from "bad settings". */
    int nomem = 0;
    for (unsigned long x = e; x != 0; x = ERR_get_error())
        if (ERR_GET_REASON(x) == ERR_R_MALLOC_FAILURE ||
            (ERR_GET_LIB(x) == ERR_LIB_SYS && ERR_GET_REASON(x) == ENOMEM))
            nomem = 1;
    mmws__detail(buf, len, "%s%s", nomem ? "out of memory: " : "", text);
    ERR_clear_error();
    if (nomem) errno = ENOMEM;
    return e;
}

/*
 * An allocation that failed inside an OpenSSL call often surfaces as some
 * other reason ("PEM lib", "EC lib", even "hostname mismatch"). Callers
 * clear errno before the call; when it reads ENOMEM afterwards, a detail
 * that does not say so yet is prefixed with "out of memory: " so the
 * sentence names the cause, and errno is left ENOMEM for the caller.
 */
static void note_nomem(char *detail, size_t len, int err) {
    errno = err;
    if (err != ENOMEM || detail == NULL || len == 0 ||
        strstr(detail, "out of memory") != NULL)
        return;
    char was[MMWS__DETAIL_LEN];
    mmws__detail(was, sizeof was, "%s", detail);
    mmws__detail(detail, len, "out of memory: %s", was);
}

/* ---------------------------------------------------------- socket BIO -- */

/* One recv into OpenSSL's buffer; marks a retry on EAGAIN, EOF on 0. */
static int bio_read(BIO *b, char *buf, int len) {
    tls_transport *tt = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = recv(tt->base.fd, buf, (size_t)len, 0);
        if (n > 0) return (int)n;
        if (n == 0) {
            tt->eof = 1;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_read(b);
            return -1;
        }
        tt->sys_op = "recv";
        tt->sys_errno = errno;
        return -1;
    }
}

/* One send of OpenSSL's records, without SIGPIPE; a retry on EAGAIN. */
static int bio_write(BIO *b, const char *buf, int len) {
    tls_transport *tt = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = send(tt->base.fd, buf, (size_t)len, MSG_NOSIGNAL);
        if (n >= 0) return (int)n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_write(b);
            return -1;
        }
        tt->sys_op = "send";
        tt->sys_errno = errno;
        return -1;
    }
}

/* The controls libssl uses on a socket BIO: flush (nothing buffered here),
 * EOF (OpenSSL 3 turns EOF into "unexpected eof while reading") and the fd. */
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    tls_transport *tt = BIO_get_data(b);
    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return tt->eof;
    case BIO_C_GET_FD:
        if (ptr != NULL) *(int *)ptr = tt->base.fd;
        return tt->base.fd;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------- context -- */

/* Refuses to prompt for a key's passphrase: encrypted keys fail to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *user) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)user;
    return 0;
}

/* Describes a file that failed to load: the OS's reason when the file
 * cannot be read, OpenSSL's otherwise. */
static void file_detail(char *detail, size_t detail_len, const char *field,
                        const char *path, int want_dir) {
    char reason[192];
    char ebuf[128];
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        int e = errno;
        ERR_clear_error();
        mmws__detail(reason, sizeof reason, "%s",
                   strerror_r(e, ebuf, sizeof ebuf));
    } else if (want_dir && !S_ISDIR(st.st_mode)) {
        ERR_clear_error();
        mmws__detail(reason, sizeof reason, "not a directory");
    } else {
        drain_errors(reason, sizeof reason);
    }
    mmws__detail(detail, detail_len, "%s \"%s\": %s", field, path, reason);
}

/* Writes "<what>: <OpenSSL's reason>" into detail. */
static void ossl_detail(char *detail, size_t detail_len, const char *what) {
    char reason[192];
    drain_errors(reason, sizeof reason);
    mmws__detail(detail, detail_len, "%s: %s", what, reason);
}

mmws__tls_ctx *mmws__tls_ctx_new(const mmws__tls_config *cfg, char *detail,
                                 size_t detail_len) {
    static const mmws__tls_config defaults = {1, NULL, NULL, NULL, NULL};
    if (cfg == NULL) cfg = &defaults;
    ERR_clear_error();
    errno = 0;
    mmws__tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        mmws__detail(detail, detail_len, "out of memory");
        return NULL;
    }
    ctx->refs = 1;
    ctx->verify = cfg->verify != 0;
    ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (ctx->ssl_ctx == NULL) {
        ossl_detail(detail, detail_len, "SSL_CTX_new");
        goto fail;
    }
    SSL_CTX *sc = ctx->ssl_ctx;
    if (!SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION)) {
        ossl_detail(detail, detail_len, "TLS 1.2 minimum");
        goto fail;
    }
    /* Partial writes so a large send returns what went out; a moving
     * buffer so a retry may come from a grown queue with the same bytes;
     * buffers kept (no RELEASE_BUFFERS) so steady state never allocates. */
    SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_clear_mode(sc, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(sc, no_passphrase);
    SSL_CTX_set_verify(sc, ctx->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);

    if (cfg->ca_file != NULL &&
        !SSL_CTX_load_verify_locations(sc, cfg->ca_file, NULL)) {
        file_detail(detail, detail_len, "tls_ca_file", cfg->ca_file, 0);
        goto fail;
    }
    if (cfg->ca_dir != NULL) {
        struct stat st;
        if (stat(cfg->ca_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
            !SSL_CTX_load_verify_locations(sc, NULL, cfg->ca_dir)) {
            file_detail(detail, detail_len, "tls_ca_dir", cfg->ca_dir, 1);
            goto fail;
        }
    }
    if (ctx->verify && cfg->ca_file == NULL && cfg->ca_dir == NULL &&
        !SSL_CTX_set_default_verify_paths(sc)) {
        ossl_detail(detail, detail_len, "system trust store");
        goto fail;
    }

    if (cfg->key_file != NULL && cfg->cert_file == NULL) {
        mmws__detail(detail, detail_len,
                   "tls_key_file \"%s\" given without tls_cert_file",
                   cfg->key_file);
        goto fail;
    }
    if (cfg->cert_file != NULL) {
        const char *key = cfg->key_file != NULL ? cfg->key_file : cfg->cert_file;
        const char *key_field =
            cfg->key_file != NULL ? "tls_key_file" : "tls_cert_file";
        if (!SSL_CTX_use_certificate_chain_file(sc, cfg->cert_file)) {
            file_detail(detail, detail_len, "tls_cert_file", cfg->cert_file, 0);
            goto fail;
        }
        if (!SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM)) {
            if (cfg->key_file == NULL) {
                ERR_clear_error();
                mmws__detail(detail, detail_len,
                           "tls_cert_file \"%s\" holds no private key "
                           "(set tls_key_file)", key);
            } else {
                file_detail(detail, detail_len, key_field, key, 0);
            }
            goto fail;
        }
        if (!SSL_CTX_check_private_key(sc)) {
            char reason[192];
            drain_errors(reason, sizeof reason);
            mmws__detail(detail, detail_len,
                       "%s \"%s\" does not match tls_cert_file \"%s\": %s",
                       key_field, key, cfg->cert_file, reason);
            goto fail;
        }
    }

    ctx->bio_meth =
        BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "mmws socket");
    if (ctx->bio_meth == NULL || !BIO_meth_set_read(ctx->bio_meth, bio_read) ||
        !BIO_meth_set_write(ctx->bio_meth, bio_write) ||
        !BIO_meth_set_ctrl(ctx->bio_meth, bio_ctrl)) {
        ossl_detail(detail, detail_len, "BIO_meth_new");
        goto fail;
    }
    return ctx;

fail:;
    int saved = errno; /* ENOMEM tells the caller it was memory */
    mmws__tls_ctx_free(ctx);
    ERR_clear_error();
    note_nomem(detail, detail_len, saved);
    return NULL;
}

/* One more holder of ctx; returns ctx. */
mmws__tls_ctx *mmws__tls_ctx_ref(mmws__tls_ctx *ctx) {
    ctx->refs++;
    return ctx;
}

/* Drops one holder; the last frees the context, and every transport made
 * from it must be destroyed first (they share its BIO method). NULL is a
 * no-op. */
void mmws__tls_ctx_free(mmws__tls_ctx *ctx) {
    if (ctx == NULL || --ctx->refs > 0) return;
    SSL_CTX_free(ctx->ssl_ctx);
    if (ctx->bio_meth != NULL) BIO_meth_free(ctx->bio_meth);
    free(ctx);
}

/* ----------------------------------------------------------- transport -- */

/*
 * Maps a failed SSL_* call's result to an MMWS code, writing the detail for
 * failures: the errno of a failed recv/send ("recv: Connection reset by
 * peer"), "connection closed without TLS close_notify" for a bare EOF, the
 * verification result for a rejected certificate, else "<op>: <OpenSSL's
 * reason>". A clean close_notify is 0.
 */
static ptrdiff_t tls_fail(tls_transport *tt, int ret, const char *op) {
    char *d = tt->base.detail;
    size_t dl = sizeof tt->base.detail;
    switch (SSL_get_error(tt->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return MMWS_EWANTREAD;
    case SSL_ERROR_WANT_WRITE:
        return MMWS_EWANTWRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        tt->fatal = 1;
        if (tt->sys_op != NULL) {
            char ebuf[128];
            ERR_clear_error();
            mmws__detail(d, dl, "%s: %s", tt->sys_op,
                       strerror_r(tt->sys_errno, ebuf, sizeof ebuf));
            return MMWS_EIO;
        }
        ERR_clear_error();
        mmws__detail(d, dl, "connection closed without TLS close_notify");
        return MMWS_ECLOSED;
    case SSL_ERROR_SSL: {
        tt->fatal = 1;
        unsigned long e = ERR_peek_error();
        long vr = SSL_get_verify_result(tt->ssl);
        if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
            vr != X509_V_OK) {
            int saved = errno;
            ERR_clear_error();
            mmws__detail(d, dl, "certificate verify failed: %s",
                       X509_verify_cert_error_string(vr));
            note_nomem(d, dl, saved);
            return MMWS_ETLS;
        }
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
        if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            mmws__detail(d, dl, "connection closed without TLS close_notify");
            return MMWS_ECLOSED;
        }
#endif
        int saved = errno;
        ossl_detail(d, dl, op);
        note_nomem(d, dl, errno == ENOMEM ? ENOMEM : saved);
        return MMWS_ETLS;
    }
    default: {
        tt->fatal = 1;
        int saved = errno;
        ossl_detail(d, dl, op);
        note_nomem(d, dl, errno == ENOMEM ? ENOMEM : saved);
        return MMWS_ETLS;
    }
    }
}

/* Advances the client handshake. Every failure is MMWS_ETLS, including a
 * connection reset or closed mid-handshake ("handshake: ..."). */
static int tls_handshake(mmws__transport *t) {
    tls_transport *tt = (tls_transport *)(void *)t;
    ERR_clear_error();
    errno = 0; /* ENOMEM after a failure names memory (note_nomem) */
    int ret = SSL_do_handshake(tt->ssl);
    if (ret == 1) return 0;
    ptrdiff_t rc = tls_fail(tt, ret, "handshake");
    if (rc == MMWS_EWANTREAD || rc == MMWS_EWANTWRITE) return (int)rc;
    if (rc == MMWS_EIO || rc == MMWS_ECLOSED || rc == 0) {
        char cause[MMWS__DETAIL_LEN - 16];
        if (rc == 0)
            mmws__detail(cause, sizeof cause, "peer sent close_notify");
        else if (rc == MMWS_ECLOSED)
            mmws__detail(cause, sizeof cause, "connection closed by the peer");
        else
            mmws__detail(cause, sizeof cause, "%s", t->detail);
        mmws__detail(t->detail, sizeof t->detail, "handshake: %s", cause);
    }
    return MMWS_ETLS;
}

/* SSL_read_ex into buf (len > 0); results as in transport.h. Call again
 * without waiting while pending() is non-zero. */
static ptrdiff_t tls_read(mmws__transport *t, void *buf, size_t len) {
    tls_transport *tt = (tls_transport *)(void *)t;
    size_t n;
    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(tt->ssl, buf, len, &n)) return (ptrdiff_t)n;
    return tls_fail(tt, 0, "read");
}

/*
 * SSL_write_ex from buf (len > 0). Returns the count written, which may
 * be short (partial writes are on: whole records went out). After
 * MMWS_EWANTREAD/WRITE, OpenSSL holds records made from the first bytes
 * of buf: the next call must pass the same bytes and the same len (the
 * pointer may change), never fewer, or data is lost or corrupted.
 */
static ptrdiff_t tls_write(mmws__transport *t, const void *buf, size_t len) {
    tls_transport *tt = (tls_transport *)(void *)t;
    size_t n;
    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(tt->ssl, buf, len, &n)) return (ptrdiff_t)n;
    ptrdiff_t rc = tls_fail(tt, 0, "write");
    if (rc == 0) {
        mmws__detail(t->detail, sizeof t->detail, "peer sent close_notify");
        return MMWS_ECLOSED;
    }
    return rc;
}

/* Decrypted bytes of the current record not yet read. */
static size_t tls_pending(const mmws__transport *t) {
    const tls_transport *tt = (const tls_transport *)(const void *)t;
    int n = SSL_pending(tt->ssl);
    return n > 0 ? (size_t)n : 0;
}

/* Sends close_notify once if the session is healthy (not waiting for the
 * peer's), then FIN. */
static void tls_shutdown(mmws__transport *t) {
    tls_transport *tt = (tls_transport *)(void *)t;
    if (!tt->fatal && SSL_is_init_finished(tt->ssl)) {
        ERR_clear_error();
        (void)SSL_shutdown(tt->ssl);
        ERR_clear_error();
    }
    (void)shutdown(t->fd, SHUT_WR);
}

/* Frees the session and its BIO, closes the socket, frees the transport. */
static void tls_destroy(mmws__transport *t) {
    tls_transport *tt = (tls_transport *)(void *)t;
    SSL_free(tt->ssl);
    if (t->fd >= 0) close(t->fd);
    free(tt);
}

static const mmws__transport_ops tls_ops = {
    "tls",       tls_handshake, tls_read,    tls_write,
    tls_pending, tls_shutdown,  tls_destroy,
};

/* 1 if host is an IPv4 or IPv6 literal (IPv6 without brackets). */
static int is_ip_literal(const char *host) {
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, addr) == 1 ||
           inet_pton(AF_INET6, host, addr) == 1;
}

mmws__transport *mmws__tls_new(mmws__tls_ctx *ctx, int fd, const char *host,
                               char *detail, size_t detail_len) {
    if (ctx == NULL || fd < 0) {
        mmws__detail(detail, detail_len, "no context or no socket");
        return NULL;
    }
    if (ctx->verify && (host == NULL || host[0] == '\0')) {
        mmws__detail(detail, detail_len, "no host name to verify");
        return NULL;
    }
    ERR_clear_error();
    errno = 0;
    tls_transport *tt = calloc(1, sizeof *tt);
    if (tt == NULL) {
        mmws__detail(detail, detail_len, "out of memory");
        return NULL;
    }
    tt->base.ops = &tls_ops;
    tt->base.fd = fd;
    tt->ssl = SSL_new(ctx->ssl_ctx);
    if (tt->ssl == NULL) {
        ossl_detail(detail, detail_len, "SSL_new");
        goto fail;
    }
    BIO *bio = BIO_new(ctx->bio_meth);
    if (bio == NULL) {
        ossl_detail(detail, detail_len, "BIO_new");
        goto fail;
    }
    BIO_set_data(bio, tt);
    BIO_set_init(bio, 1);
    SSL_set_bio(tt->ssl, bio, bio);
    SSL_set_connect_state(tt->ssl);

    if (host != NULL && host[0] != '\0') {
        int ip = is_ip_literal(host);
        /* RFC 6066: SNI carries host names only, never addresses. The
         * macro casts the const away (OpenSSL copies the name). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
        if (!ip && !SSL_set_tlsext_host_name(tt->ssl, host)) {
#pragma GCC diagnostic pop
            ossl_detail(detail, detail_len, "SNI");
            goto fail;
        }
        if (ctx->verify) {
            int ok;
            if (ip) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tt->ssl),
                                                   host);
            } else {
                SSL_set_hostflags(tt->ssl,
                                  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                ok = SSL_set1_host(tt->ssl, host);
            }
            if (!ok) {
                char reason[160];
                drain_errors(reason, sizeof reason);
                mmws__detail(detail, detail_len,
                           "cannot verify against host \"%s\": %s", host,
                           reason);
                goto fail;
            }
        }
    }
    return &tt->base;

fail:;
    int saved = errno;
    SSL_free(tt->ssl);
    free(tt);
    ERR_clear_error();
    note_nomem(detail, detail_len, saved);
    return NULL;
}
