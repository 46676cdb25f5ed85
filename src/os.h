/* os: what the system under the library can do, where the code cannot
 * simply try (src/os_posix.c, src/os_win32.c; the build picks one). */
#ifndef SB_OS_H
#define SB_OS_H

/* 1 where fork() exists: the fork model runs only there. */
extern const int sb__os_has_fork;
/* 1 where SO_REUSEPORT lets each worker bind its own listener; else the
 * workers share one. */
extern const int sb__os_has_reuseport;

#endif
