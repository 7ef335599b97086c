/*
 * lf_stage.c - local GPU memory over providers that cannot reach it (tcp, shm: no FI_HMEM).
 * The bytes go through two pinned host buffers of this process (the core's staging service,
 * host->gpu), in rounds of LF_STAGE_ROUND bytes, pipelined so that the GPU and the fabric
 * overlap:
 *   WRITE: the GPU fills buffer k % 2 with round k; while round k's writes are on the wire it
 *          already fills the other buffer with round k + 1;
 *   READ:  round k + 1's reads land in one buffer while the GPU empties the other (round k).
 * Both buffers are registered on every rail at prep. Each round is a request of its own (a
 * child: `parent` set, parts cut once at prep from the round's pieces and the peer's regions),
 * posted and tracked as any request, except that its end (lf_req_ops_done) wakes the stage
 * thread instead of finishing anything. The parent has no parts: it is SUCCESS only after
 * every round's operations completed and (READ) the last GPU copy finished; its notification
 * is sent after that.
 *
 * One stage thread per engine (a job queue, util/jobq.h), started by the first staged post,
 * runs one request's rounds at a time; it sleeps on the queue's condition variable (a round's
 * end, a peer's failure, a new request, the engine's end), never spins. A request is stopped
 * (cancel, release) between rounds; a round's operations are never abandoned: while libfabric
 * holds one, the request stays busy and cannot be freed or posted again, and no GPU copy
 * outlives a run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_priv.h"

/* Bytes per round: several RMA messages' worth, so that a round's writes keep the wire busy
 * while the GPU fills the other buffer, and few enough to keep two pinned buffers small. */
#define LF_STAGE_ROUND ((size_t)4 << 20)

struct lf_stage {
    nixl_gpu_stage_t *gs;
    size_t nrounds;
    nixl_be_req_t **round; /* round k's request: its pieces between buffer k % 2 and the peer */
    lf_lmd_t *buf[2];      /* the pinned buffers, registered on every rail */
    atomic_bool cancel;
    nixl_fifo_node_t job;  /* in the stage thread's queue */
    nixl_be_req_t *req;
};

static const nixl_gpu_ops_t *gpu_ops(nixl_be_engine_t *eng)
{
    return nixl_host_gpu(eng->host);
}

void lf_stage_free(nixl_be_engine_t *eng, struct lf_stage *st)
{
    if (!st)
        return;
    for (size_t k = 0; st->round && k < st->nrounds; k++)
        if (st->round[k])
            lf_req_free(st->round[k]);
    free(st->round);
    for (int b = 0; b < 2; b++)
        if (st->buf[b])
            lf_md_unref(&st->buf[b]->hdr);
    if (st->gs)
        gpu_ops(eng)->stage_destroy(st->gs); /* waits for its GPU copies */
    free(st);
}

/* Round k's request: `n` pieces of the staging plan, each paired with the peer's region of the
 * element it comes from (elements are cut where a round ends; the pieces keep their order). */
typedef struct walk {
    const nixl_be_desc_t *local, *remote;
    size_t count, elem;
    uint64_t left; /* bytes of element `elem` not yet in a piece */
} walk_t;

static nixl_status_t round_prep(nixl_be_engine_t *eng, nixl_be_req_t *req, size_t k, walk_t *w,
                                nixl_be_desc_t *ld, nixl_be_desc_t *rd)
{
    lf_stage_t *st = req->stage;
    size_t n;
    const nixl_gpu_seg_t *p = gpu_ops(eng)->stage_pieces(st->gs, k, &n);
    for (size_t j = 0; j < n; j++) {
        while (w->left == 0 && w->elem + 1 < w->count)
            w->left = w->local[++w->elem].len;
        /* WRITE: {far, buffer}; READ: {buffer, far} */
        uint64_t buf = req->op == NIXL_WRITE ? p[j].src : p[j].dst;
        uint64_t far = req->op == NIXL_WRITE ? p[j].dst : p[j].src;
        ld[j] = (nixl_be_desc_t){(uintptr_t)buf, (size_t)p[j].len, 0, &st->buf[k % 2]->hdr};
        rd[j] = (nixl_be_desc_t){(uintptr_t)far, (size_t)p[j].len, w->remote[w->elem].dev_id,
                                 w->remote[w->elem].md};
        w->left -= p[j].len;
    }
    nixl_be_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    r->eng = eng;
    atomic_fetch_add(&req->conn->refs, 1);
    r->conn = req->conn;
    r->op = req->op;
    r->count = n;
    r->parent = req;
    atomic_init(&r->state, NIXL_ERR_NOT_POSTED);
    st->round[k] = r;
    return lf_req_parts(eng, r, ld, rd, n);
}

nixl_status_t lf_stage_prep(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                            size_t count)
{
    const nixl_gpu_ops_t *g = gpu_ops(eng);
    if (!g)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED, "GPU memory without a CUDA driver");
    nixl_gpu_seg_t *segs = malloc(count * sizeof(*segs));
    lf_stage_t *st = calloc(1, sizeof(*st));
    if (!segs || !st) {
        free(segs);
        free(st);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory staging %zu elements",
                           count);
    }
    req->stage = st; /* freed with the request from here on */
    st->req = req;
    int device = -1;
    unsigned flags = 0;
    for (size_t i = 0; i < count; i++) {
        int gi = lf_md_gpu(local[i].md);
        if (gi < 0)
            flags |= NIXL_GPU_BATCH_PAGEABLE; /* host memory in the list: the driver copies */
        else
            device = gi; /* one GPU (checked by the caller) */
        segs[i] = req->op == NIXL_WRITE
                      ? (nixl_gpu_seg_t){remote[i].addr, local[i].addr, local[i].len}
                      : (nixl_gpu_seg_t){local[i].addr, remote[i].addr, local[i].len};
    }
    nixl_gpu_err_t err;
    nixl_status_t s = g->stage_create(device, req->op == NIXL_WRITE, segs, count, LF_STAGE_ROUND,
                                      flags, 0, &st->gs, &err);
    free(segs);
    if (s != NIXL_SUCCESS)
        return NIXL_BE_ERR(eng->host, s, "staging GPU memory through pinned buffers: %s",
                           err.msg);
    st->nrounds = g->stage_rounds(st->gs);
    st->round = calloc(st->nrounds ? st->nrounds : 1, sizeof(*st->round));
    if (!st->round)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    /* Round b < 2 starts at the beginning of buffer b: its first piece gives the buffer. */
    size_t maxn = 0;
    for (size_t k = 0; k < st->nrounds; k++) {
        size_t n;
        const nixl_gpu_seg_t *p = g->stage_pieces(st->gs, k, &n);
        maxn = n > maxn ? n : maxn;
        if (k >= 2)
            continue;
        uintptr_t base = (uintptr_t)(req->op == NIXL_WRITE ? p[0].src : p[0].dst);
        s = lf_reg_host(eng, base, LF_STAGE_ROUND, "a staging buffer", &st->buf[k]);
        if (s != NIXL_SUCCESS)
            return s;
    }
    nixl_be_desc_t *ld = malloc((maxn ? maxn : 1) * 2 * sizeof(*ld)), *rd = ld + maxn;
    if (!ld)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    walk_t w = {local, remote, count, 0, count ? local[0].len : 0};
    for (size_t k = 0; s == NIXL_SUCCESS && k < st->nrounds; k++)
        s = round_prep(eng, req, k, &w, ld, rd);
    free(ld);
    return s;
}

/* ---- the stage thread ---- */

static nixl_status_t gpu_step(nixl_be_req_t *req, bool post, size_t k)
{
    const nixl_gpu_ops_t *g = gpu_ops(req->eng);
    nixl_gpu_err_t err;
    nixl_status_t s = post ? g->stage_post(req->stage->gs, k, &err)
                           : g->stage_wait(req->stage->gs, k, &err);
    if (s != NIXL_SUCCESS)
        snprintf(req->why, sizeof(req->why), "%s agent '%s': the GPU copy of round %zu of %zu: %s",
                 req->op == NIXL_WRITE ? "WRITE to" : "READ from", req->conn->name, k,
                 req->stage->nrounds, err.msg);
    return s;
}

void lf_stage_round_end(nixl_be_req_t *round, nixl_status_t st)
{
    nixl_jobq_t *q = &round->eng->stage;
    pthread_mutex_lock(&q->lock);
    atomic_store(&round->state, st); /* the last touch of the round: it may be freed now */
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void lf_stage_wake(nixl_be_engine_t *eng)
{
    nixl_jobq_wake(&eng->stage);
}

/* Post round k's operations and sleep until they all ended (or the peer failed, or the engine
 * stops: the round's operations may then still be held by libfabric, which keeps the request
 * busy). */
static nixl_status_t net_round(nixl_be_req_t *req, size_t k)
{
    nixl_be_engine_t *eng = req->eng;
    nixl_jobq_t *q = &eng->stage;
    nixl_be_req_t *r = req->stage->round[k];
    lf_req_start(eng, r);
    pthread_mutex_lock(&q->lock);
    while (atomic_load(&r->state) == NIXL_IN_PROG && !nixl_jobq_stopping(q) &&
           !atomic_load(&req->conn->failed))
        pthread_cond_wait(&q->cond, &q->lock);
    nixl_status_t s = atomic_load(&r->state);
    bool stopping = nixl_jobq_stopping(q);
    pthread_mutex_unlock(&q->lock);
    if (s == NIXL_SUCCESS)
        return s;
    const char *what = r->why;
    if (s == NIXL_IN_PROG) {
        s = stopping ? NIXL_ERR_BACKEND : NIXL_ERR_REMOTE_DISCONNECT;
        what = stopping ? "the engine is being destroyed" : req->conn->why;
    }
    snprintf(req->why, sizeof(req->why), "staged round %zu of %zu: %s", k, req->stage->nrounds,
             what);
    return s;
}

static nixl_status_t canceled(nixl_be_req_t *req, size_t k)
{
    if (!atomic_load(&req->stage->cancel))
        return NIXL_SUCCESS;
    snprintf(req->why, sizeof(req->why), "the transfer was canceled after %zu of %zu rounds", k,
             req->stage->nrounds);
    return NIXL_ERR_CANCELED;
}

static void stage_finish(nixl_be_engine_t *eng, nixl_be_req_t *req, nixl_status_t s)
{
    nixl_jobq_job_over(&eng->stage, &req->stage->job); /* before the end can be seen */
    if (s == NIXL_SUCCESS && req->has_notif) {
        lf_rail_post_job(&eng->rails[0], &req->notif); /* its completion ends the request */
        return;
    }
    atomic_store(&req->state, s);
}

/* Run every round of a posted request, then end it (the stage thread's job). */
static void stage_run(void *owner, nixl_fifo_node_t *job)
{
    nixl_be_engine_t *eng = owner;
    lf_stage_t *st = nixl_list_entry(job, lf_stage_t, job);
    nixl_be_req_t *req = st->req;
    size_t n = st->nrounds;
    nixl_status_t s = NIXL_SUCCESS;
    if (req->op == NIXL_WRITE) {
        if (n)
            s = gpu_step(req, true, 0);
        for (size_t k = 0; s == NIXL_SUCCESS && k < n; k++) {
            if (k && (s = canceled(req, k)) != NIXL_SUCCESS)
                break;
            s = gpu_step(req, false, k); /* round k is in buffer k % 2 */
            /* round k + 1 goes into the buffer whose writes (round k - 1) were waited for */
            if (s == NIXL_SUCCESS && k + 1 < n)
                s = gpu_step(req, true, k + 1);
            if (s == NIXL_SUCCESS)
                s = net_round(req, k);
        }
    } else {
        if (n)
            s = net_round(req, 0);
        for (size_t k = 0; s == NIXL_SUCCESS && k < n; k++) {
            s = gpu_step(req, true, k); /* buffer k % 2 to the GPU */
            if (s == NIXL_SUCCESS && k >= 1)
                s = gpu_step(req, false, k - 1);
            /* round k + 1's reads go into the buffer round k - 1's copy emptied */
            if (s == NIXL_SUCCESS && k + 1 < n && (s = canceled(req, k + 1)) == NIXL_SUCCESS)
                s = net_round(req, k + 1);
        }
        if (s == NIXL_SUCCESS && n)
            s = gpu_step(req, false, n - 1);
    }
    if (s != NIXL_SUCCESS) { /* no GPU copy outlives the run */
        nixl_gpu_err_t err;
        for (size_t k = 0; k < n; k++)
            gpu_ops(eng)->stage_wait(st->gs, k, &err);
    }
    stage_finish(eng, req, s);
}

void lf_stage_init(nixl_be_engine_t *eng)
{
    nixl_jobq_init(&eng->stage, "lf-stage", stage_run, eng);
}

nixl_status_t lf_stage_post(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    lf_stage_t *st = req->stage;
    atomic_store(&st->cancel, false);
    atomic_store(&req->state, NIXL_IN_PROG);
    int rc = nixl_jobq_push(&eng->stage, &st->job);
    if (rc != 0) {
        snprintf(req->why, sizeof(req->why), "cannot start the staging thread: %s",
                 strerror(rc));
        atomic_store(&req->state, NIXL_ERR_BACKEND);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "%s", req->why);
    }
    return NIXL_IN_PROG;
}

void lf_stage_cancel(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    lf_stage_t *st = req->stage;
    atomic_store(&st->cancel, true);
    if (!nixl_jobq_take_back(&eng->stage, &st->job))
        return; /* running (it stops after its round) or not posted */
    snprintf(req->why, sizeof(req->why), "the transfer was canceled before it started");
    atomic_store(&req->state, NIXL_ERR_CANCELED);
}

bool lf_stage_busy(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    lf_stage_t *st = req->stage;
    bool busy = nixl_jobq_busy(&eng->stage, &st->job);
    /* A round whose operations libfabric still holds, or whose end is being written. */
    pthread_mutex_lock(&eng->stage.lock);
    for (size_t k = 0; !busy && k < st->nrounds; k++)
        busy = atomic_load(&st->round[k]->pending) ||
               atomic_load(&st->round[k]->state) == NIXL_IN_PROG;
    pthread_mutex_unlock(&eng->stage.lock);
    return busy;
}

void lf_stage_stop(nixl_be_engine_t *eng)
{
    nixl_jobq_stop(&eng->stage);
}
