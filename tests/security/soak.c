/*
 * soak.c - many agent processes on one host, transferring to each other for minutes while
 * processes are killed and restarted under their names and a misbehaving client pokes at
 * their side channels (issue 14, item 8). `make soak` runs it for SOAK_SECONDS (default 600);
 * CI runs 60 s (.ci/run).
 *
 *   soak [--seconds N] [--agents N] [--seed N] [--churn-ms N] [--max-rss-mb N]
 *        [--max-growth-mb N] [--log FILE] [--strict-ucx]
 *
 * The driver (this program without --agent) starts N agents (default 16) by fork + exec of
 * itself. Agent i is called "soak-<i>"; it has an SHM engine and, where the UCX plugin loads,
 * a UCX engine (UCX_TLS=tcp unless set: loopback TCP), and a side-channel listener on a free
 * port of 127.0.0.1. It tells the driver its port and the address of its region through a
 * pipe; the driver tells every agent where each peer is ("peer <i> <gen> <port> <base>"), and
 * each agent fetches (nixl_agent_fetch_remote_md) the metadata of the peers it is told about,
 * invalidating a previous generation first.
 *
 * An agent's region: an exposed area (4 MiB holding a pattern of (seed, agent, generation)),
 * one 4 MiB inbound slot per peer, and two local buffers. In a loop it picks a loaded peer,
 * an engine (SHM or UCX), a size (4 KiB..4 MiB) and a descriptor count (1..64), and either
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
 * invalidates its metadata at its peers, destroys its agent and must exit 0 within
 * QUIT_MS), then starts it again under the same name with the next generation. Peers learn
 * about a death only through their transfers (an error, never SUCCESS with wrong bytes) and
 * about the new process from the driver. A misbehaving client in the driver sends garbage
 * side-channel frames and trickles bytes slowly (slowloris) to random agents.
 *
 * The driver fails (exit 1) on corrupted bytes, a hang (an agent's own bound, or no report
 * from an agent for REPORT_MS), an agent that died or exited without being told to, an
 * unexpected error status (INVALID_PARAM, MISMATCH, UNKNOWN, NOT_POSTED), a notification
 * out of order or falsely signed, a resident size above --max-rss-mb or growing by more than
 * --max-growth-mb over an agent's life, descriptors growing by more than 64, or an agent that
 * lived 20 s without one successful transfer. Its last line is the machine-readable summary
 * ("soak: result=pass seconds=... transfers=... corrupt_bytes=0 ...").
 *
 * An agent that aborts inside UCX with an assertion that is a known UCX bug (ucx_known[]:
 * fixed upstream, present in the UCX of the host) is reported and restarted, not counted as a
 * failure, unless --strict-ucx. Agent logs (ours and UCX's) go to --log (default
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "sec_util.h"

#define MIB ((size_t)1 << 20)
#define MAX_AGENTS 64
#define EXPOSED (4 * MIB)
#define SLOT (4 * MIB)
#define MAX_XFER (4 * MIB)
#define MIN_XFER 4096u
#define MAX_DESCS 64
#define GAP 64u
#define LOCAL_BUF (MAX_XFER + MAX_DESCS * GAP)
#define DEADLINE_US 5000000u /* opt->deadline_us of every post */
#define HANG_MS 10000u       /* a post not ended by then (deadline + 5 s) is a hang */
#define RELEASE_MS 60000u    /* a request UCX still holds after this is a hang */
#define REPORT_MS 30000u     /* an agent silent this long is hung */
#define QUIT_MS 15000u       /* a clean exit takes at most this */
#define STATS_MS 250u
#define WARM_MS 10000u       /* resident size is compared from here to the end of a life */
#define IDLE_LIMIT_MS 20000u /* an agent alive this long must have moved bytes */

/* ------------------------------------------------------------------------------------------ */
/* Counters: one array, reported as "stats <v0> <v1> ...", summed by the driver                */
/* ------------------------------------------------------------------------------------------ */

enum {
    C_OK,          /* transfers that ended SUCCESS (readbacks included) */
    C_BYTES,       /* bytes they moved */
    C_WRITES,      /* verified WRITE + readback pairs */
    C_READS,       /* verified READs of an exposed area */
    C_ERRS,        /* transfers that ended with an error (any stage) */
    C_CORRUPT,     /* bytes that differed from their pattern after SUCCESS */
    C_NOTIF_SENT,  /* notifications of transfers that succeeded, and gen_notifs */
    C_NOTIF_RECV,  /* notifications received and checked */
    C_NOTIF_STALE, /* from an older generation after a newer one (not an error) */
    C_FETCH_FAIL,  /* metadata fetches that failed (peer dead or restarting) */
    C_UCX,         /* transfers that went through UCX */
    C_MAX_XFER_MS, /* longest post-to-end time (max, not summed) */
    C_MAX_REL_MS,  /* longest release (max): UCX waits for what it cannot cancel */
    C_RSS_KB,      /* VmRSS now (max, not summed) */
    C_HWM_KB,      /* VmHWM (max) */
    C_FDS,         /* open descriptors now (max) */
    C_ST0,         /* errors by status: C_ST0 + (-status), statuses -1..-12 */
    C_COUNT = C_ST0 + 13
};
static bool counter_is_max(int i)
{
    return i == C_MAX_XFER_MS || i == C_MAX_REL_MS || i == C_RSS_KB || i == C_HWM_KB || i == C_FDS;
}

/* ------------------------------------------------------------------------------------------ */
/* Patterns                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static uint64_t key_of(uint64_t seed, uint64_t kind, uint64_t agent, uint64_t gen, uint64_t iter)
{
    return mix64(mix64(mix64(mix64(seed ^ kind) ^ agent) ^ gen) ^ iter);
}
static uint64_t word_of(uint64_t key, uint64_t j)
{
    return mix64(key ^ (j * 0xd6e8feb86659fd93ull));
}

/* Bytes of `w` that differ from `want`. */
static unsigned bad_bytes(uint64_t w, uint64_t want)
{
    uint64_t d = w ^ want;
    unsigned n = 0;
    for (int b = 0; b < 8; b++)
        n += ((d >> (8 * b)) & 0xff) != 0;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Lines over pipes                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct linebuf {
    char buf[16384];
    size_t n;
} linebuf_t;

/* Read what is there (fd non-blocking). 1 data read, 0 nothing, -1 EOF or error. */
static int lb_fill(linebuf_t *lb, int fd)
{
    if (lb->n == sizeof(lb->buf))
        return 1; /* a line longer than the buffer: lb_line drops it */
    ssize_t r = read(fd, lb->buf + lb->n, sizeof(lb->buf) - lb->n);
    if (r > 0) {
        lb->n += (size_t)r;
        return 1;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return -1;
}

/* The next complete line (NUL-terminated, into out), or false. */
static bool lb_line(linebuf_t *lb, char *out, size_t cap)
{
    char *nl = memchr(lb->buf, '\n', lb->n);
    if (!nl) {
        if (lb->n == sizeof(lb->buf))
            lb->n = 0;
        return false;
    }
    size_t len = (size_t)(nl - lb->buf);
    size_t c = len < cap - 1 ? len : cap - 1;
    memcpy(out, lb->buf, c);
    out[c] = '\0';
    memmove(lb->buf, nl + 1, lb->n - len - 1);
    lb->n -= len + 1;
    return true;
}

/* One line, written whole (lines are below PIPE_BUF, so a pipe takes them atomically). */
static bool put_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool put_line(int fd, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 1)
        return false;
    line[n++] = '\n';
    for (;;) {
        ssize_t w = write(fd, line, (size_t)n);
        if (w == n)
            return true;
        if (w < 0 && errno == EINTR)
            continue;
        return false;
    }
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static unsigned count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n ? n - 1 : 0; /* opendir's own */
}

static uint64_t hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %" SCNu64 " kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* ------------------------------------------------------------------------------------------ */
/* The agent process                                                                           */
/* ------------------------------------------------------------------------------------------ */

enum peer_state {
    P_NONE,
    P_FETCHING,
    P_LOADED,
    P_WAIT_RETRY
};

typedef struct peer {
    enum peer_state state;
    uint64_t gen;
    int port;
    uint64_t base;
    unsigned tries;
    uint64_t since_ms;
    /* last notification iteration seen from this peer, per engine (S, U) */
    uint64_t notif_gen[2];
    uint64_t notif_iter[2];
    bool notif_seen[2];
} peer_t;

typedef struct agent {
    int idx, n;
    uint64_t gen, seed, iter;
    int cmd_fd, rep_fd;
    nixl_agent_t *a;
    nixl_backend_t *be[2]; /* SHM, UCX (NULL when absent) */
    uint8_t *area;         /* exposed | slots | local src | readback */
    size_t area_len;
    uint8_t *src, *dst;
    peer_t peers[MAX_AGENTS];
    uint64_t c[C_COUNT];
    uint64_t rng;
    bool quit;
} agent_t;

static uint64_t rnd(agent_t *g)
{
    g->rng = mix64(g->rng);
    return g->rng;
}

static void agent_fail(agent_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void agent_fail(agent_t *g, const char *fmt, ...)
{
    char why[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    fprintf(stderr, "soak-%d gen %" PRIu64 ": FAIL %s\n", g->idx, g->gen, why);
    put_line(g->rep_fd, "fail soak-%d gen %" PRIu64 ": %s", g->idx, g->gen, why);
    _exit(1); /* no destroy: the driver counts this as a failure anyway */
}

static void send_stats(agent_t *g, const char *verb)
{
    g->c[C_RSS_KB] = sec_rss_kb();
    g->c[C_HWM_KB] = hwm_kb();
    g->c[C_FDS] = count_fds();
    char line[1000];
    int n = snprintf(line, sizeof(line), "%s", verb);
    for (int i = 0; i < C_COUNT && n > 0 && (size_t)n < sizeof(line); i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %" PRIu64, g->c[i]);
    put_line(g->rep_fd, "%s", line);
}

static void count_err(agent_t *g, nixl_status_t st, const char *what, int peer)
{
    g->c[C_ERRS]++;
    int k = -(int)st;
    if (k >= 1 && k <= 12)
        g->c[C_ST0 + k]++;
    else
        g->c[C_ST0]++;
    /* statuses that churn explains: the peer is gone, was forgotten, or timed out */
    if (st == NIXL_ERR_REMOTE_DISCONNECT || st == NIXL_ERR_NOT_FOUND || st == NIXL_ERR_CANCELED ||
        st == NIXL_ERR_BACKEND)
        return;
    agent_fail(g, "%s to soak-%d: unexpected %s (%s)", what, peer, nixl_status_str(st),
               nixl_last_error());
}

static void peer_name(char *out, size_t cap, int i)
{
    snprintf(out, cap, "soak-%d", i);
}

static void peer_fetch(agent_t *g, int i)
{
    peer_t *p = &g->peers[i];
    char name[32];
    peer_name(name, sizeof(name), i);
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.ip_addr = "127.0.0.1";
    opt.port = p->port;
    nixl_status_t st = nixl_agent_fetch_remote_md(g->a, name, &opt);
    if (st != NIXL_SUCCESS)
        agent_fail(g, "fetch_remote_md(%s): %s (%s)", name, nixl_status_str(st), nixl_last_error());
    p->state = P_FETCHING;
    p->since_ms = sec_now_ms();
}

/* "peer <i> <gen> <port> <base>": a (new) process under that name. */
static void on_peer(agent_t *g, int i, uint64_t gen, int port, uint64_t base)
{
    if (i < 0 || i >= g->n || i == g->idx)
        return;
    peer_t *p = &g->peers[i];
    char name[32];
    peer_name(name, sizeof(name), i);
    if (p->state != P_NONE || p->gen != 0) {
        /* a new generation: forget the old one (NOT_FOUND when a failed transfer already
         * invalidated it) */
        nixl_status_t st = nixl_agent_invalidate_remote_md(g->a, name);
        if (st != NIXL_SUCCESS && st != NIXL_ERR_NOT_FOUND)
            agent_fail(g, "invalidate_remote_md(%s): %s (%s)", name, nixl_status_str(st),
                       nixl_last_error());
    }
    p->gen = gen;
    p->port = port;
    p->base = base;
    p->tries = 0;
    peer_fetch(g, i);
}

static void read_commands(agent_t *g, linebuf_t *lb)
{
    int r = lb_fill(lb, g->cmd_fd);
    if (r < 0) {
        g->quit = true; /* the driver is gone */
        return;
    }
    char line[256];
    while (lb_line(lb, line, sizeof(line))) {
        int i, port;
        uint64_t gen, base;
        if (sscanf(line, "peer %d %" SCNu64 " %d %" SCNx64, &i, &gen, &port, &base) == 4)
            on_peer(g, i, gen, port, base);
        else if (strcmp(line, "quit") == 0)
            g->quit = true;
    }
}

/* Advance fetches: loaded, failed (retry a few times: the peer may be starting), given up. */
static void poll_fetches(agent_t *g)
{
    uint64_t now = sec_now_ms();
    for (int i = 0; i < g->n; i++) {
        peer_t *p = &g->peers[i];
        char name[32];
        peer_name(name, sizeof(name), i);
        if (p->state == P_WAIT_RETRY && now - p->since_ms >= 300) {
            peer_fetch(g, i);
            continue;
        }
        if (p->state != P_FETCHING)
            continue;
        nixl_status_t st = nixl_agent_get_fetch_status(g->a, name);
        if (st == NIXL_SUCCESS) {
            p->state = P_LOADED;
        } else if (st == NIXL_IN_PROG) {
            if (now - p->since_ms > RELEASE_MS)
                agent_fail(g, "fetch of %s still running after %u ms", name, RELEASE_MS);
        } else {
            g->c[C_FETCH_FAIL]++;
            p->state = ++p->tries < 5 ? P_WAIT_RETRY : P_NONE;
            p->since_ms = now;
        }
    }
}

static void check_notifs(agent_t *g)
{
    nixl_notif_list_t *l = NULL;
    nixl_status_t st = nixl_agent_get_notifs(g->a, NULL, &l);
    if (st != NIXL_SUCCESS)
        agent_fail(g, "get_notifs: %s (%s)", nixl_status_str(st), nixl_last_error());
    for (size_t k = 0; k < l->count; k++) {
        const nixl_notif_t *n = &l->items[k];
        char msg[64], kind, be;
        int from;
        uint64_t gen, iter;
        size_t len = n->msg_len < sizeof(msg) - 1 ? n->msg_len : sizeof(msg) - 1;
        memcpy(msg, n->msg, len);
        msg[len] = '\0';
        char want[32];
        if (sscanf(msg, "%c%c %d %" SCNu64 " %" SCNu64, &kind, &be, &from, &gen, &iter) != 5 ||
            from < 0 || from >= g->n || (be != 'S' && be != 'U') ||
            (kind != 'W' && kind != 'R' && kind != 'G'))
            agent_fail(g, "notification from %s not ours: '%s'", n->agent, msg);
        peer_name(want, sizeof(want), from);
        if (strcmp(want, n->agent) != 0)
            agent_fail(g, "notification '%s' signed by %s", msg, n->agent);
        peer_t *p = &g->peers[from];
        int e = be == 'U';
        if (p->notif_seen[e] && gen < p->notif_gen[e]) {
            g->c[C_NOTIF_STALE]++;
        } else {
            if (p->notif_seen[e] && gen == p->notif_gen[e] && iter <= p->notif_iter[e])
                agent_fail(g,
                           "notification '%s' from %s after iteration %" PRIu64
                           " (duplicate or out of order)",
                           msg, n->agent, p->notif_iter[e]);
            p->notif_seen[e] = true;
            p->notif_gen[e] = gen;
            p->notif_iter[e] = iter;
        }
        g->c[C_NOTIF_RECV]++;
    }
    nixl_free(l);
}

/* Wait for a posted request to end; a hang (past HANG_MS) fails the agent. */
static nixl_status_t wait_xfer(agent_t *g, nixl_xfer_req_t *r, nixl_status_t st, uint64_t t0,
                               int peer)
{
    bool told = false;
    while (st == NIXL_IN_PROG) {
        if (!told && getenv("SOAK_STACKS") && sec_now_ms() - t0 > 2000) {
            told = true;
            put_line(g->rep_fd, "stall %d", peer);
        }
        if (sec_now_ms() - t0 > HANG_MS)
            agent_fail(g,
                       "transfer to soak-%d still IN_PROG %u ms after its post (deadline "
                       "%u ms)",
                       peer, HANG_MS, DEADLINE_US / 1000);
        usleep(100);
        st = nixl_agent_get_xfer_status(g->a, r);
    }
    uint64_t took = sec_now_ms() - t0;
    if (took > g->c[C_MAX_XFER_MS])
        g->c[C_MAX_XFER_MS] = took;
    return st;
}

static void release_req(agent_t *g, nixl_xfer_req_t *r, int peer)
{
    uint64_t t0 = sec_now_ms();
    nixl_status_t st;
    while ((st = nixl_agent_release_xfer_req(g->a, r)) == NIXL_ERR_REPOST_ACTIVE) {
        if (sec_now_ms() - t0 > RELEASE_MS)
            agent_fail(g, "request to soak-%d not released after %u ms (%s)", peer, RELEASE_MS,
                       nixl_last_error());
        sec_sleep_ms(10);
    }
    if (st != NIXL_SUCCESS)
        agent_fail(g, "release_xfer_req: %s (%s)", nixl_status_str(st), nixl_last_error());
    uint64_t took = sec_now_ms() - t0;
    if (took > g->c[C_MAX_REL_MS])
        g->c[C_MAX_REL_MS] = took;
}

/* One transfer: create, post with a deadline and a notification, wait, release. The final
 * status; errors are counted (an unexpected one fails the agent). */
static nixl_status_t transfer(agent_t *g, nixl_xfer_op_t op, const nixl_desc_t *loc,
                              const nixl_desc_t *rem, size_t n, int peer, int e, const char *notif)
{
    char name[32];
    peer_name(name, sizeof(name), peer);
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.backends = &g->be[e];
    opt.num_backends = 1;
    opt.has_notif = true;
    opt.notif = notif;
    opt.notif_len = strlen(notif);
    nixl_xfer_req_t *r = NULL;
    uint64_t tc = sec_now_ms();
    nixl_status_t st = nixl_agent_create_xfer_req(g->a, op, NIXL_DRAM_SEG, loc, n, NIXL_DRAM_SEG,
                                                  rem, n, name, &opt, &r);
    if (sec_now_ms() - tc > 500)
        fprintf(stderr, "soak-%d: SLOW create to %s over %s: %" PRIu64 " ms -> %s\n", g->idx, name,
                e ? "UCX" : "SHM", sec_now_ms() - tc, nixl_status_str(st));
    if (st != NIXL_SUCCESS) {
        count_err(g, st, "create_xfer_req", peer);
        if (st == NIXL_ERR_NOT_FOUND && g->peers[peer].state == P_LOADED) {
            /* forgotten after a failure: fetch again (the peer may be gone for good) */
            g->peers[peer].tries = 0;
            peer_fetch(g, peer);
        }
        return st;
    }
    opt.deadline_us = DEADLINE_US;
    uint64_t t0 = sec_now_ms();
    st = nixl_agent_post_xfer_req(g->a, r, &opt);
    st = wait_xfer(g, r, st, t0, peer);
    if (st == NIXL_SUCCESS) {
        g->c[C_OK]++;
        g->c[C_NOTIF_SENT]++;
        if (e == 1)
            g->c[C_UCX]++;
        for (size_t i = 0; i < n; i++)
            g->c[C_BYTES] += loc[i].len;
    } else {
        /* for the log: which transfer, where, how long */
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += loc[i].len;
        fprintf(stderr,
                "[%" PRIu64 "] soak-%d gen %" PRIu64 ": %s of %zu bytes (%zu descriptors) to %s "
                "gen %" PRIu64 " over %s: %s after %" PRIu64 " ms (%s)\n",
                sec_now_ms(), g->idx, g->gen, op == NIXL_READ ? "READ" : "WRITE", bytes, n, name,
                g->peers[peer].gen, e ? "UCX" : "SHM", nixl_status_str(st), sec_now_ms() - t0,
                nixl_last_error());
        count_err(g, st, op == NIXL_READ ? "READ" : "WRITE", peer);
    }
    release_req(g, r, peer);
    return st;
}

/* The descriptors of one transfer: n of len bytes, local ones `gap` apart from `lbase`,
 * remote ones at rbase + perm[i] * len. */
static void make_descs(agent_t *g, size_t n, size_t len, size_t gap, uintptr_t lbase,
                       uint64_t rbase, nixl_desc_t *loc, nixl_desc_t *rem)
{
    int perm[MAX_DESCS];
    for (size_t i = 0; i < n; i++)
        perm[i] = (int)i;
    if (rnd(g) % 4) /* a quarter keep the order, so runs can merge */
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = rnd(g) % (i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    for (size_t i = 0; i < n; i++) {
        loc[i] = (nixl_desc_t){lbase + i * (len + gap), len, 0};
        rem[i] = (nixl_desc_t){(uintptr_t)(rbase + (uint64_t)perm[i] * len), len, 0};
    }
}

/* Compare local descriptors with their expected words; count bad bytes. */
static uint64_t verify_write(const nixl_desc_t *loc, size_t n, uint64_t key)
{
    uint64_t bad = 0, j = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t *w = (const uint64_t *)loc[i].addr;
        for (size_t k = 0; k < loc[i].len / 8; k++, j++)
            if (w[k] != word_of(key, j))
                bad += bad_bytes(w[k], word_of(key, j));
    }
    return bad;
}

static uint64_t verify_read(const nixl_desc_t *loc, const nixl_desc_t *rem, size_t n,
                            uint64_t rarea, uint64_t key)
{
    uint64_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t *w = (const uint64_t *)loc[i].addr;
        uint64_t j0 = (rem[i].addr - rarea) / 8;
        for (size_t k = 0; k < loc[i].len / 8; k++)
            if (w[k] != word_of(key, j0 + k))
                bad += bad_bytes(w[k], word_of(key, j0 + k));
    }
    return bad;
}

static void corrupt(agent_t *g, uint64_t bad, const char *what, int peer, int e)
{
    g->c[C_CORRUPT] += bad;
    send_stats(g, "stats"); /* now: a kill must not lose it */
    agent_fail(g, "%s with soak-%d over %s: SUCCESS with %" PRIu64 " wrong bytes", what, peer,
               e ? "UCX" : "SHM", bad);
}

static void one_round(agent_t *g)
{
    int cand[MAX_AGENTS], nc = 0;
    for (int i = 0; i < g->n; i++)
        if (g->peers[i].state == P_LOADED)
            cand[nc++] = i;
    if (nc == 0) {
        sec_sleep_ms(5);
        return;
    }
    int peer = cand[rnd(g) % (uint64_t)nc];
    peer_t *p = &g->peers[peer];
    int e = g->be[1] && (rnd(g) & 1);
    uint64_t iter = ++g->iter;
    char notif[64];

    if (rnd(g) % 16 == 0) {
        nixl_opt_args_t opt;
        nixl_opt_args_init(&opt);
        opt.backends = &g->be[e];
        opt.num_backends = 1;
        char name[32];
        peer_name(name, sizeof(name), peer);
        snprintf(notif, sizeof(notif), "G%c %d %" PRIu64 " %" PRIu64, e ? 'U' : 'S', g->idx, g->gen,
                 iter);
        uint64_t tg = sec_now_ms();
        nixl_status_t st = nixl_agent_gen_notif(g->a, name, notif, strlen(notif), &opt);
        if (sec_now_ms() - tg > 500)
            fprintf(stderr, "soak-%d: SLOW gen_notif to %s: %" PRIu64 " ms\n", g->idx, name,
                    sec_now_ms() - tg);
        if (st == NIXL_SUCCESS)
            g->c[C_NOTIF_SENT]++;
        else
            count_err(g, st, "gen_notif", peer);
        return;
    }

    /* 4 KiB..4 MiB, spread over the powers of two, in 1..64 descriptors of 8-byte multiples */
    size_t lo = (size_t)MIN_XFER << (rnd(g) % 11);
    size_t total = lo + rnd(g) % lo;
    if (total > MAX_XFER)
        total = MAX_XFER;
    size_t n = 1 + rnd(g) % MAX_DESCS;
    size_t len = (total / n) & ~(size_t)7;
    size_t gap = (rnd(g) & 1) ? GAP : 0;
    nixl_desc_t loc[MAX_DESCS], rem[MAX_DESCS];

    if (rnd(g) & 1) {
        /* WRITE a fresh pattern into our slot at the peer, then read it back */
        uint64_t slot = p->base + EXPOSED + (uint64_t)g->idx * SLOT;
        uint64_t room = (SLOT - n * len) / 8;
        uint64_t off = (rnd(g) % (room + 1)) * 8;
        make_descs(g, n, len, gap, (uintptr_t)g->src, slot + off, loc, rem);
        uint64_t key = key_of(g->seed, 'W', (uint64_t)g->idx, g->gen, iter);
        uint64_t j = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t *w = (uint64_t *)loc[i].addr;
            for (size_t k = 0; k < len / 8; k++)
                w[k] = word_of(key, j++);
        }
        snprintf(notif, sizeof(notif), "W%c %d %" PRIu64 " %" PRIu64, e ? 'U' : 'S', g->idx, g->gen,
                 iter);
        if (transfer(g, NIXL_WRITE, loc, rem, n, peer, e, notif) != NIXL_SUCCESS)
            return;
        nixl_desc_t back[MAX_DESCS];
        for (size_t i = 0; i < n; i++) {
            back[i] = loc[i];
            back[i].addr = (uintptr_t)g->dst + (loc[i].addr - (uintptr_t)g->src);
            memset((void *)back[i].addr, 0xa5, len);
        }
        int e2 = g->be[1] && (rnd(g) & 1);
        iter = ++g->iter;
        snprintf(notif, sizeof(notif), "R%c %d %" PRIu64 " %" PRIu64, e2 ? 'U' : 'S', g->idx,
                 g->gen, iter);
        if (transfer(g, NIXL_READ, back, rem, n, peer, e2, notif) != NIXL_SUCCESS)
            return;
        uint64_t bad = verify_write(back, n, key);
        if (bad)
            corrupt(g, bad, "WRITE read back", peer, e2);
        g->c[C_WRITES]++;
    } else {
        /* READ random ranges of the peer's exposed area */
        uint64_t room = (EXPOSED - n * len) / 8;
        uint64_t off = (rnd(g) % (room + 1)) * 8;
        make_descs(g, n, len, gap, (uintptr_t)g->dst, p->base + off, loc, rem);
        for (size_t i = 0; i < n; i++)
            memset((void *)loc[i].addr, 0xa5, len);
        snprintf(notif, sizeof(notif), "R%c %d %" PRIu64 " %" PRIu64, e ? 'U' : 'S', g->idx, g->gen,
                 iter);
        if (transfer(g, NIXL_READ, loc, rem, n, peer, e, notif) != NIXL_SUCCESS)
            return;
        uint64_t bad = verify_read(loc, rem, n, p->base,
                                   key_of(g->seed, 'E', (uint64_t)peer, p->gen, 0));
        if (bad)
            corrupt(g, bad, "READ", peer, e);
        g->c[C_READS]++;
    }
}

static int agent_main(int idx, uint64_t gen, int n, uint64_t seed, int cmd_fd, int rep_fd)
{
    static agent_t g; /* large: not on the stack */
    g.idx = idx;
    g.gen = gen;
    g.n = n;
    g.seed = seed;
    g.cmd_fd = cmd_fd;
    g.rep_fd = rep_fd;
    g.rng = key_of(seed, 'r', (uint64_t)idx, gen, 0);
    set_nonblock(cmd_fd);

    char name[32];
    peer_name(name, sizeof(name), idx);
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = true;
    cfg.listen_port = 0;
    cfg.listen_addr = "127.0.0.1";
    nixl_status_t st = nixl_agent_create(name, &cfg, &g.a);
    if (st != NIXL_SUCCESS)
        agent_fail(&g, "agent_create: %s (%s)", nixl_status_str(st), nixl_last_error());
    int port = 0;
    if (nixl_agent_get_listen_port(g.a, &port) != NIXL_SUCCESS)
        agent_fail(&g, "no listen port (%s)", nixl_last_error());
    /* large transfers go to SHM's worker thread, where deadlines and cancels apply */
    nixl_param_t shm_params[] = {{"async_threshold", "262144"}};
    st = nixl_agent_create_backend(g.a, "SHM", shm_params, 1, &g.be[0]);
    if (st != NIXL_SUCCESS)
        agent_fail(&g, "SHM backend: %s (%s)", nixl_status_str(st), nixl_last_error());
    const char *ucx = getenv("SOAK_UCX");
    if (!ucx || strcmp(ucx, "0") != 0) {
        st = nixl_agent_create_backend(g.a, "UCX", NULL, 0, &g.be[1]);
        if (st == NIXL_ERR_NOT_FOUND)
            g.be[1] = NULL; /* not built here */
        else if (st != NIXL_SUCCESS)
            agent_fail(&g, "UCX backend: %s (%s)", nixl_status_str(st), nixl_last_error());
    }

    /* everything touched now, so that resident size is flat from the start */
    g.area_len = EXPOSED + (size_t)n * SLOT + 2 * LOCAL_BUF;
    if (posix_memalign((void **)&g.area, 4096, g.area_len) != 0)
        agent_fail(&g, "out of memory (%zu bytes)", g.area_len);
    memset(g.area, 0, g.area_len);
    uint64_t ekey = key_of(seed, 'E', (uint64_t)idx, gen, 0);
    for (size_t j = 0; j < EXPOSED / 8; j++)
        ((uint64_t *)g.area)[j] = word_of(ekey, j);
    g.src = g.area + EXPOSED + (size_t)n * SLOT;
    g.dst = g.src + LOCAL_BUF;
    nixl_reg_desc_t reg = {(uintptr_t)g.area, g.area_len, 0, NULL, 0};
    st = nixl_agent_register_mem(g.a, NIXL_DRAM_SEG, &reg, 1, NULL);
    if (st != NIXL_SUCCESS)
        agent_fail(&g, "register_mem: %s (%s)", nixl_status_str(st), nixl_last_error());
    put_line(rep_fd, "up %d %" PRIx64 " %d", port, (uint64_t)(uintptr_t)g.area, g.be[1] != NULL);

    linebuf_t lb = {.n = 0};
    uint64_t last_stats = 0;
    while (!g.quit) {
        read_commands(&g, &lb);
        poll_fetches(&g);
        check_notifs(&g);
        one_round(&g);
        if (sec_now_ms() - last_stats >= STATS_MS) {
            send_stats(&g, "stats");
            last_stats = sec_now_ms();
        }
    }

    /* a clean exit: tell the peers to forget us, then let everything go */
    for (int i = 0; i < n; i++) {
        if (g.peers[i].state != P_LOADED)
            continue;
        nixl_opt_args_t opt;
        nixl_opt_args_init(&opt);
        opt.ip_addr = "127.0.0.1";
        opt.port = g.peers[i].port;
        nixl_agent_invalidate_local_md(g.a, &opt);
    }
    check_notifs(&g);
    send_stats(&g, "final");
    nixl_agent_destroy(g.a);
    free(g.area);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The driver                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct proc {
    pid_t pid; /* 0: not running */
    uint64_t gen;
    int cmd_fd, rep_fd;
    linebuf_t lb;
    bool up, killed, quitting, got_final;
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
    p->up = p->killed = p->quitting = p->got_final = p->warm = false;
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
    } else if (strncmp(line, "stall ", 6) == 0) {
        int t = atoi(line + 6);
        if (t >= 0 && t < d->n && d->p[t].pid) {
            char cmd[600];
            snprintf(cmd, sizeof(cmd),
                     "echo '=== soak-%d (pid %d) waits for soak-%d (pid %d)'"
                     " >>%s; timeout 20 gdb -p %d -batch -ex 'thread apply all bt' >>%s 2>&1",
                     i, (int)p->pid, t, (int)d->p[t].pid, d->log, (int)d->p[t].pid, d->log);
            (void)!system(cmd);
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
 * Aborts of UCX itself that the soak provokes and that are UCX's bugs, fixed upstream but
 * present in the UCX this host has: reported, not failures (--strict-ucx makes them
 * failures). Each is recognised by UCX's own assertion message in the agent log.
 */
static const struct {
    const char *where, *what, *why;
} ucx_known[] = {
    {"ucp_request.c", "got REP message",
     "UCX 1.13 asserts when a TCP endpoint fails (its peer was killed) while a wireup reply "
     "waits in its queue; upstream removed the assertion (openucx/ucx pull request 8175)"},
};

static bool known_ucx_abort(driver_t *d, pid_t pid, int i, uint64_t gen)
{
    if (d->strict_ucx)
        return false;
    FILE *f = fopen(d->log, "r");
    char line[2048], tag[32];
    snprintf(tag, sizeof(tag), ":%d:", (int)pid);
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f)) {
        if (!strstr(line, tag) || !strstr(line, "Assertion"))
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
            "failures %" PRIu64 ", peak RSS %" PRIu64 " MiB\n",
            prefix, secs, t[C_OK], t[C_UCX], (double)t[C_BYTES] / (double)(1ull << 30), t[C_ERRS],
            t[C_CORRUPT], d->restarts, t[C_FETCH_FAIL], t[C_HWM_KB] / 1024);
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
        if (p->quitting && now - p->quit_ms > QUIT_MS) {
            drv_fail(d, "soak-%d gen %" PRIu64 " did not exit within %u ms of quit", i, p->gen,
                     QUIT_MS);
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

    /* the end: every agent quits cleanly */
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
            " restarts=%" PRIu64 " kills=%" PRIu64 " clean_exits=%" PRIu64 " notifs_sent=%" PRIu64
            " notifs_recv=%" PRIu64 " attacks=%" PRIu64 " peak_rss_kb=%" PRIu64
            " max_growth_kb=%" PRIu64 " max_xfer_ms=%" PRIu64 " max_release_ms=%" PRIu64
            " ucx_aborts=%" PRIu64 " failures=%u\n",
            d->failures ? "FAIL" : "pass", secs, d->n, t[C_OK], t[C_UCX], t[C_BYTES], t[C_ERRS],
            t[C_CORRUPT], d->restarts, d->kills, d->quits, t[C_NOTIF_SENT], t[C_NOTIF_RECV],
            d->attacks, t[C_HWM_KB], d->max_growth_seen, t[C_MAX_XFER_MS], t[C_MAX_REL_MS],
            d->ucx_aborts, d->failures);
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
        return agent_main(
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
