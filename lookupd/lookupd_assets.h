/*  lookupd_assets - the web console's files, embedded at build time
    SPDX-License-Identifier: MIT

    lookupd/console/ holds the console (HTML, CSS, JavaScript, icon, the
    licence of anything vendored). The build runs lookupd/embed_assets.c
    over those files and compiles the table it writes, so the binary
    serves the console without reading a file or fetching anything.

    API: lookupd_assets_find.
*/
#ifndef LOOKUPD_ASSETS_H
#define LOOKUPD_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path;          // URL path, "/console/app.js"
    const char *content_type;  // Content-Type header value
    const char *etag;          // quoted hash of the bytes, for ETag / If-None-Match
    size_t size;               // bytes
    const char *data;          // the bytes (a NUL follows them)
} lookupd_asset_t;

// The generated table (lookupd_assets_data.c).
extern const lookupd_asset_t lookupd_assets[];
extern const size_t lookupd_asset_count;

// The asset served at path ("/" is the console's index.html), or NULL.
// Static data.
const lookupd_asset_t *lookupd_assets_find(const char *path);

// Self-test; returns 0 on success.
int lookupd_assets_test(void);

#endif
