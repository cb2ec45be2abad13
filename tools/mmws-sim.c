/*
 * mmws-sim — a local exchange simulator: a ws:// or wss:// server that
 * behaves like a venue's market stream (Binance-like bookTicker), for the
 * demo, the pool's tests and the benchmarks. Single-threaded epoll; its own
 * minimal server side of RFC 6455 (the library is client-only); OpenSSL
 * for wss://. Built on mmws's public API only (mmws_handshake_accept,
 * mmws_mask, mmws_utf8_check, mmws_close_parse, mmws_now_ns).
 *
 *   mmws-sim [--host 127.0.0.1] [--port 0] [--tls CERT KEY] [--rate N]
 *            [--size B] [--count N] [--seed S] [--profiles D:J,D:J,...]
 *            [--max-age-ms MS] [--control-port 0]
 *
 *     --rate N        messages per second (default 1000); 0 is the firehose:
 *                     generate as fast as the slowest connection's socket
 *                     takes them (backpressure), with no delay. With no
 *                     connection open the firehose waits.
 *     --size B        approximate payload size: the "p" field pads the
 *                     message to B bytes (default 200; at most 1 MiB)
 *     --count N       stop generating after N messages (0: never)
 *     --seed S        seeds the price walk, the profiles and the jitter
 *     --profiles L    latency profiles "delay_us:jitter_us,...", given to
 *                     connections round-robin in accept order; without
 *                     it each connection draws delay 0..2000 us and jitter
 *                     0..1000 us (a load balancer routing to better or
 *                     worse backends)
 *     --max-age-ms MS close each connection that old with 1000 "max age"
 *     --control-port P the control port (plain TCP on 127.0.0.1)
 *
 * On start it prints "LISTENING <port>" and "CONTROL <port>" on stdout,
 * each on its own line; SIGTERM or SIGINT ends it with exit status 0
 * (every connection gets a 1001 close, best effort). Exit status 1 on a
 * start-up failure, 2 on bad usage. Diagnostics go to stderr.
 *
 * The stream. A generator makes one message per tick, shared by every
 * connection:
 *   {"e":"bookTicker","u":<update id 1,2,3...>,"s":"BTCUSDT","b":"<bid>",
 *    "B":"<qty>","a":"<ask>","A":"<qty>","T":<ms since the epoch>,
 *    "ts":<CLOCK_MONOTONIC ns at generation>,"p":"<padding>"}
 * (the firehose reads the clocks once per batch of messages generated
 * together, so "T" and "ts" repeat within a batch)
 * Every connection receives, in order, as TEXT frames, every message
 * generated while it is open (from the end of its upgrade). A message
 * generated at t goes out no earlier than max(previous due,
 * t + delay + U(0, jitter)). Messages live once in a bounded log; a
 * connection that falls a whole log behind is closed with 1008 "too slow"
 * (counted in stats). Pings are answered after the same delay. A TEXT
 * {"method":"SUBSCRIBE"|"UNSUBSCRIBE",...,"id":N} is acknowledged with
 * {"result":null,"id":N} (LIST_SUBSCRIPTIONS with "result":[], any other
 * method with an error object), also after the delay; the stream does not
 * wait for a subscription. Every TEXT message received is recorded per
 * connection (the last 1000, each cut at 4096 bytes).
 *
 * The control port: one command per line, each reply ends with a line
 * "end" (up to 8 clients at a time):
 *   list            one line per live connection:
 *                   conn ID port=P age_ms=A delay_us=D jitter_us=J sent=N
 *                   received=M last_u=U state=S
 *                   (S: tls, http, open, closing, stalled)
 *   kill ID|random  reset the TCP connection (SO_LINGER 0), TLS too;
 *                   replies "ok ID"
 *   close ID CODE [REASON]  close handshake with CODE
 *   stall ID        stop sending (data and pongs) and reading; the TCP
 *                   connection stays open until the peer ends it
 *   received ID     the recorded text messages of ID, one per line (bytes
 *                   below 0x20 and 0x7f as \xHH); a closed connection keeps
 *                   its record (the last 1000 closed ones) until forget
 *   forget ID|all   drop the record of a closed connection (clear it for a
 *                   live one)
 *   stats           generated=N connections_total=C live=L slow_closed=S
 *                   rate=R paused=P
 *   rate N          change the rate (0: firehose)
 *   pause, resume   stop / restart generation
 *   help, quit
 * Anything else: "error <why>".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <mmws/mmws.h>

/* ------------------------------------------------------------ bounds -- */

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

#define SIM_MAX_IN_FRAME 65536u     /* largest client frame or message */
#define SIM_IN_CAP (SIM_MAX_IN_FRAME + 14u) /* read buffer: one frame */
#define SIM_HTTP_MAX 8192u          /* bound on the upgrade request */
#define SIM_RECORD_MAX 1000u        /* text messages kept per connection */
#define SIM_RECORD_BYTES 4096u      /* bytes kept of each */
#define SIM_CLOSED_RECORDS 1000u    /* records of closed connections kept */
#define SIM_CTLQ 64u                /* delayed pongs/acks per connection */
#define SIM_OUT_MIN (256u * 1024u)  /* send buffer per connection */
#define SIM_OUT_RESERVE 8192u       /* of it, kept for control frames */
#define SIM_FILL_BYTES (64u * 1024u) /* unsent stream bytes queued, at most */
#define SIM_LOG_BYTES (64u * 1024u * 1024u) /* bound on the message log */
#define SIM_LOG_MAX 16384u          /* messages in the log, at most */
#define SIM_LOG_MIN 16u
#define SIM_FIREHOSE_BACKLOG 1024u  /* firehose: unsent messages per conn */
#define SIM_GEN_BATCH 10000u        /* messages generated per iteration */
#define SIM_HANDSHAKE_NS (10000ull * NS_PER_MS) /* TLS + upgrade bound */
#define SIM_CLOSE_WAIT_NS (2000ull * NS_PER_MS) /* close echo / flush */
#define SIM_MAX_PROFILES 1024u
#define SIM_MAX_DELAY_US 60000000u  /* a minute */
#define SIM_MAX_CTL_CLIENTS 8
#define SIM_CTL_LINE 4096u          /* longest control command */
#define SIM_CTL_OUT_MAX (64u * 1024u * 1024u)
#define SIM_MAX_SIZE (1024u * 1024u)
#define SIM_MAX_RATE 100000000ull
#define SIM_SLOT_EXTRA 400u         /* frame header + the JSON fields */
#define SIM_HDR_ROOM 10u            /* room before a payload for its header */

/* -------------------------------------------------------------- types -- */

/* What an epoll registration points at; the first member of each owner. */
typedef enum hkind {
    HK_LISTEN,
    HK_CTL_LISTEN,
    HK_TIMER,
    HK_SIGNAL,
    HK_CONN,
    HK_CTL
} hkind;

typedef struct handle {
    hkind kind;
} handle;

/* A latency profile: the backend a connection was routed to. */
typedef struct profile {
    uint32_t delay_us;   /* fixed delay added to every message */
    uint32_t jitter_us;  /* plus a uniform draw from 0..jitter_us */
} profile;

typedef struct options {
    const char *host;        /* listen address (numeric) */
    uint16_t port;           /* 0: any free port */
    const char *cert, *key;  /* PEM files for wss://, or NULL */
    uint64_t rate;           /* messages per second; 0 = firehose */
    size_t size;             /* approximate payload size */
    uint64_t count;          /* stop after this many messages; 0 never */
    uint64_t seed;
    profile *profiles;       /* round-robin profiles, or NULL */
    size_t nprofiles;
    uint64_t max_age_ms;     /* 0: connections never age out */
    uint16_t control_port;
} options;

/* One recorded text message (cut at SIM_RECORD_BYTES). */
typedef struct rmsg {
    size_t len;       /* bytes kept */
    size_t full_len;  /* bytes received */
    char data[];
} rmsg;

/* The received-text record of one connection; outlives the connection. */
typedef struct record {
    struct record *next;  /* all records, oldest first */
    uint64_t id;          /* the connection's id */
    int live;             /* 1 while the connection is */
    rmsg **msgs;          /* ring of SIM_RECORD_MAX, allocated on first use */
    size_t head, count;   /* oldest index, number held */
} record;

/* A frame answered after the connection's delay (pong, ack). */
typedef struct ctl_frame {
    uint64_t due;         /* CLOCK_MONOTONIC ns */
    uint8_t opcode;
    uint8_t len;
    uint8_t data[125];
} ctl_frame;

typedef enum cstate {
    CS_TLS,      /* TLS handshake */
    CS_HTTP,     /* waiting for the upgrade request */
    CS_OPEN,     /* streaming */
    CS_CLOSING   /* close sent: waiting for the echo or the flush */
} cstate;

struct sim;

/* One accepted client connection. */
typedef struct conn {
    handle h;                 /* HK_CONN; first, so handle* is conn* */
    struct conn *prev, *next; /* live list in accept order; next is kept
                                 on removal so iterators can go on */
    struct conn *grave;       /* graveyard link (freed after the events) */
    struct sim *sim;
    uint64_t id;              /* 1, 2, 3 ... in accept order */
    int fd;
    SSL *ssl;                 /* NULL for ws:// */
    cstate state;
    int stalled;              /* "stall": no sending, no reading */
    int dead;                 /* socket closed; awaiting free */
    int close_after_flush;    /* close the socket once out is empty */
    int write_blocked;        /* the last write would block */
    int write_wants_read;     /* TLS: the write waits for readability */
    int hs_want_write;        /* TLS handshake waits for writability */
    uint32_t events;          /* registered with epoll */
    uint16_t port;            /* the client's port */
    uint64_t accepted_ns;
    uint64_t deadline_ns;     /* handshake or close bound; 0 none */
    profile prof;
    uint64_t rng;             /* per-connection jitter draws */
    /* stream queue: messages next_u .. end_u-1, due times in due[] */
    uint64_t next_u, end_u, last_due;
    uint64_t *due;            /* log_cap entries, indexed like the log */
    /* delayed control frames, a ring of SIM_CTLQ */
    ctl_frame *ctl;
    size_t ctl_head, ctl_count;
    uint64_t ctl_last_due;
    /* send buffer: whole frames; [out_off, out_len) unsent */
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    /* receive side */
    uint8_t *in;              /* SIM_IN_CAP bytes */
    size_t in_len;
    uint8_t *frag;            /* reassembly, SIM_MAX_IN_FRAME, lazily */
    size_t frag_len;
    uint8_t frag_op;          /* opcode of the open fragmented message */
    /* counters for "list" */
    uint64_t sent, received, last_u;
    record *rec;
} conn;

/* One control-port client. */
typedef struct ctl_client {
    handle h;                 /* HK_CTL */
    int fd;
    int dead;                 /* closed; freed after the events */
    int quit;                 /* close once the reply is out */
    int eof;                  /* the client shut its side: stop reading */
    int overflow;             /* discarding an over-long line */
    uint32_t events;
    char in[SIM_CTL_LINE];
    size_t in_len;
    char *out;                /* reply bytes, [out_off, out_len) unsent */
    size_t out_off, out_len, out_cap;
} ctl_client;

typedef struct sim {
    options o;
    int ep, lfd, cfd, tfd, sfd;
    handle h_listen, h_ctl_listen, h_timer, h_signal;
    SSL_CTX *tls;
    uint64_t now;             /* CLOCK_MONOTONIC, cached per iteration */
    uint64_t armed_ns;        /* timerfd expiry set, 0 none */
    int stop;
    /* the message log: log_cap slots of slot_cap bytes, frames ready */
    uint8_t *arena;
    size_t slot_cap;
    uint64_t log_cap, log_mask;
    uint32_t *slot_off, *slot_len;
    uint64_t generated;       /* last update id made */
    /* generation */
    uint64_t rate;
    int paused;
    uint64_t gen_base_ns, gen_k;  /* tick k is due at base + k / rate */
    uint64_t rng;             /* price walk */
    uint64_t prof_rng;        /* random profiles */
    uint64_t ctl_rng;         /* "kill random" */
    int64_t mid_cents;
    /* gen_one's rendering caches: the decimal text of the last "u" (kept
     * in step by an in-place increment), and the "T"/"ts" tail of the last
     * clock reading (the firehose shares one per batch) */
    uint64_t u_val;
    size_t u_len;
    char u_txt[24];
    uint64_t tail_ts, tail_ms;
    size_t tail_len;
    char tail_txt[64];
    /* connections */
    conn *head, *tail;
    conn *grave;
    size_t live;
    uint64_t next_id, conns_total, slow_closed;
    size_t profile_rr;
    record *records, *records_tail;
    size_t closed_records;
    ctl_client *ctls[SIM_MAX_CTL_CLIENTS];
} sim;

/* ------------------------------------------------------------ helpers -- */

/* splitmix64: seeding and every draw. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in 0..n (inclusive). */
static uint64_t rng_upto(uint64_t *s, uint64_t n) {
    return rng_next(s) % (n + 1);
}

static uint64_t realtime_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

__attribute__((format(printf, 1, 2), noreturn))
static void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mmws-sim: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "\nusage: mmws-sim [--host ADDR] [--port P] [--tls CERT KEY] "
            "[--rate N] [--size B]\n"
            "                [--count N] [--seed S] [--profiles D:J,...] "
            "[--max-age-ms MS]\n"
            "                [--control-port P]\n");
    exit(2);
}

/* Parses a decimal number in 0..max or exits 2. */
static uint64_t parse_num(const char *opt, const char *v, uint64_t max) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n > max) {
        fprintf(stderr, "mmws-sim: %s needs a number up to %" PRIu64
                        " (got \"%s\")\n", opt, max, v);
        exit(2);
    }
    return n;
}

/* Parses "d:j,d:j,..." into o->profiles or exits 2. */
static void parse_profiles(options *o, const char *v) {
    size_t n = 1;
    for (const char *p = v; *p; p++)
        if (*p == ',') n++;
    if (n > SIM_MAX_PROFILES) die_usage("too many profiles in \"%s\"", v);
    o->profiles = calloc(n, sizeof *o->profiles);
    if (!o->profiles) die_usage("out of memory for \"%s\"", v);
    const char *p = v;
    for (size_t i = 0; i < n; i++) {
        char *end;
        unsigned long d, j;
        errno = 0;
        d = strtoul(p, &end, 10);
        if (errno || end == p || *end != ':' || *p == '-' ||
            d > SIM_MAX_DELAY_US)
            die_usage("--profiles needs delay_us:jitter_us,... (got \"%s\")",
                      v);
        p = end + 1;
        j = strtoul(p, &end, 10);
        if (errno || end == p || (*end != ',' && *end != '\0') || *p == '-' ||
            j > SIM_MAX_DELAY_US)
            die_usage("--profiles needs delay_us:jitter_us,... (got \"%s\")",
                      v);
        o->profiles[i].delay_us = (uint32_t)d;
        o->profiles[i].jitter_us = (uint32_t)j;
        p = *end ? end + 1 : end;
    }
    o->nprofiles = n;
}

static void parse_args(options *o, int argc, char **argv) {
    o->host = "127.0.0.1";
    o->rate = 1000;
    o->size = 200;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--host") && more) o->host = argv[++i];
        else if (!strcmp(a, "--port") && more)
            o->port = (uint16_t)parse_num(a, argv[++i], 65535);
        else if (!strcmp(a, "--tls") && i + 2 < argc) {
            o->cert = argv[++i];
            o->key = argv[++i];
        } else if (!strcmp(a, "--rate") && more)
            o->rate = parse_num(a, argv[++i], SIM_MAX_RATE);
        else if (!strcmp(a, "--size") && more)
            o->size = (size_t)parse_num(a, argv[++i], SIM_MAX_SIZE);
        else if (!strcmp(a, "--count") && more)
            o->count = parse_num(a, argv[++i], UINT64_MAX);
        else if (!strcmp(a, "--seed") && more)
            o->seed = parse_num(a, argv[++i], UINT64_MAX);
        else if (!strcmp(a, "--profiles") && more) {
            free(o->profiles);
            parse_profiles(o, argv[++i]);
        } else if (!strcmp(a, "--max-age-ms") && more)
            o->max_age_ms = parse_num(a, argv[++i], UINT64_MAX / NS_PER_MS);
        else if (!strcmp(a, "--control-port") && more)
            o->control_port = (uint16_t)parse_num(a, argv[++i], 65535);
        else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            die_usage("%s", "help");
        else
            die_usage("unexpected argument \"%s\"", a);
    }
}

/* ----------------------------------------------------------- records -- */

static record *record_new(sim *s, uint64_t id) {
    record *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->id = id;
    r->live = 1;
    if (s->records_tail) s->records_tail->next = r;
    else s->records = r;
    s->records_tail = r;
    return r;
}

static void record_clear(record *r) {
    if (!r->msgs) return;
    for (size_t i = 0; i < r->count; i++)
        free(r->msgs[(r->head + i) % SIM_RECORD_MAX]);
    r->head = r->count = 0;
}

static void record_free(record *r) {
    record_clear(r);
    free(r->msgs);
    free(r);
}

/* Unlinks and frees r (prev is the record before it, or NULL). */
static void record_remove(sim *s, record *prev, record *r) {
    if (prev) prev->next = r->next;
    else s->records = r->next;
    if (s->records_tail == r) s->records_tail = prev;
    if (!r->live) s->closed_records--;
    record_free(r);
}

/* Keeps at most SIM_CLOSED_RECORDS records of closed connections. */
static void records_trim(sim *s) {
    record *prev = NULL, *r = s->records;
    while (r && s->closed_records > SIM_CLOSED_RECORDS) {
        record *nx = r->next;
        if (!r->live) record_remove(s, prev, r);
        else prev = r;
        r = nx;
    }
}

static void record_add(record *r, const uint8_t *p, size_t n) {
    if (!r->msgs) {
        r->msgs = calloc(SIM_RECORD_MAX, sizeof *r->msgs);
        if (!r->msgs) return;
    }
    size_t keep = n < SIM_RECORD_BYTES ? n : SIM_RECORD_BYTES;
    rmsg *m = malloc(sizeof *m + keep);
    if (!m) return;
    m->len = keep;
    m->full_len = n;
    memcpy(m->data, p, keep);
    if (r->count == SIM_RECORD_MAX) {
        free(r->msgs[r->head]);
        r->msgs[r->head] = m;
        r->head = (r->head + 1) % SIM_RECORD_MAX;
    } else {
        r->msgs[(r->head + r->count++) % SIM_RECORD_MAX] = m;
    }
}

static record *record_find(sim *s, uint64_t id, record **prev_out) {
    record *prev = NULL;
    for (record *r = s->records; r; prev = r, r = r->next) {
        if (r->id == id) {
            if (prev_out) *prev_out = prev;
            return r;
        }
    }
    return NULL;
}

/* ------------------------------------------------------- connections -- */

static void conn_update_events(conn *c) {
    if (c->dead) return;
    uint32_t ev = EPOLLRDHUP;
    if (!c->stalled) {
        ev |= EPOLLIN;
        if ((c->write_blocked && !c->write_wants_read) || c->hs_want_write)
            ev |= EPOLLOUT;
    }
    if (ev == c->events) return;
    struct epoll_event e = {.events = ev, .data.ptr = &c->h};
    if (epoll_ctl(c->sim->ep, EPOLL_CTL_MOD, c->fd, &e) == 0) c->events = ev;
}

/* Closes the socket (with an RST when rst) and moves c to the graveyard;
 * the memory is freed after the current batch of events. */
static void conn_destroy(conn *c, int rst) {
    sim *s = c->sim;
    if (c->dead) return;
    c->dead = 1;
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
    if (c->prev) c->prev->next = c->next;
    else s->head = c->next;
    if (c->next) c->next->prev = c->prev;
    else s->tail = c->prev;
    s->live--;
    if (c->rec) {
        c->rec->live = 0;
        s->closed_records++;
        c->rec = NULL;
        records_trim(s);
    }
    c->grave = s->grave;
    s->grave = c;
}

static void conn_free(conn *c) {
    free(c->in);
    free(c->out);
    free(c->due);
    free(c->ctl);
    free(c->frag);
    free(c);
}

static void free_grave(sim *s) {
    while (s->grave) {
        conn *c = s->grave;
        s->grave = c->grave;
        conn_free(c);
    }
}

/* 1 if need more bytes fit in out (control frames may use the reserve),
 * compacting first if that makes room. */
static int out_room(conn *c, size_t need, int control) {
    size_t limit = control ? c->out_cap : c->out_cap - SIM_OUT_RESERVE;
    if (c->out_len + need <= limit) return 1;
    if (c->out_off > 0) {
        /* TLS: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows the move. */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return c->out_len + need <= limit;
}

/* Appends an unmasked frame (header and payload) to out; the room must
 * have been checked. */
static void out_frame(conn *c, unsigned opcode, const void *p, size_t n) {
    uint8_t *o = c->out + c->out_len;
    size_t hl;
    o[0] = (uint8_t)(0x80u | opcode);
    if (n < 126) {
        o[1] = (uint8_t)n;
        hl = 2;
    } else if (n < 65536) {
        o[1] = 126;
        o[2] = (uint8_t)(n >> 8);
        o[3] = (uint8_t)n;
        hl = 4;
    } else {
        o[1] = 127;
        for (int i = 0; i < 8; i++)
            o[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    if (n) memcpy(o + hl, p, n);
    c->out_len += hl + n;
}

static void out_bytes(conn *c, const char *p, size_t n) {
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/*
 * Starts closing c: the stream and delayed frames are dropped, a CLOSE
 * with code (0: no status) and reason goes out after what is already in
 * out. wait_echo: keep reading until the client's CLOSE (bounded by
 * SIM_CLOSE_WAIT_NS); else the socket closes once out is flushed.
 */
static void conn_begin_close(conn *c, unsigned code, const char *reason,
                             int wait_echo) {
    if (c->dead || c->state == CS_CLOSING) return;
    int was_open = c->state == CS_OPEN;
    c->state = CS_CLOSING;
    c->stalled = 0;
    c->next_u = c->end_u;
    c->ctl_count = 0;
    c->frag_op = 0;
    c->close_after_flush = !wait_echo || !was_open;
    c->deadline_ns = c->sim->now + SIM_CLOSE_WAIT_NS;
    if (!was_open) return;
    uint8_t pl[125];
    size_t n = 0;
    if (code) {
        pl[0] = (uint8_t)(code >> 8);
        pl[1] = (uint8_t)code;
        n = 2;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > MMWS_CLOSE_MAX_REASON) rl = MMWS_CLOSE_MAX_REASON;
        if (rl) memcpy(pl + 2, reason, rl);
        n += rl;
    }
    if (!out_room(c, n + 2, 1)) {
        conn_destroy(c, 1);
        return;
    }
    out_frame(c, MMWS_OP_CLOSE, pl, n);
    conn_update_events(c);
}

/* A protocol failure: close with code, do not wait for the echo. */
static void conn_fail(conn *c, unsigned code, const char *reason) {
    conn_begin_close(c, code, reason, 0);
    c->in_len = 0;
}

/* Queues a frame to go out after the connection's delay. */
static void ctl_push(conn *c, unsigned opcode, const void *p, size_t n) {
    sim *s = c->sim;
    if (c->state != CS_OPEN || c->stalled) return;
    if (c->ctl_count == SIM_CTLQ) {
        conn_begin_close(c, MMWS_CLOSE_POLICY, "too many requests", 1);
        return;
    }
    uint64_t due = 0;
    if (s->rate) {
        due = s->now + c->prof.delay_us * NS_PER_US +
              rng_upto(&c->rng, c->prof.jitter_us) * NS_PER_US;
        if (due < c->ctl_last_due) due = c->ctl_last_due;
        c->ctl_last_due = due;
    }
    ctl_frame *f = &c->ctl[(c->ctl_head + c->ctl_count++) % SIM_CTLQ];
    f->due = due;
    f->opcode = (uint8_t)opcode;
    f->len = (uint8_t)(n > sizeof f->data ? sizeof f->data : n);
    if (f->len) memcpy(f->data, p, f->len);
}

/*
 * Moves the due frames (delayed control frames and stream messages, by due
 * time) into out. Returns 1 if it stopped because out is full, else 0.
 */
static int conn_fill(conn *c) {
    sim *s = c->sim;
    if (c->state != CS_OPEN || c->stalled) return 0;
    for (;;) {
        int have_s = c->next_u < c->end_u;
        uint64_t ds = have_s ? c->due[c->next_u & s->log_mask] : UINT64_MAX;
        uint64_t dc = c->ctl_count ? c->ctl[c->ctl_head].due : UINT64_MAX;
        if (c->ctl_count && dc <= s->now && dc <= ds) {
            ctl_frame *f = &c->ctl[c->ctl_head];
            if (!out_room(c, (size_t)f->len + 2, 1)) return 1;
            out_frame(c, f->opcode, f->data, f->len);
            c->ctl_head = (c->ctl_head + 1) % SIM_CTLQ;
            c->ctl_count--;
        } else if (have_s && ds <= s->now) {
            uint64_t i = c->next_u & s->log_mask;
            size_t n = s->slot_len[i];
            /* Stream data goes out SIM_FILL_BYTES at a time: a fuller
             * buffer only means more bytes to move when it is compacted
             * after a partial write (that memmove was a third of the
             * firehose's cost). */
            if (c->out_len - c->out_off >= SIM_FILL_BYTES) return 1;
            if (!out_room(c, n, 0)) return 1;
            memcpy(c->out + c->out_len,
                   s->arena + i * s->slot_cap + s->slot_off[i], n);
            c->out_len += n;
            c->sent++;
            c->last_u = c->next_u++;
        } else {
            return 0;
        }
    }
}

static int conn_flush_out(conn *c);

/* Writes out. Returns 0 (all written, or the socket is full), -1 on a
 * fatal error. */
static int conn_flush(conn *c) {
    c->write_blocked = c->write_wants_read = 0;
    /* TLS writes one record (16 KiB) per write(); with TCP_NODELAY each
     * became a segment of its own. Corked, a long flush goes out in full
     * segments, and the uncork at the end pushes the rest at once. */
    int cork = c->ssl && c->out_len - c->out_off > 16384u;
    if (cork) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    }
    int rc = conn_flush_out(c);
    if (cork) {
        int zero = 0;
        setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
    }
    return rc;
}

static int conn_flush_out(conn *c) {
    while (c->out_off < c->out_len) {
        size_t len = c->out_len - c->out_off;
        if (c->ssl) {
            ERR_clear_error();
            int n = SSL_write(c->ssl, c->out + c->out_off,
                              len > INT_MAX ? INT_MAX : (int)len);
            if (n > 0) {
                c->out_off += (size_t)n;
                continue;
            }
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                c->write_blocked = 1;
                c->write_wants_read = e == SSL_ERROR_WANT_READ;
                break;
            }
            return -1;
        }
        ssize_t n = send(c->fd, c->out + c->out_off, len, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->write_blocked = 1;
            break;
        }
        return -1;
    }
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    return 0;
}

/* Ends a connection whose close is done: TLS close_notify, then close. */
static void conn_finish(conn *c) {
    if (c->ssl) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
    }
    conn_destroy(c, 0);
}

/* Sends what is due, as long as the socket takes it. */
static void conn_pump(conn *c) {
    if (c->dead || c->stalled) return;
    for (int round = 0; round < 64; round++) {
        int more = conn_fill(c);
        if (conn_flush(c) != 0) {
            conn_destroy(c, 0);
            return;
        }
        if (c->write_blocked || !more) break;
    }
    if (c->close_after_flush && c->out_off == c->out_len) {
        conn_finish(c);
        return;
    }
    conn_update_events(c);
}

/* Deadlines: handshake and close bounds, max age. */
static void conn_tick(conn *c) {
    sim *s = c->sim;
    if (c->deadline_ns && s->now >= c->deadline_ns) {
        conn_destroy(c, 0);
        return;
    }
    if (s->o.max_age_ms && c->state == CS_OPEN && !c->stalled &&
        s->now - c->accepted_ns >= s->o.max_age_ms * NS_PER_MS)
        conn_begin_close(c, MMWS_CLOSE_NORMAL, "max age", 1);
}

/* -------------------------------------------------- venue behaviour -- */

/* Finds "key": in p and returns the offset of its value, or n. */
static size_t json_value(const uint8_t *p, size_t n, const char *key) {
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 2 <= n; i++) {
        if (p[i] != '"' || memcmp(p + i + 1, key, kl) != 0 ||
            p[i + 1 + kl] != '"')
            continue;
        size_t j = i + kl + 2;
        while (j < n && (p[j] == ' ' || p[j] == '\t' || p[j] == '\n' ||
                         p[j] == '\r'))
            j++;
        if (j >= n || p[j] != ':') continue;
        j++;
        while (j < n && (p[j] == ' ' || p[j] == '\t' || p[j] == '\n' ||
                         p[j] == '\r'))
            j++;
        return j;
    }
    return n;
}

/* Answers a Binance-style {"method":...,"id":...} request, if it is one. */
static void venue_request(conn *c, const uint8_t *p, size_t n) {
    size_t m = json_value(p, n, "method");
    if (m >= n || p[m] != '"') return;
    size_t me = m + 1;
    while (me < n && p[me] != '"') me++;
    if (me >= n) return;
    const char *method = (const char *)p + m + 1;
    size_t ml = me - m - 1;

    char id[72] = "null";
    size_t v = json_value(p, n, "id");
    if (v < n) {
        size_t e = v;
        if (p[v] == '"') {
            e = v + 1;
            while (e < n && p[e] != '"' && e - v < 64) e++;
            if (e < n && p[e] == '"') e++;
            else e = v;
        } else {
            while (e < n && e - v < 40 &&
                   ((p[e] >= '0' && p[e] <= '9') ||
                    (p[e] >= 'a' && p[e] <= 'z') || p[e] == '-' ||
                    p[e] == '+' || p[e] == '.'))
                e++;
        }
        if (e > v) {
            memcpy(id, p + v, e - v);
            id[e - v] = '\0';
        }
    }
    char reply[125];
    int rn;
    if ((ml == 9 && !memcmp(method, "SUBSCRIBE", 9)) ||
        (ml == 11 && !memcmp(method, "UNSUBSCRIBE", 11)))
        rn = snprintf(reply, sizeof reply, "{\"result\":null,\"id\":%s}", id);
    else if (ml == 18 && !memcmp(method, "LIST_SUBSCRIPTIONS", 18))
        rn = snprintf(reply, sizeof reply, "{\"result\":[],\"id\":%s}", id);
    else
        rn = snprintf(reply, sizeof reply,
                      "{\"error\":{\"code\":2,\"msg\":\"unknown method\"},"
                      "\"id\":%s}", id);
    if (rn > 0 && (size_t)rn < sizeof reply)
        ctl_push(c, MMWS_OP_TEXT, reply, (size_t)rn);
}

/* A whole message from the client. */
static void conn_message(conn *c, unsigned opcode, const uint8_t *p,
                         size_t n) {
    if (c->state != CS_OPEN) return;
    if (opcode == MMWS_OP_TEXT && mmws_utf8_check(p, n) != 0) {
        conn_fail(c, MMWS_CLOSE_INVALID_DATA, "invalid UTF-8");
        return;
    }
    c->received++;
    if (opcode != MMWS_OP_TEXT) return;
    if (c->rec) record_add(c->rec, p, n);
    venue_request(c, p, n);
}

/* The client's CLOSE: the echo of ours, or its own (echoed back). */
static void conn_on_close(conn *c, const uint8_t *p, size_t n) {
    unsigned code;
    const uint8_t *reason;
    size_t rl;
    if (mmws_close_parse(p, n, &code, &reason, &rl) != 0) {
        conn_fail(c, MMWS_CLOSE_PROTOCOL_ERROR, "bad close frame");
        return;
    }
    if (c->state == CS_CLOSING) {
        c->close_after_flush = 1;
        return;
    }
    conn_begin_close(c, code == MMWS_CLOSE_NO_STATUS ? 0 : code, NULL, 0);
}

static void conn_frame(conn *c, int fin, unsigned op, uint8_t *p, size_t n) {
    switch (op) {
    case MMWS_OP_TEXT:
    case MMWS_OP_BINARY:
        if (c->frag_op) {
            conn_fail(c, MMWS_CLOSE_PROTOCOL_ERROR,
                      "new message inside a fragmented one");
            return;
        }
        if (fin) {
            conn_message(c, op, p, n);
            return;
        }
        if (!c->frag) {
            c->frag = malloc(SIM_MAX_IN_FRAME);
            if (!c->frag) {
                conn_fail(c, MMWS_CLOSE_INTERNAL_ERROR, "out of memory");
                return;
            }
        }
        memcpy(c->frag, p, n);
        c->frag_len = n;
        c->frag_op = (uint8_t)op;
        return;
    case MMWS_OP_CONT:
        if (!c->frag_op) {
            conn_fail(c, MMWS_CLOSE_PROTOCOL_ERROR,
                      "continuation without a start");
            return;
        }
        if (c->frag_len + n > SIM_MAX_IN_FRAME) {
            conn_fail(c, MMWS_CLOSE_TOO_BIG, "message too big");
            return;
        }
        memcpy(c->frag + c->frag_len, p, n);
        c->frag_len += n;
        if (fin) {
            unsigned mop = c->frag_op;
            c->frag_op = 0;
            conn_message(c, mop, c->frag, c->frag_len);
            c->frag_len = 0;
        }
        return;
    case MMWS_OP_PING:
        ctl_push(c, MMWS_OP_PONG, p, n);
        return;
    case MMWS_OP_PONG:
        return;
    case MMWS_OP_CLOSE:
        conn_on_close(c, p, n);
        return;
    default:
        return;
    }
}

/* Parses the client frames in the read buffer. */
static void conn_frames(conn *c) {
    size_t off = 0;
    while (c->in_len - off >= 2) {
        uint8_t *b = c->in + off;
        size_t avail = c->in_len - off;
        int fin = b[0] >> 7;
        unsigned rsv = (b[0] >> 4) & 7u, op = b[0] & 15u;
        uint64_t len = b[1] & 127u;
        size_t hl = 2;
        if (rsv) {
            conn_fail(c, MMWS_CLOSE_PROTOCOL_ERROR, "RSV bits set");
            return;
        }
        if (!(b[1] & 0x80u)) {
            conn_fail(c, MMWS_CLOSE_PROTOCOL_ERROR, "unmasked client frame");
            return;
        }
        if (op > MMWS_OP_BINARY && op < MMWS_OP_CLOSE) op = 0xF;
        if (op > MMWS_OP_PONG) {
            conn_fail(c, MMWS_CLOSE_PROTOCOL_ERROR, "reserved opcode");
            return;
        }
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)b[2] << 8 | b[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | b[2 + i];
            hl = 10;
        }
        if (op >= MMWS_OP_CLOSE && (!fin || len > MMWS_CONTROL_MAX_PAYLOAD)) {
            conn_fail(c, MMWS_CLOSE_PROTOCOL_ERROR, "bad control frame");
            return;
        }
        if (len > SIM_MAX_IN_FRAME) {
            conn_fail(c, MMWS_CLOSE_TOO_BIG, "frame too big");
            return;
        }
        size_t total = hl + 4 + (size_t)len;
        if (avail < total) break;
        uint8_t key[4];
        memcpy(key, b + hl, 4);
        uint8_t *p = b + hl + 4;
        mmws_mask(p, (size_t)len, key, 0);
        off += total;
        conn_frame(c, fin, op, p, (size_t)len);
        if (c->dead || (c->state == CS_CLOSING && c->close_after_flush)) {
            c->in_len = 0;
            return;
        }
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

/* Refuses the upgrade with an HTTP error and closes after sending it. */
static void http_reject(conn *c, const char *status, const char *extra) {
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %s\r\nContent-Length: 0\r\n%sConnection: "
                     "close\r\n\r\n", status, extra);
    c->in_len = 0;
    if (n > 0 && (size_t)n < sizeof buf && out_room(c, (size_t)n, 1))
        out_bytes(c, buf, (size_t)n);
    conn_begin_close(c, 0, NULL, 0);
}

/* Case-insensitive search for word in [p, p+n). */
static int has_token(const char *p, size_t n, const char *word) {
    size_t wl = strlen(word);
    for (size_t i = 0; i + wl <= n; i++)
        if (strncasecmp(p + i, word, wl) == 0) return 1;
    return 0;
}

/*
 * The upgrade request. Returns 1 once upgraded (leftover bytes stay in the
 * read buffer), 0 if more bytes are needed or the request was refused.
 */
static int conn_http(conn *c) {
    sim *s = c->sim;
    uint8_t *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) {
        if (c->in_len >= SIM_HTTP_MAX)
            http_reject(c, "431 Request Header Fields Too Large", "");
        return 0;
    }
    size_t hlen = (size_t)(end - c->in) + 4;
    const char *req = (const char *)c->in;
    if (hlen > SIM_HTTP_MAX || hlen < 4 || memcmp(req, "GET ", 4) != 0) {
        http_reject(c, "400 Bad Request", "");
        return 0;
    }
    char key[64] = "";
    size_t klen = 0;
    int upgrade = 0, version = 0;
    const char *line = memmem(req, hlen, "\r\n", 2);
    const char *stop = req + hlen - 2;
    while (line && line < stop) {
        line += 2;
        const char *eol = memmem(line, (size_t)(stop - line) + 2, "\r\n", 2);
        if (!eol || eol == line) break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t vl = (size_t)(ve - v);
            if (nl == 7 && !strncasecmp(line, "upgrade", 7))
                upgrade = has_token(v, vl, "websocket");
            else if (nl == 17 && !strncasecmp(line, "sec-websocket-key", 17)) {
                if (vl < sizeof key) {
                    memcpy(key, v, vl);
                    key[vl] = '\0';
                    klen = vl;
                }
            } else if (nl == 21 &&
                       !strncasecmp(line, "sec-websocket-version", 21))
                version = vl == 2 && !memcmp(v, "13", 2);
        }
        line = eol;
    }
    if (!upgrade || !klen) {
        http_reject(c, "400 Bad Request", "");
        return 0;
    }
    if (!version) {
        http_reject(c, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
        return 0;
    }
    char accept[MMWS_HS_ACCEPT_LEN + 1];
    if (mmws_handshake_accept(key, klen, accept) != 0) {
        http_reject(c, "500 Internal Server Error", "");
        return 0;
    }
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
                     "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s"
                     "\r\n\r\n", accept);
    if (n <= 0 || (size_t)n >= sizeof resp || !out_room(c, (size_t)n, 1)) {
        conn_destroy(c, 1);
        return 0;
    }
    c->due = malloc(s->log_cap * sizeof *c->due);
    if (!c->due) {
        http_reject(c, "503 Service Unavailable", "");
        return 0;
    }
    out_bytes(c, resp, (size_t)n);
    memmove(c->in, c->in + hlen, c->in_len - hlen);
    c->in_len -= hlen;
    c->state = CS_OPEN;
    c->deadline_ns = 0;
    c->next_u = c->end_u = s->generated + 1;
    c->last_due = 0;
    return 1;
}

static void conn_process(conn *c) {
    if (c->state == CS_HTTP && !conn_http(c)) return;
    if (c->dead) return;
    if (c->state == CS_CLOSING && c->close_after_flush) {
        c->in_len = 0;
        return;
    }
    conn_frames(c);
}

/* Reads what the socket has (TLS: until OpenSSL wants more). */
static void conn_on_readable(conn *c) {
    for (;;) {
        if (c->dead) return;
        size_t room = SIM_IN_CAP - c->in_len;
        if (room == 0) {
            conn_fail(c, MMWS_CLOSE_TOO_BIG, "frame too big");
            return;
        }
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, c->in + c->in_len, (int)room);
            if (r > 0) {
                n = r;
            } else {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    break;
                n = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
            }
        } else {
            n = recv(c->fd, c->in + c->in_len, room, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        }
        if (n <= 0) {
            conn_destroy(c, 0);
            return;
        }
        c->in_len += (size_t)n;
        conn_process(c);
        if (!c->ssl && (size_t)n < room) break;
    }
    /* A TLS write that waited for readability can go on now. */
    if (c->write_wants_read) conn_pump(c);
}

static void conn_tls_handshake(conn *c) {
    ERR_clear_error();
    int r = SSL_accept(c->ssl);
    if (r == 1) {
        c->state = CS_HTTP;
        c->hs_want_write = 0;
        conn_update_events(c);
        conn_on_readable(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->hs_want_write = e == SSL_ERROR_WANT_WRITE;
        conn_update_events(c);
        return;
    }
    conn_destroy(c, 0);
}

static void conn_on_event(conn *c, uint32_t ev) {
    if (c->stalled) {
        if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) conn_destroy(c, 0);
        return;
    }
    if (c->state == CS_TLS) {
        conn_tls_handshake(c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) conn_on_readable(c);
    if (!c->dead && (ev & EPOLLOUT)) conn_pump(c);
}

static void conn_accept(sim *s, int fd, const struct sockaddr_storage *ss) {
    conn *c = calloc(1, sizeof *c);
    size_t out_cap = SIM_OUT_MIN;
    if (out_cap < 2 * s->slot_cap + SIM_OUT_RESERVE)
        out_cap = 2 * s->slot_cap + SIM_OUT_RESERVE;
    if (c) {
        c->in = malloc(SIM_IN_CAP);
        c->out = malloc(out_cap);
        c->ctl = malloc(SIM_CTLQ * sizeof *c->ctl);
    }
    if (!c || !c->in || !c->out || !c->ctl) {
        if (c) conn_free(c);
        close(fd);
        return;
    }
    c->h.kind = HK_CONN;
    c->sim = s;
    c->fd = fd;
    c->out_cap = out_cap;
    c->id = ++s->next_id;
    c->accepted_ns = s->now;
    c->deadline_ns = s->now + SIM_HANDSHAKE_NS;
    if (s->o.nprofiles) {
        c->prof = s->o.profiles[s->profile_rr++ % s->o.nprofiles];
    } else {
        c->prof.delay_us = (uint32_t)rng_upto(&s->prof_rng, 2000);
        c->prof.jitter_us = (uint32_t)rng_upto(&s->prof_rng, 1000);
    }
    c->rng = s->o.seed ^ (c->id * 0xD6E8FEB86659FD93ull);
    (void)rng_next(&c->rng);
    const void *sa = ss;
    if (ss->ss_family == AF_INET)
        c->port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    else if (ss->ss_family == AF_INET6)
        c->port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (s->tls) {
        c->ssl = SSL_new(s->tls);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
            if (c->ssl) SSL_free(c->ssl);
            conn_free(c);
            close(fd);
            return;
        }
        SSL_set_accept_state(c->ssl);
        c->state = CS_TLS;
    } else {
        c->state = CS_HTTP;
    }
    c->events = EPOLLIN | EPOLLRDHUP;
    struct epoll_event e = {.events = c->events, .data.ptr = &c->h};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        if (c->ssl) SSL_free(c->ssl);
        conn_free(c);
        close(fd);
        return;
    }
    c->rec = record_new(s, c->id);
    c->prev = s->tail;
    if (s->tail) s->tail->next = c;
    else s->head = c;
    s->tail = c;
    s->live++;
    s->conns_total++;
}

static void on_accept(sim *s) {
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;
        }
        conn_accept(s, fd, &ss);
    }
}

/* -------------------------------------------------------- generation -- */

/* Two decimal digits per entry, "00".."99": the formatter below. */
static const char sim_digits2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Writes v in decimal at p (no terminator); returns the end. The message
 * hot path: snprintf was most of the firehose's cost. */
static char *put_u64(char *p, uint64_t v) {
    size_t n = 1;
    for (uint64_t t = v; t >= 10; t /= 10) n++;
    char *q = p + n;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2u;
        v /= 100;
        *--q = sim_digits2[d + 1];
        *--q = sim_digits2[d];
    }
    if (v >= 10) {
        unsigned d = (unsigned)v * 2u;
        *--q = sim_digits2[d + 1];
        *--q = sim_digits2[d];
    } else {
        *--q = (char)('0' + v);
    }
    return p + n;
}

/* Writes v / 10^places "." v % 10^places (places 2 or 3; v >= 0). */
static char *put_fixed(char *p, uint64_t v, unsigned places) {
    uint64_t scale = places == 2 ? 100u : 1000u;
    uint64_t frac = v % scale;
    p = put_u64(p, v / scale);
    *p++ = '.';
    if (places == 3) {
        *p++ = (char)('0' + frac / 100);
        frac %= 100;
    }
    p[0] = sim_digits2[frac * 2];
    p[1] = sim_digits2[frac * 2 + 1];
    return p + 2;
}

/* Appends the literal string lit (a string literal) at p. */
#define PUT_LIT(p, lit)                                                    \
    (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

/*
 * Makes message u = generated + 1 and queues it on every open stream.
 * ts and t_ms: the CLOCK_MONOTONIC ns and the epoch ms it carries ("ts"
 * and "T"); 0 reads the clocks now. The firehose passes one reading for
 * a whole batch generated together (see generate()).
 */
static void gen_one(sim *s, uint64_t ts, uint64_t t_ms) {
    uint64_t u = s->generated + 1;
    uint64_t i = u & s->log_mask;
    /* A connection that still owes the message in this slot is too slow. */
    for (conn *c = s->head, *nx; c; c = nx) {
        nx = c->next;
        if (c->state == CS_OPEN && !c->stalled &&
            c->end_u - c->next_u >= s->log_cap) {
            s->slow_closed++;
            conn_begin_close(c, MMWS_CLOSE_POLICY, "too slow", 1);
        }
    }
    s->mid_cents += (int64_t)rng_upto(&s->rng, 4) - 2;
    if (s->mid_cents < 100) s->mid_cents = 100;
    int64_t bid = s->mid_cents;
    int64_t ask = bid + 1 + (int64_t)rng_upto(&s->rng, 2);
    uint64_t bq = 1 + rng_upto(&s->rng, 9999), aq = 1 + rng_upto(&s->rng, 9999);

    uint8_t *slot = s->arena + i * s->slot_cap;
    char *p = (char *)slot + SIM_HDR_ROOM;
    size_t cap = s->slot_cap - SIM_HDR_ROOM;
    if (!ts) ts = mmws_now_ns();
    if (!t_ms) t_ms = realtime_ms();
    /* The fields up to "p" take at most 22 + 20 + 20 + 23 + 7 + 6 + 7 + 23
     * + 7 + 6 + 58 = 199 bytes, and the fixed-size copies below write at
     * most 205: well inside the slot's SIM_SLOT_EXTRA. */
    if (u == s->u_val + 1 && s->u_len) {
        /* Decimal increment of the text in place. */
        size_t k = s->u_len;
        while (k > 0 && s->u_txt[k - 1] == '9') s->u_txt[--k] = '0';
        if (k > 0) {
            s->u_txt[k - 1]++;
        } else {
            memmove(s->u_txt + 1, s->u_txt, s->u_len);
            s->u_txt[0] = '1';
            s->u_len++;
        }
    } else {
        s->u_len = (size_t)(put_u64(s->u_txt, u) - s->u_txt);
    }
    s->u_val = u;
    if (!s->tail_len || ts != s->tail_ts || t_ms != s->tail_ms) {
        char *t = s->tail_txt;
        PUT_LIT(t, "\",\"T\":");
        t = put_u64(t, t_ms);
        PUT_LIT(t, ",\"ts\":");
        t = put_u64(t, ts);
        PUT_LIT(t, ",\"p\":\"");
        s->tail_len = (size_t)(t - s->tail_txt);
        s->tail_ts = ts;
        s->tail_ms = t_ms;
    }
    char *w = p;
    PUT_LIT(w, "{\"e\":\"bookTicker\",\"u\":");
    memcpy(w, s->u_txt, 20); /* u_txt has room; only u_len bytes count */
    w += s->u_len;
    PUT_LIT(w, ",\"s\":\"BTCUSDT\",\"b\":\"");
    w = put_fixed(w, (uint64_t)bid, 2);
    PUT_LIT(w, "\",\"B\":\"");
    w = put_fixed(w, bq, 3);
    PUT_LIT(w, "\",\"a\":\"");
    w = put_fixed(w, (uint64_t)ask, 2);
    PUT_LIT(w, "\",\"A\":\"");
    w = put_fixed(w, aq, 3);
    memcpy(w, s->tail_txt, 64); /* fixed size: inlined; tail_len count */
    w += s->tail_len;
    size_t len = (size_t)(w - p);
    size_t pad = s->o.size > len + 2 ? s->o.size - len - 2 : 0;
    if (pad > cap - len - 2) pad = cap - len - 2;
    memset(p + len, 'x', pad);
    len += pad;
    p[len++] = '"';
    p[len++] = '}';
    size_t hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
    uint8_t *f = (uint8_t *)p - hl;
    f[0] = 0x80u | MMWS_OP_TEXT;
    if (hl == 2) {
        f[1] = (uint8_t)len;
    } else if (hl == 4) {
        f[1] = 126;
        f[2] = (uint8_t)(len >> 8);
        f[3] = (uint8_t)len;
    } else {
        f[1] = 127;
        for (int k = 0; k < 8; k++)
            f[2 + k] = (uint8_t)((uint64_t)len >> (56 - 8 * k));
    }
    s->slot_off[i] = (uint32_t)(SIM_HDR_ROOM - hl);
    s->slot_len[i] = (uint32_t)(hl + len);
    s->generated = u;

    for (conn *c = s->head; c; c = c->next) {
        if (c->state != CS_OPEN || c->stalled) continue;
        uint64_t due = 0;
        if (s->rate) {
            due = ts + c->prof.delay_us * NS_PER_US +
                  rng_upto(&c->rng, c->prof.jitter_us) * NS_PER_US;
            if (due < c->last_due) due = c->last_due;
            c->last_due = due;
        }
        c->due[i] = due;
        c->end_u = u + 1;
    }
}

static int gen_active(const sim *s) {
    return !s->paused && !(s->o.count && s->generated >= s->o.count);
}

/* Firehose: how many messages may be made now (the smallest headroom of
 * the open streams), 0 when none is open. */
static uint64_t firehose_room(const sim *s) {
    uint64_t room = 0;
    int any = 0;
    for (const conn *c = s->head; c; c = c->next) {
        if (c->state != CS_OPEN || c->stalled) continue;
        uint64_t q = c->end_u - c->next_u;
        uint64_t r = q >= SIM_FIREHOSE_BACKLOG ? 0 : SIM_FIREHOSE_BACKLOG - q;
        room = any ? min_u64(room, r) : r;
        any = 1;
    }
    return room;
}

static uint64_t gen_time(const sim *s, uint64_t k) {
    return s->gen_base_ns +
           (uint64_t)((double)k * (double)NS_PER_S / (double)s->rate);
}

static void gen_rebase(sim *s) {
    s->gen_base_ns = mmws_now_ns();
    s->gen_k = 0;
}

static void generate(sim *s) {
    if (!gen_active(s)) return;
    if (s->rate == 0) {
        uint64_t room = firehose_room(s);
        /* One clock reading for the batch: every message made here gets
         * the same "ts" and "T" (they are made within microseconds; a
         * reading per message was a tenth of the firehose's cost). */
        uint64_t ts = room ? mmws_now_ns() : 0, t_ms = room ? realtime_ms() : 0;
        for (uint64_t k = 0; k < room && gen_active(s); k++)
            gen_one(s, ts, t_ms);
        return;
    }
    for (unsigned k = 0; k < SIM_GEN_BATCH; k++) {
        if (!gen_active(s) || gen_time(s, s->gen_k) > s->now) return;
        gen_one(s, 0, 0);
        s->gen_k++;
    }
    /* Still behind (the process was descheduled): skip the backlog. */
    if (gen_time(s, s->gen_k) <= s->now) gen_rebase(s);
}

/* ------------------------------------------------------ control port -- */

/* Makes room for n more reply bytes; returns where they go, or NULL. */
static char *ctl_reserve(ctl_client *cc, size_t n) {
    size_t need = cc->out_len + n + 1;
    if (need > SIM_CTL_OUT_MAX) return NULL;
    if (need > cc->out_cap) {
        size_t cap = cc->out_cap ? cc->out_cap : 4096;
        while (cap < need) cap *= 2;
        char *o = realloc(cc->out, cap);
        if (!o) return NULL;
        cc->out = o;
        cc->out_cap = cap;
    }
    return cc->out + cc->out_len;
}

__attribute__((format(printf, 2, 3)))
static void ctl_printf(ctl_client *cc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *o = n < 0 ? NULL : ctl_reserve(cc, (size_t)n);
    if (!o) return;
    va_start(ap, fmt);
    vsnprintf(o, (size_t)n + 1, fmt, ap);
    va_end(ap);
    cc->out_len += (size_t)n;
}

static void ctl_free(sim *s, ctl_client *cc) {
    for (int i = 0; i < SIM_MAX_CTL_CLIENTS; i++)
        if (s->ctls[i] == cc) s->ctls[i] = NULL;
    if (cc->fd >= 0) {
        epoll_ctl(s->ep, EPOLL_CTL_DEL, cc->fd, NULL);
        close(cc->fd);
    }
    free(cc->out);
    free(cc);
}

static void ctl_flush(sim *s, ctl_client *cc) {
    while (cc->out_off < cc->out_len) {
        ssize_t n = send(cc->fd, cc->out + cc->out_off,
                         cc->out_len - cc->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            cc->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        cc->dead = 1;
        return;
    }
    if (cc->out_off == cc->out_len) {
        cc->out_off = cc->out_len = 0;
        if (cc->quit) {
            cc->dead = 1;
            return;
        }
    }
    uint32_t ev = (cc->eof ? 0u : EPOLLIN) | (cc->out_len ? EPOLLOUT : 0u);
    if (ev != cc->events) {
        struct epoll_event e = {.events = ev, .data.ptr = &cc->h};
        if (epoll_ctl(s->ep, EPOLL_CTL_MOD, cc->fd, &e) == 0) cc->events = ev;
    }
}

static conn *conn_by_id(sim *s, uint64_t id) {
    for (conn *c = s->head; c; c = c->next)
        if (c->id == id) return c;
    return NULL;
}

static const char *conn_state_name(const conn *c) {
    if (c->stalled) return "stalled";
    switch (c->state) {
    case CS_TLS: return "tls";
    case CS_HTTP: return "http";
    case CS_OPEN: return "open";
    case CS_CLOSING: return "closing";
    }
    return "?";
}

/* Parses a connection id; 0 if it is not a number. */
static uint64_t parse_id(const char *v) {
    char *end;
    if (!v || !*v || *v == '-') return 0;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    return errno || *end ? 0 : n;
}

static void ctl_received(ctl_client *cc, const record *r) {
    if (!r->msgs) return;
    for (size_t k = 0; k < r->count; k++) {
        const rmsg *m = r->msgs[(r->head + k) % SIM_RECORD_MAX];
        /* Worst case: every byte escaped as \xHH. */
        char *o = ctl_reserve(cc, m->len * 4);
        if (!o) return;
        for (size_t j = 0; j < m->len; j++) {
            unsigned char ch = (unsigned char)m->data[j];
            if (ch < 0x20 || ch == 0x7f) {
                static const char hex[] = "0123456789abcdef";
                *o++ = '\\';
                *o++ = 'x';
                *o++ = hex[ch >> 4];
                *o++ = hex[ch & 15];
            } else {
                *o++ = (char)ch;
            }
        }
        cc->out_len = (size_t)(o - cc->out);
        if (m->full_len > m->len)
            ctl_printf(cc, "...(%zu bytes)", m->full_len);
        ctl_printf(cc, "\n");
    }
}

static void ctl_command(sim *s, ctl_client *cc, char *line) {
    char *argv[4] = {NULL, NULL, NULL, NULL};
    int argc = 0;
    char *p = line;
    while (argc < 4) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        argv[argc++] = p;
        if (argc == 4) break; /* the rest of the line (a close reason) */
        while (*p && *p != ' ' && *p != '\t') p++;
        if (*p) *p++ = '\0';
    }
    if (argc == 0) return;
    const char *cmd = argv[0];
    int only1 = argc == 1, only2 = argc == 2;
    if (!strcmp(cmd, "list") && only1) {
        for (conn *c = s->head; c; c = c->next)
            ctl_printf(cc,
                       "conn %" PRIu64 " port=%u age_ms=%" PRIu64
                       " delay_us=%u jitter_us=%u sent=%" PRIu64
                       " received=%" PRIu64 " last_u=%" PRIu64 " state=%s\n",
                       c->id, c->port,
                       (uint64_t)((s->now - c->accepted_ns) / NS_PER_MS),
                       c->prof.delay_us, c->prof.jitter_us, c->sent,
                       c->received, c->last_u, conn_state_name(c));
    } else if (!strcmp(cmd, "kill") && only2) {
        conn *c = NULL;
        if (!strcmp(argv[1], "random")) {
            if (s->live) {
                uint64_t k = rng_upto(&s->ctl_rng, s->live - 1);
                for (c = s->head; c && k; c = c->next) k--;
            }
            if (!c) {
                ctl_printf(cc, "error no live connection\nend\n");
                return;
            }
        } else if (!(c = conn_by_id(s, parse_id(argv[1])))) {
            ctl_printf(cc, "error no live connection %s\nend\n", argv[1]);
            return;
        }
        ctl_printf(cc, "ok %" PRIu64 "\n", c->id);
        conn_destroy(c, 1);
    } else if (!strcmp(cmd, "close") && argc >= 3) {
        conn *c = conn_by_id(s, parse_id(argv[1]));
        uint64_t code = parse_id(argv[2]);
        if (!c) {
            ctl_printf(cc, "error no live connection %s\nend\n", argv[1]);
            return;
        }
        if (!mmws_close_code_valid_recv((unsigned)code) || code > 4999) {
            ctl_printf(cc, "error close code %s cannot be sent\nend\n",
                       argv[2]);
            return;
        }
        const char *reason = argc == 4 ? argv[3] : NULL;
        if (reason && (strlen(reason) > MMWS_CLOSE_MAX_REASON ||
                       mmws_utf8_check((const uint8_t *)reason,
                                       strlen(reason)) != 0)) {
            ctl_printf(cc, "error reason longer than 123 bytes or not "
                           "UTF-8\nend\n");
            return;
        }
        if (c->state != CS_OPEN) {
            ctl_printf(cc, "error connection %" PRIu64 " is %s\nend\n", c->id,
                       conn_state_name(c));
            return;
        }
        conn_begin_close(c, (unsigned)code, reason, 1);
        ctl_printf(cc, "ok\n");
    } else if (!strcmp(cmd, "stall") && only2) {
        conn *c = conn_by_id(s, parse_id(argv[1]));
        if (!c || c->state != CS_OPEN) {
            ctl_printf(cc, "error no open connection %s\nend\n", argv[1]);
            return;
        }
        c->stalled = 1;
        c->next_u = c->end_u;
        c->ctl_count = 0;
        conn_update_events(c);
        ctl_printf(cc, "ok\n");
    } else if (!strcmp(cmd, "received") && only2) {
        record *r = record_find(s, parse_id(argv[1]), NULL);
        if (!r) {
            ctl_printf(cc, "error no record of connection %s\nend\n", argv[1]);
            return;
        }
        ctl_received(cc, r);
    } else if (!strcmp(cmd, "forget") && only2) {
        if (!strcmp(argv[1], "all")) {
            record *prev = NULL, *r = s->records;
            while (r) {
                record *nx = r->next;
                if (r->live) {
                    record_clear(r);
                    prev = r;
                } else {
                    record_remove(s, prev, r);
                }
                r = nx;
            }
        } else {
            record *prev = NULL;
            record *r = record_find(s, parse_id(argv[1]), &prev);
            if (!r) {
                ctl_printf(cc, "error no record of connection %s\nend\n",
                           argv[1]);
                return;
            }
            if (r->live) record_clear(r);
            else record_remove(s, prev, r);
        }
        ctl_printf(cc, "ok\n");
    } else if (!strcmp(cmd, "stats") && only1) {
        ctl_printf(cc,
                   "generated=%" PRIu64 " connections_total=%" PRIu64
                   " live=%zu slow_closed=%" PRIu64 " rate=%" PRIu64
                   " paused=%d\n",
                   s->generated, s->conns_total, s->live, s->slow_closed,
                   s->rate, s->paused);
    } else if (!strcmp(cmd, "rate") && only2) {
        char *end;
        errno = 0;
        unsigned long long r = strtoull(argv[1], &end, 10);
        if (errno || *end || argv[1][0] == '-' || r > SIM_MAX_RATE) {
            ctl_printf(cc, "error rate needs a number up to %llu (got %s)\n"
                           "end\n", (unsigned long long)SIM_MAX_RATE, argv[1]);
            return;
        }
        s->rate = r;
        gen_rebase(s);
        ctl_printf(cc, "ok\n");
    } else if (!strcmp(cmd, "pause") && only1) {
        s->paused = 1;
        ctl_printf(cc, "ok\n");
    } else if (!strcmp(cmd, "resume") && only1) {
        if (s->paused) gen_rebase(s);
        s->paused = 0;
        ctl_printf(cc, "ok\n");
    } else if (!strcmp(cmd, "help") && only1) {
        ctl_printf(cc, "list | kill ID|random | close ID CODE [REASON] | "
                       "stall ID | received ID | forget ID|all | stats | "
                       "rate N | pause | resume | quit\n");
    } else if (!strcmp(cmd, "quit") && only1) {
        ctl_printf(cc, "ok\n");
        cc->quit = 1;
    } else {
        static const char *const known[] = {
            "list", "kill", "close", "stall", "received", "forget",
            "stats", "rate", "pause", "resume", "help", "quit"};
        int k = 0;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            if (!strcmp(cmd, known[i])) k = 1;
        if (k)
            ctl_printf(cc, "error wrong arguments for %s (try help)\n", cmd);
        else
            ctl_printf(cc, "error unknown command \"%.64s\" (try help)\n",
                       cmd);
    }
    ctl_printf(cc, "end\n");
}

static void ctl_on_readable(sim *s, ctl_client *cc) {
    for (;;) {
        ssize_t n = recv(cc->fd, cc->in + cc->in_len,
                         sizeof cc->in - cc->in_len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n == 0) {
            /* The client is done sending ("echo list | nc"): answer what
             * came, a last line without its newline too, then close. */
            if (cc->in_len && !cc->overflow && !cc->quit) {
                cc->in[cc->in_len] = '\0'; /* in_len < sizeof in here */
                ctl_command(s, cc, cc->in);
            }
            cc->in_len = 0;
            cc->eof = cc->quit = 1;
            break;
        }
        if (n < 0) {
            cc->dead = 1;
            return;
        }
        cc->in_len += (size_t)n;
        char *start = cc->in;
        char *nl;
        while ((nl = memchr(start, '\n',
                            cc->in_len - (size_t)(start - cc->in)))) {
            *nl = '\0';
            if (nl > start && nl[-1] == '\r') nl[-1] = '\0';
            if (cc->overflow) {
                ctl_printf(cc, "error line longer than %u bytes\nend\n",
                           SIM_CTL_LINE - 1);
                cc->overflow = 0;
            } else if (!cc->quit) {
                ctl_command(s, cc, start);
            }
            start = nl + 1;
        }
        size_t left = cc->in_len - (size_t)(start - cc->in);
        memmove(cc->in, start, left);
        cc->in_len = left;
        if (cc->in_len == sizeof cc->in) {
            cc->overflow = 1;
            cc->in_len = 0;
        }
    }
    ctl_flush(s, cc);
}

static void on_ctl_accept(sim *s) {
    for (;;) {
        int fd = accept4(s->cfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;
        }
        int slot = -1;
        for (int i = 0; i < SIM_MAX_CTL_CLIENTS; i++)
            if (!s->ctls[i]) {
                slot = i;
                break;
            }
        ctl_client *cc = slot >= 0 ? calloc(1, sizeof *cc) : NULL;
        if (!cc) {
            static const char busy[] = "error too many control clients\nend\n";
            (void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
            close(fd);
            continue;
        }
        cc->h.kind = HK_CTL;
        cc->fd = fd;
        cc->events = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &cc->h};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            close(fd);
            free(cc);
            continue;
        }
        s->ctls[slot] = cc;
    }
}

/* -------------------------------------------------------------- setup -- */

static int listen_on(const char *host, uint16_t port, uint16_t *bound) {
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        sl = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        sl = sizeof *v6;
    } else {
        fprintf(stderr, "mmws-sim: --host needs a numeric address (got "
                        "\"%s\")\n", host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0) {
        fprintf(stderr, "mmws-sim: socket: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0) {
        fprintf(stderr, "mmws-sim: listen on %s port %u: %s\n", host, port,
                strerror(errno));
        close(fd);
        return -1;
    }
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    return fd;
}

static int tls_setup(sim *s) {
    s->tls = SSL_CTX_new(TLS_server_method());
    if (!s->tls) goto fail;
    SSL_CTX_set_min_proto_version(s->tls, TLS1_2_VERSION);
    SSL_CTX_set_mode(s->tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(s->tls, s->o.cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->tls, s->o.key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s->tls) != 1)
        goto fail;
    return 0;
fail: {
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof err);
    fprintf(stderr, "mmws-sim: TLS with %s and %s: %s\n", s->o.cert, s->o.key,
            err);
    return -1;
}
}

/* Sizes and allocates the message log. */
static int log_setup(sim *s) {
    s->slot_cap = s->o.size + SIM_SLOT_EXTRA;
    uint64_t cap = SIM_LOG_MAX;
    while (cap > SIM_LOG_MIN && cap * s->slot_cap > SIM_LOG_BYTES) cap /= 2;
    s->log_cap = cap;
    s->log_mask = cap - 1;
    s->arena = malloc(cap * s->slot_cap);
    s->slot_off = calloc(cap, sizeof *s->slot_off);
    s->slot_len = calloc(cap, sizeof *s->slot_len);
    if (!s->arena || !s->slot_off || !s->slot_len) {
        fprintf(stderr, "mmws-sim: out of memory for the message log\n");
        return -1;
    }
    return 0;
}

static int add_fd(sim *s, int fd, handle *h, hkind kind) {
    h->kind = kind;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = h};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        fprintf(stderr, "mmws-sim: epoll_ctl: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int setup(sim *s) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    /* Precise wake-ups for the microsecond profiles. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->sfd < 0 || s->ep < 0 || s->tfd < 0) {
        fprintf(stderr, "mmws-sim: setup: %s\n", strerror(errno));
        return -1;
    }
    if (s->o.cert && tls_setup(s) != 0) return -1;
    if (log_setup(s) != 0) return -1;
    uint16_t port, cport;
    s->lfd = listen_on(s->o.host, s->o.port, &port);
    if (s->lfd < 0) return -1;
    s->cfd = listen_on("127.0.0.1", s->o.control_port, &cport);
    if (s->cfd < 0) return -1;
    if (add_fd(s, s->lfd, &s->h_listen, HK_LISTEN) ||
        add_fd(s, s->cfd, &s->h_ctl_listen, HK_CTL_LISTEN) ||
        add_fd(s, s->tfd, &s->h_timer, HK_TIMER) ||
        add_fd(s, s->sfd, &s->h_signal, HK_SIGNAL))
        return -1;
    s->rate = s->o.rate;
    s->rng = s->o.seed;
    s->prof_rng = s->o.seed ^ 0xA5A5A5A5A5A5A5A5ull;
    s->ctl_rng = s->o.seed ^ 0x5A5A5A5A5A5A5A5Aull;
    s->mid_cents = 6500000; /* 65000.00 */
    s->now = mmws_now_ns();
    gen_rebase(s);
    printf("LISTENING %u\nCONTROL %u\n", port, cport);
    fflush(stdout);
    return 0;
}

static void teardown(sim *s) {
    while (s->head) {
        conn *c = s->head;
        if (c->state == CS_OPEN && !c->stalled) {
            c->state = CS_CLOSING;
            static const uint8_t away[] = {1001 >> 8, 1001 & 0xff, 'b', 'y',
                                           'e'};
            if (out_room(c, sizeof away + 2, 1)) {
                out_frame(c, MMWS_OP_CLOSE, away, sizeof away);
                (void)conn_flush(c);
            }
        }
        conn_destroy(c, 0);
    }
    free_grave(s);
    for (int i = 0; i < SIM_MAX_CTL_CLIENTS; i++)
        if (s->ctls[i]) ctl_free(s, s->ctls[i]);
    while (s->records) record_remove(s, NULL, s->records);
    free(s->arena);
    free(s->slot_off);
    free(s->slot_len);
    SSL_CTX_free(s->tls);
    if (s->lfd >= 0) close(s->lfd);
    if (s->cfd >= 0) close(s->cfd);
    if (s->tfd >= 0) close(s->tfd);
    if (s->sfd >= 0) close(s->sfd);
    if (s->ep >= 0) close(s->ep);
    free(s->o.profiles);
}

/* --------------------------------------------------------------- loop -- */

/* The next moment something is due: UINT64_MAX for nothing, <= now for
 * at once. */
static uint64_t next_wake(sim *s) {
    uint64_t w = UINT64_MAX;
    if (gen_active(s)) {
        if (s->rate) w = gen_time(s, s->gen_k);
        else if (firehose_room(s)) return s->now;
    }
    for (conn *c = s->head; c; c = c->next) {
        if (c->deadline_ns) w = min_u64(w, c->deadline_ns);
        if (c->state != CS_OPEN || c->stalled) continue;
        if (s->o.max_age_ms)
            w = min_u64(w, c->accepted_ns + s->o.max_age_ms * NS_PER_MS);
        if (c->write_blocked) continue;
        if (c->next_u < c->end_u)
            w = min_u64(w, c->due[c->next_u & s->log_mask]);
        if (c->ctl_count) w = min_u64(w, c->ctl[c->ctl_head].due);
    }
    return w;
}

static void arm_timer(sim *s, uint64_t at) {
    if (at == s->armed_ns) return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)(at / NS_PER_S);
    its.it_value.tv_nsec = (long)(at % NS_PER_S);
    if (timerfd_settime(s->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        s->armed_ns = at;
}

static void dispatch(sim *s, handle *h, uint32_t ev) {
    switch (h->kind) {
    case HK_LISTEN:
        on_accept(s);
        break;
    case HK_CTL_LISTEN:
        on_ctl_accept(s);
        break;
    case HK_TIMER: {
        uint64_t x;
        (void)!read(s->tfd, &x, sizeof x);
        s->armed_ns = 0;
        break;
    }
    case HK_SIGNAL: {
        struct signalfd_siginfo si;
        while (read(s->sfd, &si, sizeof si) == (ssize_t)sizeof si) s->stop = 1;
        break;
    }
    case HK_CONN: {
        conn *c = (conn *)(void *)h;
        if (!c->dead) conn_on_event(c, ev);
        break;
    }
    case HK_CTL: {
        ctl_client *cc = (ctl_client *)(void *)h;
        if (cc->dead) break;
        if (!cc->eof && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            ctl_on_readable(s, cc);
        else if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            ctl_flush(s, cc);
        break;
    }
    }
}

static int run(sim *s) {
    struct epoll_event evs[64];
    while (!s->stop) {
        s->now = mmws_now_ns();
        generate(s);
        s->now = mmws_now_ns();
        for (conn *c = s->head, *nx; c; c = nx) {
            nx = c->next;
            conn_tick(c);
            conn_pump(c);
        }
        free_grave(s);
        uint64_t w = next_wake(s);
        int timeout = -1;
        if (w <= s->now) timeout = 0;
        else if (w != UINT64_MAX) arm_timer(s, w);
        int n = epoll_wait(s->ep, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "mmws-sim: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        s->now = mmws_now_ns();
        for (int i = 0; i < n; i++) dispatch(s, evs[i].data.ptr, evs[i].events);
        free_grave(s);
        for (int i = 0; i < SIM_MAX_CTL_CLIENTS; i++)
            if (s->ctls[i] && s->ctls[i]->dead) ctl_free(s, s->ctls[i]);
    }
    return 0;
}

int main(int argc, char **argv) {
    sim s;
    memset(&s, 0, sizeof s);
    s.ep = s.lfd = s.cfd = s.tfd = s.sfd = -1;
    parse_args(&s.o, argc, argv);
    int rc = setup(&s) == 0 ? run(&s) : 1;
    teardown(&s);
    return rc;
}
