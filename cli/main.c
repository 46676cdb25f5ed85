/* switchboard: the command. Dispatches to one file per subcommand. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "os.h"

/* The subcommand running, set once by main() before it dispatches, so that
 * every message names it without each call site having to. */
static const char *cli_cmd;

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
    "\n"
    "  -h, --help      this text\n"
    "  -V, --version   print the version\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure (connection refused, address in\n"
    "use, timeout, a file that cannot be opened), 2 usage error (unknown option,\n"
    "a value or ADDR that does not parse).\n";

void cli_error(const char *what, const char *fmt, ...)
{
    va_list ap;

    if (cli_cmd != NULL)
        fprintf(stderr, "switchboard: %s: %s: ", cli_cmd, what);
    else
        fprintf(stderr, "switchboard: %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *cli_frame_why(const char *val)
{
    /* What each framing with an argument expects, for the one the user
     * named; anything else is not a framing at all. */
    static const struct {
        const char *prefix, *form;
    } forms[] = {
        {"delim:", "delim:STR, STR non-empty with C escapes such as \\r\\n"},
        {"fixed:", "fixed:N, N a message size of at least 1 byte"},
        {"ascii:", "ascii:N, N the number of length digits, 1..20"},
        {"typed:", "typed:T=N,..., T one character or 0xHH, each type once"},
    };
    static char why[512];

    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        if (strncmp(val, forms[i].prefix, strlen(forms[i].prefix)) == 0) {
            snprintf(why, sizeof why, "'%.200s' is not a valid %.*s framing (the form is %s)", val,
                     (int)strlen(forms[i].prefix) - 1, forms[i].prefix, forms[i].form);
            return why;
        }
    snprintf(why, sizeof why,
             "'%.200s' is not a framing (raw, line, delim:STR, fixed:N, ascii:N, len16, len32, "
             "len64, varint, typed:T=N,..., eof)", val);
    return why;
}

int cli_getopt_error(int opt, char **argv, int optind_now)
{
    const char *arg = argv[optind_now - 1];
    char shortopt[3] = {'-', (char)optopt, '\0'};

    /* A long option is the word itself (up to any '='); a short one may sit
     * inside a cluster ("-Lx"), so optopt names it. */
    if (strncmp(arg, "--", 2) != 0 && optopt > 0 && optopt < 128)
        arg = shortopt;
    if (opt == ':')
        cli_error(arg, "missing value (try --help)");
    else
        cli_error(arg, "unknown option (try --help)");
    return 2;
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

int cli_parse_decimal(const char *opt, const char *val, double lo, double hi, const char *what,
                      double *out)
{
    char *end;
    double v;

    if (val == NULL) {
        cli_error(opt, "missing value");
        return -1;
    }
    errno = 0;
    v = strtod(val, &end);
    /* strtod also takes "inf", "nan", exponents and hex floats; an option's
     * number is plain decimal digits with an optional fraction. */
    if (errno != 0 || end == val || *end != '\0' || strspn(val, "0123456789.") != strlen(val) ||
        !(v >= lo && v <= hi)) {
        cli_error(opt, "'%s' is not %s in %.15g..%.15g", val, what, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *opt, const char *val, double lo, double hi, double *out)
{
    return cli_parse_decimal(opt, val, lo, hi, "a number of seconds", out);
}

int cli_parse_size(const char *opt, const char *val, size_t *out)
{
    char *end;
    unsigned long long v, mul = 1;

    if (val == NULL) {
        cli_error(opt, "missing value");
        return -1;
    }
    if (*val < '0' || *val > '9') {
        cli_error(opt, "'%s' is not a size (digits, optional K/M/G)", val);
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

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"serve", cmd_serve}, {"send", cmd_send}, {"get", cmd_get}, {"bench", cmd_bench},
};

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    cli_os_init();
    if (cmd == NULL) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("switchboard %s\n", sb_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(cmd, commands[i].name) == 0) {
            cli_cmd = commands[i].name;
            return commands[i].run(argc - 1, argv + 1);
        }
    cli_error(cmd, "not a command (serve, send, get, bench; try --help)");
    return 2;
}
