/*
 * posix_uring.c - the io_uring I/O engine (liburing), built when liburing's headers exist.
 *
 * One ring of kernel_queue_size entries per engine, and one thread that owns it: it sleeps in
 * io_uring_wait_cqe(), accounts completions and submits every read and write. A post only
 * queues its request and writes an eventfd that the ring is reading, which wakes the thread.
 * Why the posting thread does not submit itself: io_uring completes a request through task
 * work of the task that submitted it, so a user thread that submitted would be woken (or have
 * to enter the kernel) for every batch of completions, and the ring's thread would wait for
 * it. A NOP with no user data tells the thread to stop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <liburing.h>

#include "posix_priv.h"

#define PX_URING_MAX_IO (1u << 30) /* a longer op goes out in pieces, as a short transfer */
#define PX_URING_BATCH 32u          /* most completions waited for at once */

typedef struct px_uring {
    px_io_t io;
    struct io_uring ring;
    pthread_t thread;
    int efd;       /* posts write it; the ring reads it (user data: the engine itself) */
    uint64_t ebuf; /* that read's buffer */
} px_uring_t;

/* With eng->lock held (the SQ's lock): queue the read of the eventfd. */
static void arm_kick(px_uring_t *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    if (!sqe)
        return; /* cannot happen: the SQ holds kernel_queue_size + 1 entries */
    io_uring_prep_read(sqe, u->efd, &u->ebuf, sizeof(u->ebuf), 0);
    io_uring_sqe_set_data(sqe, u);
    io_uring_submit(&u->ring);
}

static void uring_kick(px_io_t *io)
{
    px_uring_t *u = (px_uring_t *)io;
    uint64_t one = 1;
    if (write(u->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        px_fill(io->eng); /* the counter cannot overflow; but never lose a post */
}

static int uring_submit(px_io_t *io, px_op_t *const *ops, unsigned n, bool write)
{
    px_uring_t *u = (px_uring_t *)io;
    unsigned k = 0;
    for (; k < n; k++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        if (!sqe)
            break;
        px_op_t *op = ops[k];
        size_t left = op->len - op->done;
        unsigned len = left > PX_URING_MAX_IO ? PX_URING_MAX_IO : (unsigned)left;
        if (write)
            io_uring_prep_write(sqe, op->fd, op->buf + op->done, len, op->off + op->done);
        else
            io_uring_prep_read(sqe, op->fd, op->buf + op->done, len, op->off + op->done);
        io_uring_sqe_set_data(sqe, op);
    }
    if (!k)
        return -EBUSY;
    int rc = io_uring_submit(&u->ring);
    /* EAGAIN/EBUSY leave the entries in the SQ: the completion thread submits them again. */
    if (rc < 0 && rc != -EAGAIN && rc != -EBUSY)
        return rc;
    return (int)k;
}

static void *uring_thread(void *arg)
{
    px_uring_t *u = arg;
    nixl_be_engine_t *eng = u->io.eng;
    unsigned want = 1;
    pthread_mutex_lock(&eng->lock);
    arm_kick(u); /* from this thread, so that its completion is this thread's task work */
    pthread_mutex_unlock(&eng->lock);
    for (;;) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe_nr(&u->ring, &cqe, want);
        if (rc == -EINTR)
            continue;
        if (rc < 0 && rc != -EAGAIN && rc != -ETIME) {
            /* Not expected from a healthy ring: say so, and do not turn it into a busy loop. */
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR, "io_uring wait failed: %s", strerror(-rc));
            usleep(1000);
        }
        pthread_mutex_lock(&eng->lock);
        bool stop = false, kicked = false;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&u->ring, head, cqe) {
            void *data = io_uring_cqe_get_data(cqe);
            seen++;
            if (!data)
                stop = true;
            else if (data == u)
                kicked = true;
            else
                px_complete(eng, data, cqe->res);
        }
        io_uring_cq_advance(&u->ring, seen);
        if (kicked && !stop)
            arm_kick(u);
        if (io_uring_sq_ready(&u->ring))
            io_uring_submit(&u->ring);
        if (!stop)
            px_fill(eng);
        /* Reap in batches while the queue is deep: one wake-up then refills many slots. The
         * ops of a request's tail still complete: the batch shrinks with the queue. */
        want = (unsigned)(eng->inflight / 4);
        want = want < 1 ? 1 : want > PX_URING_BATCH ? PX_URING_BATCH : want;
        pthread_mutex_unlock(&eng->lock);
        if (stop)
            return NULL;
    }
}

static void uring_destroy(px_io_t *io)
{
    px_uring_t *u = (px_uring_t *)io;
    nixl_be_engine_t *eng = io->eng;
    pthread_mutex_lock(&eng->lock);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, NULL);
        io_uring_submit(&u->ring);
    }
    pthread_mutex_unlock(&eng->lock);
    if (sqe)
        pthread_join(u->thread, NULL);
    else
        pthread_detach(u->thread); /* cannot happen: nothing is in flight at destroy */
    io_uring_queue_exit(&u->ring);
    close(u->efd);
    free(u);
}

static const px_io_ops_t uring_ops = {.name = "io_uring", .submit = uring_submit,
                                      .kick = uring_kick, .destroy = uring_destroy};

int px_uring_create(nixl_be_engine_t *eng, px_io_t **out, char *why, size_t whylen)
{
    px_uring_t *u = calloc(1, sizeof(*u));
    if (!u) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    u->io.ops = &uring_ops;
    u->io.eng = eng;
    u->efd = eventfd(0, EFD_CLOEXEC);
    if (u->efd < 0) {
        int e = errno;
        snprintf(why, whylen, "eventfd failed: %s", strerror(e));
        free(u);
        return -e;
    }
    /* One entry more than the I/Os in flight: the eventfd read is always pending. */
    int rc = io_uring_queue_init((unsigned)eng->params.kernel_queue_size + 1, &u->ring, 0);
    if (rc < 0) {
        snprintf(why, whylen, "io_uring_queue_init(%llu) failed: %s%s",
                 (unsigned long long)eng->params.kernel_queue_size, strerror(-rc),
                 rc == -EPERM || rc == -ENOSYS ? " (io_uring disabled by the kernel or a "
                                                 "seccomp policy)" : "");
        close(u->efd);
        free(u);
        return rc;
    }
    rc = pthread_create(&u->thread, NULL, uring_thread, u);
    if (rc) {
        snprintf(why, whylen, "cannot start the completion thread: %s", strerror(rc));
        io_uring_queue_exit(&u->ring);
        close(u->efd);
        free(u);
        return -rc;
    }
    *out = &u->io;
    return 0;
}
