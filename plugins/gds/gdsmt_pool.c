/*
 * gdsmt_pool.c - the GDS_MT backend (libplugin_GDS_MT.so): thread_count workers take the I/Os
 * of posted requests from one queue and run each with a blocking cuFileRead/cuFileWrite.
 *
 * A short result is continued from where it stopped (as with pread); no progress at all is an
 * error (a read past the end of the file, a full disk), as is any negative result, with the
 * descriptor, the offset and cuFile's or the system's reason. The last I/O of a request
 * publishes its state; check_xfer only reads it. Workers sleep on a condition variable.
 *
 * Locks: pool->lock guards the queue, every request's counters and the stop flag.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fifo.h"
#include "gds_priv.h"

typedef struct gm_req {
    size_t next;            /* first I/O not taken by a worker */
    nixl_fifo_node_t qnode; /* in the pool's queue while I/Os are not taken */
    gds_req_t *req;         /* whose runner state this is */
} gm_req_t;

typedef struct gm_pool {
    pthread_mutex_t lock;
    pthread_cond_t work; /* the queue got I/Os, or stop */
    pthread_cond_t done; /* a request finished (abort waits on it) */
    nixl_fifo_t queue; /* gm_req_t.qnode */
    bool stop;
    pthread_t *threads;
    size_t nthreads;
    nixl_be_engine_t *eng;
} gm_pool_t;

static gm_req_t *gm(gds_req_t *req)
{
    return req->run;
}

/* With the lock held: the next I/O of the queue, unlinking a request whose last I/O it is. */
static gds_req_t *take(gm_pool_t *p, size_t *idx)
{
    nixl_fifo_node_t *front = nixl_fifo_front(&p->queue);
    if (!front)
        return NULL;
    gm_req_t *r = nixl_list_entry(front, gm_req_t, qnode);
    *idx = r->next++;
    if (r->next == r->req->nios)
        nixl_fifo_remove(&p->queue, &r->qnode);
    return r->req;
}

static void *worker(void *arg)
{
    gm_pool_t *p = arg;
    const gds_cufile_t *cf = p->eng->cf;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        size_t i = 0;
        gds_req_t *req = NULL; /* (gcc with sanitizers cannot see the loop sets it) */
        while (!p->stop && !(req = take(p, &i)))
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        pthread_mutex_unlock(&p->lock);
        char what[200];
        bool ok = gds_io_run(cf, req->write, &req->ios[i], what, sizeof(what));
        pthread_mutex_lock(&p->lock);
        if (gds_ios_end(req, &req->ios[i], 1, ok ? NULL : what))
            pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void gm_stop(nixl_be_engine_t *eng)
{
    gm_pool_t *p = eng->runner;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
    eng->runner = NULL;
}

static nixl_status_t gm_start(nixl_be_engine_t *eng, char *why, size_t whylen)
{
    gm_pool_t *p = calloc(1, sizeof(*p));
    size_t n = (size_t)eng->params.thread_count;
    if (p)
        p->threads = calloc(n, sizeof(pthread_t));
    if (!p || !p->threads) {
        free(p);
        snprintf(why, whylen, "out of memory");
        return NIXL_ERR_UNKNOWN;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->eng = eng;
    eng->runner = p;
    for (; p->nthreads < n; p->nthreads++) {
        int rc = pthread_create(&p->threads[p->nthreads], NULL, worker, p);
        if (rc) {
            snprintf(why, whylen, "cannot start worker %zu of thread_count %zu: %s",
                     p->nthreads + 1, n, strerror(rc));
            gm_stop(eng);
            return NIXL_ERR_BACKEND;
        }
    }
    return NIXL_SUCCESS;
}

static nixl_status_t gm_req_init(nixl_be_engine_t *eng, gds_req_t *req)
{
    gm_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    r->req = req;
    req->run = r;
    return NIXL_SUCCESS;
}

static void gm_req_fini(nixl_be_engine_t *eng, gds_req_t *req)
{
    (void)eng;
    free(req->run);
    req->run = NULL;
}

static nixl_status_t gm_post(nixl_be_engine_t *eng, gds_req_t *req)
{
    gm_pool_t *p = eng->runner;
    gm_req_t *r = gm(req);
    pthread_mutex_lock(&p->lock);
    r->next = 0;
    atomic_store(&req->state, NIXL_IN_PROG);
    nixl_fifo_push(&p->queue, &r->qnode);
    /* Wake as many workers as there are I/Os, not more. */
    if (req->nios >= p->nthreads)
        pthread_cond_broadcast(&p->work);
    else
        for (size_t i = 0; i < req->nios; i++)
            pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return NIXL_IN_PROG;
}

static nixl_status_t gm_check(nixl_be_engine_t *eng, gds_req_t *req)
{
    (void)eng;
    return (nixl_status_t)atomic_load_explicit(&req->state, memory_order_acquire);
}

/* Take back the I/Os no worker has yet; wait (bounded) for those that run. */
static bool gm_abort(nixl_be_engine_t *eng, gds_req_t *req)
{
    gm_pool_t *p = eng->runner;
    gm_req_t *r = gm(req);
    pthread_mutex_lock(&p->lock);
    if (nixl_fifo_remove(&p->queue, &r->qnode)) {
        req->left -= req->nios - r->next; /* taken back: they never run */
        r->next = req->nios;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += GDS_RELEASE_WAIT_MS / 1000;
    while (req->left > 0 && pthread_cond_timedwait(&p->done, &p->lock, &dl) != ETIMEDOUT) {
    }
    bool idle = req->left == 0;
    pthread_mutex_unlock(&p->lock);
    return idle;
}

GDS_PLUGIN_DEFINE(gm, GDS_KIND_MT, "a pool of threads calling cuFileRead/cuFileWrite", "GDS_MT",
                  gdsmt_default_params, GDSMT_NUM_DEFAULTS)
