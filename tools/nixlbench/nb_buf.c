/*
 * nb_buf.c - the buffer of one side, in DRAM (mmap, optionally huge pages: from the pool, else
 * transparent ones; optionally on a memfd) or VRAM (GPU memory through the CUDA driver,
 * nb_cuda.c), and the only ways the rest of nixlbench touches its bytes: fill with a pattern,
 * and look for a byte that breaks it. VRAM is filled on the GPU and checked by copying to the
 * host, so the check reads what a transfer left in GPU memory.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nb.h"
#include "nb_cuda.h"

#define HUGE_PAGE (2u << 20)

nixl_mem_t nb_seg_mem(const char *seg_type)
{
    return strcmp(seg_type, "VRAM") ? NIXL_DRAM_SEG : NIXL_VRAM_SEG;
}

static int alloc_dram(nb_side_t *s, const nb_cfg_t *cfg, size_t len)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    s->map_len = len ? len : 1;
    if (cfg->use_hugepages) {
        flags |= MAP_HUGETLB;
        s->map_len = (s->map_len + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    }
    int fd = -1;
    if (cfg->dram_memfd) {
        /* a shareable file: an SHM peer maps it and copies with memcpy (docs/backends.md) */
        fd = memfd_create("nixlbench", MFD_CLOEXEC | (cfg->use_hugepages ? MFD_HUGETLB : 0));
        if (fd < 0 || ftruncate(fd, (off_t)s->map_len) != 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            s->map_len = 0;
            return nb_fail("cannot make a %zu-byte memfd%s: %s", len,
                           cfg->use_hugepages ? " of huge pages" : "", strerror(e));
        }
        flags = MAP_SHARED;
    }
    void *p = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, flags, fd, 0);
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (p == MAP_FAILED && e == ENOMEM && cfg->use_hugepages && !cfg->dram_memfd) {
        /* No pool of huge pages (vm.nr_hugepages is 0 on most hosts): transparent ones, which
         * need no pool. The kernel aligns a mapping of whole huge pages to a huge page, and the
         * pages come at the first touch (the fill). */
        p = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        e = errno;
        if (p != MAP_FAILED && madvise(p, s->map_len, MADV_HUGEPAGE) != 0)
            fprintf(stderr, "%s: --use_hugepages: no huge page pool, and transparent huge "
                    "pages refused (%s): small pages\n", nb_who, strerror(errno));
        else if (p != MAP_FAILED)
            fprintf(stderr, "%s: --use_hugepages: no huge page pool (vm.nr_hugepages): "
                    "transparent huge pages instead\n", nb_who);
    }
    if (p == MAP_FAILED) {
        s->map_len = 0;
        return nb_fail("cannot allocate %zu bytes%s: %s", len,
                       cfg->use_hugepages ? " of huge pages" : "", strerror(e));
    }
    s->buf = p;
    return 0;
}

static int alloc_vram(nb_side_t *s, size_t len, const char *who)
{
    char what[64];
    snprintf(what, sizeof(what), "--%s_seg_type VRAM", who);
    uintptr_t p;
    if (nb_cuda_open((int)NB_GPU, what) || nb_cuda_alloc(len, &p))
        return NB_EXIT_FAIL;
    s->buf = (uint8_t *)p;
    s->gpu_len = len ? len : 1;
    return 0;
}

int nb_side_alloc(nb_side_t *s, const nb_cfg_t *cfg, nixl_mem_t mem, size_t len, uint8_t fill)
{
    const char *who = strcmp(nixl_agent_name(s->agent), NB_TARGET) ? "initiator" : "target";
    s->mem = mem;
    s->dev = mem == NIXL_VRAM_SEG ? NB_GPU : 0;
    int rc = mem == NIXL_VRAM_SEG ? alloc_vram(s, len, who) : alloc_dram(s, cfg, len);
    if (rc)
        return rc;
    s->len = len;
    if ((rc = nb_side_fill(s, 0, mem == NIXL_VRAM_SEG ? s->gpu_len : s->map_len, fill)))
        return rc;
    nixl_reg_desc_t r = {.addr = (uintptr_t)s->buf, .len = s->len, .dev_id = s->dev};
    nixl_status_t st = nixl_agent_register_mem(s->agent, mem, &r, 1, NULL);
    if (st != NIXL_SUCCESS && mem == NIXL_VRAM_SEG)
        return nb_fail("cannot register %zu bytes of VRAM (GPU %d) with backend %s: %s: %s", len,
                       NB_GPU, s->backend, nixl_status_str(st), nixl_last_error());
    if (st != NIXL_SUCCESS)
        return nb_fail("cannot register %zu bytes: %s", len, nixl_last_error());
    return 0;
}

void nb_side_free_buf(nb_side_t *s)
{
    if (s->map_len)
        munmap(s->buf, s->map_len);
    if (s->gpu_len)
        nb_cuda_free((uintptr_t)s->buf);
    s->buf = NULL;
    s->map_len = s->gpu_len = 0;
}

int nb_side_fill(nb_side_t *s, size_t off, size_t len, uint8_t fill)
{
    if (s->mem == NIXL_VRAM_SEG)
        return nb_cuda_fill((uintptr_t)s->buf + off, len, fill);
    memset(s->buf + off, fill, len);
    return 0;
}

int nb_side_find_other(const nb_side_t *s, size_t off, size_t len, uint8_t fill, long long *bad,
                       uint8_t *seen)
{
    if (s->mem == NIXL_VRAM_SEG)
        return nb_cuda_find_other((uintptr_t)s->buf, off, len, fill, bad, seen);
    *bad = nb_check_fill(s->buf, off, len, fill);
    if (*bad >= 0)
        *seen = s->buf[*bad];
    return 0;
}

long long nb_check_fill(const uint8_t *p, size_t off, size_t len, uint8_t fill)
{
    static _Thread_local uint8_t ref[4096];
    static _Thread_local int ref_fill = -1;
    if (ref_fill != fill) {
        memset(ref, fill, sizeof(ref));
        ref_fill = fill;
    }
    for (size_t at = off; at < off + len;) {
        size_t n = off + len - at < sizeof(ref) ? off + len - at : sizeof(ref);
        if (memcmp(p + at, ref, n))
            for (size_t i = 0; i < n; i++)
                if (p[at + i] != fill)
                    return (long long)(at + i);
        at += n;
    }
    return -1;
}
