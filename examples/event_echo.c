/* event_echo: the "inside-out" app of HOWTO section 5, written against the
 * event API directly - a loop, a listening socket watched for readability,
 * one sb_conn per client, and a timer that prints a count every second.
 * On SIGINT/SIGTERM it ends the connections still open (sb_conn_walk)
 * and frees everything.
 *
 *   cc event_echo.c $(pkg-config --cflags --libs switchboard) -o event_echo
 *   ./event_echo 127.0.0.1:7000 [epoll|poll|select] [SECONDS]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <switchboard.h>

static sb_conn_opts opts;
static unsigned long messages;

static int on_message(sb_conn *c, const sb_msg *m, void *app)
{
    messages++;
    return sb_conn_send(c, m->type, m->data, m->len); /* queued, flushed after the batch */
}

static const sb_handler handler = {.on_message = on_message};

static void on_listener(sb_loop *l, int lfd, int events, void *ud)
{
    int fd = sb_accept(lfd, NULL, SOCK_NONBLOCK);
    if (fd >= 0)
        sb_conn_open(l, fd, &opts, &handler, NULL); /* the conn owns fd now */
}

static void on_tick(sb_loop *l, sb_timer *t)
{
    int *left = t->data;
    printf("%lu messages\n", messages);
    fflush(stdout);
    if (*left > 0 && --*left == 0)
        sb_loop_stop(l);
    else
        sb_timer_start(l, t, 1000); /* re-arm from inside its own callback */
}

static void on_signal(sb_loop *l, int signo, void *ud)
{
    sb_loop_stop(l);
}

static void abort_one(sb_conn *c, void *ud)
{
    sb_conn_abort(c); /* only marks it: the loop closes it on its next turn */
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:7000";
    int seconds = argc > 3 ? atoi(argv[3]) : 0;
    sb_loop *l;
    sb_timer tick;
    int lfd, rc;

    rc = sb_loop_new(&l, argc > 2 ? argv[2] : NULL);
    if (rc < 0) {
        fprintf(stderr, "event_echo: %s\n", sb_strerror(rc));
        return 2;
    }
    lfd = sb_listen(addr, 0);
    if (lfd < 0) {
        fprintf(stderr, "event_echo: %s: %s\n", addr, sb_strerror(lfd));
        return 1;
    }
    sb_set_nonblock(lfd, 1);
    sb_conn_opts_default(&opts); /* line framing, 1 MiB messages */
    opts.idle_timeout_ms = 60000;
    sb_loop_watch(l, lfd, SB_READABLE, on_listener, NULL);
    sb_timer_init(&tick, on_tick, &seconds);
    sb_timer_start(l, &tick, 1000);
    sb_loop_signal(l, SIGINT, on_signal, NULL);
    sb_loop_signal(l, SIGTERM, on_signal, NULL);
    {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char where[128] = "?";
        getsockname(lfd, (struct sockaddr *)&ss, &len);
        sb_addr_format((struct sockaddr *)&ss, len, where, sizeof(where));
        printf("listening on %s with %s\n", where, sb_loop_backend(l));
    }
    fflush(stdout);
    rc = sb_loop_run(l);
    close(lfd);
    /* The loop stopped with clients still connected: end them (each one's
     * on_close runs and its memory is freed) before freeing the loop. */
    sb_conn_walk(l, abort_one, NULL);
    for (int i = 0; i < 100 && sb_conn_walk(l, NULL, NULL) > 0; i++)
        sb_loop_run_once(l, 100);
    sb_loop_free(l);
    return rc < 0;
}
