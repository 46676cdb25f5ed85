// test_cxx: the public headers from C++. Every header is included here,
// and (by CMake) alone in a translation unit of its own, compiled as C++
// with -pedantic -Werror: each must stand alone, carry its extern "C"
// block and use no C-only syntax. The program links against the library
// and calls into every module; a line-framed echo runs over loopback
// between a blocking connection on a std::thread and a stream.
#include "switchboard/addr.h"
#include "switchboard/buf.h"
#include "switchboard/conn.h"
#include "switchboard/error.h"
#include "switchboard/frame.h"
#include "switchboard/http.h"
#include "switchboard/loop.h"
#include "switchboard/pack.h"
#include "switchboard/server.h"
#include "switchboard/sock.h"
#include "switchboard/stream.h"
#include "switchboard.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,    \
                         #cond);                                                     \
            std::abort();                                                            \
        }                                                                            \
    } while (0)

static void check_text_modules()
{
    CHECK(std::string(sb_version()) == SB_VERSION_STRING);
    CHECK(std::string(sb_strerror(SB_ETOOBIG)) == "message too big");
    CHECK(std::string(sb_http_strerror(SB_HTTP_EUNSAT)) == sb_strerror(SB_HTTP_EUNSAT));

    uint8_t b[SB_VARINT_MAX];
    uint64_t v = 0;
    sb_put_u32be(b, 0x01020304u);
    CHECK(sb_get_u32be(b) == 0x01020304u);
    size_t n = sb_varint_put(b, 300);
    CHECK(sb_varint_get(b, n, &v) == (int)n && v == 300);

    sb_addr_spec as;
    CHECK(sb_addr_parse("[::1]:8080", &as) == 0 && std::string(as.port) == "8080");

    sb_http_header h[8];
    sb_http_request req;
    const char get[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK(sb_http_parse_request(get, sizeof(get) - 1, &req, h, 8, nullptr) ==
          (int)(sizeof(get) - 1));
    CHECK(req.num_headers == 1 && sb_http_name_is(&h[0], "host"));

    sb_model m;
    CHECK(sb_model_parse("threads", &m) == 0 && std::string(sb_model_name(m)) == "threads");
    sb_server_opts so;
    sb_server_opts_default(&so);
}

static void check_frame_and_buf()
{
    sb_frame_spec spec;
    sb_buf out;
    sb_decoder d;
    sb_msg msg;

    CHECK(sb_frame_parse("varint", &spec) == 0);
    sb_buf_init(&out, 0);
    CHECK(sb_frame_encode(&spec, -1, "hello", 5, &out) == 0);
    sb_decoder_init(&d, &spec, 64);
    CHECK(sb_decoder_feed(&d, sb_buf_data(&out), sb_buf_len(&out)) == 0);
    CHECK(sb_decoder_next(&d, &msg) == 1 && msg.len == 5);
    CHECK(std::memcmp(msg.data, "hello", 5) == 0);
    sb_decoder_free(&d);
    sb_buf_free(&out);
}

static void on_timer(sb_loop *l, sb_timer *) { sb_loop_stop(l); }

static void check_loop()
{
    sb_loop *l = nullptr;
    sb_timer t;

    CHECK(sb_loop_new(&l, nullptr) == 0);
    sb_timer_init(&t, on_timer, nullptr);
    CHECK(sb_timer_start(l, &t, 1) == 0);
    CHECK(sb_timer_active(&t));
    CHECK(sb_loop_run(l) >= 0);
    sb_loop_free(l);
}

static int echo(sb_conn *c, const sb_msg *m, void *)
{
    return sb_conn_send(c, m->type, m->data, m->len);
}

// The sock, conn and stream modules together: "ab\r" goes out and comes
// back through line framing.
static void check_echo()
{
    int lfd = sb_listen("127.0.0.1:0", 4), cfd, sfd;
    char addr[64];
    sb_conn_opts o;
    sb_handler h = {};
    sb_stream *s = nullptr;
    sb_msg reply;
    int served = -1;

    CHECK(lfd >= 0);
    std::snprintf(addr, sizeof(addr), "127.0.0.1:%d", sb_local_port(lfd));
    cfd = sb_dial(addr, 5000);
    CHECK(cfd >= 0);
    sfd = sb_accept(lfd, nullptr, 0);
    CHECK(sfd >= 0);
    sb_conn_opts_default(&o);
    o.idle_timeout_ms = 10000;
    h.on_message = echo;
    std::thread server([&] { served = sb_conn_run_blocking(sfd, &o, &h); });
    CHECK(sb_stream_open(&s, cfd, &o.frame, 1024, 5000) == 0);
    CHECK(sb_stream_request(s, -1, "ab\r", 3, &reply) == 1);
    CHECK(reply.len == 3 && std::memcmp(reply.data, "ab\r", 3) == 0);
    sb_stream_close(s);
    close(cfd); // the server reads end of stream and returns
    server.join();
    CHECK(served == 0);
    close(lfd);
}

int main()
{
    check_text_modules();
    check_frame_and_buf();
    check_loop();
    check_echo();
    std::fprintf(stderr, "test_cxx: ok\n");
    return 0;
}
