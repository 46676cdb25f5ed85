/** @file
 * server: a listener plus a dispatch model - the three ways of HOWTO
 * section 2 to run the accept loop:
 *
 *   SB_MODEL_EVENT    one loop thread multiplexes every connection (default)
 *   SB_MODEL_THREADS  one thread per connection, capped at max_conns
 *   SB_MODEL_FORK     one process per connection, capped, children reaped
 *
 * All run the same sb_handler. SIGINT and SIGTERM stop the server cleanly:
 * the listener closes, open connections get up to `grace_ms` to finish and
 * are then closed, and sb_server_run returns 0.
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
    int max_conns;        /**< 0: 1024 (threads, fork), 100000 (event) */
    int grace_ms;         /**< shutdown grace period (0: 2000) */
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
 * for handle_signals while another server holds them). */
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
