/* http: HTTP/1.1 head parsers, body framing rules, a chunked decoder and the
 * small helpers (ranges, dates, percent-decoding) that the static file
 * server and `switchboard get` share. See http.h for the contracts.
 *
 * Divisions: character classes; start lines and header fields; framing
 * (Content-Length, Transfer-Encoding, Connection); chunked decoding; range,
 * date and percent-decoding helpers; status texts.
 *
 * Every parser walks a window [p, end) and answers MORE when
 * it runs off the end, so a truncated input never reads past len and never
 * counts as an error. The limits are applied by shrinking the window: a
 * request line that has not ended within max_line bytes runs off a window
 * max_line bytes long, and that incomplete answer with len >= max_line is
 * what becomes 414 (431 for the head).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "switchboard.h"

/* Inside this file "need more bytes" must differ from 0, which the
 * helpers use for "done"; the public functions answer it as
 * SB_HTTP_INCOMPLETE, which is 0 (see http.h). */
#define MORE (SB_ERR_BASE - 1000)

static int answer(int rc)
{
    return rc == MORE ? SB_HTTP_INCOMPLETE : rc;
}

#define DEFAULT_MAX_LINE (8u * 1024)
#define DEFAULT_MAX_HEAD (16u * 1024)
/* Chunk extensions and trailers are read and dropped; 8 KiB each is far
 * above anything legitimate and keeps a hostile peer from streaming them
 * forever. */
#define CHUNK_EXTRA_MAX (8u * 1024)

/* ---- character classes (RFC 9110 section 5.6.2, RFC 9112 section 3) ---- */

enum { C_TCHAR = 1, C_TARGET = 2, C_VALUE = 4, C_HEX = 8 };

static unsigned char cls[256];

/* Filled on first use. Plain static data would be clearer but is 256
 * lines of noise. */
static void cls_build(void)
{
    const char *special = "!#$%&'*+-.^_`|~";

    for (int c = 0; c < 256; c++) {
        unsigned char v = 0;
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alnum || (c != 0 && strchr(special, c) != NULL))
            v |= C_TCHAR;
        if (c > 0x20 && c < 0x7f)
            v |= C_TARGET;
        if (c == '\t' || (c >= 0x20 && c != 0x7f))
            v |= C_VALUE;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            v |= C_HEX;
        cls[c] = v;
    }
}

/* Once, by whichever thread gets here first: the threads model parses on
 * many threads at once, and racing initialisers - even writing the same
 * bytes, behind a volatile flag - are a data race (TSan reports it, and
 * nothing orders the table's stores before the flag's). */
static void cls_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, cls_build);
}

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Case-insensitive equality of s[0..n) and a lowercase C string. */
static int eq_lower(const char *s, size_t n, const char *l)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (l[i] == '\0' || lower((unsigned char)s[i]) != l[i])
            return 0;
    return l[i] == '\0';
}

/* ---- start lines and header fields ---- */

typedef const unsigned char *ptr;

/* The end of a line at *pp: CRLF, or a bare LF when lf_ok. */
static int eol(ptr *pp, ptr end, int lf_ok)
{
    ptr p = *pp;

    if (p == end)
        return MORE;
    if (*p == '\r') {
        if (p + 1 == end)
            return MORE;
        if (p[1] != '\n')
            return SB_EHTTP;
        *pp = p + 2;
        return 0;
    }
    if (*p == '\n' && lf_ok) {
        *pp = p + 1;
        return 0;
    }
    return SB_EHTTP;
}

/* "HTTP/" DIGIT "." DIGIT, checked byte by byte so that a prefix of it is
 * incomplete and anything else fails as soon as it is seen. */
static int version(ptr *pp, ptr end, int *minor)
{
    static const char pat[] = "HTTP/0.0";
    ptr p = *pp;

    for (int i = 0; i < 8; i++) {
        if (p + i == end)
            return MORE;
        if (pat[i] == '0' ? (p[i] < '0' || p[i] > '9') : p[i] != (unsigned char)pat[i])
            return SB_EHTTP;
    }
    if (p[5] != '1')
        return SB_HTTP_EVERSION;
    *minor = p[7] - '0';
    *pp = p + 8;
    return 0;
}

static int request_line(ptr *pp, ptr end, sb_http_request *r)
{
    ptr p = *pp, start = p;
    int rc;

    while (p < end && IS(*p, C_TCHAR))
        p++;
    if (p == end)
        return MORE;
    if (p == start || *p != ' ')
        return SB_EHTTP;
    r->method = (const char *)start;
    r->method_len = (size_t)(p - start);
    start = ++p;
    while (p < end && IS(*p, C_TARGET))
        p++;
    if (p == end)
        return MORE;
    if (p == start || *p != ' ')
        return SB_EHTTP;
    r->target = (const char *)start;
    r->target_len = (size_t)(p - start);
    p++;
    if ((rc = version(&p, end, &r->minor_version)) != 0)
        return rc;
    if ((rc = eol(&p, end, 0)) != 0)
        return rc;
    *pp = p;
    return 0;
}

static int status_line(ptr *pp, ptr end, sb_http_response *r)
{
    ptr p = *pp, start;
    int rc;

    if ((rc = version(&p, end, &r->minor_version)) != 0)
        return rc;
    for (int i = 0; i < 4; i++) {
        if (p + i == end)
            return MORE;
        if (i == 0 ? p[i] != ' ' : (p[i] < '0' || p[i] > '9'))
            return SB_EHTTP;
    }
    r->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    if (r->status < 100)
        return SB_EHTTP;
    p += 4;
    if (p == end)
        return MORE;
    if (*p == ' ')
        p++;    /* "HTTP/1.1 200\r\n" (no SP, no reason) is common enough */
    else if (*p != '\r' && *p != '\n')
        return SB_EHTTP;
    start = p;
    while (p < end && IS(*p, C_VALUE))
        p++;
    r->reason = (const char *)start;
    r->reason_len = (size_t)(p - start);
    if ((rc = eol(&p, end, 1)) != 0)
        return rc;
    *pp = p;
    return 0;
}

/* Header fields up to and including the empty line. A line that starts
 * with SP or HTAB (obs-fold), an empty name and whitespace before the colon
 * all fail the "name then colon" test. */
static int header_fields(ptr *pp, ptr end, sb_http_header *h, size_t max, size_t *num, int lf_ok)
{
    ptr p = *pp, name, colon, val, vend;
    size_t n = 0;
    int rc;

    for (;;) {
        if (p == end)
            return MORE;
        if (*p == '\r' || *p == '\n') {
            if ((rc = eol(&p, end, lf_ok)) != 0)
                return rc;
            break;
        }
        name = p;
        while (p < end && IS(*p, C_TCHAR))
            p++;
        if (p == end)
            return MORE;
        if (p == name || *p != ':')
            return SB_EHTTP;
        colon = p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        val = p;
        while (p < end && IS(*p, C_VALUE))
            p++;
        vend = p;
        if ((rc = eol(&p, end, lf_ok)) != 0)
            return rc;  /* a control character is an error, running out is not */
        while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        if (n == max)
            return SB_HTTP_EHEAD;
        h[n].name = (const char *)name;
        h[n].name_len = (size_t)(colon - name);
        h[n].value = (const char *)val;
        h[n].value_len = (size_t)(vend - val);
        n++;
    }
    *num = n;
    *pp = p;
    return 0;
}

static void limits(const sb_http_limits *lim, size_t *line, size_t *head)
{
    *line = (lim && lim->max_line) ? lim->max_line : DEFAULT_MAX_LINE;
    *head = (lim && lim->max_head) ? lim->max_head : DEFAULT_MAX_HEAD;
    /* The head length is returned as an int. */
    if (*head > INT_MAX)
        *head = INT_MAX;
    if (*line > *head)
        *line = *head;
}

/* The header fields after a request or status line at p, up to the head
 * limit: the head's length, incomplete, or SB_HTTP_EHEAD past the limit. */
static int head_rest(ptr b, ptr p, size_t len, size_t max_head, sb_http_header *headers,
                     size_t max_headers, size_t *num, int response)
{
    int rc = header_fields(&p, b + (len < max_head ? len : max_head), headers, max_headers, num,
                           response);

    if (rc == MORE && len >= max_head)
        return SB_HTTP_EHEAD;
    if (rc != 0)
        return rc;
    return (int)(p - b);
}

int sb_http_parse_request(const char *buf, size_t len, sb_http_request *req,
                          sb_http_header *headers, size_t max_headers,
                          const sb_http_limits *lim)
{
    ptr b = (ptr)buf, p = b;
    size_t max_line, max_head;
    int rc;

    cls_init();
    limits(lim, &max_line, &max_head);
    /* Empty lines before the request line are skipped; they count toward
     * the line limit so that a stream of them is bounded too. */
    ptr lend = b + (len < max_line ? len : max_line);
    while (p < lend && (*p == '\r' || *p == '\n')) {
        if ((rc = eol(&p, lend, 0)) != 0)
            return rc == MORE && len >= max_line ? SB_HTTP_ELINE : answer(rc);
    }
    rc = request_line(&p, lend, req);
    if (rc == MORE && len >= max_line)
        return SB_HTTP_ELINE;
    if (rc != 0)
        return answer(rc);
    return answer(head_rest(b, p, len, max_head, headers, max_headers, &req->num_headers, 0));
}

int sb_http_parse_response(const char *buf, size_t len, sb_http_response *res,
                           sb_http_header *headers, size_t max_headers,
                           const sb_http_limits *lim)
{
    ptr b = (ptr)buf, p = b;
    size_t max_line, max_head;
    int rc;

    cls_init();
    limits(lim, &max_line, &max_head);
    rc = status_line(&p, b + (len < max_line ? len : max_line), res);
    if (rc == MORE && len >= max_line)
        return SB_EHTTP;
    if (rc != 0)
        return answer(rc);
    return answer(head_rest(b, p, len, max_head, headers, max_headers, &res->num_headers, 1));
}

int sb_http_name_is(const sb_http_header *h, const char *l)
{
    return eq_lower(h->name, h->name_len, l);
}

int sb_http_find(const sb_http_header *h, size_t n, size_t from, const char *l)
{
    for (size_t i = from; i < n; i++)
        if (eq_lower(h[i].name, h[i].name_len, l))
            return (int)i;
    return -1;
}

/* ---- Host ---- */

/* RFC 3986 unreserved / sub-delims, the characters of a reg-name besides
 * pct-encoded ones. */
static int host_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=", c) != NULL);
}

/* The inside of "[...]": IPv6address or IPvFuture. Checked for their
 * alphabets only; the address is never resolved, so a tighter check would
 * only refuse what a peer cannot misuse anyway. */
static int ip_literal(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (s[0] == 'v' || s[0] == 'V') {
        for (size_t i = 1; i < n; i++)
            if (!host_char((unsigned char)s[i]) && s[i] != ':')
                return 0;
        return n > 1;
    }
    for (size_t i = 0; i < n; i++)
        if (!IS(s[i], C_HEX) && s[i] != ':' && s[i] != '.')
            return 0;
    return 1;
}

int sb_http_valid_host(const char *v, size_t len)
{
    size_t i = 0;

    cls_init();
    if (len > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', len);
        if (close == NULL || !ip_literal(v + 1, (size_t)(close - v) - 1))
            return 0;
        i = (size_t)(close - v) + 1;
    } else {
        while (i < len && v[i] != ':') {
            if (v[i] == '%') {
                if (i + 2 >= len || !IS(v[i + 1], C_HEX) || !IS(v[i + 2], C_HEX))
                    return 0;
                i += 3;
            } else if (host_char((unsigned char)v[i])) {
                i++;
            } else {
                return 0;
            }
        }
        if (i == 0)
            return 0;   /* an empty host names nothing */
    }
    if (i == len)
        return 1;
    if (v[i++] != ':')
        return 0;
    while (i < len && v[i] >= '0' && v[i] <= '9')
        i++;
    return i == len;
}

/* ---- framing ---- */

int sb_http_parse_length(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return SB_EHTTP;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > ((uint64_t)INT64_MAX - d) / 10)
            return SB_EHTTP;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The next element of a comma-separated list (RFC 9110 section 5.6.1)
 * from *i on, trimmed of OWS, as v[*s..*e) (empty for an empty element,
 * which the RFC lets a recipient skip); *i moves past its comma. Returns 0
 * at the end of the list. */
static int next_element(const char *v, size_t len, size_t *i, size_t *s, size_t *e)
{
    if (*i >= len)
        return 0;
    *s = *i;
    while (*i < len && v[*i] != ',')
        (*i)++;
    *e = (*i)++;
    while (*s < *e && (v[*s] == ' ' || v[*s] == '\t'))
        (*s)++;
    while (*e > *s && (v[*e - 1] == ' ' || v[*e - 1] == '\t'))
        (*e)--;
    return 1;
}

/* Call fn on each non-empty element of a comma-separated list. */
static void each_element(const char *v, size_t len, void (*fn)(const char *, size_t, void *), void *ud)
{
    size_t i = 0, s, e;

    while (next_element(v, len, &i, &s, &e)) {
        if (e > s)
            fn(v + s, e - s, ud);
    }
}

struct te_state {
    int codings;     /* number of codings listed */
    int chunked;     /* how many of them are chunked */
    int last_chunked;
};

static void te_element(const char *s, size_t n, void *ud)
{
    struct te_state *t = ud;
    int c = eq_lower(s, n, "chunked");

    t->codings++;
    t->chunked += c;
    t->last_chunked = c;
}

struct conn_state {
    int close;
    int keep_alive;
};

static void conn_element(const char *s, size_t n, void *ud)
{
    struct conn_state *c = ud;

    if (eq_lower(s, n, "close"))
        c->close = 1;
    else if (eq_lower(s, n, "keep-alive"))
        c->keep_alive = 1;
}

int sb_http_framing_get(const sb_http_header *h, size_t n, int minor_version,
                        int is_request, sb_http_framing *f)
{
    struct te_state te = {0, 0, 0};
    struct conn_state cs = {0, 0};
    uint64_t v;

    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        if (sb_http_name_is(&h[i], "content-length")) {
            if (sb_http_parse_length(h[i].value, h[i].value_len, &v) != 0)
                return SB_EHTTP;
            if (f->has_length && v != f->length)
                return SB_EHTTP;
            f->has_length = 1;
            f->length = v;
        } else if (sb_http_name_is(&h[i], "transfer-encoding")) {
            f->has_te = 1;
            each_element(h[i].value, h[i].value_len, te_element, &te);
        } else if (sb_http_name_is(&h[i], "connection")) {
            each_element(h[i].value, h[i].value_len, conn_element, &cs);
        }
    }
    if (f->has_te && f->has_length)
        return SB_EHTTP;    /* the classic smuggling shape (RFC 9112 6.1) */
    if (f->has_te) {
        if (is_request && (te.codings != 1 || !te.last_chunked))
            return SB_EHTTP;
        if (te.chunked > 1)
            return SB_EHTTP;
        f->chunked = te.last_chunked;
        f->until_close = !te.last_chunked;
    }
    if (cs.close)
        f->keep_alive = 0;
    else
        f->keep_alive = minor_version >= 1 || cs.keep_alive;
    if (f->until_close)
        f->keep_alive = 0;
    return 0;
}

/* ---- chunked decoding ---- */

enum {
    CK_SIZE,       /* hex digits of the chunk size */
    CK_BWS,        /* after the size: spaces and tabs before ";" or CR */
    CK_EXT,        /* ";" extensions, until CR */
    CK_SIZE_LF,    /* LF ending the size line */
    CK_DATA,       /* chunk data */
    CK_DATA_CR,    /* CRLF after the data */
    CK_DATA_LF,
    CK_TRAILER,    /* start of a trailer line (or the final CRLF) */
    CK_TRAILER_LINE,
    CK_END_LF,     /* LF of the final CRLF */
    CK_DONE
};

/* One step of the state machine over a non-data byte. */
static int chunk_byte(sb_http_chunked *d, unsigned char c)
{
    switch (d->state) {
    case CK_SIZE:
        if (IS(c, C_HEX)) {
            if (d->left > ((uint64_t)INT64_MAX >> 4))
                return SB_EOVERFLOW;
            d->left = d->left * 16 + (uint64_t)hexval(c);
            d->digits++;
            return 0;
        }
        if (d->digits == 0)
            return SB_EHTTP;
        d->state = CK_BWS;
        return chunk_byte(d, c);
    case CK_BWS:
    case CK_EXT:
        if (c == '\r') {
            d->state = CK_SIZE_LF;
            return 0;
        }
        if (!IS(c, C_VALUE))
            return SB_EHTTP;
        /* Only BWS may come before the first ';'. */
        if (d->state == CK_BWS && c == ';')
            d->state = CK_EXT;
        else if (d->state == CK_BWS && c != ' ' && c != '\t')
            return SB_EHTTP;
        /* Every byte after the size counts: BWS is no way around the bound. */
        return ++d->extra > CHUNK_EXTRA_MAX ? SB_HTTP_EHEAD : 0;
    case CK_SIZE_LF:
        if (c != '\n')
            return SB_EHTTP;
        d->extra = 0;
        d->digits = 0;
        d->state = d->left ? CK_DATA : CK_TRAILER;
        return 0;
    case CK_DATA_CR:
        d->state = CK_DATA_LF;
        return c == '\r' ? 0 : SB_EHTTP;
    case CK_DATA_LF:
        d->state = CK_SIZE;
        return c == '\n' ? 0 : SB_EHTTP;
    case CK_TRAILER:
        if (c == '\r') {
            d->state = CK_END_LF;
            return 0;
        }
        /* The byte starts a trailer field. */
        d->state = CK_TRAILER_LINE;
        /* fall through */
    case CK_TRAILER_LINE:
        if (c == '\n')
            d->state = CK_TRAILER;
        return ++d->extra > CHUNK_EXTRA_MAX ? SB_HTTP_EHEAD : 0;
    case CK_END_LF:
        d->state = CK_DONE;
        return c == '\n' ? 0 : SB_EHTTP;
    default:
        return SB_EHTTP;
    }
}

ssize_t sb_http_chunked_decode(sb_http_chunked *d, char *buf, size_t *len)
{
    size_t src = 0, dst = 0, n = *len;
    int rc;

    cls_init();
    while (src < n && d->state != CK_DONE) {
        if (d->state == CK_DATA) {
            size_t take = n - src;
            if ((uint64_t)take > d->left)
                take = (size_t)d->left;
            memmove(buf + dst, buf + src, take);
            dst += take;
            src += take;
            d->left -= take;
            if (d->left == 0)
                d->state = CK_DATA_CR;
            continue;
        }
        if ((rc = chunk_byte(d, (unsigned char)buf[src++])) != 0)
            return rc;
    }
    *len = dst;
    if (d->state != CK_DONE)
        return SB_HTTP_INCOMPLETE;
    memmove(buf + dst, buf + src, n - src);
    return (ssize_t)src;    /* > 0: the body's last byte was in this call */
}

/* ---- ranges, dates, percent-decoding ---- */

/* 1*DIGIT at s[*i..len). A number past UINT64_MAX saturates there
 * instead of failing or wrapping: every byte position it could name lies
 * beyond any file, and that is what the range rules need to know. 0 or -1
 * (no digit). */
static int digits(const char *s, size_t len, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    size_t start = *i;

    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        unsigned dgt = (unsigned)(s[*i] - '0');
        v = v > (UINT64_MAX - dgt) / 10 ? UINT64_MAX : v * 10 + dgt;
        (*i)++;
    }
    *out = v;
    return *i > start ? 0 : -1;
}

/* One range-spec, s[0..len) trimmed: 1 with *r set, 0 unsatisfiable,
 * -1 invalid (syntax, or b < a). */
static int range_spec(const char *s, size_t len, uint64_t size, sb_http_range *r)
{
    uint64_t a = 0, b = 0;
    size_t i = 0;
    int has_a, has_b;

    has_a = digits(s, len, &i, &a) == 0;
    if (i >= len || s[i] != '-')
        return -1;
    i++;
    has_b = digits(s, len, &i, &b) == 0;
    if (i != len || (!has_a && !has_b) || (has_a && has_b && b < a))
        return -1;
    if (!has_a) {   /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return 0;
        r->first = b >= size ? 0 : size - b;
        r->last = size - 1;
        return 1;
    }
    if (a >= size)
        return 0;
    r->first = a;
    r->last = (!has_b || b >= size) ? size - 1 : b;
    return 1;
}

int sb_http_parse_ranges(const char *v, size_t len, uint64_t size, sb_http_range *out, size_t max)
{
    size_t i = 6, specs = 0, n = 0, s, e;
    uint64_t total = 0;

    if (len < 6 || !eq_lower(v, 5, "bytes") || v[5] != '=')
        return 0;
    while (next_element(v, len, &i, &s, &e)) {
        if (e == s)
            continue;   /* an empty list element (RFC 9110 section 5.6.1) */
        if (++specs > max)
            return 0;
        int rc = range_spec(v + s, e - s, size, &out[n]);
        if (rc < 0)
            return 0;
        if (rc == 0)
            continue;
        /* Ranges adding up to more than the representation overlap: a
         * way to make a server send a file many times over (RFC 9110
         * section 14.2 lets it ignore them; nginx does too). */
        uint64_t part = out[n].last - out[n].first + 1;
        if (part > size - total)
            return 0;
        total += part;
        n++;
    }
    if (specs == 0)
        return 0;
    return n ? (int)n : SB_HTTP_EUNSAT;
}

int sb_http_parse_range(const char *v, size_t len, uint64_t size, uint64_t *first, uint64_t *last)
{
    sb_http_range r;
    int rc = sb_http_parse_ranges(v, len, size, &r, 1);

    if (rc == 1) {
        *first = r.first;
        *last = r.last;
    }
    return rc;
}

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *put2(char *o, int v)
{
    o[0] = (char)('0' + v / 10 % 10);
    o[1] = (char)('0' + v % 10);
    return o + 2;
}

void sb_http_format_date(time_t t, char *out)
{
    struct tm tm;
    char *o = out;

    gmtime_r(&t, &tm);
    memcpy(o, wdays[tm.tm_wday % 7], 3);
    o += 3;
    *o++ = ',';
    *o++ = ' ';
    o = put2(o, tm.tm_mday);
    *o++ = ' ';
    memcpy(o, months[tm.tm_mon % 12], 3);
    o += 3;
    *o++ = ' ';
    o = put2(o, (tm.tm_year + 1900) / 100);
    o = put2(o, (tm.tm_year + 1900) % 100);
    *o++ = ' ';
    o = put2(o, tm.tm_hour);
    *o++ = ':';
    o = put2(o, tm.tm_min);
    *o++ = ':';
    o = put2(o, tm.tm_sec);
    memcpy(o, " GMT", 5);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * civil-from-days inverse), so parsing needs neither timegm nor TZ. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int num2(const char *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 0;
}

static int month_of(const char *s)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(s, months[i], 3) == 0)
            return i;
    return -1;
}

/* "08:49:37" */
static int clock_of(const char *s, int *hh, int *mm, int *ss)
{
    if (s[2] != ':' || s[5] != ':' || num2(s, hh) || num2(s + 3, mm) || num2(s + 6, ss))
        return -1;
    return *hh > 23 || *mm > 59 || *ss > 60 ? -1 : 0;
}

/* rfc850-date has two digits of year. RFC 9110 5.6.7: one that would be
 * more than 50 years in the future is the most recent past year with those
 * digits. The only input from outside the bytes is this clock read. */
static int full_year(int yy)
{
    time_t now = time(NULL);
    struct tm tm;
    int cur, y;

    gmtime_r(&now, &tm);
    cur = tm.tm_year + 1900;
    y = cur - cur % 100 + yy;
    if (y > cur + 50)
        y -= 100;
    else if (y <= cur - 50)
        y += 100;
    return y;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static int imf_fixdate(const char *s, int *day, int *mon, int *year)
{
    int yh, yl;

    if (s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        memcmp(s + 25, " GMT", 4) != 0 || (*mon = month_of(s + 8)) < 0 ||
        num2(s + 5, day) || num2(s + 12, &yh) || num2(s + 14, &yl))
        return -1;
    *year = yh * 100 + yl;
    return 17;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT": returns where the clock starts */
static int rfc850_date(const char *s, size_t len, int *day, int *mon, int *year)
{
    static const char *const names[7] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};
    size_t n = len - 24;   /* the day name's length: the rest is 24 bytes */
    int yy, known = 0;
    const char *d = s + n;

    for (int i = 0; i < 7; i++)
        known |= strlen(names[i]) == n && memcmp(s, names[i], n) == 0;
    if (!known || d[0] != ',' || d[1] != ' ' || d[4] != '-' || d[8] != '-' || d[11] != ' ' ||
        memcmp(d + 20, " GMT", 4) != 0 || (*mon = month_of(d + 5)) < 0 ||
        num2(d + 2, day) || num2(d + 9, &yy))
        return -1;
    *year = full_year(yy);
    return (int)n + 12;
}

/* "Sun Nov  6 08:49:37 1994" (the day is space-padded) */
static int asctime_date(const char *s, int *day, int *mon, int *year)
{
    int yh, yl;

    if (s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' ||
        (*mon = month_of(s + 4)) < 0 || num2(s + 20, &yh) || num2(s + 22, &yl))
        return -1;
    if (s[8] == ' ' && s[9] >= '1' && s[9] <= '9')
        *day = s[9] - '0';
    else if (num2(s + 8, day))
        return -1;
    *year = yh * 100 + yl;
    return 11;
}

/* All three forms of RFC 9110 5.6.7, which a recipient MUST accept (an
 * If-Modified-Since from an old client may carry either obsolete one). */
int sb_http_parse_date(const char *s, size_t len, time_t *t)
{
    int day, mon, year, hh, mm, ss, at;

    if (len == SB_HTTP_DATE_LEN && s[3] == ',')
        at = imf_fixdate(s, &day, &mon, &year);
    else if (len == 24 && s[3] == ' ')
        at = asctime_date(s, &day, &mon, &year);
    else if (len >= 30 && len <= 33)
        at = rfc850_date(s, len, &day, &mon, &year);
    else
        at = -1;
    if (at < 0 || clock_of(s + at, &hh, &mm, &ss) < 0 || day < 1 || day > 31)
        return SB_EHTTP;
    int64_t days = days_from_civil(year, mon + 1, day);
    *t = (time_t)(days * 86400 + hh * 3600 + mm * 60 + ss);
    return 0;
}

ssize_t sb_http_percent_decode(const char *src, size_t len, char *out)
{
    size_t o = 0;

    cls_init();
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len || !IS(src[i + 1], C_HEX) || !IS(src[i + 2], C_HEX))
                return SB_EHTTP;
            c = (char)(hexval((unsigned char)src[i + 1]) * 16 + hexval((unsigned char)src[i + 2]));
            if (c == '\0')
                return SB_EHTTP;
            i += 2;
        }
        out[o++] = c;
    }
    return (ssize_t)o;
}

/* ---- status texts ---- */

int sb_http_error_status(int err)
{
    switch (err) {
    case SB_HTTP_ELINE: return 414;
    case SB_HTTP_EHEAD: return 431;
    case SB_HTTP_EVERSION: return 505;
    case SB_HTTP_EBODY: return 413;
    case SB_HTTP_EUNSAT: return 416;
    default: return 400;
    }
}

const char *sb_http_strerror(int err)
{
    return sb_strerror(err);
}

const char *sb_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
