/*  broker_topic - a named stream: copies each published message to every
    channel, or holds it while the topic has no channel or is paused
    SPDX-License-Identifier: MIT

    A topic with no channel keeps its messages until the first channel
    appears, which then receives them all; channels created later see only
    newer messages (NSQ's semantics). What the topic holds stays in memory
    up to --mem-queue-size messages and --mem-queue-bytes of bodies (none
    in durable mode), the rest goes to the topic's disk queue; while
    it holds anything, new messages queue behind (first in, first out), and
    broker_topic_pump hands them on to the channels a batch at a time.
    Ephemeral topics and brokers without a data path have no disk: there
    a publish that does not fit in memory is refused as a whole. A disk
    write that fails (ENOSPC) refuses the message where it failed and the
    ones after it; channels that took it before keep it.

    Owned by the core thread (the server). Opaque: the rest of the broker
    reads it through the accessors below.

    API: broker_topic_new, broker_topic_publish, broker_topic_reserve,
    broker_topic_unreserve and broker_topic_admit (publishes admitted from other threads),
    broker_topic_channel,
    broker_topic_add_channel, broker_topic_remove_channel, broker_topic_pause,
    broker_topic_unpause, broker_topic_pump, broker_topic_empty,
    broker_topic_depth, broker_topic_memory_bytes, broker_topic_persist, the
    accessors, broker_topic_stats, broker_topic_destroy (keeps the disk
    files) or broker_topic_delete.
*/
#ifndef BROKER_TOPIC_H
#define BROKER_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_channel.h"
#include "broker_config.h"
#include "broker_queue.h"
#include "nsq_diskqueue.h"

typedef struct _broker_topic_t broker_topic_t;

// Returns an empty topic, opening its disk queue (restoring what it holds)
// unless it is memory only. Caller owns it; NULL if out of memory or the
// disk queue cannot be opened (errno).
broker_topic_t *broker_topic_new(const char *name, const broker_config_t *config);

// Frees the topic, its channels and every message in memory; disk queues
// are synced and kept. Clients subscribed to its channels must have been
// detached first. Nulls *self_p; accepts NULL.
void broker_topic_destroy(broker_topic_t **self_p);

// As broker_topic_destroy, and removes the disk queues' files (the
// topic's and its channels').
void broker_topic_delete(broker_topic_t **self_p);

// Publishes count messages (ids and timestamps already set). Each reference
// the topic takes is nulled in messages; the channels are dispatched.
// Returns 0 when all were taken, or -1: nothing taken when they do not fit
// in memory (no disk; errno ENOBUFS), or the message where a disk write
// failed (errno: ENOSPC, EMFILE...) and those after it left with the caller.
int broker_topic_publish(broker_topic_t *self, nsq_message_t **messages, size_t count,
                         int64_t defer_ms, int64_t now);

// Reserves memory for publishes admitted from other threads
// (broker_admission.h): up to *count messages and *bytes body bytes, as
// much as --mem-queue-size and --mem-queue-bytes leave; *count and *bytes
// become what was reserved (0 and 0: none). Only a topic with a disk
// queue that holds nothing, outside durable mode, reserves: the others
// answer each publish through broker_topic_publish.
void broker_topic_reserve(broker_topic_t *self, uint64_t *count, uint64_t *bytes);

// Gives back reserved memory that no publish will use.
void broker_topic_unreserve(broker_topic_t *self, uint64_t count, uint64_t bytes);

// Takes count admitted messages (ids and timestamps already set; every
// reference moves and is nulled) into the memory reserved for them, and
// hands them on as broker_topic_pump does. Never refuses: the room was
// reserved (out of memory for the queue itself drops one with a log line).
void broker_topic_admit(broker_topic_t *self, nsq_message_t **messages, size_t count, int64_t now);

// Hands up to a batch of held messages on to the channels (when it has
// channels and is not paused). Returns true if it still holds some.
bool broker_topic_pump(broker_topic_t *self, int64_t now);

// Returns the channel called name, or NULL. Borrowed.
broker_channel_t *broker_topic_channel(broker_topic_t *self, const char *name);

// Returns the channel called name, creating it (the first channel receives
// the held messages). Borrowed; NULL if out of memory.
broker_channel_t *broker_topic_add_channel(broker_topic_t *self, const char *name, int64_t now);

// Detaches channel from the topic and returns it; the caller owns it then
// (and must detach its clients before destroying it).
broker_channel_t *broker_topic_remove_channel(broker_topic_t *self, broker_channel_t *channel);

// While held (a new topic waiting for lookupd's channel list), the topic
// keeps its messages as if paused, without showing or saving a pause;
// releasing hands them to the channels.
void broker_topic_hold(broker_topic_t *self, bool hold, int64_t now);

// Pause keeps new messages in the topic; unpause hands them to the channels.
void broker_topic_pause(broker_topic_t *self);
void broker_topic_unpause(broker_topic_t *self, int64_t now);

// Drops the held messages (channels are emptied separately).
void broker_topic_empty(broker_topic_t *self);

// Messages held by the topic itself (not its channels), memory and disk.
size_t broker_topic_depth(const broker_topic_t *self);

// Of those, the messages on disk.
size_t broker_topic_backend_depth(const broker_topic_t *self);

// Body bytes the topic itself holds in memory (against --mem-queue-bytes).
uint64_t broker_topic_memory_bytes(const broker_topic_t *self);

// Writes the messages held in memory, and each channel's, to disk (for a
// restart) and settles every queue: only their metadata is written,
// without fsyncs, and their files are closed; the caller syncs the whole
// file system next (syncfs). Returns 0, or -1 if something could not be
// written.
int broker_topic_persist(broker_topic_t *self, int64_t now);

// ---- accessors ----------------------------------------------------------------
const char *broker_topic_name(const broker_topic_t *self);
bool broker_topic_is_ephemeral(const broker_topic_t *self);
bool broker_topic_is_paused(const broker_topic_t *self);
size_t broker_topic_channel_count(const broker_topic_t *self);
// The index-th channel (index < channel_count). Borrowed.
broker_channel_t *broker_topic_channel_at(const broker_topic_t *self, size_t index);
// Its disk queue, NULL when memory only. Borrowed (the syncer reads it).
nsq_diskqueue_t *broker_topic_disk(const broker_topic_t *self);
// True if it holds messages and its channels could take them now: a pump
// would move some (broker_pump.h).
bool broker_topic_wants_pump(const broker_topic_t *self);
// Its place in the server's pump set (+ 1; 0 = not in it); only
// broker_pump reads and writes it.
size_t broker_topic_pump_slot(const broker_topic_t *self);
void broker_topic_set_pump_slot(broker_topic_t *self, size_t slot);

// Fills out with the topic's figures and its channels' (those named by
// channel_filter, "" = all; out->channels is malloc'd and
// broker_stats_destroy frees it). Returns 0, or -1 if out of memory.
int broker_topic_stats(const broker_topic_t *self, broker_stats_topic_t *out,
                       const char *channel_filter);

// Self-test; returns 0 on success.
int broker_topic_test(void);

#endif
