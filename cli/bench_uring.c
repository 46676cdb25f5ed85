/* bench_uring: the completion-based client engine of `switchboard bench
 * --backend uring` (bench_int.h), so that the client costs the machine
 * less than the server it measures.
 *
 * One io_uring per worker, made on the worker's thread with
 * SINGLE_ISSUER | DEFER_TASKRUN (completions are run when the worker
 * waits, never by an interrupt on another CPU) where the kernel takes them
 * (6.1 on), else COOP_TASKRUN, else none; it needs Linux 6.0 for the
 * multishot receive, and bench_uring_probe says so before the run.
 * Each connection has one multishot receive armed into a ring of provided
 * buffers shared by the worker's connections; a buffer is free again as
 * soon as the replies in it are checked (whole replies are checked where
 * they landed; only a partial one is copied, into the connection's input),
 * and the kernel's ring is refilled at the end of the turn from the
 * buffers freed last (src/uring_bufs.h). A turn: take every completion,
 * check the replies and queue one new message per reply, run the timers
 * if one is due, put one send per connection that has something queued on
 * the ring, then submit those sends and wait for the next completion (or
 * the next timer) in one io_uring_enter. The epoll engine pays a recv and a send
 * per connection and turn and an epoll_wait per turn.
 *
 * Single receives straight into each connection's input (one submission
 * per reply) measured about 6% more client CPU per message than the
 * multishot receive on 16 KiB replies, where a reply filled one buffer
 * and was checked in place all the same.
 *
 * A connection has at most one send in flight: its bytes, [out_off,
 * out_len) of the output, are the kernel's until the send completes, and
 * messages its replies make room for meanwhile are owed (bench.c's
 * conn_queue) and queued after it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "bench_int.h"
#include "../src/uring_bufs.h" /* the kernel's ring kept warm, as the loop's backend does */

#define BUF_GROUP 0
#define BUF_MIN 4096         /* a provided buffer: at least a page */
#define BUF_MAX 65536        /* ... at most the loopback's segment, rounded up */
#define NBUFS_MIN 64
#define NBUFS_MAX 32768      /* the kernel's limit on a buffer ring's entries */
#define BUFS_BYTES_MAX (32u << 20) /* a worker's buffers in all, at most */
#define SQ_MAX 4096

/* What a completion is for: the operation in the low bits of user_data,
 * the connection's index in the worker above them. */
enum { OP_RECV = 1, OP_SEND = 2 };
#define OP_BITS 2
#define OP_MASK 3u

struct uring {
    struct io_uring ring;
    struct sb__bufs b;            /* the provided buffers (b.br page aligned, mmap'ed) */
    size_t br_bytes;
    struct bconn **dirty;         /* connections with work for the end of the turn */
    long ndirty;
};

static unsigned pow2_at_least(size_t n, unsigned lo, unsigned hi)
{
    unsigned v = lo;

    while (v < n && v < hi)
        v <<= 1;
    return v;
}

/* The ring, with the flags that spare the worker interrupts and the
 * kernel's task-work wakeups where the kernel knows them (6.1 and later),
 * the older ones where not. */
static int ring_init(struct io_uring *ring, unsigned entries)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    struct io_uring_params p;
    int r = -EINVAL;

    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 4; /* multishot receives post many per submission */
        r = io_uring_queue_init_params(entries, ring, &p);
        if (r != -EINVAL)
            break;
    }
    return r;
}

/* The provided buffers: b.n of b.size bytes (memory touched only as the
 * ring's target reaches it), the first few in the kernel's ring. liburing 2.3
 * has no io_uring_setup_buf_ring, so the ring's memory is ours. */
static int bufs_init(struct uring *u)
{
    struct io_uring_buf_reg reg;
    int r;

    u->br_bytes = (size_t)u->b.n * sizeof(struct io_uring_buf);
    u->b.br = mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (u->b.br == MAP_FAILED) {
        u->b.br = NULL;
        return -ENOMEM;
    }
    u->b.mem = malloc((size_t)u->b.n * u->b.size);
    u->b.spare = malloc(u->b.n * sizeof *u->b.spare);
    if (u->b.mem == NULL || u->b.spare == NULL)
        return -ENOMEM;
    io_uring_buf_ring_init(u->b.br);
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)(uintptr_t)u->b.br;
    reg.ring_entries = u->b.n;
    reg.bgid = BUF_GROUP;
    r = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (r < 0)
        return r;
    sb__bufs_start(&u->b);
    return 0;
}

/* One byte through a socket pair, received by a multishot receive into
 * a provided buffer: what a kernel before 6.0 refuses (-EINVAL). */
static int probe_recv(struct uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    struct io_uring_cqe *cqe;
    int sv[2], r;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    r = send(sv[1], "x", 1, MSG_NOSIGNAL) == 1 ? 0 : -errno;
    if (r == 0) {
        io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
        r = io_uring_submit_and_wait(&u->ring, 1);
    }
    if (r >= 0) {
        r = io_uring_peek_cqe(&u->ring, &cqe);
        if (r == 0)
            r = cqe->res == 1 ? 0 : cqe->res < 0 ? cqe->res : -EIO;
    }
    close(sv[0]);
    close(sv[1]);
    return r;
}

int bench_uring_probe(void)
{
    struct uring u;
    int r;

    memset(&u, 0, sizeof u);
    u.b.n = 2;
    u.b.size = 64;
    r = ring_init(&u.ring, 4);
    if (r < 0)
        return r;
    r = bufs_init(&u);
    if (r == 0)
        r = probe_recv(&u);
    io_uring_queue_exit(&u.ring);
    if (u.b.br)
        munmap(u.b.br, u.br_bytes);
    free(u.b.mem);
    free(u.b.spare);
    /* A kernel before 5.19 has no buffer rings, one before 6.0 no
     * multishot receive. */
    return r == -EINVAL ? -EOPNOTSUPP : r;
}

int bench_uring_open(struct worker *w)
{
    const struct bench *b = w->b;
    struct uring *u = calloc(1, sizeof *u);
    int r;

    if (u == NULL)
        return -ENOMEM;
    /* A buffer holds what a connection can have in flight, and there are
     * two buffers per connection (a connection holds one only from a
     * completion to the end of that turn): the most the kernel's ring
     * holds once its target has grown to them. */
    u->b.size = pow2_at_least(b->framed * (size_t)b->o.pipeline, BUF_MIN, BUF_MAX);
    u->b.n = pow2_at_least((size_t)w->nconns * 2, NBUFS_MIN, NBUFS_MAX);
    /* Past the bound a receive that finds the ring empty ends (-ENOBUFS)
     * and is armed again once the turn has given buffers back. */
    while (u->b.n > NBUFS_MIN && (size_t)u->b.n * u->b.size > BUFS_BYTES_MAX)
        u->b.n >>= 1;
    u->dirty = calloc((size_t)w->nconns, sizeof *u->dirty);
    r = u->dirty ? ring_init(&u->ring, pow2_at_least((size_t)w->nconns * 2, 64, SQ_MAX)) : -ENOMEM;
    if (r < 0) {
        free(u->dirty);
        free(u);
        return r;
    }
    w->u = u;
    /* Each io_uring_enter then skips the lookup of the ring's file (a
     * kernel before 5.18 refuses, and the enter looks it up as before). */
    io_uring_register_ring_fd(&u->ring);
    r = bufs_init(u);
    if (r < 0) {
        bench_uring_free(w);
        return r;
    }
    w->k.ring_bufs = u->b.target;
    for (long i = 0; i < w->nconns; i++) /* the first turn arms their receives */
        if (w->c[i].fd >= 0)
            bench_uring_flush(&w->c[i]);
    return 0;
}

void bench_uring_free(struct worker *w)
{
    struct uring *u = w->u;

    if (u == NULL)
        return;
    io_uring_queue_exit(&u->ring);
    if (u->b.br)
        munmap(u->b.br, u->br_bytes);
    free(u->b.mem);
    free(u->b.spare);
    free(u->dirty);
    free(u);
    w->u = NULL;
}

void bench_uring_flush(struct bconn *c)
{
    struct uring *u = c->w->u;

    if (!c->u_dirty) {
        c->u_dirty = 1;
        u->dirty[u->ndirty++] = c;
    }
}

/* The shutdown ends the receive and any send the ring holds the socket
 * for (their completions, for a closed connection, are dropped); without
 * it the socket would stay open, and the server see no end, until the
 * ring lets go of it. */
void bench_uring_close(struct bconn *c)
{
    if (c->u_recv || c->u_sending)
        shutdown(c->fd, SHUT_RDWR);
}

/* A free submission slot; when the queue is full, what is in it goes to
 * the kernel first (rare: the queue has two slots per connection). */
static struct io_uring_sqe *get_sqe(struct uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

    if (sqe == NULL) {
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

static uint64_t tag(const struct bconn *c, unsigned op)
{
    return (uint64_t)(c - c->w->c) << OP_BITS | op;
}

/* The end of a turn for c: a receive armed if it has none, and one send
 * of everything queued (the owed messages first) if none is in flight.
 * Returns 0, or -1 when the submission queue had no room (c stays dirty,
 * for the next turn). */
static int conn_submit(struct uring *u, struct bconn *c, int64_t now)
{
    struct io_uring_sqe *sqe;

    if (c->fd >= 0 && !c->u_recv) {
        if ((sqe = get_sqe(u)) == NULL)
            return -1;
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
        io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
        c->u_recv = 1;
    }
    if (c->fd >= 0 && !c->u_sending && c->u_owed)
        bench_conn_queue_owed(c, now);
    if (c->fd >= 0 && !c->u_sending && c->out_off < c->out_len) {
        if ((sqe = get_sqe(u)) == NULL)
            return -1;
        io_uring_prep_send(sqe, c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
        c->u_sending = 1;
    }
    c->u_dirty = 0;
    return 0;
}

/* Every dirty connection's operations; those the queue had no room for
 * stay on the list, as do any made dirty meanwhile. */
static void submit_dirty(struct uring *u, int64_t now)
{
    long n = u->ndirty, keep = 0;

    for (long i = 0; i < n; i++)
        if (conn_submit(u, u->dirty[i], now) < 0)
            u->dirty[keep++] = u->dirty[i];
    for (long i = n; i < u->ndirty; i++)
        u->dirty[keep++] = u->dirty[i];
    u->ndirty = keep;
}

/* A receive completed: bytes (checked, the buffer given back at once), the
 * end of the multishot (armed again at the end of the turn, after the
 * ring's top-up; one that ended on an empty ring grows its target), the
 * server's close, or an error. */
static void on_recv(struct worker *w, struct bconn *c, const struct io_uring_cqe *cqe, int64_t now)
{
    struct uring *u = w->u;
    int has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->u_recv = 0;
    if (has_buf) {
        sb__bufs_filled(&u->b);
    } else if (cqe->res == -ENOBUFS) {
        sb__bufs_dry(&u->b);
        if (u->b.target > w->k.ring_bufs)
            w->k.ring_bufs = u->b.target;
    }
    if (c->fd >= 0) {
        if (cqe->res > 0 && has_buf)
            bench_conn_input(c, sb__bufs_at(&u->b, bid), (size_t)cqe->res, now);
        else if (cqe->res == 0)
            bench_conn_fail(c, &w->k.e_closed);
        else if (cqe->res != -ENOBUFS && cqe->res != -EINTR && cqe->res != -EAGAIN)
            bench_conn_fail(c, &w->k.e_io);
    }
    if (has_buf)
        sb__bufs_give_back(&u->b, bid);
    if (c->fd >= 0 && !c->u_recv)
        bench_uring_flush(c);
}

static void on_send(struct worker *w, struct bconn *c, int res)
{
    c->u_sending = 0;
    if (c->fd < 0)
        return;
    if (res < 0 && res != -EAGAIN && res != -EINTR) {
        bench_conn_fail(c, &w->k.e_io);
        return;
    }
    if (res > 0)
        c->out_off += (size_t)res;
    if (c->out_off < c->out_len || c->u_owed)
        bench_uring_flush(c);
}

/* Every completion there is, then the kernel's ring topped up from the
 * buffers they freed (uring_bufs.h). */
static void reap(struct worker *w, int64_t now)
{
    struct uring *u = w->u;
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;

    sb__bufs_turn_begin(&u->b);

    io_uring_for_each_cqe(&u->ring, head, cqe) {
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        struct bconn *c = &w->c[ud >> OP_BITS];

        n++;
        if ((ud & OP_MASK) == OP_RECV)
            on_recv(w, c, cqe, now);
        else
            on_send(w, c, cqe->res);
    }
    io_uring_cq_advance(&u->ring, n);
    sb__bufs_turn_end(&u->b);
}

/* Submit the turn's operations and wait for a completion, or until due
 * (monotonic ns; INT64_MAX: no limit): one io_uring_enter. */
static int submit_wait(struct uring *u, int64_t due, int64_t now)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts;
    int64_t d = due > now ? due - now : 0;
    int r;

    if (due == INT64_MAX) {
        r = io_uring_submit_and_wait(&u->ring, 1);
    } else {
        ts.tv_sec = d / 1000000000;
        ts.tv_nsec = d % 1000000000;
        r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    }
    return r == -ETIME || r == -EINTR || r == -EAGAIN || r == -EBUSY ? 0 : r;
}

int bench_uring_run(struct worker *w)
{
    struct uring *u = w->u;
    int64_t now = sb_now_ns();
    int r;

    while (w->open > 0) {
        bench_worker_timers(w, now);
        now = sb_now_ns(); /* the send time of the messages queued now */
        submit_dirty(u, now);
        if (w->open == 0)
            break;
        r = submit_wait(u, u->ndirty ? now : bench_worker_due(w), now);
        if (r < 0)
            return r;
        now = sb_now_ns();
        reap(w, now);
    }
    return 0;
}
