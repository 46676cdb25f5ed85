/* bench_pace_win32: no descriptor-shaped nanosecond timer on Windows (a
 * waitable timer is a handle select cannot watch), so bench paces --rate
 * with the loop's own timers (see bench_pace.h). */
#include <errno.h>

#include "bench_pace.h"

int bench_pace_open(void)
{
    return -ENOSYS;
}

int bench_pace_arm(int fd, int64_t at_ns)
{
    (void)fd;
    (void)at_ns;
    return -ENOSYS;
}

void bench_pace_ack(int fd)
{
    (void)fd;
}
