/* sys: the table of system calls and allocators (see sys.h). */
#include <stdlib.h>
#include <unistd.h>
#include <sys/sendfile.h>

#include "sys.h"

static ssize_t sys_sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
    return sendfile(out_fd, in_fd, off, n);
}

static const struct sb__sys_table sb__libc = {
    .malloc = malloc,
    .calloc = calloc,
    .realloc = realloc,
    .free = free,
    .socket = socket,
    .connect = connect,
    .accept4 = accept4,
    .recv = recv,
    .send = send,
    .read = read,
    .write = write,
    .writev = writev,
    .sendmsg = sendmsg,
    .sendfile = sys_sendfile,
    .poll = poll,
    .close = close,
};

struct sb__sys_table sb__sys = {
    .malloc = malloc,
    .calloc = calloc,
    .realloc = realloc,
    .free = free,
    .socket = socket,
    .connect = connect,
    .accept4 = accept4,
    .recv = recv,
    .send = send,
    .read = read,
    .write = write,
    .writev = writev,
    .sendmsg = sendmsg,
    .sendfile = sys_sendfile,
    .poll = poll,
    .close = close,
};

void sb__sys_reset(void)
{
    sb__sys = sb__libc;
}
