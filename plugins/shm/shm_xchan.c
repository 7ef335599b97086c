/*
 * shm_xchan.c - staging rings: data between processes that may not use cross-memory attach
 * (process_vm_* refused by seccomp, Yama or ptrace rules, or a peer in another pid namespace).
 *
 * The initiator creates the ring: a sealed memfd (its size can no longer change, so the
 * target's mapping can never fault) of stage_ring_size bytes cut into SHM_XSLOTS slots, and a
 * SOCK_SEQPACKET socket pair. It opens a fresh connection to the target's socket and sends an
 * SHMX frame with the memfd and one end of the pair (SCM_RIGHTS); the target's event thread
 * checks them (a sealed memfd of the announced size, a seqpacket socket, fewer than
 * stage_rings rings served) and starts a server thread for the ring, which answers SHMY
 * (shm_xsrv.c: the target side, and how jobs are served by the target's progress() callers
 * while its thread is parked).
 *
 * A transfer is a pipeline of jobs, one per slot, each a run of the descriptor list of at most
 * one slot's bytes and SHM_IOV_MAX pieces:
 *   WRITE: the initiator copies a run into slot k and sends its job (the target addresses);
 *          the server copies slot k into its memory and answers; meanwhile the initiator
 *          fills slots k + 1, k + 2, ...
 *   READ:  the initiator sends jobs for up to SHM_XSLOTS slots; the server fills slot k from its
 *          memory and answers; the initiator copies slot k out while slot k + 1 is filled.
 * Both sides' threads copy at once, so a large transfer runs at about one memcpy's speed. The
 * request succeeds only when every job was answered with success: every byte landed.
 * While the target's server is parked (its application polls), a transfer goes instead as
 * streaming jobs through the control page's mailbox (xstream): each up to the ring's slots'
 * worth of bytes and SHM_XMBOX_PIECES pieces, posted before its data, with the copies of both
 * sides running together inside the job (shm_xsrv.c, "Streaming"); no system call when the
 * target answers in time.
 *
 * Several rings: a large request split across the copy threads (shm_copy.c) sends its first
 * slice through the main ring and each other slice through a bulk ring of its own, opened at
 * first use without a control page: a bulk ring's server thread serves every job (it never
 * parks), so the target copies with one thread per slice while the initiator's threads fill
 * the rings. A peer that refuses a bulk ring (its stage_rings) gets them through the main ring.
 *
 * Trust: the server copies only inside regions this engine registered (shm_region.c), under
 * the regions' read lock, so a peer with stale metadata gets an error, not a crash, and a
 * deregistration waits for the copy in progress. A malformed job ends the ring. Bounds: one main
 * ring and at most SHM_XBULK_MAX bulk rings per (initiator engine, peer), each with its own lock
 * held for a whole transfer or slice, stage_rings rings served per engine, SHM_XRING_MAX bytes
 * per ring, one job frame buffer per ring.
 *
 * Failures: the peer dying closes its end (EOF: REMOTE_DISCONNECT); the initiator waits in
 * SHM_XWAIT_MS steps, looking for a cancel (async posts) and the peer's death between them, and
 * gives up after SHM_XSTALL_MS without an answer. After any failure the ring is dropped (its
 * server sees EOF and ends); the next transfer opens a new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log_limit.h"
#include "shm_priv.h"

#define xfail shm_req_fail

/* ---- the initiator ---- */

static void xchan_close(shm_xchan_t *x)
{
    if (x->fd >= 0)
        close(x->fd);
    if (x->base)
        munmap(x->base, x->size);
    free(x->msg);
    x->fd = -1;
    x->base = NULL;
    x->msg = NULL;
    x->size = x->slot = x->data_end = 0;
    x->ctl = NULL;
    x->nospin = x->spin_fails = 0;
    x->stream = false;
    x->mb_seq = 0;
}

void shm_xchan_close(shm_peer_t *peer)
{
    xchan_close(&peer->x);
    for (unsigned k = 0; k < SHM_XBULK_MAX; k++)
        xchan_close(&peer->xb[k]);
}

/*
 * Wait until fd is ready for `events`, in SHM_XWAIT_MS steps; between them a cancel (async), the
 * peer's death or its disconnection ends the wait, and so does `stall_ms` without readiness.
 */
static nixl_status_t xwait(nixl_be_req_t *req, int fd, short events, bool async, int stall_ms,
                           const char *what)
{
    shm_peer_t *peer = req->peer;
    uint64_t t0 = nixl_now_ms();
    for (;;) {
        if (async && atomic_load_explicit(&req->cancel, memory_order_relaxed))
            return xfail(req, NIXL_ERR_CANCELED, "transfer canceled");
        if (atomic_load(&peer->forgotten))
            return xfail(req, NIXL_ERR_NOT_FOUND, "agent '%s' was disconnected", peer->name);
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, SHM_XWAIT_MS);
        if (n > 0)
            return NIXL_SUCCESS; /* readable includes EOF and errors: the read says which */
        if (n < 0 && errno != EINTR)
            return xfail(req, NIXL_ERR_BACKEND, "poll on the staging ring to '%s': %s", peer->name,
                         strerror(errno));
        if (atomic_load(&peer->dead))
            return xfail(req, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s' is gone", peer->name);
        if (nixl_now_ms() - t0 >= (uint64_t)stall_ms)
            return xfail(req, NIXL_ERR_BACKEND,
                         "agent '%s' did not %s for %d ms through its staging ring (stopped or "
                         "overloaded?)",
                         peer->name, what, stall_ms);
    }
}

static nixl_status_t xgone(nixl_be_req_t *req, ssize_t n, const char *when)
{
    shm_peer_t *peer = req->peer;
    if (n == 0 || errno == ECONNRESET || errno == EPIPE) {
        atomic_store(&peer->dead, true);
        return xfail(req, NIXL_ERR_REMOTE_DISCONNECT,
                     "agent '%s' closed its staging ring %s: the process or its engine is gone",
                     peer->name, when);
    }
    return xfail(req, NIXL_ERR_BACKEND, "staging ring to '%s', %s: %s", peer->name, when,
                 strerror(errno));
}

/* Open ring x to the peer; `ctl`: ask for the control page (parking, mailbox, streaming). */
static nixl_status_t xopen(nixl_be_req_t *req, shm_xchan_t *x, bool ctl)
{
    nixl_be_engine_t *eng = req->eng;
    shm_peer_t *peer = req->peer;
    size_t size = eng->xring_size;
    int mfd = -1, sv[2] = {-1, -1}, dfd = -1;
    nixl_status_t st;

    x->msg = malloc(SHM_XJOB_MAX);
    if (!x->msg) {
        st = xfail(req, NIXL_ERR_UNKNOWN, "out of memory opening a staging ring");
        goto fail;
    }
    mfd = memfd_create("nixl-shm-stage", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0 || ftruncate(mfd, (off_t)size) != 0 ||
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        st = xfail(req, NIXL_ERR_BACKEND, "creating a %zu-byte staging ring (memfd): %s", size,
                   strerror(errno));
        goto fail;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (base == MAP_FAILED) {
        st = xfail(req, NIXL_ERR_BACKEND, "mapping a %zu-byte staging ring: %s", size,
                   strerror(errno));
        goto fail;
    }
    x->base = base;
    x->size = size;
    /* Ask for the control page (shm_xsrv.c, "Parking"); the answer says whether it is used.
     * A bulk ring leaves the memfd's zeros there: its server thread serves every job. */
    if (ctl)
        ((shm_xctl_t *)(void *)((uint8_t *)base + size - SHM_XCTL_BYTES))->magic = SHM_XCTL_MAGIC;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        st = xfail(req, NIXL_ERR_BACKEND, "socketpair for a staging ring: %s", strerror(errno));
        goto fail;
    }
    st = shm_peer_dial(eng, peer, &dfd);
    if (st != NIXL_SUCCESS) {
        st = xfail(req, st, "cannot connect to agent '%s' to open a staging ring (%s)", peer->name,
                   nixl_status_str(st));
        goto fail;
    }
    uint8_t f[SHM_FRAME_HDR];
    shm_put_u32(f, SHM_FRAME_XRING);
    shm_put_u32(f + 4, 0);
    shm_put_u64(f + 8, size);
    int fds[2] = {mfd, sv[1]};
    ssize_t n = shm_send_fds(dfd, f, sizeof(f), fds, 2);
    if (n != (ssize_t)sizeof(f)) {
        st = xgone(req, n < 0 ? -1 : 1, "while it was offered");
        goto fail;
    }
    close(sv[1]);
    sv[1] = -1;
    close(mfd);
    mfd = -1;
    x->fd = sv[0];
    sv[0] = -1;

    /* Its answer: ready, or why not (it closes its end after saying so). */
    uint8_t a[SHM_XREPLY];
    st = xwait(req, x->fd, POLLIN, false, SHM_XOPEN_MS, "accept a staging ring");
    if (st != NIXL_SUCCESS)
        goto fail;
    n = recv(x->fd, a, sizeof(a), 0);
    if (n <= 0) {
        st = xgone(req, n, "while it was offered");
        goto fail;
    }
    if (n != (ssize_t)sizeof(a) || shm_get_u32(a) != SHM_XREADY_MAGIC ||
        shm_get_u64(a + 8) != size) {
        st = xfail(req, NIXL_ERR_BACKEND,
                   "agent '%s' answered a staging ring with a malformed "
                   "frame",
                   peer->name);
        goto fail;
    }
    uint32_t e = shm_get_u32(a + 4);
    if (!e && (shm_get_u64(a + 16) & SHM_XREADY_CTL)) {
        x->ctl = (shm_xctl_t *)(void *)(x->base + size - SHM_XCTL_BYTES);
        x->data_end = size - SHM_XCTL_BYTES;
        /* The mailbox only with streaming (targets of ours that served a mailbox without it
         * get their jobs on the socket) */
        uint64_t want = SHM_XREADY_MBOX | SHM_XREADY_STREAM;
        x->stream = (shm_get_u64(a + 16) & want) == want;
    } else {
        x->data_end = size; /* an older target: no control page */
    }
    x->slot = size / SHM_XSLOTS;
    if (e) {
        st = xfail(req, NIXL_ERR_BACKEND,
                   "agent '%s' refused a %zu-byte staging ring: %s (see its stage_rings "
                   "parameter and its log)",
                   peer->name, size,
                   e != EMFILE ? strerror((int)e)
                   : ctl       ? "it serves stage_rings rings already"
                               : "it takes extra rings only while it serves fewer than half its "
                                 "stage_rings");
        goto fail;
    }
    /* The target offered this connection a notification ring before it read SHMX: read it
     * (and anything else) away, or closing with unread bytes would reset the connection and
     * the target would log an error for a normal close. */
    uint8_t junk[256];
    while (recv(dfd, junk, sizeof(junk), MSG_DONTWAIT) > 0) {
    }
    close(dfd);
    return NIXL_SUCCESS;

fail:
    if (dfd >= 0)
        close(dfd);
    if (mfd >= 0)
        close(mfd);
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    xchan_close(x);
    return st;
}

/* A wait for a parked server's answer ended without it: after SHM_XSPIN_FAILS in a row, the
 * target polls too seldom for waiting to pay, so wake it at once for the next jobs. */
static void spin_missed(shm_xchan_t *x)
{
    if (++x->spin_fails >= SHM_XSPIN_FAILS) {
        x->spin_fails = 0;
        x->nospin = SHM_XNOSPIN_JOBS;
    }
}

/*
 * The answer, when the target's server is parked (its user thread polls and serves jobs in
 * progress(), shm_xsrv.c): wait for it without sleeping, so that the target's send wakes
 * nobody, for SHM_XSPIN_NS plus the time to copy `len` bytes; then wake the server. (Waiting
 * in poll() for large jobs instead was measured: slower from 256 KiB to 4 MiB, a wake-up per
 * job.) -1 with EAGAIN: nothing yet, sleep on it as usual.
 */
static ssize_t xspin(shm_xchan_t *x, uint8_t *a, size_t len)
{
    ssize_t n;
    if (atomic_load(&x->ctl->state) != SHM_XSRV_PARKED) {
        errno = EAGAIN;
        return -1;
    }
    if (x->nospin) {
        x->nospin--;
    } else {
        uint64_t t0 = nixl_now_ns(), budget = SHM_XSPIN_NS + len / SHM_XSPIN_BYTES_PER_NS;
        do {
            n = recv(x->fd, a, SHM_XREPLY, MSG_DONTWAIT);
            if (n >= 0 || (errno != EAGAIN && errno != EINTR)) {
                x->spin_fails = 0;
                return n;
            }
        } while (nixl_now_ns() - t0 < budget);
        spin_missed(x);
    }
    shm_xctl_wake(x->ctl);
    errno = EAGAIN;
    return -1;
}

/*
 * The answer of the job in the mailbox (shm_xsrv.c, "Mailbox"), its errno and bad piece in
 * *err and *bad: wait for it on the page without a system call, as xspin does; if it does not come,
 * wake the server (parked) and ring its socket (in case it is there), then sleep on the socket
 * until the target says it answered (a wake frame) or the ring fails.
 */
static nixl_status_t xmbox_wait(nixl_be_req_t *req, shm_xchan_t *x, uint64_t budget, bool async,
                                uint32_t *err, uint64_t *bad)
{
    shm_xctl_t *c = x->ctl;
    uint32_t seq = x->mb_seq;
    uint64_t t0 = nixl_now_ns();
    while (atomic_load(&c->mb_done) != seq && nixl_now_ns() - t0 < budget)
        shm_cpu_relax();
    if (atomic_load(&c->mb_done) == seq) {
        x->spin_fails = 0;
    } else {
        spin_missed(x);
        atomic_store(&c->mb_sleep, seq); /* then mb_done; the target the other way round */
        shm_xctl_wake(c);
        uint8_t bell[SHM_XREPLY];
        shm_put_frame32(bell, SHM_XBELL_MAGIC, 0, seq, 0, 0);
        (void)send(x->fd, bell, sizeof(bell),
                   MSG_NOSIGNAL | MSG_DONTWAIT); /* a failure shows below */
        while (atomic_load(&c->mb_done) != seq) {
            nixl_status_t st = xwait(req, x->fd, POLLIN, async, SHM_XSTALL_MS, "finish a job");
            if (st != NIXL_SUCCESS)
                return st;
            uint8_t w[SHM_XREPLY];
            ssize_t n = recv(x->fd, w, sizeof(w), MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n <= 0)
                return xgone(req, n, "during a transfer");
            if (n != (ssize_t)sizeof(w) || shm_get_u32(w) != SHM_XWAKE_MAGIC)
                return xfail(req, NIXL_ERR_BACKEND,
                             "agent '%s' answered a staging job with a malformed frame",
                             req->peer->name);
        }
        atomic_store(&c->mb_sleep, 0);
    }
    *err = *(volatile uint32_t *)&c->mb_err;
    *bad = *(volatile uint64_t *)&c->mb_bad;
    return NIXL_SUCCESS;
}

/* Bytes slot k holds: the last one ends at the control page. */
static size_t slot_cap(const shm_xchan_t *x, size_t k)
{
    size_t end = (k + 1) * x->slot;
    return (end > x->data_end ? x->data_end : end) - k * x->slot;
}

typedef struct xcur {
    size_t idx, off;
} xcur_t;

/* The descriptor of piece `k` of the job that started at `at` (for error messages). */
static size_t piece_desc(const struct iovec *l, size_t count, xcur_t at, size_t slot, uint64_t k)
{
    size_t len = 0;
    uint64_t i = 0;
    while (at.idx < count && len < slot) {
        size_t avail = l[at.idx].iov_len - at.off;
        if (avail != 0) {
            if (i++ == k)
                return at.idx;
            size_t take = avail < slot - len ? avail : slot - len;
            len += take;
            at.off += take;
        }
        if (at.off == l[at.idx].iov_len) {
            at.idx++;
            at.off = 0;
        }
    }
    return at.idx;
}

/* Copy n bytes from the ring at s into the local descriptors from cursor *at on. */
static void ring_to_local(const struct iovec *l, xcur_t *at, const uint8_t *s, size_t n)
{
    while (n) {
        size_t avail = l[at->idx].iov_len - at->off;
        size_t take = avail < n ? avail : n;
        memcpy((uint8_t *)l[at->idx].iov_base + at->off, s, take);
        s += take;
        n -= take;
        at->off += take;
        if (at->off == l[at->idx].iov_len) {
            at->idx++;
            at->off = 0;
        }
    }
}

/* The target's answer to a job said errno e for descriptor d. */
static nixl_status_t job_failed(nixl_be_req_t *req, const shm_xchan_t *x, const struct iovec *r,
                                size_t count, size_t d, uint32_t e)
{
    const char *op = req->op == NIXL_WRITE ? "WRITE" : "READ";
    size_t i = d < count ? d : 0, named = x->desc ? x->desc[i] : d;
    if (e == EFAULT)
        return xfail(req, NIXL_ERR_BACKEND,
                     "%s to agent '%s', descriptor %zu (remote 0x%llx): the range is not inside "
                     "memory registered with it (was it deregistered?)",
                     op, req->peer->name, named, (unsigned long long)(uintptr_t)r[i].iov_base);
    return xfail(req, NIXL_ERR_BACKEND, "%s to agent '%s', descriptor %zu: %s", op, req->peer->name,
                 named, strerror((int)e));
}

/* Copy n bytes of the local descriptors from cursor *at on into the ring at d; with `c`,
 * publish the job's progress there every SHM_XSTREAM_CHUNK bytes and at the end. */
static void local_to_ring(const struct iovec *l, xcur_t *at, uint8_t *d, size_t n, shm_xctl_t *c)
{
    size_t done = 0, next_pub = SHM_XSTREAM_CHUNK;
    while (done < n) {
        size_t avail = l[at->idx].iov_len - at->off;
        size_t take = avail < n - done ? avail : n - done;
        if (take > next_pub - done)
            take = next_pub - done;
        memcpy(d + done, (const uint8_t *)l[at->idx].iov_base + at->off, take);
        done += take;
        at->off += take;
        if (at->off == l[at->idx].iov_len) {
            at->idx++;
            at->off = 0;
        }
        if (done == next_pub) {
            if (c)
                atomic_store_explicit(&c->mb_avail, done, memory_order_release);
            next_pub += SHM_XSTREAM_CHUNK; /* without c too: a take of 0 would loop for good */
        }
    }
    if (c)
        atomic_store_explicit(&c->mb_avail, n, memory_order_release);
}

/*
 * One streaming mailbox job (shm_xsrv.c, "Streaming") from cursor *c on: up to
 * SHM_XMBOX_PIECES pieces and the ring's slots' worth of bytes, posted before its data. A WRITE
 * then copies into the ring, publishing its progress, so that the target's copy out of the ring
 * runs beside ours; a READ copies out behind the target's published progress. Then the answer,
 * as for any mailbox job. *c moves past the job; false in *any when nothing was left.
 */
static nixl_status_t xstream_job(nixl_be_req_t *req, shm_xchan_t *x, const struct iovec *l,
                                 const struct iovec *r, size_t count, xcur_t *c, bool async,
                                 bool *any)
{
    bool write = req->op == NIXL_WRITE;
    shm_xctl_t *ctl = x->ctl;
    uint8_t *m = x->msg + SHM_XJOB_HDR;
    uint32_t niov = 0;
    size_t total = 0;
    xcur_t start = *c;
    while (c->idx < count && niov < SHM_XMBOX_PIECES && total < x->data_end) {
        size_t avail = l[c->idx].iov_len - c->off;
        size_t take = avail < x->data_end - total ? avail : x->data_end - total;
        if (take) {
            shm_put_u64(m, (uint64_t)(uintptr_t)r[c->idx].iov_base + c->off);
            shm_put_u64(m + 8, take);
            m += 16;
            niov++;
            total += take;
            c->off += take;
        }
        if (c->off == l[c->idx].iov_len) {
            c->idx++;
            c->off = 0;
        }
    }
    *any = niov != 0;
    if (!niov)
        return NIXL_SUCCESS;
    shm_put_u32(x->msg, SHM_XJOB_MAGIC);
    shm_put_u32(x->msg + 4, write ? SHM_XOP_WRITE : SHM_XOP_READ);
    shm_put_u64(x->msg + 8, 0);
    shm_put_u64(x->msg + 16, total);
    shm_put_u32(x->msg + 24, niov);
    shm_put_u32(x->msg + 28, SHM_XJOB_STREAM);
    size_t flen = SHM_XJOB_HDR + 16u * niov;
    memcpy(ctl->mb_job, x->msg, flen);
    ctl->mb_len = (uint32_t)flen;
    xcur_t at = start;
    /* A WRITE of one chunk or less is all in place before it is posted: nothing to overlap,
     * and the target then need not watch the count. */
    bool first = write && total <= SHM_XSTREAM_CHUNK;
    if (first)
        local_to_ring(l, &at, x->base, total, NULL);
    atomic_store_explicit(&ctl->mb_avail, first ? total : 0, memory_order_relaxed); /* then: */
    uint32_t seq = ++x->mb_seq;
    atomic_store(&ctl->mb_seq, seq);

    uint64_t budget = SHM_XSPIN_NS + total / SHM_XSPIN_BYTES_PER_NS;
    size_t got = 0; /* READ: bytes copied out */
    if (write) {
        if (!first)
            local_to_ring(l, &at, x->base, total, ctl);
    } else {
        /* Behind the target while it publishes; it may not come: then wait as for any job. */
        uint64_t last = nixl_now_ns();
        while (atomic_load(&ctl->mb_done) != seq) {
            uint64_t avail = atomic_load_explicit(&ctl->mb_avail, memory_order_acquire);
            if (avail > total)
                avail = total; /* a hint from the target: never past the job */
            if (avail > got) {
                ring_to_local(l, &at, x->base + got, avail - got);
                got = avail;
                last = nixl_now_ns();
            } else if (nixl_now_ns() - last > budget) {
                break;
            } else {
                shm_cpu_relax();
            }
        }
        budget = 0; /* waited already */
    }
    uint32_t e = 0;
    uint64_t bad = 0;
    nixl_status_t st = xmbox_wait(req, x, budget, async, &e, &bad);
    if (st != NIXL_SUCCESS)
        return st;
    if (e)
        return job_failed(req, x, r, count, piece_desc(l, count, start, x->data_end, bad), e);
    if (!write && got < total)
        ring_to_local(l, &at, x->base + got, total - got);
    return NIXL_SUCCESS;
}

/* A whole transfer as streaming mailbox jobs, one after the other. */
static nixl_status_t xstream(nixl_be_req_t *req, shm_xchan_t *x, const struct iovec *l,
                             const struct iovec *r, size_t count, bool async)
{
    xcur_t c = {0, 0};
    for (;;) {
        bool any;
        nixl_status_t st = xstream_job(req, x, l, r, count, &c, async, &any);
        if (st != NIXL_SUCCESS || !any)
            return st;
        /* between jobs, as the slotted path does while it waits */
        if (async && atomic_load_explicit(&req->cancel, memory_order_relaxed) && c.idx < count)
            return xfail(req, NIXL_ERR_CANCELED, "transfer canceled");
    }
}

nixl_status_t shm_xchan_open_main(nixl_be_req_t *req)
{
    shm_xchan_t *x = &req->peer->x;
    pthread_mutex_lock(&x->lock);
    nixl_status_t st = x->fd < 0 ? xopen(req, x, true) : NIXL_SUCCESS;
    pthread_mutex_unlock(&x->lock);
    return st;
}

nixl_status_t shm_xchan_copy(nixl_be_req_t *req, const struct iovec *l, const struct iovec *r,
                             size_t count, bool async)
{
    return shm_xchan_copy_ring(req, 0, l, r, NULL, count, async);
}

nixl_status_t shm_xchan_copy_ring(nixl_be_req_t *req, unsigned ring, const struct iovec *l,
                                  const struct iovec *r, const size_t *desc, size_t count,
                                  bool async)
{
    shm_peer_t *peer = req->peer;
    bool bulk = ring > 0 && ring <= SHM_XBULK_MAX &&
                nixl_now_ms() >= atomic_load_explicit(&peer->xb_after_ms, memory_order_relaxed);
    shm_xchan_t *x = bulk ? &peer->xb[ring - 1] : &peer->x;
    bool write = req->op == NIXL_WRITE;
    nixl_status_t st = NIXL_SUCCESS;

    pthread_mutex_lock(&x->lock);
    if (x->fd < 0) {
        st = xopen(req, x, !bulk);
        if (st != NIXL_SUCCESS) {
            pthread_mutex_unlock(&x->lock);
            if (!bulk || atomic_load(&peer->dead) || atomic_load(&peer->forgotten))
                return st;
            /* Refused (half its stage_rings are in use), or out of some resource: the slices
             * share the main ring for a while, slower but whole. */
            atomic_store(&peer->xb_after_ms, nixl_now_ms() + SHM_XBULK_RETRY_MS);
            if (!atomic_exchange(&peer->xb_said, true))
                NIXL_BE_LOG(req->eng->host, NIXL_LOG_INFO,
                            "'%s': no second staging ring to agent '%s' (%s); large transfers "
                            "to it go through one ring while it refuses (logged once)",
                            req->eng->name, peer->name, shm_req_why(req));
            return shm_xchan_copy_ring(req, 0, l, r, desc, count, async);
        }
    }
    x->desc = desc;
    if (x->stream && !x->nospin && atomic_load(&x->ctl->state) == SHM_XSRV_PARKED) {
        st = xstream(req, x, l, r, count, async);
        x->desc = NULL;
        if (st != NIXL_SUCCESS)
            xchan_close(x); /* the ring is in an unknown state; a new one next time */
        pthread_mutex_unlock(&x->lock);
        return st;
    }
    struct {
        xcur_t at;
        size_t len;
    } pend[SHM_XSLOTS];
    xcur_t c = {0, 0};
    uint64_t sent = 0, done = 0;
    while (c.idx < count || done < sent) {
        if (c.idx < count && sent - done < SHM_XSLOTS) {
            size_t k = (size_t)(sent % SHM_XSLOTS), len = 0, niov = 0;
            uint8_t *s = x->base + k * x->slot, *m = x->msg + SHM_XJOB_HDR;
            size_t cap = slot_cap(x, k);
            xcur_t at = c;
            while (c.idx < count && len < cap && niov < SHM_IOV_MAX) {
                size_t avail = l[c.idx].iov_len - c.off;
                if (avail == 0) {
                    c.idx++;
                    c.off = 0;
                    continue;
                }
                size_t take = avail < cap - len ? avail : cap - len;
                shm_put_u64(m, (uint64_t)(uintptr_t)r[c.idx].iov_base + c.off);
                shm_put_u64(m + 8, take);
                m += 16;
                if (write)
                    memcpy(s + len, (const uint8_t *)l[c.idx].iov_base + c.off, take);
                len += take;
                niov++;
                c.off += take;
                if (c.off == l[c.idx].iov_len) {
                    c.idx++;
                    c.off = 0;
                }
            }
            if (niov == 0)
                continue; /* only empty descriptors were left */
            shm_put_u32(x->msg, SHM_XJOB_MAGIC);
            shm_put_u32(x->msg + 4, write ? SHM_XOP_WRITE : SHM_XOP_READ);
            shm_put_u64(x->msg + 8, (uint64_t)k * x->slot);
            shm_put_u64(x->msg + 16, len);
            shm_put_u32(x->msg + 24, (uint32_t)niov);
            shm_put_u32(x->msg + 28, 0);
            size_t flen = SHM_XJOB_HDR + 16 * niov;
            ssize_t n;
            for (;;) {
                n = send(x->fd, x->msg, flen, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n >= 0 || (errno != EAGAIN && errno != EINTR))
                    break;
                st = xwait(req, x->fd, POLLOUT, async, SHM_XSTALL_MS, "take a job");
                if (st != NIXL_SUCCESS)
                    goto fail;
            }
            if (n != (ssize_t)flen) {
                st = xgone(req, n < 0 ? -1 : 1, "during a transfer");
                goto fail;
            }
            if (x->ctl)
                atomic_fetch_add(&x->ctl->posted, 1); /* then its state, in xspin */
            pend[k].at = at;
            pend[k].len = len;
            sent++;
            continue;
        }
        /* Every slot is busy, or everything is sent: the oldest job's answer. */
        uint8_t a[SHM_XREPLY];
        ssize_t n = -1;
        if (x->ctl) {
            n = xspin(x, a, pend[done % SHM_XSLOTS].len);
        } else {
            errno = EAGAIN;
        }
        if (n < 0 && errno == EAGAIN) {
            st = xwait(req, x->fd, POLLIN, async, SHM_XSTALL_MS, "finish a job");
            if (st != NIXL_SUCCESS)
                goto fail;
            do {
                n = recv(x->fd, a, sizeof(a), MSG_DONTWAIT);
            } while (n < 0 && errno == EINTR);
            if (n < 0 && errno == EAGAIN)
                continue;
        }
        if (n <= 0) {
            st = xgone(req, n, "during a transfer");
            goto fail;
        }
        if (n == (ssize_t)sizeof(a) && shm_get_u32(a) == SHM_XWAKE_MAGIC)
            continue; /* late news of an earlier mailbox job, answered meanwhile */
        size_t k = (size_t)(done % SHM_XSLOTS);
        if (n != (ssize_t)sizeof(a) || shm_get_u32(a) != SHM_XDONE_MAGIC ||
            shm_get_u64(a + 8) != (uint64_t)k * x->slot || shm_get_u64(a + 16) != pend[k].len) {
            st = xfail(req, NIXL_ERR_BACKEND,
                       "agent '%s' answered a staging job with a malformed frame", peer->name);
            goto fail;
        }
        uint32_t e = shm_get_u32(a + 4);
        if (e) {
            size_t d = piece_desc(l, count, pend[k].at, slot_cap(x, k), shm_get_u64(a + 24));
            st = job_failed(req, x, r, count, d, e);
            goto fail;
        }
        if (!write) {
            xcur_t at = pend[k].at;
            ring_to_local(l, &at, x->base + k * x->slot, pend[k].len);
        }
        done++;
    }
    x->desc = NULL;
    pthread_mutex_unlock(&x->lock);
    return NIXL_SUCCESS;

fail:
    /* Jobs may still be in flight: the ring is in an unknown state; a new one next time. */
    xchan_close(x);
    x->desc = NULL;
    pthread_mutex_unlock(&x->lock);
    return st;
}
