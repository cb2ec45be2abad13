/*
 * single.c — mmws_single (the seed's WsSingle): one connection, consumed
 * through a callback or by pull iteration over a ring.
 */
#include <stdlib.h>
#include <string.h>

#include <mmws/pool.h>

#include "conn/conn_internal.h"
#include "net/io.h"
#include "pool/pool_internal.h"

struct mmws_single {
    mmws_loop *loop;             /* the loop the connection runs on */
    mmws_conn *conn;             /* the connection */
    mmws_ring *ring;             /* iteration mode only */
    mmws_ring_config ring_cfg;   /* its config (threaded mode reuses it) */
    mmws__thread *thr;           /* threaded mode: the I/O thread */
    mmws_on_message on_message;  /* callback mode only, and its user */
    void *user;
    mmws_conn_config cfg;        /* returned by get_config */
    mmws__conn_cfg owned;        /* owns cfg's strings */
};

/* Iteration mode: the connection's messages go into the ring. */
static void to_ring(void *user, const mmws_msg *m) {
    mmws_single *s = user;
    if (s->thr)
        mmws__thread_deliver(s->thr, m); /* drops counted by the hand-off */
    else
        mmws_ring_insert(s->ring, m); /* drops are counted by the ring */
}

int mmws_single_new(mmws_loop *loop, const mmws_conn_config *cfg,
                    const mmws_ring_config *ring_cfg,
                    mmws_on_message on_message, void *user,
                    mmws_single **out) {
    if (!loop || !cfg || !out) {
        mmws__set_last_error("mmws_single_new: loop, cfg and out must not be "
                             "NULL");
        return MMWS_EINVAL;
    }
    char err[MMWS__ERR_LEN];
    int rc = mmws__conn_cfg_check(cfg, err, sizeof err);
    if (rc) {
        mmws__set_last_error(err);
        return rc;
    }
    mmws_single *s = calloc(1, sizeof *s);
    if (!s || mmws__conn_cfg_copy(&s->owned, cfg)) {
        free(s);
        mmws__set_last_error("mmws_single_new: out of memory");
        return MMWS_ENOMEM;
    }
    s->loop = loop;
    s->cfg = s->owned.pub;
    s->on_message = on_message;
    s->user = user;
    if (!on_message) {
        mmws_ring_config rc_default;
        if (!ring_cfg) {
            mmws_ring_config_default(&rc_default);
            ring_cfg = &rc_default;
        }
        s->ring_cfg = *ring_cfg;
        rc = mmws_ring_new(ring_cfg, &s->ring);
        if (rc) {
            mmws_single_free(s);
            return rc;
        }
    }
    rc = mmws_conn_new(loop, &s->cfg, on_message ? on_message : to_ring,
                       on_message ? user : s, &s->conn);
    if (rc) {
        mmws_single_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void mmws_single_free(mmws_single *s) {
    if (!s) return;
    mmws__thread_stop(s->thr); /* the loop is ours again after it */
    mmws_conn_free(s->conn);
    mmws_ring_free(s->ring);
    mmws__conn_cfg_free(&s->owned);
    free(s);
}

int mmws__drive_until(mmws_loop *loop, int (*pred)(void *), void *arg,
                      int timeout_ms) {
    uint64_t end = UINT64_MAX;
    if (timeout_ms >= 0)
        end = mmws_now_ns() + (uint64_t)(unsigned)timeout_ms * 1000000u;
    while (!pred(arg)) {
        uint64_t now = mmws_now_ns();
        if (now >= end) return MMWS_ETIMEDOUT;
        int wait = -1;
        if (end != UINT64_MAX) {
            uint64_t left_ms = (end - now + 999999ull) / 1000000ull;
            wait = left_ms > 1000 ? 1000 : (int)left_ms;
        }
        int rc = mmws_loop_run_once(loop, wait);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Iteration: a message is waiting, or there will never be one. */
static int single_ready(void *arg) {
    mmws_single *s = arg;
    return !mmws_ring_empty(s->ring) ||
           mmws_conn_phase(s->conn) == MMWS_PHASE_CLOSED;
}

int mmws_single_next(mmws_single *s, mmws_msg *out, int timeout_ms) {
    if (!s || !out) return MMWS_EINVAL;
    if (!s->ring) return MMWS_ESTATE;
    if (s->thr) return mmws__thread_next(s->thr, out, timeout_ms);
    int rc = mmws__drive_until(s->loop, single_ready, s, timeout_ms);
    if (rc) return rc;
    if (mmws_ring_consume(s->ring, out) == 0) return 0;
    return MMWS_ESTATE; /* closed for good and drained */
}

int mmws_single_send_data(mmws_single *s, const void *data, size_t len) {
    if (!s || (!data && len)) return MMWS_EINVAL;
    if (!s->thr) return mmws_conn_send_text(s->conn, data, len);
    /* Errors about the message itself are reported now, not later on the
     * I/O thread (the config is read-only there). */
    if (len > s->cfg.max_frame_size) return MMWS_ETOOBIG;
    if (s->cfg.validate_utf8 && mmws_utf8_check(data, len)) return MMWS_EUTF8;
    return mmws__thread_send(s->thr, data, len, 0);
}

int mmws_single_set_on_connect(mmws_single *s, const char *const *msgs,
                               size_t n) {
    if (s && s->thr) return mmws__thread_refuse("mmws_single_set_on_connect");
    return s ? mmws_conn_set_on_connect(s->conn, msgs, n) : MMWS_EINVAL;
}

mmws_state mmws_single_get_state(const mmws_single *s) {
    if (!s) return MMWS_DISCONNECTED;
    if (s->thr) {
        mmws_state st;
        mmws__thread_snapshot(s->thr, &st);
        return st;
    }
    return mmws_conn_state(s->conn);
}

/* ------------------------------------------------- threaded mode -- */

static int thr_send(void *obj, const uint8_t *data, size_t len,
                    unsigned flags) {
    (void)flags;
    return mmws_conn_send_text(((mmws_single *)obj)->conn, data, len);
}

static void thr_snapshot(void *obj, void *snap) {
    *(mmws_state *)snap = mmws_conn_state(((mmws_single *)obj)->conn);
}

static int thr_finished(void *obj) {
    return mmws_conn_phase(((mmws_single *)obj)->conn) == MMWS_PHASE_CLOSED;
}

int mmws_single_start_thread(mmws_single *s, const mmws_thread_config *tcfg) {
    if (!s) {
        mmws__set_last_error("mmws_single_start_thread: single must not be "
                             "NULL");
        return MMWS_EINVAL;
    }
    if (!s->ring || s->thr || mmws__loop_running(s->loop)) {
        mmws__set_last_error("mmws_single_start_thread: the single must be in "
                             "iteration mode (on_message NULL), not started "
                             "yet, and its loop not running");
        return MMWS_ESTATE;
    }
    static const mmws__thread_ops ops = {thr_send, thr_snapshot, thr_finished};
    int rc = mmws__thread_start(s->loop, &s->ring_cfg, tcfg, &ops, s,
                                sizeof(mmws_state), &s->thr);
    if (rc) s->thr = NULL;
    return rc;
}

int mmws_single_thread_stats(const mmws_single *s, mmws_thread_stats *out) {
    if (!s || !out) return MMWS_EINVAL;
    if (s->thr)
        mmws__thread_stats(s->thr, out);
    else
        memset(out, 0, sizeof *out);
    return 0;
}

const mmws_conn_config *mmws_single_get_config(const mmws_single *s) {
    return s ? &s->cfg : NULL;
}

int mmws_single_close(mmws_single *s) {
    if (s && s->thr) return mmws__thread_refuse("mmws_single_close");
    return s ? mmws_conn_close(s->conn, MMWS_CLOSE_NORMAL, NULL) : MMWS_EINVAL;
}

/* NULL in threaded mode: the connection and ring belong to the I/O
 * thread. */
mmws_conn *mmws_single_conn(mmws_single *s) {
    return s && !s->thr ? s->conn : NULL;
}

mmws_ring *mmws_single_ring(mmws_single *s) {
    return s && !s->thr ? s->ring : NULL;
}
