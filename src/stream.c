/* stream: the HOWTO's "file-like beast" - a blocking socket behind an input
 * and an output buffer, with message framing on top.
 *
 * Input: bytes are received into `in` a chunk at a time; plain reads copy
 * out of it, message reads let the framing decoder cut whole messages off
 * its front. A message handed out points into `in`, so it is consumed
 * lazily, at the start of the next read.
 *
 * Output: writes collect in `out` and go to the socket only on flush, when
 * the buffer would pass SB_STREAM_OUT_MAX, or for a write too large to be
 * worth copying. Forgetting to flush before waiting for a reply is the
 * deadlock the HOWTO warns of; sb_stream_request cannot forget.
 *
 * Every call that touches the socket has its own deadline, timeout_ms from
 * the moment it was made, so no single call can hang longer than that.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "switchboard.h"
#include "sys.h"

/* Bytes asked of recv at a time: large enough that a burst of small
 * messages costs one system call, small enough to be cheap to keep. */
#define SB_STREAM_CHUNK 16384
/* Output buffered before a write forces a send. */
#define SB_STREAM_OUT_MAX 65536

struct sb_stream {
    int fd;               /* the socket; not owned */
    sb_frame_spec spec;   /* framing for the _msg calls */
    size_t max_msg;       /* largest payload read_msg accepts (0: no bound) */
    int timeout_ms;       /* per call; <= 0: none */
    sb_buf in;            /* received, not yet handed out */
    sb_buf out;           /* written, not yet sent */
    size_t consumed;      /* bytes of the last message, dropped at the next read */
    sb_frame_state fs;    /* where decoding of the message in `in` stopped */
    int eof;              /* the peer has shut down its sending side */
    int werr;             /* sticky send error: how much was sent is unknown */
    sb_tls_session *tls;  /* TLS over fd (sb_stream_set_tls), not owned; NULL: plain */
};

/* The socket's two calls, plain or through a TLS session. */
static ssize_t stream_send_all(sb_stream *s, const void *p, size_t n, int64_t deadline)
{
    return s->tls ? sb_tls_send_all(s->tls, p, n, deadline) : sb_send_all(s->fd, p, n, deadline);
}

static ssize_t stream_recv_some(sb_stream *s, void *p, size_t n, int64_t deadline)
{
    return s->tls ? sb_tls_recv_some(s->tls, p, n, deadline) : sb_recv_some(s->fd, p, n, deadline);
}

void sb_stream_set_tls(sb_stream *s, sb_tls_session *t)
{
    s->tls = t;
}

static int64_t deadline_of(const sb_stream *s)
{
    return s->timeout_ms > 0 ? sb_now_ms() + s->timeout_ms : SB_NO_DEADLINE;
}

/* The input holds at most the unfinished part of one message - payload,
 * header and trailer - plus one chunk read behind it. The decoder reports
 * SB_ETOOBIG well before that; the bound stops a peer that never finishes a
 * message even if the framing cannot tell. max_msg 0: no bound. */
static size_t in_bound(size_t max_msg)
{
    size_t extra = 2 * SB_FRAME_HDR_MAX + SB_STREAM_CHUNK;

    if (max_msg == 0 || max_msg > SIZE_MAX - extra)
        return 0;
    return max_msg + extra;
}

int sb_stream_open(sb_stream **out, int fd, const sb_frame_spec *spec, size_t max_msg, int timeout_ms)
{
    sb_stream *s = sb__calloc(1, sizeof(*s));

    *out = NULL;
    if (s == NULL)
        return -ENOMEM;
    s->fd = fd;
    if (spec != NULL)
        s->spec = *spec; /* else zero-filled: raw */
    s->max_msg = max_msg;
    s->timeout_ms = timeout_ms;
    if (sb_frame_state_init(&s->fs, &s->spec) < 0) {
        sb__free(s);
        return -ENOMEM;
    }
    sb_buf_init(&s->in, in_bound(max_msg));
    sb_buf_init(&s->out, 0);
    *out = s;
    return 0;
}

/* Unflushed output is discarded: a close that could block on a dead peer
 * would defeat the timeouts. Flush first to keep it. */
void sb_stream_close(sb_stream *s)
{
    if (s == NULL)
        return;
    sb_buf_free(&s->in);
    sb_buf_free(&s->out);
    sb_frame_state_free(&s->fs);
    sb__free(s);
}

/* ---- output ------------------------------------------------------------- */

static int send_now(sb_stream *s, const void *p, size_t n, int64_t deadline)
{
    ssize_t r = stream_send_all(s, p, n, deadline);

    /* After a failed send some unknown prefix went out; sending the rest
     * later would corrupt the stream, so the stream stays failed. */
    if (r < 0)
        s->werr = (int)r;
    return r < 0 ? (int)r : 0;
}

static int flush_at(sb_stream *s, int64_t deadline)
{
    size_t n = sb_buf_len(&s->out);
    int r;

    if (s->werr)
        return s->werr;
    if (n == 0)
        return 0;
    r = send_now(s, sb_buf_data(&s->out), n, deadline);
    sb_buf_reset(&s->out);
    return r;
}

static int write_at(sb_stream *s, const void *p, size_t n, int64_t deadline)
{
    int r;

    if (s->werr)
        return s->werr;
    if (n == 0)
        return 0;
    if (sb_buf_len(&s->out) + n > SB_STREAM_OUT_MAX) {
        r = flush_at(s, deadline);
        if (r < 0)
            return r;
    }
    /* A write that alone fills the buffer gains nothing from a copy. */
    if (n >= SB_STREAM_OUT_MAX)
        return send_now(s, p, n, deadline);
    return sb_buf_append(&s->out, p, n);
}

ssize_t sb_stream_write(sb_stream *s, const void *p, size_t n)
{
    int r;

    if (n > SSIZE_MAX)
        return -EINVAL;
    r = write_at(s, p, n, deadline_of(s));
    return r < 0 ? r : (ssize_t)n;
}

int sb_stream_flush(sb_stream *s)
{
    return flush_at(s, deadline_of(s));
}

/* ---- input -------------------------------------------------------------- */

/* Drop the message handed out by the previous read_msg. */
static void settle(sb_stream *s)
{
    if (s->consumed) {
        sb_buf_consume(&s->in, s->consumed);
        s->consumed = 0;
    }
}

/* Receive one chunk into `in`: 1 when bytes arrived, 0 at EOF, or an error
 * (SB_ETOOBIG when the input is already at its bound). */
static int fill(sb_stream *s, int64_t deadline)
{
    size_t room = SB_STREAM_CHUNK, left;
    uint8_t *p;
    ssize_t n;
    int r;

    if (s->in.max) {
        left = s->in.max - sb_buf_len(&s->in);
        if (left == 0)
            return SB_ETOOBIG;
        if (left < room)
            room = left;
    }
    r = sb_buf_reserve(&s->in, room, &p);
    if (r < 0)
        return r;
    n = stream_recv_some(s, p, room, deadline);
    if (n < 0)
        return (int)n;
    if (n == 0) {
        s->eof = 1;
        return 0;
    }
    sb_buf_commit(&s->in, (size_t)n);
    return 1;
}

ssize_t sb_stream_read(sb_stream *s, void *p, size_t n)
{
    size_t have;
    ssize_t r;

    settle(s);
    if (n == 0)
        return 0;
    if (sb_buf_len(&s->in) == 0) {
        if (s->eof)
            return 0;
        /* A read as large as a chunk goes straight to the caller's memory. */
        if (n >= SB_STREAM_CHUNK) {
            r = stream_recv_some(s, p, n, deadline_of(s));
            if (r == 0)
                s->eof = 1;
            return r;
        }
        r = fill(s, deadline_of(s));
        if (r <= 0)
            return r;
    }
    have = sb_buf_len(&s->in);
    if (have > n)
        have = n;
    memcpy(p, sb_buf_data(&s->in), have);
    sb_buf_consume(&s->in, have);
    sb_frame_state_reset(&s->fs); /* the unfinished message, if any, lost its start */
    return (ssize_t)have;
}

/* ---- messages ------------------------------------------------------------ */

int sb_stream_write_msg(sb_stream *s, int type, const void *p, size_t n)
{
    uint8_t hdr[SB_FRAME_HDR_MAX], trl[SB_FRAME_HDR_MAX];
    int64_t deadline = deadline_of(s);
    int h, t, r;

    r = sb_frame_check_payload(&s->spec, p, n);
    if (r < 0)
        return r;
    h = sb_frame_header(&s->spec, type, n, hdr);
    if (h < 0)
        return h;
    t = sb_frame_trailer(&s->spec, p, n, trl);
    if (t < 0)
        return t;
    r = write_at(s, hdr, (size_t)h, deadline);
    if (r == 0)
        r = write_at(s, p, n, deadline);
    if (r == 0)
        r = write_at(s, trl, (size_t)t, deadline);
    return r;
}

int sb_stream_read_msg(sb_stream *s, sb_msg *msg)
{
    static const uint8_t none[1];
    int64_t deadline = deadline_of(s);
    size_t n;
    ssize_t r;

    settle(s);
    for (;;) {
        n = sb_buf_len(&s->in);
        /* An empty buffer may have no memory yet: give the decoder a real
         * address rather than NULL plus an offset. */
        r = sb_frame_decode_from(&s->spec, s->max_msg, n ? sb_buf_data(&s->in) : none, n, s->eof,
                                 msg, &s->fs);
        if (r > 0) {
            s->consumed = (size_t)r;
            return 1;
        }
        if (r < 0)
            return (int)r;
        if (s->eof)
            return 0; /* the decoder saw EOF with nothing left over */
        r = fill(s, deadline);
        if (r < 0)
            return (int)r;
    }
}

int sb_stream_request(sb_stream *s, int type, const void *p, size_t n, sb_msg *reply)
{
    int64_t deadline = deadline_of(s);
    int r = sb_stream_write_msg(s, type, p, n);

    if (r == 0)
        r = flush_at(s, deadline);
    return r < 0 ? r : sb_stream_read_msg(s, reply);
}
