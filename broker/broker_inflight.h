/*  broker_inflight - messages waiting on a deadline, found by id or by time
    SPDX-License-Identifier: MIT

    A channel keeps two of these: messages in flight (owner = the client
    holding it, deadline = its timeout) and deferred messages (owner NULL,
    deadline = when it becomes visible). Lookup by id is an open-addressing
    hash; the earliest deadline is the top of a binary heap whose entries
    remember their position, so FIN, TOUCH and expiry are all O(log n).

    API: broker_inflight_new, broker_inflight_add, broker_inflight_find,
    broker_inflight_set_deadline, broker_inflight_peek, broker_inflight_remove,
    broker_inflight_remove_owner, broker_inflight_size, broker_inflight_bytes,
    broker_inflight_at (iteration), broker_inflight_destroy.
*/
#ifndef BROKER_INFLIGHT_H
#define BROKER_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "nsq_message.h"

typedef struct {
    nsq_message_t *message;  // one reference, owned by the table
    uint32_t attempts;       // deliveries including the current one
    int64_t deadline;        // monotonic ms
    int64_t delivered_at;    // monotonic ms of delivery (caps TOUCH)
    void *owner;             // the client holding it, NULL for deferred
    size_t heap_index;       // position in the heap, maintained by the table
} broker_inflight_entry_t;

typedef struct _broker_inflight_t broker_inflight_t;

// Returns an empty table. Caller owns it; NULL if out of memory.
broker_inflight_t *broker_inflight_new(void);

// Unrefs every message, frees the table and nulls *self_p.
void broker_inflight_destroy(broker_inflight_t **self_p);

// Adds message (its reference moves into the table). Returns the entry
// (borrowed, valid until removed), or NULL if the id is already present or
// memory ran out (the caller keeps the reference then).
broker_inflight_entry_t *broker_inflight_add(broker_inflight_t *self, nsq_message_t *message,
                                             uint32_t attempts, int64_t deadline, void *owner);

// Returns the entry for id, or NULL. Borrowed.
broker_inflight_entry_t *broker_inflight_find(broker_inflight_t *self, uint64_t id);

// Moves entry to a new deadline.
void broker_inflight_set_deadline(broker_inflight_t *self, broker_inflight_entry_t *entry,
                                  int64_t deadline);

// Returns the entry with the earliest deadline, or NULL if empty. Borrowed.
broker_inflight_entry_t *broker_inflight_peek(broker_inflight_t *self);

// Removes entry and frees it; its message reference moves to the caller
// (returned), and *attempts receives its attempts when attempts is not NULL.
nsq_message_t *broker_inflight_remove(broker_inflight_t *self, broker_inflight_entry_t *entry,
                                      uint32_t *attempts);

// Receives one removed entry's message (its reference) and attempts.
typedef void(broker_inflight_take_fn)(void *arg, nsq_message_t *message, uint32_t attempts);

// Removes every entry of owner and hands each message to take, without
// allocating (a consumer's removal must not fail for lack of memory: its
// entries would keep pointing at it). take must not use this table.
// Returns how many entries were removed.
size_t broker_inflight_remove_owner(broker_inflight_t *self, const void *owner,
                                    broker_inflight_take_fn *take, void *arg);

// Number of entries.
size_t broker_inflight_size(const broker_inflight_t *self);

// Body bytes of the entries' messages.
uint64_t broker_inflight_bytes(const broker_inflight_t *self);

// The entry at heap position index (0 <= index < size), for iteration that
// does not modify the table. Borrowed.
broker_inflight_entry_t *broker_inflight_at(broker_inflight_t *self, size_t index);

// Self-test; returns 0 on success.
int broker_inflight_test(void);

#endif
