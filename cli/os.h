/* os: what the command does differently per platform (cli/os_posix.c,
 * cli/os_win32.c; the build picks one). */
#ifndef SB_CLI_OS_H
#define SB_CLI_OS_H

/* NULL where --model fork works; else why it does not, for the message. */
extern const char *const cli_os_no_fork;

/* The --backend choices built here and the default, for --help. */
extern const char cli_os_backends[];

/* Called first in main: on Windows, the standard streams in binary mode,
 * so that replies and downloads are written byte for byte. */
void cli_os_init(void);

#endif
