/* fault: fault injection through the library's system call table
 * (src/sys.h), without touching the network.
 *
 * fault_arm() points the entries of sb__sys at wrappers that count every
 * call of the classes in a mask and, at the N-th counted call, inject one
 * fault instead of (or around) the real call:
 *
 *   FK_FAIL    the call fails with an errno that call can really report
 *              (ENOMEM for the allocators, EMFILE for socket and accept4,
 *              ECONNREFUSED for connect, ECONNRESET for recv and the sends
 *              and for an io_uring receive's or send's result, ENOMEM for
 *              poll, EAGAIN for the eventfd/pipe read of the loop)
 *   FK_SHORT   the real call with half the count (recv, send, read, write,
 *              writev, sendmsg, sendfile); poll returns 0 as if timed out
 *   FK_EINTR   -1 with EINTR before anything happened; connect is really
 *              started first (an interrupted connect goes on in the kernel)
 *   FK_EAGAIN  -1 with EAGAIN (a spurious wakeup, or SO_RCVTIMEO expiring)
 *
 * Only calls where the fault can happen are counted: a short count needs
 * n >= 2 and a socket or pipe, and the loop's eventfd write is never
 * faulted (a non-blocking eventfd write of 1 cannot fail, and a lost one
 * is a lost wakeup). EINTR is injected into non-blocking calls too, which
 * never sleep and so never see it for real: the library retries every
 * EINTR in one wrapper per call, and the test makes sure it does. So "the N-th call" always means a call that can fail that way, and
 * a run whose N is past the last such call ran with no fault at all - the
 * torture driver stops there.
 *
 * sticky makes every counted call from the N-th on fail (FK_FAIL only; for
 * EINTR or EAGAIN it would spin the retry loops forever).
 *
 * Thread-safe counting (atomics), so a blocking server thread and a client
 * thread share one sequence. Arm before starting threads, disarm after
 * joining them. Header-only: each test binary is its own executable.
 */
#ifndef SB_TEST_FAULT_H
#define SB_TEST_FAULT_H

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#ifdef SB_FAULT_BACKTRACE
#include <execinfo.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#include "sys.h"

enum fault_call {
    FC_MALLOC, FC_CALLOC, FC_REALLOC, FC_SOCKET, FC_CONNECT, FC_ACCEPT4, FC_RECV,
    FC_SEND, FC_READ, FC_WRITE, FC_WRITEV, FC_SENDMSG, FC_SENDFILE, FC_POLL,
    FC_URING, FC_COUNT
};

static const char *const fault_call_names[FC_COUNT] = {
    "malloc", "calloc", "realloc", "socket", "connect", "accept4", "recv",
    "send", "read", "write", "writev", "sendmsg", "sendfile", "poll", "uring",
};

enum fault_kind { FK_FAIL, FK_SHORT, FK_EINTR, FK_EAGAIN };

static const char *const fault_kind_names[] = {"fail", "short", "eintr", "eagain"};

#define FM(c) (1u << (c))
#define FM_ALLOC (FM(FC_MALLOC) | FM(FC_CALLOC) | FM(FC_REALLOC))
#define FM_IO (FM(FC_RECV) | FM(FC_SEND) | FM(FC_READ) | FM(FC_WRITE) | FM(FC_WRITEV) | \
               FM(FC_SENDMSG) | FM(FC_SENDFILE))
/* FC_URING: a ring's receive or send result (sys.h's uring_io), faulted by
 * FK_FAIL only - the kernel moved the bytes, so a short count would lie. */
#define FM_SYS (FM_IO | FM(FC_SOCKET) | FM(FC_CONNECT) | FM(FC_ACCEPT4) | FM(FC_POLL) | \
                FM(FC_URING))
#define FM_ALL (FM_ALLOC | FM_SYS)

static struct fault_state {
    unsigned mask;                 /* calls counted */
    int kind;                      /* enum fault_kind */
    int sticky;                    /* FK_FAIL from the nth call on */
    unsigned long nth;             /* 1-based; 0: count only */
    atomic_ulong seen;             /* counted calls since fault_arm */
    atomic_ulong hits;             /* faults injected since fault_arm */
    atomic_int first_hit;          /* fault_call + 1 of the first fault, 0: none */
    atomic_ulong calls[FC_COUNT];  /* every call since fault_arm, counted or not */
    unsigned long injected_total;  /* faults injected by every run (fault_disarm adds) */
} fault_st;

/* ---- deciding ---- */

static int fault_fd_is_stream(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

/* Can `kind` happen on this call? fd < 0: no descriptor to look at. */
static int fault_applies(int call, int fd, size_t n, int flags)
{
    switch (fault_st.kind) {
    case FK_FAIL:
        if (call == FC_WRITE && !fault_fd_is_stream(fd))
            return 0; /* the loop's eventfd */
        return 1;
    case FK_SHORT:
        if (call == FC_POLL)
            return 1;
        if (n < 2 || fd < 0 || !fault_fd_is_stream(fd))
            return 0;
        return (FM(call) & FM_IO) != 0;
    case FK_EINTR:
        if (call == FC_CONNECT || call == FC_POLL || call == FC_ACCEPT4)
            return 1;
        if (call == FC_WRITE && !fault_fd_is_stream(fd))
            return 0;
        return (FM(call) & FM_IO) != 0;
    case FK_EAGAIN:
        if (call == FC_WRITE && !fault_fd_is_stream(fd))
            return 0;
        return (FM(call) & (FM_IO | FM(FC_ACCEPT4))) != 0;
    }
    (void)flags;
    return 0;
}

/* Count the call; returns 1 if this one gets the fault. */
static int fault_take(int call, int fd, size_t n, int flags)
{
    unsigned long k;

    atomic_fetch_add(&fault_st.calls[call], 1);
    if (!(fault_st.mask & FM(call)) || !fault_applies(call, fd, n, flags))
        return 0;
    k = atomic_fetch_add(&fault_st.seen, 1) + 1;
    if (fault_st.nth == 0 || k < fault_st.nth || (k > fault_st.nth && !fault_st.sticky))
        return 0;
    atomic_fetch_add(&fault_st.hits, 1);
    int none = 0;
    atomic_compare_exchange_strong(&fault_st.first_hit, &none, call + 1);
    if (getenv("SB_FAULT_TRACE"))
        fprintf(stderr, "fault: %s %s on call %lu\n", fault_kind_names[fault_st.kind],
                fault_call_names[call], k);
#ifdef SB_FAULT_BACKTRACE
    {
        void *bt[16];
        backtrace_symbols_fd(bt, backtrace(bt, 16), 2);
    }
#endif
    return 1;
}

static int fault_errno(int call)
{
    static const int e[FC_COUNT] = {
        [FC_MALLOC] = ENOMEM, [FC_CALLOC] = ENOMEM, [FC_REALLOC] = ENOMEM,
        [FC_SOCKET] = EMFILE, [FC_CONNECT] = ECONNREFUSED, [FC_ACCEPT4] = EMFILE,
        [FC_RECV] = ECONNRESET, [FC_SEND] = ECONNRESET, [FC_READ] = EAGAIN,
        [FC_WRITE] = ECONNRESET, [FC_WRITEV] = ECONNRESET, [FC_SENDMSG] = ECONNRESET,
        [FC_SENDFILE] = ECONNRESET, [FC_POLL] = ENOMEM, [FC_URING] = ECONNRESET,
    };
    switch (fault_st.kind) {
    case FK_EINTR:
        return EINTR;
    case FK_EAGAIN:
        return EAGAIN;
    }
    return e[call];
}

/* ---- wrappers ---- */

static void *fault_malloc(size_t n)
{
    if (fault_take(FC_MALLOC, -1, n, 0)) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(n);
}

static void *fault_calloc(size_t c, size_t n)
{
    if (fault_take(FC_CALLOC, -1, n, 0)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(c, n);
}

static void *fault_realloc(void *p, size_t n)
{
    if (fault_take(FC_REALLOC, -1, n, 0)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

static int fault_socket(int d, int t, int p)
{
    if (fault_take(FC_SOCKET, -1, 0, 0)) {
        errno = fault_errno(FC_SOCKET);
        return -1;
    }
    return socket(d, t, p);
}

static int fault_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (fault_take(FC_CONNECT, fd, 0, 0)) {
        if (fault_st.kind == FK_EINTR) {
            /* Interrupted after the kernel started it: it goes on. */
            int r = connect(fd, sa, len);
            if (r < 0 && errno != EINPROGRESS)
                return r;
        }
        errno = fault_errno(FC_CONNECT);
        return -1;
    }
    return connect(fd, sa, len);
}

static int fault_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    if (fault_take(FC_ACCEPT4, fd, 0, 0)) {
        errno = fault_errno(FC_ACCEPT4);
        return -1;
    }
    return accept4(fd, sa, len, flags);
}

static size_t fault_half(size_t n)
{
    return n / 2 ? n / 2 : 1;
}

static ssize_t fault_recv(int fd, void *p, size_t n, int flags)
{
    if (fault_take(FC_RECV, fd, n, flags)) {
        if (fault_st.kind == FK_SHORT)
            return recv(fd, p, fault_half(n), flags);
        errno = fault_errno(FC_RECV);
        return -1;
    }
    return recv(fd, p, n, flags);
}

static int fault_uring_io(int res)
{
    if (fault_take(FC_URING, -1, (size_t)res, 0))
        return -fault_errno(FC_URING);
    return res;
}

static ssize_t fault_send(int fd, const void *p, size_t n, int flags)
{
    if (fault_take(FC_SEND, fd, n, flags)) {
        if (fault_st.kind == FK_SHORT)
            return send(fd, p, fault_half(n), flags);
        errno = fault_errno(FC_SEND);
        return -1;
    }
    return send(fd, p, n, flags);
}

static ssize_t fault_read(int fd, void *p, size_t n)
{
    if (fault_take(FC_READ, fd, n, 0)) {
        if (fault_st.kind == FK_SHORT)
            return read(fd, p, fault_half(n));
        errno = fault_errno(FC_READ);
        return -1;
    }
    return read(fd, p, n);
}

static ssize_t fault_write(int fd, const void *p, size_t n)
{
    if (fault_take(FC_WRITE, fd, n, 0)) {
        if (fault_st.kind == FK_SHORT)
            return write(fd, p, fault_half(n));
        errno = fault_errno(FC_WRITE);
        return -1;
    }
    return write(fd, p, n);
}

static size_t fault_iov_total(const struct iovec *iov, int cnt)
{
    size_t t = 0;
    for (int i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

/* The first `keep` bytes of iov[0..cnt) into out (at most 1024 entries). */
static int fault_iov_cut(const struct iovec *iov, int cnt, size_t keep, struct iovec *out)
{
    int k = 0;
    for (int i = 0; i < cnt && keep > 0 && k < 1024; i++) {
        out[k] = iov[i];
        if (out[k].iov_len > keep)
            out[k].iov_len = keep;
        keep -= out[k].iov_len;
        k++;
    }
    return k;
}

static ssize_t fault_writev(int fd, const struct iovec *iov, int cnt)
{
    size_t total = fault_iov_total(iov, cnt);

    if (fault_take(FC_WRITEV, fd, total, 0)) {
        if (fault_st.kind == FK_SHORT) {
            struct iovec cut[1024];
            return writev(fd, cut, fault_iov_cut(iov, cnt, fault_half(total), cut));
        }
        errno = fault_errno(FC_WRITEV);
        return -1;
    }
    return writev(fd, iov, cnt);
}

static ssize_t fault_sendmsg(int fd, const struct msghdr *m, int flags)
{
    size_t total = fault_iov_total(m->msg_iov, (int)m->msg_iovlen);

    if (fault_take(FC_SENDMSG, fd, total, flags)) {
        if (fault_st.kind == FK_SHORT) {
            struct iovec cut[1024];
            struct msghdr mm = *m;
            mm.msg_iov = cut;
            mm.msg_iovlen = (size_t)fault_iov_cut(m->msg_iov, (int)m->msg_iovlen,
                                                  fault_half(total), cut);
            return sendmsg(fd, &mm, flags);
        }
        errno = fault_errno(FC_SENDMSG);
        return -1;
    }
    return sendmsg(fd, m, flags);
}

static ssize_t fault_sendfile(int out, int in, off_t *off, size_t n)
{
    if (fault_take(FC_SENDFILE, out, n, 0)) {
        if (fault_st.kind == FK_SHORT)
            return sendfile(out, in, off, fault_half(n));
        errno = fault_errno(FC_SENDFILE);
        return -1;
    }
    return sendfile(out, in, off, n);
}

static int fault_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (fault_take(FC_POLL, -1, 0, 0)) {
        if (fault_st.kind == FK_SHORT) {
            for (nfds_t i = 0; i < n; i++)
                fds[i].revents = 0;
            return 0; /* woke early with nothing ready */
        }
        errno = fault_errno(FC_POLL);
        return -1;
    }
    return poll(fds, n, timeout);
}

/* ---- arming ---- */

/* Route the library through the wrappers: count calls in mask and inject
 * `kind` at the nth of them (0: only count). */
static void fault_arm(unsigned mask, int kind, unsigned long nth, int sticky)
{
    fault_st.mask = mask;
    fault_st.kind = kind;
    fault_st.nth = nth;
    fault_st.sticky = sticky && kind == FK_FAIL;
    atomic_store(&fault_st.seen, 0);
    atomic_store(&fault_st.hits, 0);
    atomic_store(&fault_st.first_hit, 0);
    for (int i = 0; i < FC_COUNT; i++)
        atomic_store(&fault_st.calls[i], 0);
    sb__sys.malloc = fault_malloc;
    sb__sys.calloc = fault_calloc;
    sb__sys.realloc = fault_realloc;
    sb__sys.socket = fault_socket;
    sb__sys.connect = fault_connect;
    sb__sys.accept4 = fault_accept4;
    sb__sys.recv = fault_recv;
    sb__sys.send = fault_send;
    sb__sys.read = fault_read;
    sb__sys.write = fault_write;
    sb__sys.writev = fault_writev;
    sb__sys.sendmsg = fault_sendmsg;
    sb__sys.sendfile = fault_sendfile;
    sb__sys.poll = fault_poll;
    sb__sys.uring_io = fault_uring_io;
}

/* Back to libc; returns the faults injected since fault_arm. */
static unsigned long fault_disarm(void)
{
    unsigned long h = atomic_load(&fault_st.hits);
    sb__sys_reset();
    fault_st.injected_total += h;
    return h;
}

/* Name of the call that got the first fault of this run, or "-". */
static const char *fault_hit_name(void)
{
    int h = atomic_load(&fault_st.first_hit);
    return h ? fault_call_names[h - 1] : "-";
}

#endif
