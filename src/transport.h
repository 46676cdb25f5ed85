/* transport: how a connection moves its bytes.
 *
 * conn never calls recv/sendmsg/sendfile/shutdown(SHUT_WR) itself; it goes
 * through one of these, chosen when the connection is opened. Every socket
 * conn drives is non-blocking (the blocking models wait in poll), so a
 * transport call never sleeps. In the threads model writes may come from
 * any thread, one at a time under the connection's lock, while the owner
 * reads: a transport with shared state for both directions (TLS) must
 * send foreign writes through the owner instead. The plain
 * transport is the socket itself. A TLS transport (OpenSSL's SSL_read /
 * SSL_write over the same fd) fits the same five calls: its read and
 * writev report EAGAIN when the TLS engine needs the socket readable or
 * writable - the event driver already retries on readiness - and it sets
 * sendfile to NULL, for which conn reads the file range itself and writes
 * it through writev. `state` is the transport's per-connection data (the
 * SSL object), owned by the connection and released with free.
 *
 * Every call keeps libc's convention: a count, or -1 with errno set; a
 * transport's own failures (a TLS alert, a certificate that did not
 * verify) set errno to the negation of an SB_E* code, so the caller's
 * usual -errno gives the library code.
 *
 * The TLS transport (tls.c) keeps every SSL call on the owner thread: its
 * writev refuses foreign writes (dontwait set: only a foreign thread asks
 * for that) with EAGAIN, and conn then leaves the bytes queued and wakes
 * the owner, which writes them.
 */
#ifndef SB_TRANSPORT_H
#define SB_TRANSPORT_H

#include <sys/types.h>
#include <sys/uio.h>

typedef struct sb__transport {
    const char *name;
    /* Up to n bytes into p: the count, 0 at the peer's end, -1/errno.
     * A count short of n (or EAGAIN) must mean nothing more is readable
     * now, as it does for a stream socket: on epoll the connection is
     * edge-triggered and reads again only after a full read or a new
     * edge. A transport that holds bytes of its own (TLS: decrypted
     * records, SSL_pending) fills p from them before it returns short. */
    ssize_t (*read)(void *state, int fd, void *p, size_t n, int dontwait);
    /* Gathered write of up to cnt buffers: bytes written, -1/errno. */
    ssize_t (*writev)(void *state, int fd, const struct iovec *iov, int cnt, int dontwait);
    /* n bytes of file from *off (advanced); NULL if not possible. */
    ssize_t (*sendfile)(void *state, int fd, int file, off_t *off, size_t n);
    /* Our side is done sending (TCP: FIN; TLS: close_notify then FIN). */
    int (*shutdown)(void *state, int fd);
    /* Release state (NULL for the plain transport). */
    void (*free)(void *state);
    /* The rest is NULL for the plain transport. */
    /* What the transport itself waits for, each side on its own: in
     * SB_READABLE / SB_WRITABLE, what its read path waits for (a TLS read
     * that must first write, a handshake to start, the next record),
     * which the driver honours only while it wants to read - a stale
     * wait of a read nobody will make would wake the driver for bytes it
     * leaves in the socket, over and over; SB__TP_NOWRITE when its write
     * path waits for the socket to be readable instead of writable
     * (honoured only while output is queued); SB__TP_HELD when it holds
     * bytes (or an end) to read that no poll of the socket will report.
     * When the socket reports what one side waits for, the driver gives
     * that side its turn. */
    int (*events)(void *state);
    /* A deadline (ms, sb_now_ms's clock) by which the transport must be
     * ready (the handshake's), INT64_MAX for none. */
    int64_t (*deadline)(void *state);
    /* After read returned 0: 0 if the end was clean, or the code to close
     * with when only the end marks the message's length (TLS: no
     * close_notify, SB_ETLSTRUNC). */
    int (*eof_error)(void *state);
    /* Just before close(2) of a graceful end: the transport's own goodbye
     * (TLS: close_notify), without the FIN - the close sends that, in the
     * same segment - so no shutdown(2) call is spent. NULL: nothing to say. */
    void (*goodbye)(void *state);
} sb__transport;

#define SB__TP_HELD 0x100
/* events(): the write queue moves when the socket is readable, not when it
 * is writable (a TLS write waits to read first): watching for writability
 * would only spin. */
#define SB__TP_NOWRITE 0x200

extern const sb__transport sb__transport_plain;

#endif
