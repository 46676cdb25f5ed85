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
 */
#include <errno.h>
#include <unistd.h>

#include "switchboard.h"
#include "conn_int.h"
#include "sys.h"
#include "tls_int.h"
#include "transport.h"

static void ev_io(sb_loop *l, int fd, int events, void *ud);

/* Close the fd, tell the handler, tell the owner, free. Only from the top
 * of the stack (no callback of any connection running). */
static void ev_finish(sb_conn *c)
{
    c->flags |= F_CLOSED;
    sb__link_del(&c->link);
    if (c->mask)
        sb_loop_watch(c->loop, c->fd, 0, NULL, NULL);
    sb_timer_stop(c->loop, &c->timer);
    sb_defer_cancel(c->loop, &c->defer);
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
    sb__conn_free(c);
}

static int ev_want_read(const sb_conn *c)
{
    if (c->flags & F_LINGER)
        return 1;
    return !(c->flags & (F_EOF | F_CLOSING | F_ABORT | F_PAUSED | F_BACKPRESS | F_CLOSED));
}

static void ev_update(sb_conn *c)
{
    int mask = 0, tpev = sb__conn_tp_events(c);

    if (c->flags & F_CLOSED)
        return;
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
    if (c->out_head != NULL) {
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
    int64_t tpd = c->tp->deadline ? c->tp->deadline(c->tp_state) : INT64_MAX;

    if (c->flags & F_LINGER) {
        ev_finish(c);
        return;
    }
    if (d <= now) {
        sb__conn_mark_close(c, -ETIMEDOUT, c->queued == 0); /* output stuck: abort */
        ev_progress(c);
        return;
    }
    if (next == 0 && tpd == INT64_MAX && d == INT64_MAX)
        return; /* the handshake's deadline was the only one */
    if (next == 0 || d - now < next)
        next = d - now;
    sb_timer_start(l, t, next);
}

/* on_open refused, or the loop would not watch the fd: undo the open. */
static void ev_discard(sb_conn *c)
{
    sb__link_del(&c->link);
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
    rc = sb_loop_watch(l, fd, SB_READABLE | SB_EDGE, ev_io, c);
    if (rc < 0) {
        sb__sys.close(fd);
        sb__conn_free(c);
        return rc;
    }
    c->mask = SB_READABLE | SB_EDGE;
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
     * handshake begins with its own write, whether or not on_open wrote). */
    if (c->queued > 0 || (c->flags & (F_CLOSING | F_ABORT)) || sb__conn_tp_events(c))
        sb__conn_kick(c);
    return 0;
}

int sb_conn_open(sb_loop *l, int fd, const sb_conn_opts *o, const sb_handler *h, sb_conn **out)
{
    return sb__conn_open(l, fd, o, h, NULL, NULL, 0, out);
}
