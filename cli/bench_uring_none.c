/* bench_uring_none: bench_int.h's uring engine where switchboard is built
 * without liburing: --backend uring says so and exits 1. */
#include <errno.h>

#include "bench_int.h"

int bench_uring_probe(void) { return -ENOSYS; }
int bench_uring_open(struct worker *w) { (void)w; return -ENOSYS; }
int bench_uring_run(struct worker *w) { (void)w; return -ENOSYS; }
void bench_uring_flush(struct bconn *c) { (void)c; }
void bench_uring_close(struct bconn *c) { (void)c; }
void bench_uring_free(struct worker *w) { (void)w; }
