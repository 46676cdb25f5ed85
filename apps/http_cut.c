/* http_cut: the static file server's framing - where each request of a
 * connection ends - with per-connection state so that a head split across
 * many reads costs O(its length). See http_cut.h for the contract.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "http_cut.h"

/* An Expect field listing 100-continue (case-insensitive; RFC 9110 section
 * 10.1.1). Other expectations are ignored, as nginx does. */
static int expects_continue(const http_req *r)
{
    static const char want[] = "100-continue";
    size_t n = r->req.num_headers;

    for (int i = sb_http_find(r->h, n, 0, "expect"); i >= 0;
         i = sb_http_find(r->h, n, (size_t)i + 1, "expect")) {
        const char *v = r->h[i].value, *end = v + r->h[i].value_len;
        while (v < end) {
            const char *e = memchr(v, ',', (size_t)(end - v));
            const char *s = v, *t = e ? e : end;
            while (s < t && (*s == ' ' || *s == '\t'))
                s++;
            while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
                t--;
            if ((size_t)(t - s) == sizeof want - 1 && strncasecmp(s, want, sizeof want - 1) == 0)
                return 1;
            v = e ? e + 1 : end;
        }
    }
    return 0;
}

size_t http_examine(http_req *r, const uint8_t *p, size_t n, int partial)
{
    static const sb_http_limits lim = {HTTP_LINE_LIMIT, HTTP_HEAD_LIMIT};
    int rc = sb_http_parse_request((const char *)p, n, &r->req, r->h, HTTP_MAX_HEADERS, &lim);
    size_t body_here;

    r->part = HTTP_REQUEST;
    r->verdict = 0;
    r->expect_continue = 0;
    r->body_rest = 0;
    r->head_len = 0;
    if (rc == SB_HTTP_INCOMPLETE)
        return 0;
    if (rc < 0) {
        r->verdict = rc;
        return n;
    }
    r->head_len = (size_t)rc;
    /* Any Transfer-Encoding on a request is refused: GET and HEAD carry no
     * body worth decoding, and refusing it removes the TE/CL ambiguity. */
    if (sb_http_framing_get(r->h, r->req.num_headers, r->req.minor_version, 1, &r->fr) < 0 ||
        r->fr.has_te) {
        r->verdict = SB_EHTTP;
        return n;
    }
    if (r->fr.length > HTTP_BODY_LIMIT) {
        r->verdict = SB_HTTP_EBODY;
        return r->head_len;
    }
    /* An HTTP/1.0 client cannot understand 100 Continue: the RFC has the
     * server ignore its expectation. */
    r->expect_continue = r->req.minor_version >= 1 && expects_continue(r);
    body_here = n - r->head_len;
    if (body_here >= r->fr.length)
        return r->head_len + (size_t)r->fr.length;
    if (partial && r->expect_continue && body_here < r->fr.length) {
        r->body_rest = r->fr.length - body_here;
        return n;
    }
    return 0;
}

/* Search p[searched..n) for what makes a parse worth its cost: the end of
 * the request line, the end of the head (an empty line), or a byte no head
 * may hold. Returns 1 when the parser should run now. */
static int head_ready(http_cut_state *st, const uint8_t *p, size_t n, int eof)
{
    size_t i = st->searched;
    int ready = eof;

    for (; i < n; i++) {
        unsigned char c = p[i];
        st->scanned++;
        if (!st->begun) {
            if (c == '\r' || c == '\n')
                continue;   /* empty lines before a request are skipped */
            st->begun = 1;
        }
        if (c == '\n') {
            if (!st->line_seen) {
                st->line_seen = 1;
                ready = 1;
            } else if (p[i - 1] == '\n' || (p[i - 1] == '\r' && p[i - 2] == '\n')) {
                /* The request line's LF lies before p[i - 1], so p[i - 2]
                 * exists. A bare LF is the parser's to refuse. */
                ready = 1;
                i++;
                break;
            }
        } else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
            ready = 1;
            i++;
            break;
        }
    }
    st->searched = i;
    /* At a limit the parser answers 414 or 431, never "incomplete". */
    if (n >= HTTP_HEAD_LIMIT || (!st->line_seen && n >= HTTP_LINE_LIMIT))
        ready = 1;
    return ready;
}

static ssize_t cut_msg(const uint8_t *p, size_t len, void *info, sb_msg *m)
{
    m->data = p;
    m->len = len;
    m->type = -1;
    m->info = info;
    return (ssize_t)len;
}

/* Without state: the whole request from the bytes alone. */
static ssize_t cut_stateless(const uint8_t *p, size_t n, sb_msg *m)
{
    http_req r;
    size_t len = http_examine(&r, p, n, 0);

    return len ? cut_msg(p, len, NULL, m) : 0;
}

ssize_t http_cut(void *ud, void *state, const uint8_t *p, size_t n, int eof, sb_msg *m)
{
    http_cut_state *st = state;
    http_req *r = m->info;
    size_t len;

    if (st == NULL || r == NULL)
        return n ? cut_stateless(p, n, m) : 0;
    if (n == 0)
        return 0;
    if (st->drop) {
        len = st->drop < n ? (size_t)st->drop : n;
        st->drop -= len;
        memset(r, 0, offsetof(http_req, req));
        r->part = HTTP_DROP;
        r->body_rest = st->drop;
        return cut_msg(p, len, r, m);
    }
    if (st->need ? n < st->need : !head_ready(st, p, n, eof))
        return 0;   /* at eof too: the connection reports the truncation */
    st->parses++;
    len = http_examine(r, p, n, 1);
    if (len == 0) {
        /* The head is in, its body is not: wait for it without looking. */
        if (r->head_len)
            st->need = r->head_len + (size_t)r->fr.length;
        return 0;
    }
    st->searched = st->need = 0;
    st->begun = st->line_seen = 0;
    st->drop = r->body_rest;
    return cut_msg(p, len, r, m);
}
