/*
 * shm_event.c - the engine's socket side: the listening socket, the event thread, inbound
 * connections and their notification frames, and progress().
 *
 * Whoever handles events (the event thread or a progress() caller) does so under ev_lock.
 * epoll data carries (slot index, generation) instead of a pointer: a thread may return from
 * epoll_wait with events of a connection that another thread closes before it takes the lock,
 * and the generation tells it the event is stale instead of letting it touch freed memory.
 *
 * Two epoll sets. ep_in holds the inbound connections (notifications arriving); ep_fd holds
 * the rest, and ep_in itself while nobody polls. The event thread sleeps on ep_fd. A sender
 * that makes a sleeping thread runnable pays for the wake-up inside its send() (about 10 us on
 * a small VM, more than the whole transfer), so while the user keeps calling progress() the
 * event thread takes ep_in out of its set, leaving the inbound sockets to progress(), and
 * sleeps with a short timeout only to notice when the polling stops; then it puts ep_in back
 * (which re-reports anything pending) and sleeps without a timeout again. Nothing is lost in
 * the hand-over: notifications are only consumed through the core's get_notifs, which calls
 * progress() first, and within SHM_POLL_IDLE_MS of the last progress() the thread reads the
 * sockets itself again. Accepting, flushing queued sends and noticing dead peers stay with
 * the thread throughout (they are on ep_fd).
 *
 * One lock (ev_lock) for all inbound read state rather than one per connection: reads of a
 * connection must not interleave between the thread and progress(), and frames must be
 * delivered in order, which a per-connection lock would also need to hold across delivery;
 * the single lock keeps the slot table consistent too. progress() takes it like the thread does:
 * a try-lock lost to an event thread preempted while holding it (both processes spinning on
 * two cores) delayed notifications by a scheduler tick, 2 ms instead of 5 us.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shm_priv.h"

#define SHM_RBUF (64u << 10)     /* small frames are delivered straight from here */
#define SHM_READ_BUDGET (16u << 20) /* bytes per connection per round, for fairness */
#define SHM_MAX_EVENTS 64
/* With ep_in detached, the event thread checks this often whether progress() is still called. */
#define SHM_POLL_IDLE_MS 2

/* With this many inbound connections or fewer, progress() reads them directly instead of
 * asking epoll first: one syscall instead of two on the latency path. */
#define SHM_DIRECT_POLL_MAX 4

typedef struct shm_conn {
    struct shm_conn *next, **pprev; /* eng->conns, ev_lock */
    int fd;
    uint32_t slot;
    size_t rlen;
    uint8_t *big; /* name + payload of a frame larger than rbuf, being filled */
    size_t big_need, big_have;
    uint32_t big_name_len;
    uint8_t rbuf[SHM_RBUF];
} shm_conn_t;

/* ---- slots (ev_lock held) ---- */

uint32_t shm_slot_add(nixl_be_engine_t *eng, uint32_t kind, void *obj, uint64_t *data)
{
    uint32_t idx = eng->free_slot;
    if (idx != SHM_SLOT_NONE) {
        eng->free_slot = eng->slots[idx].next_free;
    } else {
        if (eng->nslots == eng->slot_cap) {
            uint32_t cap = eng->slot_cap ? eng->slot_cap * 2 : 16;
            shm_slot_t *s = realloc(eng->slots, cap * sizeof(*s));
            if (!s)
                return SHM_SLOT_NONE;
            eng->slots = s;
            eng->slot_cap = cap;
        }
        idx = eng->nslots++;
        eng->slots[idx].gen = 0;
    }
    eng->slots[idx].kind = kind;
    eng->slots[idx].obj = obj;
    *data = (uint64_t)eng->slots[idx].gen << 32 | idx;
    return idx;
}

void shm_slot_free(nixl_be_engine_t *eng, uint32_t idx)
{
    shm_slot_t *s = &eng->slots[idx];
    s->gen++;
    s->kind = SHM_SLOT_FREE;
    s->obj = NULL;
    s->next_free = eng->free_slot;
    eng->free_slot = idx;
}

/* ---- inbound connections ---- */

static void conn_close(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    *conn->pprev = conn->next;
    if (conn->next)
        conn->next->pprev = conn->pprev;
    eng->nconns--;
    close(conn->fd);
    shm_slot_free(eng, conn->slot);
    free(conn->big);
    free(conn);
}

static void accept_all(nixl_be_engine_t *eng)
{
    for (;;) {
        int fd = accept4(eng->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                SHM_LOG(eng, NIXL_LOG_ERROR, "SHM: accept on @%s: %s", eng->info.sock_name,
                        strerror(errno));
            return;
        }
        shm_conn_t *conn = malloc(sizeof(*conn));
        uint64_t data;
        uint32_t slot = conn ? shm_slot_add(eng, SHM_SLOT_CONN, conn, &data) : SHM_SLOT_NONE;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = data};
        if (slot == SHM_SLOT_NONE || epoll_ctl(eng->ep_in, EPOLL_CTL_ADD, fd, &ev) != 0) {
            SHM_LOG(eng, NIXL_LOG_ERROR, "SHM: dropping an incoming connection: %s",
                    slot == SHM_SLOT_NONE ? "out of memory" : strerror(errno));
            if (slot != SHM_SLOT_NONE)
                shm_slot_free(eng, slot);
            free(conn);
            close(fd);
            continue;
        }
        conn->fd = fd;
        conn->slot = slot;
        conn->rlen = 0;
        conn->big = NULL;
        conn->next = eng->conns;
        conn->pprev = &eng->conns;
        if (eng->conns)
            eng->conns->pprev = &conn->next;
        eng->conns = conn;
        eng->nconns++;
    }
}

static void deliver(nixl_be_engine_t *eng, const uint8_t *body, uint32_t name_len,
                    uint64_t msg_len)
{
    eng->host->notif(eng->host->ctx, (const char *)body, name_len, body + name_len,
                     (size_t)msg_len);
}

/* Deliver every complete frame in rbuf; start a big frame if one does not fit. False when the
 * stream is malformed (the sender is not one of us, or is broken). */
static bool parse_frames(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    size_t pos = 0;
    while (conn->rlen - pos >= SHM_FRAME_HDR) {
        const uint8_t *h = conn->rbuf + pos;
        uint32_t name_len = shm_get_u32(h + 4);
        uint64_t msg_len = shm_get_u64(h + 8);
        if (shm_get_u32(h) != SHM_FRAME_MAGIC || name_len == 0 || name_len > SHM_NAME_MAX ||
            msg_len > SHM_NOTIF_MAX) {
            SHM_LOG(eng, NIXL_LOG_ERROR, "SHM: malformed notification frame (name %u bytes, "
                    "payload %llu bytes); closing the connection",
                    name_len, (unsigned long long)msg_len);
            return false;
        }
        size_t body = name_len + (size_t)msg_len;
        if (conn->rlen - pos - SHM_FRAME_HDR >= body) {
            deliver(eng, h + SHM_FRAME_HDR, name_len, msg_len);
            pos += SHM_FRAME_HDR + body;
            continue;
        }
        if (SHM_FRAME_HDR + body > SHM_RBUF) {
            conn->big = malloc(body);
            if (!conn->big) {
                SHM_LOG(eng, NIXL_LOG_ERROR, "SHM: out of memory for a %zu-byte notification; "
                        "closing the connection", body);
                return false;
            }
            conn->big_need = body;
            conn->big_name_len = name_len;
            conn->big_have = conn->rlen - pos - SHM_FRAME_HDR;
            memcpy(conn->big, h + SHM_FRAME_HDR, conn->big_have);
            pos = conn->rlen;
        }
        break;
    }
    memmove(conn->rbuf, conn->rbuf + pos, conn->rlen - pos);
    conn->rlen -= pos;
    return true;
}

/* Read what is there; false when the connection is finished (EOF, error, bad frame). */
static bool conn_read(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    size_t budget = SHM_READ_BUDGET;
    while (budget) {
        uint8_t *dst;
        size_t want;
        if (conn->big) {
            dst = conn->big + conn->big_have;
            want = conn->big_need - conn->big_have;
        } else {
            dst = conn->rbuf + conn->rlen;
            want = SHM_RBUF - conn->rlen;
        }
        ssize_t n = recv(conn->fd, dst, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        if (n <= 0) {
            if (n < 0)
                SHM_LOG(eng, NIXL_LOG_WARN, "SHM: reading notifications: %s", strerror(errno));
            if (conn->rlen || conn->big)
                SHM_LOG(eng, NIXL_LOG_WARN, "SHM: a sender closed its connection in the "
                        "middle of a notification; it is dropped");
            return false;
        }
        budget -= (size_t)n < budget ? (size_t)n : budget;
        if (conn->big) {
            conn->big_have += (size_t)n;
            if (conn->big_have == conn->big_need) {
                deliver(eng, conn->big, conn->big_name_len,
                        conn->big_need - conn->big_name_len);
                free(conn->big);
                conn->big = NULL;
            }
            continue;
        }
        conn->rlen += (size_t)n;
        if (!parse_frames(eng, conn))
            return false;
        /* A short read drained the socket: skip the recv that would say EAGAIN (level
         * triggering brings us back when more arrives). */
        if ((size_t)n < want && !conn->big)
            return true;
    }
    return true;
}

/* ---- outgoing connections: we only watch them for hang-ups and writability ---- */

static void peer_event(nixl_be_engine_t *eng, shm_peer_t *peer, uint32_t events)
{
    bool gone = (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0;
    if (!gone && (events & EPOLLIN)) {
        uint8_t junk[256]; /* peers never write here; a read tells EOF apart */
        ssize_t n;
        do {
            n = recv(peer->fd, junk, sizeof(junk), MSG_DONTWAIT);
        } while (n > 0 || (n < 0 && errno == EINTR));
        gone = n == 0 || errno != EAGAIN;
    }
    if (!gone && (events & EPOLLOUT)) {
        pthread_mutex_lock(&peer->lock);
        shm_peer_flush(eng, peer);
        pthread_mutex_unlock(&peer->lock);
    }
    if (gone || atomic_load(&peer->dead)) {
        atomic_store(&peer->dead, true);
        SHM_LOG(eng, NIXL_LOG_INFO, "SHM: agent '%s' (pid %d) disconnected", peer->name,
                (int)peer->pid);
        shm_peer_close_conn(eng, peer); /* may drop the last reference */
    }
}

static bool handle_events(nixl_be_engine_t *eng, const struct epoll_event *evs, int n);

static void drain_inbound(nixl_be_engine_t *eng)
{
    struct epoll_event evs[SHM_MAX_EVENTS];
    int n = epoll_wait(eng->ep_in, evs, SHM_MAX_EVENTS, 0);
    if (n > 0)
        handle_events(eng, evs, n);
}

/* ev_lock held. True when the wake-up (shutdown) event was seen. */
static bool handle_events(nixl_be_engine_t *eng, const struct epoll_event *evs, int n)
{
    bool stop = false;
    for (int i = 0; i < n; i++) {
        uint32_t idx = (uint32_t)evs[i].data.u64;
        uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
        if (idx >= eng->nslots || eng->slots[idx].gen != gen)
            continue; /* closed after epoll_wait returned */
        shm_slot_t *s = &eng->slots[idx];
        switch (s->kind) {
        case SHM_SLOT_WAKE:
            stop = true;
            break;
        case SHM_SLOT_LISTEN:
            accept_all(eng);
            break;
        case SHM_SLOT_INBOUND:
            drain_inbound(eng);
            break;
        case SHM_SLOT_PEER:
            peer_event(eng, s->obj, evs[i].events);
            break;
        case SHM_SLOT_CONN:
            if (!conn_read(eng, s->obj))
                conn_close(eng, s->obj);
            break;
        default:
            break;
        }
    }
    return stop;
}

static void set_inbound_attached(nixl_be_engine_t *eng, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = eng->ep_in_data};
    if (epoll_ctl(eng->ep_fd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, eng->ep_in, &ev) != 0)
        SHM_LOG(eng, NIXL_LOG_ERROR, "SHM: epoll_ctl on the inbound set: %s", strerror(errno));
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *event_main(void *arg)
{
    nixl_be_engine_t *eng = arg;
    struct epoll_event evs[SHM_MAX_EVENTS];
    bool attached = true;
    uint64_t seen = atomic_load_explicit(&eng->progress_calls, memory_order_relaxed);
    uint64_t last_poll_ms = 0;
    for (;;) {
        int n = epoll_wait(eng->ep_fd, evs, SHM_MAX_EVENTS, attached ? -1 : SHM_POLL_IDLE_MS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            SHM_LOG(eng, NIXL_LOG_ERROR, "SHM: event thread stops: epoll_wait: %s",
                    strerror(errno));
            return NULL;
        }
        if (n > 0) {
            pthread_mutex_lock(&eng->ev_lock);
            bool stop = handle_events(eng, evs, n);
            pthread_mutex_unlock(&eng->ev_lock);
            if (stop)
                return NULL;
        }

        uint64_t calls = atomic_load_explicit(&eng->progress_calls, memory_order_relaxed);
        if (calls != seen) {
            last_poll_ms = mono_ms();
            if (attached) {
                set_inbound_attached(eng, false); /* the user polls: leave the sockets to it */
                attached = false;
            }
        } else if (!attached && mono_ms() - last_poll_ms >= SHM_POLL_IDLE_MS) {
            set_inbound_attached(eng, true); /* polling stopped: read them ourselves again */
            attached = true;
        }
        seen = calls;
    }
}

nixl_status_t shm_progress(nixl_be_engine_t *eng)
{
    atomic_fetch_add_explicit(&eng->progress_calls, 1, memory_order_relaxed);
    pthread_mutex_lock(&eng->ev_lock);
    if (eng->nconns <= SHM_DIRECT_POLL_MAX) {
        for (shm_conn_t *c = eng->conns, *next; c; c = next) {
            next = c->next;
            if (!conn_read(eng, c))
                conn_close(eng, c);
        }
    } else {
        drain_inbound(eng);
    }
    pthread_mutex_unlock(&eng->ev_lock);
    return NIXL_SUCCESS;
}

/* ---- start and stop ---- */

static int bind_listener(nixl_be_engine_t *eng)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t rnd;
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            rnd = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^
                  (uint64_t)(uintptr_t)eng;
        }
        /* Abstract namespace: nothing to clean up on disk if we crash, no directory to pick. */
        int len = snprintf(eng->info.sock_name, sizeof(eng->info.sock_name),
                           "nixl-shm-%u-%016llx", eng->info.pid, (unsigned long long)rnd);
        eng->info.sock_len = (uint16_t)len;
        memset(&eng->addr, 0, sizeof(eng->addr));
        eng->addr.sun_family = AF_UNIX;
        memcpy(eng->addr.sun_path + 1, eng->info.sock_name, (size_t)len);
        eng->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
        if (bind(fd, (struct sockaddr *)&eng->addr, eng->addr_len) == 0) {
            if (listen(fd, SOMAXCONN) == 0)
                return fd;
            break;
        }
        if (errno != EADDRINUSE)
            break;
    }
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static nixl_status_t watch(nixl_be_engine_t *eng, int fd, uint32_t kind, uint64_t *out)
{
    uint64_t data;
    if (shm_slot_add(eng, kind, NULL, &data) == SHM_SLOT_NONE)
        return NIXL_ERR_BACKEND;
    if (out)
        *out = data;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = data};
    return epoll_ctl(eng->ep_fd, EPOLL_CTL_ADD, fd, &ev) == 0 ? NIXL_SUCCESS
                                                              : NIXL_ERR_BACKEND;
}

nixl_status_t shm_event_start(nixl_be_engine_t *eng)
{
    eng->free_slot = SHM_SLOT_NONE;
    eng->listen_fd = bind_listener(eng);
    if (eng->listen_fd < 0)
        return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: cannot bind a unix socket: %s",
                       strerror(errno));
    eng->ep_fd = epoll_create1(EPOLL_CLOEXEC);
    eng->ep_in = epoll_create1(EPOLL_CLOEXEC);
    eng->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (eng->ep_fd < 0 || eng->ep_in < 0 || eng->wake_fd < 0)
        return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: epoll/eventfd: %s", strerror(errno));
    if (watch(eng, eng->listen_fd, SHM_SLOT_LISTEN, NULL) != NIXL_SUCCESS ||
        watch(eng, eng->wake_fd, SHM_SLOT_WAKE, NULL) != NIXL_SUCCESS ||
        watch(eng, eng->ep_in, SHM_SLOT_INBOUND, &eng->ep_in_data) != NIXL_SUCCESS)
        return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: epoll_ctl: %s", strerror(errno));
    int rc = pthread_create(&eng->ev_thread, NULL, event_main, eng);
    if (rc != 0)
        return SHM_ERR(eng, NIXL_ERR_BACKEND, "SHM: cannot start the event thread: %s",
                       strerror(rc));
    eng->ev_started = true;
    return NIXL_SUCCESS;
}

void shm_event_stop(nixl_be_engine_t *eng)
{
    if (eng->ev_started) {
        uint64_t one = 1;
        ssize_t w = write(eng->wake_fd, &one, sizeof(one));
        (void)w; /* an eventfd write of 1 cannot fail short of overflow */
        pthread_join(eng->ev_thread, NULL);
        eng->ev_started = false;
    }
    pthread_mutex_lock(&eng->ev_lock);
    for (uint32_t i = 0; i < eng->nslots; i++) {
        shm_slot_t *s = &eng->slots[i];
        if (s->kind == SHM_SLOT_PEER)
            shm_peer_close_conn(eng, s->obj);
        else if (s->kind == SHM_SLOT_CONN)
            conn_close(eng, s->obj);
    }
    pthread_mutex_unlock(&eng->ev_lock);
    if (eng->listen_fd >= 0)
        close(eng->listen_fd);
    if (eng->wake_fd >= 0)
        close(eng->wake_fd);
    if (eng->ep_fd >= 0)
        close(eng->ep_fd);
    if (eng->ep_in >= 0)
        close(eng->ep_in);
    eng->listen_fd = eng->wake_fd = eng->ep_fd = eng->ep_in = -1;
    free(eng->slots);
    eng->slots = NULL;
    eng->nslots = eng->slot_cap = 0;
}
