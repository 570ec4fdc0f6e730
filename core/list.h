/* list.h - one intrusive, circular, doubly-linked list for the whole tree.
 *
 * The same `struct list` is both the head (owned by the container) and the
 * link (a member of each element). An element is found from its link with
 * LIST_CONTAINER_OF. Nothing here allocates or frees: the caller owns the
 * elements, and must remove an element before freeing it. Every operation
 * is O(1) but the walks. Header-only (static inline). */
#ifndef NFTRAFT_LIST_H
#define NFTRAFT_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
    struct list *prev, *next;
};

/* The element of type `type` whose member `member` is the link at ptr. */
#define LIST_CONTAINER_OF(ptr, type, member)                                   \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Walk the list at head, front to back, with pos (a struct list *) at each
 * link. The body must not remove pos (use LIST_FOREACH_SAFE). */
#define LIST_FOREACH(pos, head)                                                \
    for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* As LIST_FOREACH, but the body may remove (and free) pos: tmp (another
 * struct list *) holds the next link. The body must not remove tmp. */
#define LIST_FOREACH_SAFE(pos, tmp, head)                                      \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);           \
         (pos) = (tmp), (tmp) = (pos)->next)

/* Make l an empty head, or an element that is in no list. */
static inline void list_init(struct list *l)
{
    l->prev = l;
    l->next = l;
}

/* True when the head l holds no element (or the element l is in no list,
 * once list_init or list_remove ran on it). */
static inline bool list_empty(const struct list *l)
{
    return l->next == l;
}

/* Put e, which is in no list, first in the list at head. */
static inline void list_insert_head(struct list *head, struct list *e)
{
    e->prev = head;
    e->next = head->next;
    head->next->prev = e;
    head->next = e;
}

/* Put e, which is in no list, last in the list at head. */
static inline void list_insert_tail(struct list *head, struct list *e)
{
    e->next = head;
    e->prev = head->prev;
    head->prev->next = e;
    head->prev = e;
}

/* Take e out of its list and leave it as list_init does, so a second
 * list_remove of the same element changes nothing. */
static inline void list_remove(struct list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    list_init(e);
}

/* The first link of the list at head, or NULL when it is empty. */
static inline struct list *list_first(const struct list *head)
{
    return head->next == head ? NULL : head->next;
}

#endif
