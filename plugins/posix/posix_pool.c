/*
 * posix_pool.c - the thread-pool I/O engine: pread/pwrite on num_threads workers. It needs
 * nothing but libc, so it is always built and is the last fallback (and what use_posix_aio
 * selects: glibc's POSIX AIO is itself a thread pool doing the same calls, one at a time per
 * file).
 *
 * The queue shares eng->lock: submit() runs with it held, and a worker takes it to pop an op
 * and to report the result. Idle workers sleep on a condition variable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "posix_priv.h"

typedef struct px_pool {
    px_io_t io;
    pthread_cond_t cv;
    px_op_t *head, *tail;
    bool stop;
    unsigned nthreads;
    pthread_t *threads;
} px_pool_t;

static void *pool_worker(void *arg)
{
    px_pool_t *p = arg;
    nixl_be_engine_t *eng = p->io.eng;
    pthread_mutex_lock(&eng->lock);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &eng->lock);
        if (!p->head)
            break; /* stopping, and nothing left */
        px_op_t *op = p->head;
        p->head = op->next;
        if (!p->head)
            p->tail = NULL;
        bool write = op->req->write;
        pthread_mutex_unlock(&eng->lock);

        /* One call per pop: a short result goes back through px_complete(), like the
         * kernel engines' results, which resubmits the rest. */
        size_t left = op->len - op->done;
        off_t at = (off_t)(op->off + op->done);
        ssize_t r = write ? pwrite(op->fd, op->buf + op->done, left, at)
                          : pread(op->fd, op->buf + op->done, left, at);
        long res = r < 0 ? -(long)errno : (long)r;

        pthread_mutex_lock(&eng->lock);
        px_complete(eng, op, res);
        px_fill(eng);
    }
    pthread_mutex_unlock(&eng->lock);
    return NULL;
}

static int pool_submit(px_io_t *io, px_op_t *const *ops, unsigned n, bool write)
{
    (void)write;
    px_pool_t *p = (px_pool_t *)io;
    for (unsigned i = 0; i < n; i++) {
        ops[i]->next = NULL;
        if (p->tail)
            p->tail->next = ops[i];
        else
            p->head = ops[i];
        p->tail = ops[i];
    }
    if (n == 1)
        pthread_cond_signal(&p->cv);
    else
        pthread_cond_broadcast(&p->cv);
    return (int)n;
}

static void pool_destroy(px_io_t *io)
{
    px_pool_t *p = (px_pool_t *)io;
    nixl_be_engine_t *eng = io->eng;
    pthread_mutex_lock(&eng->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&eng->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

static const px_io_ops_t pool_ops = {.name = "thread pool", .submit = pool_submit,
                                     .destroy = pool_destroy};

int px_pool_create(nixl_be_engine_t *eng, px_io_t **out, char *why, size_t whylen)
{
    px_pool_t *p = calloc(1, sizeof(*p));
    unsigned want = eng->params.pool_threads;
    if (p)
        p->threads = calloc(want, sizeof(pthread_t));
    if (!p || !p->threads) {
        free(p);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    p->io.ops = &pool_ops;
    p->io.eng = eng;
    pthread_cond_init(&p->cv, NULL);
    for (; p->nthreads < want; p->nthreads++) {
        int rc = pthread_create(&p->threads[p->nthreads], NULL, pool_worker, p);
        if (rc) {
            snprintf(why, whylen, "cannot start I/O thread %u: %s", p->nthreads, strerror(rc));
            pool_destroy(&p->io);
            return -rc;
        }
    }
    *out = &p->io;
    return 0;
}
