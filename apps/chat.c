/* chat: every message from one client is delivered to all the others - the
 * classic multiplexing demo of HOWTO section 5.
 *
 * A slow reader must not slow down or grow memory for the rest: a send to
 * it only queues (never blocks), and once its queue passes the connection's
 * output cap it is disconnected.
 *
 * Event model, any number of workers: one room per loop, holding that
 * loop's members and touched only by that loop's thread - no lock. A
 * message goes straight to the members of its own room, and to every other
 * room as one shared, reference-counted copy posted to that room's loop
 * (sb_loop_post), which delivers it there. No thread ever writes to another
 * loop's connection or waits for another loop. What is posted to a room and
 * not yet delivered is capped (CHAT_POST_CAP): a worker too far behind
 * loses messages rather than growing memory without bound.
 *
 * Threads model: the one room (loop NULL) is guarded by a mutex. The fork
 * model cannot share it and is refused. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"

#define CHAT_ROOMS_MAX 256          /* loops: the server's SB_WORKERS_MAX */
#define CHAT_POST_CAP (64u << 20)   /* bytes posted to one room, not yet delivered */

typedef struct room {
    sb_loop *loop;      /* NULL: the threads model's room, under chat_mu */
    sb_conn **members;
    size_t count, cap;
    size_t posted;      /* atomic: bytes posted here, not yet delivered */
} room;

/* A message on its way to other rooms: one copy, freed by the last. */
typedef struct shared_msg {
    int refs;           /* atomic */
    int type;
    size_t len;
    uint8_t data[];
} shared_msg;

static pthread_mutex_t chat_mu = PTHREAD_MUTEX_INITIALIZER; /* adding rooms; the threads room */
static room *chat_rooms[CHAT_ROOMS_MAX];
static int chat_nrooms;             /* atomic: published with release */

/* Rooms are only ever added while the server runs, and published after
 * they are whole: a lock-free scan sees complete rooms. */
static room *room_find(sb_loop *l)
{
    int n = __atomic_load_n(&chat_nrooms, __ATOMIC_ACQUIRE);

    for (int i = 0; i < n; i++)
        if (chat_rooms[i]->loop == l)
            return chat_rooms[i];
    return NULL;
}

static room *room_get(sb_loop *l)
{
    room *r = room_find(l);

    if (r != NULL)
        return r;
    pthread_mutex_lock(&chat_mu);
    r = room_find(l);
    if (r == NULL && chat_nrooms < CHAT_ROOMS_MAX && (r = calloc(1, sizeof(*r))) != NULL) {
        r->loop = l;
        chat_rooms[chat_nrooms] = r;
        __atomic_store_n(&chat_nrooms, chat_nrooms + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&chat_mu);
    return r;
}

static void room_lock(room *r)
{
    if (r->loop == NULL)
        pthread_mutex_lock(&chat_mu);
}

static void room_unlock(room *r)
{
    if (r->loop == NULL)
        pthread_mutex_unlock(&chat_mu);
}

static void room_send(room *r, sb_conn *from, int type, const void *p, size_t n)
{
    for (size_t i = 0; i < r->count; i++)
        if (r->members[i] != from)
            sb_conn_send(r->members[i], type, p, n);
}

static int chat_open(sb_conn *c, void *app)
{
    room *r = room_get(sb_conn_loop(c));
    int rc = 0;

    if (r == NULL)
        return -ENOMEM;
    room_lock(r);
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        sb_conn **n = realloc(r->members, cap * sizeof(*n));
        if (n == NULL)
            rc = -ENOMEM;
        else {
            r->members = n;
            r->cap = cap;
        }
    }
    if (rc == 0) {
        sb_conn_set_data(c, (void *)(uintptr_t)r->count);
        r->members[r->count++] = c;
    }
    room_unlock(r);
    return rc;
}

static void chat_close(sb_conn *c, int err, void *app)
{
    room *r = room_find(sb_conn_loop(c));
    size_t i;

    if (r == NULL)
        return;
    room_lock(r);
    i = (size_t)(uintptr_t)sb_conn_data(c);
    if (i < r->count && r->members[i] == c) {
        r->members[i] = r->members[--r->count];
        sb_conn_set_data(r->members[i], (void *)(uintptr_t)i);
    }
    room_unlock(r);
}

static void shared_put(shared_msg *m)
{
    if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(m);
}

/* On the receiving room's loop. */
static void chat_deliver(sb_loop *l, void *ud)
{
    shared_msg *m = ud;
    room *r = room_find(l);

    if (r != NULL) {
        room_send(r, NULL, m->type, m->data, m->len);
        __atomic_sub_fetch(&r->posted, m->len, __ATOMIC_RELAXED);
    }
    shared_put(m);
}

/* Post m to every room but its own; rooms over their cap skip it. */
static void chat_post(room *from, const sb_msg *in)
{
    int n = __atomic_load_n(&chat_nrooms, __ATOMIC_ACQUIRE);
    shared_msg *m = NULL;

    for (int i = 0; i < n; i++) {
        room *r = chat_rooms[i];
        if (r == from || r->loop == NULL)
            continue;
        if (__atomic_load_n(&r->posted, __ATOMIC_RELAXED) > CHAT_POST_CAP)
            continue;
        if (m == NULL) {
            if ((m = malloc(sizeof(*m) + in->len)) == NULL)
                return;
            m->refs = 1; /* ours, until the loop ends */
            m->type = in->type;
            m->len = in->len;
            memcpy(m->data, in->data, in->len);
        }
        __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&r->posted, in->len, __ATOMIC_RELAXED);
        if (sb_loop_post(r->loop, chat_deliver, m) < 0) {
            __atomic_sub_fetch(&r->posted, in->len, __ATOMIC_RELAXED);
            shared_put(m);
        }
    }
    if (m != NULL)
        shared_put(m);
}

static int chat_message(sb_conn *from, const sb_msg *m, void *app)
{
    room *r = room_find(sb_conn_loop(from));

    if (r == NULL)
        return 0;
    room_lock(r);
    room_send(r, from, m->type, m->data, m->len);
    room_unlock(r);
    if (r->loop != NULL)
        chat_post(r, m);
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
    for (int i = 0; i < chat_nrooms; i++) {
        free(chat_rooms[i]->members);
        free(chat_rooms[i]);
        chat_rooms[i] = NULL;
    }
    chat_nrooms = 0;
}

const sb_app sb_app_chat = {"chat", "deliver each message to every other client", chat_init, chat_fini};
