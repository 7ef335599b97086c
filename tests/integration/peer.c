/* peer.c - peer processes, pipes with deadlines, failure reporting (see peer.h). */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IT_MAX_MSG ((uint64_t)1 << 30)
#define IT_MAX_PEERS 64

static atomic_int failures;
static char my_role[48] = "initiator";
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Pids of live peers, for the watchdog and the exit path (read from a signal handler). */
static volatile pid_t live_pids[IT_MAX_PEERS];

/* ------------------------------------------------------------------------------------------ */
/* Failures and logs                                                                           */
/* ------------------------------------------------------------------------------------------ */

static void vreport(const char *prefix, const char *file, int line, const char *fmt, va_list ap)
    IT_PRINTF(4, 0);

static void vreport(const char *prefix, const char *file, int line, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    pthread_mutex_lock(&out_lock);
    if (file)
        fprintf(stderr, "[%s %d] %s%s:%d: %s\n", my_role, (int)getpid(), prefix, file, line,
                msg);
    else
        fprintf(stderr, "[%s %d] %s%s\n", my_role, (int)getpid(), prefix, msg);
    fflush(stderr);
    pthread_mutex_unlock(&out_lock);
}

int it_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("FAILURE at ", file, line, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&failures, 1);
    return -1;
}

int it_failures(void)
{
    return atomic_load(&failures);
}

void it_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("", NULL, 0, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------------ */
/* Time                                                                                        */
/* ------------------------------------------------------------------------------------------ */

uint64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int it_timeout_ms(void)
{
    static atomic_int cached;
    int v = atomic_load(&cached);
    if (!v) {
        const char *s = getenv("IT_TIMEOUT_S");
        long sec = s ? strtol(s, NULL, 10) : 0;
        v = sec > 0 && sec < 3600 ? (int)sec * 1000 : 10000;
        atomic_store(&cached, v);
    }
    return v;
}

void it_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Channels                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static int write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes before `deadline` (ms). 0, -1 on error/EOF, -2 on timeout. */
static int read_all(int fd, void *p, size_t n, uint64_t deadline)
{
    while (n) {
        uint64_t now = it_now_ms();
        if (now >= deadline)
            return -2;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint64_t left = deadline - now;
        int rc = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            return -2;
        ssize_t r = read(fd, p, n);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return -1;
        p = (char *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

int it_send(it_chan_t *ch, const void *msg, size_t len)
{
    uint64_t l = len;
    if (write_all(ch->wr, &l, sizeof(l)) != 0 || (len && write_all(ch->wr, msg, len) != 0))
        return -1;
    return 0;
}

int it_sendf(it_chan_t *ch, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return it_fail(__FILE__, __LINE__, "command too long");
    return it_send(ch, buf, (size_t)n);
}

int it_recv(it_chan_t *ch, void **msg, size_t *len, int timeout_ms, bool quiet)
{
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    uint64_t l;
    int rc = read_all(ch->rd, &l, sizeof(l), deadline);
    if (rc == 0 && l > IT_MAX_MSG)
        rc = -3;
    char *p = NULL;
    if (rc == 0) {
        p = malloc(l + 1);
        if (!p)
            rc = -1;
    }
    if (rc == 0)
        rc = read_all(ch->rd, p, l, deadline);
    if (rc != 0) {
        free(p);
        if (!quiet)
            it_fail(__FILE__, __LINE__, "receiving from the other process: %s",
                    rc == -2   ? "timed out"
                    : rc == -3 ? "bad message length"
                               : "it went away (EOF or error)");
        return -1;
    }
    p[l] = '\0';
    *msg = p;
    *len = l;
    return 0;
}

bool it_readable(it_chan_t *ch, int timeout_ms)
{
    struct pollfd pfd = {.fd = ch->rd, .events = POLLIN};
    int rc;
    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc != 0; /* an error counts as readable: the read reports it */
}

char *it_recv_str(it_chan_t *ch, int timeout_ms)
{
    void *m;
    size_t n;
    if (it_recv(ch, &m, &n, timeout_ms, false) != 0)
        return NULL;
    return m;
}

int it_expect(it_chan_t *ch, const char *want, int timeout_ms)
{
    char *s = it_recv_str(ch, timeout_ms);
    if (!s)
        return -1;
    int rc = strcmp(s, want) == 0 ? 0 : -1;
    if (rc)
        it_fail(__FILE__, __LINE__, "expected '%s' from the other process, got '%.300s'", want, s);
    free(s);
    return rc;
}

int it_cmd(it_chan_t *ch, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return it_fail(__FILE__, __LINE__, "command too long");
    if (it_send(ch, buf, (size_t)n) != 0)
        return it_fail(__FILE__, __LINE__, "sending '%s': the other process is gone", buf);
    /* Longer than the peer's own deadlines, so that its diagnosis arrives. */
    char *s = it_recv_str(ch, IT_TIMEOUT_MS + 5000);
    if (!s)
        return it_fail(__FILE__, __LINE__, "no answer to '%s'", buf);
    int rc = strcmp(s, "ok") == 0 ? 0 : -1;
    if (rc)
        it_fail(__FILE__, __LINE__, "'%s' answered: %.500s", buf, s);
    free(s);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Peers                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void live_add(pid_t pid)
{
    for (int i = 0; i < IT_MAX_PEERS; i++)
        if (live_pids[i] == 0) {
            live_pids[i] = pid;
            return;
        }
}

static void live_del(pid_t pid)
{
    for (int i = 0; i < IT_MAX_PEERS; i++)
        if (live_pids[i] == pid)
            live_pids[i] = 0;
}

static char self_exe[PATH_MAX];

int it_peer_spawn(it_peer_t *p, const char *role, const char *arg)
{
    memset(p, 0, sizeof(*p));
    p->ch.rd = p->ch.wr = -1;
    snprintf(p->role, sizeof(p->role), "%s", role);
    int to_peer[2], from_peer[2];
    if (pipe2(to_peer, O_CLOEXEC) != 0)
        return it_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    if (pipe2(from_peer, O_CLOEXEC) != 0) {
        close(to_peer[0]);
        close(to_peer[1]);
        return it_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    }
    char rd[16], wr[16];
    snprintf(rd, sizeof(rd), "%d", to_peer[0]);
    snprintf(wr, sizeof(wr), "%d", from_peer[1]);
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(to_peer[0]);
        close(to_peer[1]);
        close(from_peer[0]);
        close(from_peer[1]);
        return it_fail(__FILE__, __LINE__, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        fcntl(to_peer[0], F_SETFD, 0);
        fcntl(from_peer[1], F_SETFD, 0);
        dup2(2, 1);
        char *argv[] = {self_exe, (char *)"--it-peer", (char *)role, rd, wr, (char *)arg, NULL};
        execv(self_exe, argv);
        _exit(127);
    }
    close(to_peer[0]);
    close(from_peer[1]);
    p->pid = pid;
    p->ch.wr = to_peer[1];
    p->ch.rd = from_peer[0];
    live_add(pid);
    return 0;
}

static void close_chan(it_peer_t *p)
{
    if (p->ch.rd >= 0)
        close(p->ch.rd);
    if (p->ch.wr >= 0)
        close(p->ch.wr);
    p->ch.rd = p->ch.wr = -1;
}

/* Reap within timeout_ms; true when reaped. */
static bool reap(it_peer_t *p, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno == ECHILD)) {
            live_del(p->pid);
            p->status = r == p->pid ? status : 0;
            p->pid = 0;
            return true;
        }
        if (it_now_ms() >= deadline)
            return false;
        it_sleep_ms(2);
    }
}

void it_peer_kill(it_peer_t *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    if (!reap(p, 10000))
        it_fail(__FILE__, __LINE__, "peer %s (pid %d) not reaped 10 s after SIGKILL", p->role,
                (int)p->pid);
}

int it_peer_wait(it_peer_t *p, int timeout_ms)
{
    if (p->pid <= 0) {
        close_chan(p);
        return -1;
    }
    close(p->ch.wr); /* a peer waiting for commands sees EOF */
    p->ch.wr = -1;
    int rc;
    if (!reap(p, timeout_ms)) {
        it_fail(__FILE__, __LINE__, "peer %s (pid %d) did not exit within %d ms; killing it",
                p->role, (int)p->pid, timeout_ms);
        it_peer_kill(p);
        rc = -1;
    } else if (WIFEXITED(p->status)) {
        rc = WEXITSTATUS(p->status);
    } else {
        it_fail(__FILE__, __LINE__, "peer %s died of signal %d", p->role,
                WIFSIGNALED(p->status) ? WTERMSIG(p->status) : -1);
        rc = -1;
    }
    close_chan(p);
    return rc;
}

int it_peer_quit(it_peer_t *p)
{
    if (p->pid <= 0)
        return it_fail(__FILE__, __LINE__, "peer %s is not running", p->role);
    if (it_send(&p->ch, "quit", 4) != 0)
        it_fail(__FILE__, __LINE__, "peer %s: cannot send quit", p->role);
    int rc = it_peer_wait(p, IT_TIMEOUT_MS);
    if (rc != 0)
        return it_fail(__FILE__, __LINE__, "peer %s exited with %d", p->role, rc);
    return 0;
}

void it_peer_cleanup(it_peer_t *p)
{
    if (p->pid > 0)
        it_peer_kill(p);
    close_chan(p);
}

/* ------------------------------------------------------------------------------------------ */
/* main                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void kill_live_peers(void)
{
    for (int i = 0; i < IT_MAX_PEERS; i++) {
        pid_t pid = live_pids[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            live_pids[i] = 0;
        }
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "WATCHDOG: the program overran its time limit; killing peers\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    for (int i = 0; i < IT_MAX_PEERS; i++)
        if (live_pids[i] > 0)
            kill(live_pids[i], SIGKILL);
    _exit(3);
}

static unsigned watchdog_s(void)
{
    const char *s = getenv("IT_WATCHDOG_S");
    long v = s ? strtol(s, NULL, 10) : 0;
    return v > 0 ? (unsigned)v : 120;
}

static int run_peer(int argc, char **argv, const it_role_t *roles, size_t num_roles)
{
    if (argc < 5)
        return 126;
    snprintf(my_role, sizeof(my_role), "%s", argv[2]);
    it_chan_t ch = {.rd = atoi(argv[3]), .wr = atoi(argv[4])};
    alarm(watchdog_s() + 10); /* an orphan must not outlive the program for long */
    for (size_t i = 0; i < num_roles; i++)
        if (strcmp(roles[i].name, argv[2]) == 0) {
            int rc = roles[i].fn(&ch, argc > 5 ? argv[5] : "");
            if (rc == 0 && it_failures())
                rc = 1;
#if defined(__SANITIZE_ADDRESS__)
            /* LeakSanitizer's exit check stops the world with a tracer thread that cannot run
             * as pid 1 of a pid namespace (it-nocma-pidns), and that crashes ("Tracer caught
             * signal 11" in ScanRangeForPointers, reading address 0xb8) at the exit of the
             * it-ucx UCX targets over tcp: in every full CI run of 2026-12-06, in a different
             * scenario each time, never when run alone or under load here. Those roles leave
             * without it; every other role, and the initiators, are checked. */
            if (getpid() == 1 || getenv("IT_SKIP_EXIT_LEAK_CHECK")) {
                fflush(NULL);
                _exit(rc);
            }
#endif
            return rc;
        }
    it_fail(__FILE__, __LINE__, "unknown role '%s'", argv[2]);
    return 126;
}

int it_main(int argc, char **argv, const it_role_t *roles, size_t num_roles,
            const it_scenario_t *scenarios, size_t num_scenarios)
{
    signal(SIGPIPE, SIG_IGN);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0)
        snprintf(self_exe, sizeof(self_exe), "%s", argv[0]);
    else
        self_exe[n] = '\0';
    if (argc > 1 && strcmp(argv[1], "--it-peer") == 0)
        return run_peer(argc, argv, roles, num_roles);

    signal(SIGALRM, on_alarm);
    alarm(watchdog_s());
    atexit(kill_live_peers);
    int failed = 0, ran = 0;
    for (size_t i = 0; i < num_scenarios; i++) {
        bool selected = argc <= 1;
        for (int a = 1; a < argc && !selected; a++)
            selected = strstr(scenarios[i].name, argv[a]) != NULL;
        if (!selected)
            continue;
        ran++;
        int before = it_failures();
        uint64_t t0 = it_now_ms();
        int rc = scenarios[i].fn(scenarios[i].arg);
        bool ok = rc == 0 && it_failures() == before;
        for (int k = 0; k < IT_MAX_PEERS; k++)
            if (live_pids[k] > 0) {
                it_fail(__FILE__, __LINE__, "scenario %s left peer pid %d running; killed",
                        scenarios[i].name, (int)live_pids[k]);
                ok = false;
            }
        kill_live_peers();
        printf("%s %s (%llu ms)\n", ok ? "ok  " : "FAIL", scenarios[i].name,
               (unsigned long long)(it_now_ms() - t0));
        fflush(stdout);
        failed += !ok;
    }
    printf("%d of %d scenarios failed\n", failed, ran);
    return failed || !ran ? 1 : 0;
}
