/* test_torture: the echo, blocking and HTTP exchanges with every allocation
 * and every system call of the library failing in turn (tests/fault.h).
 *
 * For one exchange and one kind of fault, run N = 1, 2, ...: the N-th
 * counted call gets the fault, the exchange runs to its end (loop turns
 * capped, blocking calls bounded by timeouts, alarm() over everything), and
 * the outcome must be either the correct result (the exact bytes) or a
 * clean error (on_close got an error, or an API call returned a negative
 * code) with whatever arrived being an exact prefix of the correct result.
 * Never a crash (ASan), never a leak (every run frees everything; LSan at
 * exit under the sanitizer build), never a hang. The sweep ends with the
 * first N that the exchange never reaches. EINTR and short counts must
 * always give the correct result.
 *
 * Exchanges:
 *   echo      sb_conn_open on a loop (epoll, poll, and uring where it
 *             runs: its ring's results faulted too), a socketpair peer
 *             driven by the test, four framings, messages split across
 *             writes, one larger than the loop's scratch buffer
 *   blocking  sb_conn_run_blocking on a thread, an sb_stream client;
 *             over a socketpair, and over TCP loopback with
 *             sb_listen / sb_dial / sb_accept
 *   http      the static file server app (apps/http.c, compiled into this
 *             test) on a loop: pipelined GET / HEAD / 404 requests split
 *             across writes, a file large enough to go out by sendfile
 *   tls       the blocking exchange over TLS (built with OpenSSL): the
 *             server's and the client's handshakes and records go through
 *             the same system-call table (src/tls.c's BIO)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test.h"
#include "fault.h"
#include "apps.h"

#define MAX_TURNS 4000     /* loop turns per run: a normal run needs < 100 */
#define TURN_MS 5
#define RUN_ALARM_S 60     /* one run, whatever happens */
#define IO_TIMEOUT_MS 3000 /* blocking calls of one run */
#define WIRE_MAX (256 * 1024)

static unsigned long total_runs, total_faults;
static int verbose; /* SB_TORTURE_VERBOSE=1: one line per run */

/* ---- shared: one echo handler, its state ---- */

typedef struct {
    int messages;
    int closes;
    int close_err;
    int api_err;  /* first negative code an API call gave the handler */
} echo_state;

static int echo_message(sb_conn *c, const sb_msg *m, void *app)
{
    echo_state *s = app;
    int rc = sb_conn_send(c, m->type, m->data, m->len);

    s->messages++;
    if (rc < 0 && s->api_err == 0)
        s->api_err = rc;
    return rc;
}

static void echo_close(sb_conn *c, int err, void *app)
{
    echo_state *s = app;
    s->closes++;
    s->close_err = err;
}

/* ---- the messages ---- */

#define NMSG 7
static uint8_t payload_big[70000]; /* more than the loop's 64 KiB scratch */
static uint8_t payload_mid[3000];

static void payload_at(int i, const uint8_t **p, size_t *n)
{
    static const char *small[] = {"hello", "", "x", "the quick brown fox"};
    switch (i) {
    case 4:
        *p = payload_mid, *n = sizeof payload_mid;
        return;
    case 5:
        *p = payload_big, *n = sizeof payload_big;
        return;
    case 6:
        *p = (const uint8_t *)"bye", *n = 3;
        return;
    }
    *p = (const uint8_t *)small[i];
    *n = strlen(small[i]);
}

static void payloads_init(void)
{
    for (size_t i = 0; i < sizeof payload_big; i++)
        payload_big[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 0; i < sizeof payload_mid; i++)
        payload_mid[i] = (uint8_t)('A' + i % 26);
}

/* ---- the sweep ---- */

typedef int (*exchange_fn)(const void *cfg); /* 1: correct result, 0: clean error */

static void sweep(const char *what, exchange_fn fn, const void *cfg, unsigned mask, int kind,
                  int sticky)
{
    unsigned long faults = 0, runs = 0;

    for (unsigned long n = 1;; n++) {
        CHECK(n < 200000);
        alarm(RUN_ALARM_S);
        if (verbose)
            fprintf(stderr, "%s %s%s n=%lu\n", what, fault_kind_names[kind], sticky ? "+" : "", n);
        fault_arm(mask, kind, n, sticky);
        int r = fn(cfg);
        if (verbose)
            fprintf(stderr, "  -> %d (first fault: %s)\n", r, fault_hit_name());
        const char *hit = fault_hit_name();
        unsigned long h = fault_disarm();
        alarm(0);
        if (h == 0) {
            /* Past the last call: a run without faults, which must be right. */
            if (r != 1)
                fprintf(stderr, "%s: run without faults failed\n", what);
            CHECK_EQ(r, 1);
            break;
        }
        if (kind == FK_EINTR || kind == FK_SHORT) {
            if (r != 1)
                fprintf(stderr, "%s %s: call %lu (%s) broke the result\n", what,
                        fault_kind_names[kind], n, hit);
            CHECK_EQ(r, 1);
        }
        faults += h;
        runs++;
    }
    total_faults += faults;
    total_runs += runs;
    fprintf(stderr, "    %-34s %-6s%s %5lu runs, %5lu faults\n", what, fault_kind_names[kind],
            sticky ? "+" : " ", runs, faults);
}

/* Every kind of fault over one exchange.
 *
 * edge: the connections are edge-triggered (epoll). They take a short
 * recv, or EAGAIN from recv, to mean the socket is drained, which is what
 * the kernel guarantees for a stream socket: recv copies until the receive
 * queue is empty or the count is reached (tcp_recvmsg, and
 * unix_stream_read_generic), and any byte that arrives later is a new
 * edge. A short or EAGAIN recv with bytes still queued cannot happen
 * there, so those two faults are not put into recv; every other call
 * still gets them, and recv still gets failures and EINTR. */
static void sweep_all(const char *what, exchange_fn fn, const void *cfg, int edge)
{
    unsigned real = edge ? FM_SYS & ~FM(FC_RECV) : FM_SYS;

    sweep(what, fn, cfg, FM_ALL, FK_FAIL, 0);
    sweep(what, fn, cfg, FM_ALLOC, FK_FAIL, 1);
    sweep(what, fn, cfg, FM_SYS, FK_EINTR, 0);
    sweep(what, fn, cfg, real, FK_SHORT, 0);
    sweep(what, fn, cfg, real, FK_EAGAIN, 0);
}

/* ---- peer side helpers (libc only: never faulted) ---- */

/* Read what is there into buf[*got..cap). Returns 1 at EOF or reset. */
static int peer_read(int fd, uint8_t *buf, size_t cap, size_t *got)
{
    for (;;) {
        ssize_t n = recv(fd, buf + *got, cap - *got, MSG_DONTWAIT);
        if (n > 0) {
            *got += (size_t)n;
            CHECK(*got < cap); /* more than the right answer: wrong */
            continue;
        }
        if (n == 0)
            return 1;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    }
}

/* Send the next piece of wire[*off..n); pieces cycle through odd sizes. */
static void peer_write(int fd, const uint8_t *wire, size_t n, size_t *off, int *piece)
{
    static const size_t sizes[] = {1, 7, 300, 4096, 65536, 13};
    size_t want = sizes[(*piece)++ % 6];
    ssize_t w;

    if (want > n - *off)
        want = n - *off;
    w = send(fd, wire + *off, want, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0)
        *off += (size_t)w;
}

/* ---- exchange 1: echo on a loop ---- */

typedef struct {
    const char *backend;
    const char *spec;
    sb_conn_opts o;
    uint8_t *wire; /* every message framed: what goes in and must come back */
    size_t wire_len;
} echo_cfg;

static void echo_cfg_init(echo_cfg *c, const char *backend, const char *spec)
{
    sb_buf b;

    memset(c, 0, sizeof *c);
    c->backend = backend;
    c->spec = spec;
    sb_conn_opts_default(&c->o);
    CHECK_EQ(sb_frame_parse(spec, &c->o.frame), 0);
    sb_buf_init(&b, 0);
    for (int i = 0; i < NMSG; i++) {
        const uint8_t *p;
        size_t n;
        payload_at(i, &p, &n);
        CHECK_EQ(sb_frame_encode(&c->o.frame, -1, p, n, &b), 0);
    }
    c->wire_len = sb_buf_len(&b);
    CHECK(c->wire_len < WIRE_MAX);
    c->wire = malloc(c->wire_len);
    memcpy(c->wire, sb_buf_data(&b), c->wire_len);
    sb_buf_free(&b);
}

static uint8_t rx[WIRE_MAX];

static int echo_exchange(const void *p)
{
    const echo_cfg *cfg = p;
    echo_state st = {0};
    sb_handler h = {NULL, echo_message, NULL, echo_close, &st};
    sb_loop *l;
    size_t off = 0, got = 0;
    int sv[2], piece = 0, shut = 0, eof = 0, loop_err = 0, rc;

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    rc = sb_loop_new(&l, cfg->backend);
    if (rc < 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    rc = sb_conn_open(l, sv[0], &cfg->o, &h, NULL);
    if (rc < 0) {
        CHECK_EQ(st.closes, 0);
        sb_loop_free(l);
        close(sv[1]);
        return 0;
    }
    for (int t = 0; t < MAX_TURNS && !(eof && st.closes); t++) {
        if (off < cfg->wire_len && !eof)
            peer_write(sv[1], cfg->wire, cfg->wire_len, &off, &piece);
        /* After the last message, or once the connection ends its side
         * (it may linger, waiting for ours), shut down the peer's side. */
        if ((off == cfg->wire_len || eof) && !shut) {
            shutdown(sv[1], SHUT_WR);
            shut = 1;
        }
        rc = sb_loop_run_once(l, TURN_MS);
        if (rc < 0 && loop_err == 0)
            loop_err = rc;
        eof = eof || peer_read(sv[1], rx, sizeof rx, &got);
    }
    CHECK(eof);                /* no hang: the connection ended */
    CHECK_EQ(st.closes, 1);    /* and said so exactly once */
    sb_loop_free(l);
    close(sv[1]);
    CHECK(got <= cfg->wire_len);
    CHECK(memcmp(rx, cfg->wire, got) == 0); /* never a wrong byte */
    if (got == cfg->wire_len && st.close_err == 0)
        return 1;
    CHECK(st.close_err != 0 || st.api_err != 0 || loop_err != 0);
    return 0;
}

/* ---- exchange 2: blocking server thread, sb_stream client ---- */

typedef struct {
    const char *spec;
    int tcp;
    sb_conn_opts o;
    const sb_tls *client_tls; /* TLS: the client's context (o.tls the server's) */
} blk_cfg;

typedef struct {
    const blk_cfg *cfg;
    int fd;        /* socketpair: the server's end */
    int lfd;       /* tcp: the listener, else -1 */
    int rc;        /* sb_conn_run_blocking's result */
    int accept_rc; /* sb_accept's error */
    echo_state st;
} blk_run;

static void *blk_server(void *p)
{
    blk_run *r = p;
    sb_handler h = {NULL, echo_message, NULL, echo_close, &r->st};
    int fd = r->fd;

    if (r->lfd >= 0) {
        fd = sb_accept(r->lfd, NULL, 0);
        if (fd < 0) {
            r->accept_rc = fd;
            shutdown(r->lfd, SHUT_RDWR); /* resets what waits in the backlog */
            return NULL;
        }
    }
    r->rc = sb_conn_run_blocking(fd, &r->cfg->o, &h);
    return NULL;
}

/* Wake a server thread blocked in accept with a connection that ends at once. */
static void poke(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, (struct sockaddr *)&a, sizeof a);
    close(fd);
}

/* Connect the client's end: socketpair, or listen + thread accept + dial.
 * Returns the client fd or a negative code (thread already started). */
static int blk_connect(blk_run *r, pthread_t *th, int *started)
{
    int sv[2], port, fd;
    char addr[64];

    *started = 0;
    r->lfd = -1;
    if (!r->cfg->tcp) {
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        r->fd = sv[0];
        CHECK_EQ(pthread_create(th, NULL, blk_server, r), 0);
        *started = 1;
        return sv[1];
    }
    r->lfd = sb_listen("127.0.0.1:0", 16);
    if (r->lfd < 0)
        return r->lfd;
    port = sb_local_port(r->lfd);
    CHECK(port > 0);
    CHECK_EQ(pthread_create(th, NULL, blk_server, r), 0);
    *started = 1;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    fd = sb_dial(addr, IO_TIMEOUT_MS);
    if (fd < 0)
        poke(port);
    return fd;
}

/* The client: every message as a request, every reply exact. Returns the
 * number of replies, or a negative code. */
static int blk_client(const blk_cfg *cfg, int fd)
{
    sb_tls_session *tls = NULL;
    sb_stream *s;
    char why[256];
    int rc, i;

    if (cfg->client_tls &&
        (rc = sb_tls_connect(&tls, cfg->client_tls, fd, "localhost", sb_now_ms() + IO_TIMEOUT_MS,
                             why, sizeof why)) < 0)
        return rc;
    rc = sb_stream_open(&s, fd, &cfg->o.frame, 1u << 20, IO_TIMEOUT_MS);
    if (rc < 0) {
        sb_tls_session_free(tls);
        return rc;
    }
    sb_stream_set_tls(s, tls);
    for (i = 0; i < NMSG; i++) {
        const uint8_t *p;
        size_t n;
        sb_msg m;
        payload_at(i, &p, &n);
        rc = sb_stream_request(s, -1, p, n, &m);
        if (rc != 1)
            break;
        CHECK_EQ(m.len, n);
        CHECK(n == 0 || memcmp(m.data, p, n) == 0);
    }
    sb_stream_close(s);
    sb_tls_session_free(tls);
    return rc < 0 ? rc : i;
}

static int blk_exchange(const void *p)
{
    const blk_cfg *cfg = p;
    blk_run r;
    pthread_t th;
    int started, fd, replies = -1;

    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    fd = blk_connect(&r, &th, &started);
    if (fd >= 0) {
        replies = blk_client(cfg, fd);
        close(fd); /* the server thread sees EOF and ends */
    }
    if (started)
        CHECK_EQ(pthread_join(th, NULL), 0);
    if (r.lfd >= 0)
        close(r.lfd);
    if (replies == NMSG && r.rc == 0 && r.accept_rc == 0 && r.st.close_err == 0)
        return 1;
    CHECK(fd < 0 || replies < 0 || r.rc != 0 || r.accept_rc != 0 || r.st.api_err != 0 ||
          r.st.close_err != 0);
    /* A connection that started ended with on_close exactly once; one
     * that could not start (no memory) said so by its return. */
    CHECK(r.st.closes <= 1);
    if (r.accept_rc == 0 && started && r.st.closes == 0)
        CHECK(r.rc < 0);
    return 0;
}

/* ---- exchange 3: the HTTP app on a loop ---- */

#define SMALL_LEN 100
#define BIG_LEN 40000 /* over the app's 16 KiB inline limit: sendfile */

static struct {
    sb_server_opts so;  /* the app fills so.conn (framing, limits, timeouts) */
    sb_handler app;     /* the app's handler */
    char root[64];
    uint8_t small[SMALL_LEN], big[BIG_LEN];
    char req[1024];
    size_t req_len;
} web;

static struct {
    int messages;
    int closes;
    int close_err;
    int app_err; /* the app's handler failed before the last request */
} web_st;

#define NREQ 5

static int web_message(sb_conn *c, const sb_msg *m, void *ud)
{
    int rc = web.app.on_message(c, m, web.app.app);

    web_st.messages++;
    if (rc < 0 && web_st.messages < NREQ && web_st.app_err == 0)
        web_st.app_err = rc;
    return rc;
}

static void web_close(sb_conn *c, int err, void *ud)
{
    web_st.closes++;
    web_st.close_err = err;
}

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK_EQ(fwrite(p, 1, n, f), n);
    CHECK_EQ(fclose(f), 0);
}

static void web_init(void)
{
    sb_app_config ac = {0};
    const char *why = NULL;

    strcpy(web.root, "/tmp/sb-torture-XXXXXX");
    CHECK(mkdtemp(web.root) != NULL);
    for (size_t i = 0; i < SMALL_LEN; i++)
        web.small[i] = (uint8_t)('0' + i % 10);
    for (size_t i = 0; i < BIG_LEN; i++)
        web.big[i] = (uint8_t)(i * 7);
    write_file(web.root, "small.txt", web.small, SMALL_LEN);
    write_file(web.root, "big.bin", web.big, BIG_LEN);
    ac.root = web.root;
    ac.model = SB_MODEL_EVENT;
    sb_server_opts_default(&web.so);
    CHECK_EQ(sb_app_http.init(&ac, &web.so, &web.app, &why), 0);
    web.req_len = (size_t)snprintf(web.req, sizeof web.req, "%s%s%s%s%s",
        "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        "HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
}

static void web_fini(void)
{
    char path[128];
    sb_app_http.fini();
    snprintf(path, sizeof path, "%s/small.txt", web.root);
    unlink(path);
    snprintf(path, sizeof path, "%s/big.bin", web.root);
    unlink(path);
    rmdir(web.root);
}

/* Check the responses in rx[0..got): each one there, even partly, must be
 * the right one. Returns how many whole responses are there. */
static int web_check(size_t got)
{
    static const int status[NREQ] = {200, 200, 200, 404, 200};
    static const int head[NREQ] = {0, 1, 0, 0, 0};
    size_t off = 0;
    int i;

    for (i = 0; i < NREQ; i++) {
        sb_http_response res;
        sb_http_header hd[32];
        sb_http_framing fr;
        int n = sb_http_parse_response((const char *)rx + off, got - off, &res, hd, 32, NULL);
        if (n == SB_HTTP_INCOMPLETE)
            break;
        CHECK(n > 0);
        CHECK_EQ(res.status, status[i]);
        CHECK_EQ(sb_http_framing_get(hd, res.num_headers, res.minor_version, 0, &fr), 0);
        CHECK(fr.has_length);
        size_t body = head[i] ? 0 : (size_t)fr.length;
        size_t have = got - off - (size_t)n;
        size_t take = have < body ? have : body;
        if (status[i] == 200) {
            CHECK_EQ(fr.length, i == 1 || i == 2 ? BIG_LEN : SMALL_LEN);
            CHECK(memcmp(rx + off + n, i == 2 ? web.big : web.small, take) == 0);
        }
        if (have < body)
            break;
        off += (size_t)n + body;
    }
    if (i == NREQ)
        CHECK_EQ(off, got);
    return i;
}

static int web_exchange(const void *unused)
{
    sb_handler h = {web.app.on_open, web_message, web.app.on_eof, web_close, NULL};
    sb_loop *l;
    size_t off = 0, got = 0;
    int sv[2], piece = 0, eof = 0, shut = 0, loop_err = 0, rc, whole;

    memset(&web_st, 0, sizeof web_st);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    rc = sb_loop_new(&l, "epoll");
    if (rc < 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    rc = sb_conn_open(l, sv[0], &web.so.conn, &h, NULL);
    if (rc < 0) {
        sb_loop_free(l);
        close(sv[1]);
        return 0;
    }
    for (int t = 0; t < MAX_TURNS && !(eof && web_st.closes); t++) {
        if (off < web.req_len && !eof)
            peer_write(sv[1], (const uint8_t *)web.req, web.req_len, &off, &piece);
        if (eof && !shut) {
            shutdown(sv[1], SHUT_WR); /* the server may linger for our FIN */
            shut = 1;
        }
        rc = sb_loop_run_once(l, TURN_MS);
        if (rc < 0 && loop_err == 0)
            loop_err = rc;
        eof = eof || peer_read(sv[1], rx, sizeof rx, &got);
    }
    CHECK(eof);
    CHECK_EQ(web_st.closes, 1);
    sb_loop_free(l);
    close(sv[1]);
    whole = web_check(got);
    if (whole == NREQ && web_st.close_err == 0 && web_st.app_err == 0)
        return 1;
    CHECK(web_st.close_err != 0 || web_st.app_err != 0 || loop_err != 0);
    return 0;
}

/* ---- a lingering close with no memory for its timer ---- */

static int close_at_once(sb_conn *c, const sb_msg *m, void *app)
{
    echo_state *s = app;
    s->messages++;
    return -1; /* close, with the peer's other bytes still unread */
}

/* A graceful close with unread bytes lingers for the peer's FIN, bounded by
 * a timer. With no memory for the timer heap, the close must not linger
 * unbounded: this peer never closes. */
static void test_linger_without_timer(void)
{
    static uint8_t junk[200 * 1024];
    echo_state st = {0};
    sb_handler h = {NULL, close_at_once, NULL, echo_close, &st};
    sb_conn_opts o;
    sb_loop *l;
    int sv[2];
    size_t got = 0;

    memset(junk, 'j', sizeof junk);
    junk[0] = '\n';
    sb_conn_opts_default(&o);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(sb_loop_new(&l, "epoll"), 0);
    CHECK_EQ(sb_conn_open(l, sv[0], &o, &h, NULL), 0);
    CHECK(send(sv[1], junk, sizeof junk, MSG_DONTWAIT) > 64 * 1024);
    fault_arm(FM_ALLOC, FK_FAIL, 1, 1); /* every allocation fails from now on */
    for (int t = 0; t < 400 && st.closes == 0; t++)
        sb_loop_run_once(l, TURN_MS);
    total_faults += fault_disarm();
    CHECK_EQ(st.messages, 1);
    CHECK_EQ(st.closes, 1);
    peer_read(sv[1], rx, sizeof rx, &got);
    sb_loop_free(l);
    close(sv[1]);
}

/* ---- main ---- */

static void test_echo(void)
{
    /* uring: the kernel's receives and sends are not in the table, but
     * everything around them is (allocations on the ring's path, the
     * close, the loop's eventfd), and the loop's setup call. */
    static const char *const backends[] = {"epoll", "poll", "uring"};
    static const char *const specs[] = {"line", "len32", "ascii:5", "varint"};
    char what[96];

    for (int b = 0; b < 3; b++)
        for (int s = 0; s < 4; s++) {
            if (!sb_test_backend_ok(backends[b]))
                break;
            echo_cfg c;
            echo_cfg_init(&c, backends[b], specs[s]);
            snprintf(what, sizeof what, "echo %s %s", backends[b], specs[s]);
            sweep_all(what, echo_exchange, &c, strcmp(backends[b], "epoll") == 0);
            free(c.wire);
        }
}

static void test_blocking(void)
{
    static const char *const specs[] = {"line", "len32"};
    char what[96];

    for (int tcp = 0; tcp < 2; tcp++)
        for (int s = 0; s < 2; s++) {
            blk_cfg c;
            memset(&c, 0, sizeof c);
            c.spec = specs[s];
            c.tcp = tcp;
            sb_conn_opts_default(&c.o);
            CHECK_EQ(sb_frame_parse(specs[s], &c.o.frame), 0);
            c.o.idle_timeout_ms = IO_TIMEOUT_MS; /* a vanished client ends the thread */
            snprintf(what, sizeof what, "blocking %s %s", tcp ? "tcp" : "pair", specs[s]);
            sweep_all(what, blk_exchange, &c, 0);
        }
}

#if SB_TEST_TLS
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* A self-signed certificate for "localhost", made here (no openssl command
 * needed), written where sb_tls_server_new can load it. */
static void tls_cert(const char *dir, char *cert, char *key, size_t n)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;

    CHECK(pk != NULL && x != NULL);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    CHECK(X509_sign(x, pk, EVP_sha256()) > 0);
    snprintf(cert, n, "%s/cert.pem", dir);
    snprintf(key, n, "%s/key.pem", dir);
    CHECK((f = fopen(cert, "w")) != NULL && PEM_write_X509(f, x) == 1);
    fclose(f);
    CHECK((f = fopen(key, "w")) != NULL &&
          PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static void test_tls(void)
{
    char dir[] = "/tmp/sb-torture-tls-XXXXXX", cert[96], key[96], why[256];
    sb_tls_opts so, co;
    sb_tls *server, *client;
    blk_cfg c;

    CHECK(mkdtemp(dir) != NULL);
    tls_cert(dir, cert, key, sizeof cert);
    sb_tls_opts_default(&so);
    so.cert_file = cert;
    so.key_file = key;
    CHECK_EQ(sb_tls_server_new(&server, &so, why, sizeof why), 0);
    sb_tls_opts_default(&co);
    co.ca_file = cert; /* self-signed: its own CA */
    CHECK_EQ(sb_tls_client_new(&client, &co, why, sizeof why), 0);
    memset(&c, 0, sizeof c);
    c.spec = "len32";
    sb_conn_opts_default(&c.o);
    CHECK_EQ(sb_frame_parse(c.spec, &c.o.frame), 0);
    c.o.idle_timeout_ms = IO_TIMEOUT_MS;
    c.o.tls = server;
    c.client_tls = client;
    sweep_all("tls blocking pair len32", blk_exchange, &c, 0);
    sb_tls_free(server);
    sb_tls_free(client);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}
#else
static void test_tls(void)
{
    fprintf(stderr, "    (built without TLS)\n");
}
#endif

static void test_http(void)
{
    web_init();
    sweep_all("http epoll", web_exchange, NULL, 1);
    web_fini();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    verbose = getenv("SB_TORTURE_VERBOSE") != NULL;
    payloads_init();
    RUN(test_echo);
    RUN(test_blocking);
    RUN(test_http);
    RUN(test_tls);
    RUN(test_linger_without_timer);
    fprintf(stderr, "torture: %lu injected failures in %lu runs, all survived\n", total_faults,
            total_runs);
    printf("torture: %lu injected failures, all survived\n", total_faults);
    return 0;
}
