/* agent.c - agent lifecycle, engines (backends) and the peer table. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent_impl.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "plugin.h"

/* Process-wide, so that a peer reloaded under the same name never reuses a generation. */
static atomic_uint_fast64_t next_generation = 1;

void nixl_agent_config_init(nixl_agent_config_t *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->struct_size = sizeof(*cfg);
    cfg->listen_port = NIXL_DEFAULT_COMM_PORT;
    cfg->sync_mode = NIXL_THREAD_SYNC_DEFAULT;
    cfg->lthr_delay_us = 100000;
    cfg->etcd_watch_timeout_us = 5000000;
}

void nixl_opt_args_init(nixl_opt_args_t *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof(*opt));
    opt->struct_size = sizeof(*opt);
    opt->port = NIXL_DEFAULT_COMM_PORT;
}

bool agent_name_valid(const char *name)
{
    if (!name || !*name)
        return false;
    return strnlen(name, NIXL_MAX_NAME + 1) <= NIXL_MAX_NAME;
}

/* ------------------------------------------------------------------------------------------ */
/* Peers                                                                                       */
/* ------------------------------------------------------------------------------------------ */

nixl_peer_t *peer_find(nixl_agent_t *a, const char *name)
{
    return nixl_hmap_get(&a->peers, name, strlen(name));
}

nixl_peer_t *peer_target(nixl_agent_t *a, const char *name)
{
    return strcmp(name, a->name) == 0 ? a->self : peer_find(a, name);
}

nixl_peer_t *peer_alloc(const char *name)
{
    nixl_peer_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->name = strdup(name);
    if (!p->name) {
        free(p);
        return NULL;
    }
    atomic_init(&p->refs, 1);
    atomic_init(&p->valid, true);
    p->generation = atomic_fetch_add(&next_generation, 1);
    return p;
}

bool peer_insert(nixl_agent_t *a, nixl_peer_t *p)
{
    return nixl_hmap_put(&a->peers, p->name, strlen(p->name), p);
}

void peer_ref(nixl_peer_t *p)
{
    atomic_fetch_add(&p->refs, 1);
}

void peer_unref(nixl_peer_t *p)
{
    if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    for (unsigned e = 0; e < NIXL_MAX_ENGINES; e++) {
        free(p->conn_info[e]);
        for (unsigned t = 0; t < NIXL_MEM_COUNT; t++)
            nixl_section_free(&p->sections[e][t]);
    }
    while (p->arenas) {
        nixl_arena_t *n = p->arenas->next;
        free(p->arenas);
        p->arenas = n;
    }
    free(p->name);
    free(p);
}

/* Give the engines back what they loaded for this peer. */
void peer_unload(nixl_agent_t *a, nixl_peer_t *p)
{
    for (unsigned e = 0; e < a->num_engines; e++) {
        nixl_backend_t *b = a->engines[e];
        bool stuck = a->stuck & (1u << e);
        for (unsigned t = 0; t < NIXL_MEM_COUNT; t++) {
            nixl_section_t *s = &p->sections[e][t];
            if (!s->count || stuck) {
                nixl_section_free(s);
                continue;
            }
            nixl_be_mds_t mds = regions_mds(s->regions, s->count);
            b->ops->unload_md(b->eng, &mds);
            nixl_section_free(s);
        }
        if (p->conn[e] == PEER_CONN_LOADED && !stuck)
            b->ops->disconnect(b->eng, p->name);
        p->conn[e] = PEER_CONN_NONE;
    }
}

void peer_remove(nixl_agent_t *a, nixl_peer_t *p)
{
    if (peer_find(a, p->name) == p)
        nixl_hmap_remove(&a->peers, p->name, strlen(p->name));
    atomic_store(&p->valid, false);
    /* No data-path call finds it now (it is in no table, and requests made against it check
     * `valid` first), so the engines may take their time to let it go. */
    agent_tables_release(a);
    peer_unload(a, p);
    agent_tables_take(a);
    peer_unref(p);
}

void peer_lost(nixl_agent_t *a, nixl_peer_t *p, uint64_t generation)
{
    if (p->is_self)
        return;
    agent_wrlock(a);
    if (atomic_load(&p->valid) && p->generation == generation && peer_find(a, p->name) == p) {
        NIXL_INFO("agent '%s': peer '%s' disconnected; its metadata is invalidated", a->name,
                  p->name);
        peer_remove(a, p);
    }
    agent_wrunlock(a);
}

/* ------------------------------------------------------------------------------------------ */
/* Engines                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/*
 * The preference order when several engines can serve a transfer (docs/backends.md): same-host
 * paths before networks, networks before storage; engines not listed come after, in creation
 * order.
 */
static const char *const preference[] = {
    "SHM", "UCX", "LIBFABRIC", "UCCL", "MOONCAKE", "GPUNETIO", "GDS_MT", "GDS",
    "POSIX", "HF3FS", "GUSLI", "OBJ", "AZURE_BLOB", "INFINIA",
};
#define NUM_PREFERENCE (sizeof(preference) / sizeof(preference[0]))

static unsigned preference_rank(const char *name, unsigned index)
{
    for (unsigned i = 0; i < NUM_PREFERENCE; i++)
        if (!strcmp(preference[i], name))
            return i;
    return (unsigned)NUM_PREFERENCE + index;
}

nixl_backend_t *engine_by_name(nixl_agent_t *a, const char *name, size_t len)
{
    for (unsigned e = 0; e < a->num_engines; e++) {
        const char *n = a->engines[e]->name;
        if (strlen(n) == len && !memcmp(n, name, len))
            return a->engines[e];
    }
    return NULL;
}

nixl_status_t engines_from_opt(nixl_agent_t *a, const nixl_opt_args_t *opt, uint32_t *mask,
                               bool *hinted)
{
    *hinted = false;
    if (!OPT_HAS(opt, num_backends) || !opt->num_backends) {
        *mask = a->num_engines ? (uint32_t)((1ull << a->num_engines) - 1) : 0;
        return NIXL_SUCCESS;
    }
    if (!opt->backends)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "opt->backends is NULL with num_backends %zu",
                        opt->num_backends);
    uint32_t m = 0;
    for (size_t i = 0; i < opt->num_backends; i++) {
        const nixl_backend_t *b = opt->backends[i];
        if (!b || b->agent != a || b->index >= a->num_engines || a->engines[b->index] != b)
            return nixl_err(NIXL_ERR_INVALID_PARAM,
                            "opt->backends[%zu] is not a backend of agent '%s'", i, a->name);
        m |= 1u << b->index;
    }
    *mask = m;
    *hinted = true;
    return NIXL_SUCCESS;
}

/* Network backends beside which the core creates SHM for same-host peers. */
static bool spawns_auto_shm(const char *plugin)
{
    return !strcmp(plugin, "UCX") || !strcmp(plugin, "LIBFABRIC");
}

uint32_t engines_with_implicit(nixl_agent_t *a, uint32_t mask)
{
    bool network = false;
    for (unsigned e = 0; e < a->num_engines; e++)
        network = network || ((mask & (1u << e)) && spawns_auto_shm(a->engines[e]->name));
    for (unsigned e = 0; network && e < a->num_engines; e++)
        if (a->engines[e]->implicit)
            mask |= 1u << e;
    return mask;
}

size_t engines_ordered(nixl_agent_t *a, const nixl_opt_args_t *opt, uint32_t mask,
                       unsigned *out)
{
    size_t n = 0;
    if (OPT_HAS(opt, num_backends) && opt->num_backends && opt->backends) {
        for (size_t i = 0; i < opt->num_backends; i++) {
            unsigned e = opt->backends[i]->index;
            if (!(mask & (1u << e)))
                continue;
            bool dup = false;
            for (size_t k = 0; k < n; k++)
                dup = dup || out[k] == e;
            if (!dup)
                out[n++] = e;
        }
        return n;
    }
    for (unsigned e = 0; e < a->num_engines; e++)
        if (mask & (1u << e))
            out[n++] = e;
    /* insertion sort by rank: at most NIXL_MAX_ENGINES entries */
    for (size_t i = 1; i < n; i++) {
        unsigned v = out[i];
        size_t j = i;
        while (j > 0 && a->engines[out[j - 1]]->rank > a->engines[v]->rank) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = v;
    }
    return n;
}

/* The user's parameters plus the plugin defaults the user did not set, in one allocation. */
static nixl_param_t *params_merge(const nixl_plugin_info_t *ops, const nixl_param_t *user,
                                  size_t nuser, size_t *count)
{
    size_t n = nuser, bytes = 0;
    for (size_t i = 0; i < nuser; i++)
        bytes += strlen(user[i].key) + strlen(user[i].value) + 2;
    bool *take = calloc(ops->num_default_params + 1, sizeof(bool));
    if (!take)
        return NULL;
    for (size_t d = 0; d < ops->num_default_params; d++) {
        bool set = false;
        for (size_t i = 0; i < nuser && !set; i++)
            set = !strcmp(user[i].key, ops->default_params[d].key);
        if (!set) {
            take[d] = true;
            n++;
            bytes += strlen(ops->default_params[d].key) + strlen(ops->default_params[d].value) + 2;
        }
    }
    nixl_param_t *out = malloc(n * sizeof(*out) + bytes + 1);
    if (!out) {
        free(take);
        return NULL;
    }
    char *p = (char *)(out + n);
    size_t k = 0;
    for (size_t i = 0; i < nuser + ops->num_default_params; i++) {
        const nixl_param_t *src;
        if (i < nuser)
            src = &user[i];
        else if (take[i - nuser])
            src = &ops->default_params[i - nuser];
        else
            continue;
        size_t kl = strlen(src->key) + 1, vl = strlen(src->value) + 1;
        memcpy(p, src->key, kl);
        out[k].key = p;
        p += kl;
        memcpy(p, src->value, vl);
        out[k].value = p;
        p += vl;
        k++;
    }
    free(take);
    *count = n;
    return out;
}

/*
 * Same-host peers at memory speed without asking: inference engines create their agents with
 * UCX only, and UCX between two processes of one host goes through loopback TCP where it has
 * no shared-memory transport for the job. So beside UCX the core creates SHM (unless the agent
 * has it, or NIXL_AUTO_SHM is off). Its metadata section is skipped by peers without SHM (the
 * reference's agents among them), its connection info is refused by peers on another host, and
 * the preference order puts it before UCX where both reach a peer (docs/backends.md).
 */
static void auto_shm(nixl_agent_t *agent)
{
    bool on = true;
    nixl_err_saved_t saved;
    nixl_err_save(&saved);
    if (nixl_config_bool("NIXL_AUTO_SHM", &on) != NIXL_SUCCESS) {
        NIXL_WARN("agent '%s': %s; SHM is not created beside UCX", agent->name, nixl_last_error());
        on = false;
    }
    nixl_backend_t *shm = NULL;
    if (on) {
        agent_rdlock(agent);
        on = !engine_by_name(agent, "SHM", 3) && agent->num_engines < NIXL_MAX_ENGINES;
        agent_unlock(agent);
    }
    if (on && nixl_agent_create_backend(agent, "SHM", NULL, 0, &shm) == NIXL_SUCCESS) {
        agent_wrlock(agent);
        shm->implicit = true;
        agent_wrunlock(agent);
        NIXL_INFO("agent '%s': SHM created beside UCX for peers on this host (NIXL_AUTO_SHM=0 "
                  "turns this off)", agent->name);
    } else if (on) {
        NIXL_INFO("agent '%s': SHM could not be created beside UCX (%s); same-host peers use "
                  "UCX", agent->name, nixl_last_error());
    }
    nixl_err_restore(&saved);
}

nixl_status_t nixl_agent_create_backend(nixl_agent_t *agent, const char *plugin,
                                        const nixl_param_t *params, size_t num_params,
                                        nixl_backend_t **out)
{
    if (!agent || !plugin || !out || (num_params && !params))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "create_backend: agent, plugin and out are "
                                                "required (params may be NULL only when empty)");
    for (size_t i = 0; i < num_params; i++)
        if (!params[i].key || !params[i].value)
            return nixl_err(NIXL_ERR_INVALID_PARAM, "create_backend: params[%zu] has a NULL %s",
                            i, params[i].key ? "value" : "key");

    nixl_err_saved_t saved; /* loading the plugin may try paths that fail first */
    nixl_err_save(&saved);
    agent_wrlock(agent);
    nixl_status_t st;
    nixl_backend_t *b = engine_by_name(agent, plugin, strlen(plugin));
    if (b && b->implicit) {
        /* created beside UCX with its defaults; the user's own create takes it over */
        b->implicit = false;
        if (num_params)
            NIXL_WARN("agent '%s': the %s backend already runs (created beside UCX for same-host "
                      "peers, with its defaults): the %zu parameter(s) given are not applied; set "
                      "NIXL_AUTO_SHM=0, or create %s before UCX, to choose them",
                      agent->name, plugin, num_params, plugin);
        agent_wrunlock(agent);
        nixl_err_restore(&saved);
        *out = b;
        return NIXL_SUCCESS;
    }
    b = NULL;
    if (engine_by_name(agent, plugin, strlen(plugin))) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM, "agent '%s' already has a %s backend", agent->name,
                      plugin);
        goto out_unlock;
    }
    bool gds = !strcmp(plugin, "GDS") || !strcmp(plugin, "GDS_MT");
    if (gds && (engine_by_name(agent, "GDS", 3) || engine_by_name(agent, "GDS_MT", 6))) {
        st = nixl_err(NIXL_ERR_NOT_ALLOWED, "GDS and GDS_MT cannot be used in one agent");
        goto out_unlock;
    }
    if (agent->num_engines == NIXL_MAX_ENGINES) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM, "agent '%s' has the maximum of %d backends",
                      agent->name, NIXL_MAX_ENGINES);
        goto out_unlock;
    }
    /* Loading the plugin and starting the engine can take long (UCX opens its devices): the
     * data path goes on with the other engines meanwhile; this one is published only when it
     * works. */
    agent_tables_release(agent);
    const nixl_plugin_rec_t *rec;
    st = nixl_plugin_get(plugin, &rec);
    if (st != NIXL_SUCCESS)
        goto out_relock;
    const nixl_be_ops_t *ops = &rec->ops;
    const nixl_plugin_info_t *info = &rec->info;

    b = calloc(1, sizeof(*b));
    if (!b) {
        st = nixl_err_oom("create_backend %s", plugin);
        goto out_relock;
    }
    b->agent = agent;
    b->ops = ops;
    b->info = info;
    b->name = info->name;
    b->index = agent->num_engines;
    b->rank = preference_rank(info->name, b->index);
    pthread_mutex_init(&b->notif_lock, NULL);
    b->notif_tail = &b->notif_head;
    backend_host_init(b);
    b->params = params_merge(info, params, num_params, &b->num_params);
    if (!b->params) {
        st = nixl_err_oom("create_backend %s: parameters", plugin);
        goto err_free;
    }

    nixl_be_init_t init = {
        .struct_size = sizeof(init),
        .local_agent = agent->name,
        .type = info->name,
        .params = params,
        .num_params = num_params,
        .enable_prog_thread = agent->cfg.use_prog_thread,
        .pthr_delay_us = agent->cfg.pthr_delay_us,
        .sync_mode = agent->cfg.sync_mode,
        .enable_telemetry = agent->telemetry,
        .host = &b->host,
    };
    nixl_err_arm();
    st = ops->create(&init, &b->eng);
    if (st != NIXL_SUCCESS || !b->eng) {
        nixl_err_prefix("%s backend failed to start", plugin);
        st = st == NIXL_ERR_OOM ? st : NIXL_ERR_BACKEND; /* out of memory stays itself */
        goto err_free;
    }
    if (info->caps & NIXL_BE_CAP_REMOTE) {
        nixl_err_arm();
        st = ops->get_conn_info(b->eng, &b->conn_info, &b->conn_len);
        if (st == NIXL_SUCCESS && (!b->conn_info || !b->conn_len))
            st = nixl_err(NIXL_ERR_BACKEND, "empty connection info");
        if (st != NIXL_SUCCESS) {
            nixl_err_prefix("%s backend", plugin);
            goto err_destroy;
        }
    }
    if (info->caps & NIXL_BE_CAP_LOCAL) {
        nixl_err_arm();
        st = ops->connect(b->eng, agent->name);
        if (st != NIXL_SUCCESS) {
            nixl_err_prefix("%s backend: connecting to itself", plugin);
            goto err_destroy;
        }
    }
    agent_tables_take(agent);
    agent->engines[agent->num_engines++] = b;
    agent_wrunlock(agent);
    nixl_err_restore(&saved);
    NIXL_INFO("agent '%s': created backend %s", agent->name, plugin);
    *out = b;
    if (spawns_auto_shm(plugin))
        auto_shm(agent);
    nixl_err_restore(&saved);
    return NIXL_SUCCESS;

err_destroy:
    ops->destroy(b->eng);
err_free:
    pthread_mutex_destroy(&b->notif_lock);
    free(b->params);
    free(b);
out_relock:
    agent_tables_take(agent);
out_unlock:
    agent_wrunlock(agent);
    return st;
}

const char *nixl_backend_name(const nixl_backend_t *backend)
{
    return backend ? backend->name : NULL;
}

/* Copy a parameter list into one user-freeable allocation. */
static nixl_param_list_t *params_export(const nixl_param_t *src, size_t n)
{
    size_t bytes = sizeof(nixl_param_list_t) + n * sizeof(nixl_param_t);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(src[i].key) + strlen(src[i].value) + 2;
    nixl_param_list_t *l = malloc(bytes);
    if (!l)
        return NULL;
    l->count = n;
    l->items = (nixl_param_t *)(l + 1);
    char *p = (char *)(l->items + n);
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(src[i].key) + 1, vl = strlen(src[i].value) + 1;
        memcpy(p, src[i].key, kl);
        l->items[i].key = p;
        p += kl;
        memcpy(p, src[i].value, vl);
        l->items[i].value = p;
        p += vl;
    }
    return l;
}

nixl_status_t nixl_agent_get_plugin_params(nixl_agent_t *agent, const char *plugin,
                                           nixl_mem_mask_t *out_mems,
                                           nixl_param_list_t **out_params)
{
    if (!agent || !plugin)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "get_plugin_params: agent and plugin are required");
    const nixl_plugin_rec_t *rec;
    nixl_err_saved_t saved; /* loading the plugin may try paths that fail first */
    nixl_err_save(&saved);
    nixl_status_t st = nixl_plugin_get(plugin, &rec);
    if (st != NIXL_SUCCESS)
        return st;
    nixl_err_restore(&saved);
    nixl_param_list_t *l = NULL;
    if (out_params) {
        l = params_export(rec->info.default_params, rec->info.num_default_params);
        if (!l)
            return nixl_err_oom("get_plugin_params %s", plugin);
        *out_params = l;
    }
    if (out_mems)
        *out_mems = rec->info.mems;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_agent_get_backend_params(nixl_agent_t *agent, const nixl_backend_t *backend,
                                            nixl_mem_mask_t *out_mems,
                                            nixl_param_list_t **out_params)
{
    if (!agent || !backend)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "get_backend_params: agent and backend are required");
    if (backend->agent != agent)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "backend %s belongs to another agent",
                        backend->name);
    if (out_params) {
        nixl_param_list_t *l = params_export(backend->params, backend->num_params);
        if (!l)
            return nixl_err_oom("get_backend_params %s", backend->name);
        *out_params = l;
    }
    if (out_mems)
        *out_mems = backend->info->mems;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_agent_get_avail_plugins(nixl_agent_t *agent, char ***out_names,
                                           size_t *out_count)
{
    if (!agent || !out_names || !out_count)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "get_avail_plugins: agent and outputs are required");
    return nixl_plugin_list(out_names, out_count);
}

/* ------------------------------------------------------------------------------------------ */
/* Agent                                                                                       */
/* ------------------------------------------------------------------------------------------ */

nixl_status_t nixl_agent_create(const char *name, const nixl_agent_config_t *cfg,
                                nixl_agent_t **out)
{
    if (!out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "agent_create: out is NULL");
    if (!agent_name_valid(name))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "agent name must be 1 to %d bytes (got %s)",
                        NIXL_MAX_NAME, name ? (*name ? "a longer one" : "an empty one") : "NULL");
    nixl_agent_config_t c;
    nixl_agent_config_init(&c);
    if (cfg) {
        if (cfg->struct_size < offsetof(nixl_agent_config_t, use_prog_thread) ||
            cfg->struct_size > sizeof(c))
            return nixl_err(NIXL_ERR_INVALID_PARAM,
                            "config struct_size %zu is not valid (use nixl_agent_config_init)",
                            cfg->struct_size);
        memcpy(&c, cfg, cfg->struct_size);
        c.struct_size = sizeof(c);
    }
    if (c.sync_mode != NIXL_THREAD_SYNC_NONE && c.sync_mode != NIXL_THREAD_SYNC_STRICT &&
        c.sync_mode != NIXL_THREAD_SYNC_RW)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "unknown sync_mode %d", (int)c.sync_mode);
    if (c.listen_port < 0 || c.listen_port > 65535)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "listen_port %d is not a TCP port", c.listen_port);

    nixl_status_t st = nixl_config_load();
    if (st != NIXL_SUCCESS)
        return st;
    nixl_telem_settings_t tel;
    st = nixl_telem_settings_read(c.capture_telemetry, name, &tel);
    if (st != NIXL_SUCCESS)
        return st;
    bool telemetry = tel.enabled;

    nixl_agent_t *a = calloc(1, sizeof(*a));
    if (!a)
        return nixl_err_oom("agent '%s'", name);
    a->name = strdup(name);
    a->self = peer_alloc(name);
    if (!a->name || !a->self) {
        free(a->name);
        peer_unref(a->self);
        free(a);
        return nixl_err_oom("agent '%s'", name);
    }
    a->self->is_self = true;
    a->cfg = c;
    a->telemetry = telemetry;
    a->strict = c.sync_mode == NIXL_THREAD_SYNC_STRICT;
    pthread_mutex_init(&a->ctl_lock, NULL);
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->handles_lock, NULL);
    nixl_err_saved_t saved; /* the listener may try an address family that fails first */
    char *plugin_dir = telemetry ? nixl_plugin_dir() : NULL;
    st = telemetry && !plugin_dir ? nixl_err_oom("the plugin directory")
                                  : nixl_telem_create(name, &tel, plugin_dir, &a->telem);
    free(plugin_dir);
    if (st != NIXL_SUCCESS)
        goto destroy_locks;
    nixl_err_save(&saved);
    st = md_exchange_init(a);
    a->cfg.listen_addr = NULL; /* borrowed for this call only */
    a->cfg.auth_secret = a->cfg.auth_secret_file = NULL;
    if (st != NIXL_SUCCESS)
        goto stop_telemetry;
    nixl_err_restore(&saved);
    NIXL_INFO("agent '%s' created (sync mode %d, telemetry %s)", name, (int)c.sync_mode,
              telemetry ? "on" : "off");
    *out = a;
    return NIXL_SUCCESS;

stop_telemetry:
    nixl_telem_destroy(a->telem);
destroy_locks:
    pthread_mutex_destroy(&a->handles_lock);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->ctl_lock);
    peer_unref(a->self);
    free(a->name);
    free(a);
    return st;
}

const char *nixl_agent_name(const nixl_agent_t *agent)
{
    return agent ? agent->name : NULL;
}

/* Deregister everything still registered (loopback metadata first), but from no engine that
 * still holds a request: it may be using the memory. */
static void local_unload_all(nixl_agent_t *a)
{
    for (unsigned e = 0; e < a->num_engines; e++) {
        nixl_backend_t *b = a->engines[e];
        bool stuck = a->stuck & (1u << e);
        for (unsigned t = 0; t < NIXL_MEM_COUNT; t++) {
            nixl_section_t *lb = &a->self->sections[e][t];
            nixl_be_mds_t mds = regions_mds(lb->regions, lb->count);
            if (mds.count && !stuck)
                b->ops->unload_md(b->eng, &mds);
            nixl_section_free(lb);
            nixl_section_t *s = &a->local[e][t];
            mds = regions_mds(s->regions, s->count);
            if (mds.count && !stuck)
                b->ops->deregister_mem(b->eng, &mds);
            nixl_section_free(s);
        }
    }
}

void nixl_agent_destroy(nixl_agent_t *agent)
{
    if (!agent)
        return;
    nixl_err_saved_t saved; /* what the engines say while going is not the user's failure */
    nixl_err_save(&saved);
    /* The order is the reverse of creation (nixl.h says what becomes of each handle). First
     * the agent's own threads, without the lock: the side channel's and etcd's workers call
     * into the agent; queued messages get a bounded time to leave. */
    md_exchange_fini(agent);
    agent_wrlock(agent);
    /* Requests, newest first (aborted; one an engine refuses is retried for a while, and if
     * it is still refused its engine is left alone), then prepared lists. */
    agent->stuck = xfer_release_all(agent);
    /* Peers: their regions unloaded, the engines disconnected from them. */
    void *peer;
    for (size_t it = 0; nixl_hmap_next(&agent->peers, &it, NULL, NULL, &peer);)
        peer_remove(agent, peer); /* removal while iterating is allowed */
    nixl_hmap_free(&agent->peers);
    /* Our registrations, then the engines, newest first; each joins its own threads. */
    local_unload_all(agent);
    for (unsigned e = agent->num_engines; e-- > 0;) {
        nixl_backend_t *b = agent->engines[e];
        if (agent->stuck & (1u << e))
            continue; /* left running, with its notification queue (logged by xfer.c) */
        b->ops->destroy(b->eng);
        notif_queue_free(b);
        pthread_mutex_destroy(&b->notif_lock);
        free(b->params);
        free(b);
    }
    agent_wrunlock(agent);
    nixl_telem_destroy(agent->telem); /* flushes what is staged */
    NIXL_INFO("agent '%s' destroyed", agent->name);
    atomic_store(&agent->self->valid, false);
    peer_unref(agent->self);
    pthread_rwlock_destroy(&agent->lock);
    pthread_mutex_destroy(&agent->ctl_lock);
    pthread_mutex_destroy(&agent->handles_lock);
    free(agent->name);
    free(agent);
    nixl_err_restore(&saved);
}
