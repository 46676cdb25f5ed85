/* test_uring: what the io_uring backend's completion side adds (loop_int.h,
 * struct sb__ring), beyond the per-backend suites (test_loop, test_conn,
 * test_server run every case on uring too):
 *
 *   - a kernel without io_uring, or one that forbids it, fails the loop's
 *     creation with the system's code (the setup call faulted through the
 *     sys table), and the default backend is unaffected;
 *   - without the completion side (no buffer ring) the backend polls, and
 *     connections still work;
 *   - more connections sending than the ring has buffers (ENOBUFS ends the
 *     multishot receive; it is re-armed): nothing lost or reordered, and
 *     messages spanning several buffers arrive whole; the kernel's ring
 *     holds only what the turns need, growing when it runs dry and
 *     shrinking when turns use little;
 *   - a paused connection's receive is cancelled: the bytes stay in the
 *     kernel until the resume; what a turn's completions brought before
 *     the pause, or before the output passed its high-water mark, is held
 *     (beyond `in`'s bound) and delivered later, never past the out cap;
 *   - a connection closed with a send or a receive in flight is freed only
 *     by the last completion, the peer sees the close, and a loop freed
 *     right after the close frees it too;
 *   - a loop made on one thread and run on another (the server's workers):
 *     the ring is bound to the thread that runs it.
 *
 * Skipped (printed) where the build has no uring backend or the kernel
 * refuses it, and under valgrind, which does not model io_uring. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "test.h"
#include "test_conn_util.h"
#include "conn_int.h"
#include "sys.h"

#ifdef SB_WITH_URING /* the cases need the backend's private knobs */

typedef struct {
    int messages;
    int closes;
    int close_err;
    size_t reply_size; /* 0: echo; else reply with this many bytes */
    int ring_busy_at_close; /* the op's requests still in flight when on_close ran */
} state;

static uint8_t big[1 << 20];

static int on_message(sb_conn *c, const sb_msg *m, void *app)
{
    state *s = app;
    int rc;

    s->messages++;
    if (s->reply_size)
        rc = sb_conn_send(c, m->type, big, s->reply_size);
    else
        rc = sb_conn_send(c, m->type, m->data, m->len);
    return rc == SB_EOUTPUT ? 0 : rc;
}

static void on_close(sb_conn *c, int err, void *app)
{
    state *s = app;
    s->closes++;
    s->close_err = err;
    s->ring_busy_at_close = c->op.busy != 0;
}

static sb_handler handler(state *s)
{
    sb_handler h = {NULL, on_message, NULL, on_close, s};
    return h;
}

/* A uring loop whose buffer ring has n buffers of size bytes (the
 * defaults are restored for the loops made after it). */
static sb_loop *ring_loop(unsigned n, unsigned size)
{
    unsigned saved_n = sb__uring_bufs, saved_size = sb__uring_buf_size;
    sb_loop *l = NULL;

    sb__uring_bufs = n;
    sb__uring_buf_size = size;
    CHECK_EQ(sb_loop_new(&l, "uring"), 0);
    sb__uring_bufs = saved_n;
    sb__uring_buf_size = saved_size;
    return l;
}

/* Append 16-byte numbered lines to b until it holds at least total bytes. */
static void numbered_lines(sb_buf *b, size_t total)
{
    for (int i = 0; sb_buf_len(b) < total; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "message %07d\n", i);
        CHECK_EQ(sb_buf_append(b, line, (size_t)n), 0);
    }
}

/* ---- io_uring unavailable ------------------------------------------------ */

static int fake_err;

static int fake_uring_init(unsigned entries, struct io_uring *ring, struct io_uring_params *p)
{
    return fake_err;
}

static void test_unavailable(void)
{
    static const int codes[] = {-ENOSYS, -EPERM};
    sb_loop *l;

    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        fake_err = codes[i];
        sb__sys.uring_init = fake_uring_init;
        l = (sb_loop *)1;
        CHECK_EQ(sb_loop_new(&l, "uring"), codes[i]);
        CHECK(l == NULL);
        CHECK_EQ(sb_loop_new(&l, NULL), 0); /* the default never asks for io_uring */
        CHECK(strcmp(sb_loop_backend(l), "epoll") == 0);
        sb_loop_free(l);
        sb__sys_reset();
    }
}

/* ---- readiness only -------------------------------------------------------- */

/* Without the completion side (a kernel before multishot receive; here, a
 * buffer count the ring refuses) the backend is a readiness one: the loop
 * offers no ring, connections are polled, and they still echo. */
static void test_readiness_only(void)
{
    sb_loop *l = ring_loop(3, sb__uring_buf_size); /* not a power of two: no buffer ring */
    state s = {0};
    sb_handler h = handler(&s);
    sb_conn_opts o;
    sb_buf back = {0};
    int sv[2];

    CHECK(sb__loop_ring(l) == NULL);
    opts_for(&o, "line");
    pair(sv);
    CHECK_EQ(sb_conn_open(l, sv[0], &o, &h, NULL), 0);
    CHECK_EQ(write(sv[1], "a\nb\n", 4), 4);
    SPIN_UNTIL(l, (drain(sv[1], &back), sb_buf_len(&back) == 4));
    CHECK(memcmp(sb_buf_data(&back), "a\nb\n", 4) == 0);
    close(sv[1]);
    SPIN_UNTIL(l, s.closes == 1);
    sb_buf_free(&back);
    sb_loop_free(l);
}

/* ---- buffers ------------------------------------------------------------- */

#define NCONN 24

/* Each connection's peer writes a stream of len32 messages of varied
 * sizes (some larger than a buffer) and must read back exactly that
 * stream: the echo of whole messages in order is the same bytes. */
static void test_ring_dry(void)
{
    sb_loop *l;
    state s = {0};
    sb_handler h = handler(&s);
    sb_conn_opts o;
    sb_buf want[NCONN], back[NCONN];
    size_t sent[NCONN];
    int sv[NCONN][2];
    uint32_t seed = 7;

    l = ring_loop(4, 1024); /* 24 connections, 4 buffers: the ring runs dry */
    CHECK(sb__loop_ring(l) != NULL);
    opts_for(&o, "len32");
    for (int i = 0; i < NCONN; i++) {
        pair(sv[i]);
        CHECK_EQ(sb_conn_open(l, sv[i][0], &o, &h, NULL), 0);
        sb_buf_init(&want[i], 0);
        sb_buf_init(&back[i], 0);
        sent[i] = 0;
        for (int m = 0; m < 40; m++) {
            uint8_t hdr[4], *p;
            seed = seed * 1103515245u + 12345u;
            uint32_t len = 1 + (seed >> 8) % 3000;
            hdr[0] = (uint8_t)(len >> 24), hdr[1] = (uint8_t)(len >> 16);
            hdr[2] = (uint8_t)(len >> 8), hdr[3] = (uint8_t)len;
            CHECK_EQ(sb_buf_append(&want[i], hdr, 4), 0);
            CHECK_EQ(sb_buf_reserve(&want[i], len, &p), 0);
            for (uint32_t k = 0; k < len; k++)
                p[k] = (uint8_t)(i * 31 + m * 7 + k);
            sb_buf_commit(&want[i], len);
        }
    }
    /* Every peer writes as much as its socket takes each round, so all of
     * them have bytes waiting when the loop turns. */
    int done = 0;
    for (int round = 0; round < 20000 && !done; round++) {
        done = 1;
        for (int i = 0; i < NCONN; i++) {
            size_t left = sb_buf_len(&want[i]) - sent[i];
            if (left > 0) {
                ssize_t n = write(sv[i][1], sb_buf_data(&want[i]) + sent[i], left);
                if (n > 0)
                    sent[i] += (size_t)n;
            }
            drain(sv[i][1], &back[i]);
            if (sb_buf_len(&back[i]) < sb_buf_len(&want[i]))
                done = 0;
        }
        sb_loop_run_once(l, 1);
    }
    for (int i = 0; i < NCONN; i++) {
        CHECK_EQ(sb_buf_len(&back[i]), sb_buf_len(&want[i]));
        CHECK(memcmp(sb_buf_data(&back[i]), sb_buf_data(&want[i]), sb_buf_len(&want[i])) == 0);
        close(sv[i][1]);
    }
    CHECK_EQ(s.messages, NCONN * 40);
    SPIN_UNTIL(l, s.closes == NCONN);
    CHECK_EQ(s.close_err, 0);
    for (int i = 0; i < NCONN; i++) {
        sb_buf_free(&want[i]);
        sb_buf_free(&back[i]);
    }
    sb_loop_free(l);
}

/* The kernel's ring holds only as many buffers as the turns need (a FIFO
 * of all of them would make every receive land in cold memory): 32 of 64
 * at first; 60 connections with bytes waiting run it dry, and it grows to
 * all 64 with nothing lost; turns that use few shrink it back, step by
 * step, never under 16. */
static void test_ring_target(void)
{
    sb_loop *l;
    state s = {0};
    sb_handler h = handler(&s);
    sb_conn_opts o;
    sb_buf back[60];
    int sv[60][2], got = 0;

    l = ring_loop(64, 1024);
    CHECK_EQ(sb__uring_ring_target(l), 32);
    opts_for(&o, "line");
    for (int i = 0; i < 60; i++) {
        pair(sv[i]);
        sb_buf_init(&back[i], 0);
        CHECK_EQ(sb_conn_open(l, sv[i][0], &o, &h, NULL), 0);
    }
    sb_loop_run_once(l, 0); /* every receive armed, no bytes yet */
    for (int i = 0; i < 60; i++)
        CHECK_EQ(write(sv[i][1], "ping\n", 5), 5);
    for (int round = 0; round < 2000 && got < 60; round++) {
        sb_loop_run_once(l, 1);
        got = 0;
        for (int i = 0; i < 60; i++)
            got += (drain(sv[i][1], &back[i]), sb_buf_len(&back[i]) == 5);
    }
    CHECK_EQ(got, 60);
    CHECK_EQ(sb__uring_ring_target(l), 64);
    for (int i = 0; i < 60; i++)
        CHECK(memcmp(sb_buf_data(&back[i]), "ping\n", 5) == 0);
    for (int i = 0; i < 3 * 1024 && sb__uring_ring_target(l) > 16; i++)
        sb_loop_run_once(l, 0);
    CHECK_EQ(sb__uring_ring_target(l), 16);
    for (int i = 0; i < 2 * 1024; i++)
        sb_loop_run_once(l, 0);
    CHECK_EQ(sb__uring_ring_target(l), 16);
    for (int i = 0; i < 60; i++) {
        close(sv[i][1]);
        sb_buf_free(&back[i]);
    }
    SPIN_UNTIL(l, s.closes == 60);
    sb_loop_free(l);
}

/* ---- stopping to read ---------------------------------------------------- */

static int pause_first(sb_conn *c, const sb_msg *m, void *app)
{
    state *s = app;
    s->messages++;
    sb_conn_pause(c);
    return sb_conn_send(c, m->type, m->data, m->len);
}

/* A paused connection cancels its receive: what the peer sends next stays
 * in the kernel's socket buffer (not in a ring buffer, not in the
 * connection) until the resume. */
static void test_pause_cancels(void)
{
    sb_loop *l;
    state s = {0};
    sb_handler h = {NULL, pause_first, NULL, on_close, &s};
    sb_conn_opts o;
    sb_conn *c;
    sb_buf back = {0};
    int sv[2], pending = 0;

    CHECK_EQ(sb_loop_new(&l, "uring"), 0);
    opts_for(&o, "line");
    pair(sv);
    CHECK_EQ(sb_conn_open(l, sv[0], &o, &h, &c), 0);
    CHECK_EQ(write(sv[1], "a\n", 2), 2);
    SPIN_UNTIL(l, s.messages == 1 && (c->op.busy & (1u << SB__OP_RECV)) == 0);
    CHECK_EQ(write(sv[1], "b\nc\n", 4), 4);
    for (int i = 0; i < 20; i++)
        sb_loop_run_once(l, 1);
    CHECK_EQ(ioctl(sv[0], FIONREAD, &pending), 0);
    CHECK_EQ(pending, 4);
    CHECK_EQ(c->op.busy & (1u << SB__OP_RECV), 0); /* the cancel ended the receive */
    CHECK_EQ(s.messages, 1);
    s.messages = 100; /* from now on: no more pauses matter; count on */
    h.on_message = on_message;
    sb_conn_resume(c);
    SPIN_UNTIL(l, (drain(sv[1], &back), sb_buf_len(&back) == 6));
    CHECK(memcmp(sb_buf_data(&back), "a\nb\nc\n", 6) == 0);
    close(sv[1]);
    SPIN_UNTIL(l, s.closes == 1);
    sb_buf_free(&back);
    sb_loop_free(l);
}

/* A whole turn's completions reach a connection at once, all taken from
 * the socket before the connection could stop reading. Output over its
 * high-water mark, or a pause, must hold what they brought - beyond `in`'s
 * one-message bound (max_msg 64 here) - not deliver it past the output cap
 * nor refuse it: 40 KiB of lines, written before the loop turns, on 1 KiB
 * buffers, against an 8 KiB output cap, come back whole. */
static int pause_each(sb_conn *c, const sb_msg *m, void *app)
{
    state *s = app;
    s->messages++;
    if (s->messages % 100 == 1)
        sb_conn_pause(c);
    return sb_conn_send(c, m->type, m->data, m->len);
}

static void held_turn(int pausing)
{
    sb_loop *l;
    state s = {0};
    sb_handler h = {NULL, pausing ? pause_each : on_message, NULL, on_close, &s};
    sb_conn_opts o;
    sb_conn *c;
    sb_buf want = {0}, back = {0};
    int sv[2];

    l = ring_loop(64, 1024);
    opts_for(&o, "line");
    o.max_msg = 64;
    o.out_high = 2048;
    o.out_cap = 8192;
    pair(sv);
    numbered_lines(&want, 40u << 10);
    CHECK_EQ(write(sv[1], sb_buf_data(&want), sb_buf_len(&want)), (ssize_t)sb_buf_len(&want));
    CHECK_EQ(sb_conn_open(l, sv[0], &o, &h, &c), 0);
    for (int i = 0; i < 20000 && sb_buf_len(&back) < sb_buf_len(&want) && s.closes == 0; i++) {
        sb_loop_run_once(l, 1);
        if (pausing && (c->flags & F_PAUSED))
            sb_conn_resume(c);
        if (i % 4 == 3) /* a slow reader: the output backs up between reads */
            drain(sv[1], &back);
    }
    CHECK_EQ(s.closes, 0);
    CHECK_EQ(sb_buf_len(&back), sb_buf_len(&want));
    CHECK(memcmp(sb_buf_data(&back), sb_buf_data(&want), sb_buf_len(&want)) == 0);
    close(sv[1]);
    SPIN_UNTIL(l, s.closes == 1);
    CHECK_EQ(s.close_err, 0);
    sb_buf_free(&want);
    sb_buf_free(&back);
    sb_loop_free(l);
}

static void test_held_over_high_water(void)
{
    held_turn(0);
}

static void test_held_while_paused(void)
{
    held_turn(1);
}

/* Connection A pauses on its first message with a turn's worth of lines
 * held (80 KB on 1,984-byte buffers); B's message, later in the same
 * turn, resumes A. A's completions
 * still to run in that turn must go behind what A holds, which is then
 * delivered first - beyond `in`'s one-message bound, nothing refused or
 * lost, in order. */
static int resume_peer(sb_conn *c, const sb_msg *m, void *app)
{
    sb_conn_resume(app);
    return 0;
}

static void test_resumed_within_turn(void)
{
    sb_loop *l;
    state s = {0};
    sb_handler ha = {NULL, pause_each, NULL, on_close, &s};
    sb_handler hb = {NULL, resume_peer, NULL, NULL, NULL};
    sb_conn_opts o;
    sb_conn *a;
    sb_buf want = {0}, back = {0};
    int va[2], vb[2];

    l = ring_loop(256, 1984);
    opts_for(&o, "line");
    o.max_msg = 64;
    /* A flood first grows the kernel's ring, so that A's completions
     * come in the first turn: the kernel runs 32 of them, B's, then more
     * of A's. */
    state sw = {0};
    sb_handler hw = {NULL, on_message, NULL, on_close, &sw};
    sb_buf flood = {0};
    int vw[2];
    size_t off = 0;
    pair(vw);
    CHECK_EQ(sb_conn_open(l, vw[0], &o, &hw, NULL), 0);
    numbered_lines(&flood, 200000);
    for (int i = 0; i < 2000 && sb__uring_ring_target(l) < 64; i++) {
        ssize_t n = write(vw[1], sb_buf_data(&flood) + off, sb_buf_len(&flood) - off);
        if (n > 0)
            off = (off + (size_t)n) % sb_buf_len(&flood);
        sb_loop_run_once(l, 1);
        sb_buf_free(&back);
        drain(vw[1], &back);
    }
    CHECK(sb__uring_ring_target(l) >= 64);
    sb_buf_free(&back);
    close(vw[1]);
    SPIN_UNTIL(l, sw.closes == 1);
    sb_buf_free(&flood);
    pair(va);
    pair(vb);
    numbered_lines(&want, 80000);
    CHECK_EQ(write(va[1], sb_buf_data(&want), sb_buf_len(&want)), (ssize_t)sb_buf_len(&want));
    CHECK_EQ(write(vb[1], "go\n", 3), 3);
    CHECK_EQ(sb_conn_open(l, va[0], &o, &ha, &a), 0);
    hb.app = a;
    CHECK_EQ(sb_conn_open(l, vb[0], &o, &hb, NULL), 0);
    for (int i = 0; i < 20000 && sb_buf_len(&back) < sb_buf_len(&want) && s.closes == 0; i++) {
        sb_loop_run_once(l, 1);
        if (a->flags & F_PAUSED)
            sb_conn_resume(a);
        drain(va[1], &back);
    }
    CHECK_EQ(s.closes, 0);
    CHECK_EQ(sb_buf_len(&back), sb_buf_len(&want));
    CHECK(memcmp(sb_buf_data(&back), sb_buf_data(&want), sb_buf_len(&want)) == 0);
    close(va[1]);
    close(vb[1]);
    SPIN_UNTIL(l, s.closes == 1);
    CHECK_EQ(s.close_err, 0);
    sb_buf_free(&want);
    sb_buf_free(&back);
    sb_loop_free(l);
}

/* The handler closes partway through a receive's bytes (max_msg 64, 1 KiB
 * buffers that end mid-line): a clean close, not "message too big" from
 * the bytes it no longer takes. */
static int close_at_70(sb_conn *c, const sb_msg *m, void *app)
{
    state *s = app;
    if (++s->messages == 70)
        sb_conn_close(c);
    return 0;
}

static void test_close_within_receive(void)
{
    sb_loop *l;
    state s = {0};
    sb_handler h = {NULL, close_at_70, NULL, on_close, &s};
    sb_conn_opts o;
    sb_buf data = {0};
    int sv[2];

    l = ring_loop(64, 1024);
    opts_for(&o, "line");
    o.max_msg = 64;
    pair(sv);
    for (int i = 0; i < 300; i++) { /* 15-byte lines: 1 KiB buffers end mid-line */
        char line[32];
        int n = snprintf(line, sizeof line, "message %06d\n", i);
        CHECK_EQ(sb_buf_append(&data, line, (size_t)n), 0);
    }
    CHECK_EQ(write(sv[1], sb_buf_data(&data), sb_buf_len(&data)), (ssize_t)sb_buf_len(&data));
    CHECK_EQ(sb_conn_open(l, sv[0], &o, &h, NULL), 0);
    SPIN_UNTIL(l, s.closes == 1);
    CHECK_EQ(s.messages, 70);
    CHECK_EQ(s.close_err, 0);
    close(sv[1]);
    sb_buf_free(&data);
    sb_loop_free(l);
}

/* ---- closing with requests in flight ------------------------------------- */

static const void *watched;
static int watched_freed;

static void watch_free(void *p)
{
    if (p != NULL && p == watched)
        watched_freed = 1;
    free(p);
}

/* A reply of 1 MiB to a peer that does not read: the send is parked in the
 * kernel when the connection is aborted. on_close runs at once, the
 * connection is freed only by the send's (cancelled) completion, and then
 * the peer sees the socket closed. With free_loop, the loop is freed right
 * after the close instead, which must free the connection too. */
static void close_with_send(int free_loop)
{
    sb_loop *l;
    state s = {.reply_size = sizeof big};
    sb_handler h = handler(&s);
    sb_conn_opts o;
    sb_conn *c;
    int sv[2];

    CHECK_EQ(sb_loop_new(&l, "uring"), 0);
    opts_for(&o, "line");
    o.out_cap = 8 << 20;
    o.out_high = 4 << 20;
    pair(sv);
    CHECK_EQ(sb_conn_open(l, sv[0], &o, &h, &c), 0);
    CHECK_EQ(write(sv[1], "x\n", 2), 2);
    SPIN_UNTIL(l, s.messages == 1 && (c->op.busy & (1u << SB__OP_SEND)));
    for (int i = 0; i < 10; i++)
        sb_loop_run_once(l, 1);
    CHECK(c->op.busy & (1u << SB__OP_SEND)); /* the peer reads nothing: still in flight */
    watched = c;
    watched_freed = 0;
    sb__sys.free = watch_free;
    sb_conn_abort(c);
    SPIN_UNTIL(l, s.closes == 1);
    CHECK(s.ring_busy_at_close);
    if (free_loop) {
        CHECK_EQ(watched_freed, 0);
        sb_loop_free(l);
        CHECK_EQ(watched_freed, 1);
    } else {
        SPIN_UNTIL(l, watched_freed);
    }
    sb__sys_reset();
    /* The socket is closed once nothing holds it: the peer reads the
     * replies' bytes that made it, then the end. */
    sb_buf back = {0};
    sb_set_nonblock(sv[1], 0);
    struct timeval tv = {5, 0};
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int ended = 0;
    for (int64_t end = sb_now_ms() + 10000; !ended && sb_now_ms() < end;) {
        uint8_t *p;
        CHECK_EQ(sb_buf_reserve(&back, 65536, &p), 0);
        ssize_t n = read(sv[1], p, 65536);
        if (n < 0 && errno == EINTR)
            continue; /* the ring's teardown notifies this thread (task work) */
        CHECK(n >= 0 || errno == ECONNRESET);
        if (n <= 0)
            ended = 1;
        else
            sb_buf_commit(&back, (size_t)n);
    }
    CHECK(ended);
    CHECK(sb_buf_len(&back) < sizeof big + 5);
    close(sv[1]);
    sb_buf_free(&back);
    if (!free_loop)
        sb_loop_free(l);
}

static void test_close_with_send(void)
{
    close_with_send(0);
}

static void test_free_loop_with_send(void)
{
    close_with_send(1);
}

/* An idle connection closed by the app. Gracefully: the close waits for
 * the armed receive's cancel to end it (bytes it took would say the peer
 * is still sending, and the close should linger), so on_close finds
 * nothing in flight and the peer sees EOF. Aborted: on_close runs at
 * once, the connection is freed by the cancel's completion. */
static void close_with_recv(int aborted)
{
    sb_loop *l;
    state s = {0};
    sb_handler h = handler(&s);
    sb_conn_opts o;
    sb_conn *c;
    int sv[2];
    char b;

    CHECK_EQ(sb_loop_new(&l, "uring"), 0);
    opts_for(&o, "line");
    pair(sv);
    CHECK_EQ(sb_conn_open(l, sv[0], &o, &h, &c), 0);
    SPIN_UNTIL(l, c->op.busy & (1u << SB__OP_RECV));
    watched = c;
    watched_freed = 0;
    sb__sys.free = watch_free;
    if (aborted)
        sb_conn_abort(c);
    else
        sb_conn_close(c);
    SPIN_UNTIL(l, s.closes == 1);
    CHECK_EQ(s.ring_busy_at_close, aborted);
    CHECK_EQ(s.close_err, 0);
    SPIN_UNTIL(l, watched_freed);
    sb__sys_reset();
    SPIN_UNTIL(l, read(sv[1], &b, 1) == 0); /* a socket pair ends without a reset */
    close(sv[1]);
    sb_loop_free(l);
}

static void test_close_with_recv(void)
{
    close_with_recv(0);
}

static void test_abort_with_recv(void)
{
    close_with_recv(1);
}

/* ---- threads -------------------------------------------------------------- */

struct runner {
    sb_loop *l;
    state *s;
};

static void *run_loop(void *p)
{
    struct runner *r = p;
    for (int i = 0; i < 20000 && r->s->closes == 0; i++)
        CHECK(sb_loop_run_once(r->l, 1) >= 0);
    return NULL;
}

/* Made here, run there: the first wait binds the ring to its thread. */
static void test_other_thread(void)
{
    sb_loop *l;
    state s = {0};
    sb_handler h = handler(&s);
    sb_conn_opts o;
    sb_buf back = {0};
    pthread_t t;
    int sv[2];

    CHECK_EQ(sb_loop_new(&l, "uring"), 0);
    opts_for(&o, "line");
    pair(sv);
    CHECK_EQ(sb_conn_open(l, sv[0], &o, &h, NULL), 0);
    CHECK_EQ(write(sv[1], "hi\n", 3), 3);
    shutdown(sv[1], SHUT_WR);
    struct runner r = {l, &s};
    CHECK_EQ(pthread_create(&t, NULL, run_loop, &r), 0);
    pthread_join(t, NULL);
    CHECK_EQ(s.closes, 1);
    CHECK_EQ(s.close_err, 0);
    drain(sv[1], &back);
    CHECK_EQ(sb_buf_len(&back), 3);
    CHECK(memcmp(sb_buf_data(&back), "hi\n", 3) == 0);
    close(sv[1]);
    sb_buf_free(&back);
    sb_loop_free(l);
}

#endif /* SB_WITH_URING */

int main(void)
{
#ifndef SB_WITH_URING
    fprintf(stderr, "  (no io_uring backend in this build)\n");
    return 0;
#else
    sb_loop *l;

    RUN(test_unavailable);
    if (!sb_test_backend_ok("uring"))
        return 0;
    RUN(test_readiness_only);
    CHECK_EQ(sb_loop_new(&l, "uring"), 0);
    if (sb__loop_ring(l) == NULL) {
        fprintf(stderr, "  (this kernel's io_uring has no multishot receive: readiness only)\n");
        sb_loop_free(l);
        return 0;
    }
    sb_loop_free(l);
    signal(SIGPIPE, SIG_IGN);
    RUN(test_ring_dry);
    RUN(test_ring_target);
    RUN(test_pause_cancels);
    RUN(test_held_over_high_water);
    RUN(test_held_while_paused);
    RUN(test_resumed_within_turn);
    RUN(test_close_within_receive);
    RUN(test_close_with_send);
    RUN(test_free_loop_with_send);
    RUN(test_close_with_recv);
    RUN(test_abort_with_recv);
    RUN(test_other_thread);
    return 0;
#endif
}
