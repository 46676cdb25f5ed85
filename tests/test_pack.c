/* test_pack: byte order, varints and ASCII decimals - known byte patterns,
 * round trips, every truncated prefix and every overflow edge. */
#include <stdint.h>

#include "test.h"

static void test_fixed_width_patterns(void)
{
    uint8_t b[8];

    sb_put_u16be(b, 0x0102);
    CHECK(memcmp(b, "\x01\x02", 2) == 0);
    sb_put_u16le(b, 0x0102);
    CHECK(memcmp(b, "\x02\x01", 2) == 0);
    sb_put_u32be(b, 0x01020304);
    CHECK(memcmp(b, "\x01\x02\x03\x04", 4) == 0);
    sb_put_u32le(b, 0x01020304);
    CHECK(memcmp(b, "\x04\x03\x02\x01", 4) == 0);
    sb_put_u64be(b, 0x0102030405060708ULL);
    CHECK(memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    sb_put_u64le(b, 0x0102030405060708ULL);
    CHECK(memcmp(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8) == 0);
    CHECK_EQ(sb_get_u16be((const uint8_t *)"\xff\x01"), 0xff01);
    CHECK_EQ(sb_get_u16le((const uint8_t *)"\xff\x01"), 0x01ff);
    CHECK_EQ(sb_get_u32be((const uint8_t *)"\xff\x00\x00\x01"), 0xff000001u);
    CHECK_EQ(sb_get_u32le((const uint8_t *)"\xff\x00\x00\x01"), 0x010000ffu);
    CHECK(sb_get_u64be((const uint8_t *)"\x80\0\0\0\0\0\0\x01") == 0x8000000000000001ULL);
    CHECK(sb_get_u64le((const uint8_t *)"\x80\0\0\0\0\0\0\x01") == 0x0100000000000080ULL);
}

/* Unaligned addresses and the extremes of each width. */
static void test_fixed_width_round_trip(void)
{
    static const uint64_t vals[] = {0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x10000,
                                    0xffffffffULL, 0x100000000ULL, UINT64_MAX - 1, UINT64_MAX};
    uint8_t mem[16];
    size_t i, off;

    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint64_t v = vals[i];

        for (off = 0; off < 8; off++) {
            uint8_t *p = mem + off;

            sb_put_u16be(p, (uint16_t)v);
            CHECK_EQ(sb_get_u16be(p), (uint16_t)v);
            sb_put_u16le(p, (uint16_t)v);
            CHECK_EQ(sb_get_u16le(p), (uint16_t)v);
            sb_put_u32be(p, (uint32_t)v);
            CHECK(sb_get_u32be(p) == (uint32_t)v);
            sb_put_u32le(p, (uint32_t)v);
            CHECK(sb_get_u32le(p) == (uint32_t)v);
            sb_put_u64be(p, v);
            CHECK(sb_get_u64be(p) == v);
            sb_put_u64le(p, v);
            CHECK(sb_get_u64le(p) == v);
        }
    }
}

static void test_varint_vectors(void)
{
    static const struct {
        uint64_t v;
        size_t n;
        const char *bytes;
    } vec[] = {
        {0, 1, "\x00"},
        {1, 1, "\x01"},
        {127, 1, "\x7f"},
        {128, 2, "\x80\x01"},
        {300, 2, "\xac\x02"},
        {16383, 2, "\xff\x7f"},
        {16384, 3, "\x80\x80\x01"},
        {0xffffffffULL, 5, "\xff\xff\xff\xff\x0f"},
        {1ULL << 63, 10, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"},
        {UINT64_MAX, 10, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"},
    };
    size_t i, k;

    for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        uint8_t out[SB_VARINT_MAX];
        uint64_t v = 12345;

        CHECK_EQ(sb_varint_put(out, vec[i].v), vec[i].n);
        CHECK(memcmp(out, vec[i].bytes, vec[i].n) == 0);
        CHECK_EQ(sb_varint_get(out, vec[i].n, &v), (int)vec[i].n);
        CHECK(v == vec[i].v);
        for (k = 0; k < vec[i].n; k++)
            CHECK_EQ(sb_varint_get(out, k, &v), 0);
    }
}

static void test_varint_round_trip(void)
{
    uint64_t v = 1;
    int shift;

    for (shift = 0; shift < 64; shift++) {
        uint64_t cases[3] = {(1ULL << shift) - 1, 1ULL << shift, (1ULL << shift) + 1};
        int j;

        for (j = 0; j < 3; j++) {
            uint8_t out[SB_VARINT_MAX + 1];
            size_t n = sb_varint_put(out, cases[j]);

            out[n] = 0xee; /* must not be read */
            CHECK_EQ(sb_varint_get(out, n + 1, &v), (int)n);
            CHECK(v == cases[j]);
        }
    }
}

static void test_varint_overflow(void)
{
    uint8_t b[20];
    uint64_t v;

    /* Tenth byte 2: bit 64 would be set. */
    memcpy(b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
    CHECK_EQ(sb_varint_get(b, 10, &v), SB_EOVERFLOW);
    /* Tenth byte with the continuation bit: an eleventh byte. */
    memcpy(b, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x81\x00", 11);
    CHECK_EQ(sb_varint_get(b, 11, &v), SB_EOVERFLOW);
    CHECK_EQ(sb_varint_get(b, 10, &v), SB_EOVERFLOW);
    CHECK_EQ(sb_varint_get(b, 9, &v), 0);
    memset(b, 0xff, sizeof(b));
    CHECK_EQ(sb_varint_get(b, 20, &v), SB_EOVERFLOW);
    /* Non-minimal encodings are accepted. */
    memcpy(b, "\x85\x80\x80\x80\x80\x80\x80\x80\x80\x00", 10);
    CHECK_EQ(sb_varint_get(b, 10, &v), 10);
    CHECK(v == 5);
    memcpy(b, "\x80\x00", 2);
    CHECK_EQ(sb_varint_get(b, 2, &v), 2);
    CHECK(v == 0);
}

static void test_ascii(void)
{
    uint8_t b[21];
    uint64_t v;

    CHECK_EQ(sb_ascii_put(b, 5, 42), 0);
    CHECK(memcmp(b, "00042", 5) == 0);
    CHECK_EQ(sb_ascii_put(b, 5, 99999), 0);
    CHECK(memcmp(b, "99999", 5) == 0);
    CHECK_EQ(sb_ascii_put(b, 5, 100000), SB_EOVERFLOW);
    CHECK_EQ(sb_ascii_put(b, 1, 0), 0);
    CHECK_EQ(b[0], '0');
    CHECK_EQ(sb_ascii_put(b, 20, UINT64_MAX), 0);
    CHECK(memcmp(b, "18446744073709551615", 20) == 0);
    CHECK_EQ(sb_ascii_get(b, 20, &v), 0);
    CHECK(v == UINT64_MAX);
    CHECK_EQ(sb_ascii_get((const uint8_t *)"18446744073709551616", 20, &v), SB_EOVERFLOW);
    CHECK_EQ(sb_ascii_get((const uint8_t *)"99999999999999999999", 20, &v), SB_EOVERFLOW);
    CHECK_EQ(sb_ascii_get((const uint8_t *)"00000000000000000007", 20, &v), 0);
    CHECK(v == 7);
    CHECK_EQ(sb_ascii_get((const uint8_t *)"00042", 5, &v), 0);
    CHECK(v == 42);
    CHECK_EQ(sb_ascii_get((const uint8_t *)"0004a", 5, &v), SB_EMALFORMED);
    CHECK_EQ(sb_ascii_get((const uint8_t *)" 0042", 5, &v), SB_EMALFORMED);
    CHECK_EQ(sb_ascii_get((const uint8_t *)"-0042", 5, &v), SB_EMALFORMED);
    CHECK_EQ(sb_ascii_get((const uint8_t *)"00/42", 5, &v), SB_EMALFORMED);
    CHECK_EQ(sb_ascii_get((const uint8_t *)"00:42", 5, &v), SB_EMALFORMED);
}

int main(void)
{
    RUN(test_fixed_width_patterns);
    RUN(test_fixed_width_round_trip);
    RUN(test_varint_vectors);
    RUN(test_varint_round_trip);
    RUN(test_varint_overflow);
    RUN(test_ascii);
    fprintf(stderr, "test_pack: ok\n");
    return 0;
}
