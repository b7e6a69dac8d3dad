/*  broker_tcp_commands - NSQ TCP V2 commands on the server: each command
    the I/O thread parsed becomes one server operation, and its result
    nsqd's answer
    SPDX-License-Identifier: MIT

    The parser (broker_tcp_codec.c) has made every check that needs only
    the bytes and the protocol state, with nsqd's codes; what is left here
    is what the core decides: names against the core's rules, credit,
    ids in flight, publishing, and authorization (AUTH; with an auth
    server, a grant for every SUB and publish, as nsqd's CheckAuth). Results map to nsqd's codes and
   texts, and nsqd's split holds: E_FIN_FAILED, E_REQ_FAILED and E_TOUCH_FAILED leave the connection
   open, every other error closes it.

    Runs on the core thread. API: broker_tcp_commands_handle.
*/
#ifndef BROKER_TCP_COMMANDS_H
#define BROKER_TCP_COMMANDS_H

#include "broker_server.h"
#include "broker_tcp_connection.h"
#include "broker_tcp_session.h"

typedef enum {
    BROKER_TCP_ANSWERED,  // the answer is queued in the session
    BROKER_TCP_DURABLE,   // a durable publish: register *wait with the server
    BROKER_TCP_HELD,      // the auth server is asked: nothing done, hold the event
} broker_tcp_outcome_t;

// What the door's on_auth callback gets for a held command.
typedef struct {
    void *door;           // broker_tcp_session_door of the session
    uint64_t connection;  // its connection id (the session may be gone by then)
} broker_tcp_auth_wait_t;

// Carries out event's command (a RECEIVED event; its messages are taken,
// except on BROKER_TCP_HELD) for session, queueing the answer. On
// BROKER_TCP_DURABLE, *wait is the publish's place for
// broker_server_wait_durable. On BROKER_TCP_HELD nothing of it was done:
// on_auth is called (with a broker_tcp_auth_wait_t it must free) once the
// auth server answered, and the event is to be handled again then.
broker_tcp_outcome_t broker_tcp_commands_handle(broker_server_t *server,
                                                broker_tcp_session_t *session,
                                                broker_tcp_event_t *event, broker_tcp_wait_t **wait,
                                                broker_auth_wait_fn *on_auth, int64_t now);

#endif
