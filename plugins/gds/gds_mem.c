/*
 * gds_mem.c - registration for cuFile, and query_mem.
 *
 * FILE: devId is a descriptor the caller owns and keeps open until it deregisters (fd mode),
 * or, with a "<ro|rw>[,flags]:<path>" spec in metaInfo (path mode, as the reference), a name
 * for a file we open here and close when the region goes (nixl_be_file_spec_parse). A cuFile
 * handle is registered once per fd and counted, because several regions may name one file and
 * cuFile refuses to register an fd twice.
 * DRAM/VRAM: the buffer is given to cuFileBufRegister, which pins it for direct I/O; VRAM
 * must be GPU memory (checked with the host's GPU services first, so a wrong address fails
 * with a reason instead of inside cuFile). A buffer cuFile already holds (an overlapping
 * registration) is used as is and left to its owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "array.h"
#include "be_storage.h"
#include "file_query.h"
#include "gds_priv.h"

#define GDS_PATH_MAX 4096

static gds_file_t *file_find(nixl_be_engine_t *eng, int fd)
{
    for (size_t i = 0; i < eng->nfiles; i++)
        if (eng->files[i]->fd == fd)
            return eng->files[i];
    return NULL;
}

static void file_put(nixl_be_engine_t *eng, gds_file_t *f)
{
    if (--f->refs)
        return;
    eng->cf->handle_deregister(f->handle);
    if (f->owned)
        close(f->fd); /* path mode: we opened it */
    for (size_t i = 0; i < eng->nfiles; i++)
        if (eng->files[i] == f) {
            eng->files[i] = eng->files[--eng->nfiles];
            break;
        }
    free(f);
}

/* A cuFile handle for fd, in the engine's table with one reference. */
static nixl_status_t file_new(nixl_be_engine_t *eng, size_t i, int fd, bool direct,
                              gds_file_t **out)
{
    gds_file_t *f = calloc(1, sizeof(*f));
    gds_file_t **slot = f ? nixl_array_push(eng->files, eng->nfiles, eng->cap_files) : NULL;
    if (!slot) {
        free(f);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    gds_cu_descr_t descr = {.type = 1 /* opaque fd */, .handle.fd = fd};
    gds_cu_err_t e = eng->cf->handle_register(&f->handle, &descr);
    if (e.err != GDS_CU_SUCCESS) {
        eng->nfiles--;
        free(f);
        char s[96];
        /* cuFile says why only in its own log; one cause met on VMs and containers: no udev
         * data for the disk, so cuFile cannot read the volume's attributes. */
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                           "descriptor %zu: cuFileHandleRegister of fd %d failed: %s (cuFile "
                           "gives the reason in its log, cufile.log in the working directory "
                           "or logging.dir of cufile.json)",
                           i, fd, gds_cu_strerror(e, s, sizeof(s)));
    }
    f->fd = fd;
    f->direct = direct;
    f->refs = 1;
    *slot = f;
    *out = f;
    return NIXL_SUCCESS;
}

/* The path-mode file of this engine that devId names, if any. */
static gds_file_t *owned_find(nixl_be_engine_t *eng, uint64_t dev_id)
{
    for (size_t i = 0; i < eng->nfiles; i++)
        if (eng->files[i]->owned && eng->files[i]->dev_id == dev_id)
            return eng->files[i];
    return NULL;
}

/* Path mode: open the spec's file, register it; it is closed when its region goes. */
static nixl_status_t reg_path(nixl_be_engine_t *eng, size_t i, const nixl_reg_desc_t *d,
                              const nixl_be_file_spec_t *spec, nixl_be_md_t *md)
{
    if (owned_find(eng, d->dev_id)) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: devId %llu already names a path-mode file of this "
                           "engine; path mode needs one devId per file",
                           i, (unsigned long long)d->dev_id);
    }
    int fd = open(spec->path, spec->flags, 0644);
    if (fd < 0) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "descriptor %zu: cannot open '%s': %s",
                           i, spec->path, strerror(errno));
    }
    gds_file_t *f;
    nixl_status_t st = file_new(eng, i, fd, (spec->flags & O_DIRECT) != 0, &f);
    if (st != NIXL_SUCCESS) {
        close(fd);
        return st;
    }
    f->owned = true;
    f->dev_id = d->dev_id;
    md->file = f;
    return NIXL_SUCCESS;
}

static nixl_status_t reg_file(nixl_be_engine_t *eng, size_t i, const nixl_reg_desc_t *d,
                              nixl_be_md_t *md)
{
    char buf[GDS_PATH_MAX], err[GDS_ERR_MAX + GDS_PATH_MAX];
    nixl_be_file_spec_t spec;
    if (!nixl_be_file_spec_parse(d->meta, d->meta_len, buf, sizeof(buf), &spec, err,
                                 sizeof(err)))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "descriptor %zu: %s", i, err);
    if (spec.is_spec)
        return reg_path(eng, i, d, &spec, md);
    int fl = d->dev_id <= INT32_MAX ? fcntl((int)d->dev_id, F_GETFL) : -1;
    if (fl < 0) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: devId %llu is not an open file descriptor (and "
                           "metaInfo is not a '<ro|rw>[,flags]:<path>' spec)",
                           i, (unsigned long long)d->dev_id);
    }
    int fd = (int)d->dev_id;
    if (owned_find(eng, d->dev_id)) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: devId %llu names a path-mode file of this engine",
                           i, (unsigned long long)d->dev_id);
    }
    gds_file_t *f = file_find(eng, fd);
    if (f && f->owned) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: fd %d is this engine's own descriptor of a "
                           "path-mode file, not one of yours",
                           i, fd);
    }
    if (f) {
        f->refs++;
    } else {
        nixl_status_t st = file_new(eng, i, fd, (fl & O_DIRECT) != 0, &f);
        if (st != NIXL_SUCCESS)
            return st;
    }
    md->file = f;
    return NIXL_SUCCESS;
}

static nixl_status_t reg_buf(nixl_be_engine_t *eng, nixl_mem_t type, size_t i,
                             const nixl_reg_desc_t *d, nixl_be_md_t *md)
{
    md->base = d->addr;
    md->len = d->len;
    if (type == NIXL_VRAM_SEG) {
        nixl_gpu_ptr_t p;
        nixl_gpu_err_t err = {{0}};
        if (eng->gpu->ptr_query(d->addr, d->len ? d->len : 1, &p, &err) != NIXL_SUCCESS)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "descriptor %zu: %s", i,
                               err.msg);
        if (p.kind != NIXL_GPU_MEM_DEVICE) {
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu: 0x%llx is not GPU memory (register host memory "
                               "as DRAM)",
                               i, (unsigned long long)d->addr);
        }
    }
    if (!d->len)
        return NIXL_SUCCESS;
    gds_cu_err_t e = eng->cf->buf_register((const void *)d->addr, d->len, 0);
    if (e.err == GDS_CU_SUCCESS) {
        md->buf_registered = true;
        return NIXL_SUCCESS;
    }
    char s[96];
    gds_cu_strerror(e, s, sizeof(s));
    if (e.err == GDS_CU_MEMORY_ALREADY_REGISTERED) {
        NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "descriptor %zu: buffer already known to cuFile",
                    i);
        return NIXL_SUCCESS;
    }
    if (type == NIXL_DRAM_SEG) {
        /* cuFile moves unregistered host memory through its own bounce buffers: slower, but
         * correct, so the registration stands. */
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "descriptor %zu: cuFileBufRegister of %zu bytes of DRAM failed (%s); "
                    "cuFile will bounce it through its own buffers",
                    i, d->len, s);
        return NIXL_SUCCESS;
    }
    return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                       "descriptor %zu: cuFileBufRegister of %zu bytes of GPU memory at 0x%llx "
                       "failed: %s (in GDS mode the GPU's BAR1 space bounds what can be "
                       "registered at once)",
                       i, d->len, (unsigned long long)d->addr, s);
}

static void md_free(nixl_be_engine_t *eng, nixl_be_md_t *md)
{
    if (md->file)
        file_put(eng, md->file);
    if (md->buf_registered) {
        gds_cu_err_t e = eng->cf->buf_deregister((const void *)md->base);
        if (e.err != GDS_CU_SUCCESS) {
            char s[96];
            NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "cuFileBufDeregister of 0x%llx failed: %s",
                        (unsigned long long)md->base, gds_cu_strerror(e, s, sizeof(s)));
        }
    }
    free(md);
}

/* One region (nixl_be_register_each does the rest: all or nothing). */
static nixl_status_t reg_one(nixl_be_engine_t *eng, nixl_mem_t type, size_t i,
                             const nixl_reg_desc_t *d, nixl_be_md_t *md)
{
    md->type = type;
    return type == NIXL_FILE_SEG ? reg_file(eng, i, d, md) : reg_buf(eng, type, i, d, md);
}

nixl_status_t gds_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                               const nixl_reg_desc_t *descs, size_t count, nixl_be_md_t **out)
{
    if (type != NIXL_DRAM_SEG && type != NIXL_VRAM_SEG && type != NIXL_FILE_SEG) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "cannot register memory type %d (DRAM, VRAM and FILE only)",
                           (int)type);
    }
    return nixl_be_register_each(eng, eng->host, type, descs, count, sizeof(nixl_be_md_t),
                                 reg_one, md_free, out);
}

void gds_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    for (size_t i = 0; i < mds->count; i++)
        md_free(eng, nixl_be_md_at(mds, i));
}

/* Per descriptor: the path is the metaInfo; a missing or empty path has no value. */
nixl_status_t gds_query_mem(nixl_be_engine_t *eng, nixl_mem_t type, const nixl_reg_desc_t *descs,
                            size_t count, nixl_query_resp_t *out)
{
    if (type != NIXL_FILE_SEG) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "queryMem answers for FILE only (memory type %d)", (int)type);
    }
    char path[GDS_PATH_MAX];
    for (size_t i = 0; i < count; i++) {
        size_t n = descs[i].meta_len;
        if (!n || n >= sizeof(path) || memchr(descs[i].meta, '\0', n))
            continue;
        memcpy(path, descs[i].meta, n);
        path[n] = '\0';
        if (!nixl_file_query(path, &out[i])) /* the core frees what was filled */
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    return NIXL_SUCCESS;
}
