/* pack_int: the 32-bit big-endian load and store behind sb_get_u32be and
 * sb_put_u32be, inline for the library's own hot paths (frame_int.h).
 * Byte by byte with shifts: independent of host byte order and alignment;
 * compilers emit one load/store and a byte swap. */
#ifndef SB_PACK_INT_H
#define SB_PACK_INT_H

#include <stdint.h>

static inline uint32_t sb__load_u32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void sb__store_u32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
