/* test_http: the HTTP parsers, framing rules, chunked decoder and helpers.
 *
 * Inputs are placed right before a PROT_NONE guard page, so a parser that
 * reads one byte past the length it was given crashes the test instead of
 * passing by luck. Every truncated prefix of every valid message must be
 * "incomplete", never an error and never a crash.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"

#define MAXH 32

static char *guard_base;
static size_t guard_page;

/* Copy s[0..n) so that it ends exactly at the guard page. */
static char *guarded(const char *s, size_t n)
{
    if (guard_base == NULL) {
        guard_page = (size_t)sysconf(_SC_PAGESIZE);
        guard_base = mmap(NULL, 16 * guard_page + guard_page, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(guard_base != MAP_FAILED);
        CHECK(mprotect(guard_base + 16 * guard_page, guard_page, PROT_NONE) == 0);
    }
    CHECK(n <= 16 * guard_page);
    char *p = guard_base + 16 * guard_page - n;
    memcpy(p, s, n);
    return p;
}

static int req(const char *s, sb_http_request *r, sb_http_header *h)
{
    size_t n = strlen(s);
    return sb_http_parse_request(guarded(s, n), n, r, h, MAXH, NULL);
}

static int status_of(const char *s)
{
    sb_http_request r;
    sb_http_header h[MAXH];
    int rc = req(s, &r, h);
    if (rc > 0)
        return 200;
    if (rc == SB_HTTP_INCOMPLETE)
        return 0;
    return sb_http_error_status(rc);
}

static int span_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

static const char *valid_requests[] = {
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "GET /index.html HTTP/1.0\r\n\r\n",
    ("HEAD /a%20b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8.0\r\n"
     "Accept: */*\r\nX-Empty:\r\nX-Tabs:\t v \t\r\n\r\n"),
    "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
    "GET http://h/abs HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\n",
};

static void test_valid(void)
{
    sb_http_request r;
    sb_http_header h[MAXH];
    const char *s = valid_requests[2];
    int rc = req(s, &r, h);

    CHECK_EQ(rc, strlen(s));
    CHECK(span_is(r.method, r.method_len, "HEAD"));
    CHECK(span_is(r.target, r.target_len, "/a%20b?x=1&y=2"));
    CHECK_EQ(r.minor_version, 1);
    CHECK_EQ(r.num_headers, 5);
    CHECK(span_is(h[0].name, h[0].name_len, "Host"));
    CHECK(span_is(h[0].value, h[0].value_len, "h"));
    CHECK(span_is(h[3].name, h[3].name_len, "X-Empty"));
    CHECK_EQ(h[3].value_len, 0);
    CHECK(span_is(h[4].value, h[4].value_len, "v"));
    CHECK_EQ(sb_http_find(h, r.num_headers, 0, "user-agent"), 1);
    CHECK_EQ(sb_http_find(h, r.num_headers, 2, "user-agent"), -1);

    rc = req(valid_requests[1], &r, h);
    CHECK_EQ(rc, strlen(valid_requests[1]));
    CHECK_EQ(r.minor_version, 0);
    CHECK_EQ(r.num_headers, 0);

    /* Leading empty lines are consumed with the request. */
    rc = req(valid_requests[3], &r, h);
    CHECK_EQ(rc, strlen(valid_requests[3]));
    CHECK(span_is(r.method, r.method_len, "GET"));

    /* Pipelined: the first head only. */
    const char *two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\n";
    rc = req(two, &r, h);
    CHECK_EQ(rc, strlen("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
    CHECK(span_is(r.target, r.target_len, "/1"));
}

static void test_prefixes(void)
{
    sb_http_request r;
    sb_http_header h[MAXH];

    for (size_t k = 0; k < sizeof valid_requests / sizeof *valid_requests; k++) {
        const char *s = valid_requests[k];
        size_t n = strlen(s);
        for (size_t i = 0; i < n; i++) {
            int rc = sb_http_parse_request(guarded(s, i), i, &r, h, MAXH, NULL);
            if (rc != SB_HTTP_INCOMPLETE)
                fprintf(stderr, "request %zu prefix %zu: %d\n", k, i, rc);
            CHECK_EQ(rc, SB_HTTP_INCOMPLETE);
        }
        CHECK_EQ(sb_http_parse_request(guarded(s, n), n, &r, h, MAXH, NULL), n);
    }
}

struct bad { const char *req; int status; };

static const struct bad bad_requests[] = {
    /* start line */
    {"GET  / HTTP/1.1\r\n\r\n", 400},
    {"GET / HTTP/1.1 \r\n\r\n", 400},
    {" GET / HTTP/1.1\r\n\r\n", 400},
    {"GET / http/1.1\r\n\r\n", 400},
    {"GET / HTTP/1.x\r\n\r\n", 400},
    {"GET / HTTP/11\r\n\r\n", 400},
    {"GET / HTTP/2.0\r\n\r\n", 505},
    {"GET / HTTP/0.9\r\n\r\n", 505},
    {"GET /\r\n\r\n", 400},
    {"GET /a\x01 HTTP/1.1\r\n\r\n", 400},
    {"GET /a\x7f HTTP/1.1\r\n\r\n", 400},
    {"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400},
    {"G(T / HTTP/1.1\r\n\r\n", 400},
    {"GET / HTTP/1.1\n\n", 400},
    {"GET / HTTP/1.1\rX\r\n\r\n", 400},
    {"\n GET / HTTP/1.1\r\n\r\n", 400},
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400}, /* a TLS hello */
    /* header fields */
    {"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\n\tfolded\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n: v\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost h\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHo(st: h\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nX: a\x7f" "b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nX: a\nb: c\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 0}, /* strlen stops at NUL: incomplete */
    {"GET / HTTP/1.1\r\nX: a\r\n\r", 0},
    {"GET / HTTP/1.1\r\nX: a\r\n\rX", 400},
};

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof bad_requests / sizeof *bad_requests; i++) {
        int got = status_of(bad_requests[i].req);
        if (got != bad_requests[i].status)
            fprintf(stderr, "bad request %zu: got %d want %d\n", i, got, bad_requests[i].status);
        CHECK_EQ(got, bad_requests[i].status);
    }
    /* NUL inside a value, with an explicit length. */
    const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    sb_http_request r;
    sb_http_header h[MAXH];
    CHECK_EQ(sb_http_parse_request(guarded(nul, sizeof nul - 1), sizeof nul - 1, &r, h, MAXH, NULL),
             SB_EHTTP);
    const char nul2[] = "GET /a\0 HTTP/1.1\r\n\r\n";
    CHECK_EQ(sb_http_parse_request(guarded(nul2, sizeof nul2 - 1), sizeof nul2 - 1, &r, h, MAXH, NULL),
             SB_EHTTP);
}

static void test_limits(void)
{
    static char big[40000];
    sb_http_request r;
    sb_http_header h[MAXH];
    sb_http_limits lim = {64, 256};
    size_t n;

    /* A request line of exactly max_line bytes (CRLF included) is fine... */
    n = (size_t)snprintf(big, sizeof big, "GET /%s HTTP/1.1\r\n\r\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    CHECK_EQ(n - 2, 64);
    CHECK_EQ(sb_http_parse_request(guarded(big, n), n, &r, h, MAXH, &lim), n);
    /* ...one more is 414, as soon as max_line bytes have arrived. */
    n = (size_t)snprintf(big, sizeof big, "GET /%s HTTP/1.1\r\n\r\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    CHECK_EQ(sb_http_parse_request(guarded(big, n), n, &r, h, MAXH, &lim), SB_HTTP_ELINE);
    CHECK_EQ(sb_http_parse_request(guarded(big, 64), 64, &r, h, MAXH, &lim), SB_HTTP_ELINE);
    CHECK_EQ(sb_http_parse_request(guarded(big, 63), 63, &r, h, MAXH, &lim), SB_HTTP_INCOMPLETE);
    CHECK_EQ(sb_http_error_status(SB_HTTP_ELINE), 414);

    /* Head over max_head: 431, also while still incomplete. */
    n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX: %0300d\r\n\r\n", 0);
    CHECK_EQ(sb_http_parse_request(guarded(big, n), n, &r, h, MAXH, &lim), SB_HTTP_EHEAD);
    CHECK_EQ(sb_http_parse_request(guarded(big, 256), 256, &r, h, MAXH, &lim), SB_HTTP_EHEAD);
    CHECK_EQ(sb_http_error_status(SB_HTTP_EHEAD), 431);

    /* More fields than the array holds: 431. */
    n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 3; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "X%d: v\r\n", i);
    n += (size_t)snprintf(big + n, sizeof big - n, "\r\n");
    CHECK_EQ(sb_http_parse_request(guarded(big, n), n, &r, h, 3, NULL), n);
    CHECK_EQ(sb_http_parse_request(guarded(big, n), n, &r, h, 2, NULL), SB_HTTP_EHEAD);

    /* Defaults: 8 KiB line, 16 KiB head. */
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    CHECK_EQ(sb_http_parse_request(guarded(big, 8191), 8191, &r, h, MAXH, NULL), SB_HTTP_INCOMPLETE);
    CHECK_EQ(sb_http_parse_request(guarded(big, 8192), 8192, &r, h, MAXH, NULL), SB_HTTP_ELINE);
    /* A stream of empty lines is bounded by the line limit too. */
    for (size_t i = 0; i < 9000; i += 2)
        memcpy(big + i, "\r\n", 2);
    CHECK_EQ(sb_http_parse_request(guarded(big, 9000), 9000, &r, h, MAXH, NULL), SB_HTTP_ELINE);
}

static void test_response(void)
{
    sb_http_response r;
    sb_http_header h[MAXH];
    const char *ok[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
        "HTTP/1.0 404 Not Found\n\n",
        "HTTP/1.1 204\r\n\r\n",
        "HTTP/1.1 301 Moved  Permanently\r\nLocation: /x/\r\n\r\n",
    };

    for (size_t k = 0; k < sizeof ok / sizeof *ok; k++) {
        size_t n = strlen(ok[k]);
        for (size_t i = 0; i < n; i++)
            CHECK_EQ(sb_http_parse_response(guarded(ok[k], i), i, &r, h, MAXH, NULL),
                     SB_HTTP_INCOMPLETE);
        CHECK_EQ(sb_http_parse_response(guarded(ok[k], n), n, &r, h, MAXH, NULL), n);
    }
    sb_http_parse_response(ok[0], strlen(ok[0]), &r, h, MAXH, NULL);
    CHECK_EQ(r.status, 200);
    CHECK(span_is(r.reason, r.reason_len, "OK"));
    CHECK_EQ(r.num_headers, 2);
    sb_http_parse_response(ok[1], strlen(ok[1]), &r, h, MAXH, NULL);
    CHECK_EQ(r.status, 404);
    CHECK_EQ(r.minor_version, 0);
    CHECK(span_is(r.reason, r.reason_len, "Not Found"));
    sb_http_parse_response(ok[3], strlen(ok[3]), &r, h, MAXH, NULL);
    CHECK(span_is(r.reason, r.reason_len, "Moved  Permanently"));

    const char *bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n", "ICY 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA : b\r\n\r\n", "HTTP/1.1 200 O\x01K\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        size_t n = strlen(bad[k]);
        int rc = sb_http_parse_response(guarded(bad[k], n), n, &r, h, MAXH, NULL);
        if (rc != SB_EHTTP)
            fprintf(stderr, "bad response %zu: %d\n", k, rc);
        CHECK_EQ(rc, SB_EHTTP);
    }
}

/* Parse s as a request and apply the request framing rules. */
static int framing(const char *s, sb_http_framing *f, int is_request)
{
    sb_http_request r;
    sb_http_header h[MAXH];
    int rc = req(s, &r, h);
    CHECK(rc > 0);
    return sb_http_framing_get(h, r.num_headers, r.minor_version, is_request, f);
}

static void test_framing(void)
{
    sb_http_framing f;
    const char *bad[] = {
        "GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        int rc = framing(bad[k], &f, 1);
        if (rc != SB_EHTTP)
            fprintf(stderr, "bad framing %zu accepted\n", k);
        CHECK_EQ(rc, SB_EHTTP);
    }

    CHECK_EQ(framing("GET / HTTP/1.1\r\nContent-Length: 007\r\n\r\n", &f, 1), 0);
    CHECK(f.has_length && f.length == 7 && f.keep_alive);
    CHECK_EQ(framing("GET / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", &f, 1), 0);
    CHECK(f.has_length && f.length == 5);
    CHECK_EQ(framing("GET / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", &f, 1), 0);
    CHECK_EQ(framing("GET / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", &f, 1), 0);
    CHECK(f.chunked && f.has_te && !f.has_length);
    CHECK_EQ(framing("GET / HTTP/1.1\r\n\r\n", &f, 1), 0);
    CHECK(!f.has_length && !f.has_te && f.keep_alive);
    CHECK_EQ(framing("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &f, 1), 0);
    CHECK(!f.keep_alive);
    CHECK_EQ(framing("GET / HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\n\r\n", &f, 1), 0);
    CHECK(!f.keep_alive);
    CHECK_EQ(framing("GET / HTTP/1.0\r\n\r\n", &f, 1), 0);
    CHECK(!f.keep_alive);
    CHECK_EQ(framing("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &f, 1), 0);
    CHECK(f.keep_alive);
    /* Response rules: a final coding other than chunked reads to close. */
    CHECK_EQ(framing("GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &f, 0), 0);
    CHECK(f.chunked && !f.until_close && f.keep_alive);
    CHECK_EQ(framing("GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", &f, 0), 0);
    CHECK(!f.chunked && f.until_close && !f.keep_alive);

    uint64_t v;
    CHECK_EQ(sb_http_parse_length("0", 1, &v), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(sb_http_parse_length("", 0, &v), SB_EHTTP);
    CHECK_EQ(sb_http_parse_length(" 1", 2, &v), SB_EHTTP);
}

/* *err of chunked_in_steps when the input ended inside the body. */
#define STILL_OPEN 1

/* Decode a chunked body fed in pieces of `step` bytes, accumulating like a
 * client would. Returns the decoded length, and *rest the leftover; *err is
 * 0 (the body ended), STILL_OPEN, or the decoder's error. */
static long chunked_in_steps(const char *in, size_t n, size_t step, char *out, size_t *rest, int *err)
{
    sb_http_chunked d;
    char buf[4096];
    size_t got = 0;

    memset(&d, 0, sizeof d);
    *err = 0;
    for (size_t off = 0; off < n;) {
        size_t take = n - off < step ? n - off : step;
        memcpy(buf, in + off, take);
        off += take;
        size_t len = take;
        ssize_t rc = sb_http_chunked_decode(&d, buf, &len);
        memcpy(out + got, buf, len);
        got += len;
        if (rc > 0) {
            CHECK((size_t)rc <= take);
            *rest = take - (size_t)rc + (n - off);
            return (long)got;
        }
        if (rc < 0) {
            *err = (int)rc;
            return -1;
        }
        CHECK_EQ(rc, SB_HTTP_INCOMPLETE);
    }
    *err = STILL_OPEN;
    return (long)got;
}

static void test_chunked(void)
{
    const char *body = "5\r\nhello\r\n1;ext=1\r\n \r\n10\r\n0123456789abcdef\r\n"
                       "0\r\nTrailer: x\r\n\r\nNEXT";
    const char *want = "hello 0123456789abcdef";
    char out[4096];
    size_t rest;
    int err;

    for (size_t step = 1; step <= strlen(body); step++) {
        long got = chunked_in_steps(body, strlen(body), step, out, &rest, &err);
        CHECK_EQ(err, 0);
        CHECK_EQ(got, strlen(want));
        CHECK(memcmp(out, want, strlen(want)) == 0);
        CHECK_EQ(rest, 4);
    }
    /* Every truncated prefix: incomplete, never an error. */
    size_t full = strlen(body) - 4;
    for (size_t i = 0; i < full; i++) {
        chunked_in_steps(body, i, 7, out, &rest, &err);
        CHECK_EQ(err, STILL_OPEN);
    }
    /* In place, one call, leftover after the data. */
    char buf[128];
    strcpy(buf, body);
    size_t len = strlen(buf);
    sb_http_chunked d;
    memset(&d, 0, sizeof d);
    CHECK_EQ(sb_http_chunked_decode(&d, buf, &len), (ssize_t)strlen(body) - 4);
    CHECK_EQ(len, strlen(want));
    CHECK(memcmp(buf + len, "NEXT", 4) == 0);

    const char *bad[] = {
        "x\r\n", "\r\n", "5\r\nhelloX\r\n", "5\rhello", "5 x\r\n", "-1\r\n",
        "5\nhello\r\n", "10000000000000000\r\n", "0\r\n\rX",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        chunked_in_steps(bad[k], strlen(bad[k]), 3, out, &rest, &err);
        if (err >= 0)
            fprintf(stderr, "bad chunked %zu: %d\n", k, err);
        CHECK(err < 0);
    }
    chunked_in_steps("10000000000000000\r\n", 19, 19, out, &rest, &err);
    CHECK_EQ(err, SB_EOVERFLOW);
    /* Unbounded trailers are refused. */
    static char trl[20000];
    size_t n = (size_t)snprintf(trl, sizeof trl, "0\r\n");
    while (n < sizeof trl - 20)
        n += (size_t)snprintf(trl + n, sizeof trl - n, "T: xxxxxxxxx\r\n");
    chunked_in_steps(trl, n, 4096, out, &rest, &err);
    CHECK_EQ(err, SB_HTTP_EHEAD);
    /* ... and so are unbounded chunk extensions, or blanks before them. */
    for (int blank = 0; blank < 2; blank++) {
        n = (size_t)snprintf(trl, sizeof trl, blank ? "5" : "5;");
        memset(trl + n, blank ? ' ' : 'x', sizeof trl - n);
        chunked_in_steps(trl, sizeof trl, 4096, out, &rest, &err);
        CHECK_EQ(err, SB_HTTP_EHEAD);
    }
    /* A few blanks and an extension are fine. */
    const char *ok = "5 \t;a=b\r\nhello\r\n0\r\n\r\n";
    CHECK_EQ(chunked_in_steps(ok, strlen(ok), 3, out, &rest, &err), 5);
    CHECK_EQ(err, 0);
}

static void test_range(void)
{
    struct { const char *v; uint64_t size; int rc; uint64_t a, b; } t[] = {
        {"bytes=0-9", 100, 1, 0, 9},
        {"bytes=0-0", 1, 1, 0, 0},
        {"bytes=90-", 100, 1, 90, 99},
        {"bytes=90-200", 100, 1, 90, 99},
        {"bytes=-10", 100, 1, 90, 99},
        {"bytes=-200", 100, 1, 0, 99},
        {"Bytes = 1-2 ", 100, 0, 0, 0},
        {"bytes= 1-2 ", 100, 1, 1, 2},
        {"bytes=100-", 100, SB_HTTP_EUNSAT, 0, 0},
        {"bytes=100-200", 100, SB_HTTP_EUNSAT, 0, 0},
        {"bytes=-0", 100, SB_HTTP_EUNSAT, 0, 0},
        {"bytes=0-", 0, SB_HTTP_EUNSAT, 0, 0},
        {"bytes=-5", 0, SB_HTTP_EUNSAT, 0, 0},
        {"bytes=5-1", 100, 0, 0, 0},
        {"bytes=0-1,5-6", 100, 0, 0, 0},
        {"bytes=-", 100, 0, 0, 0},
        {"bytes=a-b", 100, 0, 0, 0},
        {"bytes=1-2x", 100, 0, 0, 0},
        {"items=0-1", 100, 0, 0, 0},
        /* Numbers past 2^63 and past 2^64 never wrap: a first position
         * beyond the file is unsatisfiable, a last position beyond it is
         * the end, a suffix longer than the file is all of it (RFC 9110
         * section 14.1.2). */
        {"bytes=99999999999999999999999-", 100, SB_HTTP_EUNSAT, 0, 0},
        {"bytes=18446744073709551615-", 100, SB_HTTP_EUNSAT, 0, 0},
        {"bytes=9223372036854775808-9223372036854775809", 100, SB_HTTP_EUNSAT, 0, 0},
        {"bytes=-9223372036854775808", 100, 1, 0, 99},
        {"bytes=-18446744073709551616", 100, 1, 0, 99},
        {"bytes=-99999999999999999999999", 100, 1, 0, 99},
        {"bytes=0-99999999999999999999999", 100, 1, 0, 99},
        {"bytes=10-18446744073709551616", 100, 1, 10, 99},
        {"bytes=99999999999999999999999-5", 100, 0, 0, 0},
        {"bytes=-9223372036854775808", 0, SB_HTTP_EUNSAT, 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        uint64_t a = 0, b = 0;
        int rc = sb_http_parse_range(t[i].v, strlen(t[i].v), t[i].size, &a, &b);
        if (rc != t[i].rc)
            fprintf(stderr, "range %s: %d\n", t[i].v, rc);
        CHECK_EQ(rc, t[i].rc);
        if (rc == 1) {
            CHECK_EQ(a, t[i].a);
            CHECK_EQ(b, t[i].b);
        }
    }
}

/* Several ranges (multipart/byteranges), and the bounds that make a
 * Range header ignored. */
static void test_ranges(void)
{
    struct { const char *v; uint64_t size; int rc; uint64_t r[4][2]; } t[] = {
        {"bytes=0-1,5-6", 100, 2, {{0, 1}, {5, 6}}},
        {"bytes=0-1, 5-6 ,-3", 100, 3, {{0, 1}, {5, 6}, {97, 99}}},
        {"bytes=0-1,,5-6,", 100, 2, {{0, 1}, {5, 6}}},          /* empty elements */
        {"bytes=0-1,200-300", 100, 1, {{0, 1}}},                /* unsatisfiable left out */
        {"bytes=200-300,300-", 100, SB_HTTP_EUNSAT, {{0}}},
        {"bytes=90-,95-99", 100, 2, {{90, 99}, {95, 99}}},      /* overlap within the size */
        {"bytes=0-99,0-99", 100, 0, {{0}}},                     /* twice the file: ignored */
        {"bytes=-60,-60", 100, 0, {{0}}},
        {"bytes=0-1,x", 100, 0, {{0}}},                         /* any bad one: ignored */
        {"bytes=0-1,5-2", 100, 0, {{0}}},
        {"bytes=0-0,1-1,2-2,3-3,4-4", 100, 0, {{0}}},           /* more than max (4) */
        {"bytes=,", 100, 0, {{0}}},
        {"bytes=0-1,99999999999999999999999-", 100, 1, {{0, 1}}},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        sb_http_range r[4];
        int rc = sb_http_parse_ranges(t[i].v, strlen(t[i].v), t[i].size, r, 4);
        if (rc != t[i].rc)
            fprintf(stderr, "ranges %s: %d\n", t[i].v, rc);
        CHECK_EQ(rc, t[i].rc);
        for (int k = 0; k < rc; k++) {
            CHECK_EQ(r[k].first, t[i].r[k][0]);
            CHECK_EQ(r[k].last, t[i].r[k][1]);
        }
    }
}

static void test_date(void)
{
    char d[SB_HTTP_DATE_LEN + 1];
    time_t t;

    sb_http_format_date(784111777, d);
    CHECK(strcmp(d, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);
    CHECK_EQ(sb_http_parse_date(d, strlen(d), &t), 0);
    CHECK_EQ(t, 784111777);
    for (time_t x = 0; x < 4102444800; x += 86400 * 37 + 3671) {
        sb_http_format_date(x, d);
        CHECK_EQ(sb_http_parse_date(d, strlen(d), &t), 0);
        CHECK_EQ(t, x);
    }
    /* The two obsolete forms name the same instant (RFC 9110 5.6.7). */
    t = 0;
    CHECK_EQ(sb_http_parse_date("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t), 0);
    CHECK_EQ(t, 784111777);
    t = 0;
    CHECK_EQ(sb_http_parse_date("Sun Nov  6 08:49:37 1994", 24, &t), 0);
    CHECK_EQ(t, 784111777);
    CHECK_EQ(sb_http_parse_date("Wednesday, 01-Jan-20 00:00:00 GMT", 33, &t), 0);
    CHECK_EQ(t, 1577836800);
    CHECK_EQ(sb_http_parse_date("Wed Jan 01 00:00:00 2020", 24, &t), 0);
    CHECK_EQ(t, 1577836800);
    /* A two-digit year is within 50 years ahead of the clock, else the
     * century before: "00" is 2000 as long as this runs before 2050. */
    CHECK_EQ(sb_http_parse_date("Saturday, 01-Jan-00 00:00:00 GMT", 32, &t), 0);
    CHECK_EQ(t, 946684800);
    {
        time_t now = time(NULL);
        struct tm tm;
        char d2[40];
        gmtime_r(&now, &tm);
        int ahead = (tm.tm_year + 1900 + 60) % 100, behind_year = tm.tm_year + 1900 + 60 - 100;
        snprintf(d2, sizeof d2, "Monday, 01-Jan-%02d 00:00:00 GMT", ahead);
        CHECK_EQ(sb_http_parse_date(d2, strlen(d2), &t), 0);
        gmtime_r(&t, &tm);
        CHECK_EQ(tm.tm_year + 1900, behind_year);
    }
    const char *bad[] = {
        "Sunday, 06-Nov-94 08:49:37 UTC", "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sonday, 06-Nov-94 08:49:37 GMT", "Sun, 06-Nov-94 08:49:37 GMT",
        "Sunday, 06-Xyz-94 08:49:37 GMT", "Sunday, 06-Nov-94 25:49:37 GMT",
        "Sun Nov  6 08:49:37 94", "Sun Nov 6 08:49:37 1994 ", "Sun Nov  0 08:49:37 1994",
        "Sun Xyz  6 08:49:37 1994", "Sun Nov  6 08:49:3x 1994", "Sun Nov 32 08:49:37 1994",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_EQ(sb_http_parse_date(bad[i], strlen(bad[i]), &t), SB_EHTTP);
    CHECK_EQ(sb_http_parse_date("Sun, 06 Xyz 1994 08:49:37 GMT", 29, &t), SB_EHTTP);
    CHECK_EQ(sb_http_parse_date("Sun, 06 Nov 1994 08:49:37 UTC", 29, &t), SB_EHTTP);
}

static void test_percent(void)
{
    char out[64];
    CHECK_EQ(sb_http_percent_decode("/a%20b%2F%2e%2E", 15, out), 7);
    CHECK(memcmp(out, "/a b/..", 7) == 0);
    CHECK_EQ(sb_http_percent_decode("a+b", 3, out), 3);
    CHECK_EQ(sb_http_percent_decode("%00", 3, out), SB_EHTTP);
    CHECK_EQ(sb_http_percent_decode("%4", 2, out), SB_EHTTP);
    CHECK_EQ(sb_http_percent_decode("%", 1, out), SB_EHTTP);
    CHECK_EQ(sb_http_percent_decode("%zz", 3, out), SB_EHTTP);
    char inplace[] = "%41%42c";
    CHECK_EQ(sb_http_percent_decode(inplace, 7, inplace), 3);
    CHECK(memcmp(inplace, "ABc", 3) == 0);
}

/* Host values (RFC 9112 section 3.2, RFC 3986 section 3.2.2). */
static void test_host(void)
{
    static const char *good[] = {
        "localhost", "localhost:8080", "example.com", "127.0.0.1", "127.0.0.1:80", "[::1]",
        "[::1]:80", "[2001:db8::7]", "[v1.fe80::a+en1]", "a_b", "%41b", "x:", "a-b.c~d",
        "!$&'()*+,;=",
    };
    static const char *bad[] = {
        "", "local host", "local/host", "u@host", "host:8x", ":80", "[::1", "[::1]x",
        "[]", "[::g]", "h\\x", "h%4", "h%zz", "a:b:c", "host ", "h\"x", "[v]", "h?", "h#",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        if (!sb_http_valid_host(good[i], strlen(good[i])))
            fprintf(stderr, "refused good host %s\n", good[i]);
        CHECK(sb_http_valid_host(guarded(good[i], strlen(good[i])), strlen(good[i])));
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (sb_http_valid_host(bad[i], strlen(bad[i])))
            fprintf(stderr, "accepted bad host %s\n", bad[i]);
        CHECK(!sb_http_valid_host(guarded(bad[i], strlen(bad[i])), strlen(bad[i])));
    }
}

/* One error space: every code the HTTP functions return has its text in
 * sb_strerror, and "incomplete" is 0 as in the frame decoders. */
static void test_error_space(void)
{
    static const int codes[] = {SB_EHTTP, SB_HTTP_ELINE, SB_HTTP_EHEAD, SB_HTTP_EVERSION,
                                SB_HTTP_EBODY, SB_HTTP_EUNSAT};
    sb_http_request r;
    sb_http_header h[MAXH];
    sb_frame_spec spec;
    sb_msg m;

    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        CHECK(codes[i] < SB_ERR_BASE);
        CHECK(strcmp(sb_strerror(codes[i]), "unknown error") != 0);
        CHECK(strcmp(sb_http_strerror(codes[i]), sb_strerror(codes[i])) == 0);
        for (size_t k = 0; k < i; k++)
            CHECK(strcmp(sb_strerror(codes[i]), sb_strerror(codes[k])) != 0);
    }
    CHECK(strcmp(sb_strerror(SB_HTTP_EUNSAT), "range not satisfiable") == 0);
    CHECK_EQ(sb_frame_parse("line", &spec), 0);
    CHECK_EQ(sb_frame_decode(&spec, 0, (const uint8_t *)"GET", 3, 0, &m), 0);
    CHECK_EQ(sb_http_parse_request("GET", 3, &r, h, MAXH, NULL), 0);
    CHECK_EQ(SB_HTTP_INCOMPLETE, 0);
}

static void test_texts(void)
{
    CHECK(strcmp(sb_http_reason(404), "Not Found") == 0);
    CHECK(strcmp(sb_http_reason(799), "Unknown") == 0);
    CHECK_EQ(sb_http_error_status(SB_EHTTP), 400);
    CHECK_EQ(sb_http_error_status(SB_HTTP_EVERSION), 505);
    CHECK(strcmp(sb_http_strerror(SB_HTTP_ELINE), "HTTP request line too long") == 0);
    CHECK(strcmp(sb_http_strerror(SB_EHTTP), "malformed HTTP message") == 0);
}

int main(void)
{
    RUN(test_valid);
    RUN(test_prefixes);
    RUN(test_bad);
    RUN(test_limits);
    RUN(test_response);
    RUN(test_framing);
    RUN(test_chunked);
    RUN(test_range);
    RUN(test_ranges);
    RUN(test_date);
    RUN(test_percent);
    RUN(test_host);
    RUN(test_error_space);
    RUN(test_texts);
    fprintf(stderr, "test_http: ok\n");
    return 0;
}
