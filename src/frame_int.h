/* frame_int: the hot path of the len32 framing, inline, for frame.c's
 * decoder and conn.c's delivery and send loops. Everything else about
 * framing stays behind frame.h. */
#ifndef SB_FRAME_INT_H
#define SB_FRAME_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "switchboard/error.h"
#include "switchboard/frame.h"

/* Cut one len32 message from p[0..n): bytes consumed, 0 when incomplete,
 * SB_ETOOBIG when the declared length exceeds max. */
static inline ssize_t sb__cut_len32(const uint8_t *p, size_t n, size_t max, sb_msg *msg)
{
    uint32_t len;

    if (n < 4)
        return 0;
    len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (len > max)
        return SB_ETOOBIG;
    if (len > n - 4)
        return 0;
    msg->data = p + 4;
    msg->len = len;
    msg->type = -1;
    return (ssize_t)len + 4;
}

/* The len32 header for a payload of n bytes (n <= UINT32_MAX). */
static inline void sb__put_len32(uint8_t *hdr, size_t n)
{
    hdr[0] = (uint8_t)(n >> 24);
    hdr[1] = (uint8_t)(n >> 16);
    hdr[2] = (uint8_t)(n >> 8);
    hdr[3] = (uint8_t)n;
}

#endif
