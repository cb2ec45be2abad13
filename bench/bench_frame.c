/*
 * bench_frame.c — frame parsing throughput: a buffer of 200-byte TEXT
 * frames (bookTicker-sized) and one of 8 KiB frames, parsed in place the
 * way a connection drains its read buffer. Reported as frames/s and GB/s,
 * beside memcpy of the same bytes measured in the same run. "hdrs" rows
 * parse headers only (payloads are not read, so their GB/s is a rate of
 * skipping); "+utf8" rows also validate every payload byte, which is what a
 * connection does with TEXT.
 */
#include "bench.h"

#include <mmws/codec.h>

#define BUF_BYTES (4u << 20)

struct parse_arg {
    const uint8_t *buf;
    size_t len;
    unsigned flags;
    size_t frames; /* counted by the last run, for checking */
};

/* Parses every frame of the buffer; what a receive loop does per read. */
static void parse_all(void *arg) {
    struct parse_arg *a = arg;
    mmws_frame_parser p;
    mmws_frame f;
    size_t pos = 0, frames = 0;
    mmws_frame_parser_init(&p, 1u << 20, a->flags);
    while (mmws_frame_parse(&p, a->buf + pos, a->len - pos, &f) == 0) {
        bench_clobber(f.payload);
        pos += (size_t)f.frame_len;
        frames++;
    }
    a->frames = frames;
}

/* Fills buf with unmasked TEXT frames of payload_len bytes of JSON-like
 * ASCII; returns the bytes used and the frame count in *count. */
static size_t make_frames(uint8_t *buf, size_t cap, size_t payload_len,
                          size_t *count) {
    size_t pos = 0, n = 0, hdr = payload_len <= 125 ? 2
                                : payload_len <= 0xFFFF ? 4 : 10;
    while (pos + hdr + payload_len <= cap) {
        uint8_t *h = buf + pos;
        h[0] = 0x81;
        if (hdr == 2) {
            h[1] = (uint8_t)payload_len;
        } else {
            h[1] = 126;
            h[2] = (uint8_t)(payload_len >> 8);
            h[3] = (uint8_t)payload_len;
        }
        char *p = (char *)h + hdr;
        for (size_t i = 0; i < payload_len; i++)
            p[i] = "{\"u\":400900217,\"s\":\"BNBUSDT\",\"b\":\"25.35190000\"}"
                [(i + n) % 48];
        pos += hdr + payload_len;
        n++;
    }
    *count = n;
    return pos;
}

static void bench_size(uint8_t *buf, size_t payload_len, const char *name) {
    size_t count = 0;
    size_t len = make_frames(buf, BUF_BYTES, payload_len, &count);
    double base = bench_memcpy_ns(buf, len);
    for (unsigned flags = 0; flags <= MMWS_FRAME_VALIDATE_UTF8; flags++) {
        struct parse_arg a = {buf, len, flags, 0};
        double ns = bench_best_ns(parse_all, &a);
        if (a.frames != count) {
            fprintf(stderr, "bench_frame: parsed %zu of %zu frames\n",
                    a.frames, count);
            exit(1);
        }
        char label[80];
        snprintf(label, sizeof label, "parse %s %s: %.2f Mframes/s", name,
                 flags ? "+utf8" : "hdrs", (double)count / ns * 1e3);
        bench_report(label, len, ns, base, 0);
    }
}

int main(void) {
    uint8_t *buf = malloc(BUF_BYTES);
    if (!buf) return 2;
    printf("frame parsing, %u MiB buffers, best of %d runs\n", BUF_BYTES >> 20,
           BENCH_RUNS);
    bench_size(buf, 200, "200 B");
    bench_size(buf, 8192, "8 KiB");
    free(buf);
    return 0;
}
