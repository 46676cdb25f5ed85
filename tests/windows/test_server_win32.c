/* test_server_win32: the server on Windows - the fork model refused (HOWTO
 * 5.1: "don't do this on Windows"), the other two serving, and a stop
 * request arriving the way Windows sends one: a console control event,
 * delivered to the handler sigaction() set for SIGINT (what Wine does
 * with a SIGINT, and Windows with Ctrl-C).
 *
 * Built and run only by the Windows build (cmake/windows.cmake). */
#include <errno.h>
#include <string.h>

#include "switchboard.h"
#include "test.h"

static int echo(sb_conn *c, const sb_msg *m, void *app)
{
    (void)app;
    return sb_conn_send(c, m->type, m->data, m->len);
}

static const sb_handler echo_handler = {NULL, echo, NULL, NULL, NULL};

static void opts(sb_server_opts *o, sb_model model)
{
    sb_server_opts_default(o);
    o->listen = "127.0.0.1:0";
    o->model = model;
}

static void test_fork_refused(void)
{
    sb_server_opts o;
    sb_server *s = NULL;
    opts(&o, SB_MODEL_FORK);
    CHECK_EQ(sb_server_new(&s, &o, &echo_handler), -ENOSYS);
    CHECK(s == NULL);
}

static void *run(void *ud)
{
    return (void *)(intptr_t)sb_server_run(ud);
}

/* Serve one exchange, then stop through the console handler. */
static void serve_and_interrupt(sb_model model)
{
    sb_server_opts o;
    sb_server *s;
    pthread_t t;
    char addr[64], reply[8];
    void *rc;

    opts(&o, model);
    o.handle_signals = 1;
    CHECK_EQ(sb_server_new(&s, &o, &echo_handler), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", sb_server_port(s));
    CHECK_EQ(pthread_create(&t, NULL, run, s), 0);
    int fd = sb_dial(addr, 5000);
    CHECK(fd >= 0);
    CHECK_EQ(sb_send_all(fd, "hello\n", 6, SB_NO_DEADLINE), 6);
    CHECK_EQ(sb_recv_exact(fd, reply, 6, sb_now_ms() + 5000), 6);
    CHECK(memcmp(reply, "hello\n", 6) == 0);
    close(fd);
    /* Without a console to send it through, raise() calls the handler. */
    if (GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0))
        fprintf(stderr, "    (stopped by a console Ctrl-C event)\n");
    else
        CHECK_EQ(raise(SIGINT), 0);
    CHECK_EQ(pthread_join(t, &rc), 0);
    CHECK_EQ((int)(intptr_t)rc, 0);
    sb_server_free(s);
}

static void test_event_interrupted(void)
{
    serve_and_interrupt(SB_MODEL_EVENT);
}

static void test_threads_interrupted(void)
{
    serve_and_interrupt(SB_MODEL_THREADS);
}

int main(void)
{
    RUN(test_fork_refused);
    RUN(test_event_interrupted);
    RUN(test_threads_interrupted);
    fprintf(stderr, "test_server_win32: ok\n");
    return 0;
}
