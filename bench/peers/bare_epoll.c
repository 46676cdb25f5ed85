/* bare_epoll: the floor of the benchmark. One thread, level-triggered
 * epoll, every readable connection is read into one 64 KiB buffer and the
 * bytes are written straight back. A byte echo is a correct echo for every
 * framing, so this serves every bench workload.
 *
 * The only extra over "read, write back" is correctness under a short
 * write: the unsent tail is kept per connection and the connection stops
 * being read until it is flushed (so memory stays bounded by one read).
 *
 * usage: bare_epoll PORT   (listens on 127.0.0.1:PORT)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ (64 * 1024)

struct pending {
    char *p;   /* unsent bytes (malloc'd), NULL when none */
    size_t n;  /* their count */
    size_t off;
};

static struct pending *pend; /* indexed by fd */
static size_t npend;

static int listen_on(int port)
{
    struct sockaddr_in sin;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, SOMAXCONN) < 0)
        return -1;
    return fd;
}

static void drop(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if ((size_t)fd < npend) {
        free(pend[fd].p);
        pend[fd].p = NULL;
    }
}

static int grow(int fd)
{
    size_t n = npend ? npend : 1024;
    struct pending *np;

    while ((size_t)fd >= n)
        n *= 2;
    if (n == npend)
        return 0;
    np = realloc(pend, n * sizeof *np);
    if (np == NULL)
        return -1;
    memset(np + npend, 0, (n - npend) * sizeof *np);
    pend = np;
    npend = n;
    return 0;
}

static void on_accept(int ep, int lfd)
{
    for (;;) {
        int one = 1;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN };

        if (fd < 0)
            return; /* EAGAIN, or EMFILE: try again next turn */
        if (grow(fd) < 0) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Write p[0..n); keep what the socket did not take. Returns -1 to drop. */
static int send_back(int ep, int fd, const char *p, size_t n)
{
    struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

    if (w < 0 && errno != EAGAIN)
        return -1;
    if (w < 0)
        w = 0;
    if ((size_t)w == n)
        return 0;
    pend[fd].p = malloc(n - (size_t)w);
    if (pend[fd].p == NULL)
        return -1;
    memcpy(pend[fd].p, p + w, n - (size_t)w);
    pend[fd].n = n - (size_t)w;
    pend[fd].off = 0;
    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static int on_writable(int ep, int fd)
{
    struct pending *q = &pend[fd];
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    ssize_t w = send(fd, q->p + q->off, q->n - q->off, MSG_NOSIGNAL);

    if (w < 0)
        return errno == EAGAIN ? 0 : -1;
    q->off += (size_t)w;
    if (q->off < q->n)
        return 0;
    free(q->p);
    q->p = NULL;
    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

int main(int argc, char **argv)
{
    static char buf[BUFSZ];
    struct epoll_event evs[256];
    int lfd, ep;

    if (argc != 2) {
        fprintf(stderr, "usage: bare_epoll PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = listen_on(atoi(argv[1]));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (lfd < 0 || ep < 0) {
        perror("bare_epoll");
        return 1;
    }
    evs[0].events = EPOLLIN;
    evs[0].data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &evs[0]);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);

        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            ssize_t r;

            if (fd == lfd) {
                on_accept(ep, lfd);
                continue;
            }
            if (pend[fd].p != NULL) {
                if (on_writable(ep, fd) < 0)
                    drop(ep, fd);
                continue;
            }
            r = recv(fd, buf, sizeof buf, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                drop(ep, fd);
            else if (r > 0 && send_back(ep, fd, buf, (size_t)r) < 0)
                drop(ep, fd);
        }
    }
}
