/* http_files: the document root and the safe open beneath it, media
 * types, a file's validators and header lines, and the open-file cache of
 * the static file server. See http_files.h for what each promises.
 *
 * Divisions: the root and the safe open; media types; describing a file;
 * the open-file cache.
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

#include "http_files.h"

/* At most CACHE_ENTRIES files and CACHE_BYTES of content per process; an
 * entry is checked against the file system at most once per
 * CACHE_VALID_MS. */
#define CACHE_FILE_MAX HF_CACHE_FILE_MAX
#define CACHE_ENTRIES 1024
#define CACHE_BYTES (16 * 1024 * 1024)
#define CACHE_BUCKETS 2048        /* a power of two, twice CACHE_ENTRIES */
#define CACHE_VALID_MS 1000

/* Set by hf_init before any connection exists, read-only after. */
static struct {
    int fd;                    /* the document root, O_DIRECTORY */
    char real[PATH_MAX];       /* its real path, for the fallback check */
    size_t len;
    int beneath;               /* openat2(RESOLVE_BENEATH) works here */
    int cache;                 /* the open-file cache is on */
} root = {-1, "", 0, 0, 0};

/* ---- the root and the safe open ---- */

int hf_init(const char *dir, int cache, const char **why)
{
    struct open_how how;
    int fd;

    if (realpath(dir, root.real) == NULL) {
        *why = "cannot resolve the --root directory";
        return -errno;
    }
    root.len = strlen(root.real);
    root.fd = open(root.real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root.fd < 0) {
        *why = "--root is not a readable directory";
        return -errno;
    }
    /* Probe openat2 once: old kernels and some sandboxes lack it. */
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH;
    fd = (int)syscall(SYS_openat2, root.fd, ".", &how, sizeof how);
    root.beneath = fd >= 0;
    if (fd >= 0)
        close(fd);
    root.cache = cache;
    return 0;
}

int hf_open_in(int dirfd, const char *rel)
{
    int fd;

    if (root.beneath) {
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
    if (n < 0 || (size_t)n < root.len || memcmp(real, root.real, root.len) != 0 ||
        (root.len > 1 && (size_t)n > root.len && real[root.len] != '/')) {
        close(fd);
        return -EXDEV;
    }
    return fd;
}

/* No ".." segment anywhere: with RESOLVE_BENEATH it could not escape, but
 * it is never legitimate either and refusing it early is clearer. */
int hf_has_dotdot(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '.' && p[i + 1] == '.' && (i == 0 || p[i - 1] == '/') &&
            (i + 2 == n || p[i + 2] == '/'))
            return 1;
    return 0;
}

int hf_open(const char *rel)
{
    return hf_open_in(root.fd, *rel ? rel : ".");
}

/* ---- media types ---- */

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

/* ---- what a reply needs to know about a file ---- */

void hf_describe(hf_file *f, const struct stat *st, const char *path)
{
    hf_out o = {f->tag, f->tag + sizeof f->tag};

    f->data = NULL;
    f->size = (uint64_t)st->st_size;
    f->mtime = st->st_mtim.tv_sec;
    f->ctype = content_type(path);
    f->fixed = NULL;
    f->fixed_len = 0;
    hf_put(&o, "\"", 1);
    hf_putx(&o, f->size);
    hf_put(&o, "-", 1);
    hf_putx(&o, (uint64_t)f->mtime);
    hf_put(&o, "\"", 1);
    f->tag_len = (int)(o.p - f->tag);
    sb_http_format_date(f->mtime, f->lm);
}

void hf_file_close(const hf_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
}

void hf_file_lines(hf_out *o, const hf_file *f, const hf_reply *r)
{
    hf_puts(o, "Content-Type: ");
    hf_puts(o, f->ctype);
    hf_puts(o, "\r\nContent-Length: ");
    hf_putu(o, r->len);
    if (r->status == 206) {
        hf_puts(o, "\r\nContent-Range: bytes ");
        hf_putu(o, r->first);
        hf_put(o, "-", 1);
        hf_putu(o, r->first + r->len - 1);
        hf_put(o, "/", 1);
        hf_putu(o, f->size);
    }
    hf_puts(o, "\r\nLast-Modified: ");
    hf_put(o, f->lm, SB_HTTP_DATE_LEN);
    hf_puts(o, "\r\nETag: ");
    hf_put(o, f->tag, (size_t)f->tag_len);
    hf_puts(o, "\r\nAccept-Ranges: bytes\r\n");
}

/* ---- the open-file cache ---- */

/* Room for file_lines of a 200: a Content-Type of our table, a 20-digit
 * length, the date and the tag fit in well under this. */
#define FIXED_MAX 256

struct hf_entry {
    struct hf_entry *hnext;     /* next in its hash bucket */
    struct hf_entry *prev, *next; /* the LRU list, most recently used first */
    uint64_t hash;              /* of the key */
    int refs;                   /* the cache's own + one per reply in progress (atomic) */
    int64_t checked_ms;         /* when the file was last found unchanged */
    dev_t dev;                  /* what "unchanged" compares */
    ino_t ino;
    struct timespec mtim;
    size_t bytes;               /* what the entry counts against CACHE_BYTES */
    hf_file f;                  /* f.data and f.fixed point into this allocation */
    size_t key_len;
    char key[];                 /* the decoded path below the root, NUL-terminated */
};

/* One per process. The lock covers every field and every linked entry's
 * links and checked_ms; an entry's file is immutable once published. */
static struct {
    pthread_mutex_t lock;
    hf_entry *bucket[CACHE_BUCKETS];
    hf_entry *mru, *lru;        /* the two ends of the LRU list */
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

void hf_entry_unref(hf_entry *e)
{
    if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(e);
}

static void lru_unlink(hf_entry *e)
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

static void lru_push(hf_entry *e)
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
static void cache_drop(hf_entry *e)
{
    hf_entry **pp = &cache.bucket[e->hash & (CACHE_BUCKETS - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(e);
    cache.entries--;
    cache.bytes -= e->bytes;
    hf_entry_unref(e);
}

/* Locked. */
static hf_entry *cache_find(const char *key, size_t n, uint64_t h)
{
    hf_entry *e = cache.bucket[h & (CACHE_BUCKETS - 1)];

    while (e && !(e->hash == h && e->key_len == n && memcmp(e->key, key, n) == 0))
        e = e->hnext;
    return e;
}

static int same_file(const hf_entry *e, const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_dev == e->dev && st->st_ino == e->ino &&
           (uint64_t)st->st_size == e->f.size && st->st_mtim.tv_sec == e->mtim.tv_sec &&
           st->st_mtim.tv_nsec == e->mtim.tv_nsec;
}

/* Locked. Is e still what its path names? Asked of the file system at most
 * once per CACHE_VALID_MS, through the same safe open as a miss, so a path
 * that now leaves the root (a symlink put in its place) fails here. */
static int cache_valid(hf_entry *e, int64_t now)
{
    struct stat st;
    int fd, ok;

    if (now - e->checked_ms < CACHE_VALID_MS)
        return 1;
    fd = hf_open(e->key);
    if (fd < 0)
        return 0;
    ok = fstat(fd, &st) == 0 && same_file(e, &st);
    close(fd);
    if (ok)
        e->checked_ms = now;
    return ok;
}

hf_entry *hf_cache_get(const char *key, size_t n)
{
    uint64_t h = key_hash(key, n);
    hf_entry *e;

    if (!root.cache || n == 0)
        return NULL;
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
static void cache_insert(hf_entry *e)
{
    hf_entry *old = cache_find(e->key, e->key_len, e->hash), **b;

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

hf_entry *hf_cache_put(const char *key, size_t n, int fd, const struct stat *st)
{
    size_t size = (size_t)st->st_size, got = 0, total = sizeof(hf_entry) + n + 1 + size + FIXED_MAX;
    hf_entry *e;
    uint8_t *data;
    char *fixed;
    hf_out o;

    if (!root.cache || n == 0 || st->st_size > CACHE_FILE_MAX || (e = malloc(total)) == NULL)
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
    hf_describe(&e->f, st, e->key);
    e->f.fd = -1;
    e->f.data = data;
    fixed = (char *)data + size;
    o = (hf_out){fixed, fixed + FIXED_MAX};
    hf_file_lines(&o, &e->f, &(hf_reply){200, 0, e->f.size});
    e->f.fixed = fixed;
    e->f.fixed_len = (size_t)(o.p - fixed);
    pthread_mutex_lock(&cache.lock);
    cache_insert(e);
    pthread_mutex_unlock(&cache.lock);
    return e;
}

const hf_file *hf_entry_file(const hf_entry *e)
{
    return &e->f;
}

static void cache_clear(void)
{
    pthread_mutex_lock(&cache.lock);
    while (cache.lru)
        cache_drop(cache.lru);
    pthread_mutex_unlock(&cache.lock);
}

void hf_fini(void)
{
    cache_clear();
    if (root.fd >= 0)
        close(root.fd);
    root.fd = -1;
}
