/*
 * shm_event.c - the engine's socket side: the listening socket, the event thread, inbound
 * connections (their notification frames and rings), and progress().
 *
 * Whoever handles events (the event thread or a progress() caller) does so under ev_lock.
 * epoll data carries (slot index, generation) instead of a pointer: a thread may return from
 * epoll_wait with events of a connection that another thread closes before it takes the lock,
 * and the generation tells it the event is stale instead of letting it touch freed memory.
 *
 * Rings. Right after accepting a connection we offer it a notification ring (shm_ring.c, which
 * also explains the protocol and why it is correct): a RING control frame with its address, or
 * with size 0 when we have none. An initiator that takes it says so with SHMH; from then on its
 * notifications arrive mostly as ring records, and its socket carries only the exceptions
 * (records too big for the ring, a full ring), doorbells and acknowledgements. progress() reads
 * every ring on every call, a memory read per connection, before any socket. Such a
 * connection's socket sits in ep_fd, watched by the event thread at all times, since nothing
 * else would notice a message there that no ring record waits for. While nobody calls
 * progress(), initiators ring a doorbell after each record; the event thread switches them
 * with POLL and IDLE control frames as polling starts and stops. The thread notices that
 * polling started only when something wakes it, normally the first doorbell: each initiator
 * pays one doorbell per polling spell. progress() does not wake it on purpose: an application
 * that polls once per step of its own (every few to tens of milliseconds, as inference engines
 * call get_notifs) would then pay a thread wake-up per call and flip every ring between POLL
 * and IDLE each time, where today nothing changes until traffic comes.
 *
 * Two epoll sets. ep_in holds the inbound connections without a ring in use (notifications
 * arriving on the socket); ep_fd holds the rest, and ep_in itself while nobody polls. The event
 * thread sleeps on ep_fd. A sender that makes a sleeping thread runnable pays for the wake-up
 * inside its send() (about 10 us on a small VM, more than the whole transfer), so while the user
 * keeps calling progress() the event thread takes ep_in out of its set, leaving those sockets to
 * progress(), and sleeps with a short timeout only to notice when the polling stops; then it
 * puts ep_in back (which re-reports anything pending) and sleeps without a timeout again.
 * Nothing is lost in the hand-over: notifications are only consumed through the core's
 * get_notifs, which calls progress() first, and within SHM_POLL_IDLE_MS of the last progress()
 * the thread reads the sockets itself again. Accepting, flushing queued sends and noticing dead
 * peers stay with the thread throughout (they are on ep_fd).
 *
 * One lock (ev_lock) for all inbound read state rather than one per connection: reads of a
 * connection must not interleave between the thread and progress(), and notifications must be
 * delivered in order, which a per-connection lock would also need to hold across delivery;
 * the single lock keeps the slot table consistent too. progress() takes it like the thread does:
 * a try-lock lost to an event thread preempted while holding it (both processes spinning on
 * two cores) delayed notifications by a scheduler tick, 2 ms instead of 5 us.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "array.h"
#include "log_limit.h"
#include "shm_priv.h"

#define SHM_READ_BUDGET (16u << 20) /* bytes per connection per round, for fairness */
#define SHM_MAX_EVENTS 64
/* With ep_in detached, the event thread checks this often whether progress() is still called. */
#define SHM_POLL_IDLE_MS 2
/* After IDLE is sent, the ring is polled this often until the initiator acknowledges; slower
 * when an initiator takes longer than SHM_PENDING_PATIENCE_MS (stopped, or overloaded). */
#define SHM_PENDING_POLL_MS 1
#define SHM_PENDING_SLOW_MS 50
#define SHM_PENDING_PATIENCE_MS 100
/* accept() out of descriptors: the listener is set aside this long, doubling to the max. */
#define SHM_ACCEPT_BACKOFF_MIN_MS 50u
#define SHM_ACCEPT_BACKOFF_MAX_MS 1000u
/* Destroy: how long queued notifications may take to leave. */
#define SHM_FLUSH_LINGER_MS 1000

/* With this many socket-only inbound connections or fewer, progress() reads them directly
 * instead of asking epoll first: one syscall instead of two on the latency path. */
#define SHM_DIRECT_POLL_MAX 4

enum { CONN_OK, CONN_EOF, CONN_BAD };

/* ---- slots (ev_lock held) ---- */

uint32_t shm_slot_add(nixl_be_engine_t *eng, uint32_t kind, void *obj, uint64_t *data)
{
    uint32_t idx = eng->free_slot;
    if (idx != SHM_SLOT_NONE) {
        eng->free_slot = eng->slots[idx].next_free;
    } else {
        shm_slot_t *s = eng->nslots < SHM_SLOT_NONE
                            ? nixl_array_push(eng->slots, eng->nslots, eng->slot_cap)
                            : NULL;
        if (!s)
            return SHM_SLOT_NONE;
        idx = eng->nslots - 1;
        s->gen = 0;
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

/* ---- inbound connections (ev_lock held) ---- */

static void conn_drop_fds(shm_conn_t *conn)
{
    for (unsigned i = 0; i < conn->nxfd; i++)
        close(conn->xfd[i]);
    conn->nxfd = 0;
}

/* The initiator closed its end (we read end-of-file): nothing writes into its ring any more
 * (shm_ring.c, "Lifetime"), so the ring is reused; and everything else goes. */
static void conn_close(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    *conn->pprev = conn->next;
    if (conn->next)
        conn->next->pprev = conn->pprev;
    eng->nconns--;
    if (!conn->helo)
        eng->nconns_in--;
    if (conn->mode == SHM_MODE_PENDING)
        eng->npending--;
    close(conn->fd);
    shm_slot_free(eng, conn->slot);
    if (conn->ring)
        shm_ring_put(eng, conn->ring);
    shm_trust_forget(conn);
    conn_drop_fds(conn);
    free(conn->big);
    free(conn->name);
    free(conn);
}

/* We give up on a connection (a malformed frame). Without a ring it just closes. With one, the
 * initiator may still write into it: we stop reading and only shut our sending side, which the
 * initiator sees as the end of the connection; its close (our end-of-file) frees the ring. */
static void conn_fail(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    if (!conn->ring) {
        conn_close(eng, conn);
        return;
    }
    if (conn->zombie)
        return;
    shutdown(conn->fd, SHUT_WR);
    conn->zombie = true;
    if (conn->mode == SHM_MODE_PENDING)
        eng->npending--;
    conn->mode = SHM_MODE_IDLE;
    free(conn->big);
    conn->big = NULL;
    conn->rlen = 0;
}

/* Send a control frame: 1 sent, 0 not sent (no room), -1 partly sent (the stream is broken). */
static int send_ctl_fd(shm_conn_t *conn, uint32_t type, uint64_t a, uint64_t b, uint64_t c, int fd)
{
    uint8_t f[SHM_CTL_LEN];
    shm_put_frame32(f, SHM_CTL_MAGIC, type, a, b, c);
    ssize_t n = shm_send_fds(conn->fd, f, sizeof(f), &fd, fd >= 0 ? 1 : 0);
    return n == (ssize_t)sizeof(f) ? 1 : n <= 0 ? 0 : -1;
}

static int send_ctl(shm_conn_t *conn, uint32_t type, uint64_t a, uint64_t b, uint64_t c)
{
    return send_ctl_fd(conn, type, a, b, c, -1);
}

/* Watch the listener again, or stop watching it (ev_lock held). */
static void listen_watch(nixl_be_engine_t *eng, bool on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.u64 = eng->listen_data};
    epoll_ctl(eng->ep_fd, EPOLL_CTL_MOD, eng->listen_fd, &ev);
}

/*
 * accept() out of descriptors or memory leaves the listener readable: watched, it would wake
 * the thread at once, for ever. It is set aside for a backoff that doubles while the shortage
 * lasts (connections wait in the backlog meanwhile), and the failure is logged rate-limited.
 */
static void accept_back_off(nixl_be_engine_t *eng, int e)
{
    uint32_t b = eng->accept_backoff_ms ? eng->accept_backoff_ms * 2 : SHM_ACCEPT_BACKOFF_MIN_MS;
    eng->accept_backoff_ms = b > SHM_ACCEPT_BACKOFF_MAX_MS ? SHM_ACCEPT_BACKOFF_MAX_MS : b;
    eng->accept_resume_ms = nixl_now_ms() + eng->accept_backoff_ms;
    listen_watch(eng, false);
    static nixl_log_limit_t lim = NIXL_LOG_LIMIT_INIT;
    uint64_t rep;
    if (nixl_log_limit_pass(&lim, strerror(e), nixl_now_ns(), &rep))
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "accept on @%s: %s; retrying in up to %u ms (%llu times before)",
                    eng->info.sock_name, strerror(e), SHM_ACCEPT_BACKOFF_MAX_MS,
                    (unsigned long long)rep);
}

static void conn_service(nixl_be_engine_t *eng, shm_conn_t *conn);

/*
 * An initiator connects again only after closing its previous connection to us (disconnect,
 * then a new load: shm_peer.c), and numbers from 1 on the new one. So what the old one still
 * holds (ring records, socket bytes, its end-of-file) is all here, was sent first, and is
 * delivered now, before anything of the new one can be read. Connections of other engines in
 * that process are only read early, which is harmless.
 */
static void drain_predecessors(nixl_be_engine_t *eng, pid_t pid)
{
    for (shm_conn_t *c = eng->conns, *next; c; c = next) {
        next = c->next;
        if (c->cred_pid == pid && !c->zombie)
            conn_service(eng, c); /* may close it */
    }
}

static void accept_all(nixl_be_engine_t *eng)
{
    if (eng->accept_resume_ms)
        return; /* backing off */
    for (;;) {
        int fd = accept4(eng->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
                accept_back_off(eng, e);
            else if (e != EAGAIN)
                NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR, "accept on @%s: %s", eng->info.sock_name,
                            strerror(e));
            return;
        }
        eng->accept_backoff_ms = 0;
        shm_conn_t *conn = malloc(sizeof(*conn));
        if (conn && !shm_trust_accept(eng, fd, conn)) {
            free(conn);
            close(fd);
            continue;
        }
        pid_t cred_pid = conn ? conn->cred_pid : 0;
        if (conn)
            drain_predecessors(eng, cred_pid);
        uint64_t data = 0;
        uint32_t slot = conn ? shm_slot_add(eng, SHM_SLOT_CONN, conn, &data) : SHM_SLOT_NONE;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = data};
        if (slot == SHM_SLOT_NONE || epoll_ctl(eng->ep_in, EPOLL_CTL_ADD, fd, &ev) != 0) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR, "dropping an incoming connection: %s",
                        slot == SHM_SLOT_NONE ? "out of memory" : strerror(errno));
            if (slot != SHM_SLOT_NONE)
                shm_slot_free(eng, slot);
            free(conn);
            close(fd);
            continue;
        }
        memset(conn, 0, offsetof(shm_conn_t, rbuf));
        conn->cred_pid = cred_pid;
        conn->from_self = cred_pid == getpid();
        conn->fd = fd;
        conn->slot = slot;
        conn->ev_data = data;
        conn->next_seq = 1;
        conn->mode = SHM_MODE_IDLE;
        conn->next = eng->conns;
        conn->pprev = &eng->conns;
        if (eng->conns)
            eng->conns->pprev = &conn->next;
        eng->conns = conn;
        eng->nconns++;
        eng->nconns_in++;

        /* The offer (size 0: none), so that the initiator need not wait for one. */
        conn->ring = eng->ring_size ? shm_ring_get(eng) : NULL;
        shm_ringmem_t *r = conn->ring;
        int sent = send_ctl_fd(conn, SHM_CTL_RING, r ? (uint64_t)(uintptr_t)r->base : 0,
                               r ? r->size : 0, r ? shm_ring_rec_max(r->size) : 0, r ? r->fd : -1);
        if (sent == 0 && r) {
            shm_ring_put(eng, r); /* its address never left this process */
            conn->ring = NULL;
        } else if (sent < 0) {
            conn_fail(eng, conn);
        }
    }
}

/* A notification reaches the application only from the process of the peer it names. */
static void deliver(nixl_be_engine_t *eng, shm_conn_t *conn, const uint8_t *body,
                    uint32_t name_len, uint64_t msg_len)
{
    if (shm_trust_sender(eng, conn, (const char *)body, name_len))
        eng->host->notif(eng->host, (const char *)body, name_len, body + name_len,
                         (size_t)msg_len);
}

/* A notification frame: in sequence with the ring (shm_ring.c, "Order and loss"). */
static bool frame_notif(nixl_be_engine_t *eng, shm_conn_t *conn, const uint8_t *body,
                        uint32_t name_len, uint64_t msg_len, bool has_seq, uint64_t seq)
{
    if (has_seq) {
        if (!conn->helo) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                        "a numbered notification before SHMH; closing "
                        "the connection");
            return false;
        }
        bool blocked = false;
        if (!shm_ring_drain(eng, conn, seq, &blocked))
            return false;
        if (seq != conn->next_seq) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                        "notification %llu from '%.*s' arrived while %llu "
                        "was expected; closing the connection",
                        (unsigned long long)seq, (int)conn->name_len, conn->name,
                        (unsigned long long)conn->next_seq);
            return false;
        }
    } else if (conn->helo) {
        NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                    "an unnumbered notification after SHMH; closing the "
                    "connection");
        return false;
    }
    deliver(eng, conn, body, name_len, msg_len);
    conn->next_seq++;
    return true;
}

/* SHMH: the initiator uses the ring. Its socket moves to the event thread's set. */
static bool frame_helo(nixl_be_engine_t *eng, shm_conn_t *conn, const uint8_t *name,
                       uint32_t len)
{
    if (conn->helo || !conn->ring) {
        NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR, "unexpected SHMH (%s); closing the connection",
                    conn->helo ? "twice" : "no ring was offered");
        return false;
    }
    conn->name = malloc(len);
    if (!conn->name) {
        NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR, "out of memory; closing a connection");
        return false;
    }
    memcpy(conn->name, name, len);
    conn->name_len = len;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = conn->ev_data};
    epoll_ctl(eng->ep_in, EPOLL_CTL_DEL, conn->fd, NULL);
    conn->helo = true;
    eng->nconns_in--;
    if (epoll_ctl(eng->ep_fd, EPOLL_CTL_ADD, conn->fd, &ev) != 0) {
        NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR, "epoll_ctl: %s; closing a connection",
                    strerror(errno));
        return false;
    }
    /* The initiator starts with doorbells on, which IDLE means; POLL turns them off. */
    if (eng->polling) {
        conn->mode = SHM_MODE_POLLED;
        if (send_ctl(conn, SHM_CTL_POLL, 0, 0, 0) < 0)
            return false;
    }
    return true;
}

static void frame_ack(nixl_be_engine_t *eng, shm_conn_t *conn, uint64_t gen)
{
    /* An older generation, or one overtaken by POLL, changes nothing. The ring is drained
     * after the frames read in this round (conn_read). */
    if (conn->mode == SHM_MODE_PENDING && gen == conn->gen) {
        conn->mode = SHM_MODE_IDLE;
        eng->npending--;
    }
}

static bool malformed(nixl_be_engine_t *eng, uint32_t magic, uint32_t x, uint64_t y)
{
    NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                "malformed frame (magic 0x%08x, %u, %llu); closing the "
                "connection",
                magic, x, (unsigned long long)y);
    return false;
}

/* Handle every complete frame in rbuf; start a big notification if one does not fit. False
 * when the stream is malformed (the sender is not one of us, or is broken). */
static bool parse_frames(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    size_t pos = 0;
    bool ok = true;
    while (ok && conn->rlen - pos >= SHM_FRAME_HDR) {
        const uint8_t *h = conn->rbuf + pos;
        size_t avail = conn->rlen - pos;
        uint32_t magic = shm_get_u32(h), x = shm_get_u32(h + 4);
        uint64_t y = shm_get_u64(h + 8);
        if (magic == SHM_FRAME_BELL) {
            pos += SHM_FRAME_HDR; /* the ring is drained after this round */
            continue;
        }
        if (magic == SHM_FRAME_ACK) {
            frame_ack(eng, conn, y);
            pos += SHM_FRAME_HDR;
            continue;
        }
        if (magic == SHM_FRAME_XRING) {
            /* A staging ring (shm_xchan.c): its memfd and socket came with these bytes. */
            if (x != 0 || conn->nxfd != 2) {
                ok = malformed(eng, magic, x, y);
                break;
            }
            shm_xsrv_start(eng, conn->xfd[0], conn->xfd[1], y);
            conn->nxfd = 0;
            pos += SHM_FRAME_HDR;
            continue;
        }
        if (magic == SHM_FRAME_MAPREQ) {
            /* A peer asks for the file of a region (shm_map.c), the answer's socket attached. */
            if (x != 0 || conn->nxfd != 1) {
                ok = malformed(eng, magic, x, y);
                break;
            }
            shm_map_serve(eng, conn->xfd[0], y);
            conn->nxfd = 0;
            pos += SHM_FRAME_HDR;
            continue;
        }
        if (magic == SHM_FRAME_HELO) {
            if (x == 0 || x > SHM_NAME_MAX) {
                ok = malformed(eng, magic, x, y);
                break;
            }
            if (avail < SHM_FRAME_HDR + x)
                break;
            ok = frame_helo(eng, conn, h + SHM_FRAME_HDR, x);
            pos += SHM_FRAME_HDR + x;
            continue;
        }
        bool has_seq = magic == SHM_FRAME_SEQ;
        size_t hlen = has_seq ? SHM_FRAME_SEQ_HDR : SHM_FRAME_HDR;
        if ((!has_seq && magic != SHM_FRAME_MAGIC) || x == 0 || x > SHM_NAME_MAX ||
            y > SHM_NOTIF_MAX) {
            ok = malformed(eng, magic, x, y);
            break;
        }
        if (avail < hlen)
            break;
        uint64_t seq = has_seq ? shm_get_u64(h + 16) : 0;
        size_t body = x + (size_t)y;
        if (avail - hlen >= body) {
            ok = frame_notif(eng, conn, h + hlen, x, y, has_seq, seq);
            pos += hlen + body;
            continue;
        }
        if (hlen + body > SHM_RBUF) {
            conn->big = malloc(body);
            if (!conn->big) {
                NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                            "out of memory for a %zu-byte notification; "
                            "closing the connection",
                            body);
                ok = false;
                break;
            }
            conn->big_need = body;
            conn->big_name_len = x;
            conn->big_has_seq = has_seq;
            conn->big_seq = seq;
            conn->big_have = avail - hlen;
            memcpy(conn->big, h + hlen, conn->big_have);
            pos = conn->rlen;
        }
        break;
    }
    if (!ok)
        return false;
    memmove(conn->rbuf, conn->rbuf + pos, conn->rlen - pos);
    conn->rlen -= pos;
    return true;
}

/* A connection we gave up on: discard what comes until the initiator closes. */
static int zombie_read(shm_conn_t *conn)
{
    for (;;) {
        ssize_t n = recv(conn->fd, conn->rbuf, SHM_RBUF, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return CONN_OK;
        return CONN_EOF; /* end-of-file, or an error: the initiator's end is closed */
    }
}

/* recv() that keeps descriptors passed with the data (a staging ring's: SHMX), at most two;
 * the kernel closes any beyond the buffer. They belong to the next SHMX frame; any held from
 * before are dropped. */
static ssize_t conn_recv(shm_conn_t *conn, void *dst, size_t want)
{
    int fds[2];
    unsigned nfds;
    ssize_t n = shm_recv_fds(conn->fd, dst, want, fds, 2, &nfds);
    if (nfds) {
        conn_drop_fds(conn);
        memcpy(conn->xfd, fds, nfds * sizeof(int));
        conn->nxfd = nfds;
    }
    return n;
}

/* Read what is there, then drain the ring: CONN_OK, CONN_EOF (the initiator closed: read
 * everything), CONN_BAD (malformed). */
static int conn_read(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    if (conn->zombie)
        return zombie_read(conn);
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
        ssize_t n = conn_recv(conn, dst, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            if (n < 0)
                NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "reading notifications: %s", strerror(errno));
            if (conn->rlen || conn->big)
                NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                            "a sender closed its connection in the "
                            "middle of a notification; it is dropped");
            return CONN_EOF;
        }
        budget -= (size_t)n < budget ? (size_t)n : budget;
        if (conn->big) {
            conn->big_have += (size_t)n;
            if (conn->big_have == conn->big_need) {
                bool ok = frame_notif(eng, conn, conn->big, conn->big_name_len,
                                      conn->big_need - conn->big_name_len, conn->big_has_seq,
                                      conn->big_seq);
                free(conn->big);
                conn->big = NULL;
                if (!ok)
                    return CONN_BAD;
            }
            continue;
        }
        conn->rlen += (size_t)n;
        if (!parse_frames(eng, conn))
            return CONN_BAD;
        /* A short read drained the socket: skip the recv that would say EAGAIN (level
         * triggering brings us back when more arrives). */
        if ((size_t)n < want && !conn->big)
            break;
    }
    bool blocked = false;
    return shm_ring_drain(eng, conn, UINT64_MAX, &blocked) ? CONN_OK : CONN_BAD;
}

/* The initiator closed: deliver what its ring still holds. A gap now is final (a notification
 * that was still in its send queue when it closed is lost, as it always was): say so, and
 * deliver the rest rather than hold it back for ever. */
static void conn_last_records(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    for (;;) {
        bool blocked = false;
        if (!shm_ring_drain(eng, conn, UINT64_MAX, &blocked) || !blocked || !conn->helo)
            return;
        uint8_t h[SHM_REC_HDR];
        size_t off = (size_t)(conn->tail & (conn->ring->size - 1));
        if (off + SHM_REC_HDR <= conn->ring->size) {
            memcpy(h, conn->ring->base + off, SHM_REC_HDR);
        } else {
            size_t first = conn->ring->size - off;
            memcpy(h, conn->ring->base + off, first);
            memcpy(h + first, conn->ring->base, SHM_REC_HDR - first);
        }
        uint64_t seq = shm_get_u64(h + 8);
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "'%.*s' closed its connection with notifications "
                    "%llu to %llu unsent; they are lost",
                    (int)conn->name_len, conn->name, (unsigned long long)conn->next_seq,
                    (unsigned long long)seq - 1);
        conn->next_seq = seq;
    }
}

static void conn_service(nixl_be_engine_t *eng, shm_conn_t *conn)
{
    switch (conn_read(eng, conn)) {
    case CONN_EOF:
        if (!conn->zombie)
            conn_last_records(eng, conn);
        conn_close(eng, conn);
        break;
    case CONN_BAD:
        conn_fail(eng, conn);
        break;
    default:
        break;
    }
}

/* ---- outgoing connections: hang-ups, writability, and the target's control frames ---- */

static void peer_event(nixl_be_engine_t *eng, shm_peer_t *peer, uint32_t events)
{
    bool gone = (events & (EPOLLHUP | EPOLLERR)) != 0;
    if (!gone && (events & (EPOLLIN | EPOLLRDHUP))) {
        uint8_t buf[512];
        for (;;) {
            int rfd;
            unsigned nfd;
            ssize_t n = shm_recv_fds(peer->fd, buf, sizeof(buf), &rfd, 1, &nfd);
            if (nfd) {
                /* the ring's memfd, with the offer: the RING frame takes it */
                pthread_mutex_lock(&peer->lock);
                if (peer->ring_fd_rx >= 0)
                    close(peer->ring_fd_rx);
                peer->ring_fd_rx = rfd;
                pthread_mutex_unlock(&peer->lock);
            }
            if (n > 0) {
                bool bad = false;
                pthread_mutex_lock(&peer->lock);
                shm_peer_ctl_input(eng, peer, buf, (size_t)n, &bad);
                pthread_mutex_unlock(&peer->lock);
                if (bad) {
                    gone = true;
                    break;
                }
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            gone = n == 0 || errno != EAGAIN;
            break;
        }
    }
    if (!gone && (events & EPOLLOUT)) {
        pthread_mutex_lock(&peer->lock);
        shm_peer_flush(eng, peer);
        pthread_mutex_unlock(&peer->lock);
    }
    if (gone || atomic_load(&peer->dead)) {
        atomic_store(&peer->dead, true);
        NIXL_BE_LOG(eng->host, NIXL_LOG_INFO, "agent '%s' (pid %d) disconnected", peer->name,
                    (int)peer->pid);
        shm_map_release_peer(peer); /* its files' memory is not kept alive by us */
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
            conn_service(eng, s->obj);
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
        NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR, "epoll_ctl on the inbound set: %s", strerror(errno));
}

/* Polling started or stopped: tell the ring users (shm_ring.c, "Wake-ups"). ev_lock held. */
static void set_polling(nixl_be_engine_t *eng, bool on)
{
    set_inbound_attached(eng, !on);
    eng->polling = on;
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "'%s': progress() %s", eng->name,
                on ? "is being called: rings are polled" : "stopped: initiators ring doorbells");
    uint64_t now = nixl_now_ms();
    for (shm_conn_t *c = eng->conns, *next; c; c = next) {
        next = c->next;
        if (!c->helo || c->zombie)
            continue;
        if (on) {
            if (c->mode == SHM_MODE_POLLED)
                continue;
            if (c->mode == SHM_MODE_PENDING)
                eng->npending--;
            c->mode = SHM_MODE_POLLED;
            /* Unsent is harmless: the initiator keeps ringing, which costs wake-ups only. */
            if (send_ctl(c, SHM_CTL_POLL, 0, 0, 0) < 0)
                conn_fail(eng, c);
        } else if (c->mode == SHM_MODE_POLLED) {
            c->gen++;
            c->mode = SHM_MODE_PENDING;
            c->pending_since_ms = now;
            eng->npending++;
            int sent = send_ctl(c, SHM_CTL_IDLE, c->gen, 0, 0);
            if (sent < 0)
                conn_fail(eng, c);
            else
                c->idle_unsent = sent == 0;
        }
    }
}

/* Until their initiators acknowledge IDLE, their rings are ours to poll. ev_lock held. Returns
 * whether every one of them has kept us waiting for long. */
static bool service_pending(nixl_be_engine_t *eng)
{
    uint64_t now = nixl_now_ms();
    bool slow = true;
    for (shm_conn_t *c = eng->conns, *next; c; c = next) {
        next = c->next;
        if (c->mode != SHM_MODE_PENDING)
            continue;
        if (c->idle_unsent) {
            int sent = send_ctl(c, SHM_CTL_IDLE, c->gen, 0, 0);
            if (sent < 0) {
                conn_fail(eng, c);
                continue;
            }
            c->idle_unsent = sent == 0;
        }
        if (now - c->pending_since_ms < SHM_PENDING_PATIENCE_MS)
            slow = false;
        bool blocked = false;
        if (!shm_ring_drain(eng, c, UINT64_MAX, &blocked))
            conn_fail(eng, c);
        else if (blocked)
            conn_service(eng, c);
    }
    return slow;
}

static void *event_main(void *arg)
{
    nixl_be_engine_t *eng = arg;
    struct epoll_event evs[SHM_MAX_EVENTS];
    uint64_t seen = atomic_load_explicit(&eng->progress_calls, memory_order_relaxed);
    uint64_t last_poll_ms = 0;
    int timeout = -1;
    for (;;) {
        int n = epoll_wait(eng->ep_fd, evs, SHM_MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR, "event thread stops: epoll_wait: %s",
                        strerror(errno));
            return NULL;
        }
        /* A thread spinning in progress() can keep ev_lock for long stretches (mutexes do
         * not queue): say that we wait, and progress() does the socket work itself. */
        if (n > 0)
            atomic_store_explicit(&eng->ev_waiting, true, memory_order_relaxed);
        pthread_mutex_lock(&eng->ev_lock);
        atomic_store_explicit(&eng->ev_waiting, false, memory_order_relaxed);
        if (n > 0 && handle_events(eng, evs, n)) {
            pthread_mutex_unlock(&eng->ev_lock);
            return NULL;
        }
        uint64_t calls = atomic_load_explicit(&eng->progress_calls, memory_order_relaxed);
        if (calls != seen) {
            last_poll_ms = nixl_now_ms();
            if (!eng->polling)
                set_polling(eng, true); /* the user polls: leave sockets and rings to it */
        } else if (eng->polling && nixl_now_ms() - last_poll_ms >= SHM_POLL_IDLE_MS) {
            set_polling(eng, false); /* polling stopped: read them ourselves again */
        }
        seen = calls;
        bool slow = eng->npending ? service_pending(eng) : false;
        if (eng->npending)
            timeout = slow ? SHM_PENDING_SLOW_MS : SHM_PENDING_POLL_MS;
        else
            timeout = eng->polling ? SHM_POLL_IDLE_MS : -1;
        if (eng->accept_resume_ms) {
            uint64_t now = nixl_now_ms();
            if (now >= eng->accept_resume_ms) {
                eng->accept_resume_ms = 0;
                listen_watch(eng, true); /* level-triggered: reports what waits */
            } else if (timeout < 0 || (uint64_t)timeout > eng->accept_resume_ms - now) {
                timeout = (int)(eng->accept_resume_ms - now);
            }
        }
        pthread_mutex_unlock(&eng->ev_lock);
    }
}

nixl_status_t shm_progress(nixl_be_engine_t *eng)
{
    atomic_fetch_add_explicit(&eng->progress_calls, 1, memory_order_relaxed);
    /* The event thread has something and waits for the lock we are about to take: most
     * likely a frame on a ring user's socket, or a new connection. Do it here. */
    bool help = atomic_load_explicit(&eng->ev_waiting, memory_order_relaxed);
    pthread_mutex_lock(&eng->ev_lock);
    if (help)
        accept_all(eng);
    /* Rings first: a byte load each. Their sockets are the event thread's, unless a record
     * waits for a message still in its socket (or the event thread waits for us). */
    bool direct = eng->nconns_in <= SHM_DIRECT_POLL_MAX;
    for (shm_conn_t *c = eng->conns, *next; c; c = next) {
        next = c->next;
        if (c->helo) {
            if (c->zombie)
                continue;
            bool blocked = false;
            if (!shm_ring_drain(eng, c, UINT64_MAX, &blocked))
                conn_fail(eng, c);
            else if (blocked || help)
                conn_service(eng, c);
        } else if (direct) {
            conn_service(eng, c);
        }
    }
    if (!direct)
        drain_inbound(eng);
    pthread_mutex_unlock(&eng->ev_lock);
    shm_xsrv_poll(eng); /* staging jobs, while their servers are parked (shm_xsrv.c) */
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
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "cannot bind a unix socket: %s",
                           strerror(errno));
    eng->ep_fd = epoll_create1(EPOLL_CLOEXEC);
    eng->ep_in = epoll_create1(EPOLL_CLOEXEC);
    eng->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (eng->ep_fd < 0 || eng->ep_in < 0 || eng->wake_fd < 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "epoll/eventfd: %s", strerror(errno));
    if (watch(eng, eng->listen_fd, SHM_SLOT_LISTEN, &eng->listen_data) != NIXL_SUCCESS ||
        watch(eng, eng->wake_fd, SHM_SLOT_WAKE, NULL) != NIXL_SUCCESS ||
        watch(eng, eng->ep_in, SHM_SLOT_INBOUND, &eng->ep_in_data) != NIXL_SUCCESS)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "epoll_ctl: %s", strerror(errno));
    int rc = pthread_create(&eng->ev_thread, NULL, event_main, eng);
    if (rc != 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "cannot start the event thread: %s",
                           strerror(rc));
    eng->ev_started = true;
    return NIXL_SUCCESS;
}

/* Destroy: wait (bounded) for initiators to close, so that their rings can be freed; a ring
 * whose initiator does not close in time is retired (shm_ring.c, "Lifetime"). ev_lock held. */
static void linger_rings(nixl_be_engine_t *eng)
{
    uint64_t deadline = nixl_now_ms() + SHM_RING_LINGER_MS;
    struct pollfd *pfd = eng->nconns ? calloc(eng->nconns, sizeof(*pfd)) : NULL;
    shm_conn_t **who = eng->nconns ? calloc(eng->nconns, sizeof(*who)) : NULL;
    while (eng->conns && pfd && who) {
        uint64_t now = nixl_now_ms();
        if (now >= deadline)
            break;
        nfds_t n = 0;
        for (shm_conn_t *c = eng->conns; c; c = c->next) {
            pfd[n] = (struct pollfd){c->fd, POLLIN | POLLRDHUP, 0};
            who[n++] = c;
        }
        if (poll(pfd, n, (int)(deadline - now)) <= 0)
            continue;
        for (nfds_t i = 0; i < n; i++)
            if (pfd[i].revents && zombie_read(who[i]) == CONN_EOF)
                conn_close(eng, who[i]);
    }
    free(pfd);
    free(who);
    size_t retired = 0;
    while (eng->conns) {
        shm_conn_t *c = eng->conns;
        shm_ring_abandon(eng, c->ring);
        c->ring = NULL;
        conn_close(eng, c);
        retired++;
    }
    if (retired)
        NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                    "%zu initiator(s) did not close within %d ms; their "
                    "rings' address ranges stay reserved",
                    retired, SHM_RING_LINGER_MS);
}

/* Destroy: notifications still queued to live peers are sent first, within a bounded time
 * (gen_notif and post said SUCCESS; the peer would otherwise lose them, and with rings it
 * would see a hole instead of a lost tail). ev_lock held, the event thread stopped. */
static void flush_queues(nixl_be_engine_t *eng)
{
    uint64_t deadline = nixl_now_ms() + SHM_FLUSH_LINGER_MS;
    struct pollfd *pfd = calloc(eng->nslots ? eng->nslots : 1, sizeof(*pfd));
    shm_peer_t **who = calloc(eng->nslots ? eng->nslots : 1, sizeof(*who));
    while (pfd && who) {
        nfds_t n = 0;
        for (uint32_t i = 0; i < eng->nslots; i++) {
            if (eng->slots[i].kind != SHM_SLOT_PEER)
                continue;
            shm_peer_t *peer = eng->slots[i].obj;
            pthread_mutex_lock(&peer->lock);
            if (peer->q_head && peer->fd >= 0 && !atomic_load(&peer->dead)) {
                pfd[n] = (struct pollfd){peer->fd, POLLOUT, 0};
                who[n++] = peer;
            }
            pthread_mutex_unlock(&peer->lock);
        }
        uint64_t now = nixl_now_ms();
        if (n == 0 || now >= deadline) {
            for (nfds_t i = 0; i < n; i++)
                NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                            "%zu bytes of notifications to '%s' are "
                            "dropped: it did not read them within %d ms",
                            who[i]->q_bytes, who[i]->name, SHM_FLUSH_LINGER_MS);
            break;
        }
        if (poll(pfd, n, (int)(deadline - now)) <= 0)
            continue;
        for (nfds_t i = 0; i < n; i++) {
            if (!pfd[i].revents)
                continue;
            pthread_mutex_lock(&who[i]->lock);
            if (pfd[i].revents & (POLLHUP | POLLERR))
                atomic_store(&who[i]->dead, true);
            else
                shm_peer_flush(eng, who[i]);
            pthread_mutex_unlock(&who[i]->lock);
        }
    }
    free(pfd);
    free(who);
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
    flush_queues(eng);
    for (uint32_t i = 0; i < eng->nslots; i++) {
        shm_slot_t *s = &eng->slots[i];
        if (s->kind == SHM_SLOT_PEER)
            shm_peer_close_conn(eng, s->obj);
    }
    /* Without a ring a connection just closes; with one we stop reading it and wait for the
     * initiator to close its end. */
    for (shm_conn_t *c = eng->conns, *next; c; c = next) {
        next = c->next;
        if (!c->ring) {
            conn_close(eng, c);
        } else if (!c->zombie) {
            shutdown(c->fd, SHUT_WR);
            c->zombie = true;
        }
    }
    linger_rings(eng);
    shm_ring_pool_free(eng);
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
