/*
 * fifo.h - an intrusive first-in first-out queue of requests: append at the tail, take from the
 * head, and take back any member in O(1) (a request released while still queued). Embed a
 * nixl_fifo_node_t in the queued structure; nixl_list_entry (list.h) gets back to it. A node
 * knows whether it is queued, so taking back one that already left is a no-op. No locking: the
 * owner's lock covers the queue.
 */
#ifndef NIXL_UTIL_FIFO_H
#define NIXL_UTIL_FIFO_H

#include <stdbool.h>
#include <stddef.h>

#include "list.h"

typedef struct nixl_fifo_node {
    struct nixl_fifo_node *prev, *next;
    bool queued;
} nixl_fifo_node_t;

typedef struct nixl_fifo {
    nixl_fifo_node_t *head, *tail;
} nixl_fifo_t;

static inline bool nixl_fifo_empty(const nixl_fifo_t *q)
{
    return q->head == NULL;
}

static inline void nixl_fifo_push(nixl_fifo_t *q, nixl_fifo_node_t *n)
{
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    n->queued = true;
}

/* Unlinks n if it is queued; returns whether it was. */
static inline bool nixl_fifo_remove(nixl_fifo_t *q, nixl_fifo_node_t *n)
{
    if (!n->queued)
        return false;
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->prev = n->next = NULL;
    n->queued = false;
    return true;
}

/* The first node, or NULL; it stays queued. */
static inline nixl_fifo_node_t *nixl_fifo_front(const nixl_fifo_t *q)
{
    return q->head;
}

#endif
