/*
 * gds_probe.c - cuFile's batch I/O alone (no NIXL), to find which patterns of batch entries
 * cuFile completes on this machine: VRAM or DRAM, O_DIRECT or not, registered buffer or not,
 * entries per batch, handles reused or set up per batch, entries out at once. For each case it
 * WRITEs then READs `total` entries of `size` bytes and reports how many completed, how long
 * it took, or where cuFile stopped completing (no progress for 3 s). Used to choose the GDS
 * backend's defaults (docs/backends.md, "Known limits"); not a test.
 *
 *   gds_probe DIR [NAME]     DIR: a directory on a disk file system (O_DIRECT); NAME: only
 *                            the cases whose name contains it
 *   gds_probe DIR custom VRAM DIRECT SIZE PER_BATCH TOTAL WINDOW [OWN_ADDR [REG]]
 *                            one case of your own (OWN_ADDR: each entry's buffer as its own
 *                            address, offset 0; REG 0: no cuFileBufRegister)
 *
 * The cuFile types are the GDS plugin's declarations of cufile.h (gds_priv.h): the build has no
 * CUDA headers.
 */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gds_priv.h"
#include "gpu_test.h"

static const gds_cufile_t *cf; /* the plugin's loader (gds_cufile.c), compiled in */

typedef struct {
    const char *name;
    bool vram, direct, reg, fresh, own_addr;
    bool grow; /* the file starts empty and the WRITE extends it (else it is sized first) */
    size_t size, per_batch, total, window; /* window: entries out at once (multiple batches) */
} probe_t;

/* Where the main thread is, for the watchdog: a phase name and a counter of calls into cuFile
 * that returned (a hang inside cuFile shows as a phase that stops moving). */
static const char *_Atomic phase = "start";
static _Atomic unsigned long calls;
static pthread_t main_thread;

static void on_usr1(int sig)
{
    (void)sig;
    void *frames[64];
    int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, 2);
}

static void dump_kernel_stacks(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof(path), "/proc/self/task/%s/stack", e->d_name);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        buf[n] = 0;
        if (f)
            fclose(f);
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        char comm[64] = "";
        f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof(comm), f))
                comm[0] = 0;
            fclose(f);
        }
        fprintf(stderr, "-- task %s %s%s", e->d_name, comm, buf);
    }
    if (d)
        closedir(d);
}

/* No cuFile call has returned for 5 s: say where the process is, once per stuck phase. */
static void *watchdog(void *arg)
{
    (void)arg;
    unsigned long seen = 0;
    int still = 0;
    for (;;) {
        sleep(1);
        unsigned long c = atomic_load(&calls);
        if (c != seen) {
            seen = c;
            still = 0;
            continue;
        }
        if (++still == 5) {
            fprintf(stderr, "watchdog: no cuFile call returned for 5 s, in phase '%s' after "
                    "%lu calls; main thread's stack:\n", atomic_load(&phase), c);
            pthread_kill(main_thread, SIGUSR1);
            sleep(1);
            dump_kernel_stacks();
        }
    }
    return NULL;
}

#define CALL(ph, expr) (atomic_store(&phase, ph), (expr))
#define DONE() atomic_fetch_add(&calls, 1)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Run one op over the case; the number of entries that completed with every byte. */
static size_t run_op(const probe_t *p, void *fh, uintptr_t base, bool write, double *secs,
                     char *why, size_t whylen)
{
    size_t nb = (p->total + p->per_batch - 1) / p->per_batch;
    size_t max_out = p->window / p->per_batch ? p->window / p->per_batch : 1;
    void **h = calloc(nb, sizeof(*h));
    size_t *left = calloc(nb, sizeof(*left));
    gds_cu_io_params_t *ios = calloc(p->total, sizeof(*ios));
    gds_cu_io_event_t *ev = calloc(p->per_batch, sizeof(*ev));
    void *reuse[64] = {0};
    size_t nreuse = 0, done = 0, submitted = 0, out = 0;
    for (size_t i = 0; i < p->total; i++) {
        ios[i] = (gds_cu_io_params_t){.mode = GDS_CU_BATCH, .fh = fh,
                           .opcode = write ? GDS_CU_OP_WRITE : GDS_CU_OP_READ,
                           .cookie = (void *)(uintptr_t)i};
        ios[i].u.batch.buf_base = (void *)base;
        ios[i].u.batch.buf_offset = (off_t)(i * p->size);
        if (p->own_addr) {
            ios[i].u.batch.buf_base = (void *)(base + i * p->size);
            ios[i].u.batch.buf_offset = 0;
        }
        ios[i].u.batch.file_offset = (off_t)(i * p->size);
        ios[i].u.batch.size = p->size;
    }
    why[0] = 0;
    double t0 = now(), last = t0;
    while (done < p->total) {
        while (submitted < nb && out < max_out) {
            size_t b = submitted, n = p->per_batch;
            if (b * p->per_batch + n > p->total)
                n = p->total - b * p->per_batch;
            gds_cu_err_t e = {0, 0};
            if (!p->fresh && nreuse)
                h[b] = reuse[--nreuse];
            else
                e = CALL("setup", cf->batch_setup(&h[b], (unsigned)p->per_batch));
            DONE();
            if (!e.err)
                e = CALL("submit", cf->batch_submit(h[b], (unsigned)n, &ios[b * p->per_batch], 0));
            DONE();
            if (e.err) {
                snprintf(why, whylen, "batch %zu: setup/submit error %d", b, e.err);
                goto out;
            }
            left[b] = n;
            submitted++;
            out++;
        }
        bool moved = false;
        for (size_t b = 0; b < submitted; b++) {
            if (!left[b])
                continue;
            unsigned nr = (unsigned)left[b];
            struct timespec ts = {0, 1000000};
            gds_cu_err_t e = CALL("status", cf->batch_status(h[b], 0, &nr, ev, &ts));
            DONE();
            if (e.err) {
                snprintf(why, whylen, "batch %zu: status error %d", b, e.err);
                goto out;
            }
            for (unsigned k = 0; k < nr; k++) {
                if (ev[k].status == GDS_CU_COMPLETE && ev[k].ret == p->size) {
                    done++;
                } else if (ev[k].status != GDS_CU_WAITING && ev[k].status != GDS_CU_PENDING) {
                    snprintf(why, whylen, "entry %zu: status 0x%x ret %zd",
                             (size_t)(uintptr_t)ev[k].cookie, ev[k].status, (ssize_t)ev[k].ret);
                    goto out;
                } else {
                    continue;
                }
                left[b]--;
                moved = true;
            }
            if (!left[b]) {
                out--;
                if (p->fresh || nreuse == 64) {
                    CALL("destroy", cf->batch_destroy(h[b]));
                    DONE();
                } else {
                    reuse[nreuse++] = h[b];
                }
                h[b] = NULL;
            }
        }
        if (moved)
            last = now();
        else if (now() - last > 3.0) {
            snprintf(why, whylen, "stalled: %zu of %zu entries done, %zu batches submitted, "
                     "%zu out", done, p->total, submitted, out);
            break;
        }
    }
out:
    *secs = now() - t0;
    for (size_t b = 0; b < nb; b++)
        if (h[b]) {
            cf->batch_cancel(h[b]);
            cf->batch_destroy(h[b]);
        }
    while (nreuse)
        cf->batch_destroy(reuse[--nreuse]);
    free(h);
    free(left);
    free(ios);
    free(ev);
    return done;
}

static void probe(const char *dir, const probe_t *p)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/gds-probe-%d", dir, (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | (p->direct ? O_DIRECT : 0), 0644);
    size_t len = p->size * p->total;
    printf("%s ...\n", p->name);
    if (fd < 0 || (!p->grow && ftruncate(fd, (off_t)len))) {
        printf("%-28s open %s: %s\n", p->name, path, strerror(errno));
        return;
    }
    gds_cu_descr_t d = {.type = 1, .handle.fd = fd};
    void *fh = NULL;
    gds_cu_err_t e = CALL("handle register", cf->handle_register(&fh, &d));
    DONE();
    if (e.err) {
        printf("%-28s cuFileHandleRegister: %d\n", p->name, e.err);
        close(fd);
        unlink(path);
        return;
    }
    uintptr_t base;
    void *host = NULL;
    if (p->vram) {
        base = CALL("cuMemAlloc", (uintptr_t)gt_alloc(len));
        DONE();
    } else {
        if (posix_memalign(&host, 4096, len))
            abort();
        memset(host, 7, len);
        base = (uintptr_t)host;
    }
    if (p->reg && (e = CALL("buf register", cf->buf_register((void *)base, len, 0))).err)
        printf("  (cuFileBufRegister: %d)\n", e.err);
    DONE();
    char wwhy[160], rwhy[160];
    double ws, rs;
    size_t w = run_op(p, fh, base, true, &ws, wwhy, sizeof(wwhy));
    size_t r = w == p->total ? run_op(p, fh, base, false, &rs, rwhy, sizeof(rwhy)) : 0;
    if (w < p->total)
        snprintf(rwhy, sizeof(rwhy), "not run"), rs = 0;
    printf("%-28s %s %s %s %6zu x %6zu, %3zu/batch, window %4zu, %s handles: WRITE %zu/%zu "
           "%.3f s%s%s | READ %zu/%zu %.3f s%s%s\n",
           p->name, p->vram ? "VRAM" : "DRAM", p->direct ? "O_DIRECT" : "buffered",
           p->reg ? "reg" : "unreg", p->total, p->size, p->per_batch, p->window,
           p->fresh ? "fresh" : "reused", w, p->total, ws, wwhy[0] ? ": " : "", wwhy, r,
           p->total, rs, rwhy[0] ? ": " : "", rwhy);
    if (p->reg)
        CALL("buf deregister", cf->buf_deregister((void *)base));
    DONE();
    if (p->vram)
        gt_free(base);
    free(host);
    CALL("handle deregister", cf->handle_deregister(fh));
    DONE();
    close(fd);
    unlink(path);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: gds_probe DIR\n");
        return 2;
    }
    int rc = gt_init();
    if (rc)
        return rc;
    main_thread = pthread_self();
    signal(SIGUSR1, on_usr1);
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    char why[GDS_ERR_MAX];
    if (!gds_cufile_present(why, sizeof(why))) {
        printf("skip: %s\n", why);
        return GT_SKIP;
    }
    if (!(cf = gds_cufile_get(why, sizeof(why)))) {
        printf("%s\n", why);
        return 1;
    }
    if (argc >= 9 && !strcmp(argv[2], "custom")) { /* ... window [own_addr [reg]] */
        probe_t c = {.name = "custom", .vram = atoi(argv[3]), .direct = atoi(argv[4]),
                     .own_addr = argc > 9 && atoi(argv[9]), .reg = argc <= 10 || atoi(argv[10]),
                     .size = strtoull(argv[5], NULL, 0), .per_batch = strtoull(argv[6], NULL, 0),
                     .total = strtoull(argv[7], NULL, 0), .window = strtoull(argv[8], NULL, 0)};
        probe(argv[1], &c);
        return 0;
    }
    const char *only = argc > 2 ? argv[2] : NULL;
    /* name vram direct reg fresh own_addr grow size per_batch total window */
    static const probe_t cases[] = {
        {"vram-direct-4k-grow", 1, 1, 1, 0, 0, 1, 4096, 128, 4096, 128},
        {"vram-direct-4k", 1, 1, 1, 0, 0, 0, 4096, 128, 4096, 128},
        {"vram-direct-4k-fresh", 1, 1, 1, 1, 0, 0, 4096, 128, 4096, 128},
        {"vram-direct-4k-unreg", 1, 1, 0, 0, 0, 0, 4096, 128, 4096, 128},
        {"vram-direct-4k-own", 1, 1, 1, 0, 1, 0, 4096, 128, 4096, 128},
        {"vram-direct-4k-b16", 1, 1, 1, 0, 0, 0, 4096, 16, 4096, 16},
        {"vram-direct-4k-b1", 1, 1, 1, 0, 0, 0, 4096, 1, 1024, 1},
        {"vram-direct-4k-small", 1, 1, 1, 0, 0, 0, 4096, 128, 512, 128},
        {"vram-direct-64k", 1, 1, 1, 0, 0, 0, 65536, 128, 1024, 128},
        {"vram-direct-64k-b32", 1, 1, 1, 0, 0, 0, 65536, 32, 1024, 32},
        {"vram-direct-1m", 1, 1, 1, 0, 0, 0, 1 << 20, 4, 256, 4},
        {"vram-buffered-4k", 1, 0, 1, 0, 0, 0, 4096, 128, 4096, 128},
        {"vram-buffered-4k-w512", 1, 0, 1, 0, 0, 0, 4096, 128, 4096, 512},
        {"dram-direct-4k", 0, 1, 1, 0, 0, 0, 4096, 128, 4096, 128},
        {"dram-direct-4k-w512", 0, 1, 1, 0, 0, 0, 4096, 128, 4096, 512},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (!only || strstr(cases[i].name, only))
            probe(argv[1], &cases[i]);
    return 0;
}
