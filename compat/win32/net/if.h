/* net/if.h on Windows: everything is in sb_win32.h (force-included). */
#ifndef SB_COMPAT_NET_IF_H
#define SB_COMPAT_NET_IF_H
#include "sb_win32.h"
#endif
