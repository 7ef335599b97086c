/*
 * ucx_engine.c - the UCX plugin (libplugin_UCX.so): its table, engine creation and
 * destruction.
 *
 * An engine: one UCP context, num_workers shared workers (thread mode MULTI: callers and the
 * progress thread use them at once), num_threads dedicated workers with their threads, worker
 * 0's address as connection info, the notification handler on worker 0, a connection to
 * itself for loopback, and the progress thread.
 *
 * Parameters (unknown keys are ignored; bad values are refused with a reason):
 *   num_workers              1..64 (default 1)
 *   ucx_error_handling_mode  "peer" (default: a dead peer fails transfers with
 *                            REMOTE_DISCONNECT) or "none"
 *   device_list, ucx_devices network devices for UCX_NET_DEVICES ("mlx5_0, eth0"); the
 *                            reference advertises ucx_devices but reads device_list: we take
 *                            either (device_list wins)
 *   engine_config            extra UCX settings "KEY=VAL,KEY=VAL" (names without UCX_)
 *   ucx_ep_close_force       close endpoints by force (the reference's option); with error
 *                            handling "peer" they always are, after a bounded flush (see
 *                            ucx_disconnect_flushed), so a close never waits on a peer
 *   num_threads              0..256 (default 0): dedicated workers, each with its own thread,
 *                            over which requests of split_batch_size elements or more are
 *                            spread (ucx_pool.c)
 *   split_batch_size         1.. (default 1024)
 *   ucx_num_device_channels  RC_GDA_NUM_CHANNELS on UCX >= 1.21 (ucx_config.c)
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ucx_priv.h"

static const nixl_param_t ucx_default_params[] = {
    {"ucx_devices", ""},   {"num_workers", "1"},  {"ucx_error_handling_mode", "peer"},
    {"num_threads", "0"},  {"device_list", ""},   {"engine_config", ""},
    {"ucx_peer_timeout_ms", "30000"},
};

static void flush_done(void *request, ucs_status_t status, void *arg)
{
    (void)status; /* a flush cancelled by the forced close below is fine: we tried */
    ucp_request_free(request);
    ucx_busy_dec(arg);
}

/* Flush every open endpoint (tracked by `busy`): what was handed to UCX - a notification
 * still in a transport's send buffer - leaves before the endpoints are closed by force. */
static void flush_all(nixl_be_engine_t *eng)
{
    ucp_request_param_t p = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA,
        .cb.send = flush_done,
        .user_data = eng,
    };
    /* The endpoints are collected under all_lock and flushed after it: all_lock is a leaf,
     * never held across a UCX call (UCX takes its worker lock there, and our active-message
     * handlers take all_lock under that lock). Destroy runs alone: the list cannot change. */
    size_t n = 0, k = 0;
    pthread_mutex_lock(&eng->all_lock);
    for (nixl_list_node_t *c = eng->all_conns; c; c = c->next)
        n += eng->nworkers;
    ucp_ep_h *eps = n ? malloc(n * sizeof(*eps)) : NULL;
    for (nixl_list_node_t *c = eng->all_conns; eps && c; c = c->next) {
        ucx_conn_t *conn = nixl_list_entry(c, ucx_conn_t, all);
        for (unsigned w = 0; w < eng->nworkers && !conn->eps_closed; w++)
            if (conn->eps[w])
                eps[k++] = conn->eps[w];
    }
    pthread_mutex_unlock(&eng->all_lock);
    for (size_t i = 0; i < k; i++) {
        ucx_busy_inc(eng);
        ucs_status_ptr_t r = ucp_ep_flush_nbx(eps[i], &p);
        if (!UCS_PTR_IS_PTR(r))
            ucx_busy_dec(eng);
    }
    free(eps); /* without memory the endpoints are closed by force unflushed: bounded anyway */
}

/*
 * Teardown never waits on a peer for long, and never destroys a worker while UCX holds one of
 * our requests: UCX 1.13 asserts (UCP_REQUEST_FLAG_RELEASED, ucp_ep.c) when ucp_worker_destroy
 * meets a close request of ours still in flight, which is what a graceful close to a peer that
 * never progresses (stopped, busy, or a reference agent without a progress thread) leaves.
 * So: let what is in flight finish (bounded), flush every endpoint (bounded: a notification
 * reaches a live peer), then close every endpoint by force - which completes locally whatever
 * the peer does, cancelling what it could not deliver - and wait for those closes. Should UCX
 * still hold requests of ours after that, the workers and the context are left alive (a leak,
 * logged) rather than destroyed under them.
 */
bool ucx_close_force(const ucx_conn_t *conn)
{
    const nixl_be_engine_t *eng = conn->eng;
    ucp_err_handling_mode_t mode = conn->is_self ? eng->self_mode : eng->params.err_mode;
    return atomic_load(&conn->failed) || mode == UCP_ERR_HANDLING_MODE_PEER ||
           eng->params.ep_close_force;
}

static void disc_flush_done(void *request, ucs_status_t status, void *arg)
{
    nixl_be_engine_t *eng = arg;
    (void)status; /* failed or cancelled: the endpoints are closed by force next anyway */
    ucp_request_free(request);
    atomic_fetch_sub(&eng->disc_flushes, 1);
}

/*
 * Disconnect a peer: its endpoints are closed by force (ucx_close_force), so first flush them,
 * for at most UCX_DISCONNECT_FLUSH_MS: what was handed to UCX for a live peer (a notification
 * still in a transport's send buffer) leaves before the close; a peer that does not answer
 * costs that long once, and never blocks the close.
 */
static nixl_status_t ucx_disconnect_flushed(nixl_be_engine_t *eng, const char *agent)
{
    ucx_conn_t *conn = strcmp(agent, eng->name) ? ucx_conn_find(eng, agent) : NULL;
    if (conn && !atomic_load(&conn->failed)) {
        /* Disconnects come one at a time (control operations), but a flush of an earlier one
         * that UCX never completed still counts: wait for the count we started from. The
         * callback touches only the engine, which outlives every UCX request. */
        size_t before = atomic_load(&eng->disc_flushes);
        ucp_request_param_t p = {
            .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA,
            .cb.send = disc_flush_done,
            .user_data = eng,
        };
        for (unsigned w = 0; w < eng->nworkers && !conn->eps_closed; w++) {
            if (!conn->eps[w])
                continue;
            atomic_fetch_add(&eng->disc_flushes, 1);
            ucs_status_ptr_t r = ucp_ep_flush_nbx(conn->eps[w], &p);
            if (!UCS_PTR_IS_PTR(r))
                atomic_fetch_sub(&eng->disc_flushes, 1);
        }
        uint64_t deadline = nixl_now_ms() + UCX_DISCONNECT_FLUSH_MS;
        while (atomic_load(&eng->disc_flushes) > before && nixl_now_ms() < deadline) {
            for (unsigned w = 0; w < eng->nworkers; w++)
                ucx_progress_worker(eng, w);
            nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
        }
        if (atomic_load(&eng->disc_flushes) > before)
            NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                        "agent '%s' did not confirm what was sent to it within %d ms; its "
                        "endpoints are closed by force", agent, UCX_DISCONNECT_FLUSH_MS);
    }
    if (conn)
        ucx_conn_unref(conn, 1);
    return ucx_disconnect(eng, agent);
}

/* Conns with a close request still in UCX's hands (a graceful close issued before destroy,
 * to a peer that never answered it): `holds` counts one for the users while any reference
 * remains (a peer's regions the core did not unload), plus one per close in flight. */
static size_t closes_pending(nixl_be_engine_t *eng)
{
    size_t n = 0;
    pthread_mutex_lock(&eng->all_lock);
    for (nixl_list_node_t *c = eng->all_conns; c; c = c->next) {
        const ucx_conn_t *conn = nixl_list_entry(c, ucx_conn_t, all);
        size_t users = atomic_load(&conn->refs) > 0;
        n += atomic_load(&conn->holds) > users;
    }
    pthread_mutex_unlock(&eng->all_lock);
    return n;
}

static void ucx_destroy(nixl_be_engine_t *eng)
{
    if (!eng)
        return;
    ucx_stage_stop(eng);    /* every request was released: no round is running */
    ucx_liveness_stop(eng); /* no probe may leave once teardown starts */
    ucx_progress_stop(eng);
    ucx_pool_stop(eng); /* from here this thread is the only one progressing */
    bool leak = false;
    if (eng->workers) {
        flush_all(eng);               /* after what is in flight, on every endpoint */
        ucx_drain(eng, UCX_DRAIN_MS);
        eng->params.ep_close_force = true;
        ucx_conns_shutdown(eng);
        ucx_conns_force_close(eng);   /* still held by requests the core never released */
        size_t kept = ucx_reqs_free_all(eng); /* their rkeys go before the workers */
        uint64_t deadline = nixl_now_ms() + UCX_DRAIN_MS;
        while (closes_pending(eng) && nixl_now_ms() < deadline)
            ucx_drain(eng, 10);
        ucx_quiesce(eng, 20, UCX_DRAIN_MS);
        size_t closes = closes_pending(eng);
        if (closes || kept) {
            leak = true;
            NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                        "engine of '%s': UCX still holds %zu endpoint close(s) and %zu "
                        "transfer(s) its peers never answered; the workers are left alive "
                        "(leaked) rather than destroyed under them",
                        eng->name, closes, kept);
        }
        for (unsigned w = 0; w < eng->nworkers && !leak; w++)
            if (eng->workers[w])
                ucp_worker_destroy(eng->workers[w]);
    }
    if (leak)
        return; /* callbacks may still reach the conns and the engine */
    ucx_conns_free_all(eng);
    if (eng->ctx)
        ucp_cleanup(eng->ctx);
    pthread_mutex_destroy(&eng->conns_lock);
    pthread_mutex_destroy(&eng->rkey_lock);
    pthread_mutex_destroy(&eng->all_lock);
    nixl_jobq_fini(&eng->stage);
    free(eng->addr);
    free(eng->workers);
    free(eng->name);
    free(eng);
}

static nixl_status_t workers_create(nixl_be_engine_t *eng)
{
    eng->workers = calloc(eng->nworkers, sizeof(*eng->workers));
    if (!eng->workers)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    ucp_worker_params_t wp = {.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
                              .thread_mode = UCS_THREAD_MODE_MULTI};
    for (unsigned w = 0; w < eng->nworkers; w++) {
        ucs_status_t s = ucp_worker_create(eng->ctx, &wp, &eng->workers[w]);
        if (s != UCS_OK) {
            eng->workers[w] = NULL;
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "creating worker %u failed: %s", w,
                               ucs_status_string(s));
        }
        ucp_worker_attr_t attr = {.field_mask = UCP_WORKER_ATTR_FIELD_THREAD_MODE};
        if (ucp_worker_query(eng->workers[w], &attr) == UCS_OK &&
            attr.thread_mode != UCS_THREAD_MODE_MULTI)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                               "this UCX build has no multi-thread "
                               "support (workers must be MULTI: the progress thread shares them)");
    }

    ucp_address_t *addr;
    size_t len;
    ucs_status_t s = ucp_worker_get_address(eng->workers[0], &addr, &len);
    if (s != UCS_OK)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "getting the worker address failed: %s",
                           ucs_status_string(s));
    eng->addr = malloc(len);
    if (eng->addr) {
        memcpy(eng->addr, addr, len);
        eng->addr_len = len;
    }
    ucp_worker_release_address(eng->workers[0], addr);
    return eng->addr ? NIXL_SUCCESS : NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
}

static nixl_status_t ucx_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
{
    if (!init || !init->host || !out)
        return NIXL_ERR_INVALID_PARAM;
    const nixl_host_t *host = init->host;
    if (!init->local_agent || !*init->local_agent || strlen(init->local_agent) > UCX_NAME_MAX) {
        return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM, "the agent name must be 1 to %u bytes",
                           UCX_NAME_MAX);
    }
    nixl_status_t st = ucx_check_version(host);
    ucx_params_t params;
    if (st == NIXL_SUCCESS)
        st = ucx_params_parse(init, &params);
    if (st != NIXL_SUCCESS)
        return st;

    nixl_be_engine_t *eng = calloc(1, sizeof(*eng));
    if (!eng) {
        return NIXL_BE_ERR(host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    eng->host = host;
    eng->params = params;
    eng->nshared = params.num_workers;
    eng->nthreads = params.num_threads;
    eng->nworkers = eng->nshared + eng->nthreads;
    eng->wake_fd = -1;
    pthread_mutex_init(&eng->conns_lock, NULL);
    pthread_mutex_init(&eng->rkey_lock, NULL);
    pthread_mutex_init(&eng->all_lock, NULL);
    ucx_stage_init(eng);
    eng->name = strdup(init->local_agent);
    eng->name_len = strlen(init->local_agent);
    st = eng->name ? NIXL_SUCCESS : NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    if (st == NIXL_SUCCESS)
        st = ucx_context_create(eng);
    if (st == NIXL_SUCCESS)
        st = workers_create(eng);
    if (st == NIXL_SUCCESS)
        st = ucx_notif_init(eng);
    if (st == NIXL_SUCCESS)
        st = ucx_conn_self(eng);
    if (st == NIXL_SUCCESS)
        st = ucx_progress_start(eng, init);
    if (st == NIXL_SUCCESS)
        st = ucx_pool_start(eng);
    if (st != NIXL_SUCCESS) {
        ucx_destroy(eng);
        return st;
    }
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                "engine of '%s' ready (UCX %s, %u shared worker(s), %u dedicated with their "
                "threads, error handling %s, loopback %s, address %zu bytes)",
                eng->name, ucp_get_version_string(), eng->nshared, eng->nthreads,
                params.err_mode == UCP_ERR_HANDLING_MODE_PEER ? "peer" : "none",
                eng->self_mode == UCP_ERR_HANDLING_MODE_PEER ? "over TCP" : "by self/shm",
                eng->addr_len);
    *out = eng;
    return NIXL_SUCCESS;
}

static nixl_status_t ucx_get_conn_info(nixl_be_engine_t *eng, const void **blob, size_t *len)
{
    *blob = eng->addr;
    *len = eng->addr_len;
    return NIXL_SUCCESS;
}

static const nixl_plugin_info_t ucx_info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = "UCX",
    .version = NIXL_VERSION_STRING,
    .caps = NIXL_BE_CAP_REMOTE | NIXL_BE_CAP_LOCAL | NIXL_BE_CAP_NOTIF,
    .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG),
    .default_params = ucx_default_params,
    .num_default_params = sizeof(ucx_default_params) / sizeof(ucx_default_params[0]),
};

static const nixl_be_ops_t ucx_ops = {
    .struct_size = sizeof(nixl_be_ops_t),
    .create = ucx_create,
    .destroy = ucx_destroy,
    .register_mem = ucx_register_mem,
    .deregister_mem = ucx_deregister_mem,
    .get_conn_info = ucx_get_conn_info,
    .get_public_blobs = ucx_get_public_blobs,
    .load_remote_conn = ucx_load_remote_conn,
    .load_remote_md = ucx_load_remote_md,
    .load_local_md = ucx_load_local_md,
    .unload_md = ucx_unload_md,
    .connect = ucx_connect,
    .disconnect = ucx_disconnect_flushed,
    .prep_xfer = ucx_prep_xfer,
    .post_xfer = ucx_post_xfer,
    .check_xfer = ucx_check_xfer,
    .release_req = ucx_release_req,
    .cancel_xfer = ucx_cancel_xfer,
    .gen_notif = ucx_gen_notif,
    .progress = ucx_progress,
    .estimate_cost = ucx_estimate_cost,
};

/* The one symbol the plugin exports (it is built with hidden visibility). */
NIXL_PLUGIN_EXPORT_ENTRY(&ucx_info, &ucx_ops)
