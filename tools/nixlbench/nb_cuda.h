/*
 * nb_cuda.h - GPU buffers for --initiator_seg_type / --target_seg_type VRAM. The CUDA driver
 * (libcuda.so.1) is opened at run time, so nixlbench builds without CUDA and runs DRAM on any
 * host; only a VRAM run needs a driver and a GPU.
 *
 * Every call makes the GPU's primary context current on the calling thread first: the
 * initiator fills and checks from its main thread while its transfer threads only call the
 * library, and a caller need not know which thread opened the driver.
 */
#ifndef NB_CUDA_H
#define NB_CUDA_H

#include <stddef.h>
#include <stdint.h>

/* Open the driver and retain GPU `dev`'s primary context (once per process; later calls with
 * the same GPU do nothing). 0, or NB_EXIT_FAIL after nb_fail() said what is missing; `what`
 * names who needs it ("--target_seg_type VRAM"). */
int nb_cuda_open(int dev, const char *what);
/* GPU memory of `len` bytes; 0 or NB_EXIT_FAIL (printed). */
int nb_cuda_alloc(size_t len, uintptr_t *ptr);
void nb_cuda_free(uintptr_t ptr);
/* Set `len` bytes at `ptr` to `byte` and wait until the GPU has done it, so that a transfer on
 * any stream, or by another process, sees the bytes. 0 or NB_EXIT_FAIL (printed). */
int nb_cuda_fill(uintptr_t ptr, size_t len, uint8_t byte);
/* Copy [off, off + len) of the GPU buffer at `base` to the host, a piece at a time, and look
 * for a byte that is not `fill`: *bad is its offset (or -1) and *seen its value. 0 or
 * NB_EXIT_FAIL (printed). */
int nb_cuda_find_other(uintptr_t base, size_t off, size_t len, uint8_t fill, long long *bad,
                       uint8_t *seen);

#endif
