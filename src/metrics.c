/* metrics: a tiny HTTP/1.0-style server for GET /metrics, on a thread of
 * its own.
 *
 * Why a thread and not a worker's loop: a scrape then never takes a turn
 * from a worker (whose latency the scrape is meant to measure), works when
 * every worker is saturated, and needs no connection machinery - the
 * exchange is one short request and one response, so plain blocking I/O
 * with a poll timeout is the simplest correct code. The counters it reads
 * are the workers' own (relaxed atomic loads of single-writer counters:
 * see sb__stats), so the scrape adds no lock and no shared write to the
 * message path. One scrape at a time: a scraper that stalls is cut after
 * SB_SCRAPE_MS. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>

#include "switchboard.h"
#include "metrics_int.h"
#include "sys.h"

#define SB_SCRAPE_MS 2000
#define SB_SCRAPE_REQ 4096 /* request bytes read at most */

struct sb__exporter {
    const sb_server *s;
    int lfd;
    int pipe[2];       /* a byte on pipe[1] stops the thread */
    pthread_t thread;
    int started;
    char where[160];
    char *body;        /* the last exposition, grown as needed */
    size_t cap;
};

int sb__exporter_new(struct sb__exporter **out, const char *addr, const sb_server *s)
{
    struct sb__exporter *e = calloc(1, sizeof(*e));
    int rc;

    if (e == NULL)
        return -ENOMEM;
    e->s = s;
    e->pipe[0] = e->pipe[1] = -1;
    e->lfd = sb_listen(addr, 16);
    if (e->lfd < 0) {
        rc = e->lfd;
        free(e);
        return rc;
    }
    if (pipe2(e->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        sb__exporter_free(e);
        return rc;
    }
    sb_set_nonblock(e->lfd, 1);
    {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(e->lfd, (struct sockaddr *)&ss, &len) == 0)
            sb_addr_format((struct sockaddr *)&ss, len, e->where, sizeof(e->where));
    }
    *out = e;
    return 0;
}

const char *sb__exporter_address(const struct sb__exporter *e)
{
    return e->where;
}

/* Read the request line (up to the blank line or SB_SCRATCH bytes) within
 * the deadline. Returns 1 for GET /metrics, 0 for anything else, -1 when
 * the client failed to send a request in time. */
static int read_request(int fd)
{
    char req[SB_SCRAPE_REQ + 1];
    size_t have = 0;
    int64_t end = sb_now_ms() + SB_SCRAPE_MS;

    while (have < SB_SCRAPE_REQ) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = end - sb_now_ms();
        ssize_t n;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        n = recv(fd, req + have, SB_SCRAPE_REQ - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        req[have] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[have] = '\0';
    return strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0;
}

static void send_all_by(int fd, const char *p, size_t n, int64_t end)
{
    while (n > 0) {
        struct pollfd pf = {fd, POLLOUT, 0};
        int64_t left = end - sb_now_ms();
        ssize_t w;
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            return;
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The exposition into e->body, grown until it fits. Returns its length. */
static int render(struct sb__exporter *e)
{
    for (;;) {
        int n = sb_server_metrics(e->s, e->body, e->cap);
        if (n < 0)
            return n;
        if ((size_t)n < e->cap)
            return n;
        char *b = realloc(e->body, (size_t)n + 4096);
        if (b == NULL)
            return -ENOMEM;
        e->body = b;
        e->cap = (size_t)n + 4096;
    }
}

static void serve_one(struct sb__exporter *e, int fd)
{
    char head[256];
    int64_t end = sb_now_ms() + SB_SCRAPE_MS;
    int ok = read_request(fd), n = 0, hl;

    if (ok < 0)
        return;
    if (ok)
        n = render(e);
    if (ok && n >= 0) {
        hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n", n);
        send_all_by(fd, head, (size_t)hl, end);
        send_all_by(fd, e->body, (size_t)n, end);
    } else {
        static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 25\r\nConnection: close\r\n\r\ntry GET /metrics instead\n";
        send_all_by(fd, nf, sizeof(nf) - 1, end);
    }
}

static void *exporter_main(void *arg)
{
    struct sb__exporter *e = arg;

    for (;;) {
        struct pollfd p[2] = {{e->pipe[0], POLLIN, 0}, {e->lfd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (!(p[1].revents & POLLIN))
            continue;
        int fd = sb_accept(e->lfd, NULL, 0);
        if (fd < 0) {
            if (fd == -EMFILE || fd == -ENFILE)
                poll(NULL, 0, 100); /* the scraper retries; no spinning */
            continue;
        }
        serve_one(e, fd);
        close(fd);
    }
    return NULL;
}

int sb__exporter_start(struct sb__exporter *e)
{
    if (e->started)
        return 0;
    if (pthread_create(&e->thread, NULL, exporter_main, e) != 0)
        return -EAGAIN;
    e->started = 1;
    return 0;
}

void sb__exporter_free(struct sb__exporter *e)
{
    if (e == NULL)
        return;
    if (e->started) {
        (void)!write(e->pipe[1], "s", 1);
        pthread_join(e->thread, NULL);
    }
    if (e->lfd >= 0)
        close(e->lfd);
    for (int i = 0; i < 2; i++)
        if (e->pipe[i] >= 0)
            close(e->pipe[i]);
    free(e->body);
    free(e);
}
