/*  broker_tcp - the NSQ TCP door: go-nsq, pynsq, nsqjs and NSQ's own tools
    on --tcp-address, speaking protocol V2 to the same core as the ZeroMQ
    door
    SPDX-License-Identifier: MIT

    The I/O thread (broker_tcp_io) owns the sockets, streams, parsing,
    output buffering, heartbeats and liveness; this door runs on the core
    thread and turns its events into server operations: OPENED opens a
    server client (a session, broker_tcp_session.h), each command becomes
    one operation (broker_tcp_commands.c), SECURED tells the client its
    TLS common name (for the auth server), BLOCKED/UNBLOCKED switch the
    client's deliveries off and on, CLOSED closes the client (its
    in-flight messages go back at once). The clients' sink writes nsqd's
    message frames. What the sessions queue goes back to the I/O thread
    once per batch (broker_tcp_flush).

    A command the auth server must be asked about first (AUTH, or a SUB or
    publish whose grant is past its ttl) is held in its session, and so is
    everything the client sends after it; when the answer is in (by
    connection id: a session that closed meanwhile is not found) the held
    commands are handled again, in order, until one is held anew. This is
    the ZeroMQ door's approach (broker_zmq.c); what is held differs (parsed
    events here, raw frames there), so each door keeps its own list.

    Liveness is the I/O thread's (a client silent for two heartbeat
    intervals is disconnected, which arrives here as CLOSED), so the door
    keeps its clients heard for the server (broker_tcp_tick).

    Runs on the broker actor's thread. API in call order: broker_tcp_new,
    broker_tcp_port, broker_tcp_fd, broker_tcp_take, broker_tcp_tick,
    broker_tcp_flush, broker_tcp_destroy.
*/
#ifndef BROKER_TCP_H
#define BROKER_TCP_H

#include <stddef.h>
#include <stdint.h>

#include "broker_config.h"
#include "broker_server.h"

typedef struct _broker_tcp_t broker_tcp_t;

// Loads the TLS credentials (--tls-cert, --tls-key, if set) and starts
// listening on config->tcp_address with the I/O thread. server is
// borrowed and must outlive the door's events (see broker_tcp_destroy).
// Caller owns the result; NULL with a one-line reason in error.
broker_tcp_t *broker_tcp_new(broker_server_t *server, const broker_config_t *config, char *error,
                             size_t size);

// Stops the I/O thread (closing every connection) and frees the sessions,
// without calling the server (its clients are its own to free). Nulls
// *self_p; accepts NULL.
void broker_tcp_destroy(broker_tcp_t **self_p);

// The bound port.
uint16_t broker_tcp_port(const broker_tcp_t *self);

// The descriptor that is readable while events wait (for zloop).
int broker_tcp_fd(const broker_tcp_t *self);

// Handles every waiting event.
void broker_tcp_take(broker_tcp_t *self, int64_t now);

// The periodic work: every connected client counts as heard (the I/O
// thread disconnects the silent ones).
void broker_tcp_tick(broker_tcp_t *self, int64_t now);

// After each batch of work (the door's, the other doors', the server's
// tick): finishes sampled-out messages and hands what the sessions queued
// to the I/O thread in one wake-up.
void broker_tcp_flush(broker_tcp_t *self, int64_t now);

// Self-test (tests/broker_tcp_test.c: a broker actor in durable mode);
// returns 0 on success.
int broker_tcp_test(void);

#endif
