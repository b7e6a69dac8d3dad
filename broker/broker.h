/*  broker - the broker actor: one thread owning all topics, channels and
    clients, driven by one zloop
    SPDX-License-Identifier: MIT

    Sockets: a ROUTER on --zmq-address for consumers and producers, an
    inproc ROUTER for requests from the HTTP threads (broker_request.h).
    Timers: a periodic scan (in-flight timeouts, deferred messages, client
    liveness and heartbeats). On $TERM from the pipe it stops taking HTTP
    requests, then frees everything and returns.

    Start it with zactor_new(broker_actor, &config). The first message on
    the actor's pipe is either ["READY", http_port, zmq_port] (strings) or
    ["ERROR", reason]; after ERROR the actor has ended.
*/
#ifndef BROKER_H
#define BROKER_H

#include <czmq.h>

#include "broker_config.h"

// The actor function. args is a broker_config_t* (copied; the caller may
// free it once the first pipe message arrived).
void broker_actor(zsock_t *pipe, void *args);

// Self-test: starts the actor in-process and talks to it. Returns 0 on success.
int broker_test(void);

#endif
