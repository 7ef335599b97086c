/* shm.h - the built-in SHM backend: same-host DRAM transfers by cross-memory attach. */
#ifndef NIXL_PLUGIN_SHM_H
#define NIXL_PLUGIN_SHM_H

#include "nixl_plugin.h"

/**
 * The SHM plugin (name "SHM"; caps REMOTE, LOCAL, NOTIF; DRAM only). Its description is static
 * and lives as long as the process. Parameters: "async_threshold" (bytes; default "0" =
 * never): posts of at least that many bytes are copied by a worker thread and return IN_PROG.
 * "notif_ring_size" (bytes, a power of two from 4 KiB to 64 MiB, or 0; default 256 KiB, not
 * advertised among the defaults): the notification ring this engine offers to each inbound
 * connection (see shm_ring.c); 0 offers none, so peers send it notifications by socket. Rings
 * exist on x86-64 only.
 */
const nixl_plugin_t *nixl_shm_plugin_entry(uint32_t host_abi_version);

#endif
