/*  broker - the broker actor: one thread owning all topics, channels and
    clients, driven by one zloop
    SPDX-License-Identifier: MIT

    Inside: the server (broker_server.h) and its doors, a ROUTER on
    --zmq-address for consumers and producers (broker_zmq.h) and the HTTP
    server on --http-address (broker_http.h), the syncer (broker_sync.h)
    and the lookupd links (broker_lookup.h). Timers: a periodic tick
    (in-flight timeouts, deferred messages, client liveness and
    heartbeats, syncs, the state file). On $TERM from the pipe it drains,
    stops taking HTTP requests, then saves and frees everything and
    returns. Nothing is process-wide: several actors can run in one
    process.

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

// Self-test: two actors in one process, each publishing and consuming
// over HTTP and ZeroMQ, one outliving the other. Returns 0 on success.
int broker_test_two_brokers(void);
int broker_test_two_brokers_curve(void);

#endif
