/*
 * ucx_progress.c - the progress thread of the shared workers, and which worker a thread uses
 * (the dedicated workers of num_threads have threads of their own: ucx_pool.c).
 *
 * Every engine has one progress thread, whatever enable_prog_thread says (a deliberate
 * difference from the reference): notifications arrive, and the notification of a transfer
 * leaves, even when nobody polls. It never spins: it sleeps in poll() on the workers' event
 * fds (armed with ucp_worker_arm) and a wake-up eventfd. While work is outstanding (a flush,
 * a notification or an endpoint close in flight) it also looks every UCX_BUSY_POLL_MS, in case
 * a transport has queued work that raises no event; idle, it sleeps until an event comes
 * (pthr_delay_us, when non-zero, bounds that sleep; 0 does not mean "poll": see the reference
 * gotcha of a busy progress thread).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ucx_priv.h"

/* Calling threads are spread over the workers round-robin, on first use, starting at worker 1
 * (worker 0 also receives every notification). The number is per thread, shared by engines. */
unsigned ucx_thread_worker(const nixl_be_engine_t *eng)
{
    static atomic_uint next;
    static _Thread_local unsigned slot;
    if (!slot)
        slot = atomic_fetch_add(&next, 1) + 1;
    return slot % eng->nshared;
}

void ucx_busy_inc(nixl_be_engine_t *eng)
{
    atomic_fetch_add(&eng->busy, 1);
}

void ucx_busy_dec(nixl_be_engine_t *eng)
{
    atomic_fetch_sub(&eng->busy, 1);
}

void ucx_kick(nixl_be_engine_t *eng)
{
    /* Only a thread asleep without a timeout needs the wake-up (one syscall): it set `sleeping`
     * before it looked at `busy`, so either it saw our work or we see its flag. */
    if (eng->wake_fd >= 0 && atomic_exchange(&eng->sleeping, false)) {
        uint64_t one = 1;
        if (write(eng->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "waking the progress thread failed: errno %d",
                        errno);
    }
}

/*
 * A user thread that polls (check_xfer, get_notifs) progresses the worker itself: that is the
 * lowest latency. The progress thread keeps out of the shared workers while a user thread is
 * inside UCX on them (polling or posting) and for UCX_USER_POLL_NS after, when it normally
 * comes back: two threads taking turns on a worker's lock cost more than either alone, and
 * much more when the threads outnumber the cores. A post is the longest stay: over TCP (UCX
 * 1.13 emulates RMA with active messages) ucp_put_nbx copies its bytes into the socket, so 128
 * puts of 64 KiB keep the poster in UCX for about 10 ms. With the progress thread taking its
 * turns meanwhile, nixlbench's WRITE of 128 x 64 KiB made about 1,000 futex calls per
 * iteration on the worker locks (ucp_put_nbx, ucp_worker_progress of both threads).
 */
void ucx_user_enter(nixl_be_engine_t *eng, unsigned worker)
{
    if (worker < eng->nshared)
        atomic_fetch_add(&eng->user[worker].inside, 1);
}

void ucx_user_leave(nixl_be_engine_t *eng, unsigned worker)
{
    if (worker >= eng->nshared)
        return;
    atomic_store_explicit(&eng->user[worker].until_ns, nixl_now_ns() + UCX_USER_POLL_NS,
                          memory_order_relaxed);
    atomic_fetch_sub(&eng->user[worker].inside, 1);
}

void ucx_progress_worker(nixl_be_engine_t *eng, unsigned worker)
{
    ucx_user_enter(eng, worker);
    for (unsigned i = 0; i < 64 && ucp_worker_progress(eng->workers[worker]); i++)
        ;
    ucx_user_leave(eng, worker);
}

/* The shared workers only: each dedicated one has its own thread. */
nixl_status_t ucx_progress(nixl_be_engine_t *eng)
{
    for (unsigned w = 0; w < eng->nshared; w++)
        ucx_progress_worker(eng, w);
    return NIXL_SUCCESS;
}

/* How long (ms, >= 1) the progress thread keeps out of a worker a user thread is on; 0 when
 * none is. */
static int user_wait_ms(const ucx_user_mark_t *mark, uint64_t now)
{
    uint64_t until = atomic_load_explicit(&mark->until_ns, memory_order_relaxed);
    if (until > now)
        return (int)((until - now) / 1000000u) + 1;
    return atomic_load(&mark->inside) ? UCX_BUSY_POLL_MS : 0;
}

bool ucx_progress_and_arm(ucp_worker_h worker, const ucx_user_mark_t *mark)
{
    for (;;) {
        /* Under a steady stream the worker always has work: look up between calls. */
        do {
            if (mark && user_wait_ms(mark, nixl_now_ns()))
                return false;
        } while (ucp_worker_progress(worker));
        ucs_status_t s = ucp_worker_arm(worker);
        if (s != UCS_ERR_BUSY)
            return s == UCS_OK;
    }
}

/*
 * The loop: progress and arm every shared worker no user thread is on, then sleep in poll() on
 * their event fds and the wake-up fd. A worker a user thread is on (or was on in the last
 * UCX_USER_POLL_NS) is left alone and its fd not watched - the user thread progresses it -
 * and the sleep is bounded by the time that user is expected back, so the thread takes the
 * worker over soon after the user stops. With several shared workers, a user polling one no
 * longer keeps the others (and their notifications) waiting.
 */
static void *progress_main(void *arg)
{
    nixl_be_engine_t *eng = arg;
    unsigned n = eng->nshared;
    struct pollfd fds[UCX_WORKERS_MAX + 1];
    bool warned = false;
    while (!atomic_load(&eng->stop)) {
        uint64_t now = nixl_now_ns();
        unsigned nfds = 0;
        int user_ms = -1; /* the soonest a worker left to a user comes back to us */
        bool armed = true;
        for (unsigned w = 0; w < n; w++) {
            int ms = user_wait_ms(&eng->user[w], now);
            if (ms == 0 && !ucx_progress_and_arm(eng->workers[w], &eng->user[w])) {
                ms = user_wait_ms(&eng->user[w], nixl_now_ns());
                if (ms == 0)
                    armed = false; /* it cannot be armed: look again soon */
            }
            if (ms > 0) {
                user_ms = user_ms < 0 || ms < user_ms ? ms : user_ms;
                continue;
            }
            fds[nfds++] = (struct pollfd){.fd = eng->efds[w], .events = POLLIN};
        }
        if (!armed && !warned) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                        "a worker cannot be armed for events; the "
                        "progress thread of '%s' looks every %d ms",
                        eng->name, UCX_BUSY_POLL_MS);
            warned = true;
        }
        fds[nfds] = (struct pollfd){.fd = eng->wake_fd, .events = POLLIN};
        /* With a worker left to a user thread the sleep is short anyway: posters need not
         * pay a wake-up write for it (ucx_kick) - the user thread is progressing. */
        if (user_ms < 0)
            atomic_store(&eng->sleeping, true);
        int timeout = (atomic_load(&eng->busy) || !armed) ? UCX_BUSY_POLL_MS
                                                          : eng->idle_timeout_ms;
        if (user_ms > 0 && (timeout < 0 || user_ms < timeout))
            timeout = user_ms;
        int ready = poll(fds, nfds + 1, timeout);
        atomic_store(&eng->sleeping, false);
        if (ready > 0 && (fds[nfds].revents & POLLIN)) {
            uint64_t v;
            if (read(eng->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                break;
        }
    }
    return NULL;
}

nixl_status_t ucx_progress_start(nixl_be_engine_t *eng, const nixl_be_init_t *init)
{
    uint64_t ms = (init->pthr_delay_us + 999) / 1000;
    eng->idle_timeout_ms = init->pthr_delay_us == 0 ? -1 : ms > INT_MAX ? INT_MAX : (int)ms;
    eng->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (eng->wake_fd < 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                           "eventfd for the progress thread failed: "
                           "errno %d",
                           errno);
    eng->efds = calloc(eng->nshared, sizeof(int));
    if (!eng->efds)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    for (unsigned w = 0; w < eng->nshared; w++) {
        ucs_status_t s = ucp_worker_get_efd(eng->workers[w], &eng->efds[w]);
        if (s != UCS_OK)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "the event fd of worker %u: %s", w,
                               ucs_status_string(s));
    }
    int e = pthread_create(&eng->thread, NULL, progress_main, eng);
    if (e)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                           "starting the progress thread failed: "
                           "errno %d",
                           e);
    eng->thread_started = true;
    return NIXL_SUCCESS;
}

void ucx_progress_stop(nixl_be_engine_t *eng)
{
    if (eng->thread_started) {
        atomic_store(&eng->stop, true);
        atomic_store(&eng->sleeping, true);
        ucx_kick(eng);
        pthread_join(eng->thread, NULL);
        eng->thread_started = false;
    }
    if (eng->wake_fd >= 0)
        close(eng->wake_fd);
    eng->wake_fd = -1;
    free(eng->efds);
    eng->efds = NULL;
}

void ucx_drain(nixl_be_engine_t *eng, unsigned ms)
{
    uint64_t deadline = nixl_now_ms() + ms;
    while (atomic_load(&eng->busy) && nixl_now_ms() < deadline) {
        unsigned done = 0;
        for (unsigned w = 0; w < eng->nworkers; w++)
            done += ucp_worker_progress(eng->workers[w]);
        if (!done)
            nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    }
}

void ucx_quiesce(nixl_be_engine_t *eng, unsigned quiet_ms, unsigned max_ms)
{
    uint64_t start = nixl_now_ms(), last = start;
    for (uint64_t now = start; now - last < quiet_ms && now - start < max_ms; now = nixl_now_ms()) {
        unsigned done = 0;
        for (unsigned w = 0; w < eng->nworkers; w++)
            done += ucp_worker_progress(eng->workers[w]);
        if (done)
            last = now;
        else
            nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
    }
}
