/* cli: the `switchboard` command. Each subcommand lives in its own file and
 * returns the process exit code: 0 success, 1 runtime failure, 2 usage.
 *
 * The rule between 1 and 2: 2 when the command line alone is wrong - an
 * unknown option, a missing argument, a value or ADDR that does not parse,
 * options that cannot go together; nothing was tried. 1 when the command was
 * well formed and the world said no - connection refused, address in use, a
 * name that does not resolve, a file that cannot be opened, a timeout, a
 * malformed answer. */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <stdarg.h>

#include "switchboard.h"

int cmd_serve(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Print "switchboard: <subcommand>: <what>: <why>" to stderr: the one place
 * every error message of the command is shaped. The subcommand is the one
 * main() dispatched to; <what> names the thing that failed (an option, an
 * ADDR, a URL, a file) and fmt says why. */
void cli_error(const char *what, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Why a --frame value did not parse, in words (a static buffer). */
const char *cli_frame_why(const char *val);
/* Report what getopt_long (with opterr = 0 and an optstring starting with
 * ':') returned for a bad option: ':' a missing value, else an unknown
 * option. argv[optind_now - 1] is the offending word. Returns 2. */
int cli_getopt_error(int opt, char **argv, int optind_now);
/* Parse a decimal option value into [lo, hi]; on failure print a usage
 * error naming the option and return -1. */
int cli_parse_long(const char *opt, const char *val, long lo, long hi, long *out);
/* A plain decimal number (digits, an optional fraction: no sign, exponent,
 * inf or nan) in lo..hi into *out; otherwise an error naming `what`. */
int cli_parse_decimal(const char *opt, const char *val, double lo, double hi, const char *what,
                      double *out);
/* Parse a number of seconds (decimal, fraction allowed: "0.5") into
 * [lo, hi]; on failure print a usage error naming the option, return -1. */
int cli_parse_seconds(const char *opt, const char *val, double lo, double hi, double *out);
/* Parse a byte size: digits with an optional K/M/G suffix (binary units). */
int cli_parse_size(const char *opt, const char *val, size_t *out);

#endif
