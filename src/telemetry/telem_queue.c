/* telem_queue.c - the staging queue's cold half (telem_queue.h has the design). */
#include "telem_queue.h"

#include <stdlib.h>

bool telem_queue_init(telem_queue_t *q, uint64_t capacity)
{
    q->slots = calloc(capacity, sizeof(*q->slots));
    if (!q->slots)
        return false;
    q->capacity = capacity;
    q->tail = 0;
    for (uint64_t i = 0; i < capacity; i++)
        atomic_init(&q->slots[i].seq, i);
    atomic_init(&q->head, 0);
    atomic_init(&q->dropped, 0);
    return true;
}

void telem_queue_fini(telem_queue_t *q)
{
    free(q->slots);
    q->slots = NULL;
}

size_t telem_queue_pop(telem_queue_t *q, nixl_telemetry_event_t *out, size_t max)
{
    size_t n = 0;
    while (n < max) {
        telem_slot_t *s = &q->slots[q->tail % q->capacity];
        if (atomic_load_explicit(&s->seq, memory_order_acquire) != q->tail + 1)
            break; /* not published yet (or nothing there) */
        out[n++] = s->ev;
        atomic_store_explicit(&s->seq, q->tail + q->capacity, memory_order_release);
        q->tail++;
    }
    return n;
}
