/*
 * single_callback.c — the seed's quick start in C: connect to a stream,
 * subscribe, print each message with its receive time and the link's RTT.
 *
 *   single_callback [URL]   (default: Binance futures bookTicker)
 *
 * Runs until interrupted; reconnects (and re-subscribes) by itself.
 */
#include <signal.h>
#include <stdio.h>

#include <mmws/mmws.h>

static mmws_loop *loop;

static void on_message(void *user, const mmws_msg *m) {
    mmws_conn *conn = *(mmws_conn **)user;
    printf("[conn %llu #%llu rtt %.3f ms] %.*s\n",
           (unsigned long long)m->conn_id, (unsigned long long)m->seq,
           conn ? mmws_conn_latency_ema_ms(conn) : 0.0, (int)m->len,
           (const char *)m->data);
}

static void on_signal(int sig) {
    (void)sig;
    mmws_loop_stop(loop); /* safe from any thread or handler */
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1]
                               : "wss://fstream.binance.com/ws/btcusdt@bookTicker";
    static const char *subs[] = {
        "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@bookTicker\"],\"id\":1}"};

    loop = mmws_loop_new(NULL);
    if (!loop) return 1;

    mmws_conn_config cfg;
    mmws_conn_config_default(&cfg, url);
    cfg.on_connect = subs; /* replayed on every reconnect */
    cfg.on_connect_count = 1;

    mmws_conn *conn = NULL;
    if (mmws_conn_new(loop, &cfg, on_message, &conn, &conn) != 0) {
        fprintf(stderr, "single_callback: %s\n", mmws_last_error());
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    mmws_loop_run(loop);
    mmws_conn_free(conn);
    mmws_loop_free(loop);
    return 0;
}
