/* test_server: the three dispatch models through the library API - the
 * same handler under event (each backend), threads and fork; the message
 * counter; --max-conns shedding; workers; a stop with an idle connection open, and
 * one that must not name a connection's fd after its close (threads,
 * and a fork child's SIGTERM handler); a stop while connections are
 * handed between workers; a drain with a request unread; a fork child
 * busy with a client that keeps sending ends itself on a stop; the PROXY
 * protocol header's wait. The server runs on the main thread, clients on
 * a second one. */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "test.h"
#include "sys.h"

#define CONNS 8
#define ROUNDS 50

static int echo(sb_conn *c, const sb_msg *m, void *app)
{
    return sb_conn_send(c, m->type, m->data, m->len);
}

static const sb_handler echo_handler = {NULL, echo, NULL, NULL, NULL};

typedef struct {
    sb_server *s;
    char addr[64];
    sb_frame_spec spec;
    int ok;          /* exchanges that came back right */
    int shed_seen;   /* the over-cap connection was closed on us */
    int max_conns;   /* > 0: test shedding instead of echo */
} client_job;

static void exchange(client_job *j, int fd)
{
    sb_stream *st;
    CHECK_EQ(sb_stream_open(&st, fd, &j->spec, 1 << 20, 5000), 0);
    for (int r = 0; r < ROUNDS; r++) {
        char msg[32];
        sb_msg m;
        int n = snprintf(msg, sizeof(msg), "fd %d round %d", fd, r);
        CHECK_EQ(sb_stream_request(st, -1, msg, (size_t)n, &m), 1);
        if (m.len == (size_t)n && memcmp(m.data, msg, m.len) == 0)
            __atomic_fetch_add(&j->ok, 1, __ATOMIC_RELAXED);
    }
    sb_stream_close(st);
}

static void shed_check(client_job *j)
{
    int fds[3];
    char b;

    for (int i = 0; i < j->max_conns; i++) {
        fds[i] = sb_dial(j->addr, 2000);
        CHECK(fds[i] >= 0);
        exchange(j, fds[i]); /* proves each is being served */
    }
    fds[j->max_conns] = sb_dial(j->addr, 2000);
    CHECK(fds[j->max_conns] >= 0);
    /* The one over the cap is accepted and closed at once. */
    if (sb_recv_some(fds[j->max_conns], &b, 1, sb_now_ms() + 5000) == 0)
        j->shed_seen = 1;
    for (int i = 0; i <= j->max_conns; i++)
        close(fds[i]);
}

static void *client(void *p)
{
    client_job *j = p;
    int fds[CONNS];

    if (j->max_conns) {
        shed_check(j);
    } else {
        for (int i = 0; i < CONNS; i++) {
            fds[i] = sb_dial(j->addr, 2000);
            CHECK(fds[i] >= 0);
        }
        for (int i = 0; i < CONNS; i++)
            exchange(j, fds[i]);
        /* Leave one connection open and idle: stop must still end. */
        for (int i = 1; i < CONNS; i++)
            close(fds[i]);
    }
    sb_server_stop(j->s);
    return NULL;
}

static int g_workers; /* sb_server_opts.workers for run_model */

/* What the server logged (the shedding reports): the library names its
 * own options (max_conns), never a CLI flag. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_seen[1024];

static void record_log(void *ud, const char *msg)
{
    pthread_mutex_lock(&log_mu);
    if (strlen(log_seen) + strlen(msg) + 2 < sizeof(log_seen)) {
        strcat(log_seen, msg);
        strcat(log_seen, "\n");
    }
    pthread_mutex_unlock(&log_mu);
}

/* on_ready: called once per run, from run, before any connection. */
static int ready_calls;

static void note_ready(sb_server *s, void *ud)
{
    sb_server_stats st;

    sb_server_stats_get(s, &st);
    CHECK_EQ(st.accepted, 0);
    CHECK(ud == &ready_calls);
    ready_calls++;
}

static void run_model(sb_model model, const char *backend, int max_conns)
{
    sb_server_opts o;
    sb_server_stats st;
    client_job j;
    pthread_t t;
    int64_t t0;

    memset(&j, 0, sizeof(j));
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.model = model;
    o.backend = backend;
    o.max_conns = max_conns;
    o.grace_ms = 300;
    o.workers = g_workers;

    o.log = record_log;
    log_seen[0] = '\0';
    o.on_ready = note_ready;
    o.on_ready_ud = &ready_calls;
    ready_calls = 0;
    CHECK_EQ(sb_frame_parse("len32", &o.conn.frame), 0);
    j.spec = o.conn.frame;
    j.max_conns = max_conns;
    CHECK_EQ(sb_server_new(&j.s, &o, &echo_handler), 0);
    CHECK(sb_server_address(j.s, j.addr, sizeof(j.addr)) > 0);
    CHECK_EQ(pthread_create(&t, NULL, client, &j), 0);
    t0 = sb_now_ms();
    CHECK_EQ(sb_server_run(j.s), 0);
    CHECK(sb_now_ms() - t0 < 30000);
    pthread_join(t, NULL);
    sb_server_stats_get(j.s, &st);
    if (max_conns) {
        CHECK_EQ(j.shed_seen, 1);
        CHECK(st.refused >= 1);
        fprintf(stderr, "    logged: %s", log_seen);
        CHECK(strstr(log_seen, "connection shed: max_conns (2)") != NULL);
        CHECK(strstr(log_seen, "--") == NULL);
    } else {
        CHECK_EQ(j.ok, CONNS * ROUNDS);
        CHECK_EQ(st.messages, CONNS * ROUNDS);
        CHECK_EQ(st.accepted, CONNS);
    }
    CHECK_EQ(st.active, 0);
    CHECK_EQ(ready_calls, 1);
    sb_server_free(j.s);
    /* fork: every child reaped, none left behind - no zombie (a pid back)
     * and no live child (0 back): the process has no child at all. */
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(errno, ECHILD);
}

static void test_models(void)
{
    for (const char *const *b = sb_loop_backends(); *b; b++) {
        if (!sb_test_backend_ok(*b))
            continue;
        fprintf(stderr, "    event/%s\n", *b);
        run_model(SB_MODEL_EVENT, *b, 0);
    }
    fprintf(stderr, "    threads\n");
    run_model(SB_MODEL_THREADS, NULL, 0);
    fprintf(stderr, "    fork\n");
    if (sb_test_have_fork())
        run_model(SB_MODEL_FORK, NULL, 0);
}

/* Three workers: every exchange served, the counters summed over them,
 * each worker's loop reachable, the metrics text per worker (and the
 * length it needs when the buffer is short). */
static void test_workers(void)
{
    sb_server_opts o;
    sb_server *s;
    char text[8192], small[16];
    int n;

    g_workers = 3;
    run_model(SB_MODEL_EVENT, NULL, 0);
    run_model(SB_MODEL_EVENT, NULL, 2); /* --max-conns counts every worker's */
    g_workers = 0;

    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.workers = 3;
    CHECK_EQ(sb_server_new(&s, &o, &echo_handler), 0);
    CHECK_EQ(sb_server_workers(s), 3);
    CHECK(sb_server_loop(s, 0) == NULL); /* made by sb_server_run */
    CHECK(sb_server_loop(s, 3) == NULL);
    n = sb_server_metrics(s, text, sizeof(text));
    CHECK(n > 0 && (size_t)n < sizeof(text));
    CHECK(strstr(text, "switchboard_workers 3\n") != NULL);
    CHECK(strstr(text, "switchboard_connections_open{worker=\"2\"} 0\n") != NULL);
    CHECK(strstr(text, "switchboard_connection_errors_total{worker=\"1\",cause=\"out_cap\"} 0\n") != NULL);
    CHECK_EQ(sb_server_metrics(s, small, sizeof(small)), n);
    CHECK_EQ(strlen(small), sizeof(small) - 1);
    CHECK_EQ(sb_server_metrics_address(s, small, sizeof(small)), -ENOENT);
    sb_server_free(s);

    o.workers = SB_WORKERS_AUTO;
    o.model = SB_MODEL_THREADS; /* workers apply to the event model only */
    CHECK_EQ(sb_server_new(&s, &o, &echo_handler), 0);
    CHECK_EQ(sb_server_workers(s), 1);
    CHECK(sb_server_loop(s, 0) == NULL);
    sb_server_free(s);
}

static void test_max_conns(void)
{
    run_model(SB_MODEL_EVENT, NULL, 2);
    run_model(SB_MODEL_THREADS, NULL, 2);
    if (sb_test_have_fork())
        run_model(SB_MODEL_FORK, NULL, 2);
}

/* keepalive_s: every accepted connection gets SO_KEEPALIVE and the idle
 * time, under each model (checked from inside the handler). */
static int ka_seen = -1;

static int ka_open(sb_conn *c, void *app)
{
    int on = 0, idle = 0;
    socklen_t len = sizeof(on);

    getsockopt(sb_conn_fd(c), SOL_SOCKET, SO_KEEPALIVE, &on, &len);
    len = sizeof(idle);
    getsockopt(sb_conn_fd(c), IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len);
    ka_seen = on ? idle : 0;
    return 0;
}

static void *ka_client(void *p)
{
    sb_server *s = p;
    char addr[64];
    int fd;

    sb_server_address(s, addr, sizeof(addr));
    fd = sb_dial(addr, 2000);
    CHECK(fd >= 0);
    CHECK_EQ(sb_send_all(fd, "x\n", 2, sb_now_ms() + 2000), 2);
    char b[2];
    CHECK_EQ(sb_recv_exact(fd, b, 2, sb_now_ms() + 5000), 2);
    close(fd);
    sb_server_stop(s);
    return NULL;
}

static void test_keepalive(void)
{
    static const sb_handler h = {ka_open, echo, NULL, NULL, NULL};
    sb_model models[] = {SB_MODEL_EVENT, SB_MODEL_THREADS};

    for (int i = 0; i < 2; i++) {
        sb_server_opts o;
        sb_server *s;
        pthread_t t;

        sb_server_opts_default(&o);
        o.listen = "127.0.0.1:0";
        o.model = models[i];
        o.keepalive_s = 7;
        ka_seen = -1;
        CHECK_EQ(sb_server_new(&s, &o, &h), 0);
        CHECK_EQ(pthread_create(&t, NULL, ka_client, s), 0);
        CHECK_EQ(sb_server_run(s), 0);
        pthread_join(t, NULL);
        CHECK_EQ(ka_seen, 7);
        sb_server_free(s);
    }
}

/* EMFILE on every accept for a while, so that even shedding (give up the
 * spare fd, accept, close) fails: the server pauses accepting instead of
 * spinning on a listener that stays readable, and serves again once
 * accept works. */
static int emfile_left;

static int emfile_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    if (__atomic_fetch_sub(&emfile_left, 1, __ATOMIC_RELAXED) > 0) {
        errno = EMFILE;
        return -1;
    }
    return accept4(fd, sa, len, flags);
}

static int paused_logged;

static void emfile_log(void *ud, const char *msg)
{
    if (strstr(msg, "accept paused") != NULL)
        __atomic_store_n(&paused_logged, 1, __ATOMIC_RELAXED);
}

static void *emfile_client(void *p)
{
    client_job *j = p;
    int ok = 0;

    /* Until accept works the connection waits in the backlog; it is then
     * either served or was shed (closed): retry a bounded number of times. */
    for (int i = 0; i < 50 && !ok; i++) {
        int fd = sb_dial(j->addr, 2000);
        sb_stream *st;
        sb_msg m;
        CHECK(fd >= 0);
        CHECK_EQ(sb_stream_open(&st, fd, &j->spec, 1 << 10, 5000), 0);
        ok = sb_stream_request(st, -1, "ping", 4, &m) == 1 && m.len == 4;
        sb_stream_close(st);
        close(fd);
    }
    j->ok = ok;
    sb_server_stop(j->s);
    return NULL;
}

static void test_accept_emfile(void)
{
    sb_server_opts o;
    sb_server_stats st;
    client_job j;
    pthread_t t;

    memset(&j, 0, sizeof(j));
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.log = emfile_log;
    CHECK_EQ(sb_frame_parse("len32", &o.conn.frame), 0);
    j.spec = o.conn.frame;
    CHECK_EQ(sb_server_new(&j.s, &o, &echo_handler), 0);
    sb_server_address(j.s, j.addr, sizeof(j.addr));
    emfile_left = 6;
    sb__sys.accept4 = emfile_accept4;
    CHECK_EQ(pthread_create(&t, NULL, emfile_client, &j), 0);
    CHECK_EQ(sb_server_run(j.s), 0);
    pthread_join(t, NULL);
    sb__sys_reset();
    sb_server_stats_get(j.s, &st);
    CHECK_EQ(j.ok, 1);                /* served once accept worked again */
    CHECK(emfile_left < 0);           /* every injected EMFILE was met */
    CHECK(st.refused >= 1);           /* and counted as shed */
    CHECK_EQ(paused_logged, 1);       /* shedding failed too: accept paused */
    sb_server_free(j.s);
}

/* handle_signals: from sb_server_new on, SIGTERM is the server's, so a
 * supervisor that signals as soon as the server says it listens (the CLI
 * prints that line between new and run) stops it cleanly instead of
 * killing it. A signal before run is kept: run returns 0 at once. */
static void test_signal_before_run(void)
{
    sb_model models[] = {SB_MODEL_EVENT, SB_MODEL_THREADS, SB_MODEL_FORK};

    for (int i = 0; i < 3; i++) {
        sb_server_opts o;
        sb_server_stats st;
        sb_server *s;
        struct sigaction sa;
        int64_t t0;

        fprintf(stderr, "    %s\n", sb_model_name(models[i]));
        if (models[i] == SB_MODEL_FORK && !sb_test_have_fork())
            continue;
        sb_server_opts_default(&o);
        o.listen = "127.0.0.1:0";
        o.model = models[i];
        o.handle_signals = 1;
        CHECK_EQ(sb_server_new(&s, &o, &echo_handler), 0);
        CHECK_EQ(raise(i == 1 ? SIGINT : SIGTERM), 0);
        t0 = sb_now_ms();
        CHECK_EQ(sb_server_run(s), 0);
        CHECK(sb_now_ms() - t0 < 5000);
        sb_server_stats_get(s, &st);
        CHECK_EQ(st.accepted, 0);
        sb_server_free(s);
        /* free hands the signals back as they were */
        CHECK_EQ(sigaction(SIGTERM, NULL, &sa), 0);
        CHECK(sa.sa_handler == SIG_DFL);
        CHECK_EQ(sigaction(SIGINT, NULL, &sa), 0);
        CHECK(sa.sa_handler == SIG_DFL);
    }
}

/* The signals are the process's: one server holds them at a time. A
 * second one asking for them is refused (it would be stopped in the first
 * one's place, and the first one's free would hand them back under it);
 * once the first is freed, they can be taken again. */
static void test_signals_one_server(void)
{
    sb_server_opts o;
    sb_server *a, *b;
    struct sigaction sa;

    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.handle_signals = 1;
    CHECK_EQ(sb_server_new(&a, &o, &echo_handler), 0);
    CHECK_EQ(sb_server_new(&b, &o, &echo_handler), -EBUSY);
    o.handle_signals = 0;
    CHECK_EQ(sb_server_new(&b, &o, &echo_handler), 0);
    sb_server_free(b);
    /* b took nothing, so a still holds SIGTERM */
    CHECK_EQ(sigaction(SIGTERM, NULL, &sa), 0);
    CHECK(sa.sa_handler != SIG_DFL);
    sb_server_free(a);
    CHECK_EQ(sigaction(SIGTERM, NULL, &sa), 0);
    CHECK(sa.sa_handler == SIG_DFL);
    o.handle_signals = 1;
    CHECK_EQ(sb_server_new(&b, &o, &echo_handler), 0);
    sb_server_free(b);
}

/* A stop must not name a connection's fd after the connection closed it:
 * between a connection thread's close and its leaving the server's books,
 * the number can already belong to something else. This close wrapper
 * makes that happen on purpose: after the real close of a connection's
 * socket it puts a socket of its own at the same number (dup2), holds it
 * there longer than the stop's grace period, and then looks whether anyone
 * shut it down (a recv of 0 instead of EAGAIN). */
static int (*real_close)(int);
static int reuse_armed, reuse_done, reuse_hit;

static int reuse_close(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int conn = __atomic_load_n(&reuse_armed, __ATOMIC_ACQUIRE) &&
               getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
    int rc = real_close(fd);
    int sp[2], peer;
    char b;

    if (!conn || __atomic_exchange_n(&reuse_armed, 0, __ATOMIC_ACQ_REL) == 0)
        return rc;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        return rc;
    peer = sp[0] == fd ? sp[1] : sp[0];
    if (sp[0] != fd && sp[1] != fd) { /* move one end to the freed number */
        if (dup2(sp[1], fd) != fd) {
            real_close(sp[0]);
            real_close(sp[1]);
            return rc;
        }
        real_close(sp[1]);
    }
    usleep(400 * 1000); /* grace_ms is 50: the stop's last step runs now */
    if (recv(fd, &b, 1, MSG_DONTWAIT) == 0)
        __atomic_store_n(&reuse_hit, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&reuse_done, 1, __ATOMIC_RELEASE);
    real_close(fd);
    real_close(peer);
    return rc;
}

static void *reuse_client(void *p)
{
    client_job *j = p;
    char buf[8];
    int fd = sb_dial(j->addr, 2000);

    CHECK(fd >= 0);
    CHECK_EQ(sb_send_all(fd, "hi\n", 3, sb_now_ms() + 5000), 3);
    CHECK_EQ(sb_recv_some(fd, buf, sizeof(buf), sb_now_ms() + 5000), 3);
    __atomic_store_n(&reuse_armed, 1, __ATOMIC_RELEASE);
    sb_server_stop(j->s); /* the connection stays open: the stop closes it */
    j->ok = fd;
    return NULL;
}

static void test_stop_names_no_closed_fd(void)
{
    sb_server_opts o;
    client_job j;
    pthread_t t;

    memset(&j, 0, sizeof(j));
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.model = SB_MODEL_THREADS;
    o.grace_ms = 50;
    real_close = sb__sys.close;
    sb__sys.close = reuse_close;
    CHECK_EQ(sb_server_new(&j.s, &o, &echo_handler), 0);
    CHECK(sb_server_address(j.s, j.addr, sizeof(j.addr)) > 0);
    CHECK_EQ(pthread_create(&t, NULL, reuse_client, &j), 0);
    CHECK_EQ(sb_server_run(j.s), 0);
    pthread_join(t, NULL);
    sb_server_free(j.s);
    sb__sys_reset();
    close(j.ok);
    CHECK_EQ(__atomic_load_n(&reuse_done, __ATOMIC_ACQUIRE), 1); /* the race was staged */
    CHECK_EQ(__atomic_load_n(&reuse_hit, __ATOMIC_ACQUIRE), 0);  /* and nobody fell in */
}

/* Fork model: a stop ends a child busy with a client that keeps sending
 * and reads slowly (the child is often in backpressure, waiting only for
 * POLLOUT) the way the threads model does: a close request wakes it, it
 * stops reading, flushes its replies and closes in order - the client
 * reads to an EOF, well before the grace period's SIGKILL. The child's
 * SIGTERM used to shut down the socket's reading side instead: the child
 * took that for the peer's end, closed with the client's bytes unread,
 * and the client got a reset. */
typedef struct {
    client_job *j;
    int eof;        /* the server closed the connection in order (not a reset) */
} pump_job;

static void *pump_client(void *p)
{
    pump_job *pj = p;
    static char out[64 * 1024], in[64 * 1024];
    int fd = sb_dial(pj->j->addr, 2000);
    int64_t start = sb_now_ms(), stop_at = 0;

    CHECK(fd >= 0);
    memset(out, 'x', sizeof(out));
    out[sizeof(out) - 1] = '\n';
    sb_set_nonblock(fd, 1);
    while (sb_now_ms() - start < 20000) {
        /* Sending stops with the stop: bytes that reach the child after
         * it closed would be answered with a reset whatever it did, and
         * the check is about how the child ends, not that race. */
        ssize_t n = stop_at ? 0 : send(fd, out, sizeof(out), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            break; /* reset */
        n = recv(fd, in, 4096, 0); /* slower than it sends */
        if (n == 0) {
            pj->eof = 1;
            break;
        }
        if (n < 0 && errno != EAGAIN)
            break; /* reset */
        if (stop_at == 0 && sb_now_ms() - start > 300) {
            stop_at = sb_now_ms();
            sb_server_stop(pj->j->s); /* busy for a while now: stop */
        }
        usleep(1000);
    }
    close(fd);
    if (stop_at == 0)
        sb_server_stop(pj->j->s);
    return NULL;
}

static void test_fork_stop_wakes_busy_child(void)
{
    sb_server_opts o;
    client_job j;
    pump_job pj = {&j, 0};
    pthread_t t;
    int64_t t0;

    if (!sb_test_have_fork())
        return;
    memset(&j, 0, sizeof(j));
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.model = SB_MODEL_FORK;
    o.grace_ms = 10000; /* far longer than a graceful end takes */
    CHECK_EQ(sb_server_new(&j.s, &o, &echo_handler), 0);
    CHECK(sb_server_address(j.s, j.addr, sizeof(j.addr)) > 0);
    CHECK_EQ(pthread_create(&t, NULL, pump_client, &pj), 0);
    t0 = sb_now_ms();
    CHECK_EQ(sb_server_run(j.s), 0);
    fprintf(stderr, "    stopped after %lld ms\n", (long long)(sb_now_ms() - t0));
    CHECK(sb_now_ms() - t0 < 8000); /* the child ended itself, before the SIGKILL */
    pthread_join(t, NULL);
    CHECK_EQ(pj.eof, 1);
    sb_server_free(j.s);
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(errno, ECHILD);
}

/* The same for a fork child: its SIGTERM handler must not name the
 * connection's socket once it is closed. The close wrapper, in the child,
 * puts a socket of its own at the number just closed and raises SIGTERM
 * there and then - the handler runs at the worst moment - and looks
 * whether the handler shut that socket down. Results go through shared
 * memory: [0] the race was staged, [1] the handler fell in. */
static int *fork_seen;
static pid_t test_pid;

static int child_close(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int conn = getpid() != test_pid && getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
    int rc = real_close(fd);
    int sp[2];
    char b;

    if (!conn || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        return rc;
    if (sp[0] != fd && sp[1] != fd) {
        if (dup2(sp[1], fd) != fd)
            return rc;
        real_close(sp[1]);
        sp[1] = fd;
    }
    raise(SIGTERM);
    if (recv(fd, &b, 1, MSG_DONTWAIT) == 0)
        __atomic_store_n(&fork_seen[1], 1, __ATOMIC_RELAXED);
    __atomic_store_n(&fork_seen[0], 1, __ATOMIC_RELEASE);
    real_close(sp[0]);
    real_close(sp[1]);
    return rc;
}

static void *child_close_client(void *p)
{
    client_job *j = p;
    char buf[8];
    int fd = sb_dial(j->addr, 2000);

    CHECK(fd >= 0);
    CHECK_EQ(sb_send_all(fd, "hi\n", 3, sb_now_ms() + 5000), 3);
    CHECK_EQ(sb_recv_some(fd, buf, sizeof(buf), sb_now_ms() + 5000), 3);
    close(fd); /* the child sees the end and closes its socket */
    for (int i = 0; i < 5000 && !__atomic_load_n(&fork_seen[0], __ATOMIC_ACQUIRE); i++)
        usleep(1000);
    sb_server_stop(j->s);
    return NULL;
}

static void test_fork_child_names_no_closed_fd(void)
{
    sb_server_opts o;
    client_job j;
    pthread_t t;

    if (!sb_test_have_fork())
        return;
    fork_seen = mmap(NULL, 2 * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    CHECK(fork_seen != MAP_FAILED);
    test_pid = getpid();
    memset(&j, 0, sizeof(j));
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.model = SB_MODEL_FORK;
    real_close = sb__sys.close;
    sb__sys.close = child_close;
    CHECK_EQ(sb_server_new(&j.s, &o, &echo_handler), 0);
    CHECK(sb_server_address(j.s, j.addr, sizeof(j.addr)) > 0);
    CHECK_EQ(pthread_create(&t, NULL, child_close_client, &j), 0);
    CHECK_EQ(sb_server_run(j.s), 0);
    pthread_join(t, NULL);
    sb_server_free(j.s);
    sb__sys_reset();
    CHECK_EQ(__atomic_load_n(&fork_seen[0], __ATOMIC_ACQUIRE), 1); /* staged */
    CHECK_EQ(__atomic_load_n(&fork_seen[1], __ATOMIC_ACQUIRE), 0); /* nobody fell in */
    munmap(fork_seen, 2 * sizeof(int));
}

/* Stop requests racing connection ends: clients keep connecting, talking
 * and hanging up while the server stops; under ThreadSanitizer this runs
 * the stop's walk of the connection list against threads joining and
 * leaving it. Every client ends (served, shed or cut), the server returns. */
typedef struct {
    client_job *j;
    int stop; /* atomic: the server has been asked to stop */
} churn_job;

static void *churn_client(void *p)
{
    churn_job *cj = p;
    char buf[16];

    for (int i = 0; i < 200 && !__atomic_load_n(&cj->stop, __ATOMIC_ACQUIRE); i++) {
        int fd = sb_dial(cj->j->addr, 2000);
        if (fd < 0)
            break; /* the listener is gone: the stop began */
        if (sb_send_all(fd, "hi\n", 3, sb_now_ms() + 2000) == 3 &&
            sb_recv_some(fd, buf, sizeof(buf), sb_now_ms() + 2000) > 0)
            __atomic_fetch_add(&cj->j->ok, 1, __ATOMIC_RELAXED);
        if (i % 3 != 0)
            close(fd);
        else {
            struct linger lg = {1, 0}; /* a reset, now and then */
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(fd);
        }
    }
    return NULL;
}

static void *churn_stopper(void *p)
{
    churn_job *cj = p;

    for (int i = 0; i < 5000 && __atomic_load_n(&cj->j->ok, __ATOMIC_RELAXED) < 100; i++)
        usleep(1000);
    __atomic_store_n(&cj->stop, 1, __ATOMIC_RELEASE);
    sb_server_stop(cj->j->s);
    return NULL;
}

static void test_stop_races_connection_ends(void)
{
    sb_server_opts o;
    client_job j;
    churn_job cj = {&j, 0};
    pthread_t t[5];

    memset(&j, 0, sizeof(j));
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.model = SB_MODEL_THREADS;
    o.grace_ms = 20;
    CHECK_EQ(sb_server_new(&j.s, &o, &echo_handler), 0);
    CHECK(sb_server_address(j.s, j.addr, sizeof(j.addr)) > 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, churn_client, &cj), 0);
    CHECK_EQ(pthread_create(&t[4], NULL, churn_stopper, &cj), 0);
    CHECK_EQ(sb_server_run(j.s), 0);
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    CHECK(j.ok > 0);
    sb_server_free(j.s);
}

/* Stop while connections are being handed between workers. A burst of
 * connections on a listener two workers share makes the one that wakes
 * accept a batch and hand the excess to the other (ev_dispatch), while a
 * stop lands at a varying point of the burst. Whatever the interleaving,
 * every connection is either answered or closed (never left open with no
 * one serving it), and no descriptor outlives the server. */
#define HANDOFF_CONNS 48
#define HANDOFF_CYCLES 30

typedef struct {
    client_job *j;
    int stop_after;            /* connections dialled before the stop */
    int hung;                  /* neither answered nor closed in time */
} handoff_job;

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void *handoff_client(void *p)
{
    handoff_job *hj = p;
    int fds[HANDOFF_CONNS];
    uint8_t req[8] = {0, 0, 0, 4, 'p', 'i', 'n', 'g'}, b[8];

    for (int i = 0; i < HANDOFF_CONNS; i++) {
        if (i == hj->stop_after)
            sb_server_stop(hj->j->s);
        fds[i] = sb_dial(hj->j->addr, 2000);
        if (fds[i] >= 0 && send(fds[i], req, sizeof(req), MSG_NOSIGNAL) < 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    for (int i = 0; i < HANDOFF_CONNS; i++) {
        if (fds[i] < 0)
            continue;
        /* An answer (8 bytes) or an end (0, or a reset) - not silence. */
        int64_t end = sb_now_ms() + 3000;
        size_t have = 0;
        for (;;) {
            ssize_t n = sb_recv_some(fds[i], b + have, sizeof(b) - have, end);
            if (n <= 0 || (have += (size_t)n) == sizeof(b)) {
                if (n == -ETIMEDOUT)
                    hj->hung++;
                break;
            }
        }
        close(fds[i]);
    }
    return NULL;
}

static void test_stop_while_handing_off(void)
{
    int base = count_fds();

    for (int c = 0; c < HANDOFF_CYCLES; c++) {
        sb_server_opts o;
        client_job j;
        handoff_job hj = {&j, 1 + c % (HANDOFF_CONNS - 1), 0};
        pthread_t t;

        memset(&j, 0, sizeof(j));
        sb_server_opts_default(&o);
        o.listen = "127.0.0.1:0";
        o.workers = 2;
        o.grace_ms = 1000;
        CHECK_EQ(sb_frame_parse("len32", &o.conn.frame), 0);
        CHECK_EQ(sb_server_new(&j.s, &o, &echo_handler), 0);
        CHECK(sb_server_address(j.s, j.addr, sizeof(j.addr)) > 0);
        CHECK_EQ(pthread_create(&t, NULL, handoff_client, &hj), 0);
        CHECK_EQ(sb_server_run(j.s), 0);
        pthread_join(t, NULL);
        sb_server_free(j.s);
        CHECK_EQ(hj.hung, 0);
        CHECK_EQ(count_fds(), base);
    }
}

/* The drain must not take a connection for idle while a request it has
 * not read yet waits in the socket: that request was sent before our
 * FIN and would be lost. Made deterministic: the handler of the first
 * message asks the server to stop (the loop's wakeup is then ready before
 * the socket is), and returns only once the second request is in the
 * socket, so the drain runs with nothing in `in` and a request unread. */
static sb_server *g_drain_srv;

static int echo_then_stop(sb_conn *c, const sb_msg *m, void *app)
{
    static const uint8_t first[9] = {0, 0, 0, 5, 'f', 'i', 'r', 's', 't'};
    int rc = 0, n = 0;

    if (m->len != 5 || memcmp(m->data, "first", 5) != 0)
        return sb_conn_send(c, m->type, m->data, m->len);
    /* The reply straight to the socket (conn would write it after this
     * returns): the client sends the second request on seeing it. */
    if (send(sb_conn_fd(c), first, sizeof(first), MSG_NOSIGNAL) != (ssize_t)sizeof(first))
        rc = -EIO;
    {
        sb_server_stop(g_drain_srv);
        for (int i = 0; i < 2000 && n == 0; i++) {
            if (ioctl(sb_conn_fd(c), FIONREAD, &n) < 0)
                break;
            if (n == 0)
                usleep(1000);
        }
    }
    return rc;
}

static const sb_handler echo_stop_handler = {NULL, echo_then_stop, NULL, NULL, NULL};

static void *drain_client(void *p)
{
    client_job *j = p;
    int fd = sb_dial(j->addr, 2000);
    uint8_t a[9] = {0, 0, 0, 5, 'f', 'i', 'r', 's', 't'};
    uint8_t b[10] = {0, 0, 0, 6, 's', 'e', 'c', 'o', 'n', 'd'}, got[10];

    CHECK(fd >= 0);
    CHECK_EQ(sb_send_all(fd, a, sizeof(a), sb_now_ms() + 2000), (ssize_t)sizeof(a));
    /* The first's reply comes while its handler still runs: only then the
     * second goes, so that it cannot arrive with the first. */
    CHECK_EQ(sb_recv_exact(fd, got, sizeof(a), sb_now_ms() + 3000), (ssize_t)sizeof(a));
    CHECK_EQ(sb_send_all(fd, b, sizeof(b), sb_now_ms() + 2000), (ssize_t)sizeof(b));
    /* The second was in our socket before the drain began: answered. */
    if (sb_recv_exact(fd, got, sizeof(b), sb_now_ms() + 3000) == (ssize_t)sizeof(b) &&
        memcmp(got, b, sizeof(b)) == 0)
        j->ok = 1;
    close(fd);
    return NULL;
}

static void test_drain_reads_waiting_request(void)
{
    const char *backends[] = {"epoll", "poll"};

    for (int i = 0; i < 2; i++) {
        sb_server_opts o;
        client_job j;
        pthread_t t;

        fprintf(stderr, "    %s\n", backends[i]);
        memset(&j, 0, sizeof(j));
        sb_server_opts_default(&o);
        o.listen = "127.0.0.1:0";
        o.backend = backends[i];
        o.grace_ms = 2000;
        CHECK_EQ(sb_frame_parse("len32", &o.conn.frame), 0);
        CHECK_EQ(sb_server_new(&j.s, &o, &echo_stop_handler), 0);
        g_drain_srv = j.s;
        CHECK(sb_server_address(j.s, j.addr, sizeof(j.addr)) > 0);
        CHECK_EQ(pthread_create(&t, NULL, drain_client, &j), 0);
        CHECK_EQ(sb_server_run(j.s), 0);
        pthread_join(t, NULL);
        sb_server_free(j.s);
        CHECK_EQ(j.ok, 1);
    }
}

/* PROXY protocol: a client that sends no header, or half of one, is closed
 * once the wait is over - here the connection's idle or read timeout,
 * shorter than the 5 s default - and the handler never hears of it. A
 * client with a whole header is served, so the handler's counts below
 * would have seen the others had they been let through. */
#define PX_WAIT_MS 250

static int px_opens, px_msgs;

static int px_open(sb_conn *c, void *app)
{
    __atomic_fetch_add(&px_opens, 1, __ATOMIC_RELAXED);
    return 0;
}

static int px_echo(sb_conn *c, const sb_msg *m, void *app)
{
    __atomic_fetch_add(&px_msgs, 1, __ATOMIC_RELAXED);
    return sb_conn_send(c, m->type, m->data, m->len);
}

/* fd is closed by the server within the wait, not before (well before
 * the 5 s default: the deadline is 4 s). */
static void px_expect_closed(int fd, int64_t t0)
{
    char b;
    ssize_t r = sb_recv_some(fd, &b, 1, t0 + 4000);
    int64_t took = sb_now_ms() - t0;

    fprintf(stderr, "    closed after %lld ms: %zd\n", (long long)took, r);
    CHECK(r == 0 || r == -ECONNRESET);
    CHECK(took >= PX_WAIT_MS - 50);
}

static void *px_client(void *p)
{
    static const uint8_t v2_half[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                                      0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C, 0xc0, 0x00, 0x02, 0x01};
    static const char v1_half[] = "PROXY TCP4 192.0.2.1 10.0.0.1 5";
    static const char whole[] = "PROXY TCP4 192.0.2.1 10.0.0.1 5555 80\r\nhi\n";
    sb_server *s = p;
    char addr[64], b[3];
    int fd[3], ok;
    int64_t t0;

    CHECK(sb_server_address(s, addr, sizeof(addr)) > 0);
    t0 = sb_now_ms();
    for (int i = 0; i < 3; i++)
        CHECK((fd[i] = sb_dial(addr, 2000)) >= 0);
    CHECK_EQ(sb_send_all(fd[1], v1_half, sizeof(v1_half) - 1, t0 + 2000), sizeof(v1_half) - 1);
    CHECK_EQ(sb_send_all(fd[2], v2_half, sizeof(v2_half), t0 + 2000), sizeof(v2_half));
    for (int i = 0; i < 3; i++) {
        px_expect_closed(fd[i], t0);
        close(fd[i]);
    }
    ok = sb_dial(addr, 2000);
    CHECK(ok >= 0);
    CHECK_EQ(sb_send_all(ok, whole, sizeof(whole) - 1, sb_now_ms() + 2000), sizeof(whole) - 1);
    CHECK_EQ(sb_recv_exact(ok, b, 3, sb_now_ms() + 2000), 3);
    CHECK(memcmp(b, "hi\n", 3) == 0);
    close(ok);
    sb_server_stop(s);
    return NULL;
}

static void test_proxy_header_wait(void)
{
    static const sb_handler h = {px_open, px_echo, NULL, NULL, NULL};

    for (int i = 0; i < 2; i++) {
        sb_server_opts o;
        sb_server *s;
        pthread_t t;
        char text[8192];

        fprintf(stderr, "    %s timeout\n", i == 0 ? "idle" : "read");
        sb_server_opts_default(&o);
        o.listen = "127.0.0.1:0";
        o.proxy_protocol = 1;
        o.grace_ms = 300;
        if (i == 0)
            o.conn.idle_timeout_ms = PX_WAIT_MS;
        else
            o.conn.read_timeout_ms = PX_WAIT_MS;
        px_opens = px_msgs = 0;
        CHECK_EQ(sb_server_new(&s, &o, &h), 0);
        CHECK_EQ(pthread_create(&t, NULL, px_client, s), 0);
        CHECK_EQ(sb_server_run(s), 0);
        pthread_join(t, NULL);
        CHECK_EQ(px_opens, 1);
        CHECK_EQ(px_msgs, 1);
        CHECK(sb_server_metrics(s, text, sizeof(text)) > 0);
        CHECK(strstr(text, "switchboard_connection_errors_total{worker=\"0\",cause=\"proxy_header\"} 3\n") != NULL);
        sb_server_free(s);
    }
}

static void test_bad_listen(void)
{
    sb_server_opts o;
    sb_server *s;
    sb_model m;

    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:99999";
    CHECK_EQ(sb_server_new(&s, &o, &echo_handler), SB_EBADPORT);
    CHECK_EQ(sb_model_parse("threads", &m), 0);
    CHECK_EQ(m, SB_MODEL_THREADS);
    CHECK(sb_model_parse("fibers", &m) < 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_bad_listen);
    RUN(test_models);
    RUN(test_max_conns);
    RUN(test_workers);
    RUN(test_keepalive);
    RUN(test_accept_emfile);
    RUN(test_stop_names_no_closed_fd);
    RUN(test_fork_child_names_no_closed_fd);
    RUN(test_stop_races_connection_ends);
    RUN(test_stop_while_handing_off);
    RUN(test_drain_reads_waiting_request);
    RUN(test_fork_stop_wakes_busy_child);
    RUN(test_signal_before_run);
    RUN(test_signals_one_server);
    RUN(test_proxy_header_wait);
    return 0;
}
