/*
 * obj_vram.c - GPU memory to and from objects. HTTP (libcurl) reads and writes host memory
 * only, so the VRAM descriptors of a request go through one pinned host buffer that the request
 * keeps from prep to release (the core's staging services, host->gpu, in one round: the whole
 * request's VRAM, so a PUT or a multipart upload sends an object from one contiguous piece):
 *   WRITE: VRAM -> buffer (one GPU batch, at post), then the jobs send from the buffer;
 *   READ:  the jobs receive into the buffer, then buffer -> VRAM (the worker, after the last
 *          job succeeded), and only then is the request SUCCESS.
 * The GPU copies run at PCIe speed (tens of GB/s), far above what HTTP moves, so waiting for
 * them costs little; their buffer is bounded by vram_stage_max per request.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "obj_priv.h"

#define OBJ_STAGE_ALIGN ((size_t)1 << 20) /* pinned buffers of one size are reused: round up */

nixl_status_t obj_vram_register(nixl_be_engine_t *eng, size_t i, const nixl_reg_desc_t *d,
                                nixl_be_md_t *md)
{
    /* The core has checked that the region is GPU memory of the GPU its devId names
     * (nixl_gpu_check_vram); what staging needs here is the GPU services themselves. */
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    if (!g || g->device_count() == 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "descriptor %zu: VRAM, but this process has no CUDA driver or no GPU",
                           i);
    md->gpu = (int)d->dev_id;
    return NIXL_SUCCESS;
}

nixl_status_t obj_vram_prep(nixl_be_engine_t *eng, obj_req_t *req, const nixl_be_desc_t *const *mem)
{
    size_t n = 0;
    uint64_t total = 0;
    int device = -1;
    for (size_t i = 0; i < req->njobs; i++) {
        if (mem[i]->md->type != NIXL_VRAM_SEG)
            continue;
        if (device >= 0 && mem[i]->md->gpu != device)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: GPU %d, but earlier descriptors are on GPU %d: "
                               "a request stages the memory of one GPU; split the list per GPU",
                               i, mem[i]->md->gpu, device);
        device = mem[i]->md->gpu;
        n++;
        total += mem[i]->len;
    }
    if (!n)
        return NIXL_SUCCESS;
    if (total > eng->p.vram_stage_max)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "%" PRIu64 " bytes of VRAM in one request, more than vram_stage_max "
                           "(%" PRIu64 "): the request stages them all in pinned memory; split "
                           "it or raise the parameter",
                           total, eng->p.vram_stage_max);
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    nixl_gpu_seg_t *segs = malloc(n * sizeof(*segs));
    if (!segs)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    /* The far side of each copy is the job's place in the buffer, which staging assigns: only
     * the GPU side matters here (WRITE: src, READ: dst). */
    for (size_t i = 0, k = 0; i < req->njobs; i++)
        if (mem[i]->md->type == NIXL_VRAM_SEG)
            segs[k++] = req->write ? (nixl_gpu_seg_t){0, mem[i]->addr, mem[i]->len}
                                   : (nixl_gpu_seg_t){mem[i]->addr, 0, mem[i]->len};
    size_t round = (size_t)((total + OBJ_STAGE_ALIGN - 1) / OBJ_STAGE_ALIGN * OBJ_STAGE_ALIGN);
    nixl_gpu_err_t err;
    nixl_status_t st = g->stage_create(device, req->write, segs, n, round, 0, 0, &req->stage, &err);
    free(segs);
    if (st != NIXL_SUCCESS) {
        req->stage = NULL;
        return NIXL_BE_ERR(eng->host, st, "staging %" PRIu64 " bytes of VRAM: %s", total, err.msg);
    }
    /* One round, so one piece per VRAM descriptor, in order; each job's bytes are its piece's
     * part of the buffer (WRITE: the piece's source, READ: its destination). */
    size_t npieces = 0;
    const nixl_gpu_seg_t *pc = g->stage_rounds(req->stage) == 1
                                   ? g->stage_pieces(req->stage, 0, &npieces)
                                   : NULL;
    if (npieces != n) {
        g->stage_destroy(req->stage);
        req->stage = NULL;
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN,
                           "staging cut %zu VRAM descriptors into %zu pieces", n, npieces);
    }
    for (size_t i = 0, k = 0; i < req->njobs; i++)
        if (mem[i]->md->type == NIXL_VRAM_SEG) {
            req->jobs[i].buf = (char *)(uintptr_t)(req->write ? pc[k].src : pc[k].dst);
            k++;
        }
    return NIXL_SUCCESS;
}

nixl_status_t obj_vram_copy(nixl_be_engine_t *eng, obj_req_t *req, char *why, size_t whylen)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    nixl_gpu_err_t err;
    nixl_status_t st = g->stage_post(req->stage, 0, &err);
    if (st == NIXL_SUCCESS)
        st = g->stage_wait(req->stage, 0, &err);
    if (st != NIXL_SUCCESS)
        snprintf(why, whylen, "copying %s the GPU through pinned memory: %s",
                 req->write ? "from" : "to", err.msg);
    return st;
}
