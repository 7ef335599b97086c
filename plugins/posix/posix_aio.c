/*
 * posix_aio.c - the Linux native AIO I/O engine (libaio), built when libaio.h exists.
 *
 * One AIO context of kernel_queue_size events per engine and as many iocbs, handed out from a
 * free list (the engine never has more ops in flight than that). One completion thread sleeps
 * in io_getevents(); its timeout only bounds how long destroy waits for it to notice the stop
 * flag. Buffered files make io_submit() synchronous on most kernels: use O_DIRECT (path-mode
 * "direct") for real asynchrony, or io_uring.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libaio.h>

#include "posix_priv.h"

#define PX_AIO_MAX_IO (1u << 30)
#define PX_AIO_EVENTS 64
#define PX_AIO_WAKE_MS 50

typedef struct px_aio {
    px_io_t io;
    io_context_t ctx;
    struct iocb *iocbs;
    struct iocb **free_list;
    size_t nfree;
    pthread_t thread;
    _Atomic bool stop;
} px_aio_t;

static int aio_submit(px_io_t *io, px_op_t *const *ops, unsigned n, bool write)
{
    px_aio_t *a = (px_aio_t *)io;
    struct iocb *batch[64];
    if (n > 64)
        n = 64;
    if (n > a->nfree)
        n = (unsigned)a->nfree;
    if (!n)
        return -EBUSY;
    for (unsigned k = 0; k < n; k++) {
        px_op_t *op = ops[k];
        struct iocb *cb = a->free_list[--a->nfree];
        size_t left = op->len - op->done;
        size_t len = left > PX_AIO_MAX_IO ? PX_AIO_MAX_IO : left;
        if (write)
            io_prep_pwrite(cb, op->fd, op->buf + op->done, len, (long long)(op->off + op->done));
        else
            io_prep_pread(cb, op->fd, op->buf + op->done, len, (long long)(op->off + op->done));
        cb->data = op;
        batch[k] = cb;
    }
    int rc = io_submit(a->ctx, (long)n, batch);
    unsigned took = rc > 0 ? (unsigned)rc : 0;
    for (unsigned k = n; k-- > took;)
        a->free_list[a->nfree++] = batch[k]; /* not accepted: back to the free list */
    return rc > 0 ? rc : (rc == 0 ? -EAGAIN : rc);
}

static void *aio_thread(void *arg)
{
    px_aio_t *a = arg;
    nixl_be_engine_t *eng = a->io.eng;
    struct io_event ev[PX_AIO_EVENTS];
    while (!atomic_load(&a->stop)) {
        struct timespec ts = {0, PX_AIO_WAKE_MS * 1000000L};
        int n = io_getevents(a->ctx, 1, PX_AIO_EVENTS, ev, &ts);
        if (n <= 0)
            continue; /* timeout, or EINTR */
        pthread_mutex_lock(&eng->lock);
        for (int i = 0; i < n; i++) {
            struct iocb *cb = ev[i].obj;
            a->free_list[a->nfree++] = cb;
            /* res carries a negative errno in an unsigned long */
            px_complete(eng, cb->data, (long)ev[i].res);
        }
        px_fill(eng);
        pthread_mutex_unlock(&eng->lock);
    }
    return NULL;
}

static void aio_destroy(px_io_t *io)
{
    px_aio_t *a = (px_aio_t *)io;
    atomic_store(&a->stop, true);
    pthread_join(a->thread, NULL);
    io_destroy(a->ctx);
    free(a->iocbs);
    free(a->free_list);
    free(a);
}

static const px_io_ops_t aio_ops = {.name = "libaio", .submit = aio_submit,
                                    .destroy = aio_destroy};

int px_aio_create(nixl_be_engine_t *eng, px_io_t **out, char *why, size_t whylen)
{
    size_t qd = eng->params.kernel_queue_size;
    px_aio_t *a = calloc(1, sizeof(*a));
    if (a) {
        a->iocbs = calloc(qd, sizeof(*a->iocbs));
        a->free_list = calloc(qd, sizeof(*a->free_list));
    }
    if (!a || !a->iocbs || !a->free_list) {
        if (a) {
            free(a->iocbs);
            free(a->free_list);
        }
        free(a);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < qd; i++)
        a->free_list[a->nfree++] = &a->iocbs[i];
    a->io.ops = &aio_ops;
    a->io.eng = eng;
    int rc = io_setup((int)qd, &a->ctx);
    if (rc == 0) {
        rc = -pthread_create(&a->thread, NULL, aio_thread, a);
        if (rc)
            io_destroy(a->ctx);
    }
    if (rc) {
        snprintf(why, whylen, "io_setup(%zu) failed: %s%s", qd, strerror(-rc),
                 rc == -EAGAIN ? " (see /proc/sys/fs/aio-max-nr)" : "");
        free(a->iocbs);
        free(a->free_list);
        free(a);
        return rc;
    }
    *out = &a->io;
    return 0;
}
