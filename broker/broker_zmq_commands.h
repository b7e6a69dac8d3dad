/*  broker_zmq_commands - the ZeroMQ protocol's commands: each Command of
    nsq.proto becomes one server operation, and its result an answer frame
    SPDX-License-Identifier: MIT

    State machine per client (kept by the server): NEW --IDENTIFY-->
    IDENTIFIED --SUB--> SUBSCRIBED --CLS--> CLOSING. PUB is allowed in any
    state (producers need not identify). Errors are frames with an E_*
    code; only protocol misuse that leaves the client in an unknown state
    is fatal. FIN/REQ/TOUCH failures are non-fatal, as in NSQ.

    What the door must do after a command comes back as an outcome, so
    this file never reaches into the door: close the client, wait for the
    durable sync before answering a PUB, or hold the command (and what the
    peer sends after it) until the auth server answered, then hand it
    over again.

    Authorization (with --auth-http-address): the secret comes in
    IDENTIFY's auth_secret or an Auth command; SUB needs subscribe on the
    topic and channel, PUB publish on the topic (broker_server_authorize).
    E_AUTH_FAILED (the secret refused) is fatal; E_UNAUTHORIZED,
    E_AUTH_FIRST, E_AUTH_UNAVAILABLE and E_AUTH_DISABLED are not: the
    session stays and may try something else, or again later.

    API: broker_zmq_commands_handle, broker_zmq_commands_answer_durable.
*/
#ifndef BROKER_ZMQ_COMMANDS_H
#define BROKER_ZMQ_COMMANDS_H

#include "broker_server.h"
#include "broker_zmq_peer.h"
#include "nsq_wire.h"

typedef enum {
    BROKER_ZMQ_DONE,     // answered (or nothing to answer)
    BROKER_ZMQ_CLOSE,    // the door closes the client and forgets the peer
    BROKER_ZMQ_DURABLE,  // PUB accepted: answer with broker_zmq_commands_answer_durable
                         // once broker_server_wait_durable reports
    BROKER_ZMQ_HOLD,     // the auth server is being asked: keep the command and hand it
                         // over again when on_auth is called
} broker_zmq_outcome_t;

// What on_auth receives (allocated here, freed by on_auth): whose command
// waits.
typedef struct {
    void *door;                     // broker_zmq_peer_owner of the peer
    char key[BROKER_ZMQ_KEY_SIZE];  // the peer's key
} broker_zmq_auth_wait_t;

// Handles one command from peer (whose client is set) on server. on_auth
// is the door's callback for a held command (called with a
// broker_zmq_auth_wait_t it must free).
broker_zmq_outcome_t broker_zmq_commands_handle(broker_server_t *server, broker_zmq_peer_t *peer,
                                                const Nsq__Command *command, int64_t now,
                                                broker_auth_wait_fn *on_auth);

// Answers a durable PUB of command seq: OK, or E_PUB_FAILED when its sync
// failed.
void broker_zmq_commands_answer_durable(broker_zmq_peer_t *peer, uint64_t seq,
                                        broker_result_t result, int64_t now);

#endif
