/* loop_uring: the io_uring backend (see loop_int.h), built only where
 * liburing is installed. It is two backends in one ring:
 *
 *   - readiness, for ordinary watchers (the loop's eventfd and signal pipe,
 *     TLS connections, a PROXY header still to read): each watched fd has
 *     one IORING_OP_POLL_ADD in flight;
 *   - completion (struct sb__ring): multishot accept, multishot receive
 *     into a provided-buffer ring shared by the loop, and sends - the I/O
 *     itself, done by the kernel, its results reported to the owner's op.
 *
 * Divisions: the ring (setup with the kernel's best flags, the buffer ring,
 * teardown); readiness polls; completion requests; the wait, which submits
 * everything the turn queued and collects what completed, in one
 * io_uring_enter; completion dispatch and the drain at teardown.
 *
 * Every request's user_data says what it is: a poll carries (generation <<
 * 32 | fd << 1 | 1), odd; a completion request carries its sb__op's
 * address | kind << 1, even (ops are pointer-aligned, kinds < 3); 0 marks a
 * cancel or poll-remove request, whose own completion means nothing.
 *
 * Polls are one-shot and re-armed at the start of the next wait for every
 * fd that fired. That is what makes the readiness side level-triggered
 * like the other backends: a multishot poll posts a CQE per wakeup (it is
 * edge-triggered, and IORING_POLL_ADD_LEVEL is refused with multishot), so
 * an fd a callback left undrained would never be reported again, while a
 * fresh poll on a still-ready fd completes at once. A mask change bumps the
 * fd's generation, removes the old poll and adds a new one; completions of
 * the old one are recognised by their stale generation and dropped.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <liburing.h>

#include "loop_int.h"
#include "sys.h"
#include "uring_bufs.h"

#define UR_ENTRIES 4096       /* SQ size; the CQ is twice that */
#define UR_BGID 0             /* the buffer group of the receive ring */
#define UR_KIND_MASK 6u       /* user_data bits that name a request's kind (bit 0: a poll) */

/* The receive buffers, shared by every connection of the loop. A buffer is
 * held only from the receive that fills it to the end of the callback that
 * consumes it, so the count bounds what one turn can receive, not how many
 * connections the loop serves; a ring that runs dry costs a re-arm, not
 * data. 256 x 64 KiB: 16 MiB of address space per loop, touched as used
 * (uring_bufs.h: only the warm few in the kernel's ring, usually). 64 KiB, a socket read's worth:
 * a receive takes a whole buffer, so a message up to that size that starts
 * a receive (as a request does) arrives in one buffer, not joined. What
 * one turn can bring a connection is bounded by all of them together:
 * SB_HOLD_MAX (conn_int.h) must stay at least that. */
unsigned sb__uring_bufs = 256;
unsigned sb__uring_buf_size = 64 * 1024;

struct ur_fd {
    int mask;     /* SB_READABLE | SB_WRITABLE wanted, 0 = not watched */
    int armed;    /* a poll with the current generation is in flight */
    uint32_t gen; /* bumped on every change */
};

/* A collected completion, run by ur_complete after the loop's clock moved. */
struct ur_done {
    uint64_t data;
    int32_t res;
    uint32_t flags;
};

struct ur_state {
    struct io_uring ring;
    int enabled;                   /* the ring was created disabled: see ur_enable */
    struct ur_fd *fds;             /* fd-indexed, cap slots */
    int cap;
    int *rearm;                    /* fds that fired in the last wait, cap slots */
    int nrearm;
    /* completion side; b.br == NULL: readiness only */
    struct sb__bufs b;             /* the provided buffers and which the kernel's ring holds */
    struct ur_done *done;          /* completions collected by the last wait */
    unsigned ndone, donecap;
    sb__op live;                   /* list head: ops with requests in flight */
    int draining;                  /* teardown: no new requests */
};

/* ---- the ring ---------------------------------------------------------- */

/* The setup flags, best first. SINGLE_ISSUER lets the kernel skip its
 * submission locking, DEFER_TASKRUN runs completion work only when the
 * loop waits (no interrupting the loop's thread mid-turn), COOP_TASKRUN the
 * same without the ordering guarantee on older kernels. A loop is often
 * made on one thread and run on another (a server's workers): the ring
 * starts disabled and is enabled by the first wait, which binds its single
 * issuer to the thread that runs the loop. Kernels older than a flag refuse
 * it with EINVAL, and the next set is tried. */
static const unsigned ur_setups[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
    IORING_SETUP_COOP_TASKRUN,
    0,
};

static int ur_queue_init(struct ur_state *s)
{
    int r = -EINVAL;
    for (size_t i = 0; i < sizeof ur_setups / sizeof ur_setups[0] && r == -EINVAL; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = ur_setups[i];
        r = sb__sys.uring_init != NULL ? sb__sys.uring_init(UR_ENTRIES, &s->ring, &p)
                                       : io_uring_queue_init_params(UR_ENTRIES, &s->ring, &p);
        s->enabled = !(p.flags & IORING_SETUP_R_DISABLED);
    }
    return r;
}

/* Multishot receive came with Linux 6.0, as did IORING_OP_SEND_ZC, which
 * unlike a multishot flag can be probed. */
static int ur_has_multishot_recv(struct ur_state *s)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(&s->ring);
    int ok = probe != NULL && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
    io_uring_free_probe(probe);
    return ok;
}

/* The completion side: the buffer ring, registered with the kernel and
 * filled, and room for a full CQ of collected completions. Any failure
 * leaves the backend readiness-only. */
static void ur_ring_setup(struct ur_state *s)
{
    unsigned n = sb__uring_bufs, size = sb__uring_buf_size;
    struct io_uring_buf_reg reg;
    void *br = NULL;

    if (n == 0 || (n & (n - 1)) != 0 || n > 32768 || !ur_has_multishot_recv(s))
        return;
    s->donecap = *s->ring.cq.kring_entries;
    s->done = sb__malloc(s->donecap * sizeof *s->done);
    s->b.mem = sb__malloc((size_t)n * size);
    s->b.spare = sb__malloc(n * sizeof *s->b.spare);
    if (s->done == NULL || s->b.mem == NULL || s->b.spare == NULL ||
        posix_memalign(&br, 4096, n * sizeof(struct io_uring_buf)) != 0)
        goto fail;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uintptr_t)br;
    reg.ring_entries = n;
    reg.bgid = UR_BGID;
    if (io_uring_register_buf_ring(&s->ring, &reg, 0) < 0)
        goto fail;
    s->b.br = br;
    s->b.n = n;
    s->b.size = size;
    io_uring_buf_ring_init(s->b.br);
    sb__bufs_start(&s->b);
    return;
fail:
    free(br);
    sb__free(s->b.mem);
    sb__free(s->done);
    sb__free(s->b.spare);
    s->b.mem = NULL;
    s->done = NULL;
    s->b.spare = NULL;
}

static int ur_init(void **state)
{
    struct ur_state *s = sb__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    int r = ur_queue_init(s);
    if (r < 0) {
        sb__free(s);
        return r;
    }
    s->live.next = s->live.prev = &s->live;
    ur_ring_setup(s);
    *state = s;
    return 0;
}

static void ur_free(void *state)
{
    struct ur_state *s = state;
    io_uring_queue_exit(&s->ring); /* the kernel drops the buffer ring with it */
    free(s->b.br);
    sb__free(s->b.mem);
    sb__free(s->done);
    sb__free(s->b.spare);
    sb__free(s->fds);
    sb__free(s->rearm);
    sb__free(s);
}

/* Bind the ring to the thread that runs the loop (see ur_setups). The
 * kernel's call directly: liburing 2.3 declares io_uring_enable_rings but
 * does not export it. */
static int ur_enable(struct ur_state *s)
{
    if (s->enabled)
        return 0;
    if (syscall(__NR_io_uring_register, s->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
        return -errno;
    s->enabled = 1;
    return 0;
}

/* An SQE, flushing the queue to the kernel when it is full. */
static struct io_uring_sqe *ur_sqe(struct ur_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (sqe == NULL && s->enabled && io_uring_submit(&s->ring) >= 0)
        sqe = io_uring_get_sqe(&s->ring);
    return sqe;
}

/* ---- readiness --------------------------------------------------------- */

static uint64_t ur_poll_data(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint64_t)(uint32_t)fd << 1 | 1;
}

static int ur_arm(struct ur_state *s, int fd)
{
    struct io_uring_sqe *sqe = ur_sqe(s);
    if (sqe == NULL)
        return -EBUSY;
    unsigned events = (s->fds[fd].mask & SB_READABLE ? POLLIN : 0) |
                      (s->fds[fd].mask & SB_WRITABLE ? POLLOUT : 0);
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, ur_poll_data(fd, s->fds[fd].gen));
    s->fds[fd].armed = 1;
    return 0;
}

static void ur_disarm(struct ur_state *s, int fd)
{
    struct io_uring_sqe *sqe = ur_sqe(s);
    s->fds[fd].armed = 0;
    if (sqe == NULL)
        return; /* its completion is dropped as stale anyway */
    io_uring_prep_poll_remove(sqe, ur_poll_data(fd, s->fds[fd].gen));
    io_uring_sqe_set_data64(sqe, 0);
}

/* Room for fd, in the table and in the list of fds to re-arm (one entry
 * per watched fd at most): grown here, so that the wait allocates nothing
 * and a loop out of memory still turns. */
static int ur_reserve(struct ur_state *s, int fd)
{
    if (fd < s->cap)
        return 0;
    int n = s->cap > 0 ? s->cap : 64;
    while (n <= fd)
        n *= 2;
    int *rearm = sb__realloc(s->rearm, (size_t)n * sizeof *rearm);
    if (rearm == NULL)
        return -ENOMEM;
    s->rearm = rearm;
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

static int from_poll(int res)
{
    if (res < 0) /* -EBADF: closed behind the loop's back */
        return SB_READABLE | SB_WRITABLE | SB_ERROR;
    int ev = (res & POLLIN ? SB_READABLE : 0) | (res & POLLOUT ? SB_WRITABLE : 0);
    if (res & (POLLERR | POLLHUP | POLLNVAL))
        ev |= SB_READABLE | SB_WRITABLE | SB_ERROR;
    return ev;
}

/* A poll's completion: 1 if it reports the current poll of a watched fd. */
static int ur_polled(struct ur_state *s, uint64_t data, int res, struct sb__fired *f)
{
    int fd = (int)((uint32_t)data >> 1);
    if (fd >= s->cap || s->fds[fd].gen != (uint32_t)(data >> 32) || !s->fds[fd].armed)
        return 0;
    s->fds[fd].armed = 0;
    s->rearm[s->nrearm++] = fd;
    f->fd = fd;
    f->events = from_poll(res);
    return 1;
}

/* ---- completion requests ----------------------------------------------- */

_Static_assert(_Alignof(sb__op) >= 8 && SB__OP_KINDS <= 4, "an op's address leaves room for its kind");

static uint64_t ur_op_data(const sb__op *op, int kind)
{
    return (uint64_t)(uintptr_t)op | (unsigned)kind << 1;
}

/* An SQE for op's request of this kind, the op marked busy with it. */
static struct io_uring_sqe *ur_op_sqe(struct ur_state *s, sb__op *op, int kind, int *err)
{
    struct io_uring_sqe *sqe;

    *err = s->draining ? -ECANCELED : (op->busy & (1u << kind)) ? -EBUSY : 0;
    if (*err < 0)
        return NULL;
    if ((sqe = ur_sqe(s)) == NULL) {
        *err = -EBUSY;
        return NULL;
    }
    if (op->busy == 0) {
        op->next = s->live.next;
        op->prev = &s->live;
        s->live.next->prev = op;
        s->live.next = op;
    }
    op->busy |= 1u << kind;
    io_uring_sqe_set_data64(sqe, ur_op_data(op, kind));
    return sqe;
}

/* op's request of this kind completed for the last time. */
static void ur_op_ended(sb__op *op, int kind)
{
    op->busy &= ~(1u << kind);
    if (op->busy == 0) {
        op->prev->next = op->next;
        op->next->prev = op->prev;
        op->next = op->prev = NULL;
    }
}

static int ur_accept(void *state, int lfd, sb__op *op)
{
    int err;
    struct io_uring_sqe *sqe = ur_op_sqe(state, op, SB__OP_ACCEPT, &err);
    if (sqe == NULL)
        return err;
    /* accept4's flags, as every accept of the library makes them. */
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return 0;
}

static int ur_recv(void *state, int fd, sb__op *op)
{
    int err;
    struct io_uring_sqe *sqe = ur_op_sqe(state, op, SB__OP_RECV, &err);
    if (sqe == NULL)
        return err;
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = UR_BGID;
    return 0;
}

static int ur_send(void *state, int fd, const void *p, size_t n, sb__op *op)
{
    int err;
    struct io_uring_sqe *sqe = ur_op_sqe(state, op, SB__OP_SEND, &err);
    if (sqe == NULL)
        return err;
    io_uring_prep_send(sqe, fd, p, n, MSG_NOSIGNAL);
    return 0;
}

static int ur_sendmsg(void *state, int fd, const struct msghdr *mh, sb__op *op)
{
    int err;
    struct io_uring_sqe *sqe = ur_op_sqe(state, op, SB__OP_SEND, &err);
    if (sqe == NULL)
        return err;
    io_uring_prep_sendmsg(sqe, fd, mh, MSG_NOSIGNAL);
    return 0;
}

static int ur_cancel(void *state, sb__op *op, int kind)
{
    struct ur_state *s = state;
    struct io_uring_sqe *sqe;

    if (!(op->busy & (1u << kind)) || s->draining)
        return 0; /* nothing in flight, or the teardown ends it */
    if ((sqe = ur_sqe(s)) == NULL)
        return -EBUSY;
    io_uring_prep_cancel64(sqe, ur_op_data(op, kind), 0);
    io_uring_sqe_set_data64(sqe, 0);
    return 0;
}

/* ---- the wait ---------------------------------------------------------- */

/* ThreadSanitizer's runtime defers a signal that lands outside the
 * blocking calls it intercepts, and runs its handler at the next call it
 * intercepts on that thread: io_uring_enter is none, so a loop that waits
 * only there would hold a signal (a server's SIGTERM) until something else
 * woke it. Under TSan, a wait lasts at most 50 ms and a zero-timeout poll,
 * which TSan intercepts, runs before each wait and after a wait a signal
 * ended. Other builds have run the handler already and add nothing. */
#ifdef __SANITIZE_THREAD__
#define UR_TSAN 1
#else
#define UR_TSAN 0
#endif

static void ur_signals_run(void)
{
    if (UR_TSAN)
        sb__sys.poll(NULL, 0, 0);
}

static int ur_wait(void *state, int timeout_ms, struct sb__fired *out, int max)
{
    struct ur_state *s = state;
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts, *tsp = NULL;
    unsigned head, seen = 0;
    int r = ur_enable(s);
    if (r == 0)
        r = ur_rearm(s);
    if (r < 0)
        return r;
    if (UR_TSAN && (timeout_ms < 0 || timeout_ms > 50))
        timeout_ms = 50;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    ur_signals_run();
    r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tsp, NULL);
    if (r == -EINTR)
        ur_signals_run();
    else if (r < 0 && r != -ETIME)
        return r;
    /* Polls become fired entries (one valid completion per watched fd at
     * most, so out never overflows); completions of requests are kept for
     * ur_complete. What does not fit waits in the CQ for the next turn. */
    int n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe) {
        uint64_t data = cqe->user_data;
        if ((data & 1) ? n >= max : data != 0 && s->ndone >= s->donecap)
            break;
        seen++;
        if (data & 1)
            n += ur_polled(s, data, cqe->res, &out[n]);
        else if (data != 0)
            s->done[s->ndone++] = (struct ur_done){data, cqe->res, cqe->flags};
    }
    io_uring_cq_advance(&s->ring, seen);
    return n;
}

/* ---- completions ------------------------------------------------------- */

/* One completion to its op. The op may be freed by its callback: nothing
 * here touches it after. A received buffer goes back to the ring as soon
 * as the callback has consumed it. */
static void ur_run(struct ur_state *s, const struct ur_done *d)
{
    sb__op *op = (sb__op *)(uintptr_t)(d->data & ~(uint64_t)UR_KIND_MASK);
    int kind = (int)(d->data & UR_KIND_MASK) >> 1;
    int more = (d->flags & IORING_CQE_F_MORE) != 0;
    int bid = d->flags & IORING_CQE_F_BUFFER ? (int)(d->flags >> IORING_CQE_BUFFER_SHIFT) : -1;
    int res = d->res;

    if (kind != SB__OP_ACCEPT && res > 0 && sb__sys.uring_io != NULL)
        res = sb__sys.uring_io(res); /* fault injection (sys.h) */
    const void *p = bid >= 0 && res > 0 ? sb__bufs_at(&s->b, (unsigned)bid) : NULL;
    if (bid >= 0)
        sb__bufs_filled(&s->b);
    else if (res == -ENOBUFS && kind == SB__OP_RECV)
        sb__bufs_dry(&s->b);
    if (!more)
        ur_op_ended(op, kind);
    op->cb(op, kind, res, more, p);
    if (bid >= 0)
        sb__bufs_give_back(&s->b, (unsigned)bid);
}

static int ur_complete(void *state)
{
    struct ur_state *s = state;
    unsigned n = s->ndone;

    sb__bufs_turn_begin(&s->b);
    for (unsigned i = 0; i < n; i++)
        ur_run(s, &s->done[i]);
    s->ndone = 0;
    sb__bufs_turn_end(&s->b);
    return (int)n;
}

static void ur_flush(void *state)
{
    struct ur_state *s = state;
    if (s->enabled)
        io_uring_submit_and_get_events(&s->ring);
}

/* Teardown: what already completed runs as usual (an accepted fd reaches
 * its owner, who closes it), then every request still in flight is told
 * it ended. The kernel cancels them itself when the ring closes. */
static void ur_drain(void *state)
{
    struct ur_state *s = state;
    struct io_uring_cqe *cqe;
    unsigned head, seen;

    s->draining = 1;
    /* In rounds of at most donecap: none may be dropped (an accepted fd
     * must reach its owner to be closed). */
    while (io_uring_cq_ready(&s->ring) > 0) {
        seen = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            if (!(cqe->user_data & 1) && cqe->user_data != 0) {
                if (s->ndone == s->donecap)
                    break;
                s->done[s->ndone++] = (struct ur_done){cqe->user_data, cqe->res, cqe->flags};
            }
            seen++;
        }
        io_uring_cq_advance(&s->ring, seen);
        ur_complete(s);
    }
    while (s->live.next != &s->live) {
        sb__op *op = s->live.next;
        int kind = __builtin_ctz(op->busy);
        ur_op_ended(op, kind);
        op->cb(op, kind, -ECANCELED, 0, NULL);
    }
}

unsigned sb__uring_ring_target(const sb_loop *l)
{
    const struct ur_state *s = sb__loop_hot(l)->bs;
    return s->b.br != NULL ? s->b.target : 0;
}

static const struct sb__ring ur_ring_ops = {
    .accept = ur_accept,
    .recv = ur_recv,
    .send = ur_send,
    .sendmsg = ur_sendmsg,
    .cancel = ur_cancel,
    .complete = ur_complete,
    .flush = ur_flush,
    .drain = ur_drain,
};

static const struct sb__ring *ur_ring(void *state)
{
    struct ur_state *s = state;
    return s->b.br != NULL ? &ur_ring_ops : NULL;
}

const struct sb__backend sb__backend_uring = {
    .name = "uring",
    .init = ur_init,
    .free = ur_free,
    .set = ur_set,
    .wait = ur_wait,
    .ring = ur_ring,
};
