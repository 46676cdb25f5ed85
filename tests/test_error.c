/* test_error: one error space. Every code a public header defines has a
 * text of its own in sb_strerror (not "unknown error", not shared with
 * another code), whichever module's header names it; sb_http_strerror
 * agrees with it; negative errno values keep their system texts. */
#include <dirent.h>
#include <errno.h>

#include "test.h"

static const int codes[] = {
    SB_ETOOBIG,       SB_EMALFORMED,    SB_ETRUNCATED,  SB_EBADSPEC,      SB_EBADADDR,
    SB_ENOHOST,       SB_EBADPORT,      SB_EPATHLEN,    SB_EFDSETSIZE,    SB_EOVERFLOW,
    SB_ECLOSED,       SB_EBADTYPE,      SB_EOUTPUT,     SB_EBACKEND,      SB_EHTTP,
    SB_ENOTLS,        SB_ETLS,          SB_ETLSVERIFY,  SB_ETLSHOST,      SB_ETLSTRUNC,
    SB_ETLSCONF,
    SB_HTTP_ELINE,    SB_HTTP_EHEAD,    SB_HTTP_EVERSION, SB_HTTP_EBODY,  SB_HTTP_EUNSAT,
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static int known(int code)
{
    const char *t = sb_strerror(code);

    return t != NULL && t[0] != '\0' && strcmp(t, "unknown error") != 0 &&
           strcmp(t, "success") != 0;
}

static void test_every_code_has_its_text(void)
{
    size_t i, j;

    for (i = 0; i < NCODES; i++) {
        if (!known(codes[i]))
            fprintf(stderr, "code %d: \"%s\"\n", codes[i], sb_strerror(codes[i]));
        CHECK(known(codes[i]));
        for (j = 0; j < i; j++)
            CHECK(strcmp(sb_strerror(codes[i]), sb_strerror(codes[j])) != 0);
    }
    /* The SB_E* enum is dense: nothing between its first and last code is
     * left without a text. */
    for (int c = SB_ERR_BASE - 1; c > SB_ERR_LAST; c--)
        CHECK(known(c));
}

static void test_http_strerror_agrees(void)
{
    size_t i;

    /* "Need more bytes" is 0 in every parser, not an error code. */
    CHECK(SB_HTTP_INCOMPLETE == 0);
    CHECK(strcmp(sb_strerror(SB_HTTP_INCOMPLETE), "success") == 0);

    for (i = 0; i < NCODES; i++)
        CHECK(strcmp(sb_http_strerror(codes[i]), sb_strerror(codes[i])) == 0);
}

static int listed(int code)
{
    size_t i;

    for (i = 0; i < NCODES; i++) {
        if (codes[i] == code)
            return 1;
    }
    return 0;
}

/* A definition of a code relative to SB_ERR_BASE, in either form the
 * headers use: "#define NAME (SB_ERR_BASE - N)" or "NAME = SB_ERR_BASE - N,".
 * Returns 1 with *code set. */
static int parse_code(const char *line, char *name, int *code)
{
    int n;

    if (sscanf(line, " #define %63[A-Za-z0-9_] ( SB_ERR_BASE - %d", name, &n) != 2 &&
        sscanf(line, " #define %63[A-Za-z0-9_] SB_ERR_BASE - %d", name, &n) != 2 &&
        sscanf(line, " %63[A-Za-z0-9_] = SB_ERR_BASE - %d", name, &n) != 2)
        return 0;
    *code = SB_ERR_BASE - n;
    return 1;
}

/* Every code one header defines, except the enum's end marker, must be in
 * the list above and have its text: a code added to a header without a
 * text, or without being listed here, fails this test. Returns the codes
 * seen. */
static size_t scan_header(const char *path)
{
    char line[512], name[64];
    size_t seen = 0;
    int code;
    FILE *f = fopen(path, "r");

    CHECK(f != NULL);
    while (fgets(line, sizeof(line), f)) {
        if (!parse_code(line, name, &code) || strcmp(name, "SB_ERR_LAST") == 0)
            continue;
        if (!listed(code) || !known(code))
            fprintf(stderr, "%s: %s (%d) is not listed or has no text\n", path, name, code);
        CHECK(listed(code));
        CHECK(known(code));
        seen++;
    }
    fclose(f);
    return seen;
}

/* The headers sit beside this file's directory: tests/../include/. */
static void test_headers_define_no_code_without_text(void)
{
    char dir[4096], path[4200];
    const char *slash = strrchr(__FILE__, '/');
    size_t seen = 0, n;
    struct dirent *e;
    DIR *d;

    n = slash ? (size_t)(slash - __FILE__) : 0;
    CHECK(n < sizeof(dir) - 64);
    memcpy(dir, __FILE__, n);
    snprintf(dir + n, sizeof(dir) - n, "%s../include/switchboard", n ? "/" : "");
    d = opendir(dir);
    if (d == NULL)
        fprintf(stderr, "cannot open %s\n", dir);
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len < 3 || strcmp(e->d_name + len - 2, ".h") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        seen += scan_header(path);
    }
    closedir(d);
    snprintf(path, sizeof(path), "%s/../switchboard.h", dir);
    seen += scan_header(path);
    CHECK_EQ(seen, NCODES);
}

static void test_errno_and_edges(void)
{
    CHECK(strcmp(sb_strerror(-ECONNREFUSED), "connection refused") == 0);
    CHECK(strcmp(sb_strerror(-EINVAL), strerror(EINVAL)) == 0);
    CHECK(strcmp(sb_strerror(0), "success") == 0);
    CHECK(strcmp(sb_strerror(SB_ERR_BASE), "unknown error") == 0);
    CHECK(strcmp(sb_strerror(SB_ERR_LAST), "unknown error") == 0);
    CHECK(strcmp(sb_strerror(SB_HTTP_EUNSAT - 1), "unknown error") == 0);
    CHECK(strcmp(sb_strerror(-2147483647 - 1), "unknown error") == 0);
}

int main(void)
{
    RUN(test_every_code_has_its_text);
    RUN(test_http_strerror_agrees);
    RUN(test_headers_define_no_code_without_text);
    RUN(test_errno_and_edges);
    fprintf(stderr, "test_error: ok\n");
    return 0;
}
