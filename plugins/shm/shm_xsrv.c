/*
 * shm_xsrv.c - the target side of the staging rings (shm_xchan.c explains the rings and the
 * initiator): one server thread per ring checks each job, copies between the ring and our
 * registered regions, and answers.
 *
 * Parking. A job that wakes a sleeping server costs the initiator's send() a wake-up and the
 * job a scheduling delay, about 5-10 us each on a small VM: most of a small transfer. A target
 * whose user thread keeps calling progress() (get_notifs, as inference engines and nixlbench
 * do) is awake anyway, so while it does, the server thread parks on the ring's control page (a
 * futex, not the socket, so a job's send wakes nobody) and progress() serves the jobs itself,
 * seeing them by a counter in that page instead of a system call. The initiator sees the
 * parked state there: it waits for the answer without sleeping for SHM_XSPIN_NS, then wakes
 * the server itself, so a target that polls rarely costs a job that much at most. The thread
 * goes back to the socket when progress() has not been called for SHM_XPARK_MS.
 *
 * Mailbox. While the server is parked, transfers skip the socket: the initiator writes each
 * job into the control page and spins on its answer there, so neither side makes a system call
 * for it. A server that is not parked (or a poller that does not come) gets a bell frame (SHMB)
 * on the socket after the initiator's wait; an initiator that went to sleep on the socket gets
 * a wake frame (SHMW) after the answer. The mailbox holds one job at a time and a transfer
 * posts its next job only after the answer, so jobs are never reordered. Our initiators use it
 * only with streaming (serve_mbox); the target serves plain mailbox jobs too.
 *
 * Who serves: the thread or a poller, whichever holds the ring's lock; each reads the socket
 * without blocking, so a job is read once. The control page is the initiator's memory as much
 * as ours: its values only decide when to look, never what is copied (jobs are checked as
 * before), and a peer that scribbles on it can only make us look more often.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log_limit.h"
#include "shm_priv.h"

/* Shared (not private) futexes: the word is in a mapping two processes share. */
static void futex_wait_ms(_Atomic uint32_t *word, uint32_t val, int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, &ts, NULL, 0);
}

void shm_xctl_wake(shm_xctl_t *ctl)
{
    uint32_t parked = SHM_XSRV_PARKED;
    if (atomic_compare_exchange_strong(&ctl->state, &parked, SHM_XSRV_WOKEN))
        (void)syscall(SYS_futex, (uint32_t *)&ctl->state, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static bool send_all(int fd, const uint8_t *p, size_t len)
{
    ssize_t n;
    do {
        n = send(fd, p, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)len;
}

static void xsrv_reply(int fd, uint32_t magic, uint32_t err, uint64_t a, uint64_t b, uint64_t c,
                       bool *ok)
{
    uint8_t f[SHM_XREPLY];
    shm_put_frame32(f, magic, err, a, b, c);
    *ok = send_all(fd, f, sizeof(f));
}

static void bad_job(nixl_be_engine_t *eng, const char *why)
{
    static nixl_log_limit_t lim = NIXL_LOG_LIMIT_INIT;
    uint64_t rep;
    if (nixl_log_limit_pass(&lim, why, nixl_now_ns(), &rep))
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "malformed staging job (%s); closing that staging ring (%llu before)", why,
                    (unsigned long long)rep);
}

/* Check a job frame against the ring. False: malformed (end the ring). `mbox`: it came through
 * the mailbox, where it may stream. */
static bool xjob_parse(shm_xsrv_t *sv, const uint8_t *m, size_t n, bool mbox, shm_xjob_t *j)
{
    nixl_be_engine_t *eng = sv->eng;
    if (n < SHM_XJOB_HDR || shm_get_u32(m) != SHM_XJOB_MAGIC) {
        bad_job(eng, "bad header");
        return false;
    }
    j->op = shm_get_u32(m + 4);
    j->niov = shm_get_u32(m + 24);
    j->flags = shm_get_u32(m + 28);
    j->off = shm_get_u64(m + 8);
    j->len = shm_get_u64(m + 16);
    j->p = m + SHM_XJOB_HDR;
    if ((j->op != SHM_XOP_WRITE && j->op != SHM_XOP_READ) || j->niov == 0 ||
        j->niov > SHM_IOV_MAX || n != SHM_XJOB_HDR + 16u * (size_t)j->niov ||
        j->off > sv->data_end || j->len > sv->data_end - j->off) {
        bad_job(eng, "bad operation, piece count or ring range");
        return false;
    }
    if (j->flags != 0 && (!mbox || j->flags != SHM_XJOB_STREAM || j->off != 0)) {
        bad_job(eng, "bad flags");
        return false;
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < j->niov; i++) {
        uint64_t l = shm_get_u64(j->p + 16 * i + 8);
        if (l > j->len - sum) {
            bad_job(eng, "pieces longer than the job");
            return false;
        }
        sum += l;
    }
    if (sum != j->len) {
        bad_job(eng, "pieces shorter than the job");
        return false;
    }
    return true;
}

/*
 * Copy bytes [from, to) of a checked job between the ring and our regions, every piece checked
 * against the registered regions in the same hold of regs_lock (a region may go between two
 * calls for one streaming job). `publish`: a streaming READ, whose progress goes to mb_avail
 * every SHM_XSTREAM_CHUNK bytes. *err (an errno) and *bad (the piece) when a piece is not ours.
 */
static void xjob_copy(shm_xsrv_t *sv, const shm_xjob_t *j, uint64_t from, uint64_t to,
                      shm_xctl_t *publish, uint32_t *err, uint64_t *bad)
{
    nixl_be_engine_t *eng = sv->eng;
    *err = 0;
    *bad = 0;
    pthread_rwlock_rdlock(&eng->regs_lock);
    for (uint32_t i = 0; i < j->niov && !*err; i++)
        if (!shm_region_covers(eng, (uintptr_t)shm_get_u64(j->p + 16 * i),
                               (size_t)shm_get_u64(j->p + 16 * i + 8))) {
            *err = EFAULT;
            *bad = i;
        }
    uint64_t pos = 0, next_pub = from + SHM_XSTREAM_CHUNK;
    for (uint32_t i = 0; i < j->niov && !*err && pos < to; i++) {
        uint8_t *a = (uint8_t *)(uintptr_t)shm_get_u64(j->p + 16 * i);
        uint64_t l = shm_get_u64(j->p + 16 * i + 8), end = pos + l;
        if (end > from) {
            uint64_t b = from > pos ? from - pos : 0; /* into this piece */
            while (pos + b < end && pos + b < to) {
                uint64_t at = pos + b, stop = end < to ? end : to;
                if (publish && stop > next_pub)
                    stop = next_pub;
                uint8_t *s = sv->base + j->off + at;
                if (j->op == SHM_XOP_WRITE)
                    memcpy(a + b, s, (size_t)(stop - at));
                else
                    memcpy(s, a + b, (size_t)(stop - at));
                b += stop - at;
                if (publish && stop == next_pub) {
                    atomic_store_explicit(&publish->mb_avail, stop, memory_order_release);
                    next_pub += SHM_XSTREAM_CHUNK;
                }
            }
        }
        pos = end;
    }
    pthread_rwlock_unlock(&eng->regs_lock);
}

/* One job from the socket: run it, answer on the socket. False: end the ring. */
static bool xsrv_job(shm_xsrv_t *sv, const uint8_t *m, size_t n)
{
    shm_xjob_t j;
    if (!xjob_parse(sv, m, n, false, &j))
        return false;
    uint32_t err;
    uint64_t bad;
    xjob_copy(sv, &j, 0, j.len, NULL, &err, &bad);
    bool ok;
    xsrv_reply(sv->fd, SHM_XDONE_MAGIC, err, j.off, j.len, bad, &ok);
    return ok;
}

/*
 * The mailbox's job, if a new one waits or a streaming one has more bytes (sv->lock held):
 * copied out of the shared page before it is checked, answered in the page, and on the socket
 * too when the initiator sleeps there. False: end the ring.
 *
 * Streaming. A mailbox job may stream (SHM_XJOB_STREAM): the initiator posts it before its
 * data and then says in mb_avail how much of it is in place, so the two copies of a staged
 * WRITE (into the ring, out of it) overlap instead of following each other; for a READ we
 * publish our progress the same way and the initiator copies out behind us. We never wait for
 * an initiator: a look follows its copy while bytes keep coming (SHM_XFOLLOW_*), then returns
 * with the job open, and the next look (progress(), or the thread when the initiator rings
 * after publishing everything) goes on. mb_avail is only a count of bytes the initiator claims
 * to have written into its own ring: it is clamped to the job, and the pieces are checked as
 * for any job.
 */
static bool serve_mbox(shm_xsrv_t *sv, bool poller)
{
    shm_xctl_t *c = sv->ctl;
    shm_xjob_t *j = &sv->mbj;
    uint32_t seq = atomic_load_explicit(&sv->mb_served, memory_order_relaxed);
    if (atomic_load(&sv->mb_want) == UINT64_MAX) { /* no job open: a new one? */
        uint32_t next = atomic_load(&c->mb_seq);
        if (next == seq)
            return true;
        seq = next;
        atomic_store_explicit(&sv->mb_served, seq, memory_order_relaxed);
        uint32_t len = *(volatile uint32_t *)&c->mb_len;
        if (len < SHM_XJOB_HDR || len > SHM_XMBOX_MAX) {
            bad_job(sv->eng, "mailbox length");
            return false;
        }
        memcpy(sv->mb, c->mb_job, len);
        if (!xjob_parse(sv, sv->mb, len, true, j))
            return false;
        sv->mb_off = 0;
    }
    uint32_t err = 0;
    uint64_t bad = 0;
    if (j->flags == SHM_XJOB_STREAM && j->op == SHM_XOP_WRITE) {
        uint64_t t0 = nixl_now_ns(), last = t0;
        for (;;) {
            uint64_t avail = atomic_load_explicit(&c->mb_avail, memory_order_acquire);
            uint64_t upto = avail < j->len ? avail : j->len;
            if (upto > sv->mb_off) {
                xjob_copy(sv, j, sv->mb_off, upto, NULL, &err, &bad);
                sv->mb_off = upto;
                last = nixl_now_ns();
            }
            if (err || sv->mb_off == j->len)
                break;
            uint64_t now = nixl_now_ns();
            if (now - last > SHM_XFOLLOW_GAP_NS || now - t0 > SHM_XFOLLOW_MAX_NS) {
                atomic_store(&sv->mb_want, avail); /* look again when it moves */
                return true;
            }
            shm_cpu_relax();
        }
    } else {
        xjob_copy(sv, j, 0, j->len, j->flags == SHM_XJOB_STREAM ? c : NULL, &err, &bad);
    }
    atomic_store(&sv->mb_want, UINT64_MAX);
    c->mb_err = err;
    c->mb_bad = bad;
    atomic_store(&c->mb_done, seq); /* then mb_sleep; the initiator the other way round */
    atomic_fetch_add_explicit(poller ? &sv->jobs_polled : &sv->jobs, 1, memory_order_relaxed);
    if (j->flags == SHM_XJOB_STREAM)
        atomic_fetch_add_explicit(&sv->jobs_streamed, 1, memory_order_relaxed);
    bool ok = true;
    if (atomic_load(&c->mb_sleep) == seq)
        xsrv_reply(sv->fd, SHM_XWAKE_MAGIC, 0, seq, 0, 0, &ok);
    return ok;
}

/* Serve at most `budget` jobs waiting on the socket (sv->lock held). False: the ring is over. */
static bool serve_waiting(shm_xsrv_t *sv, unsigned budget, bool poller)
{
    if (sv->ctl && !serve_mbox(sv, poller))
        return false;
    uint64_t posted = sv->ctl ? atomic_load(&sv->ctl->posted) : 0;
    if (poller && posted == atomic_load(&sv->ctl->seen))
        return true; /* nothing new on the socket: spare the system call */
    while (budget--) {
        ssize_t n = recv(sv->fd, sv->m, SHM_XJOB_MAX, MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (sv->ctl)
                atomic_store(&sv->ctl->seen, posted); /* everything sent before is served */
            return true;
        }
        if (n <= 0)
            return false; /* the initiator closed the ring, or we are stopping */
        if ((size_t)n > SHM_XJOB_MAX) {
            bad_job(sv->eng, "frame too long");
            return false;
        }
        if (sv->ctl && n == SHM_XREPLY && shm_get_u32(sv->m) == SHM_XBELL_MAGIC) {
            if (!serve_mbox(sv, poller)) /* the initiator rang: its mailbox job waits */
                return false;
            continue;
        }
        if (!xsrv_job(sv, sv->m, (size_t)n))
            return false;
        atomic_fetch_add_explicit(poller ? &sv->jobs_polled : &sv->jobs, 1, memory_order_relaxed);
    }
    return true;
}

static bool has_news(shm_xsrv_t *sv)
{
    uint64_t want = atomic_load(&sv->mb_want);
    return atomic_load(&sv->ctl->posted) != atomic_load(&sv->ctl->seen) ||
           atomic_load(&sv->ctl->mb_seq) !=
               atomic_load_explicit(&sv->mb_served, memory_order_relaxed) ||
           (want != UINT64_MAX && atomic_load(&sv->ctl->mb_avail) != want);
}

static void *xsrv_main(void *arg)
{
    shm_xsrv_t *sv = arg;
    nixl_be_engine_t *eng = sv->eng;
    bool ok;
    xsrv_reply(sv->fd, SHM_XREADY_MAGIC, 0, sv->size,
               sv->ctl ? SHM_XREADY_CTL | SHM_XREADY_MBOX | SHM_XREADY_STREAM : 0, 0, &ok);
    uint64_t seen = atomic_load_explicit(&eng->progress_calls, memory_order_relaxed);
    while (ok && !atomic_load(&sv->stop) && !atomic_load(&sv->ended)) {
        uint64_t calls = atomic_load_explicit(&eng->progress_calls, memory_order_relaxed);
        if (sv->ctl && calls != seen) {
            /* The user polls: leave the jobs to progress(). Parked first, then the counter,
             * and the initiator the other way round: one of us sees the other. */
            atomic_store(&sv->ctl->state, SHM_XSRV_PARKED);
            if (!has_news(sv))
                futex_wait_ms(&sv->ctl->state, SHM_XSRV_PARKED, SHM_XPARK_MS);
        } else {
            struct pollfd p = {sv->fd, POLLIN, 0};
            if (sv->ctl) {
                /* On the socket first, then the mailbox; the initiator writes the mailbox,
                 * then looks at our state (and rings if we are here): one of us sees. */
                atomic_store(&sv->ctl->state, SHM_XSRV_SOCKET);
                if (has_news(sv))
                    p.fd = -1; /* do not sleep: serve below */
            }
            if (p.fd >= 0 && poll(&p, 1, -1) < 0 && errno != EINTR)
                break;
        }
        seen = calls;
        pthread_mutex_lock(&sv->lock);
        ok = !atomic_load(&sv->ended) && serve_waiting(sv, UINT_MAX, false);
        pthread_mutex_unlock(&sv->lock);
    }
    if (sv->ctl)
        atomic_store(&sv->ctl->state, SHM_XSRV_SOCKET); /* nobody parked: no more spinning */
    atomic_store(&sv->ended, true);
    atomic_store(&sv->done, true);
    return NULL;
}

void shm_xsrv_poll(nixl_be_engine_t *eng)
{
    if (!atomic_load_explicit(&eng->nxctl, memory_order_relaxed) ||
        pthread_mutex_trylock(&eng->xsrv_lock) != 0)
        return;
    for (shm_xsrv_t *sv = eng->xsrvs; sv; sv = sv->next) {
        if (!sv->ctl || atomic_load(&sv->ended) || !has_news(sv) ||
            pthread_mutex_trylock(&sv->lock) != 0)
            continue;
        if (!atomic_load(&sv->ended) && !serve_waiting(sv, SHM_XSLOTS, true)) {
            atomic_store(&sv->ended, true);
            /* The thread leaves: parked, the wake; on its socket, the shutdown (which also
             * tells the initiator at once that the ring is over). */
            shutdown(sv->fd, SHUT_RDWR);
            shm_xctl_wake(sv->ctl);
        }
        pthread_mutex_unlock(&sv->lock);
    }
    pthread_mutex_unlock(&eng->xsrv_lock);
}

static void xsrv_free(nixl_be_engine_t *eng, shm_xsrv_t *sv)
{
    pthread_join(sv->thread, NULL);
    uint64_t polled = atomic_load(&sv->jobs_polled);
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                "'%s': a staging ring of %zu bytes ended: %llu jobs served, %llu of them by "
                "progress(), %llu streamed%s",
                eng->name, sv->size, (unsigned long long)(atomic_load(&sv->jobs) + polled),
                (unsigned long long)polled, (unsigned long long)atomic_load(&sv->jobs_streamed),
                sv->ctl ? "" : " (no control page)");
    if (sv->ctl)
        atomic_fetch_sub(&eng->nxctl, 1);
    munmap(sv->base, sv->size);
    close(sv->fd);
    pthread_mutex_destroy(&sv->lock);
    free(sv->m);
    free(sv);
}

/* Join the servers whose ring ended (xsrv_lock held). */
static void xsrv_reap(nixl_be_engine_t *eng)
{
    for (shm_xsrv_t **pp = &eng->xsrvs; *pp;) {
        shm_xsrv_t *sv = *pp;
        if (!atomic_load(&sv->done)) {
            pp = &sv->next;
            continue;
        }
        *pp = sv->next;
        eng->nxsrv--;
        xsrv_free(eng, sv);
    }
}

/* Say no on a ring's socket (the initiator reports why), then close it. */
static bool xsrv_decline(int sock, uint64_t size, int err)
{
    bool ok;
    if (sock >= 0) {
        xsrv_reply(sock, SHM_XREADY_MAGIC, (uint32_t)err, size, 0, 0, &ok);
        close(sock);
    }
    return false;
}

/* Refuse a ring: say why on its socket (the initiator reports it), then close both. */
static bool xsrv_refuse(nixl_be_engine_t *eng, int memfd, int sock, uint64_t size, int err,
                        const char *why)
{
    static nixl_log_limit_t lim = NIXL_LOG_LIMIT_INIT;
    uint64_t rep;
    if (nixl_log_limit_pass(&lim, why, nixl_now_ns(), &rep))
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "refused a %llu-byte staging ring: %s (%llu before)",
                    (unsigned long long)size, why, (unsigned long long)rep);
    if (memfd >= 0)
        close(memfd);
    return xsrv_decline(sock, size, err);
}

bool shm_xsrv_start(nixl_be_engine_t *eng, int memfd, int sock, uint64_t size)
{
    int type = 0;
    socklen_t tl = sizeof(type);
    if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_SEQPACKET) {
        close(sock); /* not a socket we can answer on */
        return xsrv_refuse(eng, memfd, -1, size, EINVAL, "its socket is not a seqpacket socket");
    }
    struct stat st;
    int seals = fcntl(memfd, F_GET_SEALS);
    if (size < SHM_XRING_MIN || size > SHM_XRING_MAX || (size & (size - 1)))
        return xsrv_refuse(eng, memfd, sock, size, EINVAL, "size out of range");
    if (fstat(memfd, &st) != 0 || (uint64_t)st.st_size != size || seals < 0 ||
        !(seals & F_SEAL_SHRINK))
        return xsrv_refuse(eng, memfd, sock, size, EINVAL,
                           "not a memfd of that size sealed against shrinking");
    pthread_mutex_lock(&eng->xsrv_lock);
    xsrv_reap(eng);
    if (eng->nxsrv >= eng->xrings_max) {
        pthread_mutex_unlock(&eng->xsrv_lock);
        return xsrv_refuse(eng, memfd, sock, size, EMFILE, "stage_rings rings are served already");
    }
    shm_xsrv_t *sv = calloc(1, sizeof(*sv));
    uint8_t *m = malloc(SHM_XJOB_MAX + SHM_XMBOX_MAX); /* a socket job, then the mailbox's */
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (!sv || !m || base == MAP_FAILED) {
        int e = !sv || !m ? ENOMEM : errno;
        pthread_mutex_unlock(&eng->xsrv_lock);
        if (base != MAP_FAILED)
            munmap(base, size);
        free(sv);
        free(m);
        return xsrv_refuse(eng, memfd, sock, size, e, strerror(e));
    }
    close(memfd);
    sv->eng = eng;
    sv->fd = sock;
    sv->base = base;
    sv->size = size;
    sv->m = m;
    sv->mb = m + SHM_XJOB_MAX;
    atomic_init(&sv->mb_want, UINT64_MAX);
    /* The initiator asks for the control page by its magic (an older one of ours leaves the
     * fresh memfd's zeros there and uses the whole ring for slots). */
    shm_xctl_t *ctl = (shm_xctl_t *)((uint8_t *)base + size - SHM_XCTL_BYTES);
    sv->data_end = size;
    if (ctl->magic == SHM_XCTL_MAGIC) {
        sv->ctl = ctl;
        sv->data_end = size - SHM_XCTL_BYTES;
        atomic_store(&ctl->state, SHM_XSRV_SOCKET);
    } else if (eng->nxsrv >= eng->xrings_max / 2) {
        /* A bulk ring (an extra ring of a split transfer, shm_copy.c): only while fewer than
         * half of stage_rings are served, so that bulk rings never keep an initiator's main
         * ring out; the initiator then goes on through its main ring. */
        pthread_mutex_unlock(&eng->xsrv_lock);
        munmap(base, size);
        free(m);
        free(sv);
        return xsrv_decline(sock, size, EMFILE); /* by design: not worth a warning here */
    }
    pthread_mutex_init(&sv->lock, NULL);
    atomic_init(&sv->ended, false);
    atomic_init(&sv->stop, false);
    atomic_init(&sv->done, false);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)256 << 10);
    int rc = pthread_create(&sv->thread, &attr, xsrv_main, sv);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_unlock(&eng->xsrv_lock);
        pthread_mutex_destroy(&sv->lock);
        munmap(base, size);
        free(m);
        free(sv);
        return xsrv_refuse(eng, -1, sock, size, rc, strerror(rc));
    }
    sv->next = eng->xsrvs;
    eng->xsrvs = sv;
    eng->nxsrv++;
    if (sv->ctl)
        atomic_fetch_add(&eng->nxctl, 1);
    pthread_mutex_unlock(&eng->xsrv_lock);
    return true;
}

void shm_xsrv_stop_all(nixl_be_engine_t *eng)
{
    pthread_mutex_lock(&eng->xsrv_lock);
    shm_xsrv_t *all = eng->xsrvs;
    eng->xsrvs = NULL;
    eng->nxsrv = 0;
    for (shm_xsrv_t *sv = all; sv; sv = sv->next) {
        atomic_store(&sv->stop, true);
        shutdown(sv->fd, SHUT_RDWR); /* on the socket: its poll returns */
        if (sv->ctl)
            shm_xctl_wake(sv->ctl); /* parked: it wakes */
    }
    pthread_mutex_unlock(&eng->xsrv_lock);
    while (all) {
        shm_xsrv_t *n = all->next;
        xsrv_free(eng, all);
        all = n;
    }
}
