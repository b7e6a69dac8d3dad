/*  lookupd - the lookup service actor: brokers register over ZeroMQ,
    consumers query over HTTP
    SPDX-License-Identifier: MIT

    One thread owns the registry and runs one zloop over: a ROUTER on
    --zmq-address where brokers (DEALER) send LookupCommands, an inproc
    ROUTER answering the HTTP thread (lookupd_http.h), the actor pipe, and a
    periodic timer that expires silent brokers and old tombstones.

    Start it with zactor_new(lookupd_actor, &config). The first message on
    the pipe is ["READY", http_port, zmq_port] or ["ERROR", reason]; after
    ERROR the actor has ended. $TERM stops it.
*/
#ifndef LOOKUPD_H
#define LOOKUPD_H

#include <czmq.h>
#include <stdint.h>

#include "lookupd_config.h"

// The actor function. args is a lookupd_config_t* (copied).
void lookupd_actor(zsock_t *pipe, void *args);

// Self-test: starts the actor in-process and talks to it. Returns 0 on success.
int lookupd_test(void);

#endif
