/* netinet/tcp.h on Windows: everything is in sb_win32.h (force-included). */
#ifndef SB_COMPAT_NETINET_TCP_H
#define SB_COMPAT_NETINET_TCP_H
#include "sb_win32.h"
#endif
