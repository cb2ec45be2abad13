/*
 * bench_utf8.c — UTF-8 validation speed against memcpy of the same bytes.
 *
 * (a) a 64 KiB stream of bookTicker-like JSON messages validated in one
 *     call; (b) the same messages validated one call per message, as the
 *     connection does; (c) mixed multibyte text, for information. The
 *     ASCII scanners are also timed alone on (a) to show what AVX2 adds.
 */
#include <mmws/codec.h>

#include "bench.h"
#include "codec/utf8_internal.h"

#define STREAM_CAP 65536
#define MAX_MSGS 1024

static uint64_t rng = 0x243F6A8885A308D3ull;

/* xorshift64: varying digits for the messages. */
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The stream and where each message in it starts and ends. */
struct stream {
    uint8_t buf[STREAM_CAP];
    size_t len;
    size_t off[MAX_MSGS + 1];
    size_t count;
    int sink; /* results, so no call is optimised away */
};

static struct stream js;

/* Fills js with bookTicker messages until the next would not fit. */
static void build_json(void) {
    uint64_t u = 400900217, t = 1700000000123ull;
    char msg[256];
    js.len = 0;
    js.count = 0;
    for (;;) {
        u += 1 + next_rand() % 50;
        t += next_rand() % 5;
        unsigned bid = 2500000000u + (unsigned)(next_rand() % 10000000);
        int n = snprintf(
            msg, sizeof msg,
            "{\"u\":%llu,\"s\":\"BNBUSDT\",\"b\":\"%u.%08u\",\"B\":\"%u.%08u\","
            "\"a\":\"%u.%08u\",\"A\":\"%u.%08u\",\"T\":%llu,\"E\":%llu}",
            (unsigned long long)u, bid / 100000000u, bid % 100000000u,
            (unsigned)(next_rand() % 100), (unsigned)(next_rand() % 100000000),
            (bid + 13000) / 100000000u, (bid + 13000) % 100000000u,
            (unsigned)(next_rand() % 100), (unsigned)(next_rand() % 100000000),
            (unsigned long long)t, (unsigned long long)(t + 2));
        if (n <= 0 || js.len + (size_t)n > STREAM_CAP || js.count == MAX_MSGS)
            break;
        memcpy(js.buf + js.len, msg, (size_t)n);
        js.off[js.count++] = js.len;
        js.len += (size_t)n;
    }
    js.off[js.count] = js.len;
}

/* Fills buf (cap bytes) with text mixing ASCII, Latin, Greek, Cyrillic,
 * CJK and emoji; returns the length. */
static size_t build_mixed(uint8_t *buf, size_t cap) {
    static const char *const words[] = {
        "price ",
        "caf\xC3\xA9 ",
        "\xCE\xBA\xCF\x8C\xCF\x83\xCE\xBC\xCE\xB5 ",
        "\xD1\x80\xD1\x8B\xD0\xBD\xD0\xBE\xD0\xBA ",
        "\xE5\xB8\x82\xE5\xA0\xB4 ",
        "\xE2\x82\xAC 25.35 ",
        "\xF0\x9F\x9A\x80 ",
        "order book update ",
    };
    size_t n = 0;
    for (;;) {
        const char *w = words[next_rand() % (sizeof words / sizeof words[0])];
        size_t l = strlen(w);
        if (n + l > cap) break;
        memcpy(buf + n, w, l);
        n += l;
    }
    return n;
}

/* (a): the whole stream in one call. */
static void run_stream(void *arg) {
    struct stream *s = arg;
    s->sink += mmws_utf8_check(s->buf, s->len);
    bench_clobber(s);
}

/* (b): one call per message. */
static void run_messages(void *arg) {
    struct stream *s = arg;
    int acc = 0;
    for (size_t i = 0; i < s->count; i++)
        acc |= mmws_utf8_check(s->buf + s->off[i], s->off[i + 1] - s->off[i]);
    s->sink += acc;
    bench_clobber(s);
}

static uint8_t copy_dst[STREAM_CAP];

/* Baseline for (b): one memcpy per message. */
static void run_memcpy_messages(void *arg) {
    struct stream *s = arg;
    for (size_t i = 0; i < s->count; i++) {
        memcpy(copy_dst + s->off[i], s->buf + s->off[i],
               s->off[i + 1] - s->off[i]);
        bench_clobber(copy_dst);
    }
}

/* A buffer for the scanner-only and mixed-text runs. */
struct blob {
    const uint8_t *p;
    size_t len;
    size_t sink;
};

#if defined(__x86_64__)
/* The SSE2 scanner alone over the stream. */
static void run_scan_sse2(void *arg) {
    struct blob *b = arg;
    b->sink += mmws__utf8_ascii_prefix_sse2(b->p, b->len);
    bench_clobber(b);
}

/* The AVX2 scanner alone over the stream. */
static void run_scan_avx2(void *arg) {
    struct blob *b = arg;
    b->sink += mmws__utf8_ascii_prefix_avx2(b->p, b->len);
    bench_clobber(b);
}
#endif

/* (c): mixed text in one call. */
static void run_blob(void *arg) {
    struct blob *b = arg;
    b->sink += (size_t)(mmws_utf8_check(b->p, b->len) != 0);
    bench_clobber(b);
}

int main(void) {
    build_json();
    if (mmws_utf8_check(js.buf, js.len) != 0) {
        fprintf(stderr, "bench_utf8: generated JSON is not valid UTF-8\n");
        return 1;
    }
    printf("bench_utf8: scanner %s; %zu bookTicker messages, %zu bytes "
           "(avg %.0f B/message)\n",
           mmws__utf8_impl(), js.count, js.len,
           (double)js.len / (double)js.count);

    double base = bench_memcpy_ns(js.buf, js.len);
    double ns = bench_best_ns(run_stream, &js);
    bench_report("(a) JSON stream, one call", js.len, ns, base, 0.5);

    double base_msg = bench_best_ns(run_memcpy_messages, &js);
    ns = bench_best_ns(run_messages, &js);
    bench_report("(b) JSON, one call per message", js.len, ns, base_msg, 0.5);
    printf("%-34s %8.1f ns/message  memcpy %5.1f ns/message\n", "",
           ns / (double)js.count, base_msg / (double)js.count);

#if defined(__x86_64__)
    struct blob scan = {js.buf, js.len, 0};
    ns = bench_best_ns(run_scan_sse2, &scan);
    bench_report("    ASCII scan only, sse2", js.len, ns, base, 0);
    if (mmws__utf8_have_avx2()) {
        ns = bench_best_ns(run_scan_avx2, &scan);
        bench_report("    ASCII scan only, avx2", js.len, ns, base, 0);
    }
#endif

    static uint8_t mixed[STREAM_CAP];
    struct blob mb = {mixed, build_mixed(mixed, sizeof mixed), 0};
    if (mmws_utf8_check(mb.p, mb.len) != 0) {
        fprintf(stderr, "bench_utf8: mixed text is not valid UTF-8\n");
        return 1;
    }
    base = bench_memcpy_ns(mb.p, mb.len);
    ns = bench_best_ns(run_blob, &mb);
    bench_report("(c) mixed multibyte text (info)", mb.len, ns, base, 0);
    return (js.sink | (int)mb.sink) ? 1 : 0;
}
