/** @file
 * stream: the HOWTO's "file-like beast" - buffered reads and writes over a
 * blocking socket, with an explicit flush.
 *
 * Writes collect in an output buffer until sb_stream_flush (or until the
 * buffer fills). The classic bug is to write a request and then read for the
 * reply with the request still sitting in the buffer: the reader waits
 * forever. sb_stream_request() is the request/reply call that cannot do
 * that: it always flushes before it reads. Every read and write honours the
 * stream's timeout so a dead peer ends the call with -ETIMEDOUT.
 */
#ifndef SWITCHBOARD_STREAM_H
#define SWITCHBOARD_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A buffered blocking stream over a socket (opaque). */
typedef struct sb_stream sb_stream;

/** Wrap fd (not owned: sb_stream_close does not close it). spec/max_msg
 * configure message framing for the _msg calls. timeout_ms <= 0: none.
 * Returns 0 with *out set, or -ENOMEM. */
int sb_stream_open(sb_stream **out, int fd, const sb_frame_spec *spec, size_t max_msg, int timeout_ms);
/** Free s without flushing (flush first) and without closing its fd. */
void sb_stream_close(sb_stream *s);

struct sb_tls_session;
/** Move the stream's bytes through TLS session t (tls.h), made on the same
 * fd by sb_tls_connect, from now on. t is not owned: free it after
 * sb_stream_close. A stream read to its end then reports SB_ETLSTRUNC if
 * the peer left without close_notify. NULL: back to the plain socket. */
void sb_stream_set_tls(sb_stream *s, struct sb_tls_session *t);

/** Buffered write: copies p into the output buffer, sending when it fills.
 * Returns n or a negative error. */
ssize_t sb_stream_write(sb_stream *s, const void *p, size_t n);
/** Send everything buffered. Returns 0 or a negative error. */
int sb_stream_flush(sb_stream *s);
/** Read up to n bytes (buffered data first). Returns the count, 0 at EOF. */
ssize_t sb_stream_read(sb_stream *s, void *p, size_t n);

/** Frame and buffer one message (not flushed). */
int sb_stream_write_msg(sb_stream *s, int type, const void *p, size_t n);
/** Read the next whole message. *msg is valid until the next stream call.
 * Returns 1, 0 on clean EOF between messages, or an error
 * (SB_ETRUNCATED, SB_ETOOBIG, -ETIMEDOUT, ...). */
int sb_stream_read_msg(sb_stream *s, sb_msg *msg);
/** write_msg + flush + read_msg: the request/reply exchange. */
int sb_stream_request(sb_stream *s, int type, const void *p, size_t n, sb_msg *reply);

#ifdef __cplusplus
}
#endif

#endif
