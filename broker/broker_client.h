/*  broker_client - one consumer or producer connected to the ROUTER socket
    SPDX-License-Identifier: MIT

    A client is known by its ZeroMQ routing identity. ZeroMQ hides
    disconnects, so liveness is ours: last_received and heartbeats decide
    when a silent peer is dropped, and a send that fails with EHOSTUNREACH
    (ROUTER_MANDATORY) marks it gone at once.

    The struct is visible because the channel (credit, in-flight counts) and
    the stats writer read it on the hot path; only broker.c and
    broker_channel.c write it.

    API: broker_client_new, broker_client_credit, broker_client_send_messages,
    broker_client_send_response, broker_client_send_error,
    broker_client_send_heartbeat, broker_client_destroy.
*/
#ifndef BROKER_CLIENT_H
#define BROKER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_inflight.h"

#define BROKER_IDENTITY_MAX 255

typedef enum {
    BROKER_CLIENT_NEW,         // seen, not identified (may publish)
    BROKER_CLIENT_IDENTIFIED,  // IDENTIFY accepted
    BROKER_CLIENT_SUBSCRIBED,  // SUB accepted: receives messages within its credit
    BROKER_CLIENT_CLOSING,     // CLS received: no new messages, in-flight may finish
} broker_client_state_t;

struct _broker_channel_t;

typedef struct {
    uint8_t identity[BROKER_IDENTITY_MAX];  // ZeroMQ routing id
    size_t identity_size;                   // its length
    char key[2 * BROKER_IDENTITY_MAX + 1];  // identity in hex, the clients-table key
    void *router;                           // the broker's ROUTER socket (borrowed)
    broker_client_state_t state;            // protocol state
    struct _broker_channel_t *channel;      // subscribed channel, or NULL
    uint32_t rdy;                           // credit: max messages in flight
    uint32_t in_flight;                     // messages it holds now
    int64_t msg_timeout_ms;                 // in-flight timeout for its messages
    int64_t heartbeat_interval_ms;          // how often we expect to hear from it
    int64_t last_received;                  // monotonic ms of its last frame
    int64_t last_sent;                      // monotonic ms of our last frame to it
    int64_t connect_ts;                     // unix seconds of its first frame
    uint64_t message_count;                 // messages delivered to it
    uint64_t finish_count;                  // FINs it sent that matched
    uint64_t requeue_count;                 // REQs it sent that matched
    uint64_t publish_count;                 // messages it published
    bool gone;                              // unreachable: reaped by the broker soon
    char client_id[65];                     // from IDENTIFY
    char hostname[256];                     // from IDENTIFY
    char user_agent[128];                   // from IDENTIFY
} broker_client_t;

// Returns a client in state NEW for the given routing identity.
// Caller owns the result; NULL if identity is too long or out of memory.
broker_client_t *broker_client_new(void *router, const void *identity, size_t identity_size,
                                   int64_t now);

// Frees the client (not its in-flight messages: the channel requeues them
// first). Nulls *self_p; accepts NULL.
void broker_client_destroy(broker_client_t **self_p);

// Writes the hex key of an identity into key (2*size+1 bytes).
void broker_client_key(const void *identity, size_t identity_size, char *key);

// How many more messages it may receive now (0 unless subscribed and live).
uint32_t broker_client_credit(const broker_client_t *self);

// Sends the entries as one Messages frame. Returns 0, or -1 if the peer
// is unreachable (self->gone is set) or the send failed.
int broker_client_send_messages(broker_client_t *self, broker_inflight_entry_t **entries,
                                size_t count, int64_t now);

// Sends Response{seq, text}. Returns 0 or -1 as above.
int broker_client_send_response(broker_client_t *self, uint64_t seq, const char *text, int64_t now);

// Sends Error{seq, code, text, fatal}. Returns 0 or -1 as above.
int broker_client_send_error(broker_client_t *self, uint64_t seq, const char *code,
                             const char *text, bool fatal, int64_t now);

// Sends a Heartbeat frame. Returns 0 or -1 as above.
int broker_client_send_heartbeat(broker_client_t *self, int64_t now);

#endif
