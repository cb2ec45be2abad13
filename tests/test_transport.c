/*
 * test_transport.c — the TCP and TLS transports against real peers on
 * loopback. TCP talks to sockets the test holds itself; TLS talks to
 * `openssl s_server` child processes (-rev: every line comes back
 * reversed, which proves the bytes went through) using a PKI that
 * tests/certs.sh generates into a fresh temporary directory. The
 * transports are driven by small poll() loops here, not by the mmws loop.
 * Every wait has a guard timeout so a broken transport fails instead of
 * hanging; no check is about how long anything took.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "net/transport.h"
#include "test.h"

/* A peer silent for this long fails the case instead of hanging it. */
#define GUARD_MS 15000

/* The generated PKI ("" until made) and where tests/certs.sh is. */
static char pki_dir[64];
static char certs_sh[PATH_MAX];

/* ------------------------------------------------------------ helpers -- */

/* Returns "<pki_dir>/<name>" in one of a few rotating static buffers. */
static const char *pki(const char *name) {
    static char bufs[6][PATH_MAX];
    static unsigned next;
    char *b = bufs[next++ % 6];
    snprintf(b, PATH_MAX, "%s/%s", pki_dir, name);
    return b;
}

/* 1 if needle occurs in hay. */
static int contains(const char *hay, const char *needle) {
    return strstr(hay, needle) != NULL;
}

/* Fills ss with ip:port; returns its length. */
static socklen_t make_addr(const char *ip, int port,
                           struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;
    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        return sizeof *in4;
    }
    inet_pton(AF_INET6, ip, &in6->sin6_addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    return sizeof *in6;
}

/* Waits until fd has one of events; 0, or -1 after GUARD_MS. */
static int wait_fd(int fd, short events) {
    struct pollfd p = {fd, events, 0};
    int n;
    do n = poll(&p, 1, GUARD_MS);
    while (n < 0 && errno == EINTR);
    return n > 0 ? 0 : -1;
}

/* The poll events a transport's WANT result asks for. */
static short want_events(ptrdiff_t rc) {
    return rc == MMWS_EWANTWRITE ? POLLOUT : POLLIN;
}

/* 1 for MMWS_EWANTREAD and MMWS_EWANTWRITE. */
static int is_want(ptrdiff_t rc) {
    return rc == MMWS_EWANTREAD || rc == MMWS_EWANTWRITE;
}

/* Connects a transport socket to ip:port through connect_start/finish. */
static int connect_to(const char *ip, int port, int *fd, char *detail,
                      size_t dlen) {
    struct sockaddr_storage ss;
    socklen_t len = make_addr(ip, port, &ss);
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    int rc = mmws__tcp_connect_start(sa, len, fd, detail, dlen);
    if (rc != 0) return rc;
    if (wait_fd(*fd, POLLOUT) != 0) {
        close(*fd);
        *fd = -1;
        return MMWS_ETIMEDOUT;
    }
    rc = mmws__tcp_connect_finish(*fd, sa, detail, dlen);
    if (rc != 0) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

/* Runs ops->handshake until it is done or fails. */
static int drive_handshake(mmws__transport *t) {
    for (;;) {
        int rc = t->ops->handshake(t);
        if (!is_want(rc)) return rc;
        if (wait_fd(t->fd, want_events(rc)) != 0) return MMWS_ETIMEDOUT;
    }
}

/* One read that waits out WANT results: > 0, 0 (EOF) or an error. */
static ptrdiff_t read_wait(mmws__transport *t, void *buf, size_t len) {
    for (;;) {
        ptrdiff_t n = t->ops->read(t, buf, len);
        if (!is_want(n)) return n;
        if (wait_fd(t->fd, want_events(n)) != 0) return MMWS_ETIMEDOUT;
    }
}

/* Reads exactly len bytes; 0 or the first error (MMWS_ECLOSED on EOF). */
static ptrdiff_t read_exact(mmws__transport *t, void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ptrdiff_t n = read_wait(t, (char *)buf + got, len - got);
        if (n == 0) return MMWS_ECLOSED;
        if (n < 0) return n;
        got += (size_t)n;
    }
    return 0;
}

/* Writes all of buf, retrying WANT results with the same pointer and
 * length as the TLS rule requires. 0 or the first error. */
static ptrdiff_t write_all(mmws__transport *t, const void *buf, size_t len) {
    size_t off = 0;
    while (off < len) {
        ptrdiff_t n = t->ops->write(t, (const char *)buf + off, len - off);
        if (n > 0) {
            off += (size_t)n;
        } else if (is_want(n)) {
            if (wait_fd(t->fd, want_events(n)) != 0) return MMWS_ETIMEDOUT;
        } else {
            return n;
        }
    }
    return 0;
}

/* A listening TCP socket on 127.0.0.1 with a kernel-chosen port. */
static int listen_local(int *port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t len = make_addr("127.0.0.1", 0, &ss);
    if (s < 0 || bind(s, (struct sockaddr *)&ss, len) != 0 ||
        listen(s, 8) != 0 ||
        getsockname(s, (struct sockaddr *)&ss, &len) != 0) {
        perror("listen_local");
        exit(2);
    }
    *port = ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    return s;
}

/* --------------------------------------------------- s_server peers -- */

/* An `openssl s_server -rev` child process. */
typedef struct peer {
    pid_t pid; /* the child, 0 when not running */
    int out;   /* read end of its stdout (kept open so it never blocks) */
    int port;  /* the port it accepts on */
} peer;

/* peer_start flags: require a client certificate signed by ca.pem; speak
 * TLS 1.2 only. */
#define PEER_CLIENT_CA 1
#define PEER_TLS12 2

/*
 * Starts s_server on ip with <cert>.pem/<cert>.key, port chosen by the
 * kernel and read back from its "ACCEPT <addr>:<port>" line, which it
 * prints once it listens; flags are PEER_*. Returns 0, or -1 (and prints
 * why).
 */
static int peer_start(peer *p, const char *ip, const char *cert,
                      int flags) {
    char accept_arg[80], cert_arg[PATH_MAX], key_arg[PATH_MAX];
    char ca_arg[PATH_MAX], log_path[PATH_MAX];
    char name[64];
    snprintf(accept_arg, sizeof accept_arg,
             strchr(ip, ':') ? "[%s]:0" : "%s:0", ip);
    snprintf(name, sizeof name, "%s.pem", cert);
    snprintf(cert_arg, sizeof cert_arg, "%s", pki(name));
    snprintf(name, sizeof name, "%s.key", cert);
    snprintf(key_arg, sizeof key_arg, "%s", pki(name));
    snprintf(ca_arg, sizeof ca_arg, "%s", pki("ca.pem"));
    snprintf(log_path, sizeof log_path, "%s", pki("s_server.log"));
    char *argv[] = {"openssl", "s_server", "-accept", accept_arg, "-cert",
                    cert_arg,  "-key",     key_arg,   "-rev",     NULL,
                    NULL,      NULL,       NULL,      NULL,       NULL};
    int argc = 9;
    if (flags & PEER_CLIENT_CA) {
        argv[argc++] = "-Verify";
        argv[argc++] = "1";
        argv[argc++] = "-CAfile";
        argv[argc++] = ca_arg;
    }
    if (flags & PEER_TLS12) argv[argc++] = "-tls1_2";
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        perror("pipe2");
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(pipefd[1], 1);
        if (log >= 0) dup2(log, 2);
        execvp("openssl", argv);
        _exit(127);
    }
    close(pipefd[1]);
    p->pid = pid;
    p->out = pipefd[0];
    p->port = 0;
    char line[512];
    size_t n = 0;
    while (p->port == 0) {
        if (wait_fd(p->out, POLLIN) != 0) break;
        ssize_t r = read(p->out, line + n, 1);
        if (r <= 0) break;
        if (line[n] != '\n' && n + 2 < sizeof line) {
            n++;
            continue;
        }
        line[n] = '\0';
        char *colon = strrchr(line, ':');
        if (strncmp(line, "ACCEPT ", 7) == 0 && colon != NULL)
            p->port = atoi(colon + 1);
        n = 0;
    }
    if (p->port <= 0) {
        fprintf(stderr, "s_server did not start; see %s\n", log_path);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(p->out);
        p->pid = 0;
        return -1;
    }
    return 0;
}

/* Stops the peer with sig and reaps it. */
static void peer_stop(peer *p, int sig) {
    if (p->pid <= 0) return;
    kill(p->pid, sig);
    waitpid(p->pid, NULL, 0);
    close(p->out);
    p->pid = 0;
}

/* A context with verification on/off, trusting ca (NULL: system store),
 * optionally presenting cert/key. Fails the case when creation fails. */
static mmws__tls_ctx *make_ctx(int verify, const char *ca, const char *cert,
                               const char *key) {
    char detail[MMWS__DETAIL_LEN] = "";
    mmws__tls_config cfg = {verify, ca, NULL, cert, key};
    mmws__tls_ctx *ctx = mmws__tls_ctx_new(&cfg, detail, sizeof detail);
    CHECK(ctx != NULL);
    if (ctx == NULL) fprintf(stderr, "  ctx_new: %s\n", detail);
    return ctx;
}

/*
 * Connects to ip:port, wraps the socket in TLS for host and runs the
 * handshake. Returns its result; *out is the transport (also on a failed
 * handshake, for its detail) or NULL if it could not be made.
 */
static int tls_open(mmws__tls_ctx *ctx, const char *ip, int port,
                    const char *host, mmws__transport **out) {
    char detail[MMWS__DETAIL_LEN] = "";
    int fd;
    *out = NULL;
    int rc = connect_to(ip, port, &fd, detail, sizeof detail);
    if (rc != 0) {
        fprintf(stderr, "  connect: %s\n", detail);
        return rc;
    }
    mmws__transport *t = mmws__tls_new(ctx, fd, host, detail, sizeof detail);
    if (t == NULL) {
        fprintf(stderr, "  tls_new: %s\n", detail);
        close(fd);
        return MMWS_EINVAL;
    }
    *out = t;
    return drive_handshake(t);
}

/* Sends a line and checks that s_server -rev sends it back reversed. */
static void check_roundtrip(mmws__transport *t, const char *text) {
    char want[256], got[256];
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i++) want[i] = text[n - 1 - i];
    want[n] = '\n';
    char line[256];
    memcpy(line, text, n);
    line[n] = '\n';
    CHECK_RC(write_all(t, line, n + 1), 0);
    CHECK_RC(read_exact(t, got, n + 1), 0);
    CHECK_MEM(got, n + 1, want, n + 1);
}

/* Closes and frees a transport (NULL allowed). */
static void close_transport(mmws__transport *t) {
    if (t == NULL) return;
    t->ops->shutdown(t);
    t->ops->destroy(t);
}

/* ---------------------------------------------------------------- TCP -- */

static void test_addr_format(void) {
    struct sockaddr_storage ss;
    char buf[64];
    make_addr("127.0.0.1", 443, &ss);
    mmws__addr_format((struct sockaddr *)&ss, buf, sizeof buf);
    CHECK_STR(buf, "127.0.0.1:443");
    make_addr("::1", 9, &ss);
    mmws__addr_format((struct sockaddr *)&ss, buf, sizeof buf);
    CHECK_STR(buf, "[::1]:9");
    make_addr("2001:db8::5", 65535, &ss);
    mmws__addr_format((struct sockaddr *)&ss, buf, 12);
    CHECK_STR(buf, "[2001:db8::");
}

static void test_tcp_echo(void) {
    int port, fd, sfd;
    char detail[MMWS__DETAIL_LEN] = "";
    char buf[64];
    int ls = listen_local(&port);
    CHECK_RC(connect_to("127.0.0.1", port, &fd, detail, sizeof detail), 0);
    sfd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    CHECK(sfd >= 0);
    mmws__transport *t = mmws__tcp_new(fd);
    CHECK(t != NULL);
    if (t == NULL || sfd < 0) return;
    CHECK_STR(t->ops->name, "tcp");
    CHECK_RC(t->ops->handshake(t), 0);
    CHECK_RC(t->ops->read(t, buf, sizeof buf), MMWS_EWANTREAD);
    CHECK_EQ(t->ops->write(t, "hello", 5), 5);
    CHECK_EQ(recv(sfd, buf, sizeof buf, 0), 5);
    CHECK_MEM(buf, 5, "hello", 5);
    CHECK_EQ(send(sfd, "world!", 6, 0), 6);
    CHECK_EQ(read_wait(t, buf, sizeof buf), 6);
    CHECK_MEM(buf, 6, "world!", 6);
    CHECK_EQ(t->ops->pending(t), 0);
    t->ops->shutdown(t); /* FIN reaches the peer; reading still works */
    CHECK_EQ(recv(sfd, buf, sizeof buf, 0), 0);
    CHECK_EQ(send(sfd, "bye", 3, 0), 3);
    close(sfd);
    CHECK_EQ(read_wait(t, buf, sizeof buf), 3);
    CHECK_EQ(read_wait(t, buf, sizeof buf), 0);
    t->ops->destroy(t);
    close(ls);
}

static void test_tcp_reset(void) {
    int port, fd;
    char detail[MMWS__DETAIL_LEN] = "";
    char buf[64];
    int ls = listen_local(&port);
    CHECK_RC(connect_to("127.0.0.1", port, &fd, detail, sizeof detail), 0);
    int sfd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    mmws__transport *t = mmws__tcp_new(fd);
    if (t == NULL || sfd < 0) {
        CHECK(0);
        return;
    }
    struct linger lg = {1, 0}; /* close() now sends RST */
    setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(sfd);
    CHECK_RC(read_wait(t, buf, sizeof buf), MMWS_EIO);
    CHECK_STR(t->detail, "recv: Connection reset by peer");
    /* A write now fails with EPIPE, reported, not raised as SIGPIPE. */
    CHECK_RC(t->ops->write(t, "x", 1), MMWS_EIO);
    CHECK_STR(t->detail, "send: Broken pipe");
    t->ops->destroy(t);
    close(ls);
}

static void test_tcp_refused(void) {
    /* Bound, never listening: connections to it are refused, and the
     * port stays ours meanwhile. */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t len = make_addr("127.0.0.1", 0, &ss);
    CHECK_EQ(bind(s, (struct sockaddr *)&ss, len), 0);
    CHECK_EQ(getsockname(s, (struct sockaddr *)&ss, &len), 0);
    int port = ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    char detail[MMWS__DETAIL_LEN] = "", want[64];
    int fd = -1;
    CHECK_RC(connect_to("127.0.0.1", port, &fd, detail, sizeof detail),
             MMWS_ECONNECT);
    CHECK_EQ(fd, -1);
    snprintf(want, sizeof want, "connect 127.0.0.1:%d: Connection refused",
             port);
    CHECK_STR(detail, want);
    CHECK(contains(detail, "refused"));
    close(s);
}

static void test_tcp_wantwrite(void) {
    int port, fd;
    char detail[MMWS__DETAIL_LEN] = "";
    int ls = listen_local(&port);
    CHECK_RC(connect_to("127.0.0.1", port, &fd, detail, sizeof detail), 0);
    int sfd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    mmws__transport *t = mmws__tcp_new(fd);
    if (t == NULL || sfd < 0) {
        CHECK(0);
        return;
    }
    static char chunk[1 << 16];
    ptrdiff_t rc;
    size_t total = 0;
    while ((rc = t->ops->write(t, chunk, sizeof chunk)) > 0 &&
           total < (256u << 20))
        total += (size_t)rc;
    CHECK_RC(rc, MMWS_EWANTWRITE);
    CHECK(total > 0);
    t->ops->destroy(t);
    close(sfd);
    close(ls);
}

/* ---------------------------------------------------------------- TLS -- */

/* Verification on, trusting ca.pem, against server.pem on ip by host. */
static void tls_good(const char *ip, const char *host) {
    peer p;
    if (peer_start(&p, ip, "server", 0) != 0) {
        CHECK(0);
        return;
    }
    mmws__tls_ctx *ctx = make_ctx(1, pki("ca.pem"), NULL, NULL);
    mmws__transport *t = NULL;
    if (ctx != NULL) {
        int rc = tls_open(ctx, ip, p.port, host, &t);
        CHECK_RC(rc, 0);
        if (rc != 0 && t != NULL) fprintf(stderr, "  detail: %s\n", t->detail);
    }
    if (t != NULL && t->detail[0] == '\0') {
        CHECK_STR(t->ops->name, "tls");
        check_roundtrip(t, "hello from mmws");
        /* Two lines arrive as two records; a 3-byte read leaves the rest
         * of the first record inside the transport: pending() says so. */
        char got[16];
        CHECK_RC(write_all(t, "abcdef\nxy\n", 10), 0);
        CHECK_EQ(read_wait(t, got, 3), 3);
        CHECK_MEM(got, 3, "fed", 3);
        CHECK_EQ(t->ops->pending(t), 4);
        CHECK_EQ(t->ops->read(t, got, sizeof got), 4);
        CHECK_MEM(got, 4, "cba\n", 4);
        CHECK_RC(read_exact(t, got, 3), 0);
        CHECK_MEM(got, 3, "yx\n", 3);
        CHECK_EQ(ERR_peek_error(), 0);
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGTERM);
}

static void test_tls_by_name(void) { tls_good("127.0.0.1", "localhost"); }
static void test_tls_by_ipv4(void) { tls_good("127.0.0.1", "127.0.0.1"); }
static void test_tls_by_ipv6(void) { tls_good("::1", "::1"); }

/* The handshake against <cert> as host must fail with exactly want. */
static void tls_bad(const char *cert, const char *ip, const char *host,
                    const char *want) {
    peer p;
    if (peer_start(&p, ip, cert, 0) != 0) {
        CHECK(0);
        return;
    }
    mmws__tls_ctx *ctx = make_ctx(1, pki("ca.pem"), NULL, NULL);
    mmws__transport *t = NULL;
    if (ctx != NULL) {
        CHECK_RC(tls_open(ctx, ip, p.port, host, &t), MMWS_ETLS);
        CHECK(t != NULL);
        if (t != NULL) {
            CHECK_STR(t->detail, want);
            printf("     %s as %s: \"%s\"\n", cert, host, t->detail);
        }
        CHECK_EQ(ERR_peek_error(), 0); /* nothing left for the next one */
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGTERM);
}

static void test_tls_selfsigned(void) {
    tls_bad("selfsigned", "127.0.0.1", "localhost",
            "certificate verify failed: self-signed certificate");
}

static void test_tls_expired(void) {
    tls_bad("expired", "127.0.0.1", "localhost",
            "certificate verify failed: certificate has expired");
}

static void test_tls_wronghost(void) {
    tls_bad("wronghost", "127.0.0.1", "localhost",
            "certificate verify failed: hostname mismatch");
}

static void test_tls_wrong_ip(void) {
    /* server.pem names 127.0.0.1 and ::1, not 127.0.0.2. */
    tls_bad("server", "127.0.0.1", "127.0.0.2",
            "certificate verify failed: IP address mismatch");
}

static void test_tls_untrusted_system_store(void) {
    /* The system store does not know the test CA. */
    peer p;
    if (peer_start(&p, "127.0.0.1", "server", 0) != 0) {
        CHECK(0);
        return;
    }
    char detail[MMWS__DETAIL_LEN] = "";
    mmws__tls_ctx *ctx = mmws__tls_ctx_new(NULL, detail, sizeof detail);
    CHECK(ctx != NULL);
    mmws__transport *t = NULL;
    if (ctx != NULL) {
        CHECK_RC(tls_open(ctx, "127.0.0.1", p.port, "localhost", &t),
                 MMWS_ETLS);
        if (t != NULL) {
            CHECK(contains(t->detail, "certificate verify failed: "));
            printf("     server as localhost, system store: \"%s\"\n",
                   t->detail);
        }
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGTERM);
}

static void test_tls_noverify(void) {
    const char *certs[] = {"selfsigned", "wronghost", "expired"};
    for (size_t i = 0; i < 3; i++) {
        peer p;
        if (peer_start(&p, "127.0.0.1", certs[i], 0) != 0) {
            CHECK(0);
            return;
        }
        mmws__tls_ctx *ctx = make_ctx(0, NULL, NULL, NULL);
        mmws__transport *t = NULL;
        if (ctx != NULL) {
            CHECK_RC(tls_open(ctx, "127.0.0.1", p.port, "localhost", &t), 0);
            if (t != NULL && t->detail[0] == '\0')
                check_roundtrip(t, certs[i]);
        }
        close_transport(t);
        mmws__tls_ctx_free(ctx);
        peer_stop(&p, SIGTERM);
    }
}

static void test_tls_ctx_errors(void) {
    char detail[MMWS__DETAIL_LEN];
    mmws__tls_config cfg = {1, "/nonexistent/ca.pem", NULL, NULL, NULL};
    CHECK(mmws__tls_ctx_new(&cfg, detail, sizeof detail) == NULL);
    CHECK_STR(detail,
              "tls_ca_file \"/nonexistent/ca.pem\": No such file or directory");
    printf("     %s\n", detail);

    cfg.ca_file = certs_sh; /* readable, but not a certificate */
    CHECK(mmws__tls_ctx_new(&cfg, detail, sizeof detail) == NULL);
    CHECK(contains(detail, "tls_ca_file \""));
    CHECK(contains(detail, certs_sh));
    printf("     %s\n", detail);

    cfg.ca_file = NULL;
    cfg.ca_dir = "/nonexistent";
    CHECK(mmws__tls_ctx_new(&cfg, detail, sizeof detail) == NULL);
    CHECK_STR(detail, "tls_ca_dir \"/nonexistent\": No such file or directory");

    cfg.ca_dir = pki("ca.pem");
    CHECK(mmws__tls_ctx_new(&cfg, detail, sizeof detail) == NULL);
    CHECK(contains(detail, "not a directory"));

    cfg.ca_dir = pki_dir; /* a directory, even if not hashed: accepted */
    mmws__tls_ctx *ok = mmws__tls_ctx_new(&cfg, detail, sizeof detail);
    CHECK(ok != NULL);
    mmws__tls_ctx_free(ok);

    cfg.ca_dir = NULL;
    cfg.cert_file = "/nonexistent/client.pem";
    CHECK(mmws__tls_ctx_new(&cfg, detail, sizeof detail) == NULL);
    CHECK_STR(detail, "tls_cert_file \"/nonexistent/client.pem\": No such "
                      "file or directory");

    cfg.cert_file = pki("client.pem");
    cfg.key_file = pki("server.key"); /* a key of another certificate */
    CHECK(mmws__tls_ctx_new(&cfg, detail, sizeof detail) == NULL);
    CHECK(contains(detail, "tls_key_file \""));
    CHECK(contains(detail, "key values mismatch"));
    printf("     %s\n", detail);

    cfg.cert_file = pki("client.pem"); /* no key in it */
    cfg.key_file = NULL;
    CHECK(mmws__tls_ctx_new(&cfg, detail, sizeof detail) == NULL);
    CHECK(contains(detail, "holds no private key"));
    printf("     %s\n", detail);

    cfg.cert_file = NULL;
    cfg.key_file = pki("client.key");
    CHECK(mmws__tls_ctx_new(&cfg, detail, sizeof detail) == NULL);
    CHECK(contains(detail, "without tls_cert_file"));

    CHECK_EQ(ERR_peek_error(), 0);
    mmws__tls_ctx_free(NULL);

    /* Verification needs a host name to check. */
    mmws__tls_ctx *ctx = make_ctx(1, pki("ca.pem"), NULL, NULL);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK(mmws__tls_new(ctx, sv[0], NULL, detail, sizeof detail) == NULL);
    CHECK(contains(detail, "no host name"));
    CHECK(mmws__tls_new(ctx, sv[0], "", detail, sizeof detail) == NULL);
    close(sv[0]);
    close(sv[1]);
    mmws__tls_ctx_free(ctx);
}

/* A client certificate accepted by a peer that requires one. */
static void tls_client_cert(int flags) {
    peer p;
    if (peer_start(&p, "127.0.0.1", "server", PEER_CLIENT_CA | flags) != 0) {
        CHECK(0);
        return;
    }
    mmws__tls_ctx *ctx =
        make_ctx(1, pki("ca.pem"), pki("client.pem"), pki("client.key"));
    mmws__transport *t = NULL;
    if (ctx != NULL) {
        CHECK_RC(tls_open(ctx, "127.0.0.1", p.port, "localhost", &t), 0);
        if (t != NULL && t->detail[0] == '\0')
            check_roundtrip(t, "with a client certificate");
        else if (t != NULL)
            fprintf(stderr, "  detail: %s\n", t->detail);
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGTERM);
}

static void test_tls_client_cert(void) { tls_client_cert(0); }
static void test_tls12_client_cert(void) { tls_client_cert(PEER_TLS12); }

/* No client certificate for a peer that requires one. */
static void tls_client_cert_missing(int flags) {
    peer p;
    if (peer_start(&p, "127.0.0.1", "server", PEER_CLIENT_CA | flags) != 0) {
        CHECK(0);
        return;
    }
    mmws__tls_ctx *ctx = make_ctx(1, pki("ca.pem"), NULL, NULL);
    mmws__transport *t = NULL;
    if (ctx != NULL) {
        /* TLS 1.3 finishes the client's handshake before the server
         * checks; the refusal then arrives as an alert on the first read. */
        int rc = tls_open(ctx, "127.0.0.1", p.port, "localhost", &t);
        ptrdiff_t r = rc;
        if (rc == 0 && t != NULL) {
            char buf[64];
            CHECK_RC(write_all(t, "x\n", 2), 0);
            r = read_wait(t, buf, sizeof buf);
        }
        CHECK_RC(r, MMWS_ETLS);
        if (t != NULL) {
            CHECK(contains(t->detail, "alert"));
            printf("     no client certificate%s: \"%s\"\n",
                   flags & PEER_TLS12 ? " (TLS 1.2)" : "", t->detail);
        }
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGTERM);
}

static void test_tls_client_cert_missing(void) { tls_client_cert_missing(0); }
static void test_tls12_client_cert_missing(void) {
    tls_client_cert_missing(PEER_TLS12);
}

/* TLS 1.2 (the minimum we allow): handshake, verification, round trip. */
static void test_tls12(void) {
    peer p;
    if (peer_start(&p, "127.0.0.1", "server", PEER_TLS12) != 0) {
        CHECK(0);
        return;
    }
    mmws__tls_ctx *ctx = make_ctx(1, pki("ca.pem"), NULL, NULL);
    mmws__transport *t = NULL;
    if (ctx != NULL) {
        CHECK_RC(tls_open(ctx, "127.0.0.1", p.port, "localhost", &t), 0);
        if (t != NULL && t->detail[0] == '\0')
            check_roundtrip(t, "over TLS 1.2");
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGTERM);
}

/* Starts a verified connection to a fresh -rev peer, one line round trip. */
static mmws__transport *tls_session(peer *p, mmws__tls_ctx **ctx) {
    *ctx = NULL;
    if (peer_start(p, "127.0.0.1", "server", 0) != 0) return NULL;
    *ctx = make_ctx(1, pki("ca.pem"), NULL, NULL);
    mmws__transport *t = NULL;
    if (*ctx == NULL) return NULL;
    CHECK_RC(tls_open(*ctx, "127.0.0.1", p->port, "localhost", &t), 0);
    if (t != NULL && t->detail[0] == '\0') {
        check_roundtrip(t, "ping");
        return t;
    }
    close_transport(t);
    return NULL;
}

static void test_tls_peer_killed_fin(void) {
    peer p;
    mmws__tls_ctx *ctx;
    mmws__transport *t = tls_session(&p, &ctx);
    CHECK(t != NULL);
    if (t != NULL) {
        /* Everything it got was read: the kernel closes with FIN. */
        peer_stop(&p, SIGKILL);
        char buf[64];
        ptrdiff_t r = read_wait(t, buf, sizeof buf);
        CHECK_RC(r, MMWS_ECLOSED);
        CHECK_STR(t->detail, "connection closed without TLS close_notify");
        printf("     killed peer, FIN: %s \"%s\"\n", mmws_errname((int)r),
               t->detail);
        CHECK_EQ(ERR_peek_error(), 0);
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGKILL);
}

static void test_tls_peer_killed_rst(void) {
    peer p;
    mmws__tls_ctx *ctx;
    mmws__transport *t = tls_session(&p, &ctx);
    CHECK(t != NULL);
    if (t != NULL) {
        /* Bytes it never read make the kernel answer with RST. */
        kill(p.pid, SIGSTOP);
        CHECK_RC(write_all(t, "unread\n", 7), 0);
        peer_stop(&p, SIGKILL);
        char buf[64];
        ptrdiff_t r = read_wait(t, buf, sizeof buf);
        CHECK(r == MMWS_EIO || r == MMWS_ECLOSED);
        CHECK(r != 0);
        printf("     killed peer, RST: %s \"%s\"\n", mmws_errname((int)r),
               t->detail);
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGKILL);
}

static void test_tls_write_to_dead_peer(void) {
    peer p;
    mmws__tls_ctx *ctx;
    mmws__transport *t = tls_session(&p, &ctx);
    CHECK(t != NULL);
    if (t != NULL) {
        peer_stop(&p, SIGKILL);
        /* The first records may still be accepted by the kernel; the RST
         * they provoke fails a later send with EPIPE (SIGPIPE is at its
         * default here, so raising it would end the test). */
        ptrdiff_t r = 0;
        for (int i = 0; i < 200; i++) {
            r = t->ops->write(t, "data\n", 5);
            if (r < 0 && !is_want(r)) break;
            struct pollfd pf = {t->fd, POLLIN, 0};
            poll(&pf, 1, 20);
        }
        CHECK_RC(r, MMWS_EIO);
        CHECK(contains(t->detail, "send: "));
        printf("     write to killed peer: %s \"%s\"\n",
               mmws_errname((int)r), t->detail);
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGKILL);
}

static void test_tls_close_notify(void) {
    peer p;
    mmws__tls_ctx *ctx;
    mmws__transport *t = tls_session(&p, &ctx);
    CHECK(t != NULL);
    if (t != NULL) {
        /* s_server -rev ends the session on a CLOSE line. */
        CHECK_RC(write_all(t, "CLOSE\n", 6), 0);
        char buf[64];
        ptrdiff_t r = read_wait(t, buf, sizeof buf);
        CHECK(r == 0 || r == MMWS_ECLOSED);
        printf("     s_server CLOSE: %s%s\"%s\"\n",
               r == 0 ? "0 (close_notify)" : mmws_errname((int)r), " ",
               r == 0 ? "" : t->detail);
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGTERM);
}

/* Puts a stale error on this thread's OpenSSL queue, as another library
 * or connection might have left it. */
static void push_stale_error(void) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
#else
    ERR_put_error(ERR_LIB_SSL, 0, SSL_R_BAD_LENGTH, __FILE__, __LINE__);
#endif
}

static void test_tls_stale_error_queue(void) {
    peer p;
    if (peer_start(&p, "127.0.0.1", "server", 0) != 0) {
        CHECK(0);
        return;
    }
    mmws__tls_ctx *ctx = make_ctx(1, pki("ca.pem"), NULL, NULL);
    char detail[MMWS__DETAIL_LEN] = "";
    int fd = -1;
    CHECK_RC(connect_to("127.0.0.1", p.port, &fd, detail, sizeof detail), 0);
    mmws__transport *t =
        ctx != NULL && fd >= 0
            ? mmws__tls_new(ctx, fd, "localhost", detail, sizeof detail)
            : NULL;
    CHECK(t != NULL);
    if (t != NULL) {
        /* Without clearing first, SSL_get_error would take the stale
         * entry for this call's failure and turn WANT_READ fatal. */
        int rc;
        do {
            push_stale_error();
            rc = t->ops->handshake(t);
        } while (is_want(rc) && wait_fd(t->fd, want_events(rc)) == 0);
        CHECK_RC(rc, 0);
        push_stale_error();
        CHECK_EQ(t->ops->write(t, "abc\n", 4), 4);
        char buf[8];
        ptrdiff_t r;
        do {
            push_stale_error();
            r = t->ops->read(t, buf, sizeof buf);
        } while (is_want(r) && wait_fd(t->fd, want_events(r)) == 0);
        CHECK_EQ(r, 4);
        CHECK_MEM(buf, 4, "cba\n", 4);
        ERR_clear_error();
    } else if (fd >= 0) {
        close(fd);
    }
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGTERM);
}

static void test_tls_large_write(void) {
    enum { LINE = 1024, TOTAL = 4 << 20 };
    peer p;
    mmws__tls_ctx *ctx;
    mmws__transport *t = tls_session(&p, &ctx);
    CHECK(t != NULL);
    if (t == NULL) {
        mmws__tls_ctx_free(ctx);
        peer_stop(&p, SIGKILL);
        return;
    }
    /* Two identical copies of the source: after each WANT the retry comes
     * from the other one, same bytes and length at a different address
     * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
    char *src[2] = {malloc(TOTAL), malloc(TOTAL)};
    char *want = malloc(TOTAL), *got = malloc(TOTAL);
    if (!src[0] || !src[1] || !want || !got) {
        perror("malloc");
        exit(2);
    }
    for (size_t i = 0; i < TOTAL / LINE; i++) {
        char *l = src[0] + i * LINE;
        int n = snprintf(l, LINE, "%07zu:", i);
        for (size_t j = (size_t)n; j < LINE - 1; j++)
            l[j] = (char)('a' + (i * 7 + j) % 26);
        l[LINE - 1] = '\n';
        for (size_t j = 0; j < LINE - 1; j++)
            want[i * LINE + j] = l[LINE - 2 - j];
        want[i * LINE + LINE - 1] = '\n';
    }
    memcpy(src[1], src[0], TOTAL);

    /* A stopped peer reads nothing: the write must block. */
    kill(p.pid, SIGSTOP);
    size_t off = 0, in = 0;
    unsigned wants = 0, which = 0;
    ptrdiff_t rc;
    while ((rc = t->ops->write(t, src[which] + off, TOTAL - off)) > 0 &&
           off + (size_t)rc < TOTAL)
        off += (size_t)rc;
    CHECK_RC(rc, MMWS_EWANTWRITE);
    if (rc == MMWS_EWANTWRITE) {
        wants++;
        which ^= 1u;
    }
    kill(p.pid, SIGCONT);

    int failed = rc != MMWS_EWANTWRITE;
    short wevents = POLLOUT;
    while (!failed && (off < TOTAL || in < TOTAL)) {
        int progress = 0;
        short events = 0;
        if (off < TOTAL) {
            rc = t->ops->write(t, src[which] + off, TOTAL - off);
            if (rc > 0) {
                off += (size_t)rc;
                progress = 1;
            } else if (is_want(rc)) {
                wants++;
                which ^= 1u;
                wevents = want_events(rc);
                events |= wevents;
            } else {
                CHECK_RC(rc, 0);
                fprintf(stderr, "  write: %s\n", t->detail);
                failed = 1;
                break;
            }
        }
        while (in < TOTAL) {
            rc = t->ops->read(t, got + in, TOTAL - in);
            if (rc > 0) {
                in += (size_t)rc;
                progress = 1;
                continue;
            }
            if (is_want(rc)) {
                events |= want_events(rc);
                break;
            }
            CHECK_RC(rc, MMWS_EWANTREAD);
            fprintf(stderr, "  read: %s\n", t->detail);
            failed = 1;
            break;
        }
        if (failed || progress) continue;
        struct pollfd pf = {t->fd, events, 0};
        int n;
        do n = poll(&pf, 1, GUARD_MS);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            fprintf(stderr, "  stalled at %zu written, %zu read\n", off, in);
            failed = 1;
        }
    }
    CHECK(!failed);
    CHECK_EQ(off, TOTAL);
    CHECK_EQ(in, TOTAL);
    CHECK(wants >= 1);
    CHECK(in == TOTAL && memcmp(got, want, TOTAL) == 0);
    printf("     4 MiB through a stopped, then slow, reader: %u WANT "
           "results\n", wants);
    free(src[0]);
    free(src[1]);
    free(want);
    free(got);
    close_transport(t);
    mmws__tls_ctx_free(ctx);
    peer_stop(&p, SIGKILL);
}

/* --------------------------------------------------------------- main -- */

/* Finds tests/certs.sh: $MMWS_CERTS_SH, else next to this source file. */
static void find_certs_sh(void) {
    const char *env = getenv("MMWS_CERTS_SH");
    if (env != NULL) {
        snprintf(certs_sh, sizeof certs_sh, "%s", env);
        return;
    }
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash != NULL ? (int)(slash - __FILE__) : 1;
    snprintf(certs_sh, sizeof certs_sh, "%.*s/certs.sh", dirlen,
             slash != NULL ? __FILE__ : ".");
}

int main(void) {
    signal(SIGPIPE, SIG_DFL);
    RUN(test_addr_format);
    RUN(test_tcp_echo);
    RUN(test_tcp_reset);
    RUN(test_tcp_refused);
    RUN(test_tcp_wantwrite);

    fflush(stdout);
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("skip TLS cases: no openssl program on PATH (needed for "
               "tests/certs.sh and s_server)\n");
        return TEST_END("test_transport");
    }
    find_certs_sh();
    snprintf(pki_dir, sizeof pki_dir, "/tmp/mmws-pki-XXXXXX");
    if (mkdtemp(pki_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "bash '%s' '%s' >/dev/null", certs_sh, pki_dir);
    fflush(stdout);
    if (system(cmd) != 0) {
        fprintf(stderr, "FAIL: %s\n", cmd);
        return 1;
    }

    RUN(test_tls_by_name);
    RUN(test_tls_by_ipv4);
    RUN(test_tls_by_ipv6);
    RUN(test_tls_selfsigned);
    RUN(test_tls_expired);
    RUN(test_tls_wronghost);
    RUN(test_tls_wrong_ip);
    RUN(test_tls_untrusted_system_store);
    RUN(test_tls_noverify);
    RUN(test_tls_ctx_errors);
    RUN(test_tls_client_cert);
    RUN(test_tls_client_cert_missing);
    RUN(test_tls12);
    RUN(test_tls12_client_cert);
    RUN(test_tls12_client_cert_missing);
    RUN(test_tls_peer_killed_fin);
    RUN(test_tls_peer_killed_rst);
    RUN(test_tls_write_to_dead_peer);
    RUN(test_tls_close_notify);
    RUN(test_tls_stale_error_queue);
    RUN(test_tls_large_write);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki_dir);
    if (t_failed == 0 && system(cmd) != 0) fprintf(stderr, "%s failed\n", cmd);
    else if (t_failed != 0) fprintf(stderr, "PKI and s_server log kept in %s\n", pki_dir);
    return TEST_END("test_transport");
}
