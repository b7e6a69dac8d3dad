/*  nsq_wire - pack, send and unpack the protobuf frames of nsq.proto
    SPDX-License-Identifier: MIT
*/
#include "nsq_wire.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

static int s_send_packed(void *socket, const ProtobufCMessage *message, int flags)
{
    size_t size = protobuf_c_message_get_packed_size(message);
    zmq_msg_t frame;
    if (zmq_msg_init_size(&frame, size))
        return -1;
    protobuf_c_message_pack(message, zmq_msg_data(&frame));
    if (zmq_msg_send(&frame, socket, flags) < 0) {
        int saved = errno;
        zmq_msg_close(&frame);
        errno = saved;
        return -1;
    }
    return 0;
}

int nsq_wire_send_command(void *socket, Nsq__Command *command, int flags)
{
    command->version = NSQ_WIRE_VERSION;
    return s_send_packed(socket, &command->base, flags);
}

int nsq_wire_send_frame(void *socket, const void *identity, size_t identity_size, Nsq__Frame *frame,
                        int flags)
{
    frame->version = NSQ_WIRE_VERSION;
    if (zmq_send(socket, identity, identity_size, ZMQ_SNDMORE | flags) < 0)
        return -1;
    return s_send_packed(socket, &frame->base, flags);
}

int nsq_wire_send_lookup_command(void *socket, Nsq__LookupCommand *command, int flags)
{
    command->version = NSQ_WIRE_VERSION;
    return s_send_packed(socket, &command->base, flags);
}

int nsq_wire_send_lookup_frame(void *socket, const void *identity, size_t identity_size,
                               Nsq__LookupFrame *frame, int flags)
{
    frame->version = NSQ_WIRE_VERSION;
    if (zmq_send(socket, identity, identity_size, ZMQ_SNDMORE | flags) < 0)
        return -1;
    return s_send_packed(socket, &frame->base, flags);
}

Nsq__Command *nsq_wire_command_unpack(const void *data, size_t size)
{
    return nsq__command__unpack(NULL, size, data);
}

Nsq__Frame *nsq_wire_frame_unpack(const void *data, size_t size)
{
    return nsq__frame__unpack(NULL, size, data);
}

ProtobufCBinaryData nsq_wire_bytes(const char *text)
{
    return (ProtobufCBinaryData){strlen(text), (uint8_t *) text};
}

bool nsq_wire_bytes_equal(ProtobufCBinaryData field, const char *text)
{
    size_t size = strlen(text);
    return field.len == size && (size == 0 || memcmp(field.data, text, size) == 0);
}

int nsq_wire_test(void)
{
    Nsq__Command command = NSQ__COMMAND__INIT;
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = nsq_wire_bytes("orders");
    sub.channel = nsq_wire_bytes("billing");
    command.seq = 7;
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    uint8_t buffer[128];
    size_t size = nsq__command__pack(&command, buffer);
    // The bytes a `string` schema writes: seq 7, then Sub (field 11) with
    // its two length-delimited fields. Names as `bytes` change none of them.
    static const uint8_t as_string[] = "\x10\x07\x5a\x11\x0a\x06"
                                       "orders"
                                       "\x12\x07"
                                       "billing";
    if (size != sizeof as_string - 1 || memcmp(buffer, as_string, size) != 0)
        return -1;
    Nsq__Command *decoded = nsq_wire_command_unpack(buffer, size);
    if (!decoded || decoded->cmd_case != NSQ__COMMAND__CMD_SUB || decoded->seq != 7
        || !nsq_wire_bytes_equal(decoded->sub->topic, "orders")
        || !nsq_wire_bytes_equal(decoded->sub->channel, "billing"))
        return -1;
    nsq__command__free_unpacked(decoded, NULL);

    // An embedded NUL reaches the receiver with every byte after it.
    static const uint8_t with_nul[] = "\x5a\x07\x0a\x03"
                                      "a\x00"
                                      "b"
                                      "\x12\x00";
    decoded = nsq_wire_command_unpack(with_nul, sizeof with_nul - 1);
    bool whole = decoded && decoded->cmd_case == NSQ__COMMAND__CMD_SUB
                 && decoded->sub->topic.len == 3 && memcmp(decoded->sub->topic.data, "a\0b", 3) == 0
                 && decoded->sub->channel.len == 0;
    if (decoded)
        nsq__command__free_unpacked(decoded, NULL);
    if (!whole)
        return -1;

    // Garbage must be refused, not crash.
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
    if (nsq_wire_command_unpack(garbage, sizeof garbage) != NULL)
        return -1;
    return 0;
}
