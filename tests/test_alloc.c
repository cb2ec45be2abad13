/*
 * test_alloc.c — failing allocations (issue 5 §4): count the allocations
 * of a clean connect-receive-close run, then rerun failing each one in
 * turn. Every failure must surface as an error (or be absorbed without a
 * trace), never as a crash, a hang, a leaked block or a leaked fd.
 *
 * How allocations are caught:
 *  - mmws' own calls: this program links the static library with
 *    -Wl,--wrap=malloc,calloc,realloc,free,aligned_alloc (CMakeLists.txt),
 *    so they land in the __wrap_* functions below;
 *  - OpenSSL's: CRYPTO_set_mem_functions(), first thing in main;
 *  - c-ares': ares_library_init_mem() (the library's own
 *    ares_library_init only bumps the reference count afterwards).
 * Each wrapper counts the allocations of a run, fails exactly the n-th
 * (NULL, errno ENOMEM) and keeps a live-block count per origin, so a leak
 * shows as a count that does not return to its baseline after the run
 * (and, if unreachable, again as an LSan report at exit). The fd count
 * must return to its baseline too.
 *
 * Two passes, each failing every index 1..K of its clean run, no sampling:
 *   1. mmws + c-ares allocations (one numbering), every scenario;
 *   2. OpenSSL allocations, the conn scenarios (single and pool make the
 *      same per-connection OpenSSL calls, through the same tls.c code, so
 *      repeating ~4500 (single) and ~9000 (pool) runs would add minutes
 *      and no code path).
 *
 * Scenarios, each against a real server on loopback (Node's `ws`, else
 * Python's `websockets`), by host name ("localhost", so c-ares resolves it
 * from /etc/hosts), over ws:// and wss:// (verified against a PKI made at
 * test time):
 *   conn    mmws_conn, callback mode, auto_reconnect on;
 *   single  mmws_single, iteration mode, ring with the unique filter;
 *   pool    mmws_pool of 2 connections, iteration mode.
 * One run: loop, object, connect; on_connect asks for three distinct
 * messages (an echo, a 6000-byte message in 1000-byte fragments, a
 * 40000-byte one that outgrows the read buffer); receive them, close,
 * free. A run is bounded by RUN_DEADLINE_MS.
 *
 * Each rerun must: not crash; finish within RUN_DEADLINE_MS; have every
 * creation call return 0 or a negative MMWS_E* whose mmws_last_error()
 * names memory; have every connection drop carry a last_error sentence
 * and a negative code, and then recover (auto_reconnect, or the pool's
 * replacement) to receive all three messages; leave no block and no fd.
 * The summary counts reruns whose failure surfaced as an error (errors),
 * those among them that failed inside a connection which then recovered
 * (recovered), and those where the library or OpenSSL absorbed the
 * failure and carried on (absorbed: e.g. the pool retrying a slot on its
 * next tick, OpenSSL skipping a cache).
 *
 * OpenSSL and c-ares set up process-wide state on first use (providers,
 * error strings, caches) that lives until exit; a warm-up run of every
 * scenario does that before anything is counted, so the counted
 * allocations are the ones every connect-receive-close makes.
 *
 * Replaying one case: MMWS_ALLOC_ONLY="conn wss://" MMWS_ALLOC_PASS=1
 * MMWS_ALLOC_N=552 (any subset); MMWS_ALLOC_VERBOSE=1 prints every run.
 */
#include <ares.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "harness.h"
#include "test.h"

/* A run that takes longer than this is a hang (a clean one takes tens of
 * milliseconds; reconnects after an injected failure wait 1..10 ms). */
#define RUN_DEADLINE_MS 8000

/* ------------------------------------------------------ the allocator -- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
void *__wrap_aligned_alloc(size_t align, size_t n);

enum { O_MMWS, O_SSL, O_ARES, O_COUNT };
static const char *const origin_name[O_COUNT] = {"mmws", "OpenSSL",
                                                 "c-ares"};

static int a_armed;               /* count (and maybe fail) allocations */
static unsigned a_origins;        /* bit per origin counted (pass) */
static unsigned long a_seen;      /* allocations counted in this run */
static unsigned long a_fail_at;   /* 1-based index to fail; 0: none */
static int a_injected;            /* the failure happened in this run */
static int a_inj_origin;          /* where: origin ... */
static const void *a_inj_caller;  /* ... return address (mmws, c-ares) */
static const char *a_inj_file;    /* ... or OpenSSL's file and line */
static int a_inj_line;
static long long a_live[O_COUNT]; /* blocks allocated and not yet freed */
static unsigned long a_by_origin[O_COUNT]; /* counted per origin */

/* 1 if this allocation is the one to fail. Single-threaded: every mmws
 * object runs on the test's thread, and so do OpenSSL and c-ares. */
static int a_fail(int origin, const void *caller, const char *file,
                  int line) {
    if (!a_armed) return 0;
    a_by_origin[origin]++;
    if (!(a_origins & (1u << origin))) return 0;
    a_seen++;
    if (a_seen != a_fail_at) return 0;
    a_injected = 1;
    a_inj_origin = origin;
    a_inj_caller = caller;
    a_inj_file = file;
    a_inj_line = line;
    errno = ENOMEM;
    return 1;
}

void *__wrap_malloc(size_t n) {
    if (a_fail(O_MMWS, __builtin_return_address(0), NULL, 0)) return NULL;
    void *p = __real_malloc(n);
    if (p) a_live[O_MMWS]++;
    return p;
}

void *__wrap_calloc(size_t n, size_t size) {
    if (a_fail(O_MMWS, __builtin_return_address(0), NULL, 0)) return NULL;
    void *p = __real_calloc(n, size);
    if (p) a_live[O_MMWS]++;
    return p;
}

void *__wrap_aligned_alloc(size_t align, size_t n) {
    if (a_fail(O_MMWS, __builtin_return_address(0), NULL, 0)) return NULL;
    void *p = __real_aligned_alloc(align, n);
    if (p) a_live[O_MMWS]++;
    return p;
}

void *__wrap_realloc(void *p, size_t n) {
    if (a_fail(O_MMWS, __builtin_return_address(0), NULL, 0)) return NULL;
    void *q = __real_realloc(p, n);
    if (!p && q) a_live[O_MMWS]++;
    if (p && n == 0) a_live[O_MMWS]--; /* glibc frees p */
    return q;
}

void __wrap_free(void *p) {
    if (p) a_live[O_MMWS]--;
    __real_free(p);
}

/* OpenSSL's hooks. A size of 0 gets NULL, as OpenSSL's own CRYPTO_malloc
 * answers, without being counted. */
static void *ssl_malloc(size_t n, const char *file, int line) {
    if (n == 0) return NULL;
    if (a_fail(O_SSL, NULL, file, line)) return NULL;
    void *p = __real_malloc(n);
    if (p) a_live[O_SSL]++;
    return p;
}

static void *ssl_realloc(void *p, size_t n, const char *file, int line) {
    if (!p) return ssl_malloc(n, file, line);
    if (n == 0) {
        a_live[O_SSL]--;
        __real_free(p);
        return NULL;
    }
    if (a_fail(O_SSL, NULL, file, line)) return NULL;
    return __real_realloc(p, n);
}

static void ssl_free(void *p, const char *file, int line) {
    (void)file;
    (void)line;
    if (p) a_live[O_SSL]--;
    __real_free(p);
}

/* c-ares' hooks. */
static void *ares_malloc_hook(size_t n) {
    if (a_fail(O_ARES, __builtin_return_address(0), NULL, 0)) return NULL;
    void *p = __real_malloc(n);
    if (p) a_live[O_ARES]++;
    return p;
}

static void *ares_realloc_hook(void *p, size_t n) {
    if (a_fail(O_ARES, __builtin_return_address(0), NULL, 0)) return NULL;
    void *q = __real_realloc(p, n);
    if (!p && q) a_live[O_ARES]++;
    if (p && n == 0) a_live[O_ARES]--;
    return q;
}

static void ares_free_hook(void *p) {
    if (p) a_live[O_ARES]--;
    __real_free(p);
}

/* --------------------------------------------------------- scenarios -- */

typedef enum { S_CONN, S_SINGLE, S_POOL } scenario_kind;

typedef struct scenario {
    const char *name;
    scenario_kind kind;
    int tls;
} scenario;

static const scenario scenarios[] = {
    {"conn ws://", S_CONN, 0},     {"conn wss://", S_CONN, 1},
    {"single ws://", S_SINGLE, 0}, {"single wss://", S_SINGLE, 1},
    {"pool ws://", S_POOL, 0},     {"pool wss://", S_POOL, 1},
};
#define NSCEN (sizeof scenarios / sizeof scenarios[0])

/* What on_connect asks for: three distinct messages (distinct, so the
 * pool's duplicate filter delivers each once). */
#define HELLO "alloc-hello"
static const char *const subs[] = {
    HELLO,
    "#{\"cmd\":\"send\",\"count\":1,\"size\":6000,\"fragment\":1000}",
    "#{\"cmd\":\"send\",\"count\":1,\"size\":40000}",
};
#define ALL_MSGS 7u /* one bit per expected message */

static const char *server_kind;
static th_server srv_plain, srv_tls;
static char certs[256], ca[300];

/* One run's observations. */
typedef struct run_ctx {
    const scenario *sc;
    unsigned got;        /* bits of the expected messages received */
    int bad;             /* messages that were none of them */
    int closing;         /* the test closed: a drop now is expected */
    int conn_errors;     /* drops reported by the connection's state */
    int empty_errors;    /* ... with no last_error sentence */
    int bad_codes;       /* ... with no negative MMWS_E* code */
    char err[256];       /* the first drop's sentence */
} run_ctx;

/* The outcome of one run, for the summary. */
typedef enum {
    R_CLEAN,      /* everything worked, no error seen */
    R_ERROR,      /* a creation call returned an error */
    R_RECOVERED,  /* a connection failed and the run still completed */
    R_FAILED      /* the run did not complete (a check failed) */
} run_result;

/* Distinct error sentences seen, printed at the end. */
#define MAX_SENTENCES 80
static char sentences[MAX_SENTENCES][200];
static size_t nsentences;

static void remember(const char *s) {
    char norm[200];
    size_t j = 0;
    /* Digits vary (sizes, ids): fold them so the list stays short. */
    for (size_t i = 0; s[i] && j + 1 < sizeof norm; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (j == 0 || norm[j - 1] != '#') norm[j++] = '#';
        } else {
            norm[j++] = s[i];
        }
    }
    norm[j] = '\0';
    for (size_t i = 0; i < nsentences; i++)
        if (strcmp(sentences[i], norm) == 0) return;
    if (nsentences < MAX_SENTENCES)
        memcpy(sentences[nsentences++], norm, sizeof norm);
}

/* Marks a received message against the expected three. */
static void note_msg(run_ctx *r, const mmws_msg *m) {
    if (m->len == strlen(HELLO) && memcmp(m->data, HELLO, m->len) == 0)
        r->got |= 1u;
    else if (m->len == 6000 && memcmp(m->data, "abcdefghij", 10) == 0)
        r->got |= 2u;
    else if (m->len == 40000 && memcmp(m->data, "abcdefghij", 10) == 0)
        r->got |= 4u;
    else
        r->bad++;
}

static void on_msg(void *user, const mmws_msg *m) { note_msg(user, m); }

/* Every drop of a connection must say what and why. */
static void on_state(void *user, mmws_conn *c, mmws_state from,
                     mmws_state to) {
    run_ctx *r = user;
    (void)from;
    if (to != MMWS_DISCONNECTED || r->closing) return;
    mmws_conn_stats st;
    mmws_conn_stats_get(c, &st);
    const char *e = mmws_conn_last_error(c);
    r->conn_errors++;
    if (!e[0]) r->empty_errors++;
    if (st.last_error_code >= 0 ||
        strcmp(mmws_errname(st.last_error_code), "MMWS_E?") == 0)
        r->bad_codes++;
    if (!r->err[0]) snprintf(r->err, sizeof r->err, "%s", e);
}

static void fill_config(mmws_conn_config *cfg, char *url, size_t len,
                        const scenario *sc) {
    const th_server *s = sc->tls ? &srv_tls : &srv_plain;
    snprintf(url, len, "%s://localhost:%d/alloc", sc->tls ? "wss" : "ws",
             s->port);
    mmws_conn_config_default(cfg, url);
    cfg->allow_plaintext = 1;
    cfg->tls_ca_file = ca;
    cfg->on_connect = subs;
    cfg->on_connect_count = sizeof subs / sizeof subs[0];
    cfg->read_buffer_size = 4096;
    cfg->connect_timeout_ms = 2000;
    cfg->handshake_timeout_ms = 2000;
    cfg->close_timeout_ms = 1000;
    cfg->backoff_base_ms = 1;
    cfg->backoff_cap_ms = 10;
    cfg->dns_servers = "127.0.0.1:1"; /* /etc/hosts answers; never leave
                                         loopback */
}

/* Runs the loop once, up to the deadline; 0, or -1 past it. */
static int step(mmws_loop *loop, long long deadline) {
    long long left = deadline - th_now_ms();
    if (left <= 0) return -1;
    int rc = mmws_loop_run_once(loop, left > 20 ? 20 : (int)left);
    CHECK(rc >= 0);
    return rc >= 0 ? 0 : -1;
}

/* Reports a creation call's failure; must be a clear out-of-memory. */
static run_result creation_failed(const char *call, int rc) {
    const char *e = mmws_last_error();
    CHECK(rc < 0);
    CHECK(strcmp(mmws_errname(rc), "MMWS_E?") != 0);
    CHECK(e[0] != '\0');
    if (!strstr(e, "memory")) {
        t_checks++;
        t_failed++;
        T_FAIL_HDR();
        fprintf(stderr, "%s failed with %s but its error does not name "
                        "memory: \"%s\"\n", call, mmws_errname(rc), e);
    }
    remember(e);
    return R_ERROR;
}

static run_result run_conn(mmws_loop *loop, run_ctx *r,
                           const mmws_conn_config *cfg, long long deadline) {
    mmws_conn *c = NULL;
    int rc = mmws_conn_new(loop, cfg, on_msg, r, &c);
    if (rc) return creation_failed("mmws_conn_new", rc);
    mmws_conn_set_on_state(c, on_state, r);
    while (r->got != ALL_MSGS && step(loop, deadline) == 0) {
    }
    int done = r->got == ALL_MSGS;
    r->closing = 1;
    CHECK_RC(mmws_conn_close(c, MMWS_CLOSE_NORMAL, NULL), 0);
    while (mmws_conn_phase(c) != MMWS_PHASE_CLOSED &&
           step(loop, deadline + 2000) == 0) {
    }
    CHECK_EQ(mmws_conn_phase(c), MMWS_PHASE_CLOSED);
    mmws_conn_free(c);
    return done ? R_CLEAN : R_FAILED;
}

static run_result run_single(mmws_loop *loop, run_ctx *r,
                             const mmws_conn_config *cfg,
                             long long deadline) {
    mmws_ring_config rc_cfg;
    mmws_ring_config_default(&rc_cfg);
    rc_cfg.capacity = 64;
    rc_cfg.arena_bytes = 256u << 10;
    rc_cfg.only_insert_unique = 1; /* covers the unique filter's memory */
    mmws_single *s = NULL;
    int rc = mmws_single_new(loop, cfg, &rc_cfg, NULL, NULL, &s);
    if (rc) return creation_failed("mmws_single_new", rc);
    mmws_conn_set_on_state(mmws_single_conn(s), on_state, r);
    while (r->got != ALL_MSGS) {
        long long left = deadline - th_now_ms();
        if (left <= 0) break;
        mmws_msg m;
        rc = mmws_single_next(s, &m, left > 100 ? 100 : (int)left);
        if (rc == MMWS_ETIMEDOUT) continue;
        CHECK_RC(rc, 0);
        if (rc) break;
        note_msg(r, &m);
    }
    int done = r->got == ALL_MSGS;
    r->closing = 1;
    CHECK_RC(mmws_single_close(s), 0);
    while (mmws_conn_phase(mmws_single_conn(s)) != MMWS_PHASE_CLOSED &&
           step(loop, deadline + 2000) == 0) {
    }
    CHECK_EQ(mmws_conn_phase(mmws_single_conn(s)), MMWS_PHASE_CLOSED);
    mmws_single_free(s);
    return done ? R_CLEAN : R_FAILED;
}

static run_result run_pool(mmws_loop *loop, run_ctx *r,
                           const mmws_conn_config *cfg, long long deadline) {
    mmws_pool_config pc;
    mmws_pool_config_default(&pc);
    pc.num_connections = 2;
    pc.replace_base_ms = 1;
    pc.replace_cap_ms = 10;
    pc.hash_capacity = 64;
    pc.ring.capacity = 64;
    pc.ring.arena_bytes = 256u << 10;
    mmws_pool *p = NULL;
    int rc = mmws_pool_new(loop, cfg, &pc, NULL, NULL, &p);
    if (rc) return creation_failed("mmws_pool_new", rc);
    /* Every message delivered once, and both connections up (so both
     * went through their whole connect). */
    while (r->got != ALL_MSGS || mmws_pool_connected_count(p) != 2) {
        long long left = deadline - th_now_ms();
        if (left <= 0) break;
        if (r->got == ALL_MSGS) {
            if (step(loop, deadline) != 0) break;
            continue;
        }
        mmws_msg m;
        rc = mmws_pool_next(p, &m, left > 100 ? 100 : (int)left);
        if (rc == MMWS_ETIMEDOUT) continue;
        CHECK_RC(rc, 0);
        if (rc) break;
        note_msg(r, &m);
    }
    int done = r->got == ALL_MSGS && mmws_pool_connected_count(p) == 2;
    mmws_pool_stats st;
    mmws_pool_stats_get(p, &st);
    /* A slot that died was replaced: the pool's form of a reconnect (its
     * connections' sentences are not reachable through the API). */
    r->conn_errors += (int)st.replacements;
    mmws_pool_free(p);
    return done ? R_CLEAN : R_FAILED;
}

/* Totals over the sweep. */
static unsigned long n_runs, n_injected, n_errors, n_recovered, n_absorbed,
    n_not_reached, n_bad;
static unsigned long n_inj_origin[O_COUNT];

/* The start of this program's image (a GNU linker symbol): a return
 * address minus it is what addr2line takes, PIE or not. */
extern const char __executable_start;

/* Prints where the injected failure was (for a failing run). */
static void print_site(void) {
    if (!a_injected) {
        fprintf(stderr, "  (the failure was not reached)\n");
        return;
    }
    if (a_inj_origin == O_SSL)
        fprintf(stderr, "  injected: allocation %lu, OpenSSL %s:%d\n",
                a_fail_at, a_inj_file ? a_inj_file : "?", a_inj_line);
    else if (a_inj_origin == O_ARES)
        fprintf(stderr, "  injected: allocation %lu, c-ares, called from "
                        "%p (in libcares)\n", a_fail_at, a_inj_caller);
    else
        fprintf(stderr, "  injected: allocation %lu, mmws, called from "
                        "`addr2line -f -i -e test_alloc %#lx`\n",
                a_fail_at,
                (unsigned long)((const char *)a_inj_caller -
                                &__executable_start) - 1);
}

/*
 * One run of sc with allocation fail_at failing (0: none). armed: count.
 * Returns the number of allocations counted.
 */
static unsigned long run_once(const scenario *sc, unsigned long fail_at,
                              int armed) {
    char url[128];
    mmws_conn_config cfg;
    fill_config(&cfg, url, sizeof url, sc);
    run_ctx r;
    memset(&r, 0, sizeof r);
    r.sc = sc;
    int fds = th_fd_count();
    long long live[O_COUNT];
    memcpy(live, a_live, sizeof live);
    unsigned long checks_failed = t_failed;

    ERR_clear_error();
    a_seen = 0;
    memset(a_by_origin, 0, sizeof a_by_origin);
    a_fail_at = fail_at;
    a_injected = 0;
    a_armed = armed;
    long long deadline = th_now_ms() + RUN_DEADLINE_MS;

    run_result res;
    mmws_loop *loop = mmws_loop_new(NULL);
    if (!loop) {
        CHECK_EQ(errno, ENOMEM);
        res = R_ERROR;
    } else {
        switch (sc->kind) {
        case S_CONN: res = run_conn(loop, &r, &cfg, deadline); break;
        case S_SINGLE: res = run_single(loop, &r, &cfg, deadline); break;
        default: res = run_pool(loop, &r, &cfg, deadline); break;
        }
        mmws_loop_free(loop);
    }
    /* OpenSSL keeps the last errors per thread (blocks of its own);
     * the library leaves them there when a call failed. */
    ERR_clear_error();
    a_armed = 0;
    unsigned long seen = a_seen;
    if (getenv("MMWS_ALLOC_VERBOSE"))
        fprintf(stderr, "run %s fail_at %lu: result %d, %lu allocations, "
                        "%d drops, %lld ms%s%s\n",
                sc->name, fail_at, (int)res, seen, r.conn_errors,
                th_now_ms() - (deadline - RUN_DEADLINE_MS),
                r.err[0] ? ": " : "", r.err);

    if (res == R_FAILED) {
        t_checks++;
        t_failed++;
        T_FAIL_HDR();
        fprintf(stderr, "%s: the run did not complete within %d ms (got "
                        "messages 0x%x of 0x%x, %d connection errors%s%s)\n",
                sc->name, RUN_DEADLINE_MS, r.got, ALL_MSGS, r.conn_errors,
                r.err[0] ? ": " : "", r.err);
    }
    CHECK_EQ(r.bad, 0);
    CHECK_EQ(r.empty_errors, 0);
    CHECK_EQ(r.bad_codes, 0);
    if (r.err[0]) remember(r.err);
    /* Everything allocated in the run was freed, every fd closed. */
    for (int o = 0; o < O_COUNT; o++) {
        /* The warm-up run leaves OpenSSL's and c-ares' process-wide
         * state behind, by design. */
        if (!armed && o != O_MMWS) continue;
        if (a_live[o] != live[o]) {
            t_checks++;
            t_failed++;
            T_FAIL_HDR();
            fprintf(stderr, "%s: %lld %s block(s) leaked\n", sc->name,
                    a_live[o] - live[o], origin_name[o]);
        } else {
            t_checks++;
        }
    }
    CHECK_EQ(th_fd_count(), fds);

    if (!armed) return seen;
    n_runs++;
    if (fail_at && a_injected) {
        n_injected++;
        n_inj_origin[a_inj_origin]++;
    }
    if (fail_at && !a_injected) n_not_reached++;
    if (t_failed != checks_failed) {
        n_bad++;
        fprintf(stderr, "  in %s, run failing allocation %lu of this run\n",
                sc->name, fail_at);
        print_site();
    } else if (res == R_ERROR) {
        n_errors++;
    } else if (r.conn_errors) {
        n_errors++;
        n_recovered++;
    } else if (fail_at && a_injected) {
        n_absorbed++;
        if (getenv("MMWS_ALLOC_VERBOSE")) print_site();
    }
    return seen;
}

/* ------------------------------------------------------------- main -- */

static int start_servers(void) {
    static const char *const kinds[] = {"node", "python"};
    char why[256], crt[300], key[300];
    for (size_t k = 0; k < 2 && !server_kind; k++)
        if (th_servers_available(kinds[k], why, sizeof why))
            server_kind = kinds[k];
    if (!server_kind) {
        int rq = th_require_servers("node");
        return rq == 0 ? 0 : -1;
    }
    if (th_certs(certs, sizeof certs) != 0) return -1;
    snprintf(ca, sizeof ca, "%s/ca.pem", certs);
    snprintf(crt, sizeof crt, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    if (th_server_start(&srv_plain, server_kind, NULL, NULL, NULL) != 0 ||
        th_server_start(&srv_tls, server_kind, NULL, crt, key) != 0) {
        th_server_stop(&srv_plain);
        th_certs_remove(certs);
        return -1;
    }
    return 1;
}

int main(void) {
    /* Before anything touches OpenSSL: once it allocated, it refuses. */
    int ossl_hooked = CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc,
                                               ssl_free);
    int ares_hooked = ares_library_init_mem(ARES_LIB_INIT_ALL,
                                            ares_malloc_hook, ares_free_hook,
                                            ares_realloc_hook) == ARES_SUCCESS;
    CHECK(ossl_hooked == 1);
    CHECK(ares_hooked);

    int up = start_servers();
    if (up <= 0) {
        ares_library_cleanup();
        if (up == 0) return TEST_END("test_alloc");
        CHECK_FAIL("cannot start the servers");
        return TEST_END("test_alloc");
    }
    printf("test_alloc: %s servers, ports %d (ws) and %d (wss)\n",
           server_kind, srv_plain.port, srv_tls.port);

    /* Warm-up: process-wide state of OpenSSL and c-ares, made once. */
    t_case = "warm-up";
    for (size_t i = 0; i < NSCEN; i++) (void)run_once(&scenarios[i], 0, 0);
    /* OpenSSL's per-thread error queue keeps the text buffer of each of
     * its ERR_NUM_ERRORS slots once used, for reuse (ERR_clear_error does
     * not free them): give every slot one now, or the first run whose
     * failure queues more errors than any before would seem to leak. */
    for (int i = 0; i < 2 * ERR_NUM_ERRORS; i++) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        ERR_raise_data(ERR_LIB_USER, 1, "warm-up %d", i);
#else
        ERR_PUT_error(ERR_LIB_USER, 0, 1, __FILE__, __LINE__);
        ERR_add_error_data(1, "warm-up");
#endif
    }
    ERR_clear_error();

    /* Pass 1: every allocation of mmws and c-ares in every scenario.
     * Pass 2: every allocation of OpenSSL in the conn scenarios (single
     * and pool reach OpenSSL through the same per-connection calls, which
     * the conn wss:// sweep already fails one by one; the pool shares one
     * context among its connections: a context left without its CA by a
     * failed allocation is dropped and rebuilt, test_pool's
     * shared_tls_context_rebuilt. A full pool pass, ~6,900 runs of ~90 ms,
     * was run by hand: MMWS_ALLOC_ONLY="pool wss://" MMWS_ALLOC_PASS=1
     * with the scenario filter lifted). */
    static const struct pass {
        const char *name;
        unsigned origins;
        int conn_only;
    } passes[] = {
        {"mmws+c-ares", (1u << O_MMWS) | (1u << O_ARES), 0},
        {"OpenSSL", 1u << O_SSL, 1},
    };
    /* Replaying one case (see the top): a scenario, a pass, an index. */
    const char *only = getenv("MMWS_ALLOC_ONLY");
    const char *only_pass = getenv("MMWS_ALLOC_PASS");
    const char *only_n = getenv("MMWS_ALLOC_N");
    long long t0 = th_now_ms();
    unsigned long total = 0, cleans = 0;
    for (size_t pi = 0; pi < sizeof passes / sizeof passes[0]; pi++) {
        if (only_pass && *only_pass && (size_t)atoi(only_pass) != pi)
            continue;
        a_origins = passes[pi].origins;
        for (size_t i = 0; i < NSCEN; i++) {
            const scenario *sc = &scenarios[i];
            if (passes[pi].conn_only && sc->kind != S_CONN) continue;
            if (only && *only && strcmp(only, sc->name) != 0) continue;
            t_case = sc->name;
            unsigned long k = run_once(sc, 0, 1);
            cleans++;
            unsigned long per[O_COUNT];
            memcpy(per, a_by_origin, sizeof per);
            CHECK(k > 0);
            long long ts = th_now_ms();
            unsigned long bad_before = n_bad;
            for (unsigned long n = 1; n <= k; n++) {
                if (only_n && *only_n && strtoul(only_n, NULL, 10) != n)
                    continue;
                (void)run_once(sc, n, 1);
            }
            printf("alloc: %-7s %-13s allocations=%lu (mmws %lu, OpenSSL "
                   "%lu, c-ares %lu) failed_each=%lu bad=%lu in %lld ms\n",
                   passes[pi].name, sc->name, k, per[O_MMWS], per[O_SSL],
                   per[O_ARES], k, n_bad - bad_before, th_now_ms() - ts);
            fflush(stdout);
            total += k;
        }
    }

    for (size_t i = 0; i < nsentences; i++)
        printf("alloc: error seen: %s\n", sentences[i]);
    printf("alloc: allocations=%lu failed_each=%lu errors=%lu recovered=%lu "
           "absorbed=%lu not_reached=%lu bad=%lu (injected in mmws %lu, "
           "OpenSSL %lu, c-ares %lu) in %lld ms\n",
           total, n_runs - cleans, n_errors, n_recovered, n_absorbed,
           n_not_reached, n_bad, n_inj_origin[O_MMWS], n_inj_origin[O_SSL],
           n_inj_origin[O_ARES], th_now_ms() - t0);
    if (!only_n || !*only_n) CHECK_EQ(n_runs - cleans, total);

    th_server_stop(&srv_plain);
    th_server_stop(&srv_tls);
    th_certs_remove(certs);
    ares_library_cleanup();
    return TEST_END("test_alloc");
}
