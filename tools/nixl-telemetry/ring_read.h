/*
 * ring_read.h - checking and consuming a BUFFER telemetry ring (include/nixl_telemetry.h) that
 * another process wrote: its bytes are not trusted. The header must be version 4 with a
 * power-of-two capacity whose events fit in the bytes mapped; positions are masked with the
 * capacity checked at attach (the writer may rewrite the header at any time, so it is never
 * read again for bounds). Used by nixl-telemetry and by tests/fuzz/fuzz_telem_ring.c.
 */
#ifndef NIXL_TELEMETRY_RING_READ_H
#define NIXL_TELEMETRY_RING_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl_telemetry.h"

typedef struct ring_view {
    nixl_telemetry_ring_header_t *hdr;
    const nixl_telemetry_event_t *events;
    uint64_t mask; /* capacity - 1, as checked at attach */
} ring_view_t;

/* Check the header of `len` bytes at `map` (8-byte aligned). 0: usable, *v set; 1: not ready
 * (shorter than a header, or version 0: the writer is initialising it); -1: not a ring we
 * read. `why` (for 1 and -1) says which, prefixed with `label`. */
int ring_view_attach(ring_view_t *v, void *map, size_t len, const char *label, char *why,
                     size_t why_len);

/* Take one event and advance read_pos; false when none is waiting. */
bool ring_view_take(ring_view_t *v, nixl_telemetry_event_t *out);

/* Take the events waiting, `fn` for each, and how many: at most capacity - 1 (what a full
 * ring holds), so a summary ends even while a writer, or a hostile process moving the
 * positions, keeps adding. */
uint64_t ring_view_drain(ring_view_t *v, void (*fn)(void *ctx, const nixl_telemetry_event_t *ev),
                         void *ctx);

#endif
