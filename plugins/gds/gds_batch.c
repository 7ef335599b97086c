/*
 * gds_batch.c - the GDS backend (libplugin_GDS.so): a post submits the request's I/Os as cuFile
 * batches of at most batch_limit entries; check_xfer polls their completions
 * (cuFileBatchIOGetStatus without waiting). Batch handles come from a pool of batch_pool_size
 * set up at creation; a post that needs more sets up extra ones, destroyed after.
 *
 * At most a window of entries is out at once (see `inflight`); the rest of a request's batches
 * are submitted from check_xfer as earlier ones complete.
 *
 * Every completion is checked: an entry that is not COMPLETE, or COMPLETE with fewer bytes than
 * asked (a read past the end of the file, a full disk), fails the request with the descriptor,
 * the offset and the reason. The request's state is published only when every submitted entry
 * reached a final state, so a failed request never leaves I/O running into a released buffer.
 * Entries are matched by their cookie (the I/O's index) and counted once, whatever cuFile
 * reports again.
 *
 * Locks: pool->lock guards the free handles. A request's own state is touched by one thread
 * at a time (the ABI never runs two data operations on one request at once).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gds_priv.h"

typedef struct gb_pool {
    pthread_mutex_t lock;
    void **free;
    size_t nfree, cap;
    unsigned limit;
    size_t inflight_limit;
} gb_pool_t;

typedef struct gb_req {
    size_t nbatches;
    gds_cu_io_params_t *params; /* one per I/O, filled at prep */
    gds_cu_io_event_t *events;  /* scratch for one status call */
    void **handles;             /* per batch, while submitted */
    size_t *left;               /* per batch: entries not final yet */
    bool *done;                 /* per I/O: final in this post */
    size_t submitted;           /* batches submitted (or given up) in this post, in order */
    size_t active;              /* batches with entries not final yet */
} gb_req_t;

/*
 * cuFile batch entries submitted and not final yet, in this process. In compatibility mode
 * cuFile stops completing VRAM batch entries once a few hundred are outstanding (seen on the
 * H100 machine: 256 of 1001 bytes complete, 512 never do), so a post submits its batches as
 * earlier ones complete, keeping at most batch_inflight_limit entries out (the engine's
 * parameter; several engines each hold to their own); a request with none out
 * may always submit one batch, so every request progresses whatever the others do.
 */
static _Atomic size_t inflight;

static gb_pool_t *pool_of(nixl_be_engine_t *eng)
{
    return eng->runner;
}

static gds_cu_err_t handle_take(nixl_be_engine_t *eng, void **h)
{
    gb_pool_t *p = pool_of(eng);
    pthread_mutex_lock(&p->lock);
    *h = p->nfree ? p->free[--p->nfree] : NULL;
    pthread_mutex_unlock(&p->lock);
    if (*h)
        return (gds_cu_err_t){0, 0};
    return eng->cf->batch_setup(h, p->limit);
}

/* A handle whose entries are all final goes back (or away, past the pool's size). */
static void handle_give(nixl_be_engine_t *eng, void *h)
{
    gb_pool_t *p = pool_of(eng);
    pthread_mutex_lock(&p->lock);
    bool kept = p->nfree < p->cap;
    if (kept)
        p->free[p->nfree++] = h;
    pthread_mutex_unlock(&p->lock);
    if (!kept)
        eng->cf->batch_destroy(h);
}

static nixl_status_t gb_start(nixl_be_engine_t *eng, char *why, size_t whylen)
{
    gb_pool_t *p = calloc(1, sizeof(*p));
    size_t n = (size_t)eng->params.batch_pool_size;
    if (p)
        p->free = calloc(n, sizeof(void *));
    if (!p || !p->free) {
        free(p);
        snprintf(why, whylen, "out of memory");
        return NIXL_ERR_UNKNOWN;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->cap = n;
    p->limit = (unsigned)eng->params.batch_limit;
    p->inflight_limit = (size_t)eng->params.inflight_limit;
    eng->runner = p;
    for (size_t i = 0; i < n; i++) {
        void *h = NULL;
        gds_cu_err_t e = eng->cf->batch_setup(&h, p->limit);
        if (e.err != GDS_CU_SUCCESS) {
            char s[96];
            snprintf(why, whylen, "cuFileBatchIOSetUp(%u) for handle %zu of batch_pool_size %zu "
                     "failed: %s (batch_limit may exceed cufile.json's "
                     "properties.io_batchsize)", p->limit, i + 1, n,
                     gds_cu_strerror(e, s, sizeof(s)));
            eng->run_ops->stop(eng);
            return NIXL_ERR_BACKEND;
        }
        p->free[p->nfree++] = h;
    }
    return NIXL_SUCCESS;
}

static void gb_stop(nixl_be_engine_t *eng)
{
    gb_pool_t *p = pool_of(eng);
    if (!p)
        return;
    for (size_t i = 0; i < p->nfree; i++)
        eng->cf->batch_destroy(p->free[i]);
    pthread_mutex_destroy(&p->lock);
    free(p->free);
    free(p);
    eng->runner = NULL;
}

static void gb_req_free(gb_req_t *r)
{
    if (!r)
        return;
    free(r->params);
    free(r->events);
    free(r->handles);
    free(r->left);
    free(r->done);
    free(r);
}

static nixl_status_t gb_req_init(nixl_be_engine_t *eng, gds_req_t *req)
{
    size_t limit = (size_t)eng->params.batch_limit;
    gb_req_t *r = calloc(1, sizeof(*r));
    if (r) {
        r->nbatches = (req->nios + limit - 1) / limit;
        r->params = calloc(req->nios ? req->nios : 1, sizeof(*r->params));
        r->events = calloc(limit, sizeof(*r->events));
        r->handles = calloc(r->nbatches ? r->nbatches : 1, sizeof(*r->handles));
        r->left = calloc(r->nbatches ? r->nbatches : 1, sizeof(*r->left));
        r->done = calloc(req->nios ? req->nios : 1, sizeof(*r->done));
    }
    if (!r || !r->params || !r->events || !r->handles || !r->left || !r->done) {
        gb_req_free(r);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    for (size_t i = 0; i < req->nios; i++) {
        const gds_io_t *io = &req->ios[i];
        r->params[i] = (gds_cu_io_params_t){
            .mode = GDS_CU_BATCH,
            .u.batch = {.buf_base = io->buf_base, .file_offset = (off_t)io->file_off,
                        .buf_offset = (off_t)io->buf_off, .size = io->size},
            .fh = io->fh,
            .opcode = req->write ? GDS_CU_OP_WRITE : GDS_CU_OP_READ,
            .cookie = (void *)(uintptr_t)i,
        };
        /* Host memory goes as its own address, offset 0: cuFile's compatibility mode (CUDA 13)
         * reads into DRAM at buf_base, ignoring buf_offset, for files opened with O_DIRECT
         * (seen on the H100 machine: descriptor 1 of a READ stayed untouched and the entry
         * said COMPLETE with every byte). GPU memory keeps the registered base and offset. */
        if (io->host) {
            r->params[i].u.batch.buf_base = (uint8_t *)io->buf_base + io->buf_off;
            r->params[i].u.batch.buf_offset = 0;
        }
    }
    req->run = r;
    return NIXL_SUCCESS;
}

static void gb_req_fini(nixl_be_engine_t *eng, gds_req_t *req)
{
    (void)eng;
    gb_req_free(req->run);
    req->run = NULL;
}

static const char *status_name(int s)
{
    switch (s) {
    case GDS_CU_FAILED: return "FAILED";
    case GDS_CU_CANCELED: return "CANCELED";
    case GDS_CU_TIMEOUT: return "TIMEOUT";
    case GDS_CU_INVALID: return "INVALID";
    default: return "unexpected status";
    }
}

/* One completion: check it moved every byte and end its I/O. False if not final. */
static bool account(gds_req_t *req, const gds_cu_io_event_t *ev)
{
    gb_req_t *r = req->run;
    uintptr_t i = (uintptr_t)ev->cookie;
    if (ev->status == GDS_CU_WAITING || ev->status == GDS_CU_PENDING || i >= req->nios ||
        r->done[i])
        return false;
    r->done[i] = true;
    const gds_io_t *io = &req->ios[i];
    ssize_t ret = (ssize_t)ev->ret;
    char what[160], s[96];
    if (ev->status == GDS_CU_COMPLETE && ret >= 0 && (size_t)ret == io->size) {
        gds_ios_end(req, io, 1, NULL);
        return true;
    }
    if (ev->status == GDS_CU_COMPLETE && ret >= 0)
        snprintf(what, sizeof(what), "short %s: %zd of %zu bytes (%s)",
                 req->write ? "write" : "read", ret, io->size,
                 req->write ? "no space left?" : "past the end of the file?");
    else if (ret < 0)
        snprintf(what, sizeof(what), "cuFile batch entry %s: %s", status_name(ev->status),
                 gds_io_strerror(ret, EIO, s, sizeof(s)));
    else
        snprintf(what, sizeof(what), "cuFile batch entry %s", status_name(ev->status));
    gds_ios_end(req, io, 1, what);
    return true;
}

/* The number of I/Os in batch b. */
static size_t batch_ios(const nixl_be_engine_t *eng, const gds_req_t *req, size_t b)
{
    size_t limit = (size_t)eng->params.batch_limit, first = b * limit;
    return req->nios - first < limit ? req->nios - first : limit;
}

/* Batch b has no entry running any more: its handle (unless lost) and its window share go. */
static void batch_final(nixl_be_engine_t *eng, gds_req_t *req, size_t b, bool give)
{
    gb_req_t *r = req->run;
    if (give)
        handle_give(eng, r->handles[b]);
    r->handles[b] = NULL;
    r->left[b] = 0;
    r->active--;
    atomic_fetch_sub(&inflight, batch_ios(eng, req, b));
}

/* The batches not submitted yet never will be: their I/Os end as failed (`what`). */
static void end_rest(nixl_be_engine_t *eng, gds_req_t *req, const char *what)
{
    gb_req_t *r = req->run;
    if (r->submitted == r->nbatches)
        return;
    size_t first = r->submitted * (size_t)eng->params.batch_limit;
    r->submitted = r->nbatches;
    gds_ios_end(req, &req->ios[first], req->nios - first, what);
}

/* Poll batch b (timeout: how long cuFile may wait for one completion). */
static void poll_batch(nixl_be_engine_t *eng, gds_req_t *req, size_t b, long timeout_ns)
{
    gb_req_t *r = req->run;
    unsigned nr = (unsigned)r->left[b];
    struct timespec ts = {.tv_sec = 0, .tv_nsec = timeout_ns};
    gds_cu_err_t e = eng->cf->batch_status(r->handles[b], 0, &nr, r->events, &ts);
    if (e.err != GDS_CU_SUCCESS) {
        /* The batch's state is unknown: cancel what may still run and drop the handle; its
         * entries not final yet end as failed. */
        char s[96], what[160];
        snprintf(what, sizeof(what), "cuFileBatchIOGetStatus failed: %s",
                 gds_cu_strerror(e, s, sizeof(s)));
        size_t first = b * (size_t)eng->params.batch_limit;
        gds_ios_end(req, &req->ios[first], r->left[b], what);
        eng->cf->batch_cancel(r->handles[b]);
        eng->cf->batch_destroy(r->handles[b]);
        batch_final(eng, req, b, false);
        return;
    }
    for (unsigned k = 0; k < nr && k < eng->params.batch_limit; k++)
        if (account(req, &r->events[k]))
            r->left[b]--;
    if (r->left[b] == 0)
        batch_final(eng, req, b, true);
}

/* Submit the post's next batches while the window has room; after a failure, none. */
static void submit_more(nixl_be_engine_t *eng, gds_req_t *req)
{
    gb_req_t *r = req->run;
    size_t cap = pool_of(eng)->inflight_limit;
    while (r->submitted < r->nbatches) {
        if (req->failed) {
            end_rest(eng, req, "not run: an earlier I/O of the request failed");
            return;
        }
        size_t b = r->submitted, first = b * (size_t)eng->params.batch_limit;
        size_t n = batch_ios(eng, req, b);
        size_t before = atomic_fetch_add(&inflight, n);
        if (r->active && before + n > cap) {
            atomic_fetch_sub(&inflight, n); /* when one of ours completes */
            return;
        }
        char s[96], what[200];
        gds_cu_err_t e = handle_take(eng, &r->handles[b]);
        if (e.err != GDS_CU_SUCCESS) {
            snprintf(what, sizeof(what), "cuFileBatchIOSetUp for batch %zu of %zu failed: %s",
                     b + 1, r->nbatches, gds_cu_strerror(e, s, sizeof(s)));
        } else {
            e = eng->cf->batch_submit(r->handles[b], (unsigned)n, &r->params[first], 0);
            if (e.err != GDS_CU_SUCCESS) {
                snprintf(what, sizeof(what), "cuFileBatchIOSubmit of %zu I/Os (batch %zu of "
                         "%zu) failed: %s", n, b + 1, r->nbatches,
                         gds_cu_strerror(e, s, sizeof(s)));
                handle_give(eng, r->handles[b]); /* nothing of it runs */
            }
        }
        if (e.err != GDS_CU_SUCCESS) {
            r->handles[b] = NULL;
            atomic_fetch_sub(&inflight, n);
            end_rest(eng, req, what); /* none of them runs */
            return;
        }
        r->left[b] = n;
        r->active++;
        r->submitted = b + 1;
    }
}

/* Poll every batch still out; the last I/O's end publishes the final state. */
static nixl_status_t progress(nixl_be_engine_t *eng, gds_req_t *req, long timeout_ns)
{
    gb_req_t *r = req->run;
    for (size_t b = 0; b < r->submitted; b++)
        if (r->left[b])
            poll_batch(eng, req, b, timeout_ns);
    submit_more(eng, req);
    return (nixl_status_t)atomic_load_explicit(&req->state, memory_order_acquire);
}

static nixl_status_t gb_post(nixl_be_engine_t *eng, gds_req_t *req)
{
    gb_req_t *r = req->run;
    r->submitted = 0;
    r->active = 0;
    memset(r->done, 0, req->nios * sizeof(*r->done));
    atomic_store(&req->state, NIXL_IN_PROG);
    submit_more(eng, req);
    /* Every I/O may have ended already (nothing could be submitted): the state says so. */
    return (nixl_status_t)atomic_load_explicit(&req->state, memory_order_acquire);
}

static nixl_status_t gb_check(nixl_be_engine_t *eng, gds_req_t *req)
{
    return progress(eng, req, 0);
}

static bool gb_abort(nixl_be_engine_t *eng, gds_req_t *req)
{
    gb_req_t *r = req->run;
    end_rest(eng, req, "cancelled before it was submitted");
    for (size_t b = 0; b < r->submitted; b++)
        if (r->left[b])
            eng->cf->batch_cancel(r->handles[b]);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (progress(eng, req, 10 * 1000 * 1000) != NIXL_IN_PROG)
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 <
             GDS_RELEASE_WAIT_MS);
    return false;
}

GDS_PLUGIN_DEFINE(gb, GDS_KIND_BATCH, "cuFile batch I/O", "GDS", gds_default_params,
                  GDS_NUM_DEFAULTS)
