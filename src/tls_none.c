/* tls_none: the TLS calls of a build without OpenSSL - each says TLS is not
 * available (SB_ENOTLS), so programs built against tls.h still link. */
#include <stdio.h>
#include <string.h>

#include "switchboard.h"
#include "tls_int.h"

static int none(char *why, size_t n)
{
    if (why && n)
        snprintf(why, n, "%s", sb_strerror(SB_ENOTLS));
    return SB_ENOTLS;
}

int sb_tls_available(void) { return 0; }
const char *sb_tls_version(void) { return "none"; }
void sb_tls_opts_default(sb_tls_opts *o) { memset(o, 0, sizeof(*o)); }
void sb_tls_free(sb_tls *t) { (void)t; }
const char *sb_tls_sendfile_mode(const sb_tls *t) { return "none"; }
void sb_tls_session_free(sb_tls_session *s) { (void)s; }
const char *sb_tls_session_version(const sb_tls_session *s) { return "none"; }

int sb_tls_server_new(sb_tls **out, const sb_tls_opts *o, char *why, size_t whylen)
{
    *out = NULL;
    return none(why, whylen);
}

int sb_tls_client_new(sb_tls **out, const sb_tls_opts *o, char *why, size_t whylen)
{
    *out = NULL;
    return none(why, whylen);
}

int sb_tls_connect(sb_tls_session **out, const sb_tls *t, int fd, const char *host,
                   int64_t deadline, char *why, size_t whylen)
{
    *out = NULL;
    return none(why, whylen);
}

ssize_t sb_tls_send_all(sb_tls_session *s, const void *p, size_t n, int64_t deadline)
{
    return SB_ENOTLS;
}

ssize_t sb_tls_recv_some(sb_tls_session *s, void *p, size_t n, int64_t deadline)
{
    return SB_ENOTLS;
}

int sb__tls_transport_new(const sb_tls *ctx, int fd, const sb__transport **tp, void **state)
{
    return SB_ENOTLS;
}

int sb__tls_handshake_ms(const sb_tls *ctx) { return 0; }

int sb_tls_shutdown(sb_tls_session *s, int64_t deadline)
{
    return SB_ENOTLS;
}

void *sb__tls_ssl_ctx(const sb_tls *ctx)
{
    return NULL;
}

ssize_t sb_tls_write(sb_tls_session *s, const void *p, size_t n)
{
    return SB_ENOTLS;
}

ssize_t sb_tls_read(sb_tls_session *s, void *p, size_t n)
{
    return SB_ENOTLS;
}

int sb_tls_session_new(sb_tls_session **out, const sb_tls *t, int fd, const char *host,
                       const sb_tls_ticket *resume, char *why, size_t whylen)
{
    *out = NULL;
    return none(why, whylen);
}

int sb_tls_handshake(sb_tls_session *s, int *want, char *why, size_t whylen)
{
    return none(why, whylen);
}

int sb_tls_session_resumed(const sb_tls_session *s) { return 0; }
sb_tls_ticket *sb_tls_session_ticket(const sb_tls_session *s) { return NULL; }
void sb_tls_ticket_free(sb_tls_ticket *k) { (void)k; }
