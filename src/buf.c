/* buf: the bounded growable byte buffer of buf.h.
 *
 * Content lives in data[rpos .. wpos). Consuming only moves rpos; the gap it
 * leaves at the front is reclaimed by sb_buf_reserve, which first slides the
 * content down (cheap: the content of a network buffer is usually a partial
 * message) and only then grows the allocation, by doubling, capped at max.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "switchboard/buf.h"
#include "switchboard/error.h"
#include "sys.h"

/* The smallest allocation: below this, doubling would mean several
 * reallocations for the first few appends of a typical message. */
#define SB_BUF_MIN_CAP 256

static size_t buf_limit(const sb_buf *b)
{
    return b->max ? b->max : SIZE_MAX;
}

void sb_buf_init(sb_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void sb_buf_free(sb_buf *b)
{
    size_t max = b->max;

    sb__free(b->data);
    sb_buf_init(b, max);
}

/* Capacity for need bytes: double from the current size (or the minimum)
 * until it fits, clamped to the limit. need <= limit is the caller's
 * promise, so the clamp never drops below need. */
static size_t buf_grow_to(const sb_buf *b, size_t need)
{
    size_t limit = buf_limit(b);
    size_t cap = b->cap ? b->cap : SB_BUF_MIN_CAP;

    while (cap < need && cap <= limit / 2)
        cap *= 2;
    if (cap < need || cap > limit)
        cap = limit;
    return cap;
}

int sb_buf_reserve(sb_buf *b, size_t n, uint8_t **out)
{
    size_t len = sb_buf_len(b);

    if (len > buf_limit(b) || n > buf_limit(b) - len) /* content past max: held by its owner */
        return SB_ETOOBIG;
    if (n > b->cap - b->wpos && b->rpos > 0) {
        /* Slide the content to the front before considering growth. */
        if (len)
            memmove(b->data, b->data + b->rpos, len);
        b->rpos = 0;
        b->wpos = len;
    }
    if (n > b->cap - b->wpos) {
        size_t cap = buf_grow_to(b, len + n);
        uint8_t *p = sb__realloc(b->data, cap);

        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    /* An unallocated buffer asked for 0 bytes has no address to offer. */
    *out = b->data ? b->data + b->wpos : NULL;
    return 0;
}

void sb_buf_commit(sb_buf *b, size_t n)
{
    b->wpos += n;
}

int sb_buf_append(sb_buf *b, const void *p, size_t n)
{
    uint8_t *dst;
    int rc;

    if (n == 0)
        return 0;
    rc = sb_buf_reserve(b, n, &dst);
    if (rc)
        return rc;
    memcpy(dst, p, n);
    b->wpos += n;
    return 0;
}

void sb_buf_consume(sb_buf *b, size_t n)
{
    b->rpos += n;
    if (b->rpos == b->wpos)
        b->rpos = b->wpos = 0;
}

void sb_buf_reset(sb_buf *b)
{
    b->rpos = b->wpos = 0;
}
