/*  nsq_msg - the messages a consumer hands out, and its list of those not settled
    SPDX-License-Identifier: MIT

    The list is doubly linked through the messages themselves, so adding
    and settling are O(1) and a message costs no other allocation. Only
    dropping a connection walks it (nsq_msg_list_orphan).
*/
#include "nsq_msg.h"

#include "nsq_message.h"

#include <stdlib.h>
#include <string.h>

#define S_DETACHED_BROKER     "tcp://127.0.0.1:1"  // a static string
#define S_DETACHED_TIMEOUT_MS 60000                // NSQ's default msg_timeout

struct _nsq_msg_t {
    nsq_msg_t *prev;  // neighbours on the consumer's unsettled list
    nsq_msg_t *next;
    nsq_connection_t *connection;  // where to settle it; NULL once that is gone
    uint64_t generation;           // the connection's socket it came from
    const char *broker;            // endpoint, interned by the consumer
    uint64_t id;                   // wire id
    int64_t timestamp;             // ns since the epoch
    uint32_t attempts;             // delivery attempts, 1 first
    uint32_t timeout_ms;           // its connection's msg_timeout when it arrived
    uint32_t size;                 // body bytes
    char id_hex[NSQ_MESSAGE_ID_HEX_SIZE + 1];
    uint8_t body[];  // size bytes then a NUL
};

const char *nsq_msg_id(const nsq_msg_t *msg)
{
    return msg->id_hex;
}

const void *nsq_msg_body(const nsq_msg_t *msg)
{
    return msg->body;
}

size_t nsq_msg_size(const nsq_msg_t *msg)
{
    return msg->size;
}

uint32_t nsq_msg_attempts(const nsq_msg_t *msg)
{
    return msg->attempts;
}

int64_t nsq_msg_timestamp(const nsq_msg_t *msg)
{
    return msg->timestamp;
}

const char *nsq_msg_broker(const nsq_msg_t *msg)
{
    return msg->broker;
}

uint32_t nsq_msg_timeout_ms(const nsq_msg_t *msg)
{
    return msg->timeout_ms;
}

nsq_msg_t *nsq_msg_new(const Nsq__Message *wire, nsq_connection_t *connection, uint64_t generation,
                       const char *broker, uint32_t timeout_ms)
{
    size_t size = wire->body.len;
    nsq_msg_t *msg = malloc(sizeof(nsq_msg_t) + size + 1);
    if (!msg)
        return NULL;
    msg->prev = msg->next = NULL;
    msg->connection = connection;
    msg->generation = generation;
    msg->broker = broker;
    msg->id = wire->id;
    msg->timestamp = wire->timestamp;
    msg->attempts = wire->attempts;
    msg->timeout_ms = timeout_ms;
    msg->size = (uint32_t) size;
    nsq_message_id_format(wire->id, msg->id_hex);
    if (size)
        memcpy(msg->body, wire->body.data, size);
    msg->body[size] = '\0';
    return msg;
}

nsq_msg_t *nsq_msg_new_detached(const void *body, size_t size)
{
    Nsq__Message wire = NSQ__MESSAGE__INIT;
    wire.id = 1;
    wire.attempts = 1;
    wire.body.data = (uint8_t *) body;
    wire.body.len = size;
    return nsq_msg_new(&wire, NULL, 0, S_DETACHED_BROKER, S_DETACHED_TIMEOUT_MS);
}

nsq_connection_t *nsq_msg_origin(const nsq_msg_t *msg, uint64_t *generation)
{
    *generation = msg->generation;
    return msg->connection;
}

uint64_t nsq_msg_wire_id(const nsq_msg_t *msg)
{
    return msg->id;
}

void nsq_msg_list_add(nsq_msg_list_t *list, nsq_msg_t *msg)
{
    msg->prev = NULL;
    msg->next = list->head;
    if (list->head)
        list->head->prev = msg;
    list->head = msg;
    list->count++;
}

void nsq_msg_list_remove(nsq_msg_list_t *list, nsq_msg_t *msg)
{
    if (msg->prev)
        msg->prev->next = msg->next;
    else
        list->head = msg->next;
    if (msg->next)
        msg->next->prev = msg->prev;
    msg->prev = msg->next = NULL;
    list->count--;
}

void nsq_msg_list_orphan(nsq_msg_list_t *list, const nsq_connection_t *connection)
{
    for (nsq_msg_t *msg = list->head; msg; msg = msg->next)
        if (msg->connection == connection)
            msg->connection = NULL;
}

void nsq_msg_list_clear(nsq_msg_list_t *list)
{
    while (list->head) {
        nsq_msg_t *msg = list->head;
        nsq_msg_list_remove(list, msg);
        free(msg);
    }
}

// ---- self-test ---------------------------------------------------------------

int nsq_msg_test(void)
{
    nsq_msg_list_t list = {0};
    nsq_connection_t *one = (nsq_connection_t *) &list;  // only compared, never used
    Nsq__Message wire = NSQ__MESSAGE__INIT;
    wire.id = 0x64;
    wire.attempts = 3;
    wire.timestamp = 42;
    wire.body.data = (uint8_t *) "abc";
    wire.body.len = 3;
    nsq_msg_t *first = nsq_msg_new(&wire, one, 7, "tcp://h:1", 1000);
    nsq_msg_t *second = nsq_msg_new_detached("xyz", 3);
    nsq_msg_t *third = nsq_msg_new(&wire, one, 8, "tcp://h:1", 1000);
    if (!first || !second || !third) {
        free(first), free(second), free(third);
        return -1;
    }
    nsq_msg_list_add(&list, first);
    nsq_msg_list_add(&list, second);
    nsq_msg_list_add(&list, third);
    uint64_t generation = 0;
    int rc = list.count == 3 && list.head == third ? 0 : -1;
    if (strcmp(nsq_msg_id(first), "0000000000000064") || nsq_msg_size(first) != 3
        || strcmp(nsq_msg_body(first), "abc") || nsq_msg_attempts(first) != 3
        || nsq_msg_timestamp(first) != 42 || strcmp(nsq_msg_broker(first), "tcp://h:1")
        || nsq_msg_timeout_ms(first) != 1000 || nsq_msg_wire_id(first) != 0x64
        || nsq_msg_origin(first, &generation) != one || generation != 7)
        rc = -1;
    if (nsq_msg_origin(second, &generation) || strcmp(nsq_msg_body(second), "xyz")
        || nsq_msg_timeout_ms(second) != S_DETACHED_TIMEOUT_MS || nsq_msg_attempts(second) != 1)
        rc = -1;
    nsq_msg_list_remove(&list, second);  // the middle one
    free(second);
    if (list.count != 2 || list.head != third)
        rc = -1;
    nsq_msg_list_orphan(&list, one);
    if (nsq_msg_origin(first, &generation) || nsq_msg_origin(third, &generation))
        rc = -1;
    nsq_msg_list_clear(&list);
    return rc == 0 && list.count == 0 && !list.head ? 0 : -1;
}
