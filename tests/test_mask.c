/* test_mask.c — RFC 6455 5.3 masking: every variant against a byte loop. */
#include "test.h"

#include "codec/mask_internal.h"

#define MAX_LEN 1024
#define MAX_MIS 64
#define PAD 64

static const uint8_t rfc_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* The definition, byte by byte. */
static void ref_mask(uint8_t *d, size_t len, const uint8_t key[4],
                     size_t off) {
    for (size_t i = 0; i < len; i++) d[i] ^= key[(off + i) & 3];
}

static void fill_rand(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)t_rand();
}

/* 1 if variant v can run here; otherwise says why it is skipped (once). */
static int usable(const mmws__mask_variant *v, int say) {
    if (v->supported()) return 1;
    if (say) printf("skip %s: CPU lacks %s\n", v->name, v->needs);
    return 0;
}

/* RFC 6455 5.7: "Hello" masked with 37 fa 21 3d. */
static void test_rfc_example(void) {
    static const uint8_t want[5] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t buf[5];
    memcpy(buf, "Hello", 5);
    mmws_mask(buf, 5, rfc_key, 0);
    CHECK_MEM(buf, 5, want, 5);
    for (size_t v = 0; v < mmws__mask_variant_count; v++) {
        if (!usable(&mmws__mask_variants[v], 0)) continue;
        memcpy(buf, "Hello", 5);
        mmws__mask_variants[v].fn(buf, 5, rfc_key, 0);
        CHECK_MEM(buf, 5, want, 5);
    }
    /* The same payload masked from offset 1 uses the key rotated by one. */
    memcpy(buf, "Hello", 5);
    mmws_mask(buf + 1, 4, rfc_key, 1);
    mmws_mask(buf, 1, rfc_key, 0);
    CHECK_MEM(buf, 5, want, 5);
}

/* mmws_mask_impl() names the first supported variant; len 0 is a no-op. */
static void test_dispatch(void) {
    const char *impl = mmws_mask_impl();
    const char *want = NULL;
    for (size_t v = 0; v < mmws__mask_variant_count && !want; v++)
        if (mmws__mask_variants[v].supported())
            want = mmws__mask_variants[v].name;
    CHECK(want != NULL);
    if (want) CHECK_STR(impl, want);
    CHECK_STR(mmws__mask_variants[mmws__mask_variant_count - 1].name,
              "scalar");
    printf("     dispatched variant: %s\n", impl);
    mmws_mask(NULL, 0, rfc_key, 0);
    for (size_t v = 0; v < mmws__mask_variant_count; v++)
        if (usable(&mmws__mask_variants[v], 0))
            mmws__mask_variants[v].fn(NULL, 0, rfc_key, 3);
}

/*
 * Checks fn against the reference for every length 0..MAX_LEN, key offset
 * 0..3 and data misalignment 0..63, with the bytes around data untouched.
 * Reports the first mismatch only.
 */
static void exhaustive(const char *name, mmws__mask_fn fn) {
    static uint8_t src[MAX_LEN], want[4][MAX_LEN];
    static _Alignas(64) uint8_t buf[PAD + MAX_MIS + MAX_LEN + PAD];
    uint8_t key[4];
    fill_rand(src, sizeof src);
    fill_rand(key, 4);
    for (size_t off = 0; off < 4; off++) {
        memcpy(want[off], src, MAX_LEN);
        ref_mask(want[off], MAX_LEN, key, off);
    }
    unsigned long bad = 0;
    memset(buf, 0xa5, sizeof buf);
    for (size_t len = 0; len <= MAX_LEN; len++) {
        for (size_t off = 0; off < 4; off++) {
            for (size_t mis = 0; mis < MAX_MIS; mis++) {
                uint8_t *d = buf + PAD + mis;
                memcpy(d, src, len);
                /* Large offsets wrap the same way as offset & 3. */
                fn(d, len, key, off + (len & 1 ? SIZE_MAX - 3 : 0));
                int ok = len == 0 || memcmp(d, want[off], len) == 0;
                for (uint8_t *p = buf; ok && p < d; p++) ok = *p == 0xa5;
                for (uint8_t *p = d + len; ok && p < buf + sizeof buf; p++)
                    ok = *p == 0xa5;
                if (!ok && bad++ == 0)
                    fprintf(stderr,
                            "FAIL %s: len %zu offset %zu misalign %zu\n",
                            name, len, off, mis);
                memset(d, 0xa5, len);
            }
        }
    }
    CHECK_EQ(bad, 0);
}

/* Every supported variant, and mmws_mask itself, against the reference. */
static void test_all_lengths_offsets_alignments(void) {
    for (size_t v = 0; v < mmws__mask_variant_count; v++) {
        if (!usable(&mmws__mask_variants[v], 1)) continue;
        exhaustive(mmws__mask_variants[v].name, mmws__mask_variants[v].fn);
    }
    exhaustive("mmws_mask", mmws_mask);
}

/* Masking in random pieces with the running offset equals masking whole. */
static void pieces(mmws__mask_fn fn) {
    uint8_t src[3000], whole[3000], split[3000], key[4];
    for (int trial = 0; trial < 200; trial++) {
        size_t len = (size_t)(t_rand() % sizeof src);
        size_t start = (size_t)(t_rand() % 4);
        fill_rand(src, len);
        fill_rand(key, 4);
        memcpy(whole, src, len);
        memcpy(split, src, len);
        fn(whole, len, key, start);
        ref_mask(src, len, key, start);
        CHECK_MEM(whole, len, src, len);
        for (size_t pos = 0; pos < len;) {
            size_t n = (size_t)(t_rand() % (trial & 1 ? 9 : 300));
            if (n > len - pos) n = len - pos;
            fn(split + pos, n, key, start + pos);
            pos += n;
        }
        CHECK_MEM(split, len, whole, len);
    }
}

static void test_pieces(void) {
    for (size_t v = 0; v < mmws__mask_variant_count; v++)
        if (usable(&mmws__mask_variants[v], 0))
            pieces(mmws__mask_variants[v].fn);
    pieces(mmws_mask);
}

/* Masking twice with the same key and offset restores the input. */
static void test_involution(void) {
    uint8_t src[5000], buf[5000], key[4];
    for (size_t v = 0; v <= mmws__mask_variant_count; v++) {
        mmws__mask_fn fn = mmws_mask;
        if (v < mmws__mask_variant_count) {
            if (!usable(&mmws__mask_variants[v], 0)) continue;
            fn = mmws__mask_variants[v].fn;
        }
        for (int trial = 0; trial < 100; trial++) {
            size_t len = (size_t)(t_rand() % sizeof src);
            size_t mis = (size_t)(t_rand() % 64);
            size_t off = (size_t)t_rand();
            if (len + mis > sizeof src) len = sizeof src - mis;
            fill_rand(src, sizeof src);
            fill_rand(key, 4);
            memcpy(buf, src, sizeof src);
            fn(buf + mis, len, key, off);
            if (len >= 16) CHECK(memcmp(buf + mis, src + mis, len) != 0);
            fn(buf + mis, len, key, off);
            CHECK_MEM(buf, sizeof buf, src, sizeof src);
        }
    }
}

/*
 * Data ends against a PROT_NONE page (any read or write past the end
 * faults), then starts right after one (any access before the start
 * faults); the 16 bytes before data in the first case stay untouched.
 */
static void test_guard_pages(void) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t src[300], want[300], key[4];
    fill_rand(src, sizeof src);
    fill_rand(key, 4);
    uint8_t *front = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (front == MAP_FAILED || mprotect(front, pg, PROT_NONE) != 0) {
        perror("mmap");
        exit(2);
    }
    for (size_t len = 0; len <= sizeof src; len++) {
        size_t off = len % 4;
        memcpy(want, src, len);
        ref_mask(want, len, key, off);
        unsigned char *g = guard_alloc(len + 16);
        uint8_t *d = g + 16;
        for (size_t v = 0; v <= mmws__mask_variant_count; v++) {
            mmws__mask_fn fn = mmws_mask;
            if (v < mmws__mask_variant_count) {
                if (!usable(&mmws__mask_variants[v], 0)) continue;
                fn = mmws__mask_variants[v].fn;
            }
            memset(g, 0x5a, 16);
            memcpy(d, src, len);
            fn(d, len, key, off);
            CHECK_MEM(d, len, want, len);
            for (size_t i = 0; i < 16; i++) CHECK_EQ(g[i], 0x5a);

            uint8_t *f = front + pg;
            memcpy(f, src, len);
            fn(f, len, key, off);
            CHECK_MEM(f, len, want, len);
        }
        guard_free(g, len + 16);
    }
    munmap(front, 2 * pg);
}

int main(void) {
    RUN(test_rfc_example);
    RUN(test_dispatch);
    RUN(test_all_lengths_offsets_alignments);
    RUN(test_pieces);
    RUN(test_involution);
    RUN(test_guard_pages);
    return TEST_END("test_mask");
}
