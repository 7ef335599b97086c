/*
 * etcd_watch.c - fetches (a GET, then a watch until the key appears or the watch timeout
 * passes) and the watches on fetched peers (etcd_priv.h), run by the client's worker.
 *
 * A peer watch covers the peer's whole prefix from the revision its metadata was read at, so
 * nothing between the read and the watch is missed, and a watch that breaks (etcd restarted,
 * endpoint lost) resumes from the next unseen revision. The anchor's deletion invalidates the
 * peer (the reference); a changed value of a label we loaded reloads it (not the reference).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "etcd_priv.h"

#define FETCH_RETRY_MS 250
#define WATCH_RETRY_MS 500
#define MS 1000000ull

static json_object *result_of(json_object *msg)
{
    json_object *r;
    return json_object_object_get_ex(msg, "result", &r) ? r : msg;
}

static void lower(int *timeout_ms, uint64_t due, uint64_t now)
{
    int64_t left = due > now ? (int64_t)((due - now) / MS) + 1 : 0;
    if (left < *timeout_ms)
        *timeout_ms = (int)left;
}

/* GET key: *val (malloc'ed, NULL when absent) and the store's revision. */
static nixl_status_t range_get(nixl_etcd_t *e, const char *key, uint8_t **val, size_t *len,
                               int64_t *rev, char *why)
{
    json_object *req = json_object_new_object(), *resp = NULL, *kvs, *hdr;
    nixl_status_t st = NIXL_ERR_OOM;
    snprintf(why, ETCD_WHY, NIXL_OOM_REASON);
    *val = NULL;
    *len = 0;
    if (req && etcd_json_add_b64(req, "key", key, strlen(key)))
        st = etcd_call(&e->http, "/v3/kv/range", req, &resp, why);
    if (st == NIXL_SUCCESS) {
        *rev = json_object_object_get_ex(resp, "header", &hdr) ? etcd_json_i64(hdr, "revision", 0)
                                                               : 0;
        if (json_object_object_get_ex(resp, "kvs", &kvs) && json_object_array_length(kvs) > 0)
            *val = etcd_json_bytes(json_object_array_get_idx(kvs, 0), "value", len);
    }
    json_object_put(req);
    json_object_put(resp);
    return st;
}

static nixl_status_t watch_start(nixl_etcd_t *e, etcd_stream_t *s, const char *key, bool prefix,
                                 int64_t start_rev)
{
    json_object *req = json_object_new_object(), *cr = json_object_new_object();
    char *end = prefix ? etcd_prefix_end(key) : NULL;
    nixl_status_t st = NIXL_ERR_UNKNOWN;
    if (req && cr && (!prefix || end) && etcd_json_add_b64(cr, "key", key, strlen(key)) &&
        (!prefix || etcd_json_add_b64(cr, "range_end", end, strlen(end)))) {
        json_object_object_add(cr, "start_revision", json_object_new_int64(start_rev));
        json_object_object_add(req, "create_request", cr);
        cr = NULL;
        st = etcd_stream_start(&e->http, s, req);
    }
    json_object_put(cr);
    json_object_put(req);
    free(end);
    return st;
}

/* ---- peers ---- */

static etcd_peer_t **peer_slot(nixl_etcd_t *e, const char *name)
{
    etcd_peer_t **pp = &e->peers;
    while (*pp && strcmp((*pp)->name, name))
        pp = &(*pp)->next;
    return pp;
}

static void peer_free(nixl_etcd_t *e, etcd_peer_t *p)
{
    etcd_stream_stop(&e->http, &p->s);
    etcd_kv_free_all(p->loaded);
    free(p->name);
    free(p);
}

/* Remember that `label` of `name` was loaded with `val`, and watch the peer. */
static void peer_track(nixl_etcd_t *e, const char *name, const char *label, const uint8_t *val,
                       size_t len, int64_t next_rev)
{
    etcd_peer_t **pp = peer_slot(e, name), *p = *pp;
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p || !(p->name = strdup(name))) {
            free(p);
            goto oom;
        }
        p->next_rev = next_rev;
        *pp = p;
    }
    etcd_kv_t *kv = p->loaded;
    while (kv && strcmp(kv->label, label))
        kv = kv->next;
    if (!kv) {
        kv = calloc(1, sizeof(*kv));
        if (!kv || !(kv->label = strdup(label))) {
            free(kv);
            goto oom;
        }
        kv->next = p->loaded;
        p->loaded = kv;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        goto oom;
    memcpy(copy, val, len);
    free(kv->val);
    kv->val = copy;
    kv->len = len;
    return;
oom:
    NIXL_ERROR("etcd: out of memory; changes of '%s' will not be followed", name);
}

/* Load a peer's blob of `label`; *why says why not. */
static nixl_status_t load(nixl_etcd_t *e, const char *name, const char *label,
                          const uint8_t *val, size_t len, char *why)
{
    char *got = NULL, *key = etcd_key(e, name, label);
    nixl_status_t st = key ? e->hooks.load_md(e->hooks.ctx, key, val, len, &got)
                           : nixl_err_oom("an etcd key");
    free(key);
    if (st != NIXL_SUCCESS)
        snprintf(why, ETCD_WHY, "loading the metadata of '%s' from etcd failed: %s", name,
                 nixl_err_text());
    else if (strcmp(got, name)) {
        snprintf(why, ETCD_WHY, "the etcd key of '%s' holds the metadata of '%.64s'", name, got);
        st = NIXL_ERR_MISMATCH;
    }
    free(got);
    return st;
}

/* A label we loaded changed: forget the peer and load what it publishes now. */
static void peer_reload(nixl_etcd_t *e, etcd_peer_t *p, etcd_kv_t *changed, const uint8_t *val,
                        size_t len)
{
    char why[ETCD_WHY] = "";
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, val, len);
    free(changed->val);
    changed->val = copy;
    changed->len = len;
    NIXL_INFO("etcd: '%s' published new metadata ('%s'); reloading it", p->name, changed->label);
    e->hooks.invalidate(e->hooks.ctx, p->name);
    nixl_status_t st = NIXL_SUCCESS;
    for (etcd_kv_t *kv = p->loaded; kv && st == NIXL_SUCCESS; kv = kv->next)
        st = load(e, p->name, kv->label, kv->val, kv->len, why);
    if (st != NIXL_SUCCESS)
        NIXL_ERROR("etcd: %s", why);
    e->hooks.fetch_done(e->hooks.ctx, p->name, st, why);
}

/* Handle one watch message of a peer. false when the peer is gone (p freed). */
static bool peer_event(nixl_etcd_t *e, etcd_peer_t **pp, json_object *msg)
{
    etcd_peer_t *p = *pp;
    json_object *r = result_of(msg), *evs, *v;
    char *prefix = etcd_key(e, p->name, "");
    bool alive = true;
    if (etcd_json_i64(r, "compact_revision", 0) > 0 ||
        (json_object_object_get_ex(r, "canceled", &v) && json_object_get_boolean(v)))
        p->s.done = true;
    /* A store younger than what we saw lost its data (a new cluster): replay it from the
     * start, so that what the peer wrote again is seen. */
    json_object *hdr;
    int64_t store_rev = json_object_object_get_ex(r, "header", &hdr)
                            ? etcd_json_i64(hdr, "revision", 0)
                            : 0;
    if (json_object_object_get_ex(r, "created", &v) && json_object_get_boolean(v) &&
        store_rev > 0 && store_rev + 1 < p->next_rev) {
        NIXL_WARN("etcd: the store is at revision %lld, older than the %lld already seen: it "
                  "lost its data; watching '%s' from the start", (long long)store_rev,
                  (long long)p->next_rev - 1, p->name);
        p->next_rev = 1;
        p->s.done = true;
    }
    size_t n = json_object_object_get_ex(r, "events", &evs) ? json_object_array_length(evs) : 0;
    for (size_t i = 0; prefix && i < n && alive; i++) {
        json_object *ev = json_object_array_get_idx(evs, i), *kv, *type;
        if (!json_object_object_get_ex(ev, "kv", &kv))
            continue;
        int64_t rev = etcd_json_i64(kv, "mod_revision", 0);
        if (rev >= p->next_rev)
            p->next_rev = rev + 1;
        bool del = json_object_object_get_ex(ev, "type", &type) &&
                   !strcmp(json_object_get_string(type), "DELETE");
        size_t klen, vlen;
        uint8_t *key = etcd_json_bytes(kv, "key", &klen);
        uint8_t *val = del ? NULL : etcd_json_bytes(kv, "value", &vlen);
        const char *label = key && !strncmp((char *)key, prefix, strlen(prefix))
                                ? (char *)key + strlen(prefix)
                                : NULL;
        if (del && label && !*label) {
            NIXL_INFO("etcd: '%s' left (its anchor key was deleted); invalidating it", p->name);
            e->hooks.invalidate(e->hooks.ctx, p->name);
            *pp = p->next;
            peer_free(e, p);
            alive = false;
        } else if (val && vlen && label) {
            etcd_kv_t *l = p->loaded;
            while (l && strcmp(l->label, label))
                l = l->next;
            if (l && (l->len != vlen || memcmp(l->val, val, vlen)))
                peer_reload(e, p, l, val, vlen);
        }
        free(key);
        free(val);
    }
    free(prefix);
    return alive;
}

static void peers_tick(nixl_etcd_t *e, uint64_t now, int *timeout_ms)
{
    for (etcd_peer_t **pp = &e->peers; *pp;) {
        etcd_peer_t *p = *pp;
        if (!p->s.running) {
            char *prefix = now >= p->retry_ns ? etcd_key(e, p->name, "") : NULL;
            if (prefix && watch_start(e, &p->s, prefix, true, p->next_rev) != NIXL_SUCCESS)
                p->retry_ns = now + WATCH_RETRY_MS * MS;
            free(prefix);
            if (!p->s.running)
                lower(timeout_ms, p->retry_ns, now);
            pp = &p->next;
            continue;
        }
        json_object *msg;
        bool alive = true;
        while (alive && (msg = etcd_stream_next(&p->s))) {
            alive = peer_event(e, pp, msg);
            json_object_put(msg);
        }
        if (!alive)
            continue;
        if (p->s.done) {
            NIXL_DEBUG("etcd: watch of '%s' ended; resuming from revision %lld", p->name,
                       (long long)p->next_rev);
            etcd_stream_stop(&e->http, &p->s);
            p->retry_ns = now + WATCH_RETRY_MS * MS;
            lower(timeout_ms, p->retry_ns, now);
        }
        pp = &p->next;
    }
}

/* ---- fetches ---- */

void etcd_fetch_add(nixl_etcd_t *e, etcd_task_t *t)
{
    etcd_fetch_t *f = calloc(1, sizeof(*f));
    if (!f) {
        e->hooks.fetch_done(e->hooks.ctx, t->arg, NIXL_ERR_OOM, NIXL_OOM_REASON);
        free(t->arg);
        free(t->label);
        return;
    }
    f->name = t->arg;
    f->label = t->label;
    f->deadline_ns = nixl_now_ns() + e->watch_timeout_ns;
    f->next = e->fetches;
    e->fetches = f;
}

/* The fetch found its value (PUT or GET): load it and follow the peer. */
static void fetch_found(nixl_etcd_t *e, etcd_fetch_t *f, const uint8_t *val, size_t len,
                        int64_t next_rev)
{
    char why[ETCD_WHY] = "";
    nixl_status_t st = load(e, f->name, f->label, val, len, why);
    if (st == NIXL_SUCCESS)
        peer_track(e, f->name, f->label, val, len, next_rev);
    else
        NIXL_ERROR("etcd: %s", why);
    e->hooks.fetch_done(e->hooks.ctx, f->name, st, why);
}

/* Handle one watch message of a waiting fetch. true when the fetch ended. */
static bool fetch_event(nixl_etcd_t *e, etcd_fetch_t *f, json_object *msg)
{
    json_object *r = result_of(msg), *evs, *v;
    if (etcd_json_i64(r, "compact_revision", 0) > 0 ||
        (json_object_object_get_ex(r, "canceled", &v) && json_object_get_boolean(v)))
        f->s.done = true;
    size_t n = json_object_object_get_ex(r, "events", &evs) ? json_object_array_length(evs) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *ev = json_object_array_get_idx(evs, i), *kv, *type;
        if (!json_object_object_get_ex(ev, "kv", &kv))
            continue;
        if (json_object_object_get_ex(ev, "type", &type) &&
            !strcmp(json_object_get_string(type), "DELETE")) {
            char why[ETCD_WHY];
            snprintf(why, sizeof(why), "the etcd key of '%s' was deleted while waiting for it",
                     f->name);
            e->hooks.fetch_done(e->hooks.ctx, f->name, NIXL_ERR_INVALID_PARAM, why);
            return true;
        }
        size_t len;
        uint8_t *val = etcd_json_bytes(kv, "value", &len);
        if (val && len) {
            fetch_found(e, f, val, len, etcd_json_i64(kv, "mod_revision", 0) + 1);
            free(val);
            return true;
        }
        free(val);
    }
    return false;
}

/* One step of a fetch. true when it ended. */
static bool fetch_step(nixl_etcd_t *e, etcd_fetch_t *f, uint64_t now, int *timeout_ms)
{
    char why[ETCD_WHY];
    char *key = etcd_key(e, f->name, f->label);
    bool ended = false;
    if (!key)
        return false;
    if (now >= f->deadline_ns) {
        snprintf(why, sizeof(why), "'%s' did not appear in etcd (key %s) within the watch "
                 "timeout of %llu ms%s%.160s", f->name, key,
                 (unsigned long long)(e->watch_timeout_ns / MS),
                 f->err[0] ? "; etcd unreachable: " : "", f->err);
        NIXL_ERROR("etcd: %s", why);
        e->hooks.fetch_done(e->hooks.ctx, f->name, NIXL_ERR_BACKEND, why);
        ended = true;
    } else if (!f->s.running && now >= f->retry_ns) {
        uint8_t *val;
        size_t len;
        int64_t rev = 0;
        nixl_status_t st = range_get(e, key, &val, &len, &rev, why);
        snprintf(f->err, sizeof(f->err), "%s", st == NIXL_SUCCESS ? "" : why);
        if (st == NIXL_SUCCESS && val && len) {
            fetch_found(e, f, val, len, rev + 1);
            ended = true;
        } else if (st != NIXL_SUCCESS ||
                   watch_start(e, &f->s, key, false, rev + 1) != NIXL_SUCCESS) {
            NIXL_DEBUG("etcd: fetch of '%s' retries: %s", f->name, st ? why : "watch failed");
            f->retry_ns = now + FETCH_RETRY_MS * MS;
        }
        free(val);
    } else if (f->s.running) {
        json_object *msg;
        while (!ended && (msg = etcd_stream_next(&f->s))) {
            ended = fetch_event(e, f, msg);
            json_object_put(msg);
        }
        if (!ended && f->s.done) {
            etcd_stream_stop(&e->http, &f->s); /* GET again, then a new watch */
            f->retry_ns = now + FETCH_RETRY_MS * MS;
        }
    }
    free(key);
    if (!ended) {
        lower(timeout_ms, f->deadline_ns, now);
        if (!f->s.running)
            lower(timeout_ms, f->retry_ns, now);
    }
    return ended;
}

static void fetch_free(nixl_etcd_t *e, etcd_fetch_t *f)
{
    etcd_stream_stop(&e->http, &f->s);
    free(f->name);
    free(f->label);
    free(f);
}

void etcd_watch_tick(nixl_etcd_t *e, int *timeout_ms)
{
    uint64_t now = nixl_now_ns();
    for (etcd_fetch_t **fp = &e->fetches; *fp;) {
        etcd_fetch_t *f = *fp;
        if (fetch_step(e, f, now, timeout_ms)) {
            *fp = f->next;
            fetch_free(e, f);
        } else {
            fp = &f->next;
        }
    }
    peers_tick(e, now, timeout_ms);
}

void etcd_watch_free_all(nixl_etcd_t *e)
{
    while (e->fetches) {
        etcd_fetch_t *f = e->fetches;
        e->fetches = f->next;
        fetch_free(e, f);
    }
    while (e->peers) {
        etcd_peer_t *p = e->peers;
        e->peers = p->next;
        peer_free(e, p);
    }
}
