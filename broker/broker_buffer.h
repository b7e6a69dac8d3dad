/*  broker_buffer - a growable byte FIFO: append at the end, consume at the front
    SPDX-License-Identifier: MIT

    What the NSQ TCP door keeps per connection: bytes read and not parsed
    yet, frames written and not sent yet, a stream's plaintext or
    ciphertext in between. Consuming moves a start offset; the bytes move
    down only when the free space at the front is worth it, so consuming a
    little at a time from a large buffer stays O(1).

    API: broker_buffer_new, broker_buffer_append, broker_buffer_reserve +
    broker_buffer_commit (write in place), broker_buffer_data,
    broker_buffer_size, broker_buffer_consume, broker_buffer_clear,
    broker_buffer_destroy.
*/
#ifndef BROKER_BUFFER_H
#define BROKER_BUFFER_H

#include <stddef.h>
#include <stdint.h>

typedef struct _broker_buffer_t broker_buffer_t;

// Returns an empty buffer. Caller owns the result; NULL if out of memory.
broker_buffer_t *broker_buffer_new(void);

// Frees the buffer. Nulls *self_p; accepts NULL.
void broker_buffer_destroy(broker_buffer_t **self_p);

// Appends size bytes. Returns 0, or -1 if out of memory (self unchanged).
int broker_buffer_append(broker_buffer_t *self, const void *data, size_t size);

// Returns room for at least size more bytes at the end (borrowed, valid
// until the next call that changes self), or NULL if out of memory. Nothing
// counts as written until broker_buffer_commit.
uint8_t *broker_buffer_reserve(broker_buffer_t *self, size_t size);

// Counts size bytes written into the room broker_buffer_reserve returned.
void broker_buffer_commit(broker_buffer_t *self, size_t size);

// The unconsumed bytes (borrowed, valid until the next call that changes
// self); NULL when empty.
uint8_t *broker_buffer_data(const broker_buffer_t *self);

// Number of unconsumed bytes.
size_t broker_buffer_size(const broker_buffer_t *self);

// Drops size bytes from the front (at most what is there).
void broker_buffer_consume(broker_buffer_t *self, size_t size);

// Drops everything; frees a large allocation (a buffer that once held a
// big body does not keep it for the life of the connection).
void broker_buffer_clear(broker_buffer_t *self);

// Self-test; returns 0 on success.
int broker_buffer_test(void);

#endif
