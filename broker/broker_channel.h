/*  broker_channel - one channel of a topic: its queue, in-flight and deferred
    messages, and the consumers that share it
    SPDX-License-Identifier: MIT

    Every message published to the topic is put into each channel; within a
    channel each message goes to one consumer (round robin over those with
    credit). A delivered message is in flight until FIN, REQ or its timeout;
    REQ with a delay and deferred publishes wait in the deferred table.
    Requeues (timeout, REQ, a vanished consumer) always fit. New messages
    beyond --mem-queue-size or --mem-queue-bytes (queued plus deferred)
    go to the channel's disk queue, and so do all new messages while the disk queue is not empty
    (first in, first out), and in durable mode every new message does;
    dispatch refills the memory queue from disk, a consumer's credit at a
    time and no more than about --mem-queue-bytes, so memory stays bounded
    by the credit. A message read from disk
    stays "kept" by the disk queue until it is finished (FIN), so a crash
    or kill loses no message that was in flight, requeued or deferred:
    after a restart it is delivered again.
    Channels of ephemeral topics, ephemeral channels and brokers without a
    data path have no disk queue: ephemeral channels drop what does not
    fit (as NSQ does), the others refuse it.

    Owned by the core thread (the server, through its topic). Opaque: the
    rest of the broker reads it through the accessors below.

    API: broker_channel_new, broker_channel_has_room, broker_channel_put,
    broker_channel_add_client, broker_channel_dispatch, broker_channel_fin,
    broker_channel_req, broker_channel_touch, broker_channel_scan,
    broker_channel_remove_client, broker_channel_empty, broker_channel_persist,
    broker_channel_depth, broker_channel_memory_bytes, the accessors,
    broker_channel_stats, broker_channel_destroy (keeps the disk files) or
    broker_channel_delete.
*/
#ifndef BROKER_CHANNEL_H
#define BROKER_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_client.h"
#include "broker_config.h"
#include "broker_inflight.h"
#include "broker_queue.h"
#include "nsq_diskqueue.h"

// How long a message that could not be put in flight (its id is in
// flight already, or memory ran out) waits before the next try.
#define BROKER_CHANNEL_RETRY_MS 1000

typedef struct _broker_channel_t broker_channel_t;

// Returns an empty channel of topic, opening its disk queue (restoring what
// it holds) unless it is memory only. Caller owns it; NULL if out of memory
// or the disk queue cannot be opened (errno).
broker_channel_t *broker_channel_new(const char *topic, const char *name,
                                     const broker_config_t *config);

// Frees the channel and every message in memory; the disk queue is synced
// and kept. Subscribed clients must have been detached first (their channel
// pointer is not touched). Nulls *self_p.
void broker_channel_destroy(broker_channel_t **self_p);

// As broker_channel_destroy, and removes the disk queue's files.
void broker_channel_delete(broker_channel_t **self_p);

// True if count new messages of bytes body bytes in all fit: always for
// ephemeral channels (which drop what does not fit); with a disk queue if
// its write buffer has room (broker_disk_has_room); otherwise within
// --mem-queue-size and --mem-queue-bytes.
bool broker_channel_has_room(const broker_channel_t *self, size_t count, uint64_t bytes);

// True unless the channel's disk queue lacks write-buffer room for count
// messages of bytes body bytes (memory bounds are not looked at).
bool broker_channel_disk_has_room(const broker_channel_t *self, size_t count, uint64_t bytes);

// Puts a new message (takes one reference: the caller passes its own ref).
// ready_at (monotonic ms) > now defers it. Never fails for lack of memory
// room: check broker_channel_has_room first. Returns 0, or -1 with errno if
// the disk write failed or memory ran out (the reference is dropped then).
int broker_channel_put(broker_channel_t *self, nsq_message_t *message, int64_t ready_at,
                       int64_t now);

// broker_disk_combine for the channel's disk queue: what a failed write
// with report left unstored comes off the channel's count of messages put.
int broker_channel_combine_writes(broker_channel_t *self, bool start, bool report);

// Subscribes client. Returns 0, or -1 if out of memory.
int broker_channel_add_client(broker_channel_t *self, broker_client_t *client);

// Unsubscribes client and requeues every message it held (attempts kept).
// Allocates nothing, so no in-flight entry is left pointing at the client
// when memory runs out (a requeue that needs room is logged and dropped).
void broker_channel_remove_client(broker_channel_t *self, broker_client_t *client, int64_t now);

// Sends queued messages to consumers with credit, in batches.
void broker_channel_dispatch(broker_channel_t *self, int64_t now);

// Settles a message of client's as done. Returns 0, or -1 if id is not in
// flight to this client.
int broker_channel_fin(broker_channel_t *self, broker_client_t *client, uint64_t id);

// Requeues a message of client's after delay_ms. Returns 0 or -1 as FIN.
int broker_channel_req(broker_channel_t *self, broker_client_t *client, uint64_t id,
                       int64_t delay_ms, int64_t now);

// Extends a message's timeout by the client's msg timeout, capped at
// delivery + --max-msg-timeout. Returns 0 or -1 as FIN.
int broker_channel_touch(broker_channel_t *self, broker_client_t *client, uint64_t id, int64_t now);

// Requeues timed-out messages and releases deferred ones that are due.
// Returns how many messages moved.
size_t broker_channel_scan(broker_channel_t *self, int64_t now);

// Drops every queued and deferred message (in-flight ones stay tracked).
void broker_channel_empty(broker_channel_t *self);

// Writes every message in memory (queued, in flight with its attempts,
// deferred with its remaining time) to the disk queue, for a restart (the
// caller syncs the queue). Does nothing without a disk queue. Returns 0,
// or -1 if some could not be written (they are dropped, and logged).
int broker_channel_persist(broker_channel_t *self, int64_t now);

// Messages waiting to be delivered (NSQ's depth: not in flight, not
// deferred; memory and disk).
size_t broker_channel_depth(const broker_channel_t *self);

// Of those, the messages on disk.
size_t broker_channel_backend_depth(const broker_channel_t *self);

// Body bytes held in memory against --mem-queue-bytes (queued plus
// deferred; in-flight messages are bounded by the consumers' credit).
uint64_t broker_channel_memory_bytes(const broker_channel_t *self);

// ---- accessors ----------------------------------------------------------------
const char *broker_channel_name(const broker_channel_t *self);
bool broker_channel_is_ephemeral(const broker_channel_t *self);
bool broker_channel_is_paused(const broker_channel_t *self);
size_t broker_channel_client_count(const broker_channel_t *self);
// The index-th subscribed client (index < client_count). Borrowed.
broker_client_t *broker_channel_client_at(const broker_channel_t *self, size_t index);
// Its disk queue, NULL when memory only. Borrowed (the syncer reads it).
nsq_diskqueue_t *broker_channel_disk(const broker_channel_t *self);
// Its in-flight and deferred tables, for inspection only (tests, fuzz
// targets). Borrowed.
broker_inflight_t *broker_channel_in_flight(const broker_channel_t *self);
broker_inflight_t *broker_channel_deferred(const broker_channel_t *self);
// Messages an ephemeral channel dropped for lack of room.
uint64_t broker_channel_dropped_count(const broker_channel_t *self);

// Pause keeps its messages and delivers none; unpause dispatches again.
void broker_channel_set_paused(broker_channel_t *self, bool paused, int64_t now);

// Fills out with the channel's figures and a copy of each client's
// (out->clients is malloc'd; broker_stats_destroy frees it). Returns 0,
// or -1 if out of memory (out->clients is then NULL and client_count 0).
int broker_channel_stats(const broker_channel_t *self, broker_stats_channel_t *out);

// Self-test (broker_channel_test.c); returns 0 on success.
int broker_channel_test(void);

// Self-test of a consumer's removal while every allocation fails:
// fail_allocations(true) makes malloc, calloc and realloc fail in the
// calling binary (tests/selftest.c wraps them), false restores them.
// Returns 0 on success.
int broker_channel_test_out_of_memory(void (*fail_allocations)(bool fail));

#endif
