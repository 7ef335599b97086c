/*
 * obj_xfer.c - prepared transfers between DRAM and objects: prep checks everything that can
 * be checked before the server sees a byte (the pair of memory types, equal lengths, writes
 * from offset 0), post queues the request for the worker, release stops what is in flight.
 *
 * READ of [off, off + len) of an object is one ranged GET into the buffer; WRITE puts the whole
 * object from the buffer: one PUT, or a multipart upload when it is multipart_threshold or
 * larger (parts of multipart_part_size, sent in parallel). A VRAM buffer is staged through
 * pinned memory (obj_vram.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "be_storage.h"
#include "obj_priv.h"

static nixl_be_side_t side(const nixl_be_md_t *md)
{
    if (md && md->type == NIXL_OBJ_SEG)
        return NIXL_BE_SIDE_STORAGE;
    return md && (md->type == NIXL_DRAM_SEG || md->type == NIXL_VRAM_SEG) ? NIXL_BE_SIDE_MEM
                                                                          : NIXL_BE_SIDE_OTHER;
}

static nixl_status_t prep_job(nixl_be_engine_t *eng, bool write, size_t i,
                              const nixl_be_desc_t *mem, const nixl_be_desc_t *obj, obj_job_t *job)
{
    if (!mem->len)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "descriptor %zu: length 0", i);
    if (write && obj->addr != 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: a WRITE puts the whole object '%s', so its offset "
                           "must be 0 (%" PRIu64 " given)",
                           i, obj->md->key, (uint64_t)obj->addr);
    job->md = obj->md;
    job->buf = (char *)mem->addr;
    job->len = mem->len;
    job->off = obj->addr;
    job->mpu = write && mem->len >= eng->p.mpu_threshold;
    if (job->mpu) {
        job->nparts = (mem->len + eng->p.part_size - 1) / eng->p.part_size;
        if (job->nparts > eng->proto->max_parts)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: %zu bytes need %zu parts of %" PRIu64
                               " bytes, more than the %zu that %s allows",
                               i, mem->len, job->nparts, eng->p.part_size,
                               eng->proto->max_parts, eng->proto->name);
        job->etags = calloc(job->nparts, sizeof(job->etags[0]));
        if (!job->etags)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    return NIXL_SUCCESS;
}

static void req_free(obj_req_t *req)
{
    if (req->stage)
        nixl_host_gpu(req->eng->host)->stage_destroy(req->stage);
    for (size_t i = 0; i < req->njobs; i++) {
        free(req->jobs[i].etags);
        free(req->jobs[i].upload_id);
    }
    free(req->jobs);
    free(req);
}

nixl_status_t obj_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op, const nixl_be_desc_t *local,
                            const nixl_be_desc_t *remote, size_t count, const char *agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out)
{
    (void)agent; /* a local-only engine is only handed its own agent's name */
    nixl_status_t st = nixl_be_storage_no_notif(eng->host, opts);
    if (st != NIXL_SUCCESS)
        return st;
    if (count > eng->p.max_descs)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "%zu descriptors in one request, more than max_descs (%" PRIu64 ")",
                           count, eng->p.max_descs);
    obj_req_t *req = calloc(1, sizeof(*req));
    if (req)
        req->jobs = calloc(count ? count : 1, sizeof(obj_job_t));
    if (!req || !req->jobs) {
        free(req);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    req->eng = eng;
    req->write = op == NIXL_WRITE;
    const nixl_be_desc_t **mems = malloc((count ? count : 1) * sizeof(*mems));
    if (!mems)
        st = NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    for (size_t i = 0; i < count && st == NIXL_SUCCESS; i++) {
        const nixl_be_desc_t *obj;
        st = nixl_be_storage_pair(eng->host, i, &local[i], side(local[i].md), &remote[i],
                                  side(remote[i].md), "DRAM or VRAM and OBJ", &mems[i], &obj);
        req->jobs[i].req = req;
        req->njobs = i + 1;
        if (st == NIXL_SUCCESS)
            st = prep_job(eng, req->write, i, mems[i], obj, &req->jobs[i]);
    }
    if (st == NIXL_SUCCESS)
        st = obj_vram_prep(eng, req, mems);
    free(mems);
    if (st != NIXL_SUCCESS) {
        req_free(req);
        return st;
    }
    req->njobs = count;
    atomic_store(&req->state, NIXL_ERR_NOT_POSTED);
    pthread_mutex_lock(&eng->lock);
    eng->live_reqs++;
    pthread_mutex_unlock(&eng->lock);
    *out = req;
    return NIXL_SUCCESS;
}

nixl_status_t obj_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts)
{
    nixl_status_t st = nixl_be_storage_post_begin(eng->host, opts, &req->state, req->njobs);
    if (st != NIXL_IN_PROG)
        return st;
    if (req->stage && req->write) { /* the bytes must be in the buffer before a job sends */
        char why[OBJ_ERR_MAX];
        st = obj_vram_copy(eng, req, why, sizeof(why));
        if (st != NIXL_SUCCESS) {
            snprintf(req->errmsg, sizeof(req->errmsg), "%s", why);
            atomic_store(&req->state, st);
            return nixl_be_storage_status(eng->host, st, req->errmsg);
        }
    }
    pthread_mutex_lock(&eng->lock);
    req->err = NIXL_SUCCESS;
    req->errmsg[0] = '\0';
    req->next = 0;
    req->remaining = req->njobs;
    req->active = 0;
    req->cancel = false;
    for (size_t i = 0; i < req->njobs; i++) {
        obj_job_t *j = &req->jobs[i];
        free(j->upload_id);
        j->upload_id = NULL;
        j->next_part = j->parts_left = 0;
        j->failed = false;
    }
    atomic_store(&req->state, NIXL_IN_PROG);
    nixl_fifo_push(&eng->queue, &req->qnode);
    pthread_mutex_unlock(&eng->lock);
    obj_worker_wake(eng);
    return NIXL_IN_PROG;
}

nixl_status_t obj_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    int st = atomic_load_explicit(&req->state, memory_order_acquire);
    return nixl_be_storage_status(eng->host, (nixl_status_t)st, req->errmsg);
}

/* With the lock held: ask the worker to stop the request (once). */
static void mark_cancel(nixl_be_engine_t *eng, obj_req_t *req)
{
    if (req->cancel)
        return;
    req->cancel = true;
    req->cnext = eng->cancels;
    eng->cancels = req;
}

nixl_status_t obj_cancel_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    pthread_mutex_lock(&eng->lock);
    nixl_status_t st = (nixl_status_t)atomic_load(&req->state);
    if (st == NIXL_IN_PROG)
        mark_cancel(eng, req);
    pthread_mutex_unlock(&eng->lock);
    if (st == NIXL_IN_PROG)
        obj_worker_wake(eng);
    return st;
}

nixl_status_t obj_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    pthread_mutex_lock(&eng->lock);
    if (atomic_load(&req->state) == NIXL_IN_PROG) {
        mark_cancel(eng, req);
        obj_worker_wake(eng);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += OBJ_RELEASE_WAIT_MS / 1000;
        /* The worker takes the exchanges off the multi handle: after that no callback touches
         * the caller's memory. It answers at once unless it is stuck in a callback. */
        while (atomic_load(&req->state) == NIXL_IN_PROG &&
               pthread_cond_timedwait(&eng->done_cv, &eng->lock, &dl) != ETIMEDOUT) {
        }
        if (atomic_load(&req->state) == NIXL_IN_PROG) {
            pthread_mutex_unlock(&eng->lock);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_REPOST_ACTIVE,
                               "the request's HTTP exchanges did not stop within %d ms",
                               OBJ_RELEASE_WAIT_MS);
        }
    }
    eng->live_reqs--;
    pthread_mutex_unlock(&eng->lock);
    req_free(req);
    return NIXL_SUCCESS;
}
