/*
 * shm_xfer.c - transfer requests: prepare the iovec arrays once, then move the bytes with
 * process_vm_writev/readv (a peer) or memmove (loopback), whole iovec arrays per call. A small
 * WRITE with a notification takes its notification record along in the same call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm_priv.h"

/* Remember why the request failed: the failure may happen on the worker thread, whose
 * thread-local error the user never sees, so check_xfer repeats it. */
static _Thread_local char *why_sink;

void shm_req_why_to(char *buf)
{
    why_sink = buf;
}

const char *shm_req_why(const nixl_be_req_t *req)
{
    return why_sink ? why_sink : req->why;
}

nixl_status_t shm_req_fail(nixl_be_req_t *req, nixl_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why_sink ? why_sink : req->why, sizeof(req->why), fmt, ap);
    va_end(ap);
    return st;
}

#define req_fail shm_req_fail

/* The peer a remote md belongs to; NULL if it is no remote md of ours. */
static shm_peer_t *md_peer(const nixl_be_md_t *md)
{
    const shm_md_hdr_t *h = (const shm_md_hdr_t *)md;
    if (!h)
        return NULL;
    if (h->kind == SHM_MD_PEER)
        return (shm_peer_t *)(uintptr_t)h;
    if (h->kind == SHM_MD_VRAM_PEER)
        return ((const shm_vrmd_t *)h)->peer;
    if (h->kind == SHM_MD_MAP)
        return ((const shm_rmd_t *)h)->peer;
    return NULL;
}

nixl_status_t shm_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                            const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                            size_t count, const char *remote_agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out)
{
    (void)opts; /* the notification is taken per post */
    if (op != NIXL_READ && op != NIXL_WRITE)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "bad transfer operation %d", (int)op);
    if (count == 0 || !remote_agent)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "empty transfer or no remote agent");

    /* The remote md is the peer (DRAM) or holds it (VRAM): no name lookup, and every element
     * must agree on it. */
    shm_peer_t *peer = md_peer(remote[0].md);
    if (!peer || peer->eng != eng)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "remote descriptor 0 does not carry SHM metadata");
    if (strcmp(peer->name, remote_agent) != 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "remote descriptors belong to '%s', not to '%s'", peer->name,
                           remote_agent);
    if (atomic_load(&peer->forgotten))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND, "agent '%s' was disconnected",
                           remote_agent);
    if (atomic_load(&peer->dead))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s' is gone",
                           remote_agent);

    if (count > (SIZE_MAX - sizeof(nixl_be_req_t)) / (2 * sizeof(struct iovec)))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "%zu descriptors is too many", count);
    nixl_be_req_t *req = malloc(sizeof(*req) + 2 * count * sizeof(struct iovec));
    if (!req)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory preparing %zu descriptors",
                           count);
    memset(req, 0, sizeof(*req));
    req->liov = req->iov;
    req->riov = req->iov + count;
    /* One pass over the lists: check each pair and build its iovecs (the descriptor path's
     * cost per element, docs/BENCHMARKS.md "Core micro-benchmark"). Runs of descriptors
     * share their regions' metadata: an md is looked into only when it differs from the
     * previous element's, which was checked (a NULL local md never counts as checked). */
    uint64_t total = 0;
    bool gpu = false;
    const nixl_be_md_t *checked_l = NULL, *checked_r = NULL;
    for (size_t i = 0; i < count; i++) {
        if (local[i].md != checked_l || !checked_l) {
            const shm_md_hdr_t *lh = (const shm_md_hdr_t *)local[i].md;
            if (!lh || !((lh->kind == SHM_MD_LOCAL && ((const shm_lmd_t *)lh)->eng == eng) ||
                         lh->kind == SHM_MD_VRAM)) {
                free(req);
                return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                                   "descriptor %zu: local memory not registered with this engine",
                                   i);
            }
            gpu |= lh->kind == SHM_MD_VRAM;
            checked_l = local[i].md;
        }
        if (remote[i].md != checked_r) { /* remote[0].md is not NULL: peer came from it */
            if (md_peer(remote[i].md) != peer) {
                free(req);
                return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                                   "descriptor %zu: remote memory not registered with this engine "
                                   "or of another agent",
                                   i);
            }
            gpu |= ((const shm_md_hdr_t *)remote[i].md)->kind == SHM_MD_VRAM_PEER;
            checked_r = remote[i].md;
        }
        if (local[i].len != remote[i].len) {
            free(req);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: local length %zu != remote length %zu", i,
                               local[i].len, remote[i].len);
        }
        total += local[i].len;
        req->liov[i] = (struct iovec){(void *)local[i].addr, local[i].len};
        req->riov[i] = (struct iovec){(void *)remote[i].addr, remote[i].len};
    }
    req->eng = eng;
    req->peer = peer;
    req->op = op;
    req->count = count;
    req->total = total;
    atomic_init(&req->state, NIXL_ERR_NOT_POSTED);
    atomic_init(&req->cancel, false);
    if (gpu) {
        nixl_status_t st = shm_gpu_prep(eng, req, local, remote);
        if (st != NIXL_SUCCESS) {
            free(req);
            return st;
        }
    } else if (!peer->is_self) {
        /* Regions in shareable files: plain copies through mappings (shm_map.c). */
        nixl_status_t st = shm_map_prep(eng, req, remote);
        if (st != NIXL_SUCCESS) {
            free(req);
            return st;
        }
    }
    shm_peer_ref(peer, 1);
    *out = req;
    return NIXL_SUCCESS;
}

void shm_iov_advance(const struct iovec *v, size_t count, size_t *idx, size_t *off,
                     uint64_t bytes)
{
    size_t i = *idx, o = *off;
    while (bytes && i < count) {
        size_t avail = v[i].iov_len - o;
        if (bytes < avail) {
            o += (size_t)bytes;
            break;
        }
        bytes -= avail;
        i++;
        o = 0;
    }
    *idx = i;
    *off = o;
}

/*
 * One syscall's worth: up to SHM_IOV_MAX elements and `max_bytes` bytes from the cursor
 * (element *idx, byte *off into it). The request's own arrays are passed to the kernel; the
 * first and last element are trimmed in place for the call and restored afterwards (a request
 * is never used by two threads at once). Returns the bytes moved, or -1 with errno.
 */
static ssize_t copy_step(nixl_be_req_t *req, struct iovec *l, struct iovec *r, size_t count,
                         size_t *idx, size_t *off, size_t max_bytes)
{
    size_t first = *idx, lim = count - first, n = 0, planned = 0, last_len = 0;
    bool capped = false;
    if (lim > SHM_IOV_MAX)
        lim = SHM_IOV_MAX;
    while (n < lim) {
        size_t len = l[first + n].iov_len - (n == 0 ? *off : 0);
        n++;
        if (len >= max_bytes - planned) {
            last_len = max_bytes - planned;
            planned = max_bytes;
            capped = true;
            break;
        }
        planned += len;
    }
    size_t last = first + n - 1;
    struct iovec l0 = l[first], r0 = r[first], ln = l[last], rn = r[last];
    if (*off) {
        l[first].iov_base = (uint8_t *)l[first].iov_base + *off;
        r[first].iov_base = (uint8_t *)r[first].iov_base + *off;
        l[first].iov_len -= *off;
        r[first].iov_len -= *off;
    }
    if (capped) {
        l[last].iov_len = last_len;
        r[last].iov_len = last_len;
    }

    ssize_t ret;
    if (req->peer->is_self) {
        for (size_t k = first; k <= last; k++) {
            if (req->op == NIXL_WRITE)
                memmove(r[k].iov_base, l[k].iov_base, l[k].iov_len);
            else
                memmove(l[k].iov_base, r[k].iov_base, l[k].iov_len);
        }
        ret = (ssize_t)planned;
    } else if (req->op == NIXL_WRITE) {
        ret = process_vm_writev(req->peer->pid, l + first, n, r + first, n, 0);
    } else {
        ret = process_vm_readv(req->peer->pid, l + first, n, r + first, n, 0);
    }
    int e = errno;
    l[last] = ln;
    r[last] = rn;
    l[first] = l0;
    r[first] = r0;
    if (ret < 0) {
        errno = e;
        return -1;
    }

    if ((size_t)ret == planned && !capped) {
        *idx = last + 1;
        *off = 0;
    } else if ((size_t)ret == planned) {
        size_t end = (last == first ? *off : 0) + last_len;
        *idx = end >= ln.iov_len ? last + 1 : last;
        *off = end >= ln.iov_len ? 0 : end;
    } else {
        /* Partial: the kernel stopped at a fault or its per-call limit. Resume right there;
         * the next call reports the error if there is one. */
        *idx = first;
        shm_iov_advance(l, count, idx, off, (size_t)ret);
    }
    return ret;
}

nixl_status_t shm_xfer_cma_error(nixl_be_req_t *req, int e, size_t idx, const struct iovec *r)
{
    shm_peer_t *peer = req->peer;
    const char *op = req->op == NIXL_WRITE ? "WRITE" : "READ";
    switch (e) {
    case ESRCH:
        atomic_store(&peer->dead, true);
        return req_fail(req, NIXL_ERR_REMOTE_DISCONNECT, "%s to agent '%s': process %d "
                        "is gone", op, peer->name, (int)peer->pid);
    case EFAULT:
        return req_fail(req, NIXL_ERR_BACKEND,
                        "%s to agent '%s', descriptor %zu (remote 0x%llx, %zu bytes): "
                        "remote range not mapped in the peer: was it deregistered? (or the "
                        "local buffer is unmapped)",
                        op, peer->name, idx, (unsigned long long)(uintptr_t)r[idx].iov_base,
                        r[idx].iov_len);
    case EPERM:
        return req_fail(req, NIXL_ERR_BACKEND,
                        "%s to agent '%s' (pid %d): not permitted; cross-memory attach "
                        "follows ptrace rules: both processes must run as the same user (or "
                        "have CAP_SYS_PTRACE), the peer must be dumpable, and "
                        "kernel.yama.ptrace_scope must allow it",
                        op, peer->name, (int)peer->pid);
    default:
        return req_fail(req, NIXL_ERR_BACKEND, "%s to agent '%s', descriptor %zu: %s", op,
                        peer->name, idx, strerror(e));
    }
}

nixl_status_t shm_xfer_copy(nixl_be_req_t *req, size_t chunk, bool async)
{
    if (shm_copy_splits(req))
        return shm_copy_split(req, chunk, async);
    if (req->rmd)
        return shm_map_copy(req, chunk, async);
    return shm_xfer_copy_iov(req, req->liov, req->riov, req->count, chunk, async);
}

nixl_status_t shm_xfer_copy_iov(nixl_be_req_t *req, struct iovec *l, struct iovec *r,
                                size_t count, size_t chunk, bool async)
{
    shm_peer_t *peer = req->peer;
    if (!peer->is_self && atomic_load_explicit(&peer->staged, memory_order_acquire))
        return shm_xchan_copy(req, l, r, count, async);
    size_t idx = 0, off = 0;
    while (idx < count) {
        if (async) {
            if (atomic_load_explicit(&req->cancel, memory_order_relaxed))
                return req_fail(req, NIXL_ERR_CANCELED, "transfer canceled");
            if (atomic_load_explicit(&req->peer->dead, memory_order_relaxed))
                return req_fail(req, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s' is gone",
                                req->peer->name);
            if (atomic_load_explicit(&req->peer->forgotten, memory_order_relaxed))
                return req_fail(req, NIXL_ERR_NOT_FOUND, "agent '%s' was disconnected",
                                req->peer->name);
        }
        size_t before_idx = idx, before_off = off;
        if (copy_step(req, l, r, count, &idx, &off, chunk) < 0) {
            int e = errno;
            /* The first call to this peer is the probe: refused outright (seccomp, ptrace
             * rules, Yama) means staging, once, for good; the copy restarts from its start. */
            if ((e == EPERM || e == ENOSYS) && !peer->is_self &&
                req->eng->transport == SHM_TRANSPORT_AUTO && !atomic_load(&peer->cma_ok)) {
                shm_peer_go_staged(req->eng, peer,
                                   e == EPERM ? "process_vm_readv/writev to it failed with "
                                                "EPERM (ptrace rules, Yama or seccomp)"
                                              : "process_vm_readv/writev failed with ENOSYS "
                                                "(filtered by seccomp)");
                return shm_xchan_copy(req, l, r, count, async);
            }
            return shm_xfer_cma_error(req, e, idx, r);
        }
        if (!peer->is_self && !atomic_load_explicit(&peer->cma_ok, memory_order_relaxed))
            atomic_store(&peer->cma_ok, true);
        if (idx == before_idx && off == before_off)
            return req_fail(req, NIXL_ERR_BACKEND, "the kernel moved no bytes at "
                            "descriptor %zu", idx);
    }
    return NIXL_SUCCESS;
}

nixl_status_t shm_xfer_notify(nixl_be_req_t *req, const void *msg, size_t len)
{
    nixl_status_t st = shm_peer_send_notif(req->eng, req->peer, msg, len);
    if (st != NIXL_SUCCESS)
        req_fail(req, st, "the data reached agent '%s' but its notification could not be "
                 "sent (peer gone or not reading notifications)", req->peer->name);
    return st;
}

nixl_status_t shm_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts)
{
    shm_peer_t *peer = req->peer;
    bool has_notif = opts && opts->has_notif;
    size_t nlen = has_notif ? opts->notif_len : 0;
    nixl_status_t st;

    if (nlen > SHM_NOTIF_MAX)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "a %zu-byte notification exceeds the SHM limit of %zu bytes", nlen,
                           SHM_NOTIF_MAX);
    if (!peer->is_self) {
        /* Connected means the socket name still belongs to the pid we copy into. */
        st = shm_peer_ensure_connected(eng, peer); /* also refuses dead and forgotten peers */
        if (st != NIXL_SUCCESS) {
            atomic_store(&req->state, st);
            return st;
        }
    }

    if (req->gpu || req->stage)
        return shm_gpu_post(eng, req, opts);

    if (eng->async_threshold && req->total >= eng->async_threshold) {
        req->has_notif = has_notif;
        req->notif_len = nlen;
        if (nlen > req->notif_cap) {
            void *p = realloc(req->notif, nlen);
            if (!p)
                return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN,
                                   "out of memory copying a "
                                   "notification");
            req->notif = p;
            req->notif_cap = nlen;
        }
        if (nlen)
            memcpy(req->notif, opts->notif, nlen);
        return shm_worker_submit(eng, req);
    }

    /* A small WRITE and its notification in one process_vm_writev: the record follows the
     * data in the same call (shm_ring.c). Anything unusual takes the ordinary path below. */
    if (has_notif && req->op == NIXL_WRITE && !peer->is_self &&
        req->count <= SHM_COMBINE_IOVS && req->total <= SHM_COMBINE_BYTES) {
        bool done;
        st = shm_peer_write_notif(eng, peer, req->liov, req->riov, req->count,
                                  (size_t)req->total, opts->notif, nlen, &done);
        if (done) {
            atomic_store(&req->state, st);
            return st;
        }
    }

    st = shm_xfer_copy(req, SIZE_MAX, false);
    if (st != NIXL_SUCCESS)
        (void)NIXL_BE_ERR(eng->host, st, "%s", req->why);
    else if (has_notif)
        st = shm_peer_send_notif(eng, peer, opts->notif, nlen);
    atomic_store(&req->state, st);
    return st;
}

nixl_status_t shm_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    nixl_status_t st = req->gpu ? shm_gpu_check(eng, req) : atomic_load(&req->state);
    if (st < 0 && st != NIXL_ERR_NOT_POSTED && req->why[0])
        return NIXL_BE_ERR(eng->host, st, "%s", req->why);
    return st;
}

nixl_status_t shm_cancel_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    if (req->gpu && !req->has_notif)
        return shm_gpu_check(eng, req); /* a GPU copy in flight cannot be stopped: wait */
    /* On the worker (large copies, staged GPU requests, GPU copies with a notification): it
     * stops between chunks or rounds; one queued never starts. Posted inline: already over. */
    shm_worker_abort(eng, req);
    nixl_status_t st = atomic_load(&req->state);
    if (st == NIXL_ERR_CANCELED)
        snprintf(req->why, sizeof(req->why), "the transfer was canceled");
    return st;
}

nixl_status_t shm_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    shm_worker_abort(eng, req); /* waits for at most one chunk (or one GPU copy) */
    shm_gpu_release(eng, req);
    for (size_t i = 0, j; req->rmd && i < req->count; i = j) {
        for (j = i; j < req->count && req->rmd[j] == req->rmd[i]; j++) {
        }
        shm_rmd_unref(req->rmd[i], j - i);
    }
    free(req->rmd);
    shm_peer_unref(req->peer, 1);
    free(req->notif);
    free(req);
    return NIXL_SUCCESS;
}
