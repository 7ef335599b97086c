/*
 * posix_priv.h - the internals of the POSIX storage backend, shared by its files (never
 * installed).
 *
 * Objects
 *  - engine: the parameters, the open path-mode files (so that a devId names one file), and
 *    one I/O engine (io_uring, libaio or a thread pool) with its completion thread.
 *  - md: one registration. DRAM: nothing but the type. FILE/BLOCK: the fd (the caller's in fd
 *    mode, ours in path mode), whether it is O_DIRECT and the alignment that then applies.
 *    The loopback md of load_local_md is the same object.
 *  - req: one prepared transfer: an array of ops (fd, buffer, length, offset), resolved once,
 *    so a post only resets counters and queues the request.
 *
 * How a post completes: the request is appended to the engine's queue; px_fill() hands ops to
 * the I/O engine while fewer than kernel_queue_size are in flight; the I/O engine's thread
 * (blocked on the ring, on io_getevents, or on a condition variable) calls px_complete() for
 * each result, which resubmits the rest of a short transfer, records the first error, and
 * publishes the request's final state when its last op is done. Nobody spins: check_xfer only
 * reads the state.
 *
 * Locks: eng->lock guards the queue, the in-flight count, every request's counters and the
 * I/O engine's submission side. The I/O engines call px_complete() and px_fill() with it held.
 */
#ifndef NIXL_POSIX_PRIV_H
#define NIXL_POSIX_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fifo.h"
#include "nixl_plugin.h"

#define PX_NAME "POSIX"
#define PX_ERR_MAX 256
/* A release of a request in flight waits this long for its ops (disk I/O cannot be
 * cancelled once the kernel has it); after that the request stays valid and the release
 * fails, as the ABI asks. */
#define PX_RELEASE_WAIT_MS 5000
#define PX_MAX_THREADS 256u

typedef enum px_kind { PX_URING = 0, PX_AIO, PX_POOL } px_kind_t;

typedef struct px_params {
    bool want_uring, want_aio, want_pool; /* at most one is set; none: automatic */
    uint64_t ios_pool_size;               /* most ops in one prepared request */
    uint64_t kernel_queue_size;           /* most ops in flight per engine */
    unsigned pool_threads;                /* thread-pool engine workers */
} px_params_t;

struct nixl_be_md {
    nixl_mem_t type;
    int fd;           /* FILE/BLOCK: the descriptor used for I/O */
    bool owned;       /* path mode: we opened fd, we close it */
    bool direct;      /* fd has O_DIRECT: buffers, lengths and offsets must be aligned */
    unsigned align;   /* that alignment */
    uint64_t dev_id;
};

typedef struct px_op {
    struct nixl_be_req *req;
    int fd;
    char *buf;
    size_t len;
    uint64_t off;
    size_t done; /* bytes transferred so far in this post */
    struct px_op *next; /* in the retry list or the pool's queue */
} px_op_t;

typedef struct nixl_be_req {
    struct nixl_be_engine *eng;
    bool write; /* memory -> file */
    size_t nops;
    px_op_t *ops;
    /* under eng->lock */
    size_t next;       /* first op not handed to the I/O engine yet */
    size_t remaining;  /* ops of this post not finished */
    size_t inflight;   /* ops the I/O engine holds */
    nixl_status_t err; /* first failure of this post */
    char errmsg[PX_ERR_MAX];
    nixl_fifo_node_t qnode; /* in the engine's queue while ops are not handed out */
    _Atomic int state; /* nixl_status_t: NOT_POSTED, IN_PROG, SUCCESS or an error */
} px_req_t;

typedef struct px_io px_io_t;

/* An I/O engine. submit() takes ops (with eng->lock held) and returns how many it accepted
 * (0..n) or a negative errno when it cannot take any. */
typedef struct px_io_ops {
    const char *name;
    int (*submit)(px_io_t *io, px_op_t *const *ops, unsigned n, bool write);
    /* Optional: have the engine's own thread call px_fill() soon (called with eng->lock
     * held). NULL: the posting thread submits itself. */
    void (*kick)(px_io_t *io);
    void (*destroy)(px_io_t *io); /* stops the thread; nothing is in flight by then */
} px_io_ops_t;

struct px_io {
    const px_io_ops_t *ops;
    struct nixl_be_engine *eng;
};

typedef struct px_file {
    uint64_t dev_id;
} px_file_t;

struct nixl_be_engine {
    const nixl_host_t *host;
    px_params_t params;
    px_kind_t kind;
    px_io_t *io;
    pthread_mutex_t lock;
    pthread_cond_t done_cv; /* a request finished (release waits on it) */
    nixl_fifo_t queue;       /* requests with ops not handed out yet */
    px_op_t *retry;          /* short transfers to resubmit first */
    size_t inflight;
    size_t live_reqs;        /* requests not freed yet */
    /* path-mode devIds in use (control path, serialised by the core) */
    uint64_t *files;
    size_t nfiles, cap_files;
};


/* posix_config.c */
nixl_status_t px_params_parse(const nixl_be_init_t *init, px_params_t *out);

/* posix_mem.c */
nixl_status_t px_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                              const nixl_reg_desc_t *descs, size_t count, nixl_be_md_t **out);
void px_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);
nixl_status_t px_query_mem(nixl_be_engine_t *eng, nixl_mem_t type, const nixl_reg_desc_t *descs,
                           size_t count, nixl_query_resp_t *out);

/* posix_xfer.c */
nixl_status_t px_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op, const nixl_be_desc_t *local,
                           const nixl_be_desc_t *remote, size_t count, const char *agent,
                           const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out);
nixl_status_t px_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_xfer_opts_t *opts);
nixl_status_t px_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t px_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* With eng->lock held: hand queued ops to the I/O engine; account one result. */
void px_fill(nixl_be_engine_t *eng);
void px_complete(nixl_be_engine_t *eng, px_op_t *op, long res);

/* The I/O engines (posix_uring.c, posix_aio.c, posix_pool.c). Each returns 0 or a negative
 * errno with a reason in why. */
int px_uring_create(nixl_be_engine_t *eng, px_io_t **out, char *why, size_t whylen);
int px_aio_create(nixl_be_engine_t *eng, px_io_t **out, char *why, size_t whylen);
int px_pool_create(nixl_be_engine_t *eng, px_io_t **out, char *why, size_t whylen);

#endif
