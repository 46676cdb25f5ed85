/* http_files: what the static file server knows about files - the
 * document root and the safe open beneath it, media types, a file's
 * validators and header lines, and the open-file cache - apart from HTTP
 * requests, which are http.c's.
 *
 * The safe open: every path is opened relative to the root directory with
 * openat2(RESOLVE_BENEATH), so no path and no symlink can reach outside it
 * (where openat2 is missing, the opened file's real path is checked against
 * the root's instead).
 *
 * The open-file cache (like nginx's open_file_cache): a regular file of at
 * most HF_CACHE_FILE_MAX bytes, once opened by the safe path above, is kept
 * in memory keyed by its decoded path: its metadata, its validators, its
 * fixed 200 header lines and its content. A hit costs no system call at
 * all. An entry is revalidated at most once per CACHE_VALID_MS, by opening
 * the path again through the same safe open and comparing device, inode,
 * size and mtime: a file changed, removed or replaced (by a symlink out of
 * the root, say) is dropped and the request takes the full path. So a
 * change is seen within about a second, as with nginx's
 * open_file_cache_valid 1s. Bigger files, directories and everything else
 * are never cached.
 *
 * Threads: the root is set before any connection exists and read-only
 * after; the cache is one per process (a forked child starts with the
 * parent's, empty) behind a mutex, and entries are reference counted so a
 * reply copies from an entry without holding the lock.
 */
#ifndef SB_APPS_HTTP_FILES_H
#define SB_APPS_HTTP_FILES_H

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "switchboard.h"

/* Files up to this size are kept in the cache (a copy of 64 KiB costs less
 * than the open, fstat, read and close it replaces). */
#define HF_CACHE_FILE_MAX (64 * 1024)

/* ---- a bounded writer for response heads ---- */

typedef struct hf_out {
    char *p;
    char *end;
} hf_out;

static inline void hf_put(hf_out *o, const char *s, size_t n)
{
    if ((size_t)(o->end - o->p) < n)
        n = (size_t)(o->end - o->p);    /* stay in bounds: the rest is cut */
    memcpy(o->p, s, n);
    o->p += n;
}

static inline void hf_puts(hf_out *o, const char *s)
{
    hf_put(o, s, strlen(s));
}

static inline void hf_putu(hf_out *o, uint64_t v)
{
    char d[24];
    int i = 24;

    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    hf_put(o, d + i, (size_t)(24 - i));
}

static inline void hf_putx(hf_out *o, uint64_t v)
{
    char d[24];
    int i = 24;

    do
        d[--i] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    hf_put(o, d + i, (size_t)(24 - i));
}

/* ---- the root and the safe open ---- */

/* Open the root directory (its real path is resolved once) and probe for
 * openat2; cache: whether the open-file cache is on. 0, or a negative
 * errno with *why set. */
int hf_init(const char *root, int cache, const char **why);
/* Close the root and empty the cache. */
void hf_fini(void);
/* Open rel (relative, no leading '/') beneath the root, or beneath dirfd,
 * itself opened beneath the root. Returns an fd or a negative errno:
 * -ENOENT, -EXDEV (would leave the root), ... */
int hf_open(const char *rel);
int hf_open_in(int dirfd, const char *rel);
/* A ".." segment in the decoded path p[0..n)? */
int hf_has_dotdot(const char *p, size_t n);

/* ---- what a reply needs to know about a file ---- */

/* A file to answer with: either open (fd) or in a cache entry (data). */
typedef struct hf_file {
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
} hf_file;

typedef struct hf_reply {
    int status;              /* 200 or 206 */
    uint64_t first, len;     /* the bytes of the file to send */
} hf_reply;

/* Fill f (not fd) from st; path gives the media type. */
void hf_describe(hf_file *f, const struct stat *st, const char *path);
/* Close f's fd, if it has one. */
void hf_file_close(const hf_file *f);
/* The header lines of a 200 or 206 between Date and the connection line. */
void hf_file_lines(hf_out *o, const hf_file *f, const hf_reply *r);

/* ---- the open-file cache ---- */

typedef struct hf_entry hf_entry;

/* The entry for key[0..n) (a decoded path below the root), pinned, or NULL
 * (not cached, changed on disk, or the cache is off). */
hf_entry *hf_cache_get(const char *key, size_t n);
/* Read the regular file fd (described by st, at most HF_CACHE_FILE_MAX
 * bytes) into a new entry for key and publish it. Returns the entry pinned,
 * or NULL (cache off, out of memory, a read error, the file shrank): serve
 * from fd then. fd stays the caller's. */
hf_entry *hf_cache_put(const char *key, size_t n, int fd, const struct stat *st);
/* The file of a pinned entry: valid until hf_entry_unref. */
const hf_file *hf_entry_file(const hf_entry *e);
void hf_entry_unref(hf_entry *e);

#endif
