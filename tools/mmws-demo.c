/*
 * mmws-demo — the main job: a pool of redundant connections to one market
 * stream, each message delivered once, with a live table per connection
 * and a summary. Run by `make demo` against the bundled exchange simulator
 * (scripts/demo.sh), or against a real venue with `make demo URL=wss://...`.
 *
 *   mmws-demo --url URL [--ca FILE] [--resolve ADDRS] [--seconds S]
 *             [--control PORT] [--fault-every-ms MS] [--evict-interval-s S]
 *             [--connections N] [--print-every N] [--subscribe MSG]
 *
 * With --control (the simulator's control port), a random connection is
 * killed every --fault-every-ms (never when fewer than 3 are up), so the
 * pool's replacement shows. Gaps are counted from the messages' update ids
 * ("u"). The last line reads
 *   summary: delivered=N duplicates=D gaps=G evictions=E reconnects=R
 * and the exit status is 0 only if gaps=0 and something was delivered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mmws/mmws.h>

typedef struct demo {
    mmws_pool *pool;
    uint64_t last_u, gaps, out_of_order, with_u;
    uint64_t print_every, seen;
    double lat_sum_us;     /* one-way latency where the message has "ts" */
    uint64_t lat_n;
} demo;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

/* Reads the unsigned integer after "key": in a JSON text, or 0. */
static uint64_t json_u64(const mmws_msg *m, const char *key) {
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl < m->len; i++)
        if (memcmp(m->data + i, key, kl) == 0) {
            uint64_t v = 0;
            for (size_t j = i + kl; j < m->len && m->data[j] >= '0' &&
                                    m->data[j] <= '9'; j++)
                v = v * 10 + (uint64_t)(m->data[j] - '0');
            return v;
        }
    return 0;
}

static void on_message(void *user, const mmws_msg *m) {
    demo *d = user;
    d->seen++;
    uint64_t u = json_u64(m, "\"u\":");
    if (u) {
        d->with_u++;
        if (d->last_u && u != d->last_u + 1) {
            if (u > d->last_u) d->gaps += u - d->last_u - 1;
            else d->out_of_order++;
        }
        if (u > d->last_u) d->last_u = u;
        uint64_t ts = json_u64(m, "\"ts\":");
        if (ts && m->recv_ns > ts) {
            d->lat_sum_us += (double)(m->recv_ns - ts) / 1e3;
            d->lat_n++;
        }
    }
    if (d->print_every && d->seen % d->print_every == 1)
        printf("msg #%llu via conn %llu: %.*s%s\n",
               (unsigned long long)d->seen, (unsigned long long)m->conn_id,
               (int)(m->len > 110 ? 110 : m->len), (const char *)m->data,
               m->len > 110 ? "..." : "");
}

/* Sends one command to the simulator's control port; 0 if it answered ok. */
static int control(int port, const char *cmd) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s\n", cmd);
    ssize_t r = write(fd, buf, (size_t)n);
    r = r > 0 ? read(fd, buf, sizeof buf - 1) : -1;
    close(fd);
    return r >= 2 && strncmp(buf, "ok", 2) == 0 ? 0 : -1;
}

static const char *state_name(mmws_state s) {
    return s == MMWS_CONNECTED ? "CONNECTED"
           : s == MMWS_CONNECTING ? "CONNECTING" : "DISCONNECTED";
}

static void table(demo *d, double t) {
    mmws_pool_stats st;
    mmws_pool_stats_get(d->pool, &st);
    printf("\nt=%5.1fs delivered=%llu duplicates=%llu gaps=%llu evictions=%llu "
           "rotations=%llu reconnects=%llu mean one-way=%.0f us\n",
           t, (unsigned long long)st.delivered,
           (unsigned long long)st.duplicates, (unsigned long long)d->gaps,
           (unsigned long long)st.evictions, (unsigned long long)st.rotations,
           (unsigned long long)st.replacements,
           d->lat_n ? d->lat_sum_us / (double)d->lat_n : 0.0);
    printf("  conn  state         rtt_ema_ms  first%%  lag_ema_ms  messages  "
           "score_ms\n");
    for (size_t i = 0; i < mmws_pool_size(d->pool); i++) {
        mmws_pool_conn_info ci;
        if (mmws_pool_conn_info_get(d->pool, i, &ci)) continue;
        printf("  %4llu  %-12s %11.3f  %5.1f%%  %10.3f  %8llu  %8.3f%s\n",
               (unsigned long long)ci.conn_id, state_name(ci.state),
               ci.latency_ema_ms, 100.0 * ci.first_share, ci.lag_ema_ms,
               (unsigned long long)ci.messages, ci.score_ms,
               ci.evicting ? "  (being replaced)" : "");
    }
    printf("\n");
    fflush(stdout);
}

static long num(const char *opt, const char *v) {
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0) {
        fprintf(stderr, "mmws-demo: %s needs a number (got \"%s\")\n", opt, v);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv) {
    const char *url = NULL, *ca = NULL, *resolve = NULL, *sub = NULL;
    long seconds = 20, ctl = 0, fault_ms = 4000, evict_s = 5, conns = 5;
    demo d;
    memset(&d, 0, sizeof d);
    d.print_every = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--url") && more) url = argv[++i];
        else if (!strcmp(a, "--ca") && more) ca = argv[++i];
        else if (!strcmp(a, "--resolve") && more) resolve = argv[++i];
        else if (!strcmp(a, "--subscribe") && more) sub = argv[++i];
        else if (!strcmp(a, "--seconds") && more) seconds = num(a, argv[++i]);
        else if (!strcmp(a, "--control") && more) ctl = num(a, argv[++i]);
        else if (!strcmp(a, "--fault-every-ms") && more) fault_ms = num(a, argv[++i]);
        else if (!strcmp(a, "--evict-interval-s") && more) evict_s = num(a, argv[++i]);
        else if (!strcmp(a, "--connections") && more) conns = num(a, argv[++i]);
        else if (!strcmp(a, "--print-every") && more)
            d.print_every = (uint64_t)num(a, argv[++i]);
        else {
            fprintf(stderr, "mmws-demo: unexpected argument \"%s\"\n", a);
            return 2;
        }
    }
    if (!url) {
        fprintf(stderr, "usage: mmws-demo --url URL [options] (see the source)\n");
        return 2;
    }
    static const char *default_sub =
        "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@bookTicker\"],\"id\":1}";
    const char *subs[1] = {sub ? sub : default_sub};

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
    pc.num_connections = (size_t)conns;
    pc.evict_interval_s = (uint32_t)evict_s;

    mmws_loop *loop = mmws_loop_new(NULL);
    if (!loop || mmws_pool_new(loop, &cfg, &pc, on_message, &d, &d.pool)) {
        fprintf(stderr, "mmws-demo: %s\n", mmws_last_error());
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("mmws-demo: pool of %ld connections to %s for %ld s%s\n", conns,
           url, seconds,
           ctl ? ", killing a random connection every few seconds" : "");
    uint64_t start = mmws_now_ns(), end = start + (uint64_t)seconds * 1000000000ull;
    uint64_t next_table = start + 2000000000ull;
    uint64_t next_fault = start + (uint64_t)fault_ms * 1000000ull;
    while (!stop_flag && mmws_now_ns() < end) {
        mmws_loop_run_once(loop, 50);
        uint64_t now = mmws_now_ns();
        if (now >= next_table) {
            table(&d, (double)(now - start) / 1e9);
            next_table += 2000000000ull;
        }
        if (ctl && fault_ms && now >= next_fault) {
            if (mmws_pool_connected_count(d.pool) >= 3 &&
                control((int)ctl, "kill random") == 0)
                printf("fault: killed a random connection at the simulator\n");
            next_fault += (uint64_t)fault_ms * 1000000ull;
        }
    }
    table(&d, (double)(mmws_now_ns() - start) / 1e9);
    mmws_pool_stats st;
    mmws_pool_stats_get(d.pool, &st);
    if (d.out_of_order)
        printf("out of order: %llu\n", (unsigned long long)d.out_of_order);
    printf("summary: delivered=%llu duplicates=%llu gaps=%llu evictions=%llu "
           "reconnects=%llu\n",
           (unsigned long long)st.delivered, (unsigned long long)st.duplicates,
           (unsigned long long)d.gaps, (unsigned long long)st.evictions,
           (unsigned long long)st.replacements);
    mmws_pool_free(d.pool);
    mmws_loop_free(loop);
    return (d.gaps == 0 && d.out_of_order == 0 && st.delivered > 0) ? 0 : 1;
}
