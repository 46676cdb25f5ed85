/* os_posix: what a POSIX system offers the library (see os.h). */
#include "os.h"

const int sb__os_has_fork = 1;
const int sb__os_has_reuseport = 1;
