/*  nsq_peer - the peers of a ROUTER: reading a routed message, a peer's
    key, and where a message came from, as "IP:port"
    SPDX-License-Identifier: MIT

    libzmq tells a received message's peer IP (the "Peer-Address"
    metadata) but not its port. The message also names the descriptor of
    its TCP connection (ZMQ_SRCFD, deprecated but kept by libzmq 4.3),
    whose getpeername() has both. That descriptor belongs to libzmq's I/O
    thread and could have been closed and reused by the time we look, so
    the port is taken only when the descriptor's peer IP is the one the
    metadata names; otherwise the IP alone is reported.

    API: nsq_peer_recv, nsq_peer_key, nsq_peer_address.
*/
#ifndef NSQ_PEER_H
#define NSQ_PEER_H

#include <stddef.h>
#include <zmq.h>

// Longest result: "[" IPv6 "]:" port, NUL.
#define NSQ_PEER_ADDRESS_MAX 64

// Reads one routed message, [identity][body], from router without
// waiting. identity and body must be initialised; the caller closes them.
// Returns -1 if nothing is waiting, 0 for a body of one frame, 1 if the
// message had more frames (our protocols speak single frames: the rest is
// read and dropped, body holds the first).
int nsq_peer_recv(void *router, zmq_msg_t *identity, zmq_msg_t *body);

// Writes identity (size bytes) in hex into key (2 * size + 1 bytes): the
// key a ROUTER's peer is known by.
void nsq_peer_key(const void *identity, size_t size, char *key);

// Writes the sender of msg (a message received on a TCP socket) into out:
// "IP:port", "[IPv6]:port", the IP alone when the port cannot be known, or
// "" when libzmq knows no address (inproc, ipc). Returns out.
const char *nsq_peer_address(zmq_msg_t *msg, char *out, size_t size);

// Self-test; returns 0 on success.
int nsq_peer_test(void);

#endif
