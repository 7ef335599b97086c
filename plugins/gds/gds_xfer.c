/*
 * gds_xfer.c - prepared transfers between DRAM/VRAM and files, shared by GDS and GDS_MT; the
 * engine's runner (gds_batch.c or gdsmt_pool.c) runs the I/Os of a post.
 *
 * Everything that can be checked before cuFile sees an I/O is checked in prep: the pair of
 * memory types, equal lengths, offsets that fit off_t, and the O_DIRECT alignment (4 KiB of
 * buffer address, length and file offset) of a file opened with O_DIRECT, with a message
 * naming the descriptor. Descriptors longer than max_request_size become several I/Os.
 * The end of every I/O, whichever runner ran it, is accounted here (gds_ios_end).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gds_priv.h"

static nixl_be_side_t side(const nixl_be_md_t *md)
{
    if (md && (md->type == NIXL_DRAM_SEG || md->type == NIXL_VRAM_SEG))
        return NIXL_BE_SIDE_MEM;
    return md && md->type == NIXL_FILE_SEG ? NIXL_BE_SIDE_STORAGE : NIXL_BE_SIDE_OTHER;
}

/* Check pair i; its memory and file sides in *mem and *file. */
static nixl_status_t check_pair(nixl_be_engine_t *eng, size_t i, const nixl_be_desc_t *local,
                                const nixl_be_desc_t *remote, const nixl_be_desc_t **mem,
                                const nixl_be_desc_t **file)
{
    nixl_status_t st = nixl_be_storage_pair(eng->host, i, local, side(local->md), remote,
                                            side(remote->md), "DRAM or VRAM and FILE", mem, file);
    if (st != NIXL_SUCCESS)
        return st;
    const gds_file_t *f = (*file)->md->file;
    return nixl_be_storage_direct(eng->host, i, *mem, *file, f->fd,
                                  f->direct ? GDS_DIRECT_ALIGN : 0);
}

static size_t pieces(const nixl_be_engine_t *eng, size_t len)
{
    uint64_t max = eng->params.max_request_size;
    return (size_t)((len + max - 1) / max);
}

nixl_status_t gds_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op, const nixl_be_desc_t *local,
                            const nixl_be_desc_t *remote, size_t count, const char *agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out)
{
    (void)agent; /* the core only hands a local-only engine its own name */
    nixl_status_t st = nixl_be_storage_no_notif(eng->host, opts);
    if (st != NIXL_SUCCESS)
        return st;
    size_t nios = 0;
    for (size_t i = 0; i < count; i++) {
        const nixl_be_desc_t *mem, *file;
        st = check_pair(eng, i, &local[i], &remote[i], &mem, &file);
        if (st != NIXL_SUCCESS)
            return st;
        nios += pieces(eng, mem->len);
    }
    gds_req_t *req = calloc(1, sizeof(*req));
    gds_io_t *ios = calloc(nios ? nios : 1, sizeof(*ios));
    if (!req || !ios) {
        free(req);
        free(ios);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        const nixl_be_desc_t *mem, *file;
        (void)check_pair(eng, i, &local[i], &remote[i], &mem, &file); /* passed above */
        for (size_t at = 0; at < mem->len; at += eng->params.max_request_size, k++) {
            size_t left = mem->len - at;
            ios[k] = (gds_io_t){
                .fh = file->md->file->handle,
                .buf_base = (void *)mem->md->base,
                .buf_off = mem->addr - mem->md->base + at,
                .file_off = file->addr + at,
                .size = left < eng->params.max_request_size ? left
                                                            : eng->params.max_request_size,
                .desc = i,
                .host = mem->md->type == NIXL_DRAM_SEG,
                .direct = file->md->file->direct,
            };
        }
    }
    /* READ pulls from the target (the file), WRITE pushes to it. */
    req->write = op == NIXL_WRITE;
    req->eng = eng;
    req->ios = ios;
    req->nios = nios;
    req->ndescs = count;
    atomic_store(&req->state, NIXL_ERR_NOT_POSTED);
    st = eng->run_ops->req_init(eng, req);
    if (st != NIXL_SUCCESS) {
        free(ios);
        free(req);
        return st;
    }
    atomic_fetch_add(&eng->live_reqs, 1);
    *out = req;
    return NIXL_SUCCESS;
}

/* gds_priv.h */
bool gds_io_run(const gds_cufile_t *cf, bool write, const gds_io_t *io, char *what,
                   size_t len)
{
    size_t done = 0;
    while (done < io->size) {
        errno = 0;
        ssize_t n = write ? cf->write(io->fh, io->buf_base, io->size - done,
                                      (off_t)(io->file_off + done), (off_t)(io->buf_off + done))
                          : cf->read(io->fh, io->buf_base, io->size - done,
                                     (off_t)(io->file_off + done), (off_t)(io->buf_off + done));
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        char s[96];
        if (n == 0)
            snprintf(what, len, "short %s: %zu of %zu bytes, then nothing (%s)",
                     write ? "write" : "read", done, io->size,
                     write ? "no space left?" : "past the end of the file?");
        else
            snprintf(what, len, "%s: %s", write ? "cuFileWrite" : "cuFileRead",
                     gds_io_strerror(n, errno ? errno : EIO, s, sizeof(s)));
        return false;
    }
    return true;
}

bool gds_ios_end(gds_req_t *req, const gds_io_t *io, size_t n, const char *what)
{
    if (what && !req->failed) {
        snprintf(req->errmsg, sizeof(req->errmsg), "descriptor %zu: %s of %zu bytes at file "
                 "offset %llu failed: %s", io->desc, req->write ? "write" : "read", io->size,
                 (unsigned long long)io->file_off, what);
        req->failed = true;
    }
    req->left -= n < req->left ? n : req->left;
    if (req->left)
        return false;
    atomic_store_explicit(&req->state, req->failed ? NIXL_ERR_BACKEND : NIXL_SUCCESS,
                          memory_order_release);
    return true;
}

nixl_status_t gds_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts)
{
    nixl_status_t st = nixl_be_storage_post_begin(eng->host, opts, &req->state, req->nios);
    if (st != NIXL_IN_PROG)
        return st;
    req->errmsg[0] = '\0';
    req->failed = false;
    req->left = req->nios;
    return nixl_be_storage_status(eng->host, eng->run_ops->post(eng, req), req->errmsg);
}

nixl_status_t gds_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    int st = atomic_load_explicit(&req->state, memory_order_acquire);
    if (st == NIXL_IN_PROG)
        st = eng->run_ops->check(eng, req);
    /* errmsg was written before the state was published */
    return nixl_be_storage_status(eng->host, (nixl_status_t)st, req->errmsg);
}

nixl_status_t gds_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    if (atomic_load(&req->state) == NIXL_IN_PROG && !eng->run_ops->abort(eng, req)) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REPOST_ACTIVE,
                           "I/Os of the request are still in flight after %d ms",
                           GDS_RELEASE_WAIT_MS);
    }
    eng->run_ops->req_fini(eng, req);
    atomic_fetch_sub(&eng->live_reqs, 1);
    free(req->ios);
    free(req);
    return NIXL_SUCCESS;
}
