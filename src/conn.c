/* conn: a buffered connection - decoder in, write queue out, timeouts,
 * half-close and close - driven either by a loop (event model) or by one
 * blocking thread (threads and fork models). See conn.h.
 *
 * Divisions of this file:
 *   1. the write queue (chunks of memory or file ranges, flushed by sendmsg
 *      and sendfile)
 *   2. message delivery (frame decode -> handler), shared by both drivers
 *   3. the event driver (readable/writable callbacks, timer, close steps)
 *   4. the blocking driver
 *   5. the public calls
 *
 * Read path, event model: a read lands in the loop's scratch buffer and
 * messages are cut straight out of it; only the unfinished tail of the last
 * message is copied into the connection's own buffer. An idle connection
 * therefore owns no buffers at all - its cost is this struct.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/time.h>

#include "switchboard.h"
#include "conn_int.h"
#include "frame_int.h"
#include "loop_int.h"
#include "sys.h"
#include "transport.h"

#define SB_IOV_MAX 64
#define SB_CHUNK_SMALL 992         /* first chunk: fits glibc's tcache */
#define SB_CHUNK_LARGE (16 * 1024) /* later chunks of a growing queue */
#define SB_WRITE_BUDGET (1 << 20)  /* bytes per connection per loop turn */
#define SB_READ_MAX (64 * 1024)    /* bytes read into the own buffer at once */
#define SB_LINGER_MS 2000          /* lingering close: longest wait for the peer's FIN */

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
    F_DELIVER = 1 << 9,    /* messages wait in `in` (after resume) */
    F_LINGER = 1 << 10,    /* closing: our FIN is out, draining the peer's bytes */
    F_HUP = 1 << 11,       /* event model: the loop reported SB_HUP; read to the end */
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

struct sb_conn {
    int fd;
    unsigned flags;
    int err;                   /* why the connection ends (0: clean) */
    int mask;                  /* event model: what the loop watches */
    int depth;                 /* event model: our callbacks on the stack */
    uint32_t read_hint;        /* bytes of the last read: sizes the next reply chunk */
    const sb_conn_opts *o;     /* shared, not owned */
    const sb_handler *h;       /* shared, not owned */
    const sb__transport *tp;   /* how bytes move (plain socket today) */
    void *tp_state;            /* the transport's per-connection state, owned */
    sb_loop *loop;             /* NULL in the blocking models */
    sb__conn_owner *owner;     /* server hooks, may be NULL */
    void *data;                /* sb_conn_set_data */
    sb__chunk *out_head;       /* write queue */
    sb__chunk *out_tail;
    size_t queued;             /* bytes in the write queue */
    sb_buf in;                 /* unfinished message; empty (no memory) otherwise */
    sb_frame_state fs;         /* where decoding of the message in `in` stopped */
    int64_t last_io;           /* ms: last byte in or out */
    int64_t msg_start;         /* ms: when `in` became non-empty */
    int64_t write_since;       /* ms: last output progress */
    sb_timer timer;            /* the next of the idle/read/write deadlines */
    sb_defer defer;            /* close and resume steps outside callbacks */
    sb_conn *next, *prev;      /* owner's list */
    char *peer;                /* sb_conn_peer, lazily */
    pthread_mutex_t *lock;     /* blocking model: sends from other threads */
    pthread_t thread;          /* blocking model: the driving thread */
    int xreq;                  /* blocking model, atomic: close asked by another thread (1 graceful, 2 abort) */
    int xerr;                  /* ... and why (written before xreq) */
    int xclosed;               /* blocking model, under lock: no more sends accepted */
};

static void ev_update(sb_conn *c);
static void ev_progress(sb_conn *c);
static void ev_io(sb_loop *l, int fd, int events, void *ud);

/* ------------------------------------------------------------------ */
/* 1. The write queue                                                  */

static size_t conn_max_msg(const sb_conn *c)
{
    return c->o->max_msg ? c->o->max_msg : (1u << 20);
}

static size_t conn_out_cap(const sb_conn *c)
{
    return c->o->out_cap ? c->o->out_cap : (4u << 20) + conn_max_msg(c);
}

static size_t conn_out_high(const sb_conn *c)
{
    return c->o->out_high ? c->o->out_high : 256u << 10;
}

static size_t conn_out_low(const sb_conn *c)
{
    return c->o->out_low ? c->o->out_low : conn_out_high(c) / 4;
}

static int64_t conn_now(const sb_conn *c)
{
    return c->loop ? sb__loop_now(c->loop) : sb_now_ms();
}

/* A memory chunk with room for cap bytes; the loop's spare buffer when it
 * is large enough (event model), else the allocator's. */
static sb__chunk *chunk_new(sb_conn *c, size_t cap)
{
    size_t size;
    sb__chunk *k = c->loop ? sb__loop_spare_take(c->loop, sizeof(*k) + cap, &size) : NULL;

    if (k != NULL)
        cap = size - sizeof(*k);
    else if ((k = sb__malloc(sizeof(*k) + cap)) == NULL)
        return NULL;
    k->start = k->end = 0;
    k->cap = cap;
    k->fd = -1;
    return k;
}

static inline __attribute__((always_inline)) void chunk_free(sb_conn *c, sb__chunk *k)
{
    if (k->fd >= 0) {
        sb__sys.close(k->fd);
        sb__free(k);
    } else if (c->loop) {
        sb__loop_spare_give(c->loop, k, sizeof(*k) + k->cap);
    } else {
        sb__free(k);
    }
}

static void queue_clear(sb_conn *c)
{
    while (c->out_head) {
        sb__chunk *k = c->out_head;
        c->out_head = k->next;
        chunk_free(c, k);
    }
    c->out_tail = NULL;
    c->queued = 0;
}

static void queue_push(sb_conn *c, sb__chunk *k)
{
    k->next = NULL;
    if (c->out_tail)
        c->out_tail->next = k;
    else
        c->out_head = k;
    c->out_tail = k;
    if (c->queued == 0)
        c->write_since = conn_now(c);
}

/* Room for n more bytes at the tail of the queue, in one memory chunk. */
SB_PER_SEND uint8_t *queue_reserve(sb_conn *c, size_t n)
{
    sb__chunk *t = c->out_tail;
    size_t cap;

    if (t && t->fd < 0 && t->cap - t->end >= n)
        return t->data + t->end;
    /* The first chunk of a batch is sized by the read that caused it, so
     * replies to a pipelined read usually fit one chunk (and one send). */
    cap = SB_CHUNK_LARGE;
    /* Event model only: under the threads model another thread may be
     * queueing here while the owner's read updates the hint. */
    if (c->loop && c->queued == 0 && c->read_hint + 64 < SB_CHUNK_LARGE)
        cap = c->read_hint + 64 > SB_CHUNK_SMALL ? c->read_hint + 64 : SB_CHUNK_SMALL;
    if (cap < n)
        cap = n;
    t = chunk_new(c, cap);
    if (t == NULL)
        return NULL;
    queue_push(c, t);
    return t->data;
}

static void queue_commit(sb_conn *c, size_t n)
{
    c->out_tail->end += n;
    c->queued += n;
}

/* Drop n sent bytes from the front of the queue. */
static void queue_advance(sb_conn *c, size_t n)
{
    /* The usual case: the one chunk of a read's replies, sent whole. */
    if (n == c->queued && c->out_head == c->out_tail) {
        chunk_free(c, c->out_head);
        c->out_head = c->out_tail = NULL;
        c->queued = 0;
        return;
    }
    c->queued -= n;
    while (n > 0) {
        sb__chunk *k = c->out_head;
        size_t left = k->end - k->start;
        if (n < left) {
            k->start += n;
            return;
        }
        n -= left;
        c->out_head = k->next;
        chunk_free(c, k);
    }
    if (c->out_head == NULL)
        c->out_tail = NULL;
    /* Zero-length chunks (empty files) are dropped when reached. */
    while (c->out_head && c->out_head->start == c->out_head->end) {
        sb__chunk *k = c->out_head;
        c->out_head = k->next;
        chunk_free(c, k);
        if (c->out_head == NULL)
            c->out_tail = NULL;
    }
}

/* A file range through a transport without sendfile: read a piece of the
 * file and write it like memory. */
static ssize_t queue_copy_file(sb_conn *c, sb__chunk *k, int dontwait)
{
    uint8_t buf[16 * 1024];
    size_t want = k->end - k->start < sizeof(buf) ? k->end - k->start : sizeof(buf);
    ssize_t n = pread(k->fd, buf, want, (off_t)k->start);
    struct iovec iov;

    if (n <= 0)
        return n == 0 ? -EIO : -errno;
    iov.iov_base = buf;
    iov.iov_len = (size_t)n;
    n = c->tp->writev(c->tp_state, c->fd, &iov, 1, dontwait);
    return n < 0 ? -errno : n;
}

/* One gathered write or one sendfile. Returns bytes sent or -errno. */
static inline __attribute__((always_inline)) ssize_t queue_write_once(sb_conn *c, int dontwait)
{
    sb__chunk *k = c->out_head;
    struct iovec iov[SB_IOV_MAX];
    ssize_t n;
    int cnt = 0;

    if (k->fd >= 0) {
        off_t off = (off_t)k->start;
        if (dontwait)
            return -EAGAIN; /* sendfile has no per-call non-blocking flag */
        if (c->tp->sendfile == NULL)
            return queue_copy_file(c, k, dontwait);
        n = c->tp->sendfile(c->tp_state, c->fd, k->fd, &off, k->end - k->start);
        if (n == 0)
            return -EIO; /* the file shrank under us */
        return n < 0 ? -errno : n;
    }
    if (k->next == NULL) { /* the usual case: one buffer */
        iov[0].iov_base = k->data + k->start;
        iov[0].iov_len = k->end - k->start;
        n = c->tp->writev(c->tp_state, c->fd, iov, 1, dontwait);
        return n < 0 ? -errno : n;
    }
    for (; k && k->fd < 0 && cnt < SB_IOV_MAX; k = k->next) {
        iov[cnt].iov_base = k->data + k->start;
        iov[cnt].iov_len = k->end - k->start;
        cnt++;
    }
    n = c->tp->writev(c->tp_state, c->fd, iov, cnt, dontwait);
    return n < 0 ? -errno : n;
}

/* Write until the queue is empty, the socket is full (returns 0 with data
 * left) or budget bytes went out (returns 1 with data left: the socket may
 * take more). Returns 0, 1 or -errno. */
static int queue_flush(sb_conn *c, size_t budget, int dontwait)
{
    size_t sent = 0;
    int rc = 0;

    while (c->out_head) {
        if (sent >= budget) {
            rc = 1;
            break;
        }
        ssize_t n = queue_write_once(c, dontwait);
        if (n < 0) {
            if (n == -EINTR)
                continue;
            if (n == -EAGAIN || n == -EWOULDBLOCK)
                rc = c->lock != NULL && !dontwait ? -ETIMEDOUT : 0; /* lock: see blk_foreign */
            else
                rc = (int)n;
            break;
        }
        queue_advance(c, (size_t)n);
        sent += (size_t)n;
    }
    if (sent > 0 && !dontwait) /* another thread's flush leaves the owner's clocks alone */
        c->write_since = c->last_io = conn_now(c);
    return rc;
}

/* ------------------------------------------------------------------ */
/* 2. Message delivery                                                 */

/* Add a batch's messages to the owner's counter: one atomic per read, not
 * one per message. */
static void conn_count(sb_conn *c, uint64_t n)
{
    if (n && c->owner && c->owner->messages)
        __atomic_fetch_add(c->owner->messages, n, __ATOMIC_RELAXED);
}

/* Mark the connection for closing. The first error wins, even over a
 * clean close already under way: a graceful close whose last replies then
 * fail to go out did not end cleanly. */
static void conn_mark_close(sb_conn *c, int err, int graceful)
{
    if (c->flags & F_CLOSED)
        return;
    if (c->err == 0)
        c->err = err;
    c->flags |= graceful ? F_CLOSING : F_ABORT;
}

static int conn_stopped(const sb_conn *c)
{
    return (c->flags & (F_CLOSING | F_ABORT | F_PAUSED | F_CLOSED)) != 0;
}

/* Hand every whole message in p[0..n) to the handler. Returns the bytes
 * consumed, or a framing error. Stops early when the handler closes or
 * pauses the connection; the rest stays for later. */
static ssize_t conn_deliver(sb_conn *c, const uint8_t *p, size_t n, int eof)
{
    const sb_frame_spec *spec = &c->o->frame;
    size_t used = 0, max = conn_max_msg(c);
    uint64_t count = 0;
    ssize_t r = 0;

    while (!conn_stopped(c)) {
        sb_msg m;
        /* Nothing left to cut (a custom cutter may still want eof). */
        if (used == n && spec->kind != SB_FRAME_CUSTOM) {
            r = 0;
            break;
        }
        r = sb__frame_decode(spec, max, p + used, n - used, eof, &m, &c->fs);
        if (r <= 0)
            break;
        used += (size_t)r;
        count++;
        if (c->h->on_message(c, &m, c->h->app) < 0)
            conn_mark_close(c, 0, 1);
    }
    conn_count(c, count);
    return r < 0 ? r : (ssize_t)used;
}

/* Messages now in p[0..n) (from scratch when `in` was empty, else `in`
 * itself): deliver, then keep the unfinished tail in `in`. */
static int conn_consume(sb_conn *c, const uint8_t *p, size_t n, int from_in, int eof)
{
    ssize_t used = conn_deliver(c, p, n, eof);
    int rc = 0;

    if (used < 0)
        return (int)used;
    if (from_in) {
        sb_buf_consume(&c->in, (size_t)used);
    } else if ((size_t)used < n) {
        rc = sb_buf_append(&c->in, p + used, n - (size_t)used);
    }
    if (sb_buf_len(&c->in) == 0) {
        if (c->in.data != NULL)
            sb_buf_free(&c->in);
        return rc;
    }
    /* What stays is a new message (the old one, if any, was delivered):
     * the read timeout counts from now. */
    if (used > 0 || !from_in)
        c->msg_start = conn_now(c);
    if (conn_stopped(c) && !(c->flags & (F_CLOSING | F_ABORT)))
        c->flags |= F_DELIVER;
    return rc;
}

/* The peer shut down: whatever is left must now form whole messages (or
 * be the message, for `eof` framing). */
static void conn_on_eof(sb_conn *c)
{
    int rc;

    c->flags |= F_EOF;
    rc = conn_consume(c, sb_buf_data(&c->in), sb_buf_len(&c->in), 1, 1);
    if (rc < 0) {
        conn_mark_close(c, rc, 1);
        return;
    }
    if (sb_buf_len(&c->in) > 0 && !conn_stopped(c)) {
        conn_mark_close(c, SB_ETRUNCATED, 1);
        return;
    }
    if (c->flags & (F_CLOSING | F_ABORT))
        return;
    if (c->h->on_eof)
        c->h->on_eof(c, c->h->app);
    else
        conn_mark_close(c, 0, 1);
}

/* Where the next read goes: the scratch buffer, or the tail of `in` when
 * part of a message is already waiting there. */
static uint8_t *conn_read_target(sb_conn *c, uint8_t *scratch, size_t scratch_size, size_t *size)
{
    uint8_t *p;
    size_t want = SB_READ_MAX;

    if (sb_buf_len(&c->in) == 0) {
        *size = scratch_size;
        return scratch;
    }
    if (c->in.max && c->in.max - sb_buf_len(&c->in) < want)
        want = c->in.max - sb_buf_len(&c->in);
    if (want == 0 || sb_buf_reserve(&c->in, want, &p) < 0)
        return NULL;
    *size = want;
    return p;
}

/* One read and everything it leads to. Returns 1 if more may be readable,
 * 0 if the socket is drained (or the conn stopped reading), -EAGAIN when
 * nothing was there (blocking model: SO_RCVTIMEO expired), or -errno. */
static int conn_read(sb_conn *c, uint8_t *scratch, size_t scratch_size)
{
    size_t size;
    uint8_t *p = conn_read_target(c, scratch, scratch_size, &size);
    int from_in = p != scratch;
    ssize_t n;
    int rc;

    if (p == NULL)
        return SB_ETOOBIG;
    do
        n = c->tp->read(c->tp_state, c->fd, p, size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
    c->last_io = conn_now(c);
    if (n == 0) {
        conn_on_eof(c);
        return 0;
    }
    c->read_hint = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    if (from_in) {
        sb_buf_commit(&c->in, (size_t)n);
        rc = conn_consume(c, sb_buf_data(&c->in), sb_buf_len(&c->in), 1, 0);
    } else {
        rc = conn_consume(c, p, (size_t)n, 0, 0);
    }
    if (rc < 0)
        return rc;
    return (size_t)n == size;
}

/* ------------------------------------------------------------------ */
/* 3. The event driver                                                 */

static void conn_free(sb_conn *c)
{
    if (c->tp->free)
        c->tp->free(c->tp_state);
    queue_clear(c);
    sb_buf_free(&c->in);
    sb_frame_state_free(&c->fs);
    if (c->lock) {
        pthread_mutex_destroy(c->lock);
        sb__free(c->lock);
    }
    sb__free(c->peer);
    sb__free(c);
}

static void conn_set_linger0(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Close the fd, tell the handler, tell the owner, free. Event model: only
 * from the top of the stack (no callback of any connection running). */
static void conn_finish(sb_conn *c)
{
    c->flags |= F_CLOSED;
    if (c->loop) {
        if (c->mask)
            sb_loop_watch(c->loop, c->fd, 0, NULL, NULL);
        sb_timer_stop(c->loop, &c->timer);
        sb_defer_cancel(c->loop, &c->defer);
    }
    if (c->flags & F_ABORT)
        conn_set_linger0(c->fd);
    sb__sys.close(c->fd);
    c->fd = -1;
    queue_clear(c);
    if (c->h->on_close)
        c->h->on_close(c, c->err, c->h->app);
    if (c->owner && c->owner->gone)
        c->owner->gone(c->owner, c);
    conn_free(c);
}

/* Lingering close. Closing a TCP socket that still holds unread bytes
 * makes the kernel send a reset, and a reset can destroy the replies we
 * just sent (a 400 answer to a pipelining client, say) before the peer
 * reads them. So when bytes are waiting, send our FIN first and read and
 * drop the peer's bytes until its FIN, for at most SB_LINGER_MS. Returns 1
 * if lingering started. */
static int conn_start_linger(sb_conn *c)
{
    int pending = 0;

    if ((c->flags & F_EOF) || ioctl(c->fd, FIONREAD, &pending) < 0 || pending <= 0)
        return 0;
    if (c->tp->shutdown(c->tp_state, c->fd) < 0)
        return 0;
    c->flags |= F_LINGER | F_SHUT_DONE;
    return 1;
}

/* Drain during lingering: 1 when done (EOF or error), 0 when nothing more
 * is there now, 2 when bytes keep coming (read again next turn; the timer
 * bounds the wait). */
static int conn_linger_read(sb_conn *c, uint8_t *buf, size_t size)
{
    for (int i = 0; i < 16; i++) {
        ssize_t n = c->tp->read(c->tp_state, c->fd, buf, size, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return 1;
    }
    return 2;
}

static int ev_want_read(const sb_conn *c)
{
    if (c->flags & F_LINGER)
        return 1;
    return !(c->flags & (F_EOF | F_CLOSING | F_ABORT | F_PAUSED | F_BACKPRESS | F_CLOSED));
}

static void ev_update(sb_conn *c)
{
    int mask = 0;

    if (c->flags & F_CLOSED)
        return;
    if (ev_want_read(c))
        mask |= SB_READABLE;
    if (c->queued > 0)
        mask |= SB_WRITABLE;
    /* Edge-triggered where the loop can be: reads go until a short one
     * (the kernel empties a stream socket's queue before it returns short)
     * and ask for another turn when they stop early. An edge missed while
     * not reading is not lost: re-adding SB_READABLE is an epoll_ctl that
     * reports the fd at once if bytes wait. */
    if (mask)
        mask |= SB_EDGE;
    if (mask != c->mask) {
        /* A failure here (out of memory growing the backend's table) leaves
         * the old mask; the timers still bound the connection's life. */
        if (sb_loop_watch(c->loop, c->fd, mask, ev_io, c) == 0)
            c->mask = mask;
    }
}

/* Flush, then apply backpressure and the output cap. */
static void ev_flush(sb_conn *c)
{
    if (c->flags & F_ABORT)
        return;
    if (c->out_head != NULL) {
        int rc = queue_flush(c, SB_WRITE_BUDGET, 0);
        if (rc < 0) {
            conn_mark_close(c, rc, 0);
            return;
        }
        if (rc > 0) /* budget spent, the socket not full: no edge will come */
            sb_loop_again(c->loop, c->fd, SB_WRITABLE);
    }
    if (c->queued == 0) {
        c->flags &= ~F_BACKPRESS;
        if ((c->flags & (F_SHUT_WANT | F_SHUT_DONE)) == F_SHUT_WANT) {
            c->tp->shutdown(c->tp_state, c->fd);
            c->flags |= F_SHUT_DONE;
        }
    } else if (c->queued > conn_out_high(c)) {
        c->flags |= F_BACKPRESS;
    } else if (c->queued <= conn_out_low(c)) {
        c->flags &= ~F_BACKPRESS;
    }
}

/* Decide what happens next after any event: finish a close, deliver held
 * messages, update the watch mask. Only at depth 0. */
static void ev_progress(sb_conn *c)
{
    if (c->depth > 0 || (c->flags & F_CLOSED))
        return;
    if ((c->flags & F_DELIVER) && !conn_stopped(c)) {
        int rc;
        c->flags &= ~F_DELIVER;
        c->depth++;
        rc = conn_consume(c, sb_buf_data(&c->in), sb_buf_len(&c->in), 1, (c->flags & F_EOF) != 0);
        if (rc < 0)
            conn_mark_close(c, rc, 1);
        ev_flush(c);
        c->depth--;
    }
    if ((c->flags & F_ABORT) || ((c->flags & F_CLOSING) && c->queued == 0)) {
        if (!(c->flags & F_ABORT) && (c->flags & F_LINGER)) {
            ev_update(c);
            return;
        }
        /* The timer is the only bound on lingering: without one (out of
         * memory for the timer heap), close at once. */
        if (!(c->flags & F_ABORT) && conn_start_linger(c) &&
            sb_timer_start(c->loop, &c->timer, SB_LINGER_MS) == 0) {
            ev_update(c);
            return;
        }
        conn_finish(c);
        return;
    }
    ev_update(c);
}

static void ev_io(sb_loop *l, int fd, int events, void *ud)
{
    sb_conn *c = ud;

    if (c->flags & F_LINGER) {
        int rc = conn_linger_read(c, sb__loop_hot(l)->scratch, SB_SCRATCH_SIZE);
        if (rc == 1)
            conn_finish(c);
        else if (rc == 2)
            sb_loop_again(l, fd, SB_READABLE);
        return;
    }
    c->depth++;
    if (events & SB_HUP)
        c->flags |= F_HUP;
    if ((events & SB_WRITABLE) && c->queued > 0)
        ev_flush(c);
    if ((events & (SB_READABLE | SB_ERROR)) && ev_want_read(c)) {
        int rc = conn_read(c, sb__loop_hot(l)->scratch, SB_SCRATCH_SIZE);
        /* A full buffer, or a short read with the end still to come: more
         * waits, and no edge will say so. */
        if (rc == 1 || (rc == 0 && (c->flags & (F_HUP | F_EOF)) == F_HUP))
            sb_loop_again(l, fd, SB_READABLE);
        else if (rc < 0 && rc != -EAGAIN)
            conn_mark_close(c, rc, rc != -ECONNRESET && rc != -EPIPE);
        ev_flush(c);
    }
    c->depth--;
    ev_progress(c);
}

static void ev_deferred(sb_loop *l, sb_defer *d)
{
    sb_conn *c = d->data;
    ev_flush(c);
    ev_progress(c);
}

/* Schedule ev_progress outside of whatever callback is running now. */
static void ev_kick(sb_conn *c)
{
    if (c->loop && !(c->flags & F_CLOSED))
        sb_defer_queue(c->loop, &c->defer);
}

static int64_t conn_deadline(const sb_conn *c)
{
    const sb_conn_opts *o = c->o;
    int64_t d = INT64_MAX;

    if (o->idle_timeout_ms > 0)
        d = c->last_io + o->idle_timeout_ms;
    if (o->read_timeout_ms > 0 && sb_buf_len(&c->in) > 0 && c->msg_start + o->read_timeout_ms < d)
        d = c->msg_start + o->read_timeout_ms;
    if (o->write_timeout_ms > 0 && c->queued > 0 && c->write_since + o->write_timeout_ms < d)
        d = c->write_since + o->write_timeout_ms;
    return d;
}

static int conn_min_timeout(const sb_conn_opts *o)
{
    int m = 0;
    int t[3] = {o->idle_timeout_ms, o->read_timeout_ms, o->write_timeout_ms};

    for (int i = 0; i < 3; i++)
        if (t[i] > 0 && (m == 0 || t[i] < m))
            m = t[i];
    return m;
}

/* The timer is re-armed lazily: traffic only moves timestamps, and the
 * timer, when it fires, works out whether a deadline really passed. */
static void ev_timer(sb_loop *l, sb_timer *t)
{
    sb_conn *c = t->data;
    int64_t now = sb__loop_now(l);
    int64_t d = conn_deadline(c);
    int64_t next = conn_min_timeout(c->o);

    if (c->flags & F_LINGER) {
        conn_finish(c);
        return;
    }
    if (d <= now) {
        conn_mark_close(c, -ETIMEDOUT, c->queued == 0); /* output stuck: abort */
        ev_progress(c);
        return;
    }
    if (d - now < next)
        next = d - now;
    sb_timer_start(l, t, next);
}

static sb_conn *conn_alloc(int fd, const sb_conn_opts *o, const sb_handler *h, sb__conn_owner *ow)
{
    sb_conn *c = sb__calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->o = o;
    c->h = h;
    c->tp = &sb__transport_plain;
    c->owner = ow;
    sb_buf_init(&c->in, conn_max_msg(c) + SB_FRAME_HDR_MAX + SB_DELIM_MAX);
    if (sb_frame_state_init(&c->fs, &o->frame) < 0) {
        sb__free(c);
        return NULL;
    }
    return c;
}

int sb__conn_open(sb_loop *l, int fd, const sb_conn_opts *o, const sb_handler *h,
                  sb__conn_owner *ow, sb_conn **out)
{
    sb_conn *c;
    int rc, tmo;

    sb_set_nonblock(fd, 1);
    c = conn_alloc(fd, o, h, ow);
    if (c == NULL) {
        sb__sys.close(fd);
        return -ENOMEM;
    }
    c->loop = l;
    c->last_io = c->write_since = sb__loop_now(l);
    sb_timer_init(&c->timer, ev_timer, c);
    sb_defer_init(&c->defer, ev_deferred, c);
    rc = sb_loop_watch(l, fd, SB_READABLE | SB_EDGE, ev_io, c);
    if (rc < 0) {
        sb__sys.close(fd);
        conn_free(c);
        return rc;
    }
    c->mask = SB_READABLE | SB_EDGE;
    tmo = conn_min_timeout(o);
    if (tmo > 0)
        sb_timer_start(l, &c->timer, tmo);
    if (out)
        *out = c;
    if (h->on_open) {
        c->depth++;
        rc = h->on_open(c, h->app);
        c->depth--;
        if (rc < 0) {
            sb_loop_watch(l, fd, 0, NULL, NULL);
            sb_timer_stop(l, &c->timer);
            sb_defer_cancel(l, &c->defer);
            sb__sys.close(fd);
            conn_free(c);
            if (out)
                *out = NULL;
            return rc;
        }
    }
    if (c->queued > 0 || (c->flags & (F_CLOSING | F_ABORT)))
        ev_kick(c);
    return 0;
}

int sb_conn_open(sb_loop *l, int fd, const sb_conn_opts *o, const sb_handler *h, sb_conn **out)
{
    return sb__conn_open(l, fd, o, h, NULL, out);
}

/* ------------------------------------------------------------------ */
/* 4. The blocking driver                                              */

static void set_timeo(int fd, int opt, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

static void blk_flush(sb_conn *c)
{
    int rc;

    pthread_mutex_lock(c->lock);
    rc = queue_flush(c, SIZE_MAX, 0);
    if (rc == 0 && c->queued == 0 && (c->flags & F_SHUT_WANT) && !(c->flags & F_SHUT_DONE)) {
        c->tp->shutdown(c->tp_state, c->fd);
        c->flags |= F_SHUT_DONE;
    }
    pthread_mutex_unlock(c->lock);
    if (rc < 0)
        conn_mark_close(c, rc, 0);
}

/* recv timed out (SO_RCVTIMEO): did one of our deadlines really pass? */
static int blk_timed_out(sb_conn *c)
{
    int64_t d;

    pthread_mutex_lock(c->lock);
    d = conn_deadline(c);
    pthread_mutex_unlock(c->lock);
    return d <= sb_now_ms();
}

/* A close asked for by another thread (see conn_request_close). */
static void blk_take_request(sb_conn *c)
{
    int kind = __atomic_load_n(&c->xreq, __ATOMIC_ACQUIRE);
    if (kind)
        conn_mark_close(c, c->xerr, kind == 1);
}

static void blk_loop(sb_conn *c, uint8_t *scratch, size_t size)
{
    while (!(c->flags & (F_CLOSING | F_ABORT | F_EOF))) {
        int rc = conn_read(c, scratch, size);
        blk_take_request(c);
        if (rc == -EAGAIN && blk_timed_out(c))
            conn_mark_close(c, -ETIMEDOUT, 1);
        else if (rc < 0 && rc != -EAGAIN)
            conn_mark_close(c, rc, rc != -ECONNRESET);
        blk_flush(c);
        if ((c->flags & F_PAUSED) && !(c->flags & (F_CLOSING | F_ABORT)))
            conn_mark_close(c, 0, 1); /* no one can resume a blocked thread's peer */
    }
}

/* Lingering close on a blocking socket: drain until the peer's FIN, an
 * error, or SB_LINGER_MS. */
static void blk_linger(sb_conn *c, uint8_t *buf, size_t size)
{
    int64_t end = sb_now_ms() + SB_LINGER_MS;

    set_timeo(c->fd, SO_RCVTIMEO, SB_LINGER_MS);
    while (sb_now_ms() < end) {
        ssize_t n = c->tp->read(c->tp_state, c->fd, buf, size, 0);
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

int sb__conn_run_blocking(int fd, const sb_conn_opts *o, const sb_handler *h, sb__conn_owner *ow)
{
    size_t size = 64 * 1024;
    uint8_t *scratch = sb__malloc(size);
    sb_conn *c = conn_alloc(fd, o, h, ow);
    int tmo = conn_min_timeout(o);
    int err;

    if (c && (c->lock = sb__malloc(sizeof(*c->lock))) != NULL)
        pthread_mutex_init(c->lock, NULL); /* conn_free destroys it */
    if (scratch == NULL || c == NULL || c->lock == NULL) {
        sb__free(scratch);
        if (c)
            conn_free(c);
        sb__sys.close(fd);
        return -ENOMEM;
    }
    c->flags |= F_BLOCKING;
    c->thread = pthread_self();
    c->last_io = c->write_since = sb_now_ms();
    if (tmo > 0)
        set_timeo(fd, SO_RCVTIMEO, tmo);
    tmo = o->write_timeout_ms > 0 ? o->write_timeout_ms : o->idle_timeout_ms;
    if (tmo > 0)
        set_timeo(fd, SO_SNDTIMEO, tmo);
    if (h->on_open && (err = h->on_open(c, h->app)) < 0) {
        sb__sys.close(fd);
        conn_free(c);
        sb__free(scratch);
        return err;
    }
    blk_flush(c);
    blk_loop(c, scratch, size);
    if (!(c->flags & F_ABORT))
        blk_flush(c);
    if (!(c->flags & F_ABORT) && conn_start_linger(c))
        blk_linger(c, scratch, size);
    sb__free(scratch);
    pthread_mutex_lock(c->lock);
    c->xclosed = 1;
    pthread_mutex_unlock(c->lock);
    c->flags |= F_CLOSED;
    err = c->err;
    if (c->flags & F_ABORT)
        conn_set_linger0(c->fd);
    sb__sys.close(c->fd);
    if (h->on_close)
        h->on_close(c, c->err, h->app);
    if (ow && ow->gone)
        ow->gone(ow, c);
    conn_free(c);
    return err;
}

int sb_conn_run_blocking(int fd, const sb_conn_opts *o, const sb_handler *h)
{
    return sb__conn_run_blocking(fd, o, h, NULL);
}

/* ------------------------------------------------------------------ */
/* 5. Public calls                                                     */

void sb_conn_opts_default(sb_conn_opts *o)
{
    memset(o, 0, sizeof(*o));
    sb_frame_parse("line", &o->frame);
    o->max_msg = 1u << 20;
}

/* Another thread is sending on a blocking-model connection. */
static int blk_foreign(const sb_conn *c)
{
    /* c->lock is set before the connection is visible to other threads
     * and never changes: reading it is not a race, unlike c->flags. */
    return c->lock != NULL && !pthread_equal(c->thread, pthread_self());
}

/* Another thread wants this blocking-model connection closed. Only the
 * owning thread touches c->flags, so the request goes through xreq, and a
 * shutdown wakes the owner from its recv. */
static void conn_request_close(sb_conn *c, int err, int graceful)
{
    int none = 0;

    c->xerr = err;
    if (__atomic_compare_exchange_n(&c->xreq, &none, graceful ? 1 : 2, 0, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED))
        shutdown(c->fd, graceful ? SHUT_RD : SHUT_RDWR);
}

/* After bytes were queued: enforce the cap, and make sure they will go. */
SB_PER_SEND int conn_queued_more(sb_conn *c)
{
    if (c->queued > conn_out_cap(c)) {
        if (blk_foreign(c))
            conn_request_close(c, SB_EOUTPUT, 0);
        else
            conn_mark_close(c, SB_EOUTPUT, 0);
        queue_clear(c);
        ev_kick(c);
        return SB_EOUTPUT;
    }
    if (blk_foreign(c))
        queue_flush(c, SIZE_MAX, 1);
    else if (c->loop && c->depth == 0)
        ev_kick(c);
    return 0;
}

SB_PER_SEND int conn_lock(sb_conn *c)
{
    int closed;

    if (c->lock)
        pthread_mutex_lock(c->lock);
    if (blk_foreign(c))
        closed = c->xclosed || __atomic_load_n(&c->xreq, __ATOMIC_RELAXED) == 2;
    else
        closed = (c->flags & (F_CLOSED | F_ABORT | F_SHUT_DONE | F_SHUT_WANT)) != 0;
    if (closed) {
        if (c->lock)
            pthread_mutex_unlock(c->lock);
        return SB_ECLOSED;
    }
    return 0;
}

static void conn_unlock(sb_conn *c)
{
    if (c->lock)
        pthread_mutex_unlock(c->lock);
}

int sb_conn_send(sb_conn *c, int type, const void *p, size_t n)
{
    const sb_frame_spec *s = &c->o->frame;
    uint8_t *dst;
    int hl, tl, rc;

    if (s->kind == SB_FRAME_LINE || s->kind == SB_FRAME_DELIM) {
        rc = sb_frame_check_payload(s, p, n);
        if (rc < 0)
            return rc;
    }
    if ((rc = conn_lock(c)) < 0)
        return rc;
    dst = queue_reserve(c, n + 2 * SB_FRAME_HDR_MAX);
    if (dst == NULL) {
        conn_unlock(c);
        return -ENOMEM;
    }
    hl = sb__frame_header(s, type, n, dst);
    if (hl < 0) {
        conn_unlock(c);
        return hl;
    }
    if (n)
        memcpy(dst + hl, p, n);
    tl = sb__frame_trailer(s, dst + hl + n);
    queue_commit(c, (size_t)hl + n + (size_t)tl);
    rc = conn_queued_more(c);
    conn_unlock(c);
    return rc;
}

int sb_conn_write(sb_conn *c, const void *p, size_t n)
{
    uint8_t *dst;
    int rc;

    if ((rc = conn_lock(c)) < 0)
        return rc;
    if (n > 0) {
        dst = queue_reserve(c, n);
        if (dst == NULL) {
            conn_unlock(c);
            return -ENOMEM;
        }
        memcpy(dst, p, n);
        queue_commit(c, n);
    }
    rc = conn_queued_more(c);
    conn_unlock(c);
    return rc;
}

int sb_conn_sendfile(sb_conn *c, int fd, off_t off, size_t n)
{
    sb__chunk *k;
    int rc;

    if ((rc = conn_lock(c)) < 0) {
        sb__sys.close(fd);
        return rc;
    }
    k = sb__malloc(sizeof(*k));
    if (k == NULL) {
        conn_unlock(c);
        sb__sys.close(fd);
        return -ENOMEM;
    }
    k->start = (size_t)off;
    k->end = (size_t)off + n;
    k->cap = 0;
    k->fd = fd;
    queue_push(c, k);
    c->queued += n;
    rc = conn_queued_more(c);
    conn_unlock(c);
    return rc;
}

int sb_conn_flush(sb_conn *c)
{
    int rc;

    if (blk_foreign(c))
        return 0; /* sends from other threads flush as they queue */
    if (c->flags & F_CLOSED)
        return SB_ECLOSED;
    if (c->flags & F_BLOCKING) {
        blk_flush(c);
        return c->flags & F_ABORT ? c->err : 0;
    }
    rc = queue_flush(c, SB_WRITE_BUDGET, 0);
    if (rc < 0)
        conn_mark_close(c, rc, 0);
    ev_kick(c); /* the rest, if the budget ran out, goes from there */
    return rc < 0 ? rc : 0;
}

void sb__conn_close_err(sb_conn *c, int err, int graceful)
{
    if (blk_foreign(c)) {
        conn_request_close(c, err, graceful);
        return;
    }
    conn_mark_close(c, err, graceful);
    ev_kick(c);
}

void sb_conn_close(sb_conn *c)
{
    sb__conn_close_err(c, 0, 1);
}

void sb_conn_abort(sb_conn *c)
{
    sb__conn_close_err(c, 0, 0);
}

void sb_conn_shutdown(sb_conn *c)
{
    c->flags |= F_SHUT_WANT;
    ev_kick(c);
}

void sb_conn_pause(sb_conn *c)
{
    c->flags |= F_PAUSED;
    ev_kick(c);
}

void sb_conn_resume(sb_conn *c)
{
    if (!(c->flags & F_PAUSED))
        return;
    c->flags &= ~F_PAUSED;
    if (sb_buf_len(&c->in) > 0)
        c->flags |= F_DELIVER;
    ev_kick(c);
}

void *sb_conn_data(const sb_conn *c) { return c->data; }
void sb_conn_set_data(sb_conn *c, void *data) { c->data = data; }
int sb_conn_fd(const sb_conn *c) { return c->fd; }
sb_loop *sb_conn_loop(const sb_conn *c) { return c->loop; }
const sb_conn_opts *sb_conn_options(const sb_conn *c) { return c->o; }
size_t sb_conn_queued(const sb_conn *c) { return c->queued; }
void sb__conn_set_transport(sb_conn *c, const sb__transport *tp, void *state)
{
    if (c->tp->free)
        c->tp->free(c->tp_state);
    c->tp = tp;
    c->tp_state = state;
}

sb_conn **sb__conn_link_next(sb_conn *c) { return &c->next; }
sb_conn **sb__conn_link_prev(sb_conn *c) { return &c->prev; }

const char *sb_conn_peer(sb_conn *c)
{
    sb_addr a;

    if (c->peer)
        return c->peer;
    a.len = sizeof(a.ss);
    if (getpeername(c->fd, (struct sockaddr *)&a.ss, &a.len) < 0)
        return "?";
    c->peer = sb__malloc(128);
    if (c->peer == NULL)
        return "?";
    if (sb_addr_format((struct sockaddr *)&a.ss, a.len, c->peer, 128) < 0)
        strcpy(c->peer, "?");
    return c->peer;
}
