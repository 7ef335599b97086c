/*
 * obj_worker.c - the engine's one thread: it alone drives the curl multi handle. It sleeps in
 * curl_multi_poll until a socket is ready, a timer of curl's is due, or a post, a cancel or
 * destroy wakes it (curl_multi_wakeup); it never spins.
 *
 * Each loop: carry out the cancels asked for, start exchanges while fewer than max_inflight
 * run (parts of uploads already started first, then the queued requests' jobs in order), let
 * curl move bytes, and account each finished exchange.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "obj_priv.h"

static void link_xfer(nixl_be_engine_t *eng, obj_xfer_t *x)
{
    nixl_list_push(&eng->xfers, &x->node);
}

static void unlink_xfer(nixl_be_engine_t *eng, obj_xfer_t *x)
{
    nixl_list_remove(&eng->xfers, &x->node);
}

/* With the lock held: start one exchange. False with the reason when it could not be made. */
static bool start(nixl_be_engine_t *eng, enum obj_kind kind, obj_job_t *job, size_t part,
                  const char *url, const char *query, char *why, size_t whylen)
{
    obj_xfer_t *x = obj_xfer_new(eng, kind, job, part, url, query, why, whylen);
    if (!x)
        return false;
    CURLMcode mc = curl_multi_add_handle(eng->multi, x->h);
    if (mc != CURLM_OK) {
        snprintf(why, whylen, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        obj_xfer_free(x);
        return false;
    }
    link_xfer(eng, x);
    eng->inflight++;
    if (job)
        job->req->active++;
    return true;
}

/* The first failure of a post is the one reported. */
static void job_fail(obj_job_t *job, nixl_status_t st, const char *why)
{
    obj_req_t *req = job->req;
    if (req->err != NIXL_SUCCESS)
        return;
    req->err = st;
    snprintf(req->errmsg, sizeof(req->errmsg), "descriptor %zu: %s",
             (size_t)(job - req->jobs), why);
}

/* A job is over; the request's last publishes the request's state, but for a READ into VRAM
 * that succeeded: its bytes go to the GPU first (gpu_copies). */
static void job_done(nixl_be_engine_t *eng, obj_job_t *job)
{
    obj_req_t *req = job->req;
    if (--req->remaining)
        return;
    if (req->stage && !req->write && req->err == NIXL_SUCCESS) {
        req->gnext = eng->gpu_reads;
        eng->gpu_reads = req;
        return;
    }
    atomic_store_explicit(&req->state, req->err, memory_order_release);
    pthread_cond_broadcast(&eng->done_cv);
}

/* With the lock held: copy the READs received into pinned memory to their VRAM, with the lock
 * released meanwhile (a post or a check must not wait on a GPU copy), then publish them. The
 * request stays IN_PROG until then, so a release waits for the copy; a cancel asked meanwhile
 * is carried out by do_cancels after it. */
static void gpu_copies(nixl_be_engine_t *eng)
{
    obj_req_t *list = eng->gpu_reads;
    eng->gpu_reads = NULL;
    while (list) {
        obj_req_t *req = list;
        list = req->gnext;
        char why[OBJ_ERR_MAX];
        pthread_mutex_unlock(&eng->lock);
        nixl_status_t st = obj_vram_copy(eng, req, why, sizeof(why));
        pthread_mutex_lock(&eng->lock);
        if (st != NIXL_SUCCESS) {
            req->err = st;
            snprintf(req->errmsg, sizeof(req->errmsg), "%s", why);
        }
        if (!req->cancel) {
            atomic_store_explicit(&req->state, req->err, memory_order_release);
            pthread_cond_broadcast(&eng->done_cv);
        }
    }
}

/* Best effort: drop the parts of an unfinished upload on the server. The exchange belongs to
 * no request (its URL is its own copy). */
static void abort_upload(nixl_be_engine_t *eng, obj_job_t *job)
{
    char q[OBJ_QUERY_MAX], why[OBJ_ERR_MAX];
    if (!job->upload_id || !eng->proto->mpu_abort)
        return;
    eng->proto->query(eng, OBJ_MPU_ABORT, job->upload_id, 0, q, sizeof(q));
    if (!start(eng, OBJ_MPU_ABORT, NULL, 0, job->md->url, q, why, sizeof(why)))
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "upload of %s not aborted: %s", job->md->key, why);
    free(job->upload_id);
    job->upload_id = NULL;
}

static void mpu_unready(nixl_be_engine_t *eng, obj_job_t *job)
{
    for (size_t i = 0; i < eng->nmpu; i++)
        if (eng->mpu_ready[i] == job) {
            memmove(&eng->mpu_ready[i], &eng->mpu_ready[i + 1],
                    (eng->nmpu - i - 1) * sizeof(eng->mpu_ready[0]));
            eng->nmpu--;
            return;
        }
}

/* The upload's parts may go; false when out of memory. */
static bool mpu_ready(nixl_be_engine_t *eng, obj_job_t *job)
{
    obj_job_t **slot = nixl_array_push(eng->mpu_ready, eng->nmpu, eng->cap_mpu);
    if (!slot)
        return false;
    *slot = job;
    job->next_part = 0;
    job->parts_left = job->nparts;
    return true;
}

/* A part ended (ok or not): when none is left, complete the upload or abort it. */
static void part_end(nixl_be_engine_t *eng, obj_job_t *job, bool ok, const char *why)
{
    if (!ok) {
        job_fail(job, NIXL_ERR_BACKEND, why);
        job->failed = true;
        if (job->next_part < job->nparts) { /* send no more parts */
            job->parts_left -= job->nparts - job->next_part;
            job->next_part = job->nparts;
            mpu_unready(eng, job);
        }
    }
    if (--job->parts_left)
        return;
    char q[OBJ_QUERY_MAX], w[OBJ_ERR_MAX];
    if (!job->failed) {
        eng->proto->query(eng, OBJ_MPU_DONE, job->upload_id, 0, q, sizeof(q));
        if (start(eng, OBJ_MPU_DONE, job, 0, job->md->url, q, w, sizeof(w)))
            return;
        job_fail(job, NIXL_ERR_UNKNOWN, w);
    }
    abort_upload(eng, job);
    job_done(eng, job);
}

/* With the lock held: start exchanges up to max_inflight. */
static void fill(nixl_be_engine_t *eng)
{
    char why[OBJ_ERR_MAX], q[OBJ_QUERY_MAX];
    while (eng->inflight < eng->p.max_inflight) {
        if (eng->nmpu) {
            obj_job_t *job = eng->mpu_ready[0];
            size_t k = job->next_part++;
            if (job->next_part == job->nparts)
                mpu_unready(eng, job);
            eng->proto->query(eng, OBJ_MPU_PART, job->upload_id, k, q, sizeof(q));
            if (!start(eng, OBJ_MPU_PART, job, k, job->md->url, q, why, sizeof(why)))
                part_end(eng, job, false, why);
            continue;
        }
        nixl_fifo_node_t *front = nixl_fifo_front(&eng->queue);
        if (!front)
            return;
        obj_req_t *req = nixl_list_entry(front, obj_req_t, qnode);
        obj_job_t *job = &req->jobs[req->next++];
        if (req->next == req->njobs)
            nixl_fifo_remove(&eng->queue, &req->qnode);
        enum obj_kind kind = !req->write ? OBJ_GET : job->mpu ? OBJ_MPU_INIT : OBJ_PUT;
        if (kind == OBJ_MPU_INIT && !eng->proto->mpu_init) { /* its parts may go at once */
            if (!mpu_ready(eng, job)) {
                job_fail(job, NIXL_ERR_UNKNOWN, "out of memory");
                job_done(eng, job);
            }
            continue;
        }
        eng->proto->query(eng, kind, NULL, 0, q, sizeof(q));
        if (!start(eng, kind, job, 0, job->md->url, q, why, sizeof(why))) {
            job_fail(job, NIXL_ERR_UNKNOWN, why);
            job_done(eng, job);
        }
    }
}

/* With the lock held: an exchange ended with `code`. */
static void finish(nixl_be_engine_t *eng, obj_xfer_t *x, CURLcode code)
{
    char why[OBJ_ERR_MAX];
    obj_job_t *job = x->job;
    unlink_xfer(eng, x);
    eng->inflight--;
    bool ok = obj_xfer_ok(x, code, why, sizeof(why));
    if (!job) {
        if (!ok)
            NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "%s", why);
        obj_xfer_free(x);
        return;
    }
    job->req->active--;
    if (job->req->cancel) { /* the cancel in the queue completes the request */
        obj_xfer_free(x);
        return;
    }
    switch (x->kind) {
    case OBJ_MPU_INIT: {
        char id[400];
        if (ok && !obj_xml_text(x->body, x->blen, "UploadId", id, sizeof(id))) {
            snprintf(why, sizeof(why), "CreateMultipartUpload %s: no UploadId in the answer",
                     x->shown);
            ok = false;
        }
        if (ok && !(job->upload_id = strdup(id))) {
            snprintf(why, sizeof(why), "out of memory");
            ok = false;
        }
        if (ok && mpu_ready(eng, job))
            break;
        if (ok)
            snprintf(why, sizeof(why), "out of memory");
        job_fail(job, ok ? NIXL_ERR_UNKNOWN : NIXL_ERR_BACKEND, why);
        abort_upload(eng, job);
        job_done(eng, job);
        break;
    }
    case OBJ_MPU_PART:
        if (ok && eng->proto->part_etag && !x->etag[0]) {
            snprintf(why, sizeof(why), "UploadPart %s: no ETag in the answer", x->shown);
            ok = false;
        }
        if (ok)
            memcpy(job->etags[x->part], x->etag, sizeof(job->etags[0]));
        part_end(eng, job, ok, why);
        break;
    case OBJ_MPU_DONE:
        if (!ok) {
            job_fail(job, NIXL_ERR_BACKEND, why);
            abort_upload(eng, job);
        }
        free(job->upload_id);
        job->upload_id = NULL;
        job_done(eng, job);
        break;
    default: /* GET, PUT */
        if (!ok)
            job_fail(job, NIXL_ERR_BACKEND, why);
        job_done(eng, job);
    }
    obj_xfer_free(x);
}

/* With the lock held: stop the requests marked for it; nothing of them runs afterwards. */
static void do_cancels(nixl_be_engine_t *eng)
{
    obj_req_t *req;
    while ((req = eng->cancels)) {
        eng->cancels = req->cnext;
        for (nixl_list_node_t *n = eng->xfers, *nn; n; n = nn) {
            nn = n->next;
            obj_xfer_t *x = nixl_list_entry(n, obj_xfer_t, node);
            if (x->job && x->job->req == req) {
                curl_multi_remove_handle(eng->multi, x->h);
                unlink_xfer(eng, x);
                eng->inflight--;
                obj_xfer_free(x);
            }
        }
        nixl_fifo_remove(&eng->queue, &req->qnode);
        for (size_t i = 0; i < req->njobs; i++) {
            mpu_unready(eng, &req->jobs[i]);
            abort_upload(eng, &req->jobs[i]);
        }
        req->active = 0;
        req->remaining = 0;
        req->cancel = false;
        snprintf(req->errmsg, sizeof(req->errmsg), "the transfer was cancelled");
        atomic_store_explicit(&req->state, NIXL_ERR_CANCELED, memory_order_release);
        pthread_cond_broadcast(&eng->done_cv);
    }
}

static void *worker(void *arg)
{
    nixl_be_engine_t *eng = arg;
    for (;;) {
        pthread_mutex_lock(&eng->lock);
        if (eng->stop) {
            pthread_mutex_unlock(&eng->lock);
            break;
        }
        do_cancels(eng);
        fill(eng);
        pthread_mutex_unlock(&eng->lock);
        int running = 0;
        curl_multi_perform(eng->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(eng->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            obj_xfer_t *x = NULL;
            CURLcode code = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            curl_multi_remove_handle(eng->multi, x->h);
            pthread_mutex_lock(&eng->lock);
            finish(eng, x, code);
            pthread_mutex_unlock(&eng->lock);
        }
        pthread_mutex_lock(&eng->lock);
        gpu_copies(eng);
        bool more = eng->cancels || eng->stop ||
                    ((!nixl_fifo_empty(&eng->queue) || eng->nmpu) && eng->inflight < eng->p.max_inflight);
        pthread_mutex_unlock(&eng->lock);
        if (!more) /* curl shortens the wait to its own next timer */
            curl_multi_poll(eng->multi, NULL, 0, 60000, NULL);
    }
    return NULL;
}

void obj_worker_wake(nixl_be_engine_t *eng)
{
    curl_multi_wakeup(eng->multi);
}

int obj_worker_start(nixl_be_engine_t *eng)
{
    int rc = pthread_create(&eng->worker, NULL, worker, eng);
    eng->worker_started = rc == 0;
    return rc;
}

void obj_worker_stop(nixl_be_engine_t *eng)
{
    if (eng->worker_started) {
        pthread_mutex_lock(&eng->lock);
        eng->stop = true;
        pthread_mutex_unlock(&eng->lock);
        obj_worker_wake(eng);
        pthread_join(eng->worker, NULL);
        eng->worker_started = false;
    }
    while (eng->xfers) {
        obj_xfer_t *x = nixl_list_entry(eng->xfers, obj_xfer_t, node);
        curl_multi_remove_handle(eng->multi, x->h);
        unlink_xfer(eng, x);
        obj_xfer_free(x);
    }
    eng->inflight = 0;
}
