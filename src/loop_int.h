/* loop_int: the contract between the loop core (loop.c) and its backends
 * (loop_select.c or, on Windows, loop_select_win32.c; loop_poll.c,
 * loop_epoll.c, loop_uring.c).
 *
 * A backend is first a readiness multiplexer. The core owns the fd-indexed
 * watcher table, callbacks, timers, defers, wakeups and signals; a backend
 * only remembers which fds are watched for what, and on wait() says which
 * of them are ready. Each backend file defines one const struct
 * sb__backend and keeps its state private. A backend may also do I/O
 * itself (struct sb__ring below: io_uring's multishot accept and receive,
 * and its sends); connections and listeners use that where offered, and
 * the readiness side still serves every other watcher of the loop.
 *
 * Rules every backend follows:
 *   - set() is called only when the mask really changes (the core filters),
 *     or with old_mask == new_mask != 0 when a new owner takes an fd that is
 *     still marked as watched (it may have been closed and reused behind the
 *     loop's back: re-register it). Removing (new_mask == 0) never fails:
 *     the fd may already be closed.
 *   - wait() reports level-triggered readiness: an fd stays reported every
 *     turn while it is ready - except an fd set with SB_EDGE on a backend
 *     with edge = 1, reported once per change to ready. It writes at most
 *     max entries; the core sizes max to its watcher table, so every ready
 *     fd fits. Errors and hangups
 *     are reported as SB_READABLE | SB_WRITABLE | SB_ERROR (| SB_HUP, which
 *     an edge backend also reports for the peer's shutdown); the core then
 *     keeps only the bits the watcher asked for, plus SB_ERROR. EINTR is
 *     not an error: return 0 events.
 *   - No allocation or system call on the wait path beyond the multiplexer
 *     call itself, except to grow a private array when max grew (select
 *     also probes its fds with fcntl after EBADF; uring submits when its
 *     queue is full).
 */
#ifndef SB_LOOP_INT_H
#define SB_LOOP_INT_H

#include <stddef.h>
#include <sys/socket.h>

#include "switchboard/loop.h"
#include "list.h"

/* One ready fd, as reported by a backend's wait(). */
struct sb__fired {
    int fd;     /* the watched fd */
    int events; /* SB_READABLE | SB_WRITABLE | SB_ERROR */
};

/* Completion operations: what a completion backend (loop_uring.c) adds to
 * the readiness contract. A readiness backend reports that an fd is ready
 * and leaves the I/O to the caller; these do the I/O and report its result.
 * They are optional: a backend offers them through ring() (NULL on select,
 * poll and epoll, and on a kernel without multishot receive and buffer
 * rings) and conn_event.c and server.c fall back to readiness without them.
 *
 * An operation is owned by an sb__op embedded in its owner (a connection,
 * a server worker). One op holds at most one request of each kind in
 * flight; `busy` says which (bit 1 << kind), and is the backend's to
 * change: set when the request is queued, cleared just before the call
 * that reports its last completion (more == 0). The owner may be freed only
 * once busy is 0 - "free only when nothing can call back" - so closing an
 * owner with requests in flight means cancel() and waiting for their last
 * completions, which always come (with -ECANCELED if nothing else).
 *
 * Submissions are queued, not entered: the io_uring_enter of the next
 * wait() submits everything a turn queued together with the wait, so a
 * turn is still one system call however many sends it made. The loop core
 * calls complete() right after wait() (and after its clock update), which
 * runs the callbacks of the completions that wait() collected.
 */
enum { SB__OP_ACCEPT, SB__OP_RECV, SB__OP_SEND, SB__OP_KINDS };

typedef struct sb__op sb__op;
/* One completion of op's request of this kind. res: the system call's
 * result (an fd, a byte count, 0 for a receive at the peer's end, or a
 * negative errno). more: the request goes on (multishot) and will
 * complete again. p: a receive's bytes (res of them), in one of the
 * loop's shared buffers, which goes back to the kernel when the call
 * returns - keep what is needed by copying it. */
typedef void (*sb__op_cb)(sb__op *op, int kind, int res, int more, const void *p);

struct sb__op {
    sb__op_cb cb;
    sb__op *prev, *next; /* the backend's list of ops with requests in flight */
    unsigned busy;       /* 1 << kind for each kind in flight (the backend's) */
};

struct sb__ring {
    /* Multishot accept on listener lfd: one completion per connection
     * (res: the new fd, non-blocking and close-on-exec). It ends (more ==
     * 0) on an error - EMFILE included - or a cancel; re-arm to go on. */
    int (*accept)(void *state, int lfd, sb__op *op);
    /* Multishot receive into the loop's provided-buffer ring, shared by
     * every connection on the loop (an idle connection holds no buffer).
     * Ends on the peer's end (res 0), an error, a cancel, or -ENOBUFS when
     * the ring ran dry: nothing was read, so nothing is lost; re-arm once
     * the completions in hand gave their buffers back. */
    int (*recv)(void *state, int fd, sb__op *op);
    /* Send n bytes from p (MSG_NOSIGNAL), or mh's iovecs. p, the iovecs
     * and mh stay the caller's and must not change until the completion
     * (res: bytes sent, possibly short, or -errno). */
    int (*send)(void *state, int fd, const void *p, size_t n, sb__op *op);
    int (*sendmsg)(void *state, int fd, const struct msghdr *mh, sb__op *op);
    /* Ask the kernel to end op's request of this kind, if in flight; its
     * last completion still comes, through the callback as usual. Returns
     * 0, or -EBUSY when the request could not be queued (the submission
     * queue full and not flushable): ask again later. */
    int (*cancel)(void *state, sb__op *op, int kind);
    /* Run the callbacks of what the last wait() collected; returns how
     * many ran. */
    int (*complete)(void *state);
    /* The loop stops running (sb_loop_run returns): submit what the last
     * turn queued and let the kernel finish what it can without waiting -
     * a closed connection's cancel, so that its socket really closes now,
     * not when the loop is freed. Completions wait for the next wait(). */
    void (*flush)(void *state);
    /* The loop is being freed: every request still in flight is reported
     * ended (-ECANCELED, more == 0), so owners waiting on it are freed. */
    void (*drain)(void *state);
};

struct sb__backend {
    const char *name; /* what sb_loop_new() and --backend accept */
    /* 1: set() honours SB_EDGE in a mask (the fd is then reported when it
     * becomes ready, not every turn while it stays ready); 0: the core
     * drops SB_EDGE before set() sees it. */
    int edge;
    /* Create the private state. Returns 0 or a negative errno. */
    int (*init)(void **state);
    /* Release the state (fds still registered are simply dropped). */
    void (*free)(void *state);
    /* fd's interest changes from old_mask to new_mask (SB_READABLE |
     * SB_WRITABLE, 0 = not watched). Returns 0, a negative errno or
     * SB_EFDSETSIZE. */
    int (*set)(void *state, int fd, int old_mask, int new_mask);
    /* Wait up to timeout_ms (< 0: no limit) and fill out[0..n), n <= max.
     * Returns n or a fatal negative errno. */
    int (*wait)(void *state, int timeout_ms, struct sb__fired *out, int max);
    /* The completion operations, or NULL (see struct sb__ring). May
     * depend on what the kernel offered init(). */
    const struct sb__ring *(*ring)(void *state);
};

extern const struct sb__backend sb__backend_epoll;
extern const struct sb__backend sb__backend_poll;
extern const struct sb__backend sb__backend_select;
#ifdef SB_WITH_URING
extern const struct sb__backend sb__backend_uring;
/* The provided buffers of each io_uring loop made from now on: how many (a
 * power of two) and how large. Tests shrink them to run the ring dry. */
extern unsigned sb__uring_bufs, sb__uring_buf_size;
/* How many buffers the io_uring loop l keeps in the kernel's ring now
 * (uring_bufs.h); 0 without the completion side. Tests. */
unsigned sb__uring_ring_target(const sb_loop *l);
#endif

/* What conn reads on every message, named here so that it inlines: the
 * turn's cached clock (ms), the loop's read buffer (SB_SCRATCH_SIZE bytes)
 * and one freed buffer kept for the next taker. struct sb_loop (loop.c)
 * begins with this struct - loop.c asserts it at compile time - so these
 * accessors are the only way in and need no call. */
#define SB_SCRATCH_SIZE (64 * 1024) /* one socket receive buffer's worth */
#define SB_SPARE_MAX (16 * 1024 + 64)

struct sb__loop_hot {
    int64_t now;
    void *scratch;
    void *spare;
    size_t spare_size;
    const struct sb__ring *ring; /* the backend's completion operations, or NULL */
    void *bs;                    /* the backend's state, for ring's calls */
};

static inline struct sb__loop_hot *sb__loop_hot(const sb_loop *l)
{
    return (struct sb__loop_hot *)(void *)l; /* its first member */
}

static inline int64_t sb__loop_now(const sb_loop *l)
{
    return sb__loop_hot(l)->now;
}

/* The read buffer: valid until the running callback returns, shared by
 * everything on the loop (so not for handlers: a handler that wrote into
 * it would overwrite the rest of the read it is being called from). */
static inline void *sb__loop_scratch(const sb_loop *l)
{
    return sb__loop_hot(l)->scratch;
}

/* The loop's list of open connections (conn_event.c adds and removes,
 * sb_conn_walk reads it): the loop only keeps the head. */
sb__link *sb__loop_conns(sb_loop *l);

/* A reply chunk is allocated, sent and freed within one turn, connection
 * after connection; one slot turns that into no allocator call at all.
 * take() hands the spare over when it holds at least need bytes (its real
 * size in *size), else returns NULL; give() keeps p (size bytes, at most
 * SB_SPARE_MAX) unless the slot already holds one at least as large, and
 * frees the other. */
static inline void *sb__loop_spare_take(sb_loop *l, size_t need, size_t *size)
{
    struct sb__loop_hot *h = sb__loop_hot(l);
    void *p = h->spare;
    if (p == NULL || h->spare_size < need)
        return NULL;
    *size = h->spare_size;
    h->spare = NULL;
    return p;
}

void sb__loop_spare_swap(sb_loop *l, void *p, size_t size);

/* One block of at least size bytes for what a custom cutter says about the
 * message it cuts (sb_frame_spec.cut_info_size), shared by every
 * connection on the loop: only one message is cut and handled at a time,
 * so an idle connection holds none. Valid until the next call with a
 * larger size; NULL when it cannot grow. */
void *sb__loop_info(sb_loop *l, size_t size);

static inline void sb__loop_spare_give(sb_loop *l, void *p, size_t size)
{
    struct sb__loop_hot *h = sb__loop_hot(l);
    if (h->spare == NULL && size <= SB_SPARE_MAX) {
        h->spare = p;
        h->spare_size = size;
        return;
    }
    sb__loop_spare_swap(l, p, size);
}

/* The loop's completion operations (NULL: readiness only), and the calls
 * that reach them: inline, because a connection on the ring makes one per
 * message. */
static inline const struct sb__ring *sb__loop_ring(const sb_loop *l)
{
    return sb__loop_hot(l)->ring;
}

static inline int sb__loop_recv(sb_loop *l, int fd, sb__op *op)
{
    struct sb__loop_hot *h = sb__loop_hot(l);
    return h->ring->recv(h->bs, fd, op);
}

static inline int sb__loop_send(sb_loop *l, int fd, const void *p, size_t n, sb__op *op)
{
    struct sb__loop_hot *h = sb__loop_hot(l);
    return h->ring->send(h->bs, fd, p, n, op);
}

static inline int sb__loop_sendmsg(sb_loop *l, int fd, const struct msghdr *mh, sb__op *op)
{
    struct sb__loop_hot *h = sb__loop_hot(l);
    return h->ring->sendmsg(h->bs, fd, mh, op);
}

static inline int sb__loop_accept(sb_loop *l, int lfd, sb__op *op)
{
    struct sb__loop_hot *h = sb__loop_hot(l);
    return h->ring->accept(h->bs, lfd, op);
}

static inline int sb__loop_cancel(sb_loop *l, sb__op *op, int kind)
{
    struct sb__loop_hot *h = sb__loop_hot(l);
    return op->busy & (1u << kind) ? h->ring->cancel(h->bs, op, kind) : 0;
}
#endif
