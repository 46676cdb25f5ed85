/* send: `switchboard send` - a framing-aware client. Each MESSAGE (or each
 * stdin line) is framed and sent; each reply's payload is printed on its
 * own line. With --half-close the client sends everything, shuts down its
 * sending side and reads replies until the server closes: the HTTP-like
 * exchange of HOWTO section 4. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char send_usage[] =
    "usage: switchboard send ADDR [options] [MESSAGE...]\n"
    "\n"
    "Sends each MESSAGE (no MESSAGE: each line of stdin) framed with SPEC and\n"
    "prints each reply on its own line.\n"
    "\n"
    "  --frame SPEC     framing (line); see `switchboard serve --help`\n"
    "  --type T         typed framing: the type byte (one character or 0xHH)\n"
    "  --half-close     send all, shut down the sending side, read until the\n"
    "                   server closes (implied by --frame eof)\n"
    "  --timeout S      give up on connect or a reply after S seconds (10;\n"
    "                   fractions allowed)\n"
    "  --max-msg BYTES  largest reply accepted (16M)\n"
    "  --tls            speak TLS; the server's certificate must verify against\n"
    "                   the system's CAs (or --cacert) and name the host\n"
    "  --cacert FILE    with --tls: trust the CA certificates in FILE (PEM)\n"
    "  --insecure, -k   with --tls: do not verify the certificate or host name\n"
    "  --sni NAME       with --tls: the server name to send and verify (ADDR's\n"
    "                   host by default)\n"
    "  -h, --help       this text\n"
    "\n"
    "ADDR is HOST:PORT, [V6]:PORT, :PORT (loopback) or unix:PATH.\n"
    "\n"
    "Exit status: 0 when every reply came, 1 on a runtime failure (connection\n"
    "refused, timeout, the server closed early, a reply over --max-msg, a\n"
    "certificate that does not verify), 2 for\n"
    "a usage error (unknown option, a value or ADDR that does not parse).\n";

typedef struct {
    const char *addr;
    sb_frame_spec spec;
    int type;
    int half_close;
    int timeout_ms;
    size_t max_msg;
    sb_stream *st;
    int tls;             /* --tls */
    const char *cacert;  /* --cacert */
    int insecure;        /* -k */
    const char *sni;     /* --sni */
    sb_tls_session *ts;  /* the connection's TLS */
    size_t sent_bytes;  /* raw framing: replies are counted in bytes */
    size_t recv_bytes;
} send_args;

static int print_reply(const sb_msg *m)
{
    fwrite(m->data, 1, m->len, stdout);
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? 0 : -EIO;
}

static int send_one(send_args *a, const char *p, size_t n)
{
    int rc = sb_stream_write_msg(a->st, a->type, p, n);
    if (rc < 0) {
        cli_error("message", "cannot be framed: %s", sb_strerror(rc));
        return -1;
    }
    a->sent_bytes += n;
    return 0;
}

/* Read one reply (raw: until as many bytes came back as went out). */
static int read_one(send_args *a, int eof_ok)
{
    sb_msg m;
    int rc = sb_stream_read_msg(a->st, &m);

    if (rc == 1) {
        a->recv_bytes += m.len;
        return print_reply(&m) < 0 ? -1 : 1;
    }
    if (rc == 0 && eof_ok)
        return 0;
    cli_error(a->addr, "%s", rc == 0 ? "connection closed before the reply" : sb_strerror(rc));
    return -1;
}

/* No MESSAGE with --half-close: stdin is the request - one message for
 * `eof` framing (everything up to our shutdown), else one per line. */
static int send_stdin(send_args *a)
{
    char *line = NULL;
    size_t cap = 0, len = 0;
    ssize_t n;
    int rc = 0;

    if (a->spec.kind == SB_FRAME_EOF) {
        char buf[65536];
        size_t got;
        while ((got = fread(buf, 1, sizeof(buf), stdin)) > 0 && rc == 0) {
            rc = sb_stream_write(a->st, buf, got) < 0 ? -1 : 0;
            len += got;
        }
        a->sent_bytes += len;
        return rc;
    }
    while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        rc = send_one(a, line, (size_t)n);
    }
    free(line);
    return rc;
}

/* HOWTO 4: send everything, shutdown(1), read replies until EOF. */
static int run_half_close(send_args *a, int fd, int argc, char **argv)
{
    int rc;

    if (argc == 0 && send_stdin(a) < 0)
        return 1;
    for (int i = 0; i < argc; i++)
        if (send_one(a, argv[i], strlen(argv[i])) < 0)
            return 1;
    if ((rc = sb_stream_flush(a->st)) < 0 ||
        (rc = a->ts ? sb_tls_shutdown(a->ts, sb_now_ms() + a->timeout_ms) : sb_shutdown_write(fd)) < 0) {
        cli_error(a->addr, "%s", sb_strerror(rc));
        return 1;
    }
    while ((rc = read_one(a, 1)) == 1)
        ;
    return rc < 0 ? 1 : 0;
}

static int await_replies(send_args *a, int count)
{
    if (a->spec.kind == SB_FRAME_RAW) {
        while (a->recv_bytes < a->sent_bytes)
            if (read_one(a, 0) < 0)
                return -1;
        return 0;
    }
    for (int i = 0; i < count; i++)
        if (read_one(a, 0) < 0)
            return -1;
    return 0;
}

static int run_exchange(send_args *a, int argc, char **argv)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    if (argc > 0) {
        /* All messages back to back in one write, then every reply. */
        for (int i = 0; i < argc; i++)
            if (send_one(a, argv[i], strlen(argv[i])) < 0)
                return 1;
        if ((rc = sb_stream_flush(a->st)) < 0) {
            cli_error(a->addr, "%s", sb_strerror(rc));
            return 1;
        }
        return await_replies(a, argc) < 0 ? 1 : 0;
    }
    while (rc == 0 && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (send_one(a, line, (size_t)len) < 0 || sb_stream_flush(a->st) < 0 || await_replies(a, 1) < 0)
            rc = 1;
    }
    free(line);
    return rc;
}

static int parse_type(const char *v, int *out)
{
    if (v[0] != '\0' && v[1] == '\0') {
        *out = (unsigned char)v[0];
        return 0;
    }
    if (strncmp(v, "0x", 2) == 0 && strlen(v) == 4) {
        char *end;
        long t = strtol(v + 2, &end, 16);
        if (*end == '\0') {
            *out = (int)t;
            return 0;
        }
    }
    cli_error("--type", "'%s' is not one character or 0xHH", v);
    return -1;
}

enum { O_FRAME = 256, O_TYPE, O_HALF, O_TIMEOUT, O_MAXMSG, O_HELP, O_TLS, O_CACERT, O_INSECURE, O_SNI };

static const struct option send_opts[] = {
    {"frame", required_argument, NULL, O_FRAME},     {"type", required_argument, NULL, O_TYPE},
    {"half-close", no_argument, NULL, O_HALF},       {"timeout", required_argument, NULL, O_TIMEOUT},
    {"max-msg", required_argument, NULL, O_MAXMSG},  {"help", no_argument, NULL, O_HELP},
    {"tls", no_argument, NULL, O_TLS},               {"cacert", required_argument, NULL, O_CACERT},
    {"insecure", no_argument, NULL, O_INSECURE},     {"sni", required_argument, NULL, O_SNI},
    {NULL, 0, NULL, 0}};

static int send_parse(send_args *a, int argc, char **argv)
{
    int opt;
    double secs;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:hk", send_opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
        case O_HELP: fputs(send_usage, stdout); return 1;
        case O_FRAME:
            if (sb_frame_parse(optarg, &a->spec) < 0) {
                cli_error("--frame", "%s", cli_frame_why(optarg));
                return -1;
            }
            break;
        case O_TYPE:
            if (parse_type(optarg, &a->type) < 0)
                return -1;
            break;
        case O_HALF: a->half_close = 1; break;
        case O_TLS: a->tls = 1; break;
        case O_CACERT: a->cacert = optarg; break;
        case 'k':
        case O_INSECURE: a->insecure = 1; break;
        case O_SNI: a->sni = optarg; break;
        case O_TIMEOUT:
            if (cli_parse_seconds("--timeout", optarg, 0.001, 86400, &secs) < 0)
                return -1;
            a->timeout_ms = (int)(secs * 1000 + 0.5);
            break;
        case O_MAXMSG:
            if (cli_parse_size("--max-msg", optarg, &a->max_msg) < 0)
                return -1;
            break;
        default:
            cli_getopt_error(opt, argv, optind);
            return -1;
        }
        if (optind < argc && argv[optind][0] != '-' && a->addr == NULL)
            a->addr = argv[optind++];
    }
    return 0;
}

/* --tls: the handshake, verifying the server as ADDR's host (or --sni). */
static int send_tls(send_args *a, const sb_addr_spec *where, int fd)
{
    sb_tls_opts o;
    sb_tls *ctx;
    char why[256] = "";
    int rc;

    sb_tls_opts_default(&o);
    o.ca_file = a->cacert;
    o.insecure = a->insecure;
    if ((rc = sb_tls_client_new(&ctx, &o, why, sizeof why)) < 0) {
        cli_error(a->cacert ? "--cacert" : "--tls", "%s", why[0] ? why : sb_strerror(rc));
        return -1;
    }
    /* ":PORT" and unix: have no host to verify: the loopback's name. */
    rc = sb_tls_connect(&a->ts, ctx, fd, a->sni ? a->sni : where->host[0] ? where->host : "localhost",
                        sb_now_ms() + a->timeout_ms, why, sizeof why);
    sb_tls_free(ctx); /* the session keeps what it needs */
    if (rc < 0) {
        cli_error(a->addr, "TLS handshake: %s", why[0] ? why : sb_strerror(rc));
        return -1;
    }
    return 0;
}

int cmd_send(int argc, char **argv)
{
    send_args a;
    sb_addr_spec where;
    int fd, rc;

    memset(&a, 0, sizeof(a));
    sb_frame_parse("line", &a.spec);
    a.type = -1;
    a.timeout_ms = 10000;
    a.max_msg = 16u << 20;
    /* ADDR first, options anywhere after it or before it. */
    if (argc > 1 && argv[1][0] != '-') {
        a.addr = argv[1];
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    rc = send_parse(&a, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (a.addr == NULL) {
        if (optind >= argc) {
            cli_error("ADDR", "missing (try --help)");
            return 2;
        }
        a.addr = argv[optind++];
    }
    /* A malformed ADDR is a usage error, found before anything is tried;
     * resolving and connecting are runtime steps. */
    if ((rc = sb_addr_parse(a.addr, &where)) < 0) {
        cli_error(a.addr, "%s (HOST:PORT, [V6]:PORT, :PORT or unix:PATH)", sb_strerror(rc));
        return 2;
    }
    if (a.spec.kind == SB_FRAME_EOF)
        a.half_close = 1;
    if (!a.tls && (a.cacert || a.insecure || a.sni)) {
        cli_error(a.cacert ? "--cacert" : a.sni ? "--sni" : "--insecure", "needs --tls");
        return 2;
    }
    if (a.tls && !sb_tls_available()) { /* an option this build does not have */
        cli_error("--tls", "%s", sb_strerror(SB_ENOTLS));
        return 2;
    }
    fd = sb_dial(a.addr, a.timeout_ms);
    if (fd < 0) {
        cli_error(a.addr, "%s", sb_strerror(fd));
        return 1;
    }
    if (a.tls && send_tls(&a, &where, fd) < 0) {
        close(fd);
        return 1;
    }
    rc = sb_stream_open(&a.st, fd, &a.spec, a.max_msg, a.timeout_ms);
    if (rc < 0) {
        cli_error(a.addr, "%s", sb_strerror(rc));
        sb_tls_session_free(a.ts);
        close(fd);
        return 1;
    }
    sb_stream_set_tls(a.st, a.ts);
    if (a.half_close)
        rc = run_half_close(&a, fd, argc - optind, argv + optind);
    else
        rc = run_exchange(&a, argc - optind, argv + optind);
    sb_stream_close(a.st);
    sb_tls_session_free(a.ts);
    close(fd);
    return rc;
}
