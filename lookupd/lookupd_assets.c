/*  lookupd_assets - the web console's files, embedded at build time
    SPDX-License-Identifier: MIT
*/
#include "lookupd_assets.h"

#include <stdio.h>
#include <string.h>

#define S_INDEX "/console/index.html"

const lookupd_asset_t *lookupd_assets_find(const char *path)
{
    if (strcmp(path, "/") == 0 || strcmp(path, "/console") == 0 || strcmp(path, "/console/") == 0)
        path = S_INDEX;
    for (size_t i = 0; i < lookupd_asset_count; i++)
        if (strcmp(lookupd_assets[i].path, path) == 0)
            return &lookupd_assets[i];
    return NULL;
}

int lookupd_assets_test(void)
{
    const lookupd_asset_t *index = lookupd_assets_find("/");
    if (!index || strcmp(index->path, S_INDEX) != 0 || !strstr(index->data, "<html")
        || strncmp(index->content_type, "text/html", 9) != 0 || index->etag[0] != '"') {
        fprintf(stderr, "lookupd_assets_test: no index.html at /\n");
        return -1;
    }
    // Every asset the page names is embedded, with the type a browser needs
    // to run it (a script served as text/plain is refused under nosniff).
    const char *const named[] = {"/console/app.js", "/console/console.css"};
    for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
        const lookupd_asset_t *asset = lookupd_assets_find(named[i]);
        if (!asset || !strstr(index->data, named[i]) || strlen(asset->data) != asset->size) {
            fprintf(stderr, "lookupd_assets_test: %s missing or not named by index.html\n",
                    named[i]);
            return -1;
        }
    }
    if (!strstr(lookupd_assets_find("/console/app.js")->content_type, "javascript")
        || lookupd_assets_find("/console/missing.js") || lookupd_assets_find("/console/../x")) {
        fprintf(stderr, "lookupd_assets_test: wrong type or an unknown path found\n");
        return -1;
    }
    return 0;
}
