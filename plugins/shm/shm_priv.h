/*
 * shm_priv.h - the internals of the SHM backend, shared by its files (never installed).
 *
 * Objects and their lifetimes
 *  - engine: everything below hangs off it; destroy() stops both threads first.
 *  - peer: one loaded remote agent (or the engine itself, for loopback). Reference counted:
 *    the peer table, the event slot of its outgoing connection, every remote md handed out
 *    (a peer *is* the md of all its regions) and every request prepared against it hold a
 *    reference, so disconnect() never leaves a dangling pointer behind.
 *  - conn: one accepted (inbound) connection; owned by its event slot.
 *  - ring: the notification ring a conn was offered (shm_ring.c). Its initiator writes into it
 *    with process_vm_writev, so it outlives the conn until that initiator has closed its end;
 *    then it returns to the engine's pool (or, at destroy, is unmapped or retired).
 *  - req: one prepared transfer; iovec arrays live in the same allocation.
 *
 * Locks, always taken in this order (never the other way round):
 *    peers_lock  ->  ev_lock  ->  peer->lock
 *    the worker's lock is never held together with any of them; all_lock is a leaf.
 *  - peers_lock: the name -> peer table.
 *  - ev_lock: the event slots, every inbound connection's read state and epoll processing, so
 *    the event thread and progress() never interleave reads of one connection and frames are
 *    delivered in the order they were sent.
 *  - peer->lock: the outgoing socket of a peer, its send queue, and the connection's message
 *    numbering and notification ring (shm_ring.c): a message is numbered and written (ring or
 *    socket) in one hold of the lock.
 *  - worker.lock (util/jobq.h): the async worker's queue and which request it runs.
 *  - regs_lock (a rwlock): the registered DRAM regions and their files (shm_region.c,
 *    shm_map.c); a leaf, read under ev_lock by the event thread answering a file request.
 *  - cp_lock: the copy threads' queue of slices (shm_copy.c); a leaf.
 *  - thp.lock (util/jobq.h): the regions waiting for huge pages (shm_thp.c); a leaf.
 */
#ifndef NIXL_SHM_PRIV_H
#define NIXL_SHM_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "list.h"
#include "nixl_plugin.h"
#include "clock.h"
#include "hashmap.h"
#include "jobq.h"
#include "parse.h"

/* Largest notification payload we send or accept (the reference has no limit; UCX practice
 * tops out far below). Large enough for any tag or small control message, small enough that a
 * hostile frame cannot make us allocate gigabytes. */
#define SHM_NOTIF_MAX ((size_t)64 << 20)
/* Agent names are at most 255 bytes in the API; accept some slack from peers. */
#define SHM_NAME_MAX 4096u
/* Bytes of notifications queued to one slow peer before gen_notif/post start failing. */
#define SHM_SENDQ_MAX ((size_t)256 << 20)
/* iovecs per process_vm_* call: the kernel's UIO_MAXIOV. */
#define SHM_IOV_MAX 1024u
/* Bytes per syscall of the async worker: bounds how long release_req waits for a cancel. */
#define SHM_CHUNK_BYTES ((size_t)8 << 20)
/* Requests of at least this many bytes are split across the copy threads (shm_copy.c), in
 * slices of at least SHM_SLICE_MIN; copy_threads=auto is half the cores, at least 1, at most
 * SHM_COPY_THREADS_AUTO_MAX (docs/BENCHMARKS.md: what was measured, on 2 cores only). */
#define SHM_SPLIT_BYTES ((uint64_t)4 << 20)
#define SHM_SLICE_MIN ((uint64_t)1 << 20)
/* Staged requests (one ring: one memcpy on each side, 11-15 GB/s on a 16-vCPU host) gain from
 * a split earlier: from 1 MiB, in slices of 256 KiB, measured 1.1x at 1 MiB and 2x at 2 MiB
 * there; slices of 128 KiB lost at 512 KiB (docs/BENCHMARKS.md, "Staged transfers over
 * several rings"). */
#define SHM_XSPLIT_BYTES ((uint64_t)1 << 20)
#define SHM_XSLICE_MIN ((uint64_t)256 << 10)
#define SHM_COPY_THREADS_AUTO_MAX 4u
#define SHM_COPY_THREADS_MAX 64u

/* ---- connection info ---- */

#define SHM_CONN_MAGIC "NXSHM1"
#define SHM_CONN_MAGIC_LEN 6u
#define SHM_SOCK_NAME_MAX 100u /* sun_path is 108 bytes, minus the leading NUL */

/* Conn info flags. STAGED: reach this engine through staging rings, never cross-memory attach
 * (its own process_vm_* calls are refused, or transport=staged). */
#define SHM_INFO_STAGED 1u

/* Where an engine lives and how to reach it: what get_conn_info encodes. */
typedef struct shm_conn_info {
    uint8_t boot_id[16];
    uint32_t flags;
    uint64_t pidns_dev, pidns_ino;
    uint64_t netns_dev, netns_ino; /* abstract sockets are per network namespace */
    uint32_t pid;
    uint16_t sock_len;
    char sock_name[SHM_SOCK_NAME_MAX + 1];
} shm_conn_info_t;

#define SHM_CONN_BLOB_MAX (72u + SHM_SOCK_NAME_MAX)

/* ---- metadata ---- */

/* First word of every object we hand out as a nixl_be_md_t, so prep can tell them apart. */
enum {
    SHM_MD_LOCAL = 0x4c4d4853u,     /* one local DRAM region (shm_lmd_t, shm_region.c) */
    SHM_MD_PEER = 0x504d4853u,      /* every DRAM region of a peer: the peer itself */
    SHM_MD_VRAM = 0x564d4853u,      /* one local VRAM region (shm_vlmd_t, shm_gpu.c) */
    SHM_MD_VRAM_PEER = 0x574d4853u, /* one VRAM region of a peer (shm_vrmd_t) */
    SHM_MD_MAP = 0x464d4853u,       /* a DRAM region of a peer in a shareable file (shm_rmd_t) */
};

typedef struct shm_md_hdr {
    uint32_t kind;
} shm_md_hdr_t;

/* ---- shareable mappings (shm_map.c) ---- */

/* A region blob that says "this DRAM region is a range of a shareable file" (little endian):
 *  u32 magic "SHMF", u8 version (1), u8 file system (SHM_FS_*), u16 0, u64 st_dev, u64 st_ino,
 *  u64 file offset of the region's first byte, u64 region length, u64 mapping alignment.
 * An empty blob (every older engine of ours) means no file: cross-memory attach. A blob with
 * another magic or version is ignored the same way (a later format). */
#define SHM_MAP_MAGIC 0x464d4853u /* "SHMF" */
#define SHM_MAP_VERSION 1u
#define SHM_MAP_BLOB 48u
enum { SHM_FS_TMPFS = 1, SHM_FS_HUGETLBFS = 2 };
/* Frames of the file request: SHMM (initiator, 16 bytes: u32 magic, u32 0, u64 region address)
 * with one end of a SOCK_SEQPACKET pair (SCM_RIGHTS) on a fresh connection; the answer SHMG on
 * that pair: u32 magic, u32 errno (0: the descriptor comes with it), u64 st_dev, u64 st_ino,
 * u64 0. */
#define SHM_FRAME_MAPREQ 0x4d4d4853u /* "SHMM" */
#define SHM_MAPREP_MAGIC 0x474d4853u /* "SHMG" */
#define SHM_MAP_MAX_DEFAULT ((uint64_t)1 << 40) /* bytes of peers' files mapped at once */
#define SHM_MAPS_SCAN_MAX 65536u     /* shared file mappings read from /proc/self/maps */
#define SHM_FD_SCAN_MAX 65536u       /* descriptors looked at for a deleted file */

/* A file that backs registered regions; the engine keeps a descriptor of it for the peers that
 * ask (regs_lock: written at registration, read by the event thread). */
typedef struct shm_bfile {
    struct shm_bfile *next;
    uint64_t dev, ino;
    int fd;
    uint8_t fs;
    uint64_t align;
    size_t refs; /* regions */
} shm_bfile_t;

/* One registered DRAM region: the staging server (shm_xchan.c) copies only inside these. */
typedef struct shm_lmd {
    shm_md_hdr_t md; /* SHM_MD_LOCAL */
    nixl_be_engine_t *eng;
    uintptr_t addr;
    size_t len;
    shm_bfile_t *bf; /* the shareable file it lies in, or NULL */
    uint64_t foff;   /* the file offset of addr */
    uint8_t blob[SHM_MAP_BLOB];
    bool dead; /* deregistered, still in the region index until it is compacted (regs_lock) */
    nixl_fifo_node_t thp_node; /* waiting for huge pages (eng->thp_wait, thp.lock; shm_thp.c) */
} shm_lmd_t;

struct shm_peer;
/* A peer's DRAM region that lies in a shareable file: mapped here on first use (prep) and
 * copied with plain loads and stores. Reference counted: the md and every request using it. */
typedef struct shm_rmd shm_rmd_t;
struct shm_rmd {
    shm_md_hdr_t md; /* SHM_MD_MAP */
    atomic_size_t refs;
    struct shm_peer *peer; /* holds a reference */
    uintptr_t addr;        /* the region in the peer */
    size_t len;
    uint64_t dev, ino, foff, align;
    uint8_t fs;
    pthread_mutex_t lock;
    enum { SHM_RMD_NEW = 0, SHM_RMD_MAPPED, SHM_RMD_CMA, SHM_RMD_BAD } state;
    char why[256];  /* CMA or BAD: why (BAD: every prep fails with it) */
    uint8_t *map;   /* the mapping and its length */
    size_t map_len;
    uint8_t *at;    /* addr as seen here */
    nixl_list_node_t mnode; /* in peer->maps while mapped */
};

typedef struct shm_vlmd shm_vlmd_t;
/* A peer's VRAM region as this process reaches it. */
typedef struct shm_vrmd {
    shm_md_hdr_t md;         /* SHM_MD_VRAM_PEER */
    struct shm_peer *peer;   /* holds a reference */
    int device;              /* the GPU it is mapped on (or lives on) */
    uintptr_t rbase;         /* the allocation in the peer */
    size_t size;
    uintptr_t mapped;        /* the same allocation here (== rbase within one process) */
    bool opened;             /* mapped with CUDA IPC: close at unload */
} shm_vrmd_t;

/* ---- notification frames ---- */

/*
 * Initiator -> target, on the initiator's connection (all little endian):
 *  SHMN  u32 magic, u32 name length, u64 payload length, name, payload: a notification with
 *        no number (what a peer without rings sends; numbered implicitly by arrival).
 *  SHMQ  the same with a u64 sequence number after the payload length (24-byte header).
 *  SHMH  u32 magic, u32 name length, u64 protocol version, name: "I use your ring"; sent once,
 *        before the first record.
 *  SHMD  u32 magic, u32 0, u64 0: doorbell, a record was written while the target was idle.
 *  SHMA  u32 magic, u32 0, u64 generation: acknowledges an IDLE control frame.
 * Target -> initiator, on the same connection: 32-byte control frames (SHM_CTL_*).
 */
#define SHM_FRAME_MAGIC 0x4e4d4853u /* "SHMN" little endian */
#define SHM_FRAME_SEQ 0x514d4853u   /* "SHMQ" */
#define SHM_FRAME_HELO 0x484d4853u  /* "SHMH" */
#define SHM_FRAME_BELL 0x444d4853u  /* "SHMD" */
#define SHM_FRAME_ACK 0x414d4853u   /* "SHMA" */
#define SHM_FRAME_HDR 16u           /* SHMN, SHMH, SHMD, SHMA */
#define SHM_FRAME_SEQ_HDR 24u       /* SHMQ */
#define SHM_PROTO_VERSION 1u

/* u32 magic, u32 type, u64 a, u64 b, u64 c */
#define SHM_CTL_MAGIC 0x434d4853u /* "SHMC" */
#define SHM_CTL_LEN 32u
enum {
    SHM_CTL_RING = 1, /* a = ring address in the target, b = ring size, c = largest record */
    SHM_CTL_POLL = 2, /* the target polls its rings: no doorbells needed */
    SHM_CTL_IDLE = 3, /* a = generation: the target stopped polling; ring doorbells, ack this */
};

/* ---- notification rings (shm_ring.c) ---- */

/* Rings rely on x86-64 store order (see shm_ring.c); elsewhere every notification takes the
 * socket and no ring is offered or used. */
#if defined(__x86_64__)
#define SHM_RING_SUPPORTED 1
#else
#define SHM_RING_SUPPORTED 0
#endif
#define SHM_RING_DEFAULT ((size_t)256 << 10)
#define SHM_RING_MIN ((size_t)4 << 10)
#define SHM_RING_MAX ((size_t)64 << 20)
#define SHM_REC_HDR 16u        /* u8 commit, u8 type, u16 0, u32 payload length, u64 sequence */
#define SHM_REC_COMMIT 0xa5u   /* a committed record; 0 = free (zeroed) */
#define SHM_REC_NOTIF 1u
#define SHM_RING_CKPTS 16u     /* initiator: records remembered to learn what was consumed */
#define SHM_RING_WAIT_MS 100   /* dial: how long to wait for the target's ring offer */
#define SHM_RING_POOL 16u      /* rings kept for reuse after their connection ended */
#define SHM_RING_LINGER_MS 200 /* destroy: how long to wait for initiators to close */
/* A WRITE this small is written together with its notification record, in one syscall. */
#define SHM_COMBINE_BYTES ((size_t)64 << 10)
#define SHM_COMBINE_IOVS 64u

/* Largest record (header + payload) a ring of `size` bytes takes; bigger ones use the socket. */
static inline uint64_t shm_ring_rec_max(uint64_t size)
{
    return size / 8;
}

static inline uint64_t shm_rec_len(uint64_t payload)
{
    return SHM_REC_HDR + ((payload + 7) & ~(uint64_t)7);
}

/* Initiator side of one connection's ring (peer->lock). Positions count bytes since the ring
 * was set up; offset = position & (size - 1). */
typedef struct shm_txring {
    bool on;       /* records may be written */
    bool doorbell; /* the target is not polling: ring after each record */
    uint64_t addr, size, rec_max;
    uint8_t *map;  /* the ring mapped from the target's memfd: records without data are
                      stored here, no system call (shm_ring.c, "Mapped rings"); or NULL */
    uint64_t head; /* next record's position */
    uint64_t done; /* everything before was consumed (zeroed) by the target */
    struct {
        uint64_t start, end;
    } ck[SHM_RING_CKPTS + 1]; /* records written after `done`, oldest first; the last is the
                               * newest record */
    unsigned nck;
} shm_txring_t;

/* One mapping that the target offers as a ring (see shm_ring.c for its lifetime). */
typedef struct shm_ringmem {
    struct shm_ringmem *next; /* eng->ring_pool */
    uint8_t *base;
    size_t size;
    int fd; /* a sealed memfd behind base, offered with the ring; -1: anonymous memory */
} shm_ringmem_t;

/* ---- staging rings: peers without cross-memory attach (shm_xchan.c) ---- */

enum { SHM_TRANSPORT_AUTO = 0, SHM_TRANSPORT_CMA, SHM_TRANSPORT_STAGED, SHM_TRANSPORT_MAP };
/* hugepages: what registration does to a DRAM region's whole 2 MiB pages (shm_thp.c). */
enum { SHM_HUGEPAGES_OFF = 0, SHM_HUGEPAGES_ADVISE, SHM_HUGEPAGES_COLLAPSE, SHM_HUGEPAGES_BACKGROUND };
#define SHM_XRING_DEFAULT ((size_t)4 << 20)
#define SHM_XRING_MIN ((size_t)64 << 10)
#define SHM_XRING_MAX ((size_t)256 << 20)
#define SHM_XSLOTS 8u            /* a ring is cut into this many slots, one job each */
#define SHM_XRINGS_DEFAULT 64u   /* staging rings (server threads) one engine serves at once */
#define SHM_XBULK_MAX 15u        /* bulk rings per peer: a staged request is cut into 16 at most */
#define SHM_XBULK_RETRY_MS 1000  /* after a refused bulk ring, the next try is this much later */
#define SHM_XRINGS_MAX 4096u
#define SHM_XWAIT_MS 100         /* the initiator looks for cancel/death this often */
#define SHM_XSTALL_MS 30000      /* no answer for this long: the peer is stuck, fail */
#define SHM_XOPEN_MS 5000        /* how long the target may take to accept a ring */
/* Frames on the staging socket (SOCK_SEQPACKET, one frame per message, little endian):
 *  SHMJ (initiator): u32 magic, u32 op, u64 ring offset, u64 bytes, u32 niov, u32 flags (0, or
 *       SHM_XJOB_STREAM in the mailbox), then niov x {u64 address, u64 length} in the target:
 *       WRITE copies ring -> memory, READ the reverse.
 *  SHMK (target): u32 magic, u32 errno (0: done), u64 ring offset, u64 bytes, u64 bad index.
 *  SHMY (target, once): u32 magic, u32 errno (0: ready), u64 ring size, u64 flags
 *       (SHM_XREADY_CTL: the control page is in use), u64 0.
 * SHMX goes on an ordinary connection (16-byte header: u32 magic, u32 0, u64 ring size) with
 * the ring's memfd and the target's end of the staging socket (SCM_RIGHTS). */
#define SHM_FRAME_XRING 0x584d4853u /* "SHMX" */
#define SHM_XJOB_MAGIC 0x4a4d4853u  /* "SHMJ" */
#define SHM_XDONE_MAGIC 0x4b4d4853u /* "SHMK" */
#define SHM_XREADY_MAGIC 0x594d4853u /* "SHMY" */
#define SHM_XBELL_MAGIC 0x424d4853u  /* "SHMB": initiator, a job waits in the mailbox */
#define SHM_XWAKE_MAGIC 0x574d4853u  /* "SHMW": target, the mailbox job is answered */
#define SHM_XJOB_HDR 32u
/* A mailbox job whose data streams (shm_xsrv.c, "Streaming"): it starts at ring offset 0 and
 * mb_avail says how many of its bytes are in place (WRITE: the initiator's copy into the ring;
 * READ: the target's copy out of its memory), published every SHM_XSTREAM_CHUNK bytes. */
#define SHM_XJOB_STREAM 1u
#define SHM_XSTREAM_CHUNK ((size_t)32 << 10)
/* How long one look at a streaming WRITE follows the initiator's copy: while new bytes come
 * within SHM_XFOLLOW_GAP_NS, for at most SHM_XFOLLOW_MAX_NS (then progress() returns and the
 * next call goes on). */
#define SHM_XFOLLOW_GAP_NS 5000u
#define SHM_XFOLLOW_MAX_NS 100000u
#define SHM_XREPLY 32u
enum { SHM_XOP_WRITE = 1, SHM_XOP_READ = 2 };

#define SHM_XJOB_MAX (SHM_XJOB_HDR + 16u * SHM_IOV_MAX)

/* The control page: the last SHM_XCTL_BYTES of a ring, when both sides use it (shm_xsrv.c,
 * "Parking"). The initiator asks by writing SHM_XCTL_MAGIC there before it offers the ring; a
 * target that takes it says so with SHM_XREADY_CTL in SHMY's second u64, and the last slot is
 * then that much shorter (the slots keep their places: a 512 KiB transfer through a 4 MiB ring
 * stays one job). Both processes write it, so to each side every value in it is a hint. */
#define SHM_XCTL_BYTES 4096u
#define SHM_XCTL_MAGIC 0x434d4853u /* "SHMC" */
#define SHM_XREADY_CTL 1u
#define SHM_XREADY_MBOX 2u /* SHMY: the target serves the control page's mailbox too */
#define SHM_XREADY_STREAM 4u /* SHMY: ... and streams mailbox jobs (SHM_XJOB_STREAM) */
enum { SHM_XSRV_SOCKET = 0, SHM_XSRV_PARKED = 1, SHM_XSRV_WOKEN = 2 };
/* The mailbox takes the rest of the page: one job frame of up to 250 pieces. */
#define SHM_XMBOX_MAX (SHM_XCTL_BYTES - 64u)
#define SHM_XMBOX_PIECES ((SHM_XMBOX_MAX - SHM_XJOB_HDR) / 16u)
typedef struct shm_xctl {
    uint32_t magic;
    _Atomic uint32_t state;  /* the server thread: SHM_XSRV_*; a futex word when parked */
    _Atomic uint64_t posted; /* jobs the initiator has sent on the socket */
    _Atomic uint64_t seen;   /* `posted` when the target last found the socket empty */
    /* The mailbox (shm_xsrv.c, "Mailbox"): a transfer of one job, while the server is parked,
     * goes here instead of the socket, and its answer comes back here. */
    _Atomic uint32_t mb_seq;   /* initiator: the job in mb_job is this one */
    _Atomic uint32_t mb_done;  /* target: the job answered last */
    _Atomic uint32_t mb_sleep; /* initiator: it sleeps on the socket awaiting this job */
    uint32_t mb_len;           /* bytes of the job frame */
    uint32_t mb_err;           /* the answer: errno (0: done) */
    uint32_t mb_pad;
    uint64_t mb_bad;           /* the answer: the bad piece */
    _Atomic uint64_t mb_avail; /* a streaming job: bytes of its data in place (see above) */
    uint8_t mb_job[SHM_XMBOX_MAX];
} shm_xctl_t;
_Static_assert(sizeof(shm_xctl_t) == SHM_XCTL_BYTES, "the control page is one page");
/* A parked server's jobs are for the target's polling thread: the initiator waits for the
 * answer without sleeping for SHM_XSPIN_NS plus the job's copy at SHM_XSPIN_BYTES_PER_NS (a
 * large job takes longer to serve), then wakes the server. After SHM_XSPIN_FAILS such waits in
 * a row it wakes the server at once for the next SHM_XNOSPIN_JOBS jobs (the target polls too
 * seldom for the wait to pay), then tries waiting again. */
#define SHM_XSPIN_NS 50000u
#define SHM_XSPIN_BYTES_PER_NS 4u /* 4 GB/s, below any memcpy */
#define SHM_XSPIN_FAILS 4u
#define SHM_XNOSPIN_JOBS 64u
/* A server thread stays parked while progress() was called in the last this many ms. */
#define SHM_XPARK_MS 2

/* A spinning wait's pause: it spares the sibling hyperthread and the memory bus. */
static inline void shm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* The initiator's ring to one peer (its own lock: a transfer holds it from start to end). */
typedef struct shm_xchan {
    pthread_mutex_t lock;
    int fd;        /* our end of the staging socket; -1: none */
    uint8_t *base; /* the ring (our mapping of the memfd) */
    size_t size, slot;
    size_t data_end;     /* where the slots end: the control page, when in use, or size */
    shm_xctl_t *ctl;     /* the control page; NULL: the target does not use one */
    unsigned nospin;     /* jobs left for which a parked server is woken without a wait */
    unsigned spin_fails; /* waits in a row that ended without the answer */
    bool stream;         /* the target serves the mailbox and streams its jobs */
    uint32_t mb_seq;     /* the last mailbox job */
    uint8_t *msg;        /* one job frame */
    const size_t *desc;  /* the transfer in progress: the request's descriptor of each piece */
} shm_xchan_t;

/* A job frame, checked (SHMJ above): pieces point into the frame. */
typedef struct shm_xjob {
    uint32_t op, niov, flags;
    uint64_t off, len;
    const uint8_t *p;
} shm_xjob_t;

/* One ring this engine serves as a target: a thread copying between it and our regions, and
 * progress() callers doing the same while the thread is parked (shm_xsrv.c). */
typedef struct shm_xsrv {
    struct shm_xsrv *next;
    nixl_be_engine_t *eng;
    int fd;
    uint8_t *base;
    size_t size;
    size_t data_end; /* jobs stay below: the control page, when in use, or size */
    shm_xctl_t *ctl; /* NULL: the initiator does not park us */
    _Atomic uint32_t mb_served; /* the mailbox job served last (written under lock) */
    /* A streaming WRITE through the mailbox left open for its bytes (number mb_served): its
     * frame (copied out of the page) and checked job, bytes copied so far (under lock), and the
     * mb_avail last seen (read without the lock; UINT64_MAX: no job is open). */
    uint8_t *mb;
    shm_xjob_t mbj;
    uint64_t mb_off;
    _Atomic uint64_t mb_want;
    pthread_mutex_t lock; /* whoever reads the socket and serves a job (thread or poller) */
    uint8_t *m;           /* one job frame, under lock */
    pthread_t thread;
    atomic_bool ended; /* the ring is over (EOF, error, malformed job): the thread leaves */
    atomic_bool stop;  /* the engine stops */
    atomic_bool done;  /* the thread has finished: join it */
    /* Jobs served, of them by progress() callers, and streamed (logged when the ring ends). */
    atomic_uint_fast64_t jobs, jobs_polled, jobs_streamed;
} shm_xsrv_t;

typedef struct shm_sendq {
    struct shm_sendq *next;
    size_t len, off;
    uint8_t data[];
} shm_sendq_t;

typedef struct shm_peer {
    shm_md_hdr_t md; /* SHM_MD_PEER: a peer is the md of all its regions */
    atomic_size_t refs;
    nixl_be_engine_t *eng;
    char *name;
    size_t name_len;
    struct shm_peer *anext, **aprev; /* eng->all_peers, all_lock */
    bool is_self;
    pid_t pid;
    shm_conn_info_t info;
    uint8_t blob[SHM_CONN_BLOB_MAX]; /* as loaded, to compare on reload */
    size_t blob_len;
    atomic_bool dead;      /* the peer went away: REMOTE_DISCONNECT */
    atomic_bool forgotten; /* disconnect() was called: NOT_FOUND */
    atomic_bool connected; /* fast check before taking the lock */
    /* Data goes through a staging ring (shm_xchan.c) instead of cross-memory attach; why
     * says so in the one INFO line. cma_ok: a process_vm_* call to it succeeded. */
    atomic_bool staged;
    atomic_bool cma_ok;
    bool other_pidns; /* its pid means nothing here: never checked, never copied to */
    atomic_bool map_said; /* the INFO line about its mapped files was written */
    pthread_mutex_t maps_lock; /* a leaf: maps */
    nixl_list_node_t *maps;    /* its regions mapped here (shm_rmd_t.mnode; shm_map.c) */
    const char *staged_why;
    shm_xchan_t x;
    /* Bulk rings: slices 1.. of a large staged request split across the copy threads
     * (shm_copy.c) go through these, one each, opened at first use and without a control page,
     * so their server threads copy beside the one serving x (never parked, whoever polls). */
    shm_xchan_t xb[SHM_XBULK_MAX];
    /* The peer refused a bulk ring: until then (nixl_now_ms), slices share x; said: the INFO
     * line about it was written. */
    _Atomic uint64_t xb_after_ms;
    atomic_bool xb_said;

    pthread_mutex_t lock;
    int fd;             /* outgoing connection, -1 when none */
    uint32_t slot;      /* its event slot (ev_lock) */
    uint64_t ev_data;   /* epoll data of fd */
    bool want_out;      /* EPOLLOUT armed */
    shm_sendq_t *q_head, **q_tail;
    size_t q_bytes;
    /* The connection's messages (notifications) are numbered 1, 2, ... in the order they are
     * written, ring or socket; seq is the last number used. */
    uint64_t seq;
    bool seq_mode;     /* SHMH sent: socket notifications carry their number (SHMQ) */
    shm_txring_t ring; /* the target's ring, when it offered one */
    int ring_fd_rx;    /* a descriptor that came with the target's bytes (its ring's memfd,
                          taken by the RING frame), or -1 */
    uint8_t rx[SHM_CTL_LEN]; /* a partly received control frame */
    size_t rx_len;
} shm_peer_t;

/* ---- event slots ---- */

enum {
    SHM_SLOT_FREE = 0,
    SHM_SLOT_LISTEN,
    SHM_SLOT_WAKE,
    SHM_SLOT_INBOUND, /* the epoll set of inbound connections, nested in the main one */
    SHM_SLOT_PEER,
    SHM_SLOT_CONN,
};

typedef struct shm_slot {
    uint32_t gen; /* bumped on free so stale epoll events are recognised */
    uint32_t kind;
    uint32_t next_free;
    void *obj;
} shm_slot_t;

#define SHM_SLOT_NONE UINT32_MAX

/* ---- trust (shm_trust.c) ---- */

#define SHM_TRUSTED_UIDS_MAX 16u

typedef struct shm_trust {
    uid_t uids[SHM_TRUSTED_UIDS_MAX]; /* trusted_uids: besides our own */
    unsigned num_uids;
    bool ptracer_any; /* ptracer=any: PR_SET_PTRACER_ANY under Yama ptrace_scope=1 */
    enum { SHM_SENDERS_CHECKED, SHM_SENDERS_LOADED, SHM_SENDERS_USER } senders;
} shm_trust_t;

/* ---- inbound connections ---- */

#define SHM_RBUF (64u << 10) /* small frames are delivered straight from here */

enum { SHM_MODE_IDLE = 0, SHM_MODE_POLLED, SHM_MODE_PENDING };

/* One accepted connection (ev_lock). */
typedef struct shm_conn {
    struct shm_conn *next, **pprev; /* eng->conns */
    int fd;
    uint32_t slot;
    uint64_t ev_data; /* epoll data of fd */
    size_t rlen;
    uint8_t *big; /* name + payload of a frame larger than rbuf, being filled */
    size_t big_need, big_have;
    uint32_t big_name_len;
    bool big_has_seq;
    uint64_t big_seq;
    /* the ring this connection was offered (NULL: none) and what was read from it */
    shm_ringmem_t *ring;
    uint64_t tail;     /* position of the next record */
    uint64_t next_seq; /* number of the next notification to deliver */
    bool helo;         /* the initiator uses the ring; its socket is in ep_fd, not ep_in */
    bool zombie;       /* we gave up on it (bad frame): wait for the initiator to close */
    uint8_t mode;      /* SHM_MODE_*: whether the initiator rings the doorbell */
    uint64_t gen;      /* of the last IDLE sent */
    bool idle_unsent;  /* the IDLE frame could not be sent yet */
    uint64_t pending_since_ms;
    char *name; /* from SHMH */
    size_t name_len;
    pid_t cred_pid;          /* the connecting process (SO_PEERCRED) */
    bool from_self;          /* cred_pid is this process: set once at accept (getpid() is a
                                system call, and the sender check runs per notification) */
    int xfd[2];              /* descriptors received with the next SHMX frame */
    unsigned nxfd;
    struct shm_peer *sender; /* the loaded peer it was checked to be (a reference), or NULL */
    uint8_t rbuf[SHM_RBUF];
} shm_conn_t;

/* ---- requests ---- */

struct nixl_be_req {
    nixl_be_engine_t *eng;
    shm_peer_t *peer; /* holds a reference */
    nixl_xfer_op_t op;
    size_t count;
    uint64_t total;
    struct iovec *liov, *riov;
    atomic_int state; /* nixl_status_t of the last post */
    atomic_bool cancel;
    nixl_fifo_node_t job; /* in the async worker's queue */
    bool has_notif; /* the async post's notification, copied (opts is borrowed) */
    void *notif;
    size_t notif_len, notif_cap;
    char why[320]; /* reason of the last failure, repeated by check_xfer on any thread */
    nixl_gpu_batch_t *gpu; /* a GPU request (VRAM on a side): its copies (shm_gpu.c) */
    struct shm_stage *stage; /* a staged GPU request: VRAM with another process's DRAM */
    shm_rmd_t **rmd; /* mapped: the peer's region of each descriptor (a reference per run) */
    struct iovec iov[]; /* liov[count] then riov[count] */
};

/* ---- the engine ---- */

struct nixl_be_engine {
    const nixl_host_t *host;
    char *name;
    size_t name_len;
    shm_trust_t trust;        /* who may connect and notify (shm_trust.c) */
    uint64_t async_threshold; /* 0: never */
    unsigned gpu_max_blocks;  /* thread blocks of a GPU copy; 0: the default */
    shm_peer_t *self;
    /* How data reaches peers (transport=); cma_why: why our own cross-memory attach is off
     * (empty: it works). */
    int transport;
    char cma_why[320];
    size_t xring_size;  /* of the staging rings we create as an initiator */
    unsigned xrings_max; /* staging rings we serve at once as a target */
    /* Registered DRAM regions, sorted by address; pmax[i]: the largest end among 0..i. */
    pthread_rwlock_t regs_lock;
    shm_lmd_t **regs;
    uintptr_t *regs_pmax;
    size_t nregs, regs_cap;
    size_t regs_dead; /* entries of regs deregistered but not yet compacted away */
    shm_bfile_t *bfiles; /* files backing registered regions (regs_lock) */
    int maps_fd;         /* /proc/self/maps for PROCMAP_QUERY; -1 not open yet, -2 none */
    uint64_t map_max;    /* map_max_bytes */
    atomic_uint_fast64_t map_bytes; /* of peers' files mapped now */
    pthread_mutex_t xsrv_lock;
    shm_xsrv_t *xsrvs;
    unsigned nxsrv;
    atomic_uint nxctl; /* served rings with a control page: progress() looks at them */

    shm_conn_info_t info;
    uint8_t conn_blob[SHM_CONN_BLOB_MAX];
    size_t conn_len;
    struct sockaddr_un addr;
    socklen_t addr_len;
    int listen_fd, wake_fd;
    uint64_t listen_data;       /* its epoll data */
    uint64_t accept_resume_ms;  /* accept() ran out of fds: not watched before (0: watched) */
    uint32_t accept_backoff_ms; /* doubles while it lasts */
    int ep_fd; /* listen, wake-up, outgoing connections, and ep_in while nobody polls */
    int ep_in; /* inbound connections: what progress() polls */
    uint64_t ep_in_data;
    atomic_uint_fast64_t progress_calls;

    pthread_mutex_t peers_lock;
    nixl_hmap_t peers; /* loaded peers: peer->name -> shm_peer_t * */
    /* Every peer object alive, loaded or not (a leaf lock): destroy frees what the core did
     * not unload, so a missing unload_md cannot leak. */
    pthread_mutex_t all_lock;
    shm_peer_t *all_peers;

    pthread_mutex_t ev_lock;
    struct shm_conn *conns; /* inbound connections */
    size_t nconns;
    size_t nconns_in;  /* of which in ep_in (no ring in use) */
    bool polling;      /* the user calls progress(): rings are left to it (ev_lock) */
    atomic_bool ev_waiting; /* the event thread has events and waits for ev_lock */
    size_t npending;   /* connections in SHM_MODE_PENDING (ev_lock) */
    size_t ring_size;  /* of the rings we offer; 0: none */
    shm_ringmem_t *ring_pool; /* rings whose connection ended, zeroed, for reuse */
    size_t ring_pool_len;
    uint8_t *scratch;  /* a wrapped record is copied here (ev_lock) */
    shm_slot_t *slots;
    uint32_t nslots, free_slot;
    size_t slot_cap;
    pthread_t ev_thread;
    bool ev_started;

    /* The copy threads (shm_copy.c): cp_lock guards the queue of slices and their counts. */
    unsigned cp_threads; /* copy_threads, the caller's thread included; 1: no split */
    int hugepages;       /* SHM_HUGEPAGES_* */
    atomic_bool hp_told; /* a refusal of the kernel was logged */
    pthread_mutex_t cp_lock;
    pthread_cond_t cp_cond, cp_done;
    struct shm_slice *cp_head;
    bool cp_started, cp_stop;
    unsigned cp_nthreads;
    pthread_t *cp_tid;

    nixl_jobq_t worker; /* the async worker (shm_worker.c); its lock is a leaf */

    /* hugepages=background (shm_thp.c): thp.lock, a leaf, guards the rest. */
    nixl_jobq_t thp;
    nixl_fifo_node_t thp_job;
    nixl_fifo_t thp_wait;         /* regions waiting, first in first out (their thp_node) */
    const struct shm_lmd *thp_at; /* the region being converted, NULL: none */
    uintptr_t thp_lo, thp_hi;     /* what is left of it to convert */
    bool thp_active;              /* the job is queued or running */
};

/* shm_sys.c: facts about this host and process. ptracer_any: under Yama ptrace_scope=1, let
 * any process of our user attach (PR_SET_PTRACER_ANY). NIXL_ERR_BACKEND with `why` filled when
 * cross-memory attach cannot work (the caller logs or reports it). */
nixl_status_t shm_sys_check_cma(const nixl_host_t *host, bool ptracer_any, char *why,
                                size_t cap);
void shm_sys_identity(shm_conn_info_t *info);
size_t shm_conn_encode(const shm_conn_info_t *info, uint8_t *out);
nixl_status_t shm_conn_decode(const void *blob, size_t len, shm_conn_info_t *out,
                              const char **why);
void shm_put_u32(uint8_t *p, uint32_t v);
void shm_put_u64(uint8_t *p, uint64_t v);
/* A 32-byte frame: u32 magic, u32 x, u64 a, u64 b, u64 c (control and staging frames). */
void shm_put_frame32(uint8_t *f, uint32_t magic, uint32_t x, uint64_t a, uint64_t b,
                     uint64_t c);
/* sendmsg (non-blocking, no SIGPIPE, EINTR retried) of one buffer with up to two descriptors
 * (SCM_RIGHTS; nfds 0: none). */
ssize_t shm_send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds);
/* recvmsg() without blocking (EINTR retried) that keeps up to `max` descriptors passed with
 * the bytes (at most SHM_RECV_FDS_MAX; the rest are closed); *nfds: how many. */
#define SHM_RECV_FDS_MAX 4u
ssize_t shm_recv_fds(int sock, void *buf, size_t len, int *fds, unsigned max, unsigned *nfds);
uint32_t shm_get_u32(const uint8_t *p);
uint64_t shm_get_u64(const uint8_t *p);

/* shm_peer.c: peers, outgoing connections, sending notifications. */
shm_peer_t *shm_peer_new(nixl_be_engine_t *eng, const char *name, bool is_self);
void shm_peer_ref(shm_peer_t *peer, size_t n);
void shm_peer_unref(shm_peer_t *peer, size_t n);
shm_peer_t *shm_peer_find(nixl_be_engine_t *eng, const char *name); /* +1 ref, or NULL */
nixl_status_t shm_peer_ensure_connected(nixl_be_engine_t *eng, shm_peer_t *peer);
nixl_status_t shm_peer_send_notif(nixl_be_engine_t *eng, shm_peer_t *peer, const void *msg,
                                  size_t len);
/* A WRITE's data and its notification in one syscall, when the ring allows; *done false: nothing
 * happened (no ring, no room, a fault): do it the ordinary way. */
nixl_status_t shm_peer_write_notif(nixl_be_engine_t *eng, shm_peer_t *peer,
                                   const struct iovec *ldata, const struct iovec *rdata,
                                   size_t ndata, size_t data_bytes, const void *msg, size_t len,
                                   bool *done);
/* Queue or send a frame, peer->lock held; control frames ignore the queue bound. */
bool shm_peer_send_frame(nixl_be_engine_t *eng, shm_peer_t *peer, const struct iovec *iov,
                         int niov);
void shm_peer_ctl_input(nixl_be_engine_t *eng, shm_peer_t *peer, const uint8_t *p, size_t n,
                        bool *bad); /* peer->lock held */
void shm_peer_flush(nixl_be_engine_t *eng, shm_peer_t *peer);        /* peer->lock held */
void shm_peer_close_conn(nixl_be_engine_t *eng, shm_peer_t *peer);   /* ev_lock held */
void shm_peers_destroy(nixl_be_engine_t *eng); /* the table, then any leftovers */
nixl_status_t shm_load_remote_conn(nixl_be_engine_t *eng, const char *agent, const void *blob,
                                   size_t len);
nixl_status_t shm_connect(nixl_be_engine_t *eng, const char *agent);
nixl_status_t shm_disconnect(nixl_be_engine_t *eng, const char *agent);
nixl_status_t shm_gen_notif(nixl_be_engine_t *eng, const char *agent, const void *msg,
                            size_t len);

/* shm_peer.c: a fresh connection to the peer's socket, checked to be its process. */
nixl_status_t shm_peer_dial(nixl_be_engine_t *eng, shm_peer_t *peer, int *out);
/* Switch the peer to staging (logs `why` once at INFO; `why` must be a static string). */
void shm_peer_go_staged(nixl_be_engine_t *eng, shm_peer_t *peer, const char *why);

/* shm_region.c: registered DRAM regions. */
nixl_status_t shm_region_add(nixl_be_engine_t *eng, const nixl_reg_desc_t *descs, size_t count,
                             nixl_be_md_t **out_mds);
void shm_region_remove(nixl_be_engine_t *eng, shm_lmd_t *m);
/* Whether [addr, addr + len) lies inside one registered region (regs_lock held). */
bool shm_region_covers(const nixl_be_engine_t *eng, uintptr_t addr, size_t len);
void shm_region_free_all(nixl_be_engine_t *eng);

/* shm_map.c: shareable mappings. Target: find the files behind regions being registered
 * (fills bf, foff and blob of each md; never fails a registration), drop a region's file, and
 * answer a file request (SHMM) on `sock` (closed). Initiator: a region blob into an md (out:
 * the peer itself when the blob names no file); the references of mds and requests; make a
 * request's copies go through mappings when all its remote regions allow (false: keep CMA;
 * an error when a region's metadata is refused or transport=map cannot be honoured). */
void shm_map_detect(nixl_be_engine_t *eng, shm_lmd_t **mds, size_t count);
void shm_map_forget(nixl_be_engine_t *eng, shm_lmd_t *m); /* regs_lock held for writing */
void shm_map_serve(nixl_be_engine_t *eng, int sock, uint64_t addr);
nixl_status_t shm_map_load(nixl_be_engine_t *eng, struct shm_peer *peer, const nixl_desc_t *d,
                           const nixl_be_blob_t *blob, size_t idx, nixl_be_md_t **out);
void shm_rmd_unref(shm_rmd_t *r, size_t n);
/* The peer died: its files are unmapped here at once (anonymous pages take their place until
 * the mds go, so a copy still running lands in them harmlessly), not when the core invalidates
 * its metadata, which it does only when it next uses the peer. */
void shm_map_release_peer(struct shm_peer *peer);
nixl_status_t shm_map_prep(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_desc_t *remote);
nixl_status_t shm_map_copy(nixl_be_req_t *req, size_t chunk, bool async);

/* shm_copy.c: whether a request is split across the copy threads, the split copy (the
 * contract of shm_xfer_copy), and stopping the threads at destroy. */
bool shm_copy_splits(const nixl_be_req_t *req);
nixl_status_t shm_copy_split(nixl_be_req_t *req, size_t chunk, bool async);
void shm_copy_stop(nixl_be_engine_t *eng);

/* shm_xchan.c: staging rings. Initiator: move the request's bytes through its ring to the
 * peer (the same contract as shm_xfer_copy_iov). Target: serve a ring offered with SHMX (takes
 * the two descriptors, closed on failure); stop them all at destroy. */
nixl_status_t shm_xchan_copy(nixl_be_req_t *req, const struct iovec *l, const struct iovec *r,
                             size_t count, bool async);
/* The same through ring `ring` (0: x; k: bulk ring xb[k - 1], or x if the peer refuses bulk
 * rings); `desc` (NULL: the identity) names the request's descriptor of each piece, for the
 * reasons of failures. */
nixl_status_t shm_xchan_copy_ring(nixl_be_req_t *req, unsigned ring, const struct iovec *l,
                                  const struct iovec *r, const size_t *desc, size_t count,
                                  bool async);
/* Open the main ring if it is not (a split opens it before its bulk rings: a target keeps
 * half its stage_rings for main rings, and takes bulk rings only below that). */
nixl_status_t shm_xchan_open_main(nixl_be_req_t *req);
void shm_xchan_close(shm_peer_t *peer); /* every ring: the peer unused */
bool shm_xsrv_start(nixl_be_engine_t *eng, int memfd, int sock, uint64_t size);
void shm_xsrv_stop_all(nixl_be_engine_t *eng);
/* progress(): serve the jobs waiting on rings whose server thread is parked. */
void shm_xsrv_poll(nixl_be_engine_t *eng);
/* Wake a parked server thread (either side). */
void shm_xctl_wake(shm_xctl_t *ctl);

/* shm_trust.c: who may connect and notify. */
nixl_status_t shm_trust_parse(const nixl_be_init_t *init, shm_trust_t *t);
bool shm_trust_uid(const nixl_be_engine_t *eng, uid_t uid);
/* An accepted socket: false (refused, logged) unless its uid is trusted; fills cred_pid. */
bool shm_trust_accept(nixl_be_engine_t *eng, int fd, shm_conn_t *conn);
/* Whether a notification signed `name` may be delivered from this connection (ev_lock). */
bool shm_trust_sender(nixl_be_engine_t *eng, shm_conn_t *conn, const char *name,
                      size_t name_len);
void shm_trust_forget(shm_conn_t *conn); /* conn closes: drop its sender reference */

/* shm_event.c: the listen socket, the event thread, inbound connections. */
nixl_status_t shm_event_start(nixl_be_engine_t *eng);
void shm_event_stop(nixl_be_engine_t *eng);
uint32_t shm_slot_add(nixl_be_engine_t *eng, uint32_t kind, void *obj, uint64_t *data);
void shm_slot_free(nixl_be_engine_t *eng, uint32_t idx);
nixl_status_t shm_progress(nixl_be_engine_t *eng);

/* shm_ring.c: notification rings, both sides. */
shm_ringmem_t *shm_ring_get(nixl_be_engine_t *eng);                  /* ev_lock held */
void shm_ring_put(nixl_be_engine_t *eng, shm_ringmem_t *r);           /* ev_lock held */
void shm_ring_abandon(nixl_be_engine_t *eng, shm_ringmem_t *r);
void shm_ring_pool_free(nixl_be_engine_t *eng);
/* Deliver the records in order, up to (excluding) number `upto`. False: the ring holds
 * something no initiator of ours writes (the caller gives up on the connection). *blocked:
 * the next record waits for a message that is still in the socket. ev_lock held. */
bool shm_ring_drain(nixl_be_engine_t *eng, shm_conn_t *conn, uint64_t upto, bool *blocked);
/* The target's offer: its ring at `addr` (written by cross-memory attach), and when peer->
 * ring_fd_rx holds its memfd, mapped here too. peer->lock held. */
void shm_txring_enable(nixl_be_engine_t *eng, shm_peer_t *peer, uint64_t addr, uint64_t size,
                       uint64_t rec_max);
/* Forget the ring (its mapping too); peer->lock held. */
void shm_txring_off(shm_peer_t *peer);
/* Write one notification record numbered `seq` into the peer's ring, after `ndata` data
 * iovecs when given, in one process_vm_writev. Returns 1 written; 0 no ring, too big or no
 * room (nothing written); -1 failed (errno; the record is not committed; *data_ok tells
 * whether the data arrived whole). peer->lock held. */
int shm_txring_write(nixl_be_engine_t *eng, shm_peer_t *peer, uint64_t seq, const void *msg,
                     size_t len, const struct iovec *ldata, const struct iovec *rdata,
                     size_t ndata, size_t data_bytes, bool *data_ok);

/* shm_xfer.c: requests and the copy loop. shm_req_fail: keep the reason in req->why (check_xfer
 * repeats it on any thread) and return st. */
nixl_status_t shm_req_fail(nixl_be_req_t *req, nixl_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* While set (non-NULL), this thread's shm_req_fail writes its reason there instead: the slices
 * of a split request run on several threads at once, each into its own buffer of
 * sizeof(req->why) bytes, and the request keeps the first (shm_copy.c). */
void shm_req_why_to(char *buf);
/* The reason this thread's last shm_req_fail wrote for req. */
const char *shm_req_why(const nixl_be_req_t *req);
nixl_status_t shm_prep_xfer(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                            const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                            size_t count, const char *remote_agent,
                            const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out);
nixl_status_t shm_post_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req,
                            const nixl_be_xfer_opts_t *opts);
nixl_status_t shm_check_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t shm_release_req(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t shm_cancel_xfer(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* Move the request's bytes; chunk bounds each syscall; `async` checks cancel/dead between. */
nixl_status_t shm_xfer_copy(nixl_be_req_t *req, size_t chunk, bool async);
/* The same over other arrays (a staged request's rounds); the descriptor numbers in messages
 * are indexes into them. */
nixl_status_t shm_xfer_copy_iov(nixl_be_req_t *req, struct iovec *l, struct iovec *r,
                                size_t count, size_t chunk, bool async);
nixl_status_t shm_xfer_notify(nixl_be_req_t *req, const void *msg, size_t len);
/* Move the cursor (*idx, *off) of an iovec array forward by `bytes` (stops at count). */
void shm_iov_advance(const struct iovec *v, size_t count, size_t *idx, size_t *off,
                     uint64_t bytes);
/* A failed process_vm_* call (errno e at descriptor idx) as the request's failure. */
nixl_status_t shm_xfer_cma_error(nixl_be_req_t *req, int e, size_t idx, const struct iovec *r);

/* shm_gpu.c: VRAM regions and GPU requests. */
const nixl_gpu_ops_t *shm_gpu(nixl_be_engine_t *eng); /* NULL: no GPU */
nixl_status_t shm_gpu_register(nixl_be_engine_t *eng, const nixl_reg_desc_t *descs,
                               size_t count, nixl_be_md_t **out_mds);
void shm_gpu_deregister(shm_vlmd_t *m);
nixl_be_blob_t shm_gpu_blob(shm_vlmd_t *m);
nixl_status_t shm_gpu_load_remote(nixl_be_engine_t *eng, struct shm_peer *peer,
                                  const nixl_desc_t *descs, const nixl_be_blob_t *blobs,
                                  size_t count, nixl_be_md_t **out_mds);
nixl_status_t shm_gpu_load_local(nixl_be_engine_t *eng, shm_vlmd_t *m, nixl_be_md_t **out);
void shm_gpu_unload(nixl_be_engine_t *eng, shm_vrmd_t *r);
nixl_status_t shm_gpu_prep(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_desc_t *local, const nixl_be_desc_t *remote);
nixl_status_t shm_gpu_post(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_xfer_opts_t *opts);
nixl_status_t shm_gpu_check(nixl_be_engine_t *eng, nixl_be_req_t *req);
nixl_status_t shm_gpu_finish(nixl_be_req_t *req); /* the worker: wait, then notify */
/* shm_stage.c: GPU requests with another process's DRAM, through pinned buffers. */
nixl_status_t shm_stage_prep(nixl_be_engine_t *eng, nixl_be_req_t *req, int device,
                             const nixl_gpu_seg_t *segs, unsigned flags);
nixl_status_t shm_stage_run(nixl_be_req_t *req); /* the worker */
void shm_stage_free(nixl_be_engine_t *eng, nixl_be_req_t *req);
void shm_gpu_release(nixl_be_engine_t *eng, nixl_be_req_t *req);

/* shm_worker.c: the async worker. */
nixl_status_t shm_worker_submit(nixl_be_engine_t *eng, nixl_be_req_t *req);
void shm_worker_abort(nixl_be_engine_t *eng, nixl_be_req_t *req);
/* shm_thp.c: hugepages. prepare: before the regions are added (no lock held: collapse copies
 * the memory); queue: after, for the background conversion; forget: before a region is
 * removed. Never fail: a refusal of the kernel is logged once, and the memory stays as it was. */
void shm_thp_init(nixl_be_engine_t *eng); /* at engine creation */
void shm_thp_prepare(nixl_be_engine_t *eng, const nixl_reg_desc_t *descs, size_t count);
void shm_thp_queue(nixl_be_engine_t *eng, nixl_be_md_t *const *mds, size_t count);
void shm_thp_forget(nixl_be_engine_t *eng, shm_lmd_t *m);
void shm_thp_stop(nixl_be_engine_t *eng); /* at destroy: joins the thread */
void shm_worker_init(nixl_be_engine_t *eng); /* at engine creation */
void shm_worker_stop(nixl_be_engine_t *eng);

#endif
