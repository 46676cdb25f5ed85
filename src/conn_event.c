/* conn_event: the event driver - a connection living on a loop (event
 * model, sb_conn_open): edge-triggered readable/writable callbacks, one
 * timer for the idle/read/write deadlines, deferred steps, and the close
 * sequence (flush, lingering close, on_close, free).
 *
 * Threads: everything here runs on the loop's thread, and every field of
 * an event-model connection belongs to it (conn_int.h). Nothing locks.
 *
 * A connection is freed only from the top of the stack (ev_progress at
 * depth 0, a timer, a defer), never while one of its callbacks runs.
 *
 * Two ways to move bytes. Readiness (every backend): the loop says the
 * socket is readable or writable and the driver reads and writes it. On
 * a loop whose backend does the I/O itself (loop_int.h's completion
 * operations: io_uring), a plain-transport connection is F_RING instead: one
 * multishot receive stays armed while the connection wants to read, its
 * completions bring bytes in the loop's shared buffers, and the write
 * queue's head goes out by one send request at a time. Stopping to read
 * (backpressure, pause, closing) cancels the receive; bytes it brought
 * before the cancel landed are taken as a read would have taken them. A
 * closed connection whose requests are still in flight is freed by their
 * last completion. TLS keeps readiness: its engine reads and writes the
 * socket itself.
 */
#include <errno.h>
#include <unistd.h>

#include "switchboard.h"
#include "conn_int.h"
#include "sys.h"
#include "tls_int.h"
#include "transport.h"

static void ev_io(sb_loop *l, int fd, int events, void *ud);

/* Close the fd, tell the handler, tell the owner, free - or, with ring
 * requests still in flight, leave the freeing to their last completion
 * (ev_ring_done). Only from the top of the stack (no callback of any
 * connection running). */
static void ev_finish(sb_conn *c)
{
    c->flags |= F_CLOSED;
    sb__link_del(&c->link);
    if (c->mask)
        sb_loop_watch(c->loop, c->fd, 0, NULL, NULL);
    sb_timer_stop(c->loop, &c->timer);
    sb_defer_cancel(c->loop, &c->defer);
    if (c->op.busy) {
        sb__loop_cancel(c->loop, &c->op, SB__OP_RECV);
        sb__loop_cancel(c->loop, &c->op, SB__OP_SEND);
    }
    if (c->flags & F_ABORT)
        sb__conn_set_linger0(c->fd);
    else
        sb__conn_goodbye(c);
    sb__sys.close(c->fd);
    c->fd = -1;
    sb__queue_clear(c);
    if (c->h->on_close)
        c->h->on_close(c, c->err, c->h->app);
    if (c->owner && c->owner->gone)
        c->owner->gone(c->owner, c);
    if (c->op.busy == 0)
        sb__conn_free(c);
}

static int ev_want_read(const sb_conn *c)
{
    if (c->flags & F_LINGER)
        return 1;
    return !(c->flags & (F_EOF | F_CLOSING | F_ABORT | F_PAUSED | F_BACKPRESS | F_CLOSED));
}

/* F_RING: the receive armed while the connection wants to read, and
 * cancelled when it stops wanting to. A cancel still on its way is waited
 * out (its end re-runs this). An arm or a cancel that could not be queued
 * (the submission queue full and not flushable) is tried again at the end
 * of the turn; the timers bound the connection meanwhile. */
static void ev_ring_update(sb_conn *c)
{
    int want = ev_want_read(c), busy = (c->op.busy & (1u << SB__OP_RECV)) != 0;

    if (want && !busy) {
        if (sb__loop_recv(c->loop, c->fd, &c->op) == -EBUSY)
            sb__conn_kick(c);
    } else if (!want && busy && !(c->flags & F_RSTOP)) {
        if (sb__loop_cancel(c->loop, &c->op, SB__OP_RECV) == 0)
            c->flags |= F_RSTOP;
        else
            sb__conn_kick(c);
    }
}

static void ev_update(sb_conn *c)
{
    int mask = 0, tpev;

    if (c->flags & F_CLOSED)
        return;
    if (c->flags & F_RING) {
        ev_ring_update(c);
        return;
    }
    tpev = sb__conn_tp_events(c);
    /* Each side's wait only while that side has work: the read path's
     * (TLS: a handshake to drive, a read that must write) while reading,
     * the write path's while output is queued. */
    if (ev_want_read(c))
        mask |= SB_READABLE | (tpev & (SB_READABLE | SB_WRITABLE));
    if (c->queued > 0)
        mask |= tpev & SB__TP_NOWRITE ? SB_READABLE : SB_WRITABLE;
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
    /* Bytes the transport holds (decrypted, not yet read) are no edge of
     * the socket: ask for the turn no poll would give. */
    if ((tpev & SB__TP_HELD) && (mask & SB_READABLE))
        sb_loop_again(c->loop, c->fd, SB_READABLE);
}

/* Flush, then apply backpressure and the output cap. */
static void ev_flush(sb_conn *c)
{
    if (c->flags & F_ABORT)
        return;
    if (c->out_head != NULL && (c->flags & F_RING)) {
        int rc = sb__queue_ring_send(c);
        if (rc == -EBUSY) /* no room in the submission queue: try at the turn's end */
            sb__conn_kick(c);
        else if (rc < 0) {
            sb__conn_mark_close(c, rc, 0);
            return;
        }
    } else if (c->out_head != NULL) {
        int rc = sb__queue_flush(c, SB_WRITE_BUDGET, 0);
        if (rc < 0) {
            sb__conn_mark_close(c, rc, 0);
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
    } else if (c->queued > sb__conn_out_high(c) || sb__conn_files_full(c)) {
        c->flags |= F_BACKPRESS;
    } else if (c->queued <= sb__conn_out_low(c) && sb__conn_files_low(c)) {
        c->flags &= ~F_BACKPRESS;
    }
}

/* Decide what happens next after any event: finish a close, deliver held
 * messages, update the watch mask. Only at depth 0. */
static void ev_progress(sb_conn *c)
{
    if (c->depth > 0 || (c->flags & F_CLOSED))
        return;
    if ((c->flags & F_DELIVER) && !sb__conn_stopped(c) && !(c->flags & F_BACKPRESS)) {
        c->depth++;
        sb__conn_redeliver(c);
        ev_flush(c);
        c->depth--;
        /* Held again with the output gone at once: no event may come (the
         * socket stays writable, nothing more to read), so go on next turn. */
        if ((c->flags & F_DELIVER) && !sb__conn_stopped(c) && !(c->flags & F_BACKPRESS))
            sb__conn_kick(c);
    }
    if ((c->flags & F_ABORT) || ((c->flags & F_CLOSING) && c->queued == 0)) {
        if (!(c->flags & F_ABORT) && (c->flags & F_LINGER)) {
            ev_update(c);
            return;
        }
        /* A ring's receive still in flight may have taken bytes the
         * socket no longer shows: whether the peer is still sending is
         * known once its cancel ended it (ev_ring_done comes back here). */
        if (!(c->flags & F_ABORT) && (c->op.busy & (1u << SB__OP_RECV))) {
            ev_update(c);
            if (!(c->flags & F_RWAIT)) { /* the wait's bound, from its start (ev_timer) */
                c->flags |= F_RWAIT;
                sb_timer_start(c->loop, &c->timer, SB_LINGER_MS);
            }
            return;
        }
        /* The timer is the only bound on lingering: without one (out of
         * memory for the timer heap), close at once. */
        if (!(c->flags & F_ABORT) &&
            sb__conn_start_linger(c, sb__loop_scratch(c->loop), SB_SCRATCH_SIZE) &&
            sb_timer_start(c->loop, &c->timer, SB_LINGER_MS) == 0) {
            ev_update(c);
            return;
        }
        ev_finish(c);
        return;
    }
    ev_update(c);
}

static void ev_io(sb_loop *l, int fd, int events, void *ud)
{
    sb_conn *c = ud;
    int tpev;

    if (c->flags & F_LINGER) {
        int rc = sb__conn_linger_read(c, sb__loop_scratch(l), SB_SCRATCH_SIZE);
        if (rc == 1)
            ev_finish(c);
        else if (rc == 2)
            sb_loop_again(l, fd, SB_READABLE);
        return;
    }
    c->depth++;
    if (events & SB_HUP)
        c->flags |= F_HUP;
    /* The transport's read path may wait for writability (TLS: WANT_WRITE
     * in a read, the client's handshake) and its write path for
     * readability (WANT_READ in a write): give the side that waited its
     * turn. */
    tpev = sb__conn_tp_events(c);
    if (events & tpev & (SB_READABLE | SB_WRITABLE))
        events |= SB_READABLE;
    if ((events & SB_READABLE) && (tpev & SB__TP_NOWRITE))
        events |= SB_WRITABLE;
    if ((events & SB_WRITABLE) && c->queued > 0)
        ev_flush(c);
    if ((events & (SB_READABLE | SB_ERROR)) && ev_want_read(c)) {
        int rc = sb__conn_read(c, sb__loop_scratch(l), SB_SCRATCH_SIZE);
        /* A full buffer, or a short read with the end still to come: more
         * waits, and no edge will say so. */
        if (rc == 1 || (rc == 0 && (c->flags & (F_HUP | F_EOF)) == F_HUP))
            sb_loop_again(l, fd, SB_READABLE);
        else if (rc < 0 && rc != -EAGAIN)
            sb__conn_mark_close(c, rc, rc != -ECONNRESET && rc != -EPIPE);
        ev_flush(c);
    }
    c->depth--;
    ev_progress(c);
}

/* F_RING: what the receive brought. Bytes that come while closing are
 * dropped (nothing more is delivered) but remembered: they decide whether
 * the close lingers. */
static void ev_ring_recv(sb_conn *c, int res, const void *p)
{
    int rc;

    if (res == -ENOBUFS || res == -ECANCELED)
        return; /* nothing was read: re-armed by ev_update if still wanted */
    if (res < 0) {
        sb__conn_mark_close(c, res, res != -ECONNRESET && res != -EPIPE);
        return;
    }
    if (c->flags & (F_CLOSING | F_ABORT | F_EOF)) {
        c->flags |= res > 0 ? F_RDROP : F_EOF;
        return;
    }
    rc = sb__conn_received(c, p, (size_t)res);
    if (rc < 0)
        sb__conn_mark_close(c, rc, 1);
}

/* A completion of one of the connection's ring requests. The last one of
 * a closed connection frees it. */
static void ev_ring_done(sb__op *op, int kind, int res, int more, const void *p)
{
    sb_conn *c = SB__CONTAINER(op, sb_conn, op);
    int rc;

    if (kind == SB__OP_RECV && !more)
        c->flags &= ~F_RSTOP;
    if (kind == SB__OP_SEND && (rc = sb__queue_ring_sent(c, res)) < 0 && !(c->flags & F_CLOSED))
        sb__conn_mark_close(c, rc, 0);
    if (c->flags & F_CLOSED) {
        if (op->busy == 0)
            sb__conn_free(c);
        return;
    }
    if (c->flags & F_LINGER) {
        if (kind == SB__OP_RECV && (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED))) {
            ev_finish(c);
            return;
        }
        if (kind == SB__OP_RECV && res > 0)
            c->last_io = sb__loop_now(c->loop);
        ev_update(c);
        return;
    }
    c->depth++;
    if (kind == SB__OP_RECV)
        ev_ring_recv(c, res, p);
    ev_flush(c);
    c->depth--;
    ev_progress(c);
}

static void ev_deferred(sb_loop *l, sb_defer *d)
{
    sb_conn *c = d->data;
    ev_flush(c);
    ev_progress(c);
}

/* The timer is re-armed lazily: traffic only moves timestamps, and the
 * timer, when it fires, works out whether a deadline really passed. */
static void ev_timer(sb_loop *l, sb_timer *t)
{
    sb_conn *c = t->data;
    int64_t now = sb__loop_now(l);
    int64_t d = sb__conn_deadline(c);
    int64_t next = sb__conn_min_timeout(c->o);

    /* Lingering, or waiting for the receive's end to decide whether to
     * linger (ev_progress): the time is up, close. */
    if (c->flags & (F_LINGER | F_RWAIT)) {
        ev_finish(c);
        return;
    }
    if (d <= now) {
        sb__conn_mark_close(c, -ETIMEDOUT, c->queued == 0); /* output stuck: abort */
        ev_progress(c);
        return;
    }
    if (next == 0 && d == INT64_MAX)
        return; /* the handshake's deadline (part of d) was the only one */
    if (next == 0 || d - now < next)
        next = d - now;
    sb_timer_start(l, t, next);
}

/* on_open refused, or the loop would not watch the fd: undo the open. */
static void ev_discard(sb_conn *c)
{
    sb__link_del(&c->link);
    if (c->mask)
        sb_loop_watch(c->loop, c->fd, 0, NULL, NULL);
    sb_timer_stop(c->loop, &c->timer);
    sb_defer_cancel(c->loop, &c->defer);
    sb__sys.close(c->fd);
    sb__conn_free(c);
}

int sb__conn_open(sb_loop *l, int fd, const sb_conn_opts *o, const sb_handler *h,
                  sb__conn_owner *ow, const struct sockaddr *peer, socklen_t plen,
                  sb_conn **out)
{
    sb_conn *c;
    int rc, tmo;

    /* An owner's (the server's) sockets come from accept4(SOCK_NONBLOCK). */
    if (ow == NULL)
        sb_set_nonblock(fd, 1);
    c = sb__conn_alloc(fd, o, h, ow, peer, plen);
    if (c == NULL) {
        sb__sys.close(fd);
        return -ENOMEM;
    }
    c->loop = l;
    c->last_io = c->write_since = sb__loop_now(l);
    sb_timer_init(&c->timer, ev_timer, c);
    sb_defer_init(&c->defer, ev_deferred, c);
    c->op.cb = ev_ring_done;
    if (sb__loop_ring(l) != NULL && c->tp == &sb__transport_plain) {
        c->flags |= F_RING; /* the receive is armed once on_open accepted it */
    } else {
        rc = sb_loop_watch(l, fd, SB_READABLE | SB_EDGE, ev_io, c);
        if (rc < 0) {
            sb__sys.close(fd);
            sb__conn_free(c);
            return rc;
        }
        c->mask = SB_READABLE | SB_EDGE;
    }
    sb__link_add(sb__loop_conns(l), &c->link);
    tmo = sb__conn_min_timeout(o);
    if (o->tls && (tmo == 0 || sb__tls_handshake_ms(o->tls) < tmo))
        tmo = sb__tls_handshake_ms(o->tls);
    if (tmo > 0)
        sb_timer_start(l, &c->timer, tmo);
    if (out)
        *out = c;
    if (h->on_open) {
        c->depth++;
        rc = h->on_open(c, h->app);
        c->depth--;
        if (rc < 0) {
            ev_discard(c);
            if (out)
                *out = NULL;
            return rc;
        }
    }
    /* The transport may need the socket from the start (a TLS client's
     * handshake begins with its own write, whether or not on_open wrote).
     * A ring connection's receive is armed from there too, at the end of
     * the turn, so that a transport set just after the open (TLS in a
     * test, sb__conn_set_transport) finds nothing in flight. */
    if (c->queued > 0 || (c->flags & (F_CLOSING | F_ABORT | F_RING)) || sb__conn_tp_events(c))
        sb__conn_kick(c);
    return 0;
}

int sb_conn_open(sb_loop *l, int fd, const sb_conn_opts *o, const sb_handler *h, sb_conn **out)
{
    return sb__conn_open(l, fd, o, h, NULL, NULL, 0, out);
}
