/* chat: every message from one client is delivered to all the others - the
 * classic multiplexing demo of HOWTO section 5.
 *
 * A slow reader must not slow down or grow memory for the rest: a send to
 * it only queues (never blocks), and once its queue passes the connection's
 * output cap it is disconnected. The member table is guarded by a mutex so
 * the same code runs under the threads model; the fork model cannot share
 * it and is refused. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "apps.h"

static pthread_mutex_t chat_mu = PTHREAD_MUTEX_INITIALIZER;
static sb_conn **chat_members;
static size_t chat_count, chat_cap;

static int chat_open(sb_conn *c, void *app)
{
    int rc = 0;

    pthread_mutex_lock(&chat_mu);
    if (chat_count == chat_cap) {
        size_t cap = chat_cap ? chat_cap * 2 : 64;
        sb_conn **n = realloc(chat_members, cap * sizeof(*n));
        if (n == NULL)
            rc = -ENOMEM;
        else {
            chat_members = n;
            chat_cap = cap;
        }
    }
    if (rc == 0) {
        sb_conn_set_data(c, (void *)(uintptr_t)chat_count);
        chat_members[chat_count++] = c;
    }
    pthread_mutex_unlock(&chat_mu);
    return rc;
}

static void chat_close(sb_conn *c, int err, void *app)
{
    size_t i;

    pthread_mutex_lock(&chat_mu);
    i = (size_t)(uintptr_t)sb_conn_data(c);
    if (i < chat_count && chat_members[i] == c) {
        chat_members[i] = chat_members[--chat_count];
        sb_conn_set_data(chat_members[i], (void *)(uintptr_t)i);
    }
    pthread_mutex_unlock(&chat_mu);
}

static int chat_message(sb_conn *from, const sb_msg *m, void *app)
{
    pthread_mutex_lock(&chat_mu);
    for (size_t i = 0; i < chat_count; i++)
        if (chat_members[i] != from)
            sb_conn_send(chat_members[i], m->type, m->data, m->len);
    pthread_mutex_unlock(&chat_mu);
    return 0;
}

static int chat_init(const sb_app_config *cfg, sb_server_opts *o, sb_handler *h, const char **why)
{
    if (cfg->model == SB_MODEL_FORK) {
        *why = "the chat app needs connections that share one process: use --model event or threads";
        return -EINVAL;
    }
    h->on_open = chat_open;
    h->on_message = chat_message;
    h->on_close = chat_close;
    return 0;
}

static void chat_fini(void)
{
    free(chat_members);
    chat_members = NULL;
    chat_count = chat_cap = 0;
}

const sb_app sb_app_chat = {"chat", "deliver each message to every other client", chat_init, chat_fini};
