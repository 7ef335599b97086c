/*
 * test_shm_vram.c - GPU memory through the SHM backend, on a machine with an NVIDIA GPU.
 *
 *  1. loopback (an agent with itself): every pair of VRAM, pageable DRAM and pinned DRAM with
 *     VRAM on a side, READ and WRITE, descriptor lists of 1 to 16,384 with odd lengths and
 *     alignments; the whole destination buffer is checked byte for byte (so a stray write
 *     fails too);
 *  2. two agents of one process: VRAM to VRAM with a notification;
 *  3. two processes (this program again, as "target"): VRAM to the peer's VRAM through CUDA
 *     IPC, WRITE with a notification that the target checks, then READ back; local DRAM to the
 *     peer's VRAM; local VRAM with the peer's DRAM (staged through pinned buffers), both ways;
 *     the peer killed during transfers: no crash, and no request reports success after it is
 *     known dead.
 * Exit 77 (skip) without a driver or a GPU.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu_test.h"

#define BUF (16u << 20)

static uint8_t pattern(size_t i, unsigned seed)
{
    return (uint8_t)(seed * 131u + i * 7u + (i >> 9));
}

/* ---- a memory area of one kind ---- */

enum kind { K_VRAM, K_PAGEABLE, K_PINNED };
static const char *kind_name[] = {"VRAM", "DRAM(pageable)", "DRAM(pinned)"};

typedef struct area {
    enum kind kind;
    uintptr_t addr;
    void *host; /* pageable or pinned */
} area_t;

static area_t area_new(enum kind k)
{
    area_t a = {.kind = k};
    if (k == K_VRAM) {
        a.addr = (uintptr_t)gt_alloc(BUF);
    } else {
        a.host = k == K_PINNED ? gt_alloc_pinned(BUF) : malloc(BUF);
        a.addr = (uintptr_t)a.host;
    }
    return a;
}

static void area_free(area_t *a)
{
    if (a->kind == K_VRAM)
        gt_free(a->addr);
    else if (a->kind == K_PINNED)
        gt_free_pinned(a->host);
    else
        free(a->host);
}

static nixl_mem_t area_mem(const area_t *a)
{
    return a->kind == K_VRAM ? NIXL_VRAM_SEG : NIXL_DRAM_SEG;
}

static void area_put(area_t *a, const uint8_t *img)
{
    if (a->kind == K_VRAM)
        gt_htod(a->addr, img, BUF);
    else
        memcpy(a->host, img, BUF);
}

static void area_get(const area_t *a, uint8_t *img)
{
    if (a->kind == K_VRAM)
        gt_dtoh(img, a->addr, BUF);
    else
        memcpy(img, a->host, BUF);
}

static void area_register(nixl_agent_t *ag, const area_t *a)
{
    nixl_reg_desc_t d = {.addr = a->addr, .len = BUF, .dev_id = 0};
    nixl_status_t st = nixl_agent_register_mem(ag, area_mem(a), &d, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "register %s: %s", kind_name[a->kind], nixl_status_str(st));
}

/* ---- descriptor lists ---- */

/* `count` pieces with odd lengths, at odd offsets on both sides (different on each side). */
static size_t make_lists(size_t count, nixl_desc_t *src, nixl_desc_t *dst, uintptr_t sbase,
                         uintptr_t dbase, uint64_t sdev, uint64_t ddev)
{
    size_t budget = BUF / count - 8, soff = 1, doff = 3, total = 0;
    size_t base = budget > 4096 ? budget - 64 : budget / 2 + 1;
    for (size_t i = 0; i < count; i++) {
        size_t len = base + (i * 37) % 61;
        if (len > budget - 4)
            len = budget - 4;
        src[i] = (nixl_desc_t){sbase + soff, len, sdev};
        dst[i] = (nixl_desc_t){dbase + doff, len, ddev};
        soff += len + 1 + i % 3;
        doff += len + 2 + i % 5 % 2;
        total += len;
    }
    return total;
}

/* The destination image expected after copying src's pieces into dst's. */
static void expect(uint8_t *want, const uint8_t *src_img, const nixl_desc_t *src,
                   const nixl_desc_t *dst, size_t count, uintptr_t sbase, uintptr_t dbase)
{
    for (size_t i = 0; i < count; i++)
        memcpy(want + (dst[i].addr - dbase), src_img + (src[i].addr - sbase), src[i].len);
}

/* ---- 1. loopback ---- */

static void loopback_case(nixl_agent_t *ag, nixl_xfer_op_t op, area_t *local, area_t *remote,
                          size_t count, uint8_t *img, uint8_t *want, uint8_t *got)
{
    static unsigned seed = 1;
    seed++;
    /* WRITE: local -> remote; READ: remote -> local. */
    area_t *from = op == NIXL_WRITE ? local : remote, *to = op == NIXL_WRITE ? remote : local;
    for (size_t i = 0; i < BUF; i++)
        img[i] = pattern(i, seed);
    area_put(from, img);
    memset(want, 0xee, BUF);
    area_put(to, want);

    nixl_desc_t *l = malloc(count * sizeof(*l)), *r = malloc(count * sizeof(*r));
    if (op == NIXL_WRITE)
        make_lists(count, l, r, local->addr, remote->addr, 0, 0);
    else
        make_lists(count, r, l, remote->addr, local->addr, 0, 0);
    nixl_desc_t *s = op == NIXL_WRITE ? l : r, *d = op == NIXL_WRITE ? r : l;
    expect(want, img, s, d, count, from->addr, to->addr);

    nixl_xfer_req_t *req = NULL;
    nixl_status_t st = nixl_agent_create_xfer_req(ag, op, area_mem(local), l, count,
                                                  area_mem(remote), r, count, "A", NULL, &req);
    GT_CHECK(st == NIXL_SUCCESS, "loopback %s %s -> %s x%zu: create: %s",
             op == NIXL_WRITE ? "WRITE" : "READ", kind_name[from->kind], kind_name[to->kind],
             count, nixl_status_str(st));
    if (st == NIXL_SUCCESS) {
        for (int rep = 0; rep < 2; rep++) { /* a prepared request posts again */
            st = gt_wait(ag, req, nixl_agent_post_xfer_req(ag, req, NULL));
            GT_CHECK(st == NIXL_SUCCESS, "loopback %s %s -> %s x%zu: post %d: %s",
                     op == NIXL_WRITE ? "WRITE" : "READ", kind_name[from->kind],
                     kind_name[to->kind], count, rep, nixl_status_str(st));
        }
        area_get(to, got);
        size_t bad = 0;
        while (bad < BUF && got[bad] == want[bad])
            bad++;
        GT_CHECK(bad == BUF, "loopback %s %s -> %s x%zu: byte %zu is 0x%02x, not 0x%02x",
                 op == NIXL_WRITE ? "WRITE" : "READ", kind_name[from->kind],
                 kind_name[to->kind], count, bad, bad < BUF ? got[bad] : 0,
                 bad < BUF ? want[bad] : 0);
        nixl_agent_release_xfer_req(ag, req);
    }
    free(l);
    free(r);
}

static void test_loopback(void)
{
    nixl_agent_t *ag = NULL;
    nixl_backend_t *be = NULL;
    if (nixl_agent_create("A", NULL, &ag) != NIXL_SUCCESS ||
        nixl_agent_create_backend(ag, "SHM", NULL, 0, &be) != NIXL_SUCCESS) {
        GT_CHECK(0, "agent with SHM");
        return;
    }
    area_t v1 = area_new(K_VRAM), v2 = area_new(K_VRAM), pg = area_new(K_PAGEABLE),
           pn = area_new(K_PINNED);
    area_register(ag, &v1);
    area_register(ag, &v2);
    area_register(ag, &pg);
    area_register(ag, &pn);
    uint8_t *img = malloc(BUF), *want = malloc(BUF), *got = malloc(BUF);
    struct {
        area_t *l, *r;
    } pairs[] = {{&v1, &v2}, {&v1, &pg}, {&pg, &v1}, {&v1, &pn}, {&pn, &v1}};
    size_t counts[] = {1, 7, 1000, 16384};
    for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++)
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
            for (int op = 0; op < 2; op++)
                loopback_case(ag, op ? NIXL_READ : NIXL_WRITE, pairs[p].l, pairs[p].r,
                              counts[c], img, want, got);
    printf("loopback: %zu cases\n", sizeof(pairs) / sizeof(pairs[0]) * 4 * 2);
    free(img);
    free(want);
    free(got);
    nixl_agent_destroy(ag);
    area_free(&v1);
    area_free(&v2);
    area_free(&pg);
    area_free(&pn);
}

/* ---- helpers for two agents ---- */

static bool wait_notif(nixl_agent_t *ag, const char *from, const char *msg)
{
    double deadline = gt_now() + 30;
    while (gt_now() < deadline) {
        nixl_notif_list_t *l = NULL;
        if (nixl_agent_get_notifs(ag, NULL, &l) == NIXL_SUCCESS && l) {
            bool hit = false;
            for (size_t i = 0; i < l->count; i++)
                hit |= !strcmp(l->items[i].agent, from) && l->items[i].msg_len == strlen(msg) &&
                       !memcmp(l->items[i].msg, msg, strlen(msg));
            nixl_free(l);
            if (hit)
                return true;
        }
        usleep(200);
    }
    return false;
}

static nixl_agent_t *shm_agent(const char *name)
{
    nixl_agent_t *ag = NULL;
    nixl_backend_t *be = NULL;
    if (nixl_agent_create(name, NULL, &ag) != NIXL_SUCCESS ||
        nixl_agent_create_backend(ag, "SHM", NULL, 0, &be) != NIXL_SUCCESS) {
        fprintf(stderr, "agent %s with SHM: %s\n", name, nixl_last_error());
        exit(1);
    }
    return ag;
}

static nixl_status_t xfer(nixl_agent_t *ag, nixl_xfer_op_t op, nixl_mem_t lt, uintptr_t la,
                          nixl_mem_t rt, uintptr_t ra, size_t len, size_t pieces,
                          const char *peer, const char *notif)
{
    nixl_desc_t l[64], r[64];
    for (size_t i = 0; i < pieces; i++) {
        l[i] = (nixl_desc_t){la + i * (len / pieces), len / pieces, 0};
        r[i] = (nixl_desc_t){ra + i * (len / pieces), len / pieces, 0};
    }
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.has_notif = notif != NULL;
    opt.notif = notif;
    opt.notif_len = notif ? strlen(notif) : 0;
    nixl_xfer_req_t *req = NULL;
    nixl_status_t st = nixl_agent_create_xfer_req(ag, op, lt, l, pieces, rt, r, pieces, peer,
                                                  &opt, &req);
    if (st != NIXL_SUCCESS)
        return st;
    st = gt_wait(ag, req, nixl_agent_post_xfer_req(ag, req, NULL));
    nixl_agent_release_xfer_req(ag, req);
    return st;
}

static size_t vram_mismatch(uintptr_t addr, unsigned seed, uint8_t *tmp)
{
    gt_dtoh(tmp, addr, BUF);
    for (size_t i = 0; i < BUF; i++)
        if (tmp[i] != pattern(i, seed))
            return i + 1;
    return 0;
}

static void vram_fill(uintptr_t addr, unsigned seed, uint8_t *tmp)
{
    for (size_t i = 0; i < BUF; i++)
        tmp[i] = pattern(i, seed);
    gt_htod(addr, tmp, BUF);
}

static char *exchange_md(nixl_agent_t *from, nixl_agent_t *to)
{
    void *blob = NULL;
    size_t len = 0;
    char *name = NULL;
    if (nixl_agent_get_local_md(from, &blob, &len) != NIXL_SUCCESS ||
        nixl_agent_load_remote_md(to, blob, len, &name) != NIXL_SUCCESS) {
        fprintf(stderr, "metadata exchange: %s\n", nixl_last_error());
        exit(1);
    }
    nixl_free(blob);
    return name;
}

/* ---- 2. two agents of one process ---- */

static void test_two_agents(void)
{
    nixl_agent_t *a = shm_agent("A2"), *b = shm_agent("B2");
    area_t va = area_new(K_VRAM), vb = area_new(K_VRAM);
    area_register(a, &va);
    area_register(b, &vb);
    nixl_free(exchange_md(b, a));
    nixl_free(exchange_md(a, b));
    uint8_t *tmp = malloc(BUF);
    vram_fill(va.addr, 11, tmp);
    gt_memset(vb.addr, 0, BUF);
    nixl_status_t st = xfer(a, NIXL_WRITE, NIXL_VRAM_SEG, va.addr, NIXL_VRAM_SEG, vb.addr, BUF, 16,
                            "B2", "two-agents");
    GT_CHECK(st == NIXL_SUCCESS, "two agents: WRITE: %s", nixl_status_str(st));
    GT_CHECK(wait_notif(b, "A2", "two-agents"), "two agents: no notification");
    size_t bad = vram_mismatch(vb.addr, 11, tmp);
    GT_CHECK(bad == 0, "two agents: byte %zu differs", bad - 1);
    free(tmp);
    nixl_agent_destroy(a);
    nixl_agent_destroy(b);
    area_free(&va);
    area_free(&vb);
    printf("two agents of one process: done\n");
}

/* ---- 3. two processes ---- */

static void send_blob(int fd, const void *p, uint64_t n)
{
    if (write(fd, &n, sizeof(n)) != sizeof(n) || write(fd, p, n) != (ssize_t)n)
        exit(1);
}

static void *recv_blob(int fd, uint64_t *n)
{
    if (read(fd, n, sizeof(*n)) != sizeof(*n))
        return NULL;
    uint8_t *p = malloc(*n + 1);
    for (uint64_t got = 0; got < *n;) {
        ssize_t r = read(fd, p + got, *n - got);
        if (r <= 0) {
            free(p);
            return NULL;
        }
        got += (uint64_t)r;
    }
    p[*n] = 0;
    return p;
}

/* The target: registers VRAM and DRAM, sends its metadata and addresses, then obeys. */
static int target_main(int rfd, int wfd)
{
    if (gt_init() != 0)
        return 1;
    nixl_agent_t *t = shm_agent("T");
    area_t v = area_new(K_VRAM), d = area_new(K_PAGEABLE);
    area_register(t, &v);
    area_register(t, &d);
    void *blob;
    size_t len;
    if (nixl_agent_get_local_md(t, &blob, &len) != NIXL_SUCCESS)
        return 1;
    send_blob(wfd, blob, len);
    nixl_free(blob);
    uint64_t addrs[2] = {v.addr, d.addr};
    send_blob(wfd, addrs, sizeof(addrs));
    uint8_t *tmp = malloc(BUF);
    for (;;) {
        uint64_t n;
        char *cmd = recv_blob(rfd, &n);
        if (!cmd)
            break;
        char reply[64] = "ok";
        if (!strcmp(cmd, "check-w1")) {
            /* the data must be in place when the notification arrives */
            bool seen = wait_notif(t, "I", "w1");
            size_t bad = seen ? vram_mismatch(v.addr, 21, tmp) : 0;
            snprintf(reply, sizeof(reply), !seen ? "no notification" : bad ? "byte %zu" : "ok",
                     bad - 1);
        } else if (!strcmp(cmd, "fill")) {
            vram_fill(v.addr, 22, tmp);
        } else if (!strcmp(cmd, "check-staged")) {
            /* our DRAM, written from the initiator's VRAM through its pinned buffers */
            bool seen = wait_notif(t, "I", "w3");
            size_t bad = 0;
            for (size_t i = 0; seen && !bad && i < BUF; i++)
                if (((uint8_t *)d.host)[i] != pattern(i, 25))
                    bad = i + 1;
            snprintf(reply, sizeof(reply), !seen ? "no notification" : bad ? "byte %zu" : "ok",
                     bad - 1);
        } else if (!strcmp(cmd, "fill-dram")) {
            for (size_t i = 0; i < BUF; i++)
                ((uint8_t *)d.host)[i] = pattern(i, 26);
        } else if (!strcmp(cmd, "check-dram-w")) {
            bool seen = wait_notif(t, "I", "w2");
            size_t bad = seen ? vram_mismatch(v.addr, 23, tmp) : 0;
            snprintf(reply, sizeof(reply), !seen ? "no notification" : bad ? "byte %zu" : "ok",
                     bad - 1);
        }
        free(cmd);
        send_blob(wfd, reply, strlen(reply) + 1);
    }
    nixl_agent_destroy(t);
    return 0;
}

static bool ask(int wfd, int rfd, const char *cmd)
{
    send_blob(wfd, cmd, strlen(cmd) + 1);
    uint64_t n;
    char *reply = recv_blob(rfd, &n);
    bool ok = reply && !strcmp(reply, "ok");
    GT_CHECK(ok, "target, on '%s': %s", cmd, reply ? reply : "(gone)");
    free(reply);
    return ok;
}

static void test_two_processes(const char *self)
{
    int to_t[2], from_t[2];
    if (pipe(to_t) || pipe(from_t))
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        char r[16], w[16];
        snprintf(r, sizeof(r), "%d", to_t[0]);
        snprintf(w, sizeof(w), "%d", from_t[1]);
        execl(self, self, "target", r, w, (char *)NULL);
        _exit(127);
    }
    close(to_t[0]);
    close(from_t[1]);
    int wfd = to_t[1], rfd = from_t[0];

    nixl_agent_t *ini = shm_agent("I");
    area_t v = area_new(K_VRAM), d = area_new(K_PAGEABLE);
    area_register(ini, &v);
    area_register(ini, &d);
    uint64_t mdlen = 0, alen = 0;
    void *md = recv_blob(rfd, &mdlen);
    uint64_t *addrs = recv_blob(rfd, &alen);
    char *name = NULL;
    nixl_status_t st = md && addrs && alen == 16
                           ? nixl_agent_load_remote_md(ini, md, (size_t)mdlen, &name)
                           : NIXL_ERR_UNKNOWN;
    GT_CHECK(st == NIXL_SUCCESS && name && !strcmp(name, "T"), "loading the target: %s",
             nixl_status_str(st));
    free(md);
    nixl_free(name);
    if (st != NIXL_SUCCESS) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        free(addrs);
        return;
    }
    uintptr_t tv = (uintptr_t)addrs[0], td = (uintptr_t)addrs[1];
    free(addrs);
    uint8_t *tmp = malloc(BUF);

    /* VRAM -> the peer's VRAM, with a notification: the target checks on arrival */
    vram_fill(v.addr, 21, tmp);
    st = xfer(ini, NIXL_WRITE, NIXL_VRAM_SEG, v.addr, NIXL_VRAM_SEG, tv, BUF, 64, "T", "w1");
    GT_CHECK(st == NIXL_SUCCESS, "2 processes: WRITE VRAM -> VRAM: %s", nixl_status_str(st));
    ask(wfd, rfd, "check-w1");

    /* and back */
    ask(wfd, rfd, "fill");
    gt_memset(v.addr, 0, BUF);
    st = xfer(ini, NIXL_READ, NIXL_VRAM_SEG, v.addr, NIXL_VRAM_SEG, tv, BUF, 64, "T", NULL);
    GT_CHECK(st == NIXL_SUCCESS, "2 processes: READ VRAM <- VRAM: %s", nixl_status_str(st));
    size_t bad = vram_mismatch(v.addr, 22, tmp);
    GT_CHECK(bad == 0, "2 processes: READ: byte %zu differs", bad - 1);

    /* local (pageable) DRAM -> the peer's VRAM */
    for (size_t i = 0; i < BUF; i++)
        ((uint8_t *)d.host)[i] = pattern(i, 23);
    st = xfer(ini, NIXL_WRITE, NIXL_DRAM_SEG, d.addr, NIXL_VRAM_SEG, tv, BUF, 64, "T", "w2");
    GT_CHECK(st == NIXL_SUCCESS, "2 processes: WRITE DRAM -> VRAM: %s", nixl_status_str(st));
    ask(wfd, rfd, "check-dram-w");

    /* local VRAM with the peer's DRAM: staged through pinned buffers, both ways */
    vram_fill(v.addr, 25, tmp);
    st = xfer(ini, NIXL_WRITE, NIXL_VRAM_SEG, v.addr, NIXL_DRAM_SEG, td, BUF, 64, "T", "w3");
    GT_CHECK(st == NIXL_SUCCESS, "2 processes: WRITE VRAM -> the peer's DRAM: %s",
             nixl_status_str(st));
    ask(wfd, rfd, "check-staged");
    ask(wfd, rfd, "fill-dram");
    gt_memset(v.addr, 0, BUF);
    st = xfer(ini, NIXL_READ, NIXL_VRAM_SEG, v.addr, NIXL_DRAM_SEG, td, BUF, 7, "T", NULL);
    GT_CHECK(st == NIXL_SUCCESS, "2 processes: READ VRAM <- the peer's DRAM: %s",
             nixl_status_str(st));
    gt_dtoh(tmp, v.addr, BUF);
    bad = 0;
    for (size_t i = 0; !bad && i < (BUF / 7) * 7; i++) /* 7 pieces cover 7 * (BUF / 7) bytes */
        if (tmp[i] != pattern(i, 26))
            bad = i + 1;
    GT_CHECK(bad == 0, "2 processes: staged READ: byte %zu differs", bad - 1);
    {
        /* one request mixing the peer's DRAM and VRAM: refused, with what to do */
        nixl_desc_t l[2] = {{v.addr, 4096, 0}, {v.addr + 4096, 4096, 0}};
        nixl_desc_t r[2] = {{td, 4096, 0}, {tv, 4096, 0}};
        nixl_xfer_req_t *req = NULL;
        st = nixl_agent_create_xfer_req(ini, NIXL_WRITE, NIXL_VRAM_SEG, l, 1, NIXL_DRAM_SEG, r, 1,
                                        "T", NULL, &req);
        GT_CHECK(st == NIXL_SUCCESS, "small staged request: %s", nixl_status_str(st));
        if (req)
            nixl_agent_release_xfer_req(ini, req);
    }

    /* the peer dies while WRITEs go to its VRAM: no crash, and once a post has reported it
     * gone, none succeeds */
    close(wfd);
    int posts = 0, after = 0;
    bool gone = false;
    double deadline = gt_now() + 10;
    while (gt_now() < deadline && after < 20) {
        if (posts == 5)
            kill(pid, SIGKILL);
        st = xfer(ini, NIXL_WRITE, NIXL_VRAM_SEG, v.addr, NIXL_VRAM_SEG, tv, BUF, 64, "T", "w");
        posts++;
        if (st != NIXL_SUCCESS)
            gone = true;
        else
            GT_CHECK(!gone, "2 processes: a WRITE succeeded after one reported the peer gone");
        if (gone)
            after++;
        if (posts < 5)
            GT_CHECK(st == NIXL_SUCCESS, "2 processes: WRITE %d: %s", posts, nixl_status_str(st));
    }
    GT_CHECK(gone, "2 processes: %d WRITEs to a killed peer all succeeded", posts);
    waitpid(pid, NULL, 0);
    printf("two processes: %d posts, the peer's death seen after %d\n", posts, posts - after);

    /* this process's GPU still works */
    vram_fill(v.addr, 24, tmp);
    bad = vram_mismatch(v.addr, 24, tmp);
    GT_CHECK(bad == 0, "the GPU no longer works after the peer died");
    free(tmp);
    nixl_agent_destroy(ini);
    area_free(&v);
    area_free(&d);
    close(rfd);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "target"))
        return target_main(atoi(argv[2]), atoi(argv[3]));
    int rc = gt_init();
    if (rc != 0)
        return rc;
    setvbuf(stdout, NULL, _IONBF, 0);
    test_loopback();
    test_two_agents();
    test_two_processes("/proc/self/exe");
    printf("%s: %d failure(s)\n", argv[0], gt_failures);
    return gt_failures ? 1 : 0;
}
