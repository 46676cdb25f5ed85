/** @file
 * tls: TLS over any switchboard connection (OpenSSL 3).
 *
 * A context (sb_tls) holds what many connections share: the certificate
 * and key of a server, the trust store of a client, the handshake timeout.
 * Put it in sb_conn_opts.tls and every connection made with those options
 * - sb_conn_open, sb_conn_run_blocking, every model of sb_server - speaks
 * TLS: a server context answers handshakes, a client context starts them.
 * The handler sees the same plaintext messages it sees without TLS.
 *
 * The blocking side (a client that dials and talks, like `switchboard get`)
 * uses sb_tls_session: a handshake with a deadline, then sb_tls_send_all /
 * sb_tls_recv_some in place of sock.h's calls, or sb_stream_set_tls to put
 * a stream on top of it.
 *
 * Policy, not options: TLS 1.2 is the oldest version spoken; renegotiation
 * is refused; a client verifies the server's certificate chain and its
 * host name unless told `insecure`, and a client with no name to verify
 * fails (SB_ETLSCONF) unless told `no_host_check`; a graceful close sends close_notify;
 * an end of stream without close_notify, where only the end marks the
 * length (`eof` framing, a stream read to its end), is SB_ETLSTRUNC.
 *
 * Built without OpenSSL, every constructor returns SB_ENOTLS and
 * sb_tls_available() is 0.
 */
#ifndef SWITCHBOARD_TLS_H
#define SWITCHBOARD_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A TLS context: what the connections of one side share (opaque). */
typedef struct sb_tls sb_tls;
/** A client's TLS connection over a socket it dialed (opaque). */
typedef struct sb_tls_session sb_tls_session;
/** What a client keeps to resume a session later: the server's TLS 1.3
 * session ticket (or TLS 1.2 session) with the keys it stands for (opaque,
 * reference counted by OpenSSL). */
typedef struct sb_tls_ticket sb_tls_ticket;

/** What a context is made of; zero what is not used. */
typedef struct sb_tls_opts {
    const char *cert_file;      /**< server: PEM certificate chain (leaf first); client: own
                                 *   certificate for mutual TLS, or NULL */
    const char *key_file;       /**< PEM private key of cert_file */
    const char *ca_file;        /**< server: clients must present a certificate signed by one
                                 *   of these (mutual TLS), NULL: no client certificates;
                                 *   client: trust these instead of the system store */
    const char *server_name;    /**< client: SNI and the name the certificate must match,
                                 *   for connections of sb_conn_opts (sessions name their own);
                                 *   a verifying client connection without one closes with
                                 *   SB_ETLSCONF before its handshake (see no_host_check) */
    const char *alpn;           /**< protocol offered / selected, e.g. "http/1.1"; NULL: none */
    int insecure;               /**< client: skip certificate and host name verification */
    int no_host_check;          /**< client: where no host name is given, verify the chain
                                 *   alone - any certificate the trust store signed passes,
                                 *   whatever its name. Without it a missing name is an
                                 *   error (SB_ETLSCONF), never a silent chain-only check */
    int handshake_timeout_ms;   /**< a handshake not done by then closes the connection
                                 *   (-ETIMEDOUT); 0: 10000 */
    int ktls;                   /**< server: use kernel TLS for sendfile where the kernel
                                 *   offers it (then that connection's socket I/O bypasses
                                 *   the library's system-call table, and goes through
                                 *   OpenSSL's socket BIO, which sends without
                                 *   MSG_NOSIGNAL: the process must ignore SIGPIPE, as
                                 *   sb_server does) */
} sb_tls_opts;

/** 1 if this build has TLS, else 0. */
int sb_tls_available(void);

/** The OpenSSL version text ("OpenSSL 3.0.13 30 Jan 2024"), or "none". */
const char *sb_tls_version(void);

/** Zero every field. */
void sb_tls_opts_default(sb_tls_opts *o);

/** A server context: loads the certificate chain and key (and the client CA
 * for mutual TLS) now. Returns 0 with *out, or SB_ETLSCONF with the reason
 * in why[0..whylen) ("key does not match certificate", "no such file"),
 * SB_ENOTLS, or -ENOMEM. The files are read here only; o is not kept. */
int sb_tls_server_new(sb_tls **out, const sb_tls_opts *o, char *why, size_t whylen);

/** A client context: the system trust store, or ca_file. Same returns. */
int sb_tls_client_new(sb_tls **out, const sb_tls_opts *o, char *why, size_t whylen);

/** Free a context. It must outlive the connections made with it (through
 * sb_conn_opts.tls); sessions keep what they need and may outlive it.
 * NULL is ignored. */
void sb_tls_free(sb_tls *t);

/** What a server context uses for sendfile: "ktls" (kernel TLS offered and
 * asked for) or "read+SSL_write", followed by the reason in parentheses
 * when kernel TLS was asked for and the kernel's tls module is not
 * loaded. Decided when the context is made. */
const char *sb_tls_sendfile_mode(const sb_tls *t);

/** Client: TLS over the connected socket fd (not owned, left open by
 * sb_tls_session_free), for host (SNI and the name verified; NULL: the
 * context's server_name; neither: SB_ETLSCONF, "no host name to verify",
 * unless the context was made `insecure` or `no_host_check`). The
 * handshake runs now, waiting in poll until
 * deadline (sb_now_ms() + ms, or SB_NO_DEADLINE). Returns 0 with *out, or
 * SB_ETLSVERIFY / SB_ETLSHOST / SB_ETLS / -ETIMEDOUT / -errno, with the
 * reason in why ("certificate verify failed: self-signed certificate"). */
int sb_tls_connect(sb_tls_session **out, const sb_tls *t, int fd, const char *host,
                   int64_t deadline, char *why, size_t whylen);

/** Client, non-blocking: TLS over the connected socket fd as sb_tls_connect
 * (same fd ownership and host rules), but no I/O happens here: drive the
 * handshake with sb_tls_handshake. resume: a ticket taken from an earlier
 * session of the same context (sb_tls_session_ticket) to offer, so the
 * server may skip the certificate and signature (an abbreviated handshake,
 * with a fresh key exchange under TLS 1.3); NULL for a full handshake. The
 * session takes its own reference: the caller may free the ticket at once.
 * Returns 0 with *out, or SB_ETLSCONF (no host name to verify, with why),
 * -ENOMEM, SB_ENOTLS. */
int sb_tls_session_new(sb_tls_session **out, const sb_tls *t, int fd, const char *host,
                       const sb_tls_ticket *resume, char *why, size_t whylen);

/** One step of the handshake of a session made by sb_tls_session_new,
 * never waiting: 0 once it is complete, -EAGAIN with *want set to
 * SB_READABLE or SB_WRITABLE (the readiness of fd to wait for before the
 * next step), or the errors of sb_tls_connect with the reason in why. After
 * an error only sb_tls_session_free is left to call. When it returns 0 the
 * server's whole flight has been read: nothing waits in the engine that a
 * readiness wait would miss (a server that speaks first is the exception:
 * call sb_tls_read once). */
int sb_tls_handshake(sb_tls_session *s, int *want, char *why, size_t whylen);

/** 1 if the session's handshake resumed an earlier session (the server
 * accepted the ticket offered), else 0. */
int sb_tls_session_resumed(const sb_tls_session *s);

/** What resumes this session later: a new reference the caller frees with
 * sb_tls_ticket_free, or NULL when the server gave nothing resumable (yet:
 * TLS 1.3 tickets come after the handshake, read along with the first
 * data; the latest one read is returned). */
sb_tls_ticket *sb_tls_session_ticket(const sb_tls_session *s);

/** Drop a reference taken by sb_tls_session_ticket. NULL is ignored. */
void sb_tls_ticket_free(sb_tls_ticket *k);

/** Send all n bytes (like sb_send_all). Returns n or a negative error. */
ssize_t sb_tls_send_all(sb_tls_session *s, const void *p, size_t n, int64_t deadline);

/** Receive up to n bytes (like sb_recv_some): the count, 0 after the peer's
 * close_notify, SB_ETLSTRUNC when the stream ended without one. n == 0
 * returns 0 at once, reading and waiting for nothing. */
ssize_t sb_tls_recv_some(sb_tls_session *s, void *p, size_t n, int64_t deadline);

/** Non-blocking send for a session on a non-blocking socket (a load
 * generator's loop): bytes taken (up to n), -EAGAIN when the socket is
 * full - wait for it to be writable - or an error. A retry after -EAGAIN
 * must offer the same bytes first. */
ssize_t sb_tls_write(sb_tls_session *s, const void *p, size_t n);

/** Non-blocking receive: fills p from as many records as are readable
 * (call it once before the first wait: the handshake may have brought
 * bytes along);
 * a count short of n means the socket is drained (wait for it to be
 * readable: edge-triggered readiness is enough). 0 after close_notify,
 * SB_ETLSTRUNC at an end without it, -EAGAIN when nothing was there, or
 * an error. */
ssize_t sb_tls_read(sb_tls_session *s, void *p, size_t n);

/** Half-close: send close_notify now (our side is done sending; reads go
 * on, as TLS 1.3 allows), then shutdown(SHUT_WR). Returns 0 or an error. */
int sb_tls_shutdown(sb_tls_session *s, int64_t deadline);

/** Send close_notify (best effort, without waiting) and free the session;
 * the socket stays open. NULL is ignored. */
void sb_tls_session_free(sb_tls_session *s);

/** The negotiated protocol version ("TLSv1.3") of a session. */
const char *sb_tls_session_version(const sb_tls_session *s);

#ifdef __cplusplus
}
#endif

#endif
