/*
 * posix_mem.c - registration of DRAM, FILE and BLOCK regions, and query_mem.
 *
 * FILE/BLOCK in fd mode: devId is a descriptor the caller owns and keeps open until it
 * deregisters; several regions may share it. In path mode (a spec in metaInfo, see
 * posix_config.c) we open the file at registration and close it at deregistration; devId then
 * names that one file, so it must not be in use by another registration of this engine.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array.h"
#include "be_storage.h"
#include "file_query.h"
#include "posix_priv.h"

#define PX_PATH_MAX 4096
#define PX_DIRECT_ALIGN 512u /* O_DIRECT minimum on Linux file systems we cannot ask */

static bool file_in_use(const nixl_be_engine_t *eng, uint64_t dev_id)
{
    for (size_t i = 0; i < eng->nfiles; i++)
        if (eng->files[i] == dev_id)
            return true;
    return false;
}

static bool file_add(nixl_be_engine_t *eng, uint64_t dev_id)
{
    uint64_t *slot = nixl_array_push(eng->files, eng->nfiles, eng->cap_files);
    if (slot)
        *slot = dev_id;
    return slot != NULL;
}

static void file_del(nixl_be_engine_t *eng, uint64_t dev_id)
{
    for (size_t i = 0; i < eng->nfiles; i++)
        if (eng->files[i] == dev_id) {
            eng->files[i] = eng->files[--eng->nfiles];
            return;
        }
}

/* O_DIRECT alignment of an open fd: the logical block size of a block device, else 512 (the
 * file systems we meet need at most the device's sector size for offsets and lengths). */
static unsigned direct_align(int fd)
{
    struct stat st;
    int ssz = 0;
    if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
        return (unsigned)ssz;
    return PX_DIRECT_ALIGN;
}

static void md_free(nixl_be_engine_t *eng, nixl_be_md_t *md)
{
    if (!md)
        return;
    if (md->owned) {
        close(md->fd);
        file_del(eng, md->dev_id);
    }
    free(md);
}

static nixl_status_t md_file(nixl_be_engine_t *eng, size_t i, const nixl_reg_desc_t *d,
                             nixl_be_md_t *md)
{
    char buf[PX_PATH_MAX], err[PX_ERR_MAX + PX_PATH_MAX];
    nixl_be_file_spec_t spec;
    if (!nixl_be_file_spec_parse(d->meta, d->meta_len, buf, sizeof(buf), &spec, err, sizeof(err))) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "descriptor %zu: %s", i, err);
    }
    md->dev_id = d->dev_id;
    if (spec.is_spec) {
        if (file_in_use(eng, d->dev_id)) {
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: devId %llu already names an open file "
                               "of this engine; path mode needs one devId per file",
                               i, (unsigned long long)d->dev_id);
        }
        md->fd = open(spec.path, spec.flags, 0644);
        if (md->fd < 0) {
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "descriptor %zu: cannot open '%s': %s",
                               i, spec.path, strerror(errno));
        }
        if (!file_add(eng, d->dev_id)) {
            close(md->fd);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
        }
        md->owned = true;
    } else {
        if (d->dev_id > INT32_MAX || fcntl((int)d->dev_id, F_GETFL) < 0) {
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: devId %llu is not an open file "
                               "descriptor (and metaInfo is not a '<ro|rw>[,flags]:<path>' "
                               "spec)",
                               i, (unsigned long long)d->dev_id);
        }
        if (file_in_use(eng, d->dev_id)) {
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: devId %llu names a path-mode file of "
                               "this engine",
                               i, (unsigned long long)d->dev_id);
        }
        md->fd = (int)d->dev_id;
    }
    int fl = fcntl(md->fd, F_GETFL);
    md->direct = fl >= 0 && (fl & O_DIRECT);
    md->align = md->direct ? direct_align(md->fd) : 1;
    return NIXL_SUCCESS;
}

/* One region (nixl_be_register_each does the rest: all or nothing). */
static nixl_status_t reg_one(nixl_be_engine_t *eng, nixl_mem_t type, size_t i,
                             const nixl_reg_desc_t *d, nixl_be_md_t *md)
{
    md->type = type;
    md->fd = -1;
    md->align = 1;
    return type == NIXL_DRAM_SEG ? NIXL_SUCCESS : md_file(eng, i, d, md);
}

nixl_status_t px_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                              const nixl_reg_desc_t *descs, size_t count, nixl_be_md_t **out)
{
    if (type != NIXL_DRAM_SEG && type != NIXL_FILE_SEG && type != NIXL_BLK_SEG) {
        /* The memory type by number: a plugin may not call into libnixl (it can be loaded
         * where libnixl's symbols are not global, e.g. from Python). */
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "cannot register memory type %d (DRAM, FILE and BLOCK "
                           "only)",
                           (int)type);
    }
    return nixl_be_register_each(eng, eng->host, type, descs, count, sizeof(nixl_be_md_t),
                                 reg_one, md_free, out);
}

void px_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    for (size_t i = 0; i < mds->count; i++)
        md_free(eng, nixl_be_md_at(mds, i));
}

/* Per descriptor: the path is the metaInfo (or the path of a spec); a missing or empty path
 * has no value. Sizes of block devices come from the device, not st_size. */
nixl_status_t px_query_mem(nixl_be_engine_t *eng, nixl_mem_t type, const nixl_reg_desc_t *descs,
                           size_t count, nixl_query_resp_t *out)
{
    (void)type;
    char buf[PX_PATH_MAX], err[PX_ERR_MAX + PX_PATH_MAX];
    for (size_t i = 0; i < count; i++) {
        nixl_be_file_spec_t spec;
        const char *path = buf;
        if (!descs[i].meta_len || descs[i].meta_len >= sizeof(buf) ||
            memchr(descs[i].meta, '\0', descs[i].meta_len))
            continue;
        if (!nixl_be_file_spec_parse(descs[i].meta, descs[i].meta_len, buf, sizeof(buf), &spec, err,
                           sizeof(err)))
            continue; /* a broken spec names no file */
        if (spec.is_spec) {
            path = spec.path;
        } else {
            memcpy(buf, descs[i].meta, descs[i].meta_len);
            buf[descs[i].meta_len] = '\0';
        }
        if (!nixl_file_query(path, &out[i])) /* the core frees what was filled */
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    return NIXL_SUCCESS;
}
