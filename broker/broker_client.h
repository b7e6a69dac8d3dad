/*  broker_client - one consumer or producer session, whatever door it came
    through
    SPDX-License-Identifier: MIT

    The server (broker_server.c) creates a client when a door sees a new
    peer and keeps it until the door closes it or the server drops it. A
    client carries the protocol state (NEW, IDENTIFIED, SUBSCRIBED,
    CLOSING), its channel, its credit (RDY) and in-flight count, the
    timeouts IDENTIFY set, its counters and identity strings, and the sink
    through which the core reaches the door: deliver() sends messages and
    dropped() tells the door the server is dropping the client.

    Who writes what (each through the functions below): the server the
    protocol state, channel, credit and identity; the channel the
    in-flight count and counters; the door liveness (heard), reachability
    (gone), whether it can take messages now (blocked) and the remote
    address. Everyone reads through accessors.

    API: broker_client_new, broker_client_credit, broker_client_deliver,
    broker_client_released, the accessors and setters, broker_client_stats,
    broker_client_destroy.
*/
#ifndef BROKER_CLIENT_H
#define BROKER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_inflight.h"
#include "broker_stats.h"

typedef struct _broker_client_t broker_client_t;
struct _broker_channel_t;

typedef enum {
    BROKER_CLIENT_NEW,         // seen, not identified (may publish)
    BROKER_CLIENT_IDENTIFIED,  // IDENTIFY accepted
    BROKER_CLIENT_SUBSCRIBED,  // SUB accepted: receives messages within its credit
    BROKER_CLIENT_CLOSING,     // CLS received: no new messages, in-flight may finish
} broker_client_state_t;

// Why the server drops a client (broker_client_sink_t.dropped).
typedef enum {
    BROKER_DROP_SILENT,           // no frame for two heartbeat intervals
    BROKER_DROP_GONE,             // the door found it unreachable
    BROKER_DROP_CHANNEL_DELETED,  // its channel was deleted (detail: the channel's name)
} broker_drop_reason_t;

// How a message the client held left it (broker_client_released).
typedef enum {
    BROKER_RELEASE_FINISHED,  // FIN
    BROKER_RELEASE_REQUEUED,  // REQ
    BROKER_RELEASE_RETURNED,  // timed out, or written back to disk
} broker_release_t;

// What a door gives the core for each of its clients. door is the first
// argument of each call.
typedef struct {
    // Sends entries (already in flight to the client) from the front, in
    // as few frames as the door likes; returns how many left. The rest are
    // requeued at once by the caller, so the door never keeps them.
    size_t (*deliver)(void *door, broker_inflight_entry_t **entries, size_t count, int64_t now);
    // The server is dropping the client: the door sends what the reason
    // calls for and forgets it; the client is freed right after.
    void (*dropped)(void *door, broker_drop_reason_t reason, const char *detail, int64_t now);
    // The door's name for /stats and /metrics ("zmq", "tcp"; NULL: "").
    const char *name;
} broker_client_sink_t;

// Returns a client in state NEW, heard from now. sink is borrowed (static
// in the door); name (for logs, e.g. a routing id in hex) is borrowed and
// must live as long as the client. Caller owns the result; NULL if out of
// memory.
broker_client_t *broker_client_new(const broker_client_sink_t *sink, void *door, const char *name,
                                   int64_t heartbeat_interval_ms, int64_t msg_timeout_ms,
                                   int64_t now);

// Frees the client (its in-flight messages must have gone back to its
// channel first). Nulls *self_p; accepts NULL.
void broker_client_destroy(broker_client_t **self_p);

// How many more messages it may receive now: 0 unless subscribed,
// reachable, not blocked and under its credit.
uint32_t broker_client_credit(const broker_client_t *self);

// Hands entries to the door (sink.deliver); returns how many were sent.
// Counts them in flight and delivered.
size_t broker_client_deliver(broker_client_t *self, broker_inflight_entry_t **entries, size_t count,
                             int64_t now);

// One message the client held left it (FIN, REQ, or returned).
void broker_client_released(broker_client_t *self, broker_release_t how);

// Its channel took back every message it held (it unsubscribed).
void broker_client_released_all(broker_client_t *self);

// The server drops it: calls sink.dropped.
void broker_client_drop(broker_client_t *self, broker_drop_reason_t reason, const char *detail,
                        int64_t now);

// ---- read by everyone -------------------------------------------------------
broker_client_state_t broker_client_state(const broker_client_t *self);
struct _broker_channel_t *broker_client_channel(const broker_client_t *self);
uint32_t broker_client_in_flight(const broker_client_t *self);
int64_t broker_client_msg_timeout(const broker_client_t *self);
int64_t broker_client_heartbeat_interval(const broker_client_t *self);
int64_t broker_client_last_received(const broker_client_t *self);
bool broker_client_is_gone(const broker_client_t *self);
const char *broker_client_name(const broker_client_t *self);  // for logs
const char *broker_client_id(const broker_client_t *self);    // from IDENTIFY, "" before
void *broker_client_door(const broker_client_t *self);        // the sink's argument

const char *broker_client_remote_address(const broker_client_t *self);  // "IP:port" or ""
bool broker_client_tls(const broker_client_t *self);                    // link encrypted
const char *broker_client_common_name(const broker_client_t *self);     // "" if none
// The secret AUTH gave (bytes, NUL-terminated, *size set), NULL before.
// Borrowed; never log or show it.
const char *broker_client_auth_secret(const broker_client_t *self, size_t *size);

// Fills out with the client's figures and strings.
void broker_client_stats(const broker_client_t *self, broker_stats_client_t *out);

// ---- written by the server ----------------------------------------------------
void broker_client_set_state(broker_client_t *self, broker_client_state_t state);
void broker_client_set_channel(broker_client_t *self, struct _broker_channel_t *channel);
void broker_client_set_rdy(broker_client_t *self, uint32_t rdy);
void broker_client_set_timeouts(broker_client_t *self, int64_t heartbeat_interval_ms,
                                int64_t msg_timeout_ms);
// Copies the IDENTIFY strings ((data, size) each, any bytes), made valid
// UTF-8 without control characters since /stats and logs show them.
void broker_client_set_identity(broker_client_t *self, const char *client_id, size_t client_id_size,
                                const char *hostname, size_t hostname_size, const char *user_agent,
                                size_t user_agent_size);
// Keeps a copy of secret (size bytes, any content; NULL forgets it, the
// old copy is wiped). Returns 0, or -1 if out of memory.
int broker_client_set_auth_secret(broker_client_t *self, const void *secret, size_t size);
// The identity (and its URL) the auth server granted its AUTH, for
// /stats (copied, cut to fit; NULL = "").
void broker_client_set_auth_identity(broker_client_t *self, const char *identity,
                                     const char *identity_url);
// The server's handle for its list of clients.
void *broker_client_handle(const broker_client_t *self);
void broker_client_set_handle(broker_client_t *self, void *handle);

// ---- written by the door ------------------------------------------------------
// A frame came from it now (it is alive).
void broker_client_heard(broker_client_t *self, int64_t now);
// It is unreachable: no credit; the server's next tick drops it.
void broker_client_set_gone(broker_client_t *self);
// It cannot take messages now (a full send queue): no credit meanwhile.
void broker_client_set_blocked(broker_client_t *self, bool blocked);
// Its link is encrypted (TLS, the NSQ TCP door), with the certificate's
// common name ("" or NULL if none): told to the auth server.
void broker_client_set_tls(broker_client_t *self, bool tls, const char *common_name);
// "IP:port" of its connection (copied, cut to fit).
void broker_client_set_remote_address(broker_client_t *self, const char *address);
// What its connection negotiated, for /stats: TLS, compression, and the
// percentage of messages it samples (0 = all).
void broker_client_set_transport(broker_client_t *self, bool tls, bool deflate, bool snappy,
                                 int sample_rate);

// Self-test; returns 0 on success.
int broker_client_test(void);

#endif
