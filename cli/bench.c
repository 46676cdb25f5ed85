/* bench: `switchboard bench`, a load generator on switchboard's own loop.
 *
 * Divisions: payloads (pattern, encode, verify); connections (read,
 * decode, check, refill, one write per readiness); the open-loop pacer
 * (--rate); workers (one thread and one loop each, timers for the measured
 * window and the drain); the main thread (barriers, live line, CPU
 * accounting). The options are bench_opts.c's, the report
 * bench_report.c's, the latency histogram hist.c's, the HTTP request and
 * response cutter bench_http.c's.
 *
 * Two kinds of server. ADDR: a server that echoes framed messages. Every
 * message carries a payload that differs per message and per connection (an
 * offset into a random alphanumeric pattern, with the first 8 bytes
 * replaced by the message's sequence number mixed with the connection's
 * number), so a reply that is misordered, crossed between connections,
 * truncated or corrupted is caught: every reply is compared byte for byte.
 * http://HOST:PORT/PATH: any HTTP/1.1 server, one GET repeated over
 * keep-alive; every response is cut by its Content-Length or chunked coding
 * and checked (a status other than 2xx, or a 2xx body whose length differs
 * from the first one's, is an error); a "Connection: close" answer costs a
 * reconnect, not an error. Either way replies come back in order, so the
 * send times of a connection are a FIFO (a ring of --pipeline entries
 * indexed by sequence number).
 *
 * Closed loop (the default): each connection keeps --pipeline messages in
 * flight, a new one sent as each reply arrives; latency runs from the send.
 * Open loop (--rate R): message k of a connection is due at a fixed time
 * (the connections share R evenly, their schedules staggered), is sent when
 * due if fewer than --pipeline are in flight (else as soon as a reply makes
 * room), and its latency runs from when it was due: a server that stalls
 * is charged for every message that should have gone out meanwhile, as wrk2
 * corrects for coordinated omission.
 *
 * Keeping the client lean: one recv() per readiness into the connection's
 * buffer (edge-triggered on epoll: read again next turn only when the
 * buffer filled or the server hung up), every whole reply decoded in
 * place, one new message queued per reply, and one send() of the whole
 * batch; with --threads 1 no thread is started at all (see run_solo); the
 * clock is read once per read and once per write. The client's own CPU time
 * per message (getrusage over the measured window) is part of the report,
 * so a reader can see whether the client or the server was the bottleneck.
 * Leaner still, --backend uring on a framed ADDR: the completion-based
 * engine of bench_uring.c drives the sockets (bench_int.h), and everything
 * above them - messages, checks, counters, pacer, window - stays here.
 *
 * --connect-only --hold S (the idle-connections workload): open --conns
 * connections, send one message on each, check the reply, print
 * "switchboard: bench: holding N connections for S s" on stderr, keep them
 * open and idle for S seconds, then close them and report.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "bench_int.h"
#include "bench_pace.h"

#define PATTERN_SLACK 251      /* payload offsets cycle through a prime */
#define SEQ_CHARS 8            /* the sequence number, 5 bits per char */
#define DRAIN_MS 2000          /* after the window: wait this long for replies */
#define CONNECT_TIMEOUT_MS 5000
#define SETTLE_TIMEOUT_S 60    /* --connect-only: all replies by then */
#define STALL_NS 10000000000LL /* -n: no reply for this long ends the run */
#define LIVE_NS 250000000LL    /* the live line: 4 redraws a second */
#define HTTP_IN_MIN 16384      /* HTTP: read buffer, larger than any head */

/* ---- payloads ------------------------------------------------------------- */


static const char seq_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static int make_pattern(struct bench *b)
{
    static const char alnum[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t n = b->o.size + PATTERN_SLACK;
    uint64_t x = 0x9E3779B97F4A7C15ULL;

    b->pattern = malloc(n);
    if (b->pattern == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        b->pattern[i] = (uint8_t)alnum[x % 62];
    }
    return sb_frame_check_payload(&b->spec, b->pattern, n);
}

/* The payload of message seq on connection id: the pattern from an offset
 * that cycles with seq, its first bytes replaced by seq ^ f(id). */
static void payload_seq(uint64_t id, uint64_t seq, uint8_t *p, size_t k)
{
    uint64_t v = seq ^ (id * 0x2545F4914F6CDD1DULL);

    for (size_t i = 0; i < k; i++, v >>= 5)
        p[i] = (uint8_t)seq_alphabet[v & 31];
}

static void payload_write(const struct bench *b, uint64_t id, uint64_t seq, uint8_t *p)
{
    size_t k = b->o.size < SEQ_CHARS ? b->o.size : SEQ_CHARS;

    memcpy(p, b->pattern + seq % PATTERN_SLACK, b->o.size);
    payload_seq(id, seq, p, k);
}

static int payload_check(const struct bench *b, uint64_t id, uint64_t seq, const sb_msg *m)
{
    size_t k = b->o.size < SEQ_CHARS ? b->o.size : SEQ_CHARS;
    uint8_t head[SEQ_CHARS];

    if (m->len != b->o.size)
        return -1;
    payload_seq(id, seq, head, k);
    if (memcmp(m->data, head, k) != 0)
        return -1;
    return memcmp(m->data + k, b->pattern + seq % PATTERN_SLACK + k, b->o.size - k) ? -1 : 0;
}

/* Parse the framing and precompute the header and trailer (every message
 * has the same length). Returns 0 or -1 after printing why. */
static int setup_frame(struct bench *b)
{
    int r = sb_frame_parse(b->o.frame, &b->spec);

    if (r < 0) {
        cli_error(b->o.frame, "%s", sb_strerror(r));
        return -1;
    }
    switch (b->spec.kind) {
    case SB_FRAME_RAW:
    case SB_FRAME_EOF:
    case SB_FRAME_CUSTOM:
        cli_error(b->o.frame, "bench needs a framing that marks where a message ends");
        return -1;
    case SB_FRAME_FIXED:
        if (!b->o.size_given)
            b->o.size = b->spec.n;
        break;
    case SB_FRAME_TYPED:
        b->type = -1;
        for (int t = 0; t < 256 && b->type < 0; t++)
            if (b->spec.typed[t] == b->o.size)
                b->type = t;
        if (b->type < 0) {
            cli_error(b->o.frame, "no type has a %zu-byte payload (see --size)", b->o.size);
            return -1;
        }
        break;
    default:
        break;
    }
    r = sb_frame_header(&b->spec, b->type, b->o.size, b->hdr);
    if (r < 0) {
        cli_error("--size", "%zu bytes under %s: %s", b->o.size, b->o.frame, sb_strerror(r));
        return -1;
    }
    b->hdr_len = (size_t)r;
    r = make_pattern(b);
    if (r < 0) {
        cli_error(b->o.frame, "the test payload would contain the delimiter: %s", sb_strerror(r));
        return -1;
    }
    /* Every payload is alphanumeric, so the pattern's trailer fits them all. */
    b->trl_len = (size_t)sb_frame_trailer(&b->spec, b->pattern, b->o.size, b->trl);
    b->framed = b->hdr_len + b->o.size + b->trl_len;
    return 0;
}


/* The URL, the address to dial and the request. Returns 0, or the exit
 * code after printing why: 2 for a URL that does not parse, 1 for one that
 * names what cannot be reached (https, a name with no address). */
static int setup_http(struct bench *b)
{
    char hostport[300];
    const char *why;
    int n, r;

    r = cli_url_parse(b->o.addr, &b->url, &why);
    if (r < 0) {
        cli_error(b->o.addr, "%s", why);
        return r == CLI_URL_SCHEME ? 1 : 2;
    }
    n = bench_http_request(&b->url, b->o.reconnect, b->req, sizeof b->req);
    if (n < 0) {
        cli_error(b->o.addr, "URL too long");
        return 2;
    }
    b->framed = (size_t)n;
    atomic_store(&b->http_len, UINT64_MAX);
    snprintf(hostport, sizeof hostport, b->url.v6 ? "[%s]:%s" : "%s:%s", b->url.host,
             b->url.port);
    r = sb_addr_resolve(hostport, 0, &b->addr, 1);
    if (r < 0) {
        cli_error(b->o.addr, "%s", sb_strerror(r));
        return r == SB_ENOHOST ? 1 : 2;
    }
    return 0;
}

/* ---- connections ---------------------------------------------------------- */

static void on_io(sb_loop *l, int fd, int events, void *ud);

static int64_t ms_until(int64_t ns)
{
    int64_t d = ns - sb_now_ns();
    return d > 0 ? (d + 999999) / 1000000 : 0;
}

static void settle(struct bconn *c)
{
    if (c->w->b->o.connect_only && !c->settled) {
        c->settled = 1;
        atomic_fetch_add(&c->w->b->settled, 1);
    }
}

/* Close the socket (TLS: close_notify first); the slot stays. */
static void conn_drop(struct bconn *c)
{
    if (c->fd < 0)
        return;
    if (c->w->u)
        bench_uring_close(c);
    else
        sb_loop_watch(c->w->loop, c->fd, 0, NULL, NULL);
    sb_tls_session_free(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
    c->hs = 0;
}

/* The slot is done: no more connections from it. */
static void slot_done(struct bconn *c)
{
    struct worker *w = c->w;

    settle(c);
    if (--w->open == 0 && !w->b->o.connect_only)
        sb_loop_stop(w->loop);
}

static void conn_close(struct bconn *c)
{
    if (c->fd < 0)
        return;
    conn_drop(c);
    slot_done(c);
}

static void conn_fail(struct bconn *c, uint64_t *counter)
{
    (*counter)++;
    conn_close(c);
}

void bench_conn_fail(struct bconn *c, uint64_t *counter)
{
    conn_fail(c, counter);
}

/* The loop engine's watch; the uring engine keeps its receive armed. */
static void conn_watch(struct bconn *c, int mask)
{
    if (c->w->u == NULL && mask != c->mask &&
        sb_loop_watch(c->w->loop, c->fd, mask, on_io, c) == 0)
        c->mask = mask;
}

/* When message seq was sent (closed loop: now) or due (--rate). */
static int64_t conn_stamp(const struct bconn *c, uint64_t seq, int64_t now)
{
    const struct bench *b = c->w->b;

    return b->o.rate > 0 ? c->t0 + (int64_t)((double)seq * b->interval_ns) : now;
}

static void put_message(const struct bench *b, const struct bconn *c, uint8_t *p)
{
    if (b->o.http) {
        memcpy(p, b->req, b->framed);
        return;
    }
    memcpy(p, b->hdr, b->hdr_len);
    payload_write(b, c->id, c->sent, p + b->hdr_len);
    memcpy(p + b->hdr_len + b->o.size, b->trl, b->trl_len);
}

/* Append up to n messages to the output (no more than the quota). The
 * output never needs more than out_cap: unwritten bytes belong to messages
 * in flight, and no more than --pipeline are. While the uring engine has a
 * send in flight its bytes stay where they are (the kernel reads them),
 * so the messages are owed until it completes. */
static void conn_queue(struct bconn *c, uint64_t n, int64_t now)
{
    const struct bench *b = c->w->b;
    uint64_t pipe = (uint64_t)b->o.pipeline;

    if (n > c->quota - c->sent)
        n = c->quota - c->sent;
    if (c->u_sending) {
        c->u_owed += n;
        return;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + n * b->framed > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        put_message(b, c, c->out + c->out_len);
        c->out_len += b->framed;
        c->ts[c->sent % pipe] = conn_stamp(c, c->sent, now);
        c->sent++;
    }
    c->w->k.sent += n;
}

/* As conn_refill would have: nothing new after the window, and a
 * connection with nothing in flight then is drained. */
void bench_conn_queue_owed(struct bconn *c, int64_t now)
{
    uint64_t n = c->u_owed;

    c->u_owed = 0;
    if (c->w->phase == PH_RUN && now < c->w->b->end_ns)
        conn_queue(c, n, now);
    else if (c->done == c->sent)
        conn_close(c);
}

/* One send() of everything queued; watch for writability if some is left.
 * The uring engine sends at the end of the turn. */
static void conn_flush(struct bconn *c)
{
    ssize_t r;

    if (c->hs)
        return; /* the request goes when the handshake is done */
    if (c->w->u) {
        bench_uring_flush(c);
        return;
    }
    if (c->out_off < c->out_len) {
        if (c->tls) {
            r = sb_tls_write(c->tls, c->out + c->out_off, c->out_len - c->out_off);
            if (r < 0)
                errno = r == -EAGAIN ? EAGAIN : EIO;
        } else {
            r = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            conn_fail(c, &c->w->k.e_io);
            return;
        }
        if (r > 0)
            c->out_off += (size_t)r;
    }
    conn_watch(c, SB_EDGE | (c->out_off < c->out_len ? SB_READABLE | SB_WRITABLE : SB_READABLE));
}

/* A checked reply: its latency, counted if inside the window. */
static void record(struct worker *w, int64_t sent_ns, int64_t now)
{
    uint64_t lat = now > sent_ns ? (uint64_t)(now - sent_ns) : 0;

    w->k.received++;
    w->last_ns = now;
    if (now >= w->b->begin_ns && now < w->b->end_ns) {
        hist_add(&w->hist, lat);
        w->k.messages++;
    }
    if (w->b->o.live) {
        hist_add(&w->live, lat);
        atomic_store_explicit(&w->pub_received, w->k.received, memory_order_relaxed);
    }
}

/* Drop the first off bytes of the input. */
static void conn_consume(struct bconn *c, size_t off)
{
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

/* Cut, check and count every whole echoed reply in p[0, len), *used set
 * to the bytes they took; returns how many, or -1 after closing the
 * connection. */
static long conn_decode_at(struct bconn *c, const uint8_t *p, size_t len, int64_t now,
                           size_t *used)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;
    size_t off = 0;
    long n = 0;
    sb_msg m;
    ssize_t r;

    while ((r = sb_frame_decode(&b->spec, b->o.size, p + off, len - off, 0, &m)) > 0) {
        w->k.cut++;
        if (c->done == c->sent || payload_check(b, c->id, c->done, &m) < 0) {
            conn_fail(c, &w->k.e_mismatch);
            return -1;
        }
        record(w, c->ts[c->done % (uint64_t)b->o.pipeline], now);
        c->done++;
        off += (size_t)r;
        n++;
    }
    if (r < 0) {
        conn_fail(c, r == SB_ETOOBIG ? &w->k.e_mismatch : &w->k.e_decode);
        return -1;
    }
    *used = off;
    return n;
}

/* conn_decode_at over the input, the replies consumed from it. */
static long conn_decode(struct bconn *c, int64_t now)
{
    size_t used = 0;
    long n = conn_decode_at(c, c->in, c->in_len, now, &used);

    if (n >= 0)
        conn_consume(c, used);
    return n;
}

/* An HTTP response is whole: its status, and a 2xx body's length against
 * the first 2xx body's (any thread's). */
static void http_check(struct worker *w, const struct hcut *h)
{
    uint64_t want;

    w->k.status[h->status]++;
    if (h->status < 200 || h->status > 299) {
        w->k.e_status++;
        return;
    }
    want = atomic_load_explicit(&w->b->http_len, memory_order_relaxed);
    if (want == UINT64_MAX && atomic_compare_exchange_strong(&w->b->http_len, &want, h->body))
        return;
    if (want != h->body)
        w->k.e_length++;
}

/* Cut and check every whole response in the input; returns how many, or
 * -1 after closing the connection. After a "Connection: close" answer the
 * rest of the input is left alone and c->closing is set. */
static long conn_decode_http(struct bconn *c, int64_t now)
{
    struct worker *w = c->w;
    size_t off = 0, used;
    long n = 0;
    int r;

    while ((r = hcut_feed(&c->hc, c->in + off, c->in_len - off, &used)) > 0) {
        off += used;
        w->k.cut++;
        if (c->done == c->sent) { /* an answer to nothing we asked */
            conn_fail(c, &w->k.e_decode);
            return -1;
        }
        http_check(w, &c->hc);
        record(w, c->ts[c->done % (uint64_t)w->b->o.pipeline], now);
        c->done++;
        n++;
        if (!c->hc.keep_alive) {
            c->closing = 1;
            break;
        }
    }
    if (r < 0) {
        conn_fail(c, &w->k.e_decode);
        return -1;
    }
    if (r == 0)
        off += used;
    conn_consume(c, off);
    return n;
}

/* Returns 0 with *got bytes read, 1 when there was nothing to read, -1
 * after closing the connection. */
static int conn_read(struct bconn *c, size_t *got)
{
    ssize_t r;

    if (c->in_len == c->in_cap) { /* a reply (or head) bigger than we planned for */
        uint8_t *p = realloc(c->in, c->in_cap * 2);
        if (p == NULL) {
            conn_fail(c, &c->w->k.e_io);
            return -1;
        }
        c->in = p;
        c->in_cap *= 2;
    }
    /* TLS: a read fills the buffer from every record there is, so a short
     * one has drained the socket, as recv's does. After the handshake
     * (made in dial) the engine wants nothing of the socket but what the
     * read or write at hand waits for. */
    if (c->tls) {
        r = sb_tls_read(c->tls, c->in + c->in_len, c->in_cap - c->in_len);
        if (r < 0)
            errno = r == -EAGAIN ? EAGAIN : EIO;
    } else {
        r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
    }
    if (r > 0) {
        c->in_len += (size_t)r;
        *got = (size_t)r;
        return 0;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 1;
    conn_fail(c, r == 0 ? &c->w->k.e_closed : &c->w->k.e_io);
    return -1;
}

/* A blocking dial (loopback connects complete in the kernel's handshake,
 * whether or not the server has accepted yet), then non-blocking. */
static int dial(struct bench *b, sb_tls_session **tls)
{
    int fd = sb_dial_addr(&b->addr, CONNECT_TIMEOUT_MS);
    char why[256];
    int r;

    *tls = NULL;
    if (fd >= 0 && sb_set_nonblock(fd, 1) < 0) {
        close(fd);
        return -EIO;
    }
    if (fd < 0 || b->tls == NULL)
        return fd;
    /* The handshake, blocking (bounded): the run measures the exchange. */
    r = sb_tls_connect(tls, b->tls, fd, b->tls_host, sb_now_ms() + CONNECT_TIMEOUT_MS, why,
                       sizeof why);
    if (r < 0) {
        if (atomic_exchange(&b->tls_told, 1) == 0)
            cli_error(b->o.addr, "TLS handshake: %s", why);
        close(fd);
        return r;
    }
    return fd;
}

/* ---- the open-loop pacer (--rate) --------------------------------------- */

/* Send what is due by now, as far as --pipeline allows. */
static void rate_pump(struct bconn *c, int64_t now)
{
    const struct bench *b = c->w->b;
    uint64_t due, room = (uint64_t)b->o.pipeline - (c->sent - c->done);

    if (now < c->t0 || c->fd < 0)
        return;
    due = (uint64_t)((double)(now - c->t0) / b->interval_ns) + 1;
    if (due > c->quota)
        due = c->quota;
    if (due > c->sent && room > 0) {
        conn_queue(c, due - c->sent < room ? due - c->sent : room, now);
        conn_flush(c);
    }
}

/* When c's next message is due; INT64_MAX while it waits for a reply to
 * make room (the reply pumps it) or has sent its share. */
static int64_t rate_next(const struct bconn *c)
{
    const struct bench *b = c->w->b;

    if (c->fd < 0 || c->sent >= c->quota || c->sent - c->done >= (uint64_t)b->o.pipeline)
        return INT64_MAX;
    return conn_stamp(c, c->sent, 0);
}

/* The pacer fires at the earliest due time of the worker's connections:
 * on the nanosecond clock of bench_pace.h, or else on the loop's
 * millisecond timers (then up to a millisecond of the client's slack is in
 * each latency, as in wrk2). A firing with nothing due is harmless. */
static void pace_arm(struct worker *w, int64_t at)
{
    w->pace_at = at;
    if (w->u) /* the engine's wait ends at pace_at (bench_worker_due) */
        return;
    if (w->pace_fd >= 0) {
        if (at != INT64_MAX)
            bench_pace_arm(w->pace_fd, at);
    } else if (at == INT64_MAX) {
        sb_timer_stop(w->loop, &w->pace);
    } else {
        sb_timer_start(w->loop, &w->pace, ms_until(at));
    }
}

static void pace_run(struct worker *w)
{
    int64_t now = sb_now_ns(), next = INT64_MAX;

    if (w->phase != PH_RUN || now >= w->b->end_ns)
        return;
    for (long i = 0; i < w->nconns; i++) {
        int64_t at;
        rate_pump(&w->c[i], now);
        at = rate_next(&w->c[i]);
        if (at < next)
            next = at;
    }
    pace_arm(w, next);
}

static void on_pace(sb_loop *l, sb_timer *t)
{
    (void)l;
    pace_run(t->data);
}

static void on_pace_io(sb_loop *l, int fd, int events, void *ud)
{
    (void)l, (void)events;
    bench_pace_ack(fd);
    pace_run(ud);
}

/* ---- after the replies ---------------------------------------------------- */

/* HTTP: the server closes after this response. Dial again and send anew
 * what it left unanswered (their place in the schedule kept, --rate). */
static void conn_reconnect(struct bconn *c, int64_t now)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;
    sb_tls_session *tls;
    int fd;

    if (w->phase != PH_RUN || now >= b->end_ns || c->done == c->quota) {
        conn_close(c);
        return;
    }
    fd = dial(w->b, &tls);
    if (fd < 0) {
        conn_fail(c, &w->k.e_connect);
        return;
    }
    sb_loop_watch(w->loop, c->fd, 0, NULL, NULL);
    sb_tls_session_free(c->tls);
    c->tls = tls;
    close(c->fd);
    w->k.reconnects++;
    w->k.handshakes += tls != NULL;
    c->fd = fd;
    c->mask = 0;
    c->closing = 0;
    c->in_len = c->out_off = c->out_len = 0;
    memset(&c->hc, 0, sizeof c->hc);
    c->sent = c->done;
    conn_watch(c, SB_EDGE | SB_READABLE);
    if (b->o.rate > 0) {
        rate_pump(c, now);
        if (rate_next(c) < w->pace_at)
            pace_arm(w, rate_next(c));
    } else {
        conn_queue(c, (uint64_t)b->o.pipeline, now);
        conn_flush(c);
    }
}

/* ---- --reconnect: a connection per message -------------------------------- */

/* A handshake failed: the reason once per run; the slot ends (the next
 * handshake would fail the same way). */
static void tls_failed(struct bconn *c, const char *why)
{
    struct bench *b = c->w->b;

    if (atomic_exchange(&b->tls_told, 1) == 0)
        cli_error(b->o.addr, "TLS handshake: %s", why);
    conn_fail(c, &c->w->k.e_tls);
}

/* One step of c's handshake; when it is done, the message goes. */
static void conn_handshake(struct bconn *c)
{
    struct worker *w = c->w;
    char why[256];
    int want = 0;
    int r = sb_tls_handshake(c->tls, &want, why, sizeof why);

    if (r == -EAGAIN) {
        conn_watch(c, SB_EDGE | want);
        return;
    }
    if (r < 0) {
        tls_failed(c, why);
        return;
    }
    c->hs = 0;
    w->k.handshakes++;
    w->k.resumed += (uint64_t)sb_tls_session_resumed(c->tls);
    /* The server's whole flight was read (sb_tls_handshake): nothing is
     * held that an edge would not announce. */
    conn_flush(c);
}

/* A new connection for c's next message, its latency running from now:
 * dial, start the handshake (TLS: the ClientHello goes now, offering the
 * slot's ticket with --tls-resume), queue the message. The socket stays
 * blocking as sb_dial_addr returns it: every read and write on it passes
 * MSG_DONTWAIT (the TLS engine's too), so it need not be made
 * non-blocking again. */
static void conn_begin(struct bconn *c, int64_t now)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;
    char why[256];
    int r, fd = sb_dial_addr(&b->addr, CONNECT_TIMEOUT_MS);

    if (fd < 0) {
        w->k.e_connect++;
        slot_done(c);
        return;
    }
    w->k.connected++;
    c->fd = fd;
    c->mask = 0;
    c->closing = 0;
    c->in_len = c->out_off = c->out_len = 0;
    memset(&c->hc, 0, sizeof c->hc);
    conn_queue(c, 1, now);
    if (b->tls) {
        r = sb_tls_session_new(&c->tls, b->tls, fd, b->tls_host, c->ticket, why, sizeof why);
        if (r < 0) {
            tls_failed(c, why);
            return;
        }
        c->hs = 1;
        conn_handshake(c);
        return;
    }
    conn_flush(c);
}

/* c's message is answered: keep the server's latest ticket (--tls-resume),
 * close, and begin the next connection while the run lasts. */
static void conn_next(struct bconn *c, int64_t now)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;

    if (b->o.tls_resume && c->tls) {
        sb_tls_ticket *k = sb_tls_session_ticket(c->tls);
        if (k) {
            sb_tls_ticket_free(c->ticket);
            c->ticket = k;
        }
    }
    conn_drop(c);
    if (w->phase == PH_RUN && now < b->end_ns && c->done < c->quota)
        conn_begin(c, sb_now_ns());
    else
        slot_done(c);
}

/* n replies came in on c: send the next messages, or finish. */
static void conn_refill(struct bconn *c, long n, int64_t now)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;

    if (b->o.reconnect) {
        conn_next(c, now);
    } else if (c->closing) {
        conn_reconnect(c, now);
    } else if (c->done == c->quota) {
        conn_close(c);
    } else if (w->phase == PH_RUN && now < b->end_ns) {
        if (b->o.rate > 0) {
            rate_pump(c, now);
            if (rate_next(c) < w->pace_at)
                pace_arm(w, rate_next(c));
        } else {
            conn_queue(c, (uint64_t)n, sb_now_ns());
            conn_flush(c);
        }
    } else if (c->done == c->sent) {
        conn_close(c); /* drained */
    }
}

/* Returns 1 when bytes may be left unread (see on_io). */
static int on_readable(struct bconn *c, int events)
{
    struct worker *w = c->w;
    size_t got = 0;
    long n;
    int64_t now;
    int more;

    if (conn_read(c, &got) != 0)
        return 0;
    more = c->in_len == c->in_cap || (events & SB_HUP);
    now = sb_now_ns();
    w->k.bytes_in += got;
    if (now >= w->b->begin_ns && now < w->b->end_ns)
        w->k.bytes_win += got;
    n = w->b->o.http ? conn_decode_http(c, now) : conn_decode(c, now);
    if (n <= 0)
        return n == 0 ? more : 0;
    if (w->b->o.connect_only) {
        settle(c);
        return more;
    }
    conn_refill(c, n, now);
    /* --reconnect: c->fd is now another connection, which has seen nothing */
    return c->fd >= 0 && more && !c->closing && !w->b->o.reconnect;
}

/* Room for need bytes of input. Returns 0 or -1 after closing c. */
static int conn_input_room(struct bconn *c, size_t need)
{
    size_t cap = c->in_cap;
    uint8_t *p;

    if (need <= cap)
        return 0;
    while (cap < need)
        cap *= 2;
    p = realloc(c->in, cap);
    if (p == NULL) {
        conn_fail(c, &c->w->k.e_io);
        return -1;
    }
    c->in = p;
    c->in_cap = cap;
    return 0;
}

void bench_conn_input(struct bconn *c, const uint8_t *p, size_t len, int64_t now)
{
    struct worker *w = c->w;
    size_t used = 0;
    long n;

    w->k.bytes_in += len;
    if (now >= w->b->begin_ns && now < w->b->end_ns)
        w->k.bytes_win += len;
    if (c->in_len == 0) { /* the usual case: whole replies, decoded where they landed */
        n = conn_decode_at(c, p, len, now, &used);
        if (n < 0 || conn_input_room(c, len - used) < 0)
            return;
        memcpy(c->in, p + used, len - used);
        c->in_len = len - used;
    } else {
        if (conn_input_room(c, c->in_len + len) < 0)
            return;
        memcpy(c->in + c->in_len, p, len);
        c->in_len += len;
        n = conn_decode(c, now);
        if (n < 0)
            return;
    }
    if (n > 0)
        conn_refill(c, n, now);
}

/* The connections are edge-triggered where the loop can be (SB_EDGE): a
 * read that filled the buffer, or the server's hangup with bytes perhaps
 * still queued before it, asks for another turn; a short read has emptied
 * the socket, and anything that arrives later is a new edge. */
static void on_io(sb_loop *l, int fd, int events, void *ud)
{
    struct bconn *c = ud;
    int more = 0;

    if (c->hs) {
        conn_handshake(c);
        return;
    }
    if (events & (SB_READABLE | SB_ERROR))
        more = on_readable(c, events);
    if (c->fd == fd && (events & SB_WRITABLE))
        conn_flush(c);
    if (more && c->fd == fd)
        sb_loop_again(l, fd, SB_READABLE);
}

/* The buffers, for the connection's whole life (--reconnect: the slot's). */
static int conn_alloc(struct bconn *c)
{
    const struct bench *b = c->w->b;
    long pipe = b->o.connect_only ? 1 : b->o.pipeline;
    size_t in_min = b->o.http ? HTTP_IN_MIN : 4096;

    c->in_cap = b->framed * (size_t)pipe < in_min ? in_min : b->framed * (size_t)pipe;
    c->out_cap = b->framed * (size_t)pipe;
    c->in = malloc(c->in_cap);
    c->out = malloc(c->out_cap);
    c->ts = malloc(sizeof *c->ts * (size_t)b->o.pipeline);
    return c->in == NULL || c->out == NULL || c->ts == NULL ? -ENOMEM : 0;
}

/* Dial and allocate the buffers. */
static int conn_open(struct bconn *c)
{
    sb_tls_session *tls;
    int fd = dial(c->w->b, &tls);

    c->fd = -1;
    c->tls = NULL;
    if (fd < 0)
        return fd;
    if (conn_alloc(c) < 0) {
        sb_tls_session_free(tls);
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    c->tls = tls;
    c->w->k.handshakes += tls != NULL;
    return 0;
}

/* ---- workers -------------------------------------------------------------- */

static void worker_publish(struct worker *w)
{
    atomic_store(&w->pub_received, w->k.received);
    atomic_store(&w->pub_p99, hist_quantile(&w->live, 0.99));
    atomic_store(&w->pub_errors, errors_of(&w->k));
    hist_reset(&w->live);
}

static void on_tick(sb_loop *l, sb_timer *t)
{
    worker_publish(t->data);
    sb_timer_start(l, t, LIVE_NS / 1000000);
}

/* Give up on what is still in flight: count it unanswered and stop. */
static void worker_give_up(struct worker *w)
{
    for (long i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->c[i];
        if (c->fd >= 0) {
            w->k.e_unanswered += c->sent - c->done;
            conn_close(c);
        }
    }
    sb_loop_stop(w->loop);
}

static void on_drain(sb_loop *l, sb_timer *t)
{
    (void)l;
    worker_give_up(t->data);
}

/* -n: the run ends when every share is answered; this ends it when
 * messages are in flight and no reply has come for STALL_NS. */
static void on_watch(sb_loop *l, sb_timer *t)
{
    struct worker *w = t->data;
    int64_t now = sb_now_ns();
    uint64_t inflight = 0;

    for (long i = 0; i < w->nconns; i++)
        if (w->c[i].fd >= 0)
            inflight += w->c[i].sent - w->c[i].done;
    if (w->k.received != w->watch_seen || inflight == 0) {
        w->watch_seen = w->k.received;
        w->watch_at = now;
    } else if (now - w->watch_at >= STALL_NS) {
        worker_give_up(w);
        return;
    }
    sb_timer_start(l, t, 1000);
}

static void solo_window_end(struct solo *so);

/* The window is over: no new messages; close the idle connections and
 * give the rest DRAIN_MS to answer what is in flight. */
static void on_stop(sb_loop *l, sb_timer *t)
{
    struct worker *w = t->data;

    if (w->solo)
        solo_window_end(w->solo);
    w->phase = PH_DRAIN;
    sb_timer_stop(l, &w->pace);
    for (long i = 0; i < w->nconns; i++)
        if (w->c[i].fd >= 0 && w->c[i].done == w->c[i].sent)
            conn_close(&w->c[i]);
    if (w->open > 0)
        sb_timer_start(l, &w->drain, DRAIN_MS);
}

static void worker_close(struct worker *w);

/* --reconnect dials in the run (worker_start), each connection timed. */
static void worker_dial(struct worker *w)
{
    for (long i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->c[i];
        int r = w->b->o.reconnect ? conn_alloc(c) : conn_open(c);

        if (r < 0 && w->b->o.reconnect) {
            w->k.e_io++;
            continue;
        }
        if (w->b->o.reconnect) {
            w->open++;
            continue;
        }

        if (r < 0) {
            w->k.e_connect++;
            settle(c);
            continue;
        }
        w->open++;
        w->k.connected++;
    }
    if (w->b->uring && w->open > 0) { /* on this thread: the ring takes its submissions */
        int r = bench_uring_open(w);
        if (r < 0) {
            w->err = r;
            worker_close(w);
            w->open = 0;
        }
    }
}

/* The first messages (closed loop: --pipeline each; --rate: the pacer's),
 * and the timers. */
static void worker_start(struct worker *w)
{
    const struct bench *b = w->b;
    int64_t now = sb_now_ns();
    uint64_t first = b->o.connect_only ? 1 : (uint64_t)b->o.pipeline;

    for (long i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->c[i];
        if (b->o.reconnect && c->in != NULL)
            conn_begin(c, sb_now_ns());
        if (c->fd < 0 || b->o.reconnect)
            continue;
        c->mask = 0;
        c->t0 = b->start_ns + (int64_t)((double)c->id * b->interval_ns / (double)b->o.conns);
        if (b->o.rate > 0) {
            conn_watch(c, SB_EDGE | SB_READABLE);
        } else {
            conn_queue(c, first, now);
            conn_flush(c);
        }
    }
    if (b->o.rate > 0) {
        if (w->pace_fd >= 0 && sb_loop_watch(w->loop, w->pace_fd, SB_READABLE, on_pace_io, w) < 0) {
            close(w->pace_fd);
            w->pace_fd = -1;
        }
        pace_arm(w, b->start_ns);
    }
    if (!b->o.connect_only && b->end_ns != INT64_MAX)
        sb_timer_start(w->loop, &w->stop, ms_until(b->end_ns));
    if (b->o.count) {
        w->watch_at = now;
        sb_timer_start(w->loop, &w->watch, 1000);
    }
    if (b->o.live && w->solo == NULL) /* solo: on_solo publishes before each line */
        sb_timer_start(w->loop, &w->tick, LIVE_NS / 1000000);
}

static void worker_close(struct worker *w)
{
    for (long i = 0; i < w->nconns; i++) {
        if (w->c[i].fd >= 0) {
            if (w->u)
                bench_uring_close(&w->c[i]);
            sb_tls_session_free(w->c[i].tls);
            w->c[i].tls = NULL;
            close(w->c[i].fd);
            w->c[i].fd = -1;
        }
    }
}

/* The connections until they are done, on the loop or the uring engine. */
static int worker_run(struct worker *w)
{
    return w->u ? bench_uring_run(w) : sb_loop_run(w->loop);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    worker_dial(w);
    pthread_barrier_wait(&w->b->dialed);
    pthread_barrier_wait(&w->b->go); /* the main thread has set the window */
    worker_start(w);
    if (w->open > 0 || w->b->o.connect_only)
        w->err = worker_run(w);
    worker_close(w);
    atomic_store(&w->finished, 1);
    return NULL;
}

/* -n: connection id's share of the messages. */
static uint64_t quota_of(const struct bench *b, uint64_t id)
{
    uint64_t n = (uint64_t)b->o.count, conns = (uint64_t)b->o.conns;

    if (n == 0)
        return UINT64_MAX;
    return n / conns + (id < n % conns);
}

static int worker_init(struct worker *w, struct bench *b, int index, long first_id, long n)
{
    memset(w, 0, sizeof *w);
    w->b = b;
    w->index = index;
    w->nconns = n;
    w->pace_at = INT64_MAX;
    w->pace_fd = b->o.rate > 0 && !b->uring ? bench_pace_open() : -1;
    if (w->pace_fd < 0)
        w->pace_fd = -1;
    hist_reset(&w->hist);
    hist_reset(&w->live);
    sb_timer_init(&w->stop, on_stop, w);
    sb_timer_init(&w->drain, on_drain, w);
    sb_timer_init(&w->tick, on_tick, w);
    sb_timer_init(&w->pace, on_pace, w);
    sb_timer_init(&w->watch, on_watch, w);
    w->c = calloc((size_t)n, sizeof *w->c);
    if (w->c == NULL)
        return -ENOMEM;
    for (long i = 0; i < n; i++) {
        w->c[i].w = w;
        w->c[i].fd = -1;
        w->c[i].id = (uint64_t)(first_id + i);
        w->c[i].quota = quota_of(b, w->c[i].id);
    }
    /* The uring engine keeps only its timers on the loop. */
    return sb_loop_new(&w->loop, b->uring ? NULL : b->o.backend);
}

static void worker_free(struct worker *w)
{
    bench_uring_free(w); /* first: the ring's operations point into the buffers */
    for (long i = 0; w->c && i < w->nconns; i++) {
        sb_tls_ticket_free(w->c[i].ticket);
        free(w->c[i].in);
        free(w->c[i].out);
        free(w->c[i].ts);
    }
    free(w->c);
    if (w->pace_fd >= 0) {
        if (w->loop)
            sb_loop_watch(w->loop, w->pace_fd, 0, NULL, NULL);
        close(w->pace_fd);
    }
    if (w->loop)
        sb_loop_free(w->loop);
}

/* ---- the main thread ---------------------------------------------------- */

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_until(int64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* The live line's memory: the last redraw's time and reply count. */
struct live {
    int64_t t;
    uint64_t n;
};

/* Redraw the status line in place on the terminal (stderr): the rate
 * since the last redraw, the worst thread's p99 over its last tick, the
 * errors so far, the time since the start. */
static void live_line(const struct bench *b, struct worker *ws, long nw, struct live *lv,
                      int64_t now)
{
    uint64_t n = 0, p99 = 0, errs = 0;
    double dt = (double)(now - lv->t) / 1e9;
    const char *phase = now < b->begin_ns ? "warmup" : now < b->end_ns ? "run" : "drain";

    for (long i = 0; i < nw; i++) {
        uint64_t p = atomic_load(&ws[i].pub_p99);
        n += atomic_load(&ws[i].pub_received);
        errs += atomic_load(&ws[i].pub_errors);
        if (p > p99)
            p99 = p;
    }
    fprintf(stderr, "\r\033[K  %6.2f s  %-6s %10.0f %s/s  p99 %9.1f us  errors %llu",
            (double)(now - b->start_ns) / 1e9, phase,
            dt > 0 ? (double)(n - lv->n) / dt : 0.0, b->o.http ? "req" : "msgs",
            (double)p99 / 1e3, (unsigned long long)errs);
    if (b->o.count)
        fprintf(stderr, "  %llu/%ld", (unsigned long long)n, b->o.count);
    lv->t = now;
    lv->n = n;
}

/* The measured window: warmup from start, then duration; -n: from start
 * until every reply is in (or --duration as a limit); --connect-only:
 * every reply, from start on. */
static void set_window(struct bench *b, int64_t start)
{
    b->start_ns = start;
    b->begin_ns = start + (int64_t)(b->o.warmup * 1e9);
    b->end_ns = b->begin_ns + (int64_t)(b->o.duration * 1e9);
    if (b->o.count && !b->o.duration_given)
        b->end_ns = INT64_MAX;
    if (b->o.connect_only) {
        b->begin_ns = start;
        b->end_ns = INT64_MAX;
    }
}

/* An edge of the window (0 begins, 1 ends): the CPU sample, and the mark
 * for scripts that sample the server over the same window. */
static void window_edge(const struct bench *b, double *cpu, int end)
{
    cpu[end] = cpu_seconds();
    if (b->o.marks)
        fputs(end ? "switchboard: bench: window ends\n" : "switchboard: bench: window begins\n",
              stderr);
}

static int all_finished(struct worker *ws, long nw)
{
    for (long i = 0; i < nw; i++)
        if (!atomic_load(&ws[i].finished))
            return 0;
    return 1;
}

/* Through warmup, window and drain: the CPU samples at the window's edges
 * (the end: its time, or the last worker done), the live line. */
static void supervise_load(struct bench *b, struct worker *ws, long nw, double *cpu)
{
    struct live lv = {b->start_ns, 0};
    int64_t next = b->start_ns + LIVE_NS;
    int stage = 0;

    for (;;) {
        int64_t now = sb_now_ns(), due = now + LIVE_NS;
        int done = all_finished(ws, nw);

        if (stage == 0 && (now >= b->begin_ns || done))
            window_edge(b, cpu, 0), stage = 1;
        if (stage == 1 && (now >= b->end_ns || done))
            window_edge(b, cpu, 1), stage = 2;
        if (done)
            return;
        if (b->o.live && now >= next) {
            live_line(b, ws, nw, &lv, now);
            while (next <= now)
                next += LIVE_NS;
        }
        if (b->o.live && next < due)
            due = next;
        if (stage == 0 && b->begin_ns < due)
            due = b->begin_ns;
        if (stage == 1 && b->end_ns < due)
            due = b->end_ns;
        sleep_until(due);
    }
}

/* --connect-only: wait for every connection's reply, announce, hold. */
static void supervise_hold(struct bench *b, struct worker *ws, long nw, uint64_t connected)
{
    int64_t deadline = sb_now_ns() + (int64_t)SETTLE_TIMEOUT_S * 1000000000;

    while (atomic_load(&b->settled) < b->o.conns && sb_now_ns() < deadline)
        sleep_until(sb_now_ns() + 10000000);
    fprintf(stderr, "switchboard: bench: holding %llu connections for %g s\n",
            (unsigned long long)connected, b->o.hold);
    sleep_until(sb_now_ns() + (int64_t)(b->o.hold * 1e9));
    for (long i = 0; i < nw; i++)
        sb_loop_stop_async(ws[i].loop);
}

/* ---- the run ------------------------------------------------------------- */

/* Enough descriptors for every connection plus a margin, if allowed. */
static void raise_nofile(long conns)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* One worker on the main thread's own loop (--threads 1, a load run): the
 * supervisor's steps - live lines, the CPU samples and marks at the
 * window's edges - become a timer of that loop. The process then never
 * starts a thread, and libc's recv, send and epoll_wait take their
 * single-threaded path, without the two atomic operations per call that
 * cancellation bookkeeping costs a multi-threaded process. */
struct solo {
    struct bench *b;
    struct worker *w;
    sb_timer t;
    int64_t next;        /* the next live line */
    struct live lv;
    int stage;           /* 0 warmup, 1 window, 2 after */
    double *cpu;
};

/* The window's end, from whichever of this timer and the worker's stop
 * timer runs first. */
static void solo_window_end(struct solo *so)
{
    if (so->stage != 1)
        return;
    window_edge(so->b, so->cpu, 1);
    so->stage = 2;
}

static void on_solo(sb_loop *l, sb_timer *t)
{
    struct solo *so = t->data;
    struct bench *b = so->b;
    int64_t now = sb_now_ns(), due = INT64_MAX;

    if (so->stage == 0 && now >= b->begin_ns) {
        window_edge(b, so->cpu, 0);
        so->stage = 1;
    }
    if (so->stage == 1 && now >= b->end_ns)
        solo_window_end(so);
    if (b->o.live && now >= so->next) {
        worker_publish(so->w);
        live_line(b, so->w, 1, &so->lv, now);
        while (so->next <= now)
            so->next += LIVE_NS;
    }
    if (so->stage < 2)
        due = so->stage == 0 ? b->begin_ns : b->end_ns;
    if (b->o.live && so->next < due)
        due = so->next;
    if (due != INT64_MAX)
        sb_timer_start(l, t, ms_until(due));
}

int64_t bench_worker_due(const struct worker *w)
{
    const sb_timer *ts[] = {&w->stop, &w->drain, &w->tick, &w->watch, w->solo ? &w->solo->t : NULL};
    int64_t due = w->pace_at;

    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (ts[i] && sb_timer_active(ts[i]) && ts[i]->due * 1000000 < due)
            due = ts[i]->due * 1000000;
    return due;
}

/* The loop runs a timer once its clock (milliseconds, the clock of
 * sb_now_ns) reaches the timer's due time; a turn of it with no watcher
 * costs one empty wait, paid only on the turns a timer is due. */
void bench_worker_timers(struct worker *w, int64_t now)
{
    int64_t pace = w->pace_at;

    if (pace <= now) {
        w->pace_at = INT64_MAX; /* pace_run re-arms it while there is work */
        pace_run(w);
    }
    if (bench_worker_due(w) <= now)
        sb_loop_run_once(w->loop, 0);
}

static void run_solo(struct bench *b, struct worker *w, double *cpu)
{
    struct solo so = {.b = b, .w = w, .cpu = cpu};

    worker_dial(w);
    set_window(b, sb_now_ns());
    so.next = b->start_ns + LIVE_NS;
    so.lv.t = b->start_ns;
    cpu[0] = cpu[1] = cpu_seconds();
    sb_timer_init(&so.t, on_solo, &so);
    w->solo = &so;
    worker_start(w);
    sb_timer_start(w->loop, &so.t, 0);
    if (w->open > 0)
        w->err = worker_run(w);
    sb_timer_stop(w->loop, &so.t);
    w->solo = NULL;
    if (so.stage == 1) /* -n: the last reply is in */
        window_edge(b, cpu, 1);
    else if (so.stage == 0) /* every connection ended early */
        cpu[1] = cpu_seconds();
    worker_close(w);
}

/* The window's length: --duration, or -n's time to the last reply. */
static double window_of(const struct bench *b, struct worker *ws, long nw)
{
    int64_t last = b->begin_ns;

    if (!b->o.count)
        return b->o.duration;
    for (long i = 0; i < nw; i++)
        if (ws[i].last_ns > last)
            last = ws[i].last_ns;
    if (b->end_ns != INT64_MAX && last > b->end_ns)
        last = b->end_ns;
    return (double)(last - b->begin_ns) / 1e9;
}

static int run(struct bench *b, struct worker *ws, long nw, struct result *res)
{
    double cpu[2] = {0, 0};

    if (nw == 1 && !b->o.connect_only) {
        run_solo(b, ws, cpu);
        res->cpu_s = cpu[1] - cpu[0];
        res->window_s = window_of(b, ws, nw);
        return 0;
    }

    for (long i = 0; i < nw; i++) {
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
            if (i == 0)
                return -1;
            cli_error("--threads", "cannot start thread %ld", i + 1);
            exit(1); /* the started ones wait on a barrier that cannot fill */
        }
    }
    pthread_barrier_wait(&b->dialed);
    for (long i = 0; i < nw; i++)
        res->k.connected += ws[i].k.connected;
    set_window(b, sb_now_ns());
    cpu[0] = cpu_seconds();
    pthread_barrier_wait(&b->go);
    if (b->o.connect_only)
        supervise_hold(b, ws, nw, res->k.connected);
    else
        supervise_load(b, ws, nw, cpu);
    for (long i = 0; i < nw; i++)
        pthread_join(ws[i].tid, NULL);
    if (b->o.connect_only)
        cpu[1] = cpu_seconds();
    res->cpu_s = cpu[1] - cpu[0];
    res->window_s = window_of(b, ws, nw);
    return 0;
}

static void collect(struct worker *ws, long nw, struct result *r)
{
    hist_reset(&r->h);
    memset(&r->k, 0, sizeof r->k);
    for (long i = 0; i < nw; i++) {
        const uint64_t *from = (const uint64_t *)&ws[i].k;
        uint64_t *into = (uint64_t *)&r->k;

        /* struct counters is uint64_t fields only: sum them all. */
        for (size_t j = 0; j < sizeof r->k / sizeof(uint64_t); j++)
            into[j] += from[j];
        hist_merge(&r->h, &ws[i].hist);
        if (ws[i].err < 0)
            r->loop_err = ws[i].err;
    }
}

/* The verdict: every connection answered and every reply checked. */
static int exit_code(const struct bench *b, const struct result *r)
{
    if (errors_of(&r->k) > 0 || r->loop_err < 0)
        return 1;
    if (b->o.connect_only)
        return r->k.received == (uint64_t)b->o.conns ? 0 : 1;
    if (b->o.count)
        return r->k.received == (uint64_t)b->o.count ? 0 : 1;
    return r->k.messages > 0 ? 0 : 1;
}

/* Say why the run failed where the counters alone would not: -n fell
 * short, or nothing came back - bytes arrived but no reply could be cut
 * from them (the server speaks another protocol or framing), or nothing
 * arrived at all. */
static void explain_silence(const struct bench *b, const struct result *r)
{
    const struct counters *k = &r->k;

    if (b->o.count && k->cut > 0 && k->received < (uint64_t)b->o.count)
        cli_error("-n", "%llu of %ld messages answered%s", (unsigned long long)k->received,
                  b->o.count, b->end_ns != INT64_MAX ? " within --duration" : "");
    if (b->o.connect_only || k->connected == 0 || k->cut > 0)
        return;
    if (k->bytes_in > 0)
        cli_error(b->o.addr, "no reply decoded from %llu bytes received: does the server speak %s?",
                  (unsigned long long)k->bytes_in, b->o.http ? "HTTP/1.1" : b->o.frame);
    else if (k->e_closed == 0 && k->e_io == 0)
        cli_error(b->o.addr, "no reply: the server sent nothing back");
}

/* ---- the command ------------------------------------------------------------ */

/* The framing or the URL, and the address. Returns 0, or the exit code
 * after printing why (2 for what does not parse, 1 for a name with no
 * address). */
/* --tls / https: the client context; the name verified is the URL's or
 * ADDR's host ("localhost" for ":PORT"). Returns 0 or the exit code. */
static int setup_tls(struct bench *b)
{
    sb_tls_opts o;
    sb_addr_spec spec;
    char why[256] = "";
    int r;

    if (!b->o.tls)
        return 0;
    if (b->o.http)
        snprintf(b->tls_host, sizeof b->tls_host, "%s", b->url.host);
    else if (sb_addr_parse(b->o.addr, &spec) == 0 && spec.host[0])
        snprintf(b->tls_host, sizeof b->tls_host, "%s", spec.host);
    else
        snprintf(b->tls_host, sizeof b->tls_host, "localhost");
    sb_tls_opts_default(&o);
    o.ca_file = b->o.cacert;
    o.insecure = b->o.insecure;
    if (b->o.http)
        o.alpn = "http/1.1";
    r = sb_tls_client_new(&b->tls, &o, why, sizeof why);
    if (r < 0) {
        cli_error(b->o.cacert ? "--cacert" : "--tls", "%s", why[0] ? why : sb_strerror(r));
        return 1;
    }
    return 0;
}

static int setup(struct bench *b)
{
    int r;

    if (b->o.http) {
        r = setup_http(b);
        return r ? r : setup_tls(b);
    }
    if (setup_frame(b) < 0)
        return 2;
    r = sb_addr_resolve(b->o.addr, 0, &b->addr, 1);
    if (r < 0) {
        cli_error(b->o.addr, "%s", sb_strerror(r));
        return r == SB_ENOHOST ? 1 : 2;
    }
    return setup_tls(b);
}

/* --backend uring on a framed ADDR: the uring engine (bench_uring.c), or
 * exit 1 when io_uring cannot be used here. TLS, HTTP, --connect-only and
 * --reconnect stay on the loop engine, on the library loop's uring backend. */
static int setup_engine(struct bench *b)
{
    int r;

    if (b->o.backend == NULL || strcmp(b->o.backend, "uring") != 0 || b->o.http || b->o.tls ||
        b->o.connect_only || b->o.reconnect)
        return 0;
    r = bench_uring_probe();
    if (r < 0) {
        cli_error("--backend uring", "io_uring cannot be used here: %s",
                  r == -ENOSYS       ? "this switchboard was built without liburing"
                  : r == -EOPNOTSUPP ? "the kernel has no multishot receive (Linux 6.0 or later)"
                                     : sb_strerror(r));
        return 1;
    }
    b->uring = 1;
    return 0;
}

static int make_workers(struct bench *b, struct worker *ws, long *nw)
{
    long id = 0;

    for (long i = 0; i < *nw; i++) {
        long n = b->o.conns / *nw + (i < b->o.conns % *nw);
        int r = worker_init(&ws[i], b, (int)i, id, n);
        id += n;
        if (r < 0) {
            cli_error("client loop", "%s", sb_strerror(r));
            *nw = i + 1;
            return -1;
        }
    }
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    static struct bench b; /* big (histograms live in workers), zeroed */
    struct worker *ws = NULL;
    struct result *res = NULL;
    long nw;
    int r, code = 1;

    r = bench_parse_opts(argc, argv, &b.o);
    if (r != 0)
        return r > 0 ? 0 : 2;
    r = setup(&b);
    if (r != 0)
        return r;
    r = setup_engine(&b);
    if (r != 0)
        return r;
    if (b.o.rate > 0)
        b.interval_ns = 1e9 * (double)b.o.conns / b.o.rate;
    b.o.live = isatty(STDERR_FILENO) && !b.o.json && !b.o.connect_only;
    raise_nofile(b.o.conns);
    nw = b.o.threads;
    ws = calloc((size_t)nw, sizeof *ws);
    res = calloc(1, sizeof *res);
    if (ws == NULL || res == NULL) {
        cli_error("memory", "%s", sb_strerror(-ENOMEM));
        goto out;
    }
    if (make_workers(&b, ws, &nw) < 0)
        goto out;
    if (b.o.live) {
        bench_describe(&b.o, stderr);
        fputc('\n', stderr);
    }
    pthread_barrier_init(&b.dialed, NULL, (unsigned)nw + 1);
    pthread_barrier_init(&b.go, NULL, (unsigned)nw + 1);
    if (run(&b, ws, nw, res) < 0) {
        cli_error("--threads", "cannot start threads");
        goto out;
    }
    if (b.o.live)
        fputs("\r\033[K", stderr);
    collect(ws, nw, res);
    res->client = b.uring ? "uring-completion" : sb_loop_backend(ws[0].loop);
    if (res->k.e_connect > 0 && res->k.connected == 0)
        cli_error(b.o.addr, "no connection could be opened");
    if (res->loop_err < 0)
        cli_error("client loop", "%s", sb_strerror(res->loop_err));
    explain_silence(&b, res);
    if (b.o.json)
        bench_print_json(&b.o, res);
    else
        bench_print_text(&b.o, res);
    code = exit_code(&b, res);
out:
    for (long i = 0; ws && i < nw; i++)
        worker_free(&ws[i]);
    free(ws);
    free(res);
    free(b.pattern);
    sb_tls_free(b.tls);
    return code;
}
