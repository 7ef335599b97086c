/*
 * gpu_mem.c - what an address is (pageable, pinned, GPU), and CUDA IPC: exporting a GPU
 * allocation and mapping a peer's, counted so that a peer's allocation holding many regions is
 * mapped once.
 */
#include <stdlib.h>
#include <string.h>

#include "gpu_priv.h"

int gpu_device_count(void)
{
    static int count = -1;
    int n = __atomic_load_n(&count, __ATOMIC_RELAXED);
    if (n >= 0)
        return n;
    if (!nixl_gpu_available(NULL))
        return 0;
    n = 0;
    if (gpu_cu->DeviceGetCount(&n) != CU_SUCCESS)
        n = 0;
    __atomic_store_n(&count, n, __ATOMIC_RELAXED);
    return n;
}

nixl_status_t gpu_ptr_query(uintptr_t addr, size_t len, nixl_gpu_ptr_t *out,
                            nixl_gpu_err_t *err)
{
    nixl_status_t st = gpu_need_driver(err);
    if (st != NIXL_SUCCESS)
        return st;
    unsigned memtype = 0, managed = 0;
    int ordinal = -1;
    cu_ptr_t start = 0;
    size_t size = 0;
    int attrs[] = {CU_PTR_ATTR_MEMORY_TYPE, CU_PTR_ATTR_IS_MANAGED, CU_PTR_ATTR_DEVICE_ORDINAL,
                   CU_PTR_ATTR_RANGE_START, CU_PTR_ATTR_RANGE_SIZE};
    void *data[] = {&memtype, &managed, &ordinal, &start, &size};
    /* Unknown (pageable) addresses succeed with memory type 0. */
    cu_result_t r = gpu_cu->PointerGetAttributes(5, attrs, data, (cu_ptr_t)addr);
    if (r != CU_SUCCESS)
        return gpu_fail(err, NIXL_ERR_BACKEND, "cannot ask the driver about 0x%llx: %s",
                        (unsigned long long)addr, cu_errstr(r));
    *out = (nixl_gpu_ptr_t){.kind = NIXL_GPU_MEM_PAGEABLE, .device = -1};
    if (memtype == 0)
        return NIXL_SUCCESS;
    out->base = (uintptr_t)start;
    out->size = size;
    if (managed) {
        out->kind = NIXL_GPU_MEM_MANAGED;
        out->device = ordinal;
    } else if (memtype == CU_MEMTYPE_DEVICE) {
        out->kind = NIXL_GPU_MEM_DEVICE;
        out->device = ordinal;
    } else {
        out->kind = NIXL_GPU_MEM_PINNED;
    }
    if (size && (addr < start || len > size || addr - start > size - len))
        return gpu_fail(err, NIXL_ERR_INVALID_PARAM,
                        "[0x%llx, +%zu) runs past the end of its allocation [0x%llx, +%zu)",
                        (unsigned long long)addr, len, (unsigned long long)start, size);
    return NIXL_SUCCESS;
}

nixl_status_t gpu_ipc_export(uintptr_t addr, uint8_t handle[NIXL_GPU_IPC_LEN], uintptr_t *base,
                             nixl_gpu_err_t *err)
{
    nixl_gpu_ptr_t p = {0};
    nixl_status_t st = gpu_ptr_query(addr, 1, &p, err);
    if (st != NIXL_SUCCESS)
        return st;
    if (p.kind != NIXL_GPU_MEM_DEVICE)
        return gpu_fail(err, NIXL_ERR_NOT_SUPPORTED,
                        "0x%llx is not plain GPU memory: only cuMemAlloc/cudaMalloc allocations "
                        "can be shared with another process",
                        (unsigned long long)addr);
    gpu_dev_t *d = gpu_dev(p.device, err);
    if (!d)
        return NIXL_ERR_BACKEND;
    cu_ctx_t prev;
    if ((st = gpu_ctx_push(d, &prev, err)) != NIXL_SUCCESS)
        return st;
    cu_ipc_handle_t h;
    cu_result_t r = gpu_cu->IpcGetMemHandle(&h, (cu_ptr_t)p.base);
    gpu_ctx_pop(prev);
    if (r != CU_SUCCESS)
        return gpu_fail(err, NIXL_ERR_NOT_SUPPORTED,
                        "GPU allocation at 0x%llx cannot be shared with another process "
                        "(cuIpcGetMemHandle: %s); memory from cuMemCreate or a memory pool "
                        "needs a fabric handle, which this version does not export",
                        (unsigned long long)p.base, cu_errstr(r));
    memcpy(handle, h.bytes, NIXL_GPU_IPC_LEN);
    *base = p.base;
    return NIXL_SUCCESS;
}

/* Mappings of peers' allocations: the driver refuses to map one handle twice in a process. */
typedef struct ipc_map {
    struct ipc_map *next;
    uint8_t handle[NIXL_GPU_IPC_LEN];
    int device;
    uintptr_t base;
    size_t refs;
} ipc_map_t;

static ipc_map_t *maps;
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;

nixl_status_t gpu_ipc_open(const uint8_t handle[NIXL_GPU_IPC_LEN], int device, uintptr_t *base,
                           nixl_gpu_err_t *err)
{
    gpu_dev_t *d = gpu_dev(device, err);
    if (!d)
        return NIXL_ERR_BACKEND;
    pthread_mutex_lock(&maps_lock);
    for (ipc_map_t *m = maps; m; m = m->next)
        if (m->device == device && memcmp(m->handle, handle, NIXL_GPU_IPC_LEN) == 0) {
            m->refs++;
            *base = m->base;
            pthread_mutex_unlock(&maps_lock);
            return NIXL_SUCCESS;
        }
    ipc_map_t *m = calloc(1, sizeof(*m));
    if (!m) {
        pthread_mutex_unlock(&maps_lock);
        return gpu_fail(err, NIXL_ERR_UNKNOWN, "out of memory mapping a peer's GPU memory");
    }
    cu_ctx_t prev;
    nixl_status_t st = gpu_ctx_push(d, &prev, err);
    cu_result_t r = CU_SUCCESS;
    cu_ptr_t ptr = 0;
    if (st == NIXL_SUCCESS) {
        cu_ipc_handle_t h;
        memcpy(h.bytes, handle, NIXL_GPU_IPC_LEN);
        r = gpu_cu->IpcOpenMemHandle(&ptr, h, CU_IPC_LAZY_PEER_ACCESS);
        gpu_ctx_pop(prev);
        if (r != CU_SUCCESS)
            st = gpu_fail(err, NIXL_ERR_BACKEND,
                          "cannot map the peer's GPU memory on GPU %d (cuIpcOpenMemHandle: %s); "
                          "the peer must be on this host and its GPU reachable from GPU %d",
                          device, cu_errstr(r), device);
    }
    if (st != NIXL_SUCCESS) {
        pthread_mutex_unlock(&maps_lock);
        free(m);
        return st;
    }
    memcpy(m->handle, handle, NIXL_GPU_IPC_LEN);
    m->device = device;
    m->base = (uintptr_t)ptr;
    m->refs = 1;
    m->next = maps;
    maps = m;
    *base = m->base;
    pthread_mutex_unlock(&maps_lock);
    return NIXL_SUCCESS;
}

void gpu_ipc_close(uintptr_t base)
{
    pthread_mutex_lock(&maps_lock);
    for (ipc_map_t **pp = &maps; *pp; pp = &(*pp)->next) {
        ipc_map_t *m = *pp;
        if (m->base != base)
            continue;
        if (--m->refs == 0) {
            *pp = m->next;
            gpu_dev_t *d = gpu_dev(m->device, NULL);
            cu_ctx_t prev;
            if (d && gpu_ctx_push(d, &prev, NULL) == NIXL_SUCCESS) {
                gpu_cu->IpcCloseMemHandle((cu_ptr_t)m->base);
                gpu_ctx_pop(prev);
            }
            free(m);
        }
        break;
    }
    pthread_mutex_unlock(&maps_lock);
}
