/*
 * nb_cuda.c - the few CUDA driver calls nixlbench needs for VRAM buffers, looked up in
 * libcuda.so.1 at run time. The types are declared here, as the driver's ABI defines them,
 * so that no CUDA header is needed to build: CUresult is an int, CUdevice an int,
 * CUdeviceptr a 64-bit integer and CUcontext an opaque pointer.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb.h"
#include "nb_cuda.h"

typedef int cu_result_t;
typedef int cu_device_t;
typedef uint64_t cu_ptr_t;
typedef struct cu_ctx_st *cu_ctx_t;

#define CU_SUCCESS 0
#define HOST_PIECE (4u << 20) /* bytes copied to the host at a time when checking */

static struct {
    cu_result_t (*init)(unsigned flags);
    cu_result_t (*device_get_count)(int *count);
    cu_result_t (*device_get)(cu_device_t *dev, int ordinal);
    cu_result_t (*primary_ctx_retain)(cu_ctx_t *ctx, cu_device_t dev);
    cu_result_t (*ctx_set_current)(cu_ctx_t ctx);
    cu_result_t (*ctx_synchronize)(void);
    cu_result_t (*mem_alloc)(cu_ptr_t *ptr, size_t len);
    cu_result_t (*mem_free)(cu_ptr_t ptr);
    cu_result_t (*memcpy_dtoh)(void *dst, cu_ptr_t src, size_t len);
    cu_result_t (*memset_d8)(cu_ptr_t dst, unsigned char value, size_t len);
    cu_result_t (*error_name)(cu_result_t r, const char **name);
    cu_result_t (*error_string)(cu_result_t r, const char **text);
} cu;

/* The context of the one GPU this process uses (the reference: one device per process). */
static cu_ctx_t ctx;
static int ctx_dev = -1;

#define SYM(field, name) {(void **)&cu.field, name}
static const struct {
    void **slot;
    const char *name;
} syms[] = {
    SYM(init, "cuInit"),
    SYM(device_get_count, "cuDeviceGetCount"),
    SYM(device_get, "cuDeviceGet"),
    SYM(primary_ctx_retain, "cuDevicePrimaryCtxRetain"),
    SYM(ctx_set_current, "cuCtxSetCurrent"),
    SYM(ctx_synchronize, "cuCtxSynchronize"),
    SYM(mem_alloc, "cuMemAlloc_v2"),
    SYM(mem_free, "cuMemFree_v2"),
    SYM(memcpy_dtoh, "cuMemcpyDtoH_v2"),
    SYM(memset_d8, "cuMemsetD8_v2"),
    SYM(error_name, "cuGetErrorName"),
    SYM(error_string, "cuGetErrorString"),
};

/* "CUDA_ERROR_X (text)": what the driver calls its result. */
static const char *cu_why(cu_result_t r, char *buf, size_t len)
{
    const char *name = NULL, *text = NULL;
    if (cu.error_name(r, &name) != CU_SUCCESS || !name)
        name = "unknown CUDA error";
    if (cu.error_string(r, &text) != CU_SUCCESS || !text)
        text = "no description";
    snprintf(buf, len, "%s %d (%s)", name, r, text);
    return buf;
}

static int cu_fail(const char *call, cu_result_t r)
{
    char buf[256];
    return nb_fail("%s failed: %s", call, cu_why(r, buf, sizeof(buf)));
}

static int load(const char *what)
{
    /* Never closed: the driver keeps threads and state for the life of the process. */
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return nb_fail("%s needs the CUDA driver and a GPU, and this host has no CUDA driver "
                       "(%s); use DRAM segments here",
                       what, dlerror());
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot)
            return nb_fail("%s: the CUDA driver (libcuda.so.1) lacks %s: it is too old", what,
                           syms[i].name);
    }
    return 0;
}

int nb_cuda_open(int dev, const char *what)
{
    if (ctx && dev == ctx_dev)
        return 0;
    if (ctx)
        return nb_fail("%s: this process already uses GPU %d, not %d", what, ctx_dev, dev);
    if (!cu.init && load(what))
        return NB_EXIT_FAIL;
    char buf[256];
    cu_result_t r = cu.init(0);
    if (r != CU_SUCCESS)
        return nb_fail("%s needs a GPU: the CUDA driver cannot start (cuInit: %s)", what,
                       cu_why(r, buf, sizeof(buf)));
    int count = 0;
    if ((r = cu.device_get_count(&count)) != CU_SUCCESS)
        return cu_fail("cuDeviceGetCount", r);
    if (dev >= count)
        return nb_fail("%s wants GPU %d, and this process sees %d GPU%s (CUDA_VISIBLE_DEVICES "
                       "chooses them)",
                       what, dev, count, count == 1 ? "" : "s");
    cu_device_t d;
    cu_ctx_t c;
    if ((r = cu.device_get(&d, dev)) != CU_SUCCESS)
        return cu_fail("cuDeviceGet", r);
    /* The primary context is the one the library and any CUDA runtime user share. */
    if ((r = cu.primary_ctx_retain(&c, d)) != CU_SUCCESS)
        return cu_fail("cuDevicePrimaryCtxRetain", r);
    ctx = c;
    ctx_dev = dev;
    return 0;
}

static int make_current(void)
{
    cu_result_t r = cu.ctx_set_current(ctx);
    return r == CU_SUCCESS ? 0 : cu_fail("cuCtxSetCurrent", r);
}

int nb_cuda_alloc(size_t len, uintptr_t *ptr)
{
    if (make_current())
        return NB_EXIT_FAIL;
    cu_ptr_t p;
    cu_result_t r = cu.mem_alloc(&p, len ? len : 1);
    if (r != CU_SUCCESS) {
        char buf[256];
        return nb_fail("cannot allocate %zu bytes on GPU %d: %s", len, ctx_dev,
                       cu_why(r, buf, sizeof(buf)));
    }
    *ptr = (uintptr_t)p;
    return 0;
}

void nb_cuda_free(uintptr_t ptr)
{
    if (ctx && make_current() == 0)
        cu.mem_free((cu_ptr_t)ptr); /* at exit: a failure changes nothing */
}

int nb_cuda_fill(uintptr_t ptr, size_t len, uint8_t byte)
{
    if (!len)
        return 0;
    if (make_current())
        return NB_EXIT_FAIL;
    cu_result_t r = cu.memset_d8((cu_ptr_t)ptr, byte, len);
    if (r != CU_SUCCESS)
        return cu_fail("cuMemsetD8", r);
    /* A memset of device memory returns before it is done, and the backends copy on streams
     * of their own that do not wait for the default one. */
    if ((r = cu.ctx_synchronize()) != CU_SUCCESS)
        return cu_fail("cuCtxSynchronize", r);
    return 0;
}

int nb_cuda_find_other(uintptr_t base, size_t off, size_t len, uint8_t fill, long long *bad,
                       uint8_t *seen)
{
    *bad = -1;
    if (!len)
        return 0;
    if (make_current())
        return NB_EXIT_FAIL;
    size_t piece = len < HOST_PIECE ? len : HOST_PIECE;
    uint8_t *host = malloc(piece);
    if (!host)
        return nb_fail("out of memory");
    int rc = 0;
    for (size_t at = off; at < off + len && *bad < 0;) {
        size_t n = off + len - at < piece ? off + len - at : piece;
        /* Synchronous for pageable host memory: the bytes are here when it returns. */
        cu_result_t r = cu.memcpy_dtoh(host, (cu_ptr_t)(base + at), n);
        if (r != CU_SUCCESS) {
            rc = cu_fail("cuMemcpyDtoH", r);
            break;
        }
        long long i = nb_check_fill(host, 0, n, fill);
        if (i >= 0) {
            *bad = (long long)at + i;
            *seen = host[i];
        }
        at += n;
    }
    free(host);
    return rc;
}
