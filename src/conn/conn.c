/*
 * conn.c — mmws_conn: one live WebSocket client connection.
 *
 * Phases: RESOLVING -> TCP -> (TLS) -> UPGRADE -> OPEN -> CLOSING, with a
 * failure anywhere tearing the socket down and, unless the user closed,
 * scheduling a reconnect after a full-jitter backoff (BACKOFF).
 *
 * Data path (OPEN): one read syscall per readiness event into a large
 * buffer, every complete frame parsed in place, one-frame messages handed
 * to the callback as a view into that buffer, fragmented ones from a
 * reassembly buffer. Nothing is allocated per message; buffers grow only
 * for a frame larger than any seen before, never past max_frame_size.
 *
 * Send path: a frame is built in the send queue and written at once when
 * the queue was empty (the common case: one write syscall per send);
 * otherwise it waits behind the queue, which is bounded by max_send_queue.
 * A pong jumps the queue to go right after the frame being written.
 *
 * Re-entrancy: user callbacks may send, close or free. A free inside a
 * callback is deferred until the outermost callback returns (`depth`), and
 * every loop that walks the read buffer stops when the connection was torn
 * down underneath it (`gen` changed).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn/conn_internal.h"

#define MS 1000000ull /* ns per ms */

struct mmws_conn {
    mmws_loop *loop;               /* the loop everything runs on */
    mmws__conn_cfg cfg;            /* owned copy of the config */
    mmws_on_message on_message;    /* delivery callback and its user */
    void *user;
    mmws_on_state on_state;        /* state-change callback and its user */
    void *state_user;
    mmws_log_fn log;               /* optional log sink and its user */
    void *log_user;

    mmws_phase phase;              /* where the state machine is */
    mmws_state state;              /* the coarse state reported to users */
    int user_closed;               /* mmws_conn_close called: no reconnect */
    int depth;                     /* nesting of our callbacks on the stack */
    int free_pending;              /* mmws_conn_free called inside one */
    uint64_t gen;                  /* bumped by every teardown */

    mmws__dns_query *dns;          /* the query in flight, if any */
    mmws__addrs addrs;             /* addresses of this attempt */
    size_t addr_index;             /* the one being tried */
    int fd;                        /* socket while connecting, -1 if none */
    mmws__io io;                   /* watcher on fd */
    mmws__transport *tr;           /* transport once TCP is up */
    mmws__tls_ctx *tls_ctx;        /* shared by all attempts (wss only) */
    int tls_failed;                /* the last TLS handshake failed */
    mmws__transport_factory make_tr; /* test hook replacing DNS + TCP (+ TLS),
                                      NULL normally */
    void *make_tr_user;            /* make_tr's argument */

    mmws__timer t_phase;           /* connect / upgrade / close timeout */
    mmws__timer t_ping;            /* latency ping interval */
    mmws__timer t_pong;            /* pong timeout */
    mmws__timer t_idle;            /* idle check */
    mmws__timer t_app;             /* application heartbeat */
    mmws__timer t_backoff;         /* reconnect delay */

    char key[MMWS_HS_KEY_LEN + 1]; /* this attempt's Sec-WebSocket-Key */
    mmws_handshake_parser hs;      /* checks the upgrade answer */
    mmws_frame_parser fp;          /* frame state across reads */

    uint8_t *rbuf;                 /* read buffer */
    size_t rcap;                   /* its size */
    size_t rpos, rlen;             /* unparsed bytes are rbuf[rpos..rlen) */
    uint8_t *mbuf;                 /* reassembly of fragmented messages */
    size_t mlen, mcap;

    uint8_t *sbuf;                 /* send queue: frames, in order */
    size_t scap;                   /* its size */
    size_t soff, slen;             /* unsent bytes are sbuf[soff..slen) */
    size_t sframe;                 /* first frame boundary at or after soff
                                      (the end of a half-written frame) */
    size_t sretry;                 /* length of a write that must be
                                      retried as it was (TLS), 0 if none */
    int close_sent;                /* a close frame is queued or sent */
    int close_received;            /* the peer's close arrived */

    uint8_t rand_pool[MMWS__RAND_POOL]; /* CSPRNG bytes for masking keys */
    size_t rand_used;              /* bytes of rand_pool consumed */
    uint64_t jitter;               /* xorshift state for backoff jitter */

    uint64_t ping_id;              /* id of the last latency ping */
    uint64_t ping_sent_ns;         /* when it was sent; 0: none in flight */
    uint64_t app_ping_sent_ns;     /* when the app heartbeat went, 0: none */
    int have_sample;               /* an RTT sample was recorded */
    uint64_t last_rx_ns;           /* time of the last bytes received */
    uint64_t rate_window_ns;       /* start of the budget's second */
    uint32_t rate_count;           /* frames sent in that second */
    uint32_t attempt;              /* reconnect attempts since last reset */
    uint64_t seq;                  /* last message sequence number */
    mmws_conn_stats st;            /* counters read by mmws_conn_stats_get */
    char err[MMWS__ERR_LEN];       /* last error sentence */
};

static uint64_t next_conn_id = 0; /* guarded: atomically incremented */

static void start_connect(mmws_conn *c);
static void conn_open(mmws_conn *c, uint64_t recv_ns);
static void on_io(mmws__io *io, unsigned events);
static int flush(mmws_conn *c);
static void conn_fail(mmws_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------ helpers -- */

/* Sends a sentence to the log sink, if any. */
__attribute__((format(printf, 3, 4))) static void
logf_(mmws_conn *c, int level, const char *fmt, ...) {
    if (!c->log) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->log(c->log_user, level, buf);
}

static mmws_state state_of(mmws_phase p) {
    switch (p) {
    case MMWS_PHASE_RESOLVING:
    case MMWS_PHASE_TCP:
    case MMWS_PHASE_TLS:
    case MMWS_PHASE_UPGRADE: return MMWS_CONNECTING;
    case MMWS_PHASE_OPEN:
    case MMWS_PHASE_CLOSING: return MMWS_CONNECTED;
    default: return MMWS_DISCONNECTED;
    }
}

/* Enters phase p and reports a change of the coarse state. */
static void set_phase(mmws_conn *c, mmws_phase p) {
    mmws_state from = c->state, to = state_of(p);
    c->phase = p;
    if (from == to) return;
    c->state = to;
    uint64_t now = mmws_loop_now_ns(c->loop);
    if (to == MMWS_CONNECTED) c->st.up_since_ns = now;
    if (from == MMWS_CONNECTED && c->st.up_since_ns) {
        c->st.connected_ns += now - c->st.up_since_ns;
    }
    if (c->on_state) {
        c->depth++;
        c->on_state(c->state_user, c, from, to);
        c->depth--;
    }
}

/* 4 bytes from the CSPRNG pool, refilled 4 KiB at a time so masking costs
 * one getrandom call per thousand frames. */
static void mask_key(mmws_conn *c, uint8_t key[4]) {
    if (c->rand_used + 4 > sizeof c->rand_pool) {
        if (mmws_random_bytes(c->rand_pool, sizeof c->rand_pool) != 0) {
            /* getrandom cannot fail on Linux >= 3.17 once seeded; keep
             * going with the jitter generator rather than stop sending. */
            for (size_t i = 0; i < sizeof c->rand_pool; i += 8) {
                c->jitter ^= c->jitter << 13;
                c->jitter ^= c->jitter >> 7;
                c->jitter ^= c->jitter << 17;
                memcpy(c->rand_pool + i, &c->jitter, 8);
            }
        }
        c->rand_used = 0;
    }
    memcpy(key, c->rand_pool + c->rand_used, 4);
    c->rand_used += 4;
}

/* Updates io interest: READ always while a transport exists, WRITE while
 * the queue has bytes (or the transport asked for it). */
static void want(mmws_conn *c, unsigned events) {
    if (c->io.loop && c->io.events != events) mmws__io_modify(&c->io, events);
}

/* Stops everything of the current attempt: DNS, socket, timers. */
static void teardown(mmws_conn *c) {
    c->gen++;
    if (c->dns) {
        mmws__dns_cancel(c->dns);
        c->dns = NULL;
    }
    mmws__io_stop(&c->io);
    if (c->tr) {
        c->tr->ops->destroy(c->tr); /* closes the fd */
        c->tr = NULL;
        c->fd = -1;
    } else if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    mmws__timer_stop(&c->t_phase);
    mmws__timer_stop(&c->t_ping);
    mmws__timer_stop(&c->t_pong);
    mmws__timer_stop(&c->t_idle);
    mmws__timer_stop(&c->t_app);
    c->rpos = c->rlen = 0;
    c->mlen = 0;
    c->soff = c->slen = c->sframe = c->sretry = 0;
    c->st.send_queue_bytes = 0;
    c->close_sent = c->close_received = 0;
    c->ping_sent_ns = 0;
    c->app_ping_sent_ns = 0;
}

/* Picks the next reconnect delay: full jitter under min(cap, base*2^n). */
static void schedule_reconnect(mmws_conn *c) {
    uint64_t now = mmws_loop_now_ns(c->loop);
    if (c->st.up_since_ns &&
        now - c->st.up_since_ns >= (uint64_t)c->cfg.pub.backoff_reset_ms * MS)
        c->attempt = 0;
    uint64_t ceiling = c->cfg.pub.backoff_base_ms;
    for (uint32_t i = 0; i < c->attempt && ceiling < c->cfg.pub.backoff_cap_ms;
         i++)
        ceiling *= 2;
    if (ceiling > c->cfg.pub.backoff_cap_ms) ceiling = c->cfg.pub.backoff_cap_ms;
    c->jitter ^= c->jitter << 13;
    c->jitter ^= c->jitter >> 7;
    c->jitter ^= c->jitter << 17;
    uint64_t delay = c->jitter % (ceiling + 1);
    /* A server that said when to come back (Retry-After) is obeyed, up to
     * the cap. */
    uint64_t ra = (uint64_t)c->hs.retry_after_s * 1000u;
    if (c->st.last_http_status && ra > delay)
        delay = ra < c->cfg.pub.backoff_cap_ms ? ra : c->cfg.pub.backoff_cap_ms;
    c->attempt++;
    c->st.last_backoff_ms = (uint32_t)delay;
    c->st.last_backoff_cap_ms = (uint32_t)ceiling;
    logf_(c, 2, "conn %llu: reconnecting in %llu ms (attempt %u, ceiling %llu ms)",
          (unsigned long long)c->st.reconnects, (unsigned long long)delay,
          c->attempt, (unsigned long long)ceiling);
    set_phase(c, MMWS_PHASE_BACKOFF);
    mmws__timer_start(&c->t_backoff, delay * MS);
}

/* Tears the attempt down, then reconnects unless the user closed or
 * auto_reconnect is off (then CLOSED for good). */
static void end_attempt(mmws_conn *c) {
    teardown(c);
    if (c->user_closed || !c->cfg.pub.auto_reconnect)
        set_phase(c, MMWS_PHASE_CLOSED);
    else
        schedule_reconnect(c);
    c->st.up_since_ns = 0;
}

/* Ends the current attempt with an error: records it, tears down, and
 * reconnects unless the user closed or auto_reconnect is off. */
static void conn_fail(mmws_conn *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->st.last_error_code = code;
    logf_(c, 1, "conn %llu: %s", (unsigned long long)c->cfg.pub.conn_id,
          c->err);
    end_attempt(c);
}

/* Ends a connection that closed cleanly (close handshake done). */
static void conn_closed(mmws_conn *c) {
    if (!c->user_closed && c->err[0] == '\0')
        snprintf(c->err, sizeof c->err, "closed by the server with %u (%s)",
                 c->st.last_close_code,
                 mmws_close_code_name(c->st.last_close_code));
    end_attempt(c);
}

/* Runs the deferred free once no callback of ours is on the stack. */
static void really_free(mmws_conn *c);
static int leave(mmws_conn *c) {
    if (--c->depth == 0 && c->free_pending) {
        really_free(c);
        return 1;
    }
    return 0;
}

/* --------------------------------------------------------------- send -- */

/* Counts a frame against the outbound budget; 0 or MMWS_ERATELIMIT. With
 * force the frame is counted but never refused (pongs, close). */
static int budget(mmws_conn *c, int force) {
    uint32_t limit = c->cfg.pub.max_msgs_per_sec;
    if (!limit) return 0;
    uint64_t now = mmws_loop_now_ns(c->loop);
    if (now - c->rate_window_ns >= 1000 * MS) {
        c->rate_window_ns = now;
        c->rate_count = 0;
    }
    if (c->rate_count >= limit && !force) return MMWS_ERATELIMIT;
    c->rate_count++;
    return 0;
}

/* Makes room for n more bytes at the queue's end; 0 or MMWS_ENOMEM.
 * Unsent bytes may move (TLS allows it: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
 * only asks that a retried write carry the same bytes and length). */
static int queue_reserve(mmws_conn *c, size_t n) {
    if (c->soff == c->slen && !c->sretry) c->soff = c->slen = c->sframe = 0;
    if (c->scap - c->slen >= n) return 0;
    if (c->soff > 0) {
        size_t live = c->slen - c->soff;
        memmove(c->sbuf, c->sbuf + c->soff, live);
        c->sframe -= c->soff;
        c->slen = live;
        c->soff = 0;
        if (c->scap - c->slen >= n) return 0;
    }
    size_t cap = c->scap ? c->scap : 4096;
    while (cap - c->slen < n) cap *= 2;
    uint8_t *nb = realloc(c->sbuf, cap);
    if (!nb) return MMWS_ENOMEM;
    c->sbuf = nb;
    c->scap = cap;
    return 0;
}

/* Length of the client frame whose header starts at p (our own frames). */
static size_t own_frame_len(const uint8_t *p) {
    uint64_t n = p[1] & 0x7Fu;
    size_t hdr = 2;
    if (n == 126) {
        n = (uint64_t)p[2] << 8 | p[3];
        hdr = 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 2; i < 10; i++) n = n << 8 | p[i];
        hdr = 10;
    }
    return hdr + 4 + (size_t)n;
}

/*
 * Queues one frame and tries to write. priority puts it right after the
 * frame being written (pongs). Returns 0 or an MMWS_E* code; the frame is
 * either fully queued or not at all.
 */
static int send_frame(mmws_conn *c, unsigned opcode, const void *data,
                      size_t len, int priority) {
    size_t hdr = mmws_frame_header_len(len), total = hdr + len;
    size_t queued = c->slen - c->soff;
    /* The close frame is exempt (at most one per attempt, <= 131 bytes):
     * a full queue must not turn a close into a silent timeout. */
    if (queued + total > c->cfg.pub.max_send_queue &&
        opcode != MMWS_OP_CLOSE) {
        c->st.rejected_queue++;
        return MMWS_EQUEUEFULL;
    }
    int rc = queue_reserve(c, total);
    if (rc) return rc;
    size_t at = c->slen;
    if (priority && c->slen > c->soff) {
        /* Right after the frame being written, and after whatever TLS
         * must resend exactly as it was: the first of our own frame
         * boundaries at or past both. */
        size_t pos = c->sframe;
        while (pos < c->soff + c->sretry) pos += own_frame_len(c->sbuf + pos);
        at = pos;
        memmove(c->sbuf + at + total, c->sbuf + at, c->slen - at);
    }
    uint8_t key[4];
    mask_key(c, key);
    size_t out_len = 0;
    rc = mmws_frame_build(c->sbuf + at, total, opcode, 1, data, len, key,
                          &out_len);
    if (rc) {
        if (at != c->slen)
            memmove(c->sbuf + at, c->sbuf + at + total, c->slen - at);
        return rc;
    }
    c->slen += total;
    c->st.msgs_out++;
    c->st.bytes_out += len;
    c->st.send_queue_bytes = c->slen - c->soff;
    if (queued == 0) {
        rc = flush(c);
        if (rc < 0) return 0; /* the failure is the connection's, reported */
    }
    return 0;
}

/*
 * Writes queued bytes until done or the transport would block. Returns 0,
 * 1 (would block; WRITE interest set), or -1 (connection failed).
 */
static int flush(mmws_conn *c) {
    while (c->soff < c->slen) {
        size_t n = c->sretry ? c->sretry : c->slen - c->soff;
        ptrdiff_t w = c->tr->ops->write(c->tr, c->sbuf + c->soff, n);
        if (w == MMWS_EWANTWRITE || w == MMWS_EWANTREAD) {
            c->sretry = n;
            want(c, MMWS__IO_READ | MMWS__IO_WRITE);
            return 1;
        }
        if (w < 0) {
            conn_fail(c, (int)w, "send failed: %s", c->tr->detail);
            return -1;
        }
        c->sretry = 0;
        c->soff += (size_t)w;
        while (c->sframe < c->soff)
            c->sframe += own_frame_len(c->sbuf + c->sframe);
    }
    c->soff = c->slen = c->sframe = 0;
    c->st.send_queue_bytes = 0;
    want(c, MMWS__IO_READ);
    if (c->phase == MMWS_PHASE_CLOSING && c->close_sent && c->close_received) {
        conn_closed(c);
        return -1;
    }
    return 0;
}

/* Common checks of the public send calls. A write failure inside is the
 * connection's (reported through its state); the frame was accepted. */
static int send_user(mmws_conn *c, unsigned opcode, const void *data,
                     size_t len) {
    if (!c || (!data && len)) return MMWS_EINVAL;
    if (c->phase != MMWS_PHASE_OPEN) return MMWS_ENOTCONN;
    if (len > c->cfg.pub.max_frame_size) return MMWS_ETOOBIG;
    if ((opcode & 8) && len > MMWS_CONTROL_MAX_PAYLOAD) return MMWS_EPROTO;
    if (opcode == MMWS_OP_TEXT && c->cfg.pub.validate_utf8 &&
        mmws_utf8_check(data, len))
        return MMWS_EUTF8;
    if (budget(c, 0)) {
        c->st.rejected_rate++;
        return MMWS_ERATELIMIT;
    }
    c->depth++;
    int rc = send_frame(c, opcode, data, len, 0);
    leave(c);
    return rc;
}

int mmws_conn_send_text(mmws_conn *c, const void *data, size_t len) {
    return send_user(c, MMWS_OP_TEXT, data, len);
}

int mmws_conn_send_binary(mmws_conn *c, const void *data, size_t len) {
    return send_user(c, MMWS_OP_BINARY, data, len);
}

int mmws_conn_send_ping(mmws_conn *c, const void *data, size_t len) {
    return send_user(c, MMWS_OP_PING, data, len);
}

int mmws_conn_send_pong(mmws_conn *c, const void *data, size_t len) {
    return send_user(c, MMWS_OP_PONG, data, len);
}

/* Queues our close frame (code 0: empty) and enters CLOSING. */
static void start_close(mmws_conn *c, unsigned code, const char *reason,
                        size_t reason_len) {
    uint8_t payload[MMWS_CONTROL_MAX_PAYLOAD];
    size_t n = 0;
    if (code) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        if (reason_len) memcpy(payload + 2, reason, reason_len);
        n = 2 + reason_len;
    }
    c->close_sent = 1;
    c->st.last_close_code = code;
    budget(c, 1);
    set_phase(c, MMWS_PHASE_CLOSING);
    mmws__timer_stop(&c->t_ping);
    mmws__timer_stop(&c->t_pong);
    mmws__timer_stop(&c->t_app);
    mmws__timer_start(&c->t_phase, (uint64_t)c->cfg.pub.close_timeout_ms * MS);
    send_frame(c, MMWS_OP_CLOSE, payload, n, 0);
}

int mmws_conn_close(mmws_conn *c, unsigned code, const char *reason) {
    if (!c) return MMWS_EINVAL;
    size_t rlen = reason ? strlen(reason) : 0;
    if (code && !mmws_close_code_valid_send(code)) return MMWS_ECLOSECODE;
    if (rlen > MMWS_CLOSE_MAX_REASON) return MMWS_ERANGE;
    if (rlen && (!code || mmws_utf8_check((const uint8_t *)reason, rlen)))
        return code ? MMWS_EUTF8 : MMWS_EINVAL;
    if (c->user_closed && c->phase != MMWS_PHASE_CLOSING) return 0;
    c->user_closed = 1;
    mmws__timer_stop(&c->t_backoff);
    c->depth++;
    if (c->phase == MMWS_PHASE_OPEN) {
        snprintf(c->err, sizeof c->err, "closed by the user with %u", code);
        start_close(c, code, reason, rlen);
    } else if (c->phase != MMWS_PHASE_CLOSING) {
        teardown(c);
        set_phase(c, MMWS_PHASE_CLOSED);
    }
    leave(c);
    return 0;
}

/* ------------------------------------------------------------ receive -- */

/* Records an RTT sample (ns) into last and EMA (alpha 2/61). */
static void rtt_sample(mmws_conn *c, uint64_t rtt_ns) {
    double ms = (double)rtt_ns / 1e6;
    c->st.latency_ms = ms;
    if (!c->have_sample) {
        c->st.latency_ema_ms = ms;
        c->have_sample = 1;
    } else {
        const double alpha = 2.0 / 61.0;
        c->st.latency_ema_ms = alpha * ms + (1.0 - alpha) * c->st.latency_ema_ms;
    }
}

/* Hands one complete message to the user. Returns 0 to go on, -1 if the
 * connection went away inside the callback. */
static int deliver(mmws_conn *c, unsigned opcode, const uint8_t *data,
                   size_t len, uint64_t recv_ns) {
    if (opcode == MMWS_OP_TEXT && c->cfg.pub.app_pong_payload &&
        len == c->cfg.app_pong_len &&
        memcmp(data, c->cfg.pub.app_pong_payload, len) == 0) {
        if (c->app_ping_sent_ns) {
            rtt_sample(c, recv_ns - c->app_ping_sent_ns);
            c->app_ping_sent_ns = 0;
        }
        return 0;
    }
    if (opcode == MMWS_OP_BINARY && !c->cfg.pub.deliver_binary) {
        c->st.dropped_binary++;
        return 0;
    }
    mmws_msg m = {data, len, (uint8_t)opcode, recv_ns, c->cfg.pub.conn_id,
                  ++c->seq};
    c->st.msgs_in++;
    c->st.bytes_in += len;
    uint64_t gen = c->gen;
    c->depth++;
    c->on_message(c->user, &m);
    c->depth--;
    return (c->free_pending || c->gen != gen) ? -1 : 0;
}

/* Handles one parsed frame. Returns 0, or -1 when processing must stop. */
static int on_frame(mmws_conn *c, const mmws_frame *f, uint64_t recv_ns) {
    c->st.frames_in++;
    size_t n = (size_t)f->payload_len;
    switch (f->opcode) {
    case MMWS_OP_PING:
        budget(c, 1);
        send_frame(c, MMWS_OP_PONG, f->payload, n, 1);
        return c->phase == MMWS_PHASE_OPEN || c->phase == MMWS_PHASE_CLOSING
                   ? 0 : -1;
    case MMWS_OP_PONG:
        if (c->ping_sent_ns && n == 8) {
            uint64_t id = 0;
            for (size_t i = 0; i < 8; i++) id = id << 8 | f->payload[i];
            if (id == c->ping_id) {
                rtt_sample(c, recv_ns - c->ping_sent_ns);
                c->ping_sent_ns = 0;
                c->st.pongs_received++;
                mmws__timer_stop(&c->t_pong);
                return 0;
            }
        }
        c->st.dropped_unsolicited_pong++;
        return 0;
    case MMWS_OP_CLOSE: {
        unsigned code = MMWS_CLOSE_NO_STATUS;
        const uint8_t *reason;
        size_t rl;
        mmws_close_parse(f->payload, n, &code, &reason, &rl);
        c->close_received = 1;
        if (!c->close_sent) {
            c->st.last_close_code = code;
            snprintf(c->err, sizeof c->err,
                     "closed by the server with %u (%s)%s%.*s", code,
                     mmws_close_code_name(code), rl ? ": " : "",
                     (int)(rl > 100 ? 100 : rl), (const char *)reason);
            /* Echo the code (RFC 6455 5.5.1), then close once it is out. */
            c->close_sent = 1;
            set_phase(c, MMWS_PHASE_CLOSING);
            mmws__timer_stop(&c->t_ping);
            mmws__timer_stop(&c->t_pong);
            mmws__timer_stop(&c->t_app);
            mmws__timer_start(&c->t_phase,
                              (uint64_t)c->cfg.pub.close_timeout_ms * MS);
            /* 1012-1014 may be received but not sent: answered 1000. */
            unsigned back = mmws_close_code_valid_send(code)
                                ? code : MMWS_CLOSE_NORMAL;
            uint8_t echo[2] = {(uint8_t)(back >> 8), (uint8_t)back};
            budget(c, 1);
            send_frame(c, MMWS_OP_CLOSE, echo,
                       code == MMWS_CLOSE_NO_STATUS ? 0 : 2, 0);
            if (c->phase == MMWS_PHASE_CLOSING && c->soff == c->slen)
                conn_closed(c);
        } else if (c->soff == c->slen) {
            conn_closed(c);
        }
        return -1;
    }
    default:
        break;
    }
    if (c->close_received || c->phase != MMWS_PHASE_OPEN) {
        c->st.dropped_after_close++;
        return 0;
    }
    if (f->fin && f->opcode != MMWS_OP_CONT)
        return deliver(c, f->opcode, f->payload, n, recv_ns);
    /* Fragmented: gather into the reassembly buffer. The parser has
     * already bounded the whole message by max_frame_size. */
    if (c->mlen + n > c->mcap) {
        size_t cap = c->mcap ? c->mcap : 4096;
        while (cap < c->mlen + n) cap *= 2;
        if (cap > c->cfg.pub.max_frame_size) cap = c->cfg.pub.max_frame_size;
        uint8_t *nb = realloc(c->mbuf, cap);
        if (!nb) {
            conn_fail(c, MMWS_ENOMEM, "out of memory reassembling a message");
            return -1;
        }
        c->mbuf = nb;
        c->mcap = cap;
    }
    if (n) memcpy(c->mbuf + c->mlen, f->payload, n);
    c->mlen += n;
    if (!f->fin) return 0;
    size_t total = c->mlen;
    c->mlen = 0;
    return deliver(c, f->message_opcode, c->mbuf, total, recv_ns);
}

/* Parses and handles every complete frame in the read buffer. */
static void process_frames(mmws_conn *c, uint64_t recv_ns) {
    uint64_t gen = c->gen;
    while (c->rpos < c->rlen) {
        mmws_frame f;
        int rc = mmws_frame_parse(&c->fp, c->rbuf + c->rpos,
                                  c->rlen - c->rpos, &f);
        if (rc == MMWS_EINCOMPLETE) {
            /* Room for the whole frame, growing once to its exact size. */
            size_t need = (size_t)f.frame_len;
            if (need > c->rcap - c->rpos) {
                if (c->rpos) {
                    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
                    c->rlen -= c->rpos;
                    c->rpos = 0;
                }
                if (need > c->rcap) {
                    uint8_t *nb = realloc(c->rbuf, need);
                    if (!nb) {
                        conn_fail(c, MMWS_ENOMEM,
                                  "out of memory for a %zu-byte frame", need);
                        return;
                    }
                    c->rbuf = nb;
                    c->rcap = need;
                }
            }
            return;
        }
        if (rc) {
            unsigned code = c->fp.close_code;
            char detail[MMWS_DETAIL_LEN];
            snprintf(detail, sizeof detail, "%s", c->fp.detail);
            if (!c->close_sent) {
                c->close_sent = 1;
                c->st.last_close_code = code;
                uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
                budget(c, 1);
                send_frame(c, MMWS_OP_CLOSE, p, 2, 0);
            }
            if (c->gen == gen)
                conn_fail(c, rc, "protocol error from the server (sent close "
                          "%u): %s", code, detail);
            return;
        }
        c->rpos += (size_t)f.frame_len;
        if (on_frame(c, &f, recv_ns) < 0 || c->gen != gen) return;
    }
    c->rpos = c->rlen = 0;
}

/* Reads what the socket has (one syscall per readiness where possible)
 * and processes it. */
static void do_read(mmws_conn *c) {
    uint64_t gen = c->gen;
    for (int rounds = 0; rounds < 64; rounds++) {
        if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
        if (c->rlen == c->rcap) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        size_t room = c->rcap - c->rlen;
        ptrdiff_t r = c->tr->ops->read(c->tr, c->rbuf + c->rlen, room);
        uint64_t recv_ns = mmws_now_ns();
        if (r == MMWS_EWANTREAD) return;
        if (r == MMWS_EWANTWRITE) {
            want(c, MMWS__IO_READ | MMWS__IO_WRITE);
            return;
        }
        if (r == 0 || r == MMWS_ECLOSED) {
            if (c->phase == MMWS_PHASE_CLOSING && c->close_received)
                conn_closed(c);
            else
                conn_fail(c, MMWS_ECLOSED,
                          "connection closed by the server without a close "
                          "frame%s", r == 0 ? "" : " (no TLS close_notify)");
            return;
        }
        if (r < 0) {
            conn_fail(c, (int)r, "receive failed: %s", c->tr->detail);
            return;
        }
        c->rlen += (size_t)r;
        c->last_rx_ns = recv_ns;
        if (c->phase == MMWS_PHASE_UPGRADE) {
            int rc = mmws_handshake_parse(&c->hs, (const char *)c->rbuf,
                                          c->rlen);
            if (rc && rc != MMWS_EINCOMPLETE) {
                /* A 101 with a bad header is not a refusal by status. */
                c->st.last_http_status = c->hs.status == 101 ? 0 : c->hs.status;
                conn_fail(c, rc, "upgrade refused: %s", c->hs.detail);
                return;
            }
            if (rc == 0) {
                /* Frames may have come with the header: conn_open parses
                 * them after sending on_connect. */
                c->rpos = c->hs.header_len;
                conn_open(c, recv_ns);
                if (c->gen != gen || c->free_pending) return;
            }
        } else {
            process_frames(c, recv_ns);
            if (c->gen != gen || c->free_pending) return;
        }
        /* A short read means the socket is drained, unless TLS holds more
         * decrypted bytes. */
        if ((size_t)r < room && c->tr->ops->pending(c->tr) == 0) return;
    }
}

/* ----------------------------------------------------------- open/ping -- */

/* The upgrade succeeded: enter OPEN, send on_connect, start pings. */
static void conn_open(mmws_conn *c, uint64_t recv_ns) {
    uint64_t gen = c->gen;
    mmws__timer_stop(&c->t_phase);
    mmws_frame_parser_init(&c->fp, c->cfg.pub.max_frame_size,
                           c->cfg.pub.validate_utf8 ? MMWS_FRAME_VALIDATE_UTF8
                                                    : 0);
    c->err[0] = '\0';
    c->st.last_http_status = 0;
    c->st.last_error_code = 0;
    if (c->st.connects++) c->st.reconnects++;
    c->ping_sent_ns = 0;
    set_phase(c, MMWS_PHASE_OPEN);
    if (c->gen != gen) return;
    if (c->phase != MMWS_PHASE_OPEN) {
        /* Closed from on_state: the frames that came with the header (the
         * server's close among them) are still handled. */
        process_frames(c, recv_ns);
        return;
    }
    for (size_t i = 0; i < c->cfg.pub.on_connect_count; i++) {
        const char *m = c->cfg.on_connect[i];
        budget(c, 1);
        int rc = send_frame(c, MMWS_OP_TEXT, m, strlen(m), 0);
        if (c->gen != gen) return;
        if (rc) {
            conn_fail(c, rc, "on_connect[%zu] could not be sent: %s", i,
                      mmws_strerror(rc));
            return;
        }
    }
    if (c->cfg.pub.latency_ping_interval_ms)
        mmws__timer_start(&c->t_ping,
                          (uint64_t)c->cfg.pub.latency_ping_interval_ms * MS);
    if (c->cfg.pub.idle_timeout_ms)
        mmws__timer_start(&c->t_idle,
                          (uint64_t)c->cfg.pub.idle_timeout_ms * MS);
    if (c->cfg.pub.app_ping_interval_ms)
        mmws__timer_start(&c->t_app,
                          (uint64_t)c->cfg.pub.app_ping_interval_ms * MS);
    logf_(c, 2, "conn %llu: connected to %s", (unsigned long long)c->cfg.pub.conn_id,
          c->cfg.pub.wss_url);
    process_frames(c, recv_ns);
}

static void on_ping_timer(mmws__timer *t) {
    mmws_conn *c = t->data;
    if (c->phase != MMWS_PHASE_OPEN) return;
    c->depth++;
    if (!c->ping_sent_ns && budget(c, 0) == 0) {
        uint8_t id[8];
        c->ping_id++;
        for (int i = 0; i < 8; i++) id[i] = (uint8_t)(c->ping_id >> (56 - 8 * i));
        c->ping_sent_ns = mmws_now_ns();
        c->st.pings_sent++;
        mmws__timer_start(&c->t_pong, (uint64_t)c->cfg.pub.pong_timeout_ms * MS);
        send_frame(c, MMWS_OP_PING, id, 8, 0);
    }
    if (c->phase == MMWS_PHASE_OPEN)
        mmws__timer_start(&c->t_ping,
                          (uint64_t)c->cfg.pub.latency_ping_interval_ms * MS);
    leave(c);
}

static void on_pong_timer(mmws__timer *t) {
    mmws_conn *c = t->data;
    c->depth++;
    conn_fail(c, MMWS_EDEAD, "no pong within pong_timeout_ms (%u ms)",
              c->cfg.pub.pong_timeout_ms);
    leave(c);
}

static void on_idle_timer(mmws__timer *t) {
    mmws_conn *c = t->data;
    uint64_t now = mmws_loop_now_ns(c->loop);
    uint64_t limit = (uint64_t)c->cfg.pub.idle_timeout_ms * MS;
    if (now - c->last_rx_ns < limit) {
        mmws__timer_start(t, limit - (now - c->last_rx_ns));
        return;
    }
    c->depth++;
    conn_fail(c, MMWS_EDEAD, "no data received for idle_timeout_ms (%u ms)",
              c->cfg.pub.idle_timeout_ms);
    leave(c);
}

static void on_app_timer(mmws__timer *t) {
    mmws_conn *c = t->data;
    if (c->phase != MMWS_PHASE_OPEN) return;
    c->depth++;
    if (budget(c, 0) == 0) {
        const char *p = c->cfg.pub.app_ping_payload;
        c->app_ping_sent_ns = mmws_now_ns();
        send_frame(c, MMWS_OP_TEXT, p, strlen(p), 0);
    }
    if (c->phase == MMWS_PHASE_OPEN)
        mmws__timer_start(&c->t_app,
                          (uint64_t)c->cfg.pub.app_ping_interval_ms * MS);
    leave(c);
}

static void on_phase_timer(mmws__timer *t) {
    mmws_conn *c = t->data;
    c->depth++;
    switch (c->phase) {
    case MMWS_PHASE_CLOSING:
        if (c->close_received)
            conn_closed(c);
        else
            conn_fail(c, MMWS_ETIMEDOUT,
                      "no close answer within close_timeout_ms (%u ms)",
                      c->cfg.pub.close_timeout_ms);
        break;
    case MMWS_PHASE_UPGRADE:
        conn_fail(c, MMWS_ETIMEDOUT,
                  "no upgrade answer within handshake_timeout_ms (%u ms)",
                  c->cfg.pub.handshake_timeout_ms);
        break;
    default:
        conn_fail(c, MMWS_ETIMEDOUT,
                  "%s did not finish within connect_timeout_ms (%u ms)",
                  mmws_phase_name(c->phase), c->cfg.pub.connect_timeout_ms);
        break;
    }
    leave(c);
}

static void on_backoff_timer(mmws__timer *t) {
    mmws_conn *c = t->data;
    c->depth++;
    start_connect(c);
    leave(c);
}

/* ------------------------------------------------------------ connect -- */

/* Builds the upgrade request into the send queue and waits for the answer. */
static void send_upgrade(mmws_conn *c) {
    set_phase(c, MMWS_PHASE_UPGRADE);
    mmws__timer_start(&c->t_phase,
                      (uint64_t)c->cfg.pub.handshake_timeout_ms * MS);
    if (mmws_handshake_key(c->key)) {
        conn_fail(c, MMWS_ESYS, "cannot make a handshake key (getrandom)");
        return;
    }
    errno = 0;
    if (mmws_handshake_parser_init(&c->hs, c->key, c->cfg.pub.subprotocols,
                                   c->cfg.pub.subprotocol_count,
                                   c->cfg.pub.max_handshake_size)) {
        /* OpenSSL's SHA-1 fails only without memory (or without SHA-1). */
        int nomem = errno == ENOMEM;
        conn_fail(c, nomem ? MMWS_ENOMEM : MMWS_ESYS,
                  "cannot compute the expected Sec-WebSocket-Accept: "
                  "OpenSSL's SHA-1 failed%s", nomem ? " (out of memory)" : "");
        return;
    }
    mmws_handshake_request req = {&c->cfg.url, c->key,
                                  c->cfg.pub.subprotocols,
                                  c->cfg.pub.subprotocol_count,
                                  c->cfg.pub.headers, c->cfg.pub.header_count};
    size_t need = c->cfg.request_cap, len = 0;
    if (queue_reserve(c, need) ||
        mmws_handshake_build(&req, (char *)c->sbuf, need, &len)) {
        conn_fail(c, MMWS_ENOMEM, "cannot build the upgrade request");
        return;
    }
    /* The request is not a frame: sframe stays at its end so the frame
     * walk never reads it. */
    c->soff = 0;
    c->slen = len;
    c->sframe = len;
    c->rpos = c->rlen = 0;
    flush(c);
}

/* Starts the TCP connect to addrs[addr_index], or fails the attempt. */
static void try_address(mmws_conn *c) {
    char detail[MMWS__DETAIL_LEN] = "";
    while (c->addr_index < c->addrs.count) {
        const struct sockaddr *sa =
            (const struct sockaddr *)&c->addrs.addr[c->addr_index];
        int fd = -1;
        int rc = mmws__tcp_connect_start(sa, c->addrs.len[c->addr_index], &fd,
                                         detail, sizeof detail);
        if (rc == 0) {
            c->fd = fd;
            set_phase(c, MMWS_PHASE_TCP);
            if (mmws__io_start(c->loop, &c->io, fd, MMWS__IO_WRITE, on_io, c)) {
                conn_fail(c, MMWS_ESYS, "epoll_ctl failed: %s",
                          strerror(errno));
            }
            return;
        }
        c->addr_index++;
    }
    conn_fail(c, MMWS_ECONNECT, "could not connect to %s (%zu address%s): %s",
              c->cfg.host, c->addrs.count, c->addrs.count == 1 ? "" : "es",
              detail);
}

static void on_dns(void *data, int rc, const mmws__addrs *addrs,
                   const char *detail) {
    mmws_conn *c = data;
    c->dns = NULL;
    c->depth++;
    if (rc) {
        conn_fail(c, rc == MMWS_ETIMEDOUT ? MMWS_ETIMEDOUT : MMWS_EDNS,
                  "DNS: %s", detail);
    } else {
        c->addrs = *addrs;
        c->addr_index = 0;
        try_address(c);
    }
    leave(c);
}

/* The test hook's attempt: the factory's transport stands in for a
 * connected socket, and its handshake op runs as TLS's would (phase TLS),
 * so everything after the TCP connect is the real code path. */
static void start_injected(mmws_conn *c) {
    char detail[MMWS__DETAIL_LEN] = "";
    c->tr = c->make_tr(c->make_tr_user, detail, sizeof detail);
    if (!c->tr) {
        conn_fail(c, MMWS_ECONNECT, "transport factory: %s", detail);
        return;
    }
    c->fd = c->tr->fd;
    set_phase(c, MMWS_PHASE_TLS);
    if (mmws__io_start(c->loop, &c->io, c->fd, MMWS__IO_READ | MMWS__IO_WRITE,
                       on_io, c))
        conn_fail(c, MMWS_ESYS, "epoll_ctl failed: %s", strerror(errno));
}

/* Begins a connection attempt: DNS (or the resolve override), then TCP. */
static void start_connect(mmws_conn *c) {
    teardown(c);
    c->err[0] = '\0';
    c->st.last_http_status = 0;
    memset(&c->hs, 0, sizeof c->hs);
    set_phase(c, MMWS_PHASE_RESOLVING);
    mmws__timer_start(&c->t_phase, (uint64_t)c->cfg.pub.connect_timeout_ms * MS);
    if (c->make_tr) {
        start_injected(c);
        return;
    }
    if (c->cfg.pub.resolve) {
        mmws__parse_resolve(c->cfg.pub.resolve, c->cfg.url.port, &c->addrs);
        c->addr_index = 0;
        try_address(c);
        return;
    }
    mmws__dns_options opt = {c->cfg.pub.dns_servers,
                             c->cfg.pub.connect_timeout_ms};
    char detail[MMWS__DETAIL_LEN] = "";
    int rc = mmws__dns_resolve(c->loop, c->cfg.host, c->cfg.url.port, &opt,
                               on_dns, c, &c->dns, detail, sizeof detail);
    if (rc) {
        c->dns = NULL;
        conn_fail(c, MMWS_EDNS, "DNS: %s", detail[0] ? detail
                                                      : mmws_strerror(rc));
    }
}

/* Makes the TLS context from the config: 0, or MMWS_ENOMEM (no memory)
 * or MMWS_ECONFIG (a file or setting refused) with detail. */
static int make_tls_ctx(mmws_conn *c, char *detail, size_t len) {
    mmws__tls_config tc = {c->cfg.pub.tls_verify, c->cfg.pub.tls_ca_file,
                           c->cfg.pub.tls_ca_dir, c->cfg.pub.tls_cert_file,
                           c->cfg.pub.tls_key_file};
    errno = 0;
    c->tls_ctx = mmws__tls_ctx_new(&tc, detail, len);
    if (c->tls_ctx) return 0;
    return errno == ENOMEM ? MMWS_ENOMEM : MMWS_ECONFIG;
}

/* TCP is up: wrap in TLS (wss) or go straight to the upgrade. */
static void tcp_connected(mmws_conn *c) {
    char detail[MMWS__DETAIL_LEN] = "";
    if (c->cfg.url.secure) {
        int rc = c->tls_ctx ? 0 : make_tls_ctx(c, detail, sizeof detail);
        if (rc) {
            conn_fail(c, rc, "TLS settings: %s", detail);
            return;
        }
        c->tr = mmws__tls_new(c->tls_ctx, c->fd, c->cfg.host, detail,
                              sizeof detail);
        if (!c->tr) {
            conn_fail(c, MMWS_ETLS, "TLS: %s", detail);
            return;
        }
        c->tls_failed = 0;
        set_phase(c, MMWS_PHASE_TLS);
        want(c, MMWS__IO_READ | MMWS__IO_WRITE);
        return;
    }
    c->tr = mmws__tcp_new(c->fd);
    if (!c->tr) {
        conn_fail(c, MMWS_ENOMEM, "out of memory for the transport");
        return;
    }
    want(c, MMWS__IO_READ);
    send_upgrade(c);
}

static void on_io(mmws__io *io, unsigned events) {
    mmws_conn *c = io->data;
    uint64_t gen = c->gen;
    c->depth++;
    switch (c->phase) {
    case MMWS_PHASE_TCP: {
        char detail[MMWS__DETAIL_LEN] = "";
        const struct sockaddr *sa =
            (const struct sockaddr *)&c->addrs.addr[c->addr_index];
        if (mmws__tcp_connect_finish(c->fd, sa, detail, sizeof detail) == 0) {
            tcp_connected(c);
        } else {
            mmws__io_stop(&c->io);
            close(c->fd);
            c->fd = -1;
            c->addr_index++;
            if (c->addr_index < c->addrs.count) {
                logf_(c, 2, "conn %llu: %s; trying the next address",
                      (unsigned long long)c->cfg.pub.conn_id, detail);
                try_address(c);
            } else {
                conn_fail(c, MMWS_ECONNECT, "could not connect to %s: %s",
                          c->cfg.host, detail);
            }
        }
        break;
    }
    case MMWS_PHASE_TLS: {
        int rc = c->tr->ops->handshake(c->tr);
        if (rc == 0) {
            want(c, MMWS__IO_READ);
            send_upgrade(c);
        } else if (rc == MMWS_EWANTREAD) {
            want(c, MMWS__IO_READ);
        } else if (rc == MMWS_EWANTWRITE) {
            want(c, MMWS__IO_READ | MMWS__IO_WRITE);
        } else {
            c->tls_failed = 1; /* seen by on_state (a pool) */
            conn_fail(c, MMWS_ETLS, "TLS: %s", c->tr->detail);
            /* An allocation that failed inside OpenSSL can leave the
             * context unusable for good (a trusted certificate kept
             * without its key fails every later handshake): the next
             * attempt builds a fresh one. */
            if (c->tls_ctx && !c->tr) {
                mmws__tls_ctx_free(c->tls_ctx);
                c->tls_ctx = NULL;
            }
        }
        break;
    }
    case MMWS_PHASE_UPGRADE:
    case MMWS_PHASE_OPEN:
    case MMWS_PHASE_CLOSING:
        if ((events & MMWS__IO_WRITE) && c->soff < c->slen) {
            if (flush(c) < 0) break;
            if (c->gen != gen) break;
        } else if ((events & MMWS__IO_WRITE) && c->slen == c->soff) {
            want(c, MMWS__IO_READ);
        }
        if (events & (MMWS__IO_READ | MMWS__IO_ERROR)) do_read(c);
        break;
    default:
        break;
    }
    leave(c);
}

/* ----------------------------------------------------------- lifecycle -- */

int mmws_conn_new(mmws_loop *loop, const mmws_conn_config *cfg,
                  mmws_on_message on_message, void *user, mmws_conn **out) {
    return mmws__conn_new_shared(loop, cfg, on_message, user, NULL, out);
}

mmws__tls_ctx *mmws__conn_tls_ctx(const mmws_conn *c) {
    return c ? c->tls_ctx : NULL;
}

int mmws__conn_tls_failed(const mmws_conn *c) {
    return c ? c->tls_failed : 0;
}

int mmws__conn_new_shared(mmws_loop *loop, const mmws_conn_config *cfg,
                          mmws_on_message on_message, void *user,
                          mmws__tls_ctx *tls, mmws_conn **out) {
    char err[MMWS__ERR_LEN];
    if (!loop || !cfg || !on_message || !out) {
        mmws__set_last_error("mmws_conn_new: loop, cfg, on_message and out "
                             "must not be NULL");
        return MMWS_EINVAL;
    }
    int rc = mmws__conn_cfg_check(cfg, err, sizeof err);
    if (rc) {
        mmws__set_last_error(err);
        return rc;
    }
    mmws_conn *c = calloc(1, sizeof *c);
    if (!c || mmws__conn_cfg_copy(&c->cfg, cfg)) {
        free(c);
        mmws__set_last_error("mmws_conn_new: out of memory");
        return MMWS_ENOMEM;
    }
    c->loop = loop;
    c->on_message = on_message;
    c->user = user;
    c->fd = -1;
    /* The upgrade answer is read into the same buffer. */
    c->rcap = cfg->read_buffer_size > cfg->max_handshake_size
                  ? cfg->read_buffer_size : cfg->max_handshake_size;
    c->rbuf = malloc(c->rcap);
    c->scap = 64u << 10;
    c->sbuf = malloc(c->scap);
    c->rand_used = sizeof c->rand_pool;
    if (!c->rbuf || !c->sbuf) {
        mmws__set_last_error("mmws_conn_new: out of memory");
        really_free(c);
        return MMWS_ENOMEM;
    }
    if (!c->cfg.pub.conn_id)
        c->cfg.pub.conn_id = __atomic_add_fetch(&next_conn_id, 1,
                                                __ATOMIC_RELAXED);
    if (mmws_random_bytes(&c->jitter, sizeof c->jitter) || !c->jitter)
        c->jitter = 0x9E3779B97F4A7C15ull ^ c->cfg.pub.conn_id;
    c->st.latency_ms = c->st.latency_ema_ms = 1000.0;
    if (c->cfg.url.secure && tls) {
        c->tls_ctx = mmws__tls_ctx_ref(tls);
    } else if (c->cfg.url.secure) {
        char detail[MMWS__DETAIL_LEN] = "";
        rc = make_tls_ctx(c, detail, sizeof detail);
        if (rc) {
            snprintf(err, sizeof err, "TLS settings: %.230s", detail);
            mmws__set_last_error(err);
            really_free(c);
            return rc;
        }
    }
    if (mmws__timer_init(loop, &c->t_phase, on_phase_timer, c) ||
        mmws__timer_init(loop, &c->t_ping, on_ping_timer, c) ||
        mmws__timer_init(loop, &c->t_pong, on_pong_timer, c) ||
        mmws__timer_init(loop, &c->t_idle, on_idle_timer, c) ||
        mmws__timer_init(loop, &c->t_app, on_app_timer, c) ||
        mmws__timer_init(loop, &c->t_backoff, on_backoff_timer, c)) {
        mmws__set_last_error("mmws_conn_new: out of memory (timers)");
        really_free(c);
        return MMWS_ENOMEM;
    }
    c->io.fd = -1;
    *out = c;
    c->depth++;
    start_connect(c);
    c->depth--;
    return 0;
}

static void really_free(mmws_conn *c) {
    teardown(c);
    mmws__timer_fini(&c->t_phase);
    mmws__timer_fini(&c->t_ping);
    mmws__timer_fini(&c->t_pong);
    mmws__timer_fini(&c->t_idle);
    mmws__timer_fini(&c->t_app);
    mmws__timer_fini(&c->t_backoff);
    if (c->tls_ctx) mmws__tls_ctx_free(c->tls_ctx);
    mmws__conn_cfg_free(&c->cfg);
    free(c->rbuf);
    free(c->sbuf);
    free(c->mbuf);
    free(c);
}

void mmws_conn_free(mmws_conn *c) {
    if (!c) return;
    if (c->depth > 0) {
        c->free_pending = 1;
        c->on_state = NULL;
        c->log = NULL;
        teardown(c);
        mmws__timer_stop(&c->t_backoff);
        return;
    }
    really_free(c);
}

int mmws_conn_set_on_connect(mmws_conn *c, const char *const *msgs,
                             size_t count) {
    if (!c || (count && !msgs)) return MMWS_EINVAL;
    for (size_t i = 0; i < count; i++)
        if (!msgs[i] || strlen(msgs[i]) > c->cfg.pub.max_frame_size ||
            mmws_utf8_check((const uint8_t *)msgs[i], strlen(msgs[i])))
            return MMWS_EINVAL;
    return mmws__conn_cfg_set_on_connect(&c->cfg, msgs, count);
}

void mmws__conn_set_transport_factory(mmws_conn *c,
                                      mmws__transport_factory make,
                                      void *user) {
    if (!c) return;
    c->make_tr = make;
    c->make_tr_user = user;
    if (c->user_closed) return;
    /* mmws_conn_new already began an attempt (DNS or TCP): begin again
     * through the factory. */
    mmws__timer_stop(&c->t_backoff);
    c->depth++;
    start_connect(c);
    leave(c); /* a callback in there may have freed c */
}

void mmws_conn_set_on_state(mmws_conn *c, mmws_on_state cb, void *user) {
    if (!c) return;
    c->on_state = cb;
    c->state_user = user;
}

void mmws_conn_set_log(mmws_conn *c, mmws_log_fn fn, void *user) {
    if (!c) return;
    c->log = fn;
    c->log_user = user;
}

mmws_state mmws_conn_state(const mmws_conn *c) {
    return c ? c->state : MMWS_DISCONNECTED;
}

mmws_phase mmws_conn_phase(const mmws_conn *c) {
    return c ? c->phase : MMWS_PHASE_CLOSED;
}

const char *mmws_phase_name(mmws_phase phase) {
    switch (phase) {
    case MMWS_PHASE_IDLE: return "idle";
    case MMWS_PHASE_RESOLVING: return "DNS resolution";
    case MMWS_PHASE_TCP: return "TCP connect";
    case MMWS_PHASE_TLS: return "TLS handshake";
    case MMWS_PHASE_UPGRADE: return "HTTP upgrade";
    case MMWS_PHASE_OPEN: return "open";
    case MMWS_PHASE_CLOSING: return "closing";
    case MMWS_PHASE_BACKOFF: return "backoff";
    case MMWS_PHASE_CLOSED: return "closed";
    }
    return "unknown";
}

uint64_t mmws_conn_id(const mmws_conn *c) { return c ? c->cfg.pub.conn_id : 0; }

double mmws_conn_latency_ms(const mmws_conn *c) {
    return c ? c->st.latency_ms : 1000.0;
}

double mmws_conn_latency_ema_ms(const mmws_conn *c) {
    return c ? c->st.latency_ema_ms : 1000.0;
}

const char *mmws_conn_last_error(const mmws_conn *c) {
    return c ? c->err : "";
}

void mmws_conn_stats_get(const mmws_conn *c, mmws_conn_stats *out) {
    if (!c || !out) return;
    *out = c->st;
    out->phase = c->phase;
    if (c->state == MMWS_CONNECTED && c->st.up_since_ns)
        out->connected_ns +=
            mmws_loop_now_ns(c->loop) - c->st.up_since_ns;
}
