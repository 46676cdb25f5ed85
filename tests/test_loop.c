/* test_loop: the reactor, run once per backend compiled in. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/select.h>

#include "test.h"
#include "loop_int.h"

static const char *g_backend; /* the backend under test */

static sb_loop *new_loop(void)
{
    sb_loop *l = NULL;
    CHECK_EQ(sb_loop_new(&l, g_backend), 0);
    CHECK(l != NULL);
    CHECK(strcmp(sb_loop_backend(l), g_backend) == 0);
    return l;
}

static void make_pipe(int p[2])
{
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

/* Run turns (each bounded) until *flag becomes non-zero. */
static void run_until(sb_loop *l, const int *flag)
{
    for (int i = 0; i < 1000 && !*flag; i++)
        CHECK(sb_loop_run_once(l, 100) >= 0);
    CHECK(*flag);
}

/* ---- I/O ----------------------------------------------------------------- */

struct rec {
    int calls;
    int fd;
    int events;
};

static void rec_cb(sb_loop *l, int fd, int events, void *ud)
{
    struct rec *r = ud;
    r->calls++;
    r->fd = fd;
    r->events = events;
}

static void test_new_and_names(void)
{
    sb_loop *l = NULL;
    CHECK_EQ(sb_loop_new(&l, "no-such-backend"), SB_EBACKEND);
    CHECK(l == NULL);
    l = new_loop();
    CHECK_EQ(sb_loop_run_once(l, 0), 0); /* nothing to do, nothing run */
    CHECK_EQ(sb_loop_watch(l, -1, SB_READABLE, rec_cb, NULL), -EBADF);
    sb_loop_free(l);
}

static void test_pipe_readable(void)
{
    sb_loop *l = new_loop();
    int p[2];
    struct rec r = {0};
    make_pipe(p);
    CHECK_EQ(sb_loop_watch(l, p[0], SB_READABLE, rec_cb, &r), 0);
    CHECK_EQ(sb_loop_mask(l, p[0]), SB_READABLE);
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    CHECK_EQ(r.calls, 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(r.calls, 1);
    CHECK_EQ(r.fd, p[0]);
    CHECK(r.events & SB_READABLE);
    CHECK(!(r.events & SB_WRITABLE));
    /* Level-triggered: still readable, called again. */
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(r.calls, 2);
    char c;
    CHECK_EQ(read(p[0], &c, 1), 1);
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    CHECK_EQ(r.calls, 2);
    CHECK_EQ(sb_loop_watch(l, p[0], 0, NULL, NULL), 0);
    CHECK_EQ(sb_loop_mask(l, p[0]), 0);
    close(p[0]);
    close(p[1]);
    sb_loop_free(l);
}

static void test_writable(void)
{
    sb_loop *l = new_loop();
    int p[2];
    struct rec r = {0};
    make_pipe(p);
    CHECK_EQ(sb_loop_watch(l, p[1], SB_WRITABLE, rec_cb, &r), 0);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(r.fd, p[1]);
    CHECK_EQ(r.events, SB_WRITABLE);
    /* Switch to readable on a write end: never ready, no call. */
    CHECK_EQ(sb_loop_watch(l, p[1], SB_READABLE, rec_cb, &r), 0);
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    CHECK_EQ(r.calls, 1);
    CHECK_EQ(sb_loop_watch(l, p[1], 0, NULL, NULL), 0);
    close(p[0]);
    close(p[1]);
    sb_loop_free(l);
}

/* Two readable pipes; whichever callback runs first unwatches the other,
 * which must then not be called in the same turn. */
struct pair {
    int fd[2];
    int calls[2];
};

static void pair_cb(sb_loop *l, int fd, int events, void *ud)
{
    struct pair *p = ud;
    int me = fd == p->fd[1];
    p->calls[me]++;
    CHECK_EQ(sb_loop_watch(l, p->fd[!me], 0, NULL, NULL), 0);
}

static void test_unwatch_in_callback(void)
{
    sb_loop *l = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    struct pair p = {{a[0], b[0]}, {0, 0}};
    CHECK_EQ(write(a[1], "x", 1), 1);
    CHECK_EQ(write(b[1], "x", 1), 1);
    CHECK_EQ(sb_loop_watch(l, a[0], SB_READABLE, pair_cb, &p), 0);
    CHECK_EQ(sb_loop_watch(l, b[0], SB_READABLE, pair_cb, &p), 0);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(p.calls[0] + p.calls[1], 1);
    /* The survivor keeps firing; the other stays silent. */
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK(p.calls[0] == 2 || p.calls[1] == 2);
    for (int i = 0; i < 2; i++)
        sb_loop_watch(l, p.fd[i], 0, NULL, NULL);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
    sb_loop_free(l);
}

/* Whichever of two readable fds runs first unwatches and closes the other
 * and opens a fresh, empty pipe on the same fd number with a new owner.
 * The old readiness must not reach the new owner. */
struct stale {
    int fd[2];
    int calls;
    int newp[2];
    struct rec fresh;
};

/* Whether a test can give a descriptor the number it wants (dup3): not on
 * Windows, where a handle's number is the system's choice. Tests that
 * need it are skipped there, with a line saying so. */
static int can_pick_fd(void)
{
    errno = 0;
    if (dup3(-1, -1, 0) < 0 && errno == ENOSYS) {
        fprintf(stderr, "    (skipped: descriptor numbers cannot be chosen here)\n");
        return 0;
    }
    return 1;
}

static void stale_cb(sb_loop *l, int fd, int events, void *ud)
{
    struct stale *s = ud;
    s->calls++;
    if (s->newp[0] >= 0)
        return;
    int other = fd == s->fd[0] ? s->fd[1] : s->fd[0];
    CHECK_EQ(sb_loop_watch(l, other, 0, NULL, NULL), 0);
    CHECK_EQ(close(other), 0);
    make_pipe(s->newp);
    if (s->newp[0] != other) { /* make it the same number */
        CHECK_EQ(dup3(s->newp[0], other, O_CLOEXEC), other);
        close(s->newp[0]);
        s->newp[0] = other;
    }
    CHECK_EQ(sb_loop_watch(l, other, SB_READABLE, rec_cb, &s->fresh), 0);
}

static void test_stale_guard(void)
{
    if (!can_pick_fd())
        return;
    sb_loop *l = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    struct stale s = {{a[0], b[0]}, 0, {-1, -1}, {0}};
    CHECK_EQ(write(a[1], "x", 1), 1);
    CHECK_EQ(write(b[1], "x", 1), 1);
    CHECK_EQ(sb_loop_watch(l, a[0], SB_READABLE, stale_cb, &s), 0);
    CHECK_EQ(sb_loop_watch(l, b[0], SB_READABLE, stale_cb, &s), 0);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.fresh.calls, 0);
    int reused = s.newp[0];
    int survivor = reused == a[0] ? b[0] : a[0];
    /* The new pipe is empty: still no call for it. */
    CHECK_EQ(sb_loop_run_once(l, 0), 1);
    CHECK_EQ(s.fresh.calls, 0);
    CHECK_EQ(write(s.newp[1], "y", 1), 1);
    CHECK_EQ(sb_loop_run_once(l, 1000), 2);
    CHECK_EQ(s.fresh.calls, 1);
    CHECK_EQ(s.fresh.fd, reused);
    sb_loop_watch(l, reused, 0, NULL, NULL);
    sb_loop_watch(l, survivor, 0, NULL, NULL);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]), close(s.newp[1]);
    sb_loop_free(l);
}

/* An fd closed and reused without an unwatch, re-watched by a new owner
 * with the same mask: it must be registered again (epoll dropped it). */
static void test_reuse_without_unwatch(void)
{
    if (!can_pick_fd())
        return;
    sb_loop *l = new_loop();
    int a[2], b[2];
    struct rec r1 = {0}, r2 = {0};
    make_pipe(a);
    CHECK_EQ(sb_loop_watch(l, a[0], SB_READABLE, rec_cb, &r1), 0);
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    int num = a[0];
    close(a[0]);
    make_pipe(b);
    if (b[0] != num) {
        CHECK_EQ(dup3(b[0], num, O_CLOEXEC), num);
        close(b[0]);
        b[0] = num;
    }
    CHECK_EQ(sb_loop_watch(l, num, SB_READABLE, rec_cb, &r2), 0);
    CHECK_EQ(write(b[1], "z", 1), 1);
    for (int i = 0; i < 10 && r2.calls == 0; i++)
        CHECK(sb_loop_run_once(l, 100) >= 0);
    CHECK_EQ(r2.calls, 1);
    CHECK_EQ(r1.calls, 0);
    sb_loop_watch(l, num, 0, NULL, NULL);
    close(a[1]), close(b[0]), close(b[1]);
    sb_loop_free(l);
}

/* ---- timers -------------------------------------------------------------- */

struct tlog {
    sb_timer *order[2048];
    int n;
};

static struct tlog g_tlog;

static void log_cb(sb_loop *l, sb_timer *t)
{
    CHECK(!sb_timer_active(t));
    CHECK(t->due <= sb_loop_now(l));
    g_tlog.order[g_tlog.n++] = t;
}

static void run_timers_out(sb_loop *l, const int *count, int want)
{
    for (int i = 0; i < 100000 && *count < want; i++)
        CHECK(sb_loop_run_once(l, -1) >= 0);
    CHECK_EQ(*count, want);
}

static void test_timer_order(void)
{
    enum { N = 1000 };
    static sb_timer t[N];
    sb_loop *l = new_loop();
    g_tlog.n = 0;
    srand(42);
    for (int i = 0; i < N; i++) {
        sb_timer_init(&t[i], log_cb, NULL);
        CHECK(!sb_timer_active(&t[i]));
        CHECK_EQ(sb_timer_start(l, &t[i], rand() % 30), 0);
        CHECK(sb_timer_active(&t[i]));
    }
    run_timers_out(l, &g_tlog.n, N);
    for (int i = 1; i < N; i++) {
        const sb_timer *a = g_tlog.order[i - 1], *b = g_tlog.order[i];
        CHECK(a->due < b->due || (a->due == b->due && a->seq < b->seq));
    }
    sb_loop_free(l);
}

static void test_timer_equal_due(void)
{
    enum { N = 200 };
    static sb_timer t[N];
    sb_loop *l = new_loop();
    g_tlog.n = 0;
    /* Started in reverse array order, all due at the same ms (the cached
     * clock does not move between these calls). */
    for (int i = N - 1; i >= 0; i--) {
        sb_timer_init(&t[i], log_cb, NULL);
        CHECK_EQ(sb_timer_start(l, &t[i], 5), 0);
    }
    run_timers_out(l, &g_tlog.n, N);
    for (int i = 0; i < N; i++)
        CHECK(g_tlog.order[i] == &t[N - 1 - i]);
    sb_loop_free(l);
}

/* a stops b (due at the same time, later); c restarts itself with 0 ms
 * three times, firing once per turn; d restarts a stopped e. */
struct rearm {
    sb_timer a, b, c, d, e;
    int na, nb, nc, nd, ne;
};

static void ra_a(sb_loop *l, sb_timer *t)
{
    struct rearm *r = t->data;
    r->na++;
    sb_timer_stop(l, &r->b);
    sb_timer_stop(l, &r->b); /* twice is fine */
    sb_timer_stop(l, t);     /* stopping itself while not active is fine */
}

static void ra_b(sb_loop *l, sb_timer *t)
{
    ((struct rearm *)t->data)->nb++;
}

static void ra_c(sb_loop *l, sb_timer *t)
{
    struct rearm *r = t->data;
    if (++r->nc < 3)
        CHECK_EQ(sb_timer_start(l, t, 0), 0);
}

static void ra_d(sb_loop *l, sb_timer *t)
{
    struct rearm *r = t->data;
    r->nd++;
    CHECK_EQ(sb_timer_start(l, &r->e, 1), 0);
}

static void ra_e(sb_loop *l, sb_timer *t)
{
    ((struct rearm *)t->data)->ne++;
}

static void test_timer_cancel_rearm(void)
{
    sb_loop *l = new_loop();
    struct rearm r = {0};
    sb_timer_init(&r.a, ra_a, &r);
    sb_timer_init(&r.b, ra_b, &r);
    sb_timer_init(&r.c, ra_c, &r);
    sb_timer_init(&r.d, ra_d, &r);
    sb_timer_init(&r.e, ra_e, &r);
    CHECK_EQ(sb_timer_start(l, &r.a, 2), 0);
    CHECK_EQ(sb_timer_start(l, &r.b, 2), 0);
    CHECK_EQ(sb_timer_start(l, &r.c, 0), 0);
    CHECK_EQ(sb_timer_start(l, &r.e, 100000), 0); /* far away ... */
    CHECK_EQ(sb_timer_start(l, &r.e, 100000), 0); /* restart while active */
    CHECK_EQ(sb_timer_start(l, &r.d, 1), 0);      /* ... until d pulls it in */
    /* c: one call per turn, never twice in a turn. */
    CHECK(sb_loop_run_once(l, 0) >= 1);
    CHECK_EQ(r.nc, 1);
    CHECK(sb_loop_run_once(l, 0) >= 1);
    CHECK_EQ(r.nc, 2);
    for (int i = 0; i < 1000 && !(r.na && r.ne && r.nc == 3); i++)
        CHECK(sb_loop_run_once(l, -1) >= 0);
    CHECK_EQ(r.na, 1);
    CHECK_EQ(r.nb, 0);
    CHECK_EQ(r.nc, 3);
    CHECK_EQ(r.nd, 1);
    CHECK_EQ(r.ne, 1);
    CHECK(!sb_timer_active(&r.b) && !sb_timer_active(&r.c) && !sb_timer_active(&r.e));
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    sb_loop_free(l);
}

struct many {
    sb_timer t;
    int fired;
};

static int64_t g_last_due;
static uint64_t g_last_seq;
static int g_many_fired;

static void many_cb(sb_loop *l, sb_timer *t)
{
    struct many *m = (struct many *)t;
    CHECK(t->due > g_last_due || (t->due == g_last_due && t->seq > g_last_seq));
    g_last_due = t->due;
    g_last_seq = t->seq;
    m->fired++;
    g_many_fired++;
}

static void test_100k_timers(void)
{
    enum { N = 100000 };
    struct many *m = calloc(N, sizeof *m);
    CHECK(m != NULL);
    sb_loop *l = new_loop();
    srand(7);
    g_last_due = INT64_MIN;
    g_last_seq = 0;
    g_many_fired = 0;
    for (int i = 0; i < N; i++) {
        sb_timer_init(&m[i].t, many_cb, NULL);
        CHECK_EQ(sb_timer_start(l, &m[i].t, rand() % 50), 0);
    }
    /* Stop every tenth: those must never fire. */
    for (int i = 0; i < N; i += 10)
        sb_timer_stop(l, &m[i].t);
    run_timers_out(l, &g_many_fired, N - N / 10);
    for (int i = 0; i < N; i++)
        CHECK_EQ(m[i].fired, i % 10 == 0 ? 0 : 1);
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    sb_loop_free(l);
    free(m);
}

/* ---- defers -------------------------------------------------------------- */

struct dlog {
    sb_defer d[5];
    int order[16];
    int n;
};

static void dcb(sb_loop *l, sb_defer *d)
{
    struct dlog *g = d->data;
    int id = (int)(d - g->d);
    g->order[g->n++] = id;
    if (id == 0)
        sb_defer_queue(l, &g->d[3]); /* from a defer: next turn */
    if (id == 1)
        sb_defer_cancel(l, &g->d[2]); /* cancel one later in this batch */
}

static void test_defer_order(void)
{
    sb_loop *l = new_loop();
    struct dlog g = {0};
    for (int i = 0; i < 5; i++)
        sb_defer_init(&g.d[i], dcb, &g);
    sb_defer_queue(l, &g.d[0]);
    sb_defer_queue(l, &g.d[1]);
    sb_defer_queue(l, &g.d[0]); /* already queued: no-op */
    sb_defer_queue(l, &g.d[2]);
    sb_defer_queue(l, &g.d[4]);
    sb_defer_cancel(l, &g.d[4]);
    sb_defer_cancel(l, &g.d[4]); /* not queued: no-op */
    /* Queued defers make the turn not block. */
    CHECK_EQ(sb_loop_run_once(l, -1), 2);
    CHECK_EQ(g.n, 2);
    CHECK_EQ(g.order[0], 0);
    CHECK_EQ(g.order[1], 1);
    CHECK(g.d[3].queued);
    CHECK_EQ(sb_loop_run_once(l, -1), 1);
    CHECK_EQ(g.n, 3);
    CHECK_EQ(g.order[2], 3);
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    sb_loop_free(l);
}

/* ---- wakeups, stop, signals ---------------------------------------------- */

struct waker {
    sb_loop *l;
    atomic_int done;
    atomic_int running;
    int wakes;
    int seen_done;
};

static void *wake_thread(void *arg)
{
    struct waker *w = arg;
    for (int i = 0; i < 100000; i++)
        sb_loop_wakeup(w->l);
    atomic_store(&w->done, 1);
    sb_loop_wakeup(w->l);
    return NULL;
}

static void on_wakeup(sb_loop *l, void *ud)
{
    struct waker *w = ud;
    w->wakes++;
    if (atomic_load(&w->done))
        w->seen_done = 1;
}

static void test_wakeup_thread(void)
{
    sb_loop *l = new_loop();
    struct waker w = {.l = l};
    pthread_t th;
    sb_loop_on_wakeup(l, on_wakeup, &w);
    CHECK_EQ(pthread_create(&th, NULL, wake_thread, &w), 0);
    for (int i = 0; i < 1000000 && !w.seen_done; i++)
        CHECK(sb_loop_run_once(l, 1000) >= 0);
    CHECK(w.seen_done);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(w.wakes >= 1 && w.wakes <= 100001);
    /* Nothing pending afterwards: a quiet turn runs nothing. */
    while (sb_loop_run_once(l, 0) > 0)
        ;
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    sb_loop_free(l);
}

static void *stop_thread(void *arg)
{
    struct waker *w = arg;
    while (!atomic_load(&w->running))
        sched_yield();
    sb_loop_stop_async(w->l);
    return NULL;
}

static void mark_running(sb_loop *l, sb_timer *t)
{
    atomic_store(&((struct waker *)t->data)->running, 1);
}

static void test_stop_async_thread(void)
{
    sb_loop *l = new_loop();
    struct waker w = {.l = l};
    sb_timer t;
    pthread_t th;
    /* Once this has fired the loop blocks with nothing else to do: only
     * the stop can end sb_loop_run. */
    sb_timer_init(&t, mark_running, &w);
    CHECK_EQ(sb_timer_start(l, &t, 0), 0);
    CHECK_EQ(pthread_create(&th, NULL, stop_thread, &w), 0);
    CHECK_EQ(sb_loop_run(l), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(atomic_load(&w.running));
    sb_loop_free(l);
}

static void stop_cb(sb_loop *l, sb_timer *t)
{
    (*(int *)t->data)++;
    sb_loop_stop(l);
}

static void test_stop(void)
{
    sb_loop *l = new_loop();
    int n = 0;
    sb_timer t;
    sb_timer_init(&t, stop_cb, &n);
    CHECK_EQ(sb_timer_start(l, &t, 1), 0);
    CHECK_EQ(sb_loop_run(l), 0);
    CHECK_EQ(n, 1);
    sb_loop_free(l);
}

static int g_sig_calls;
static int g_sig_no;

static void sig_cb(sb_loop *l, int signo, void *ud)
{
    g_sig_calls++;
    g_sig_no = signo;
    CHECK(ud == (void *)l);
}

static void test_signal(void)
{
    sb_loop *l = new_loop();
    sb_loop *other = new_loop();
    g_sig_calls = 0;
    CHECK_EQ(sb_loop_signal(l, SIGUSR1, sig_cb, l), 0);
    CHECK_EQ(sb_loop_signal(other, SIGUSR1, sig_cb, other), -EBUSY);
    CHECK_EQ(sb_loop_signal(l, SIGKILL, sig_cb, l), -EINVAL);
    errno = 1234;
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(errno, 1234); /* the handler saved and restored errno */
    CHECK_EQ(g_sig_calls, 0); /* not from inside the handler */
    run_until(l, &g_sig_calls);
    CHECK_EQ(g_sig_calls, 1);
    CHECK_EQ(g_sig_no, SIGUSR1);
    /* Released: another loop may take it; freeing it restores the old
     * disposition. */
    CHECK_EQ(sb_loop_signal(l, SIGUSR1, NULL, NULL), 0);
    CHECK_EQ(sb_loop_signal(other, SIGUSR1, sig_cb, other), 0);
    g_sig_calls = 0;
    CHECK_EQ(raise(SIGUSR1), 0);
    run_until(other, &g_sig_calls);
    CHECK_EQ(g_sig_calls, 1);
    sb_loop_free(other);
    struct sigaction sa;
    CHECK_EQ(sigaction(SIGUSR1, NULL, &sa), 0);
    CHECK(sa.sa_handler == SIG_DFL);
    sb_loop_free(l);
}

/* ---- select specifics (and dead fds under poll) -------------------------- */

static void test_fdsetsize(void)
{
    struct rlimit rl;

    if (!can_pick_fd()) /* Windows: tests/windows/test_select_win32.c */
        return;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur <= FD_SETSIZE + 8) {
        if (rl.rlim_max <= FD_SETSIZE + 8) {
            fprintf(stderr, "    skipped: RLIMIT_NOFILE hard limit %llu\n",
                    (unsigned long long)rl.rlim_max);
            return;
        }
        rl.rlim_cur = FD_SETSIZE + 64;
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    sb_loop *l = new_loop();
    int p[2];
    struct rec low = {0}, high = {0};
    make_pipe(p);
    int big = fcntl(p[0], F_DUPFD_CLOEXEC, FD_SETSIZE);
    CHECK(big >= FD_SETSIZE);
    int r = sb_loop_watch(l, big, SB_READABLE, rec_cb, &high);
    if (strcmp(g_backend, "select") == 0) {
        CHECK_EQ(r, SB_EFDSETSIZE);
        CHECK_EQ(sb_loop_mask(l, big), 0);
        CHECK(strcmp(sb_strerror(r), "unknown error") != 0);
    } else {
        CHECK_EQ(r, 0);
    }
    CHECK_EQ(sb_loop_watch(l, p[0], SB_READABLE, rec_cb, &low), 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK(sb_loop_run_once(l, 1000) >= 1);
    CHECK_EQ(low.calls, 1);
    CHECK_EQ(high.calls, r == 0 ? 1 : 0);
    sb_loop_watch(l, p[0], 0, NULL, NULL);
    sb_loop_watch(l, big, 0, NULL, NULL);
    close(big), close(p[0]), close(p[1]);
    sb_loop_free(l);
}

/* Whether this system's poll reports a descriptor closed behind its back
 * (POLLNVAL, or an error): Linux does; WSAPoll under Wine just leaves it
 * out, so the loop can only see it die where this holds. */
static int poll_sees_closed(void)
{
    int p[2], q[2];
    make_pipe(p);
    make_pipe(q);
    struct pollfd pf[2] = {{p[0], POLLIN, 0}, {q[0], POLLIN, 0}};
    close(p[0]);
    int r = poll(pf, 2, 0);
    close(p[1]), close(q[0]), close(q[1]);
    if (r < 0 || (pf[0].revents & POLLNVAL))
        return 1;
    fprintf(stderr, "    (skipped: poll here does not report a closed descriptor)\n");
    return 0;
}

/* The owner reads on SB_ERROR, sees EBADF and unwatches, as conn does. */
static void dead_cb(sb_loop *l, int fd, int events, void *ud)
{
    struct rec *r = ud;
    char c;
    rec_cb(l, fd, events, ud);
    if (read(fd, &c, 1) < 0 && errno == EBADF)
        CHECK_EQ(sb_loop_watch(l, fd, 0, NULL, NULL), 0);
    (void)r;
}

static void test_dead_fd(void)
{
    /* epoll drops a closed fd from its set; an armed uring poll keeps the
     * file open until it is removed: neither ever sees the fd die. */
    if (strcmp(g_backend, "select") != 0 && strcmp(g_backend, "poll") != 0)
        return;
    if (strcmp(g_backend, "poll") == 0 && !poll_sees_closed())
        return;
    sb_loop *l = new_loop();
    int dead[2], live[2];
    struct rec d = {0}, v = {0};
    make_pipe(dead);
    make_pipe(live);
    CHECK_EQ(sb_loop_watch(l, dead[0], SB_READABLE, dead_cb, &d), 0);
    CHECK_EQ(sb_loop_watch(l, live[0], SB_READABLE, rec_cb, &v), 0);
    CHECK_EQ(close(dead[0]), 0); /* behind the loop's back */
    CHECK_EQ(fcntl(dead[0], F_GETFD), -1);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(d.calls, 1);
    CHECK_EQ(d.fd, dead[0]);
    CHECK_EQ(d.events, SB_READABLE | SB_ERROR);
    CHECK_EQ(sb_loop_mask(l, dead[0]), 0);
    /* The loop goes on: no spin on the dead fd, the live one works. */
    CHECK_EQ(sb_loop_run_once(l, 0), 0);
    CHECK_EQ(write(live[1], "x", 1), 1);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(v.calls, 1);
    CHECK_EQ(d.calls, 1);
    sb_loop_watch(l, live[0], 0, NULL, NULL);
    close(dead[1]), close(live[0]), close(live[1]);
    sb_loop_free(l);
}

/* Hangup: the write end closed. The reader hears it as readable (EOF),
 * possibly with SB_ERROR, never as writable it did not ask for. */
static void test_hangup(void)
{
    sb_loop *l = new_loop();
    int p[2];
    struct rec r = {0};
    make_pipe(p);
    CHECK_EQ(sb_loop_watch(l, p[0], SB_READABLE, rec_cb, &r), 0);
    close(p[1]);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK(r.events & SB_READABLE);
    CHECK(!(r.events & SB_WRITABLE));
    sb_loop_watch(l, p[0], 0, NULL, NULL);
    close(p[0]);
    sb_loop_free(l);
}

/* SB_EDGE: where the backend honours it (epoll), a watcher that leaves
 * bytes unread is not called again until more arrive or it asks with
 * sb_loop_again; elsewhere the flag is dropped and the watcher stays
 * level-triggered. An again request is one-shot and dies with an unwatch. */
struct edge_rec {
    int calls;
    int events;
    int again; /* ask for another call */
};

static void edge_cb(sb_loop *l, int fd, int events, void *ud)
{
    struct edge_rec *r = ud;
    r->calls++;
    r->events = events;
    if (r->again)
        sb_loop_again(l, fd, SB_READABLE);
}

static void test_edge(void)
{
    sb_loop *l = new_loop();
    int edge = strcmp(g_backend, "epoll") == 0;
    struct edge_rec r = {0};
    int sv[2];
    char buf[8];

    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(sb_loop_watch(l, sv[0], SB_READABLE | SB_EDGE, edge_cb, &r), 0);
    CHECK_EQ(sb_loop_mask(l, sv[0]), SB_READABLE | (edge ? SB_EDGE : 0));
    CHECK_EQ(write(sv[1], "abcd", 4), 4);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(r.calls, 1);
    CHECK(!(r.events & SB_HUP)); /* nothing has hung up */
    /* Not read: an edge watcher hears nothing more, a level one does. */
    sb_loop_run_once(l, 20);
    CHECK_EQ(r.calls, edge ? 1 : 2);
    /* More bytes are a new edge. */
    CHECK_EQ(write(sv[1], "e", 1), 1);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK_EQ(r.calls, edge ? 2 : 3);
    /* sb_loop_again: called next turn without waiting, and only once. */
    r.calls = 0;
    r.again = 1;
    CHECK_EQ(write(sv[1], "f", 1), 1);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    r.again = 0;
    CHECK_EQ(sb_loop_run_once(l, edge ? -1 : 1000), 1); /* -1: a hang if not queued */
    CHECK_EQ(r.calls, 2);
    CHECK_EQ(r.events, SB_READABLE);
    sb_loop_run_once(l, 20);
    CHECK_EQ(r.calls, edge ? 2 : 3);
    /* An again request dies with an unwatch. */
    CHECK_EQ(read(sv[0], buf, sizeof buf), 6);
    r.calls = 0;
    sb_loop_again(l, sv[0], SB_READABLE);
    CHECK_EQ(sb_loop_watch(l, sv[0], 0, NULL, NULL), 0);
    CHECK_EQ(sb_loop_watch(l, sv[0], SB_READABLE | SB_EDGE, edge_cb, &r), 0);
    sb_loop_run_once(l, 20);
    CHECK_EQ(r.calls, 0);
    /* The peer's shutdown: SB_HUP for an edge watcher (the read side may
     * still hold bytes, and no later edge will tell of the end). */
    CHECK_EQ(write(sv[1], "g", 1), 1);
    shutdown(sv[1], SHUT_WR);
    CHECK_EQ(sb_loop_run_once(l, 1000), 1);
    CHECK(r.events & SB_READABLE);
    CHECK_EQ((r.events & SB_HUP) != 0, edge);
    sb_loop_watch(l, sv[0], 0, NULL, NULL);
    close(sv[0]);
    close(sv[1]);
    sb_loop_free(l);
}

/* The spare-buffer slot: empty at first, hands back only a buffer large
 * enough, keeps the larger of two, refuses (frees) oversized ones. */
static void test_spare(void)
{
    sb_loop *l = new_loop();
    size_t size = 0;
    void *a = malloc(100), *b = malloc(50), *big = malloc(SB_SPARE_MAX + 1);

    CHECK(sb__loop_spare_take(l, 1, &size) == NULL);
    sb__loop_spare_give(l, a, 100);
    CHECK(sb__loop_spare_take(l, 101, &size) == NULL); /* too small: stays */
    CHECK(sb__loop_spare_take(l, 60, &size) == a);
    CHECK_EQ(size, 100);
    CHECK(sb__loop_spare_take(l, 1, &size) == NULL); /* taken */
    sb__loop_spare_give(l, a, 100);
    sb__loop_spare_give(l, b, 50); /* smaller than the held one: freed */
    CHECK(sb__loop_spare_take(l, 1, &size) == a);
    sb__loop_spare_give(l, big, SB_SPARE_MAX + 1); /* oversized: freed */
    CHECK(sb__loop_spare_take(l, 1, &size) == NULL);
    sb__loop_spare_give(l, a, 100); /* freed with the loop */
    sb_loop_free(l);
}

/* sb_loop_post from two threads: every function runs on the loop's thread,
 * each thread's in the order posted, none inside sb_loop_post; one left
 * pending runs in sb_loop_free. */
#define POSTS 2000
typedef struct {
    sb_loop *l;
    pthread_t loop_thread;
    int seen[2];      /* loop thread: the next seq expected per poster */
    int total;
    int bad;
} post_state;

typedef struct {
    post_state *ps;
    int who, seq;
} post_arg;

static void post_fn(sb_loop *l, void *ud)
{
    post_arg *a = ud;
    post_state *ps = a->ps;
    if (!pthread_equal(pthread_self(), ps->loop_thread) || a->seq != ps->seen[a->who])
        ps->bad++;
    ps->seen[a->who]++;
    if (++ps->total == 2 * POSTS)
        sb_loop_stop(l);
    free(a);
}

static void *post_thread(void *p)
{
    post_arg *base = p;
    for (int i = 0; i < POSTS; i++) {
        post_arg *a = malloc(sizeof(*a));
        CHECK(a != NULL);
        a->ps = base->ps;
        a->who = base->who;
        a->seq = i;
        CHECK_EQ(sb_loop_post(base->ps->l, post_fn, a), 0);
    }
    return NULL;
}

static void pending_fn(sb_loop *l, void *ud)
{
    (*(int *)ud)++;
}

static void test_post(void)
{
    post_state ps;
    post_arg args[2];
    pthread_t th[2];
    int ran = 0;

    memset(&ps, 0, sizeof(ps));
    CHECK_EQ(sb_loop_new(&ps.l, g_backend), 0);
    ps.loop_thread = pthread_self();
    for (int i = 0; i < 2; i++) {
        args[i].ps = &ps;
        args[i].who = i;
        CHECK_EQ(pthread_create(&th[i], NULL, post_thread, &args[i]), 0);
    }
    CHECK_EQ(sb_loop_run(ps.l), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(ps.total, 2 * POSTS);
    CHECK_EQ(ps.bad, 0);
    /* Not run inside the call, even on the loop's own thread... */
    CHECK_EQ(sb_loop_post(ps.l, pending_fn, &ran), 0);
    CHECK_EQ(ran, 0);
    /* ... and run by sb_loop_free when never run by the loop. */
    sb_loop_free(ps.l);
    CHECK_EQ(ran, 1);
}

int main(void)
{
    const char *const *names = sb_loop_backends();
    sb_loop *ep = NULL;
    /* Where epoll is built, it is the default. */
    if (sb_loop_new(&ep, "epoll") == 0)
        CHECK(names[0] != NULL && strcmp(names[0], "epoll") == 0);
    sb_loop_free(ep);
    for (int i = 0; names[i] != NULL; i++) {
        g_backend = names[i];
        if (!sb_test_backend_ok(g_backend))
            continue;
        fprintf(stderr, "backend %s\n", g_backend);
        RUN(test_new_and_names);
        RUN(test_pipe_readable);
        RUN(test_writable);
        RUN(test_unwatch_in_callback);
        RUN(test_stale_guard);
        RUN(test_reuse_without_unwatch);
        RUN(test_hangup);
        RUN(test_edge);
        RUN(test_timer_order);
        RUN(test_timer_equal_due);
        RUN(test_timer_cancel_rearm);
        RUN(test_100k_timers);
        RUN(test_defer_order);
        RUN(test_wakeup_thread);
        RUN(test_stop_async_thread);
        RUN(test_post);
        RUN(test_stop);
        RUN(test_signal);
        RUN(test_fdsetsize);
        RUN(test_dead_fd);
        RUN(test_spare);
    }
    fprintf(stderr, "ok\n");
    return 0;
}
