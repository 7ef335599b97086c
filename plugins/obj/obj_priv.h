/*
 * obj_priv.h - the internals of the object-store engine (never installed): the OBJ (S3)
 * backend, and AZURE_BLOB (plugins/azure_blob), which builds the files of this directory that
 * are not S3's (obj_core, obj_http, obj_mem, obj_worker, obj_xfer) with its own protocol.
 *
 * Objects
 *  - engine: the parameters, one curl multi handle (its connection pool is reused by every
 *    transfer) and the worker thread that alone drives it.
 *  - md: one registration. DRAM: nothing but the type. VRAM: the GPU it is on. OBJ: the
 *    object's URL (key from the metaInfo, else the decimal devId), built once.
 *  - req: one prepared transfer: one job per descriptor (a ranged GET, a PUT, or a multipart
 *    upload), resolved once, so a post only resets counters and queues the request.
 *  - xfer: one HTTP exchange in flight (an easy handle); worker thread only.
 *
 * How a post completes: post appends the request to the engine's queue and wakes the worker
 * (curl_multi_wakeup). The worker, asleep in curl_multi_poll otherwise, starts exchanges while
 * fewer than max_inflight are running, runs curl, and for each finished exchange records the
 * result; a request's last job publishes its final state. check_xfer only reads the state.
 * release_req of a request in flight marks it cancelled and wakes the worker, which removes its
 * exchanges from the multi handle (nothing of it runs after that) and signals back.
 *
 * GPU memory (obj_vram.c): HTTP cannot reach it, so a request with VRAM descriptors moves
 * their bytes through one pinned host buffer of its own (the core's staging, one round of
 * the request's whole VRAM size, at most vram_stage_max), and its jobs read or write that
 * buffer. WRITE: post copies VRAM -> buffer (waiting for it) before queueing. READ: when
 * every job succeeded, the worker copies buffer -> VRAM (outside the lock) and only then
 * publishes SUCCESS.
 *
 * Locks: eng->lock guards the queue, the cancel marks, every request's counters and the
 * `active` counts. Curl is only ever called by the worker (and by query_mem on its own handle).
 */
#ifndef NIXL_OBJ_PRIV_H
#define NIXL_OBJ_PRIV_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fifo.h"
#include "list.h"
#include "nixl_plugin.h"

#define OBJ_NAME "OBJ"
#define OBJ_ERR_MAX 512
#define OBJ_RELEASE_WAIT_MS 5000
#define OBJ_BODY_MAX (64u << 10) /* most of an error or XML response we keep */
#define OBJ_MIN_PART (5ull << 20) /* S3's smallest part (but the last) */
#define OBJ_MAX_PARTS 10000u
#define OBJ_QUERY_MAX 2048 /* an exchange's query string, SAS token included */

/*
 * The engine above (queue, worker, cancels, registrations, query_mem) is shared by the object
 * stores; a protocol says what differs: parameters, object URLs, and each exchange's query,
 * method, headers and authentication. OBJ (S3) in this directory, AZURE_BLOB in
 * plugins/azure_blob, built from these same files.
 */
struct obj_xfer;
struct nixl_be_engine;
typedef struct obj_proto {
    const char *name;
    bool mpu_init;  /* a staged upload starts with a request whose answer names it (S3) */
    bool part_etag; /* each part's answer has the ETag that the completion lists (S3) */
    bool mpu_abort; /* an unfinished upload is dropped by a request (S3); else the server
                       expires what was staged (Azure's uncommitted blocks) */
    size_t max_parts;
    const char *kind_name[7]; /* the exchanges' names in messages, by enum obj_kind */
    /* Fill eng->p (its common fields at least) and eng->pd from the parameters. */
    nixl_status_t (*parse)(const nixl_be_init_t *init, struct nixl_be_engine *eng);
    void (*free)(struct nixl_be_engine *eng);
    /* The URL of the object `key` (percent-encoded); NULL when out of memory. */
    char *(*url)(const struct nixl_be_engine *eng, const char *key, size_t klen);
    /* The query of an exchange ("" for none) into q. */
    void (*query)(const struct nixl_be_engine *eng, int kind, const char *upload_id, size_t part,
                  char *q, size_t qlen);
    /* Method, headers, body and authentication of x, whose URL, callbacks and job are set;
     * false when out of memory. */
    bool (*build)(struct nixl_be_engine *eng, struct obj_xfer *x);
} obj_proto_t;

typedef struct obj_params {
    /* S3 only */
    char *bucket;
    char *base;          /* scheme://host[:port] of the service, no trailing '/' */
    bool virtual_host;   /* bucket.host/key instead of host/bucket/key */
    char *access_key, *secret_key, *session_token;
    char *region;
    char *ca_bundle;
    char *sigv4;         /* "aws:amz:<region>:s3" */
    bool checksum;       /* req_checksum=required: Content-MD5 on every upload */
    /* common to the protocols */
    uint64_t mpu_threshold; /* objects of at least this size go as multipart uploads */
    uint64_t part_size;
    uint64_t max_inflight;  /* HTTP exchanges in flight per engine */
    uint64_t max_descs;     /* descriptors in one prepared request */
    uint64_t stall_s;       /* an exchange moving no byte for this long fails */
    uint64_t connect_s;
    uint64_t vram_stage_max; /* pinned bytes one request may stage for its VRAM */
} obj_params_t;

struct nixl_be_md {
    nixl_mem_t type;
    int gpu;    /* VRAM: the device */
    char *url;  /* OBJ: the object's URL */
    char *key;  /* OBJ: the key, for messages */
};

enum obj_kind {
    OBJ_GET = 0, OBJ_PUT, OBJ_MPU_INIT, OBJ_MPU_PART, OBJ_MPU_DONE, OBJ_MPU_ABORT, OBJ_HEAD
};

typedef struct obj_job {
    struct nixl_be_req *req;
    const struct nixl_be_md *md;
    char *buf;
    size_t len;
    uint64_t off;
    bool mpu;
    /* multipart state of this post (worker thread only) */
    char *upload_id;
    size_t nparts, next_part, parts_left;
    bool failed;
    char (*etags)[80];
} obj_job_t;

typedef struct nixl_be_req {
    struct nixl_be_engine *eng;
    bool write;
    size_t njobs;
    obj_job_t *jobs;
    /* under eng->lock */
    size_t next;       /* first job not started */
    size_t remaining;  /* jobs of this post not finished */
    size_t active;     /* exchanges of this request in flight */
    bool cancel;
    nixl_status_t err;
    char errmsg[OBJ_ERR_MAX];
    nixl_fifo_node_t qnode;    /* in the engine's queue while jobs are not started */
    struct nixl_be_req *cnext; /* in the engine's cancel list */
    nixl_gpu_stage_t *stage;   /* VRAM descriptors: their pinned buffer, else NULL */
    struct nixl_be_req *gnext; /* worker only: in the list of READs to copy to the GPU */
    _Atomic int state;
} obj_req_t;

/* One HTTP exchange (worker thread only, but for cancel marks read under the lock). */
typedef struct obj_xfer {
    CURL *h;
    enum obj_kind kind;
    const char *name;   /* of the kind, for messages */
    obj_job_t *job;     /* NULL for an abort of a cancelled upload */
    size_t part;        /* OBJ_MPU_PART: 0-based */
    char *data;         /* request body (PUT/part: user memory; MPU_DONE: our XML) */
    size_t dlen, dpos;
    char *dst;          /* GET: where the body goes */
    size_t dcap, got;
    char *body;         /* response body kept for errors and XML */
    size_t blen;
    char etag[80];
    char errcode[64];   /* x-ms-error-code of the answer (Azure: HEAD has no body) */
    char *url;          /* owned: with its query */
    char *shown;        /* owned: the URL for messages, a SAS signature left out */
    struct curl_slist *hdrs;
    char cerr[CURL_ERROR_SIZE];
    nixl_list_node_t node; /* in eng->xfers */
} obj_xfer_t;

struct nixl_be_engine {
    const nixl_host_t *host;
    const obj_proto_t *proto;
    obj_params_t p;
    void *pd; /* the protocol's own parameters */
    CURLM *multi;
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t lock;
    pthread_cond_t done_cv;   /* a request finished, or a cancel was carried out */
    nixl_fifo_t queue;        /* requests with jobs not started */
    obj_job_t **mpu_ready;    /* uploads whose parts may go (worker only) */
    size_t nmpu, cap_mpu;
    nixl_list_node_t *xfers;  /* exchanges in flight (obj_xfer_t.node; worker only) */
    size_t inflight;          /* under lock */
    obj_req_t *cancels;       /* requests to stop, under lock */
    obj_req_t *gpu_reads;     /* READs done whose bytes go to the GPU (worker only) */
    size_t live_reqs;
    bool stop;
};

/* obj_core.c: engine creation and destruction, parameters common to the protocols */
nixl_status_t obj_engine_create(const nixl_be_init_t *init, const obj_proto_t *proto,
                                nixl_be_engine_t **out);
void obj_engine_destroy(nixl_be_engine_t *eng);
/* The parameter, else the first environment variable set, else NULL (empty is unset). */
const char *obj_param_env(const nixl_be_init_t *init, const char *key, const char *const *envs);
/* strdup of v into *dst (NULL stays NULL); false when out of memory. */
bool obj_dup(char **dst, const char *v);
/* The limits of obj_params_t; the staged-upload threshold and part size under these names. */
bool obj_params_common(const nixl_be_init_t *init, obj_params_t *p, const char *thr_key,
                       const char *part_key, uint64_t part_min, uint64_t part_max);
/* Percent-encode s[0, n) into out (RFC 3986 unreserved kept, and '/' if keep_slash). */
void obj_pct(const char *s, size_t n, bool keep_slash, char *out);

/* obj_http.c: building and judging exchanges */
obj_xfer_t *obj_xfer_new(nixl_be_engine_t *eng, enum obj_kind kind, obj_job_t *job, size_t part,
                         const char *url, const char *query, char *why, size_t whylen);
void obj_xfer_free(obj_xfer_t *x);
/* After the exchange ended with `code`: true if it succeeded, else the reason in why. */
bool obj_xfer_ok(obj_xfer_t *x, CURLcode code, char *why, size_t whylen);
/* Append header h; false when out of memory. */
bool obj_add_hdr(struct curl_slist **l, const char *h);
/* x sends data[0, len) as its body (PUT). */
void obj_set_body(obj_xfer_t *x, char *data, size_t len);
/* The bytes a PUT or part of x's job sends. */
void obj_part_span(const nixl_be_engine_t *eng, const obj_xfer_t *x, char **data, size_t *len);
/* The text of <tag> in xml (entities decoded) into out; false when absent. */
bool obj_xml_text(const char *xml, size_t len, const char *tag, char *out, size_t outlen);
/* The reason of a failed exchange from its status and body: "HTTP 404 NoSuchKey: ...". */
void obj_http_reason(long status, const char *body, size_t blen, char *out, size_t outlen);

/* obj_mem.c */
nixl_status_t obj_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                               const nixl_reg_desc_t *descs, size_t count, nixl_be_md_t **out);
void obj_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);
nixl_status_t obj_query_mem(nixl_be_engine_t *eng, nixl_mem_t type, const nixl_reg_desc_t *descs,
                            size_t count, nixl_query_resp_t *out);
/* The key of a registration descriptor: metaInfo, else the decimal devId (into num). */
const char *obj_desc_key(const nixl_reg_desc_t *d, char num[24], size_t *klen);

/* obj_xfer.c */
nixl_status_t obj_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op, const nixl_be_desc_t *local,
                            const nixl_be_desc_t *remote, size_t count, const char *agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out);
nixl_status_t obj_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts);
nixl_status_t obj_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t obj_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t obj_cancel_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);

/* The plugin table of an object-store backend whose create is create_fn (be_storage.h's
 * nixl_be_load_self must be in scope): everything but creation is the shared engine's. */
#define OBJ_PLUGIN_OPS(create_fn)                                                             \
    {                                                                                         \
        .struct_size = sizeof(nixl_be_ops_t), .create = (create_fn),                          \
        .destroy = obj_engine_destroy, .register_mem = obj_register_mem,                      \
        .deregister_mem = obj_deregister_mem, .load_local_md = nixl_be_load_self,             \
        .prep_xfer = obj_prep_xfer, .post_xfer = obj_post_xfer, .check_xfer = obj_check_xfer, \
        .release_req = obj_release_req, .query_mem = obj_query_mem,                           \
        .cancel_xfer = obj_cancel_xfer,                                                       \
    }

/* obj_vram.c: the VRAM descriptors of a request, staged through pinned memory */
/* Register VRAM region i: GPU memory wholly inside one allocation, on one device. */
nixl_status_t obj_vram_register(nixl_be_engine_t *eng, size_t i, const nixl_reg_desc_t *d,
                                nixl_be_md_t *md);
/* After prep built the jobs from mem[i]: stage the VRAM ones (req->stage) and point their jobs
 * at the pinned buffer. Nothing to do (SUCCESS) without VRAM. */
nixl_status_t obj_vram_prep(nixl_be_engine_t *eng, obj_req_t *req,
                            const nixl_be_desc_t *const *mem);
/* WRITE: copy the VRAM into the buffer, waiting for it. READ: copy the buffer to the VRAM,
 * waiting for it. The reason of a failure goes into why. */
nixl_status_t obj_vram_copy(nixl_be_engine_t *eng, obj_req_t *req, char *why, size_t whylen);

/* obj_worker.c */
int obj_worker_start(nixl_be_engine_t *eng);
void obj_worker_stop(nixl_be_engine_t *eng);
void obj_worker_wake(nixl_be_engine_t *eng);

#endif
