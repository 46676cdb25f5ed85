/* frame: every framing of HOWTO section 3 (frame.h).
 *
 * Divisions of this file:
 *   1. SPEC parsing       sb_frame_parse and its small scanners
 *   2. Decoding           one cutter per kind, picohttpparser style: pure
 *                         functions over p[0..n) that never read past n
 *   3. Encoding           header, trailer, payload check, encode
 *   4. sb_decoder         the buffering wrapper for arbitrary chunks
 *
 * The decoders share one invariant the buffering wrapper and the fuzz
 * target rely on: the answer for a prefix of a stream is either 0
 * (incomplete) or the same answer as for the whole stream. So any split of
 * the input into chunks yields the same messages and the same error.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "switchboard/error.h"
#include "switchboard/frame.h"
#include "frame_int.h"
#include "switchboard/pack.h"
#include "sys.h"

/* ---- 1. SPEC parsing ------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A decimal number filling all of s (at least one digit), no larger than
 * max. Returns 0 with *v set, or SB_EBADSPEC. */
static int parse_dec(const char *s, size_t len, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;
    size_t i;

    if (len == 0)
        return SB_EBADSPEC;
    for (i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';

        if (d > 9 || d > max || x > (max - d) / 10)
            return SB_EBADSPEC;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* One escape after the backslash at s[0]. Returns the characters used
 * (including the backslash) with *out set, or 0 if the escape is invalid. */
static size_t parse_escape(const char *s, uint8_t *out)
{
    int hi, lo;

    switch (s[1]) {
    case 'r': *out = '\r'; return 2;
    case 'n': *out = '\n'; return 2;
    case 't': *out = '\t'; return 2;
    case '\\': *out = '\\'; return 2;
    case '0': *out = '\0'; return 2;
    case 'x':
        hi = hexval((unsigned char)s[2]);
        lo = hi < 0 ? -1 : hexval((unsigned char)s[3]);
        if (lo < 0)
            return 0;
        *out = (uint8_t)(hi << 4 | lo);
        return 4;
    default:
        return 0;
    }
}

static int parse_delim(const char *s, sb_frame_spec *out)
{
    size_t len = 0;

    while (*s) {
        uint8_t c = (uint8_t)*s;
        size_t used = 1;

        if (len == SB_DELIM_MAX)
            return SB_EBADSPEC;
        if (c == '\\' && (used = parse_escape(s, &c)) == 0)
            return SB_EBADSPEC;
        out->delim[len++] = c;
        s += used;
    }
    if (len == 0)
        return SB_EBADSPEC;
    out->delim_len = len;
    return 0;
}

/* The type of one typed entry: "T=" (any single character, even ',' or
 * '=') or "0xHH=". Returns characters used up to and including '=', or 0. */
static size_t parse_type(const char *s, unsigned *type)
{
    if (s[0] && s[1] == '=') {
        *type = (unsigned char)s[0];
        return 2;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && hexval((unsigned char)s[2]) >= 0 &&
        hexval((unsigned char)s[3]) >= 0 && s[4] == '=') {
        *type = (unsigned)(hexval((unsigned char)s[2]) << 4 | hexval((unsigned char)s[3]));
        return 5;
    }
    return 0;
}

/* "T=N,T=N,...": at least one entry, no duplicate types, no empty entry.
 * Lengths stop below SB_TYPED_NONE, which marks unknown types. */
static int parse_typed(const char *s, sb_frame_spec *out)
{
    size_t i;

    for (i = 0; i < 256; i++)
        out->typed[i] = SB_TYPED_NONE;
    do {
        unsigned type;
        size_t used = parse_type(s, &type), digits;
        uint64_t len;

        if (used == 0 || out->typed[type] != SB_TYPED_NONE)
            return SB_EBADSPEC;
        s += used;
        digits = strcspn(s, ",");
        if (parse_dec(s, digits, SB_TYPED_NONE - 1, &len))
            return SB_EBADSPEC;
        out->typed[type] = (uint32_t)len;
        s += digits;
    } while (*s++ == ',');
    return 0;
}

/* "name:ARG" kinds whose ARG is a decimal count in [lo, hi]. */
static int parse_count(const char *arg, uint64_t lo, uint64_t hi, sb_frame_spec *out)
{
    uint64_t v;

    if (parse_dec(arg, strlen(arg), hi, &v) || v < lo)
        return SB_EBADSPEC;
    out->n = (size_t)v;
    return 0;
}

static const struct {
    const char *name;
    sb_frame_kind kind;
} plain_kinds[] = {
    {"raw", SB_FRAME_RAW},     {"line", SB_FRAME_LINE},     {"len16", SB_FRAME_LEN16},
    {"len32", SB_FRAME_LEN32}, {"len64", SB_FRAME_LEN64},   {"varint", SB_FRAME_VARINT},
    {"eof", SB_FRAME_EOF},
};

static int parse_with_arg(const char *spec, sb_frame_spec *out)
{
    if (strncmp(spec, "delim:", 6) == 0) {
        out->kind = SB_FRAME_DELIM;
        return parse_delim(spec + 6, out);
    }
    if (strncmp(spec, "fixed:", 6) == 0) {
        out->kind = SB_FRAME_FIXED;
        return parse_count(spec + 6, 1, SIZE_MAX, out);
    }
    if (strncmp(spec, "ascii:", 6) == 0) {
        out->kind = SB_FRAME_ASCII;
        return parse_count(spec + 6, 1, 20, out);
    }
    if (strncmp(spec, "typed:", 6) == 0) {
        out->kind = SB_FRAME_TYPED;
        return parse_typed(spec + 6, out);
    }
    return SB_EBADSPEC;
}

/* out is written only on success, so a failed parse leaves the caller's
 * previous spec intact. */
int sb_frame_parse(const char *spec, sb_frame_spec *out)
{
    sb_frame_spec s;
    size_t i;
    int rc = SB_EBADSPEC;

    if (!spec)
        return SB_EBADSPEC;
    memset(&s, 0, sizeof(s));
    for (i = 0; i < sizeof(plain_kinds) / sizeof(plain_kinds[0]); i++) {
        if (strcmp(spec, plain_kinds[i].name) == 0) {
            s.kind = plain_kinds[i].kind;
            rc = 0;
        }
    }
    if (rc)
        rc = parse_with_arg(spec, &s);
    if (rc)
        return rc;
    if (s.kind == SB_FRAME_LINE) {
        s.delim[0] = '\n';
        s.delim_len = 1;
    }
    *out = s;
    return 0;
}

/* ---- 2. Decoding ------------------------------------------------------ */

/* Every cutter below is called with n > 0 and max = the payload bound
 * (SIZE_MAX when unbounded), and returns bytes consumed, 0 or an error. */

/* A message of hdr header bytes followed by len payload bytes. The length
 * is checked against max before anything else, so a hostile length fails
 * as soon as its header is in, whatever follows. */
static ssize_t cut_counted(size_t hdr, uint64_t len, size_t max, const uint8_t *p, size_t n,
                           sb_msg *msg)
{
    if (len > max || len > (uint64_t)(SSIZE_MAX - hdr))
        return SB_ETOOBIG;
    if (len > n - hdr)
        return 0;
    msg->data = p + hdr;
    msg->len = (size_t)len;
    return (ssize_t)(hdr + len);
}

static ssize_t cut_len(size_t hdr, const uint8_t *p, size_t n, size_t max, sb_msg *msg)
{
    uint64_t len;

    if (n < hdr)
        return 0;
    if (hdr == 2)
        len = sb_get_u16be(p);
    else
        len = sb_get_u64be(p);
    return cut_counted(hdr, len, max, p, n, msg);
}

static ssize_t cut_varint(const uint8_t *p, size_t n, size_t max, sb_msg *msg)
{
    uint64_t len;
    int hdr = sb_varint_get(p, n, &len);

    if (hdr <= 0)
        return hdr;
    return cut_counted((size_t)hdr, len, max, p, n, msg);
}

/* A non-digit is reported as soon as it arrives, before the header is
 * complete: no later byte can make the header valid. */
static ssize_t cut_ascii(size_t width, const uint8_t *p, size_t n, size_t max, sb_msg *msg)
{
    size_t have = n < width ? n : width, i;
    uint64_t len;
    int rc;

    for (i = 0; i < have; i++) {
        if ((unsigned)p[i] - '0' > 9)
            return SB_EMALFORMED;
    }
    if (n < width)
        return 0;
    rc = sb_ascii_get(p, width, &len);
    if (rc)
        return rc;
    return cut_counted(width, len, max, p, n, msg);
}

static ssize_t cut_typed(const sb_frame_spec *spec, const uint8_t *p, size_t n, size_t max,
                         sb_msg *msg)
{
    uint32_t len = spec->typed[p[0]];
    ssize_t r;

    if (len == SB_TYPED_NONE)
        return SB_EBADTYPE;
    r = cut_counted(1, len, max, p, n, msg);
    if (r > 0)
        msg->type = p[0];
    return r;
}

/* The bytes a delimited message may span before it is known to be too big:
 * the payload bound plus the delimiter, plus one for line's optional '\r'.
 * Saturates at SIZE_MAX when unbounded. */
static size_t delim_window(const sb_frame_spec *spec, size_t max)
{
    size_t extra = spec->delim_len + (spec->kind == SB_FRAME_LINE);

    return max > SIZE_MAX - extra ? SIZE_MAX : max + extra;
}

static const uint8_t *find_delim(const sb_frame_spec *spec, const uint8_t *p, size_t n)
{
    if (spec->delim_len == 1)
        return memchr(p, spec->delim[0], n);
    return memmem(p, n, spec->delim, spec->delim_len);
}

/* Line and delim. Only the first window bytes are searched, so a peer that
 * never sends the delimiter costs at most one bounded scan per call. */
static ssize_t cut_delim(const sb_frame_spec *spec, const uint8_t *p, size_t n, size_t max,
                         sb_msg *msg, size_t *scan)
{
    size_t window = delim_window(spec, max);
    size_t end = n < window ? n : window;
    /* Bytes before *scan were searched by an earlier call; a delimiter may
     * straddle that edge, so back up by its length less one. */
    size_t from = scan && *scan >= spec->delim_len ? *scan - (spec->delim_len - 1) : 0;
    const uint8_t *d = from < end ? find_delim(spec, p + from, end - from) : NULL;
    size_t len;

    if (!d) {
        if (scan)
            *scan = end;
        return n >= window ? SB_ETOOBIG : 0;
    }
    len = (size_t)(d - p);
    if (spec->kind == SB_FRAME_LINE && len > 0 && p[len - 1] == '\r')
        len--;
    if (len > max)
        return SB_ETOOBIG;
    msg->data = p;
    msg->len = len;
    return (d - p) + (ssize_t)spec->delim_len;
}

static ssize_t cut_whole(const uint8_t *p, size_t n, size_t len, sb_msg *msg)
{
    if (n < len)
        return 0;
    msg->data = p;
    msg->len = len;
    return (ssize_t)len;
}

static ssize_t cut_one(const sb_frame_spec *spec, size_t max, const uint8_t *p, size_t n,
                       int eof, sb_msg *msg, size_t *scan)
{
    switch (spec->kind) {
    case SB_FRAME_RAW:
        return cut_whole(p, n, n < max ? n : max, msg);
    case SB_FRAME_LINE:
    case SB_FRAME_DELIM:
        return cut_delim(spec, p, n, max, msg, scan);
    case SB_FRAME_FIXED:
        return spec->n > max ? SB_ETOOBIG : cut_whole(p, n, spec->n, msg);
    case SB_FRAME_ASCII:
        return cut_ascii(spec->n, p, n, max, msg);
    case SB_FRAME_LEN16:
        return cut_len(2, p, n, max, msg);
    case SB_FRAME_LEN32:
        return sb__cut_len32(p, n, max, msg);
    case SB_FRAME_LEN64:
        return cut_len(8, p, n, max, msg);
    case SB_FRAME_VARINT:
        return cut_varint(p, n, max, msg);
    case SB_FRAME_TYPED:
        return cut_typed(spec, p, n, max, msg);
    case SB_FRAME_EOF:
        if (n > max)
            return SB_ETOOBIG;
        return eof ? cut_whole(p, n, n, msg) : 0;
    default:
        return SB_EBADSPEC;
    }
}

int sb__frame_state_init(sb_frame_state *st, const sb_frame_spec *spec, int own_info)
{
    memset(st, 0, sizeof(*st));
    if (spec->kind != SB_FRAME_CUSTOM)
        return 0;
    if (spec->cut_state_size > 0) {
        if ((st->cut = sb__calloc(1, spec->cut_state_size)) == NULL)
            return -ENOMEM;
        st->cut_size = spec->cut_state_size;
    }
    if (own_info && spec->cut_info_size > 0) {
        if ((st->info = sb__malloc(spec->cut_info_size)) == NULL) {
            sb_frame_state_free(st);
            return -ENOMEM;
        }
        st->info_owned = 1;
    }
    return 0;
}

int sb_frame_state_init(sb_frame_state *st, const sb_frame_spec *spec)
{
    return sb__frame_state_init(st, spec, 1);
}

void sb_frame_state_reset(sb_frame_state *st)
{
    st->scan = 0;
    if (st->cut)
        memset(st->cut, 0, st->cut_size);
}

void sb_frame_state_free(sb_frame_state *st)
{
    sb__free(st->cut);
    if (st->info_owned)
        sb__free(st->info);
    memset(st, 0, sizeof(*st));
}

ssize_t sb_frame_decode_from(const sb_frame_spec *spec, size_t max_msg, const uint8_t *p,
                             size_t n, int eof, sb_msg *msg, sb_frame_state *st)
{
    size_t max = max_msg ? max_msg : SIZE_MAX;
    size_t *scan = st ? &st->scan : NULL;
    ssize_t r;

    if (spec->kind == SB_FRAME_CUSTOM) {
        if (spec->cut == NULL)
            return SB_EBADSPEC;
        msg->info = st && spec->cut_info_size ? st->info : NULL;
        return spec->cut(spec->cut_ud, st ? st->cut : NULL, p, n, eof, msg);
    }
    if (n == 0)
        return 0;
    msg->type = -1;
    msg->info = NULL;
    r = cut_one(spec, max, p, n, eof, msg, scan);
    if (r != 0 && scan)
        *scan = 0; /* the next message starts afresh */
    if (r == 0 && eof)
        return SB_ETRUNCATED;
    return r;
}

ssize_t sb_frame_decode(const sb_frame_spec *spec, size_t max_msg, const uint8_t *p, size_t n,
                        int eof, sb_msg *msg)
{
    return sb_frame_decode_from(spec, max_msg, p, n, eof, msg, NULL);
}

/* ---- 3. Encoding ------------------------------------------------------ */

static int header_typed(const sb_frame_spec *spec, int type, size_t len, uint8_t *hdr)
{
    if (type < 0 || type > 255 || spec->typed[type] == SB_TYPED_NONE)
        return SB_EBADTYPE;
    if (len != spec->typed[type])
        return SB_ETOOBIG;
    hdr[0] = (uint8_t)type;
    return 1;
}

int sb_frame_header(const sb_frame_spec *spec, int type, size_t len, uint8_t *hdr)
{
    switch (spec->kind) {
    case SB_FRAME_FIXED:
        return len == spec->n ? 0 : SB_ETOOBIG;
    case SB_FRAME_ASCII:
        return sb_ascii_put(hdr, spec->n, len) ? SB_ETOOBIG : (int)spec->n;
    case SB_FRAME_LEN16:
        if (len > UINT16_MAX)
            return SB_ETOOBIG;
        sb_put_u16be(hdr, (uint16_t)len);
        return 2;
    case SB_FRAME_LEN32:
        if (len > UINT32_MAX)
            return SB_ETOOBIG;
        sb_put_u32be(hdr, (uint32_t)len);
        return 4;
    case SB_FRAME_LEN64:
        sb_put_u64be(hdr, len);
        return 8;
    case SB_FRAME_VARINT:
        return (int)sb_varint_put(hdr, len);
    case SB_FRAME_TYPED:
        return header_typed(spec, type, len, hdr);
    default:
        return 0; /* raw, eof, line, delim, custom: nothing before the payload */
    }
}

/* The decoder drops one '\r' before line's '\n', so a payload that ends
 * in '\r' gets "\r\n": the decoder drops the added '\r' and keeps the
 * payload's own. Any other payload gets the bare '\n' that line framing
 * writes. */
int sb_frame_trailer(const sb_frame_spec *spec, const void *p, size_t len, uint8_t *trl)
{
    if (spec->kind != SB_FRAME_LINE && spec->kind != SB_FRAME_DELIM)
        return 0;
    if (spec->kind == SB_FRAME_LINE && len > 0 && ((const uint8_t *)p)[len - 1] == '\r') {
        memcpy(trl, "\r\n", 2);
        return 2;
    }
    memcpy(trl, spec->delim, spec->delim_len);
    return (int)spec->delim_len;
}

/* A delimited payload decodes back to itself exactly when the first
 * delimiter in payload + trailer is the trailer: the payload must not
 * contain it, and its tail must not form it together with the trailer's
 * head (payload "\r\n" before delimiter "\r\n\r\n" would end the message
 * early). Those are the payloads the decoder can cut, so every message it
 * yields can be sent back. For line, whose trailer follows the payload
 * (see sb_frame_trailer), only '\n' is refused. */
int sb_frame_check_payload(const sb_frame_spec *spec, const uint8_t *p, size_t len)
{
    uint8_t tail[2 * SB_DELIM_MAX];
    size_t dl = spec->delim_len, keep;

    if (spec->kind != SB_FRAME_LINE && spec->kind != SB_FRAME_DELIM)
        return 0;
    if (len == 0)
        return 0;
    if (find_delim(spec, p, len))
        return SB_EMALFORMED;
    if (spec->kind == SB_FRAME_LINE)
        return 0;
    keep = len < dl - 1 ? len : dl - 1;
    memcpy(tail, p + len - keep, keep);
    memcpy(tail + keep, spec->delim, dl);
    return find_delim(spec, tail, keep + dl) == tail + keep ? 0 : SB_EMALFORMED;
}

int sb_frame_encode(const sb_frame_spec *spec, int type, const void *p, size_t len, sb_buf *out)
{
    uint8_t hdr[SB_FRAME_HDR_MAX], trl[SB_FRAME_HDR_MAX], *dst;
    int hl, tl, rc;

    rc = sb_frame_check_payload(spec, p, len);
    if (rc)
        return rc;
    hl = sb_frame_header(spec, type, len, hdr);
    if (hl < 0)
        return hl;
    tl = sb_frame_trailer(spec, p, len, trl);
    if (len > SIZE_MAX - (size_t)hl - (size_t)tl)
        return SB_ETOOBIG;
    rc = sb_buf_reserve(out, (size_t)hl + len + (size_t)tl, &dst);
    if (rc)
        return rc;
    if (hl + len + tl == 0)
        return 0;
    memcpy(dst, hdr, (size_t)hl);
    if (len)
        memcpy(dst + hl, p, len);
    memcpy(dst + hl + len, trl, (size_t)tl);
    sb_buf_commit(out, (size_t)hl + len + (size_t)tl);
    return 0;
}

/* ---- 4. sb_decoder ---------------------------------------------------- */

/* The most bytes one unfinished message can occupy: payload bound, the
 * largest header, the largest delimiter and line's '\r'. 0 when unbounded. */
static size_t decoder_bound(const sb_decoder *d)
{
    size_t extra = SB_FRAME_HDR_MAX + SB_DELIM_MAX + 1;

    if (d->max_msg == 0 || d->max_msg > SIZE_MAX - extra)
        return 0;
    return d->max_msg + extra;
}

static const uint8_t *decoder_data(const sb_decoder *d)
{
    return d->in.data ? sb_buf_data(&d->in) : (const uint8_t *)"";
}

void sb_decoder_init(sb_decoder *d, const sb_frame_spec *spec, size_t max_msg)
{
    memset(d, 0, sizeof(*d));
    d->spec = *spec;
    d->max_msg = max_msg;
    /* The buffer itself is unbounded: the bound applies to the unfinished
     * message, enforced in sb_decoder_feed, not to whole messages a caller
     * has fed but not yet taken. */
    sb_buf_init(&d->in, 0);
    /* No room for a cutter's state: every call reports it (sticky). */
    if (sb_frame_state_init(&d->fs, spec) < 0)
        d->error = -ENOMEM;
}

void sb_decoder_free(sb_decoder *d)
{
    sb_buf_free(&d->in);
    sb_frame_state_free(&d->fs);
    d->pending = 0;
}

static void decoder_settle(sb_decoder *d)
{
    sb_buf_consume(&d->in, d->pending);
    d->pending = 0;
}

/* Offset of the first message in the buffer that is not complete, by
 * walking the decoder over it; *r receives the answer there (0 or error). */
static size_t decoder_walk(const sb_decoder *d, ssize_t *r)
{
    const uint8_t *p = decoder_data(d);
    size_t len = sb_buf_len(&d->in), off = 0;
    sb_msg m;

    while ((*r = sb_frame_decode(&d->spec, d->max_msg, p + off, len - off, 0, &m)) > 0)
        off += (size_t)*r;
    return off;
}

/* A chunk that takes the buffer past the bound is accepted when the
 * overflow is made of whole messages (a large read carrying many small
 * messages). What stays unfinished after the walk is at most one message,
 * which the cutters bound; a cutter that reports an error needs no more
 * than `bound` bytes to report it again, so the rest is dropped. */
static int decoder_feed_slow(sb_decoder *d, const void *p, size_t n, size_t bound)
{
    size_t off, tail;
    ssize_t r;
    int rc = sb_buf_append(&d->in, p, n);

    if (rc)
        return rc;
    off = decoder_walk(d, &r);
    tail = sb_buf_len(&d->in) - off;
    if (tail <= bound)
        return 0;
    if (r < 0) {
        d->in.wpos -= tail - bound;
        return 0;
    }
    /* Only a custom cutter can leave an unfinished message this large. */
    d->in.wpos -= n;
    d->error = SB_ETOOBIG;
    return SB_ETOOBIG;
}

int sb_decoder_feed(sb_decoder *d, const void *p, size_t n)
{
    size_t bound = decoder_bound(d), len;

    if (d->error)
        return d->error;
    decoder_settle(d);
    if (n == 0)
        return 0;
    len = sb_buf_len(&d->in);
    if (bound == 0 || (len <= bound && n <= bound - len))
        return sb_buf_append(&d->in, p, n);
    return decoder_feed_slow(d, p, n, bound);
}

void sb_decoder_eof(sb_decoder *d)
{
    d->eof = 1;
}

int sb_decoder_next(sb_decoder *d, sb_msg *msg)
{
    ssize_t r;

    if (d->error)
        return d->error;
    decoder_settle(d);
    r = sb_frame_decode_from(&d->spec, d->max_msg, decoder_data(d), sb_buf_len(&d->in), d->eof, msg,
                             &d->fs);
    if (r > 0) {
        d->pending = (size_t)r;
        return 1;
    }
    if (r < 0)
        d->error = (int)r;
    return (int)r;
}
