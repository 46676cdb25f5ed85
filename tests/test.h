/* Minimal test harness: CHECK stops the test binary with a message naming
 * the file, line and expression. Each test binary is its own ctest entry. */
#ifndef SB_TEST_H
#define SB_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "switchboard.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define CHECK_EQ(a, b)                                                            \
    do {                                                                          \
        long long a_ = (long long)(a), b_ = (long long)(b);                       \
        if (a_ != b_) {                                                           \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", \
                    __FILE__, __LINE__, #a, #b, a_, b_);                          \
            abort();                                                              \
        }                                                                         \
    } while (0)

#define RUN(fn)                                        \
    do {                                               \
        fprintf(stderr, "  %s ...\n", #fn);            \
        fn();                                          \
    } while (0)

/* Whether this system has Unix-domain sockets: Linux always; Windows 10
 * and later too, but not Wine, where the Windows build's tests run. Tests
 * of unix: addresses are skipped, with a line saying so, where not. */
static inline int sb_test_have_unix(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        fprintf(stderr, "    (skipped: no Unix sockets here: %s)\n", strerror(errno));
        return 0;
    }
    close(fd);
    return 1;
}

/* Whether the fork model runs here: everywhere but Windows, where
 * sb_server_new refuses it with -ENOSYS. Tests of it are skipped, with a
 * line saying so, where not. */
static inline int sb_test_have_fork(void)
{
    sb_server_opts o;
    sb_server *s = NULL;
    sb_handler h;
    int r;

    memset(&h, 0, sizeof h);
    sb_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.model = SB_MODEL_FORK;
    r = sb_server_new(&s, &o, &h);
    if (r == 0)
        sb_server_free(s);
    if (r == -ENOSYS)
        fprintf(stderr, "    (skipped: no fork model here)\n");
    return r != -ENOSYS;
}

/* Backends a test should run on: every one compiled in, except io_uring
 * when the running kernel refuses it (old kernel, seccomp,
 * io_uring_disabled) and under `make check VALGRIND=1`, since valgrind
 * does not model io_uring's shared rings. Either skip is printed; no other
 * backend is ever skipped. */
static inline int sb_test_backend_ok(const char *b)
{
    const char *v = getenv("SB_VALGRIND");
    sb_loop *l = NULL;
    int r;

    if (strcmp(b, "uring") != 0)
        return 1;
    if (v && strcmp(v, "1") == 0) {
        fprintf(stderr, "  (uring not run under valgrind)\n");
        return 0;
    }
    r = sb_loop_new(&l, b);
    if (r < 0) {
        fprintf(stderr, "  (uring refused here: %s)\n", sb_strerror(r));
        return 0;
    }
    sb_loop_free(l);
    return 1;
}

#endif
