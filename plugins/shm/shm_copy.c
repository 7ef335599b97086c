/*
 * shm_copy.c - large requests split across copying threads (copy_threads).
 *
 * A request of at least SHM_SPLIT_BYTES whose bytes go by cross-memory attach (once the peer's
 * first call succeeded) or through mappings (shm_map.c), or of at least SHM_XSPLIT_BYTES
 * through staging rings (shm_xchan.c), is cut into up to copy_threads slices of about equal
 * bytes, each at least SHM_SLICE_MIN (SHM_XSLICE_MIN staged), along the descriptor list (a
 * slice may start and end inside a descriptor). The caller's thread (the user's, or the async
 * worker's) copies the first slice and queues the others for the engine's pool of
 * copy_threads - 1 threads, started at the first split; when it is done with its own, it takes
 * back any of its slices that no pool thread has started (so a busy pool never makes a request
 * wait), then waits for the rest. Smaller requests and loopback never come here.
 *
 * Staged: slice k goes through ring k to the peer (the main ring for the first, a bulk ring for
 * the others: shm_xchan_copy_ring), each served by its own thread on the target, so both sides
 * copy with as many threads as there are slices (at most SHM_XBULK_MAX + 1). A peer that
 * refuses the extra rings gets every slice through its main ring, one after the other.
 *
 * Each slice builds its own iovec arrays (the request's are shared by the slices and never
 * written), at most SHM_IOV_MAX elements and `chunk` bytes per system call; async slices look
 * at cancel and the peer's death between calls, as shm_xfer_copy_iov does. The first failure
 * is kept and reported once, after every slice has ended.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "shm_priv.h"

typedef struct split split_t;

typedef struct shm_slice {
    struct shm_slice *next; /* eng->cp_head */
    split_t *job;
    size_t i0, o0, i1, o1; /* from (descriptor, offset) up to, not including, (i1, o1) */
    unsigned ring;         /* staged: the slice's ring (shm_xchan_copy_ring) */
    bool taken;
    char why[sizeof(((nixl_be_req_t *)0)->why)]; /* staged: the ring's reason of a failure */
} slice_t;

struct split {
    nixl_be_req_t *req;
    size_t chunk;
    bool async;
    bool staged; /* through staging rings, one per slice, instead of cross-memory attach */
    size_t left;  /* slices not finished (cp_lock) */
    int err;      /* first errno (0: none); cp_lock */
    size_t err_idx;
    nixl_status_t st; /* first non-errno failure (cancel, death, no progress) */
    const char *why;  /* the first failure's reason when a staging ring gave one (cp_lock) */
    atomic_bool stop; /* a slice failed: the others stop at their next call */
};

static void job_fail(nixl_be_engine_t *eng, split_t *job, int err, size_t idx, nixl_status_t st,
                     const char *why)
{
    pthread_mutex_lock(&eng->cp_lock);
    if (!job->err && job->st == NIXL_SUCCESS) {
        job->err = err;
        job->err_idx = idx;
        job->st = st;
        job->why = why;
    }
    pthread_mutex_unlock(&eng->cp_lock);
    atomic_store(&job->stop, true);
}

/* Stop before the next call? Records why (async: cancel, death, disconnect). */
static bool must_stop(split_t *job)
{
    nixl_be_req_t *req = job->req;
    if (atomic_load_explicit(&job->stop, memory_order_relaxed))
        return true;
    if (!job->async)
        return false;
    nixl_status_t st = atomic_load_explicit(&req->cancel, memory_order_relaxed)
                           ? NIXL_ERR_CANCELED
                       : atomic_load_explicit(&req->peer->dead, memory_order_relaxed)
                           ? NIXL_ERR_REMOTE_DISCONNECT
                       : atomic_load_explicit(&req->peer->forgotten, memory_order_relaxed)
                           ? NIXL_ERR_NOT_FOUND
                           : NIXL_SUCCESS;
    if (st == NIXL_SUCCESS)
        return false;
    job_fail(req->eng, job, 0, 0, st, NULL);
    return true;
}

/* A staged slice: its pieces through its own ring, SHM_IOV_MAX at a time (the ring pipelines
 * them; its reason of a failure goes to the slice, not to the request other threads share). */
static bool run_staged(slice_t *s, const struct iovec *lv, const struct iovec *rv, const size_t *dv,
                       size_t n)
{
    split_t *job = s->job;
    shm_req_why_to(s->why);
    nixl_status_t st = shm_xchan_copy_ring(job->req, s->ring, lv, rv, dv, n, job->async);
    shm_req_why_to(NULL);
    if (st != NIXL_SUCCESS)
        job_fail(job->req->eng, job, 0, 0, st, s->why);
    return st == NIXL_SUCCESS;
}

static void run_slice(slice_t *s, struct iovec *lv, struct iovec *rv, size_t *dv)
{
    split_t *job = s->job;
    nixl_be_req_t *req = job->req;
    bool wr = req->op == NIXL_WRITE;
    size_t i = s->i0, o = s->o0;
    while ((i < s->i1 || (i == s->i1 && o < s->o1)) && !must_stop(job)) {
        /* the next call's pieces, from (i, o) */
        size_t n = 0, bytes = 0, k = i, ko = o;
        while (n < SHM_IOV_MAX && bytes < job->chunk && (k < s->i1 || (k == s->i1 && ko < s->o1))) {
            size_t end = k == s->i1 ? s->o1 : req->liov[k].iov_len;
            size_t take = end - ko;
            if (take > job->chunk - bytes)
                take = job->chunk - bytes;
            uint8_t *l = (uint8_t *)req->liov[k].iov_base + ko;
            uint8_t *r = req->rmd ? req->rmd[k]->at +
                                        ((uintptr_t)req->riov[k].iov_base - req->rmd[k]->addr) + ko
                                  : (uint8_t *)req->riov[k].iov_base + ko;
            if (take) {
                lv[n] = (struct iovec){l, take};
                rv[n] = (struct iovec){r, take};
                dv[n] = k;
                n++;
            }
            bytes += take;
            ko += take;
            if (ko == req->liov[k].iov_len) {
                k++;
                ko = 0;
            }
        }
        if (!bytes) { /* only empty descriptors were left */
            i = k;
            o = ko;
            continue;
        }
        if (job->staged) {
            if (!run_staged(s, lv, rv, dv, n))
                return;
            i = k;
            o = ko;
            continue;
        }
        ssize_t ret;
        if (req->rmd) {
            for (size_t p = 0; p < n; p++)
                memcpy(wr ? rv[p].iov_base : lv[p].iov_base,
                       wr ? lv[p].iov_base : rv[p].iov_base, lv[p].iov_len);
            ret = (ssize_t)bytes;
        } else if (wr) {
            ret = process_vm_writev(req->peer->pid, lv, n, rv, n, 0);
        } else {
            ret = process_vm_readv(req->peer->pid, lv, n, rv, n, 0);
        }
        if (ret <= 0) {
            job_fail(req->eng, job, ret < 0 ? errno : 0, i, NIXL_ERR_BACKEND, NULL);
            return;
        }
        /* advance by what moved (a partial call resumes where the kernel stopped) */
        shm_iov_advance(req->liov, req->count, &i, &o, (uint64_t)ret);
        while (i < s->i1 && o == req->liov[i].iov_len) {
            i++;
            o = 0;
        }
    }
}

/* One thread's arrays for its slice's calls. */
typedef struct {
    struct iovec l[SHM_IOV_MAX], r[SHM_IOV_MAX];
    size_t d[SHM_IOV_MAX]; /* the request's descriptor of each piece */
} slice_buf_t;

static void slice_done(nixl_be_engine_t *eng, slice_t *s)
{
    pthread_mutex_lock(&eng->cp_lock);
    s->job->left--;
    pthread_cond_broadcast(&eng->cp_done);
    pthread_mutex_unlock(&eng->cp_lock);
}

static void *pool_main(void *arg)
{
    nixl_be_engine_t *eng = arg;
    pthread_setname_np(pthread_self(), "nixl-shm-copy"); /* for ps, top and the tests */
    slice_buf_t *v = malloc(sizeof(*v));
    pthread_mutex_lock(&eng->cp_lock);
    for (;;) {
        while (!eng->cp_head && !eng->cp_stop)
            pthread_cond_wait(&eng->cp_cond, &eng->cp_lock);
        if (eng->cp_stop)
            break;
        slice_t *s = eng->cp_head;
        eng->cp_head = s->next;
        s->taken = true;
        pthread_mutex_unlock(&eng->cp_lock);
        if (v)
            run_slice(s, v->l, v->r, v->d);
        else
            job_fail(eng, s->job, ENOMEM, s->i0, NIXL_ERR_UNKNOWN, NULL);
        slice_done(eng, s);
        pthread_mutex_lock(&eng->cp_lock);
    }
    pthread_mutex_unlock(&eng->cp_lock);
    free(v);
    return NULL;
}

/* Start the pool once (cp_lock held); false when not even one thread could start. */
static bool pool_start(nixl_be_engine_t *eng)
{
    if (eng->cp_started)
        return eng->cp_nthreads > 0;
    eng->cp_started = true;
    unsigned want = eng->cp_threads - 1;
    eng->cp_tid = calloc(want, sizeof(*eng->cp_tid));
    for (unsigned k = 0; eng->cp_tid && k < want; k++) {
        if (pthread_create(&eng->cp_tid[k], NULL, pool_main, eng) != 0)
            break;
        eng->cp_nthreads++;
    }
    if (eng->cp_nthreads < want)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "started %u of %u copy threads; large requests use fewer", eng->cp_nthreads,
                    want);
    return eng->cp_nthreads > 0;
}

bool shm_copy_splits(const nixl_be_req_t *req)
{
    const nixl_be_engine_t *eng = req->eng;
    const shm_peer_t *peer = req->peer;
    if (eng->cp_threads < 2 || peer->is_self)
        return false;
    if (!req->rmd && atomic_load_explicit(&peer->staged, memory_order_acquire))
        return req->total >= SHM_XSPLIT_BYTES;
    return req->total >= SHM_SPLIT_BYTES &&
           (req->rmd || atomic_load_explicit(&peer->cma_ok, memory_order_relaxed));
}

nixl_status_t shm_copy_split(nixl_be_req_t *req, size_t chunk, bool async)
{
    nixl_be_engine_t *eng = req->eng;
    bool staged = !req->rmd && atomic_load_explicit(&req->peer->staged, memory_order_acquire);
    size_t n = eng->cp_threads;
    uint64_t slice_min = staged ? SHM_XSLICE_MIN : SHM_SLICE_MIN;
    if (req->total / slice_min < n)
        n = (size_t)(req->total / slice_min);
    if (staged && n > SHM_XBULK_MAX + 1)
        n = SHM_XBULK_MAX + 1;
    slice_t *sl = calloc(n, sizeof(*sl));
    slice_buf_t *v = malloc(sizeof(*v));
    if (!sl || !v) {
        free(sl);
        free(v);
        return shm_req_fail(req, NIXL_ERR_UNKNOWN, "out of memory splitting a %llu-byte "
                            "transfer", (unsigned long long)req->total);
    }
    if (staged) {
        nixl_status_t st = shm_xchan_open_main(req); /* before the bulk rings take its place */
        if (st != NIXL_SUCCESS) {
            free(sl);
            free(v);
            return st;
        }
    }
    /* a ring pipelines its own jobs and looks for cancel: no byte bound per call there */
    split_t job = {.req = req,
                   .chunk = staged ? SIZE_MAX : chunk,
                   .async = async,
                   .staged = staged,
                   .left = n,
                   .st = NIXL_SUCCESS};
    atomic_init(&job.stop, false);
    /* cut the list into n runs of about total / n bytes */
    size_t i = 0, o = 0;
    for (size_t k = 0; k < n; k++) {
        sl[k].job = &job;
        sl[k].ring = (unsigned)k;
        sl[k].i0 = i;
        sl[k].o0 = o;
        shm_iov_advance(req->liov, req->count, &i, &o,
                        k + 1 == n ? UINT64_MAX : req->total / n);
        sl[k].i1 = i;
        sl[k].o1 = o;
    }
    pthread_mutex_lock(&eng->cp_lock);
    bool pool = pool_start(eng);
    for (size_t k = n; pool && k-- > 1;) {
        sl[k].next = eng->cp_head;
        eng->cp_head = &sl[k];
    }
    if (pool)
        pthread_cond_broadcast(&eng->cp_cond);
    pthread_mutex_unlock(&eng->cp_lock);

    /* our own slice, then every one of ours not started yet (all of them without a pool) */
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && pool) {
            pthread_mutex_lock(&eng->cp_lock);
            bool mine = !sl[k].taken;
            if (mine) {
                sl[k].taken = true;
                for (slice_t **pp = &eng->cp_head; *pp; pp = &(*pp)->next)
                    if (*pp == &sl[k]) {
                        *pp = sl[k].next;
                        break;
                    }
            }
            pthread_mutex_unlock(&eng->cp_lock);
            if (!mine)
                continue;
        }
        run_slice(&sl[k], v->l, v->r, v->d);
        slice_done(eng, &sl[k]);
    }
    pthread_mutex_lock(&eng->cp_lock);
    while (job.left)
        pthread_cond_wait(&eng->cp_done, &eng->cp_lock);
    pthread_mutex_unlock(&eng->cp_lock);
    free(v);

    if (job.err) {
        free(sl);
        return shm_xfer_cma_error(req, job.err, job.err_idx, req->riov);
    }
    if (job.why && job.why[0]) {
        nixl_status_t st = shm_req_fail(req, job.st, "%s", job.why);
        free(sl); /* job.why points into it */
        return st;
    }
    free(sl);
    switch (job.st) {
    case NIXL_SUCCESS:
        return NIXL_SUCCESS;
    case NIXL_ERR_CANCELED:
        return shm_req_fail(req, NIXL_ERR_CANCELED, "transfer canceled");
    case NIXL_ERR_REMOTE_DISCONNECT:
        return shm_req_fail(req, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s' is gone",
                            req->peer->name);
    case NIXL_ERR_NOT_FOUND:
        return shm_req_fail(req, NIXL_ERR_NOT_FOUND, "agent '%s' was disconnected",
                            req->peer->name);
    case NIXL_ERR_UNKNOWN:
        return shm_req_fail(req, NIXL_ERR_UNKNOWN, "out of memory in a copy thread");
    default:
        return shm_req_fail(req, NIXL_ERR_BACKEND, "the kernel moved no bytes at descriptor %zu",
                            job.err_idx);
    }
}

void shm_copy_stop(nixl_be_engine_t *eng)
{
    pthread_mutex_lock(&eng->cp_lock);
    eng->cp_stop = true;
    pthread_cond_broadcast(&eng->cp_cond);
    pthread_mutex_unlock(&eng->cp_lock);
    for (unsigned k = 0; k < eng->cp_nthreads; k++)
        pthread_join(eng->cp_tid[k], NULL);
    free(eng->cp_tid);
    eng->cp_tid = NULL;
    eng->cp_nthreads = 0;
}
