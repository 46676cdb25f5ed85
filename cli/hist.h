/* hist: the latency histogram of `switchboard bench`.
 *
 * Log-linear buckets in the style of HdrHistogram: values below 256 have a
 * bucket each; above, every power of two [2^k, 2^(k+1)) is cut into 128
 * equal sub-buckets, so a bucket is at most 1/128 of its values wide and
 * its midpoint is within 0.4% of any value in it. 7424 buckets cover all
 * of uint64_t, so no value is ever out of range. bench records
 * nanoseconds: one histogram per worker thread, merged for the report.
 *
 * A histogram is a plain value (about 58 KiB): no allocation, no locks;
 * each one is written by one thread at a time.
 */
#ifndef SB_CLI_HIST_H
#define SB_CLI_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t n[HIST_BUCKETS]; /* values per bucket */
    uint64_t count, max, min, sum; /* exact, over every value added */
};

/* The bucket of v. Inline: bench adds one value per reply. */
static inline size_t hist_index(uint64_t v)
{
    int msb;

    if (v < 2 * HIST_SUB)
        return (size_t)v;
    msb = 63 - __builtin_clzll(v);
    return (size_t)(msb - HIST_SUB_BITS + 1) * HIST_SUB +
           (size_t)((v >> (msb - HIST_SUB_BITS)) - HIST_SUB);
}

static inline void hist_add(struct hist *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

/* Empty: no values, min above any value so the first one sets it. */
void hist_reset(struct hist *h);
/* The smallest value of bucket i, and its midpoint. */
uint64_t hist_low(size_t i);
uint64_t hist_value(size_t i);
/* Add every value of h to into (as if each had been added to it). */
void hist_merge(struct hist *into, const struct hist *h);
/* The value at quantile q (0..1), 0 for an empty histogram. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
