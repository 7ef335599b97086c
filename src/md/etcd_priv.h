/*
 * etcd_priv.h - the HTTP/JSON layer of the etcd client (etcd_http.c): endpoints with fail
 * over, unary calls on one reused connection, watch streams on a curl multi handle, base64.
 * Used only by the client's worker thread (etcd.c), except etcd_http_wakeup().
 */
#ifndef NIXL_MD_ETCD_PRIV_H
#define NIXL_MD_ETCD_PRIV_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl.h"
#include "buf.h"
#include "clock.h"

#define ETCD_WHY 256

typedef struct etcd_http {
    char **endpoints; /* "http://host:port", no trailing slash */
    size_t num_endpoints;
    size_t cur;       /* the endpoint that answered last */
    CURL *easy;       /* unary calls */
    CURLM *multi;     /* watch streams */
    uint32_t connect_ms, call_ms;
    /* TLS for https:// endpoints (NIXL_ETCD_CA_FILE, _CERT_FILE, _KEY_FILE); NULL: libcurl's
     * defaults (the system's CA store, no client certificate) */
    char *ca_file, *cert_file, *key_file;
} etcd_http_t;

/* A watch stream: the bytes received so far, cut into JSON messages by etcd_stream_next(). */
typedef struct etcd_stream {
    CURL *easy;
    char *body;
    nixl_buf_t in;
    size_t pos;
    bool running; /* attached to the multi handle */
    bool done;    /* ended (error, close, or etcd restart); stop it and start again */
    char errbuf[CURL_ERROR_SIZE];
} etcd_stream_t;

/* Parse the comma list and read the TLS options (each file must be readable). INVALID_PARAM
 * for an empty list or entry, or a TLS file that cannot be read. */
nixl_status_t etcd_http_init(etcd_http_t *h, const char *endpoints);
void etcd_http_fini(etcd_http_t *h);

/*
 * POST `req` to `path` ("/v3/kv/put", ...) of the current endpoint, trying the others in turn
 * when it cannot be reached. On success *resp is the parsed answer (json_object_put it).
 * NIXL_ERR_REMOTE_DISCONNECT when no endpoint answers; NIXL_ERR_BACKEND for an etcd error
 * answer or garbage; `why` says which.
 */
nixl_status_t etcd_call(etcd_http_t *h, const char *path, json_object *req, json_object **resp,
                        char *why);

/* Start a watch stream with `req` ({"create_request": ...}) on the current endpoint. */
nixl_status_t etcd_stream_start(etcd_http_t *h, etcd_stream_t *s, json_object *req);
/* Detach and forget the stream (idempotent; the struct can be started again). */
void etcd_stream_stop(etcd_http_t *h, etcd_stream_t *s);
/* The next complete message (json_object_put it), or NULL. Garbage marks the stream done. */
json_object *etcd_stream_next(etcd_stream_t *s);
/* Move the streams' bytes for up to timeout_ms (returns early on traffic or a wake-up), and
 * mark ended streams done. */
void etcd_http_poll(etcd_http_t *h, int timeout_ms);
/* Make a poll return now (any thread). */
void etcd_http_wakeup(etcd_http_t *h);

/* ---- keys, JSON and base64 helpers ---- */
/* The end of the prefix range starting at `prefix` (its last byte plus one; malloc'ed). */
char *etcd_prefix_end(const char *prefix);
char *etcd_b64_encode(const void *data, size_t len);
/* NULL on bad input (or no memory); *len set. The result has a NUL after the bytes. */
uint8_t *etcd_b64_decode(const char *s, size_t *len);
/* Add field `name` as the base64 of the bytes. false when memory is short. */
bool etcd_json_add_b64(json_object *o, const char *name, const void *data, size_t len);
/* An int64 field (the gateway writes them as strings); `dflt` when absent. */
int64_t etcd_json_i64(json_object *o, const char *name, int64_t dflt);
/* A base64 field decoded (free()), NULL when absent; *len 0 then. */
uint8_t *etcd_json_bytes(json_object *o, const char *name, size_t *len);

#endif

/* ---- the client's state (etcd.c, etcd_watch.c) ---- */

#include <pthread.h>

#include "etcd.h"

typedef enum { TASK_PUT, TASK_FETCH, TASK_DELETE_ALL } etcd_task_kind_t;

typedef struct etcd_task {
    struct etcd_task *next;
    etcd_task_kind_t kind;
    char *arg; /* PUT: label; FETCH: peer name */
    char *label; /* FETCH */
    uint8_t *blob;
    size_t len;
} etcd_task_t;

/* A key/value of a label: what we published, or what we loaded of a peer. */
typedef struct etcd_kv {
    struct etcd_kv *next;
    char *label; /* "" is the anchor */
    uint8_t *val;
    size_t len;
    bool dirty; /* published: not written to etcd since it changed (or the lease changed) */
} etcd_kv_t;

/* A fetch waiting for its key: a GET, then a watch on the key from the GET's revision. */
typedef struct etcd_fetch {
    struct etcd_fetch *next;
    char *name, *label;
    uint64_t deadline_ns, retry_ns;
    etcd_stream_t s;
    char err[ETCD_WHY]; /* why the last GET failed ("" when it answered) */
} etcd_fetch_t;

/* A fetched peer: a watch on its prefix (anchor deleted: invalidate; metadata changed: reload). */
typedef struct etcd_peer {
    struct etcd_peer *next;
    char *name;
    int64_t next_rev;
    uint64_t retry_ns;
    etcd_kv_t *loaded;
    etcd_stream_t s;
} etcd_peer_t;

struct nixl_etcd {
    char *agent;
    char *prefix; /* <ns>/<agent>/: the anchor key, and the prefix of all our keys */
    char *ns;
    uint64_t watch_timeout_ns;
    uint64_t lease_ttl_s;
    nixl_etcd_hooks_t hooks;
    etcd_http_t http;
    pthread_t thread;
    pthread_mutex_t lock; /* tasks and stop */
    etcd_task_t *tasks, **tasks_tail;
    bool stop;
    /* Worker-only state. */
    int64_t lease; /* 0: none granted */
    uint64_t keepalive_ns, flush_ns;
    bool delete_pending;
    etcd_kv_t *published; /* anchor first */
    etcd_fetch_t *fetches;
    etcd_peer_t *peers;
};

/* <ns>/<name>/<label> (malloc'ed). */
char *etcd_key(const nixl_etcd_t *e, const char *name, const char *label);
void etcd_kv_free_all(etcd_kv_t *kv);

/* etcd_watch.c: fetches and peer watches, run by the worker. */
void etcd_fetch_add(nixl_etcd_t *e, etcd_task_t *t);
/* One pass over the fetches and peers; lowers *timeout_ms to the next due time. */
void etcd_watch_tick(nixl_etcd_t *e, int *timeout_ms);
void etcd_watch_free_all(nixl_etcd_t *e);
