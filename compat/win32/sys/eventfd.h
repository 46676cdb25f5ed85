/* sys/eventfd.h on Windows: everything is in sb_win32.h (force-included). */
#ifndef SB_COMPAT_SYS_EVENTFD_H
#define SB_COMPAT_SYS_EVENTFD_H
#include "sb_win32.h"
#endif
