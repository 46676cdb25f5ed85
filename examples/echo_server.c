/* echo_server: the smallest switchboard server - a handler and a model.
 *
 *   cc echo_server.c $(pkg-config --cflags --libs switchboard) -o echo_server
 *   ./echo_server 127.0.0.1:7000 threads
 */
#include <stdio.h>
#include <switchboard.h>

/* Called once per whole message, whatever the model. */
static int on_message(sb_conn *c, const sb_msg *m, void *app)
{
    return sb_conn_send(c, m->type, m->data, m->len);
}

int main(int argc, char **argv)
{
    sb_handler h = {.on_message = on_message};
    sb_server_opts o;
    sb_server *s;
    char where[128];
    int rc;

    sb_server_opts_default(&o);
    o.listen = argc > 1 ? argv[1] : "127.0.0.1:7000";
    if (argc > 2 && sb_model_parse(argv[2], &o.model) < 0) {
        fprintf(stderr, "echo_server: model must be event, threads or fork\n");
        return 2;
    }
    o.handle_signals = 1; /* Ctrl-C / SIGTERM stop it cleanly */
    rc = sb_server_new(&s, &o, &h);
    if (rc < 0) {
        fprintf(stderr, "echo_server: %s: %s\n", o.listen, sb_strerror(rc));
        return 1;
    }
    sb_server_address(s, where, sizeof(where));
    printf("listening on %s\n", where);
    fflush(stdout);
    rc = sb_server_run(s);
    sb_server_free(s);
    return rc < 0;
}
