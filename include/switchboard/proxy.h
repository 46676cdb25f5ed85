/** @file
 * proxy: the PROXY protocol header (versions 1 and 2) that a load balancer
 * such as HAProxy sends first on every connection to name the client it
 * forwards - see HAProxy's doc/proxy-protocol.txt.
 *
 * The parser is a pure function over bytes, shaped like picohttpparser: no
 * I/O, no allocation, "incomplete" as a normal answer, the header's length
 * when whole. A server feeds it what has arrived so far; every byte before
 * the length it returns is the header, every byte after it belongs to the
 * connection. sb_server_opts.proxy_protocol runs it on every connection.
 */
#ifndef SWITCHBOARD_PROXY_H
#define SWITCHBOARD_PROXY_H

#include <stddef.h>
#include <stdint.h>
#ifdef _WIN32
#include <winsock2.h> /* struct sockaddr (Windows: no sys/socket.h) */
#include <ws2tcpip.h> /* socklen_t, struct sockaddr_storage */
#else
#include <sys/socket.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** The longest header accepted: a v1 line is at most 107 bytes (the
 * spec's bound); a v2 header is 16 bytes plus its length field, which may
 * carry TLVs after the addresses - refused beyond this. */
#define SB_PROXY_MAX 1024

/** What a header says. */
typedef struct sb_proxy_info {
    int version;                  /**< 1 or 2 */
    /** 1: no addresses to use (v2 LOCAL, a health check by the balancer
     * itself; v1 UNKNOWN; v2 AF_UNSPEC or AF_UNIX): keep the socket's own. */
    int local;
    struct sockaddr_storage src;  /**< the client (when !local) */
    struct sockaddr_storage dst;  /**< the address it connected to (when !local) */
    socklen_t src_len;            /**< sizeof sockaddr_in or sockaddr_in6; 0 when local */
    socklen_t dst_len;            /**< likewise */
} sb_proxy_info;

/** Parse the header at the start of p[0..n). Returns its length (> 0)
 * once whole, -EAGAIN when p is a valid but incomplete beginning (read
 * more), or SB_EMALFORMED: not a PROXY header, or one that breaks the
 * spec (a v1 line longer than 107 bytes, an address that does not parse,
 * a v2 length over SB_PROXY_MAX or too short for its addresses). info
 * (may be NULL) is filled only on success. Reads nothing past p[n - 1]. */
int sb_proxy_parse(const uint8_t *p, size_t n, sb_proxy_info *info);

#ifdef __cplusplus
}
#endif

#endif
