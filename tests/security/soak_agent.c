/*
 * soak_agent.c - one agent process of the soak (soak.c describes the whole): its engines and
 * region, the peers the driver tells it about, and its loop of verified transfers and
 * checked notifications. It reports counters to the driver every STATS_MS and a "fail" line
 * (then exits 1) on anything the soak must not see.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sec_util.h"
#include "soak.h"

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
    uint64_t rng, last_stats;
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

/* Counters every STATS_MS, also while a transfer or a release is waited for: silence means
 * a call that does not return. */
static void heartbeat(agent_t *g)
{
    if (sec_now_ms() - g->last_stats >= STATS_MS) {
        send_stats(g, "stats");
        g->last_stats = sec_now_ms();
    }
}

static void count_err(agent_t *g, nixl_status_t st, const char *what, int peer)
{
    g->c[C_ERRS]++;
    int k = -(int)st;
    if (k >= 1 && k <= 12)
        g->c[C_ST0 + k]++;
    else
        g->c[C_ST0]++;
    /* statuses that churn explains: the peer is gone, was forgotten (after a failure, or
     * while it is reloaded), or the transfer ran past its deadline */
    if (st == NIXL_ERR_REMOTE_DISCONNECT || st == NIXL_ERR_NOT_FOUND || st == NIXL_ERR_CANCELED)
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

/*
 * After a call failed on a loaded peer: NOT_FOUND means its metadata was invalidated after a
 * failure, REMOTE_DISCONNECT from create_xfer_req or gen_notif that a connection to it failed
 * while the metadata stays loaded. Either way, load it again from where it was (it may be gone
 * for good: the fetch then fails and the driver tells us of its successor).
 */
static void peer_reload(agent_t *g, int i, nixl_status_t st)
{
    peer_t *p = &g->peers[i];
    if (p->state != P_LOADED || (st != NIXL_ERR_NOT_FOUND && st != NIXL_ERR_REMOTE_DISCONNECT))
        return;
    if (st == NIXL_ERR_REMOTE_DISCONNECT) {
        char name[32];
        peer_name(name, sizeof(name), i);
        nixl_status_t r = nixl_agent_invalidate_remote_md(g->a, name);
        if (r != NIXL_SUCCESS && r != NIXL_ERR_NOT_FOUND)
            agent_fail(g, "invalidate_remote_md(%s): %s (%s)", name, nixl_status_str(r),
                       nixl_last_error());
        g->c[C_RELOADS]++;
    }
    p->tries = 0;
    peer_fetch(g, i);
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
        else if (strcmp(line, "quit") == 0) {
            g->quit = true;
            put_line(g->rep_fd, "quitting");
        }
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
        usleep(100);
        heartbeat(g);
        st = nixl_agent_get_xfer_status(g->a, r);
        /* A hang is IN_PROG from a status call made past HANG_MS (the deadline is applied by
         * that call): a process that was not scheduled for seconds must ask once more. */
        if (st == NIXL_IN_PROG && sec_now_ms() - t0 > HANG_MS)
            agent_fail(g,
                       "transfer to soak-%d still IN_PROG %u ms after its post (deadline "
                       "%u ms)",
                       peer, HANG_MS, DEADLINE_US / 1000);
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
        heartbeat(g);
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
        fprintf(stderr,
                "[%" PRIu64 "] soak-%d gen %" PRIu64 ": create_xfer_req to %s gen %" PRIu64
                " over %s: %s (%s)\n",
                sec_now_ms(), g->idx, g->gen, name, g->peers[peer].gen, e ? "UCX" : "SHM",
                nixl_status_str(st), nixl_last_error());
        count_err(g, st, "create_xfer_req", peer);
        peer_reload(g, peer, st);
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
        else {
            fprintf(stderr,
                    "[%" PRIu64 "] soak-%d gen %" PRIu64 ": gen_notif to %s over %s: %s (%s)\n",
                    sec_now_ms(), g->idx, g->gen, name, e ? "UCX" : "SHM", nixl_status_str(st),
                    nixl_last_error());
            count_err(g, st, "gen_notif", peer);
            peer_reload(g, peer, st);
        }
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

int soak_agent_main(int idx, uint64_t gen, int n, uint64_t seed, int cmd_fd, int rep_fd)
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
    while (!g.quit) {
        read_commands(&g, &lb);
        poll_fetches(&g);
        check_notifs(&g);
        one_round(&g);
        heartbeat(&g);
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
