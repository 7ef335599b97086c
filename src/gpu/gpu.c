/*
 * gpu.c - the driver, the devices and their contexts, the services table, and the check of
 * VRAM registrations.
 */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "gpu_priv.h"

const cu_api_t *gpu_cu;
static gpu_dev_t devs[GPU_DEV_MAX];
static pthread_mutex_t devs_lock = PTHREAD_MUTEX_INITIALIZER;

nixl_status_t gpu_fail(nixl_gpu_err_t *err, nixl_status_t st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return st;
}

bool nixl_gpu_available(const char **why)
{
    gpu_cu = cu_load(why);
    return gpu_cu != NULL;
}

nixl_status_t gpu_need_driver(nixl_gpu_err_t *err)
{
    const char *why;
    if (nixl_gpu_available(&why))
        return NIXL_SUCCESS;
    return gpu_fail(err, NIXL_ERR_NOT_SUPPORTED, "GPU memory needs the CUDA driver: %s", why);
}

gpu_dev_t *gpu_dev(int ordinal, nixl_gpu_err_t *err)
{
    if (gpu_need_driver(err) != NIXL_SUCCESS)
        return NULL;
    int n = gpu_device_count();
    if (ordinal < 0 || ordinal >= n || ordinal >= GPU_DEV_MAX) {
        gpu_fail(err, NIXL_ERR_INVALID_PARAM, "there is no GPU %d (this process sees %d)",
                 ordinal, n);
        return NULL;
    }
    gpu_dev_t *d = &devs[ordinal];
    if (__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE))
        return d;
    pthread_mutex_lock(&devs_lock);
    if (d->ready) {
        pthread_mutex_unlock(&devs_lock);
        return d;
    }
    const cu_api_t *cu = gpu_cu;
    cu_result_t r = cu->DeviceGet(&d->dev, ordinal);
    if (r == CU_SUCCESS)
        r = cu->DevicePrimaryCtxRetain(&d->ctx, d->dev);
    if (r != CU_SUCCESS) {
        pthread_mutex_unlock(&devs_lock);
        gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: cannot use its primary context: %s", ordinal,
                 cu_errstr(r));
        return NULL;
    }
    cu->DeviceGetAttribute(&d->sm_count, CU_DEV_ATTR_SM_COUNT, d->dev);
    cu_ctx_t prev = NULL;
    cu->CtxGetCurrent(&prev);
    cu->CtxSetCurrent(d->ctx);
    unsigned made = 0;
    for (; made < GPU_STREAMS; made++) {
        r = cu->StreamCreate(&d->streams[made], CU_STREAM_NONBLOCKING);
        if (r != CU_SUCCESS)
            break;
    }
    if (made == GPU_STREAMS)
        gpu_kernel_load(d);
    cu->CtxSetCurrent(prev);
    if (made < GPU_STREAMS) {
        for (unsigned i = 0; i < made; i++)
            cu->StreamDestroy(d->streams[i]);
        cu->DevicePrimaryCtxRelease(d->dev);
        pthread_mutex_unlock(&devs_lock);
        gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: cannot create streams: %s", ordinal,
                 cu_errstr(r));
        return NULL;
    }
    pthread_mutex_init(&d->lock, NULL);
    d->ordinal = ordinal;
    __atomic_store_n(&d->ready, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&devs_lock);
    return d;
}

nixl_status_t gpu_ctx_push(gpu_dev_t *d, cu_ctx_t *prev, nixl_gpu_err_t *err)
{
    *prev = NULL;
    gpu_cu->CtxGetCurrent(prev);
    if (*prev == d->ctx)
        return NIXL_SUCCESS;
    cu_result_t r = gpu_cu->CtxSetCurrent(d->ctx);
    if (r != CU_SUCCESS)
        return gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: cannot make its context current: %s",
                        d->ordinal, cu_errstr(r));
    return NIXL_SUCCESS;
}

void gpu_ctx_pop(cu_ctx_t prev)
{
    cu_ctx_t cur = NULL;
    gpu_cu->CtxGetCurrent(&cur);
    if (cur != prev)
        gpu_cu->CtxSetCurrent(prev);
}

static const nixl_gpu_ops_t ops = {
    .struct_size = sizeof(nixl_gpu_ops_t),
    .device_count = gpu_device_count,
    .ptr_query = gpu_ptr_query,
    .ipc_export = gpu_ipc_export,
    .ipc_open = gpu_ipc_open,
    .ipc_close = gpu_ipc_close,
    .batch_create = gpu_batch_create,
    .batch_post = gpu_batch_post,
    .batch_check = gpu_batch_check,
    .batch_wait = gpu_batch_wait,
    .batch_destroy = gpu_batch_destroy,
    .copy_method = gpu_copy_method,
    .stage_create = gpu_stage_create,
    .stage_rounds = gpu_stage_rounds,
    .stage_pieces = gpu_stage_pieces,
    .stage_post = gpu_stage_post,
    .stage_wait = gpu_stage_wait,
    .stage_destroy = gpu_stage_destroy,
};

const nixl_gpu_ops_t *nixl_gpu_ops(void)
{
    return &ops;
}

nixl_status_t nixl_gpu_check_vram(const nixl_reg_desc_t *descs, size_t count)
{
    nixl_gpu_err_t err;
    if (count && gpu_need_driver(&err) != NIXL_SUCCESS)
        return nixl_err(NIXL_ERR_NOT_SUPPORTED, "register_mem: VRAM descriptor 0 and all: %s",
                        err.msg);
    for (size_t i = 0; i < count; i++) {
        nixl_gpu_ptr_t p = {0};
        nixl_status_t st = gpu_ptr_query(descs[i].addr, descs[i].len, &p, &err);
        if (st != NIXL_SUCCESS)
            return nixl_err(st, "register_mem: VRAM descriptor %zu (0x%llx, %zu bytes): %s", i,
                            (unsigned long long)descs[i].addr, descs[i].len, err.msg);
        if (p.kind != NIXL_GPU_MEM_DEVICE && p.kind != NIXL_GPU_MEM_MANAGED)
            return nixl_err(NIXL_ERR_INVALID_PARAM,
                            "register_mem: VRAM descriptor %zu (0x%llx, %zu bytes) is %s host "
                            "memory, not GPU memory: register it as DRAM",
                            i, (unsigned long long)descs[i].addr, descs[i].len,
                            p.kind == NIXL_GPU_MEM_PINNED ? "pinned" : "ordinary");
        if ((uint64_t)p.device != descs[i].dev_id)
            return nixl_err(NIXL_ERR_INVALID_PARAM,
                            "register_mem: VRAM descriptor %zu (0x%llx) is memory of GPU %d, "
                            "but its devId says GPU %llu",
                            i, (unsigned long long)descs[i].addr, p.device,
                            (unsigned long long)descs[i].dev_id);
    }
    return NIXL_SUCCESS;
}
