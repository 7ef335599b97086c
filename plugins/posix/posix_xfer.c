/*
 * posix_xfer.c - prepared transfers between memory and files, and the accounting that the I/O
 * engines drive (see posix_priv.h for who completes what).
 *
 * Everything that can be checked before the kernel sees an op is checked in prep: the pair of
 * memory types, equal lengths, offsets that fit off_t, and the O_DIRECT alignment of buffers,
 * lengths and offsets. A post then cannot fail on a descriptor except for what the file or
 * the device reports.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "be_storage.h"
#include "posix_priv.h"

static nixl_be_side_t side(const nixl_be_md_t *md)
{
    if (md && (md->type == NIXL_FILE_SEG || md->type == NIXL_BLK_SEG))
        return NIXL_BE_SIDE_STORAGE;
    return md && md->type == NIXL_DRAM_SEG ? NIXL_BE_SIDE_MEM : NIXL_BE_SIDE_OTHER;
}

nixl_status_t px_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op, const nixl_be_desc_t *local,
                           const nixl_be_desc_t *remote, size_t count, const char *agent,
                           const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out)
{
    (void)agent; /* the core only hands a local-only engine its own name */
    nixl_status_t st = nixl_be_storage_no_notif(eng->host, opts);
    if (st != NIXL_SUCCESS)
        return st;
    if (count > eng->params.ios_pool_size) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "%zu descriptors in one request, more than ios_pool_size "
                           "(%llu)",
                           count, (unsigned long long)eng->params.ios_pool_size);
    }
    px_req_t *req = calloc(1, sizeof(*req));
    px_op_t *ops = calloc(count ? count : 1, sizeof(*ops));
    if (!req || !ops) {
        free(req);
        free(ops);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    for (size_t i = 0; i < count && st == NIXL_SUCCESS; i++) {
        const nixl_be_desc_t *mem, *file;
        st = nixl_be_storage_pair(eng->host, i, &local[i], side(local[i].md), &remote[i],
                                  side(remote[i].md), "DRAM and FILE/BLOCK", &mem, &file);
        if (st == NIXL_SUCCESS)
            st = nixl_be_storage_direct(eng->host, i, mem, file, file->md->fd,
                                        file->md->direct ? file->md->align : 0);
        if (st == NIXL_SUCCESS)
            ops[i] = (px_op_t){.req = req, .fd = file->md->fd, .buf = (char *)mem->addr,
                               .len = mem->len, .off = file->addr};
    }
    if (st != NIXL_SUCCESS) {
        free(ops);
        free(req);
        return st;
    }
    /* READ pulls from the target (the file), WRITE pushes to it. */
    req->write = op == NIXL_WRITE;
    req->eng = eng;
    req->ops = ops;
    req->nops = count;
    atomic_store(&req->state, NIXL_ERR_NOT_POSTED);
    pthread_mutex_lock(&eng->lock);
    eng->live_reqs++;
    pthread_mutex_unlock(&eng->lock);
    *out = req;
    return NIXL_SUCCESS;
}

static void req_free(nixl_be_engine_t *eng, px_req_t *req)
{
    eng->live_reqs--;
    free(req->ops);
    free(req);
}

/* With the lock held: the request's last op is done. */
static void req_finish(nixl_be_engine_t *eng, px_req_t *req)
{
    atomic_store_explicit(&req->state, req->err, memory_order_release);
    pthread_cond_broadcast(&eng->done_cv);
}

/* The first failure of a post is the one reported; err 0: nothing was transferred. */
static void req_fail(px_req_t *req, const px_op_t *op, long err)
{
    if (req->err != NIXL_SUCCESS)
        return;
    req->err = NIXL_ERR_BACKEND;
    size_t i = (size_t)(op - req->ops);
    const char *what = req->write ? "write" : "read";
    unsigned long long at = op->off + op->done;
    size_t left = op->len - op->done;
    if (err)
        snprintf(req->errmsg, sizeof(req->errmsg), "descriptor %zu: %s of %zu bytes at "
                 "offset %llu failed: %s", i, what, left, at, strerror((int)err));
    else
        snprintf(req->errmsg, sizeof(req->errmsg), "descriptor %zu: short %s: nothing "
                 "transferred at offset %llu with %zu bytes left (%s)", i, what, at, left,
                 req->write ? "no space left?" : "end of file: truncated?");
}

void px_complete(nixl_be_engine_t *eng, px_op_t *op, long res)
{
    px_req_t *req = op->req;
    eng->inflight--;
    req->inflight--;
    if (res < 0) {
        req_fail(req, op, -res);
    } else if (res == 0 && op->done < op->len) {
        /* A read at the end of the file, or a device that takes nothing more. */
        req_fail(req, op, 0);
    } else {
        op->done += (size_t)res;
        if (op->done < op->len && req->err == NIXL_SUCCESS) {
            op->next = eng->retry; /* a short transfer: the rest goes out again */
            eng->retry = op;
            return;
        }
    }
    if (--req->remaining == 0)
        req_finish(eng, req);
}

/* Hand out ops from `list` (consecutive ops of one request) up to the free queue slots:
 * how many went, or a negative errno when the I/O engine took none. */
static long submit_some(nixl_be_engine_t *eng, px_op_t *const *list, size_t n, bool write)
{
    size_t room = eng->params.kernel_queue_size - eng->inflight;
    if (n > room)
        n = room;
    if (!n)
        return 0;
    int got = eng->io->ops->submit(eng->io, list, (unsigned)n, write);
    if (got > 0) {
        eng->inflight += (size_t)got;
        list[0]->req->inflight += (size_t)got;
    }
    return got;
}

/* The I/O engine refused an op with nothing in flight, so no completion will call px_fill()
 * again: fail the op instead of leaving its request IN_PROG for ever. */
static void submit_failed(nixl_be_engine_t *eng, px_op_t *op, long err)
{
    eng->inflight++;
    op->req->inflight++;
    px_complete(eng, op, err < 0 ? err : -EIO);
}

void px_fill(nixl_be_engine_t *eng)
{
    px_op_t *batch[64];
    while (eng->retry && eng->inflight < eng->params.kernel_queue_size) {
        px_op_t *op = eng->retry;
        eng->retry = op->next; /* detached first: the I/O engine may reuse op->next */
        long got = submit_some(eng, &op, 1, op->req->write);
        if (got == 1)
            continue;
        if (eng->inflight == 0) {
            submit_failed(eng, op, got);
            continue;
        }
        op->next = eng->retry;
        eng->retry = op;
        return;
    }
    while (!nixl_fifo_empty(&eng->queue) && eng->inflight < eng->params.kernel_queue_size) {
        px_req_t *req = nixl_list_entry(nixl_fifo_front(&eng->queue), px_req_t, qnode);
        size_t n = 0;
        while (n < 64 && req->next + n < req->nops)
            batch[n] = &req->ops[req->next + n], n++;
        long got = submit_some(eng, batch, n, req->write);
        if (got <= 0 && eng->inflight > 0)
            return; /* the engine is full: its next completion calls us again */
        if (got <= 0) {
            req->next++;
            submit_failed(eng, batch[0], got);
        } else {
            req->next += (size_t)got;
        }
        if (req->next == req->nops)
            nixl_fifo_remove(&eng->queue, &req->qnode);
    }
}

nixl_status_t px_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_xfer_opts_t *opts)
{
    nixl_status_t st = nixl_be_storage_post_begin(eng->host, opts, &req->state, req->nops);
    if (st != NIXL_IN_PROG)
        return st;
    for (size_t i = 0; i < req->nops; i++)
        req->ops[i].done = 0;
    pthread_mutex_lock(&eng->lock);
    req->err = NIXL_SUCCESS;
    req->errmsg[0] = '\0';
    req->next = 0;
    req->remaining = req->nops;
    atomic_store(&req->state, NIXL_IN_PROG);
    nixl_fifo_push(&eng->queue, &req->qnode);
    if (eng->io->ops->kick)
        eng->io->ops->kick(eng->io);
    else
        px_fill(eng);
    pthread_mutex_unlock(&eng->lock);
    return NIXL_IN_PROG;
}

nixl_status_t px_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    int st = atomic_load_explicit(&req->state, memory_order_acquire);
    /* errmsg was written before the state was published */
    return nixl_be_storage_status(eng->host, (nixl_status_t)st, req->errmsg);
}

/* With the lock held: take the request's ops that the I/O engine does not hold yet back. */
static void unqueue(nixl_be_engine_t *eng, px_req_t *req)
{
    if (nixl_fifo_remove(&eng->queue, &req->qnode)) {
        req->remaining -= req->nops - req->next;
        req->next = req->nops;
    }
    for (px_op_t **pp = &eng->retry; *pp;) {
        if ((*pp)->req == req) {
            *pp = (*pp)->next;
            req->remaining--;
        } else {
            pp = &(*pp)->next;
        }
    }
}

nixl_status_t px_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    pthread_mutex_lock(&eng->lock);
    if (atomic_load(&req->state) == NIXL_IN_PROG) {
        unqueue(eng, req);
        if (req->remaining == 0 && req->err == NIXL_SUCCESS)
            req->err = NIXL_ERR_CANCELED;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += PX_RELEASE_WAIT_MS / 1000;
        /* The kernel owns the buffers of ops in flight: wait for them, not for long. */
        while (req->remaining > 0 &&
               pthread_cond_timedwait(&eng->done_cv, &eng->lock, &dl) != ETIMEDOUT) {
        }
        if (req->remaining > 0) {
            size_t in_kernel = req->remaining; /* read under the lock: completions change it */
            pthread_mutex_unlock(&eng->lock);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_REPOST_ACTIVE,
                               "%zu I/Os of the request are still in the kernel after %d ms",
                               in_kernel, PX_RELEASE_WAIT_MS);
        }
    }
    req_free(eng, req);
    pthread_mutex_unlock(&eng->lock);
    return NIXL_SUCCESS;
}
