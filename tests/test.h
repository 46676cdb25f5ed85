/* Minimal test harness: CHECK stops the test binary with a message naming
 * the file, line and expression. Each test binary is its own ctest entry. */
#ifndef SB_TEST_H
#define SB_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Backends a test should run on. valgrind does not model io_uring's
 * shared rings, so under `make check VALGRIND=1` the uring backend is left
 * to the plain and sanitizer runs (and the skip is printed). */
static inline int sb_test_backend_ok(const char *b)
{
    const char *v = getenv("SB_VALGRIND");
    if (v && strcmp(v, "1") == 0 && strcmp(b, "uring") == 0) {
        fprintf(stderr, "  (uring not run under valgrind)\n");
        return 0;
    }
    return 1;
}

#endif
