/*  broker_client - one consumer or producer connected to the ROUTER socket
    SPDX-License-Identifier: MIT

    A client is known by its ZeroMQ routing identity. ZeroMQ hides
    disconnects, so liveness is ours: last_received and heartbeats decide
    when a silent peer is dropped, and a send that fails with EHOSTUNREACH
    (ROUTER_MANDATORY) marks it gone at once.

    No frame is dropped when the ROUTER's queue to the client is full
    (EAGAIN): the client is then blocked (no credit) until
    broker_client_flush succeeds. Responses, errors and heartbeats wait in
    its backlog, in order, and leave first; a client whose backlog
    overflows is marked gone. A Messages frame is not kept: the caller gets
    back what was not sent and requeues it at once. Every frame held back
    is counted in the broker's broker_client_blocked_t and logged at most
    once a second.

    The struct is visible because the channel (credit, in-flight counts) and
    the stats writer read it on the hot path; only broker.c and
    broker_channel.c write it.

    API: broker_client_new, broker_client_credit, broker_client_send_messages,
    broker_client_send_response, broker_client_send_error,
    broker_client_send_heartbeat, broker_client_flush, broker_client_destroy.
*/
#ifndef BROKER_CLIENT_H
#define BROKER_CLIENT_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_inflight.h"
#include "nsq_wire.h"

#define BROKER_IDENTITY_MAX 255

typedef enum {
    BROKER_CLIENT_NEW,         // seen, not identified (may publish)
    BROKER_CLIENT_IDENTIFIED,  // IDENTIFY accepted
    BROKER_CLIENT_SUBSCRIBED,  // SUB accepted: receives messages within its credit
    BROKER_CLIENT_CLOSING,     // CLS received: no new messages, in-flight may finish
} broker_client_state_t;

struct _broker_channel_t;

// Shared by a broker's clients: frames that met a full queue.
typedef struct {
    uint64_t count;     // frames held back (backlogged or requeued) since start
    uint64_t logged;    // count at the last warning
    int64_t logged_at;  // monotonic ms of the last warning
    uint64_t dropped;   // clients dropped because their backlog overflowed
} broker_client_blocked_t;

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
    bool blocked;                           // its queue was full: no credit until flushed
    zlistx_t *backlog;                      // packed frames (zmq_msg_t) waiting, or NULL
    broker_client_blocked_t *counters;      // the broker's full-queue counters, or NULL
    char remote_address[64];                // "IP:port" of its connection, "" if unknown
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

// Sends the entries in Messages frames. Returns how many were sent, from
// the front; the rest were not (the client is gone, or blocked by a full
// queue) and stay the caller's to requeue.
size_t broker_client_send_messages(broker_client_t *self, broker_inflight_entry_t **entries,
                                   size_t count, int64_t now);

// Sends Response{seq, text}, or keeps it in the backlog behind earlier
// frames. Returns 0, or -1 if the peer is unreachable (self->gone is set,
// also when the backlog overflows) or out of memory.
int broker_client_send_response(broker_client_t *self, uint64_t seq, const char *text, int64_t now);

// Sends frame as it is (say a Response carrying an IdentifyReply), or keeps
// it in the backlog behind earlier frames. frame stays the caller's.
// Returns 0 or -1 as above.
int broker_client_send_frame(broker_client_t *self, Nsq__Frame *frame, int64_t now);

// Sends Error{seq, code, text, fatal}. Returns 0 or -1 as above.
int broker_client_send_error(broker_client_t *self, uint64_t seq, const char *code,
                             const char *text, bool fatal, int64_t now);

// Sends a Heartbeat frame; none while blocked (frames are waiting anyway).
// Returns 0 or -1 as above.
int broker_client_send_heartbeat(broker_client_t *self, int64_t now);

// Sends what the backlog holds while the queue takes it. Returns true if the
// client was blocked and no longer is (its channel may dispatch again).
bool broker_client_flush(broker_client_t *self, int64_t now);

// Self-test; returns 0 on success.
int broker_client_test(void);

#endif
