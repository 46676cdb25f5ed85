/* uring_bufs: which of a completion ring's provided buffers the kernel's
 * buffer ring holds - shared by the loop's io_uring backend
 * (loop_uring.c) and bench's completion client (cli/bench_uring.c).
 *
 * The kernel takes provided buffers from a FIFO ring. With all of them in
 * it, a buffer would be written again only after every other one, always
 * in cold memory (for 16 KiB messages that copy cost more than the system
 * calls io_uring saves). So the ring holds only `target` buffers, refilled
 * at the end of each turn from a stack of the buffers freed last, still in
 * the CPU's caches: a buffer comes back after target - 1 others. A receive
 * that ended on the empty ring (-ENOBUFS; re-armed, nothing lost) doubles
 * the target, at most once a turn; SB__BUFS_SHRINK_TURNS turns that each
 * used under a quarter of it halve it, never under SB__BUFS_MIN.
 *
 * A turn: sb__bufs_turn_begin, then per completion sb__bufs_filled (it
 * carried a buffer) or sb__bufs_dry (-ENOBUFS) and, once consumed,
 * sb__bufs_give_back; then sb__bufs_turn_end, which refills the ring. */
#ifndef SB_URING_BUFS_H
#define SB_URING_BUFS_H

#include <stdint.h>
#include <liburing.h>

#define SB__BUFS_START 32u
#define SB__BUFS_MIN 16u
#define SB__BUFS_SHRINK_TURNS 1024u

struct sb__bufs {
    struct io_uring_buf_ring *br; /* the kernel's ring, registered by the owner */
    uint8_t *mem;                 /* n buffers of size bytes */
    unsigned n, size;
    uint16_t *spare;              /* n slots: buffer ids out of the ring, last freed on top */
    unsigned nspare;
    unsigned inring;              /* buffers the kernel's ring holds now */
    unsigned target;              /* ... and how many it should hold */
    unsigned peak, turns;         /* most buffers a turn used, over this many turns */
    unsigned turn_spare;          /* nspare when the turn began */
    int grew;                     /* the target grew this turn */
};

static inline void sb__bufs_top_up(struct sb__bufs *b)
{
    unsigned added = 0;

    while (b->inring < b->target && b->nspare > 0) {
        unsigned bid = b->spare[--b->nspare];
        io_uring_buf_ring_add(b->br, b->mem + (size_t)bid * b->size, b->size, (unsigned short)bid,
                              io_uring_buf_ring_mask(b->n), (int)added);
        added++;
        b->inring++;
    }
    if (added > 0)
        io_uring_buf_ring_advance(b->br, (int)added);
}

/* br (initialised and registered), mem, n, size and spare set: every
 * buffer spare, buffer 0 on top, the first target of them in the ring. */
static inline void sb__bufs_start(struct sb__bufs *b)
{
    for (unsigned i = 0; i < b->n; i++)
        b->spare[i] = (uint16_t)(b->n - 1 - i);
    b->nspare = b->n;
    b->inring = b->peak = b->turns = 0;
    b->grew = 0;
    b->target = b->n < SB__BUFS_START ? b->n : SB__BUFS_START;
    sb__bufs_top_up(b);
}

static inline const uint8_t *sb__bufs_at(const struct sb__bufs *b, unsigned bid)
{
    return b->mem + (size_t)bid * b->size;
}

static inline void sb__bufs_turn_begin(struct sb__bufs *b)
{
    b->turn_spare = b->nspare;
}

/* A completion carried buffer bid: the kernel's ring no longer holds it. */
static inline void sb__bufs_filled(struct sb__bufs *b)
{
    b->inring--;
}

/* A receive ended on the empty ring. */
static inline void sb__bufs_dry(struct sb__bufs *b)
{
    if (b->target < b->n && !b->grew) {
        b->target *= 2;
        b->grew = 1;
    }
}

/* Buffer bid consumed: on top of the spare stack, the next to go back in. */
static inline void sb__bufs_give_back(struct sb__bufs *b, unsigned bid)
{
    b->spare[b->nspare++] = (uint16_t)bid;
}

static inline void sb__bufs_turn_end(struct sb__bufs *b)
{
    unsigned used = b->nspare - b->turn_spare; /* buffers this turn filled and gave back */

    if (used > b->peak)
        b->peak = used;
    if (++b->turns == SB__BUFS_SHRINK_TURNS) {
        if (b->peak * 4 < b->target && b->target / 2 >= SB__BUFS_MIN)
            b->target /= 2;
        b->peak = b->turns = 0;
    }
    b->grew = 0;
    sb__bufs_top_up(b);
}

#endif
