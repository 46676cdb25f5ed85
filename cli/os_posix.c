/* os_posix: the command on POSIX systems (see os.h). */
#include <stddef.h>

#include "os.h"

const char *const cli_os_no_fork = NULL;
const char cli_os_backends[] = "epoll | poll | select | uring (epoll);\n"
                               "                         uring is completion-based (io_uring does the I/O)";

void cli_os_init(void)
{
}
