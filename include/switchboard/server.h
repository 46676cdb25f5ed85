/** @file
 * server: a listener plus a dispatch model - the three ways of HOWTO
 * section 2 to run the accept loop:
 *
 *   SB_MODEL_EVENT    loop threads (`workers`, default one) multiplex every connection (default)
 *   SB_MODEL_THREADS  one thread per connection, capped at max_conns
 *   SB_MODEL_FORK     one process per connection, capped, children reaped
 *
 * All run the same sb_handler. The event model runs `workers` loops, one
 * thread each, every connection on one loop for its whole life.
 *
 * SIGINT and SIGTERM (or sb_server_stop) stop the server cleanly. Event
 * model: each worker serves the connections already queued on its
 * listener and closes it; idle connections close at once; one with a
 * message under way (or not yet sent its first) is answered first; after
 * `grace_ms` the rest are cut. The blocking models close every connection
 * after its replies, within `grace_ms`. Then sb_server_run returns 0.
 *
 * sb_server_new sets SIGPIPE to ignored for the process: replies sent
 * with sendfile(2) cannot ask for MSG_NOSIGNAL. A unix: listener's socket
 * file is removed by sb_server_free.
 */
#ifndef SWITCHBOARD_SERVER_H
#define SWITCHBOARD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The dispatch model: how the server runs its connections. */
typedef enum sb_model {
    SB_MODEL_EVENT,   /**< one thread, every connection on an event loop */
    SB_MODEL_THREADS, /**< a thread per connection */
    SB_MODEL_FORK     /**< a process per connection */
} sb_model;

/** A listening server (opaque). */
typedef struct sb_server sb_server;

/** What sb_server_new needs; sb_server_opts_default fills it. */
typedef struct sb_server_opts {
    const char *listen;   /**< ADDR (default "127.0.0.1:7000") */
    sb_model model;       /**< dispatch model (default SB_MODEL_EVENT) */
    const char *backend;  /**< event model: loop backend, NULL = default */
    int backlog;          /**< <= 0: SOMAXCONN */
    int max_conns;        /**< 0: 1024 (threads, fork), 100000 (event); with several
                           * workers checked by each as it accepts, so concurrent
                           * accepts may pass it by a few for an instant */
    int grace_ms;         /**< stop: the longest drain, ms (0: 2000; CLI --drain-timeout) */
    int keepalive_s;      /**< > 0: TCP keepalive on accepted connections, first probe
                           * after this many idle seconds (HOWTO 4.1: a peer that
                           * vanished is found even with no timeout set) */
    int handle_signals;   /**< SIGINT/SIGTERM stop the server (CLI: 1). Taken by
                           * sb_server_new, so a signal that comes before
                           * sb_server_run is kept and run returns 0 at once;
                           * sb_server_free restores the dispositions found.
                           * One server at a time: while one holds them,
                           * sb_server_new of another asking for them fails
                           * with -EBUSY. */
    /** Event model: event loops, each on its own thread (0 or 1: one, on
     * the thread calling sb_server_run; SB_WORKERS_AUTO: one per CPU the
     * process may run on). A connection lives on one loop for its whole
     * life; handlers of different connections may run at once on
     * different threads - reach another loop's connection through
     * sb_loop_post. Over TCP each worker has its own SO_REUSEPORT
     * listener; a unix: listener is shared by the workers. */
    int workers;
    /** 1: set SO_REUSEPORT on the listeners, so that a new instance can
     * bind the port while this one drains (a restart that loses no
     * connection; see docs/deploy.md). */
    int reuseport;
    /** 1: every connection starts with a PROXY protocol header (v1 or v2,
     * from a load balancer); its source address becomes the peer
     * (sb_conn_peer). A connection without a valid header within 5 seconds
     * (or conn.idle_timeout_ms or conn.read_timeout_ms, when set and
     * shorter) is closed; the handler never sees it. Event model only. */
    int proxy_protocol;
    /** > 0: serve this socket, already bound and listening, instead of
     * binding listen (systemd socket activation hands over fd 3: see
     * sb_listen_fds). The server owns it from sb_server_new on, even when
     * that fails: -ENOTSOCK (or -EBADF) for what is not a socket, -EINVAL
     * for a socket that is not listening (a datagram socket, a connection).
     * Every worker watches it. */
    int listen_fd;
    /** "HOST:PORT": serve Prometheus metrics at http://HOST:PORT/metrics
     * on a thread of their own (NULL: off). */
    const char *metrics;
    sb_conn_opts conn;    /**< per-connection options */
    /** Where the server reports what it did not do (a shed connection, an
     * fd the select backend cannot hold, accept pausing on EMFILE). The
     * library never prints; NULL drops the reports. Called on the thread
     * that saw the event; messages are rate limited to a few per second. */
    void (*log)(void *ud, const char *msg);
    void *log_ud;         /**< passed to log */
    /** Called once by sb_server_run, on its thread, when the server serves:
     * the model is set up (the event loop and its descriptors exist), the
     * listener is watched, and it is about to wait for the first
     * connection. The place to announce the address: whoever acts on the
     * announcement finds the server complete. NULL: not called. */
    void (*on_ready)(sb_server *s, void *ud);
    void *on_ready_ud;    /**< passed to on_ready */
} sb_server_opts;

/** sb_server_opts.workers: one worker per CPU in the affinity mask. */
#define SB_WORKERS_AUTO (-1)

/** Counters since sb_server_new (sb_server_stats_get). */
typedef struct sb_server_stats {
    uint64_t accepted;    /**< connections accepted */
    uint64_t refused;     /**< connections shed (cap reached, EMFILE) */
    uint64_t messages;    /**< messages delivered to the handler */
    uint64_t active;      /**< connections open now */
} sb_server_stats;

/** The defaults: 127.0.0.1:7000, line framing, event model, sb_conn_opts_default. */
void sb_server_opts_default(sb_server_opts *o);
/** Bind and listen now (so the port is known), dispatch on run. The handler
 * must outlive the server. Returns 0 with *out, or an error (-EBUSY: it asks
 * for handle_signals while another server holds them; -ENOSYS: the fork
 * model on Windows, which has no fork()). */
int sb_server_new(sb_server **out, const sb_server_opts *o, const sb_handler *h);
/** Serve until stopped. Returns 0 after a clean stop, or the negative error
 * that ended it (the loop or the accept step failed). */
int sb_server_run(sb_server *s);
/** Ask the server to stop: thread-safe and async-signal-safe. */
void sb_server_stop(sb_server *s);
/** The bound TCP port (useful with port 0), or a negative error. */
int sb_server_port(const sb_server *s);
/** The bound address as "127.0.0.1:7000", "[::1]:7000" or "unix:/path"
 * into out[0..n). Returns its length or a negative error. */
int sb_server_address(const sb_server *s, char *out, size_t n);
/** Copy the counters into *st; safe from any thread while it runs. */
void sb_server_stats_get(const sb_server *s, sb_server_stats *st);
/** systemd socket activation: the number of listening sockets passed
 * to this process (LISTEN_FDS, when LISTEN_PID is this process; they are
 * fds 3, 4, ...), or 0. The variables are left as they are. */
int sb_listen_fds(void);
/** The number of workers (event loops) the server runs: 1 outside the
 * event model. */
int sb_server_workers(const sb_server *s);
/** Worker i's loop (0 <= i < sb_server_workers), or NULL outside the
 * event model or before sb_server_run has created it. Owned by the server;
 * valid until sb_server_free. Only sb_loop_post, sb_loop_wakeup and
 * sb_loop_stop_async may be called on it from other threads. */
sb_loop *sb_server_loop(const sb_server *s, int i);
/** Write the server's counters in the Prometheus text exposition format
 * (version 0.0.4) into out[0..n): per-worker series labelled worker="i".
 * Safe from any thread while the server runs. Returns the length (which
 * may exceed n - 1: the text was cut; call again with more room) or a
 * negative error. */
int sb_server_metrics(const sb_server *s, char *out, size_t n);
/** The metrics listener's bound address (sb_server_opts.metrics, useful
 * with port 0) into out[0..n). Returns its length, -ENOENT when metrics
 * are off, or -ENOSPC. */
int sb_server_metrics_address(const sb_server *s, char *out, size_t n);
/** Close the listener and free the server (not while sb_server_run runs;
 * NULL is a no-op). */
void sb_server_free(sb_server *s);

/** "event", "threads" or "fork" into *out. Returns 0 or -EINVAL. */
int sb_model_parse(const char *name, sb_model *out);
/** The name sb_model_parse reads; static. */
const char *sb_model_name(sb_model m);

#ifdef __cplusplus
}
#endif

#endif
