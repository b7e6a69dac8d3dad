/*  broker_lookup - the broker's links to its lookupds: identify, register,
    heartbeat, and the channels a new topic should start with
    SPDX-License-Identifier: MIT

    One DEALER per --lookupd-address, read by the core's zloop (ZeroMQ
    reconnects by itself). On start, and whenever a lookupd answers
    E_NOT_IDENTIFIED (it restarted or expired us), the link identifies and
    registers every topic and channel the broker holds. Topic and channel
    creation and deletion are reported as they happen (the core calls the
    broker_lookup_*_created/_deleted hooks). A heartbeat goes out every
    --lookupd-heartbeat-interval; on shutdown each lookupd gets a goodbye so
    consumers stop seeing this broker at once.

    A topic created while some lookupd is answering holds its messages until every
    answering lookupd said which channels it knows for the topic (or a
    second passed); those channels are created first, so that a channel
    that exists elsewhere misses none of this broker's messages (NSQ's
    pre-creation, without its race). The hold is not a pause: it neither
    shows in /stats nor is saved.

    Runs on the core thread only. API in call order: broker_lookup_new,
    broker_lookup_topic_created, broker_lookup_channel_created,
    broker_lookup_channel_deleted, broker_lookup_topic_deleted,
    broker_lookup_destroy.
*/
#ifndef BROKER_LOOKUP_H
#define BROKER_LOOKUP_H

#include "broker_core.h"

// Connects to every lookupd of core->config and adds its sockets and timer
// to core->loop; core must have bound its ports. Returns NULL if a lookupd
// address is malformed (the reason is logged) or out of memory. Caller
// owns the result.
broker_lookup_t *broker_lookup_new(broker_core_t *core);

// Says goodbye to every lookupd (waiting a little for it to leave), removes
// the sockets from the loop, releases topics still waiting for lookupd's
// channel lists and frees everything. Call it while core->topics exists. Nulls *self_p; accepts
// NULL.
void broker_lookup_destroy(broker_lookup_t **self_p);

// Hooks the core calls after creating or before deleting a topic or
// channel. Names are borrowed.
void broker_lookup_topic_created(broker_lookup_t *self, broker_topic_t *topic);
void broker_lookup_topic_deleted(broker_lookup_t *self, const char *topic);
void broker_lookup_channel_created(broker_lookup_t *self, const char *topic, const char *channel);
void broker_lookup_channel_deleted(broker_lookup_t *self, const char *topic, const char *channel);

#endif
