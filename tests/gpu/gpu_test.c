/* gpu_test.c - the CUDA driver for the GPU tests (see gpu_test.h). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu_test.h"

int gt_failures;

typedef int cu_result_t; /* CUresult: 0 is success */
static struct {
    cu_result_t (*init)(unsigned);
    cu_result_t (*count)(int *);
    cu_result_t (*device_get)(int *, int);
    cu_result_t (*primary_retain)(void **, int);
    cu_result_t (*ctx_set)(void *);
    cu_result_t (*alloc)(uint64_t *, size_t);
    cu_result_t (*free)(uint64_t);
    cu_result_t (*alloc_host)(void **, size_t);
    cu_result_t (*free_host)(void *);
    cu_result_t (*htod)(uint64_t, const void *, size_t);
    cu_result_t (*dtoh)(void *, uint64_t, size_t);
    cu_result_t (*memset)(uint64_t, unsigned char, size_t);
    cu_result_t (*stream_create)(void **, unsigned);
    cu_result_t (*memcpy_async)(uint64_t, uint64_t, size_t, void *);
    cu_result_t (*stream_sync)(void *);
} cu;
static void *stream;
static void must(cu_result_t r, const char *what);

int gt_init(void)
{
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    if (!h) {
        printf("SKIP: no CUDA driver (%s)\n", dlerror());
        return GT_SKIP;
    }
    const char *names[] = {"cuInit", "cuDeviceGetCount", "cuDeviceGet",
                           "cuDevicePrimaryCtxRetain", "cuCtxSetCurrent", "cuMemAlloc_v2",
                           "cuMemFree_v2", "cuMemAllocHost_v2", "cuMemFreeHost",
                           "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuMemsetD8_v2",
                           "cuStreamCreate", "cuMemcpyAsync", "cuStreamSynchronize"};
    void **fns = (void **)&cu;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!(fns[i] = dlsym(h, names[i]))) {
            printf("SKIP: the CUDA driver lacks %s\n", names[i]);
            return GT_SKIP;
        }
    int n = 0, dev;
    void *ctx;
    if (cu.init(0) != 0 || cu.count(&n) != 0 || n == 0) {
        printf("SKIP: no GPU\n");
        return GT_SKIP;
    }
    if (cu.device_get(&dev, 0) != 0 || cu.primary_retain(&ctx, dev) != 0 || cu.ctx_set(ctx) != 0) {
        printf("SKIP: cannot use GPU 0\n");
        return GT_SKIP;
    }
    must(cu.stream_create(&stream, 1 /* non-blocking */), "cuStreamCreate");
    return 0;
}

int gt_device_count(void)
{
    int n = 0;
    return cu.count && cu.count(&n) == 0 ? n : 0;
}

static void must(cu_result_t r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "%s failed: CUDA error %d\n", what, r);
        abort();
    }
}

uint64_t gt_alloc(size_t len)
{
    uint64_t p;
    must(cu.alloc(&p, len), "cuMemAlloc");
    return p;
}

void gt_free(uint64_t ptr)
{
    must(cu.free(ptr), "cuMemFree");
}

void *gt_alloc_pinned(size_t len)
{
    void *p;
    must(cu.alloc_host(&p, len), "cuMemAllocHost");
    return p;
}

void gt_free_pinned(void *p)
{
    must(cu.free_host(p), "cuMemFreeHost");
}

void gt_htod(uint64_t dst, const void *src, size_t len)
{
    must(cu.htod(dst, src, len), "cuMemcpyHtoD");
}

void gt_dtoh(void *dst, uint64_t src, size_t len)
{
    must(cu.dtoh(dst, src, len), "cuMemcpyDtoH");
}

void gt_memset(uint64_t dst, uint8_t v, size_t len)
{
    must(cu.memset(dst, v, len), "cuMemsetD8");
}

double gt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

nixl_status_t gt_wait(nixl_agent_t *a, nixl_xfer_req_t *req, nixl_status_t st)
{
    double deadline = gt_now() + 60;
    while (st == NIXL_IN_PROG && gt_now() < deadline)
        st = nixl_agent_get_xfer_status(a, req);
    return st == NIXL_IN_PROG ? NIXL_ERR_UNKNOWN : st;
}

void gt_copy_async(uint64_t dst, uint64_t src, size_t len)
{
    must(cu.memcpy_async(dst, src, len, stream), "cuMemcpyAsync");
}

void gt_copy_wait(void)
{
    must(cu.stream_sync(stream), "cuStreamSynchronize");
}

void gt_fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + seed + (i >> 12));
}

size_t gt_pieces(nixl_desc_t *a, nixl_desc_t *b, uintptr_t abase, uintptr_t bbase, size_t len,
                 size_t n)
{
    size_t off = 3, step = len / n, total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t plen = step - 8 - i % 13;
        a[i] = (nixl_desc_t){abase + off, plen, 0};
        b[i] = (nixl_desc_t){bbase + off, plen, 0};
        off += step;
        total += plen;
    }
    return total;
}

void gt_expect(uint8_t *want, const uint8_t *before, const uint8_t *src, size_t len, size_t n)
{
    nixl_desc_t *a = malloc(n * sizeof(*a)), *b = malloc(n * sizeof(*b));
    if (!a || !b)
        abort();
    memcpy(want, before, len);
    gt_pieces(a, b, 0, 0, len, n);
    for (size_t i = 0; i < n; i++)
        memcpy(want + a[i].addr, src + a[i].addr, a[i].len);
    free(a);
    free(b);
}
