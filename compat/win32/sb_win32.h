/* sb_win32: the POSIX surface switchboard uses, on Windows (mingw-w64).
 *
 * The Windows build force-includes this header in every translation unit
 * (CMake: -include sb_win32.h), and compat/win32/ stands in for the POSIX
 * headers Windows lacks (sys/socket.h, poll.h, ...). The code above it is
 * the same code that runs on Linux: the differences live here and in
 * src/os_win32.c, as PostgreSQL's port/win32 and tmux's compat/ do it.
 *
 * The descriptor model. Every descriptor is an int:
 *   - a socket is its SOCKET handle. Windows documents that kernel handles
 *     fit in 32 bits (64-bit Windows shares them with 32-bit processes),
 *     INVALID_SOCKET truncates to -1, and handle values are multiples of 4;
 *   - a file is its kernel HANDLE, opened by open() below (not a CRT
 *     descriptor), so sockets and files come from one handle table and
 *     never share a number;
 *   - 0, 1 and 2 are the standard streams (no kernel handle is below 4).
 * read, write, close and dup look at which kind they were given.
 *
 * Errors: Winsock reports through WSAGetLastError(); every wrapper maps it
 * into errno (WSAEWOULDBLOCK -> EAGAIN, WSAECONNRESET -> ECONNRESET, ...)
 * so the callers' "return -errno" and sb_strerror() work unchanged, and
 * strerror() knows the socket errnos the C runtime has no text for.
 *
 * Names are replaced with object-like macros (#define recv sb__win_recv),
 * so that struct members that share a name (sb__sys.recv) are renamed the
 * same way in every file; that is why the header is force-included.
 */
#ifndef SB_WIN32_H
#define SB_WIN32_H

#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* Windows 10: AF_UNIX, WSAPoll */
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef FD_SETSIZE
/* Winsock's fd_set is an array of handles with a count, not a bitmap, so
 * its size is ours to choose: a select loop may watch this many sockets. */
#define FD_SETSIZE 4096
#endif

#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#include <mswsock.h>
#include <windows.h>
#include <iphlpapi.h>
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- windows.h names that collide with ours ---- */
#undef ERROR
#undef IN
#undef OUT
#undef interface
#undef near
#undef far

/* ---- sockets ---- */
typedef unsigned long nfds_t;
typedef unsigned short sa_family_t;
typedef uint16_t in_port_t;
typedef uint32_t in_addr_t;

struct iovec {
    void *iov_base;
    size_t iov_len;
};

struct msghdr {
    void *msg_name;
    socklen_t msg_namelen;
    struct iovec *msg_iov;
    size_t msg_iovlen;
    void *msg_control;
    size_t msg_controllen;
    int msg_flags;
};

#define SOCK_NONBLOCK 0x40000000 /* socket()/accept4() flags, as on Linux */
#define SOCK_CLOEXEC 0x20000000
#define MSG_NOSIGNAL 0           /* there is no SIGPIPE */
#define MSG_DONTWAIT 0x40000000  /* emulated: a zero-timeout poll first */
#define SHUT_RD SD_RECEIVE
#define SHUT_WR SD_SEND
#define SHUT_RDWR SD_BOTH
#define IOV_MAX 1024
#ifndef EAI_SYSTEM
#define EAI_SYSTEM (-11) /* never returned by Windows' getaddrinfo */
#endif
#ifndef IF_NAMESIZE
#define IF_NAMESIZE 256
#endif
#ifndef SO_REUSEPORT
#define SO_REUSEPORT 0x7fff0001 /* refused by setsockopt: ENOPROTOOPT */
#endif
#ifndef TCP_KEEPIDLE
#define TCP_KEEPIDLE 3
#endif
#ifndef TCP_KEEPINTVL
#define TCP_KEEPINTVL 17
#endif
#ifndef TCP_KEEPCNT
#define TCP_KEEPCNT 16
#endif

int sb__win_socket(int domain, int type, int proto);
int sb__win_connect(int fd, const struct sockaddr *sa, socklen_t len);
int sb__win_accept(int fd, struct sockaddr *sa, socklen_t *len);
int sb__win_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int sb__win_bind(int fd, const struct sockaddr *sa, socklen_t len);
int sb__win_listen(int fd, int backlog);
ssize_t sb__win_recv(int fd, void *p, size_t n, int flags);
ssize_t sb__win_send(int fd, const void *p, size_t n, int flags);
ssize_t sb__win_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t sb__win_writev(int fd, const struct iovec *iov, int cnt);
int sb__win_getsockopt(int fd, int level, int name, void *v, socklen_t *len);
int sb__win_setsockopt(int fd, int level, int name, const void *v, socklen_t len);
int sb__win_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int sb__win_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int sb__win_shutdown(int fd, int how);
int sb__win_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv);
int sb__win_poll(struct pollfd *fds, nfds_t n, int timeout_ms);
int sb__win_ioctl(int fd, unsigned long req, ...);
int sb__win_fcntl(int fd, int cmd, ...);
int sb__win_socketpair(int domain, int type, int proto, int sv[2]);
int sb__win_pipe2(int fd[2], int flags);
int sb__win_eventfd(unsigned int initval, int flags);
ssize_t sb__win_sendfile(int out, int in, off_t *off, size_t n);
/* The errno for a Winsock error code (WSAGetLastError()). */
int sb__win_errno(int wsa);

#define socket sb__win_socket
#define connect sb__win_connect
#define accept sb__win_accept
#define accept4 sb__win_accept4
#define bind sb__win_bind
#define listen sb__win_listen
#define recv sb__win_recv
#define send sb__win_send
#define sendmsg sb__win_sendmsg
#define writev sb__win_writev
#define getsockopt sb__win_getsockopt
#define setsockopt sb__win_setsockopt
#define getsockname sb__win_getsockname
#define getpeername sb__win_getpeername
#define shutdown sb__win_shutdown
#define select sb__win_select
#define poll sb__win_poll
#define ioctl sb__win_ioctl
#define fcntl sb__win_fcntl
#define socketpair sb__win_socketpair
#define pipe2 sb__win_pipe2
#define eventfd sb__win_eventfd
#define sendfile sb__win_sendfile
#define EFD_NONBLOCK SOCK_NONBLOCK
#define EFD_CLOEXEC SOCK_CLOEXEC

/* ---- descriptors: sockets, files, standard streams ---- */
#ifndef O_CLOEXEC
#define O_CLOEXEC 0 /* handles are opened non-inheritable */
#endif
#ifndef O_NONBLOCK
#define O_NONBLOCK 0x400000 /* sockets only (ioctlsocket FIONBIO) */
#endif
#ifndef O_DIRECTORY
#define O_DIRECTORY 0x200000
#endif
#ifndef O_NOCTTY
#define O_NOCTTY 0
#endif
#ifndef O_NOFOLLOW
#define O_NOFOLLOW 0
#endif
#define F_DUPFD_CLOEXEC 1030 /* refused: a handle's number is not ours to choose */
#define F_GETFD 1
#define F_SETFD 2
#define F_GETFL 3
#define F_SETFL 4
#define FD_CLOEXEC 1
#ifndef S_ISLNK
#define S_ISLNK(m) 0
#endif
#ifndef S_ISFIFO
#define S_ISFIFO(m) (((m) & _S_IFMT) == _S_IFIFO)
#endif
#ifndef S_ISCHR
#define S_ISCHR(m) (((m) & _S_IFMT) == _S_IFCHR)
#endif

int sb__win_open(const char *path, int flags, ...);
int sb__win_close(int fd);
ssize_t sb__win_read(int fd, void *p, size_t n);
ssize_t sb__win_write(int fd, const void *p, size_t n);
ssize_t sb__win_pread(int fd, void *p, size_t n, off_t off);
int sb__win_dup(int fd);
int sb__win_dup3(int fd, int to, int flags);
char *sb__win_realpath(const char *path, char *out);
int sb__win_mkstemp(char *tmpl);
/* The real path of an open file or directory (\\?\ and UNC prefixes
 * removed, '/' as separator), or a negative errno. */
int sb__win_fd_path(int fd, char *out, size_t n);

#define open sb__win_open
#define close sb__win_close
#define read sb__win_read
#define write sb__win_write
#define pread sb__win_pread
#define dup sb__win_dup
#define dup3 sb__win_dup3
#define realpath sb__win_realpath
#define mkstemp sb__win_mkstemp

/* ---- text ---- */
/* strftime with %z (msvcrt writes a zone name or nothing there). */
size_t sb__win_strftime(char *out, size_t n, const char *fmt, const struct tm *tm);
#define strftime sb__win_strftime
char *sb__win_strerror(int e);
void *sb__win_memmem(const void *h, size_t hn, const void *n, size_t nn);
ssize_t sb__win_getline(char **line, size_t *cap, FILE *f);
char *sb__win_strndup(const char *s, size_t n);
#define strerror sb__win_strerror
#define memmem sb__win_memmem
#define getline sb__win_getline
#define strndup sb__win_strndup

/* ---- signals: console control events delivered as SIGINT / SIGTERM ---- */
#ifndef SIGHUP
#define SIGHUP 1
#endif
#ifndef SIGQUIT
#define SIGQUIT 3
#endif
#ifndef SIGKILL
#define SIGKILL 9
#endif
#ifndef SIGUSR1
#define SIGUSR1 10
#endif
#ifndef SIGUSR2
#define SIGUSR2 12
#endif
#ifndef SIGPIPE
#define SIGPIPE 13
#endif
#ifndef SIGALRM
#define SIGALRM 14
#endif
#ifndef SIGCHLD
#define SIGCHLD 17
#endif
#ifndef SIGSTOP
#define SIGSTOP 19
#endif
#define SA_RESTART 0x10000000
#define SA_NOCLDSTOP 1
#define SA_RESETHAND 0x80000000

typedef unsigned long sb__win_sigset;
#define sigset_t sb__win_sigset
struct sigaction {
    void (*sa_handler)(int);
    sigset_t sa_mask;
    int sa_flags;
};
int sb__win_sigaction(int signo, const struct sigaction *sa, struct sigaction *old);
void (*sb__win_signal(int signo, void (*fn)(int)))(int);
int sb__win_raise(int signo);
int sb__win_kill(pid_t pid, int signo);
#define sigaction(s, a, o) sb__win_sigaction(s, a, o)
#define signal sb__win_signal
#define raise sb__win_raise
#define kill sb__win_kill
static inline int sigemptyset(sigset_t *s) { *s = 0; return 0; }
static inline int sigfillset(sigset_t *s) { *s = ~0ul; return 0; }
static inline int sigaddset(sigset_t *s, int n) { *s |= 1ul << n; return 0; }

/* ---- processes: no fork on Windows ---- */
pid_t sb__win_fork(void);
pid_t sb__win_waitpid(pid_t pid, int *st, int opt);
#define fork sb__win_fork
#define waitpid sb__win_waitpid
#define WNOHANG 1
#define WIFEXITED(s) 1
#define WEXITSTATUS(s) (s)
#define WIFSIGNALED(s) 0
#define WTERMSIG(s) 0

/* ---- memory, CPUs, limits ---- */
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_SHARED 1
#define MAP_PRIVATE 2
#define MAP_ANONYMOUS 0x20
#define MAP_FAILED ((void *)-1)
void *sb__win_mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off);
int sb__win_munmap(void *p, size_t n);
#define mmap sb__win_mmap
#define munmap sb__win_munmap
int sb__win_posix_memalign(void **p, size_t align, size_t n);
#define posix_memalign sb__win_posix_memalign

#define RLIMIT_NOFILE 7
typedef unsigned long rlim_t;
struct rlimit {
    rlim_t rlim_cur, rlim_max;
};
int sb__win_getrlimit(int what, struct rlimit *rl);
int sb__win_setrlimit(int what, const struct rlimit *rl);
#define getrlimit sb__win_getrlimit
#define setrlimit sb__win_setrlimit

#ifndef CLOCK_MONOTONIC_COARSE
#define CLOCK_MONOTONIC_COARSE CLOCK_MONOTONIC
#endif

/* ---- the safe open of apps/http_files.c: no openat2 here, so its
 * fallback runs - openat, then the opened file's real path (asked of the
 * handle, not computed from the name) checked against the root's. The
 * handle's path is what readlink("/proc/self/fd/N") answers on Linux. ---- */
#define SYS_openat2 437
#define RESOLVE_BENEATH 0x08
#define RESOLVE_NO_MAGICLINKS 0x02
struct open_how {
    uint64_t flags, mode, resolve;
};
long sb__win_syscall(long nr, ...);
int sb__win_openat(int dirfd, const char *rel, int flags, ...);
ssize_t sb__win_readlink(const char *path, char *out, size_t n);
#define syscall sb__win_syscall
#define openat sb__win_openat
#define readlink sb__win_readlink

/* ---- CPUs ---- */
typedef struct {
    uint64_t mask;
} sb__win_cpu_set;
#define cpu_set_t sb__win_cpu_set
#define CPU_COUNT(s) __builtin_popcountll((s)->mask)
int sb__win_sched_getaffinity(pid_t pid, size_t n, cpu_set_t *set);
#define sched_getaffinity sb__win_sched_getaffinity

/* ---- file status: POSIX's struct stat (mingw's has no st_mtim and a
 * 16-bit st_ino) ---- */
#undef stat
#undef fstat
struct sb__win_stat {
    uint32_t st_dev;     /* volume serial number */
    uint64_t st_ino;     /* file index */
    unsigned st_mode;
    unsigned st_nlink;
    int st_uid, st_gid;
    uint32_t st_rdev;
    int64_t st_size;
    struct timespec st_atim, st_mtim, st_ctim;
};
#define stat sb__win_stat
#define st_atime st_atim.tv_sec
#define st_mtime st_mtim.tv_sec
#define st_ctime st_ctim.tv_sec
#ifndef S_IFSOCK
#define S_IFSOCK 0xC000
#endif
#ifndef S_ISSOCK
#define S_ISSOCK(m) (((m) & S_IFMT) == S_IFSOCK)
#endif
int sb__win_stat(const char *path, struct sb__win_stat *st);
int sb__win_fstat(int fd, struct sb__win_stat *st);
int sb__win_lstat(const char *path, struct sb__win_stat *st);
#define fstat sb__win_fstat
#define lstat sb__win_lstat

/* ---- resource usage (bench's CPU time) ---- */
#define RUSAGE_SELF 0
struct rusage {
    struct timeval ru_utime, ru_stime;
    long ru_maxrss;
};
int sb__win_getrusage(int who, struct rusage *ru);
#define getrusage sb__win_getrusage

/* ---- what tests use besides ---- */
#define PROT_NONE 0
#define _SC_PAGESIZE 30
#define _SC_NPROCESSORS_ONLN 84
#ifndef SO_SNDBUFFORCE
#define SO_SNDBUFFORCE 0x7fff0002 /* refused: ENOPROTOOPT */
#endif
long sb__win_sysconf(int name);
int sb__win_mprotect(void *p, size_t n, int prot);
char *sb__win_mkdtemp(char *tmpl);
unsigned sb__win_alarm(unsigned seconds);
#define sysconf sb__win_sysconf
#define mprotect sb__win_mprotect
#define mkdtemp sb__win_mkdtemp
#define alarm sb__win_alarm

/* Where a path names a file the platform spells differently. */
#define SB__DEV_NULL "NUL"

#ifdef __cplusplus
}
#endif

#endif
