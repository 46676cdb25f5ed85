/* error: text for every code the library returns (see error.h). */
#include <errno.h>
#include <string.h>

#include "switchboard.h"

/* Every library code in one table, whichever header names it: the SB_E*
 * codes of error.h and the HTTP parser's SB_HTTP_* results of http.h.
 * tests/test_error.c checks that each code any public header defines is
 * here, with a text of its own. */
static const struct {
    int code;
    const char *text;
} sb_messages[] = {
    {SB_ETOOBIG, "message too big"},
    {SB_EMALFORMED, "malformed frame"},
    {SB_ETRUNCATED, "peer closed mid-message"},
    {SB_EBADSPEC, "bad framing spec"},
    {SB_EBADADDR, "bad address"},
    {SB_ENOHOST, "unknown host"},
    {SB_EBADPORT, "bad port"},
    {SB_EPATHLEN, "unix socket path too long"},
    {SB_EFDSETSIZE, "fd exceeds FD_SETSIZE (select backend)"},
    {SB_EOVERFLOW, "integer overflow"},
    {SB_ECLOSED, "connection closed by peer"},
    {SB_EBADTYPE, "unknown message type"},
    {SB_EOUTPUT, "output queue over its cap"},
    {SB_EBACKEND, "unknown loop backend"},
    {SB_EHTTP, "malformed HTTP message"},
    {SB_ENOTLS, "TLS is not available in this build"},
    {SB_ETLS, "TLS handshake failed"},
    {SB_ETLSVERIFY, "certificate verify failed"},
    {SB_ETLSHOST, "host name mismatch"},
    {SB_ETLSTRUNC, "TLS stream truncated (no close_notify)"},
    {SB_ETLSCONF, "TLS configuration error"},
    {SB_HTTP_ELINE, "HTTP request line too long"},
    {SB_HTTP_EHEAD, "HTTP header section too large"},
    {SB_HTTP_EVERSION, "HTTP version not supported"},
    {SB_HTTP_EBODY, "HTTP body too large"},
    {SB_HTTP_EUNSAT, "range not satisfiable"},
};

const char *sb_strerror(int code)
{
    size_t i;

    if (code < 0 && code > SB_ERR_BASE) {
        /* strerror's buffer is static and may be reused by other threads;
         * the lowercase texts below cover the errors users meet most. */
        switch (-code) {
        case ECONNREFUSED: return "connection refused";
        case ECONNRESET: return "connection reset by peer";
        case ETIMEDOUT: return "timed out";
        case EPIPE: return "broken pipe";
        case EADDRINUSE: return "address already in use";
        case ENOMEM: return "out of memory";
        case EMFILE: return "too many open files";
        default: return strerror(-code);
        }
    }
    for (i = 0; i < sizeof(sb_messages) / sizeof(sb_messages[0]); i++) {
        if (sb_messages[i].code == code)
            return sb_messages[i].text;
    }
    if (code >= 0)
        return "success";
    return "unknown error";
}

const char *sb_version(void)
{
    return SB_VERSION_STRING;
}
