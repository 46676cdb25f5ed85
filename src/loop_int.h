/* loop_int: the contract between the loop core (loop.c) and its backends
 * (loop_select.c, loop_poll.c, loop_epoll.c, loop_uring.c).
 *
 * A backend is a readiness multiplexer and nothing more. The core owns the
 * fd-indexed watcher table, callbacks, timers, defers, wakeups and signals;
 * a backend only remembers which fds are watched for what, and on wait()
 * says which of them are ready. Each backend file defines one const
 * struct sb__backend and keeps its state private.
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

#include "switchboard/loop.h"
#include "list.h"

/* One ready fd, as reported by a backend's wait(). */
struct sb__fired {
    int fd;     /* the watched fd */
    int events; /* SB_READABLE | SB_WRITABLE | SB_ERROR */
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
};

extern const struct sb__backend sb__backend_epoll;
extern const struct sb__backend sb__backend_poll;
extern const struct sb__backend sb__backend_select;
#ifdef SB_WITH_URING
extern const struct sb__backend sb__backend_uring;
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

/* A completion-based io_uring backend, later.
 *
 * loop_uring.c today is a readiness backend (one-shot POLL_ADD re-armed in the
 * same io_uring_enter that waits), so it fits
 * the four functions above unchanged. A completion backend - multishot
 * accept, recv straight into a provided-buffer ring, sends batched into the
 * submission queue and flushed once per turn by the io_uring_enter that also
 * waits - does the I/O itself, so readiness is the wrong thing to report.
 * It would add optional operations, NULL in every readiness backend, that
 * conn.c and server.c use when present and fall back from when absent:
 *
 *   int  (*submit_accept)(void *state, int lfd, sb__accept_cb cb, void *ud);
 *        multishot accept; cb(ud, new_fd_or_err) once per connection.
 *   int  (*submit_recv)(void *state, int fd, sb__recv_cb cb, void *ud);
 *        multishot recv into the provided-buffer ring; cb(ud, bytes, len,
 *        buf_id) and the consumer hands buf_id back with
 *   void (*recycle)(void *state, int buf_id);
 *   int  (*submit_send)(void *state, int fd, const struct iovec *iov, int n,
 *                       sb__send_cb cb, void *ud);
 *        queued, not entered: one io_uring_enter per turn submits them all;
 *        cb(ud, bytes_or_err) on completion; the iovecs stay owned by the
 *        caller (conn's write queue) until then.
 *   int  (*cancel)(void *state, int fd);
 *        cancels everything in flight on fd; its completions still arrive
 *        (with -ECANCELED) so owners free only after the last one - the
 *        "free only when nothing can call back" rule, kept by a per-fd
 *        count of operations in flight.
 *
 * The completion path: wait() keeps its signature; completions for these
 * operations are dispatched by the backend itself during wait() through
 * the callbacks above (they carry their own ud, not the watcher table),
 * while POLL completions for ordinary watchers (eventfd, signal pipe,
 * listeners of other models) still come back as sb__fired entries. The
 * core's stale-callback guard does not apply to completions: cancel()
 * plus the in-flight count is their guard. The public conn API does not
 * change: sb_conn_send already hands bytes to a queue that the connection
 * owns, which is exactly what submit_send needs.
 */

#endif
