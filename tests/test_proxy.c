/* proxy: the PROXY protocol parser (v1 and v2). Every valid header is fed
 * in every truncated prefix (each must say -EAGAIN: incomplete, never an
 * error and never a length) and then whole with trailing bytes that belong
 * to the connection (the length must stop at the header). Each input sits
 * right before a PROT_NONE page, so a read past the end crashes the test.
 * Cases follow HAProxy's doc/proxy-protocol.txt (sections 2.1 and 2.2). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"
#include "switchboard/proxy.h"

static uint8_t *page_end; /* one past the last readable byte */

static void guard_setup(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    uint8_t *p = mmap(NULL, (size_t)ps * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    CHECK(mprotect(p + ps, (size_t)ps, PROT_NONE) == 0);
    page_end = p + ps;
}

/* Parse p[0..n) placed against the guard page. */
static int parse_at_end(const void *p, size_t n, sb_proxy_info *info)
{
    uint8_t *q = page_end - n;
    memmove(q, p, n);
    return sb_proxy_parse(q, n, info);
}

/* A valid header of hl bytes: every prefix is incomplete, the whole (with
 * or without what follows) is hl. */
static void check_valid(const void *hdr, size_t hl, sb_proxy_info *info)
{
    uint8_t buf[SB_PROXY_MAX + 16];

    for (size_t i = 0; i < hl; i++)
        CHECK_EQ(parse_at_end(hdr, i, NULL), -EAGAIN);
    CHECK_EQ(parse_at_end(hdr, hl, info), (long long)hl);
    memcpy(buf, hdr, hl);
    memcpy(buf + hl, "GET / HTTP/1.1\r\n", 16);
    /* Every split of header + data: the parser is stateless, so a split is
     * the first part alone (a prefix: incomplete or the header) then the
     * whole; the answer for the whole never depends on where it was cut. */
    for (size_t cut = 0; cut <= hl + 16; cut++) {
        int r = parse_at_end(buf, cut, NULL);
        CHECK(r == -EAGAIN || (cut >= hl && r == (int)hl));
        CHECK_EQ(parse_at_end(buf, hl + 16, NULL), (long long)hl);
    }
}

static void check_bad(const void *hdr, size_t n)
{
    int r = parse_at_end(hdr, n, NULL);
    if (r != SB_EMALFORMED)
        fprintf(stderr, "    expected malformed: %d for %.*s\n", r, (int)n, (const char *)hdr);
    CHECK_EQ(r, SB_EMALFORMED);
}

static void check_v4(const sb_proxy_info *i, const char *ip, int port)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)&i->src;
    char text[INET_ADDRSTRLEN];
    CHECK(!i->local);
    CHECK_EQ(in->sin_family, AF_INET);
    CHECK_EQ(i->src_len, sizeof(*in));
    CHECK(inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) != NULL);
    CHECK(strcmp(text, ip) == 0);
    CHECK_EQ(ntohs(in->sin_port), port);
}

static void check_v6(const sb_proxy_info *i, const char *ip, int port)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&i->src;
    char text[INET6_ADDRSTRLEN];
    CHECK(!i->local);
    CHECK_EQ(in6->sin6_family, AF_INET6);
    CHECK(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)) != NULL);
    CHECK(strcmp(text, ip) == 0);
    CHECK_EQ(ntohs(in6->sin6_port), port);
}

#define S(s) s, sizeof(s) - 1

static void test_v1_valid(void)
{
    sb_proxy_info i;

    check_valid(S("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), &i);
    CHECK_EQ(i.version, 1);
    check_v4(&i, "192.168.0.1", 56324);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&i.dst)->sin_port), 443);
    check_valid(S("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"), &i);
    check_v4(&i, "255.255.255.255", 65535);
    check_valid(S("PROXY TCP4 0.0.0.0 10.0.0.1 0 7000\r\n"), &i);
    check_v4(&i, "0.0.0.0", 0);
    check_valid(S("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n"), &i);
    check_v6(&i, "2001:db8::1", 1);
    check_valid(S("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), &i);
    /* UNKNOWN: anything up to the CRLF is ignored; the socket's own
     * addresses stay. The spec's 107-byte worst case is accepted. */
    check_valid(S("PROXY UNKNOWN\r\n"), &i);
    CHECK(i.local);
    check_valid(S("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), &i);
    CHECK(i.local);
    CHECK_EQ(sizeof("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n") - 1, 107);
}

static void test_v1_invalid(void)
{
    check_bad(S("GET / HTTP/1.1\r\n"));
    check_bad(S("P"
                "ROXX"));
    check_bad(S("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"));
    check_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"));    /* a lone LF */
    check_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"));   /* CR without LF */
    check_bad(S("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n")); /* two spaces */
    check_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n")); /* trailing space */
    check_bad(S("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n")); /* leading zero */
    check_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"));
    check_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"));
    check_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n"));
    check_bad(S("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"));
    check_bad(S("PROXY TCP4 ::1 ::1 1 2\r\n"));          /* family mismatch */
    check_bad(S("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"));
    check_bad(S("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"));
    check_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"));    /* a field missing */
    check_bad(S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"));
    check_bad(S("PROXY UNKNOWNX\r\n"));
    check_bad(S("PROXY \r\n"));
    /* No CRLF within 107 bytes: refused, not waited for. */
    char longline[120];
    memcpy(longline, "PROXY UNKNOWN ", 14);
    memset(longline + 14, 'a', sizeof(longline) - 14);
    CHECK_EQ(parse_at_end(longline, 106, NULL), -EAGAIN);
    check_bad(longline, 107);
    check_bad(longline, sizeof(longline));
}

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static size_t v2(uint8_t *out, int ver_cmd, int fam, const void *addr, size_t len)
{
    memcpy(out, sig, 12);
    out[12] = (uint8_t)ver_cmd;
    out[13] = (uint8_t)fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len)
        memcpy(out + 16, addr, len);
    return 16 + len;
}

static void test_v2_valid(void)
{
    uint8_t h[SB_PROXY_MAX + 16], a[300];
    sb_proxy_info i;
    size_t n;

    /* TCP over IPv4: 10.1.2.3:40000 -> 10.0.0.1:80. */
    memset(a, 0, sizeof(a));
    memcpy(a, "\x0a\x01\x02\x03\x0a\x00\x00\x01\x9c\x40\x00\x50", 12);
    n = v2(h, 0x21, 0x11, a, 12);
    check_valid(h, n, &i);
    CHECK_EQ(i.version, 2);
    check_v4(&i, "10.1.2.3", 40000);
    /* ... with TLVs after the addresses (skipped). */
    memcpy(a + 12, "\x01\x00\x02h2\x04\x00\x00", 8);
    n = v2(h, 0x21, 0x11, a, 20);
    check_valid(h, n, &i);
    check_v4(&i, "10.1.2.3", 40000);
    /* TCP over IPv6. */
    memset(a, 0, sizeof(a));
    a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[15] = 7;
    a[31] = 1;
    a[32] = 0x12, a[33] = 0x34;
    n = v2(h, 0x21, 0x21, a, 36);
    check_valid(h, n, &i);
    check_v6(&i, "2001:db8::7", 0x1234);
    /* LOCAL (a health check): the socket's addresses, whatever follows. */
    n = v2(h, 0x20, 0x00, NULL, 0);
    check_valid(h, n, &i);
    CHECK(i.local);
    n = v2(h, 0x20, 0x11, a, 12);
    check_valid(h, n, &i);
    CHECK(i.local);
    /* PROXY with UNSPEC, and a unix client: accepted, nothing to name. */
    n = v2(h, 0x21, 0x00, NULL, 0);
    check_valid(h, n, &i);
    CHECK(i.local);
    n = v2(h, 0x21, 0x31, a, 216);
    check_valid(h, n, &i);
    CHECK(i.local);
    /* UDP over IPv4 (DGRAM) parses too. */
    n = v2(h, 0x21, 0x12, a, 12);
    check_valid(h, n, &i);
    /* The largest length accepted. */
    memset(a, 0, sizeof(a));
    {
        static uint8_t big[SB_PROXY_MAX];
        n = v2(big, 0x21, 0x11, a, 0);
        big[14] = (uint8_t)((SB_PROXY_MAX - 16) >> 8);
        big[15] = (uint8_t)(SB_PROXY_MAX - 16);
        check_valid(big, SB_PROXY_MAX, &i);
    }
}

static void test_v2_invalid(void)
{
    uint8_t h[64], a[36] = {0};
    size_t n;

    n = v2(h, 0x11, 0x11, a, 12); /* version 1 in the binary form */
    check_bad(h, n);
    check_bad(h, 13);             /* ... found as soon as it is seen */
    n = v2(h, 0x22, 0x11, a, 12); /* command 2 */
    check_bad(h, n);
    n = v2(h, 0x21, 0x41, a, 12); /* family 4 */
    check_bad(h, n);
    check_bad(h, 14);
    n = v2(h, 0x21, 0x13, a, 12); /* protocol 3 */
    check_bad(h, n);
    n = v2(h, 0x21, 0x11, a, 11); /* too short for IPv4 addresses */
    check_bad(h, n);
    n = v2(h, 0x21, 0x21, a, 12); /* too short for IPv6 addresses */
    check_bad(h, n);
    n = v2(h, 0x21, 0x11, a, 12); /* a length over the bound, refused before its bytes come */
    h[14] = 0xff;
    h[15] = 0xff;
    check_bad(h, 16);
    memcpy(h, sig, 12);
    h[5] = 0x0C;                  /* a broken signature */
    check_bad(h, 12);
    check_bad(h, 6);
}

int main(void)
{
    guard_setup();
    RUN(test_v1_valid);
    RUN(test_v1_invalid);
    RUN(test_v2_valid);
    RUN(test_v2_invalid);
    return 0;
}
