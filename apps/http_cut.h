/* http_cut: where each request of an HTTP/1.1 connection begins and ends -
 * the static file server's framing, a cutter for SB_FRAME_CUSTOM - and
 * what it learned about the request on the way, for the handler.
 *
 * Messages: a request is one message, its head plus its body (which GET
 * and HEAD do not use; the handler drops it), so the handler answers once
 * the whole request is in. One exception: a request that expects
 * "100-continue" (RFC 9110 section 10.1.1) and whose body has not all
 * arrived is handed over at once with the body bytes that are there, so
 * the handler can send 100 Continue; the rest of its body follows as
 * HTTP_DROP messages, which the handler ignores. A request that is refused
 * takes everything received (the connection is closed after the answer),
 * except a body over the limit, which is not waited for.
 *
 * Work: the cutter keeps per-connection state (sb_frame_spec's
 * cut_state_size), so bytes are looked at once however the head is split
 * across reads. Until the head's end (an empty line) has arrived, only the
 * new bytes are searched for it, as picohttpparser's last_len does; the
 * parser runs when the request line ends (so a garbled one is refused
 * early), when the head ends, when a byte that no head may hold arrives
 * (a control character: a TLS hello, say), when a limit is reached and at
 * end of stream - a few times per request, not once per read. While a body
 * arrives, a call costs O(1). The state is the connection's and small (a
 * waiting keep-alive connection holds only it); the parsed request, with
 * its header array, goes into the block the decoder's caller lends for
 * each message (msg->info), which the handler reads during on_message.
 */
#ifndef SB_APPS_HTTP_CUT_H
#define SB_APPS_HTTP_CUT_H

#include <stdint.h>
#include <sys/types.h>

#include "switchboard.h"

#define HTTP_LINE_LIMIT (8 * 1024)   /* request line, CRLF included: 414 past it */
#define HTTP_HEAD_LIMIT (16 * 1024)  /* whole head: 431 past it */
#define HTTP_MAX_HEADERS 100         /* header fields: 431 past it */
#define HTTP_BODY_LIMIT (64 * 1024)  /* body read and dropped: 413 past it */

enum { HTTP_REQUEST, HTTP_DROP };

/* One request as the cutter found it. Pointers are into the message's
 * bytes and valid as long as they are. */
typedef struct http_req {
    int part;                  /* HTTP_REQUEST, or HTTP_DROP: body bytes of one answered */
    int verdict;               /* 0, or why the request is refused (SB_E*) */
    int expect_continue;       /* HTTP/1.1 with "Expect: 100-continue" */
    uint64_t body_rest;        /* body bytes not in this message: HTTP_DROP follows */
    size_t head_len;           /* bytes of the head, when it parsed */
    sb_http_request req;
    sb_http_framing fr;
    sb_http_header h[HTTP_MAX_HEADERS];
} http_req;

/* The per-connection state: zero-filled is a fresh connection. */
typedef struct http_cut_state {
    size_t searched;           /* bytes of the unfinished head searched for its end */
    size_t need;               /* head + body of a request whose body is arriving, or 0 */
    uint64_t drop;             /* body bytes of an answered request still to come */
    int begun;                 /* a byte other than CR/LF has come (empty lines skipped) */
    int line_seen;             /* the request line has ended */
    uint64_t parses;           /* parser runs and bytes searched on this connection: */
    uint64_t scanned;          /* the work done, which tests bound */
} http_cut_state;

/* The cutter (sb_frame_cut_fn), for a spec whose cut_state_size is
 * sizeof(http_cut_state) and cut_info_size sizeof(http_req): msg->info
 * gets the request it cut. state NULL: the request is found from the bytes
 * alone, msg->info is NULL, and a body is always waited for. */
ssize_t http_cut(void *ud, void *state, const uint8_t *p, size_t n, int eof, sb_msg *msg);

/* Parse the request at the front of p[0..n) into *r. Returns the length of
 * the message that holds it, or 0 when more bytes are needed (r->head_len
 * is then set if the head is in and the body is not). partial: a request
 * expecting 100-continue may be cut before its body is in (the caller
 * drops r->body_rest bytes after it). */
size_t http_examine(http_req *r, const uint8_t *p, size_t n, int partial);

#endif
