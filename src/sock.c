/* sock: the blocking socket helpers of HOWTO sections 2-4 - dial, listen,
 * accept, send everything, receive exactly, half-close - each bounded by a
 * deadline so a dead peer can never hang the caller.
 *
 * Divisions: clock; system call wrappers (the one place errno becomes a
 * negative code and EINTR is retried); waiting; dial; listen and accept;
 * sending and receiving; options.
 *
 * Every system call that tests may want to fail goes through sb__sys.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "switchboard.h"
#include "sys.h"
#include "sock_int.h"

/* How many resolved addresses dial and listen consider: a name with more
 * than this many A/AAAA records is unusual, and the rest are ignored. */
#define SB_MAX_ADDRS 16

/* ---- clock -------------------------------------------------------------- */

int64_t sb_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sb_now_us(void) { return sb_now_ns() / 1000; }
int64_t sb_now_ms(void) { return sb_now_ns() / 1000000; }

static int64_t deadline_in(int timeout_ms)
{
    return timeout_ms > 0 ? sb_now_ms() + timeout_ms : SB_NO_DEADLINE;
}

/* ---- system call wrappers ------------------------------------------------- */

/* errno as a negative code; never 0, so a failure can not pass for success. */
static int neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

static ssize_t x_recv(int fd, void *p, size_t n, int flags)
{
    ssize_t r;

    do
        r = sb__sys.recv(fd, p, n, flags);
    while (r < 0 && errno == EINTR);
    return r < 0 ? neg_errno() : r;
}

static ssize_t x_send(int fd, const void *p, size_t n, int flags)
{
    ssize_t r;

    do
        r = sb__sys.send(fd, p, n, flags | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? neg_errno() : r;
}

static int x_socket(int family, int type)
{
    int fd = sb__sys.socket(family, type | SOCK_CLOEXEC, 0);

    return fd < 0 ? neg_errno() : fd;
}

/* A connect interrupted by a signal goes on in the background, exactly like
 * one that returned EINPROGRESS, so it must not be retried: both mean
 * "wait for writability". */
static int x_connect(int fd, const sb_addr *a)
{
    if (sb__sys.connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
        return 0;
    return errno == EINTR ? -EINPROGRESS : neg_errno();
}

/* close() is never retried: on Linux the descriptor is gone even when close
 * reports EINTR, and retrying could close a descriptor another thread has
 * just been given. */
static void x_close(int fd)
{
    int saved = errno;

    sb__sys.close(fd);
    errno = saved;
}

static int x_setsockopt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? neg_errno() : 0;
}

/* ---- waiting -------------------------------------------------------------- */

/* Milliseconds left until deadline for poll(): -1 for none, clamped. */
static int poll_timeout(int64_t deadline)
{
    int64_t left;

    if (deadline == SB_NO_DEADLINE)
        return -1;
    left = deadline - sb_now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

int sb_wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd pfd;
    int r;

    for (;;) {
        pfd.fd = fd;
        pfd.events = events;
        pfd.revents = 0;
        r = sb__sys.poll(&pfd, 1, poll_timeout(deadline));
        if (r > 0)
            /* POLLERR and POLLHUP count as ready: the call that follows
             * reports what happened. */
            return (pfd.revents & POLLNVAL) ? -EBADF : 0;
        if (r < 0 && errno != EINTR)
            return neg_errno();
        /* Timed out or interrupted: poll rounds, so check the clock. */
        if (deadline != SB_NO_DEADLINE && sb_now_ms() >= deadline)
            return -ETIMEDOUT;
    }
}

/* ---- dial ------------------------------------------------------------------ */

static int socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return neg_errno();
    return -err;
}

/* TCP: a non-blocking connect bounded by poll, then back to blocking. */
static int connect_tcp(int fd, const sb_addr *a, int timeout_ms)
{
    int r = x_connect(fd, a);

    if (r == -EINPROGRESS) {
        r = sb_wait_fd(fd, POLLOUT, deadline_in(timeout_ms));
        if (r == 0)
            r = socket_error(fd);
    }
    if (r == 0)
        r = sb_set_nonblock(fd, 0);
    if (r == 0)
        r = sb_set_nodelay(fd, 1);
    return r;
}

/* Unix: connect completes at once, or - when the listener's backlog is full
 * - waits for room. Non-blocking, that wait would be an immediate EAGAIN,
 * so the socket stays blocking and the kernel bounds the wait by
 * SO_SNDTIMEO (reported as EAGAIN too). */
static int connect_unix(int fd, const sb_addr *a, int timeout_ms)
{
    struct timeval tv = {0, 0};
    int r;

    if (timeout_ms > 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
            return neg_errno();
    }
    r = x_connect(fd, a);
    if (r == -EINPROGRESS) /* interrupted: Unix connects can be restarted */
        r = x_connect(fd, a);
    if (r == -EAGAIN)
        r = -ETIMEDOUT;
    if (r == 0 && timeout_ms > 0) {
        tv.tv_sec = tv.tv_usec = 0;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
            r = neg_errno();
    }
    return r;
}

int sb_dial_addr(const sb_addr *a, int timeout_ms)
{
    int unix_ = a->family == AF_UNIX;
    int fd = x_socket(a->family, SOCK_STREAM | (unix_ ? 0 : SOCK_NONBLOCK));
    int r;

    if (fd < 0)
        return fd;
    r = unix_ ? connect_unix(fd, a, timeout_ms) : connect_tcp(fd, a, timeout_ms);
    if (r < 0) {
        x_close(fd);
        return r;
    }
    return fd;
}

int sb_dial(const char *addr, int timeout_ms)
{
    sb_addr a[SB_MAX_ADDRS];
    int n = sb_addr_resolve(addr, 0, a, SB_MAX_ADDRS);
    int i, fd = n;

    for (i = 0; i < n; i++) {
        fd = sb_dial_addr(&a[i], timeout_ms);
        if (fd >= 0)
            break;
    }
    return fd;
}

/* ---- listen and accept ------------------------------------------------------ */

/* A unix socket file outlives the process that bound it. It is stale - and
 * safe to remove - only if it is a socket and connecting to it is refused:
 * a live server answers, and anything that is not a socket is not ours. */
static int unix_path_is_stale(const sb_addr *a)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;
    struct stat st;
    int fd, r;

    if (lstat(un->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return 0;
    fd = x_socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK);
    if (fd < 0)
        return 0;
    r = x_connect(fd, a);
    x_close(fd);
    return r == -ECONNREFUSED;
}

static int bind_addr(int fd, const sb_addr *a)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

    if (bind(fd, sa, a->len) == 0)
        return 0;
    if (errno != EADDRINUSE || a->family != AF_UNIX || !unix_path_is_stale(a))
        return neg_errno();
    unlink(((const struct sockaddr_un *)&a->ss)->sun_path);
    return bind(fd, sa, a->len) == 0 ? 0 : neg_errno();
}

static int is_in6_any(const sb_addr *a)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;

    return a->family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
}

static int listen_addr(const sb_addr *a, int backlog, int reuseport)
{
    int fd = x_socket(a->family, SOCK_STREAM);
    int r = 0;

    if (fd < 0)
        return fd;
    /* SO_REUSEADDR: a restarted server must not wait out TIME_WAIT. */
    if (a->family != AF_UNIX)
        r = x_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    /* SO_REUSEPORT: one listener per worker, and a new instance binding
     * while the old one drains. The kernel spreads connections over every
     * listener of the port by a hash of the 4-tuple. */
    if (r == 0 && reuseport && a->family != AF_UNIX)
        r = x_setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    /* [::] takes IPv4 too, whatever the system default says. */
    if (r == 0 && is_in6_any(a))
        r = x_setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    if (r == 0)
        r = bind_addr(fd, a);
    if (r == 0 && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
        r = neg_errno();
    if (r < 0) {
        x_close(fd);
        return r;
    }
    return fd;
}

int sb_listen(const char *addr, int backlog)
{
    return sb__listen_opt(addr, backlog, 0);
}

int sb__listen_opt(const char *addr, int backlog, int reuseport)
{
    sb_addr a[SB_MAX_ADDRS];
    int n = sb_addr_resolve(addr, 1, a, SB_MAX_ADDRS);
    int i, fd = n;

    /* The first address that can be bound wins: for ":PORT" that is the
     * dual-stack [::], or 0.0.0.0 on a host without IPv6. */
    for (i = 0; i < n; i++) {
        fd = listen_addr(&a[i], backlog, reuseport);
        if (fd >= 0)
            break;
    }
    return fd;
}

int sb_accept(int lfd, sb_addr *peer, int flags)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    for (;;) {
        len = sizeof(ss);
        fd = sb__sys.accept4(lfd, (struct sockaddr *)&ss, &len, flags | SOCK_CLOEXEC);
        if (fd >= 0)
            break;
        /* A connection that died in the queue, or a signal: neither is
         * the listener's failure, take the next one. */
        if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO)
            return neg_errno();
    }
    if (peer != NULL) {
        memset(peer, 0, sizeof(*peer));
        if (len > sizeof(ss))
            len = sizeof(ss); /* the kernel reports the untruncated length */
        memcpy(&peer->ss, &ss, len);
        peer->len = len;
        peer->family = ss.ss_family;
    }
    return fd;
}

int sb_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return neg_errno();
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

/* ---- sending and receiving ---------------------------------------------------- */

/* With a deadline every call is made MSG_DONTWAIT and poll does the waiting,
 * bounded by the deadline: a blocking socket can then never block past it.
 * Trying the call first (rather than polling first) saves a system call
 * whenever the socket is already ready, the common case. Without a deadline
 * a blocking socket simply blocks, and a non-blocking one waits in poll
 * when it reports EAGAIN. */
static int io_flags(int64_t deadline)
{
    return deadline == SB_NO_DEADLINE ? 0 : MSG_DONTWAIT;
}

static int would_block(ssize_t r)
{
    return r == -EAGAIN || r == -EWOULDBLOCK;
}

ssize_t sb_send_all(int fd, const void *p, size_t n, int64_t deadline)
{
    const char *c = p;
    size_t done = 0;
    ssize_t r;

    if (n > SSIZE_MAX)
        return -EINVAL; /* the count could not be returned */
    while (done < n) {
        r = x_send(fd, c + done, n - done, io_flags(deadline));
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r == 0)
            return -EIO; /* send of a non-empty buffer never returns 0 */
        if (!would_block(r))
            return r;
        r = sb_wait_fd(fd, POLLOUT, deadline);
        if (r < 0)
            return r;
    }
    return (ssize_t)n;
}

ssize_t sb_recv_some(int fd, void *p, size_t n, int64_t deadline)
{
    ssize_t r;

    for (;;) {
        r = x_recv(fd, p, n, io_flags(deadline));
        if (!would_block(r))
            return r;
        r = sb_wait_fd(fd, POLLIN, deadline);
        if (r < 0)
            return r;
    }
}

ssize_t sb_recv_exact(int fd, void *p, size_t n, int64_t deadline)
{
    char *c = p;
    size_t got = 0;
    ssize_t r;

    if (n > SSIZE_MAX)
        return -EINVAL;
    while (got < n) {
        r = sb_recv_some(fd, c + got, n - got, deadline);
        if (r < 0)
            return r;
        if (r == 0)
            return got == 0 ? SB_ECLOSED : SB_ETRUNCATED;
        got += (size_t)r;
    }
    return (ssize_t)n;
}

int sb_shutdown_write(int fd)
{
    return shutdown(fd, SHUT_WR) < 0 ? neg_errno() : 0;
}

/* ---- options ------------------------------------------------------------------- */

int sb_set_nodelay(int fd, int on)
{
    return x_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, on != 0);
}

int sb_set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return neg_errno();
    if (!(fl & O_NONBLOCK) == !on)
        return 0; /* already so: one system call instead of two */
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl) < 0 ? neg_errno() : 0;
}

int sb_set_keepalive(int fd, int on, int idle_s, int interval_s, int count)
{
    int r = x_setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, on != 0);

    if (r < 0 || !on)
        return r;
    if (idle_s > 0)
        r = x_setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
    if (r == 0 && interval_s > 0)
        r = x_setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s);
    if (r == 0 && count > 0)
        r = x_setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, count);
    return r;
}
