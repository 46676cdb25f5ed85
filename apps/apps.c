/* apps: the registry `serve --app NAME` looks names up in. */
#include <string.h>

#include "apps.h"

static const sb_app *const sb_apps[] = {&sb_app_echo, &sb_app_chat, &sb_app_http};

const sb_app *sb_app_find(const char *name)
{
    for (size_t i = 0; i < sizeof(sb_apps) / sizeof(sb_apps[0]); i++)
        if (strcmp(sb_apps[i]->name, name) == 0)
            return sb_apps[i];
    return NULL;
}
