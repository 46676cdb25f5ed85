/* get: `switchboard get URL` - the HOWTO's browser. One HTTP/1.1 GET with
 * "Connection: close", the body streamed to stdout (or -o FILE) as it
 * arrives, framed by Content-Length, chunked encoding, or the close. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

static const char get_usage[] =
    "usage: switchboard get URL [options]\n"
    "\n"
    "Fetch http://HOST[:PORT][/PATH] with HTTP/1.1 and print the body.\n"
    "\n"
    "  -i, --include        print the response head before the body\n"
    "  -o, --output FILE    write the body to FILE instead of stdout\n"
    "  --timeout S          give up after S seconds in all (30)\n"
    "  --help               this text\n"
    "\n"
    "Exit status: 0 for a 2xx answer, 1 for any other status or a network\n"
    "failure, 2 for a usage error (bad URL, https).\n";

#define HEAD_MAX (64 * 1024)   /* largest response head we accept */
#define IO_CHUNK (64 * 1024)

typedef struct url {
    char host[256];    /* without brackets */
    char port[6];
    const char *path;  /* from the first '/', or "/" */
    int v6;
} url;

/* http://host[:port][/path]. Returns 0, or -1 with *why set. */
static int url_parse(const char *s, url *u, const char **why)
{
    const char *h, *e, *p;
    size_t hl;

    if (strncasecmp(s, "https://", 8) == 0)
        return *why = "https not supported (plain http:// only)", -1;
    if (strncasecmp(s, "http://", 7) != 0)
        return *why = "the URL must start with http://", -1;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return *why = "the URL contains a space or control character", -1;
    h = s + 7;
    p = h + strcspn(h, "/?#");
    if (*h == '[') {
        e = memchr(h, ']', (size_t)(p - h));
        if (e == NULL)
            return *why = "unterminated [IPv6] address", -1;
        hl = (size_t)(e - h - 1);
        h++;
        e++;
        u->v6 = 1;
    } else {
        e = memchr(h, ':', (size_t)(p - h));
        if (e == NULL)
            e = p;
        hl = (size_t)(e - h);
        u->v6 = 0;
    }
    if (hl == 0 || hl >= sizeof u->host || memchr(h, '@', hl) != NULL)
        return *why = "missing or bad host", -1;
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    strcpy(u->port, "80");
    if (e < p && *e == ':') {
        size_t pl = (size_t)(p - e - 1);
        long v = 0;
        for (size_t i = 1; i <= pl; i++)
            v = (e[i] >= '0' && e[i] <= '9' && v < 100000) ? v * 10 + (e[i] - '0') : -1000000;
        if (pl == 0 || pl > 5 || v < 1 || v > 65535)
            return *why = "bad port", -1;
        snprintf(u->port, sizeof u->port, "%ld", v);
    } else if (e != p) {
        return *why = "bad host", -1;
    }
    u->path = *p == '/' ? p : "/";
    if (*p == '?' || *p == '#')
        return *why = "the path must start with '/'", -1;
    return 0;
}

typedef struct fetch {
    int fd;
    int64_t deadline;
    int out;            /* where the body goes */
    char *buf;          /* HEAD_MAX + IO_CHUNK bytes */
    size_t have;        /* bytes in buf */
} fetch;

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

/* More bytes into buf[have..cap). Returns the count, 0 at EOF, or error. */
static ssize_t fill(fetch *f, size_t cap)
{
    ssize_t n = sb_recv_some(f->fd, f->buf + f->have, cap - f->have, f->deadline);
    if (n > 0)
        f->have += (size_t)n;
    return n;
}

/* Read the head. Interim 1xx answers are skipped. Returns the head length
 * with *res and h filled, or a negative code. */
static int read_head(fetch *f, sb_http_response *res, sb_http_header *h, size_t maxh)
{
    static const sb_http_limits lim = {8 * 1024, HEAD_MAX};

    for (;;) {
        int rc = sb_http_parse_response(f->buf, f->have, res, h, maxh, &lim);
        if (rc > 0 && res->status >= 100 && res->status < 200 && res->status != 101) {
            memmove(f->buf, f->buf + rc, f->have - (size_t)rc);
            f->have -= (size_t)rc;
            continue;
        }
        if (rc != SB_HTTP_INCOMPLETE)
            return rc;
        ssize_t n = fill(f, HEAD_MAX);
        if (n == 0)
            return f->have ? SB_ETRUNCATED : SB_ECLOSED;
        if (n < 0)
            return (int)n;
    }
}

/* More body bytes must come: the peer closing now cuts the body short. */
static int fill_more(fetch *f)
{
    ssize_t n = fill(f, IO_CHUNK);

    if (n == 0)
        return SB_ETRUNCATED;
    return n < 0 ? (int)n : 0;
}

static int body_length(fetch *f, uint64_t left)
{
    int rc;

    for (;;) {
        size_t take = f->have < left ? f->have : (size_t)left;
        if ((rc = write_all(f->out, f->buf, take)) < 0)
            return rc;
        left -= take;
        f->have = 0;
        if (left == 0)
            return 0;
        if ((rc = fill_more(f)) < 0)
            return rc;
    }
}

static int body_chunked(fetch *f)
{
    sb_http_chunked d;
    int rc;

    memset(&d, 0, sizeof d);
    for (;;) {
        size_t len = f->have;
        ssize_t r = sb_http_chunked_decode(&d, f->buf, &len);
        if (r < 0)
            return (int)r;
        if ((rc = write_all(f->out, f->buf, len)) < 0)
            return rc;
        f->have = 0;
        if (r > 0)
            return 0;
        if ((rc = fill_more(f)) < 0)
            return rc;
    }
}

static int body_until_close(fetch *f)
{
    int rc;

    for (;;) {
        if ((rc = write_all(f->out, f->buf, f->have)) < 0)
            return rc;
        f->have = 0;
        ssize_t n = fill(f, IO_CHUNK);
        if (n <= 0)
            return (int)n;
    }
}

/* Send the request, read the answer, stream the body. Returns the status
 * (> 0) or a negative code; *what says which step failed. */
static int exchange(fetch *f, const url *u, int include, const char **what, char *reason, size_t rl)
{
    char req[9000];
    sb_http_header h[128];
    sb_http_response res;
    sb_http_framing fr;
    int n, rc, head;

    n = snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: switchboard/%s\r\n"
                 "Accept: */*\r\nConnection: close\r\n\r\n",
                 u->path, u->v6 ? "[" : "", u->host, u->v6 ? "]" : "",
                 strcmp(u->port, "80") ? ":" : "", strcmp(u->port, "80") ? u->port : "", sb_version());
    if (n < 0 || (size_t)n >= sizeof req)
        return *what = "URL too long", SB_ETOOBIG;
    *what = "send";
    if ((rc = (int)sb_send_all(f->fd, req, (size_t)n, f->deadline)) < 0)
        return rc;
    *what = "response";
    if ((head = read_head(f, &res, h, sizeof h / sizeof *h)) < 0)
        return head;
    if (res.reason_len > 0)
        snprintf(reason, rl, "%.*s", (int)res.reason_len, res.reason);
    else
        snprintf(reason, rl, "%s", sb_http_reason(res.status));
    if (include && (rc = write_all(STDOUT_FILENO, f->buf, (size_t)head)) < 0)
        return rc;
    memmove(f->buf, f->buf + head, f->have - (size_t)head);
    f->have -= (size_t)head;
    if ((rc = sb_http_framing_get(h, res.num_headers, res.minor_version, 0, &fr)) < 0)
        return rc;
    *what = "body";
    if (res.status == 204 || res.status == 304)
        rc = 0;
    else if (fr.chunked)
        rc = body_chunked(f);
    else if (fr.has_length)
        rc = body_length(f, fr.length);
    else
        rc = body_until_close(f);
    return rc < 0 ? rc : res.status;
}

static int get_parse(int argc, char **argv, int *include, const char **outp, long *tmo)
{
    static const struct option opts[] = {
        {"include", no_argument, NULL, 'i'}, {"output", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "io:", opts, NULL)) != -1) {
        switch (opt) {
        case 'i': *include = 1; break;
        case 'o': *outp = optarg; break;
        case 't':
            if (cli_parse_long("--timeout", optarg, 1, 86400, tmo) < 0)
                return 2;
            break;
        case 'h': fputs(get_usage, stdout); return 0;
        default:
            cli_error("get", "unknown or incomplete option '%s' (try --help)", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        cli_error("get", optind >= argc ? "missing URL (try --help)" : "one URL only (try --help)");
        return 2;
    }
    return -1;
}

int cmd_get(int argc, char **argv)
{
    int include = 0, rc, status;
    const char *outp = NULL, *why, *what;
    long tmo = 30;
    char addr[300], reason[128] = "";
    url u;
    fetch f;

    if ((rc = get_parse(argc, argv, &include, &outp, &tmo)) >= 0)
        return rc;
    if (url_parse(argv[optind], &u, &why) < 0) {
        cli_error("get", "%s: %s", argv[optind], why);
        return 2;
    }
    memset(&f, 0, sizeof f);
    f.deadline = sb_now_ms() + tmo * 1000;
    f.out = STDOUT_FILENO;
    snprintf(addr, sizeof addr, u.v6 ? "[%s]:%s" : "%s:%s", u.host, u.port);
    f.fd = sb_dial(addr, (int)(tmo * 1000));
    if (f.fd < 0) {
        cli_error("get", "%s: %s", addr, sb_strerror(f.fd));
        return 1;
    }
    if (outp && (f.out = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        cli_error("get", "%s: %s", outp, strerror(errno));
        close(f.fd);
        return 1;
    }
    f.buf = malloc(HEAD_MAX + IO_CHUNK);
    status = f.buf ? exchange(&f, &u, include, &what, reason, sizeof reason) : (what = "memory", -ENOMEM);
    free(f.buf);
    close(f.fd);
    if (outp && close(f.out) < 0 && status >= 0) {
        cli_error("get", "%s: %s", outp, strerror(errno));
        return 1;
    }
    if (status < 0) {
        cli_error("get", "%s: %s", what, sb_http_strerror(status));
        return 1;
    }
    if (status < 200 || status > 299) {
        fprintf(stderr, "switchboard: get: HTTP %d %s\n", status, reason);
        return 1;
    }
    return 0;
}
