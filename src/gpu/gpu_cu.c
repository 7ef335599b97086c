/*
 * gpu_cu.c - open the CUDA driver (libcuda.so.1) at run time: the library has no build or link
 * dependency on CUDA, and a host without a driver runs everything but GPU memory.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gpu_cu.h"

static cu_api_t api;
static const cu_api_t *loaded;
static const char *load_why = "the CUDA driver was not looked for";
static char why_buf[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Each field of cu_api_t and the exported name that fills it, in the order of the struct. */
#define ENTRY(field, sym) {offsetof(cu_api_t, field), sym}
static const struct {
    size_t off;
    const char *sym;
} entries[] = {
    ENTRY(Init, "cuInit"),
    ENTRY(DriverGetVersion, "cuDriverGetVersion"),
    ENTRY(DeviceGetCount, "cuDeviceGetCount"),
    ENTRY(DeviceGet, "cuDeviceGet"),
    ENTRY(DeviceGetAttribute, "cuDeviceGetAttribute"),
    ENTRY(DeviceGetName, "cuDeviceGetName"),
    ENTRY(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    ENTRY(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    ENTRY(CtxGetCurrent, "cuCtxGetCurrent"),
    ENTRY(CtxSetCurrent, "cuCtxSetCurrent"),
    ENTRY(GetErrorName, "cuGetErrorName"),
    ENTRY(GetErrorString, "cuGetErrorString"),
    ENTRY(PointerGetAttributes, "cuPointerGetAttributes"),
    ENTRY(MemAlloc, "cuMemAlloc_v2"),
    ENTRY(MemFree, "cuMemFree_v2"),
    ENTRY(MemAllocHost, "cuMemAllocHost_v2"),
    ENTRY(MemFreeHost, "cuMemFreeHost"),
    ENTRY(MemHostRegister, "cuMemHostRegister_v2"),
    ENTRY(MemHostUnregister, "cuMemHostUnregister"),
    ENTRY(MemcpyHtoD, "cuMemcpyHtoD_v2"),
    ENTRY(MemcpyDtoH, "cuMemcpyDtoH_v2"),
    ENTRY(MemcpyAsync, "cuMemcpyAsync"),
    ENTRY(MemsetD8, "cuMemsetD8_v2"),
    ENTRY(IpcGetMemHandle, "cuIpcGetMemHandle"),
    ENTRY(IpcOpenMemHandle, "cuIpcOpenMemHandle_v2"),
    ENTRY(IpcCloseMemHandle, "cuIpcCloseMemHandle"),
    ENTRY(StreamCreate, "cuStreamCreate"),
    ENTRY(StreamDestroy, "cuStreamDestroy_v2"),
    ENTRY(StreamSynchronize, "cuStreamSynchronize"),
    ENTRY(EventCreate, "cuEventCreate"),
    ENTRY(EventDestroy, "cuEventDestroy_v2"),
    ENTRY(EventRecord, "cuEventRecord"),
    ENTRY(EventQuery, "cuEventQuery"),
    ENTRY(EventSynchronize, "cuEventSynchronize"),
    ENTRY(ModuleLoadData, "cuModuleLoadData"),
    ENTRY(ModuleUnload, "cuModuleUnload"),
    ENTRY(ModuleGetFunction, "cuModuleGetFunction"),
    ENTRY(LaunchKernel, "cuLaunchKernel"),
};

static void load(void)
{
    /* Never unloaded: the driver keeps threads and state for the life of the process. */
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why_buf, sizeof(why_buf), "no CUDA driver: %s", dlerror());
        load_why = why_buf;
        return;
    }
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        void *fn = dlsym(h, entries[i].sym);
        if (!fn) {
            snprintf(why_buf, sizeof(why_buf),
                     "the CUDA driver (libcuda.so.1) lacks %s: it is too old", entries[i].sym);
            load_why = why_buf;
            return;
        }
        memcpy((char *)&api + entries[i].off, &fn, sizeof(fn));
    }
    cu_result_t r = api.Init(0);
    if (r != CU_SUCCESS) {
        const char *name = NULL;
        api.GetErrorName(r, &name);
        snprintf(why_buf, sizeof(why_buf), "the CUDA driver failed to start: cuInit: %s (%d)",
                 name ? name : "?", r);
        load_why = why_buf;
        return;
    }
    loaded = &api;
    load_why = NULL;
}

const cu_api_t *cu_load(const char **why)
{
    pthread_once(&once, load);
    if (why)
        *why = load_why;
    return loaded;
}

const char *cu_errstr(cu_result_t r)
{
    static _Thread_local char buf[160];
    const char *name = NULL, *text = NULL;
    if (loaded) {
        loaded->GetErrorName(r, &name);
        loaded->GetErrorString(r, &text);
    }
    snprintf(buf, sizeof(buf), "%s (%s)", name ? name : "CUDA error", text ? text : "?");
    return buf;
}
