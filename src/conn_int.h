/* conn_int: the private side of conn - the connection object, shared by
 * the four files that implement it, and the hooks server.c uses.
 *
 *   conn.c           the object: open/free, the read path (frame decode ->
 *                    handler), close requests, peer, walk, accessors
 *   conn_queue.c     the write queue and the calls that fill it (send,
 *                    write, sendfile, flush)
 *   conn_event.c     the event driver (a loop's callbacks, timer, closing)
 *   conn_blocking.c  the blocking driver (one thread or process per
 *                    connection: poll on the socket and a wake fd)
 *
 * Who may touch what. A connection has one owner thread: its loop's thread
 * (event model) or the thread running sb_conn_run_blocking (threads and
 * fork models). Handlers run on the owner thread.
 *   - Event model: every field belongs to the loop's thread; no locks.
 *   - Blocking models: other threads may call sb_conn_send / _write /
 *     _sendfile / _flush / _close / _abort (and sb__conn_close_err), and
 *     nothing else. Then:
 *       o  fd, o, h, tp, owner, blk, loop: set before the connection is
 *          visible to other threads, constant until the owner frees it
 *          (fd: the owner closes it only after setting blk->xclosed under
 *          blk->lock, so a foreign thread, which checks xclosed under the
 *          lock, never names a closed fd).
 *       o  out_head, out_tail, queued, queued_mem, queued_files,
 *          write_since, out_io, blk->xclosed, blk->xshut, blk->pollout,
 *          and every write on the socket: under blk->lock (queued_files
 *          also changed atomically: the owner reads it unlocked),
 *          by any thread. Nobody sleeps holding blk->lock: the socket is
 *          non-blocking and every write under the lock is one that returns
 *          EAGAIN instead of waiting.
 *          A TLS transport (tls.c) declines foreign writes, so only the
 *          owner ever calls into its engine - and the engine writes the
 *          socket from the owner's reads too (handshake, alerts), outside
 *          the lock, which is safe because no other thread writes it.
 *       o  blk->xreq, blk->xerr: atomics, any thread (a foreign thread's
 *          close request; the owner acts on it).
 *       o  blk->wake_fd: written (one eventfd increment) by any thread that
 *          needs the owner to look again; read only by the owner.
 *       o  everything else (flags, err, in, fs, read_hint, last_io,
 *          msg_start, peer, link when on a loop): the owner only.
 *       o  data: the app's (sb_conn_set_data); the library stores it and
 *          never reads it, so an app that reaches another thread's
 *          connection (chat, under its own mutex) synchronises it itself.
 *   - link: on the loop's list of connections (event model, loop thread) or
 *     on the owner's list (blocking models, under the owner's lock: see
 *     sb__conn_list_add).
 */
#ifndef SB_CONN_INT_H
#define SB_CONN_INT_H

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>

#include "switchboard/buf.h"
#include "switchboard/conn.h"
#include "switchboard/sock.h"
#include "list.h"
#include "loop_int.h"
#include "transport.h"

struct sb__transport;

/* Counters of one worker (one loop): written only by that loop's thread,
 * read by any (the metrics exporter) - relaxed atomic loads and stores, no
 * read-modify-write, no lock. Aligned so that two workers never share a
 * cache line. */
/* One worker's counters. Lines by who touches them how often: the first
 * is written on every message; open has a line of its own, because every
 * other worker reads it on every accept (ev_pick) and a write per message
 * next to it would make each of those reads a miss. */
typedef struct sb__stats {
    uint64_t msgs_in, bytes_in, msgs_out, bytes_out; /* per message */
    uint64_t accepted;                /* connections this worker served (adopted) */
    uint64_t shed_emfile, shed_cap;   /* refused at accept */
    uint64_t err_outcap, err_timeout, err_malformed, err_reset, err_tls, err_other; /* closes by cause */
    uint64_t proxy_bad;               /* no valid PROXY header */
    uint64_t tls_ok, tls_failed;      /* TLS connections ended with / without a completed handshake */
    uint64_t open __attribute__((aligned(64))); /* connections open now */
} __attribute__((aligned(64))) sb__stats;

_Static_assert(offsetof(sb__stats, open) % 64 == 0 && sizeof(sb__stats) - offsetof(sb__stats, open) == 64,
               "sb__stats.open must sit alone on its cache line");

/* The owner thread adds n: a plain load and store (the thread is the only
 * writer), atomic so that the exporter's concurrent load is no data race. */
static inline void sb__stat_add(uint64_t *v, uint64_t n)
{
    __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t sb__stat_get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

typedef struct sb__conn_owner sb__conn_owner;
struct sb__conn_owner {
    /* Messages delivered to handlers, shared by every connection of the
     * owner (atomic: threads and fork children add to it concurrently). */
    uint64_t *messages;
    /* Blocking models: called on the connection's thread once the
     * connection exists, before on_open (NULL: not needed). From here until
     * gone the owner may call sb__conn_close_err from any thread. */
    void (*joined)(sb__conn_owner *ow, sb_conn *c);
    /* Called once when a connection is freed (after on_close). */
    void (*gone)(sb__conn_owner *ow, sb_conn *c);
    void *ud;
    /* Event model: the worker's counters (bytes and replies; one writer,
     * the loop's thread). NULL: not counted. */
    sb__stats *stats;
};

/* sb_conn_open / sb_conn_run_blocking with an owner. peer (NULL: the
 * socket's own, from getpeername) is the address the connection reports
 * from the start (sb_conn_peer, on_open included): for a server behind a
 * load balancer, the client a PROXY header named. */
int sb__conn_open(sb_loop *l, int fd, const sb_conn_opts *o, const sb_handler *h,
                  sb__conn_owner *ow, const struct sockaddr *peer, socklen_t plen,
                  sb_conn **out);
/* wake_fd: from sb__conn_wake_new (owned from now on), or -1 to make one
 * here. A server that accepts on one thread and runs connections on others
 * makes it where it accepts, so that running out of descriptors is met in
 * one place (where it sheds) and never races its spare descriptor. */
int sb__conn_run_blocking(int fd, int wake_fd, const sb_conn_opts *o, const sb_handler *h,
                          sb__conn_owner *ow);
/* A blocking-model connection's wake fd (an eventfd), or a negative errno. */
int sb__conn_wake_new(void);

/* An owner's list of blocking-model connections (the event model's list is
 * the loop's: see sb_conn_walk). The owner serialises these with its own
 * lock; add from joined, del from gone. */
void sb__conn_list_add(sb__link *head, sb_conn *c);
void sb__conn_list_del(sb_conn *c);
/* cb(c, ud) for every connection on head; cb may not remove c. */
void sb__conn_list_walk(sb__link *head, void (*cb)(sb_conn *c, void *ud), void *ud);

/* Replace the connection's transport (see transport.h) before any I/O -
 * the hook a TLS layer uses. The connection owns state from now on. */
void sb__conn_set_transport(sb_conn *c, const struct sb__transport *tp, void *state);

/* Drain (event model, owner thread): an idle connection (messages
 * delivered before, none half received) closes now; one with a message
 * under way - or that has not sent its first yet: it was accepted for one -
 * closes once that message is delivered. Replies are flushed before the
 * close either way; the server's grace timer bounds the wait. */
void sb__conn_drain(sb_conn *c);
/* 0: not TLS; 1: TLS, the handshake completed; -1: TLS, it did not (yet).
 * Cheap (no engine call); valid until the connection is freed, so in its
 * owner's gone callback too. */
int sb__conn_tls_done(const sb_conn *c);

/* Begin a close with reason err (graceful: flush first). Safe from any
 * thread while the connection is alive: from a foreign thread it only
 * records the request and wakes the owner. */
void sb__conn_close_err(sb_conn *c, int err, int graceful);

/* ------------------------------------------------------------------ */
/* The object, for conn*.c only.                                       */

#define SB_CHUNK_SMALL 992         /* first chunk: fits glibc's tcache */
#define SB_CHUNK_LARGE (16 * 1024) /* later chunks of a growing queue */
#define SB_WRITE_BUDGET (1 << 20)  /* bytes per connection per loop turn */
#define SB_READ_MAX (64 * 1024)    /* bytes read into the own buffer at once */
#define SB_LINGER_MS 2000          /* lingering close: longest wait for the peer's FIN */
/* File ranges queued (each holds a descriptor) at which a connection stops
 * delivering messages and reading, and where it resumes. Bytes alone do
 * not bound them: a request for 16 one-byte ranges queues 16 descriptors
 * and a few hundred bytes, so a pipelining client that never reads would
 * otherwise take the process's descriptors. At most SB_FILES_HIGH - 1 plus
 * one reply's ranges are held. */
#define SB_FILES_HIGH 32
#define SB_FILES_LOW 8

/* The most a connection holds undelivered beyond one message (conn_hold):
 * what one turn of a completion ring can receive, all its buffers
 * (loop_uring.c: 256 x 64 KiB; a larger ring needs a larger bound). */
#define SB_HOLD_MAX (16u << 20)

/* The steps of sb_conn_send, run once per reply: inlined so that their
 * checks cost no calls (-O2 alone keeps them out of line). */
#define SB_PER_SEND static inline __attribute__((always_inline))

enum {
    F_BLOCKING = 1 << 0,   /* driven by sb__conn_run_blocking */
    F_EOF = 1 << 1,        /* the peer shut down its side */
    F_CLOSING = 1 << 2,    /* no more reads: flush, then close */
    F_ABORT = 1 << 3,      /* discard output, close now */
    F_SHUT_WANT = 1 << 4,  /* shutdown(SHUT_WR) once the queue is empty */
    F_SHUT_DONE = 1 << 5,  /* shutdown(SHUT_WR) done */
    F_PAUSED = 1 << 6,     /* sb_conn_pause */
    F_BACKPRESS = 1 << 7,  /* output over out_high: not reading */
    F_CLOSED = 1 << 8,     /* finished: fd closed, on_close called */
    F_DELIVER = 1 << 9,    /* messages wait in `in`: paused, must wait, or released and not yet delivered */
    F_LINGER = 1 << 10,    /* closing: our FIN is out, draining the peer's bytes */
    F_HUP = 1 << 11,       /* event model: the loop reported SB_HUP; read to the end */
    F_EOF_LATE = 1 << 12,  /* the peer's end came while messages were held: on_eof waits */
    F_DRAIN = 1 << 13,     /* close once the message under way is delivered */
    F_GOTMSG = 1 << 14,    /* at least one message delivered */
    F_RING = 1 << 15,      /* event model on a completion ring: the kernel receives and sends */
    F_RSTOP = 1 << 16,     /* ring: the receive's cancel is asked, its end not yet seen */
    F_RDROP = 1 << 17,     /* ring: bytes came after closing began (the peer still sends) */
    F_RWAIT = 1 << 18,     /* ring: closing, waiting for the receive's end (bounded by the timer) */
};

typedef struct sb__chunk sb__chunk;
struct sb__chunk {
    sb__chunk *next;
    size_t start; /* memory: first unsent byte; file: next offset */
    size_t end;   /* memory: one past the last byte; file: end offset */
    size_t cap;   /* memory: size of data[]; file: 0 */
    int fd;       /* file: the fd (owned); memory: -1 */
    uint8_t data[];
};

/* What only a blocking-model connection needs (one pointer in sb_conn for
 * the event model). Thread rules: see the top of this file. */
typedef struct sb__conn_blk {
    pthread_mutex_t lock;  /* the write queue, xclosed, pollout, socket writes */
    pthread_t thread;      /* the owner */
    int wake_fd;           /* eventfd the owner polls; any thread adds 1 */
    int xreq;              /* atomic: close asked by another thread (1 graceful, 2 abort) */
    int xerr;              /* atomic: ... and why (first error wins) */
    int xclosed;           /* under lock: the owner is closing: no more sends */
    int xshut;             /* under lock: the owner shut down its sending side (or is about
                            * to close): a foreign send would never go, so it is refused */
    int pollout;           /* under lock: the owner's poll waits for POLLOUT */
} sb__conn_blk;

/* The peer, taken when the connection opens (after a reset getpeername
 * fails, and on_close is exactly when a handler wants the address): 20
 * bytes instead of a sockaddr_storage's 128; the text is made on demand. */
typedef struct sb__peer {
    uint8_t ip[16];   /* IPv4 in the first 4 bytes */
    uint16_t port;    /* host order */
    uint8_t family;   /* 0 unknown, 4, 6, 'u' unnamed unix, 't' text made at open */
    uint8_t unused;
} sb__peer;

struct sb_conn {
    int fd;
    unsigned flags;
    int err;                   /* why the connection ends (0: clean) */
    int mask;                  /* event model: what the loop watches */
    int depth;                 /* event model: our callbacks on the stack */
    uint32_t read_hint;        /* bytes of the last read: sizes the next reply chunk */
    const sb_conn_opts *o;     /* shared, not owned */
    const sb_handler *h;       /* shared, not owned */
    const struct sb__transport *tp; /* how bytes move (plain socket today) */
    void *tp_state;            /* the transport's per-connection state, owned */
    sb_loop *loop;             /* NULL in the blocking models */
    sb__conn_owner *owner;     /* server hooks, may be NULL */
    void *data;                /* sb_conn_set_data */
    sb__chunk *out_head;       /* write queue */
    sb__chunk *out_tail;
    size_t queued;             /* bytes in the write queue (memory and file ranges) */
    size_t queued_mem;         /* ... of which in memory: what out_cap bounds */
    unsigned queued_files;     /* file chunks in the queue (each holds an fd) */
    sb_buf in;                 /* unfinished message, after any held whole ones (F_DELIVER,
                                * may pass in.max: conn_hold); empty (no memory) otherwise */
    sb_frame_state fs;         /* where decoding of the message in `in` stopped */
    int64_t last_io;           /* ms: last byte in or out */
    int64_t msg_start;         /* ms: when `in` became non-empty */
    int64_t write_since;       /* ms: last output progress */
    int64_t out_io;            /* ms: last output progress by any thread (blocking
                                * models: under blk->lock; counts for idle) */
    sb_timer timer;            /* event model: the next of the idle/read/write deadlines */
    sb_defer defer;            /* event model: close and resume steps outside callbacks */
    sb__link link;             /* the loop's list, or the owner's (blocking) */
    sb__op op;                 /* F_RING: the receive and send in flight (loop_int.h) */
    sb__chunk *out_dead;       /* F_RING: a cleared queue whose bytes a send still reads */
    struct msghdr *ring_msg;   /* F_RING: a gathered send's header and iovecs, until it completes */
    sb__conn_blk *blk;         /* blocking models only */
    char *peer;                /* sb_conn_peer's text, made on first use */
    sb__peer addr;             /* the peer, taken at open */
};

static inline size_t sb__conn_max_msg(const sb_conn *c)
{
    return c->o->max_msg ? c->o->max_msg : (1u << 20);
}

static inline size_t sb__conn_out_cap(const sb_conn *c)
{
    return c->o->out_cap ? c->o->out_cap : (4u << 20) + sb__conn_max_msg(c);
}

static inline size_t sb__conn_out_high(const sb_conn *c)
{
    return c->o->out_high ? c->o->out_high : 256u << 10;
}

static inline size_t sb__conn_out_low(const sb_conn *c)
{
    return c->o->out_low ? c->o->out_low : sb__conn_out_high(c) / 4;
}

static inline int64_t sb__conn_now(const sb_conn *c)
{
    return c->loop ? sb__loop_now(c->loop) : sb_now_ms();
}

/* Not delivering messages now (closing, closed or paused). */
static inline int sb__conn_stopped(const sb_conn *c)
{
    return (c->flags & (F_CLOSING | F_ABORT | F_PAUSED | F_CLOSED)) != 0;
}

/* Too many file ranges queued to take another message. Atomic: under the
 * threads model another thread's sendfile may add one while the owner
 * delivers (writers hold blk->lock, the owner reads without it). */
static inline int sb__conn_files_full(const sb_conn *c)
{
    return __atomic_load_n(&c->queued_files, __ATOMIC_RELAXED) >= SB_FILES_HIGH;
}

/* Messages must wait in `in`: too many file ranges queued, or (F_RING) the
 * output is over its high-water mark. A readiness connection stops reading
 * there and leaves the rest in the socket; a ring connection's receive has
 * taken it already (a whole turn's completions come at once), so it stops
 * delivering instead, and what came waits in `in` until the output drains:
 * the output cap is not a ring's turn away from being crossed. The queue,
 * not F_BACKPRESS, is what is checked: held messages released at once must
 * stop again at the mark, within the one delivery (F_BACKPRESS is set only
 * by the flush after it). */
static inline int sb__conn_must_wait(const sb_conn *c)
{
    return sb__conn_files_full(c) || ((c->flags & F_RING) && c->queued > sb__conn_out_high(c));
}

static inline int sb__conn_files_low(const sb_conn *c)
{
    return __atomic_load_n(&c->queued_files, __ATOMIC_RELAXED) <= SB_FILES_LOW;
}

/* Another thread is calling into a blocking-model connection. c->blk is
 * set before the connection is visible to other threads and never
 * changes: reading it is not a race, unlike c->flags. */
static inline int sb__conn_foreign(const sb_conn *c)
{
    return c->blk != NULL && !pthread_equal(c->blk->thread, pthread_self());
}

/* Event model: schedule the driver's next step outside of whatever
 * callback is running now. */
static inline void sb__conn_kick(sb_conn *c)
{
    if (c->loop && !(c->flags & F_CLOSED))
        sb_defer_queue(c->loop, &c->defer);
}

/* conn.c */
sb_conn *sb__conn_alloc(int fd, const sb_conn_opts *o, const sb_handler *h, sb__conn_owner *ow,
                        const struct sockaddr *peer, socklen_t plen);
void sb__conn_free(sb_conn *c);
void sb__conn_mark_close(sb_conn *c, int err, int graceful);
void sb__conn_redeliver(sb_conn *c);
int sb__conn_read(sb_conn *c, uint8_t *scratch, size_t scratch_size);
int sb__conn_received(sb_conn *c, const uint8_t *p, size_t n);
int sb__conn_start_linger(sb_conn *c, uint8_t *buf, size_t size);
int sb__conn_linger_read(sb_conn *c, uint8_t *buf, size_t size);
void sb__conn_set_linger0(int fd);
int64_t sb__conn_deadline(const sb_conn *c);
int sb__conn_min_timeout(const sb_conn_opts *o);
void sb__conn_goodbye(sb_conn *c);
/* What the transport waits for itself (transport.h's events; 0: nothing).
 * Inline: the plain transport has no hook, and this is asked on every
 * update of a connection's watch. */
static inline int sb__conn_tp_events(const sb_conn *c)
{
    return c->tp->events ? c->tp->events(c->tp_state) : 0;
}

/* conn_queue.c */
void sb__queue_clear(sb_conn *c);
int sb__queue_flush(sb_conn *c, size_t budget, int dontwait);
int sb__queue_ring_send(sb_conn *c);
int sb__queue_ring_sent(sb_conn *c, int res);

/* conn_blocking.c: a foreign thread's requests to the owner. */
void sb__blk_request_close(sb_conn *c, int err, int graceful);
void sb__blk_wake(sb_conn *c);
int sb__blk_flush_now(sb_conn *c);

#endif
