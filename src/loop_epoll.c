/* loop_epoll: the Linux epoll backend (see loop_int.h), the default.
 *
 * The interest set lives in the kernel, so a turn is a single epoll_wait
 * and a mask change is a single epoll_ctl. Level-triggered, like every
 * backend, except for watchers that ask for SB_EDGE (connections): those
 * are registered EPOLLET, so the kernel does not poll them again on the
 * next epoll_wait after each report; their owners call sb_loop_again when
 * they stop before draining.
 */
#include <errno.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "loop_int.h"
#include "sys.h"

#define EP_FIRST 64 /* events per turn before the table first grows */

struct ep_state {
    int epfd;
    struct epoll_event *ev; /* epoll_wait's output, cap entries */
    int cap;
};

static int ep_init(void **state)
{
    struct ep_state *s = sb__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    /* A first output array now, so that a loop that exists can always
     * wait, even when growing the array later fails. */
    s->ev = sb__malloc(EP_FIRST * sizeof *s->ev);
    if (s->ev == NULL) {
        sb__free(s);
        return -ENOMEM;
    }
    s->cap = EP_FIRST;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int e = -errno;
        sb__free(s->ev);
        sb__free(s);
        return e;
    }
    *state = s;
    return 0;
}

static void ep_free(void *state)
{
    struct ep_state *s = state;
    sb__sys.close(s->epfd);
    sb__free(s->ev);
    sb__free(s);
}

static uint32_t to_epoll(int mask)
{
    return (mask & SB_READABLE ? EPOLLIN : 0) | (mask & SB_WRITABLE ? EPOLLOUT : 0) |
           (mask & SB_EDGE ? EPOLLET | EPOLLRDHUP : 0);
}

/* MOD on an fd the kernel dropped (closed and reused behind the loop's
 * back) fails with ENOENT, ADD on one it still has with EEXIST: either
 * way the other operation is the right one. */
static int ep_set(void *state, int fd, int old_mask, int new_mask)
{
    struct ep_state *s = state;
    struct epoll_event ev = {.events = to_epoll(new_mask), .data.fd = fd};
    int op = old_mask == 0 ? EPOLL_CTL_ADD : new_mask == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(s->epfd, op, fd, &ev) == 0)
        return 0;
    if (op == EPOLL_CTL_DEL)
        return 0; /* a closed fd has already left the set */
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
        op = EPOLL_CTL_ADD;
    else if (op == EPOLL_CTL_ADD && errno == EEXIST)
        op = EPOLL_CTL_MOD;
    else
        return -errno;
    return epoll_ctl(s->epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

static int ep_reserve(struct ep_state *s, int max)
{
    if (max <= s->cap)
        return 0;
    struct epoll_event *ev = sb__realloc(s->ev, (size_t)max * sizeof *ev);
    if (ev == NULL)
        return -ENOMEM;
    s->ev = ev;
    s->cap = max;
    return 0;
}

static int from_epoll(uint32_t e)
{
    int ev = (e & EPOLLIN ? SB_READABLE : 0) | (e & EPOLLOUT ? SB_WRITABLE : 0);
    if (e & EPOLLRDHUP) /* registered for SB_EDGE watchers only */
        ev |= SB_READABLE | SB_HUP;
    if (e & (EPOLLERR | EPOLLHUP))
        ev |= SB_READABLE | SB_WRITABLE | SB_ERROR | SB_HUP;
    return ev;
}

static int ep_wait(void *state, int timeout_ms, struct sb__fired *out, int max)
{
    struct ep_state *s = state;
    /* Out of memory for a bigger array: take fewer events this turn; the
     * rest are reported next turn (an edge-triggered fd's event stays
     * queued in the kernel until it is taken). */
    if (ep_reserve(s, max) < 0)
        max = s->cap;
    int n = epoll_wait(s->epfd, s->ev, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        out[i].fd = s->ev[i].data.fd;
        out[i].events = from_epoll(s->ev[i].events);
    }
    return n;
}

const struct sb__backend sb__backend_epoll = {
    .name = "epoll",
    .edge = 1,
    .init = ep_init,
    .free = ep_free,
    .set = ep_set,
    .wait = ep_wait,
};
