/*  broker_queue - a growable FIFO ring of queued messages, bounded by its owner
    SPDX-License-Identifier: MIT

    Holds what waits to be delivered: a message reference plus how often it
    was delivered before and when it may be delivered. The queue does not
    enforce the memory bound itself (requeues must always fit); owners check
    broker_queue_size against --mem-queue-size and broker_queue_bytes
    against --mem-queue-bytes before they put new messages.

    API: broker_queue_new, broker_queue_push, broker_queue_pop,
    broker_queue_size, broker_queue_bytes, broker_queue_clear,
    broker_queue_destroy.
*/
#ifndef BROKER_QUEUE_H
#define BROKER_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "nsq_message.h"

typedef struct {
    nsq_message_t *message;  // one reference, owned by whoever holds the item
    uint32_t attempts;       // deliveries so far
    int64_t ready_at;        // monotonic ms before which it must not be delivered; 0 = now
} broker_queue_item_t;

typedef struct _broker_queue_t broker_queue_t;

// Returns an empty queue. Caller owns the result; NULL if out of memory.
broker_queue_t *broker_queue_new(void);

// Unrefs every queued message and frees the queue. Nulls *self_p.
void broker_queue_destroy(broker_queue_t **self_p);

// Appends item (its message reference moves into the queue).
// Returns 0, or -1 if out of memory (the caller keeps the reference).
int broker_queue_push(broker_queue_t *self, broker_queue_item_t item);

// Removes the oldest item into *item (its reference moves to the caller).
// Returns 0, or -1 if the queue is empty.
int broker_queue_pop(broker_queue_t *self, broker_queue_item_t *item);

// Number of queued items.
size_t broker_queue_size(const broker_queue_t *self);

// Body bytes of the queued items' messages.
uint64_t broker_queue_bytes(const broker_queue_t *self);

// Unrefs and removes every item.
void broker_queue_clear(broker_queue_t *self);

// Self-test; returns 0 on success.
int broker_queue_test(void);

#endif
