/*  broker_topic - a named stream: copies each published message to every
    channel, or holds it while the topic has no channel or is paused
    SPDX-License-Identifier: MIT

    A topic with no channel keeps its messages (bounded by --mem-queue-size)
    until the first channel appears, which then receives them all; channels
    created later see only newer messages (NSQ's semantics). Publishing is
    atomic: either every message fits everywhere it must go, or none is
    taken.

    Owned by the core thread. The struct is visible for broker_stats.

    API: broker_topic_new, broker_topic_publish, broker_topic_channel,
    broker_topic_add_channel, broker_topic_remove_channel, broker_topic_pause,
    broker_topic_unpause, broker_topic_empty, broker_topic_depth,
    broker_topic_destroy.
*/
#ifndef BROKER_TOPIC_H
#define BROKER_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_channel.h"
#include "broker_config.h"
#include "broker_queue.h"

typedef struct {
    char name[65];                  // topic name, possibly with #ephemeral
    bool ephemeral;                 // memory only, deleted with its last channel
    bool paused;                    // holds messages instead of copying them on
    const broker_config_t *config;  // borrowed broker settings
    broker_queue_t *held;           // messages waiting for a channel or unpause
    broker_channel_t **channels;    // owned channels
    size_t channel_count;           // entries used in channels
    uint64_t message_count;         // messages published
    uint64_t message_bytes;         // body bytes published
} broker_topic_t;

// Returns an empty topic. Caller owns it; NULL if out of memory.
broker_topic_t *broker_topic_new(const char *name, const broker_config_t *config);

// Frees the topic, its channels and every message. Clients subscribed to
// its channels must have been detached first. Nulls *self_p.
void broker_topic_destroy(broker_topic_t **self_p);

// Publishes count messages (ids and timestamps already set). On success
// every reference in messages moves to the topic and the channels are
// dispatched. Returns 0, or -1 if they do not all fit (references untouched).
int broker_topic_publish(broker_topic_t *self, nsq_message_t **messages, size_t count,
                         int64_t defer_ms, int64_t now);

// Returns the channel called name, or NULL. Borrowed.
broker_channel_t *broker_topic_channel(broker_topic_t *self, const char *name);

// Returns the channel called name, creating it (the first channel receives
// the held messages). Borrowed; NULL if out of memory.
broker_channel_t *broker_topic_add_channel(broker_topic_t *self, const char *name, int64_t now);

// Detaches channel from the topic and returns it; the caller owns it then
// (and must detach its clients before destroying it).
broker_channel_t *broker_topic_remove_channel(broker_topic_t *self, broker_channel_t *channel);

// Pause keeps new messages in the topic; unpause hands them to the channels.
void broker_topic_pause(broker_topic_t *self);
void broker_topic_unpause(broker_topic_t *self, int64_t now);

// Drops the held messages (channels are emptied separately).
void broker_topic_empty(broker_topic_t *self);

// Messages held by the topic itself (not its channels).
size_t broker_topic_depth(const broker_topic_t *self);

// Self-test; returns 0 on success.
int broker_topic_test(void);

#endif
