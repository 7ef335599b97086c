/*
 * ucx_mem.c - registrations (ucp_mem_map + a packed rkey, the blob peers get) and region
 * metadata of peers (the rkey unpacked on each worker's endpoint to the peer). Loopback
 * metadata is the same thing made from our own packed rkey on the self connection, so
 * transfers to ourselves are ordinary UCX RMA.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ucx_priv.h"

static void md_init(nixl_be_md_t *md, uint32_t kind, nixl_be_engine_t *eng)
{
    md->kind = kind;
    md->eng = eng;
    atomic_init(&md->refs, 1); /* the registration's or the load's */
}

void ucx_md_ref(nixl_be_md_t *md)
{
    atomic_fetch_add(&md->refs, 1);
}

void ucx_md_unref(nixl_be_md_t *md)
{
    if (atomic_fetch_sub(&md->refs, 1) != 1)
        return;
    nixl_be_engine_t *eng = md->eng;
    if (md->kind == UCX_MD_LOCAL) {
        ucx_lmd_t *l = (ucx_lmd_t *)md;
        if (l->rkey_buf)
            ucp_rkey_buffer_release(l->rkey_buf);
        if (l->memh)
            ucp_mem_unmap(eng->ctx, l->memh);
    } else {
        ucx_rmd_t *r = (ucx_rmd_t *)md;
        for (unsigned w = 0; w < eng->nworkers; w++)
            if (r->rkeys[w])
                ucp_rkey_destroy(r->rkeys[w]);
        ucx_conn_unref(r->conn, 1);
    }
    free(md);
}

static nixl_status_t map_one(nixl_be_engine_t *eng, nixl_mem_t type, const nixl_reg_desc_t *d,
                             size_t i, ucx_lmd_t **out)
{
    if (!d->len)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: a region of 0 bytes "
                           "cannot be registered",
                           i);
    ucx_lmd_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    md_init(&l->hdr, UCX_MD_LOCAL, eng);
    l->type = type;
    l->staged_gpu = -1;
    ucp_mem_map_params_t mp = {
        .field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH,
        .address = (void *)d->addr,
        .length = d->len,
    };
    ucs_status_t s = ucp_mem_map(eng->ctx, &mp, &l->memh);
    if (s != UCS_OK) {
        free(l);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                           "descriptor %zu (0x%llx, %zu bytes): "
                           "ucp_mem_map failed: %s",
                           i, (unsigned long long)d->addr, d->len, ucs_status_string(s));
    }
    nixl_status_t st = NIXL_SUCCESS;
    if (type == NIXL_VRAM_SEG) {
        /* UCX without GPU support maps device pointers as host memory and would move the
         * wrong bytes: make sure it saw device memory. */
        ucp_mem_attr_t attr = {.field_mask = UCP_MEM_ATTR_FIELD_MEM_TYPE};
        s = ucp_mem_query(l->memh, &attr);
        if (s != UCS_OK)
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                             "descriptor %zu: ucp_mem_query failed: "
                             "%s",
                             i, ucs_status_string(s));
        else if (attr.mem_type == UCS_MEMORY_TYPE_HOST)
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                             "VRAM descriptor %zu (0x%llx, "
                             "device %llu): UCX sees host memory there, not GPU memory",
                             i, (unsigned long long)d->addr, (unsigned long long)d->dev_id);
    }
    if (st == NIXL_SUCCESS) {
        s = ucp_rkey_pack(eng->ctx, l->memh, &l->rkey_buf, &l->rkey_len);
        if (s != UCS_OK) {
            l->rkey_buf = NULL;
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                             "descriptor %zu: ucp_rkey_pack failed: "
                             "%s",
                             i, ucs_status_string(s));
        }
    }
    if (st != NIXL_SUCCESS) {
        ucx_md_unref(&l->hdr);
        return st;
    }
    /* Our own keys must pass the checks peers' keys get (see ucx_conn_self for addresses). */
    char why[160];
    int fresh = 0;
    if (!ucx_rkey_check(l->rkey_buf, l->rkey_len, why, sizeof(why)) &&
        atomic_compare_exchange_strong(&eng->rkey_fmt, &fresh, 1)) {
        snprintf(eng->rkey_fmt_why, sizeof(eng->rkey_fmt_why), "%s", why);
        atomic_store(&eng->rkey_fmt, 2);
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "the remote keys of this UCX (%s) are not in a format the backend can "
                    "check (%s): region metadata of peers will be refused",
                    ucp_get_version_string(), why);
    }
    *out = l;
    return NIXL_SUCCESS;
}

nixl_status_t ucx_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                               const nixl_reg_desc_t *descs, size_t count,
                               nixl_be_md_t **out_mds)
{
    if (type != NIXL_DRAM_SEG && type != NIXL_VRAM_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "only DRAM_SEG and VRAM_SEG can be "
                           "registered (got %d)",
                           (int)type);
    const nixl_gpu_ops_t *gpu = nixl_host_gpu(eng->host);
    if (type == NIXL_VRAM_SEG && !eng->cuda_ok && !(gpu && gpu->device_count() > 0))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "this UCX build (%s) has no CUDA "
                           "support and there is no GPU to stage through; VRAM cannot be "
                           "registered with UCX",
                           ucp_get_version_string());
    if (type == NIXL_VRAM_SEG && !eng->cuda_ok) {
        /* UCX cannot see GPU memory: keep the region for staging through pinned buffers
         * (ucx_stage.c); peers learn from its blob that they cannot reach it. */
        for (size_t i = 0; i < count; i++) {
            ucx_lmd_t *l = calloc(1, sizeof(*l));
            if (!l) {
                ucx_deregister_mem(eng, &(nixl_be_mds_t){.base = out_mds,
                                                         .stride = sizeof(*out_mds),
                                                         .count = i});
                return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
            }
            md_init(&l->hdr, UCX_MD_LOCAL, eng);
            l->type = type;
            l->staged_gpu = (int)descs[i].dev_id;
            out_mds[i] = &l->hdr;
        }
        return NIXL_SUCCESS;
    }
    for (size_t i = 0; i < count; i++) {
        ucx_lmd_t *l;
        nixl_status_t st = map_one(eng, type, &descs[i], i, &l);
        if (st != NIXL_SUCCESS) {
            ucx_deregister_mem(
                eng, &(nixl_be_mds_t){.base = out_mds, .stride = sizeof(*out_mds), .count = i});
            return st;
        }
        out_mds[i] = &l->hdr;
    }
    return NIXL_SUCCESS;
}

void ucx_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    (void)eng;
    for (size_t i = 0; i < mds->count; i++) {
        nixl_be_md_t *md = nixl_be_md_at(mds, i);
        if (md)
            ucx_md_unref(md); /* requests prepared on it keep it mapped until released */
    }
}

nixl_status_t ucx_get_public_blobs(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                   nixl_be_blob_t *out)
{
    for (size_t i = 0; i < mds->count; i++) {
        const nixl_be_md_t *md = nixl_be_md_at(mds, i);
        if (!md || md->kind != UCX_MD_LOCAL)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "region %zu is not a local registration", i);
        const ucx_lmd_t *l = (const ucx_lmd_t *)md;
        out[i] = l->staged_gpu >= 0
                     ? (nixl_be_blob_t){.data = UCX_STAGED_BLOB, .len = UCX_STAGED_BLOB_LEN}
                     : (nixl_be_blob_t){.data = l->rkey_buf, .len = l->rkey_len};
    }
    return NIXL_SUCCESS;
}

/* Unload the first `n` entries of an array of metadata. */
static void unload_array(nixl_be_engine_t *eng, nixl_be_md_t **mds, size_t n)
{
    nixl_be_mds_t view = {.base = mds, .stride = sizeof(*mds), .count = n};
    ucx_unload_md(eng, &view);
}

/* An rmd of `conn` (its reference is taken here) holding a checked copy of `blob`; its rkeys
 * are unpacked by the first prep that uses it (ucx_rmd_ready). */
static nixl_status_t rmd_new(nixl_be_engine_t *eng, ucx_conn_t *conn, const void *blob,
                             size_t len, size_t i, nixl_be_md_t **out)
{
    if (!blob || !len)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH, "region %zu of agent '%s' has no rkey", i,
                           conn->name);
    bool staged = len == UCX_STAGED_BLOB_LEN && !memcmp(blob, UCX_STAGED_BLOB, len);
    /* UCX unpacks a key without its length and trusts what is inside it: check it all
     * before UCX ever sees it (ucx_validate.c); ucx_rmd_ready hands UCX a copy followed by
     * zeros. */
    if (!conn->is_self && !staged) {
        if (atomic_load(&eng->rkey_fmt) == 2)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                               "region %zu of agent '%s' cannot be checked: this UCX (%s) "
                               "packs remote keys in a format the backend does not know (%s)",
                               i, conn->name, ucp_get_version_string(), eng->rkey_fmt_why);
        char why[160];
        if (!ucx_rkey_check(blob, len, why, sizeof(why)))
            return NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                               "region %zu of agent '%s': its %zu-byte blob is not a valid "
                               "UCX remote key: %s",
                               i, conn->name, len, why);
    }
    /* One allocation: the rmd, its rkeys (zeroed), then the blob's copy (not for staged). */
    size_t keys = eng->nworkers * sizeof(ucp_rkey_h);
    ucx_rmd_t *r = malloc(sizeof(*r) + keys + (staged ? 0 : len));
    if (!r)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    memset(r, 0, sizeof(*r) + keys);
    md_init(&r->hdr, UCX_MD_REMOTE, eng);
    r->conn = conn;
    r->unreachable = staged; /* GPU memory its owner's UCX cannot see: no rkey */
    if (!staged) {
        uint8_t *copy = (uint8_t *)r + sizeof(*r) + keys;
        memcpy(copy, blob, len);
        r->blob = copy;
        r->blob_len = len;
    }
    atomic_store_explicit(&r->ready, staged, memory_order_relaxed);
    ucx_conn_ref(conn, 1);
    *out = &r->hdr;
    return NIXL_SUCCESS;
}

nixl_status_t ucx_rmd_ready(nixl_be_engine_t *eng, ucx_rmd_t *r, size_t i)
{
    if (atomic_load_explicit(&r->ready, memory_order_acquire))
        return NIXL_SUCCESS;
    ucx_conn_t *conn = r->conn;
    nixl_status_t st = NIXL_SUCCESS;
    pthread_mutex_lock(&eng->rkey_lock);
    if (!atomic_load_explicit(&r->ready, memory_order_relaxed)) {
        /* UCX reads a key without its length: give it the checked bytes followed by zeros. */
        uint8_t stack[1024], *padded = stack;
        size_t need = r->blob_len + UCX_RKEY_PAD;
        if (need > sizeof(stack) && !(padded = malloc(need))) {
            pthread_mutex_unlock(&eng->rkey_lock);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
        }
        memcpy(padded, r->blob, r->blob_len);
        memset(padded + r->blob_len, 0, UCX_RKEY_PAD);
        for (unsigned w = 0; w < eng->nworkers && st == NIXL_SUCCESS; w++) {
            if (!conn->eps[w])
                continue; /* loopback: worker 0 only */
            ucs_status_t s = ucp_ep_rkey_unpack(conn->eps[w], padded, &r->rkeys[w]);
            if (s != UCS_OK) {
                r->rkeys[w] = NULL;
                st = NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                                 "descriptor %zu: the %zu-byte blob of its region of agent '%s' "
                                 "is not a usable UCX rkey: %s",
                                 i, r->blob_len, conn->name, ucs_status_string(s));
            }
        }
        if (st != NIXL_SUCCESS) {
            for (unsigned w = 0; w < eng->nworkers; w++)
                if (r->rkeys[w]) {
                    ucp_rkey_destroy(r->rkeys[w]);
                    r->rkeys[w] = NULL;
                }
        } else {
            atomic_store_explicit(&r->ready, true, memory_order_release);
        }
        if (padded != stack)
            free(padded);
    }
    pthread_mutex_unlock(&eng->rkey_lock);
    return st;
}

nixl_status_t ucx_load_remote_md(nixl_be_engine_t *eng, const char *agent, nixl_mem_t type,
                                 const nixl_desc_t *descs, const nixl_be_blob_t *blobs,
                                 size_t count, nixl_be_md_t **out_mds)
{
    (void)descs;
    if (type != NIXL_DRAM_SEG && type != NIXL_VRAM_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "only DRAM_SEG and VRAM_SEG regions "
                           "(got %d)",
                           (int)type);
    ucx_conn_t *conn = ucx_conn_get(eng, agent);
    if (!conn)
        return NIXL_ERR_NOT_FOUND;
    nixl_status_t st = NIXL_SUCCESS;
    for (size_t i = 0; i < count && st == NIXL_SUCCESS; i++) {
        st = rmd_new(eng, conn, blobs ? blobs[i].data : NULL, blobs ? blobs[i].len : 0, i,
                     &out_mds[i]);
        if (st != NIXL_SUCCESS)
            unload_array(eng, out_mds, i);
    }
    ucx_conn_unref(conn, 1);
    return st;
}

nixl_status_t ucx_load_local_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                nixl_be_md_t **out_mds)
{
    if (!eng->self)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "the loopback connection is gone");
    for (size_t i = 0; i < mds->count; i++) {
        const ucx_lmd_t *l = (const ucx_lmd_t *)nixl_be_md_at(mds, i);
        nixl_status_t st = (!l || l->hdr.kind != UCX_MD_LOCAL || l->hdr.eng != eng)
                               ? NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                                             "load_local_md: md %zu was not "
                                             "registered by this engine",
                                             i)
                           : l->staged_gpu >= 0
                               ? rmd_new(eng, eng->self, UCX_STAGED_BLOB, UCX_STAGED_BLOB_LEN, i,
                                         &out_mds[i])
                               : rmd_new(eng, eng->self, l->rkey_buf, l->rkey_len, i, &out_mds[i]);
        if (st != NIXL_SUCCESS) {
            unload_array(eng, out_mds, i);
            return st;
        }
    }
    return NIXL_SUCCESS;
}

void ucx_unload_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    (void)eng;
    for (size_t i = 0; i < mds->count; i++) {
        nixl_be_md_t *md = nixl_be_md_at(mds, i);
        if (md && md->kind == UCX_MD_REMOTE)
            ucx_md_unref(md);
    }
}
