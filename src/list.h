/* list: an intrusive, circular, doubly linked list with a sentinel head.
 * The node lives inside the listed object, so joining a list allocates
 * nothing and leaving it is O(1). The owner of the head decides which
 * thread may touch the list; nothing here locks. */
#ifndef SB_LIST_H
#define SB_LIST_H

#include <stddef.h>

typedef struct sb__link sb__link;
struct sb__link {
    sb__link *next, *prev;
};

/* An empty list (or a node on none): points at itself. */
static inline void sb__link_init(sb__link *h)
{
    h->next = h->prev = h;
}

static inline int sb__link_empty(const sb__link *h)
{
    return h->next == h;
}

static inline void sb__link_add(sb__link *h, sb__link *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}

/* Leave whatever list n is on; harmless on a node on none. */
static inline void sb__link_del(sb__link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

#define SB__CONTAINER(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

#endif
