/** @file
 * addr: the address strings of the CLI, parsed and resolved.
 *
 *   HOST:PORT     name or IPv4 literal            "localhost:7000"
 *   [V6]:PORT     IPv6 literal (scope allowed)    "[::1]:7000"
 *   :PORT         every address (listen) / loopback (dial)
 *   unix:PATH     Unix-domain stream socket       "unix:/tmp/sb.sock"
 *
 * Ports are decimal 0..65535 (0 = ephemeral when listening). Names are
 * resolved with getaddrinfo, IPv4 and IPv6.
 */
#ifndef SWITCHBOARD_ADDR_H
#define SWITCHBOARD_ADDR_H

#include <stddef.h>
#ifdef _WIN32
#include <winsock2.h> /* struct sockaddr (Windows: no sys/socket.h) */
#include <ws2tcpip.h> /* socklen_t, struct sockaddr_storage */
#else
#include <sys/socket.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** A resolved socket address, ready for bind or connect. */
typedef struct sb_addr {
    struct sockaddr_storage ss; /**< the address (sockaddr_un fits too) */
    socklen_t len;              /**< its length */
    int family;                 /**< AF_INET, AF_INET6 or AF_UNIX */
} sb_addr;

/** The parsed, unresolved form. Strings are NUL terminated. */
typedef struct sb_addr_spec {
    char host[256]; /**< empty for ":PORT" and unix */
    char port[6];   /**< decimal, validated */
    char path[108]; /**< unix: the path */
    int is_unix;    /**< unix:PATH */
} sb_addr_spec;

/** Parse without resolving. Returns 0, SB_EBADADDR (shape), SB_EBADPORT,
 * SB_EPATHLEN (unix path does not fit sun_path). */
int sb_addr_parse(const char *s, sb_addr_spec *out);

/** Parse and resolve into out[0..max). passive != 0 resolves for bind (":PORT"
 * gives [::] first, then 0.0.0.0); otherwise for connect (":PORT" gives
 * loopback). Returns the number of addresses (>= 1) or a negative code:
 * the parse errors, SB_ENOHOST for a name with no address. */
int sb_addr_resolve(const char *s, int passive, sb_addr *out, int max);

/** Format a socket address as "1.2.3.4:80", "[::1]:80" or "unix:/path" into
 * out[0..n). Returns the string length or -ENOSPC. */
int sb_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif
