/* bench_opts: the command line of `switchboard bench` (bench.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"
#include "cli.h"

/* -n's bound: a trillion messages, or what a long holds (32 bits on Windows). */
#define COUNT_MAX (LONG_MAX < 1000000000000LL ? LONG_MAX : (long)1000000000000LL)

/* ---- options ------------------------------------------------------------ */

static const char bench_usage[] =
    "usage: switchboard bench ADDR|http[s]://HOST[:PORT]/PATH [options]\n"
    "\n"
    "Load-test a server. ADDR: a server that echoes framed messages; every reply\n"
    "is checked byte for byte. http://...: any HTTP/1.1 server, one GET repeated\n"
    "over keep-alive; each response's status and length are checked (non-2xx,\n"
    "or a body length other than the first response's, is an error). Reports\n"
    "messages (requests)/s, MB/s, latency percentiles, errors and the client's\n"
    "own CPU time per message. On a terminal, a status line is redrawn on\n"
    "stderr while it runs.\n"
    "\n"
    "  -c, --conns N     connections (default 50)\n"
    "  --pipeline P      messages in flight per connection at most (default 1)\n"
    "  --duration S      measured seconds, fractions allowed (default 5; with -n:\n"
    "                    a time limit)\n"
    "  --warmup S        seconds before measuring starts (default 1; not with -n)\n"
    "  -n N              send N messages in all, then stop; every reply counts\n"
    "  --rate R          open loop: R messages/s in all on a fixed schedule;\n"
    "                    latency counts from when each message was due\n"
    "                    (coordinated omission corrected, as wrk2)\n"
    "  --size BYTES      payload size, K/M suffixes allowed (default 64; ADDR only)\n"
    "  --frame SPEC      framing (default line; raw and eof cannot be checked;\n"
    "                    ADDR only)\n"
    "  --threads T       client threads, each with its own loop (default 1)\n"
    "  --backend NAME    the client's backend: epoll | poll | select | uring\n"
    "                    (default epoll). uring on a framed ADDR: the client is\n"
    "                    completion-based (a multishot receive per connection,\n"
    "                    each turn's sends and wait in one system call), the\n"
    "                    cheapest per message; with --tls, an http:// URL,\n"
    "                    --connect-only or --reconnect it is the loop's uring\n"
    "                    backend. Exit 1 when io_uring cannot be used here\n"
    "  --json            print one JSON object instead of the text report\n"
    "  --connect-only    open the connections, one message each, then hold them\n"
    "                    (ADDR only)\n"
    "  --hold S          with --connect-only: seconds to hold them idle (default 10)\n"
    "  --tls             speak TLS to ADDR (implied by https://); each connection's\n"
    "                    handshake is made before the run starts\n"
    "  --cacert FILE     with TLS: trust the CA certificates in FILE (PEM)\n"
    "  -k, --insecure    with TLS: verify neither the certificate nor the host name\n"
    "  --reconnect       every message (request) on a new connection: dial, TLS\n"
    "                    handshake, one message, close; with http://, sends\n"
    "                    \"Connection: close\". Reports connections/s (= handshakes/s)\n"
    "                    and latency from the connect to the whole reply\n"
    "  --tls-resume      with --reconnect over TLS: offer the session ticket of the\n"
    "                    connection's predecessor (resumed handshakes); without it\n"
    "                    every handshake is a full one\n"
    "  --marks           print \"switchboard: bench: window begins\" and \"... ends\" on\n"
    "                    stderr at the edges of the measured window (for scripts\n"
    "                    that sample the server's CPU over the same window)\n"
    "  -h, --help        this text\n"
    "\n"
    "Exit status: 0 when every reply checked and at least one message was\n"
    "measured (-n: all N answered; --connect-only: every connection answered),\n"
    "1 otherwise (a message says so when bytes came back but no reply could be\n"
    "decoded from them), 2 for a usage error.\n";

/* One option at argv[i] (value v). Returns how many arguments it took
 * (1 or 2), 0 for --help (printed), -1 for a usage error (printed). */
static int parse_one(const char *a, const char *v, struct bench_opts *o)
{
    int r = 0;

    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        fputs(bench_usage, stdout);
        return 0;
    } else if (strcmp(a, "--conns") == 0 || strcmp(a, "-c") == 0) {
        r = cli_parse_long(a, v, 1, 1000000, &o->conns);
    } else if (strcmp(a, "--pipeline") == 0) {
        r = cli_parse_long(a, v, 1, 65536, &o->pipeline);
        o->pipeline_given = 1;
    } else if (strcmp(a, "--threads") == 0) {
        r = cli_parse_long(a, v, 1, 256, &o->threads);
    } else if (strcmp(a, "-n") == 0) {
        r = cli_parse_long(a, v, 1, COUNT_MAX, &o->count);
    } else if (strcmp(a, "--rate") == 0) {
        r = cli_parse_decimal(a, v, 0.001, 1e9, "a rate in messages/s", &o->rate);
    } else if (strcmp(a, "--size") == 0) {
        r = cli_parse_size(a, v, &o->size);
        o->size_given = 1;
    } else if (strcmp(a, "--duration") == 0) {
        r = cli_parse_seconds(a, v, 0, 86400, &o->duration);
        o->duration_given = 1;
    } else if (strcmp(a, "--warmup") == 0) {
        r = cli_parse_seconds(a, v, 0, 86400, &o->warmup);
        o->warmup_given = 1;
    } else if (strcmp(a, "--hold") == 0) {
        r = cli_parse_seconds(a, v, 0, 86400, &o->hold);
    } else if (strcmp(a, "--cacert") == 0) {
        if (v == NULL) {
            cli_error(a, "missing value");
            return -1;
        }
        o->cacert = v;
    } else if (strcmp(a, "--frame") == 0 || strcmp(a, "--backend") == 0) {
        if (v == NULL) {
            cli_error(a, "missing value");
            return -1;
        }
        *(a[2] == 'f' ? &o->frame : &o->backend) = v;
        o->frame_given |= a[2] == 'f';
    } else {
        if (strcmp(a, "--json") == 0)
            o->json = 1;
        else if (strcmp(a, "--connect-only") == 0)
            o->connect_only = 1;
        else if (strcmp(a, "--marks") == 0)
            o->marks = 1;
        else if (strcmp(a, "--tls") == 0)
            o->tls = 1;
        else if (strcmp(a, "--reconnect") == 0)
            o->reconnect = 1;
        else if (strcmp(a, "--tls-resume") == 0)
            o->tls_resume = 1;
        else if (strcmp(a, "--insecure") == 0 || strcmp(a, "-k") == 0)
            o->insecure = 1;
        else if (a[0] == '-' && a[1] != '\0')
            return cli_error(a, "unknown option (try --help)"), -1;
        else if (o->addr == NULL)
            o->addr = a;
        else
            return cli_error(a, "unexpected argument (try --help)"), -1;
        return 1;
    }
    return r < 0 ? -1 : 2;
}

/* Options that do not go together. Returns 0 or -1 (printed). */
static int check_opts(struct bench_opts *o)
{
    const char *opt = NULL, *why = NULL;

    if (o->http && (o->frame_given || o->size_given || o->connect_only)) {
        opt = o->frame_given ? "--frame" : o->size_given ? "--size" : "--connect-only";
        why = "applies to ADDR, not to an http:// URL";
    } else if (o->count && (o->warmup_given || o->connect_only)) {
        opt = o->warmup_given ? "--warmup" : "--connect-only";
        why = "does not go with -n (every reply counts)";
    } else if (o->rate > 0 && o->connect_only) {
        opt = "--connect-only";
        why = "does not go with --rate";
    } else if (o->reconnect && (o->connect_only || o->rate > 0 ||
                                (o->pipeline_given && o->pipeline > 1))) {
        opt = o->connect_only ? "--connect-only" : o->rate > 0 ? "--rate" : "--pipeline";
        why = "does not go with --reconnect (one message per connection)";
    } else if (o->tls_resume && !(o->reconnect && o->tls)) {
        opt = "--tls-resume";
        why = o->tls ? "needs --reconnect" : "needs --tls or an https:// URL";
    }
    if (opt) {
        cli_error(opt, "%s", why);
        return -1;
    }
    if (o->count) {
        o->warmup = 0;
        if (o->conns > o->count)
            o->conns = o->count;
    }
    if (o->threads > o->conns)
        o->threads = o->conns;
    return 0;
}

int bench_parse_opts(int argc, char **argv, struct bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->frame = "line";
    o->conns = 50;
    o->pipeline = 1;
    o->threads = 1;
    o->size = 64;
    o->duration = 5;
    o->warmup = 1;
    o->hold = 10;
    for (int i = 1; i < argc; i++) {
        int took = parse_one(argv[i], i + 1 < argc ? argv[i + 1] : NULL, o);
        if (took <= 0)
            return took == 0 ? 1 : -1;
        i += took - 1;
    }
    if (o->addr == NULL) {
        fputs(bench_usage, stderr);
        return -1;
    }
    o->http = strncasecmp(o->addr, "http://", 7) == 0 || strncasecmp(o->addr, "https://", 8) == 0;
    if (strncasecmp(o->addr, "https://", 8) == 0)
        o->tls = 1;
    if (!o->tls && (o->cacert || o->insecure)) {
        cli_error(o->cacert ? "--cacert" : "--insecure", "needs --tls or an https:// URL");
        return -1;
    }
    return check_opts(o);
}

