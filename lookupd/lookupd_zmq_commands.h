/*  lookupd_zmq_commands - the brokers' door: each LookupCommand a broker
    sends becomes one registry operation, and its outcome a reply frame
    SPDX-License-Identifier: MIT

    A broker identifies first (IDENTIFY: its addresses and ports), then
    registers and unregisters topics and channels (REGISTER, UNREGISTER),
    says it is alive (HEARTBEAT) and leaves (GOODBYE); CHANNELS asks which
    channels a topic has and may come before IDENTIFY. A command from a
    broker the registry does not know gets the fatal E_NOT_IDENTIFIED: the
    broker identifies again and re-registers everything. Every name and
    host is checked byte by byte before it reaches the registry; bad input
    gets an E_* error frame, one debug line and a count, never more.

    The context is a plain struct of borrowed pointers, not a class: it
    owns nothing, and the actor builds it per frame from its own fields
    (so its start-up may bind the sockets in any order, and the fuzz
    targets run it with an unbound ROUTER that drops every reply).

    API: lookupd_zmq_commands_handle.
*/
#ifndef LOOKUPD_ZMQ_COMMANDS_H
#define LOOKUPD_ZMQ_COMMANDS_H

#include <czmq.h>
#include <stdint.h>

#include "lookupd_registry.h"

typedef struct {
    lookupd_registry_t *registry;  // what the commands act on
    zsock_t *router;               // where replies go (an unbound ROUTER drops them)
    const char *hostname;          // ours, for the IDENTIFY reply
    uint16_t http_port, zmq_port;  // ours, for the IDENTIFY reply
    uint64_t *bad_commands;        // counts frames that were not valid commands
} lookupd_zmq_commands_t;

// Handles one frame from the broker whose ROUTER identity is identity
// (1..255 bytes) and whose IP address is address: body is decoded as a
// LookupCommand, applied to the registry and answered on the router; when
// it is not one (body NULL: a multi-frame message) it is counted and
// answered E_BAD_COMMAND. Borrows everything; a reply that cannot be sent
// is dropped with a log line.
void lookupd_zmq_commands_handle(const lookupd_zmq_commands_t *commands, const void *identity,
                                 size_t identity_size, const char *address, const void *body,
                                 size_t size);

#endif
