/*
 * be_storage.c - what the storage backends share (be_storage.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "be_storage.h"

nixl_status_t nixl_be_register_each(nixl_be_engine_t *eng, const nixl_host_t *host,
                                    nixl_mem_t type, const nixl_reg_desc_t *descs, size_t count,
                                    size_t md_size, nixl_be_reg_one_fn reg_one,
                                    nixl_be_md_free_fn md_free, nixl_be_md_t **out)
{
    size_t i = 0;
    nixl_status_t st = NIXL_SUCCESS;
    for (; i < count; i++) {
        nixl_be_md_t *md = calloc(1, md_size);
        if (!md) {
            st = NIXL_BE_ERR(host, NIXL_ERR_UNKNOWN, "out of memory");
            break;
        }
        st = reg_one(eng, type, i, &descs[i], md);
        if (st != NIXL_SUCCESS) {
            free(md);
            break;
        }
        out[i] = md;
    }
    if (st == NIXL_SUCCESS)
        return NIXL_SUCCESS;
    while (i-- > 0)
        md_free(eng, out[i]);
    return st;
}

nixl_status_t nixl_be_load_self(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                nixl_be_md_t **out)
{
    (void)eng;
    for (size_t i = 0; i < mds->count; i++)
        out[i] = nixl_be_md_at(mds, i);
    return NIXL_SUCCESS;
}

nixl_status_t nixl_be_storage_no_notif(const nixl_host_t *host, const nixl_be_xfer_opts_t *opts)
{
    if (opts && opts->has_notif)
        return NIXL_BE_ERR(host, NIXL_ERR_NOT_SUPPORTED, "storage transfers carry no notification");
    return NIXL_SUCCESS;
}

nixl_status_t nixl_be_storage_pair(const nixl_host_t *host, size_t i,
                                   const nixl_be_desc_t *local, nixl_be_side_t local_side,
                                   const nixl_be_desc_t *remote, nixl_be_side_t remote_side,
                                   const char *types, const nixl_be_desc_t **mem,
                                   const nixl_be_desc_t **file)
{
    nixl_be_side_t mem_side = local_side, file_side = remote_side;
    *mem = local;
    *file = remote;
    if (local_side == NIXL_BE_SIDE_STORAGE && remote_side != NIXL_BE_SIDE_STORAGE) {
        *mem = remote; /* storage given as the local side: still memory <-> file */
        *file = local;
        mem_side = remote_side;
        file_side = local_side;
    }
    const nixl_be_desc_t *m = *mem, *f = *file;
    if (mem_side != NIXL_BE_SIDE_MEM || file_side != NIXL_BE_SIDE_STORAGE)
        return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM, "descriptor %zu: transfers go between %s",
                           i, types);
    if (m->len != f->len || f->addr > (uint64_t)INT64_MAX - f->len) {
        return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: lengths differ (%zu and %zu) or offset %llu + %zu "
                           "overflows",
                           i, m->len, f->len, (unsigned long long)f->addr, f->len);
    }
    return NIXL_SUCCESS;
}

nixl_status_t nixl_be_storage_direct(const nixl_host_t *host, size_t i,
                                     const nixl_be_desc_t *mem, const nixl_be_desc_t *file,
                                     int fd, unsigned align)
{
    if (!align || !((mem->addr | mem->len | file->addr) % align))
        return NIXL_SUCCESS;
    return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM,
                       "descriptor %zu: file descriptor %d is open with O_DIRECT, which needs "
                       "the buffer address, the length and the file offset aligned to %u bytes "
                       "(address 0x%llx, length %zu, offset %llu)",
                       i, fd, align, (unsigned long long)mem->addr, mem->len,
                       (unsigned long long)file->addr);
}

nixl_status_t nixl_be_storage_post_begin(const nixl_host_t *host, const nixl_be_xfer_opts_t *opts,
                                         _Atomic int *state, size_t nios)
{
    nixl_status_t st = nixl_be_storage_no_notif(host, opts);
    if (st != NIXL_SUCCESS)
        return st;
    if (atomic_load(state) == NIXL_IN_PROG)
        return NIXL_BE_ERR(host, NIXL_ERR_REPOST_ACTIVE, "the request is still in flight");
    if (nios == 0) {
        atomic_store(state, NIXL_SUCCESS);
        return NIXL_SUCCESS;
    }
    return NIXL_IN_PROG;
}

nixl_status_t nixl_be_storage_status(const nixl_host_t *host, nixl_status_t st,
                                     const char *errmsg)
{
    if (st < 0 && st != NIXL_ERR_NOT_POSTED)
        (void)NIXL_BE_ERR(host, st, "%s", errmsg);
    return st;
}
