/*
 * shm_gpu.c - GPU memory (VRAM) on the same-host path.
 *
 * A local VRAM region is exported with CUDA IPC when it is registered: its blob carries the
 * handle of the allocation that holds it, the allocation's base and size and its GPU. A peer
 * maps the allocation when it loads the region (the core's host->gpu counts mappings, so the
 * regions of one allocation share one) and unmaps it when the region is unloaded. Two agents
 * of one process, and an agent with itself, use the addresses as they are.
 *
 * A request that touches VRAM on either side is a GPU request: its copies run on the GPU (one
 * kernel launch for the whole list, see src/gpu), addressed through the local pointers and the
 * peer's mapped ones. Host memory can take part only where the GPU can reach it, which is this
 * process's own memory: local DRAM (any), and the peer's DRAM when the peer is this process.
 * The peer's DRAM in another process goes through pinned buffers (shm_stage.c).
 *
 * Completion: post launches and returns IN_PROG; check_xfer asks the GPU. With a notification
 * the worker thread waits (asleep on the event) and sends it after the data, so nobody has to
 * poll for it. A request whose peer died meanwhile fails with REMOTE_DISCONNECT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm_priv.h"

/* Region blob: "NXSV", u32 version, u32 flags, i32 device, u64 base, u64 size, handle. */
#define SHM_VBLOB_MAGIC 0x5653584eu
#define SHM_VBLOB_VERSION 1u
#define SHM_VBLOB_HAS_HANDLE 1u
#define SHM_VBLOB_LEN (32u + NIXL_GPU_IPC_LEN)

struct shm_vlmd {
    shm_md_hdr_t md; /* SHM_MD_VRAM */
    int device;
    uintptr_t base;
    size_t size;
    uint8_t blob[SHM_VBLOB_LEN];
};

const nixl_gpu_ops_t *shm_gpu(nixl_be_engine_t *eng)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    return g && g->device_count() > 0 ? g : NULL;
}

nixl_status_t shm_gpu_register(nixl_be_engine_t *eng, const nixl_reg_desc_t *descs,
                               size_t count, nixl_be_md_t **out_mds)
{
    const nixl_gpu_ops_t *g = shm_gpu(eng);
    if (!g)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "VRAM needs a GPU and the CUDA driver; this process has none");
    size_t i = 0;
    nixl_gpu_err_t err;
    nixl_status_t st = NIXL_SUCCESS;
    for (; i < count; i++) {
        nixl_gpu_ptr_t p = {0};
        st = g->ptr_query(descs[i].addr, descs[i].len, &p, &err);
        if (st == NIXL_SUCCESS && p.kind != NIXL_GPU_MEM_DEVICE &&
            p.kind != NIXL_GPU_MEM_MANAGED) {
            st = NIXL_ERR_INVALID_PARAM;
            snprintf(err.msg, sizeof(err.msg), "not GPU memory");
        }
        if (st != NIXL_SUCCESS) {
            (void)NIXL_BE_ERR(eng->host, st, "VRAM region %zu (0x%llx): %s", i,
                        (unsigned long long)descs[i].addr, err.msg);
            goto err_undo;
        }
        shm_vlmd_t *m = calloc(1, sizeof(*m));
        if (!m) {
            (void)NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory registering VRAM");
            st = NIXL_ERR_UNKNOWN;
            goto err_undo;
        }
        m->md.kind = SHM_MD_VRAM;
        m->device = p.device;
        m->base = p.base;
        m->size = p.size;
        uint8_t handle[NIXL_GPU_IPC_LEN] = {0};
        uintptr_t base = p.base;
        /* Loopback needs no handle: a region that cannot be shared still works there, and a
         * peer that loads it is told why it cannot use it. */
        bool shared = g->ipc_export(descs[i].addr, handle, &base, &err) == NIXL_SUCCESS;
        if (!shared)
            NIXL_BE_LOG(eng->host, NIXL_LOG_INFO, "VRAM region %zu can be used in loopback "
                        "only: %s", i, err.msg);
        uint8_t *b = m->blob;
        shm_put_u32(b, SHM_VBLOB_MAGIC);
        shm_put_u32(b + 4, SHM_VBLOB_VERSION);
        shm_put_u32(b + 8, shared ? SHM_VBLOB_HAS_HANDLE : 0);
        shm_put_u32(b + 12, (uint32_t)p.device);
        shm_put_u64(b + 16, (uint64_t)p.base);
        shm_put_u64(b + 24, (uint64_t)p.size);
        memcpy(b + 32, handle, NIXL_GPU_IPC_LEN);
        out_mds[i] = (nixl_be_md_t *)m;
    }
    return NIXL_SUCCESS;

err_undo:
    while (i--)
        free(out_mds[i]);
    return st;
}

void shm_gpu_deregister(shm_vlmd_t *m)
{
    free(m);
}

nixl_be_blob_t shm_gpu_blob(shm_vlmd_t *m)
{
    return (nixl_be_blob_t){.data = m->blob, .len = SHM_VBLOB_LEN};
}

static shm_vrmd_t *vrmd_new(shm_peer_t *peer, int device, uintptr_t rbase, size_t size,
                            uintptr_t mapped, bool opened)
{
    shm_vrmd_t *r = malloc(sizeof(*r));
    if (!r)
        return NULL;
    *r = (shm_vrmd_t){.md.kind = SHM_MD_VRAM_PEER, .peer = peer, .device = device,
                      .rbase = rbase, .size = size, .mapped = mapped, .opened = opened};
    shm_peer_ref(peer, 1);
    return r;
}

nixl_status_t shm_gpu_load_remote(nixl_be_engine_t *eng, shm_peer_t *peer,
                                  const nixl_desc_t *descs, const nixl_be_blob_t *blobs,
                                  size_t count, nixl_be_md_t **out_mds)
{
    const nixl_gpu_ops_t *g = shm_gpu(eng);
    if (!g)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "'%s' offers VRAM, but this process has no GPU and CUDA driver",
                           peer->name);
    bool same_process = peer->is_self || peer->pid == eng->self->pid;
    int ndev = g->device_count();
    size_t i = 0;
    nixl_status_t st = NIXL_SUCCESS;
    for (; i < count; i++) {
        const uint8_t *b = blobs ? blobs[i].data : NULL;
        if (!b || blobs[i].len != SHM_VBLOB_LEN || shm_get_u32(b) != SHM_VBLOB_MAGIC ||
            shm_get_u32(b + 4) != SHM_VBLOB_VERSION) {
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                             "VRAM region %zu of '%s' has no valid SHM GPU blob (%zu bytes)", i,
                             peer->name, blobs ? blobs[i].len : 0);
            goto err_undo;
        }
        uint32_t flags = shm_get_u32(b + 8);
        int device = (int)shm_get_u32(b + 12);
        uint64_t rbase = shm_get_u64(b + 16), size = shm_get_u64(b + 24);
        uint64_t addr = descs[i].addr, len = descs[i].len;
        if (size == 0 || rbase + size < rbase || addr < rbase || len > size ||
            addr - rbase > size - len) {
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                             "VRAM region %zu of '%s' [0x%llx, +%llu) lies outside the "
                             "allocation its blob describes [0x%llx, +%llu)",
                             i, peer->name, (unsigned long long)addr, (unsigned long long)len,
                             (unsigned long long)rbase, (unsigned long long)size);
            goto err_undo;
        }
        uintptr_t mapped = (uintptr_t)rbase;
        bool opened = false;
        if (!same_process) {
            if (!(flags & SHM_VBLOB_HAS_HANDLE)) {
                st = NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                                 "VRAM region %zu of '%s' cannot be shared between processes "
                                 "(its owner could not export it with CUDA IPC)",
                                 i, peer->name);
                goto err_undo;
            }
            /* Map on the GPU of the same number when this process sees it (the usual case
             * of processes sharing a host's GPUs), else on GPU 0 with peer access. */
            int on = device >= 0 && device < ndev ? device : 0;
            nixl_gpu_err_t err;
            st = g->ipc_open(b + 32, on, &mapped, &err);
            if (st != NIXL_SUCCESS) {
                (void)NIXL_BE_ERR(eng->host, st, "VRAM region %zu of '%s': %s", i, peer->name,
                            err.msg);
                goto err_undo;
            }
            opened = true;
            device = on;
        }
        shm_vrmd_t *r = vrmd_new(peer, device, (uintptr_t)rbase, (size_t)size, mapped, opened);
        if (!r) {
            if (opened)
                g->ipc_close(mapped);
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory loading VRAM regions");
            goto err_undo;
        }
        out_mds[i] = (nixl_be_md_t *)r;
    }
    return NIXL_SUCCESS;

err_undo:
    while (i--)
        shm_gpu_unload(eng, (shm_vrmd_t *)out_mds[i]);
    return st;
}

nixl_status_t shm_gpu_load_local(nixl_be_engine_t *eng, shm_vlmd_t *m, nixl_be_md_t **out)
{
    shm_vrmd_t *r = vrmd_new(eng->self, m->device, m->base, m->size, m->base, false);
    if (!r)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory loading VRAM regions");
    *out = (nixl_be_md_t *)r;
    return NIXL_SUCCESS;
}

void shm_gpu_unload(nixl_be_engine_t *eng, shm_vrmd_t *r)
{
    if (r->opened) {
        const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
        if (g)
            g->ipc_close(r->mapped);
    }
    shm_peer_unref(r->peer, 1);
    free(r);
}

/* ---- requests ---- */

/* Where one side of an element is, as this process addresses it. *far: the peer's host memory
 * in another process, which the GPU cannot reach (the request is staged, shm_stage.c). */
static void side_addr(const nixl_be_desc_t *d, bool remote, bool peer_here, uint64_t *addr,
                      int *device, bool *host, bool *far)
{
    const shm_md_hdr_t *h = (const shm_md_hdr_t *)d->md;
    *device = -1;
    *host = *far = false;
    *addr = d->addr;
    if (h->kind == SHM_MD_VRAM) {
        *device = ((const shm_vlmd_t *)h)->device;
    } else if (h->kind == SHM_MD_VRAM_PEER) {
        const shm_vrmd_t *r = (const shm_vrmd_t *)h;
        *addr = (uint64_t)r->mapped + (d->addr - (uint64_t)r->rbase);
        *device = r->device;
    } else {
        *host = true;
        *far = remote && !peer_here;
    }
}

nixl_status_t shm_gpu_prep(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_desc_t *local, const nixl_be_desc_t *remote)
{
    const nixl_gpu_ops_t *g = shm_gpu(eng);
    if (!g)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED, "VRAM without a GPU");
    size_t count = req->count;
    nixl_gpu_seg_t *segs = malloc(count * sizeof(*segs));
    if (!segs)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory preparing %zu GPU copies",
                           count);
    int device = -1;
    unsigned flags = 0;
    size_t nfar = 0;
    bool host_checked = false;
    uintptr_t pinned_lo = 0, pinned_hi = 0; /* the last pinned range seen */
    nixl_status_t st = NIXL_SUCCESS;
    /* eng->self's pid, not getpid(): a system call per descriptor otherwise */
    bool peer_here = req->peer->is_self || req->peer->pid == eng->self->pid;
    for (size_t i = 0; i < count; i++) {
        uint64_t la, ra;
        int ldev, rdev;
        bool lhost, rhost, lfar, rfar;
        side_addr(&local[i], false, peer_here, &la, &ldev, &lhost, &lfar);
        side_addr(&remote[i], true, peer_here, &ra, &rdev, &rhost, &rfar);
        nfar += rfar;
        int dev = ldev >= 0 ? ldev : rdev;
        if (dev >= 0 && device >= 0 && dev != device) {
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                             "descriptor %zu: GPU %d, but earlier descriptors are on GPU %d: "
                             "a request moves the memory of one GPU; split the list per GPU",
                             i, dev, device);
            goto out;
        }
        if (dev >= 0)
            device = dev;
        /* Host sides the GPU touches: a kernel reaches pinned memory only. One pageable range
         * sends the whole request to the driver's copies; pinned ones are remembered by range,
         * so a list in one registration asks the driver once. */
        for (int s = 0; s < 2 && !(flags & NIXL_GPU_BATCH_PAGEABLE); s++) {
            bool is_host = s ? rhost && !rfar : lhost;
            uint64_t a = s ? ra : la;
            if (!is_host || (host_checked && a >= pinned_lo && a + local[i].len <= pinned_hi))
                continue;
            nixl_gpu_ptr_t p = {0};
            nixl_gpu_err_t err;
            if (g->ptr_query((uintptr_t)a, local[i].len, &p, &err) != NIXL_SUCCESS ||
                p.kind == NIXL_GPU_MEM_PAGEABLE) {
                flags |= NIXL_GPU_BATCH_PAGEABLE;
            } else {
                host_checked = true;
                pinned_lo = p.base;
                pinned_hi = p.base + p.size;
            }
        }
        segs[i] = req->op == NIXL_WRITE ? (nixl_gpu_seg_t){ra, la, local[i].len}
                                        : (nixl_gpu_seg_t){la, ra, local[i].len};
    }
    if (device < 0) {
        st = NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "a GPU request without GPU memory");
        goto out;
    }
    if (nfar && nfar != count) {
        st = NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                         "%zu of %zu descriptors are host memory of '%s' and the others its "
                         "GPU memory: those go different ways (staged through pinned buffers, "
                         "or mapped); split the list",
                         nfar, count, req->peer->name);
        goto out;
    }
    if (nfar) {
        st = shm_stage_prep(eng, req, device, segs, flags);
        goto out;
    }
    nixl_gpu_err_t err;
    st = g->batch_create(device, segs, count, flags, eng->gpu_max_blocks, &req->gpu, &err);
    if (st != NIXL_SUCCESS)
        (void)NIXL_BE_ERR(eng->host, st, "%s", err.msg);
out:
    free(segs);
    return st;
}

nixl_status_t shm_gpu_post(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_xfer_opts_t *opts)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    bool has_notif = opts && opts->has_notif;
    size_t nlen = has_notif ? opts->notif_len : 0;
    if (has_notif && nlen > req->notif_cap) {
        void *p = realloc(req->notif, nlen);
        if (!p)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory copying a "
                               "notification");
        req->notif = p;
        req->notif_cap = nlen;
    }
    if (nlen)
        memcpy(req->notif, opts->notif, nlen);
    req->has_notif = has_notif;
    req->notif_len = nlen;
    req->why[0] = '\0';
    if (req->stage)
        return shm_worker_submit(eng, req); /* rounds of syscalls and copies: the worker's */
    nixl_gpu_err_t err;
    nixl_status_t st = g->batch_post(req->gpu, &err);
    if (st != NIXL_SUCCESS) {
        snprintf(req->why, sizeof(req->why), "%s", err.msg);
        atomic_store(&req->state, st);
        return NIXL_BE_ERR(eng->host, st, "%s", err.msg);
    }
    if (has_notif)
        return shm_worker_submit(eng, req); /* waits for the copy, then notifies */
    atomic_store(&req->state, NIXL_IN_PROG);
    return NIXL_IN_PROG;
}

/* The copy is done (or failed): the final status, the peer's death included. */
static nixl_status_t gpu_done(nixl_be_req_t *req, nixl_status_t st, const nixl_gpu_err_t *err)
{
    if (st < 0 && st != NIXL_ERR_NOT_POSTED) {
        snprintf(req->why, sizeof(req->why), "%s", err->msg);
        return st;
    }
    if (st == NIXL_SUCCESS && !req->peer->is_self && atomic_load(&req->peer->dead)) {
        snprintf(req->why, sizeof(req->why), "agent '%s' died during the transfer",
                 req->peer->name);
        return NIXL_ERR_REMOTE_DISCONNECT;
    }
    return st;
}

/* The worker's part: wait (asleep) for the copy, then send the notification. */
nixl_status_t shm_gpu_finish(nixl_be_req_t *req)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(req->eng->host);
    nixl_gpu_err_t err;
    nixl_status_t st = gpu_done(req, g->batch_wait(req->gpu, &err), &err);
    if (st == NIXL_SUCCESS && req->has_notif)
        st = shm_xfer_notify(req, req->notif, req->notif_len);
    return st;
}

nixl_status_t shm_gpu_check(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    nixl_status_t st = atomic_load(&req->state);
    if (st != NIXL_IN_PROG || req->has_notif)
        return st; /* final, or the worker owns it */
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    nixl_gpu_err_t err;
    st = gpu_done(req, g->batch_check(req->gpu, &err), &err);
    if (st != NIXL_IN_PROG)
        atomic_store(&req->state, st);
    return st;
}

void shm_gpu_release(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    shm_stage_free(eng, req);
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    if (req->gpu && g)
        g->batch_destroy(req->gpu); /* waits for a copy in flight */
    req->gpu = NULL;
}
