/* loop_poll: the poll(2) backend (see loop_int.h).
 *
 * A dense pollfd array handed to poll() as is, plus an fd -> index map so
 * that a mask change is O(1). Removal swaps the last entry into the hole,
 * so the array never has gaps for poll() to scan.
 */
#include <errno.h>
#include <string.h>

#include "loop_int.h"
#include "sys.h"

struct pl_state {
    struct pollfd *fds; /* n live entries, cap allocated */
    int n, cap;
    int *idx;           /* fd -> index in fds, -1 when not watched */
    int idxcap;
};

static int pl_init(void **state)
{
    struct pl_state *s = sb__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    *state = s;
    return 0;
}

static void pl_free(void *state)
{
    struct pl_state *s = state;
    sb__free(s->fds);
    sb__free(s->idx);
    sb__free(s);
}

static short to_poll(int mask)
{
    return (short)((mask & SB_READABLE ? POLLIN : 0) | (mask & SB_WRITABLE ? POLLOUT : 0));
}

static int pl_reserve(struct pl_state *s, int fd)
{
    if (fd >= s->idxcap) {
        int n = s->idxcap > 0 ? s->idxcap : 64;
        while (n <= fd)
            n *= 2;
        int *idx = sb__realloc(s->idx, (size_t)n * sizeof *idx);
        if (idx == NULL)
            return -ENOMEM;
        memset(idx + s->idxcap, 0xff, (size_t)(n - s->idxcap) * sizeof *idx); /* -1 */
        s->idx = idx;
        s->idxcap = n;
    }
    if (s->n == s->cap) {
        int n = s->cap > 0 ? s->cap * 2 : 64;
        struct pollfd *fds = sb__realloc(s->fds, (size_t)n * sizeof *fds);
        if (fds == NULL)
            return -ENOMEM;
        s->fds = fds;
        s->cap = n;
    }
    return 0;
}

static void pl_remove(struct pl_state *s, int fd)
{
    int i = s->idx[fd];
    s->idx[fd] = -1;
    if (i != --s->n) {
        s->fds[i] = s->fds[s->n];
        s->idx[s->fds[i].fd] = i;
    }
}

static int pl_set(void *state, int fd, int old_mask, int new_mask)
{
    struct pl_state *s = state;
    int in = fd < s->idxcap && s->idx[fd] >= 0;
    if (new_mask == 0) {
        if (in)
            pl_remove(s, fd);
        return 0;
    }
    if (!in) {
        int r = pl_reserve(s, fd);
        if (r < 0)
            return r;
        s->idx[fd] = s->n;
        s->fds[s->n++].fd = fd;
    }
    s->fds[s->idx[fd]].events = to_poll(new_mask);
    return 0;
}

static int from_poll(short re)
{
    int ev = (re & POLLIN ? SB_READABLE : 0) | (re & POLLOUT ? SB_WRITABLE : 0);
    if (re & (POLLERR | POLLHUP | POLLNVAL))
        ev |= SB_READABLE | SB_WRITABLE | SB_ERROR;
    return ev;
}

static int pl_wait(void *state, int timeout_ms, struct sb__fired *out, int max)
{
    struct pl_state *s = state;
    int r = sb__sys.poll(s->fds, (nfds_t)s->n, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    int n = 0;
    for (int i = 0; i < s->n && n < r && n < max; i++) {
        if (s->fds[i].revents == 0)
            continue;
        out[n].fd = s->fds[i].fd;
        out[n++].events = from_poll(s->fds[i].revents);
    }
    return n;
}

const struct sb__backend sb__backend_poll = {
    .name = "poll",
    .init = pl_init,
    .free = pl_free,
    .set = pl_set,
    .wait = pl_wait,
};
