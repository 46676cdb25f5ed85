/* test_http_cut: the http app's request cutter (apps/http_cut.c) - that it
 * cuts the same requests with the same verdicts whatever the split of the
 * bytes, that a head arriving one byte per read costs O(its length) in
 * parse work, and the 100-continue cut with the body dropped behind it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_cut.h"
#include "test.h"

/* What a message was, for comparing two runs. */
typedef struct cut {
    size_t off, len;
    int part, verdict;
} cut;

#define MAXCUTS 64

/* http_cut as a connection calls it: msg->info arrives pointing at the
 * block the caller lends for each message (sb_frame_spec.cut_info_size). */
static ssize_t cut_call(http_cut_state *st, const uint8_t *p, size_t n, int eof, sb_msg *m)
{
    static http_req block;

    m->info = &block;
    return http_cut(NULL, st, p, n, eof, m);
}

/* Cut data[0..n) the way a connection does when the bytes arrive `step`
 * at a time (0: all at once): the unconsumed tail is offered again with
 * each new piece, the state is kept between calls. Stops at the first
 * refused request (the connection closes there). Returns the number of
 * messages; st receives the work counters. */
static size_t run(const char *data, size_t n, size_t step, http_cut_state *st, cut *out)
{
    size_t off = 0, have = 0, k = 0;

    memset(st, 0, sizeof(*st));
    while (have < n) {
        have = step == 0 || n - have < step ? n : have + step;
        for (;;) {
            sb_msg m;
            ssize_t r = cut_call(st, (const uint8_t *)data + off, have - off, have == n, &m);
            CHECK(r >= 0);
            if (r == 0)
                break;
            const http_req *q = m.info;
            CHECK(q != NULL && m.data == (const uint8_t *)data + off && m.len == (size_t)r);
            CHECK(k < MAXCUTS);
            out[k++] = (cut){off, (size_t)r, q->part, q->verdict};
            off += (size_t)r;
            if (q->verdict != 0)
                return k;
        }
    }
    return k;
}

static const char *const streams[] = {
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nHEAD /c HTTP/1.0\r\n\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: y\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\nHost: x\n\n",
    "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
    "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    "GET / HTTP/1.1\r\nHost: x\x01y\r\n\r\n",
    "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /after-empty-lines HTTP/1.1\r\nHost: x\r\n\r\n",
};

/* Every split gives the same requests and the same verdicts as the whole
 * input at once. A refused request's message takes what had arrived, which
 * depends on the split, so only its start and verdict are compared. */
static void test_splits(void)
{
    static http_cut_state st;
    cut whole[MAXCUTS], part[MAXCUTS];

    for (size_t i = 0; i < sizeof streams / sizeof *streams; i++) {
        size_t n = strlen(streams[i]);
        size_t kw = run(streams[i], n, 0, &st, whole);
        CHECK(kw > 0);
        for (size_t step = 1; step <= n; step++) {
            size_t kp = run(streams[i], n, step, &st, part);
            if (kp != kw)
                fprintf(stderr, "stream %zu step %zu: %zu messages, want %zu\n", i, step, kp, kw);
            CHECK_EQ(kp, kw);
            for (size_t k = 0; k < kw; k++) {
                CHECK_EQ(part[k].off, whole[k].off);
                CHECK_EQ(part[k].verdict, whole[k].verdict);
                CHECK_EQ(part[k].part, whole[k].part);
                if (whole[k].verdict == 0)
                    CHECK_EQ(part[k].len, whole[k].len);
            }
        }
    }
}

/* The same through the stateless path (NULL state: sb_frame_decode). */
static void test_stateless(void)
{
    const char *s = streams[1];
    sb_msg m;
    ssize_t r = http_cut(NULL, NULL, (const uint8_t *)s, strlen(s), 0, &m);

    CHECK_EQ(r, (ssize_t)strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(m.info == NULL);
    CHECK_EQ(http_cut(NULL, NULL, (const uint8_t *)s, 10, 0, &m), 0);
}

/* A head of about 15 KiB arriving one byte per read: the parser runs a
 * bounded number of times and each byte is searched once - the work is
 * O(length), where parsing from the start on every read was O(length^2)
 * (some 15,000 parses for this head). */
static void test_byte_by_byte(void)
{
    static char head[HTTP_HEAD_LIMIT];
    static http_cut_state st;
    cut out[MAXCUTS];
    size_t n = 0;

    n += (size_t)sprintf(head + n, "GET /slow HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 72; i++) {
        n += (size_t)sprintf(head + n, "X-%02d: ", i);
        memset(head + n, 'v', 200);
        n += 200;
        n += (size_t)sprintf(head + n, "\r\n");
    }
    n += (size_t)sprintf(head + n, "\r\n");
    CHECK(n > 15000 && n < HTTP_HEAD_LIMIT);
    CHECK_EQ(run(head, n, 1, &st, out), 1);
    CHECK(out[0].len == n && out[0].verdict == 0);
    fprintf(stderr, "    %zu bytes one at a time: %llu parses, %llu bytes searched\n", n,
            (unsigned long long)st.parses, (unsigned long long)st.scanned);
    CHECK(st.parses <= 3);
    CHECK(st.scanned <= n);
    /* A body arriving a byte at a time is waited for without parsing. */
    static char req[256];
    size_t m = (size_t)sprintf(req, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
    memset(req + m, 'b', 100);
    CHECK_EQ(run(req, m + 100, 1, &st, out), 1);
    CHECK(out[0].len == m + 100);
    CHECK(st.parses <= 4);
}

/* Expect: 100-continue with the body held back: the head is handed over at
 * once (so the handler can send 100 Continue), the body follows as HTTP_DROP
 * messages, then the next request. HTTP/1.0 and other expectations wait
 * for the body as usual. */
static void test_expect(void)
{
    static http_cut_state st;
    const char *head = "GET /e HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n";
    const char *next = "GET /n HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[512];
    size_t hl = strlen(head), n;
    sb_msg m;
    const http_req *q;

    memset(&st, 0, sizeof st);
    n = (size_t)sprintf(buf, "%sabc", head);
    CHECK_EQ(cut_call(&st, (const uint8_t *)buf, n, 0, &m), (ssize_t)n);
    q = m.info;
    CHECK(q->part == HTTP_REQUEST && q->verdict == 0 && q->expect_continue);
    CHECK_EQ(q->body_rest, 7);
    CHECK_EQ(q->head_len, hl);
    n = (size_t)sprintf(buf, "defg");
    CHECK_EQ(cut_call(&st, (const uint8_t *)buf, n, 0, &m), 4);
    CHECK(((const http_req *)m.info)->part == HTTP_DROP);
    n = (size_t)sprintf(buf, "hij%s", next);
    CHECK_EQ(cut_call(&st, (const uint8_t *)buf, n, 0, &m), 3);
    CHECK(((const http_req *)m.info)->part == HTTP_DROP);
    CHECK_EQ(cut_call(&st, (const uint8_t *)buf + 3, n - 3, 0, &m), (ssize_t)strlen(next));
    q = m.info;
    CHECK(q->part == HTTP_REQUEST && q->body_rest == 0 && !q->expect_continue);

    const char *wait[] = {
        "GET /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\nabc",
        "GET /e HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 10\r\n\r\nabc",
    };
    for (size_t i = 0; i < 2; i++) {
        memset(&st, 0, sizeof st);
        CHECK_EQ(cut_call(&st, (const uint8_t *)wait[i], strlen(wait[i]), 0, &m), 0);
    }
    /* The whole body already there: one message, nothing to drop. */
    memset(&st, 0, sizeof st);
    n = (size_t)sprintf(buf, "%s0123456789", head);
    CHECK_EQ(cut_call(&st, (const uint8_t *)buf, n, 0, &m), (ssize_t)n);
    CHECK_EQ(((const http_req *)m.info)->body_rest, 0);
}

int main(void)
{
    RUN(test_splits);
    RUN(test_stateless);
    RUN(test_byte_by_byte);
    RUN(test_expect);
    fprintf(stderr, "test_http_cut: ok\n");
    return 0;
}
