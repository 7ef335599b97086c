/*
 * nb_stats.c - summaries of timing samples, and the memcpy ceiling of --compare.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "nb.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of the samples at or below it. */
static double percentile(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return sorted[rank ? rank - 1 : 0];
}

double nb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

long long nb_now_ms(void)
{
    return (long long)(nb_now_us() / 1e3);
}

void nb_dist_of(double *v, size_t n, nb_dist_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!n)
        return;
    qsort(v, n, sizeof(*v), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    out->avg = sum / (double)n;
    out->p50 = percentile(v, n, 50);
    out->p90 = percentile(v, n, 90);
    out->p99 = percentile(v, n, 99);
    out->max = v[n - 1];
}

double nb_memcpy_gbps(uint64_t block, uint64_t batch, uint64_t iters)
{
    size_t len = block * batch;
    uint8_t *src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double gbps = 0;
    if (src != MAP_FAILED && dst != MAP_FAILED) {
        memset(src, NB_FILL_INITIATOR, len);
        memset(dst, NB_FILL_TARGET, len);
        double t0 = 0;
        for (uint64_t it = 0; it < iters + iters / 10 + 1; it++) {
            if (it == iters / 10 + 1)
                t0 = nb_now_us() / 1e6; /* the first tenth warms caches and page tables */
            for (uint64_t i = 0; i < batch; i++)
                memcpy(dst + i * block, src + i * block, block);
            __asm__ volatile("" ::: "memory");
        }
        double s = nb_now_us() / 1e6 - t0;
        gbps = s > 0 ? (double)len * (double)iters / 1e9 / s : 0;
    }
    if (src != MAP_FAILED)
        munmap(src, len);
    if (dst != MAP_FAILED)
        munmap(dst, len);
    return gbps;
}
