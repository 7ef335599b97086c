/*
 * ucx_stage.c - local GPU memory over a UCX that cannot see it (no CUDA support: Debian's UCX,
 * the accelerator machine's): the bytes go through two pinned host buffers of this process
 * (host->gpu staging), in rounds, pipelined so that the GPU and the network overlap:
 *   WRITE: the GPU fills buffer k % 2 with round k and, while round k's puts are on the wire,
 *          already fills the other buffer with round k + 1;
 *   READ:  round k + 1's gets land in one buffer while the GPU empties the other (round k).
 * A staged request is an ordinary request whose elements are the rounds' pieces (from or to a
 * pinned buffer) and whose chunks are the rounds: each round is issued with its flush and
 * tracked to its completion by the same callbacks (ucx_ops_done), which here wake the stage
 * thread instead of ending the request. After the last round the request ends as any other
 * (ucx_xfer_complete: SUCCESS only if every operation of every round succeeded, then the
 * notification). One stage thread per engine (a job queue, util/jobq.h) runs the rounds of
 * one request at a time; it sleeps on the queue's condition variable, never spins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ucx_priv.h"

/* Bytes per round: a few network operations' worth, so a round's puts keep the wire busy
 * while the GPU fills the other buffer. */
#define UCX_STAGE_ROUND ((size_t)4 << 20)

struct ucx_stage {
    nixl_gpu_stage_t *gs;
    size_t nrounds;
    atomic_bool cancel;
    bool round_done;      /* the job queue's lock */
    nixl_fifo_node_t job; /* in the stage thread's queue */
    nixl_be_req_t *req;
};

nixl_status_t ucx_stage_prep(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                             const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                             size_t count, ucx_conn_t *conn, unsigned worker, size_t nrefs,
                             nixl_be_req_t **out)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    if (!g || g->device_count() == 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED, "VRAM without a GPU");
    int device = -1;
    nixl_gpu_seg_t *segs = malloc(count * sizeof(*segs));
    if (!segs)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory staging %zu descriptors",
                           count);
    unsigned flags = 0;
    for (size_t i = 0; i < count; i++) {
        const ucx_lmd_t *l = (const ucx_lmd_t *)local[i].md;
        if (l->staged_gpu < 0) {
            flags |= NIXL_GPU_BATCH_PAGEABLE; /* host memory in the list: the driver copies */
        } else if (device >= 0 && l->staged_gpu != device) {
            free(segs);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: GPU %d, but earlier descriptors are on GPU %d: "
                               "a request moves the memory of one GPU; split the list per GPU",
                               i, l->staged_gpu, device);
        } else {
            device = l->staged_gpu;
        }
        /* GPU side and far (network) side: WRITE GPU -> far, READ far -> GPU */
        segs[i] = op == NIXL_WRITE
                      ? (nixl_gpu_seg_t){remote[i].addr, local[i].addr, local[i].len}
                      : (nixl_gpu_seg_t){local[i].addr, remote[i].addr, local[i].len};
    }
    struct ucx_stage *st = calloc(1, sizeof(*st));
    nixl_gpu_err_t err;
    nixl_status_t s = st ? g->stage_create(device, op == NIXL_WRITE, segs, count,
                                           UCX_STAGE_ROUND, flags, 0, &st->gs, &err)
                         : NIXL_ERR_UNKNOWN;
    free(segs);
    if (s != NIXL_SUCCESS) {
        free(st);
        return s == NIXL_ERR_UNKNOWN && !st
                   ? NIXL_BE_ERR(eng->host, s, "out of memory staging a request")
                   : NIXL_BE_ERR(eng->host, s, "staging VRAM through pinned memory: %s",
                                 err.msg);
    }
    st->nrounds = g->stage_rounds(st->gs);
    size_t npieces = 0;
    for (size_t k = 0; k < st->nrounds; k++) {
        size_t n;
        g->stage_pieces(st->gs, k, &n);
        npieces += n;
    }
    nixl_be_req_t *req = ucx_req_alloc(eng, conn, worker, op, npieces, nrefs, st->nrounds);
    if (!req) {
        ucx_stage_free(eng, st);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory staging %zu descriptors",
                           count);
    }
    req->stage = st;
    st->req = req;
    /* The pieces come in element order, an element cut where a round ends: walk both to give
     * each piece its element's remote key. */
    size_t elem = 0, at = 0;
    uint64_t left = count ? local[0].len : 0;
    for (size_t k = 0; k < st->nrounds; k++) {
        size_t n;
        const nixl_gpu_seg_t *p = g->stage_pieces(st->gs, k, &n);
        req->chunks[k] = (ucx_chunk_t){.req = req, .first = at, .count = n, .worker = worker};
        for (size_t i = 0; i < n; i++, at++) {
            while (left == 0 && elem + 1 < count)
                left = local[++elem].len;
            const ucx_rmd_t *r = (const ucx_rmd_t *)remote[elem].md;
            uint64_t buf = op == NIXL_WRITE ? p[i].src : p[i].dst;
            uint64_t far = op == NIXL_WRITE ? p[i].dst : p[i].src;
            req->xd[at] = (ucx_xd_t){.laddr = (void *)(uintptr_t)buf, .raddr = far,
                                     .len = (size_t)p[i].len, .rkey = r->rkeys[worker]};
            left -= p[i].len;
        }
    }
    ucx_req_finish_prep(req, local, remote, count, out);
    return NIXL_SUCCESS;
}

void ucx_stage_free(nixl_be_engine_t *eng, struct ucx_stage *st)
{
    if (!st)
        return;
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    if (st->gs && g)
        g->stage_destroy(st->gs);
    free(st);
}

void ucx_stage_round_done(nixl_be_req_t *req)
{
    nixl_jobq_t *q = &req->eng->stage;
    pthread_mutex_lock(&q->lock);
    req->stage->round_done = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/* Issue round k's operations and its flush; wait (asleep) until all completed. False when one
 * failed or the engine stops. */
static bool net_round(nixl_be_req_t *req, size_t k)
{
    nixl_be_engine_t *eng = req->eng;
    nixl_jobq_t *q = &eng->stage;
    ucx_chunk_t *c = &req->chunks[k];
    pthread_mutex_lock(&q->lock);
    req->stage->round_done = false;
    pthread_mutex_unlock(&q->lock);
    atomic_store(&req->pending, c->count + 2); /* operations, the flush, this thread */
    ucx_user_enter(eng, c->worker);
    size_t done = ucx_chunk_issue(c);
    ucx_user_leave(eng, c->worker);
    ucx_ops_done(req, c->worker, done + 1, 0, UCS_OK);
    ucx_kick(eng);
    pthread_mutex_lock(&q->lock);
    while (!req->stage->round_done && !nixl_jobq_stopping(q)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L; /* look at the peer now and then */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q->cond, &q->lock, &ts);
    }
    bool finished = req->stage->round_done;
    pthread_mutex_unlock(&q->lock);
    return finished && !atomic_load(&req->nfailed) &&
           (ucs_status_t)atomic_load(&req->flush_err) == UCS_OK;
}

static bool gpu_step(nixl_be_req_t *req, bool post, size_t k)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(req->eng->host);
    nixl_gpu_err_t err;
    nixl_status_t st = post ? g->stage_post(req->stage->gs, k, &err)
                            : g->stage_wait(req->stage->gs, k, &err);
    if (st != NIXL_SUCCESS)
        snprintf(req->why, sizeof(req->why), "%s agent '%s': staged round %zu of %zu: %s",
                 req->op == NIXL_WRITE ? "WRITE to" : "READ from", req->conn->name, k,
                 req->stage->nrounds, err.msg);
    return st == NIXL_SUCCESS;
}

/* Run every round of a posted staged request, then end it (the stage thread's job). */
static void stage_run(void *owner, nixl_fifo_node_t *job)
{
    (void)owner;
    struct ucx_stage *st = nixl_list_entry(job, struct ucx_stage, job);
    nixl_be_req_t *req = st->req;
    size_t n = st->nrounds;
    bool ok = true, gpu_ok = true, gpu_busy = false;
    if (req->op == NIXL_WRITE) {
        ok = gpu_ok = n == 0 || gpu_step(req, true, 0);
        for (size_t k = 0; ok && k < n && !atomic_load(&st->cancel); k++) {
            ok = gpu_ok = gpu_step(req, false, k);
            /* round k + 1 goes into the buffer round k - 1's puts (waited for) left */
            if (ok && k + 1 < n)
                ok = gpu_ok = gpu_step(req, true, k + 1);
            gpu_busy = ok && k + 1 < n;
            if (ok)
                ok = net_round(req, k);
        }
    } else {
        ok = n == 0 || net_round(req, 0);
        for (size_t k = 0; ok && k < n && !atomic_load(&st->cancel); k++) {
            ok = gpu_ok = gpu_step(req, true, k);
            gpu_busy = ok;
            /* round k + 1's gets go into the buffer the GPU emptied for round k - 1 */
            if (ok && k >= 1)
                ok = gpu_ok = gpu_step(req, false, k - 1);
            if (ok && k + 1 < n)
                ok = net_round(req, k + 1);
        }
        if (ok && n && !atomic_load(&st->cancel)) {
            ok = gpu_ok = gpu_step(req, false, n - 1);
            gpu_busy = false;
        }
    }
    if (gpu_busy) /* never end while the GPU still writes into a buffer */
        for (size_t k = 0; k < n; k++)
            gpu_step(req, false, k);
    if (!gpu_ok) {
        ucx_xfer_finish(req, NIXL_ERR_BACKEND);
    } else if (ok && atomic_load(&st->cancel)) {
        snprintf(req->why, sizeof(req->why), "the transfer was canceled between rounds");
        ucx_xfer_finish(req, NIXL_ERR_CANCELED);
    } else {
        ucx_xfer_complete(req, req->worker); /* errors of operations, or the notification */
    }
}

void ucx_stage_init(nixl_be_engine_t *eng)
{
    nixl_jobq_init(&eng->stage, "ucx-stage", stage_run, eng);
}

nixl_status_t ucx_stage_post(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    atomic_store(&req->stage->cancel, false);
    int rc = nixl_jobq_push(&eng->stage, &req->stage->job);
    if (rc != 0) {
        snprintf(req->why, sizeof(req->why), "cannot start the staging thread: %s",
                 strerror(rc));
        ucx_xfer_finish(req, NIXL_ERR_BACKEND);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "%s", req->why);
    }
    return NIXL_IN_PROG;
}

void ucx_stage_cancel(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    atomic_store(&req->stage->cancel, true);
    if (nixl_jobq_take_back(&eng->stage, &req->stage->job)) { /* never started */
        snprintf(req->why, sizeof(req->why), "the transfer was canceled before it started");
        ucx_xfer_finish(req, NIXL_ERR_CANCELED);
    }
}

void ucx_stage_stop(nixl_be_engine_t *eng)
{
    nixl_jobq_stop(&eng->stage);
}
