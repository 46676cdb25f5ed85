/* os_win32: the command on Windows (see os.h). */
#include <fcntl.h>
#include <io.h>
#include <stdio.h>

#include "os.h"

/* HOWTO 5.1: "don't do this on Windows - the overhead of process creation
 * is enormous there". Windows has no fork() at all. */
const char cli_os_backends[] = "poll | select (poll)";
const char *const cli_os_no_fork =
    "Windows has no fork(), and creating a process per connection costs too much there: "
    "use --model threads or --model event";

void cli_os_init(void)
{
    _setmode(0, _O_BINARY);
    _setmode(1, _O_BINARY);
    _setmode(2, _O_BINARY);
}
