/*  nsq_connection - a consumer's session with one broker over a DEALER socket
    SPDX-License-Identifier: MIT

    Owns the socket and everything that is about this one broker: the
    handshake (IDENTIFY and SUB at once, the IdentifyReply's limits, the
    msg_timeout clamp), liveness (heartbeats out, a silent broker reset),
    reconnection (at once after a lost TCP connection or a silent broker,
    after a doubling backoff after a fatal error), RDY, CLS, and the FIN and
    REQ batches that leave as one frame per batch.

    Every new socket bumps the connection's generation: what a consumer
    handed out from an older socket cannot be settled on this one.

    The owner (the consumer) keeps the zloop and the reader: the
    connection registers the owner's reader for each socket it opens (the
    DEALER and its disconnect monitor), and the reader finds the connection
    by socket (zloop may call a reader for a socket destroyed earlier in the
    same pass), lets nsq_connection_read_monitor take monitor events, reads
    frames with nsq_connection_recv and gives each to
    nsq_connection_handle, which
    deals with answers, errors and heartbeats itself and tells the owner
    what it must act on (messages to deliver, RDY now possible, CLS
    answered). The owner calls nsq_connection_check on a periodic tick.

    API in call order: nsq_connection_new, nsq_connection_open, then from
    the loop nsq_connection_read_monitor, _recv + _handle, _check, _rdy,
    _fin, _req, _touch, _flush, _cls; nsq_connection_destroy.
*/
#ifndef NSQ_CONNECTION_H
#define NSQ_CONNECTION_H

#include "nsq_curve.h"
#include "nsq_wire.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _nsq_connection_t nsq_connection_t;

// What every connection of a consumer asks of its broker. Owned by the
// consumer and borrowed by its connections, which read it at each
// handshake, so a change applies from the next one.
typedef struct {
    const char *topic;         // subscription
    const char *channel;       //
    const char *client_id;     // announced in IDENTIFY
    const char *hostname;      // announced in IDENTIFY
    uint32_t heartbeat_ms;     // asked, 0 = the broker's default
    uint32_t msg_timeout_ms;   // asked, 0 = the broker's default; clamped to the broker's maximum
    nsq_curve_client_t curve;  // CURVE keys for each new socket (disabled = plain)
    const char *auth_secret;   // sent in IDENTIFY (NSQ's AUTH); NULL: none
} nsq_connection_settings_t;

// What a frame means for the owner (nsq_connection_handle).
typedef enum {
    NSQ_CONNECTION_NOTHING,     // handled here (an answer, a heartbeat, a logged error)
    NSQ_CONNECTION_MESSAGES,    // frame->messages is for the owner to deliver
    NSQ_CONNECTION_IDENTIFIED,  // the broker answered IDENTIFY: RDY may be sent now
    NSQ_CONNECTION_CLOSE_WAIT,  // the broker answered CLS: it sends nothing more
    NSQ_CONNECTION_RESET,       // the socket was dropped; a new one comes later
} nsq_connection_event_t;

// A connection to endpoint ("tcp://host:port", borrowed: it must outlive
// the connection), without a socket yet. Each socket it opens is read by
// reader(loop, sock, reader_arg). settings are borrowed. NULL if out of
// memory. Caller owns the result.
nsq_connection_t *nsq_connection_new(const char *endpoint,
                                     const nsq_connection_settings_t *settings, zloop_t *loop,
                                     zloop_reader_fn *reader, void *reader_arg);

// Sends what is queued and tells the broker the socket goes away (so it
// requeues what we hold at once, instead of after two missed heartbeats),
// closes the socket and frees the connection. Nulls *self_p; accepts NULL.
void nsq_connection_destroy(nsq_connection_t **self_p);

// Opens a fresh socket and sends IDENTIFY and SUB. Returns 0, or -1 if no
// socket could be made (nsq_connection_check retries after the backoff).
int nsq_connection_open(nsq_connection_t *self);

// The periodic check: reopens a connection whose wait is over (when
// reconnect is set), resets one whose broker has been silent for two
// heartbeat intervals plus a second, and sends a heartbeat on one that has
// sent nothing for an interval. now is zclock_mono().
void nsq_connection_check(nsq_connection_t *self, int64_t now, bool reconnect);

// If sock is the connection's disconnect monitor, reads its event (a lost
// TCP connection starts a new session at once) and returns true; false for
// any other socket.
bool nsq_connection_read_monitor(nsq_connection_t *self, zsock_t *sock);

// Reads one frame if one waits, unpacked with allocator (the caller frees
// it, or resets the arena). Returns 0 with *frame set (NULL if the frame
// did not unpack: that is logged), or -1 if nothing waits.
int nsq_connection_recv(nsq_connection_t *self, ProtobufCAllocator *allocator, Nsq__Frame **frame);

// Handles frame (answers, errors, heartbeats) and says what the owner must
// do about it. frame stays the caller's.
nsq_connection_event_t nsq_connection_handle(nsq_connection_t *self, const Nsq__Frame *frame);

// Announces RDY count unless it is what the broker has, or the handshake
// is not done yet (IDENTIFIED will come: announce then).
void nsq_connection_rdy(nsq_connection_t *self, uint32_t count);

// Queues a FIN, or a REQ after delay_ms, for id. A full batch, or a REQ
// with another delay than the queued ones, sends what is queued first.
// The rest leaves with nsq_connection_flush.
void nsq_connection_fin(nsq_connection_t *self, uint64_t id);
void nsq_connection_req(nsq_connection_t *self, uint64_t id, uint32_t delay_ms);

// Sends TOUCH for id now.
void nsq_connection_touch(nsq_connection_t *self, uint64_t id);

// Sends the queued FIN and REQ batches, one frame each.
void nsq_connection_flush(nsq_connection_t *self);

// Sends CLS (the broker stops sending and answers CLOSE_WAIT).
void nsq_connection_cls(nsq_connection_t *self);

// The endpoint, as given to new. Borrowed.
const char *nsq_connection_endpoint(const nsq_connection_t *self);

// The current socket, NULL while waiting to reconnect. Borrowed.
zsock_t *nsq_connection_sock(const nsq_connection_t *self);

// Bumped each time the socket goes away.
uint64_t nsq_connection_generation(const nsq_connection_t *self);

// True while the socket is open and its broker has answered IDENTIFY.
bool nsq_connection_is_ready(const nsq_connection_t *self);

// True once the broker answered this socket's CLS.
bool nsq_connection_close_waited(const nsq_connection_t *self);

// The broker's max_rdy_count (2500 until it says).
uint32_t nsq_connection_max_rdy(const nsq_connection_t *self);

// This socket's msg_timeout: what the broker said, or what we asked for,
// or NSQ's 60 s.
uint32_t nsq_connection_msg_timeout(const nsq_connection_t *self);

// Self-test; returns 0 on success.
int nsq_connection_test(void);

#endif
