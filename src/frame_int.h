/* frame_int: the hot path of the len32 framing, inline, for frame.c's
 * decoder and conn.c's delivery and send loops. Everything else about
 * framing stays behind frame.h. */
#ifndef SB_FRAME_INT_H
#define SB_FRAME_INT_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "switchboard/error.h"
#include "switchboard/frame.h"
#include "pack_int.h"

/* Cut one len32 message from p[0..n): bytes consumed, 0 when incomplete,
 * SB_ETOOBIG when the declared length exceeds max. */
static inline ssize_t sb__cut_len32(const uint8_t *p, size_t n, size_t max, sb_msg *msg)
{
    uint32_t len;

    if (n < 4)
        return 0;
    len = sb__load_u32be(p);
    if (len > max)
        return SB_ETOOBIG;
    if (len > n - 4)
        return 0;
    msg->data = p + 4;
    msg->len = len;
    msg->type = -1;
    msg->info = NULL;
    return (ssize_t)len + 4;
}

/* sb_frame_state_init, with the info block owned by st (own_info) or left
 * to the caller, who points st->info at a block of its own before each
 * decode (a connection on a loop uses the loop's). */
int sb__frame_state_init(sb_frame_state *st, const sb_frame_spec *spec, int own_info);

/* sb_frame_decode_from, with len32 settled inline (same results: a
 * message, 0 for more, SB_ETOOBIG, SB_ETRUNCATED at eof). */
static inline ssize_t sb__frame_decode(const sb_frame_spec *spec, size_t max_msg, const uint8_t *p,
                                       size_t n, int eof, sb_msg *msg, sb_frame_state *st)
{
    ssize_t r;

    if (spec->kind != SB_FRAME_LEN32)
        return sb_frame_decode_from(spec, max_msg, p, n, eof, msg, st);
    r = sb__cut_len32(p, n, max_msg ? max_msg : SIZE_MAX, msg);
    if (r != 0 && st)
        st->scan = 0;
    return r == 0 && eof && n > 0 ? SB_ETRUNCATED : r;
}

/* sb_frame_header and sb_frame_trailer with their common cases inline:
 * len32 writes its 4 bytes here, and only line and delim have a trailer. */
static inline int sb__frame_header(const sb_frame_spec *spec, int type, size_t n, uint8_t *hdr)
{
    if (spec->kind == SB_FRAME_LEN32 && n <= UINT32_MAX) {
        sb__store_u32be(hdr, (uint32_t)n);
        return 4;
    }
    return sb_frame_header(spec, type, n, hdr);
}

static inline int sb__frame_trailer(const sb_frame_spec *spec, const void *p, size_t len,
                                    uint8_t *trl)
{
    if (spec->kind != SB_FRAME_LINE && spec->kind != SB_FRAME_DELIM)
        return 0;
    return sb_frame_trailer(spec, p, len, trl);
}

#endif
