/*  nsq_wire - pack, send and unpack the protobuf frames of nsq.proto
    SPDX-License-Identifier: MIT

    Clients (DEALER) send one Command per ZeroMQ message; brokers (ROUTER)
    send [identity][Frame]. Packing goes straight into a zmq_msg_t so a frame
    is written once and never copied again.

    A ROUTER send is all or nothing: the frame is packed before the identity
    part leaves, and libzmq checks the peer's high-water mark on the first
    part only, so once the identity is queued the body follows. A half-sent
    message would glue the next message, identity and all, onto this peer.

    API: nsq_wire_send_command, nsq_wire_send_pub, nsq_wire_send_frame, nsq_wire_command_unpack,
    nsq_wire_frame_unpack, nsq_wire_send_lookup_command,
    nsq_wire_send_lookup_frame (free results with nsq__*__free_unpacked(x, NULL));
    nsq_wire_pack_frame + nsq_wire_send_routed for a caller that keeps a frame it
    could not send yet; nsq_wire_bytes and nsq_wire_bytes_equal (names and
    hosts are `bytes` fields, see nsq.proto).
*/
#ifndef NSQ_WIRE_H
#define NSQ_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "nsq.pb-c.h"

#define NSQ_WIRE_VERSION 1

// Largest frame or command we pack: protobuf messages are limited to 2 GiB.
#define NSQ_WIRE_PACKED_MAX ((size_t) 0x7fffffff)

// Packs command (version is set to NSQ_WIRE_VERSION) and sends it as one
// frame on a raw libzmq socket. flags as for zmq_msg_send (e.g. ZMQ_DONTWAIT).
// Returns 0, or -1 with errno from libzmq.
int nsq_wire_send_command(void *socket, Nsq__Command *command, int flags);

// Sends a Pub command numbered seq: count bodies (sizes[i] bytes at
// bodies[i]) to topic, visible after defer_ms. Returns as
// nsq_wire_send_command (EINVAL: no topic or no body; ENOMEM).
int nsq_wire_send_pub(void *socket, uint64_t seq, const char *topic, const void *const *bodies,
                      const size_t *sizes, size_t count, uint32_t defer_ms, int flags);

// Sends [identity][packed frame] on a raw ROUTER socket, all or nothing.
// Returns 0, or -1 with errno (EHOSTUNREACH when the peer is gone and
// ROUTER_MANDATORY is set, EAGAIN when its queue is full and flags has
// ZMQ_DONTWAIT, EMSGSIZE above NSQ_WIRE_PACKED_MAX, ENOMEM); after -1
// nothing of it was sent.
int nsq_wire_send_frame(void *socket, const void *identity, size_t identity_size, Nsq__Frame *frame,
                        int flags);

// The broker -> lookupd protocol, as the two functions above: a broker
// (DEALER) sends LookupCommands, lookupd (ROUTER) answers with
// [identity][LookupFrame]. Unpack with nsq__lookup_command__unpack(NULL, ..)
// and nsq__lookup_frame__unpack(NULL, ..).
int nsq_wire_send_lookup_command(void *socket, Nsq__LookupCommand *command, int flags);
int nsq_wire_send_lookup_frame(void *socket, const void *identity, size_t identity_size,
                               Nsq__LookupFrame *frame, int flags);

// Packs frame (version is set to NSQ_WIRE_VERSION) into *packed, which the
// caller then owns (zmq_msg_close). Returns 0, or -1 with errno EMSGSIZE
// (above NSQ_WIRE_PACKED_MAX) or ENOMEM; *packed is then not initialised.
int nsq_wire_pack_frame(Nsq__Frame *frame, zmq_msg_t *packed);

// Sends [identity][*packed] on a raw ROUTER socket as one message, all or
// nothing. Returns 0 (*packed is then empty), or -1 with errno as
// nsq_wire_send_frame and *packed unchanged: nothing was sent and the caller
// may send it later. The caller closes *packed in both cases.
int nsq_wire_send_routed(void *socket, const void *identity, size_t identity_size,
                         zmq_msg_t *packed, int flags);

// Unpacks one Command; NULL if the bytes are not a valid Command.
// Caller owns the result (nsq__command__free_unpacked(result, NULL)).
Nsq__Command *nsq_wire_command_unpack(const void *data, size_t size);

// Unpacks one Frame; NULL if the bytes are not a valid Frame.
// Caller owns the result (nsq__frame__free_unpacked(result, NULL)).
Nsq__Frame *nsq_wire_frame_unpack(const void *data, size_t size);

// A bytes field that borrows text's characters (the NUL excluded), to fill
// the name and host fields of a command. text must outlive the command.
ProtobufCBinaryData nsq_wire_bytes(const char *text);

// True if field holds exactly the characters of text.
bool nsq_wire_bytes_equal(ProtobufCBinaryData field, const char *text);

// Self-test; returns 0 on success.
int nsq_wire_test(void);

#endif
