/*
 * test_faults.c — mmws_conn against TLS and network faults (issue 5 §2):
 * refused certificates retried, a TLS handshake that stalls, a fatal TLS
 * alert and a corrupted record mid-stream, close_notify without a
 * WebSocket close, a connection cut without close_notify, a reset in the
 * middle of a frame, and half a frame followed by silence.
 *
 * A scripted server runs on its own thread with blocking sockets on
 * 127.0.0.1 (OpenSSL's server side for wss://, certificates from
 * tests/certs.sh). It accepts connections in a loop and runs one script
 * step per connection, so a fault on the first connection and a healthy
 * second one show the client reconnecting. For every fault the test
 * checks: the error names the fault, the state goes to DISCONNECTED
 * (BACKOFF with auto_reconnect, CLOSED without), the client reconnects and
 * receives a message (or stays closed), no partial message is delivered,
 * the stats count the connections, and no fd is left open after
 * mmws_conn_free (memory: ASan/LSan).
 *
 * Synchronisation is by condition, never by sleeping: a mid-stream fault
 * is injected only after the client has answered the message before it
 * ("before" -> "ack"), so the fault lands on an open, working stream.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "test.h"

static char certs[256];

/* ------------------------------------------------------ server side -- */

/* What the server does with one accepted connection. */
typedef enum step {
    ST_GOOD,        /* upgrade, send "hello", hold until the client leaves */
    ST_STALL,       /* accept TCP, never answer the ClientHello */
    ST_CORRUPT,     /* "before", then a garbage application-data record */
    ST_ALERT,       /* "before", then an encrypted fatal alert (80) */
    ST_NOTIFY,      /* "before", then close_notify, no WebSocket close */
    ST_CUT,         /* "before", then close() without close_notify */
    ST_RST_HALF,    /* "before", half a frame, then a reset (SO_LINGER 0) */
    ST_HALF_SILENT, /* "before", half a frame, then silence */
    ST_HALF_RECORD  /* "before", half a TLS record header, then silence */
} step;

typedef struct fsrv {
    int lfd, port;
    int tls;                 /* 1: wss (TLS 1.3 server), 0: plain ws */
    SSL_CTX *good, *bad;     /* server.pem, and a refused certificate */
    int use_bad;             /* atomic: handshake with `bad` */
    step steps[4];           /* script per connection; the last repeats */
    size_t nsteps;
    int accepted;            /* atomic: connections accepted */
    int closed;              /* atomic: connections finished and closed */
    int alerts_sent;         /* atomic: ST_ALERT records actually sent */
    int stop;                /* atomic: end the accept loop */
    pthread_t th;
} fsrv;

/* One accepted connection. */
typedef struct sconn {
    fsrv *srv;
    int fd;
    SSL *ssl;                 /* NULL for plain ws */
    uint8_t secret[64];       /* server application traffic secret 0 */
    size_t secret_len;
    uint64_t records;         /* application records sent under it */
} sconn;

static int aload(int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void astore(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static int ainc(int *p) { return __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST); }

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Keeps the server's application traffic secret so that ST_ALERT can
 * encrypt an alert record of its own (OpenSSL has no call that sends an
 * arbitrary fatal alert). Line: "SERVER_TRAFFIC_SECRET_0 <random> <hex>". */
static void keylog_cb(const SSL *ssl, const char *line) {
    sconn *sc = SSL_get_app_data(ssl);
    static const char tag[] = "SERVER_TRAFFIC_SECRET_0 ";
    if (!sc || strncmp(line, tag, sizeof tag - 1) != 0) return;
    const char *hex = strchr(line + sizeof tag - 1, ' ');
    if (!hex) return;
    hex++;
    size_t n = strlen(hex) / 2;
    if (n > sizeof sc->secret) return;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return;
        sc->secret[i] = (uint8_t)(hi << 4 | lo);
    }
    sc->secret_len = n;
}

/* A server context: TLS 1.3 with AES-128-GCM only (so ST_ALERT knows the
 * record protection), no session tickets (so the application records are
 * exactly the ones the script writes). NULL on failure. */
static SSL_CTX *srv_ctx(const char *name) {
    char crt[300], key[300];
    snprintf(crt, sizeof crt, "%s/%s.pem", certs, name);
    snprintf(key, sizeof key, "%s/%s.key", certs, name);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") ||
        !SSL_CTX_set_num_tickets(ctx, 0) ||
        SSL_CTX_use_certificate_chain_file(ctx, crt) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "server context %s: %s\n", name,
                ERR_reason_error_string(ERR_get_error()));
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    return ctx;
}

static int s_write(sconn *sc, const void *p, size_t n) {
    if (sc->ssl) {
        size_t w;
        if (!SSL_write_ex(sc->ssl, p, n, &w) || w != n) {
            ERR_clear_error();
            return -1;
        }
        sc->records += (n + 16383) / 16384;
        return 0;
    }
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(sc->fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes straight onto the TCP socket, underneath TLS. */
static int s_write_raw(sconn *sc, const void *p, size_t n) {
    return send(sc->fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Reads what is there, at least one byte (the socket has a 5 s receive
 * timeout). Returns the count, or <= 0. */
static int s_read(sconn *sc, void *p, size_t n) {
    if (sc->ssl) {
        size_t r;
        if (!SSL_read_ex(sc->ssl, p, n, &r)) {
            ERR_clear_error();
            return -1;
        }
        return (int)r;
    }
    return (int)recv(sc->fd, p, n, 0);
}

/* Reads the upgrade request and answers 101. 0 or -1. */
static int s_upgrade(sconn *sc) {
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
        if (s_read(sc, req + got, 1) != 1) return -1;
        got++;
        req[got] = '\0';
        if (got >= 4 && memcmp(req + got - 4, "\r\n\r\n", 4) == 0) break;
    }
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    char acc[MMWS_HS_ACCEPT_LEN + 1];
    if (!k || mmws_handshake_accept(k + 19, MMWS_HS_KEY_LEN, acc)) return -1;
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
                     "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "\r\n", acc);
    return s_write(sc, resp, (size_t)n);
}

/* Sends one unmasked TEXT frame (payload <= 125 bytes). */
static int s_text(sconn *sc, const char *text) {
    uint8_t f[128];
    size_t n = strlen(text);
    f[0] = 0x81;
    f[1] = (uint8_t)n;
    memcpy(f + 2, text, n);
    return s_write(sc, f, n + 2);
}

/* Holds the connection, discarding what arrives, until the client closes
 * it or the test stops the server. */
static void s_hold(sconn *sc) {
    uint8_t sink[4096];
    while (!aload(&sc->srv->stop)) {
        struct pollfd pf = {sc->fd, POLLIN, 0};
        int pr = poll(&pf, 1, 50);
        if (pr < 0) return;
        if (pr == 0) continue;
        if (recv(sc->fd, sink, sizeof sink, 0) <= 0) return;
    }
}

/* HKDF-Expand-Label (RFC 8446 7.1) with SHA-256 and an empty context. */
static int hkdf_label(const uint8_t *secret, size_t slen, const char *label,
                      uint8_t *out, size_t olen) {
    uint8_t info[64];
    char full[32];
    int fl = snprintf(full, sizeof full, "tls13 %s", label);
    size_t n = 0;
    info[n++] = (uint8_t)(olen >> 8);
    info[n++] = (uint8_t)olen;
    info[n++] = (uint8_t)fl;
    memcpy(info + n, full, (size_t)fl);
    n += (size_t)fl;
    info[n++] = 0;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    int ok = pc && EVP_PKEY_derive_init(pc) > 0 &&
             EVP_PKEY_CTX_set_hkdf_mode(pc, EVP_PKEY_HKDEF_MODE_EXPAND_ONLY) > 0 &&
             EVP_PKEY_CTX_set_hkdf_md(pc, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_key(pc, secret, (int)slen) > 0 &&
             EVP_PKEY_CTX_add1_hkdf_info(pc, info, (int)n) > 0 &&
             EVP_PKEY_derive(pc, out, &olen) > 0;
    EVP_PKEY_CTX_free(pc);
    return ok ? 0 : -1;
}

/* Sends a fatal internal_error alert (80) as the next TLS 1.3 record,
 * protected like OpenSSL's own: AES-128-GCM under the server's traffic
 * key, nonce = iv XOR sequence number, inner content type 21. */
static int s_alert(sconn *sc) {
    uint8_t key[16], iv[12], nonce[12], rec[5 + 3 + 16];
    if (sc->secret_len != 32 ||
        hkdf_label(sc->secret, sc->secret_len, "key", key, sizeof key) ||
        hkdf_label(sc->secret, sc->secret_len, "iv", iv, sizeof iv))
        return -1;
    memcpy(nonce, iv, sizeof nonce);
    for (int i = 0; i < 8; i++) nonce[11 - i] ^= (uint8_t)(sc->records >> (8 * i));
    static const uint8_t inner[3] = {2, 80, 21}; /* fatal, internal_error */
    rec[0] = 0x17;
    rec[1] = 0x03;
    rec[2] = 0x03;
    rec[3] = 0;
    rec[4] = 3 + 16;
    EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    int ok = cc &&
             EVP_EncryptInit_ex(cc, EVP_aes_128_gcm(), NULL, NULL, NULL) &&
             EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) &&
             EVP_EncryptInit_ex(cc, NULL, NULL, key, nonce) &&
             EVP_EncryptUpdate(cc, NULL, &l1, rec, 5) &&
             EVP_EncryptUpdate(cc, rec + 5, &l1, inner, 3) && l1 == 3 &&
             EVP_EncryptFinal_ex(cc, rec + 5 + l1, &l2) && l2 == 0 &&
             EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_GET_TAG, 16, rec + 8);
    EVP_CIPHER_CTX_free(cc);
    if (!ok || s_write_raw(sc, rec, sizeof rec)) return -1;
    ainc(&sc->srv->alerts_sent);
    return 0;
}

/* Runs one step on an accepted connection, then closes it. */
static void serve(fsrv *s, int fd, step st) {
    sconn sc;
    memset(&sc, 0, sizeof sc);
    sc.srv = s;
    sc.fd = fd;
    struct timeval tv = {5, 0}; /* a hang guard for blocking reads */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (st == ST_STALL) {
        s_hold(&sc); /* reads the ClientHello and never answers */
        goto out;
    }
    if (s->tls) {
        sc.ssl = SSL_new(aload(&s->use_bad) ? s->bad : s->good);
        if (!sc.ssl) goto out;
        SSL_set_app_data(sc.ssl, &sc);
        SSL_set_fd(sc.ssl, fd);
        if (SSL_accept(sc.ssl) != 1) { /* the client refused the cert */
            ERR_clear_error();
            goto out;
        }
    }
    if (s_upgrade(&sc)) goto out;
    if (st == ST_GOOD) {
        if (s_text(&sc, "hello") == 0) s_hold(&sc);
        goto out;
    }
    /* Mid-stream: a working message first, and its answer, so that the
     * fault comes on an open stream the client has used. */
    uint8_t ack[64];
    if (s_text(&sc, "before") || s_read(&sc, ack, sizeof ack) <= 0) goto out;
    static const uint8_t half[] = {0x81, 10, 'P', 'A', 'R', 'T'}; /* 4 of 10 */
    switch (st) {
    case ST_CORRUPT: {
        /* An application-data record whose body is garbage: the client's
         * decryption (AEAD tag check) must fail. */
        uint8_t rec[5 + 32];
        memset(rec, 0xAB, sizeof rec);
        rec[0] = 0x17;
        rec[1] = 0x03;
        rec[2] = 0x03;
        rec[3] = 0;
        rec[4] = 32;
        if (s_write_raw(&sc, rec, sizeof rec) == 0) s_hold(&sc);
        break;
    }
    case ST_ALERT:
        if (s_alert(&sc) == 0) s_hold(&sc);
        break;
    case ST_NOTIFY:
        (void)SSL_shutdown(sc.ssl);
        ERR_clear_error();
        s_hold(&sc);
        break;
    case ST_CUT:
        break; /* close() below, without SSL_shutdown */
    case ST_RST_HALF: {
        if (s_write(&sc, half, sizeof half)) break;
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
    }
    case ST_HALF_SILENT:
        if (s_write(&sc, half, sizeof half) == 0) s_hold(&sc);
        break;
    case ST_HALF_RECORD: {
        /* Three of a record header's five bytes: TLS itself is left
         * waiting, so no byte ever reaches the WebSocket layer. */
        static const uint8_t hdr[3] = {0x17, 0x03, 0x03};
        if (s_write_raw(&sc, hdr, sizeof hdr) == 0) s_hold(&sc);
        break;
    }
    default:
        break;
    }
out:
    SSL_free(sc.ssl); /* sends nothing: close_notify only by SSL_shutdown */
    close(fd);
}

static void *srv_main(void *arg) {
    fsrv *s = arg;
    while (!aload(&s->stop)) {
        struct pollfd pf = {s->lfd, POLLIN, 0};
        if (poll(&pf, 1, 20) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        size_t i = (size_t)ainc(&s->accepted) - 1;
        serve(s, fd, s->steps[i < s->nsteps ? i : s->nsteps - 1]);
        ainc(&s->closed);
    }
    return NULL;
}

/* Starts a server running steps[0] on the first connection, steps[1] on
 * the second, ..., the last step on every later one. bad: the refused
 * certificate's name (TLS), or NULL. */
static int srv_start(fsrv *s, int tls, const step *steps, size_t n,
                     const char *bad) {
    memset(s, 0, sizeof *s);
    s->tls = tls;
    memcpy(s->steps, steps, n * sizeof *steps);
    s->nsteps = n;
    if (tls && (!(s->good = srv_ctx("server")) ||
                (bad && !(s->bad = srv_ctx(bad)))))
        goto fail;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) ||
        listen(s->lfd, 16) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al)) {
        perror("fault server listen");
        goto fail;
    }
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->th, NULL, srv_main, s) != 0) goto fail;
    return 0;
fail:
    CHECK_FAIL("fault server start");
    if (s->lfd > 0) close(s->lfd);
    SSL_CTX_free(s->good);
    SSL_CTX_free(s->bad);
    return -1;
}

static void srv_stop(fsrv *s) {
    astore(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    SSL_CTX_free(s->good);
    SSL_CTX_free(s->bad);
}

/* ------------------------------------------------------ client side -- */

/* What the client saw. */
typedef struct seen {
    mmws_conn *conn;
    size_t nmsgs;
    char msgs[8][32];      /* delivered messages, in order */
    int attempts;          /* transitions to CONNECTING */
    int ups;               /* transitions to CONNECTED */
    int downs;             /* transitions to DISCONNECTED */
    int bad_text;          /* drops whose error lacked want_text */
    const char *want_text; /* every drop's error must contain it, or NULL */
    char first_err[256];   /* the error and code at the first drop */
    int first_code;
    mmws_phase first_phase; /* the phase right after the first drop */
    uint64_t first_connects;
} seen;

static void on_msg(void *user, const mmws_msg *m) {
    seen *s = user;
    if (s->nmsgs < 8) {
        size_t n = m->len < 31 ? m->len : 31;
        memcpy(s->msgs[s->nmsgs], m->data, n);
        s->msgs[s->nmsgs][n] = '\0';
    }
    s->nmsgs++;
    if (m->len == 6 && memcmp(m->data, "before", 6) == 0)
        (void)mmws_conn_send_text(s->conn, "ack", 3);
}

static void on_state(void *user, mmws_conn *c, mmws_state from,
                     mmws_state to) {
    seen *s = user;
    (void)from;
    if (to == MMWS_CONNECTING) s->attempts++;
    if (to == MMWS_CONNECTED) s->ups++;
    if (to != MMWS_DISCONNECTED) return;
    mmws_conn_stats st;
    mmws_conn_stats_get(c, &st);
    if (s->want_text && !strstr(mmws_conn_last_error(c), s->want_text)) {
        s->bad_text++;
        fprintf(stderr, "  drop %d: \"%s\" lacks \"%s\"\n", s->downs + 1,
                mmws_conn_last_error(c), s->want_text);
    }
    if (s->downs++ == 0) {
        snprintf(s->first_err, sizeof s->first_err, "%s",
                 mmws_conn_last_error(c));
        s->first_code = st.last_error_code;
        s->first_phase = st.phase;
        s->first_connects = st.connects;
    }
}

/* Runs the loop until cond holds or 15 s pass (a hang guard, not a timing
 * assertion); a timeout is a failed check. */
#define RUN_UNTIL(loop, cond)                                              \
    do {                                                                   \
        uint64_t t_end_ = mmws_now_ns() + 15000000000ull;                  \
        while (!(cond) && mmws_now_ns() < t_end_)                          \
            mmws_loop_run_once((loop), 10);                                \
        t_checks++;                                                        \
        if (!(cond)) {                                                     \
            t_failed++;                                                    \
            T_FAIL_HDR();                                                  \
            fprintf(stderr, "timed out waiting for %s\n", #cond);          \
        }                                                                  \
    } while (0)

/* Waits (without running the client's loop) until cond holds or 15 s. */
#define WAIT_FOR(cond)                                                     \
    do {                                                                   \
        uint64_t t_end_ = mmws_now_ns() + 15000000000ull;                  \
        while (!(cond) && mmws_now_ns() < t_end_) th_sleep_ms(1);          \
        t_checks++;                                                        \
        if (!(cond)) {                                                     \
            t_failed++;                                                    \
            T_FAIL_HDR();                                                  \
            fprintf(stderr, "timed out waiting for %s\n", #cond);          \
        }                                                                  \
    } while (0)

static void check_text(const char *got, const char *want) {
    t_checks++;
    if (strstr(got, want)) return;
    t_failed++;
    T_FAIL_HDR();
    fprintf(stderr, "error \"%s\" lacks \"%s\"\n", got, want);
}

static char ca_path[300];

/* A client config for the fault server: wss://localhost (resolved to
 * 127.0.0.1 without DNS) or ws://127.0.0.1, fast backoff, no pings. */
static void client_config(mmws_conn_config *cfg, const fsrv *s, char *url,
                          size_t url_len, int reconnect) {
    if (s->tls)
        snprintf(url, url_len, "wss://localhost:%d/", s->port);
    else
        snprintf(url, url_len, "ws://127.0.0.1:%d/", s->port);
    mmws_conn_config_default(cfg, url);
    cfg->allow_plaintext = !s->tls;
    cfg->tls_ca_file = ca_path;
    cfg->resolve = "127.0.0.1";
    cfg->dns_servers = "127.0.0.1:1"; /* never leave loopback */
    cfg->auto_reconnect = reconnect;
    cfg->backoff_base_ms = 5;
    cfg->backoff_cap_ms = 20;
    cfg->latency_ping_interval_ms = 0;
}

static mmws_conn *client_new(mmws_loop *loop, const mmws_conn_config *cfg,
                             seen *s) {
    mmws_conn *c = NULL;
    int rc = mmws_conn_new(loop, cfg, on_msg, s, &c);
    CHECK_RC(rc, 0);
    if (rc) {
        fprintf(stderr, "  mmws_conn_new: %s\n", mmws_last_error());
        return NULL;
    }
    s->conn = c;
    mmws_conn_set_on_state(c, on_state, s);
    /* The first attempt began inside mmws_conn_new, before the callback. */
    if (mmws_conn_state(c) == MMWS_CONNECTING) s->attempts = 1;
    return c;
}

/* --------------------------------------------------------------- cases -- */

/* One fault on the first connection, then (with reconnect) a healthy one. */
typedef struct fault {
    const char *name;
    int tls;
    step st;
    int want_code;            /* the code of the drop */
    const char *want[2];      /* words the error must contain */
    int mid_stream;           /* "before" precedes the fault */
    uint32_t connect_timeout_ms, idle_timeout_ms;
    uint32_t ping_interval_ms, pong_timeout_ms;
} fault;

static void run_fault(const fault *f, int reconnect) {
    int fds0 = th_fd_count();
    fsrv srv;
    step steps[2] = {f->st, ST_GOOD};
    if (srv_start(&srv, f->tls, steps, 2, NULL)) return;
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    char url[64];
    client_config(&cfg, &srv, url, sizeof url, reconnect);
    if (f->connect_timeout_ms) cfg.connect_timeout_ms = f->connect_timeout_ms;
    if (f->idle_timeout_ms) cfg.idle_timeout_ms = f->idle_timeout_ms;
    if (f->ping_interval_ms) {
        cfg.latency_ping_interval_ms = f->ping_interval_ms;
        cfg.pong_timeout_ms = f->pong_timeout_ms;
    }
    seen s;
    memset(&s, 0, sizeof s);
    mmws_conn *c = client_new(loop, &cfg, &s);
    if (!c) goto out;
    const char *hello_msgs[2] = {"before", "hello"};
    size_t want_msgs;
    if (reconnect) {
        /* The first drop, then the healthy second script's message. */
        RUN_UNTIL(loop, s.nmsgs >= (f->mid_stream ? 2u : 1u));
        want_msgs = f->mid_stream ? 2 : 1;
        CHECK_EQ(s.first_phase, MMWS_PHASE_BACKOFF);
        CHECK_EQ(mmws_conn_state(c), MMWS_CONNECTED);
        CHECK_EQ(s.ups, f->mid_stream ? 2 : 1);
        CHECK_EQ(s.attempts, 2);
        CHECK_EQ(aload(&srv.accepted), 2);
    } else {
        RUN_UNTIL(loop, mmws_conn_phase(c) == MMWS_PHASE_CLOSED);
        want_msgs = f->mid_stream ? 1 : 0;
        CHECK_EQ(s.first_phase, MMWS_PHASE_CLOSED);
        CHECK_EQ(mmws_conn_state(c), MMWS_DISCONNECTED);
        CHECK_EQ(s.ups, f->mid_stream ? 1 : 0);
        CHECK_EQ(s.attempts, 1);
        CHECK_RC(mmws_conn_send_text(c, "x", 1), MMWS_ENOTCONN);
        /* It stays closed: no attempt within five backoff caps (a bounded
         * check of an absence; the verdict does not depend on speed). */
        uint64_t t_end = mmws_now_ns() + 5ull * cfg.backoff_cap_ms * 1000000ull;
        while (mmws_now_ns() < t_end) mmws_loop_run_once(loop, 10);
        CHECK_EQ(s.attempts, 1);
        CHECK_EQ(mmws_conn_phase(c), MMWS_PHASE_CLOSED);
        /* The error stays readable after the drop. */
        CHECK_STR(mmws_conn_last_error(c), s.first_err);
    }
    CHECK_EQ(s.downs, 1);
    CHECK_RC(s.first_code, f->want_code);
    for (int i = 0; i < 2; i++)
        if (f->want[i]) check_text(s.first_err, f->want[i]);
    printf("  %s%s: \"%s\"\n", f->name, reconnect ? " (reconnect)" : "",
           s.first_err);
    /* Only whole messages: "before" (mid-stream), then "hello" after the
     * reconnect; never a piece of the half-sent frame. */
    CHECK_EQ(s.nmsgs, want_msgs);
    const char *const *exp = f->mid_stream ? hello_msgs : hello_msgs + 1;
    for (size_t i = 0; i < want_msgs && i < s.nmsgs; i++)
        CHECK_STR(s.msgs[i], exp[i]);
    mmws_conn_stats st;
    mmws_conn_stats_get(c, &st);
    CHECK_EQ(s.first_connects, f->mid_stream ? 1 : 0);
    CHECK_EQ(st.connects, (reconnect ? 1 : 0) + (f->mid_stream ? 1 : 0));
    CHECK_EQ(st.reconnects, reconnect && f->mid_stream ? 1 : 0);
    CHECK_EQ(st.msgs_in, want_msgs);
    /* An abnormal end: no close code was received or sent. */
    CHECK_EQ(st.last_close_code, 0);
    if (f->st == ST_ALERT) CHECK_EQ(aload(&srv.alerts_sent), 1);
out:
    mmws_conn_free(c);
    srv_stop(&srv);
    if (c) CHECK_EQ(aload(&srv.accepted), reconnect ? 2 : 1);
    mmws_loop_free(loop);
    CHECK_EQ(th_fd_count(), fds0);
}

static void run_both(const fault *f) {
    run_fault(f, 1);
    run_fault(f, 0);
}

/* 1. Refused certificates, retried: with auto_reconnect every attempt
 * fails with the same clear error and no fd is left behind; once the
 * server has a good certificate the client connects. (The error text of a
 * single refusal is test_conn's tls_refused.) */
static void cert_retry(const char *bad, const char *want) {
    int fds0 = th_fd_count();
    fsrv srv;
    step steps[1] = {ST_GOOD};
    if (srv_start(&srv, 1, steps, 1, bad)) return;
    astore(&srv.use_bad, 1);
    mmws_loop *loop = mmws_loop_new(NULL);
    mmws_conn_config cfg;
    char url[64];
    client_config(&cfg, &srv, url, sizeof url, 1);
    cfg.backoff_base_ms = 1;
    cfg.backoff_cap_ms = 4;
    seen s;
    memset(&s, 0, sizeof s);
    s.want_text = want;
    mmws_conn *c = client_new(loop, &cfg, &s);
    if (!c) goto out;
    /* fds are counted between attempts: the client in BACKOFF (no socket)
     * and the server done with every connection it was sent. */
    RUN_UNTIL(loop, s.downs >= 1 && mmws_conn_phase(c) == MMWS_PHASE_BACKOFF);
    WAIT_FOR(aload(&srv.accepted) == s.attempts &&
             aload(&srv.closed) == s.attempts);
    int fds1 = th_fd_count();
    RUN_UNTIL(loop, s.downs >= 10 && mmws_conn_phase(c) == MMWS_PHASE_BACKOFF);
    WAIT_FOR(aload(&srv.accepted) == s.attempts &&
             aload(&srv.closed) == s.attempts);
    CHECK_EQ(th_fd_count(), fds1);
    CHECK_EQ(s.bad_text, 0);
    CHECK_EQ(s.ups, 0);
    CHECK_RC(s.first_code, MMWS_ETLS);
    check_text(s.first_err, "TLS");
    check_text(mmws_conn_last_error(c), want);
    mmws_conn_stats st;
    mmws_conn_stats_get(c, &st);
    CHECK_RC(st.last_error_code, MMWS_ETLS);
    CHECK_EQ(st.connects, 0);
    CHECK_EQ(st.reconnects, 0);
    /* Every failure was followed by a backoff under the growing ceiling. */
    CHECK(st.last_backoff_cap_ms == cfg.backoff_cap_ms);
    printf("  %s x%d: \"%s\"\n", bad, s.downs, mmws_conn_last_error(c));
    /* The server gets a good certificate: the next attempt connects. */
    astore(&srv.use_bad, 0);
    s.want_text = NULL;
    int downs = s.downs;
    RUN_UNTIL(loop, s.nmsgs >= 1);
    CHECK_EQ(s.ups, 1);
    CHECK_EQ(s.downs, downs);
    CHECK_EQ(s.attempts, s.downs + 1);
    CHECK_STR(s.nmsgs ? s.msgs[0] : "", "hello");
    CHECK_EQ(mmws_conn_state(c), MMWS_CONNECTED);
    mmws_conn_stats_get(c, &st);
    CHECK_EQ(st.connects, 1);
    CHECK_EQ(st.reconnects, 0); /* the first success is no reconnect */
    CHECK_EQ(st.last_error_code, 0);
    CHECK_STR(mmws_conn_last_error(c), "");
out:
    mmws_conn_free(c);
    srv_stop(&srv);
    mmws_loop_free(loop);
    CHECK_EQ(th_fd_count(), fds0);
}

static void cert_faults(void) {
    cert_retry("expired", "certificate has expired");
    cert_retry("selfsigned", "self-signed certificate");
    cert_retry("wronghost", "hostname mismatch");
}

/* 2. The server accepts TCP and never answers the ClientHello. */
static void handshake_stall(void) {
    static const fault f = {"stall", 1, ST_STALL, MMWS_ETIMEDOUT,
                            {"TLS handshake", "connect_timeout_ms"}, 0,
                            300, 0, 0, 0};
    run_both(&f);
}

/* 3. A fatal alert, and a record that does not decrypt, mid-stream; and a
 * close_notify without a WebSocket close (the peer ended the stream). */
static void tls_alert(void) {
    static const fault f = {"alert", 1, ST_ALERT, MMWS_ETLS,
                            {"alert", "internal error"}, 1, 0, 0, 0, 0};
    run_both(&f);
}

static void tls_bad_record(void) {
    static const fault f = {"bad record", 1, ST_CORRUPT, MMWS_ETLS,
                            {"receive failed", "bad record mac"}, 1,
                            0, 0, 0, 0};
    run_both(&f);
}

static void tls_close_notify(void) {
    static const fault f = {"close_notify", 1, ST_NOTIFY, MMWS_ECLOSED,
                            {"closed by the server", "without a close frame"},
                            1, 0, 0, 0, 0};
    run_both(&f);
}

/* 4. TCP closed mid-stream with no close_notify. */
static void cut_without_close_notify(void) {
    static const fault f = {"cut", 1, ST_CUT, MMWS_ECLOSED,
                            {"without a close frame", "close_notify"}, 1,
                            0, 0, 0, 0};
    run_both(&f);
}

/* 5. Half a frame, then a reset, over ws:// and wss://. */
static void rst_mid_frame(void) {
    static const fault plain = {"rst ws", 0, ST_RST_HALF, MMWS_EIO,
                                {"receive failed", "reset"}, 1, 0, 0, 0, 0};
    static const fault tls = {"rst wss", 1, ST_RST_HALF, MMWS_EIO,
                              {"receive failed", "reset"}, 1, 0, 0, 0, 0};
    run_both(&plain);
    run_both(&tls);
}

/* 6. Half a frame, then silence on an open socket: the idle timeout (or,
 * with pings on, the pong timeout) ends it. */
static void half_frame_silence(void) {
    static const fault idle_ws = {"idle ws", 0, ST_HALF_SILENT, MMWS_EDEAD,
                                  {"no data received", "idle_timeout_ms"}, 1,
                                  0, 300, 0, 0};
    static const fault idle_wss = {"idle wss", 1, ST_HALF_SILENT, MMWS_EDEAD,
                                   {"no data received", "idle_timeout_ms"}, 1,
                                   0, 300, 0, 0};
    static const fault pong = {"pong ws", 0, ST_HALF_SILENT, MMWS_EDEAD,
                               {"no pong", "pong_timeout_ms"}, 1,
                               0, 0, 100, 300};
    static const fault record = {"half record wss", 1, ST_HALF_RECORD,
                                 MMWS_EDEAD,
                                 {"no data received", "idle_timeout_ms"}, 1,
                                 0, 300, 0, 0};
    run_both(&idle_ws);
    run_both(&idle_wss);
    run_both(&pong);
    run_both(&record);
}

int main(void) {
    /* The server thread writes to sockets the client may have closed. */
    signal(SIGPIPE, SIG_IGN);
    if (th_certs(certs, sizeof certs) != 0) return 1;
    snprintf(ca_path, sizeof ca_path, "%s/ca.pem", certs);
    RUN(cert_faults);
    RUN(handshake_stall);
    RUN(tls_alert);
    RUN(tls_bad_record);
    RUN(tls_close_notify);
    RUN(cut_without_close_notify);
    RUN(rst_mid_frame);
    RUN(half_frame_silence);
    th_certs_remove(certs);
    return TEST_END("test_faults");
}
