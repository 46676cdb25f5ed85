/* url: parsing a typed URL and resolving a Location against it.
 *
 *   1. the generic split of RFC 3986 appendix B, used by both
 *   2. resolution (RFC 3986 section 5.2): merge and remove_dot_segments
 *   3. the http URL get fetches: scheme, host, port, target
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "url.h"

/* ---- 1. The generic split --------------------------------------------- */

typedef struct part {
    const char *s;
    size_t n;
    int def; /* the component is present (an empty one counts) */
} part;

typedef struct parts {
    part scheme, auth, path, query, frag;
} parts;

/* ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ): anything else before the
 * first ':' makes that ':' part of a path (or, typed, of host:port). */
static size_t scheme_len(const char *s)
{
    size_t i = 0;

    if (!isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return s[i] == ':' ? i : 0;
}

static void split(const char *s, parts *p)
{
    size_t n;

    memset(p, 0, sizeof *p);
    if ((n = scheme_len(s)) > 0) {
        p->scheme = (part){s, n, 1};
        s += n + 1;
    }
    if (s[0] == '/' && s[1] == '/') {
        s += 2;
        n = strcspn(s, "/?#");
        p->auth = (part){s, n, 1};
        s += n;
    }
    n = strcspn(s, "?#");
    p->path = (part){s, n, 1};
    s += n;
    if (*s == '?') {
        n = strcspn(++s, "#");
        p->query = (part){s, n, 1};
        s += n;
    }
    if (*s == '#')
        p->frag = (part){s + 1, strlen(s + 1), 1};
}

/* ---- 2. Resolution ---------------------------------------------------- */

/* Appending into a bounded buffer; one overflow flag instead of a check
 * after every step. */
typedef struct sink {
    char *p;
    size_t n, len;
    int over;
} sink;

static void put(sink *o, const char *s, size_t n)
{
    if (o->over || n >= o->n - o->len) {
        o->over = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* Remove the last segment of out[0..len) and the '/' before it. */
static size_t pop_segment(const char *out, size_t len)
{
    while (len > 0 && out[len - 1] != '/')
        len--;
    return len > 0 ? len - 1 : 0;
}

void cli_url_remove_dots(char *p)
{
    char in_buf[2 * CLI_URL_MAX];
    char *in = in_buf;
    size_t len = 0, k;

    if (strlen(p) >= sizeof in_buf)
        return; /* longer than any URL we build; left as it is */
    strcpy(in_buf, p);
    while (*in) {
        if (strncmp(in, "../", 3) == 0) {
            in += 3;
        } else if (strncmp(in, "./", 2) == 0 || strncmp(in, "/./", 3) == 0) {
            in += 2;
        } else if (strcmp(in, "/.") == 0) {
            in[1] = '\0';
        } else if (strncmp(in, "/../", 4) == 0) {
            in += 3;
            len = pop_segment(p, len);
        } else if (strcmp(in, "/..") == 0) {
            in[1] = '\0';
            len = pop_segment(p, len);
        } else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0) {
            in += strlen(in);
        } else {
            /* the first segment, with its leading '/' if any */
            k = (*in == '/') + strcspn(in + (*in == '/'), "/");
            memmove(p + len, in, k);
            len += k;
            in += k;
        }
    }
    p[len] = '\0';
}

/* Percent-encode the bytes a URL may not carry as they are; a server's
 * Location is not always clean. */
static int escape(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    sink o = {out, n, 0, 0};

    out[0] = '\0';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f) {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(&o, e, 3);
        } else {
            put(&o, s, 1);
        }
    }
    return o.over ? -1 : 0;
}

/* RFC 3986 5.2.3: the reference's relative path after the base's
 * directory, into path (CLI_URL_MAX * 2 bytes). */
static void merge(const parts *b, const part *rp, sink *path)
{
    if (b->auth.def && b->path.n == 0) {
        put(path, "/", 1);
    } else {
        size_t dir = b->path.n;
        while (dir > 0 && b->path.s[dir - 1] != '/')
            dir--;
        put(path, b->path.s, dir);
    }
    put(path, rp->s, rp->n);
}

int cli_url_resolve(const char *base, const char *ref, char *out, size_t n)
{
    char esc[CLI_URL_MAX], pbuf[2 * CLI_URL_MAX];
    sink o = {out, n, 0, 0}, path = {pbuf, sizeof pbuf, 0, 0};
    parts b, r;
    const part *scheme, *auth, *query;

    if (n == 0 || escape(ref, esc, sizeof esc) < 0)
        return -1;
    split(base, &b);
    split(esc, &r);
    pbuf[0] = '\0';
    scheme = r.scheme.def ? &r.scheme : &b.scheme;
    auth = r.scheme.def || r.auth.def ? &r.auth : &b.auth;
    query = &r.query;
    if (r.scheme.def || r.auth.def || (r.path.n > 0 && r.path.s[0] == '/')) {
        put(&path, r.path.s, r.path.n);
    } else if (r.path.n == 0) {
        put(&path, b.path.s, b.path.n);
        if (!r.query.def)
            query = &b.query;
    } else {
        merge(&b, &r.path, &path);
    }
    if (path.over)
        return -1;
    /* 5.2.2: the base's path is taken as it is, every other one cleaned */
    if (!(r.path.n == 0 && !r.scheme.def && !r.auth.def))
        cli_url_remove_dots(pbuf);
    /* 5.3: recomposition */
    out[0] = '\0';
    put(&o, scheme->s, scheme->n);
    put(&o, ":", 1);
    if (auth->def) {
        put(&o, "//", 2);
        put(&o, auth->s, auth->n);
    }
    put(&o, pbuf, strlen(pbuf));
    if (query->def) {
        put(&o, "?", 1);
        put(&o, query->s, query->n);
    }
    if (r.frag.def) {
        put(&o, "#", 1);
        put(&o, r.frag.s, r.frag.n);
    }
    return o.over ? -1 : (int)o.len;
}

/* ---- 3. The http URL -------------------------------------------------- */

/* The host of auth[0..n): a name, an IPv4 literal or a [v6] literal; the
 * caller reads the ":port" after it. */
static int parse_authority(const char *a, size_t n, cli_url *u, const char **why)
{
    const char *e;
    size_t hl;

    if (memchr(a, '@', n) != NULL)
        return *why = "user:password@ in the URL is not supported", CLI_URL_BAD;
    if (n > 0 && *a == '[') {
        e = memchr(a, ']', n);
        if (e == NULL)
            return *why = "unterminated [IPv6] address", CLI_URL_BAD;
        hl = (size_t)(e - a - 1);
        a++;
        e++;
        u->v6 = 1;
    } else {
        e = memchr(a, ':', n);
        if (e == NULL)
            e = a + n;
        hl = (size_t)(e - a);
    }
    if (hl == 0 || hl >= sizeof u->host)
        return *why = "missing or bad host", CLI_URL_BAD;
    memcpy(u->host, a, hl);
    u->host[hl] = '\0';
    return 0;
}

static int parse_port(const char *p, size_t n, cli_url *u, const char **why)
{
    long v = 0;

    if (n == 0)
        return 0; /* "host:" is the default port (RFC 3986 3.2.3) */
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9' || n > 5)
            return *why = "bad port (1..65535)", CLI_URL_BAD;
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return *why = "bad port (1..65535)", CLI_URL_BAD;
    snprintf(u->port, sizeof u->port, "%ld", v);
    u->port_given = 1;
    return 0;
}

static int set_scheme(const part *s, cli_url *u, const char **why)
{
    if (!s->def) {
        strcpy(u->scheme, "http"); /* curl's guess for a bare host */
        return 0;
    }
    if (s->n == 4 && strncasecmp(s->s, "http", 4) == 0) {
        strcpy(u->scheme, "http");
        return 0;
    }
    if (s->n == 5 && strncasecmp(s->s, "https", 5) == 0) {
        strcpy(u->scheme, "https");
        return 0;
    }
    return *why = "not an http:// URL (get speaks http)", CLI_URL_BAD;
}

int cli_url_parse(const char *s, cli_url *u, const char **why)
{
    char full[CLI_URL_MAX + 8];
    const char *hostport;
    size_t hn, pn;
    parts p;
    int rc;

    memset(u, 0, sizeof *u);
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return *why = "the URL contains a space or control character", CLI_URL_BAD;
    /* Without "scheme://" the whole string is host[:port][/path]: read it
     * as http, whatever a colon in it would otherwise mean. */
    if (strlen(s) >= CLI_URL_MAX)
        return *why = "the URL is too long", CLI_URL_BAD;
    if (strstr(s, "://") == NULL || scheme_len(s) == 0 || strncmp(s + scheme_len(s), "://", 3) != 0)
        snprintf(full, sizeof full, "http://%s", s);
    else
        snprintf(full, sizeof full, "%s", s);
    split(full, &p);
    if ((rc = set_scheme(&p.scheme, u, why)) < 0)
        return rc;
    strcpy(u->port, strcmp(u->scheme, "https") == 0 ? "443" : "80");
    if (!p.auth.def)
        return *why = "missing host", CLI_URL_BAD;
    if ((rc = parse_authority(p.auth.s, p.auth.n, u, why)) < 0)
        return rc;
    hostport = p.auth.s + strlen(u->host) + (u->v6 ? 2 : 0);
    hn = (size_t)(hostport - p.auth.s);
    if (hn < p.auth.n) {
        if (*hostport != ':')
            return *why = "bad host", CLI_URL_BAD;
        if ((rc = parse_port(hostport + 1, p.auth.n - hn - 1, u, why)) < 0)
            return rc;
    }
    pn = p.path.n + (p.query.def ? p.query.n + 1 : 0);
    snprintf(u->target, sizeof u->target, "%s%.*s", p.path.n ? "" : "/", (int)pn, p.path.s);
    return 0;
}

int cli_url_format(const cli_url *u, char *out, size_t n)
{
    int len = snprintf(out, n, "%s://%s%s%s%s%s%s", u->scheme, u->v6 ? "[" : "", u->host,
                       u->v6 ? "]" : "", u->port_given ? ":" : "", u->port_given ? u->port : "",
                       u->target);
    return len < 0 || (size_t)len >= n ? -1 : len;
}
