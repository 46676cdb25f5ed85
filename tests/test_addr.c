/* test_addr: ADDR parsing (a table of good and bad strings with the code each
 * must give), resolution of loopback names, literals and unix paths, and
 * formatting back into the same notation. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <net/if.h>
#include <sys/un.h>

#include "test.h"

struct parse_case {
    const char *in;
    int rc;
    const char *host, *port, *path;
};

static const struct parse_case cases[] = {
    /* good */
    {"localhost:7000", 0, "localhost", "7000", ""},
    {"127.0.0.1:80", 0, "127.0.0.1", "80", ""},
    {"example.com:65535", 0, "example.com", "65535", ""},
    {"h:0", 0, "h", "0", ""},
    {":7000", 0, "", "7000", ""},
    {":0", 0, "", "0", ""},
    {"[::1]:7000", 0, "::1", "7000", ""},
    {"[::]:1", 0, "::", "1", ""},
    {"[fe80::1%lo]:22", 0, "fe80::1%lo", "22", ""},
    {"[::ffff:1.2.3.4]:9", 0, "::ffff:1.2.3.4", "9", ""},
    {"localhost:007", 0, "localhost", "7", ""},
    {"unix:/tmp/sb.sock", 0, "", "", "/tmp/sb.sock"},
    {"unix:relative/p", 0, "", "", "relative/p"},
    /* bad ports */
    {"localhost:", SB_EBADPORT, 0, 0, 0},
    {":", SB_EBADPORT, 0, 0, 0},
    {"localhost:http", SB_EBADPORT, 0, 0, 0},
    {"localhost:65536", SB_EBADPORT, 0, 0, 0},
    {"localhost:99999999999999999999", SB_EBADPORT, 0, 0, 0},
    {"localhost:+80", SB_EBADPORT, 0, 0, 0},
    {"localhost:-1", SB_EBADPORT, 0, 0, 0},
    {"localhost: 80", SB_EBADPORT, 0, 0, 0},
    {"localhost:80 ", SB_EBADPORT, 0, 0, 0},
    {"localhost:0x50", SB_EBADPORT, 0, 0, 0},
    {"[::1]", SB_EBADPORT, 0, 0, 0},
    {"[::1]:", SB_EBADPORT, 0, 0, 0},
    {"[::1]:abc", SB_EBADPORT, 0, 0, 0},
    /* bad shapes */
    {"", SB_EBADADDR, 0, 0, 0},
    {"localhost", SB_EBADADDR, 0, 0, 0},
    {"::1:80", SB_EBADADDR, 0, 0, 0},
    {"a:b:80", SB_EBADADDR, 0, 0, 0},
    {"[::1:80", SB_EBADADDR, 0, 0, 0},
    {"[::1]x:80", SB_EBADADDR, 0, 0, 0},
    {"[::1]80", SB_EBADADDR, 0, 0, 0},
    {"[]:80", SB_EBADADDR, 0, 0, 0},
    {"[1.2.3.4]:80", SB_EBADADDR, 0, 0, 0},
    {"unix:", SB_EBADADDR, 0, 0, 0},
};

static void test_parse_table(void)
{
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct parse_case *c = &cases[i];
        sb_addr_spec sp;
        int rc = sb_addr_parse(c->in, &sp);

        if (rc != c->rc)
            fprintf(stderr, "    \"%s\": got %d (%s), want %d\n", c->in, rc, sb_strerror(rc), c->rc);
        CHECK_EQ(rc, c->rc);
        if (rc != 0)
            continue;
        CHECK(strcmp(sp.host, c->host) == 0);
        CHECK(strcmp(sp.port, c->port) == 0);
        CHECK(strcmp(sp.path, c->path) == 0);
        CHECK_EQ(sp.is_unix, c->path[0] != '\0');
    }
    CHECK_EQ(sb_addr_parse(NULL, &(sb_addr_spec){0}), SB_EBADADDR);
}

static void test_long_names(void)
{
    char s[400];
    sb_addr_spec sp;

    /* unix: sun_path is 108 bytes including the NUL. */
    memcpy(s, "unix:", 5);
    memset(s + 5, 'p', 200);
    s[205] = '\0';
    CHECK_EQ(sb_addr_parse(s, &sp), SB_EPATHLEN);
    s[5 + 108] = '\0';
    CHECK_EQ(sb_addr_parse(s, &sp), SB_EPATHLEN);
    s[5 + 107] = '\0';
    CHECK_EQ(sb_addr_parse(s, &sp), 0);
    CHECK_EQ(strlen(sp.path), 107);
    memset(s + 5, 'p', 200);
    CHECK_EQ(sb_addr_resolve(s, 0, &(sb_addr){0}, 1), SB_EPATHLEN);

    /* A host longer than any DNS name does not fit the spec. */
    memset(s, 'h', 300);
    memcpy(s + 300, ":80", 4);
    CHECK_EQ(sb_addr_parse(s, &sp), SB_EBADADDR);
}

static int port_of(const sb_addr *a)
{
    if (a->family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static void test_resolve_literals(void)
{
    sb_addr a[8];
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a[0].ss;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a[0].ss;
    int n;

    n = sb_addr_resolve("127.0.0.1:7000", 0, a, 8);
    CHECK_EQ(n, 1);
    CHECK_EQ(a[0].family, AF_INET);
    CHECK_EQ(a[0].len, sizeof(struct sockaddr_in));
    CHECK_EQ(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
    CHECK_EQ(port_of(&a[0]), 7000);

    n = sb_addr_resolve("[::1]:8080", 0, a, 8);
    CHECK_EQ(n, 1);
    CHECK_EQ(a[0].family, AF_INET6);
    CHECK(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
    CHECK_EQ(port_of(&a[0]), 8080);

    /* A scope on a link-local literal lands in sin6_scope_id. */
    n = sb_addr_resolve("[fe80::1%lo]:22", 0, a, 8);
    CHECK_EQ(n, 1);
    CHECK(in6->sin6_scope_id != 0);

    /* Not an IPv6 literal inside the brackets. */
    CHECK_EQ(sb_addr_resolve("[::zz]:1", 0, a, 8), SB_EBADADDR);
    CHECK_EQ(sb_addr_resolve("127.0.0.1:1", 0, a, 0), -EINVAL);
}

static void test_resolve_any(void)
{
    sb_addr a[8];
    int n;

    /* Listening: [::] first (made dual-stack by sb_listen), then 0.0.0.0. */
    n = sb_addr_resolve(":7000", 1, a, 8);
    CHECK_EQ(n, 2);
    CHECK_EQ(a[0].family, AF_INET6);
    CHECK(IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a[0].ss)->sin6_addr));
    CHECK_EQ(a[1].family, AF_INET);
    CHECK_EQ(((const struct sockaddr_in *)&a[1].ss)->sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK_EQ(port_of(&a[0]), 7000);
    CHECK_EQ(port_of(&a[1]), 7000);

    /* Dialling: this machine, IPv4 loopback then IPv6 loopback. */
    n = sb_addr_resolve(":7000", 0, a, 8);
    CHECK_EQ(n, 2);
    CHECK_EQ(a[0].family, AF_INET);
    CHECK_EQ(ntohl(((const struct sockaddr_in *)&a[0].ss)->sin_addr.s_addr), INADDR_LOOPBACK);
    CHECK_EQ(a[1].family, AF_INET6);
    CHECK(IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a[1].ss)->sin6_addr));

    /* Room for one address: only the first. */
    CHECK_EQ(sb_addr_resolve(":1", 1, a, 1), 1);
    CHECK_EQ(a[0].family, AF_INET6);
}

static void test_resolve_names(void)
{
    sb_addr a[8];
    int n, i, saw_loopback = 0;

    n = sb_addr_resolve("localhost:7000", 0, a, 8);
    CHECK(n >= 1);
    for (i = 0; i < n; i++) {
        CHECK(a[i].family == AF_INET || a[i].family == AF_INET6);
        CHECK_EQ(port_of(&a[i]), 7000);
        if (a[i].family == AF_INET)
            saw_loopback |= ntohl(((const struct sockaddr_in *)&a[i].ss)->sin_addr.s_addr) == INADDR_LOOPBACK;
        else
            saw_loopback |= IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a[i].ss)->sin6_addr);
    }
    CHECK(saw_loopback);

    /* RFC 6761: names under .invalid never resolve (answered without
     * touching the network, so this is quick and hermetic). */
    CHECK_EQ(sb_addr_resolve("no-such-host.invalid:80", 0, a, 8), SB_ENOHOST);
    CHECK_EQ(sb_addr_resolve("x.y.INVALID.:80", 0, a, 8), SB_ENOHOST);
    CHECK_EQ(sb_addr_resolve("invalid:80", 1, a, 8), SB_ENOHOST);
    /* Parse errors come before any resolution. */
    CHECK_EQ(sb_addr_resolve("localhost:http", 0, a, 8), SB_EBADPORT);
    CHECK_EQ(sb_addr_resolve("localhost", 0, a, 8), SB_EBADADDR);
}

static void test_resolve_unix(void)
{
    sb_addr a;
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a.ss;

    CHECK_EQ(sb_addr_resolve("unix:/tmp/x.sock", 0, &a, 1), 1);
    CHECK_EQ(a.family, AF_UNIX);
    CHECK_EQ(un->sun_family, AF_UNIX);
    CHECK(strcmp(un->sun_path, "/tmp/x.sock") == 0);
    CHECK_EQ(a.len, offsetof(struct sockaddr_un, sun_path) + strlen("/tmp/x.sock") + 1);
    /* passive makes no difference for a path */
    CHECK_EQ(sb_addr_resolve("unix:rel", 1, &a, 1), 1);
    CHECK(strcmp(un->sun_path, "rel") == 0);
}

static void check_format(const char *in, const char *want)
{
    sb_addr a;
    char out[128];
    int n;

    CHECK_EQ(sb_addr_resolve(in, 0, &a, 1), 1);
    n = sb_addr_format((const struct sockaddr *)&a.ss, a.len, out, sizeof(out));
    if (n < 0 || strcmp(out, want) != 0)
        fprintf(stderr, "    format(%s) = %d \"%s\", want \"%s\"\n", in, n, n >= 0 ? out : "", want);
    CHECK_EQ(n, strlen(want));
    CHECK(strcmp(out, want) == 0);
}

static void test_format(void)
{
    sb_addr a;
    char out[64];
    struct sockaddr_un un;

    check_format("127.0.0.1:80", "127.0.0.1:80");
    check_format("[::1]:8080", "[::1]:8080");
    check_format("[2001:db8::1]:1", "[2001:db8::1]:1");
    /* The interface as the system names it back: "lo" on Linux, its LUID
     * name ("loopback_1") on Windows. */
    char lo[IF_NAMESIZE] = "lo", want[64];
    CHECK_EQ(sb_addr_resolve("[fe80::1%lo]:22", 0, &a, 1), 1);
    if_indextoname(((struct sockaddr_in6 *)&a.ss)->sin6_scope_id, lo);
    snprintf(want, sizeof want, "[fe80::1%%%s]:22", lo);
    check_format("[fe80::1%lo]:22", want);
    check_format("unix:/tmp/sb.sock", "unix:/tmp/sb.sock");
    check_format(":9", "127.0.0.1:9");

    /* Too small: -ENOSPC, including the case that leaves no room for NUL. */
    CHECK_EQ(sb_addr_resolve("127.0.0.1:80", 0, &a, 1), 1);
    CHECK_EQ(sb_addr_format((const struct sockaddr *)&a.ss, a.len, out, 12), -ENOSPC);
    CHECK_EQ(sb_addr_format((const struct sockaddr *)&a.ss, a.len, out, 13), 12);

    /* An unnamed unix socket (what accept reports for a client). */
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    CHECK_EQ(sb_addr_format((const struct sockaddr *)&un, sizeof(sa_family_t), out, sizeof(out)), 5);
    CHECK(strcmp(out, "unix:") == 0);
}

int main(void)
{
    RUN(test_parse_table);
    RUN(test_long_names);
    RUN(test_resolve_literals);
    RUN(test_resolve_any);
    RUN(test_resolve_names);
    RUN(test_resolve_unix);
    RUN(test_format);
    return 0;
}
