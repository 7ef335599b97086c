/*
 * shm_peer.c - peers: loading their connection info, the outgoing connection to each, and
 * sending notifications over it.
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shm_priv.h"

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

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
    peer->hash = name_hash(name, peer->name_len);
    peer->is_self = is_self;
    peer->fd = -1;
    peer->slot = SHM_SLOT_NONE;
    peer->q_tail = &peer->q_head;
    pthread_mutex_init(&peer->lock, NULL);
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
    sendq_free(peer);
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

/* peers_lock held */
static shm_peer_t **table_slot(nixl_be_engine_t *eng, const char *name, size_t len,
                               uint64_t hash)
{
    shm_peer_t **pp = &eng->buckets[hash % SHM_PEER_BUCKETS];
    while (*pp && !((*pp)->hash == hash && (*pp)->name_len == len &&
                    memcmp((*pp)->name, name, len) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

shm_peer_t *shm_peer_find(nixl_be_engine_t *eng, const char *name)
{
    size_t len = strlen(name);
    uint64_t hash = name_hash(name, len);
    pthread_mutex_lock(&eng->peers_lock);
    shm_peer_t *peer = *table_slot(eng, name, len, hash);
    if (peer)
        shm_peer_ref(peer, 1);
    pthread_mutex_unlock(&eng->peers_lock);
    return peer;
}

void shm_peers_destroy(nixl_be_engine_t *eng)
{
    for (size_t b = 0; b < SHM_PEER_BUCKETS; b++) {
        while (eng->buckets[b]) {
            shm_peer_t *peer = eng->buckets[b];
            eng->buckets[b] = peer->hnext;
            atomic_store(&peer->forgotten, true);
            shm_peer_unref(peer, 1);
        }
    }
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
        SHM_LOG(eng, NIXL_LOG_DEBUG, "SHM: freed %zu peer objects still referenced by "
                "metadata that was never unloaded", left);
}

static nixl_status_t peer_gone_error(nixl_be_engine_t *eng, const shm_peer_t *peer)
{
    if (atomic_load(&peer->forgotten))
        return SHM_ERR(eng, NIXL_ERR_NOT_FOUND, "SHM: agent '%s' was disconnected (its metadata "
                       "was invalidated)", peer->name);
    return SHM_ERR(eng, NIXL_ERR_REMOTE_DISCONNECT, "SHM: agent '%s' (pid %d) is gone",
                   peer->name, (int)peer->pid);
}

/* Open a connection to the peer's socket and make sure the listener is the pid it claimed. */
static nixl_status_t peer_dial(nixl_be_engine_t *eng, shm_peer_t *peer, int *out)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path + 1, peer->info.sock_name, peer->info.sock_len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                                 peer->info.sock_len);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: socket(): %s", strerror(errno));
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&addr, alen);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int e = errno;
        close(fd);
        if (e == EAGAIN) /* its accept backlog is full: not dead, try again later */
            return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: agent '%s' is not accepting "
                           "connections (backlog full); retry", peer->name);
        atomic_store(&peer->dead, true);
        return SHM_ERR(eng, NIXL_ERR_REMOTE_DISCONNECT,
                       "SHM: cannot connect to agent '%s' (pid %d, socket @%s): %s; the "
                       "process or its engine is gone",
                       peer->name, (int)peer->pid, peer->info.sock_name, strerror(e));
    }

    struct ucred cred = {0};
    socklen_t clen = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
        cred.pid != peer->pid) {
        /* Copying into the wrong process would be silent corruption: never use this peer. */
        int other = clen == sizeof(cred) ? (int)cred.pid : -1;
        close(fd);
        atomic_store(&peer->dead, true);
        return SHM_ERR(eng, NIXL_ERR_REMOTE_DISCONNECT,
                       "SHM: socket @%s of agent '%s' is owned by pid %d, not pid %d: the "
                       "peer restarted; reload its metadata",
                       peer->info.sock_name, peer->name, other, (int)peer->pid);
    }
    *out = fd;
    return NIXL_SUCCESS;
}

nixl_status_t shm_peer_ensure_connected(nixl_be_engine_t *eng, shm_peer_t *peer)
{
    if (atomic_load(&peer->dead) || atomic_load(&peer->forgotten))
        return peer_gone_error(eng, peer);
    if (atomic_load_explicit(&peer->connected, memory_order_acquire))
        return NIXL_SUCCESS;

    int fd;
    nixl_status_t st = peer_dial(eng, peer, &fd);
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
        return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: cannot watch the connection to '%s': %s",
                       peer->name, slot == SHM_SLOT_NONE ? "out of memory" : strerror(e));
    }
    shm_peer_ref(peer, 1); /* the slot's */
    peer->fd = fd;
    peer->slot = slot;
    peer->ev_data = data;
    atomic_store_explicit(&peer->connected, true, memory_order_release);
    pthread_mutex_unlock(&peer->lock);
    pthread_mutex_unlock(&eng->ev_lock);
    return NIXL_SUCCESS;
}

void shm_peer_close_conn(nixl_be_engine_t *eng, shm_peer_t *peer)
{
    pthread_mutex_lock(&peer->lock);
    if (peer->fd >= 0)
        close(peer->fd); /* also leaves the epoll set: the fd was never duplicated */
    peer->fd = -1;
    peer->want_out = false;
    atomic_store(&peer->connected, false);
    sendq_free(peer);
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

nixl_status_t shm_peer_send_notif(nixl_be_engine_t *eng, shm_peer_t *peer, const void *msg,
                                  size_t len)
{
    if (len > SHM_NOTIF_MAX)
        return SHM_ERR(eng, NIXL_ERR_INVALID_PARAM,
                       "SHM: a %zu-byte notification exceeds the SHM limit of %zu bytes", len,
                       SHM_NOTIF_MAX);
    if (peer->is_self) {
        eng->host->notif(eng->host->ctx, eng->name, eng->name_len, msg, len);
        return NIXL_SUCCESS;
    }
    nixl_status_t st = shm_peer_ensure_connected(eng, peer);
    if (st != NIXL_SUCCESS)
        return st;

    uint8_t hdr[SHM_FRAME_HDR];
    shm_put_u32(hdr, SHM_FRAME_MAGIC);
    shm_put_u32(hdr + 4, (uint32_t)eng->name_len);
    shm_put_u64(hdr + 8, len);
    struct iovec iov[3] = {{hdr, sizeof(hdr)}, {eng->name, eng->name_len},
                           {(void *)msg, len}};
    size_t total = sizeof(hdr) + eng->name_len + len, sent = 0;

    pthread_mutex_lock(&peer->lock);
    if (peer->fd < 0 || atomic_load(&peer->dead)) {
        pthread_mutex_unlock(&peer->lock);
        return peer_gone_error(eng, peer);
    }
    if (!peer->q_head) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 3 : 2};
        ssize_t n;
        do {
            n = sendmsg(peer->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN) {
            int e = errno;
            atomic_store(&peer->dead, true);
            pthread_mutex_unlock(&peer->lock);
            return SHM_ERR(eng, NIXL_ERR_REMOTE_DISCONNECT,
                           "SHM: sending a notification to '%s' failed: %s", peer->name,
                           strerror(e));
        }
        sent = n < 0 ? 0 : (size_t)n;
    }
    if (sent < total) {
        /* A partly written frame must be completed or the stream is corrupt: the bound only
         * applies to frames not started yet. */
        if (sent == 0 && peer->q_bytes + total > SHM_SENDQ_MAX) {
            size_t queued = peer->q_bytes;
            pthread_mutex_unlock(&peer->lock);
            return SHM_ERR(eng, NIXL_ERR_BACKEND,
                           "SHM: agent '%s' is not reading its notifications (%zu bytes "
                           "queued); is it still polling?",
                           peer->name, queued);
        }
        if (!queue_rest(peer, iov, 3, sent, total)) {
            pthread_mutex_unlock(&peer->lock);
            return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: out of memory queueing a notification");
        }
        if (!peer->want_out)
            set_want_out(eng, peer, true);
    }
    pthread_mutex_unlock(&peer->lock);
    return NIXL_SUCCESS;
}

nixl_status_t shm_load_remote_conn(nixl_be_engine_t *eng, const char *agent, const void *blob,
                                   size_t len)
{
    if (strcmp(agent, eng->name) == 0)
        return SHM_ERR(eng, NIXL_ERR_INVALID_PARAM,
                       "SHM: '%s' is this agent; it needs no connection info", agent);
    shm_conn_info_t info;
    const char *why = "";
    if (shm_conn_decode(blob, len, &info, &why) != NIXL_SUCCESS)
        return SHM_ERR(eng, NIXL_ERR_MISMATCH,
                       "SHM: connection info of '%s' (%zu bytes) is malformed: %s", agent, len,
                       why);
    if (memcmp(info.boot_id, eng->info.boot_id, sizeof(info.boot_id)) != 0)
        return SHM_ERR(eng, NIXL_ERR_NOT_SUPPORTED,
                       "SHM: peer '%s' is on another host / pid namespace (another boot id)",
                       agent);
    if (info.pidns_dev != eng->info.pidns_dev || info.pidns_ino != eng->info.pidns_ino)
        return SHM_ERR(eng, NIXL_ERR_NOT_SUPPORTED,
                       "SHM: peer '%s' is on another host / pid namespace (pid namespace "
                       "differs)",
                       agent);
    if (info.netns_dev != eng->info.netns_dev || info.netns_ino != eng->info.netns_ino)
        return SHM_ERR(eng, NIXL_ERR_NOT_SUPPORTED,
                       "SHM: peer '%s' is in another network namespace: its abstract socket "
                       "cannot be reached",
                       agent);

    size_t nlen = strlen(agent);
    uint64_t hash = name_hash(agent, nlen);
    pthread_mutex_lock(&eng->peers_lock);
    shm_peer_t **pp = table_slot(eng, agent, nlen, hash);
    if (*pp) {
        bool same = (*pp)->blob_len == len && memcmp((*pp)->blob, blob, len) == 0;
        pthread_mutex_unlock(&eng->peers_lock);
        if (same)
            return NIXL_SUCCESS;
        return SHM_ERR(eng, NIXL_ERR_NOT_ALLOWED,
                       "SHM: agent '%s' is loaded with other connection info; disconnect it "
                       "first",
                       agent);
    }
    shm_peer_t *peer = shm_peer_new(eng, agent, false);
    if (!peer) {
        pthread_mutex_unlock(&eng->peers_lock);
        return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: out of memory loading '%s'", agent);
    }
    peer->info = info;
    peer->pid = (pid_t)info.pid;
    memcpy(peer->blob, blob, len);
    peer->blob_len = len;
    *pp = peer;
    shm_peer_ref(peer, 1);
    pthread_mutex_unlock(&eng->peers_lock);

    /* Connect now, so a peer that dies is noticed by its hang-up before the next post. A
     * failure is not the load's: it is reported when the peer is used. */
    if (shm_peer_ensure_connected(eng, peer) != NIXL_SUCCESS)
        SHM_LOG(eng, NIXL_LOG_WARN, "SHM: agent '%s' loaded but not reachable yet", agent);
    shm_peer_unref(peer, 1);
    return NIXL_SUCCESS;
}

nixl_status_t shm_connect(nixl_be_engine_t *eng, const char *agent)
{
    if (strcmp(agent, eng->name) == 0)
        return NIXL_SUCCESS; /* loopback needs no socket */
    shm_peer_t *peer = shm_peer_find(eng, agent);
    if (!peer)
        return SHM_ERR(eng, NIXL_ERR_NOT_FOUND, "SHM: no connection info loaded for '%s'",
                       agent);
    nixl_status_t st = shm_peer_ensure_connected(eng, peer);
    shm_peer_unref(peer, 1);
    return st;
}

nixl_status_t shm_disconnect(nixl_be_engine_t *eng, const char *agent)
{
    if (strcmp(agent, eng->name) == 0)
        return NIXL_SUCCESS;
    size_t len = strlen(agent);
    uint64_t hash = name_hash(agent, len);
    pthread_mutex_lock(&eng->peers_lock);
    shm_peer_t **pp = table_slot(eng, agent, len, hash);
    shm_peer_t *peer = *pp;
    if (peer)
        *pp = peer->hnext;
    pthread_mutex_unlock(&eng->peers_lock);
    if (!peer)
        return SHM_ERR(eng, NIXL_ERR_NOT_FOUND, "SHM: agent '%s' is not loaded", agent);

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
        return SHM_ERR(eng, NIXL_ERR_NOT_FOUND, "SHM: no connection info loaded for '%s'",
                       agent);
    nixl_status_t st = shm_peer_send_notif(eng, peer, msg, len);
    shm_peer_unref(peer, 1);
    return st;
}
