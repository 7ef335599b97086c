/*
 * gpu_bench.c - the GPU figures of docs/BENCHMARKS.md, each beside its baselines measured in
 * the same run: the driver's copy per descriptor (cuMemcpyAsync on one stream, then one wait)
 * and one large cuMemcpy of the same bytes.
 *
 * Through the library (SHM backend, a prepared request posted again and again, post to
 * completion): 4096 x 16 KiB VRAM->VRAM loopback (default thread blocks, and 16 = 8 SMs),
 * VRAM->pinned DRAM, pinned DRAM->VRAM, the same list between two processes (CUDA IPC), one
 * 256 MiB block each way, and the time post_xfer_req takes for a prepared 4096-descriptor
 * request. Medians of the repetitions, with the lowest and highest.
 *
 *   gpu_bench [repetitions (default 20)]
 * Exit 77 without a GPU.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu_test.h"

#define NDESC 4096u
#define DLEN (16u << 10)
#define BIG ((size_t)256 << 20)
#define MAXREP 200

static int reps = 20;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Print "median [min-max]" GB/s of `bytes` moved in each time of t[]. */
static void row(const char *what, size_t bytes, double *t, int n, const char *base_what,
                double *bt, int bn)
{
    qsort(t, (size_t)n, sizeof(*t), cmp_double);
    double med = bytes / t[n / 2] / 1e9, lo = bytes / t[n - 1] / 1e9, hi = bytes / t[0] / 1e9;
    printf("| %s | %.1f [%.1f-%.1f] |", what, med, lo, hi);
    if (bt) {
        qsort(bt, (size_t)bn, sizeof(*bt), cmp_double);
        double bmed = bytes / bt[bn / 2] / 1e9;
        printf(" %s %.1f | %.0f %% |", base_what, bmed, 100.0 * med / bmed);
    } else {
        printf(" | |");
    }
    printf("\n");
}

static nixl_agent_t *agent(const char *name, const char *max_blocks)
{
    nixl_agent_t *a = NULL;
    nixl_backend_t *be = NULL;
    nixl_param_t p = {"gpu_max_blocks", max_blocks};
    if (nixl_agent_create(name, NULL, &a) != NIXL_SUCCESS ||
        nixl_agent_create_backend(a, "SHM", &p, 1, &be) != NIXL_SUCCESS) {
        fprintf(stderr, "agent: %s\n", nixl_last_error());
        exit(1);
    }
    return a;
}

static void reg(nixl_agent_t *a, nixl_mem_t t, uintptr_t addr, size_t len)
{
    nixl_reg_desc_t d = {.addr = addr, .len = len, .dev_id = 0};
    if (nixl_agent_register_mem(a, t, &d, 1, NULL) != NIXL_SUCCESS) {
        fprintf(stderr, "register: %s\n", nixl_last_error());
        exit(1);
    }
}

static nixl_xfer_req_t *prep(nixl_agent_t *a, nixl_mem_t lt, uintptr_t la, nixl_mem_t rt,
                             uintptr_t ra, size_t n, size_t len, const char *peer)
{
    nixl_desc_t *l = malloc(n * sizeof(*l)), *r = malloc(n * sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        l[i] = (nixl_desc_t){la + i * len, len, 0};
        r[i] = (nixl_desc_t){ra + i * len, len, 0};
    }
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.skip_desc_merge = true; /* keep the 4096 descriptors: this measures lists */
    nixl_xfer_req_t *req = NULL;
    if (nixl_agent_create_xfer_req(a, NIXL_WRITE, lt, l, n, rt, r, n, peer, &opt, &req) !=
        NIXL_SUCCESS) {
        fprintf(stderr, "create_xfer_req: %s\n", nixl_last_error());
        exit(1);
    }
    free(l);
    free(r);
    return req;
}

/* Post to completion, `reps` times after 3 warm-ups; times in t[]. */
static void run(nixl_agent_t *a, nixl_xfer_req_t *req, double *t)
{
    for (int i = -3; i < reps; i++) {
        double t0 = gt_now();
        nixl_status_t st = gt_wait(a, req, nixl_agent_post_xfer_req(a, req, NULL));
        double dt = gt_now() - t0;
        if (st != NIXL_SUCCESS) {
            fprintf(stderr, "transfer: %s: %s\n", nixl_status_str(st), nixl_last_error());
            exit(1);
        }
        if (i >= 0)
            t[i] = dt;
    }
}

static void per_desc(uint64_t dst, uint64_t src, size_t n, size_t len, double *t)
{
    for (int i = -3; i < reps; i++) {
        double t0 = gt_now();
        for (size_t k = 0; k < n; k++)
            gt_copy_async(dst + k * len, src + k * len, len);
        gt_copy_wait();
        if (i >= 0)
            t[i] = gt_now() - t0;
    }
}

static void one_copy(uint64_t dst, uint64_t src, size_t len, double *t)
{
    for (int i = -3; i < reps; i++) {
        double t0 = gt_now();
        gt_copy_async(dst, src, len); /* cuMemcpy returns before a GPU-to-GPU copy is done */
        gt_copy_wait();
        if (i >= 0)
            t[i] = gt_now() - t0;
    }
}

static void bench_list(const char *what, nixl_agent_t *a, nixl_mem_t lt, uintptr_t la,
                       nixl_mem_t rt, uintptr_t ra, const char *peer, bool baselines)
{
    double t[MAXREP], b1[MAXREP], b2[MAXREP];
    nixl_xfer_req_t *req = prep(a, lt, la, rt, ra, NDESC, DLEN, peer);
    run(a, req, t);
    nixl_agent_release_xfer_req(a, req);
    if (!baselines) {
        row(what, (size_t)NDESC * DLEN, t, reps, NULL, NULL, 0);
        return;
    }
    per_desc(ra, la, NDESC, DLEN, b1);
    one_copy(ra, la, (size_t)NDESC * DLEN, b2);
    row(what, (size_t)NDESC * DLEN, t, reps, "cuMemcpyAsync x4096:", b1, reps);
    qsort(b2, (size_t)reps, sizeof(*b2), cmp_double);
    printf("|   (one cuMemcpy of the same %u MiB) | %.1f | | |\n", NDESC * DLEN >> 20,
           (double)NDESC * DLEN / b2[reps / 2] / 1e9);
}

static void bench_big(const char *what, nixl_agent_t *a, nixl_mem_t lt, uintptr_t la,
                      nixl_mem_t rt, uintptr_t ra)
{
    double t[MAXREP], b[MAXREP];
    nixl_xfer_req_t *req = prep(a, lt, la, rt, ra, 1, BIG, "A");
    run(a, req, t);
    nixl_agent_release_xfer_req(a, req);
    one_copy(ra, la, BIG, b);
    row(what, BIG, t, reps, "cuMemcpy:", b, reps);
}

static void bench_post_time(nixl_agent_t *a, uintptr_t la, uintptr_t ra)
{
    double t[MAXREP];
    nixl_xfer_req_t *req = prep(a, NIXL_VRAM_SEG, la, NIXL_VRAM_SEG, ra, NDESC, DLEN, "A");
    for (int i = -3; i < reps; i++) {
        double t0 = gt_now();
        nixl_status_t st = nixl_agent_post_xfer_req(a, req, NULL);
        double dt = gt_now() - t0;
        gt_wait(a, req, st);
        if (i >= 0)
            t[i] = dt;
    }
    nixl_agent_release_xfer_req(a, req);
    qsort(t, (size_t)reps, sizeof(*t), cmp_double);
    printf("| post_xfer_req of a prepared 4096-descriptor request (us) | %.1f [%.1f-%.1f] | | |\n",
           t[reps / 2] * 1e6, t[0] * 1e6, t[reps - 1] * 1e6);
}

/* ---- two processes ---- */

static int target(int rfd, int wfd)
{
    if (gt_init() != 0)
        return 1;
    nixl_agent_t *t = agent("T", "0");
    uint64_t v = gt_alloc((size_t)NDESC * DLEN);
    reg(t, NIXL_VRAM_SEG, v, (size_t)NDESC * DLEN);
    void *dram = malloc((size_t)NDESC * DLEN);
    memset(dram, 0, (size_t)NDESC * DLEN);
    reg(t, NIXL_DRAM_SEG, (uintptr_t)dram, (size_t)NDESC * DLEN);
    void *blob;
    size_t len;
    nixl_agent_get_local_md(t, &blob, &len);
    uint64_t hdr[3] = {len, v, (uintptr_t)dram};
    if (write(wfd, hdr, sizeof(hdr)) != sizeof(hdr) || write(wfd, blob, len) != (ssize_t)len)
        return 1;
    nixl_free(blob);
    char c;
    while (read(rfd, &c, 1) > 0) /* until the initiator is done */
        ;
    nixl_agent_destroy(t);
    return 0;
}

static void bench_two_processes(nixl_agent_t *a, uintptr_t la)
{
    int to_t[2], from_t[2];
    if (pipe(to_t) || pipe(from_t))
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        char r[16], w[16];
        snprintf(r, sizeof(r), "%d", to_t[0]);
        snprintf(w, sizeof(w), "%d", from_t[1]);
        close(to_t[1]);
        close(from_t[0]);
        execl("/proc/self/exe", "gpu_bench", "target", r, w, (char *)NULL);
        _exit(127);
    }
    close(to_t[0]);
    close(from_t[1]);
    uint64_t hdr[3];
    if (read(from_t[0], hdr, sizeof(hdr)) != sizeof(hdr))
        exit(1);
    char *blob = malloc(hdr[0]);
    for (size_t got = 0; got < hdr[0];) {
        ssize_t r = read(from_t[0], blob + got, hdr[0] - got);
        if (r <= 0)
            exit(1);
        got += (size_t)r;
    }
    char *name = NULL;
    if (nixl_agent_load_remote_md(a, blob, hdr[0], &name) != NIXL_SUCCESS) {
        fprintf(stderr, "load: %s\n", nixl_last_error());
        exit(1);
    }
    bench_list("4096 x 16 KiB VRAM -> VRAM, two processes", a, NIXL_VRAM_SEG, la,
               NIXL_VRAM_SEG, hdr[1], "T", false);
    bench_list("4096 x 16 KiB VRAM -> the peer's DRAM (staged), two processes", a,
               NIXL_VRAM_SEG, la, NIXL_DRAM_SEG, hdr[2], "T", false);
    nixl_agent_invalidate_remote_md(a, "T");
    nixl_free(name);
    free(blob);
    close(to_t[1]);
    waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "target"))
        return target(atoi(argv[2]), atoi(argv[3]));
    if (argc > 1)
        reps = atoi(argv[1]);
    if (reps < 3 || reps > MAXREP)
        reps = 20;
    int rc = gt_init();
    if (rc)
        return rc;
    size_t list = (size_t)NDESC * DLEN;
    uint64_t v1 = gt_alloc(BIG), v2 = gt_alloc(BIG);
    uint8_t *pinned = gt_alloc_pinned(BIG);
    gt_memset(v1, 1, BIG);
    gt_memset(v2, 2, BIG);
    memset(pinned, 3, BIG);

    nixl_agent_t *a = agent("A", "0"), *a16 = agent("A16", "16"), *a8 = agent("A8", "8");
    nixl_agent_t *all[] = {a, a16, a8};
    for (int i = 0; i < 3; i++) {
        reg(all[i], NIXL_VRAM_SEG, v1, BIG);
        reg(all[i], NIXL_VRAM_SEG, v2, BIG);
        reg(all[i], NIXL_DRAM_SEG, (uintptr_t)pinned, BIG);
    }
    printf("| figure (post to completion) | GB/s median [min-max] | baseline, same run | "
           "ratio |\n|---|---|---|---|\n");
    bench_list("4096 x 16 KiB VRAM -> VRAM loopback", a, NIXL_VRAM_SEG, v1, NIXL_VRAM_SEG, v2,
               "A", true);
    bench_list("4096 x 16 KiB VRAM -> VRAM loopback, gpu_max_blocks=16", a16, NIXL_VRAM_SEG,
               v1, NIXL_VRAM_SEG, v2, "A16", false);
    bench_list("4096 x 16 KiB VRAM -> VRAM loopback, gpu_max_blocks=8 (8 SMs)", a8,
               NIXL_VRAM_SEG, v1, NIXL_VRAM_SEG, v2, "A8", false);
    bench_list("4096 x 16 KiB VRAM -> pinned DRAM", a, NIXL_VRAM_SEG, v1, NIXL_DRAM_SEG,
               (uintptr_t)pinned, "A", true);
    bench_list("4096 x 16 KiB pinned DRAM -> VRAM", a, NIXL_DRAM_SEG, (uintptr_t)pinned,
               NIXL_VRAM_SEG, v1, "A", true);
    bench_big("256 MiB VRAM -> VRAM", a, NIXL_VRAM_SEG, v1, NIXL_VRAM_SEG, v2);
    bench_big("256 MiB VRAM -> pinned DRAM", a, NIXL_VRAM_SEG, v1, NIXL_DRAM_SEG,
              (uintptr_t)pinned);
    bench_big("256 MiB pinned DRAM -> VRAM", a, NIXL_DRAM_SEG, (uintptr_t)pinned,
              NIXL_VRAM_SEG, v1);
    bench_post_time(a, v1, v2 + list);
    {
        /* UCX without CUDA support: VRAM staged through pinned buffers, loopback over UCX */
        nixl_agent_t *u = NULL;
        nixl_backend_t *be = NULL;
        uint8_t *host = malloc(list);
        if (nixl_agent_create("U", NULL, &u) == NIXL_SUCCESS && host &&
            nixl_agent_create_backend(u, "UCX", NULL, 0, &be) == NIXL_SUCCESS) {
            memset(host, 0, list);
            reg(u, NIXL_VRAM_SEG, v1, BIG);
            reg(u, NIXL_DRAM_SEG, (uintptr_t)host, list);
            bench_list("4096 x 16 KiB VRAM -> DRAM, UCX loopback (staged if UCX lacks CUDA)", u,
                       NIXL_VRAM_SEG, v1, NIXL_DRAM_SEG, (uintptr_t)host, "U", false);
        } else {
            printf("| UCX: not measured (%s) | | | |\n", nixl_last_error());
        }
        nixl_agent_destroy(u);
        free(host);
    }
    nixl_agent_destroy(a16);
    nixl_agent_destroy(a8);
    bench_two_processes(a, v1);
    nixl_agent_destroy(a);
    gt_free(v1);
    gt_free(v2);
    gt_free_pinned(pinned);
    return 0;
}
