/*
 * gds_priv.h - the internals of the two GPUDirect Storage backends, GDS (cuFile batch I/O) and
 * GDS_MT (a thread pool calling cuFileRead/cuFileWrite), built from this one folder because
 * they share everything but the way a prepared request is run (never installed).
 *
 * cuFile is opened at run time (gds_cufile.c): the plugins build and load without CUDA, and
 * creating an engine on a host without libcufile or without a GPU fails NOT_SUPPORTED with the
 * reason. The few cuFile types used are declared here, with the layout of cufile.h.
 *
 * Objects
 *  - engine: the cuFile table, the host's GPU services (VRAM address checks), parameters, the
 *    open cuFile file handles (one per fd, counted: several FILE regions may share an fd and
 *    cuFile refuses to register an fd twice), and the runner of the kind (batch pool or thread
 *    pool).
 *  - md: one registration. FILE: the shared file handle. DRAM/VRAM: the buffer, whether
 *    cuFileBufRegister took it (we deregister only what we registered).
 *  - req: a prepared transfer: an array of I/Os (handle, buffer base and offset, file offset,
 *    size), descriptors cut at max_request_size, resolved once; a post only runs them.
 *
 * Locks: control operations are serialised by the core (the file table needs no lock). The
 * runners have their own (gds_batch.c, gdsmt_pool.c).
 */
#ifndef NIXL_GDS_PRIV_H
#define NIXL_GDS_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "be_storage.h"
#include "nixl_plugin.h"

#define GDS_ERR_MAX 320
/* O_DIRECT I/O through cuFile needs buffer, length and file offset on 4 KiB boundaries. */
#define GDS_DIRECT_ALIGN 4096u
/* A release of a request in flight waits this long for its I/Os (they cannot be taken back
 * from the kernel or the GPU); after that it fails and the request stays valid. */
#define GDS_RELEASE_WAIT_MS 5000

/* ---- the part of the cuFile API we call (layouts of cufile.h) ---- */

typedef struct gds_cu_err {
    int err;    /* CUfileOpError: 0 success, 5000+ cuFile errors */
    int cu_err; /* CUresult when err is CU_FILE_CUDA_DRIVER_ERROR */
} gds_cu_err_t;

enum {
    GDS_CU_SUCCESS = 0,
    GDS_CU_DRIVER_NOT_INITIALIZED = 5001,
    GDS_CU_CUDA_DRIVER_ERROR = 5011,
    GDS_CU_MEMORY_ALREADY_REGISTERED = 5023,
    GDS_CU_DRIVER_ALREADY_OPEN = 5026,
    GDS_CU_HANDLE_ALREADY_REGISTERED = 5028,
};

typedef struct gds_cu_descr {
    int type; /* CU_FILE_HANDLE_TYPE_OPAQUE_FD = 1 */
    union {
        int fd;
        void *handle;
    } handle;
    const void *fs_ops;
} gds_cu_descr_t;

enum { GDS_CU_OP_READ = 0, GDS_CU_OP_WRITE = 1, GDS_CU_BATCH = 1 };
enum {
    GDS_CU_WAITING = 0x1,
    GDS_CU_PENDING = 0x2,
    GDS_CU_INVALID = 0x4,
    GDS_CU_CANCELED = 0x8,
    GDS_CU_COMPLETE = 0x10,
    GDS_CU_TIMEOUT = 0x20,
    GDS_CU_FAILED = 0x40,
};

typedef struct gds_cu_io_params {
    int mode; /* GDS_CU_BATCH */
    union {
        struct {
            void *buf_base;
            off_t file_offset;
            off_t buf_offset;
            size_t size;
        } batch;
    } u;
    void *fh;
    int opcode;
    void *cookie;
} gds_cu_io_params_t;

typedef struct gds_cu_io_event {
    void *cookie;
    int status;
    size_t ret; /* bytes moved, or a negative error */
} gds_cu_io_event_t;

typedef struct gds_cufile {
    gds_cu_err_t (*driver_open)(void);
    gds_cu_err_t (*handle_register)(void **fh, gds_cu_descr_t *descr);
    void (*handle_deregister)(void *fh);
    gds_cu_err_t (*buf_register)(const void *base, size_t len, int flags);
    gds_cu_err_t (*buf_deregister)(const void *base);
    ssize_t (*read)(void *fh, void *base, size_t size, off_t file_off, off_t buf_off);
    ssize_t (*write)(void *fh, const void *base, size_t size, off_t file_off, off_t buf_off);
    gds_cu_err_t (*batch_setup)(void **batch, unsigned nr);
    gds_cu_err_t (*batch_submit)(void *batch, unsigned nr, gds_cu_io_params_t *ios,
                                 unsigned flags);
    gds_cu_err_t (*batch_status)(void *batch, unsigned min_nr, unsigned *nr,
                                 gds_cu_io_event_t *events, struct timespec *timeout);
    gds_cu_err_t (*batch_cancel)(void *batch);
    void (*batch_destroy)(void *batch);
    const char *lib; /* the file name that loaded */
    bool nvfs;       /* the nvidia-fs kernel module is loaded (true GDS is possible) */
} gds_cufile_t;

/* Whether libcufile loads with every symbol we call (once per process); the reason if not. */
bool gds_cufile_present(char *why, size_t whylen);
/* The process's cuFile, loaded and its driver started once. NULL with the reason in `why`
 * (no library, a missing symbol, the driver refused to start). */
const gds_cufile_t *gds_cufile_get(char *why, size_t whylen);
/* "CU_FILE_... (5011, CUDA error 100)" for a cuFile status. */
const char *gds_cu_strerror(gds_cu_err_t e, char *buf, size_t len);
/* The same for the negative result of cuFileRead/cuFileWrite (-1: errno; -5xxx: cuFile). */
const char *gds_io_strerror(ssize_t ret, int err_no, char *buf, size_t len);

/* ---- engine ---- */

typedef enum gds_kind { GDS_KIND_BATCH = 0, GDS_KIND_MT } gds_kind_t;

typedef struct gds_params {
    uint64_t batch_pool_size;  /* GDS: batch handles kept ready */
    uint64_t batch_limit;      /* GDS: I/Os per cuFile batch */
    uint64_t inflight_limit;   /* GDS: batch entries out at once, in the process */
    uint64_t max_request_size; /* GDS: descriptors are cut into I/Os of at most this */
    uint64_t thread_count;     /* GDS_MT: workers */
} gds_params_t;

typedef struct gds_file {
    int fd;
    void *handle; /* cuFile's */
    bool direct;  /* opened with O_DIRECT: 4 KiB alignment checked at prep */
    bool owned;   /* path mode: we opened fd and close it with the handle */
    uint64_t dev_id; /* path mode: the devId that names it */
    size_t refs;
} gds_file_t;

struct nixl_be_md {
    nixl_mem_t type;
    gds_file_t *file;   /* FILE */
    uintptr_t base;     /* DRAM/VRAM: the registered buffer */
    size_t len;
    bool buf_registered; /* cuFileBufRegister took it: deregister at the end */
};

typedef struct gds_io {
    void *fh;
    void *buf_base;
    uint64_t buf_off;
    uint64_t file_off;
    size_t size;
    size_t desc; /* the descriptor it comes from (for messages) */
    bool host;   /* the buffer is DRAM */
    bool direct; /* the file was opened with O_DIRECT */
} gds_io_t;

typedef struct gds_runner gds_runner_t;

typedef struct nixl_be_req {
    struct nixl_be_engine *eng;
    bool write; /* memory -> file */
    size_t nios, ndescs;
    gds_io_t *ios;
    _Atomic int state; /* nixl_status_t: NOT_POSTED, IN_PROG, SUCCESS or an error */
    /* The post's completion (gds_ios_end): set up by gds_post_xfer while no I/O of the
     * request runs, then touched by one thread at a time (GDS: the caller of check or abort;
     * GDS_MT: under the pool's lock). */
    size_t left;              /* I/Os of the post not ended */
    bool failed;              /* one of them failed: errmsg says how */
    char errmsg[GDS_ERR_MAX]; /* written before an error state is published */
    void *run;                /* the runner's per-request state */
} gds_req_t;

/* How a kind runs prepared requests (gds_batch.c, gdsmt_pool.c). gds_post_xfer sets the
 * post's completion up (req->left = nios, nothing failed) before `post`; the runner reports
 * every I/O's end with gds_ios_end, which publishes the request's state after the last. */
typedef struct gds_runner_ops {
    const char *what; /* for the creation log */
    nixl_status_t (*start)(struct nixl_be_engine *eng, char *why, size_t whylen);
    void (*stop)(struct nixl_be_engine *eng);
    nixl_status_t (*req_init)(struct nixl_be_engine *eng, gds_req_t *req);
    void (*req_fini)(struct nixl_be_engine *eng, gds_req_t *req);
    nixl_status_t (*post)(struct nixl_be_engine *eng, gds_req_t *req);
    nixl_status_t (*check)(struct nixl_be_engine *eng, gds_req_t *req);
    /* Stop a request in flight, waiting a bounded time: false if I/Os are still out. */
    bool (*abort)(struct nixl_be_engine *eng, gds_req_t *req);
} gds_runner_ops_t;

struct nixl_be_engine {
    const nixl_host_t *host;
    const gds_cufile_t *cf;
    const nixl_gpu_ops_t *gpu;
    gds_kind_t kind;
    gds_params_t params;
    const gds_runner_ops_t *run_ops;
    void *runner;
    gds_file_t **files; /* open file handles (control path only) */
    size_t nfiles, cap_files;
    _Atomic size_t live_reqs;
};

/* gds_config.c */
nixl_status_t gds_params_parse(const nixl_be_init_t *init, gds_kind_t kind, gds_params_t *out);
#define GDS_NUM_DEFAULTS 4
#define GDSMT_NUM_DEFAULTS 1
extern const nixl_param_t gds_default_params[GDS_NUM_DEFAULTS];
extern const nixl_param_t gdsmt_default_params[GDSMT_NUM_DEFAULTS];

/* gds_engine.c: create and destroy for both kinds. */
nixl_status_t gds_create(const nixl_be_init_t *init, gds_kind_t kind,
                         const gds_runner_ops_t *run_ops, nixl_be_engine_t **out);
void gds_destroy(nixl_be_engine_t *eng);

/* The description and operations of a plugin of kind `create_fn` (the two differ only there). */
#define GDS_PLUGIN_INFO(plugin_name, params, nparams)                                         \
    {                                                                                         \
        .struct_size = sizeof(nixl_plugin_info_t), .name = (plugin_name),                    \
        .version = NIXL_VERSION_STRING, .caps = NIXL_BE_CAP_LOCAL,                            \
        .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG) |                   \
                NIXL_MEM_BIT(NIXL_FILE_SEG),                                                  \
        .default_params = (params), .num_default_params = (nparams),                         \
    }
/* Storage needs no connections: connect, disconnect and unload_md are the core's defaults; the
 * loopback target is the registration itself (be_storage.h). */
#define GDS_PLUGIN_OPS(create_fn)                                                             \
    {                                                                                         \
        .struct_size = sizeof(nixl_be_ops_t), .create = (create_fn), .destroy = gds_destroy,  \
        .register_mem = gds_register_mem, .deregister_mem = gds_deregister_mem,               \
        .load_local_md = nixl_be_load_self, .prep_xfer = gds_prep_xfer,                       \
        .post_xfer = gds_post_xfer, .check_xfer = gds_check_xfer,                             \
        .release_req = gds_release_req, .query_mem = gds_query_mem,                           \
    }

/* gds_mem.c */
nixl_status_t gds_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                               const nixl_reg_desc_t *descs, size_t count, nixl_be_md_t **out);
void gds_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);
nixl_status_t gds_query_mem(nixl_be_engine_t *eng, nixl_mem_t type, const nixl_reg_desc_t *descs,
                            size_t count, nixl_query_resp_t *out);

/* gds_xfer.c: the operations of the table, shared; the runner does the kind's part. */
nixl_status_t gds_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op, const nixl_be_desc_t *local,
                            const nixl_be_desc_t *remote, size_t count, const char *agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out);
nixl_status_t gds_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts);
nixl_status_t gds_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t gds_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* `n` I/Os of the current post ended, one completion loop for both kinds: `what` NULL when
 * they moved every byte, else how they failed, `io` the first of them (the first failure of a
 * post is the one reported, with its descriptor and file offset). After the post's last I/O
 * the request's state is published (SUCCESS, or BACKEND with errmsg) and true returned. Calls
 * for one request are serialised by the runner. */
bool gds_ios_end(gds_req_t *req, const gds_io_t *io, size_t n, const char *what);
/* Run one I/O to its end with cuFileRead/cuFileWrite (blocking); false with the reason in
 * `what` (GDS_MT's workers, and GDS for what its batches cannot carry). */
bool gds_io_run(const gds_cufile_t *cf, bool write, const gds_io_t *io, char *what, size_t len);

/* The plugin of a kind from its runner's functions <prefix>_start, _stop, _req_init,
 * _req_fini, _post, _check and _abort: the runner table, create, the description, the
 * operations and the exported entry point (the two kinds differ only in their runner). */
#define GDS_PLUGIN_DEFINE(prefix, kind, what_text, plugin_name, params, nparams)              \
    static const gds_runner_ops_t prefix##_runner = {                                         \
        .what = (what_text), .start = prefix##_start, .stop = prefix##_stop,                  \
        .req_init = prefix##_req_init, .req_fini = prefix##_req_fini, .post = prefix##_post,  \
        .check = prefix##_check, .abort = prefix##_abort,                                     \
    };                                                                                        \
    static nixl_status_t prefix##_create(const nixl_be_init_t *init, nixl_be_engine_t **out)  \
    {                                                                                         \
        return gds_create(init, (kind), &prefix##_runner, out);                               \
    }                                                                                         \
    static const nixl_plugin_info_t prefix##_info =                                           \
        GDS_PLUGIN_INFO(plugin_name, params, nparams);                                        \
    static const nixl_be_ops_t prefix##_ops = GDS_PLUGIN_OPS(prefix##_create);                \
    /* The one symbol the plugin exports (it is built with hidden visibility). */             \
    NIXL_PLUGIN_EXPORT_ENTRY(&prefix##_info, &prefix##_ops)

#endif
