/*
 * etcd.c - the etcd client's API, worker loop, lease and publications (etcd.h). Fetches and
 * peer watches are in etcd_watch.c.
 *
 * The worker owns every network call. Our keys are remembered (label -> value), so that
 * whatever etcd lost (a restart without its data, an expired lease after a partition) is
 * written again: a key whose write failed stays dirty and is retried every FLUSH_RETRY_MS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "etcd_priv.h"

#define DEFAULT_NAMESPACE "/nixl/agents/"
#define DEFAULT_LEASE_TTL_S 10u
#define FLUSH_RETRY_MS 500
#define IDLE_POLL_MS 1000
#define DRAIN_MS 2000u

char *etcd_key(const nixl_etcd_t *e, const char *name, const char *label)
{
    size_t n = strlen(e->ns) + strlen(name) + strlen(label) + 3;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s/%s/%s", e->ns, name, label);
    return k;
}

char *nixl_etcd_key(const nixl_etcd_t *e, const char *name, const char *label)
{
    return etcd_key(e, name, label);
}

void etcd_kv_free_all(etcd_kv_t *kv)
{
    while (kv) {
        etcd_kv_t *next = kv->next;
        free(kv->label);
        free(kv->val);
        free(kv);
        kv = next;
    }
}

static void task_free(etcd_task_t *t)
{
    free(t->arg);
    free(t->label);
    free(t->blob);
    free(t);
}

/* ---- the lease ---- */

static void lease_tick(nixl_etcd_t *e, uint64_t now)
{
    char why[ETCD_WHY];
    if (!e->lease_ttl_s || now < e->keepalive_ns)
        return;
    json_object *req = json_object_new_object(), *resp = NULL;
    nixl_status_t st;
    if (!e->lease) {
        json_object_object_add(req, "TTL", json_object_new_int64((int64_t)e->lease_ttl_s));
        st = etcd_call(&e->http, "/v3/lease/grant", req, &resp, why);
        if (st == NIXL_SUCCESS && (e->lease = etcd_json_i64(resp, "ID", 0)) != 0) {
            NIXL_DEBUG("etcd: agent '%s' holds lease %lld (TTL %llu s)", e->agent,
                       (long long)e->lease, (unsigned long long)e->lease_ttl_s);
            for (etcd_kv_t *kv = e->published; kv; kv = kv->next)
                kv->dirty = true; /* rewrite everything on the new lease */
        }
    } else {
        json_object_object_add(req, "ID", json_object_new_int64(e->lease));
        st = etcd_call(&e->http, "/v3/lease/keepalive", req, &resp, why);
        json_object *res = NULL;
        if (st == NIXL_SUCCESS && json_object_object_get_ex(resp, "result", &res) &&
            etcd_json_i64(res, "TTL", 0) <= 0) {
            NIXL_WARN("etcd: lease of agent '%s' expired; publishing again on a new one",
                      e->agent);
            e->lease = 0;
        }
    }
    if (st != NIXL_SUCCESS)
        NIXL_DEBUG("etcd: lease of '%s': %s", e->agent, why);
    json_object_put(req);
    json_object_put(resp);
    uint64_t period = st == NIXL_SUCCESS && e->lease ? e->lease_ttl_s * 1000000000ull / 3
                                                      : FLUSH_RETRY_MS * 1000000ull;
    e->keepalive_ns = now + period;
}

/* ---- our keys ---- */

static nixl_status_t put_kv(nixl_etcd_t *e, const etcd_kv_t *kv, char *why)
{
    char *key = etcd_key(e, e->agent, kv->label);
    json_object *req = json_object_new_object(), *resp = NULL;
    nixl_status_t st = NIXL_ERR_OOM;
    snprintf(why, ETCD_WHY, NIXL_OOM_REASON);
    if (key && req && etcd_json_add_b64(req, "key", key, strlen(key)) &&
        etcd_json_add_b64(req, "value", kv->val, kv->len)) {
        if (e->lease)
            json_object_object_add(req, "lease", json_object_new_int64(e->lease));
        st = etcd_call(&e->http, "/v3/kv/put", req, &resp, why);
        /* A lease etcd does not know (it expired, or etcd lost its data) */
        if (st == NIXL_ERR_BACKEND && strstr(why, "lease not found"))
            e->lease = 0, e->keepalive_ns = 0;
    }
    json_object_put(req);
    json_object_put(resp);
    free(key);
    return st;
}

static nixl_status_t delete_all(nixl_etcd_t *e, char *why)
{
    char *end = etcd_prefix_end(e->prefix);
    json_object *req = json_object_new_object(), *resp = NULL;
    nixl_status_t st = NIXL_ERR_OOM;
    snprintf(why, ETCD_WHY, NIXL_OOM_REASON);
    if (end && req && etcd_json_add_b64(req, "key", e->prefix, strlen(e->prefix)) &&
        etcd_json_add_b64(req, "range_end", end, strlen(end)))
        st = etcd_call(&e->http, "/v3/kv/deleterange", req, &resp, why);
    json_object_put(req);
    json_object_put(resp);
    free(end);
    return st;
}

/* Write what etcd lacks. false when etcd could not be reached (retry later). */
static bool flush(nixl_etcd_t *e)
{
    char why[ETCD_WHY];
    if (e->lease_ttl_s && !e->lease)
        return !e->published; /* nothing may be written before the lease exists */
    if (e->delete_pending) {
        if (delete_all(e, why) != NIXL_SUCCESS) {
            NIXL_WARN("etcd: removing the keys of '%s' failed (will retry): %s", e->agent, why);
            return false;
        }
        e->delete_pending = false;
    }
    for (etcd_kv_t *kv = e->published; kv; kv = kv->next) {
        if (!kv->dirty)
            continue;
        nixl_status_t st = put_kv(e, kv, why);
        if (st != NIXL_SUCCESS) {
            NIXL_WARN("etcd: publishing '%s%s' failed (will retry): %s", e->prefix, kv->label,
                      why);
            return false;
        }
        kv->dirty = false;
    }
    return true;
}

/* Remember label -> value (the anchor first, announced before the first label). */
static void publish(nixl_etcd_t *e, const char *label, uint8_t *val, size_t len)
{
    etcd_kv_t **pp = &e->published;
    while (*pp && strcmp((*pp)->label, label))
        pp = &(*pp)->next;
    etcd_kv_t *kv = *pp;
    if (!kv) {
        kv = calloc(1, sizeof(*kv));
        if (!kv || !(kv->label = strdup(label))) {
            free(kv);
            free(val);
            NIXL_ERROR("etcd: out of memory publishing '%s'", label);
            return;
        }
        *pp = kv;
    }
    free(kv->val);
    kv->val = val;
    kv->len = len;
    kv->dirty = true;
}

static void run_task(nixl_etcd_t *e, etcd_task_t *t)
{
    switch (t->kind) {
    case TASK_PUT:
        if (!e->published || strcmp(e->published->label, ""))
            publish(e, "", NULL, 0); /* re-announce after an invalidation */
        publish(e, t->arg, t->blob, t->len);
        t->blob = NULL;
        break;
    case TASK_DELETE_ALL:
        etcd_kv_free_all(e->published);
        e->published = NULL;
        e->delete_pending = true;
        break;
    case TASK_FETCH:
        etcd_fetch_add(e, t);
        t->arg = t->label = NULL;
        break;
    }
    task_free(t);
}

static void *worker(void *arg)
{
    nixl_etcd_t *e = arg;
    uint64_t drain_until = 0;
    for (;;) {
        pthread_mutex_lock(&e->lock);
        etcd_task_t *tasks = e->tasks;
        e->tasks = NULL;
        e->tasks_tail = &e->tasks;
        bool stop = e->stop;
        pthread_mutex_unlock(&e->lock);
        while (tasks) {
            etcd_task_t *next = tasks->next;
            run_task(e, tasks);
            tasks = next;
        }
        uint64_t now = nixl_now_ns();
        lease_tick(e, now);
        bool synced = false;
        if (now >= e->flush_ns) {
            synced = flush(e);
            e->flush_ns = synced ? 0 : now + FLUSH_RETRY_MS * 1000000ull;
        }
        if (stop) {
            /* Queued publications and deletions get a bounded time to reach etcd. */
            if (!drain_until)
                drain_until = now + DRAIN_MS * 1000000ull;
            if ((synced && !e->delete_pending) || now >= drain_until)
                break;
        }
        int timeout = IDLE_POLL_MS;
        if (e->flush_ns)
            timeout = FLUSH_RETRY_MS;
        if (e->lease_ttl_s) {
            int64_t ka = ((int64_t)e->keepalive_ns - (int64_t)now) / 1000000;
            timeout = ka < 0 ? 0 : ka < timeout ? (int)ka : timeout;
        }
        etcd_watch_tick(e, &timeout);
        etcd_http_poll(&e->http, timeout);
    }
    return NULL;
}

/* ---- API ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static nixl_status_t enqueue(nixl_etcd_t *e, etcd_task_kind_t kind, const char *arg,
                             const char *label, const void *blob, size_t len)
{
    etcd_task_t *t = calloc(1, sizeof(*t));
    if (!t)
        return nixl_err_oom("etcd task");
    t->kind = kind;
    t->arg = arg ? strdup(arg) : NULL;
    t->label = label ? strdup(label) : NULL;
    t->blob = len ? malloc(len) : NULL;
    if ((arg && !t->arg) || (label && !t->label) || (len && !t->blob)) {
        task_free(t);
        return nixl_err_oom("etcd task");
    }
    if (len)
        memcpy(t->blob, blob, len);
    t->len = len;
    pthread_mutex_lock(&e->lock);
    *e->tasks_tail = t;
    e->tasks_tail = &t->next;
    pthread_mutex_unlock(&e->lock);
    etcd_http_wakeup(&e->http);
    return NIXL_SUCCESS;
}

nixl_status_t nixl_etcd_publish(nixl_etcd_t *e, const char *label, const void *blob, size_t len)
{
    if (!e || !label || !*label || (len && !blob))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "etcd publish: a client and a label are required");
    return enqueue(e, TASK_PUT, label, NULL, blob, len);
}

nixl_status_t nixl_etcd_fetch(nixl_etcd_t *e, const char *name, const char *label)
{
    if (!e || !name || !*name || !label || !*label)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "etcd fetch: a name and a label are required");
    return enqueue(e, TASK_FETCH, name, label, NULL, 0);
}

nixl_status_t nixl_etcd_invalidate_local(nixl_etcd_t *e)
{
    if (!e)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "etcd invalidate: no client");
    return enqueue(e, TASK_DELETE_ALL, NULL, NULL, NULL, 0);
}

static void etcd_free(nixl_etcd_t *e)
{
    etcd_watch_free_all(e);
    etcd_http_fini(&e->http);
    while (e->tasks) {
        etcd_task_t *t = e->tasks;
        e->tasks = t->next;
        task_free(t);
    }
    etcd_kv_free_all(e->published);
    free(e->agent);
    free(e->prefix);
    free(e->ns);
    free(e);
}

nixl_status_t nixl_etcd_create(const char *agent_name, uint64_t watch_timeout_us,
                               const nixl_etcd_hooks_t *hooks, nixl_etcd_t **out)
{
    if (!agent_name || !hooks || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "etcd create: missing argument");
    char *endpoints = NULL;
    uint64_t ttl = DEFAULT_LEASE_TTL_S;
    nixl_status_t st = nixl_config_string("NIXL_ETCD_ENDPOINTS", &endpoints);
    if (st != NIXL_SUCCESS)
        return st;
    if (!endpoints || !*endpoints) {
        free(endpoints);
        return nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_ETCD_ENDPOINTS is empty");
    }
    st = nixl_config_u64("NIXL_ETCD_LEASE_TTL_S", &ttl);
    if (st == NIXL_SUCCESS && ttl > 86400)
        st = nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_ETCD_LEASE_TTL_S=%llu is over a day",
                      (unsigned long long)ttl);
    nixl_etcd_t *e = NULL;
    if (st != NIXL_SUCCESS)
        goto fail;
    pthread_once(&curl_once, curl_init_once);
    e = calloc(1, sizeof(*e));
    if (!e) {
        st = nixl_err_oom("etcd client");
        goto fail;
    }
    st = nixl_config_string("NIXL_ETCD_NAMESPACE", &e->ns);
    if (st == NIXL_SUCCESS && (!e->ns || !*e->ns)) {
        free(e->ns);
        e->ns = strdup(DEFAULT_NAMESPACE);
    }
    e->agent = strdup(agent_name);
    if (st == NIXL_SUCCESS && (!e->ns || !e->agent))
        st = nixl_err_oom("etcd client");
    if (st == NIXL_SUCCESS && !(e->prefix = etcd_key(e, agent_name, "")))
        st = nixl_err_oom("etcd client");
    if (st == NIXL_SUCCESS)
        st = etcd_http_init(&e->http, endpoints);
    if (st != NIXL_SUCCESS)
        goto fail;
    e->watch_timeout_ns = watch_timeout_us * 1000ull;
    e->lease_ttl_s = ttl;
    e->hooks = *hooks;
    e->tasks_tail = &e->tasks;
    pthread_mutex_init(&e->lock, NULL);
    publish(e, "", NULL, 0); /* announce the agent */
    if (pthread_create(&e->thread, NULL, worker, e) != 0) {
        pthread_mutex_destroy(&e->lock);
        st = nixl_err(NIXL_ERR_UNKNOWN, "etcd: cannot start the worker thread");
        goto fail;
    }
    NIXL_INFO("etcd: agent '%s' publishes under '%s' (endpoints %s, lease TTL %llu s)",
              agent_name, e->prefix, endpoints, (unsigned long long)ttl);
    free(endpoints);
    *out = e;
    return NIXL_SUCCESS;
fail:
    if (e)
        etcd_free(e);
    free(endpoints);
    return st;
}

void nixl_etcd_destroy(nixl_etcd_t *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->stop = true;
    pthread_mutex_unlock(&e->lock);
    etcd_http_wakeup(&e->http);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->lock);
    etcd_free(e);
}
