/* bench: what the parts of `switchboard bench` share: the options as
 * parsed (bench_opts.c), the counters of a run, and the report
 * (bench_report.c). The load itself is bench.c's; the HTTP pieces are
 * bench_http.c's, the pacer's clock bench_pace_linux.c's. */
#ifndef SB_CLI_BENCH_H
#define SB_CLI_BENCH_H

#include <stdint.h>
#include <stdio.h>

#include "hist.h"

#define HTTP_STATUS_MAX 1000  /* statuses are three digits */

struct bench_opts {
    const char *addr;         /* ADDR or the http:// URL as given */
    const char *frame;        /* SPEC as given */
    const char *backend;      /* client loop backend, NULL = default */
    long conns, pipeline, threads;
    size_t size;
    int size_given, frame_given, warmup_given, duration_given;
    long count;               /* -n: messages in all, 0 = by --duration */
    double rate;              /* --rate: messages/s in all, 0 = closed loop */
    double duration, warmup, hold;
    int json, connect_only, live;
    int marks;                /* --marks: window edges on stderr */
    int http;                 /* ADDR is an http:// URL */
    int tls;                  /* --tls, or an https:// URL */
    const char *cacert;       /* --cacert */
    int insecure;             /* -k, --insecure */
    int reconnect;            /* --reconnect: one message per connection */
    int tls_resume;           /* --tls-resume: offer the slot's last session */
    int pipeline_given;
};

struct counters {
    uint64_t messages;       /* replies inside the measured window */
    uint64_t received;       /* every verified reply */
    uint64_t cut;            /* every reply cut from the input, good or not */
    uint64_t sent;           /* every message sent */
    uint64_t connected, reconnects;
    uint64_t handshakes;     /* --reconnect over TLS: handshakes completed */
    uint64_t resumed;        /* ... of which the server resumed a session */
    uint64_t bytes_in;       /* every byte received */
    uint64_t bytes_win;      /* ... inside the measured window */
    uint64_t e_connect, e_tls, e_mismatch, e_closed, e_io, e_decode, e_unanswered;
    uint64_t e_status, e_length; /* HTTP: non-2xx; 2xx body of another length */
    uint64_t status[HTTP_STATUS_MAX]; /* HTTP: responses per status */
    uint64_t ring_bufs;      /* uring engine: the most buffers its kernel ring held at once */
};

struct result {
    struct counters k;
    struct hist h;
    double window_s, cpu_s;
    int loop_err;
    const char *client;       /* the client's backend, "uring-completion" for bench_uring.c */
};

static inline uint64_t errors_of(const struct counters *k)
{
    return k->e_connect + k->e_tls + k->e_mismatch + k->e_closed + k->e_io + k->e_decode +
           k->e_unanswered + k->e_status + k->e_length;
}

/* Parse the command line into *o. Returns 0, 1 for --help (printed), -1
 * for a usage error (printed). */
int bench_parse_opts(int argc, char **argv, struct bench_opts *o);

/* The run's parameters in one line (no newline): the report's first line,
 * and the terminal's before the live line. */
void bench_describe(const struct bench_opts *o, FILE *f);
void bench_print_text(const struct bench_opts *o, const struct result *r);
void bench_print_json(const struct bench_opts *o, const struct result *r);

#endif
