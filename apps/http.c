/* http: the static file server of `switchboard serve --app http --root DIR`,
 * the web server of the HOWTO's running example - the handler: what each
 * request is answered with.
 *
 * HTTP/1.1 with keep-alive and pipelining, GET and HEAD, 100-continue,
 * conditional requests (RFC 9110 section 13: If-Match, If-Unmodified-Since,
 * If-None-Match, If-Modified-Since), byte ranges (several as
 * multipart/byteranges), index.html for directories, an optional access
 * log in Common Log Format.
 *
 * The module has three files, one job each:
 *   http_cut.c    framing: where each request ends, with per-connection
 *                 state; it hands the handler the parsed request as
 *                 msg->info
 *   http_files.c  the root and the safe open beneath it, media types,
 *                 validators, the open-file cache
 *   http.c        this handler: targets, Host, preconditions, ranges,
 *                 redirects, error answers, the access log
 *
 * Defences: the parser is strict (see http.h) and every framing ambiguity
 * (Transfer-Encoding on a request, Transfer-Encoding with Content-Length,
 * differing Content-Lengths, "+5") is a 400 that closes the connection.
 * Paths are percent-decoded once, ".." segments are refused, and files are
 * opened beneath the root only (http_files.h). A redirect's Location is
 * built from the normalised path, never from the raw target. Slow clients
 * are bounded by the connection's read and idle timeouts, and a head
 * trickling in costs O(its length) (http_cut.h).
 *
 * Runs under every dispatch model: the cutter's state is per connection,
 * the cache is shared behind its lock (http_files.h), all other state after
 * init is read-only or per thread, and access-log lines go out with one
 * write(2) on an O_APPEND descriptor, so threads and forked children never
 * interleave them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "apps.h"
#include "http_cut.h"
#include "http_files.h"

/* Files up to this size go out in the same write as the head: one copy of
 * at most 16 KiB is cheaper than a second queue entry and a sendfile call. */
#define SMALL_FILE (16 * 1024)
#define HEAD_BUF 1024             /* our response heads are far below this */
/* Ranges answered as multipart/byteranges; more are ignored (200), as RFC
 * 9110 section 14.2 allows. A part's head holds our longest Content-Type
 * and three 20-digit numbers. */
#define MAX_RANGES 16
#define PART_HEAD 192

#define IDLE_MS 15000   /* keep-alive connections idle this long are closed */
#define READ_MS 10000   /* a started request must complete within this */
#define WRITE_MS 30000  /* a reader that stops reading is dropped */

static struct http_app {
    int log_fd;                /* access log, -1 when off */
    int log_owned;             /* log_fd is ours to close */
} app = {-1, 0};

/* ---- writing a response head ---- */

/* The Date header value, formatted once per second per thread. */
static const char *date_now(time_t now)
{
    static _Thread_local time_t when = -1;
    static _Thread_local char text[SB_HTTP_DATE_LEN + 1];

    if (now != when) {
        sb_http_format_date(now, text);
        when = now;
    }
    return text;
}

static void status_line(hf_out *o, int status)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nServer: switchboard/" SB_VERSION_STRING "\r\nDate: ";

    if (status == 200) {
        hf_put(o, ok, sizeof ok - 1);
        hf_put(o, date_now(time(NULL)), SB_HTTP_DATE_LEN);
        hf_put(o, "\r\n", 2);
        return;
    }
    hf_puts(o, "HTTP/1.1 ");
    hf_putu(o, (uint64_t)status);
    hf_put(o, " ", 1);
    hf_puts(o, sb_http_reason(status));
    hf_puts(o, "\r\nServer: switchboard/" SB_VERSION_STRING "\r\nDate: ");
    hf_put(o, date_now(time(NULL)), SB_HTTP_DATE_LEN);
    hf_put(o, "\r\n", 2);
}

static void conn_line(hf_out *o, const http_req *ps, int keep)
{
    if (!keep)
        hf_puts(o, "Connection: close\r\n");
    else if (ps->req.minor_version == 0)
        hf_puts(o, "Connection: keep-alive\r\n");
}

/* ---- access log ---- */

static void log_request(sb_conn *c, const http_req *ps, int status, uint64_t bytes)
{
    static _Thread_local time_t when = -1;
    static _Thread_local char stamp[40];
    char line[1024];
    const char *peer = sb_conn_peer(c), *colon;
    time_t now = time(NULL);
    struct tm tm;
    size_t n, hl;
    hf_out o;

    if (now != when) {
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%d/%b/%Y:%H:%M:%S %z", &tm);
        when = now;
    }
    /* "1.2.3.4:80" and "[::1]:80" lose the port, "unix:..." stays. */
    colon = strncmp(peer, "unix:", 5) == 0 ? NULL : strrchr(peer, ':');
    hl = colon ? (size_t)(colon - peer) : strlen(peer);
    if (hl > 1 && peer[0] == '[' && peer[hl - 1] == ']') {
        peer++;
        hl -= 2;
    }
    /* Built with the bounded writers: a long method or target is cut at
     * the line's end, never past it. The target is visible ASCII; only
     * '"' and '\' need escaping. */
    o.p = line;
    o.end = line + sizeof line - 1; /* room for the newline */
    hf_put(&o, peer, hl < 79 ? hl : 79);
    hf_puts(&o, " - - [");
    hf_puts(&o, stamp);
    hf_puts(&o, "] \"");
    if (ps->verdict == 0 || ps->verdict == SB_HTTP_EBODY) {
        hf_put(&o, ps->req.method, ps->req.method_len < 32 ? ps->req.method_len : 32);
        hf_put(&o, " ", 1);
        for (size_t i = 0; i < ps->req.target_len && o.end - o.p > 64; i++) {
            char ch = ps->req.target[i];
            if (ch == '"' || ch == '\\')
                hf_put(&o, "\\", 1);
            hf_put(&o, &ch, 1);
        }
        hf_puts(&o, " HTTP/1.");
        hf_putu(&o, (uint64_t)ps->req.minor_version);
    } else {
        hf_put(&o, "-", 1);
    }
    hf_puts(&o, "\" ");
    hf_putu(&o, (uint64_t)status);
    hf_put(&o, " ", 1);
    if (bytes)
        hf_putu(&o, bytes);
    else
        hf_put(&o, "-", 1);
    *o.p++ = '\n';
    n = (size_t)(o.p - line);
    /* A lost log line is not worth failing the request for. */
    if (write(app.log_fd, line, n) < 0)
        return;
}

/* ---- error and redirect answers ---- */

/* Statuses that mean the request stream itself cannot be trusted (or that
 * we cannot tell where the next request starts): answer, then close. */
static int status_closes(int status)
{
    return status == 400 || status == 405 || status == 413 || status == 414 ||
           status == 431 || status == 500 || status == 505;
}

/* An answer with a short text body. extra: more header lines or NULL. */
static int reply_simple(sb_conn *c, const http_req *ps, int status, const char *extra, int is_head)
{
    char buf[HEAD_BUF + 512];
    hf_out o = {buf, buf + sizeof buf};
    int keep = ps->verdict == 0 && ps->fr.keep_alive && !status_closes(status);
    const char *reason = sb_http_reason(status);
    size_t blen = 0;
    int rc;

    status_line(&o, status);
    if (extra)
        hf_puts(&o, extra);
    conn_line(&o, ps, keep);
    if (status != 304) {
        blen = 4 + strlen(reason) + 1;
        hf_puts(&o, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
        hf_putu(&o, blen);
        hf_put(&o, "\r\n", 2);
    }
    hf_put(&o, "\r\n", 2);
    if (status != 304 && !is_head) {
        hf_putu(&o, (uint64_t)status);
        hf_put(&o, " ", 1);
        hf_puts(&o, reason);
        hf_put(&o, "\n", 1);
    } else {
        blen = 0;
    }
    rc = sb_conn_write(c, buf, (size_t)(o.p - buf));
    if (app.log_fd >= 0)
        log_request(c, ps, status, blen);
    if (rc < 0)
        return rc;
    return keep ? 0 : SB_ECLOSED;
}

/* ---- the request target ---- */

/* The parts of a request target that the server uses. */
typedef struct target {
    const char *path;   /* still percent-encoded, starts with '/' */
    size_t path_len;
    const char *query;  /* from its '?' on, or empty */
    size_t query_len;
} target;

/* Split the target: origin form "/p?q", or absolute form
 * "http://authority/p?q" (RFC 9112 section 3.2.2), whose authority must be
 * a valid host with no userinfo, and whose missing path means "/". A
 * fragment never travels in a target, so '#' is refused, as is anything
 * else (authority form, "*", other schemes). Returns 0 or -1. */
static int target_split(const http_req *ps, target *t)
{
    const char *p = ps->req.target, *end = p + ps->req.target_len, *q;
    size_t skip = 0;

    if (memchr(p, '#', ps->req.target_len) != NULL)
        return -1;
    if (end - p >= 7 && strncasecmp(p, "http://", 7) == 0)
        skip = 7;
    else if (end - p >= 8 && strncasecmp(p, "https://", 8) == 0)
        skip = 8;
    if (skip) {
        const char *a = p + skip, *ae = a;
        while (ae < end && *ae != '/' && *ae != '?')
            ae++;
        if (!sb_http_valid_host(a, (size_t)(ae - a)))
            return -1;  /* userinfo ('@') and an empty host fail here too */
        p = ae;
    } else if (p == end || *p != '/') {
        return -1;
    }
    q = memchr(p, '?', (size_t)(end - p));
    t->query = q ? q : end;
    t->query_len = (size_t)(end - t->query);
    t->path = p == t->query ? "/" : p;
    t->path_len = p == t->query ? 1 : (size_t)(t->query - p);
    return 0;
}

static int errno_status(int err)
{
    return err == -EACCES || err == -EPERM ? 403 : 404;
}

/* ---- conditional requests and ranges ---- */

/* Does an If-Match / If-None-Match value - "*" or a list of entity tags -
 * match our tag? Weak comparison ignores a "W/" prefix; strong comparison
 * never matches a weak tag (RFC 9110 section 8.8.3.2). Ours are strong. */
static int etag_matches(const char *v, size_t n, const char *tag, size_t tl, int strong)
{
    size_t i = 0;

    while (i < n) {
        int weak = 0;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i < n && v[i] == '*')
            return 1;
        if (i + 2 <= n && v[i] == 'W' && v[i + 1] == '/') {
            weak = 1;
            i += 2;
        }
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && memcmp(v + s, tag, tl) == 0 && !(strong && weak))
            return 1;
    }
    return 0;
}

static const sb_http_header *header(const http_req *ps, const char *name)
{
    int i = sb_http_find(ps->h, ps->req.num_headers, 0, name);
    return i < 0 ? NULL : &ps->h[i];
}

/* The preconditions of a GET or HEAD, evaluated in the order of RFC 9110
 * section 13.2.2: If-Match, else If-Unmodified-Since (412 when false);
 * then If-None-Match, else If-Modified-Since (304 when false). A date that
 * does not parse leaves its field ignored, as the RFC asks. Returns 0 (go
 * on), 304 or 412. */
static int preconditions(const http_req *ps, const hf_file *f)
{
    const sb_http_header *im = header(ps, "if-match"), *inm = header(ps, "if-none-match");
    const sb_http_header *ius = header(ps, "if-unmodified-since"), *ims;
    time_t t;

    if (im) {
        if (!etag_matches(im->value, im->value_len, f->tag, (size_t)f->tag_len, 1))
            return 412;
    } else if (ius && sb_http_parse_date(ius->value, ius->value_len, &t) == 0 && f->mtime > t) {
        return 412;
    }
    if (inm)
        return etag_matches(inm->value, inm->value_len, f->tag, (size_t)f->tag_len, 0) ? 304 : 0;
    ims = header(ps, "if-modified-since");
    if (ims && sb_http_parse_date(ims->value, ims->value_len, &t) == 0 && f->mtime <= t)
        return 304;
    return 0;
}

/* If-Range: the Range applies only if the validator still matches (a
 * strong ETag or the exact Last-Modified date). */
static int if_range_ok(const http_req *ps, const hf_file *f)
{
    const sb_http_header *ir = header(ps, "if-range");

    if (ir == NULL)
        return 1;
    if (ir->value_len == (size_t)f->tag_len && memcmp(ir->value, f->tag, ir->value_len) == 0)
        return 1;
    return ir->value_len == SB_HTTP_DATE_LEN && memcmp(ir->value, f->lm, SB_HTTP_DATE_LEN) == 0;
}

/* ---- serving a file ---- */

/* The body of a 200/206 from an open file, after the head in buf[0..hl)
 * (buf holds HEAD_BUF + SMALL_FILE bytes). Small bodies travel in the
 * head's write; big ones are handed to the connection with sendfile (it
 * owns fd then). Closes fd in every case. */
static int send_from_fd(sb_conn *c, char *buf, size_t hl, int fd, const hf_reply *r)
{
    size_t got = 0;
    int rc;

    if (r->len > SMALL_FILE) {
        rc = sb_conn_write(c, buf, hl);
        if (rc == 0)
            return sb_conn_sendfile(c, fd, (off_t)r->first, (size_t)r->len);
        close(fd);
        return rc;
    }
    while (got < r->len) {
        ssize_t n = pread(fd, buf + hl + got, (size_t)r->len - got, (off_t)(r->first + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    rc = sb_conn_write(c, buf, hl + got);
    if (rc == 0 && got < r->len)
        rc = SB_ETRUNCATED;     /* the file shrank: the length we sent is a lie */
    return rc;
}

/* The body from memory (a pinned cache entry). A small one is copied
 * behind the head; a larger one is queued as it is, saving a copy (the
 * queue gathers both into one sendmsg). */
static int send_from_memory(sb_conn *c, char *buf, size_t hl, const uint8_t *p, size_t n)
{
    int rc;

    if (n <= 1024) {
        memcpy(buf + hl, p, n);
        return sb_conn_write(c, buf, hl + n);
    }
    rc = sb_conn_write(c, buf, hl);
    return rc < 0 ? rc : sb_conn_write(c, p, n);
}

/* Head + body of a 200/206. Closes f's fd, if any. */
static int send_file(sb_conn *c, const http_req *ps, const hf_file *f, const hf_reply *r, int is_head)
{
    char buf[HEAD_BUF + SMALL_FILE];
    hf_out o = {buf, buf + HEAD_BUF};
    int keep = ps->fr.keep_alive, rc;
    size_t hl;

    status_line(&o, r->status);
    if (r->status == 200 && f->fixed)
        hf_put(&o, f->fixed, f->fixed_len);
    else
        hf_file_lines(&o, f, r);
    conn_line(&o, ps, keep);
    hf_put(&o, "\r\n", 2);
    hl = (size_t)(o.p - buf);

    if (app.log_fd >= 0)
        log_request(c, ps, r->status, is_head ? 0 : r->len);
    if (is_head || r->len == 0) {
        hf_file_close(f);
        rc = sb_conn_write(c, buf, hl);
    } else if (f->data) {
        rc = send_from_memory(c, buf, hl, f->data + r->first, (size_t)r->len);
    } else {
        rc = send_from_fd(c, buf, hl, f->fd, r);
    }
    if (rc < 0)
        return rc;
    return keep ? 0 : SB_ECLOSED;
}

/* A boundary for multipart/byteranges: 16 hex digits, new for every
 * answer, so a file cannot be written to contain the one it is cut with. */
static void boundary(char out[17])
{
    static uint64_t seq;
    uint64_t x = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) ^ (uint64_t)time(NULL) << 32;

    x = (x ^ (x >> 31)) * 0x7fb5d329728ea185ull;   /* a mixer: any odd multiplier will do */
    x = (x ^ (x >> 27)) * 0x81dadef4bc2dd44dull;
    for (int i = 15; i >= 0; i--, x >>= 4)
        out[i] = "0123456789abcdef"[x & 15];
    out[16] = '\0';
}

/* The body of one part: from memory, or from f's fd with sendfile (the
 * connection takes a descriptor per part; the last part takes fd itself). */
static int send_part(sb_conn *c, const hf_file *f, const sb_http_range *r, int last)
{
    uint64_t len = r->last - r->first + 1;
    int fd;

    if (f->data)
        return sb_conn_write(c, f->data + r->first, (size_t)len);
    fd = last ? f->fd : dup(f->fd);
    if (fd < 0)
        return -errno;
    return sb_conn_sendfile(c, fd, (off_t)r->first, (size_t)len);
}

/* Several ranges: 206 with a multipart/byteranges body (RFC 9110 section
 * 14.6), each part with its Content-Type and Content-Range. The ranges are
 * at most MAX_RANGES and add up to at most the file (sb_http_parse_ranges),
 * so the body is bounded by the file plus the parts' heads. Closes f's fd,
 * if any. */
static int send_multipart(sb_conn *c, const http_req *ps, const hf_file *f,
                          const sb_http_range *rs, size_t n)
{
    char head[HEAD_BUF], parts[MAX_RANGES][PART_HEAD], b[17];
    size_t plen[MAX_RANGES];
    uint64_t body = 0;
    hf_out o = {head, head + sizeof head};
    int keep = ps->fr.keep_alive, rc = 0, fd_taken = 0;

    boundary(b);
    for (size_t i = 0; i < n; i++) {
        hf_out p = {parts[i], parts[i] + PART_HEAD};
        hf_puts(&p, "\r\n--");
        hf_puts(&p, b);
        hf_puts(&p, "\r\nContent-Type: ");
        hf_puts(&p, f->ctype);
        hf_puts(&p, "\r\nContent-Range: bytes ");
        hf_putu(&p, rs[i].first);
        hf_put(&p, "-", 1);
        hf_putu(&p, rs[i].last);
        hf_put(&p, "/", 1);
        hf_putu(&p, f->size);
        hf_puts(&p, "\r\n\r\n");
        plen[i] = (size_t)(p.p - parts[i]);
        body += plen[i] + (rs[i].last - rs[i].first + 1);
    }
    body += 2 + 2 + 16 + 4;     /* CRLF "--" boundary "--" CRLF */
    status_line(&o, 206);
    hf_puts(&o, "Content-Type: multipart/byteranges; boundary=");
    hf_puts(&o, b);
    hf_puts(&o, "\r\nContent-Length: ");
    hf_putu(&o, body);
    hf_puts(&o, "\r\nLast-Modified: ");
    hf_put(&o, f->lm, SB_HTTP_DATE_LEN);
    hf_puts(&o, "\r\nETag: ");
    hf_put(&o, f->tag, (size_t)f->tag_len);
    hf_puts(&o, "\r\nAccept-Ranges: bytes\r\n");
    conn_line(&o, ps, keep);
    hf_put(&o, "\r\n", 2);
    if (app.log_fd >= 0)
        log_request(c, ps, 206, body);
    rc = sb_conn_write(c, head, (size_t)(o.p - head));
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = sb_conn_write(c, parts[i], plen[i]);
        if (rc == 0) {
            fd_taken = i == n - 1;  /* even when queueing it fails */
            rc = send_part(c, f, &rs[i], fd_taken);
        }
    }
    if (!fd_taken)
        hf_file_close(f);
    if (rc == 0) {
        hf_out t = {head, head + sizeof head};
        hf_puts(&t, "\r\n--");
        hf_puts(&t, b);
        hf_puts(&t, "--\r\n");
        rc = sb_conn_write(c, head, (size_t)(t.p - head));
    }
    if (rc < 0)
        return rc;
    return keep ? 0 : SB_ECLOSED;
}

/* 304, 416 or the file itself. Closes f's fd, if any. */
static int answer_file(sb_conn *c, const http_req *ps, const hf_file *f, int is_head)
{
    char extra[HEAD_BUF];
    sb_http_range rs[MAX_RANGES];
    const sb_http_header *range;
    hf_reply r = {200, 0, f->size};
    int pre = preconditions(ps, f), n;

    if (pre != 0) {
        hf_file_close(f);
        snprintf(extra, sizeof extra, "ETag: %.*s\r\nLast-Modified: %s\r\n", f->tag_len, f->tag,
                 f->lm);
        return reply_simple(c, ps, pre, pre == 304 ? extra : NULL, is_head);
    }
    /* Range is defined for GET only (RFC 9110 section 14.2). */
    range = is_head ? NULL : header(ps, "range");
    if (range && if_range_ok(ps, f)) {
        n = sb_http_parse_ranges(range->value, range->value_len, f->size, rs, MAX_RANGES);
        if (n == SB_HTTP_EUNSAT) {
            hf_file_close(f);
            snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\n",
                     (unsigned long long)f->size);
            return reply_simple(c, ps, 416, extra, is_head);
        }
        if (n == 1)
            r = (hf_reply){206, rs[0].first, rs[0].last - rs[0].first + 1};
        else if (n > 1)
            return send_multipart(c, ps, f, rs, (size_t)n);
    }
    return send_file(c, ps, f, &r, is_head);
}

/* Answer from a pinned cache entry, then let go of it. */
static int answer_cached(sb_conn *c, const http_req *ps, hf_entry *e, int is_head)
{
    int rc = answer_file(c, ps, hf_entry_file(e), is_head);

    hf_entry_unref(e);
    return rc;
}

/* Characters a path keeps unescaped in a Location (RFC 3986 pchar and
 * '/'); everything else, '%' and '\\' included, goes out as %XX. */
static int path_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

/* The Location of a directory's redirect: the decoded path normalised -
 * runs of '/' folded into one, "." segments dropped - encoded again, a '/'
 * appended, then the query. Built this way it always starts with exactly
 * one '/': "//host/" in a Location is another host to a browser, and
 * "/\\host" is too to some. */
static void location(hf_out *o, const char *path, size_t n, const target *t)
{
    size_t i = 0;

    hf_puts(o, "Location: ");
    while (i < n) {
        while (i < n && path[i] == '/')
            i++;
        size_t s = i;
        while (i < n && path[i] != '/')
            i++;
        if (i == s || (i - s == 1 && path[s] == '.'))
            continue;
        hf_put(o, "/", 1);
        for (size_t k = s; k < i; k++) {
            unsigned char ch = (unsigned char)path[k];
            if (path_char(ch)) {
                hf_put(o, (const char *)&ch, 1);
            } else {
                char e[3] = {'%', "0123456789ABCDEF"[ch >> 4], "0123456789ABCDEF"[ch & 15]};
                hf_put(o, e, 3);
            }
        }
    }
    hf_put(o, "/", 1);
    hf_put(o, t->query, t->query_len);
    hf_puts(o, "\r\n");
}

/* A directory: "dir" -> 301 "dir/"; "dir/" -> dir/index.html. Takes fd.
 * path[0..n) is the decoded path. Returns the index file's fd (with *st
 * refreshed), or -1 after having answered (the return code in *rc). */
static int directory(sb_conn *c, const http_req *ps, int fd, struct stat *st, const char *path,
                     size_t n, const target *t, int is_head, int *rc)
{
    char extra[HEAD_BUF];
    int ifd;

    if (path[n - 1] != '/') {
        hf_out o = {extra, extra + sizeof extra - 1};
        close(fd);
        location(&o, path, n, t);
        /* A Location that does not fit a head is not sent cut short. */
        int fits = o.p < o.end;
        *o.p = '\0';
        *rc = reply_simple(c, ps, fits ? 301 : 404, fits ? extra : NULL, is_head);
        return -1;
    }
    ifd = hf_open_in(fd, "index.html");
    close(fd);
    if (ifd < 0 || fstat(ifd, st) < 0 || !S_ISREG(st->st_mode)) {
        if (ifd >= 0)
            close(ifd);
        *rc = reply_simple(c, ps, ifd == -EACCES ? 403 : 404, NULL, is_head);
        return -1;
    }
    return ifd;
}

static int serve_get(sb_conn *c, const http_req *ps, int is_head)
{
    char path[HTTP_LINE_LIMIT + 16];
    const char *rel;
    size_t rel_len;
    ssize_t n;
    target t;
    struct stat st;
    hf_entry *e;
    hf_file f;
    int fd, rc = 0;

    if (target_split(ps, &t) < 0)
        return reply_simple(c, ps, 400, NULL, is_head);
    n = sb_http_percent_decode(t.path, t.path_len, path);
    if (n < 0 || hf_has_dotdot(path, (size_t)n))
        return reply_simple(c, ps, 400, NULL, is_head);
    path[n] = '\0';
    rel = path;
    while (*rel == '/')
        rel++;
    rel_len = (size_t)(path + n - rel);
    /* The key is the path exactly as a miss opens it, so a hit answers what
     * the full path would have (as of the entry's last check). */
    if ((e = hf_cache_get(rel, rel_len)) != NULL)
        return answer_cached(c, ps, e, is_head);
    fd = hf_open(*rel ? rel : ".");
    if (fd < 0)
        return reply_simple(c, ps, errno_status(fd), NULL, is_head);
    if (fstat(fd, &st) < 0) {
        close(fd);
        return reply_simple(c, ps, 500, NULL, is_head);
    }
    if (S_ISDIR(st.st_mode)) {
        fd = directory(c, ps, fd, &st, path, (size_t)n, &t, is_head, &rc);
        if (fd < 0)
            return rc;
        rel = "index.html";
    } else if (!S_ISREG(st.st_mode)) {
        close(fd);
        return reply_simple(c, ps, 404, NULL, is_head);
    } else if ((e = hf_cache_put(rel, rel_len, fd, &st)) != NULL) {
        close(fd);
        return answer_cached(c, ps, e, is_head);
    }
    hf_describe(&f, &st, rel);
    f.fd = fd;
    return answer_file(c, ps, &f, is_head);
}

/* ---- the handler ---- */

/* A HEAD request? Read from the bytes, not the parse: a refused request
 * has no trustworthy parse, and its answer must still carry no body when
 * it was a HEAD (RFC 9110 section 9.3.2). Empty lines before the request
 * line are skipped as the parser skips them. */
static int is_head_request(const uint8_t *p, size_t n)
{
    while (n > 0 && (*p == '\r' || *p == '\n')) {
        p++;
        n--;
    }
    return n >= 5 && memcmp(p, "HEAD ", 5) == 0;
}

/* RFC 9112 section 3.2: an HTTP/1.1 request has exactly one Host, and a
 * Host, when present, is valid - also beside an absolute-form target,
 * whose authority is then the one that counts (section 3.2.2); the file
 * served never depends on either. */
static int host_ok(const http_req *ps)
{
    int host = sb_http_find(ps->h, ps->req.num_headers, 0, "host");

    if (host < 0)
        return ps->req.minor_version == 0;
    if (sb_http_find(ps->h, ps->req.num_headers, (size_t)host + 1, "host") >= 0)
        return 0;
    return sb_http_valid_host(ps->h[host].value, ps->h[host].value_len);
}

static int http_message(sb_conn *c, const sb_msg *m, void *ud)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const http_req *ps = m->info;
    http_req local;
    int is_head, rc;

    if (ps == NULL) {
        http_examine(&local, m->data, m->len, 0);
        ps = &local;
    }
    if (ps->part == HTTP_DROP)
        return 0;
    is_head = is_head_request(m->data, m->len);
    if (ps->verdict != 0)
        return reply_simple(c, ps, sb_http_error_status(ps->verdict), NULL, is_head);
    if (!is_head && !(ps->req.method_len == 3 && memcmp(ps->req.method, "GET", 3) == 0))
        return reply_simple(c, ps, 405, "Allow: GET, HEAD\r\n", 0);
    if (!host_ok(ps))
        return reply_simple(c, ps, 400, NULL, is_head);
    /* The client waits for this before it sends the body (RFC 9110 section
     * 10.1.1); the final answer follows at once and the body is dropped as
     * it comes. An answer after which the connection closes (the refusals
     * above, or "Connection: close") goes without it: the body would only
     * arrive at a closed socket, whose reset could destroy the answer. */
    if (ps->body_rest > 0 && ps->fr.keep_alive && (rc = sb_conn_write(c, cont, sizeof cont - 1)) < 0)
        return rc;
    return serve_get(c, ps, is_head);
}

/* ---- init ---- */

static int open_log(const char *where, const char **why)
{
    if (where == NULL)
        return 0;
    if (strcmp(where, "-") == 0) {
        app.log_fd = STDOUT_FILENO;
        return 0;
    }
    app.log_fd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (app.log_fd < 0) {
        *why = "cannot open the --access-log file";
        return -errno;
    }
    app.log_owned = 1;
    return 0;
}

static int http_init(const sb_app_config *cfg, sb_server_opts *o, sb_handler *h, const char **why)
{
    const char *root = cfg->root ? cfg->root : ".";
    int rc;

    if ((rc = hf_init(root, !cfg->no_file_cache, why)) < 0)
        return rc;
    if ((rc = open_log(cfg->access_log, why)) < 0)
        return rc;

    o->conn.frame.kind = SB_FRAME_CUSTOM;
    o->conn.frame.cut = http_cut;
    o->conn.frame.cut_ud = &app;
    o->conn.frame.cut_state_size = sizeof(http_cut_state);
    o->conn.frame.cut_info_size = sizeof(http_req);
    /* Room for the largest head plus the largest body we read, and for
     * pipelined requests behind them; the cutter rules on size first. */
    o->conn.max_msg = 4 * (HTTP_HEAD_LIMIT + HTTP_BODY_LIMIT);
    if (o->conn.idle_timeout_ms == 0)
        o->conn.idle_timeout_ms = IDLE_MS;
    if (o->conn.read_timeout_ms == 0)
        o->conn.read_timeout_ms = READ_MS;
    if (o->conn.write_timeout_ms == 0)
        o->conn.write_timeout_ms = WRITE_MS;
    h->on_message = http_message;
    h->app = &app;
    return 0;
}

static void http_fini(void)
{
    hf_fini();
    if (app.log_owned)
        close(app.log_fd);
    app.log_fd = -1;
    app.log_owned = 0;
}

const sb_app sb_app_http = {"http", "static HTTP/1.1 file server (--root DIR)", http_init, http_fini};
