/*
 * shm_engine.c - the SHM plugin table: engine create/destroy, parameters, registration and
 * metadata. A local region's md records its range (shm_region.c: the staging server copies
 * only inside registered memory); a remote region's md is its peer object, so loading 10,000
 * regions is one lookup and one atomic add.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm.h"
#include "shm_priv.h"

static const nixl_param_t shm_default_params[] = {
    {"async_threshold", "0"},
    {"notif_ring_size", "262144"},
    {"gpu_max_blocks", "0"},
    {"trusted_uids", ""},       /* shm_trust.c */
    {"notif_senders", "checked"},
    {"ptracer", "any"},
    {"transport", "auto"},
    {"stage_ring_size", "4194304"},
    {"stage_rings", "64"},
    {"map_max_bytes", "1099511627776"}, /* shm_map.c */
    {"copy_threads", "auto"},           /* shm_copy.c */
    {"hugepages", "background"},        /* shm_thp.c */
};

typedef struct shm_params {
    uint64_t threshold, ring_size, xring_size, xrings, map_max;
    unsigned gpu_blocks;
    int transport, hugepages;
    unsigned copy_threads;
} shm_params_t;

/* copy_threads: auto (half the cores, at least 1, at most SHM_COPY_THREADS_AUTO_MAX: the peer
 * and the application need cores too) or 1 to the maximum. */
static nixl_status_t parse_copy_threads(const nixl_be_init_t *init, const char *v, unsigned *out)
{
    uint64_t n;
    if (v && strcmp(v, "auto") == 0) {
        long half = sysconf(_SC_NPROCESSORS_ONLN) / 2;
        *out = half < 1 ? 1u
               : (unsigned long)half > SHM_COPY_THREADS_AUTO_MAX ? SHM_COPY_THREADS_AUTO_MAX
                                                                : (unsigned)half;
    } else if (nixl_parse_u64(v, &n) && n >= 1 && n <= SHM_COPY_THREADS_MAX) {
        *out = (unsigned)n;
    } else {
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "copy_threads='%s' must be auto (half the cores, at most %u) or the "
                           "threads that copy one large request, 1 (the caller's only) to %u",
                           v ? v : "(null)", SHM_COPY_THREADS_AUTO_MAX, SHM_COPY_THREADS_MAX);
    }
    return NIXL_SUCCESS;
}


static nixl_status_t parse_transport(const nixl_be_init_t *init, const char *v, int *out)
{
    if (v && strcmp(v, "auto") == 0)
        *out = SHM_TRANSPORT_AUTO;
    else if (v && strcmp(v, "cma") == 0)
        *out = SHM_TRANSPORT_CMA;
    else if (v && strcmp(v, "staged") == 0)
        *out = SHM_TRANSPORT_STAGED;
    else if (v && strcmp(v, "map") == 0)
        *out = SHM_TRANSPORT_MAP;
    else
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "transport='%s' must be auto (mappings of shareable files, else "
                           "cross-memory attach where allowed, else staging rings), map "
                           "(mappings only: other regions are refused), cma (cross-memory "
                           "attach only) or staged (staging rings only)",
                           v ? v : "(null)");
    return NIXL_SUCCESS;
}

static nixl_status_t parse_hugepages(const nixl_be_init_t *init, const char *v, int *out)
{
    if (v && strcmp(v, "off") == 0)
        *out = SHM_HUGEPAGES_OFF;
    else if (v && strcmp(v, "advise") == 0)
        *out = SHM_HUGEPAGES_ADVISE;
    else if (v && strcmp(v, "collapse") == 0)
        *out = SHM_HUGEPAGES_COLLAPSE;
    else if (v && strcmp(v, "background") == 0)
        *out = SHM_HUGEPAGES_BACKGROUND;
    else
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "hugepages='%s' must be background (registered memory becomes "
                           "transparent huge pages, converted by a low-priority thread), off "
                           "(left as it is), advise (its pages faulted from now on become huge "
                           "pages) or collapse (converted at registration)",
                           v ? v : "(null)");
    return NIXL_SUCCESS;
}

static nixl_status_t shm_parse_params(const nixl_be_init_t *init, shm_params_t *o)
{
    uint64_t *threshold = &o->threshold, *ring_size = &o->ring_size;
    unsigned *gpu_blocks = &o->gpu_blocks;
    *o = (shm_params_t){.ring_size = SHM_RING_DEFAULT, .xring_size = SHM_XRING_DEFAULT,
                        .xrings = SHM_XRINGS_DEFAULT, .transport = SHM_TRANSPORT_AUTO,
                        .map_max = SHM_MAP_MAX_DEFAULT};
    const char *copy_threads = "auto", *hugepages = "background";
    for (size_t i = 0; i < init->num_params; i++) {
        const nixl_param_t *p = &init->params[i];
        /* Unknown keys are ignored: agents pass one parameter map to every backend. */
        if (!p->key)
            continue;
        if (strcmp(p->key, "async_threshold") == 0) {
            if (!nixl_parse_u64(p->value, threshold)) {
                return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                                   "async_threshold='%s' is not a byte count (a "
                                   "decimal or 0x-hex integer; 0 disables the worker "
                                   "thread)",
                                   p->value ? p->value : "(null)");
            }
        } else if (strcmp(p->key, "notif_ring_size") == 0) {
            uint64_t v;
            if (!nixl_parse_u64(p->value, &v) ||
                (v && (v < SHM_RING_MIN || v > SHM_RING_MAX || (v & (v - 1))))) {
                return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                                   "notif_ring_size='%s' must be 0 (no rings: "
                                   "notifications by socket only) or a power of two from "
                                   "%zu to %zu bytes",
                                   p->value ? p->value : "(null)", SHM_RING_MIN, SHM_RING_MAX);
            }
            *ring_size = v;
        } else if (strcmp(p->key, "gpu_max_blocks") == 0) {
            uint64_t v;
            if (!nixl_parse_u64(p->value, &v) || v > 65535)
                return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                                   "gpu_max_blocks='%s' must be 0 (two blocks per SM) or the "
                                   "number of thread blocks of a GPU copy, at most 65535",
                                   p->value ? p->value : "(null)");
            *gpu_blocks = (unsigned)v;
        } else if (strcmp(p->key, "transport") == 0) {
            nixl_status_t st = parse_transport(init, p->value, &o->transport);
            if (st != NIXL_SUCCESS)
                return st;
        } else if (strcmp(p->key, "stage_ring_size") == 0) {
            uint64_t v;
            if (!nixl_parse_u64(p->value, &v) || v < SHM_XRING_MIN || v > SHM_XRING_MAX ||
                (v & (v - 1)))
                return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                                   "stage_ring_size='%s' must be a power of two from %zu to "
                                   "%zu bytes",
                                   p->value ? p->value : "(null)", SHM_XRING_MIN, SHM_XRING_MAX);
            o->xring_size = v;
        } else if (strcmp(p->key, "stage_rings") == 0) {
            uint64_t v;
            if (!nixl_parse_u64(p->value, &v) || v > SHM_XRINGS_MAX)
                return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                                   "stage_rings='%s' must be the number of staging rings "
                                   "served at once, 0 (none: peers without cross-memory "
                                   "attach cannot reach this engine) to %u",
                                   p->value ? p->value : "(null)", SHM_XRINGS_MAX);
            o->xrings = v;
        } else if (strcmp(p->key, "copy_threads") == 0) {
            copy_threads = p->value;
        } else if (strcmp(p->key, "hugepages") == 0) {
            hugepages = p->value;
        } else if (strcmp(p->key, "map_max_bytes") == 0) {
            if (!nixl_parse_u64(p->value, &o->map_max))
                return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                                   "map_max_bytes='%s' must be a byte count (peers' files "
                                   "mapped at once; 0: never map them)",
                                   p->value ? p->value : "(null)");
        }
    }
    /* NIXL_SHM_TRANSPORT stands in for transport=auto (given or defaulted): tools that pass no
     * backend parameters (nixlbench, bench/xfer) can be told to force a path. */
    const char *env = getenv("NIXL_SHM_TRANSPORT");
    if (env && *env && o->transport == SHM_TRANSPORT_AUTO) {
        nixl_status_t st = parse_transport(init, env, &o->transport);
        if (st != NIXL_SUCCESS)
            return st;
    }
    /* NIXL_SHM_COPY_THREADS likewise stands in for copy_threads=auto. */
    env = getenv("NIXL_SHM_COPY_THREADS");
    if (env && *env && copy_threads && strcmp(copy_threads, "auto") == 0)
        copy_threads = env;
    nixl_status_t cst = parse_copy_threads(init, copy_threads, &o->copy_threads);
    if (cst != NIXL_SUCCESS)
        return cst;
    /* NIXL_SHM_HUGEPAGES likewise stands in for hugepages=background. */
    env = getenv("NIXL_SHM_HUGEPAGES");
    if (env && *env && hugepages && strcmp(hugepages, "background") == 0)
        hugepages = env;
    cst = parse_hugepages(init, hugepages, &o->hugepages);
    if (cst != NIXL_SUCCESS)
        return cst;
    if (!SHM_RING_SUPPORTED)
        *ring_size = 0;
    return NIXL_SUCCESS;
}

static void shm_destroy(nixl_be_engine_t *eng)
{
    if (!eng)
        return;
    shm_worker_stop(eng);
    shm_thp_stop(eng);
    shm_copy_stop(eng);
    shm_event_stop(eng);
    shm_xsrv_stop_all(eng);
    shm_peers_destroy(eng);
    shm_region_free_all(eng);
    if (eng->maps_fd >= 0)
        close(eng->maps_fd);
    pthread_rwlock_destroy(&eng->regs_lock);
    pthread_mutex_destroy(&eng->xsrv_lock);
    pthread_mutex_destroy(&eng->peers_lock);
    pthread_mutex_destroy(&eng->all_lock);
    pthread_mutex_destroy(&eng->ev_lock);
    pthread_mutex_destroy(&eng->cp_lock);
    pthread_cond_destroy(&eng->cp_cond);
    pthread_cond_destroy(&eng->cp_done);
    nixl_jobq_fini(&eng->worker);
    free(eng->scratch);
    free(eng->name);
    free(eng);
}

static nixl_status_t shm_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
{
    if (!init || !init->host || !out)
        return NIXL_ERR_INVALID_PARAM;
    const nixl_host_t *host = init->host;
    if (!init->local_agent || !*init->local_agent ||
        strlen(init->local_agent) > SHM_NAME_MAX) {
        return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM, "the agent name must be 1 to %u bytes",
                           SHM_NAME_MAX);
    }

    shm_params_t prm;
    nixl_status_t st = shm_parse_params(init, &prm);
    if (st != NIXL_SUCCESS)
        return st;
    uint64_t threshold = prm.threshold;
    shm_trust_t trust;
    st = shm_trust_parse(init, &trust);
    if (st != NIXL_SUCCESS)
        return st;
    /* Cross-memory attach refused (seccomp, Yama): transport=cma fails here as it always did;
     * auto goes on with staging rings and tells peers to use them with us too. */
    char cma_why[320] = "";
    if (prm.transport == SHM_TRANSPORT_STAGED) {
        snprintf(cma_why, sizeof(cma_why), "transport=staged");
    } else if (shm_sys_check_cma(host, trust.ptracer_any, cma_why, sizeof(cma_why)) !=
               NIXL_SUCCESS) {
        if (prm.transport == SHM_TRANSPORT_CMA)
            return NIXL_BE_ERR(host, NIXL_ERR_BACKEND,
                               "cross-memory attach is unavailable and transport=cma: %s; "
                               "use transport=auto (staging rings) or the UCX backend",
                               cma_why);
        NIXL_BE_LOG(host, NIXL_LOG_INFO,
                    "cross-memory attach is unavailable (%s): SHM moves data through "
                    "shared-memory staging rings",
                    cma_why);
    }

    nixl_be_engine_t *eng = calloc(1, sizeof(*eng));
    if (!eng)
        goto err_oom;
    eng->host = host;
    eng->trust = trust;
    eng->async_threshold = threshold;
    eng->gpu_max_blocks = prm.gpu_blocks;
    /* Rings are memfds (shm_ring.c, "Mapped rings"): a target reached only through staging
     * offers them too, and its peers store into their mappings. */
    eng->ring_size = (size_t)prm.ring_size;
    eng->transport = prm.transport;
    memcpy(eng->cma_why, cma_why, sizeof(cma_why));
    eng->xring_size = (size_t)prm.xring_size;
    eng->xrings_max = (unsigned)prm.xrings;
    eng->map_max = prm.map_max;
    eng->cp_threads = prm.copy_threads;
    eng->hugepages = prm.hugepages;
    pthread_mutex_init(&eng->cp_lock, NULL);
    pthread_cond_init(&eng->cp_cond, NULL);
    pthread_cond_init(&eng->cp_done, NULL);
    pthread_rwlock_init(&eng->regs_lock, NULL);
    pthread_mutex_init(&eng->xsrv_lock, NULL);
    eng->listen_fd = eng->wake_fd = eng->ep_fd = eng->ep_in = -1;
    const char *mq = getenv("NIXL_SHM_MAPS_QUERY"); /* 0: read the text (tests) */
    eng->maps_fd = mq && strcmp(mq, "0") == 0 ? -2 : -1;
    pthread_mutex_init(&eng->peers_lock, NULL);
    pthread_mutex_init(&eng->all_lock, NULL);
    pthread_mutex_init(&eng->ev_lock, NULL);
    shm_worker_init(eng);
    shm_thp_init(eng);
    eng->name = strdup(init->local_agent);
    if (!eng->name)
        goto err_engine;
    eng->name_len = strlen(eng->name);
    if (eng->ring_size) {
        eng->scratch = malloc(shm_ring_rec_max(eng->ring_size));
        if (!eng->scratch)
            goto err_engine;
    }
    eng->self = shm_peer_new(eng, eng->name, true);
    if (!eng->self)
        goto err_engine;

    shm_sys_identity(&eng->info);
    if (cma_why[0])
        eng->info.flags |= SHM_INFO_STAGED;
    st = shm_event_start(eng); /* names and binds the socket: fills info.sock_name */
    if (st != NIXL_SUCCESS) {
        shm_destroy(eng);
        return st;
    }
    eng->conn_len = shm_conn_encode(&eng->info, eng->conn_blob);
    /* Say how GPU memory will be copied when that is not the batched kernel (asks nothing of
     * the driver: starting it here would slow every engine of a host that never uses VRAM). */
    const nixl_gpu_ops_t *gpu = nixl_host_gpu(host);
    if (gpu && strncmp(gpu->copy_method(), "one kernel", 10) != 0)
        NIXL_BE_LOG(host, NIXL_LOG_INFO, "GPU copies: %s", gpu->copy_method());
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                "engine of '%s' listening on @%s (async_threshold=%llu, "
                "notif_ring_size=%zu, transport=%s)",
                eng->name, eng->info.sock_name, (unsigned long long)threshold, eng->ring_size,
                prm.transport == SHM_TRANSPORT_MAP ? "map" : cma_why[0] ? "staged" : "cma");
    *out = eng;
    return NIXL_SUCCESS;

err_engine:
    shm_destroy(eng);
err_oom:
    return NIXL_BE_ERR(host, NIXL_ERR_UNKNOWN, "out of memory creating the engine");
}

static nixl_status_t shm_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                                      const nixl_reg_desc_t *descs, size_t count,
                                      nixl_be_md_t **out_mds)
{
    if (type == NIXL_VRAM_SEG)
        return shm_gpu_register(eng, descs, count, out_mds);
    if (type != NIXL_DRAM_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "only DRAM_SEG and VRAM_SEG can be registered (got %d); use a "
                           "storage backend for other memory",
                           (int)type);
    shm_thp_prepare(eng, descs, count); /* before any lock: a collapse copies */
    nixl_status_t st = shm_region_add(eng, descs, count, out_mds);
    if (st == NIXL_SUCCESS)
        shm_thp_queue(eng, out_mds, count);
    return st;
}

static void shm_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    for (size_t i = 0; i < mds->count; i++) {
        shm_md_hdr_t *h = (shm_md_hdr_t *)nixl_be_md_at(mds, i);
        if (h && h->kind == SHM_MD_VRAM)
            shm_gpu_deregister((shm_vlmd_t *)h);
        else if (h && h->kind == SHM_MD_LOCAL) {
            shm_thp_forget(eng, (shm_lmd_t *)h);
            shm_region_remove(eng, (shm_lmd_t *)h);
        }
    }
}

static nixl_status_t shm_get_conn_info(nixl_be_engine_t *eng, const void **blob, size_t *len)
{
    *blob = eng->conn_blob;
    *len = eng->conn_len;
    return NIXL_SUCCESS;
}

static nixl_status_t shm_get_public_blobs(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                          nixl_be_blob_t *out)
{
    static const uint8_t empty[1];
    (void)eng;
    /* DRAM: peers need only the addresses, which the core sends anyway, and for a region in a
     * shareable file which file (shm_map.c); VRAM regions carry their CUDA IPC handle. The
     * region's file is set at registration, before the md is handed out. */
    for (size_t i = 0; i < mds->count; i++) {
        shm_md_hdr_t *h = (shm_md_hdr_t *)nixl_be_md_at(mds, i);
        const shm_lmd_t *m = (const shm_lmd_t *)h;
        out[i] = h->kind == SHM_MD_VRAM ? shm_gpu_blob((shm_vlmd_t *)h)
                 : m->bf                ? (nixl_be_blob_t){.data = m->blob, .len = SHM_MAP_BLOB}
                                        : (nixl_be_blob_t){.data = empty, .len = 0};
    }
    return NIXL_SUCCESS;
}

static void shm_unload_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds);

static nixl_status_t shm_load_remote_md(nixl_be_engine_t *eng, const char *agent,
                                        nixl_mem_t type, const nixl_desc_t *descs,
                                        const nixl_be_blob_t *blobs, size_t count,
                                        nixl_be_md_t **out_mds)
{
    if (type != NIXL_DRAM_SEG && type != NIXL_VRAM_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "only DRAM_SEG and VRAM_SEG regions (got %d)", (int)type);
    shm_peer_t *peer;
    if (strcmp(agent, eng->name) == 0) {
        peer = eng->self;
        shm_peer_ref(peer, 1);
    } else {
        peer = shm_peer_find(eng, agent);
        if (!peer)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND,
                               "no connection info loaded for agent '%s'", agent);
    }
    if (type == NIXL_VRAM_SEG) {
        /* Each VRAM region gets its own md (holding its own reference). */
        nixl_status_t st = shm_gpu_load_remote(eng, peer, descs, blobs, count, out_mds);
        shm_peer_unref(peer, 1);
        return st;
    }
    /* One reference per md handed out (unload_md drops them per md), taken at once, unless
     * some region lies in a shareable file: it gets its own md (shm_map.c). */
    bool files = false;
    for (size_t i = 0; blobs && i < count && !files; i++)
        files = blobs[i].len != 0;
    if (!files) {
        if (count == 0)
            shm_peer_unref(peer, 1);
        else if (count > 1)
            shm_peer_ref(peer, count - 1);
        for (size_t i = 0; i < count; i++)
            out_mds[i] = (nixl_be_md_t *)peer;
        return NIXL_SUCCESS;
    }
    nixl_status_t st = NIXL_SUCCESS;
    size_t i = 0;
    for (; i < count && st == NIXL_SUCCESS; i++)
        st = shm_map_load(eng, peer, &descs[i], &blobs[i], i, &out_mds[i]);
    shm_peer_unref(peer, 1);
    if (st != NIXL_SUCCESS) {
        nixl_be_mds_t done = {.base = out_mds, .stride = sizeof(*out_mds), .count = i - 1};
        shm_unload_md(eng, &done);
    }
    return st;
}

static nixl_status_t shm_load_local_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                       nixl_be_md_t **out_mds)
{
    size_t count = mds->count;
    for (size_t i = 0; i < count; i++) {
        const shm_md_hdr_t *h = (const shm_md_hdr_t *)nixl_be_md_at(mds, i);
        bool dram = h && h->kind == SHM_MD_LOCAL && ((const shm_lmd_t *)h)->eng == eng;
        if (!dram && (!h || h->kind != SHM_MD_VRAM))
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "load_local_md: md %zu was not registered by this engine", i);
    }
    for (size_t i = 0; i < count; i++) {
        shm_md_hdr_t *h = (shm_md_hdr_t *)nixl_be_md_at(mds, i);
        if (h->kind != SHM_MD_VRAM) {
            shm_peer_ref(eng->self, 1);
            out_mds[i] = (nixl_be_md_t *)eng->self;
            continue;
        }
        nixl_status_t st = shm_gpu_load_local(eng, (shm_vlmd_t *)h, &out_mds[i]);
        if (st != NIXL_SUCCESS) {
            nixl_be_mds_t done = {.base = out_mds, .stride = sizeof(*out_mds), .count = i};
            shm_unload_md(eng, &done);
            return st;
        }
    }
    return NIXL_SUCCESS;
}

static void shm_unload_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    (void)eng;
    /* Lists are normally runs of one peer: drop each run's references with one atomic op. */
    size_t i = 0, count = mds->count;
    while (i < count) {
        size_t j = i + 1;
        while (j < count && nixl_be_md_at(mds, j) == nixl_be_md_at(mds, i))
            j++;
        shm_md_hdr_t *h = (shm_md_hdr_t *)nixl_be_md_at(mds, i);
        if (h && h->kind == SHM_MD_PEER)
            shm_peer_unref((shm_peer_t *)h, j - i);
        else if (h && h->kind == SHM_MD_MAP)
            shm_rmd_unref((shm_rmd_t *)h, j - i);
        else if (h && h->kind == SHM_MD_VRAM_PEER)
            shm_gpu_unload(eng, (shm_vrmd_t *)h); /* its own md: never repeated in a run */
        i = j;
    }
}

static const nixl_plugin_info_t shm_info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = "SHM",
    .version = NIXL_VERSION_STRING,
    .caps = NIXL_BE_CAP_REMOTE | NIXL_BE_CAP_LOCAL | NIXL_BE_CAP_NOTIF,
    .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG),
    .default_params = shm_default_params,
    .num_default_params = sizeof(shm_default_params) / sizeof(shm_default_params[0]),
};

static const nixl_be_ops_t shm_ops = {
    .struct_size = sizeof(nixl_be_ops_t),
    .create = shm_create,
    .destroy = shm_destroy,
    .register_mem = shm_register_mem,
    .deregister_mem = shm_deregister_mem,
    .get_conn_info = shm_get_conn_info,
    .get_public_blobs = shm_get_public_blobs,
    .load_remote_conn = shm_load_remote_conn,
    .load_remote_md = shm_load_remote_md,
    .load_local_md = shm_load_local_md,
    .unload_md = shm_unload_md,
    .connect = shm_connect,
    .disconnect = shm_disconnect,
    .prep_xfer = shm_prep_xfer,
    .post_xfer = shm_post_xfer,
    .check_xfer = shm_check_xfer,
    .release_req = shm_release_req,
    .cancel_xfer = shm_cancel_xfer,
    .gen_notif = shm_gen_notif,
    .progress = shm_progress,
};

const nixl_plugin_t *nixl_shm_plugin_entry(uint32_t host_abi_version)
{
    static const nixl_plugin_t shm_plugin = NIXL_PLUGIN_DESCRIPTION(&shm_info, &shm_ops);
    (void)host_abi_version;
    return &shm_plugin;
}
