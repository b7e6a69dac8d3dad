/*  broker_http_routes - the HTTP door's routes and argument checks: a
    request's path, method, query and body become a broker_http_request_t,
    or a refusal with NSQ's status and code
    SPDX-License-Identifier: MIT

    Routes: POST|PUT /pub?topic=T[&defer=ms], POST|PUT /mpub?topic=T
    [&binary=true][&defer=ms], GET /stats?format=text|json[&topic=T
    &channel=C], GET /metrics, POST /topic/{create,delete,empty,pause,
    unpause}?topic=T, POST /channel/{create,delete,empty,pause,unpause}
    ?topic=T&channel=C, and GET /ping and GET /info (answered by the door
    itself).

    libmicrohttpd hands a request over in pieces, and so do these
    functions: when the headers are in (route; check every argument with
    its decoded length, so "%00" cannot cut a name short; refuse an
    oversized Content-Length before a byte of body is read), once per
    piece of body (copied straight into an nsq_message_t, never beyond the
    limit), and once at the end (the /pub body becomes the message, an
    /mpub body is split by broker_mpub.c, all or nothing).

    Runs on the HTTP threads. API in call order: broker_http_call_reset,
    broker_http_routes_begin, broker_http_routes_body,
    broker_http_routes_finish, broker_http_call_release.
*/
#ifndef BROKER_HTTP_ROUTES_H
#define BROKER_HTTP_ROUTES_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker_config.h"
#include "broker_http_request.h"

// What the door does with a routed request.
typedef enum {
    BROKER_HTTP_TO_CORE,  // hand request to the core
    BROKER_HTTP_PING,     // answer "OK"
    BROKER_HTTP_INFO,     // answer /info
} broker_http_action_t;

// One request being read. Written by the functions below; the door reads
// request, action, error_status and error_code.
typedef struct {
    broker_http_request_t request;  // what the core reads
    broker_http_action_t action;    // what the door does with it
    unsigned error_status;          // != 0: refuse with error_code
    const char *error_code;         // static NSQ code
    bool split;                     // /mpub: the body holds several messages
    bool binary;                    // /mpub framing is binary
    nsq_message_t *body;            // upload read in place; NULL until the first byte
    size_t body_size;               // bytes read so far
    size_t body_capacity;           // bytes body can hold
    size_t body_expected;           // Content-Length; 0 if unknown
    size_t body_limit;              // max_msg_size for /pub, max_body_size for /mpub
    size_t discarded;               // bytes of a refused body dropped so far
    const char *too_big;            // error code when the body passes body_limit
    nsq_message_t *single[1];       // the messages array of /pub
} broker_http_call_t;

// Clears call for a new request (after releasing what the last one left).
void broker_http_call_reset(broker_http_call_t *call);

// Frees what call holds: its body, its messages (unless the core took
// them: message_count 0), its snapshot.
void broker_http_call_release(broker_http_call_t *call);

// The headers are in: routes url and method and checks the arguments
// against config. A refusal is recorded in error_status and error_code.
void broker_http_routes_begin(broker_http_call_t *call, struct MHD_Connection *mhd, const char *url,
                              const char *method, const broker_config_t *config);

// True if a body follows the headers (so an answer now skips reading it).
bool broker_http_routes_body_follows(struct MHD_Connection *mhd);

// Takes one piece of body. A refused body is dropped as it comes (and
// answered at its end); returns MHD_NO to hang up once S_DISCARD_MAX
// bytes of it were dropped.
enum MHD_Result broker_http_routes_body(broker_http_call_t *call, const char *data, size_t size);

// The whole request is in: makes the request's messages (/pub, /mpub)
// against config. Returns true if the request goes to the core (or is a
// PING or INFO), false if it is refused (error_status set).
bool broker_http_routes_finish(broker_http_call_t *call, const broker_config_t *config);

#endif
