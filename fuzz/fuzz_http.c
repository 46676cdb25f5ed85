/* fuzz_http: libFuzzer target for the HTTP parser (src/http.c).
 *
 * The first input byte chooses what is fuzzed and with which limits; the
 * rest is the bytes:
 *
 *   request / response heads: the whole input is parsed, then its prefixes
 *     are re-parsed (every prefix up to PREFIX_ALL bytes, a spread of them
 *     beyond). Each prefix must answer SB_HTTP_INCOMPLETE or exactly the
 *     whole input's answer - the same code, and for a parsed head the same
 *     fields pointing at the same bytes - and once a prefix has answered,
 *     every longer one answers the same. That is the promise the server's
 *     incremental use relies on: more bytes never change a verdict. A parsed
 *     head then goes through sb_http_framing_get (Transfer-Encoding and
 *     Content-Length never both accepted) and the header lookups.
 *   chunked bodies: sb_http_chunked_decode over the whole input, and again
 *     fed in random splits (the decoder's own incremental form): the same
 *     decoded bytes, the same end, the same bytes left over, or the same
 *     error.
 *   the small parsers: Range (the ranges lie inside the representation and
 *     add up to no more than it),
 *     IMF-fixdate (a parsed date formats to text that parses back to it,
 *     the same text unless the weekday was wrong or the date normalized),
 *     Content-Length (digits only, value round-trips), percent-decoding
 *     (never grows, no escape yields NUL).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/error.h"
#include "switchboard/http.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c))                                                                    \
            abort();                                                                 \
    } while (0)

#define MAX_HEADERS 64
#define PREFIX_ALL 2048 /* every prefix up to here; a spread of them beyond */

static const sb_http_limits limits[] = {
    {0, 0}, {16, 64}, {64, 256}, {8192, 16384}, {1, 1}, {40, 40},
};
static const size_t header_caps[] = {MAX_HEADERS, 0, 1, 4};

/* ---- heads ---- */

typedef struct head {
    int rc;
    sb_http_request req;
    sb_http_response res;
    sb_http_header h[MAX_HEADERS];
} head;

static void parse_head(int is_req, const char *p, size_t n, size_t cap,
                       const sb_http_limits *lim, head *out)
{
    if (is_req)
        out->rc = sb_http_parse_request(p, n, &out->req, out->h, cap, lim);
    else
        out->rc = sb_http_parse_response(p, n, &out->res, out->h, cap, lim);
}

static size_t num_headers(int is_req, const head *h)
{
    return is_req ? h->req.num_headers : h->res.num_headers;
}

static void same_head(int is_req, const head *a, const head *b)
{
    CHECK(a->rc == b->rc);
    if (a->rc <= 0)
        return;
    if (is_req) {
        CHECK(a->req.method == b->req.method && a->req.method_len == b->req.method_len);
        CHECK(a->req.target == b->req.target && a->req.target_len == b->req.target_len);
        CHECK(a->req.minor_version == b->req.minor_version);
    } else {
        CHECK(a->res.status == b->res.status && a->res.minor_version == b->res.minor_version);
        CHECK(a->res.reason == b->res.reason && a->res.reason_len == b->res.reason_len);
    }
    CHECK(num_headers(is_req, a) == num_headers(is_req, b));
    for (size_t i = 0; i < num_headers(is_req, a); i++) {
        CHECK(a->h[i].name == b->h[i].name && a->h[i].name_len == b->h[i].name_len);
        CHECK(a->h[i].value == b->h[i].value && a->h[i].value_len == b->h[i].value_len);
    }
}

/* Fields of a parsed head lie inside the head. */
static void head_sane(int is_req, const char *p, const head *h, size_t cap)
{
    size_t n = (size_t)h->rc;

    CHECK(num_headers(is_req, h) <= cap);
    if (is_req) {
        CHECK(h->req.method >= p && h->req.method + h->req.method_len <= p + n);
        CHECK(h->req.method_len > 0);
        CHECK(h->req.target >= p && h->req.target + h->req.target_len <= p + n);
        CHECK(h->req.minor_version >= 0 && h->req.minor_version <= 9);
    } else {
        CHECK(h->res.status >= 100 && h->res.status <= 999);
        CHECK(h->res.reason_len == 0 ||
              (h->res.reason >= p && h->res.reason + h->res.reason_len <= p + n));
    }
    for (size_t i = 0; i < num_headers(is_req, h); i++) {
        CHECK(h->h[i].name_len > 0);
        CHECK(h->h[i].name >= p && h->h[i].name + h->h[i].name_len <= p + n);
        CHECK(h->h[i].value_len == 0 ||
              (h->h[i].value >= p && h->h[i].value + h->h[i].value_len <= p + n));
    }
}

static void framing_sane(int is_req, const head *h)
{
    sb_http_framing f;
    int minor = is_req ? h->req.minor_version : h->res.minor_version;
    size_t n = num_headers(is_req, h);

    if (sb_http_framing_get(h->h, n, minor, is_req, &f) == 0) {
        CHECK(!(f.has_length && f.has_te));
        CHECK(!f.chunked || f.has_te);
        CHECK(!(is_req && f.until_close));
    }
    int i = sb_http_find(h->h, n, 0, "host");
    CHECK(i < 0 || ((size_t)i < n && sb_http_name_is(&h->h[i], "host")));
    CHECK(sb_http_error_status(h->rc) >= 100);
}

/* The prefix lengths to re-parse: all up to PREFIX_ALL, then a spread. */
static size_t next_prefix(size_t k, size_t n)
{
    if (k < PREFIX_ALL)
        return k + 1;
    size_t step = (n - PREFIX_ALL) / 64 + 1;
    return k + step < n ? k + step : n;
}

static void fuzz_head(int is_req, const char *p, size_t n, uint8_t sel)
{
    const sb_http_limits *lim = &limits[(sel >> 2) % (sizeof limits / sizeof limits[0])];
    size_t cap = header_caps[(sel >> 5) % (sizeof header_caps / sizeof header_caps[0])];
    static head whole, part;
    int answered = 0;

    parse_head(is_req, p, n, cap, sel & 0x80 ? NULL : lim, &whole);
    CHECK(whole.rc > 0 || whole.rc == SB_HTTP_INCOMPLETE || whole.rc == SB_EHTTP ||
          whole.rc == SB_HTTP_ELINE || whole.rc == SB_HTTP_EHEAD || whole.rc == SB_HTTP_EVERSION);
    if (whole.rc > 0) {
        CHECK((size_t)whole.rc <= n);
        head_sane(is_req, p, &whole, cap);
        framing_sane(is_req, &whole);
    }
    for (size_t k = 0; k < n; k = next_prefix(k, n)) {
        parse_head(is_req, p, k, cap, sel & 0x80 ? NULL : lim, &part);
        if (part.rc == SB_HTTP_INCOMPLETE) {
            CHECK(!answered); /* an answer, once given, stays */
            continue;
        }
        answered = 1;
        same_head(is_req, &whole, &part);
    }
}

/* ---- chunked bodies ---- */

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s ? *s : 1;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void fuzz_chunked(const uint8_t *p, size_t n, uint8_t sel)
{
    sb_http_chunked d;
    char *whole = malloc(n + 1), *piece = malloc(n + 1), *out = malloc(n + 1);
    size_t wlen = n, olen = 0, off = 0;
    ssize_t wrc, rc = SB_HTTP_INCOMPLETE;
    uint32_t seed = sel * 2654435761u + (uint32_t)n;

    CHECK(whole && piece && out);
    memcpy(whole, p, n);
    memset(&d, 0, sizeof d);
    wrc = sb_http_chunked_decode(&d, whole, &wlen);
    CHECK(wrc >= 0 || wrc == SB_EHTTP || wrc == SB_EOVERFLOW || wrc == SB_HTTP_EHEAD);
    if (wrc < 0)
        goto split; /* the decoded bytes before an error are not specified */
    CHECK(wlen <= n);
    if (wrc > 0) {
        /* Done: the n - wrc bytes after the body follow the decoded data. */
        size_t rest = n - (size_t)wrc;
        CHECK((size_t)wrc <= n && wlen + rest <= n);
        CHECK(memcmp(whole + wlen, p + (size_t)wrc, rest) == 0);
    }
split:
    memset(&d, 0, sizeof d);
    while (off < n) {
        size_t k = xorshift(&seed) % 8 == 0 ? xorshift(&seed) % (n - off) + 1
                                             : xorshift(&seed) % 4 + 1;
        if (k > n - off)
            k = n - off;
        size_t len = k;
        memcpy(piece, p + off, k);
        off += k;
        rc = sb_http_chunked_decode(&d, piece, &len);
        if (rc < 0)
            break;
        CHECK(len <= k);
        memcpy(out + olen, piece, len);
        olen += len;
        if (rc > 0) {
            /* Done: this piece's tail after the body follows the data. */
            CHECK((size_t)rc <= k && len + (k - (size_t)rc) <= k);
            CHECK(memcmp(piece + len, p + off - k + (size_t)rc, k - (size_t)rc) == 0);
            rc += (ssize_t)(off - k);   /* bytes of the whole input the body took */
            break;
        }
    }
    CHECK(rc == wrc);
    if (wrc >= 0) {
        CHECK(olen == wlen);
        CHECK(memcmp(out, whole, wlen) == 0);
    }
    free(whole);
    free(piece);
    free(out);
}

/* ---- the small parsers ---- */

static void fuzz_small(const char *p, size_t n, uint8_t sel)
{
    uint64_t first, last, size = (uint64_t)sel * 977u + (sel & 1 ? 0 : UINT64_C(1) << 40);
    int r = sb_http_parse_range(p, n, size, &first, &last);
    time_t t;
    uint64_t v;
    char *dec = malloc(n + 1);

    CHECK(r == 0 || r == 1 || r == SB_HTTP_EUNSAT);
    if (r == 1)
        CHECK(first <= last && last < size);
    /* Several ranges: each inside the representation, together no more
     * than it, and a single range answered as sb_http_parse_range does. */
    sb_http_range rs[8];
    uint64_t total = 0;
    int k = sb_http_parse_ranges(p, n, size, rs, 8);
    CHECK((k >= 0 && k <= 8) || k == SB_HTTP_EUNSAT);
    for (int i = 0; i < k; i++) {
        CHECK(rs[i].first <= rs[i].last && rs[i].last < size);
        total += rs[i].last - rs[i].first + 1;
        CHECK(total <= size);
    }
    if (r == 1)
        CHECK(k == 1 && rs[0].first == first && rs[0].last == last);

    if (sb_http_parse_date(p, n, &t) == 0) {
        char again[SB_HTTP_DATE_LEN + 1];
        time_t t2;
        /* The weekday is not checked, and 31 Feb or second 60 normalize,
         * so the text may change - once: what we format parses back. */
        CHECK(n == SB_HTTP_DATE_LEN);
        sb_http_format_date(t, again);
        CHECK(sb_http_parse_date(again, SB_HTTP_DATE_LEN, &t2) == 0 && t2 == t);
        CHECK(memcmp(again + 5, p + 5, n - 5) == 0 || memcmp(p + 23, "60", 2) == 0 ||
              memcmp(p + 5, "28", 2) > 0);
    }

    if (sb_http_parse_length(p, n, &v) == 0) {
        char digits[32];
        size_t i = 0;
        CHECK(n > 0 && v <= (uint64_t)INT64_MAX);
        while (i + 1 < n && p[i] == '0')
            i++; /* leading zeros */
        snprintf(digits, sizeof digits, "%" PRIu64, v);
        CHECK(strlen(digits) == n - i && memcmp(digits, p + i, n - i) == 0);
    }

    CHECK(dec != NULL);
    ssize_t m = sb_http_percent_decode(p, n, dec);
    CHECK(m == SB_EHTTP || (m >= 0 && (size_t)m <= n));
    if (m > 0 && memchr(p, 0, n) == NULL)
        CHECK(memchr(dec, 0, (size_t)m) == NULL); /* no escape decodes to NUL */
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;

    switch (sel & 3) {
    case 0:
        fuzz_head(1, (const char *)p, n, sel);
        break;
    case 1:
        fuzz_head(0, (const char *)p, n, sel);
        break;
    case 2:
        fuzz_chunked(p, n, sel);
        break;
    default:
        fuzz_small((const char *)p, n, sel);
        break;
    }
    return 0;
}
