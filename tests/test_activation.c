/* test_activation: systemd socket activation - sb_listen_fds and a
 * listening socket handed to the server (sb_server_opts.listen_fd): the
 * environment's every rejected form, the socket served where it is bound
 * and closed with the server, and what is not a listening socket refused.
 * POSIX only (setenv, pipe): not built for Windows, where systemd does not
 * hand over sockets. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>

#include "test.h"

static int echo(sb_conn *c, const sb_msg *m, void *app)
{
    return sb_conn_send(c, m->type, m->data, m->len);
}

static const sb_handler echo_handler = {NULL, echo, NULL, NULL, NULL};

/* systemd socket activation: sb_listen_fds counts only what was passed to
 * this very process, as a plain decimal count in range; anything else is
 * 0 (nothing passed). The variables are left as they were. */
static void listen_env(const char *pid, const char *fds)
{
    if (pid)
        CHECK_EQ(setenv("LISTEN_PID", pid, 1), 0);
    else
        CHECK_EQ(unsetenv("LISTEN_PID"), 0);
    if (fds)
        CHECK_EQ(setenv("LISTEN_FDS", fds, 1), 0);
    else
        CHECK_EQ(unsetenv("LISTEN_FDS"), 0);
}

static void test_listen_fds_env(void)
{
    static const char *const bad_fds[] = {"", "x", "1x", "1 ", "-1", "65", "99999999999999999999",
                                          "0"};
    char me[32], me_x[40], other[32];

    snprintf(me, sizeof(me), "%ld", (long)getpid());
    snprintf(me_x, sizeof(me_x), "%ldx", (long)getpid());
    snprintf(other, sizeof(other), "%ld", (long)getppid());
    listen_env(me, "1");
    CHECK_EQ(sb_listen_fds(), 1);
    CHECK(strcmp(getenv("LISTEN_PID"), me) == 0 && strcmp(getenv("LISTEN_FDS"), "1") == 0);
    listen_env(me, "64");
    CHECK_EQ(sb_listen_fds(), 64);
    listen_env(NULL, NULL);
    CHECK_EQ(sb_listen_fds(), 0);
    listen_env(NULL, "1");                 /* for whom? */
    CHECK_EQ(sb_listen_fds(), 0);
    listen_env(me, NULL);
    CHECK_EQ(sb_listen_fds(), 0);
    listen_env(other, "1");                /* meant for the parent, inherited */
    CHECK_EQ(sb_listen_fds(), 0);
    listen_env(me_x, "1");
    CHECK_EQ(sb_listen_fds(), 0);
    listen_env("", "1");
    CHECK_EQ(sb_listen_fds(), 0);
    for (size_t i = 0; i < sizeof(bad_fds) / sizeof(bad_fds[0]); i++) {
        listen_env(me, bad_fds[i]);
        CHECK_EQ(sb_listen_fds(), 0);
    }
    listen_env(NULL, NULL);
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* A listening socket handed over (listen_fd) is served where it is bound,
 * with no bind of the server's own, and closed by sb_server_free. */
static void *lfd_client(void *p)
{
    sb_server *s = p;
    char addr[64], b[3];
    int fd;

    CHECK(sb_server_address(s, addr, sizeof(addr)) > 0);
    fd = sb_dial(addr, 2000);
    CHECK(fd >= 0);
    CHECK_EQ(sb_send_all(fd, "hi\n", 3, sb_now_ms() + 2000), 3);
    CHECK_EQ(sb_recv_exact(fd, b, 3, sb_now_ms() + 2000), 3);
    CHECK(memcmp(b, "hi\n", 3) == 0);
    close(fd);
    sb_server_stop(s);
    return NULL;
}

static void test_listen_fd(void)
{
    sb_server_opts o;
    sb_server *s;
    pthread_t t;
    char want[64], got[64];
    int lfd = sb_listen("127.0.0.1:0", 16);

    CHECK(lfd >= 0);
    snprintf(want, sizeof(want), "127.0.0.1:%d", sb_local_port(lfd));
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:1"; /* not bound: the socket given is served */
    o.listen_fd = lfd;
    o.grace_ms = 300;
    CHECK_EQ(sb_server_new(&s, &o, &echo_handler), 0);
    CHECK(sb_server_address(s, got, sizeof(got)) > 0);
    CHECK(strcmp(got, want) == 0);
    CHECK_EQ(pthread_create(&t, NULL, lfd_client, s), 0);
    CHECK_EQ(sb_server_run(s), 0);
    pthread_join(t, NULL);
    sb_server_free(s);
    CHECK(!fd_open(lfd));
}

/* What is not a listening socket is refused by sb_server_new, and closed
 * (the server owns it even then): an event loop watching it would find it
 * ready for ever with nothing to accept. */
static void refuse_lfd(int fd, int want)
{
    sb_server_opts o;
    sb_server *s = NULL;

    CHECK(fd > 0);
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.listen_fd = fd;
    CHECK_EQ(sb_server_new(&s, &o, &echo_handler), want);
    CHECK(!fd_open(fd));
}

static void test_listen_fd_refused(void)
{
    sb_addr a;
    char addr[64];
    int p[2], fd, lfd;

    CHECK_EQ(pipe(p), 0);
    close(p[1]);
    refuse_lfd(p[0], -ENOTSOCK);             /* not a socket */
    fd = socket(AF_INET, SOCK_DGRAM, 0);     /* a datagram socket, bound */
    CHECK_EQ(sb_addr_resolve("127.0.0.1:0", 0, &a, 1), 1);
    CHECK_EQ(bind(fd, (struct sockaddr *)&a.ss, a.len), 0);
    refuse_lfd(fd, -EINVAL);
    fd = socket(AF_INET, SOCK_STREAM, 0);    /* bound, never listened on */
    CHECK_EQ(bind(fd, (struct sockaddr *)&a.ss, a.len), 0);
    refuse_lfd(fd, -EINVAL);
    lfd = sb_listen("127.0.0.1:0", 16);      /* a connection (Accept=yes) */
    CHECK(lfd >= 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", sb_local_port(lfd));
    fd = sb_dial(addr, 2000);
    CHECK(fd >= 0);
    refuse_lfd(sb_accept(lfd, NULL, 0), -EINVAL);
    close(fd);
    close(lfd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_listen_fds_env);
    RUN(test_listen_fd);
    RUN(test_listen_fd_refused);
    return 0;
}
