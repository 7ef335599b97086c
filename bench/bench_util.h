/* bench_util.h - what the benchmark programs share: failing on an error status with its
 * reason, wall-clock time, medians. Public API only. */
#ifndef NIXL_BENCH_UTIL_H
#define NIXL_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nixl.h"

#define CHECK(call)                                                                          \
    do {                                                                                     \
        nixl_status_t st_ = (call);                                                          \
        if (st_ < 0) {                                                                       \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,               \
                    nixl_status_str(st_), nixl_last_error());                                \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static inline double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v. */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), dbl_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- a target process for two-process benchmarks ---- */

/* The parent's handle: the child's pid, its stdin (closed to end it), and the listen port and
 * buffer address it reported. */
typedef struct bench_target {
    pid_t pid;
    int to_fd;
    int port;
    uintptr_t addr;
} bench_target_t;

/* Run this program again as `argv` (its first line of output: "port address"); -1 when it
 * does not report. */
static inline int bench_target_start(char *const argv[], bench_target_t *t)
{
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    t->pid = fork();
    if (t->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    t->to_fd = in[1];
    FILE *f = fdopen(out[0], "r");
    unsigned long long addr;
    int ok = f && fscanf(f, "%d %llu", &t->port, &addr) == 2;
    if (f)
        fclose(f);
    t->addr = (uintptr_t)addr;
    return ok ? 0 : -1;
}

static inline void bench_target_stop(bench_target_t *t)
{
    close(t->to_fd);
    int status;
    waitpid(t->pid, &status, 0);
}

/* In the target: register `len` bytes at `buf`, report "port address", wait until the parent
 * closes our stdin. */
static inline void bench_target_serve(nixl_agent_t *a, void *buf, size_t len)
{
    nixl_reg_desc_t r = {.addr = (uintptr_t)buf, .len = len};
    CHECK(nixl_agent_register_mem(a, NIXL_DRAM_SEG, &r, 1, NULL));
    int port;
    CHECK(nixl_agent_get_listen_port(a, &port));
    printf("%d %llu\n", port, (unsigned long long)(uintptr_t)buf);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
}

#endif
