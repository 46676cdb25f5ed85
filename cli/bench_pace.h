/* bench_pace: the clock of bench's open-loop pacer (--rate): a one-shot
 * timer with nanosecond resolution that a loop can watch as a descriptor.
 *
 * The loop's own timers count whole milliseconds, so a message paced by
 * them leaves up to a millisecond after it was due, and --rate charges that
 * slack to the server as latency. A descriptor that becomes readable at
 * the due time (a timerfd on Linux) keeps the client's share to the
 * wakeup latency, tens of microseconds. The Linux file is
 * bench_pace_linux.c; a platform without such a timer can return -ENOSYS
 * from bench_pace_open and bench falls back to the loop's timers.
 */
#ifndef SB_CLI_BENCH_PACE_H
#define SB_CLI_BENCH_PACE_H

#include <stdint.h>

/* A disarmed timer on CLOCK_MONOTONIC (sb_now_ns's clock), non-blocking
 * and close-on-exec. Returns the descriptor or a negative errno. */
int bench_pace_open(void);
/* Fire once at at_ns (absolute; a time past fires at once), replacing any
 * earlier setting. Returns 0 or a negative errno. */
int bench_pace_arm(int fd, int64_t at_ns);
/* Consume the expiry, so the descriptor is no longer readable. */
void bench_pace_ack(int fd);

#endif
