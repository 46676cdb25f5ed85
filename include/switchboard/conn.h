/** @file
 * conn: a buffered connection and the handler interface every app writes.
 *
 * Bytes read from the socket are cut into messages by the connection's
 * framing; the handler's on_message runs once per message. Replies are
 * framed into the connection's write queue (sb_conn_send) and flushed with
 * one gathered write after the batch of messages from one read, so a
 * pipelining peer gets its replies in one write.
 *
 * The same handler runs under every dispatch model of sb_server: in the
 * event model the connection lives on a loop and never blocks; in the
 * threads and fork models one thread/process drives it, waiting in poll()
 * bounded by the timeouts (and never while holding the connection's lock). The handler cannot tell the difference, except
 * that sb_conn_loop() is NULL outside the event model.
 *
 * Bounds: max_msg (checked before buffering), the output queue (above
 * out_high queued bytes, or 32 queued file ranges, the connection stops
 * taking messages and reading from the peer until the queue drains below
 * out_low and 8 file ranges; on the uring backend what the kernel already
 * received waits in the connection meanwhile, at most 16 MiB + max_msg;
 * above out_cap bytes of memory the peer is disconnected), idle, read and
 * write timeouts.
 *
 * Bytes move through a small transport interface (src/transport.h): the
 * plain socket or TLS (sb_conn_opts.tls); on the uring backend a plain
 * connection's receives and sends are io_uring requests instead.
 *
 * Lifetime: a connection is freed by the library after on_close has run,
 * never while one of its callbacks is on the stack. Handlers must not use
 * an sb_conn after its on_close.
 */
#ifndef SWITCHBOARD_CONN_H
#define SWITCHBOARD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A buffered, framed connection (opaque; owned by the library). */
typedef struct sb_conn sb_conn;

/** The callbacks of an app; the same under every dispatch model. */
typedef struct sb_handler {
    /** A new connection. Return 0 to keep it, negative to refuse (closed). */
    int (*on_open)(sb_conn *c, void *app);
    /** One whole message (valid only during the call). Return 0 to go on, or
     * a negative code to close the connection after flushing replies. */
    int (*on_message)(sb_conn *c, const sb_msg *m, void *app);
    /** The peer shut down its sending side, after its last message was
     * delivered. NULL: close once the replies are flushed. The event model
     * keeps the connection open for replies until the handler closes it;
     * the blocking models close it (after flushing) when on_eof returns. */
    void (*on_eof)(sb_conn *c, void *app);
    /** The connection is closing: err is 0 for a clean close or why it broke
     * (SB_ETOOBIG, -ECONNRESET, -ETIMEDOUT, ...). Last callback. */
    void (*on_close)(sb_conn *c, int err, void *app);
    void *app; /**< passed to every callback */
} sb_handler;

struct sb_tls;

/** Per-connection options, shared by many connections (not copied). */
typedef struct sb_conn_opts {
    sb_frame_spec frame;   /**< framing of messages in and out */
    size_t max_msg;        /**< largest message accepted (0: 1 MiB) */
    size_t out_high;       /**< stop reading above this many queued bytes, file ranges
                            *   included (0: 256 KiB) */
    size_t out_low;        /**< resume reading below (0: out_high / 4) */
    /** Disconnect when the memory queued exceeds this (0: 4 MiB + max_msg).
     * File ranges (sb_conn_sendfile) use no memory and do not count: a file
     * larger than the cap is sent whole, while the connection stops reading
     * until it drains (out_high counts them). */
    size_t out_cap;
    int idle_timeout_ms;   /**< close after this long with no bytes in either direction (0: none) */
    int read_timeout_ms;   /**< close when a started message does not complete in time (0: none) */
    int write_timeout_ms;  /**< close when queued output makes no progress in time (0: none) */
    const struct sb_tls *tls; /**< TLS context (tls.h), NULL: plain bytes; not owned, it must
                               *   outlive the connections of these options */
} sb_conn_opts;

/** Defaults above, framing `line`. */
void sb_conn_opts_default(sb_conn_opts *o);

/** Event model: adopt a connected fd (made non-blocking, owned from now on)
 * on loop l. on_open runs before this returns. Returns 0 with *out set, or
 * an error (fd closed, on_close not called; on_open refusing gives its
 * code). The handler and the options are not copied: both must outlive
 * the connection (many connections share one of each). */
int sb_conn_open(sb_loop *l, int fd, const sb_conn_opts *o, const sb_handler *h, sb_conn **out);

/** Blocking models: drive fd on the calling thread until the connection
 * ends, then close it. Returns the close reason (0 = clean). The thread
 * waits in poll() on the socket (made non-blocking) and on an eventfd of
 * the connection's own, bounded by the idle, read and write deadlines, so
 * a dead peer ends the thread instead of hanging it; it never waits on the
 * socket while holding the connection's lock, so other threads sending to
 * this connection never wait for its peer (see sb_conn_send). */
int sb_conn_run_blocking(int fd, const sb_conn_opts *o, const sb_handler *h);

/** Frame and queue one message (type for typed framing, else ignored).
 * Returns 0, SB_ETOOBIG/SB_EMALFORMED/SB_EBADTYPE (framing refused it),
 * SB_EOUTPUT (queue over its cap: the connection is being closed),
 * SB_ECLOSED, or -ENOMEM. Safe from any thread under the threads model:
 * another thread's send queues, tries one non-blocking write and leaves
 * the rest to the connection's own thread - it never waits for the peer
 * (a peer that does not read is disconnected at out_cap instead). Each
 * call is atomic, not a sequence of calls: under the threads model a reply
 * built from several (sb_conn_write, then sb_conn_sendfile) can have
 * another thread's sb_conn_send land between its parts. */
int sb_conn_send(sb_conn *c, int type, const void *p, size_t n);
/** Queue raw bytes, unframed. Same returns. */
int sb_conn_write(sb_conn *c, const void *p, size_t n);
/** Queue n bytes of file fd from offset off, sent with sendfile(2). The
 * connection takes ownership of fd and closes it when done. sendfile has
 * no MSG_NOSIGNAL: outside sb_server (which ignores SIGPIPE), ignore
 * SIGPIPE before using this. */
int sb_conn_sendfile(sb_conn *c, int fd, off_t off, size_t n);
/** Send what is queued now instead of at the end of the batch. */
int sb_conn_flush(sb_conn *c);

/** Graceful close: stop reading, flush the queue, shutdown, close. Like
 * sb_conn_abort, safe from any thread under the threads model (the
 * connection's own thread does the closing). */
void sb_conn_close(sb_conn *c);
/** Abortive close: discard the queue, reset the connection (RST). */
void sb_conn_abort(sb_conn *c);
/** Half-close: flush the queue, then shutdown(SHUT_WR); keep reading. */
void sb_conn_shutdown(sb_conn *c);

/** @{ */
/** Stop / resume delivering messages (application backpressure). Event
 * model only: a paused blocking-model connection has no one to resume it
 * and is closed gracefully instead. */
void sb_conn_pause(sb_conn *c);
void sb_conn_resume(sb_conn *c);
/** @} */

/** The per-connection pointer set by sb_conn_set_data (NULL at first). */
void *sb_conn_data(const sb_conn *c);
/** Attach the app's per-connection state (the library never frees it). */
void sb_conn_set_data(sb_conn *c, void *data);
/** The connection's socket (owned by the connection). */
int sb_conn_fd(const sb_conn *c);
sb_loop *sb_conn_loop(const sb_conn *c);     /**< NULL outside the event model */
/** The options the connection was opened with. */
const sb_conn_opts *sb_conn_options(const sb_conn *c);
/** Bytes waiting in the write queue (memory and file ranges). Read without
 * the connection's lock: from another thread than the connection's own
 * (threads model) the answer is approximate. */
size_t sb_conn_queued(const sb_conn *c);
/** The peer as "1.2.3.4:5678", "[::1]:5678" or "unix:..." ("?" when the
 * socket had no peer address when it was opened). The address is taken
 * when the connection opens, so this works in on_close too, after a reset;
 * the text is made on first use and owned by c. */
const char *sb_conn_peer(sb_conn *c);

/** Every connection open on loop l (sb_conn_open, and the event model of
 * sb_server), in no set order: cb(c, ud) for each. cb may close or abort
 * c - that only marks it; the loop frees it later, after on_close - but
 * must not open connections on l. Returns how many were visited (cb NULL:
 * just count them). A program that stops its loop ends its connections
 * with it, instead of leaking them:
 *
 *     sb_conn_walk(l, abort_one, NULL);        // abort_one: sb_conn_abort(c)
 *     while (sb_conn_walk(l, NULL, NULL) > 0)  // each on_close runs here
 *         sb_loop_run_once(l, 100);
 *     sb_loop_free(l);
 */
size_t sb_conn_walk(sb_loop *l, void (*cb)(sb_conn *c, void *ud), void *ud);

#ifdef __cplusplus
}
#endif

#endif
