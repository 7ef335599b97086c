/* ring_read.c - the checks of a telemetry ring a reader maps (ring_read.h). */
#include "ring_read.h"

#include <inttypes.h>
#include <stdio.h>

int ring_view_attach(ring_view_t *v, void *map, size_t len, const char *label, char *why,
                     size_t why_len)
{
    if (len < NIXL_TELEMETRY_RING_HEADER_SIZE) {
        snprintf(why, why_len, "%s: not a telemetry ring (%zu bytes)", label, len);
        return len == 0 ? 1 : -1; /* an empty file: the writer is creating it */
    }
    nixl_telemetry_ring_header_t *h = map;
    int32_t version = __atomic_load_n(&h->version, __ATOMIC_ACQUIRE);
    if (version == 0) {
        snprintf(why, why_len, "%s: the writer is initialising it", label);
        return 1;
    }
    if (version != NIXL_TELEMETRY_RING_VERSION) {
        snprintf(why, why_len, "%s: ring version %d, this reader reads version %d", label,
                 (int)version, NIXL_TELEMETRY_RING_VERSION);
        return -1;
    }
    /* one read of each: the writer may change them while we look */
    uint64_t cap = __atomic_load_n(&h->capacity, __ATOMIC_RELAXED);
    uint64_t mask = __atomic_load_n(&h->mask, __ATOMIC_RELAXED);
    uint64_t room = (len - NIXL_TELEMETRY_RING_HEADER_SIZE) / NIXL_TELEMETRY_RING_EVENT_SIZE;
    if (cap < 2 || (cap & (cap - 1)) || mask != cap - 1 || cap > room) {
        snprintf(why, why_len, "%s: corrupt header (capacity %" PRIu64 ", mask %" PRIu64
                 ", %zu bytes)", label, cap, mask, len);
        return -1;
    }
    v->hdr = h;
    v->events = (const nixl_telemetry_event_t *)((const uint8_t *)map +
                                                 NIXL_TELEMETRY_RING_HEADER_SIZE);
    v->mask = mask;
    return 0;
}

bool ring_view_take(ring_view_t *v, nixl_telemetry_event_t *out)
{
    uint64_t rd = __atomic_load_n(&v->hdr->read_pos, __ATOMIC_RELAXED) & v->mask;
    uint64_t wr = __atomic_load_n(&v->hdr->write_pos, __ATOMIC_ACQUIRE) & v->mask;
    if (rd == wr)
        return false;
    const nixl_telemetry_event_t *e = &v->events[rd];
    out->id = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
    out->pad = 0;
    out->value = __atomic_load_n(&e->value, __ATOMIC_RELAXED);
    __atomic_store_n(&v->hdr->read_pos, (rd + 1) & v->mask, __ATOMIC_RELEASE);
    return true;
}

uint64_t ring_view_drain(ring_view_t *v, void (*fn)(void *ctx, const nixl_telemetry_event_t *ev),
                         void *ctx)
{
    uint64_t n = 0;
    nixl_telemetry_event_t ev;
    while (n < v->mask && ring_view_take(v, &ev)) {
        n++;
        fn(ctx, &ev);
    }
    return n;
}
