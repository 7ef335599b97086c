/*
 * md_exchange.c - sending, fetching and invalidating metadata through the side channel or,
 * for calls without opt->ip_addr, through etcd when NIXL_ETCD_ENDPOINTS is set
 * (reference NIXL-SEMANTICS 5.9, 5.10, 5.11), and the record of each fetch's outcome so that an
 * asynchronous failure is visible through the API (nixl_agent_get_fetch_status,
 * nixl_agent_check_remote_md), not only in the log.
 *
 * The side channel is created with the agent when it listens, otherwise at the first send or
 * fetch: a fetching agent needs no listener, because the reply comes back on the connection
 * the request went out on.
 */
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"
#include "auth.h"
#include "codec.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "etcd.h"
#include "sidechannel.h"

/* The outcome of the last fetch of one peer name. */
struct nixl_fetch_rec {
    struct nixl_fetch_rec *next;
    nixl_status_t status; /* IN_PROG while pending */
    char *reason;
    char name[];
};

static nixl_fetch_rec_t *fetch_find(nixl_agent_t *a, const char *name)
{
    for (nixl_fetch_rec_t *r = a->fetches; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

/* Record a fetch's state (under sc_lock). */
static void fetch_set(nixl_agent_t *a, const char *name, nixl_status_t st, const char *reason)
{
    nixl_fetch_rec_t *r = fetch_find(a, name);
    if (!r) {
        size_t n = strlen(name);
        r = calloc(1, sizeof(*r) + n + 1);
        if (!r) {
            NIXL_ERROR("out of memory recording the fetch of '%s'", name);
            return;
        }
        memcpy(r->name, name, n + 1);
        r->next = a->fetches;
        a->fetches = r;
    }
    free(r->reason);
    r->reason = reason && *reason ? strdup(reason) : NULL;
    r->status = st;
}

/* The newest proof timestamp loaded from one etcd key (with a secret): an older authentic
 * blob put back under the key later is a rollback. The map a->etcd_seen holds them by key
 * (the key's bytes live in the entry). It is bounded: a long-lived reader in a fleet whose
 * agents come and go under new names would otherwise keep one entry per name ever seen. */
typedef struct etcd_seen {
    uint64_t ts_ms;
    size_t key_len;
    char key[];
} etcd_seen_t;

/* At most this many keys are remembered; past it the one with the oldest stamp is forgotten
 * (a rollback of that key to a blob older than the forgotten stamp is then not detected). */
#define ETCD_SEEN_MAX 16384

/* Refuse a blob of `key` stamped before the newest one loaded from it (under sc_lock). A blob
 * with the same stamp is the same blob, loaded again (a reload after another label changed). */
static nixl_status_t etcd_seen_check(nixl_agent_t *a, const char *key, uint64_t ts_ms)
{
    const etcd_seen_t *s = nixl_hmap_get(&a->etcd_seen, key, strlen(key));
    if (s && ts_ms < s->ts_ms)
        return nixl_err(NIXL_ERR_NOT_ALLOWED, "the metadata at %s is authentic but older "
                        "(sealed %llu ms before) than what this agent loaded from it: a "
                        "rollback", key, (unsigned long long)(s->ts_ms - ts_ms));
    return NIXL_SUCCESS;
}

/* With the map full: forget the key with the oldest stamp (a scan, only when full). */
static void etcd_seen_evict(nixl_agent_t *a)
{
    etcd_seen_t *oldest = NULL, *s;
    size_t it = 0;
    while (nixl_hmap_next(&a->etcd_seen, &it, NULL, NULL, (void **)&s))
        if (!oldest || s->ts_ms < oldest->ts_ms)
            oldest = s;
    if (!oldest)
        return;
    NIXL_LOG_LIMITED(NIXL_LOG_WARN, "agent '%s': remembering the stamps of %d etcd keys at "
                     "most: %s forgotten (a rollback of it is no longer detected)", a->name,
                     ETCD_SEEN_MAX, oldest->key);
    nixl_hmap_remove(&a->etcd_seen, oldest->key, oldest->key_len);
    free(oldest);
}

/* Remember that `key` was loaded with a blob stamped ts_ms (under sc_lock). */
static void etcd_seen_note(nixl_agent_t *a, const char *key, uint64_t ts_ms)
{
    size_t n = strlen(key);
    etcd_seen_t *s = nixl_hmap_get(&a->etcd_seen, key, n);
    if (!s) {
        if (nixl_hmap_count(&a->etcd_seen) >= ETCD_SEEN_MAX)
            etcd_seen_evict(a);
        s = calloc(1, sizeof(*s) + n + 1);
        if (s) {
            memcpy(s->key, key, n + 1); /* before the put: the map hashes these bytes */
            s->key_len = n;
        }
        if (!s || !nixl_hmap_put(&a->etcd_seen, s->key, n, s)) {
            free(s);
            NIXL_ERROR("out of memory: a rollback of %s will not be detected", key);
            return;
        }
    }
    if (ts_ms > s->ts_ms)
        s->ts_ms = ts_ms;
}

/* ---- hooks run on the side channel's thread ---- */

static nixl_status_t hook_get_md(void *ctx, uint8_t **blob, size_t *len)
{
    void *b;
    nixl_status_t st = nixl_agent_get_local_md(ctx, &b, len);
    if (st == NIXL_SUCCESS)
        *blob = b;
    return st;
}

/* A blob fetched from etcd. With a secret it must be an envelope whose proof verifies for the
 * key it was read from and whose sender is the agent the metadata names, stamped no earlier
 * than what was loaded from that key before; whoever can write to etcd without the secret
 * then cannot plant metadata, move a blob to another key or put an old one back. Without a
 * secret, an envelope is refused with the reason rather than as an unreadable blob. */
static nixl_status_t hook_load_md(void *ctx, const char *key, const uint8_t *blob, size_t len,
                                  char **name)
{
    nixl_agent_t *a = ctx;
    if (!a->auth) {
        if (nixl_auth_is_envelope(blob, len))
            return nixl_err(NIXL_ERR_NOT_ALLOWED, "the metadata in etcd is authenticated and "
                            "this agent has no secret: set the same NIXL_AUTH_SECRET");
        return nixl_agent_load_remote_md(ctx, blob, len, name);
    }
    nixl_auth_msg_t m;
    nixl_status_t st = nixl_auth_open(a->auth, NIXL_AUTH_ETCD, key, blob, len, false, &m);
    if (st == NIXL_SUCCESS && strcmp(m.verb, "LOAD") != 0)
        st = nixl_err(NIXL_ERR_NOT_ALLOWED, "the proof is for \"%s\", not metadata", m.verb);
    /* the name is checked before loading: a blob signed for another name must not replace
     * (even for a moment) a peer loaded under the name it claims */
    nixl_md_view_t v;
    if (st == NIXL_SUCCESS && (st = nixl_md_decode(m.payload, m.len, &v)) == NIXL_SUCCESS) {
        bool same = v.name_len == strlen(m.sender) && memcmp(v.name, m.sender, v.name_len) == 0;
        if (!same)
            st = nixl_err(NIXL_ERR_NOT_ALLOWED, "the metadata of '%.*s' in etcd was signed by "
                          "'%s'", (int)(v.name_len > 64 ? 64 : v.name_len), v.name, m.sender);
        nixl_md_view_free(&v);
    }
    /* the check and the note bracket the load under sc_lock (the etcd worker is the only
     * loader of etcd blobs, so no other blob of the key can come between them) */
    if (st == NIXL_SUCCESS) {
        pthread_mutex_lock(&a->sc_lock);
        st = etcd_seen_check(a, key, m.ts_ms);
        pthread_mutex_unlock(&a->sc_lock);
    }
    char *loaded = NULL;
    if (st == NIXL_SUCCESS)
        st = nixl_agent_load_remote_md(ctx, m.payload, m.len, &loaded);
    if (st == NIXL_SUCCESS) {
        pthread_mutex_lock(&a->sc_lock);
        etcd_seen_note(a, key, m.ts_ms);
        pthread_mutex_unlock(&a->sc_lock);
    }
    if (st != NIXL_SUCCESS) {
        nixl_auth_count_refused(a->auth);
        NIXL_LOG_LIMITED(NIXL_LOG_WARN, "agent '%s': metadata from etcd refused: %s", a->name,
                         nixl_err_text());
        return st;
    }
    *name = loaded;
    return NIXL_SUCCESS;
}

/* A LOAD from the side channel: anyone who can reach the listener can send one, so the peers
 * it may add are bounded (NIXL_SIDECHANNEL_MAX_PEERS); a loaded peer may still be reloaded. */
static nixl_status_t hook_sc_load_md(void *ctx, const uint8_t *blob, size_t len, char **name)
{
    nixl_agent_t *a = ctx;
    return agent_load_md_bounded(a, blob, len, a->sc_max_peers, name);
}

static void hook_invalidate(void *ctx, const char *name)
{
    nixl_status_t st = nixl_agent_invalidate_remote_md(ctx, name);
    if (st != NIXL_SUCCESS)
        NIXL_DEBUG("side channel: invalidation of '%s' ignored: %s", name, nixl_last_error());
}

static void hook_fetch_done(void *ctx, const char *name, nixl_status_t st, const char *reason)
{
    nixl_agent_t *a = ctx;
    pthread_mutex_lock(&a->sc_lock);
    fetch_set(a, name, st, reason);
    pthread_mutex_unlock(&a->sc_lock);
}

static nixl_status_t sc_start(nixl_agent_t *a, bool listen)
{
    nixl_sc_config_t cfg = {.listen = listen, .port = a->cfg.listen_port,
                            .bind_addr = a->cfg.listen_addr, .agent_name = a->name,
                            .auth = a->auth};
    char *bind_owned = NULL;
    nixl_status_t st = nixl_sc_config_load(&cfg, &bind_owned);
    if (st == NIXL_SUCCESS) {
        a->sc_max_peers = cfg.max_peers;
        nixl_sc_hooks_t hooks = {.ctx = a, .get_md = hook_get_md, .load_md = hook_sc_load_md,
                                 .invalidate = hook_invalidate, .fetch_done = hook_fetch_done};
        st = nixl_sc_create(&cfg, &hooks, &a->sc);
    }
    free(bind_owned);
    return st;
}

nixl_status_t md_exchange_init(nixl_agent_t *a)
{
    pthread_mutex_init(&a->sc_lock, NULL);
    nixl_status_t st = nixl_auth_from_config(a->cfg.auth_secret, a->cfg.auth_secret_file,
                                             &a->auth);
    if (st != NIXL_SUCCESS) {
        nixl_err_prefix("agent '%s'", a->name);
        pthread_mutex_destroy(&a->sc_lock);
        return st;
    }
    if (a->auth)
        NIXL_INFO("agent '%s': metadata is authenticated (shared secret)", a->name);
    char *eps = NULL;
    st = nixl_config_string("NIXL_ETCD_ENDPOINTS", &eps);
    bool etcd = st == NIXL_SUCCESS && eps && *eps; /* empty: not configured (the reference) */
    free(eps);
    if (st != NIXL_SUCCESS) /* a file key that is not a string */
        nixl_err_prefix("agent '%s'", a->name);
    else if (etcd) {
        nixl_etcd_hooks_t hooks = {.ctx = a, .load_md = hook_load_md,
                                   .invalidate = hook_invalidate, .fetch_done = hook_fetch_done};
        st = nixl_etcd_create(a->name, a->cfg.etcd_watch_timeout_us, &hooks, &a->etcd);
        if (st != NIXL_SUCCESS)
            nixl_err_prefix("agent '%s'", a->name);
    }
    if (st == NIXL_SUCCESS && a->cfg.use_listen_thread)
        st = sc_start(a, true);
    if (st != NIXL_SUCCESS) {
        nixl_etcd_destroy(a->etcd);
        a->etcd = NULL;
        nixl_auth_destroy(a->auth);
        a->auth = NULL;
        pthread_mutex_destroy(&a->sc_lock);
    }
    return st;
}

void md_exchange_fini(nixl_agent_t *a)
{
    /* Outside sc_lock: the workers' last fetch_done calls take it. */
    nixl_etcd_destroy(a->etcd);
    a->etcd = NULL;
    nixl_sc_destroy(a->sc);
    a->sc = NULL;
    nixl_auth_destroy(a->auth); /* after the workers that used it */
    a->auth = NULL;
    etcd_seen_t *seen;
    for (size_t it = 0; nixl_hmap_next(&a->etcd_seen, &it, NULL, NULL, (void **)&seen);)
        free(seen);
    nixl_hmap_free(&a->etcd_seen);
    while (a->fetches) {
        nixl_fetch_rec_t *r = a->fetches;
        a->fetches = r->next;
        free(r->reason);
        free(r);
    }
    pthread_mutex_destroy(&a->sc_lock);
}

nixl_status_t md_fetch_failure(nixl_agent_t *a, const char *name)
{
    nixl_status_t st = NIXL_SUCCESS;
    pthread_mutex_lock(&a->sc_lock);
    nixl_fetch_rec_t *r = fetch_find(a, name);
    if (r && r->status != NIXL_SUCCESS && r->status != NIXL_IN_PROG)
        st = nixl_err(r->status, "fetching the metadata of '%s' failed: %s", name,
                      r->reason ? r->reason : nixl_status_str(r->status));
    pthread_mutex_unlock(&a->sc_lock);
    return st;
}

/* Whether the call goes to etcd: no peer address given and a client configured. */
static bool via_etcd(const nixl_agent_t *a, const nixl_opt_args_t *opt)
{
    return a && a->etcd && (!OPT_HAS(opt, ip_addr) || !opt->ip_addr || !*opt->ip_addr);
}

/* The label of a partial publication or of a fetch; NULL when not given. */
static const char *opt_label(const nixl_opt_args_t *opt)
{
    return OPT_HAS(opt, metadata_label) && opt->metadata_label && *opt->metadata_label
               ? opt->metadata_label
               : NULL;
}

/* Queue a publication under `label`; takes the blob. */
static nixl_status_t etcd_send(nixl_agent_t *a, const char *what, const char *label, void *blob,
                               size_t len)
{
    nixl_status_t st;
    if (a->auth) {
        /* bound to the key it goes under, so that it cannot be copied to another */
        size_t env_len;
        char *key = nixl_etcd_key(a->etcd, a->name, label);
        uint8_t *env = key ? nixl_auth_seal(a->auth, NIXL_AUTH_ETCD, "LOAD", a->name, key,
                                            blob, len, &env_len)
                           : NULL;
        st = env ? nixl_etcd_publish(a->etcd, label, env, env_len)
                 : nixl_err(NIXL_ERR_BACKEND, "sealing the metadata failed");
        free(env);
        free(key);
    } else {
        st = nixl_etcd_publish(a->etcd, label, blob, len);
    }
    nixl_free(blob);
    if (st != NIXL_SUCCESS)
        nixl_err_prefix("%s", what);
    return st;
}

/* The side channel for an outgoing call when opt names a peer; INVALID_PARAM otherwise. */
static nixl_status_t route(nixl_agent_t *a, const nixl_opt_args_t *opt, const char *what,
                           nixl_sc_t **sc, int *port)
{
    if (!a)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: agent is NULL", what);
    if (!OPT_HAS(opt, ip_addr) || !opt->ip_addr || !*opt->ip_addr)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "%s: no peer address (opt->ip_addr) given and no metadata server "
                        "is configured", what);
    *port = OPT_HAS(opt, port) ? opt->port : NIXL_DEFAULT_COMM_PORT;
    nixl_status_t st = NIXL_SUCCESS;
    pthread_mutex_lock(&a->sc_lock);
    if (!a->sc)
        st = sc_start(a, false);
    *sc = a->sc;
    pthread_mutex_unlock(&a->sc_lock);
    if (st != NIXL_SUCCESS)
        nixl_err_prefix("%s", what);
    return st;
}

static nixl_status_t send_blob(nixl_agent_t *a, const nixl_opt_args_t *opt, const char *what,
                               void *blob, size_t len)
{
    nixl_sc_t *sc;
    int port;
    nixl_status_t st = route(a, opt, what, &sc, &port);
    if (st == NIXL_SUCCESS)
        st = nixl_sc_send(sc, opt->ip_addr, port, "LOAD", blob, len);
    nixl_free(blob);
    if (st != NIXL_SUCCESS)
        nixl_err_prefix("%s", what);
    return st;
}

nixl_status_t nixl_agent_send_local_md(nixl_agent_t *agent, const nixl_opt_args_t *opt)
{
    if (!agent)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "send_local_md: agent is NULL");
    void *blob;
    size_t len;
    nixl_status_t st = nixl_agent_get_local_md(agent, &blob, &len);
    if (st != NIXL_SUCCESS)
        return st;
    if (via_etcd(agent, opt)) /* always the default label: the reference ignores opt's */
        return etcd_send(agent, "send_local_md", NIXL_DEFAULT_METADATA_LABEL, blob, len);
    return send_blob(agent, opt, "send_local_md", blob, len);
}

nixl_status_t nixl_agent_send_local_partial_md(nixl_agent_t *agent, nixl_mem_t type,
                                               const nixl_reg_desc_t *descs, size_t count,
                                               const nixl_opt_args_t *opt)
{
    if (!agent)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "send_local_partial_md: agent is NULL");
    if (via_etcd(agent, opt) && !opt_label(opt))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "send_local_partial_md: publishing partial "
                        "metadata to etcd needs opt->metadata_label");
    void *blob;
    size_t len;
    nixl_status_t st = nixl_agent_get_local_partial_md(agent, type, descs, count, opt, &blob,
                                                       &len);
    if (st != NIXL_SUCCESS)
        return st;
    if (via_etcd(agent, opt))
        return etcd_send(agent, "send_local_partial_md", opt_label(opt), blob, len);
    return send_blob(agent, opt, "send_local_partial_md", blob, len);
}

nixl_status_t nixl_agent_fetch_remote_md(nixl_agent_t *agent, const char *name,
                                         const nixl_opt_args_t *opt)
{
    if (!agent_name_valid(name))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "fetch_remote_md: bad agent name");
    if (agent && !strcmp(name, agent->name))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "fetch_remote_md: '%s' is this agent", name);
    nixl_sc_t *sc = NULL;
    int port = 0;
    bool etcd = via_etcd(agent, opt);
    nixl_status_t st = etcd ? NIXL_SUCCESS : route(agent, opt, "fetch_remote_md", &sc, &port);
    if (st != NIXL_SUCCESS)
        return st;
    /* Recorded before queueing, so that the outcome cannot arrive first. */
    pthread_mutex_lock(&agent->sc_lock);
    fetch_set(agent, name, NIXL_IN_PROG, NULL);
    pthread_mutex_unlock(&agent->sc_lock);
    if (etcd) {
        const char *label = opt_label(opt);
        st = nixl_etcd_fetch(agent->etcd, name, label ? label : NIXL_DEFAULT_METADATA_LABEL);
    } else {
        st = nixl_sc_fetch(sc, opt->ip_addr, port, name);
    }
    if (st != NIXL_SUCCESS) {
        const char *why = nixl_last_error();
        pthread_mutex_lock(&agent->sc_lock);
        fetch_set(agent, name, st, why);
        pthread_mutex_unlock(&agent->sc_lock);
        nixl_err_prefix("fetch_remote_md");
    }
    return st;
}

nixl_status_t nixl_agent_invalidate_local_md(nixl_agent_t *agent, const nixl_opt_args_t *opt)
{
    if (via_etcd(agent, opt)) {
        nixl_status_t est = nixl_etcd_invalidate_local(agent->etcd);
        if (est != NIXL_SUCCESS)
            nixl_err_prefix("invalidate_local_md");
        return est;
    }
    nixl_sc_t *sc = NULL;
    int port = 0;
    nixl_status_t st = route(agent, opt, "invalidate_local_md", &sc, &port);
    if (st == NIXL_SUCCESS)
        st = nixl_sc_send(sc, opt->ip_addr, port, "INVL", agent->name, strlen(agent->name));
    if (st != NIXL_SUCCESS)
        nixl_err_prefix("invalidate_local_md");
    return st;
}

nixl_status_t nixl_agent_get_fetch_status(nixl_agent_t *agent, const char *name)
{
    if (!agent || !name)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "get_fetch_status: agent and name are required");
    pthread_mutex_lock(&agent->sc_lock);
    nixl_fetch_rec_t *r = fetch_find(agent, name);
    nixl_status_t st = r ? r->status : NIXL_ERR_NOT_FOUND;
    if (!r)
        nixl_err_set("get_fetch_status: no fetch of '%s' was requested", name);
    else if (st != NIXL_SUCCESS && st != NIXL_IN_PROG)
        nixl_err_set("fetching the metadata of '%s' failed: %s", name,
                     r->reason ? r->reason : nixl_status_str(st));
    pthread_mutex_unlock(&agent->sc_lock);
    return st;
}

nixl_status_t nixl_agent_get_listen_port(nixl_agent_t *agent, int *port)
{
    if (!agent || !port)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "get_listen_port: agent and port are required");
    pthread_mutex_lock(&agent->sc_lock);
    int p = agent->sc ? nixl_sc_port(agent->sc) : -1;
    pthread_mutex_unlock(&agent->sc_lock);
    if (p < 0)
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "get_listen_port: the agent was created without use_listen_thread");
    *port = p;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_agent_get_auth_refused(const nixl_agent_t *agent, uint64_t *count)
{
    if (!agent || !count)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "get_auth_refused: agent or count is NULL");
    *count = agent->auth ? nixl_auth_refused(agent->auth) : 0;
    return NIXL_SUCCESS;
}
