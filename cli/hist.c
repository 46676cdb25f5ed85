/* hist: the latency histogram of `switchboard bench` (hist.h). */
#include <math.h>
#include <string.h>

#include "hist.h"

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

/* Bucket i >= 256 lies in [2^msb, 2^(msb+1)), sub-bucket i % 128 of it,
 * each 2^(msb-7) wide. */
uint64_t hist_low(size_t i)
{
    int msb;

    if (i < 2 * HIST_SUB)
        return i;
    msb = (int)(i / HIST_SUB) + HIST_SUB_BITS - 1;
    return (uint64_t)(i % HIST_SUB + HIST_SUB) << (msb - HIST_SUB_BITS);
}

uint64_t hist_value(size_t i)
{
    int msb;

    if (i < 2 * HIST_SUB)
        return i;
    msb = (int)(i / HIST_SUB) + HIST_SUB_BITS - 1;
    return hist_low(i) + ((1ULL << (msb - HIST_SUB_BITS)) >> 1);
}

void hist_merge(struct hist *into, const struct hist *h)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        into->n[i] += h->n[i];
    into->count += h->count;
    into->sum += h->sum;
    if (h->max > into->max)
        into->max = h->max;
    if (h->min < into->min)
        into->min = h->min;
}

/* The midpoint of the smallest bucket holding the ceil(q * count)-th
 * value (the nearest rank), capped by the exact maximum. */
uint64_t hist_quantile(const struct hist *h, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)h->count), seen = 0;

    if (h->count == 0)
        return 0;
    if (rank == 0)
        rank = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
