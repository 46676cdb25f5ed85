/* bench_http: the HTTP side of `switchboard bench http://HOST:PORT/PATH`.
 *
 * The one request every connection repeats, and a response cutter:
 * an incremental reader that takes each response off the front of a
 * connection's input as its bytes come, head first (the library's
 * sb_http_parse_response), then the body by Content-Length or chunked
 * coding (sb_http_chunked_decode), counting body bytes without keeping them.
 * No I/O and no allocation here: bench.c owns the sockets and buffers.
 */
#ifndef SB_CLI_BENCH_HTTP_H
#define SB_CLI_BENCH_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "switchboard.h"
#include "url.h"

/* The request every connection repeats for the URL u (cli/url.h): "GET
 * TARGET HTTP/1.1" with Host, keep-alive by default, "Connection: close"
 * when close is set. Returns its length written into out[0..cap), or -1 if
 * it does not fit. */
int bench_http_request(const cli_url *u, int close, char *out, size_t cap);

/* One connection's response in progress. Zero-filled is ready for a head. */
struct hcut {
    int state;              /* internal: head, length body, chunked body */
    uint64_t left;          /* Content-Length bytes still to come */
    sb_http_chunked ch;     /* the chunked decoder's state */
    int status;             /* once a response is whole: its status */
    int keep_alive;         /* ... whether the connection stays open */
    uint64_t body;          /* ... its body length (decoded) */
};

/* Feed buf[0..len) (the unconsumed input). *used is set to the bytes taken
 * off the front; the caller drops them. Returns 1 when a whole final
 * response has been read (status, keep_alive and body are set; call again
 * for the next one), 0 when more bytes are needed (everything usable was
 * taken), or a negative code for a malformed response (SB_EHTTP and the
 * sb_http_* parse errors; a response without a length, which cannot share
 * a connection, is SB_EHTTP). Chunked bodies are decoded in place, so buf
 * is modified. Interim 1xx heads are skipped; a head over 16 KiB is
 * SB_HTTP_EHEAD, so the caller's buffer needs no more than that. */
int hcut_feed(struct hcut *h, uint8_t *buf, size_t len, size_t *used);

#endif
