/*
 * shm_priv.h - the internals of the SHM backend, shared by its files (never installed).
 *
 * Objects and their lifetimes
 *  - engine: everything below hangs off it; destroy() stops both threads first.
 *  - peer: one loaded remote agent (or the engine itself, for loopback). Reference counted:
 *    the peer table, the event slot of its outgoing connection, every remote md handed out
 *    (a peer *is* the md of all its regions) and every request prepared against it hold a
 *    reference, so disconnect() never leaves a dangling pointer behind.
 *  - conn: one accepted (inbound) connection; owned by its event slot.
 *  - req: one prepared transfer; iovec arrays live in the same allocation.
 *
 * Locks, always taken in this order (never the other way round):
 *    peers_lock  ->  ev_lock  ->  peer->lock
 *    work_lock is never held together with any of them; all_lock is a leaf.
 *  - peers_lock: the name -> peer table.
 *  - ev_lock: the event slots, every inbound connection's read state and epoll processing, so
 *    the event thread and progress() never interleave reads of one connection and frames are
 *    delivered in the order they were sent.
 *  - peer->lock: the outgoing socket of a peer and its send queue.
 *  - work_lock: the async worker's queue and the queued/running flags of requests.
 */
#ifndef NIXL_SHM_PRIV_H
#define NIXL_SHM_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "nixl_plugin.h"

/* Largest notification payload we send or accept (the reference has no limit; UCX practice
 * tops out far below). Large enough for any tag or small control message, small enough that a
 * hostile frame cannot make us allocate gigabytes. */
#define SHM_NOTIF_MAX ((size_t)64 << 20)
/* Agent names are at most 255 bytes in the API; accept some slack from peers. */
#define SHM_NAME_MAX 4096u
/* Bytes of notifications queued to one slow peer before gen_notif/post start failing. */
#define SHM_SENDQ_MAX ((size_t)256 << 20)
/* iovecs per process_vm_* call: the kernel's UIO_MAXIOV. */
#define SHM_IOV_MAX 1024u
/* Bytes per syscall of the async worker: bounds how long release_req waits for a cancel. */
#define SHM_CHUNK_BYTES ((size_t)8 << 20)
#define SHM_PEER_BUCKETS 256u

/* ---- connection info ---- */

#define SHM_CONN_MAGIC "NXSHM1"
#define SHM_CONN_MAGIC_LEN 6u
#define SHM_SOCK_NAME_MAX 100u /* sun_path is 108 bytes, minus the leading NUL */

/* Where an engine lives and how to reach it: what get_conn_info encodes. */
typedef struct shm_conn_info {
    uint8_t boot_id[16];
    uint64_t pidns_dev, pidns_ino;
    uint64_t netns_dev, netns_ino; /* abstract sockets are per network namespace */
    uint32_t pid;
    uint16_t sock_len;
    char sock_name[SHM_SOCK_NAME_MAX + 1];
} shm_conn_info_t;

#define SHM_CONN_BLOB_MAX (64u + SHM_SOCK_NAME_MAX)

/* ---- metadata ---- */

/* First word of every object we hand out as a nixl_be_md_t, so prep can tell them apart. */
enum { SHM_MD_LOCAL = 0x4c4d4853u, SHM_MD_PEER = 0x504d4853u };

typedef struct shm_md_hdr {
    uint32_t kind;
} shm_md_hdr_t;

/* ---- notification frames ---- */

#define SHM_FRAME_MAGIC 0x4e4d4853u /* "SHMN" little endian */
#define SHM_FRAME_HDR 16u          /* u32 magic, u32 name length, u64 payload length (LE) */

typedef struct shm_sendq {
    struct shm_sendq *next;
    size_t len, off;
    uint8_t data[];
} shm_sendq_t;

typedef struct shm_peer {
    shm_md_hdr_t md; /* SHM_MD_PEER: a peer is the md of all its regions */
    atomic_size_t refs;
    nixl_be_engine_t *eng;
    char *name;
    size_t name_len;
    uint64_t hash;
    struct shm_peer *hnext; /* peers_lock */
    struct shm_peer *anext, **aprev; /* eng->all_peers, all_lock */
    bool is_self;
    pid_t pid;
    shm_conn_info_t info;
    uint8_t blob[SHM_CONN_BLOB_MAX]; /* as loaded, to compare on reload */
    size_t blob_len;
    atomic_bool dead;      /* the peer went away: REMOTE_DISCONNECT */
    atomic_bool forgotten; /* disconnect() was called: NOT_FOUND */
    atomic_bool connected; /* fast check before taking the lock */

    pthread_mutex_t lock;
    int fd;             /* outgoing connection, -1 when none */
    uint32_t slot;      /* its event slot (ev_lock) */
    uint64_t ev_data;   /* epoll data of fd */
    bool want_out;      /* EPOLLOUT armed */
    shm_sendq_t *q_head, **q_tail;
    size_t q_bytes;
} shm_peer_t;

/* ---- event slots ---- */

enum {
    SHM_SLOT_FREE = 0,
    SHM_SLOT_LISTEN,
    SHM_SLOT_WAKE,
    SHM_SLOT_INBOUND, /* the epoll set of inbound connections, nested in the main one */
    SHM_SLOT_PEER,
    SHM_SLOT_CONN,
};

typedef struct shm_slot {
    uint32_t gen; /* bumped on free so stale epoll events are recognised */
    uint32_t kind;
    uint32_t next_free;
    void *obj;
} shm_slot_t;

#define SHM_SLOT_NONE UINT32_MAX

/* ---- requests ---- */

struct nixl_be_req {
    nixl_be_engine_t *eng;
    shm_peer_t *peer; /* holds a reference */
    nixl_xfer_op_t op;
    size_t count;
    uint64_t total;
    struct iovec *liov, *riov;
    atomic_int state; /* nixl_status_t of the last post */
    atomic_bool cancel;
    bool queued, running; /* work_lock */
    struct nixl_be_req *wnext;
    bool has_notif; /* the async post's notification, copied (opts is borrowed) */
    void *notif;
    size_t notif_len, notif_cap;
    char why[320]; /* reason of the last failure, repeated by check_xfer on any thread */
    struct iovec iov[]; /* liov[count] then riov[count] */
};

/* ---- the engine ---- */

struct nixl_be_engine {
    const nixl_host_t *host;
    char *name;
    size_t name_len;
    uint64_t async_threshold; /* 0: never */
    shm_md_hdr_t local_md;    /* the md of every local region */
    shm_peer_t *self;

    shm_conn_info_t info;
    uint8_t conn_blob[SHM_CONN_BLOB_MAX];
    size_t conn_len;
    struct sockaddr_un addr;
    socklen_t addr_len;
    int listen_fd, wake_fd;
    int ep_fd; /* listen, wake-up, outgoing connections, and ep_in while nobody polls */
    int ep_in; /* inbound connections: what progress() polls */
    uint64_t ep_in_data;
    atomic_uint_fast64_t progress_calls;

    pthread_mutex_t peers_lock;
    shm_peer_t *buckets[SHM_PEER_BUCKETS];
    /* Every peer object alive, loaded or not (a leaf lock): destroy frees what the core did
     * not unload, so a missing unload_md cannot leak. */
    pthread_mutex_t all_lock;
    shm_peer_t *all_peers;

    pthread_mutex_t ev_lock;
    struct shm_conn *conns; /* inbound connections */
    size_t nconns;
    shm_slot_t *slots;
    uint32_t nslots, slot_cap, free_slot;
    pthread_t ev_thread;
    bool ev_started;

    pthread_mutex_t work_lock;
    pthread_cond_t work_cond, done_cond;
    nixl_be_req_t *wq_head, **wq_tail;
    bool worker_started, worker_stop;
    pthread_t worker;
};

#define SHM_ERR(eng, st, ...) ((eng)->host->set_error(__VA_ARGS__), (st))
#define SHM_LOG(eng, lvl, ...)                                                                \
    do {                                                                                      \
        if ((eng)->host->log_enabled(lvl))                                                    \
            (eng)->host->log(lvl, __VA_ARGS__);                                               \
    } while (0)

/* shm_sys.c: facts about this host and process. */
nixl_status_t shm_sys_check_cma(const nixl_host_t *host);
void shm_sys_identity(shm_conn_info_t *info);
size_t shm_conn_encode(const shm_conn_info_t *info, uint8_t *out);
nixl_status_t shm_conn_decode(const void *blob, size_t len, shm_conn_info_t *out,
                              const char **why);
bool shm_parse_u64(const char *s, uint64_t *out);
void shm_put_u32(uint8_t *p, uint32_t v);
void shm_put_u64(uint8_t *p, uint64_t v);
uint32_t shm_get_u32(const uint8_t *p);
uint64_t shm_get_u64(const uint8_t *p);

/* shm_peer.c: peers, outgoing connections, sending notifications. */
shm_peer_t *shm_peer_new(nixl_be_engine_t *eng, const char *name, bool is_self);
void shm_peer_ref(shm_peer_t *peer, size_t n);
void shm_peer_unref(shm_peer_t *peer, size_t n);
shm_peer_t *shm_peer_find(nixl_be_engine_t *eng, const char *name); /* +1 ref, or NULL */
nixl_status_t shm_peer_ensure_connected(nixl_be_engine_t *eng, shm_peer_t *peer);
nixl_status_t shm_peer_send_notif(nixl_be_engine_t *eng, shm_peer_t *peer, const void *msg,
                                  size_t len);
void shm_peer_flush(nixl_be_engine_t *eng, shm_peer_t *peer);        /* peer->lock held */
void shm_peer_close_conn(nixl_be_engine_t *eng, shm_peer_t *peer);   /* ev_lock held */
void shm_peers_destroy(nixl_be_engine_t *eng); /* the table, then any leftovers */
nixl_status_t shm_load_remote_conn(nixl_be_engine_t *eng, const char *agent, const void *blob,
                                   size_t len);
nixl_status_t shm_connect(nixl_be_engine_t *eng, const char *agent);
nixl_status_t shm_disconnect(nixl_be_engine_t *eng, const char *agent);
nixl_status_t shm_gen_notif(nixl_be_engine_t *eng, const char *agent, const void *msg,
                            size_t len);

/* shm_event.c: the listen socket, the event thread, inbound connections. */
nixl_status_t shm_event_start(nixl_be_engine_t *eng);
void shm_event_stop(nixl_be_engine_t *eng);
uint32_t shm_slot_add(nixl_be_engine_t *eng, uint32_t kind, void *obj, uint64_t *data);
void shm_slot_free(nixl_be_engine_t *eng, uint32_t idx);
nixl_status_t shm_progress(nixl_be_engine_t *eng);

/* shm_xfer.c: requests and the copy loop. */
nixl_status_t shm_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                            const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                            size_t count, const char *remote_agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out);
nixl_status_t shm_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts);
nixl_status_t shm_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t shm_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* Move the request's bytes; chunk bounds each syscall; `async` checks cancel/dead between. */
nixl_status_t shm_xfer_copy(nixl_be_req_t *req, size_t chunk, bool async);
nixl_status_t shm_xfer_notify(nixl_be_req_t *req, const void *msg, size_t len);

/* shm_worker.c: the async worker. */
nixl_status_t shm_worker_submit(nixl_be_engine_t *eng, nixl_be_req_t *req);
void shm_worker_abort(nixl_be_engine_t *eng, nixl_be_req_t *req);
void shm_worker_stop(nixl_be_engine_t *eng);

#endif
