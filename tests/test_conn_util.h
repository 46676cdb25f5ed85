/* Helpers shared by the connection tests (test_conn.c, test_uring.c): a
 * socket pair whose test side is non-blocking, loop turns until a
 * condition holds, draining the test side, and options for a framing. */
#ifndef SB_TEST_CONN_UTIL_H
#define SB_TEST_CONN_UTIL_H

#include "test.h"

static inline void pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sb_set_nonblock(sv[1], 1);
}

/* Run loop turns until cond holds (bounded). cond is evaluated once per
 * turn and not again for the check: it may consume (a read, a drain). */
#define SPIN_UNTIL(l, cond)                                      \
    do {                                                         \
        int ok_ = !!(cond);                                      \
        for (int i_ = 0; i_ < 20000 && !ok_; i_++) {             \
            sb_loop_run_once((l), 1);                            \
            ok_ = !!(cond);                                      \
        }                                                        \
        if (!ok_)                                                \
            CHECK(cond);                                         \
    } while (0)

/* Read what the peer side has, appending to out (non-blocking). */
static inline size_t drain(int fd, sb_buf *out)
{
    uint8_t *p;
    size_t got = 0;
    for (;;) {
        CHECK_EQ(sb_buf_reserve(out, 65536, &p), 0);
        ssize_t n = read(fd, p, 65536);
        if (n <= 0)
            return got;
        sb_buf_commit(out, (size_t)n);
        got += (size_t)n;
    }
}

static inline void opts_for(sb_conn_opts *o, const char *spec)
{
    sb_conn_opts_default(o);
    CHECK_EQ(sb_frame_parse(spec, &o->frame), 0);
}

#endif
