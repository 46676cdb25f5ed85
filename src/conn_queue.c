/* conn_queue: a connection's write queue - chunks of memory or file ranges,
 * flushed by one gathered write or one sendfile at a time - and the public
 * calls that fill it (sb_conn_send, _write, _sendfile, _flush).
 *
 * Threads (see conn_int.h): in the event model only the loop's thread is
 * here. In the blocking models any thread may queue: the queue (out_head,
 * out_tail, queued, write_since) is touched only under blk->lock, and every
 * write made under the lock is non-blocking, so no thread ever waits on a
 * socket while holding it. A foreign thread queues, tries one non-blocking
 * write, and wakes the owner when bytes are left for it to send; over the
 * output cap it asks the owner to drop the connection instead.
 *
 * This is the hot path of every reply: the per-send steps are inlined
 * (SB_PER_SEND) and the usual case - one chunk holding a read's replies,
 * sent whole - takes no loop over the queue.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include "switchboard/error.h"
#include "conn_int.h"
#include "frame_int.h"
#include "sys.h"
#include "transport.h"

#define SB_IOV_MAX 64
#define RING_MSG_SIZE (sizeof(struct msghdr) + SB_IOV_MAX * sizeof(struct iovec))

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
        __atomic_sub_fetch(&c->queued_files, 1, __ATOMIC_RELAXED);
    } else if (c->loop) {
        sb__loop_spare_give(c->loop, k, sizeof(*k) + k->cap);
    } else {
        sb__free(k);
    }
}

static void chunks_free(sb_conn *c, sb__chunk *k)
{
    while (k) {
        sb__chunk *next = k->next;
        chunk_free(c, k);
        k = next;
    }
}

/* Event model on a completion ring: while a send is in flight the kernel
 * may still read the queue's head, so a cleared queue's chunks wait in
 * out_dead for that send's completion. */
void sb__queue_clear(sb_conn *c)
{
    if (c->op.busy & (1u << SB__OP_SEND)) {
        if (c->out_tail) {
            c->out_tail->next = c->out_dead;
            c->out_dead = c->out_head;
        }
    } else {
        chunks_free(c, c->out_dead);
        c->out_dead = NULL;
        chunks_free(c, c->out_head);
    }
    c->out_head = NULL;
    c->out_tail = NULL;
    c->queued = c->queued_mem = 0;
    __atomic_store_n(&c->queued_files, 0, __ATOMIC_RELAXED);
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
        c->write_since = sb__conn_now(c);
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
    c->queued_mem += n;
}

/* Drop n sent bytes from the front of the queue. */
static void queue_advance(sb_conn *c, size_t n)
{
    /* The usual case: the one chunk of a read's replies, sent whole. */
    if (n == c->queued && c->out_head == c->out_tail) {
        chunk_free(c, c->out_head);
        c->out_head = c->out_tail = NULL;
        c->queued = c->queued_mem = 0;
        return;
    }
    /* One write comes from one file range or from memory chunks only. */
    if (c->out_head->fd < 0)
        c->queued_mem -= n;
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

/* n bytes went out: the clocks and the counter. dontwait (a foreign
 * thread) leaves last_io, the owner's, alone and marks out_io instead. */
static void queue_sent(sb_conn *c, size_t n, int dontwait)
{
    c->write_since = sb__conn_now(c);
    if (dontwait)
        c->out_io = c->write_since;
    else
        c->last_io = c->write_since;
    if (c->owner && c->owner->stats)
        sb__stat_add(&c->owner->stats->bytes_out, (uint64_t)n);
}

/* The next piece of file range k, at most cap bytes, into buf. Returns the
 * bytes read or -errno; -EIO for none (the file shrank under us). */
static ssize_t chunk_pread(const sb__chunk *k, void *buf, size_t cap)
{
    size_t want = k->end - k->start < cap ? k->end - k->start : cap;
    ssize_t n = pread(k->fd, buf, want, (off_t)k->start);

    return n > 0 ? n : n == 0 ? -EIO : -errno;
}

/* A file range through a transport without sendfile: read a piece of the
 * file and write it like memory. */
static ssize_t queue_copy_file(sb_conn *c, sb__chunk *k, int dontwait)
{
    uint8_t buf[16 * 1024];
    ssize_t n = chunk_pread(k, buf, sizeof(buf));
    struct iovec iov;

    if (n < 0)
        return n;
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
 * take more). Returns 0, 1 or -errno. Every socket a connection drives is
 * non-blocking, so this never waits; dontwait is for foreign threads,
 * which skip file ranges (a sendfile is the owner's to make) and leave
 * last_io (the owner's, unlocked) alone: their progress goes to out_io,
 * which the idle deadline counts too, so a member that only receives
 * (a chat's listener, fed by other threads) is not idle. Blocking models:
 * call with blk->lock held. */
int sb__queue_flush(sb_conn *c, size_t budget, int dontwait)
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
            if (n != -EAGAIN && n != -EWOULDBLOCK)
                rc = (int)n;
            break;
        }
        queue_advance(c, (size_t)n);
        sent += (size_t)n;
    }
    if (sent > 0)
        queue_sent(c, sent, dontwait);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Sending through a completion ring (event model, F_RING)             */

/* The head is a file range: its next piece read into a memory chunk put
 * before it, so that the ring sends memory only (a splice would need a
 * pipe per connection). The range's bytes were counted in queued already;
 * now they are in memory too. */
static int queue_file_to_mem(sb_conn *c)
{
    sb__chunk *k = c->out_head, *m;
    size_t want = k->end - k->start < SB_READ_MAX ? k->end - k->start : SB_READ_MAX;
    ssize_t n;

    if ((m = chunk_new(c, want)) == NULL)
        return -ENOMEM;
    if ((n = chunk_pread(k, m->data, want)) < 0) {
        chunk_free(c, m);
        return (int)n;
    }
    m->end = (size_t)n;
    k->start += (size_t)n;
    m->next = k;
    c->out_head = m;
    c->queued_mem += (size_t)n;
    return 0;
}

/* Start sending the head of the queue, unless a send is in flight (one at
 * a time keeps the bytes in order whatever a short send leaves): one
 * chunk by send, or up to SB_IOV_MAX memory chunks by sendmsg, at most
 * SB_WRITE_BUDGET bytes - the budget of a turn, since the next send
 * starts from this one's completion. Returns 0 or -errno. */
int sb__queue_ring_send(sb_conn *c)
{
    sb__chunk *k;
    struct iovec *iov;
    size_t total = 0, spare;
    int cnt = 0, rc;

    if (c->out_head == NULL || (c->op.busy & (1u << SB__OP_SEND)))
        return 0;
    if (c->out_head->start == c->out_head->end) {
        queue_advance(c, 0); /* an empty reply or file: nothing to send */
        if (c->out_head == NULL)
            return 0;
    }
    if (c->out_head->fd >= 0 && (rc = queue_file_to_mem(c)) < 0)
        return rc;
    k = c->out_head;
    if (k->next == NULL || k->next->fd >= 0) {
        size_t n = k->end - k->start < SB_WRITE_BUDGET ? k->end - k->start : SB_WRITE_BUDGET;
        return sb__loop_send(c->loop, c->fd, k->data + k->start, n, &c->op);
    }
    /* The loop's spare slot: a gathered send per turn costs no allocator call. */
    c->ring_msg = sb__loop_spare_take(c->loop, RING_MSG_SIZE, &spare);
    if (c->ring_msg == NULL && (c->ring_msg = sb__malloc(RING_MSG_SIZE)) == NULL)
        return -ENOMEM;
    iov = (struct iovec *)(c->ring_msg + 1);
    for (; k && k->fd < 0 && cnt < SB_IOV_MAX && total < SB_WRITE_BUDGET; k = k->next) {
        iov[cnt].iov_base = k->data + k->start;
        iov[cnt].iov_len = k->end - k->start;
        total += iov[cnt++].iov_len;
    }
    memset(c->ring_msg, 0, sizeof(*c->ring_msg));
    c->ring_msg->msg_iov = iov;
    c->ring_msg->msg_iovlen = (size_t)cnt;
    rc = sb__loop_sendmsg(c->loop, c->fd, c->ring_msg, &c->op);
    if (rc < 0) {
        sb__loop_spare_give(c->loop, c->ring_msg, RING_MSG_SIZE);
        c->ring_msg = NULL;
    }
    return rc;
}

/* The send in flight completed: res bytes went out, or -errno. A queue
 * cleared meanwhile is freed now, and the result means nothing more. */
int sb__queue_ring_sent(sb_conn *c, int res)
{
    if (c->ring_msg) {
        sb__loop_spare_give(c->loop, c->ring_msg, RING_MSG_SIZE);
        c->ring_msg = NULL;
    }
    if (c->out_dead) {
        chunks_free(c, c->out_dead);
        c->out_dead = NULL;
        return 0;
    }
    if (res == -EAGAIN || res == -EINTR)
        return 0; /* nothing went: the next send tries again */
    if (res <= 0)
        return res < 0 ? res : -EIO;
    queue_advance(c, (size_t)res);
    queue_sent(c, (size_t)res, 0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The calls that fill the queue                                       */

/* After bytes were queued: enforce the cap, and make sure they will go.
 * The cap bounds memory: a file range costs an fd and a chunk header, not
 * its length, so a large file is never refused for its size. */
SB_PER_SEND int conn_queued_more(sb_conn *c)
{
    if (c->queued_mem > sb__conn_out_cap(c)) {
        if (sb__conn_foreign(c))
            sb__blk_request_close(c, SB_EOUTPUT, 0);
        else
            sb__conn_mark_close(c, SB_EOUTPUT, 0);
        sb__queue_clear(c);
        sb__conn_kick(c);
        return SB_EOUTPUT;
    }
    if (sb__conn_foreign(c)) {
        /* One non-blocking try; what is left is the owner's to send, and
         * it must know (its poll may not be waiting for POLLOUT). */
        sb__queue_flush(c, 1, 1);
        if (c->queued > 0 && !c->blk->pollout) {
            c->blk->pollout = 1;
            sb__blk_wake(c);
        }
    } else if (c->loop && c->depth == 0) {
        sb__conn_kick(c);
    }
    return 0;
}

SB_PER_SEND int conn_lock(sb_conn *c)
{
    int closed;

    if (c->blk)
        pthread_mutex_lock(&c->blk->lock);
    /* A foreign thread cannot see the owner's flags: xshut says the owner
     * shut its sending side (or is closing), as F_SHUT_* say to itself. */
    if (sb__conn_foreign(c))
        closed = c->blk->xclosed || c->blk->xshut ||
                 __atomic_load_n(&c->blk->xreq, __ATOMIC_RELAXED) == 2;
    else
        closed = (c->flags & (F_CLOSED | F_ABORT | F_SHUT_DONE | F_SHUT_WANT)) != 0;
    if (closed) {
        if (c->blk)
            pthread_mutex_unlock(&c->blk->lock);
        return SB_ECLOSED;
    }
    return 0;
}

static void conn_unlock(sb_conn *c)
{
    if (c->blk)
        pthread_mutex_unlock(&c->blk->lock);
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
    tl = sb__frame_trailer(s, dst + hl, n, dst + hl + n);
    queue_commit(c, (size_t)hl + n + (size_t)tl);
    rc = conn_queued_more(c);
    if (rc == 0 && c->owner && c->owner->stats)
        sb__stat_add(&c->owner->stats->msgs_out, 1);
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
    __atomic_add_fetch(&c->queued_files, 1, __ATOMIC_RELAXED);
    rc = conn_queued_more(c);
    conn_unlock(c);
    return rc;
}

int sb_conn_flush(sb_conn *c)
{
    int rc;

    if (sb__conn_foreign(c))
        return 0; /* sends from other threads flush as they queue */
    if (c->flags & F_CLOSED)
        return SB_ECLOSED;
    if (c->blk)
        return sb__blk_flush_now(c);
    if (c->flags & F_RING) {
        sb__conn_kick(c); /* the driver's send goes with this turn's wait */
        return 0;
    }
    rc = sb__queue_flush(c, SB_WRITE_BUDGET, 0);
    if (rc < 0)
        sb__conn_mark_close(c, rc, 0);
    sb__conn_kick(c); /* the rest, if the budget ran out, goes from there */
    return rc < 0 ? rc : 0;
}
