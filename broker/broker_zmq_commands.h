/*  broker_zmq_commands - the ZeroMQ protocol's commands: each Command of
    nsq.proto becomes one server operation, and its result an answer frame
    SPDX-License-Identifier: MIT

    State machine per client (kept by the server): NEW --IDENTIFY-->
    IDENTIFIED --SUB--> SUBSCRIBED --CLS--> CLOSING. PUB is allowed in any
    state (producers need not identify). Errors are frames with an E_*
    code; only protocol misuse that leaves the client in an unknown state
    is fatal. FIN/REQ/TOUCH failures are non-fatal, as in NSQ.

    What the door must do after a command comes back as an outcome, so
    this file never reaches into the door: close the client, or wait for
    the durable sync before answering a PUB.

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
} broker_zmq_outcome_t;

// Handles one command from peer (whose client is set) on server.
broker_zmq_outcome_t broker_zmq_commands_handle(broker_server_t *server, broker_zmq_peer_t *peer,
                                                const Nsq__Command *command, int64_t now);

// Answers a durable PUB of command seq: OK, or E_PUB_FAILED when its sync
// failed.
void broker_zmq_commands_answer_durable(broker_zmq_peer_t *peer, uint64_t seq,
                                        broker_result_t result, int64_t now);

#endif
