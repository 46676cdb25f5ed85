/* echo: every message goes back as it came, framed the same way (a typed
 * message keeps its type). With --work-us the handler first burns that much
 * CPU, standing in for an app that does real work (HOWTO 5.1). */
#include <time.h>

#include "apps.h"

static int echo_work_us;

void sb_app_burn(int us)
{
    struct timespec t0, t;
    long long ns = (long long)us * 1000;

    if (us <= 0)
        return;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    do
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) < ns);
}

static int echo_message(sb_conn *c, const sb_msg *m, void *app)
{
    int rc;

    if (echo_work_us > 0)
        sb_app_burn(echo_work_us);
    rc = sb_conn_send(c, m->type, m->data, m->len);
    /* A reply the framing cannot carry (cannot happen for an echo of a
     * message the same framing decoded) or a closed peer ends the conn. */
    return rc < 0 ? rc : 0;
}

static int echo_init(const sb_app_config *cfg, sb_server_opts *o, sb_handler *h, const char **why)
{
    echo_work_us = cfg->work_us;
    h->on_message = echo_message;
    return 0;
}

const sb_app sb_app_echo = {"echo", "reply each message as it came", echo_init, NULL};
