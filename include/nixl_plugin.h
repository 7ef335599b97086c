/*
 * nixl_plugin.h - the backend (south-bound) plugin ABI of libnixl. Plain C, made to grow.
 *
 * A plugin is a shared object named libplugin_<NAME>.so in NIXL_PLUGIN_DIR that exports
 *
 *     const nixl_plugin_t *nixl_c_plugin_entry(uint32_t host_abi_version);
 *
 * returning a description that lives as long as the process. Built-in plugins provide the same
 * description and are linked into libnixl (plugins/builtin.c). docs/plugin-guide.md walks
 * through writing one, and gives the lifetime of every object.
 *
 * How the ABI grows (libfabric's fi_ops is the model):
 *  - every table and every struct passed by pointer starts with its size (struct_size) as the
 *    side that filled it was compiled; new fields and operations are only ever appended;
 *  - an operation is present when the table is long enough to hold it and its pointer is set;
 *    the core gives optional operations a default (a no-op, or NIXL_ERR_NOT_SUPPORTED), written
 *    once in the core, so a plugin leaves out what it does not do;
 *  - the plugin states the ABI it was built against and the oldest ABI of the host it needs
 *    (abi_min); the core loads any plugin whose abi_min it meets, older or newer than itself.
 * The elements of descriptor and blob arrays (nixl_be_desc_t, nixl_be_blob_t, ...) have a
 * fixed layout: a change to one is a new operation, never a new field.
 *
 * Operations take whole descriptor arrays: the core never calls a plugin once per descriptor or
 * once per region. Every operation returns a nixl_status_t; on failure the plugin gives the
 * reason with NIXL_BE_ERR() (it becomes nixl_last_error() of the user's call, prefixed with the
 * plugin's name by the host, so plugin messages never name their plugin themselves).
 *
 * Threading: the core serialises control operations (create, register, deregister, load,
 * unload, connect, disconnect) per engine. They may overlap data operations (prep, post,
 * check, release, gen_notif, progress) on other requests, including requests to a peer that is
 * being disconnected: such requests must fail cleanly, never touch freed state. Data
 * operations may run concurrently from several threads, but never concurrently on the same
 * request. Plugins deliver notifications with host->notif() from any thread. Out of memory is
 * NIXL_ERR_UNKNOWN, as everywhere in the library.
 */
#ifndef NIXL_PLUGIN_H
#define NIXL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "nixl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. ABI 3 appended estimate_cost to nixl_be_ops_t; ABI 4 appended
 * the GPU services (gpu) to nixl_host_t and cancel_xfer to nixl_be_ops_t. */
#define NIXL_PLUGIN_ABI_VERSION 4u
/* The oldest ABI this header can still describe: a plugin built against ABI 2 loads. */
#define NIXL_PLUGIN_ABI_OLDEST 2u
#define NIXL_PLUGIN_ENTRY_SYMBOL "nixl_c_plugin_entry"
/* The entry point of the reference NIXL's C++ plugins (and of this library's ABI 1): a file
 * that exports it instead of ours is refused by name, without loading it. */
#define NIXL_PLUGIN_FOREIGN_SYMBOL "nixl_plugin_init"

/* Capabilities (nixl_plugin_info_t.caps). A remote-capable engine must support notifications. */
#define NIXL_BE_CAP_REMOTE (1u << 0) /* transfers with other agents; has conn info and blobs */
#define NIXL_BE_CAP_LOCAL (1u << 1)  /* transfers with the agent itself (loopback, storage) */
#define NIXL_BE_CAP_NOTIF (1u << 2)  /* notifications */

/* Log levels for host->log(). */
typedef enum nixl_log_level {
    NIXL_LOG_TRACE = 0,
    NIXL_LOG_DEBUG = 1,
    NIXL_LOG_INFO = 2,
    NIXL_LOG_WARN = 3,
    NIXL_LOG_ERROR = 4,
    NIXL_LOG_FATAL = 5,
} nixl_log_level_t;

/* Opaque plugin objects. */
typedef struct nixl_be_engine nixl_be_engine_t; /* one engine (plugin-defined) */
typedef struct nixl_be_md nixl_be_md_t;         /* metadata of one local or remote region */
typedef struct nixl_be_req nixl_be_req_t;       /* a prepared transfer */

/**
 * Services of the core that a plugin may call. One host per engine, valid from create() until
 * destroy() returns; pass it back as the first argument: the core knows from it which plugin
 * and engine speaks.
 */

/*
 * GPU services (host ABI 4): the core's one CUDA driver, so that every plugin moves GPU memory
 * the same way, with one loaded kernel and one pool of streams per process. host->gpu is NULL
 * where the process has no usable CUDA driver. Failures write their reason into `err` (the
 * caller passes it on with NIXL_BE_ERR, or keeps it for check_xfer).
 */
typedef struct nixl_gpu_err {
    char msg[256];
} nixl_gpu_err_t;

/* What an address is, to the driver. */
enum {
    NIXL_GPU_MEM_PAGEABLE = 0, /* ordinary host memory the GPU cannot reach by itself */
    NIXL_GPU_MEM_PINNED = 1,   /* host memory registered with (or allocated by) the driver */
    NIXL_GPU_MEM_DEVICE = 2,   /* GPU memory */
    NIXL_GPU_MEM_MANAGED = 3,  /* unified (managed) memory */
};

typedef struct nixl_gpu_ptr {
    int kind;        /* NIXL_GPU_MEM_* */
    int device;      /* the GPU it belongs to (DEVICE, MANAGED), else -1 */
    uintptr_t base;  /* the allocation (or registration) that holds it; 0 if PAGEABLE */
    size_t size;
} nixl_gpu_ptr_t;

/* A CUDA IPC handle of a GPU allocation (CUipcMemHandle), as sent to peers. */
#define NIXL_GPU_IPC_LEN 64u

/* One copy of a batch: addresses valid in this process (GPU memory, GPU memory opened from a
 * peer, or host memory). */
typedef struct nixl_gpu_seg {
    uint64_t dst, src, len;
} nixl_gpu_seg_t;

/* Batch flags. */
#define NIXL_GPU_BATCH_PAGEABLE (1u << 0) /* some host side is pageable: the driver copies
                                           * each segment (a kernel cannot reach it) */

typedef struct nixl_gpu_batch nixl_gpu_batch_t;
typedef struct nixl_gpu_stage nixl_gpu_stage_t;

typedef struct nixl_gpu_ops {
    size_t struct_size;
    /** GPUs visible to the process. */
    int (*device_count)(void);
    /** What [addr, addr + len) is; an error if it is GPU memory not wholly inside one
     * allocation. */
    nixl_status_t (*ptr_query)(uintptr_t addr, size_t len, nixl_gpu_ptr_t *out,
                               nixl_gpu_err_t *err);
    /** Export the GPU allocation holding addr: its handle and base address. */
    nixl_status_t (*ipc_export)(uintptr_t addr, uint8_t handle[NIXL_GPU_IPC_LEN],
                                uintptr_t *base, nixl_gpu_err_t *err);
    /** Map a peer's allocation into this process on `device` (counted: the same handle opened
     * twice is mapped once). */
    nixl_status_t (*ipc_open)(const uint8_t handle[NIXL_GPU_IPC_LEN], int device,
                              uintptr_t *base, nixl_gpu_err_t *err);
    /** Undo one ipc_open. */
    void (*ipc_close)(uintptr_t base);
    /**
     * Prepare a list of copies run on `device` (whose memory, or whose peer's, they touch):
     * the table goes to GPU memory once, so each post is one launch. `max_blocks` bounds the
     * thread blocks of the copy kernel (0: the default).
     */
    nixl_status_t (*batch_create)(int device, const nixl_gpu_seg_t *segs, size_t count,
                                  unsigned flags, unsigned max_blocks, nixl_gpu_batch_t **out,
                                  nixl_gpu_err_t *err);
    /** Start the copies (the batch must not be in flight). */
    nixl_status_t (*batch_post)(nixl_gpu_batch_t *b, nixl_gpu_err_t *err);
    /** NIXL_SUCCESS when the last post completed, NIXL_IN_PROG, or an error. */
    nixl_status_t (*batch_check)(nixl_gpu_batch_t *b, nixl_gpu_err_t *err);
    /** Block (sleeping, not spinning) until the last post completed. */
    nixl_status_t (*batch_wait)(nixl_gpu_batch_t *b, nixl_gpu_err_t *err);
    /** Free a batch; waits for a post in flight. */
    void (*batch_destroy)(nixl_gpu_batch_t *b);
    /** How batches copy in this build: "kernel" or why the driver copies each descriptor. */
    const char *(*copy_method)(void);

    /*
     * Staging, for memory the GPU cannot reach (another process's host memory, a network
     * without GPU support): the copies `segs` are cut into rounds of at most `round` bytes
     * through two pinned host buffers used in turn. With `to_far` the GPU side is the source
     * (segs[i].src is GPU-side, segs[i].dst far): each round, the GPU fills a buffer
     * (stage_post/stage_wait) and then the caller moves the round's pieces from it to the far
     * side. Without, the caller fills a buffer with the round's pieces and then the GPU empties
     * it. Round k uses buffer k % 2, so round k + 1's GPU copy may run while the caller moves
     * round k. A piece is {dst, src, len} for the caller's own copy.
     */
    nixl_status_t (*stage_create)(int device, bool to_far, const nixl_gpu_seg_t *segs,
                                  size_t count, size_t round, unsigned flags,
                                  unsigned max_blocks, nixl_gpu_stage_t **out,
                                  nixl_gpu_err_t *err);
    size_t (*stage_rounds)(const nixl_gpu_stage_t *st);
    /** The caller's pieces of round k. */
    const nixl_gpu_seg_t *(*stage_pieces)(const nixl_gpu_stage_t *st, size_t k, size_t *n);
    nixl_status_t (*stage_post)(nixl_gpu_stage_t *st, size_t k, nixl_gpu_err_t *err);
    nixl_status_t (*stage_wait)(nixl_gpu_stage_t *st, size_t k, nixl_gpu_err_t *err);
    /** Free (waits for GPU copies in flight); the buffers go back to a pool. */
    void (*stage_destroy)(nixl_gpu_stage_t *st);
} nixl_gpu_ops_t;

typedef struct nixl_host nixl_host_t;
struct nixl_host {
    size_t struct_size;
    /** Deliver a notification from `agent` (binary-safe payload). Any thread; copies its input. */
    void (*notif)(const nixl_host_t *host, const char *agent, size_t agent_len, const void *msg,
                  size_t len);
    /** Log through the library's logger (NIXL_LOG_LEVEL), prefixed with the plugin's name. */
    void (*log)(const nixl_host_t *host, nixl_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /** Whether a message at `level` would be printed (to skip building it). */
    bool (*log_enabled)(const nixl_host_t *host, nixl_log_level_t level);
    /**
     * Give the reason of the failure `status` being returned: the reason becomes
     * nixl_last_error() of the user's call (thread-local), prefixed with the plugin's name.
     */
    void (*fail)(const nixl_host_t *host, nixl_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /* ---- appended in ABI 4 ---- */
    /** The GPU services; NULL without a CUDA driver. Read it through nixl_host_gpu(). */
    const nixl_gpu_ops_t *gpu;
};

/* The host's GPU services, or NULL (no driver, or a host older than ABI 4). */
static inline const nixl_gpu_ops_t *nixl_host_gpu(const nixl_host_t *host)
{
    return host->struct_size >= offsetof(nixl_host_t, gpu) + sizeof(host->gpu) ? host->gpu
                                                                               : NULL;
}

/*
 * The one set of logging and error helpers for plugins. NIXL_BE_ERR gives the reason and
 * evaluates to `status` (evaluated twice: pass a constant or a variable), so a failure reads
 * `return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "socket(): %s", strerror(errno));`.
 */
#define NIXL_BE_ERR(host, status, ...) ((host)->fail((host), (status), __VA_ARGS__), (status))
#define NIXL_BE_LOG(host, level, ...)                                                         \
    do {                                                                                      \
        if ((host)->log_enabled((host), (level)))                                             \
            (host)->log((host), (level), __VA_ARGS__);                                        \
    } while (0)

/** What an engine is created with. Everything but `host` is borrowed for the call. */
typedef struct nixl_be_init {
    size_t struct_size;
    const char *local_agent;     /* the agent's name */
    const char *type;            /* the plugin name */
    const nixl_param_t *params;  /* the user's parameters, then defaults the user did not set */
    size_t num_params;
    bool enable_prog_thread;     /* the agent allows a progress thread */
    uint64_t pthr_delay_us;      /* progress-thread wake-up period */
    nixl_thread_sync_t sync_mode;
    bool enable_telemetry;
    const nixl_host_t *host;     /* valid for the engine's whole life */
} nixl_be_init_t;

/** A resolved transfer element: a descriptor plus the metadata of the region that covers it. */
typedef struct nixl_be_desc {
    uintptr_t addr;
    size_t len;
    uint64_t dev_id;
    nixl_be_md_t *md;
} nixl_be_desc_t;

/** A blob (borrowed or owned as each operation says). */
typedef struct nixl_be_blob {
    const void *data;
    size_t len;
} nixl_be_blob_t;

/**
 * A list of metadata handles read in place: handle i is the pointer at base + i * stride. The
 * core keeps handles inside its own region records, so it passes them without copying; a plain
 * array is {array, sizeof(nixl_be_md_t *), count}. Read it with nixl_be_md_at().
 */
typedef struct nixl_be_mds {
    const void *base;
    size_t stride;
    size_t count;
} nixl_be_mds_t;

static inline nixl_be_md_t *nixl_be_md_at(const nixl_be_mds_t *mds, size_t i)
{
    return *(nixl_be_md_t *const *)(const void *)((const char *)mds->base + i * mds->stride);
}

/** Per-post options. */
typedef struct nixl_be_xfer_opts {
    size_t struct_size;
    bool has_notif;
    const void *notif;
    size_t notif_len;
    const void *custom_param;
    size_t custom_param_len;
} nixl_be_xfer_opts_t;

/**
 * The engine operations. Required: create, destroy, register_mem, deregister_mem, prep_xfer,
 * post_xfer, check_xfer, release_req; a remote-capable plugin also needs get_conn_info,
 * get_public_blobs, load_remote_conn, load_remote_md and gen_notif, a local-capable one
 * load_local_md. Everything else is optional, with the default named at the operation.
 */
typedef struct nixl_be_ops {
    size_t struct_size; /* sizeof(nixl_be_ops_t) as the plugin was compiled */

    /** Create an engine. On failure give the reason and return an error (no engine). */
    nixl_status_t (*create)(const nixl_be_init_t *init, nixl_be_engine_t **out);
    /** Destroy an engine; all requests are released and all regions deregistered before. */
    void (*destroy)(nixl_be_engine_t *eng);

    /**
     * Register `count` regions; out_mds[i] receives the metadata of descs[i]. All or nothing:
     * on error nothing stays registered.
     */
    nixl_status_t (*register_mem)(nixl_be_engine_t *eng, nixl_mem_t type,
                                  const nixl_reg_desc_t *descs, size_t count,
                                  nixl_be_md_t **out_mds);
    /** Deregister regions registered earlier. */
    void (*deregister_mem)(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);

    /* ---- remote-capable engines (NIXL_BE_CAP_REMOTE) ---- */

    /** The engine's connection info (owned by the engine, stable for its life). */
    nixl_status_t (*get_conn_info)(nixl_be_engine_t *eng, const void **blob, size_t *len);
    /**
     * The blobs peers need for local regions: out[i] for mds[i] (owned by the md, valid until
     * it is deregistered).
     */
    nixl_status_t (*get_public_blobs)(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                      nixl_be_blob_t *out);
    /**
     * Store a peer's connection info. Return NIXL_ERR_NOT_SUPPORTED (with a reason) when the
     * peer cannot be reached by this engine at all (another host for a same-host engine): the
     * core then skips this engine for that peer instead of failing the load.
     */
    nixl_status_t (*load_remote_conn)(nixl_be_engine_t *eng, const char *agent,
                                      const void *blob, size_t len);
    /** Turn `count` peer region blobs into metadata (out_mds[i] for descs[i]). All or nothing. */
    nixl_status_t (*load_remote_md)(nixl_be_engine_t *eng, const char *agent, nixl_mem_t type,
                                    const nixl_desc_t *descs, const nixl_be_blob_t *blobs,
                                    size_t count, nixl_be_md_t **out_mds);

    /* ---- local-capable engines (NIXL_BE_CAP_LOCAL) ---- */

    /** Loopback target metadata for local regions: out_mds[i] for mds[i] (may be the same). */
    nixl_status_t (*load_local_md)(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                   nixl_be_md_t **out_mds);

    /** Free metadata from load_remote_md / load_local_md. Default: nothing to free. */
    void (*unload_md)(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);

    /** Connect to a peer whose connection info is loaded. Default: success, nothing done. */
    nixl_status_t (*connect)(nixl_be_engine_t *eng, const char *agent);
    /** Forget a peer: connection info, connections. Requests to it fail afterwards. Default:
     * success, nothing done. */
    nixl_status_t (*disconnect)(nixl_be_engine_t *eng, const char *agent);

    /* ---- transfers ---- */

    /**
     * Prepare a transfer of `count` element pairs (local[i] <-> remote[i], equal lengths) with
     * `remote_agent` (the own name for loopback). Called once; the request may be posted many
     * times. The arrays are borrowed for the call: copy what you need.
     */
    nixl_status_t (*prep_xfer)(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                               const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                               size_t count, const char *remote_agent,
                               const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out);
    /**
     * Start a prepared transfer, never blocking on the peer: NIXL_SUCCESS if it completed
     * inside the call (its notification sent), NIXL_IN_PROG, or an error. The notification, if
     * any, must reach the target only after the data is in place, and must be sent even if
     * nobody calls check_xfer again.
     */
    nixl_status_t (*post_xfer)(nixl_be_engine_t *eng, nixl_be_req_t *req,
                               const nixl_be_xfer_opts_t *opts);
    /** Progress and report: NIXL_SUCCESS, NIXL_IN_PROG or an error (REMOTE_DISCONNECT, ...). */
    nixl_status_t (*check_xfer)(nixl_be_engine_t *eng, nixl_be_req_t *req);
    /**
     * Free a request, aborting it if it is in flight, without blocking for long. An error
     * means the transfer could not be stopped: the request stays valid, and the core keeps it
     * and asks again later.
     */
    nixl_status_t (*release_req)(nixl_be_engine_t *eng, nixl_be_req_t *req);

    /* ---- notifications (NIXL_BE_CAP_NOTIF) ---- */

    /** Send a standalone notification to a peer (or to the own agent name). Required with
     * NIXL_BE_CAP_NOTIF; default without it: NIXL_ERR_NOT_SUPPORTED. */
    nixl_status_t (*gen_notif)(nixl_be_engine_t *eng, const char *agent, const void *msg,
                               size_t len);
    /** Make progress so pending notifications are delivered through host->notif. Default:
     * success, nothing done (engines with their own progress thread). */
    nixl_status_t (*progress)(nixl_be_engine_t *eng);

    /* ---- optional ---- */

    /**
     * Per-descriptor facts about storage objects; out[i] for descs[i]. The core gives zeroed
     * responses and packs them afterwards: set only has_value and params (items allocated with
     * malloc, keys and values with strdup); the core takes ownership. Default:
     * NIXL_ERR_NOT_SUPPORTED.
     */
    nixl_status_t (*query_mem)(nixl_be_engine_t *eng, nixl_mem_t type,
                               const nixl_reg_desc_t *descs, size_t count,
                               nixl_query_resp_t *out);

    /* ---- appended in ABI 3 ---- */

    /** Estimated duration of a prepared request. Default: NIXL_ERR_NOT_SUPPORTED. */
    nixl_status_t (*estimate_cost)(nixl_be_engine_t *eng, nixl_be_req_t *req,
                                   int64_t *duration_us, int64_t *err_margin_us,
                                   nixl_cost_t *method);

    /* ---- appended in ABI 4 ---- */

    /**
     * Stop a posted transfer without blocking for long: NIXL_ERR_CANCELED once nothing of it
     * runs any more (the request may be posted again), its final status if it ended first,
     * NIXL_IN_PROG while it is still stopping (the core asks again, bounded). Default: what
     * check_xfer says (the transfer is waited for).
     */
    nixl_status_t (*cancel_xfer)(nixl_be_engine_t *eng, nixl_be_req_t *req);
} nixl_be_ops_t;

/** What the plugin is, apart from what its engines do. */
typedef struct nixl_plugin_info {
    size_t struct_size;
    const char *name;     /* plugin name, e.g. "SHM"; must match the file name */
    const char *version;  /* plugin version string */
    uint32_t caps;        /* NIXL_BE_CAP_* */
    nixl_mem_mask_t mems; /* supported memory types */
    const nixl_param_t *default_params; /* advertised parameters and their defaults */
    size_t num_default_params;
} nixl_plugin_info_t;

/** What the entry point returns: static, lives as long as the process. */
typedef struct nixl_plugin {
    size_t struct_size;
    uint32_t abi_version; /* NIXL_PLUGIN_ABI_VERSION of the header the plugin was built with */
    uint32_t abi_min;     /* the oldest host ABI that has everything the plugin needs */
    const nixl_plugin_info_t *info;
    const nixl_be_ops_t *ops;
} nixl_plugin_t;

/**
 * The entry point a plugin exports (NIXL_PLUGIN_ENTRY_SYMBOL). `host_abi_version` is the
 * host's NIXL_PLUGIN_ABI_VERSION: a plugin may adapt to an older host, or return NULL (after
 * nothing else) when it cannot.
 */
typedef const nixl_plugin_t *(*nixl_plugin_entry_fn)(uint32_t host_abi_version);

/* Fill the ABI fields of a plugin's description. */
#define NIXL_PLUGIN_DESCRIPTION(info_ptr, ops_ptr)                                            \
    {                                                                                         \
        .struct_size = sizeof(nixl_plugin_t), .abi_version = NIXL_PLUGIN_ABI_VERSION,         \
        .abi_min = NIXL_PLUGIN_ABI_OLDEST, .info = (info_ptr), .ops = (ops_ptr),              \
    }

/**
 * Define and export the entry point of a dynamic plugin whose description and operations are
 * `info_ptr` and `ops_ptr` (static tables). Build the plugin with -fvisibility=hidden: this is
 * then its one exported symbol.
 */
#define NIXL_PLUGIN_EXPORT_ENTRY(info_ptr, ops_ptr)                                           \
    __attribute__((visibility("default"))) const nixl_plugin_t *nixl_c_plugin_entry(           \
        uint32_t host_abi_version);                                                           \
    const nixl_plugin_t *nixl_c_plugin_entry(uint32_t host_abi_version)                       \
    {                                                                                         \
        static const nixl_plugin_t nixl_plugin_ = NIXL_PLUGIN_DESCRIPTION(info_ptr, ops_ptr); \
        (void)host_abi_version;                                                               \
        return &nixl_plugin_;                                                                 \
    }

/**
 * The plugins linked into libnixl itself (defined by plugins/builtin.c, the one place that
 * names them; the core finds them here without including any plugin's header).
 */
typedef struct nixl_builtin_plugin {
    const char *name;
    nixl_plugin_entry_fn entry;
} nixl_builtin_plugin_t;
extern const nixl_builtin_plugin_t nixl_builtin_plugins[];
extern const size_t nixl_num_builtin_plugins;

#ifdef __cplusplus
}
#endif

#endif /* NIXL_PLUGIN_H */
