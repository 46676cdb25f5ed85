/* conn: a buffered connection - decoder in, write queue out, timeouts,
 * half-close and close - driven either by a loop (event model,
 * conn_event.c) or by one thread with blocking waits (threads and fork
 * models, conn_blocking.c). See conn.h; the write queue is conn_queue.c.
 *
 * This file holds what both drivers share: the object (alloc, free, the
 * peer's address), the read path (one read, frame decode, the handler), the
 * close decisions, and the public calls that are neither sending nor
 * driving.
 *
 * Threads (the full table is at the top of conn_int.h): everything here
 * runs on the connection's owner thread - the loop's, or the one running
 * sb_conn_run_blocking - except sb__conn_close_err and its public wrappers,
 * which route a foreign thread's request to conn_blocking.c, and the
 * accessors of constant fields (fd, loop, options).
 *
 * Read path, event model: a read lands in the loop's scratch buffer and
 * messages are cut straight out of it; only the unfinished tail of the last
 * message is copied into the connection's own buffer. An idle connection
 * therefore owns no buffers at all - its cost is the struct.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "switchboard.h"
#include "conn_int.h"
#include "frame_int.h"
#include "sys.h"
#include "tls_int.h"
#include "transport.h"

void sb_conn_opts_default(sb_conn_opts *o)
{
    memset(o, 0, sizeof(*o));
    sb_frame_parse("line", &o->frame);
    o->max_msg = 1u << 20;
}

/* ------------------------------------------------------------------ */
/* The object                                                          */

/* Keep the peer's address: compactly for TCP, as text for the rare rest
 * (a named unix client, a scoped IPv6 address). */
static void conn_take_peer(sb_conn *c, const struct sockaddr *peer, socklen_t plen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char text[128];

    if (peer != NULL && plen > 0 && plen <= sizeof(ss)) {
        memcpy(&ss, peer, plen);
        len = plen;
    } else if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        memcpy(c->addr.ip, &in->sin_addr, 4);
        c->addr.port = ntohs(in->sin_port);
        c->addr.family = 4;
        return;
    }
    if (ss.ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6) &&
        ((const struct sockaddr_in6 *)&ss)->sin6_scope_id == 0) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        memcpy(c->addr.ip, &in6->sin6_addr, 16);
        c->addr.port = ntohs(in6->sin6_port);
        c->addr.family = 6;
        return;
    }
    if (ss.ss_family == AF_UNIX && (len <= offsetof(struct sockaddr_un, sun_path) ||
                                    ((struct sockaddr_un *)&ss)->sun_path[0] == '\0')) {
        c->addr.family = 'u'; /* an unnamed client, the usual case: no text to keep */
        return;
    }
    if (sb_addr_format((struct sockaddr *)&ss, len, text, sizeof(text)) < 0)
        return;
    c->peer = sb__malloc(strlen(text) + 1);
    if (c->peer != NULL) {
        strcpy(c->peer, text);
        c->addr.family = 't';
    }
}

sb_conn *sb__conn_alloc(int fd, const sb_conn_opts *o, const sb_handler *h, sb__conn_owner *ow,
                        const struct sockaddr *peer, socklen_t plen)
{
    sb_conn *c = sb__calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->o = o;
    c->h = h;
    c->tp = &sb__transport_plain;
    c->owner = ow;
    sb__link_init(&c->link);
    sb_buf_init(&c->in, sb__conn_max_msg(c) + SB_FRAME_HDR_MAX + SB_DELIM_MAX);
    if (sb__frame_state_init(&c->fs, &o->frame, 0) < 0) {
        sb__free(c);
        return NULL;
    }
    if (o->tls && sb__tls_transport_new(o->tls, fd, &c->tp, &c->tp_state) < 0) {
        sb_frame_state_free(&c->fs);
        sb__free(c);
        return NULL;
    }
    conn_take_peer(c, peer, plen);
    return c;
}

void sb__conn_free(sb_conn *c)
{
    if (c->tp->free)
        c->tp->free(c->tp_state);
    sb__queue_clear(c);
    sb_buf_free(&c->in);
    sb_frame_state_free(&c->fs);
    if (c->blk) {
        pthread_mutex_destroy(&c->blk->lock);
        if (c->blk->wake_fd >= 0)
            sb__sys.close(c->blk->wake_fd);
        sb__free(c->blk);
    }
    sb__free(c->peer);
    sb__free(c);
}

/* ------------------------------------------------------------------ */
/* Message delivery                                                    */

/* Add a batch's messages to the owner's counter: once per read, not once
 * per message. */
static void conn_count(sb_conn *c, uint64_t n)
{
    if (!n || c->owner == NULL || c->owner->messages == NULL)
        return;
    if (c->owner->stats) /* a worker's own counter: one writer, a plain add */
        sb__stat_add(c->owner->messages, n);
    else
        __atomic_fetch_add(c->owner->messages, n, __ATOMIC_RELAXED);
}

/* Mark the connection for closing. The first error wins, even over a
 * clean close already under way: a graceful close whose last replies then
 * fail to go out did not end cleanly. Owner thread only.
 *
 * The hot functions of this file are static with an exported wrapper for
 * the drivers: the library is built position-independent, and there a
 * call to an exported function cannot be inlined (it could be interposed),
 * which cost the read path several instructions per message. */
static void conn_mark_close(sb_conn *c, int err, int graceful)
{
    if (c->flags & F_CLOSED)
        return;
    if (c->err == 0)
        c->err = err;
    c->flags |= graceful ? F_CLOSING : F_ABORT;
}

/* Hand every whole message in p[0..n) to the handler. Returns the bytes
 * consumed, or a framing error. Stops early when the handler closes or
 * pauses the connection, or when messages must wait (its replies hold too
 * many file ranges, or a ring connection's output passed its high-water
 * mark); the rest stays for later. */
static ssize_t conn_deliver(sb_conn *c, const uint8_t *p, size_t n, int eof)
{
    const sb_frame_spec *spec = &c->o->frame;
    size_t used = 0, max = sb__conn_max_msg(c);
    uint64_t count = 0;
    ssize_t r = 0;

    /* A cutter's block about each message: the loop's one, or (blocking
     * models) the connection's own, made when its thread starts. */
    if (spec->cut_info_size && c->loop && (c->fs.info = sb__loop_info(c->loop, spec->cut_info_size)) == NULL)
        return -ENOMEM;
    while (!sb__conn_stopped(c) && !sb__conn_must_wait(c)) {
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
    if (count)
        c->flags |= F_GOTMSG;
    return r < 0 ? r : (ssize_t)used;
}

/* Hold n bytes read while delivery is stopped (paused, closing, must
 * wait) in `in`, behind what it holds. They may be many messages - a whole
 * read, or a ring's whole turn - which `in`'s bound, one message long, is
 * not for: that bounds what an unfinished message may grow to. A readiness
 * connection holds at most one read; a ring's receive stops at the end of
 * the turn that held, having brought at most the ring's buffers in all
 * (SB_HOLD_MAX). More means the receive did not stop, and the connection
 * ends rather than grow without bound. */
static int conn_hold(sb_conn *c, const uint8_t *p, size_t n)
{
    size_t max = c->in.max, len = sb_buf_len(&c->in);
    int rc;

    if (len + n > SB_HOLD_MAX + sb__conn_max_msg(c))
        return sb__conn_must_wait(c) ? SB_EOUTPUT : SB_ETOOBIG;
    c->in.max = 0;
    rc = sb_buf_append(&c->in, p, n);
    c->in.max = max;
    return rc;
}

/* Keep the n bytes a delivery left: held when it stopped, else the start
 * of the next message, bounded by `in`. */
static int conn_keep(sb_conn *c, const uint8_t *p, size_t n)
{
    if (sb__conn_stopped(c) || sb__conn_must_wait(c))
        return conn_hold(c, p, n);
    return sb_buf_append(&c->in, p, n);
}

/* Messages now in p[0..n) (from scratch when `in` was empty, else `in`
 * itself): deliver, then keep the unfinished tail in `in`. */
static int conn_consume(sb_conn *c, const uint8_t *p, size_t n, int from_in, int eof)
{
    ssize_t used = conn_deliver(c, p, n, eof);
    int rc = 0;

    if (used < 0)
        return (int)used;
    if (from_in)
        sb_buf_consume(&c->in, (size_t)used);
    else if ((size_t)used < n)
        rc = conn_keep(c, p + used, n - (size_t)used);
    if (sb_buf_len(&c->in) == 0) {
        if (c->in.data != NULL)
            sb_buf_free(&c->in);
        if (c->flags & F_DRAIN)
            conn_mark_close(c, 0, 1);
        return rc;
    }
    /* What stays is a new message (the old one, if any, was delivered):
     * the read timeout counts from now. */
    if (used > 0 || !from_in)
        c->msg_start = sb__conn_now(c);
    if ((sb__conn_stopped(c) || sb__conn_must_wait(c)) && !(c->flags & (F_CLOSING | F_ABORT)))
        c->flags |= F_DELIVER;
    return rc;
}

void sb__conn_mark_close(sb_conn *c, int err, int graceful)
{
    conn_mark_close(c, err, graceful);
}

/* The peer shut down: whatever is left must now form whole messages (or
 * be the message, for `eof` framing). */
static void conn_on_eof(sb_conn *c)
{
    int rc;

    c->flags |= F_EOF;
    /* Where only the end marks a message's length, an end the transport
     * cannot vouch for (TLS without close_notify: a cut connection looks
     * the same) must not deliver what may be a truncated message. */
    if (c->o->frame.kind == SB_FRAME_EOF && c->tp->eof_error &&
        (rc = c->tp->eof_error(c->tp_state)) < 0) {
        conn_mark_close(c, rc, 1);
        return;
    }
    rc = conn_consume(c, sb_buf_data(&c->in), sb_buf_len(&c->in), 1, 1);
    if (rc < 0) {
        conn_mark_close(c, rc, 1);
        return;
    }
    /* Paused (before, or by a message just delivered): an event-model
     * connection takes the end at its resume, after what it holds, as a
     * readiness one finds the end in the socket then (a ring's receive
     * brings it while paused). F_DELIVER: a resume with nothing held
     * would not redeliver. */
    if (c->loop && (c->flags & F_PAUSED) && !(c->flags & (F_CLOSING | F_ABORT | F_CLOSED))) {
        c->flags |= F_EOF_LATE | F_DELIVER;
        return;
    }
    /* Whole messages wait for the queue to drain. */
    if (sb_buf_len(&c->in) > 0 && !(c->flags & (F_CLOSING | F_ABORT | F_CLOSED)) &&
        sb__conn_must_wait(c)) {
        c->flags |= F_EOF_LATE;
        return;
    }
    if (sb_buf_len(&c->in) > 0 && !sb__conn_stopped(c)) {
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

/* Deliver the messages held in `in` (after a resume, or once the output
 * or its file ranges fell back); the peer's end, if it came meanwhile,
 * follows them. */
void sb__conn_redeliver(sb_conn *c)
{
    int rc;

    c->flags &= ~F_DELIVER;
    if (c->flags & F_EOF_LATE) {
        c->flags &= ~F_EOF_LATE;
        conn_on_eof(c);
        return;
    }
    rc = conn_consume(c, sb_buf_data(&c->in), sb_buf_len(&c->in), 1, (c->flags & F_EOF) != 0);
    if (rc < 0)
        conn_mark_close(c, rc, 1);
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
        want = c->in.max > sb_buf_len(&c->in) ? c->in.max - sb_buf_len(&c->in) : 0;
    if (want == 0 || sb_buf_reserve(&c->in, want, &p) < 0)
        return NULL;
    *size = want;
    return p;
}

/* Bytes in: the clock, the counters, the next reply's size hint. */
static void conn_took(sb_conn *c, size_t n)
{
    c->last_io = sb__conn_now(c);
    if (c->owner && c->owner->stats)
        sb__stat_add(&c->owner->stats->bytes_in, (uint64_t)n);
    c->read_hint = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* One read and everything it leads to. Returns 1 if more may be readable
 * (including: not read, messages still held), 0 if the socket is drained
 * or the read made the conn stop reading, -EAGAIN when nothing was there,
 * or -errno. */
int sb__conn_read(sb_conn *c, uint8_t *scratch, size_t scratch_size)
{
    size_t size;
    uint8_t *p;
    int from_in;
    ssize_t n;
    int rc;

    /* Held messages came first: a read goes behind them, so they are
     * delivered before it (they were released in this turn) or it waits
     * (still held: not reading is what holding means on readiness). A
     * read that waits says "maybe more": the socket was not drained, and
     * an edge-triggered watch gives no second report of it. */
    if (c->flags & F_DELIVER) {
        if (!sb__conn_stopped(c) && !sb__conn_must_wait(c))
            sb__conn_redeliver(c);
        if ((c->flags & F_DELIVER) || sb__conn_stopped(c) || sb__conn_must_wait(c))
            return 1;
    }
    p = conn_read_target(c, scratch, scratch_size, &size);
    from_in = p != scratch;

    if (p == NULL)
        return SB_ETOOBIG;
    do
        n = c->tp->read(c->tp_state, c->fd, p, size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
    if (n == 0) {
        c->last_io = sb__conn_now(c);
        conn_on_eof(c);
        return 0;
    }
    conn_took(c, (size_t)n);
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

/* What a completion ring received into one of its buffers (n == 0: the
 * peer's end). Messages are cut straight out of p while `in` is empty;
 * otherwise p joins the message under way in `in`, no more at a time than
 * `in` may hold (as a read is sized by it), and the rest follows. While
 * messages are held (paused, or waiting for the output to drain) p only
 * joins them: the receive was told to stop, and these came before it did.
 * Returns 0 or -errno / SB_E*. */
int sb__conn_received(sb_conn *c, const uint8_t *p, size_t n)
{
    int rc = 0;

    if (n == 0) {
        c->last_io = sb__conn_now(c);
        conn_on_eof(c);
        return 0;
    }
    conn_took(c, n);
    while (n > 0 && rc == 0 && !(c->flags & (F_CLOSING | F_ABORT))) {
        size_t len = sb_buf_len(&c->in), take = n;
        if (c->flags & F_DELIVER) {
            /* Messages are held, and p comes after them: still held
             * (paused, the output not drained), p joins them; released
             * but not delivered yet (a resume or a send's completion
             * earlier in this turn), they go first, now. */
            if (sb__conn_stopped(c) || sb__conn_must_wait(c))
                return conn_hold(c, p, n);
            sb__conn_redeliver(c);
            continue;
        }
        if (len == 0)
            return conn_consume(c, p, n, 0, 0);
        if (c->in.max && c->in.max - len < take)
            take = c->in.max > len ? c->in.max - len : 0;
        if (take == 0)
            return SB_ETOOBIG;
        if ((rc = sb_buf_append(&c->in, p, take)) < 0)
            return rc;
        p += take;
        n -= take;
        rc = conn_consume(c, sb_buf_data(&c->in), sb_buf_len(&c->in), 1, 0);
    }
    if (n > 0 && (c->flags & (F_CLOSING | F_ABORT)))
        c->flags |= F_RDROP; /* closed with bytes still coming: see lingering */
    return rc;
}

/* ------------------------------------------------------------------ */
/* Closing and timeouts (both drivers)                                 */

void sb__conn_set_linger0(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Lingering close. Closing a TCP socket that still holds unread bytes
 * makes the kernel send a reset, and a reset can destroy the replies we
 * just sent (a 400 answer to a pipelining client, say) before the peer
 * reads them. So when bytes are waiting, send our FIN first and read and
 * drop the peer's bytes until its FIN, for at most SB_LINGER_MS. What is
 * waiting is often the peer's own end - its FIN, or a TLS close_notify
 * (a client that closes once it has its answer): those bytes are read
 * (into buf) first, and when the end is among them nothing is left to
 * provoke a reset, so the close goes ahead at once instead of waiting
 * another turn of the loop. Returns 1 if lingering started. */
int sb__conn_start_linger(sb_conn *c, uint8_t *buf, size_t size)
{
    int pending = 0;

    if ((c->flags & F_EOF) || ioctl(c->fd, FIONREAD, &pending) < 0)
        return 0;
    /* A ring's receive empties the socket as bytes come; that it brought
     * some after the close began says the peer is still sending. */
    if (pending <= 0 && !(c->flags & F_RDROP))
        return 0;
    if (sb__conn_linger_read(c, buf, size) == 1)
        return 0;
    if (c->tp->shutdown(c->tp_state, c->fd) < 0)
        return 0;
    c->flags |= F_LINGER | F_SHUT_DONE;
    return 1;
}

/* Drain during lingering: 1 when done (EOF or error), 0 when nothing more
 * is there now, 2 when bytes keep coming (read again later; the caller's
 * clock bounds the wait). */
int sb__conn_linger_read(sb_conn *c, uint8_t *buf, size_t size)
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

/* The nearest of the idle, read and write deadlines (ms; INT64_MAX: none).
 * Output sent by any thread counts as I/O for the idle deadline (out_io).
 * Blocking models: call under blk->lock (queued, write_since, out_io). */
int64_t sb__conn_deadline(const sb_conn *c)
{
    const sb_conn_opts *o = c->o;
    int64_t d = INT64_MAX;

    if (o->idle_timeout_ms > 0)
        d = (c->out_io > c->last_io ? c->out_io : c->last_io) + o->idle_timeout_ms;
    if (o->read_timeout_ms > 0 && sb_buf_len(&c->in) > 0 && c->msg_start + o->read_timeout_ms < d)
        d = c->msg_start + o->read_timeout_ms;
    if (o->write_timeout_ms > 0 && c->queued > 0 && c->write_since + o->write_timeout_ms < d)
        d = c->write_since + o->write_timeout_ms;
    if (c->tp->deadline) { /* a TLS handshake still under way */
        int64_t t = c->tp->deadline(c->tp_state);
        if (t < d)
            d = t;
    }
    return d;
}

int sb__conn_min_timeout(const sb_conn_opts *o)
{
    int m = 0;
    int t[3] = {o->idle_timeout_ms, o->read_timeout_ms, o->write_timeout_ms};

    for (int i = 0; i < 3; i++)
        if (t[i] > 0 && (m == 0 || t[i] < m))
            m = t[i];
    return m;
}

/* A graceful end over a transport with a goodbye of its own (TLS's
 * close_notify) says it, unless a half-close already did. The caller
 * closes the socket next. */
void sb__conn_goodbye(sb_conn *c)
{
    if (c->tp->goodbye && !(c->flags & (F_ABORT | F_SHUT_DONE)))
        c->tp->goodbye(c->tp_state);
}

void sb__conn_close_err(sb_conn *c, int err, int graceful)
{
    if (sb__conn_foreign(c)) {
        pthread_mutex_lock(&c->blk->lock);
        if (!c->blk->xclosed)
            sb__blk_request_close(c, err, graceful);
        pthread_mutex_unlock(&c->blk->lock);
        return;
    }
    conn_mark_close(c, err, graceful);
    sb__conn_kick(c);
}

int sb__conn_tls_done(const sb_conn *c)
{
    if (c->tp->deadline == NULL)
        return 0;
    return c->tp->deadline(c->tp_state) == INT64_MAX ? 1 : -1;
}

/* Bytes the peer sent that no read has taken yet: in the socket, or held
 * by the transport (TLS records decrypted ahead). They were sent before
 * our FIN: a request among them must be read and answered, not lost to a
 * close. (A TLS close_notify counts too; the read then finds the end.) */
static int conn_unread(const sb_conn *c)
{
    int n = 0;

    if (sb__conn_tp_events(c) & SB__TP_HELD)
        return 1;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* Idle (nothing in `in`, a message delivered, nothing unread): close now.
 * Else finish the message under way (or the first one) and close after
 * its replies. */
void sb__conn_drain(sb_conn *c)
{
    if (sb_buf_len(&c->in) == 0 && (c->flags & F_GOTMSG) && !conn_unread(c))
        conn_mark_close(c, 0, 1);
    else
        c->flags |= F_DRAIN;
    sb__conn_kick(c);
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
    sb__conn_kick(c);
}

void sb_conn_pause(sb_conn *c)
{
    c->flags |= F_PAUSED;
    sb__conn_kick(c);
}

void sb_conn_resume(sb_conn *c)
{
    if (!(c->flags & F_PAUSED))
        return;
    c->flags &= ~F_PAUSED;
    if (sb_buf_len(&c->in) > 0)
        c->flags |= F_DELIVER;
    sb__conn_kick(c);
}

/* ------------------------------------------------------------------ */
/* Lists, accessors, peer                                              */

void sb__conn_list_add(sb__link *head, sb_conn *c)
{
    sb__link_add(head, &c->link);
}

void sb__conn_list_del(sb_conn *c)
{
    sb__link_del(&c->link);
}

void sb__conn_list_walk(sb__link *head, void (*cb)(sb_conn *c, void *ud), void *ud)
{
    for (sb__link *n = head->next, *next; n != head; n = next) {
        next = n->next;
        cb(SB__CONTAINER(n, sb_conn, link), ud);
    }
}

size_t sb_conn_walk(sb_loop *l, void (*cb)(sb_conn *c, void *ud), void *ud)
{
    sb__link *head = sb__loop_conns(l);
    size_t count = 0;

    /* next is taken before cb runs: a close only marks the connection (it
     * leaves the list later, from the loop), but take no chances. */
    for (sb__link *n = head->next, *next; n != head; n = next) {
        sb_conn *c = SB__CONTAINER(n, sb_conn, link);
        next = n->next;
        if (c->flags & F_CLOSED)
            continue;
        count++;
        if (cb)
            cb(c, ud);
    }
    return count;
}

void *sb_conn_data(const sb_conn *c) { return c->data; }
void sb_conn_set_data(sb_conn *c, void *data) { c->data = data; }
int sb_conn_fd(const sb_conn *c) { return c->fd; }
sb_loop *sb_conn_loop(const sb_conn *c) { return c->loop; }
const sb_conn_opts *sb_conn_options(const sb_conn *c) { return c->o; }
size_t sb_conn_queued(const sb_conn *c) { return c->queued; }

void sb__conn_set_transport(sb_conn *c, const sb__transport *tp, void *state)
{
    /* Another transport does its own reads and writes: readiness, which
     * the driver's next update sets up (nothing is in flight yet). */
    if (tp != &sb__transport_plain && c->op.busy == 0)
        c->flags &= ~F_RING;
    if (c->tp->free)
        c->tp->free(c->tp_state);
    c->tp = tp;
    c->tp_state = state;
}

/* The text of the address taken at open: made here, on first use, so an
 * idle connection that nobody asks about carries 20 bytes, not a string. */
const char *sb_conn_peer(sb_conn *c)
{
    union {
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } sa;
    socklen_t len;

    if (c->peer)
        return c->peer;
    memset(&sa, 0, sizeof(sa));
    if (c->addr.family == 4) {
        sa.in.sin_family = AF_INET;
        sa.in.sin_port = htons(c->addr.port);
        memcpy(&sa.in.sin_addr, c->addr.ip, 4);
        len = sizeof(sa.in);
    } else if (c->addr.family == 6) {
        sa.in6.sin6_family = AF_INET6;
        sa.in6.sin6_port = htons(c->addr.port);
        memcpy(&sa.in6.sin6_addr, c->addr.ip, 16);
        len = sizeof(sa.in6);
    } else {
        return c->addr.family == 'u' ? "unix:" : "?";
    }
    c->peer = sb__malloc(64);
    if (c->peer == NULL)
        return "?";
    if (sb_addr_format((struct sockaddr *)&sa, len, c->peer, 64) < 0)
        strcpy(c->peer, "?");
    return c->peer;
}
