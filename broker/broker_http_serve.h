/*  broker_http_serve - the HTTP door's work on the core thread: each
    request handed over becomes one server operation
    SPDX-License-Identifier: MIT

    The HTTP threads parse and check a request (broker_http_request.h); here,
    on the core thread, it meets the server: a publish, a topic or channel
    operation, or a stats snapshot. The request keeps the server's result
    (and the snapshot); the HTTP thread turns them into an answer. A
    durable publish is handed back once its sync is done.

    API: broker_http_serve.
*/
#ifndef BROKER_HTTP_SERVE_H
#define BROKER_HTTP_SERVE_H

#include <stdbool.h>

#include "broker_http.h"
#include "broker_server.h"

// Carries out request on server (core thread; server is a broker_server_t:
// a broker_http_handler_fn). The server takes every message reference,
// whatever it answers. Returns true if the request is answered now (the
// caller hands it back), false if durable mode answers later
// (broker_http_request_done is then called once its sync is done).
bool broker_http_serve(void *server, broker_http_request_t *request);

#endif
