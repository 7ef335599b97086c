/*
 * shm_thp.c - registered DRAM in transparent huge pages (the `hugepages` parameter,
 * docs/backends.md). Cross-memory attach pins and copies a 2 MiB huge page about twice as fast
 * as 512 small ones, on both sides of a transfer (docs/BENCHMARKS.md), so the whole huge pages
 * inside a region are offered to the kernel:
 *  - advise: marked (MADV_HUGEPAGE): pages faulted from now on come huge; khugepaged converts
 *    the others in its own time, which is slow (16 MiB per 10 s by default).
 *  - collapse: converted at registration (MADV_COLLAPSE, Linux 6.1+). It copies the memory, about
 *    0.5-0.8 GB/s here, on the caller's thread.
 *  - background (the default): converted after registration by one thread of the engine at the
 *    lowest priority (nice 19), a few MiB at a time, so registration costs nothing and the
 *    application's threads keep the CPUs they need; transfers run meanwhile and get faster as
 *    the pages turn huge. Only huge pages whose small pages are all in memory are converted,
 *    and nothing is marked, so the application's memory never grows (a conversion fills the
 *    missing small pages of a huge page; a marked region gets huge pages on first touch).
 *    Like the kernel's khugepaged on a host with THP `always`, a conversion holds the process's
 *    address space while it converts one huge page, so a transfer or page fault meanwhile waits
 *    for it (up to a few ms here; docs/backends.md).
 * The bytes never change: the kernel copies under its own locks, concurrent accesses (ours,
 * a peer's cross-memory attach, the application's) included. The kernel may refuse (THP
 * disabled, memory that is not anonymous or shmem, pages pinned by a device): the region
 * then keeps its small pages, which costs speed only, and one INFO line says so.
 *
 * Background work: the regions with a whole huge page wait in a FIFO (util/fifo.h, a node in
 * each region's md), taken one at a time by one job of the engine's `thp` queue (util/jobq.h),
 * which runs while any is waiting. Deregistration takes the region out (O(1)), or, if the
 * thread is converting it, tells the thread to stop there; it never waits: a conversion in
 * flight on memory being freed is harmless (the kernel copies what is mapped, or finds nothing
 * mapped and refuses).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shm_priv.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; older C libraries lack the name */
#endif

#define SHM_HUGE_PAGE ((uintptr_t)2 << 20)
/* Bytes converted per call in the background: about 5 ms of the thread's CPU here, so a
 * deregistration or destroy racing the thread finds it within one such call. */
#define SHM_THP_STEP ((uintptr_t)4 << 20)
/* A range is given up after this many refusals in a row (pages pinned by a device refuse every
 * step with EAGAIN; going on through gigabytes of them would only burn the thread). */
#define SHM_THP_GIVE_UP 4

/* The whole huge pages of [addr, addr + len): false if there are none. */
static bool whole_pages(uintptr_t addr, size_t len, uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t end = addr + len;
    if (end < addr) /* wraps: shm_region_add refuses it */
        return false;
    *lo = (addr + SHM_HUGE_PAGE - 1) & ~(SHM_HUGE_PAGE - 1);
    *hi = end & ~(SHM_HUGE_PAGE - 1);
    return *lo < *hi && *lo != 0;
}

static void told(nixl_be_engine_t *eng, const char *mode, uintptr_t addr, size_t len, int err)
{
    if (!atomic_exchange(&eng->hp_told, true))
        NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                    "hugepages=%s: the kernel refused huge pages for the region at 0x%lx "
                    "(%zu bytes): %s; such regions keep their small pages (logged once)",
                    mode, (unsigned long)addr, len, strerror(err));
}

void shm_thp_prepare(nixl_be_engine_t *eng, const nixl_reg_desc_t *descs, size_t count)
{
    if (eng->hugepages != SHM_HUGEPAGES_ADVISE && eng->hugepages != SHM_HUGEPAGES_COLLAPSE)
        return;
    int advice = eng->hugepages == SHM_HUGEPAGES_COLLAPSE ? MADV_COLLAPSE : MADV_HUGEPAGE;
    for (size_t i = 0; i < count; i++) {
        uintptr_t lo, hi;
        if (whole_pages(descs[i].addr, descs[i].len, &lo, &hi) &&
            madvise((void *)lo, hi - lo, advice) != 0)
            told(eng, advice == MADV_COLLAPSE ? "collapse" : "advise", descs[i].addr, descs[i].len,
                 errno);
    }
}

static bool all_resident(const unsigned char *vec, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(vec[i] & 1))
            return false;
    return true;
}

/* Convert the huge pages of [at, at + len) (whole huge pages, at most SHM_THP_STEP) whose small
 * pages are all resident: one that is not is left alone, so the conversion never makes the
 * application's memory bigger (a conversion fills the missing small pages of a huge page, and
 * a huge page of none is refused). 0, or the errno of the kernel's last refusal; ENOMEM from
 * mincore: nothing mapped there any more. */
static int convert(uintptr_t at, size_t len)
{
    const size_t per = SHM_HUGE_PAGE / 4096;      /* small pages in a huge one */
    unsigned char vec[SHM_THP_STEP / 4096] = {0}; /* valgrind does not see mincore fill it */
    if (mincore((void *)at, len, vec) != 0)
        return errno;
    int err = 0;
    size_t pages = len / SHM_HUGE_PAGE;
    for (size_t i = 0; i < pages;) {
        size_t j = i;
        while (j < pages && all_resident(vec + j * per, per))
            j++;
        if (j > i &&
            madvise((void *)(at + i * SHM_HUGE_PAGE), (j - i) * SHM_HUGE_PAGE, MADV_COLLAPSE) != 0)
            err = errno;
        i = j + 1; /* past the page that is not all resident */
    }
    return err;
}

/* The job: convert the waiting regions, one step at a time, until none is left. */
static void thp_run(void *owner, nixl_fifo_node_t *job)
{
    (void)job;
    nixl_be_engine_t *eng = owner;
    nixl_jobq_t *q = &eng->thp;
    /* This thread only (Linux nice is per thread): the application's threads come first. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    pthread_mutex_lock(&q->lock);
    unsigned refused = 0;
    while (!nixl_jobq_stopping(q)) {
        if (!eng->thp_at) {
            nixl_fifo_node_t *n = nixl_fifo_front(&eng->thp_wait);
            if (!n)
                break;
            nixl_fifo_remove(&eng->thp_wait, n);
            const shm_lmd_t *m = nixl_list_entry(n, shm_lmd_t, thp_node);
            eng->thp_at = m; /* queued only with a whole huge page (shm_thp_queue) */
            whole_pages(m->addr, m->len, &eng->thp_lo, &eng->thp_hi);
            refused = 0;
        }
        uintptr_t at = eng->thp_lo;
        size_t step = eng->thp_hi - at < SHM_THP_STEP ? eng->thp_hi - at : SHM_THP_STEP;
        eng->thp_lo += step;
        pthread_mutex_unlock(&q->lock);
        int err = convert(at, step);
        pthread_mutex_lock(&q->lock);
        if (!eng->thp_at)
            continue; /* deregistered meanwhile */
        refused = err ? refused + 1 : 0;
        if (err == ENOMEM || refused >= SHM_THP_GIVE_UP) {
            /* EINVAL: not anonymous, THP off; EAGAIN: pinned pages; ENOMEM: unmapped memory,
             * or no huge page free */
            told(eng, "background", at, eng->thp_hi - at, err);
            eng->thp_at = NULL;
        } else if (eng->thp_lo >= eng->thp_hi) {
            eng->thp_at = NULL;
        }
    }
    eng->thp_active = false; /* a registration from now on queues the job again */
    pthread_mutex_unlock(&q->lock);
}

void shm_thp_init(nixl_be_engine_t *eng)
{
    nixl_jobq_init(&eng->thp, "shm-hugepages", thp_run, eng);
}

void shm_thp_queue(nixl_be_engine_t *eng, nixl_be_md_t *const *mds, size_t count)
{
    /* 2 MiB huge pages of 4 KiB ones: x86-64, and arm64 with 4 KiB pages */
    if (eng->hugepages != SHM_HUGEPAGES_BACKGROUND || sysconf(_SC_PAGESIZE) != 4096)
        return;
    nixl_jobq_t *q = &eng->thp;
    pthread_mutex_lock(&q->lock);
    bool added = false;
    for (size_t i = 0; i < count; i++) {
        shm_lmd_t *m = (shm_lmd_t *)mds[i];
        uintptr_t lo, hi;
        if (whole_pages(m->addr, m->len, &lo, &hi)) {
            nixl_fifo_push(&eng->thp_wait, &m->thp_node);
            added = true;
        }
    }
    bool start = added && !eng->thp_active;
    if (start)
        eng->thp_active = true;
    pthread_mutex_unlock(&q->lock);
    if (start && nixl_jobq_push(q, &eng->thp_job) != 0) {
        pthread_mutex_lock(&q->lock);
        eng->thp_active = false; /* no thread: the regions wait for the next registration */
        pthread_mutex_unlock(&q->lock);
    }
}

/* O(1): deregistering many regions one by one stays linear. */
void shm_thp_forget(nixl_be_engine_t *eng, shm_lmd_t *m)
{
    if (eng->hugepages != SHM_HUGEPAGES_BACKGROUND)
        return;
    nixl_jobq_t *q = &eng->thp;
    pthread_mutex_lock(&q->lock);
    if (eng->thp_at == m)
        eng->thp_at = NULL;
    nixl_fifo_remove(&eng->thp_wait, &m->thp_node); /* a no-op if it is not waiting */
    pthread_mutex_unlock(&q->lock);
}

void shm_thp_stop(nixl_be_engine_t *eng)
{
    nixl_jobq_stop(&eng->thp);
    nixl_jobq_fini(&eng->thp);
    eng->thp_wait = (nixl_fifo_t){0}; /* regions still waiting are freed with the index */
    eng->thp_at = NULL;
}
