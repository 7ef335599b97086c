/*
 * soak.c - many agent processes on one host, transferring to each other for minutes while
 * processes are killed and restarted under their names and a misbehaving client pokes at
 * their side channels (issue 14, item 8). `make soak` runs it for SOAK_SECONDS (default 600);
 * CI runs 60 s (.ci/run).
 *
 *   soak [--seconds N] [--agents N] [--seed N] [--churn-ms N] [--max-rss-mb N]
 *        [--max-growth-mb N] [--log FILE] [--strict-ucx]
 *
 * The driver (this file: the program without --agent) starts N agents (default 16) by fork +
 * exec of itself. Agent i is called "soak-<i>"; it has an SHM engine and, where the UCX plugin
 * loads, a UCX engine (UCX_TLS=tcp unless set: loopback TCP), and a side-channel listener on
 * a free port of 127.0.0.1. It tells the driver its port and the address of its region
 * through a pipe; the driver tells every agent where each peer is ("peer <i> <gen> <port>
 * <base>"), and each agent fetches (nixl_agent_fetch_remote_md) the metadata of the peers it is
 * told about, invalidating a previous generation first.
 *
 * An agent (soak_agent.c; soak.h has what both sides share) has one region: an exposed area
 * (4 MiB holding a pattern of (seed, agent, generation)), one 4 MiB inbound slot per peer,
 * and two local buffers. In a loop it picks a loaded peer, an engine (SHM or UCX), a size
 * (4 KiB..4 MiB) and a descriptor count (1..64), and either
 *  - WRITEs a fresh pattern of (seed, agent, generation, iteration) into its slot at the peer,
 *    then READs the slot back into the other local buffer and checks every byte; or
 *  - READs random ranges of the peer's exposed area and checks every byte;
 * each with a notification to that peer, plus now and then a standalone notification. Posts
 * carry a deadline (opt->deadline_us, 5 s): a transfer whose status has not left IN_PROG
 * HANG_MS after its post is a hang, and so is a request that cannot be released within
 * RELEASE_MS (UCX cannot cancel RMA: release waits for it). Descriptors of one request are
 * permuted on the remote side (three times in four), so merging happens only now and then.
 * Received notifications are checked: the signer is the agent the payload names, and per
 * (sender, generation, engine) iterations only grow.
 *
 * Churn: every --churn-ms the driver kills one agent (SIGKILL) or asks it to quit (it
 * invalidates its metadata at its peers, destroys its agent and must exit 0 within QUIT_MS
 * of reading the command), then starts it again under the same name with the next
 * generation. Peers learn about a death only through their transfers (an error, never
 * SUCCESS with wrong bytes) and about the new process from the driver; a peer that a call
 * found disconnected (NOT_FOUND, REMOTE_DISCONNECT) is loaded again from where it was. A
 * misbehaving client in the driver sends garbage side-channel frames and trickles bytes slowly
 * (slowloris) to random agents.
 *
 * The driver fails (exit 1) on corrupted bytes, a hang (an agent's own bound, or no report
 * from an agent for REPORT_MS), an agent that died or exited without being told to, an
 * error status other than REMOTE_DISCONNECT, NOT_FOUND and CANCELED, a notification
 * out of order or falsely signed, a resident size above --max-rss-mb or growing by more than
 * --max-growth-mb over an agent's life, descriptors growing by more than 64, or an agent that
 * lived 20 s without one successful transfer. Its last line is the machine-readable summary
 * ("soak: result=pass seconds=... transfers=... corrupt_bytes=0 ...").
 *
 * An agent that aborts inside UCX with an assertion or fatal error that is a known fault of
 * UCX itself (ucx_known[]: UCX 1.13, which this host has) is reported and restarted, not
 * counted as a failure, unless --strict-ucx. Agent logs (ours and UCX's) go to --log (default
 * /tmp/nixl-soak-<pid>.log), with the driver's kills and quits. With SOAK_STACKS=1, a transfer
 * still running after 2 s makes the driver append gdb backtraces of the awaited peer there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sec_util.h"
#include "soak.h"

/* ------------------------------------------------------------------------------------------ */
/* The driver                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct proc {
    pid_t pid; /* 0: not running */
    uint64_t gen;
    int cmd_fd, rep_fd;
    linebuf_t lb;
    bool up, killed, quitting, quit_seen, got_final;
    int port;
    uint64_t base;
    uint64_t c[C_COUNT];
    uint64_t started_ms, last_report_ms, quit_ms;
    uint64_t warm_rss, warm_fds; /* at WARM_MS of its life */
    bool warm;
} proc_t;

typedef struct driver {
    int n;
    uint64_t seed;
    unsigned seconds, churn_ms;
    uint64_t max_rss_kb, max_growth_kb;
    const char *self, *log;
    int log_fd;
    proc_t p[MAX_AGENTS];
    uint64_t total[C_COUNT]; /* of processes that ended */
    uint64_t kills, quits, restarts, attacks, slow_cut, ucx_agents, ucx_aborts;
    bool strict_ucx;
    uint64_t max_growth_seen, max_fd_growth;
    unsigned failures;
    uint64_t rng;
} driver_t;

static void drv_fail(driver_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void drv_fail(driver_t *d, const char *fmt, ...)
{
    char why[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    fprintf(stdout, "FAIL: %s\n", why);
    if (d->log_fd >= 0)
        dprintf(d->log_fd, "soak driver: FAIL: %s\n", why);
    d->failures++;
}

static uint64_t drnd(driver_t *d)
{
    d->rng = mix64(d->rng);
    return d->rng;
}

static void spawn(driver_t *d, int i)
{
    proc_t *p = &d->p[i];
    int cmd[2], rep[2];
    if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(rep, O_CLOEXEC) != 0) {
        fprintf(stdout, "pipe: %s\n", strerror(errno));
        exit(1);
    }
    p->gen++;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stdout, "fork: %s\n", strerror(errno));
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(99);
        fcntl(cmd[0], F_SETFD, 0);
        fcntl(rep[1], F_SETFD, 0);
        if (d->log_fd >= 0) {
            dup2(d->log_fd, 1);
            dup2(d->log_fd, 2);
        }
        char a_idx[16], a_gen[32], a_n[16], a_seed[32], a_cmd[16], a_rep[16];
        snprintf(a_idx, sizeof(a_idx), "%d", i);
        snprintf(a_gen, sizeof(a_gen), "%" PRIu64, p->gen);
        snprintf(a_n, sizeof(a_n), "%d", d->n);
        snprintf(a_seed, sizeof(a_seed), "%" PRIu64, d->seed);
        snprintf(a_cmd, sizeof(a_cmd), "%d", cmd[0]);
        snprintf(a_rep, sizeof(a_rep), "%d", rep[1]);
        execl(d->self, d->self, "--agent", a_idx, a_gen, a_n, a_seed, a_cmd, a_rep, (char *)NULL);
        _exit(127);
    }
    close(cmd[0]);
    close(rep[1]);
    p->pid = pid;
    p->cmd_fd = cmd[1];
    p->rep_fd = rep[0];
    set_nonblock(p->cmd_fd);
    set_nonblock(p->rep_fd);
    p->lb.n = 0;
    p->up = p->killed = p->quitting = p->quit_seen = p->got_final = p->warm = false;
    memset(p->c, 0, sizeof(p->c));
    p->started_ms = p->last_report_ms = sec_now_ms();
}

static void fold(uint64_t *into, const uint64_t *c)
{
    for (int k = 0; k < C_COUNT; k++)
        into[k] = counter_is_max(k) ? (c[k] > into[k] ? c[k] : into[k]) : into[k] + c[k];
}

static void send_cmd(driver_t *d, int i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void send_cmd(driver_t *d, int i, const char *fmt, ...)
{
    proc_t *p = &d->p[i];
    if (!p->pid || p->killed)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (!put_line(p->cmd_fd, "%s", line) && errno == EAGAIN)
        drv_fail(d, "soak-%d gen %" PRIu64 " does not read its commands (pipe full)", i, p->gen);
}

static void announce(driver_t *d, int i)
{
    proc_t *p = &d->p[i];
    for (int k = 0; k < d->n; k++) {
        if (k == i)
            continue;
        send_cmd(d, k, "peer %d %" PRIu64 " %d %" PRIx64, i, p->gen, p->port, p->base);
        if (d->p[k].up && !d->p[k].quitting)
            send_cmd(d, i, "peer %d %" PRIu64 " %d %" PRIx64, k, d->p[k].gen, d->p[k].port,
                     d->p[k].base);
    }
}

static void on_line(driver_t *d, int i, const char *line)
{
    proc_t *p = &d->p[i];
    p->last_report_ms = sec_now_ms();
    if (strncmp(line, "up ", 3) == 0) {
        int ucx = 0;
        if (sscanf(line + 3, "%d %" SCNx64 " %d", &p->port, &p->base, &ucx) != 3) {
            drv_fail(d, "soak-%d: bad line '%s'", i, line);
            return;
        }
        p->up = true;
        if (p->gen == 1 && ucx)
            d->ucx_agents++;
        announce(d, i);
    } else if (strncmp(line, "stats ", 6) == 0 || strncmp(line, "final ", 6) == 0) {
        const char *s = line + 6;
        for (int k = 0; k < C_COUNT; k++) {
            char *end;
            p->c[k] = strtoull(s, &end, 10);
            s = end;
        }
        if (line[0] == 'f')
            p->got_final = true;
        uint64_t age = sec_now_ms() - p->started_ms;
        if (!p->warm && age >= WARM_MS) {
            p->warm = true;
            p->warm_rss = p->c[C_RSS_KB];
            p->warm_fds = p->c[C_FDS];
        }
        if (p->c[C_RSS_KB] > d->max_rss_kb)
            drv_fail(d, "soak-%d: resident size %" PRIu64 " KiB above the bound %" PRIu64, i,
                     p->c[C_RSS_KB], d->max_rss_kb);
    } else if (strcmp(line, "quitting") == 0) {
        p->quit_seen = true;
        p->quit_ms = sec_now_ms();
    } else if (strncmp(line, "stall ", 6) == 0) {
        int t = atoi(line + 6);
        if (t >= 0 && t < d->n && d->p[t].pid) {
            /* debugging aid: the awaited peer's threads, into the log (no shell) */
            dprintf(d->log_fd, "=== soak-%d (pid %d) waits for soak-%d (pid %d)\n", i, (int)p->pid,
                    t, (int)d->p[t].pid);
            char target[16];
            snprintf(target, sizeof(target), "%d", (int)d->p[t].pid);
            pid_t g = fork();
            if (g == 0) {
                dup2(d->log_fd, 1);
                dup2(d->log_fd, 2);
                execlp("timeout", "timeout", "20", "gdb", "-p", target, "-batch", "-ex",
                       "thread apply all bt", (char *)NULL);
                _exit(127);
            }
            while (g > 0 && waitpid(g, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    } else if (strncmp(line, "fail ", 5) == 0) {
        drv_fail(d, "%s", line + 5);
    }
}

static void drain(driver_t *d, int i)
{
    proc_t *p = &d->p[i];
    char line[sizeof(p->lb.buf)];
    while (lb_line(&p->lb, line, sizeof(line)))
        on_line(d, i, line);
}

/*
 * Aborts of UCX itself that the soak provokes and that are UCX's bugs: reported, not failures
 * (--strict-ucx makes them failures). Each is recognised by UCX's own message (an assertion
 * or a fatal error, with the process's pid) in the agent log.
 */
static const struct {
    const char *where, *what, *why;
} ucx_known[] = {
    {"ucp_request.c", "got REP message",
     "UCX 1.13 asserts when a TCP endpoint fails (its peer was killed) while a wireup reply "
     "waits in its queue; upstream removed the assertion (openucx/ucx pull request 8175)"},
    {"ucp_request.inl", "Fatal: unexpected error",
     "UCX 1.13 aborts (ucs_fatal in ucp_request_try_send) when a send of its own fails on an "
     "endpoint whose peer was killed, e.g. its answer to a READ over TCP (GET emulated with "
     "active messages, ucp_get_req_handler)"},
    {"ucp_ep.inl", "remote_ep_id",
     "UCX 1.13 asserts in ucp_worker_progress when a message names our endpoint to a peer with "
     "another remote endpoint id than the one it holds (seen under churn, with endpoints to a "
     "live peer closed and created again after a failure)"},
};

/* Whether a UCX log line ("[host:pid:thread] file:line ...", the pid padded with spaces to
 * its width) comes from process `pid`. */
static bool ucx_line_of(const char *line, pid_t pid)
{
    char num[16];
    int n = snprintf(num, sizeof(num), "%d", (int)pid);
    const char *end = strchr(line, ']');
    for (const char *p = strchr(line, ':'); p && (!end || p < end); p = strchr(p + 1, ':')) {
        if (strncmp(p + 1, num, (size_t)n) != 0)
            continue;
        const char *q = p + 1 + n;
        while (*q == ' ')
            q++;
        if (*q == ':')
            return true;
    }
    return false;
}

static bool known_ucx_abort(driver_t *d, pid_t pid, int i, uint64_t gen)
{
    if (d->strict_ucx)
        return false;
    FILE *f = fopen(d->log, "r");
    char line[2048];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f)) {
        if ((!strstr(line, "Assertion") && !strstr(line, "Fatal")) || !ucx_line_of(line, pid))
            continue;
        for (size_t k = 0; k < sizeof(ucx_known) / sizeof(ucx_known[0]) && !found; k++)
            if (strstr(line, ucx_known[k].where) && strstr(line, ucx_known[k].what)) {
                fprintf(stdout,
                        "  known UCX fault: soak-%d gen %" PRIu64 " (pid %d) aborted "
                        "in UCX: %s\n",
                        i, gen, (int)pid, ucx_known[k].why);
                found = true;
            }
    }
    if (f)
        fclose(f);
    return found;
}

/* A process is over: check how, fold its counters, check its growth. */
static void ended(driver_t *d, int i, int status)
{
    proc_t *p = &d->p[i];
    /* everything it wrote before it died is still in the pipe */
    set_nonblock(p->rep_fd);
    while (lb_fill(&p->lb, p->rep_fd) > 0)
        drain(d, i);
    drain(d, i);
    if (p->killed) {
        /* SIGKILL expected */
    } else if (p->quitting) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !p->got_final)
            drv_fail(d, "soak-%d gen %" PRIu64 " asked to quit: status 0x%x%s", i, p->gen, status,
                     p->got_final ? "" : ", no final report");
    } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
               known_ucx_abort(d, p->pid, i, p->gen)) {
        d->ucx_aborts++;
    } else {
        drv_fail(d, "soak-%d gen %" PRIu64 " ended by itself: %s %d", i, p->gen,
                 WIFSIGNALED(status) ? "signal" : "exit code",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    uint64_t life = sec_now_ms() - p->started_ms;
    if (p->warm && life >= 3 * WARM_MS) {
        uint64_t g = p->c[C_RSS_KB] > p->warm_rss ? p->c[C_RSS_KB] - p->warm_rss : 0;
        uint64_t f = p->c[C_FDS] > p->warm_fds ? p->c[C_FDS] - p->warm_fds : 0;
        if (g > d->max_growth_seen)
            d->max_growth_seen = g;
        if (f > d->max_fd_growth)
            d->max_fd_growth = f;
        if (g > d->max_growth_kb)
            drv_fail(d,
                     "soak-%d gen %" PRIu64 ": resident size grew by %" PRIu64 " KiB over "
                     "%" PRIu64 " s",
                     i, p->gen, g, life / 1000);
        if (f > 64)
            drv_fail(
                d, "soak-%d gen %" PRIu64 ": %" PRIu64 " more open descriptors after %" PRIu64 " s",
                i, p->gen, f, life / 1000);
    }
    if (life >= IDLE_LIMIT_MS && p->up && p->c[C_OK] == 0)
        drv_fail(d,
                 "soak-%d gen %" PRIu64 " lived %" PRIu64 " s without a successful "
                 "transfer",
                 i, p->gen, life / 1000);
    fold(d->total, p->c);
    close(p->cmd_fd);
    close(p->rep_fd);
    p->pid = 0;
    p->up = false;
}

/* Reap what has exited; with `block`, wait for process i. */
static void reap(driver_t *d)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (int i = 0; i < d->n; i++)
            if (d->p[i].pid == pid)
                ended(d, i, status);
}

static void kill_and_reap(driver_t *d, int i)
{
    proc_t *p = &d->p[i];
    p->killed = true;
    kill(p->pid, SIGKILL);
    int status;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
        ;
    ended(d, i, status);
}

/* ---- the misbehaving client ---- */

#define SLOW_MAX 4
static int slow_fd[SLOW_MAX] = {-1, -1, -1, -1};

static void attack(driver_t *d)
{
    int live[MAX_AGENTS], nl = 0;
    for (int i = 0; i < d->n; i++)
        if (d->p[i].pid && d->p[i].up && !d->p[i].killed && !d->p[i].quitting)
            live[nl++] = i;
    /* trickle one byte on every slowloris connection; count those the agents cut */
    for (int s = 0; s < SLOW_MAX; s++) {
        if (slow_fd[s] < 0)
            continue;
        if (send(slow_fd[s], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1 && errno != EAGAIN) {
            close(slow_fd[s]);
            slow_fd[s] = -1;
            d->slow_cut++;
        }
    }
    if (nl == 0)
        return;
    int port = d->p[live[drnd(d) % (uint64_t)nl]].port;
    int fd = sec_connect(port);
    if (fd < 0)
        return;
    d->attacks++;
    if (drnd(d) & 1) {
        /* garbage: a frame of a real or made-up verb with random bytes */
        static const char *verbs[] = {"LOAD", "SEND", "INVL", "XXXX"};
        uint8_t junk[2048];
        size_t len = drnd(d) % sizeof(junk);
        for (size_t k = 0; k < len; k++)
            junk[k] = (uint8_t)drnd(d);
        if (drnd(d) & 1)
            sec_send_frame(fd, verbs[drnd(d) % 4], junk, len);
        else
            (void)!send(fd, junk, len, MSG_NOSIGNAL);
        close(fd);
        return;
    }
    /* slowloris: announce a 1 MiB LOAD and send it a byte per second */
    for (int s = 0; s < SLOW_MAX; s++)
        if (slow_fd[s] < 0) {
            uint64_t body = 9 + 4 + MIB;
            (void)!send(fd, &body, 8, MSG_NOSIGNAL);
            (void)!send(fd, "NIXLCOMM:LOAD", 13, MSG_NOSIGNAL);
            slow_fd[s] = fd;
            return;
        }
    close(fd);
}

static void print_totals(driver_t *d, uint64_t *t, const char *prefix, uint64_t secs)
{
    fprintf(stdout,
            "%s%" PRIu64 " s: transfers %" PRIu64 " (%" PRIu64 " UCX), %.1f GiB, "
            "errors %" PRIu64 ", corrupt bytes %" PRIu64 ", restarts %" PRIu64 ", fetch "
            "failures %" PRIu64 ", reloads %" PRIu64 ", peak RSS %" PRIu64 " MiB\n",
            prefix, secs, t[C_OK], t[C_UCX], (double)t[C_BYTES] / (double)(1ull << 30), t[C_ERRS],
            t[C_CORRUPT], d->restarts, t[C_FETCH_FAIL], t[C_RELOADS], t[C_HWM_KB] / 1024);
}

static void snapshot(driver_t *d, uint64_t *t)
{
    memcpy(t, d->total, sizeof(d->total));
    for (int i = 0; i < d->n; i++)
        if (d->p[i].pid)
            fold(t, d->p[i].c);
}

static void watch(driver_t *d)
{
    uint64_t now = sec_now_ms();
    for (int i = 0; i < d->n; i++) {
        proc_t *p = &d->p[i];
        if (!p->pid || p->killed)
            continue;
        if (now - p->last_report_ms > REPORT_MS) {
            drv_fail(d, "soak-%d gen %" PRIu64 " silent for %u ms (hung)", i, p->gen, REPORT_MS);
            kill_and_reap(d, i);
            continue;
        }
        /* the agent reads "quit" between rounds (a round ends within HANG_MS + RELEASE_MS,
         * or the agent fails itself), then has QUIT_MS to go */
        uint64_t bound = p->quit_seen ? QUIT_MS : HANG_MS + RELEASE_MS + QUIT_MS;
        if (p->quitting && now - p->quit_ms > bound) {
            drv_fail(d, "soak-%d gen %" PRIu64 " did not exit within %" PRIu64 " ms of quit%s", i,
                     p->gen, bound, p->quit_seen ? "" : " (the command was never read)");
            kill_and_reap(d, i);
        }
    }
}

/* Read every report pipe, for at most `ms`. */
static void pump(driver_t *d, unsigned ms)
{
    struct pollfd pf[MAX_AGENTS];
    int who[MAX_AGENTS], np = 0;
    for (int i = 0; i < d->n; i++)
        if (d->p[i].pid) {
            pf[np] = (struct pollfd){d->p[i].rep_fd, POLLIN, 0};
            who[np++] = i;
        }
    if (poll(pf, (nfds_t)np, (int)ms) <= 0)
        return;
    for (int k = 0; k < np; k++)
        if (pf[k].revents) {
            if (lb_fill(&d->p[who[k]].lb, pf[k].fd) != 0)
                drain(d, who[k]);
        }
}

static int driver_main(driver_t *d)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!getenv("UCX_TLS"))
        setenv("UCX_TLS", "tcp", 1); /* loopback TCP: the agents inherit it */
    d->log_fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (d->log_fd < 0) {
        fprintf(stdout, "%s: %s\n", d->log, strerror(errno));
        return 1;
    }
    fprintf(stdout,
            "soak: %d agents, %u s, seed %" PRIu64 ", churn every %u ms, agent logs "
            "in %s\n",
            d->n, d->seconds, d->seed, d->churn_ms, d->log);
    uint64_t t0 = sec_now_ms(), end = t0 + (uint64_t)d->seconds * 1000u;
    for (int i = 0; i < d->n; i++)
        spawn(d, i);
    uint64_t next_churn = t0 + d->churn_ms, next_attack = t0 + 1000, next_print = t0 + 10000;
    int pending = -1; /* a process quitting, to be started again when it is gone */
    while (sec_now_ms() < end) {
        pump(d, 50);
        reap(d);
        watch(d);
        uint64_t now = sec_now_ms();
        for (int i = 0; i < d->n; i++)
            if (!d->p[i].pid && i != pending) {
                spawn(d, i); /* killed or failed: next generation */
                d->restarts++;
            }
        if (pending >= 0 && !d->p[pending].pid) {
            spawn(d, pending);
            d->restarts++;
            pending = -1;
        }
        if (now >= next_churn && pending < 0) {
            next_churn = now + d->churn_ms;
            int i = (int)(drnd(d) % (uint64_t)d->n);
            proc_t *p = &d->p[i];
            if (p->pid && p->up) {
                dprintf(d->log_fd, "soak driver: %s soak-%d gen %" PRIu64 " (pid %d)\n",
                        (drnd(d) & 1) ? "SIGKILL" : "quit", i, p->gen, (int)p->pid);
                if (d->rng & 1) {
                    d->kills++;
                    kill_and_reap(d, i);
                } else {
                    d->quits++;
                    send_cmd(d, i, "quit");
                    p->quitting = true;
                    p->quit_ms = now;
                    pending = i;
                }
            }
        }
        if (now >= next_attack) {
            next_attack = now + 1000;
            attack(d);
        }
        if (now >= next_print) {
            next_print = now + 10000;
            uint64_t t[C_COUNT];
            snapshot(d, t);
            print_totals(d, t, "  ", (now - t0) / 1000);
        }
    }

    /* the end: every agent quits cleanly. Errors from here on are those of agents that still
     * transfer to peers already gone: counted apart. */
    uint64_t run[C_COUNT];
    snapshot(d, run);
    for (int i = 0; i < d->n; i++)
        if (d->p[i].pid && !d->p[i].quitting) {
            send_cmd(d, i, "quit");
            d->p[i].quitting = true;
            d->p[i].quit_ms = sec_now_ms();
        }
    for (;;) {
        bool any = false;
        for (int i = 0; i < d->n; i++)
            any |= d->p[i].pid != 0;
        if (!any)
            break;
        pump(d, 50);
        reap(d);
        watch(d);
    }
    for (int s = 0; s < SLOW_MAX; s++)
        if (slow_fd[s] >= 0)
            close(slow_fd[s]);

    uint64_t *t = d->total;
    uint64_t secs = (sec_now_ms() - t0) / 1000;
    print_totals(d, t, "total after ", secs);
    fprintf(stdout,
            "  verified: %" PRIu64 " WRITE+readback pairs, %" PRIu64 " READs; "
            "notifications sent %" PRIu64 ", received %" PRIu64 " (%" PRIu64 " of an older "
            "generation late)\n",
            t[C_WRITES], t[C_READS], t[C_NOTIF_SENT], t[C_NOTIF_RECV], t[C_NOTIF_STALE]);
    fprintf(stdout, "  errors by status:");
    for (int k = 1; k <= 12; k++)
        if (t[C_ST0 + k])
            fprintf(stdout, " %s=%" PRIu64, nixl_status_str((nixl_status_t)-k), t[C_ST0 + k]);
    fprintf(stdout, "; %" PRIu64 " of them before the final quit:", run[C_ERRS]);
    for (int k = 1; k <= 12; k++)
        if (run[C_ST0 + k])
            fprintf(stdout, " %s=%" PRIu64, nixl_status_str((nixl_status_t)-k), run[C_ST0 + k]);
    fprintf(stdout,
            "\n  churn: %" PRIu64 " SIGKILLs, %" PRIu64 " clean exits, %" PRIu64
            " restarts, %" PRIu64 " aborts inside UCX (known UCX faults); misbehaving client: "
            "%" PRIu64 " connections (%" PRIu64 " slowloris cut by the agents)\n",
            d->kills, d->quits, d->restarts, d->ucx_aborts, d->attacks, d->slow_cut);
    fprintf(stdout,
            "  agents: UCX in %" PRIu64 " of %d; peak RSS %" PRIu64 " MiB (bound %" PRIu64
            "), largest growth over a life %" PRIu64 " KiB (bound %" PRIu64 "), "
            "largest descriptor growth %" PRIu64 ", longest transfer %" PRIu64 " ms, longest "
            "release %" PRIu64 " ms\n",
            d->ucx_agents, d->n, t[C_HWM_KB] / 1024, d->max_rss_kb / 1024, d->max_growth_seen,
            d->max_growth_kb, d->max_fd_growth, t[C_MAX_XFER_MS], t[C_MAX_REL_MS]);
    if (t[C_CORRUPT])
        drv_fail(d, "%" PRIu64 " corrupted bytes", t[C_CORRUPT]);
    if (t[C_OK] == 0)
        drv_fail(d, "no transfer succeeded");
    fprintf(stdout,
            "soak: result=%s seconds=%" PRIu64 " agents=%d transfers=%" PRIu64
            " ucx_transfers=%" PRIu64 " bytes=%" PRIu64 " errors=%" PRIu64 " corrupt_bytes=%" PRIu64
            " run_errors=%" PRIu64 " reloads=%" PRIu64 " restarts=%" PRIu64 " kills=%" PRIu64
            " clean_exits=%" PRIu64 " notifs_sent=%" PRIu64 " notifs_recv=%" PRIu64
            " attacks=%" PRIu64 " peak_rss_kb=%" PRIu64 " max_growth_kb=%" PRIu64
            " max_xfer_ms=%" PRIu64 " max_release_ms=%" PRIu64 " ucx_aborts=%" PRIu64
            " failures=%u\n",
            d->failures ? "FAIL" : "pass", secs, d->n, t[C_OK], t[C_UCX], t[C_BYTES], t[C_ERRS],
            t[C_CORRUPT], run[C_ERRS], t[C_RELOADS], d->restarts, d->kills, d->quits,
            t[C_NOTIF_SENT], t[C_NOTIF_RECV], d->attacks, t[C_HWM_KB], d->max_growth_seen,
            t[C_MAX_XFER_MS], t[C_MAX_REL_MS], d->ucx_aborts, d->failures);
    return d->failures ? 1 : 0;
}

static unsigned long arg_num(const char *s, const char *what, unsigned long lo, unsigned long hi)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s ? s : "", &end, 10);
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "soak: %s must be a number from %lu to %lu (got '%s')\n", what, lo, hi,
                s ? s : "");
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc == 8 && strcmp(argv[1], "--agent") == 0)
        return soak_agent_main(
            (int)arg_num(argv[2], "agent", 0, MAX_AGENTS - 1),
            arg_num(argv[3], "generation", 1, ULONG_MAX),
            (int)arg_num(argv[4], "agents", 2, MAX_AGENTS), arg_num(argv[5], "seed", 0, ULONG_MAX),
            (int)arg_num(argv[6], "fd", 0, INT_MAX), (int)arg_num(argv[7], "fd", 0, INT_MAX));
    static driver_t d;
    const char *env = getenv("SOAK_SECONDS");
    d.seconds = env ? (unsigned)arg_num(env, "SOAK_SECONDS", 1, 86400) : 60;
    d.n = 16;
    d.seed = (uint64_t)time(NULL);
    d.churn_ms = 2000;
    d.max_rss_kb = 512 * 1024;
    d.max_growth_kb = 64 * 1024;
    static char log[256];
    snprintf(log, sizeof(log), "/tmp/nixl-soak-%d.log", (int)getpid());
    d.log = log;
    for (int k = 1; k < argc; k++) {
        const char *v = k + 1 < argc ? argv[k + 1] : NULL;
        if (strcmp(argv[k], "--seconds") == 0)
            d.seconds = (unsigned)arg_num(v, "--seconds", 1, 86400);
        else if (strcmp(argv[k], "--agents") == 0)
            d.n = (int)arg_num(v, "--agents", 2, MAX_AGENTS);
        else if (strcmp(argv[k], "--seed") == 0)
            d.seed = arg_num(v, "--seed", 0, ULONG_MAX);
        else if (strcmp(argv[k], "--churn-ms") == 0)
            d.churn_ms = (unsigned)arg_num(v, "--churn-ms", 100, 3600000);
        else if (strcmp(argv[k], "--max-rss-mb") == 0)
            d.max_rss_kb = arg_num(v, "--max-rss-mb", 1, 1u << 20) * 1024;
        else if (strcmp(argv[k], "--max-growth-mb") == 0)
            d.max_growth_kb = arg_num(v, "--max-growth-mb", 1, 1u << 20) * 1024;
        else if (strcmp(argv[k], "--log") == 0 && v)
            d.log = v;
        else if (strcmp(argv[k], "--strict-ucx") == 0) {
            d.strict_ucx = true;
            continue;
        } else {
            fprintf(stderr,
                    "usage: %s [--seconds N] [--agents N] [--seed N] [--churn-ms N] "
                    "[--max-rss-mb N] [--max-growth-mb N] [--log FILE] [--strict-ucx]\n",
                    argv[0]);
            return 2;
        }
        k++;
    }
    d.rng = mix64(d.seed ^ 0x736f616bu);
    static char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        fprintf(stderr, "soak: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    d.self = self;
    return driver_main(&d);
}
