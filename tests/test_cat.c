/*
 * test_cat.c — the mmws-cat tool against both test servers (Node ws and
 * Python websockets): messages printed one per line, --count, --echo with
 * a clean server close, --insecure, plaintext ws://, --max-size, and the
 * exit codes for refused certificates and bad usage.
 */
#include <sys/wait.h>

#include "harness.h"
#include "test.h"

static char certs[256], cat_bin[512];
static size_t out_len; /* bytes captured by the last run_cat */

/* Runs mmws-cat with args (a shell-quoted string); captures stdout and
 * stderr (merged, up to cap bytes); returns the exit code. */
static int run_cat(const char *args, char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "timeout 30 '%s' %s 2>&1", cat_bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    out_len = n;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_in(const char *out, const char *want) {
    t_checks++;
    if (!strstr(out, want)) {
        t_failed++;
        T_FAIL_HDR();
        fprintf(stderr, "output lacks \"%s\":\n%s\n", want, out);
    }
}

static void against(const char *kind) {
    th_server tls, plain;
    char crt[300], key[300], args[1024], out[8192];
    snprintf(crt, sizeof crt, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    if (th_server_start(&tls, kind, NULL, crt, key) != 0) {
        CHECK_FAIL("tls server start");
        return;
    }
    if (th_server_start(&plain, kind, NULL, NULL, NULL) != 0) {
        CHECK_FAIL("plain server start");
        th_server_stop(&tls);
        return;
    }
    const char *send3 =
        "--send '#{\"cmd\":\"send\",\"count\":3,\"size\":5,\"binary\":false,"
        "\"fragment\":0}'";

    /* Verified wss, --count. */
    snprintf(args, sizeof args,
             "--ca %s/ca.pem --resolve 127.0.0.1 %s --count 3 "
             "wss://localhost:%d/", certs, send3, tls.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 0);
    CHECK_STR(out, "abcde\nabcde\nabcde\n");

    /* --count stops at N even when many more arrive in one read. */
    snprintf(args, sizeof args,
             "--ca %s/ca.pem --resolve 127.0.0.1 --send '#{\"cmd\":\"send\","
             "\"count\":500,\"size\":5,\"binary\":false,\"fragment\":0}' "
             "--count 3 wss://localhost:%d/", certs, tls.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 0);
    CHECK_STR(out, "abcde\nabcde\nabcde\n");

    /* --echo until the server closes cleanly (1000). */
    snprintf(args, sizeof args,
             "--ca %s/ca.pem --resolve 127.0.0.1 %s "
             "--send '#{\"cmd\":\"close\",\"code\":1000,\"reason\":\"\"}' "
             "--echo wss://localhost:%d/", certs, send3, tls.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 0);
    expect_in(out, "abcde\n");

    /* The server's certificate is not trusted without --ca ... */
    snprintf(args, sizeof args, "--resolve 127.0.0.1 --count 1 wss://localhost:%d/",
             tls.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 1);
    expect_in(out, "certificate verify failed");
    /* ... unless --insecure. */
    snprintf(args, sizeof args, "--insecure --resolve 127.0.0.1 %s --count 3 "
             "wss://localhost:%d/", send3, tls.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 0);

    /* Plaintext ws:// is allowed on the command line. */
    snprintf(args, sizeof args, "%s --count 3 ws://127.0.0.1:%d/", send3,
             plain.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 0);
    CHECK_STR(out, "abcde\nabcde\nabcde\n");

    /* --max-size: a bigger message fails the connection with 1009. */
    snprintf(args, sizeof args,
             "--max-size 100 --send '#{\"cmd\":\"send\",\"count\":1,"
             "\"size\":200,\"binary\":false,\"fragment\":0}' --count 1 "
             "ws://127.0.0.1:%d/", plain.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 1);
    expect_in(out, "1009");

    /* --binary prints binary messages; --seconds ends a quiet session. */
    snprintf(args, sizeof args,
             "--binary --send '#{\"cmd\":\"send\",\"count\":1,\"size\":3,"
             "\"binary\":true,\"fragment\":0}' --count 1 ws://127.0.0.1:%d/",
             plain.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 0);
    CHECK_MEM(out, out_len, "\x00\x01\x02\n", 4);
    snprintf(args, sizeof args, "--seconds 1 ws://127.0.0.1:%d/", plain.port);
    CHECK_EQ(run_cat(args, out, sizeof out), 0);

    th_server_stop(&plain);
    th_server_stop(&tls);
}

static void usage_errors(void) {
    char out[4096];
    CHECK_EQ(run_cat("", out, sizeof out), 2);
    expect_in(out, "usage: mmws-cat");
    CHECK_EQ(run_cat("--count x ws://127.0.0.1:1/", out, sizeof out), 2);
    expect_in(out, "--count needs a number");
    CHECK_EQ(run_cat("http://example.invalid/", out, sizeof out), 2);
    expect_in(out, "wss_url must start with wss://");
    CHECK_EQ(run_cat("--bogus ws://127.0.0.1:1/", out, sizeof out), 2);
    /* Nothing listens on port 1: a clear connect error, exit 1. */
    CHECK_EQ(run_cat("ws://127.0.0.1:1/", out, sizeof out), 1);
    expect_in(out, "refused");
}

static void node(void) { against("node"); }
static void python(void) { against("python"); }

int main(void) {
    const char *bd = getenv("MMWS_BUILD_DIR");
    snprintf(cat_bin, sizeof cat_bin, "%s/mmws-cat", bd ? bd : ".");
    if (access(cat_bin, X_OK) != 0) {
        printf("test_cat: %s not built\n", cat_bin);
        return 1;
    }
    char why[256];
    for (int k = 0; k < 2; k++) {
        const char *kind = k ? "python" : "node";
        if (!th_servers_available(kind, why, sizeof why)) {
            printf("test_cat: %s server unavailable: %s\n", kind, why);
            return getenv("MMWS_ALLOW_SKIP") ? 0 : 1;
        }
    }
    if (th_certs(certs, sizeof certs) != 0) return 1;
    RUN(usage_errors);
    RUN(node);
    RUN(python);
    th_certs_remove(certs);
    return TEST_END("test_cat");
}
