/* conn_int: what server.c needs from conn.c beyond the public API - an
 * owner hook so the server can count messages, keep its list of open
 * connections and learn when one is gone, without conn.c knowing which
 * dispatch model runs it. */
#ifndef SB_CONN_INT_H
#define SB_CONN_INT_H

#include <stdint.h>

#include "switchboard/conn.h"

typedef struct sb__conn_owner sb__conn_owner;
struct sb__conn_owner {
    /* Messages delivered to handlers, shared by every connection of the
     * owner (atomic: threads and fork children add to it concurrently). */
    uint64_t *messages;
    /* Called once when a connection is freed (after on_close). */
    void (*gone)(sb__conn_owner *ow, sb_conn *c);
    void *ud;
};

/* sb_conn_open with an owner; the links below are the owner's to use. */
int sb__conn_open(sb_loop *l, int fd, const sb_conn_opts *o, const sb_handler *h,
                  sb__conn_owner *ow, sb_conn **out);
int sb__conn_run_blocking(int fd, const sb_conn_opts *o, const sb_handler *h,
                          sb__conn_owner *ow);

/* The owner's intrusive list links (event model: all connections of a loop). */
sb_conn **sb__conn_link_next(sb_conn *c);
sb_conn **sb__conn_link_prev(sb_conn *c);

/* Replace the connection's transport (see transport.h) before any I/O -
 * the hook a TLS layer uses. The connection owns state from now on. */
struct sb__transport;
void sb__conn_set_transport(sb_conn *c, const struct sb__transport *tp, void *state);

/* Begin a close with reason err (graceful: flush first). Safe anywhere. */
void sb__conn_close_err(sb_conn *c, int err, int graceful);

#endif
