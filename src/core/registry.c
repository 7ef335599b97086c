#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "error.h"

int nixl_region_cmp(const nixl_region_t *a, const nixl_region_t *b)
{
    if (a->dev_id != b->dev_id)
        return a->dev_id < b->dev_id ? -1 : 1;
    if (a->addr != b->addr)
        return a->addr < b->addr ? -1 : 1;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return 0;
}

static int region_qsort_cmp(const void *a, const void *b)
{
    return nixl_region_cmp(a, b);
}

void nixl_section_init(nixl_section_t *s)
{
    memset(s, 0, sizeof(*s));
}

void nixl_section_free(nixl_section_t *s)
{
    free(s->regions);
    free(s->reach);
    nixl_section_init(s);
}

/* Recompute reach[] from position `from` on; everything before stays valid. */
static void reach_update(nixl_section_t *s, size_t from)
{
    for (size_t i = from; i < s->count; i++) {
        const nixl_region_t *r = &s->regions[i];
        if (i == 0 || s->regions[i - 1].dev_id != r->dev_id) {
            s->reach[i] = (uint32_t)i;
            continue;
        }
        uint32_t prev = s->reach[i - 1];
        const nixl_region_t *p = &s->regions[prev];
        s->reach[i] = nixl_range_end(r->addr, r->len) > nixl_range_end(p->addr, p->len)
                          ? (uint32_t)i
                          : prev;
    }
}

static bool section_grow(nixl_section_t *s, size_t need)
{
    if (need <= s->cap)
        return true;
    if (need > UINT32_MAX)
        return false;
    size_t cap = nixl_array_grow_cap(s->cap, need, sizeof(*s->regions));
    nixl_region_t *regions = nixl_array_realloc(s->regions, cap, sizeof(*regions));
    if (!regions)
        return false;
    s->regions = regions;
    uint32_t *reach = nixl_array_realloc(s->reach, cap, sizeof(*reach));
    if (!reach)
        return false;
    s->reach = reach;
    s->cap = cap;
    return true;
}

/* First position whose region is not less than `key`. */
static size_t lower_bound(const nixl_section_t *s, const nixl_region_t *key)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (nixl_region_cmp(&s->regions[mid], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool is_sorted(const nixl_region_t *items, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (nixl_region_cmp(&items[i - 1], &items[i]) > 0)
            return false;
    return true;
}

nixl_status_t nixl_section_insert(nixl_section_t *s, const nixl_region_t *items, size_t n)
{
    if (n == 0)
        return NIXL_SUCCESS;
    if (n > SIZE_MAX / 2 - s->count || !section_grow(s, s->count + n))
        return NIXL_ERR_OOM;

    if (n == 1) {
        size_t pos = lower_bound(s, &items[0]);
        memmove(&s->regions[pos + 1], &s->regions[pos], (s->count - pos) * sizeof(*items));
        s->regions[pos] = items[0];
        s->count++;
        reach_update(s, pos);
        return NIXL_SUCCESS;
    }

    /* Batches: sort the batch (usually already sorted: skip the sort then) and merge it from
     * the back, so that the existing array is moved at most once. */
    nixl_region_t *batch = NULL;
    const nixl_region_t *sorted = items;
    if (!is_sorted(items, n)) {
        batch = malloc(n * sizeof(*batch));
        if (!batch)
            return NIXL_ERR_OOM;
        memcpy(batch, items, n * sizeof(*batch));
        qsort(batch, n, sizeof(*batch), region_qsort_cmp);
        sorted = batch;
    }
    size_t first_changed = lower_bound(s, &sorted[0]);
    size_t i = s->count, j = n, out = s->count + n;
    while (j > 0) {
        if (i > 0 && nixl_region_cmp(&s->regions[i - 1], &sorted[j - 1]) > 0)
            s->regions[--out] = s->regions[--i];
        else
            s->regions[--out] = sorted[--j];
    }
    s->count += n;
    free(batch);
    reach_update(s, first_changed);
    return NIXL_SUCCESS;
}

ptrdiff_t nixl_section_find_exact(const nixl_section_t *s, uintptr_t addr, size_t len,
                                  uint64_t dev_id, const nixl_be_md_t *md)
{
    nixl_region_t key = {.addr = addr, .len = len, .dev_id = dev_id};
    size_t pos = lower_bound(s, &key);
    ptrdiff_t first = -1;
    for (size_t i = pos; i < s->count && nixl_region_cmp(&s->regions[i], &key) == 0; i++) {
        if (!md || s->regions[i].md == md)
            return (ptrdiff_t)i;
        if (first < 0)
            first = (ptrdiff_t)i;
    }
    return md ? -1 : first;
}

void nixl_section_remove(nixl_section_t *s, const size_t *idx, size_t n)
{
    if (n == 0)
        return;
    size_t out = idx[0], k = 0;
    for (size_t i = idx[0]; i < s->count; i++) {
        if (k < n && idx[k] == i) {
            k++;
            continue;
        }
        s->regions[out++] = s->regions[i];
    }
    size_t from = idx[0];
    s->count = out;
    if (s->count == 0) {
        nixl_section_free(s);
        return;
    }
    reach_update(s, from < s->count ? from : s->count);
}

const nixl_region_t *nixl_section_lookup(const nixl_section_t *s, uintptr_t addr, size_t len,
                                         uint64_t dev_id)
{
    /* The last region starting at or before addr (ties on addr: any length counts). */
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const nixl_region_t *r = &s->regions[mid];
        if (r->dev_id < dev_id || (r->dev_id == dev_id && r->addr <= addr))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const nixl_region_t *last = &s->regions[lo - 1];
    if (last->dev_id != dev_id)
        return NULL;
    const nixl_region_t *best = &s->regions[s->reach[lo - 1]];
    return nixl_region_covers(best, addr, len, dev_id) ? best : NULL;
}
