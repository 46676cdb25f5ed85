/* bench_pace_linux: bench_pace.h on a timerfd. */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/timerfd.h>

#include "bench_pace.h"

int bench_pace_open(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

    return fd < 0 ? -errno : fd;
}

int bench_pace_arm(int fd, int64_t at_ns)
{
    struct itimerspec its = {{0, 0}, {0, 0}};

    if (at_ns <= 0)
        at_ns = 1; /* all zero would disarm it */
    its.it_value.tv_sec = (time_t)(at_ns / 1000000000);
    its.it_value.tv_nsec = (long)(at_ns % 1000000000);
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? -errno : 0;
}

void bench_pace_ack(int fd)
{
    uint64_t n;

    while (read(fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
}
