/* linux/openat2.h on Windows: everything is in sb_win32.h (force-included). */
#ifndef SB_COMPAT_LINUX_OPENAT2_H
#define SB_COMPAT_LINUX_OPENAT2_H
#include "sb_win32.h"
#endif
