/** @file
 * sock: blocking socket helpers (HOWTO sections 2-4).
 *
 * Every socket is created SOCK_CLOEXEC; sends use MSG_NOSIGNAL so a closed
 * peer gives -EPIPE instead of killing the process; EINTR is retried inside
 * and close() never is. Deadlines are absolute times on the monotonic clock
 * in milliseconds (sb_now_ms() + timeout), or SB_NO_DEADLINE: a dead peer
 * can hang a call only as long as the caller allows.
 */
#ifndef SWITCHBOARD_SOCK_H
#define SWITCHBOARD_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#ifdef _WIN32
#include <winsock2.h> /* struct sockaddr (Windows: no sys/socket.h) */
#include <ws2tcpip.h> /* socklen_t, struct sockaddr_storage */
#else
#include <sys/socket.h>
#endif

#include "addr.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A deadline that never comes: wait without a timeout. */
#define SB_NO_DEADLINE INT64_MAX

/** @{ */
/** Monotonic clock in milliseconds / microseconds / nanoseconds. */
int64_t sb_now_ms(void);
int64_t sb_now_us(void);
int64_t sb_now_ns(void);
/** @} */

/** Connect to ADDR, trying every resolved address in turn until one accepts
 * within timeout_ms each (<= 0: no timeout). TCP sockets get TCP_NODELAY.
 * Returns a blocking fd or the last error (-ECONNREFUSED, -ETIMEDOUT, ...). */
int sb_dial(const char *addr, int timeout_ms);
/** The same for an already resolved address. */
int sb_dial_addr(const sb_addr *a, int timeout_ms);

/** Bind and listen on ADDR: SO_REUSEADDR, dual-stack for "[::]" and ":PORT",
 * backlog <= 0 means SOMAXCONN. A stale unix socket file is replaced only
 * if nothing answers on it. Returns a blocking listening fd or an error. */
int sb_listen(const char *addr, int backlog);
/** Accept one connection (CLOEXEC; flags may add SOCK_NONBLOCK). peer may be
 * NULL. Returns the fd or a negative errno (-EAGAIN on a non-blocking
 * listener with nothing pending, -EMFILE, ...). */
int sb_accept(int lfd, sb_addr *peer, int flags);
/** The port a listening TCP socket is bound to (after port 0), or error. */
int sb_local_port(int fd);

/** Send all n bytes, looping over short sends (HOWTO 3). Returns n, or a
 * negative errno (-ETIMEDOUT when the deadline passes; bytes may have been
 * partly sent). Works on non-blocking sockets too (waits with poll). */
ssize_t sb_send_all(int fd, const void *p, size_t n, int64_t deadline);
/** Receive exactly n bytes. Returns n, SB_ECLOSED if the peer closed before
 * the first byte, SB_ETRUNCATED if it closed after some, -ETIMEDOUT. */
ssize_t sb_recv_exact(int fd, void *p, size_t n, int64_t deadline);
/** Receive what is there (at least 1 byte, at most n): the count, 0 at EOF,
 * or a negative errno (-ETIMEDOUT). */
ssize_t sb_recv_some(int fd, void *p, size_t n, int64_t deadline);
/** Wait until fd is readable (events = POLLIN) or writable (POLLOUT).
 * Returns 0, -ETIMEDOUT, or a negative errno. */
int sb_wait_fd(int fd, short events, int64_t deadline);

/** shutdown(SHUT_WR): "I'm not going to send anymore, but I'll still listen". */
int sb_shutdown_write(int fd);

/** TCP_NODELAY on (on != 0) or off. Returns 0 or a negative errno. */
int sb_set_nodelay(int fd, int on);
/** O_NONBLOCK on (on != 0) or off. Returns 0 or a negative errno. */
int sb_set_nonblock(int fd, int on);
/** SO_KEEPALIVE plus TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT (each <= 0
 * leaves the system default). */
int sb_set_keepalive(int fd, int on, int idle_s, int interval_s, int count);

#ifdef __cplusplus
}
#endif

#endif
