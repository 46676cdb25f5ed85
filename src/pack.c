/* pack: byte order, LEB128 varints and fixed-width ASCII decimals (pack.h).
 *
 * Integers are assembled byte by byte with shifts: the result does not
 * depend on the host's byte order or on alignment, and compilers turn these
 * patterns into a single load/store plus a byte swap where that is legal.
 */
#include <stdint.h>

#include "switchboard/error.h"
#include "switchboard/pack.h"
#include "pack_int.h"

void sb_put_u16be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void sb_put_u32be(uint8_t *p, uint32_t v)
{
    sb__store_u32be(p, v);
}

void sb_put_u64be(uint8_t *p, uint64_t v)
{
    sb_put_u32be(p, (uint32_t)(v >> 32));
    sb_put_u32be(p + 4, (uint32_t)v);
}

void sb_put_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void sb_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void sb_put_u64le(uint8_t *p, uint64_t v)
{
    sb_put_u32le(p, (uint32_t)v);
    sb_put_u32le(p + 4, (uint32_t)(v >> 32));
}

uint16_t sb_get_u16be(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

uint32_t sb_get_u32be(const uint8_t *p)
{
    return sb__load_u32be(p);
}

uint64_t sb_get_u64be(const uint8_t *p)
{
    return (uint64_t)sb_get_u32be(p) << 32 | sb_get_u32be(p + 4);
}

uint16_t sb_get_u16le(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[1] << 8 | p[0]);
}

uint32_t sb_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

uint64_t sb_get_u64le(const uint8_t *p)
{
    return (uint64_t)sb_get_u32le(p + 4) << 32 | sb_get_u32le(p);
}

size_t sb_varint_put(uint8_t *out, uint64_t v)
{
    size_t i = 0;

    while (v >= 0x80) {
        out[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[i++] = (uint8_t)v;
    return i;
}

/* The first nine bytes carry 63 bits, so the tenth may only add bit 63:
 * its value must be 0 or 1 and it must be the last byte. Checking that one
 * byte is the whole overflow test; no wider arithmetic is needed. */
int sb_varint_get(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    size_t i;

    for (i = 0; i < n && i < SB_VARINT_MAX - 1; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return (int)(i + 1);
        }
    }
    if (i == n)
        return 0;
    if (p[i] > 1)
        return SB_EOVERFLOW;
    *v = x | (uint64_t)p[i] << 63;
    return SB_VARINT_MAX;
}

int sb_ascii_put(uint8_t *out, size_t width, uint64_t v)
{
    size_t i = width;

    while (i > 0) {
        out[--i] = (uint8_t)('0' + v % 10);
        v /= 10;
    }
    return v ? SB_EOVERFLOW : 0;
}

/* Overflow can only happen on the twentieth digit (UINT64_MAX has 20), and
 * is caught by comparing against UINT64_MAX / 10 before multiplying. */
int sb_ascii_get(const uint8_t *p, size_t width, uint64_t *v)
{
    uint64_t x = 0;
    size_t i;

    for (i = 0; i < width; i++) {
        unsigned d = (unsigned)p[i] - '0';

        if (d > 9)
            return SB_EMALFORMED;
        if (x > (UINT64_MAX - d) / 10)
            return SB_EOVERFLOW;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}
