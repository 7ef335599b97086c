/*
 * registry.h - sections: the registered regions of one (engine, memory type), local or of a
 * peer, sorted by (dev_id, addr, len).
 *
 * "Which region covers [addr, addr+len)?" is answered in O(log n) and stays correct when
 * registrations overlap: besides the sorted array we keep, for every position i, the index of
 * the region with the largest end among the regions of the same device at positions <= i. All
 * regions at positions <= i start at or before the query, so the one that reaches furthest
 * covers the query if any region does.
 */
#ifndef NIXL_CORE_REGISTRY_H
#define NIXL_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl.h"
#include "nixl_plugin.h"

typedef struct nixl_region {
    uintptr_t addr;
    size_t len;       /* normalised: SIZE_MAX for "whole object" (see nixl_region_len) */
    uint64_t dev_id;
    nixl_be_md_t *md; /* the engine's metadata of this region */
    nixl_be_md_t *aux; /* local regions: the engine's loopback metadata of the region */
    const uint8_t *blob; /* local: the engine's public blob; remote: the peer's blob (arena) */
    size_t blob_len;
} nixl_region_t;

typedef struct nixl_section {
    nixl_region_t *regions;
    uint32_t *reach; /* reach[i]: index of the furthest-reaching region of its device in [0, i] */
    size_t count;
    size_t cap;
} nixl_section_t;

/* Zero-length FILE / BLK / OBJ registrations mean "the whole object". */
static inline size_t nixl_region_len(nixl_mem_t type, size_t len)
{
    if (len == 0 && (type == NIXL_FILE_SEG || type == NIXL_BLK_SEG || type == NIXL_OBJ_SEG))
        return SIZE_MAX;
    return len;
}

/* End of [addr, addr+len), saturated so "whole object" regions reach the top. */
static inline uintptr_t nixl_range_end(uintptr_t addr, size_t len)
{
    return len > UINTPTR_MAX - addr ? UINTPTR_MAX : addr + len;
}

static inline bool nixl_region_covers(const nixl_region_t *r, uintptr_t addr, size_t len,
                                      uint64_t dev_id)
{
    return r->dev_id == dev_id && r->addr <= addr &&
           nixl_range_end(r->addr, r->len) >= nixl_range_end(addr, len);
}

/* Total order of regions: dev_id, addr, len. */
int nixl_region_cmp(const nixl_region_t *a, const nixl_region_t *b);

void nixl_section_init(nixl_section_t *s);
void nixl_section_free(nixl_section_t *s);

/* Insert `n` regions (any order; duplicates are kept). NIXL_ERR_OOM if memory is short
 * (the section is unchanged then). */
nixl_status_t nixl_section_insert(nixl_section_t *s, const nixl_region_t *items, size_t n);

/* Index of a region equal to (addr, len, dev_id) (len normalised by the caller), or -1. When
 * several are equal, the one whose md is `md` if given, else the first. */
ptrdiff_t nixl_section_find_exact(const nixl_section_t *s, uintptr_t addr, size_t len,
                                  uint64_t dev_id, const nixl_be_md_t *md);

/* Remove the regions at the given indices (ascending, no duplicates). */
void nixl_section_remove(nixl_section_t *s, const size_t *idx, size_t n);

/* A region covering [addr, addr+len) of dev_id, or NULL. */
const nixl_region_t *nixl_section_lookup(const nixl_section_t *s, uintptr_t addr, size_t len,
                                         uint64_t dev_id);

#endif
