/* os_win32: the POSIX calls switchboard makes, written for Windows
 * (Winsock 2 and the Win32 file API). Declared in compat/win32/sb_win32.h,
 * which says what the descriptor model is and why; the Windows build
 * compiles this file instead of the Linux-only ones (see CMakeLists.txt).
 *
 * Divisions: start-up and errors; sockets; socket pairs and the wakeup
 * socket; files and descriptors; text; signals (console control events);
 * processes, memory, CPUs.
 *
 * Every function keeps libc's convention (-1 and errno, or a count);
 * Winsock's and Win32's own error codes are turned into errno here and
 * nowhere else, so the library's "return -errno" reads the same on both
 * systems.
 */
#include <limits.h>
#include <stdarg.h>
#include <mstcpip.h>

/* This file implements the names sb_win32.h redirects: it calls the real
 * ones. */
#undef socket
#undef connect
#undef accept
#undef accept4
#undef bind
#undef listen
#undef recv
#undef send
#undef sendmsg
#undef writev
#undef getsockopt
#undef setsockopt
#undef getsockname
#undef getpeername
#undef shutdown
#undef select
#undef poll
#undef ioctl
#undef fcntl
#undef socketpair
#undef pipe2
#undef eventfd
#undef sendfile
#undef open
#undef close
#undef read
#undef write
#undef pread
#undef dup
#undef dup3
#undef realpath
#undef mkstemp
#undef strerror
#undef strftime
#undef memmem
#undef getline
#undef strndup
#undef signal
#undef raise
#undef kill
#undef fork
#undef waitpid
#undef mmap
#undef munmap
#undef posix_memalign
#undef getrlimit
#undef setrlimit
#undef syscall
#undef openat
#undef readlink
#undef sched_getaffinity

#include "os.h"

/* HOWTO 5.1: a process per connection is not for Windows, which has no
 * fork() at all: sb_server_new refuses the fork model. */
const int sb__os_has_fork = 0;
/* No SO_REUSEPORT: the event model's workers share one listener. */
const int sb__os_has_reuseport = 0;

#define H(fd) ((HANDLE)(intptr_t)(fd))
#define S(fd) ((SOCKET)(intptr_t)(fd))

/* ---- start-up and errors ---- */

/* Winsock must be started before the first socket call of the process;
 * the library does it when it is loaded, so users never have to. */
__attribute__((constructor)) static void sb__win_start(void)
{
    WSADATA d;
    WSAStartup(MAKEWORD(2, 2), &d);
}

int sb__win_errno(int wsa)
{
    switch (wsa) {
    case WSAEWOULDBLOCK: return EAGAIN;
    case WSAEINPROGRESS: return EINPROGRESS;
    case WSAEALREADY: return EALREADY;
    /* Winsock says this of a closed or invalid handle as well as of a
     * file: the first is what it nearly always is here. */
    case WSAENOTSOCK: return EBADF;
    case WSAEDESTADDRREQ: return EDESTADDRREQ;
    case WSAEMSGSIZE: return EMSGSIZE;
    case WSAEPROTOTYPE: return EPROTOTYPE;
    case WSAENOPROTOOPT: return ENOPROTOOPT;
    case WSAEPROTONOSUPPORT: return EPROTONOSUPPORT;
    case WSAESOCKTNOSUPPORT: return EPROTONOSUPPORT;
    case WSAEOPNOTSUPP: return EOPNOTSUPP;
    case WSAEPFNOSUPPORT: return EAFNOSUPPORT;
    case WSAEAFNOSUPPORT: return EAFNOSUPPORT;
    case WSAEADDRINUSE: return EADDRINUSE;
    case WSAEADDRNOTAVAIL: return EADDRNOTAVAIL;
    case WSAENETDOWN: return ENETDOWN;
    case WSAENETUNREACH: return ENETUNREACH;
    case WSAENETRESET: return ENETRESET;
    case WSAECONNABORTED: return ECONNABORTED;
    case WSAECONNRESET: return ECONNRESET;
    case WSAENOBUFS: return ENOBUFS;
    case WSAEISCONN: return EISCONN;
    case WSAENOTCONN: return ENOTCONN;
    case WSAESHUTDOWN: return EPIPE;
    case WSAETIMEDOUT: return ETIMEDOUT;
    case WSAECONNREFUSED: return ECONNREFUSED;
    case WSAELOOP: return ELOOP;
    case WSAENAMETOOLONG: return ENAMETOOLONG;
    case WSAEHOSTDOWN: return EHOSTUNREACH;
    case WSAEHOSTUNREACH: return EHOSTUNREACH;
    case WSAEMFILE: return EMFILE;
    case WSAEINVAL: return EINVAL;
    case WSAEFAULT: return EFAULT;
    case WSAEBADF: return EBADF;
    case WSAEACCES: return EACCES;
    case WSAEINTR: return EINTR;
    case WSANOTINITIALISED: return ENETDOWN;
    case WSA_NOT_ENOUGH_MEMORY: return ENOMEM;
    case 0: return 0;
    default: return EIO;
    }
}

static int wsa_fail(void)
{
    errno = sb__win_errno(WSAGetLastError());
    return -1;
}

static int win_errno(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_NAME:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_DRIVE: return ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION: return EACCES;
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS: return EEXIST;
    case ERROR_TOO_MANY_OPEN_FILES: return EMFILE;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY: return ENOMEM;
    case ERROR_DIRECTORY: return ENOTDIR;
    case ERROR_INVALID_HANDLE: return EBADF;
    case ERROR_FILENAME_EXCED_RANGE: return ENAMETOOLONG;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA: return EPIPE;
    case ERROR_DISK_FULL: return ENOSPC;
    case ERROR_NOT_SUPPORTED: return ENOTSUP;
    default: return EIO;
    }
}

static int win_fail(void)
{
    errno = win_errno(GetLastError());
    return -1;
}

/* ---- sockets ---- */

/* Blocking is a property of the socket on Windows, and there is no
 * per-call MSG_DONTWAIT. So every socket is non-blocking underneath, and
 * whether it blocks is kept here, one bit per handle (handle values are
 * multiples of 4): a call on a blocking socket that would wait waits in
 * WSAPoll and tries again, as the kernel does on POSIX; MSG_DONTWAIT just
 * skips the wait. Every way a socket is made sets its bit. */
#define NB_HANDLES (1u << 23)
static volatile LONG nb_bits[NB_HANDLES / 4 / 32];

static int nb_get(int fd)
{
    unsigned i = (unsigned)fd / 4;
    return i < NB_HANDLES / 4 && (nb_bits[i / 32] >> (i % 32) & 1);
}

static int nb_put(int fd, int on)
{
    unsigned i = (unsigned)fd / 4;
    if (fd < 0 || i >= NB_HANDLES / 4) {
        errno = fd < 0 ? EBADF : EMFILE;
        return -1;
    }
    if (on)
        InterlockedOr(&nb_bits[i / 32], (LONG)(1u << (i % 32)));
    else
        InterlockedAnd(&nb_bits[i / 32], (LONG) ~(1u << (i % 32)));
    return 0;
}

/* A new socket: non-blocking underneath, blocking or not for its user. */
static int adopt(SOCKET s, int nonblock)
{
    u_long one = 1;
    int e = 0;
    /* Not inherited by child processes (FD_CLOEXEC), whatever the
     * provider did with WSA_FLAG_NO_HANDLE_INHERIT. */
    SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
    if (ioctlsocket(s, FIONBIO, &one) != 0)
        e = sb__win_errno(WSAGetLastError());
    else if (nb_put((int)s, nonblock) < 0)
        e = errno;
    if (e != 0) {
        closesocket(s);
        errno = e;
        return -1;
    }
    return (int)s;
}

/* Whether to wait and try again: a blocking socket's call said
 * WSAEWOULDBLOCK. Waits for ev. */
static int should_wait(int fd, int flags, short ev)
{
    if (WSAGetLastError() != WSAEWOULDBLOCK || nb_get(fd) || (flags & MSG_DONTWAIT))
        return 0;
    WSAPOLLFD p = {S(fd), ev, 0};
    WSAPoll(&p, 1, -1);
    return 1;
}

int sb__win_socket(int domain, int type, int proto)
{
    int nb = type & SOCK_NONBLOCK;
    type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    SOCKET s = WSASocketW(domain, type, proto, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET)
        return wsa_fail();
    /* IPv6 sockets take IPv4 too, as on Linux: "[::]:port" and ":port"
     * mean every address (Windows' default is IPv6 only). */
    DWORD off = 0;
    if (domain == AF_INET6)
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&off, sizeof off);
    return adopt(s, nb);
}

/* A blocking connect waits for the outcome and reports it. */
static int connect_wait(int fd)
{
    fd_set w, e;
    int err = 0, len = sizeof err;
    FD_ZERO(&w);
    FD_ZERO(&e);
    FD_SET(S(fd), &w);
    FD_SET(S(fd), &e);
    if (select(0, NULL, &w, &e, NULL) < 0)
        return wsa_fail();
    if (getsockopt(S(fd), SOL_SOCKET, SO_ERROR, (char *)&err, &len) != 0)
        return wsa_fail();
    if (err != 0) {
        errno = sb__win_errno(err);
        return -1;
    }
    return 0;
}

int sb__win_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (connect(S(fd), sa, len) == 0)
        return 0;
    int e = WSAGetLastError();
    if (e == WSAEWOULDBLOCK && !nb_get(fd))
        return connect_wait(fd);
    /* A non-blocking connect under way says WSAEWOULDBLOCK here. */
    errno = e == WSAEWOULDBLOCK ? EINPROGRESS : sb__win_errno(e);
    return -1;
}

int sb__win_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    SOCKET s;
    while ((s = accept(S(fd), sa, len)) == INVALID_SOCKET)
        if (!should_wait(fd, 0, POLLRDNORM))
            return wsa_fail();
    return adopt(s, flags & SOCK_NONBLOCK);
}

int sb__win_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    return sb__win_accept4(fd, sa, len, 0);
}

int sb__win_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return bind(S(fd), sa, len) == 0 ? 0 : wsa_fail();
}

int sb__win_listen(int fd, int backlog)
{
    return listen(S(fd), backlog) == 0 ? 0 : wsa_fail();
}

static int clamp_int(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

ssize_t sb__win_recv(int fd, void *p, size_t n, int flags)
{
    int r;
    while ((r = recv(S(fd), p, clamp_int(n), flags & ~MSG_DONTWAIT)) < 0)
        if (!should_wait(fd, flags, POLLRDNORM))
            return wsa_fail();
    return r;
}

/* A blocking send sends everything, as on POSIX; a non-blocking one what
 * fits. */
ssize_t sb__win_sendmsg(int fd, const struct msghdr *m, int flags)
{
    WSABUF b[64];
    DWORD cnt = m->msg_iovlen > 64 ? 64 : (DWORD)m->msg_iovlen, sent = 0, i = 0;
    size_t total = 0, done = 0;
    for (DWORD k = 0; k < cnt; k++) {
        size_t len = m->msg_iov[k].iov_len;
        b[k].buf = m->msg_iov[k].iov_base;
        b[k].len = (ULONG)(len > 0x40000000 ? 0x40000000 : len);
        total += b[k].len;
    }
    for (;;) {
        if (WSASend(S(fd), b + i, cnt - i, &sent, (DWORD)(flags & ~MSG_DONTWAIT), NULL, NULL) != 0) {
            if (should_wait(fd, flags, POLLWRNORM))
                continue;
            return done > 0 ? (ssize_t)done : wsa_fail();
        }
        done += sent;
        if (done == total || nb_get(fd) || (flags & MSG_DONTWAIT))
            return (ssize_t)done;
        while (i < cnt && sent >= b[i].len)
            sent -= b[i++].len;
        b[i].buf += sent;
        b[i].len -= sent;
    }
}

ssize_t sb__win_send(int fd, const void *p, size_t n, int flags)
{
    struct iovec v = {(void *)p, n};
    struct msghdr m = {0};
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    return sb__win_sendmsg(fd, &m, flags);
}

ssize_t sb__win_writev(int fd, const struct iovec *iov, int cnt)
{
    struct msghdr m = {0};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)cnt;
    return sb__win_sendmsg(fd, &m, 0);
}

static int keepalive_vals(int fd, int name, int v);
static int keepalive_get(int fd, int name, int *v);
static void ka_forget(int fd);

int sb__win_getsockopt(int fd, int level, int name, void *v, socklen_t *len)
{
    if (level == SOL_SOCKET && name == SO_REUSEADDR)
        name = SO_EXCLUSIVEADDRUSE; /* see setsockopt below */
    /* Some options come back as one byte (a BOOLEAN): the rest reads 0. */
    if (*len > 0)
        memset(v, 0, (size_t)*len);
    if (getsockopt(S(fd), level, name, v, len) != 0) {
        int e = WSAGetLastError();
        if ((e == WSAENOPROTOOPT || e == WSAEINVAL) && level == IPPROTO_TCP && *len >= (socklen_t)sizeof(int) &&
            (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL || name == TCP_KEEPCNT))
            return keepalive_get(fd, name, v);
        errno = sb__win_errno(e);
        return -1;
    }
    /* A failed connect's error is a Winsock code: an errno to callers. */
    if (level == SOL_SOCKET && name == SO_ERROR && *len >= (socklen_t)sizeof(int))
        *(int *)v = sb__win_errno(*(int *)v);
    return 0;
}

/* SO_REUSEADDR means "bind even while old connections linger" on POSIX but
 * "let another socket take this port" on Windows, where binding over
 * TIME_WAIT needs nothing. A listener asks for the first and gets
 * SO_EXCLUSIVEADDRUSE, which keeps other processes off its port. */
int sb__win_setsockopt(int fd, int level, int name, const void *v, socklen_t len)
{
    if (level == SOL_SOCKET && name == SO_REUSEADDR)
        name = SO_EXCLUSIVEADDRUSE;
    /* Timeouts of blocking calls: those wait in WSAPoll (see above), which
     * these do not bound; accepted and ignored. */
    if (level == SOL_SOCKET && (name == SO_SNDTIMEO || name == SO_RCVTIMEO))
        return 0;
    if (level == SOL_SOCKET && name == SO_REUSEPORT) {
        errno = ENOPROTOOPT;
        return -1;
    }
    if (setsockopt(S(fd), level, name, v, len) == 0)
        return 0;
    if (level == IPPROTO_TCP && (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL || name == TCP_KEEPCNT) &&
        len >= (socklen_t)sizeof(int))
        return keepalive_vals(fd, name, *(const int *)v);
    return wsa_fail();
}

/* Keepalive timing where TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT are
 * missing (before Windows 10 1709, and Wine): SIO_KEEPALIVE_VALS sets the
 * idle time and the interval together, and nothing reads them back, so
 * what was set is kept here per socket, for the next setsockopt and for
 * getsockopt. The probe count is Windows' own (10) there: kept, not
 * applied. Entries go when their socket closes. */
#define KA_SLOTS 4096 /* sockets with such timings at once */

struct ka {
    int fd; /* 0: never used, -1: freed (handles are never 0 or -1) */
    int idle, intvl, cnt;
};

static struct ka ka_tab[KA_SLOTS];
static SRWLOCK ka_lock = SRWLOCK_INIT;
static volatile LONG ka_used; /* close looks in the table only when > 0 */

/* Linear probing from the handle's slot; under ka_lock. */
static struct ka *ka_find(int fd, int add)
{
    struct ka *spot = NULL;
    for (unsigned i = 0, h = (unsigned)fd / 4; i < KA_SLOTS; i++) {
        struct ka *e = &ka_tab[(h + i) % KA_SLOTS];
        if (e->fd == fd)
            return e;
        if (e->fd == -1 && spot == NULL)
            spot = e;
        if (e->fd == 0) {
            spot = spot != NULL ? spot : e;
            break;
        }
    }
    if (!add || spot == NULL)
        return NULL;
    spot->fd = fd;
    spot->idle = 7200; /* Windows' defaults */
    spot->intvl = 1;
    spot->cnt = 10;
    InterlockedIncrement(&ka_used);
    return spot;
}

static void ka_forget(int fd)
{
    if (ka_used == 0)
        return;
    AcquireSRWLockExclusive(&ka_lock);
    struct ka *e = ka_find(fd, 0);
    if (e != NULL) {
        e->fd = -1;
        InterlockedDecrement(&ka_used);
    }
    ReleaseSRWLockExclusive(&ka_lock);
}

static int keepalive_vals(int fd, int name, int v)
{
    struct tcp_keepalive k;
    DWORD out = 0;
    int r = 0;
    AcquireSRWLockExclusive(&ka_lock);
    struct ka *e = ka_find(fd, 1);
    if (e == NULL) {
        ReleaseSRWLockExclusive(&ka_lock);
        errno = ENOBUFS;
        return -1;
    }
    *(name == TCP_KEEPIDLE ? &e->idle : name == TCP_KEEPINTVL ? &e->intvl : &e->cnt) = v;
    k.onoff = 1;
    k.keepalivetime = (ULONG)e->idle * 1000u;
    k.keepaliveinterval = (ULONG)e->intvl * 1000u;
    if (name != TCP_KEEPCNT && WSAIoctl(S(fd), SIO_KEEPALIVE_VALS, &k, sizeof k, NULL, 0, &out, NULL, NULL) != 0)
        r = wsa_fail();
    ReleaseSRWLockExclusive(&ka_lock);
    return r;
}

/* getsockopt of those three where the system cannot answer. */
static int keepalive_get(int fd, int name, int *v)
{
    AcquireSRWLockShared(&ka_lock);
    struct ka *e = ka_find(fd, 0);
    struct ka d = {fd, 7200, 1, 10};
    if (e == NULL)
        e = &d;
    *v = name == TCP_KEEPIDLE ? e->idle : name == TCP_KEEPINTVL ? e->intvl : e->cnt;
    ReleaseSRWLockShared(&ka_lock);
    return 0;
}

int sb__win_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    return getsockname(S(fd), sa, len) == 0 ? 0 : wsa_fail();
}

int sb__win_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    return getpeername(S(fd), sa, len) == 0 ? 0 : wsa_fail();
}

int sb__win_shutdown(int fd, int how)
{
    return shutdown(S(fd), how) == 0 ? 0 : wsa_fail();
}

static int wait_ms(int timeout_ms)
{
    Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
    return 0;
}

/* Winsock's select refuses three empty sets: nothing to watch is a sleep. */
int sb__win_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    (void)n;
    if ((r == NULL || r->fd_count == 0) && (w == NULL || w->fd_count == 0) &&
        (e == NULL || e->fd_count == 0))
        return wait_ms(tv == NULL ? -1 : (int)(tv->tv_sec * 1000 + tv->tv_usec / 1000));
    int c = select(0, r, w, e, tv);
    return c >= 0 ? c : wsa_fail();
}

/* WSAPoll takes only the POLLRDNORM/POLLWRNORM family in events, and not a
 * negative fd: such entries are left out, as poll(2) ignores them. */
int sb__win_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    WSAPOLLFD small[64], *p = n <= 64 ? small : malloc(n * sizeof *p);
    ULONG k = 0;
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    for (nfds_t i = 0; i < n; i++) {
        fds[i].revents = 0;
        if ((int)fds[i].fd < 0)
            continue;
        p[k].fd = fds[i].fd;
        p[k].events = fds[i].events & (POLLRDNORM | POLLWRNORM);
        p[k++].revents = 0;
    }
    int r = k == 0 ? wait_ms(timeout_ms) : WSAPoll(p, k, timeout_ms);
    if (r < 0)
        r = wsa_fail();
    for (nfds_t i = 0, j = 0; r > 0 && i < n; i++)
        if ((int)fds[i].fd >= 0)
            fds[i].revents = p[j++].revents;
    if (p != small)
        free(p);
    return r;
}

int sb__win_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    int *arg = va_arg(ap, int *);
    va_end(ap);
    u_long v = 0;
    if (req == (unsigned long)FIONBIO)
        return nb_put(fd, *arg != 0);
    if (ioctlsocket(S(fd), (long)req, &v) != 0)
        return wsa_fail();
    *arg = v > INT_MAX ? INT_MAX : (int)v;
    return 0;
}

/* O_NONBLOCK is the bit kept above; FD_CLOEXEC is the handle not being
 * inheritable. */
int sb__win_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int arg = va_arg(ap, int);
    va_end(ap);
    DWORD info;
    switch (cmd) {
    case F_GETFL: return nb_get(fd) ? O_NONBLOCK : 0;
    case F_SETFL: return nb_put(fd, arg & O_NONBLOCK);
    case F_GETFD:
        if (!GetHandleInformation(H(fd), &info))
            return win_fail();
        return (info & HANDLE_FLAG_INHERIT) ? 0 : FD_CLOEXEC;
    case F_SETFD: return SetHandleInformation(H(fd), HANDLE_FLAG_INHERIT, 0) ? 0 : win_fail();
    default: errno = EINVAL; return -1;
    }
}

/* ---- socket pairs and the wakeup socket ---- */

/* A connected pair of loopback TCP sockets, the stand-in for pipe(2) and
 * socketpair(2): select and WSAPoll take sockets only. The accepted end is
 * checked to be the one we connected, not a stranger who raced us to the
 * ephemeral port. */
#define PAIR_BUF (64 * 1024)

static int tcp_pair(int sv[2], int nonblock)
{
    struct sockaddr_in a = {0}, me = {0}, peer = {0};
    int len = sizeof a, lme = sizeof me, lpeer = sizeof peer;
    SOCKET l = INVALID_SOCKET, c = INVALID_SOCKET, s = INVALID_SOCKET;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = WSASocketW(AF_INET, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_NO_HANDLE_INHERIT);
    if (l == INVALID_SOCKET || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) != 0)
        goto fail;
    c = WSASocketW(AF_INET, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (c == INVALID_SOCKET || connect(c, (struct sockaddr *)&a, sizeof a) != 0)
        goto fail;
    s = accept(l, (struct sockaddr *)&peer, &lpeer);
    if (s == INVALID_SOCKET || getsockname(c, (struct sockaddr *)&me, &lme) != 0)
        goto fail;
    if (peer.sin_port != me.sin_port || peer.sin_addr.s_addr != me.sin_addr.s_addr) {
        WSASetLastError(WSAECONNABORTED);
        goto fail;
    }
    closesocket(l);
    BOOL one = TRUE;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    /* Buffers the size of a Unix socketpair's, not a TCP connection's
     * auto-tuned megabytes: a full pipe is as full as on POSIX. */
    int buf = PAIR_BUF;
    setsockopt(c, SOL_SOCKET, SO_SNDBUF, (const char *)&buf, sizeof buf);
    setsockopt(c, SOL_SOCKET, SO_RCVBUF, (const char *)&buf, sizeof buf);
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, (const char *)&buf, sizeof buf);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, (const char *)&buf, sizeof buf);
    if ((sv[0] = adopt(s, nonblock)) < 0) {
        closesocket(c);
        return -1;
    }
    if ((sv[1] = adopt(c, nonblock)) < 0) {
        closesocket(s);
        return -1;
    }
    return 0;
fail:;
    int e = WSAGetLastError();
    if (s != INVALID_SOCKET)
        closesocket(s);
    if (c != INVALID_SOCKET)
        closesocket(c);
    if (l != INVALID_SOCKET)
        closesocket(l);
    errno = sb__win_errno(e);
    return -1;
}

int sb__win_socketpair(int domain, int type, int proto, int sv[2])
{
    (void)domain;
    (void)proto;
    return tcp_pair(sv, type & SOCK_NONBLOCK);
}

int sb__win_pipe2(int fd[2], int flags)
{
    return tcp_pair(fd, flags & O_NONBLOCK);
}

/* eventfd as one UDP socket connected to itself: a write is a datagram it
 * sends itself, readable until read; read() drains them all, which is the
 * counter going back to zero. One descriptor, as with eventfd. */
int sb__win_eventfd(unsigned int initval, int flags)
{
    struct sockaddr_in a = {0};
    int len = sizeof a;
    (void)initval;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SOCKET s = WSASocketW(AF_INET, SOCK_DGRAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET)
        return wsa_fail();
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(s, (struct sockaddr *)&a, &len) != 0 ||
        connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = WSAGetLastError();
        closesocket(s);
        errno = sb__win_errno(e);
        return -1;
    }
    return adopt(s, flags & EFD_NONBLOCK);
}

/* ---- files and descriptors ---- */

/* The socket type, or 0 when fd is not a socket. */
static int socket_type(int fd)
{
    int type = 0, len = sizeof type;
    if (fd <= 2 || getsockopt(S(fd), SOL_SOCKET, SO_TYPE, (char *)&type, &len) != 0)
        return 0;
    return type;
}

static HANDLE std_handle(int fd)
{
    static const DWORD which[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    return GetStdHandle(which[fd]);
}

static HANDLE file_handle(int fd)
{
    return fd >= 0 && fd <= 2 ? std_handle(fd) : H(fd);
}

static int widen(const char *s, wchar_t *out, int n)
{
    if (strcmp(s, "/dev/null") == 0)
        s = SB__DEV_NULL;
    int r = MultiByteToWideChar(CP_UTF8, 0, s, -1, out, n);
    if (r == 0)
        errno = GetLastError() == ERROR_INSUFFICIENT_BUFFER ? ENAMETOOLONG : ENOENT;
    return r;
}

int sb__win_open(const char *path, int flags, ...)
{
    wchar_t w[32768];
    DWORD access, create, share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    if (widen(path, w, 32768) == 0)
        return -1;
    switch (flags & (O_RDONLY | O_WRONLY | O_RDWR)) {
    case O_WRONLY: access = GENERIC_WRITE; break;
    case O_RDWR: access = GENERIC_READ | GENERIC_WRITE; break;
    default: access = GENERIC_READ; break;
    }
    /* Appends are atomic when the handle may only append. */
    if (flags & O_APPEND)
        access = (access & ~GENERIC_WRITE) | FILE_APPEND_DATA | SYNCHRONIZE;
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
        create = CREATE_NEW;
    else if ((flags & (O_CREAT | O_TRUNC)) == (O_CREAT | O_TRUNC))
        create = CREATE_ALWAYS;
    else if (flags & O_CREAT)
        create = OPEN_ALWAYS;
    else if (flags & O_TRUNC)
        create = TRUNCATE_EXISTING;
    else
        create = OPEN_EXISTING;
    /* Backup semantics: directories open too, as with open(2). */
    HANDLE h = CreateFileW(w, access, share, NULL, create, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_BACKUP_SEMANTICS, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return win_fail();
    BY_HANDLE_FILE_INFORMATION fi;
    if ((flags & O_DIRECTORY) &&
        (!GetFileInformationByHandle(h, &fi) || !(fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY))) {
        CloseHandle(h);
        errno = ENOTDIR;
        return -1;
    }
    return (int)(intptr_t)h;
}

int sb__win_close(int fd)
{
    if (fd >= 0 && fd <= 2)
        return _close(fd);
    if (socket_type(fd) != 0) {
        ka_forget(fd);
        return closesocket(S(fd)) == 0 ? 0 : wsa_fail();
    }
    return CloseHandle(H(fd)) ? 0 : win_fail();
}

ssize_t sb__win_read(int fd, void *p, size_t n)
{
    int type = socket_type(fd);
    if (type == SOCK_DGRAM) {
        /* The eventfd stand-in: take every datagram, keep the first. */
        char drain[8];
        int r = recv(S(fd), p, clamp_int(n), 0);
        if (r < 0)
            return wsa_fail();
        while (recv(S(fd), drain, sizeof drain, 0) >= 0 || WSAGetLastError() == WSAEMSGSIZE)
            ;
        return r;
    }
    if (type != 0)
        return sb__win_recv(fd, p, n, 0);
    DWORD got = 0;
    if (!ReadFile(file_handle(fd), p, n > 0x40000000 ? 0x40000000 : (DWORD)n, &got, NULL)) {
        DWORD e = GetLastError();
        if (e == ERROR_HANDLE_EOF || e == ERROR_BROKEN_PIPE)
            return 0;
        errno = win_errno(e);
        return -1;
    }
    return (ssize_t)got;
}

ssize_t sb__win_write(int fd, const void *p, size_t n)
{
    if (socket_type(fd) != 0)
        return sb__win_send(fd, p, n, 0);
    DWORD put = 0;
    if (!WriteFile(file_handle(fd), p, n > 0x40000000 ? 0x40000000 : (DWORD)n, &put, NULL))
        return win_fail();
    return (ssize_t)put;
}

ssize_t sb__win_pread(int fd, void *p, size_t n, off_t off)
{
    OVERLAPPED o = {0};
    DWORD got = 0;
    o.Offset = (DWORD)((uint64_t)off & 0xffffffffu);
    o.OffsetHigh = (DWORD)((uint64_t)off >> 32);
    if (!ReadFile(H(fd), p, n > 0x40000000 ? 0x40000000 : (DWORD)n, &got, &o)) {
        DWORD e = GetLastError();
        if (e == ERROR_HANDLE_EOF)
            return 0;
        errno = win_errno(e);
        return -1;
    }
    return (ssize_t)got;
}

/* No sendfile: the file is read at *off and sent, one buffer per call. A
 * short send is a short count, as sendfile(2) on a non-blocking socket. */
ssize_t sb__win_sendfile(int out, int in, off_t *off, size_t n)
{
    char buf[65536];
    ssize_t got = sb__win_pread(in, buf, n < sizeof buf ? n : sizeof buf, *off);
    if (got <= 0)
        return got;
    ssize_t sent = sb__win_send(out, buf, (size_t)got, 0);
    if (sent > 0)
        *off += sent;
    return sent;
}

static struct timespec unix_time(FILETIME t)
{
    uint64_t v = ((uint64_t)t.dwHighDateTime << 32) | t.dwLowDateTime; /* 100 ns since 1601 */
    struct timespec ts;
    ts.tv_sec = (time_t)(v / 10000000u) - (time_t)11644473600ll;
    ts.tv_nsec = (long)(v % 10000000u) * 100;
    return ts;
}

static void fill_stat(struct stat *st, const BY_HANDLE_FILE_INFORMATION *fi)
{
    int dir = (fi->dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
    int ro = (fi->dwFileAttributes & FILE_ATTRIBUTE_READONLY) != 0;
    memset(st, 0, sizeof *st);
    st->st_mode = dir ? (_S_IFDIR | 0755) : (_S_IFREG | (ro ? 0444 : 0644));
    st->st_size = (int64_t)(((uint64_t)fi->nFileSizeHigh << 32) | fi->nFileSizeLow);
    st->st_mtim = unix_time(fi->ftLastWriteTime);
    st->st_atim = unix_time(fi->ftLastAccessTime);
    st->st_ctim = unix_time(fi->ftCreationTime);
    st->st_nlink = fi->nNumberOfLinks;
    st->st_dev = fi->dwVolumeSerialNumber;
    st->st_ino = ((uint64_t)fi->nFileIndexHigh << 32) | fi->nFileIndexLow;
}

int sb__win_fstat(int fd, struct stat *st)
{
    BY_HANDLE_FILE_INFORMATION fi;
    HANDLE h = file_handle(fd);
    DWORD type = GetFileType(h);
    if (socket_type(fd) != 0 || type == FILE_TYPE_PIPE || type == FILE_TYPE_CHAR) {
        memset(st, 0, sizeof *st);
        st->st_mode = socket_type(fd) != 0 ? (S_IFSOCK | 0600) : type == FILE_TYPE_PIPE ? (_S_IFIFO | 0600) : (_S_IFCHR | 0666);
        return 0;
    }
    if (!GetFileInformationByHandle(h, &fi))
        return win_fail();
    fill_stat(st, &fi);
    return 0;
}

/* lstat: the entry itself, a link not followed; an AF_UNIX socket's file
 * is a reparse point of its own tag. */
static int path_stat(const char *path, struct stat *st, DWORD follow)
{
    wchar_t w[32768];
    BY_HANDLE_FILE_INFORMATION fi;
    if (widen(path, w, 32768) == 0)
        return -1;
    HANDLE h = CreateFileW(w, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | follow, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return win_fail();
    int ok = GetFileInformationByHandle(h, &fi);
    FILE_ATTRIBUTE_TAG_INFO tag = {0};
    if (ok && (fi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT))
        GetFileInformationByHandleEx(h, FileAttributeTagInfo, &tag, sizeof tag);
    CloseHandle(h);
    if (!ok)
        return win_fail();
    fill_stat(st, &fi);
    if (tag.ReparseTag == IO_REPARSE_TAG_AF_UNIX)
        st->st_mode = S_IFSOCK | 0600;
    return 0;
}

int sb__win_stat(const char *path, struct stat *st)
{
    return path_stat(path, st, 0);
}

int sb__win_lstat(const char *path, struct stat *st)
{
    return path_stat(path, st, FILE_FLAG_OPEN_REPARSE_POINT);
}

int sb__win_dup(int fd)
{
    HANDLE out;
    if (!DuplicateHandle(GetCurrentProcess(), file_handle(fd), GetCurrentProcess(), &out, 0, FALSE,
                         DUPLICATE_SAME_ACCESS))
        return win_fail();
    return (int)(intptr_t)out;
}

/* A handle's number is the system's to choose: no dup2, no dup3. */
int sb__win_dup3(int fd, int to, int flags)
{
    (void)fd;
    (void)to;
    (void)flags;
    errno = ENOSYS;
    return -1;
}

int sb__win_fd_path(int fd, char *out, size_t n)
{
    wchar_t w[32768];
    DWORD k = GetFinalPathNameByHandleW(H(fd), w, 32768, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
    if (k == 0 || k >= 32768)
        return k == 0 ? -win_errno(GetLastError()) : -ENAMETOOLONG;
    const wchar_t *p = w;
    if (wcsncmp(p, L"\\\\?\\UNC\\", 8) == 0) {
        p += 6; /* keep "\\" of "\\server\share" */
        w[6] = L'\\';
    } else if (wcsncmp(p, L"\\\\?\\", 4) == 0) {
        p += 4;
    }
    int r = WideCharToMultiByte(CP_UTF8, 0, p, -1, out, (int)n, NULL, NULL);
    if (r == 0)
        return -ENAMETOOLONG;
    for (char *c = out; *c; c++)
        if (*c == '\\')
            *c = '/';
    return 0;
}

char *sb__win_realpath(const char *path, char *out)
{
    int fd = sb__win_open(path, O_RDONLY);
    char buf[PATH_MAX * 4];
    if (fd < 0)
        return NULL;
    int r = sb__win_fd_path(fd, buf, sizeof buf);
    CloseHandle(H(fd));
    if (r < 0 || (out != NULL && strlen(buf) >= PATH_MAX)) {
        errno = r < 0 ? -r : ENAMETOOLONG;
        return NULL;
    }
    if (out == NULL)
        return _strdup(buf);
    strcpy(out, buf);
    return out;
}

int sb__win_openat(int dirfd, const char *rel, int flags, ...)
{
    char path[PATH_MAX * 4];
    int r = sb__win_fd_path(dirfd, path, sizeof path);
    size_t len = strlen(path);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    if (len + 1 + strlen(rel) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    path[len] = '/';
    strcpy(path + len + 1, rel);
    return sb__win_open(path, flags & ~O_NONBLOCK);
}

ssize_t sb__win_readlink(const char *path, char *out, size_t n)
{
    char buf[PATH_MAX * 4];
    int fd;
    if (sscanf(path, "/proc/self/fd/%d", &fd) != 1) {
        errno = EINVAL;
        return -1;
    }
    int r = sb__win_fd_path(fd, buf, sizeof buf);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    size_t len = strlen(buf);
    if (len > n)
        len = n;
    memcpy(out, buf, len); /* like readlink(2): no terminating NUL */
    return (ssize_t)len;
}

long sb__win_syscall(long nr, ...)
{
    (void)nr;
    errno = ENOSYS;
    return -1;
}

int sb__win_mkstemp(char *tmpl)
{
    size_t n = strlen(tmpl);
    static const char set[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    if (n < 6 || strcmp(tmpl + n - 6, "XXXXXX") != 0) {
        errno = EINVAL;
        return -1;
    }
    for (int tries = 0; tries < 100; tries++) {
        uint64_t v = ((uint64_t)GetTickCount64() << 20) ^ (uint64_t)GetCurrentProcessId() * 2654435761u ^ (uint64_t)tries * 40503u;
        for (int i = 0; i < 6; i++, v /= 36)
            tmpl[n - 6 + i] = set[v % 36];
        int fd = sb__win_open(tmpl, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

/* ---- text ---- */

/* The C runtime has no text for the socket errnos: glibc's words, so that
 * messages read the same on both systems. */
char *sb__win_strerror(int e)
{
    switch (e) {
    case EADDRINUSE: return "Address already in use";
    case EADDRNOTAVAIL: return "Cannot assign requested address";
    case EAFNOSUPPORT: return "Address family not supported by protocol";
    case EALREADY: return "Operation already in progress";
    case ECANCELED: return "Operation canceled";
    case ECONNABORTED: return "Software caused connection abort";
    case ECONNREFUSED: return "Connection refused";
    case ECONNRESET: return "Connection reset by peer";
    case EDESTADDRREQ: return "Destination address required";
    case EHOSTUNREACH: return "No route to host";
    case EINPROGRESS: return "Operation now in progress";
    case EISCONN: return "Transport endpoint is already connected";
    case ELOOP: return "Too many levels of symbolic links";
    case EMSGSIZE: return "Message too long";
    case ENETDOWN: return "Network is down";
    case ENETRESET: return "Network dropped connection on reset";
    case ENETUNREACH: return "Network is unreachable";
    case ENOBUFS: return "No buffer space available";
    case ENOPROTOOPT: return "Protocol not available";
    case ENOTCONN: return "Transport endpoint is not connected";
    case ENOTSOCK: return "Socket operation on non-socket";
    case ENOTSUP: return "Operation not supported";
    case EOPNOTSUPP: return "Operation not supported";
    case EOVERFLOW: return "Value too large for defined data type";
    case EPROTO: return "Protocol error";
    case EPROTONOSUPPORT: return "Protocol not supported";
    case EPROTOTYPE: return "Protocol wrong type for socket";
    case ETIMEDOUT: return "Connection timed out";
    case EWOULDBLOCK: return "Resource temporarily unavailable";
    case EAGAIN: return "Resource temporarily unavailable";
    case ENOENT: return "No such file or directory";
    case ENOSYS: return "Function not implemented";
    default: return strerror(e);
    }
}

/* %z of a local time: its distance from UTC, as the C runtime computes
 * both (mktime reads tm as local time, _mkgmtime as UTC). */
size_t sb__win_strftime(char *out, size_t n, const char *fmt, const struct tm *tm)
{
    char f[256], zone[8];
    size_t k = 0;
    struct tm a = *tm, b = *tm;
    long off = (long)difftime(_mkgmtime(&a), mktime(&b));
    snprintf(zone, sizeof zone, "%c%02ld%02ld", off < 0 ? '-' : '+', labs(off) / 3600, labs(off) / 60 % 60);
    for (const char *p = fmt; *p && k + 6 < sizeof f; p++) {
        if (p[0] == '%' && p[1] == 'z') {
            memcpy(f + k, zone, 5);
            k += 5;
            p++;
        } else if (p[0] == '%' && p[1] != '\0') {
            f[k++] = *p++;
            f[k++] = *p;
        } else {
            f[k++] = *p;
        }
    }
    f[k] = '\0';
    return strftime(out, n, f, tm);
}

void *sb__win_memmem(const void *h, size_t hn, const void *n, size_t nn)
{
    const unsigned char *p = h, *end;
    if (nn == 0)
        return (void *)h;
    if (hn < nn)
        return NULL;
    end = p + hn - nn;
    for (; p <= end; p++) {
        p = memchr(p, *(const unsigned char *)n, (size_t)(end - p) + 1);
        if (p == NULL)
            return NULL;
        if (memcmp(p, n, nn) == 0)
            return (void *)p;
    }
    return NULL;
}

ssize_t sb__win_getline(char **line, size_t *cap, FILE *f)
{
    size_t n = 0;
    int c;
    if (*line == NULL || *cap == 0) {
        *cap = 128;
        if ((*line = realloc(*line, *cap)) == NULL)
            return -1;
    }
    while ((c = getc(f)) != EOF) {
        if (n + 2 > *cap) {
            char *p = realloc(*line, *cap * 2);
            if (p == NULL)
                return -1;
            *line = p;
            *cap *= 2;
        }
        (*line)[n++] = (char)c;
        if (c == '\n')
            break;
    }
    (*line)[n] = '\0';
    return n == 0 && c == EOF ? -1 : (ssize_t)n;
}

char *sb__win_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* ---- signals: console control events ---- */

/* Windows has no signals to speak of; it calls a console control handler,
 * on a thread of its own, for Ctrl-C, Ctrl-Break and the console closing.
 * They are delivered as SIGINT (Ctrl-C) and SIGTERM (the others) to the
 * handlers set with sigaction(), which the library's handlers already
 * treat as another thread would: an atomic store and a write to a socket. */
#define NSIGS 32
static void (*volatile handlers[NSIGS])(int);

static void call_handler(int signo)
{
    void (*fn)(int) = handlers[signo];
    if (fn != SIG_DFL && fn != SIG_IGN && fn != SIG_ERR)
        fn(signo);
}

static BOOL WINAPI on_console(DWORD ev)
{
    int signo = ev == CTRL_C_EVENT ? SIGINT : SIGTERM;
    void (*fn)(int) = handlers[signo];
    if (fn == SIG_DFL)
        return FALSE; /* the next handler: the default ends the process */
    call_handler(signo);
    /* After a close, logoff or shutdown event the process ends when this
     * returns: give the loop the time Windows allows to stop cleanly. */
    if (ev == CTRL_CLOSE_EVENT || ev == CTRL_LOGOFF_EVENT || ev == CTRL_SHUTDOWN_EVENT)
        Sleep(INFINITE);
    return TRUE;
}

int sb__win_sigaction(int signo, const struct sigaction *sa, struct sigaction *old)
{
    static LONG installed;
    if (signo <= 0 || signo >= NSIGS || signo == SIGKILL || signo == SIGSTOP) {
        errno = EINVAL;
        return -1;
    }
    if (old != NULL) {
        memset(old, 0, sizeof *old);
        old->sa_handler = handlers[signo];
    }
    if (sa == NULL)
        return 0;
    if ((signo == SIGINT || signo == SIGTERM) && InterlockedExchange(&installed, 1) == 0)
        SetConsoleCtrlHandler(on_console, TRUE);
    handlers[signo] = sa->sa_handler;
    return 0;
}

void (*sb__win_signal(int signo, void (*fn)(int)))(int)
{
    struct sigaction sa = {0}, old;
    sa.sa_handler = fn;
    if (sb__win_sigaction(signo, &sa, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

int sb__win_raise(int signo)
{
    if (signo <= 0 || signo >= NSIGS) {
        errno = EINVAL;
        return -1;
    }
    void (*fn)(int) = handlers[signo];
    if (fn == SIG_IGN)
        return 0;
    if (fn == SIG_DFL)
        ExitProcess(128u + (unsigned)signo);
    call_handler(signo);
    return 0;
}

int sb__win_kill(pid_t pid, int signo)
{
    if (pid == getpid())
        return sb__win_raise(signo);
    errno = ENOSYS;
    return -1;
}

/* ---- processes, memory, CPUs ---- */

pid_t sb__win_fork(void)
{
    errno = ENOSYS; /* the fork model is refused before it gets here */
    return -1;
}

pid_t sb__win_waitpid(pid_t pid, int *st, int opt)
{
    (void)pid;
    (void)st;
    (void)opt;
    errno = ECHILD;
    return -1;
}

void *sb__win_mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off)
{
    (void)addr;
    (void)prot;
    (void)fd;
    (void)off;
    if (!(flags & MAP_ANONYMOUS)) {
        errno = ENOSYS;
        return MAP_FAILED;
    }
    void *p = VirtualAlloc(NULL, n, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (p == NULL) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return p;
}

int sb__win_munmap(void *p, size_t n)
{
    (void)n;
    return VirtualFree(p, 0, MEM_RELEASE) ? 0 : win_fail();
}

/* Memory from here is released with free(), which cannot take an aligned
 * block from _aligned_malloc: malloc's 16-byte alignment it is (the
 * callers align for cache lines, a matter of speed, not of correctness). */
int sb__win_posix_memalign(void **p, size_t align, size_t n)
{
    (void)align;
    *p = malloc(n);
    return *p == NULL ? ENOMEM : 0;
}

int sb__win_getrlimit(int what, struct rlimit *rl)
{
    (void)what;
    rl->rlim_cur = rl->rlim_max = 1u << 24; /* handles: bounded by memory */
    return 0;
}

int sb__win_setrlimit(int what, const struct rlimit *rl)
{
    (void)what;
    (void)rl;
    return 0;
}

int sb__win_sched_getaffinity(pid_t pid, size_t n, cpu_set_t *set)
{
    DWORD_PTR proc, sys;
    (void)pid;
    (void)n;
    if (!GetProcessAffinityMask(GetCurrentProcess(), &proc, &sys))
        return win_fail();
    set->mask = proc;
    return 0;
}

static struct timeval tv_of(FILETIME t)
{
    uint64_t v = ((uint64_t)t.dwHighDateTime << 32) | t.dwLowDateTime;
    struct timeval tv = {(long)(v / 10000000u), (long)(v % 10000000u / 10)};
    return tv;
}

int sb__win_getrusage(int who, struct rusage *ru)
{
    FILETIME c, e, k, u;
    (void)who;
    memset(ru, 0, sizeof *ru);
    if (!GetProcessTimes(GetCurrentProcess(), &c, &e, &k, &u))
        return win_fail();
    ru->ru_utime = tv_of(u);
    ru->ru_stime = tv_of(k);
    return 0;
}

/* ---- what the tests use besides ---- */

long sb__win_sysconf(int name)
{
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    if (name == _SC_PAGESIZE)
        return (long)si.dwPageSize;
    if (name == _SC_NPROCESSORS_ONLN)
        return (long)si.dwNumberOfProcessors;
    errno = EINVAL;
    return -1;
}

int sb__win_mprotect(void *p, size_t n, int prot)
{
    DWORD old, mode = prot == PROT_NONE ? PAGE_NOACCESS : (prot & PROT_WRITE) ? PAGE_READWRITE : PAGE_READONLY;
    return VirtualProtect(p, n, mode, &old) ? 0 : win_fail();
}

char *sb__win_mkdtemp(char *tmpl)
{
    size_t n = strlen(tmpl);
    static const char set[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    if (n < 6 || strcmp(tmpl + n - 6, "XXXXXX") != 0) {
        errno = EINVAL;
        return NULL;
    }
    for (int tries = 0; tries < 100; tries++) {
        uint64_t v = ((uint64_t)GetTickCount64() << 20) ^ (uint64_t)GetCurrentProcessId() * 2654435761u ^ (uint64_t)tries * 40503u;
        for (int i = 0; i < 6; i++, v /= 36)
            tmpl[n - 6 + i] = set[v % 36];
        if (CreateDirectoryA(tmpl, NULL))
            return tmpl;
        if (GetLastError() != ERROR_ALREADY_EXISTS) {
            win_fail();
            return NULL;
        }
    }
    errno = EEXIST;
    return NULL;
}

/* alarm(): a timer-queue timer that delivers SIGALRM (its handler, or the
 * end of the process when there is none, as the default disposition). */
static HANDLE alarm_timer;

static VOID CALLBACK on_alarm(PVOID ud, BOOLEAN fired)
{
    (void)ud;
    (void)fired;
    if (handlers[SIGALRM] == SIG_DFL) {
        fputs("Alarm clock\n", stderr);
        ExitProcess(128 + SIGALRM);
    }
    call_handler(SIGALRM);
}

unsigned sb__win_alarm(unsigned seconds)
{
    if (alarm_timer != NULL) {
        DeleteTimerQueueTimer(NULL, alarm_timer, NULL);
        alarm_timer = NULL;
    }
    if (seconds > 0 && !CreateTimerQueueTimer(&alarm_timer, NULL, on_alarm, NULL, seconds * 1000u, 0,
                                              WT_EXECUTEONLYONCE))
        alarm_timer = NULL;
    return 0;
}
