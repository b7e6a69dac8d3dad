/*  broker_buffer - a growable byte FIFO: append at the end, consume at the front
    SPDX-License-Identifier: MIT
*/
#include "broker_buffer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// An empty buffer keeps an allocation up to this size for reuse; larger
// ones are freed by broker_buffer_clear.
#define BUFFER_KEEP (64 * 1024)

struct _broker_buffer_t {
    uint8_t *data;    // the allocation, or NULL
    size_t start;     // first unconsumed byte
    size_t end;       // one past the last byte
    size_t capacity;  // bytes allocated
};

broker_buffer_t *broker_buffer_new(void)
{
    return calloc(1, sizeof(broker_buffer_t));
}

void broker_buffer_destroy(broker_buffer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->data);
    free(*self_p);
    *self_p = NULL;
}

uint8_t *broker_buffer_reserve(broker_buffer_t *self, size_t size)
{
    if (self->start == self->end)
        self->start = self->end = 0;
    if (self->capacity - self->end >= size)
        return self->data + self->end;
    size_t used = self->end - self->start;
    // Move the bytes down when that makes room and the front holds at
    // least as much as is used (so each byte moves a bounded number of times).
    if (self->capacity - used >= size && self->start >= used) {
        memmove(self->data, self->data + self->start, used);
        self->start = 0;
        self->end = used;
        return self->data + self->end;
    }
    if (size > SIZE_MAX / 2 - used)
        return NULL;
    size_t capacity = self->capacity ? self->capacity : 256;
    while (capacity < used + size)
        capacity *= 2;
    uint8_t *data = malloc(capacity);
    if (!data)
        return NULL;
    if (used)
        memcpy(data, self->data + self->start, used);
    free(self->data);
    self->data = data;
    self->capacity = capacity;
    self->start = 0;
    self->end = used;
    return self->data + self->end;
}

void broker_buffer_commit(broker_buffer_t *self, size_t size)
{
    self->end += size;
}

int broker_buffer_append(broker_buffer_t *self, const void *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t *room = broker_buffer_reserve(self, size);
    if (!room)
        return -1;
    memcpy(room, data, size);
    self->end += size;
    return 0;
}

uint8_t *broker_buffer_data(const broker_buffer_t *self)
{
    return self->start == self->end ? NULL : self->data + self->start;
}

size_t broker_buffer_size(const broker_buffer_t *self)
{
    return self->end - self->start;
}

void broker_buffer_consume(broker_buffer_t *self, size_t size)
{
    size_t used = self->end - self->start;
    self->start += size < used ? size : used;
    if (self->start == self->end)
        self->start = self->end = 0;
}

void broker_buffer_clear(broker_buffer_t *self)
{
    self->start = self->end = 0;
    if (self->capacity > BUFFER_KEEP) {
        free(self->data);
        self->data = NULL;
        self->capacity = 0;
    }
}

// ---- self-test -----------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_buffer_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);    \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

int broker_buffer_test(void)
{
    int rc = -1;
    broker_buffer_t *buffer = broker_buffer_new();
    S_CHECK(buffer && broker_buffer_size(buffer) == 0 && broker_buffer_data(buffer) == NULL);
    // FIFO order across growth, partial consumption and moves to the front.
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 37; i++, next_in++)
            S_CHECK(broker_buffer_append(buffer, &next_in, sizeof next_in) == 0);
        size_t take = (size_t) (round % 5 + 20) * sizeof(uint32_t);
        for (size_t i = 0; i < take / sizeof(uint32_t); i++, next_out++) {
            uint32_t value;
            memcpy(&value, broker_buffer_data(buffer) + i * sizeof value, sizeof value);
            S_CHECK(value == next_out);
        }
        broker_buffer_consume(buffer, take);
    }
    S_CHECK(broker_buffer_size(buffer) == (next_in - next_out) * sizeof(uint32_t));
    // Reserve and commit write in place after what is there.
    uint8_t *room = broker_buffer_reserve(buffer, 3);
    S_CHECK(room);
    memcpy(room, "xyz", 3);
    broker_buffer_commit(buffer, 3);
    size_t size = broker_buffer_size(buffer);
    S_CHECK(memcmp(broker_buffer_data(buffer) + size - 3, "xyz", 3) == 0);
    // Consuming more than is there empties it; clear frees a big allocation.
    broker_buffer_consume(buffer, size + 100);
    S_CHECK(broker_buffer_size(buffer) == 0 && broker_buffer_data(buffer) == NULL);
    S_CHECK(broker_buffer_reserve(buffer, 1 << 20));
    broker_buffer_clear(buffer);
    S_CHECK(broker_buffer_size(buffer) == 0);
    S_CHECK(broker_buffer_append(buffer, "ab", 2) == 0 && broker_buffer_size(buffer) == 2);
    S_CHECK(broker_buffer_reserve(buffer, SIZE_MAX - 1) == NULL);  // refused, not wrapped
    S_CHECK(broker_buffer_size(buffer) == 2 && memcmp(broker_buffer_data(buffer), "ab", 2) == 0);
    rc = 0;
done:
    broker_buffer_destroy(&buffer);
    broker_buffer_destroy(&buffer);  // accepts NULL
    return rc;
}
