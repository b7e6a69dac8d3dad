/*  broker_queue - a growable FIFO ring of queued messages, bounded by its owner
    SPDX-License-Identifier: MIT

    A power-of-two ring that doubles when full and halves when a quarter
    used, so an emptied queue gives its memory back.
*/
#include "broker_queue.h"

#include <stdlib.h>
#include <string.h>

#define QUEUE_MIN_CAPACITY 16

struct _broker_queue_t {
    broker_queue_item_t *items;  // ring storage, capacity entries
    size_t capacity;             // a power of two
    size_t head;                 // index of the oldest item
    size_t size;                 // items stored
    uint64_t bytes;              // body bytes of the items stored
};

broker_queue_t *broker_queue_new(void)
{
    broker_queue_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->items = calloc(QUEUE_MIN_CAPACITY, sizeof *self->items);
    if (!self->items) {
        free(self);
        return NULL;
    }
    self->capacity = QUEUE_MIN_CAPACITY;
    return self;
}

void broker_queue_destroy(broker_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_queue_t *self = *self_p;
    broker_queue_clear(self);
    free(self->items);
    free(self);
    *self_p = NULL;
}

// Moves the items into a new ring of new_capacity (>= size).
static int s_resize(broker_queue_t *self, size_t new_capacity)
{
    broker_queue_item_t *items = malloc(new_capacity * sizeof *items);
    if (!items)
        return -1;
    for (size_t i = 0; i < self->size; i++)
        items[i] = self->items[(self->head + i) & (self->capacity - 1)];
    free(self->items);
    self->items = items;
    self->capacity = new_capacity;
    self->head = 0;
    return 0;
}

int broker_queue_push(broker_queue_t *self, broker_queue_item_t item)
{
    if (self->size == self->capacity && s_resize(self, self->capacity * 2))
        return -1;
    self->items[(self->head + self->size) & (self->capacity - 1)] = item;
    self->size++;
    self->bytes += item.message->size;
    return 0;
}

int broker_queue_pop(broker_queue_t *self, broker_queue_item_t *item)
{
    if (self->size == 0)
        return -1;
    *item = self->items[self->head];
    self->head = (self->head + 1) & (self->capacity - 1);
    self->size--;
    self->bytes -= item->message->size;
    if (self->capacity > QUEUE_MIN_CAPACITY && self->size < self->capacity / 4)
        s_resize(self, self->capacity / 2);  // failing to shrink is harmless
    return 0;
}

size_t broker_queue_size(const broker_queue_t *self)
{
    return self->size;
}

uint64_t broker_queue_bytes(const broker_queue_t *self)
{
    return self->bytes;
}

void broker_queue_clear(broker_queue_t *self)
{
    broker_queue_item_t item;
    while (broker_queue_pop(self, &item) == 0)
        nsq_message_unref(&item.message);
}

int broker_queue_test(void)
{
    broker_queue_t *queue = broker_queue_new();
    if (!queue)
        return -1;
    broker_queue_item_t item;
    if (broker_queue_pop(queue, &item) == 0)
        return -1;
    // Push enough to grow several times, pop half, push more: order is FIFO.
    for (uint32_t i = 0; i < 1000; i++) {
        broker_queue_item_t in = {nsq_message_new(&i, sizeof i), i, 0};
        if (broker_queue_push(queue, in))
            return -1;
    }
    for (uint32_t i = 0; i < 500; i++) {
        if (broker_queue_pop(queue, &item) || item.attempts != i
            || memcmp(item.message->body, &i, sizeof i))
            return -1;
        nsq_message_unref(&item.message);
    }
    if (broker_queue_size(queue) != 500 || broker_queue_bytes(queue) != 500 * sizeof(uint32_t))
        return -1;
    for (uint32_t i = 0; i < 480; i++) {  // shrinks the ring while in use
        if (broker_queue_pop(queue, &item) || item.attempts != 500 + i)
            return -1;
        nsq_message_unref(&item.message);
    }
    if (broker_queue_bytes(queue) != 20 * sizeof(uint32_t))
        return -1;
    broker_queue_clear(queue);
    if (broker_queue_size(queue) != 0 || broker_queue_bytes(queue) != 0)
        return -1;
    broker_queue_item_t last = {nsq_message_new("x", 1), 0, 0};
    if (broker_queue_push(queue, last))
        return -1;
    broker_queue_destroy(&queue);  // frees the one left
    return queue == NULL ? 0 : -1;
}
