/* test_url: get's URL handling. Resolution cases are RFC 3986 section
 * 5.4 (normal and abnormal examples) and the remove_dot_segments walk of
 * 5.2.4, translated; the typed-URL cases are curl's habits (a bare host is
 * http, the fragment is never sent). */
#include <string.h>

#include "test.h"
#include "url.h"

#define CHECK_STR(got, want)                                                          \
    do {                                                                              \
        if (strcmp((got), (want)) != 0) {                                             \
            fprintf(stderr, "%s:%d: '%s' is '%s', want '%s'\n", __FILE__, __LINE__, #got, \
                    (got), (want));                                                   \
            abort();                                                                  \
        }                                                                             \
    } while (0)
#define FAIL(...)                                         \
    do {                                                  \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);   \
        fprintf(stderr, __VA_ARGS__);                     \
        fputc('\n', stderr);                              \
        abort();                                          \
    } while (0)

static const char *const rfc_base = "http://a/b/c/d;p?q";

static const struct {
    const char *ref, *want;
} rfc_cases[] = {
    /* 5.4.1 normal examples */
    {"g:h", "g:h"},
    {"g", "http://a/b/c/g"},
    {"./g", "http://a/b/c/g"},
    {"g/", "http://a/b/c/g/"},
    {"/g", "http://a/g"},
    {"//g", "http://g"},
    {"?y", "http://a/b/c/d;p?y"},
    {"g?y", "http://a/b/c/g?y"},
    {"#s", "http://a/b/c/d;p?q#s"},
    {"g#s", "http://a/b/c/g#s"},
    {"g?y#s", "http://a/b/c/g?y#s"},
    {";x", "http://a/b/c/;x"},
    {"g;x", "http://a/b/c/g;x"},
    {"g;x?y#s", "http://a/b/c/g;x?y#s"},
    {"", "http://a/b/c/d;p?q"},
    {".", "http://a/b/c/"},
    {"./", "http://a/b/c/"},
    {"..", "http://a/b/"},
    {"../", "http://a/b/"},
    {"../g", "http://a/b/g"},
    {"../..", "http://a/"},
    {"../../", "http://a/"},
    {"../../g", "http://a/g"},
    /* 5.4.2 abnormal examples */
    {"../../../g", "http://a/g"},
    {"../../../../g", "http://a/g"},
    {"/./g", "http://a/g"},
    {"/../g", "http://a/g"},
    {"g.", "http://a/b/c/g."},
    {".g", "http://a/b/c/.g"},
    {"g..", "http://a/b/c/g.."},
    {"..g", "http://a/b/c/..g"},
    {"./../g", "http://a/b/g"},
    {"./g/.", "http://a/b/c/g/"},
    {"g/./h", "http://a/b/c/g/h"},
    {"g/../h", "http://a/b/c/h"},
    {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
    {"g;x=1/../y", "http://a/b/c/y"},
    {"g?y/./x", "http://a/b/c/g?y/./x"},
    {"g?y/../x", "http://a/b/c/g?y/../x"},
    {"g#s/./x", "http://a/b/c/g#s/./x"},
    {"g#s/../x", "http://a/b/c/g#s/../x"},
    {"http:g", "http:g"}, /* the strict reading */
};

static void test_resolve_rfc3986_examples(void)
{
    char out[CLI_URL_MAX];

    for (size_t i = 0; i < sizeof rfc_cases / sizeof *rfc_cases; i++) {
        int n = cli_url_resolve(rfc_base, rfc_cases[i].ref, out, sizeof out);
        if (n < 0 || strcmp(out, rfc_cases[i].want) != 0)
            FAIL("'%s' resolved to '%s', want '%s'", rfc_cases[i].ref, n < 0 ? "(error)" : out,
                 rfc_cases[i].want);
        CHECK_EQ(n, (long)strlen(rfc_cases[i].want));
    }
}

static void test_resolve_redirect_shapes(void)
{
    char out[CLI_URL_MAX];

    CHECK(cli_url_resolve("http://h:8080/a/b", "/x?y", out, sizeof out) > 0);
    CHECK_STR(out, "http://h:8080/x?y");
    CHECK(cli_url_resolve("http://h:8080/a/b", "//other:9/p", out, sizeof out) > 0);
    CHECK_STR(out, "http://other:9/p");
    CHECK(cli_url_resolve("http://h/", "http://[::1]:81/z", out, sizeof out) > 0);
    CHECK_STR(out, "http://[::1]:81/z");
    CHECK(cli_url_resolve("http://h", "x", out, sizeof out) > 0); /* empty base path */
    CHECK_STR(out, "http://h/x");
    /* a space and a non-ASCII byte in a Location are encoded */
    CHECK(cli_url_resolve("http://h/d/", "a b\xc3\xa9", out, sizeof out) > 0);
    CHECK_STR(out, "http://h/d/a%20b%C3%A9");
    CHECK_EQ(cli_url_resolve("http://h/", "x", out, 8), -1); /* does not fit */
}

static void test_remove_dots_walk(void)
{
    /* 5.2.4's two worked examples */
    char a[] = "/a/b/c/./../../g", b[] = "mid/content=5/../6";

    cli_url_remove_dots(a);
    CHECK_STR(a, "/a/g");
    cli_url_remove_dots(b);
    CHECK_STR(b, "mid/6");
}

static void test_parse_typed_urls(void)
{
    cli_url u;
    const char *why = NULL;

    CHECK_EQ(cli_url_parse("127.0.0.1:8080/x", &u, &why), 0);
    CHECK_STR(u.scheme, "http");
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_STR(u.port, "8080");
    CHECK_STR(u.target, "/x");
    CHECK_EQ(cli_url_parse("localhost", &u, &why), 0);
    CHECK_STR(u.port, "80");
    CHECK_STR(u.target, "/");
    CHECK_EQ(u.port_given, 0);
    CHECK_EQ(cli_url_parse("HTTP://[::1]:81?q=1#frag", &u, &why), 0);
    CHECK_STR(u.host, "::1");
    CHECK_EQ(u.v6, 1);
    CHECK_STR(u.target, "/?q=1");
    CHECK_EQ(cli_url_parse("http://h:/p#x", &u, &why), 0);
    CHECK_STR(u.port, "80");
    CHECK_STR(u.target, "/p");
    CHECK_EQ(cli_url_parse("h/a?u=http://x/y", &u, &why), 0);
    CHECK_STR(u.host, "h");
    CHECK_STR(u.target, "/a?u=http://x/y");

    CHECK_EQ(cli_url_parse("https://example.com/", &u, &why), 0);
    CHECK_STR(u.scheme, "https");
    CHECK_STR(u.port, "443");
    CHECK_EQ(u.port_given, 0);
    CHECK_EQ(cli_url_parse("HTTPS://example.com:8443/x", &u, &why), 0);
    CHECK_STR(u.scheme, "https");
    CHECK_STR(u.port, "8443");
    static const char *const bad[] = {"ftp://x/", "http://", "http://:80/", "http://h:99999/",
                                      "http://h:x/", "http://h/a b", "http://u@h/", "[::1/",
                                      "http://[::1]x/", "", "http://h:0/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (cli_url_parse(bad[i], &u, &why) != CLI_URL_BAD)
            FAIL("'%s' accepted", bad[i]);
}

static void test_format_round_trip(void)
{
    cli_url u;
    const char *why;
    char out[CLI_URL_MAX];

    CHECK_EQ(cli_url_parse("[::1]:8080/a?b", &u, &why), 0);
    CHECK(cli_url_format(&u, out, sizeof out) > 0);
    CHECK_STR(out, "http://[::1]:8080/a?b");
    CHECK_EQ(cli_url_format(&u, out, 10), -1);
}

int main(void)
{
    RUN(test_resolve_rfc3986_examples);
    RUN(test_resolve_redirect_shapes);
    RUN(test_remove_dots_walk);
    RUN(test_parse_typed_urls);
    RUN(test_format_round_trip);
    return 0;
}
