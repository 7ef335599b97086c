/*
 * agent_impl.h - the agent's internal state, shared by the core's files (agent.c, mem.c,
 * metadata.c, xfer.c, notif.c).
 *
 * Locking, two levels, always taken in this order:
 *  - agent->ctl_lock, a mutex, serialises the control calls (backends, registration,
 *    metadata, connections, invalidation, destroy): one at a time per agent, so the engines
 *    see their control operations one at a time, as nixl_plugin.h promises, and a control
 *    call may read the tables (engines, peers, sections) without more locking, since only
 *    control calls change them.
 *  - agent->lock, a reader/writer lock, guards the tables against the data path. Data-path
 *    calls (prep, make, create, post, status, release, gen_notif, get_notifs, metadata
 *    export) take it shared, or exclusively in NIXL_THREAD_SYNC_STRICT. A control call takes
 *    it exclusively only while it changes the tables (agent_wrlock() takes both locks;
 *    agent_tables_release() / agent_tables_take() drop and retake this one while keeping
 *    ctl_lock). Engine calls that can take long (creating an engine, registering and
 *    deregistering memory, loading a peer's connection info, connecting, disconnecting,
 *    unloading a peer) run between the two, so transfers go on meanwhile: what they publish
 *    is prepared first and installed under the write lock, and what they take away is
 *    unpublished under it first.
 * Notification queues have their own mutex per engine because plugins push into them from
 * their threads; the handle lists have handles_lock.
 */
#ifndef NIXL_CORE_AGENT_IMPL_H
#define NIXL_CORE_AGENT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "nixl.h"
#include "nixl_plugin.h"
#include "registry.h"
#include "clock.h"
#include "hashmap.h"
#include "list.h"
#include "telem.h"

#define NIXL_MAX_ENGINES 16
#define NIXL_MAX_NAME 255

/* A queued notification: the sender's name and the payload, one allocation. */
typedef struct nixl_notif_entry {
    struct nixl_notif_entry *next;
    size_t name_len;
    size_t msg_len;
    char data[]; /* name, NUL, payload */
} nixl_notif_entry_t;

struct nixl_backend {
    nixl_agent_t *agent;
    const nixl_be_ops_t *ops;         /* every operation set (plugin.h) */
    const nixl_plugin_info_t *info;   /* the plugin's description */
    nixl_be_engine_t *eng;
    nixl_host_t host;                 /* this engine's view of the core (host.c) */
    unsigned index;  /* position in agent->engines (creation order) */
    unsigned rank;   /* position in the preference order (docs/backends.md) */
    const char *name; /* info->name */
    nixl_param_t *params; /* what the user passed, plus defaults the user did not set */
    size_t num_params;
    const void *conn_info; /* owned by the engine */
    size_t conn_len;
    /* Created by the core beside a network backend for same-host peers (NIXL_AUTO_SHM), not by
     * the user: a registration hinted to that backend includes it, and its refusals are not
     * the call's failure. A later explicit create of the same plugin adopts it. */
    bool implicit;
    /* Notifications pushed by the plugin, waiting for get_notifs. */
    pthread_mutex_t notif_lock;
    nixl_notif_entry_t *notif_head, **notif_tail;
};

typedef enum peer_conn_state {
    PEER_CONN_NONE = 0, /* no connection info for this engine */
    PEER_CONN_LOADED,   /* loaded into the engine */
    PEER_CONN_UNREACHABLE, /* the engine cannot reach this peer (another host for SHM) */
} peer_conn_state_t;

/* A blob arena: the region blobs of one metadata load, freed when the peer goes. */
typedef struct nixl_arena {
    struct nixl_arena *next;
    uint8_t data[];
} nixl_arena_t;

/*
 * A peer, or the agent itself (loopback). Requests hold a reference, so a peer object outlives
 * its invalidation until the last request made against it is released; `valid` and
 * `generation` tell such requests that they are stale.
 */
typedef struct nixl_peer {
    atomic_int refs;
    atomic_bool valid;
    uint64_t generation;
    bool is_self;
    char *name;
    peer_conn_state_t conn[NIXL_MAX_ENGINES];
    uint8_t *conn_info[NIXL_MAX_ENGINES];
    size_t conn_len[NIXL_MAX_ENGINES];
    nixl_section_t sections[NIXL_MAX_ENGINES][NIXL_MEM_COUNT];
    nixl_arena_t *arenas;
} nixl_peer_t;

typedef struct nixl_fetch_rec nixl_fetch_rec_t; /* md_exchange.c */
struct nixl_sc;

struct nixl_agent {
    char *name;
    nixl_agent_config_t cfg;
    bool telemetry;      /* per-request telemetry (get_xfer_telemetry) */
    nixl_telem_t *telem; /* the event stream to an exporter; NULL: none (NOP, or off) */
    pthread_mutex_t ctl_lock; /* see "Locking" above */
    pthread_rwlock_t lock;
    bool strict;

    nixl_backend_t *engines[NIXL_MAX_ENGINES];
    unsigned num_engines;
    /* Destroy: engines that still hold a request they refused to release. They are neither
     * called nor freed any more (nixl_agent_destroy() in nixl.h). */
    uint32_t stuck;

    /* Our registered regions, per engine and memory type. */
    nixl_section_t local[NIXL_MAX_ENGINES][NIXL_MEM_COUNT];

    nixl_peer_t *self; /* loopback sections; created with the agent */
    nixl_hmap_t peers; /* name -> nixl_peer_t *, keyed by the peer's own name */

    /* Requests and prepared lists not released yet (freed at destroy). */
    pthread_mutex_t handles_lock;
    nixl_list_node_t *reqs;
    nixl_list_node_t *dlists;

    /* Metadata exchange (md_exchange.c): the side channel, created with the agent when it
     * listens or at the first send/fetch, and the outcome of each fetch. */
    pthread_mutex_t sc_lock;
    struct nixl_sc *sc;
    nixl_fetch_rec_t *fetches;
    /* with a secret: per etcd key, the newest proof timestamp loaded from it (rollbacks) */
    nixl_hmap_t etcd_seen; /* etcd key -> newest proof stamp loaded (md_exchange.c) */
    size_t sc_max_peers; /* peers a side-channel LOAD may add up to (NIXL_SIDECHANNEL_MAX_PEERS) */
    /* The shared secret's authenticator (NULL: the reference's unauthenticated protocol). */
    struct nixl_auth *auth;
    /* The etcd client when NIXL_ETCD_ENDPOINTS is set (calls without ip_addr go there). */
    struct nixl_etcd *etcd;
};

struct nixl_dlist {
    nixl_list_node_t node; /* agent->dlists */
    nixl_agent_t *agent;
    nixl_peer_t *peer; /* NULL for the local side; referenced */
    uint64_t generation;
    nixl_mem_t type;
    size_t count;
    uint32_t engines; /* bit per engine index for which the whole list validated */
    nixl_be_desc_t *resolved[NIXL_MAX_ENGINES]; /* count elements each, one allocation */
};

struct nixl_xfer_req {
    nixl_list_node_t node; /* agent->reqs */
    nixl_agent_t *agent;
    nixl_backend_t *engine;
    nixl_peer_t *peer; /* referenced */
    uint64_t generation;
    nixl_xfer_op_t op;
    nixl_be_req_t *be_req;
    _Atomic int status;
    bool has_notif;
    uint8_t *notif;
    size_t notif_len;
    size_t count;        /* descriptors given to the backend (after merging) */
    uint64_t total_bytes;
    uint64_t deadline_ns; /* of the current post (CLOCK_MONOTONIC); 0: none */
    _Atomic bool stopping; /* reported canceled at its deadline, the backend still stopping */
    /* telemetry */
    uint64_t start_ns;
    uint64_t post_ns;
    uint64_t done_ns;
};

/* ---- locking (see the top of this file) ---- */
/* A control call: ctl_lock, then the tables exclusively. */
static inline void agent_wrlock(nixl_agent_t *a)
{
    pthread_mutex_lock(&a->ctl_lock);
    pthread_rwlock_wrlock(&a->lock);
}
static inline void agent_wrunlock(nixl_agent_t *a)
{
    pthread_rwlock_unlock(&a->lock);
    pthread_mutex_unlock(&a->ctl_lock);
}
/* Within a control call: let the data path in around a long engine call, and back. In
 * NIXL_THREAD_SYNC_STRICT every call is exclusive, so the tables stay locked. */
static inline void agent_tables_release(nixl_agent_t *a)
{
    if (!a->strict)
        pthread_rwlock_unlock(&a->lock);
}
static inline void agent_tables_take(nixl_agent_t *a)
{
    if (!a->strict)
        pthread_rwlock_wrlock(&a->lock);
}
static inline void agent_rdlock(nixl_agent_t *a)
{
    if (a->strict)
        pthread_rwlock_wrlock(&a->lock);
    else
        pthread_rwlock_rdlock(&a->lock);
}
static inline void agent_unlock(nixl_agent_t *a)
{
    pthread_rwlock_unlock(&a->lock);
}

/* ---- peers (agent.c) ---- */
nixl_peer_t *peer_find(nixl_agent_t *a, const char *name);
/* The transfer target named `name`: the agent itself (loopback) or a loaded peer; NULL if
 * neither. */
nixl_peer_t *peer_target(nixl_agent_t *a, const char *name);
/* A new peer object, not in the table yet (generation assigned). NULL when memory is short. */
nixl_peer_t *peer_alloc(const char *name);
/* Put a peer made by peer_alloc into the table (tables locked). False when memory is short
 * (the peer stays out). */
bool peer_insert(nixl_agent_t *a, nixl_peer_t *p);
/* Forget a peer: take it out of the table and mark it stale (tables locked), then, with the
 * tables released, give the engines back its regions and disconnect them; drops the table's
 * reference. Called in a control call holding the tables; returns holding them again. */
void peer_remove(nixl_agent_t *a, nixl_peer_t *p);
/* The engine half of peer_remove, for a peer that is in no table (ctl_lock held). */
void peer_unload(nixl_agent_t *a, nixl_peer_t *p);
/* An engine says the peer is gone: forget its metadata so that the user reloads it, unless it
 * was reloaded since `generation`. A control call: no agent lock held; the caller holds a
 * reference to `p`. */
void peer_lost(nixl_agent_t *a, nixl_peer_t *p, uint64_t generation);
void peer_ref(nixl_peer_t *p);
void peer_unref(nixl_peer_t *p);
/* Whether `name` is valid as an agent name (non-empty, <= NIXL_MAX_NAME). */
bool agent_name_valid(const char *name);

/* ---- engines (agent.c) ---- */
/* The engines an optional-argument hint names, as a bit mask; or all. INVALID_PARAM for a
 * handle of another agent. */
nixl_status_t engines_from_opt(nixl_agent_t *a, const nixl_opt_args_t *opt, uint32_t *mask,
                               bool *hinted);
/* mask plus the implicit engines that go with the engines in it (registration hints). */
uint32_t engines_with_implicit(nixl_agent_t *a, uint32_t mask);
/* Engine indices of `mask` in preference order, or in hint order when hinted. */
size_t engines_ordered(nixl_agent_t *a, const nixl_opt_args_t *opt, uint32_t mask,
                       unsigned *out);
nixl_backend_t *engine_by_name(nixl_agent_t *a, const char *name, size_t len);

/* ---- notifications (notif.c) ---- */
void notif_host_push(nixl_backend_t *b, const char *agent, size_t agent_len, const void *msg,
                     size_t len);

/* ---- the host services of an engine (host.c) ---- */
void backend_host_init(nixl_backend_t *b);
/* A view of the metadata handles of `n` regions starting at `r` (no copy). */
static inline nixl_be_mds_t regions_mds(const nixl_region_t *r, size_t n)
{
    return (nixl_be_mds_t){.base = r ? (const void *)&r->md : NULL, .stride = sizeof(*r),
                           .count = n};
}
void notif_queue_free(nixl_backend_t *b);

/* ---- metadata exchange (md_exchange.c) ---- */
/* Start the listener when the configuration asks for it. */
nixl_status_t md_exchange_init(nixl_agent_t *a);
/* Stop the side channel (queued messages get a bounded time to leave); before the lock. */
void md_exchange_fini(nixl_agent_t *a);
/* The error of the last fetch of `name` if it failed (reason set), else NIXL_SUCCESS. Must
 * not be called with the agent lock held. */
nixl_status_t md_fetch_failure(nixl_agent_t *a, const char *name);
/* nixl_agent_load_remote_md that refuses (NOT_ALLOWED) to add a peer beyond `max_peers`
 * loaded ones; a peer already loaded may be reloaded (metadata.c). */
nixl_status_t agent_load_md_bounded(nixl_agent_t *agent, const void *blob, size_t len,
                                    size_t max_peers, char **out_name);

/* ---- telemetry events (src/telemetry) ---- */
/* An error event for a failed public call (status < 0); nothing for other statuses. */
static inline nixl_status_t agent_telem_status(nixl_agent_t *a, nixl_status_t st)
{
    if (st < 0 && a && a->telem)
        nixl_telem_record(a->telem, NIXL_TELEM_ERROR_EVENT(st), 1);
    return st;
}

/* ---- transfers (xfer.c) ---- */
/* Destroy: release every request (newest first), retrying those the engine refuses for a
 * bounded time, then every prepared list. Returns the engines (bit per index) that still hold
 * a request: the caller must not free or destroy them. */
uint32_t xfer_release_all(nixl_agent_t *a);


/* Whether optional arguments carry field `f` (callers compiled against older headers). */
#define OPT_HAS(opt, f)                                                                      \
    ((opt) && (opt)->struct_size >= offsetof(nixl_opt_args_t, f) + sizeof((opt)->f))

#endif
