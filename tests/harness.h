/*
 * harness.h — starts and stops the independent WebSocket test servers of
 * the integration tests (tests/servers/node/server.js on Node's `ws`,
 * tests/servers/py/server.py on Debian's python3-websockets), makes the
 * test PKI, and counts open fds. Header-only, static inline functions.
 *
 * The servers listen on loopback only, print "LISTENING <port>" once, and
 * speak the command protocol documented at the top of either server file
 * (echo, "#{"cmd":"send",...}", close, kill, stall, count, ping; modes
 * normal, noupgrade, status:NNN).
 *
 *   th_server s;
 *   char certs[256];
 *   if (th_require_servers("node") <= 0) ...skip or fail...
 *   th_certs(certs, sizeof certs);               (only for wss://)
 *   th_server_start(&s, "node", NULL, NULL, NULL);   ws://127.0.0.1:s.port/
 *   ...
 *   th_server_stop(&s);
 *   th_certs_remove(certs);
 *
 * The source tree is found from $MMWS_SOURCE_DIR (CMake sets it for the
 * tests), else from this header's own path (__FILE__). Server children get
 * their own process group, no inherited fds beyond 0-2, and die with the
 * test process (PR_SET_PDEATHSIG; so start them from the main thread).
 * Nothing here is thread-safe. Messages go to stderr.
 */
#ifndef MMWS_TEST_HARNESS_H
#define MMWS_TEST_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One running server process. pid is 0 when none runs. */
typedef struct th_server {
    pid_t pid;     /* the server process (also its process group id) */
    int port;      /* the port it listens on (loopback) */
    char name[16]; /* "node" or "python" */
} th_server;

/* How long a server may take to print LISTENING, and to exit on SIGTERM. */
#define TH_START_TIMEOUT_MS 20000
#define TH_STOP_TIMEOUT_MS 5000
#define TH_PYTHON "/usr/bin/python3"

/* ------------------------------------------------------------- helpers -- */

static inline long long th_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void th_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * snprintf that returns 0, or -1 if the output did not fit (it is then cut
 * short but still NUL-terminated).
 */
__attribute__((format(printf, 3, 4)))
static inline int th_fmt(char *out, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

static inline int th_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/*
 * Writes the source tree's root to out: $MMWS_SOURCE_DIR if set, else the
 * directory above this header (__FILE__ ends in "tests/harness.h"; a
 * relative __FILE__ is relative to where the compiler ran). Returns 0, or
 * -1 if out is too small.
 */
static inline int th_source_dir(char *out, size_t len) {
    const char *env = getenv("MMWS_SOURCE_DIR");
    if (env && *env) return th_fmt(out, len, "%s", env);
    const char *f = __FILE__;
    const char *suffix = "tests/harness.h";
    size_t fl = strlen(f), sl = strlen(suffix);
    size_t dl = fl >= sl && strcmp(f + fl - sl, suffix) == 0 ? fl - sl : 0;
    if (dl == 0) /* "tests/harness.h", or renamed */
        return th_fmt(out, len, ".");
    if (dl == 1) /* "/tests/harness.h" */
        return th_fmt(out, len, "/");
    return th_fmt(out, len, "%.*s", (int)(dl - 1), f); /* "DIR/tests/..." */
}

/* 1 if an executable named prog is on $PATH (or prog is a path to one). */
static inline int th_on_path(const char *prog) {
    if (strchr(prog, '/')) return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    char buf[4096];
    while (*path) {
        const char *end = strchr(path, ':');
        size_t dl = end ? (size_t)(end - path) : strlen(path);
        int rc = dl ? th_fmt(buf, sizeof buf, "%.*s/%s", (int)dl, path, prog)
                    : th_fmt(buf, sizeof buf, "./%s", prog);
        if (rc == 0 && access(buf, X_OK) == 0)
            return 1;
        if (!end) break;
        path = end + 1;
    }
    return 0;
}

/* In a forked child: closes every fd above 2 (none leak into servers). */
static inline void th_child_close_fds(void) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = 3; fd < (int)max; fd++) close(fd);
}

/* In a forked child: default signal dispositions, nothing blocked. */
static inline void th_child_reset_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
}

/*
 * Runs argv (execvp) with stdin from /dev/null, stdout to /dev/null when
 * quiet_stdout, stderr inherited; waits for it. Returns its wait status,
 * or -1 if it could not be started.
 */
static inline int th_run(char *const argv[], int quiet_stdout) {
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            if (quiet_stdout) dup2(nul, 1);
        }
        th_child_close_fds();
        th_child_reset_signals();
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return st;
}

/* ------------------------------------------------------------- servers -- */

/*
 * 1 if the runtime and the package for kind ("node" or "python") are
 * installed; else 0 with the reason in why (may be NULL).
 */
static inline int th_servers_available(const char *kind, char *why,
                                       size_t len) {
    char src[2048], path[2200];
    char dummy[8];
    if (!why) {
        why = dummy;
        len = sizeof dummy;
    }
    if (len) why[0] = '\0';
    if (th_source_dir(src, sizeof src) != 0) {
        (void)th_fmt(why, len, "source dir path too long");
        return 0;
    }
    if (kind && strcmp(kind, "node") == 0) {
        if (!th_on_path("node")) {
            (void)th_fmt(why, len, "node not found on PATH (install nodejs: "
                               "scripts/deps.sh)");
            return 0;
        }
        (void)th_fmt(path, sizeof path,
                 "%s/tests/servers/node/node_modules/ws/package.json", src);
        if (!th_file_exists(path)) {
            (void)th_fmt(why, len, "%s missing (run scripts/test-deps.sh)",
                         path);
            return 0;
        }
        return 1;
    }
    if (kind && strcmp(kind, "python") == 0) {
        if (access(TH_PYTHON, X_OK) != 0) {
            (void)th_fmt(why, len, TH_PYTHON " not found (install python3: "
                               "scripts/deps.sh)");
            return 0;
        }
        char *argv[] = {TH_PYTHON, "-c", "import websockets", NULL};
        int st = th_run(argv, 1);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            (void)th_fmt(why, len, TH_PYTHON " cannot import websockets "
                               "(install python3-websockets: scripts/deps.sh)");
            return 0;
        }
        return 1;
    }
    (void)th_fmt(why, len, "unknown server kind \"%s\" (node or python)",
             kind ? kind : "(null)");
    return 0;
}

/*
 * For a test about to use kind: 1 if its servers are available. If not,
 * prints "skip: <why>" and returns 0 when $MMWS_ALLOW_SKIP is 1 (skip the
 * test), -1 otherwise (the install is broken: the test must fail).
 */
static inline int th_require_servers(const char *kind) {
    char why[512];
    if (th_servers_available(kind, why, sizeof why)) return 1;
    const char *allow = getenv("MMWS_ALLOW_SKIP");
    int skip = allow && strcmp(allow, "1") == 0;
    printf("skip: %s%s\n", why,
           skip ? "" : " (failing: set MMWS_ALLOW_SKIP=1 to allow skipping)");
    fflush(stdout);
    return skip ? 0 : -1;
}

/*
 * Starts argv (searched on PATH if search_path) in its own process group,
 * stdin from /dev/null, stdout into a pipe whose read end is p[0] (p[1] is
 * closed here), no other fds inherited, signals at their defaults, and
 * SIGKILLed if the test dies. Returns the pid, or -1 with errno set.
 */
static inline pid_t th_spawn(const char *const argv[], int search_path,
                             int p[2]) {
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(p[1], 1);
        th_child_close_fds();
        th_child_reset_signals();
        if (search_path)
            execvp(argv[0], (char *const *)(uintptr_t)argv);
        else
            execv(argv[0], (char *const *)(uintptr_t)argv);
        fprintf(stderr, "th_spawn: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so it holds before we signal -pid */
    close(p[1]);
    return pid;
}

/*
 * Starts a server of kind ("node" or "python") listening on host (a
 * loopback address: "127.0.0.1" or "::1") on a free port; mode is NULL or
 * "normal", "noupgrade", "status:NNN"; cert and key are PEM files for
 * wss://, or both NULL for ws://. Waits up to TH_START_TIMEOUT_MS for its
 * "LISTENING <port>" line. Returns 0 with s filled in, or -1 (nothing left
 * running, s->pid 0, the reason on stderr).
 */
static inline int th_server_start_host(th_server *s, const char *kind,
                                       const char *mode, const char *cert,
                                       const char *key, const char *host) {
    char src[2048], script[2200];
    const char *prog;
    memset(s, 0, sizeof *s);
    if (!kind || (strcmp(kind, "node") != 0 && strcmp(kind, "python") != 0)) {
        fprintf(stderr, "th_server_start: unknown kind \"%s\"\n",
                kind ? kind : "(null)");
        return -1;
    }
    if ((cert == NULL) != (key == NULL)) {
        fprintf(stderr, "th_server_start(%s): give both cert and key, or "
                        "neither\n", kind);
        return -1;
    }
    if (th_source_dir(src, sizeof src) != 0) {
        fprintf(stderr, "th_server_start(%s): source dir too long\n", kind);
        return -1;
    }
    if (strcmp(kind, "node") == 0) {
        prog = "node";
        (void)th_fmt(script, sizeof script, "%s/tests/servers/node/server.js",
                     src);
    } else {
        prog = TH_PYTHON;
        (void)th_fmt(script, sizeof script, "%s/tests/servers/py/server.py",
                     src);
    }
    if (!th_file_exists(script)) {
        fprintf(stderr, "th_server_start(%s): %s not found (set "
                        "MMWS_SOURCE_DIR)\n", kind, script);
        return -1;
    }

    const char *argv[12];
    int ac = 0;
    argv[ac++] = prog;
    argv[ac++] = script;
    argv[ac++] = "--port";
    argv[ac++] = "0";
    argv[ac++] = "--host";
    argv[ac++] = host ? host : "127.0.0.1";
    if (cert) {
        argv[ac++] = "--tls";
        argv[ac++] = cert;
        argv[ac++] = key;
    }
    if (mode) {
        argv[ac++] = "--mode";
        argv[ac++] = mode;
    }
    argv[ac] = NULL;

    int p[2];
    pid_t pid = th_spawn(argv, 1, p);
    if (pid < 0) {
        fprintf(stderr, "th_server_start(%s): cannot start %s: %s\n", kind,
                argv[0], strerror(errno));
        return -1;
    }

    /* Read "LISTENING <port>\n" within the bound. */
    char line[256];
    size_t got = 0;
    int eof = 0, done = 0;
    long long deadline = th_now_ms() + TH_START_TIMEOUT_MS;
    while (!done && !eof && got < sizeof line - 1) {
        long long left = deadline - th_now_ms();
        if (left <= 0) break;
        struct pollfd pfd = {p[0], POLLIN, 0};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        ssize_t n = read(p[0], line + got, sizeof line - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            eof = 1;
            break;
        }
        got += (size_t)n;
        line[got] = '\0';
        if (strchr(line, '\n')) done = 1;
    }
    line[got] = '\0';
    close(p[0]);

    int port = -1;
    if (done) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        char *end = NULL;
        if (strncmp(line, "LISTENING ", 10) == 0) {
            long v = strtol(line + 10, &end, 10);
            if (end != line + 10 && *end == '\0' && v > 0 && v < 65536)
                port = (int)v;
        }
    }
    if (port < 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        fprintf(stderr,
                "th_server_start(%s, mode %s%s): %s; got \"%s\"; %s %d\n",
                kind, mode ? mode : "normal", cert ? ", tls" : "",
                done  ? "first line is not \"LISTENING <port>\""
                : eof ? "server closed stdout before \"LISTENING <port>\""
                      : "no \"LISTENING <port>\" within 20 s (killed it)",
                line,
                WIFEXITED(st) ? "exit status" : "killed by signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return -1;
    }
    s->pid = pid;
    s->port = port;
    (void)th_fmt(s->name, sizeof s->name, "%s",
             strcmp(kind, "node") == 0 ? "node" : "python");
    return 0;
}

/* th_server_start_host on 127.0.0.1. */
static inline int th_server_start(th_server *s, const char *kind,
                                  const char *mode, const char *cert,
                                  const char *key) {
    return th_server_start_host(s, kind, mode, cert, key, "127.0.0.1");
}

/*
 * Stops the server: SIGTERM, up to TH_STOP_TIMEOUT_MS for it to exit, then
 * SIGKILL to its process group; reaps it and sets s->pid to 0. Returns its
 * wait status (WIFEXITED and WEXITSTATUS 0 for a clean exit), or -1 if no
 * server was running. Safe to call twice.
 */
static inline int th_server_stop_status(th_server *s) {
    if (!s || s->pid <= 0) return -1;
    pid_t pid = s->pid;
    int st = 0;
    kill(pid, SIGTERM);
    long long deadline = th_now_ms() + TH_STOP_TIMEOUT_MS;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            st = -1;
            break;
        }
        if (th_now_ms() >= deadline) {
            fprintf(stderr, "th_server_stop(%s): no exit within %d ms of "
                            "SIGTERM; SIGKILL\n", s->name, TH_STOP_TIMEOUT_MS);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        th_sleep_ms(10);
    }
    s->pid = 0;
    return st;
}

static inline void th_server_stop(th_server *s) {
    (void)th_server_stop_status(s);
}

/* Kills the server at once (SIGKILL to its process group) and reaps it. */
static inline void th_server_kill(th_server *s) {
    if (!s || s->pid <= 0) return;
    pid_t pid = s->pid;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    s->pid = 0;
}

/* Writes "ws://127.0.0.1:PORT/path" (wss:// when tls) to out. */
static inline int th_server_url(const th_server *s, int tls, const char *path,
                                char *out, size_t len) {
    return th_fmt(out, len, "%s://127.0.0.1:%d%s", tls ? "wss" : "ws", s->port,
                  path ? path : "/");
}

/* ---------------------------------------------------------------- certs -- */

/* Removes a directory made by th_certs and the files in it. */
static inline void th_certs_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4200];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        (void)th_fmt(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/*
 * Makes a fresh temporary directory ($TMPDIR or /tmp) and runs
 * tests/certs.sh into it: ca.pem, server.pem/key (SAN localhost,
 * 127.0.0.1, ::1), wronghost, expired, selfsigned, client. Writes its path
 * to dir_out. Returns 0, or -1 with the reason on stderr.
 */
static inline int th_certs(char *dir_out, size_t len) {
    char src[2048], script[2200], ca[4200];
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    if (th_fmt(dir_out, len, "%s/mmws-certs-XXXXXX", tmp) != 0) {
        fprintf(stderr, "th_certs: buffer too small\n");
        return -1;
    }
    if (!mkdtemp(dir_out)) {
        fprintf(stderr, "th_certs: mkdtemp %s: %s\n", dir_out,
                strerror(errno));
        return -1;
    }
    (void)th_source_dir(src, sizeof src);
    (void)th_fmt(script, sizeof script, "%s/tests/certs.sh", src);
    char *argv[] = {"bash", script, dir_out, NULL};
    int st = th_run(argv, 1);
    (void)th_fmt(ca, sizeof ca, "%s/ca.pem", dir_out);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
        !th_file_exists(ca)) {
        fprintf(stderr, "th_certs: %s %s failed (status %d)\n", script,
                dir_out, st);
        th_certs_remove(dir_out);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ fds -- */

/* The number of open fds of this process (from /proc/self/fd), or -1. */
static inline int th_fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n - 1; /* the directory's own fd */
}

#endif /* MMWS_TEST_HARNESS_H */
