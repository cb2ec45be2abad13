/*
 * pool.c — mmws_pool (the seed's WsPool): N redundant connections to one
 * stream, each message delivered once.
 *
 * Dedup happens on arrival, before anything is stored: a table of the
 * last hash_capacity keys (open addressing, FIFO eviction) remembers when
 * each message first arrived, so a later copy is dropped at once and
 * measured — how far behind the first arrival it came is the connection's
 * lag. Routing and eviction use score = lag EMA + RTT EMA / 2.
 *
 * The pool owns reconnection: its connections run with auto_reconnect off,
 * and a slot that dies is replaced after a jittered delay, so every new
 * connection (replacement, eviction, rotation) passes through one budget.
 * Eviction and rotation are make-before-break: the victim is closed only
 * when its replacement has delivered its first message.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn/conn_internal.h"
#include "net/io.h"
#include "pool/pool_internal.h"

#define MS 1000000ull
#define TICK_NS (250 * MS)       /* housekeeping period */
#define EMA_ALPHA (2.0 / 61.0)   /* as the connection's RTT EMA */

typedef struct pslot pslot;

/* A message a joining connection brought before the others: a copy, with
 * its key, delivered once the joining stream meets the delivered one. */
typedef struct held {
    mmws_msg msg;            /* data points to copy */
    uint8_t *copy;           /* the owned bytes */
    uint64_t key;
} held;


struct pslot {
    mmws_pool *pool;         /* owner */
    mmws_conn *conn;         /* the connection (NULL once freed) */
    uint64_t created_ns;     /* when the slot was opened */
    uint64_t msgs, firsts, dups; /* copies received, first, duplicate */
    double lag_ema_ms;       /* EMA of arrival - first arrival */
    int have_lag;            /* lag_ema_ms holds a sample */
    int ever_connected;      /* reached CONNECTED at least once */
    int evicting;            /* to be closed once its replacement delivers */
    int dead;                /* CLOSED: freed and dropped on the next tick */
    pslot *replaces;         /* the victim this slot was opened to replace */
    int joined;              /* its stream has met the delivered stream */
    int dup_run;             /* consecutive duplicates while joining */
    char addr[48];           /* first address it was spread to, or "" */
    held *hold;              /* joining: messages ahead of the others */
    size_t nhold, hold_cap;
};

/* One remembered message: its key and first arrival. */
typedef struct recent {
    uint64_t key;
    uint64_t first_ns;
} recent;

struct mmws_pool {
    mmws_loop *loop;
    mmws__conn_cfg owned;        /* connection config, copied */
    mmws_pool_config pcfg;
    mmws_on_message on_message;  /* callback mode, and its user */
    void *user;
    mmws_ring *ring;             /* iteration mode */
    mmws__thread *thr;           /* threaded mode: the I/O thread */

    pslot **slots;               /* live slots, in creation order */
    mmws__tls_ctx *tls;          /* wss://: the context new connections
                                    share (one reference held here) */
    int tls_proven;              /* a handshake completed with tls */
    size_t nslots, slot_cap;

    recent *tab;                 /* open-addressing table of recent keys */
    uint8_t *used;               /* tab slot occupied */
    size_t tab_mask;
    uint64_t *fifo;              /* keys in arrival order, window long */
    size_t fifo_head, fifo_len, window;

    uint64_t *budget;            /* creation times, ring of max_new */
    size_t budget_head, budget_len;
    uint32_t fails;              /* consecutive slot deaths without a connect */
    uint64_t next_create_ns;     /* replacement delay after failures */
    uint64_t jitter;             /* xorshift state */

    char resolve[1024];          /* the addresses, split in place */
    char *addr[MMWS__DNS_MAX_ADDRS];
    size_t naddr, next_addr;
    mmws__dns_query *dns;        /* the pool's own resolution, in flight */

    mmws__timer t_tick;          /* housekeeping */
    mmws__timer t_evict;         /* every evict_interval_s */
    int depth;                   /* user callbacks on the stack */
    int free_pending;            /* mmws_pool_free called inside one */
    int open_rc;                 /* why open_slot last returned NULL */
    mmws_pool_stats st;
};

void mmws_pool_config_default(mmws_pool_config *cfg) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->num_connections = 5;
    cfg->evict_interval_s = 60;
    cfg->hash_capacity = 16384;
    cfg->max_new_connections = 300;
    cfg->budget_window_s = 300;
    cfg->replace_base_ms = 250;
    cfg->replace_cap_ms = 30000;
    cfg->join_hold_max = 4096;
    mmws_ring_config_default(&cfg->ring);
}

int mmws_pool_config_validate(const mmws_pool_config *c, char *err,
                              size_t err_len) {
    const char *why = NULL;
    char buf[160];
    if (!c) why = "pool config is NULL";
    else if (c->num_connections <= 1 || c->num_connections > 64) {
        snprintf(buf, sizeof buf,
                 "num_connections must be 2..64 (got %zu)", c->num_connections);
        why = buf;
    } else if (c->evict_interval_s == 0) {
        why = "evict_interval_s must be > 0 (got 0)";
    } else if (c->hash_capacity == 0 || c->hash_capacity > (1u << 26)) {
        snprintf(buf, sizeof buf, "hash_capacity must be 1..%u (got %zu)",
                 1u << 26, c->hash_capacity);
        why = buf;
    } else if (c->max_new_connections < c->num_connections) {
        snprintf(buf, sizeof buf,
                 "max_new_connections (%u) must be >= num_connections (%zu)",
                 c->max_new_connections, c->num_connections);
        why = buf;
    } else if (c->budget_window_s == 0) {
        why = "budget_window_s must be > 0 (got 0)";
    } else if (c->replace_base_ms == 0 || c->replace_cap_ms < c->replace_base_ms) {
        why = "replace_base_ms must be > 0 and <= replace_cap_ms";
    } else if (c->join_hold_max == 0 || c->join_hold_max > (1u << 20)) {
        snprintf(buf, sizeof buf, "join_hold_max must be 1..%u (got %zu)",
                 1u << 20, c->join_hold_max);
        why = buf;
    }
    if (!why) return 0;
    if (err && err_len) snprintf(err, err_len, "%s", why);
    return c ? MMWS_ECONFIG : MMWS_EINVAL;
}

/* ------------------------------------------------------------- dedup -- */

static size_t tab_home(const mmws_pool *p, uint64_t key) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & p->tab_mask;
}

static recent *tab_find(mmws_pool *p, uint64_t key) {
    for (size_t i = tab_home(p, key);; i = (i + 1) & p->tab_mask) {
        if (!p->used[i]) return NULL;
        if (p->tab[i].key == key) return &p->tab[i];
    }
}

/* Removes key (backward-shift deletion keeps probe chains intact). */
static void tab_delete(mmws_pool *p, uint64_t key) {
    size_t i = tab_home(p, key);
    while (p->used[i] && p->tab[i].key != key) i = (i + 1) & p->tab_mask;
    if (!p->used[i]) return;
    size_t j = i;
    for (;;) {
        j = (j + 1) & p->tab_mask;
        if (!p->used[j]) break;
        size_t h = tab_home(p, p->tab[j].key);
        /* Move j back to i if its home is not in (i, j]. */
        if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
            p->tab[i] = p->tab[j];
            i = j;
        }
    }
    p->used[i] = 0;
}

/* Remembers a new key, forgetting the oldest past the window. */
static void tab_insert(mmws_pool *p, uint64_t key, uint64_t now) {
    if (p->fifo_len == p->window) {
        tab_delete(p, p->fifo[p->fifo_head]);
        p->fifo_head = (p->fifo_head + 1) % p->window;
        p->fifo_len--;
    }
    size_t i = tab_home(p, key);
    while (p->used[i]) i = (i + 1) & p->tab_mask;
    p->used[i] = 1;
    p->tab[i].key = key;
    p->tab[i].first_ns = now;
    p->fifo[(p->fifo_head + p->fifo_len) % p->window] = key;
    p->fifo_len++;
}

/* --------------------------------------------------------- scoring -- */

static double slot_score(const pslot *s) {
    double lat = s->conn ? mmws_conn_latency_ema_ms(s->conn) : 1000.0;
    return (s->have_lag ? s->lag_ema_ms : 0.0) + lat / 2.0;
}

static void lag_sample(pslot *s, double ms) {
    if (!s->have_lag) {
        s->lag_ema_ms = ms;
        s->have_lag = 1;
    } else {
        s->lag_ema_ms = EMA_ALPHA * ms + (1.0 - EMA_ALPHA) * s->lag_ema_ms;
    }
}

static void really_free(mmws_pool *p);

/* Hands one first copy on: callback or ring. Returns -1 if the pool was
 * freed inside the callback. */
static int deliver(mmws_pool *p, const mmws_msg *m) {
    p->st.delivered++;
    if (p->thr) {
        mmws__thread_deliver(p->thr, m);
        return 0;
    }
    if (p->ring) {
        if (mmws_ring_insert(p->ring, m) < 0) p->st.ring_dropped++;
        return 0;
    }
    p->depth++;
    p->on_message(p->user, m);
    if (--p->depth == 0 && p->free_pending) {
        really_free(p);
        return -1;
    }
    return 0;
}

static void hold_clear(pslot *s) {
    for (size_t i = 0; i < s->nhold; i++) free(s->hold[i].copy);
    s->nhold = 0;
}

/*
 * Joins s: its held messages are delivered in its order (those nobody
 * delivered meanwhile), so the stream goes on from where s is. Make-
 * before-break: a victim s replaces is closed now that s carries the
 * stream.
 */
static int meet_holds(mmws_pool *p, uint64_t key);

static int join(mmws_pool *p, pslot *s) {
    s->joined = 1;
    if (s->replaces && s->replaces->conn) {
        mmws_conn_close(s->replaces->conn, MMWS_CLOSE_NORMAL, "replaced");
        s->replaces = NULL;
    }
    int rc = 0;
    for (size_t i = 0; i < s->nhold && rc == 0; i++) {
        held *h = &s->hold[i];
        p->st.held--;
        if (tab_find(p, h->key)) {
            s->dups++;
            p->st.duplicates++;
            continue;
        }
        tab_insert(p, h->key, h->msg.recv_ns);
        s->firsts++;
        rc = deliver(p, &h->msg);
        /* A hold delivered here can be where another joining connection's
         * hold starts (found by the soak: without this, that connection
         * held forever and kept its eviction victim open). */
        if (rc == 0) rc = meet_holds(p, h->key);
    }
    if (rc == 0) hold_clear(s);
    return rc;
}

/* 1 if o carries the stream: joined and open. A joined connection that
 * is closing (an eviction or rotation victim waiting for the server's
 * close echo, up to close_timeout_ms) drops what it receives, so it no
 * longer counts: counting it made the joining connections hold
 * everything until its close ended. */
static int carries(const pslot *o) {
    return o->joined && !o->dead &&
           mmws_conn_phase(o->conn) == MMWS_PHASE_OPEN;
}

/* 1 if some other connection carries the stream. */
static int others_joined(const mmws_pool *p, const pslot *s) {
    for (size_t i = 0; i < p->nslots; i++)
        if (p->slots[i] != s && carries(p->slots[i])) return 1;
    return 0;
}

/*
 * Of the joining connections with a hold, the one whose hold reaches
 * furthest back: its first message is not among the later messages of
 * any other joiner's hold (ties: the first message received first). NULL
 * if no connection holds anything. Run only when the stream changes
 * hands, so the scan (joiners squared times join_hold_max) stays off the
 * per-message path.
 */
static pslot *earliest_joiner(mmws_pool *p) {
    pslot *best = NULL;
    for (size_t i = 0; i < p->nslots; i++) {
        pslot *s = p->slots[i];
        if (s->joined || s->dead || s->nhold == 0) continue;
        int later = 0;
        for (size_t j = 0; j < p->nslots && !later; j++) {
            const pslot *w = p->slots[j];
            if (w == s || w->joined || w->dead) continue;
            for (size_t k = 1; k < w->nhold && !later; k++)
                later = w->hold[k].key == s->hold[0].key;
        }
        if (!later && (!best || s->hold[0].msg.recv_ns <
                                    best->hold[0].msg.recv_ns))
            best = s;
    }
    return best;
}

/*
 * Nobody carries the stream (or a hold is full): the joiner whose hold
 * reaches furthest back joins; the others meet it when their first held
 * message is delivered (meet_holds). Joining whichever connection spoke
 * first instead delivered a later hold before an earlier one, and the
 * earlier messages came after it, out of order (found by the soak).
 * Returns -1 if the pool was freed.
 */
static int takeover(mmws_pool *p) {
    pslot *w = earliest_joiner(p);
    return w ? join(p, w) : 0;
}

/* Keeps a copy of m on a joining connection. Returns 1 if m was held, 0
 * if s joined instead (its hold was full, or no memory for the copy) and
 * m is still to be handled as a joined connection's, -1 if the pool was
 * freed. */
static int hold(mmws_pool *p, pslot *s, const mmws_msg *m, uint64_t key) {
    /* Past the bound the others are far behind: take the stream from the
     * joiner that reaches furthest back, then s's as it is. */
    if (s->nhold >= p->pcfg.join_hold_max) {
        if (takeover(p) < 0) return -1;
        return s->joined ? 0 : join(p, s);
    }
    if (s->nhold == s->hold_cap) {
        size_t cap = s->hold_cap ? s->hold_cap * 2 : 64;
        held *nh = realloc(s->hold, cap * sizeof *nh);
        if (!nh) return join(p, s);
        s->hold = nh;
        s->hold_cap = cap;
    }
    uint8_t *copy = malloc(m->len ? m->len : 1);
    if (!copy) return join(p, s);
    memcpy(copy, m->data, m->len);
    held *h = &s->hold[s->nhold++];
    h->msg = *m;
    h->msg.data = copy;
    h->copy = copy;
    h->key = key;
    p->st.held++;
    return 1;
}

/*
 * Every message of every connection comes here first.
 *
 * Exactly once and in order across connections with different delays: a
 * connection that has just (re)connected may be ahead of the ones already
 * carrying the stream. Its new messages are held until the delivered
 * stream reaches them (a joined connection delivers the key at the head
 * of its hold, or the connection itself brings an already-delivered
 * message); then it joins and its hold is delivered in its order. Without
 * a joined connection the joiner whose hold reaches furthest back takes
 * the stream over (takeover); with nothing held anywhere, the first
 * connection to speak joins at once.
 */
static void on_slot_message(void *user, const mmws_msg *m) {
    pslot *s = user;
    mmws_pool *p = s->pool;
    uint64_t key = p->pcfg.key_fn
                       ? p->pcfg.key_fn(p->pcfg.key_user, m->data, m->len)
                       : mmws_hash64(m->data, m->len);
    s->msgs++;
    recent *r = tab_find(p, key);
    if (r) {
        s->dups++;
        p->st.duplicates++;
        lag_sample(s, m->recv_ns > r->first_ns
                          ? (double)(m->recv_ns - r->first_ns) / 1e6 : 0.0);
        /* Behind the delivered stream: join. One duplicate alone may be
         * out of band (every connection gets the same subscribe ack), so
         * it takes two in a row with nothing held. */
        if (!s->joined && s->nhold == 0 && ++s->dup_run >= 2) join(p, s);
        /* Or the delivered stream has passed the start of its hold. */
        else if (!s->joined && s->nhold && tab_find(p, s->hold[0].key))
            join(p, s);
        return;
    }
    s->dup_run = 0;
    if (!s->joined) {
        if (!others_joined(p, s) && s->nhold == 0 &&
            !earliest_joiner(p)) {
            /* The first connection to speak, nothing held anywhere. */
            if (join(p, s) < 0) return;
        } else {
            int rc = hold(p, s, m, key);
            if (rc < 0) return;
            if (rc > 0) {
                if (!others_joined(p, s)) takeover(p);
                return;
            }
            if (tab_find(p, key)) return; /* delivered from a hold */
        }
    }
    tab_insert(p, key, m->recv_ns);
    s->firsts++;
    lag_sample(s, 0.0);
    if (deliver(p, m) < 0) return;
    meet_holds(p, key);
}

/* key was just delivered: joining connections whose hold starts there have
 * met the stream and join. Returns -1 if the pool was freed. */
static int meet_holds(mmws_pool *p, uint64_t key) {
    for (size_t i = 0; p->st.held && i < p->nslots; i++) {
        pslot *w = p->slots[i];
        if (w->joined || w->dead || w->nhold == 0) continue;
        if (w->hold[0].key != key) continue;
        free(w->hold[0].copy);
        memmove(w->hold, w->hold + 1, (w->nhold - 1) * sizeof *w->hold);
        w->nhold--;
        w->dups++;
        p->st.duplicates++;
        p->st.held--;
        if (join(p, w) < 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------- lifecycle -- */

static uint64_t rand64(mmws_pool *p) {
    p->jitter ^= p->jitter << 13;
    p->jitter ^= p->jitter >> 7;
    p->jitter ^= p->jitter << 17;
    return p->jitter;
}

/* 1 if the budget allows one more connection now. */
static int budget_ok(mmws_pool *p, uint64_t now) {
    if (p->budget_len < p->pcfg.max_new_connections) return 1;
    uint64_t oldest = p->budget[p->budget_head];
    return now - oldest >= (uint64_t)p->pcfg.budget_window_s * 1000 * MS;
}

static void budget_take(mmws_pool *p, uint64_t now) {
    size_t cap = p->pcfg.max_new_connections;
    if (p->budget_len == cap) {
        p->budget_head = (p->budget_head + 1) % cap;
        p->budget_len--;
    }
    p->budget[(p->budget_head + p->budget_len) % cap] = now;
    p->budget_len++;
}

static void on_slot_state(void *user, mmws_conn *c, mmws_state from,
                          mmws_state to) {
    pslot *s = user;
    mmws_pool *p = s->pool;
    (void)from;
    if (to == MMWS_CONNECTED) {
        s->ever_connected = 1;
        p->fails = 0;
        /* Its TLS context has just completed a handshake: new connections
         * share this one (a context rebuilt after a failure replaces one
         * that may be broken). */
        mmws__tls_ctx *tls = mmws__conn_tls_ctx(c);
        if (tls && tls != p->tls) {
            mmws__tls_ctx_free(p->tls);
            p->tls = mmws__tls_ctx_ref(tls);
        }
        if (tls) p->tls_proven = 1;
        return;
    }
    if (to == MMWS_DISCONNECTED && mmws_conn_phase(c) == MMWS_PHASE_CLOSED) {
        /* Its handshake failed: a context no handshake has proven may be
         * the cause (an allocation that failed inside OpenSSL while it
         * loaded the trust store leaves it without the CA: "unknown ca"
         * for ever), so the next connection builds its own. */
        if (p->tls && !p->tls_proven && mmws__conn_tls_failed(c)) {
            mmws__tls_ctx_free(p->tls);
            p->tls = NULL;
        }
        s->dead = 1;
        mmws__timer_start(&p->t_tick, 0);
    }
}

/* Opens one slot (replacing victim, if any). Returns it or NULL. */
static pslot *open_slot(mmws_pool *p, pslot *victim) {
    uint64_t now = mmws_loop_now_ns(p->loop);
    if (!budget_ok(p, now)) {
        p->st.budget_denied++;
        return NULL;
    }
    if (p->nslots == p->slot_cap) {
        size_t cap = p->slot_cap ? p->slot_cap * 2 : 8;
        pslot **ns = realloc(p->slots, cap * sizeof *ns);
        p->open_rc = MMWS_ENOMEM;
        if (!ns) return NULL;
        p->slots = ns;
        p->slot_cap = cap;
    }
    pslot *s = calloc(1, sizeof *s);
    p->open_rc = MMWS_ENOMEM;
    if (!s) return NULL;
    s->pool = p;
    s->created_ns = now;
    s->replaces = victim;
    mmws_conn_config cfg = p->owned.pub;
    cfg.auto_reconnect = 0;
    cfg.conn_id = 0;
    char resolve[1024];
    if (p->naddr > 0) {
        /* Spread: this slot's first address, then the others in turn. */
        size_t first = p->next_addr++ % p->naddr, n = 0;
        if (p->naddr > 1)
            snprintf(s->addr, sizeof s->addr, "%s", p->addr[first]);
        resolve[0] = '\0';
        for (size_t k = 0; k < p->naddr && n < sizeof resolve; k++)
            n += (size_t)snprintf(resolve + n, sizeof resolve - n, "%s%s",
                                  k ? "," : "",
                                  p->addr[(first + k) % p->naddr]);
        cfg.resolve = resolve;
    }
    /* One TLS context for every connection of the pool: building one per
     * connection loaded the trust store each time (with the system's
     * bundle ~26 ms on the loop thread and ~225,000 allocations, at every
     * replacement, eviction and rotation). */
    p->open_rc = mmws__conn_new_shared(p->loop, &cfg, on_slot_message, s,
                                       p->tls, &s->conn);
    if (p->open_rc != 0) {
        free(s);
        return NULL;
    }
    if (!p->tls && mmws__conn_tls_ctx(s->conn)) {
        p->tls = mmws__tls_ctx_ref(mmws__conn_tls_ctx(s->conn));
        p->tls_proven = 0;
    }
    mmws_conn_set_on_state(s->conn, on_slot_state, s);
    /* A connection that failed inside mmws_conn_new (e.g. no memory to
     * watch its socket) is CLOSED before on_slot_state was set: without
     * this, the slot would never be found dead nor replaced. */
    if (mmws_conn_phase(s->conn) == MMWS_PHASE_CLOSED) {
        s->dead = 1;
        mmws__timer_start(&p->t_tick, 0);
    }
    budget_take(p, now);
    p->st.attempts++;
    p->slots[p->nslots++] = s;
    return s;
}

/* Slots that count towards num_connections: alive and not being replaced. */
static size_t active_count(const mmws_pool *p) {
    size_t n = 0;
    for (size_t i = 0; i < p->nslots; i++)
        if (!p->slots[i]->dead && !p->slots[i]->evicting) n++;
    return n;
}

/* Housekeeping: drop dead slots, replace them, rotate old ones. */
static void on_tick(mmws__timer *t) {
    mmws_pool *p = t->data;
    uint64_t now = mmws_loop_now_ns(p->loop);
    /* First unlink the dead from the living, then free them: a replacement
     * that died frees its victim from eviction. */
    for (size_t i = 0; i < p->nslots; i++) {
        pslot *s = p->slots[i];
        if (!s->dead) continue;
        for (size_t k = 0; k < p->nslots; k++) {
            pslot *o = p->slots[k];
            if (o->replaces == s) o->replaces = NULL;
            if (s->replaces == o) o->evicting = 0;
        }
    }
    size_t j = 0;
    for (size_t i = 0; i < p->nslots; i++) {
        pslot *s = p->slots[i];
        if (!s->dead) {
            p->slots[j++] = s;
            continue;
        }
        if (!s->evicting) {
            p->st.replacements++;
            if (!s->ever_connected) p->fails++;
            uint64_t ceil_ms = p->pcfg.replace_base_ms;
            for (uint32_t f = 1; f < p->fails && ceil_ms < p->pcfg.replace_cap_ms; f++)
                ceil_ms *= 2;
            if (ceil_ms > p->pcfg.replace_cap_ms) ceil_ms = p->pcfg.replace_cap_ms;
            p->next_create_ns =
                p->fails ? now + (rand64(p) % (ceil_ms + 1)) * MS : now;
        }
        mmws_conn_free(s->conn);
        /* What it held are copies the others carry: duplicates. */
        p->st.duplicates += s->nhold;
        p->st.held -= s->nhold;
        hold_clear(s);
        free(s->hold);
        free(s);
    }
    p->nslots = j;
    /* Nobody carries the stream: the joining connections take it over. */
    if (!others_joined(p, NULL) && takeover(p) < 0) return;

    /* Rotation: one old connection at a time, make-before-break. */
    if (p->pcfg.max_connection_age_s) {
        int rotating = 0;
        for (size_t i = 0; i < p->nslots; i++)
            if (p->slots[i]->evicting && !p->slots[i]->dead) rotating = 1;
        uint64_t max_age = (uint64_t)p->pcfg.max_connection_age_s * 1000 * MS;
        for (size_t i = 0; i < p->nslots && !rotating; i++) {
            pslot *s = p->slots[i];
            if (s->dead || s->evicting || now - s->created_ns < max_age ||
                mmws_conn_state(s->conn) != MMWS_CONNECTED)
                continue;
            s->evicting = 1;
            if (open_slot(p, s)) {
                p->st.rotations++;
                rotating = 1;
            } else {
                s->evicting = 0;
            }
        }
    }

    while (!p->dns && active_count(p) < p->pcfg.num_connections &&
           now >= p->next_create_ns) {
        if (!open_slot(p, NULL)) break;
    }
    mmws__timer_start(&p->t_tick, TICK_NS);
}

static int cmp_score_desc(const void *a, const void *b) {
    double x = slot_score(*(pslot *const *)a), y = slot_score(*(pslot *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Eviction: the slowest half (>= 4 connections) or the slowest one. */
static void on_evict(mmws__timer *t) {
    mmws_pool *p = t->data;
    pslot *cand[64];
    size_t n = 0;
    for (size_t i = 0; i < p->nslots && n < 64; i++) {
        pslot *s = p->slots[i];
        if (!s->dead && !s->evicting &&
            mmws_conn_state(s->conn) == MMWS_CONNECTED)
            cand[n++] = s;
    }
    if (n == p->pcfg.num_connections) {
        qsort(cand, n, sizeof cand[0], cmp_score_desc);
        size_t victims = n >= 4 ? n / 2 : 1;
        for (size_t i = 0; i < victims; i++) {
            cand[i]->evicting = 1;
            if (open_slot(p, cand[i])) {
                p->st.evictions++;
            } else {
                cand[i]->evicting = 0;
            }
        }
    }
    mmws__timer_start(&p->t_evict, (uint64_t)p->pcfg.evict_interval_s * 1000 * MS);
}

/* Splits the comma list in p->resolve into p->addr. */
static void split_addrs(mmws_pool *p) {
    p->naddr = 0;
    for (char *tok = strtok(p->resolve, ","); tok && p->naddr < MMWS__DNS_MAX_ADDRS;
         tok = strtok(NULL, ","))
        p->addr[p->naddr++] = tok;
}

/* The pool's resolution: the addresses to spread over, then the slots. */
static void on_pool_dns(void *data, int rc, const mmws__addrs *addrs,
                        const char *detail) {
    mmws_pool *p = data;
    (void)detail; /* on failure each connection resolves and reports */
    p->dns = NULL;
    size_t n = 0;
    p->resolve[0] = '\0';
    for (size_t i = 0; rc == 0 && i < addrs->count; i++) {
        char ip[INET6_ADDRSTRLEN];
        const struct sockaddr *sa = (const struct sockaddr *)&addrs->addr[i];
        const void *a = sa->sa_family == AF_INET
                            ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (!inet_ntop(sa->sa_family, a, ip, sizeof ip)) continue;
        n += (size_t)snprintf(p->resolve + n, sizeof p->resolve - n, "%s%s",
                              n ? "," : "", ip);
        if (n >= sizeof p->resolve) break;
    }
    split_addrs(p);
    mmws__timer_start(&p->t_tick, 0);
}

int mmws_pool_new(mmws_loop *loop, const mmws_conn_config *cfg,
                  const mmws_pool_config *pcfg, mmws_on_message on_message,
                  void *user, mmws_pool **out) {
    char err[MMWS__ERR_LEN];
    mmws_pool_config defaults;
    if (!loop || !cfg || !out) {
        mmws__set_last_error("mmws_pool_new: loop, cfg and out must not be "
                             "NULL");
        return MMWS_EINVAL;
    }
    if (!pcfg) {
        mmws_pool_config_default(&defaults);
        pcfg = &defaults;
    }
    int rc = mmws_pool_config_validate(pcfg, err, sizeof err);
    if (!rc) rc = mmws__conn_cfg_check(cfg, err, sizeof err);
    if (rc) {
        mmws__set_last_error(err);
        return rc;
    }
    mmws_pool *p = calloc(1, sizeof *p);
    if (!p || mmws__conn_cfg_copy(&p->owned, cfg)) {
        free(p);
        mmws__set_last_error("mmws_pool_new: out of memory");
        return MMWS_ENOMEM;
    }
    p->loop = loop;
    p->pcfg = *pcfg;
    p->on_message = on_message;
    p->user = user;
    p->window = pcfg->hash_capacity;
    size_t tab = 16;
    while (tab < 2 * p->window) tab *= 2;
    p->tab_mask = tab - 1;
    p->tab = calloc(tab, sizeof *p->tab);
    p->used = calloc(tab, 1);
    p->fifo = calloc(p->window, sizeof *p->fifo);
    p->budget = calloc(pcfg->max_new_connections, sizeof *p->budget);
    if (mmws_random_bytes(&p->jitter, sizeof p->jitter) || !p->jitter)
        p->jitter = 0x9E3779B97F4A7C15ull;
    if (!p->tab || !p->used || !p->fifo || !p->budget ||
        (!on_message && mmws_ring_new(&pcfg->ring, &p->ring) != 0)) {
        really_free(p);
        mmws__set_last_error("mmws_pool_new: out of memory or invalid ring "
                             "config");
        return MMWS_ENOMEM;
    }
    if (mmws__timer_init(loop, &p->t_tick, on_tick, p) ||
        mmws__timer_init(loop, &p->t_evict, on_evict, p)) {
        really_free(p);
        mmws__set_last_error("mmws_pool_new: out of memory (timers)");
        return MMWS_ENOMEM;
    }
    struct in6_addr lit;
    if (cfg->resolve) {
        snprintf(p->resolve, sizeof p->resolve, "%s", cfg->resolve);
        split_addrs(p);
    } else if (inet_pton(AF_INET, p->owned.host, &lit) != 1 &&
               inet_pton(AF_INET6, p->owned.host, &lit) != 1) {
        mmws__dns_options opt = {cfg->dns_servers, cfg->connect_timeout_ms};
        char detail[MMWS__DETAIL_LEN];
        if (mmws__dns_resolve(loop, p->owned.host, p->owned.url.port, &opt,
                              on_pool_dns, p, &p->dns, detail,
                              sizeof detail) != 0)
            p->dns = NULL; /* each connection resolves for itself */
    }
    if (!p->dns) {
        for (size_t i = 0; i < pcfg->num_connections; i++) {
            mmws__set_last_error("");
            if (!open_slot(p, NULL)) {
                /* mmws_conn_new's own sentence, or else the slot's
                 * allocation failed. */
                rc = p->open_rc ? p->open_rc : MMWS_ENOMEM;
                if (mmws_last_error()[0])
                    snprintf(err, sizeof err, "mmws_pool_new: connection "
                             "%zu: %.200s", i + 1, mmws_last_error());
                else
                    snprintf(err, sizeof err, "mmws_pool_new: out of memory "
                             "opening connection %zu", i + 1);
                really_free(p);
                mmws__set_last_error(err);
                return rc;
            }
        }
    }
    mmws__timer_start(&p->t_tick, p->dns ? TICK_NS * 40 : TICK_NS);
    mmws__timer_start(&p->t_evict, (uint64_t)pcfg->evict_interval_s * 1000 * MS);
    *out = p;
    return 0;
}

static void really_free(mmws_pool *p) {
    if (p->dns) mmws__dns_cancel(p->dns);
    mmws__timer_fini(&p->t_tick);
    mmws__timer_fini(&p->t_evict);
    for (size_t i = 0; i < p->nslots; i++) {
        mmws_conn_free(p->slots[i]->conn);
        hold_clear(p->slots[i]);
        free(p->slots[i]->hold);
        free(p->slots[i]);
    }
    mmws__tls_ctx_free(p->tls);
    free(p->slots);
    mmws_ring_free(p->ring);
    free(p->tab);
    free(p->used);
    free(p->fifo);
    free(p->budget);
    mmws__conn_cfg_free(&p->owned);
    free(p);
}

void mmws_pool_free(mmws_pool *p) {
    if (!p) return;
    if (p->thr) { /* from the consumer: the loop is ours again after it */
        mmws__thread_stop(p->thr);
        p->thr = NULL;
    }
    if (p->depth > 0) {
        p->free_pending = 1;
        return;
    }
    really_free(p);
}

static int pool_ready(void *arg) {
    return !mmws_ring_empty(((mmws_pool *)arg)->ring);
}

int mmws_pool_next(mmws_pool *p, mmws_msg *out, int timeout_ms) {
    if (!p || !out) return MMWS_EINVAL;
    if (p->thr) return mmws__thread_next(p->thr, out, timeout_ms);
    if (!p->ring) return MMWS_ESTATE;
    int rc = mmws__drive_until(p->loop, pool_ready, p, timeout_ms);
    if (rc) return rc;
    return mmws_ring_consume(p->ring, out) == 0 ? 0 : MMWS_ESTATE;
}

static int cmp_score_asc(const void *a, const void *b) {
    return -cmp_score_desc(a, b);
}

/* The send itself, on the loop's thread. */
static int pool_send(mmws_pool *p, const void *data, size_t len,
                     int only_fastest) {
    pslot *cand[128];
    size_t n = 0;
    for (size_t i = 0; i < p->nslots && n < 128; i++)
        if (!p->slots[i]->dead &&
            mmws_conn_state(p->slots[i]->conn) == MMWS_CONNECTED)
            cand[n++] = p->slots[i];
    if (n == 0) return MMWS_ENOTCONN;
    qsort(cand, n, sizeof cand[0], cmp_score_asc);
    int last = MMWS_ENOTCONN, sent = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = mmws_conn_send_text(cand[i]->conn, data, len);
        if (rc == 0) {
            sent++;
            if (only_fastest) return 0;
        } else {
            last = rc;
            /* Errors about the message itself will not differ elsewhere. */
            if (rc == MMWS_ETOOBIG || rc == MMWS_EUTF8 || rc == MMWS_EINVAL)
                return rc;
        }
    }
    return sent ? 0 : last;
}

int mmws_pool_send_data(mmws_pool *p, const void *data, size_t len,
                        int only_fastest) {
    if (!p || (!data && len)) return MMWS_EINVAL;
    if (!p->thr) return pool_send(p, data, len, only_fastest);
    /* Errors about the message itself are reported now, not later on the
     * I/O thread (the config is read-only there). */
    if (len > p->owned.pub.max_frame_size) return MMWS_ETOOBIG;
    if (p->owned.pub.validate_utf8 && mmws_utf8_check(data, len))
        return MMWS_EUTF8;
    return mmws__thread_send(p->thr, data, len, only_fastest ? 1u : 0u);
}

/* ------------------------------------------------- threaded mode -- */

/* What the consumer reads while the I/O thread runs. */
typedef struct pool_snap {
    mmws_pool_stats st;
    mmws_state state;
    size_t connected, size;
} pool_snap;

static mmws_state pool_state(const mmws_pool *p);
static size_t pool_connected(const mmws_pool *p);

static int thr_send(void *obj, const uint8_t *data, size_t len,
                    unsigned flags) {
    return pool_send(obj, data, len, (int)(flags & 1u));
}

static void thr_snapshot(void *obj, void *snap) {
    mmws_pool *p = obj;
    pool_snap *ps = snap;
    ps->st = p->st;
    ps->state = pool_state(p);
    ps->connected = pool_connected(p);
    ps->size = p->nslots;
}

int mmws_pool_start_thread(mmws_pool *p, const mmws_thread_config *tcfg) {
    if (!p) {
        mmws__set_last_error("mmws_pool_start_thread: pool must not be NULL");
        return MMWS_EINVAL;
    }
    if (!p->ring || p->thr || p->depth || mmws__loop_running(p->loop)) {
        mmws__set_last_error("mmws_pool_start_thread: the pool must be in "
                             "iteration mode (on_message NULL), not started "
                             "yet, and its loop not running");
        return MMWS_ESTATE;
    }
    static const mmws__thread_ops ops = {thr_send, thr_snapshot, NULL};
    int rc = mmws__thread_start(p->loop, &p->pcfg.ring, tcfg, &ops, p,
                                sizeof(pool_snap), &p->thr);
    if (rc) p->thr = NULL;
    return rc;
}

int mmws_pool_thread_stats(const mmws_pool *p, mmws_thread_stats *out) {
    if (!p || !out) return MMWS_EINVAL;
    if (p->thr)
        mmws__thread_stats(p->thr, out);
    else
        memset(out, 0, sizeof *out);
    return 0;
}

mmws_state mmws_pool_get_state(const mmws_pool *p) {
    if (!p) return MMWS_DISCONNECTED;
    if (p->thr) {
        pool_snap ps;
        mmws__thread_snapshot(p->thr, &ps);
        return ps.state;
    }
    return pool_state(p);
}

static mmws_state pool_state(const mmws_pool *p) {
    mmws_state best = MMWS_DISCONNECTED;
    for (size_t i = 0; i < p->nslots; i++) {
        mmws_state s = mmws_conn_state(p->slots[i]->conn);
        if (s == MMWS_CONNECTED) return s;
        if (s == MMWS_CONNECTING) best = s;
    }
    return best;
}

size_t mmws_pool_connected_count(const mmws_pool *p) {
    if (p && p->thr) {
        pool_snap ps;
        mmws__thread_snapshot(p->thr, &ps);
        return ps.connected;
    }
    return pool_connected(p);
}

static size_t pool_connected(const mmws_pool *p) {
    size_t n = 0;
    for (size_t i = 0; p && i < p->nslots; i++)
        if (mmws_conn_state(p->slots[i]->conn) == MMWS_CONNECTED) n++;
    return n;
}

size_t mmws_pool_size(const mmws_pool *p) {
    if (p && p->thr) {
        pool_snap ps;
        mmws__thread_snapshot(p->thr, &ps);
        return ps.size;
    }
    return p ? p->nslots : 0;
}

int mmws_pool_conn_info_get(const mmws_pool *p, size_t i,
                            mmws_pool_conn_info *out) {
    if (!p || !out) return MMWS_EINVAL;
    if (p->thr) return mmws__thread_refuse("mmws_pool_conn_info_get");
    if (i >= p->nslots) return MMWS_EINVAL;
    const pslot *s = p->slots[i];
    memset(out, 0, sizeof *out);
    out->conn_id = mmws_conn_id(s->conn);
    out->state = mmws_conn_state(s->conn);
    out->latency_ema_ms = mmws_conn_latency_ema_ms(s->conn);
    out->lag_ema_ms = s->have_lag ? s->lag_ema_ms : 0.0;
    out->messages = s->msgs;
    out->firsts = s->firsts;
    out->duplicates = s->dups;
    out->first_share = s->msgs ? (double)s->firsts / (double)s->msgs : 0.0;
    out->score_ms = slot_score(s);
    out->age_ms = (mmws_loop_now_ns(p->loop) - s->created_ns) / MS;
    out->evicting = s->evicting;
    snprintf(out->addr, sizeof out->addr, "%s", s->addr);
    return 0;
}

void mmws_pool_stats_get(const mmws_pool *p, mmws_pool_stats *out) {
    if (!p || !out) return;
    if (p->thr) {
        pool_snap ps;
        mmws__thread_snapshot(p->thr, &ps);
        *out = ps.st;
        mmws_ring_stats rs;
        mmws_thread_stats ts;
        mmws__thread_stats(p->thr, &ts);
        rs = ts.handoff;
        out->ring_dropped = rs.dropped_oldest + rs.dropped_newest;
        return;
    }
    *out = p->st;
}
