/* loop_uring: a readiness backend on io_uring (see loop_int.h), built only
 * where liburing is installed.
 *
 * Each watched fd has one IORING_OP_POLL_ADD in flight; submissions are
 * batched and go to the kernel in the same io_uring_enter that waits, so a
 * turn is still one system call. Polls are one-shot and re-armed at the
 * start of the next wait for every fd that fired. That is what makes the
 * backend level-triggered like the others: a multishot poll posts a CQE
 * per wakeup (it is edge-triggered, and IORING_POLL_ADD_LEVEL is refused
 * with multishot), so an fd a callback left undrained would never be
 * reported again, while a fresh poll on a still-ready fd completes at once.
 *
 * Each poll carries (generation << 32 | fd) as user_data; a mask change
 * bumps the fd's generation, removes the old poll and adds a new one, and
 * completions of the old one (its data, or -ECANCELED) are recognised by
 * their stale generation and dropped.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <liburing.h>

#include "loop_int.h"
#include "sys.h"

#define UR_ENTRIES 1024          /* SQ size; the CQ is twice that */
#define UR_REMOVE_TAG UINT64_MAX /* user_data of poll_remove requests */

struct ur_fd {
    int mask;     /* SB_READABLE | SB_WRITABLE wanted, 0 = not watched */
    int armed;    /* a poll with the current generation is in flight */
    uint32_t gen; /* bumped on every change */
};

struct ur_state {
    struct io_uring ring;
    struct ur_fd *fds; /* fd-indexed, cap slots */
    int cap;
    int *rearm;        /* fds that fired in the last wait */
    int nrearm, rearmcap;
};

static int ur_init(void **state)
{
    struct ur_state *s = sb__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    int r = io_uring_queue_init(UR_ENTRIES, &s->ring, 0);
    if (r < 0) {
        sb__free(s);
        return r;
    }
    *state = s;
    return 0;
}

static void ur_free(void *state)
{
    struct ur_state *s = state;
    io_uring_queue_exit(&s->ring);
    sb__free(s->fds);
    sb__free(s->rearm);
    sb__free(s);
}

static uint64_t ur_data(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

/* An SQE, flushing the queue to the kernel when it is full. */
static struct io_uring_sqe *ur_sqe(struct ur_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (sqe == NULL && io_uring_submit(&s->ring) >= 0)
        sqe = io_uring_get_sqe(&s->ring);
    return sqe;
}

static int ur_arm(struct ur_state *s, int fd)
{
    struct io_uring_sqe *sqe = ur_sqe(s);
    if (sqe == NULL)
        return -EBUSY;
    unsigned events = (s->fds[fd].mask & SB_READABLE ? POLLIN : 0) |
                      (s->fds[fd].mask & SB_WRITABLE ? POLLOUT : 0);
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, ur_data(fd, s->fds[fd].gen));
    s->fds[fd].armed = 1;
    return 0;
}

static void ur_disarm(struct ur_state *s, int fd)
{
    struct io_uring_sqe *sqe = ur_sqe(s);
    s->fds[fd].armed = 0;
    if (sqe == NULL)
        return; /* its completion is dropped as stale anyway */
    io_uring_prep_poll_remove(sqe, ur_data(fd, s->fds[fd].gen));
    io_uring_sqe_set_data64(sqe, UR_REMOVE_TAG);
}

static int ur_reserve(struct ur_state *s, int fd)
{
    if (fd < s->cap)
        return 0;
    int n = s->cap > 0 ? s->cap : 64;
    while (n <= fd)
        n *= 2;
    struct ur_fd *fds = sb__realloc(s->fds, (size_t)n * sizeof *fds);
    if (fds == NULL)
        return -ENOMEM;
    memset(fds + s->cap, 0, (size_t)(n - s->cap) * sizeof *fds);
    s->fds = fds;
    s->cap = n;
    return 0;
}

static int ur_set(void *state, int fd, int old_mask, int new_mask)
{
    struct ur_state *s = state;
    int r = ur_reserve(s, fd);
    if (r < 0)
        return new_mask == 0 ? 0 : r;
    if (s->fds[fd].armed)
        ur_disarm(s, fd);
    s->fds[fd].gen++;
    s->fds[fd].mask = new_mask;
    return new_mask != 0 ? ur_arm(s, fd) : 0;
}

/* Re-arm every fd that fired last time and is still watched: a poll on a
 * still-ready fd completes at once, which is the level-triggered report. */
static int ur_rearm(struct ur_state *s)
{
    for (int i = 0; i < s->nrearm; i++) {
        int fd = s->rearm[i];
        if (s->fds[fd].mask != 0 && !s->fds[fd].armed) {
            int r = ur_arm(s, fd);
            if (r < 0)
                return r;
        }
    }
    s->nrearm = 0;
    return 0;
}

static int ur_reserve_rearm(struct ur_state *s, int max)
{
    if (max <= s->rearmcap)
        return 0;
    int *p = sb__realloc(s->rearm, (size_t)max * sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    s->rearm = p;
    s->rearmcap = max;
    return 0;
}

static int from_poll(int res)
{
    if (res < 0) /* -EBADF: closed behind the loop's back */
        return SB_READABLE | SB_WRITABLE | SB_ERROR;
    int ev = (res & POLLIN ? SB_READABLE : 0) | (res & POLLOUT ? SB_WRITABLE : 0);
    if (res & (POLLERR | POLLHUP | POLLNVAL))
        ev |= SB_READABLE | SB_WRITABLE | SB_ERROR;
    return ev;
}

/* One completion: 1 if it reports the current poll of a watched fd. */
static int ur_complete(struct ur_state *s, const struct io_uring_cqe *cqe, struct sb__fired *f)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    if (data == UR_REMOVE_TAG)
        return 0;
    int fd = (int)(uint32_t)data;
    if (fd >= s->cap || s->fds[fd].gen != (uint32_t)(data >> 32) || !s->fds[fd].armed)
        return 0;
    s->fds[fd].armed = 0;
    s->rearm[s->nrearm++] = fd;
    f->fd = fd;
    f->events = from_poll(cqe->res);
    return 1;
}

static int ur_wait(void *state, int timeout_ms, struct sb__fired *out, int max)
{
    struct ur_state *s = state;
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts, *tsp = NULL;
    int r = ur_reserve_rearm(s, max);
    if (r == 0)
        r = ur_rearm(s);
    if (r < 0)
        return r;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tsp, NULL);
    if (r < 0 && r != -ETIME && r != -EINTR)
        return r;
    /* One valid completion per watched fd at most, so out never overflows;
     * the bound is kept anyway and the rest waits in the CQ. */
    int n = 0;
    while (n < max && io_uring_peek_cqe(&s->ring, &cqe) == 0) {
        n += ur_complete(s, cqe, &out[n]);
        io_uring_cqe_seen(&s->ring, cqe);
    }
    return n;
}

const struct sb__backend sb__backend_uring = {
    .name = "uring",
    .init = ur_init,
    .free = ur_free,
    .set = ur_set,
    .wait = ur_wait,
};
