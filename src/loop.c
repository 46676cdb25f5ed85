/* loop: the backend-agnostic reactor core (see loop.h, loop_int.h).
 *
 * Divisions: the loop object and backend choice; watchers (fd-indexed
 * table, stale-callback guard); the turn (wait, dispatch, timers, defers);
 * timers (binary min-heap); defers; wakeups (eventfd); signals (sigaction
 * and a self-pipe); the object (its head is the hot part conn reads,
 * loop_int.h).
 *
 * Cost model, because the event-model server must match a bare epoll loop:
 * a turn with nothing to change makes exactly one system call (the
 * backend's wait) plus one vDSO clock read; a watcher whose mask does not
 * change costs no system call; a timer check is one compare of the heap top.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "switchboard/error.h"
#include "switchboard/loop.h"
#include "loop_int.h"
#include "sys.h"

#define SB_MIN_SLOTS 64             /* first watcher table size */
#define SB__LISTED 0x100            /* in sb__watcher.again */

/* One slot per fd number. */
struct sb__watcher {
    sb_io_cb cb;
    void *ud;
    int mask;       /* SB_READABLE | SB_WRITABLE (| SB_EDGE), 0 = not watched */
    int again;      /* events asked for by sb_loop_again, not yet delivered,
                     * | SB__LISTED while the fd is in the loop's again list */
    uint64_t stamp; /* turn in which the slot last changed owner */
};

/* Signal state, allocated on the first sb_loop_signal(). */
struct sb__signals {
    int rfd, wfd; /* self-pipe: the handler writes signo bytes to wfd */
    sb_signal_cb cb[NSIG];
    void *ud[NSIG];
    struct sigaction old[NSIG]; /* disposition to restore */
};

struct sb_loop {
    struct sb__loop_hot hot;   /* first: now, scratch, spare (loop_int.h) */
    const struct sb__backend *be;
    void *bs;                  /* backend state */
    struct sb__watcher *w;     /* fd-indexed, cap slots */
    struct sb__fired *fired;   /* wait() output, cap entries */
    int *again;                /* fds for sb_loop_again, 2 * cap entries */
    void *info;                /* sb__loop_info: a cutter's per-message block */
    size_t info_size;
    int nagain;
    int cap;                   /* slots in w and fired */
    uint64_t turn;             /* incremented once per turn, after wait */
    int stop;                  /* sb_loop_stop: leave run after this turn */
    int ncb;                   /* callbacks run in this turn */
    sb_timer **heap;           /* min-heap on (due, seq) */
    size_t nheap, heapcap;
    uint64_t timer_seq;        /* next start's seq */
    sb_defer *dhead, *dtail;   /* queued for the end of this turn */
    sb_defer *drun;            /* the batch being run now */
    int wake_fd;               /* eventfd */
    atomic_int wake_pending;   /* a wakeup is written and not yet read */
    atomic_int stop_async;     /* sb_loop_stop_async was called */
    sb_wakeup_cb wake_cb;
    void *wake_ud;
    struct sb__post *_Atomic posts; /* sb_loop_post: a lock-free stack, newest first */
    struct sb__signals *sig;
    sb__link conns;            /* open connections (conn_event.c), for sb_conn_walk */
};

/* Backends in order of preference; the first is the default. */
static const struct sb__backend *const sb__backends[] = {
#ifdef SB_WITH_EPOLL
    &sb__backend_epoll,
#endif
    &sb__backend_poll,
    &sb__backend_select,
#ifdef SB_WITH_URING
    &sb__backend_uring,
#endif
    NULL,
};

static const char *const sb__backend_names[] = {
#ifdef SB_WITH_EPOLL
    "epoll",
#endif
    "poll",
    "select",
#ifdef SB_WITH_URING
    "uring",
#endif
    NULL,
};

const char *const *sb_loop_backends(void)
{
    return sb__backend_names;
}

static const struct sb__backend *find_backend(const char *name)
{
    if (name == NULL)
        return sb__backends[0];
    for (int i = 0; sb__backends[i] != NULL; i++)
        if (strcmp(sb__backends[i]->name, name) == 0)
            return sb__backends[i];
    return NULL;
}

/* ---- watchers ---------------------------------------------------------- */

/* Grow the watcher table (and the fired array, which must hold one entry
 * per possible fd) so that fd has a slot. */
static int grow(sb_loop *l, int fd)
{
    size_t n = l->cap > 0 ? (size_t)l->cap : SB_MIN_SLOTS;
    while (n <= (size_t)fd)
        n *= 2;
    if (n > INT_MAX)
        return -ENOMEM;
    struct sb__watcher *w = sb__realloc(l->w, n * sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    memset(w + l->cap, 0, (n - (size_t)l->cap) * sizeof *w);
    l->w = w;
    /* l->cap grows only once both arrays did: a failure here leaves the
     * bigger w unused, which the next grow reuses. */
    struct sb__fired *f = sb__realloc(l->fired, n * sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    l->fired = f;
    /* Each fd is listed at most once, plus once more while the list is
     * being run (an fd run and listed again by its callback). */
    int *a = sb__realloc(l->again, 2 * n * sizeof *a);
    if (a == NULL)
        return -ENOMEM;
    l->again = a;
    l->cap = (int)n;
    return 0;
}

int sb_loop_watch(sb_loop *l, int fd, int mask, sb_io_cb cb, void *ud)
{
    if (fd < 0)
        return -EBADF;
    /* SB_EDGE is kept only where the backend honours it, and only with
     * something to watch. */
    int io = mask & (SB_READABLE | SB_WRITABLE);
    mask = io == 0 ? 0 : io | (l->be->edge ? mask & SB_EDGE : 0);
    if (fd >= l->cap) {
        if (mask == 0)
            return 0;
        int r = grow(l, fd);
        if (r < 0)
            return r;
    }
    struct sb__watcher *w = &l->w[fd];
    /* A different owner taking an fd still marked watched means it was
     * closed and reused without an unwatch: re-register it, and stamp the
     * slot so events seen for the old file are not delivered. */
    int new_owner = w->mask != 0 && mask != 0 && (w->cb != cb || w->ud != ud);
    if (mask != w->mask || new_owner) {
        int r = l->be->set(l->bs, fd, w->mask, mask);
        if (r < 0 && mask != 0)
            return r;
    }
    if ((w->mask == 0) != (mask == 0) || new_owner) {
        w->stamp = l->turn;
        w->again &= SB__LISTED; /* asked for by the old owner; the entry stays */
    }
    w->mask = mask;
    w->cb = cb;
    w->ud = ud;
    return 0;
}

void sb_loop_again(sb_loop *l, int fd, int events)
{
    if (fd < 0 || fd >= l->cap)
        return;
    struct sb__watcher *w = &l->w[fd];
    events &= w->mask & (SB_READABLE | SB_WRITABLE);
    if (!(w->mask & SB_EDGE) || events == 0)
        return; /* level-triggered: reported again anyway while ready */
    if (!(w->again & SB__LISTED))
        l->again[l->nagain++] = fd;
    w->again |= events | SB__LISTED;
}

int sb_loop_mask(const sb_loop *l, int fd)
{
    if (fd < 0 || fd >= l->cap)
        return 0;
    return l->w[fd].mask;
}

/* ---- timers ------------------------------------------------------------ */

static int timer_less(const sb_timer *a, const sb_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_put(sb_loop *l, size_t i, sb_timer *t)
{
    l->heap[i] = t;
    t->heap_index = i;
}

static void sift_up(sb_loop *l, size_t i)
{
    sb_timer *t = l->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_less(t, l->heap[p]))
            break;
        heap_put(l, i, l->heap[p]);
        i = p;
    }
    heap_put(l, i, t);
}

static void sift_down(sb_loop *l, size_t i)
{
    sb_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->nheap)
            break;
        if (c + 1 < l->nheap && timer_less(l->heap[c + 1], l->heap[c]))
            c++;
        if (!timer_less(l->heap[c], t))
            break;
        heap_put(l, i, l->heap[c]);
        i = c;
    }
    heap_put(l, i, t);
}

/* Restore the heap order around slot i, whose key changed either way. */
static void heap_fix(sb_loop *l, size_t i)
{
    if (i > 0 && timer_less(l->heap[i], l->heap[(i - 1) / 2]))
        sift_up(l, i);
    else
        sift_down(l, i);
}

static void heap_remove(sb_loop *l, sb_timer *t)
{
    size_t i = t->heap_index;
    sb_timer *last = l->heap[--l->nheap];
    t->heap_index = SIZE_MAX;
    if (last == t)
        return;
    heap_put(l, i, last);
    heap_fix(l, i);
}

static int heap_reserve(sb_loop *l)
{
    if (l->nheap < l->heapcap)
        return 0;
    size_t n = l->heapcap > 0 ? l->heapcap * 2 : 64;
    sb_timer **h = sb__realloc(l->heap, n * sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    l->heap = h;
    l->heapcap = n;
    return 0;
}

void sb_timer_init(sb_timer *t, sb_timer_cb cb, void *data)
{
    memset(t, 0, sizeof *t);
    t->heap_index = SIZE_MAX;
    t->cb = cb;
    t->data = data;
}

int sb_timer_start(sb_loop *l, sb_timer *t, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms > INT64_MAX / 4) /* far enough to be "never", and no overflow */
        ms = INT64_MAX / 4;
    if (!sb_timer_active(t)) {
        int r = heap_reserve(l);
        if (r < 0)
            return r;
        heap_put(l, l->nheap++, t);
    }
    t->due = l->hot.now + ms;
    t->seq = l->timer_seq++;
    heap_fix(l, t->heap_index);
    return 0;
}

void sb_timer_stop(sb_loop *l, sb_timer *t)
{
    if (sb_timer_active(t))
        heap_remove(l, t);
}

/* Run every timer due by now that was started before this phase began: a
 * timer (re)started from a timer callback with 0 ms waits for the next
 * turn instead of looping here forever. Started-during-this-phase timers
 * have seq >= limit and due >= now, so they sort after every older due
 * timer and the first one reached ends the phase. */
static void run_timers(sb_loop *l)
{
    uint64_t limit = l->timer_seq;
    while (l->nheap > 0) {
        sb_timer *t = l->heap[0];
        if (t->due > l->hot.now || t->seq >= limit)
            break;
        heap_remove(l, t);
        t->cb(l, t);
        l->ncb++;
    }
}

/* ---- defers ------------------------------------------------------------ */

void sb_defer_init(sb_defer *d, sb_defer_cb cb, void *data)
{
    d->next = NULL;
    d->cb = cb;
    d->data = data;
    d->queued = 0;
}

void sb_defer_queue(sb_loop *l, sb_defer *d)
{
    if (d->queued)
        return;
    d->queued = 1;
    d->next = NULL;
    if (l->dtail != NULL)
        l->dtail->next = d;
    else
        l->dhead = d;
    l->dtail = d;
}

/* Unlink d from the list at *head; returns whether it was there. Linear,
 * which is fine: queues are short and cancel is rare. */
static int defer_unlink(sb_defer **head, sb_defer **tail, sb_defer *d)
{
    sb_defer *prev = NULL;
    for (sb_defer **pp = head; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
        if (*pp != d)
            continue;
        *pp = d->next;
        if (tail != NULL && *tail == d)
            *tail = prev;
        return 1;
    }
    return 0;
}

void sb_defer_cancel(sb_loop *l, sb_defer *d)
{
    if (!d->queued)
        return;
    if (!defer_unlink(&l->drun, NULL, d))
        defer_unlink(&l->dhead, &l->dtail, d);
    d->queued = 0;
    d->next = NULL;
}

/* Run the batch queued so far; defers queued meanwhile wait for the next
 * turn (which then does not block). */
static void run_defers(sb_loop *l)
{
    sb_defer *d;
    l->drun = l->dhead;
    l->dhead = l->dtail = NULL;
    while ((d = l->drun) != NULL) {
        l->drun = d->next;
        d->next = NULL;
        d->queued = 0;
        d->cb(l, d);
        l->ncb++;
    }
}

/* ---- the turn ---------------------------------------------------------- */

int64_t sb_loop_now(const sb_loop *l)
{
    return l->hot.now;
}

void sb_loop_update_time(sb_loop *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    l->hot.now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The wait bound: the caller's, shortened to the nearest timer; zero when
 * defers are waiting to run. */
static int wait_timeout(const sb_loop *l, int timeout_ms)
{
    if (l->dhead != NULL || l->nagain > 0)
        return 0;
    if (l->nheap == 0)
        return timeout_ms;
    int64_t d = l->heap[0]->due - l->hot.now;
    if (d < 0)
        d = 0;
    if (timeout_ms >= 0 && timeout_ms < d)
        return timeout_ms;
    return d > INT_MAX ? INT_MAX : (int)d;
}

/* Call back every fired fd whose slot is still owned by the watcher the
 * backend saw. The slot is re-read on each step: a callback may unwatch,
 * close and reuse any fd, or grow the table. */
static void dispatch_io(sb_loop *l, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = l->fired[i].fd;
        if (fd < 0 || fd >= l->cap)
            continue;
        struct sb__watcher *w = &l->w[fd];
        if (w->mask == 0 || w->stamp == l->turn)
            continue;
        int ev = l->fired[i].events & (w->mask | SB_ERROR | (w->mask & SB_EDGE ? SB_HUP : 0));
        if ((ev & w->mask) == 0)
            continue;
        w->cb(l, fd, ev, w->ud);
        l->ncb++;
    }
}

/* The first k listed fds: those listed by sb_loop_again before this turn.
 * Any listed during this turn go after them, for the next turn; an fd
 * unwatched or given to another owner meanwhile has its request dropped
 * (no event bits left in w->again). */
static void dispatch_again(sb_loop *l, int k)
{
    for (int i = 0; i < k; i++) {
        int fd = l->again[i];
        struct sb__watcher *w = &l->w[fd];
        int ev = w->again & w->mask & (SB_READABLE | SB_WRITABLE);
        w->again = 0;
        if (ev == 0)
            continue;
        w->cb(l, fd, ev, w->ud);
        l->ncb++;
    }
    l->nagain -= k;
    memmove(l->again, l->again + k, (size_t)l->nagain * sizeof *l->again);
}

int sb_loop_run_once(sb_loop *l, int timeout_ms)
{
    int n = l->be->wait(l->bs, wait_timeout(l, timeout_ms), l->fired, l->cap);
    sb_loop_update_time(l);
    if (n < 0)
        return n;
    l->turn++;
    l->ncb = 0;
    int k = l->nagain;
    if (l->hot.ring != NULL)
        l->ncb += l->hot.ring->complete(l->bs);
    dispatch_io(l, n);
    if (k > 0)
        dispatch_again(l, k);
    run_timers(l);
    run_defers(l);
    return l->ncb;
}

static int should_stop(sb_loop *l)
{
    if (atomic_load_explicit(&l->stop_async, memory_order_relaxed) &&
        atomic_exchange(&l->stop_async, 0))
        l->stop = 1;
    return l->stop;
}

int sb_loop_run(sb_loop *l)
{
    int r = 0;
    while (!should_stop(l)) {
        r = sb_loop_run_once(l, -1);
        if (r < 0)
            break;
    }
    if (l->hot.ring != NULL)
        l->hot.ring->flush(l->bs);
    l->stop = 0;
    return r < 0 ? r : 0;
}

void sb_loop_stop(sb_loop *l)
{
    l->stop = 1;
}

/* ---- wakeups ----------------------------------------------------------- */

/* A function posted from another thread (sb_loop_post). */
struct sb__post {
    struct sb__post *next;
    sb_post_cb fn;
    void *ud;
};

/* Any thread: push onto the stack (one compare-and-swap, no lock), then
 * wake the loop. The loop takes the whole stack at once with an exchange,
 * so the pop side has no ABA problem. */
int sb_loop_post(sb_loop *l, sb_post_cb fn, void *ud)
{
    struct sb__post *p = sb__malloc(sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->fn = fn;
    p->ud = ud;
    p->next = atomic_load_explicit(&l->posts, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&l->posts, &p->next, p, memory_order_release,
                                                  memory_order_relaxed))
        ;
    sb_loop_wakeup(l);
    return 0;
}

/* Run what was posted, oldest first (the stack is reversed). Returns how
 * many ran. */
static int run_posts(sb_loop *l)
{
    struct sb__post *p = atomic_exchange_explicit(&l->posts, NULL, memory_order_acquire);
    struct sb__post *rev = NULL;
    int n = 0;

    while (p != NULL) {
        struct sb__post *next = p->next;
        p->next = rev;
        rev = p;
        p = next;
    }
    while (rev != NULL) {
        struct sb__post *next = rev->next;
        rev->fn(l, rev->ud);
        sb__free(rev);
        rev = next;
        n++;
    }
    return n;
}

/* Async-signal-safe: an atomic store and write(2), nothing else. The
 * write goes straight to libc, not through sb__sys, which tests may point
 * at code that is not safe in a handler. */
void sb_loop_stop_async(sb_loop *l)
{
    uint64_t one = 1;
    atomic_store(&l->stop_async, 1);
    ssize_t r = write(l->wake_fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is already non-zero, the loop wakes */
}

/* Coalesced: only the caller that flips wake_pending writes. The loop
 * clears the flag before calling wake_cb, so work posted before any
 * wakeup that saw the flag set is seen by that callback. */
void sb_loop_wakeup(sb_loop *l)
{
    uint64_t one = 1;
    if (atomic_exchange(&l->wake_pending, 1))
        return;
    ssize_t r = sb__sys.write(l->wake_fd, &one, sizeof one);
    (void)r;
}

void sb_loop_on_wakeup(sb_loop *l, sb_wakeup_cb cb, void *ud)
{
    l->wake_cb = cb;
    l->wake_ud = ud;
}

/* Internal watcher on the eventfd; counts as a callback only when the
 * owner's wake_cb runs. */
static void on_wake(sb_loop *l, int fd, int events, void *ud)
{
    uint64_t v;
    ssize_t r = sb__sys.read(fd, &v, sizeof v);
    (void)r;
    atomic_store(&l->wake_pending, 0);
    should_stop(l);
    l->ncb--;
    l->ncb += run_posts(l);
    if (l->wake_cb != NULL) {
        l->wake_cb(l, l->wake_ud);
        l->ncb++;
    }
}

/* ---- signals ----------------------------------------------------------- */

/* Per signal, the write end of the owning loop's self-pipe plus one (0 =
 * not owned), read by the handler; and the owner, for -EBUSY. */
static atomic_int sig_wfd[NSIG];
static sb_loop *sig_owner[NSIG];

static void sig_handler(int signo)
{
    int saved = errno;
    int fd = atomic_load(&sig_wfd[signo]) - 1;
    if (fd >= 0) {
        unsigned char b = (unsigned char)signo;
        ssize_t r = write(fd, &b, 1); /* full pipe: signals coalesce */
        (void)r;
    }
    errno = saved;
}

static void on_signal_pipe(sb_loop *l, int fd, int events, void *ud)
{
    unsigned char buf[64];
    l->ncb--;
    ssize_t n = sb__sys.read(fd, buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) {
        int signo = buf[i];
        if (signo < NSIG && l->sig->cb[signo] != NULL) {
            l->sig->cb[signo](l, signo, l->sig->ud[signo]);
            l->ncb++;
        }
    }
}

static int signals_setup(sb_loop *l)
{
    int p[2];
    if (l->sig != NULL)
        return 0;
    struct sb__signals *s = sb__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        int e = -errno;
        sb__free(s);
        return e;
    }
    s->rfd = p[0];
    s->wfd = p[1];
    l->sig = s;
    int r = sb_loop_watch(l, s->rfd, SB_READABLE, on_signal_pipe, NULL);
    if (r < 0) {
        sb__sys.close(s->rfd);
        sb__sys.close(s->wfd);
        sb__free(s);
        l->sig = NULL;
    }
    return r;
}

static void signal_release(sb_loop *l, int signo)
{
    sigaction(signo, &l->sig->old[signo], NULL);
    atomic_store(&sig_wfd[signo], 0);
    sig_owner[signo] = NULL;
    l->sig->cb[signo] = NULL;
    l->sig->ud[signo] = NULL;
}

static int signal_take(sb_loop *l, int signo)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_handler;
    sa.sa_flags = SA_RESTART; /* other blocking calls in the process go on */
    sigfillset(&sa.sa_mask);
    /* The pipe is published before the handler can run. */
    atomic_store(&sig_wfd[signo], l->sig->wfd + 1);
    if (sigaction(signo, &sa, &l->sig->old[signo]) < 0) {
        atomic_store(&sig_wfd[signo], 0);
        return -errno;
    }
    sig_owner[signo] = l;
    return 0;
}

int sb_loop_signal(sb_loop *l, int signo, sb_signal_cb cb, void *ud)
{
    if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
        return -EINVAL;
    if (sig_owner[signo] != NULL && sig_owner[signo] != l)
        return -EBUSY;
    if (cb == NULL) {
        if (sig_owner[signo] == l)
            signal_release(l, signo);
        return 0;
    }
    int r = signals_setup(l);
    if (r == 0 && sig_owner[signo] != l)
        r = signal_take(l, signo);
    if (r < 0)
        return r;
    l->sig->cb[signo] = cb;
    l->sig->ud[signo] = ud;
    return 0;
}

static void signals_free(sb_loop *l)
{
    if (l->sig == NULL)
        return;
    for (int s = 1; s < NSIG; s++)
        if (sig_owner[s] == l)
            signal_release(l, s);
    sb__sys.close(l->sig->rfd);
    sb__sys.close(l->sig->wfd);
    sb__free(l->sig);
    l->sig = NULL;
}

/* ---- the loop object --------------------------------------------------- */

_Static_assert(offsetof(struct sb_loop, hot) == 0, "sb__loop_hot (loop_int.h) reads the head");

sb__link *sb__loop_conns(sb_loop *l)
{
    return &l->conns;
}

void *sb__loop_info(sb_loop *l, size_t size)
{
    void *p;

    if (size <= l->info_size)
        return l->info;
    /* Grown only by a connection with a larger cutter: rare, and nothing
     * keeps the old block past the delivery that asked for it. */
    if ((p = sb__realloc(l->info, size)) == NULL)
        return NULL;
    l->info = p;
    l->info_size = size;
    return p;
}

/* sb__loop_spare_give's rare half (loop_int.h): p does not simply fill an
 * empty slot. */
void sb__loop_spare_swap(sb_loop *l, void *p, size_t size)
{
    if (size > SB_SPARE_MAX || (l->hot.spare != NULL && l->hot.spare_size >= size)) {
        sb__free(p);
        return;
    }
    sb__free(l->hot.spare);
    l->hot.spare = p;
    l->hot.spare_size = size;
}

const char *sb_loop_backend(const sb_loop *l)
{
    return l->be->name;
}

static int loop_setup(sb_loop *l)
{
    int r = l->be->init(&l->bs);
    if (r < 0) {
        l->bs = NULL;
        return r;
    }
    l->hot.bs = l->bs;
    l->hot.ring = l->be->ring != NULL ? l->be->ring(l->bs) : NULL;
    l->hot.scratch = sb__malloc(SB_SCRATCH_SIZE);
    if (l->hot.scratch == NULL)
        return -ENOMEM;
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake_fd < 0)
        return -errno;
    return sb_loop_watch(l, l->wake_fd, SB_READABLE, on_wake, NULL);
}

int sb_loop_new(sb_loop **out, const char *backend)
{
    const struct sb__backend *be = find_backend(backend);
    *out = NULL;
    if (be == NULL)
        return SB_EBACKEND;
    sb_loop *l = sb__calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    l->be = be;
    l->wake_fd = -1;
    sb__link_init(&l->conns);
    atomic_init(&l->wake_pending, 0);
    atomic_init(&l->stop_async, 0);
    atomic_init(&l->posts, NULL);
    sb_loop_update_time(l);
    int r = loop_setup(l);
    if (r < 0) {
        sb_loop_free(l);
        return r;
    }
    *out = l;
    return 0;
}

/* Forget what is still registered; mark it so owners that look see it
 * stopped rather than dangling. */
static void forget_registrations(sb_loop *l)
{
    for (size_t i = 0; i < l->nheap; i++)
        l->heap[i]->heap_index = SIZE_MAX;
    l->nheap = 0;
    for (sb_defer *d = l->drun; d != NULL; d = d->next)
        d->queued = 0;
    for (sb_defer *d = l->dhead; d != NULL; d = d->next)
        d->queued = 0;
    l->drun = l->dhead = l->dtail = NULL;
}

void sb_loop_free(sb_loop *l)
{
    if (l == NULL)
        return;
    /* Posts never run still own their ud: run them, so that it is released
     * (the loop is whole; nothing is torn down yet). */
    while (atomic_load(&l->posts) != NULL)
        run_posts(l);
    /* Owners of requests still in flight (a closed connection waiting for
     * its last completion) hear that they ended, and free themselves. */
    if (l->hot.ring != NULL)
        l->hot.ring->drain(l->bs);
    signals_free(l);
    forget_registrations(l);
    if (l->wake_fd >= 0)
        sb__sys.close(l->wake_fd);
    if (l->bs != NULL)
        l->be->free(l->bs);
    sb__free(l->heap);
    sb__free(l->w);
    sb__free(l->fired);
    sb__free(l->again);
    sb__free(l->hot.scratch);
    sb__free(l->hot.spare);
    sb__free(l->info);
    sb__free(l);
}
