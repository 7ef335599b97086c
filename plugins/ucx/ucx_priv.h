/*
 * ucx_priv.h - the internals of the UCX backend, shared by its files (never installed).
 *
 * Objects and their lifetimes
 *  - engine: one UCP context, num_workers shared workers in thread mode MULTI, one progress
 *    thread for them; with num_threads > 0, also num_threads dedicated workers, each driven by
 *    its own pool thread (ucx_pool.c), which carry the chunks of large requests.
 *  - conn: one peer agent (or the engine itself, for loopback): an endpoint per local worker
 *    (shared and dedicated) to the peer's worker 0. Reference counted: the name table, every
 *    remote md, every request and every call that uses its endpoints for a while hold a
 *    reference. The endpoints are
 *    closed only when the last reference goes, so nobody ever touches a closed endpoint; the
 *    memory goes when the close requests have completed (their callbacks use it).
 *  - md: a local registration (lmd: memory handle + packed rkey) or a peer's region (rmd: one
 *    unpacked rkey per worker). Reference counted too: a prepared request holds its regions,
 *    so deregistering or unloading never leaves a request with a dangling memory handle or
 *    rkey.
 *  - req: one prepared transfer, its elements resolved once (address, length, memory handle,
 *    rkey), so a post touches nothing but its own array and the endpoint. Its elements are cut
 *    into chunks, each bound to one worker when prepared: one chunk on a shared worker, or -
 *    with num_threads > 0 and at least split_batch_size elements - up to num_threads chunks on
 *    the dedicated workers (the rkeys of each element are those of its chunk's worker).
 *
 * Who completes what: a post issues one put/get per element and one endpoint flush per chunk
 * (a put's completion is local; the flush makes it remote), and tracks every one of them to
 * its own completion: each carries its chunk (and so the request) as user data, and its
 * callback counts failures and drops the request's `pending` count (no allocation: the
 * counters live in the prepared request, the operation state in UCX's own request). The
 * callback that drops `pending` to zero (on whichever thread progresses the worker: the
 * poster, the progress thread, a pool thread) decides: SUCCESS only when every operation
 * completed with UCS_OK; then it sends the notification, whose own callback finishes the
 * request. UCX may complete a flush successfully after it discarded operations of a failed
 * endpoint, so the flush alone proves nothing. While state is IN_PROG the callbacks own the
 * request; the store of the final state is the last thing they do with it, and release_req
 * refuses (the core retries) while operations are outstanding.
 *
 * Locks: conns_lock (the name table) and all_lock (every conn and request alive, for destroy)
 * are leaves, never held across a UCX call; so are a pool thread's queue lock and pool_lock.
 */
#ifndef NIXL_UCX_PRIV_H
#define NIXL_UCX_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ucp/api/ucp.h>

#include "nixl_plugin.h"
#include "clock.h"
#include "hashmap.h"
#include "jobq.h"
#include "list.h"
#include "ucx_notif_wire.h"
#include "ucx_validate.h"

#if UCP_API_VERSION < UCP_VERSION(1, 13)
#error "the UCX backend needs UCX 1.13 or later"
#endif

/* The reference's notification active message: id 0 (NOTIF_STR), payload in the data part. */
#define UCX_AM_NOTIF 0u
#define UCX_WORKERS_MAX 64u
#define UCX_THREADS_MAX 256u
/* release_req waits this long for a transfer in flight: UCX cannot cancel RMA operations. */
#define UCX_RELEASE_WAIT_MS 200
/* disconnect flushes the peer's endpoints for at most this long before closing them. */
#define UCX_DISCONNECT_FLUSH_MS 200
/* destroy lets notifications and graceful endpoint closes finish for at most this long. */
#define UCX_DRAIN_MS 1000
/* While work is outstanding the progress thread looks at the workers at least this often, in
 * case a transport has work queued that raises no event. Idle, it sleeps on the event fds. */
#define UCX_BUSY_POLL_MS 1
/* A user thread that progressed a worker is taken to keep doing so for this long. */
#define UCX_USER_POLL_NS 2000000u

/* A shared worker's user threads (ucx_progress.c), a cache line's size each, so that threads
 * posting on different workers rarely share a line (the engine is calloc'd: no _Alignas). */
typedef struct ucx_user_mark {
    _Atomic uint64_t until_ns; /* when the last one left, plus UCX_USER_POLL_NS */
    atomic_uint inside;        /* user threads inside UCX on the worker */
    char pad[64 - sizeof(uint64_t) - sizeof(unsigned)];
} ucx_user_mark_t;

/* ---- configuration (ucx_config.c) ---- */

typedef struct ucx_params {
    unsigned num_workers;
    unsigned num_threads;      /* dedicated workers and pool threads (ucx_pool.c); 0: none */
    uint64_t split_batch_size; /* requests of at least this many elements are split */
    ucp_err_handling_mode_t err_mode;
    bool ep_close_force;
    const char *device_list;   /* borrowed from the init params; NULL: all devices */
    const char *engine_config; /* borrowed; NULL: none */
    uint64_t peer_timeout_ms;  /* ucx_peer_timeout_ms: a peer silent this long has failed;
                                * 0: never (ucx_conn.c, liveness) */
    unsigned device_channels;  /* ucx_num_device_channels: UCX >= 1.21's RC_GDA_NUM_CHANNELS */
} ucx_params_t;

/* ---- metadata ---- */

enum { UCX_MD_LOCAL = 0x4c584355u, UCX_MD_REMOTE = 0x52584355u };

struct nixl_be_md {
    uint32_t kind;
    atomic_size_t refs;
    nixl_be_engine_t *eng;
};

typedef struct ucx_conn ucx_conn_t;

typedef struct ucx_lmd {
    struct nixl_be_md hdr; /* UCX_MD_LOCAL */
    nixl_mem_t type;
    ucp_mem_h memh;
    void *rkey_buf; /* from ucp_rkey_pack: the region blob peers get */
    size_t rkey_len;
    int staged_gpu; /* >= 0: VRAM of this GPU that UCX cannot see (no CUDA support): not
                     * mapped, moved through pinned buffers (ucx_stage.c); -1 otherwise */
} ucx_lmd_t;

/* The region blob of a staged VRAM region: peers learn that UCX cannot reach it. */
#define UCX_STAGED_BLOB "NIXL-UCX-STAGED-VRAM"
#define UCX_STAGED_BLOB_LEN 20u

typedef struct ucx_rmd {
    struct nixl_be_md hdr; /* UCX_MD_REMOTE */
    ucx_conn_t *conn;      /* holds a reference */
    bool unreachable;      /* the peer's staged VRAM: no rkeys; transfers to it are refused */
    /* The rkeys are unpacked by the first prep that uses the region (ucx_rmd_ready), not at
     * load: loading a peer's metadata then costs a check and a copy of each blob (tens of ns)
     * instead of UCX's unpack for every region, most of which a peer may never touch. */
    _Atomic bool ready;    /* rkeys[] is set (release by the unpacker, acquire by readers) */
    const uint8_t *blob;   /* the checked blob, kept in this allocation after rkeys[] */
    size_t blob_len;
    ucp_rkey_h rkeys[];    /* one per worker, unpacked on that worker's endpoint (NULL
                            * where the conn has none) */
} ucx_rmd_t;

/* Unpack the region's rkeys if no prep did yet (ucx_mem.c; eng->rkey_lock serialises the
 * unpackers). NIXL_SUCCESS once they are there. */
nixl_status_t ucx_rmd_ready(nixl_be_engine_t *eng, ucx_rmd_t *r, size_t i);

/* ---- connections ---- */

struct ucx_conn {
    atomic_size_t refs;
    nixl_be_engine_t *eng;
    nixl_list_node_t all;      /* eng->all_conns (all_lock) */
    char *name;
    size_t name_len;
    uint8_t *addr;             /* the peer's worker address, as loaded */
    size_t addr_len;
    bool is_self;
    bool eps_closed;           /* close requests were issued (never reopened) */
    atomic_bool failed;        /* an endpoint reported an error: the peer is gone */
    atomic_int fail_status;    /* its ucs_status_t */
    atomic_bool forgotten;     /* disconnect() was called */
    atomic_uint holds;         /* the users (one hold for all refs) + close requests pending */
    /* liveness (ucx_conn.c): our probes and the peer's answers */
    uint64_t serial;               /* names the conn in probes (never reused) */
    _Atomic uint64_t ping_sent_ns; /* the oldest unanswered probe; 0: none */
    atomic_int probe;              /* UCX_PROBE_* */
    unsigned probe_tries;          /* unanswered first probes (the probe thread's) */
    ucp_ep_h eps[];            /* one per worker (loopback: worker 0 only) */
};

/* Whether a peer answers our probes: not yet known, yes (its silence then means it failed), or
 * no (a peer without the probe handler, such as a reference agent: never judged by it). */
enum { UCX_PROBE_UNKNOWN = 0, UCX_PROBE_ANSWERS, UCX_PROBE_SILENT };
/* A peer that never answered is taken as SILENT after this many probes, each given the whole
 * timeout (a first probe can be lost to a connection still being set up, or be slow). */
#define UCX_PROBE_TRIES 3u
/* The probe's active messages (the reference uses id 0 only; a reference agent warns once
 * about the first probe it gets and never answers it). */
#define UCX_AM_PING 0x4eu
#define UCX_AM_PONG 0x4fu
/* Answers to peers' probes still being sent, at most: a peer that floods probes and never reads
 * the answers gets no more (its probes go unanswered) instead of making us hold memory. */
#define UCX_PONGS_MAX 256u

/* ---- requests ---- */

/* A run of a request's elements posted on one worker, with one flush. A chunk on a dedicated
 * worker is handed to that worker's pool thread, which posts it (next: its place in the
 * thread's queue, owned by the queue while there). */
typedef struct ucx_chunk {
    nixl_be_req_t *req;
    struct ucx_chunk *next;
    size_t first, count;
    unsigned worker;
} ucx_chunk_t;

typedef struct ucx_xd {
    void *laddr;
    uint64_t raddr;
    size_t len;
    ucp_mem_h memh;
    ucp_rkey_h rkey;
} ucx_xd_t;

struct nixl_be_req {
    nixl_be_engine_t *eng;
    ucx_conn_t *conn; /* holds a reference */
    unsigned worker;     /* the shared worker (the request's only one unless it is split) */
    nixl_xfer_op_t op;
    size_t count;
    atomic_int state;    /* nixl_status_t of the last post */
    atomic_size_t pending;  /* operations and flushes of the current post not completed (+1
                             * while posting) */
    atomic_size_t nfailed;  /* of them, completed with an error (or never issued) */
    atomic_int first_err;   /* ucs_status_t of the first failure */
    atomic_int flush_err;   /* ucs_status_t of the first failed flush */
    atomic_size_t nunissued;    /* elements never handed to UCX (after a refused one) */
    atomic_size_t sync_fail_at; /* the first element refused synchronously (SIZE_MAX: none) */
    atomic_size_t unposted;     /* chunks the pool threads have not posted yet */
    bool notif_pending;  /* the flush is done: send notif[] next */
    uint8_t *notif;      /* the encoded notification of the current post */
    size_t notif_len, notif_cap;
    nixl_list_node_t all; /* eng->all_reqs (all_lock) */
    size_t nrefs;
    struct nixl_be_md **refs; /* the regions held, one reference each */
    size_t nchunks;
    ucx_chunk_t *chunks;      /* 1 (shared worker) or up to num_threads (dedicated ones);
                               * a staged request: one per round */
    struct ucx_stage *stage;  /* staged VRAM (ucx_stage.c), else NULL */
    char why[384];       /* reason of the last failure, repeated by check_xfer */
    ucx_xd_t xd[];
};

/* ---- the engine ---- */

struct nixl_be_engine {
    const nixl_host_t *host;
    char *name;
    size_t name_len;
    /* malformed notifications dropped and not yet logged, and when the last line about them
     * was written (the handler runs under worker 0's lock, one at a time) */
    uint64_t notif_dropped, notif_drop_log_ns;
    ucx_params_t params;
    unsigned nworkers;  /* all of them: nshared shared ones first, then nthreads dedicated */
    unsigned nshared;
    unsigned nthreads;
    ucp_context_h ctx;
    ucp_worker_h *workers;
    bool cuda_ok; /* this UCX build knows GPU memory */
    ucp_err_handling_mode_t self_mode; /* of the loopback endpoint (see ucx_conn.c) */
    uint8_t *addr; /* worker 0's address: our conn info */
    size_t addr_len;

    pthread_mutex_t rkey_lock; /* ucx_rmd_ready: one unpacker at a time */
    pthread_mutex_t conns_lock;
    nixl_hmap_t conns; /* loaded peers and self: conn->name -> ucx_conn_t * */
    ucx_conn_t *self;

    pthread_mutex_t all_lock;
    nixl_list_node_t *all_conns, *all_reqs;

    /* outstanding flushes, notifications and endpoint closes */
    atomic_size_t busy;
    atomic_size_t disc_flushes; /* flushes issued by disconnect, not completed */
    int wake_fd;        /* eventfd: stop, or work appeared while the thread slept */
    int *efds;          /* the workers' event fds */
    atomic_bool stop;
    atomic_bool sleeping; /* the thread may be in poll() without a timeout */
    /* Per shared worker: user threads inside UCX on it, and until when (CLOCK_MONOTONIC ns)
     * one is expected back; the progress thread keeps out of that worker's lock meanwhile and
     * goes on with the others (ucx_progress.c). */
    ucx_user_mark_t user[UCX_WORKERS_MAX];
    bool thread_started;
    int idle_timeout_ms; /* -1: sleep until an event */
    pthread_t thread;

    /* Our own address or remote keys failed ucx_validate.c's checks: this UCX packs them in a
     * format we cannot check, so peers' are refused with this reason (ucx_conn.c, ucx_mem.c).
     * The rkey reason is written once: rkey_fmt goes 0 -> 1 (writing) -> 2 (set). */
    char addr_fmt_why[192];
    atomic_int rkey_fmt;
    char rkey_fmt_why[192];

    /* liveness (ucx_conn.c): a thread probes remote peers while peer_timeout_ms is set */
    atomic_bool live_started;
    pthread_t live_thread;
    atomic_bool live_stop;
    atomic_uint_fast64_t next_serial;
    atomic_uint pongs_out; /* answers in flight (UCX_PONGS_MAX) */

    /* the pool (ucx_pool.c): one thread per dedicated worker */
    struct ucx_pool_thread *pool;
    pthread_mutex_t pool_lock; /* with pool_posted: a poster waits for its chunks */
    pthread_cond_t pool_posted;
    atomic_uint pool_next;     /* the dedicated worker the next split request starts on */

    /* staging (ucx_stage.c): one thread, started at the first staged post; its lock and
     * condition variable also carry the rounds' ends */
    nixl_jobq_t stage;
};

/* ucx_config.c: version, parameters, the UCP context. */
nixl_status_t ucx_check_version(const nixl_host_t *host);
nixl_status_t ucx_params_parse(const nixl_be_init_t *init, ucx_params_t *out);
nixl_status_t ucx_context_create(nixl_be_engine_t *eng);
nixl_status_t ucx_status(ucs_status_t s);

/* ucx_conn.c: peers and their endpoints. */
nixl_status_t ucx_conn_self(nixl_be_engine_t *eng);
ucx_conn_t *ucx_conn_find(nixl_be_engine_t *eng, const char *name); /* +1 ref, or NULL */
/* The same, giving NOT_FOUND's reason ("no connection info of agent '...' is loaded") when
 * there is none; the caller returns NIXL_ERR_NOT_FOUND. */
ucx_conn_t *ucx_conn_get(nixl_be_engine_t *eng, const char *name);
void ucx_conn_ref(ucx_conn_t *conn, size_t n);
void ucx_conn_unref(ucx_conn_t *conn, size_t n);
/* Why a conn cannot carry traffic: REMOTE_DISCONNECT (failed) or NOT_FOUND (forgotten),
 * with the reason set; SUCCESS when it can. */
nixl_status_t ucx_conn_usable(ucx_conn_t *conn, const char *what);
void ucx_conns_shutdown(nixl_be_engine_t *eng); /* drop the table, close what is unused */
void ucx_conns_force_close(nixl_be_engine_t *eng);
void ucx_conns_free_all(nixl_be_engine_t *eng); /* after the workers are gone */
/* Stop probing peers (ucx_conns_shutdown does it too). */
void ucx_liveness_stop(nixl_be_engine_t *eng);
nixl_status_t ucx_load_remote_conn(nixl_be_engine_t *eng, const char *agent, const void *blob,
                                   size_t len);
nixl_status_t ucx_connect(nixl_be_engine_t *eng, const char *agent);
nixl_status_t ucx_disconnect(nixl_be_engine_t *eng, const char *agent);

/* How the endpoints of `conn` are closed when its last user goes (ucx_engine.c): by force
 * wherever UCX allows it (error handling "peer"), so that a close never waits on a peer that
 * does not answer - a graceful close left in flight to such a peer makes UCX 1.13 abort in
 * ucp_worker_destroy. Nothing tracked is lost: every transfer and notification has completed
 * before its conn's last user goes. */
bool ucx_close_force(const ucx_conn_t *conn);

/* ucx_mem.c: registrations and region metadata. */
nixl_status_t ucx_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                               const nixl_reg_desc_t *descs, size_t count,
                               nixl_be_md_t **out_mds);
void ucx_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);
nixl_status_t ucx_get_public_blobs(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                   nixl_be_blob_t *out);
nixl_status_t ucx_load_remote_md(nixl_be_engine_t *eng, const char *agent, nixl_mem_t type,
                                 const nixl_desc_t *descs, const nixl_be_blob_t *blobs,
                                 size_t count, nixl_be_md_t **out_mds);
nixl_status_t ucx_load_local_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                nixl_be_md_t **out_mds);
void ucx_unload_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);
void ucx_md_ref(nixl_be_md_t *md);
void ucx_md_unref(nixl_be_md_t *md);

/* ucx_xfer.c: transfers. */
nixl_status_t ucx_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                            const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                            size_t count, const char *remote_agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out);
nixl_status_t ucx_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts);
nixl_status_t ucx_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t ucx_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t ucx_cancel_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t ucx_estimate_cost(nixl_be_engine_t *eng, nixl_be_req_t *req, int64_t *duration_us,
                                int64_t *err_margin_us, nixl_cost_t *method);
/* Free what the core never released; returns how many still had operations in UCX (kept). */
size_t ucx_reqs_free_all(nixl_be_engine_t *eng);

/* Post one chunk (its puts/gets and its flush); returns how many of its operations completed
 * or failed inside the call (their callbacks never run), counted by the caller. */
size_t ucx_chunk_issue(ucx_chunk_t *chunk);
/* The last completion of a request's operations (`worker`: where the notification leaves). */
void ucx_ops_done(nixl_be_req_t *req, unsigned worker, size_t n, size_t bad, ucs_status_t s);

/* The end of a post whose operations all completed: decide, notify, finish (ucx_xfer.c). */
void ucx_xfer_complete(nixl_be_req_t *req, unsigned worker);

void ucx_xfer_finish(nixl_be_req_t *req, nixl_status_t st);
void ucx_req_free(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* A request of nxd elements (count), room for nrefs region references and nchunks chunks (at
 * least one), all in one block; its elements and chunks are the caller's to fill. NULL when
 * out of memory (the caller gives the reason). */
nixl_be_req_t *ucx_req_alloc(nixl_be_engine_t *eng, ucx_conn_t *conn, unsigned worker,
                             nixl_xfer_op_t op, size_t nxd, size_t nrefs, size_t nchunks);
/* The end of every prep (plain and staged): take one reference on each run of equal regions
 * of the descriptors (nrefs of ucx_req_alloc counted them the same way) and on the
 * connection, NOT_POSTED, into the engine's list of requests; *out = req. Cannot fail. */
void ucx_req_finish_prep(nixl_be_req_t *req, const nixl_be_desc_t *local,
                         const nixl_be_desc_t *remote, size_t count, nixl_be_req_t **out);

/* ucx_stage.c: local VRAM through pinned buffers, for a UCX without CUDA support. */
nixl_status_t ucx_stage_prep(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                             const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                             size_t count, ucx_conn_t *conn, unsigned worker, size_t nrefs,
                             nixl_be_req_t **out);
nixl_status_t ucx_stage_post(nixl_be_engine_t *eng, nixl_be_req_t *req); /* IN_PROG */
void ucx_stage_round_done(nixl_be_req_t *req); /* the last operation of a round completed */
void ucx_stage_cancel(nixl_be_engine_t *eng, nixl_be_req_t *req);
void ucx_stage_init(nixl_be_engine_t *eng); /* at engine creation */
void ucx_stage_stop(nixl_be_engine_t *eng);
void ucx_stage_free(nixl_be_engine_t *eng, struct ucx_stage *st);

/* ucx_pool.c: dedicated workers and their threads. */
nixl_status_t ucx_pool_start(nixl_be_engine_t *eng);
void ucx_pool_stop(nixl_be_engine_t *eng);
/* How many chunks a request of `count` elements to `conn` is split into; 0: it is not split
 * (one chunk, on the shared worker of its thread) ... */
size_t ucx_pool_nchunks(const nixl_be_engine_t *eng, const ucx_conn_t *conn, size_t count);
/* ... and where each goes (req->chunks and req->nchunks set; `worker`: the shared one). */
void ucx_pool_plan(nixl_be_engine_t *eng, nixl_be_req_t *req, unsigned worker, bool split);
/* Hand every chunk of `req` to its thread; returns once all are posted. */
void ucx_pool_post(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* A dedicated worker got work its thread may not see an event for (an endpoint close). */
void ucx_pool_wake(nixl_be_engine_t *eng, unsigned worker);

/* ucx_notif.c: the notification message. */
nixl_status_t ucx_notif_init(nixl_be_engine_t *eng); /* the receive handler on worker 0 */
/* The reference's container {name: our name, msg}: its size, then the bytes. */
size_t ucx_notif_size(const nixl_be_engine_t *eng, size_t len);
void ucx_notif_write(const nixl_be_engine_t *eng, const void *msg, size_t len, uint8_t *out);
/* Send an encoded notification on `worker`'s endpoint; UCS_INPROGRESS: `cb(arg)` follows. */
ucs_status_t ucx_notif_send(ucx_conn_t *conn, unsigned worker, const void *buf, size_t len,
                            ucp_send_nbx_callback_t cb, void *arg);
nixl_status_t ucx_gen_notif(nixl_be_engine_t *eng, const char *agent, const void *msg,
                            size_t len);

/* ucx_progress.c: the progress thread, worker choice, outstanding-work accounting. */
nixl_status_t ucx_progress_start(nixl_be_engine_t *eng, const nixl_be_init_t *init);
void ucx_progress_stop(nixl_be_engine_t *eng);
nixl_status_t ucx_progress(nixl_be_engine_t *eng);
void ucx_progress_worker(nixl_be_engine_t *eng, unsigned worker);
/* A user thread enters / leaves UCX on a shared worker (the progress thread keeps out of that
 * worker while one is inside, and for UCX_USER_POLL_NS after); no-ops for dedicated ones. */
void ucx_user_enter(nixl_be_engine_t *eng, unsigned worker);
void ucx_user_leave(nixl_be_engine_t *eng, unsigned worker);
/* Progress until idle, then arm for events: false when the worker cannot be armed, or when
 * `mark` is given and a user thread started polling or posting on the worker (the progress
 * thread yields it). */
bool ucx_progress_and_arm(ucp_worker_h worker, const ucx_user_mark_t *mark);
/* Progress every worker until nothing is outstanding or `ms` passed (destroy only). */
void ucx_drain(nixl_be_engine_t *eng, unsigned ms);
/* Progress every worker until none did anything for quiet_ms (at most max_ms): lets UCX's own
 * wire-up traffic (endpoints the peers opened to us) settle before the workers are destroyed;
 * UCX 1.13 asserts when ucp_worker_destroy purges a wire-up message still pending on TCP. */
void ucx_quiesce(nixl_be_engine_t *eng, unsigned quiet_ms, unsigned max_ms);
void ucx_busy_inc(nixl_be_engine_t *eng);
void ucx_busy_dec(nixl_be_engine_t *eng);
/* Work was left outstanding: make sure the progress thread looks after it. */
void ucx_kick(nixl_be_engine_t *eng);
unsigned ucx_thread_worker(const nixl_be_engine_t *eng);
/* The worker traffic to `conn` takes from this thread (loopback: always worker 0). */
static inline unsigned ucx_conn_worker(const nixl_be_engine_t *eng, const ucx_conn_t *conn)
{
    return conn->is_self ? 0 : ucx_thread_worker(eng);
}

#endif
