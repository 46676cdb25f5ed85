/* os_posix: the command on POSIX systems (see os.h). */
#include <stddef.h>

#include "os.h"

const char *const cli_os_no_fork = NULL;

void cli_os_init(void)
{
}
