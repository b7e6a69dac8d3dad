/*  lookupd_http_routes - lookupd's HTTP API on the actor's thread: one
    request from the HTTP thread becomes a registry query or write, or a
    console call, and its outcome a status, a content type and a body
    SPDX-License-Identifier: MIT

    Routes (NSQ's nsqlookupd API): GET /ping, /info, /topics, /nodes,
    /lookup?topic=T, /channels?topic=T; POST /topic/create, /topic/delete,
    /channel/create, /channel/delete (topic=T[&channel=C]) and
    /topic/tombstone?topic=T&node=HOST:HTTP_PORT; every /api/ path goes to
    the console (lookupd_console.h). A known path with the wrong method
    gets 405, an unknown one 404, a bad argument 400 with NSQ's code in
    {"message":"CODE"}. Names are checked with their decoded size, so
    "%00" cannot cut one short.

    The context is a plain struct of borrowed pointers, not a class: it
    owns nothing, and the actor builds it per request from its own fields.

    API: lookupd_http_routes_answer.
*/
#ifndef LOOKUPD_HTTP_ROUTES_H
#define LOOKUPD_HTTP_ROUTES_H

#include <czmq.h>
#include <stdint.h>

#include "lookupd_console.h"
#include "lookupd_registry.h"

typedef struct {
    lookupd_registry_t *registry;   // what the routes read and write
    lookupd_console_t *console;     // gets every /api/ request; its info shows in /info
    const char *broadcast_address;  // ours, for /info
    uint16_t http_port, zmq_port;   // ours, for /info
} lookupd_http_routes_t;

// Answers request, a message from the HTTP thread's REQ socket as the
// inproc ROUTER reads it: [identity][empty] and the frames lookupd_http.h
// describes. Takes ownership of *request_p and nulls it. Returns the reply,
// [identity][empty][status][content type][body], for the caller to send
// (caller owns it), or NULL when the request has no envelope to answer to.
// A request with frames missing is answered 400 BAD_REQUEST.
zmsg_t *lookupd_http_routes_answer(const lookupd_http_routes_t *routes, zmsg_t **request_p);

#endif
