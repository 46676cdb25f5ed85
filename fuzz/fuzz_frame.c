/* fuzz_frame: libFuzzer target for the frame decoders.
 *
 * The first input bytes choose a SPEC (every kind), a max_msg and a seed
 * for chunk sizes; the rest is the stream. The stream is decoded three
 * ways: sb_frame_decode over the whole input, sb_decoder fed in random
 * chunks and drained after each, and sb_decoder fed every chunk before
 * draining (the path where the buffer outgrows its bound). All three must
 * give the same messages and the same final answer: that is the promise
 * that a split of the stream never changes what the decoder sees.
 *
 * Then decode -> encode -> decode: every message of the whole-input decode
 * is encoded again (the encoder may not refuse it) and the encodings,
 * concatenated, must decode to the same messages and a clean end. Raw and
 * eof mark no boundary inside a stream, so their messages make the trip
 * one at a time.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/error.h"
#include "switchboard/frame.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c))                                                                    \
            abort();                                                                 \
    } while (0)

static const char *const specs[] = {
    "raw",     "line",        "delim:\\r\\n\\r\\n", "delim:|", "delim:abab", "fixed:1",
    "fixed:7", "ascii:1",     "ascii:3",           "ascii:20", "len16",      "len32",
    "len64",   "varint",      "typed:A=0,B=3,0x00=5,0xff=300,,=1", "eof",
    "delim:aab", "delim:\\r", "delim:\\r\\n",
};
static const size_t maxes[] = {0, 1, 5, 16, 64, 1000};

/* A transcript: every message as type, length, bytes; then the final
 * answer. Raw framing cuts at reads, so only its bytes are recorded. */
typedef struct transcript {
    sb_buf b;
    int raw;
} transcript;

static void tr_msg(transcript *t, const sb_msg *m)
{
    if (!t->raw) {
        int32_t type = m->type;
        uint64_t len = m->len;

        CHECK(sb_buf_append(&t->b, &type, sizeof(type)) == 0);
        CHECK(sb_buf_append(&t->b, &len, sizeof(len)) == 0);
    }
    CHECK(sb_buf_append(&t->b, m->data, m->len) == 0);
}

static void tr_end(transcript *t, int end)
{
    int32_t e = end;

    CHECK(sb_buf_append(&t->b, "END", 3) == 0);
    CHECK(sb_buf_append(&t->b, &e, sizeof(e)) == 0);
}

static void tr_same(const transcript *a, const transcript *b)
{
    CHECK(sb_buf_len(&a->b) == sb_buf_len(&b->b));
    CHECK(sb_buf_len(&a->b) == 0 || memcmp(sb_buf_data(&a->b), sb_buf_data(&b->b),
                                           sb_buf_len(&a->b)) == 0);
}

/* Decode p[0..n) with end of stream: every message, then the answer that
 * ended it. */
static void decode_all(const sb_frame_spec *spec, size_t max, const uint8_t *p, size_t n,
                       transcript *t)
{
    size_t off = 0;
    ssize_t r;
    sb_msg m;

    while ((r = sb_frame_decode(spec, max, p + off, n - off, 1, &m)) > 0) {
        tr_msg(t, &m);
        off += (size_t)r;
    }
    tr_end(t, (int)r);
}

/* Encode m onto out; the encoder must accept whatever the decoder cut. */
static void encode_msg(const sb_frame_spec *spec, const sb_msg *m, sb_buf *out)
{
    CHECK(sb_frame_encode(spec, m->type, m->data, m->len, out) == 0);
}

/* Raw and eof: one message, alone in its stream, comes back as itself. */
static void round_trip_alone(const sb_frame_spec *spec, size_t max, const sb_msg *m)
{
    transcript want = {0}, got = {0};
    sb_buf out;

    want.raw = got.raw = spec->kind == SB_FRAME_RAW;
    sb_buf_init(&out, 0);
    encode_msg(spec, m, &out);
    tr_msg(&want, m);
    tr_end(&want, 0);
    decode_all(spec, max, sb_buf_data(&out), sb_buf_len(&out), &got);
    tr_same(&want, &got);
    sb_buf_free(&out);
    sb_buf_free(&want.b);
    sb_buf_free(&got.b);
}

static void decode_whole(const sb_frame_spec *spec, size_t max, const uint8_t *p, size_t n,
                         transcript *t)
{
    int alone = spec->kind == SB_FRAME_RAW || spec->kind == SB_FRAME_EOF;
    transcript want = {0}, got = {0};
    sb_buf again;
    size_t off = 0;
    ssize_t r;
    sb_msg m;

    sb_buf_init(&again, 0);
    while ((r = sb_frame_decode(spec, max, p + off, n - off, 1, &m)) > 0) {
        CHECK((size_t)r <= n - off);
        CHECK(m.len <= (size_t)r && (max == 0 || m.len <= max));
        CHECK(m.data >= p + off && m.data + m.len <= p + off + r);
        tr_msg(t, &m);
        if (alone) {
            round_trip_alone(spec, max, &m);
        } else {
            tr_msg(&want, &m);
            encode_msg(spec, &m, &again);
        }
        off += (size_t)r;
    }
    tr_end(t, (int)r);
    if (!alone) {
        tr_end(&want, 0);
        decode_all(spec, max, again.data ? sb_buf_data(&again) : (const uint8_t *)"",
                   sb_buf_len(&again), &got);
        tr_same(&want, &got);
    }
    sb_buf_free(&again);
    sb_buf_free(&want.b);
    sb_buf_free(&got.b);
}

static int drain(sb_decoder *d, transcript *t)
{
    sb_msg m;
    int r;

    while ((r = sb_decoder_next(d, &m)) == 1)
        tr_msg(t, &m);
    return r;
}

/* Chunk sizes from a small xorshift generator: mostly short chunks, now
 * and then a long one, so both the fast and the slow feed paths run. */
static size_t next_size(uint32_t *s, size_t left)
{
    uint32_t x = *s;
    size_t k;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    k = (x & 7) == 0 ? (x >> 3) % 4096 : (x >> 3) % 9;
    k += 1;
    return k < left ? k : left;
}

static void decode_chunks(const sb_frame_spec *spec, size_t max, const uint8_t *p, size_t n,
                          uint32_t seed, int drain_each, transcript *t)
{
    sb_decoder d;
    size_t off = 0;
    int r = 0;

    sb_decoder_init(&d, spec, max);
    while (off < n && r == 0) {
        size_t k = next_size(&seed, n - off);

        r = sb_decoder_feed(&d, p + off, k);
        CHECK(r == 0);
        off += k;
        if (drain_each)
            r = drain(&d, t);
    }
    if (r == 0) {
        sb_decoder_eof(&d);
        r = drain(&d, t);
    }
    tr_end(t, r);
    sb_decoder_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_frame_spec spec;
    transcript whole = {0}, each = {0}, late = {0};
    size_t max;
    uint32_t seed;

    if (size < 4)
        return 0;
    CHECK(sb_frame_parse(specs[data[0] % (sizeof(specs) / sizeof(specs[0]))], &spec) == 0);
    max = maxes[data[1] % (sizeof(maxes) / sizeof(maxes[0]))];
    seed = (uint32_t)data[2] << 8 | data[3] | 1u << 16;
    data += 4;
    size -= 4;
    whole.raw = each.raw = late.raw = spec.kind == SB_FRAME_RAW;
    decode_whole(&spec, max, data, size, &whole);
    decode_chunks(&spec, max, data, size, seed, 1, &each);
    decode_chunks(&spec, max, data, size, seed, 0, &late);
    CHECK(sb_buf_len(&whole.b) == sb_buf_len(&each.b));
    CHECK(memcmp(sb_buf_data(&whole.b), sb_buf_data(&each.b), sb_buf_len(&whole.b)) == 0);
    CHECK(sb_buf_len(&whole.b) == sb_buf_len(&late.b));
    CHECK(memcmp(sb_buf_data(&whole.b), sb_buf_data(&late.b), sb_buf_len(&whole.b)) == 0);
    sb_buf_free(&whole.b);
    sb_buf_free(&each.b);
    sb_buf_free(&late.b);
    return 0;
}
