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

    The links see no server: what the broker holds comes from a listing
    callback, and channels lookupd knows and held topics to release go
    back through callbacks (broker.c wires them to the server).

    Runs on the core thread only. API in call order: broker_lookup_new,
    broker_lookup_topic_created, broker_lookup_channel_created,
    broker_lookup_channel_deleted, broker_lookup_topic_deleted,
    broker_lookup_destroy.
*/
#ifndef BROKER_LOOKUP_H
#define BROKER_LOOKUP_H

#include <czmq.h>
#include <stdbool.h>

#include "broker_config.h"

typedef struct _broker_lookup_t broker_lookup_t;

// Receives one topic (channel NULL) or channel.
typedef void(broker_lookup_name_fn)(void *arg, const char *topic, const char *channel, bool paused);

// What the links need from the broker.
typedef struct {
    void *arg;  // first argument of each
    // Calls fn(fn_arg, ...) for every topic and channel the broker holds.
    void (*each)(void *arg, broker_lookup_name_fn *fn, void *fn_arg);
    // A lookupd knows this channel of topic: create it if the topic still
    // exists. Returns true if it was created (it did not exist).
    bool (*channel_known)(void *arg, const char *topic, const char *channel);
    // A topic held for lookupd's channel list may deliver now.
    void (*release)(void *arg, const char *topic);
} broker_lookup_source_t;

// The bound ports a broker announces to lookupds (0: none).
typedef struct {
    uint16_t http;   // plain HTTP
    uint16_t https;  // HTTPS (--https-address), 0 if off
    uint16_t zmq;    // ZeroMQ
    uint16_t tcp;    // NSQ TCP, 0 if off
} broker_lookup_ports_t;

// Connects to every lookupd of config (copied) and adds the sockets and a
// timer to loop (borrowed; it must outlive the links); ports are what the
// broker announces. source is copied. Returns NULL if a lookupd address is
// malformed (the reason is logged) or out of memory. Caller owns the
// result.
broker_lookup_t *broker_lookup_new(const broker_config_t *config, zloop_t *loop,
                                   const broker_lookup_ports_t *ports,
                                   const broker_lookup_source_t *source);

// Says goodbye to every lookupd (waiting a little for it to leave), removes
// the sockets from the loop, releases topics still waiting for lookupd's
// channel lists and frees everything. Nulls *self_p; accepts NULL.
void broker_lookup_destroy(broker_lookup_t **self_p);

// A topic was created: registers it and asks the answering lookupds for
// its channels. Returns true if the topic should hold its messages until
// source.release is called (within a second).
bool broker_lookup_topic_created(broker_lookup_t *self, const char *topic);

// Hooks the broker calls after creating or before deleting a topic or
// channel. Names are borrowed.
void broker_lookup_topic_deleted(broker_lookup_t *self, const char *topic);
void broker_lookup_channel_created(broker_lookup_t *self, const char *topic, const char *channel);
void broker_lookup_channel_deleted(broker_lookup_t *self, const char *topic, const char *channel);

#endif
