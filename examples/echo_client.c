/* echo_client: connect, send each argument as a line, print each reply.
 * A blocking client in the HOWTO's style, with the loops done for you.
 *
 *   cc echo_client.c $(pkg-config --cflags --libs switchboard) -o echo_client
 *   ./echo_client 127.0.0.1:7000 hello world
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <switchboard.h>

int main(int argc, char **argv)
{
    sb_frame_spec spec;
    sb_stream *st;
    sb_msg reply;
    int fd, rc = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: echo_client ADDR [MESSAGE...]\n");
        return 2;
    }
    fd = sb_dial(argv[1], 5000); /* every resolved address, 5 s each */
    if (fd < 0) {
        fprintf(stderr, "echo_client: %s: %s\n", argv[1], sb_strerror(fd));
        return 1;
    }
    sb_frame_parse("line", &spec);
    sb_stream_open(&st, fd, &spec, 1 << 20, 5000); /* 5 s per read/write */
    for (int i = 2; i < argc && rc == 0; i++) {
        /* request = write + flush + read: the flush cannot be forgotten */
        rc = sb_stream_request(st, -1, argv[i], strlen(argv[i]), &reply);
        if (rc == 1) {
            printf("%.*s\n", (int)reply.len, (const char *)reply.data);
            rc = 0;
        } else {
            fprintf(stderr, "echo_client: %s\n", rc == 0 ? "closed" : sb_strerror(rc));
            rc = 1;
        }
    }
    sb_stream_close(st);
    close(fd);
    return rc;
}
