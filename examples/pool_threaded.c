/*
 * pool_threaded.c — a pool whose loop runs on its own I/O thread (pinned
 * to a CPU if one is given), consumed by this thread at its own pace: the
 * I/O thread keeps answering pings and replacing connections while the
 * consumer works; what the consumer cannot keep up with is dropped by the
 * ring's policy and counted.
 *
 *   pool_threaded [URL [CPU]]   (default: Binance futures bookTicker)
 */
#include <stdio.h>
#include <stdlib.h>

#include <mmws/mmws.h>

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1]
                               : "wss://fstream.binance.com/ws/btcusdt@bookTicker";
    mmws_loop *loop = mmws_loop_new(NULL);
    if (!loop) return 1;
    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    mmws_pool_config pcfg;
    mmws_pool_config_default(&pcfg);
    pcfg.ring.capacity = 65536;          /* the hand-off ring */

    mmws_thread_config tcfg;
    mmws_thread_config_default(&tcfg);
    if (argc > 2) tcfg.cpu = atoi(argv[2]);

    mmws_pool *pool;
    if (mmws_pool_new(loop, &cfg, &pcfg, NULL, NULL, &pool) != 0 ||
        mmws_pool_start_thread(pool, &tcfg) != 0) {
        fprintf(stderr, "pool_threaded: %s\n", mmws_last_error());
        return 1;
    }
    mmws_msg msg;
    unsigned long n = 0;
    while (mmws_pool_next(pool, &msg, 5000) == 0) { /* valid until the next call */
        printf("[conn %llu] %.*s\n", (unsigned long long)msg.conn_id,
               (int)msg.len, (const char *)msg.data);
        if (++n % 1000 == 0) {
            mmws_thread_stats ts;
            mmws_pool_thread_stats(pool, &ts);
            printf("  %zu connected, %llu dropped by the ring, %zu waiting\n",
                   mmws_pool_connected_count(pool),
                   (unsigned long long)(ts.handoff.dropped_oldest +
                                        ts.handoff.dropped_newest),
                   ts.handoff_pending);
        }
    }
    mmws_pool_free(pool); /* stops and joins the I/O thread */
    mmws_loop_free(loop);
    return 0;
}
