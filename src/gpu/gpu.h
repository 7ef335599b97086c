/*
 * gpu.h - GPU memory for the core and, through nixl_host_t.gpu, for plugins: the CUDA driver
 * opened at run time, what an address is, CUDA IPC, and batched copies (one kernel launch per
 * descriptor list). See docs/gpu.md.
 *
 * Layer: above util (base), below core; no CUDA header or library at build time.
 */
#ifndef NIXL_GPU_H
#define NIXL_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "nixl.h"
#include "nixl_plugin.h"

/* The GPU services, for nixl_host_t.gpu; never NULL (without a driver device_count() is 0 and
 * every other operation fails with the reason). */
const nixl_gpu_ops_t *nixl_gpu_ops(void);

/* Whether the driver is usable; *why says why not (a string kept for the process). */
bool nixl_gpu_available(const char **why);

/* Check that every descriptor of a VRAM registration is GPU memory of GPU dev_id, wholly
 * inside one allocation. On failure the reason names the descriptor (nixl_err). */
nixl_status_t nixl_gpu_check_vram(const nixl_reg_desc_t *descs, size_t count);

#endif
