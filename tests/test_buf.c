/* test_buf: the bounded buffer - growth by doubling up to max, compaction of
 * the consumed front before growing, the bound, and allocation failure. */
#include <errno.h>
#include <stdint.h>

#include "sys.h"
#include "test.h"

static void test_zero_filled_is_empty(void)
{
    sb_buf b;

    memset(&b, 0, sizeof(b));
    CHECK_EQ(sb_buf_len(&b), 0);
    CHECK_EQ(sb_buf_append(&b, "abc", 3), 0);
    CHECK_EQ(sb_buf_len(&b), 3);
    CHECK(memcmp(sb_buf_data(&b), "abc", 3) == 0);
    sb_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_EQ(sb_buf_len(&b), 0);
}

static void test_append_consume(void)
{
    sb_buf b;

    sb_buf_init(&b, 0);
    CHECK_EQ(sb_buf_append(&b, "hello world", 11), 0);
    sb_buf_consume(&b, 6);
    CHECK_EQ(sb_buf_len(&b), 5);
    CHECK(memcmp(sb_buf_data(&b), "world", 5) == 0);
    sb_buf_consume(&b, 5);
    /* An emptied buffer rewinds to the start of its memory. */
    CHECK_EQ(b.rpos, 0);
    CHECK_EQ(b.wpos, 0);
    CHECK_EQ(sb_buf_append(&b, NULL, 0), 0);
    CHECK_EQ(sb_buf_len(&b), 0);
    sb_buf_free(&b);
}

static void test_growth_doubles(void)
{
    sb_buf b;
    uint8_t byte = 'x';
    size_t i, last = 0, grows = 0;

    sb_buf_init(&b, 0);
    for (i = 0; i < 100000; i++) {
        CHECK_EQ(sb_buf_append(&b, &byte, 1), 0);
        if (b.cap != last) {
            if (last)
                CHECK_EQ(b.cap, 2 * last);
            last = b.cap;
            grows++;
        }
    }
    CHECK_EQ(sb_buf_len(&b), 100000);
    CHECK(grows < 20);
    for (i = 0; i < 100000; i++)
        CHECK_EQ(sb_buf_data(&b)[i], 'x');
    sb_buf_free(&b);
}

static void test_bound(void)
{
    sb_buf b;
    uint8_t big[1000], *out;

    memset(big, 'b', sizeof(big));
    sb_buf_init(&b, 1000);
    CHECK_EQ(sb_buf_append(&b, big, 600), 0);
    CHECK_EQ(sb_buf_append(&b, big, 401), SB_ETOOBIG);
    CHECK_EQ(sb_buf_len(&b), 600); /* unchanged on failure */
    CHECK_EQ(sb_buf_append(&b, big, 400), 0);
    CHECK_EQ(sb_buf_len(&b), 1000);
    CHECK(b.cap <= 1000);
    CHECK_EQ(sb_buf_reserve(&b, 1, &out), SB_ETOOBIG);
    CHECK_EQ(sb_buf_reserve(&b, 0, &out), 0);
    /* Consuming makes room again, within the same memory. */
    sb_buf_consume(&b, 10);
    CHECK_EQ(sb_buf_append(&b, big, 10), 0);
    CHECK_EQ(b.cap, 1000);
    sb_buf_free(&b);
    CHECK_EQ(b.max, 1000); /* free keeps the bound */

    sb_buf_init(&b, 5); /* a bound below the minimum allocation */
    CHECK_EQ(sb_buf_append(&b, "12345", 5), 0);
    CHECK_EQ(b.cap, 5);
    CHECK_EQ(sb_buf_append(&b, "6", 1), SB_ETOOBIG);
    sb_buf_free(&b);
}

/* reserve slides the content over the consumed front before it grows. */
static void test_reserve_compacts(void)
{
    sb_buf b;
    uint8_t chunk[200], *out;
    size_t cap;

    memset(chunk, 'c', sizeof(chunk));
    sb_buf_init(&b, 0);
    CHECK_EQ(sb_buf_append(&b, chunk, 200), 0);
    cap = b.cap;
    sb_buf_consume(&b, 190);
    CHECK_EQ(sb_buf_reserve(&b, cap - 10, &out), 0);
    CHECK_EQ(b.cap, cap);
    CHECK_EQ(b.rpos, 0);
    CHECK(out == b.data + 10);
    memcpy(out, "tail", 4);
    sb_buf_commit(&b, 4);
    CHECK_EQ(sb_buf_len(&b), 14);
    CHECK(memcmp(sb_buf_data(&b) + 10, "tail", 4) == 0);
    sb_buf_reset(&b);
    CHECK_EQ(sb_buf_len(&b), 0);
    CHECK_EQ(b.cap, cap);
    sb_buf_free(&b);
}

static void *failing_realloc(void *p, size_t n)
{
    (void)p;
    (void)n;
    return NULL;
}

static void test_enomem(void)
{
    sb_buf b;

    sb_buf_init(&b, 0);
    CHECK_EQ(sb_buf_append(&b, "ab", 2), 0);
    sb__sys.realloc = failing_realloc;
    CHECK_EQ(sb_buf_append(&b, "x", 1), 0); /* fits the first allocation */
    {
        uint8_t big[4096];

        memset(big, 0, sizeof(big));
        CHECK_EQ(sb_buf_append(&b, big, sizeof(big)), -ENOMEM);
    }
    sb__sys_reset();
    CHECK_EQ(sb_buf_len(&b), 3);
    CHECK(memcmp(sb_buf_data(&b), "abx", 3) == 0);
    sb_buf_free(&b);
}

int main(void)
{
    RUN(test_zero_filled_is_empty);
    RUN(test_append_consume);
    RUN(test_growth_doubles);
    RUN(test_bound);
    RUN(test_reserve_compacts);
    RUN(test_enomem);
    fprintf(stderr, "test_buf: ok\n");
    return 0;
}
