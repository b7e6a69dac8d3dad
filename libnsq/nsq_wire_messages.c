/*  nsq_wire_messages - packs a Messages Frame (nsq.proto) by hand, the one
    frame the broker writes per delivery batch
    SPDX-License-Identifier: MIT
*/
#include "nsq_wire_messages.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_wire.h"

// Field tags: (number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
#define TAG_FRAME_VERSION     0x08  // Frame.version = 1, varint
#define TAG_FRAME_MESSAGES    0x52  // Frame.messages = 10, length-delimited
#define TAG_MESSAGES_MESSAGE  0x0a  // Messages.messages = 1, length-delimited
#define TAG_MESSAGE_ID        0x09  // Message.id = 1, fixed64
#define TAG_MESSAGE_TIMESTAMP 0x10  // Message.timestamp = 2, varint
#define TAG_MESSAGE_ATTEMPTS  0x18  // Message.attempts = 3, varint
#define TAG_MESSAGE_BODY      0x22  // Message.body = 4, length-delimited

// Bytes of value as a varint: seven bits each.
static size_t s_varint_size(uint64_t value)
{
    return 1 + (size_t) (63 - __builtin_clzll(value | 1)) / 7;
}

static uint8_t *s_varint(uint8_t *at, uint64_t value)
{
    while (value >= 0x80) {
        *at++ = (uint8_t) (value | 0x80);
        value >>= 7;
    }
    *at++ = (uint8_t) value;
    return at;
}

// The packed size of one Message's fields (proto3: zero values left out).
static size_t s_message_size(const nsq_wire_message_t *message)
{
    size_t size = message->id ? 9 : 0;
    if (message->timestamp)
        size += 1 + s_varint_size((uint64_t) message->timestamp);  // negative: ten bytes
    if (message->attempts)
        size += 1 + s_varint_size(message->attempts);
    if (message->size)
        size += 1 + s_varint_size(message->size) + message->size;
    return size;
}

static uint8_t *s_message(uint8_t *at, const nsq_wire_message_t *message, size_t size)
{
    *at++ = TAG_MESSAGES_MESSAGE;
    at = s_varint(at, size);
    if (message->id) {
        *at++ = TAG_MESSAGE_ID;
        uint64_t id = htole64(message->id);  // fixed64: little-endian
        memcpy(at, &id, sizeof id);
        at += sizeof id;
    }
    if (message->timestamp) {
        *at++ = TAG_MESSAGE_TIMESTAMP;
        at = s_varint(at, (uint64_t) message->timestamp);
    }
    if (message->attempts) {
        *at++ = TAG_MESSAGE_ATTEMPTS;
        at = s_varint(at, message->attempts);
    }
    if (message->size) {
        *at++ = TAG_MESSAGE_BODY;
        at = s_varint(at, message->size);
        memcpy(at, message->body, message->size);
        at += message->size;
    }
    return at;
}

int nsq_wire_pack_messages(const nsq_wire_message_t *messages, size_t count, zmq_msg_t *packed)
{
    if (count == 0 || count > NSQ_WIRE_MESSAGES_MAX) {
        errno = EINVAL;
        return -1;
    }
    size_t sizes[NSQ_WIRE_MESSAGES_MAX];
    uint64_t list = 0;  // Messages' packed size
    for (size_t i = 0; i < count; i++) {
        sizes[i] = s_message_size(&messages[i]);
        list += 1 + s_varint_size(sizes[i]) + sizes[i];
    }
    uint64_t total = 2 + 1 + s_varint_size(list) + list;
    if (total > NSQ_WIRE_PACKED_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (zmq_msg_init_size(packed, (size_t) total))
        return -1;
    uint8_t *at = zmq_msg_data(packed);
    *at++ = TAG_FRAME_VERSION;
    *at++ = NSQ_WIRE_VERSION;
    *at++ = TAG_FRAME_MESSAGES;
    at = s_varint(at, list);
    for (size_t i = 0; i < count; i++)
        at = s_message(at, &messages[i], sizes[i]);
    return 0;
}

// ---- self-test ------------------------------------------------------------------

// True if our packing of messages is byte for byte what protobuf-c packs.
static bool s_test_same(const nsq_wire_message_t *messages, size_t count)
{
    Nsq__Message items[NSQ_WIRE_MESSAGES_MAX];
    Nsq__Message *pointers[NSQ_WIRE_MESSAGES_MAX];
    for (size_t i = 0; i < count; i++) {
        nsq__message__init(&items[i]);
        items[i].id = messages[i].id;
        items[i].timestamp = messages[i].timestamp;
        items[i].attempts = messages[i].attempts;
        items[i].body.data = (uint8_t *) messages[i].body;
        items[i].body.len = messages[i].size;
        pointers[i] = &items[i];
    }
    Nsq__Messages list = NSQ__MESSAGES__INIT;
    list.n_messages = count;
    list.messages = pointers;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_MESSAGES;
    frame.messages = &list;
    zmq_msg_t theirs, ours;
    if (nsq_wire_pack_frame(&frame, &theirs) != 0)
        return false;
    bool same = nsq_wire_pack_messages(messages, count, &ours) == 0;
    same = same && zmq_msg_size(&ours) == zmq_msg_size(&theirs)
           && memcmp(zmq_msg_data(&ours), zmq_msg_data(&theirs), zmq_msg_size(&ours)) == 0;
    if (same) {
        Nsq__Frame *decoded = nsq__frame__unpack(NULL, zmq_msg_size(&ours), zmq_msg_data(&ours));
        same = decoded && decoded->frame_case == NSQ__FRAME__FRAME_MESSAGES
               && decoded->messages->n_messages == count
               && decoded->messages->messages[count - 1]->id == messages[count - 1].id;
        nsq__frame__free_unpacked(decoded, NULL);
    }
    zmq_msg_close(&ours);
    zmq_msg_close(&theirs);
    return same;
}

int nsq_wire_messages_test(void)
{
    static char body[300];
    memset(body, 'b', sizeof body);
    nsq_wire_message_t messages[NSQ_WIRE_MESSAGES_MAX];
    // Every field zero, one, at a varint's byte boundaries, and at its
    // widest (a negative timestamp is ten bytes).
    static const uint64_t values[] = {0,     1,          127,       128,       16383,
                                      16384, UINT32_MAX, INT64_MAX, UINT64_MAX};
    size_t kinds = sizeof values / sizeof values[0];
    for (size_t i = 0; i < NSQ_WIRE_MESSAGES_MAX; i++) {
        messages[i] =
            (nsq_wire_message_t){values[i % kinds], (int64_t) values[(i / kinds) % kinds],
                                 (uint32_t) values[(i / 3) % 7], body, (i * 37) % sizeof body};
        if (!s_test_same(messages, 1) || !s_test_same(&messages[i], 1))
            return fprintf(stderr, "nsq_wire_messages_test: message %zu differs\n", i), -1;
    }
    if (!s_test_same(messages, NSQ_WIRE_MESSAGES_MAX) || !s_test_same(messages, 200))
        return fprintf(stderr, "nsq_wire_messages_test: a batch differs\n"), -1;
    // A list whose size needs a two- and three-byte length.
    for (size_t i = 0; i < 100; i++)
        messages[i] = (nsq_wire_message_t){i + 1, 1796051386000000000, 1, body, 100};
    if (!s_test_same(messages, 1) || !s_test_same(messages, 2) || !s_test_same(messages, 100))
        return fprintf(stderr, "nsq_wire_messages_test: 100-byte bodies differ\n"), -1;
    zmq_msg_t packed;
    if (nsq_wire_pack_messages(messages, 0, &packed) == 0 || errno != EINVAL
        || nsq_wire_pack_messages(messages, NSQ_WIRE_MESSAGES_MAX + 1, &packed) == 0)
        return fprintf(stderr, "nsq_wire_messages_test: bad counts accepted\n"), -1;
    return 0;
}
