/*  broker_stats - a snapshot of the core's topics, channels and clients as
    plain data, for /stats and /metrics
    SPDX-License-Identifier: MIT

    The core thread fills a snapshot (broker_server_stats: topics in name
    order, each with its channels and their clients) and hands it to the
    door, which renders it on its own thread (broker_http_stats.c): the
    snapshot holds copies, no pointer into the core's state, so it may
    outlive any topic or client it describes. Field names follow NSQ's
    /stats JSON.

    Also here: the counters every door adds to (frames that were not
    commands, frames that met a full send queue), which the snapshot copies.

    API: broker_stats_new, broker_stats_sort, broker_stats_destroy.
*/
#ifndef BROKER_STATS_H
#define BROKER_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Counters the doors add to; plain data owned by the server.
typedef struct {
    uint64_t bad_commands;  // frames that were not valid commands
    uint64_t send_blocked;  // frames that met a full send queue (held back, none dropped)
} broker_counters_t;

typedef struct {
    char client_id[65];           // from IDENTIFY
    char hostname[256];           // from IDENTIFY
    char user_agent[128];         // from IDENTIFY
    char remote_address[64];      // "IP:port" of its connection, "" if unknown
    int state;                    // broker_client_state_t
    uint32_t ready_count;         // its credit (RDY)
    uint32_t in_flight_count;     // messages it holds
    uint64_t message_count;       // messages delivered to it
    uint64_t finish_count;        // FINs that matched
    uint64_t requeue_count;       // REQs that matched
    int64_t connect_ts;           // unix seconds of its first frame
    char door[8];                 // the door it came through ("zmq", "tcp")
    bool tls, deflate, snappy;    // what its connection negotiated
    int sample_rate;              // percent of messages sampled, 0 = all
    bool authed;                  // its AUTH was granted
    char auth_identity[128];      // the identity granted, "" if none
    char auth_identity_url[256];  // its URL, "" if none
} broker_stats_client_t;

#define BROKER_STATS_DOORS 4  // doors counted in broker_stats_t

// Clients connected through one door.
typedef struct {
    char name[8];  // the door's name ("zmq", "tcp")
    size_t count;  // its clients
} broker_stats_door_t;

typedef struct {
    char name[65];                   // channel name
    size_t depth;                    // waiting for delivery, memory and disk
    size_t backend_depth;            // of those, on disk
    uint64_t corrupt_count;          // damaged disk records skipped
    size_t in_flight_count;          // delivered, not finished
    size_t deferred_count;           // waiting for a defer or requeue delay
    uint64_t memory_bytes;           // bodies held in memory
    uint64_t message_count;          // messages put into the channel
    uint64_t requeue_count;          // REQs
    uint64_t timeout_count;          // in-flight timeouts
    bool paused;                     // delivers nothing
    size_t client_count;             // entries in clients
    broker_stats_client_t *clients;  // its consumers, owned
} broker_stats_channel_t;

typedef struct {
    char name[65];                     // topic name
    size_t depth;                      // held by the topic itself, memory and disk
    size_t backend_depth;              // of those, on disk
    uint64_t corrupt_count;            // damaged disk records skipped
    uint64_t memory_bytes;             // bodies held in memory
    uint64_t message_count;            // messages published
    uint64_t message_bytes;            // body bytes published
    bool paused;                       // holds messages
    size_t channel_count;              // entries in channels
    broker_stats_channel_t *channels;  // its channels (those the filter named), owned
} broker_stats_topic_t;

typedef struct {
    int64_t start_time;                             // unix seconds the broker started
    size_t client_count;                            // clients connected (every door)
    broker_stats_door_t doors[BROKER_STATS_DOORS];  // clients per door, first seen first
    size_t door_count;                              // entries used
    broker_counters_t counters;                     // copied from the server
    size_t topic_count;                             // entries in topics
    broker_stats_topic_t *topics;                   // in name order once sorted, owned
} broker_stats_t;

// Returns a zeroed snapshot with room for topic_count topics (their
// channel and client arrays are the filler's to allocate with malloc).
// Caller owns it; NULL if out of memory.
broker_stats_t *broker_stats_new(size_t topic_count);

// Sorts the topics by name.
void broker_stats_sort(broker_stats_t *self);

// Frees the snapshot and every array in it. Nulls *self_p; accepts NULL.
void broker_stats_destroy(broker_stats_t **self_p);

#endif
