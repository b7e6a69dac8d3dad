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

int nsq_wire_test(void)
{
    Nsq__Command command = NSQ__COMMAND__INIT;
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = "orders";
    sub.channel = "billing";
    command.seq = 7;
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    uint8_t buffer[128];
    size_t size = nsq__command__pack(&command, buffer);
    Nsq__Command *decoded = nsq_wire_command_unpack(buffer, size);
    if (!decoded || decoded->cmd_case != NSQ__COMMAND__CMD_SUB || decoded->seq != 7
        || strcmp(decoded->sub->topic, "orders") || strcmp(decoded->sub->channel, "billing"))
        return -1;
    nsq__command__free_unpacked(decoded, NULL);

    // Garbage must be refused, not crash.
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
    if (nsq_wire_command_unpack(garbage, sizeof garbage) != NULL)
        return -1;
    return 0;
}
