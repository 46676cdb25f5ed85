/* sys/resource.h on Windows: everything is in sb_win32.h (force-included). */
#ifndef SB_COMPAT_SYS_RESOURCE_H
#define SB_COMPAT_SYS_RESOURCE_H
#include "sb_win32.h"
#endif
