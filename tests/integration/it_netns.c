/*
 * it_netns.c - two agents in two network namespaces joined by a veth pair (needs root).
 *
 * The program (in its own namespace) creates namespaces nixlit<pid>t and nixlit<pid>i and a
 * veth pair nxt<pid> / nxi<pid> between them, 10.213.<x>.1/24 on the target's end and .2 on
 * the initiator's, links and lo up. The target and the initiator are peer processes that move
 * into their namespace first thing (setns, plus a private /sys like `ip netns exec`, so that
 * UCX sees the namespace's devices); the program relays the initiator's commands to the
 * target over the harness pipes. UCX runs over TCP on the veth only (UCX_NET_DEVICES).
 *
 *  veth   from the initiator's namespace the target's listener is not on 127.0.0.1 (the fetch
 *         fails with REMOTE_DISCONNECT); through 10.213.<x>.1 the initiator fetches the
 *         target's metadata and sends its own; WRITE and READ with notifications, 4 KiB x 64
 *         and 1 MiB x 4, each posted twice: the target checks WRITE bytes the moment it sees
 *         the notification, the initiator checks READ bytes; no other notification arrives.
 *
 * Namespaces and links are removed on every path: at the end (and the program checks they are
 * gone), at exit(), and, when the program dies otherwise (watchdog _exit, a signal, SIGKILL), by
 * a janitor process in its own session that waits for the program's death on a pipe.
 * Skips (77) when not root, when `ip netns add` fails, when the UCX plugin is missing, or when
 * IT_BACKEND names another backend than UCX or LIBFABRIC (SHM cannot reach a peer in another
 * network namespace; LIBFABRIC uses the tcp provider on the veth link there).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_util.h"
#include "peer.h"

#define MIB ((size_t)1 << 20)
#define AREA (4 * MIB)
#define IP_TIMEOUT_MS 10000
#define RELAY_TIMEOUT_MS 90000

/* [0]: the target's side, [1]: the initiator's. */
static struct net {
    char ns[2][32];
    char dev[2][16];
    char addr[2][32];
    bool done; /* removed already */
    int janitor_fd;
    pid_t janitor;
} net = {.janitor_fd = -1};

/* ------------------------------------------------------------------------------------------ */
/* ip(8)                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Run `ip` with the arguments (NULL-terminated), at most IP_TIMEOUT_MS. Its exit code, or -1.
 * `quiet` discards its output (for removals of what may not exist). */
static int run_ip(bool quiet, ...)
{
    char *argv[16] = {(char *)"ip"};
    va_list ap;
    va_start(ap, quiet);
    for (int i = 1; i < 15 && (argv[i] = va_arg(ap, char *)); i++) {
    }
    va_end(ap);
    argv[15] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(quiet ? null : 2, 1);
        if (quiet)
            dup2(null, 2);
        execvp("ip", argv);
        _exit(127);
    }
    uint64_t deadline = it_now_ms() + IP_TIMEOUT_MS;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (it_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        it_sleep_ms(2);
    }
}

static void net_names(void)
{
    unsigned pid = (unsigned)getpid(), x = pid % 250 + 1;
    snprintf(net.ns[0], sizeof(net.ns[0]), "nixlit%ut", pid);
    snprintf(net.ns[1], sizeof(net.ns[1]), "nixlit%ui", pid);
    snprintf(net.dev[0], sizeof(net.dev[0]), "nxt%u", pid);
    snprintf(net.dev[1], sizeof(net.dev[1]), "nxi%u", pid);
    snprintf(net.addr[0], sizeof(net.addr[0]), "10.213.%u.1", x);
    snprintf(net.addr[1], sizeof(net.addr[1]), "10.213.%u.2", x);
}

/* Remove both namespaces and the links (deleting a namespace deletes the veth end in it, and
 * with it the pair); whatever exists. */
static void net_remove(void)
{
    for (int i = 0; i < 2; i++)
        run_ip(true, "netns", "del", net.ns[i], NULL);
    for (int i = 0; i < 2; i++)
        run_ip(true, "link", "del", net.dev[i], NULL);
}

/* Whether anything of ours is left in this namespace. */
static bool net_leftovers(void)
{
    char path[64];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "/var/run/netns/%s", net.ns[i]);
        if (access(path, F_OK) == 0 || run_ip(true, "link", "show", net.dev[i], NULL) == 0) {
            it_fail(__FILE__, __LINE__, "%s or %s is still there after cleanup", net.ns[i],
                    net.dev[i]);
            return true;
        }
    }
    return false;
}

/* 0, 77 when namespaces cannot be created here (no privilege), -1 on another failure. */
static int net_setup(void)
{
    if (run_ip(true, "netns", "add", net.ns[0], NULL) != 0) {
        fprintf(stderr, "SKIP: `ip netns add` failed: no privilege to create namespaces here\n");
        return 77;
    }
    char cidr[2][40];
    for (int i = 0; i < 2; i++)
        snprintf(cidr[i], sizeof(cidr[i]), "%s/24", net.addr[i]);
    IT_CHECK(run_ip(false, "netns", "add", net.ns[1], NULL) == 0, "ip netns add %s", net.ns[1]);
    IT_CHECK(run_ip(false, "link", "add", net.dev[0], "type", "veth", "peer", "name", net.dev[1],
                    NULL) == 0,
             "ip link add %s type veth", net.dev[0]);
    for (int i = 0; i < 2; i++) {
        IT_CHECK(run_ip(false, "link", "set", net.dev[i], "netns", net.ns[i], NULL) == 0,
                 "moving %s to %s", net.dev[i], net.ns[i]);
        IT_CHECK(run_ip(false, "-n", net.ns[i], "addr", "add", cidr[i], "dev", net.dev[i],
                        NULL) == 0,
                 "address %s on %s", cidr[i], net.dev[i]);
        IT_CHECK(run_ip(false, "-n", net.ns[i], "link", "set", "lo", "up", NULL) == 0 &&
                     run_ip(false, "-n", net.ns[i], "link", "set", net.dev[i], "up", NULL) == 0,
                 "links up in %s", net.ns[i]);
    }
    it_log("namespaces %s (%s %s) and %s (%s %s)", net.ns[0], net.dev[0], net.addr[0], net.ns[1],
           net.dev[1], net.addr[1]);
    return 0;
fail:
    return -1;
}

/* The janitor: a child in its own session (a kill of the test's process group misses it)
 * that removes everything once the program is gone, however it went. */
static int start_janitor(void)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return it_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return it_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        setsid();
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        close(pfd[1]);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        char c;
        for (;;) {
            ssize_t r = read(pfd[0], &c, 1);
            if (r == 0 || (r < 0 && errno != EINTR))
                break;
        }
        net_remove();
        _exit(0);
    }
    close(pfd[0]);
    net.janitor_fd = pfd[1];
    net.janitor = pid;
    return 0;
}

/* Remove everything, check, and let the janitor go. 0, or -1 if something is left. */
static int net_finish(void)
{
    if (net.done)
        return 0;
    net.done = true;
    net_remove();
    int rc = net_leftovers() ? -1 : 0;
    if (net.janitor_fd >= 0) {
        close(net.janitor_fd); /* the janitor finds nothing left to remove and exits */
        net.janitor_fd = -1;
        uint64_t deadline = it_now_ms() + 2 * IP_TIMEOUT_MS;
        while (waitpid(net.janitor, NULL, WNOHANG) == 0 && it_now_ms() < deadline)
            it_sleep_ms(5);
    }
    return rc;
}

static void net_atexit(void)
{
    net_finish();
}

/* ------------------------------------------------------------------------------------------ */
/* Peers: first thing, move into a namespace                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Join namespace `ns` (before any thread exists) with a /sys of that namespace, as `ip netns
 * exec` does, and make UCX use `dev` only. 0 or -1 (reported). */
static int join_netns(const char *ns, const char *dev)
{
    char path[96];
    snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    IT_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    int rc = setns(fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    IT_CHECK(rc == 0, "setns %s: %s", path, strerror(e));
    IT_CHECK(unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS): %s", strerror(errno));
    IT_CHECK(mount("", "/", "none", MS_SLAVE | MS_REC, NULL) == 0, "mount --make-rslave /: %s",
             strerror(errno));
    struct statvfs sv;
    unsigned long flags = statvfs("/sys", &sv) == 0 && (sv.f_flag & ST_RDONLY) ? MS_RDONLY : 0;
    IT_CHECK(umount2("/sys", MNT_DETACH) == 0 || errno == EINVAL, "umount /sys: %s",
             strerror(errno));
    IT_CHECK(mount(ns, "/sys", "sysfs", flags, NULL) == 0, "mount sysfs: %s", strerror(errno));
    setenv("UCX_NET_DEVICES", dev, 1);
    setenv("NIXL_LIBFABRIC_DEVICES", dev, 1); /* the tcp provider's domain is the interface */
    return 0;
fail:
    return -1;
}

/* "<namespace> <device> <sctarget argument>" */
static int ns_target_role(it_chan_t *ch, const char *arg)
{
    char ns[32], dev[16];
    int skip = 0;
    if (sscanf(arg, "%31s %15s %n", ns, dev, &skip) != 2 || !skip) {
        it_fail(__FILE__, __LINE__, "nstarget: bad argument '%s'", arg);
        return 2;
    }
    if (join_netns(ns, dev) != 0)
        return 1;
    return it_sc_target_role(ch, arg + skip);
}

/* "<namespace> <device> <target address> <port> <area address> <area bytes>": the initiator.
 * Everything it sends over `ch` goes to the target (relayed), until "end". */
static int ns_init_role(it_chan_t *ch, const char *arg)
{
    static const struct {
        size_t count, size;
    } shapes[] = {{64, 4096}, {4, MIB}};
    char ns[32], dev[16], ip[32];
    int port;
    uint64_t base;
    size_t size;
    nixl_agent_t *agent = NULL;
    uint8_t *local = NULL;
    int rc = 1;
    if (sscanf(arg, "%31s %15s %31s %d %" SCNu64 " %zu", ns, dev, ip, &port, &base, &size) != 6) {
        it_fail(__FILE__, __LINE__, "nsinit: bad argument '%s'", arg);
        return 2;
    }
    if (join_netns(ns, dev) != 0)
        return 1;
    local = it_alloc(size);
    IT_CHECK(local, "memory");
    agent = it_agent_be("initiator", it_backend(), false, NULL);
    IT_CHECK(agent && it_register(agent, local, size) == 0, "agent");

    /* Another namespace: nothing of the target's on our loopback. */
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.ip_addr = "127.0.0.1";
    opt.port = port;
    IT_CHECK_ST(nixl_agent_fetch_remote_md(agent, "target", &opt), NIXL_SUCCESS);
    uint64_t deadline = it_now_ms() + IT_TIMEOUT_MS;
    nixl_status_t st;
    while ((st = nixl_agent_get_fetch_status(agent, "target")) == NIXL_IN_PROG &&
           it_now_ms() < deadline)
        it_sleep_ms(1);
    IT_CHECK(st == NIXL_ERR_REMOTE_DISCONNECT,
             "fetching from 127.0.0.1:%d in the initiator's namespace: %s (%s), expected "
             "NIXL_ERR_REMOTE_DISCONNECT",
             port, nixl_status_str(st), nixl_last_error());

    uint64_t t0 = it_now_ms();
    IT_CHECK(it_sc_connect(agent, ch, "target", ip, port, base, size, local, size) == 0,
             "metadata across the veth");
    it_log("metadata exchanged across the veth in %llu ms",
           (unsigned long long)(it_now_ms() - t0));
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "%zux%zu", shapes[s].count, shapes[s].size);
        IT_CHECK(shapes[s].count * shapes[s].size <= size, "shape %s too large", tag);
        t0 = it_now_ms();
        IT_CHECK(it_sc_write_read(agent, ch, "target", local, base, shapes[s].count,
                                  shapes[s].size, shapes[s].size, tag, 2) == 0,
                 "shape %s", tag);
        it_log("veth: %s WRITE+READ x2 in %llu ms", tag, (unsigned long long)(it_now_ms() - t0));
    }
    IT_CHECK(it_sc_expect_no_notifs(ch) == 0, "stray notifications");
    rc = 0;
fail:
    it_sendf(ch, "end");
    nixl_agent_destroy(agent);
    free(local);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The scenario: start both, relay, check                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Pass messages initiator -> target and target -> initiator until the initiator says "end".
 * 0 or -1 (reported). */
static int relay(it_peer_t *init, it_peer_t *tgt)
{
    uint64_t deadline = it_now_ms() + RELAY_TIMEOUT_MS;
    for (;;) {
        uint64_t now = it_now_ms();
        IT_CHECK(now < deadline, "the initiator did not finish within %d ms", RELAY_TIMEOUT_MS);
        struct pollfd pfd[2] = {{.fd = init->ch.rd, .events = POLLIN},
                                {.fd = tgt->ch.rd, .events = POLLIN}};
        int n = poll(pfd, 2, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        IT_CHECK(n >= 0, "poll: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (!pfd[i].revents)
                continue;
            it_peer_t *from = i ? tgt : init, *to = i ? init : tgt;
            void *m;
            size_t len;
            IT_CHECK(it_recv(&from->ch, &m, &len, IT_TIMEOUT_MS, true) == 0, "the %s went away",
                     from->role);
            if (!i && strcmp(m, "end") == 0) {
                free(m);
                return 0;
            }
            int rc = it_send(&to->ch, m, len);
            free(m);
            IT_CHECK(rc == 0, "the %s went away", to->role);
        }
    }
fail:
    return -1;
}

static int sc_veth(const void *arg)
{
    (void)arg;
    setenv("UCX_TLS", "tcp", 1);
    it_peer_t tgt = {.pid = 0, .ch = {-1, -1}}, init = {.pid = 0, .ch = {-1, -1}};
    char targ[256], iarg[256];
    int port;
    uint64_t base;
    snprintf(targ, sizeof(targ), "%s %s target %zu 1 %zu %zu", net.ns[0], net.dev[0], AREA, AREA,
             AREA);
    IT_CHECK(it_sc_target_start(&tgt, "nstarget", targ, &port, &base) == 0, "target");
    snprintf(iarg, sizeof(iarg), "%s %s %s %d %" PRIu64 " %zu", net.ns[1], net.dev[1],
             net.addr[0], port, base, AREA);
    IT_CHECK(it_peer_spawn(&init, "nsinit", iarg) == 0, "initiator");
    IT_CHECK(relay(&init, &tgt) == 0, "relay");
    IT_CHECK(it_peer_wait(&init, IT_TIMEOUT_MS) == 0, "the initiator failed");
    IT_CHECK(it_peer_quit(&tgt) == 0, "target quit");
    return 0;
fail:
    it_peer_cleanup(&init);
    it_peer_cleanup(&tgt);
    return -1;
}

static const it_role_t roles[] = {{"nstarget", ns_target_role}, {"nsinit", ns_init_role}};
static const it_scenario_t scenarios[] = {{"veth", sc_veth, NULL}};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--it-peer") == 0)
        return it_main(argc, argv, roles, sizeof(roles) / sizeof(roles[0]), scenarios,
                       sizeof(scenarios) / sizeof(scenarios[0]));
    if (strcmp(it_backend(), "UCX") != 0 && strcmp(it_backend(), "LIBFABRIC") != 0) {
        /* SHM refuses a peer in another network namespace ("no common backend"). */
        fprintf(stderr, "SKIP: IT_BACKEND=%s: only UCX and LIBFABRIC cross network namespaces\n",
                it_backend());
        return 77;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: creating network namespaces needs root\n");
        return 77;
    }
    /* The janitor first: the probe may leave library threads behind, and it forks. */
    net_names();
    if (start_janitor() != 0)
        return 1;
    atexit(net_atexit);
    int rc = it_backend_probe(it_backend());
    if (rc != 0)
        return rc;
    rc = net_setup();
    if (rc != 0) {
        net_finish();
        return rc == 77 ? 77 : 1;
    }
    rc = it_main(argc, argv, roles, sizeof(roles) / sizeof(roles[0]), scenarios,
                 sizeof(scenarios) / sizeof(scenarios[0]));
    if (net_finish() != 0)
        rc = 1;
    return rc;
}
