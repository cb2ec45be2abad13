/*
 * conn.h — mmws_conn, one live WebSocket client connection (the seed's
 * WsConnection), running on an mmws_loop.
 *
 * A connection resolves, connects (TCP, TLS), upgrades, sends its
 * on_connect payloads, measures its latency with pings, notices when it is
 * dead even if the socket looks fine, and reconnects with backoff until
 * mmws_conn_close(). Messages reach the callback as views with a receive
 * timestamp. All calls are made on the loop's thread.
 */
#ifndef MMWS_CONN_H
#define MMWS_CONN_H

#include <mmws/codec.h>
#include <mmws/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mmws_conn mmws_conn;

/* The seed's ConnectionState. */
typedef enum mmws_state {
    MMWS_DISCONNECTED = 0,
    MMWS_CONNECTING = 1,
    MMWS_CONNECTED = 2
} mmws_state;

/* The finer phase behind the state. */
typedef enum mmws_phase {
    MMWS_PHASE_IDLE = 0,       /* created, not started (DISCONNECTED) */
    MMWS_PHASE_RESOLVING,      /* DNS (CONNECTING) */
    MMWS_PHASE_TCP,            /* TCP connect (CONNECTING) */
    MMWS_PHASE_TLS,            /* TLS handshake (CONNECTING) */
    MMWS_PHASE_UPGRADE,        /* HTTP upgrade (CONNECTING) */
    MMWS_PHASE_OPEN,           /* messages flow (CONNECTED) */
    MMWS_PHASE_CLOSING,        /* close handshake (CONNECTED) */
    MMWS_PHASE_BACKOFF,        /* waiting to reconnect (DISCONNECTED) */
    MMWS_PHASE_CLOSED          /* closed for good (DISCONNECTED) */
} mmws_phase;

typedef void (*mmws_on_message)(void *user, const mmws_msg *msg);

/*
 * The config (the seed's WsConnectionConfig). Fill it with
 * mmws_conn_config_default(), then set fields. Strings and arrays are
 * borrowed only during mmws_conn_new(), which copies them.
 */
typedef struct mmws_conn_config {
    uint64_t conn_id;                 /* 0: a unique id is assigned */
    const char *wss_url;              /* wss://host[:port][/path][?query] */
    int allow_plaintext;              /* 0; 1 accepts ws:// (tests, benches) */
    const char *const *on_connect;    /* TEXT payloads sent, in order, on
                                         every (re)connect */
    size_t on_connect_count;
    int auto_reconnect;               /* 1 */
    size_t max_frame_size;            /* 1 MiB; bounds frames and whole
                                         messages (1009 past it) */
    /* Latency pings: one PING carrying an id every interval, one
     * outstanding at a time. Default 1000. The seed's 100 ms means ten
     * pings a second, which alone is Binance futures' limit of 10 incoming
     * messages per second per connection and twice its spot limit of 5.
     * 0 disables pings (and the pong timeout). */
    uint32_t latency_ping_interval_ms;
    uint32_t pong_timeout_ms;         /* 5000: no pong -> dead */
    uint32_t idle_timeout_ms;         /* 30000: no bytes at all -> dead;
                                         0 disables */
    uint32_t connect_timeout_ms;      /* 10000: DNS + TCP + TLS */
    uint32_t handshake_timeout_ms;    /* 10000: the HTTP upgrade */
    uint32_t close_timeout_ms;        /* 2000: waiting for the close echo */
    uint32_t backoff_base_ms;         /* 250 */
    uint32_t backoff_cap_ms;          /* 30000 */
    uint32_t backoff_reset_ms;        /* 60000: up this long resets backoff */
    int deliver_binary;               /* 0: BINARY counted as dropped */
    int validate_utf8;                /* 1: TEXT checked (1007) */
    size_t read_buffer_size;          /* 262144: bytes per read syscall */
    size_t max_send_queue;            /* 4 MiB of unsent frames */
    size_t max_handshake_size;        /* 16384: response header bound */
    uint32_t max_msgs_per_sec;        /* 0: no outbound budget; else every
                                         frame sent (pings included)
                                         counts, one-second window */
    /* Application heartbeat (venues that want one): app_ping_payload sent
     * as TEXT every app_ping_interval_ms; a TEXT message equal to
     * app_pong_payload counts as liveness and an RTT sample and is not
     * delivered. NULL / 0 disables. */
    const char *app_ping_payload;
    const char *app_pong_payload;
    uint32_t app_ping_interval_ms;
    const mmws_header *headers;       /* extra request headers */
    size_t header_count;
    const char *const *subprotocols;
    size_t subprotocol_count;
    int tls_verify;                   /* 1; 0 only for tests */
    const char *tls_ca_file;          /* NULL: the system trust store */
    const char *tls_ca_dir;
    const char *tls_cert_file;        /* client certificate */
    const char *tls_key_file;
    const char *dns_servers;          /* NULL: /etc/resolv.conf; else
                                         "ip[:port],..." for c-ares */
    /* Like curl's --resolve: "addr,addr" used instead of DNS for the
     * URL's host (the host name still goes in SNI, Host and
     * verification). NULL: resolve normally. */
    const char *resolve;
} mmws_conn_config;

/* Fills cfg with the defaults documented above and wss_url (borrowed). */
MMWS_API void mmws_conn_config_default(mmws_conn_config *cfg,
                                       const char *wss_url);

/*
 * Checks every field. Returns 0, or MMWS_ECONFIG (or the URL's
 * MMWS_EURL_*) with a sentence in err naming the field and the value, e.g.
 * `wss_url must start with wss:// (got "http://x")`.
 */
MMWS_API int mmws_conn_config_validate(const mmws_conn_config *cfg,
                                       char *err, size_t err_len);

/*
 * Creates a connection on loop and starts connecting. on_message(user,
 * msg) receives every delivered message on the loop thread. Returns 0 and
 * *out, or MMWS_EINVAL, MMWS_ECONFIG/MMWS_EURL_* (the sentence is in
 * mmws_last_error()), MMWS_ENOMEM.
 */
MMWS_API int mmws_conn_new(mmws_loop *loop, const mmws_conn_config *cfg,
                           mmws_on_message on_message, void *user,
                           mmws_conn **out);

/*
 * Closes the socket at once (no close handshake) and frees. Legal inside
 * any of the connection's own callbacks (the free is deferred until the
 * callback returns). mmws_conn_free(NULL) is a no-op.
 */
MMWS_API void mmws_conn_free(mmws_conn *c);

/*
 * Sends one message. Returns 0 once the frame is written or queued;
 * MMWS_ENOTCONN when not CONNECTED (nothing sent: never a silent drop);
 * MMWS_ETOOBIG over max_frame_size; MMWS_EQUEUEFULL past max_send_queue;
 * MMWS_ERATELIMIT past max_msgs_per_sec; MMWS_EUTF8 (text only, when
 * validate_utf8). Control payloads over 125 bytes: MMWS_EPROTO.
 */
MMWS_API int mmws_conn_send_text(mmws_conn *c, const void *data, size_t len);
MMWS_API int mmws_conn_send_binary(mmws_conn *c, const void *data,
                                   size_t len);
MMWS_API int mmws_conn_send_ping(mmws_conn *c, const void *data, size_t len);
MMWS_API int mmws_conn_send_pong(mmws_conn *c, const void *data, size_t len);

/*
 * Starts the close handshake with code (0: none) and reason, and stops
 * reconnecting for good: the phase ends CLOSED. Returns 0, MMWS_ECLOSECODE,
 * MMWS_ERANGE, MMWS_EUTF8; closing an already closed connection is 0.
 */
MMWS_API int mmws_conn_close(mmws_conn *c, unsigned code, const char *reason);

/* Replaces the on_connect payloads for later (re)connects (copied).
 * Returns 0, MMWS_EINVAL (a NULL message, one over max_frame_size or not
 * UTF-8) or MMWS_ENOMEM; on error the old ones are kept. */
MMWS_API int mmws_conn_set_on_connect(mmws_conn *c, const char *const *msgs,
                                      size_t count);

/* Called on every state change (DISCONNECTED/CONNECTING/CONNECTED), after
 * it happened; mmws_conn_last_error() says why on a drop. */
typedef void (*mmws_on_state)(void *user, mmws_conn *c, mmws_state from,
                              mmws_state to);
MMWS_API void mmws_conn_set_on_state(mmws_conn *c, mmws_on_state cb,
                                     void *user);

MMWS_API mmws_state mmws_conn_state(const mmws_conn *c);
MMWS_API mmws_phase mmws_conn_phase(const mmws_conn *c);
MMWS_API const char *mmws_phase_name(mmws_phase phase);
MMWS_API uint64_t mmws_conn_id(const mmws_conn *c);

/* Last RTT and its EMA (window 60, alpha 2/61), in ms; both 1000.0 until
 * the first sample, as in the seed. */
MMWS_API double mmws_conn_latency_ms(const mmws_conn *c);
MMWS_API double mmws_conn_latency_ema_ms(const mmws_conn *c);

/* Why the connection last failed or closed ("" if never): what and why,
 * e.g. "TLS: certificate verify failed: self-signed certificate". */
MMWS_API const char *mmws_conn_last_error(const mmws_conn *c);


typedef struct mmws_conn_stats {
    uint64_t msgs_in, bytes_in;       /* delivered messages, payload bytes */
    uint64_t msgs_out, bytes_out;     /* frames sent (all kinds), bytes */
    uint64_t frames_in;               /* every frame received */
    uint64_t pings_sent, pongs_received;
    uint64_t reconnects;              /* connections after the first */
    uint64_t connects;                /* successful upgrades */
    uint64_t dropped_binary;          /* BINARY not delivered */
    uint64_t dropped_after_close;     /* data received after a close */
    uint64_t dropped_unsolicited_pong;/* pongs matching no ping of ours */
    uint64_t rejected_rate;           /* sends refused by the budget */
    uint64_t rejected_queue;          /* sends refused by the queue bound */
    double latency_ms, latency_ema_ms;
    uint64_t connected_ns;            /* total time CONNECTED */
    uint64_t up_since_ns;             /* start of the current connection, 0
                                         when not connected */
    uint32_t last_backoff_ms;         /* the last reconnect delay chosen */
    uint32_t last_backoff_cap_ms;     /* the ceiling it was drawn under:
                                         min(cap, base * 2^attempt) */
    int last_error_code;              /* MMWS_E* of the last failure, 0 */
    int last_http_status;             /* status of a refused upgrade, 0 */
    unsigned last_close_code;         /* close code received or sent, 0 */
    size_t send_queue_bytes;
    mmws_phase phase;
} mmws_conn_stats;

MMWS_API void mmws_conn_stats_get(const mmws_conn *c, mmws_conn_stats *out);

/* Optional log sink: level 0 error, 1 warning, 2 info, 3 debug. Nothing
 * is printed without it. text is valid during the call. */
typedef void (*mmws_log_fn)(void *user, int level, const char *text);
MMWS_API void mmws_conn_set_log(mmws_conn *c, mmws_log_fn fn, void *user);

#ifdef __cplusplus
}
#endif

#endif /* MMWS_CONN_H */
