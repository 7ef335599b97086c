/*
 * nb.h - the pieces of nixlbench and how they fit: options (nb_opts.c, nb_config.c), the
 * two-process runtime (nb_rt.c), the agent and its buffers (nb_agent.c), the measuring
 * initiator (nb_init.c, nb_loop.c) and the target (nb_target.c), statistics (nb_stats.c), and
 * output (nb_out.c, nb_json.c). The tool uses only the public API (nixl.h), and compiles in
 * the library's TOML reader (src/core/toml.c, libc only) for --config_file.
 */
#ifndef NB_H
#define NB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nixl.h"

/* Exit codes: usage errors are told apart from failed runs, as getopt-style tools do. */
#define NB_EXIT_FAIL 1
#define NB_EXIT_USAGE 2

/* Upper bounds of waits, so that a dead or stuck peer ends the run instead of hanging it. */
#define NB_CONNECT_TIMEOUT_MS 60000 /* the second ASIO process may start much later */
#define NB_REPLY_TIMEOUT_MS 120000  /* the target fills and registers large buffers */
#define NB_XFER_TIMEOUT_MS 30000    /* one transfer, post to completion */
#define NB_NOTIF_TIMEOUT_MS 30000   /* the last notification after the last completion */

#define NB_NOTIF "0xBEEF"
#define NB_INITIATOR "initiator"
#define NB_TARGET "target"
#define NB_FILL_INITIATOR 0xBB
#define NB_FILL_TARGET 0xAA
#define NB_LARGE_BLOCK (1u << 20)
#define NB_LOCAL_MAX_BLOCK (16u << 20) /* default max_block_size of a local (spawned) run */ /* iterations are divided by large_blk_iter_ftr above this */

/* ---- options ---- */

typedef enum nb_kind { NB_STR, NB_ENUM, NB_U64, NB_SIZE, NB_BOOL } nb_kind_t;

typedef struct nb_opt {
    const char *name;
    nb_kind_t kind;
    size_t off;          /* offset of the field in nb_cfg_t (char *, uint64_t or bool) */
    const char *def;     /* default, as it would be typed */
    const char *choices; /* NB_ENUM: "A|B|C" (matched without case, stored as written here) */
    const char *title;   /* the config block's description starts with it; NULL: not shown */
    const char *help;
    uint64_t max;        /* numbers: largest accepted value (0: no limit) */
} nb_opt_t;

typedef struct nb_cfg {
    char *config_file, *benchmark_group, *runtime_type, *worker_type, *backend;
    char *etcd_endpoints, *asio_address;
    uint64_t asio_port;
    char *initiator_seg_type, *target_seg_type, *scheme, *mode, *op_type;
    bool check_consistency;
    uint64_t total_buffer_size, start_block_size, max_block_size, start_batch_size,
        max_batch_size;
    uint64_t num_iter, warmup_iter, large_blk_iter_ftr, num_threads, num_initiator_dev,
        num_target_dev;
    bool enable_pt;
    uint64_t progress_threads;
    bool enable_vmm, use_hugepages, recreate_xfer, reregister_mem, prepared_xfer;
    bool dram_memfd; /* DRAM buffers on a memfd (MAP_SHARED): SHM peers map them */
    bool same_block; /* every descriptor of a request on the request's first block */
    uint64_t pipeline_depth;
    char *device_list;
    bool use_device_api;
    char *filepath, *filenames;
    uint64_t num_files;
    bool storage_enable_direct;
    char *randomize_location_mode;
    uint64_t randomize_location_mode_seed;
    uint64_t gds_batch_pool_size, gds_batch_limit, gds_mt_num_threads;
    char *posix_api_type;
    uint64_t posix_ios_pool_size, posix_kernel_queue_size;
    char *gpunetio_device_list, *gpunetio_oob_list;
    uint64_t hf3fs_iopool_size;
    char *obj_access_key, *obj_secret_key, *obj_session_token, *obj_bucket_name, *obj_scheme,
        *obj_region;
    bool obj_use_virtual_addressing;
    char *obj_endpoint_override, *obj_req_checksum, *obj_ca_bundle;
    uint64_t obj_crt_min_limit;
    bool obj_accelerated_enable;
    char *obj_accelerated_type;
    char *azure_blob_account_url, *azure_blob_container_name, *azure_blob_connection_string;
    char *infinia_config_file;
    char *gusli_client_name;
    uint64_t gusli_max_simultaneous_requests;
    char *gusli_config_file, *gusli_device_byte_offsets, *gusli_device_security;
    bool gusli_try_use_uring;
    /* beyond the reference */
    char *json, *compare;
    bool help;
    char *peer; /* hidden: "host:port" of the initiator that spawned this target */

    /* derived by nb_config_finish() */
    bool *set;            /* per option: given on the command line or in the config file */
    nixl_xfer_op_t op;
    bool storage;         /* a storage backend: one process */
    bool auto_backend;    /* --backend not given: the best one available is chosen */
    bool local;           /* no runtime given: we spawn the target on this host */
    bool auto_buffer;     /* --total_buffer_size not given: sized to the sweep */
    bool auto_max_block;  /* --max_block_size not given, local run: NB_LOCAL_MAX_BLOCK */
} nb_cfg_t;

extern const nb_opt_t nb_opts[];
extern const size_t nb_num_opts;

/* The option called `name` (no dashes), or NULL. */
const nb_opt_t *nb_opt_find(const char *name);
/* The known option closest to a misspelt name, or NULL when none is close. */
const char *nb_opt_suggest(const char *name);
/* The choice of an NB_ENUM option that `s` names (any case), as the table writes it (*len
 * bytes, not NUL-terminated), or NULL. */
const char *nb_opt_choice(const nb_opt_t *o, const char *s, size_t *len);
/* Store `value` (text) into the option; false with a message in err. */
bool nb_opt_set(nb_cfg_t *cfg, const nb_opt_t *o, const char *value, char *err, size_t errlen);
/* The option's current value as text (static buffer for numbers). */
const char *nb_opt_value(const nb_cfg_t *cfg, const nb_opt_t *o, char *buf, size_t len);
void nb_print_help(const char *argv0);

/* Parse argv (and --config_file), apply defaults, validate. Returns 0, or an exit code after
 * printing the reason on stderr. */
int nb_config_load(nb_cfg_t *cfg, int argc, char **argv);
void nb_config_free(nb_cfg_t *cfg);
bool nb_backend_is_storage(const char *name);

/* ---- the runtime: one TCP connection between the initiator (rank 0) and the target ---- */

enum nb_msg {
    NB_MSG_HELLO = 1, /* initiator -> target: nb_hello_t */
    NB_MSG_MD,        /* both ways: u64 base address, u64 length, u64 memory type (nixl_mem_t),
                         u64 device id, then the agent's metadata */
    NB_MSG_STEP,      /* initiator -> target: nb_step_t; the target answers READY */
    NB_MSG_READY,
    NB_MSG_DONE,      /* initiator -> target: nb_done_t; the target answers VERDICT */
    NB_MSG_VERDICT,   /* nb_verdict_t */
    NB_MSG_FIN,       /* initiator -> target: exit */
    NB_MSG_ERROR,     /* either way: text; the sender gives up */
};

typedef struct nb_rt {
    int fd;
    int rank;      /* 0: initiator */
    pid_t child;   /* the spawned target, or 0 */
    int gone_told; /* the peer's end was reported (threads may notice it together) */
} nb_rt_t;

/* Version 2: the initiator chooses the target's memory (target_vram), and the metadata
 * message says each side's memory type and device. */
#define NB_PROTOCOL 2

typedef struct nb_hello {
    uint32_t version;
    char backend[32];
    uint64_t buffer_size;
    uint32_t num_threads;
    uint8_t check_consistency;
    uint8_t target_vram; /* the initiator's --target_seg_type: the target's buffer is VRAM */
} nb_hello_t;

typedef struct nb_step {
    uint64_t slice;   /* bytes per initiator thread */
    uint64_t span;    /* bytes used at the start of each slice this step */
    uint32_t threads;
    uint8_t fill;     /* refill the used bytes with the target pattern */
} nb_step_t;

typedef struct nb_done {
    uint64_t notifs;  /* notifications the initiator sent this step */
    uint8_t verify;   /* check that the used bytes hold the initiator pattern (WRITE) */
} nb_done_t;

typedef struct nb_verdict {
    uint8_t ok;
    char why[200];
} nb_verdict_t;

/* These return 0, or non-zero after printing why (nb_fail). */
int nb_rt_asio(nb_rt_t *rt, const char *addr, int port);
int nb_rt_spawn(nb_rt_t *rt, int argc, char **argv);
int nb_rt_join(nb_rt_t *rt, const char *peer);
/* A listening socket on a free port of the loopback or of every IPv4 address (the port in
 * *port), or -1. */
int nb_rt_listener(bool loopback, int *port);
/* Rank 0: accept the one peer on `lfd` (closed). Rank 1: connect to host:port, retrying until
 * it listens. */
int nb_rt_accept(nb_rt_t *rt, int lfd);
int nb_rt_connect(nb_rt_t *rt, const char *host, int port);
/* The ETCD runtime (nb_etcd.c): register under xferbench/<group>/ and meet the peer. */
int nb_rt_etcd(nb_rt_t *rt, const nb_cfg_t *cfg);
int nb_rt_send(nb_rt_t *rt, uint32_t type, const void *data, size_t len);
/* The next message: its type and payload (malloc'ed and NUL-terminated; free() it). A peer's
 * ERROR message, the end of the stream or the timeout is printed and returns non-zero. */
int nb_rt_next(nb_rt_t *rt, uint32_t *type, void **data, size_t *len, int timeout_ms);
/* The next message, which must be of type `want`. */
int nb_rt_recv(nb_rt_t *rt, uint32_t want, void **data, size_t *len, int timeout_ms);
/* Receive a fixed-size message into `out`. */
int nb_rt_recv_into(nb_rt_t *rt, uint32_t want, void *out, size_t len, int timeout_ms);
/* Whether the peer closed the connection, died or sent ERROR (then said once, with why);
 * does not wait unless a message has started to arrive. */
bool nb_rt_peer_gone(nb_rt_t *rt);
void nb_rt_close(nb_rt_t *rt);

/* ---- agent and buffers ---- */

/* The GPU of a VRAM buffer. The reference puts buffer i of a process's num_*_dev devices on
 * GPU i, and a process here has one device: GPU 0 of those it sees (CUDA_VISIBLE_DEVICES picks
 * the physical one). */
#define NB_GPU 0

typedef struct nb_side {
    nixl_agent_t *agent;
    uint8_t *buf;          /* host address (DRAM) or GPU address (VRAM) */
    size_t len, map_len;   /* map_len: the DRAM mapping, 0 for VRAM */
    size_t gpu_len;        /* the GPU allocation, 0 for DRAM */
    nixl_mem_t mem;        /* NIXL_DRAM_SEG or NIXL_VRAM_SEG */
    uint64_t dev;          /* the descriptors' dev_id: 0, or the GPU index */
    uintptr_t remote_base; /* the peer's buffer */
    uint64_t remote_len;
    nixl_mem_t remote_mem;
    uint64_t remote_dev;
    const char *backend;
} nb_side_t;

/* Create the agent with the backend; backend NULL: UCX if its plugin loads here, else SHM
 * (said on stdout). */
int nb_side_open(nb_side_t *s, const nb_cfg_t *cfg, const char *name, const char *backend,
                 int rank);
/* The memory a --*_seg_type names. */
nixl_mem_t nb_seg_mem(const char *seg_type);
/* Allocate the side's buffer in `mem` (nb_buf.c), fill it with `fill` and register it. */
int nb_side_alloc(nb_side_t *s, const nb_cfg_t *cfg, nixl_mem_t mem, size_t len, uint8_t fill);
void nb_side_free_buf(nb_side_t *s);
/* Fill [off, off + len) of the buffer, DRAM or VRAM; 0 or non-zero (printed). */
int nb_side_fill(nb_side_t *s, size_t off, size_t len, uint8_t fill);
/* The first offset in [off, off + len) of the buffer that is not `fill` in *bad (-1: none),
 * its value in *seen; 0 or non-zero when the buffer cannot be read (printed). */
int nb_side_find_other(const nb_side_t *s, size_t off, size_t len, uint8_t fill, long long *bad,
                       uint8_t *seen);
/* Send our metadata and buffer, then load the peer's. */
int nb_side_send_md(nb_side_t *s, nb_rt_t *rt);
int nb_side_recv_md(nb_side_t *s, nb_rt_t *rt);
void nb_side_close(nb_side_t *s);
/* The first offset in [off, off + len) that is not `fill`, or -1. */
long long nb_check_fill(const uint8_t *p, size_t off, size_t len, uint8_t fill);

/* ---- statistics ---- */

typedef struct nb_dist {
    double avg, p50, p90, p99, max;
} nb_dist_t;

/* CLOCK_MONOTONIC. */
double nb_now_us(void);
long long nb_now_ms(void);
void nb_dist_of(double *v, size_t n, nb_dist_t *out); /* sorts v */

typedef struct nb_row {
    uint64_t block, batch, iters;
    double seconds, gbps, avg_lat_us;
    nb_dist_t prep, post, tx;
} nb_row_t;

/* memcpy of the same shape within this process: the ceiling the transfers are compared to. */
double nb_memcpy_gbps(uint64_t block, uint64_t batch, uint64_t iters);

/* ---- the measurement ---- */

typedef struct nb_hooks {
    /* Once the backend is known and the target is ready. */
    void (*on_start)(const nb_cfg_t *cfg, const char *backend, void *arg);
    /* For each (block, batch), in sweep order. */
    void (*on_row)(const nb_cfg_t *cfg, const nb_row_t *row, void *arg);
    void *arg;
} nb_hooks_t;

/* Run the whole sweep as the initiator of `rt` (connected to a target); backend NULL: the best
 * available. Returns 0 or an exit code, after printing why. */
int nb_initiator_run(const nb_cfg_t *cfg, const char *backend, nb_rt_t *rt,
                     const nb_hooks_t *hooks);
int nb_target_run(const nb_cfg_t *cfg, nb_rt_t *rt);

typedef struct nb_plan {
    uint64_t block, batch, iters, warmup; /* iterations per thread */
} nb_plan_t;

/* Iterations per thread for one block size (large_blk_iter_ftr, num_threads). */
void nb_plan_iters(const nb_cfg_t *cfg, uint64_t block, nb_plan_t *plan);

/* ---- output ---- */

void nb_print_config(const nb_cfg_t *cfg, const char *backend);
void nb_print_header(void);
void nb_print_row(const nb_row_t *row);
void nb_print_compare_header(const char *const *backends, size_t n);
void nb_print_compare_row(const char *const *backends, const nb_row_t *rows, size_t n,
                          double memcpy_gbps);
/* A progress line on stderr, when it is a terminal and the run is long; cleared by rows. */
void nb_progress(const char *what, uint64_t done, uint64_t total);
void nb_progress_clear(void);
/* Write the JSON report: rows[b][i] for backend b; memcpy_gbps[i] or NULL. Returns 0 or
 * non-zero (printed). */
int nb_json_write(const nb_cfg_t *cfg, const char *path, const char *const *backends,
                  nb_row_t *const *rows, size_t nbackends, size_t nrows,
                  const double *memcpy_gbps);
/* Print "<nb_who>: <reason>" on stderr and return NB_EXIT_FAIL: errors are told once, where
 * they are decided. */
int nb_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern const char *nb_who;
/* From now on keep the first reason in buf instead of printing (NULL: print again). */
void nb_fail_capture(char *buf, size_t len);

#endif
