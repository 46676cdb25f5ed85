/** @file
 * loop: the reactor of HOWTO section 5 - "your app will be almost
 * inside-out" - written once so applications do not have to.
 *
 * The core (loop.c) knows nothing of the OS mechanism. A backend
 * (loop_select.c, loop_poll.c, loop_epoll.c, loop_uring.c where liburing
 * is installed) implements a handful of
 * functions over its private state; the backend is chosen at run time by
 * name. Watchers are level-triggered: a callback is called once per turn
 * while its fd stays ready for what it asked - unless the watcher asks for
 * SB_EDGE (see sb_loop_again).
 *
 * Each turn: wait for I/O (bounded by the nearest timer), run I/O callbacks,
 * run expired timers, run deferred callbacks. Timers live in a min-heap on
 * the monotonic clock. sb_loop_wakeup(), sb_loop_post() and
 * sb_loop_stop_async() are the only calls that are safe from other threads; sb_loop_signal() delivers signals into the loop as
 * ordinary callbacks (the handler only writes a byte to a pipe).
 *
 * Nothing here is thread-safe except sb_loop_wakeup, sb_loop_post and
 * sb_loop_stop_async.
 */
#ifndef SWITCHBOARD_LOOP_H
#define SWITCHBOARD_LOOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An event loop (opaque): one thread runs it. */
typedef struct sb_loop sb_loop;

/** Watcher events: the mask of sb_loop_watch and the events of sb_io_cb. */
enum {
    SB_READABLE = 1, /**< the fd can be read (or accepted) without blocking */
    SB_WRITABLE = 2, /**< the fd can be written without blocking */
    SB_ERROR = 4, /**< reported only: error/hangup, delivered with both of the above */
    /** In a mask for sb_loop_watch: edge-triggered where the backend can
     * (epoll; the others ignore it): the callback is called when the fd
     * becomes ready, not every turn while it stays ready. Its owner reads
     * until EAGAIN or a short read (writes until EAGAIN), or calls
     * sb_loop_again when it stops before that. Saves the kernel a poll of
     * every reported fd on the next wait. */
    SB_EDGE = 8,
    /** Reported only, to SB_EDGE watchers: the peer shut down its side, or
     * the fd hung up or failed. Bytes sent before it may still wait, and no
     * later edge announces the end: a short read no longer means drained,
     * so read on (sb_loop_again) until EOF or the error. */
    SB_HUP = 16
};

/** Called when fd is ready: events is a mask of SB_READABLE, SB_WRITABLE,
 * SB_ERROR, SB_HUP; ud is sb_loop_watch's. */
typedef void (*sb_io_cb)(sb_loop *l, int fd, int events, void *ud);

/** backend: "epoll", "poll", "select" (or "uring" where built), NULL for the
 * default (epoll on Linux). On "uring" the kernel also does the I/O of the
 * loop's plain connections (completion-based: multishot receive into
 * buffers shared by the loop, sends queued with the wait); the loop must
 * then be run by one thread, the one that runs it first. Returns 0 with
 * *out set, SB_EBACKEND, -ENOMEM, or the backend's setup error (uring:
 * -ENOSYS without io_uring, -EPERM where kernel.io_uring_disabled or a
 * seccomp filter forbids it). */
int sb_loop_new(sb_loop **out, const char *backend);
/** Frees the loop. Watchers, timers and defers still registered are simply
 * forgotten (their owners must not use them afterwards). */
void sb_loop_free(sb_loop *l);
/** The name of l's backend ("epoll", ...); static. */
const char *sb_loop_backend(const sb_loop *l);
/** Names of the backends compiled in, NULL terminated. */
const char *const *sb_loop_backends(void);

/** Watch fd for mask (SB_READABLE | SB_WRITABLE); mask 0 stops watching.
 * Calling again replaces mask, cb and ud. Safe inside any callback: an fd
 * unwatched during a turn gets no further callback in that turn.
 * Returns 0, -ENOMEM, SB_EFDSETSIZE (select: fd >= FD_SETSIZE), -EBADF. */
int sb_loop_watch(sb_loop *l, int fd, int mask, sb_io_cb cb, void *ud);
/** For an SB_EDGE watcher that stopped before draining (a full read
 * buffer, a write budget spent): call it back next turn with events (and
 * its mask) as if the fd had been reported again. A no-op for watchers
 * without SB_EDGE or on backends that ignore it - they are reported again
 * anyway. Dropped if the fd is unwatched or changes owner first. Never
 * fails, never allocates. */
void sb_loop_again(sb_loop *l, int fd, int events);
/** The current mask of fd (0 when not watched; SB_EDGE only where the
 * backend honours it). */
int sb_loop_mask(const sb_loop *l, int fd);

/** Run until sb_loop_stop. Returns 0 or a fatal backend error. */
int sb_loop_run(sb_loop *l);
/** One turn; timeout_ms < 0 waits for the next event or timer.
 * Returns the number of callbacks run, or a negative error. */
int sb_loop_run_once(sb_loop *l, int timeout_ms);
/** Make sb_loop_run return after the current turn (loop thread only). */
void sb_loop_stop(sb_loop *l);
/** Thread-safe stop (and async-signal-safe): wakes the loop and stops it. */
void sb_loop_stop_async(sb_loop *l);

/** Cached monotonic time in ms, refreshed once per turn (cheap). */
int64_t sb_loop_now(const sb_loop *l);
/** Refresh the cached time now. */
void sb_loop_update_time(sb_loop *l);

/** Timers. The caller owns the sb_timer memory (embed it in your own
 * struct); it must stay valid while the timer is started. */
typedef struct sb_timer sb_timer;
/** Called once when t is due; t may be started again from inside. */
typedef void (*sb_timer_cb)(sb_loop *l, sb_timer *t);
struct sb_timer {
    int64_t due;       /**< absolute ms on the loop clock */
    uint64_t seq;      /**< tie-break: equal due times run in start order */
    size_t heap_index; /**< position in the heap, SIZE_MAX when stopped */
    sb_timer_cb cb;    /**< called when due */
    void *data;        /**< for the owner */
};
/** Prepare a stopped timer with its callback and the owner's data. */
void sb_timer_init(sb_timer *t, sb_timer_cb cb, void *data);
/** (Re)start to fire once, ms from now (0 = next turn). Safe inside any
 * callback, including t's own. Returns 0 or -ENOMEM. */
int sb_timer_start(sb_loop *l, sb_timer *t, int64_t ms);
/** Stop if started; safe to call on a stopped timer or inside callbacks. */
void sb_timer_stop(sb_loop *l, sb_timer *t);
static inline int sb_timer_active(const sb_timer *t) { return t->heap_index != (size_t)-1; }

/** Deferred callbacks: run at the end of the current turn (or the next one
 * when queued from a defer callback). Embedded like timers. */
typedef struct sb_defer sb_defer;
/** Called once per sb_defer_queue, at the end of the turn. */
typedef void (*sb_defer_cb)(sb_loop *l, sb_defer *d);
struct sb_defer {
    sb_defer *next; /**< the loop's queue */
    sb_defer_cb cb; /**< what runs */
    void *data;     /**< for the owner */
    int queued;     /**< on the queue now */
};
/** Prepare d with its callback and the owner's data (not queued). */
void sb_defer_init(sb_defer *d, sb_defer_cb cb, void *data);
/** Queue d for the end of this turn; a no-op if already queued. */
void sb_defer_queue(sb_loop *l, sb_defer *d);
/** Take d off the queue if it is on it. */
void sb_defer_cancel(sb_loop *l, sb_defer *d);

/** @{ */
/** Wakeups: cb runs in the loop thread after any number of
 * sb_loop_wakeup() calls from any thread (coalesced). */
typedef void (*sb_wakeup_cb)(sb_loop *l, void *ud);
void sb_loop_on_wakeup(sb_loop *l, sb_wakeup_cb cb, void *ud);
void sb_loop_wakeup(sb_loop *l);
/** @} */

/** A function run on a loop's thread by sb_loop_post. */
typedef void (*sb_post_cb)(sb_loop *l, void *ud);
/** Run fn(l, ud) on l's thread, from any thread: the way to reach a
 * connection owned by another loop (sb_conn_loop(c)) - sb_conn_send and
 * every other call on c are for its own loop's thread only. Posted
 * functions run in the order posted by one thread, at the loop's next
 * wakeup; none runs inside this call, even from l's own thread. Ownership
 * of ud passes to fn; a post still pending when the loop is freed runs
 * inside sb_loop_free (so it can release ud). A connection may be gone by
 * the time fn runs: post to the loop and find the connection there, never
 * a bare sb_conn pointer that may be freed. Lock-free (one
 * compare-and-swap and a coalesced eventfd write); one small allocation.
 * Returns 0 or -ENOMEM (fn will not run). */
int sb_loop_post(sb_loop *l, sb_post_cb fn, void *ud);

/** @{ */
/** Deliver signo into the loop: cb runs in the loop thread. The process-wide
 * disposition of signo is changed; only one loop per process may own a
 * given signal. cb NULL restores the default. Returns 0 or a negative errno. */
typedef void (*sb_signal_cb)(sb_loop *l, int signo, void *ud);
int sb_loop_signal(sb_loop *l, int signo, sb_signal_cb cb, void *ud);
/** @} */

/** @{ */
/** Non-blocking connect (EINPROGRESS -> writable -> SO_ERROR) with a
 * timeout. cb gets a connected non-blocking fd (owned by cb) or a negative
 * error (-ECONNREFUSED, -ETIMEDOUT, ...). The resolved addresses (the
 * first 8) are tried in turn. Returns 0 (cb will be called exactly once, never from inside this
 * call) or an immediate error (parse/resolve failure, cb not called). */
typedef void (*sb_connect_cb)(sb_loop *l, int fd_or_err, void *ud);
int sb_loop_connect(sb_loop *l, const char *addr, int timeout_ms, sb_connect_cb cb, void *ud);
/** @} */

#ifdef __cplusplus
}
#endif

#endif
