/* fuzz_pack: libFuzzer target for varints, ASCII decimals and the fixed
 * width integers. Whatever parses must re-encode to a value that parses
 * back the same; a minimal encoding must re-encode byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/error.h"
#include "switchboard/pack.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c))                                                                    \
            abort();                                                                 \
    } while (0)

static void check_varint(const uint8_t *p, size_t n)
{
    uint8_t out[SB_VARINT_MAX];
    uint64_t v, w;
    int used = sb_varint_get(p, n, &v);
    size_t len;

    CHECK(used == 0 || used == SB_EOVERFLOW || (used >= 1 && used <= SB_VARINT_MAX));
    if (used == 0) {
        CHECK(n < SB_VARINT_MAX);
        return;
    }
    if (used < 0)
        return;
    CHECK((size_t)used <= n && !(p[used - 1] & 0x80));
    len = sb_varint_put(out, v);
    CHECK(len >= 1 && len <= (size_t)used);
    CHECK(sb_varint_get(out, len, &w) == (int)len && w == v);
    /* Minimal means the last byte is non-zero (or the value is 0). */
    if (used == 1 || p[used - 1] != 0)
        CHECK(len == (size_t)used && memcmp(out, p, len) == 0);
}

static void check_ascii(const uint8_t *p, size_t n)
{
    uint8_t out[20];
    size_t width;
    uint64_t v;
    int rc;

    if (n < 1)
        return;
    width = p[0] % 20 + 1;
    if (n - 1 < width)
        return;
    rc = sb_ascii_get(p + 1, width, &v);
    CHECK(rc == 0 || rc == SB_EMALFORMED || rc == SB_EOVERFLOW);
    if (rc)
        return;
    CHECK(sb_ascii_put(out, width, v) == 0);
    CHECK(memcmp(out, p + 1, width) == 0);
}

static void check_fixed(const uint8_t *p, size_t n)
{
    uint8_t out[8];

    if (n < 8)
        return;
    sb_put_u64be(out, sb_get_u64be(p));
    CHECK(memcmp(out, p, 8) == 0);
    sb_put_u64le(out, sb_get_u64le(p));
    CHECK(memcmp(out, p, 8) == 0);
    CHECK(sb_get_u64be(p) >> 32 == sb_get_u32be(p));
    CHECK((uint16_t)sb_get_u64le(p) == sb_get_u16le(p));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_varint(data, size);
    check_ascii(data, size);
    check_fixed(data, size);
    return 0;
}
