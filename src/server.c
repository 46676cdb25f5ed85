/* server: a listener and the three dispatch models of HOWTO section 2 -
 * "dispatching a thread to handle clientsocket, create a new process to
 * handle clientsocket, or restructure this app to use non-blocking sockets"
 * - all running the same sb_handler. See server.h.
 *
 * Divisions: 1. common (options, logging, stop, shedding on EMFILE)
 *            2. the event model   3. the threads model   4. the fork model
 *
 * Only this file knows which model runs; conn.c drives each connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "switchboard.h"
#include "conn_int.h"
#include "sys.h"

#define SB_ACCEPT_BATCH 64     /* accepts per readiness: others get a turn */
#define SB_ACCEPT_PAUSE_MS 100 /* pause after EMFILE when shedding failed too */
#define SB_THREAD_STACK (256 * 1024)
#define SB_LOG_PER_SEC 5

struct sb_server {
    sb_server_opts o;
    char *listen;              /* owned copy of o.listen */
    const sb_handler *h;
    int lfd;                   /* listening socket */
    int bound;                 /* we created the listener (and its unix socket file) */
    int spare_fd;              /* reserve fd, given up to shed on EMFILE */
    int pipe[2];               /* blocking models: wakes the accept loop */
    uint64_t *shared;          /* [0] messages; MAP_SHARED so fork children add too */
    uint64_t accepted, refused, active;
    int stopping;              /* atomic: set by sb_server_stop (any thread, signal handlers) */
    int took_signals;          /* SIGINT/SIGTERM are ours until free (o.handle_signals) */
    struct sigaction old_int, old_term; /* their dispositions before, restored by free */
    pthread_mutex_t mu;        /* threads model: conns, stop_phase; fork: fds[]; log state */
    pthread_cond_t cv;         /* threads model: active dropped */
    sb__link conns;            /* threads model: open connections (under mu) */
    int stop_phase;            /* threads model, under mu: 1 closing, 2 cutting */
    int *fds;                  /* fork model: child pids */
    int nfds, capfds;
    int64_t log_second;        /* rate limit of o.log */
    int log_count;
    /* event model */
    sb_loop *loop;
    sb__conn_owner owner;
    sb_timer accept_timer;     /* resumes accepting after a pause */
    sb_timer grace_timer;      /* ends the shutdown grace period */
};

/* ------------------------------------------------------------------ */
/* 1. Common                                                           */

static sb_server *sb__signal_server; /* the server the signal handlers stop */

static void srv_log(sb_server *s, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    int64_t now = sb_now_ms() / 1000;
    int emit;

    if (s->o.log == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    if (now != s->log_second) {
        s->log_second = now;
        s->log_count = 0;
    }
    emit = s->log_count++ < SB_LOG_PER_SEC;
    pthread_mutex_unlock(&s->mu);
    if (!emit)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->o.log(s->o.log_ud, msg);
}

void sb_server_opts_default(sb_server_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->listen = "127.0.0.1:7000";
    o->model = SB_MODEL_EVENT;
    sb_conn_opts_default(&o->conn);
}

static const char *const model_names[] = {"event", "threads", "fork"};

int sb_model_parse(const char *name, sb_model *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, model_names[i]) == 0) {
            *out = (sb_model)i;
            return 0;
        }
    return -EINVAL;
}

const char *sb_model_name(sb_model m)
{
    return (unsigned)m < 3 ? model_names[m] : "?";
}

static void on_signal(int signo)
{
    if (sb__signal_server)
        sb_server_stop(sb__signal_server);
}

static void on_sigchld(int signo)
{
    int saved = errno;
    if (sb__signal_server)
        (void)!write(sb__signal_server->pipe[1], "c", 1);
    errno = saved;
}

static int install(int signo, void (*fn)(int), struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(signo, &sa, old) < 0 ? -errno : 0;
}

/* Once per run, when the model is complete and about to wait. */
static void ready(sb_server *s)
{
    if (s->o.on_ready)
        s->o.on_ready(s, s->o.on_ready_ud);
}

/* The signals are taken in sb_server_new, not in run: whoever learns of
 * the server from a line printed between the two (a supervisor, a script)
 * may signal it at once, and that signal must stop it, not kill it. A
 * signal before run only sets `stopping`, and run returns 0 at once. The
 * event model's loop takes them over while it runs (sb_loop_signal keeps
 * these as the dispositions to restore). */
static int take_signals(sb_server *s)
{
    sb_server *none = NULL;
    int rc;

    /* A process has one disposition per signal: a second server taking
     * them would be stopped in the first one's place, and the first one's
     * free would hand them back under the second. */
    if (!__atomic_compare_exchange_n(&sb__signal_server, &none, s, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        return -EBUSY;
    rc = install(SIGINT, on_signal, &s->old_int);
    if (rc == 0) {
        rc = install(SIGTERM, on_signal, &s->old_term);
        if (rc < 0)
            sigaction(SIGINT, &s->old_int, NULL);
    }
    if (rc < 0)
        __atomic_store_n(&sb__signal_server, NULL, __ATOMIC_SEQ_CST);
    s->took_signals = rc == 0;
    return rc;
}

static void give_back_signals(sb_server *s)
{
    sb_server *none;

    if (s->took_signals) {
        sigaction(SIGTERM, &s->old_term, NULL);
        sigaction(SIGINT, &s->old_int, NULL);
        s->took_signals = 0;
    }
    none = s;
    __atomic_compare_exchange_n(&sb__signal_server, &none, NULL, 0, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
}

int sb_server_new(sb_server **out, const sb_server_opts *o, const sb_handler *h)
{
    sb_server *s = sb__calloc(1, sizeof(*s));
    int rc = -ENOMEM;

    if (s == NULL)
        return -ENOMEM;
    s->o = *o;
    s->h = h;
    s->lfd = s->spare_fd = s->pipe[0] = s->pipe[1] = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    sb__link_init(&s->conns);
    s->listen = strdup(o->listen ? o->listen : "127.0.0.1:7000");
    s->shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s->listen == NULL || s->shared == MAP_FAILED) {
        s->shared = NULL;
        goto fail;
    }
    s->o.listen = s->listen;
    if (s->o.max_conns <= 0)
        s->o.max_conns = o->model == SB_MODEL_EVENT ? 100000 : 1024;
    if (s->o.grace_ms <= 0)
        s->o.grace_ms = 2000;
    if (pipe2(s->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        goto fail;
    }
    rc = sb_listen(s->listen, o->backlog);
    if (rc < 0)
        goto fail;
    s->lfd = rc;
    s->bound = 1;
    sb_set_nonblock(s->lfd, 1);
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* sendfile(2) has no MSG_NOSIGNAL: a server must not die of SIGPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        rc = -errno;
        goto fail;
    }
    if (o->handle_signals && (rc = take_signals(s)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    sb_server_free(s);
    return rc;
}

void sb_server_free(sb_server *s)
{
    if (s == NULL)
        return;
    give_back_signals(s);
    if (s->lfd >= 0)
        sb__sys.close(s->lfd);
    if (s->bound && strncmp(s->listen, "unix:", 5) == 0)
        unlink(s->listen + 5);
    if (s->spare_fd >= 0)
        sb__sys.close(s->spare_fd);
    for (int i = 0; i < 2; i++)
        if (s->pipe[i] >= 0)
            sb__sys.close(s->pipe[i]);
    if (s->shared)
        munmap(s->shared, 4096);
    if (s->loop)
        sb_loop_free(s->loop);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->listen);
    sb__free(s->fds);
    sb__free(s);
}

void sb_server_stop(sb_server *s)
{
    int saved = errno;
    sb_loop *l;

    /* Sequentially consistent, as in run_event: a stop racing the loop's
     * creation either sees the loop and wakes it, or is seen by run. */
    __atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
    l = __atomic_load_n(&s->loop, __ATOMIC_SEQ_CST);
    if (l)
        sb_loop_wakeup(l);
    if (s->pipe[1] >= 0)
        (void)!write(s->pipe[1], "s", 1);
    errno = saved;
}

int sb_server_port(const sb_server *s)
{
    return sb_local_port(s->lfd);
}

int sb_server_address(const sb_server *s, char *out, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(s->lfd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return sb_addr_format((struct sockaddr *)&ss, len, out, n);
}

void sb_server_stats_get(const sb_server *s, sb_server_stats *st)
{
    st->accepted = __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
    st->refused = __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
    st->active = __atomic_load_n(&s->active, __ATOMIC_RELAXED);
    st->messages = s->shared ? __atomic_load_n(&s->shared[0], __ATOMIC_RELAXED) : 0;
}

static void count(uint64_t *v, int delta)
{
    __atomic_fetch_add(v, (uint64_t)(int64_t)delta, __ATOMIC_RELAXED);
}

/* EMFILE/ENFILE: the pending connection cannot be accepted, and leaving
 * it in the backlog would make the listener readable forever (a spinning
 * loop). Give up the spare fd, accept and close the connection (shed it),
 * take the spare back. Returns 0 if shed, -1 if even that failed. */
static int shed_one(sb_server *s)
{
    int fd;

    count(&s->refused, 1);
    srv_log(s, "connection shed: %s", sb_strerror(-EMFILE));
    if (s->spare_fd < 0)
        return -1;
    sb__sys.close(s->spare_fd);
    fd = sb_accept(s->lfd, NULL, 0);
    if (fd >= 0)
        sb__sys.close(fd);
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 && s->spare_fd >= 0 ? 0 : -1;
}

/* Accept one connection: returns an fd or a negative code: -EAGAIN (none),
 * -EINTR (out of descriptors or memory, one connection shed: try again),
 * -EBUSY (shedding failed too: pause accepting). */
static int accept_one(sb_server *s, int flags)
{
    int fd = sb_accept(s->lfd, NULL, flags);

    if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM)
        return shed_one(s) == 0 ? -EINTR : -EBUSY;
    if (fd < 0)
        return fd;
    if (__atomic_load_n(&s->active, __ATOMIC_RELAXED) >= (uint64_t)s->o.max_conns) {
        count(&s->refused, 1);
        srv_log(s, "connection shed: max_conns (%d) connections open", s->o.max_conns);
        sb__sys.close(fd);
        return -EINTR;
    }
    count(&s->accepted, 1);
    return fd;
}

/* Options every accepted TCP connection gets, whatever the model. */
static void tune(sb_server *s, int fd)
{
    sb_set_nodelay(fd, 1); /* fails harmlessly on unix sockets */
    if (s->o.keepalive_s > 0)
        sb_set_keepalive(fd, 1, s->o.keepalive_s, s->o.keepalive_s / 3 + 1, 3);
}

/* ------------------------------------------------------------------ */
/* 2. The event model                                                  */

/* The server's connections are its loop's: sb_conn_walk lists them. */
static void ev_gone(sb__conn_owner *ow, sb_conn *c)
{
    sb_server *s = ow->ud;

    s->active--;
    if (__atomic_load_n(&s->stopping, __ATOMIC_RELAXED) && s->active == 0)
        sb_loop_stop(s->loop);
}

static void ev_accept(sb_loop *l, int fd, int events, void *ud);

static void ev_accept_resume(sb_loop *l, sb_timer *t)
{
    sb_server *s = t->data;
    if (!__atomic_load_n(&s->stopping, __ATOMIC_RELAXED))
        sb_loop_watch(l, s->lfd, SB_READABLE, ev_accept, s);
}

static void ev_adopt(sb_server *s, int fd)
{
    sb_conn *c = NULL;
    int rc = sb__conn_open(s->loop, fd, &s->o.conn, s->h, &s->owner, &c);

    if (rc == SB_EFDSETSIZE) {
        count(&s->refused, 1);
        srv_log(s, "connection refused: fd %d >= FD_SETSIZE (%d), the select backend's limit "
                   "(the poll and epoll backends have none)", fd, FD_SETSIZE);
        return;
    }
    if (rc < 0 || c == NULL) {
        if (rc < 0)
            srv_log(s, "connection dropped: %s", sb_strerror(rc));
        return;
    }
    s->active++;
}

static void ev_accept(sb_loop *l, int lfd, int events, void *ud)
{
    sb_server *s = ud;

    for (int i = 0; i < SB_ACCEPT_BATCH && !__atomic_load_n(&s->stopping, __ATOMIC_RELAXED); i++) {
        int fd = accept_one(s, SOCK_NONBLOCK);
        if (fd == -EINTR)
            continue;
        if (fd == -EBUSY) {
            srv_log(s, "accept paused for %d ms: out of file descriptors", SB_ACCEPT_PAUSE_MS);
            sb_loop_watch(l, lfd, 0, NULL, NULL);
            sb_timer_start(l, &s->accept_timer, SB_ACCEPT_PAUSE_MS);
            return;
        }
        if (fd < 0)
            return;
        tune(s, fd);
        ev_adopt(s, fd);
    }
}

static void close_one(sb_conn *c, void *ud)
{
    sb__conn_close_err(c, 0, 1);
}

static void cut_one(sb_conn *c, void *ud)
{
    sb__conn_close_err(c, -ECANCELED, 0);
}

static void ev_grace_over(sb_loop *l, sb_timer *t)
{
    sb_server *s = t->data;
    sb_conn_walk(l, cut_one, NULL);
    if (s->active == 0)
        sb_loop_stop(l);
}

/* Stop: no new connections, every open one closes after its replies are
 * flushed; after grace_ms the rest are cut. */
static void ev_begin_stop(sb_server *s)
{
    sb_loop_watch(s->loop, s->lfd, 0, NULL, NULL);
    sb_timer_stop(s->loop, &s->accept_timer);
    sb_conn_walk(s->loop, close_one, NULL);
    if (s->active == 0)
        sb_loop_stop(s->loop);
    else
        sb_timer_start(s->loop, &s->grace_timer, s->o.grace_ms);
}

static void ev_wakeup(sb_loop *l, void *ud)
{
    sb_server *s = ud;
    if (__atomic_load_n(&s->stopping, __ATOMIC_RELAXED) && !sb_timer_active(&s->grace_timer))
        ev_begin_stop(s);
}

static void ev_signal(sb_loop *l, int signo, void *ud)
{
    sb_server_stop(ud);
}

static int run_event(sb_server *s)
{
    sb_loop *l;
    int rc = sb_loop_new(&l, s->o.backend);

    if (rc < 0)
        return rc;
    __atomic_store_n(&s->loop, l, __ATOMIC_SEQ_CST);
    s->owner.messages = &s->shared[0];
    s->owner.gone = ev_gone;
    s->owner.ud = s;
    sb_timer_init(&s->accept_timer, ev_accept_resume, s);
    sb_timer_init(&s->grace_timer, ev_grace_over, s);
    sb_loop_on_wakeup(s->loop, ev_wakeup, s);
    if (s->o.handle_signals) {
        sb_loop_signal(s->loop, SIGINT, ev_signal, s);
        sb_loop_signal(s->loop, SIGTERM, ev_signal, s);
    }
    rc = sb_loop_watch(s->loop, s->lfd, SB_READABLE, ev_accept, s);
    if (rc == 0 && __atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST))
        ev_begin_stop(s);
    if (rc == 0) {
        ready(s);
        rc = sb_loop_run(s->loop);
    }
    if (s->o.handle_signals) {
        sb_loop_signal(s->loop, SIGINT, NULL, NULL);
        sb_loop_signal(s->loop, SIGTERM, NULL, NULL);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* 3. The threads model                                                */

/* Wait for the listener or a byte on the pipe. Returns the pipe byte,
 * 'a' when the listener is readable, 0 on timeout. */
static int blk_wait(sb_server *s, int timeout_ms)
{
    struct pollfd p[2] = {{s->pipe[0], POLLIN, 0}, {s->lfd, POLLIN, 0}};
    char b;
    int n = sb__sys.poll(p, s->lfd >= 0 ? 2 : 1, timeout_ms);

    if (n <= 0)
        return 0;
    if ((p[0].revents & POLLIN) && read(s->pipe[0], &b, 1) == 1)
        return b;
    return p[1].revents ? 'a' : 0;
}

/* The accept step of both blocking models: wait up to timeout_ms for the
 * listener (or a stop), accept and tune one connection. Returns its fd, or
 * -1 when there is none this time (stop, timeout, shed, or a pause after
 * EMFILE when even shedding failed). */
static int blk_next(sb_server *s, int timeout_ms)
{
    int fd;

    if (blk_wait(s, timeout_ms) != 'a')
        return -1;
    fd = accept_one(s, 0);
    if (fd == -EBUSY)
        blk_wait(s, SB_ACCEPT_PAUSE_MS);
    if (fd < 0)
        return -1;
    tune(s, fd);
    return fd;
}

static int fds_add(sb_server *s, int v)
{
    if (s->nfds == s->capfds) {
        int cap = s->capfds ? s->capfds * 2 : 64;
        int *n = sb__realloc(s->fds, (size_t)cap * sizeof(int));
        if (n == NULL)
            return -ENOMEM;
        s->fds = n;
        s->capfds = cap;
    }
    s->fds[s->nfds++] = v;
    return 0;
}

static void fds_del(sb_server *s, int v)
{
    for (int i = 0; i < s->nfds; i++)
        if (s->fds[i] == v) {
            s->fds[i] = s->fds[--s->nfds];
            return;
        }
}

typedef struct {
    sb_server *s;
    int fd;
    int wake_fd; /* the connection's, made here: see thr_spawn */
} thread_arg;

/* A connection's thread lists its connection while it lives, so that a
 * stop can reach it; one that joins after the stop began is told at once. */
static void thr_joined(sb__conn_owner *ow, sb_conn *c)
{
    sb_server *s = ow->ud;

    pthread_mutex_lock(&s->mu);
    sb__conn_list_add(&s->conns, c);
    if (s->stop_phase > 0)
        (s->stop_phase == 1 ? close_one : cut_one)(c, NULL);
    pthread_mutex_unlock(&s->mu);
}

static void thr_gone(sb__conn_owner *ow, sb_conn *c)
{
    sb_server *s = ow->ud;

    pthread_mutex_lock(&s->mu);
    sb__conn_list_del(c);
    pthread_mutex_unlock(&s->mu);
}

static void *conn_thread(void *p)
{
    thread_arg a = *(thread_arg *)p;
    sb__conn_owner ow = {&a.s->shared[0], thr_joined, thr_gone, a.s};

    sb__free(p);
    sb__conn_run_blocking(a.fd, a.wake_fd, &a.s->o.conn, a.s->h, &ow);
    pthread_mutex_lock(&a.s->mu);
    count(&a.s->active, -1);
    pthread_cond_broadcast(&a.s->cv);
    pthread_mutex_unlock(&a.s->mu);
    return NULL;
}

static void thr_spawn(sb_server *s, int fd, pthread_attr_t *attr)
{
    thread_arg *a = sb__malloc(sizeof(*a));
    pthread_t t;
    /* The connection's second descriptor is made on this thread, next to
     * the accept: out of descriptors, the connection is shed here, and no
     * connection thread can take the slot shed_one frees for its accept. */
    int wake = a ? sb__conn_wake_new() : -ENOMEM;

    if (wake < 0) {
        count(&s->refused, 1);
        srv_log(s, "connection shed: %s", sb_strerror(wake));
        sb__free(a);
        sb__sys.close(fd);
        return;
    }
    pthread_mutex_lock(&s->mu);
    count(&s->active, 1);
    pthread_mutex_unlock(&s->mu);
    a->s = s;
    a->fd = fd;
    a->wake_fd = wake;
    if (pthread_create(&t, attr, conn_thread, a) != 0) {
        srv_log(s, "connection dropped: cannot start a thread");
        pthread_mutex_lock(&s->mu);
        count(&s->active, -1);
        pthread_mutex_unlock(&s->mu);
        sb__free(a);
        sb__sys.close(wake);
        sb__sys.close(fd);
    }
}

/* Wait up to ms for every connection thread to end. */
static void thr_drain(sb_server *s, int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (s->active > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&s->mu);
}

/* Stop: every connection is asked to close after flushing its replies;
 * after grace_ms the rest are cut. A request wakes the connection's thread
 * and touches nothing else: the thread closes its own socket, so no fd is
 * named here that may already be closed and reused. The list only holds
 * live connections (thr_gone runs under mu before the connection is freed). */
static void thr_stop(sb_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop_phase = 1;
    sb__conn_list_walk(&s->conns, close_one, NULL);
    pthread_mutex_unlock(&s->mu);
    thr_drain(s, s->o.grace_ms);
    pthread_mutex_lock(&s->mu);
    s->stop_phase = 2;
    sb__conn_list_walk(&s->conns, cut_one, NULL);
    pthread_mutex_unlock(&s->mu);
    thr_drain(s, INT32_MAX);
}

static int run_threads(sb_server *s)
{
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, SB_THREAD_STACK);
    ready(s);
    while (!__atomic_load_n(&s->stopping, __ATOMIC_RELAXED)) {
        int fd = blk_next(s, -1);
        if (fd >= 0)
            thr_spawn(s, fd, &attr);
    }
    pthread_attr_destroy(&attr);
    sb__sys.close(s->lfd);
    s->lfd = -1;
    thr_stop(s);
    return 0;
}

/* ------------------------------------------------------------------ */
/* 4. The fork model                                                   */

static void fork_reap(sb_server *s)
{
    pid_t pid;
    int st;

    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        fds_del(s, (int)pid);
        s->active--;
    }
}

static int sb__child_fd = -1; /* fork child: its connection */

/* SIGTERM in a child: the same graceful end as in the threads model - the
 * connection's reads see EOF, its replies are flushed, the child exits. */
static void on_child_term(int signo)
{
    int saved = errno;
    if (sb__child_fd >= 0)
        shutdown(sb__child_fd, SHUT_RD);
    errno = saved;
}

static void fork_child(sb_server *s, int fd)
{
    sb__conn_owner ow = {&s->shared[0], NULL, NULL, NULL};

    sb__child_fd = fd;
    signal(SIGINT, SIG_DFL);
    install(SIGTERM, on_child_term, NULL);
    signal(SIGCHLD, SIG_DFL);
    __atomic_store_n(&sb__signal_server, NULL, __ATOMIC_SEQ_CST);
    sb__sys.close(s->lfd);
    if (s->spare_fd >= 0)
        sb__sys.close(s->spare_fd);
    sb__sys.close(s->pipe[0]);
    sb__sys.close(s->pipe[1]);
    sb__conn_run_blocking(fd, -1, &s->o.conn, s->h, &ow);
    _exit(0);
}

static void fork_spawn(sb_server *s, int fd)
{
    pid_t pid = fork();

    if (pid == 0)
        fork_child(s, fd);
    sb__sys.close(fd);
    if (pid < 0) {
        srv_log(s, "connection dropped: fork: %s", sb_strerror(-errno));
        return;
    }
    s->active++;
    if (fds_add(s, (int)pid) < 0)
        srv_log(s, "out of memory tracking child %d", (int)pid);
}

/* Stop: SIGTERM asks every child to finish its connection (see
 * on_child_term); after grace_ms SIGKILL ends the rest; every child is
 * reaped before returning. */
static void fork_stop(sb_server *s)
{
    int64_t end = sb_now_ms() + s->o.grace_ms;

    for (int i = 0; i < s->nfds; i++)
        kill((pid_t)s->fds[i], SIGTERM);
    while (s->active > 0 && sb_now_ms() < end) {
        fork_reap(s);
        if (s->active > 0)
            blk_wait(s, 50);
    }
    for (int i = 0; i < s->nfds; i++)
        kill((pid_t)s->fds[i], SIGKILL);
    while (s->active > 0) {
        pid_t pid = waitpid(-1, NULL, 0);
        if (pid < 0)
            break;
        fds_del(s, (int)pid);
        s->active--;
    }
}

static int run_fork(sb_server *s)
{
    install(SIGCHLD, on_sigchld, NULL);
    ready(s);
    while (!__atomic_load_n(&s->stopping, __ATOMIC_RELAXED)) {
        int fd;
        fork_reap(s); /* before accepting: the cap counts live children only */
        fd = blk_next(s, 1000);
        if (fd >= 0)
            fork_spawn(s, fd);
    }
    sb__sys.close(s->lfd);
    s->lfd = -1;
    fork_stop(s);
    signal(SIGCHLD, SIG_DFL);
    return 0;
}

int sb_server_run(sb_server *s)
{
    switch (s->o.model) {
    case SB_MODEL_THREADS: return run_threads(s);
    case SB_MODEL_FORK: return run_fork(s);
    default: return run_event(s);
    }
}
