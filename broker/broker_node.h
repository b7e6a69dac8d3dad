/*  broker_node - one broker without sockets or loop: the server wired to
    its disk I/O actor, state file, group commit and lookupd links
    SPDX-License-Identifier: MIT

    The server calls out through hooks; this class gives them their
    meaning: topics and channels created or deleted go to the lookupd
    links, changes of what the state file lists and id reservations to the
    state file, durable waits to the group commit (broker_sync). It also
    lists the server for the state file and restores the file into it at
    start. The broker actor (broker.c) adds the sockets, the doors and the
    loop; the fuzz targets drive a node directly.

    Nothing on the node's thread waits for the disk once it runs: with a
    data path the node owns a disk I/O actor (nsq_diskio), every disk
    queue runs in async mode over it, and the state file is saved through
    it; the loop reads the actor's completions (broker_node_disk_socket).
    Only start-up (recovering the queues the state file lists), shutdown
    (broker_node_settle, broker_node_persist) and broker_node_save_state
    wait for it.

    API in call order: broker_node_new, broker_node_server,
    broker_node_disk_socket / broker_node_on_disk,
    broker_node_start_auth, broker_node_auth_socket / broker_node_on_auth,
    broker_node_lookup_source / broker_node_set_lookup,
    broker_node_after_batch, broker_node_tick, broker_node_settle,
    broker_node_persist, broker_node_destroy.
*/
#ifndef BROKER_NODE_H
#define BROKER_NODE_H

#include <czmq.h>

#include "broker_config.h"
#include "broker_lookup.h"
#include "broker_server.h"

typedef struct _broker_node_t broker_node_t;

// Takes the data path's lock, starts the disk I/O actor, lists the data
// path once (every disk queue opens from that listing), makes the server,
// restores the state file into it and waits until the restored queues
// have recovered. config is copied. Caller owns the result; NULL with a
// reason in error (another broker holds the data path, the state file is
// not one, out of memory...).
broker_node_t *broker_node_new(const broker_config_t *config, char *error, size_t size);

// Starts the auth server client when --auth-http-address is set (else
// nothing to do) and gives it to the server. Returns 0, or -1 with a
// reason in error.
int broker_node_start_auth(broker_node_t *self, char *error, size_t size);

// The auth client's socket for the loop (NULL without one), and what its
// reader does: the answers' waiters run, then the work after a batch.
zsock_t *broker_node_auth_socket(broker_node_t *self);
void broker_node_on_auth(broker_node_t *self, int64_t now);

// Frees the server (nothing is persisted: call broker_node_settle and
// broker_node_persist first), waits for the disk I/O actor's last work
// and releases the lock. Nulls *self_p; accepts NULL.
void broker_node_destroy(broker_node_t **self_p);

// The server. Borrowed, valid while the node lives.
broker_server_t *broker_node_server(broker_node_t *self);

// The disk I/O actor's socket for the loop (NULL without a data path),
// and what its reader does: runs the completions that arrived.
zsock_t *broker_node_disk_socket(broker_node_t *self);
void broker_node_on_disk(broker_node_t *self);

// What the lookupd links need from the node (for broker_lookup_new).
broker_lookup_source_t broker_node_lookup_source(broker_node_t *self);

// The links the hooks tell about topics and channels (borrowed; NULL:
// none).
void broker_node_set_lookup(broker_node_t *self, broker_lookup_t *lookup);

// After each batch of work: held messages move on, the state file and
// the group commit catch up.
void broker_node_after_batch(broker_node_t *self, int64_t now);

// The periodic work: completions that arrived (for a node without a
// loop), the server's tick, each queue's metadata (with its data) per
// --sync-timeout, the state file's retries.
void broker_node_tick(broker_node_t *self, int64_t now);

// Waits until the disk I/O actor finished everything asked of it and runs
// the completions (a node without a loop: fuzz targets). No-op without a
// data path.
void broker_node_wait_disk(broker_node_t *self);

// At shutdown, while the doors can still answer: starts a last group
// commit and waits until every durable publish is answered.
void broker_node_settle(broker_node_t *self);

// At shutdown: writes what is in memory to disk, saves the state file and
// syncs the data path's file system, waiting until it is done. Returns 0,
// or -1 if any of it failed (logged): what was in memory may be lost.
int broker_node_persist(broker_node_t *self, int64_t now);

// Saves the state file now and waits for it (fuzz targets). Returns 0 or
// -1 (logged; the tick retries).
int broker_node_save_state(broker_node_t *self);

#endif
