/*  nsq_wire - pack, send and unpack the protobuf frames of nsq.proto
    SPDX-License-Identifier: MIT
*/
#include "nsq_wire.h"

#include <czmq.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

// Packs message into *packed. Returns 0, or -1 (EMSGSIZE, ENOMEM) with
// *packed not initialised.
static int s_pack(const ProtobufCMessage *message, zmq_msg_t *packed)
{
    size_t size = protobuf_c_message_get_packed_size(message);
    if (size > NSQ_WIRE_PACKED_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (zmq_msg_init_size(packed, size))
        return -1;
    protobuf_c_message_pack(message, zmq_msg_data(packed));
    return 0;
}

// Sends message as one frame (DEALER side).
static int s_send_packed(void *socket, const ProtobufCMessage *message, int flags)
{
    zmq_msg_t frame;
    if (s_pack(message, &frame))
        return -1;
    if (zmq_msg_send(&frame, socket, flags) < 0) {
        int saved = errno;
        zmq_msg_close(&frame);
        errno = saved;
        return -1;
    }
    return 0;
}

int nsq_wire_send_routed(void *socket, const void *identity, size_t identity_size,
                         zmq_msg_t *packed, int flags)
{
    if (zmq_send(socket, identity, identity_size, ZMQ_SNDMORE | flags) < 0)
        return -1;
    // The identity is queued: libzmq accepts the rest of the message
    // without another high-water mark check, so only a signal or a dying
    // socket can stop it, and a blocking retry finishes the message.
    int rc;
    while ((rc = zmq_msg_send(packed, socket, flags & ~ZMQ_DONTWAIT)) < 0 && errno == EINTR)
        ;
    return rc < 0 ? -1 : 0;
}

// Packs message and sends it routed; -1 leaves nothing sent.
static int s_send_routed(void *socket, const void *identity, size_t identity_size,
                         const ProtobufCMessage *message, int flags)
{
    zmq_msg_t packed;
    if (s_pack(message, &packed))
        return -1;
    int rc = nsq_wire_send_routed(socket, identity, identity_size, &packed, flags);
    int saved = errno;
    zmq_msg_close(&packed);
    errno = saved;
    return rc;
}

int nsq_wire_pack_frame(Nsq__Frame *frame, zmq_msg_t *packed)
{
    frame->version = NSQ_WIRE_VERSION;
    return s_pack(&frame->base, packed);
}

int nsq_wire_send_command(void *socket, Nsq__Command *command, int flags)
{
    command->version = NSQ_WIRE_VERSION;
    return s_send_packed(socket, &command->base, flags);
}

int nsq_wire_send_pub(void *socket, uint64_t seq, const char *topic, const void *const *bodies,
                      const size_t *sizes, size_t count, uint32_t defer_ms, int flags)
{
    ProtobufCBinaryData one;
    ProtobufCBinaryData *data = count == 1 ? &one : calloc(count, sizeof *data);
    if (!topic || !count || !data) {
        errno = data ? EINVAL : ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        data[i] = (ProtobufCBinaryData){sizes[i], (uint8_t *) bodies[i]};
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.topic = nsq_wire_bytes(topic);
    pub.n_bodies = count;
    pub.bodies = data;
    pub.defer_ms = defer_ms;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    command.seq = seq;
    int rc = nsq_wire_send_command(socket, &command, flags);
    if (data != &one)
        free(data);
    return rc;
}

int nsq_wire_send_frame(void *socket, const void *identity, size_t identity_size, Nsq__Frame *frame,
                        int flags)
{
    frame->version = NSQ_WIRE_VERSION;
    return s_send_routed(socket, identity, identity_size, &frame->base, flags);
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
    return s_send_routed(socket, identity, identity_size, &frame->base, flags);
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

// ---- self-test -------------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "nsq_wire_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);         \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// Receives one message on dealer within timeout_ms: returns the seq of the
// Response it holds, or -1 if none came, it has several parts or is not a
// Response.
static int64_t s_test_response(void *dealer, int timeout_ms)
{
    zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) != 1)
        return -1;
    zmq_msg_t part;
    zmq_msg_init(&part);
    zmq_msg_recv(&part, dealer, 0);
    bool more = zmq_msg_more(&part);
    Nsq__Frame *frame = nsq_wire_frame_unpack(zmq_msg_data(&part), zmq_msg_size(&part));
    zmq_msg_close(&part);
    while (more) {  // drain what a glued message left behind
        zmq_msg_init(&part);
        zmq_msg_recv(&part, dealer, 0);
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
        nsq__frame__free_unpacked(frame, NULL);
        frame = NULL;
    }
    int64_t seq = frame && frame->frame_case == NSQ__FRAME__FRAME_RESPONSE
                      ? (int64_t) frame->response->seq
                      : -1;
    nsq__frame__free_unpacked(frame, NULL);
    return seq;
}

static int s_test_send_response(void *router, const char *peer, uint64_t seq)
{
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = seq;
    response.text = "OK";
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
    frame.response = &response;
    return nsq_wire_send_frame(router, peer, strlen(peer), &frame, ZMQ_DONTWAIT);
}

// A ROUTER with two peers "A" and "B" on inproc; queues of hwm messages.
static void *s_test_router(void *context, const char *endpoint, int hwm, void **a, void **b)
{
    void *router = zmq_socket(context, ZMQ_ROUTER);
    int on = 1, zero = 0;
    zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &on, sizeof on);
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_bind(router, endpoint);
    void **dealers[] = {a, b};
    for (int i = 0; i < 2; i++) {
        *dealers[i] = zmq_socket(context, ZMQ_DEALER);
        zmq_setsockopt(*dealers[i], ZMQ_ROUTING_ID, i ? "B" : "A", 1);
        zmq_setsockopt(*dealers[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(*dealers[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_connect(*dealers[i], endpoint);
    }
    return router;
}

// A frame that cannot be packed (its body claims a petabyte) fails before
// anything is sent: the next frame, to another peer, arrives whole and the
// first peer gets nothing. A half-sent frame would glue them together.
static int s_test_unpackable(void *context)
{
    void *a = NULL, *b = NULL;
    void *router = s_test_router(context, "inproc://nsq-wire-unpackable", 1000, &a, &b);
    int rc = -1;
    uint8_t byte = 0;
    Nsq__Message message = NSQ__MESSAGE__INIT;
    message.body.data = &byte;
    message.body.len = (size_t) 1 << 50;  // never read: the size is checked first
    Nsq__Message *list[] = {&message};
    Nsq__Messages messages = NSQ__MESSAGES__INIT;
    messages.n_messages = 1;
    messages.messages = list;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_MESSAGES;
    frame.messages = &messages;
    S_CHECK(nsq_wire_send_frame(router, "A", 1, &frame, ZMQ_DONTWAIT) == -1);
    S_CHECK(s_test_send_response(router, "B", 7) == 0);
    S_CHECK(s_test_response(b, 1000) == 7);
    S_CHECK(s_test_response(a, 100) == -1);
    rc = 0;
done:
    zmq_close(a);
    zmq_close(b);
    zmq_close(router);
    return rc;
}

// A send that meets a full queue (EAGAIN) leaves nothing behind: the other
// peer gets its frame whole, the full peer gets exactly the frames that
// were sent, and once it has read them it can be sent to again.
static int s_test_full_queue(void *context)
{
    void *a = NULL, *b = NULL;
    void *router = s_test_router(context, "inproc://nsq-wire-full", 4, &a, &b);
    int rc = -1;
    uint64_t sent = 0;
    while (sent < 1000 && s_test_send_response(router, "A", sent) == 0)
        sent++;
    S_CHECK(sent < 1000 && errno == EAGAIN);
    S_CHECK(s_test_send_response(router, "A", 999) == -1 && errno == EAGAIN);
    S_CHECK(s_test_send_response(router, "B", 1) == 0);
    S_CHECK(s_test_response(b, 1000) == 1);
    for (uint64_t seq = 0; seq < sent; seq++)
        S_CHECK(s_test_response(a, 1000) == (int64_t) seq);
    S_CHECK(s_test_response(a, 100) == -1);
    // The router learns that A read its queue when it next processes
    // commands (ZMQ_EVENTS forces that); until then A still looks full.
    int64_t deadline = zclock_mono() + 1000;
    int events;
    size_t events_size = sizeof events;
    while (s_test_send_response(router, "A", 5) != 0 && errno == EAGAIN
           && zclock_mono() < deadline) {
        zmq_getsockopt(router, ZMQ_EVENTS, &events, &events_size);
        zclock_sleep(1);
    }
    S_CHECK(s_test_response(a, 1000) == 5);
    rc = 0;
done:
    zmq_close(a);
    zmq_close(b);
    zmq_close(router);
    return rc;
}

int nsq_wire_test(void)
{
    void *context = zmq_ctx_new();
    int rc = -1;
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
    Nsq__Command *decoded = NULL;
    S_CHECK(size == sizeof as_string - 1 && memcmp(buffer, as_string, size) == 0);
    decoded = nsq_wire_command_unpack(buffer, size);
    S_CHECK(decoded && decoded->cmd_case == NSQ__COMMAND__CMD_SUB && decoded->seq == 7
            && nsq_wire_bytes_equal(decoded->sub->topic, "orders")
            && nsq_wire_bytes_equal(decoded->sub->channel, "billing"));
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
    nsq__command__free_unpacked(decoded, NULL);
    decoded = NULL;
    S_CHECK(whole);

    // Garbage must be refused, not crash.
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
    S_CHECK(nsq_wire_command_unpack(garbage, sizeof garbage) == NULL);
    S_CHECK(s_test_unpackable(context) == 0);
    S_CHECK(s_test_full_queue(context) == 0);
    rc = 0;
done:
    nsq__command__free_unpacked(decoded, NULL);
    zmq_ctx_term(context);
    return rc;
}
