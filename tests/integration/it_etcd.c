/*
 * it_etcd.c - metadata through a real etcd server (reference NIXL-SEMANTICS 5.9, 5.11, and
 * metadata_exchange.cpp's etcd variants), with the SHM backend since only metadata moves.
 * The program starts etcd on free loopback ports with a temporary data directory and stops it
 * at the end; without an etcd binary it skips (77).
 *
 *  PublishFetch  publish, the reference key layout (double slash, anchor), fetch by name over a
 *                list whose first endpoint is dead, invalidate-local reaches the fetcher; a
 *                name never published fails observably after the watch timeout
 *  PartialLabels partial metadata needs a label, is fetched by label and accumulates
 *  Later         a fetch waits for an agent that appears a second later
 *  Restart       etcd restarted mid-run: the peer's changed metadata still reaches the fetcher
 *                (reload), a new agent can be fetched, and invalidation still arrives
 *  Wipe          etcd restarted without its data: the agent publishes again on a new lease,
 *                the fetcher's watch starts over and still follows the peer
 *  Sigkill       an agent killed with SIGKILL is invalidated by its peer within TTL + 2 s
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_etcd_srv.h"
#include "it_util.h"
#include "peer.h"

#define BUF 4096u
#define MAX_BUFS 8u
#define NO_PEER {.pid = 0, .ch = {-1, -1}}

static it_etcd_t srv;

/* ---- the agent role: "<name> <buffers>" ----
 *   send                        send_local_md                        -> ok
 *   partial <label|-> <i> <n>   send_local_partial_md of buffers i.. -> ok | invalid | error
 *   grow                        register one more buffer, send_local_md -> ok
 *   invalidate                  invalidate_local_md                  -> ok
 *   quit
 * It first answers "ready <addr>..." with its buffers' addresses. */
static int agent_role(it_chan_t *ch, const char *arg)
{
    char name[64];
    unsigned n = 0;
    uint8_t *bufs[MAX_BUFS] = {0};
    nixl_agent_t *agent = NULL;
    int rc = 1;
    if (sscanf(arg, "%63s %u", name, &n) != 2 || n >= MAX_BUFS)
        return 2;
    /* SHM, or the backend IT_BACKEND names (it-etcd-libfabric) */
    agent = getenv("IT_BACKEND") && *getenv("IT_BACKEND")
                ? it_agent_be(name, getenv("IT_BACKEND"), false, NULL)
                : it_agent(name, 0);
    if (!agent)
        return 1;
    char ready[512] = "ready";
    for (unsigned i = 0; i < n; i++) {
        bufs[i] = it_alloc(BUF);
        if (!bufs[i] || it_register(agent, bufs[i], BUF))
            goto out;
        snprintf(ready + strlen(ready), sizeof(ready) - strlen(ready), " %" PRIuPTR,
                 (uintptr_t)bufs[i]);
    }
    it_sendf(ch, "%s", ready);
    for (;;) {
        char *cmd = it_recv_str(ch, 120000);
        char label[64];
        unsigned i, k;
        if (!cmd)
            goto out;
        nixl_status_t st = NIXL_ERR_UNKNOWN;
        if (!strcmp(cmd, "quit")) {
            free(cmd);
            rc = 0;
            goto out;
        } else if (!strcmp(cmd, "send")) {
            st = nixl_agent_send_local_md(agent, NULL);
        } else if (!strcmp(cmd, "invalidate")) {
            st = nixl_agent_invalidate_local_md(agent, NULL);
        } else if (!strcmp(cmd, "grow") && n < MAX_BUFS) {
            bufs[n] = it_alloc(BUF);
            if (bufs[n] && !it_register(agent, bufs[n], BUF))
                st = nixl_agent_send_local_md(agent, NULL);
            it_sendf(ch, "%s %" PRIuPTR, st ? "error" : "ok", (uintptr_t)bufs[n]);
            n++;
            free(cmd);
            continue;
        } else if (sscanf(cmd, "partial %63s %u %u", label, &i, &k) == 3 && i + k <= n) {
            nixl_reg_desc_t d[MAX_BUFS];
            for (unsigned j = 0; j < k; j++)
                d[j] = (nixl_reg_desc_t){.addr = (uintptr_t)bufs[i + j], .len = BUF};
            nixl_opt_args_t opt;
            nixl_opt_args_init(&opt);
            opt.metadata_label = strcmp(label, "-") ? label : NULL;
            opt.include_conn_info = true;
            st = nixl_agent_send_local_partial_md(agent, NIXL_DRAM_SEG, d, k, &opt);
            if (st == NIXL_ERR_INVALID_PARAM) {
                it_sendf(ch, "invalid");
                free(cmd);
                continue;
            }
        }
        it_sendf(ch, "%s", st == NIXL_SUCCESS ? "ok" : nixl_last_error());
        free(cmd);
    }
out:
    nixl_agent_destroy(agent);
    for (unsigned i = 0; i < MAX_BUFS; i++)
        free(bufs[i]);
    return rc;
}

/* Spawn an agent role and read its buffer addresses. 0 or -1. */
static int spawn(it_peer_t *p, const char *name, unsigned n, uintptr_t *addrs)
{
    char arg[96];
    snprintf(arg, sizeof(arg), "%s %u", name, n);
    if (it_peer_spawn(p, "agent", arg))
        return -1;
    char *ready = it_recv_str(&p->ch, IT_TIMEOUT_MS);
    if (!ready || strncmp(ready, "ready", 5)) {
        free(ready);
        it_peer_cleanup(p);
        return it_fail(__FILE__, __LINE__, "%s did not start", name);
    }
    char *s = ready + 5;
    for (unsigned i = 0; i < n; i++)
        addrs[i] = (uintptr_t)strtoull(s, &s, 10);
    free(ready);
    return 0;
}

/* Poll the fetch status of `name` until it leaves IN_PROG. */
static nixl_status_t wait_fetch(nixl_agent_t *a, const char *name, int timeout_ms)
{
    nixl_status_t st = NIXL_IN_PROG;
    for (uint64_t end = it_now_ms() + (uint64_t)timeout_ms; it_now_ms() < end; it_sleep_ms(20))
        if ((st = nixl_agent_get_fetch_status(a, name)) != NIXL_IN_PROG)
            break;
    return st;
}

/* Fetch `name` (label NULL: the default) and require success. 0 or -1. */
static int fetch(nixl_agent_t *a, const char *name, const char *label)
{
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.metadata_label = label;
    IT_CHECK_ST(nixl_agent_fetch_remote_md(a, name, &opt), NIXL_SUCCESS);
    IT_CHECK_ST(wait_fetch(a, name, IT_TIMEOUT_MS), NIXL_SUCCESS);
    return 0;
fail:
    return -1;
}

static nixl_status_t check(nixl_agent_t *a, const char *name, uintptr_t addr)
{
    nixl_desc_t d = {.addr = addr, .len = BUF};
    return nixl_agent_check_remote_md(a, name, NIXL_DRAM_SEG, &d, addr ? 1 : 0);
}

/* Poll check(name, addr) until it returns `want`; the milliseconds it took, or -1. */
static long wait_check(nixl_agent_t *a, const char *name, uintptr_t addr, nixl_status_t want,
                       int timeout_ms)
{
    uint64_t start = it_now_ms();
    nixl_status_t st = NIXL_IN_PROG;
    while (it_now_ms() < start + (uint64_t)timeout_ms) {
        if ((st = check(a, name, addr)) == want)
            return (long)(it_now_ms() - start);
        it_sleep_ms(20);
    }
    it_fail(__FILE__, __LINE__, "check_remote_md(%s) stayed %s, wanted %s", name,
            nixl_status_str(st), nixl_status_str(want));
    return -1;
}

static int wait_key(const char *key, int want)
{
    for (uint64_t end = it_now_ms() + 5000; it_now_ms() < end; it_sleep_ms(50))
        if (it_etcd_has_key(&srv, key) == want)
            return 0;
    return it_fail(__FILE__, __LINE__, "key '%s' %s", key, want ? "never appeared" : "stayed");
}

static void set_env(const char *ns, const char *ttl)
{
    char eps[128];
    snprintf(eps, sizeof(eps), "http://127.0.0.1:1,%s", srv.url); /* the first one is dead */
    setenv("NIXL_ETCD_ENDPOINTS", eps, 1);
    if (ns)
        setenv("NIXL_ETCD_NAMESPACE", ns, 1);
    else
        unsetenv("NIXL_ETCD_NAMESPACE");
    if (ttl)
        setenv("NIXL_ETCD_LEASE_TTL_S", ttl, 1);
    else
        unsetenv("NIXL_ETCD_LEASE_TTL_S");
}

/* End a scenario: a peer still running must quit cleanly (when rc is 0), else it is killed;
 * the local agent goes. */
static int finish(int rc, it_peer_t *p, nixl_agent_t *b)
{
    if (rc == 0 && p->pid && it_peer_quit(p) != 0)
        rc = -1;
    it_peer_cleanup(p);
    nixl_agent_destroy(b);
    return rc;
}

/* Spawn agent `name` with n buffers, have it publish, create the local agent "EB" (watch
 * timeout in microseconds) and fetch `name` from it. 0 or -1 (reported). */
static int published_and_fetched(it_peer_t *p, const char *name, unsigned n, uintptr_t *a,
                                 uint64_t timeout_us, nixl_agent_t **b)
{
    IT_CHECK(spawn(p, name, n, a) == 0, "spawn %s", name);
    IT_CHECK(it_cmd(&p->ch, "send") == 0, "send");
    *b = it_etcd_agent("EB", timeout_us);
    IT_CHECK(*b, "agent");
    IT_CHECK(fetch(*b, name, NULL) == 0, "fetch %s", name);
    return 0;
fail:
    return -1;
}

/* ---- scenarios ---- */

static int publish_fetch(const void *arg)
{
    (void)arg;
    it_peer_t p = NO_PEER;
    uintptr_t a[2] = {0};
    nixl_agent_t *b = NULL;
    set_env(NULL, NULL);
    IT_CHECK(published_and_fetched(&p, "EA", 2, a, 1000000, &b) == 0, "setup");
    IT_CHECK(wait_key("/nixl/agents//EA/", 1) == 0, "anchor");
    IT_CHECK(wait_key("/nixl/agents//EA/metadata", 1) == 0, "metadata key");
    IT_CHECK_ST(check(b, "EA", a[0]), NIXL_SUCCESS);
    IT_CHECK_ST(check(b, "EA", a[1]), NIXL_SUCCESS);
    IT_CHECK(it_cmd(&p.ch, "invalidate") == 0, "invalidate");
    IT_CHECK(wait_check(b, "EA", 0, NIXL_ERR_NOT_FOUND, 5000) >= 0, "invalidation");
    IT_CHECK(wait_key("/nixl/agents//EA/", 0) == 0, "anchor deleted");
    IT_CHECK(wait_key("/nixl/agents//EA/metadata", 0) == 0, "metadata deleted");
    /* Never published: SUCCESS now, an observable failure after the 1 s watch timeout. */
    IT_CHECK_ST(nixl_agent_fetch_remote_md(b, "Nobody", NULL), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_get_fetch_status(b, "Nobody"), NIXL_IN_PROG);
    IT_CHECK_ST(wait_fetch(b, "Nobody", 4000), NIXL_ERR_BACKEND);
    IT_CHECK(strstr(nixl_last_error(), "watch timeout"), "reason: %s", nixl_last_error());
    IT_CHECK_ST(check(b, "Nobody", 0), NIXL_ERR_BACKEND);
    return finish(0, &p, b);
fail:
    return finish(-1, &p, b);
}

static int partial_labels(const void *arg)
{
    (void)arg;
    it_peer_t p = NO_PEER;
    uintptr_t a[3];
    nixl_agent_t *b = NULL;
    set_env("/it-partial/", NULL);
    IT_CHECK(spawn(&p, "EP", 3, a) == 0, "spawn");
    IT_CHECK(it_sendf(&p.ch, "partial - 0 2") == 0, "send");
    IT_CHECK(it_expect(&p.ch, "invalid", IT_TIMEOUT_MS) == 0, "a partial send needs a label");
    IT_CHECK(it_cmd(&p.ch, "partial part 0 2") == 0, "partial");
    IT_CHECK(wait_key("/it-partial//EP/part", 1) == 0, "label key");
    b = it_etcd_agent("EB", 1000000);
    IT_CHECK(b, "agent");
    IT_CHECK(fetch(b, "EP", "part") == 0, "fetch by label");
    IT_CHECK_ST(check(b, "EP", a[0]), NIXL_SUCCESS);
    IT_CHECK_ST(check(b, "EP", a[1]), NIXL_SUCCESS);
    IT_CHECK_ST(check(b, "EP", a[2]), NIXL_ERR_NOT_FOUND);
    IT_CHECK(it_cmd(&p.ch, "partial part2 2 1") == 0, "partial 2");
    IT_CHECK(fetch(b, "EP", "part2") == 0, "fetch second label");
    IT_CHECK_ST(check(b, "EP", a[0]), NIXL_SUCCESS); /* accumulated */
    IT_CHECK_ST(check(b, "EP", a[2]), NIXL_SUCCESS);
    return finish(0, &p, b);
fail:
    return finish(-1, &p, b);
}

static int later(const void *arg)
{
    (void)arg;
    it_peer_t p = NO_PEER;
    uintptr_t a[1];
    nixl_agent_t *b = NULL;
    set_env("/it-later/", NULL);
    b = it_etcd_agent("EB", 8000000);
    IT_CHECK(b, "agent");
    IT_CHECK_ST(nixl_agent_fetch_remote_md(b, "EL", NULL), NIXL_SUCCESS);
    it_sleep_ms(1000);
    IT_CHECK_ST(nixl_agent_get_fetch_status(b, "EL"), NIXL_IN_PROG);
    IT_CHECK(spawn(&p, "EL", 1, a) == 0, "spawn");
    IT_CHECK(it_cmd(&p.ch, "send") == 0, "send");
    IT_CHECK_ST(wait_fetch(b, "EL", 8000), NIXL_SUCCESS);
    IT_CHECK_ST(check(b, "EL", a[0]), NIXL_SUCCESS);
    return finish(0, &p, b);
fail:
    return finish(-1, &p, b);
}

static int restart(const void *arg)
{
    (void)arg;
    it_peer_t p = NO_PEER, q = NO_PEER;
    uintptr_t a[2], c[1];
    nixl_agent_t *b = NULL;
    set_env("/it-restart/", NULL);
    IT_CHECK(published_and_fetched(&p, "ER", 1, a, 5000000, &b) == 0, "setup");
    it_etcd_stop(&srv);
    it_log("etcd stopped");
    it_sleep_ms(1500);
    IT_CHECK(it_etcd_restart(&srv) == 0, "etcd restart");
    it_log("etcd restarted");
    /* The peer registers more and publishes again: the fetcher's watch reloads it. */
    IT_CHECK(it_sendf(&p.ch, "grow") == 0, "grow");
    char *r = it_recv_str(&p.ch, IT_TIMEOUT_MS);
    IT_CHECK(r && !strncmp(r, "ok ", 3), "grow: %s", r ? r : "(nothing)");
    a[1] = (uintptr_t)strtoull(r + 3, NULL, 10);
    free(r);
    IT_CHECK(wait_check(b, "ER", a[1], NIXL_SUCCESS, 10000) >= 0, "reload after restart");
    IT_CHECK_ST(check(b, "ER", a[0]), NIXL_SUCCESS);
    IT_CHECK(spawn(&q, "EC", 1, c) == 0, "spawn");
    IT_CHECK(it_cmd(&q.ch, "send") == 0, "send");
    IT_CHECK(fetch(b, "EC", NULL) == 0, "fetch after restart");
    IT_CHECK(it_cmd(&p.ch, "invalidate") == 0, "invalidate");
    IT_CHECK(wait_check(b, "ER", 0, NIXL_ERR_NOT_FOUND, 5000) >= 0, "invalidation");
    IT_CHECK_ST(check(b, "EC", c[0]), NIXL_SUCCESS);
    return finish(finish(0, &q, NULL), &p, b);
fail:
    return finish(finish(-1, &q, NULL), &p, b);
}

/* etcd loses everything (a new cluster on the same address): the agent notices that its
 * lease is gone and publishes again; the fetcher's watch starts over and follows the peer. */
static int wipe(const void *arg)
{
    (void)arg;
    it_peer_t p = NO_PEER;
    uintptr_t a[2];
    nixl_agent_t *b = NULL;
    char cmd[200];
    set_env("/it-wipe/", "3");
    IT_CHECK(published_and_fetched(&p, "EW", 1, a, 5000000, &b) == 0, "setup");
    it_etcd_stop(&srv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/data'", srv.dir);
    IT_CHECK(system(cmd) == 0, "wipe");
    IT_CHECK(it_etcd_restart(&srv) == 0, "etcd restart");
    IT_CHECK(it_etcd_has_key(&srv, "/it-wipe//EW/metadata") == 0, "the data survived");
    IT_CHECK(wait_key("/it-wipe//EW/metadata", 1) == 0, "republished after the wipe");
    IT_CHECK(it_sendf(&p.ch, "grow") == 0, "grow");
    char *r = it_recv_str(&p.ch, IT_TIMEOUT_MS);
    IT_CHECK(r && !strncmp(r, "ok ", 3), "grow: %s", r ? r : "(nothing)");
    a[1] = (uintptr_t)strtoull(r + 3, NULL, 10);
    free(r);
    IT_CHECK(wait_check(b, "EW", a[1], NIXL_SUCCESS, 10000) >= 0, "reload after the wipe");
    IT_CHECK(it_cmd(&p.ch, "invalidate") == 0, "invalidate");
    IT_CHECK(wait_check(b, "EW", 0, NIXL_ERR_NOT_FOUND, 5000) >= 0, "invalidation");
    return finish(0, &p, b);
fail:
    return finish(-1, &p, b);
}

static int sigkill(const void *arg)
{
    (void)arg;
    it_peer_t p = NO_PEER;
    uintptr_t a[1];
    nixl_agent_t *b = NULL;
    set_env("/it-kill/", "2");
    IT_CHECK(published_and_fetched(&p, "EK", 1, a, 5000000, &b) == 0, "setup");
    it_sleep_ms(3000); /* longer than the TTL: the keep-alives hold the keys */
    IT_CHECK_ST(check(b, "EK", a[0]), NIXL_SUCCESS);
    IT_CHECK(it_etcd_has_key(&srv, "/it-kill//EK/metadata") == 1, "key lost while alive");
    it_peer_kill(&p);
    long ms = wait_check(b, "EK", 0, NIXL_ERR_NOT_FOUND, 6000);
    IT_CHECK(ms >= 0 && ms <= 4000, "invalidated after %ld ms (TTL 2 s + 2 s allowed)", ms);
    it_log("killed peer invalidated after %ld ms", ms);
    IT_CHECK(wait_key("/it-kill//EK/", 0) == 0, "anchor gone");
    return finish(0, &p, b);
fail:
    return finish(-1, &p, b);
}

int main(int argc, char **argv)
{
    static const it_role_t roles[] = {{"agent", agent_role}};
    static const it_scenario_t scenarios[] = {
        {"PublishFetch", publish_fetch, NULL}, {"PartialLabels", partial_labels, NULL},
        {"Later", later, NULL},                {"Restart", restart, NULL},
        {"Wipe", wipe, NULL},                  {"Sigkill", sigkill, NULL},
    };
    bool peer = argc > 1 && !strcmp(argv[1], "--it-peer");
    if (!peer) {
        if (!it_etcd_available()) {
            fprintf(stderr, "etcd is not installed: skipping\n");
            return 77;
        }
        if (it_etcd_start(&srv))
            return 1;
    }
    int rc = it_main(argc, argv, roles, 1, scenarios, sizeof(scenarios) / sizeof(*scenarios));
    if (!peer)
        it_etcd_destroy(&srv);
    return rc;
}
