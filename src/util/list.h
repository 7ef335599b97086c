/* list.h - an intrusive doubly-linked list (embed a nixl_list_node_t, keep a head pointer). */
#ifndef NIXL_UTIL_LIST_H
#define NIXL_UTIL_LIST_H

#include <stddef.h>

typedef struct nixl_list_node {
    struct nixl_list_node *prev, *next;
} nixl_list_node_t;

static inline void nixl_list_push(nixl_list_node_t **head, nixl_list_node_t *n)
{
    n->prev = NULL;
    n->next = *head;
    if (*head)
        (*head)->prev = n;
    *head = n;
}

static inline void nixl_list_remove(nixl_list_node_t **head, nixl_list_node_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        *head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* The structure of type `type` whose member `member` is the node `ptr`. */
#define nixl_list_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
