/* test_faults: a signal storm during an echo soak. A 1 ms interval timer
 * sends SIGALRM to the process, with SA_RESTART off, so every blocking
 * call of every thread - epoll_wait, poll, recv, send, connect, accept -
 * keeps returning EINTR. Through it, blocking sb_stream clients exchange
 * messages of every size (several partial sends each) with an in-process
 * server, under the event model (epoll, poll, select) and the threads
 * model: every reply must be exact and no call may fail.
 *
 * Also: the HTTP parser's first use from several threads at once (its
 * lazily built table), judged by TSan.
 *
 * Bounded: a fixed number of exchanges per client (continued until the
 * storm has visibly happened, up to a cap), stream timeouts on every call,
 * and a watchdog thread that aborts a run that does not finish.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "test.h"

#define CLIENTS 3
#define ROUNDS 300           /* exchanges per client, at least */
#define ROUNDS_MAX 20000     /* ... continued until the storm showed, at most */
#define SIGNALS_WANTED 300   /* signals to see before stopping early */
#define IO_TIMEOUT_MS 10000
#define WATCHDOG_S 240

static atomic_ulong signals_seen;

static void on_alarm(int signo)
{
    (void)signo;
    atomic_fetch_add(&signals_seen, 1);
}

static void storm_start(void)
{
    struct sigaction sa;
    struct itimerval it = {{0, 1000}, {0, 1000}};

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = 0; /* no SA_RESTART: interrupted calls fail with EINTR */
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
    CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void storm_stop(void)
{
    struct itimerval off = {{0, 0}, {0, 0}};
    CHECK_EQ(setitimer(ITIMER_REAL, &off, NULL), 0);
    signal(SIGALRM, SIG_IGN);
}

/* ---- watchdog: no alarm() here, SIGALRM is the storm ---- */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static int wd_done;

static void *watchdog(void *arg)
{
    struct timespec until;

    (void)arg;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WATCHDOG_S;
    pthread_mutex_lock(&wd_lock);
    while (!wd_done)
        if (pthread_cond_timedwait(&wd_cond, &wd_lock, &until) == ETIMEDOUT && !wd_done) {
            fprintf(stderr, "test_faults: watchdog: a run did not finish\n");
            abort();
        }
    pthread_mutex_unlock(&wd_lock);
    return NULL;
}

/* ---- the server and its clients ---- */

static int echo(sb_conn *c, const sb_msg *m, void *app)
{
    return sb_conn_send(c, m->type, m->data, m->len);
}

static const sb_handler echo_handler = {NULL, echo, NULL, NULL, NULL};

static uint8_t pattern[300 * 1024];

typedef struct {
    char addr[64];
    sb_frame_spec spec;
    int id;
    unsigned long sig0; /* signals seen before this run */
    int ok;          /* exact replies */
    int err;         /* first error seen (0: none) */
} client_job;

/* Sizes that make sends and receives partial: up to several socket
 * buffers' worth, so a signal lands in the middle of a transfer. */
static size_t size_for(int id, int r)
{
    static const size_t sizes[] = {1, 10, 100, 1000, 10000, 70000, 300 * 1024, 0};
    return sizes[(size_t)(r + id) % (sizeof sizes / sizeof sizes[0])];
}

static void *client(void *p)
{
    client_job *j = p;
    sb_stream *st;
    int fd = sb_dial(j->addr, IO_TIMEOUT_MS);
    int rc;

    if (fd < 0) {
        j->err = fd;
        return NULL;
    }
    rc = sb_stream_open(&st, fd, &j->spec, sizeof pattern, IO_TIMEOUT_MS);
    CHECK_EQ(rc, 0);
    for (int r = 0; r < ROUNDS_MAX; r++) {
        if (r >= ROUNDS && atomic_load(&signals_seen) - j->sig0 >= SIGNALS_WANTED)
            break;
        size_t n = size_for(j->id, r);
        const uint8_t *msg = pattern + (size_t)r % 251;
        sb_msg m;
        if (n > sizeof pattern - 251)
            n = sizeof pattern - 251;
        rc = sb_stream_request(st, -1, msg, n, &m);
        if (rc != 1) {
            j->err = rc < 0 ? rc : SB_ECLOSED;
            break;
        }
        if (m.len != n || (n && memcmp(m.data, msg, n) != 0)) {
            j->err = SB_EMALFORMED;
            break;
        }
        j->ok++;
    }
    sb_stream_close(st);
    close(fd);
    return NULL;
}

typedef struct {
    sb_server *s;
    int rc;
} server_job;

static void *server_main(void *p)
{
    server_job *sj = p;
    sj->rc = sb_server_run(sj->s);
    return NULL;
}

static void storm_run(sb_model model, const char *backend)
{
    sb_server_opts o;
    server_job sj;
    client_job jobs[CLIENTS];
    pthread_t st, ct[CLIENTS];
    unsigned long before = atomic_load(&signals_seen);

    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.model = model;
    o.backend = backend;
    o.grace_ms = 1000;
    o.conn.max_msg = sizeof pattern;
    CHECK_EQ(sb_frame_parse("len32", &o.conn.frame), 0);
    CHECK_EQ(sb_server_new(&sj.s, &o, &echo_handler), 0);
    sj.rc = -1;
    CHECK_EQ(pthread_create(&st, NULL, server_main, &sj), 0);
    for (int i = 0; i < CLIENTS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        CHECK(sb_server_address(sj.s, jobs[i].addr, sizeof jobs[i].addr) > 0);
        jobs[i].spec = o.conn.frame;
        jobs[i].id = i;
        jobs[i].sig0 = before;
        CHECK_EQ(pthread_create(&ct[i], NULL, client, &jobs[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        CHECK_EQ(pthread_join(ct[i], NULL), 0);
    sb_server_stop(sj.s);
    CHECK_EQ(pthread_join(st, NULL), 0);
    CHECK_EQ(sj.rc, 0);
    sb_server_free(sj.s);
    unsigned long sigs = atomic_load(&signals_seen) - before;
    for (int i = 0; i < CLIENTS; i++) {
        if (jobs[i].err)
            fprintf(stderr, "client %d: %s after %d exchanges\n", i, sb_strerror(jobs[i].err),
                    jobs[i].ok);
        CHECK_EQ(jobs[i].err, 0);
        CHECK(jobs[i].ok >= ROUNDS);
    }
    fprintf(stderr, "    %-8s %-7s %d exchanges, %lu signals, no error\n", sb_model_name(model),
            backend ? backend : "", jobs[0].ok + jobs[1].ok + jobs[2].ok, sigs);
    CHECK(sigs > 0);
}

static void test_signal_storm(void)
{
    static const char *const backends[] = {"epoll", "poll", "select"};

    storm_start();
    for (int b = 0; b < 3; b++)
        storm_run(SB_MODEL_EVENT, backends[b]);
    storm_run(SB_MODEL_THREADS, NULL);
    storm_stop();
}

/* ---- the HTTP parser's first use on many threads at once ---- */

static pthread_barrier_t first_use;

static void *parse_first(void *arg)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    sb_http_request r;
    sb_http_header h[4];

    (void)arg;
    pthread_barrier_wait(&first_use);
    CHECK_EQ(sb_http_parse_request(req, sizeof req - 1, &r, h, 4, NULL), (int)sizeof req - 1);
    return NULL;
}

/* The parser builds its character table on first use; under the threads
 * model that first use can come from several threads at once. Must run
 * before anything else in this process parses HTTP (TSan judges it). */
static void test_http_first_use(void)
{
    pthread_t t[4];

    CHECK_EQ(pthread_barrier_init(&first_use, NULL, 4), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, parse_first, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&first_use);
}

int main(void)
{
    pthread_t wd;

    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (uint8_t)(i * 131 + 7);
    CHECK_EQ(pthread_create(&wd, NULL, watchdog, NULL), 0);
    RUN(test_http_first_use);
    RUN(test_signal_storm);
    pthread_mutex_lock(&wd_lock);
    wd_done = 1;
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
    pthread_join(wd, NULL);
    return 0;
}
