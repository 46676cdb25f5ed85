/* addr: the ADDR strings of the CLI - "HOST:PORT", "[V6]:PORT", ":PORT",
 * "unix:PATH" - parsed into an sb_addr_spec, resolved into socket addresses,
 * and socket addresses formatted back into the same notation.
 *
 * Divisions: parsing (pure string work, no I/O), resolution (getaddrinfo,
 * plus the fixed answers for ":PORT" and unix paths), formatting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "switchboard.h"

#define UNIX_PREFIX "unix:"

/* ---- parsing ------------------------------------------------------------ */

/* Decimal 0..65535 and nothing else: no sign, no space, no hex. Leading
 * zeros are accepted and dropped, so out always fits "65535". */
static int parse_port(const char *s, char out[6])
{
    unsigned long v = 0;

    if (*s == '\0')
        return SB_EBADPORT;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return SB_EBADPORT;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return SB_EBADPORT;
    }
    snprintf(out, 6, "%lu", v);
    return 0;
}

static int parse_unix(const char *path, sb_addr_spec *out)
{
    size_t n = strlen(path);

    if (n == 0)
        return SB_EBADADDR;
    /* sun_path needs room for the terminating NUL as well. */
    if (n >= sizeof(out->path) || n >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return SB_EPATHLEN;
    memcpy(out->path, path, n + 1);
    out->is_unix = 1;
    return 0;
}

/* "[V6]:PORT". The brackets are what lets a port follow an address that is
 * full of colons; inside them only an IPv6 literal (with an optional
 * %scope) makes sense, so the content must contain a colon. */
static int parse_bracketed(const char *s, sb_addr_spec *out)
{
    const char *close = strchr(s, ']');
    size_t n;

    if (close == NULL)
        return SB_EBADADDR;
    n = (size_t)(close - (s + 1));
    if (n == 0 || n >= sizeof(out->host) || memchr(s + 1, ':', n) == NULL)
        return SB_EBADADDR;
    if (close[1] == '\0')
        return SB_EBADPORT; /* "[::1]": the address is fine, the port is missing */
    if (close[1] != ':')
        return SB_EBADADDR;
    memcpy(out->host, s + 1, n);
    out->host[n] = '\0';
    return parse_port(close + 2, out->port);
}

/* "HOST:PORT" and ":PORT". An unbracketed host may not contain a colon:
 * "::1:80" is ambiguous and must be written "[::1]:80". */
static int parse_host_port(const char *s, sb_addr_spec *out)
{
    const char *colon = strchr(s, ':');
    size_t n;

    if (colon == NULL)
        return SB_EBADADDR;
    if (strchr(colon + 1, ':') != NULL)
        return SB_EBADADDR;
    n = (size_t)(colon - s);
    if (n >= sizeof(out->host))
        return SB_EBADADDR;
    memcpy(out->host, s, n);
    out->host[n] = '\0';
    return parse_port(colon + 1, out->port);
}

int sb_addr_parse(const char *s, sb_addr_spec *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || *s == '\0')
        return SB_EBADADDR;
    if (strncmp(s, UNIX_PREFIX, sizeof(UNIX_PREFIX) - 1) == 0)
        return parse_unix(s + sizeof(UNIX_PREFIX) - 1, out);
    if (*s == '[')
        return parse_bracketed(s, out);
    return parse_host_port(s, out);
}

/* ---- resolution --------------------------------------------------------- */

static void set_unix(const char *path, sb_addr *a)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
    size_t n = strlen(path);

    memset(a, 0, sizeof(*a));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    a->family = AF_UNIX;
}

static void set_in4(uint32_t host_order, int port, sb_addr *a)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;

    memset(a, 0, sizeof(*a));
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    in->sin_addr.s_addr = htonl(host_order);
    a->len = sizeof(*in);
    a->family = AF_INET;
}

static void set_in6(const struct in6_addr *ip, int port, sb_addr *a)
{
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;

    memset(a, 0, sizeof(*a));
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    in6->sin6_addr = *ip;
    a->len = sizeof(*in6);
    a->family = AF_INET6;
}

/* ":PORT" needs no resolver. Listening, "every address" is [::] (which the
 * listener makes dual-stack) with 0.0.0.0 as the fallback for hosts without
 * IPv6; dialling, it is this machine, IPv4 loopback first. */
static int resolve_any(int port, int passive, sb_addr *out, int max)
{
    if (passive) {
        set_in6(&in6addr_any, port, &out[0]);
        if (max > 1)
            set_in4(INADDR_ANY, port, &out[1]);
    } else {
        set_in4(INADDR_LOOPBACK, port, &out[0]);
        if (max > 1)
            set_in6(&in6addr_loopback, port, &out[1]);
    }
    return max > 1 ? 2 : 1;
}

/* RFC 6761 section 6.4: names under "invalid." never exist, and resolver
 * libraries should answer so at once instead of asking the network. */
static int is_invalid_tld(const char *host)
{
    size_t n = strlen(host);
    static const char tld[] = "invalid";
    size_t t = sizeof(tld) - 1;

    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n < t || strncasecmp(host + n - t, tld, t) != 0)
        return 0;
    return n == t || host[n - t - 1] == '.';
}

/* The one place a getaddrinfo failure becomes a switchboard code. Every
 * "this name has no usable address" flavour is SB_ENOHOST; a temporary
 * resolver failure is reported the same way, since the caller can do
 * nothing different about it. */
static int resolve_error(int rc, int numeric)
{
    switch (rc) {
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return errno ? -errno : SB_ENOHOST;
    default:
        /* A bracketed literal getaddrinfo cannot read is a malformed
         * address (or an unknown %scope), not a missing host. */
        return numeric ? SB_EBADADDR : SB_ENOHOST;
    }
}

static int resolve_name(const sb_addr_spec *sp, int passive, sb_addr *out, int max)
{
    struct addrinfo hints, *res, *ai;
    int numeric = strchr(sp->host, ':') != NULL; /* only "[V6]" hosts have colons */
    int rc, n = 0;

    if (is_invalid_tld(sp->host))
        return SB_ENOHOST;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = numeric ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* No AI_ADDRCONFIG: it hides "localhost"'s addresses on a machine whose
     * only interface is loopback, the very case tests and sandboxes hit. */
    hints.ai_flags = AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0) | (passive ? AI_PASSIVE : 0);
    rc = getaddrinfo(sp->host, sp->port, &hints, &res);
    if (rc != 0)
        return resolve_error(rc, numeric);
    for (ai = res; ai != NULL && n < max; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (ai->ai_addrlen > sizeof(out[n].ss))
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
        out[n].len = ai->ai_addrlen;
        out[n].family = ai->ai_family;
        n++;
    }
    freeaddrinfo(res);
    return n > 0 ? n : SB_ENOHOST;
}

int sb_addr_resolve(const char *s, int passive, sb_addr *out, int max)
{
    sb_addr_spec sp;
    int rc;

    if (out == NULL || max < 1)
        return -EINVAL;
    rc = sb_addr_parse(s, &sp);
    if (rc < 0)
        return rc;
    if (sp.is_unix) {
        set_unix(sp.path, &out[0]);
        return 1;
    }
    if (sp.host[0] == '\0')
        return resolve_any((int)strtol(sp.port, NULL, 10), passive, out, max);
    return resolve_name(&sp, passive, out, max);
}

/* ---- formatting --------------------------------------------------------- */

static int format_unix(const struct sockaddr_un *un, socklen_t len, char *out, size_t n)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t plen = len > off ? len - off : 0;

    /* The kernel may or may not count the NUL; an unnamed socket has no
     * path at all and formats as a bare "unix:". */
    plen = strnlen(un->sun_path, plen < sizeof(un->sun_path) ? plen : sizeof(un->sun_path));
    return snprintf(out, n, UNIX_PREFIX "%.*s", (int)plen, un->sun_path);
}

static int format_in6(const struct sockaddr_in6 *in6, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN], scope[IF_NAMESIZE + 1] = "";

    if (inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip)) == NULL)
        return -EINVAL; /* cannot happen: ip is INET6_ADDRSTRLEN */
    /* A link-local address is useless without its interface; name it the
     * way it would be written on input ("%eth0"), by index if unnamed. */
    if (in6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE];
        if (if_indextoname(in6->sin6_scope_id, name) != NULL)
            snprintf(scope, sizeof(scope), "%%%s", name);
        else
            snprintf(scope, sizeof(scope), "%%%u", (unsigned)in6->sin6_scope_id);
    }
    return snprintf(out, n, "[%s%s]:%u", ip, scope, (unsigned)ntohs(in6->sin6_port));
}

int sb_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
    char ip[INET_ADDRSTRLEN];
    int r;

    if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
        return -EINVAL;
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (len < (socklen_t)sizeof(*in) || inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip)) == NULL)
            return -EINVAL;
        r = snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
        break;
    }
    case AF_INET6:
        if (len < (socklen_t)sizeof(struct sockaddr_in6))
            return -EINVAL;
        r = format_in6((const struct sockaddr_in6 *)sa, out, n);
        break;
    case AF_UNIX:
        r = format_unix((const struct sockaddr_un *)sa, len, out, n);
        break;
    default:
        return -EAFNOSUPPORT;
    }
    if (r < 0)
        return r;
    return (size_t)r < n ? r : -ENOSPC;
}
