/* tls: TLS as a transport (transport.h) and as a blocking session, over
 * OpenSSL 3.
 *
 * Divisions: 1. the socket BIO (every byte through sb__sys)
 *            2. one connection's engine: the SSL result mapped to readiness
 *            3. the transport for conn (event and blocking drivers)
 *            4. contexts (server, client, verification)
 *            5. blocking sessions (sb_tls_connect, send_all, recv_some)
 *
 * The SSL object reads and writes the socket through a BIO of our own whose
 * calls go through the system-call table, so fault injection (test_torture)
 * reaches TLS like the plain transport. Every result of an SSL call goes
 * through tls_result, the one place where WANT_READ / WANT_WRITE become the
 * readiness the drivers wait for.
 *
 * Threads: an engine is used by one thread at a time - the connection's
 * owner. Under the threads model other threads may send to a connection;
 * they queue and, where the plain transport would try one non-blocking
 * write, this one declines (EAGAIN) and conn wakes the owner, which does
 * the SSL_write. Taking the connection's lock around the owner's SSL_read
 * instead would hold that lock across the decryption of up to 64 KiB and
 * make every sender wait for it; declining costs a foreign sender nothing
 * and the owner one wakeup.
 *
 * Reads: OpenSSL's read-ahead is on, so one recv brings a whole record (or
 * several) instead of a header and then a body. The engine may then hold
 * bytes no poll will report: after a read that stopped because the
 * caller's buffer was full, anything it holds (SSL_has_pending) is
 * readable now; after a read that stopped because the socket had nothing
 * more (WANT_READ), what it holds is at most part of a record, readable
 * only with more bytes, which will come as a new edge. That is the
 * condition for transport.h's edge-triggered rule (tp_events).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "switchboard.h"
#include "sys.h"
#include "tls_int.h"
#include "transport.h"

#define SB_TLS_HANDSHAKE_MS 10000
#define SB_TLS_GATHER (16 * 1024) /* one record's worth of small buffers copied together */

struct sb_tls {
    SSL_CTX *ctx;
    int server;
    int handshake_ms;
    int insecure;
    int no_host_check;   /* client: no name given means the chain alone */
    int ktls;            /* kernel TLS asked for and offered */
    int ktls_missing;    /* kernel TLS asked for, the tls module not loaded */
    char *server_name;   /* client: default SNI / verified name */
    unsigned char alpn[64]; /* wire form: length-prefixed names */
    unsigned alpn_len;
};

/* One connection's engine (a conn's transport state, or a session). */
typedef struct tls_conn {
    SSL *ssl;
    int fd;
    int io_errno;        /* the BIO's last errno (SSL_ERROR_SYSCALL names no errno) */
    int rwant;           /* readiness the read path waits for (0: none) */
    int wwant;           /* readiness the write path waits for */
    int64_t hs_deadline; /* ms; INT64_MAX once the handshake is done */
    int dead;            /* fatal error: no more SSL calls but free */
    int unclean;         /* the peer ended without close_notify */
    int held;            /* 1: `final` waits to be returned by the next read */
    int drained;         /* the last read found the socket empty */
    int rshort;          /* the BIO's last recv got less than it asked: the socket was empty */
    int more;            /* the BIO's sends say MSG_MORE: another send follows at once */
    int final;           /* held result: 0 (end) or a negative code */
    int ktls;            /* kernel TLS for sendfile on this connection */
} tls_conn;

/* ------------------------------------------------------------------ */
/* 1. The socket BIO                                                   */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* MSG_DONTWAIT on every call: the engine never sleeps in the kernel, even on
 * a blocking socket (a session's), and waits happen in poll with a
 * deadline. EINTR is retried here, so "retry" always means "not ready". */
static int bio_read(BIO *b, char *p, int n)
{
    tls_conn *t = BIO_get_data(b);
    ssize_t r;

    BIO_clear_retry_flags(b);
    do
        r = sb__sys.recv(t->fd, p, (size_t)n, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    t->rshort = r > 0 && r < n;
    if (r < 0) {
        t->io_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        return -1;
    }
    return (int)r;
}

static int bio_write(BIO *b, const char *p, int n)
{
    tls_conn *t = BIO_get_data(b);
    ssize_t r;

    BIO_clear_retry_flags(b);
    do
        r = sb__sys.send(t->fd, p, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT | (t->more ? MSG_MORE : 0));
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        t->io_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        return -1;
    }
    return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    /* FLUSH: nothing is buffered here. Everything else (including the
     * kernel TLS queries) is "not supported". */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_setup(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "switchboard");

    if (m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* ------------------------------------------------------------------ */
/* 2. The engine                                                       */

/* Why a handshake failed, from the verification result. */
static int tls_verify_code(const tls_conn *t)
{
    long v = SSL_get_verify_result(t->ssl);

    if (v == X509_V_OK)
        return SB_ETLS;
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        return SB_ETLSHOST;
    return SB_ETLSVERIFY;
}

/* The one place an SSL call's result becomes what the caller does next:
 * -EAGAIN with *want set to the readiness to wait for, 0 for the peer's
 * close_notify (or an end without it: t->unclean), or a negative code. */
static int tls_result(tls_conn *t, int ret, int *want)
{
    int e = SSL_get_error(t->ssl, ret);
    unsigned long err;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = SB_READABLE;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = SB_WRITABLE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: /* nothing more comes; our close_notify may still go */
        return 0;
    case SSL_ERROR_SYSCALL: {
        /* Our BIO keeps its errno; OpenSSL's socket BIO (kernel TLS)
         * leaves it in errno itself. */
        int io = t->io_errno ? t->io_errno : t->ktls ? errno : 0;
        t->dead = 1;
        ERR_clear_error();
        if (io != 0 && io != EAGAIN && io != EWOULDBLOCK)
            return -io;
        t->unclean = 1;
        return 0;
    }
    default:
        t->dead = 1;
        err = ERR_peek_last_error();
        ERR_clear_error();
        if (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            t->unclean = 1;
            return 0;
        }
        if (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED)
            return tls_verify_code(t);
        return SB_ETLS;
    }
}

/* The handshake is over once the engine says so; from then on there is no
 * handshake deadline. */
static void tls_note_progress(tls_conn *t)
{
    if (t->hs_deadline != INT64_MAX && SSL_is_init_finished(t->ssl))
        t->hs_deadline = INT64_MAX;
}

static void tls_conn_free(tls_conn *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees the BIO and drops the context's reference */
    sb__free(t);
}

static tls_conn *tls_conn_new(const sb_tls *ctx, int fd)
{
    tls_conn *t;
    BIO *b;

    pthread_once(&bio_once, bio_setup);
    if (bio_method == NULL || (t = sb__calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->fd = fd;
    t->hs_deadline = sb_now_ms() + ctx->handshake_ms;
    t->ssl = SSL_new(ctx->ctx);
    if (t->ssl == NULL) {
        sb__free(t);
        return NULL;
    }
    /* Kernel TLS needs OpenSSL's own socket BIO (it programs the socket
     * with the keys); only then does this connection's I/O leave sb__sys. */
    b = ctx->ktls ? BIO_new_socket(fd, BIO_NOCLOSE) : BIO_new(bio_method);
    if (b == NULL) {
        tls_conn_free(t);
        return NULL;
    }
    t->ktls = ctx->ktls;
    if (!ctx->ktls)
        BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    if (ctx->server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    return t;
}

/* Client: the name to send (SNI, host names only) and to verify. No name
 * is SB_ETLSCONF for a verifying client that did not opt out: checking the
 * chain alone would let any certificate the trust store signed stand in
 * for any server. */
static int tls_set_host(tls_conn *t, const sb_tls *ctx, const char *host)
{
    unsigned char ip[16];
    int is_ip;

    if (host == NULL || *host == '\0')
        return ctx->insecure || ctx->no_host_check ? 0 : SB_ETLSCONF;
    is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!is_ip && !SSL_set_tlsext_host_name(t->ssl, host))
        return -ENOMEM;
    if (ctx->insecure)
        return 0;
    if (is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) ? 0 : -EINVAL;
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(t->ssl, host) ? 0 : -ENOMEM;
}

/* Fill p from the engine until it is full or the engine needs the socket:
 * a short count therefore means the socket is drained (transport.h's
 * edge-triggered rule). The last recv coming back short already says so
 * (the kernel empties a stream socket's queue before it returns short, the
 * rule the plain transport reads by): when the engine then holds nothing,
 * the read ends there, without the recv that could only meet EAGAIN - one
 * system call less per request in a keep-alive exchange. An end or error
 * met after some bytes is held for the next call. Returns the count,
 * -EAGAIN, 0 at the end, or a code. */
static ssize_t tls_fill(tls_conn *t, void *p, size_t n)
{
    size_t got = 0, k;
    int rc;

    if (t->held) {
        t->held = 0;
        return t->final;
    }
    if (t->dead)
        return 0; /* after a fatal error: the end (a lingering close stops here) */
    t->rwant = 0;
    t->drained = 0;
    t->rshort = 0;
    t->io_errno = errno = 0;
    while (got < n) {
        ERR_clear_error();
        if (SSL_read_ex(t->ssl, (char *)p + got, n - got, &k) == 1) {
            got += k;
            if (t->rshort && !SSL_has_pending(t->ssl)) {
                t->drained = 1;
                break;
            }
            continue;
        }
        rc = tls_result(t, 0, &t->rwant);
        if (rc == -EAGAIN) {
            t->drained = t->rwant == SB_READABLE;
            break;
        }
        if (got == 0)
            return rc;
        t->held = 1;
        t->final = rc;
        break;
    }
    tls_note_progress(t);
    return got > 0 ? (ssize_t)got : -EAGAIN;
}

/* One SSL_write of up to one gathered buffer: the count, -EAGAIN or a
 * code. After -EAGAIN the next call must begin with the same bytes (the
 * queue keeps them at its head; SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets
 * them sit elsewhere in memory). */
static ssize_t tls_put(tls_conn *t, const void *p, size_t n)
{
    size_t k;
    int rc;

    if (t->dead) /* the error that ended it, if one did (no host name: before any I/O) */
        return t->final < 0 ? t->final : -EPIPE;
    /* A write that drives the handshake reads too, and may read ahead past
     * it: what it brings in has not been seen by a read. */
    if (!SSL_is_init_finished(t->ssl))
        t->drained = 0;
    t->wwant = 0;
    t->io_errno = errno = 0;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, n, &k) == 1) {
        tls_note_progress(t);
        return (ssize_t)k;
    }
    rc = tls_result(t, 0, &t->wwant);
    tls_note_progress(t);
    return rc == 0 ? -EPIPE : rc;
}

/* close_notify, once, if the session is healthy; never waits. */
static void tls_goodbye(tls_conn *t)
{
    if (!t->dead && SSL_is_init_finished(t->ssl) && !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

/* ------------------------------------------------------------------ */
/* 3. The transport                                                    */

static ssize_t tp_ret(ssize_t r)
{
    if (r >= 0)
        return r;
    errno = (int)-r;
    return -1;
}

static ssize_t tp_read(void *state, int fd, void *p, size_t n, int dontwait)
{
    return tp_ret(tls_fill(state, p, n));
}

/* One SSL_write of p[0..n) that writes at most one record (partial write
 * mode); total is what the caller has queued from p on. When more than
 * that record is queued, the caller's next write follows at once (conn
 * flushes its queue in a loop), so the record goes with MSG_MORE and the
 * kernel sends both in one segment: a 16 KiB body and the tail of its
 * response are one wakeup of the reader, not two. A send that then finds
 * the socket full leaves the corked bytes for the retry on writability,
 * which sends without MSG_MORE. Never during the handshake, whose flight
 * must leave before the peer can answer. */
static ssize_t tls_put_more(tls_conn *t, const void *p, size_t n, size_t total)
{
    ssize_t r;

    t->more = total > (n < SSL3_RT_MAX_PLAIN_LENGTH ? n : SSL3_RT_MAX_PLAIN_LENGTH) &&
              SSL_is_init_finished(t->ssl);
    r = tls_put(t, p, n);
    t->more = 0;
    return r;
}

static ssize_t tp_writev(void *state, int fd, const struct iovec *iov, int cnt, int dontwait)
{
    uint8_t gather[SB_TLS_GATHER];
    size_t len = 0, total = 0;

    /* Only a foreign thread asks not to wait: it must not touch the engine
     * (see the top of this file). */
    if (dontwait)
        return tp_ret(-EAGAIN);
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    if (cnt == 1 || iov[0].iov_len >= sizeof(gather))
        return tp_ret(tls_put_more(state, iov[0].iov_base, iov[0].iov_len, total));
    /* Small buffers go out as one record, not one record each. */
    for (int i = 0; i < cnt && len < sizeof(gather); i++) {
        size_t take = iov[i].iov_len < sizeof(gather) - len ? iov[i].iov_len : sizeof(gather) - len;
        memcpy(gather + len, iov[i].iov_base, take);
        len += take;
    }
    return tp_ret(tls_put_more(state, gather, len, total));
}

/* Kernel TLS: the kernel encrypts the file's pages on their way out. When
 * this connection did not get it after all (the kernel refused the cipher
 * in use), a piece of the file goes through SSL_write instead. */
static ssize_t tp_sendfile(void *state, int fd, int file, off_t *off, size_t n)
{
    tls_conn *t = state;
    uint8_t buf[SB_TLS_GATHER];
    ossl_ssize_t r;

    if (!BIO_get_ktls_send(SSL_get_wbio(t->ssl))) {
        r = pread(file, buf, n < sizeof(buf) ? n : sizeof(buf), *off);
        if (r <= 0)
            return r;
        r = tls_put(t, buf, (size_t)r);
    } else {
        ERR_clear_error();
        t->wwant = 0;
        r = SSL_sendfile(t->ssl, file, *off, n, 0);
        if (r < 0) {
            int rc = tls_result(t, (int)r, &t->wwant);
            r = rc == 0 ? -EPIPE : rc;
        }
    }
    if (r < 0)
        return tp_ret(r);
    *off += r;
    return r;
}

/* close_notify goes with MSG_MORE: the FIN that follows at once carries
 * it, one segment instead of two. */
static int tp_shutdown(void *state, int fd)
{
    tls_conn *t = state;

    t->more = 1;
    tls_goodbye(t);
    t->more = 0;
    return shutdown(fd, SHUT_WR);
}

/* Corked as tp_shutdown's: the close that follows sends it with the FIN. */
static void tp_goodbye(void *state)
{
    tls_conn *t = state;

    t->more = 1;
    tls_goodbye(t);
    t->more = 0;
}

static void tp_free(void *state)
{
    tls_conn_free(state);
}

/* The read side's wait and the write side's, apart (transport.h): a read
 * that ended on WANT_READ leaves rwant set until the next read, and a
 * driver that stopped reading must not be woken by it. A write waiting to
 * write needs no flag: queued output is watched for writability anyway. */
static int tp_events(void *state)
{
    tls_conn *t = state;
    int ev = t->rwant;

    if (t->held || (!t->dead && !t->drained && SSL_has_pending(t->ssl)))
        ev |= SB__TP_HELD;
    if (t->wwant == SB_READABLE)
        ev |= SB__TP_NOWRITE;
    return ev;
}

static int64_t tp_deadline(void *state)
{
    return ((tls_conn *)state)->hs_deadline;
}

static int tp_eof_error(void *state)
{
    tls_conn *t = state;
    return t->unclean && SSL_is_init_finished(t->ssl) ? SB_ETLSTRUNC : 0;
}

static const sb__transport tls_transport = {
    "tls", tp_read, tp_writev, NULL, tp_shutdown, tp_free, tp_events, tp_deadline, tp_eof_error,
    tp_goodbye,
};

static const sb__transport tls_transport_ktls = {
    "tls", tp_read, tp_writev, tp_sendfile, tp_shutdown, tp_free, tp_events, tp_deadline,
    tp_eof_error, tp_goodbye,
};

int sb__tls_transport_new(const sb_tls *ctx, int fd, const sb__transport **tp, void **state)
{
    tls_conn *t = tls_conn_new(ctx, fd);
    int rc;

    if (t == NULL)
        return -ENOMEM;
    if (!ctx->server && (rc = tls_set_host(t, ctx, ctx->server_name)) < 0) {
        if (rc != SB_ETLSCONF) {
            tls_conn_free(t);
            return rc;
        }
        /* No name to verify: the connection's first read ends it with
         * SB_ETLSCONF (on_close says why), before a byte is sent. */
        t->dead = t->held = 1;
        t->final = SB_ETLSCONF;
    }
    /* A client speaks first: its read path starts the handshake as soon
     * as the socket is writable, whether or not the handler writes. */
    if (!ctx->server)
        t->rwant = SB_WRITABLE;
    *tp = ctx->ktls ? &tls_transport_ktls : &tls_transport;
    *state = t;
    return 0;
}

void *sb__tls_ssl_ctx(const sb_tls *ctx)
{
    return ctx->ctx;
}

int sb__tls_handshake_ms(const sb_tls *ctx)
{
    return ctx->handshake_ms;
}

/* ------------------------------------------------------------------ */
/* 4. Contexts                                                         */

int sb_tls_available(void) { return 1; }

const char *sb_tls_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

void sb_tls_opts_default(sb_tls_opts *o)
{
    memset(o, 0, sizeof(*o));
}

const char *sb_tls_sendfile_mode(const sb_tls *t)
{
    if (t->ktls_missing)
        return "read+SSL_write (kernel TLS asked for: the tls module is not loaded)";
    return t->ktls ? "ktls" : "read+SSL_write";
}

static void why_set(char *why, size_t n, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    if (why && n)
        snprintf(why, n, "%s%s%s: %s", what, file ? " " : "", file ? file : "",
                 r ? r : "failed");
    ERR_clear_error();
}

/* Select the first of our protocols the client offers; none in common is
 * not an error (the client may not use ALPN for what it asks). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    sb_tls *t = arg;
    unsigned char *sel;

    if (SSL_select_next_proto(&sel, outlen, t->alpn, t->alpn_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* "http/1.1" -> "\x08http/1.1"; comma-separated lists allowed. */
static int alpn_encode(sb_tls *t, const char *list)
{
    size_t len = 0;

    while (list && *list) {
        size_t n = strcspn(list, ",");
        if (n == 0 || n > 255 || len + 1 + n > sizeof(t->alpn))
            return -EINVAL;
        t->alpn[len++] = (unsigned char)n;
        memcpy(t->alpn + len, list, n);
        len += n;
        list += n + (list[n] == ',');
    }
    t->alpn_len = (unsigned)len;
    return 0;
}

/* What kernel TLS needs: the kernel's tls module (its ULP is listed). The
 * kernel loads it on first use only for a caller with CAP_NET_ADMIN, so an
 * unlisted module means no kernel TLS here; the mode text says so. */
static int ktls_offered(void)
{
    char buf[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");

    if (f == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) == NULL)
        buf[0] = '\0';
    fclose(f);
    return strstr(buf, "tls") != NULL;
}

static sb_tls *ctx_new(const sb_tls_opts *o, int server)
{
    sb_tls *t = sb__calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (t->ctx == NULL) {
        sb__free(t);
        return NULL;
    }
    t->server = server;
    t->handshake_ms = o->handshake_timeout_ms > 0 ? o->handshake_timeout_ms : SB_TLS_HANDSHAKE_MS;
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Idle connections give their buffers back; writes may return after
     * each record and be retried from a moved buffer (the write queue's
     * head, re-gathered). */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(t->ctx, 1); /* see the top of this file */
    return t;
}

void sb_tls_free(sb_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    sb__free(t->server_name);
    sb__free(t);
}

static int load_pair(sb_tls *t, const sb_tls_opts *o, char *why, size_t whylen)
{
    if (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file) != 1) {
        why_set(why, whylen, "certificate", o->cert_file);
        return SB_ETLSCONF;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, o->key_file ? o->key_file : o->cert_file,
                                    SSL_FILETYPE_PEM) != 1) {
        why_set(why, whylen, "key", o->key_file);
        return SB_ETLSCONF;
    }
    if (SSL_CTX_check_private_key(t->ctx) != 1) {
        why_set(why, whylen, "key", o->key_file);
        return SB_ETLSCONF;
    }
    return 0;
}

int sb_tls_server_new(sb_tls **out, const sb_tls_opts *o, char *why, size_t whylen)
{
    sb_tls *t = ctx_new(o, 1);
    int rc;

    *out = NULL;
    if (t == NULL)
        return -ENOMEM;
    if (o->cert_file == NULL) {
        snprintf(why, whylen, "no certificate file");
        sb_tls_free(t);
        return SB_ETLSCONF;
    }
    if ((rc = load_pair(t, o, why, whylen)) < 0)
        goto fail;
    if (o->ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
        if (names == NULL || SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            why_set(why, whylen, "client CA", o->ca_file);
            rc = SB_ETLSCONF;
            goto fail;
        }
        SSL_CTX_set_client_CA_list(t->ctx, names);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    if (o->alpn) {
        if (alpn_encode(t, o->alpn) < 0) {
            snprintf(why, whylen, "bad ALPN list '%s'", o->alpn);
            rc = SB_ETLSCONF;
            goto fail;
        }
        SSL_CTX_set_alpn_select_cb(t->ctx, alpn_select, t);
    }
    /* Session resumption across connections of this context. */
    SSL_CTX_set_session_id_context(t->ctx, (const unsigned char *)"switchboard", 11);
    if (o->ktls && ktls_offered()) {
        SSL_CTX_set_options(t->ctx, SSL_OP_ENABLE_KTLS);
        t->ktls = 1;
    } else if (o->ktls) {
        t->ktls_missing = 1;
    }
    *out = t;
    return 0;
fail:
    sb_tls_free(t);
    return rc;
}

/* Insecure: OpenSSL would still build and check the chain under
 * SSL_VERIFY_NONE, only to ignore the result - a trust-store lookup and a
 * signature check per full handshake for nothing. The handshake itself
 * still checks the server's signature over it with the certificate's key. */
static int verify_nothing(X509_STORE_CTX *x, void *arg)
{
    (void)x, (void)arg;
    return 1;
}

int sb_tls_client_new(sb_tls **out, const sb_tls_opts *o, char *why, size_t whylen)
{
    sb_tls *t = ctx_new(o, 0);
    int rc = SB_ETLSCONF;

    *out = NULL;
    if (t == NULL)
        return -ENOMEM;
    t->insecure = o->insecure;
    t->no_host_check = o->no_host_check;
    /* Insecure needs no trust store: the system's is not even opened. */
    if (o->ca_file ? SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL) != 1
                   : !o->insecure && SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        why_set(why, whylen, "CA file", o->ca_file);
        goto fail;
    }
    SSL_CTX_set_verify(t->ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (o->insecure)
        SSL_CTX_set_cert_verify_callback(t->ctx, verify_nothing, NULL);
    if (o->cert_file && load_pair(t, o, why, whylen) < 0)
        goto fail;
    if (o->alpn) {
        if (alpn_encode(t, o->alpn) < 0 || SSL_CTX_set_alpn_protos(t->ctx, t->alpn, t->alpn_len) != 0) {
            snprintf(why, whylen, "bad ALPN list '%s'", o->alpn);
            goto fail;
        }
    }
    if (o->server_name) {
        t->server_name = sb__malloc(strlen(o->server_name) + 1);
        if (t->server_name == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        strcpy(t->server_name, o->server_name);
    }
    *out = t;
    return 0;
fail:
    sb_tls_free(t);
    return rc;
}

/* ------------------------------------------------------------------ */
/* 5. Blocking sessions                                                */

struct sb_tls_session {
    tls_conn *t;
};

/* Wait until the engine's wish comes true or the deadline passes. */
static int session_wait(tls_conn *t, int want, int64_t deadline)
{
    return sb_wait_fd(t->fd, (short)((want & SB_READABLE ? POLLIN : 0) |
                                     (want & SB_WRITABLE ? POLLOUT : 0)), deadline);
}

static void session_why(const tls_conn *t, int rc, char *why, size_t n)
{
    if (why == NULL || n == 0)
        return;
    if (rc == SB_ETLSVERIFY)
        snprintf(why, n, "%s: %s", sb_strerror(rc),
                 X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
    else
        snprintf(why, n, "%s", rc == 0 ? "connection closed during the TLS handshake" : sb_strerror(rc));
}

int sb_tls_session_new(sb_tls_session **out, const sb_tls *ctx, int fd, const char *host,
                       const sb_tls_ticket *resume, char *why, size_t whylen)
{
    sb_tls_session *s = sb__calloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    if (s == NULL || (s->t = tls_conn_new(ctx, fd)) == NULL) {
        sb__free(s);
        session_why(NULL, -ENOMEM, why, whylen);
        return -ENOMEM;
    }
    if ((rc = tls_set_host(s->t, ctx, host ? host : ctx->server_name)) < 0) {
        if (rc == SB_ETLSCONF && why && whylen)
            snprintf(why, whylen, "no host name to verify (name the host, or set no_host_check)");
        else
            session_why(s->t, rc, why, whylen);
        goto fail;
    }
    /* SSL_set_session takes its own reference. A ticket the server no
     * longer accepts costs nothing but the full handshake it falls back to. */
    if (resume && !SSL_set_session(s->t->ssl, (SSL_SESSION *)resume)) {
        ERR_clear_error();
        rc = -ENOMEM;
        session_why(s->t, rc, why, whylen);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    tls_conn_free(s->t);
    sb__free(s);
    return rc;
}

int sb_tls_handshake(sb_tls_session *s, int *want, char *why, size_t whylen)
{
    tls_conn *t = s->t;
    int rc;

    if (t->dead)
        return SB_ETLS;
    t->io_errno = 0;
    ERR_clear_error();
    if (SSL_do_handshake(t->ssl) == 1) {
        t->hs_deadline = INT64_MAX;
        return 0;
    }
    rc = tls_result(t, 0, want);
    if (rc == -EAGAIN)
        return rc;
    t->dead = 1; /* the peer ended (close_notify, or not even that) mid-handshake, or an error */
    session_why(t, rc, why, whylen);
    return rc == 0 ? SB_ETLS : rc;
}

int sb_tls_session_resumed(const sb_tls_session *s)
{
    return SSL_session_reused(s->t->ssl) == 1;
}

sb_tls_ticket *sb_tls_session_ticket(const sb_tls_session *s)
{
    SSL_SESSION *ss = SSL_get1_session(s->t->ssl);

    if (ss != NULL && !SSL_SESSION_is_resumable(ss)) {
        SSL_SESSION_free(ss);
        ss = NULL;
    }
    return (sb_tls_ticket *)ss;
}

void sb_tls_ticket_free(sb_tls_ticket *k)
{
    SSL_SESSION_free((SSL_SESSION *)k);
}

/* The non-blocking steps, each followed by a wait in poll. */
int sb_tls_connect(sb_tls_session **out, const sb_tls *ctx, int fd, const char *host,
                   int64_t deadline, char *why, size_t whylen)
{
    int rc = sb_tls_session_new(out, ctx, fd, host, NULL, why, whylen), want = 0;

    while (rc == 0 && (rc = sb_tls_handshake(*out, &want, why, whylen)) == -EAGAIN) {
        rc = session_wait((*out)->t, want, deadline);
        if (rc < 0)
            session_why((*out)->t, rc, why, whylen);
    }
    if (rc < 0 && *out) {
        sb_tls_session_free(*out); /* no close_notify: the handshake did not finish */
        *out = NULL;
    }
    return rc;
}

ssize_t sb_tls_send_all(sb_tls_session *s, const void *p, size_t n, int64_t deadline)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = tls_put(s->t, (const char *)p + done, n - done);
        if (r == -EAGAIN)
            r = session_wait(s->t, s->t->wwant, deadline);
        else if (r > 0)
            done += (size_t)r;
        if (r < 0)
            return r;
    }
    return (ssize_t)n;
}

ssize_t sb_tls_recv_some(sb_tls_session *s, void *p, size_t n, int64_t deadline)
{
    if (n == 0)
        return 0; /* as recv(2): nothing asked, nothing waited for */
    for (;;) {
        ssize_t r = tls_fill(s->t, p, n);
        if (r == 0 && s->t->unclean)
            return SB_ETLSTRUNC;
        if (r != -EAGAIN)
            return r;
        r = session_wait(s->t, s->t->rwant, deadline);
        if (r < 0)
            return r;
    }
}

ssize_t sb_tls_write(sb_tls_session *s, const void *p, size_t n)
{
    return tls_put(s->t, p, n);
}

ssize_t sb_tls_read(sb_tls_session *s, void *p, size_t n)
{
    ssize_t r = tls_fill(s->t, p, n);
    return r == 0 && s->t->unclean ? SB_ETLSTRUNC : r;
}

int sb_tls_shutdown(sb_tls_session *s, int64_t deadline)
{
    int want = 0, rc;

    for (;;) {
        if (s->t->dead)
            return -EPIPE;
        s->t->io_errno = 0;
        ERR_clear_error();
        if (SSL_shutdown(s->t->ssl) >= 0)
            break;
        rc = tls_result(s->t, -1, &want);
        if (rc != -EAGAIN)
            return rc == 0 ? -EPIPE : rc;
        if ((rc = session_wait(s->t, want, deadline)) < 0)
            return rc;
    }
    return shutdown(s->t->fd, SHUT_WR) < 0 ? -errno : 0;
}

void sb_tls_session_free(sb_tls_session *s)
{
    if (s == NULL)
        return;
    tls_goodbye(s->t);
    tls_conn_free(s->t);
    sb__free(s);
}

const char *sb_tls_session_version(const sb_tls_session *s)
{
    return SSL_get_version(s->t->ssl);
}
