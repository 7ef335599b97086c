/*
 * be_storage.c - what the storage backends share (be_storage.h).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* One flag token of a spec; false when unknown. */
static bool spec_flag(const char *t, size_t n, int *flags)
{
    static const struct {
        const char *name;
        int flag;
    } known[] = {{"direct", O_DIRECT}, {"sync", O_SYNC}, {"noatime", O_NOATIME},
                 {"create", O_CREAT}};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == n && !memcmp(t, known[i].name, n)) {
            *flags |= known[i].flag;
            return true;
        }
    return false;
}

bool nixl_be_file_spec_parse(const void *meta, size_t len, char *buf, size_t buflen, nixl_be_file_spec_t *out,
                   char *err, size_t errlen)
{
    const char *m = meta;
    *out = (nixl_be_file_spec_t){0};
    if (!m || len < 3 || m[0] != 'r' || (m[1] != 'o' && m[1] != 'w') ||
        (m[2] != ',' && m[2] != ':'))
        return true; /* plain metadata: fd mode */
    out->is_spec = true;
    if (len >= buflen || memchr(m, '\0', len)) {
        snprintf(err, errlen, "path spec of %zu bytes is too long or contains a NUL byte", len);
        return false;
    }
    memcpy(buf, m, len);
    buf[len] = '\0';
    char *colon = strchr(buf, ':');
    if (!colon || !colon[1]) {
        snprintf(err, errlen, "path spec '%s' has no path after ':' (expected "
                 "'<ro|rw>[,direct,sync,noatime,create]:<path>')", buf);
        return false;
    }
    int flags = buf[1] == 'o' ? O_RDONLY : O_RDWR;
    for (char *t = buf + 2; t < colon;) {
        t++; /* the ',' */
        size_t n = strcspn(t, ",:");
        if (!spec_flag(t, n, &flags)) {
            snprintf(err, errlen, "path spec '%s': unknown flag '%.*s' (known: direct, sync, "
                     "noatime, create)", buf, (int)n, t);
            return false;
        }
        t += n;
    }
    if ((flags & O_CREAT) && (flags & O_ACCMODE) == O_RDONLY) {
        snprintf(err, errlen, "path spec '%s': 'create' needs 'rw'", buf);
        return false;
    }
    out->flags = flags | O_CLOEXEC;
    out->path = colon + 1;
    return true;
}
