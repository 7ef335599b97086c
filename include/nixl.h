/*
 * nixl.h - the public C API of libnixl.
 *
 * One header for everything a user touches: agents, memory registration, metadata exchange,
 * transfers and notifications. Names follow the reference agent's methods (registerMem ->
 * nixl_agent_register_mem, ...); status values, memory types and operation codes have the
 * reference's numeric values, so that language bindings can map them one to one.
 *
 * Conventions
 *  - Every function returns nixl_status_t. On failure nixl_last_error() gives a readable reason
 *    for the last failure on the calling thread; successful calls leave it alone.
 *  - Outputs come last, through pointers, and are written only on success.
 *  - Memory returned by the library (strings, blobs, lists) is one allocation per output and is
 *    released with nixl_free(). Handles are released with their own release/destroy call.
 *  - Descriptor arrays are plain C arrays; nixl_desc_t has the reference 24-byte layout, so an
 *    N x 3 array of 64-bit integers is a descriptor array without a copy.
 *  - Optional arguments travel in nixl_opt_args_t; pass NULL for "none". Initialise it with
 *    nixl_opt_args_init() so that fields added later get their defaults.
 *  - All agent functions may be called from any thread at any time (see nixl_thread_sync_t).
 */
#ifndef NIXL_H
#define NIXL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* NIXL_VERSION_MAJOR, _MINOR, _PATCH, _STRING: generated from meson.build's project() */
#include "nixl_version.h"

#if defined(__GNUC__)
#define NIXL_API __attribute__((visibility("default")))
#else
#define NIXL_API
#endif

/* ------------------------------------------------------------------------------------------ */
/* Core types                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/**
 * Status codes, in one table: X(name, value, message) for each, in the reference's order and
 * with its values. The enum below, nixl_status_str(), nixl_status_message(), the Python
 * module's constants and exceptions and the table in docs/errors.md are all generated from it
 * (scripts/gen-status-doc.py checks the docs), so a status is added here and nowhere else.
 * The messages are the default texts; nixl_last_error() says what actually went wrong.
 */
#define NIXL_STATUS_MAP(X)                                                                    \
    X(IN_PROG, 1, "the transfer is posted and not complete yet")                              \
    X(SUCCESS, 0, "success")                                                                  \
    X(ERR_NOT_POSTED, -1, "the transfer request was never posted")                            \
    X(ERR_INVALID_PARAM, -2, "invalid argument")                                              \
    X(ERR_BACKEND, -3, "the backend failed")                                                  \
    X(ERR_NOT_FOUND, -4, "not found (not registered, not loaded, no such plugin)")            \
    X(ERR_MISMATCH, -5, "malformed data (metadata, configuration value)")                     \
    X(ERR_NOT_ALLOWED, -6, "operation not allowed")                                           \
    X(ERR_REPOST_ACTIVE, -7, "the transfer is still in progress")                             \
    X(ERR_UNKNOWN, -8, "internal error (out of memory, among others)")                        \
    X(ERR_NOT_SUPPORTED, -9, "operation not supported")                                       \
    X(ERR_REMOTE_DISCONNECT, -10, "the remote agent disconnected")                            \
    X(ERR_CANCELED, -11, "the operation was canceled")                                        \
    X(ERR_NO_TELEMETRY, -12, "telemetry is not enabled")

/** Status codes: NIXL_IN_PROG, NIXL_SUCCESS, NIXL_ERR_NOT_POSTED ... (NIXL_STATUS_MAP). */
typedef enum nixl_status {
#define NIXL_STATUS_ENUM_(name, value, message) NIXL_##name = (value),
    NIXL_STATUS_MAP(NIXL_STATUS_ENUM_)
#undef NIXL_STATUS_ENUM_
} nixl_status_t;

/** Memory types; FILE is the last one (arrays are sized NIXL_MEM_COUNT). */
typedef enum nixl_mem {
    NIXL_DRAM_SEG = 0,
    NIXL_VRAM_SEG = 1,
    NIXL_BLK_SEG = 2,
    NIXL_OBJ_SEG = 3,
    NIXL_FILE_SEG = 4,
} nixl_mem_t;
#define NIXL_MEM_COUNT 5
/** Bit of a memory type in a nixl_mem_mask_t. */
#define NIXL_MEM_BIT(type) (1u << (unsigned)(type))
typedef uint32_t nixl_mem_mask_t;

/** Transfer direction, seen from the initiator: READ pulls from the target, WRITE pushes. */
typedef enum nixl_xfer_op {
    NIXL_READ = 0,
    NIXL_WRITE = 1,
} nixl_xfer_op_t;

/**
 * Agent locking modes (reference values). Unlike the reference, NONE does not mean "no locking":
 * every mode makes the agent safe to call from several threads (NONE and RW take a
 * reader/writer lock, STRICT serialises every call). See docs/differences.md.
 * In NONE and RW, control calls (backends, registration, metadata, connections) run one at a
 * time, and data-path calls (prep, make/create, post, status, release, notifications) run
 * beside each other and beside the slow part of a control call: while an engine starts,
 * registers memory, connects to, loads or lets go of a peer, transfers go on.
 */
typedef enum nixl_thread_sync {
    NIXL_THREAD_SYNC_NONE = 0,
    NIXL_THREAD_SYNC_STRICT = 1,
    NIXL_THREAD_SYNC_RW = 2,
    NIXL_THREAD_SYNC_DEFAULT = NIXL_THREAD_SYNC_NONE,
} nixl_thread_sync_t;

/** How a cost estimate was obtained. */
typedef enum nixl_cost {
    NIXL_COST_ANALYTICAL_BACKEND = 0,
} nixl_cost_t;

/** A transfer descriptor: the reference 24-byte layout (address, length, device id). */
typedef struct nixl_desc {
    uintptr_t addr;  /* virtual address, or offset for FILE / BLK / OBJ */
    size_t len;      /* bytes */
    uint64_t dev_id; /* GPU ordinal, file descriptor, volume or object id; 0 for DRAM */
} nixl_desc_t;

/**
 * A registration descriptor: a transfer descriptor plus a binary-safe meta blob (a file path
 * spec, an object key, ...). The blob is copied by the library when needed.
 */
typedef struct nixl_reg_desc {
    uintptr_t addr;
    size_t len; /* 0 for FILE / BLK / OBJ means "the whole object" */
    uint64_t dev_id;
    const void *meta;
    size_t meta_len;
} nixl_reg_desc_t;

/** A key/value string pair: backend parameters and query results. */
typedef struct nixl_param {
    const char *key;
    const char *value;
} nixl_param_t;

/** A list of parameters returned by the library (one allocation, free with nixl_free()). */
typedef struct nixl_param_list {
    size_t count;
    nixl_param_t *items;
} nixl_param_list_t;

/** One received notification. */
typedef struct nixl_notif {
    const char *agent; /* the sender's (self-declared) agent name, NUL-terminated */
    const void *msg;   /* the payload; may be empty (msg_len == 0) */
    size_t msg_len;
} nixl_notif_t;

/** Notifications returned by nixl_agent_get_notifs() (one allocation, free with nixl_free()). */
typedef struct nixl_notif_list {
    size_t count;
    nixl_notif_t *items; /* in arrival order per backend; backends visited in creation order */
} nixl_notif_list_t;

/** The result of nixl_agent_query_mem() for one descriptor. */
typedef struct nixl_query_resp {
    bool has_value;           /* false: nothing known (missing file, empty path, ...) */
    nixl_param_list_t params; /* e.g. size, mode, mtime for file backends */
} nixl_query_resp_t;

/** Per-request telemetry (reference nixl_xfer_telem_t). */
typedef struct nixl_xfer_telem {
    uint64_t start_time_us;    /* CLOCK_MONOTONIC time of the last post, in microseconds */
    uint64_t post_duration_us; /* time spent inside the post call */
    uint64_t xfer_duration_us; /* post to observed completion */
    uint64_t total_bytes;
    uint64_t desc_count;       /* descriptors after merging */
} nixl_xfer_telem_t;

/* Opaque handles. Their lifetimes are written next to the functions that create them. */
typedef struct nixl_agent nixl_agent_t;         /* one transfer agent */
typedef struct nixl_backend nixl_backend_t;     /* an engine of the agent; lives as long as it */
typedef struct nixl_dlist nixl_dlist_t;         /* a prepared descriptor list */
typedef struct nixl_xfer_req nixl_xfer_req_t;   /* a transfer request */

/* Constants of the reference. */
#define NIXL_DEFAULT_COMM_PORT 8888
#define NIXL_INIT_AGENT ""                  /* "the local (initiator) side" in prep calls */
#define NIXL_NULL_AGENT "NULL_AGENT"
#define NIXL_DEFAULT_METADATA_LABEL "metadata"

/* ------------------------------------------------------------------------------------------ */
/* Configuration and optional arguments                                                        */
/* ------------------------------------------------------------------------------------------ */

/**
 * Agent configuration (reference nixlAgentConfig). Fill it with nixl_agent_config_init() and
 * change what you need; struct_size lets the library tell which fields the caller knows.
 */
typedef struct nixl_agent_config {
    size_t struct_size;
    bool use_prog_thread;          /* allow backends to run a progress thread (default false) */
    bool use_listen_thread;        /* run the metadata side-channel listener (default false) */
    int listen_port;               /* listener port (default 8888; 0 = any free port, see
                                      nixl_agent_get_listen_port()) */
    nixl_thread_sync_t sync_mode;  /* default NIXL_THREAD_SYNC_DEFAULT */
    bool capture_telemetry;        /* collect per-request telemetry (NIXL_TELEMETRY_ENABLE wins) */
    uint64_t pthr_delay_us;        /* backend progress-thread wake-up period (default 0) */
    uint64_t lthr_delay_us;        /* metadata worker wake-up period (default 100000) */
    uint64_t etcd_watch_timeout_us; /* wait for a missing etcd key (default 5000000) */
    const char *listen_addr;       /* the listener's address: an IP literal or host name
                                      (default NULL: NIXL_SIDECHANNEL_BIND, else all
                                      addresses as the reference); borrowed for
                                      nixl_agent_create only */
    const char *auth_secret;       /* shared secret of authenticated metadata, at least 16
                                      bytes (default NULL: NIXL_AUTH_SECRET); borrowed for
                                      nixl_agent_create only. docs/security.md */
    const char *auth_secret_file;  /* a file (mode 0600 or stricter) holding the secret
                                      (default NULL: NIXL_AUTH_SECRET_FILE); borrowed */
} nixl_agent_config_t;

/** Fill `cfg` with the reference defaults. */
NIXL_API void nixl_agent_config_init(nixl_agent_config_t *cfg);

/**
 * Optional arguments of agent calls (reference nixl_opt_args_t). Initialise with
 * nixl_opt_args_init(); all pointers are borrowed for the duration of the call only.
 */
typedef struct nixl_opt_args {
    size_t struct_size;
    nixl_backend_t *const *backends; /* restrict the call to these engines (NULL: all) */
    size_t num_backends;
    bool has_notif;                  /* attach a notification (may be empty) */
    const void *notif;
    size_t notif_len;
    bool skip_desc_merge;            /* make_xfer_req: keep descriptors as given */
    bool include_conn_info;          /* partial metadata: include connection info */
    const char *ip_addr;             /* side-channel peer (send / fetch / invalidate metadata) */
    int port;                        /* side-channel port (default 8888) */
    const char *metadata_label;      /* key suffix for central metadata stores */
    const void *custom_param;        /* opaque blob forwarded to the backend at create */
    size_t custom_param_len;
    uint64_t deadline_us;            /* post_xfer_req: a transfer still running this long
                                        after the post is canceled (0: no deadline; ours) */
} nixl_opt_args_t;

/** Fill `opt` with the defaults (no hints, no notification, port 8888). */
NIXL_API void nixl_opt_args_init(nixl_opt_args_t *opt);

/* ------------------------------------------------------------------------------------------ */
/* Errors, names, memory                                                                       */
/* ------------------------------------------------------------------------------------------ */

/**
 * The reason of the last failure on the calling thread ("" if nothing failed on it yet).
 *
 * The rule is errno's: a call that fails sets the reason; a call that succeeds leaves it as it
 * was, so the reason of the last failure survives any number of successful calls until the next
 * failure replaces it. A successful call never leaves a reason of its own, not even of a step it
 * tried and recovered from (a backend that refused what another took, an option that is not
 * set). Read it right after the call that failed. Out of memory is NIXL_ERR_UNKNOWN with a
 * reason that starts with "out of memory" (docs/errors.md).
 *
 * The string is owned by the library and stays valid until the next failing call on this
 * thread.
 */
NIXL_API const char *nixl_last_error(void);

/** Reference names: "NIXL_SUCCESS", ..., "BAD_STATUS" for unknown values. Static strings. */
NIXL_API const char *nixl_status_str(nixl_status_t status);
/**
 * The default message of a status ("invalid argument", ...; "unknown status" for values not in
 * NIXL_STATUS_MAP). Static strings. Not in the reference.
 */
NIXL_API const char *nixl_status_message(nixl_status_t status);
/** "DRAM_SEG", "VRAM_SEG", "BLK_SEG", "OBJ_SEG", "FILE_SEG", or "BAD_SEG". Static strings. */
NIXL_API const char *nixl_mem_str(nixl_mem_t type);
/** "READ", "WRITE" or "BAD_OP". Static strings. */
NIXL_API const char *nixl_op_str(nixl_xfer_op_t op);

/** Parse a memory type: "DRAM"/"DRAM_SEG"/"cpu", "VRAM"/"VRAM_SEG"/"cuda", "BLOCK", "OBJ", "FILE". */
NIXL_API nixl_status_t nixl_mem_from_str(const char *name, nixl_mem_t *out);

/** Release anything the library returned through an output pointer (NULL is a no-op). */
NIXL_API void nixl_free(void *ptr);

/** The library version as "major.minor.patch" (static string). */
NIXL_API const char *nixl_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Agent lifecycle and backends                                                                */
/* ------------------------------------------------------------------------------------------ */

/**
 * Create an agent named `name` (non-empty, at most 255 bytes). `cfg` may be NULL for the
 * defaults. No backend is created; no network I/O happens except binding the listener when
 * cfg->use_listen_thread is set (on every address, IPv6 and IPv4; a port in use fails the call
 * with NIXL_ERR_BACKEND).
 *
 * @return NIXL_SUCCESS and *out; NIXL_ERR_INVALID_PARAM for a bad name or config;
 *         NIXL_ERR_MISMATCH for a malformed configuration file or variable.
 * Ownership: destroy the agent with nixl_agent_destroy().
 */
NIXL_API nixl_status_t nixl_agent_create(const char *name, const nixl_agent_config_t *cfg,
                                         nixl_agent_t **out);

/**
 * Destroy an agent and everything it still holds, in the reverse order of creation:
 *  1. its own threads stop and are joined: the side-channel listener and worker and the etcd
 *     worker (messages already queued get a bounded time to leave);
 *  2. transfer requests not released yet are released, newest first: one in flight is aborted
 *     by its engine. A request that the engine refuses to let go (its transfer could not be
 *     stopped, e.g. I/O still in the kernel) is never freed under it: destroy asks again for up
 *     to 30 seconds, with a warning naming the request; if it is still refused then, the
 *     request and its engine are left alive (an error in the log names them) rather than freed
 *     while the engine may still write into memory;
 *  3. prepared descriptor lists not released yet are freed, newest first;
 *  4. peers' metadata is unloaded and the engines disconnected from them;
 *  5. what is still registered is deregistered;
 *  6. the engines are destroyed, newest first; each joins its own threads (progress threads,
 *     workers) before it goes.
 * Afterwards every handle of the agent (backends, prepared lists, requests) is invalid.
 * No other call on the agent or its handles may run during or after this call. Unlike the
 * reference, which leaves requests and lists to the caller (docs/differences.md).
 * NULL is a no-op. It does not change nixl_last_error().
 */
NIXL_API void nixl_agent_destroy(nixl_agent_t *agent);

/** The agent's name (owned by the agent). */
NIXL_API const char *nixl_agent_name(const nixl_agent_t *agent);

/**
 * The plugins this process can use: built-in and loaded ones first (sorted), then those found
 * in the plugin directory and not loaded yet (sorted). A listed plugin may still fail to load.
 *
 * @param out_names set to an array of *out_count NUL-terminated names (one allocation: free the
 *        array with nixl_free()).
 */
NIXL_API nixl_status_t nixl_agent_get_avail_plugins(nixl_agent_t *agent, char ***out_names,
                                                    size_t *out_count);

/**
 * A plugin's supported memory types and default parameters, loading the plugin if needed.
 *
 * @param out_mems  set to the supported memory types (may be NULL).
 * @param out_params set to the default parameters (may be NULL; free with nixl_free()).
 * @return NIXL_ERR_NOT_FOUND for an unknown or unloadable plugin (nixl_last_error() names the file
 *         and the loader's reason).
 */
NIXL_API nixl_status_t nixl_agent_get_plugin_params(nixl_agent_t *agent, const char *plugin,
                                                    nixl_mem_mask_t *out_mems,
                                                    nixl_param_list_t **out_params);

/**
 * Create an engine of plugin `plugin` with the given parameters (copied). At most one engine
 * per plugin name.
 *
 * @return NIXL_SUCCESS and *out (owned by the agent: valid until nixl_agent_destroy());
 *         NIXL_ERR_INVALID_PARAM if one exists already; NIXL_ERR_NOT_FOUND if the plugin cannot be
 *         loaded; NIXL_ERR_NOT_ALLOWED for forbidden combinations (GDS with GDS_MT);
 *         NIXL_ERR_BACKEND if the engine fails to start (the reason says why; NIXL_ERR_UNKNOWN
 *         when it ran out of memory).
 */
NIXL_API nixl_status_t nixl_agent_create_backend(nixl_agent_t *agent, const char *plugin,
                                                 const nixl_param_t *params, size_t num_params,
                                                 nixl_backend_t **out);

/** The type name of an engine ("UCX", "SHM", ...), owned by the agent. */
NIXL_API const char *nixl_backend_name(const nixl_backend_t *backend);

/**
 * An engine's supported memory types and the parameters it was created with (the user's
 * parameters; defaults the user did not set are added, see docs/differences.md).
 *
 * @param out_params free with nixl_free(); either output may be NULL.
 */
NIXL_API nixl_status_t nixl_agent_get_backend_params(nixl_agent_t *agent,
                                                     const nixl_backend_t *backend,
                                                     nixl_mem_mask_t *out_mems,
                                                     nixl_param_list_t **out_params);

/* ------------------------------------------------------------------------------------------ */
/* Memory registration                                                                         */
/* ------------------------------------------------------------------------------------------ */

/**
 * Register memory with every engine that supports `type` (or those in opt->backends). An engine
 * that fails on any descriptor keeps nothing of the list; the call succeeds if at least one
 * engine registered the whole list. Descriptors are copied; the memory must stay valid until it
 * is deregistered. Overlapping and repeated registrations are allowed. For FILE, BLK and OBJ a
 * zero length means "the whole object".
 *
 * @return NIXL_SUCCESS; NIXL_ERR_INVALID_PARAM (bad type, NULL array with count > 0);
 *         NIXL_ERR_NOT_FOUND (no engine supports `type`); NIXL_ERR_BACKEND (every engine
 *         failed; the reason names the first failing descriptor).
 */
NIXL_API nixl_status_t nixl_agent_register_mem(nixl_agent_t *agent, nixl_mem_t type,
                                               const nixl_reg_desc_t *descs, size_t count,
                                               const nixl_opt_args_t *opt);

/**
 * Deregister regions registered earlier, matched exactly on (addr, len, dev_id). Per engine it
 * is all or nothing; across engines best effort.
 *
 * @return NIXL_SUCCESS; NIXL_ERR_NOT_FOUND if a descriptor is not registered (nothing of the
 *         list is deregistered from that engine).
 */
NIXL_API nixl_status_t nixl_agent_deregister_mem(nixl_agent_t *agent, nixl_mem_t type,
                                                 const nixl_reg_desc_t *descs, size_t count,
                                                 const nixl_opt_args_t *opt);

/**
 * Ask one engine (opt->backends must name exactly one) about storage objects (e.g. file sizes).
 *
 * @param out_resp set to an array of `count` responses (one allocation, free with nixl_free()).
 * @return NIXL_ERR_NOT_SUPPORTED when the engine cannot answer.
 */
NIXL_API nixl_status_t nixl_agent_query_mem(nixl_agent_t *agent, nixl_mem_t type,
                                            const nixl_reg_desc_t *descs, size_t count,
                                            const nixl_opt_args_t *opt,
                                            nixl_query_resp_t **out_resp);

/* ------------------------------------------------------------------------------------------ */
/* Metadata                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/**
 * This agent's metadata in the reference wire format: its name, the connection info of every
 * remote-capable engine and all their registered regions.
 *
 * @param out_blob, out_len set to the blob (free with nixl_free()).
 * @return NIXL_ERR_INVALID_PARAM when no remote-capable engine exists.
 */
NIXL_API nixl_status_t nixl_agent_get_local_md(nixl_agent_t *agent, void **out_blob,
                                               size_t *out_len);

/**
 * Metadata for just the regions in `descs` (each must be registered exactly), with connection
 * info if opt->include_conn_info is set or `count` is 0 (then: connection info only).
 *
 * @return NIXL_ERR_NOT_FOUND if a descriptor is not a registered region; NIXL_ERR_BACKEND if no
 *         remote-capable engine serves `type`.
 */
NIXL_API nixl_status_t nixl_agent_get_local_partial_md(nixl_agent_t *agent, nixl_mem_t type,
                                                       const nixl_reg_desc_t *descs, size_t count,
                                                       const nixl_opt_args_t *opt,
                                                       void **out_blob, size_t *out_len);

/**
 * Load a peer's (full or partial) metadata. Loading is incremental and idempotent: regions add
 * up; a region already known must have the same blob. Connection info of a loaded peer cannot
 * change until it is invalidated.
 *
 * @param out_name set to the peer's name (free with nixl_free()); may be NULL.
 * @return NIXL_ERR_MISMATCH for a malformed blob (the reason says where); NIXL_ERR_INVALID_PARAM
 *         for our own name; NIXL_ERR_NOT_ALLOWED for changed connection info or region blobs;
 *         NIXL_ERR_BACKEND when no engine of ours can reach the peer.
 */
NIXL_API nixl_status_t nixl_agent_load_remote_md(nixl_agent_t *agent, const void *blob,
                                                 size_t len, char **out_name);

/**
 * Forget a peer: unload its regions and disconnect engines. Requests prepared against it are
 * refused afterwards (NIXL_ERR_NOT_FOUND).
 *
 * @return NIXL_ERR_NOT_FOUND if nothing was loaded for `name`.
 */
NIXL_API nixl_status_t nixl_agent_invalidate_remote_md(nixl_agent_t *agent, const char *name);

/**
 * Whether a peer's metadata is loaded and, if count > 0, whether every descriptor lies inside
 * one of its regions on an engine that has its connection info.
 *
 * @return NIXL_SUCCESS or NIXL_ERR_NOT_FOUND. When nothing is loaded and the last fetch of
 *         `name` failed, that fetch's error is returned instead (nixl_last_error() says why).
 */
NIXL_API nixl_status_t nixl_agent_check_remote_md(nixl_agent_t *agent, const char *name,
                                                  nixl_mem_t type, const nixl_desc_t *descs,
                                                  size_t count);

/**
 * Make sure engines are connected to a loaded peer (all engines, or opt->backends).
 *
 * @return NIXL_ERR_NOT_FOUND if the peer's connection info is not loaded.
 */
NIXL_API nixl_status_t nixl_agent_make_connection(nixl_agent_t *agent, const char *name,
                                                  const nixl_opt_args_t *opt);

/*
 * Metadata exchange through the side channel (reference NIXL-SEMANTICS 5.9, 5.10): with
 * opt->ip_addr set (an IPv4 or IPv6 literal, optionally in brackets, or a host name) and
 * opt->port (default 8888), the message goes over TCP to that peer's listener. These calls
 * validate, serialise and queue; the network I/O runs on the agent's side-channel thread, so
 * none of them waits for the peer. A message that cannot be delivered is logged at ERROR; the
 * outcome of a fetch is kept (nixl_agent_get_fetch_status(), nixl_agent_check_remote_md()).
 * An agent does not need its own listener to send or fetch.
 *
 * Without opt->ip_addr, when NIXL_ETCD_ENDPOINTS is set, the calls go to etcd instead
 * (reference 5.11; docs/metadata.md): full metadata under <ns>/<agent>/metadata, partial
 * metadata under <ns>/<agent>/<opt->metadata_label> (required), fetch by name (and label)
 * waiting up to cfg.etcd_watch_timeout_us for the key, invalidate = delete all our keys.
 *
 * Common returns: NIXL_ERR_INVALID_PARAM without opt->ip_addr when no etcd is configured, for
 * a bad port or a malformed address, and for a partial send to etcd without a label.
 */

/** Send this agent's full metadata (the peer loads it). */
NIXL_API nixl_status_t nixl_agent_send_local_md(nixl_agent_t *agent, const nixl_opt_args_t *opt);

/** Send partial metadata (see nixl_agent_get_local_partial_md()); opt->metadata_label is
 * ignored by the side channel. */
NIXL_API nixl_status_t nixl_agent_send_local_partial_md(nixl_agent_t *agent, nixl_mem_t type,
                                                        const nixl_reg_desc_t *descs,
                                                        size_t count,
                                                        const nixl_opt_args_t *opt);

/**
 * Ask the peer at opt->ip_addr for its full metadata and load the reply, asynchronously. The
 * fetch fails (observably) when the peer cannot be reached, closes the connection, sends
 * something that is not metadata, turns out to be another agent than `name`, or does not
 * answer within NIXL_SIDECHANNEL_REPLY_TIMEOUT_MS.
 */
NIXL_API nixl_status_t nixl_agent_fetch_remote_md(nixl_agent_t *agent, const char *name,
                                                  const nixl_opt_args_t *opt);

/** Ask the peer at opt->ip_addr to forget this agent's metadata. */
NIXL_API nixl_status_t nixl_agent_invalidate_local_md(nixl_agent_t *agent,
                                                      const nixl_opt_args_t *opt);

/**
 * The state of the last fetch of `name` (not in the reference).
 *
 * @return NIXL_IN_PROG while it runs; NIXL_SUCCESS once the metadata is loaded; the fetch's
 *         error when it failed (nixl_last_error() says why: NIXL_ERR_REMOTE_DISCONNECT for an
 *         unreachable or vanished peer, NIXL_ERR_MISMATCH for bytes that are not its metadata
 *         or another agent's, NIXL_ERR_BACKEND for no reply in time); NIXL_ERR_NOT_FOUND if no
 *         fetch of `name` was requested.
 */
NIXL_API nixl_status_t nixl_agent_get_fetch_status(nixl_agent_t *agent, const char *name);

/**
 * The TCP port the side-channel listener is bound to; useful with listen_port 0 (not in the
 * reference, where that port can only be read from the log).
 *
 * @return NIXL_ERR_NOT_FOUND when the agent does not listen.
 */
NIXL_API nixl_status_t nixl_agent_get_listen_port(nixl_agent_t *agent, int *port);

/* ------------------------------------------------------------------------------------------ */
/* Transfers                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/**
 * Validate a descriptor list once and keep it resolved for nixl_agent_make_xfer_req().
 * `agent_name` is NIXL_INIT_AGENT ("") for the local side, this agent's own name for the
 * loopback target side, or a peer's name. Every descriptor must lie inside one registered
 * region (of that side) of an engine; every engine for which the whole list validates is kept.
 *
 * @return NIXL_ERR_NOT_FOUND if the peer is unknown or no engine validates the whole list (the
 *         reason names the first descriptor that did not fit).
 * Ownership: release with nixl_agent_release_dlist(); it may be released as soon as the
 * requests made from it exist.
 */
NIXL_API nixl_status_t nixl_agent_prep_xfer_dlist(nixl_agent_t *agent, const char *agent_name,
                                                  nixl_mem_t type, const nixl_desc_t *descs,
                                                  size_t count, const nixl_opt_args_t *opt,
                                                  nixl_dlist_t **out);

/** Release a prepared list (NULL is a no-op). Always NIXL_SUCCESS. */
NIXL_API nixl_status_t nixl_agent_release_dlist(nixl_agent_t *agent, nixl_dlist_t *dlist);

/**
 * Make a transfer request from two prepared lists and index arrays of equal, non-zero length:
 * element i moves local[local_idx[i]] <-> remote[remote_idx[i]]. Unless opt->skip_desc_merge,
 * runs of consecutive indices whose descriptors are contiguous in one region on both sides are
 * fused into one descriptor.
 *
 * @return NIXL_ERR_INVALID_PARAM (wrong handle kinds, unequal counts, index out of range, length
 *         mismatch, no common engine); NIXL_ERR_NOT_FOUND (peer invalidated since prep);
 *         NIXL_ERR_BACKEND (notification on an engine without notifications);
 *         NIXL_ERR_REMOTE_DISCONNECT (the engine's connection to the peer failed: the peer's
 *         metadata is invalidated, as by a failed post).
 * Ownership: release with nixl_agent_release_xfer_req().
 */
NIXL_API nixl_status_t nixl_agent_make_xfer_req(nixl_agent_t *agent, nixl_xfer_op_t op,
                                                const nixl_dlist_t *local, const int *local_idx,
                                                size_t local_count, const nixl_dlist_t *remote,
                                                const int *remote_idx, size_t remote_count,
                                                const nixl_opt_args_t *opt,
                                                nixl_xfer_req_t **out);

/**
 * Make a transfer request directly from descriptor lists: local[i] <-> remote[i] on
 * `remote_agent` (this agent's own name for loopback). The engine is chosen in the documented
 * preference order (docs/backends.md) among those for which both lists validate, or from
 * opt->backends in the given order.
 *
 * @return NIXL_ERR_INVALID_PARAM (unequal counts or lengths); NIXL_ERR_NOT_FOUND (unknown peer,
 *         no common engine, memory not registered); NIXL_ERR_BACKEND (notification on an engine
 *         without notifications, backend preparation failed); NIXL_ERR_REMOTE_DISCONNECT (the
 *         engine's connection to the peer failed: the peer's metadata is invalidated, as by a
 *         failed post; load it again to retry).
 * Ownership: release with nixl_agent_release_xfer_req().
 */
NIXL_API nixl_status_t nixl_agent_create_xfer_req(nixl_agent_t *agent, nixl_xfer_op_t op,
                                                  nixl_mem_t local_type,
                                                  const nixl_desc_t *local, size_t local_count,
                                                  nixl_mem_t remote_type,
                                                  const nixl_desc_t *remote, size_t remote_count,
                                                  const char *remote_agent,
                                                  const nixl_opt_args_t *opt,
                                                  nixl_xfer_req_t **out);

/**
 * Start (or restart) a transfer. A notification given in `opt` replaces the one stored in the
 * request for this and later posts; an `opt` without a notification clears it; a NULL `opt`
 * keeps it.
 *
 * @return NIXL_SUCCESS (done), NIXL_IN_PROG, or an error: NIXL_ERR_REPOST_ACTIVE (still
 *         running), NIXL_ERR_NOT_FOUND (the peer was invalidated since the request was made),
 *         NIXL_ERR_REMOTE_DISCONNECT (the peer is gone; its metadata is invalidated).
 */
NIXL_API nixl_status_t nixl_agent_post_xfer_req(nixl_agent_t *agent, nixl_xfer_req_t *req,
                                                const nixl_opt_args_t *opt);

/**
 * The state of a request: NIXL_SUCCESS, NIXL_IN_PROG, NIXL_ERR_NOT_POSTED for a request never
 * posted, or the error that ended it. A post made with opt->deadline_us that is still running
 * when the deadline passes is canceled here (as nixl_agent_cancel_xfer_req) and reports
 * NIXL_ERR_CANCELED.
 */
NIXL_API nixl_status_t nixl_agent_get_xfer_status(nixl_agent_t *agent, nixl_xfer_req_t *req);

/**
 * Stop a posted transfer (ours; the reference has no cancel). Waits, at most about a second,
 * until the backend has stopped it: a backend stops between chunks or rounds what it can
 * (SHM's worker, staged GPU copies) and waits for what it cannot stop (a GPU copy in flight;
 * UCX cannot cancel RMA operations, so a UCX transfer is waited for).
 *
 * @return NIXL_ERR_CANCELED when it was stopped (part of its bytes may have moved); its final
 *         status when it ended first (NIXL_SUCCESS, or its error); NIXL_ERR_REPOST_ACTIVE when it
 *         could not be stopped in time: it is still running, its buffers must stay valid, ask
 *         again or release it later. Not posted: NIXL_ERR_NOT_POSTED.
 */
NIXL_API nixl_status_t nixl_agent_cancel_xfer_req(nixl_agent_t *agent, nixl_xfer_req_t *req);

/**
 * Release a request. An in-flight transfer is aborted first.
 *
 * @return NIXL_SUCCESS; NIXL_ERR_REPOST_ACTIVE if the engine could not stop the transfer (I/O
 *         the kernel still holds, ...; nixl_last_error() gives the engine's reason). The request
 *         is then NOT released: it stays valid, and memory it reads or writes must stay valid
 *         too. Release it again later (its status may be queried meanwhile);
 *         nixl_agent_destroy() retries it for a while.
 */
NIXL_API nixl_status_t nixl_agent_release_xfer_req(nixl_agent_t *agent, nixl_xfer_req_t *req);

/** The engine chosen for a request (owned by the agent). */
NIXL_API nixl_status_t nixl_agent_query_xfer_backend(nixl_agent_t *agent,
                                                     const nixl_xfer_req_t *req,
                                                     nixl_backend_t **out);

/**
 * The engine's estimate of how long the request takes.
 *
 * @return NIXL_ERR_NOT_SUPPORTED when the engine has no estimate.
 */
NIXL_API nixl_status_t nixl_agent_estimate_xfer_cost(nixl_agent_t *agent,
                                                     const nixl_xfer_req_t *req,
                                                     int64_t *out_duration_us,
                                                     int64_t *out_err_margin_us,
                                                     nixl_cost_t *out_method);

/**
 * Telemetry of a completed request.
 *
 * @return NIXL_ERR_NO_TELEMETRY if telemetry is off for this agent; the request's status
 *         (NIXL_IN_PROG, NIXL_ERR_NOT_POSTED, an error) if it is not complete, leaving *out alone.
 */
NIXL_API nixl_status_t nixl_agent_get_xfer_telemetry(nixl_agent_t *agent,
                                                     const nixl_xfer_req_t *req,
                                                     nixl_xfer_telem_t *out);

/* ------------------------------------------------------------------------------------------ */
/* Notifications                                                                               */
/* ------------------------------------------------------------------------------------------ */

/**
 * Send a standalone notification (binary-safe, may be empty) to a loaded peer or to ourselves.
 *
 * @return NIXL_ERR_NOT_FOUND if the peer's connection info is not loaded; NIXL_ERR_BACKEND if no
 *         engine supports notifications.
 */
NIXL_API nixl_status_t nixl_agent_gen_notif(nixl_agent_t *agent, const char *remote_agent,
                                            const void *msg, size_t len,
                                            const nixl_opt_args_t *opt);

/**
 * Take the notifications that arrived since the last call (from all notification engines, or
 * opt->backends). Each is returned once.
 *
 * @param out set to the list (free with nixl_free()); an empty list when none arrived.
 * @return NIXL_ERR_BACKEND if no engine supports notifications.
 */
NIXL_API nixl_status_t nixl_agent_get_notifs(nixl_agent_t *agent, const nixl_opt_args_t *opt,
                                             nixl_notif_list_t **out);

/* ------------------------------------------------------------------------------------------ */
/* Serialized descriptor lists                                                                 */
/* ------------------------------------------------------------------------------------------ */

/*
 * The reference's serialized form of its descriptor lists (nixlXferDList, nixlRegDList), which is
 * also the state its Python pickles carry: byte for byte what the reference writes (host-endian),
 * so a list serialized by either implementation loads in the other. Transfer lists hold
 * descriptors; registration lists hold descriptors with their meta blobs. These calls need no
 * agent and may be called from any thread.
 */

/**
 * Serialize a transfer descriptor list of memory type `type`.
 *
 * @param out_blob, out_len set to the bytes (one allocation: free with nixl_free()).
 * @return NIXL_SUCCESS; NIXL_ERR_INVALID_PARAM for a bad memory type, `descs` NULL with `count`
 *         > 0 or a NULL output; NIXL_ERR_UNKNOWN when memory is short.
 */
NIXL_API nixl_status_t nixl_xfer_dlist_serialize(nixl_mem_t type, const nixl_desc_t *descs,
                                                 size_t count, void **out_blob, size_t *out_len);

/**
 * Serialize a registration descriptor list: as nixl_xfer_dlist_serialize(), each descriptor with
 * its meta blob (binary-safe; a NULL meta with meta_len > 0 is NIXL_ERR_INVALID_PARAM).
 */
NIXL_API nixl_status_t nixl_reg_dlist_serialize(nixl_mem_t type, const nixl_reg_desc_t *descs,
                                                size_t count, void **out_blob, size_t *out_len);

/**
 * Parse a serialized transfer descriptor list. The input is only read during the call.
 *
 * @param out_descs set to the *out_count descriptors (one allocation, non-NULL even when the
 *        list is empty: free with nixl_free()).
 * @return NIXL_SUCCESS; NIXL_ERR_MISMATCH for bytes that are not a serialized transfer list (a
 *         registration list included), nixl_last_error() naming the field and its offset;
 *         NIXL_ERR_INVALID_PARAM for a NULL output; NIXL_ERR_UNKNOWN when memory is short.
 */
NIXL_API nixl_status_t nixl_xfer_dlist_deserialize(const void *blob, size_t len,
                                                   nixl_mem_t *out_type,
                                                   nixl_desc_t **out_descs, size_t *out_count);

/**
 * Parse a serialized registration descriptor list, as nixl_xfer_dlist_deserialize() (a transfer
 * list is NIXL_ERR_MISMATCH). *out_descs is one allocation holding the descriptors followed by
 * their meta blobs, which the descriptors' meta pointers point to; nothing points into `blob`.
 * Free it with nixl_free().
 */
NIXL_API nixl_status_t nixl_reg_dlist_deserialize(const void *blob, size_t len,
                                                  nixl_mem_t *out_type,
                                                  nixl_reg_desc_t **out_descs, size_t *out_count);

/**
 * Messages this agent refused for want of a valid proof (authenticated metadata,
 * docs/security.md): unauthenticated LOAD/SEND/INVL, failed proofs, replays, renames, INVLs
 * of another agent, etcd blobs that do not verify. 0 when no secret is set.
 *
 * @return NIXL_SUCCESS; NIXL_ERR_INVALID_PARAM for NULL arguments.
 */
NIXL_API nixl_status_t nixl_agent_get_auth_refused(const nixl_agent_t *agent, uint64_t *count);

#ifdef __cplusplus
}
#endif

#endif /* NIXL_H */
