/* libevent_echo: the echo server as libevent users write it - an
 * evconnlistener hands each connection to a bufferevent whose read
 * callback moves the whole input buffer to the output buffer
 * (evbuffer_add_buffer, no copy).
 *
 * usage: libevent_echo PORT   (listens on 127.0.0.1:PORT)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

static void on_read(struct bufferevent *bev, void *ud)
{
    (void)ud;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *ud)
{
    (void)ud;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *ud)
{
    struct event_base *base = ud;
    struct bufferevent *bev;
    int one = 1;

    (void)l, (void)sa, (void)salen;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
    struct event_base *base;
    struct evconnlistener *l;
    struct sockaddr_in sin;

    if (argc != 2) {
        fprintf(stderr, "usage: libevent_echo PORT\n");
        return 2;
    }
    base = event_base_new();
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l = evconnlistener_new_bind(base, on_accept, base,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
                                (struct sockaddr *)&sin, sizeof sin);
    if (base == NULL || l == NULL) {
        perror("libevent_echo");
        return 1;
    }
    event_base_dispatch(base);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
