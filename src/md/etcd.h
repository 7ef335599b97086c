/*
 * etcd.h - the etcd metadata client (reference NIXL-SEMANTICS 5.11): agents publish their
 * metadata under <namespace>/<agent>/<label>, fetch peers by name, and learn of departures
 * through a watch on the peer's anchor key <namespace>/<agent>/.
 *
 * It speaks etcd's v3 JSON gateway (/v3/kv/..., /v3/lease/..., /v3/watch) through libcurl and
 * json-c, so no gRPC stack is needed. Every network call runs on one worker thread per agent;
 * the API only queues. Beyond the reference, the agent's keys hang on a lease that the worker
 * keeps alive (NIXL_ETCD_LEASE_TTL_S), so a crashed agent's keys vanish and its peers'
 * watches invalidate it; and a peer that republishes changed metadata is reloaded.
 *
 * Builds without libcurl or json-c get a stub whose nixl_etcd_create() fails with a reason.
 */
#ifndef NIXL_MD_ETCD_H
#define NIXL_MD_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "nixl.h"

typedef struct nixl_etcd nixl_etcd_t;

/* Called on the worker thread, never with the client's lock held. */
typedef struct nixl_etcd_hooks {
    void *ctx;
    /* Load a peer's metadata read from `key` (<ns>/<name>/<label>); on success *name
     * (malloc'ed) is the peer's name. */
    nixl_status_t (*load_md)(void *ctx, const char *key, const uint8_t *blob, size_t len,
                             char **name);
    /* Forget a peer (its anchor key was deleted, or it changed and is reloaded). */
    void (*invalidate)(void *ctx, const char *name);
    /* A fetch of `name` ended: NIXL_SUCCESS, or an error and its reason. */
    void (*fetch_done)(void *ctx, const char *name, nixl_status_t status, const char *reason);
} nixl_etcd_hooks_t;

/*
 * Start the client of agent `agent_name` from NIXL_ETCD_ENDPOINTS (comma list; a missing
 * scheme means http://), NIXL_ETCD_NAMESPACE (default "/nixl/agents/") and
 * NIXL_ETCD_LEASE_TTL_S (default 10; 0 = no lease, keys stay like the reference's). No network
 * I/O happens here: the worker announces the agent (its anchor key) in the background.
 * NIXL_ERR_NOT_SUPPORTED in a build without libcurl/json-c; INVALID_PARAM for bad options.
 */
nixl_status_t nixl_etcd_create(const char *agent_name, uint64_t watch_timeout_us,
                               const nixl_etcd_hooks_t *hooks, nixl_etcd_t **out);

/* The key <ns>/<name>/<label> (malloc'ed; NULL when memory is short), e.g. what a blob that
 * will be published under it is bound to. */
char *nixl_etcd_key(const nixl_etcd_t *e, const char *name, const char *label);

/* Queue a put of `blob` (copied) under <ns>/<agent>/<label>. */
nixl_status_t nixl_etcd_publish(nixl_etcd_t *e, const char *label, const void *blob, size_t len);

/* Queue a fetch of <ns>/<name>/<label>; its outcome goes to hooks->fetch_done. */
nixl_status_t nixl_etcd_fetch(nixl_etcd_t *e, const char *name, const char *label);

/* Queue the deletion of every key of this agent (anchor included). */
nixl_status_t nixl_etcd_invalidate_local(nixl_etcd_t *e);

/* Stop: queued work gets a bounded time to reach etcd, then the worker ends. NULL is a no-op. */
void nixl_etcd_destroy(nixl_etcd_t *e);

#endif
