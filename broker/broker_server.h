/*  broker_server - the protocol-neutral core: topics, channels, clients,
    message ids, and the operations every door calls
    SPDX-License-Identifier: MIT

    One server per broker, owned by its actor's thread (broker.c); nothing
    in it knows a wire. Doors (the HTTP door, the ZeroMQ door) decode
    their protocol, call an operation below, and map the broker_result_t
    it returns to their own codes. Names arrive as bytes with a length and
    are checked here (nsq_name_is_valid_n), so every door gets the same
    answer for the same name.

    Clients are sessions a door opens (broker_server_client_new) with a
    sink (broker_client.h) through which the server delivers messages and
    says when it drops one. The door closes its own clients with
    broker_server_client_close.

    What the server needs from around it comes as hooks (function pointers
    with an argument, given by broker.c): topic and channel creation and
    deletion (the lookupd links), changes to what the state file lists, id
    reservations (the state file), and durable waits (the syncer). No hook
    is required: a NULL hook is skipped.

    Durable mode (--durable with a data path): a publish returns
    BROKER_PENDING once its messages are in their queues; the door then
    registers a waiter (broker_server_wait_durable) that is called with
    BROKER_OK or BROKER_SYNC_FAILED when the group commit covering it ends.

    API in call order: broker_server_new, broker_server_client_new,
    broker_server_identify, _subscribe, _ready, _finish, _requeue, _touch,
    _close_wait, broker_server_publish, broker_server_wait_durable,
    broker_server_grant, broker_server_admit,
    broker_server_topic, broker_server_channel, broker_server_stats,
    broker_server_pump, broker_server_tick, broker_server_client_close,
    broker_server_in_flight, broker_server_drain, broker_server_persist,
    broker_server_destroy; and the iterators broker_server_each,
    broker_server_each_disk, broker_server_each_dirty_disk.
*/
#ifndef BROKER_SERVER_H
#define BROKER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_admission.h"
#include "broker_auth.h"
#include "broker_client.h"
#include "broker_config.h"
#include "broker_result.h"
#include "broker_stats.h"
#include "broker_topic.h"
#include "nsq_diskqueue.h"
#include "nsq_message.h"

typedef struct _broker_server_t broker_server_t;

// Called once when a durable publish is settled: BROKER_OK (on disk) or
// BROKER_SYNC_FAILED. arg as registered.
typedef void(broker_durable_fn)(void *arg, broker_result_t result);

// What the server calls out to; every field may be NULL.
typedef struct {
    void *arg;  // first argument of every hook
    // A topic was created. Returns true to hold its messages back (as if
    // paused, not shown) until broker_server_topic_release.
    bool (*topic_created)(void *arg, const char *topic);
    // A topic or channel is being deleted (called before it goes).
    void (*topic_deleted)(void *arg, const char *topic);
    void (*channel_created)(void *arg, const char *topic, const char *channel);
    void (*channel_deleted)(void *arg, const char *topic, const char *channel);
    // What the state file lists changed (a durable topic or channel
    // created, deleted, paused or unpaused).
    void (*state_changed)(void *arg);
    // Message ids are now reserved up to broker_server_ids_reserved: save
    // the state file (a restart continues above it).
    void (*ids_reserved)(void *arg);
    // Durable mode: call fn(fn_arg, result) once the next group commit
    // ends. Returns 0, or -1 if it cannot (fn is then not called).
    int (*wait_durable)(void *arg, broker_durable_fn *fn, void *fn_arg);
} broker_server_hooks_t;

// What IDENTIFY asks for: 0 = the broker's default. Strings are bytes
// with their sizes (any content; they are cleaned for display).
typedef struct {
    int64_t heartbeat_interval_ms;  // how often the client will be heard from
    int64_t msg_timeout_ms;         // in-flight timeout of its messages
    const char *client_id;          // shown in /stats
    size_t client_id_size;
    const char *hostname;
    size_t hostname_size;
    const char *user_agent;
    size_t user_agent_size;
} broker_identify_t;

// What IDENTIFY answers: the effective settings and the broker's limits.
typedef struct {
    int64_t heartbeat_interval_ms;
    int64_t msg_timeout_ms;
    int64_t max_msg_timeout_ms;
    int64_t max_rdy_count;
    int64_t max_msg_size;
    const char *version;  // static
} broker_identify_reply_t;

// The administrative operations on a topic or channel.
typedef enum {
    BROKER_CREATE,
    BROKER_DELETE,
    BROKER_EMPTY,
    BROKER_PAUSE,
    BROKER_UNPAUSE,
} broker_admin_t;

// Returns a server with no topics, settings copied from config (its
// disk_listing moves to the server). hooks is copied (NULL: none). Caller
// owns the result; NULL if out of memory.
broker_server_t *broker_server_new(const broker_config_t *config,
                                   const broker_server_hooks_t *hooks);

// Frees every client (without calling their sinks) and topic; disk queues
// are kept as they are (call broker_server_persist first to save what is
// in memory). Nulls *self_p; accepts NULL.
void broker_server_destroy(broker_server_t **self_p);

// The settings the server runs with. Borrowed.
const broker_config_t *broker_server_config(const broker_server_t *self);

// The counters doors add to (broker_stats.h). Borrowed.
broker_counters_t *broker_server_counters(broker_server_t *self);

// ---- clients --------------------------------------------------------------------

// Opens a client in state NEW for a door (see broker_client_new for sink,
// door and name). Borrowed: the server owns it until
// broker_server_client_close or until it drops it (sink.dropped). NULL if
// out of memory.
broker_client_t *broker_server_client_new(broker_server_t *self, const broker_client_sink_t *sink,
                                          void *door, const char *name, int64_t now);

// The door closes its client: its in-flight messages go back to the
// channel, an ephemeral channel (and topic) left without consumers goes,
// and the client is freed (no sink call). Nulls *client_p.
void broker_server_client_close(broker_server_t *self, broker_client_t **client_p, int64_t now);

// IDENTIFY: BROKER_OK and reply filled, BROKER_INVALID unless the client
// is NEW, BROKER_BAD_BODY if a setting is out of range.
broker_result_t broker_server_identify(broker_server_t *self, broker_client_t *client,
                                       const broker_identify_t *request,
                                       broker_identify_reply_t *reply);

// SUB: creates the topic and channel if needed. BROKER_OK, BROKER_INVALID
// unless IDENTIFIED, BROKER_BAD_TOPIC, BROKER_BAD_CHANNEL,
// BROKER_TOO_MANY_FILES or BROKER_NO_MEMORY.
broker_result_t broker_server_subscribe(broker_server_t *self, broker_client_t *client,
                                        const void *topic, size_t topic_size, const void *channel,
                                        size_t channel_size, int64_t now);

// RDY: BROKER_OK, BROKER_INVALID unless subscribed (or closing),
// BROKER_OUT_OF_RANGE above --max-rdy-count. While draining the credit
// stays 0.
broker_result_t broker_server_ready(broker_server_t *self, broker_client_t *client, uint64_t count,
                                    int64_t now);

// FIN, REQ (delay capped at --max-req-timeout) and TOUCH of count ids:
// BROKER_OK, or BROKER_NOT_IN_FLIGHT with *failed the ids this client did
// not hold (the others are applied).
broker_result_t broker_server_finish(broker_server_t *self, broker_client_t *client,
                                     const uint64_t *ids, size_t count, size_t *failed,
                                     int64_t now);
broker_result_t broker_server_requeue(broker_server_t *self, broker_client_t *client,
                                      const uint64_t *ids, size_t count, int64_t delay_ms,
                                      size_t *failed, int64_t now);
broker_result_t broker_server_touch(broker_server_t *self, broker_client_t *client,
                                    const uint64_t *ids, size_t count, size_t *failed, int64_t now);

// CLS: a subscribed client gets no new messages (its in-flight ones may
// still finish). Always BROKER_OK.
broker_result_t broker_server_close_wait(broker_server_t *self, broker_client_t *client);

// A door's client can take messages again (its send queue drained):
// dispatches its channel.
void broker_server_client_ready_again(broker_server_t *self, broker_client_t *client, int64_t now);

// ---- authorization (broker_server_auth.c) -------------------------------------------
//
// With an auth client set, every publish, subscribe, stats and admin
// request needs a secret the auth server grants (broker_auth.h). Doors
// call broker_server_authorize (a session) or broker_server_authorize_query
// (a request with no session: HTTP) before the operation, and
// broker_server_auth for AUTH. BROKER_AUTH_PENDING means the auth server
// is being asked: fn(arg) is called on this thread when it answered, and
// the door then carries the command out again from the start (in order
// with what the same peer sent after it). Never fails open: an auth server
// that does not answer gives BROKER_AUTH_UNAVAILABLE.

// The auth client (borrowed, must outlive the server's use of it; NULL,
// the default: no auth, everything is allowed).
void broker_server_set_auth(broker_server_t *self, broker_auth_t *auth);
broker_auth_t *broker_server_auth_client(const broker_server_t *self);

// True if sessions must AUTH (an auth client is set): doors say so in their
// IDENTIFY answer (NSQ's auth_required).
bool broker_server_auth_required(const broker_server_t *self);

// What AUTH answers (NSQ's AUTH reply). Strings borrowed until the loop
// reads the auth client again.
typedef struct {
    const char *identity;
    const char *identity_url;
    size_t permission_count;
} broker_auth_reply_t;

// AUTH: asks about secret (size bytes) for client and, once granted, keeps
// it in the client for the checks below. BROKER_OK (reply filled),
// BROKER_AUTH_DISABLED (no auth client), BROKER_INVALID (the client has a
// secret already), BROKER_AUTH_FAILED, BROKER_UNAUTHORIZED (granted
// nothing), BROKER_AUTH_UNAVAILABLE, BROKER_AUTH_PENDING (see above).
broker_result_t broker_server_auth(broker_server_t *self, broker_client_t *client,
                                   const void *secret, size_t size, int64_t now,
                                   broker_auth_reply_t *reply, broker_auth_wait_fn *fn, void *arg);

// May client do permit on topic and channel (bytes; channel_size 0 for a
// publish or a topic's administration)? BROKER_OK (also with no auth
// client), BROKER_BAD_TOPIC, BROKER_BAD_CHANNEL, BROKER_AUTH_FIRST (no
// AUTH yet), BROKER_AUTH_FAILED, BROKER_UNAUTHORIZED,
// BROKER_AUTH_UNAVAILABLE, BROKER_AUTH_PENDING. An answer past its ttl is
// asked again.
broker_result_t broker_server_authorize(broker_server_t *self, broker_client_t *client,
                                        broker_permit_t permit, const void *topic,
                                        size_t topic_size, const void *channel, size_t channel_size,
                                        int64_t now, broker_auth_wait_fn *fn, void *arg);

// The same for a request with no session: query names the secret
// (secret NULL: none was given, BROKER_AUTH_FAILED), topic and channel are
// checked names or "" (BROKER_PERMIT_IDENTITY reads neither).
broker_result_t broker_server_authorize_query(broker_server_t *self,
                                              const broker_auth_query_t *query,
                                              broker_permit_t permit, const char *topic,
                                              const char *channel, int64_t now,
                                              broker_auth_wait_fn *fn, void *arg);

// ---- publishing and administration ------------------------------------------------

// Publishes count messages to topic (created if needed), all or none,
// deferred by defer_ms. Takes every reference in messages (nulls them),
// whatever the result. BROKER_OK, BROKER_PENDING (durable: see
// broker_server_wait_durable), BROKER_BAD_TOPIC, BROKER_BAD_MESSAGE (none,
// an empty one, one above --max-msg-size), BROKER_OUT_OF_RANGE (defer
// outside 0..--max-req-timeout), BROKER_BAD_BODY (several, together above
// --max-body-size), BROKER_QUEUE_FULL, BROKER_DISK_FAILED,
// BROKER_TOO_MANY_FILES or BROKER_NO_MEMORY.
broker_result_t broker_server_publish(broker_server_t *self, const void *topic, size_t topic_size,
                                      nsq_message_t **messages, size_t count, int64_t defer_ms,
                                      int64_t now);

// ---- publishes admitted on other threads (broker_server_admit.c) ---------------
// A door may let its own threads publish to a topic without waiting for
// this one: broker_server_grant gives the topic credit (memory of its queue
// reserved up front), the door's threads offer publishes to the admission,
// and broker_server_admit adds those admitted to their topics (ids and
// timestamps set here) and tops the credit up. Only topics with a disk
// queue holding nothing get credit, never in durable mode or with auth on:
// every other publish goes through broker_server_publish.

// The admission doors offer publishes to (thread-safe). Borrowed; lives
// as long as self.
broker_admission_t *broker_server_admission(broker_server_t *self);

// Gives topic credit if it exists and may have some (see above).
void broker_server_grant(broker_server_t *self, const char *topic);

// Adds every admitted publish to its topic. Returns how many messages.
// Call it when broker_admission_fd is readable, and before any other
// publish a door hands over (so that one client's publishes keep their
// order); broker_server_persist calls it too.
size_t broker_server_admit(broker_server_t *self);

// After BROKER_PENDING: fn(arg, result) is called once, on this thread,
// when the publish is on disk (BROKER_OK) or its sync failed
// (BROKER_SYNC_FAILED; also, at once, when the wait cannot be registered).
void broker_server_wait_durable(broker_server_t *self, broker_durable_fn *fn, void *arg);

// Creates, deletes, empties, pauses or unpauses a topic. BROKER_OK,
// BROKER_BAD_TOPIC, BROKER_TOPIC_NOT_FOUND (all but create),
// BROKER_TOO_MANY_FILES or BROKER_NO_MEMORY (create).
broker_result_t broker_server_topic(broker_server_t *self, broker_admin_t op, const void *topic,
                                    size_t topic_size, int64_t now);

// The same for a channel; create makes the topic too. Also
// BROKER_BAD_CHANNEL and BROKER_CHANNEL_NOT_FOUND. Deleting a channel
// drops its consumers (sink.dropped, BROKER_DROP_CHANNEL_DELETED).
broker_result_t broker_server_channel(broker_server_t *self, broker_admin_t op, const void *topic,
                                      size_t topic_size, const void *channel, size_t channel_size,
                                      int64_t now);

// Lets a topic that topic_created held deliver (no-op if it is gone).
void broker_server_topic_release(broker_server_t *self, const char *topic, int64_t now);

// True if the topic exists (channel NULL), or its channel does.
bool broker_server_has(broker_server_t *self, const char *topic, const char *channel);

// A snapshot for /stats and /metrics: topics named by topic_filter ("" =
// all) in name order, their channels named by channel_filter. Caller owns
// it (broker_stats_destroy); NULL if out of memory.
broker_stats_t *broker_server_stats(broker_server_t *self, const char *topic_filter,
                                    const char *channel_filter);

// ---- ids --------------------------------------------------------------------------

// Restores the id reservation a state file recorded: ids handed out from
// now on are above it.
void broker_server_restore_ids(broker_server_t *self, uint64_t reserved);

// Every id handed out so far is below this.
uint64_t broker_server_ids_reserved(const broker_server_t *self);

// ---- the loop's work ----------------------------------------------------------------

// After each batch of work: hands each topic's held messages on to its
// channels, a batch at a time, so a backlog drains as fast as it fills.
// Visits only the topics that can move some (broker_pump.h): its cost
// does not grow with idle topics.
void broker_server_pump(broker_server_t *self, int64_t now);

// The periodic work: in-flight timeouts and deferred messages, clients
// gone or silent for two heartbeat intervals are dropped
// (BROKER_DROP_GONE, BROKER_DROP_SILENT), and a pump.
void broker_server_tick(broker_server_t *self, int64_t now);

// Messages in flight to consumers now.
uint64_t broker_server_in_flight(const broker_server_t *self);

// Starts draining: no consumer gets a new message (credit 0, RDY is
// ignored); finishing, requeueing and publishing go on.
void broker_server_drain(broker_server_t *self);

// At shutdown: closes the admission and takes what it admitted
// (broker_server_admit), then writes every message held in memory
// (queued, in flight, deferred) to disk and each queue's metadata, without fsyncs; the caller
// makes it durable with a syncfs of the data path (broker_node_persist).
// Returns 0, or -1 if something could not be saved (logged).
int broker_server_persist(broker_server_t *self, int64_t now);

// ---- snapshots and iterators (broker_server_each.c) --------------------------------

// Calls fn for every topic (channel NULL) and then each of its channels,
// with its paused flag. fn must not change the server.
typedef void(broker_server_each_fn)(void *arg, const char *topic, const char *channel, bool paused);
void broker_server_each(broker_server_t *self, broker_server_each_fn *fn, void *arg);

// Calls fn for every topic and for every client, for inspection (the
// objects are borrowed; self-tests and fuzz targets check invariants with
// them). fn must not change the server.
typedef void(broker_server_topic_fn)(void *arg, broker_topic_t *topic);
typedef void(broker_server_client_fn)(void *arg, broker_client_t *client);
void broker_server_each_topic(broker_server_t *self, broker_server_topic_fn *fn, void *arg);
void broker_server_each_client(broker_server_t *self, broker_server_client_fn *fn, void *arg);

// Calls fn for every disk queue (topics' and channels'). fn must not
// change the server.
typedef void(broker_server_disk_fn)(void *arg, nsq_diskqueue_t *disk, const char *name);
void broker_server_each_disk(broker_server_t *self, broker_server_disk_fn *fn, void *arg);

// Durable mode: calls fn, as above, only for the disk queues of the
// topics published to since the last call (a publish writes nowhere
// else), then forgets them; what a group commit must sync. Its cost does
// not grow with idle topics. Does nothing unless durable.
void broker_server_each_dirty_disk(broker_server_t *self, broker_server_disk_fn *fn, void *arg);

// Self-test (broker_server_test.c); returns 0 on success.
int broker_server_test(void);

#endif
