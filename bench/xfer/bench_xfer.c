/*
 * bench_xfer.c - DRAM -> DRAM transfers between two processes through each backend, next to
 * memcpy measured in the same run.
 *
 *   nixl_bench_xfer [--repeat N] [--only SHM|SHM-memfd|UCX-tcp|UCX-shm]
 *
 * For each transport (SHM; SHM with the target's buffer on a memfd, which SHM copies through a
 * mapping of that file instead of cross-memory attach; UCX over TCP; UCX over shared memory)
 * the benchmark starts a target process, exchanges metadata with it through the side channel, and times one prepared
 * request per shape (4 KiB x 1024, 64 KiB x 128, 1 MiB x 16, 64 MiB x 1) for READ and WRITE:
 * each sample is one post-to-completion, the figure is the median of N samples (default 21)
 * in decimal GB/s. memcpy copies the same descriptors between two buffers of this process.
 * With NIXL_SHM_COPY_THREADS=N (N > 1: SHM splits requests of 4 MiB and more across N
 * threads) a second baseline, memcpy by N threads (the byte range cut into N equal slices, as
 * SHM cuts it), is the yardstick of issue 18 ("the same number of threads").
 * A transport whose plugin is not installed is reported as such.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "nixl.h"

#define BUF_BYTES (64u << 20)
#define NUM_SHAPES 4
#define NUM_TRANSPORTS 4

static const struct {
    size_t size, count;
    const char *label;
} shapes[NUM_SHAPES] = {
    {4096, 1024, "4 KiB x 1024"},
    {65536, 128, "64 KiB x 128"},
    {1 << 20, 16, "1 MiB x 16"},
    {64u << 20, 1, "64 MiB x 1"},
};

static const struct {
    const char *label;
    const char *backend;
    const char *ucx_tls; /* NULL: leave UCX_TLS alone */
    const char *err_mode; /* ucx_error_handling_mode, NULL: the default ("peer") */
    bool memfd;           /* the target's buffer is a memfd (SHM maps it) */
} transports[NUM_TRANSPORTS] = {
    {"SHM", "SHM", NULL, NULL, false},
    {"SHM memfd", "SHM", NULL, NULL, true},
    {"UCX tcp", "UCX", "tcp", NULL},
    /* UCX 1.13's shared-memory transports cannot detect a dead peer, so UCX refuses them in
     * the default error mode "peer". */
    {"UCX shm", "UCX", "sm,self", "none"},
};

static int repeat = 21;
static const char *only; /* measure one transport (its label, '-' for ' ') */

static uint8_t *buffer(uint8_t fill)
{
    uint8_t *p = aligned_alloc(4096, BUF_BYTES);
    if (!p) {
        perror("aligned_alloc");
        exit(1);
    }
    memset(p, fill, BUF_BYTES);
    return p;
}

static nixl_agent_t *agent_with(const char *name, const char *backend, const char *err_mode,
                                bool listen, nixl_status_t *why)
{
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = listen;
    cfg.listen_port = 0;
    nixl_agent_t *a;
    CHECK(nixl_agent_create(name, &cfg, &a));
    nixl_backend_t *be;
    nixl_param_t p = {"ucx_error_handling_mode", err_mode};
    nixl_status_t st = nixl_agent_create_backend(a, backend, err_mode ? &p : NULL, err_mode ? 1 : 0,
                                                 &be);
    if (st != NIXL_SUCCESS) {
        *why = st;
        nixl_agent_destroy(a);
        return NULL;
    }
    return a;
}

/* The target's buffer on a memfd (MAP_SHARED), filled like buffer(). */
static uint8_t *memfd_buffer(uint8_t fill)
{
    int fd = memfd_create("nixl-bench-target", MFD_CLOEXEC);
    void *p = fd >= 0 && ftruncate(fd, BUF_BYTES) == 0
                  ? mmap(NULL, BUF_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                  : MAP_FAILED;
    if (p == MAP_FAILED) {
        perror("memfd buffer");
        exit(1);
    }
    close(fd);
    memset(p, fill, BUF_BYTES);
    return p;
}

/* ---- the target process: listen, register, report "port addr", wait for EOF ---- */

static int target_main(const char *backend, const char *err_mode, bool memfd)
{
    nixl_status_t st;
    nixl_agent_t *a = agent_with("bench-target", backend, err_mode, true, &st);
    if (!a) {
        fprintf(stderr, "target: %s: %s\n", nixl_status_str(st), nixl_last_error());
        return 1;
    }
    uint8_t *buf = memfd ? memfd_buffer(0x5a) : buffer(0x5a);
    bench_target_serve(a, buf, BUF_BYTES);
    nixl_agent_destroy(a);
    if (memfd)
        munmap(buf, BUF_BYTES);
    else
        free(buf);
    return 0;
}

/* ---- the initiator ---- */

static int target_start(const char *backend, const char *err_mode, bool memfd,
                        bench_target_t *t)
{
    char *argv[] = {"nixl_bench_xfer", "--target", (char *)backend,
                    (char *)(err_mode ? err_mode : ""), memfd ? "memfd" : "malloc", NULL};
    return bench_target_start(argv, t);
}

/* Median GB/s of one prepared request. */
static double time_req(nixl_agent_t *a, nixl_xfer_req_t *req, size_t bytes)
{
    double *gbps = calloc((size_t)repeat, sizeof(double));
    for (int i = -3; i < repeat; i++) {
        double t0 = now_ns();
        nixl_status_t st = nixl_agent_post_xfer_req(a, req, NULL);
        while (st == NIXL_IN_PROG)
            st = nixl_agent_get_xfer_status(a, req);
        CHECK(st);
        if (i >= 0)
            gbps[i] = (double)bytes / (now_ns() - t0);
    }
    double m = median(gbps, repeat);
    free(gbps);
    return m;
}

static void descs_of(uintptr_t base, size_t size, size_t count, nixl_desc_t *d, bool reverse)
{
    for (size_t i = 0; i < count; i++) {
        /* Remote descriptors in reverse order, so a request is never one contiguous copy. */
        size_t slot = reverse ? count - 1 - i : i;
        d[i] = (nixl_desc_t){.addr = base + slot * size, .len = size};
    }
}

/* results[shape][op]: GB/s, or a negative value = not available. */
static int run_transport(int ti, double results[NUM_SHAPES][2], char *note, size_t note_len)
{
    /* NIXL_BENCH_UCX_TLS overrides the transports of both UCX rows (for experiments). */
    const char *tls_override = getenv("NIXL_BENCH_UCX_TLS");
    if (transports[ti].ucx_tls)
        setenv("UCX_TLS", tls_override ? tls_override : transports[ti].ucx_tls, 1);
    else
        unsetenv("UCX_TLS");
    nixl_status_t st;
    nixl_agent_t *a = agent_with("bench-initiator", transports[ti].backend,
                                 transports[ti].err_mode, false, &st);
    if (!a) {
        snprintf(note, note_len, "%s: %s", nixl_status_str(st), nixl_last_error());
        return -1;
    }
    uint8_t *buf = buffer(0xa5);
    nixl_reg_desc_t r = {.addr = (uintptr_t)buf, .len = BUF_BYTES};
    CHECK(nixl_agent_register_mem(a, NIXL_DRAM_SEG, &r, 1, NULL));
    bench_target_t t;
    if (target_start(transports[ti].backend, transports[ti].err_mode, transports[ti].memfd,
                     &t) != 0) {
        snprintf(note, note_len, "the target did not start");
        nixl_agent_destroy(a);
        free(buf);
        return -1;
    }
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.ip_addr = "127.0.0.1";
    o.port = t.port;
    CHECK(nixl_agent_fetch_remote_md(a, "bench-target", &o));
    while ((st = nixl_agent_get_fetch_status(a, "bench-target")) == NIXL_IN_PROG)
        usleep(1000);
    CHECK(st);
    nixl_desc_t *ld = calloc(1024, sizeof(*ld)), *rd = calloc(1024, sizeof(*rd));
    for (int s = 0; s < NUM_SHAPES; s++) {
        descs_of((uintptr_t)buf, shapes[s].size, shapes[s].count, ld, false);
        descs_of(t.addr, shapes[s].size, shapes[s].count, rd, true);
        for (int op = 0; op < 2; op++) {
            nixl_xfer_req_t *req;
            CHECK(nixl_agent_create_xfer_req(a, op ? NIXL_WRITE : NIXL_READ, NIXL_DRAM_SEG, ld,
                                             shapes[s].count, NIXL_DRAM_SEG, rd,
                                             shapes[s].count, "bench-target", NULL, &req));
            results[s][op] = time_req(a, req, shapes[s].size * shapes[s].count);
            CHECK(nixl_agent_release_xfer_req(a, req));
        }
    }
    free(ld);
    free(rd);
    nixl_agent_destroy(a);
    bench_target_stop(&t);
    free(buf);
    return 0;
}

static double memcpy_gbps(int s)
{
    uint8_t *src = buffer(1), *dst = buffer(2);
    double *gbps = calloc((size_t)repeat, sizeof(double));
    size_t size = shapes[s].size, count = shapes[s].count;
    for (int i = -3; i < repeat; i++) {
        double t0 = now_ns();
        for (size_t k = 0; k < count; k++)
            memcpy(dst + (count - 1 - k) * size, src + k * size, size);
        __asm__ volatile("" ::: "memory");
        if (i >= 0)
            gbps[i] = (double)(size * count) / (now_ns() - t0);
    }
    double m = median(gbps, repeat);
    free(gbps);
    free(src);
    free(dst);
    return m;
}

/* memcpy by several threads: a pool that copies one slice each per round (two barriers). */
typedef struct mt_pool {
    pthread_barrier_t start, end;
    int nthreads, s;
    uint8_t *src, *dst;
    bool quit;
} mt_pool_t;

typedef struct mt_arg {
    mt_pool_t *p;
    int idx;
} mt_arg_t;

/* Slice idx of the descriptors' byte range: each descriptor's part of it, copied. */
static void mt_slice(const mt_pool_t *p, int idx)
{
    size_t size = shapes[p->s].size, count = shapes[p->s].count, total = size * count;
    size_t a = total * (size_t)idx / (size_t)p->nthreads;
    size_t b = total * (size_t)(idx + 1) / (size_t)p->nthreads;
    for (size_t k = a / size; k < count && k * size < b; k++) {
        size_t lo = k * size > a ? k * size : a, hi = (k + 1) * size < b ? (k + 1) * size : b;
        memcpy(p->dst + (count - 1 - k) * size + (lo - k * size), p->src + lo, hi - lo);
    }
}

static void *mt_thread(void *arg)
{
    mt_arg_t *m = arg;
    for (;;) {
        pthread_barrier_wait(&m->p->start);
        if (m->p->quit)
            return NULL;
        mt_slice(m->p, m->idx);
        pthread_barrier_wait(&m->p->end);
    }
}

static double memcpy_mt_gbps(int s, int nthreads)
{
    mt_pool_t p = {.nthreads = nthreads, .s = s, .src = buffer(1), .dst = buffer(2)};
    pthread_t th[64];
    mt_arg_t args[64];
    pthread_barrier_init(&p.start, NULL, (unsigned)nthreads);
    pthread_barrier_init(&p.end, NULL, (unsigned)nthreads);
    for (int i = 1; i < nthreads; i++) {
        args[i] = (mt_arg_t){&p, i};
        pthread_create(&th[i], NULL, mt_thread, &args[i]);
    }
    double *gbps = calloc((size_t)repeat, sizeof(double));
    for (int i = -3; i < repeat; i++) {
        double t0 = now_ns();
        pthread_barrier_wait(&p.start);
        mt_slice(&p, 0);
        pthread_barrier_wait(&p.end);
        if (i >= 0)
            gbps[i] = (double)(shapes[s].size * shapes[s].count) / (now_ns() - t0);
    }
    p.quit = true;
    pthread_barrier_wait(&p.start);
    for (int i = 1; i < nthreads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&p.start);
    pthread_barrier_destroy(&p.end);
    double m = median(gbps, repeat);
    free(gbps);
    free(p.src);
    free(p.dst);
    return m;
}

int main(int argc, char **argv)
{
    setenv("NIXL_AUTO_SHM", "0", 0); /* each row names its backend: no SHM beside UCX */
    if (argc == 5 && strcmp(argv[1], "--target") == 0)
        return target_main(argv[2], *argv[3] ? argv[3] : NULL, strcmp(argv[4], "memfd") == 0);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = atoi(argv[++i]);
            if (repeat < 1) {
                fprintf(stderr, "--repeat must be at least 1\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--repeat N] [--only SHM|SHM-memfd|UCX-tcp|UCX-shm]\n",
                    argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    double res[NUM_TRANSPORTS][NUM_SHAPES][2];
    char notes[NUM_TRANSPORTS][512] = {{0}};
    bool ok[NUM_TRANSPORTS];
    for (int t = 0; t < NUM_TRANSPORTS; t++) {
        char label[32];
        snprintf(label, sizeof(label), "%s", transports[t].label);
        for (char *c = label; *c; c++)
            *c = *c == ' ' ? '-' : *c;
        if (only && strcmp(only, label) != 0) {
            ok[t] = false;
            snprintf(notes[t], sizeof(notes[t]), "not selected (--only %s)", only);
            continue;
        }
        ok[t] = run_transport(t, res[t], notes[t], sizeof(notes[t])) == 0;
    }
    double mc[NUM_SHAPES], mcn[NUM_SHAPES];
    const char *ct = getenv("NIXL_SHM_COPY_THREADS");
    int nthreads = ct ? atoi(ct) : 1;
    if (nthreads > 64)
        nthreads = 64;
    for (int s = 0; s < NUM_SHAPES; s++) {
        mc[s] = memcpy_gbps(s);
        mcn[s] = nthreads > 1 ? memcpy_mt_gbps(s, nthreads) : 0;
    }

    printf("DRAM -> DRAM between two processes, median of %d posts, GB/s (ratio to memcpy)\n\n",
           repeat);
    printf("| shape | op | memcpy |");
    if (nthreads > 1)
        printf(" memcpy x%d |", nthreads);
    for (int t = 0; t < NUM_TRANSPORTS; t++)
        printf(" %s |", transports[t].label);
    printf("\n|---|---|---|%s", nthreads > 1 ? "---|" : "");
    for (int t = 0; t < NUM_TRANSPORTS; t++)
        printf("---|");
    printf("\n");
    for (int s = 0; s < NUM_SHAPES; s++)
        for (int op = 0; op < 2; op++) {
            printf("| %s | %s | %.2f |", shapes[s].label, op ? "WRITE" : "READ", mc[s]);
            if (nthreads > 1)
                printf(" %.2f |", mcn[s]);
            for (int t = 0; t < NUM_TRANSPORTS; t++) {
                if (ok[t])
                    printf(" %.2f (%.0f%%) |", res[t][s][op], 100 * res[t][s][op] / mc[s]);
                else
                    printf(" n/a |");
            }
            printf("\n");
        }
    for (int t = 0; t < NUM_TRANSPORTS; t++)
        if (!ok[t])
            printf("\n%s not measured: %s\n", transports[t].label, notes[t]);
    return 0;
}
