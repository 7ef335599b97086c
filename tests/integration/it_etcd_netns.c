/*
 * it_etcd_netns.c - a multi-host run (needs root): three agents in three network namespaces
 * and etcd in a fourth (the hub, holding a bridge that the agents' veth links join). Metadata
 * goes only through etcd; UCX moves the bytes over TCP across the veths.
 *
 *  mesh   every agent publishes, fetches the two others by name, and WRITEs to and READs from
 *         each of them; every byte is verified on the side that received it. Then one agent
 *         invalidates itself and the two others forget it through their watches.
 *
 * The namespaces are made and removed by a shell script (ip(8)); a janitor in its own session
 * runs the removal when the program ends however it ends. Agents enter their namespace by
 * re-executing themselves through `ip netns exec`, which also gives them the namespace's /sys
 * (UCX looks for its devices there). Skips (77) without root, etcd or the UCX plugin.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_etcd_srv.h"
#include "it_util.h"
#include "peer.h"

#define AGENTS 3
#define SLOT ((size_t)64 << 10)
/* Buffer of every agent: inbox slots 0..AGENTS-1 (written by agent k), its own data (read by
 * the others), and two staging slots (outgoing WRITE, incoming READ). */
#define OWN AGENTS
#define OUT (AGENTS + 1)
#define IN (AGENTS + 2)
#define SLOTS (AGENTS + 3)

static char tag[16];   /* nx<pid % 100000> */
static char subnet[16]; /* 10.216.<x> */

/* ---- the namespaces ---- */

static int sh(const char *script)
{
    int rc = system(script);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void teardown_script(char *buf, size_t len)
{
    snprintf(buf, len,
             "for n in %sh %sa0 %sa1 %sa2; do ip netns del $n 2>/dev/null; done; "
             "for i in 0 1 2; do ip link del %sv$i 2>/dev/null; done; true",
             tag, tag, tag, tag, tag);
}

static int net_up(void)
{
    char s[2048];
    int n = snprintf(s, sizeof(s),
                     "set -e; ip netns add %sh; ip -n %sh link set lo up; "
                     "ip -n %sh link add br0 type bridge; ip -n %sh addr add %s.254/24 dev br0; "
                     "ip -n %sh link set br0 up; ",
                     tag, tag, tag, tag, subnet, tag);
    for (int i = 0; i < AGENTS; i++)
        n += snprintf(s + n, sizeof(s) - (size_t)n,
                      "ip netns add %sa%d; ip -n %sa%d link set lo up; "
                      "ip link add %sv%d type veth peer name %sb%d; "
                      "ip link set %sv%d netns %sa%d; ip link set %sb%d netns %sh; "
                      "ip -n %sh link set %sb%d master br0; ip -n %sh link set %sb%d up; "
                      "ip -n %sa%d addr add %s.%d/24 dev %sv%d; ip -n %sa%d link set %sv%d up; ",
                      tag, i, tag, i, tag, i, tag, i, tag, i, tag, i, tag, i, tag, tag, tag, i,
                      tag, tag, i, tag, i, subnet, i + 1, tag, i, tag, i, tag, i);
    return sh(s);
}

/* A janitor in its own session removes everything once our end of its pipe closes. */
static int janitor_start(void)
{
    int pfd[2];
    char script[512], full[640];
    teardown_script(script, sizeof(script));
    snprintf(full, sizeof(full), "cat >/dev/null; %s", script);
    if (pipe2(pfd, O_CLOEXEC))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setsid();
        dup2(pfd[0], 0);
        close(pfd[1]);
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    close(pfd[0]);
    return pfd[1]; /* close-on-exec: only this process holds the janitor */
}

/* ---- the agent (in its namespace) ---- */

static uint64_t slot_seed(int writer, int owner, int kind)
{
    return it_seed((uint64_t)writer + 1, (uint64_t)owner + 1, (uint64_t)kind);
}

/* "<index> <peer addresses...>" later; first "<index>": the agent "m<index>". */
static int mesh_role(it_chan_t *ch, const char *arg)
{
    int me = atoi(arg), rc = 1;
    char name[16];
    snprintf(name, sizeof(name), "m%d", me);
    uint8_t *buf = it_alloc(SLOTS * SLOT);
    nixl_agent_t *agent = it_agent_be(name, "UCX", false, NULL);
    if (!buf || !agent || it_register(agent, buf, SLOTS * SLOT))
        goto out;
    it_fill(buf + OWN * SLOT, SLOT, slot_seed(me, me, 1));
    if (nixl_agent_send_local_md(agent, NULL) != NIXL_SUCCESS)
        goto out;
    it_sendf(ch, "ready %" PRIuPTR, (uintptr_t)buf);
    for (;;) {
        char *cmd = it_recv_str(ch, 120000);
        int peer;
        uintptr_t raddr;
        if (!cmd)
            goto out;
        char pname[16], why[160] = "ok";
        if (!strcmp(cmd, "quit")) {
            free(cmd);
            rc = 0;
            goto out;
        } else if (sscanf(cmd, "fetch %d", &peer) == 1) {
            snprintf(pname, sizeof(pname), "m%d", peer);
            nixl_status_t st = nixl_agent_fetch_remote_md(agent, pname, NULL);
            uint64_t end = it_now_ms() + 10000;
            while (st == NIXL_SUCCESS &&
                   (st = nixl_agent_get_fetch_status(agent, pname)) == NIXL_IN_PROG &&
                   it_now_ms() < end)
                it_sleep_ms(10), st = NIXL_SUCCESS;
            if (st != NIXL_SUCCESS)
                snprintf(why, sizeof(why), "fetch %s: %s", pname, nixl_last_error());
        } else if (sscanf(cmd, "xfer %d %" SCNuPTR, &peer, &raddr) == 2) {
            /* WRITE my outgoing slot to my inbox slot there; READ its own slot back. */
            snprintf(pname, sizeof(pname), "m%d", peer);
            it_fill(buf + OUT * SLOT, SLOT, slot_seed(me, peer, 0));
            nixl_desc_t l[2] = {{(uintptr_t)buf + OUT * SLOT, SLOT, 0},
                                {(uintptr_t)buf + IN * SLOT, SLOT, 0}};
            nixl_desc_t r[2] = {{raddr + (uintptr_t)me * SLOT, SLOT, 0},
                                {raddr + OWN * SLOT, SLOT, 0}};
            for (int op = 0; op < 2 && !strcmp(why, "ok"); op++) {
                nixl_xfer_req_t *req = NULL;
                nixl_status_t st = nixl_agent_create_xfer_req(
                    agent, op ? NIXL_READ : NIXL_WRITE, NIXL_DRAM_SEG, &l[op], 1, NIXL_DRAM_SEG,
                    &r[op], 1, pname, NULL, &req);
                if (st == NIXL_SUCCESS)
                    st = it_post_wait(agent, req, NULL, IT_TIMEOUT_MS);
                if (st != NIXL_SUCCESS)
                    snprintf(why, sizeof(why), "%s to %s: %s (%s)", op ? "READ" : "WRITE",
                             pname, nixl_status_str(st), nixl_last_error());
                if (req)
                    nixl_agent_release_xfer_req(agent, req);
            }
            if (!strcmp(why, "ok") && it_verify(buf + IN * SLOT, SLOT, slot_seed(peer, peer, 1)))
                snprintf(why, sizeof(why), "READ from %s: wrong bytes", pname);
        } else if (!strcmp(cmd, "verify")) {
            for (int k = 0; k < AGENTS; k++)
                if (k != me && it_verify(buf + (size_t)k * SLOT, SLOT, slot_seed(k, me, 0)))
                    snprintf(why, sizeof(why), "inbox of m%d: wrong bytes", k);
        } else if (!strcmp(cmd, "invalidate")) {
            if (nixl_agent_invalidate_local_md(agent, NULL) != NIXL_SUCCESS)
                snprintf(why, sizeof(why), "%s", nixl_last_error());
        } else if (sscanf(cmd, "forgot %d", &peer) == 1) {
            snprintf(pname, sizeof(pname), "m%d", peer);
            nixl_status_t st = NIXL_SUCCESS;
            for (uint64_t end = it_now_ms() + 5000; it_now_ms() < end; it_sleep_ms(20))
                if ((st = nixl_agent_check_remote_md(agent, pname, NIXL_DRAM_SEG, NULL, 0)) ==
                    NIXL_ERR_NOT_FOUND)
                    break;
            if (st != NIXL_ERR_NOT_FOUND)
                snprintf(why, sizeof(why), "%s still loaded", pname);
        } else {
            snprintf(why, sizeof(why), "unknown command");
        }
        it_sendf(ch, "%s", why);
        free(cmd);
    }
out:
    nixl_agent_destroy(agent);
    free(buf);
    return rc;
}

/* "<namespace> <device> <index>": re-execute as "mesh" inside the namespace. */
static int enter_role(it_chan_t *ch, const char *arg)
{
    char ns[32], dev[16], self[512], rd[16], wr[16], idx[16];
    if (sscanf(arg, "%31s %15s %15s", ns, dev, idx) != 3)
        return 2;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return 2;
    self[n] = 0;
    snprintf(rd, sizeof(rd), "%d", ch->rd);
    snprintf(wr, sizeof(wr), "%d", ch->wr);
    setenv("UCX_NET_DEVICES", dev, 1);
    setenv("UCX_TLS", "tcp", 1);
    execlp("ip", "ip", "netns", "exec", ns, self, "--it-peer", "mesh", rd, wr, idx,
           (char *)NULL);
    return 127;
}

/* ---- the scenario ---- */

static it_etcd_t srv;

static int mesh(const void *arg)
{
    (void)arg;
    it_peer_t p[AGENTS];
    uintptr_t addr[AGENTS];
    for (int i = 0; i < AGENTS; i++)
        p[i] = (it_peer_t){.pid = 0, .ch = {-1, -1}};
    char eps[96];
    snprintf(eps, sizeof(eps), "%s", srv.url);
    setenv("NIXL_ETCD_ENDPOINTS", eps, 1);
    setenv("NIXL_ETCD_NAMESPACE", "/it-mesh/", 1);
    for (int i = 0; i < AGENTS; i++) {
        char a[96];
        snprintf(a, sizeof(a), "%sa%d %sv%d %d", tag, i, tag, i, i);
        IT_CHECK(it_peer_spawn(&p[i], "enter", a) == 0, "spawn m%d", i);
        char *r = it_recv_str(&p[i].ch, 30000);
        IT_CHECK(r && !strncmp(r, "ready ", 6), "m%d: %s", i, r ? r : "(nothing)");
        addr[i] = (uintptr_t)strtoull(r + 6, NULL, 10);
        free(r);
    }
    for (int i = 0; i < AGENTS; i++)
        for (int j = 0; j < AGENTS; j++)
            IT_CHECK(i == j || it_cmd(&p[i].ch, "fetch %d", j) == 0, "m%d fetch m%d", i, j);
    for (int i = 0; i < AGENTS; i++)
        for (int j = 0; j < AGENTS; j++)
            IT_CHECK(i == j || it_cmd(&p[i].ch, "xfer %d %" PRIuPTR, j, addr[j]) == 0,
                     "m%d <-> m%d", i, j);
    for (int i = 0; i < AGENTS; i++)
        IT_CHECK(it_cmd(&p[i].ch, "verify") == 0, "m%d verify", i);
    IT_CHECK(it_cmd(&p[0].ch, "invalidate") == 0, "m0 invalidate");
    IT_CHECK(it_cmd(&p[1].ch, "forgot 0") == 0 && it_cmd(&p[2].ch, "forgot 0") == 0,
             "the others forget m0");
    int rc = 0;
    for (int i = 0; i < AGENTS; i++)
        rc |= it_peer_quit(&p[i]);
    return rc;
fail:
    for (int i = 0; i < AGENTS; i++)
        it_peer_cleanup(&p[i]);
    return -1;
}

int main(int argc, char **argv)
{
    static const it_role_t roles[] = {{"enter", enter_role}, {"mesh", mesh_role}};
    static const it_scenario_t scenarios[] = {{"mesh", mesh, NULL}};
    if (argc > 1 && !strcmp(argv[1], "--it-peer"))
        return it_main(argc, argv, roles, 2, scenarios, 1);
    if (geteuid() != 0 || !it_etcd_available() || sh("command -v ip >/dev/null") != 0) {
        fprintf(stderr, "SKIP: needs root, etcd and ip(8)\n");
        return 77;
    }
    int probe = it_backend_probe("UCX");
    if (probe)
        return probe;
    unsigned pid = (unsigned)getpid();
    snprintf(tag, sizeof(tag), "nx%u", pid % 100000);
    snprintf(subnet, sizeof(subnet), "10.216.%u", pid % 250 + 1);
    char down[512];
    teardown_script(down, sizeof(down));
    int janitor = janitor_start();
    if (net_up() != 0) {
        sh(down);
        fprintf(stderr, "SKIP: could not create network namespaces here\n");
        return 77;
    }
    snprintf(srv.host, sizeof(srv.host), "%s.254", subnet);
    snprintf(srv.netns, sizeof(srv.netns), "%sh", tag);
    int rc = 1;
    if (it_etcd_start(&srv) == 0)
        rc = it_main(argc, argv, roles, 2, scenarios, 1);
    it_etcd_destroy(&srv);
    sh(down);
    char check[256];
    snprintf(check, sizeof(check), "ip netns list | grep -q '^%s'", tag);
    if (sh(check) == 0) {
        fprintf(stderr, "namespaces %s* are still there\n", tag);
        rc = 1;
    }
    if (janitor >= 0)
        close(janitor);
    return rc;
}
