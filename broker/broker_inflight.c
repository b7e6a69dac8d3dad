/*  broker_inflight - messages waiting on a deadline, found by id or by time
    SPDX-License-Identifier: MIT

    The hash uses linear probing with backward-shift deletion (no
    tombstones), keyed by message id; the slots hold entry pointers. Ids are
    snowflake-like, so their low bits are mixed before use.
*/
#include "broker_inflight.h"

#include <stdlib.h>

#define INFLIGHT_MIN_SLOTS 64

struct _broker_inflight_t {
    broker_inflight_entry_t **slots;  // hash by id, slot_count entries, NULL = empty
    size_t slot_count;                // a power of two, at least twice size
    broker_inflight_entry_t **heap;   // min-heap by deadline
    size_t heap_capacity;             // allocated heap entries
    size_t size;                      // entries stored
    uint64_t bytes;                   // body bytes of the entries' messages
};

static size_t s_hash(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t) id;
}

broker_inflight_t *broker_inflight_new(void)
{
    broker_inflight_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = calloc(INFLIGHT_MIN_SLOTS, sizeof *self->slots);
    self->heap = malloc(INFLIGHT_MIN_SLOTS * sizeof *self->heap);
    if (!self->slots || !self->heap) {
        free(self->slots);
        free(self->heap);
        free(self);
        return NULL;
    }
    self->slot_count = INFLIGHT_MIN_SLOTS;
    self->heap_capacity = INFLIGHT_MIN_SLOTS;
    return self;
}

void broker_inflight_destroy(broker_inflight_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_inflight_t *self = *self_p;
    for (size_t i = 0; i < self->size; i++) {
        nsq_message_unref(&self->heap[i]->message);
        free(self->heap[i]);
    }
    free(self->slots);
    free(self->heap);
    free(self);
    *self_p = NULL;
}

// ---- heap ------------------------------------------------------------

static void s_heap_set(broker_inflight_t *self, size_t index, broker_inflight_entry_t *entry)
{
    self->heap[index] = entry;
    entry->heap_index = index;
}

static void s_sift_up(broker_inflight_t *self, size_t index)
{
    broker_inflight_entry_t *entry = self->heap[index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (self->heap[parent]->deadline <= entry->deadline)
            break;
        s_heap_set(self, index, self->heap[parent]);
        index = parent;
    }
    s_heap_set(self, index, entry);
}

static void s_sift_down(broker_inflight_t *self, size_t index)
{
    broker_inflight_entry_t *entry = self->heap[index];
    for (;;) {
        size_t child = 2 * index + 1;
        if (child >= self->size)
            break;
        if (child + 1 < self->size && self->heap[child + 1]->deadline < self->heap[child]->deadline)
            child++;
        if (entry->deadline <= self->heap[child]->deadline)
            break;
        s_heap_set(self, index, self->heap[child]);
        index = child;
    }
    s_heap_set(self, index, entry);
}

// ---- hash ------------------------------------------------------------

static size_t s_slot_of(broker_inflight_t *self, uint64_t id)
{
    size_t mask = self->slot_count - 1;
    size_t slot = s_hash(id) & mask;
    while (self->slots[slot] && self->slots[slot]->message->id != id)
        slot = (slot + 1) & mask;
    return slot;
}

static int s_rehash(broker_inflight_t *self, size_t slot_count)
{
    broker_inflight_entry_t **slots = calloc(slot_count, sizeof *slots);
    if (!slots)
        return -1;
    free(self->slots);
    self->slots = slots;
    self->slot_count = slot_count;
    for (size_t i = 0; i < self->size; i++)
        self->slots[s_slot_of(self, self->heap[i]->message->id)] = self->heap[i];
    return 0;
}

// Removes the slot holding entry, shifting later members of its probe run
// back so lookups never stop early.
static void s_slot_delete(broker_inflight_t *self, size_t slot)
{
    size_t mask = self->slot_count - 1;
    size_t hole = slot;
    size_t next = (hole + 1) & mask;
    while (self->slots[next]) {
        size_t home = s_hash(self->slots[next]->message->id) & mask;
        // Move next into the hole unless its home lies cyclically in (hole, next].
        if (((next - home) & mask) >= ((next - hole) & mask)) {
            self->slots[hole] = self->slots[next];
            hole = next;
        }
        next = (next + 1) & mask;
    }
    self->slots[hole] = NULL;
}

// ---- API -------------------------------------------------------------

static int s_reserve(broker_inflight_t *self)
{
    if ((self->size + 1) * 2 > self->slot_count && s_rehash(self, self->slot_count * 2))
        return -1;
    if (self->size == self->heap_capacity) {
        size_t capacity = self->heap_capacity * 2;
        broker_inflight_entry_t **heap = realloc(self->heap, capacity * sizeof *heap);
        if (!heap)
            return -1;
        self->heap = heap;
        self->heap_capacity = capacity;
    }
    return 0;
}

broker_inflight_entry_t *broker_inflight_add(broker_inflight_t *self, nsq_message_t *message,
                                             uint32_t attempts, int64_t deadline, void *owner)
{
    if (s_reserve(self))
        return NULL;
    size_t slot = s_slot_of(self, message->id);
    if (self->slots[slot])
        return NULL;
    broker_inflight_entry_t *entry = malloc(sizeof *entry);
    if (!entry)
        return NULL;
    *entry = (broker_inflight_entry_t){message, attempts, deadline, 0, owner, 0};
    self->slots[slot] = entry;
    self->bytes += message->size;
    s_heap_set(self, self->size++, entry);
    s_sift_up(self, entry->heap_index);
    return entry;
}

broker_inflight_entry_t *broker_inflight_find(broker_inflight_t *self, uint64_t id)
{
    return self->slots[s_slot_of(self, id)];
}

void broker_inflight_set_deadline(broker_inflight_t *self, broker_inflight_entry_t *entry,
                                  int64_t deadline)
{
    int64_t old = entry->deadline;
    entry->deadline = deadline;
    if (deadline < old)
        s_sift_up(self, entry->heap_index);
    else
        s_sift_down(self, entry->heap_index);
}

broker_inflight_entry_t *broker_inflight_peek(broker_inflight_t *self)
{
    return self->size ? self->heap[0] : NULL;
}

nsq_message_t *broker_inflight_remove(broker_inflight_t *self, broker_inflight_entry_t *entry,
                                      uint32_t *attempts)
{
    s_slot_delete(self, s_slot_of(self, entry->message->id));
    size_t index = entry->heap_index;
    broker_inflight_entry_t *last = self->heap[--self->size];
    if (last != entry) {
        s_heap_set(self, index, last);
        s_sift_up(self, index);
        s_sift_down(self, last->heap_index);
    }
    nsq_message_t *message = entry->message;
    self->bytes -= message->size;
    if (attempts)
        *attempts = entry->attempts;
    free(entry);
    if (self->slot_count > INFLIGHT_MIN_SLOTS && self->size * 8 < self->slot_count)
        s_rehash(self, self->slot_count / 2);  // failing to shrink is harmless
    return message;
}

size_t broker_inflight_remove_owner(broker_inflight_t *self, const void *owner,
                                    broker_inflight_take_fn *take, void *arg)
{
    // Compact the heap array in place, then restore the heap order
    // bottom-up (Floyd): O(n), and no memory needed.
    size_t kept = 0;
    for (size_t i = 0; i < self->size; i++) {
        broker_inflight_entry_t *entry = self->heap[i];
        if (entry->owner != owner) {
            s_heap_set(self, kept++, entry);
            continue;
        }
        s_slot_delete(self, s_slot_of(self, entry->message->id));
        self->bytes -= entry->message->size;
        take(arg, entry->message, entry->attempts);
        free(entry);
    }
    size_t removed = self->size - kept;
    self->size = kept;
    for (size_t i = kept / 2; i-- > 0;)
        s_sift_down(self, i);
    return removed;
}

size_t broker_inflight_size(const broker_inflight_t *self)
{
    return self->size;
}

uint64_t broker_inflight_bytes(const broker_inflight_t *self)
{
    return self->bytes;
}

broker_inflight_entry_t *broker_inflight_at(broker_inflight_t *self, size_t index)
{
    return index < self->size ? self->heap[index] : NULL;
}

static void s_test_take(void *arg, nsq_message_t *message, uint32_t attempts)
{
    size_t *taken = arg;
    *taken += attempts == 2 && message->id % 3 == 0;  // owner "a" holds the multiples of 3
    nsq_message_unref(&message);
}

// Removing one owner's entries keeps the others findable and in deadline order.
static int s_test_remove_owner(void)
{
    broker_inflight_t *table = broker_inflight_new();
    if (!table)
        return -1;
    char a, b;
    enum { COUNT = 300 };
    for (uint64_t id = 0; id < COUNT; id++) {
        nsq_message_t *message = nsq_message_new("x", 1);
        message->id = id;
        int64_t deadline = (int64_t) ((id * 7919) % COUNT);
        if (!broker_inflight_add(table, message, 2, deadline, id % 3 == 0 ? &a : &b))
            return -1;
    }
    size_t taken = 0;
    size_t removed = broker_inflight_remove_owner(table, &a, s_test_take, &taken);
    if (removed != COUNT / 3 || taken != removed || broker_inflight_size(table) != COUNT - removed
        || broker_inflight_bytes(table) != COUNT - removed)
        return -1;
    for (uint64_t id = 0; id < COUNT; id++)
        if ((broker_inflight_find(table, id) != NULL) != (id % 3 != 0))
            return -1;
    int64_t last = -1;
    broker_inflight_entry_t *top;
    while ((top = broker_inflight_peek(table))) {
        if (top->deadline < last || top->owner != &b || top->heap_index != 0)
            return -1;
        last = top->deadline;
        nsq_message_t *message = broker_inflight_remove(table, top, NULL);
        nsq_message_unref(&message);
    }
    broker_inflight_destroy(&table);
    return 0;
}

int broker_inflight_test(void)
{
    if (s_test_remove_owner())
        return -1;
    broker_inflight_t *table = broker_inflight_new();
    if (!table)
        return -1;
    // Deadlines in a scrambled order; ids with colliding low bits.
    enum { COUNT = 5000 };
    for (uint64_t i = 0; i < COUNT; i++) {
        nsq_message_t *message = nsq_message_new("x", 1);
        message->id = (i << 32) | 7;
        int64_t deadline = (int64_t) ((i * 7919) % COUNT);
        if (!broker_inflight_add(table, message, 1, deadline, NULL))
            return -1;
    }
    nsq_message_t *duplicate = nsq_message_new("y", 1);
    duplicate->id = (3ULL << 32) | 7;
    if (broker_inflight_add(table, duplicate, 1, 0, NULL) != NULL)
        return -1;
    nsq_message_unref(&duplicate);
    // Remove every odd id by lookup, then TOUCH one entry far into the future.
    for (uint64_t i = 1; i < COUNT; i += 2) {
        broker_inflight_entry_t *entry = broker_inflight_find(table, (i << 32) | 7);
        if (!entry)
            return -1;
        nsq_message_t *message = broker_inflight_remove(table, entry, NULL);
        nsq_message_unref(&message);
    }
    if (broker_inflight_size(table) != COUNT / 2 || broker_inflight_find(table, (1ULL << 32) | 7))
        return -1;
    broker_inflight_entry_t *moved = broker_inflight_find(table, 0 | 7);
    if (!moved || moved->deadline != 0)
        return -1;
    broker_inflight_set_deadline(table, moved, 1000000);
    // Popping by deadline yields a non-decreasing sequence ending with it.
    int64_t last = -1;
    broker_inflight_entry_t *top;
    while ((top = broker_inflight_peek(table))) {
        if (top->deadline < last)
            return -1;
        last = top->deadline;
        if (!broker_inflight_find(table, top->message->id))
            return -1;
        nsq_message_t *message = broker_inflight_remove(table, top, NULL);
        nsq_message_unref(&message);
    }
    if (last != 1000000 || broker_inflight_bytes(table) != 0)
        return -1;
    broker_inflight_destroy(&table);
    return 0;
}
