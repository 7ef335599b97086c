/*
 * gds_cufile.c - cuFile opened at run time: libcufile.so.0 (the runtime package's name), then
 * libcufile.so (a development install), its symbols, and its driver started once per process.
 *
 * The driver is never closed: GDS and GDS_MT engines of several agents in one process share
 * the one cuFile driver, and a close by one would pull it from under the others; cuFile tears
 * itself down at exit. cuFile reads its configuration itself: /etc/cufile.json, or the file
 * named by CUFILE_ENV_PATH_JSON, where allow_compat_mode (default true) lets it run without
 * the nvidia-fs kernel module by moving data through host buffers with POSIX I/O.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gds_priv.h"

static gds_cufile_t cufile;
static const gds_cufile_t *loaded, *started;
static char load_why[GDS_ERR_MAX], start_why[GDS_ERR_MAX];
static pthread_once_t load_once = PTHREAD_ONCE_INIT, start_once = PTHREAD_ONCE_INIT;

static const struct {
    int code;
    const char *name;
} cu_errors[] = {
    {5001, "CU_FILE_DRIVER_NOT_INITIALIZED"},  {5002, "CU_FILE_DRIVER_INVALID_PROPS"},
    {5003, "CU_FILE_DRIVER_UNSUPPORTED_LIMIT"}, {5004, "CU_FILE_DRIVER_VERSION_MISMATCH"},
    {5007, "CU_FILE_PLATFORM_NOT_SUPPORTED"},  {5008, "CU_FILE_IO_NOT_SUPPORTED"},
    {5009, "CU_FILE_DEVICE_NOT_SUPPORTED"},    {5010, "CU_FILE_NVFS_DRIVER_ERROR"},
    {5011, "CU_FILE_CUDA_DRIVER_ERROR"},       {5012, "CU_FILE_CUDA_POINTER_INVALID"},
    {5013, "CU_FILE_CUDA_MEMORY_TYPE_INVALID"}, {5014, "CU_FILE_CUDA_POINTER_RANGE_ERROR"},
    {5015, "CU_FILE_CUDA_CONTEXT_MISMATCH"},   {5018, "CU_FILE_INVALID_FILE_TYPE"},
    {5019, "CU_FILE_INVALID_FILE_OPEN_FLAG"},  {5020, "CU_FILE_DIO_NOT_SET"},
    {5022, "CU_FILE_INVALID_VALUE"},           {5023, "CU_FILE_MEMORY_ALREADY_REGISTERED"},
    {5024, "CU_FILE_MEMORY_NOT_REGISTERED"},   {5025, "CU_FILE_PERMISSION_DENIED"},
    {5026, "CU_FILE_DRIVER_ALREADY_OPEN"},     {5027, "CU_FILE_HANDLE_NOT_REGISTERED"},
    {5028, "CU_FILE_HANDLE_ALREADY_REGISTERED"}, {5029, "CU_FILE_DEVICE_NOT_FOUND"},
    {5030, "CU_FILE_INTERNAL_ERROR"},          {5033, "CU_FILE_NVFS_SETUP_ERROR"},
    {5034, "CU_FILE_IO_DISABLED"},             {5035, "CU_FILE_BATCH_SUBMIT_FAILED"},
    {5036, "CU_FILE_GPU_MEMORY_PINNING_FAILED"}, {5037, "CU_FILE_BATCH_FULL"},
};

static const char *cu_name(int code)
{
    for (size_t i = 0; i < sizeof(cu_errors) / sizeof(cu_errors[0]); i++)
        if (cu_errors[i].code == code)
            return cu_errors[i].name;
    return "cuFile error";
}

const char *gds_cu_strerror(gds_cu_err_t e, char *buf, size_t len)
{
    if (e.err == GDS_CU_CUDA_DRIVER_ERROR)
        snprintf(buf, len, "%s (%d, CUDA error %d)", cu_name(e.err), e.err, e.cu_err);
    else
        snprintf(buf, len, "%s (%d)", cu_name(e.err), e.err);
    return buf;
}

const char *gds_io_strerror(ssize_t ret, int err_no, char *buf, size_t len)
{
    if (ret == -1)
        snprintf(buf, len, "%s", strerror(err_no));
    else if (ret < -1 && -ret < 5000)
        snprintf(buf, len, "%s", strerror((int)-ret)); /* an errno given back directly */
    else
        snprintf(buf, len, "%s (%lld)", cu_name((int)-ret), (long long)-ret);
    return buf;
}

static void *open_lib(void)
{
    static const char *const names[] = {"libcufile.so.0", "libcufile.so"};
    char tried[GDS_ERR_MAX] = "";
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) {
            cufile.lib = names[i];
            return h;
        }
        const char *e = dlerror();
        if (i == 0)
            snprintf(tried, sizeof(tried), "%s", e ? e : names[i]);
    }
    snprintf(load_why, sizeof(load_why), "cuFile is not installed here: %s (install the "
             "libcufile package of the CUDA toolkit)", tried);
    return NULL;
}

/* Every symbol or none; `sym` is the name, `alt` an older name. */
static bool bind(void *h, void **slot, const char *sym, const char *alt)
{
    *slot = dlsym(h, sym);
    if (!*slot && alt)
        *slot = dlsym(h, alt);
    if (!*slot)
        snprintf(load_why, sizeof(load_why), "%s has no %s: this cuFile is too old (batch I/O "
                 "needs GDS 1.6, CUDA 12.0, or later)", cufile.lib, sym);
    return *slot != NULL;
}

static void load(void)
{
    void *h = open_lib();
    if (!h)
        return;
    gds_cufile_t *c = &cufile;
#define BIND(field, sym) bind(h, (void **)&c->field, sym, NULL)
    if (!BIND(driver_open, "cuFileDriverOpen") || !BIND(handle_register, "cuFileHandleRegister") ||
        !BIND(handle_deregister, "cuFileHandleDeregister") ||
        !BIND(buf_register, "cuFileBufRegister") || !BIND(buf_deregister, "cuFileBufDeregister") ||
        !BIND(read, "cuFileRead") || !BIND(write, "cuFileWrite") ||
        !BIND(batch_setup, "cuFileBatchIOSetUp") || !BIND(batch_submit, "cuFileBatchIOSubmit") ||
        !BIND(batch_status, "cuFileBatchIOGetStatus") ||
        !BIND(batch_cancel, "cuFileBatchIOCancel") ||
        !BIND(batch_destroy, "cuFileBatchIODestroy")) {
        dlclose(h);
        return;
    }
#undef BIND
    loaded = c;
}

static void start(void)
{
    gds_cufile_t *c = &cufile;
    gds_cu_err_t e = c->driver_open();
    if (e.err != GDS_CU_SUCCESS && e.err != GDS_CU_DRIVER_ALREADY_OPEN) {
        char s[96];
        const char *hint = e.err == GDS_CU_DRIVER_NOT_INITIALIZED
                               ? ": the nvidia-fs module is not loaded and compatibility mode "
                                 "is off (allow_compat_mode in cufile.json)"
                           : e.err == GDS_CU_CUDA_DRIVER_ERROR
                               ? ": no usable CUDA driver or GPU"
                               : "";
        snprintf(start_why, sizeof(start_why), "cuFileDriverOpen failed: %s%s",
                 gds_cu_strerror(e, s, sizeof(s)), hint);
        return;
    }
    /* nvidia-fs present: cuFile may do true GPUDirect I/O (file systems that support it);
     * without it every I/O runs in compatibility mode. */
    c->nvfs = access("/sys/module/nvidia_fs", F_OK) == 0 ||
              access("/proc/driver/nvidia-fs/version", F_OK) == 0;
    started = c;
}

bool gds_cufile_present(char *why, size_t whylen)
{
    pthread_once(&load_once, load);
    if (!loaded)
        snprintf(why, whylen, "%s", load_why);
    return loaded != NULL;
}

const gds_cufile_t *gds_cufile_get(char *why, size_t whylen)
{
    if (!gds_cufile_present(why, whylen))
        return NULL;
    pthread_once(&start_once, start);
    if (!started)
        snprintf(why, whylen, "%s", start_why);
    return started;
}
