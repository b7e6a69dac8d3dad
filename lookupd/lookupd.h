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

#include "lookupd_registry.h"

#define LOOKUPD_ADDRESS_MAX 256
#define LOOKUPD_PEERS_MAX   16

typedef struct {
    char http_address[LOOKUPD_ADDRESS_MAX];              // host:port for HTTP; port 0 = any
    char zmq_address[LOOKUPD_ADDRESS_MAX];               // host:port for brokers; port 0 = any
    char broadcast_address[LOOKUPD_ADDRESS_MAX];         // reported by /info
    int64_t inactive_producer_timeout_ms;                // forget a broker silent this long
    int64_t tombstone_lifetime_ms;                       // how long a tombstone hides a producer
    int64_t stats_interval_ms;                           // console: poll brokers' /stats; 0 = never
    int64_t history_window_ms;                           // console: history kept
    size_t history_max_bytes;                            // console: its memory bound; 0 = none
    char peers[LOOKUPD_PEERS_MAX][LOOKUPD_ADDRESS_MAX];  // console: other lookupds' HTTP
    size_t peer_count;                                   // entries in peers
} lookupd_config_t;

// Fills config with the defaults (NSQ's: 300s and 45s; the console polls
// every 5 s and keeps an hour in at most 64 MiB).
void lookupd_config_defaults(lookupd_config_t *config);

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
