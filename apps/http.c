/* http: the static file server of `switchboard serve --app http --root DIR`,
 * the web server of the HOWTO's running example.
 *
 * HTTP/1.1 with keep-alive and pipelining, GET and HEAD, conditional
 * requests (ETag / If-None-Match, Last-Modified / If-Modified-Since), one
 * byte range per request, index.html for directories, an optional access
 * log in Common Log Format.
 *
 * Framing: the connection runs a custom cutter (http_cut) that hands the
 * handler one whole request - head plus any body, which GET and HEAD do
 * not use and we discard - per on_message. The cutter already parsed the
 * head; it leaves the result in a per-thread slot keyed by the message's
 * address and length, and on_message takes it from there when it matches
 * (the connection calls the cutter and then the handler back to back on one
 * thread), else parses again. Parsing is deterministic, so both give the
 * same verdict.
 *
 * Defences: the parser is strict (see http.h) and every framing ambiguity
 * (Transfer-Encoding on a request, Transfer-Encoding with Content-Length,
 * differing Content-Lengths, "+5") is a 400 that closes the connection.
 * Paths are percent-decoded once, ".." segments are refused, and files are
 * opened with openat2(RESOLVE_BENEATH) relative to the root directory, so
 * no path and no symlink can reach outside it (where openat2 is missing,
 * the opened file's real path is checked against the root's instead).
 * Slow clients are bounded by the connection's read and idle timeouts.
 *
 * The open-file cache (like nginx's open_file_cache): a regular file of at
 * most CACHE_FILE_MAX bytes, once opened by the safe path above, is kept in
 * memory keyed by its decoded path: its metadata, its validators, its
 * fixed 200 header lines and its content. A hit costs no system call at
 * all; the request's recv and the reply's sendmsg are all that is left. An
 * entry is revalidated at most once per CACHE_VALID_MS, by opening the path
 * again through the same safe open and comparing device, inode, size and
 * mtime: a file changed, removed or replaced (by a symlink out of the root,
 * say) is dropped and the request takes the full path. So a change is seen
 * within about a second, as with nginx's open_file_cache_valid 1s. Bigger
 * files, directories and everything else are never cached.
 *
 * Runs under every dispatch model: the cache is one per process (a forked
 * child starts with the parent's, empty) behind a mutex, entries are
 * reference counted so a reply copies from an entry without holding the
 * lock, all other state after init is read-only or per thread, and
 * access-log lines go out with one write(2) on an O_APPEND descriptor, so
 * threads and forked children never interleave them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/openat2.h>

#include "apps.h"

#define LINE_LIMIT (8 * 1024)     /* request line, CRLF included: 414 past it */
#define HEAD_LIMIT (16 * 1024)    /* whole head: 431 past it */
#define MAX_HEADERS 100           /* header fields: 431 past it */
#define BODY_LIMIT (64 * 1024)    /* body read and dropped: 413 past it */
/* Files up to this size go out in the same write as the head: one copy of
 * at most 16 KiB is cheaper than a second queue entry and a sendfile call. */
#define SMALL_FILE (16 * 1024)
/* The open-file cache: files up to CACHE_FILE_MAX bytes are kept in memory
 * (a copy of 64 KiB costs less than the open, fstat, read and close it
 * replaces), at most CACHE_ENTRIES of them and CACHE_BYTES of content per
 * process; an entry is checked against the file system at most once per
 * CACHE_VALID_MS. */
#define CACHE_FILE_MAX (64 * 1024)
#define CACHE_ENTRIES 1024
#define CACHE_BYTES (16 * 1024 * 1024)
#define CACHE_BUCKETS 2048        /* a power of two, twice CACHE_ENTRIES */
#define CACHE_VALID_MS 1000
#define HEAD_BUF 1024             /* our response heads are far below this */

#define IDLE_MS 15000   /* keep-alive connections idle this long are closed */
#define READ_MS 10000   /* a started request must complete within this */
#define WRITE_MS 30000  /* a reader that stops reading is dropped */

static struct http_app {
    int root_fd;               /* the document root, O_DIRECTORY */
    char root[PATH_MAX];       /* its real path, for the fallback check */
    size_t root_len;
    int log_fd;                /* access log, -1 when off */
    int log_owned;             /* log_fd is ours to close */
    int beneath;               /* openat2(RESOLVE_BENEATH) works here */
    int cache;                 /* the open-file cache is on */
} app = {-1, "", 0, -1, 0, 0, 0};

/* One parsed request, as the cutter leaves it for the handler. */
typedef struct parsed {
    const uint8_t *data;       /* the message this describes */
    size_t len;
    int verdict;               /* 0, or why the request is refused (SB_E*) */
    size_t head_len;
    sb_http_request req;
    sb_http_framing fr;
    sb_http_header h[MAX_HEADERS];
} parsed;

static _Thread_local parsed last_cut;

/* ---- framing: cut one request ---- */

/* Look at p[0..n): returns the length of the message that holds the next
 * request (0: incomplete). A request that is refused takes everything
 * received (the connection is closed after the answer), except a body over
 * the limit, which is not waited for. */
static size_t examine(parsed *ps, const uint8_t *p, size_t n)
{
    static const sb_http_limits lim = {LINE_LIMIT, HEAD_LIMIT};
    int rc = sb_http_parse_request((const char *)p, n, &ps->req, ps->h, MAX_HEADERS, &lim);

    ps->data = p;
    ps->verdict = 0;
    if (rc == SB_HTTP_INCOMPLETE)
        return 0;
    if (rc < 0) {
        ps->verdict = rc;
        return ps->len = n;
    }
    ps->head_len = (size_t)rc;
    /* Any Transfer-Encoding on a request is refused: GET and HEAD carry no
     * body worth decoding, and refusing it removes the TE/CL ambiguity. */
    if (sb_http_framing_get(ps->h, ps->req.num_headers, ps->req.minor_version, 1, &ps->fr) < 0 ||
        ps->fr.has_te) {
        ps->verdict = SB_EHTTP;
        return ps->len = n;
    }
    if (ps->fr.length > BODY_LIMIT) {
        ps->verdict = SB_HTTP_EBODY;
        return ps->len = ps->head_len;
    }
    if (n - ps->head_len < ps->fr.length)
        return 0;
    return ps->len = ps->head_len + (size_t)ps->fr.length;
}

static ssize_t http_cut(void *ud, const uint8_t *p, size_t n, int eof, sb_msg *m)
{
    size_t len;

    if (n == 0)
        return 0;
    len = examine(&last_cut, p, n);
    if (len == 0)
        return 0;   /* at eof too: the connection reports the truncation */
    m->data = p;
    m->len = len;
    m->type = -1;
    return (ssize_t)len;
}

/* ---- writing a response head ---- */

typedef struct out {
    char *p;
    char *end;
} out;

static void put(out *o, const char *s, size_t n)
{
    if ((size_t)(o->end - o->p) < n)
        n = (size_t)(o->end - o->p);    /* stay in bounds: the rest is cut */
    memcpy(o->p, s, n);
    o->p += n;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putu(out *o, uint64_t v)
{
    char d[24];
    int i = 24;

    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(o, d + i, (size_t)(24 - i));
}

static void putx(out *o, uint64_t v)
{
    char d[24];
    int i = 24;

    do
        d[--i] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    put(o, d + i, (size_t)(24 - i));
}

/* The Date header value, formatted once per second per thread. */
static const char *date_now(time_t now)
{
    static _Thread_local time_t when = -1;
    static _Thread_local char text[SB_HTTP_DATE_LEN + 1];

    if (now != when) {
        sb_http_format_date(now, text);
        when = now;
    }
    return text;
}

static void status_line(out *o, int status)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nServer: switchboard/" SB_VERSION_STRING "\r\nDate: ";

    if (status == 200) {
        put(o, ok, sizeof ok - 1);
        put(o, date_now(time(NULL)), SB_HTTP_DATE_LEN);
        put(o, "\r\n", 2);
        return;
    }
    puts_(o, "HTTP/1.1 ");
    putu(o, (uint64_t)status);
    put(o, " ", 1);
    puts_(o, sb_http_reason(status));
    puts_(o, "\r\nServer: switchboard/" SB_VERSION_STRING "\r\nDate: ");
    put(o, date_now(time(NULL)), SB_HTTP_DATE_LEN);
    put(o, "\r\n", 2);
}

static void conn_line(out *o, const parsed *ps, int keep)
{
    if (!keep)
        puts_(o, "Connection: close\r\n");
    else if (ps->req.minor_version == 0)
        puts_(o, "Connection: keep-alive\r\n");
}

/* ---- access log ---- */

static void log_request(sb_conn *c, const parsed *ps, int status, uint64_t bytes)
{
    static _Thread_local time_t when = -1;
    static _Thread_local char stamp[40];
    char line[1024];
    const char *peer = sb_conn_peer(c), *colon;
    time_t now = time(NULL);
    struct tm tm;
    size_t n, hl;
    out o;

    if (now != when) {
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%d/%b/%Y:%H:%M:%S %z", &tm);
        when = now;
    }
    /* "1.2.3.4:80" and "[::1]:80" lose the port, "unix:..." stays. */
    colon = strncmp(peer, "unix:", 5) == 0 ? NULL : strrchr(peer, ':');
    hl = colon ? (size_t)(colon - peer) : strlen(peer);
    if (hl > 1 && peer[0] == '[' && peer[hl - 1] == ']') {
        peer++;
        hl -= 2;
    }
    /* Built with the bounded writers: a long method or target is cut at
     * the line's end, never past it. The target is visible ASCII; only
     * '"' and '\' need escaping. */
    o.p = line;
    o.end = line + sizeof line - 1; /* room for the newline */
    put(&o, peer, hl < 79 ? hl : 79);
    puts_(&o, " - - [");
    puts_(&o, stamp);
    puts_(&o, "] \"");
    if (ps->verdict == 0 || ps->verdict == SB_HTTP_EBODY) {
        put(&o, ps->req.method, ps->req.method_len < 32 ? ps->req.method_len : 32);
        put(&o, " ", 1);
        for (size_t i = 0; i < ps->req.target_len && o.end - o.p > 64; i++) {
            char ch = ps->req.target[i];
            if (ch == '"' || ch == '\\')
                put(&o, "\\", 1);
            put(&o, &ch, 1);
        }
        puts_(&o, " HTTP/1.");
        putu(&o, (uint64_t)ps->req.minor_version);
    } else {
        put(&o, "-", 1);
    }
    puts_(&o, "\" ");
    putu(&o, (uint64_t)status);
    put(&o, " ", 1);
    if (bytes)
        putu(&o, bytes);
    else
        put(&o, "-", 1);
    *o.p++ = '\n';
    n = (size_t)(o.p - line);
    /* A lost log line is not worth failing the request for. */
    if (write(app.log_fd, line, n) < 0)
        return;
}

/* ---- error and redirect answers ---- */

/* Statuses that mean the request stream itself cannot be trusted (or that
 * we cannot tell where the next request starts): answer, then close. */
static int status_closes(int status)
{
    return status == 400 || status == 405 || status == 413 || status == 414 ||
           status == 431 || status == 500 || status == 505;
}

/* An answer with a short text body. extra: more header lines or NULL. */
static int reply_simple(sb_conn *c, const parsed *ps, int status, const char *extra, int is_head)
{
    char buf[HEAD_BUF + 512];
    out o = {buf, buf + sizeof buf};
    int keep = ps->verdict == 0 && ps->fr.keep_alive && !status_closes(status);
    const char *reason = sb_http_reason(status);
    size_t blen = 0;
    int rc;

    status_line(&o, status);
    if (extra)
        puts_(&o, extra);
    conn_line(&o, ps, keep);
    if (status != 304) {
        blen = 4 + strlen(reason) + 1;
        puts_(&o, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
        putu(&o, blen);
        put(&o, "\r\n", 2);
    }
    put(&o, "\r\n", 2);
    if (status != 304 && !is_head) {
        putu(&o, (uint64_t)status);
        put(&o, " ", 1);
        puts_(&o, reason);
        put(&o, "\n", 1);
    } else {
        blen = 0;
    }
    rc = sb_conn_write(c, buf, (size_t)(o.p - buf));
    if (app.log_fd >= 0)
        log_request(c, ps, status, blen);
    if (rc < 0)
        return rc;
    return keep ? 0 : SB_ECLOSED;
}

/* ---- files ---- */

/* Text types say their charset: without one a browser guesses, and
 * guesses wrong for UTF-8 (RFC 6838 section 4.2.1). JSON has no charset
 * parameter (RFC 8259 section 11: it is UTF-8 by definition); SVG, an XML
 * type, takes one (RFC 7303 section 3.2). */
static const struct { const char *ext; const char *type; } mime[] = {
    {"html", "text/html; charset=utf-8"},     {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},       {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},   {"markdown", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},       {"xml", "text/xml; charset=utf-8"},
    {"svg", "image/svg+xml; charset=utf-8"},  {"json", "application/json"},
    {"png", "image/png"},                     {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},                   {"gif", "image/gif"},
    {"webp", "image/webp"},                   {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},             {"pdf", "application/pdf"},
};

static const char *content_type(const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');

    if (dot != NULL && (slash == NULL || dot > slash))
        for (size_t i = 0; i < sizeof mime / sizeof *mime; i++)
            if (strcasecmp(dot + 1, mime[i].ext) == 0)
                return mime[i].type;
    return "application/octet-stream";
}

/* Open rel (relative, no leading '/') beneath dirfd. Returns an fd or a
 * negative errno: -ENOENT, -EXDEV (would leave the root), ... */
static int open_beneath(int dirfd, const char *rel)
{
    int fd;

    if (app.beneath) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
        how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        do
            fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        while (fd < 0 && errno == EINTR);
        return fd < 0 ? -errno : fd;
    }
    fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -errno;
    /* No openat2: where did we land? The kernel's answer, not ours. */
    char proc[64], real[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, real, sizeof real - 1);
    if (n < 0 || (size_t)n < app.root_len || memcmp(real, app.root, app.root_len) != 0 ||
        (app.root_len > 1 && (size_t)n > app.root_len && real[app.root_len] != '/')) {
        close(fd);
        return -EXDEV;
    }
    return fd;
}

/* No ".." segment anywhere: with RESOLVE_BENEATH it could not escape, but
 * it is never legitimate either and refusing it early is clearer. */
static int has_dotdot(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '.' && p[i + 1] == '.' && (i == 0 || p[i - 1] == '/') &&
            (i + 2 == n || p[i + 2] == '/'))
            return 1;
    return 0;
}

/* The parts of a request target that the server uses. */
typedef struct target {
    const char *path;   /* still percent-encoded, starts with '/' */
    size_t path_len;
    const char *query;  /* from its '?' on, or empty */
    size_t query_len;
} target;

/* Split the target: origin form "/p?q", or absolute form
 * "http://authority/p?q" (RFC 9112 section 3.2.2), whose authority must be
 * a valid host with no userinfo, and whose missing path means "/". A
 * fragment never travels in a target, so '#' is refused, as is anything
 * else (authority form, "*", other schemes). Returns 0 or -1. */
static int target_split(const parsed *ps, target *t)
{
    const char *p = ps->req.target, *end = p + ps->req.target_len, *q;
    size_t skip = 0;

    if (memchr(p, '#', ps->req.target_len) != NULL)
        return -1;
    if (end - p >= 7 && strncasecmp(p, "http://", 7) == 0)
        skip = 7;
    else if (end - p >= 8 && strncasecmp(p, "https://", 8) == 0)
        skip = 8;
    if (skip) {
        const char *a = p + skip, *ae = a;
        while (ae < end && *ae != '/' && *ae != '?')
            ae++;
        if (!sb_http_valid_host(a, (size_t)(ae - a)))
            return -1;  /* userinfo ('@') and an empty host fail here too */
        p = ae;
    } else if (p == end || *p != '/') {
        return -1;
    }
    q = memchr(p, '?', (size_t)(end - p));
    t->query = q ? q : end;
    t->query_len = (size_t)(end - t->query);
    t->path = p == t->query ? "/" : p;
    t->path_len = p == t->query ? 1 : (size_t)(t->query - p);
    return 0;
}

static int errno_status(int err)
{
    return err == -EACCES || err == -EPERM ? 403 : 404;
}

/* ---- what a reply needs to know about a file ---- */

/* A file to answer with: either open (fd) or in a cache entry (data). */
typedef struct file {
    int fd;                         /* the open file, or -1: the content is at data */
    const uint8_t *data;            /* the whole content in memory, or NULL */
    uint64_t size;
    time_t mtime;                   /* seconds: what Last-Modified can say */
    const char *ctype;              /* the Content-Type value */
    const char *fixed;              /* a 200's header lines after Date, prebuilt, or NULL */
    size_t fixed_len;
    int tag_len;
    char tag[48];                   /* the ETag, "size-mtime" in hex, quoted */
    char lm[SB_HTTP_DATE_LEN + 1];  /* the Last-Modified date */
} file;

typedef struct reply {
    int status;
    uint64_t first, len;     /* the bytes of the file to send */
} reply;

static void file_describe(file *f, const struct stat *st, const char *path)
{
    out o = {f->tag, f->tag + sizeof f->tag};

    f->data = NULL;
    f->size = (uint64_t)st->st_size;
    f->mtime = st->st_mtim.tv_sec;
    f->ctype = content_type(path);
    f->fixed = NULL;
    f->fixed_len = 0;
    put(&o, "\"", 1);
    putx(&o, f->size);
    put(&o, "-", 1);
    putx(&o, (uint64_t)f->mtime);
    put(&o, "\"", 1);
    f->tag_len = (int)(o.p - f->tag);
    sb_http_format_date(f->mtime, f->lm);
}

static void file_close(const file *f)
{
    if (f->fd >= 0)
        close(f->fd);
}

/* The header lines of a 200 or 206 between Date and the connection line. */
static void file_lines(out *o, const file *f, const reply *r)
{
    puts_(o, "Content-Type: ");
    puts_(o, f->ctype);
    puts_(o, "\r\nContent-Length: ");
    putu(o, r->len);
    if (r->status == 206) {
        puts_(o, "\r\nContent-Range: bytes ");
        putu(o, r->first);
        put(o, "-", 1);
        putu(o, r->first + r->len - 1);
        put(o, "/", 1);
        putu(o, f->size);
    }
    puts_(o, "\r\nLast-Modified: ");
    put(o, f->lm, SB_HTTP_DATE_LEN);
    puts_(o, "\r\nETag: ");
    put(o, f->tag, (size_t)f->tag_len);
    puts_(o, "\r\nAccept-Ranges: bytes\r\n");
}

/* ---- the open-file cache ---- */

/* Room for file_lines of a 200: a Content-Type of our table, a 20-digit
 * length, the date and the tag fit in well under this. */
#define FIXED_MAX 256

typedef struct centry {
    struct centry *hnext;       /* next in its hash bucket */
    struct centry *prev, *next; /* the LRU list, most recently used first */
    uint64_t hash;              /* of the key */
    int refs;                   /* the cache's own + one per reply in progress (atomic) */
    int64_t checked_ms;         /* when the file was last found unchanged */
    dev_t dev;                  /* what "unchanged" compares */
    ino_t ino;
    struct timespec mtim;
    size_t bytes;               /* what the entry counts against CACHE_BYTES */
    file f;                     /* f.data and f.fixed point into this allocation */
    size_t key_len;
    char key[];                 /* the decoded path below the root, NUL-terminated */
} centry;

/* One per process. The lock covers every field and every linked entry's
 * links and checked_ms; an entry's file is immutable once published. */
static struct {
    pthread_mutex_t lock;
    centry *bucket[CACHE_BUCKETS];
    centry *mru, *lru;          /* the two ends of the LRU list */
    size_t entries, bytes;
} cache = {PTHREAD_MUTEX_INITIALIZER, {NULL}, NULL, NULL, 0, 0};

static int64_t now_ms(void)
{
    struct timespec ts;

    /* The coarse clock is read without a system call and is plenty for a
     * once-per-second check. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 1099511628211ull;
    return h;
}

static void centry_unref(centry *e)
{
    if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(e);
}

static void lru_unlink(centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        cache.mru = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        cache.lru = e->prev;
}

static void lru_push(centry *e)
{
    e->prev = NULL;
    e->next = cache.mru;
    if (cache.mru)
        cache.mru->prev = e;
    else
        cache.lru = e;
    cache.mru = e;
}

/* Locked. Take e out of the cache; replies still using it keep it alive. */
static void cache_drop(centry *e)
{
    centry **pp = &cache.bucket[e->hash & (CACHE_BUCKETS - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(e);
    cache.entries--;
    cache.bytes -= e->bytes;
    centry_unref(e);
}

/* Locked. */
static centry *cache_find(const char *key, size_t n, uint64_t h)
{
    centry *e = cache.bucket[h & (CACHE_BUCKETS - 1)];

    while (e && !(e->hash == h && e->key_len == n && memcmp(e->key, key, n) == 0))
        e = e->hnext;
    return e;
}

static int same_file(const centry *e, const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_dev == e->dev && st->st_ino == e->ino &&
           (uint64_t)st->st_size == e->f.size && st->st_mtim.tv_sec == e->mtim.tv_sec &&
           st->st_mtim.tv_nsec == e->mtim.tv_nsec;
}

/* Locked. Is e still what its path names? Asked of the file system at most
 * once per CACHE_VALID_MS, through the same safe open as a miss, so a path
 * that now leaves the root (a symlink put in its place) fails here. */
static int cache_valid(centry *e, int64_t now)
{
    struct stat st;
    int fd, ok;

    if (now - e->checked_ms < CACHE_VALID_MS)
        return 1;
    fd = open_beneath(app.root_fd, e->key);
    if (fd < 0)
        return 0;
    ok = fstat(fd, &st) == 0 && same_file(e, &st);
    close(fd);
    if (ok)
        e->checked_ms = now;
    return ok;
}

/* The entry for key, pinned (centry_unref when done), or NULL. */
static centry *cache_get(const char *key, size_t n)
{
    uint64_t h = key_hash(key, n);
    centry *e;

    pthread_mutex_lock(&cache.lock);
    e = cache_find(key, n, h);
    if (e && !cache_valid(e, now_ms())) {
        cache_drop(e);
        e = NULL;
    }
    if (e) {
        lru_unlink(e);
        lru_push(e);
        __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&cache.lock);
    return e;
}

/* Locked. Publish e (replacing an older entry for its key) and evict from
 * the cold end until the bounds hold again. */
static void cache_insert(centry *e)
{
    centry *old = cache_find(e->key, e->key_len, e->hash), **b;

    if (old)
        cache_drop(old);
    b = &cache.bucket[e->hash & (CACHE_BUCKETS - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(e);
    cache.entries++;
    cache.bytes += e->bytes;
    while ((cache.entries > CACHE_ENTRIES || cache.bytes > CACHE_BYTES) && cache.lru != e)
        cache_drop(cache.lru);
}

/* Read the regular file fd (described by st, at most CACHE_FILE_MAX bytes)
 * into a new entry for key and publish it. Returns the entry pinned, or
 * NULL (out of memory, a read error, the file shrank): serve from fd. */
static centry *cache_put(const char *key, size_t n, int fd, const struct stat *st)
{
    size_t size = (size_t)st->st_size, got = 0, total = sizeof(centry) + n + 1 + size + FIXED_MAX;
    centry *e = malloc(total);
    uint8_t *data;
    char *fixed;
    out o;

    if (e == NULL)
        return NULL;
    data = (uint8_t *)e->key + n + 1;
    while (got < size) {
        ssize_t r = pread(fd, data + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(e);
            return NULL;
        }
        got += (size_t)r;
    }
    memcpy(e->key, key, n);
    e->key[n] = '\0';
    e->key_len = n;
    e->hash = key_hash(key, n);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->mtim = st->st_mtim;
    e->bytes = total;
    e->refs = 2; /* the cache's and the caller's */
    e->checked_ms = now_ms();
    file_describe(&e->f, st, e->key);
    e->f.fd = -1;
    e->f.data = data;
    fixed = (char *)data + size;
    o = (out){fixed, fixed + FIXED_MAX};
    file_lines(&o, &e->f, &(reply){200, 0, e->f.size});
    e->f.fixed = fixed;
    e->f.fixed_len = (size_t)(o.p - fixed);
    pthread_mutex_lock(&cache.lock);
    cache_insert(e);
    pthread_mutex_unlock(&cache.lock);
    return e;
}

static void cache_clear(void)
{
    pthread_mutex_lock(&cache.lock);
    while (cache.lru)
        cache_drop(cache.lru);
    pthread_mutex_unlock(&cache.lock);
}

/* ---- conditional requests and ranges ---- */

/* Does an If-Match / If-None-Match value - "*" or a list of entity tags -
 * match our tag? Weak comparison ignores a "W/" prefix; strong comparison
 * never matches a weak tag (RFC 9110 section 8.8.3.2). Ours are strong. */
static int etag_matches(const char *v, size_t n, const char *tag, size_t tl, int strong)
{
    size_t i = 0;

    while (i < n) {
        int weak = 0;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i < n && v[i] == '*')
            return 1;
        if (i + 2 <= n && v[i] == 'W' && v[i + 1] == '/') {
            weak = 1;
            i += 2;
        }
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && memcmp(v + s, tag, tl) == 0 && !(strong && weak))
            return 1;
    }
    return 0;
}

static const sb_http_header *header(const parsed *ps, const char *name)
{
    int i = sb_http_find(ps->h, ps->req.num_headers, 0, name);
    return i < 0 ? NULL : &ps->h[i];
}

/* The preconditions of a GET or HEAD, evaluated in the order of RFC 9110
 * section 13.2.2: If-Match, else If-Unmodified-Since (412 when false);
 * then If-None-Match, else If-Modified-Since (304 when false). A date that
 * does not parse leaves its field ignored, as the RFC asks. Returns 0 (go
 * on), 304 or 412. */
static int preconditions(const parsed *ps, const file *f)
{
    const sb_http_header *im = header(ps, "if-match"), *inm = header(ps, "if-none-match");
    const sb_http_header *ius = header(ps, "if-unmodified-since"), *ims;
    time_t t;

    if (im) {
        if (!etag_matches(im->value, im->value_len, f->tag, (size_t)f->tag_len, 1))
            return 412;
    } else if (ius && sb_http_parse_date(ius->value, ius->value_len, &t) == 0 && f->mtime > t) {
        return 412;
    }
    if (inm)
        return etag_matches(inm->value, inm->value_len, f->tag, (size_t)f->tag_len, 0) ? 304 : 0;
    ims = header(ps, "if-modified-since");
    if (ims && sb_http_parse_date(ims->value, ims->value_len, &t) == 0 && f->mtime <= t)
        return 304;
    return 0;
}

/* If-Range: the Range applies only if the validator still matches (a
 * strong ETag or the exact Last-Modified date). */
static int if_range_ok(const parsed *ps, const file *f)
{
    const sb_http_header *ir = header(ps, "if-range");

    if (ir == NULL)
        return 1;
    if (ir->value_len == (size_t)f->tag_len && memcmp(ir->value, f->tag, ir->value_len) == 0)
        return 1;
    return ir->value_len == SB_HTTP_DATE_LEN && memcmp(ir->value, f->lm, SB_HTTP_DATE_LEN) == 0;
}

/* ---- serving a file ---- */

/* The body of a 200/206 from an open file, after the head in buf[0..hl)
 * (buf holds HEAD_BUF + SMALL_FILE bytes). Small bodies travel in the
 * head's write; big ones are handed to the connection with sendfile (it
 * owns fd then). Closes fd in every case. */
static int send_from_fd(sb_conn *c, char *buf, size_t hl, int fd, const reply *r)
{
    size_t got = 0;
    int rc;

    if (r->len > SMALL_FILE) {
        rc = sb_conn_write(c, buf, hl);
        if (rc == 0)
            return sb_conn_sendfile(c, fd, (off_t)r->first, (size_t)r->len);
        close(fd);
        return rc;
    }
    while (got < r->len) {
        ssize_t n = pread(fd, buf + hl + got, (size_t)r->len - got, (off_t)(r->first + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    rc = sb_conn_write(c, buf, hl + got);
    if (rc == 0 && got < r->len)
        rc = SB_ETRUNCATED;     /* the file shrank: the length we sent is a lie */
    return rc;
}

/* The body from memory (a pinned cache entry). A small one is copied
 * behind the head; a larger one is queued as it is, saving a copy (the
 * queue gathers both into one sendmsg). */
static int send_from_memory(sb_conn *c, char *buf, size_t hl, const uint8_t *p, size_t n)
{
    int rc;

    if (n <= 1024) {
        memcpy(buf + hl, p, n);
        return sb_conn_write(c, buf, hl + n);
    }
    rc = sb_conn_write(c, buf, hl);
    return rc < 0 ? rc : sb_conn_write(c, p, n);
}

/* Head + body of a 200/206. Closes f's fd, if any. */
static int send_file(sb_conn *c, const parsed *ps, const file *f, const reply *r, int is_head)
{
    char buf[HEAD_BUF + SMALL_FILE];
    out o = {buf, buf + HEAD_BUF};
    int keep = ps->fr.keep_alive, rc;
    size_t hl;

    status_line(&o, r->status);
    if (r->status == 200 && f->fixed)
        put(&o, f->fixed, f->fixed_len);
    else
        file_lines(&o, f, r);
    conn_line(&o, ps, keep);
    put(&o, "\r\n", 2);
    hl = (size_t)(o.p - buf);

    if (app.log_fd >= 0)
        log_request(c, ps, r->status, is_head ? 0 : r->len);
    if (is_head || r->len == 0) {
        file_close(f);
        rc = sb_conn_write(c, buf, hl);
    } else if (f->data) {
        rc = send_from_memory(c, buf, hl, f->data + r->first, (size_t)r->len);
    } else {
        rc = send_from_fd(c, buf, hl, f->fd, r);
    }
    if (rc < 0)
        return rc;
    return keep ? 0 : SB_ECLOSED;
}

/* 304, 416 or the file itself. Closes f's fd, if any. */
static int answer_file(sb_conn *c, const parsed *ps, const file *f, int is_head)
{
    char extra[HEAD_BUF];
    uint64_t a, b;
    const sb_http_header *range;
    reply r = {200, 0, f->size};

    int pre = preconditions(ps, f);
    if (pre != 0) {
        file_close(f);
        snprintf(extra, sizeof extra, "ETag: %.*s\r\nLast-Modified: %s\r\n", f->tag_len, f->tag,
                 f->lm);
        return reply_simple(c, ps, pre, pre == 304 ? extra : NULL, is_head);
    }
    /* Range is defined for GET only (RFC 9110 section 14.2). */
    range = is_head ? NULL : header(ps, "range");
    if (range && if_range_ok(ps, f)) {
        int rc = sb_http_parse_range(range->value, range->value_len, f->size, &a, &b);
        if (rc == SB_HTTP_EUNSAT) {
            file_close(f);
            snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\n",
                     (unsigned long long)f->size);
            return reply_simple(c, ps, 416, extra, is_head);
        }
        if (rc == 1)
            r = (reply){206, a, b - a + 1};
    }
    return send_file(c, ps, f, &r, is_head);
}

/* Answer from a pinned cache entry, then let go of it. */
static int answer_cached(sb_conn *c, const parsed *ps, centry *e, int is_head)
{
    int rc = answer_file(c, ps, &e->f, is_head);

    centry_unref(e);
    return rc;
}

/* Characters a path keeps unescaped in a Location (RFC 3986 pchar and
 * '/'); everything else, '%' and '\\' included, goes out as %XX. */
static int path_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

/* The Location of a directory's redirect: the decoded path normalised -
 * runs of '/' folded into one, "." segments dropped - encoded again, a '/'
 * appended, then the query. Built this way it always starts with exactly
 * one '/': "//host/" in a Location is another host to a browser, and
 * "/\\host" is too to some. */
static void location(out *o, const char *path, size_t n, const target *t)
{
    size_t i = 0;

    puts_(o, "Location: ");
    while (i < n) {
        while (i < n && path[i] == '/')
            i++;
        size_t s = i;
        while (i < n && path[i] != '/')
            i++;
        if (i == s || (i - s == 1 && path[s] == '.'))
            continue;
        put(o, "/", 1);
        for (size_t k = s; k < i; k++) {
            unsigned char ch = (unsigned char)path[k];
            if (path_char(ch)) {
                put(o, (const char *)&ch, 1);
            } else {
                char e[3] = {'%', "0123456789ABCDEF"[ch >> 4], "0123456789ABCDEF"[ch & 15]};
                put(o, e, 3);
            }
        }
    }
    put(o, "/", 1);
    put(o, t->query, t->query_len);
    puts_(o, "\r\n");
}

/* A directory: "dir" -> 301 "dir/"; "dir/" -> dir/index.html. Takes fd.
 * path[0..n) is the decoded path. Returns the index file's fd (with *st
 * refreshed), or -1 after having answered (the return code in *rc). */
static int directory(sb_conn *c, const parsed *ps, int fd, struct stat *st, const char *path,
                     size_t n, const target *t, int is_head, int *rc)
{
    char extra[HEAD_BUF];
    int ifd;

    if (path[n - 1] != '/') {
        out o = {extra, extra + sizeof extra - 1};
        close(fd);
        location(&o, path, n, t);
        /* A Location that does not fit a head is not sent cut short. */
        int fits = o.p < o.end;
        *o.p = '\0';
        *rc = reply_simple(c, ps, fits ? 301 : 404, fits ? extra : NULL, is_head);
        return -1;
    }
    ifd = open_beneath(fd, "index.html");
    close(fd);
    if (ifd < 0 || fstat(ifd, st) < 0 || !S_ISREG(st->st_mode)) {
        if (ifd >= 0)
            close(ifd);
        *rc = reply_simple(c, ps, ifd == -EACCES ? 403 : 404, NULL, is_head);
        return -1;
    }
    return ifd;
}

static int serve_get(sb_conn *c, const parsed *ps, int is_head)
{
    char path[LINE_LIMIT + 16];
    const char *rel;
    size_t rel_len;
    ssize_t n;
    target t;
    struct stat st;
    centry *e;
    file f;
    int fd, rc = 0;

    if (target_split(ps, &t) < 0)
        return reply_simple(c, ps, 400, NULL, is_head);
    n = sb_http_percent_decode(t.path, t.path_len, path);
    if (n < 0 || has_dotdot(path, (size_t)n))
        return reply_simple(c, ps, 400, NULL, is_head);
    path[n] = '\0';
    rel = path;
    while (*rel == '/')
        rel++;
    rel_len = (size_t)(path + n - rel);
    /* The key is the path exactly as a miss opens it, so a hit answers what
     * the full path would have (as of the entry's last check). */
    if (app.cache && rel_len > 0 && (e = cache_get(rel, rel_len)) != NULL)
        return answer_cached(c, ps, e, is_head);
    fd = open_beneath(app.root_fd, *rel ? rel : ".");
    if (fd < 0)
        return reply_simple(c, ps, errno_status(fd), NULL, is_head);
    if (fstat(fd, &st) < 0) {
        close(fd);
        return reply_simple(c, ps, 500, NULL, is_head);
    }
    if (S_ISDIR(st.st_mode)) {
        fd = directory(c, ps, fd, &st, path, (size_t)n, &t, is_head, &rc);
        if (fd < 0)
            return rc;
        rel = "index.html";
    } else if (!S_ISREG(st.st_mode)) {
        close(fd);
        return reply_simple(c, ps, 404, NULL, is_head);
    } else if (app.cache && st.st_size <= CACHE_FILE_MAX &&
               (e = cache_put(rel, rel_len, fd, &st)) != NULL) {
        close(fd);
        return answer_cached(c, ps, e, is_head);
    }
    file_describe(&f, &st, rel);
    f.fd = fd;
    return answer_file(c, ps, &f, is_head);
}

/* ---- the handler ---- */

/* A HEAD request? Read from the bytes, not the parse: a refused request
 * has no trustworthy parse, and its answer must still carry no body when
 * it was a HEAD (RFC 9110 section 9.3.2). Empty lines before the request
 * line are skipped as the parser skips them. */
static int is_head_request(const uint8_t *p, size_t n)
{
    while (n > 0 && (*p == '\r' || *p == '\n')) {
        p++;
        n--;
    }
    return n >= 5 && memcmp(p, "HEAD ", 5) == 0;
}

/* RFC 9112 section 3.2: an HTTP/1.1 request has exactly one Host, and a
 * Host, when present, is valid - also beside an absolute-form target,
 * whose authority is then the one that counts (section 3.2.2); the file
 * served never depends on either. */
static int host_ok(const parsed *ps)
{
    int host = sb_http_find(ps->h, ps->req.num_headers, 0, "host");

    if (host < 0)
        return ps->req.minor_version == 0;
    if (sb_http_find(ps->h, ps->req.num_headers, (size_t)host + 1, "host") >= 0)
        return 0;
    return sb_http_valid_host(ps->h[host].value, ps->h[host].value_len);
}

static int http_message(sb_conn *c, const sb_msg *m, void *ud)
{
    parsed local, *ps = &last_cut;
    int is_head;

    if (ps->data != m->data || ps->len != m->len) {
        ps = &local;
        examine(ps, m->data, m->len);
    }
    is_head = is_head_request(m->data, m->len);
    if (ps->verdict != 0)
        return reply_simple(c, ps, sb_http_error_status(ps->verdict), NULL, is_head);
    if (!is_head && !(ps->req.method_len == 3 && memcmp(ps->req.method, "GET", 3) == 0))
        return reply_simple(c, ps, 405, "Allow: GET, HEAD\r\n", 0);
    if (!host_ok(ps))
        return reply_simple(c, ps, 400, NULL, is_head);
    return serve_get(c, ps, is_head);
}

/* ---- init ---- */

static int open_log(const char *where, const char **why)
{
    if (where == NULL)
        return 0;
    if (strcmp(where, "-") == 0) {
        app.log_fd = STDOUT_FILENO;
        return 0;
    }
    app.log_fd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (app.log_fd < 0) {
        *why = "cannot open the --access-log file";
        return -errno;
    }
    app.log_owned = 1;
    return 0;
}

static int http_init(const sb_app_config *cfg, sb_server_opts *o, sb_handler *h, const char **why)
{
    const char *root = cfg->root ? cfg->root : ".";
    struct open_how how;
    int fd, rc;

    if (realpath(root, app.root) == NULL) {
        *why = "cannot resolve the --root directory";
        return -errno;
    }
    app.root_len = strlen(app.root);
    app.root_fd = open(app.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (app.root_fd < 0) {
        *why = "--root is not a readable directory";
        return -errno;
    }
    /* Probe openat2 once: old kernels and some sandboxes lack it. */
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH;
    fd = (int)syscall(SYS_openat2, app.root_fd, ".", &how, sizeof how);
    app.beneath = fd >= 0;
    if (fd >= 0)
        close(fd);
    if ((rc = open_log(cfg->access_log, why)) < 0)
        return rc;
    app.cache = !cfg->no_file_cache;

    o->conn.frame.kind = SB_FRAME_CUSTOM;
    o->conn.frame.cut = http_cut;
    o->conn.frame.cut_ud = &app;
    /* Room for the largest head plus the largest body we read, and for
     * pipelined requests behind them; the cutter rules on size first. */
    o->conn.max_msg = 4 * (HEAD_LIMIT + BODY_LIMIT);
    if (o->conn.idle_timeout_ms == 0)
        o->conn.idle_timeout_ms = IDLE_MS;
    if (o->conn.read_timeout_ms == 0)
        o->conn.read_timeout_ms = READ_MS;
    if (o->conn.write_timeout_ms == 0)
        o->conn.write_timeout_ms = WRITE_MS;
    h->on_message = http_message;
    h->app = &app;
    return 0;
}

static void http_fini(void)
{
    cache_clear();
    if (app.root_fd >= 0)
        close(app.root_fd);
    if (app.log_owned)
        close(app.log_fd);
    app.root_fd = app.log_fd = -1;
    app.log_owned = 0;
}

const sb_app sb_app_http = {"http", "static HTTP/1.1 file server (--root DIR)", http_init, http_fini};
