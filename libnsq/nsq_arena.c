/*  nsq_arena - a bump allocator for protobuf-c, reset after each frame
    SPDX-License-Identifier: MIT

    Chunks form a list, newest first; each new chunk is twice the last (at
    least what was asked), so a frame needs few of them, and reset keeps
    only the newest. Allocations are rounded up to max_align_t.
*/
#include "nsq_arena.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_CHUNK_MIN  (64 * 1024)        // first chunk size
#define S_CHUNK_KEEP (4 * 1024 * 1024)  // largest chunk kept between frames

typedef struct _s_chunk_t s_chunk_t;
struct _s_chunk_t {
    s_chunk_t *next;     // older chunk
    size_t size;         // bytes in data
    size_t used;         // bytes handed out
    max_align_t data[];  // the memory
};

struct _nsq_arena_t {
    ProtobufCAllocator allocator;  // what protobuf-c calls
    s_chunk_t *chunks;             // newest first
};

static void *s_alloc(void *data, size_t size)
{
    nsq_arena_t *self = data;
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    s_chunk_t *chunk = self->chunks;
    if (!chunk || chunk->size - chunk->used < size) {
        size_t chunk_size = chunk ? chunk->size * 2 : S_CHUNK_MIN;
        if (chunk_size < size)
            chunk_size = size;
        chunk = malloc(sizeof(s_chunk_t) + chunk_size);
        if (!chunk)
            return NULL;
        chunk->size = chunk_size;
        chunk->used = 0;
        chunk->next = self->chunks;
        self->chunks = chunk;
    }
    void *memory = (char *) chunk->data + chunk->used;
    chunk->used += size;
    return memory;
}

static void s_free(void *data, void *memory)
{
    (void) data;
    (void) memory;  // taken back all at once by nsq_arena_reset
}

nsq_arena_t *nsq_arena_new(void)
{
    nsq_arena_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->allocator.alloc = s_alloc;
    self->allocator.free = s_free;
    self->allocator.allocator_data = self;
    return self;
}

void nsq_arena_destroy(nsq_arena_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_arena_t *self = *self_p;
    nsq_arena_reset(self);
    free(self->chunks);
    free(self);
    *self_p = NULL;
}

ProtobufCAllocator *nsq_arena_allocator(nsq_arena_t *self)
{
    return &self->allocator;
}

void nsq_arena_reset(nsq_arena_t *self)
{
    s_chunk_t *chunk = self->chunks;
    if (!chunk)
        return;
    while (chunk->next) {
        s_chunk_t *older = chunk->next;
        chunk->next = older->next;
        free(older);
    }
    chunk->used = 0;
    if (chunk->size > S_CHUNK_KEEP) {
        free(chunk);
        self->chunks = NULL;
    }
}

// ---- self-test ---------------------------------------------------------------

int nsq_arena_test(void)
{
    nsq_arena_t *arena = nsq_arena_new();
    if (!arena)
        return -1;
    ProtobufCAllocator *allocator = nsq_arena_allocator(arena);
    int rc = 0;
    // Aligned, distinct, writable; a request larger than a chunk works.
    char *first = allocator->alloc(allocator->allocator_data, 3);
    char *second = allocator->alloc(allocator->allocator_data, 5);
    char *big = allocator->alloc(allocator->allocator_data, 3 * S_CHUNK_MIN);
    if (!first || !second || !big || (uintptr_t) second % sizeof(max_align_t) || second < first + 3)
        rc = -1;
    if (rc == 0) {
        memset(big, 1, 3 * S_CHUNK_MIN);
        allocator->free(allocator->allocator_data, first);  // a no-op
        nsq_arena_reset(arena);
        // After a reset the newest chunk is reused from its start.
        if (allocator->alloc(allocator->allocator_data, 8) != big || arena->chunks->next)
            rc = -1;
    }
    // A chunk beyond the keep limit is freed at reset.
    if (rc == 0 && !allocator->alloc(allocator->allocator_data, 2 * S_CHUNK_KEEP))
        rc = -1;
    nsq_arena_reset(arena);
    if (rc == 0 && arena->chunks)
        rc = -1;
    nsq_arena_destroy(&arena);
    nsq_arena_destroy(&arena);  // NULL is accepted
    return rc == 0 && !arena ? 0 : -1;
}
