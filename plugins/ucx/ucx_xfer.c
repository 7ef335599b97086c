/*
 * ucx_xfer.c - transfers: prepare once (resolve every element to address, length, memory
 * handle and rkey, hold the regions), then post = one put/get per element and one endpoint
 * flush, every one of them tracked to its own completion by a callback that counts it in the
 * prepared request (no allocation per operation). The last completion decides: SUCCESS only
 * when every operation completed with UCS_OK, and only then is the notification sent - so it
 * leaves after the data is in place, from whichever thread progresses the worker, even if the
 * initiator never looks at the request again. A failure names how many operations of how many
 * failed. A request split over the dedicated workers (ucx_pool.c) is the same thing in several
 * chunks, each with its own flush, all counted in the one request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ucx_priv.h"

static const char *op_name(const nixl_be_req_t *req)
{
    return req->op == NIXL_WRITE ? "WRITE to" : "READ from";
}

static void req_why(nixl_be_req_t *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The reason of a failure seen on any thread; check_xfer repeats it on the user's thread. */
static void req_why(nixl_be_req_t *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->why, sizeof(req->why), fmt, ap);
    va_end(ap);
}

/* The status a failed post ends with: a peer that is gone (its endpoint failed, or UCX says
 * the connection went) is REMOTE_DISCONNECT. */
static nixl_status_t req_status(const nixl_be_req_t *req, ucs_status_t s)
{
    return atomic_load(&req->conn->failed) ? NIXL_ERR_REMOTE_DISCONNECT : ucx_status(s);
}

/* The last touch of a post: after the store, the request belongs to its owner again. */
void ucx_xfer_finish(nixl_be_req_t *req, nixl_status_t st)
{
    nixl_be_engine_t *eng = req->eng;
    atomic_store_explicit(&req->state, st, memory_order_release);
    ucx_busy_dec(eng);
}

static void notif_done(void *request, ucs_status_t status, void *arg)
{
    nixl_be_req_t *req = arg;
    ucp_request_free(request);
    if (status != UCS_OK)
        req_why(req, "the data of a %s agent '%s' arrived but its notification failed: %s",
                op_name(req), req->conn->name, ucs_status_string(status));
    ucx_xfer_finish(req, status == UCS_OK ? NIXL_SUCCESS : req_status(req, status));
}

/* Every operation of a post has completed: decide, notify (on `worker`, whose thread is
 * here: every endpoint of the conn was flushed, so any of them may carry it), then finish. */
static void data_done(nixl_be_req_t *req, unsigned worker)
{
    size_t failed = atomic_load(&req->nfailed);
    ucs_status_t flush = (ucs_status_t)atomic_load(&req->flush_err);
    if (failed || flush != UCS_OK) {
        ucs_status_t first = failed ? (ucs_status_t)atomic_load(&req->first_err) : flush;
        char at[96] = "";
        size_t refused = atomic_load(&req->sync_fail_at);
        if (refused != SIZE_MAX)
            snprintf(at, sizeof(at), "; descriptor %zu was refused and %zu others not issued",
                     refused, atomic_load(&req->nunissued));
        const char *gone = atomic_load(&req->conn->failed) ? " (the peer is gone)" : "";
        if (failed)
            req_why(req, "%s agent '%s': %zu of %zu operations failed (first: %s)%s%s%s%s",
                    op_name(req), req->conn->name, failed, req->count,
                    ucs_status_string(first), at, flush != UCS_OK ? "; the flush failed: " : "",
                    flush != UCS_OK ? ucs_status_string(flush) : "", gone);
        else
            req_why(req, "%s agent '%s': its %zu operations completed locally but the flush "
                    "that confirms them failed (%s), so they may not have landed%s",
                    op_name(req), req->conn->name, req->count, ucs_status_string(flush), gone);
        ucx_xfer_finish(req, req_status(req, first));
        return;
    }
    if (req->notif_pending) {
        req->notif_pending = false;
        ucs_status_t s = ucx_notif_send(req->conn, worker, req->notif, req->notif_len,
                                        notif_done, req);
        if (s == UCS_INPROGRESS)
            return;
        if (s != UCS_OK) {
            req_why(req, "the data of a %s agent '%s' arrived but its notification could "
                    "not be sent: %s", op_name(req), req->conn->name, ucs_status_string(s));
            ucx_xfer_finish(req, req_status(req, s));
            return;
        }
    }
    ucx_xfer_finish(req, NIXL_SUCCESS);
}

/* `n` operations completed on `worker`, `bad` of them with `status`. The one that completes
 * the last operation of the post goes on with data_done. */
void ucx_ops_done(nixl_be_req_t *req, unsigned worker, size_t n, size_t bad, ucs_status_t status)
{
    if (bad) {
        int ok = UCS_OK;
        atomic_compare_exchange_strong(&req->first_err, &ok, (int)status);
        atomic_fetch_add(&req->nfailed, bad);
    }
    if (atomic_fetch_sub_explicit(&req->pending, n, memory_order_acq_rel) == n) {
        if (req->stage)
            ucx_stage_round_done(req); /* the stage thread goes on with the next round */
        else
            data_done(req, worker);
    }
}

void ucx_xfer_complete(nixl_be_req_t *req, unsigned worker)
{
    data_done(req, worker);
}

static void op_done(void *request, ucs_status_t status, void *arg)
{
    const ucx_chunk_t *chunk = arg;
    ucp_request_free(request);
    ucx_ops_done(chunk->req, chunk->worker, 1, status != UCS_OK, status);
}

static void flush_failed(nixl_be_req_t *req, ucs_status_t status)
{
    int ok = UCS_OK;
    if (status != UCS_OK)
        atomic_compare_exchange_strong(&req->flush_err, &ok, (int)status);
}

static void flush_done(void *request, ucs_status_t status, void *arg)
{
    const ucx_chunk_t *chunk = arg;
    ucp_request_free(request);
    flush_failed(chunk->req, status);
    ucx_ops_done(chunk->req, chunk->worker, 1, 0, UCS_OK);
}

/* "worker_id=N" in the custom parameter picks the shared worker (the reference's option; it
 * also keeps the request whole on that worker); loopback always takes worker 0 (see
 * ucx_conn.c). */
static nixl_status_t pick_worker(nixl_be_engine_t *eng, const ucx_conn_t *conn,
                                 const nixl_be_xfer_opts_t *opts, unsigned *out, bool *chosen)
{
    static const char key[] = "worker_id=";
    *out = ucx_conn_worker(eng, conn);
    *chosen = false;
    if (!opts || !opts->custom_param || opts->custom_param_len < sizeof(key) - 1)
        return NIXL_SUCCESS;
    const char *p = memmem(opts->custom_param, opts->custom_param_len, key, sizeof(key) - 1);
    if (!p)
        return NIXL_SUCCESS;
    const char *end = (const char *)opts->custom_param + opts->custom_param_len;
    uint64_t v = 0;
    const char *d = p + sizeof(key) - 1;
    for (; d < end && *d >= '0' && *d <= '9' && v < UCX_WORKERS_MAX; d++)
        v = v * 10 + (uint64_t)(*d - '0');
    if (d == p + sizeof(key) - 1 || v >= eng->nshared)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "custom parameter worker_id must be a "
                           "worker number below num_workers=%u",
                           eng->nshared);
    if (!conn->is_self)
        *out = (unsigned)v;
    *chosen = true;
    return NIXL_SUCCESS;
}

/* Check every element; count the runs of equal regions (each run holds one reference). */
static nixl_status_t check_elems(nixl_be_engine_t *eng, const nixl_be_desc_t *local,
                                 const nixl_be_desc_t *remote, size_t count, ucx_conn_t *conn,
                                 size_t *nrefs, bool *staged)
{
    *nrefs = 0;
    *staged = false;
    for (size_t i = 0; i < count; i++) {
        const nixl_be_md_t *l = local[i].md, *r = remote[i].md;
        if (!l || l->kind != UCX_MD_LOCAL || l->eng != eng)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: the local memory "
                               "is not registered with this engine",
                               i);
        if (!r || r->kind != UCX_MD_REMOTE || ((const ucx_rmd_t *)r)->conn != conn)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: the remote memory "
                               "is not a region of agent '%s' loaded by this engine",
                               i, conn->name);
        if (((const ucx_rmd_t *)r)->unreachable)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                               "descriptor %zu: the remote memory is GPU memory of agent '%s' "
                               "that its UCX cannot reach (no CUDA support there): let '%s' "
                               "move it from its side (its VRAM to or from our host memory "
                               "is staged), or give it a UCX built with CUDA",
                               i, conn->name, conn->name);
        *staged |= ((const ucx_lmd_t *)l)->staged_gpu >= 0;
        if (local[i].len != remote[i].len)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: local length %zu "
                               "!= remote length %zu",
                               i, local[i].len, remote[i].len);
        if (!i || r != remote[i - 1].md) {
            nixl_status_t st = ucx_rmd_ready(eng, (ucx_rmd_t *)r, i);
            if (st != NIXL_SUCCESS)
                return st;
        }
        *nrefs += (!i || l != local[i - 1].md) + (!i || r != remote[i - 1].md);
    }
    return NIXL_SUCCESS;
}

nixl_status_t ucx_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                            const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                            size_t count, const char *remote_agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out)
{
    if (op != NIXL_READ && op != NIXL_WRITE)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "bad transfer operation %d", (int)op);
    if (!count || !local || !remote || !remote_agent)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "empty transfer or no remote agent");
    const nixl_be_md_t *r0 = remote[0].md;
    if (!r0 || r0->kind != UCX_MD_REMOTE || r0->eng != eng)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "remote descriptor 0 does not carry "
                           "UCX metadata of this engine");
    ucx_conn_t *conn = ((const ucx_rmd_t *)r0)->conn;
    if (strcmp(conn->name, remote_agent))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "the remote descriptors belong to "
                           "'%s', not to '%s'",
                           conn->name, remote_agent);
    unsigned worker;
    bool chosen, staged;
    size_t nrefs;
    nixl_status_t st = ucx_conn_usable(conn, "preparing a transfer with");
    if (st == NIXL_SUCCESS)
        st = pick_worker(eng, conn, opts, &worker, &chosen);
    if (st == NIXL_SUCCESS)
        st = check_elems(eng, local, remote, count, conn, &nrefs, &staged);
    if (st != NIXL_SUCCESS)
        return st;
    if (staged)
        return ucx_stage_prep(eng, op, local, remote, count, conn, worker, nrefs, out);

    if (count > (SIZE_MAX - sizeof(nixl_be_req_t) - UCX_THREADS_MAX * sizeof(ucx_chunk_t)) /
                    (sizeof(ucx_xd_t) + 2 * sizeof(void *)))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "%zu descriptors is too many", count);
    size_t split = chosen ? 0 : ucx_pool_nchunks(eng, conn, count);
    nixl_be_req_t *req = ucx_req_alloc(eng, conn, worker, op, count, nrefs, split ? split : 1);
    if (!req)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory preparing %zu descriptors",
                           count);
    ucx_pool_plan(eng, req, worker, split > 0);
    const ucx_chunk_t *chunk = req->chunks;
    for (size_t i = 0; i < count; i++) {
        if (i == chunk->first + chunk->count)
            chunk++;
        req->xd[i] = (ucx_xd_t){
            .laddr = (void *)local[i].addr,
            .raddr = remote[i].addr,
            .len = local[i].len,
            .memh = ((ucx_lmd_t *)local[i].md)->memh,
            .rkey = ((ucx_rmd_t *)remote[i].md)->rkeys[chunk->worker],
        };
    }
    ucx_req_finish_prep(req, local, remote, count, out);
    return NIXL_SUCCESS;
}

nixl_be_req_t *ucx_req_alloc(nixl_be_engine_t *eng, ucx_conn_t *conn, unsigned worker,
                             nixl_xfer_op_t op, size_t nxd, size_t nrefs, size_t nchunks)
{
    size_t room = nchunks ? nchunks : 1, size = sizeof(nixl_be_req_t);
    const size_t parts[3][2] = {{nxd, sizeof(ucx_xd_t)},
                                {nrefs, sizeof(nixl_be_md_t *)},
                                {room, sizeof(ucx_chunk_t)}};
    for (size_t k = 0; k < 3; k++) {
        if (parts[k][0] > (SIZE_MAX - size) / parts[k][1])
            return NULL;
        size += parts[k][0] * parts[k][1];
    }
    nixl_be_req_t *req = calloc(1, size);
    if (!req)
        return NULL;
    req->eng = eng;
    req->conn = conn;
    req->worker = worker;
    req->op = op;
    req->count = nxd;
    req->refs = (nixl_be_md_t **)(req->xd + nxd);
    req->chunks = (ucx_chunk_t *)(req->refs + nrefs);
    req->nchunks = nchunks;
    return req;
}

void ucx_req_finish_prep(nixl_be_req_t *req, const nixl_be_desc_t *local,
                         const nixl_be_desc_t *remote, size_t count, nixl_be_req_t **out)
{
    nixl_be_engine_t *eng = req->eng;
    for (size_t i = 0; i < count; i++) {
        if (!i || local[i].md != local[i - 1].md)
            req->refs[req->nrefs++] = local[i].md;
        if (!i || remote[i].md != remote[i - 1].md)
            req->refs[req->nrefs++] = remote[i].md;
    }
    for (size_t k = 0; k < req->nrefs; k++)
        ucx_md_ref(req->refs[k]);
    ucx_conn_ref(req->conn, 1);
    atomic_init(&req->state, NIXL_ERR_NOT_POSTED);
    pthread_mutex_lock(&eng->all_lock);
    nixl_list_push(&eng->all_reqs, &req->all);
    pthread_mutex_unlock(&eng->all_lock);
    *out = req;
}

/* Issue the chunk's elements, each with its completion callback, then its flush; returns how
 * many completed (or failed) inside the call - their callbacks never run. A synchronous
 * failure stops there: the elements not issued count as failed, and the post still waits for
 * those issued, so the request never ends while UCX uses its buffers. */
size_t ucx_chunk_issue(ucx_chunk_t *chunk)
{
    nixl_be_req_t *req = chunk->req;
    ucp_ep_h ep = req->conn->eps[chunk->worker];
    const uint32_t mask = UCP_OP_ATTR_FLAG_MULTI_SEND | UCP_OP_ATTR_FIELD_CALLBACK |
                          UCP_OP_ATTR_FIELD_USER_DATA;
    ucp_request_param_t param = {
        .op_attr_mask = mask,
        .cb.send = op_done,
        .user_data = chunk,
    };
    size_t now = 0, end = chunk->first + chunk->count;
    for (size_t i = chunk->first; i < end; i++) {
        const ucx_xd_t *x = &req->xd[i];
        /* staging buffers are not mapped by us: UCX registers them as it needs */
        param.op_attr_mask = x->memh ? mask | UCP_OP_ATTR_FIELD_MEMH : mask;
        param.memh = x->memh;
        ucs_status_ptr_t r = req->op == NIXL_WRITE
                                 ? ucp_put_nbx(ep, x->laddr, x->len, x->raddr, x->rkey, &param)
                                 : ucp_get_nbx(ep, x->laddr, x->len, x->raddr, x->rkey, &param);
        if (UCS_PTR_IS_PTR(r))
            continue;
        now++;
        if (UCS_PTR_IS_ERR(r)) {
            size_t bad = end - i, none = SIZE_MAX;
            atomic_compare_exchange_strong(&req->sync_fail_at, &none, i);
            atomic_fetch_add(&req->nunissued, bad - 1);
            /* never the last: the poster holds one */
            ucx_ops_done(req, chunk->worker, 0, bad, UCS_PTR_STATUS(r));
            now += bad - 1;
            break;
        }
    }
    ucp_request_param_t fp = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA,
        .cb.send = flush_done,
        .user_data = chunk,
    };
    ucs_status_ptr_t r = ucp_ep_flush_nbx(ep, &fp);
    if (!UCS_PTR_IS_PTR(r)) {
        flush_failed(req, UCS_PTR_STATUS(r));
        now++;
    }
    return now;
}

nixl_status_t ucx_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts)
{
    if (atomic_load(&req->state) == NIXL_IN_PROG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REPOST_ACTIVE,
                           "the previous post of this request "
                           "is still completing");
    nixl_status_t st = ucx_conn_usable(req->conn, req->op == NIXL_WRITE ? "WRITE to"
                                                                        : "READ from");
    if (st != NIXL_SUCCESS) {
        atomic_store(&req->state, st);
        return st;
    }
    bool has_notif = opts && opts->has_notif;
    if (has_notif) {
        if (opts->notif_len > UCX_NOTIF_MAX)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "a %zu-byte notification exceeds "
                               "the limit of %zu bytes",
                               opts->notif_len, UCX_NOTIF_MAX);
        size_t need = ucx_notif_size(eng, opts->notif_len);
        if (need > req->notif_cap) {
            uint8_t *p = realloc(req->notif, need);
            if (!p)
                return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory for a notification");
            req->notif = p;
            req->notif_cap = need;
        }
        ucx_notif_write(eng, opts->notif, opts->notif_len, req->notif);
        req->notif_len = need;
    }
    req->notif_pending = has_notif;
    req->why[0] = '\0';
    atomic_store(&req->nunissued, 0);
    atomic_store(&req->sync_fail_at, SIZE_MAX);
    atomic_store(&req->nfailed, 0);
    atomic_store(&req->first_err, UCS_OK);
    atomic_store(&req->flush_err, UCS_OK);
    /* every element, every chunk's flush, and one for this thread until all are issued */
    atomic_store(&req->pending, req->count + req->nchunks + 1);
    atomic_store(&req->state, NIXL_IN_PROG);
    ucx_busy_inc(eng);
    if (req->stage)
        return ucx_stage_post(eng, req); /* rounds: the stage thread's */

    size_t done = 0;
    if (req->chunks[0].worker < eng->nshared) {
        ucx_user_enter(eng, req->chunks[0].worker);
        done = ucx_chunk_issue(&req->chunks[0]); /* whole, on this thread's worker */
        ucx_user_leave(eng, req->chunks[0].worker);
    } else
        ucx_pool_post(eng, req); /* the pool threads count what completed in their calls */
    /* Drop what completed inside the call and this thread's own count: whoever completes the
     * last operation decides, here or in a callback. */
    ucx_ops_done(req, req->worker, done + 1, 0, UCS_OK);
    st = atomic_load_explicit(&req->state, memory_order_acquire);
    if (st == NIXL_IN_PROG)
        ucx_kick(eng); /* operations or the notification are on their way */
    else if (st < 0)
        return NIXL_BE_ERR(eng->host, st, "%s", req->why);
    return st;
}

nixl_status_t ucx_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    nixl_status_t st = atomic_load_explicit(&req->state, memory_order_acquire);
    if (st == NIXL_IN_PROG) {
        ucx_progress_worker(eng, req->worker);
        st = atomic_load_explicit(&req->state, memory_order_acquire);
    }
    if (st == NIXL_IN_PROG && atomic_load(&req->conn->failed))
        /* A peer that stopped answering (ucx_peer_timeout_ms) never completes what it was
         * sent, and UCX may not notice for as long as its kernel keeps TCP alive. Say so now;
         * the request itself stays in flight until the core disconnects the peer, whose
         * forced close makes UCX complete the operations with errors (release waits for it). */
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT,
                           "%s agent '%s': the connection failed (%s) with operations of the "
                           "request in flight: the peer is gone",
                           op_name(req), req->conn->name,
                           ucs_status_string((ucs_status_t)atomic_load(&req->conn->fail_status)));
    if (st < 0 && st != NIXL_ERR_NOT_POSTED && req->why[0])
        return NIXL_BE_ERR(eng->host, st, "%s", req->why);
    return st;
}

void ucx_req_free(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    pthread_mutex_lock(&eng->all_lock);
    nixl_list_remove(&eng->all_reqs, &req->all);
    pthread_mutex_unlock(&eng->all_lock);
    for (size_t k = 0; k < req->nrefs; k++)
        ucx_md_unref(req->refs[k]);
    ucx_conn_unref(req->conn, 1);
    ucx_stage_free(eng, req->stage);
    free(req->notif);
    free(req);
}

nixl_status_t ucx_cancel_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    /* UCX cannot cancel RMA operations in flight: those are waited for. A staged request
     * stops at the end of its round in flight (or never starts if it is still queued). */
    if (req->stage && atomic_load(&req->state) == NIXL_IN_PROG)
        ucx_stage_cancel(eng, req);
    return ucx_check_xfer(eng, req);
}

nixl_status_t ucx_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    /* UCX cannot cancel RMA: give a transfer in flight a moment to end, and refuse to free
     * what UCX may still write into or read from. */
    if (req->stage)
        ucx_stage_cancel(eng, req); /* stops at the end of the round in flight */
    uint64_t deadline = nixl_now_ms() + UCX_RELEASE_WAIT_MS;
    while (atomic_load_explicit(&req->state, memory_order_acquire) == NIXL_IN_PROG) {
        if (nixl_now_ms() >= deadline)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                               "the %s agent '%s' is still in flight "
                               "after %d ms and UCX cannot cancel it; the request stays valid "
                               "(keep its buffers) - release it again later",
                               op_name(req), req->conn->name, UCX_RELEASE_WAIT_MS);
        ucx_progress_worker(eng, req->worker);
        nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    }
    ucx_req_free(eng, req);
    return NIXL_SUCCESS;
}

size_t ucx_reqs_free_all(nixl_be_engine_t *eng)
{
    /* Endpoints were force-closed and the workers drained: UCX completed (purged) every
     * operation. A request whose operations still did not complete is left alone (leaked):
     * a late callback must never find it freed. */
    size_t n = 0, kept = 0;
    nixl_list_node_t *keep = NULL;
    while (eng->all_reqs) {
        nixl_be_req_t *req = nixl_list_entry(eng->all_reqs, nixl_be_req_t, all);
        if (atomic_load_explicit(&req->state, memory_order_acquire) == NIXL_IN_PROG) {
            pthread_mutex_lock(&eng->all_lock);
            nixl_list_remove(&eng->all_reqs, &req->all);
            pthread_mutex_unlock(&eng->all_lock);
            nixl_list_push(&keep, &req->all);
            kept++;
            continue;
        }
        ucx_req_free(eng, req);
        n++;
    }
    if (n)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "%zu transfer request(s) were never released; freed "
                    "at engine destroy",
                    n);
    if (kept)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "%zu transfer request(s) still had operations in UCX at engine destroy; "
                    "their memory is left allocated",
                    kept);
    return kept;
}

nixl_status_t ucx_estimate_cost(nixl_be_engine_t *eng, nixl_be_req_t *req, int64_t *duration_us,
                                int64_t *err_margin_us, nixl_cost_t *method)
{
    nixl_status_t st = ucx_conn_usable(req->conn, "estimating a transfer with");
    if (st != NIXL_SUCCESS)
        return st;
    ucp_ep_h ep = req->conn->eps[req->worker];
    double seconds = 0;
    for (size_t i = 0; i < req->count; i++) {
        ucp_ep_evaluate_perf_param_t p = {.field_mask = UCP_EP_PERF_PARAM_FIELD_MESSAGE_SIZE,
                                          .message_size = req->xd[i].len};
        ucp_ep_evaluate_perf_attr_t a = {.field_mask = UCP_EP_PERF_ATTR_FIELD_ESTIMATED_TIME};
        ucs_status_t s = ucp_ep_evaluate_perf(ep, &p, &a);
        if (s != UCS_OK)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                               "no estimate for descriptor %zu "
                               "(%zu bytes) to agent '%s': ucp_ep_evaluate_perf: %s",
                               i, req->xd[i].len, req->conn->name, ucs_status_string(s));
        seconds += a.estimated_time;
    }
    *duration_us = (int64_t)(seconds * 1e6 + 0.5);
    *err_margin_us = 0; /* UCX gives no error bound */
    *method = NIXL_COST_ANALYTICAL_BACKEND;
    return NIXL_SUCCESS;
}
