/* test_sock: the blocking helpers against real sockets - listening on every
 * address family, dialling (refused, timed out), accept, sending and
 * receiving with deadlines and short transfers, EOF and truncation, writes
 * to a dead peer, half-close, and socket options. Waits are bounded by
 * deadlines; no assertion depends on how fast the machine is. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sys.h"
#include "test.h"

/* Generous bound for anything that should happen promptly. */
#define SOON_MS 10000

static int64_t soon(void) { return sb_now_ms() + SOON_MS; }

static void addr_with_port(char *out, size_t n, const char *host, int port)
{
    snprintf(out, n, "%s:%d", host, port);
}

/* One byte each way over a fresh connection: proves both ends work. */
static void ping(int a, int b)
{
    char c = 0;

    CHECK_EQ(sb_send_all(a, "x", 1, soon()), 1);
    CHECK_EQ(sb_recv_exact(b, &c, 1, soon()), 1);
    CHECK_EQ(c, 'x');
    CHECK_EQ(sb_send_all(b, "y", 1, soon()), 1);
    CHECK_EQ(sb_recv_exact(a, &c, 1, soon()), 1);
    CHECK_EQ(c, 'y');
}

static void check_cloexec(int fd)
{
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* Dial `dial` and accept it on lfd; returns the accepted fd via *srv. */
static int connect_pair(int lfd, const char *dial, int *srv)
{
    sb_addr peer;
    int c = sb_dial(dial, SOON_MS);

    if (c < 0)
        fprintf(stderr, "    dial %s: %s\n", dial, sb_strerror(c));
    CHECK(c >= 0);
    *srv = sb_accept(lfd, &peer, 0);
    CHECK(*srv >= 0);
    CHECK(peer.len > 0);
    check_cloexec(c);
    check_cloexec(*srv);
    CHECK_EQ(fcntl(c, F_GETFL) & O_NONBLOCK, 0); /* dial hands back a blocking fd */
    ping(c, *srv);
    return c;
}

static int get_int_opt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);

    CHECK_EQ(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

static void test_listen_ipv4(void)
{
    char a[64], name[64];
    sb_addr peer;
    int l = sb_listen("127.0.0.1:0", 0), c, s, port;

    CHECK(l >= 0);
    check_cloexec(l);
    CHECK(get_int_opt(l, SOL_SOCKET, SO_REUSEADDR) != 0);
    port = sb_local_port(l);
    CHECK(port > 0);
    addr_with_port(a, sizeof(a), "127.0.0.1", port);
    c = sb_dial(a, SOON_MS);
    CHECK(c >= 0);
    CHECK(get_int_opt(c, IPPROTO_TCP, TCP_NODELAY) != 0);
    s = sb_accept(l, &peer, 0);
    CHECK(s >= 0);
    CHECK_EQ(peer.family, AF_INET);
    CHECK(sb_addr_format((struct sockaddr *)&peer.ss, peer.len, name, sizeof(name)) > 0);
    CHECK(strncmp(name, "127.0.0.1:", 10) == 0);
    ping(c, s);
    close(c);
    close(s);
    close(l);
}

static void test_listen_ipv6(void)
{
    char a[64];
    int l = sb_listen("[::1]:0", 16), c, s;

    CHECK(l >= 0);
    addr_with_port(a, sizeof(a), "[::1]", sb_local_port(l));
    c = connect_pair(l, a, &s);
    close(c);
    close(s);
    close(l);
}

/* ":0" listens on [::] with IPV6_V6ONLY off, so one socket takes both. */
static void test_listen_dual_stack(void)
{
    char a[64];
    int l = sb_listen(":0", 0), c, s, port;

    CHECK(l >= 0);
    port = sb_local_port(l);
    CHECK(port > 0);
    CHECK_EQ(get_int_opt(l, IPPROTO_IPV6, IPV6_V6ONLY), 0);

    addr_with_port(a, sizeof(a), "127.0.0.1", port);
    c = connect_pair(l, a, &s);
    close(c);
    close(s);
    addr_with_port(a, sizeof(a), "[::1]", port);
    c = connect_pair(l, a, &s);
    close(c);
    close(s);
    addr_with_port(a, sizeof(a), "", port); /* ":PORT" dials loopback */
    c = connect_pair(l, a, &s);
    close(c);
    close(s);
    close(l);
}

static void unix_path(char *out, size_t n, const char *tag)
{
    snprintf(out, n, "unix:/tmp/sb-test-sock-%ld-%s", (long)getpid(), tag);
}

static void test_listen_unix(void)
{
    char a[128];
    const char *path;
    int l, l2, c, s, fd;

    if (!sb_test_have_unix())
        return;

    unix_path(a, sizeof(a), "u");
    path = a + 5;
    unlink(path);
    l = sb_listen(a, 0);
    CHECK(l >= 0);
    CHECK_EQ(sb_local_port(l), -EAFNOSUPPORT);
    c = connect_pair(l, a, &s);
    close(c);
    close(s);

    /* A live listener owns its path. */
    CHECK_EQ(sb_listen(a, 0), -EADDRINUSE);
    /* Once it is gone the file is stale (connecting is refused): replaced. */
    close(l);
    l2 = sb_listen(a, 0);
    CHECK(l2 >= 0);
    c = connect_pair(l2, a, &s);
    close(c);
    close(s);
    close(l2);
    unlink(path);

    /* Something that is not a socket is never removed. */
    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);
    CHECK_EQ(sb_listen(a, 0), -EADDRINUSE);
    CHECK_EQ(access(path, F_OK), 0);
    unlink(path);

    /* Nobody listening: refused, and no file left behind by dial. */
    CHECK(sb_dial(a, SOON_MS) < 0);
}

/* A port that was just bound and released has nobody listening. */
static void test_dial_refused(void)
{
    char a[64];
    int l = sb_listen("127.0.0.1:0", 0);
    int port = sb_local_port(l);

    close(l);
    addr_with_port(a, sizeof(a), "127.0.0.1", port);
    CHECK_EQ(sb_dial(a, SOON_MS), -ECONNREFUSED);
    CHECK_EQ(sb_dial(a, 0), -ECONNREFUSED);
    CHECK_EQ(sb_dial("nothing.invalid:80", SOON_MS), SB_ENOHOST);
    CHECK_EQ(sb_dial("127.0.0.1:x", SOON_MS), SB_EBADPORT);
}

/* Is a non-blocking connect still pending (not writable, no error)? */
static int still_pending(int fd, int wait_ms)
{
    struct pollfd p = {fd, POLLOUT, 0};

    return poll(&p, 1, wait_ms) == 0;
}

/* A listener with backlog 1 that never accepts: once its queue is full the
 * kernel drops further SYNs, so a connect neither succeeds nor fails and
 * only the timeout ends sb_dial. The queue is filled with non-blocking
 * connects until one stays pending. */
static void test_dial_timeout(void)
{
    enum { MAX_FILL = 64 };
    int fill[MAX_FILL], nfill = 0, full = 0, l, fd, i;
    sb_addr a;
    char s[64];
    int64_t t0, t1;
    const int timeout = 300;

    l = sb_listen("127.0.0.1:0", 1);
    CHECK(l >= 0);
    addr_with_port(s, sizeof(s), "127.0.0.1", sb_local_port(l));
    CHECK_EQ(sb_addr_resolve(s, 0, &a, 1), 1);
    while (nfill < MAX_FILL && !full) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        CHECK(connect(fd, (struct sockaddr *)&a.ss, a.len) == 0 || errno == EINPROGRESS);
        fill[nfill++] = fd;
        full = still_pending(fd, 500);
    }

    t0 = sb_now_ms();
    fd = sb_dial(s, timeout);
    t1 = sb_now_ms();
    if (full && still_pending(fill[nfill - 1], 0)) {
        /* The queue stayed full throughout: nothing but the timeout could
         * have ended the call, and it cannot end before it. */
        CHECK_EQ(fd, -ETIMEDOUT);
        CHECK(t1 - t0 >= timeout);
    } else {
        /* This kernel kept completing handshakes (no queue limit we could
         * reach): all we can assert is that the call was bounded. */
        fprintf(stderr, "    (backlog never filled; dial returned %d)\n", fd);
        CHECK(fd >= 0 || fd == -ETIMEDOUT);
        CHECK(t1 - t0 < timeout + SOON_MS);
        if (fd >= 0)
            close(fd);
    }
    for (i = 0; i < nfill; i++)
        close(fill[i]);
    close(l);
}

/* A unix listener's queue is a hard limit: once it is full a connect waits
 * for room, and only the timeout ends sb_dial. */
static void test_dial_timeout_unix(void)
{
    enum { MAX_FILL = 64 };
    int fill[MAX_FILL], nfill = 0, l, fd = 0, i;
    char a[128];

    if (!sb_test_have_unix())
        return;

    unix_path(a, sizeof(a), "t");
    unlink(a + 5);
    l = sb_listen(a, 1);
    CHECK(l >= 0);
    while (nfill < MAX_FILL && (fd = sb_dial(a, 200)) >= 0)
        fill[nfill++] = fd;
    CHECK_EQ(fd, -ETIMEDOUT);
    CHECK(nfill >= 1);
    for (i = 0; i < nfill; i++)
        close(fill[i]);
    close(l);
    unlink(a + 5);
}

static void test_accept_nonblocking(void)
{
    char a[64];
    int l = sb_listen("127.0.0.1:0", 0), c, s;

    CHECK_EQ(sb_set_nonblock(l, 1), 0);
    CHECK_EQ(sb_accept(l, NULL, 0), -EAGAIN);
    addr_with_port(a, sizeof(a), "127.0.0.1", sb_local_port(l));
    c = sb_dial(a, SOON_MS);
    CHECK(c >= 0);
    CHECK_EQ(sb_wait_fd(l, POLLIN, soon()), 0);
    s = sb_accept(l, NULL, SOCK_NONBLOCK);
    CHECK(s >= 0);
    CHECK(fcntl(s, F_GETFL) & O_NONBLOCK);
    check_cloexec(s);
    ping(c, s); /* the helpers wait on a non-blocking socket too */
    close(c);
    close(s);
    close(l);
}

/* ---- bulk transfer ------------------------------------------------------ */

#define BULK (8u << 20)

static uint8_t pattern(size_t i) { return (uint8_t)(i * 7 + (i >> 13)); }

struct reader {
    int fd;
    size_t got;
    int ok;
};

/* Reads slowly - small pieces, yielding between them - so the sender's
 * buffer fills and its sends come back short or would-block. */
static void *slow_reader(void *arg)
{
    struct reader *r = arg;
    uint8_t buf[3000];
    ssize_t n;
    size_t i;

    r->ok = 1;
    while ((n = sb_recv_some(r->fd, buf, sizeof(buf), soon())) > 0) {
        for (i = 0; i < (size_t)n; i++)
            if (buf[i] != pattern(r->got + i))
                r->ok = 0;
        r->got += (size_t)n;
        if ((r->got / sizeof(buf)) % 64 == 0)
            usleep(1000);
    }
    return NULL;
}

static int send_calls, short_sends;

static ssize_t counting_send(int fd, const void *p, size_t n, int flags)
{
    ssize_t r = send(fd, p, n, flags);

    send_calls++;
    if (r >= 0 && (size_t)r < n)
        short_sends++;
    return r;
}

static void bulk_send(int tx, int rx, int64_t deadline)
{
    uint8_t *data = malloc(BULK);
    struct reader r = {rx, 0, 0};
    pthread_t th;
    size_t i;

    CHECK(data != NULL);
    for (i = 0; i < BULK; i++)
        data[i] = pattern(i);
    send_calls = short_sends = 0;
    sb__sys.send = counting_send;
    CHECK_EQ(pthread_create(&th, NULL, slow_reader, &r), 0);
    CHECK_EQ(sb_send_all(tx, data, BULK, deadline), BULK);
    CHECK_EQ(sb_shutdown_write(tx), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    sb__sys_reset();
    CHECK_EQ(r.got, BULK);
    CHECK(r.ok);
    free(data);
}

static void test_send_all_socketpair(void)
{
    int sv[2];

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    bulk_send(sv[0], sv[1], soon());
    /* With a deadline the sends never block, so a slow reader shows up
     * as short sends that sb_send_all has to continue. */
    CHECK(short_sends > 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_send_all_tcp(void)
{
    char a[64];
    int l = sb_listen("127.0.0.1:0", 0), c, s;

    addr_with_port(a, sizeof(a), "127.0.0.1", sb_local_port(l));
    c = connect_pair(l, a, &s);
    bulk_send(c, s, soon());
    CHECK(short_sends > 0);
    close(c);
    close(s);

    /* No deadline, non-blocking socket: EAGAIN waits in poll. */
    c = connect_pair(l, a, &s);
    CHECK_EQ(sb_set_nonblock(c, 1), 0);
    bulk_send(c, s, SB_NO_DEADLINE);
    close(c);
    close(s);
    close(l);
}

/* Every send accepts at most 1000 bytes and every other one is first
 * interrupted: the loop must resume exactly where the last one ended. */
static int eintr_toggle;

static ssize_t stingy_send(int fd, const void *p, size_t n, int flags)
{
    if ((eintr_toggle ^= 1) != 0) {
        errno = EINTR;
        return -1;
    }
    return send(fd, p, n < 1000 ? n : 1000, flags);
}

static void test_send_all_short_and_eintr(void)
{
    int sv[2];
    uint8_t out[10000], in[10000];
    size_t i;

    for (i = 0; i < sizeof(out); i++)
        out[i] = pattern(i);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sb__sys.send = stingy_send;
    CHECK_EQ(sb_send_all(sv[0], out, sizeof(out), SB_NO_DEADLINE), sizeof(out));
    sb__sys_reset();
    CHECK_EQ(sb_recv_exact(sv[1], in, sizeof(in), soon()), sizeof(in));
    CHECK(memcmp(in, out, sizeof(in)) == 0);
    close(sv[0]);
    close(sv[1]);
}

/* ---- receiving ------------------------------------------------------------ */

struct dribbler {
    int fd;
    size_t n;
};

/* Writes one byte per send (the worst case for a reader). */
static void *dribble(void *arg)
{
    struct dribbler *d = arg;
    size_t i;

    for (i = 0; i < d->n; i++) {
        uint8_t b = pattern(i);
        CHECK_EQ(sb_send_all(d->fd, &b, 1, soon()), 1);
        if (i % 100 == 0)
            sched_yield();
    }
    return NULL;
}

static void test_recv_exact_small_writes(void)
{
    int sv[2];
    struct dribbler d;
    pthread_t th;
    uint8_t buf[5000];
    size_t i;

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d.fd = sv[0];
    d.n = sizeof(buf);
    CHECK_EQ(pthread_create(&th, NULL, dribble, &d), 0);
    CHECK_EQ(sb_recv_exact(sv[1], buf, sizeof(buf), soon()), sizeof(buf));
    CHECK_EQ(pthread_join(th, NULL), 0);
    for (i = 0; i < sizeof(buf); i++)
        CHECK_EQ(buf[i], pattern(i));
    close(sv[0]);
    close(sv[1]);
}

static int poll_eintr_once;

static int interrupted_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (poll_eintr_once) {
        poll_eintr_once = 0;
        errno = EINTR;
        return -1;
    }
    return poll(fds, n, timeout);
}

/* HOWTO 4.1: a peer that says nothing must not hang us. */
static void test_recv_deadline(void)
{
    char a[64], buf[16];
    int sv[2], l, c, s;
    int64_t deadline;

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    deadline = sb_now_ms() + 100;
    CHECK_EQ(sb_recv_exact(sv[1], buf, sizeof(buf), deadline), -ETIMEDOUT);
    CHECK(sb_now_ms() >= deadline);
    /* Partial data does not end the wait early either. */
    CHECK_EQ(sb_send_all(sv[0], "abc", 3, soon()), 3);
    deadline = sb_now_ms() + 100;
    CHECK_EQ(sb_recv_exact(sv[1], buf, sizeof(buf), deadline), -ETIMEDOUT);
    /* A deadline already past still returns data that is there. */
    CHECK_EQ(sb_send_all(sv[0], "d", 1, soon()), 1);
    CHECK_EQ(sb_recv_some(sv[1], buf, sizeof(buf), sb_now_ms() - 1), 1);
    CHECK_EQ(sb_recv_some(sv[1], buf, sizeof(buf), sb_now_ms() - 1), -ETIMEDOUT);
    /* A signal during the wait neither ends it nor extends it. */
    sb__sys.poll = interrupted_poll;
    poll_eintr_once = 1;
    CHECK_EQ(sb_recv_some(sv[1], buf, sizeof(buf), sb_now_ms() + 50), -ETIMEDOUT);
    CHECK_EQ(poll_eintr_once, 0);
    sb__sys_reset();
    CHECK_EQ(sb_wait_fd(sv[1], POLLIN, sb_now_ms() + 20), -ETIMEDOUT);
    CHECK_EQ(sb_wait_fd(sv[0], POLLOUT, sb_now_ms() + 20), 0);
    close(sv[0]);
    close(sv[1]);

    /* The same over TCP. */
    l = sb_listen("127.0.0.1:0", 0);
    addr_with_port(a, sizeof(a), "127.0.0.1", sb_local_port(l));
    c = connect_pair(l, a, &s);
    CHECK_EQ(sb_recv_exact(c, buf, 1, sb_now_ms() + 100), -ETIMEDOUT);
    close(c);
    close(s);
    close(l);
}

static void test_recv_eof(void)
{
    int sv[2];
    char buf[10];

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[0]);
    CHECK_EQ(sb_recv_exact(sv[1], buf, sizeof(buf), soon()), SB_ECLOSED);
    CHECK_EQ(sb_recv_exact(sv[1], buf, sizeof(buf), SB_NO_DEADLINE), SB_ECLOSED);
    CHECK_EQ(sb_recv_some(sv[1], buf, sizeof(buf), soon()), 0);
    close(sv[1]);

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(sb_send_all(sv[0], "abc", 3, soon()), 3);
    close(sv[0]);
    CHECK_EQ(sb_recv_exact(sv[1], buf, sizeof(buf), soon()), SB_ETRUNCATED);
    close(sv[1]);

    CHECK_EQ(sb_recv_exact(-1, buf, 1, soon()), -EBADF);
}

/* With SIGPIPE at its default action a plain send() to a closed peer would
 * kill this process; MSG_NOSIGNAL turns it into an error code. */
static void test_send_to_closed_peer(void)
{
    char a[64], buf[4096] = {0};
    int sv[2], l, c, s, i;
    ssize_t r = 0;

    CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    /* A Unix pair: the first send fails. */
    if (sb_test_have_unix()) {
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        close(sv[1]);
        CHECK_EQ(sb_send_all(sv[0], "x", 1, soon()), -EPIPE);
        CHECK_EQ(sb_send_all(sv[0], "x", 1, SB_NO_DEADLINE), -EPIPE);
        close(sv[0]);
    }

    /* TCP: the first writes may still be accepted; the peer answers them
     * with a reset, after which sends fail. Bounded number of tries. */
    l = sb_listen("127.0.0.1:0", 0);
    addr_with_port(a, sizeof(a), "127.0.0.1", sb_local_port(l));
    c = connect_pair(l, a, &s);
    close(s);
    for (i = 0; i < 1000 && r >= 0; i++) {
        r = sb_send_all(c, buf, sizeof(buf), soon());
        if (r >= 0)
            usleep(1000);
    }
    CHECK(r == -EPIPE || r == -ECONNRESET);
    close(c);
    close(l);
}

/* HOWTO 4: the client sends its request and shuts down its sending side;
 * the server reads to EOF, then answers on the half still open. */
struct half_server {
    int fd;
    char req[64];
    size_t len;
};

static void *half_close_server(void *arg)
{
    struct half_server *h = arg;
    ssize_t n;

    while ((n = sb_recv_some(h->fd, h->req + h->len, sizeof(h->req) - h->len, soon())) > 0)
        h->len += (size_t)n;
    CHECK_EQ(n, 0); /* EOF, not an error */
    CHECK_EQ(sb_send_all(h->fd, "reply", 5, soon()), 5);
    close(h->fd);
    return NULL;
}

static void test_half_close(void)
{
    char a[64], buf[16];
    int l = sb_listen("127.0.0.1:0", 0), c, s;
    struct half_server h;
    pthread_t th;

    addr_with_port(a, sizeof(a), "127.0.0.1", sb_local_port(l));
    c = connect_pair(l, a, &s);
    memset(&h, 0, sizeof(h));
    h.fd = s;
    CHECK_EQ(pthread_create(&th, NULL, half_close_server, &h), 0);
    CHECK_EQ(sb_send_all(c, "request", 7, soon()), 7);
    CHECK_EQ(sb_shutdown_write(c), 0);
    CHECK_EQ(sb_recv_exact(c, buf, 5, soon()), 5);
    CHECK(memcmp(buf, "reply", 5) == 0);
    CHECK_EQ(sb_recv_some(c, buf, sizeof(buf), soon()), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(h.len, 7);
    CHECK(memcmp(h.req, "request", 7) == 0);
    /* Our sending side is closed for good. */
    CHECK_EQ(sb_send_all(c, "x", 1, soon()), -EPIPE);
    close(c);
    close(l);
    CHECK_EQ(sb_shutdown_write(-1), -EBADF);
}

static void test_options(void)
{
    char a[64];
    int l = sb_listen("127.0.0.1:0", 0), c, s, sv[2];

    addr_with_port(a, sizeof(a), "127.0.0.1", sb_local_port(l));
    c = connect_pair(l, a, &s);
    CHECK_EQ(sb_set_keepalive(c, 1, 30, 5, 3), 0);
    CHECK(get_int_opt(c, SOL_SOCKET, SO_KEEPALIVE) != 0);
    CHECK_EQ(get_int_opt(c, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    CHECK_EQ(get_int_opt(c, IPPROTO_TCP, TCP_KEEPINTVL), 5);
    CHECK_EQ(get_int_opt(c, IPPROTO_TCP, TCP_KEEPCNT), 3);
    /* <= 0 leaves a value alone. */
    CHECK_EQ(sb_set_keepalive(c, 1, 0, 7, -1), 0);
    CHECK_EQ(get_int_opt(c, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    CHECK_EQ(get_int_opt(c, IPPROTO_TCP, TCP_KEEPINTVL), 7);
    CHECK_EQ(sb_set_keepalive(c, 0, 0, 0, 0), 0);
    CHECK_EQ(get_int_opt(c, SOL_SOCKET, SO_KEEPALIVE), 0);

    CHECK_EQ(sb_set_nodelay(c, 0), 0);
    CHECK_EQ(get_int_opt(c, IPPROTO_TCP, TCP_NODELAY), 0);
    CHECK_EQ(sb_set_nodelay(c, 1), 0);
    CHECK(get_int_opt(c, IPPROTO_TCP, TCP_NODELAY) != 0);

    CHECK_EQ(sb_set_nonblock(c, 1), 0);
    CHECK(fcntl(c, F_GETFL) & O_NONBLOCK);
    CHECK_EQ(sb_set_nonblock(c, 0), 0);
    CHECK_EQ(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    close(c);
    close(s);
    close(l);

    /* Errors come back as negative errno. */
    CHECK_EQ(sb_set_nonblock(-1, 1), -EBADF);
    CHECK_EQ(sb_local_port(-1), -EBADF);
    if (sb_test_have_unix()) { /* TCP_NODELAY on a Unix socket */
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        CHECK(sb_set_nodelay(sv[0], 1) < 0);
        close(sv[0]);
        close(sv[1]);
    }
}

static int fail_socket(int d, int t, int p)
{
    errno = EMFILE;
    return -1;
}

static void test_faults(void)
{
    sb__sys.socket = fail_socket;
    CHECK_EQ(sb_dial("127.0.0.1:1", SOON_MS), -EMFILE);
    CHECK_EQ(sb_listen("127.0.0.1:0", 0), -EMFILE);
    sb__sys_reset();
}

static void test_clock(void)
{
    int64_t a = sb_now_ns(), b = sb_now_ns();

    CHECK(b >= a);
    CHECK(sb_now_ms() >= 0);
    CHECK(sb_now_us() / 1000 <= sb_now_ms() + 1);
}

int main(void)
{
    RUN(test_clock);
    RUN(test_listen_ipv4);
    RUN(test_listen_ipv6);
    RUN(test_listen_dual_stack);
    RUN(test_listen_unix);
    RUN(test_dial_refused);
    RUN(test_dial_timeout);
    RUN(test_dial_timeout_unix);
    RUN(test_accept_nonblocking);
    RUN(test_send_all_socketpair);
    RUN(test_send_all_tcp);
    RUN(test_send_all_short_and_eintr);
    RUN(test_recv_exact_small_writes);
    RUN(test_recv_deadline);
    RUN(test_recv_eof);
    RUN(test_send_to_closed_peer);
    RUN(test_half_close);
    RUN(test_options);
    RUN(test_faults);
    return 0;
}
