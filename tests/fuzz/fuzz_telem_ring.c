/*
 * fuzz_telem_ring.c - libFuzzer target for the reader of a BUFFER telemetry ring
 * (tools/nixl-telemetry/ring_read.c): the file is another process's, so its header and
 * entries are hostile, and so is every later write to it while we read.
 *
 * The input is the file (an exact-size copy, so ASan catches any read past it), and its last
 * bytes also drive a hostile writer that never stops: after each event taken, the next 16-byte
 * step of the input (cycling) rewrites write_pos, read_pos, capacity or mask. Checks: a ring is
 * accepted only with version 4, a power-of-two capacity whose events fit and mask =
 * capacity - 1; refusals say why; every event comes from inside the file; a summary ends
 * (ring_view_drain: capacity - 1 events at most; an endless one is a -timeout).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_telem_ring: %s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

/* A writer that rewrites a header field after every event the reader takes: the 16-byte
 * steps at the end of the input, from the last backwards, over and over. */
typedef struct hostile {
    uint8_t *map;
    const uint8_t *data;
    size_t steps, step, size;
    uint64_t seen;
} hostile_t;

static void hostile_step(void *ctx, const nixl_telemetry_event_t *ev)
{
    hostile_t *h = ctx;
    CHECK(ev->pad == 0);
    h->seen++;
    if (!h->steps)
        return;
    const uint8_t *s = h->data + h->size - 16 * (h->step % h->steps + 1);
    h->step++;
    uint64_t val;
    memcpy(&val, s + 8, sizeof(val));
    nixl_telemetry_ring_header_t *w = (nixl_telemetry_ring_header_t *)h->map;
    switch (s[0] & 3) {
    case 0: __atomic_store_n(&w->write_pos, val, __ATOMIC_RELAXED); break;
    case 1: __atomic_store_n(&w->read_pos, val, __ATOMIC_RELAXED); break;
    case 2: __atomic_store_n(&w->capacity, val, __ATOMIC_RELAXED); break;
    default: __atomic_store_n(&w->mask, val, __ATOMIC_RELAXED); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy (malloc aligns it for the 8-byte fields) */
    uint8_t *map = malloc(size ? size : 1);
    CHECK(map);
    if (size)
        memcpy(map, data, size);
    ring_view_t v;
    char why[256] = "";
    int rc = ring_view_attach(&v, size ? map : NULL, size, "fuzz", why, sizeof(why));
    if (rc != 0) {
        CHECK(why[0] != '\0');
        CHECK(rc == 1 || rc == -1);
        free(map);
        return 0;
    }
    const nixl_telemetry_ring_header_t *h = (const nixl_telemetry_ring_header_t *)map;
    CHECK(size >= NIXL_TELEMETRY_RING_HEADER_SIZE);
    CHECK(h->version == NIXL_TELEMETRY_RING_VERSION);
    uint64_t cap = v.mask + 1;
    CHECK(cap >= 2 && (cap & v.mask) == 0);
    CHECK(NIXL_TELEMETRY_RING_HEADER_SIZE + cap * NIXL_TELEMETRY_RING_EVENT_SIZE <= size);

    /* one summary while the hostile writer never stops */
    hostile_t hw = {.map = map, .data = data, .steps = size / 16, .size = size};
    uint64_t taken = ring_view_drain(&v, hostile_step, &hw);
    CHECK(taken <= v.mask && taken == hw.seen);
    free(map);
    return 0;
}
