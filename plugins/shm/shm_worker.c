/*
 * shm_worker.c - the async worker: posts of at least async_threshold bytes are copied here so
 * that the caller gets IN_PROG at once. One thread per engine, started at the first such post,
 * asleep on a condition variable otherwise. It sends the notification itself after the data,
 * so nobody has to poll for it to go out.
 */
#include <string.h>

#include "shm_priv.h"

static void *worker_main(void *arg)
{
    nixl_be_engine_t *eng = arg;
    pthread_mutex_lock(&eng->work_lock);
    for (;;) {
        while (!eng->wq_head && !eng->worker_stop)
            pthread_cond_wait(&eng->work_cond, &eng->work_lock);
        nixl_be_req_t *req = eng->wq_head;
        if (!req)
            break; /* stopping, and nothing left */
        eng->wq_head = req->wnext;
        if (!eng->wq_head)
            eng->wq_tail = &eng->wq_head;
        req->queued = false;
        req->running = true;
        pthread_mutex_unlock(&eng->work_lock);

        /* Bounded chunks: release_req sets `cancel` and waits for the current one only. */
        nixl_status_t st = req->gpu     ? shm_gpu_finish(req)
                           : req->stage ? shm_stage_run(req)
                                        : shm_xfer_copy(req, SHM_CHUNK_BYTES, true);
        if (!req->gpu && st == NIXL_SUCCESS && req->has_notif)
            st = shm_xfer_notify(req, req->notif, req->notif_len);

        pthread_mutex_lock(&eng->work_lock);
        atomic_store(&req->state, st);
        req->running = false;
        pthread_cond_broadcast(&eng->done_cond);
    }
    pthread_mutex_unlock(&eng->work_lock);
    return NULL;
}

nixl_status_t shm_worker_submit(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    pthread_mutex_lock(&eng->work_lock);
    if (!eng->worker_started) {
        int rc = pthread_create(&eng->worker, NULL, worker_main, eng);
        if (rc != 0) {
            pthread_mutex_unlock(&eng->work_lock);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "cannot start the worker thread: %s",
                               strerror(rc));
        }
        eng->worker_started = true;
    }
    atomic_store(&req->cancel, false);
    atomic_store(&req->state, NIXL_IN_PROG);
    req->why[0] = '\0';
    req->queued = true;
    req->wnext = NULL;
    *eng->wq_tail = req;
    eng->wq_tail = &req->wnext;
    pthread_cond_signal(&eng->work_cond);
    pthread_mutex_unlock(&eng->work_lock);
    return NIXL_IN_PROG;
}

void shm_worker_abort(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    pthread_mutex_lock(&eng->work_lock);
    if (req->queued) {
        nixl_be_req_t **pp = &eng->wq_head;
        while (*pp != req)
            pp = &(*pp)->wnext;
        *pp = req->wnext;
        if (eng->wq_tail == &req->wnext)
            eng->wq_tail = pp;
        req->queued = false;
        atomic_store(&req->state, NIXL_ERR_CANCELED);
    }
    if (req->running) {
        atomic_store(&req->cancel, true);
        while (req->running)
            pthread_cond_wait(&eng->done_cond, &eng->work_lock);
    }
    pthread_mutex_unlock(&eng->work_lock);
}

void shm_worker_stop(nixl_be_engine_t *eng)
{
    pthread_mutex_lock(&eng->work_lock);
    eng->worker_stop = true;
    pthread_cond_signal(&eng->work_cond);
    bool started = eng->worker_started;
    pthread_mutex_unlock(&eng->work_lock);
    if (started)
        pthread_join(eng->worker, NULL);
    eng->worker_started = false;
}
