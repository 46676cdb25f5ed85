/* metrics_int: the Prometheus exporter a server runs on a thread of its
 * own (sb_server_opts.metrics). */
#ifndef SB_METRICS_INT_H
#define SB_METRICS_INT_H

#include "switchboard/server.h"

struct sb__exporter;

/* Bind addr now (so that a bad address fails sb_server_new); the thread
 * starts on first sb__exporter_start. Returns 0 or a negative error. */
int sb__exporter_new(struct sb__exporter **out, const char *addr, const sb_server *s);
/* Start serving (idempotent); 0 or a negative error. */
int sb__exporter_start(struct sb__exporter *e);
/* The bound address ("127.0.0.1:9100"). */
const char *sb__exporter_address(const struct sb__exporter *e);
/* In a fork child: close every descriptor the exporter holds (listener,
 * stop pipe, scrape connections), so that the port is the parent's alone
 * and a new instance can bind it while this child lives. Frees nothing:
 * the child exits without sb__exporter_free. */
void sb__exporter_close_child(struct sb__exporter *e);
/* Stop the thread, close the listener, free; NULL is a no-op. */
void sb__exporter_free(struct sb__exporter *e);

#endif
