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
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
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
#include "os.h"
#include "sock_int.h"
#include "metrics_int.h"

#define SB_ACCEPT_BATCH 64     /* accepts per readiness: others get a turn */
#define SB_ACCEPT_PAUSE_MS 100 /* pause after EMFILE when shedding failed too */
#define SB_THREAD_STACK (256 * 1024)
#define SB_LOG_PER_SEC 5
#define SB_WORKERS_MAX 256
#define SB_DRAIN_ACCEPT_MAX 65536 /* accepts at most when a stop empties a listener's queue */

/* One event loop and its thread (event model). Everything in it belongs to
 * the worker's thread except stats (read by the exporter) and loop (read
 * by sb_server_stop). Aligned: workers never share a cache line. */
typedef struct sb__worker {
    sb__stats stats;           /* first: this worker's counters */
    sb_server *s;
    int id;
    sb_loop *loop;             /* atomic pointer: set by run, read by stop */
    int lfd;                   /* this worker's listener (-1: closed) */
    int own_lfd;               /* 1: lfd is its own (SO_REUSEPORT), else shared */
    pthread_t thread;
    int started;               /* thread created */
    int draining;              /* stop began on this loop */
    int run_rc;                /* what its loop returned */
    uint64_t active;           /* connections open on this loop (plus PROXY waits) */
    int done;                  /* its loop has returned: a hand-off now is closed */
    int cut;                   /* the drain's grace is over */
    sb__conn_owner owner;
    sb_timer accept_timer;     /* resumes accepting after a pause */
    sb_timer grace_timer;      /* ends the drain */
    sb__link pending;          /* connections waiting for their PROXY header */
    sb__op accept_op;          /* on a completion ring: the multishot accept (loop_int.h) */
    /* Last and alone on its line: other workers write it on every hand-off
     * and read it on every accept (ev_pick), while owner, above, is read
     * on every message (c->owner->stats). */
    uint64_t incoming __attribute__((aligned(64))); /* atomic: hand-offs posted, not yet taken; | SB_SHUT once closed */
} __attribute__((aligned(64))) sb__worker;

_Static_assert(offsetof(sb__worker, stats) == 0 && offsetof(sb__worker, incoming) % 64 == 0 &&
                   sizeof(sb__worker) - offsetof(sb__worker, incoming) == 64 &&
                   offsetof(sb__worker, owner) / 64 != offsetof(sb__worker, incoming) / 64,
               "sb__worker.incoming must sit alone on its cache line");

struct sb_server {
    sb_server_opts o;
    char *listen;              /* owned copy of o.listen */
    const sb_handler *h;
    int lfd;                   /* listening socket (worker 0's in the event model) */
    int bound;                 /* we created the listener (and its unix socket file) */
    int port;                  /* the bound port, kept: listeners close on stop */
    char where[160];           /* the bound address, kept for the same reason */
    int spare_fd;              /* reserve fd, given up to shed on EMFILE (workers: under accept_lock) */
    pthread_rwlock_t accept_lock; /* workers, once shed_seen: accepts read-lock, a shed write-locks */
    int shed_seen;             /* atomic: a shed has happened (accepts take accept_lock from now on) */
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
    int nworkers;
    sb__worker *w;             /* nworkers of them */
    struct sb__exporter *exporter; /* --metrics (metrics.c) */
};

/* ------------------------------------------------------------------ */
/* 1. Common                                                           */

static sb_server *sb__signal_server; /* the server the signal handlers stop */

static int listener_address(int fd, char *out, size_t n);

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

/* SB_WORKERS_AUTO: the CPUs this process may run on (taskset, cgroup
 * cpusets), not the machine's. */
static int workers_count(const sb_server_opts *o)
{
    int n = o->workers;

    if (o->model != SB_MODEL_EVENT)
        return 1;
    if (n == SB_WORKERS_AUTO) {
        cpu_set_t set;
        n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
    }
    return n < 1 ? 1 : n > SB_WORKERS_MAX ? SB_WORKERS_MAX : n;
}

/* Worker 0 listens on the server's socket; over TCP with more workers,
 * each other one binds its own SO_REUSEPORT listener to the same address
 * (the port the first one got, when it asked for port 0). A unix: socket
 * cannot be shared that way, nor can a listener handed over by systemd,
 * nor any without SO_REUSEPORT (Windows): there every worker watches the
 * one listener, and none closes it on stop (the others still watch it;
 * systemd keeps its queue for the next instance). */
static int workers_new(sb_server *s)
{
    int unix_sock = strncmp(s->listen, "unix:", 5) == 0 || s->o.listen_fd > 0 || !sb__os_has_reuseport;

    if (posix_memalign((void **)&s->w, 64, (size_t)s->nworkers * sizeof(*s->w)) != 0) {
        s->w = NULL;
        return -ENOMEM;
    }
    memset(s->w, 0, (size_t)s->nworkers * sizeof(*s->w));
    for (int i = 0; i < s->nworkers; i++) {
        sb__worker *w = &s->w[i];
        w->s = s;
        w->id = i;
        w->lfd = s->lfd;
        w->own_lfd = !unix_sock && i == 0;
        if (i == 0 || unix_sock)
            continue;
        int fd = sb__listen_opt(s->where, s->o.backlog, 1);
        if (fd < 0)
            return fd;
        sb_set_nonblock(fd, 1);
        w->lfd = fd;
        w->own_lfd = 1;
    }
    return 0;
}

static void workers_free(sb_server *s)
{
    if (s->w == NULL)
        return;
    for (int i = 0; i < s->nworkers; i++) {
        sb__worker *w = &s->w[i];
        if (w->own_lfd && w->lfd >= 0 && w->lfd != s->lfd)
            sb__sys.close(w->lfd);
        /* Hand-offs still posted run inside sb_loop_free: they must close
         * their fd, not open a connection on a loop that is going away
         * (a worker whose thread never started never set done). */
        w->done = 1;
        if (w->loop)
            sb_loop_free(w->loop);
    }
    free(s->w);
    s->w = NULL;
}

/* A restart by SO_REUSEPORT (docs/deploy.md) resets a connection queued
 * on the old instance's listener when it closes, unless the kernel moves
 * it to another listener of the port: net.ipv4.tcp_migrate_req. Said once
 * when it is 0; nothing when the file is absent (not Linux, or older). */
static void warn_migrate(sb_server *s)
{
    char v = 0;
    int fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return;
    if (read(fd, &v, 1) == 1 && v == '0')
        srv_log(s, "reuseport: net.ipv4.tcp_migrate_req is 0: a restart can reset a connection "
                   "queued on the old instance's listener (sysctl -w net.ipv4.tcp_migrate_req=1)");
    close(fd);
}

/* A socket handed over (listen_fd) must be a listener: on anything else
 * accept fails at once while readiness reports the socket ready for ever
 * (a TCP socket that is neither listening nor connected polls as hung
 * up), and the loop would spin. systemd passes whatever the unit names -
 * a datagram socket, a connection of Accept=yes. */
static int check_listener(int fd)
{
    int on = 0;
    socklen_t len = sizeof(on);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0)
        return -errno;
    return on ? 0 : -EINVAL;
}

int sb_server_new(sb_server **out, const sb_server_opts *o, const sb_handler *h)
{
    if (o->model == SB_MODEL_FORK && !sb__os_has_fork) { /* Windows */
        if (o->listen_fd > 0)
            sb__sys.close(o->listen_fd);
        return -ENOSYS;
    }
    sb_server *s = sb__calloc(1, sizeof(*s));
    int rc = -ENOMEM;

    if (s == NULL) {
        if (o->listen_fd > 0)
            sb__sys.close(o->listen_fd);
        return -ENOMEM;
    }
    s->o = *o;
    s->h = h;
    s->lfd = s->spare_fd = s->pipe[0] = s->pipe[1] = -1;
    if (o->listen_fd > 0)
        s->lfd = o->listen_fd;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_rwlock_init(&s->accept_lock, NULL);
    sb__link_init(&s->conns);
    s->nworkers = workers_count(o);
    s->listen = strdup(o->listen ? o->listen : "127.0.0.1:7000");
    s->shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s->listen == NULL || s->shared == MAP_FAILED) {
        s->shared = NULL;
        goto fail;
    }
    s->o.listen = s->listen;
    s->o.metrics = NULL;
    if (s->o.max_conns <= 0)
        s->o.max_conns = o->model == SB_MODEL_EVENT ? 100000 : 1024;
    if (s->o.grace_ms <= 0)
        s->o.grace_ms = 2000;
    if (pipe2(s->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        goto fail;
    }
    if (o->listen_fd <= 0) {
        rc = sb__listen_opt(s->listen, o->backlog, o->reuseport || (s->nworkers > 1 && sb__os_has_reuseport));
        if (rc < 0)
            goto fail;
        s->lfd = rc;
        s->bound = 1;
    } else if ((rc = check_listener(s->lfd)) < 0) {
        goto fail;
    }
    sb_set_nonblock(s->lfd, 1);
    s->port = sb_local_port(s->lfd);
    if ((rc = listener_address(s->lfd, s->where, sizeof(s->where))) < 0)
        goto fail;
    if (o->reuseport && s->port > 0)
        warn_migrate(s);
    if ((rc = workers_new(s)) < 0)
        goto fail;
    if (o->metrics && (rc = sb__exporter_new(&s->exporter, o->metrics, s)) < 0)
        goto fail;
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
    sb__exporter_free(s->exporter);
    workers_free(s);
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
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_rwlock_destroy(&s->accept_lock);
    free(s->listen);
    sb__free(s->fds);
    sb__free(s);
}

void sb_server_stop(sb_server *s)
{
    int saved = errno;
    /* Sequentially consistent, as in worker_setup: a stop racing a loop's
     * creation either sees the loop and wakes it, or is seen by the setup. */
    __atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; s->w && i < s->nworkers; i++) {
        sb_loop *l = __atomic_load_n(&s->w[i].loop, __ATOMIC_SEQ_CST);
        if (l)
            sb_loop_wakeup(l);
    }
    if (s->pipe[1] >= 0)
        (void)!write(s->pipe[1], "s", 1);
    errno = saved;
}

static int listener_address(int fd, char *out, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return sb_addr_format((struct sockaddr *)&ss, len, out, n);
}

/* Both kept from sb_server_new: the listeners close when a stop begins. */
int sb_server_port(const sb_server *s)
{
    return s->port;
}

int sb_server_address(const sb_server *s, char *out, size_t n)
{
    size_t len = strlen(s->where);

    if (len >= n)
        return -ENOSPC;
    memcpy(out, s->where, len + 1);
    return (int)len;
}

/* ---- metrics ---------------------------------------------------------- */

typedef struct {
    char *out;
    size_t cap, len;
} mbuf;

static void mput(mbuf *b, const char *fmt, ...)
{
    va_list ap;
    size_t room = b->len < b->cap ? b->cap - b->len : 0;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(room ? b->out + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n;
}

/* One family: HELP, TYPE, then a sample per worker (cause: an extra
 * label, or NULL). field: the offset of the counter in sb__stats. */
typedef struct {
    const char *name, *type, *help, *label, *value; /* label="value", or no label */
    size_t field;
} mfamily;

#define MF(n, t, h, c, f) {n, t, h, "cause", c, offsetof(sb__stats, f)}
#define MR(n, t, h, r, f) {n, t, h, "result", r, offsetof(sb__stats, f)}
static const mfamily families[] = {
    MF("switchboard_connections_accepted_total", "counter", "Connections accepted, counted on the worker that serves them.", NULL, accepted),
    MF("switchboard_connections_open", "gauge", "Connections open now (including those waiting for a PROXY header).", NULL, open),
    MF("switchboard_messages_received_total", "counter", "Messages delivered to the handler.", NULL, msgs_in),
    MF("switchboard_messages_sent_total", "counter", "Framed messages queued to peers (sb_conn_send).", NULL, msgs_out),
    MF("switchboard_bytes_received_total", "counter", "Bytes read from peers.", NULL, bytes_in),
    MF("switchboard_bytes_sent_total", "counter", "Bytes written to peers.", NULL, bytes_out),
    MF("switchboard_connections_shed_total", "counter", "Connections refused at accept, by cause.", "emfile", shed_emfile),
    MF("switchboard_connections_shed_total", NULL, NULL, "max_conns", shed_cap),
    MF("switchboard_connection_errors_total", "counter", "Connections ended by an error, by cause.", "out_cap", err_outcap),
    MF("switchboard_connection_errors_total", NULL, NULL, "timeout", err_timeout),
    MF("switchboard_connection_errors_total", NULL, NULL, "malformed", err_malformed),
    MF("switchboard_connection_errors_total", NULL, NULL, "reset", err_reset),
    MF("switchboard_connection_errors_total", NULL, NULL, "tls", err_tls),
    MF("switchboard_connection_errors_total", NULL, NULL, "proxy_header", proxy_bad),
    MF("switchboard_connection_errors_total", NULL, NULL, "other", err_other),
    MR("switchboard_tls_handshakes_total", "counter", "TLS connections ended, by whether their handshake had completed.", "ok", tls_ok),
    MR("switchboard_tls_handshakes_total", NULL, NULL, "failed", tls_failed),
};

/* The blocking models count only the server-wide totals: reported as
 * worker 0's. */
static uint64_t metric_value(const sb_server *s, int i, size_t field)
{
    const sb__stats *st = &s->w[i].stats;

    if (s->o.model != SB_MODEL_EVENT) {
        if (field == offsetof(sb__stats, accepted))
            return __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
        if (field == offsetof(sb__stats, open))
            return __atomic_load_n(&s->active, __ATOMIC_RELAXED);
        if (field == offsetof(sb__stats, msgs_in))
            return s->shared ? __atomic_load_n(&s->shared[0], __ATOMIC_RELAXED) : 0;
    }
    return sb__stat_get((const uint64_t *)(const void *)((const char *)st + field));
}

int sb_server_metrics(const sb_server *s, char *out, size_t n)
{
    mbuf b = {out, n, 0};

    if (out && n)
        out[0] = '\0';
    mput(&b, "# HELP switchboard_workers Event loops (threads) serving connections.\n"
             "# TYPE switchboard_workers gauge\nswitchboard_workers %d\n", s->nworkers);
    for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
        const mfamily *m = &families[f];
        if (m->help)
            mput(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
        for (int i = 0; i < s->nworkers; i++) {
            unsigned long long v = (unsigned long long)metric_value(s, i, m->field);
            if (m->value)
                mput(&b, "%s{worker=\"%d\",%s=\"%s\"} %llu\n", m->name, i, m->label, m->value, v);
            else
                mput(&b, "%s{worker=\"%d\"} %llu\n", m->name, i, v);
        }
    }
    return b.len > INT32_MAX ? -EOVERFLOW : (int)b.len;
}

int sb_server_metrics_address(const sb_server *s, char *out, size_t n)
{
    const char *a = s->exporter ? sb__exporter_address(s->exporter) : NULL;
    size_t len;

    if (a == NULL)
        return -ENOENT;
    len = strlen(a);
    if (len >= n)
        return -ENOSPC;
    memcpy(out, a, len + 1);
    return (int)len;
}

int sb_listen_fds(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    char *end;
    long n;

    if (pid == NULL || fds == NULL || strtol(pid, &end, 10) != (long)getpid() || *end)
        return 0;
    n = strtol(fds, &end, 10);
    return *end || n < 0 || n > 64 ? 0 : (int)n;
}

int sb_server_workers(const sb_server *s)
{
    return s->nworkers;
}

sb_loop *sb_server_loop(const sb_server *s, int i)
{
    if (s->o.model != SB_MODEL_EVENT || i < 0 || i >= s->nworkers)
        return NULL;
    return __atomic_load_n(&s->w[i].loop, __ATOMIC_SEQ_CST);
}

/* messages: every worker's (event model) plus the blocking models' shared
 * counter. */
void sb_server_stats_get(const sb_server *s, sb_server_stats *st)
{
    st->accepted = __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
    st->refused = __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
    st->active = __atomic_load_n(&s->active, __ATOMIC_RELAXED);
    st->messages = s->shared ? __atomic_load_n(&s->shared[0], __ATOMIC_RELAXED) : 0;
    for (int i = 0; s->w && i < s->nworkers; i++)
        st->messages += sb__stat_get(&s->w[i].stats.msgs_in);
}

static void count(uint64_t *v, int delta)
{
    __atomic_fetch_add(v, (uint64_t)(int64_t)delta, __ATOMIC_RELAXED);
}

/* EMFILE/ENFILE: the pending connection cannot be accepted, and leaving
 * it in the backlog would make the listener readable forever (a spinning
 * loop). Give up the spare fd, accept and close the connection (shed it),
 * take the spare back. With several workers the slot the spare frees must
 * not go to another worker's accept (the spare would be lost, and with it
 * every later shed): shedding holds accept_lock for writing, every accept
 * holds it for reading - but only once a first shed has happened
 * (shed_seen): a server that never runs out of descriptors pays nothing
 * per accept, not even a shared atomic write. An accept already past that
 * check when the first shed begins may take the freed slot; that spare,
 * like one lost to a file an app opens in that instant, is opened again
 * on the next shed. Returns 0 if shed, -1
 * if even that failed. */
static int shed_one(sb_server *s, int lfd, sb__stats *st)
{
    int fd = -1, spare;

    count(&s->refused, 1);
    if (st)
        sb__stat_add(&st->shed_emfile, 1);
    srv_log(s, "connection shed: %s", sb_strerror(-EMFILE));
    if (s->nworkers > 1) {
        __atomic_store_n(&s->shed_seen, 1, __ATOMIC_SEQ_CST);
        pthread_rwlock_wrlock(&s->accept_lock);
    }
    spare = s->spare_fd >= 0 ? s->spare_fd : open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (spare >= 0) {
        sb__sys.close(spare);
        fd = sb_accept(lfd, NULL, 0);
        if (fd >= 0)
            sb__sys.close(fd);
        s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    spare = s->spare_fd;
    if (s->nworkers > 1)
        pthread_rwlock_unlock(&s->accept_lock);
    return fd >= 0 && spare >= 0 ? 0 : -1;
}

static int admit(sb_server *s, int fd, sb__stats *st);

/* Accept one connection: returns an fd or a negative code: -EAGAIN (none),
 * -EINTR (out of descriptors or memory, one connection shed: try again),
 * -EBUSY (shedding failed too: pause accepting). st: the worker's
 * counters (event model) or NULL. */
static int accept_one(sb_server *s, int lfd, int flags, sb__stats *st, sb_addr *peer)
{
    int fd;

    int locked = s->nworkers > 1 && __atomic_load_n(&s->shed_seen, __ATOMIC_RELAXED);

    if (locked)
        pthread_rwlock_rdlock(&s->accept_lock);
    fd = sb_accept(lfd, peer, flags);
    if (locked)
        pthread_rwlock_unlock(&s->accept_lock);

    if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM)
        return shed_one(s, lfd, st) == 0 ? -EINTR : -EBUSY;
    if (fd < 0)
        return fd;
    return admit(s, fd, st);
}

/* A connection accepted (by accept_one, or a completion ring's accept):
 * over max_conns it is shed, else counted. Returns fd, or -EINTR when it
 * was shed. */
static int admit(sb_server *s, int fd, sb__stats *st)
{
    if (__atomic_load_n(&s->active, __ATOMIC_RELAXED) >= (uint64_t)s->o.max_conns) {
        count(&s->refused, 1);
        if (st)
            sb__stat_add(&st->shed_cap, 1);
        srv_log(s, "connection shed: max_conns (%d) connections open", s->o.max_conns);
        sb__sys.close(fd);
        return -EINTR;
    }
    count(&s->accepted, 1); /* the per-worker count is the serving worker's: ev_take */
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
/* 2. The event model: N workers, one loop each                        */

/* Where a connection ends, by cause, for the metrics. */
static void ev_count_end(sb__stats *st, int err)
{
    uint64_t *v;

    switch (err) {
    case 0: case -ECANCELED: case SB_ECLOSED: return;
    case SB_EOUTPUT: v = &st->err_outcap; break;
    case -ETIMEDOUT: v = &st->err_timeout; break;
    case SB_EMALFORMED: case SB_ETOOBIG: case SB_EHTTP: case SB_EBADTYPE:
    case SB_EOVERFLOW: case SB_ETRUNCATED: v = &st->err_malformed; break;
    case -ECONNRESET: case -EPIPE: v = &st->err_reset; break;
    case SB_ETLS: case SB_ETLSVERIFY: case SB_ETLSHOST: case SB_ETLSTRUNC: v = &st->err_tls; break;
    default: v = &st->err_other; break;
    }
    sb__stat_add(v, 1);
}

/* Hand-offs and the end of a drain. A worker's loop may return only when
 * no connection is open on it and none is on its way to it: a hand-off
 * posted to a loop that has returned would run in sb_loop_free (closed
 * unanswered) or, posted in the loop's last turn, open a connection that
 * nothing will ever serve or close. So a draining worker with nothing open
 * closes its door by one compare-and-swap of incoming from 0 to SB_SHUT,
 * and a hand-off is posted only after incrementing incoming while SB_SHUT
 * is clear (ev_dispatch): the two are ordered on one word, so either the
 * hand-off is counted first (the worker waits for it and serves it) or
 * the door is shut first (the sender serves the connection itself). The
 * bit also makes a shut worker's load look enormous: ev_pick never picks
 * it. */
#define SB_SHUT (1ull << 62)

static void ev_maybe_stop(sb__worker *w)
{
    uint64_t zero = 0;

    /* A ring's accept still in flight could bring a connection yet (its
     * cancel is on the way); the grace's end stops waiting for it. */
    if (w->draining && w->active == 0 && (w->accept_op.busy == 0 || w->cut) &&
        __atomic_compare_exchange_n(&w->incoming, &zero, SB_SHUT, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
        sb_timer_stop(w->loop, &w->grace_timer);
        sb_loop_stop(w->loop);
    }
}

static void ev_active(sb__worker *w, int delta)
{
    w->active += (uint64_t)(int64_t)delta;
    count(&w->s->active, delta);
    __atomic_store_n(&w->stats.open, w->active, __ATOMIC_RELAXED);
    if (delta < 0)
        ev_maybe_stop(w);
}

/* The worker's connections are its loop's: sb_conn_walk lists them. */
static void ev_gone(sb__conn_owner *ow, sb_conn *c)
{
    sb__worker *w = ow->ud;
    int tls = sb__conn_tls_done(c);

    if (tls)
        sb__stat_add(tls > 0 ? &w->stats.tls_ok : &w->stats.tls_failed, 1);
    ev_count_end(&w->stats, c->err);
    ev_active(w, -1);
}

static void ev_accept(sb_loop *l, int fd, int events, void *ud);

static int ev_listen(sb__worker *w, sb_loop *l);

static void ev_accept_resume(sb_loop *l, sb_timer *t)
{
    sb__worker *w = t->data;
    if (!w->draining && w->lfd >= 0)
        ev_listen(w, l);
}

/* Open the connection on the worker's loop; peer (NULL: ask the socket) is
 * the client: the address accept gave, or the one a PROXY header named. */
static void ev_adopt(sb__worker *w, int fd, const struct sockaddr *peer, socklen_t plen)
{
    sb_server *s = w->s;
    sb_conn *c = NULL;
    int rc;

    rc = sb__conn_open(w->loop, fd, &s->o.conn, s->h, &w->owner, peer, plen, &c);
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
    ev_active(w, 1);
    if (w->draining)
        sb__conn_drain(c);
}

static void ev_take(sb__worker *w, int fd, const sb_addr *peer);

/* ---- balance: SO_REUSEPORT, corrected -------------------------------- */

/* The kernel's reuseport hash spreads connections well on average, but
 * the spread of one run has tails (1,000 connections over 2 workers:
 * measured max/min from 1.00 to 1.24, see docs/deploy.md). So a worker
 * that finds itself more than a few connections above the least loaded
 * one hands the new connection over (sb_loop_post: the fd moves, the
 * connection is opened on the target's loop and lives there). Most
 * connections stay where the kernel put them - no cross-thread hop - and
 * the imbalance stays within the slack. */
#define SB_BALANCE_SLACK(min) (4 + (min) / 64)

typedef struct {
    sb__worker *w;
    int fd;
} handoff;

static void ev_handed(sb_loop *l, void *ud)
{
    handoff *h = ud;
    sb__worker *w = h->w;

    __atomic_sub_fetch(&w->incoming, 1, __ATOMIC_ACQ_REL);
    if (w->done || w->cut) {
        /* The loop failed, or never ran (sb_loop_free runs this), or the
         * drain's grace is over: cut like every other connection. */
        count(&w->s->refused, 1);
        srv_log(w->s, "connection closed: handed to a worker that has stopped");
        sb__sys.close(h->fd);
    } else {
        ev_take(w, h->fd, NULL); /* draining or not: it was accepted, it is served */
    }
    sb__free(h);
    if (!w->done)
        ev_maybe_stop(w);
}

static uint64_t ev_load(sb__worker *w)
{
    return sb__stat_get(&w->stats.open) + __atomic_load_n(&w->incoming, __ATOMIC_RELAXED);
}

/* The worker that should take a new connection accepted by w. */
static sb__worker *ev_pick(sb__worker *w)
{
    sb_server *s = w->s;
    sb__worker *best = w;
    uint64_t min = ev_load(w), mine = min;

    if (s->nworkers < 2 || __atomic_load_n(&s->stopping, __ATOMIC_RELAXED))
        return w;
    for (int i = 0; i < s->nworkers; i++) {
        uint64_t v = ev_load(&s->w[i]);
        if (v < min) {
            min = v;
            best = &s->w[i];
        }
    }
    return mine > min + SB_BALANCE_SLACK(min) ? best : w;
}

/* Count a hand-off to w unless w has shut its door (see SB_SHUT). */
static int ev_expect(sb__worker *w)
{
    uint64_t v = __atomic_load_n(&w->incoming, __ATOMIC_RELAXED);

    do {
        if (v & SB_SHUT)
            return 0;
    } while (!__atomic_compare_exchange_n(&w->incoming, &v, v + 1, 1, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    return 1;
}

static void ev_dispatch(sb__worker *w, int fd, const sb_addr *peer)
{
    sb__worker *to = ev_pick(w);
    handoff *h;
    sb_loop *l;

    if (to != w && (l = __atomic_load_n(&to->loop, __ATOMIC_ACQUIRE)) != NULL &&
        (h = sb__malloc(sizeof(*h))) != NULL) {
        h->w = to;
        h->fd = fd;
        if (ev_expect(to)) {
            if (sb_loop_post(l, ev_handed, h) == 0)
                return;
            /* Not posted: the count goes back. A draining target left
             * waiting at zero is ended by its grace timer. */
            __atomic_sub_fetch(&to->incoming, 1, __ATOMIC_ACQ_REL);
        }
        sb__free(h);
    }
    ev_take(w, fd, peer);
}

/* Accept up to a batch; all == 1 (a drain) takes what is queued, up to
 * SB_DRAIN_ACCEPT_MAX (a flood still arriving must not hold the stop). */
static void ev_accept_batch(sb__worker *w, int all)
{
    sb_server *s = w->s;
    int max = all ? SB_DRAIN_ACCEPT_MAX : SB_ACCEPT_BATCH;

    for (int i = 0; i < max; i++) {
        if (!all && __atomic_load_n(&s->stopping, __ATOMIC_RELAXED))
            return;
        sb_addr peer;
        int fd = accept_one(s, w->lfd, SOCK_NONBLOCK, &w->stats, &peer);
        if (fd == -EINTR)
            continue;
        if (fd == -EBUSY && !all) {
            srv_log(s, "accept paused for %d ms: out of file descriptors", SB_ACCEPT_PAUSE_MS);
            sb_loop_watch(w->loop, w->lfd, 0, NULL, NULL);
            sb_timer_start(w->loop, &w->accept_timer, SB_ACCEPT_PAUSE_MS);
            return;
        }
        if (fd < 0)
            return;
        tune(s, fd);
        if (all)
            ev_take(w, fd, &peer);
        else
            ev_dispatch(w, fd, &peer);
    }
}

static void ev_accept(sb_loop *l, int lfd, int events, void *ud)
{
    ev_accept_batch(ud, 0);
}

/* ---- accepting on a completion ring ---------------------------------- */

/* Pause accepting (the pause timer resumes it). */
static void ev_accept_pause(sb__worker *w, const char *why)
{
    srv_log(w->s, "accept paused for %d ms: %s", SB_ACCEPT_PAUSE_MS, why);
    sb_timer_start(w->loop, &w->accept_timer, SB_ACCEPT_PAUSE_MS);
}

/* The multishot accept's completions: one per connection, as readiness's
 * accept_one would have had it (max_conns, tune, dispatch). It ends on an
 * error: out of descriptors, the connection waiting is shed as with
 * readiness (the spare fd) and the accept re-armed, or paused if even
 * that failed; anything else pauses too, so that a listener that keeps
 * failing does not spin. A connection that completes after the loop
 * returned (seen in its teardown) is closed: nothing would serve it. */
static void ev_ring_accepted(sb__op *op, int kind, int res, int more, const void *p)
{
    sb__worker *w = SB__CONTAINER(op, sb__worker, accept_op);
    sb_server *s = w->s;
    int fd;

    if (res >= 0 && w->done) {
        count(&s->refused, 1);
        sb__sys.close(res);
    } else if (res >= 0 && (fd = admit(s, res, &w->stats)) >= 0) {
        tune(s, fd);
        /* The ring accepts only for a lone worker (ev_ring_accepts): there
         * is no other to hand the connection to. No address comes with a
         * multishot accept. */
        ev_take(w, fd, NULL);
    }
    if (more || w->done)
        return;
    if (w->draining || w->lfd < 0 || res == -ECANCELED) {
        ev_maybe_stop(w);
        return;
    }
    if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        if (shed_one(s, w->lfd, &w->stats) < 0) {
            ev_accept_pause(w, "out of file descriptors");
            return;
        }
    } else if (res < 0 && res != -EINTR && res != -ECONNABORTED && res != -EAGAIN) {
        ev_accept_pause(w, sb_strerror(res));
        return;
    }
    if (ev_listen(w, w->loop) < 0)
        ev_accept_pause(w, "the accept could not be queued");
}

/* Watch the listener: a multishot accept where the loop does the I/O and
 * the worker is alone, else readiness. Several workers share one
 * descriptor table, and shedding on EMFILE must keep the others' accepts
 * off the slot its spare descriptor frees (shed_one): a lock keeps
 * accept4 calls off it, but not an accept the kernel runs for another
 * worker's ring. So with several workers each accepts by readiness - a
 * poll on its ring, an accept4 per connection - and only the connections'
 * I/O is the ring's. */
static int ev_ring_accepts(const sb__worker *w, const sb_loop *l)
{
    return sb__loop_ring(l) != NULL && w->s->nworkers == 1;
}

static int ev_listen(sb__worker *w, sb_loop *l)
{
    if (!ev_ring_accepts(w, l))
        return sb_loop_watch(l, w->lfd, SB_READABLE, ev_accept, w);
    w->accept_op.cb = ev_ring_accepted;
    return sb__loop_accept(l, w->lfd, &w->accept_op);
}

static void ev_unlisten(sb__worker *w)
{
    if (!ev_ring_accepts(w, w->loop))
        sb_loop_watch(w->loop, w->lfd, 0, NULL, NULL);
    else
        sb__loop_cancel(w->loop, &w->accept_op, SB__OP_ACCEPT);
}

/* ---- PROXY protocol: the header before the connection opens ---------- */

#define SB_PROXY_WAIT_MS 5000 /* a load balancer sends the header at once */

typedef struct sb__pending {
    sb__link link;             /* the worker's pending list */
    sb__worker *w;
    int fd;
    size_t have;               /* header bytes consumed so far */
    sb_timer timer;
    uint8_t buf[SB_PROXY_MAX];
} sb__pending;

static void px_end(sb__pending *p, int ok)
{
    sb__worker *w = p->w;
    sb_proxy_info info;

    sb__link_del(&p->link);
    sb_loop_watch(w->loop, p->fd, 0, NULL, NULL);
    sb_timer_stop(w->loop, &p->timer);
    if (ok && sb_proxy_parse(p->buf, p->have, &info) > 0) {
        ev_adopt(w, p->fd, info.local ? NULL : (struct sockaddr *)&info.src,
                 info.local ? 0 : info.src_len);
    } else {
        sb__stat_add(&w->stats.proxy_bad, 1);
        srv_log(w->s, "connection closed: no valid PROXY protocol header");
        sb__sys.close(p->fd);
    }
    sb__free(p);
    ev_active(w, -1); /* ev_adopt counted the connection itself */
}

/* Peek at what has come, consume exactly the header's bytes (what follows
 * is the connection's), or everything seen while the header is still
 * incomplete (then all of it is header). One peek and one read in the
 * usual case; the header is never read past. */
static void px_io(sb_loop *l, int fd, int events, void *ud)
{
    sb__pending *p = ud;
    ssize_t n = sb__sys.recv(fd, p->buf + p->have, sizeof(p->buf) - p->have, MSG_PEEK);
    int r;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        px_end(p, 0);
        return;
    }
    r = sb_proxy_parse(p->buf, p->have + (size_t)n, NULL);
    if (r == -EAGAIN)
        r = (int)(p->have + (size_t)n);
    else if (r < 0) {
        px_end(p, 0);
        return;
    }
    if (sb__sys.recv(fd, p->buf + p->have, (size_t)r - p->have, 0) != (ssize_t)((size_t)r - p->have)) {
        px_end(p, 0);
        return;
    }
    p->have = (size_t)r;
    if (sb_proxy_parse(p->buf, p->have, NULL) > 0)
        px_end(p, 1);
}

static void px_timeout(sb_loop *l, sb_timer *t)
{
    px_end(t->data, 0);
}

/* The longest wait for the header: 5 seconds, or the connection's idle or
 * read timeout when one is set and shorter. A server that closes a silent
 * or stalled client sooner closes one that has not yet said who it is no
 * later. */
static int px_wait_ms(const sb_server *s)
{
    int ms = SB_PROXY_WAIT_MS, idle = s->o.conn.idle_timeout_ms, rd = s->o.conn.read_timeout_ms;

    if (idle > 0 && idle < ms)
        ms = idle;
    if (rd > 0 && rd < ms)
        ms = rd;
    return ms;
}

static void px_wait(sb__worker *w, int fd)
{
    sb__pending *p = sb__malloc(sizeof(*p));

    if (p == NULL) {
        sb__sys.close(fd);
        return;
    }
    p->w = w;
    p->fd = fd;
    p->have = 0;
    sb_timer_init(&p->timer, px_timeout, p);
    if (sb_loop_watch(w->loop, fd, SB_READABLE, px_io, p) < 0 ||
        sb_timer_start(w->loop, &p->timer, px_wait_ms(w->s)) < 0) {
        sb_loop_watch(w->loop, fd, 0, NULL, NULL);
        sb__sys.close(fd);
        sb__free(p);
        return;
    }
    sb__link_add(&w->pending, &p->link);
    ev_active(w, 1);
}

/* Where a connection starts to be this worker's: counted here, so that
 * accepted_total is the connections each worker served, whichever worker's
 * accept took it from the kernel. */
/* peer: the address accept gave (NULL: the connection asks the socket). */
static void ev_take(sb__worker *w, int fd, const sb_addr *peer)
{
    sb__stat_add(&w->stats.accepted, 1);
    if (w->s->o.proxy_protocol)
        px_wait(w, fd);
    else
        ev_adopt(w, fd, peer ? (const struct sockaddr *)&peer->ss : NULL, peer ? peer->len : 0);
}

/* ---- stop: drain ------------------------------------------------------ */

static void drain_one(sb_conn *c, void *ud)
{
    sb__conn_drain(c);
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
    sb__worker *w = t->data;

    while (!sb__link_empty(&w->pending))
        px_end(SB__CONTAINER(w->pending.next, sb__pending, link), 0);
    w->cut = 1;
    sb_conn_walk(l, cut_one, NULL);
    ev_maybe_stop(w);
}

/* Stop on this worker: take every connection already queued on its own
 * listener (they were in flight: closing a listener resets its queue),
 * then close it, so a new instance sharing the port by SO_REUSEPORT gets
 * every later one. Connections then drain: an idle one closes now, one
 * with a message under way (or not yet sent its first) closes after
 * that message's replies; after grace_ms the rest are cut. */
static void ev_begin_stop(sb__worker *w)
{
    sb_server *s = w->s;

    w->draining = 1;
    sb_timer_stop(w->loop, &w->accept_timer);
    if (w->lfd >= 0) {
        ev_unlisten(w);
        if (w->own_lfd) {
            ev_accept_batch(w, 1);
            sb__sys.close(w->lfd);
            if (w->id == 0)
                s->lfd = -1;
            w->lfd = -1;
        }
    }
    sb_conn_walk(w->loop, drain_one, NULL);
    /* The timer also bounds the wait for hand-offs already on their way. */
    sb_timer_start(w->loop, &w->grace_timer, s->o.grace_ms);
    ev_maybe_stop(w);
}

static void ev_wakeup(sb_loop *l, void *ud)
{
    sb__worker *w = ud;
    if (__atomic_load_n(&w->s->stopping, __ATOMIC_SEQ_CST) && !w->draining)
        ev_begin_stop(w);
}

static void ev_signal(sb_loop *l, int signo, void *ud)
{
    sb_server_stop(ud);
}

static int worker_setup(sb__worker *w)
{
    sb_server *s = w->s;
    sb_loop *l;
    int rc = sb_loop_new(&l, s->o.backend);

    if (rc < 0)
        return rc;
    w->owner.messages = &w->stats.msgs_in;
    w->owner.gone = ev_gone;
    w->owner.ud = w;
    w->owner.stats = &w->stats;
    sb__link_init(&w->pending);
    sb_timer_init(&w->accept_timer, ev_accept_resume, w);
    sb_timer_init(&w->grace_timer, ev_grace_over, w);
    sb_loop_on_wakeup(l, ev_wakeup, w);
    rc = ev_listen(w, l);
    __atomic_store_n(&w->loop, l, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST))
        sb_loop_wakeup(l);
    return rc;
}

static void *worker_main(void *arg)
{
    sb__worker *w = arg;

    w->run_rc = sb_loop_run(w->loop);
    /* Returned on an error perhaps, not drained: no hand-off from now on. */
    __atomic_fetch_or(&w->incoming, SB_SHUT, __ATOMIC_ACQ_REL);
    w->done = 1;
    if (w->run_rc < 0)
        sb_server_stop(w->s); /* one worker failing ends the server */
    return NULL;
}

static int run_event(sb_server *s)
{
    int rc = 0;

    for (int i = 0; i < s->nworkers && rc == 0; i++)
        rc = worker_setup(&s->w[i]);
    if (rc == 0 && s->o.handle_signals) {
        sb_loop_signal(s->w[0].loop, SIGINT, ev_signal, s);
        sb_loop_signal(s->w[0].loop, SIGTERM, ev_signal, s);
    }
    /* Ready when every loop exists and watches its listener, before any
     * worker thread runs: no connection is served before on_ready. */
    if (rc == 0)
        ready(s);
    for (int i = 1; i < s->nworkers && rc == 0; i++) {
        if (pthread_create(&s->w[i].thread, NULL, worker_main, &s->w[i]) != 0) {
            rc = -EAGAIN;
            sb_server_stop(s);
        } else
            s->w[i].started = 1;
    }
    if (rc == 0)
        worker_main(&s->w[0]);
    else
        sb_server_stop(s);
    for (int i = 1; i < s->nworkers; i++)
        if (s->w[i].started) {
            pthread_join(s->w[i].thread, NULL);
            s->w[i].started = 0;
        }
    for (int i = 0; i < s->nworkers && rc == 0; i++)
        rc = s->w[i].run_rc;
    if (s->o.handle_signals && s->w[0].loop) {
        sb_loop_signal(s->w[0].loop, SIGINT, NULL, NULL);
        sb_loop_signal(s->w[0].loop, SIGTERM, NULL, NULL);
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
    fd = accept_one(s, s->lfd, 0, NULL, NULL);
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
    sb__conn_owner ow = {&a.s->shared[0], thr_joined, thr_gone, a.s, NULL};

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
        count(&s->active, -1);
    }
}

/* Fork child: its connection from joined until gone (both on the child's
 * only thread, gone before the free), and a stop that came before it. */
static sb_conn *sb__child_conn;
static int sb__child_term;

/* SIGTERM in a child: the same graceful end as in the threads model - a
 * close request, as another thread would make it (two atomics and a write
 * to the connection's wake fd, all async-signal-safe), so that a child
 * waiting only for POLLOUT wakes too. The handler runs on the thread that
 * frees the connection, and gone clears the pointer first: it never sees
 * a freed connection, and never names a descriptor (the socket's or the
 * wake fd) after its close. */
static void on_child_term(int signo)
{
    int saved = errno;
    sb_conn *c;

    (void)signo;
    __atomic_store_n(&sb__child_term, 1, __ATOMIC_SEQ_CST);
    c = __atomic_load_n(&sb__child_conn, __ATOMIC_SEQ_CST);
    if (c != NULL)
        sb__blk_request_close(c, 0, 1);
    errno = saved;
}

static void child_joined(sb__conn_owner *ow, sb_conn *c)
{
    (void)ow;
    __atomic_store_n(&sb__child_conn, c, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&sb__child_term, __ATOMIC_SEQ_CST)) /* asked before it joined */
        sb__blk_request_close(c, 0, 1);
}

static void child_gone(sb__conn_owner *ow, sb_conn *c)
{
    (void)ow;
    (void)c;
    __atomic_store_n(&sb__child_conn, NULL, __ATOMIC_SEQ_CST);
}

static void fork_child(sb_server *s, int fd)
{
    sb__conn_owner ow = {&s->shared[0], child_joined, child_gone, NULL, NULL};

    signal(SIGINT, SIG_DFL);
    install(SIGTERM, on_child_term, NULL);
    signal(SIGCHLD, SIG_DFL);
    __atomic_store_n(&sb__signal_server, NULL, __ATOMIC_SEQ_CST);
    sb__sys.close(s->lfd);
    if (s->spare_fd >= 0)
        sb__sys.close(s->spare_fd);
    sb__sys.close(s->pipe[0]);
    sb__sys.close(s->pipe[1]);
    /* The exporter's listener too: a child holding it would keep the
     * metrics port bound after the parent exits, and a restart could not
     * bind --metrics while old connections finish. */
    sb__exporter_close_child(s->exporter);
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
    count(&s->active, 1);
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
        count(&s->active, -1);
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
    int rc;

    if (s->exporter && (rc = sb__exporter_start(s->exporter)) < 0)
        return rc;
    switch (s->o.model) {
    case SB_MODEL_THREADS: return run_threads(s);
    case SB_MODEL_FORK: return run_fork(s);
    default: return run_event(s);
    }
}
