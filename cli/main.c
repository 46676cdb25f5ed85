/* switchboard: the command. Dispatches to one file per subcommand. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: switchboard <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve   run a server: echo, chat or a static HTTP/1.1 web server\n"
    "  send    send messages with a framing and print the replies\n"
    "  get     fetch a URL over HTTP/1.1 (the HOWTO's browser)\n"
    "  bench   load-test a server and report latency percentiles\n"
    "\n"
    "`switchboard <command> --help` describes each command.\n"
    "  --help      this text\n"
    "  --version   print the version\n";

void cli_error(const char *what, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "switchboard: %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_parse_long(const char *opt, const char *val, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (val == NULL) {
        cli_error(opt, "missing value");
        return -1;
    }
    errno = 0;
    v = strtol(val, &end, 10);
    if (errno != 0 || end == val || *end != '\0' || v < lo || v > hi) {
        cli_error(opt, "'%s' is not a number in %ld..%ld", val, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* Written by hand rather than with strtod, which also takes "nan", "inf",
 * "1e3", "0x1p4", signs and leading blanks: a timeout is DIGITS[.DIGITS],
 * nothing else. */
int cli_parse_ms(const char *opt, const char *val, long max_s, int *out)
{
    const char *p = val ? val : "";
    long long ms = 0, max_ms = (long long)max_s * 1000;
    int ok;

    while (*p >= '0' && *p <= '9' && ms <= max_ms) /* stops before overflow */
        ms = ms * 10 + (*p++ - '0') * 1000;
    ok = p != val && val != NULL;
    if (ok && *p == '.') {
        p++;
        ok = *p >= '0' && *p <= '9';
        for (int scale = 100; ok && *p >= '0' && *p <= '9'; p++, scale /= 10) {
            if (scale == 0)
                ok = 0; /* below a millisecond */
            else
                ms += (*p - '0') * scale;
        }
    }
    if (!ok || *p != '\0' || ms > max_ms) {
        cli_error(opt, "'%s' is not a number of seconds in 0..%ld, at most 3 decimals",
                  val ? val : "", max_s);
        return -1;
    }
    *out = (int)ms;
    return 0;
}

int cli_parse_size(const char *opt, const char *val, size_t *out)
{
    char *end;
    unsigned long long v, mul = 1;

    if (val == NULL || *val < '0' || *val > '9') {
        cli_error(opt, "'%s' is not a size", val ? val : "");
        return -1;
    }
    errno = 0;
    v = strtoull(val, &end, 10);
    switch (*end) {
    case 'k': case 'K': mul = 1ULL << 10; end++; break;
    case 'm': case 'M': mul = 1ULL << 20; end++; break;
    case 'g': case 'G': mul = 1ULL << 30; end++; break;
    default: break;
    }
    if (errno != 0 || *end != '\0' || v > SIZE_MAX / mul) {
        cli_error(opt, "'%s' is not a size (digits, optional K/M/G)", val);
        return -1;
    }
    *out = (size_t)(v * mul);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (cmd == NULL) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("switchboard %s\n", sb_version());
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "send") == 0)
        return cmd_send(argc - 1, argv + 1);
    if (strcmp(cmd, "get") == 0)
        return cmd_get(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(argc - 1, argv + 1);
    cli_error(cmd, "unknown command (try --help)");
    return 2;
}
