/*  broker_core - the state the broker actor's thread owns, shared by the
    files that implement it (broker.c, broker_commands.c, broker_admin.c,
    broker_stats.c). Internal to the broker; only its fuzz targets
    (tests/fuzz) include it too, to drive a core without sockets.
    SPDX-License-Identifier: MIT
*/
#ifndef BROKER_CORE_H
#define BROKER_CORE_H

#include <czmq.h>

#include "broker_channel.h"
#include "broker_client.h"
#include "broker_config.h"
#include "broker_http.h"
#include "broker_request.h"
#include "broker_topic.h"
#include "nsq_wire.h"

typedef struct _broker_lookup_t broker_lookup_t;

typedef struct {
    broker_config_t config;      // settings, read-only after start
    zsock_t *pipe;               // the actor pipe
    zsock_t *router;             // consumers and producers
    zsock_t *requests;           // inproc ROUTER the HTTP threads call
    zloop_t *loop;               // the one reactor
    broker_http_t *http;         // HTTP server (its own threads)
    zhashx_t *topics;            // name -> broker_topic_t, owned
    zhashx_t *clients;           // identity hex -> broker_client_t, owned
    uint64_t last_id;            // last message id handed out
    uint64_t ids_reserved;       // ids below this may be in use (saved in the state file)
    int64_t start_time;          // unix seconds
    char requests_endpoint[64];  // inproc endpoint of requests
    uint16_t http_port;          // bound HTTP port
    uint16_t zmq_port;           // bound ZeroMQ port
    uint64_t bad_commands;       // frames that were not valid commands
    broker_lookup_t *lookup;     // links to lookupds, NULL if none configured
    int lock_fd;                 // flock'd data path lock, -1 if none
    uint64_t state_fingerprint;  // of the topic/channel list last saved
    bool state_unsaved;          // the last save of the state file failed: the tick retries
    uint64_t state_failures;     // saves failed since the last success
    int64_t state_logged_ms;     // monotonic ms of the last line about a failed save
    bool state_changed;          // a topic/channel was created, deleted or (un)paused
    int64_t state_saved_ms;      // monotonic ms of the last save of the state file
    zactor_t *syncer;            // fdatasyncs batches off this thread
    zlistx_t *ack_waiting;       // durable: publishes waiting for the next sync
    zlistx_t *ack_syncing;       // durable: publishes the running sync covers
    bool sync_running;           // the syncer is busy
    bool draining;               // $TERM came: no new deliveries, the loop ends soon
    int64_t drain_deadline;      // monotonic ms when draining gives up
    int64_t files_logged_ms;     // monotonic ms of the last "out of file descriptors" line

    broker_client_blocked_t blocked;  // frames that met a full client queue
} broker_core_t;

// The core's state without sockets, threads or the data path's lock
// (broker.c): what the actor starts from, and what fuzz targets drive
// directly. router stays NULL: set it before the first client appears (an
// unbound ROUTER drops every reply). Caller owns the result (free it with
// broker_core_free); NULL if out of memory.
broker_core_t *broker_core_new(const broker_config_t *config);

// Frees the clients, the topics (disk queues synced and kept, nothing
// persisted) and the data path's lock, not the sockets. Nulls *self_p;
// accepts NULL.
void broker_core_free(broker_core_t **self_p);

// Returns the client with this ROUTER identity (1..BROKER_IDENTITY_MAX
// bytes), creating it in state NEW (its remote address from frame's
// connection, when frame is not NULL). Borrowed; NULL if the identity is
// empty or too long, or out of memory.
broker_client_t *broker_core_client(broker_core_t *self, const void *identity, size_t size,
                                    zmq_msg_t *frame, int64_t now);

// Handles one frame from client: a packed Command, decoded and handled; a
// frame that is not one (body NULL: a multi-frame message) is counted and
// answered E_BAD_COMMAND. The client may be dropped (freed) by the command.
void broker_core_handle_frame(broker_core_t *self, broker_client_t *client, const void *body,
                              size_t size, int64_t now);

// The periodic work (every BROKER_TICK_MS): in-flight timeouts, deferred
// messages, client liveness and heartbeats, disk syncs, the state file.
void broker_core_tick(broker_core_t *self, int64_t now);

// Returns the topic called name; creates it when create is true. Borrowed;
// NULL if absent (or out of memory).
broker_topic_t *broker_core_topic(broker_core_t *self, const char *name, bool create);

// Returns the channel called name of topic, creating it (and telling the
// lookupds) when absent. Borrowed; NULL if out of memory.
broker_channel_t *broker_core_channel(broker_core_t *self, broker_topic_t *topic, const char *name,
                                      int64_t now);

// True if error says the descriptor table is full (EMFILE, ENFILE): then
// logs it for topic (at most once a second) and the door answers with its
// "too many open files" code rather than a disk or internal error.
bool broker_core_out_of_files(broker_core_t *self, int error, const char *topic);

// Gives each message an id and the current timestamp. Ids grow, also
// across restarts and when the clock steps back (broker_state_reserve_ids).
void broker_core_stamp(broker_core_t *self, nsq_message_t **messages, size_t count);

// Unsubscribes client (its in-flight messages are requeued), deletes an
// ephemeral channel or topic left without consumers, and frees client.
void broker_core_drop_client(broker_core_t *self, broker_client_t *client);

// Deletes channel from topic; its consumers get a fatal error and are dropped.
void broker_core_delete_channel(broker_core_t *self, broker_topic_t *topic,
                                broker_channel_t *channel);

// Deletes topic and all its channels.
void broker_core_delete_topic(broker_core_t *self, broker_topic_t *topic);

// Handles one command from client (broker_commands.c).
void broker_core_handle_command(broker_core_t *self, broker_client_t *client,
                                const Nsq__Command *command, int64_t now);

// Handles one HTTP request and fills its reply (broker_admin.c). Returns
// true if it is answered (the caller calls broker_request_done), false if
// durable mode keeps it until its data is synced.
bool broker_core_handle_request(broker_core_t *self, broker_request_t *request);

// Renders /stats as JSON or text and /metrics as Prometheus text
// (broker_stats.c). topic/channel filter ("" = all). Caller owns the result;
// NULL if out of memory.
char *broker_stats_json(broker_core_t *self, const char *topic, const char *channel);
char *broker_stats_text(broker_core_t *self, const char *topic, const char *channel);
char *broker_stats_metrics(broker_core_t *self);

// The data directory (broker_state.c). lock: takes the data path's lock
// (0, or -1 with a reason: another broker holds it). load: restores the
// topics and channels listed (their disk queues restore their messages).
// pump: hands a batch of each topic's held messages on to its channels
// (after each batch of work, so a backlog drains as fast as it fills).
// tick: pumps, syncs disk queues per --sync-timeout, retries a failed
// save, saves the list when it changed. check: saves the list if it
// changed and the last save is STATE_SAVE_MIN_MS old (after each batch of
// commands or requests; the tick catches up). flush: saves it now if it
// changed. persist: at shutdown, writes every message in memory to disk and
// saves the list. unlock: releases the lock.
int broker_state_lock(broker_core_t *self, char *error, size_t size);
int broker_state_load(broker_core_t *self, char *error, size_t size);
void broker_state_tick(broker_core_t *self, int64_t now);
void broker_state_pump(broker_core_t *self, int64_t now);
void broker_state_check(broker_core_t *self);
void broker_state_flush(broker_core_t *self);
int broker_state_save(broker_core_t *self);
// Reserves message ids up to at least highest (and a block beyond, so that
// the state file is written about once a minute of ids, not per publish)
// and saves the state file, whose "ids" line a restart continues above.
void broker_state_reserve_ids(broker_core_t *self, uint64_t highest);
void broker_state_persist(broker_core_t *self);
void broker_state_unlock(broker_core_t *self);

// Off-thread syncs and durable mode (broker_sync.c); nothing without a
// data path. start: the syncer thread (0, or -1). wait_request /
// wait_client (durable mode): keep a successful publish's answer until the
// next group commit covers it. kick: starts a sync if one is due (after
// each batch of work).
// on_synced: the syncer's zloop reader. stop: syncs and answers everything
// still waiting (before the HTTP server goes).
int broker_sync_start(broker_core_t *self);
void broker_sync_wait_request(broker_core_t *self, broker_request_t *request);
void broker_sync_wait_client(broker_core_t *self, broker_client_t *client, uint64_t seq);
void broker_sync_kick(broker_core_t *self);
int broker_sync_on_synced(zloop_t *loop, zsock_t *reader, void *arg);
void broker_sync_stop(broker_core_t *self);
// Self-test of broker_sync's failure paths (run by broker_test).
int broker_sync_test(void);

#endif
