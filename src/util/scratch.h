/*
 * scratch.h - a per-thread scratch buffer for arrays that live only during one call.
 *
 * Large fresh allocations come from newly mapped pages (mmap, or heap the allocator gave back
 * to the kernel) and cost a page fault every 4 KiB: several ns per descriptor or region on
 * the hot paths. Reusing one buffer per thread avoids that. The buffer is valid until the
 * next nixl_scratch_get() on the same thread; callers must not nest.
 */
#ifndef NIXL_UTIL_SCRATCH_H
#define NIXL_UTIL_SCRATCH_H

#include <stddef.h>

/* At least `bytes` bytes, 16-byte aligned; NULL when memory is short. */
void *nixl_scratch_get(size_t bytes);
/* Give an unusually large buffer back after use (kept: up to 8 MiB). */
void nixl_scratch_trim(void);

#endif
