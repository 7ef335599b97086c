/*
 * gds_batch.c - the GDS backend (libplugin_GDS.so): a post submits the request's I/Os as cuFile
 * batches; check_xfer polls their completions (cuFileBatchIOGetStatus without waiting). Batch
 * handles come from a pool of batch_pool_size set up at creation; a post that needs more sets
 * up extra ones, destroyed after.
 *
 * The window. cuFile's compatibility mode (no nvidia-fs) does a batch's I/O on its own threads
 * and blocks inside cuFileBatchIOSubmit, for good, once too many entries are out: on the H100
 * machine (CUDA 13) 128 VRAM entries of 16 KiB in one batch on an O_DIRECT file never return,
 * nor two batches of 128 entries of 4 KiB, nor 512 entries without O_DIRECT, while 64 entries
 * of any size from 4 KiB to 1 MiB always complete (tests/gpu/gds_probe.c). So entries out are
 * counted for the whole process (cuFile is one per process) and held to the engine's
 * batch_inflight_limit (default 64), strictly: a batch is never larger than the window, and a
 * batch is submitted only when it fits. Entries finish whether or not anyone polls them, but
 * the window only learns of it when their batch is polled; so a request kept waiting by the
 * window polls every batch out, its own and other requests', under the window's lock. No
 * request can then wait on one that nobody polls.
 *
 * Host memory with a file opened without O_DIRECT runs at post instead (gb_req_init says why).
 *
 * Every completion is checked: an entry that is not COMPLETE, or COMPLETE with fewer bytes than
 * asked (a read past the end of the file, a full disk), fails the request with the descriptor,
 * the offset and the reason. The request's state is published only when every submitted entry
 * reached a final state, so a failed request never leaves I/O running into a released buffer.
 * Entries are matched by their cookie (the I/O's index) and counted once, whatever cuFile
 * reports again.
 *
 * Locks: pool->lock guards an engine's free handles. The window's lock (win.lock) is held
 * around every poll and submit, so the batches of a request are touched by one thread at a time
 * even when another request's thread reaps them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gds_priv.h"
#include "list.h"

typedef struct gb_pool {
    pthread_mutex_t lock;
    void **free;
    size_t nfree, cap;
    unsigned per_batch;    /* entries per batch: batch_limit, at most the window */
    size_t inflight_limit; /* the window */
} gb_pool_t;

/* One batch of a request, on the window's list while its entries are out. */
typedef struct gb_batch {
    nixl_list_node_t node;
    nixl_be_engine_t *eng;
    gds_req_t *req;
    void *handle;
    size_t first, n; /* its I/Os */
    size_t left;     /* entries not final yet */
} gb_batch_t;

typedef struct gb_req {
    bool sync; /* run at post with cuFileRead/cuFileWrite (see gb_req_init) */
    size_t nbatches;
    gds_cu_io_params_t *params; /* one per I/O, filled at prep */
    gds_cu_io_event_t *events;  /* scratch for one status call */
    gb_batch_t *batches;
    bool *done;                 /* per I/O: final in this post */
    size_t submitted;           /* batches submitted (or given up) in this post, in order */
} gb_req_t;

/* The process's batch entries out (see the top of the file). */
static struct {
    pthread_mutex_t lock;
    size_t out;                /* entries submitted and not final yet */
    nixl_list_node_t *batches; /* the batches they belong to */
} win = {.lock = PTHREAD_MUTEX_INITIALIZER};

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
    return eng->cf->batch_setup(h, p->per_batch);
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
    p->inflight_limit = (size_t)eng->params.inflight_limit;
    p->per_batch = (unsigned)(eng->params.batch_limit < p->inflight_limit
                                  ? eng->params.batch_limit
                                  : p->inflight_limit);
    eng->runner = p;
    for (size_t i = 0; i < n; i++) {
        void *h = NULL;
        gds_cu_err_t e = eng->cf->batch_setup(&h, p->per_batch);
        if (e.err != GDS_CU_SUCCESS) {
            char s[96];
            snprintf(why, whylen, "cuFileBatchIOSetUp(%u) for handle %zu of batch_pool_size %zu "
                     "failed: %s (batch_limit may exceed cufile.json's "
                     "properties.io_batchsize)", p->per_batch, i + 1, n,
                     gds_cu_strerror(e, s, sizeof(s)));
            eng->run_ops->stop(eng);
            return NIXL_ERR_BACKEND;
        }
        p->free[p->nfree++] = h;
    }
    return NIXL_SUCCESS;
}

static void batch_final(gb_batch_t *bt, bool give);

static void gb_stop(nixl_be_engine_t *eng)
{
    gb_pool_t *p = pool_of(eng);
    if (!p)
        return;
    /* Batches of requests never released (their release gave up waiting): cancel them and
     * take them off the window, so no other engine's poll reaches into this one. */
    pthread_mutex_lock(&win.lock);
    for (nixl_list_node_t *n = win.batches, *next; n; n = next) {
        next = n->next;
        gb_batch_t *bt = nixl_list_entry(n, gb_batch_t, node);
        if (bt->eng != eng)
            continue;
        eng->cf->batch_cancel(bt->handle);
        eng->cf->batch_destroy(bt->handle);
        batch_final(bt, false);
    }
    pthread_mutex_unlock(&win.lock);
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
    free(r->batches);
    free(r->done);
    free(r);
}

static nixl_status_t gb_req_init(nixl_be_engine_t *eng, gds_req_t *req)
{
    /* Host memory does not go in batches: cuFile's compatibility mode (CUDA 13, the H100
     * machine) fails all but the first few entries of such a batch on a file without O_DIRECT
     * (status FAILED, -1; cufile.log "nvfs_bio ... error res = -1"), many batches of one entry
     * out at once never complete, and on an O_DIRECT file cuFileBatchIOGetStatus crashes
     * (a wild pointer inside cuFile, every run with MALLOC_PERTURB_ set, as meson's test
     * runner does: its memory is not initialised) while READs of 4,096 entries are out. VRAM
     * batches pass all of it (tests/gpu/test_gds.c, tests/gpu/gds_probe.c). Such a request
     * runs at post with cuFileRead/cuFileWrite, as GDS_MT's workers do. */
    size_t per = pool_of(eng)->per_batch;
    bool sync = false;
    for (size_t i = 0; i < req->nios && !sync; i++)
        sync = req->ios[i].host;
    gb_req_t *r = calloc(1, sizeof(*r));
    if (r && sync) { /* no batch state: post runs it whole */
        r->sync = true;
        req->run = r;
        return NIXL_SUCCESS;
    }
    if (r) {
        r->nbatches = (req->nios + per - 1) / per;
        r->params = calloc(req->nios ? req->nios : 1, sizeof(*r->params));
        r->events = calloc(per, sizeof(*r->events));
        r->batches = calloc(r->nbatches ? r->nbatches : 1, sizeof(*r->batches));
        r->done = calloc(req->nios ? req->nios : 1, sizeof(*r->done));
    }
    if (!r || !r->params || !r->events || !r->batches || !r->done) {
        gb_req_free(r);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    for (size_t b = 0; b < r->nbatches; b++) {
        size_t first = b * per;
        r->batches[b] = (gb_batch_t){.eng = eng, .req = req, .first = first,
                                     .n = req->nios - first < per ? req->nios - first : per};
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
    }
    req->run = r;
    return NIXL_SUCCESS;
}

static void gb_req_fini(nixl_be_engine_t *eng, gds_req_t *req)
{
    (void)eng;
    /* Another request's thread may have ended this one's last I/O while reaping (the state
     * it published let our caller release us) and still be finishing that batch's books:
     * it holds win.lock until it is done with us. */
    pthread_mutex_lock(&win.lock);
    pthread_mutex_unlock(&win.lock);
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
static bool account(gds_req_t *req, const gb_batch_t *bt, const gds_cu_io_event_t *ev)
{
    gb_req_t *r = req->run;
    uintptr_t i = (uintptr_t)ev->cookie;
    if (ev->status == GDS_CU_WAITING || ev->status == GDS_CU_PENDING || i < bt->first ||
        i >= bt->first + bt->n || r->done[i])
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

/* A batch has no entry running any more: its handle goes back (unless lost), its entries
 * leave the window. Under win.lock. */
static void batch_final(gb_batch_t *bt, bool give)
{
    if (give)
        handle_give(bt->eng, bt->handle);
    bt->handle = NULL;
    win.out -= bt->left;
    bt->left = 0;
    nixl_list_remove(&win.batches, &bt->node);
}

/* The batches not submitted yet never will be: their I/Os end as failed (`what`). */
static void end_rest(gds_req_t *req, const char *what)
{
    gb_req_t *r = req->run;
    if (r->submitted == r->nbatches)
        return;
    size_t first = r->batches[r->submitted].first;
    r->submitted = r->nbatches;
    gds_ios_end(req, &req->ios[first], req->nios - first, what);
}

/* Poll one batch out (timeout: how long cuFile may wait for a completion). Under win.lock. */
static void poll_batch(gb_batch_t *bt, long timeout_ns)
{
    nixl_be_engine_t *eng = bt->eng;
    gds_req_t *req = bt->req;
    gb_req_t *r = req->run;
    unsigned nr = (unsigned)bt->left;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = timeout_ns};
    gds_cu_err_t e = eng->cf->batch_status(bt->handle, 0, &nr, r->events, &ts);
    if (e.err != GDS_CU_SUCCESS) {
        /* The batch's state is unknown: cancel what may still run and drop the handle; its
         * entries not final yet end as failed. */
        char s[96], what[160];
        snprintf(what, sizeof(what), "cuFileBatchIOGetStatus failed: %s",
                 gds_cu_strerror(e, s, sizeof(s)));
        gds_ios_end(req, &req->ios[bt->first], bt->left, what);
        eng->cf->batch_cancel(bt->handle);
        eng->cf->batch_destroy(bt->handle);
        batch_final(bt, false);
        return;
    }
    for (unsigned k = 0; k < nr && k < bt->n; k++)
        if (account(req, bt, &r->events[k])) {
            bt->left--;
            win.out--;
        }
    if (bt->left == 0)
        batch_final(bt, true);
}

/* Submit the post's next batches while they fit in the window; after a failure, none. True
 * when the window kept one back. Under win.lock. */
static bool submit_more(nixl_be_engine_t *eng, gds_req_t *req)
{
    gb_req_t *r = req->run;
    size_t cap = pool_of(eng)->inflight_limit;
    while (r->submitted < r->nbatches) {
        if (req->failed) {
            end_rest(req, "not run: an earlier I/O of the request failed");
            return false;
        }
        size_t b = r->submitted;
        gb_batch_t *bt = &r->batches[b];
        if (win.out + bt->n > cap)
            return true;
        char s[96], what[200];
        gds_cu_err_t e = handle_take(eng, &bt->handle);
        if (e.err != GDS_CU_SUCCESS) {
            snprintf(what, sizeof(what), "cuFileBatchIOSetUp for batch %zu of %zu failed: %s",
                     b + 1, r->nbatches, gds_cu_strerror(e, s, sizeof(s)));
        } else {
            e = eng->cf->batch_submit(bt->handle, (unsigned)bt->n, &r->params[bt->first], 0);
            if (e.err != GDS_CU_SUCCESS) {
                snprintf(what, sizeof(what), "cuFileBatchIOSubmit of %zu I/Os (batch %zu of "
                         "%zu) failed: %s", bt->n, b + 1, r->nbatches,
                         gds_cu_strerror(e, s, sizeof(s)));
                handle_give(eng, bt->handle); /* nothing of it runs */
            }
        }
        if (e.err != GDS_CU_SUCCESS) {
            bt->handle = NULL;
            end_rest(req, what); /* none of them runs */
            return false;
        }
        bt->left = bt->n;
        win.out += bt->n;
        nixl_list_push(&win.batches, &bt->node);
        r->submitted = b + 1;
    }
    return false;
}

/* Poll the request's batches out and submit more; if the window keeps some back, reap every
 * batch out in the process and try again. The last I/O's end publishes the final state. */
static nixl_status_t progress(nixl_be_engine_t *eng, gds_req_t *req, long timeout_ns)
{
    gb_req_t *r = req->run;
    pthread_mutex_lock(&win.lock);
    for (size_t b = 0; b < r->submitted; b++)
        if (r->batches[b].left)
            poll_batch(&r->batches[b], timeout_ns);
    if (submit_more(eng, req)) {
        for (nixl_list_node_t *n = win.batches, *next; n; n = next) {
            next = n->next;
            gb_batch_t *bt = nixl_list_entry(n, gb_batch_t, node);
            if (bt->req != req)
                poll_batch(bt, 0);
        }
        submit_more(eng, req);
    }
    pthread_mutex_unlock(&win.lock);
    return (nixl_status_t)atomic_load_explicit(&req->state, memory_order_acquire);
}

/* A request that cannot go in batches: every I/O now, in order, until one fails. */
static nixl_status_t run_sync(nixl_be_engine_t *eng, gds_req_t *req)
{
    atomic_store(&req->state, NIXL_IN_PROG);
    for (size_t i = 0; i < req->nios; i++) {
        char what[200];
        if (!gds_io_run(eng->cf, req->write, &req->ios[i], what, sizeof(what))) {
            gds_ios_end(req, &req->ios[i], 1, what);
            if (i + 1 < req->nios)
                gds_ios_end(req, &req->ios[i + 1], req->nios - i - 1,
                            "not run: an earlier I/O of the request failed");
            break;
        }
        gds_ios_end(req, &req->ios[i], 1, NULL);
    }
    return (nixl_status_t)atomic_load_explicit(&req->state, memory_order_acquire);
}

static nixl_status_t gb_post(nixl_be_engine_t *eng, gds_req_t *req)
{
    gb_req_t *r = req->run;
    if (r->sync)
        return run_sync(eng, req);
    /* Under win.lock from the start: a reaper that ended our last post may still be at its
     * books (see gb_req_fini). */
    pthread_mutex_lock(&win.lock);
    r->submitted = 0;
    memset(r->done, 0, req->nios * sizeof(*r->done));
    atomic_store(&req->state, NIXL_IN_PROG);
    submit_more(eng, req);
    pthread_mutex_unlock(&win.lock);
    /* Every I/O may have ended already (nothing could be submitted): the state says so. */
    return (nixl_status_t)atomic_load_explicit(&req->state, memory_order_acquire);
}

static nixl_status_t gb_check(nixl_be_engine_t *eng, gds_req_t *req)
{
    gb_req_t *r = req->run;
    if (r->sync) /* ran to its end in post */
        return (nixl_status_t)atomic_load_explicit(&req->state, memory_order_acquire);
    return progress(eng, req, 0);
}

static bool gb_abort(nixl_be_engine_t *eng, gds_req_t *req)
{
    gb_req_t *r = req->run;
    if (r->sync)
        return true; /* nothing of it is ever left running */
    pthread_mutex_lock(&win.lock);
    end_rest(req, "cancelled before it was submitted");
    for (size_t b = 0; b < r->submitted; b++)
        if (r->batches[b].left)
            eng->cf->batch_cancel(r->batches[b].handle);
    pthread_mutex_unlock(&win.lock);
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
