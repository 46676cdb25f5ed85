/* metrics: a tiny HTTP/1.0-style server for GET /metrics, on a thread of
 * its own.
 *
 * Why a thread and not a worker's loop: a scrape then never takes a turn
 * from a worker (whose latency the scrape is meant to measure), works when
 * every worker is saturated, and needs no connection machinery - the
 * exchange is one short request and one response. The counters it reads
 * are the workers' own (relaxed atomic loads of single-writer counters:
 * see sb__stats), so the scrape adds no lock and no shared write to the
 * message path.
 *
 * Up to SB_SCRAPE_CLIENTS connections are served at once from one poll
 * set, every socket non-blocking: a scraper that stalls (silent, or not
 * reading its response) holds only its own slot, until SB_SCRAPE_MS or
 * until a new connection needs the slot more (the oldest still reading
 * its request is dropped), never the scrapes of others. */
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

#define SB_SCRAPE_MS 2000     /* a scrape (request and response) ends by then */
#define SB_SCRAPE_REQ 4096    /* request bytes read at most */
#define SB_SCRAPE_CLIENTS 8   /* connections served at once */

/* One scrape connection: the request read into req, then the response
 * (out, owned) written from off. */
struct sb__scrape {
    int fd;            /* -1: slot free */
    int64_t end;       /* the deadline */
    size_t have;       /* request bytes in req */
    char *out;         /* the response, NULL while reading */
    size_t len, off;
    char req[SB_SCRAPE_REQ + 1];
};

struct sb__exporter {
    const sb_server *s;
    int lfd;
    int pipe[2];       /* a byte on pipe[1] stops the thread */
    pthread_t thread;
    int started;
    char where[160];
    char *body;        /* the last exposition, grown as needed */
    size_t cap;
    struct sb__scrape c[SB_SCRAPE_CLIENTS];
};

int sb__exporter_new(struct sb__exporter **out, const char *addr, const sb_server *s)
{
    struct sb__exporter *e = calloc(1, sizeof(*e));
    int rc;

    if (e == NULL)
        return -ENOMEM;
    e->s = s;
    e->pipe[0] = e->pipe[1] = -1;
    for (int i = 0; i < SB_SCRAPE_CLIENTS; i++)
        e->c[i].fd = -1;
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

static void scrape_end(struct sb__scrape *c)
{
    close(c->fd);
    free(c->out);
    c->fd = -1;
    c->out = NULL;
}

/* The request is complete: build the whole response into c->out. */
static void scrape_answer(struct sb__exporter *e, struct sb__scrape *c)
{
    static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 25\r\nConnection: close\r\n\r\ntry GET /metrics instead\n";
    int ok = strncmp(c->req, "GET /metrics ", 13) == 0 || strncmp(c->req, "GET /metrics?", 13) == 0;
    int n = ok ? render(e) : -1;
    char head[256];
    int hl = 0;

    if (n >= 0)
        hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n", n);
    c->len = n >= 0 ? (size_t)hl + (size_t)n : sizeof(nf) - 1;
    c->out = malloc(c->len);
    if (c->out == NULL) {
        scrape_end(c);
        return;
    }
    if (n >= 0) {
        memcpy(c->out, head, (size_t)hl);
        memcpy(c->out + hl, e->body, (size_t)n);
    } else
        memcpy(c->out, nf, c->len);
    c->off = 0;
}

/* Readable: take what came; a blank line (or SB_SCRAPE_REQ bytes) ends the
 * request. */
static void scrape_read(struct sb__exporter *e, struct sb__scrape *c)
{
    ssize_t n = recv(c->fd, c->req + c->have, SB_SCRAPE_REQ - c->have, MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        scrape_end(c);
        return;
    }
    c->have += (size_t)n;
    c->req[c->have] = '\0';
    if (c->have == SB_SCRAPE_REQ || strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
        scrape_answer(e, c);
}

static void scrape_write(struct sb__scrape *c)
{
    ssize_t w = send(c->fd, c->out + c->off, c->len - c->off, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (w < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (w <= 0 || (c->off += (size_t)w) == c->len)
        scrape_end(c);
}

/* A free slot; when none, the one reading its request the longest is
 * dropped (a stalled scraper gives way to a new one). NULL: every slot is
 * writing a response. */
static struct sb__scrape *scrape_slot(struct sb__exporter *e)
{
    struct sb__scrape *old = NULL;

    for (int i = 0; i < SB_SCRAPE_CLIENTS; i++) {
        struct sb__scrape *c = &e->c[i];
        if (c->fd < 0)
            return c;
        if (c->out == NULL && (old == NULL || c->end < old->end))
            old = c;
    }
    if (old != NULL)
        scrape_end(old);
    return old;
}

static void scrape_accept(struct sb__exporter *e)
{
    struct sb__scrape *c;
    int fd = sb_accept(e->lfd, NULL, SOCK_NONBLOCK);

    if (fd < 0) {
        if (fd == -EMFILE || fd == -ENFILE)
            poll(NULL, 0, 100); /* the scraper retries; no spinning */
        return;
    }
    if ((c = scrape_slot(e)) == NULL) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->have = 0;
    c->end = sb_now_ms() + SB_SCRAPE_MS;
}

/* Poll the stop pipe, the listener and every open scrape until the
 * nearest deadline. Returns 1 when asked to stop. */
static int exporter_turn(struct sb__exporter *e)
{
    struct pollfd p[2 + SB_SCRAPE_CLIENTS];
    int idx[SB_SCRAPE_CLIENTS], n = 2, timeout = -1;
    int64_t now = sb_now_ms();

    p[0] = (struct pollfd){e->pipe[0], POLLIN, 0};
    p[1] = (struct pollfd){e->lfd, POLLIN, 0};
    for (int i = 0; i < SB_SCRAPE_CLIENTS; i++) {
        struct sb__scrape *c = &e->c[i];
        if (c->fd < 0)
            continue;
        if (c->end <= now) {
            scrape_end(c);
            continue;
        }
        if (timeout < 0 || c->end - now < timeout)
            timeout = (int)(c->end - now);
        idx[n - 2] = i;
        p[n++] = (struct pollfd){c->fd, c->out ? POLLOUT : POLLIN, 0};
    }
    if (poll(p, (nfds_t)n, timeout) < 0)
        return errno != EINTR;
    if (p[0].revents)
        return 1;
    for (int k = 2; k < n; k++) {
        struct sb__scrape *c = &e->c[idx[k - 2]];
        if (p[k].revents == 0 || c->fd != p[k].fd)
            continue;
        if (c->out == NULL)
            scrape_read(e, c);
        else
            scrape_write(c);
    }
    if (p[1].revents & POLLIN)
        scrape_accept(e);
    return 0;
}

static void *exporter_main(void *arg)
{
    struct sb__exporter *e = arg;

    while (!exporter_turn(e))
        ;
    for (int i = 0; i < SB_SCRAPE_CLIENTS; i++)
        if (e->c[i].fd >= 0)
            scrape_end(&e->c[i]);
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

void sb__exporter_close_child(struct sb__exporter *e)
{
    if (e == NULL)
        return;
    close(e->lfd);
    close(e->pipe[0]);
    close(e->pipe[1]);
    /* Only the forking thread exists in the child: the exporter's thread is
     * gone, and the slots it left are closed, not served. */
    for (int i = 0; i < SB_SCRAPE_CLIENTS; i++)
        if (e->c[i].fd >= 0)
            close(e->c[i].fd);
}
