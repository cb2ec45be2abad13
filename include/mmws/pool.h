/*
 * pool.h — mmws_single (the seed's WsSingle) and mmws_pool (WsPool).
 *
 * A single is one connection plus, for pull iteration, a ring. A pool is
 * N redundant connections to one stream: each message is delivered once,
 * by whichever connection brings it first (duplicates are dropped on
 * arrival and never take ring space), sends go over the best-scored
 * connection, and the slowest connections are replaced make-before-break.
 * Both consume either through a callback (zero-copy, arrival order) or by
 * iteration (`*_next`, which drives the loop until a message or timeout).
 */
#ifndef MMWS_POOL_H
#define MMWS_POOL_H

#include <mmws/conn.h>
#include <mmws/ring.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ single -- */

typedef struct mmws_single mmws_single;

/*
 * Creates a connection on loop. With on_message, every message goes to it
 * (zero-copy, as mmws_conn). With on_message NULL, messages go into a ring
 * (ring_cfg, or the ring defaults when NULL) for mmws_single_next().
 * Returns 0, MMWS_EINVAL, MMWS_ECONFIG/MMWS_EURL_* (sentence in
 * mmws_last_error()), MMWS_ENOMEM.
 */
MMWS_API int mmws_single_new(mmws_loop *loop, const mmws_conn_config *cfg,
                             const mmws_ring_config *ring_cfg,
                             mmws_on_message on_message, void *user,
                             mmws_single **out);
MMWS_API void mmws_single_free(mmws_single *s);

/*
 * Iteration: runs the loop until a message is ready (0, *out valid until
 * the next call) or timeout_ms passes (MMWS_ETIMEDOUT; -1 waits forever).
 * Reconnects happen while iterating. MMWS_ESTATE in callback mode or once
 * closed with nothing left.
 */
MMWS_API int mmws_single_next(mmws_single *s, mmws_msg *out, int timeout_ms);

/* Sends TEXT (mmws_conn_send_text's errors; MMWS_ENOTCONN when down). */
MMWS_API int mmws_single_send_data(mmws_single *s, const void *data,
                                   size_t len);
MMWS_API int mmws_single_set_on_connect(mmws_single *s,
                                        const char *const *msgs, size_t n);
MMWS_API mmws_state mmws_single_get_state(const mmws_single *s);
/* The config as copied at creation (strings owned by the single). */
MMWS_API const mmws_conn_config *mmws_single_get_config(const mmws_single *s);
MMWS_API int mmws_single_close(mmws_single *s);
MMWS_API mmws_conn *mmws_single_conn(mmws_single *s);
MMWS_API mmws_ring *mmws_single_ring(mmws_single *s);

/* -------------------------------------------------------------- pool -- */

typedef struct mmws_pool mmws_pool;

/* Dedup key of a payload; the default is XXH3-64 of the bytes. A venue's
 * update id makes a cheaper and exact key. */
typedef uint64_t (*mmws_key_fn)(void *user, const uint8_t *data, size_t len);

typedef struct mmws_pool_config {
    size_t num_connections;        /* 5; must be > 1 */
    uint32_t evict_interval_s;     /* 60; must be > 0 */
    size_t hash_capacity;          /* 16384; messages remembered by the
                                      duplicate filter; must be > 0 */
    mmws_key_fn key_fn;            /* NULL: XXH3-64 of the payload */
    void *key_user;
    /* Scheduled rotation: a connection older than this is replaced
     * (make-before-break, one at a time). 0: never. Binance ends every
     * connection at 24 h: use e.g. 23 * 3600. */
    uint32_t max_connection_age_s;
    /* Connection budget: at most max_new_connections attempts (first
     * connections, replacements, evictions, rotations) in any
     * budget_window_s. Default 300 per 300 s (Binance's limit). */
    uint32_t max_new_connections;
    uint32_t budget_window_s;
    /* Delay before replacing a connection that died: grows from
     * replace_base_ms to replace_cap_ms (full jitter) while the slot keeps
     * failing. Defaults 250 and 30000. */
    uint32_t replace_base_ms;
    uint32_t replace_cap_ms;
    /* A (re)connected connection ahead of the others holds what it
     * brings until the delivered stream meets it (so delivery stays in
     * order); past this many messages the stream is taken from the
     * holding connection that reaches furthest back, then this one's as
     * it is. Default 4096, at most 1048576. */
    size_t join_hold_max;
    mmws_ring_config ring;         /* the ring used in iteration mode */
} mmws_pool_config;

MMWS_API void mmws_pool_config_default(mmws_pool_config *cfg);

/* Checks every field of both configs; sentence in err. */
MMWS_API int mmws_pool_config_validate(const mmws_pool_config *pcfg,
                                       char *err, size_t err_len);

/*
 * Opens num_connections connections concurrently with cfg (auto_reconnect
 * is managed by the pool: a dead connection is replaced within the
 * budget). The host is resolved once, by the pool (cfg->resolve, if set,
 * instead); with several addresses, connections are spread across them
 * round-robin, each trying the others after its own. If that resolution
 * fails, each connection resolves for itself (and reports the error).
 * on_message NULL selects iteration mode.
 * Returns 0, MMWS_EINVAL, MMWS_ECONFIG (sentence in mmws_last_error()),
 * MMWS_ENOMEM.
 */
MMWS_API int mmws_pool_new(mmws_loop *loop, const mmws_conn_config *cfg,
                           const mmws_pool_config *pcfg,
                           mmws_on_message on_message, void *user,
                           mmws_pool **out);
MMWS_API void mmws_pool_free(mmws_pool *p);

/* As mmws_single_next. */
MMWS_API int mmws_pool_next(mmws_pool *p, mmws_msg *out, int timeout_ms);

/*
 * Sends TEXT. only_fastest: over the CONNECTED connection with the best
 * (lowest) score, falling back to the next best if that send fails;
 * otherwise on every CONNECTED connection (0 if at least one took it).
 * MMWS_ENOTCONN when none is connected: a send never vanishes.
 */
MMWS_API int mmws_pool_send_data(mmws_pool *p, const void *data, size_t len,
                                 int only_fastest);

/* CONNECTED if any connection is, else CONNECTING if any is, else
 * DISCONNECTED. */
MMWS_API mmws_state mmws_pool_get_state(const mmws_pool *p);

/* Connections currently CONNECTED / currently held (any state). */
MMWS_API size_t mmws_pool_connected_count(const mmws_pool *p);
MMWS_API size_t mmws_pool_size(const mmws_pool *p);

/*
 * Per-connection view. score_ms = lag_ema_ms + latency_ema_ms / 2 (lower
 * is better): how far behind the first arrival this connection's copies
 * come, plus half its ping round trip (the one-way send path). A
 * connection with no message yet scores its latency only.
 */
typedef struct mmws_pool_conn_info {
    uint64_t conn_id;
    mmws_state state;
    double latency_ema_ms;
    double lag_ema_ms;       /* EMA of arrival - first arrival (0 if first) */
    double first_share;      /* firsts / messages received */
    double score_ms;
    uint64_t messages;       /* copies received (firsts + duplicates) */
    uint64_t firsts;
    uint64_t duplicates;
    uint64_t age_ms;         /* since this connection was created */
    int evicting;            /* being replaced */
    char addr[48];           /* the address it was spread to first ("" if
                                the pool had one address or none) */
} mmws_pool_conn_info;

/* Fills out for connection i (0 .. mmws_pool_size - 1). 0 or
 * MMWS_EINVAL. */
MMWS_API int mmws_pool_conn_info_get(const mmws_pool *p, size_t i,
                                     mmws_pool_conn_info *out);

typedef struct mmws_pool_stats {
    uint64_t delivered;      /* first copies handed on */
    uint64_t duplicates;     /* later copies dropped */
    uint64_t evictions;      /* connections replaced for being slow */
    uint64_t rotations;      /* replaced for age */
    uint64_t replacements;   /* replaced after dying */
    uint64_t attempts;       /* connections created */
    uint64_t budget_denied;  /* creations postponed by the budget */
    uint64_t ring_dropped;   /* iteration mode: ring drops */
    uint64_t held;           /* copies held now by joining connections;
                                every copy received is exactly one of
                                delivered, duplicates or held */
} mmws_pool_stats;

MMWS_API void mmws_pool_stats_get(const mmws_pool *p, mmws_pool_stats *out);

/* ----------------------------------------------------- threaded mode -- */

/*
 * Threaded mode moves the loop onto an I/O thread of its own, so a slow
 * consumer never delays a ping answer, a pong, a reconnect or a read:
 * the I/O thread keeps the connections alive and hands each message to
 * the consumer through a lock-free single-producer/single-consumer ring
 * (capacity, arena_bytes and policy from the iteration-mode ring config).
 * When the consumer falls behind, that ring's policy decides what goes
 * (the oldest unread messages, or the newest) and every message that
 * does not reach the consumer is counted in mmws_thread_stats.handoff.
 *
 * Start it on a single or pool in iteration mode (on_message NULL) whose
 * loop is not running; from then on the loop and everything on it belong
 * to the I/O thread. The consumer (the thread that started it) may call
 * only: *_next, *_send_data (queued to the I/O thread), *_get_state and
 * mmws_pool_connected_count / mmws_pool_size / mmws_pool_stats_get (a
 * snapshot at most snapshot_interval_ms old), *_thread_stats (any thread)
 * and *_free, which stops and joins the I/O thread first. Every other call
 * returns MMWS_ESTATE (or NULL / does nothing) with a sentence in
 * mmws_last_error().
 */
typedef enum mmws_wait_mode {
    MMWS_WAIT_BLOCK = 0, /* sleep on a futex until a message or the timeout
                            (after a microsecond of polling) */
    MMWS_WAIT_SPIN = 1   /* busy-wait: the lowest hand-off latency; burns
                            the consumer's core while it waits */
} mmws_wait_mode;

typedef struct mmws_thread_config {
    int cpu;                      /* -1 (default): not pinned; else the I/O
                                     thread runs on this CPU only (one the
                                     process may use) */
    mmws_wait_mode wait;          /* how *_next waits; MMWS_WAIT_BLOCK.
                                     timeout_ms 0 polls in either mode */
    size_t send_queue_messages;   /* sends queued to the I/O thread:
                                     1024 (1..2^20) */
    size_t send_queue_bytes;      /* and their bytes: 1 MiB (1..2^30); a
                                     larger send is refused (ETOOBIG) */
    uint32_t snapshot_interval_ms;/* state and stats snapshots: 50
                                     (1..60000) */
} mmws_thread_config;

typedef struct mmws_thread_stats {
    mmws_ring_stats handoff;      /* I/O thread -> consumer: inserted,
                                     consumed, dropped_oldest,
                                     dropped_newest (by the ring policy) */
    size_t handoff_pending;       /* messages waiting for the consumer */
    uint64_t sends_queued;        /* consumer -> I/O thread */
    uint64_t sends_done;          /* sent by the I/O thread */
    uint64_t sends_failed;        /* refused there (e.g. not connected by
                                     then); the last reason below */
    char last_send_error[160];
} mmws_thread_stats;

MMWS_API void mmws_thread_config_default(mmws_thread_config *cfg);

/* Starts the I/O thread. 0; MMWS_EINVAL (NULL); MMWS_ESTATE (callback
 * mode, already started, or the loop is running); MMWS_ECONFIG (a field
 * out of range, the cpu not usable); MMWS_ENOMEM; MMWS_ESYS (the thread
 * could not start). The sentence is in mmws_last_error(). */
MMWS_API int mmws_single_start_thread(mmws_single *s,
                                      const mmws_thread_config *tcfg);
MMWS_API int mmws_pool_start_thread(mmws_pool *p,
                                    const mmws_thread_config *tcfg);

/* Counters of the hand-off and the send queue (any thread; zeros before
 * the thread starts). 0 or MMWS_EINVAL. */
MMWS_API int mmws_single_thread_stats(const mmws_single *s,
                                      mmws_thread_stats *out);
MMWS_API int mmws_pool_thread_stats(const mmws_pool *p,
                                    mmws_thread_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* MMWS_POOL_H */
