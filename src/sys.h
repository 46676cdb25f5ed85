/* sys: every system call and allocation the library makes goes through one
 * table, so tests can make the N-th malloc, accept, recv or send fail,
 * return a short count, EINTR or EAGAIN (see tests/fault.h). In normal use
 * the table holds the libc functions and costs one indirect call.
 *
 * Internal: library code calls sb__malloc(...) / sb__sys.recv(...) instead
 * of malloc / recv. The wrappers keep libc's errno convention (-1 + errno);
 * conversion to negative errno happens in the caller, in one place.
 */
#ifndef SB_SYS_H
#define SB_SYS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <poll.h>

struct io_uring;
struct io_uring_params;

struct sb__sys_table {
    void *(*malloc)(size_t n);
    void *(*calloc)(size_t count, size_t n);
    void *(*realloc)(void *p, size_t n);
    void (*free)(void *p);
    int (*socket)(int domain, int type, int proto);
    int (*connect)(int fd, const struct sockaddr *sa, socklen_t len);
    int (*accept4)(int fd, struct sockaddr *sa, socklen_t *len, int flags);
    ssize_t (*recv)(int fd, void *p, size_t n, int flags);
    ssize_t (*send)(int fd, const void *p, size_t n, int flags);
    ssize_t (*read)(int fd, void *p, size_t n);
    ssize_t (*write)(int fd, const void *p, size_t n);
    ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
    ssize_t (*sendfile)(int out_fd, int in_fd, off_t *off, size_t n);
    int (*poll)(struct pollfd *fds, nfds_t nfds, int timeout);
    int (*close)(int fd);
    /* io_uring_queue_init_params, when not NULL (the default: loop_uring.c
     * calls liburing's own, so this file needs no liburing): a test points
     * it at a failure to play a kernel without io_uring (ENOSYS) or one
     * that forbids it (EPERM: kernel.io_uring_disabled, a seccomp filter). */
    int (*uring_init)(unsigned entries, struct io_uring *ring, struct io_uring_params *p);
    /* When not NULL (the default is NULL), what a ring's receive or send
     * that moved res > 0 bytes reports to its connection: a test returns
     * an error to play a failure the kernel did not have (the bytes moved
     * all the same: a receive's are dropped with the connection, a send's
     * went out). */
    int (*uring_io)(int res);
};

extern struct sb__sys_table sb__sys;

/* Restore the libc functions (tests call this between cases). */
void sb__sys_reset(void);

static inline void *sb__malloc(size_t n) { return sb__sys.malloc(n); }
static inline void *sb__calloc(size_t c, size_t n) { return sb__sys.calloc(c, n); }
static inline void *sb__realloc(void *p, size_t n) { return sb__sys.realloc(p, n); }
static inline void sb__free(void *p) { sb__sys.free(p); }

#endif
