/* proxy: the PROXY protocol header, v1 (text) and v2 (binary), after
 * HAProxy's doc/proxy-protocol.txt. A pure parser over bytes: see proxy.h.
 *
 * Incomplete is answered only while every byte seen could still begin a
 * valid header; anything that cannot is SB_EMALFORMED at once, so a
 * client that speaks without a header is refused on its first bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "switchboard/error.h"
#include "switchboard/proxy.h"

#define V1_MAX 107 /* "PROXY UNKNOWN <v6> <v6> 65535 65535\r\n": the spec's worst case */
#define V2_HDR 16

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

/* p[0..n) agrees with sig as far as both go. */
static int prefix_of(const uint8_t *p, size_t n, const void *sig, size_t len)
{
    return memcmp(p, sig, n < len ? n : len) == 0;
}

/* A decimal port: 1 to 5 digits, no leading zero, at most 65535. */
static int v1_port(const char *s, size_t n, uint16_t *out)
{
    unsigned v = 0;

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* One address of family af (inet_pton: canonical forms only; it refuses
 * leading zeros in IPv4, as the spec asks). */
static int v1_addr(int af, const char *s, size_t n, void *out)
{
    char tmp[48];

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(af, tmp, out) == 1 ? 0 : -1;
}

static void put_addr(int af, const void *ip, uint16_t port, struct sockaddr_storage *ss,
                     socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, ip, 4);
        *len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, ip, 16);
        *len = sizeof(*in6);
    }
}

/* Split line[0..n) (no CRLF) at single spaces into at most 6 fields.
 * Returns the count, or -1 for an empty field (two spaces in a row). */
static int v1_fields(const char *line, size_t n, const char *f[6], size_t flen[6])
{
    int k = 0;
    size_t start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && line[i] != ' ')
            continue;
        if (i == start || k == 6)
            return -1;
        f[k] = line + start;
        flen[k++] = i - start;
        start = i + 1;
    }
    return k;
}

static int v1_parse(const uint8_t *p, size_t n, sb_proxy_info *info)
{
    const char *f[6];
    size_t flen[6], end = 0;
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    int af, k;

    for (size_t i = 0; i < n && i < V1_MAX; i++) {
        if (p[i] == '\n')
            return SB_EMALFORMED; /* a lone LF: the spec wants CRLF */
        if (p[i] == '\r') {
            if (i + 1 == n)
                return -EAGAIN;
            if (p[i + 1] != '\n')
                return SB_EMALFORMED;
            end = i;
            break;
        }
    }
    if (end == 0)
        return n >= V1_MAX ? SB_EMALFORMED : -EAGAIN;
    /* UNKNOWN: whatever follows it up to the CRLF is to be ignored. */
    if (end >= 13 && memcmp(p + 6, "UNKNOWN", 7) == 0 && (end == 13 || p[13] == ' ')) {
        if (info) {
            memset(info, 0, sizeof(*info));
            info->version = 1;
            info->local = 1;
        }
        return (int)end + 2;
    }
    k = v1_fields((const char *)p, end, f, flen);
    if (k != 6 || flen[1] != 4 || (memcmp(f[1], "TCP4", 4) != 0 && memcmp(f[1], "TCP6", 4) != 0))
        return SB_EMALFORMED;
    af = f[1][3] == '4' ? AF_INET : AF_INET6;
    if (v1_addr(af, f[2], flen[2], src) < 0 || v1_addr(af, f[3], flen[3], dst) < 0 ||
        v1_port(f[4], flen[4], &sport) < 0 || v1_port(f[5], flen[5], &dport) < 0)
        return SB_EMALFORMED;
    if (info) {
        memset(info, 0, sizeof(*info));
        info->version = 1;
        put_addr(af, src, sport, &info->src, &info->src_len);
        put_addr(af, dst, dport, &info->dst, &info->dst_len);
    }
    return (int)end + 2;
}

static int v2_parse(const uint8_t *p, size_t n, sb_proxy_info *info)
{
    size_t len, need;
    int cmd, fam, proto;

    if (n >= 13 && (p[12] >> 4) != 2)
        return SB_EMALFORMED;
    if (n >= 13 && (p[12] & 0xF) > 1)
        return SB_EMALFORMED;
    if (n >= 14 && ((p[13] >> 4) > 3 || (p[13] & 0xF) > 2))
        return SB_EMALFORMED;
    if (n < V2_HDR)
        return -EAGAIN;
    cmd = p[12] & 0xF;
    fam = p[13] >> 4;
    proto = p[13] & 0xF;
    len = (size_t)p[14] << 8 | p[15];
    if (V2_HDR + len > SB_PROXY_MAX)
        return SB_EMALFORMED;
    need = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
    if (cmd == 1 && len < need)
        return SB_EMALFORMED;
    if (n < V2_HDR + len)
        return -EAGAIN;
    if (info) {
        const uint8_t *a = p + V2_HDR;
        memset(info, 0, sizeof(*info));
        info->version = 2;
        /* LOCAL (the balancer's own health check), an unspecified family
         * or protocol, or a unix client: nothing to name, keep the
         * socket's addresses. */
        info->local = cmd == 0 || proto == 0 || (fam != 1 && fam != 2);
        if (!info->local && fam == 1) {
            put_addr(AF_INET, a, (uint16_t)(a[8] << 8 | a[9]), &info->src, &info->src_len);
            put_addr(AF_INET, a + 4, (uint16_t)(a[10] << 8 | a[11]), &info->dst, &info->dst_len);
        } else if (!info->local) {
            put_addr(AF_INET6, a, (uint16_t)(a[32] << 8 | a[33]), &info->src, &info->src_len);
            put_addr(AF_INET6, a + 16, (uint16_t)(a[34] << 8 | a[35]), &info->dst, &info->dst_len);
        }
    }
    return (int)(V2_HDR + len);
}

int sb_proxy_parse(const uint8_t *p, size_t n, sb_proxy_info *info)
{
    if (n == 0)
        return -EAGAIN;
    if (prefix_of(p, n, v2_sig, sizeof(v2_sig)))
        return n < sizeof(v2_sig) ? -EAGAIN : v2_parse(p, n, info);
    if (prefix_of(p, n, v1_sig, sizeof(v1_sig) - 1))
        return n < sizeof(v1_sig) - 1 ? -EAGAIN : v1_parse(p, n, info);
    return SB_EMALFORMED;
}
