/*
 * lf_xfer.c - transfers: a request is cut once, at prep, into per-rail parts of RMA messages
 * (fi_writemsg / fi_readmsg of up to the provider's iov limit of elements each); a post hands
 * the parts to the rail threads (lf_rail.c) and never waits. Local GPU memory goes through
 * pinned buffers in rounds (lf_stage.c). Loopback (the own agent) is a copy (a GPU batch when
 * GPU memory is in it). Notifications: lf_wire.c's message, sent on rail 0 after every
 * operation completed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_priv.h"

#define LF_RELEASE_WAIT_MS 200

static const char *op_name(const nixl_be_req_t *req)
{
    return req->op == NIXL_WRITE ? "WRITE to" : "READ from";
}

void lf_req_free(nixl_be_req_t *req)
{
    if (req->gpu_batch)
        nixl_host_gpu(req->eng->host)->batch_destroy(req->gpu_batch); /* waits for a copy */
    lf_stage_free(req->eng, req->stage); /* its rounds' requests first: they use its buffers */
    for (size_t i = 0; i < req->nrefs; i++)
        lf_md_unref(req->refs[i]);
    for (unsigned r = 0; r < req->nparts; r++) {
        free(req->parts[r].iov);
        free(req->parts[r].rma);
    }
    lf_conn_unref(req->conn);
    free(req->refs);
    free(req->pairs);
    free(req->notif.msg);
    free(req);
}

/* Hold each run of equal regions once (a request keeps what it points into alive). */
static bool hold_refs(nixl_be_req_t *req, const nixl_be_desc_t *local,
                      const nixl_be_desc_t *remote, size_t count)
{
    size_t n = 0;
    for (int side = 0; side < 2; side++) {
        const nixl_be_desc_t *d = side ? remote : local;
        for (size_t i = 0; i < count; i++)
            n += !i || d[i].md != d[i - 1].md;
    }
    req->refs = n ? malloc(n * sizeof(*req->refs)) : NULL;
    if (n && !req->refs)
        return false;
    for (int side = 0; side < 2; side++) {
        const nixl_be_desc_t *d = side ? remote : local;
        for (size_t i = 0; i < count; i++)
            if (!i || d[i].md != d[i - 1].md) {
                lf_md_ref(d[i].md);
                req->refs[req->nrefs++] = d[i].md;
            }
    }
    return true;
}

/* The rail of element i (when it is not striped) under the engine's parameters. */
static unsigned elem_rail(const nixl_be_engine_t *eng, unsigned nr, size_t i, size_t count)
{
    if (nr < 2 || count < eng->params.split_batch_size)
        return 0;
    return (unsigned)((i * nr) / count);
}

/* Pieces of element i on rail r: striped elements go over every rail, pieces longer than
 * the provider's message limit are cut. `fn` sees each piece (offset, length). */
typedef void (*piece_fn)(void *arg, unsigned rail, size_t i, size_t off, size_t len);

static void for_pieces(const nixl_be_engine_t *eng, unsigned nr, const nixl_be_desc_t *local,
                       size_t count, piece_fn fn, void *arg)
{
    for (size_t i = 0; i < count; i++) {
        size_t len = local[i].len;
        bool stripe = nr > 1 && len >= eng->params.striping_threshold && len >= nr;
        unsigned parts = stripe ? nr : 1;
        size_t step = (len + parts - 1) / parts;
        for (unsigned k = 0, r; k < parts; k++) {
            r = stripe ? k : elem_rail(eng, nr, i, count);
            size_t off = (size_t)k * step, plen = off >= len ? 0 : len - off;
            if (plen > step)
                plen = step;
            uint64_t max = eng->rails[r].max_msg;
            for (size_t o = 0; o < plen; o += max)
                fn(arg, r, i, off + o, plen - o < max ? plen - o : (size_t)max);
        }
    }
}

static void count_piece(void *arg, unsigned rail, size_t i, size_t off, size_t len)
{
    (void)i, (void)off, (void)len;
    ((size_t *)arg)[rail]++;
}

typedef struct fill_arg {
    nixl_be_req_t *req;
    const nixl_be_desc_t *local, *remote;
} fill_arg_t;

static void fill_piece(void *varg, unsigned rail, size_t i, size_t off, size_t len)
{
    fill_arg_t *a = varg;
    lf_part_t *p = &a->req->parts[rail];
    const lf_lmd_t *l = (const lf_lmd_t *)a->local[i].md;
    const lf_rmd_t *m = (const lf_rmd_t *)a->remote[i].md;
    size_t k = p->nel++;
    p->iov[k] = (struct iovec){(void *)(a->local[i].addr + off), len};
    p->desc[k] = l->desc[rail];
    uint64_t raddr = a->remote[i].addr + off;
    p->riov[k] = (struct fi_rma_iov){
        .addr = m->ri.virt_addr ? raddr : raddr - m->ri.base, .len = len, .key = m->ri.key[rail]};
}

/* The one GPU of a list's GPU memory (-1: none); an error when there are two. */
static nixl_status_t list_gpu(nixl_be_engine_t *eng, const nixl_be_desc_t *d, size_t count,
                              int *device)
{
    for (size_t i = 0; i < count; i++) {
        int g = lf_md_gpu(d[i].md);
        if (g < 0 || g == *device)
            continue;
        if (*device >= 0)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "element %zu is memory of GPU %d, an earlier one of GPU %d: a "
                               "request moves the memory of one GPU; split the list per GPU",
                               i, g, *device);
        *device = g;
    }
    return NIXL_SUCCESS;
}

/* Loopback with GPU memory on either side: one GPU batch, run by each post. */
static nixl_status_t prep_loopback_gpu(nixl_be_engine_t *eng, nixl_be_req_t *req, int device,
                                       bool host)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    if (!g)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED, "GPU memory without a CUDA driver");
    nixl_gpu_seg_t *segs = malloc(req->count * sizeof(*segs));
    if (!segs)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    for (size_t i = 0; i < req->count; i++)
        segs[i] = (nixl_gpu_seg_t){(uintptr_t)req->pairs[i].dst, (uintptr_t)req->pairs[i].src,
                                   req->pairs[i].len};
    nixl_gpu_err_t err;
    /* Host memory in the list may be pageable: the driver then copies (a kernel cannot). */
    nixl_status_t st = g->batch_create(device, segs, req->count,
                                       host ? NIXL_GPU_BATCH_PAGEABLE : 0, 0, &req->gpu_batch,
                                       &err);
    free(segs);
    if (st != NIXL_SUCCESS)
        return NIXL_BE_ERR(eng->host, st, "a copy with GPU memory: %s", err.msg);
    return NIXL_SUCCESS;
}

static nixl_status_t prep_loopback(nixl_be_engine_t *eng, nixl_be_req_t *req,
                                   const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                                   size_t count)
{
    req->pairs = count ? calloc(count, sizeof(*req->pairs)) : NULL;
    if (count && !req->pairs)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    bool gpu = false, host = false;
    for (size_t i = 0; i < count; i++) {
        if (remote[i].md->kind != LF_MD_LOCAL)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "element %zu: the target is not a local region", i);
        void *l = (void *)local[i].addr, *r = (void *)remote[i].addr;
        req->pairs[i] = req->op == NIXL_WRITE ? (struct lf_pair){r, l, local[i].len}
                                              : (struct lf_pair){l, r, local[i].len};
        int lg = lf_md_gpu(local[i].md), rg = lf_md_gpu(remote[i].md);
        gpu = gpu || lg >= 0 || rg >= 0;
        host = host || lg < 0 || rg < 0;
    }
    int device = -1;
    nixl_status_t st = NIXL_SUCCESS;
    if (gpu && (st = list_gpu(eng, local, count, &device)) == NIXL_SUCCESS &&
        (st = list_gpu(eng, remote, count, &device)) == NIXL_SUCCESS)
        st = prep_loopback_gpu(eng, req, device, host);
    return st;
}

nixl_status_t lf_req_parts(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                           size_t count)
{
    lf_conn_t *c = req->conn;
    size_t per_rail[LF_RAILS_MAX] = {0};
    for_pieces(eng, c->nrails, local, count, count_piece, per_rail);
    req->nparts = c->nrails;
    for (unsigned r = 0; r < c->nrails; r++) {
        lf_part_t *p = &req->parts[r];
        size_t n = per_rail[r], iov_n = eng->rails[r].iov_n;
        p->req = req;
        p->rail = r;
        p->nrma = (n + iov_n - 1) / iov_n;
        if (!n)
            continue;
        /* one block: iov, riov, desc */
        p->iov = malloc(n * (sizeof(struct iovec) + sizeof(struct fi_rma_iov) + sizeof(void *)));
        p->rma = calloc(p->nrma, sizeof(*p->rma));
        if (!p->iov || !p->rma)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
        p->riov = (struct fi_rma_iov *)(p->iov + n);
        p->desc = (void **)(p->riov + n);
        for (size_t k = 0; k < p->nrma; k++) {
            size_t first = k * iov_n;
            p->rma[k] = (lf_rma_t){.ctx.kind = LF_OP_RMA, .req = req, .rail = r,
                                   .first = (uint32_t)first,
                                   .n = (uint32_t)(n - first < iov_n ? n - first : iov_n)};
        }
    }
    fill_arg_t a = {req, local, remote};
    for_pieces(eng, c->nrails, local, count, fill_piece, &a);
    return NIXL_SUCCESS;
}

static nixl_status_t prep_parts(nixl_be_engine_t *eng, nixl_be_req_t *req,
                                const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                                size_t count)
{
    lf_conn_t *c = req->conn;
    int device = -1;
    for (size_t i = 0; i < count; i++) {
        if (local[i].md->kind != LF_MD_LOCAL || remote[i].md->kind != LF_MD_REMOTE ||
            ((const lf_rmd_t *)remote[i].md)->conn != c)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "element %zu: not a local region and a region of agent '%s'", i,
                               c->name);
        if (((const lf_rmd_t *)remote[i].md)->ri.staged)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                               "element %zu: the remote memory is GPU memory of agent '%s', "
                               "which LIBFABRIC cannot reach (provider %s has no GPU support; "
                               "'%s' stages its GPU memory itself): put host memory (DRAM) on "
                               "the far side and let '%s' move its GPU memory, or use UCX",
                               i, c->name, eng->prov, c->name, c->name);
        if (local[i].len != remote[i].len)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "element %zu: lengths differ (%zu and %zu)", i, local[i].len,
                               remote[i].len);
    }
    nixl_status_t st = list_gpu(eng, local, count, &device);
    if (st != NIXL_SUCCESS)
        return st;
    return device >= 0 ? lf_stage_prep(eng, req, local, remote, count)
                       : lf_req_parts(eng, req, local, remote, count);
}

nixl_status_t lf_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op, const nixl_be_desc_t *local,
                           const nixl_be_desc_t *remote, size_t count, const char *remote_agent,
                           const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out)
{
    (void)opts;
    if (op != NIXL_WRITE && op != NIXL_READ)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "unknown operation %d", (int)op);
    bool self = strcmp(remote_agent, eng->name) == 0;
    lf_conn_t *c = self ? NULL : lf_conn_get(eng, remote_agent);
    if (!self && !c)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND,
                           "no connection info of agent '%s' is loaded", remote_agent);
    if (c && atomic_load(&c->failed)) {
        nixl_status_t st = NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s': %s",
                                       c->name, c->why);
        lf_conn_unref(c);
        return st;
    }
    nixl_be_req_t *req = calloc(1, sizeof(*req));
    if (!req) {
        lf_conn_unref(c);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    req->eng = eng;
    req->conn = c;
    req->op = op;
    req->count = count;
    atomic_init(&req->state, NIXL_ERR_NOT_POSTED);
    nixl_status_t st = self ? prep_loopback(eng, req, local, remote, count)
                            : prep_parts(eng, req, local, remote, count);
    if (st == NIXL_SUCCESS && !hold_refs(req, local, remote, count))
        st = NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    if (st != NIXL_SUCCESS) {
        lf_req_free(req);
        return st;
    }
    req->notif.req = req;
    pthread_mutex_lock(&eng->all_lock);
    nixl_list_push(&eng->all_reqs, &req->all);
    pthread_mutex_unlock(&eng->all_lock);
    *out = req;
    return NIXL_SUCCESS;
}

static nixl_status_t encode_notif(nixl_be_engine_t *eng, nixl_be_req_t *req, const void *msg,
                                  size_t len)
{
    if (len > LF_NOTIF_MAX)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "a notification of %zu bytes (at most %u)", len, LF_NOTIF_MAX);
    size_t n = lf_msg_write(LF_MSG_NOTIF, eng->name, eng->name_len, msg, len, NULL);
    if (n > req->notif_cap) {
        uint8_t *b = realloc(req->notif.msg, n);
        if (!b)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
        req->notif.msg = b;
        req->notif_cap = n;
    }
    req->notif.len = lf_msg_write(LF_MSG_NOTIF, eng->name, eng->name_len, msg, len,
                                  req->notif.msg);
    return NIXL_SUCCESS;
}

static nixl_status_t conn_usable(nixl_be_engine_t *eng, lf_conn_t *c)
{
    if (atomic_load(&c->failed))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s': %s", c->name,
                           c->why);
    if (atomic_load(&c->forgotten))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND,
                           "agent '%s' was disconnected; load its metadata again", c->name);
    return NIXL_SUCCESS;
}

/* Ready a request for a post: its counters and reason cleared; the messages to post. */
static size_t req_reset(nixl_be_req_t *req)
{
    size_t total = 0;
    for (unsigned r = 0; r < req->nparts; r++) {
        req->parts[r].next = req->parts[r].outstanding = 0;
        total += req->parts[r].nrma;
    }
    atomic_store(&req->nfailed, 0);
    atomic_store(&req->first_err, 0);
    atomic_store(&req->why_set, false);
    req->why[0] = '\0';
    req->posted_ns = nixl_now_ns();
    return total;
}

static void post_parts(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    for (unsigned r = 0; r < req->nparts; r++)
        if (req->parts[r].nrma)
            lf_rail_post_part(&eng->rails[r], &req->parts[r]);
}

/* Something of the request's last post still runs (or libfabric still holds it). */
static bool req_busy(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    return atomic_load(&req->state) == NIXL_IN_PROG || atomic_load(&req->pending) ||
           (req->stage && lf_stage_busy(eng, req));
}

/* A loopback copy with GPU memory: one batch, waited for (as a copy in the caller is). */
static nixl_status_t loopback_gpu(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    nixl_gpu_err_t err;
    nixl_status_t st = g->batch_post(req->gpu_batch, &err);
    if (st == NIXL_SUCCESS)
        st = g->batch_wait(req->gpu_batch, &err);
    if (st != NIXL_SUCCESS) {
        snprintf(req->why, sizeof(req->why), "a copy with GPU memory: %s", err.msg);
        atomic_store(&req->state, st);
        return NIXL_BE_ERR(eng->host, st, "%s", req->why);
    }
    return NIXL_SUCCESS;
}

nixl_status_t lf_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_xfer_opts_t *opts)
{
    if (req_busy(eng, req))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REPOST_ACTIVE,
                           "the request is still in flight");
    bool notif = opts && opts->has_notif;
    if (notif) {
        nixl_status_t st = encode_notif(eng, req, opts->notif, opts->notif_len);
        if (st != NIXL_SUCCESS)
            return st;
    }
    if (!req->conn) { /* loopback */
        if (req->gpu_batch) {
            nixl_status_t st = loopback_gpu(eng, req);
            if (st != NIXL_SUCCESS)
                return st;
        }
        for (size_t i = 0; !req->gpu_batch && i < req->count; i++)
            memmove(req->pairs[i].dst, req->pairs[i].src, req->pairs[i].len);
        if (notif)
            eng->host->notif(eng->host, eng->name, eng->name_len, opts->notif, opts->notif_len);
        atomic_store(&req->state, NIXL_SUCCESS);
        return NIXL_SUCCESS;
    }
    nixl_status_t st = conn_usable(eng, req->conn);
    if (st != NIXL_SUCCESS) {
        atomic_store(&req->state, st);
        snprintf(req->why, sizeof(req->why), "agent '%s': %s", req->conn->name,
                 st == NIXL_ERR_NOT_FOUND ? "disconnected" : req->conn->why);
        return st;
    }
    req->has_notif = notif;
    req->notif.conn = req->conn;
    size_t total = req_reset(req);
    if (req->stage) {
        req->notif_early = false;
        return lf_stage_post(eng, req);
    }
    /* A WRITE's notification can leave right behind its writes where the provider delivers a
     * message after the writes posted before it on the endpoint (FI_ORDER_SAW) and every
     * write is on rail 0: one round trip instead of two. Otherwise (other rails, READ - a
     * read's data may still be on its way back when a message behind it arrives - or no
     * ordering) it is sent once every operation completed. */
    req->notif_early = notif && total && req->op == NIXL_WRITE && eng->order_saw &&
                       req->parts[0].nrma == total;
    atomic_store(&req->state, NIXL_IN_PROG);
    if (!total) {
        if (!notif) {
            atomic_store(&req->state, NIXL_SUCCESS);
            return NIXL_SUCCESS;
        }
        lf_rail_post_job(&eng->rails[0], &req->notif);
        return NIXL_IN_PROG;
    }
    atomic_store(&req->pending, total + req->notif_early);
    post_parts(eng, req);
    if (req->notif_early)
        lf_rail_post_job(&eng->rails[0], &req->notif);
    return NIXL_IN_PROG;
}

nixl_status_t lf_req_start(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    size_t total = req_reset(req);
    req->has_notif = req->notif_early = false;
    if (!total) {
        atomic_store(&req->state, NIXL_SUCCESS);
        return NIXL_SUCCESS;
    }
    atomic_store(&req->state, NIXL_IN_PROG);
    atomic_store(&req->pending, total);
    post_parts(eng, req);
    return NIXL_IN_PROG;
}

static nixl_status_t fail_status(const nixl_be_req_t *req, int err)
{
    switch (err) {
    case FI_ECONNRESET: case FI_ECONNREFUSED: case FI_ECONNABORTED: case FI_ENOTCONN:
    case FI_ETIMEDOUT: case FI_EHOSTUNREACH: case FI_ENETUNREACH: case FI_ENETDOWN:
    case FI_EIO: case FI_ESHUTDOWN: case FI_ECANCELED:
        return NIXL_ERR_REMOTE_DISCONNECT;
    default:
        return atomic_load(&req->conn->failed) ? NIXL_ERR_REMOTE_DISCONNECT : NIXL_ERR_BACKEND;
    }
}

void lf_req_ops_done(nixl_be_req_t *req, size_t n, size_t bad, int err, const char *why)
{
    if (bad) {
        atomic_fetch_add(&req->nfailed, bad);
        bool was = atomic_exchange(&req->why_set, true);
        if (!was) {
            atomic_store(&req->first_err, err);
            snprintf(req->why, sizeof(req->why), "%s", why ? why : "failed");
        }
    }
    if (atomic_fetch_sub(&req->pending, n) != n)
        return;
    /* The last operation of the post: decide. */
    size_t nbad = atomic_load(&req->nfailed);
    nixl_status_t st = NIXL_SUCCESS;
    if (nbad) {
        char first[384];
        snprintf(first, sizeof(first), "%s", req->why);
        size_t total = req->notif_early; /* the notification counts as one */
        for (unsigned r = 0; r < req->nparts; r++)
            total += req->parts[r].nrma;
        snprintf(req->why, sizeof(req->why), "%s agent '%s': %zu of %zu operation(s) failed: %s",
                 op_name(req), req->conn->name, nbad, total, first);
        st = fail_status(req, atomic_load(&req->first_err));
    } else if (req->has_notif && !req->notif_early) {
        lf_rail_post_job(&req->eng->rails[0], &req->notif);
        return;
    }
    if (req->parent)
        lf_stage_round_end(req, st); /* wakes the stage thread */
    else
        atomic_store(&req->state, st);
}

void lf_req_notif_done(nixl_be_req_t *req, int err)
{
    if (req->notif_early) { /* one of the post's operations */
        char why[160];
        snprintf(why, sizeof(why), "the notification failed: %s", err ? fi_strerror(err) : "");
        lf_req_ops_done(req, 1, err != 0, err, why);
        return;
    }
    if (err) {
        snprintf(req->why, sizeof(req->why),
                 "%s agent '%s': the data arrived but the notification failed: %s",
                 op_name(req), req->conn->name, fi_strerror(err));
        atomic_store(&req->state, fail_status(req, err));
        return;
    }
    atomic_store(&req->state, NIXL_SUCCESS);
}

nixl_status_t lf_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    nixl_status_t st = atomic_load(&req->state);
    if (st == NIXL_IN_PROG && req->conn && eng->params.caller_progress) {
        /* A caller that polls progresses the request's rails itself (when their threads are
         * not at it): the completion needs no wake-up of a rail thread. */
        unsigned nr = req->stage ? req->conn->nrails : req->nparts; /* rounds: any rail */
        for (unsigned r = 0; r < nr; r++)
            if (r == 0 || req->stage || req->parts[r].nrma)
                lf_rail_progress(&eng->rails[r]);
        st = atomic_load(&req->state);
    }
    if (st == NIXL_IN_PROG && req->conn && atomic_load(&req->conn->failed))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT, "%s agent '%s': %s",
                           op_name(req), req->conn->name, req->conn->why);
    if (st < 0 && st != NIXL_ERR_NOT_POSTED)
        return NIXL_BE_ERR(eng->host, st, "%s", req->why);
    return st;
}

nixl_status_t lf_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    /* RMA cannot be cancelled: give a transfer in flight a moment, then refuse. A staged one
     * stops at the end of its round. */
    if (req->stage)
        lf_stage_cancel(eng, req);
    uint64_t deadline = nixl_now_ms() + LF_RELEASE_WAIT_MS;
    while (req_busy(eng, req)) {
        if (nixl_now_ms() >= deadline)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                               "the %s agent '%s' is still in flight after %d ms and cannot be "
                               "cancelled; the request stays valid (keep its buffers) - "
                               "release it again later",
                               op_name(req), req->conn ? req->conn->name : eng->name,
                               LF_RELEASE_WAIT_MS);
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    pthread_mutex_lock(&eng->all_lock);
    nixl_list_remove(&eng->all_reqs, &req->all);
    pthread_mutex_unlock(&eng->all_lock);
    lf_req_free(req);
    return NIXL_SUCCESS;
}

nixl_status_t lf_cancel_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    /* Only a staged request can be stopped (between its rounds); RMA in flight is waited for. */
    if (req->stage && atomic_load(&req->state) == NIXL_IN_PROG)
        lf_stage_cancel(eng, req);
    if (req->stage && lf_stage_busy(eng, req))
        return NIXL_IN_PROG;
    return lf_check_xfer(eng, req);
}

void lf_reqs_free_all(nixl_be_engine_t *eng)
{
    /* The rail threads are stopped and the endpoints closed: nothing refers to them. */
    while (eng->all_reqs) {
        nixl_be_req_t *req = nixl_list_entry(eng->all_reqs, nixl_be_req_t, all);
        nixl_list_remove(&eng->all_reqs, &req->all);
        lf_req_free(req);
    }
}

nixl_status_t lf_gen_notif(nixl_be_engine_t *eng, const char *agent, const void *msg,
                           size_t len)
{
    if (len > LF_NOTIF_MAX)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "a notification of %zu bytes (at most %u)", len, LF_NOTIF_MAX);
    if (strcmp(agent, eng->name) == 0) {
        eng->host->notif(eng->host, eng->name, eng->name_len, msg, len);
        return NIXL_SUCCESS;
    }
    lf_conn_t *c = lf_conn_get(eng, agent);
    if (!c)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND,
                           "no connection info of agent '%s' is loaded", agent);
    nixl_status_t st = conn_usable(eng, c);
    if (st != NIXL_SUCCESS) {
        lf_conn_unref(c);
        return st;
    }
    size_t n = lf_msg_write(LF_MSG_NOTIF, eng->name, eng->name_len, msg, len, NULL);
    lf_send_job_t *job = malloc(sizeof(*job) + n);
    if (!job) {
        lf_conn_unref(c);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    *job = (lf_send_job_t){.conn = c, .msg = (uint8_t *)(job + 1), .len = n};
    lf_msg_write(LF_MSG_NOTIF, eng->name, eng->name_len, msg, len, job->msg);
    lf_rail_post_job(&eng->rails[0], job);
    return NIXL_SUCCESS;
}

nixl_status_t lf_progress(nixl_be_engine_t *eng)
{
    /* A caller polling for notifications reads the queues itself when the rail threads are
     * not at it: a message delivered needs no thread wake-up on the way to the caller. */
    if (!eng->params.caller_progress)
        return NIXL_SUCCESS;
    for (unsigned r = 0; r < eng->nrails; r++)
        lf_rail_progress(&eng->rails[r]);
    return NIXL_SUCCESS;
}

void lf_msg_received(nixl_be_engine_t *eng, const void *buf, size_t len)
{
    lf_msg_t m;
    char why[160];
    if (lf_msg_parse(buf, len, &m, why, sizeof(why))) {
        eng->host->notif(eng->host, m.name, m.name_len, m.payload, m.len);
        return;
    }
    uint64_t n = atomic_fetch_add(&eng->dropped, 1) + 1;
    uint64_t now = nixl_now_ns(), last = atomic_load(&eng->drop_log_ns);
    if (now - last >= 1000000000u && atomic_compare_exchange_strong(&eng->drop_log_ns, &last, now))
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "a malformed message was dropped (%llu so far): %s", (unsigned long long)n,
                    why);
}
