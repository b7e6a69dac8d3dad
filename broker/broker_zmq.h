/*  broker_zmq - the ZeroMQ door: consumers and producers on one ROUTER
    socket, one protobuf Command per frame up, one Frame per frame down
    SPDX-License-Identifier: MIT

    The door keeps a peer (broker_zmq_peer.h) per routing identity and
    opens a server client for each new one (addressed from its
    connection's Peer-Address). It reads commands in batches, hands them
    to broker_zmq_commands.c, and implements the clients' sink: messages
    go out as Messages frames; a client the server drops is forgotten
    (with a fatal E_CHANNEL_DELETED first when its channel was deleted).
    Its tick flushes peers whose queues were full and sends heartbeats to
    quiet ones; the server's tick decides who is silent or gone.

    Runs on the broker actor's thread. API in call order: broker_zmq_new,
    broker_zmq_read (or broker_zmq_frame), broker_zmq_tick,
    broker_zmq_destroy.
*/
#ifndef BROKER_ZMQ_H
#define BROKER_ZMQ_H

#include <czmq.h>

#include "broker_server.h"

typedef struct _broker_zmq_t broker_zmq_t;

// Returns the door on router (a bound ROUTER with ROUTER_MANDATORY; an
// unbound one drops every answer) for server. Both are borrowed: the
// server may be destroyed before the door, the socket must outlive it.
// Caller owns the result; NULL if out of memory.
broker_zmq_t *broker_zmq_new(broker_server_t *server, zsock_t *router);

// Frees the peers (not the server's clients, not the socket). Nulls
// *self_p; accepts NULL.
void broker_zmq_destroy(broker_zmq_t **self_p);

// The client of the peer with this routing identity (borrowed), or NULL
// if the door knows none (tests and fuzz targets reach clients so).
broker_client_t *broker_zmq_client(broker_zmq_t *self, const void *identity, size_t size);

// Reads and handles up to max waiting messages ([identity][command]).
// Returns how many it read.
int broker_zmq_read(broker_zmq_t *self, int max);

// Handles one frame from the peer with this routing identity, as
// broker_zmq_read does (fuzz targets call it without a socket). body NULL
// stands for a message of several frames (refused). address: the peer's
// "IP:port", or NULL.
void broker_zmq_frame(broker_zmq_t *self, const void *identity, size_t identity_size,
                      const void *body, size_t size, const char *address, int64_t now);

// The periodic work: flushes blocked peers (their clients may take
// messages again) and sends heartbeats to peers quiet for their interval.
void broker_zmq_tick(broker_zmq_t *self, int64_t now);

#endif
