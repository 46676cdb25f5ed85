/* tls_int: what conn needs of tls.c (or of tls_none.c, the build without
 * OpenSSL). */
#ifndef SB_TLS_INT_H
#define SB_TLS_INT_H

#include "switchboard/tls.h"
#include "transport.h"

/* A transport for fd under context ctx: a server or client engine, its
 * handshake deadline counting from now. Returns 0 with *tp and *state (the
 * connection owns state), -ENOMEM or SB_ENOTLS. */
int sb__tls_transport_new(const sb_tls *ctx, int fd, const sb__transport **tp, void **state);

/* The context's OpenSSL SSL_CTX (tests and fuzz/fuzz_tls.c drive it
 * through memory BIOs); NULL without TLS. */
void *sb__tls_ssl_ctx(const sb_tls *ctx);

/* The context's handshake timeout (ms). */
int sb__tls_handshake_ms(const sb_tls *ctx);

#endif
