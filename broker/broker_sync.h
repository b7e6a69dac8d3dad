/*  broker_sync - durable mode: a publish is acknowledged only after its
    data is on disk, concurrent publishes sharing one fdatasync per queue
    (group commit)
    SPDX-License-Identifier: MIT

    The disk queues run in async mode over the node's disk I/O actor
    (nsq_diskqueue.h), so no sync ever runs on the core thread: a group
    commit asks every queue for nsq_diskqueue_commit, and the owner for
    the state file (an acknowledged topic must be listed), and answers
    the publishes it covers when all of them have reported, on the core
    thread, from the actor's completions.

    The module sees no topic, channel or server: the queues come from a
    listing callback, and a durable publish waits as a callback with its
    argument (broker_server_wait_durable's hook ends here).

    API in call order: broker_sync_new, broker_sync_wait, broker_sync_kick,
    broker_sync_destroy. Every function accepts a NULL sync (a broker
    without a data path, or not durable, has none) and then does nothing.
*/
#ifndef BROKER_SYNC_H
#define BROKER_SYNC_H

#include <stdbool.h>

#include "broker_result.h"
#include "nsq_diskqueue.h"

typedef struct _broker_sync_t broker_sync_t;

// Receives one disk queue (name for logs).
typedef void(broker_sync_disk_fn)(void *arg, nsq_diskqueue_t *disk, const char *name);

// A report to a group commit: 0, or the errno of a failure.
typedef void(broker_sync_report_fn)(void *arg, int error);

// What the group commit needs from its owner.
typedef struct {
    void *arg;  // first argument of both
    // Calls fn(fn_arg, disk, name) for every disk queue. Required.
    void (*each_disk)(void *arg, broker_sync_disk_fn *fn, void *fn_arg);
    // Calls report(report_arg, error) once the state file lists what the
    // broker holds now. May be NULL.
    void (*flush_state)(void *arg, broker_sync_report_fn *report, void *report_arg);
} broker_sync_source_t;

// Called once per durable wait: BROKER_OK when synced, else
// BROKER_SYNC_FAILED. Same shape as broker_server.h's broker_durable_fn.
typedef void(broker_sync_done_fn)(void *arg, broker_result_t result);

// Returns the group commit of source's queues (source is copied). Caller
// owns the result; NULL if out of memory.
broker_sync_t *broker_sync_new(const broker_sync_source_t *source);

// Answers every publish still waiting with BROKER_SYNC_FAILED (call it
// after the actor ran every completion, nsq_diskio_wait, so that none is
// left) and frees the sync. Nulls *self_p; accepts NULL.
void broker_sync_destroy(broker_sync_t **self_p);

// Durable mode: fn(arg, result) once the next group commit covering what
// is written now ends. Returns 0, or -1 (out of memory, or no sync: fn is
// not called).
int broker_sync_wait(broker_sync_t *self, broker_sync_done_fn *fn, void *arg);

// After each batch of work: starts a group commit if publishes wait and
// none runs (one that ends starts the next by itself).
void broker_sync_kick(broker_sync_t *self);

// True while a group commit runs (tests).
bool broker_sync_is_running(const broker_sync_t *self);

// Self-test of the failure paths (broker_sync_test.c; run by broker_test).
// Returns 0 on success.
int broker_sync_test(void);

#endif
