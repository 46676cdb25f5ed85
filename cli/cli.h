/* cli: the `switchboard` command. Each subcommand lives in its own file and
 * returns the process exit code: 0 success, 1 runtime failure, 2 usage. */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <stdarg.h>

#include "switchboard.h"

int cmd_serve(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Print "switchboard: <what>: <why>" to stderr. */
void cli_error(const char *what, const char *fmt, ...);
/* Parse a decimal option value into [lo, hi]; on failure print a usage
 * error naming the option and return -1. */
int cli_parse_long(const char *opt, const char *val, long lo, long hi, long *out);
/* Parse seconds with up to 3 decimals ("2", "0.25") in [0, max_s] into
 * milliseconds; no sign, exponent, nan or inf. Usage error as above. */
int cli_parse_ms(const char *opt, const char *val, long max_s, int *out);
/* Parse a byte size: digits with an optional K/M/G suffix (binary units). */
int cli_parse_size(const char *opt, const char *val, size_t *out);

#endif
