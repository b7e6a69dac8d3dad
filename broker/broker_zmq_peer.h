/*  broker_zmq_peer - one peer of the ZeroMQ door: its routing id, the
    frames waiting for it, and sending to it
    SPDX-License-Identifier: MIT

    A peer is known by its ZeroMQ routing identity (key: the identity in
    hex) and carries the server's client of that peer (broker_client.h).
    ZeroMQ hides disconnects: a send that fails with EHOSTUNREACH
    (ROUTER_MANDATORY) marks the peer and its client gone, and the server
    drops it at its next tick.

    No frame is dropped when the ROUTER's queue to the peer is full
    (EAGAIN): the peer is then blocked, and so is its client (no credit),
    until broker_zmq_peer_flush succeeds. Responses, errors and heartbeats
    wait in its backlog, in order, and leave first; a peer whose backlog
    overflows is marked gone. A Messages frame is not kept: the caller gets
    back what was not sent and requeues it at once. Every frame held back
    is counted (broker_counters_t.send_blocked) and logged at most once a
    second per door (broker_zmq_blocked_t).

    API: broker_zmq_peer_new,
    broker_zmq_peer_set_client, broker_zmq_peer_send_messages,
    broker_zmq_peer_send_response, _send_frame, _send_error,
    _send_heartbeat, broker_zmq_peer_flush, broker_zmq_peer_destroy.
*/
#ifndef BROKER_ZMQ_PEER_H
#define BROKER_ZMQ_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_client.h"
#include "broker_inflight.h"
#include "broker_stats.h"
#include "nsq_wire.h"

#define BROKER_IDENTITY_MAX 255

// Bytes of a peer's key: the identity in hex and a NUL.
#define BROKER_ZMQ_KEY_SIZE (2 * BROKER_IDENTITY_MAX + 1)

typedef struct _broker_zmq_peer_t broker_zmq_peer_t;

// Shared by a door's peers: frames that met a full queue.
typedef struct {
    broker_counters_t *counters;  // the server's; send_blocked counts the frames
    uint64_t logged;              // send_blocked at the last warning
    int64_t logged_at;            // monotonic ms of the last warning
    uint64_t dropped;             // peers dropped because their backlog overflowed
} broker_zmq_blocked_t;

// Returns a peer for the given routing identity on router (a ROUTER with
// ROUTER_MANDATORY; borrowed). blocked is the door's (borrowed); owner is
// whatever the door wants back from broker_zmq_peer_owner. Caller owns
// the result; NULL if the identity is empty or too long, or out of memory.
broker_zmq_peer_t *broker_zmq_peer_new(void *router, const void *identity, size_t identity_size,
                                       broker_zmq_blocked_t *blocked, void *owner, int64_t now);

// The owner given to broker_zmq_peer_new.
void *broker_zmq_peer_owner(const broker_zmq_peer_t *self);

// Frees the peer and what waits for it (not its client). Nulls *self_p;
// accepts NULL.
void broker_zmq_peer_destroy(broker_zmq_peer_t **self_p);

// The peer's key (hex identity). Borrowed, valid while the peer lives.
const char *broker_zmq_peer_key(const broker_zmq_peer_t *self);

// The server's client of this peer (borrowed), or NULL before it is set.
broker_client_t *broker_zmq_peer_client(const broker_zmq_peer_t *self);
void broker_zmq_peer_set_client(broker_zmq_peer_t *self, broker_client_t *client);

// Monotonic ms of the last frame that left for it.
int64_t broker_zmq_peer_last_sent(const broker_zmq_peer_t *self);

// True if a full queue holds its frames back.
bool broker_zmq_peer_is_blocked(const broker_zmq_peer_t *self);

// Sends the entries in Messages frames. Returns how many were sent, from
// the front; the rest were not (the peer is gone, or blocked by a full
// queue) and stay the caller's to requeue.
size_t broker_zmq_peer_send_messages(broker_zmq_peer_t *self, broker_inflight_entry_t **entries,
                                     size_t count, int64_t now);

// Sends frame as it is (frame stays the caller's), or keeps it in the
// backlog behind earlier frames. Returns 0, or -1 if the peer is
// unreachable (then gone, also when the backlog overflows) or out of
// memory.
int broker_zmq_peer_send_frame(broker_zmq_peer_t *self, Nsq__Frame *frame, int64_t now);

// Sends Response{seq, text}. Returns 0 or -1 as above.
int broker_zmq_peer_send_response(broker_zmq_peer_t *self, uint64_t seq, const char *text,
                                  int64_t now);

// Sends Error{seq, code, text, fatal}. Returns 0 or -1 as above.
int broker_zmq_peer_send_error(broker_zmq_peer_t *self, uint64_t seq, const char *code,
                               const char *text, bool fatal, int64_t now);

// Sends a Heartbeat frame; none while blocked (frames are waiting anyway).
// Returns 0 or -1 as above.
int broker_zmq_peer_send_heartbeat(broker_zmq_peer_t *self, int64_t now);

// Sends what the backlog holds while the queue takes it. Returns true if
// the peer was blocked and no longer is (its channel may dispatch again).
bool broker_zmq_peer_flush(broker_zmq_peer_t *self, int64_t now);

// Self-test; returns 0 on success.
int broker_zmq_peer_test(void);

#endif
