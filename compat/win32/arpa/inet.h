/* arpa/inet.h on Windows: everything is in sb_win32.h (force-included). */
#ifndef SB_COMPAT_ARPA_INET_H
#define SB_COMPAT_ARPA_INET_H
#include "sb_win32.h"
#endif
