/*  broker_state - the broker's state file and data-path lock: what a
    restart restores (topics, channels, paused flags, the id reservation)
    SPDX-License-Identifier: MIT

    Files in --data-path besides the disk queues:
        nsq-broker.lock   flock'd while a broker runs, so a second broker on
                          the same directory refuses to start
        nsq-broker.dat    "nsq-broker-state 1", "ids N" (every message id
                          handed out so far is below N), then one line per
                          durable topic ("topic NAME PAUSED") and channel
                          ("channel TOPIC NAME PAUSED"), replaced atomically
                          (temp file, fsync, rename, fsync of the directory)
                          by the disk I/O actor, off the core thread

    The module knows the format and when to write, not the broker: what
    the file lists comes from a list callback (broker.c asks the server),
    and what it restores goes to an entry callback. Ephemeral names are
    never listed.

    When to write: the owner marks changes (broker_state_changed: a topic
    or channel created, deleted, paused or unpaused) and the check after
    each batch of work saves them, at most every STATE_SAVE_MIN_MS (the
    tick saves what is left), and only if the rendered file differs from
    the last one handed to the disk (ephemeral names change nothing). An
    id reservation saves at once (broker_state_save). A save that fails is
    retried on every tick until one succeeds (logged at most every
    STATE_RETRY_LOG_MS).

    How: the file is rendered on the owner's thread (no file work) and
    handed to the disk I/O actor (nsq_diskio_replace), which performs the
    saves in order; each save's callers hear its result on the owner's
    thread. Without an actor (self-tests, fuzz targets) a save writes the
    file on the caller's thread and reports before it returns.

    An empty data path (the self-tests) means memory only: every call does
    nothing (and reports success).

    API in call order: broker_state_new, broker_state_lock,
    broker_state_load, broker_state_changed, broker_state_check,
    broker_state_flush, broker_state_save, broker_state_tick,
    broker_state_destroy (after the actor finished: nsq_diskio_destroy).
*/
#ifndef BROKER_STATE_H
#define BROKER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nsq_diskio.h"

typedef enum {
    BROKER_STATE_IDS,      // ids: the id reservation
    BROKER_STATE_TOPIC,    // topic, paused
    BROKER_STATE_CHANNEL,  // topic, channel, paused
} broker_state_kind_t;

// One line of the state file.
typedef struct {
    broker_state_kind_t kind;
    uint64_t ids;         // BROKER_STATE_IDS
    const char *topic;    // BROKER_STATE_TOPIC and _CHANNEL (borrowed)
    const char *channel;  // BROKER_STATE_CHANNEL (borrowed)
    bool paused;          // BROKER_STATE_TOPIC and _CHANNEL
} broker_state_entry_t;

// Receives one entry. When loading: restores it; returns 0, or -1 if it
// cannot (the line is logged and skipped).
typedef int(broker_state_entry_fn)(void *arg, const broker_state_entry_t *entry);

// Lists what the file should hold now: calls emit(emit_arg, &entry) for
// the ids and for every topic and channel (ephemeral ones are skipped).
typedef void(broker_state_list_fn)(void *arg, broker_state_entry_fn *emit, void *emit_arg);

// The result of a save, on the owner's thread: 0, or the errno of the
// failure.
typedef void(broker_state_done_fn)(void *arg, int error);

typedef struct _broker_state_t broker_state_t;

// Returns the state of data_path ("" = memory only; copied); list and
// arg are kept. Saves go to diskio (borrowed; NULL: written on the
// caller's thread). Caller owns the result; NULL if out of memory.
broker_state_t *broker_state_new(const char *data_path, nsq_diskio_t *diskio,
                                 broker_state_list_fn *list, void *arg);

// Releases the lock and frees the state. Nulls *self_p; accepts NULL.
// Saves still on their way must have completed (nsq_diskio_destroy first).
void broker_state_destroy(broker_state_t **self_p);

// Takes the data path's lock. Returns 0, or -1 with a reason in error
// (another broker holds it, or the lock file cannot be opened).
int broker_state_lock(broker_state_t *self, char *error, size_t size);

// Reads the state file and calls restore for each entry (ids first as
// written). A missing file is an empty state. Returns 0, or -1 with a
// reason in error if the file exists but is not a state file. What was
// restored counts as saved.
int broker_state_load(broker_state_t *self, broker_state_entry_fn *restore, void *arg, char *error,
                      size_t size);

// Something the file lists changed.
void broker_state_changed(broker_state_t *self);

// After each batch of work: saves a change once STATE_SAVE_MIN_MS passed
// since the last save.
void broker_state_check(broker_state_t *self, int64_t now);

// done(arg, error) once the file on disk lists what the owner holds now
// (a durable publish is answered only once its topic is listed): saves a
// change now, or waits for the save on its way, or reports 0 at once if
// the file is up to date. done may be NULL.
void broker_state_flush(broker_state_t *self, broker_state_done_fn *done, void *arg);

// Writes the file now; done (may be NULL) hears the result. A failure is
// logged and retried by the tick. Without an actor done runs before this
// returns.
void broker_state_save(broker_state_t *self, broker_state_done_fn *done, void *arg);

// The periodic work: retries a failed save, then broker_state_check.
void broker_state_tick(broker_state_t *self, int64_t now);

// Self-test; returns 0 on success.
int broker_state_test(void);

#endif
