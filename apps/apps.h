/* apps: the handlers `switchboard serve --app NAME` runs. Each app is
 * written against the public API only (switchboard.h) and runs unchanged
 * under every dispatch model that can host it. */
#ifndef SB_APPS_H
#define SB_APPS_H

#include "switchboard.h"

/* What the command line passes to an app. */
typedef struct sb_app_config {
    const char *root;        /* http: document root */
    const char *access_log;  /* http: "-" for stdout, a path, or NULL (off) */
    int no_file_cache;       /* http: 1 turns the open-file cache off */
    int work_us;             /* CPU microseconds to burn per message (bench knob) */
    sb_model model;          /* the dispatch model the app will run under */
} sb_app_config;

typedef struct sb_app {
    const char *name;
    const char *summary;
    /* Prepare the app: fill *h, adjust server options (http sets its own
     * framing), check the model (chat refuses fork). Returns 0 or a negative
     * code; *why gets a message for the user on failure. */
    int (*init)(const sb_app_config *cfg, sb_server_opts *o, sb_handler *h, const char **why);
    void (*fini)(void);
} sb_app;

extern const sb_app sb_app_echo;
extern const sb_app sb_app_chat;
extern const sb_app sb_app_http;

/* Look up an app by name; NULL if unknown. */
const sb_app *sb_app_find(const char *name);

/* Spin the CPU for us microseconds (the --work-us knob). */
void sb_app_burn(int us);

#endif
