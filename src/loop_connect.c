/* loop_connect: sb_loop_connect, the non-blocking connect of HOWTO
 * section 5 done on the loop (see loop.h).
 *
 * One attempt per resolved address, in order: socket, connect, and on
 * EINPROGRESS watch for writable - the kernel's "the handshake is over" -
 * then read the outcome from SO_ERROR. Each attempt has its own timer, so
 * an address that drops SYNs (a full accept queue, a firewall) costs at
 * most timeout_ms before the next one is tried. The callback runs exactly
 * once, always from the loop: an outcome known inside sb_loop_connect is
 * delivered through a defer.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "switchboard/addr.h"
#include "switchboard/error.h"
#include "switchboard/loop.h"
#include "sys.h"

#define SB_CONNECT_MAX_ADDRS 8 /* enough for dual-stack names with a few A/AAAA */

struct sb__connect {
    sb_loop *l;
    sb_connect_cb cb;
    void *ud;
    sb_timer timer;   /* the current attempt's timeout */
    sb_defer defer;   /* delivers an outcome known before the loop ran */
    int timeout_ms;   /* per attempt; <= 0 = none */
    int fd;           /* the attempt in flight or the result, -1 none */
    int result;       /* what the defer delivers */
    int next, n;      /* next address to try, addresses resolved */
    sb_addr addr[SB_CONNECT_MAX_ADDRS];
};

static void finish(struct sb__connect *c, int result)
{
    sb_loop *l = c->l;
    sb_connect_cb cb = c->cb;
    void *ud = c->ud;
    sb_timer_stop(l, &c->timer);
    sb__free(c);
    cb(l, result, ud);
}

/* Drop the attempt in flight, if any. */
static void abandon(struct sb__connect *c)
{
    if (c->fd < 0)
        return;
    sb_loop_watch(c->l, c->fd, 0, NULL, NULL);
    sb_timer_stop(c->l, &c->timer);
    sb__sys.close(c->fd);
    c->fd = -1;
}

static void on_writable(sb_loop *l, int fd, int events, void *ud);

static int set_nodelay(int fd, int family)
{
    int one = 1;
    if (family != AF_INET && family != AF_INET6)
        return 0;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ? -errno : 0;
}

/* Wait for the handshake: returns 1, or a negative error. */
static int await(struct sb__connect *c, int fd)
{
    int r = sb_loop_watch(c->l, fd, SB_WRITABLE, on_writable, c);
    if (r == 0 && c->timeout_ms > 0)
        r = sb_timer_start(c->l, &c->timer, c->timeout_ms);
    if (r < 0) {
        sb_loop_watch(c->l, fd, 0, NULL, NULL);
        return r;
    }
    c->fd = fd;
    return 1;
}

/* One address: 0 connected at once (c->fd set), 1 in progress, or a
 * negative error. A non-blocking connect interrupted by a signal goes on
 * in the background, so EINTR is EINPROGRESS. */
static int attempt(struct sb__connect *c, const sb_addr *a)
{
    int fd = sb__sys.socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = set_nodelay(fd, a->family);
    if (r == 0 && sb__sys.connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
        c->fd = fd;
        return 0;
    }
    if (r == 0)
        r = (errno == EINPROGRESS || errno == EINTR) ? await(c, fd) : -errno;
    if (r < 0)
        sb__sys.close(fd);
    return r;
}

/* Try addresses from c->next on: 1 when one is in progress, 0 when one
 * connected at once, else the last error. */
static int try_next(struct sb__connect *c, int err)
{
    while (c->next < c->n) {
        int r = attempt(c, &c->addr[c->next++]);
        if (r >= 0)
            return r;
        err = r;
    }
    return err;
}

/* From a loop callback: the attempt failed with err; go on or give up. */
static void failed(struct sb__connect *c, int err)
{
    abandon(c);
    int r = try_next(c, err);
    if (r == 1)
        return;
    finish(c, r == 0 ? c->fd : r);
}

static void on_writable(sb_loop *l, int fd, int events, void *ud)
{
    struct sb__connect *c = ud;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        failed(c, -err);
        return;
    }
    sb_loop_watch(l, fd, 0, NULL, NULL);
    finish(c, fd);
}

static void on_timeout(sb_loop *l, sb_timer *t)
{
    failed(t->data, -ETIMEDOUT);
}

static void on_defer(sb_loop *l, sb_defer *d)
{
    struct sb__connect *c = d->data;
    finish(c, c->result);
}

int sb_loop_connect(sb_loop *l, const char *addr, int timeout_ms, sb_connect_cb cb, void *ud)
{
    struct sb__connect *c = sb__calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    int n = sb_addr_resolve(addr, 0, c->addr, SB_CONNECT_MAX_ADDRS);
    if (n < 0) {
        sb__free(c);
        return n;
    }
    c->l = l;
    c->cb = cb;
    c->ud = ud;
    c->timeout_ms = timeout_ms;
    c->fd = -1;
    c->n = n;
    sb_timer_init(&c->timer, on_timeout, c);
    sb_defer_init(&c->defer, on_defer, c);
    int r = try_next(c, SB_ENOHOST);
    if (r != 1) {
        c->result = r == 0 ? c->fd : r;
        sb_defer_queue(l, &c->defer);
    }
    return 0;
}
