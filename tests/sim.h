/*
 * sim.h — the exchange simulator (tools/mmws-sim) as a test peer: start
 * it with arguments, read its LISTENING and CONTROL lines, send control
 * commands, stop it by PID. Shared by test_sim and test_pool. Header-only.
 */
#ifndef MMWS_TEST_SIM_H
#define MMWS_TEST_SIM_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"

/* ---------------------------------------------------------- simulator -- */

typedef struct simproc {
    pid_t pid;
    int port;     /* the stream */
    int control;  /* the control port */
} simproc;

/* Starts "$MMWS_BUILD_DIR/mmws-sim" with args (NULL-terminated) and reads
 * its LISTENING and CONTROL lines. Returns 0, or -1 (nothing running). */
static inline int sim_start(simproc *sp, const char *const *args) {
    const char *bd = getenv("MMWS_BUILD_DIR");
    char prog[2048];
    const char *argv[32];
    int ac = 0;
    memset(sp, 0, sizeof *sp);
    if (th_fmt(prog, sizeof prog, "%s/mmws-sim", bd && *bd ? bd : ".") != 0)
        return -1;
    if (access(prog, X_OK) != 0) {
        fprintf(stderr, "sim_start: %s not found (set MMWS_BUILD_DIR)\n", prog);
        return -1;
    }
    argv[ac++] = prog;
    for (; args && *args && ac < 31; args++) argv[ac++] = *args;
    argv[ac] = NULL;

    int p[2];
    pid_t pid = th_spawn(argv, 0, p);
    if (pid < 0) return -1;
    char buf[256];
    size_t got = 0;
    long long deadline = th_now_ms() + TH_START_TIMEOUT_MS;
    int lines = 0;
    while (lines < 2 && got < sizeof buf - 1) {
        long long left = deadline - th_now_ms();
        if (left <= 0) break;
        struct pollfd pfd = {p[0], POLLIN, 0};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        ssize_t n = read(p[0], buf + got, sizeof buf - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = '\0';
        lines = 0;
        for (char *q = buf; (q = strchr(q, '\n')) != NULL; q++) lines++;
    }
    buf[got] = '\0';
    close(p[0]);
    if (lines < 2 || sscanf(buf, "LISTENING %d\nCONTROL %d", &sp->port,
                            &sp->control) != 2) {
        fprintf(stderr, "sim_start: no LISTENING/CONTROL lines (got \"%s\")\n",
                buf);
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        return -1;
    }
    sp->pid = pid;
    return 0;
}

/* SIGTERM, then the wait status (bounded; SIGKILL past it). */
static inline int sim_stop(simproc *sp) {
    th_server s;
    memset(&s, 0, sizeof s);
    s.pid = sp->pid;
    (void)th_fmt(s.name, sizeof s.name, "mmws-sim");
    sp->pid = 0;
    return th_server_stop_status(&s);
}

/* Sends one control command and reads the reply up to its "end" line
 * (bounded). Returns 0, or -1 with out holding what came. */
static inline int ctl(const simproc *sp, const char *cmd, char *out, size_t cap) {
    out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)sp->control);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        write(fd, line, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    int rc = -1;
    long long deadline = th_now_ms() + 5000;
    while (got < cap - 1) {
        long long left = deadline - th_now_ms();
        if (left <= 0) break;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0) break;
        ssize_t r = read(fd, out + got, cap - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        out[got] = '\0';
        if ((got >= 4 && strcmp(out, "end\n") == 0) ||
            (got >= 5 && strcmp(out + got - 5, "\nend\n") == 0)) {
            rc = 0;
            break;
        }
    }
    close(fd);
    if (rc) fprintf(stderr, "ctl \"%s\": no reply ending in end (got \"%s\")\n",
                    cmd, out);
    return rc;
}

#endif /* MMWS_TEST_SIM_H */
