/* test_bench_http: bench's HTTP response cutter (cli/bench_http.c). A
 * stream of responses of every framing bench meets - Content-Length, an
 * empty body, chunked with extensions and trailers, an interim 100, 204,
 * 404, "Connection: close" - is cut the same whether it arrives at once,
 * in two pieces split at every byte, or one byte at a time; malformed and
 * unsupported responses are errors; the request carries the URL's Host. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench_http.h"
#include "test.h"

static const char stream[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: t\r\n\r\nhello"
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n"
    "HTTP/1.1 100 Continue\r\n\r\n"
    "HTTP/1.1 204 No Content\r\n\r\n"
    "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye";

struct want {
    int status, keep_alive;
    uint64_t body;
};

static const struct want wants[] = {
    {200, 1, 5}, {200, 1, 0}, {200, 1, 19}, {204, 1, 0},
    {404, 1, 9}, {200, 1, 2}, {200, 0, 3},
};
#define NWANT (sizeof wants / sizeof *wants)

/* Feed stream[0..n) as bench does, `step` bytes per read (0: the first
 * `first` bytes, then the rest): the unconsumed bytes stay at the front of
 * the buffer and the new ones are appended. Returns the responses cut. */
static size_t run(size_t step, size_t first)
{
    size_t n = sizeof stream - 1, fed = 0, have = 0, got = 0;
    uint8_t *buf = malloc(n);
    struct hcut h;

    CHECK(buf != NULL);
    memset(&h, 0, sizeof h);
    while (fed < n) {
        size_t k = step ? step : (fed == 0 ? first : n - fed);
        if (k > n - fed)
            k = n - fed;
        memcpy(buf + have, stream + fed, k);
        have += k;
        fed += k;
        for (;;) {
            size_t used = 99;
            int r = hcut_feed(&h, buf, have, &used);
            CHECK(r >= 0);
            CHECK(used <= have);
            memmove(buf, buf + used, have - used);
            have -= used;
            if (r == 0)
                break;
            CHECK(got < NWANT);
            CHECK_EQ(h.status, wants[got].status);
            CHECK_EQ(h.keep_alive, wants[got].keep_alive);
            CHECK_EQ(h.body, wants[got].body);
            got++;
        }
    }
    CHECK_EQ(have, 0);
    free(buf);
    return got;
}

static void test_every_split(void)
{
    CHECK_EQ(run(0, sizeof stream - 1), NWANT);
    for (size_t k = 1; k < sizeof stream - 1; k++)
        CHECK_EQ(run(0, k), NWANT);
    for (size_t step = 1; step <= 7; step++)
        CHECK_EQ(run(step, 0), NWANT);
}

static int cut_one(const char *s)
{
    uint8_t buf[20000];
    size_t used, n = strlen(s);
    struct hcut h;

    memset(&h, 0, sizeof h);
    CHECK(n <= sizeof buf);
    memcpy(buf, s, n);
    return hcut_feed(&h, buf, n, &used);
}

static void test_errors(void)
{
    static char big[17000];

    /* no length: the body would run to the close */
    CHECK(cut_one("HTTP/1.1 200 OK\r\nServer: t\r\n\r\nxx") < 0);
    CHECK(cut_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx") < 0);
    CHECK(cut_one("HTTP/1.1 101 Switching Protocols\r\n\r\n") < 0);
    CHECK(cut_one("HTTX/1.1 200 OK\r\n\r\n") < 0);
    CHECK(cut_one("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") < 0);
    CHECK(cut_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") < 0);
    /* a head over 16 KiB: an error, not a wait for ever */
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    CHECK(cut_one(big) < 0);
    /* an echo of the request is not a response */
    CHECK(cut_one("GET / HTTP/1.1\r\nHost: x\r\n\r\n") < 0);
    /* incomplete is not an error */
    CHECK_EQ(cut_one("HTTP/1.1 200 OK\r\nContent-Le"), 0);
}

static void test_request(void)
{
    cli_url u;
    const char *why;
    char req[512];

    CHECK_EQ(cli_url_parse("http://127.0.0.1:8080/a/b?q=1", &u, &why), 0);
    CHECK(bench_http_request(&u, 0, req, sizeof req) > 0);
    CHECK(strcmp(req, "GET /a/b?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n") == 0);
    CHECK_EQ(cli_url_parse("http://[::1]/", &u, &why), 0);
    CHECK(bench_http_request(&u, 0, req, sizeof req) > 0);
    CHECK(strcmp(req, "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n") == 0);
    /* --reconnect: the server is asked to close after its answer */
    CHECK(bench_http_request(&u, 1, req, sizeof req) > 0);
    CHECK(strcmp(req, "GET / HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n") == 0);
    CHECK_EQ(bench_http_request(&u, 0, req, 10), -1);
}

int main(void)
{
    RUN(test_every_split);
    RUN(test_errors);
    RUN(test_request);
    fprintf(stderr, "test_bench_http: ok\n");
    return 0;
}
