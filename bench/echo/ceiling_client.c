/*
 * ceiling_client.c — the ceiling of the round-trip benchmark: the least
 * work any WebSocket client can do against the echo server.
 *
 *   ceiling_client URL SIZE SECONDS [CAFILE]
 *
 * A blocking socket (TCP_NODELAY), OpenSSL SSL_read/SSL_write for wss://.
 * After the HTTP upgrade it writes one masked binary frame built once
 * before the loop, then reads exactly the bytes of the echoed frame
 * (header + SIZE: the server sends one unmasked frame per message) and
 * compares only the frame header. No per-message masking, parsing,
 * allocation or copying: whatever a real client does on top of this is
 * its own cost. Prints round trips per second as its last stdout line.
 */
#include "echo_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

/* The connection: a socket, and a TLS session on it for wss://. */
typedef struct conn {
    int fd;   /* connected TCP socket */
    SSL *ssl; /* TLS session, or NULL for ws:// */
} conn;

static void die(const char *what) {
    fprintf(stderr, "ceiling_client: %s\n", what);
    exit(1);
}

static void die_ssl(const char *what) {
    fprintf(stderr, "ceiling_client: %s: ", what);
    ERR_print_errors_fp(stderr);
    fputc('\n', stderr);
    exit(1);
}

/* Writes all of buf or dies. */
static void write_all(conn *c, const unsigned char *buf, size_t n) {
    while (n > 0) {
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, buf, n > 0x40000000u ? 0x40000000 : (int)n);
            if (r <= 0) die_ssl("SSL_write");
            w = r;
        } else {
            w = send(c->fd, buf, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR) continue;
                perror("ceiling_client: send");
                exit(1);
            }
        }
        buf += w;
        n -= (size_t)w;
    }
}

/* Reads up to n bytes (at least one) into buf; returns the count or dies. */
static size_t read_some(conn *c, unsigned char *buf, size_t n) {
    for (;;) {
        ssize_t r;
        if (c->ssl) {
            int s = SSL_read(c->ssl, buf, n > 0x40000000u ? 0x40000000 : (int)n);
            if (s <= 0) die_ssl("SSL_read (connection closed?)");
            return (size_t)s;
        }
        r = recv(c->fd, buf, n, 0);
        if (r > 0) return (size_t)r;
        if (r == 0) die("connection closed by the server");
        if (errno != EINTR) {
            perror("ceiling_client: recv");
            exit(1);
        }
    }
}

static void connect_tcp(conn *c, const echo_url *u) {
    struct addrinfo hints, *res, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int e = getaddrinfo(u->host, u->port, &hints, &res);
    if (e != 0) {
        fprintf(stderr, "ceiling_client: resolve %s: %s\n", u->host, gai_strerror(e));
        exit(1);
    }
    c->fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        perror("ceiling_client: connect");
        exit(1);
    }
    int one = 1;
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        perror("ceiling_client: TCP_NODELAY");
        exit(1);
    }
}

static void connect_tls(conn *c, const echo_url *u, const char *cafile) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die_ssl("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1
               : SSL_CTX_set_default_verify_paths(ctx) != 1)
        die_ssl("loading CA certificates");
    c->ssl = SSL_new(ctx);
    if (!c->ssl) die_ssl("SSL_new");
    unsigned char ip[16];
    if (inet_pton(AF_INET, u->host, ip) == 1 || inet_pton(AF_INET6, u->host, ip) == 1) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host) != 1)
            die_ssl("set expected IP");
    } else {
        if (SSL_set_tlsext_host_name(c->ssl, u->host) != 1) die_ssl("SNI");
        if (SSL_set1_host(c->ssl, u->host) != 1) die_ssl("set expected host");
    }
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) die_ssl("TLS handshake");
    fprintf(stderr, "tls: %s %s\n", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
    SSL_CTX_free(ctx); /* the SSL keeps its own reference */
}

/* The HTTP upgrade; the reply must be 101. Reads byte-exactly to the blank line. */
static void upgrade(conn *c, const echo_url *u) {
    unsigned char nonce[16];
    char key[32], req[2048];
    if (RAND_bytes(nonce, sizeof nonce) != 1) die_ssl("RAND_bytes");
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
    int host_is_v6 = strchr(u->host, ':') != NULL;
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     u->path, host_is_v6 ? "[" : "", u->host, host_is_v6 ? "]" : "", u->port, key);
    if (n < 0 || (size_t)n >= sizeof req) die("request too long");
    write_all(c, (const unsigned char *)req, (size_t)n);

    /* The server sends nothing after the reply until we send a frame, so
     * whatever arrives before the blank line is the reply. */
    char resp[4096];
    size_t got = 0;
    for (;;) {
        if (got == sizeof resp - 1) die("handshake reply too long");
        got += read_some(c, (unsigned char *)resp + got, sizeof resp - 1 - got);
        resp[got] = '\0';
        char *end = strstr(resp, "\r\n\r\n");
        if (end) {
            if ((size_t)(end + 4 - resp) != got) die("bytes after the handshake reply");
            break;
        }
    }
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "ceiling_client: upgrade refused: %.*s\n",
                (int)strcspn(resp, "\r\n"), resp);
        exit(1);
    }
}

/* Writes a frame header for a FIN frame of opcode op and length n; returns its size. */
static size_t frame_header(unsigned char *h, unsigned op, size_t n, int masked) {
    unsigned char m = masked ? 0x80 : 0x00;
    h[0] = (unsigned char)(0x80 | op);
    if (n <= 125) {
        h[1] = (unsigned char)(m | n);
        return 2;
    }
    if (n <= 0xffff) {
        h[1] = (unsigned char)(m | 126);
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        return 4;
    }
    h[1] = (unsigned char)(m | 127);
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    return 10;
}

int main(int argc, char **argv) {
    echo_args a;
    if (echo_parse_args(argc, argv, &a) != 0) return 2;

    conn c = {-1, NULL};
    connect_tcp(&c, &a.url);
    if (a.url.tls) connect_tls(&c, &a.url, a.cafile);
    upgrade(&c, &a.url);

    /* The one masked frame, built once. */
    unsigned char *out = malloc(14 + a.size);
    unsigned char *in = malloc(10 + a.size);
    if (!out || !in) die("out of memory");
    size_t oh = frame_header(out, 0x2, a.size, 1);
    unsigned char mask[4];
    if (RAND_bytes(mask, 4) != 1) die_ssl("RAND_bytes");
    memcpy(out + oh, mask, 4);
    oh += 4;
    echo_fill(out + oh, a.size);
    for (size_t i = 0; i < a.size; i++) out[oh + i] ^= mask[i & 3];
    const size_t out_len = oh + a.size;

    unsigned char want_hdr[10];
    const size_t ih = frame_header(want_hdr, 0x2, a.size, 0);
    const size_t in_len = ih + a.size;

    uint64_t trips = 0;
    const uint64_t t0 = echo_now_ns();
    const uint64_t limit = (uint64_t)(a.seconds * 1e9);
    uint64_t now = t0;
    do {
        write_all(&c, out, out_len);
        size_t got = 0;
        while (got < in_len) got += read_some(&c, in + got, in_len - got);
        if (memcmp(in, want_hdr, ih) != 0) {
            fprintf(stderr, "ceiling_client: echo %llu: unexpected frame header %02x %02x\n",
                    (unsigned long long)trips, in[0], in[1]);
            return 1;
        }
        trips++;
        now = echo_now_ns();
    } while (now - t0 < limit);

    /* Close frame (1000), best effort; then leave. */
    unsigned char close_frame[8] = {0x88, 0x82, mask[0], mask[1], mask[2], mask[3]};
    close_frame[6] = (unsigned char)(0x03 ^ mask[0]);
    close_frame[7] = (unsigned char)(0xe8 ^ mask[1]);
    write_all(&c, close_frame, sizeof close_frame);
    if (c.ssl) SSL_free(c.ssl);
    close(c.fd);
    free(out);
    free(in);
    echo_report(trips, now - t0);
    return 0;
}
