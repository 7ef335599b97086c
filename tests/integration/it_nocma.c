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
 *  pidns-mapped      (it-nocma-pidns) the same target with a memfd buffer: mapped, no staging
 *                     ring.
 *  kill/..           the target is stopped (SIGSTOP) while a 64 MiB asynchronous transfer is in
 *                     flight, then killed: the transfer must end with an error, promptly.
 *  cma-control        an unfiltered target in our namespace: no staging ring is created (the
 *                     detection is not "always on").
 *
 * Shareable mappings (plugins/shm/shm_map.c; it-shmmap runs these):
 *  map-memfd/..      the target's buffer is a memfd (IT_TARGET_MEM): the same rows go through
 *                     this process's mapping of that file, which must be mapped here at the end;
 *                     "-closed": the target closed its descriptor after mmap.
 *  map-nocap-..      the target drops its effective
 *                     capabilities, so /proc/self/map_files is refused to it: a memfd whose
 *                     descriptor it keeps is found through that descriptor and mapped here
 *                     ("-memfd"); one whose descriptor it closed cannot be, and cross-memory
 *                     attach serves ("-closed").
 *  map-devshm         the same with a file in /dev/shm.
 *  map-huge           a memfd on hugetlbfs (as root the test reserves the huge pages for its
 *                     run; elsewhere it says "skipped" and passes without them).
 *  map-otheruid-..    (root, else "skipped") the target runs as nobody (both sides trust the
 *                     other's uid): its plain memfd, which it could cut under our copies (a
 *                     SIGBUS here), is not mapped - cross-memory attach serves ("-memfd"); one
 *                     sealed against shrinking (F_SEAL_SHRINK) is mapped ("-sealed").
 *  map-malloc         a malloc'd target buffer: nothing is mapped, cross-memory attach as before.
 *  map-cma-refused    a memfd target under the seccomp filter (no cross-memory attach): the
 *                     mapping serves, and no staging ring is made.
 *  map-death/..       the target is killed while 64 MiB asynchronous transfers run through the
 *                     mapping: each ends whole or with REMOTE_DISCONNECT, never a crash, posts
 *                     fail soon after, and its file is unmapped at once (the ends of the other
 *                     map- scenarios check that too, after an orderly exit).
 *  split-..          NIXL_SHM_COPY_THREADS=3 in this process: rows of 4 MiB and more are split
 *                     across copy threads (shm_copy.c; a "nixl-shm-copy" thread must exist at the
 *                     end), by cross-memory attach (split-cma) and through a mapping (split-map),
 *                     synchronous and asynchronous; split-off (1 thread) starts none;
 *                     split-staged: the seccomp target, rows of 1 MiB and more in three slices
 *                     through three staging rings (the main one and two bulk rings).
 *  map-forged         the target's metadata edited to put its region beyond the end of its file,
 *                     or to name another file: refused at prep with the reason; a region length
 *                     that disagrees with the descriptor is refused at load.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/capability.h>
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
#include <sys/mman.h>
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
    {4096, 1}, {4096, 1024}, {65536, 64}, {1000003, 3}, {16384, 1024}, {4097, 5},
    {(size_t)64 << 20, 1},
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

/* The target without capabilities (root's uid, an empty effective set): /proc/self/map_files
 * is refused to it, so SHM finds a memfd only through a descriptor the process holds. */
static int target_nocap_role(it_chan_t *ch, const char *arg)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return it_fail(__FILE__, __LINE__, "capget: %s", strerror(errno)), 1;
    d[0].effective = d[1].effective = 0;
    if (syscall(SYS_capset, &h, d) != 0)
        return it_fail(__FILE__, __LINE__, "capset: %s", strerror(errno)), 1;
    /* the point of the role: map_files must be refused now */
    FILE *f = fopen("/proc/self/maps", "r");
    char line[256], path[300];
    unsigned long long a, b;
    int fd = -1;
    if (f && fgets(line, sizeof(line), f) && sscanf(line, "%llx-%llx", &a, &b) == 2) {
        snprintf(path, sizeof(path), "/proc/self/map_files/%llx-%llx", a, b);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (f)
        fclose(f);
    if (fd >= 0) {
        close(fd);
        return it_fail(__FILE__, __LINE__, "/proc/self/map_files still opens without "
                       "capabilities"), 1;
    }
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

/* The target as another user (nobody); the scenario sets IT_SHM_TRUSTED_UIDS for both sides. */
static int target_nobody_role(it_chan_t *ch, const char *arg)
{
    setenv("NIXL_CONFIG_FILE", "", 1); /* root's configuration is not nobody's to read */
    if (setgid(65534) != 0 || setuid(65534) != 0)
        return it_fail(__FILE__, __LINE__, "becoming nobody: %s", strerror(errno)), 1;
    /* a uid change leaves the process undumpable; LeakSanitizer's exit check (ASan builds)
     * must still be able to ptrace its threads */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    return it_target_role(ch, arg);
}

/* ---- the initiator's side ---- */

typedef struct scen {
    const char *role;
    bool async;
    bool expect_staged;
    const char *mem;  /* IT_TARGET_MEM, NULL: malloc */
    bool expect_map;  /* the target's file ends up mapped here */
    const char *copy_threads; /* NIXL_SHM_COPY_THREADS of our agent (NULL: unset) */
} scen_t;

/* Whether a thread of this process is called `name`. */
static bool has_thread(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    bool found = false;
    while (d && !found && (e = readdir(d))) {
        char path[300], comm[64] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(comm, sizeof(comm), f))
            found = strncmp(comm, name, strlen(name)) == 0;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

/* Start a target whose buffer is `mem` (IT_TARGET_MEM). */
static int start_target(it_peer_t *t, const char *role, const char *mem, nixl_agent_t *agent,
                        uint64_t *taddr)
{
    if (mem)
        setenv("IT_TARGET_MEM", mem, 1);
    int rc = it_target_start_role(t, role, "target", TBUF, agent, taddr);
    unsetenv("IT_TARGET_MEM");
    return rc;
}

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
    if (s->copy_threads)
        setenv("NIXL_SHM_COPY_THREADS", s->copy_threads, 1);
    nixl_agent_t *agent = buf ? it_agent("initiator", s->async ? 1 : 0) : NULL;
    unsetenv("NIXL_SHM_COPY_THREADS");
    uint64_t taddr;
    IT_CHECK(agent && it_register(agent, buf, TBUF) == 0, "initiator agent");
    IT_CHECK(start_target(&t, s->role, s->mem, agent, &taddr) == 0, "target");
    for (size_t k = 0; k < NROWS; k++) {
        if (s->async && rows[k].size * rows[k].count > ((size_t)16 << 20))
            continue; /* the largest row once is enough (synchronous scenario) */
        IT_CHECK(run_row(agent, &t, buf, taddr, k, NIXL_WRITE, s->async) == 0, "WRITE row %zu", k);
        IT_CHECK(run_row(agent, &t, buf, taddr, k, NIXL_READ, s->async) == 0, "READ row %zu", k);
    }
    if (s->expect_staged) {
        IT_CHECK(it_maps_staging_ring(), "the initiator maps no staging ring");
        IT_CHECK(it_cmd(&t.ch, "staged") == 0, "the target maps no staging ring");
        /* split: the main ring and a bulk ring per other slice (rows of 1 MiB and more) */
        size_t want = s->copy_threads ? (size_t)atoi(s->copy_threads) : 1,
               have = it_staging_rings();
        IT_CHECK(want < 2 || have == want, "copy_threads=%s: %zu staging rings mapped here",
                 s->copy_threads, have);
    } else {
        IT_CHECK(!it_maps_staging_ring(), "a staging ring was made where CMA works or a "
                 "mapping serves");
    }
    IT_CHECK(it_maps("it-target") == s->expect_map, "the target's buffer file is%s mapped here",
             s->expect_map ? " not" : "");
    if (s->copy_threads) {
        bool want = strcmp(s->copy_threads, "1") != 0;
        IT_CHECK(has_thread("nixl-shm-copy") == want, "copy_threads=%s: %s copy thread",
                 s->copy_threads, want ? "no" : "a");
    }
    IT_CHECK(it_peer_quit(&t) == 0, "target quit");
    if (s->expect_map) {
        /* its exit invalidates its metadata: the mapping goes with the last md */
        uint64_t t0 = it_now_ms();
        while (it_maps("it-target") && it_now_ms() - t0 < 3000)
            it_sleep_ms(20);
        IT_CHECK(!it_maps("it-target"), "the file of a target that exited is still mapped");
    }
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

typedef struct kill_scen {
    nixl_xfer_op_t op;
    bool map; /* the target's buffer is a memfd: transfers go through its mapping */
} kill_scen_t;

/* Staged (a seccomp target): a transfer in flight when the target stops, then dies, ends with
 * an error, promptly; later posts too. Mapped: the target is killed while 64 MiB copies run
 * through the mapping of its file; each ends whole or with REMOTE_DISCONNECT, never a crash,
 * and posts fail soon after. */
static int run_kill(const void *arg)
{
    const kill_scen_t *k = arg;
    nixl_xfer_op_t op = k->op;
    it_peer_t t = {.ch = {-1, -1}};
    size_t big = (size_t)64 << 20;
    uint8_t *buf = it_alloc(TBUF);
    nixl_agent_t *agent = buf ? it_agent("initiator", 1) : NULL;
    nixl_xfer_req_t *req = NULL;
    uint64_t taddr;
    nixl_status_t st;
    IT_CHECK(agent && it_register(agent, buf, TBUF) == 0, "initiator agent");
    IT_CHECK(start_target(&t, k->map ? "target" : "target-seccomp", k->map ? "memfd" : NULL,
                          agent, &taddr) == 0,
             "target");
    nixl_desc_t l = {(uintptr_t)buf, big, 0}, rm = {taddr, big, 0};
    IT_CHECK_ST(nixl_agent_create_xfer_req(agent, op, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &rm,
                                           1, "target", NULL, &req),
                NIXL_SUCCESS);
    IT_CHECK(it_maps("memfd:it-target") == k->map, "the target's memfd is%s mapped after prep",
             k->map ? " not" : "");
    /* once whole: the path works */
    IT_CHECK(it_post_wait(agent, req, NULL, IT_TIMEOUT_MS) == NIXL_SUCCESS, "first transfer: %s",
             nixl_last_error());
    uint64_t t0;
    if (!k->map) {
        IT_CHECK(kill(t.pid, SIGSTOP) == 0, "SIGSTOP");
        st = nixl_agent_post_xfer_req(agent, req, NULL);
        IT_CHECK(st == NIXL_IN_PROG, "post to a stopped target returned %s", nixl_status_str(st));
        it_sleep_ms(300);
        st = nixl_agent_get_xfer_status(agent, req);
        IT_CHECK(st == NIXL_IN_PROG, "a 64 MiB transfer to a stopped target is %s, not in flight",
                 nixl_status_str(st));
        t0 = it_now_ms();
        it_peer_kill(&t);
        st = it_wait_xfer(agent, req, IT_TIMEOUT_MS);
        IT_CHECK(st == NIXL_ERR_REMOTE_DISCONNECT,
                 "after the kill the transfer ended with %s (%s)", nixl_status_str(st),
                 nixl_last_error());
        IT_CHECK(it_now_ms() - t0 < 3000, "the kill was noticed after %llu ms",
                 (unsigned long long)(it_now_ms() - t0));
        st = nixl_agent_post_xfer_req(agent, req, NULL);
        if (st == NIXL_IN_PROG)
            st = it_wait_xfer(agent, req, IT_TIMEOUT_MS);
        IT_CHECK(st < 0, "a post after the kill gave %s", nixl_status_str(st));
    } else {
        st = nixl_agent_post_xfer_req(agent, req, NULL);
        IT_CHECK(st == NIXL_IN_PROG || st == NIXL_SUCCESS, "post: %s", nixl_status_str(st));
        it_peer_kill(&t); /* while the copy runs (or just after) */
        st = it_wait_xfer(agent, req, IT_TIMEOUT_MS);
        IT_CHECK(st == NIXL_SUCCESS || st == NIXL_ERR_REMOTE_DISCONNECT,
                 "the transfer in flight at the kill ended with %s (%s)", nixl_status_str(st),
                 nixl_last_error());
        /* posts go on until the death is seen; each ends whole or with an error, promptly */
        t0 = it_now_ms();
        for (;;) {
            st = nixl_agent_post_xfer_req(agent, req, NULL);
            if (st == NIXL_IN_PROG)
                st = it_wait_xfer(agent, req, IT_TIMEOUT_MS);
            if (st < 0)
                break;
            IT_CHECK(st == NIXL_SUCCESS, "a post after the kill gave %s", nixl_status_str(st));
            IT_CHECK(it_now_ms() - t0 < 3000, "posts still succeed %llu ms after the kill",
                     (unsigned long long)(it_now_ms() - t0));
            it_sleep_ms(10);
        }
        IT_CHECK(st == NIXL_ERR_REMOTE_DISCONNECT || st == NIXL_ERR_NOT_FOUND,
                 "after the kill a post gave %s (%s)", nixl_status_str(st), nixl_last_error());
        /* the dead target's file is no longer mapped (its memory is not kept alive by us),
         * though our request still holds its region's md */
        IT_CHECK(!it_maps("memfd:it-target"), "the killed target's file is still mapped");
    }
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

/* Huge pages must be reserved (vm.nr_hugepages) for a memfd on hugetlbfs. */
static int run_otheruid(const void *arg)
{
    if (geteuid() != 0) {
        printf("map-otheruid: skipped, needs root (a target of another uid)\n");
        return 0;
    }
    /* nobody must reach the plugins (a checkout under a private directory would not) */
    const char *dir = getenv("NIXL_PLUGIN_DIR");
    pid_t pid = fork();
    if (pid == 0)
        _exit(setgid(65534) == 0 && setuid(65534) == 0 && dir && access(dir, R_OK | X_OK) == 0
                  ? 0
                  : 1);
    int status = 1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        printf("map-otheruid: skipped, nobody cannot reach the plugins (%s)\n",
               dir ? dir : "NIXL_PLUGIN_DIR unset");
        return 0;
    }
    setenv("IT_SHM_TRUSTED_UIDS", "0 65534", 1); /* our agent and the target's */
    int rc = run_matrix(arg);
    unsetenv("IT_SHM_TRUSTED_UIDS");
    return rc;
}

/* Whether TBUF of huge pages can be had now (a memfd on hugetlbfs, mapped and populated). */
static bool huge_available(char *why, size_t whylen)
{
    int fd = memfd_create("it-probe", MFD_CLOEXEC | MFD_HUGETLB);
    void *p = fd >= 0 && ftruncate(fd, (off_t)TBUF + ((size_t)2 << 20)) == 0
                  ? mmap(NULL, TBUF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
                  : MAP_FAILED;
    snprintf(why, whylen, "%s", strerror(errno));
    if (fd >= 0)
        close(fd);
    if (p == MAP_FAILED)
        return false;
    munmap(p, TBUF);
    return true;
}

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static bool write_long(const char *path, long v)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fprintf(f, "%ld\n", v) > 0;
    return f ? fclose(f) == 0 && ok : false;
}

/* Huge pages must be reserved (vm.nr_hugepages) for a memfd on hugetlbfs: as root the test
 * reserves what it needs for its run and gives them back after; elsewhere, without them, it
 * says "skipped". */
static int run_huge(const void *arg)
{
    static const char nr_path[] = "/proc/sys/vm/nr_hugepages";
    char why[128];
    long before = -1;
    if (!huge_available(why, sizeof(why)) && geteuid() == 0 &&
        (before = read_long(nr_path)) >= 0) {
        long need = (long)((TBUF + ((size_t)4 << 20)) >> 21); /* 2 MiB pages, with slack */
        if (!write_long(nr_path, before + need))
            before = -1;
    }
    int rc = 0;
    if (huge_available(why, sizeof(why)))
        rc = run_matrix(arg);
    else
        printf("map-huge: skipped, no %zu MiB of huge pages here (%s)\n", TBUF >> 20, why);
    if (before >= 0 && !write_long(nr_path, before))
        printf("map-huge: could not give the huge pages back (vm.nr_hugepages %ld)\n", before);
    return rc;
}

/* The first SHM file blob in serialized metadata ("SHMF", version 1): its offset, or -1. */
static long find_file_blob(const uint8_t *md, size_t len)
{
    static const uint8_t magic[5] = {'S', 'H', 'M', 'F', 1};
    for (size_t i = 0; i + 48 <= len; i++)
        if (memcmp(md + i, magic, sizeof(magic)) == 0)
            return (long)i;
    return -1;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Metadata whose file blob was edited: beyond the file's end (refused at prep, clearly), and
 * a region length that disagrees with the descriptor (refused at load). */
static int run_forged(const void *arg)
{
    (void)arg;
    it_peer_t t = {.ch = {-1, -1}};
    uint8_t *buf = it_alloc(TBUF);
    nixl_agent_t *agent = buf ? it_agent("initiator", 0) : NULL;
    nixl_xfer_req_t *req = NULL;
    void *md = NULL;
    size_t len;
    char *name = NULL;
    uint64_t taddr;
    IT_CHECK(agent && it_register(agent, buf, TBUF) == 0, "initiator agent");
    IT_CHECK(start_target(&t, "target", "memfd", NULL, &taddr) == 0, "target");
    IT_CHECK(it_send(&t.ch, "md", 2) == 0 && it_recv(&t.ch, &md, &len, IT_TIMEOUT_MS, false) == 0,
             "target metadata");
    long at = find_file_blob(md, len);
    IT_CHECK(at >= 0, "the metadata of a memfd region carries no SHM file blob");
    uint8_t *blob = (uint8_t *)md + at;
    /* a region length that is not the descriptor's: refused when loaded */
    put_le64(blob + 32, TBUF + 4096);
    nixl_status_t st = nixl_agent_load_remote_md(agent, md, len, &name);
    IT_CHECK(st == NIXL_ERR_MISMATCH && strstr(nixl_last_error(), "malformed"),
             "a region length edited: load gave %s (%s)", nixl_status_str(st),
             nixl_last_error());
    /* the region moved 1 GiB into the file, beyond its end: loads, then refused at prep */
    put_le64(blob + 32, TBUF);
    put_le64(blob + 24, (uint64_t)1 << 30);
    IT_CHECK_ST(nixl_agent_load_remote_md(agent, md, len, &name), NIXL_SUCCESS);
    nixl_desc_t l = {(uintptr_t)buf, 4096, 0}, rm = {taddr, 4096, 0};
    st = nixl_agent_create_xfer_req(agent, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &rm,
                                    1, "target", NULL, &req);
    IT_CHECK(st == NIXL_ERR_INVALID_PARAM && strstr(nixl_last_error(), "forged or stale"),
             "a region beyond the end of its file: prep gave %s (%s)", nixl_status_str(st),
             nixl_last_error());
    req = NULL;
    IT_CHECK(!it_maps("memfd:it-target"), "the target's file was mapped all the same");
    /* the same region, asked again, is refused again (not retried, not half-mapped) */
    st = nixl_agent_create_xfer_req(agent, NIXL_READ, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &rm,
                                    1, "target", NULL, &req);
    IT_CHECK(st == NIXL_ERR_INVALID_PARAM, "second prep gave %s", nixl_status_str(st));
    req = NULL;
    /* another file than the one it passes (the inode edited): refused at prep */
    IT_CHECK_ST(nixl_agent_invalidate_remote_md(agent, "target"), NIXL_SUCCESS);
    put_le64(blob + 24, 0);
    blob[16] ^= 1;
    nixl_free(name);
    name = NULL;
    IT_CHECK_ST(nixl_agent_load_remote_md(agent, md, len, &name), NIXL_SUCCESS);
    st = nixl_agent_create_xfer_req(agent, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &rm,
                                    1, "target", NULL, &req);
    IT_CHECK(st == NIXL_ERR_INVALID_PARAM && strstr(nixl_last_error(), "is not the tmpfs"),
             "a region naming another file: prep gave %s (%s)", nixl_status_str(st),
             nixl_last_error());
    req = NULL;
    IT_CHECK(!it_maps("memfd:it-target"), "the target's file was mapped all the same");
    IT_CHECK(it_peer_quit(&t) == 0, "target quit");
    nixl_free(name);
    free(md);
    nixl_agent_destroy(agent);
    free(buf);
    return 0;
fail:
    if (req)
        nixl_agent_release_xfer_req(agent, req);
    nixl_free(name);
    free(md);
    it_peer_cleanup(&t);
    nixl_agent_destroy(agent);
    free(buf);
    return -1;
}


static const it_scenario_t scenarios[] = {
    {"seccomp-target/sync", run_matrix, &(const scen_t){"target-seccomp", false, true}},
    {"seccomp-target/async", run_matrix, &(const scen_t){"target-seccomp", true, true}},
    {"seccomp-initiator", run_sc_initiator, "early"},
    {"seccomp-initiator-late", run_sc_initiator, "late"},
    {"kill/WRITE", run_kill, &(const kill_scen_t){NIXL_WRITE, false}},
    {"kill/READ", run_kill, &(const kill_scen_t){NIXL_READ, false}},
    {"cma-control", run_matrix, &(const scen_t){"target", false, false}},
    {"pidns/sync", run_matrix, &(const scen_t){"target-pidns", false, true}},
    {"pidns-mapped", run_matrix, &(const scen_t){"target-pidns", false, false, "memfd", true}},
    {"map-memfd/sync", run_matrix, &(const scen_t){"target", false, false, "memfd", true}},
    {"map-memfd/async", run_matrix, &(const scen_t){"target", true, false, "memfd", true}},
    {"map-memfd-closed", run_matrix,
     &(const scen_t){"target", false, false, "memfd-closed", true}},
    {"map-nocap-memfd", run_matrix,
     &(const scen_t){"target-nocap", false, false, "memfd", true}},
    {"map-nocap-closed", run_matrix,
     &(const scen_t){"target-nocap", false, false, "memfd-closed", false}},
    {"map-devshm", run_matrix, &(const scen_t){"target", false, false, "devshm", true}},
    {"map-huge", run_huge, &(const scen_t){"target", false, false, "memfd-huge", true}},
    {"map-otheruid-memfd", run_otheruid,
     &(const scen_t){"target-nobody", false, false, "memfd", false}},
    {"map-otheruid-sealed", run_otheruid,
     &(const scen_t){"target-nobody", false, false, "memfd-sealed", true}},
    {"map-malloc", run_matrix, &(const scen_t){"target", false, false, "malloc", false}},
    {"map-cma-refused", run_matrix, &(const scen_t){"target-seccomp", false, false, "memfd", true}},
    {"map-death/WRITE", run_kill, &(const kill_scen_t){NIXL_WRITE, true}},
    {"map-death/READ", run_kill, &(const kill_scen_t){NIXL_READ, true}},
    {"map-forged", run_forged, NULL},
    {"split-cma/sync", run_matrix, &(const scen_t){"target", false, false, NULL, false, "3"}},
    {"split-map/sync", run_matrix, &(const scen_t){"target", false, false, "memfd", true, "3"}},
    {"split-map/async", run_matrix, &(const scen_t){"target", true, false, "memfd", true, "3"}},
    {"split-off", run_matrix, &(const scen_t){"target", false, false, "memfd", true, "1"}},
    {"split-staged/sync", run_matrix,
     &(const scen_t){"target-seccomp", false, true, NULL, false, "3"}},
    {"split-staged/async", run_matrix,
     &(const scen_t){"target-seccomp", true, true, NULL, false, "3"}},
};

static const it_role_t roles[] = {
    {"target", it_target_role},
    {"target-nobody", target_nobody_role},
    {"target-seccomp", target_seccomp_role},
    {"target-pidns", target_pidns_role},
    {"target-nocap", target_nocap_role},
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
