/*  broker_http - the broker's HTTP API (libmicrohttpd), NSQ-compatible paths
    SPDX-License-Identifier: MIT

    A small pool of HTTP threads parses and validates each request (names,
    sizes, /mpub framing), reads bodies straight into messages and hands
    the request to the core thread (broker_request_send), suspending the
    connection until the core calls broker_request_done; /ping and /info
    are answered without the core. See broker_http.c for the routes.

    API in call order: broker_http_new, broker_http_port,
    broker_http_set_zmq_port, broker_http_destroy.
*/
#ifndef BROKER_HTTP_H
#define BROKER_HTTP_H

#include <stdint.h>

#include "broker_config.h"

typedef struct _broker_http_t broker_http_t;

// Starts the HTTP server on config->http_address ("host:port"; port 0 picks
// a free port; host "0.0.0.0", "" or "*" for all interfaces, an IPv4 literal,
// "localhost" or a name that resolves to IPv4; "[ipv6]:port", "[::]" dual
// stack, see nsq_address.h) with config->http_threads
// threads, forwarding requests to the core's inproc ROUTER at core_endpoint.
// config and core_endpoint are copied. Caller owns the result; NULL (after
// one log line naming the reason) if the address is bad or it cannot listen.
broker_http_t *broker_http_new(const broker_config_t *config, const char *core_endpoint);

// Returns the port the server listens on.
uint16_t broker_http_port(broker_http_t *self);

// Tells /info the bound ZeroMQ port (it starts as the port in
// config->zmq_address, which may be 0). Safe from any thread.
void broker_http_set_zmq_port(broker_http_t *self, uint16_t port);

// Stops the server. Call it once the core reads no more requests (from the
// core thread after its last read, or after the core is gone): requests
// handed over but never read are answered 503 EXITING (waiting up to a
// second for those answers to leave), then every connection is closed and
// the HTTP threads are joined. Accepts NULL and *self_p == NULL; nulls *self_p.
void broker_http_destroy(broker_http_t **self_p);

// Self-test against a fake core; returns 0 on success.
int broker_http_test(void);

#endif
