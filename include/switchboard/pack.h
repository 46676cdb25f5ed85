/** @file
 * pack: byte order and binary packing (HOWTO section 3.1).
 *
 * Fixed-width integers are read and written byte by byte, so they work on any
 * host byte order and any alignment. "be" is network order (htonl's order).
 */
#ifndef SWITCHBOARD_PACK_H
#define SWITCHBOARD_PACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @{ */
/** Write v at p (2, 4 or 8 bytes), big-endian (be) or little-endian (le). */
void sb_put_u16be(uint8_t *p, uint16_t v);
void sb_put_u32be(uint8_t *p, uint32_t v);
void sb_put_u64be(uint8_t *p, uint64_t v);
void sb_put_u16le(uint8_t *p, uint16_t v);
void sb_put_u32le(uint8_t *p, uint32_t v);
void sb_put_u64le(uint8_t *p, uint64_t v);
/** @} */
/** @{ */
/** Read the value at p (2, 4 or 8 bytes), big-endian (be) or little-endian (le). */
uint16_t sb_get_u16be(const uint8_t *p);
uint32_t sb_get_u32be(const uint8_t *p);
uint64_t sb_get_u64be(const uint8_t *p);
uint16_t sb_get_u16le(const uint8_t *p);
uint32_t sb_get_u32le(const uint8_t *p);
uint64_t sb_get_u64le(const uint8_t *p);
/** @} */

/** LEB128 unsigned varint: 7 bits per byte, low group first, high bit set on
 * every byte but the last. At most SB_VARINT_MAX bytes for a uint64_t. */
#define SB_VARINT_MAX 10
/** Writes v into out[0..SB_VARINT_MAX) and returns the byte count (1..10). */
size_t sb_varint_put(uint8_t *out, uint64_t v);
/** Reads a varint from p[0..n). Returns bytes used (>0) with *v set; 0 when
 * n bytes end before the varint does; SB_EOVERFLOW when the value does not
 * fit 64 bits (an 11th byte, or a 10th byte > 1); SB_EMALFORMED for a
 * non-minimal encoding is NOT reported (accepted, as protobuf does). */
int sb_varint_get(const uint8_t *p, size_t n, uint64_t *v);

/** @{ */
/** Fixed-width ASCII decimal, zero padded: the HOWTO's "5 numeric characters".
 * put: writes exactly width digits; SB_EOVERFLOW if v needs more digits.
 * get: reads exactly width bytes; SB_EMALFORMED on a non-digit,
 *      SB_EOVERFLOW if the value does not fit uint64_t. width is 1..20. */
int sb_ascii_put(uint8_t *out, size_t width, uint64_t v);
int sb_ascii_get(const uint8_t *p, size_t width, uint64_t *v);
/** @} */

#ifdef __cplusplus
}
#endif

#endif
