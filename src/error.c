/* error: text for every code the library returns (see error.h). */
#include <errno.h>
#include <string.h>

#include "switchboard.h"

static const char *const sb_messages[] = {
    [-(SB_ETOOBIG - SB_ERR_BASE)] = "message too big",
    [-(SB_EMALFORMED - SB_ERR_BASE)] = "malformed frame",
    [-(SB_ETRUNCATED - SB_ERR_BASE)] = "peer closed mid-message",
    [-(SB_EBADSPEC - SB_ERR_BASE)] = "bad framing spec",
    [-(SB_EBADADDR - SB_ERR_BASE)] = "bad address",
    [-(SB_ENOHOST - SB_ERR_BASE)] = "unknown host",
    [-(SB_EBADPORT - SB_ERR_BASE)] = "bad port",
    [-(SB_EPATHLEN - SB_ERR_BASE)] = "unix socket path too long",
    [-(SB_EFDSETSIZE - SB_ERR_BASE)] = "fd exceeds FD_SETSIZE (select backend)",
    [-(SB_EOVERFLOW - SB_ERR_BASE)] = "integer overflow",
    [-(SB_ECLOSED - SB_ERR_BASE)] = "connection closed by peer",
    [-(SB_EBADTYPE - SB_ERR_BASE)] = "unknown message type",
    [-(SB_EOUTPUT - SB_ERR_BASE)] = "output queue over its cap",
    [-(SB_EBACKEND - SB_ERR_BASE)] = "unknown loop backend",
    [-(SB_EHTTP - SB_ERR_BASE)] = "malformed HTTP message",
};

const char *sb_strerror(int code)
{
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
    if (code < SB_ERR_BASE && code > SB_ERR_LAST) {
        const char *m = sb_messages[-(code - SB_ERR_BASE)];
        if (m != NULL)
            return m;
    }
    switch (code) {
    case SB_HTTP_ELINE: return "HTTP request line too long";
    case SB_HTTP_EHEAD: return "HTTP header section too large";
    case SB_HTTP_EVERSION: return "HTTP version not supported";
    case SB_HTTP_EBODY: return "HTTP body too large";
    case SB_HTTP_EUNSAT: return "range not satisfiable";
    }
    if (code >= 0)
        return "success";
    return "unknown error";
}

const char *sb_version(void)
{
    return SB_VERSION_STRING;
}
