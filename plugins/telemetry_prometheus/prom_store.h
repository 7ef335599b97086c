/*
 * prom_store.h - the store file of one agent of the `prometheus_mp` exporter (prometheus_mp.c):
 * written by its owner through a shared mapping, read by the serving process with pread. Any
 * process allowed to write the directory can write a store, so a reader treats its bytes as
 * hostile (mp_store_read; fuzzed by tests/fuzz/fuzz_prom_store.c).
 */
#ifndef NIXL_PROM_STORE_H
#define NIXL_PROM_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "prom_metrics.h"

#define MP_MAX_BOUNDS 32
#define MP_MAGIC "NIXLPMS"
#define MP_VERSION 1u

typedef struct mp_store {
    char magic[8];
    uint32_t version;
    int32_t pid;
    _Atomic uint64_t seq;          /* odd while the owner writes */
    _Atomic uint64_t heartbeat_ms; /* CLOCK_REALTIME of the owner's last tick */
    uint32_t instance;
    uint32_t pad;
    char agent[256];
    char hostname[64];
    char local_rank[32];
    prom_bounds_t bounds;
    prom_values_t values;
} mp_store_t;

_Static_assert(sizeof(mp_store_t) % sizeof(uint64_t) == 0, "stores are copied by words");

/* A consistent, checked copy of the store open at `fd`: false when it is not a regular file of
 * a store's size, not one of ours (magic, version), kept changing, or holds what its owner
 * never writes (bounds that prom_bounds_parse would refuse). */
bool mp_store_read(int fd, mp_store_t *out);

/* The labels of a store read with mp_store_read: hostname, agent_name, pid, agent_instance and
 * local_rank when set. */
void mp_store_labels(const mp_store_t *s, prom_labels_t *out);

#endif
