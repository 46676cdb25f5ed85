/* get: `switchboard get URL` - the HOWTO's browser, with curl's habits.
 * Each request is one HTTP/1.1 exchange on a fresh connection with
 * "Connection: close"; the body is streamed to stdout (or -o FILE) as it
 * arrives, framed by Content-Length, chunked encoding, or the close. -L
 * follows up to MAX_REDIRS redirects, each Location resolved against the
 * URL it answered (RFC 3986 5.2).
 *
 *   1. options
 *   2. output: stdout or a file opened on the first byte
 *   3. one exchange: request, head, body
 *   4. the redirect chain and the exit status
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "url.h"

static const char get_usage[] =
    "usage: switchboard get URL [options]\n"
    "\n"
    "Fetch URL with HTTP/1.1 and print the body. URL is http://HOST[:PORT][/PATH],\n"
    "https://HOST[:PORT][/PATH] or the first without http:// (HOST may be [IPv6]).\n"
    "\n"
    "  -L, --location           follow redirects (301 302 303 307 308), at most 10\n"
    "  -I, --head               send HEAD and print the response head\n"
    "  -H, --header 'N: v'      add a request header, or replace the default one of\n"
    "                           that name (Host, User-Agent, Accept, Connection);\n"
    "                           'N:' removes it, 'N;' sends it empty; repeatable\n"
    "  -i, --include            print the response head before the body\n"
    "  -o, --output FILE        write to FILE instead of stdout\n"
    "  -f, --fail               on a status >= 400 print nothing and exit 1\n"
    "  -s, --silent             print no error messages (usage errors aside)\n"
    "  -S, --show-error         with -s, print error messages all the same\n"
    "  -v, --verbose            print both heads on stderr, '> ' request, '< ' response\n"
    "  --cacert FILE            https: trust the CA certificates in FILE (PEM)\n"
    "                           instead of the system's\n"
    "  -k, --insecure           https: do not verify the server's certificate\n"
    "                           or host name\n"
    "  --connect-timeout S      give up on a connect after S seconds (30)\n"
    "  -m, --max-time S         give up on the whole transfer after S seconds (none;\n"
    "                           a transfer that receives nothing for 60 s ends anyway)\n"
    "  -h, --help               this text\n"
    "\n"
    "S may have a fraction (0.5). Each hop of -L sends the -H headers again,\n"
    "except Host, Authorization and Cookie once the host or port changes.\n"
    "\n"
    "Exit status: 0 for any complete answer (a 404 too, unless -f), 1 for a\n"
    "runtime failure (connection refused, timeout, a malformed answer, too many\n"
    "redirects, a certificate that does not verify or name the host, an https\n"
    "body cut short without close_notify, https:// in a build without TLS,\n"
    "-f and a status >= 400;\n"
    "curl says 22 for the last, switchboard keeps its 0/1/2), 2 for a usage\n"
    "error (unknown option, a URL or value that does not parse).\n";

#define HEAD_MAX (64 * 1024) /* largest response head we accept */
#define IO_CHUNK (64 * 1024)
#define MAX_REDIRS 10        /* curl allows 50; ten is plenty for a real site */
#define MAX_HEADERS 64       /* -H options */
#define STALL_MS 60000       /* no byte for this long ends a transfer (said in the
                                help and the timeout message) */
#define REQ_MAX (16 * 1024)  /* our own request head */

/* ---- 1. Options ------------------------------------------------------- */

typedef struct get_opts {
    int follow, head_only, include, fail, silent, show_error, verbose;
    const char *output;
    const char *hdr[MAX_HEADERS]; /* -H values, pointing into argv */
    int nhdr;
    int connect_ms;
    int64_t max_ms; /* 0: no limit */
    const char *url;
    const char *cacert; /* --cacert */
    int insecure;       /* -k */
} get_opts;

/* "Name: value", "Name:" or "Name;" with a token name and no CR or LF. */
static int header_ok(const char *h)
{
    size_t n = strcspn(h, ":;");

    if (n == 0 || h[n] == '\0' || strpbrk(h, "\r\n") != NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strchr("!#$%&'*+-.^_`|~", h[i]) == NULL &&
            !((h[i] >= '0' && h[i] <= '9') || ((h[i] | 0x20) >= 'a' && (h[i] | 0x20) <= 'z')))
            return 0;
    return h[n] == ':' || h[n + 1] == '\0';
}

enum { O_CONNECT = 256, O_CACERT };

static const struct option get_long[] = {
    {"location", no_argument, NULL, 'L'},     {"head", no_argument, NULL, 'I'},
    {"header", required_argument, NULL, 'H'}, {"include", no_argument, NULL, 'i'},
    {"output", required_argument, NULL, 'o'}, {"fail", no_argument, NULL, 'f'},
    {"silent", no_argument, NULL, 's'},       {"show-error", no_argument, NULL, 'S'},
    {"verbose", no_argument, NULL, 'v'},      {"connect-timeout", required_argument, NULL, O_CONNECT},
    {"max-time", required_argument, NULL, 'm'}, {"help", no_argument, NULL, 'h'},
    {"cacert", required_argument, NULL, O_CACERT}, {"insecure", no_argument, NULL, 'k'},
    {NULL, 0, NULL, 0}};

static int get_option(get_opts *o, int opt, const char *val)
{
    double s;

    switch (opt) {
    case 'L': o->follow = 1; return 0;
    case 'I': o->head_only = 1; return 0;
    case 'i': o->include = 1; return 0;
    case 'o': o->output = val; return 0;
    case 'f': o->fail = 1; return 0;
    case 's': o->silent = 1; return 0;
    case 'S': o->show_error = 1; return 0;
    case 'v': o->verbose = 1; return 0;
    case 'k': o->insecure = 1; return 0;
    case O_CACERT: o->cacert = val; return 0;
    case 'H':
        if (!header_ok(val)) {
            cli_error("-H", "'%s' is not 'Name: value' (or 'Name:', 'Name;')", val);
            return -1;
        }
        if (o->nhdr == MAX_HEADERS) {
            cli_error("-H", "more than %d headers", MAX_HEADERS);
            return -1;
        }
        o->hdr[o->nhdr++] = val;
        return 0;
    case O_CONNECT:
        if (cli_parse_seconds("--connect-timeout", val, 0.001, 86400, &s) < 0)
            return -1;
        o->connect_ms = (int)(s * 1000 + 0.5);
        return 0;
    case 'm':
        if (cli_parse_seconds("--max-time", val, 0.001, 86400 * 30, &s) < 0)
            return -1;
        o->max_ms = (int64_t)(s * 1000 + 0.5);
        return 0;
    default: return -1;
    }
}

/* Returns -1 to go on, else the exit code (0 after --help). */
static int get_parse(get_opts *o, int argc, char **argv)
{
    int opt;

    memset(o, 0, sizeof *o);
    o->connect_ms = 30000;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":LIH:io:fsSvkm:h", get_long, NULL)) != -1) {
        if (opt == 'h') {
            fputs(get_usage, stdout);
            return 0;
        }
        if (opt == '?' || opt == ':')
            return cli_getopt_error(opt, argv, optind);
        if (get_option(o, opt, optarg) < 0)
            return 2;
    }
    if (optind != argc - 1) {
        if (optind >= argc)
            cli_error("URL", "missing (try --help)");
        else
            cli_error(argv[optind + 1], "unexpected argument: one URL only (try --help)");
        return 2;
    }
    o->url = argv[optind];
    return -1;
}

/* ---- 2. Output -------------------------------------------------------- */

/* stdout, or -o FILE created on the first write (or at the end of a
 * successful transfer), so a failed one leaves no file behind. */
typedef struct sink {
    const char *path;
    int fd;
    int err; /* the first failure to open or write, so it is told apart
                from a failure of the connection */
} sink;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sink_open(sink *s)
{
    if (s->fd >= 0)
        return 0;
    s->fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return s->fd < 0 ? -errno : 0;
}

static int sink_write(sink *s, const char *p, size_t n)
{
    int rc = sink_open(s);

    if (rc == 0)
        rc = write_all(s->fd, p, n);
    if (rc < 0 && s->err == 0)
        s->err = rc;
    return rc;
}

/* ---- 3. One exchange -------------------------------------------------- */

typedef struct get_run {
    const get_opts *o;
    int64_t deadline;   /* --max-time, or SB_NO_DEADLINE */
    sink out;
    int fd;             /* the connection */
    sb_tls *tls_ctx;    /* https: made on the first https hop */
    sb_tls_session *tls; /* https: the connection's TLS, else NULL */
    char tls_why[256];  /* why the TLS setup failed, "" if it did not */
    char *buf;          /* HEAD_MAX + IO_CHUNK bytes */
    size_t have;        /* bytes in buf */
    const char *what;   /* the URL or file an error is about */
    const char *step;   /* what was going on, for an error */
    char url[CLI_URL_MAX];
    cli_url u;
    cli_url first;      /* the URL typed: -H Host and credentials stay with it */
    const char *method; /* "GET" or "HEAD" */
    int status;
    char reason[128];
    char location[CLI_URL_MAX]; /* of a redirect being followed, else "" */
} get_run;

/* Each wait ends at --max-time or after STALL_MS without a byte. */
static int64_t io_deadline(const get_run *g)
{
    int64_t stall = sb_now_ms() + STALL_MS;
    return stall < g->deadline ? stall : g->deadline;
}

/* More bytes into buf[have..cap). Returns the count, 0 at EOF, or error. */
static ssize_t fill(get_run *g, size_t cap)
{
    ssize_t n = g->tls ? sb_tls_recv_some(g->tls, g->buf + g->have, cap - g->have, io_deadline(g))
                       : sb_recv_some(g->fd, g->buf + g->have, cap - g->have, io_deadline(g));
    if (n > 0)
        g->have += (size_t)n;
    return n;
}

/* Read the head. Interim 1xx answers are skipped. Returns the head length
 * with *res and h filled, or a negative code. */
static int read_head(get_run *g, sb_http_response *res, sb_http_header *h, size_t maxh)
{
    static const sb_http_limits lim = {8 * 1024, HEAD_MAX};

    for (;;) {
        int rc = sb_http_parse_response(g->buf, g->have, res, h, maxh, &lim);
        if (rc > 0 && res->status >= 100 && res->status < 200 && res->status != 101) {
            memmove(g->buf, g->buf + rc, g->have - (size_t)rc);
            g->have -= (size_t)rc;
            continue;
        }
        if (rc != SB_HTTP_INCOMPLETE)
            return rc;
        ssize_t n = fill(g, HEAD_MAX);
        if (n == 0)
            return g->have ? SB_ETRUNCATED : SB_ECLOSED;
        if (n < 0)
            return (int)n;
    }
}

/* More body bytes must come: the peer closing now cuts the body short. */
static int fill_more(get_run *g)
{
    ssize_t n = fill(g, IO_CHUNK);

    if (n == 0)
        return SB_ETRUNCATED;
    return n < 0 ? (int)n : 0;
}

static int body_length(get_run *g, uint64_t left)
{
    int rc;

    for (;;) {
        size_t take = g->have < left ? g->have : (size_t)left;
        if ((rc = sink_write(&g->out, g->buf, take)) < 0)
            return rc;
        left -= take;
        g->have = 0;
        if (left == 0)
            return 0;
        if ((rc = fill_more(g)) < 0)
            return rc;
    }
}

static int body_chunked(get_run *g)
{
    sb_http_chunked d;
    int rc;

    memset(&d, 0, sizeof d);
    for (;;) {
        size_t len = g->have;
        ssize_t r = sb_http_chunked_decode(&d, g->buf, &len);
        if (r < 0)
            return (int)r;
        if ((rc = sink_write(&g->out, g->buf, len)) < 0)
            return rc;
        g->have = 0;
        if (r > 0)
            return 0;
        if ((rc = fill_more(g)) < 0)
            return rc;
    }
}

static int body_until_close(get_run *g)
{
    int rc;

    for (;;) {
        if ((rc = sink_write(&g->out, g->buf, g->have)) < 0)
            return rc;
        g->have = 0;
        ssize_t n = fill(g, IO_CHUNK);
        if (n <= 0)
            return (int)n;
    }
}

/* Print a head on stderr, each line after prefix ("> " or "< "). */
static void verbose_head(const char *prefix, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) + 1 : n, text = len;
        while (text > 0 && (p[text - 1] == '\n' || p[text - 1] == '\r'))
            text--;
        fprintf(stderr, "%s%.*s\n", prefix, (int)text, p);
        p += len;
        n -= len;
    }
}

/* Whether the -H value hdr names the header name (case-insensitive). */
static int header_named(const char *hdr, const char *name)
{
    size_t n = strcspn(hdr, ":;");
    return n == strlen(name) && strncasecmp(hdr, name, n) == 0;
}

/* curl's rule: once a redirect leaves the host the user typed, the -H
 * values that belong to it (Host, and credentials) stay behind. */
static int header_kept(const get_run *g, const char *hdr)
{
    if (strcmp(g->u.host, g->first.host) == 0 && strcmp(g->u.port, g->first.port) == 0)
        return 1;
    return !header_named(hdr, "host") && !header_named(hdr, "authorization") &&
           !header_named(hdr, "cookie");
}

/* Append to the NUL-terminated req[0..n); a request that does not fit
 * fills req to n - 1 bytes, which build_request takes as "too long". */
static void appendf(char *req, size_t n, const char *fmt, ...)
{
    size_t len = strlen(req);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(req + len, n - len, fmt, ap);
    va_end(ap);
}

/* A default header, unless a kept -H names it. */
static void default_header(const get_run *g, char *req, size_t n, const char *name, const char *v)
{
    for (int i = 0; i < g->o->nhdr; i++)
        if (header_named(g->o->hdr[i], name) && header_kept(g, g->o->hdr[i]))
            return;
    appendf(req, n, "%s: %s\r\n", name, v);
}

/* -H 'Name:' (nothing but blanks after the colon) only removes a default. */
static int header_removes(const char *h)
{
    const char *colon = h + strcspn(h, ":;");
    return *colon == ':' && colon[1 + strspn(colon + 1, " \t")] == '\0';
}

/* The request head into req[0..n). Returns its length or -1 (too long). */
static int build_request(const get_run *g, char *req, size_t n)
{
    char host[300], ua[64];
    int dflt = strcmp(g->u.port, strcmp(g->u.scheme, "https") == 0 ? "443" : "80") == 0;

    snprintf(host, sizeof host, "%s%s%s%s%s", g->u.v6 ? "[" : "", g->u.host, g->u.v6 ? "]" : "",
             dflt ? "" : ":", dflt ? "" : g->u.port);
    snprintf(ua, sizeof ua, "switchboard/%s", sb_version());
    req[0] = '\0';
    appendf(req, n, "%s %s HTTP/1.1\r\n", g->method, g->u.target);
    default_header(g, req, n, "Host", host);
    default_header(g, req, n, "User-Agent", ua);
    default_header(g, req, n, "Accept", "*/*");
    default_header(g, req, n, "Connection", "close");
    for (int i = 0; i < g->o->nhdr; i++) {
        const char *h = g->o->hdr[i];
        size_t name = strcspn(h, ":;");
        if (!header_kept(g, h) || header_removes(h))
            continue;
        if (h[name] == ';')
            appendf(req, n, "%.*s:\r\n", (int)name, h); /* 'Name;': sent empty */
        else
            appendf(req, n, "%s\r\n", h);
    }
    appendf(req, n, "\r\n");
    return strlen(req) + 1 >= n ? -1 : (int)strlen(req);
}

/* The status line and, for a redirect -L will follow, its Location. */
static int note_answer(get_run *g, const sb_http_response *res, const sb_http_header *h)
{
    int s = res->status, loc = sb_http_find(h, res->num_headers, 0, "location");

    g->status = s;
    if (res->reason_len > 0)
        snprintf(g->reason, sizeof g->reason, "%.*s", (int)res->reason_len, res->reason);
    else
        snprintf(g->reason, sizeof g->reason, "%s", sb_http_reason(s));
    g->location[0] = '\0';
    if (!g->o->follow || loc < 0 || !(s == 301 || s == 302 || s == 303 || s == 307 || s == 308))
        return 0;
    if (h[loc].value_len == 0 || h[loc].value_len >= sizeof g->location)
        return g->step = "Location", SB_EHTTP;
    memcpy(g->location, h[loc].value, h[loc].value_len);
    g->location[h[loc].value_len] = '\0';
    return 0;
}

/* After the head: print it if asked, then the body unless this answer is
 * a redirect being followed, a HEAD, a bodiless status, or a -f failure. */
static int answer(get_run *g, int head, const sb_http_header *h, const sb_http_response *res)
{
    sb_http_framing fr;
    int rc, failing = g->o->fail && g->status >= 400;

    if (g->o->verbose)
        verbose_head("< ", g->buf, (size_t)head);
    if ((g->o->include || g->o->head_only) && !failing &&
        (rc = sink_write(&g->out, g->buf, (size_t)head)) < 0)
        return rc;
    if (g->location[0] || failing || strcmp(g->method, "HEAD") == 0 || g->status == 204 ||
        g->status == 304)
        return 0;
    /* The framing before the head leaves buf: h points into it. */
    g->step = "response";
    if ((rc = sb_http_framing_get(h, res->num_headers, res->minor_version, 0, &fr)) < 0)
        return rc;
    memmove(g->buf, g->buf + head, g->have - (size_t)head);
    g->have -= (size_t)head;
    g->step = "body";
    if (fr.chunked)
        return body_chunked(g);
    if (fr.has_length)
        return body_length(g, fr.length);
    return body_until_close(g);
}

/* https: the handshake on the fresh connection, the server's certificate
 * checked against the trust store (or --cacert) and the URL's host. */
static int start_tls(get_run *g)
{
    sb_tls_opts o;
    int rc;

    g->step = "TLS handshake";
    if (g->tls_ctx == NULL) {
        sb_tls_opts_default(&o);
        o.ca_file = g->o->cacert;
        o.insecure = g->o->insecure;
        o.alpn = "http/1.1";
        if ((rc = sb_tls_client_new(&g->tls_ctx, &o, g->tls_why, sizeof g->tls_why)) < 0) {
            g->step = g->o->cacert ? "--cacert" : "trust store";
            return rc;
        }
    }
    rc = sb_tls_connect(&g->tls, g->tls_ctx, g->fd, g->u.host, io_deadline(g), g->tls_why,
                        sizeof g->tls_why);
    if (rc == 0 && g->o->verbose)
        fprintf(stderr, "* TLS: %s\n", sb_tls_session_version(g->tls));
    return rc;
}

static int connect_to(get_run *g)
{
    char addr[300];
    int64_t left = g->deadline - sb_now_ms();
    int ms = g->o->connect_ms;

    if (left <= 0)
        return g->step = "connect", -ETIMEDOUT;
    if (strcmp(g->u.scheme, "https") == 0 && !sb_tls_available()) {
        snprintf(g->tls_why, sizeof g->tls_why, "https is not supported by this build");
        return g->step = "https", SB_ENOTLS;
    }
    if (left < ms)
        ms = (int)left;
    snprintf(addr, sizeof addr, g->u.v6 ? "[%s]:%s" : "%s:%s", g->u.host, g->u.port);
    if (g->o->verbose)
        fprintf(stderr, "* Connecting to %s\n", addr);
    g->step = "connect";
    g->fd = sb_dial(addr, ms);
    if (g->fd >= 0 && g->o->verbose)
        fprintf(stderr, "* Connected to %s\n", addr);
    if (g->fd < 0)
        return g->fd;
    return strcmp(g->u.scheme, "https") == 0 ? start_tls(g) : 0;
}

/* One request and its answer on a fresh connection. */
static int exchange(get_run *g)
{
    char req[REQ_MAX];
    sb_http_header h[128];
    sb_http_response res;
    int n, rc, head;

    if ((n = build_request(g, req, sizeof req)) < 0)
        return g->step = "request", SB_ETOOBIG;
    if ((rc = connect_to(g)) < 0)
        goto out;
    if (g->o->verbose)
        verbose_head("> ", req, (size_t)n);
    g->step = "send";
    rc = g->tls ? (int)sb_tls_send_all(g->tls, req, (size_t)n, io_deadline(g))
                : (int)sb_send_all(g->fd, req, (size_t)n, io_deadline(g));
    if (rc < 0)
        goto out;
    g->step = "response";
    g->have = 0;
    if ((head = rc = read_head(g, &res, h, sizeof h / sizeof *h)) < 0)
        goto out;
    if ((rc = note_answer(g, &res, h)) < 0)
        goto out;
    rc = answer(g, head, h, &res);
out:
    sb_tls_session_free(g->tls);
    g->tls = NULL;
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    return rc;
}

/* ---- 4. The chain and the exit status --------------------------------- */

/* Print an error unless -s (without -S) keeps it quiet. */
static void get_fail(const get_run *g, const char *what, const char *fmt, ...)
{
    char why[512];
    va_list ap;

    if (g->o->silent && !g->o->show_error)
        return;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    cli_error(what, "%s", why);
}

/* The method after a redirect, as curl does: 303 makes anything but HEAD
 * a GET, 301 and 302 turn a POST (any method other than GET and HEAD,
 * when get learns to send one) into a GET, 307 and 308 keep it. */
static const char *redirect_method(int status, const char *method)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return method;
    return status == 307 || status == 308 ? method : "GET";
}

/* Move g to the URL its Location names. Returns 0, or 1 after an error. */
static int next_hop(get_run *g)
{
    char next[CLI_URL_MAX];
    const char *why;
    int rc;

    if (cli_url_resolve(g->url, g->location, next, sizeof next) < 0) {
        get_fail(g, g->url, "Location too long to follow");
        return 1;
    }
    if (g->o->verbose)
        fprintf(stderr, "* %d: following the Location to %s\n", g->status, next);
    if ((rc = cli_url_parse(next, &g->u, &why)) < 0) {
        get_fail(g, next, "cannot follow the redirect: %s", why);
        return 1;
    }
    cli_url_format(&g->u, g->url, sizeof g->url);
    g->method = redirect_method(g->status, g->method);
    return 0;
}

static int run_chain(get_run *g)
{
    int rc;

    for (int hops = 0;; hops++) {
        if ((rc = exchange(g)) < 0) {
            const char *why = rc != -ETIMEDOUT            ? sb_http_strerror(rc)
                              : sb_now_ms() >= g->deadline  ? "timed out (--max-time)"
                              : strcmp(g->step, "connect") == 0 ? "timed out (--connect-timeout)"
                                                             : "timed out: nothing received for 60 s";
            if (g->out.err < 0)
                get_fail(g, g->out.path ? g->out.path : "stdout", "%s", strerror(-g->out.err));
            else if (g->tls_why[0] && rc != -ETIMEDOUT)
                get_fail(g, g->url, "%s: %s", g->step, g->tls_why);
            else
                get_fail(g, g->url, "%s: %s", g->step, why);
            return 1;
        }
        if (g->location[0] == '\0')
            break;
        if (hops == MAX_REDIRS) {
            get_fail(g, g->url, "too many redirects (more than %d)", MAX_REDIRS);
            return 1;
        }
        if (next_hop(g) != 0)
            return 1;
    }
    if (g->o->fail && g->status >= 400) {
        get_fail(g, g->url, "HTTP %d %s", g->status, g->reason);
        return 1;
    }
    return 0;
}

static int finish_output(get_run *g, int code)
{
    int rc;

    if (g->out.path == NULL)
        return code;
    if (code == 0 && (rc = sink_open(&g->out)) < 0) {
        get_fail(g, g->out.path, "%s", strerror(-rc));
        return 1;
    }
    if (g->out.fd >= 0 && close(g->out.fd) < 0 && code == 0) {
        get_fail(g, g->out.path, "%s", strerror(errno));
        return 1;
    }
    return code;
}

int cmd_get(int argc, char **argv)
{
    get_opts o;
    get_run *g;
    const char *why;
    int rc;

    if ((rc = get_parse(&o, argc, argv)) >= 0)
        return rc;
    g = calloc(1, sizeof *g);
    if (g == NULL || (g->buf = malloc(HEAD_MAX + IO_CHUNK)) == NULL) {
        free(g);
        cli_error("memory", "%s", strerror(ENOMEM));
        return 1;
    }
    g->o = &o;
    g->fd = -1;
    g->out.fd = o.output ? -1 : STDOUT_FILENO;
    g->out.path = o.output;
    g->method = o.head_only ? "HEAD" : "GET";
    g->deadline = o.max_ms > 0 ? sb_now_ms() + o.max_ms : SB_NO_DEADLINE;
    rc = cli_url_parse(o.url, &g->u, &why);
    if (rc == CLI_URL_BAD) {
        cli_error(o.url, "%s", why);
        rc = 2;
    } else if (rc == CLI_URL_SCHEME) {
        get_fail(g, o.url, "%s", why);
        rc = 1;
    } else {
        g->first = g->u;
        cli_url_format(&g->u, g->url, sizeof g->url);
        rc = finish_output(g, run_chain(g));
    }
    sb_tls_free(g->tls_ctx);
    free(g->buf);
    free(g);
    return rc;
}
