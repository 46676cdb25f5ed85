/* loop_select_win32: the select backend of HOWTO section 5, on Windows
 * (see loop_int.h; the POSIX one is loop_select.c).
 *
 * "On Windows, select works with sockets only", and its fd_set is not a
 * bitmap indexed by descriptor but an array of socket handles with a
 * count. So the limit is how many sockets are watched (FD_SETSIZE, which
 * sb_win32.h raises to 4096), not how big their numbers are, and select
 * hands back exactly the ready sockets, with no scan over the whole range.
 *
 * A non-blocking connect that fails is reported in the exception set, not
 * the write set: every socket watched for writing is also watched there,
 * and reported as an error. Select fails as a whole (WSAENOTSOCK) when a
 * watched socket was closed behind the loop's back; as on POSIX, such
 * sockets are found and reported as errors so their owners close them.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "switchboard/error.h"
#include "loop_int.h"
#include "sys.h"

struct sw_state {
    fd_set rd, wr; /* the interest sets: arrays of handles */
};

static int sw_init(void **state)
{
    struct sw_state *s = sb__malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    FD_ZERO(&s->rd);
    FD_ZERO(&s->wr);
    *state = s;
    return 0;
}

static void sw_free(void *state)
{
    sb__free(state);
}

/* FD_SET on a full array does nothing: check first. */
static int sw_add(fd_set *set, int fd)
{
    if (FD_ISSET(fd, set))
        return 0;
    if (set->fd_count >= FD_SETSIZE)
        return SB_EFDSETSIZE;
    FD_SET(fd, set);
    return 0;
}

static int sw_set(void *state, int fd, int old_mask, int new_mask)
{
    struct sw_state *s = state;
    int r = 0;
    if (new_mask & SB_READABLE)
        r = sw_add(&s->rd, fd);
    else
        FD_CLR(fd, &s->rd);
    if (r == 0 && (new_mask & SB_WRITABLE))
        r = sw_add(&s->wr, fd);
    else
        FD_CLR(fd, &s->wr);
    if (r < 0) {
        FD_CLR(fd, &s->rd);
        FD_CLR(fd, &s->wr);
    }
    return r;
}

static int sw_alive(int fd)
{
    int type, len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

static int sw_dead_in(const fd_set *set, struct sb__fired *out, int n, int max)
{
    for (u_int i = 0; i < set->fd_count && n < max; i++) {
        int fd = (int)set->fd_array[i];
        int seen = 0;
        for (int j = 0; j < n; j++)
            seen |= out[j].fd == fd;
        if (!seen && !sw_alive(fd)) {
            out[n].fd = fd;
            out[n++].events = SB_READABLE | SB_WRITABLE | SB_ERROR;
        }
    }
    return n;
}

/* The write and exception sets are short (connects and full output
 * queues): merging them into the read results by a scan is cheap. */
static int sw_add_event(struct sb__fired *out, int n, int max, int fd, int ev)
{
    for (int j = 0; j < n; j++)
        if (out[j].fd == fd) {
            out[j].events |= ev;
            return n;
        }
    if (n < max) {
        out[n].fd = fd;
        out[n++].events = ev;
    }
    return n;
}

static int sw_wait(void *state, int timeout_ms, struct sb__fired *out, int max)
{
    struct sw_state *s = state;
    /* Copies of the used part only: an fd_set of 4096 handles is 32 KiB. */
    static _Thread_local fd_set rd, wr, ex;
    struct timeval tv, *tvp = NULL;
    rd.fd_count = s->rd.fd_count;
    memcpy(rd.fd_array, s->rd.fd_array, s->rd.fd_count * sizeof(SOCKET));
    wr.fd_count = ex.fd_count = s->wr.fd_count;
    memcpy(wr.fd_array, s->wr.fd_array, s->wr.fd_count * sizeof(SOCKET));
    memcpy(ex.fd_array, s->wr.fd_array, s->wr.fd_count * sizeof(SOCKET));
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        tvp = &tv;
    }
    int r = select(0, &rd, &wr, &ex, tvp);
    if (r < 0 && (errno == ENOTSOCK || errno == EBADF))
        return sw_dead_in(&s->wr, out, sw_dead_in(&s->rd, out, 0, max), max);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    int n = 0;
    for (u_int i = 0; i < rd.fd_count && n < max; i++, n++) {
        out[n].fd = (int)rd.fd_array[i];
        out[n].events = SB_READABLE;
    }
    for (u_int i = 0; i < wr.fd_count; i++)
        n = sw_add_event(out, n, max, (int)wr.fd_array[i], SB_WRITABLE);
    for (u_int i = 0; i < ex.fd_count; i++)
        n = sw_add_event(out, n, max, (int)ex.fd_array[i], SB_READABLE | SB_WRITABLE | SB_ERROR);
    return n;
}

const struct sb__backend sb__backend_select = {
    .name = "select",
    .init = sw_init,
    .free = sw_free,
    .set = sw_set,
    .wait = sw_wait,
};
