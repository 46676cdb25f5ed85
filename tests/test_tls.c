/* test_tls: the TLS transport and sessions (src/tls.c).
 *
 *   - a handshake and an echo of small and large messages between two
 *     connections on one loop, over a socketpair, on every backend; the
 *     server sees a clean close (close_notify), both sides verified;
 *   - verification failures name what failed (SB_ETLSVERIFY, SB_ETLSHOST);
 *     a verifying client with no host name fails (SB_ETLSCONF) unless it
 *     opts out with no_host_check;
 *   - a server that speaks first to a client whose handler writes nothing;
 *   - the handshake timeout, under the loop and the blocking driver;
 *   - bytes read ahead by the engine, with the socket empty, reach a
 *     connection resumed after a pause (every backend);
 *   - a greeting queued before the client's hello does not spin the
 *     server's wait (blocking driver, poll, select, epoll);
 *   - a server stopped by backpressure while its peer keeps sending does
 *     not spin on the readable socket it is not reading;
 *   - a blocking-model server (sb_conn_run_blocking) and a blocking client
 *     session (sb_tls_connect, send_all, recv_some, shutdown);
 *   - a close_notify in the handshake ends sb_tls_connect at once (SB_ETLS);
 *   - truncation: an `eof` message ended by a FIN without close_notify is
 *     SB_ETLSTRUNC, not a message; a client reading to the end of a stream
 *     cut the same way gets SB_ETLSTRUNC after the bytes;
 *   - the edge-triggered rule: a read fills the caller's buffer across
 *     records and returns short only when nothing more is readable;
 *   - faults through sb__sys (tests/fault.h): EINTR and short counts in
 *     every recv and send of a handshake and exchange, one at a time.
 * Certificates are made by the `openssl` command in a temporary directory;
 * without it the test says so and passes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "test.h"
#include "fault.h"

static char dir[64];
static char ca[128], cert[128], key[128];

static int sh(const char *cmd)
{
    char full[1024];
    snprintf(full, sizeof full, "cd %s && %s >/dev/null 2>&1", dir, cmd);
    return system(full);
}

static int make_certs(void)
{
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    char cmd[512];

    strcpy(dir, "/tmp/sb-test-tls-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof cmd, "openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=ca", ec);
    if (sh(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "openssl req -new %s -keyout s.key -out s.csr -subj /CN=localhost", ec);
    CHECK(sh(cmd) == 0);
    CHECK(sh("printf 'subjectAltName=DNS:localhost\\n' > s.ext") == 0);
    CHECK(sh("openssl x509 -req -in s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out s.pem "
             "-days 2 -extfile s.ext") == 0);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/s.pem", dir);
    snprintf(key, sizeof key, "%s/s.key", dir);
    return 0;
}

static sb_tls *server_ctx(void)
{
    sb_tls_opts o;
    sb_tls *t;
    char why[256];

    sb_tls_opts_default(&o);
    o.cert_file = cert;
    o.key_file = key;
    CHECK_EQ(sb_tls_server_new(&t, &o, why, sizeof why), 0);
    return t;
}

static sb_tls *client_ctx(const char *cafile, const char *name)
{
    sb_tls_opts o;
    sb_tls *t;
    char why[256];

    sb_tls_opts_default(&o);
    o.ca_file = cafile;
    o.server_name = name;
    CHECK_EQ(sb_tls_client_new(&t, &o, why, sizeof why), 0);
    return t;
}

/* ------------------------------------------------------------------ */
/* Two connections on one loop                                         */

typedef struct pair {
    sb_loop *l;
    size_t big;          /* bytes of the large message */
    int got_small, got_big, closes;
    int server_err, client_err;
    int server_msgs;
} pair;

static int srv_msg(sb_conn *c, const sb_msg *m, void *app)
{
    ((pair *)app)->server_msgs++;
    return sb_conn_send(c, 0, m->data, m->len);
}

static void srv_close(sb_conn *c, int err, void *app)
{
    pair *p = app;
    p->server_err = err;
    if (++p->closes == 2)
        sb_loop_stop(p->l);
}

static int cli_open(sb_conn *c, void *app)
{
    pair *p = app;
    char *big = malloc(p->big);

    CHECK(big != NULL);
    for (size_t i = 0; i < p->big; i++)
        big[i] = (char)('a' + i % 26);
    CHECK_EQ(sb_conn_send(c, 0, "ping", 4), 0);
    CHECK_EQ(sb_conn_send(c, 0, big, p->big), 0);
    free(big);
    return 0;
}

static int cli_msg(sb_conn *c, const sb_msg *m, void *app)
{
    pair *p = app;

    if (m->len == 4 && memcmp(m->data, "ping", 4) == 0) {
        p->got_small = 1;
        return 0;
    }
    CHECK_EQ(m->len, p->big);
    for (size_t i = 0; i < m->len; i++)
        CHECK(m->data[i] == (uint8_t)('a' + i % 26));
    p->got_big = 1;
    sb_conn_close(c);
    return 0;
}

static void cli_close(sb_conn *c, int err, void *app)
{
    pair *p = app;
    p->client_err = err;
    if (++p->closes == 2)
        sb_loop_stop(p->l);
}

/* Run a server and a client connection of ctxs over a socketpair. */
static void run_pair(const char *backend, sb_tls *sctx, sb_tls *cctx, size_t big, pair *p)
{
    sb_handler sh_ = {.on_message = srv_msg, .on_close = srv_close, .app = p};
    sb_handler ch = {.on_open = cli_open, .on_message = cli_msg, .on_close = cli_close, .app = p};
    sb_conn_opts so, co;
    int sv[2];

    memset(p, 0, sizeof *p);
    p->big = big;
    CHECK_EQ(sb_loop_new(&p->l, backend), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sb_conn_opts_default(&so);
    so.frame.kind = SB_FRAME_LEN32;
    so.max_msg = 4u << 20;
    so.tls = sctx;
    co = so;
    co.tls = cctx;
    CHECK_EQ(sb_conn_open(p->l, sv[0], &so, &sh_, NULL), 0);
    CHECK_EQ(sb_conn_open(p->l, sv[1], &co, &ch, NULL), 0);
    CHECK_EQ(sb_loop_run(p->l), 0);
    sb_loop_free(p->l);
}

static void test_loop_echo_every_backend(void)
{
    sb_tls *s = server_ctx(), *c = client_ctx(ca, "localhost");
    pair p;

    for (const char *const *b = sb_loop_backends(); *b; b++) {
        if (!sb_test_backend_ok(*b))
            continue;
        fprintf(stderr, "    %s\n", *b);
        run_pair(*b, s, c, 300000, &p);
        CHECK(p.got_small && p.got_big);
        CHECK_EQ(p.client_err, 0);
        CHECK_EQ(p.server_err, 0); /* our close_notify arrived: a clean end */
    }
    sb_tls_free(s);
    sb_tls_free(c);
}

static void test_verify_failures(void)
{
    sb_tls *s = server_ctx(), *untrusted = client_ctx(NULL, "localhost");
    sb_tls *wrong = client_ctx(ca, "wrong.example");
    pair p;

    run_pair("poll", s, untrusted, 10, &p);
    CHECK_EQ(p.client_err, SB_ETLSVERIFY);
    CHECK(!p.got_small && p.server_msgs == 0);
    run_pair("poll", s, wrong, 10, &p);
    CHECK_EQ(p.client_err, SB_ETLSHOST);
    CHECK(!p.got_small && p.server_msgs == 0);
    sb_tls_free(s);
    sb_tls_free(untrusted);
    sb_tls_free(wrong);
}

/* The server speaks first (a greeting from on_open) and the client's
 * handler writes nothing: the client's handshake must start anyway. */
typedef struct greet {
    sb_loop *l;
    int got, closes, client_err;
} greet;

static int greet_open(sb_conn *c, void *app)
{
    return sb_conn_send(c, 0, "hi", 2);
}

static int greet_msg(sb_conn *c, const sb_msg *m, void *app)
{
    greet *g = app;
    CHECK(m->len == 2 && memcmp(m->data, "hi", 2) == 0);
    g->got = 1;
    sb_conn_close(c);
    return 0;
}

static void greet_close(sb_conn *c, int err, void *app)
{
    greet *g = app;
    if (sb_conn_data(c) != NULL)
        g->client_err = err;
    if (++g->closes == 2)
        sb_loop_stop(g->l);
}

static void test_server_speaks_first(void)
{
    sb_tls *s = server_ctx(), *c = client_ctx(ca, "localhost");
    greet g;
    sb_handler sh_ = {.on_open = greet_open, .on_close = greet_close, .on_message = greet_msg, .app = &g};
    sb_handler ch = {.on_message = greet_msg, .on_close = greet_close, .app = &g};
    sb_conn_opts so, co;
    sb_conn *cc;
    int sv[2];

    memset(&g, 0, sizeof g);
    CHECK_EQ(sb_loop_new(&g.l, "epoll"), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sb_conn_opts_default(&so);
    co = so;
    so.tls = s;
    co.tls = c;
    co.idle_timeout_ms = so.idle_timeout_ms = 5000; /* a failure ends, not hangs */
    CHECK_EQ(sb_conn_open(g.l, sv[0], &so, &sh_, NULL), 0);
    CHECK_EQ(sb_conn_open(g.l, sv[1], &co, &ch, &cc), 0);
    sb_conn_set_data(cc, &g);
    CHECK_EQ(sb_loop_run(g.l), 0);
    CHECK(g.got);
    CHECK_EQ(g.client_err, 0);
    sb_loop_free(g.l);
    sb_tls_free(s);
    sb_tls_free(c);
}

/* A server whose on_open queues a greeting before the client's hello has
 * come: its write waits to read (the handshake), and must not make the
 * server wait for writability meanwhile - the socket is writable, so that
 * wait would return at once, over and over, until the client speaks. */
static atomic_long polls;
static int (*real_poll)(struct pollfd *, nfds_t, int);

static int counting_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    atomic_fetch_add(&polls, 1);
    return real_poll(fds, n, timeout);
}

typedef struct spin {
    int fd;
    const char *backend; /* NULL: the blocking driver */
    const sb_handler *h; /* NULL: greet, then echo */
    sb_conn_opts o;
    int err;
} spin;

static void spin_close(sb_conn *c, int err, void *app)
{
    spin *sp = app;
    sp->err = err;
    if (sb_conn_loop(c))
        sb_loop_stop(sb_conn_loop(c));
}

static void *spin_server(void *arg)
{
    spin *sp = arg;
    sb_handler g = {.on_open = greet_open, .on_message = srv_msg, .on_close = spin_close, .app = sp};
    const sb_handler *h = sp->h ? sp->h : &g;
    sb_loop *l;

    if (sp->backend == NULL) {
        sb_conn_run_blocking(sp->fd, &sp->o, h);
        return NULL;
    }
    CHECK_EQ(sb_loop_new(&l, sp->backend), 0);
    CHECK_EQ(sb_conn_open(l, sp->fd, &sp->o, h, NULL), 0);
    CHECK_EQ(sb_loop_run(l), 0);
    sb_loop_free(l);
    return NULL;
}

static void test_greeting_before_hello_does_not_spin(void)
{
    static const char *const drivers[] = {NULL, "poll", "select", "epoll"};
    sb_tls *s = server_ctx(), *c = client_ctx(ca, NULL);

    for (size_t i = 0; i < sizeof drivers / sizeof *drivers; i++) {
        sb_tls_session *ts;
        pthread_t t;
        char buf[8], why[256];
        int sv[2];
        spin sp;

        memset(&sp, 0, sizeof sp);
        sp.backend = drivers[i];
        sb_conn_opts_default(&sp.o);
        sp.o.tls = s;
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        sp.fd = sv[0];
        real_poll = sb__sys.poll;
        atomic_store(&polls, 0);
        sb__sys.poll = counting_poll;
        CHECK_EQ(pthread_create(&t, NULL, spin_server, &sp), 0);
        usleep(500 * 1000); /* the server waits for our hello all this time */
        long waited = atomic_load(&polls);
        clockid_t cid;
        struct timespec cpu;
        CHECK_EQ(pthread_getcpuclockid(t, &cid), 0);
        CHECK_EQ(clock_gettime(cid, &cpu), 0);
        CHECK_EQ(sb_tls_connect(&ts, c, sv[1], "localhost", sb_now_ms() + 5000, why, sizeof why), 0);
        CHECK_EQ(sb_tls_recv_some(ts, buf, 2, sb_now_ms() + 5000), 2);
        CHECK(memcmp(buf, "hi", 2) == 0);
        sb_tls_session_free(ts);
        shutdown(sv[1], SHUT_WR);
        pthread_join(t, NULL);
        sb__sys.poll = real_poll; /* no other thread left to call it */
        close(sv[1]);
        /* Polls are counted where they go through sb__sys (the blocking
         * driver, the poll backend); the thread's CPU time tells for all. */
        long cpu_ms = (long)cpu.tv_sec * 1000 + cpu.tv_nsec / 1000000;
        fprintf(stderr, "    %s: %ld polls, %ld ms of CPU while waiting 500 ms\n",
                drivers[i] ? drivers[i] : "blocking", waited, cpu_ms);
        CHECK(waited < 20);
        /* A spin takes a core for the whole wait; a wait takes next to
         * nothing. Valgrind's own cost blurs that: there, polls only. */
        if (getenv("SB_VALGRIND") == NULL)
            CHECK(cpu_ms < 250);
    }
    sb_tls_free(s);
    sb_tls_free(c);
}

/* A server that stopped reading (backpressure: its echo is stuck behind a
 * peer that never reads) while the peer keeps sending: the read that last
 * ended on WANT_READ must not keep the server watching for readability -
 * the bytes that make the socket readable are the ones it will not read,
 * so each wait would return at once. The blocking driver (the threads and
 * fork models) and the poll backend; epoll is edge-triggered and select
 * shares poll's level-triggered shape. */
static int stall_msg(sb_conn *c, const sb_msg *m, void *app)
{
    return sb_conn_send(c, 0, m->data, m->len);
}

static void test_stalled_reader_does_not_spin(void)
{
    static const char *const drivers[] = {NULL, "poll", "select"};
    sb_tls *s = server_ctx(), *c = client_ctx(ca, "localhost");

    for (size_t i = 0; i < sizeof drivers / sizeof *drivers; i++) {
        sb_handler h = {.on_message = stall_msg, .on_close = spin_close};
        sb_tls_session *ts;
        pthread_t t;
        char chunk[8192], why[256];
        int sv[2], small = 4096, stuck = 0;
        spin sp;

        if (drivers[i] && !sb_test_backend_ok(drivers[i]))
            continue;
        memset(&sp, 0, sizeof sp);
        for (size_t k = 0; k < sizeof chunk; k++)
            chunk[k] = k % 64 == 63 ? '\n' : 'x'; /* lines: the default framing */
        h.app = &sp;
        sp.h = &h;
        sp.backend = drivers[i];
        sb_conn_opts_default(&sp.o);
        sp.o.tls = s;
        sp.o.out_high = 16384;
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        for (int k = 0; k < 2; k++) {
            setsockopt(sv[k], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
            setsockopt(sv[k], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        }
        sp.fd = sv[0];
        real_poll = sb__sys.poll;
        sb__sys.poll = counting_poll; /* before the thread: the table is not for racing */
        CHECK_EQ(pthread_create(&t, NULL, spin_server, &sp), 0);
        CHECK_EQ(sb_tls_connect(&ts, c, sv[1], "localhost", sb_now_ms() + 5000, why, sizeof why), 0);
        /* Send, never read, until our writes have been stuck for 200 ms:
         * the server's echo fills both sockets, it stops reading, and
         * what we sent last waits in its socket. */
        for (int turns = 0; turns < 500 && stuck < 20; turns++) {
            ssize_t w = sb_tls_write(ts, chunk, sizeof chunk);
            if (w == -EAGAIN) {
                stuck++;
                usleep(10 * 1000);
            } else {
                CHECK(w > 0);
                stuck = 0;
            }
        }
        CHECK_EQ(stuck, 20);
        atomic_store(&polls, 0);
        clockid_t cid;
        struct timespec c0, c1;
        CHECK_EQ(pthread_getcpuclockid(t, &cid), 0);
        CHECK_EQ(clock_gettime(cid, &c0), 0);
        usleep(500 * 1000);
        CHECK_EQ(clock_gettime(cid, &c1), 0);
        long waited = atomic_load(&polls);
        close(sv[1]); /* the server's writes fail: it ends */
        pthread_join(t, NULL);
        sb__sys.poll = real_poll;
        sb_tls_session_free(ts);
        long cpu_ms = (long)(c1.tv_sec - c0.tv_sec) * 1000 + (c1.tv_nsec - c0.tv_nsec) / 1000000;
        fprintf(stderr, "    %s: %ld polls, %ld ms of CPU in 500 ms stalled\n",
                drivers[i] ? drivers[i] : "blocking", waited, cpu_ms);
        /* A runaway loop polls thousands of times and takes what CPU the
         * machine gives it; a wait polls a handful of times and takes none.
         * Polls are counted where they go through sb__sys (the blocking
         * driver, the poll backend); CPU time tells for select too. */
        CHECK(waited < 20);
        if (getenv("SB_VALGRIND") == NULL)
            CHECK(cpu_ms < 150);
    }
    sb_tls_free(s);
    sb_tls_free(c);
}

/* Bytes the engine holds are no edge of the socket. The server answers
 * "go" with 70,000 bytes in one write; the client's first read fills the
 * loop's 64 KiB scratch, the last record sits read ahead in its engine
 * with the socket empty, and the client pauses at the first line. Resumed,
 * it must get every line without a byte more arriving (the turn the full
 * read asked for, kept while paused, and the transport's report of held
 * bytes both lead to that read). */
#define HELD_LINES 700

typedef struct held {
    sb_loop *l;
    sb_conn *client;
    sb_timer resume;
    int lines, closes, paused;
} held;

static int held_srv_msg(sb_conn *c, const sb_msg *m, void *app)
{
    static char burst[HELD_LINES * 100];

    for (int i = 0; i < HELD_LINES; i++) {
        memset(burst + i * 100, 'a' + i % 26, 99);
        burst[i * 100 + 99] = '\n';
    }
    return sb_conn_write(c, burst, sizeof burst);
}

static void held_resume(sb_loop *l, sb_timer *t)
{
    sb_conn_resume(((held *)t->data)->client);
}

static int held_cli_msg(sb_conn *c, const sb_msg *m, void *app)
{
    held *h = app;

    CHECK_EQ(m->len, 99);
    CHECK(m->data[0] == 'a' + h->lines % 26);
    if (++h->lines == HELD_LINES) {
        sb_conn_close(c);
    } else if (h->lines == 1) {
        h->paused = 1;
        sb_conn_pause(c);
        sb_timer_start(h->l, &h->resume, 50);
    }
    return 0;
}

static int held_cli_open(sb_conn *c, void *app)
{
    return sb_conn_send(c, 0, "go", 2);
}

static void held_close(sb_conn *c, int err, void *app)
{
    held *h = app;
    if (++h->closes == 2)
        sb_loop_stop(h->l);
}

static void test_held_bytes_after_resume(void)
{
    sb_tls *s = server_ctx(), *c = client_ctx(ca, "localhost");

    for (const char *const *b = sb_loop_backends(); *b; b++) {
        held h;
        sb_handler sh_ = {.on_message = held_srv_msg, .on_close = held_close, .app = &h};
        sb_handler ch = {.on_open = held_cli_open, .on_message = held_cli_msg,
                         .on_close = held_close, .app = &h};
        sb_conn_opts so, co;
        int sv[2];

        if (!sb_test_backend_ok(*b))
            continue;
        memset(&h, 0, sizeof h);
        sb_timer_init(&h.resume, held_resume, &h);
        CHECK_EQ(sb_loop_new(&h.l, *b), 0);
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        sb_conn_opts_default(&so);
        so.idle_timeout_ms = 5000; /* a lost turn ends the test, not hangs it */
        co = so;
        so.tls = s;
        co.tls = c;
        CHECK_EQ(sb_conn_open(h.l, sv[0], &so, &sh_, NULL), 0);
        CHECK_EQ(sb_conn_open(h.l, sv[1], &co, &ch, &h.client), 0);
        CHECK_EQ(sb_loop_run(h.l), 0);
        fprintf(stderr, "    %s: %d lines\n", *b, h.lines);
        CHECK(h.paused);
        CHECK_EQ(h.lines, HELD_LINES);
        sb_loop_free(h.l);
    }
    sb_tls_free(s);
    sb_tls_free(c);
}

/* A peer that connects and sends nothing is closed at the handshake
 * timeout, under the loop and under the blocking driver. */
static int hs_err;

static void hs_close(sb_conn *c, int err, void *app)
{
    hs_err = err;
    sb_loop_stop(app);
}

static void test_handshake_timeout(void)
{
    sb_tls_opts o;
    sb_tls *s;
    sb_loop *l;
    sb_conn_opts co;
    char why[256];
    int sv[2];
    int64_t t0;

    sb_tls_opts_default(&o);
    o.cert_file = cert;
    o.key_file = key;
    o.handshake_timeout_ms = 200;
    CHECK_EQ(sb_tls_server_new(&s, &o, why, sizeof why), 0);
    sb_conn_opts_default(&co);
    co.tls = s;
    CHECK_EQ(sb_loop_new(&l, "poll"), 0);
    sb_handler h = {.on_close = hs_close, .on_message = srv_msg, .app = l};
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t0 = sb_now_ms();
    CHECK_EQ(sb_conn_open(l, sv[0], &co, &h, NULL), 0);
    CHECK_EQ(sb_loop_run(l), 0);
    CHECK_EQ(hs_err, -ETIMEDOUT);
    CHECK(sb_now_ms() - t0 < 5000);
    sb_loop_free(l);
    close(sv[1]);

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sb_handler hb = {.on_message = srv_msg};
    CHECK_EQ(sb_conn_run_blocking(sv[0], &co, &hb), -ETIMEDOUT);
    close(sv[1]);
    sb_tls_free(s);
}

/* ------------------------------------------------------------------ */
/* Blocking: sb_conn_run_blocking against a session                    */

typedef struct blk {
    int fd;
    sb_conn_opts o;
    int err, msgs;
} blk;

static int blk_msg(sb_conn *c, const sb_msg *m, void *app)
{
    ((blk *)app)->msgs++;
    return sb_conn_send(c, 0, m->data, m->len);
}

static void *blk_server(void *arg)
{
    blk *b = arg;
    sb_handler h = {.on_message = blk_msg, .app = b};
    b->err = sb_conn_run_blocking(b->fd, &b->o, &h);
    return NULL;
}

static void start_blk(blk *b, pthread_t *t, sb_tls *s, const char *spec, int *client)
{
    int sv[2];

    memset(b, 0, sizeof *b);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sb_conn_opts_default(&b->o);
    CHECK_EQ(sb_frame_parse(spec, &b->o.frame), 0);
    b->o.tls = s;
    b->fd = sv[0];
    *client = sv[1];
    CHECK_EQ(pthread_create(t, NULL, blk_server, b), 0);
}

static void test_blocking_session(void)
{
    sb_tls *s = server_ctx(), *c = client_ctx(ca, NULL);
    sb_tls_session *ts;
    pthread_t t;
    char buf[64], why[256];
    blk b;
    int fd;
    ssize_t n, got = 0;

    start_blk(&b, &t, s, "line", &fd);
    CHECK_EQ(sb_tls_connect(&ts, c, fd, "localhost", sb_now_ms() + 5000, why, sizeof why), 0);
    CHECK(strncmp(sb_tls_session_version(ts), "TLSv1.", 6) == 0);
    CHECK_EQ(sb_tls_recv_some(ts, buf, 0, sb_now_ms() + 5000), 0); /* at once, no wait */
    CHECK_EQ(sb_tls_send_all(ts, "one\ntwo\n", 8, sb_now_ms() + 5000), 8);
    while (got < 8 && (n = sb_tls_recv_some(ts, buf + got, sizeof buf - got, sb_now_ms() + 5000)) > 0)
        got += n;
    CHECK_EQ(got, 8);
    CHECK(memcmp(buf, "one\ntwo\n", 8) == 0);
    /* Half-close with close_notify: the server ends cleanly and so do we. */
    CHECK_EQ(sb_tls_shutdown(ts, sb_now_ms() + 5000), 0);
    CHECK_EQ(sb_tls_recv_some(ts, buf, sizeof buf, sb_now_ms() + 5000), 0);
    pthread_join(t, NULL);
    CHECK_EQ(b.err, 0);
    sb_tls_session_free(ts);
    close(fd);
    sb_tls_free(s);
    sb_tls_free(c);
}

/* Drive a session's handshake as a loop would: a step, a wait in poll for
 * the readiness it names, until it is done. */
static int handshake_nb(sb_tls_session *ts, int fd)
{
    char why[256];
    int want = 0, r;

    while ((r = sb_tls_handshake(ts, &want, why, sizeof why)) == -EAGAIN) {
        struct pollfd p = {fd, (short)(want == SB_READABLE ? POLLIN : POLLOUT), 0};
        CHECK(want == SB_READABLE || want == SB_WRITABLE);
        CHECK_EQ(poll(&p, 1, 5000), 1);
    }
    return r;
}

/* One line echoed through a handshaken session. */
static void echo_line(sb_tls_session *ts)
{
    char buf[16];
    ssize_t n, got = 0;

    CHECK_EQ(sb_tls_send_all(ts, "hi\n", 3, sb_now_ms() + 5000), 3);
    while (got < 3 && (n = sb_tls_recv_some(ts, buf + got, sizeof buf - got, sb_now_ms() + 5000)) > 0)
        got += n;
    CHECK_EQ(got, 3);
}

/* sb_tls_session_new + sb_tls_handshake: a handshake that never blocks;
 * the ticket the server sent with the first data resumes the next
 * session (the session keeps its own reference: the ticket is freed at
 * once), and a session offered nothing makes a full handshake. */
/* A blocking handshake against a peer that never answers ends at its
 * deadline with -ETIMEDOUT (the session's wait is sb_wait_fd's). */
static void test_connect_deadline(void)
{
    sb_tls *c = client_ctx(ca, "localhost");
    sb_tls_session *ts = NULL;
    char why[256];
    int sv[2];
    int64_t t0;

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t0 = sb_now_ms();
    CHECK_EQ(sb_tls_connect(&ts, c, sv[1], "localhost", t0 + 100, why, sizeof why), -ETIMEDOUT);
    CHECK(sb_now_ms() - t0 >= 100);
    CHECK(ts == NULL);
    close(sv[0]);
    close(sv[1]); /* the session never owns the fd */
    sb_tls_free(c);
}

static void test_nonblocking_handshake_and_resume(void)
{
    sb_tls *s = server_ctx(), *c = client_ctx(ca, NULL);
    sb_tls_session *ts;
    sb_tls_ticket *k = NULL;
    char why[256];
    pthread_t t;
    blk b;
    int fd;

    for (int round = 0; round < 3; round++) {
        const sb_tls_ticket *offer = round == 1 ? k : NULL;
        start_blk(&b, &t, s, "line", &fd);
        CHECK_EQ(sb_set_nonblock(fd, 1), 0);
        CHECK_EQ(sb_tls_session_new(&ts, c, fd, "localhost", offer, why, sizeof why), 0);
        if (round == 1) {
            sb_tls_ticket_free(k);
            k = NULL;
        }
        CHECK_EQ(handshake_nb(ts, fd), 0);
        CHECK_EQ(sb_tls_session_resumed(ts), round == 1);
        echo_line(ts);
        if (round == 0) {
            k = sb_tls_session_ticket(ts);
            CHECK(k != NULL);
        }
        CHECK_EQ(sb_tls_shutdown(ts, sb_now_ms() + 5000), 0);
        pthread_join(t, NULL);
        CHECK_EQ(b.err, 0);
        sb_tls_session_free(ts);
        close(fd);
    }
    /* A verification failure says why, and leaves only the free to do. */
    {
        sb_tls *other = client_ctx(NULL, NULL);
        start_blk(&b, &t, s, "line", &fd);
        CHECK_EQ(sb_set_nonblock(fd, 1), 0);
        CHECK_EQ(sb_tls_session_new(&ts, other, fd, "localhost", NULL, why, sizeof why), 0);
        CHECK_EQ(handshake_nb(ts, fd), SB_ETLSVERIFY);
        sb_tls_session_free(ts);
        close(fd);
        pthread_join(t, NULL);
        sb_tls_free(other);
    }
    sb_tls_free(s);
    sb_tls_free(c);
}

/* A verifying client with no host name fails rather than checking the
 * chain alone (which any certificate of the trust store passes, whatever
 * its name); no_host_check opts out. Sessions and connections alike. */
static void test_host_name_required(void)
{
    sb_tls *s = server_ctx(), *c = client_ctx(ca, NULL), *chain;
    sb_tls_session *ts;
    sb_tls_opts o;
    pthread_t t;
    char why[256] = "", x;
    blk b;
    int sv[2], fd;
    pair p;

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(sb_tls_connect(&ts, c, sv[1], NULL, sb_now_ms() + 5000, why, sizeof why), SB_ETLSCONF);
    CHECK(ts == NULL && strstr(why, "no host name") != NULL);
    CHECK_EQ(recv(sv[0], &x, 1, MSG_DONTWAIT), -1); /* not a byte of a hello went */
    CHECK_EQ(errno, EAGAIN);
    close(sv[0]);
    close(sv[1]);

    run_pair("poll", s, c, 10, &p);
    CHECK_EQ(p.client_err, SB_ETLSCONF);
    CHECK(!p.got_small && p.server_msgs == 0);

    sb_tls_opts_default(&o);
    o.ca_file = ca;
    o.no_host_check = 1;
    CHECK_EQ(sb_tls_client_new(&chain, &o, why, sizeof why), 0);
    start_blk(&b, &t, s, "line", &fd);
    CHECK_EQ(sb_tls_connect(&ts, chain, fd, NULL, sb_now_ms() + 5000, why, sizeof why), 0);
    CHECK_EQ(sb_tls_shutdown(ts, sb_now_ms() + 5000), 0);
    pthread_join(t, NULL);
    CHECK_EQ(b.err, 0);
    sb_tls_session_free(ts);
    close(fd);
    sb_tls_free(chain);
    sb_tls_free(s);
    sb_tls_free(c);
}

/* A peer that answers the hello with a close_notify alert: the handshake
 * ends there with an error, at once, not in a loop until the deadline or
 * forever (ZERO_RETURN is no wait). */
static void *notify_peer(void *arg)
{
    static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00};
    int fd = *(int *)arg;
    char hello[4096];

    CHECK(read(fd, hello, sizeof hello) > 0);
    CHECK_EQ(write(fd, alert, sizeof alert), (ssize_t)sizeof alert);
    return NULL;
}

static void test_close_notify_in_handshake(void)
{
    sb_tls *c = client_ctx(ca, "localhost");
    sb_tls_session *ts;
    pthread_t t;
    char why[256] = "";
    int sv[2];
    int64_t t0;

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(pthread_create(&t, NULL, notify_peer, &sv[0]), 0);
    alarm(60); /* a handshake spinning past its deadline fails the test, not hangs it */
    t0 = sb_now_ms();
    CHECK_EQ(sb_tls_connect(&ts, c, sv[1], NULL, t0 + 10000, why, sizeof why), SB_ETLS);
    alarm(0);
    CHECK(strstr(why, "closed during the TLS handshake") != NULL);
    pthread_join(t, NULL);
    close(sv[0]);
    close(sv[1]);
    sb_tls_free(c);
}

/* An `eof` exchange: the end is the message's length, so an end without
 * close_notify must not deliver it; with close_notify it is answered. */
static void test_truncated_eof_message(void)
{
    sb_tls *s = server_ctx(), *c = client_ctx(ca, "localhost");
    sb_tls_session *ts;
    pthread_t t;
    char buf[64], why[256];
    blk b;
    int fd;

    start_blk(&b, &t, s, "eof", &fd);
    CHECK_EQ(sb_tls_connect(&ts, c, fd, NULL, sb_now_ms() + 5000, why, sizeof why), 0);
    CHECK_EQ(sb_tls_send_all(ts, "cut", 3, sb_now_ms() + 5000), 3);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0); /* FIN, no close_notify */
    pthread_join(t, NULL);
    CHECK_EQ(b.err, SB_ETLSTRUNC);
    CHECK_EQ(b.msgs, 0);
    sb_tls_session_free(ts);
    close(fd);

    start_blk(&b, &t, s, "eof", &fd);
    CHECK_EQ(sb_tls_connect(&ts, c, fd, NULL, sb_now_ms() + 5000, why, sizeof why), 0);
    CHECK_EQ(sb_tls_send_all(ts, "whole", 5, sb_now_ms() + 5000), 5);
    CHECK_EQ(sb_tls_shutdown(ts, sb_now_ms() + 5000), 0);
    CHECK_EQ(sb_tls_recv_some(ts, buf, sizeof buf, sb_now_ms() + 5000), 5);
    CHECK(memcmp(buf, "whole", 5) == 0);
    CHECK_EQ(sb_tls_recv_some(ts, buf, sizeof buf, sb_now_ms() + 5000), 0);
    pthread_join(t, NULL);
    CHECK_EQ(b.err, 0);
    CHECK_EQ(b.msgs, 1);
    sb_tls_session_free(ts);
    close(fd);
    sb_tls_free(s);
    sb_tls_free(c);
}

/* ------------------------------------------------------------------ */
/* A peer written with OpenSSL directly                                */

typedef struct raw {
    int fd;
    int records;        /* records of 1000 bytes to write after the handshake */
    int close_notify;   /* end with close_notify (else a bare FIN) */
    int ready[2];       /* a byte here once everything is written */
} raw;

static void *raw_server(void *arg)
{
    raw *r = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *ssl;
    char rec[1000];

    CHECK(ctx != NULL);
    CHECK(SSL_CTX_use_certificate_chain_file(ctx, cert) == 1);
    CHECK(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, r->fd);
    CHECK(SSL_accept(ssl) == 1);
    memset(rec, 'r', sizeof rec);
    for (int i = 0; i < r->records; i++)
        CHECK(SSL_write(ssl, rec, sizeof rec) == (int)sizeof rec); /* one record each */
    if (r->close_notify)
        SSL_shutdown(ssl);
    shutdown(r->fd, SHUT_WR);
    CHECK_EQ(write(r->ready[1], "x", 1), 1);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

static sb_tls_session *raw_pair(raw *r, pthread_t *t, sb_tls *c, int *fd)
{
    sb_tls_session *ts;
    char why[256], x;
    int sv[2];

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(pipe(r->ready), 0);
    r->fd = sv[0];
    *fd = sv[1];
    CHECK_EQ(pthread_create(t, NULL, raw_server, r), 0);
    CHECK_EQ(sb_tls_connect(&ts, c, sv[1], "localhost", sb_now_ms() + 5000, why, sizeof why), 0);
    CHECK_EQ(read(r->ready[0], &x, 1), 1); /* every record is in our socket */
    return ts;
}

static void raw_done(raw *r, pthread_t t, sb_tls_session *ts, int fd)
{
    pthread_join(t, NULL);
    sb_tls_session_free(ts);
    close(fd);
    close(r->fd);
    close(r->ready[0]);
    close(r->ready[1]);
}

/* A read fills the buffer across records; it is short only when nothing is
 * left to read - the rule edge-triggered readiness depends on. */
static void test_read_fills_across_records(void)
{
    sb_tls *c = client_ctx(ca, NULL);
    raw r = {.records = 3, .close_notify = 1};
    pthread_t t;
    char buf[10000];
    int fd;
    sb_tls_session *ts = raw_pair(&r, &t, c, &fd);

    CHECK_EQ(sb_tls_recv_some(ts, buf, 1500, sb_now_ms() + 5000), 1500);
    CHECK_EQ(sb_tls_recv_some(ts, buf, sizeof buf, sb_now_ms() + 5000), 1500);
    CHECK_EQ(sb_tls_recv_some(ts, buf, sizeof buf, sb_now_ms() + 5000), 0);
    raw_done(&r, t, ts, fd);
    sb_tls_free(c);
}

static void test_client_sees_truncation(void)
{
    sb_tls *c = client_ctx(ca, NULL);
    raw r = {.records = 2, .close_notify = 0};
    pthread_t t;
    char buf[10000];
    int fd;
    sb_tls_session *ts = raw_pair(&r, &t, c, &fd);

    CHECK_EQ(sb_tls_recv_some(ts, buf, sizeof buf, sb_now_ms() + 5000), 2000);
    CHECK_EQ(sb_tls_recv_some(ts, buf, sizeof buf, sb_now_ms() + 5000), SB_ETLSTRUNC);
    raw_done(&r, t, ts, fd);
    sb_tls_free(c);
}

/* ------------------------------------------------------------------ */
/* Faults through the system-call table                                */

static void test_faults_in_handshake_and_echo(void)
{
    sb_tls *s = server_ctx(), *c = client_ctx(ca, "localhost");
    static const int kinds[] = {FK_EINTR, FK_SHORT};
    unsigned long runs = 0;
    pair p;

    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        for (unsigned long n = 1;; n++) {
            fault_arm(FM(FC_RECV) | FM(FC_SEND), kinds[k], n, 0);
            run_pair("epoll", s, c, 20000, &p);
            const char *what = fault_hit_name();
            unsigned long hit = fault_disarm();

            (void)what;
            CHECK(p.got_small && p.got_big);
            CHECK_EQ(p.client_err, 0);
            CHECK_EQ(p.server_err, 0);
            runs++;
            if (hit == 0)
                break; /* past the last call: every one was faulted once */
        }
    }
    fprintf(stderr, "    %lu runs\n", runs);
    sb_tls_free(s);
    sb_tls_free(c);
}

static void test_errors_and_config(void)
{
    sb_tls_opts o;
    sb_tls *t;
    char why[256] = "";

    CHECK_EQ(sb_tls_available(), 1);
    sb_tls_opts_default(&o);
    o.cert_file = "/nonexistent.pem";
    o.key_file = key;
    CHECK_EQ(sb_tls_server_new(&t, &o, why, sizeof why), SB_ETLSCONF);
    CHECK(t == NULL && strstr(why, "/nonexistent.pem") != NULL);
    o.cert_file = ca; /* a certificate the key does not match */
    CHECK_EQ(sb_tls_server_new(&t, &o, why, sizeof why), SB_ETLSCONF);
    o.cert_file = cert;
    o.alpn = "http/1.1";
    CHECK_EQ(sb_tls_server_new(&t, &o, why, sizeof why), 0);
    CHECK(strcmp(sb_tls_sendfile_mode(t), "read+SSL_write") == 0);
    sb_tls_free(t);
    o.ktls = 1; /* offered, or the mode says why not */
    CHECK_EQ(sb_tls_server_new(&t, &o, why, sizeof why), 0);
    CHECK(strcmp(sb_tls_sendfile_mode(t), "ktls") == 0 ||
          strstr(sb_tls_sendfile_mode(t), "tls module is not loaded") != NULL);
    sb_tls_free(t);
    CHECK(strcmp(sb_strerror(SB_ETLSVERIFY), "certificate verify failed") == 0);
    CHECK(strcmp(sb_strerror(SB_ETLSHOST), "host name mismatch") == 0);
}

int main(void)
{
    if (make_certs() < 0) {
        fprintf(stderr, "test_tls: the openssl command is missing: nothing tested\n");
        return 0;
    }
    RUN(test_errors_and_config);
    RUN(test_loop_echo_every_backend);
    RUN(test_verify_failures);
    RUN(test_server_speaks_first);
    RUN(test_handshake_timeout);
    RUN(test_greeting_before_hello_does_not_spin);
    RUN(test_stalled_reader_does_not_spin);
    RUN(test_held_bytes_after_resume);
    RUN(test_blocking_session);
    RUN(test_nonblocking_handshake_and_resume);
    RUN(test_connect_deadline);
    RUN(test_host_name_required);
    RUN(test_close_notify_in_handshake);
    RUN(test_truncated_eof_message);
    RUN(test_read_fills_across_records);
    RUN(test_client_sees_truncation);
    RUN(test_faults_in_handshake_and_echo);
    sh("rm -f ca.key ca.pem ca.srl s.key s.csr s.ext s.pem");
    rmdir(dir);
    return 0;
}
