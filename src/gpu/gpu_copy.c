/*
 * gpu_copy.c - batches: a descriptor list cut into chunks, its table in GPU memory, moved by one
 * kernel launch per post on one of the device's streams, its end marked by an event.
 *
 * Rules (measured on an H100, docs/BENCHMARKS.md "GPU"):
 *  - a descriptor is cut into chunks, each copied by one warp, sized so that every warp of the
 *    launch gets about two (4 to 64 KiB): 4096 x 16 KiB on a whole H100 becomes 4 KiB chunks
 *    for its 8,448 warps, while on 8 blocks the descriptors stay whole;
 *  - descriptors of GPU_CE_MIN bytes or more go to the copy engine (cuMemcpyAsync) instead,
 *    where one big copy is as fast as the kernel and leaves the SMs free;
 *  - without the kernel (built without nvcc, or it did not load) and when a host side is
 *    pageable, the driver copies each descriptor (cuMemcpyAsync), in order on the same stream.
 * Launch: GPU_THREADS threads per block, at most 2 blocks per SM by default, or max_blocks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_priv.h"

#define GPU_CHUNK_MAX ((uint64_t)64 << 10)
#define GPU_CHUNK_MIN ((uint64_t)4 << 10)
#define GPU_CE_MIN ((uint64_t)64 << 20)
#define GPU_THREADS 1024u
#define GPU_BLOCKS_PER_SM 2u
#define GPU_TABLE_MIN_CLASS 12u /* 4 KiB */

struct nixl_gpu_batch {
    gpu_dev_t *dev;
    cu_stream_t stream;
    cu_event_t done;
    cu_ptr_t table; /* nchunks x nixl_gpu_seg_t in GPU memory */
    unsigned table_cls;
    size_t nchunks;
    unsigned grid;
    size_t nce;
    nixl_gpu_seg_t *ce; /* copied by the driver, one call each */
    bool posted;
};

static const char *no_kernel_why;

void gpu_kernel_load(gpu_dev_t *d)
{
    if (nixl_gpu_fatbin_len == 0) {
        no_kernel_why = "built without nvcc: the driver copies each descriptor";
        return;
    }
    cu_result_t r = gpu_cu->ModuleLoadData(&d->module, nixl_gpu_fatbin);
    if (r == CU_SUCCESS)
        r = gpu_cu->ModuleGetFunction(&d->copy_fn, d->module, "nixl_gpu_copy");
    if (r != CU_SUCCESS) {
        static char why[200];
        snprintf(why, sizeof(why), "the copy kernel did not load (%s): the driver copies each "
                 "descriptor", cu_errstr(r));
        no_kernel_why = why;
        d->copy_fn = NULL;
    }
}

const char *gpu_copy_method(void)
{
    if (nixl_gpu_fatbin_len == 0)
        return "copy engine per descriptor (built without nvcc)";
    return no_kernel_why ? no_kernel_why : "one kernel launch per descriptor list";
}

static unsigned table_class(size_t bytes)
{
    unsigned cls = GPU_TABLE_MIN_CLASS;
    while (((size_t)1 << cls) < bytes)
        cls++;
    return cls;
}

/* A table of at least `bytes` from the device's free lists, or a new one (context current). */
static cu_ptr_t table_get(gpu_dev_t *d, size_t bytes, unsigned *cls_out, cu_result_t *r)
{
    unsigned cls = table_class(bytes);
    *cls_out = cls;
    unsigned slot = cls - GPU_TABLE_MIN_CLASS;
    if (slot < GPU_TABLE_CLASSES) {
        pthread_mutex_lock(&d->lock);
        gpu_table_t *t = d->free_tables[slot];
        if (t) {
            d->free_tables[slot] = t->next;
            d->nfree[slot]--;
        }
        pthread_mutex_unlock(&d->lock);
        if (t) {
            cu_ptr_t p = t->ptr;
            free(t);
            *r = CU_SUCCESS;
            return p;
        }
    }
    cu_ptr_t p = 0;
    *r = gpu_cu->MemAlloc(&p, (size_t)1 << cls);
    return *r == CU_SUCCESS ? p : 0;
}

static void table_put(gpu_dev_t *d, cu_ptr_t p, unsigned cls)
{
    unsigned slot = cls - GPU_TABLE_MIN_CLASS;
    gpu_table_t *t = slot < GPU_TABLE_CLASSES ? malloc(sizeof(*t)) : NULL;
    if (t) {
        pthread_mutex_lock(&d->lock);
        if (d->nfree[slot] < GPU_TABLE_KEEP) {
            t->ptr = p;
            t->cls = cls;
            t->next = d->free_tables[slot];
            d->free_tables[slot] = t;
            d->nfree[slot]++;
            t = NULL;
            p = 0;
        }
        pthread_mutex_unlock(&d->lock);
        free(t);
    }
    if (p)
        gpu_cu->MemFree(p);
}

nixl_status_t gpu_batch_create(int device, const nixl_gpu_seg_t *segs, size_t count,
                               unsigned flags, unsigned max_blocks, nixl_gpu_batch_t **out,
                               nixl_gpu_err_t *err)
{
    gpu_dev_t *d = gpu_dev(device, err);
    if (!d)
        return NIXL_ERR_BACKEND;
    bool kernel = d->copy_fn && !(flags & NIXL_GPU_BATCH_PAGEABLE);
    unsigned limit = max_blocks ? max_blocks : (unsigned)d->sm_count * GPU_BLOCKS_PER_SM;
    if (limit == 0)
        limit = 1;
    uint64_t kbytes = 0;
    size_t nce = 0;
    for (size_t i = 0; i < count; i++) {
        if (!kernel || segs[i].len >= GPU_CE_MIN)
            nce++;
        else
            kbytes += segs[i].len;
    }
    uint64_t warps = (uint64_t)limit * (GPU_THREADS / 32);
    uint64_t chunk = (kbytes / (2 * warps) + 511) & ~(uint64_t)511;
    chunk = chunk < GPU_CHUNK_MIN ? GPU_CHUNK_MIN : chunk > GPU_CHUNK_MAX ? GPU_CHUNK_MAX : chunk;
    size_t nchunks = 0;
    for (size_t i = 0; i < count; i++)
        if (kernel && segs[i].len < GPU_CE_MIN)
            nchunks += (segs[i].len + chunk - 1) / chunk;
    nixl_gpu_batch_t *b = calloc(1, sizeof(*b));
    nixl_gpu_seg_t *host = nchunks ? malloc(nchunks * sizeof(*host)) : NULL;
    if (b && nce)
        b->ce = malloc(nce * sizeof(*b->ce));
    if (!b || (nchunks && !host) || (nce && !b->ce)) {
        free(host);
        if (b)
            free(b->ce);
        free(b);
        return gpu_fail(err, NIXL_ERR_UNKNOWN, "out of memory preparing %zu GPU copies", count);
    }
    size_t c = 0;
    for (size_t i = 0; i < count; i++) {
        if (!kernel || segs[i].len >= GPU_CE_MIN) {
            b->ce[b->nce++] = segs[i];
            continue;
        }
        for (uint64_t off = 0; off < segs[i].len; off += chunk) {
            uint64_t n = segs[i].len - off < chunk ? segs[i].len - off : chunk;
            host[c++] = (nixl_gpu_seg_t){segs[i].dst + off, segs[i].src + off, n};
        }
    }
    b->dev = d;
    b->nchunks = nchunks;
    size_t blocks = (nchunks + GPU_THREADS / 32 - 1) / (GPU_THREADS / 32); /* a warp each */
    b->grid = blocks < limit ? (unsigned)blocks : limit;

    cu_ctx_t prev;
    nixl_status_t st = gpu_ctx_push(d, &prev, err);
    if (st != NIXL_SUCCESS)
        goto err_free;
    cu_result_t r = gpu_cu->EventCreate(&b->done, CU_EVENT_BLOCKING | CU_EVENT_NO_TIMING);
    if (r != CU_SUCCESS) {
        st = gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: cuEventCreate: %s", device, cu_errstr(r));
        goto err_pop;
    }
    if (nchunks) {
        b->table = table_get(d, nchunks * sizeof(*host), &b->table_cls, &r);
        if (r == CU_SUCCESS)
            r = gpu_cu->MemcpyHtoD(b->table, host, nchunks * sizeof(*host));
        if (r != CU_SUCCESS) {
            st = gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: cannot place a table of %zu copies "
                          "in GPU memory: %s", device, nchunks, cu_errstr(r));
            goto err_event;
        }
    }
    pthread_mutex_lock(&d->lock);
    b->stream = d->streams[d->next_stream++ % GPU_STREAMS];
    pthread_mutex_unlock(&d->lock);
    gpu_ctx_pop(prev);
    free(host);
    *out = b;
    return NIXL_SUCCESS;

err_event:
    if (b->table)
        table_put(d, b->table, b->table_cls);
    gpu_cu->EventDestroy(b->done);
err_pop:
    gpu_ctx_pop(prev);
err_free:
    free(host);
    free(b->ce);
    free(b);
    return st;
}

nixl_status_t gpu_batch_post(nixl_gpu_batch_t *b, nixl_gpu_err_t *err)
{
    cu_ctx_t prev;
    nixl_status_t st = gpu_ctx_push(b->dev, &prev, err);
    if (st != NIXL_SUCCESS)
        return st;
    cu_result_t r = CU_SUCCESS;
    if (b->nchunks) {
        unsigned int n = (unsigned int)b->nchunks;
        void *params[] = {&b->table, &n};
        r = gpu_cu->LaunchKernel(b->dev->copy_fn, b->grid, 1, 1, GPU_THREADS, 1, 1, 0, b->stream,
                                 params, NULL);
        if (r != CU_SUCCESS)
            st = gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: launching the copy of %zu chunks: %s",
                          b->dev->ordinal, b->nchunks, cu_errstr(r));
    }
    for (size_t i = 0; st == NIXL_SUCCESS && i < b->nce; i++) {
        r = gpu_cu->MemcpyAsync(b->ce[i].dst, b->ce[i].src, b->ce[i].len, b->stream);
        if (r != CU_SUCCESS)
            st = gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: copy %zu of %zu (%llu bytes): %s",
                          b->dev->ordinal, i, b->nce, (unsigned long long)b->ce[i].len,
                          cu_errstr(r));
    }
    /* Recorded even after a failure, so that a wait covers what was queued. */
    cu_result_t re = gpu_cu->EventRecord(b->done, b->stream);
    if (st == NIXL_SUCCESS && re != CU_SUCCESS)
        st = gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: cuEventRecord: %s", b->dev->ordinal,
                      cu_errstr(re));
    b->posted = re == CU_SUCCESS;
    gpu_ctx_pop(prev);
    return st;
}

static nixl_status_t event_status(nixl_gpu_batch_t *b, cu_result_t r, nixl_gpu_err_t *err)
{
    if (r == CU_SUCCESS)
        return NIXL_SUCCESS;
    if (r == CU_ERROR_NOT_READY)
        return NIXL_IN_PROG;
    return gpu_fail(err, NIXL_ERR_BACKEND, "GPU %d: the copy failed: %s", b->dev->ordinal,
                    cu_errstr(r));
}

nixl_status_t gpu_batch_check(nixl_gpu_batch_t *b, nixl_gpu_err_t *err)
{
    if (!b->posted)
        return NIXL_SUCCESS;
    return event_status(b, gpu_cu->EventQuery(b->done), err);
}

nixl_status_t gpu_batch_wait(nixl_gpu_batch_t *b, nixl_gpu_err_t *err)
{
    if (!b->posted)
        return NIXL_SUCCESS;
    return event_status(b, gpu_cu->EventSynchronize(b->done), err);
}

void gpu_batch_destroy(nixl_gpu_batch_t *b)
{
    if (!b)
        return;
    cu_ctx_t prev;
    if (gpu_ctx_push(b->dev, &prev, NULL) == NIXL_SUCCESS) {
        if (b->posted)
            gpu_cu->EventSynchronize(b->done);
        if (b->table)
            table_put(b->dev, b->table, b->table_cls);
        gpu_cu->EventDestroy(b->done);
        gpu_ctx_pop(prev);
    }
    free(b->ce);
    free(b);
}
