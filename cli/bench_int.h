/* bench_int: what bench.c shares with its completion-based client engine,
 * bench_uring.c: the run, a connection and a worker, and the few steps of
 * bench.c an engine calls when bytes arrive, a send completes or a timer
 * is due.
 *
 * Two engines drive a worker's connections. The loop engine (bench.c
 * alone) watches each socket on an sb_loop and reads and writes when it is
 * ready. The uring engine (bench --backend uring on a framed ADDR) keeps a
 * multishot receive armed on each socket and queues each turn's sends on
 * an io_uring, submitted together with the wait; the worker's sb_loop then
 * only keeps its timers, run by the engine when one is due. Both engines
 * share everything above the socket: the messages, the checks, the
 * counters, the pacer and the window.
 */
#ifndef SB_CLI_BENCH_INT_H
#define SB_CLI_BENCH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bench.h"
#include "bench_http.h"
#include "cli.h"

#define REQ_MAX (CLI_URL_MAX + 600)

/* Shared, read-only once the run starts (but for http_len). */
struct bench {
    struct bench_opts o;
    sb_frame_spec spec;
    int type;                    /* typed framing: the type byte used */
    uint8_t hdr[SB_FRAME_HDR_MAX], trl[SB_FRAME_HDR_MAX];
    size_t hdr_len, trl_len;
    size_t framed;               /* a whole message: header + payload + trailer, or the request */
    uint8_t *pattern;            /* size + PATTERN_SLACK alphanumeric bytes */
    char req[REQ_MAX];           /* HTTP: the request every connection repeats */
    cli_url url;
    sb_addr addr;
    int64_t start_ns;            /* the run's start: --rate's schedule starts here */
    int64_t begin_ns, end_ns;    /* the measured window (monotonic) */
    double interval_ns;          /* --rate: between two messages of a connection */
    atomic_ullong http_len;      /* HTTP: body length of the first 2xx answer */
    atomic_long settled;         /* --connect-only: connections done or failed */
    sb_tls *tls;                 /* --tls / https: the client context, else NULL */
    char tls_host[256];          /* ... and the name to send and verify */
    atomic_int tls_told;         /* a failed handshake was reported */
    int uring;                   /* the uring engine drives the load (bench_uring.c) */
    pthread_barrier_t dialed, go;
};

struct worker;
struct solo;
struct uring;

/* One connection of a worker. */
struct bconn {
    struct worker *w;
    int fd;                  /* -1 when closed */
    sb_tls_session *tls;     /* TLS over fd, NULL without */
    int mask;                /* what the loop watches for us */
    int settled;             /* --connect-only: counted in b->settled */
    int closing;             /* HTTP: the last response said "Connection: close" */
    int hs;                  /* --reconnect over TLS: the handshake is under way */
    sb_tls_ticket *ticket;   /* --tls-resume: the last connection's, to offer */
    uint64_t id;             /* connection number across threads */
    uint64_t sent, done;     /* messages sent, replies verified */
    uint64_t quota;          /* -n: this connection's share, else UINT64_MAX */
    int64_t t0;              /* --rate: when message 0 is due */
    int64_t *ts;             /* send (or due) times, a ring of pipeline entries */
    uint8_t *in;             /* received, not yet decoded */
    size_t in_len, in_cap;
    uint8_t *out;            /* queued, not yet written: [out_off, out_len) */
    size_t out_off, out_len, out_cap;
    struct hcut hc;          /* HTTP: the response being read */
    /* The uring engine's state of the connection: */
    int u_recv;              /* a multishot receive is armed */
    int u_sending;           /* a send is in flight: [out_off, out_len) is the kernel's */
    int u_dirty;             /* on the engine's list for the end of the turn */
    uint64_t u_owed;         /* messages to queue once the send in flight completes */
};

enum { PH_RUN, PH_DRAIN };

/* One thread's share of the connections, with its loop. */
struct worker {
    struct bench *b;
    int index;
    pthread_t tid;
    sb_loop *loop;
    struct bconn *c;
    long nconns, open;
    int phase;
    sb_timer stop, drain, tick, pace, watch;
    int pace_fd;             /* --rate: the pacer's clock (bench_pace.h), -1: pace */
    int64_t pace_at;         /* --rate: when the pacer fires next, INT64_MAX: idle */
    uint64_t watch_seen;     /* -n: replies at the last progress */
    int64_t watch_at;        /* ... and when */
    int64_t last_ns;         /* the last reply's time */
    struct counters k;
    struct hist hist;        /* the measured window */
    struct hist live;        /* since the last tick (live line only) */
    atomic_ullong pub_received; /* published for the live line */
    atomic_ullong pub_p99;
    atomic_ullong pub_errors;
    atomic_int finished;     /* the loop has returned */
    int err;                 /* a fatal loop error */
    struct solo *solo;       /* --threads 1: the supervisor on this loop */
    struct uring *u;         /* the uring engine's ring, NULL on the loop engine */
};

/* ---- bench.c, for the uring engine ---------------------------------------- */

/* Count the failure in *counter and close c. */
void bench_conn_fail(struct bconn *c, uint64_t *counter);
/* len bytes arrived on c at now: count them, check and record every whole
 * reply (decoded in place when nothing was left over from before; the rest
 * kept in c->in), then queue what the replies make room for. p is the
 * caller's and may be reused as soon as this returns. */
void bench_conn_input(struct bconn *c, const uint8_t *p, size_t len, int64_t now);
/* Queue the messages owed to c while its last send was in flight (after
 * the window: drop them, and close c if nothing is in flight). */
void bench_conn_queue_owed(struct bconn *c, int64_t now);
/* When the worker's next timer or the pacer is due (monotonic ns),
 * INT64_MAX when nothing is. */
int64_t bench_worker_due(const struct worker *w);
/* Run the worker's timers and the pacer if due by now. */
void bench_worker_timers(struct worker *w, int64_t now);

/* ---- bench_uring.c (bench_uring_none.c where liburing is not built) ------- */

/* Whether this process can use io_uring as the engine needs it (a ring,
 * a provided-buffer ring). Returns 0 or a negative errno (-ENOSYS: not
 * built with liburing). */
int bench_uring_probe(void);
/* The worker's ring, made on the thread that will run it (the ring accepts
 * submissions from that thread alone); a receive armed on each open
 * connection. Returns 0 or a negative errno. */
int bench_uring_open(struct worker *w);
/* Turns until every connection is closed: complete, check, refill, run
 * the timers, submit the sends and wait, in one system call a turn.
 * Returns 0 or a fatal ring error. */
int bench_uring_run(struct worker *w);
/* c has bytes queued in [out_off, out_len) or messages owed: send them at
 * the end of the turn. */
void bench_uring_flush(struct bconn *c);
/* c's socket is about to be closed: end the operations that hold it. */
void bench_uring_close(struct bconn *c);
/* Free the ring (after it, the connections' buffers may go). */
void bench_uring_free(struct worker *w);

#endif
