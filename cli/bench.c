/* bench: `switchboard bench`, a load generator on switchboard's own loop.
 *
 * Divisions: options; payloads (pattern, encode, verify); connections
 * (read, decode, check, refill, one write per readiness); workers (one
 * thread and one loop each, timers for the measured window and the
 * drain); the main thread (barriers, live line, CPU accounting); the
 * report (text or one JSON object). The latency histogram is hist.c's.
 *
 * Each connection keeps --pipeline messages in flight. Every message
 * carries a payload that differs per message and per connection (an
 * offset into a random alphanumeric pattern, with the first 8 bytes
 * replaced by the message's sequence number mixed with the connection's
 * number), so a reply that is misordered, crossed between connections,
 * truncated or corrupted is caught: every reply is compared byte for byte.
 * Replies come back in order, so the send times of a connection are a FIFO
 * (a ring of --pipeline entries indexed by sequence number).
 *
 * Keeping the client lean: one recv() per readiness into the connection's
 * buffer (edge-triggered on epoll: read again next turn only when the
 * buffer filled or the server hung up), every whole reply decoded in
 * place, one new message queued per reply, and one send() of the whole
 * batch; with --threads 1 no thread is started at all (see run_solo); the clock is read once per
 * read and once per write. The client's own CPU time per message
 * (getrusage over the measured window) is part of the report, so a reader
 * can see whether the client or the server was the bottleneck.
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
#include <sys/resource.h>
#include <sys/socket.h>

#include "cli.h"
#include "hist.h"

#define PATTERN_SLACK 251      /* payload offsets cycle through a prime */
#define SEQ_CHARS 8            /* the sequence number, 5 bits per char */
#define DRAIN_MS 2000          /* after the window: wait this long for replies */
#define CONNECT_TIMEOUT_MS 5000
#define SETTLE_TIMEOUT_S 60    /* --connect-only: all replies by then */

/* ---- options ------------------------------------------------------------ */

struct bench_opts {
    const char *addr;
    const char *frame;        /* SPEC as given */
    const char *backend;      /* client loop backend, NULL = default */
    long conns, pipeline, threads;
    size_t size;
    int size_given;
    double duration, warmup, hold;
    int json, connect_only, live;
    int marks;                /* --marks: window edges on stderr */
};

static const char bench_usage[] =
    "usage: switchboard bench ADDR [options]\n"
    "\n"
    "Load-test a server that echoes messages: keep --pipeline messages in flight\n"
    "on each of --conns connections, check every reply byte for byte, and report\n"
    "messages/s, MB/s (payload, both ways), latency percentiles, errors and the\n"
    "client's own CPU time per message.\n"
    "\n"
    "  --conns N         connections (default 50)\n"
    "  --pipeline P      messages in flight per connection (default 1)\n"
    "  --size BYTES      payload size, K/M suffixes allowed (default 64)\n"
    "  --duration S      measured seconds, fractions allowed (default 5)\n"
    "  --warmup S        seconds before measuring starts (default 1)\n"
    "  --frame SPEC      framing (default line; raw and eof cannot be checked)\n"
    "  --threads T       client threads, each with its own loop (default 1)\n"
    "  --backend NAME    client loop backend (default epoll)\n"
    "  --json            print one JSON object instead of the text report\n"
    "  --connect-only    open the connections, one message each, then hold them\n"
    "  --hold S          with --connect-only: seconds to hold them idle (default 10)\n"
    "  --marks           print \"switchboard: bench: window begins\" and \"... ends\" on\n"
    "                    stderr at the edges of the measured window (for scripts\n"
    "                    that sample the server's CPU over the same window)\n"
    "\n"
    "Exit status: 0 when every reply matched and at least one message was\n"
    "measured (--connect-only: every connection answered), 1 otherwise.\n";

static int parse_seconds(const char *opt, const char *val, double *out)
{
    char *end;
    double v;

    if (val == NULL) {
        cli_error(opt, "missing value");
        return -1;
    }
    errno = 0;
    v = strtod(val, &end);
    if (errno != 0 || end == val || *end != '\0' || !(v >= 0 && v <= 86400)) {
        cli_error(opt, "'%s' is not a number of seconds in 0..86400", val);
        return -1;
    }
    *out = v;
    return 0;
}

/* Returns 0, 1 for --help (printed), -1 for a usage error (printed). */
static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->frame = "line";
    o->conns = 50;
    o->pipeline = 1;
    o->threads = 1;
    o->size = 64;
    o->duration = 5;
    o->warmup = 1;
    o->hold = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0, takes = 1;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(bench_usage, stdout);
            return 1;
        } else if (strcmp(a, "--conns") == 0) {
            r = cli_parse_long(a, v, 1, 1000000, &o->conns);
        } else if (strcmp(a, "--pipeline") == 0) {
            r = cli_parse_long(a, v, 1, 65536, &o->pipeline);
        } else if (strcmp(a, "--threads") == 0) {
            r = cli_parse_long(a, v, 1, 256, &o->threads);
        } else if (strcmp(a, "--size") == 0) {
            r = cli_parse_size(a, v, &o->size);
            o->size_given = 1;
        } else if (strcmp(a, "--duration") == 0) {
            r = parse_seconds(a, v, &o->duration);
        } else if (strcmp(a, "--warmup") == 0) {
            r = parse_seconds(a, v, &o->warmup);
        } else if (strcmp(a, "--hold") == 0) {
            r = parse_seconds(a, v, &o->hold);
        } else if (strcmp(a, "--frame") == 0 || strcmp(a, "--backend") == 0) {
            if (v == NULL) {
                cli_error(a, "missing value");
                return -1;
            }
            *(a[2] == 'f' ? &o->frame : &o->backend) = v;
        } else if (strcmp(a, "--json") == 0 || strcmp(a, "--connect-only") == 0) {
            *(a[2] == 'j' ? &o->json : &o->connect_only) = 1;
            takes = 0;
        } else if (strcmp(a, "--marks") == 0) {
            o->marks = 1;
            takes = 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error(a, "unknown option (try --help)");
            return -1;
        } else if (o->addr == NULL) {
            o->addr = a;
            takes = 0;
        } else {
            cli_error(a, "unexpected argument (try --help)");
            return -1;
        }
        if (r < 0)
            return -1;
        i += takes;
    }
    if (o->addr == NULL) {
        fputs(bench_usage, stderr);
        return -1;
    }
    if (o->threads > o->conns)
        o->threads = o->conns;
    return 0;
}

/* ---- payloads ------------------------------------------------------------- */

/* Shared, read-only once the run starts. */
struct bench {
    struct bench_opts o;
    sb_frame_spec spec;
    int type;                    /* typed framing: the type byte used */
    uint8_t hdr[SB_FRAME_HDR_MAX], trl[SB_FRAME_HDR_MAX];
    size_t hdr_len, trl_len;
    size_t framed;               /* header + payload + trailer */
    uint8_t *pattern;            /* size + PATTERN_SLACK alphanumeric bytes */
    sb_addr addr;
    int64_t begin_ns, end_ns;    /* the measured window (monotonic) */
    atomic_long settled;         /* --connect-only: connections done or failed */
    pthread_barrier_t dialed, go;
};

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

/* ---- connections ---------------------------------------------------------- */

struct counters {
    uint64_t messages;       /* replies inside the measured window */
    uint64_t received;       /* every verified reply */
    uint64_t sent;           /* every message sent */
    uint64_t connected;
    uint64_t e_connect, e_mismatch, e_closed, e_io, e_decode, e_unanswered;
};

struct worker;

struct bconn {
    struct worker *w;
    int fd;                  /* -1 when closed */
    int mask;                /* what the loop watches for us */
    int settled;             /* --connect-only: counted in b->settled */
    uint64_t id;             /* connection number across threads */
    uint64_t sent, done;     /* messages sent, replies verified */
    int64_t *ts;             /* send times, a ring of pipeline entries */
    uint8_t *in;             /* received, not yet decoded */
    size_t in_len, in_cap;
    uint8_t *out;            /* queued, not yet written: [out_off, out_len) */
    size_t out_off, out_len, out_cap;
};

enum { PH_RUN, PH_DRAIN };

struct worker {
    struct bench *b;
    int index;
    pthread_t tid;
    sb_loop *loop;
    struct bconn *c;
    long nconns, open;
    int phase;
    sb_timer stop, drain, tick;
    struct counters k;
    struct hist hist;        /* the measured window */
    struct hist live;        /* since the last tick (live line only) */
    uint64_t live_msgs;
    atomic_ullong pub_msgs;  /* published each tick for the main thread */
    atomic_ullong pub_p99;
    atomic_ullong pub_errors;
    int err;                 /* a fatal loop error */
    struct solo *solo;          /* --threads 1: the supervisor on this loop */
};

static uint64_t errors_of(const struct counters *k)
{
    return k->e_connect + k->e_mismatch + k->e_closed + k->e_io + k->e_decode + k->e_unanswered;
}

static void on_io(sb_loop *l, int fd, int events, void *ud);

static void settle(struct bconn *c)
{
    if (c->w->b->o.connect_only && !c->settled) {
        c->settled = 1;
        atomic_fetch_add(&c->w->b->settled, 1);
    }
}

static void conn_close(struct bconn *c)
{
    struct worker *w = c->w;

    if (c->fd < 0)
        return;
    sb_loop_watch(w->loop, c->fd, 0, NULL, NULL);
    close(c->fd);
    c->fd = -1;
    settle(c);
    if (--w->open == 0 && !w->b->o.connect_only)
        sb_loop_stop(w->loop);
}

static void conn_fail(struct bconn *c, uint64_t *counter)
{
    (*counter)++;
    conn_close(c);
}

static void conn_watch(struct bconn *c, int mask)
{
    if (mask != c->mask && sb_loop_watch(c->w->loop, c->fd, mask, on_io, c) == 0)
        c->mask = mask;
}

/* Append n framed messages to the output, all stamped now. */
static void conn_queue(struct bconn *c, long n, int64_t now)
{
    const struct bench *b = c->w->b;
    long pipe = b->o.pipeline;

    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + (size_t)n * b->framed > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    for (long i = 0; i < n; i++) {
        uint8_t *p = c->out + c->out_len;

        memcpy(p, b->hdr, b->hdr_len);
        payload_write(b, c->id, c->sent, p + b->hdr_len);
        memcpy(p + b->hdr_len + b->o.size, b->trl, b->trl_len);
        c->out_len += b->framed;
        c->ts[c->sent % (uint64_t)pipe] = now;
        c->sent++;
    }
    c->w->k.sent += (uint64_t)n;
}

/* One send() of everything queued; watch for writability if some is left. */
static void conn_flush(struct bconn *c)
{
    ssize_t r;

    if (c->out_off < c->out_len) {
        r = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            conn_fail(c, &c->w->k.e_io);
            return;
        }
        if (r > 0)
            c->out_off += (size_t)r;
    }
    conn_watch(c, SB_EDGE | (c->out_off < c->out_len ? SB_READABLE | SB_WRITABLE : SB_READABLE));
}

/* A verified reply: its latency, counted if inside the window. */
static void record(struct worker *w, int64_t sent_ns, int64_t now)
{
    uint64_t lat = now > sent_ns ? (uint64_t)(now - sent_ns) : 0;

    w->k.received++;
    if (now >= w->b->begin_ns && now < w->b->end_ns) {
        hist_add(&w->hist, lat);
        w->k.messages++;
    }
    if (w->b->o.live) {
        hist_add(&w->live, lat);
        w->live_msgs++;
    }
}

/* Cut, check and count every whole reply in the input; returns how many,
 * or -1 after closing the connection. */
static long conn_decode(struct bconn *c, int64_t now)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;
    size_t off = 0;
    long n = 0;
    sb_msg m;
    ssize_t r;

    while ((r = sb_frame_decode(&b->spec, b->o.size, c->in + off, c->in_len - off, 0, &m)) > 0) {
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
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return n;
}

static int conn_read(struct bconn *c)
{
    ssize_t r;

    if (c->in_len == c->in_cap) { /* a reply bigger than we planned for */
        uint8_t *p = realloc(c->in, c->in_cap * 2);
        if (p == NULL) {
            conn_fail(c, &c->w->k.e_io);
            return -1;
        }
        c->in = p;
        c->in_cap *= 2;
    }
    r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
    if (r > 0) {
        c->in_len += (size_t)r;
        return 0;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 1;
    conn_fail(c, r == 0 ? &c->w->k.e_closed : &c->w->k.e_io);
    return -1;
}

/* Returns 1 when bytes may be left unread (see on_io). */
static int on_readable(struct bconn *c, int events)
{
    struct worker *w = c->w;
    long n;
    int64_t now;
    int more;

    if (conn_read(c) != 0)
        return 0;
    more = c->in_len == c->in_cap || (events & SB_HUP);
    now = sb_now_ns();
    n = conn_decode(c, now);
    if (n < 0)
        return 0;
    if (n == 0)
        return more;
    if (w->b->o.connect_only) {
        settle(c);
        return more;
    }
    if (w->phase == PH_RUN && now < w->b->end_ns) {
        conn_queue(c, n, sb_now_ns());
        conn_flush(c);
    } else if (c->done == c->sent) {
        conn_close(c); /* drained */
    }
    return more;
}

/* The connections are edge-triggered where the loop can be (SB_EDGE): a
 * read that filled the buffer, or the server's hangup with bytes perhaps
 * still queued before it, asks for another turn; a short read has emptied
 * the socket, and anything that arrives later is a new edge. */
static void on_io(sb_loop *l, int fd, int events, void *ud)
{
    struct bconn *c = ud;
    int more = 0;

    if (events & (SB_READABLE | SB_ERROR))
        more = on_readable(c, events);
    if (c->fd >= 0 && (events & SB_WRITABLE))
        conn_flush(c);
    if (more && c->fd >= 0)
        sb_loop_again(l, fd, SB_READABLE);
}

/* Dial, blocking (loopback connects complete in the kernel's handshake,
 * whether or not the server has accepted yet), then go non-blocking. */
static int conn_open(struct bconn *c)
{
    const struct bench *b = c->w->b;
    long pipe = b->o.connect_only ? 1 : b->o.pipeline;
    int fd = sb_dial_addr(&b->addr, CONNECT_TIMEOUT_MS);

    c->fd = -1;
    if (fd < 0)
        return fd;
    if (sb_set_nonblock(fd, 1) < 0) {
        close(fd);
        return -EIO;
    }
    c->in_cap = b->framed * (size_t)pipe < 4096 ? 4096 : b->framed * (size_t)pipe;
    c->out_cap = b->framed * (size_t)pipe;
    c->in = malloc(c->in_cap);
    c->out = malloc(c->out_cap);
    c->ts = malloc(sizeof *c->ts * (size_t)b->o.pipeline);
    if (c->in == NULL || c->out == NULL || c->ts == NULL) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    return 0;
}

/* ---- workers -------------------------------------------------------------- */

static void on_tick(sb_loop *l, sb_timer *t)
{
    struct worker *w = t->data;

    atomic_store(&w->pub_msgs, w->live_msgs);
    atomic_store(&w->pub_p99, hist_quantile(&w->live, 0.99));
    atomic_store(&w->pub_errors, errors_of(&w->k));
    w->live_msgs = 0;
    hist_reset(&w->live);
    sb_timer_start(l, t, 1000);
}

static void on_drain(sb_loop *l, sb_timer *t)
{
    struct worker *w = t->data;

    for (long i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->c[i];
        if (c->fd >= 0) {
            w->k.e_unanswered += c->sent - c->done;
            conn_close(c);
        }
    }
    sb_loop_stop(l);
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
    sb_timer_stop(l, &w->tick);
    for (long i = 0; i < w->nconns; i++)
        if (w->c[i].fd >= 0 && w->c[i].done == w->c[i].sent)
            conn_close(&w->c[i]);
    if (w->open > 0)
        sb_timer_start(l, &w->drain, DRAIN_MS);
}

static int64_t ms_until(int64_t ns)
{
    int64_t d = ns - sb_now_ns();
    return d > 0 ? (d + 999999) / 1000000 : 0;
}

static void worker_dial(struct worker *w)
{
    for (long i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->c[i];
        int r = conn_open(c);

        if (r < 0) {
            w->k.e_connect++;
            settle(c);
            continue;
        }
        w->open++;
        w->k.connected++;
    }
}

static void worker_start(struct worker *w)
{
    int64_t now = sb_now_ns();
    long first = w->b->o.connect_only ? 1 : w->b->o.pipeline;

    for (long i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->c[i];
        if (c->fd < 0)
            continue;
        c->mask = 0;
        conn_queue(c, first, now);
        conn_flush(c);
    }
    if (!w->b->o.connect_only)
        sb_timer_start(w->loop, &w->stop, ms_until(w->b->end_ns));
    if (w->b->o.live)
        sb_timer_start(w->loop, &w->tick, 1000);
}

static void worker_close(struct worker *w)
{
    for (long i = 0; i < w->nconns; i++) {
        if (w->c[i].fd >= 0) {
            close(w->c[i].fd);
            w->c[i].fd = -1;
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    worker_dial(w);
    pthread_barrier_wait(&w->b->dialed);
    pthread_barrier_wait(&w->b->go); /* the main thread has set the window */
    worker_start(w);
    if (w->open > 0 || w->b->o.connect_only)
        w->err = sb_loop_run(w->loop);
    worker_close(w);
    return NULL;
}

static int worker_init(struct worker *w, struct bench *b, int index, long first_id, long n)
{
    int r;

    memset(w, 0, sizeof *w);
    w->b = b;
    w->index = index;
    w->nconns = n;
    hist_reset(&w->hist);
    hist_reset(&w->live);
    sb_timer_init(&w->stop, on_stop, w);
    sb_timer_init(&w->drain, on_drain, w);
    sb_timer_init(&w->tick, on_tick, w);
    w->c = calloc((size_t)n, sizeof *w->c);
    if (w->c == NULL)
        return -ENOMEM;
    for (long i = 0; i < n; i++) {
        w->c[i].w = w;
        w->c[i].fd = -1;
        w->c[i].id = (uint64_t)(first_id + i);
    }
    r = sb_loop_new(&w->loop, b->o.backend);
    return r;
}

static void worker_free(struct worker *w)
{
    for (long i = 0; w->c && i < w->nconns; i++) {
        free(w->c[i].in);
        free(w->c[i].out);
        free(w->c[i].ts);
    }
    free(w->c);
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

/* One line a second on a terminal: the rate and the worst thread's p99. */
static void live_line(struct worker *ws, long nw, double t)
{
    uint64_t msgs = 0, p99 = 0, errs = 0;

    for (long i = 0; i < nw; i++) {
        uint64_t p = atomic_load(&ws[i].pub_p99);
        msgs += atomic_load(&ws[i].pub_msgs);
        errs += atomic_load(&ws[i].pub_errors);
        if (p > p99)
            p99 = p;
    }
    printf("  %5.1f s  %10llu msgs/s  p99 %9.1f us  errors %llu\n", t,
           (unsigned long long)msgs, (double)p99 / 1e3, (unsigned long long)errs);
    fflush(stdout);
}

/* The measured window: warmup from start, then duration (--connect-only:
 * every reply, from start on). */
static void set_window(struct bench *b, int64_t start)
{
    b->begin_ns = start + (int64_t)(b->o.warmup * 1e9);
    b->end_ns = b->begin_ns + (int64_t)(b->o.duration * 1e9);
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

/* Wait through warmup and window, sampling CPU at the window's edges. */
static void supervise_load(struct bench *b, struct worker *ws, long nw, int64_t start,
                           double *cpu)
{
    int64_t next = start + 1000000000;

    while (b->o.live && next < b->begin_ns) {
        sleep_until(next);
        live_line(ws, nw, (double)(next - start) / 1e9);
        next += 1000000000;
    }
    sleep_until(b->begin_ns);
    window_edge(b, cpu, 0);
    while (b->o.live && next < b->end_ns) {
        sleep_until(next);
        live_line(ws, nw, (double)(next - start) / 1e9);
        next += 1000000000;
    }
    sleep_until(b->end_ns);
    window_edge(b, cpu, 1);
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

/* ---- the report ----------------------------------------------------------- */

struct result {
    struct counters k;
    struct hist h;
    double window_s, cpu_s;
    int loop_err;
};

static double us(uint64_t ns) { return (double)ns / 1e3; }

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const struct bench *b, const struct result *r)
{
    const struct bench_opts *o = &b->o;
    const struct counters *k = &r->k;
    double rate = r->window_s > 0 ? (double)k->messages / r->window_s : 0;
    uint64_t basis = o->connect_only ? k->received : k->messages;

    fputs("{\"addr\":", stdout);
    json_str(o->addr);
    fputs(",\"frame\":", stdout);
    json_str(o->frame);
    printf(",\"conns\":%ld,\"pipeline\":%ld,\"size\":%zu,"
           "\"threads\":%ld,\"duration_s\":%g,\"warmup_s\":%g,\"connect_only\":%s,\"hold_s\":%g,",
           o->conns, o->pipeline, o->size, o->threads,
           o->connect_only ? 0 : o->duration, o->connect_only ? 0 : o->warmup,
           o->connect_only ? "true" : "false", o->connect_only ? o->hold : 0);
    printf("\"connected\":%llu,\"messages\":%llu,\"sent_total\":%llu,\"received_total\":%llu,"
           "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"mb_basis\":\"payload both ways, 1 MB = 1e6 B\",",
           (unsigned long long)k->connected, (unsigned long long)k->messages,
           (unsigned long long)k->sent, (unsigned long long)k->received, rate,
           rate * 2.0 * (double)o->size / 1e6);
    printf("\"latency_us\":{\"min\":%.1f,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
           "\"p99.9\":%.1f,\"max\":%.1f},",
           r->h.count ? us(r->h.min) : 0.0, r->h.count ? us(r->h.sum / r->h.count) : 0.0,
           us(hist_quantile(&r->h, 0.5)), us(hist_quantile(&r->h, 0.9)),
           us(hist_quantile(&r->h, 0.99)), us(hist_quantile(&r->h, 0.999)), us(r->h.max));
    printf("\"errors\":{\"connect\":%llu,\"mismatch\":%llu,\"closed\":%llu,\"io\":%llu,"
           "\"decode\":%llu,\"unanswered\":%llu},\"errors_total\":%llu,",
           (unsigned long long)k->e_connect, (unsigned long long)k->e_mismatch,
           (unsigned long long)k->e_closed, (unsigned long long)k->e_io,
           (unsigned long long)k->e_decode, (unsigned long long)k->e_unanswered,
           (unsigned long long)errors_of(k));
    printf("\"client_cpu_s\":%.4f,\"client_cpu_us_per_msg\":%.3f}\n", r->cpu_s,
           basis ? r->cpu_s * 1e6 / (double)basis : 0.0);
}

static void print_text(const struct bench *b, const struct result *r)
{
    const struct bench_opts *o = &b->o;
    const struct counters *k = &r->k;
    double rate = r->window_s > 0 ? (double)k->messages / r->window_s : 0;
    uint64_t basis = o->connect_only ? k->received : k->messages;

    printf("switchboard bench %s: %ld conns x pipeline %ld, %zu B payload, %s, %ld thread%s\n",
           o->addr, o->conns, o->pipeline, o->size, o->frame, o->threads,
           o->threads == 1 ? "" : "s");
    if (o->connect_only) {
        printf("  connected   %llu of %ld, held %g s, %llu replies checked\n",
               (unsigned long long)k->connected, o->conns, o->hold,
               (unsigned long long)k->received);
    } else {
        printf("  window      %.2f s after %.2f s warmup\n", r->window_s, o->warmup);
        printf("  messages    %llu (%.0f msgs/s)\n", (unsigned long long)k->messages, rate);
        printf("  throughput  %.2f MB/s (payload, both ways)\n", rate * 2.0 * (double)o->size / 1e6);
    }
    printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f)\n",
           us(hist_quantile(&r->h, 0.5)), us(hist_quantile(&r->h, 0.9)),
           us(hist_quantile(&r->h, 0.99)), us(hist_quantile(&r->h, 0.999)), us(r->h.max),
           r->h.count ? us(r->h.sum / r->h.count) : 0.0);
    printf("  errors      %llu (connect %llu, mismatch %llu, closed %llu, io %llu, decode %llu,"
           " unanswered %llu)\n",
           (unsigned long long)errors_of(k), (unsigned long long)k->e_connect,
           (unsigned long long)k->e_mismatch, (unsigned long long)k->e_closed,
           (unsigned long long)k->e_io, (unsigned long long)k->e_decode,
           (unsigned long long)k->e_unanswered);
    printf("  client CPU  %.2f us/msg (%.3f s)\n",
           basis ? r->cpu_s * 1e6 / (double)basis : 0.0, r->cpu_s);
}

/* ---- the command ------------------------------------------------------------ */

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
    int64_t start, next; /* next: the next live line */
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
    int64_t now = sb_now_ns(), due;

    if (b->o.live && now >= so->next) {
        live_line(so->w, 1, (double)(so->next - so->start) / 1e9);
        so->next += 1000000000;
    }
    if (so->stage == 0 && now >= b->begin_ns) {
        window_edge(b, so->cpu, 0);
        so->stage = 1;
    }
    if (so->stage == 1 && now >= b->end_ns) {
        solo_window_end(so);
        return;
    }
    due = so->stage == 0 ? b->begin_ns : b->end_ns;
    if (b->o.live && so->next < due)
        due = so->next;
    sb_timer_start(l, t, ms_until(due));
}

static void run_solo(struct bench *b, struct worker *w, double *cpu)
{
    struct solo so = {.b = b, .w = w, .cpu = cpu};

    worker_dial(w);
    so.start = sb_now_ns();
    so.next = so.start + 1000000000;
    set_window(b, so.start);
    cpu[0] = cpu[1] = cpu_seconds();
    sb_timer_init(&so.t, on_solo, &so);
    w->solo = &so;
    worker_start(w);
    sb_timer_start(w->loop, &so.t, 0);
    if (w->open > 0)
        w->err = sb_loop_run(w->loop);
    sb_timer_stop(w->loop, &so.t);
    w->solo = NULL;
    if (so.stage < 2) /* every connection ended early */
        cpu[1] = cpu_seconds();
    worker_close(w);
}

static int run(struct bench *b, struct worker *ws, long nw, struct result *res)
{
    double cpu[2] = {0, 0};
    int64_t start;

    if (nw == 1 && !b->o.connect_only) {
        run_solo(b, ws, cpu);
        res->cpu_s = cpu[1] - cpu[0];
        res->window_s = b->o.duration;
        return 0;
    }

    for (long i = 0; i < nw; i++) {
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
            if (i == 0)
                return -1;
            cli_error("bench", "cannot start thread %ld", i + 1);
            exit(1); /* the started ones wait on a barrier that cannot fill */
        }
    }
    pthread_barrier_wait(&b->dialed);
    for (long i = 0; i < nw; i++)
        res->k.connected += ws[i].k.connected;
    start = sb_now_ns();
    set_window(b, start);
    cpu[0] = cpu_seconds();
    pthread_barrier_wait(&b->go);
    if (b->o.connect_only)
        supervise_hold(b, ws, nw, res->k.connected);
    else
        supervise_load(b, ws, nw, start, cpu);
    for (long i = 0; i < nw; i++)
        pthread_join(ws[i].tid, NULL);
    if (b->o.connect_only)
        cpu[1] = cpu_seconds();
    res->cpu_s = cpu[1] - cpu[0];
    res->window_s = b->o.duration;
    return 0;
}

static void collect(struct worker *ws, long nw, struct result *r)
{
    hist_reset(&r->h);
    memset(&r->k, 0, sizeof r->k);
    for (long i = 0; i < nw; i++) {
        struct counters *k = &ws[i].k;
        hist_merge(&r->h, &ws[i].hist);
        r->k.messages += k->messages;
        r->k.received += k->received;
        r->k.sent += k->sent;
        r->k.connected += k->connected;
        r->k.e_connect += k->e_connect;
        r->k.e_mismatch += k->e_mismatch;
        r->k.e_closed += k->e_closed;
        r->k.e_io += k->e_io;
        r->k.e_decode += k->e_decode;
        r->k.e_unanswered += k->e_unanswered;
        if (ws[i].err < 0)
            r->loop_err = ws[i].err;
    }
}

/* The verdict: every connection answered and every reply matched. */
static int exit_code(const struct bench *b, const struct result *r)
{
    if (errors_of(&r->k) > 0 || r->loop_err < 0)
        return 1;
    if (b->o.connect_only)
        return r->k.received == (uint64_t)b->o.conns ? 0 : 1;
    return r->k.messages > 0 ? 0 : 1;
}

int cmd_bench(int argc, char **argv)
{
    static struct bench b; /* big (histograms live in workers), zeroed */
    struct worker *ws = NULL;
    struct result *res = NULL;
    long nw, id = 0;
    int r, code = 1;

    r = parse_opts(argc, argv, &b.o);
    if (r != 0)
        return r > 0 ? 0 : 2;
    if (setup_frame(&b) < 0)
        return 2;
    r = sb_addr_resolve(b.o.addr, 0, &b.addr, 1);
    if (r < 0) {
        cli_error(b.o.addr, "%s", sb_strerror(r));
        return 2;
    }
    b.o.live = isatty(STDOUT_FILENO) && !b.o.json;
    raise_nofile(b.o.conns);
    nw = b.o.threads;
    ws = calloc((size_t)nw, sizeof *ws);
    res = calloc(1, sizeof *res);
    if (ws == NULL || res == NULL) {
        cli_error("bench", "%s", sb_strerror(-ENOMEM));
        goto out;
    }
    for (long i = 0; i < nw; i++) {
        long n = b.o.conns / nw + (i < b.o.conns % nw);
        r = worker_init(&ws[i], &b, (int)i, id, n);
        id += n;
        if (r < 0) {
            cli_error("bench", "client loop: %s", sb_strerror(r));
            nw = i + 1;
            goto out;
        }
    }
    pthread_barrier_init(&b.dialed, NULL, (unsigned)nw + 1);
    pthread_barrier_init(&b.go, NULL, (unsigned)nw + 1);
    if (run(&b, ws, nw, res) < 0) {
        cli_error("bench", "cannot start threads");
        goto out;
    }
    collect(ws, nw, res);
    if (res->k.e_connect > 0 && res->k.connected == 0)
        cli_error(b.o.addr, "no connection could be opened");
    if (res->loop_err < 0)
        cli_error("bench", "client loop: %s", sb_strerror(res->loop_err));
    if (b.o.json)
        print_json(&b, res);
    else
        print_text(&b, res);
    code = exit_code(&b, res);
out:
    for (long i = 0; ws && i < nw; i++)
        worker_free(&ws[i]);
    free(ws);
    free(res);
    free(b.pattern);
    return code;
}
