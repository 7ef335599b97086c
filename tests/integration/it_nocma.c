/*
 * it_nocma.c - SHM between processes that may not use cross-memory attach: the staging-ring
 * path (plugins/shm/shm_xchan.c), chosen automatically.
 *
 *  seccomp-target/..  the target installs a seccomp filter that refuses process_vm_readv/writev
 *                     (EPERM, as Docker's default profile does without CAP_SYS_PTRACE) before it
 *                     creates its agent; its connection info says so, and this (unfiltered)
 *                     initiator must go through a staging ring: WRITE and READ of 4 KiB to
 *                     64 MiB in 1 to 1024 descriptors, with notifications, every byte checked,
 *                     synchronous and asynchronous posts. Both processes must map the ring.
 *  seccomp-initiator  the filtered process is the initiator (a peer role): its own
 *                     process_vm_* calls fail, so it stages towards an unfiltered target.
 *                     "-late": the filter comes after its engine was created, so the engine
 *                     believes in cross-memory attach and its first transfer's EPERM is the
 *                     probe that switches the peer to staging (and redoes that transfer).
 *  pidns/..          (it-nocma-pidns; root, else exit 77) the target runs in a new pid
 *                     namespace (unshare(CLONE_NEWPID)) sharing our network and IPC ones: its
 *                     pid means nothing here, so the staging ring is the only way.
 *  kill/..           the target is stopped (SIGSTOP) while a 64 MiB asynchronous transfer is in
 *                     flight, then killed: the transfer must end with an error, promptly.
 *  cma-control        an unfiltered target in our namespace: no staging ring is created (the
 *                     detection is not "always on").
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_util.h"
#include "peer.h"

#define TBUF ((size_t)68 << 20) /* the target's buffer: the largest row plus slack */

typedef struct row {
    size_t size, count;
} row_t;

/* 4 KiB .. 64 MiB, 1 .. 1024 descriptors; one size that is no multiple of anything. */
static const row_t rows[] = {
    {4096, 1}, {4096, 1024}, {65536, 64}, {1000003, 3}, {16384, 1024}, {(size_t)64 << 20, 1},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* ---- seccomp ---- */

#if defined(__x86_64__)
#define IT_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define IT_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* Refuse process_vm_readv/writev with EPERM from now on, in this process and its children. */
static int deny_cma(void)
{
#ifdef IT_AUDIT_ARCH
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IT_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_writev, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return it_fail(__FILE__, __LINE__, "installing the seccomp filter: %s", strerror(errno));
    /* The filter must bite, or the test proves nothing. */
    char a[8] = "abcdefg", b[8];
    struct iovec l = {b, sizeof(b)}, r = {a, sizeof(a)};
    errno = 0;
    if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != -1 || errno != EPERM)
        return it_fail(__FILE__, __LINE__, "process_vm_readv still works under the filter");
    return 0;
#else
    return it_fail(__FILE__, __LINE__, "no seccomp architecture constant for this machine");
#endif
}

/* ---- roles ---- */

static int target_seccomp_role(it_chan_t *ch, const char *arg)
{
    if (deny_cma() != 0)
        return 1;
    return it_target_role(ch, arg);
}

/* The target in a new pid namespace: this process unshares, its child is pid 1 there. */
static int target_pidns_role(it_chan_t *ch, const char *arg)
{
    if (unshare(CLONE_NEWPID) != 0)
        return it_fail(__FILE__, __LINE__, "unshare(CLONE_NEWPID): %s", strerror(errno)), 1;
    pid_t pid = fork();
    if (pid < 0)
        return it_fail(__FILE__, __LINE__, "fork: %s", strerror(errno)), 1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getpid() != 1)
            _exit(3);
        _exit(it_target_role(ch, arg));
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    /* our children now start in a pid namespace whose init has ended: LeakSanitizer's exit
     * check cannot start its tracer here (peer.c) */
    setenv("IT_SKIP_EXIT_LEAK_CHECK", "1", 1);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static uint64_t row_seed(size_t row, int op, size_t i)
{
    return it_seed(row, (uint64_t)op, i);
}

/* The filtered initiator: loads the target's metadata (one message), then for "run <addr>"
 * writes every row with the notification "sc" and reads it back into a second buffer. */
static int sc_initiator_role(it_chan_t *ch, const char *arg)
{
    /* "late": the filter comes after the engine was created, which therefore believes in
     * cross-memory attach: the first transfer's EPERM is the probe that switches to staging. */
    bool late = strcmp(arg, "late") == 0;
    if (!late && deny_cma() != 0)
        return 1;
    size_t big = rows[NROWS - 1].size;
    uint8_t *a = it_alloc(big), *b = it_alloc(big);
    nixl_agent_t *agent = a && b ? it_agent("scinit", 0) : NULL;
    if (late && agent && deny_cma() != 0) {
        nixl_agent_destroy(agent);
        return 1;
    }
    nixl_desc_t *l = calloc(1024, sizeof(*l)), *rm = calloc(1024, sizeof(*rm));
    nixl_xfer_req_t *req = NULL;
    char *cmd = NULL;
    int rc = 1;
    IT_CHECK(agent && l && rm, "setup");
    IT_CHECK(it_register(agent, a, big) == 0 && it_register(agent, b, big) == 0, "register");
    IT_CHECK(it_recv_load_md(ch, agent, "target") == 0, "target metadata");
    cmd = it_recv_str(ch, IT_TIMEOUT_MS);
    uint64_t taddr;
    IT_CHECK(cmd && sscanf(cmd, "run %" SCNu64, &taddr) == 1, "expected run <addr>");
    for (size_t k = 0; k < NROWS; k++) {
        const row_t *w = &rows[k];
        for (int op = 0; op < 2; op++) {
            uint8_t *base = op == 0 ? a : b;
            for (size_t i = 0; i < w->count; i++) {
                l[i] = (nixl_desc_t){(uintptr_t)base + i * w->size, w->size, 0};
                rm[i] = (nixl_desc_t){taddr + (w->count - 1 - i) * w->size, w->size, 0};
            }
            if (op == 0)
                for (size_t i = 0; i < w->count; i++)
                    it_fill((void *)l[i].addr, w->size, row_seed(k, 7, i));
            else
                memset(b, 0, w->size * w->count);
            nixl_xfer_op_t xop = op == 0 ? NIXL_WRITE : NIXL_READ;
            IT_CHECK_ST(nixl_agent_create_xfer_req(agent, xop, NIXL_DRAM_SEG, l, w->count,
                                                   NIXL_DRAM_SEG, rm, w->count, "target", NULL,
                                                   &req),
                        NIXL_SUCCESS);
            nixl_opt_args_t opt;
            it_notif_opt(&opt, "sc", 2);
            nixl_status_t st = it_post_wait(agent, req, op == 0 ? &opt : NULL, IT_TIMEOUT_MS);
            IT_CHECK(st == NIXL_SUCCESS, "row %zu %s: %s (%s)", k, nixl_op_str(xop),
                     nixl_status_str(st), nixl_last_error());
            IT_CHECK_ST(nixl_agent_release_xfer_req(agent, req), NIXL_SUCCESS);
            req = NULL;
        }
        for (size_t i = 0; i < w->count; i++) {
            size_t bad = it_verify(b + i * w->size, w->size, row_seed(k, 7, i));
            IT_CHECK(!bad, "row %zu: read back descriptor %zu, byte %zu differs", k, i, bad - 1);
        }
    }
    IT_CHECK(it_maps_staging_ring(), "no staging ring is mapped in the filtered initiator");
    it_sendf(ch, "ok");
    free(cmd);
    cmd = it_recv_str(ch, IT_TIMEOUT_MS); /* quit */
    rc = 0;
fail:
    if (rc)
        it_sendf(ch, "failed");
    if (req)
        nixl_agent_release_xfer_req(agent, req);
    free(cmd);
    nixl_agent_destroy(agent);
    free(l);
    free(rm);
    free(a);
    free(b);
    return rc;
}

/* ---- the initiator's side ---- */

typedef struct scen {
    const char *role;
    bool async;
    bool expect_staged;
} scen_t;

/* One row, one direction, against a started target; every byte checked on the other side. */
static int run_row(nixl_agent_t *agent, it_peer_t *t, uint8_t *buf, uint64_t taddr, size_t k,
                   nixl_xfer_op_t op, bool async)
{
    const row_t *w = &rows[k];
    nixl_desc_t *l = calloc(w->count, sizeof(*l)), *rm = calloc(w->count, sizeof(*rm));
    nixl_xfer_req_t *req = NULL;
    int rc = -1;
    IT_CHECK(l && rm, "out of memory");
    for (size_t i = 0; i < w->count; i++) {
        l[i] = (nixl_desc_t){(uintptr_t)buf + i * w->size, w->size, 0};
        rm[i] = (nixl_desc_t){taddr + (w->count - 1 - i) * w->size, w->size, 0};
    }
    if (op == NIXL_WRITE) {
        for (size_t i = 0; i < w->count; i++)
            it_fill((void *)l[i].addr, w->size, row_seed(k, op, i));
    } else {
        memset(buf, 0, w->size * w->count);
        /* one fill command for the whole run: descriptor i sits at slot count-1-i */
        for (size_t i = 0; i < w->count; i++)
            IT_CHECK(it_cmd(&t->ch, "fill %zu %zu %" PRIu64, (w->count - 1 - i) * w->size,
                            w->size, row_seed(k, op, i)) == 0,
                     "target fill");
    }
    IT_CHECK_ST(nixl_agent_create_xfer_req(agent, op, NIXL_DRAM_SEG, l, w->count, NIXL_DRAM_SEG,
                                           rm, w->count, "target", NULL, &req),
                NIXL_SUCCESS);
    char notif[64];
    int n = snprintf(notif, sizeof(notif), "%s-%zu", nixl_op_str(op), k);
    nixl_opt_args_t opt;
    it_notif_opt(&opt, notif, (size_t)n);
    nixl_status_t st = nixl_agent_post_xfer_req(agent, req, &opt);
    IT_CHECK(st == (async ? NIXL_IN_PROG : NIXL_SUCCESS), "row %zu %s: post returned %s (%s)", k,
             nixl_op_str(op), nixl_status_str(st), nixl_last_error());
    st = it_wait_xfer(agent, req, IT_TIMEOUT_MS);
    IT_CHECK(st == NIXL_SUCCESS, "row %zu %s: %s (%s)", k, nixl_op_str(op), nixl_status_str(st),
             nixl_last_error());
    IT_CHECK(it_cmd(&t->ch, "notifs 1 initiator %s", notif) == 0, "notification %s", notif);
    if (op == NIXL_WRITE) {
        for (size_t i = 0; i < w->count; i++)
            IT_CHECK(it_cmd(&t->ch, "verify %zu %zu %" PRIu64, (w->count - 1 - i) * w->size,
                            w->size, row_seed(k, op, i)) == 0,
                     "row %zu WRITE: target descriptor %zu", k, i);
    } else {
        for (size_t i = 0; i < w->count; i++) {
            size_t bad = it_verify(buf + i * w->size, w->size, row_seed(k, op, i));
            IT_CHECK(!bad, "row %zu READ: descriptor %zu, byte %zu differs", k, i, bad - 1);
        }
    }
    rc = 0;
fail:
    if (req)
        nixl_agent_release_xfer_req(agent, req);
    free(l);
    free(rm);
    return rc;
}

static int run_matrix(const void *arg)
{
    const scen_t *s = arg;
    it_peer_t t = {.ch = {-1, -1}};
    uint8_t *buf = it_alloc(TBUF);
    nixl_agent_t *agent = buf ? it_agent("initiator", s->async ? 1 : 0) : NULL;
    uint64_t taddr;
    IT_CHECK(agent && it_register(agent, buf, TBUF) == 0, "initiator agent");
    IT_CHECK(it_target_start_role(&t, s->role, "target", TBUF, agent, &taddr) == 0, "target");
    for (size_t k = 0; k < NROWS; k++) {
        if (s->async && rows[k].size * rows[k].count > ((size_t)16 << 20))
            continue; /* the largest row once is enough (synchronous scenario) */
        IT_CHECK(run_row(agent, &t, buf, taddr, k, NIXL_WRITE, s->async) == 0, "WRITE row %zu", k);
        IT_CHECK(run_row(agent, &t, buf, taddr, k, NIXL_READ, s->async) == 0, "READ row %zu", k);
    }
    if (s->expect_staged) {
        IT_CHECK(it_maps_staging_ring(), "the initiator maps no staging ring");
        IT_CHECK(it_cmd(&t.ch, "staged") == 0, "the target maps no staging ring");
    } else {
        IT_CHECK(!it_maps_staging_ring(), "a staging ring was made where CMA works");
    }
    IT_CHECK(it_peer_quit(&t) == 0, "target quit");
    nixl_agent_destroy(agent);
    free(buf);
    return 0;
fail:
    it_peer_cleanup(&t);
    nixl_agent_destroy(agent);
    free(buf);
    return -1;
}

static int run_sc_initiator(const void *arg)
{
    const char *how = arg;
    it_peer_t t = {.ch = {-1, -1}}, sc = {.ch = {-1, -1}};
    uint64_t taddr;
    void *md = NULL;
    size_t len;
    IT_CHECK(it_target_start(&t, "target", TBUF, NULL, &taddr) == 0, "target");
    IT_CHECK(it_peer_spawn(&sc, "sc-initiator", how) == 0, "filtered initiator");
    IT_CHECK(it_send(&t.ch, "md", 2) == 0 && it_recv(&t.ch, &md, &len, IT_TIMEOUT_MS, false) == 0,
             "target metadata");
    IT_CHECK(it_send(&sc.ch, md, len) == 0, "forward metadata");
    IT_CHECK(it_cmd(&sc.ch, "run %" PRIu64, taddr) == 0, "the filtered initiator's transfers");
    IT_CHECK(it_cmd(&t.ch, "notifs %zu scinit sc", NROWS) == 0, "notifications");
    IT_CHECK(it_cmd(&t.ch, "staged") == 0, "the target maps no staging ring");
    IT_CHECK(it_peer_quit(&sc) == 0, "filtered initiator quit");
    IT_CHECK(it_peer_quit(&t) == 0, "target quit");
    free(md);
    return 0;
fail:
    free(md);
    it_peer_cleanup(&sc);
    it_peer_cleanup(&t);
    return -1;
}

/* A transfer in flight when the target stops, then dies: an error, promptly; later posts too. */
static int run_kill(const void *arg)
{
    nixl_xfer_op_t op = *(const nixl_xfer_op_t *)arg;
    it_peer_t t = {.ch = {-1, -1}};
    size_t big = (size_t)64 << 20;
    uint8_t *buf = it_alloc(TBUF);
    nixl_agent_t *agent = buf ? it_agent("initiator", 1) : NULL;
    nixl_xfer_req_t *req = NULL;
    uint64_t taddr;
    IT_CHECK(agent && it_register(agent, buf, TBUF) == 0, "initiator agent");
    IT_CHECK(it_target_start_role(&t, "target-seccomp", "target", TBUF, agent, &taddr) == 0,
             "target");
    nixl_desc_t l = {(uintptr_t)buf, big, 0}, rm = {taddr, big, 0};
    IT_CHECK_ST(nixl_agent_create_xfer_req(agent, op, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &rm,
                                           1, "target", NULL, &req),
                NIXL_SUCCESS);
    /* once whole: the ring is open and the path works */
    IT_CHECK(it_post_wait(agent, req, NULL, IT_TIMEOUT_MS) == NIXL_SUCCESS, "first transfer: %s",
             nixl_last_error());
    IT_CHECK(kill(t.pid, SIGSTOP) == 0, "SIGSTOP");
    nixl_status_t st = nixl_agent_post_xfer_req(agent, req, NULL);
    IT_CHECK(st == NIXL_IN_PROG, "post to a stopped target returned %s", nixl_status_str(st));
    it_sleep_ms(300);
    st = nixl_agent_get_xfer_status(agent, req);
    IT_CHECK(st == NIXL_IN_PROG, "a 64 MiB transfer to a stopped target is %s, not in flight",
             nixl_status_str(st));
    uint64_t t0 = it_now_ms();
    it_peer_kill(&t);
    st = it_wait_xfer(agent, req, IT_TIMEOUT_MS);
    IT_CHECK(st == NIXL_ERR_REMOTE_DISCONNECT, "after the kill the transfer ended with %s (%s)",
             nixl_status_str(st), nixl_last_error());
    IT_CHECK(it_now_ms() - t0 < 3000, "the kill was noticed after %llu ms",
             (unsigned long long)(it_now_ms() - t0));
    st = nixl_agent_post_xfer_req(agent, req, NULL);
    if (st == NIXL_IN_PROG)
        st = it_wait_xfer(agent, req, IT_TIMEOUT_MS);
    IT_CHECK(st < 0, "a post after the kill gave %s", nixl_status_str(st));
    IT_CHECK_ST(nixl_agent_release_xfer_req(agent, req), NIXL_SUCCESS);
    nixl_agent_destroy(agent);
    free(buf);
    return 0;
fail:
    if (req)
        nixl_agent_release_xfer_req(agent, req);
    it_peer_cleanup(&t);
    nixl_agent_destroy(agent);
    free(buf);
    return -1;
}

static const nixl_xfer_op_t k_write = NIXL_WRITE, k_read = NIXL_READ;

static const it_scenario_t scenarios[] = {
    {"seccomp-target/sync", run_matrix, &(const scen_t){"target-seccomp", false, true}},
    {"seccomp-target/async", run_matrix, &(const scen_t){"target-seccomp", true, true}},
    {"seccomp-initiator", run_sc_initiator, "early"},
    {"seccomp-initiator-late", run_sc_initiator, "late"},
    {"kill/WRITE", run_kill, &k_write},
    {"kill/READ", run_kill, &k_read},
    {"cma-control", run_matrix, &(const scen_t){"target", false, false}},
    {"pidns/sync", run_matrix, &(const scen_t){"target-pidns", false, true}},
};

static const it_role_t roles[] = {
    {"target", it_target_role},
    {"target-seccomp", target_seccomp_role},
    {"target-pidns", target_pidns_role},
    {"sc-initiator", sc_initiator_role},
};

int main(int argc, char **argv)
{
    /* The pid-namespace scenario needs root (unshare(CLONE_NEWPID)); it runs on its own. */
    bool peer = argc > 1 && strcmp(argv[1], "--it-peer") == 0;
    bool pidns_only = !peer && argc > 1 && strstr(argv[1], "pidns");
    if (pidns_only && geteuid() != 0) {
        fprintf(stderr, "it_nocma pidns: needs root (unshare(CLONE_NEWPID)); skipped\n");
        return 77;
    }
    /* Without arguments, everything but pidns. */
    char *def[] = {argv[0], "seccomp", "kill", "cma-control", NULL};
    if (argc == 1) {
        argc = 4;
        argv = def;
    }
    return it_main(argc, argv, roles, sizeof(roles) / sizeof(roles[0]), scenarios,
                   sizeof(scenarios) / sizeof(scenarios[0]));
}
