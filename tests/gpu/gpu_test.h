/*
 * gpu_test.h - what the GPU tests need from the CUDA driver, opened at run time as the library
 * opens it (no CUDA header or library at build time), plus their shared helpers.
 */
#ifndef NIXL_GPU_TEST_H
#define NIXL_GPU_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "nixl.h"

#define GT_SKIP 77

/* Open the driver and make GPU 0's primary context current. 0, or GT_SKIP (printing why)
 * without a driver or a GPU. */
int gt_init(void);
int gt_device_count(void);
/* GPU memory, pinned host memory; abort on failure (a test cannot go on without them). */
uint64_t gt_alloc(size_t len);
void gt_free(uint64_t ptr);
void *gt_alloc_pinned(size_t len);
void gt_free_pinned(void *p);
void gt_htod(uint64_t dst, const void *src, size_t len);
void gt_dtoh(void *dst, uint64_t src, size_t len);
void gt_memset(uint64_t dst, uint8_t v, size_t len);
/* Baselines: the driver's copies (any pair of GPU and host addresses), on one stream. */
void gt_copy_async(uint64_t dst, uint64_t src, size_t len);
void gt_copy_wait(void);

/* Failures counted by GT_CHECK; a test exits 1 when any. */
extern int gt_failures;
#define GT_CHECK(cond, ...)                                                                  \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                 \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, " [last error: %s]\n", nixl_last_error());                      \
            gt_failures++;                                                                   \
        }                                                                                    \
    } while (0)

/* The GPU tests' host-side patterns and descriptor lists. */
/* p[i] = a byte of pattern `seed` (a different one per seed and per 4 KiB). */
void gt_fill(uint8_t *p, size_t n, unsigned seed);
/* n odd-sized pieces at odd offsets, with gaps, spread over `len` bytes: a[i] from abase and
 * b[i] from bbase at the same offsets. Returns the bytes of the pieces. */
size_t gt_pieces(nixl_desc_t *a, nixl_desc_t *b, uintptr_t abase, uintptr_t bbase, size_t len,
                 size_t n);
/* want = before, with the pieces of gt_pieces(len, n) taken from src (all three len bytes). */
void gt_expect(uint8_t *want, const uint8_t *before, const uint8_t *src, size_t len, size_t n);

/* Wait for a posted request: its final status (NIXL_ERR_UNKNOWN after 60 s). */
nixl_status_t gt_wait(nixl_agent_t *a, nixl_xfer_req_t *req, nixl_status_t posted);
double gt_now(void);

#endif
