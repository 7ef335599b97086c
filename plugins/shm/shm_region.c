/*
 * shm_region.c - the registered DRAM regions of an engine. Cross-memory attach never needed
 * them (the kernel refuses an unmapped address with EFAULT), but a staging ring's server thread
 * (shm_xchan.c) copies with plain loads and stores on behalf of a peer: it must refuse any
 * address outside what this process registered, or a peer with stale metadata would crash us.
 * A region that lies in a shareable file also records that file (shm_map.c), found before the
 * region is published.
 *
 * A sorted array of the regions (one md each) with, for every index, the largest end among the
 * regions up to it: a lookup is a binary search for the last region starting at or below the
 * address, then a walk back that stops as soon as no earlier region reaches far enough, so
 * overlapping registrations are found and disjoint ones cost one comparison. Insertion is an
 * O(n) memmove (O(1) for the usual ascending addresses). Removal only marks the entry dead,
 * and the index is compacted in one pass once dead entries outnumber live ones: deregistering
 * 10,000 regions one by one cost 7-17 us each with a memmove and a pmax rebuild per removal,
 * O(n^2) in all. Dead entries keep their place (and their md's memory, freed at compaction),
 * so searches stay valid; lookups skip them, and pmax may overstate, which only means a longer
 * walk back. regs_lock (a rwlock) is held for
 * reading by a server thread for the whole of one job's copy, so deregistration waits for the
 * copy in progress (one slot, a few hundred microseconds) before the memory can go away.
 */
#include <stdlib.h>
#include <string.h>

#include "shm_priv.h"

static uintptr_t reg_end(const shm_lmd_t *m)
{
    return m->addr + m->len;
}

/* Index of the first region starting above addr. */
static size_t upper_bound(const nixl_be_engine_t *eng, uintptr_t addr)
{
    size_t lo = 0, hi = eng->nregs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (eng->regs[mid]->addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void fix_pmax(nixl_be_engine_t *eng, size_t from)
{
    for (size_t i = from; i < eng->nregs; i++) {
        uintptr_t e = reg_end(eng->regs[i]);
        eng->regs_pmax[i] = i && eng->regs_pmax[i - 1] > e ? eng->regs_pmax[i - 1] : e;
    }
}

bool shm_region_covers(const nixl_be_engine_t *eng, uintptr_t addr, size_t len)
{
    if (len > UINTPTR_MAX - addr)
        return false;
    uintptr_t end = addr + len;
    for (size_t i = upper_bound(eng, addr); i-- > 0;) {
        if (eng->regs_pmax[i] < end)
            return false; /* no region up to here reaches the end */
        if (!eng->regs[i]->dead && reg_end(eng->regs[i]) >= end)
            return true; /* starts at or below addr and reaches the end */
    }
    return false;
}

static bool reserve(nixl_be_engine_t *eng, size_t more)
{
    if (eng->nregs + more <= eng->regs_cap)
        return true;
    size_t cap = eng->regs_cap ? eng->regs_cap : 16;
    while (cap < eng->nregs + more)
        cap *= 2;
    shm_lmd_t **r = realloc(eng->regs, cap * sizeof(*r));
    if (!r)
        return false;
    eng->regs = r;
    uintptr_t *p = realloc(eng->regs_pmax, cap * sizeof(*p));
    if (!p)
        return false;
    eng->regs_pmax = p;
    eng->regs_cap = cap;
    return true;
}

nixl_status_t shm_region_add(nixl_be_engine_t *eng, const nixl_reg_desc_t *descs, size_t count,
                             nixl_be_md_t **out_mds)
{
    for (size_t i = 0; i < count; i++)
        if (descs[i].len > UINTPTR_MAX - descs[i].addr)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "region %zu (0x%llx, %zu bytes) wraps around the address space",
                               i, (unsigned long long)descs[i].addr, descs[i].len);
    /* The mds are made and their files found (shm_map.c) before anyone can see them. */
    size_t made = 0;
    for (; made < count; made++) {
        shm_lmd_t *m = malloc(sizeof(*m));
        if (!m)
            goto oom;
        *m = (shm_lmd_t){.md.kind = SHM_MD_LOCAL, .eng = eng, .addr = descs[made].addr,
                         .len = descs[made].len};
        out_mds[made] = (nixl_be_md_t *)m;
    }
    shm_map_detect(eng, (shm_lmd_t **)out_mds, count);
    pthread_rwlock_wrlock(&eng->regs_lock);
    if (!reserve(eng, count)) {
        for (size_t i = 0; i < count; i++)
            shm_map_forget(eng, (shm_lmd_t *)out_mds[i]);
        pthread_rwlock_unlock(&eng->regs_lock);
        goto oom;
    }
    for (size_t i = 0; i < count; i++) {
        shm_lmd_t *m = (shm_lmd_t *)out_mds[i];
        size_t at = upper_bound(eng, m->addr);
        memmove(eng->regs + at + 1, eng->regs + at, (eng->nregs - at) * sizeof(*eng->regs));
        eng->regs[at] = m;
        eng->nregs++;
        fix_pmax(eng, at);
    }
    pthread_rwlock_unlock(&eng->regs_lock);
    return NIXL_SUCCESS;
oom:
    for (size_t i = 0; i < made; i++)
        free(out_mds[i]);
    return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory registering %zu regions",
                       count);
}

/* Drop the dead entries in one pass (regs_lock held for writing). */
static void compact(nixl_be_engine_t *eng)
{
    size_t n = 0;
    for (size_t i = 0; i < eng->nregs; i++) {
        if (eng->regs[i]->dead)
            free(eng->regs[i]);
        else
            eng->regs[n++] = eng->regs[i];
    }
    eng->nregs = n;
    eng->regs_dead = 0;
    fix_pmax(eng, 0);
}

void shm_region_remove(nixl_be_engine_t *eng, shm_lmd_t *m)
{
    pthread_rwlock_wrlock(&eng->regs_lock);
    /* Among the regions starting at m->addr, find this very md. */
    size_t i = upper_bound(eng, m->addr);
    while (i-- > 0 && eng->regs[i] != m && eng->regs[i]->addr == m->addr) {
    }
    bool indexed = i < eng->nregs && eng->regs[i] == m;
    shm_map_forget(eng, m); /* before compact(), which may free m */
    if (indexed) {
        m->dead = true; /* freed by compact() */
        if (++eng->regs_dead > eng->nregs / 2)
            compact(eng);
    }
    pthread_rwlock_unlock(&eng->regs_lock);
    if (!indexed)
        free(m); /* never indexed (registration ran out of memory) */
}

void shm_region_free_all(nixl_be_engine_t *eng)
{
    /* The core deregisters everything before destroy; anything left was leaked by a caller. */
    for (size_t i = 0; i < eng->nregs; i++) {
        if (!eng->regs[i]->dead) /* a dead one's file was forgotten at its removal */
            shm_map_forget(eng, eng->regs[i]);
        free(eng->regs[i]);
    }
    free(eng->regs);
    free(eng->regs_pmax);
    eng->regs = NULL;
    eng->regs_pmax = NULL;
    eng->nregs = eng->regs_cap = eng->regs_dead = 0;
}
