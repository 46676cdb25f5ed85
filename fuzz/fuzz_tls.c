/* fuzz_tls: libFuzzer target for the server side of a TLS handshake. The
 * input is what a client sends, fed through memory BIOs to an SSL object
 * of a server context made by sb_tls_server_new (TLS 1.2 at least, no
 * renegotiation, the ALPN callback), in pieces whose sizes the input's
 * first byte chooses; after each piece the server's answer is drained. A
 * run may end in any state except a crash, a leak or a hang.
 *
 * The certificate and key are made once, in memory, and written to a
 * temporary directory for sb_tls_server_new to load. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "switchboard.h"
#include "tls_int.h"

static sb_tls *server;

static void make_server(void)
{
    char dir[] = "/tmp/sb-fuzz-tls-XXXXXX", cert[64], key[64], why[256];
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    sb_tls_opts o;
    FILE *f;

    if (pk == NULL || x == NULL || mkdtemp(dir) == NULL)
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if (!X509_sign(x, pk, EVP_sha256()))
        abort();
    snprintf(cert, sizeof cert, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    if ((f = fopen(cert, "w")) == NULL || !PEM_write_X509(f, x))
        abort();
    fclose(f);
    if ((f = fopen(key, "w")) == NULL || !PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL))
        abort();
    fclose(f);
    sb_tls_opts_default(&o);
    o.cert_file = cert;
    o.key_file = key;
    o.alpn = "http/1.1";
    if (sb_tls_server_new(&server, &o, why, sizeof why) != 0)
        abort();
    unlink(cert);
    unlink(key);
    rmdir(dir);
    X509_free(x);
    EVP_PKEY_free(pk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    SSL *ssl;
    BIO *in, *out;
    size_t piece, off = 1;
    char sink[16384];

    if (server == NULL)
        make_server();
    if (size == 0)
        return 0;
    piece = (size_t)(data[0] % 64) + 1; /* 1..64 bytes a time, or all at once */
    if (data[0] >= 192)
        piece = size;
    ssl = SSL_new(sb__tls_ssl_ctx(server));
    in = BIO_new(BIO_s_mem());
    out = BIO_new(BIO_s_mem());
    if (ssl == NULL || in == NULL || out == NULL)
        abort();
    BIO_set_mem_eof_return(in, -1); /* empty: "try again", as a socket */
    SSL_set_bio(ssl, in, out);
    SSL_set_accept_state(ssl);
    while (off < size) {
        size_t n = size - off < piece ? size - off : piece;
        int r;
        BIO_write(in, data + off, (int)n);
        off += n;
        r = SSL_do_handshake(ssl);
        if (r == 1) {
            /* Established (a replayed transcript): application data next. */
            while (SSL_read(ssl, sink, sizeof sink) > 0)
                ;
        }
        while (BIO_read(out, sink, sizeof sink) > 0)
            ;
        if (r <= 0) {
            int e = SSL_get_error(ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                break;
        }
    }
    SSL_free(ssl);
    ERR_clear_error();
    return 0;
}
