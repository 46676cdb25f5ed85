/** @file
 * http: an HTTP/1.1 message parser in the style of picohttpparser, and the
 * small pieces of HTTP a static file server and a fetching client share.
 *
 * The parsers are pure functions over bytes: no I/O, no allocation, no
 * state between calls. They look at the bytes received so far and either
 * parse one whole message head (> 0: its length), answer
 * SB_HTTP_INCOMPLETE (0: call again with more bytes appended), or report an
 * error (< 0) that names the status a server should answer with
 * (sb_http_error_status). That is the frame decoders' convention too (see
 * frame.h): bytes consumed, 0 for "incomplete", negative for an error. Parsed strings are pointer +
 * length into the caller's bytes (zero-copy) and are valid as long as those
 * bytes are; headers go into an array the caller provides.
 *
 * The grammar is RFC 9112, read strictly, because a lenient parser in front
 * of another parser is how requests get smuggled:
 *   - exactly one SP between the parts of the start line;
 *   - lines end with CRLF (responses also accept a bare LF; a bare CR is an
 *     error everywhere);
 *   - no obs-fold (a header line starting with SP or HTAB), no empty header
 *     name, no whitespace between a header name and its colon;
 *   - no control characters other than HTAB in header values, none at all
 *     in the request target;
 *   - the version is "HTTP/" DIGIT "." DIGIT; a major other than 1 is
 *     SB_HTTP_EVERSION (505).
 * Empty lines before a request line are skipped (RFC 9112 section 2.2).
 *
 * Bounds are the caller's: the request line (414 past it), the whole head
 * (431 past it) and the header count (the array size; 431 past it).
 */
#ifndef SWITCHBOARD_HTTP_H
#define SWITCHBOARD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** "Need more bytes": not an error, and 0 like the frame decoders' answer,
 * so that `rc < 0` is always an error and `rc > 0` always a length. */
#define SB_HTTP_INCOMPLETE 0
/** Errors of the parsers besides SB_EHTTP (a malformed message: 400). They
 * lie below the codes of error.h (SB_ERR_BASE - 1001 and down) so they
 * never collide with them; sb_strerror names them. */
#define SB_HTTP_ELINE (SB_ERR_BASE - 1001)      /**< request line over its limit: 414 */
#define SB_HTTP_EHEAD (SB_ERR_BASE - 1002)      /**< head or header count over limit: 431 */
#define SB_HTTP_EVERSION (SB_ERR_BASE - 1003)   /**< HTTP major version not 1: 505 */
#define SB_HTTP_EBODY (SB_ERR_BASE - 1004)      /**< body over its limit: 413 */
#define SB_HTTP_EUNSAT (SB_ERR_BASE - 1005)     /**< range not satisfiable: 416 */

/** One header field: pointers into the parsed buffer, not NUL terminated. */
typedef struct sb_http_header {
    const char *name;   /**< field name as received (compare case-insensitively) */
    size_t name_len;    /**< bytes in name */
    const char *value;  /**< field value without leading/trailing OWS */
    size_t value_len;   /**< bytes in value */
} sb_http_header;

/** Bounds on a head (NULL or zero fields: the defaults). */
typedef struct sb_http_limits {
    size_t max_line; /**< request line including CRLF (0: 8 KiB) */
    size_t max_head; /**< start line + headers + final CRLF (0: 16 KiB) */
} sb_http_limits;

/** A parsed request line: pointers into the parsed buffer. */
typedef struct sb_http_request {
    const char *method;   /**< token, e.g. "GET" */
    size_t method_len;    /**< bytes in method */
    const char *target;   /**< request-target as received, e.g. "/a%20b?q" */
    size_t target_len;    /**< bytes in target */
    int minor_version;    /**< the x of HTTP/1.x */
    size_t num_headers;   /**< headers stored in the caller's array */
} sb_http_request;

/** A parsed status line: reason points into the parsed buffer. */
typedef struct sb_http_response {
    int minor_version;    /**< the x of HTTP/1.x */
    int status;           /**< 100..999 */
    const char *reason;   /**< may be empty */
    size_t reason_len;    /**< bytes in reason */
    size_t num_headers;   /**< headers stored in the caller's array */
} sb_http_response;

/** Parse a request head from buf[0..len). headers[0..max_headers) receives
 * the header fields. lim may be NULL (defaults). Returns the length of the
 * head including its final CRLF (> 0), SB_HTTP_INCOMPLETE, or an error:
 * SB_EHTTP, SB_HTTP_ELINE, SB_HTTP_EHEAD, SB_HTTP_EVERSION. A prefix of a
 * valid head is always SB_HTTP_INCOMPLETE. req and headers are undefined
 * unless the result is > 0. */
int sb_http_parse_request(const char *buf, size_t len, sb_http_request *req,
                          sb_http_header *headers, size_t max_headers,
                          const sb_http_limits *lim);

/** Parse a response head (status line + headers). Same contract; the status
 * line is bounded by max_line and a violation is SB_EHTTP. */
int sb_http_parse_response(const char *buf, size_t len, sb_http_response *res,
                           sb_http_header *headers, size_t max_headers,
                           const sb_http_limits *lim);

/** @{ */
/** The status a server answers an error above with (400 for anything not
 * listed), and text for any code: the same as sb_strerror, kept for
 * callers that used it before sb_strerror knew these codes. */
int sb_http_error_status(int err);
const char *sb_http_strerror(int err);
/** @} */
/** Reason phrase for a status ("Not Found"), "Unknown" if not known. */
const char *sb_http_reason(int status);

/** Case-insensitive comparison of a field name with a NUL-terminated
 * lowercase name. Returns 1 if equal. */
int sb_http_name_is(const sb_http_header *h, const char *lower);
/** Index of the first header at or after `from` named `lower`, or -1. */
int sb_http_find(const sb_http_header *h, size_t n, size_t from, const char *lower);

/** Is v[0..len) a valid Host field value, or the authority of an
 * absolute-form target: uri-host [ ":" port ] (RFC 9112 section 3.2, RFC
 * 3986 section 3.2.2)? uri-host is an IP-literal ("[" IPv6 or IPvFuture
 * "]"), or a non-empty reg-name of unreserved, pct-encoded and sub-delims
 * characters (an IPv4 address is one of those); port is digits. No
 * userinfo, no whitespace, no '/'. Returns 1 if valid, 0 if not. */
int sb_http_valid_host(const char *v, size_t len);

/** How the body of a message is delimited, from its headers (RFC 9112
 * section 6.3), with the checks that stop request smuggling.
 *
 * Content-Length is 1*DIGIT and nothing else ("+5", "0x5", " ", "" and a
 * value over 2^63 - 1 are errors). Several Content-Length fields are
 * accepted only if they carry the same value (RFC 9110 section 8.6 lets a
 * recipient do that); differing values, or a comma list inside one field,
 * are errors. Transfer-Encoding together with Content-Length is an error.
 * For a request, Transfer-Encoding must be exactly one "chunked" (any other
 * coding, or chunked twice, is an error); for a response, a final coding
 * other than chunked means "read until close". */
typedef struct sb_http_framing {
    int has_length;        /**< Content-Length present */
    uint64_t length;       /**< its value */
    int chunked;           /**< Transfer-Encoding ends in chunked */
    int has_te;            /**< any Transfer-Encoding field present */
    int until_close;       /**< response: body runs until the connection closes */
    int keep_alive;        /**< the connection persists after this message */
} sb_http_framing;

/** Returns 0 with *f filled, or SB_EHTTP. minor_version gives the default of
 * keep_alive (HTTP/1.1: on unless "Connection: close"; HTTP/1.0: off unless
 * "Connection: keep-alive"). is_request selects the request rules above. */
int sb_http_framing_get(const sb_http_header *h, size_t n, int minor_version,
                        int is_request, sb_http_framing *f);

/** Strict Content-Length value: 1*DIGIT, at most 2^63 - 1. 0 or SB_EHTTP. */
int sb_http_parse_length(const char *s, size_t len, uint64_t *out);

/** Incremental chunked-body decoder, in place (the shape of picohttpparser's
 * phr_decode_chunked). A zero-filled sb_http_chunked is a fresh decoder.
 * Call with the bytes received so far, buf[0..*len): the decoded data is
 * moved to the front and *len becomes its length. Returns
 * SB_HTTP_INCOMPLETE (0) while the body goes on: every input byte was
 * consumed (chunk-size lines and trailers are remembered in *d). Once the
 * last chunk and the trailer section are through, returns the number r > 0
 * of input bytes that the body took in this call; the n - r bytes after it
 * (n the input length; they belong to the next message) are moved to
 * follow the decoded data, at buf + *len. Errors: SB_EHTTP (bad size line, missing CRLF after a chunk),
 * SB_EOVERFLOW (chunk size over 2^63 - 1), SB_HTTP_EHEAD (chunk extension
 * or trailers over 8 KiB). */
typedef struct sb_http_chunked {
    uint64_t left;      /**< data bytes left in the current chunk */
    size_t extra;       /**< bytes of extensions / trailers seen, bounded */
    int state;          /**< internal */
    int digits;         /**< hex digits of the current size */
} sb_http_chunked;

/** Decode buf[0..*len) in place with d, as sb_http_chunked describes. */
ssize_t sb_http_chunked_decode(sb_http_chunked *d, char *buf, size_t *len);

/** The Range header of a GET for a representation of `size` bytes, as RFC
 * 9110 section 14 reads it, limited to what a simple server supports:
 *   1   one satisfiable range "bytes=a-b", "a-" or "-n": *first, *last set
 *       (inclusive, clamped to size - 1; a suffix longer than the
 *       representation selects all of it)
 *   0   ignore the header and send the whole representation (unit not
 *       "bytes", a syntax error, b < a, or several ranges), as RFC 9110
 *       section 14.2 allows
 *   SB_HTTP_EUNSAT  a single range with no byte inside the representation
 *       (a >= size, "-0", or any range of an empty one)
 * Positions of any length are accepted: one past 2^64 - 1 saturates there,
 * so no peer's number wraps into a small one. */
int sb_http_parse_range(const char *v, size_t len, uint64_t size,
                        uint64_t *first, uint64_t *last);

/** Every range of a Range header, for a server that answers several with
 * multipart/byteranges (RFC 9110 section 14.6). Fills out[0..max):
 *   n > 0  the satisfiable ranges, in the order given (the unsatisfiable
 *          ones left out), each clamped as above
 *   0      ignore the header: unit not "bytes", a syntax error or b < a in
 *          any range, more than max ranges, or ranges adding up to more
 *          than the representation (they overlap; RFC 9110 section 14.2
 *          lets a server ignore those)
 *   SB_HTTP_EUNSAT  no range has a byte inside the representation
 * Empty list elements are skipped. sb_http_parse_range is this with max 1. */
typedef struct sb_http_range {
    uint64_t first; /**< the range's first byte */
    uint64_t last;  /**< its last byte (inclusive) */
} sb_http_range;

/** Every range of a Range header: see sb_http_range above. */
int sb_http_parse_ranges(const char *v, size_t len, uint64_t size, sb_http_range *out,
                         size_t max);

/** IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters and a NUL,
 * so out must hold SB_HTTP_DATE_LEN + 1 bytes. */
#define SB_HTTP_DATE_LEN 29
/** Format t as an IMF-fixdate into out (SB_HTTP_DATE_LEN + 1 bytes). */
void sb_http_format_date(time_t t, char *out);
/** Parse an HTTP-date in any of the three forms of RFC 9110 section 5.6.7:
 * IMF-fixdate (the only one we generate), the obsolete RFC 850 form
 * "Sunday, 06-Nov-94 08:49:37 GMT" (a two-digit year more than 50 years
 * ahead of the clock is the century before) and asctime's
 * "Sun Nov  6 08:49:37 1994". Returns 0 with *t, or SB_EHTTP. */
int sb_http_parse_date(const char *s, size_t len, time_t *t);

/** Percent-decode src[0..len) into out (which may be src: decoding never
 * grows). Returns the decoded length, or SB_EHTTP for a bad escape or one
 * that decodes to NUL. Nothing else is interpreted ('+' stays '+'). */
ssize_t sb_http_percent_decode(const char *src, size_t len, char *out);

#ifdef __cplusplus
}
#endif

#endif
