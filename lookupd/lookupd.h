/*  lookupd - the lookup service actor: brokers register over ZeroMQ,
    consumers query over HTTP
    SPDX-License-Identifier: MIT

    One thread owns the registry and runs one zloop over: a ROUTER on
    --zmq-address where brokers (DEALER) send LookupCommands, an inproc
    ROUTER answering the HTTP thread (lookupd_http.h), the actor pipe, a
    periodic timer that expires silent brokers and old tombstones, and the
    web console's poll timer and readers (lookupd_console.h, which gets
    every /api/ request).

    Start it with zactor_new(lookupd_actor, &config). The first message on
    the pipe is ["READY", http_port, zmq_port] or ["ERROR", reason]; after
    ERROR the actor has ended. $TERM stops it.

    lookupd_core_* give the same broker-command handling without the loop
    and sockets, so fuzz targets (tests/fuzz) can drive it directly.
*/
#ifndef LOOKUPD_H
#define LOOKUPD_H

#include <czmq.h>
#include <stdint.h>

#include "lookupd_config.h"
#include "lookupd_registry.h"

// The actor function. args is a lookupd_config_t* (copied).
void lookupd_actor(zsock_t *pipe, void *args);

// ---- the actor's state without its loop, for fuzz targets --------------------

typedef struct _lookupd_core_t lookupd_core_t;

// The registry and the broker-command handling, with no loop, HTTP server
// or bound socket: replies go to router (borrowed; an unbound ROUTER drops
// them). Caller owns the result; NULL if out of memory.
lookupd_core_t *lookupd_core_new(const lookupd_config_t *config, zsock_t *router);

// Handles one frame from the broker whose ROUTER identity is identity
// (1..255 bytes) and whose IP address is address, as the actor's ROUTER
// reader does: body is decoded as a LookupCommand and handled, or counted
// and answered E_BAD_COMMAND when it is not one (body NULL: a multi-frame
// message).
void lookupd_core_handle_frame(lookupd_core_t *self, const void *identity, size_t identity_size,
                               const char *address, const void *body, size_t size);

// The registry the commands act on. Borrowed; valid until destroy.
lookupd_registry_t *lookupd_core_registry(lookupd_core_t *self);

// Frees the registry and self (not the router); nulls *self_p, accepts NULL.
void lookupd_core_destroy(lookupd_core_t **self_p);

// Self-test: starts the actor in-process and talks to it. Returns 0 on success.
int lookupd_test(void);

#endif
