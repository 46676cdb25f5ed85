/* bench_http: the request and the response cutter of bench's HTTP mode
 * (bench_http.h). */
#include <stdio.h>
#include <string.h>

#include "bench_http.h"

#define HEAD_MAX (16 * 1024)
#define MAX_HEADERS 64

enum { H_HEAD, H_LENGTH, H_CHUNKED };

int bench_http_request(const cli_url *u, int close, char *out, size_t cap)
{
    int n = snprintf(out, cap, "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n%s\r\n", u->target,
                     u->v6 ? "[" : "", u->host, u->v6 ? "]" : "", u->port_given ? ":" : "",
                     u->port_given ? u->port : "", close ? "Connection: close\r\n" : "");

    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* A head at the front of buf: set up the body. Returns the head's length,
 * 0 for more bytes, or a negative code. */
static int cut_head(struct hcut *h, const uint8_t *buf, size_t len)
{
    static const sb_http_limits lim = {8 * 1024, HEAD_MAX};
    sb_http_header hd[MAX_HEADERS];
    sb_http_response res;
    sb_http_framing f;
    int n = sb_http_parse_response((const char *)buf, len, &res, hd, MAX_HEADERS, &lim);

    if (n == SB_HTTP_INCOMPLETE)
        return 0;
    if (n < 0)
        return n;
    h->status = res.status;
    h->body = 0;
    if (res.status >= 100 && res.status < 200)
        return res.status == 101 ? SB_EHTTP : n; /* interim: next head */
    if (sb_http_framing_get(hd, res.num_headers, res.minor_version, 0, &f) < 0)
        return SB_EHTTP;
    h->keep_alive = f.keep_alive;
    if (res.status == 204 || res.status == 304)
        h->state = H_HEAD, h->left = 0;
    else if (f.chunked)
        h->state = H_CHUNKED, memset(&h->ch, 0, sizeof h->ch);
    else if (f.has_length)
        h->state = H_LENGTH, h->left = f.length;
    else
        return SB_EHTTP; /* read-until-close: no keep-alive load possible */
    return n;
}

/* Body bytes at the front of buf. Returns 1 when the body ended, 0 when
 * all of buf was taken, or a negative code; *used as hcut_feed's. */
static int cut_body(struct hcut *h, uint8_t *buf, size_t len, size_t *used)
{
    size_t dec = len;
    ssize_t r;

    *used = 0;
    if (h->state == H_LENGTH) {
        size_t take = len < h->left ? len : (size_t)h->left;
        h->left -= take;
        h->body += take;
        *used = take;
        return h->left == 0;
    }
    r = sb_http_chunked_decode(&h->ch, (char *)buf, &dec);
    h->body += dec;
    if (r == SB_HTTP_INCOMPLETE) {
        *used = len;
        return 0;
    }
    if (r < 0)
        return (int)r;
    /* The body took r bytes; the next message's len - r were moved to
     * buf + dec: put them back behind the r taken. */
    memmove(buf + r, buf + dec, len - (size_t)r);
    *used = (size_t)r;
    return 1;
}

int hcut_feed(struct hcut *h, uint8_t *buf, size_t len, size_t *used)
{
    size_t off = 0, u;
    int r;

    for (;;) {
        if (h->state == H_HEAD) {
            r = cut_head(h, buf + off, len - off);
            if (r <= 0) {
                *used = off;
                return r;
            }
            off += (size_t)r;
            if (h->status < 200)
                continue;
            if (h->state == H_HEAD) { /* no body */
                *used = off;
                return 1;
            }
        }
        r = cut_body(h, buf + off, len - off, &u);
        off += u;
        *used = off;
        if (r != 0)
            h->state = H_HEAD;
        return r;
    }
}
