/*
 * gpu_priv.h - the internals of src/gpu, shared by its files.
 *
 * Devices are set up on first use (primary context retained, SM count, a pool of streams, the
 * copy kernel loaded) and kept for the life of the process, like the driver itself. Every call
 * into the driver runs with the device's primary context current (the one PyTorch and the CUDA
 * runtime use, so their pointers are ours) and restores the caller's context afterwards.
 */
#ifndef NIXL_GPU_PRIV_H
#define NIXL_GPU_PRIV_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#include "gpu.h"
#include "gpu_cu.h"

#define GPU_DEV_MAX 64
#define GPU_STREAMS 4u          /* per device; batches take them in turn */
#define GPU_TABLE_CLASSES 24u   /* device tables kept for reuse: power-of-two sizes */
#define GPU_TABLE_KEEP 8u       /* per size class */

typedef struct gpu_table {
    struct gpu_table *next;
    cu_ptr_t ptr;
    unsigned cls;
} gpu_table_t;

typedef struct gpu_dev {
    bool ready;
    int ordinal;
    cu_device_t dev;
    cu_ctx_t ctx;
    int sm_count;
    cu_stream_t streams[GPU_STREAMS];
    unsigned next_stream;
    cu_module_t module;
    cu_func_t copy_fn; /* NULL: no kernel (built without nvcc, or it failed to load) */
    pthread_mutex_t lock; /* tables and next_stream */
    gpu_table_t *free_tables[GPU_TABLE_CLASSES];
    unsigned nfree[GPU_TABLE_CLASSES];
} gpu_dev_t;

extern const cu_api_t *gpu_cu;

/* Fill err (if given) and return st. */
nixl_status_t gpu_fail(nixl_gpu_err_t *err, nixl_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Load the driver; NOT_SUPPORTED with the reason when there is none. */
nixl_status_t gpu_need_driver(nixl_gpu_err_t *err);
/* The device, set up on first use; NULL with err filled. */
gpu_dev_t *gpu_dev(int ordinal, nixl_gpu_err_t *err);
/* Make the device's context current; returns the caller's, for gpu_ctx_pop. */
nixl_status_t gpu_ctx_push(gpu_dev_t *d, cu_ctx_t *prev, nixl_gpu_err_t *err);
void gpu_ctx_pop(cu_ctx_t prev);

/* gpu_mem.c */
int gpu_device_count(void);
nixl_status_t gpu_ptr_query(uintptr_t addr, size_t len, nixl_gpu_ptr_t *out,
                            nixl_gpu_err_t *err);
nixl_status_t gpu_ipc_export(uintptr_t addr, uint8_t handle[NIXL_GPU_IPC_LEN], uintptr_t *base,
                             nixl_gpu_err_t *err);
nixl_status_t gpu_ipc_open(const uint8_t handle[NIXL_GPU_IPC_LEN], int device, uintptr_t *base,
                           nixl_gpu_err_t *err);
void gpu_ipc_close(uintptr_t base);

/* gpu_copy.c */
nixl_status_t gpu_batch_create(int device, const nixl_gpu_seg_t *segs, size_t count,
                               unsigned flags, unsigned max_blocks, nixl_gpu_batch_t **out,
                               nixl_gpu_err_t *err);
nixl_status_t gpu_batch_post(nixl_gpu_batch_t *b, nixl_gpu_err_t *err);
nixl_status_t gpu_batch_check(nixl_gpu_batch_t *b, nixl_gpu_err_t *err);
nixl_status_t gpu_batch_wait(nixl_gpu_batch_t *b, nixl_gpu_err_t *err);
void gpu_batch_destroy(nixl_gpu_batch_t *b);
const char *gpu_copy_method(void);
/* gpu_stage.c */
nixl_status_t gpu_stage_create(int device, bool to_far, const nixl_gpu_seg_t *segs, size_t count,
                               size_t round, unsigned flags, unsigned max_blocks,
                               nixl_gpu_stage_t **out, nixl_gpu_err_t *err);
size_t gpu_stage_rounds(const nixl_gpu_stage_t *st);
const nixl_gpu_seg_t *gpu_stage_pieces(const nixl_gpu_stage_t *st, size_t k, size_t *n);
nixl_status_t gpu_stage_post(nixl_gpu_stage_t *st, size_t k, nixl_gpu_err_t *err);
nixl_status_t gpu_stage_wait(nixl_gpu_stage_t *st, size_t k, nixl_gpu_err_t *err);
void gpu_stage_destroy(nixl_gpu_stage_t *st);
/* Load the copy kernel into the device's context (context current). */
void gpu_kernel_load(gpu_dev_t *d);

/* The embedded kernel image (gpu_kernel.cu built by nvcc; empty without nvcc). */
extern const unsigned char nixl_gpu_fatbin[];
extern const size_t nixl_gpu_fatbin_len;

#endif
