/*
 * shm_ring.c - notification rings: a notification crosses to a same-host peer inside the
 * process_vm_writev that moves the transfer's data, instead of over the socket.
 *
 * Why. On a small VM a 4 KiB WRITE with a notification cost ~2.3 us of process_vm_writev plus
 * ~2-3 us of socket send and recv. Here the target gives each inbound connection a ring in its
 * own memory; the initiator appends the notification record to the data's iovec list, so the
 * notification costs a few bytes more in a syscall it makes anyway, and progress() on the
 * target finds it with a memory read.
 *
 * Layout. A ring is `size` bytes (a power of two) of a sealed memfd mapped in the target
 * (anonymous memory where memfd_create fails), nothing else: no shared head or tail word (see
 * A3). Records are 8-byte aligned:
 *     u8 commit (SHM_REC_COMMIT when complete, 0 when free) | u8 type | u16 0 |
 *     u32 payload length | u64 sequence number | payload | zero padding to 8 bytes
 * and may wrap around the end (only the commit byte, at an 8-aligned offset, never does).
 * Every byte that is not part of a live record is zero.
 *
 * Assumptions (hence x86-64 only, SHM_RING_SUPPORTED; elsewhere the socket carries all):
 *  A1. process_vm_writev copies the remote iovecs in order, each piece by its own call of the
 *      kernel's copy routine (mm/process_vm_access.c: for each remote iovec, for each page,
 *      copy_page_from_iter): every store of iovec k precedes, in program order on the calling
 *      thread's CPU, every store of iovec k+1. (A thread that migrates in between goes
 *      through a context switch, which orders everything.) A call that returns n bytes wrote
 *      exactly the first n bytes of the list; a call that returns less than the total did not
 *      write the last byte.
 *  A2. x86-64 is TSO: one CPU's stores become visible to others in program order, loads are
 *      not reordered with loads, and the stores of a fast-string instruction (rep movsb), which
 *      may be reordered among themselves, are not reordered with stores of other instructions
 *      (Intel SDM vol. 3A, "Memory ordering for string operations"; AMD APM vol. 2, 7.3).
 *      Caches are physically tagged: the kernel's alias of a page orders like ours.
 *  A3. Nothing more: a multi-byte value copied by the kernel may be seen torn (rep movsb may
 *      store its bytes in any order). So no fact crosses between the processes as a multi-byte
 *      word. Every signal is one byte (a commit byte), and multi-byte fields are read only
 *      after a commit byte written later (A1, A2) vouches for them.
 *
 * Writing (initiator, peer->lock held, its socket open): one process_vm_writev with the iovecs
 *     [transfer data ...] [record minus its first byte: 1 iovec, or 2 if it wraps] [commit]
 * By A1 and A2, once the commit byte is visible, the data and the whole record are. If the
 * call returns less than the total, the commit byte was not written: the record is not there
 * (its bytes lie in free space, where the next record overwrites them; the target never reads
 * past a zero commit byte).
 *
 * Reading (target, ev_lock held), at its private position `tail`: an acquire load of the
 * commit byte; 0: nothing yet. Otherwise the header and payload are complete (A2: loads in
 * order), checked (type, length), delivered when in sequence (below); then the record's other
 * bytes are zeroed, then its commit byte (a release store: by A2 the zeroes are visible
 * first), and tail moves on. Records are consumed strictly in ring order.
 *
 * Room (initiator). It never reads a tail word (A3). It knows `done`, a position before which
 * everything was consumed and zeroed, and remembers the start and end of a few records written
 * since (one every size/16 bytes, and always the newest). When a record does not fit in
 * size - (head - done), it reads those records' commit bytes with one process_vm_readv (one
 * byte per iovec, which cannot tear). A zero means the target consumed that record, zeroed it
 * (the commit byte last, A2) and every record before it (ring order): `done` moves to the end
 * of the newest such record. The zero cannot be a newer record's: position p + size is written
 * only after p is below `done`. Reading a stale non-zero byte only delays reuse. Free space
 * must be zero because a later record may start at any 8-aligned offset, inside an older
 * payload, and the target trusts a non-zero byte at its tail. The initiator writes only below
 * done + size, and the target's zeroes of that space were visible before the commit byte that
 * told the initiator (A2), so a zero store never lands on a newer record.
 *
 * Order and loss. Each connection numbers its notifications 1, 2, ... (peer->seq). A number is
 * taken only in the lock hold that either commits the record to the ring or hands the whole
 * frame to the socket (sent, or queued in the connection's FIFO send queue): numbers are dense,
 * and n < m means n was committed or queued first. Ring records lie in ring order = number
 * order. The target delivers next_seq, next_seq + 1, ... only:
 *  - a ring record numbered next_seq is delivered;
 *  - a ring record numbered r > next_seq: next_seq .. r-1 are not before it in the ring, so
 *    they went to the socket, before r was written; they are in the socket or in the
 *    initiator's send queue, which its event thread flushes in order. The record stays in place
 *    until the socket has delivered them ("blocked": progress() reads that socket, and the event
 *    thread watches it anyway);
 *  - a socket message numbered s: every ring record below s was committed before s was sent
 *    (process_vm_writev is synchronous and precedes the send in the same thread). Having read s
 *    from the socket (the kernel's socket locks order the send before our recv), those records
 *    are visible: the ring is drained below s first, then s must be next_seq;
 *  - frames without a number (SHMN: sent before the initiator adopted the ring, and by peers
 *    without rings) precede every numbered message in the stream and are numbered by arrival.
 * Numbers start again at 1 on a new connection. An initiator connects again only after it
 * closed its previous connection, so at accept() the old one's records and frames are all
 * visible, and they are delivered then (shm_event.c, drain_predecessors).
 * Nothing is lost: every number the initiator used is committed in the ring or travelling on
 * the socket, and the target stops only at a zero commit byte (the ring holds nothing more) or
 * at a gap (filled from the socket). Nothing is duplicated: a delivered record is zeroed and
 * passed; socket bytes are read once. Any other number is a protocol error (the connection is
 * given up, see lifetime). Threads of the initiator are serialised by peer->lock, so each
 * thread's notifications keep their order.
 *
 * Room runs out. A record larger than rec_max (size / 8), or one that does not fit after
 * reclaiming, goes to the socket as an SHMQ frame with its number: never lost, never silent.
 *
 * Wake-ups (shm_event.c). progress() reads every ring on every call, a byte load per
 * connection. When nobody calls it, the event thread must see records, without spinning: the
 * initiator follows each record with a doorbell frame (SHMD) on the socket while its
 * `doorbell` flag is set. The target drives the flag with control frames: POLL clears it
 * (progress() is being called); IDLE(g) sets it and the initiator acknowledges with ACK(g) in
 * the same lock hold. After sending IDLE(g) the target's event thread polls the ring every
 * millisecond until ACK(g) arrives, then drains once more and sleeps. A record written before
 * the initiator handled IDLE(g) was committed before ACK(g) was sent, so that last drain (or an
 * earlier poll) sees it; a record written after rings the doorbell, until a POLL, which the
 * target sends only when progress() is called again. An ACK of an older generation, or one
 * overtaken by a POLL, is ignored; a needless doorbell costs one wake-up. The doorbell is
 * skipped while the send queue is not empty: those bytes will wake the target, and it drains
 * the ring after every frame it reads. While the flag is set, a notification without data goes
 * to the socket instead of the ring (one syscall rather than a record and a doorbell; its
 * number keeps it in order); a WRITE's record still rides in the data's syscall.
 *
 * Mapped rings. The offer carries the ring's memfd (SCM_RIGHTS), sealed against shrinking
 * and growing; an initiator of ours that finds it a file of exactly the offered size sealed
 * against shrinking maps it. A record without data (gen_notif, a READ's notification, every
 * record of a staged peer) is then written with plain stores, in the order of the iovec list
 * above: the record minus its first byte, an sfence (memcpy may use non-temporal stores), and
 * the commit byte by a release store. That is A1's order by A2, so the reading side and its
 * proofs do not change; and a record with data still rides in the data's process_vm_writev
 * (from one thread under peer->lock, so records of both kinds keep ring order). Room is
 * learned from the commit bytes by acquire loads instead of process_vm_readv. Why: a
 * notification without data cost a process_vm_writev (about 2 us on a small VM), and a peer
 * that cannot use cross-memory attach sent every notification over the socket (a sendmsg, a
 * recvmsg on the target, often an event-thread wake-up); now neither makes a system call while
 * the target polls. The mapping goes (munmap) under peer->lock before the socket closes, and a
 * process that dies loses its mappings before its files, so end-of-file still means no more
 * writes; memfd rings are not reused all the same (a forked child does not inherit the mapping,
 * MADV_DONTFORK, but a fresh file per connection costs a few system calls and settles it).
 *
 * Lifetime. The initiator writes into our memory: freeing or reusing a ring while it might still
 * write would corrupt whatever gets the memory next. It writes only under peer->lock with its
 * socket open, and closes the socket under the same lock, and it never shuts its socket down
 * for writing. So end-of-file on the connection means every copy of the initiator's socket is
 * closed: no write is in flight or will come (a process that dies releases its files after all
 * its threads left their syscalls). Only then is the ring zeroed (MADV_DONTNEED) and kept for
 * the next connection, or unmapped. When we give up first (a malformed frame) we only
 * shutdown(SHUT_WR): the initiator sees end-of-file, stops, closes, and we wait for that. At
 * engine destroy we do the same and wait up to SHM_RING_LINGER_MS; a ring whose initiator has
 * not closed by then is replaced by a PROT_NONE mapping at the same address: its pages are
 * freed, the address range stays reserved so nothing else is ever placed there, and a late
 * write fails with EFAULT. Only address space is lost, and only for such stragglers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shm_priv.h"

/* ---- the target's side: ring memory ---- */

/* A sealed memfd of the ring's size, mapped: the initiator can map it too. -1 with errno. */
static int ring_memfd(shm_ringmem_t *r)
{
    int fd = memfd_create("nixl-shm-notif", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    /* Sealed, so that the initiator (which gets the descriptor) can never cut the file under
     * our reads (SIGBUS). */
    if (ftruncate(fd, (off_t)r->size) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r->base == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

shm_ringmem_t *shm_ring_get(nixl_be_engine_t *eng)
{
    shm_ringmem_t *r = eng->ring_pool;
    if (r) {
        eng->ring_pool = r->next;
        eng->ring_pool_len--;
        r->next = NULL;
        return r;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->size = eng->ring_size;
    r->fd = ring_memfd(r);
    if (r->fd < 0 && !eng->cma_why[0]) {
        /* No memfd here: anonymous memory, written by cross-memory attach only. */
        r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else if (r->fd < 0) {
        r->base = MAP_FAILED; /* and peers cannot write ours by cross-memory attach */
    }
    if (r->base == MAP_FAILED) {
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "cannot map a %zu-byte notification ring (%s); that "
                    "connection uses the socket only",
                    r->size, strerror(errno));
        free(r);
        return NULL;
    }
    /* A child of ours has no business with it, and copy-on-write after a fork would only make
     * the next records slower. */
    madvise(r->base, r->size, MADV_DONTFORK);
    return r;
}

/* Only once no initiator can write into it (see "Lifetime"). A memfd ring is never reused:
 * its initiator had the file, so a fresh one is cheaper than an argument about its mapping. */
void shm_ring_put(nixl_be_engine_t *eng, shm_ringmem_t *r)
{
    if (r->fd < 0 && eng->ring_pool_len < SHM_RING_POOL) {
        /* Private anonymous pages read as zero after this, and stop using memory. */
        if (madvise(r->base, r->size, MADV_DONTNEED) != 0)
            memset(r->base, 0, r->size);
        r->next = eng->ring_pool;
        eng->ring_pool = r;
        eng->ring_pool_len++;
        return;
    }
    munmap(r->base, r->size);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

/* An initiator may still write into it: keep the address range reserved forever. */
void shm_ring_abandon(nixl_be_engine_t *eng, shm_ringmem_t *r)
{
    if (!r)
        return;
    void *p = mmap(r->base, r->size, PROT_NONE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "cannot retire a notification ring (%s); it stays "
                    "mapped",
                    strerror(errno));
    else
        NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                    "a %zu-byte notification ring at %p is retired "
                    "(its initiator did not close in time); its address range stays reserved",
                    r->size, (void *)r->base);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

void shm_ring_pool_free(nixl_be_engine_t *eng)
{
    while (eng->ring_pool) {
        shm_ringmem_t *r = eng->ring_pool;
        eng->ring_pool = r->next;
        munmap(r->base, r->size);
        free(r);
    }
    eng->ring_pool_len = 0;
}

/* ---- the target's side: reading records ---- */

static void ring_copy_out(const shm_ringmem_t *r, uint64_t pos, void *dst, size_t len)
{
    size_t off = (size_t)(pos & (r->size - 1)), first = r->size - off;
    if (len <= first) {
        memcpy(dst, r->base + off, len);
    } else {
        memcpy(dst, r->base + off, first);
        memcpy((uint8_t *)dst + first, r->base, len - first);
    }
}

static void ring_zero(const shm_ringmem_t *r, uint64_t pos, size_t len)
{
    size_t off = (size_t)(pos & (r->size - 1)), first = r->size - off;
    if (len <= first) {
        memset(r->base + off, 0, len);
    } else {
        memset(r->base + off, 0, first);
        memset(r->base, 0, len - first);
    }
}

bool shm_ring_drain(nixl_be_engine_t *eng, shm_conn_t *conn, uint64_t upto, bool *blocked)
{
    shm_ringmem_t *r = conn->ring;
    if (!r || conn->zombie)
        return true;
    uint64_t mask = r->size - 1, rec_max = shm_ring_rec_max(r->size);
    for (;;) {
        uint8_t *commit = r->base + (conn->tail & mask);
        uint8_t c = __atomic_load_n(commit, __ATOMIC_ACQUIRE);
        if (c == 0)
            return true;
        if (c != SHM_REC_COMMIT) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                        "notification ring: bad commit byte 0x%02x at "
                        "position %llu",
                        c, (unsigned long long)conn->tail);
            return false;
        }
        if (!conn->helo) {
            /* Its writer sent SHMH (its name) before this record: it is in the socket. */
            *blocked = true;
            return true;
        }
        uint8_t h[SHM_REC_HDR];
        ring_copy_out(r, conn->tail, h, sizeof(h));
        uint32_t len = shm_get_u32(h + 4);
        uint64_t seq = shm_get_u64(h + 8);
        uint64_t rl = shm_rec_len(len);
        if (h[1] != SHM_REC_NOTIF || rl > rec_max) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                        "notification ring: bad record (type %u, %u "
                        "bytes) at position %llu",
                        h[1], len, (unsigned long long)conn->tail);
            return false;
        }
        if (seq >= upto)
            return true;
        if (seq != conn->next_seq) {
            if (seq > conn->next_seq) {
                *blocked = true; /* next_seq .. seq-1 are in the socket */
                return true;
            }
            NIXL_BE_LOG(eng->host, NIXL_LOG_ERROR,
                        "notification ring: record %llu again (expected "
                        "%llu)",
                        (unsigned long long)seq, (unsigned long long)conn->next_seq);
            return false;
        }
        uint64_t poff = (conn->tail + SHM_REC_HDR) & mask;
        const uint8_t *msg = r->base + poff;
        if (poff + len > r->size) {
            ring_copy_out(r, conn->tail + SHM_REC_HDR, eng->scratch, len);
            msg = eng->scratch;
        }
        if (shm_trust_sender(eng, conn, conn->name, conn->name_len))
            eng->host->notif(eng->host, conn->name, conn->name_len, msg, len);
        ring_zero(r, conn->tail + 1, (size_t)rl - 1);
        __atomic_store_n(commit, (uint8_t)0, __ATOMIC_RELEASE);
        conn->tail += rl;
        conn->next_seq++;
    }
}

/* ---- the initiator's side ---- */

/* Map the target's ring from its memfd: NULL (and why) unless it is a file of exactly the
 * offered size, sealed against shrinking (so that it can never be cut under our stores). */
static uint8_t *txring_map(int fd, uint64_t size, const char **why)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != size || seals < 0 ||
        !(seals & F_SEAL_SHRINK)) {
        *why = "not a memfd of the offered size sealed against shrinking";
        return NULL;
    }
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        *why = "mmap failed";
        return NULL;
    }
    madvise(m, size, MADV_DONTFORK); /* a child of ours must not write into it */
    return m;
}

void shm_txring_off(shm_peer_t *peer)
{
    if (peer->ring.map)
        munmap(peer->ring.map, peer->ring.size);
    memset(&peer->ring, 0, sizeof(peer->ring));
}

void shm_txring_enable(nixl_be_engine_t *eng, shm_peer_t *peer, uint64_t addr, uint64_t size,
                       uint64_t rec_max)
{
    int fd = peer->ring_fd_rx; /* the ring's memfd came with this frame, if the target has one */
    peer->ring_fd_rx = -1;
    bool staged = atomic_load(&peer->staged);
    if (!SHM_RING_SUPPORTED || peer->seq_mode || peer->fd < 0 || size == 0 || (staged && fd < 0)) {
        /* not on this architecture, already set up, none offered, or staged (no cross-memory
         * attach) and not mappable: socket only */
        if (fd >= 0)
            close(fd);
        return;
    }
    if (size < SHM_RING_MIN || size > SHM_RING_MAX || (size & (size - 1)) ||
        (!staged && (addr & 4095)) || rec_max != shm_ring_rec_max(size)) {
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "agent '%s' offers a notification ring we do not "
                    "understand (%llu bytes at 0x%llx, records up to %llu); using the socket",
                    peer->name, (unsigned long long)size, (unsigned long long)addr,
                    (unsigned long long)rec_max);
        if (fd >= 0)
            close(fd);
        return;
    }
    const char *why = NULL;
    uint8_t *map = fd >= 0 ? txring_map(fd, size, &why) : NULL;
    if (fd >= 0)
        close(fd); /* the mapping keeps the file */
    if (why)
        NIXL_BE_LOG(eng->host, staged ? NIXL_LOG_WARN : NIXL_LOG_DEBUG,
                    "cannot map the notification ring of '%s' (%s); %s", peer->name, why,
                    staged ? "notifications go by socket" : "cross-memory attach writes it");
    if (staged && !map)
        return;
    /* SHMH first: the target learns our name from it, and every numbered message follows. */
    uint8_t hdr[SHM_FRAME_HDR];
    shm_put_u32(hdr, SHM_FRAME_HELO);
    shm_put_u32(hdr + 4, (uint32_t)eng->name_len);
    shm_put_u64(hdr + 8, SHM_PROTO_VERSION);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {eng->name, eng->name_len}};
    if (!shm_peer_send_frame(eng, peer, iov, 2)) {
        if (map)
            munmap(map, size);
        return;
    }
    peer->seq_mode = true;
    shm_txring_off(peer);
    peer->ring.on = true;
    peer->ring.doorbell = true; /* until the target says it polls */
    peer->ring.addr = addr;
    peer->ring.size = size;
    peer->ring.rec_max = rec_max;
    peer->ring.map = map;
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                "notifications to '%s' go through its %llu-byte ring (%s)", peer->name,
                (unsigned long long)size,
                map && !staged ? "mapped; records with data by cross-memory attach"
                : map          ? "mapped"
                               : "cross-memory attach");
}

/* Learn which of our records the target consumed (see "Room"). */
static void txring_reclaim(shm_peer_t *peer)
{
    shm_txring_t *t = &peer->ring;
    if (t->nck == 0) {
        t->done = t->head;
        return;
    }
    uint8_t b[SHM_RING_CKPTS + 1];
    ssize_t n = t->nck;
    if (t->map) {
        /* acquire: the target zeroed the record before its commit byte (release) */
        for (unsigned i = 0; i < t->nck; i++)
            b[i] = __atomic_load_n(&t->map[t->ck[i].start & (t->size - 1)], __ATOMIC_ACQUIRE);
    } else {
        struct iovec l[SHM_RING_CKPTS + 1], r[SHM_RING_CKPTS + 1];
        for (unsigned i = 0; i < t->nck; i++) {
            l[i] = (struct iovec){&b[i], 1};
            r[i] = (struct iovec){(void *)(uintptr_t)(t->addr + (t->ck[i].start & (t->size - 1))),
                                  1};
        }
        n = process_vm_readv(peer->pid, l, t->nck, r, t->nck, 0);
        if (n <= 0)
            return; /* the write that follows reports a dead peer */
    }
    unsigned k = 0;
    while (k < (unsigned)n && b[k] == 0)
        k++;
    if (k == 0)
        return;
    t->done = t->ck[k - 1].end;
    memmove(t->ck, t->ck + k, (t->nck - k) * sizeof(t->ck[0]));
    t->nck -= k;
}

/* Remember a record just written: the newest is always last; older ones stay when at least
 * size/16 apart, so at most SHM_RING_CKPTS + 1 cover a full ring. */
static void txring_note(shm_txring_t *t, uint64_t start, uint64_t end)
{
    if (t->nck >= 2 && (t->ck[t->nck - 1].start - t->ck[t->nck - 2].start < t->size / 16))
        t->nck--; /* the previous newest was too close to the one before: forget it */
    else if (t->nck == SHM_RING_CKPTS + 1)
        t->nck--;
    t->ck[t->nck].start = start;
    t->ck[t->nck].end = end;
    t->nck++;
}

/* Store `len` bytes at ring position `pos`, wrapping around the end. */
static void txring_copy_in(const shm_txring_t *t, uint64_t pos, const void *src, size_t len)
{
    size_t off = (size_t)(pos & (t->size - 1)), first = (size_t)t->size - off;
    if (len <= first) {
        memcpy(t->map + off, src, len);
    } else {
        memcpy(t->map + off, src, first);
        memcpy(t->map, (const uint8_t *)src + first, len - first);
    }
}

/* A record through the mapping: everything but the commit byte, then the commit byte, by
 * plain stores (A2 orders them as the kernel's copy orders the iovecs of A1). */
static void txring_store(shm_txring_t *t, uint64_t seq, const void *msg, size_t len)
{
    uint8_t hdr[SHM_REC_HDR];
    hdr[1] = SHM_REC_NOTIF;
    hdr[2] = hdr[3] = 0;
    shm_put_u32(hdr + 4, (uint32_t)len);
    shm_put_u64(hdr + 8, seq);
    txring_copy_in(t, t->head + 1, hdr + 1, SHM_REC_HDR - 1);
    if (len)
        txring_copy_in(t, t->head + SHM_REC_HDR, msg, len);
#if defined(__x86_64__)
    /* memcpy may use non-temporal stores, which x86 does not order with later stores: fence */
    __builtin_ia32_sfence();
#endif
    __atomic_store_n(&t->map[t->head & (t->size - 1)], (uint8_t)SHM_REC_COMMIT, __ATOMIC_RELEASE);
}

int shm_txring_write(nixl_be_engine_t *eng, shm_peer_t *peer, uint64_t seq, const void *msg,
                     size_t len, const struct iovec *ldata, const struct iovec *rdata,
                     size_t ndata, size_t data_bytes, bool *data_ok)
{
    shm_txring_t *t = &peer->ring;
    *data_ok = false;
    bool mapped = ndata == 0 && t->map;
    if (!t->on || ndata > SHM_COMBINE_IOVS || (!mapped && atomic_load(&peer->staged)))
        return 0;
    uint64_t rl = shm_rec_len(len);
    if (rl > t->rec_max)
        return 0;
    if (t->head + rl - t->done > t->size) {
        txring_reclaim(peer);
        if (t->head + rl - t->done > t->size)
            return 0;
    }
    if (mapped) {
        txring_store(t, seq, msg, len);
        txring_note(t, t->head, t->head + rl);
        t->head += rl;
        *data_ok = true;
        return 1;
    }

    static const uint8_t commit = SHM_REC_COMMIT;
    uint8_t hdr[SHM_REC_HDR];
    hdr[0] = 0; /* not sent: the commit byte goes last, by itself */
    hdr[1] = SHM_REC_NOTIF;
    hdr[2] = hdr[3] = 0;
    shm_put_u32(hdr + 4, (uint32_t)len);
    shm_put_u64(hdr + 8, seq);

    struct iovec lv[SHM_COMBINE_IOVS + 3], rv[SHM_COMBINE_IOVS + 3];
    size_t nl = ndata, nr = ndata;
    if (ndata) {
        memcpy(lv, ldata, ndata * sizeof(*lv));
        memcpy(rv, rdata, ndata * sizeof(*rv));
    }
    lv[nl++] = (struct iovec){hdr + 1, SHM_REC_HDR - 1};
    if (len)
        lv[nl++] = (struct iovec){(void *)msg, len};
    lv[nl++] = (struct iovec){(void *)&commit, 1};

    uint64_t mask = t->size - 1;
    size_t body = SHM_REC_HDR - 1 + len;
    size_t off = (size_t)((t->head + 1) & mask), first = (size_t)t->size - off;
    if (body <= first) {
        rv[nr++] = (struct iovec){(void *)(uintptr_t)(t->addr + off), body};
    } else {
        rv[nr++] = (struct iovec){(void *)(uintptr_t)(t->addr + off), first};
        rv[nr++] = (struct iovec){(void *)(uintptr_t)t->addr, body - first};
    }
    rv[nr++] = (struct iovec){(void *)(uintptr_t)(t->addr + (t->head & mask)), 1};

    size_t total = data_bytes + body + 1;
    ssize_t n = process_vm_writev(peer->pid, lv, nl, rv, nr, 0);
    if (n == (ssize_t)total) {
        txring_note(t, t->head, t->head + rl);
        t->head += rl;
        *data_ok = true;
        return 1;
    }
    int e = n < 0 ? errno : EFAULT;
    *data_ok = n >= 0 && (size_t)n >= data_bytes;
    if (e != ESRCH && (ndata == 0 || *data_ok)) {
        /* The ring itself failed (unmapped: the target is going away). The record was not
         * committed (A1); its number goes to the socket instead. */
        t->on = false;
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "the notification ring of '%s' failed (%s); using the "
                    "socket",
                    peer->name, strerror(e));
    }
    errno = e;
    return -1;
}
