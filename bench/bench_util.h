/* bench_util.h - what the benchmark programs share: failing on an error status with its
 * reason, wall-clock time, medians. Public API only. */
#ifndef NIXL_BENCH_UTIL_H
#define NIXL_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

#endif
