/*
 * sec_listener.c - attacks on the metadata side channel's listener, each against a real agent
 * on loopback, each asserting that an honest peer is still served within a bound (and, where
 * the attack is about memory, that the process's resident memory stays bounded).
 *
 *   sec_listener idle-flood      connections that stay open, past the connection cap
 *   sec_listener slowloris       a message trickled at 256 bytes/s; an idle connection
 *   sec_listener send-flood      SEND after SEND, the answers never read
 *   sec_listener fd-exhaustion   accept() failing with EMFILE (a child with RLIMIT_NOFILE low)
 *   sec_listener stopped-loads   LOADs naming stopped processes (SHM), against an honest LOAD
 *   sec_listener peer-bound      LOADs under fresh names, past NIXL_SIDECHANNEL_MAX_PEERS
 *
 * Limits are set small through the environment (documented options) so that each attack
 * ends in seconds.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "sec_util.h"

/* An honest peer is served within this, whatever the attack does meanwhile. */
#define HONEST_MS 2000u

static void expect_honest(nixl_agent_t *target, int port, const char *name)
{
    uint64_t took = 0;
    SEC_CHECK(sec_honest_served(target, port, name, HONEST_MS, &took),
              "honest peer '%s' not served within %u ms", name, HONEST_MS);
    printf("honest peer '%s' served in %llu ms\n", name, (unsigned long long)took);
}

/* ---- at the connection cap, idle connections make room ---- */

#define CAP 32

static int idle_flood(void)
{
    setenv("NIXL_SIDECHANNEL_MAX_CONNS", "32", 1);
    int port;
    nixl_agent_t *a = sec_listener("target", &port);
    uint64_t rss0 = sec_rss_kb();
    int fds[CAP * 4];
    for (int i = 0; i < CAP * 4; i++) {
        fds[i] = sec_connect(port);
        SEC_CHECK(fds[i] >= 0, "connect %d: %s", i, strerror(errno));
        if (i == CAP - 1)
            sec_sleep_ms(200); /* the cap is reached and served */
    }
    sec_sleep_ms(200);
    expect_honest(a, port, "honest-1");
    /* the attacker reconnects what was closed: still no lock-out */
    for (int i = 0; i < CAP * 4; i++) {
        close(fds[i]);
        fds[i] = sec_connect(port);
    }
    expect_honest(a, port, "honest-2");
    uint64_t rss1 = sec_rss_kb();
    printf("RSS %llu -> %llu KiB\n", (unsigned long long)rss0, (unsigned long long)rss1);
    SEC_CHECK(rss1 < rss0 + 32 * 1024, "RSS grew by %llu KiB",
              (unsigned long long)(rss1 - rss0));
    for (int i = 0; i < CAP * 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    nixl_agent_destroy(a);
    return 0;
}

/* ---- a trickled message, and a connection that says nothing ---- */

static int slowloris(void)
{
    setenv("NIXL_SIDECHANNEL_STALL_TIMEOUT_MS", "1000", 1);
    setenv("NIXL_SIDECHANNEL_IDLE_TIMEOUT_MS", "1000", 1);
    int port;
    nixl_agent_t *a = sec_listener("target", &port);
    int slow = sec_connect(port), idle = sec_connect(port);
    SEC_CHECK(slow >= 0 && idle >= 0, "connect: %s", strerror(errno));
    uint64_t announced = 1 << 20, t0 = sec_now_ms();
    SEC_CHECK(send(slow, &announced, 8, MSG_NOSIGNAL) == 8, "send");
    /* 32 bytes every 125 ms: 256 bytes/s, each byte restarting a plain stall timer */
    char junk[32];
    memset(junk, 'x', sizeof(junk));
    bool dropped = false;
    while (sec_now_ms() - t0 < 6000) {
        if (send(slow, junk, sizeof(junk), MSG_NOSIGNAL) < 0 ||
            sec_closed_within(slow, 125)) {
            dropped = true;
            break;
        }
    }
    uint64_t held = sec_now_ms() - t0;
    SEC_CHECK(dropped, "a 256 B/s slowloris kept its connection for %llu ms",
              (unsigned long long)held);
    printf("slowloris dropped after %llu ms\n", (unsigned long long)held);
    SEC_CHECK(held < 3000, "slowloris held a connection for %llu ms", (unsigned long long)held);
    SEC_CHECK(sec_closed_within(idle, 2000), "an idle connection was kept past its timeout");
    expect_honest(a, port, "honest");
    close(slow);
    close(idle);
    nixl_agent_destroy(a);
    return 0;
}

/* ---- SEND after SEND, never reading ---- */

#define REGIONS 4096

static int send_flood(void)
{
    setenv("NIXL_SIDECHANNEL_MAX_QUEUED", "8388608", 1); /* 8 MiB */
    int port;
    nixl_agent_t *a = sec_listener("target", &port);
    /* A large agent: every answer to SEND is its whole metadata. */
    uint8_t *mem = aligned_alloc(4096, (size_t)REGIONS * 4096);
    SEC_CHECK(mem, "no memory");
    memset(mem, 0, (size_t)REGIONS * 4096);
    nixl_reg_desc_t *d = calloc(REGIONS, sizeof(*d));
    for (size_t i = 0; i < REGIONS; i++)
        d[i] = (nixl_reg_desc_t){.addr = (uintptr_t)(mem + i * 4096), .len = 4096};
    SEC_ST(nixl_agent_register_mem(a, NIXL_DRAM_SEG, d, REGIONS, NULL));
    void *blob;
    size_t md_len;
    SEC_ST(nixl_agent_get_local_md(a, &blob, &md_len));
    nixl_free(blob);
    uint64_t rss0 = sec_rss_kb();

    int fd = sec_connect(port);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* 64 SENDs per frame; without a bound, 20,000 of them ask for 20,000 x md_len bytes */
    uint8_t frame[64 * 13];
    for (int i = 0; i < 64; i++)
        memcpy(frame + i * 13, "NIXLCOMM:SEND", 13);
    uint64_t hdr = sizeof(frame), t0 = sec_now_ms();
    int sent = 0;
    bool dropped = false;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    while (sec_now_ms() - t0 < 10000) {
        if (send(fd, &hdr, 8, MSG_NOSIGNAL) < 0 || send(fd, frame, sizeof(frame), MSG_NOSIGNAL) < 0) {
            if (errno == EAGAIN) {
                sec_sleep_ms(5);
                continue;
            }
            dropped = true; /* reset or broken pipe: the agent closed us */
            break;
        }
        sent += 64;
        if (sent % 1024 == 0)
            sec_sleep_ms(1);
    }
    uint64_t rss1 = sec_rss_kb();
    printf("metadata %zu bytes; %d SENDs asked for %llu MiB; dropped %s after %llu ms; RSS %llu "
           "-> %llu KiB\n", md_len, sent, (unsigned long long)((uint64_t)sent * md_len >> 20),
           dropped ? "yes" : "no", (unsigned long long)(sec_now_ms() - t0),
           (unsigned long long)rss0, (unsigned long long)rss1);
    SEC_CHECK(dropped, "a client that never reads was not dropped");
    SEC_CHECK(rss1 < rss0 + 64 * 1024, "RSS grew by %llu KiB", (unsigned long long)(rss1 - rss0));
    expect_honest(a, port, "honest");
    close(fd);
    nixl_agent_destroy(a);
    free(d);
    free(mem);
    return 0;
}

/* ---- accept() out of descriptors ---- */

/* The child: an agent whose process runs out of descriptors while clients queue up. */
static int fd_child(int to_parent, int from_parent, int errfd)
{
    dup2(errfd, STDERR_FILENO); /* the parent counts our log lines */
    struct rlimit rl = {64, 64};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 10;
    int port;
    nixl_agent_t *a = sec_listener("target", &port);
    if (write(to_parent, &port, sizeof(port)) != sizeof(port))
        return 11;
    int filler[128], nfill = 0;
    while (nfill < 128 && (filler[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        nfill++;
    char c;
    if (write(to_parent, "F", 1) != 1 || read(from_parent, &c, 1) != 1) /* clients queued */
        return 12;
    uint64_t cpu0 = sec_cpu_ms();
    sec_sleep_ms(1500);
    uint64_t cpu = sec_cpu_ms() - cpu0;
    fprintf(stdout, "CPU while out of descriptors: %llu ms in 1500 ms\n", (unsigned long long)cpu);
    fflush(stdout);
    if (cpu > 300)
        return 13; /* a busy loop */
    for (int i = 0; i < nfill; i++)
        close(filler[i]);
    if (write(to_parent, "R", 1) != 1)
        return 14;
    int rc = sec_wait_loaded(a, "honest", 4000) ? 0 : 15;
    nixl_agent_destroy(a);
    return rc;
}

static int fd_exhaustion(void)
{
    int up[2], down[2];
    SEC_CHECK(pipe(up) == 0 && pipe(down) == 0, "pipe");
    FILE *log = tmpfile();
    SEC_CHECK(log, "tmpfile");
    pid_t pid = sec_fork();
    SEC_CHECK(pid >= 0, "fork");
    if (pid == 0)
        _exit(fd_child(up[1], down[0], fileno(log)));
    int port;
    char c;
    SEC_CHECK(read(up[0], &port, sizeof(port)) == sizeof(port), "child did not start");
    SEC_CHECK(read(up[0], &c, 1) == 1 && c == 'F', "child did not fill its descriptors");
    int fds[40];
    for (int i = 0; i < 40; i++)
        fds[i] = sec_connect(port); /* complete in the backlog; accept() fails */
    SEC_CHECK(write(down[1], "C", 1) == 1, "pipe");
    SEC_CHECK(read(up[0], &c, 1) == 1 && c == 'R', "the child failed while out of descriptors");
    /* the honest peer, once descriptors are back */
    nixl_agent_t *h = sec_agent("honest");
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.ip_addr = "127.0.0.1";
    opt.port = port;
    SEC_ST(nixl_agent_send_local_md(h, &opt));
    int st;
    SEC_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    nixl_agent_destroy(h);
    for (int i = 0; i < 40; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    fflush(log);
    rewind(log);
    char line[1024];
    int lines = 0;
    while (fgets(line, sizeof(line), log))
        lines++;
    printf("child exit %d, %d log lines\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1, lines);
    SEC_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (exit %d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    SEC_CHECK(lines <= 10, "%d log lines while out of descriptors", lines);
    return 0;
}

/* ---- LOADs naming stopped processes ---- */

#define STOPPED 8

static int stopped_loads(void)
{
    int p[2];
    SEC_CHECK(pipe(p) == 0, "pipe");
    pid_t pid = sec_fork();
    SEC_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        close(p[0]);
        nixl_agent_t *a[STOPPED];
        for (int i = 0; i < STOPPED; i++) {
            char name[32];
            snprintf(name, sizeof(name), "stopped-%d", i);
            a[i] = sec_agent(name);
            void *blob;
            size_t len;
            SEC_ST(nixl_agent_get_local_md(a[i], &blob, &len));
            if (!sec_write_msg(p[1], blob, len))
                _exit(2);
            nixl_free(blob);
        }
        raise(SIGSTOP);
        _exit(0);
    }
    close(p[1]);
    void *md[STOPPED];
    size_t md_len[STOPPED];
    for (int i = 0; i < STOPPED; i++)
        SEC_CHECK((md[i] = sec_read_msg(p[0], &md_len[i])) != NULL, "child metadata %d", i);
    int st;
    SEC_CHECK(waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st), "child did not stop");

    int port;
    nixl_agent_t *a = sec_listener("target", &port);
    int fd = sec_connect(port);
    uint64_t t0 = sec_now_ms();
    for (int i = 0; i < STOPPED; i++)
        SEC_CHECK(sec_send_frame(fd, "LOAD", md[i], md_len[i]), "send");
    /* meanwhile, a control call of the application and an honest peer */
    uint8_t buf[4096];
    nixl_reg_desc_t d = {.addr = (uintptr_t)buf, .len = sizeof(buf)};
    uint64_t r0 = sec_now_ms();
    SEC_ST(nixl_agent_register_mem(a, NIXL_DRAM_SEG, &d, 1, NULL));
    uint64_t reg_ms = sec_now_ms() - r0;
    uint64_t took;
    SEC_CHECK(sec_honest_served(a, port, "honest", HONEST_MS, &took), "honest peer not served");
    for (int i = 0; i < STOPPED; i++) {
        char name[32];
        snprintf(name, sizeof(name), "stopped-%d", i);
        SEC_CHECK(sec_wait_loaded(a, name, HONEST_MS), "'%s' not loaded", name);
    }
    uint64_t all = sec_now_ms() - t0;
    printf("%d LOADs of stopped processes + honest LOAD: %llu ms (honest %llu ms); a "
           "registration meanwhile took %llu ms\n", STOPPED, (unsigned long long)all,
           (unsigned long long)took, (unsigned long long)reg_ms);
    /* with a 100 ms wait per stopped peer this would be 800 ms and more */
    SEC_CHECK(all < 400, "the loads took %llu ms", (unsigned long long)all);
    SEC_CHECK(reg_ms < 100, "a registration waited %llu ms", (unsigned long long)reg_ms);
    close(fd);
    nixl_agent_destroy(a);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < STOPPED; i++)
        free(md[i]);
    return 0;
}

/* ---- LOADs under fresh names ---- */

static int peer_bound(void)
{
    setenv("NIXL_SIDECHANNEL_MAX_PEERS", "16", 1);
    int port;
    nixl_agent_t *a = sec_listener("target", &port);
    int fd = sec_connect(port);
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof(name), "fresh-%d", i);
        nixl_agent_t *f = sec_agent(name);
        void *blob;
        size_t len;
        SEC_ST(nixl_agent_get_local_md(f, &blob, &len));
        SEC_CHECK(sec_send_frame(fd, "LOAD", blob, len), "send");
        nixl_free(blob);
        nixl_agent_destroy(f);
    }
    SEC_CHECK(sec_wait_loaded(a, "fresh-15", HONEST_MS), "the first 16 peers were not loaded");
    sec_sleep_ms(200);
    SEC_CHECK(!sec_wait_loaded(a, "fresh-16", 1), "a 17th peer was loaded past the bound");
    SEC_CHECK(!sec_wait_loaded(a, "fresh-39", 1), "a 40th peer was loaded past the bound");
    /* an application that invalidates a peer makes room again */
    SEC_ST(nixl_agent_invalidate_remote_md(a, "fresh-0"));
    expect_honest(a, port, "honest");
    close(fd);
    nixl_agent_destroy(a);
    return 0;
}

int main(int argc, char **argv)
{
    static const sec_case_t cases[] = {
        {"idle-flood", idle_flood},       {"slowloris", slowloris},
        {"send-flood", send_flood},       {"fd-exhaustion", fd_exhaustion},
        {"stopped-loads", stopped_loads}, {"peer-bound", peer_bound},
    };
    return sec_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
