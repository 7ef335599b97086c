/*
 * shm_map.c - shareable mappings: a peer's DRAM region that lies in a file of tmpfs (a memfd,
 * a /dev/shm file, a torch shared-memory tensor) or hugetlbfs is mapped into this process and
 * copied with plain loads and stores, no system call per transfer.
 *
 * Target (the region's owner): at registration, the kernel is asked for the mapping at each
 * region's address (PROCMAP_QUERY; older kernels: the text of /proc/self/maps, read once for the
 * whole list); a region wholly inside one MAP_SHARED, writable, linear mapping of one file gets a
 * descriptor of that file (its own name if it still has one, /proc/self/map_files, or one of
 * the process's open descriptors of the same file, in that order, each checked by device and
 * inode), kept once per file by the engine, and the file is checked to be on tmpfs or
 * hugetlbfs. The region's blob then says which file and where (shm_priv.h, SHM_MAP_MAGIC).
 * Nothing of this can fail a registration: a region without a file is reached by cross-memory
 * attach as before.
 *
 * Initiator: a region whose blob names a file gets its own md (shm_rmd_t); the first request
 * that uses it asks the owner for the file over a fresh connection (SHMM, with one end of a
 * socket pair that the answer comes back on, with the descriptor: SCM_RIGHTS). A file is never
 * opened by name: doing so would use this process's rights on behalf of a peer's metadata,
 * while a descriptor passed by the owner gives nothing the owner did not already have. The file
 * must be the one advertised (device, inode), on tmpfs or hugetlbfs, and long enough for the
 * region: otherwise the region is refused with the reason (forged or stale metadata) and so is
 * every request that uses it. Then the region's pages (aligned out to the file's page size) are
 * mapped once, cached in the md and unmapped when the md and the last request using it are
 * gone (unload, invalidation, disconnection); the total mapped at once is bounded by
 * map_max_bytes. Every remote range of a request is checked against its region's bounds at
 * prep, so the copies stay inside the mapping.
 *
 * A peer that dies leaves its file alive while it is mapped here: copies in flight finish into
 * (or from) pages nobody else sees, and the next post sees the peer gone. When the event thread
 * sees its socket close, its mappings are replaced by anonymous pages at the same addresses (one
 * mmap each, atomic for a copy running through them), so its memory is freed without waiting for
 * the core to invalidate its metadata, which it does only when it next uses the peer; the
 * address space goes with the md. The one hazard left is
 * the owner shrinking its file (ftruncate) under a live mapping, which would fault here as it
 * would in any program sharing that file; docs/backends.md says so.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "shm_priv.h"

/* ---- the target: which file is behind a region ---- */

typedef struct mapent {
    uintptr_t start, end;
    uint64_t off, dev, ino;
    char *path; /* as /proc/self/maps shows it */
} mapent_t;

typedef struct maps {
    mapent_t *e;
    size_t n, cap;
} maps_t;

static void maps_free(maps_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->e[i].path);
    free(m->e);
}

/* The shared, writable file mappings of this process, in address order (the kernel's). */
static bool maps_read(maps_t *m)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    bool ok = true;
    while (getline(&line, &cap, f) > 0) {
        unsigned long long s, e, off, ino;
        unsigned maj, mnr;
        char perms[8];
        int pos = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &s, &e, perms, &off, &maj, &mnr,
                   &ino, &pos) < 7 ||
            ino == 0 || strlen(perms) < 4 || perms[0] != 'r' || perms[1] != 'w' ||
            perms[3] != 's')
            continue;
        if (m->n == SHM_MAPS_SCAN_MAX)
            break; /* the regions beyond simply keep cross-memory attach */
        if (m->n == m->cap) {
            size_t nc = m->cap ? 2 * m->cap : 64;
            mapent_t *ne = realloc(m->e, nc * sizeof(*ne));
            if (!ne) {
                ok = false;
                break;
            }
            m->e = ne;
            m->cap = nc;
        }
        char *p = line + pos;
        p[strcspn(p, "\n")] = 0;
        char *path = strdup(p);
        if (!path) {
            ok = false;
            break;
        }
        m->e[m->n++] = (mapent_t){(uintptr_t)s, (uintptr_t)e, off, makedev(maj, mnr), ino, path};
    }
    free(line);
    fclose(f);
    return ok;
}

/* The run of entries that holds [a, a + len) as one linear piece of one file: its first
 * entry's index, or -1. */
static long maps_find(const maps_t *m, uintptr_t a, size_t len)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->e[mid].end <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == m->n || m->e[lo].start > a)
        return -1;
    const mapent_t *f = &m->e[lo];
    uintptr_t end = a + len;
    for (size_t k = lo; k < m->n; k++) {
        const mapent_t *e = &m->e[k];
        if (k > lo && (e->start != m->e[k - 1].end || e->dev != f->dev || e->ino != f->ino ||
                       e->off - f->off != e->start - f->start))
            return -1;
        if (e->end >= end)
            return (long)lo;
    }
    return -1;
}

/*
 * The kernel's PROCMAP_QUERY (Linux 6.11): the VMA covering one address, from a descriptor of
 * /proc/self/maps, without generating the text of every mapping (which costs 0.2-1.5 ms per
 * registration in a process with a few thousand mappings). Defined here for older headers; the
 * layout is the kernel's ABI.
 */
#define SHM_PROCMAP_QUERY _IOWR('f', 17, struct shm_procmap_query)
enum {
    SHM_PQ_READABLE = 0x01,
    SHM_PQ_WRITABLE = 0x02,
    SHM_PQ_SHARED = 0x08,
};
struct shm_procmap_query {
    uint64_t size, query_flags, query_addr;
    uint64_t vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
    uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    uint64_t vma_name_addr, build_id_addr;
};

/* How a registration finds the mappings behind its regions: the query where the kernel has it,
 * else the text of /proc/self/maps, read once. The last VMA the query returned is kept for the
 * call (`last`): the regions of one registration mostly lie in one buffer, so most of them are
 * answered without asking the kernel again (a query costs about 0.5 us). */
typedef struct finder {
    int fd;      /* eng->maps_fd for the query; -1: use the text */
    bool text;   /* maps is read */
    maps_t maps;
    bool have_last, last_ok; /* last: a VMA; last_ok: a shared, writable file mapping */
    mapent_t last;
    char name[4096];
} finder_t;

/* The VMA covering addr (0: found, with *ok telling whether it is a shared, writable file
 * mapping; 1: none; -1: no query here). The kernel is asked for whatever VMA covers addr, not
 * filtered, so that its extent is known either way and the next regions in it need no query. */
static int query_vma(finder_t *f, uintptr_t addr, mapent_t *out, bool *ok, bool want_name)
{
    struct shm_procmap_query q;
    memset(&q, 0, sizeof(q));
    q.size = sizeof(q);
    q.query_addr = addr;
    if (want_name) {
        /* The kernel writes the name; valgrind, which does not know this ioctl, would take
         * the bytes for uninitialised without this. */
        memset(f->name, 0, sizeof(f->name));
        q.vma_name_addr = (uintptr_t)f->name;
        q.vma_name_size = sizeof(f->name);
    }
    if (ioctl(f->fd, SHM_PROCMAP_QUERY, &q) != 0)
        return errno == ENOENT ? 1 : -1;
    const uint64_t need = SHM_PQ_READABLE | SHM_PQ_WRITABLE | SHM_PQ_SHARED;
    /* Shared anonymous memory has a (shmem) file and an inode too, as the kernel's own
     * FILE_BACKED filter sees it. */
    *ok = (q.vma_flags & need) == need && q.inode != 0;
    *out = (mapent_t){(uintptr_t)q.vma_start, (uintptr_t)q.vma_end, q.vma_offset,
                      makedev(q.dev_major, q.dev_minor), q.inode,
                      want_name && q.vma_name_size ? f->name : (char *)""};
    return 0;
}

/* The mapping whose file holds [a, a + len) as one linear piece: true with its first VMA in
 * *out (out->path valid until the next call). */
static bool find_backing(finder_t *f, uintptr_t a, size_t len, mapent_t *out)
{
    uintptr_t end = a + len;
    if (f->fd >= 0) {
        if (f->have_last && a >= f->last.start && end <= f->last.end) {
            *out = f->last;
            return f->last_ok;
        }
        bool ok = false;
        int r = query_vma(f, a, out, &ok, true);
        if (r == 0) {
            f->have_last = true;
            f->last = *out;
            f->last_ok = ok;
            if (!ok)
                return false;
            mapent_t first = *out, e = first;
            while (e.end < end) {
                if (query_vma(f, e.end, &e, &ok, false) != 0 || !ok || e.dev != first.dev ||
                    e.ino != first.ino || e.off - first.off != e.start - first.start)
                    return false;
            }
            return true;
        }
        if (r == 1)
            return false;
        f->fd = -1; /* no PROCMAP_QUERY in this kernel: the text (the caller says so) */
    }
    if (!f->text) {
        f->text = true;
        if (!maps_read(&f->maps))
            return false;
    }
    long k = maps_find(&f->maps, a, len);
    if (k < 0)
        return false;
    *out = f->maps.e[k];
    return true;
}

static bool file_is(int fd, uint64_t dev, uint64_t ino, struct stat *st, uint8_t *fs)
{
    struct statfs sf;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || (uint64_t)st->st_dev != dev ||
        (uint64_t)st->st_ino != ino || fstatfs(fd, &sf) != 0)
        return false;
    if ((unsigned long)sf.f_type == (unsigned long)TMPFS_MAGIC)
        *fs = SHM_FS_TMPFS;
    else if ((unsigned long)sf.f_type == (unsigned long)HUGETLBFS_MAGIC)
        *fs = SHM_FS_HUGETLBFS;
    else
        return false;
    return true;
}

/* The descriptors of this process, looked at once per registration that needs them. */
typedef struct fdscan {
    bool done;
    size_t n;
    struct {
        int fd;
        uint64_t dev, ino;
    } *e;
} fdscan_t;

static void fd_scan(fdscan_t *s)
{
    s->done = true;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int self = dirfd(d);
    size_t cap = 0, seen = 0;
    struct dirent *de;
    while ((de = readdir(d)) && seen++ < SHM_FD_SCAN_MAX) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        struct stat st;
        if (*end || end == de->d_name || fd == self || fstat((int)fd, &st) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (s->n == cap) {
            size_t nc = cap ? 2 * cap : 32;
            void *ne = realloc(s->e, nc * sizeof(*s->e));
            if (!ne)
                break;
            s->e = ne;
            cap = nc;
        }
        s->e[s->n].fd = (int)fd;
        s->e[s->n].dev = st.st_dev;
        s->e[s->n].ino = st.st_ino;
        s->n++;
    }
    closedir(d);
}

/* A descriptor of the file of entry e, of our own, read-write; -1 if none can be had. */
static int file_open(const mapent_t *e, fdscan_t *scan, struct stat *st, uint8_t *fs)
{
    char p[64];
    int fd;
    size_t pl = strlen(e->path);
    static const char del[] = " (deleted)";
    if (e->path[0] == '/' && !(pl > sizeof(del) - 1 && !strcmp(e->path + pl - (sizeof(del) - 1), del))) {
        fd = open(e->path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0 && file_is(fd, e->dev, e->ino, st, fs))
            return fd;
        if (fd >= 0)
            close(fd);
    }
    snprintf(p, sizeof(p), "/proc/self/map_files/%llx-%llx", (unsigned long long)e->start,
             (unsigned long long)e->end);
    fd = open(p, O_RDWR | O_CLOEXEC);
    if (fd >= 0 && file_is(fd, e->dev, e->ino, st, fs))
        return fd;
    if (fd >= 0)
        close(fd);
    if (!scan->done)
        fd_scan(scan);
    for (size_t i = 0; i < scan->n; i++) {
        if (scan->e[i].dev != e->dev || scan->e[i].ino != e->ino)
            continue;
        snprintf(p, sizeof(p), "/proc/self/fd/%d", scan->e[i].fd);
        fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd >= 0 && file_is(fd, e->dev, e->ino, st, fs))
            return fd;
        if (fd >= 0)
            close(fd);
    }
    return -1;
}

static shm_bfile_t *bfile_find(shm_bfile_t *list, uint64_t dev, uint64_t ino)
{
    for (shm_bfile_t *b = list; b; b = b->next)
        if (b->dev == dev && b->ino == ino)
            return b;
    return NULL;
}

static void blob_encode(shm_lmd_t *m)
{
    uint8_t *b = m->blob;
    memset(b, 0, SHM_MAP_BLOB);
    shm_put_u32(b, SHM_MAP_MAGIC);
    b[4] = SHM_MAP_VERSION;
    b[5] = m->bf->fs;
    shm_put_u64(b + 8, m->bf->dev);
    shm_put_u64(b + 16, m->bf->ino);
    shm_put_u64(b + 24, m->foff);
    shm_put_u64(b + 32, m->len);
    shm_put_u64(b + 40, m->bf->align);
}

void shm_map_detect(nixl_be_engine_t *eng, shm_lmd_t **mds, size_t count)
{
    if (eng->transport == SHM_TRANSPORT_CMA || eng->transport == SHM_TRANSPORT_STAGED || !count)
        return;
    finder_t *fnd = malloc(sizeof(*fnd));
    fdscan_t scan = {0};
    shm_bfile_t *fresh = NULL; /* files opened by this call, linked at the end */
    size_t found = 0;
    if (!fnd)
        goto out;
    /* One descriptor for the engine's life (opening it costs more than a query); -2: the
     * query is off (NIXL_SHM_MAPS_QUERY=0, for tests of the text) or missing here. */
    if (eng->maps_fd == -1)
        eng->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    fnd->fd = eng->maps_fd >= 0 ? eng->maps_fd : -1;
    fnd->text = false;
    fnd->maps = (maps_t){0};
    fnd->have_last = false;
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < count; i++) {
        shm_lmd_t *m = mds[i];
        mapent_t ent;
        if (!m->len || !find_backing(fnd, m->addr, m->len, &ent))
            continue;
        const mapent_t *e = &ent;
        uint64_t foff = e->off + (m->addr - e->start);
        /* Control operations are serialised: eng->bfiles changes only under us. */
        shm_bfile_t *bf = bfile_find(eng->bfiles, e->dev, e->ino);
        if (!bf)
            bf = bfile_find(fresh, e->dev, e->ino);
        if (!bf) {
            struct stat st;
            uint8_t fs;
            int fd = file_open(e, &scan, &st, &fs);
            if (fd < 0)
                continue;
            bf = calloc(1, sizeof(*bf));
            if (!bf) {
                close(fd);
                continue;
            }
            *bf = (shm_bfile_t){.next = fresh, .dev = e->dev, .ino = e->ino, .fd = fd, .fs = fs,
                                .align = fs == SHM_FS_HUGETLBFS && st.st_blksize > page
                                             ? (uint64_t)st.st_blksize
                                             : (uint64_t)page};
            fresh = bf;
        }
        struct stat st;
        if (fstat(bf->fd, &st) != 0 || (uint64_t)st.st_size < foff ||
            (uint64_t)st.st_size - foff < m->len)
            continue;
        m->foff = foff;
        m->bf = bf;
        blob_encode(m);
        found++;
    }
out:
    pthread_rwlock_wrlock(&eng->regs_lock);
    for (size_t i = 0; i < count; i++)
        if (mds[i]->bf)
            mds[i]->bf->refs++;
    while (fresh) {
        shm_bfile_t *b = fresh;
        fresh = b->next;
        if (!b->refs) {
            close(b->fd);
            free(b);
            continue;
        }
        b->next = eng->bfiles;
        eng->bfiles = b;
    }
    pthread_rwlock_unlock(&eng->regs_lock);
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                "%zu of %zu registered regions lie in shareable files (peers may map them)",
                found, count);
    if (fnd) {
        if (fnd->fd < 0 && eng->maps_fd >= 0) {
            close(eng->maps_fd); /* the kernel has no PROCMAP_QUERY */
            eng->maps_fd = -2;
        }
        maps_free(&fnd->maps);
        free(fnd);
    }
    free(scan.e);
}

void shm_map_forget(nixl_be_engine_t *eng, shm_lmd_t *m)
{
    shm_bfile_t *bf = m->bf;
    m->bf = NULL;
    if (!bf || --bf->refs)
        return;
    for (shm_bfile_t **pp = &eng->bfiles; *pp; pp = &(*pp)->next) {
        if (*pp == bf) {
            *pp = bf->next;
            break;
        }
    }
    close(bf->fd);
    free(bf);
}

/* The region starting at addr with a file, regs_lock held. */
static const shm_lmd_t *region_at(const nixl_be_engine_t *eng, uintptr_t addr)
{
    size_t lo = 0, hi = eng->nregs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (eng->regs[mid]->addr < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < eng->nregs && eng->regs[lo]->addr == addr; lo++)
        if (eng->regs[lo]->bf)
            return eng->regs[lo];
    return NULL;
}

void shm_map_serve(nixl_be_engine_t *eng, int sock, uint64_t addr)
{
    uint8_t f[32];
    pthread_rwlock_rdlock(&eng->regs_lock);
    const shm_lmd_t *m = addr <= UINTPTR_MAX ? region_at(eng, (uintptr_t)addr) : NULL;
    if (m)
        shm_put_frame32(f, SHM_MAPREP_MAGIC, 0, m->bf->dev, m->bf->ino, 0);
    else
        shm_put_frame32(f, SHM_MAPREP_MAGIC, ENOENT, 0, 0, 0);
    ssize_t n = shm_send_fds(sock, f, sizeof(f), m ? &m->bf->fd : NULL, m ? 1 : 0);
    pthread_rwlock_unlock(&eng->regs_lock);
    if (n < 0)
        NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "answering a file request: %s", strerror(errno));
    close(sock);
}

/* ---- the initiator ---- */

nixl_status_t shm_map_load(nixl_be_engine_t *eng, shm_peer_t *peer, const nixl_desc_t *d,
                           const nixl_be_blob_t *blob, size_t idx, nixl_be_md_t **out)
{
    const uint8_t *b = blob ? blob->data : NULL;
    size_t len = blob ? blob->len : 0;
    /* Empty: no file (an older engine of ours, or memory of no file). A later version of the
     * file blob: ignored the same way. Anything else is no blob of ours. */
    if (len && (len < 5 || shm_get_u32(b) != SHM_MAP_MAGIC))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                           "region %zu of '%s' has a %zu-byte blob that is no SHM file blob", idx,
                           peer->name, len);
    if (len && b[4] == SHM_MAP_VERSION && len < SHM_MAP_BLOB)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                           "region %zu of '%s': a truncated %zu-byte file blob", idx, peer->name,
                           len);
    /* No file, a transport that excludes mappings, or ourselves (memcpy anyway): the peer
     * itself is the md. */
    if (!len || b[4] != SHM_MAP_VERSION || eng->transport == SHM_TRANSPORT_CMA ||
        eng->transport == SHM_TRANSPORT_STAGED || peer->is_self) {
        shm_peer_ref(peer, 1);
        *out = (nixl_be_md_t *)peer;
        return NIXL_SUCCESS;
    }
    uint64_t foff = shm_get_u64(b + 24), rlen = shm_get_u64(b + 32), align = shm_get_u64(b + 40);
    uint8_t fs = b[5];
    if (rlen != d->len || (fs != SHM_FS_TMPFS && fs != SHM_FS_HUGETLBFS) || foff > INT64_MAX ||
        rlen > (uint64_t)INT64_MAX - foff || align < 4096 || align > ((uint64_t)1 << 30) ||
        (align & (align - 1)))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                           "region %zu of '%s' (0x%" PRIxPTR ", %zu bytes): its file blob is "
                           "malformed (file bytes %" PRIu64 " + %" PRIu64 ", file system %u, "
                           "alignment %" PRIu64 ")",
                           idx, peer->name, d->addr, d->len, foff, rlen, (unsigned)fs, align);
    shm_rmd_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory loading region %zu", idx);
    r->md.kind = SHM_MD_MAP;
    atomic_init(&r->refs, 1);
    r->peer = peer;
    r->addr = d->addr;
    r->len = d->len;
    r->dev = shm_get_u64(b + 8);
    r->ino = shm_get_u64(b + 16);
    r->foff = foff;
    r->align = align;
    r->fs = fs;
    pthread_mutex_init(&r->lock, NULL);
    shm_peer_ref(peer, 1);
    *out = (nixl_be_md_t *)r;
    return NIXL_SUCCESS;
}

void shm_rmd_unref(shm_rmd_t *r, size_t n)
{
    if (atomic_fetch_sub_explicit(&r->refs, n, memory_order_acq_rel) != n)
        return;
    if (r->map) {
        pthread_mutex_lock(&r->peer->maps_lock);
        nixl_list_remove(&r->peer->maps, &r->mnode);
        pthread_mutex_unlock(&r->peer->maps_lock);
        munmap(r->map, r->map_len);
        atomic_fetch_sub(&r->peer->eng->map_bytes, r->map_len);
    }
    pthread_mutex_destroy(&r->lock);
    shm_peer_unref(r->peer, 1);
    free(r);
}

/* Ask the owner for the file of region r; a descriptor (and the answering process's uid in
 * *peer_uid), or -1 with why. */
static int file_request(nixl_be_engine_t *eng, shm_rmd_t *r, uid_t *peer_uid, char *why,
                        size_t cap)
{
    shm_peer_t *peer = r->peer;
    int sv[2] = {-1, -1}, dfd = -1, fd = -1;
    bool fd_ok = false;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, cap, "socketpair: %s", strerror(errno));
        return -1;
    }
    nixl_status_t st = shm_peer_dial(eng, peer, &dfd);
    if (st != NIXL_SUCCESS) {
        snprintf(why, cap, "cannot connect to it (%s)", nixl_status_str(st));
        goto out;
    }
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    if (getsockopt(dfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
        snprintf(why, cap, "SO_PEERCRED: %s", strerror(errno));
        goto out;
    }
    *peer_uid = cred.uid;
    uint8_t f[SHM_FRAME_HDR];
    shm_put_u32(f, SHM_FRAME_MAPREQ);
    shm_put_u32(f + 4, 0);
    shm_put_u64(f + 8, r->addr);
    ssize_t n = shm_send_fds(dfd, f, sizeof(f), &sv[1], 1);
    if (n != (ssize_t)sizeof(f)) {
        snprintf(why, cap, "sending the request: %s", n < 0 ? strerror(errno) : "short write");
        goto out;
    }
    close(sv[1]);
    sv[1] = -1;
    struct pollfd p = {sv[0], POLLIN, 0};
    int k;
    do {
        k = poll(&p, 1, SHM_XOPEN_MS);
    } while (k < 0 && errno == EINTR);
    if (k <= 0) {
        snprintf(why, cap, "no answer within %d ms", SHM_XOPEN_MS);
        goto out;
    }
    uint8_t a[32];
    unsigned nfd;
    n = shm_recv_fds(sv[0], a, sizeof(a), &fd, 1, &nfd);
    if (n != (ssize_t)sizeof(a) || shm_get_u32(a) != SHM_MAPREP_MAGIC) {
        snprintf(why, cap, "%s", n == 0 ? "it closed the connection (gone, or an engine "
                                          "without file sharing)"
                                        : "a malformed answer");
    } else if (shm_get_u32(a + 4) != 0) {
        snprintf(why, cap, "it refused: %s", strerror((int)shm_get_u32(a + 4)));
    } else if (fd < 0) {
        snprintf(why, cap, "its answer carried no descriptor");
    } else {
        fd_ok = true;
    }
out:
    /* The target may still write on this connection (its ring offer, a polling-mode frame):
     * closing with unread bytes, or before it stops writing, would reset the connection (an
     * error in its log). Say we are done, and close when it has (bounded wait). */
    if (dfd >= 0) {
        uint8_t junk[256];
        shutdown(dfd, SHUT_WR);
        struct pollfd q = {dfd, POLLIN, 0};
        while (poll(&q, 1, SHM_RING_WAIT_MS) > 0 && recv(dfd, junk, sizeof(junk), 0) > 0) {
        }
    }
    if (fd_ok) {
        close(sv[0]);
        close(dfd);
        return fd;
    }
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    return -1;
}

/*
 * Whether a peer's file may be mapped here without handing the peer a way to kill us: a copy
 * through the mapping takes SIGBUS when the file has been cut shorter than the mapping, and
 * the owner (or anyone else who can write the file) can cut it at any time. That gives nothing
 * new to a peer of our own uid or root, which can signal us anyway; from any other peer it
 * would. So: a memfd sealed against shrinking (F_SEAL_SHRINK) is safe from anyone; otherwise
 * the answering process must run as our uid or root, and a file reachable by name (tmpfs,
 * hugetlbfs) must also be owned by one of them and writable by no group or other user.
 * Anything else is copied by cross-memory attach instead, with the reason.
 */
static bool is_memfd(int fd)
{
    char path[64], target[16];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target));
    return n >= 7 && memcmp(target, "/memfd:", 7) == 0;
}

static bool shrink_safe(int fd, const struct stat *st, uid_t peer_uid, char *why, size_t cap)
{
    int seals = fcntl(fd, F_GET_SEALS); /* tmpfs files answer too (F_SEAL_SEAL) */
    if (seals >= 0 && (seals & F_SEAL_SHRINK))
        return true;
    uid_t me = geteuid();
    if (peer_uid != me && peer_uid != 0) {
        snprintf(why, cap, "its owner runs as uid %u, not ours (%u) or root, and the file is not "
                           "a memfd sealed against shrinking (F_SEAL_SHRINK): it could cut the "
                           "file under our copies",
                 (unsigned)peer_uid, (unsigned)me);
        return false;
    }
    if (!is_memfd(fd) && ((st->st_uid != me && st->st_uid != 0) || (st->st_mode & 022))) {
        snprintf(why, cap, "its file (owner uid %u, mode %03o) may be written, and cut short, by "
                           "others than its owner's uid",
                 (unsigned)st->st_uid, (unsigned)(st->st_mode & 0777));
        return false;
    }
    return true;
}

/* Map region r (r->lock held): MAPPED, CMA (not possible here: why) or BAD (refused: why). */
static void rmd_map(nixl_be_engine_t *eng, shm_rmd_t *r)
{
    const char *who = r->peer->name;
    char why[200];
    if (r->len == 0) {
        r->state = SHM_RMD_CMA;
        snprintf(r->why, sizeof(r->why), "an empty region");
        return;
    }
    uid_t peer_uid = (uid_t)-1;
    int fd = file_request(eng, r, &peer_uid, why, sizeof(why));
    if (fd < 0) {
        r->state = SHM_RMD_CMA;
        snprintf(r->why, sizeof(r->why), "its file could not be had: %s", why);
        return;
    }
    struct stat st;
    uint8_t fs;
    if (!file_is(fd, r->dev, r->ino, &st, &fs)) {
        r->state = SHM_RMD_BAD;
        snprintf(r->why, sizeof(r->why),
                 "region 0x%" PRIxPTR " of '%s': the file it passed is not the tmpfs or "
                 "hugetlbfs file its metadata names (device %" PRIu64 ", inode %" PRIu64 ")",
                 r->addr, who, r->dev, r->ino);
        goto out;
    }
    if ((uint64_t)st.st_size < r->foff || (uint64_t)st.st_size - r->foff < r->len) {
        r->state = SHM_RMD_BAD;
        snprintf(r->why, sizeof(r->why),
                 "region 0x%" PRIxPTR " of '%s' claims bytes %" PRIu64 " to %" PRIu64
                 " of a file of %lld bytes: refused (forged or stale metadata)",
                 r->addr, who, r->foff, r->foff + r->len, (long long)st.st_size);
        goto out;
    }
    if (!shrink_safe(fd, &st, peer_uid, why, sizeof(why))) {
        r->state = SHM_RMD_CMA;
        snprintf(r->why, sizeof(r->why), "%s", why);
        goto out;
    }
    long page = sysconf(_SC_PAGESIZE);
    uint64_t align = fs == SHM_FS_HUGETLBFS && st.st_blksize > page ? (uint64_t)st.st_blksize
                                                                     : (uint64_t)page;
    uint64_t aoff = r->foff & ~(align - 1), delta = r->foff - aoff;
    uint64_t mlen = (delta + r->len + align - 1) & ~(align - 1);
    uint64_t was = atomic_fetch_add(&eng->map_bytes, mlen);
    if (was + mlen > eng->map_max) {
        atomic_fetch_sub(&eng->map_bytes, mlen);
        r->state = SHM_RMD_CMA;
        snprintf(r->why, sizeof(r->why),
                 "map_max_bytes (%" PRIu64 ") of peers' files are mapped already", eng->map_max);
        goto out;
    }
    void *p = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)aoff);
    if (p == MAP_FAILED) {
        atomic_fetch_sub(&eng->map_bytes, mlen);
        r->state = SHM_RMD_CMA;
        snprintf(r->why, sizeof(r->why), "mapping %" PRIu64 " bytes of its file: %s", mlen,
                 strerror(errno));
        goto out;
    }
    r->map = p;
    r->map_len = mlen;
    r->at = (uint8_t *)p + delta;
    r->state = SHM_RMD_MAPPED;
    shm_peer_t *peer = r->peer;
    pthread_mutex_lock(&peer->maps_lock);
    nixl_list_push(&peer->maps, &r->mnode);
    pthread_mutex_unlock(&peer->maps_lock);
out:
    close(fd);
}

void shm_map_release_peer(shm_peer_t *peer)
{
    pthread_mutex_lock(&peer->maps_lock);
    for (nixl_list_node_t *n = peer->maps; n; n = n->next) {
        shm_rmd_t *r = nixl_list_entry(n, shm_rmd_t, mnode);
        (void)mmap(r->map, r->map_len, PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    }
    pthread_mutex_unlock(&peer->maps_lock);
}

nixl_status_t shm_map_prep(nixl_be_engine_t *eng, nixl_be_req_t *req,
                           const nixl_be_desc_t *remote)
{
    bool force = eng->transport == SHM_TRANSPORT_MAP;
    if (eng->transport != SHM_TRANSPORT_AUTO && !force)
        return NIXL_SUCCESS;
    shm_peer_t *peer = req->peer;
    shm_rmd_t *prev = NULL;
    for (size_t i = 0; i < req->count; i++) {
        const shm_md_hdr_t *h = (const shm_md_hdr_t *)remote[i].md;
        if (h->kind != SHM_MD_MAP) {
            if (!force)
                return NIXL_SUCCESS; /* cross-memory attach for the whole request */
            return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                               "transport=map: descriptor %zu's remote region (agent '%s') "
                               "lies in no shareable file (its owner advertised none)",
                               i, peer->name);
        }
        shm_rmd_t *r = (shm_rmd_t *)(uintptr_t)h;
        uintptr_t a = remote[i].addr;
        size_t len = remote[i].len;
        if (a < r->addr || a - r->addr > r->len || len > r->len - (a - r->addr))
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "descriptor %zu (0x%" PRIxPTR ", %zu bytes) lies outside its "
                               "remote region (0x%" PRIxPTR ", %zu bytes) of '%s'",
                               i, a, len, r->addr, r->len, peer->name);
        if (r == prev)
            continue;
        prev = r;
        pthread_mutex_lock(&r->lock);
        if (r->state == SHM_RMD_NEW) {
            rmd_map(eng, r);
            if (r->state == SHM_RMD_BAD)
                NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "%s", r->why);
            else if (r->state == SHM_RMD_CMA)
                NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                            "region 0x%" PRIxPTR " of '%s' is reached by cross-memory attach, "
                            "not mapped: %s",
                            r->addr, peer->name, r->why);
        }
        int state = r->state;
        char why[sizeof(r->why)];
        memcpy(why, r->why, sizeof(why));
        pthread_mutex_unlock(&r->lock);
        if (state == SHM_RMD_BAD)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM, "descriptor %zu: %s", i, why);
        if (state == SHM_RMD_CMA) {
            if (!force)
                return NIXL_SUCCESS;
            return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                               "transport=map: descriptor %zu: region 0x%" PRIxPTR " of '%s' "
                               "cannot be mapped: %s",
                               i, r->addr, peer->name, why);
        }
    }
    shm_rmd_t **arr = malloc(req->count * sizeof(*arr));
    if (!arr)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory preparing %zu descriptors",
                           req->count);
    for (size_t i = 0, j; i < req->count; i = j) {
        shm_rmd_t *r = (shm_rmd_t *)remote[i].md;
        for (j = i; j < req->count && (shm_rmd_t *)remote[j].md == r; j++)
            arr[j] = r;
        atomic_fetch_add(&r->refs, j - i);
    }
    req->rmd = arr;
    if (!atomic_exchange(&peer->map_said, true))
        NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                    "transfers with agent '%s' to its regions in shareable files go through "
                    "mappings of those files (plain copies, no system call)",
                    peer->name);
    return NIXL_SUCCESS;
}

nixl_status_t shm_map_copy(nixl_be_req_t *req, size_t chunk, bool async)
{
    shm_peer_t *peer = req->peer;
    bool wr = req->op == NIXL_WRITE;
    for (size_t i = 0; i < req->count; i++) {
        shm_rmd_t *r = req->rmd[i];
        uint8_t *loc = req->liov[i].iov_base;
        uint8_t *rem = r->at + ((uintptr_t)req->riov[i].iov_base - r->addr);
        size_t len = req->liov[i].iov_len;
        for (size_t off = 0; off < len;) {
            if (async) {
                if (atomic_load_explicit(&req->cancel, memory_order_relaxed))
                    return shm_req_fail(req, NIXL_ERR_CANCELED, "transfer canceled");
                if (atomic_load_explicit(&peer->dead, memory_order_relaxed))
                    return shm_req_fail(req, NIXL_ERR_REMOTE_DISCONNECT, "agent '%s' is gone",
                                        peer->name);
                if (atomic_load_explicit(&peer->forgotten, memory_order_relaxed))
                    return shm_req_fail(req, NIXL_ERR_NOT_FOUND, "agent '%s' was disconnected",
                                        peer->name);
            }
            size_t n = len - off < chunk ? len - off : chunk;
            if (wr)
                memcpy(rem + off, loc + off, n);
            else
                memcpy(loc + off, rem + off, n);
            off += n;
        }
    }
    return NIXL_SUCCESS;
}
