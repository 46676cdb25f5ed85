/* serve: `switchboard serve` - run an app under a dispatch model. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apps.h"
#include "cli.h"
#include "os.h"

static const char serve_usage_head[] =
    "usage: switchboard serve [options]\n"
    "\n"
    "  --listen ADDR          HOST:PORT, [V6]:PORT, :PORT or unix:PATH (127.0.0.1:7000)\n"
    "  --app NAME             echo | chat | http (echo)\n"
    "  --model NAME           event | threads | fork (event)\n"
    "  --backend NAME         event loop: %s\n";

static const char serve_usage[] =
    "  --frame SPEC           raw line delim:STR fixed:N ascii:N len16 len32 len64\n"
    "                         varint typed:T=N,... eof (line)\n"
    "  --max-msg BYTES        largest message accepted (1M)\n"
    "  --max-conns N          connections served at once (event 100000, else 1024)\n"
    "  --idle-timeout S       close a connection silent for S seconds (off)\n"
    "  --read-timeout S       close when a started message stalls S seconds (off)\n"
    "  --write-timeout S      close when replies make no progress for S seconds (off)\n"
    "                         (the three take fractions of a second: 0.25)\n"
    "  --keepalive S          TCP keepalive probes after S idle seconds (off)\n"
    "  --out-cap BYTES        cap on a peer's unread replies in memory (4M + max-msg)\n"
    "  --backlog N            listen backlog (SOMAXCONN)\n"
    "  --work-us N            CPU microseconds the echo app spends per message (0)\n"
    "  --workers N|auto       event model: N loops on N threads; auto = one per CPU\n"
    "                         this process may use (1)\n"
    "  --reuseport            SO_REUSEPORT: a new instance may bind the port while\n"
    "                         this one drains (restarts without a refused connection)\n"
    "  --drain-timeout S      on SIGTERM: longest wait for messages in flight, in\n"
    "                         seconds, fractions allowed (2)\n"
    "  --proxy-protocol       every connection starts with a PROXY v1/v2 header (from\n"
    "                         HAProxy); its client becomes the peer; others closed\n"
    "  --metrics ADDR         Prometheus metrics at http://ADDR/metrics (off)\n"
    "  --root DIR             http: directory to serve (.)\n"
    "  --access-log FILE|-    http: Common Log Format access log (off)\n"
    "  --no-file-cache        http: open and read every file on every request\n"
    "  --tls-cert FILE        serve TLS: PEM certificate chain (leaf first)\n"
    "  --tls-key FILE         ... and its PEM private key (both needed for TLS)\n"
    "  --tls-client-ca FILE   mutual TLS: clients must present a certificate\n"
    "                         signed by a CA in FILE\n"
    "  --tls-handshake-timeout S  close a connection whose TLS handshake is not\n"
    "                         done in S seconds (fraction allowed; 10)\n"
    "  --tls-ktls             sendfile through kernel TLS where the kernel offers\n"
    "                         it (else read + SSL_write; the choice is logged)\n"
    "  -h, --help             this text\n"
    "\n"
    "Started by systemd socket activation (LISTEN_FDS) without --listen, it\n"
    "serves the socket systemd passed.\n"
    "\n"
    "SIGINT or SIGTERM stops the server cleanly: it stops accepting (connections\n"
    "already queued are still served), closes idle connections, lets each busy\n"
    "one finish the message under way, cuts the rest after --drain-timeout and\n"
    "exits 0.\n"
    "\n"
    "Exit status: 0 after a clean stop, 1 when the server cannot start or run\n"
    "(address in use, a name that does not resolve, --root missing), 2 for a\n"
    "usage error (unknown option, a value or ADDR that does not parse).\n";

static void serve_log(void *ud, const char *msg)
{
    fprintf(stderr, "switchboard: %s\n", msg);
}

/* Seconds, fractions allowed, to the nearest millisecond (the options are
 * milliseconds inside); a timeout asked for never rounds down to "off". */
static int timeout_ms(const char *opt, const char *val, int *out)
{
    double s;

    if (cli_parse_seconds(opt, val, 0, 86400, &s) < 0)
        return -1;
    *out = (int)(s * 1000 + 0.5);
    if (*out == 0 && s > 0)
        *out = 1;
    return 0;
}

enum { O_LISTEN = 256, O_APP, O_MODEL, O_BACKEND, O_FRAME, O_MAXMSG, O_MAXCONNS, O_IDLE,
       O_READ, O_WRITE, O_OUTCAP, O_KEEPALIVE, O_BACKLOG, O_WORK, O_ROOT, O_LOG, O_NOCACHE, O_HELP,
       O_TLSCERT, O_TLSKEY, O_TLSCA, O_TLSHS, O_KTLS, O_WORKERS, O_REUSEPORT, O_DRAIN, O_PROXY,
       O_METRICS };

static const struct option serve_opts[] = {
    {"listen", required_argument, NULL, O_LISTEN},   {"app", required_argument, NULL, O_APP},
    {"model", required_argument, NULL, O_MODEL},     {"backend", required_argument, NULL, O_BACKEND},
    {"frame", required_argument, NULL, O_FRAME},     {"max-msg", required_argument, NULL, O_MAXMSG},
    {"max-conns", required_argument, NULL, O_MAXCONNS}, {"idle-timeout", required_argument, NULL, O_IDLE},
    {"read-timeout", required_argument, NULL, O_READ}, {"write-timeout", required_argument, NULL, O_WRITE},
    {"out-cap", required_argument, NULL, O_OUTCAP},  {"keepalive", required_argument, NULL, O_KEEPALIVE},  {"backlog", required_argument, NULL, O_BACKLOG},
    {"work-us", required_argument, NULL, O_WORK},    {"root", required_argument, NULL, O_ROOT},
    {"access-log", required_argument, NULL, O_LOG},  {"no-file-cache", no_argument, NULL, O_NOCACHE},
    {"workers", required_argument, NULL, O_WORKERS}, {"reuseport", no_argument, NULL, O_REUSEPORT},
    {"drain-timeout", required_argument, NULL, O_DRAIN}, {"proxy-protocol", no_argument, NULL, O_PROXY},
    {"metrics", required_argument, NULL, O_METRICS},
    {"help", no_argument, NULL, O_HELP},
    {"tls-cert", required_argument, NULL, O_TLSCERT}, {"tls-key", required_argument, NULL, O_TLSKEY},
    {"tls-client-ca", required_argument, NULL, O_TLSCA},
    {"tls-handshake-timeout", required_argument, NULL, O_TLSHS},
    {"tls-ktls", no_argument, NULL, O_KTLS},
    {NULL, 0, NULL, 0}};

typedef struct {
    sb_server_opts so;
    sb_app_config cfg;
    const char *app;
    int frame_given;
    sb_tls_opts tls;
    int listen_given;
} serve_args;

/* "epoll, poll, select": the backends this build has. */
static const char *backend_list(void)
{
    static char list[128];
    size_t n = 0;
    list[0] = '\0';
    for (const char *const *b = sb_loop_backends(); *b && n < sizeof list; b++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *b);
    return list;
}

static int parse_one(serve_args *a, int opt, const char *val)
{
    long v;

    switch (opt) {
    case O_LISTEN: {
        /* The shape is checked here, before anything is tried, so a typo is
         * a usage error; resolving and binding are runtime steps. */
        sb_addr_spec spec;
        int rc = sb_addr_parse(val, &spec);
        if (rc < 0) {
            cli_error("--listen", "'%s': %s (HOST:PORT, [V6]:PORT, :PORT or unix:PATH)", val,
                      sb_strerror(rc));
            return -1;
        }
        a->so.listen = val;
        a->listen_given = 1;
        return 0;
    }
    case O_APP: a->app = val; return 0;
    case O_MODEL:
        if (sb_model_parse(val, &a->so.model) < 0) {
            cli_error("--model", "'%s' is not one of event, threads, fork", val);
            return -1;
        }
        if (a->so.model == SB_MODEL_FORK && cli_os_no_fork != NULL) {
            cli_error("--model", "fork: %s", cli_os_no_fork);
            return -1;
        }
        return 0;
    case O_BACKEND:
        for (const char *const *b = sb_loop_backends(); *b; b++)
            if (strcmp(*b, val) == 0) {
                a->so.backend = val;
                return 0;
            }
        cli_error("--backend", "'%s' is not a backend built in (%s)", val, backend_list());
        return -1;
    case O_FRAME:
        a->frame_given = 1;
        if (sb_frame_parse(val, &a->so.conn.frame) == 0)
            return 0;
        cli_error("--frame", "%s", cli_frame_why(val));
        return -1;
    case O_MAXMSG: return cli_parse_size("--max-msg", val, &a->so.conn.max_msg);
    case O_OUTCAP: return cli_parse_size("--out-cap", val, &a->so.conn.out_cap);
    case O_MAXCONNS:
        if (cli_parse_long("--max-conns", val, 1, 10000000, &v) < 0)
            return -1;
        a->so.max_conns = (int)v;
        return 0;
    case O_KEEPALIVE:
        if (cli_parse_long("--keepalive", val, 1, 86400, &v) < 0)
            return -1;
        a->so.keepalive_s = (int)v;
        return 0;
    case O_BACKLOG:
        if (cli_parse_long("--backlog", val, 1, 1000000, &v) < 0)
            return -1;
        a->so.backlog = (int)v;
        return 0;
    case O_WORK:
        if (cli_parse_long("--work-us", val, 0, 10000000, &v) < 0)
            return -1;
        a->cfg.work_us = (int)v;
        return 0;
    case O_IDLE: return timeout_ms("--idle-timeout", val, &a->so.conn.idle_timeout_ms);
    case O_READ: return timeout_ms("--read-timeout", val, &a->so.conn.read_timeout_ms);
    case O_WRITE: return timeout_ms("--write-timeout", val, &a->so.conn.write_timeout_ms);
    case O_ROOT: a->cfg.root = val; return 0;
    case O_LOG: a->cfg.access_log = val; return 0;
    case O_NOCACHE: a->cfg.no_file_cache = 1; return 0;
    case O_TLSCERT: a->tls.cert_file = val; return 0;
    case O_TLSKEY: a->tls.key_file = val; return 0;
    case O_TLSCA: a->tls.ca_file = val; return 0;
    case O_KTLS: a->tls.ktls = 1; return 0;
    case O_TLSHS: {
        double secs;
        if (cli_parse_seconds("--tls-handshake-timeout", val, 0.001, 86400, &secs) < 0)
            return -1;
        a->tls.handshake_timeout_ms = (int)(secs * 1000 + 0.5);
        return 0;
    }
    case O_WORKERS:
        if (strcmp(val, "auto") == 0) {
            a->so.workers = SB_WORKERS_AUTO;
            return 0;
        }
        if (cli_parse_long("--workers", val, 1, 256, &v) < 0)
            return -1;
        a->so.workers = (int)v;
        return 0;
    case O_REUSEPORT: a->so.reuseport = 1; return 0;
    case O_DRAIN: {
        double d;
        if (cli_parse_seconds("--drain-timeout", val, 0.001, 86400, &d) < 0)
            return -1;
        a->so.grace_ms = (int)(d * 1000 + 0.5);
        if (a->so.grace_ms < 1)
            a->so.grace_ms = 1;
        return 0;
    }
    case O_PROXY: a->so.proxy_protocol = 1; return 0;
    case O_METRICS: {
        sb_addr_spec spec;
        if (sb_addr_parse(val, &spec) < 0 || strncmp(val, "unix:", 5) == 0) {
            cli_error("--metrics", "'%s': not HOST:PORT", val);
            return -1;
        }
        a->so.metrics = val;
        return 0;
    }
    default: return -1;
    }
}

static int serve_parse(serve_args *a, int argc, char **argv)
{
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", serve_opts, NULL)) != -1) {
        if (opt == O_HELP || opt == 'h') {
            printf(serve_usage_head, cli_os_backends);
            fputs(serve_usage, stdout);
            return 1;
        }
        if (opt == '?' || opt == ':') {
            cli_getopt_error(opt, argv, optind);
            return -1;
        }
        if (parse_one(a, opt, optarg) < 0)
            return -1;
    }
    if (optind < argc) {
        cli_error(argv[optind], "unexpected argument (serve takes options only; try --help)");
        return -1;
    }
    if ((a->tls.cert_file == NULL) != (a->tls.key_file == NULL) ||
        (a->tls.cert_file == NULL && (a->tls.ca_file || a->tls.ktls || a->tls.handshake_timeout_ms))) {
        cli_error(a->tls.cert_file ? "--tls-cert" : "--tls-key",
                  "TLS needs both --tls-cert and --tls-key");
        return -1;
    }
    return 0;
}

/* The server's TLS context from the options; its sendfile path is said
 * at start, through the server's log. */
static int serve_tls(serve_args *a, sb_tls **out)
{
    char why[256] = "", line[320];
    int rc;

    *out = NULL;
    if (a->tls.cert_file == NULL)
        return 0;
    if (!sb_tls_available()) { /* an option this build does not have: usage */
        cli_error("--tls-cert", "%s", sb_strerror(SB_ENOTLS));
        return -2;
    }
    if (strcmp(a->app, "http") == 0)
        a->tls.alpn = "http/1.1";
    rc = sb_tls_server_new(out, &a->tls, why, sizeof(why));
    if (rc < 0) {
        cli_error("--tls-cert", "%s", why[0] ? why : sb_strerror(rc));
        return -1;
    }
    a->so.conn.tls = *out;
    snprintf(line, sizeof(line), "TLS: %s, sendfile via %s", sb_tls_version(),
             sb_tls_sendfile_mode(*out));
    a->so.log(a->so.log_ud, line);
    return 0;
}

/* The listening line is what a script or supervisor waits for: printed
 * from on_ready, when the server handles its signals and is complete. */
static void serve_ready(sb_server *s, void *ud)
{
    const serve_args *a = ud;
    char where[160], mwhere[160];

    sb_server_address(s, where, sizeof(where));
    /* Before the listening line: whoever waits for it finds these too. */
    if (sb_server_workers(s) > 1)
        fprintf(stderr, "switchboard: %d workers\n", sb_server_workers(s));
    if (sb_server_metrics_address(s, mwhere, sizeof(mwhere)) > 0)
        fprintf(stderr, "switchboard: metrics on http://%s/metrics\n", mwhere);
    fprintf(stderr, "switchboard: listening on %s\n", where);
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "switchboard: %s app, %s model; try: switchboard send %s hello  (Ctrl-C stops)\n",
                a->app, sb_model_name(a->so.model), where);
}

static int serve_start(serve_args *a, const sb_app *app, sb_handler *h)
{
    sb_server *s;
    sb_server_stats st;
    char where[160];
    int rc;

    a->so.on_ready = serve_ready;
    a->so.on_ready_ud = a;
    rc = sb_server_new(&s, &a->so, h);
    if (rc < 0 && a->so.listen_fd > 0) {
        cli_error("LISTEN_FDS", "fd %d: %s%s", a->so.listen_fd, sb_strerror(rc),
                  rc == -EINVAL || rc == -ENOTSOCK ? " (not a listening socket)" : "");
        return 1;
    }
    if (rc < 0) {
        cli_error(a->so.listen, "%s", sb_strerror(rc));
        return 1;
    }
    sb_server_address(s, where, sizeof(where));
    rc = sb_server_run(s);
    sb_server_stats_get(s, &st);
    sb_server_free(s);
    if (app->fini)
        app->fini();
    if (rc < 0) {
        cli_error(where, "%s", sb_strerror(rc));
        return 1;
    }
    fprintf(stderr, "switchboard: served %llu messages on %llu connections\n",
            (unsigned long long)st.messages, (unsigned long long)st.accepted);
    return 0;
}

/* The document root must be a directory we can open: said here, with the
 * path and the system's reason, before the app starts. */
static int check_root(const char *root)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        cli_error("--root", "%s: %s", root, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* A backend built in may still be refused at run time - io_uring by an old
 * kernel, by kernel.io_uring_disabled or by a container's seccomp filter:
 * said here, before anything starts, with the reason and the way out. */
static const char *backend_why(int rc)
{
    char v = '0';
    FILE *f;

    if (rc == -ENOSYS)
        return " (this kernel has no io_uring)";
    if (rc != -EPERM && rc != -EACCES)
        return "";
    if ((f = fopen("/proc/sys/kernel/io_uring_disabled", "r")) != NULL) {
        if (fread(&v, 1, 1, f) != 1)
            v = '0';
        fclose(f);
    }
    if (v == '2')
        return " (the sysctl kernel.io_uring_disabled is 2)";
    if (v == '1')
        return " (the sysctl kernel.io_uring_disabled is 1 and this user is not in "
               "kernel.io_uring_group)";
    return " (a seccomp filter forbids io_uring, as a container's default profile does)";
}

static int check_backend(const char *name)
{
    sb_loop *l;
    int rc = sb_loop_new(&l, name);

    if (rc == 0) {
        sb_loop_free(l);
        return 0;
    }
    cli_error("--backend", "%s is unavailable here: %s%s; the default backend, %s, works without it",
              name, sb_strerror(rc), backend_why(rc), sb_loop_backends()[0]);
    return -1;
}

int cmd_serve(int argc, char **argv)
{
    serve_args a;
    sb_handler h;
    const sb_app *app;
    const char *why = NULL;
    sb_tls *tls = NULL;
    int rc;

    memset(&a, 0, sizeof(a));
    memset(&h, 0, sizeof(h));
    sb_server_opts_default(&a.so);
    a.so.handle_signals = 1;
    a.so.log = serve_log;
    a.app = "echo";
    a.cfg.root = ".";
    rc = serve_parse(&a, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    app = sb_app_find(a.app);
    if (app == NULL) {
        cli_error("--app", "'%s' is not one of echo, chat, http", a.app);
        return 2;
    }
    a.cfg.model = a.so.model;
    if (app == &sb_app_http && check_root(a.cfg.root) < 0)
        return 1;
    if (a.so.backend && a.so.model == SB_MODEL_EVENT && check_backend(a.so.backend) < 0)
        return 1;
    if ((rc = app->init(&a.cfg, &a.so, &h, &why)) < 0) {
        /* -EINVAL: the options do not fit the app (chat under fork), a usage
         * error; any other code is the system refusing, a runtime failure. */
        if (rc == -EINVAL) {
            cli_error(app->name, "%s", why ? why : "cannot start");
            return 2;
        }
        cli_error(app->name, "%s: %s", why ? why : "cannot start", sb_strerror(rc));
        return 1;
    }
    /* systemd socket activation: the first socket passed, unless --listen
     * names another address. */
    if (!a.listen_given && sb_listen_fds() > 0)
        a.so.listen_fd = 3;
    if (a.so.backend && a.so.model != SB_MODEL_EVENT)
        cli_error("--backend", "ignored: it applies to --model event only");
    if (a.so.workers != 0 && a.so.workers != 1 && a.so.model != SB_MODEL_EVENT)
        cli_error("--workers", "ignored: it applies to --model event only");
    if (a.so.proxy_protocol && a.so.model != SB_MODEL_EVENT) {
        cli_error("--proxy-protocol", "needs --model event");
        return 2;
    }
    if ((rc = serve_tls(&a, &tls)) < 0) {
        if (app->fini)
            app->fini();
        return rc == -2 ? 2 : 1;
    }
    rc = serve_start(&a, app, &h);
    sb_tls_free(tls);
    return rc;
}
