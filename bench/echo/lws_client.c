/*
 * lws_client.c — the libwebsockets (4.1) peer of the round-trip benchmark.
 *
 *   lws_client URL SIZE SECONDS [CAFILE]
 *
 * One client connection driven by lws_service(). On WRITEABLE it sends the
 * message with lws_write(LWS_WRITE_BINARY); on RECEIVE it counts payload
 * bytes until the message's final byte, checks the length and opcode, and
 * asks for WRITEABLE again. Tuned as the lws docs suggest for large
 * messages: a 1 MiB rx buffer in the protocol (the default is small and
 * slow) and a 1 MiB per-thread service buffer; no extensions (so no
 * permessage-deflate). TLS verifies the peer against CAFILE (or the system
 * store) and its host name. Prints round trips per second as its last
 * stdout line.
 */
#include "echo_common.h"

#include <libwebsockets.h>

#define LWS_ECHO_BUF (1024u * 1024u)

/* Everything the callback needs; one connection per process. */
static struct {
    const echo_args *args;
    unsigned char *msg; /* LWS_PRE headroom + SIZE payload */
    size_t received;    /* payload bytes of the current echo so far */
    uint64_t trips;     /* completed round trips */
    uint64_t t0, t1;    /* measuring window, monotonic ns */
    uint64_t limit_ns;  /* measuring time */
    int established;    /* handshake done */
    int done;           /* measuring finished, closing */
    int finished;       /* connection gone; leave the service loop */
    int failed;         /* an error was reported */
} st;

static void fail(const char *fmt, const char *detail) {
    fprintf(stderr, "lws_client: ");
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    st.failed = 1;
    st.done = 1;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        fail("connection error: %s", in ? (const char *)in : "(unknown)");
        st.finished = 1;
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        st.established = 1;
        st.t0 = st.t1 = echo_now_ns();
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (st.done) break;
        int n = lws_write(wsi, st.msg + LWS_PRE, st.args->size, LWS_WRITE_BINARY);
        if (n < 0 || (size_t)n < st.args->size) {
            fail("%s", "lws_write failed");
            return -1;
        }
        st.received = 0;
        break;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (st.done) break;
        if (!lws_frame_is_binary(wsi)) {
            fail("%s", "echo is not a binary message");
            return -1;
        }
        st.received += len;
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
            if (st.received != st.args->size) {
                char d[64];
                snprintf(d, sizeof d, "%zu bytes, want %zu", st.received, st.args->size);
                fail("echo of %s", d);
                return -1;
            }
            st.trips++;
            st.t1 = echo_now_ns();
            if (st.t1 - st.t0 >= st.limit_ns) {
                st.done = 1;
                lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
                return -1;
            }
            lws_callback_on_writable(wsi);
        } else if (st.received > st.args->size) {
            fail("%s", "echo longer than the message");
            return -1;
        }
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!st.done) fail("%s", "connection closed by the server");
        st.finished = 1;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"echo-bench", callback, 0, LWS_ECHO_BUF, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv) {
    echo_args a;
    if (echo_parse_args(argc, argv, &a) != 0) return 2;
    st.args = &a;
    st.limit_ns = (uint64_t)(a.seconds * 1e9);
    st.msg = malloc(LWS_PRE + a.size);
    if (!st.msg) {
        fprintf(stderr, "lws_client: out of memory\n");
        return 1;
    }
    echo_fill(st.msg + LWS_PRE, a.size);

    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.pt_serv_buf_size = LWS_ECHO_BUF;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    if (a.url.tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = a.cafile; /* NULL: the system store */
    }
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws_client: lws_create_context failed\n");
        return 1;
    }

    struct lws_client_connect_info cc;
    memset(&cc, 0, sizeof cc);
    cc.context = ctx;
    cc.address = a.url.host;
    cc.port = atoi(a.url.port);
    cc.path = a.url.path;
    cc.host = a.url.host;
    cc.origin = a.url.host;
    cc.local_protocol_name = protocols[0].name;
    cc.ssl_connection = a.url.tls ? LCCSCF_USE_SSL : 0;
    struct lws *wsi = NULL;
    cc.pwsi = &wsi;
    if (!lws_client_connect_via_info(&cc)) {
        fprintf(stderr, "lws_client: cannot start connecting to %s:%s\n", a.url.host, a.url.port);
        lws_context_destroy(ctx);
        return 1;
    }

    while (!st.finished && lws_service(ctx, 0) >= 0) {
    }
    lws_context_destroy(ctx);
    free(st.msg);

    if (st.failed) return 1;
    if (!st.established || st.trips == 0) {
        fprintf(stderr, "lws_client: no round trip completed\n");
        return 1;
    }
    echo_report(st.trips, st.t1 - st.t0);
    return 0;
}
