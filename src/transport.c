/* transport: the plain transport - bytes go straight to the socket through
 * the system-call table (sys.h), so fault injection sees every call but
 * shutdown. */
#include <string.h>
#include <sys/socket.h>

#include "sys.h"
#include "transport.h"

static ssize_t plain_read(void *state, int fd, void *p, size_t n, int dontwait)
{
    return sb__sys.recv(fd, p, n, dontwait ? MSG_DONTWAIT : 0);
}

static ssize_t plain_writev(void *state, int fd, const struct iovec *iov, int cnt, int dontwait)
{
    struct msghdr mh;

    /* One buffer (the usual reply): send(2) skips copying in a msghdr and
     * importing an iovec, a measurable share of a small message's cost. */
    if (cnt == 1)
        return sb__sys.send(fd, iov[0].iov_base, iov[0].iov_len,
                            MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)cnt;
    /* sendmsg rather than writev: MSG_NOSIGNAL, a closed peer is EPIPE. */
    return sb__sys.sendmsg(fd, &mh, MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
}

static ssize_t plain_sendfile(void *state, int fd, int file, off_t *off, size_t n)
{
    return sb__sys.sendfile(fd, file, off, n);
}

static int plain_shutdown(void *state, int fd)
{
    return shutdown(fd, SHUT_WR);
}

const sb__transport sb__transport_plain = {
    .name = "plain",
    .read = plain_read,
    .writev = plain_writev,
    .sendfile = plain_sendfile,
    .shutdown = plain_shutdown,
};
