/*
 * pool_iterate.c — the seed's WsPool in C: five redundant connections to
 * one stream, each message once, consumed by pull iteration (the C
 * counterpart of `async for msg in pool`), and the per-connection scores.
 *
 *   pool_iterate [URL]   (default: Binance futures bookTicker)
 */
#include <stdio.h>

#include <mmws/mmws.h>

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1]
                               : "wss://fstream.binance.com/ws/btcusdt@bookTicker";
    mmws_loop *loop = mmws_loop_new(NULL);
    if (!loop) return 1;

    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    mmws_pool_config pcfg;
    mmws_pool_config_default(&pcfg); /* 5 connections, evict every 60 s */

    mmws_pool *pool;
    if (mmws_pool_new(loop, &cfg, &pcfg, NULL, NULL, &pool) != 0) {
        fprintf(stderr, "pool_iterate: %s\n", mmws_last_error());
        return 1;
    }
    mmws_msg msg;
    unsigned long n = 0;
    while (mmws_pool_next(pool, &msg, 5000) == 0) {
        printf("[conn %llu] %.*s\n", (unsigned long long)msg.conn_id,
               (int)msg.len, (const char *)msg.data);
        if (++n % 1000 == 0) {
            for (size_t i = 0; i < mmws_pool_size(pool); i++) {
                mmws_pool_conn_info ci;
                if (mmws_pool_conn_info_get(pool, i, &ci) == 0)
                    printf("  conn %llu score %.3f ms (rtt %.3f, lag %.3f, "
                           "first %.0f%%)\n",
                           (unsigned long long)ci.conn_id, ci.score_ms,
                           ci.latency_ema_ms, ci.lag_ema_ms,
                           100.0 * ci.first_share);
            }
        }
    }
    mmws_pool_free(pool);
    mmws_loop_free(loop);
    return 0;
}
