/*
 * lf_priv.h - the internals of the LIBFABRIC backend, shared by its files (never installed).
 *
 * Objects and their lifetimes
 *  - engine: one or more rails, the table of peers, every request alive.
 *  - rail: one fabric + domain + RDM endpoint + address vector + completion queue, opened on one
 *    domain (a NIC; "lo" or "eth0" for tcp), with one thread ("lf-rail<i>") that keeps its
 *    data path going: it posts what was queued for it, reads the completion queue and receives
 *    notifications. It sleeps in epoll on the queue's wait fd (FI_WAIT_FD, fi_trywait) and an
 *    eventfd that user threads write when they queue work it must do; it never spins.
 *    rail->lock serialises every libfabric call on the rail's objects (FI_THREAD_DOMAIN), and
 *    whoever holds it may do the rail thread's work: a post makes its calls in the caller's
 *    thread when the lock is free, and check_xfer / get_notifs (caller_progress) read the
 *    queue. The rail's lists, slots and counters below "the rail thread's own" belong to the
 *    holder of rail->lock; `held_rail` (lf_rail.c, thread-local) says which rail a thread
 *    holds, so work for that rail found under its lock is listed without a wake-up.
 *  - conn: one peer agent: its fi_addr_t on every rail. Reference counted (the table, each
 *    remote md, each request); its addresses leave the address vectors with the last reference.
 *  - md: a local registration (lmd: one fid_mr per rail + the region blob) or a peer region
 *    (rmd: its keys per rail, virtual or offset addressing). Reference counted: a prepared
 *    request holds its regions.
 *  - req: a prepared transfer, cut once into per-rail parts of RMA messages (fi_writemsg /
 *    fi_readmsg of up to iov-limit elements each); a post hands each part to its rail thread.
 *    A request with local GPU memory (lf_stage.c) has no parts of its own: it owns one child
 *    request per staging round (parts between a pinned buffer and the peer's memory), which
 *    the engine's stage thread posts in turn.
 *
 * Who completes what: `pending` counts the messages of the current post not yet completed
 * (posted or not). Each completion (or a message abandoned because its peer failed) drops it;
 * the one that reaches zero decides: SUCCESS only if no message failed, after which the
 * notification (if any) is sent on rail 0 and its send completion ends the request. So the
 * notification leaves only after every write was seen complete (FI_DELIVERY_COMPLETE where the
 * provider offers it: the data is at the target). Except a WRITE all on rail 0 of a provider
 * with FI_ORDER_SAW (notif_early): its notification is posted right behind its writes, counts
 * as one more message in `pending`, and leaves only once every write of the part is posted.
 */
#ifndef NIXL_LF_PRIV_H
#define NIXL_LF_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "nixl_plugin.h"
#include "clock.h"
#include "hashmap.h"
#include "jobq.h"
#include "list.h"
#include "lf_wire.h"

#define LF_RECV_BUFS 16u
#define LF_SEND_SLOTS 16u
#define LF_IOV_MAX 16u
/* While work is outstanding the rail thread looks at the queue at least this often (timeouts,
 * providers whose progress raises no event); idle it sleeps on the fds until woken. */
#define LF_BUSY_WAIT_MS 1
#define LF_IDLE_WAIT_MS 1000
/* A rail that a user thread progressed (check_xfer, get_notifs) less than LF_POLL_GAP_US ago,
 * when its thread is about to sleep, is "polled": a caller spins on it. The thread then leaves
 * the queue's fd to the poller and sleeps LF_POLLED_MS before it looks again (the most an
 * event waits when the caller stops just then); a caller that sleeps between its polls leaves
 * the fd to the thread. */
#define LF_POLL_GAP_US 200
#define LF_POLLED_MS 1

/* ---- configuration ---- */

typedef struct lf_params {
    char provider[LF_PROV_MAX + 1]; /* "" : the first of efa, verbs;ofi_rxm, tcp;ofi_rxm, tcp */
    char iface[512];                /* comma-separated domains, one rail each; "": the first */
    unsigned num_threads;           /* accepted, no effect (one thread per rail) */
    bool caller_progress;           /* check_xfer / get_notifs read the queues themselves */
    uint64_t split_batch_size;      /* requests of at least this many elements spread over rails */
    uint64_t striping_threshold;    /* an element this long or longer is cut over all rails */
    uint64_t max_bw_per_dram_seg;   /* accepted (reference), unused: 0 = not set */
    uint64_t peer_timeout_ms;       /* an operation outstanding this long fails its peer */
} lf_params_t;

/* ---- operation contexts (first member: the provider's context space) ---- */

enum { LF_OP_RMA = 1, LF_OP_RECV, LF_OP_SEND };

typedef struct lf_ctx {
    struct fi_context2 fi; /* FI_CONTEXT / FI_CONTEXT2 providers write here */
    unsigned kind;
} lf_ctx_t;

struct nixl_be_req;
struct lf_conn;

/* One RMA message of a request: elements [first, first + n) of its part. */
typedef struct lf_rma {
    lf_ctx_t ctx;
    struct nixl_be_req *req;
    unsigned rail;
    uint32_t first, n;
} lf_rma_t;

/* A message to send (a notification): from gen_notif (owned by the job) or a request's. */
typedef struct lf_send_job {
    struct lf_send_job *next;
    struct lf_conn *conn;    /* holds a reference */
    struct nixl_be_req *req; /* NULL: a standalone notification, freed when sent */
    size_t len;
    uint8_t *msg;
} lf_send_job_t;

typedef struct lf_slot {
    lf_ctx_t ctx;
    unsigned idx;
    lf_send_job_t *job; /* send slots: the job it carries */
} lf_slot_t;

/* ---- rails ---- */

typedef struct lf_rail {
    struct nixl_be_engine *eng;
    unsigned idx;
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_ep *ep;
    struct fid_av *av;
    struct fid_cq *cq;
    pthread_mutex_t lock; /* every libfabric call on these objects */
    int cq_fd;            /* the queue's wait fd; -1: none (bounded sleeps instead) */
    int wake_fd, epfd;
    uint8_t addr[LF_ADDR_MAX];
    size_t addr_len;
    size_t iov_n;         /* elements per RMA message */
    size_t tx_max;        /* operations in flight at most */
    uint64_t max_msg;
    bool mr_local, mr_endpoint;
    /* message buffers: LF_RECV_BUFS receive, then LF_SEND_SLOTS send, LF_MSG_MAX each */
    uint8_t *bufs;
    struct fid_mr *bufs_mr;
    void *bufs_desc;
    lf_slot_t recv[LF_RECV_BUFS], send[LF_SEND_SLOTS];
    unsigned send_free[LF_SEND_SLOTS], nsend_free;

    /* handed over by other threads (qlock) */
    pthread_mutex_t qlock;
    nixl_list_node_t *in_parts;       /* parts to start (lf_part_t.node) */
    lf_send_job_t *in_jobs, **in_jobs_tail;
    /* the rail thread's own: whoever holds rail->lock */
    nixl_list_node_t *active;         /* parts with messages not posted or not completed */
    lf_send_job_t *jobs, **jobs_tail; /* waiting for a send slot or tx room */
    size_t inflight;
    _Atomic uint64_t polled_ns; /* when a user thread last progressed the rail */
    lf_send_job_t *done_jobs;   /* standalone notifications sent: freed after the lock */
    atomic_bool stop;
    bool started;
    pthread_t thread;
} lf_rail_t;

/* ---- metadata ---- */

enum { LF_MD_LOCAL = 0x4c46464cu, LF_MD_REMOTE = 0x5246464cu };

struct nixl_be_md {
    uint32_t kind;
    atomic_size_t refs;
    struct nixl_be_engine *eng;
};

typedef struct lf_lmd {
    struct nixl_be_md hdr;
    uintptr_t base;
    size_t len;
    int gpu; /* GPU memory, staged (no fid_mr): its device; host memory: -1 */
    struct fid_mr *mr[LF_RAILS_MAX];
    void *desc[LF_RAILS_MAX];
    uint8_t blob[LF_REGION_BLOB_LEN(LF_RAILS_MAX)];
    size_t blob_len;
} lf_lmd_t;

typedef struct lf_rmd {
    struct nixl_be_md hdr;
    struct lf_conn *conn; /* holds a reference */
    lf_region_info_t ri;
} lf_rmd_t;

/* ---- peers ---- */

typedef struct lf_conn {
    atomic_size_t refs;
    struct nixl_be_engine *eng;
    char *name;
    unsigned nrails; /* used: min(ours, theirs) */
    fi_addr_t addr[LF_RAILS_MAX];
    atomic_bool failed;
    atomic_bool forgotten;
    char why[256];   /* the reason it failed (written once, before `failed` is set) */
    atomic_flag why_set;
} lf_conn_t;

/* ---- requests ---- */

typedef struct lf_part {
    nixl_list_node_t node; /* in the rail's in_parts, then active list */
    struct nixl_be_req *req;
    unsigned rail;
    size_t nrma, next, outstanding; /* next, outstanding: the rail thread's */
    lf_rma_t *rma;
    struct iovec *iov;
    void **desc;
    struct fi_rma_iov *riov;
    size_t nel;
} lf_part_t;

struct nixl_be_req {
    struct nixl_be_engine *eng;
    lf_conn_t *conn; /* holds a reference; NULL for loopback */
    nixl_xfer_op_t op;
    size_t count;
    atomic_int state;        /* nixl_status_t of the last post */
    atomic_size_t pending;   /* messages of the current post not completed */
    atomic_size_t nfailed;
    atomic_int first_err;    /* positive libfabric errno of the first failure */
    atomic_bool why_set;
    char why[384];
    uint64_t posted_ns;
    lf_send_job_t notif;     /* its msg buffer grows as needed */
    size_t notif_cap;
    bool has_notif;
    bool notif_early;        /* the notification was posted behind the writes (FI_ORDER_SAW) */
    nixl_list_node_t all;    /* eng->all_reqs (all_lock) */
    size_t nrefs;
    struct nixl_be_md **refs;
    unsigned nparts;
    lf_part_t parts[LF_RAILS_MAX];
    /* loopback: the pairs themselves, or with GPU memory one prepared GPU batch */
    struct lf_pair { void *dst; const void *src; size_t len; } *pairs;
    nixl_gpu_batch_t *gpu_batch;
    /* local GPU memory with a peer (lf_stage.c): the rounds; a round's request has `parent` */
    struct lf_stage *stage;
    struct nixl_be_req *parent;
};

/* ---- the engine ---- */

struct nixl_be_engine {
    const nixl_host_t *host;
    char *name;
    size_t name_len;
    lf_params_t params;
    unsigned nrails;
    lf_rail_t rails[LF_RAILS_MAX];
    char prov[LF_PROV_MAX + 1];
    unsigned addr_format;
    bool virt_addr, prov_key, delivery_complete;
    bool order_saw; /* rail 0 delivers a message after the writes posted before it */
    size_t key_size;
    atomic_uint_fast64_t next_key;
    uint8_t *conn_blob;
    size_t conn_len;

    pthread_mutex_t conns_lock;
    nixl_hmap_t conns; /* name -> lf_conn_t * */
    pthread_mutex_t all_lock;
    nixl_list_node_t *all_reqs;
    /* the stage thread (lf_stage.c), started by the first staged post; its lock and
     * condition variable also carry the rounds' ends */
    nixl_jobq_t stage;
    /* malformed messages dropped (logged once per second at most) */
    atomic_uint_fast64_t dropped;
    _Atomic uint64_t drop_log_ns;
};

/* lf_stage.c: local GPU memory staged through pinned host buffers, in pipelined rounds. */
typedef struct lf_stage lf_stage_t;
/* Prepare `req` (conn, op set): local[] has GPU memory of one device and host memory. */
nixl_status_t lf_stage_prep(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                            size_t count);
nixl_status_t lf_stage_post(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* Stop it between rounds (a queued one at once, CANCELED). */
void lf_stage_cancel(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* Queued, running, or a round's operations still held by libfabric. */
bool lf_stage_busy(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* A round's request ended with `st` (rail threads, lf_req_ops_done). */
void lf_stage_round_end(nixl_be_req_t *round, nixl_status_t st);
void lf_stage_free(nixl_be_engine_t *eng, struct lf_stage *st);
void lf_stage_init(nixl_be_engine_t *eng); /* at engine creation */
void lf_stage_stop(nixl_be_engine_t *eng); /* the thread, at destroy */
void lf_stage_wake(nixl_be_engine_t *eng);  /* a peer failed: the stage thread looks */
/* The GPU of a local region, -1 for host memory. */
int lf_md_gpu(const nixl_be_md_t *md);

/* lf_engine.c */
nixl_status_t lf_fi_status(int fi_err); /* negative libfabric return -> status */

/* lf_rail.c: opening rails, their threads, handing them work. */
nixl_status_t lf_rail_open(nixl_be_engine_t *eng, lf_rail_t *rail, const char *domain);
nixl_status_t lf_rail_start(lf_rail_t *rail);
void lf_rail_close(lf_rail_t *rail); /* stops the thread too */
/* Hand work to a rail: posted by the calling thread when the rail's lock is free, else by the
 * rail thread (woken). */
void lf_rail_post_part(lf_rail_t *rail, lf_part_t *part);
void lf_rail_post_job(lf_rail_t *rail, lf_send_job_t *job);
/* A pass of the rail's work (queue read, posts) in the calling thread if the lock is free;
 * check_xfer calls it, so a polling caller sees completions without a thread wake-up. */
void lf_rail_progress(lf_rail_t *rail);
/* The rail whose lock the calling thread holds, or NULL. */
lf_rail_t *lf_rail_held(void);
/* Drop a rail's references to a request being freed (the thread is stopped). */

/* lf_peer.c: connections, registrations, region metadata. */
lf_conn_t *lf_conn_get(nixl_be_engine_t *eng, const char *name); /* +1 ref, or NULL */
void lf_conn_unref(lf_conn_t *conn);
void lf_conn_fail(lf_conn_t *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lf_conns_free_all(nixl_be_engine_t *eng);
nixl_status_t lf_load_remote_conn(nixl_be_engine_t *eng, const char *agent, const void *blob,
                                  size_t len);
nixl_status_t lf_disconnect(nixl_be_engine_t *eng, const char *agent);
nixl_status_t lf_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                              const nixl_reg_desc_t *descs, size_t count, nixl_be_md_t **out);
void lf_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);
nixl_status_t lf_get_public_blobs(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                  nixl_be_blob_t *out);
nixl_status_t lf_load_remote_md(nixl_be_engine_t *eng, const char *agent, nixl_mem_t type,
                                const nixl_desc_t *descs, const nixl_be_blob_t *blobs,
                                size_t count, nixl_be_md_t **out);
nixl_status_t lf_load_local_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                               nixl_be_md_t **out);
void lf_unload_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);
void lf_md_ref(nixl_be_md_t *md);
void lf_md_unref(nixl_be_md_t *md);
/* Register host memory [addr, addr + len) on every rail (the staging buffers). */
nixl_status_t lf_reg_host(nixl_be_engine_t *eng, uintptr_t addr, size_t len, const char *what,
                          lf_lmd_t **out);

/* lf_xfer.c: transfers and notifications. */
nixl_status_t lf_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op, const nixl_be_desc_t *local,
                           const nixl_be_desc_t *remote, size_t count, const char *remote_agent,
                           const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out);
nixl_status_t lf_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_xfer_opts_t *opts);
nixl_status_t lf_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t lf_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t lf_cancel_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* A request with no parts of its own, ready for the rails (conn, op set): the round requests
 * of a staged one. Its parts are cut from local[] / remote[] as at prep. */
nixl_status_t lf_req_parts(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                           size_t count);
/* Post a prepared request's parts (no notification); returns IN_PROG or SUCCESS (nothing to
 * move). */
nixl_status_t lf_req_start(nixl_be_engine_t *eng, nixl_be_req_t *req);
void lf_req_free(nixl_be_req_t *req);
nixl_status_t lf_gen_notif(nixl_be_engine_t *eng, const char *agent, const void *msg,
                           size_t len);
void lf_reqs_free_all(nixl_be_engine_t *eng);
nixl_status_t lf_progress(nixl_be_engine_t *eng); /* get_notifs' pass over every rail */
/* Called by rail threads: `n` messages of `req` ended, `bad` of them failed with `err`. */
void lf_req_ops_done(nixl_be_req_t *req, size_t n, size_t bad, int err, const char *why);
/* The request's notification send ended (err 0: delivered to the provider and completed). */
void lf_req_notif_done(nixl_be_req_t *req, int err);
/* A message arrived on a rail. */
void lf_msg_received(nixl_be_engine_t *eng, const void *buf, size_t len);

#endif
