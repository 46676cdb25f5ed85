/* url: the URLs of `switchboard get` - parsing what the user typed (curl's
 * habits: a URL without a scheme is http) and resolving a redirect's
 * Location against the URL it came from (RFC 3986 section 5.2). Pure string
 * work: no I/O, no allocation. */
#ifndef SB_CLI_URL_H
#define SB_CLI_URL_H

#include <stddef.h>

#define CLI_URL_MAX 8192 /* longest URL (and request target) we handle */

typedef struct cli_url {
    char scheme[16];          /* lowercase: "http" or "https" */
    char host[256];           /* without the brackets of an IPv6 literal */
    char port[6];             /* decimal; the scheme's default when none given */
    int v6;                   /* host is an IPv6 literal */
    int port_given;           /* the URL names a port */
    char target[CLI_URL_MAX]; /* path and query ("/" at least), no fragment */
} cli_url;

/* Results of cli_url_parse besides 0. */
#define CLI_URL_BAD (-1)    /* malformed: a usage error */
#define CLI_URL_SCHEME (-2) /* well formed, a scheme get cannot fetch (none today) */

/* Parse "scheme://host[:port][/path][?query][#fragment]", or the same
 * without "scheme://" (taken as http, as curl does). The fragment is
 * dropped: it is never sent. Returns 0, or CLI_URL_BAD / CLI_URL_SCHEME
 * with *why set to a static message. */
int cli_url_parse(const char *s, cli_url *u, const char **why);

/* Write u as "scheme://host[:port]target" into out[0..n). Returns the
 * length, or -1 if it does not fit. */
int cli_url_format(const cli_url *u, char *out, size_t n);

/* Resolve the reference ref (a Location value: absolute, "//host/p",
 * "/abs", "rel/../p", "?q", ...) against the absolute URL base as RFC 3986
 * section 5.2 says, into out[0..n). Bytes of ref that may not appear in a
 * URL (space, controls, non-ASCII) are percent-encoded on the way, as
 * browsers and curl do. The fragment is kept (the caller's parse drops
 * it). Returns the length, or -1 if the result does not fit. */
int cli_url_resolve(const char *base, const char *ref, char *out, size_t n);

/* RFC 3986 section 5.2.4 on the NUL-terminated path p, in place. */
void cli_url_remove_dots(char *p);

#endif
