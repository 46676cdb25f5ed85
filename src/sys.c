/* sys: the table of system calls and allocators (see sys.h). */
#include <stdlib.h>
#include <unistd.h>
#include <sys/sendfile.h>

#include "sys.h"

static ssize_t sys_sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
    return sendfile(out_fd, in_fd, off, n);
}

/* The libc functions, written once: the live table starts as this and
 * sb__sys_reset() puts it back. */
#define SB__LIBC_TABLE                                                      \
    {                                                                       \
        .malloc = malloc, .calloc = calloc, .realloc = realloc, .free = free, \
        .socket = socket, .connect = connect, .accept4 = accept4,           \
        .recv = recv, .send = send, .read = read, .write = write,           \
        .writev = writev, .sendmsg = sendmsg, .sendfile = sys_sendfile,     \
        .poll = poll, .close = close,                                       \
    }

static const struct sb__sys_table sb__libc = SB__LIBC_TABLE;

struct sb__sys_table sb__sys = SB__LIBC_TABLE;

void sb__sys_reset(void)
{
    sb__sys = sb__libc;
}
