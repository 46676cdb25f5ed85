/* loop_select: the select(2) backend of HOWTO section 5 (see loop_int.h).
 *
 * Two master fd_sets copied into the call each turn. fd_set is a fixed
 * bitmap of FD_SETSIZE bits and FD_SET beyond it writes out of bounds, so
 * such fds are refused with SB_EFDSETSIZE instead.
 *
 * "A socket that has died a nasty death": select fails as a whole with
 * EBADF when any watched fd is closed, and reports nothing. Rather than
 * make every owner probe its sockets, the backend finds the dead fds
 * itself and reports each as an error (readable and writable), so its
 * owner's read or write fails and it unwatches and closes; the loop never
 * spins on a bare EBADF.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/select.h>

#include "switchboard/error.h"
#include "loop_int.h"
#include "sys.h"

struct sl_state {
    fd_set rd, wr; /* the interest sets */
    int maxfd;     /* highest watched fd, -1 when none */
};

static int sl_init(void **state)
{
    struct sl_state *s = sb__malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    FD_ZERO(&s->rd);
    FD_ZERO(&s->wr);
    s->maxfd = -1;
    *state = s;
    return 0;
}

static void sl_free(void *state)
{
    sb__free(state);
}

static int sl_watched(const struct sl_state *s, int fd)
{
    return FD_ISSET(fd, &s->rd) || FD_ISSET(fd, &s->wr);
}

static int sl_set(void *state, int fd, int old_mask, int new_mask)
{
    struct sl_state *s = state;
    if (fd >= FD_SETSIZE)
        return new_mask == 0 ? 0 : SB_EFDSETSIZE;
    if (new_mask & SB_READABLE)
        FD_SET(fd, &s->rd);
    else
        FD_CLR(fd, &s->rd);
    if (new_mask & SB_WRITABLE)
        FD_SET(fd, &s->wr);
    else
        FD_CLR(fd, &s->wr);
    if (new_mask != 0 && fd > s->maxfd)
        s->maxfd = fd;
    while (s->maxfd >= 0 && !sl_watched(s, s->maxfd))
        s->maxfd--;
    return 0;
}

/* select said EBADF: report every watched fd the kernel no longer knows. */
static int sl_find_dead(struct sl_state *s, struct sb__fired *out, int max)
{
    int n = 0;
    for (int fd = 0; fd <= s->maxfd && n < max; fd++) {
        if (!sl_watched(s, fd))
            continue;
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            out[n].fd = fd;
            out[n++].events = SB_READABLE | SB_WRITABLE | SB_ERROR;
        }
    }
    return n;
}

static int sl_wait(void *state, int timeout_ms, struct sb__fired *out, int max)
{
    struct sl_state *s = state;
    fd_set rd = s->rd, wr = s->wr;
    struct timeval tv, *tvp = NULL;
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        tvp = &tv;
    }
    int r = select(s->maxfd + 1, &rd, &wr, NULL, tvp);
    if (r < 0 && errno == EBADF)
        return sl_find_dead(s, out, max);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    int n = 0;
    for (int fd = 0; fd <= s->maxfd && n < r && n < max; fd++) {
        int ev = (FD_ISSET(fd, &rd) ? SB_READABLE : 0) | (FD_ISSET(fd, &wr) ? SB_WRITABLE : 0);
        if (ev == 0)
            continue;
        out[n].fd = fd;
        out[n++].events = ev;
    }
    return n;
}

const struct sb__backend sb__backend_select = {
    .name = "select",
    .init = sl_init,
    .free = sl_free,
    .set = sl_set,
    .wait = sl_wait,
};
