/*
 * ucx_pool.c - num_threads: dedicated workers, each driven by a thread of its own, that carry
 * the chunks of large requests (the reference's thread-pool engine).
 *
 * A request of at least split_batch_size elements, to a peer other than ourselves, is cut when
 * it is prepared into chunks of at least split_batch_size elements, at most one per dedicated
 * worker (so n = min(num_threads, count / split_batch_size) chunks of count / n elements, the
 * remainder spread one each over the first ones). Each chunk is bound to a dedicated worker
 * then, its elements resolved with that worker's rkeys, and the requests take turns on where
 * their first chunk goes. A post hands each chunk to its worker's thread, which issues it (its
 * puts or gets and one flush of its endpoint) and counts it in the one request, so completion
 * and the notification work as for a request that was never split (ucx_xfer.c). The post
 * returns once every chunk is issued.
 *
 * A thread never spins: it sleeps in poll() on its worker's event fd (armed) and a wake-up
 * eventfd written for each chunk handed to it; while the engine has work outstanding it also
 * looks every UCX_BUSY_POLL_MS, as the progress thread does, in case a transport queued work
 * that raises no event. Everything else on a dedicated worker (endpoints created when a peer
 * is loaded, rkeys unpacked per worker, closes, teardown) is done as for the shared ones.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ucx_priv.h"

typedef struct ucx_pool_thread {
    nixl_be_engine_t *eng;
    unsigned worker;
    int efd;     /* the worker's event fd (UCX owns it) */
    int wake_fd; /* eventfd: a chunk was queued, or stop */
    bool started;
    pthread_t tid;
    pthread_mutex_t lock; /* the queue */
    ucx_chunk_t *head, **tail;
} ucx_pool_thread_t;

size_t ucx_pool_nchunks(const nixl_be_engine_t *eng, const ucx_conn_t *conn, size_t count)
{
    /* Loopback has an endpoint on worker 0 only (ucx_conn.c): it is never split. */
    if (!eng->nthreads || conn->is_self || count < eng->params.split_batch_size)
        return 0;
    size_t n = count / eng->params.split_batch_size;
    return n < eng->nthreads ? n : eng->nthreads;
}

void ucx_pool_plan(nixl_be_engine_t *eng, nixl_be_req_t *req, unsigned worker, bool split)
{
    size_t n = req->nchunks;
    if (!split) {
        req->chunks[0] = (ucx_chunk_t){.req = req, .count = req->count, .worker = worker};
        return;
    }
    unsigned start = atomic_fetch_add(&eng->pool_next, 1) % eng->nthreads;
    size_t base = req->count / n, extra = req->count % n, first = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = base + (i < extra);
        req->chunks[i] = (ucx_chunk_t){
            .req = req,
            .first = first,
            .count = len,
            .worker = eng->nshared + (unsigned)((start + i) % eng->nthreads),
        };
        first += len;
    }
    NIXL_BE_LOG(eng->host, NIXL_LOG_TRACE,
                "a request of %zu descriptors to '%s' is split into %zu chunk(s) of %zu or %zu, "
                "from dedicated worker %u on", req->count, req->conn->name, n, base,
                base + (extra > 0), eng->nshared + start);
}

static void wake(ucx_pool_thread_t *t)
{
    uint64_t one = 1;
    if (write(t->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        NIXL_BE_LOG(t->eng->host, NIXL_LOG_WARN, "waking pool thread %u failed: errno %d",
                    t->worker, errno);
}

void ucx_pool_wake(nixl_be_engine_t *eng, unsigned worker)
{
    if (eng->pool && worker >= eng->nshared && eng->pool[worker - eng->nshared].started)
        wake(&eng->pool[worker - eng->nshared]);
}

void ucx_pool_post(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    atomic_store(&req->unposted, req->nchunks);
    for (size_t i = 0; i < req->nchunks; i++) {
        ucx_chunk_t *c = &req->chunks[i];
        ucx_pool_thread_t *t = &eng->pool[c->worker - eng->nshared];
        c->next = NULL;
        pthread_mutex_lock(&t->lock);
        *t->tail = c;
        t->tail = &c->next;
        pthread_mutex_unlock(&t->lock);
        wake(t);
    }
    pthread_mutex_lock(&eng->pool_lock);
    while (atomic_load(&req->unposted))
        pthread_cond_wait(&eng->pool_posted, &eng->pool_lock);
    pthread_mutex_unlock(&eng->pool_lock);
}

/* Issue what was queued. A chunk is not touched after its request's last chunk is counted as
 * posted: the poster returns then, and may release the request once it completes. */
static void issue_queued(ucx_pool_thread_t *t)
{
    pthread_mutex_lock(&t->lock);
    ucx_chunk_t *c = t->head;
    t->head = NULL;
    t->tail = &t->head;
    pthread_mutex_unlock(&t->lock);
    while (c) {
        ucx_chunk_t *next = c->next;
        nixl_be_req_t *req = c->req;
        size_t done = ucx_chunk_issue(c);
        if (done) /* never the last: the poster holds one until every chunk is posted */
            ucx_ops_done(req, c->worker, done, 0, UCS_OK);
        if (atomic_fetch_sub(&req->unposted, 1) == 1) {
            pthread_mutex_lock(&t->eng->pool_lock);
            pthread_cond_broadcast(&t->eng->pool_posted);
            pthread_mutex_unlock(&t->eng->pool_lock);
        }
        c = next;
    }
}

static void *pool_main(void *arg)
{
    ucx_pool_thread_t *t = arg;
    nixl_be_engine_t *eng = t->eng;
    ucp_worker_h worker = eng->workers[t->worker];
    struct pollfd fds[2] = {{.fd = t->efd, .events = POLLIN},
                            {.fd = t->wake_fd, .events = POLLIN}};
    while (!atomic_load(&eng->stop)) {
        issue_queued(t);
        bool armed = ucx_progress_and_arm(worker, NULL);
        int timeout = (atomic_load(&eng->busy) || !armed) ? UCX_BUSY_POLL_MS : -1;
        /* A chunk queued after issue_queued() wrote wake_fd: poll returns at once. */
        if (poll(fds, 2, timeout) > 0 && (fds[1].revents & POLLIN)) {
            uint64_t v;
            if (read(t->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                break;
        }
    }
    return NULL;
}

nixl_status_t ucx_pool_start(nixl_be_engine_t *eng)
{
    if (!eng->nthreads)
        return NIXL_SUCCESS;
    pthread_mutex_init(&eng->pool_lock, NULL);
    pthread_cond_init(&eng->pool_posted, NULL);
    eng->pool = calloc(eng->nthreads, sizeof(*eng->pool));
    if (!eng->pool)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    for (unsigned i = 0; i < eng->nthreads; i++) {
        ucx_pool_thread_t *t = &eng->pool[i];
        *t = (ucx_pool_thread_t){.eng = eng, .worker = eng->nshared + i, .wake_fd = -1};
        pthread_mutex_init(&t->lock, NULL);
        t->tail = &t->head;
    }
    for (unsigned i = 0; i < eng->nthreads; i++) {
        ucx_pool_thread_t *t = &eng->pool[i];
        ucs_status_t s = ucp_worker_get_efd(eng->workers[t->worker], &t->efd);
        if (s != UCS_OK)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "the event fd of worker %u: %s",
                               t->worker, ucs_status_string(s));
        t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (t->wake_fd < 0)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                               "eventfd for pool thread %u failed: errno %d", i, errno);
        int e = pthread_create(&t->tid, NULL, pool_main, t);
        if (e)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                               "starting pool thread %u of %u failed: errno %d", i + 1,
                               eng->nthreads, e);
        t->started = true;
    }
    return NIXL_SUCCESS;
}

/* After ucx_progress_stop (eng->stop is set): no post is in progress, so the queues are empty. */
void ucx_pool_stop(nixl_be_engine_t *eng)
{
    if (!eng->pool)
        return;
    atomic_store(&eng->stop, true);
    for (unsigned i = 0; i < eng->nthreads; i++)
        if (eng->pool[i].started)
            wake(&eng->pool[i]);
    for (unsigned i = 0; i < eng->nthreads; i++) {
        ucx_pool_thread_t *t = &eng->pool[i];
        if (t->started)
            pthread_join(t->tid, NULL);
        if (t->wake_fd >= 0)
            close(t->wake_fd);
        pthread_mutex_destroy(&t->lock);
    }
    free(eng->pool);
    eng->pool = NULL;
    pthread_cond_destroy(&eng->pool_posted);
    pthread_mutex_destroy(&eng->pool_lock);
}
