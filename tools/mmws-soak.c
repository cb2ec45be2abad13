/*
 * mmws-soak — the long soak (`make soak`, scripts/soak.sh): a pool against
 * the bundled exchange simulator with a fault every few seconds, checking
 * that nothing is lost, nothing crashes and nothing accumulates.
 *
 *   mmws-soak --url URL --control PORT [--ca FILE] [--resolve ADDRS]
 *             [--seconds 600] [--warmup-s 60] [--fault-every-ms 3000]
 *             [--connections 5] [--evict-interval-s 10] [--max-age-s 45]
 *             [--status-every-s 30] [--settle-s 30] [--rss-growth-pct 5]
 *             [--fd-slack 0] [--burst-x 4] [--seed 1] [--verbose]
 *
 * A separate program rather than a mode of mmws-demo: the demo is the
 * show (a live table, its own summary line and exit rule, also run
 * against real venues), the soak is a check with its own phases,
 * measurements and bounds; keeping them apart keeps both short.
 *
 * Faults, one every --fault-every-ms through the simulator's control
 * port, in a fixed rotation with random targets (--seed): kill (TCP reset),
 * close with a code (1000, 1001, 1011, 1012, 1013, 1008, 3000, 4000 in
 * turn), stall (the connection stops sending and reading: only the pong
 * timeout can notice it), kill two at once, a rate burst (--burst-x times
 * the rate for half a fault period) and a pause of the generator (half a
 * fault period without data: the stream must resume without a gap). A
 * connection fault is skipped (counted) unless at least 3 connections are
 * open at the simulator and carry the stream in the pool (4 for the
 * double kill): a message only the faulted connection had is lost
 * whatever a pool does, so with carriers left a gap is the library's.
 * Eviction every --evict-interval-s and rotation at --max-age-s run too.
 *
 * Phases. --seconds is the whole run. The first --warmup-s (faults
 * included, so every fault path has allocated before the baseline) lets
 * TLS, the allocator and ASan's quarantine reach a steady state: RSS
 * climbs to the allocator's high-water mark over the first minute or two
 * (pages that hold a few live small objects are never returned) and then
 * stays flat; measured under ASan, a baseline at 30 s sat 5-6% below that
 * plateau, one at 60 s 3-4%, with the live heap unchanged. Then the
 * faults pause until the pool is settled (all --connections connected,
 * none being replaced, none holding copies to join; at most --settle-s)
 * and RSS and open fds are measured. At the end the faults stop, the pool
 * settles again and catches up with the simulator's last generated id,
 * and both are measured again. Measuring only in the settled state means
 * the same fds are open both times (stdio, the loop's own, one socket per
 * connection; --resolve means no DNS sockets; the control port's socket
 * is closed after each command), so they must match exactly (--fd-slack
 * 0). RSS may move by allocator noise: --rss-growth-pct. Under ASan, every
 * RSS reading is taken right after purging the allocator (quarantine
 * included), and the live heap is shown for information.
 *
 * Progress: a status line every --status-every-s. The last line reads
 *   soak: seconds=S faults=F delivered=N gaps=G rss_kb_start=A rss_kb_end=B
 *         fds_start=C fds_end=D
 * (one line) and the exit status is 0 only if gaps=0, nothing came out of
 * order, delivered > 0, faults > 0, the pool settled both times and
 * caught up, fds_end is within --fd-slack of fds_start, and rss_kb_end
 * <= rss_kb_start * (1 + --rss-growth-pct / 100). Each broken bound is
 * named in a sentence before the last line. Crashes and leaks are for the
 * sanitizers: soak.sh runs the ASan+UBSan build.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <mmws/mmws.h>

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* ASan's count of live heap bytes, when the program runs under ASan (a
 * weak reference: NULL in an uninstrumented build). Information only:
 * the bound is on RSS, which is what an operator sees. */
extern size_t __sanitizer_get_current_allocated_bytes(void)
    __attribute__((weak));
/* Under ASan: empties the quarantine and returns free allocator memory to
 * the OS. Called right before each RSS measurement so that both see the
 * library's memory, not how full the quarantine happened to be (its
 * large chunks, such as 256 KiB read buffers, are whole mappings). */
extern void __sanitizer_purge_allocator(void) __attribute__((weak));

typedef enum fault_kind {
    F_KILL,
    F_CLOSE,
    F_STALL,
    F_BURST,
    F_KILL2,
    F_PAUSE,
    F_KINDS
} fault_kind;

static const char *const fault_name[F_KINDS] = {"kill", "close", "stall",
                                                 "burst", "kill2", "pause"};

/* The rotation: connection faults twice as often as stream faults. */
static const fault_kind rotation[] = {F_KILL,  F_CLOSE, F_STALL, F_BURST,
                                      F_CLOSE, F_KILL2, F_PAUSE, F_STALL};

static const unsigned close_codes[] = {1000, 1001, 1011, 1012,
                                       1013, 1008, 3000, 4000};

typedef struct soak {
    mmws_pool *pool;
    size_t conns;
    /* update ids ("u") */
    uint64_t last_u, gaps, out_of_order;
    uint64_t irregular;       /* gap or order events (the first are shown) */
    uint64_t start_ns;
    char last_fault[160];     /* the last fault sent, for those reports */
    /* faults */
    int ctl;
    uint64_t faults, by_kind[F_KINDS], skipped, ctl_fail_run;
    size_t rot, code_i;
    uint64_t rng;
    uint64_t base_rate;       /* the simulator's rate before any burst */
    uint64_t restore_ns;      /* when a burst or pause ends (0: none) */
    fault_kind restore_kind;
    uint64_t catch_up_to;     /* the end: the id the stream must reach */
    int verbose;
} soak;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

/* Reads the unsigned integer after key (e.g. "\"u\":") in m, or 0. */
static uint64_t json_u64(const uint8_t *p, size_t len, const char *key) {
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl < len; i++)
        if (memcmp(p + i, key, kl) == 0) {
            uint64_t v = 0;
            for (size_t j = i + kl; j < len && p[j] >= '0' && p[j] <= '9'; j++)
                v = v * 10 + (uint64_t)(p[j] - '0');
            return v;
        }
    return 0;
}

static void on_message(void *user, const mmws_msg *m) {
    soak *s = user;
    uint64_t u = json_u64(m->data, m->len, "\"u\":");
    if (!u) return; /* subscribe acks */
    if (s->last_u && u != s->last_u + 1) {
        if (u > s->last_u) s->gaps += u - s->last_u - 1;
        else s->out_of_order++; /* older or the same id again */
        /* The first few, with where they happened, for the post-mortem. */
        if (++s->irregular <= 10) {
            printf("soak: %s at t=%.1fs: after u=%llu came u=%llu (via conn "
                   "%llu, %zu connected, last fault: %s)\n",
                   u > s->last_u ? "GAP" : "OUT OF ORDER",
                   (double)(mmws_now_ns() - s->start_ns) / 1e9,
                   (unsigned long long)s->last_u, (unsigned long long)u,
                   (unsigned long long)m->conn_id,
                   mmws_pool_connected_count(s->pool), s->last_fault);
            fflush(stdout);
        }
    }
    if (u > s->last_u) s->last_u = u;
}

/*
 * Sends cmd to the simulator's control port and reads the reply up to its
 * "end" line into out (NUL-terminated). Returns 0 if the first line
 * starts with "ok" or the command is list/stats and the reply is
 * complete, -1 otherwise. Blocking, bounded by a 2 s socket timeout: it
 * runs on the loop thread, which only delays our reads (the kernel
 * buffers them).
 */
static int control(int port, const char *cmd, char *out, size_t cap) {
    out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char line[128];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || n < 0 ||
        send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    int complete = 0;
    while (got + 1 < cap) {
        ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
        out[got] = '\0';
        if ((got >= 4 && strcmp(out + got - 4, "end\n") == 0 &&
             (got == 4 || out[got - 5] == '\n'))) {
            complete = 1;
            break;
        }
    }
    out[got] = '\0';
    close(fd);
    if (!complete) return -1;
    return strncmp(out, "error", 5) == 0 ? -1 : 0;
}

static uint64_t rnd(soak *s) {
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

/* Ids of the connections open (not stalled, not closing) at the
 * simulator, from "list"; returns how many (at most cap), -1 if the
 * control port did not answer. */
static int open_ids(soak *s, uint64_t *ids, int cap) {
    static char buf[65536];
    if (control(s->ctl, "list", buf, sizeof buf) != 0) return -1;
    int n = 0;
    for (char *l = buf; *l && n < cap;) {
        char *nl = strchr(l, '\n');
        if (nl) *nl = '\0';
        unsigned long long id;
        if (sscanf(l, "conn %llu", &id) == 1 && strstr(l, " state=open"))
            ids[n++] = id;
        if (!nl) break;
        l = nl + 1;
    }
    return n;
}

/* A simulator statistic ("generated", "rate") from "stats", or -1. */
static long long sim_stat(soak *s, const char *key) {
    char buf[512], k[40];
    buf[0] = ' '; /* so the first field also has a space before it */
    if (control(s->ctl, "stats", buf + 1, sizeof buf - 1) != 0) return -1;
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(buf, k);
    if (!p) return -1;
    return strtoll(p + strlen(k), NULL, 10);
}

/* Ends a burst or a pause. */
static void restore(soak *s) {
    char buf[256], cmd[64];
    if (!s->restore_ns) return;
    if (s->restore_kind == F_BURST)
        snprintf(cmd, sizeof cmd, "rate %llu", (unsigned long long)s->base_rate);
    else
        snprintf(cmd, sizeof cmd, "resume");
    /* Retried on the next iteration if the simulator did not answer. */
    if (control(s->ctl, cmd, buf, sizeof buf) == 0) s->restore_ns = 0;
}

/*
 * Connections that carry the stream: CONNECTED with at least two copies
 * received, while no connection is holding copies to join (with nothing
 * held, such a connection has joined the delivered stream; the pool does
 * not say so directly). Messages only one carrier has when it dies are
 * lost whatever the pool does, so connection faults wait for carriers.
 */
static size_t carriers(const soak *s) {
    mmws_pool_stats st;
    mmws_pool_stats_get(s->pool, &st);
    if (st.held) return 0;
    size_t n = 0;
    for (size_t i = 0; i < mmws_pool_size(s->pool); i++) {
        mmws_pool_conn_info ci;
        if (mmws_pool_conn_info_get(s->pool, i, &ci) == 0 &&
            ci.state == MMWS_CONNECTED && ci.messages >= 2)
            n++;
    }
    return n;
}

/* Injects the next fault of the rotation. -1 if the control port has
 * failed three times in a row (the simulator is gone). */
static int inject(soak *s, uint64_t now, uint64_t fault_ns, unsigned burst_x) {
    fault_kind k = rotation[s->rot++ % (sizeof rotation / sizeof *rotation)];
    char buf[512], cmd[160];
    uint64_t ids[64];
    int ok = 0, answered = 1;
    if (k == F_BURST || k == F_PAUSE) {
        if (k == F_BURST)
            snprintf(cmd, sizeof cmd, "rate %llu",
                     (unsigned long long)(s->base_rate * burst_x));
        else
            snprintf(cmd, sizeof cmd, "pause");
        ok = control(s->ctl, cmd, buf, sizeof buf) == 0;
        answered = buf[0] != '\0';
        if (ok) {
            s->restore_kind = k;
            s->restore_ns = now + fault_ns / 2;
        }
    } else {
        int n = open_ids(s, ids, 64);
        int need = k == F_KILL2 ? 4 : 3;
        if (n < 0) {
            answered = 0;
        } else if (n < need || carriers(s) < (size_t)need) {
            s->skipped++;
            if (s->verbose)
                printf("fault: %s skipped (%d open at the simulator, %zu "
                       "carrying the stream)\n", fault_name[k], n,
                       carriers(s));
            s->ctl_fail_run = 0;
            return 0;
        } else {
            uint64_t id = ids[rnd(s) % (uint64_t)n];
            if (k == F_KILL || k == F_KILL2) {
                snprintf(cmd, sizeof cmd, "kill %llu", (unsigned long long)id);
                ok = control(s->ctl, cmd, buf, sizeof buf) == 0;
                if (ok && k == F_KILL2) {
                    uint64_t id2 = ids[rnd(s) % (uint64_t)n];
                    if (id2 == id) id2 = ids[(size_t)(id2 == ids[0])];
                    snprintf(cmd, sizeof cmd, "kill %llu",
                             (unsigned long long)id2);
                    ok = control(s->ctl, cmd, buf, sizeof buf) == 0;
                }
            } else if (k == F_CLOSE) {
                unsigned code = close_codes[s->code_i++ % (sizeof close_codes /
                                                           sizeof *close_codes)];
                snprintf(cmd, sizeof cmd, "close %llu %u soak fault",
                         (unsigned long long)id, code);
                ok = control(s->ctl, cmd, buf, sizeof buf) == 0;
            } else {
                snprintf(cmd, sizeof cmd, "stall %llu", (unsigned long long)id);
                ok = control(s->ctl, cmd, buf, sizeof buf) == 0;
            }
            answered = buf[0] != '\0';
        }
    }
    if (ok) snprintf(s->last_fault, sizeof s->last_fault, "%s", cmd);
    if (ok) {
        s->faults++;
        s->by_kind[k]++;
        if (s->verbose) printf("fault: %s (%s)\n", fault_name[k], cmd);
    } else if (answered && s->verbose) {
        /* The target went away between list and command: not a fault. */
        printf("fault: %s refused: %s", fault_name[k], buf);
    }
    if (!answered) return ++s->ctl_fail_run >= 3 ? -1 : 0;
    s->ctl_fail_run = 0;
    return 0;
}

/* Resident set size in KiB (/proc/self/statm), or 0. The allocator gives
 * its free pages back first (ASan's purge, or glibc's malloc_trim), so
 * every reading (status lines included) is the same measure as the
 * bound's. */
static uint64_t rss_kb(void) {
    if (__sanitizer_purge_allocator)
        __sanitizer_purge_allocator();
    else
        malloc_trim(0); /* glibc: free pages back, the same measure */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2) res = 0;
    fclose(f);
    return res * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

/* Live heap in KiB under ASan, else 0. */
static uint64_t heap_kb(void) {
    return __sanitizer_get_current_allocated_bytes
               ? __sanitizer_get_current_allocated_bytes() / 1024
               : 0;
}

/* Open file descriptors (/proc/self/fd, without the directory's own). */
static int fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

/* All connections up, none being replaced, none holding copies to join:
 * the same state (sockets, buffers) each time it is reached. */
static int settled(const soak *s) {
    mmws_pool_stats st;
    mmws_pool_stats_get(s->pool, &st);
    if (st.held || mmws_pool_size(s->pool) != s->conns ||
        mmws_pool_connected_count(s->pool) != s->conns)
        return 0;
    for (size_t i = 0; i < s->conns; i++) {
        mmws_pool_conn_info ci;
        if (mmws_pool_conn_info_get(s->pool, i, &ci) || ci.evicting) return 0;
    }
    return 1;
}

static void status(const soak *s, const char *phase, double t) {
    mmws_pool_stats st;
    mmws_pool_stats_get(s->pool, &st);
    printf("soak: t=%.0fs %s faults=%llu (kill=%llu close=%llu stall=%llu "
           "burst=%llu kill2=%llu pause=%llu) skipped=%llu delivered=%llu "
           "gaps=%llu connected=%zu/%zu replacements=%llu evictions=%llu "
           "rotations=%llu budget_denied=%llu rss_kb=%llu fds=%d",
           t, phase, (unsigned long long)s->faults,
           (unsigned long long)s->by_kind[F_KILL],
           (unsigned long long)s->by_kind[F_CLOSE],
           (unsigned long long)s->by_kind[F_STALL],
           (unsigned long long)s->by_kind[F_BURST],
           (unsigned long long)s->by_kind[F_KILL2],
           (unsigned long long)s->by_kind[F_PAUSE],
           (unsigned long long)s->skipped, (unsigned long long)st.delivered,
           (unsigned long long)s->gaps, mmws_pool_connected_count(s->pool),
           s->conns, (unsigned long long)st.replacements,
           (unsigned long long)st.evictions, (unsigned long long)st.rotations,
           (unsigned long long)st.budget_denied, (unsigned long long)rss_kb(),
           fd_count());
    if (__sanitizer_get_current_allocated_bytes)
        printf(" heap_kb=%llu", (unsigned long long)heap_kb());
    printf("\n");
    fflush(stdout);
}

/* One line per connection, to say why the pool is not settled. */
static void dump_slots(const soak *s) {
    mmws_pool_stats st;
    mmws_pool_stats_get(s->pool, &st);
    printf("soak: pool: %zu slots, %zu connected, %llu copies held by "
           "joining connections\n", mmws_pool_size(s->pool),
           mmws_pool_connected_count(s->pool), (unsigned long long)st.held);
    for (size_t i = 0; i < mmws_pool_size(s->pool); i++) {
        mmws_pool_conn_info ci;
        if (mmws_pool_conn_info_get(s->pool, i, &ci)) continue;
        printf("soak:   conn %llu %s%s age_ms=%llu messages=%llu firsts=%llu "
               "duplicates=%llu score_ms=%.3f\n",
               (unsigned long long)ci.conn_id,
               ci.state == MMWS_CONNECTED    ? "CONNECTED"
               : ci.state == MMWS_CONNECTING ? "CONNECTING"
                                             : "DISCONNECTED",
               ci.evicting ? " (being replaced)" : "",
               (unsigned long long)ci.age_ms, (unsigned long long)ci.messages,
               (unsigned long long)ci.firsts,
               (unsigned long long)ci.duplicates, ci.score_ms);
    }
}

static long num(const char *opt, const char *v) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0 || errno) {
        fprintf(stderr, "mmws-soak: %s needs a number (got \"%s\")\n", opt, v);
        exit(2);
    }
    return n;
}

/* Runs the loop until done(s) holds or bound_ns passes; faults are off.
 * Returns 1 if done. */
static int run_until(mmws_loop *loop, soak *s, int (*done)(soak *),
                     uint64_t bound_ns) {
    uint64_t end = mmws_now_ns() + bound_ns;
    while (!stop_flag && mmws_now_ns() < end) {
        if (s->restore_ns) restore(s);
        if (!s->restore_ns && done(s)) return 1;
        if (mmws_loop_run_once(loop, 50) < 0) return 0;
    }
    return 0;
}

static int is_settled(soak *s) { return settled(s); }

static int caught_up(soak *s) {
    return settled(s) && s->last_u >= s->catch_up_to;
}

int main(int argc, char **argv) {
    const char *url = NULL, *ca = NULL, *resolve = NULL;
    long seconds = 600, warmup_s = 60, fault_ms = 3000, conns = 5;
    long evict_s = 10, max_age_s = 45, status_s = 30, settle_s = 30;
    long rss_pct = 5, fd_slack = 0, burst_x = 4, seed = 1;
    soak s;
    memset(&s, 0, sizeof s);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--url") && more) url = argv[++i];
        else if (!strcmp(a, "--ca") && more) ca = argv[++i];
        else if (!strcmp(a, "--resolve") && more) resolve = argv[++i];
        else if (!strcmp(a, "--control") && more) s.ctl = (int)num(a, argv[++i]);
        else if (!strcmp(a, "--seconds") && more) seconds = num(a, argv[++i]);
        else if (!strcmp(a, "--warmup-s") && more) warmup_s = num(a, argv[++i]);
        else if (!strcmp(a, "--fault-every-ms") && more) fault_ms = num(a, argv[++i]);
        else if (!strcmp(a, "--connections") && more) conns = num(a, argv[++i]);
        else if (!strcmp(a, "--evict-interval-s") && more) evict_s = num(a, argv[++i]);
        else if (!strcmp(a, "--max-age-s") && more) max_age_s = num(a, argv[++i]);
        else if (!strcmp(a, "--status-every-s") && more) status_s = num(a, argv[++i]);
        else if (!strcmp(a, "--settle-s") && more) settle_s = num(a, argv[++i]);
        else if (!strcmp(a, "--rss-growth-pct") && more) rss_pct = num(a, argv[++i]);
        else if (!strcmp(a, "--fd-slack") && more) fd_slack = num(a, argv[++i]);
        else if (!strcmp(a, "--burst-x") && more) burst_x = num(a, argv[++i]);
        else if (!strcmp(a, "--seed") && more) seed = num(a, argv[++i]);
        else if (!strcmp(a, "--verbose")) s.verbose = 1;
        else {
            fprintf(stderr, "mmws-soak: unexpected argument \"%s\"\n", a);
            return 2;
        }
    }
    if (!url || !s.ctl) {
        fprintf(stderr, "usage: mmws-soak --url URL --control PORT [options] "
                        "(see the source)\n");
        return 2;
    }
    if (warmup_s >= seconds || fault_ms == 0 || status_s == 0 || conns < 3 ||
        burst_x < 1) {
        fprintf(stderr, "mmws-soak: --warmup-s must be shorter than --seconds "
                        "(%ld >= %ld?), --fault-every-ms and --status-every-s "
                        "above 0, --connections at least 3 and --burst-x at "
                        "least 1\n", warmup_s, seconds);
        return 2;
    }
    s.conns = (size_t)conns;
    s.rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;

    static const char *sub =
        "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@bookTicker\"],\"id\":1}";
    const char *subs[1] = {sub};
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    cfg.allow_plaintext = strncasecmp(url, "ws://", 5) == 0;
    cfg.tls_ca_file = ca;
    cfg.resolve = resolve;
    cfg.on_connect = subs;
    cfg.on_connect_count = 1;
    cfg.latency_ping_interval_ms = 500;
    mmws_pool_config pc;
    mmws_pool_config_default(&pc);
    pc.num_connections = s.conns;
    pc.evict_interval_s = (uint32_t)evict_s;
    pc.max_connection_age_s = (uint32_t)max_age_s;

    long long rate = sim_stat(&s, "rate");
    if (rate <= 0) {
        fprintf(stderr, "mmws-soak: the simulator's control port %d did not "
                        "answer \"stats\" with a rate above 0\n", s.ctl);
        return 2;
    }
    s.base_rate = (uint64_t)rate;

    mmws_loop *loop = mmws_loop_new(NULL);
    if (!loop || mmws_pool_new(loop, &cfg, &pc, on_message, &s, &s.pool)) {
        fprintf(stderr, "mmws-soak: %s\n", mmws_last_error());
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("soak: pool of %ld connections to %s for %ld s (warm-up %ld s), a "
           "fault every %ld ms, eviction every %ld s, rotation at %ld s, "
           "seed %ld\n", conns, url, seconds, warmup_s, fault_ms, evict_s,
           max_age_s, seed);
    fflush(stdout);

    const uint64_t fault_ns = (uint64_t)fault_ms * NS_PER_MS;
    const uint64_t settle_ns = (uint64_t)settle_s * NS_PER_S;
    uint64_t start = mmws_now_ns();
    s.start_ns = start;
    snprintf(s.last_fault, sizeof s.last_fault, "none");
    uint64_t warm_end = start + (uint64_t)warmup_s * NS_PER_S;
    uint64_t end = start + (uint64_t)seconds * NS_PER_S;
    uint64_t next_status = start + (uint64_t)status_s * NS_PER_S;
    uint64_t next_fault = start + fault_ns;
    uint64_t rss_start = 0, rss_end = 0, heap_start = 0, heap_end = 0;
    int fds_start = -1, fds_end = -1;
    int settled_start = 0, settled_end = 0, measured = 0, ctl_lost = 0;
    int loop_err = 0;
    while (!stop_flag && !ctl_lost && !loop_err) {
        uint64_t now = mmws_now_ns();
        if (now >= end) break;
        if (!measured && now >= warm_end) {
            settled_start = run_until(loop, &s, is_settled, settle_ns);
            rss_start = rss_kb();
            heap_start = heap_kb();
            fds_start = fd_count();
            measured = 1;
            status(&s, settled_start ? "warm-up done, baseline taken"
                                     : "warm-up done, pool NOT settled",
                   (double)(mmws_now_ns() - start) / 1e9);
            if (!settled_start) dump_slots(&s);
            next_fault = mmws_now_ns() + fault_ns;
            next_status = mmws_now_ns() + (uint64_t)status_s * NS_PER_S;
            continue;
        }
        if (mmws_loop_run_once(loop, 50) < 0) loop_err = 1;
        now = mmws_now_ns();
        if (s.restore_ns && now >= s.restore_ns) restore(&s);
        if (now >= next_fault) {
            if (!s.restore_ns &&
                inject(&s, now, fault_ns, (unsigned)burst_x) < 0)
                ctl_lost = 1;
            next_fault = now + fault_ns;
        }
        if (now >= next_status) {
            status(&s, measured ? "soak" : "warm-up",
                   (double)(now - start) / 1e9);
            next_status += (uint64_t)status_s * NS_PER_S;
        }
    }
    /* The end: no more faults; settle, catch up with the simulator, then
     * measure in the same state as the baseline. */
    int caught = 0;
    if (measured && !ctl_lost && !loop_err) {
        settled_end = run_until(loop, &s, is_settled, settle_ns);
        long long gen = sim_stat(&s, "generated");
        s.catch_up_to = gen > 0 ? (uint64_t)gen : UINT64_MAX;
        caught = run_until(loop, &s, caught_up, settle_ns);
        settled_end = settled_end && settled(&s);
        if (!settled_end || !caught) dump_slots(&s);
        rss_end = rss_kb();
        heap_end = heap_kb();
        fds_end = fd_count();
    }
    double secs = (double)(mmws_now_ns() - start) / 1e9;
    status(&s, "end", secs);
    if (!ctl_lost) {
        /* A connection the simulator dropped for reading too slowly says
         * the process could not keep up (a loaded machine), which is
         * worth knowing next to a gap. */
        long long slow = sim_stat(&s, "slow_closed");
        printf("soak: the simulator closed %lld connections as too slow\n",
               slow);
    }
    mmws_pool_stats st;
    mmws_pool_stats_get(s.pool, &st);

    int bad = 0;
#define BROKEN(...)                                                           \
    do {                                                                      \
        printf("soak: FAILED: " __VA_ARGS__);                                 \
        printf("\n");                                                         \
        bad = 1;                                                              \
    } while (0)
    if (stop_flag) BROKEN("interrupted by a signal after %.0f s", secs);
    if (loop_err) BROKEN("mmws_loop_run_once failed: %s", mmws_last_error());
    if (ctl_lost)
        BROKEN("the simulator's control port %d stopped answering (did the "
               "simulator die?)", s.ctl);
    if (!measured)
        BROKEN("the run ended before the warm-up did, so nothing was measured");
    if (s.gaps)
        BROKEN("%llu update ids were skipped: not delivered in their turn "
               "(late or never; gaps must be 0)",
               (unsigned long long)s.gaps);
    if (s.out_of_order)
        BROKEN("%llu messages were delivered out of order or twice (must be "
               "0)", (unsigned long long)s.out_of_order);
    if (st.delivered == 0) BROKEN("nothing was delivered (delivered must be > 0)");
    if (s.faults == 0) BROKEN("no fault was injected (faults must be > 0)");
    if (measured && !settled_start)
        BROKEN("the pool did not have all %zu connections up within %ld s "
               "after the warm-up", s.conns, settle_s);
    if (measured && !ctl_lost && !loop_err && !settled_end)
        BROKEN("the pool did not have all %zu connections up within %ld s "
               "after the faults stopped", s.conns, settle_s);
    if (measured && !ctl_lost && !loop_err && !caught)
        BROKEN("the stream did not catch up with the simulator within %ld s "
               "(last delivered u=%llu, generated=%llu)", settle_s,
               (unsigned long long)s.last_u,
               (unsigned long long)s.catch_up_to);
    if (measured && fds_end >= 0 &&
        (fds_end > fds_start + fd_slack || fds_end < fds_start - fd_slack))
        BROKEN("open fds went from %d to %d (must stay within %ld)",
               fds_start, fds_end, fd_slack);
    if (measured && rss_end &&
        (double)rss_end > (double)rss_start * (1.0 + (double)rss_pct / 100.0))
        BROKEN("RSS grew from %llu KiB to %llu KiB, more than %ld%%",
               (unsigned long long)rss_start, (unsigned long long)rss_end,
               rss_pct);
#undef BROKEN
    if (heap_start)
        printf("soak: live heap (ASan, information) heap_kb_start=%llu "
               "heap_kb_end=%llu\n", (unsigned long long)heap_start,
               (unsigned long long)heap_end);
    printf("soak: seconds=%.0f faults=%llu delivered=%llu gaps=%llu "
           "rss_kb_start=%llu rss_kb_end=%llu fds_start=%d fds_end=%d\n",
           secs, (unsigned long long)s.faults,
           (unsigned long long)st.delivered, (unsigned long long)s.gaps,
           (unsigned long long)rss_start, (unsigned long long)rss_end,
           fds_start, fds_end);
    fflush(stdout);
    mmws_pool_free(s.pool);
    mmws_loop_free(loop);
    return bad;
}
