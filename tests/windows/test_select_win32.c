/* test_select_win32: the select backend on Windows (src/loop_select_win32.c),
 * where fd_set is an array of FD_SETSIZE handles: the limit is how many
 * sockets are watched, not how big their numbers are.
 *
 * Built and run only by the Windows build (cmake/windows.cmake). */
#include <errno.h>
#include <string.h>

#include "switchboard.h"
#include "test.h"

#define N (FD_SETSIZE + 1)

static int fds[N];
static int fired = -1;

static void on_read(sb_loop *l, int fd, int events, void *ud)
{
    char b[8];
    (void)l;
    (void)events;
    fired = (int)(intptr_t)ud;
    CHECK(recv(fd, b, sizeof b, 0) >= 0);
}

/* A UDP socket connected to itself: readable once it sends itself one. */
static int self_socket(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void test_count_not_value(const char *backend)
{
    sb_loop *l;
    int big = 0;

    CHECK_EQ(sb_loop_new(&l, backend), 0);
    for (int i = 0; i < N; i++) {
        fds[i] = self_socket();
        big |= fds[i] >= FD_SETSIZE;
    }
    /* Handles are multiples of 4: thousands of sockets go past FD_SETSIZE
     * in value, which POSIX select could not watch at all. */
    CHECK(big);
    /* The loop's own wakeup socket is watched too: room for N - 2 more. */
    for (int i = 0; i < N - 2; i++)
        CHECK_EQ(sb_loop_watch(l, fds[i], SB_READABLE, on_read, (void *)(intptr_t)i), 0);
    int r = sb_loop_watch(l, fds[N - 2], SB_READABLE, on_read, (void *)(intptr_t)(N - 2));
    if (strcmp(backend, "select") == 0) {
        CHECK_EQ(r, SB_EFDSETSIZE);
        CHECK_EQ(sb_loop_mask(l, fds[N - 2]), 0);
    } else {
        CHECK_EQ(r, 0);
    }
    /* The last socket watched (the highest handle) is reported. */
    CHECK_EQ(send(fds[N - 3], "x", 1, 0), 1);
    fired = -1;
    CHECK(sb_loop_run_once(l, 2000) >= 1);
    CHECK_EQ(fired, N - 3);
    /* Unwatching makes room again. */
    CHECK_EQ(sb_loop_watch(l, fds[0], 0, NULL, NULL), 0);
    CHECK_EQ(sb_loop_watch(l, fds[N - 2], SB_READABLE, on_read, (void *)(intptr_t)(N - 2)), 0);
    CHECK_EQ(send(fds[N - 2], "y", 1, 0), 1);
    fired = -1;
    CHECK(sb_loop_run_once(l, 2000) >= 1);
    CHECK_EQ(fired, N - 2);
    for (int i = 0; i < N; i++) {
        sb_loop_watch(l, fds[i], 0, NULL, NULL);
        close(fds[i]);
    }
    sb_loop_free(l);
}

static void test_select(void)
{
    test_count_not_value("select");
}

static void test_poll(void)
{
    test_count_not_value("poll");
}

int main(void)
{
    RUN(test_select);
    RUN(test_poll);
    fprintf(stderr, "test_select_win32: ok\n");
    return 0;
}
