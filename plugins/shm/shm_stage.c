/*
 * shm_stage.c - GPU memory with another process's host memory: the GPU cannot reach the peer's
 * DRAM and cross-memory attach cannot reach GPU memory, so the bytes go through two pinned
 * buffers of this process (host->gpu's staging), in rounds of SHM_STAGE_ROUND bytes. The worker
 * thread runs it, overlapping the GPU's part of one round with the syscall of the other:
 *   WRITE: the GPU fills buffer k % 2 with round k; while process_vm_writev sends it to the
 *          peer, the GPU already fills the other buffer with round k + 1.
 *   READ:  process_vm_readv brings round k into buffer k % 2 while the GPU empties the other
 *          buffer (round k - 1) into our memory.
 * Between rounds the worker looks for a cancel and for the peer's death, as for large DRAM
 * copies; the notification goes after the last round.
 */
#include <stdio.h>
#include <stdlib.h>

#include "shm_priv.h"

/* Bytes per round: large enough that a syscall and a launch per round cost little, small
 * enough that the two halves overlap for mid-sized requests. */
#define SHM_STAGE_ROUND ((size_t)4 << 20)

struct shm_stage {
    nixl_gpu_stage_t *gs;
    size_t nrounds;
    size_t *first; /* round k's iovecs: [first[k], first[k + 1]) */
    struct iovec *liov, *riov;
};

nixl_status_t shm_stage_prep(nixl_be_engine_t *eng, nixl_be_req_t *req, int device,
                             const nixl_gpu_seg_t *segs, unsigned flags)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    struct shm_stage *s = calloc(1, sizeof(*s));
    if (!s)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory staging a request");
    nixl_gpu_err_t err;
    bool to_far = req->op == NIXL_WRITE;
    nixl_status_t st = g->stage_create(device, to_far, segs, req->count, SHM_STAGE_ROUND, flags,
                                       eng->gpu_max_blocks, &s->gs, &err);
    if (st != NIXL_SUCCESS) {
        free(s);
        return NIXL_BE_ERR(eng->host, st, "staging through pinned memory: %s", err.msg);
    }
    s->nrounds = g->stage_rounds(s->gs);
    size_t total = 0;
    for (size_t k = 0; k < s->nrounds; k++) {
        size_t n;
        g->stage_pieces(s->gs, k, &n);
        total += n;
    }
    s->first = malloc((s->nrounds + 1) * sizeof(*s->first));
    s->liov = malloc((total ? total : 1) * sizeof(*s->liov));
    s->riov = malloc((total ? total : 1) * sizeof(*s->riov));
    if (!s->first || !s->liov || !s->riov) {
        req->stage = s;
        shm_stage_free(eng, req);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory staging a request");
    }
    /* Pieces are {dst, src, len} of our own copy: for WRITE buffer -> peer, for READ peer ->
     * buffer; the iovecs say local (buffer) and remote (peer) whatever the direction. */
    size_t at = 0;
    for (size_t k = 0; k < s->nrounds; k++) {
        size_t n;
        const nixl_gpu_seg_t *p = g->stage_pieces(s->gs, k, &n);
        s->first[k] = at;
        for (size_t i = 0; i < n; i++, at++) {
            uint64_t buf = to_far ? p[i].src : p[i].dst, far = to_far ? p[i].dst : p[i].src;
            s->liov[at] = (struct iovec){(void *)(uintptr_t)buf, (size_t)p[i].len};
            s->riov[at] = (struct iovec){(void *)(uintptr_t)far, (size_t)p[i].len};
        }
    }
    s->first[s->nrounds] = at;
    req->stage = s;
    return NIXL_SUCCESS;
}

void shm_stage_free(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    struct shm_stage *s = req->stage;
    if (!s)
        return;
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    if (s->gs && g)
        g->stage_destroy(s->gs);
    free(s->first);
    free(s->liov);
    free(s->riov);
    free(s);
    req->stage = NULL;
}

static nixl_status_t gpu_step(nixl_be_req_t *req, bool post, size_t k)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(req->eng->host);
    nixl_gpu_err_t err;
    nixl_status_t st = post ? g->stage_post(req->stage->gs, k, &err)
                            : g->stage_wait(req->stage->gs, k, &err);
    if (st != NIXL_SUCCESS)
        snprintf(req->why, sizeof(req->why), "staged round %zu: %s", k, err.msg);
    return st;
}

static nixl_status_t far_step(nixl_be_req_t *req, size_t k)
{
    struct shm_stage *s = req->stage;
    size_t at = s->first[k];
    return shm_xfer_copy_iov(req, s->liov + at, s->riov + at, s->first[k + 1] - at,
                             SHM_CHUNK_BYTES, true);
}

nixl_status_t shm_stage_run(nixl_be_req_t *req)
{
    struct shm_stage *s = req->stage;
    size_t n = s->nrounds;
    nixl_status_t st = NIXL_SUCCESS;
    if (n == 0)
        return NIXL_SUCCESS;
    if (req->op == NIXL_WRITE) {
        st = gpu_step(req, true, 0);
        for (size_t k = 0; st == NIXL_SUCCESS && k < n; k++) {
            st = gpu_step(req, false, k);
            if (st == NIXL_SUCCESS && k + 1 < n)
                st = gpu_step(req, true, k + 1); /* its buffer's last round has left */
            if (st == NIXL_SUCCESS)
                st = far_step(req, k);
        }
        return st;
    }
    st = far_step(req, 0);
    if (st == NIXL_SUCCESS)
        st = gpu_step(req, true, 0);
    for (size_t k = 1; st == NIXL_SUCCESS && k < n; k++) {
        st = far_step(req, k); /* buffer k % 2: round k - 2 left it (waited below before) */
        if (st == NIXL_SUCCESS)
            st = gpu_step(req, false, k - 1);
        if (st == NIXL_SUCCESS)
            st = gpu_step(req, true, k);
    }
    if (st == NIXL_SUCCESS)
        st = gpu_step(req, false, n - 1);
    else
        for (size_t k = 0; k < n; k++) /* let no GPU copy run on into a buffer reused later */
            gpu_step(req, false, k);
    return st;
}
