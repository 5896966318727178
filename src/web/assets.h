/* The web UI files, embedded into the binary at build time by cmake/embed.cmake. */
#ifndef FABRIK_ASSETS_H
#define FABRIK_ASSETS_H

#include <stddef.h>

struct web_asset {
    const char *name;          /* file name in web/, e.g. "app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t size;
};

/* Every embedded file; the last entry has a NULL name. */
extern const struct web_asset web_assets[];

#endif
