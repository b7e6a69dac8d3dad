/*  lookupd_http - lookupd's HTTP front end (libmicrohttpd, one thread)
    SPDX-License-Identifier: MIT

    The server thread parses each request and hands it to the lookupd actor,
    which owns the registry, over an inproc REQ socket: the request goes out
    as [method][path][topic][channel][node][id][remote][user agent] (each
    argument's decoded bytes, an escaped NUL included; absent arguments are
    empty; remote is the client's "address:port") and the answer comes back
    as [status][content type][body]. Lookupd is not on the hot path, so one
    server thread and one round trip per request are plenty; the registry
    keeps a single owner. The console's static files are answered by the
    server thread itself (lookupd_assets.h).

    API: lookupd_http_new, lookupd_http_port, lookupd_http_destroy.
*/
#ifndef LOOKUPD_HTTP_H
#define LOOKUPD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "lookupd_config.h"

typedef struct _lookupd_http_t lookupd_http_t;

// Listens on config's --http-address (and --https-address with its TLS
// settings; "host:port" or "[ipv6]:port"; port 0 = any free port) and
// forwards requests to the inproc ROUTER at endpoint. Caller owns the
// result; NULL with one line in error if an address does not parse or
// cannot be bound, or a TLS file is wrong.
lookupd_http_t *lookupd_http_new(const lookupd_config_t *config, const char *endpoint, char *error,
                                 size_t size);

// The bound port.
uint16_t lookupd_http_port(lookupd_http_t *self);

// Stops the server (joins its thread) and nulls *self_p; accepts NULL. The
// actor must not be waiting on it: call this from the actor's thread after
// it stopped reading requests, or with the ROUTER still answering.
void lookupd_http_destroy(lookupd_http_t **self_p);

#endif
