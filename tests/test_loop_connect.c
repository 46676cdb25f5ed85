/* test_loop_connect: sb_loop_connect against real loopback listeners,
 * once per backend. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "test.h"

static const char *g_backend;

struct result {
    int calls;
    int value; /* fd or error */
};

static void on_connect(sb_loop *l, int fd_or_err, void *ud)
{
    struct result *r = ud;
    r->calls++;
    r->value = fd_or_err;
}

/* A TCP socket bound to 127.0.0.1 on an ephemeral port; *port set. */
static int bound_socket(int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Connect to 127.0.0.1:port and run the loop (bounded) until cb ran. */
static struct result connect_to(sb_loop *l, int port, int timeout_ms)
{
    char addr[64];
    struct result r = {0, 0};
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    CHECK_EQ(sb_loop_connect(l, addr, timeout_ms, on_connect, &r), 0);
    CHECK_EQ(r.calls, 0); /* never from inside sb_loop_connect */
    for (int i = 0; i < 200 && r.calls == 0; i++)
        CHECK(sb_loop_run_once(l, 100) >= 0);
    CHECK_EQ(r.calls, 1);
    for (int i = 0; i < 3; i++) /* and exactly once */
        CHECK(sb_loop_run_once(l, 0) >= 0);
    CHECK_EQ(r.calls, 1);
    return r;
}

static void test_success(void)
{
    sb_loop *l = NULL;
    int port;
    CHECK_EQ(sb_loop_new(&l, g_backend), 0);
    int lfd = bound_socket(&port);
    CHECK_EQ(listen(lfd, 16), 0);
    struct result r = connect_to(l, port, 5000);
    CHECK(r.value >= 0);
    CHECK_EQ(sb_loop_mask(l, r.value), 0); /* handed over unwatched */
    CHECK(fcntl(r.value, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(r.value, F_GETFD) & FD_CLOEXEC);
    int one = 0;
    socklen_t len = sizeof one;
    CHECK_EQ(getsockopt(r.value, IPPROTO_TCP, TCP_NODELAY, &one, &len), 0);
    CHECK(one != 0);
    int cfd = accept(lfd, NULL, NULL);
    CHECK(cfd >= 0);
    CHECK_EQ(write(r.value, "hi", 2), 2);
    char buf[2];
    CHECK_EQ(read(cfd, buf, 2), 2);
    CHECK(memcmp(buf, "hi", 2) == 0);
    close(cfd), close(r.value), close(lfd);
    sb_loop_free(l);
}

static void test_refused(void)
{
    sb_loop *l = NULL;
    int port;
    CHECK_EQ(sb_loop_new(&l, g_backend), 0);
    int fd = bound_socket(&port);
    close(fd); /* bound, never listened, closed: nothing on that port */
    struct result r = connect_to(l, port, 5000);
    CHECK_EQ(r.value, -ECONNREFUSED);
    CHECK_EQ(sb_loop_run_once(l, 0), 0); /* nothing left behind */
    sb_loop_free(l);
}

/* A listener that never accepts, its queue filled: Linux drops further
 * SYNs, so the handshake hangs until our timer ends it. */
static void test_timeout(void)
{
    enum { FILL = 8 };
    sb_loop *l = NULL;
    int port, fill[FILL];
    CHECK_EQ(sb_loop_new(&l, g_backend), 0);
    int lfd = bound_socket(&port);
    CHECK_EQ(listen(lfd, 0), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < FILL; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fill[i] >= 0);
        int r = connect(fill[i], (struct sockaddr *)&sin, sizeof sin);
        CHECK(r == 0 || errno == EINPROGRESS);
    }
    struct result r = connect_to(l, port, 200);
    CHECK_EQ(r.value, -ETIMEDOUT);
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    for (int i = 0; i < FILL; i++)
        close(fill[i]);
    close(lfd);
    sb_loop_free(l);
}

static void test_immediate_errors(void)
{
    sb_loop *l = NULL;
    struct result r = {0, 0};
    CHECK_EQ(sb_loop_new(&l, g_backend), 0);
    CHECK(sb_loop_connect(l, "no port here", 1000, on_connect, &r) < 0);
    CHECK(sb_loop_connect(l, "127.0.0.1:99999", 1000, on_connect, &r) < 0);
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    CHECK_EQ(r.calls, 0);
    sb_loop_free(l);
}

/* A Unix socket with nobody listening fails inside connect(): the outcome
 * is known at once and still arrives through the loop. */
static void test_unix_immediate(void)
{
    sb_loop *l = NULL;
    struct result r = {0, 0};
    char addr[128];

    if (!sb_test_have_unix())
        return;
    CHECK_EQ(sb_loop_new(&l, g_backend), 0);
    snprintf(addr, sizeof addr, "unix:/tmp/sb-test-loop-connect-%d.sock", (int)getpid());
    CHECK_EQ(sb_loop_connect(l, addr, 1000, on_connect, &r), 0);
    CHECK_EQ(r.calls, 0);
    CHECK_EQ(sb_loop_run_once(l, -1), 1);
    CHECK_EQ(r.calls, 1);
    CHECK_EQ(r.value, -ENOENT);
    sb_loop_free(l);
}

int main(void)
{
    const char *const *names = sb_loop_backends();
    for (int i = 0; names[i] != NULL; i++) {
        g_backend = names[i];
        if (!sb_test_backend_ok(g_backend))
            continue;
        fprintf(stderr, "backend %s\n", g_backend);
        RUN(test_success);
        RUN(test_refused);
        RUN(test_timeout);
        RUN(test_immediate_errors);
        RUN(test_unix_immediate);
    }
    fprintf(stderr, "ok\n");
    return 0;
}
