/*
 * lf_engine.c - the LIBFABRIC plugin (libplugin_LIBFABRIC.so): its table, parameters, engine
 * creation and destruction.
 *
 * Parameters (a parameter wins over its NIXL_LIBFABRIC_* variable, which wins over the
 * default; unknown keys are ignored; bad values are refused with a reason):
 *   provider            libfabric provider ("tcp;ofi_rxm", "tcp", "shm", "efa", ...);
 *                       NIXL_LIBFABRIC_PROVIDER; default: the first of efa, verbs;ofi_rxm,
 *                       tcp;ofi_rxm, tcp that offers RDM endpoints with RMA and messages
 *   device_list         comma-separated domains (NICs), one rail each, up to 8 ("eth0",
 *                       "rdmap0s31-rdm,rdmap16s27-rdm"; a name twice opens it twice);
 *                       NIXL_LIBFABRIC_DEVICES; default: the provider's first domain
 *   num_threads         0..256 (default 0): accepted for the reference, no effect (logged at
 *                       creation when set): each rail has one thread, and a request is spread
 *                       over endpoints by listing a domain several times in device_list
 *   caller_progress     1 (default) or 0: a thread polling check_xfer / get_notifs reads the
 *                       completion queues itself (no rail thread wake-up on the way); 0: only
 *                       the rail threads do; NIXL_LIBFABRIC_CALLER_PROGRESS
 *   split_batch_size    1.. (default 1024): requests of at least this many elements are
 *                       spread over the rails in contiguous runs; smaller ones use rail 0
 *   striping_threshold  bytes (default 131072): an element this long or longer is cut into
 *                       one piece per rail; NIXL_LIBFABRIC_STRIPING_THRESHOLD
 *   max_bw_per_dram_seg Gbps (reference; NIXL_LIBFABRIC_MAX_BW_PER_DRAM_SEG): accepted and
 *                       checked, unused (rails are chosen by device_list)
 *   peer_timeout_ms     an operation outstanding this long fails its peer with
 *                       REMOTE_DISCONNECT (default 30000; 0: never); NIXL_LIBFABRIC_PEER_TIMEOUT_MS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be_param.h"
#include "lf_priv.h"
#include "parse.h"

static const nixl_param_t lf_default_params[] = {
    {"provider", ""},          {"device_list", ""},          {"num_threads", "0"},
    {"split_batch_size", "1024"}, {"striping_threshold", "131072"},
    {"max_bw_per_dram_seg", ""}, {"peer_timeout_ms", "30000"}, {"caller_progress", "1"},
};

/* The parameter, else its environment variable, else NULL. */
static const char *param_env(const nixl_be_init_t *init, const char *key, const char *env)
{
    const char *v = nixl_be_param(init, key);
    if (v && *v)
        return v;
    v = env ? getenv(env) : NULL;
    return v && *v ? v : NULL;
}

static bool num_param(const nixl_be_init_t *init, const char *key, const char *env, uint64_t def,
                      uint64_t min, uint64_t max, uint64_t *out)
{
    const char *v = param_env(init, key, env);
    *out = def;
    if (!v)
        return true;
    if (nixl_parse_u64(v, out) && *out >= min && *out <= max)
        return true;
    (void)NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                      "%s '%s' must be a number from %llu to %llu", env && !nixl_be_param(init, key)
                          ? env : key, v, (unsigned long long)min, (unsigned long long)max);
    return false;
}

static nixl_status_t params_parse(const nixl_be_init_t *init, lf_params_t *p)
{
    memset(p, 0, sizeof(*p));
    const char *prov = param_env(init, "provider", "NIXL_LIBFABRIC_PROVIDER");
    const char *dev = param_env(init, "device_list", "NIXL_LIBFABRIC_DEVICES");
    if (prov && strlen(prov) > LF_PROV_MAX)
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM, "provider '%s' is too long", prov);
    if (dev && strlen(dev) >= sizeof(p->iface))
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM, "device_list is too long");
    snprintf(p->provider, sizeof(p->provider), "%s", prov ? prov : "");
    snprintf(p->iface, sizeof(p->iface), "%s", dev ? dev : "");
    uint64_t threads, caller;
    if (!num_param(init, "num_threads", NULL, 0, 0, 256, &threads) ||
        !num_param(init, "split_batch_size", NULL, 1024, 1, UINT32_MAX, &p->split_batch_size) ||
        !num_param(init, "striping_threshold", "NIXL_LIBFABRIC_STRIPING_THRESHOLD", 131072, 1,
                   UINT64_MAX, &p->striping_threshold) ||
        !num_param(init, "max_bw_per_dram_seg", "NIXL_LIBFABRIC_MAX_BW_PER_DRAM_SEG", 0, 0,
                   1000000, &p->max_bw_per_dram_seg) ||
        !num_param(init, "peer_timeout_ms", "NIXL_LIBFABRIC_PEER_TIMEOUT_MS", 30000, 0,
                   86400000, &p->peer_timeout_ms) ||
        !num_param(init, "caller_progress", "NIXL_LIBFABRIC_CALLER_PROGRESS", 1, 0, 1,
                   &caller))
        return NIXL_ERR_INVALID_PARAM;
    p->num_threads = (unsigned)threads;
    p->caller_progress = caller != 0;
    return NIXL_SUCCESS;
}

static void lf_destroy(nixl_be_engine_t *eng)
{
    if (!eng)
        return;
    /* Threads first (nothing completes any more), then the endpoints and every request. The
     * stage thread first of all: it waits for rounds the rail threads complete. */
    lf_stage_stop(eng);
    for (unsigned r = 0; r < eng->nrails; r++)
        if (eng->rails[r].started) {
            atomic_store(&eng->rails[r].stop, true);
        }
    for (unsigned r = 0; r < eng->nrails; r++)
        if (eng->rails[r].started) {
            uint64_t one = 1;
            ssize_t n = write(eng->rails[r].wake_fd, &one, sizeof(one));
            (void)n;
            pthread_join(eng->rails[r].thread, NULL);
            eng->rails[r].started = false;
        }
    lf_reqs_free_all(eng);
    lf_conns_free_all(eng);
    for (unsigned r = 0; r < eng->nrails; r++)
        lf_rail_close(&eng->rails[r]);
    pthread_mutex_destroy(&eng->conns_lock);
    pthread_mutex_destroy(&eng->all_lock);
    nixl_jobq_fini(&eng->stage);
    free(eng->conn_blob);
    free(eng->name);
    free(eng);
}

static nixl_status_t open_rails(nixl_be_engine_t *eng)
{
    char list[sizeof(eng->params.iface)];
    snprintf(list, sizeof(list), "%s", eng->params.iface);
    char *save = NULL, *tok = strtok_r(list, ", ", &save);
    do {
        if (eng->nrails == LF_RAILS_MAX)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "device_list names more than %u domains", LF_RAILS_MAX);
        lf_rail_t *rail = &eng->rails[eng->nrails];
        rail->idx = eng->nrails++;
        nixl_status_t st = lf_rail_open(eng, rail, tok);
        if (st != NIXL_SUCCESS)
            return st;
    } while (tok && (tok = strtok_r(NULL, ", ", &save)));
    lf_conn_info_t ci = {.nrails = eng->nrails, .addr_format = eng->addr_format};
    snprintf(ci.prov, sizeof(ci.prov), "%s", eng->prov);
    for (unsigned r = 0; r < eng->nrails; r++) {
        ci.addr[r] = eng->rails[r].addr;
        ci.addr_len[r] = eng->rails[r].addr_len;
    }
    eng->conn_len = lf_conn_write(&ci, NULL);
    eng->conn_blob = malloc(eng->conn_len);
    if (!eng->conn_blob)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    lf_conn_write(&ci, eng->conn_blob);
    for (unsigned r = 0; r < eng->nrails; r++) {
        nixl_status_t st = lf_rail_start(&eng->rails[r]);
        if (st != NIXL_SUCCESS)
            return st;
    }
    return NIXL_SUCCESS;
}

static nixl_status_t lf_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
{
    if (!init || !init->host || !out)
        return NIXL_ERR_INVALID_PARAM;
    const nixl_host_t *host = init->host;
    if (!init->local_agent || !*init->local_agent || strlen(init->local_agent) > LF_NAME_MAX)
        return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM, "the agent name must be 1 to %u bytes",
                           LF_NAME_MAX);
    lf_params_t params;
    nixl_status_t st = params_parse(init, &params);
    if (st != NIXL_SUCCESS)
        return st;
    nixl_be_engine_t *eng = calloc(1, sizeof(*eng));
    if (!eng)
        return NIXL_BE_ERR(host, NIXL_ERR_UNKNOWN, "out of memory");
    eng->host = host;
    eng->params = params;
    atomic_init(&eng->next_key, 1);
    pthread_mutex_init(&eng->conns_lock, NULL);
    pthread_mutex_init(&eng->all_lock, NULL);
    lf_stage_init(eng);
    nixl_hmap_init(&eng->conns);
    eng->name = strdup(init->local_agent);
    eng->name_len = strlen(init->local_agent);
    st = eng->name ? open_rails(eng) : NIXL_BE_ERR(host, NIXL_ERR_UNKNOWN, "out of memory");
    if (st != NIXL_SUCCESS) {
        lf_destroy(eng);
        return st;
    }
    NIXL_BE_LOG(host, NIXL_LOG_DEBUG,
                "engine of '%s' ready: provider %s, %u rail(s) (%s%s), %zu elements per "
                "operation, %zu in flight, %s keys, %s addresses, %s",
                eng->name, eng->prov, eng->nrails, eng->rails[0].info->domain_attr->name,
                eng->nrails > 1 ? ", ..." : "", eng->rails[0].iov_n, eng->rails[0].tx_max,
                eng->prov_key ? "provider" : "requested", eng->virt_addr ? "virtual" : "offset",
                eng->delivery_complete ? "delivery-complete writes" : "transmit-complete writes");
    if (params.num_threads)
        NIXL_BE_LOG(host, NIXL_LOG_INFO,
                    "num_threads=%u has no effect on LIBFABRIC: each rail (one endpoint) has "
                    "one thread; to spread a request over several endpoints list a domain "
                    "several times in device_list (docs/backends.md, LIBFABRIC)",
                    params.num_threads);
    *out = eng;
    return NIXL_SUCCESS;
}

static nixl_status_t lf_get_conn_info(nixl_be_engine_t *eng, const void **blob, size_t *len)
{
    *blob = eng->conn_blob;
    *len = eng->conn_len;
    return NIXL_SUCCESS;
}

static const nixl_plugin_info_t lf_info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = "LIBFABRIC",
    .version = NIXL_VERSION_STRING,
    .caps = NIXL_BE_CAP_REMOTE | NIXL_BE_CAP_LOCAL | NIXL_BE_CAP_NOTIF,
    .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG), /* VRAM: lf_stage.c */
    .default_params = lf_default_params,
    .num_default_params = sizeof(lf_default_params) / sizeof(lf_default_params[0]),
};

static const nixl_be_ops_t lf_ops = {
    .struct_size = sizeof(nixl_be_ops_t),
    .create = lf_create,
    .destroy = lf_destroy,
    .register_mem = lf_register_mem,
    .deregister_mem = lf_deregister_mem,
    .get_conn_info = lf_get_conn_info,
    .get_public_blobs = lf_get_public_blobs,
    .load_remote_conn = lf_load_remote_conn,
    .load_remote_md = lf_load_remote_md,
    .load_local_md = lf_load_local_md,
    .unload_md = lf_unload_md,
    .disconnect = lf_disconnect,
    .prep_xfer = lf_prep_xfer,
    .post_xfer = lf_post_xfer,
    .check_xfer = lf_check_xfer,
    .release_req = lf_release_req,
    .gen_notif = lf_gen_notif,
    .progress = lf_progress,
    .cancel_xfer = lf_cancel_xfer,
};

NIXL_PLUGIN_EXPORT_ENTRY(&lf_info, &lf_ops)
