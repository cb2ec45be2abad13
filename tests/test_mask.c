/* test_mask.c — RFC 6455 5.3 masking: every variant, in place and fused
 * with a copy, against a byte loop. */
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
        memset(buf, 0, 5);
        mmws__mask_variants[v].copy(buf, (const uint8_t *)"Hello", 5,
                                    rfc_key, 0);
        CHECK_MEM(buf, 5, want, 5);
    }
    memset(buf, 0, 5);
    mmws__mask_copy(buf, (const uint8_t *)"Hello", 5, rfc_key, 0);
    CHECK_MEM(buf, 5, want, 5);
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
    mmws__mask_copy(NULL, NULL, 0, rfc_key, 0);
    for (size_t v = 0; v < mmws__mask_variant_count; v++) {
        if (!usable(&mmws__mask_variants[v], 0)) continue;
        mmws__mask_variants[v].fn(NULL, 0, rfc_key, 3);
        mmws__mask_variants[v].copy(NULL, NULL, 0, rfc_key, 3);
    }
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

/* Destination misalignments tried against every source misalignment. */
static const size_t dst_mis[] = {0, 1, 7, 16, 31, 32, 63};

/* 1 if p[0..n) are all 0xa5. */
static int untouched(const uint8_t *p, size_t n) {
    static uint8_t a5[PAD + MAX_MIS + MAX_LEN + PAD];
    if (!a5[0]) memset(a5, 0xa5, sizeof a5);
    return n == 0 || memcmp(p, a5, n) == 0;
}

/*
 * Checks copy fn against the reference for every length 0..MAX_LEN, key
 * offset 0..3 and source misalignment 0..63, each with the destination at
 * the misalignments in dst_mis and in place (dst == src). The source must
 * come through unchanged (unless it is the destination) and the bytes
 * around the destination untouched. Reports the first mismatch only.
 */
static void exhaustive_copy(const char *name, mmws__mask_copy_fn fn) {
    static uint8_t src[MAX_LEN], want[4][MAX_LEN];
    static _Alignas(64) uint8_t sbuf[MAX_MIS + MAX_LEN];
    static _Alignas(64) uint8_t buf[PAD + MAX_MIS + MAX_LEN + PAD];
    const size_t ndst = sizeof dst_mis / sizeof dst_mis[0];
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
                memcpy(sbuf + mis, src, len);
                /* dm == ndst stands for in place. */
                for (size_t dm = 0; dm <= ndst; dm++) {
                    int in_place = dm == ndst;
                    uint8_t *d = buf + PAD + (in_place ? mis : dst_mis[dm]);
                    const uint8_t *s = sbuf + mis;
                    if (in_place) {
                        memcpy(d, src, len);
                        s = d;
                    }
                    /* Large offsets wrap the same way as offset & 3. */
                    fn(d, s, len, key, off + (len & 1 ? SIZE_MAX - 3 : 0));
                    int ok = len == 0 || memcmp(d, want[off], len) == 0;
                    ok = ok && untouched(buf, (size_t)(d - buf)) &&
                         untouched(d + len,
                                   (size_t)(buf + sizeof buf - (d + len)));
                    if (!in_place)
                        ok = ok && (len == 0 || memcmp(s, src, len) == 0);
                    if (!ok && bad++ == 0)
                        fprintf(stderr,
                                "FAIL %s: len %zu offset %zu src misalign "
                                "%zu dst %s%zu\n",
                                name, len, off, mis,
                                in_place ? "in place at " : "misalign ",
                                in_place ? mis : dst_mis[dm]);
                    memset(d, 0xa5, len);
                }
            }
        }
    }
    CHECK_EQ(bad, 0);
}

/* Every supported copy variant, and mmws__mask_copy, against the
 * reference. */
static void test_copy_lengths_offsets_alignments(void) {
    for (size_t v = 0; v < mmws__mask_variant_count; v++) {
        if (!usable(&mmws__mask_variants[v], 0)) continue;
        exhaustive_copy(mmws__mask_variants[v].name,
                        mmws__mask_variants[v].copy);
    }
    exhaustive_copy("mmws__mask_copy", mmws__mask_copy);
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

/* Copying in random pieces with the running offset equals masking whole. */
static void copy_pieces(mmws__mask_copy_fn fn) {
    uint8_t src[3000], want[3000], split[3000], key[4];
    for (int trial = 0; trial < 200; trial++) {
        size_t len = (size_t)(t_rand() % sizeof src);
        size_t start = (size_t)(t_rand() % 4);
        fill_rand(src, len);
        fill_rand(key, 4);
        memcpy(want, src, len);
        ref_mask(want, len, key, start);
        for (size_t pos = 0; pos < len;) {
            size_t n = (size_t)(t_rand() % (trial & 1 ? 9 : 300));
            if (n > len - pos) n = len - pos;
            fn(split + pos, src + pos, n, key, start + pos);
            pos += n;
        }
        CHECK_MEM(split, len, want, len);
    }
}

static void test_pieces(void) {
    for (size_t v = 0; v < mmws__mask_variant_count; v++) {
        if (!usable(&mmws__mask_variants[v], 0)) continue;
        pieces(mmws__mask_variants[v].fn);
        copy_pieces(mmws__mask_variants[v].copy);
    }
    pieces(mmws_mask);
    copy_pieces(mmws__mask_copy);
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

/* A page of PROT_NONE followed by a usable page; returns the usable one. */
static uint8_t *page_after_guard(size_t pg) {
    uint8_t *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, pg, PROT_NONE) != 0) {
        perror("mmap");
        exit(2);
    }
    return m + pg;
}

/*
 * The copy variants with guard pages: the source ends against a PROT_NONE
 * page while the destination starts right after one, then the reverse, so
 * any access before the start or past the end of either faults; then in
 * place at both ends. The 16 bytes on the open side of the destination stay
 * untouched, and the source is not written (it is read-only while copied).
 */
static void test_copy_guard_pages(void) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t src[300], want[300], key[4];
    fill_rand(src, sizeof src);
    fill_rand(key, 4);
    uint8_t *front_s = page_after_guard(pg), *front_d = page_after_guard(pg);
    for (size_t len = 0; len <= sizeof src; len++) {
        size_t off = (len * 7) % 4;
        memcpy(want, src, len);
        ref_mask(want, len, key, off);
        unsigned char *gs = guard_alloc(len);
        unsigned char *gd = guard_alloc(len + 16);
        uint8_t *end_d = gd + 16;
        /* The page gs lies in (the one before the guard when len is 0). */
        void *src_page =
            (void *)(((uintptr_t)gs + len - 1) & ~(uintptr_t)(pg - 1));
        for (size_t v = 0; v <= mmws__mask_variant_count; v++) {
            mmws__mask_copy_fn fn = mmws__mask_copy;
            if (v < mmws__mask_variant_count) {
                if (!usable(&mmws__mask_variants[v], 0)) continue;
                fn = mmws__mask_variants[v].copy;
            }
            /* Source at the end of its page, destination at the start. */
            memcpy(gs, src, len);
            CHECK_EQ(mprotect(src_page, pg, PROT_READ), 0);
            memset(front_d, 0x5a, len + 16);
            fn(front_d, gs, len, key, off);
            CHECK_MEM(front_d, len, want, len);
            for (size_t i = 0; i < 16; i++) CHECK_EQ(front_d[len + i], 0x5a);
            CHECK_EQ(mprotect(src_page, pg, PROT_READ | PROT_WRITE), 0);
            CHECK_MEM(gs, len, src, len);

            /* Source at the start of its page, destination at the end. */
            memcpy(front_s, src, len);
            memset(gd, 0x5a, 16);
            fn(end_d, front_s, len, key, off);
            CHECK_MEM(end_d, len, want, len);
            for (size_t i = 0; i < 16; i++) CHECK_EQ(gd[i], 0x5a);
            CHECK_MEM(front_s, len, src, len);

            /* In place, at the end and at the start of a page. */
            memcpy(gs, src, len);
            fn(gs, gs, len, key, off);
            CHECK_MEM(gs, len, want, len);
            memcpy(front_s, src, len);
            fn(front_s, front_s, len, key, off);
            CHECK_MEM(front_s, len, want, len);
        }
        guard_free(gd, len + 16);
        guard_free(gs, len);
    }
    munmap(front_s - pg, 2 * pg);
    munmap(front_d - pg, 2 * pg);
}

int main(void) {
    RUN(test_rfc_example);
    RUN(test_dispatch);
    RUN(test_all_lengths_offsets_alignments);
    RUN(test_pieces);
    RUN(test_involution);
    RUN(test_guard_pages);
    RUN(test_copy_lengths_offsets_alignments);
    RUN(test_copy_guard_pages);
    return TEST_END("test_mask");
}
