/*
 * shm_peer.c - peers: loading their connection info, the outgoing connection to each, and
 * sending notifications over it: as records in the peer's notification ring when it offered
 * one (shm_ring.c), otherwise, and for what does not fit, as frames on the socket.
 *
 * The socket is SOCK_STREAM, not SOCK_SEQPACKET: a SEQPACKET message must fit the socket
 * buffer whole (a 16 MiB notification would fail with EMSGSIZE under default limits) and a
 * non-blocking send is all or nothing, so a large notification to a slow reader could never
 * make partial progress. With a stream we frame messages ourselves, write what fits without
 * blocking and queue the rest, in order, for the event thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shm_priv.h"

shm_peer_t *shm_peer_new(nixl_be_engine_t *eng, const char *name, bool is_self)
{
    shm_peer_t *peer = calloc(1, sizeof(*peer));
    if (!peer)
        return NULL;
    peer->name = strdup(name);
    if (!peer->name) {
        free(peer);
        return NULL;
    }
    peer->md.kind = SHM_MD_PEER;
    atomic_init(&peer->refs, 1);
    peer->eng = eng;
    peer->name_len = strlen(name);
    peer->is_self = is_self;
    peer->fd = -1;
    peer->ring_fd_rx = -1;
    peer->slot = SHM_SLOT_NONE;
    peer->q_tail = &peer->q_head;
    pthread_mutex_init(&peer->lock, NULL);
    pthread_mutex_init(&peer->x.lock, NULL);
    pthread_mutex_init(&peer->maps_lock, NULL);
    peer->x.fd = -1;
    for (unsigned k = 0; k < SHM_XBULK_MAX; k++) {
        pthread_mutex_init(&peer->xb[k].lock, NULL);
        peer->xb[k].fd = -1;
    }
    if (is_self) {
        peer->pid = getpid();
        atomic_init(&peer->connected, true);
    }
    pthread_mutex_lock(&eng->all_lock);
    peer->anext = eng->all_peers;
    peer->aprev = &eng->all_peers;
    if (eng->all_peers)
        eng->all_peers->aprev = &peer->anext;
    eng->all_peers = peer;
    pthread_mutex_unlock(&eng->all_lock);
    return peer;
}

void shm_peer_ref(shm_peer_t *peer, size_t n)
{
    atomic_fetch_add_explicit(&peer->refs, n, memory_order_relaxed);
}

static void sendq_free(shm_peer_t *peer)
{
    while (peer->q_head) {
        shm_sendq_t *n = peer->q_head->next;
        free(peer->q_head);
        peer->q_head = n;
    }
    peer->q_tail = &peer->q_head;
    peer->q_bytes = 0;
}

static void peer_free(shm_peer_t *peer)
{
    if (peer->fd >= 0)
        close(peer->fd);
    if (peer->ring_fd_rx >= 0)
        close(peer->ring_fd_rx);
    shm_txring_off(peer);
    sendq_free(peer);
    shm_xchan_close(peer);
    pthread_mutex_destroy(&peer->x.lock);
    for (unsigned k = 0; k < SHM_XBULK_MAX; k++)
        pthread_mutex_destroy(&peer->xb[k].lock);
    pthread_mutex_destroy(&peer->maps_lock);
    pthread_mutex_destroy(&peer->lock);
    free(peer->name);
    free(peer);
}

void shm_peer_unref(shm_peer_t *peer, size_t n)
{
    if (atomic_fetch_sub_explicit(&peer->refs, n, memory_order_acq_rel) != n)
        return;
    nixl_be_engine_t *eng = peer->eng;
    pthread_mutex_lock(&eng->all_lock);
    *peer->aprev = peer->anext;
    if (peer->anext)
        peer->anext->aprev = peer->aprev;
    pthread_mutex_unlock(&eng->all_lock);
    peer_free(peer);
}

shm_peer_t *shm_peer_find(nixl_be_engine_t *eng, const char *name)
{
    pthread_mutex_lock(&eng->peers_lock);
    shm_peer_t *peer = nixl_hmap_get(&eng->peers, name, strlen(name));
    if (peer)
        shm_peer_ref(peer, 1);
    pthread_mutex_unlock(&eng->peers_lock);
    return peer;
}

void shm_peers_destroy(nixl_be_engine_t *eng)
{
    void *loaded;
    for (size_t it = 0; nixl_hmap_next(&eng->peers, &it, NULL, NULL, &loaded);) {
        atomic_store(&((shm_peer_t *)loaded)->forgotten, true);
        shm_peer_unref(loaded, 1);
    }
    nixl_hmap_free(&eng->peers);
    if (eng->self) {
        shm_peer_unref(eng->self, 1);
        eng->self = NULL;
    }
    size_t left = 0;
    while (eng->all_peers) {
        shm_peer_t *peer = eng->all_peers;
        eng->all_peers = peer->anext;
        peer_free(peer);
        left++;
    }
    if (left)
        NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                    "freed %zu peer objects still referenced by "
                    "metadata that was never unloaded",
                    left);
}

static nixl_status_t peer_gone_error(nixl_be_engine_t *eng, const shm_peer_t *peer)
{
    if (atomic_load(&peer->forgotten))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND,
                           "agent '%s' was disconnected (its metadata "
                           "was invalidated)",
                           peer->name);
    return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s' (pid %d) is gone",
                       peer->name, (int)peer->pid);
}

/* Wait (bounded) for the target's first control frame, its ring offer, and keep what arrived:
 * the bytes are fed to shm_peer_ctl_input once the connection is installed. A target of an
 * older version never sends one: after SHM_RING_WAIT_MS the connection stays socket-only, and
 * an offer that comes later is taken by the event thread. */
static size_t dial_wait_offer(int fd, uint8_t *rx, int *ring_fd)
{
    size_t have = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (have < SHM_CTL_LEN) {
        int got;
        unsigned nfd;
        ssize_t n = shm_recv_fds(fd, rx + have, SHM_CTL_LEN - have, &got, 1, &nfd);
        if (nfd) {
            if (*ring_fd >= 0)
                close(*ring_fd);
            *ring_fd = got; /* the ring's memfd comes with the offer */
        }
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            break; /* the event thread sees the hang-up */
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long waited = (long)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= SHM_RING_WAIT_MS)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        poll(&pfd, 1, (int)(SHM_RING_WAIT_MS - waited));
    }
    return have;
}

/* Open a connection to the peer's socket and make sure the listener is the pid it claimed;
 * with `wait_offer`, wait (bounded) for its ring offer. */
static nixl_status_t peer_dial(nixl_be_engine_t *eng, shm_peer_t *peer, bool wait_offer, int *out,
                               uint8_t *rx, size_t *rx_len, int *ring_fd)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path + 1, peer->info.sock_name, peer->info.sock_len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                                 peer->info.sock_len);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "socket(): %s", strerror(errno));
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&addr, alen);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int e = errno;
        close(fd);
        if (e == EAGAIN) /* its accept backlog is full: not dead, try again later */
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                               "agent '%s' is not accepting "
                               "connections (backlog full); retry",
                               peer->name);
        atomic_store(&peer->dead, true);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT,
                           "cannot connect to agent '%s' (pid %d, socket @%s): %s; the "
                           "process or its engine is gone",
                           peer->name, (int)peer->pid, peer->info.sock_name, strerror(e));
    }

    struct ucred cred = {0};
    socklen_t clen = sizeof(cred);
    /* A peer in another pid namespace has a pid that means nothing here (the kernel gives us
     * its pid in ours, or 0): only the socket name, which carries 64 random bits, identifies
     * it. Nothing is ever copied to it by pid (it is staged). */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
        (!peer->other_pidns && cred.pid != peer->pid)) {
        /* Copying into the wrong process would be silent corruption: never use this peer. */
        int other = clen == sizeof(cred) ? (int)cred.pid : -1;
        close(fd);
        atomic_store(&peer->dead, true);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT,
                           "socket @%s of agent '%s' is owned by pid %d, not pid %d: the "
                           "peer restarted; reload its metadata",
                           peer->info.sock_name, peer->name, other, (int)peer->pid);
    }
    *rx_len = SHM_RING_SUPPORTED && wait_offer ? dial_wait_offer(fd, rx, ring_fd) : 0;
    *out = fd;
    return NIXL_SUCCESS;
}

/*
 * Connect if not connected. `wait_offer`: wait up to SHM_RING_WAIT_MS for the ring offer, so
 * that a first notification sent right away can use the ring. Only the data path waits: a
 * control call (load, make_connection) runs under the agent's control lock and, for a LOAD
 * from the side channel, on its only thread, and a stopped process would hold both for the
 * whole wait (issue 14); there the offer is taken by the event thread when it comes.
 */
static nixl_status_t peer_connect(nixl_be_engine_t *eng, shm_peer_t *peer, bool wait_offer)
{
    if (atomic_load(&peer->dead) || atomic_load(&peer->forgotten))
        return peer_gone_error(eng, peer);
    if (atomic_load_explicit(&peer->connected, memory_order_acquire))
        return NIXL_SUCCESS;

    int fd, ring_fd = -1;
    uint8_t rx[SHM_CTL_LEN];
    size_t rx_len = 0;
    nixl_status_t st = peer_dial(eng, peer, wait_offer, &fd, rx, &rx_len, &ring_fd);
    if (st != NIXL_SUCCESS)
        return st;

    pthread_mutex_lock(&eng->ev_lock);
    pthread_mutex_lock(&peer->lock);
    if (peer->fd >= 0 || atomic_load(&peer->dead) || atomic_load(&peer->forgotten)) {
        /* Another thread won the race, or the peer went away meanwhile. */
        bool ok = peer->fd >= 0;
        pthread_mutex_unlock(&peer->lock);
        pthread_mutex_unlock(&eng->ev_lock);
        close(fd);
        if (ring_fd >= 0)
            close(ring_fd);
        return ok ? NIXL_SUCCESS : peer_gone_error(eng, peer);
    }
    uint64_t data;
    uint32_t slot = shm_slot_add(eng, SHM_SLOT_PEER, peer, &data);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = data};
    if (slot == SHM_SLOT_NONE || epoll_ctl(eng->ep_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int e = errno;
        if (slot != SHM_SLOT_NONE)
            shm_slot_free(eng, slot);
        pthread_mutex_unlock(&peer->lock);
        pthread_mutex_unlock(&eng->ev_lock);
        close(fd);
        if (ring_fd >= 0)
            close(ring_fd);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "cannot watch the connection to '%s': %s",
                           peer->name, slot == SHM_SLOT_NONE ? "out of memory" : strerror(e));
    }
    shm_peer_ref(peer, 1); /* the slot's */
    peer->fd = fd;
    peer->slot = slot;
    peer->ev_data = data;
    if (peer->ring_fd_rx >= 0)
        close(peer->ring_fd_rx);
    peer->ring_fd_rx = ring_fd;
    if (rx_len) {
        bool bad = false;
        shm_peer_ctl_input(eng, peer, rx, rx_len, &bad);
        if (bad)
            atomic_store(&peer->dead, true); /* the event thread closes it */
    }
    atomic_store_explicit(&peer->connected, true, memory_order_release);
    pthread_mutex_unlock(&peer->lock);
    pthread_mutex_unlock(&eng->ev_lock);
    return NIXL_SUCCESS;
}

nixl_status_t shm_peer_dial(nixl_be_engine_t *eng, shm_peer_t *peer, int *out)
{
    uint8_t rx[SHM_CTL_LEN];
    size_t rx_len;
    int ring_fd = -1; /* stays -1: no offer is awaited */
    return peer_dial(eng, peer, false, out, rx, &rx_len, &ring_fd);
}

void shm_peer_go_staged(nixl_be_engine_t *eng, shm_peer_t *peer, const char *why)
{
    pthread_mutex_lock(&peer->lock);
    bool was = atomic_exchange(&peer->staged, true);
    if (!was) {
        peer->staged_why = why;
        /* Records go on through the ring's mapping (shm_txring_write sees `staged` and never
         * uses process_vm_writev again); without a mapping, notifications go by socket. */
        if (!peer->ring.map)
            peer->ring.on = false;
    }
    pthread_mutex_unlock(&peer->lock);
    if (!was)
        NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                    "transfers with agent '%s' go through a %zu-byte shared-memory staging "
                    "ring, not cross-memory attach: %s",
                    peer->name, eng->xring_size, why);
}

nixl_status_t shm_peer_ensure_connected(nixl_be_engine_t *eng, shm_peer_t *peer)
{
    return peer_connect(eng, peer, true);
}

void shm_peer_close_conn(nixl_be_engine_t *eng, shm_peer_t *peer)
{
    pthread_mutex_lock(&peer->lock);
    /* No ring write after this: they happen under this lock with the socket open, and closing
     * the socket is what tells the target its ring is free (shm_ring.c, "Lifetime"); its
     * mapping goes first. */
    shm_txring_off(peer);
    if (peer->fd >= 0)
        close(peer->fd); /* also leaves the epoll set: the fd was never duplicated */
    peer->fd = -1;
    peer->want_out = false;
    atomic_store(&peer->connected, false);
    sendq_free(peer);
    if (peer->ring_fd_rx >= 0)
        close(peer->ring_fd_rx);
    peer->ring_fd_rx = -1;
    peer->seq = 0;
    peer->seq_mode = false;
    peer->rx_len = 0;
    uint32_t slot = peer->slot;
    peer->slot = SHM_SLOT_NONE;
    pthread_mutex_unlock(&peer->lock);
    if (slot != SHM_SLOT_NONE) {
        shm_slot_free(eng, slot);
        shm_peer_unref(peer, 1);
    }
}

static void set_want_out(nixl_be_engine_t *eng, shm_peer_t *peer, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
                             .data.u64 = peer->ev_data};
    if (epoll_ctl(eng->ep_fd, EPOLL_CTL_MOD, peer->fd, &ev) == 0)
        peer->want_out = on;
}

void shm_peer_flush(nixl_be_engine_t *eng, shm_peer_t *peer)
{
    while (peer->q_head && peer->fd >= 0) {
        shm_sendq_t *q = peer->q_head;
        ssize_t n = send(peer->fd, q->data + q->off, q->len - q->off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                atomic_store(&peer->dead, true); /* the event thread sees the hang-up */
            break;
        }
        q->off += (size_t)n;
        peer->q_bytes -= (size_t)n;
        if (q->off == q->len) {
            peer->q_head = q->next;
            if (!peer->q_head)
                peer->q_tail = &peer->q_head;
            free(q);
        }
    }
    if (!peer->q_head && peer->want_out && peer->fd >= 0)
        set_want_out(eng, peer, false);
}

/* Queue bytes [from, end) of the frame pieces; one allocation. */
static bool queue_rest(shm_peer_t *peer, const struct iovec *iov, int niov, size_t from,
                       size_t total)
{
    shm_sendq_t *q = malloc(sizeof(*q) + (total - from));
    if (!q)
        return false;
    q->next = NULL;
    q->len = total - from;
    q->off = 0;
    size_t pos = 0, w = 0;
    for (int i = 0; i < niov; i++) {
        size_t a = iov[i].iov_len;
        if (a && pos + a > from) {
            size_t skip = from > pos ? from - pos : 0;
            memcpy(q->data + w, (const uint8_t *)iov[i].iov_base + skip, a - skip);
            w += a - skip;
        }
        pos += a;
    }
    *peer->q_tail = q;
    peer->q_tail = &q->next;
    peer->q_bytes += q->len;
    return true;
}

/*
 * Send a whole frame now or queue what does not fit, behind what is queued (peer->lock held,
 * socket open). `bounded`: refuse (NIXL_ERR_BACKEND, nothing sent) a frame that would take the
 * queue past SHM_SENDQ_MAX; small control frames are never refused. Nothing partial is ever
 * abandoned: a frame started is completed, or the stream would be corrupt.
 */
static nixl_status_t peer_send_iov(nixl_be_engine_t *eng, shm_peer_t *peer,
                                   const struct iovec *iov, int niov, bool bounded)
{
    size_t total = 0, sent = 0;
    for (int i = 0; i < niov; i++)
        total += iov[i].iov_len;
    if (!peer->q_head) {
        struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)niov};
        ssize_t n;
        do {
            n = sendmsg(peer->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN) {
            int e = errno;
            atomic_store(&peer->dead, true);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT,
                               "sending a notification to '%s' failed: %s", peer->name,
                               strerror(e));
        }
        sent = n < 0 ? 0 : (size_t)n;
    }
    if (sent < total) {
        if (bounded && sent == 0 && peer->q_bytes + total > SHM_SENDQ_MAX)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                               "agent '%s' is not reading its notifications (%zu bytes "
                               "queued); is it still polling?",
                               peer->name, peer->q_bytes);
        if (!queue_rest(peer, iov, niov, sent, total)) {
            if (sent) {
                /* A torn frame would corrupt the stream: give the connection up. */
                atomic_store(&peer->dead, true);
                return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN,
                                   "out of memory queueing a "
                                   "notification to '%s'; the connection is dropped",
                                   peer->name);
            }
            return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN,
                               "out of memory queueing a notification");
        }
        if (!peer->want_out)
            set_want_out(eng, peer, true);
    }
    return NIXL_SUCCESS;
}

bool shm_peer_send_frame(nixl_be_engine_t *eng, shm_peer_t *peer, const struct iovec *iov,
                         int niov)
{
    return peer->fd >= 0 && peer_send_iov(eng, peer, iov, niov, false) == NIXL_SUCCESS;
}

/* A record is in the ring: wake the target if it said it does not poll (shm_ring.c). */
static void ring_doorbell(nixl_be_engine_t *eng, shm_peer_t *peer)
{
    if (!peer->ring.doorbell || peer->q_head)
        return; /* queued bytes will wake it, and it drains the ring after every frame */
    uint8_t f[SHM_FRAME_HDR];
    shm_put_u32(f, SHM_FRAME_BELL);
    shm_put_u32(f + 4, 0);
    shm_put_u64(f + 8, 0);
    struct iovec iov = {f, sizeof(f)};
    shm_peer_send_frame(eng, peer, &iov, 1);
}

/* Number and send one notification, ring first (peer->lock held, socket open). The number is
 * taken only once the message is committed to the ring or handed whole to the socket. */
static nixl_status_t send_numbered(nixl_be_engine_t *eng, shm_peer_t *peer, const void *msg,
                                   size_t len)
{
    uint64_t seq = peer->seq + 1;
    /* While the target does not poll, a record would need a doorbell after it: the frame
     * alone is one syscall instead of two, and wakes the target's event thread the same. */
    if (peer->ring.on && !peer->ring.doorbell) {
        bool data_ok;
        int w = shm_txring_write(eng, peer, seq, msg, len, NULL, NULL, 0, 0, &data_ok);
        if (w > 0) {
            peer->seq = seq;
            ring_doorbell(eng, peer);
            return NIXL_SUCCESS;
        }
        if (w < 0 && errno == ESRCH) {
            atomic_store(&peer->dead, true);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s' (pid %d) is gone",
                               peer->name, (int)peer->pid);
        }
        /* too big for the ring, no room, or the ring failed: the socket, with the number */
        NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                    "notification %llu to '%s' (%zu bytes) goes by "
                    "socket: %s",
                    (unsigned long long)seq, peer->name, len,
                    !peer->ring.on                          ? "the ring failed"
                    : shm_rec_len(len) > peer->ring.rec_max ? "too big for the ring"
                                                            : "the ring is full");
    }
    uint8_t hdr[SHM_FRAME_SEQ_HDR];
    shm_put_u32(hdr, peer->seq_mode ? SHM_FRAME_SEQ : SHM_FRAME_MAGIC);
    shm_put_u32(hdr + 4, (uint32_t)eng->name_len);
    shm_put_u64(hdr + 8, len);
    shm_put_u64(hdr + 16, seq);
    struct iovec iov[3] = {{hdr, peer->seq_mode ? SHM_FRAME_SEQ_HDR : SHM_FRAME_HDR},
                           {eng->name, eng->name_len},
                           {(void *)msg, len}};
    nixl_status_t st = peer_send_iov(eng, peer, iov, len ? 3 : 2, true);
    if (st == NIXL_SUCCESS)
        peer->seq = seq;
    return st;
}

static nixl_status_t check_len(nixl_be_engine_t *eng, size_t len)
{
    if (len > SHM_NOTIF_MAX)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "a %zu-byte notification exceeds the SHM limit of %zu bytes", len,
                           SHM_NOTIF_MAX);
    return NIXL_SUCCESS;
}

nixl_status_t shm_peer_send_notif(nixl_be_engine_t *eng, shm_peer_t *peer, const void *msg,
                                  size_t len)
{
    nixl_status_t st = check_len(eng, len);
    if (st != NIXL_SUCCESS)
        return st;
    if (peer->is_self) {
        eng->host->notif(eng->host, eng->name, eng->name_len, msg, len);
        return NIXL_SUCCESS;
    }
    st = shm_peer_ensure_connected(eng, peer);
    if (st != NIXL_SUCCESS)
        return st;

    pthread_mutex_lock(&peer->lock);
    if (peer->fd < 0 || atomic_load(&peer->dead))
        st = peer_gone_error(eng, peer);
    else
        st = send_numbered(eng, peer, msg, len);
    pthread_mutex_unlock(&peer->lock);
    return st;
}

nixl_status_t shm_peer_write_notif(nixl_be_engine_t *eng, shm_peer_t *peer,
                                   const struct iovec *ldata, const struct iovec *rdata,
                                   size_t ndata, size_t data_bytes, const void *msg, size_t len,
                                   bool *done)
{
    *done = false;
    if (!SHM_RING_SUPPORTED || peer->is_self || check_len(eng, len) != NIXL_SUCCESS)
        return NIXL_SUCCESS;
    pthread_mutex_lock(&peer->lock);
    nixl_status_t st = NIXL_SUCCESS;
    if (peer->fd >= 0 && !atomic_load(&peer->dead) && peer->ring.on) {
        bool data_ok;
        uint64_t seq = peer->seq + 1;
        int w = shm_txring_write(eng, peer, seq, msg, len, ldata, rdata, ndata, data_bytes,
                                 &data_ok);
        if (w > 0) {
            *done = true;
            peer->seq = seq;
            ring_doorbell(eng, peer);
        } else if (w < 0 && data_ok) {
            /* The data is there, the record is not (the ring failed): the socket. */
            *done = true;
            st = send_numbered(eng, peer, msg, len);
        }
        /* otherwise nothing is numbered and the caller takes the ordinary path, which also
         * reports a fault in the data properly */
    }
    pthread_mutex_unlock(&peer->lock);
    return st;
}

/* One control frame from the target (peer->lock held). */
static bool ctl_frame(nixl_be_engine_t *eng, shm_peer_t *peer, const uint8_t *f)
{
    if (shm_get_u32(f) != SHM_CTL_MAGIC)
        return false;
    uint32_t type = shm_get_u32(f + 4);
    uint64_t a = shm_get_u64(f + 8), b = shm_get_u64(f + 16), c = shm_get_u64(f + 24);
    switch (type) {
    case SHM_CTL_RING:
        shm_txring_enable(eng, peer, a, b, c); /* takes ring_fd_rx: mapped, or by CMA */
        return true;
    case SHM_CTL_POLL:
        if (peer->ring.on && peer->ring.doorbell)
            NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "agent '%s' polls its ring", peer->name);
        peer->ring.doorbell = false;
        return true;
    case SHM_CTL_IDLE: {
        /* Set the flag and acknowledge in one hold of the lock: every record written before
         * the ACK is committed before it is sent (shm_ring.c, "Wake-ups"). */
        peer->ring.doorbell = true;
        uint8_t ack[SHM_FRAME_HDR];
        shm_put_u32(ack, SHM_FRAME_ACK);
        shm_put_u32(ack + 4, 0);
        shm_put_u64(ack + 8, a);
        struct iovec iov = {ack, sizeof(ack)};
        shm_peer_send_frame(eng, peer, &iov, 1);
        return true;
    }
    default:
        return false;
    }
}

void shm_peer_ctl_input(nixl_be_engine_t *eng, shm_peer_t *peer, const uint8_t *p, size_t n,
                        bool *bad)
{
    while (n) {
        size_t take = SHM_CTL_LEN - peer->rx_len;
        if (take > n)
            take = n;
        memcpy(peer->rx + peer->rx_len, p, take);
        peer->rx_len += take;
        p += take;
        n -= take;
        if (peer->rx_len < SHM_CTL_LEN)
            break;
        peer->rx_len = 0;
        if (!ctl_frame(eng, peer, peer->rx)) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                        "agent '%s' sent a malformed control frame; "
                        "dropping the connection",
                        peer->name);
            *bad = true;
            return;
        }
    }
}

nixl_status_t shm_load_remote_conn(nixl_be_engine_t *eng, const char *agent, const void *blob,
                                   size_t len)
{
    if (strcmp(agent, eng->name) == 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "'%s' is this agent; it needs no connection info", agent);
    shm_conn_info_t info;
    const char *why = "";
    if (shm_conn_decode(blob, len, &info, &why) != NIXL_SUCCESS)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                           "connection info of '%s' (%zu bytes) is malformed: %s", agent, len, why);
    if (memcmp(info.boot_id, eng->info.boot_id, sizeof(info.boot_id)) != 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "peer '%s' is on another host (another boot id)", agent);
    if (info.netns_dev != eng->info.netns_dev || info.netns_ino != eng->info.netns_ino)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "peer '%s' is in another network namespace: its abstract socket "
                           "cannot be reached",
                           agent);
    /* How the data will move: cross-memory attach needs the peer's pid in our namespace and
     * both sides allowed to use it; otherwise a staging ring (shm_xchan.c). */
    bool other_pidns = info.pidns_dev != eng->info.pidns_dev ||
                       info.pidns_ino != eng->info.pidns_ino;
    const char *staged_why = NULL;
    if (other_pidns)
        staged_why = "it is in another pid namespace";
    else if (info.flags & SHM_INFO_STAGED)
        staged_why = "it cannot be reached by cross-memory attach (it says so: seccomp, Yama "
                     "or transport=staged on its side)";
    else if (eng->cma_why[0])
        staged_why = eng->transport == SHM_TRANSPORT_STAGED
                         ? "transport=staged"
                         : "cross-memory attach is unavailable in this process";
    if (staged_why && eng->transport == SHM_TRANSPORT_CMA)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "peer '%s' cannot be reached by cross-memory attach (%s) and "
                           "transport=cma; use transport=auto",
                           agent, staged_why);

    pthread_mutex_lock(&eng->peers_lock);
    shm_peer_t *old = nixl_hmap_get(&eng->peers, agent, strlen(agent));
    if (old) {
        bool same = old->blob_len == len && memcmp(old->blob, blob, len) == 0;
        pthread_mutex_unlock(&eng->peers_lock);
        if (same)
            return NIXL_SUCCESS;
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_ALLOWED,
                           "agent '%s' is loaded with other connection info; disconnect it "
                           "first",
                           agent);
    }
    shm_peer_t *peer = shm_peer_new(eng, agent, false);
    if (!peer) {
        pthread_mutex_unlock(&eng->peers_lock);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory loading '%s'", agent);
    }
    peer->info = info;
    /* The notification thread matches senders against all_peers (shm_trust.c) under
     * all_lock, and the peer is on that list already. */
    pthread_mutex_lock(&eng->all_lock);
    peer->pid = (pid_t)info.pid;
    peer->other_pidns = other_pidns;
    pthread_mutex_unlock(&eng->all_lock);
    if (staged_why) /* before anyone else sees it: no ring is ever enabled */
        shm_peer_go_staged(eng, peer, staged_why);
    memcpy(peer->blob, blob, len);
    peer->blob_len = len;
    if (!nixl_hmap_put(&eng->peers, peer->name, peer->name_len, peer)) {
        pthread_mutex_unlock(&eng->peers_lock);
        shm_peer_unref(peer, 1);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory loading '%s'", agent);
    }
    shm_peer_ref(peer, 1);
    pthread_mutex_unlock(&eng->peers_lock);

    /* Connect now, so a peer that dies is noticed by its hang-up before the next post. A
     * failure is not the load's: it is reported when the peer is used. */
    if (peer_connect(eng, peer, false) != NIXL_SUCCESS)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "agent '%s' loaded but not reachable yet", agent);
    shm_peer_unref(peer, 1);
    return NIXL_SUCCESS;
}

nixl_status_t shm_connect(nixl_be_engine_t *eng, const char *agent)
{
    if (strcmp(agent, eng->name) == 0)
        return NIXL_SUCCESS; /* loopback needs no socket */
    shm_peer_t *peer = shm_peer_find(eng, agent);
    if (!peer)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND, "no connection info loaded for '%s'",
                           agent);
    nixl_status_t st = peer_connect(eng, peer, false);
    shm_peer_unref(peer, 1);
    return st;
}

nixl_status_t shm_disconnect(nixl_be_engine_t *eng, const char *agent)
{
    if (strcmp(agent, eng->name) == 0)
        return NIXL_SUCCESS;
    pthread_mutex_lock(&eng->peers_lock);
    shm_peer_t *peer = nixl_hmap_remove(&eng->peers, agent, strlen(agent));
    pthread_mutex_unlock(&eng->peers_lock);
    if (!peer)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND, "agent '%s' is not loaded", agent);

    /* Requests and mds still hold the peer; they see `forgotten` and fail cleanly. */
    atomic_store(&peer->forgotten, true);
    pthread_mutex_lock(&eng->ev_lock);
    shm_peer_close_conn(eng, peer);
    pthread_mutex_unlock(&eng->ev_lock);
    shm_peer_unref(peer, 1);
    return NIXL_SUCCESS;
}

nixl_status_t shm_gen_notif(nixl_be_engine_t *eng, const char *agent, const void *msg,
                            size_t len)
{
    if (strcmp(agent, eng->name) == 0)
        return shm_peer_send_notif(eng, eng->self, msg, len);
    shm_peer_t *peer = shm_peer_find(eng, agent);
    if (!peer)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND, "no connection info loaded for '%s'",
                           agent);
    nixl_status_t st = shm_peer_send_notif(eng, peer, msg, len);
    shm_peer_unref(peer, 1);
    return st;
}
