/*  broker_tcp_commands - NSQ TCP V2 commands on the server: each command
    the I/O thread parsed becomes one server operation, and its result
    nsqd's answer
    SPDX-License-Identifier: MIT

    The parser (broker_tcp_codec.c) has made every check that needs only
    the bytes and the protocol state, with nsqd's codes; what is left here
    is what the core decides: names against the core's rules, credit,
    ids in flight, publishing. Results map to nsqd's codes and texts, and
    nsqd's split holds: E_FIN_FAILED, E_REQ_FAILED and E_TOUCH_FAILED
    leave the connection open, every other error closes it.

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
} broker_tcp_outcome_t;

// Carries out event's command (a RECEIVED event; its messages are taken)
// for session, queueing the answer. On BROKER_TCP_DURABLE, *wait is the
// publish's place for broker_server_wait_durable.
broker_tcp_outcome_t broker_tcp_commands_handle(broker_server_t *server,
                                                broker_tcp_session_t *session,
                                                broker_tcp_event_t *event, broker_tcp_wait_t **wait,
                                                int64_t now);

#endif
