/* test_stream: the buffered "file-like" stream - request/reply through an
 * echo thread, the forgotten-flush deadlock (and how sb_stream_request
 * avoids it), read_msg under every framing, messages split across many
 * receives, EOF, truncation, size bounds, and timeouts on reads and writes. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "sys.h"
#include "test.h"

#define SOON_MS 10000

static void pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static sb_frame_spec spec_of(const char *name)
{
    sb_frame_spec sp;

    CHECK_EQ(sb_frame_parse(name, &sp), 0);
    return sp;
}

static sb_stream *open_stream(int fd, const char *spec, size_t max_msg, int timeout_ms)
{
    sb_frame_spec sp = spec_of(spec);
    sb_stream *s = NULL;

    CHECK_EQ(sb_stream_open(&s, fd, &sp, max_msg, timeout_ms), 0);
    CHECK(s != NULL);
    return s;
}

static int msg_is(const sb_msg *m, const char *want)
{
    return m->len == strlen(want) && memcmp(m->data, want, m->len) == 0;
}

/* ---- an echo peer --------------------------------------------------------- */

struct echo {
    int fd;
    const char *spec;
    int messages; /* how many it answered */
};

/* Answers every message with the same payload, one flush per message, and
 * exits when the client goes away. Owns and closes fd. */
static void *echo_main(void *arg)
{
    struct echo *e = arg;
    sb_stream *s = open_stream(e->fd, e->spec, 1 << 20, SOON_MS);
    sb_msg m;

    while (sb_stream_read_msg(s, &m) == 1) {
        CHECK_EQ(sb_stream_write_msg(s, m.type, m.data, m.len), 0);
        CHECK_EQ(sb_stream_flush(s), 0);
        e->messages++;
    }
    sb_stream_close(s);
    close(e->fd);
    return NULL;
}

static int start_echo(struct echo *e, pthread_t *th, const char *spec)
{
    int sv[2];

    pair(sv);
    e->fd = sv[1];
    e->spec = spec;
    e->messages = 0;
    CHECK_EQ(pthread_create(th, NULL, echo_main, e), 0);
    return sv[0];
}

static void test_request_reply(void)
{
    static const char *const specs[] = {"line", "len32", "varint"};
    char text[64];
    size_t i;
    int k;

    for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        struct echo e;
        pthread_t th;
        int fd = start_echo(&e, &th, specs[i]);
        sb_stream *s = open_stream(fd, specs[i], 1 << 20, SOON_MS);
        sb_msg m;

        for (k = 0; k < 100; k++) {
            snprintf(text, sizeof(text), "request %d", k);
            CHECK_EQ(sb_stream_request(s, -1, text, strlen(text), &m), 1);
            CHECK(msg_is(&m, text));
        }
        /* The reply stays valid while the next request is framed from it. */
        CHECK_EQ(sb_stream_request(s, -1, m.data, m.len, &m), 1);
        CHECK(msg_is(&m, "request 99"));
        sb_stream_close(s);
        close(fd);
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK_EQ(e.messages, 101);
    }
}

/* The HOWTO's warning: with buffered output, a request that was written but
 * not flushed never reaches the peer, and waiting for its reply hangs - here
 * only until the timeout. The request call flushes, so it cannot happen. */
static void test_forgotten_flush(void)
{
    const int timeout = 200;
    struct echo e;
    pthread_t th;
    sb_stream *s;
    sb_msg m;
    char buf[16];
    size_t got = 0;
    ssize_t n;
    int fd;

    /* Raw bytes: write, then read without a flush. */
    fd = start_echo(&e, &th, "raw");
    s = open_stream(fd, "raw", 0, timeout);
    CHECK_EQ(sb_stream_write(s, "ping\n", 5), 5);
    CHECK_EQ(sb_stream_read(s, buf, sizeof(buf)), -ETIMEDOUT);
    CHECK_EQ(e.messages, 0); /* the echo never saw it */
    /* The flush is all that was missing. */
    CHECK_EQ(sb_stream_flush(s), 0);
    while (got < 5 && (n = sb_stream_read(s, buf + got, sizeof(buf) - got)) > 0)
        got += (size_t)n;
    CHECK_EQ(got, 5);
    CHECK(memcmp(buf, "ping\n", 5) == 0);
    sb_stream_close(s);
    close(fd);
    CHECK_EQ(pthread_join(th, NULL), 0);

    /* Messages: the same mistake with write_msg + read_msg ... */
    fd = start_echo(&e, &th, "line");
    s = open_stream(fd, "line", 1024, timeout);
    CHECK_EQ(sb_stream_write_msg(s, -1, "ping", 4), 0);
    CHECK_EQ(sb_stream_read_msg(s, &m), -ETIMEDOUT);
    sb_stream_close(s); /* discards the unsent request */
    close(fd);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(e.messages, 0);

    /* ... and the same setup with sb_stream_request gets its answer. */
    fd = start_echo(&e, &th, "line");
    s = open_stream(fd, "line", 1024, timeout);
    CHECK_EQ(sb_stream_request(s, -1, "ping", 4, &m), 1);
    CHECK(msg_is(&m, "ping"));
    sb_stream_close(s);
    close(fd);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(e.messages, 1);
}

/* ---- every framing -------------------------------------------------------- */

struct framing_case {
    const char *spec;
    const char *msgs[4]; /* NULL terminated */
    int types[4];
};

static const struct framing_case framings[] = {
    {"line", {"hello", "", "wor\rld", NULL}, {0}},
    {"delim:\\r\\n\\r\\n", {"GET / HTTP/1.0\r\nHost: x", "", "z", NULL}, {0}},
    {"fixed:5", {"hello", "world", "12345", NULL}, {0}},
    {"ascii:5", {"hello", "", "a longer message", NULL}, {0}},
    {"len16", {"hello", "", "x", NULL}, {0}},
    {"len32", {"hello", "", "with\nnewline\0inside", NULL}, {0}},
    {"len64", {"hello", "", "x", NULL}, {0}},
    {"varint", {"hello", "", "x", NULL}, {0}},
    {"typed:a=3,b=0,0x7f=5", {"abc", "", "12345", NULL}, {'a', 'b', 0x7f}},
};

/* Write msgs with one stream, read them back with another, then EOF. */
static void roundtrip(const struct framing_case *c)
{
    sb_stream *w, *r;
    sb_msg m;
    int sv[2], i;

    pair(sv);
    w = open_stream(sv[0], c->spec, 1024, SOON_MS);
    r = open_stream(sv[1], c->spec, 1024, SOON_MS);
    for (i = 0; c->msgs[i]; i++)
        CHECK_EQ(sb_stream_write_msg(w, c->types[i], c->msgs[i], strlen(c->msgs[i])), 0);
    CHECK_EQ(sb_stream_flush(w), 0);
    CHECK_EQ(sb_shutdown_write(sv[0]), 0);
    for (i = 0; c->msgs[i]; i++) {
        CHECK_EQ(sb_stream_read_msg(r, &m), 1);
        if (!msg_is(&m, c->msgs[i]))
            fprintf(stderr, "    %s: message %d differs\n", c->spec, i);
        CHECK(msg_is(&m, c->msgs[i]));
        if (c->types[0])
            CHECK_EQ(m.type, c->types[i]);
    }
    CHECK_EQ(sb_stream_read_msg(r, &m), 0); /* clean EOF between messages */
    CHECK_EQ(sb_stream_read_msg(r, &m), 0);
    sb_stream_close(w);
    sb_stream_close(r);
    close(sv[0]);
    close(sv[1]);
}

static void test_every_framing(void)
{
    size_t i;

    for (i = 0; i < sizeof(framings) / sizeof(framings[0]); i++)
        roundtrip(&framings[i]);
}

/* raw: whatever arrives is a message. eof: the message is everything up to
 * the peer's shutdown. */
static void test_raw_and_eof_framing(void)
{
    sb_stream *w, *r;
    sb_msg m;
    char all[64];
    size_t got = 0;
    int sv[2];

    pair(sv);
    w = open_stream(sv[0], "raw", 1024, SOON_MS);
    r = open_stream(sv[1], "raw", 1024, SOON_MS);
    CHECK_EQ(sb_stream_write_msg(w, -1, "some bytes", 10), 0);
    CHECK_EQ(sb_stream_flush(w), 0);
    CHECK_EQ(sb_shutdown_write(sv[0]), 0);
    while (sb_stream_read_msg(r, &m) == 1) {
        CHECK(got + m.len <= sizeof(all));
        memcpy(all + got, m.data, m.len);
        got += m.len;
    }
    CHECK_EQ(got, 10);
    CHECK(memcmp(all, "some bytes", 10) == 0);
    sb_stream_close(w);
    sb_stream_close(r);
    close(sv[0]);
    close(sv[1]);

    pair(sv);
    w = open_stream(sv[0], "eof", 1024, SOON_MS);
    r = open_stream(sv[1], "eof", 1024, SOON_MS);
    CHECK_EQ(sb_stream_write_msg(w, -1, "the whole ", 10), 0);
    CHECK_EQ(sb_stream_write_msg(w, -1, "request", 7), 0);
    CHECK_EQ(sb_stream_flush(w), 0);
    CHECK_EQ(sb_shutdown_write(sv[0]), 0);
    CHECK_EQ(sb_stream_read_msg(r, &m), 1);
    CHECK(msg_is(&m, "the whole request"));
    CHECK_EQ(sb_stream_read_msg(r, &m), 0);
    sb_stream_close(w);
    sb_stream_close(r);
    close(sv[0]);
    close(sv[1]);
}

/* ---- messages split over many receives -------------------------------------- */

struct dribble {
    int fd;
    const uint8_t *p;
    size_t n;
};

static void *dribble_main(void *arg)
{
    struct dribble *d = arg;
    size_t i;

    for (i = 0; i < d->n; i++)
        CHECK_EQ(sb_send_all(d->fd, d->p + i, 1, sb_now_ms() + SOON_MS), 1);
    CHECK_EQ(sb_shutdown_write(d->fd), 0);
    return NULL;
}

static void split_case(const char *spec)
{
    sb_frame_spec sp = spec_of(spec);
    sb_buf wire;
    struct dribble d;
    pthread_t th;
    sb_stream *r;
    sb_msg m;
    char text[32];
    int sv[2], i;

    sb_buf_init(&wire, 0);
    for (i = 0; i < 50; i++) {
        snprintf(text, sizeof(text), "message number %d", i);
        CHECK_EQ(sb_frame_encode(&sp, -1, text, strlen(text), &wire), 0);
    }
    pair(sv);
    d.fd = sv[0];
    d.p = sb_buf_data(&wire);
    d.n = sb_buf_len(&wire);
    CHECK_EQ(pthread_create(&th, NULL, dribble_main, &d), 0);
    r = open_stream(sv[1], spec, 64, SOON_MS);
    for (i = 0; i < 50; i++) {
        snprintf(text, sizeof(text), "message number %d", i);
        CHECK_EQ(sb_stream_read_msg(r, &m), 1);
        CHECK(msg_is(&m, text));
    }
    CHECK_EQ(sb_stream_read_msg(r, &m), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    sb_stream_close(r);
    sb_buf_free(&wire);
    close(sv[0]);
    close(sv[1]);
}

static void test_split_delivery(void)
{
    split_case("line");
    split_case("len32");
    split_case("ascii:3");
}

/* Many small messages in one burst: the input holds the chunk behind the
 * current message without mistaking it for one oversized message. */
static void test_pipelined_burst(void)
{
    sb_frame_spec sp = spec_of("line");
    sb_buf wire;
    sb_stream *r;
    sb_msg m;
    char text[32];
    int sv[2], i;

    sb_buf_init(&wire, 0);
    for (i = 0; i < 2000; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        CHECK_EQ(sb_frame_encode(&sp, -1, text, strlen(text), &wire), 0);
    }
    pair(sv);
    CHECK_EQ(sb_send_all(sv[0], sb_buf_data(&wire), sb_buf_len(&wire), sb_now_ms() + SOON_MS),
             sb_buf_len(&wire));
    CHECK_EQ(sb_shutdown_write(sv[0]), 0);
    r = open_stream(sv[1], "line", 8, SOON_MS);
    for (i = 0; i < 2000; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        CHECK_EQ(sb_stream_read_msg(r, &m), 1);
        CHECK(msg_is(&m, text));
    }
    CHECK_EQ(sb_stream_read_msg(r, &m), 0);
    sb_stream_close(r);
    sb_buf_free(&wire);
    close(sv[0]);
    close(sv[1]);
}

/* ---- errors and bounds ------------------------------------------------------ */

static int read_after_sending(const char *spec, size_t max_msg, const void *bytes, size_t n)
{
    sb_stream *r;
    sb_msg m;
    int sv[2], rc;

    pair(sv);
    CHECK_EQ(sb_send_all(sv[0], bytes, n, sb_now_ms() + SOON_MS), n);
    close(sv[0]);
    r = open_stream(sv[1], spec, max_msg, SOON_MS);
    rc = sb_stream_read_msg(r, &m);
    sb_stream_close(r);
    close(sv[1]);
    return rc;
}

static void test_truncated_and_too_big(void)
{
    static const uint8_t len10_3[] = {0, 0, 0, 10, 'a', 'b', 'c'};
    static const uint8_t len1000[] = {0, 0, 3, 232};
    char line[200];

    CHECK_EQ(read_after_sending("len32", 64, len10_3, sizeof(len10_3)), SB_ETRUNCATED);
    CHECK_EQ(read_after_sending("len32", 64, len10_3, 2), SB_ETRUNCATED);
    CHECK_EQ(read_after_sending("line", 64, "no newline", 10), SB_ETRUNCATED);
    CHECK_EQ(read_after_sending("line", 64, "", 0), 0);
    /* The declared length is refused before any payload is waited for. */
    CHECK_EQ(read_after_sending("len32", 64, len1000, sizeof(len1000)), SB_ETOOBIG);
    memset(line, 'x', sizeof(line));
    CHECK_EQ(read_after_sending("line", 64, line, sizeof(line)), SB_ETOOBIG);
    CHECK_EQ(read_after_sending("ascii:3", 64, "12x", 3), SB_EMALFORMED);
}

/* Writing refuses what the framing cannot carry, before buffering anything. */
static void test_write_msg_refused(void)
{
    sb_stream *w;
    int sv[2];

    pair(sv);
    w = open_stream(sv[0], "line", 0, SOON_MS);
    CHECK_EQ(sb_stream_write_msg(w, -1, "a\nb", 3), SB_EMALFORMED);
    sb_stream_close(w);
    w = open_stream(sv[0], "fixed:4", 0, SOON_MS);
    CHECK_EQ(sb_stream_write_msg(w, -1, "abc", 3), SB_ETOOBIG);
    sb_stream_close(w);
    w = open_stream(sv[0], "typed:a=1", 0, SOON_MS);
    CHECK_EQ(sb_stream_write_msg(w, 'z', "x", 1), SB_EBADTYPE);
    sb_stream_close(w);
    /* And a reader with nothing coming gives up at its timeout. */
    w = open_stream(sv[1], "raw", 0, 50);
    CHECK_EQ(sb_stream_read_msg(w, &(sb_msg){0}), -ETIMEDOUT);
    sb_stream_close(w);
    close(sv[0]);
    close(sv[1]);
}

/* Plain reads and message reads share the input buffer. */
static void test_mixed_reads(void)
{
    sb_stream *r;
    sb_msg m;
    char buf[16];
    int sv[2];

    pair(sv);
    CHECK_EQ(sb_send_all(sv[0], "first\nrest", 10, sb_now_ms() + SOON_MS), 10);
    CHECK_EQ(sb_shutdown_write(sv[0]), 0);
    r = open_stream(sv[1], "line", 64, SOON_MS);
    CHECK_EQ(sb_stream_read_msg(r, &m), 1);
    CHECK(msg_is(&m, "first"));
    CHECK_EQ(sb_stream_read(r, buf, 2), 2);
    CHECK(memcmp(buf, "re", 2) == 0);
    CHECK_EQ(sb_stream_read(r, buf, sizeof(buf)), 2);
    CHECK(memcmp(buf, "st", 2) == 0);
    CHECK_EQ(sb_stream_read(r, buf, sizeof(buf)), 0);
    CHECK_EQ(sb_stream_read(r, buf, 0), 0);
    sb_stream_close(r);
    close(sv[0]);
    close(sv[1]);
}

/* A line searched in part (the read timed out), then partly taken by a raw
 * read, then completed: the resumed search still finds the right end. */
static void test_scan_after_raw_read(void)
{
    sb_stream *r;
    sb_msg m;
    char buf[16];
    int sv[2];

    pair(sv);
    r = open_stream(sv[1], "line", 64, 50);
    CHECK_EQ(sb_send_all(sv[0], "hello wor", 9, sb_now_ms() + SOON_MS), 9);
    CHECK_EQ(sb_stream_read_msg(r, &m), -ETIMEDOUT);
    CHECK_EQ(sb_stream_read(r, buf, 6), 6);
    CHECK(memcmp(buf, "hello ", 6) == 0);
    CHECK_EQ(sb_send_all(sv[0], "ld\nnext\n", 8, sb_now_ms() + SOON_MS), 8);
    CHECK_EQ(sb_stream_read_msg(r, &m), 1);
    CHECK(msg_is(&m, "world"));
    CHECK_EQ(sb_stream_read_msg(r, &m), 1);
    CHECK(msg_is(&m, "next"));
    sb_stream_close(r);
    close(sv[0]);
    close(sv[1]);
}

/* ---- large transfers and write timeouts -------------------------------------- */

#define BIG (1u << 20)

struct sink {
    int fd;
    size_t got;
    int ok;
};

static void *sink_main(void *arg)
{
    struct sink *k = arg;
    sb_stream *s;
    uint8_t buf[40000];
    ssize_t n;
    size_t i;

    CHECK_EQ(sb_stream_open(&s, k->fd, NULL, 0, SOON_MS), 0);
    k->ok = 1;
    /* Alternate small and large reads: the buffered and the direct path. */
    while ((n = sb_stream_read(s, buf, (k->got & 1) ? 100 : sizeof(buf))) > 0) {
        for (i = 0; i < (size_t)n; i++)
            if (buf[i] != (uint8_t)((k->got + i) % 251))
                k->ok = 0;
        k->got += (size_t)n;
    }
    CHECK_EQ(n, 0);
    sb_stream_close(s);
    return NULL;
}

static void test_large_writes(void)
{
    uint8_t *data = malloc(BIG);
    struct sink k = {0, 0, 0};
    pthread_t th;
    sb_stream *w;
    size_t i, off = 0, step = 1;
    int sv[2];

    CHECK(data != NULL);
    for (i = 0; i < BIG; i++)
        data[i] = (uint8_t)(i % 251);
    pair(sv);
    k.fd = sv[1];
    CHECK_EQ(pthread_create(&th, NULL, sink_main, &k), 0);
    CHECK_EQ(sb_stream_open(&w, sv[0], NULL, 0, SOON_MS), 0);
    /* Writes from 1 byte to well past the buffer size. */
    while (off < BIG) {
        size_t n = BIG - off < step ? BIG - off : step;
        CHECK_EQ(sb_stream_write(w, data + off, n), n);
        off += n;
        step = step * 3 + 1;
    }
    CHECK_EQ(sb_stream_flush(w), 0);
    CHECK_EQ(sb_shutdown_write(sv[0]), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(k.got, BIG);
    CHECK(k.ok);
    sb_stream_close(w);
    close(sv[0]);
    close(sv[1]);
    free(data);
}

/* A peer that never reads: the write ends with -ETIMEDOUT, and the stream
 * stays failed (an unknown part was sent). A peer that is gone: -EPIPE,
 * and no SIGPIPE. */
static void test_write_errors(void)
{
    uint8_t *data = calloc(1, 8u << 20);
    sb_stream *w;
    int sv[2];

    CHECK(data != NULL);
    pair(sv);
    CHECK_EQ(sb_stream_open(&w, sv[0], NULL, 0, 200), 0);
    CHECK_EQ(sb_stream_write(w, data, 8u << 20), -ETIMEDOUT);
    CHECK_EQ(sb_stream_write(w, "x", 1), -ETIMEDOUT);
    CHECK_EQ(sb_stream_flush(w), -ETIMEDOUT);
    sb_stream_close(w);
    close(sv[0]);
    close(sv[1]);

    if (!sb_test_have_unix()) { /* pair() is a TCP pair: the first send succeeds */
        free(data);
        return;
    }
    CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    pair(sv);
    close(sv[1]);
    CHECK_EQ(sb_stream_open(&w, sv[0], NULL, 0, SOON_MS), 0);
    CHECK_EQ(sb_stream_write(w, "x", 1), 1); /* only buffered */
    CHECK_EQ(sb_stream_flush(w), -EPIPE);
    sb_stream_close(w);
    close(sv[0]);
    free(data);
}

static void *no_calloc(size_t c, size_t n)
{
    return NULL;
}

static void test_open_nomem(void)
{
    sb_stream *s = (sb_stream *)1;

    sb__sys.calloc = no_calloc;
    CHECK_EQ(sb_stream_open(&s, 0, NULL, 0, 0), -ENOMEM);
    sb__sys_reset();
    CHECK(s == NULL);
    sb_stream_close(NULL);
}

int main(void)
{
    RUN(test_request_reply);
    RUN(test_forgotten_flush);
    RUN(test_every_framing);
    RUN(test_raw_and_eof_framing);
    RUN(test_split_delivery);
    RUN(test_pipelined_burst);
    RUN(test_truncated_and_too_big);
    RUN(test_write_msg_refused);
    RUN(test_mixed_reads);
    RUN(test_scan_after_raw_read);
    RUN(test_large_writes);
    RUN(test_write_errors);
    RUN(test_open_nomem);
    return 0;
}
