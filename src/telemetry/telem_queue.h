/*
 * telem_queue.h - the staging queue between the data path and the exporter thread: bounded,
 * lock-free, many producers (any thread that posts or polls a transfer) and one consumer (the
 * agent's exporter thread). Slots carry a sequence number (D. Vyukov's bounded queue): a
 * producer claims positions with one CAS on `head` and publishes each slot by storing its
 * sequence; the consumer takes slots in order. No lock, no allocation after init.
 *
 * A batch is all or nothing: since the consumer frees slots in order, the last slot of the
 * batch being free means every slot before it is free too, so one check and one CAS claim the
 * whole batch. A producer that finds the queue full drops its events and counts them.
 */
#ifndef NIXL_TELEMETRY_QUEUE_H
#define NIXL_TELEMETRY_QUEUE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl_telemetry.h"

typedef struct telem_slot {
    _Atomic uint64_t seq;
    nixl_telemetry_event_t ev;
} telem_slot_t;

typedef struct telem_queue {
    alignas(64) _Atomic uint64_t head; /* next position to claim (producers) */
    alignas(64) _Atomic uint64_t dropped; /* events refused because the queue was full */
    alignas(64) uint64_t tail;         /* next position to take (the consumer alone) */
    uint64_t capacity;
    telem_slot_t *slots;
} telem_queue_t;

/* Init with `capacity` (>= 1) slots; false when memory is short. */
bool telem_queue_init(telem_queue_t *q, uint64_t capacity);
void telem_queue_fini(telem_queue_t *q);

/* Push `n` events (n <= capacity) as one batch; false (and `n` counted as dropped) when there
 * is no room for all of them. Any thread. */
static inline bool telem_queue_push(telem_queue_t *q, const nixl_telemetry_event_t *ev, size_t n)
{
    if (n == 0 || n > q->capacity) {
        atomic_fetch_add_explicit(&q->dropped, n, memory_order_relaxed);
        return n == 0;
    }
    uint64_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
    for (;;) {
        uint64_t last = pos + n - 1;
        uint64_t seq = atomic_load_explicit(&q->slots[last % q->capacity].seq,
                                            memory_order_acquire);
        if (seq == last) {
            if (atomic_compare_exchange_weak_explicit(&q->head, &pos, pos + n,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (seq < last) {
            /* that slot still holds an event of the previous lap: full */
            atomic_fetch_add_explicit(&q->dropped, n, memory_order_relaxed);
            return false;
        } else {
            pos = atomic_load_explicit(&q->head, memory_order_relaxed); /* lost a race */
        }
    }
    for (size_t i = 0; i < n; i++) {
        telem_slot_t *s = &q->slots[(pos + i) % q->capacity];
        s->ev = ev[i];
        atomic_store_explicit(&s->seq, pos + i + 1, memory_order_release);
    }
    return true;
}

/* Take up to `max` published events, in order (the consumer alone); how many. */
size_t telem_queue_pop(telem_queue_t *q, nixl_telemetry_event_t *out, size_t max);

/* The drops counted since the last call, and reset. */
static inline uint64_t telem_queue_take_dropped(telem_queue_t *q)
{
    return atomic_exchange_explicit(&q->dropped, 0, memory_order_relaxed);
}

#endif
