/*  nsq_wire_messages - packs a Messages Frame (nsq.proto) by hand, the one
    frame the broker writes per delivery batch
    SPDX-License-Identifier: MIT

    protobuf-c walks its descriptors twice per field (once for the size,
    once to write): packing a Frame of 100-byte messages cost the core
    thread about 880 instructions per message, more than a quarter of
    everything it does to publish and deliver one. This writes the same
    bytes directly: Frame{version, messages: Messages{repeated Message{id,
    timestamp, attempts, body}}}, fields in number order, proto3 zero
    values left out, as protobuf-c does (the self-test compares the two
    byte for byte). Readers still unpack with nsq__frame__unpack.

    API: nsq_wire_pack_messages.
*/
#ifndef NSQ_WIRE_MESSAGES_H
#define NSQ_WIRE_MESSAGES_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

// Most messages packed into one frame.
#define NSQ_WIRE_MESSAGES_MAX 256

// One message to pack; body is borrowed.
typedef struct {
    uint64_t id;        // Message.id
    int64_t timestamp;  // Message.timestamp
    uint32_t attempts;  // Message.attempts
    const void *body;   // Message.body, size bytes
    size_t size;        //
} nsq_wire_message_t;

// Packs count (1..NSQ_WIRE_MESSAGES_MAX) messages as a Frame with version
// NSQ_WIRE_VERSION and a Messages list into *packed (initialised; the
// caller closes it). Returns 0, or -1 with errno (EINVAL: count out of
// range; EMSGSIZE: above NSQ_WIRE_PACKED_MAX; ENOMEM), *packed then not
// initialised.
int nsq_wire_pack_messages(const nsq_wire_message_t *messages, size_t count, zmq_msg_t *packed);

// Self-test; returns 0 on success.
int nsq_wire_messages_test(void);

#endif
