/*  broker_sync - fdatasync of the disk queues off the core thread, and
    durable mode: a publish is acknowledged only after its data is on disk,
    concurrent publishes sharing one fsync (group commit)
    SPDX-License-Identifier: MIT

    The syncer thread does every data fsync the sync policy asks for, so
    the core never waits for the disk while it writes: after each batch of
    work the core kicks, and if the syncer is idle and some queue has
    --sync-every unsynced records (or, in durable mode, a publish waits
    for its acknowledgement), it hands the syncer a duplicate descriptor
    of every queue written since the last hand-over. The queues' metadata
    (and a data sync with it) follows --sync-timeout from the node's tick
    (broker_node.c).

    The module sees no topic, channel or server: the queues come from a
    listing callback, and a durable publish waits as a callback with its
    argument (broker_server_wait_durable's hook ends here). Before each
    group commit a second callback lets the owner write the state file (an
    acknowledged topic must be listed).

    API in call order: broker_sync_new, broker_sync_socket (for the
    actor's zloop, whose reader calls broker_sync_on_synced),
    broker_sync_wait, broker_sync_kick, broker_sync_destroy. Every function accepts a NULL sync (a
   broker without a data path has none) and then does nothing.
*/
#ifndef BROKER_SYNC_H
#define BROKER_SYNC_H

#include <czmq.h>
#include <stdbool.h>

#include "broker_config.h"
#include "broker_result.h"
#include "nsq_diskqueue.h"

typedef struct _broker_sync_t broker_sync_t;

// Receives one disk queue (name for logs).
typedef void(broker_sync_disk_fn)(void *arg, nsq_diskqueue_t *disk, const char *name);

// What the syncer needs from its owner.
typedef struct {
    void *arg;  // first argument of both
    // Calls fn(fn_arg, disk, name) for every disk queue. Required.
    void (*each_disk)(void *arg, broker_sync_disk_fn *fn, void *fn_arg);
    // Durable mode: called before a group commit is handed over. May be NULL.
    void (*before_commit)(void *arg);
} broker_sync_source_t;

// Called once per durable wait: BROKER_OK when synced, else
// BROKER_SYNC_FAILED. Same shape as broker_server.h's broker_durable_fn.
typedef void(broker_sync_done_fn)(void *arg, broker_result_t result);

// Starts the syncer thread for config's queues (durable, sync_every,
// test_sync_fault are read; config is copied). source is
// copied. Caller owns the result; NULL if the thread cannot start.
broker_sync_t *broker_sync_new(const broker_config_t *config, const broker_sync_source_t *source);

// Waits for the running sync's answer (it decides for the publishes it
// covers), stops the thread, syncs what is left on this thread, answers
// every waiting publish and frees the sync. Nulls *self_p; accepts NULL.
void broker_sync_destroy(broker_sync_t **self_p);

// The syncer's end of its pipe: readable when a sync is done. Borrowed.
zsock_t *broker_sync_socket(broker_sync_t *self);

// The zloop reader's work: takes the syncer's answer, answers the
// publishes it covered, and starts the next sync if one is due.
void broker_sync_on_synced(broker_sync_t *self);

// Durable mode: fn(arg, result) once the next group commit covering what
// is written now ends. Returns 0, or -1 (out of memory, or no sync: fn is
// not called).
int broker_sync_wait(broker_sync_t *self, broker_sync_done_fn *fn, void *arg);

// After each batch of work: starts a sync if the syncer is idle and one is
// due.
void broker_sync_kick(broker_sync_t *self);

// True while the syncer runs a sync (tests).
bool broker_sync_is_running(const broker_sync_t *self);

// Self-test of the failure paths (broker_sync_test.c; run by broker_test).
// Returns 0 on success.
int broker_sync_test(void);

#endif
