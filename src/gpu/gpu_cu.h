/*
 * gpu_cu.h - the part of the CUDA driver API this library uses, declared here so that nothing
 * needs CUDA's headers to build, and loaded from libcuda.so.1 at run time (gpu_cu.c).
 *
 * Only what the driver documents as its stable ABI: opaque handles, the versioned entry points
 * (the `_v2` names the driver exports), and the numeric values of the few enums passed in.
 */
#ifndef NIXL_GPU_CU_H
#define NIXL_GPU_CU_H

#include <stddef.h>
#include <stdint.h>

typedef int cu_result_t; /* CUresult */
typedef int cu_device_t; /* CUdevice */
typedef uint64_t cu_ptr_t; /* CUdeviceptr */
typedef struct cu_ctx_st *cu_ctx_t;
typedef struct cu_stream_st *cu_stream_t;
typedef struct cu_event_st *cu_event_t;
typedef struct cu_module_st *cu_module_t;
typedef struct cu_func_st *cu_func_t;

#define CU_SUCCESS 0
#define CU_ERROR_INVALID_VALUE 1
#define CU_ERROR_ALREADY_MAPPED 208
#define CU_ERROR_NOT_READY 600

#define CU_IPC_HANDLE_LEN 64
/* A CUipcMemHandle: passed by value to cuIpcOpenMemHandle, like the driver's struct. */
typedef struct cu_ipc_handle {
    unsigned char bytes[CU_IPC_HANDLE_LEN];
} cu_ipc_handle_t;

#define CU_PTR_ATTR_MEMORY_TYPE 2
#define CU_PTR_ATTR_IS_MANAGED 8
#define CU_PTR_ATTR_DEVICE_ORDINAL 9
#define CU_PTR_ATTR_RANGE_START 11
#define CU_PTR_ATTR_RANGE_SIZE 12

#define CU_MEMTYPE_HOST 1
#define CU_MEMTYPE_DEVICE 2
#define CU_MEMTYPE_UNIFIED 4

#define CU_HOSTREG_PORTABLE 1
#define CU_HOSTREG_DEVICEMAP 2
#define CU_IPC_LAZY_PEER_ACCESS 1
#define CU_STREAM_NONBLOCKING 1
#define CU_EVENT_BLOCKING 1
#define CU_EVENT_NO_TIMING 2

#define CU_DEV_ATTR_SM_COUNT 16
#define CU_DEV_ATTR_HOST_PTR_FOR_REGISTERED 91

/* The driver's entry points, one field per function, named after it. */
typedef struct cu_api {
    cu_result_t (*Init)(unsigned flags);
    cu_result_t (*DriverGetVersion)(int *version);
    cu_result_t (*DeviceGetCount)(int *count);
    cu_result_t (*DeviceGet)(cu_device_t *dev, int ordinal);
    cu_result_t (*DeviceGetAttribute)(int *value, int attr, cu_device_t dev);
    cu_result_t (*DeviceGetName)(char *name, int len, cu_device_t dev);
    cu_result_t (*DevicePrimaryCtxRetain)(cu_ctx_t *ctx, cu_device_t dev);
    cu_result_t (*DevicePrimaryCtxRelease)(cu_device_t dev);
    cu_result_t (*CtxGetCurrent)(cu_ctx_t *ctx);
    cu_result_t (*CtxSetCurrent)(cu_ctx_t ctx);
    cu_result_t (*GetErrorName)(cu_result_t r, const char **name);
    cu_result_t (*GetErrorString)(cu_result_t r, const char **text);
    cu_result_t (*PointerGetAttributes)(unsigned n, int *attrs, void **data, cu_ptr_t ptr);
    cu_result_t (*MemAlloc)(cu_ptr_t *ptr, size_t len);
    cu_result_t (*MemFree)(cu_ptr_t ptr);
    cu_result_t (*MemAllocHost)(void **ptr, size_t len);
    cu_result_t (*MemFreeHost)(void *ptr);
    cu_result_t (*MemHostRegister)(void *ptr, size_t len, unsigned flags);
    cu_result_t (*MemHostUnregister)(void *ptr);
    cu_result_t (*MemcpyHtoD)(cu_ptr_t dst, const void *src, size_t len);
    cu_result_t (*MemcpyDtoH)(void *dst, cu_ptr_t src, size_t len);
    cu_result_t (*MemcpyAsync)(cu_ptr_t dst, cu_ptr_t src, size_t len, cu_stream_t s);
    cu_result_t (*MemsetD8)(cu_ptr_t dst, unsigned char v, size_t len);
    cu_result_t (*IpcGetMemHandle)(cu_ipc_handle_t *handle, cu_ptr_t ptr);
    cu_result_t (*IpcOpenMemHandle)(cu_ptr_t *ptr, cu_ipc_handle_t handle, unsigned flags);
    cu_result_t (*IpcCloseMemHandle)(cu_ptr_t ptr);
    cu_result_t (*StreamCreate)(cu_stream_t *s, unsigned flags);
    cu_result_t (*StreamDestroy)(cu_stream_t s);
    cu_result_t (*StreamSynchronize)(cu_stream_t s);
    cu_result_t (*EventCreate)(cu_event_t *e, unsigned flags);
    cu_result_t (*EventDestroy)(cu_event_t e);
    cu_result_t (*EventRecord)(cu_event_t e, cu_stream_t s);
    cu_result_t (*EventQuery)(cu_event_t e);
    cu_result_t (*EventSynchronize)(cu_event_t e);
    cu_result_t (*ModuleLoadData)(cu_module_t *m, const void *image);
    cu_result_t (*ModuleUnload)(cu_module_t m);
    cu_result_t (*ModuleGetFunction)(cu_func_t *f, cu_module_t m, const char *name);
    cu_result_t (*LaunchKernel)(cu_func_t f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                unsigned by, unsigned bz, unsigned shmem, cu_stream_t s,
                                void **params, void **extra);
} cu_api_t;

/* Open the driver once per process. NULL when there is none; *why then says what was missing
 * (a static string or one kept for the process). */
const cu_api_t *cu_load(const char **why);
/* "CUDA_ERROR_X (text)" for a driver result, in a static per-thread buffer. */
const char *cu_errstr(cu_result_t r);

#endif
