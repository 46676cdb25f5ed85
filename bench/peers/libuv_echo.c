/* libuv_echo: the echo server as libuv users write it - uv_read_start
 * with an allocation callback, each read handed to uv_write, the buffer
 * freed in the write callback.
 *
 * usage: libuv_echo PORT   (listens on 127.0.0.1:PORT)
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

struct wreq {
    uv_write_t req;
    uv_buf_t buf;
};

static uv_loop_t *loop;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(hint);
    buf->len = buf->base ? hint : 0;
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;

    (void)status;
    free(w->buf.base);
    free(w);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct wreq *w;

    if (n <= 0) {
        free(buf->base);
        if (n < 0 && !uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    w = malloc(sizeof *w);
    if (w == NULL) {
        free(buf->base);
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    w->buf = uv_buf_init(buf->base, (unsigned)n);
    if (uv_write(&w->req, s, &w->buf, 1, on_written) < 0) {
        free(buf->base);
        free(w);
        uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    uv_tcp_t *c;

    if (status < 0)
        return;
    c = malloc(sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(loop, c);
    if (uv_accept(server, (uv_stream_t *)c) == 0) {
        uv_tcp_nodelay(c, 1);
        uv_read_start((uv_stream_t *)c, on_alloc, on_read);
    } else {
        uv_close((uv_handle_t *)c, on_close);
    }
}

int main(int argc, char **argv)
{
    uv_tcp_t server;
    struct sockaddr_in sin;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: libuv_echo PORT\n");
        return 2;
    }
    loop = uv_default_loop();
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &sin);
    rc = uv_tcp_bind(&server, (const struct sockaddr *)&sin, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (rc != 0) {
        fprintf(stderr, "libuv_echo: %s\n", uv_strerror(rc));
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
