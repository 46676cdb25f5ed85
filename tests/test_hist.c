/* test_hist: bench's latency histogram (cli/hist.c). Bucket edges over the
 * whole uint64_t range, percentiles on data whose answer is known, and
 * merging, which the report relies on to combine its worker threads. */
#include <math.h>

#include "hist.h"
#include "test.h"

static struct hist a, b, all; /* 58 KiB each: not on the stack */

/* Bucket i holds exactly [hist_low(i), hist_low(i + 1)): the edges are
 * contiguous, each value's bucket contains it, and the midpoint is within
 * 1/256 of every value in its bucket. */
static void test_bucket_edges(void)
{
    size_t i;

    CHECK_EQ(hist_index(0), 0);
    for (i = 0; i < 2 * HIST_SUB; i++) {
        CHECK_EQ(hist_index(i), i); /* below 256: exact */
        CHECK_EQ(hist_value(i), i);
    }
    CHECK_EQ(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
    CHECK(hist_low(HIST_BUCKETS - 1) <= UINT64_MAX - (UINT64_MAX >> 8));
    for (i = 0; i + 1 < HIST_BUCKETS; i++) {
        uint64_t lo = hist_low(i), next = hist_low(i + 1), hi = next - 1;

        CHECK(next > lo);
        CHECK_EQ(hist_index(lo), i);
        CHECK_EQ(hist_index(hi), i);
        CHECK_EQ(hist_index(next), i + 1);
        CHECK(hist_value(i) >= lo && hist_value(i) <= hi);
        CHECK_EQ(hist_index(hist_value(i)), i);
        /* width at most 1/128 of the bucket's values */
        CHECK(i < 2 * HIST_SUB || (hi - lo + 1) <= lo / HIST_SUB);
    }
    /* the powers of two start a bucket; the value before them ends one */
    for (int k = 8; k < 64; k++) {
        uint64_t p = 1ULL << k;

        CHECK_EQ(hist_low(hist_index(p)), p);
        CHECK_EQ(hist_index(p - 1) + 1, hist_index(p));
    }
}

/* 1..100 lie below 256, where buckets are exact: the percentiles are the
 * nearest-rank ones of the data itself. */
static void test_percentiles_exact(void)
{
    hist_reset(&a);
    CHECK_EQ(hist_quantile(&a, 0.5), 0); /* empty */
    for (uint64_t v = 100; v >= 1; v--)
        hist_add(&a, v);
    CHECK_EQ(a.count, 100);
    CHECK_EQ(a.sum, 5050);
    CHECK_EQ(a.min, 1);
    CHECK_EQ(a.max, 100);
    CHECK_EQ(hist_quantile(&a, 0.0), 1);
    CHECK_EQ(hist_quantile(&a, 0.01), 1);
    CHECK_EQ(hist_quantile(&a, 0.5), 50);
    CHECK_EQ(hist_quantile(&a, 0.9), 90);
    CHECK_EQ(hist_quantile(&a, 0.99), 99);
    CHECK_EQ(hist_quantile(&a, 0.999), 100);
    CHECK_EQ(hist_quantile(&a, 1.0), 100);
}

/* Latencies in nanoseconds, 1 us to 10 ms: each percentile lands within
 * 1/256 of the exact nearest-rank value, and never above the maximum. */
static void test_percentiles_large(void)
{
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    uint64_t n = 10000;

    hist_reset(&a);
    for (uint64_t i = 1; i <= n; i++)
        hist_add(&a, i * 1000); /* 1 us .. 10 ms */
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        uint64_t want = (uint64_t)ceil(qs[k] * (double)n) * 1000;
        uint64_t got = hist_quantile(&a, qs[k]);
        uint64_t diff = got > want ? got - want : want - got;

        CHECK(diff <= want / 256);
    }
    /* the top rank is the maximum's bucket: its midpoint, at most max */
    CHECK(hist_quantile(&a, 1.0) <= n * 1000);
    CHECK(hist_quantile(&a, 1.0) >= n * 1000 - n * 1000 / 256);
    /* a value at the bottom of its bucket, below the midpoint: the answer
     * is capped by the exact maximum rather than made up */
    hist_reset(&a);
    hist_add(&a, 1ULL << 40);
    CHECK(hist_value(hist_index(1ULL << 40)) > 1ULL << 40);
    CHECK_EQ(hist_quantile(&a, 0.5), 1ULL << 40);
    hist_add(&a, UINT64_MAX); /* the top of the range has a bucket */
    CHECK_EQ(a.max, UINT64_MAX);
    CHECK_EQ(hist_quantile(&a, 1.0), hist_value(HIST_BUCKETS - 1));
}

/* Two halves merged are the histogram of the whole; merging an empty one
 * changes nothing (its min is above every value). */
static void test_merge(void)
{
    uint64_t x = 88172645463325252ULL;

    hist_reset(&a);
    hist_reset(&b);
    hist_reset(&all);
    for (int i = 0; i < 20000; i++) {
        uint64_t v;

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v = x >> (x & 63); /* every magnitude */
        hist_add(i % 3 ? &a : &b, v);
        hist_add(&all, v);
    }
    hist_merge(&a, &b);
    CHECK(memcmp(&a, &all, sizeof(a)) == 0);
    hist_reset(&b);
    hist_merge(&a, &b);
    CHECK(memcmp(&a, &all, sizeof(a)) == 0);
    hist_merge(&b, &all); /* into an empty one */
    CHECK(memcmp(&b, &all, sizeof(b)) == 0);
    CHECK_EQ(hist_quantile(&b, 0.99), hist_quantile(&all, 0.99));
}

int main(void)
{
    RUN(test_bucket_edges);
    RUN(test_percentiles_exact);
    RUN(test_percentiles_large);
    RUN(test_merge);
    fprintf(stderr, "test_hist: ok\n");
    return 0;
}
