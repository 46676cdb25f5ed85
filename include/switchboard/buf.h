/** @file
 * buf: a growable byte buffer with a hard upper bound.
 *
 * Layout: data[0 .. cap) is owned memory; bytes [rpos, wpos) are content.
 * Appending grows the allocation (doubling) but never past `max`; reading
 * consumes from the front, and the front gap is reclaimed lazily (by a
 * memmove when space is needed), so consuming is O(1).
 *
 * A zero-filled sb_buf with max = 0 is an empty buffer with no limit
 * (SIZE_MAX). The buffer owns `data`; sb_buf_free releases it.
 */
#ifndef SWITCHBOARD_BUF_H
#define SWITCHBOARD_BUF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The buffer (a plain struct; see the layout above). */
typedef struct sb_buf {
    uint8_t *data; /**< owned allocation, NULL while empty and never grown */
    size_t rpos;   /**< first unread byte */
    size_t wpos;   /**< one past the last written byte */
    size_t cap;    /**< size of data */
    size_t max;    /**< bound on cap; 0 means unbounded */
} sb_buf;

/** An empty buffer that never grows past max bytes (0: no limit). */
void sb_buf_init(sb_buf *b, size_t max);
void sb_buf_free(sb_buf *b);                       /**< releases memory, keeps max */
static inline size_t sb_buf_len(const sb_buf *b) { return b->wpos - b->rpos; }
static inline uint8_t *sb_buf_data(const sb_buf *b) { return b->data + b->rpos; }

/** Make room for at least n more bytes after the content and return a pointer
 * to it through *out (valid until the next call that changes the buffer).
 * Returns 0, SB_ETOOBIG if content + n would exceed max, -ENOMEM. */
int sb_buf_reserve(sb_buf *b, size_t n, uint8_t **out);
/** Declare n bytes written into the space sb_buf_reserve returned. */
void sb_buf_commit(sb_buf *b, size_t n);
/** Copy n bytes in. Returns 0, SB_ETOOBIG or -ENOMEM (buffer unchanged). */
int sb_buf_append(sb_buf *b, const void *p, size_t n);
/** Drop n bytes (n <= len) from the front. An emptied buffer rewinds. */
void sb_buf_consume(sb_buf *b, size_t n);
/** Empty the buffer without freeing memory. */
void sb_buf_reset(sb_buf *b);

#ifdef __cplusplus
}
#endif

#endif
