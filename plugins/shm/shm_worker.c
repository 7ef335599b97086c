/*
 * shm_worker.c - the async worker: posts of at least async_threshold bytes are copied here so
 * that the caller gets IN_PROG at once. One thread per engine, started at the first such post,
 * asleep on a condition variable otherwise. It sends the notification itself after the data,
 * so nobody has to poll for it to go out.
 */
#include <string.h>

#include "shm_priv.h"

/* The worker's job: one posted request, copied in bounded chunks so that release_req (which
 * sets `cancel` and waits) waits for the current chunk only. */
static void worker_run(void *owner, nixl_fifo_node_t *job)
{
    (void)owner;
    nixl_be_req_t *req = nixl_list_entry(job, nixl_be_req_t, job);
    nixl_status_t st = req->gpu     ? shm_gpu_finish(req)
                       : req->stage ? shm_stage_run(req)
                                    : shm_xfer_copy(req, SHM_CHUNK_BYTES, true);
    if (!req->gpu && st == NIXL_SUCCESS && req->has_notif)
        st = shm_xfer_notify(req, req->notif, req->notif_len);
    atomic_store(&req->state, st);
}

void shm_worker_init(nixl_be_engine_t *eng)
{
    nixl_jobq_init(&eng->worker, "shm-worker", worker_run, eng);
}

nixl_status_t shm_worker_submit(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    atomic_store(&req->cancel, false);
    atomic_store(&req->state, NIXL_IN_PROG);
    req->why[0] = '\0';
    int rc = nixl_jobq_push(&eng->worker, &req->job);
    if (rc != 0) {
        atomic_store(&req->state, NIXL_ERR_BACKEND);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "cannot start the worker thread: %s",
                           strerror(rc));
    }
    return NIXL_IN_PROG;
}

void shm_worker_abort(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    if (nixl_jobq_take_back(&eng->worker, &req->job)) {
        atomic_store(&req->state, NIXL_ERR_CANCELED);
        return;
    }
    atomic_store(&req->cancel, true); /* running: it stops after its chunk */
    nixl_jobq_wait_over(&eng->worker, &req->job);
}

void shm_worker_stop(nixl_be_engine_t *eng)
{
    nixl_jobq_stop(&eng->worker);
}
