/* test_frame: every framing, end to end. For each SPEC a set of messages
 * (empty, binary with NULs, maximum size, ...) is encoded into one stream,
 * then decoded in one go, through sb_decoder split at every offset, byte by
 * byte, and cut short at every offset with end of stream. Then the edges:
 * lengths at and past the bound, hostile headers, malformed bytes, bad
 * SPECs, encoder refusals and the decoder's buffering rules. */
#include <errno.h>
#include <stdint.h>

#include "sys.h"
#include "test.h"

#define MAXM 48   /* max_msg for the stream tests */
#define MAXN 16   /* messages per stream */

typedef struct tmsg {
    int type;
    size_t len;
    uint8_t data[MAXM];
} tmsg;

typedef struct tlist {
    tmsg m[MAXN * 2];
    size_t count;
    int end; /* the result that ended decoding: 0 or an error */
} tlist;

static void tlist_add(tlist *l, const sb_msg *m)
{
    CHECK(l->count < MAXN * 2);
    CHECK(m->len <= MAXM);
    l->m[l->count].type = m->type;
    l->m[l->count].len = m->len;
    if (m->len)
        memcpy(l->m[l->count].data, m->data, m->len);
    l->count++;
}

static void tlist_check(const tlist *got, const tmsg *want, size_t count, int end)
{
    size_t i;

    CHECK_EQ(got->count, count);
    CHECK_EQ(got->end, end);
    for (i = 0; i < count; i++) {
        CHECK_EQ(got->m[i].type, want[i].type);
        CHECK_EQ(got->m[i].len, want[i].len);
        CHECK(memcmp(got->m[i].data, want[i].data, want[i].len) == 0);
    }
}

static void drain(sb_decoder *d, tlist *got)
{
    sb_msg m;
    int r;

    while ((r = sb_decoder_next(d, &m)) == 1)
        tlist_add(got, &m);
    got->end = r;
}

/* The stream of msgs, with the offset where each message ends. */
static void encode_all(const sb_frame_spec *spec, const tmsg *msgs, size_t count, sb_buf *out,
                       size_t *ends)
{
    size_t i;

    sb_buf_init(out, 0);
    for (i = 0; i < count; i++) {
        CHECK_EQ(sb_frame_encode(spec, msgs[i].type, msgs[i].data, msgs[i].len, out), 0);
        ends[i] = sb_buf_len(out);
    }
}

static void decode_one_go(const sb_frame_spec *spec, const uint8_t *p, size_t n, int eof,
                          tlist *got)
{
    size_t off = 0;
    ssize_t r;
    sb_msg m;

    memset(got, 0, sizeof(*got));
    while ((r = sb_frame_decode(spec, MAXM, p + off, n - off, eof, &m)) > 0) {
        tlist_add(got, &m);
        off += (size_t)r;
    }
    got->end = (int)r;
}

/* Feed p[0..n) in pieces of the given sizes (the last piece takes what is
 * left), draining after each, then end of stream. */
static void decode_pieces(const sb_frame_spec *spec, const uint8_t *p, size_t n,
                          const size_t *sizes, size_t nsizes, tlist *got)
{
    sb_decoder d;
    size_t off = 0, i;

    memset(got, 0, sizeof(*got));
    sb_decoder_init(&d, spec, MAXM);
    for (i = 0; off < n; i++) {
        size_t k = i < nsizes && sizes[i] < n - off ? sizes[i] : n - off;

        CHECK_EQ(sb_decoder_feed(&d, p + off, k), 0);
        off += k;
        drain(&d, got);
        CHECK_EQ(got->end, 0);
    }
    sb_decoder_eof(&d);
    drain(&d, got);
    sb_decoder_free(&d);
}

/* Decoding the stream cut at `cut` with end of stream gives the messages
 * that end at or before it, then a clean end or SB_ETRUNCATED. */
static void check_cut(const sb_frame_spec *spec, const sb_buf *s, const tmsg *msgs,
                      const size_t *ends, size_t count, size_t cut)
{
    size_t whole = 0, sizes[1] = {cut};
    int end;
    tlist got;

    while (whole < count && ends[whole] <= cut)
        whole++;
    end = (whole > 0 ? ends[whole - 1] : 0) == cut ? 0 : SB_ETRUNCATED;
    decode_one_go(spec, sb_buf_data(s), cut, 1, &got);
    tlist_check(&got, msgs, whole, end);
    decode_pieces(spec, sb_buf_data(s), cut, sizes, 1, &got);
    tlist_check(&got, msgs, whole, end);
    /* Without end of stream the unfinished message is just incomplete. */
    decode_one_go(spec, sb_buf_data(s), cut, 0, &got);
    tlist_check(&got, msgs, whole, 0);
}

static void check_stream(const char *spec_str, const tmsg *msgs, size_t count)
{
    sb_frame_spec spec;
    sb_buf s;
    size_t ends[MAXN], k, n, ones[MAXN * (MAXM + SB_FRAME_HDR_MAX + SB_DELIM_MAX)];
    tlist got;

    fprintf(stderr, "    %s\n", spec_str);
    CHECK(count <= MAXN);
    CHECK_EQ(sb_frame_parse(spec_str, &spec), 0);
    encode_all(&spec, msgs, count, &s, ends);
    n = sb_buf_len(&s);
    CHECK(n <= sizeof(ones) / sizeof(ones[0]));
    decode_one_go(&spec, sb_buf_data(&s), n, 1, &got);
    tlist_check(&got, msgs, count, 0);
    for (k = 0; k <= n; k++) {
        size_t two[2] = {k, n - k};

        decode_pieces(&spec, sb_buf_data(&s), n, two, 2, &got);
        tlist_check(&got, msgs, count, 0);
        check_cut(&spec, &s, msgs, ends, count, k);
    }
    for (k = 0; k < n; k++)
        ones[k] = 1;
    decode_pieces(&spec, sb_buf_data(&s), n, ones, n, &got);
    tlist_check(&got, msgs, count, 0);
    sb_buf_free(&s);
}

static tmsg mk(int type, const void *p, size_t len)
{
    tmsg m;

    CHECK(len <= MAXM);
    m.type = type;
    m.len = len;
    if (len)
        memcpy(m.data, p, len);
    return m;
}

/* A maximum-size payload: letters, so that no delimiter is in it. */
static tmsg mk_max(int type)
{
    tmsg m;
    size_t i;

    m.type = type;
    m.len = MAXM;
    for (i = 0; i < MAXM; i++)
        m.data[i] = (uint8_t)('a' + i % 26);
    return m;
}

/* The usual set: empty, text, binary with NULs, maximum size, ... */
static size_t common_set(tmsg *m, int binary_ok)
{
    size_t n = 0;

    m[n++] = mk(-1, "", 0);
    m[n++] = mk(-1, "hello", 5);
    if (binary_ok)
        m[n++] = mk(-1, "\0\x01\xff\0", 4);
    m[n++] = mk_max(-1);
    m[n++] = mk(-1, "", 0);
    m[n++] = mk(-1, "a\rb\tc", 5);
    m[n++] = mk(-1, "x", 1);
    return n;
}

static void test_streams_counted(void)
{
    static const char *specs[] = {"len16", "len32", "len64", "varint", "ascii:2", "ascii:5",
                                  "ascii:20"};
    tmsg m[MAXN];
    size_t i, n = common_set(m, 1);
    uint8_t all[256];

    for (i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    m[n++] = mk(-1, all, MAXM);           /* every byte value... */
    m[n++] = mk(-1, all + 200, MAXM - 1); /* ...including 0x80+ */
    for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
        check_stream(specs[i], m, n);
}

static void test_streams_delimited(void)
{
    tmsg m[MAXN];
    size_t n = common_set(m, 1);

    check_stream("line", m, n);
    check_stream("delim:\\r\\n\\r\\n", m, n);
    check_stream("delim:|", m, n);
    check_stream("delim:\\x00\\xfe", m, n);
    m[n++] = mk(-1, "\r\n\r", 3); /* legal before "\r\n\r\n" but not "\n" */
    check_stream("delim:\\r\\n\\r\\n", m, n);
    n = common_set(m, 0);
    check_stream("delim:\\0", m, n);
}

static void test_streams_fixed_typed(void)
{
    tmsg m[MAXN];
    size_t n = 0;

    m[n++] = mk(-1, "\0\x01\xff\0", 4);
    m[n++] = mk(-1, "abcd", 4);
    m[n++] = mk(-1, "\n\n\r\0", 4);
    check_stream("fixed:4", m, n);
    n = 0;
    m[n++] = mk(-1, "z", 1);
    check_stream("fixed:1", m, n);
    m[0] = mk_max(-1);
    m[1] = mk_max(-1);
    check_stream("fixed:48", m, 2);

    n = 0;
    m[n++] = mk('A', "", 0);
    m[n++] = mk('B', "hello", 5);
    m[n++] = mk(0x00, "\0\0\0\0", 4);
    m[n++] = mk_max(0xff);
    m[n++] = mk(',', "!", 1);
    m[n++] = mk('A', "", 0);
    m[n++] = mk('=', "ab", 2);
    check_stream("typed:A=0,B=5,0x00=4,0xff=48,,=1,==2", m, n);
}

/* raw: message boundaries are the reads, so only the bytes are checked. */
static void test_raw(void)
{
    sb_frame_spec spec;
    uint8_t big[100];
    sb_msg m;
    sb_buf out;
    size_t i;

    for (i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)i;
    CHECK_EQ(sb_frame_parse("raw", &spec), 0);
    CHECK_EQ(sb_frame_decode(&spec, 0, big, 0, 0, &m), 0);
    CHECK_EQ(sb_frame_decode(&spec, 0, big, 0, 1, &m), 0);
    CHECK_EQ(sb_frame_decode(&spec, 0, big, 7, 0, &m), 7);
    CHECK(m.data == big && m.len == 7 && m.type == -1);
    CHECK_EQ(sb_frame_decode(&spec, 0, big, 7, 1, &m), 7);
    /* Longer than max: one message of max bytes, the rest stays. */
    CHECK_EQ(sb_frame_decode(&spec, 30, big, 100, 0, &m), 30);
    CHECK_EQ(m.len, 30);
    sb_buf_init(&out, 0);
    CHECK_EQ(sb_frame_encode(&spec, -1, big, 100, &out), 0);
    CHECK_EQ(sb_frame_encode(&spec, -1, big, 0, &out), 0);
    CHECK_EQ(sb_buf_len(&out), 100);
    CHECK(memcmp(sb_buf_data(&out), big, 100) == 0);
    sb_buf_free(&out);
}

/* raw through the decoder: every split gives back the same bytes. */
static void test_raw_decoder_splits(void)
{
    sb_frame_spec spec;
    uint8_t in[100], got[100];
    size_t k;

    for (k = 0; k < sizeof(in); k++)
        in[k] = (uint8_t)(k * 7);
    CHECK_EQ(sb_frame_parse("raw", &spec), 0);
    for (k = 0; k <= sizeof(in); k++) {
        sb_decoder d;
        sb_msg m;
        size_t have = 0;
        int r;

        sb_decoder_init(&d, &spec, 16);
        CHECK_EQ(sb_decoder_feed(&d, in, k), 0);
        while ((r = sb_decoder_next(&d, &m)) == 1) {
            CHECK(m.len >= 1 && m.len <= 16);
            memcpy(got + have, m.data, m.len);
            have += m.len;
        }
        CHECK_EQ(r, 0);
        CHECK_EQ(sb_decoder_feed(&d, in + k, sizeof(in) - k), 0);
        sb_decoder_eof(&d);
        while ((r = sb_decoder_next(&d, &m)) == 1) {
            memcpy(got + have, m.data, m.len);
            have += m.len;
        }
        CHECK_EQ(r, 0);
        CHECK_EQ(have, sizeof(in));
        CHECK(memcmp(got, in, sizeof(in)) == 0);
        sb_decoder_free(&d);
    }
}

/* eof: the whole input is one message once the peer shuts down. */
static void test_eof(void)
{
    sb_frame_spec spec;
    uint8_t in[MAXM + 1];
    sb_msg m;
    size_t k;

    memset(in, 'e', sizeof(in));
    in[3] = 0;
    CHECK_EQ(sb_frame_parse("eof", &spec), 0);
    for (k = 1; k <= MAXM; k++) {
        CHECK_EQ(sb_frame_decode(&spec, MAXM, in, k, 0, &m), 0);
        CHECK_EQ(sb_frame_decode(&spec, MAXM, in, k, 1, &m), (ssize_t)k);
        CHECK(m.data == in && m.len == k);
    }
    CHECK_EQ(sb_frame_decode(&spec, MAXM, in, 0, 1, &m), 0);
    /* Past max it fails at once, before the end of stream. */
    CHECK_EQ(sb_frame_decode(&spec, MAXM, in, MAXM + 1, 0, &m), SB_ETOOBIG);
    CHECK_EQ(sb_frame_decode(&spec, MAXM, in, MAXM + 1, 1, &m), SB_ETOOBIG);
    for (k = 0; k <= MAXM; k++) {
        size_t sizes[2] = {k, MAXM - k};
        tlist got;
        tmsg want = mk(-1, in, MAXM);

        decode_pieces(&spec, in, MAXM, sizes, 2, &got);
        tlist_check(&got, &want, 1, 0);
    }
}

static ssize_t dec(const char *spec_str, size_t max, const void *p, size_t n, int eof)
{
    sb_frame_spec spec;
    sb_msg m;

    CHECK_EQ(sb_frame_parse(spec_str, &spec), 0);
    return sb_frame_decode(&spec, max, p, n, eof, &m);
}

/* A payload of len bytes after the header the encoder makes, decoded with
 * the given bound: the payload length, or the error. */
static ssize_t dec_len(const char *spec_str, size_t max, size_t len)
{
    static uint8_t buf[1 << 17];
    sb_frame_spec spec;
    sb_msg m;
    ssize_t r;
    int hl;

    CHECK_EQ(sb_frame_parse(spec_str, &spec), 0);
    hl = sb_frame_header(&spec, -1, len, buf);
    CHECK(hl > 0 && hl + len <= sizeof(buf));
    memset(buf + hl, 'p', len);
    r = sb_frame_decode(&spec, max, buf, (size_t)hl + len, 0, &m);
    if (r < 0)
        return r;
    CHECK_EQ(r, hl + (ssize_t)len);
    CHECK(m.data == buf + hl);
    CHECK_EQ(m.len, len);
    return (ssize_t)len;
}

static void test_counted_bounds(void)
{
    static const char *specs[] = {"len16", "len32", "len64", "varint", "ascii:5", "ascii:20"};
    size_t i;

    for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        size_t max = 1000;

        CHECK_EQ(dec_len(specs[i], max, 0), 0);
        CHECK_EQ(dec_len(specs[i], max, max), max);
        CHECK_EQ(dec_len(specs[i], max, max + 1), SB_ETOOBIG);
        CHECK_EQ(dec_len(specs[i], 0, 65535), 65535);
    }
    /* Hostile lengths fail as soon as the header is in. */
    CHECK_EQ(dec("len32", 1 << 20, "\xff\xff\xff", 3, 0), 0);
    CHECK_EQ(dec("len32", 1 << 20, "\xff\xff\xff\xff", 4, 0), SB_ETOOBIG);
    CHECK_EQ(dec("len32", 0xfffffffe, "\xff\xff\xff\xff", 4, 0), SB_ETOOBIG);
    CHECK_EQ(dec("len32", 0, "\xff\xff\xff\xff", 4, 0), 0);
    CHECK_EQ(dec("len16", 1000, "\xff\xff", 2, 0), SB_ETOOBIG);
    CHECK_EQ(dec("len16", 0, "\xff\xff", 2, 0), 0);
    CHECK_EQ(dec("len16", 0xffff, "\xff\xff", 2, 0), 0);
    CHECK_EQ(dec("len16", 1000, "\xff", 1, 1), SB_ETRUNCATED);
    CHECK_EQ(dec("len64", 1 << 20, "\x7f\xff\xff\xff\xff\xff\xff\xff", 8, 0), SB_ETOOBIG);
    CHECK_EQ(dec("len64", 0, "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 0), SB_ETOOBIG);
    CHECK_EQ(dec("len64", 0, "\x80\0\0\0\0\0\0\0", 8, 0), SB_ETOOBIG);
    CHECK_EQ(dec("len64", 1 << 20, "\0\0\0\0\0\x10\0\0", 8, 0), 0);
    CHECK_EQ(dec("len64", 1 << 20, "\0\0\0\0\0\x10\0\x01", 8, 0), SB_ETOOBIG);
}

static void test_ascii_edges(void)
{
    CHECK_EQ(dec("ascii:20", 1 << 20, "99999999999999999999", 20, 0), SB_EOVERFLOW);
    CHECK_EQ(dec("ascii:20", 0, "18446744073709551616", 20, 0), SB_EOVERFLOW);
    CHECK_EQ(dec("ascii:20", 0, "18446744073709551615", 20, 0), SB_ETOOBIG);
    CHECK_EQ(dec("ascii:20", 1 << 20, "00000000000001048577", 20, 0), SB_ETOOBIG);
    CHECK_EQ(dec("ascii:20", 1 << 20, "00000000000001048576", 20, 0), 0);
    CHECK_EQ(dec("ascii:20", 1 << 20, "0000000000000000000", 19, 1), SB_ETRUNCATED);
    /* A non-digit is reported as soon as it arrives. */
    CHECK_EQ(dec("ascii:5", 0, "12a", 3, 0), SB_EMALFORMED);
    CHECK_EQ(dec("ascii:5", 0, "12", 2, 0), 0);
    CHECK_EQ(dec("ascii:5", 0, " 0001", 1, 0), SB_EMALFORMED);
    CHECK_EQ(dec("ascii:5", 0, "-0001", 5, 0), SB_EMALFORMED);
    CHECK_EQ(dec("ascii:5", 0, "0001:", 5, 0), SB_EMALFORMED);
    CHECK_EQ(dec("ascii:5", 0, "0001/", 5, 1), SB_EMALFORMED);
    CHECK_EQ(dec("ascii:1", 9, "9", 1, 0), 0);
    CHECK_EQ(dec("ascii:1", 8, "9", 1, 0), SB_ETOOBIG);
    CHECK_EQ(dec("ascii:3", 0, "000", 3, 0), 3);
}

static void test_varint_edges(void)
{
    static const uint8_t max10[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t five10[] = {0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
                                     'h', 'e', 'l', 'l', 'o'};
    static const uint8_t over11[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x81, 0x00};
    uint8_t ff20[20];
    uint64_t v;

    memset(ff20, 0xff, sizeof(ff20));
    /* Ten bytes holding UINT64_MAX parse; as a length it is too big. */
    CHECK_EQ(sb_varint_get(max10, 10, &v), 10);
    CHECK_EQ(dec("varint", 0, max10, 10, 0), SB_ETOOBIG);
    CHECK_EQ(dec("varint", 1 << 20, max10, 9, 0), 0);
    CHECK_EQ(dec("varint", 1 << 20, max10, 9, 1), SB_ETRUNCATED);
    CHECK_EQ(dec("varint", 1 << 20, five10, 14, 0), 0);
    CHECK_EQ(dec("varint", 1 << 20, five10, 15, 0), 15);
    CHECK_EQ(dec("varint", 1 << 20, over11, 11, 0), SB_EOVERFLOW);
    CHECK_EQ(dec("varint", 1 << 20, over11, 10, 0), SB_EOVERFLOW);
    CHECK_EQ(dec("varint", 1 << 20, ff20, 20, 0), SB_EOVERFLOW);
    CHECK_EQ(dec("varint", 1 << 20, ff20, 10, 0), SB_EOVERFLOW);
    CHECK_EQ(dec("varint", 1 << 20, ff20, 10, 1), SB_EOVERFLOW);
    CHECK_EQ(dec("varint", 1 << 20, "\xac\x02", 2, 0), 0);
    CHECK_EQ(dec("varint", 299, "\xac\x02", 2, 0), SB_ETOOBIG);
}

static void test_delimited_bounds(void)
{
    uint8_t b[64];
    sb_frame_spec spec;
    sb_msg m;

    memset(b, 'a', sizeof(b));
    CHECK_EQ(sb_frame_parse("line", &spec), 0);
    b[10] = '\n'; /* max bytes then "\n" */
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 11, 0, &m), 11);
    CHECK_EQ(m.len, 10);
    b[9] = '\r'; /* max - 1 bytes then "\r\n" */
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 11, 0, &m), 11);
    CHECK_EQ(m.len, 9);
    b[9] = 'a';
    b[10] = '\r';
    b[11] = '\n'; /* max bytes then "\r\n" */
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 12, 0, &m), 12);
    CHECK_EQ(m.len, 10);
    b[10] = 'a'; /* max + 1 bytes then "\n" */
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 12, 0, &m), SB_ETOOBIG);
    b[11] = 'a'; /* no newline at all: too big once it cannot fit */
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 11, 0, &m), 0);
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 12, 0, &m), SB_ETOOBIG);
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 64, 0, &m), SB_ETOOBIG);
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 64, 1, &m), SB_ETOOBIG);
    CHECK_EQ(sb_frame_decode(&spec, 0, b, 64, 0, &m), 0);
    CHECK_EQ(sb_frame_decode(&spec, 0, b, 64, 1, &m), SB_ETRUNCATED);
    CHECK_EQ(sb_frame_decode(&spec, 0, (const uint8_t *)"\r\n", 2, 0, &m), 2);
    CHECK_EQ(m.len, 0);

    CHECK_EQ(sb_frame_parse("delim:\\r\\n\\r\\n", &spec), 0);
    memcpy(b + 10, "\r\n\r\n", 4);
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 14, 0, &m), 14);
    CHECK_EQ(m.len, 10);
    CHECK_EQ(sb_frame_decode(&spec, 10, b, 13, 0, &m), 0);
    CHECK_EQ(sb_frame_decode(&spec, 9, b, 13, 0, &m), SB_ETOOBIG);
    CHECK_EQ(sb_frame_decode(&spec, 9, b, 14, 0, &m), SB_ETOOBIG);
    CHECK_EQ(sb_frame_decode(&spec, 9, b, 12, 0, &m), 0);
}

static void test_fixed_typed_edges(void)
{
    CHECK_EQ(dec("fixed:10", 10, "0123456789", 10, 0), 10);
    CHECK_EQ(dec("fixed:10", 9, "0123456789", 10, 0), SB_ETOOBIG);
    CHECK_EQ(dec("fixed:10", 9, "0", 1, 0), SB_ETOOBIG);
    CHECK_EQ(dec("fixed:10", 0, "012345678", 9, 1), SB_ETRUNCATED);
    CHECK_EQ(dec("typed:A=3", 0, "B", 1, 0), SB_EBADTYPE);
    CHECK_EQ(dec("typed:A=3", 0, "Axyz", 4, 0), 4);
    CHECK_EQ(dec("typed:A=3", 0, "Axy", 3, 0), 0);
    CHECK_EQ(dec("typed:A=3", 0, "Axy", 3, 1), SB_ETRUNCATED);
    CHECK_EQ(dec("typed:A=3", 2, "A", 1, 0), SB_ETOOBIG);
    CHECK_EQ(dec("typed:A=4294967294", 1 << 20, "A", 1, 0), SB_ETOOBIG);
    CHECK_EQ(dec("typed:0x00=1", 0, "\0\0", 2, 0), 2);
}

static void test_parse(void)
{
    static const char *bad[] = {
        "", "bogus", "len32x", "len", "Line", "raw ", " raw", "fixed", "fixed:", "fixed:0",
        "fixed:-1", "fixed:1x", "fixed:99999999999999999999999", "ascii:", "ascii:0",
        "ascii:21", "ascii:5 ", "delim:", "delim:\\", "delim:\\q", "delim:\\xZZ", "delim:\\x1",
        "delim:12345678901234567", "typed:", "typed:A", "typed:A=", "typed:A=x",
        "typed:A=1,", "typed:A=1,A=2", "typed:A=1,0x41=2", "typed:AB=1", "typed:0x4=1",
        "typed:0xZZ=1", "typed:A=-1", "typed:A=4294967295", "typed:,", "eof:", "varint:1",
        "delim", "typed", "custom",
    };
    sb_frame_spec s;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sb_frame_parse(bad[i], &s) != SB_EBADSPEC) {
            fprintf(stderr, "accepted bad spec \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
    CHECK_EQ(sb_frame_parse(NULL, &s), SB_EBADSPEC);

    CHECK_EQ(sb_frame_parse("delim:\\r\\n\\t\\\\\\0\\x7F\\xa0z", &s), 0);
    CHECK_EQ(s.kind, SB_FRAME_DELIM);
    CHECK_EQ(s.delim_len, 8);
    CHECK(memcmp(s.delim, "\r\n\t\\\0\x7f\xa0z", 8) == 0);
    CHECK_EQ(sb_frame_parse("delim:1234567890123456", &s), 0);
    CHECK_EQ(s.delim_len, 16);
    CHECK_EQ(sb_frame_parse("line", &s), 0);
    CHECK(s.kind == SB_FRAME_LINE && s.delim_len == 1 && s.delim[0] == '\n');
    CHECK_EQ(sb_frame_parse("fixed:512", &s), 0);
    CHECK(s.kind == SB_FRAME_FIXED && s.n == 512);
    CHECK_EQ(sb_frame_parse("ascii:5", &s), 0);
    CHECK(s.kind == SB_FRAME_ASCII && s.n == 5);
    CHECK_EQ(sb_frame_parse("ascii:20", &s), 0);
    CHECK_EQ(sb_frame_parse("typed:A=0,0x0a=7,0XFF=4294967294", &s), 0);
    CHECK_EQ(s.kind, SB_FRAME_TYPED);
    CHECK_EQ(s.typed['A'], 0);
    CHECK_EQ(s.typed[0x0a], 7);
    CHECK_EQ(s.typed[0xff], 4294967294u);
    CHECK(s.typed['B'] == SB_TYPED_NONE);
    CHECK_EQ(sb_frame_parse("typed:0=3", &s), 0); /* the character '0' */
    CHECK_EQ(s.typed['0'], 3);
    CHECK_EQ(sb_frame_parse("raw", &s), 0);
    CHECK_EQ(s.kind, SB_FRAME_RAW);
    CHECK_EQ(sb_frame_parse("len16", &s), 0);
    CHECK_EQ(s.kind, SB_FRAME_LEN16);
    CHECK_EQ(sb_frame_parse("len32", &s), 0);
    CHECK_EQ(s.kind, SB_FRAME_LEN32);
    CHECK_EQ(sb_frame_parse("len64", &s), 0);
    CHECK_EQ(s.kind, SB_FRAME_LEN64);
    CHECK_EQ(sb_frame_parse("varint", &s), 0);
    CHECK_EQ(s.kind, SB_FRAME_VARINT);
    CHECK_EQ(sb_frame_parse("eof", &s), 0);
    CHECK_EQ(s.kind, SB_FRAME_EOF);
    /* A failed parse leaves the previous spec alone. */
    CHECK_EQ(sb_frame_parse("fixed:0", &s), SB_EBADSPEC);
    CHECK_EQ(s.kind, SB_FRAME_EOF);
}

static int enc(const char *spec_str, int type, const void *p, size_t len)
{
    sb_frame_spec spec;
    sb_buf out;
    int rc;

    CHECK_EQ(sb_frame_parse(spec_str, &spec), 0);
    sb_buf_init(&out, 0);
    CHECK_EQ(sb_buf_append(&out, "keep", 4), 0);
    rc = sb_frame_encode(&spec, type, p, len, &out);
    if (rc) { /* out unchanged on error */
        CHECK_EQ(sb_buf_len(&out), 4);
        CHECK(memcmp(sb_buf_data(&out), "keep", 4) == 0);
    }
    sb_buf_free(&out);
    return rc;
}

static void test_encoder_refusals(void)
{
    static uint8_t big[70000];
    sb_frame_spec spec;
    uint8_t hdr[SB_FRAME_HDR_MAX];

    CHECK_EQ(enc("typed:A=3", 'B', "xyz", 3), SB_EBADTYPE);
    CHECK_EQ(enc("typed:A=3", -1, "xyz", 3), SB_EBADTYPE);
    CHECK_EQ(enc("typed:A=3", 256 + 'A', "xyz", 3), SB_EBADTYPE);
    CHECK_EQ(enc("typed:A=3", 'A', "xy", 2), SB_ETOOBIG);
    CHECK_EQ(enc("typed:A=3", 'A', "xyz", 3), 0);
    CHECK_EQ(enc("fixed:3", -1, "xy", 2), SB_ETOOBIG);
    CHECK_EQ(enc("fixed:3", -1, "xyzw", 4), SB_ETOOBIG);
    CHECK_EQ(enc("len16", -1, big, 65535), 0);
    CHECK_EQ(enc("len16", -1, big, 65536), SB_ETOOBIG);
    CHECK_EQ(enc("ascii:3", -1, big, 999), 0);
    CHECK_EQ(enc("ascii:3", -1, big, 1000), SB_ETOOBIG);
    CHECK_EQ(enc("line", -1, "a\nb", 3), SB_EMALFORMED);
    CHECK_EQ(enc("line", -1, "ab\r", 3), 0);
    CHECK_EQ(enc("line", -1, "a\r\n", 3), SB_EMALFORMED);
    CHECK_EQ(enc("line", -1, "a\rb", 3), 0);
    CHECK_EQ(enc("delim:\\r\\n\\r\\n", -1, "a\r\n\r\nb", 6), SB_EMALFORMED);
    CHECK_EQ(enc("delim:\\r\\n\\r\\n", -1, "ab\r\n", 4), SB_EMALFORMED);
    CHECK_EQ(enc("delim:\\r\\n\\r\\n", -1, "ab\r", 3), 0);
    CHECK_EQ(enc("delim:\\r\\n\\r\\n", -1, "\r\n\r", 3), 0);
    CHECK_EQ(enc("delim:\\r\\n\\r\\n", -1, "\n", 1), 0);
    CHECK_EQ(enc("delim:abab", -1, "xab", 3), SB_EMALFORMED);
    CHECK_EQ(enc("delim:abab", -1, "bab", 3), SB_EMALFORMED);
    CHECK_EQ(enc("delim:abab", -1, "xa", 2), 0);
    CHECK_EQ(enc("delim:aab", -1, "a", 1), 0);
    CHECK_EQ(enc("eof", -1, "", 0), 0);
    CHECK_EQ(sb_frame_parse("len32", &spec), 0);
    CHECK_EQ(sb_frame_header(&spec, -1, 0x01020304, hdr), 4);
    CHECK(memcmp(hdr, "\x01\x02\x03\x04", 4) == 0);
    if (sizeof(size_t) > 4)
        CHECK_EQ(sb_frame_header(&spec, -1, (size_t)UINT32_MAX + 1, hdr), SB_ETOOBIG);
    CHECK_EQ(sb_frame_trailer(&spec, "ab", 2, hdr), 0);
    CHECK_EQ(sb_frame_parse("varint", &spec), 0);
    CHECK_EQ(sb_frame_header(&spec, -1, 300, hdr), 2);
    CHECK(memcmp(hdr, "\xac\x02", 2) == 0);
    CHECK_EQ(sb_frame_header(&spec, -1, SIZE_MAX, hdr), sizeof(size_t) > 4 ? 10 : 5);
    CHECK_EQ(sb_frame_parse("delim:\\r\\n", &spec), 0);
    CHECK_EQ(sb_frame_header(&spec, -1, 5, hdr), 0);
    CHECK_EQ(sb_frame_trailer(&spec, "ab\r", 3, hdr), 2);
    CHECK(memcmp(hdr, "\r\n", 2) == 0);
    /* line: '\n' after a payload, "\r\n" after one that ends in '\r'. */
    CHECK_EQ(sb_frame_parse("line", &spec), 0);
    CHECK_EQ(sb_frame_trailer(&spec, "ab", 2, hdr), 1);
    CHECK(memcmp(hdr, "\n", 1) == 0);
    CHECK_EQ(sb_frame_trailer(&spec, "", 0, hdr), 1);
    CHECK_EQ(sb_frame_trailer(&spec, "ab\r", 3, hdr), 2);
    CHECK(memcmp(hdr, "\r\n", 2) == 0);
    CHECK_EQ(sb_frame_trailer(&spec, "\r", 1, hdr), 2);
}

/* The decoder bound is on the unfinished message: a single read carrying
 * many small messages is far larger than max_msg and still fine. */
static void test_decoder_large_feed(void)
{
    sb_frame_spec spec;
    sb_decoder d;
    sb_buf s;
    sb_msg m;
    size_t i, count = 0;
    int r;

    CHECK_EQ(sb_frame_parse("len16", &spec), 0);
    sb_buf_init(&s, 0);
    for (i = 0; i < 1000; i++)
        CHECK_EQ(sb_frame_encode(&spec, -1, "0123456789", 10, &s), 0);
    sb_decoder_init(&d, &spec, 16);
    CHECK_EQ(sb_decoder_feed(&d, sb_buf_data(&s), 5), 0);
    CHECK_EQ(sb_decoder_feed(&d, sb_buf_data(&s) + 5, sb_buf_len(&s) - 5), 0);
    while ((r = sb_decoder_next(&d, &m)) == 1) {
        CHECK(m.len == 10 && memcmp(m.data, "0123456789", 10) == 0);
        count++;
    }
    CHECK_EQ(r, 0);
    CHECK_EQ(count, 1000);
    sb_decoder_free(&d);
    sb_buf_free(&s);
}

/* A message that outgrows the bound fails; the error is sticky; messages
 * before it still come out first. */
static void test_decoder_too_big(void)
{
    sb_frame_spec spec;
    sb_decoder d;
    sb_msg m;
    uint8_t junk[4096];
    size_t i;
    int rc = 0;

    memset(junk, 'j', sizeof(junk));
    CHECK_EQ(sb_frame_parse("line", &spec), 0);
    sb_decoder_init(&d, &spec, 100);
    CHECK_EQ(sb_decoder_feed(&d, "ok\n", 3), 0);
    for (i = 0; i < 64 && rc == 0; i++)
        rc = sb_decoder_feed(&d, junk, 64);
    CHECK_EQ(rc, 0); /* the slow path keeps only enough to report it */
    CHECK(d.in.cap < 1024);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    CHECK(m.len == 2 && memcmp(m.data, "ok", 2) == 0);
    CHECK_EQ(sb_decoder_next(&d, &m), SB_ETOOBIG);
    CHECK_EQ(sb_decoder_next(&d, &m), SB_ETOOBIG);
    CHECK_EQ(sb_decoder_feed(&d, "x\n", 2), SB_ETOOBIG);
    sb_decoder_free(&d);

    /* One huge feed after a good message. */
    sb_decoder_init(&d, &spec, 100);
    CHECK_EQ(sb_decoder_feed(&d, "ok\n", 3), 0);
    CHECK_EQ(sb_decoder_feed(&d, junk, sizeof(junk)), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    CHECK_EQ(sb_decoder_next(&d, &m), SB_ETOOBIG);
    sb_decoder_free(&d);

    CHECK_EQ(sb_frame_parse("len32", &spec), 0);
    sb_decoder_init(&d, &spec, 1 << 20);
    CHECK_EQ(sb_decoder_feed(&d, "\xff\xff\xff\xff", 4), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), SB_ETOOBIG);
    sb_decoder_free(&d);
}

/* The returned message stays valid until the next call and is consumed
 * then, not before. */
static void test_decoder_lifetime(void)
{
    sb_frame_spec spec;
    sb_decoder d;
    sb_msg m;

    CHECK_EQ(sb_frame_parse("line", &spec), 0);
    sb_decoder_init(&d, &spec, 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 0);
    sb_decoder_eof(&d);
    CHECK_EQ(sb_decoder_next(&d, &m), 0); /* clean end of an empty stream */
    sb_decoder_free(&d);

    sb_decoder_init(&d, &spec, 0);
    CHECK_EQ(sb_decoder_feed(&d, "one\ntwo\nthr", 11), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    CHECK(m.len == 3 && memcmp(m.data, "one", 3) == 0);
    CHECK_EQ(sb_buf_len(&d.in), 11);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    CHECK(m.len == 3 && memcmp(m.data, "two", 3) == 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 0);
    CHECK_EQ(sb_decoder_feed(&d, "ee\r\n", 4), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    CHECK(m.len == 5 && memcmp(m.data, "three", 5) == 0);
    sb_decoder_eof(&d);
    CHECK_EQ(sb_decoder_next(&d, &m), 0);
    sb_decoder_free(&d);
}

static void *failing_realloc(void *p, size_t n)
{
    (void)p;
    (void)n;
    return NULL;
}

static void test_decoder_enomem(void)
{
    sb_frame_spec spec;
    sb_decoder d;
    sb_msg m;

    CHECK_EQ(sb_frame_parse("line", &spec), 0);
    sb_decoder_init(&d, &spec, 0);
    sb__sys.realloc = failing_realloc;
    CHECK_EQ(sb_decoder_feed(&d, "hi\n", 3), -ENOMEM);
    sb__sys_reset();
    /* Not sticky: the caller still has the bytes and may offer them again. */
    CHECK_EQ(sb_decoder_feed(&d, "hi\n", 3), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    CHECK(m.len == 2 && memcmp(m.data, "hi", 2) == 0);
    sb_decoder_free(&d);
}

/* A custom cutter: messages are "<n>" single digits giving the length of
 * what follows. */
static ssize_t digit_cut(void *ud, void *state, const uint8_t *p, size_t n, int eof, sb_msg *msg)
{
    size_t len;

    (*(int *)ud)++;
    if (n == 0)
        return 0;
    if (p[0] < '0' || p[0] > '9')
        return SB_EMALFORMED;
    len = (size_t)(p[0] - '0');
    if (n < 1 + len)
        return eof ? SB_ETRUNCATED : 0;
    msg->data = p + 1;
    msg->len = len;
    msg->type = -1;
    return (ssize_t)(1 + len);
}

static void test_custom(void)
{
    sb_frame_spec spec;
    sb_decoder d;
    sb_msg m;
    int calls = 0;

    memset(&spec, 0, sizeof(spec));
    spec.kind = SB_FRAME_CUSTOM;
    spec.cut = digit_cut;
    spec.cut_ud = &calls;
    CHECK_EQ(sb_frame_decode(&spec, 0, (const uint8_t *)"3abcd", 5, 0, &m), 4);
    CHECK(m.len == 3 && memcmp(m.data, "abc", 3) == 0);
    sb_decoder_init(&d, &spec, 0);
    CHECK_EQ(sb_decoder_feed(&d, "2xy0", 4), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    CHECK_EQ(m.len, 0);
    CHECK_EQ(sb_decoder_feed(&d, "!", 1), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), SB_EMALFORMED);
    sb_decoder_free(&d);
    CHECK(calls > 0);
    spec.cut = NULL;
    CHECK_EQ(sb_frame_decode(&spec, 0, (const uint8_t *)"3abc", 4, 0, &m), SB_EBADSPEC);
}

/* A cutter with per-stream state: "<n>" digits as above, but it counts in
 * its state the calls made for the current message and hands the state to
 * the message's reader as msg->info. */
typedef struct counting {
    int calls;      /* calls since the last message */
    int messages;
} counting;

static ssize_t counting_cut(void *ud, void *state, const uint8_t *p, size_t n, int eof, sb_msg *msg)
{
    counting *c = state;
    ssize_t r = digit_cut(ud, NULL, p, n, eof, msg);

    if (c == NULL)
        return r;
    c->calls++;
    if (r > 0) {
        c->messages++;
        msg->info = c;
    }
    return r;
}

static void test_custom_state(void)
{
    sb_frame_spec spec;
    sb_decoder d, d2;
    sb_msg m;
    int calls = 0;
    const counting *c;

    memset(&spec, 0, sizeof(spec));
    spec.kind = SB_FRAME_CUSTOM;
    spec.cut = counting_cut;
    spec.cut_ud = &calls;
    spec.cut_state_size = sizeof(counting);
    /* Stateless: the cutter gets NULL and still cuts. */
    CHECK_EQ(sb_frame_decode(&spec, 0, (const uint8_t *)"3abcd", 5, 0, &m), 4);
    CHECK(m.info == NULL);
    /* Each decoder has its own block, zero-filled at first, kept between
     * calls, reached by the reader through msg->info. */
    sb_decoder_init(&d, &spec, 0);
    sb_decoder_init(&d2, &spec, 0);
    CHECK_EQ(sb_decoder_feed(&d, "3a", 2), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 0);
    CHECK_EQ(sb_decoder_feed(&d, "b", 1), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 0);
    CHECK_EQ(sb_decoder_feed(&d, "c", 1), 0);
    CHECK_EQ(sb_decoder_next(&d, &m), 1);
    c = m.info;
    CHECK(c != NULL && c->calls == 3 && c->messages == 1);
    CHECK_EQ(sb_decoder_feed(&d2, "0", 1), 0);
    CHECK_EQ(sb_decoder_next(&d2, &m), 1);
    c = m.info;
    CHECK(c != NULL && c->calls == 1 && c->messages == 1);
    sb_decoder_free(&d);
    sb_decoder_free(&d2);

    /* With cut_info_size, a stream that keeps state lends the cutter a
     * block of that size for each message (sb_frame_state_init makes it);
     * the stateless decoder lends none. */
    spec.cut_info_size = 16;
    CHECK_EQ(sb_frame_decode(&spec, 0, (const uint8_t *)"3abcd", 5, 0, &m), 4);
    CHECK(m.info == NULL);
    sb_frame_state st;
    CHECK_EQ(sb_frame_state_init(&st, &spec), 0);
    CHECK(st.info != NULL && st.info_owned);
    CHECK_EQ(sb_frame_decode_from(&spec, 0, (const uint8_t *)"2ab", 3, 0, &m, &st), 3);
    CHECK(m.info == st.cut); /* counting_cut points it at its state */
    memset(&m, 0, sizeof m);
    CHECK_EQ(sb_frame_decode_from(&spec, 0, (const uint8_t *)"2a", 2, 0, &m, &st), 0);
    CHECK(m.info == st.info); /* lent, left as it was for an unfinished message */
    sb_frame_state_free(&st);
}

/* sb_frame_decode_from with a resume point answers exactly as the plain
 * decoder does when a delimited message grows a byte at a time - including
 * delimiters that straddle the point where the last search stopped - and
 * its search point only ever advances until the message is cut. */
static void test_decode_from_resume(void)
{
    static const char *specs[] = {"line", "delim:\\r\\n\\r\\n", "delim:abc", "delim:\\n"};
    static const char *inputs[] = {"hello world\r\n", "head: 1\r\nhead: 2\r\n\r\n",
                                   "xxabxabcab", "no delimiter at all", "\r\n\r\r\n\r\n\r\n"};

    for (size_t si = 0; si < sizeof(specs) / sizeof(specs[0]); si++) {
        sb_frame_spec spec;
        CHECK_EQ(sb_frame_parse(specs[si], &spec), 0);
        for (size_t ii = 0; ii < sizeof(inputs) / sizeof(inputs[0]); ii++) {
            const uint8_t *in = (const uint8_t *)inputs[ii];
            size_t len = strlen(inputs[ii]), last = 0;
            sb_frame_state st;
            CHECK_EQ(sb_frame_state_init(&st, &spec), 0);
            for (size_t n = 1; n <= len; n++) {
                sb_msg a, b;
                ssize_t ra = sb_frame_decode(&spec, 64, in, n, 0, &a);
                ssize_t rb = sb_frame_decode_from(&spec, 64, in, n, 0, &b, &st);
                CHECK_EQ(ra, rb);
                if (ra > 0) {
                    CHECK(a.data == b.data && a.len == b.len);
                    CHECK_EQ(st.scan, 0);
                    break;
                }
                CHECK(st.scan >= last);
                last = st.scan;
            }
            sb_frame_state_free(&st);
        }
    }
}

/* ---- decode -> encode -> decode --------------------------------------- */

/* Whatever a decoder cuts out of any input, the encoder can frame so that
 * the decoder cuts out the same messages again: a server that echoes what
 * it decoded never refuses it, and the peer reads back what it sent. Raw
 * and eof mark no boundary inside a stream, so their messages make the
 * trip one at a time; every other framing re-encodes all of them into one
 * stream, which must decode to the same list and end cleanly. */
static const char *const rt_specs[] = {
    "raw",     "line",    "delim:|",  "delim:\\r\\n", "delim:\\r\\n\\r\\n", "delim:abab",
    "delim:aab", "delim:\\0", "delim:\\r", "fixed:1", "fixed:5", "ascii:1", "ascii:3",
    "ascii:20", "len16",   "len32",    "len64",      "varint", "typed:A=0,B=3,0x00=5,0xff=40,,=1",
    "eof",
};
static const size_t rt_maxes[] = {0, 1, 5, 64};

static size_t rt_decode(const sb_frame_spec *spec, size_t max, const uint8_t *p, size_t n,
                        sb_msg *out, size_t cap, ssize_t *end)
{
    size_t off = 0, count = 0;
    ssize_t r;
    sb_msg m;

    while ((r = sb_frame_decode(spec, max, p + off, n - off, 1, &m)) > 0) {
        CHECK(count < cap);
        out[count++] = m;
        off += (size_t)r;
    }
    *end = r;
    return count;
}

static void rt_same(const sb_msg *a, const sb_msg *b)
{
    CHECK_EQ(a->type, b->type);
    CHECK_EQ(a->len, b->len);
    CHECK(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void round_trip(const char *spec_str, size_t max, const uint8_t *p, size_t n)
{
    sb_frame_spec spec;
    sb_msg first[512], again[512];
    size_t count, count2, i;
    ssize_t end;
    sb_buf s;
    int alone;

    CHECK_EQ(sb_frame_parse(spec_str, &spec), 0);
    CHECK(n < 512);
    alone = spec.kind == SB_FRAME_RAW || spec.kind == SB_FRAME_EOF;
    count = rt_decode(&spec, max, p, n, first, 512, &end);
    sb_buf_init(&s, 0);
    for (i = 0; i < count; i++) {
        int rc = sb_frame_encode(&spec, first[i].type, first[i].data, first[i].len, &s);

        if (rc != 0)
            fprintf(stderr, "%s: message %zu of %zu bytes refused: %s\n", spec_str, i,
                    first[i].len, sb_strerror(rc));
        CHECK_EQ(rc, 0);
        if (!alone)
            continue;
        CHECK_EQ(rt_decode(&spec, max, sb_buf_data(&s), sb_buf_len(&s), again, 512, &end), 1);
        CHECK_EQ(end, 0);
        rt_same(&first[i], &again[0]);
        sb_buf_consume(&s, sb_buf_len(&s));
    }
    if (!alone) {
        count2 = rt_decode(&spec, max, s.data ? sb_buf_data(&s) : (const uint8_t *)"",
                           sb_buf_len(&s), again, 512, &end);
        if (count2 != count || end != 0)
            fprintf(stderr, "%s max %zu: %zu messages became %zu (end %zd)\n", spec_str, max,
                    count, count2, end);
        CHECK_EQ(count2, count);
        CHECK_EQ(end, 0);
        for (i = 0; i < count; i++)
            rt_same(&first[i], &again[i]);
    }
    sb_buf_free(&s);
}

/* Inputs at the edges of each rule: '\r' runs before '\n', delimiters
 * that overlap themselves, headers of every kind that fit the bounds. */
static void test_round_trip_edges(void)
{
    static const char *const inputs[] = {
        "ab\r\r\n",      "\r\n",        "\r\r\n",     "\r\r\r\n",  "\n\n\r\n",   "a\rb\r\n",
        "\r",            "ab\r\r\n\r\r\nx\n", "a|b||",    "|",         "abab",      "aabab",
        "abaabab",       "aaab",        "xaab",       "aab",       "\r\n\r\n",  "\r\n\r\r\n\r\n",
        "a\r\n\r\n\r\n", "\r\r",        "00",         "1x2yz",     "3abc",      "A\x01\x02\x03",
        "B123A",         "\x00\x03xyz", ",x",         "",          "\x02\x80\x01",
    };
    static const uint8_t bin[] = {0, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 2, 'b', 'c', 0xff,
                                  0, 0, 0, 1, 'z', 0x80, 0x01, 0, '\r', '\n', 0};
    sb_frame_spec spec;
    sb_buf out;
    size_t si, mi, ii;

    /* The case that closed echo connections: "ab\r\r\n" is the message
     * "ab\r", which goes back out as the same bytes. */
    CHECK_EQ(sb_frame_parse("line", &spec), 0);
    sb_buf_init(&out, 0);
    CHECK_EQ(sb_frame_encode(&spec, -1, "ab\r", 3, &out), 0);
    CHECK_EQ(sb_buf_len(&out), 5);
    CHECK(memcmp(sb_buf_data(&out), "ab\r\r\n", 5) == 0);
    sb_buf_free(&out);
    for (si = 0; si < sizeof(rt_specs) / sizeof(rt_specs[0]); si++) {
        for (mi = 0; mi < sizeof(rt_maxes) / sizeof(rt_maxes[0]); mi++) {
            for (ii = 0; ii < sizeof(inputs) / sizeof(inputs[0]); ii++)
                round_trip(rt_specs[si], rt_maxes[mi], (const uint8_t *)inputs[ii],
                           strlen(inputs[ii]));
            for (ii = 0; ii <= sizeof(bin); ii++)
                round_trip(rt_specs[si], rt_maxes[mi], bin + ii, sizeof(bin) - ii);
        }
    }
}

static uint64_t rt_rand(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17; /* xorshift64 */
    return *x;
}

/* A random input for spec made of tokens that its rules look at: a valid
 * header for a short payload (the right type byte for typed), the
 * delimiter or a prefix of it, CR and LF, and bytes from a small alphabet
 * of digits, type letters and 0x80+, with any byte now and then. */
static size_t rt_random_input(const sb_frame_spec *spec, uint64_t *x, uint8_t *in, size_t cap)
{
    static const uint8_t alphabet[] = "\r\n|ab\0\x01\x02" "0123AB,\xff\x80";
    static const uint8_t types[] = {'A', 'B', 0, 0xff, ','};
    size_t n = 0, want = (size_t)(rt_rand(x) % cap), k;

    while (n < want) {
        uint64_t r = rt_rand(x);
        uint8_t tok[SB_FRAME_HDR_MAX];
        int t = types[(r >> 8) % sizeof(types)], h;

        k = 0;
        switch (r % 5) {
        case 0:
            h = sb_frame_header(spec, t, spec->kind == SB_FRAME_TYPED ? spec->typed[t] : (r >> 16) % 9,
                                tok);
            k = h > 0 ? (size_t)h : 0;
            break;
        case 1:
            k = spec->delim_len ? 1 + (size_t)((r >> 8) % spec->delim_len) : 0;
            memcpy(tok, spec->delim, k);
            break;
        case 2:
            tok[0] = (r >> 8) & 1 ? '\r' : '\n';
            k = 1;
            break;
        default:
            tok[0] = (r & 0xf00) == 0 ? (uint8_t)(r >> 24)
                                      : alphabet[(r >> 24) % (sizeof(alphabet) - 1)];
            k = 1;
        }
        if (k > want - n)
            k = want - n;
        memcpy(in + n, tok, k);
        n += k;
    }
    return n;
}

/* Random inputs for every spec and bound. The generator is seeded, so a
 * failure repeats. */
static void test_round_trip_random(void)
{
    uint64_t x = 0x2545F4914F6CDD1DULL;
    uint8_t in[256];
    size_t si, mi, k;

    for (si = 0; si < sizeof(rt_specs) / sizeof(rt_specs[0]); si++) {
        sb_frame_spec spec;

        CHECK_EQ(sb_frame_parse(rt_specs[si], &spec), 0);
        for (mi = 0; mi < sizeof(rt_maxes) / sizeof(rt_maxes[0]); mi++) {
            for (k = 0; k < 400; k++)
                round_trip(rt_specs[si], rt_maxes[mi], in,
                           rt_random_input(&spec, &x, in, sizeof(in)));
        }
    }
}

int main(void)
{
    RUN(test_parse);
    RUN(test_custom_state);
    RUN(test_decode_from_resume);
    RUN(test_streams_counted);
    RUN(test_streams_delimited);
    RUN(test_streams_fixed_typed);
    RUN(test_raw);
    RUN(test_raw_decoder_splits);
    RUN(test_eof);
    RUN(test_counted_bounds);
    RUN(test_ascii_edges);
    RUN(test_varint_edges);
    RUN(test_delimited_bounds);
    RUN(test_fixed_typed_edges);
    RUN(test_encoder_refusals);
    RUN(test_decoder_large_feed);
    RUN(test_decoder_too_big);
    RUN(test_decoder_lifetime);
    RUN(test_decoder_enomem);
    RUN(test_custom);
    RUN(test_round_trip_edges);
    RUN(test_round_trip_random);
    fprintf(stderr, "test_frame: ok\n");
    return 0;
}
