/*  broker_node - one broker without sockets or loop: the server wired to
    its state file, its syncer and its lookupd links
    SPDX-License-Identifier: MIT

    The server calls out through hooks; this class gives them their
    meaning: topics and channels created or deleted go to the lookupd
    links, changes of what the state file lists and id reservations to the
    state file, durable waits to the syncer. It also lists the server for
    the state file and restores the file into it at start. The broker
    actor (broker.c) adds the sockets, the doors and the loop; the fuzz
    targets drive a node directly.

    API in call order: broker_node_new, broker_node_server,
    broker_node_start_sync, broker_node_sync_socket / broker_node_on_synced,
    broker_node_start_auth, broker_node_auth_socket / broker_node_on_auth,
    broker_node_lookup_source
    / broker_node_set_lookup, broker_node_after_batch, broker_node_tick,
    broker_node_settle, broker_node_persist, broker_node_destroy.
*/
#ifndef BROKER_NODE_H
#define BROKER_NODE_H

#include <czmq.h>

#include "broker_config.h"
#include "broker_lookup.h"
#include "broker_server.h"

typedef struct _broker_node_t broker_node_t;

// Takes the data path's lock, lists the data path once (every disk queue
// opens from that listing), makes the server and restores the state file
// into it. config is copied. Caller owns the result; NULL with a reason
// in error (another broker holds the data path, the state file is not
// one, out of memory...).
broker_node_t *broker_node_new(const broker_config_t *config, char *error, size_t size);

// Starts the syncer thread (with a data path; without, nothing to do): a
// node in a loop wants it, since its answers come over a pipe the loop
// reads (broker_node_sync_socket). Without it, data syncs wait for the
// metadata syncs of the tick and durable publishes are refused. Returns
// 0, or -1 with a reason in error.
int broker_node_start_sync(broker_node_t *self, char *error, size_t size);

// Starts the auth server client when --auth-http-address is set (else
// nothing to do) and gives it to the server. Returns 0, or -1 with a
// reason in error.
int broker_node_start_auth(broker_node_t *self, char *error, size_t size);

// The auth client's socket for the loop (NULL without one), and what its
// reader does: the answers' waiters run, then the work after a batch.
zsock_t *broker_node_auth_socket(broker_node_t *self);
void broker_node_on_auth(broker_node_t *self, int64_t now);

// Stops the syncer (broker_node_settle), frees the server (nothing is
// persisted: call broker_node_persist first) and releases the lock. Nulls
// *self_p; accepts NULL.
void broker_node_destroy(broker_node_t **self_p);

// The server. Borrowed, valid while the node lives.
broker_server_t *broker_node_server(broker_node_t *self);

// The syncer's pipe for the loop (NULL without a data path), and what its
// reader does.
zsock_t *broker_node_sync_socket(broker_node_t *self);
void broker_node_on_synced(broker_node_t *self);

// What the lookupd links need from the node (for broker_lookup_new).
broker_lookup_source_t broker_node_lookup_source(broker_node_t *self);

// The links the hooks tell about topics and channels (borrowed; NULL:
// none).
void broker_node_set_lookup(broker_node_t *self, broker_lookup_t *lookup);

// After each batch of work: held messages move on, the state file and
// the syncer catch up.
void broker_node_after_batch(broker_node_t *self, int64_t now);

// The periodic work: the server's tick, each queue's metadata (with its
// data) per --sync-timeout, the state file's retries.
void broker_node_tick(broker_node_t *self, int64_t now);

// Stops the syncer: the running sync's answer is awaited, what is left is
// synced here, and every durable publish waiting is answered (call it
// while the doors can still answer).
void broker_node_settle(broker_node_t *self);

// At shutdown: writes what is in memory to disk and saves the state file.
void broker_node_persist(broker_node_t *self, int64_t now);

// Saves the state file now. Returns 0 or -1 (logged; the tick retries).
int broker_node_save_state(broker_node_t *self);

#endif
