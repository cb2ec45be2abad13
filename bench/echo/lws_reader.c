/*
 * lws_reader.c — the libwebsockets (4.1) peer of the firehose benchmark
 * (scripts/bench-pool.sh): reads the stream of a fresh mmws-sim started
 * with --rate 0.
 *
 *   lws_reader URL SECONDS [CAFILE]
 *
 * One client connection driven by lws_service(). Counts messages for
 * SECONDS after the first, checks that the update id "u" of each message
 * is the previous one + 1, and prints messages per second as its last
 * stdout line; stderr gets "messages=N seconds=T first_u=F gaps=G
 * missing=M unparsed=X cpu_ns_per_msg=C" (as mmws-bench-read and
 * beast_reader). Tuned as the lws docs suggest for throughput: a 1 MiB rx
 * buffer in the protocol (the default is small and slow) and a 1 MiB
 * per-thread service buffer; no extensions (no permessage-deflate); lws's
 * default of no UTF-8 validation on the client. A message is parsed where
 * lws hands it over when it comes in one piece, else its pieces are
 * gathered first. The clock is read every 256 messages. TLS verifies the
 * peer against CAFILE (or the system store) and its host name.
 */
#include "echo_common.h"

#include <inttypes.h>

#include <libwebsockets.h>

#define LWS_READ_BUF (1024u * 1024u)
#define READ_MAX_MSG 65536u   /* largest message gathered from pieces */
#define READ_CLOCK_EVERY 256u /* messages between clock reads */

/* Everything the callback needs; one connection per process. */
static struct {
    uint64_t limit_ns;  /* measuring time */
    uint64_t t0, t1;    /* first message, last clock read */
    uint64_t count;     /* messages after the first */
    uint64_t first_u, last_u;
    uint64_t gaps, missing, unparsed;
    uint64_t cpu0;      /* process CPU time at the first message */
    unsigned char acc[READ_MAX_MSG]; /* a message that came in pieces */
    size_t acc_len;
    int started;        /* the first message arrived */
    int done;           /* measuring finished, closing */
    int finished;       /* connection gone; leave the service loop */
    int failed;         /* an error was reported */
} st;

static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The value of "u" in a simulator message, or 0 if there is none (the key
 * is near the start: a bounded scan, no memmem under -std=c11). */
static uint64_t parse_u(const unsigned char *p, size_t len) {
    for (size_t i = 0; i + 4 <= len; i++) {
        if (p[i] == '"' && p[i + 1] == 'u' && p[i + 2] == '"' && p[i + 3] == ':') {
            uint64_t v = 0;
            for (i += 4; i < len && p[i] >= '0' && p[i] <= '9'; i++)
                v = v * 10u + (uint64_t)(p[i] - '0');
            return v;
        }
    }
    return 0;
}

static void on_msg(const unsigned char *p, size_t len) {
    uint64_t u = parse_u(p, len);
    if (!u) {
        st.unparsed++;
        return;
    }
    if (!st.started) {
        st.started = 1;
        st.t0 = st.t1 = echo_now_ns();
        st.first_u = st.last_u = u;
        st.cpu0 = cpu_ns();
        return;
    }
    if (u != st.last_u + 1) {
        st.gaps++;
        if (u > st.last_u) st.missing += u - st.last_u - 1;
    }
    st.last_u = u;
    if (++st.count % READ_CLOCK_EVERY == 0) {
        st.t1 = echo_now_ns();
        if (st.t1 - st.t0 >= st.limit_ns) st.done = 1;
    }
}

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "lws_reader: %s%s\n", what, detail ? detail : "");
    st.failed = 1;
    st.done = 1;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        fail("connection error: ", in ? (const char *)in : "(unknown)");
        st.finished = 1;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (st.done) break;
        int whole = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
        if (whole && st.acc_len == 0) {
            on_msg((const unsigned char *)in, len);
        } else {
            if (st.acc_len + len > sizeof st.acc) {
                fail("message larger than ", "64 KiB");
                return -1;
            }
            memcpy(st.acc + st.acc_len, in, len);
            st.acc_len += len;
            if (whole) {
                on_msg(st.acc, st.acc_len);
                st.acc_len = 0;
            }
        }
        if (st.done) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!st.done) fail("connection closed by the server", NULL);
        st.finished = 1;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"read-bench", callback, 0, LWS_READ_BUF, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s URL SECONDS [CAFILE]\n", argv[0]);
        return 2;
    }
    echo_url url;
    if (echo_parse_url(argv[1], &url) != 0) return 2;
    char *end;
    double secs = strtod(argv[2], &end);
    if (*argv[2] == '\0' || *end != '\0' || !(secs > 0.0) || secs > 86400.0) {
        fprintf(stderr, "SECONDS must be > 0 (got \"%s\")\n", argv[2]);
        return 2;
    }
    const char *cafile = argc == 4 ? argv[3] : NULL;
    st.limit_ns = (uint64_t)(secs * 1e9);

    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.pt_serv_buf_size = LWS_READ_BUF;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    if (url.tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = cafile; /* NULL: the system store */
    }
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws_reader: lws_create_context failed\n");
        return 1;
    }

    struct lws_client_connect_info cc;
    memset(&cc, 0, sizeof cc);
    cc.context = ctx;
    cc.address = url.host;
    cc.port = atoi(url.port);
    cc.path = url.path;
    cc.host = url.host;
    cc.origin = url.host;
    cc.local_protocol_name = protocols[0].name;
    cc.ssl_connection = url.tls ? LCCSCF_USE_SSL : 0;
    struct lws *wsi = NULL;
    cc.pwsi = &wsi;
    if (!lws_client_connect_via_info(&cc)) {
        fprintf(stderr, "lws_reader: cannot start connecting to %s:%s\n", url.host, url.port);
        lws_context_destroy(ctx);
        return 1;
    }

    while (!st.finished && lws_service(ctx, 0) >= 0) {
    }
    uint64_t cpu = st.started ? cpu_ns() - st.cpu0 : 0;
    lws_context_destroy(ctx);

    if (st.failed) return 1;
    if (!st.count || st.t1 <= st.t0) {
        fprintf(stderr, "lws_reader: no messages counted\n");
        return 1;
    }
    double el = (double)(st.t1 - st.t0) / 1e9;
    fprintf(stderr,
            "messages=%" PRIu64 " seconds=%.3f first_u=%" PRIu64 " gaps=%" PRIu64
            " missing=%" PRIu64 " unparsed=%" PRIu64 " cpu_ns_per_msg=%.0f\n",
            st.count, el, st.first_u, st.gaps, st.missing, st.unparsed,
            (double)cpu / (double)st.count);
    printf("%.0f\n", (double)st.count / el);
    fflush(stdout);
    return 0;
}
