/*  broker_http - the broker's HTTP door (libmicrohttpd): the server, its
    connections, and the hand-off of requests to the core thread
    SPDX-License-Identifier: MIT

    A small pool of HTTP threads reads each request (routes and checks:
    broker_http_routes.c), answers /ping and /info itself, and hands the
    rest to the core: the request goes on this door's queue, the
    connection is suspended, and an eventfd the core's loop polls says
    that requests wait. The core takes the whole queue at once
    (broker_http_take), carries each request out (broker_http_serve.c)
    and hands it back (broker_http_request_done), which resumes the
    connection; its HTTP thread then renders the answer
    (broker_http_answer.c). A publish to a topic the core gave credit is
    admitted and answered by the HTTP thread itself (broker_admission.h).
    No HTTP thread ever waits for the core, and
    the queue and its flag belong to this door: two brokers in one process
    share nothing.

    API in call order: broker_http_new, broker_http_port, broker_http_https_port,
    broker_http_set_zmq_port, broker_http_set_admission, broker_http_handoff_fd,
    broker_http_take, broker_http_request_done, broker_http_set_exiting,
    broker_http_destroy.
*/
#ifndef BROKER_HTTP_H
#define BROKER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_admission.h"
#include "broker_config.h"
#include "broker_http_request.h"

typedef struct _broker_http_t broker_http_t;

// Carries out one request on the core thread. Returns true if it is
// answered (the door hands it back at once), false if it will be later
// (the handler then calls broker_http_request_done).
typedef bool(broker_http_handler_fn)(void *arg, broker_http_request_t *request);

// Starts the HTTP server on config->http_address ("host:port"; port 0 picks
// a free port; host "0.0.0.0", "" or "*" for all interfaces, an IPv4 literal,
// "localhost" or a name that resolves to IPv4; "[ipv6]:port", "[::]" dual
// stack, see nsq_address.h) with config->http_threads threads. config is
// copied. Caller owns the result; NULL (after one log line naming the
// reason) if the address is bad or it cannot listen.
broker_http_t *broker_http_new(const broker_config_t *config);

// Returns the port the server listens on.
uint16_t broker_http_port(broker_http_t *self);

// Returns the HTTPS port (--https-address), 0 when HTTPS is off.
uint16_t broker_http_https_port(broker_http_t *self);

// Tells /info the bound ZeroMQ port (it starts as the port in
// config->zmq_address, which may be 0). Safe from any thread.
void broker_http_set_zmq_port(broker_http_t *self, uint16_t port);

// Lets the HTTP threads admit publishes into topics with credit
// (broker_admission.h; borrowed, must outlive self; NULL: none) instead of
// handing them over. Safe from any thread.
void broker_http_set_admission(broker_http_t *self, broker_admission_t *admission);

// Tells /info the bound NSQ TCP port (0 until set: no TCP door). Safe
// from any thread.
void broker_http_set_tcp_port(broker_http_t *self, uint16_t port);

// A descriptor (eventfd) that is readable while requests wait for the
// core: poll it in the core's loop. Borrowed.
int broker_http_handoff_fd(broker_http_t *self);

// Core thread: takes every request waiting and calls handler(arg, request)
// for each, in order, handing back those it answered. Returns how many it
// took.
size_t broker_http_take(broker_http_t *self, broker_http_handler_fn *handler, void *arg);

// Core thread: the core is done with request (its result is set); resumes
// its connection, whose HTTP thread renders the answer. The core has taken
// every message reference and must not touch request afterwards.
void broker_http_request_done(broker_http_request_t *request);

// While set (any thread), nothing more is handed over: new requests are
// answered 503 EXITING at once. The core sets it once it will take no
// more requests.
void broker_http_set_exiting(broker_http_t *self, bool exiting);

// Stops the server. Call it once the core takes no more requests (after
// its last broker_http_take, or when there is no core): requests handed
// over but never answered are answered 503 EXITING (waiting up to a second
// for those answers to leave), then every connection is closed and the
// HTTP threads are joined. Accepts NULL and *self_p == NULL; nulls *self_p.
void broker_http_destroy(broker_http_t **self_p);

// Self-test against a fake core (broker_http_test.c); returns 0 on success.
int broker_http_test(void);

#endif
