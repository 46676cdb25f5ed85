/* conn_blocking: the blocking driver - one thread (threads model) or one
 * process (fork model) runs a connection from open to close
 * (sb_conn_run_blocking).
 *
 * The rule it keeps: no thread waits on a socket while holding a lock that
 * another connection's thread can need. Any thread may queue output on a
 * threads-model connection (a chat server sends to every member from the
 * sender's thread, holding the app's member lock), so the queue has a lock;
 * if the owner slept in send() holding it because its peer stopped reading,
 * every sender - and every lock those senders hold - would wait behind that
 * one peer. So:
 *   - the socket is non-blocking, and every write, by any thread, is made
 *     under blk->lock and returns EAGAIN rather than waiting;
 *   - the owner waits only in poll(), holding nothing, on the socket
 *     (POLLIN while it reads, POLLOUT while output is queued) and on a
 *     per-connection eventfd (blk->wake_fd);
 *   - a foreign thread queues, tries one non-blocking write, and when bytes
 *     are left adds 1 to the eventfd so the owner starts waiting for
 *     POLLOUT; past the output cap it asks the owner to drop the connection;
 *   - a close asked by a foreign thread (sb__conn_close_err, a server
 *     stopping) is two atomics and the same wake: no foreign thread ever
 *     makes a system call on the socket, so none can name it after the
 *     owner closed it and the number was reused;
 *   - the idle, read and write timeouts are deadlines that bound the poll,
 *     and a lingering close is one more deadline.
 * The price is one eventfd per connection and a poll() before each read.
 *
 * Threads: the owner runs everything here except sb__blk_request_close and
 * sb__blk_wake, which any thread may call while the connection is alive
 * (field rules at the top of conn_int.h).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "switchboard.h"
#include "conn_int.h"
#include "sys.h"
#include "transport.h"

#define SB_BLK_READS 16 /* reads per wakeup before the output gets a turn */

/* Any thread: make the owner's poll return. Straight to libc, like the
 * loop's wakeup: a fault injected here would lose a wakeup, not test one. */
void sb__blk_wake(sb_conn *c)
{
    uint64_t one = 1;
    (void)!write(c->blk->wake_fd, &one, sizeof(one));
}

/* Ask the owner to close (graceful 1, abort 2; an abort overrides a
 * graceful request, never the reverse). Once the request is visible the
 * owner may act on it, close and free c, so the caller must keep c alive
 * until the wake below is done: it holds blk->lock (blk_finish takes it
 * before freeing anything), or it runs on the owner's own thread (the fork
 * model's SIGTERM handler, where a lock could deadlock). */
void sb__blk_request_close(sb_conn *c, int err, int graceful)
{
    int kind = graceful ? 1 : 2, cur = __atomic_load_n(&c->blk->xreq, __ATOMIC_RELAXED);
    int none = 0;

    __atomic_compare_exchange_n(&c->blk->xerr, &none, err, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    while (cur < kind)
        if (__atomic_compare_exchange_n(&c->blk->xreq, &cur, kind, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED)) {
            sb__blk_wake(c);
            return;
        }
}

static void blk_take_request(sb_conn *c)
{
    int kind = __atomic_load_n(&c->blk->xreq, __ATOMIC_ACQUIRE);
    if (kind)
        sb__conn_mark_close(c, __atomic_load_n(&c->blk->xerr, __ATOMIC_RELAXED), kind == 1);
}

/* Owner: send what the socket takes now, then the half-close if asked.
 * Sets *queued and *deadline from the same locked view. */
static void blk_flush(sb_conn *c, size_t *queued, int64_t *deadline)
{
    int rc = 0;

    pthread_mutex_lock(&c->blk->lock);
    if (!(c->flags & F_ABORT)) {
        rc = sb__queue_flush(c, SIZE_MAX, 0);
        if (rc == 0 && c->queued == 0 && (c->flags & (F_SHUT_WANT | F_SHUT_DONE)) == F_SHUT_WANT) {
            c->tp->shutdown(c->tp_state, c->fd);
            c->flags |= F_SHUT_DONE;
        }
    }
    /* From here on nothing queued would go: our FIN is out, or the owner
     * closes (or lingers, FIN first) once it leaves. Foreign sends are
     * refused (SB_ECLOSED) instead of failing the next flush with EPIPE. */
    if ((c->flags & (F_ABORT | F_SHUT_DONE)) || ((c->flags & F_CLOSING) && c->queued == 0))
        c->blk->xshut = 1;
    if (queued)
        *queued = c->queued;
    if (deadline)
        *deadline = sb__conn_deadline(c);
    c->blk->pollout = c->queued > 0;
    pthread_mutex_unlock(&c->blk->lock);
    if (rc < 0)
        sb__conn_mark_close(c, rc, 0);
}

int sb__blk_flush_now(sb_conn *c)
{
    blk_flush(c, NULL, NULL);
    return c->flags & F_ABORT ? c->err : 0;
}

/* The blocking models close when the handler is done with the peer: after
 * its end of input (on_eof has run), and when paused (nobody can resume a
 * connection whose thread is the only one driving it). */
static void blk_after_read(sb_conn *c)
{
    if ((c->flags & (F_EOF | F_PAUSED)) && !(c->flags & (F_CLOSING | F_ABORT | F_EOF_LATE)))
        sb__conn_mark_close(c, 0, 1);
}

/* Backpressure, as in the event model: stop reading above out_high (or
 * SB_FILES_HIGH file ranges), resume at out_low (and SB_FILES_LOW). */
static int blk_want_read(sb_conn *c, size_t queued)
{
    if (queued > sb__conn_out_high(c) || sb__conn_files_full(c))
        c->flags |= F_BACKPRESS;
    else if (queued <= sb__conn_out_low(c) && sb__conn_files_low(c))
        c->flags &= ~F_BACKPRESS;
    if (c->flags & F_LINGER)
        return 1;
    return !(c->flags & (F_EOF | F_CLOSING | F_ABORT | F_PAUSED | F_BACKPRESS));
}

/* The deadline now: another thread's output may have moved it while the
 * owner slept (such a write wakes nobody). */
static int64_t blk_deadline(sb_conn *c)
{
    int64_t d;

    pthread_mutex_lock(&c->blk->lock);
    d = sb__conn_deadline(c);
    pthread_mutex_unlock(&c->blk->lock);
    return d;
}

static int blk_poll_ms(int64_t deadline)
{
    int64_t left;

    if (deadline == INT64_MAX)
        return -1;
    left = deadline - sb_now_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Readable: read until drained, a stop, or SB_BLK_READS reads. */
static void blk_read(sb_conn *c, uint8_t *scratch, size_t size)
{
    for (int i = 0; i < SB_BLK_READS; i++) {
        int rc = sb__conn_read(c, scratch, size);
        if (rc < 0 && rc != -EAGAIN)
            sb__conn_mark_close(c, rc, rc != -ECONNRESET && rc != -EPIPE);
        if (rc != 1 || sb__conn_stopped(c) || (c->flags & F_DELIVER))
            break;
    }
    blk_after_read(c);
}

/* The socket reported an error or hangup while we were not reading: the
 * output cannot go either. */
static void blk_hangup(sb_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    sb__conn_mark_close(c, err ? -err : -EPIPE, 0);
}

/* One wait and what it leads to. Returns 0 to go on, 1 when the
 * connection is done. */
static int blk_step(sb_conn *c, uint8_t *scratch, size_t size, int64_t *linger_end)
{
    struct pollfd p[2];
    size_t queued;
    int64_t deadline;
    int want, n, tpev, read_now;

    blk_take_request(c);
    blk_after_read(c); /* a pause from on_open, too */
    blk_flush(c, &queued, &deadline);
    blk_take_request(c);
    if (c->flags & F_ABORT)
        return 1;
    if ((c->flags & F_CLOSING) && queued == 0 && !(c->flags & F_LINGER)) {
        if (!sb__conn_start_linger(c, scratch, size))
            return 1;
        *linger_end = sb_now_ms() + SB_LINGER_MS;
    }
    want = blk_want_read(c, queued);
    if ((c->flags & F_DELIVER) && !(c->flags & F_BACKPRESS) && !sb__conn_stopped(c)) {
        sb__conn_redeliver(c); /* messages held while file ranges drained */
        blk_after_read(c);
        return 0;
    }
    if (c->flags & F_LINGER)
        deadline = *linger_end;
    tpev = sb__conn_tp_events(c);
    p[0].fd = c->fd;
    /* Each side's wait only while that side has work (transport.h). */
    p[0].events = (short)(want ? POLLIN | (tpev & SB_WRITABLE ? POLLOUT : 0) : 0);
    if (queued > 0)
        p[0].events |= tpev & SB__TP_NOWRITE ? POLLIN : POLLOUT;
    p[1].fd = c->blk->wake_fd;
    p[1].events = POLLIN;
    p[0].revents = p[1].revents = 0;
    /* Bytes the transport holds are readable now, whatever the socket says. */
    read_now = want && (tpev & SB__TP_HELD);
    n = sb__sys.poll(p, 2, read_now ? 0 : blk_poll_ms(deadline));
    if (n < 0 && errno != EINTR) {
        sb__conn_mark_close(c, -errno, 0);
        return 1;
    }
    if (p[1].revents & POLLIN) {
        uint64_t v;
        (void)!read(c->blk->wake_fd, &v, sizeof(v));
    }
    if (c->flags & F_LINGER) {
        if (p[0].revents && sb__conn_linger_read(c, scratch, size) == 1)
            return 1;
        return sb_now_ms() >= *linger_end;
    }
    /* The read path's own wait (TLS: a read that had to write first) ends
     * like a readable socket; the write path's is retried by the next
     * flush. */
    if ((p[0].revents & POLLOUT) && (tpev & SB_WRITABLE))
        read_now = want;
    if (want && (read_now || (p[0].revents & (POLLIN | POLLERR | POLLHUP))))
        blk_read(c, scratch, size);
    else if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
        blk_hangup(c);
    else if (n == 0 && deadline <= sb_now_ms() && blk_deadline(c) <= sb_now_ms())
        sb__conn_mark_close(c, -ETIMEDOUT, queued == 0); /* output stuck: abort */
    return 0;
}

/* The end: no foreign thread may write once xclosed is set, so the fd can
 * be closed; then the handler and the owner hear of it. */
static int blk_finish(sb_conn *c, sb__conn_owner *ow)
{
    int err = c->err;

    pthread_mutex_lock(&c->blk->lock);
    c->blk->xclosed = 1;
    pthread_mutex_unlock(&c->blk->lock);
    c->flags |= F_CLOSED;
    if (c->flags & F_ABORT)
        sb__conn_set_linger0(c->fd);
    else
        sb__conn_goodbye(c); /* xclosed: no other thread writes now */
    sb__sys.close(c->fd);
    c->fd = -1;
    if (c->h->on_close)
        c->h->on_close(c, err, c->h->app);
    if (ow && ow->gone)
        ow->gone(ow, c);
    sb__conn_free(c);
    return err;
}

int sb__conn_wake_new(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

/* The blocking part of the object: the lock and the wake fd (taken over:
 * sb__conn_free closes it). */
static int blk_setup(sb_conn *c, int wake_fd)
{
    c->blk = sb__calloc(1, sizeof(*c->blk));
    if (c->blk == NULL)
        return -ENOMEM;
    c->blk->wake_fd = wake_fd;
    pthread_mutex_init(&c->blk->lock, NULL); /* sb__conn_free destroys it */
    c->blk->thread = pthread_self();
    return 0;
}

int sb__conn_run_blocking(int fd, int wake_fd, const sb_conn_opts *o, const sb_handler *h,
                          sb__conn_owner *ow)
{
    size_t size = 64 * 1024;
    uint8_t *scratch = sb__malloc(size);
    sb_conn *c = sb__conn_alloc(fd, o, h, ow, NULL, 0);
    int64_t linger_end = 0;
    int err = wake_fd >= 0 ? 0 : (wake_fd = sb__conn_wake_new());

    if (err >= 0)
        err = scratch == NULL || c == NULL ? -ENOMEM : blk_setup(c, wake_fd);
    if (err >= 0 && o->frame.cut_info_size) {
        /* One thread per connection: the block is this thread's, made once. */
        if ((c->fs.info = sb__malloc(o->frame.cut_info_size)) == NULL)
            err = -ENOMEM;
        c->fs.info_owned = 1;
    }
    if (err < 0) {
        if (wake_fd >= 0 && (c == NULL || c->blk == NULL))
            sb__sys.close(wake_fd);
        sb__free(scratch);
        if (c)
            sb__conn_free(c);
        sb__sys.close(fd);
        return err;
    }
    sb_set_nonblock(fd, 1);
    c->flags |= F_BLOCKING;
    c->last_io = c->write_since = sb_now_ms();
    if (ow && ow->joined)
        ow->joined(ow, c);
    if (h->on_open && (err = h->on_open(c, h->app)) < 0) {
        /* Refused: no on_close, but the owner saw it join. */
        pthread_mutex_lock(&c->blk->lock);
        c->blk->xclosed = 1;
        pthread_mutex_unlock(&c->blk->lock);
        sb__sys.close(fd);
        if (ow && ow->gone)
            ow->gone(ow, c);
        sb__conn_free(c);
        sb__free(scratch);
        return err;
    }
    while (blk_step(c, scratch, size, &linger_end) == 0)
        ;
    sb__free(scratch);
    return blk_finish(c, ow);
}

int sb_conn_run_blocking(int fd, const sb_conn_opts *o, const sb_handler *h)
{
    return sb__conn_run_blocking(fd, -1, o, h, NULL);
}
