/*
 * nixl_plugin.h - the backend (south-bound) plugin ABI of libnixl. Plain C, versioned.
 *
 * A plugin is a shared object named libplugin_<NAME>.so in NIXL_PLUGIN_DIR that exports
 *
 *     const nixl_backend_ops_t *nixl_plugin_init(void);
 *
 * returning a table that lives as long as the process. Built-in plugins provide the same table
 * and are linked into libnixl. The first two fields are the table's size and the ABI version:
 * the loader refuses a table whose version differs from NIXL_PLUGIN_ABI_VERSION or that is
 * smaller than the fields it needs.
 *
 * Operations take whole descriptor arrays: the core never calls a plugin once per descriptor on
 * a hot path. Every operation returns a nixl_status_t; on failure the plugin describes the
 * reason with host->set_error() (it becomes nixl_last_error() of the user's call).
 *
 * Threading: the core serialises control operations (create, register, deregister, load,
 * unload, connect, disconnect) per engine. Data operations (prep, post, check, release,
 * gen_notif, progress) may run concurrently from several threads, but never concurrently on
 * the same request. Plugins deliver notifications with host->notif() from any thread.
 */
#ifndef NIXL_PLUGIN_H
#define NIXL_PLUGIN_H

#include "nixl.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NIXL_PLUGIN_ABI_VERSION 1u
#define NIXL_PLUGIN_INIT_SYMBOL "nixl_plugin_init"

/* Capabilities (nixl_backend_ops_t.caps). A remote-capable engine must support notifications. */
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

/** Services of the core that a plugin may call. */
typedef struct nixl_host {
    size_t struct_size;
    void *ctx; /* pass back as the first argument of notif() */
    /** Deliver a notification from `agent` (binary-safe payload). Any thread; copies its input. */
    void (*notif)(void *ctx, const char *agent, size_t agent_len, const void *msg, size_t len);
    /** Log through the library's logger (respects NIXL_LOG_LEVEL). */
    void (*log)(nixl_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;
    /** Set the reason of the failure being returned (thread-local, like nixl_last_error()). */
    void (*set_error)(const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 1, 2)))
#endif
        ;
    /** Whether a message at `level` would be printed (to skip building it). */
    bool (*log_enabled)(nixl_log_level_t level);
} nixl_host_t;

/** What an engine is created with. Everything is borrowed for the duration of create(). */
typedef struct nixl_be_init {
    size_t struct_size;
    const char *local_agent;     /* the agent's name */
    const char *type;            /* the plugin name */
    const nixl_param_t *params;  /* the user's parameters */
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

/** A region blob handed to load_remote_md (borrowed for the call). */
typedef struct nixl_be_blob {
    const void *data;
    size_t len;
} nixl_be_blob_t;

/** Per-post options. */
typedef struct nixl_be_xfer_opts {
    bool has_notif;
    const void *notif;
    size_t notif_len;
    const void *custom_param;
    size_t custom_param_len;
} nixl_be_xfer_opts_t;

/** The plugin table. Optional operations may be NULL. */
typedef struct nixl_backend_ops {
    size_t struct_size;   /* sizeof(nixl_backend_ops_t) as the plugin was compiled */
    uint32_t abi_version; /* NIXL_PLUGIN_ABI_VERSION */
    const char *name;     /* plugin name, e.g. "SHM"; must match the file name */
    const char *version;  /* plugin version string */
    uint32_t caps;        /* NIXL_BE_CAP_* */
    nixl_mem_mask_t mems; /* supported memory types */
    const nixl_param_t *default_params; /* advertised parameters and their defaults */
    size_t num_default_params;

    /** Create an engine. On failure set the reason and return an error (no engine). */
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
    void (*deregister_mem)(nixl_be_engine_t *eng, nixl_be_md_t *const *mds, size_t count);

    /* ---- remote-capable engines (NIXL_BE_CAP_REMOTE) ---- */

    /** The engine's connection info (owned by the engine, stable for its life). */
    nixl_status_t (*get_conn_info)(nixl_be_engine_t *eng, const void **blob, size_t *len);
    /** The blob peers need for a local region (owned by the md, valid until deregistered). */
    nixl_status_t (*get_public_blob)(nixl_be_engine_t *eng, nixl_be_md_t *md,
                                     const void **blob, size_t *len);
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

    /** Loopback target metadata for local regions (may return the same pointers). */
    nixl_status_t (*load_local_md)(nixl_be_engine_t *eng, nixl_be_md_t *const *mds,
                                   size_t count, nixl_be_md_t **out_mds);

    /** Free metadata from load_remote_md / load_local_md. */
    void (*unload_md)(nixl_be_engine_t *eng, nixl_be_md_t *const *mds, size_t count);

    /** Connect to a peer whose connection info is loaded (may be a no-op). */
    nixl_status_t (*connect)(nixl_be_engine_t *eng, const char *agent);
    /** Forget a peer: connection info, connections. Requests to it fail afterwards. */
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
     * means the transfer could not be stopped: the request stays valid.
     */
    nixl_status_t (*release_req)(nixl_be_engine_t *eng, nixl_be_req_t *req);

    /* ---- notifications (NIXL_BE_CAP_NOTIF) ---- */

    /** Send a standalone notification to a peer (or to the own agent name). */
    nixl_status_t (*gen_notif)(nixl_be_engine_t *eng, const char *agent, const void *msg,
                               size_t len);
    /** Optional: make progress so pending notifications are delivered through host->notif. */
    nixl_status_t (*progress)(nixl_be_engine_t *eng);

    /* ---- optional ---- */

    /** Per-descriptor facts about storage objects; out[i] for descs[i]. */
    nixl_status_t (*query_mem)(nixl_be_engine_t *eng, nixl_mem_t type,
                               const nixl_reg_desc_t *descs, size_t count,
                               nixl_query_resp_t *out);
    /** Estimated duration of a prepared request. */
    nixl_status_t (*estimate_cost)(nixl_be_engine_t *eng, nixl_be_req_t *req,
                                   int64_t *duration_us, int64_t *err_margin_us,
                                   nixl_cost_t *method);
} nixl_backend_ops_t;

/** The entry point a plugin exports (NIXL_PLUGIN_INIT_SYMBOL). */
typedef const nixl_backend_ops_t *(*nixl_plugin_init_fn)(void);

/**
 * The plugins linked into libnixl itself (defined by plugins/builtin.c, the one place that
 * names them; the core finds them here without including any plugin's header).
 */
typedef struct nixl_builtin_plugin {
    const char *name;
    nixl_plugin_init_fn init;
} nixl_builtin_plugin_t;
extern const nixl_builtin_plugin_t nixl_builtin_plugins[];
extern const size_t nixl_num_builtin_plugins;

/*
 * query_mem results: a plugin fills out[i].params with memory it allocates through
 * nixl_plugin_params_alloc() so the user can release the whole array with nixl_free(). The
 * core gives the plugin zeroed responses and packs them afterwards; plugins must only set
 * has_value and params (items allocated with malloc, keys and values with strdup): the core
 * takes ownership.
 */

#ifdef __cplusplus
}
#endif

#endif /* NIXL_PLUGIN_H */
