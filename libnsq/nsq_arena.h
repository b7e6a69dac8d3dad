/*  nsq_arena - a bump allocator for protobuf-c, reset after each frame
    SPDX-License-Identifier: MIT

    protobuf-c allocates a struct per message of a frame and a buffer per
    body; malloc and free of those were a fifth of the consumer's time. An
    arena hands out memory from large chunks and takes it all back at once
    with nsq_arena_reset, keeping its largest chunk for the next frame.

    API in call order: nsq_arena_new, nsq_arena_allocator (pass to
    *__unpack), nsq_arena_reset (after each frame), nsq_arena_destroy.
*/
#ifndef NSQ_ARENA_H
#define NSQ_ARENA_H

#include <protobuf-c/protobuf-c.h>

typedef struct _nsq_arena_t nsq_arena_t;

// Creates an empty arena (no chunk until the first allocation). NULL if out
// of memory. Caller owns the result.
nsq_arena_t *nsq_arena_new(void);

// Frees every chunk; what the arena handed out is gone. Nulls *self_p;
// accepts NULL.
void nsq_arena_destroy(nsq_arena_t **self_p);

// The allocator to give protobuf-c. Its free does nothing: memory comes
// back with nsq_arena_reset. Borrowed; valid until destroy.
ProtobufCAllocator *nsq_arena_allocator(nsq_arena_t *self);

// Takes back everything handed out. Keeps the newest (largest) chunk
// unless it grew past 4 MiB, so one huge frame does not pin its memory.
void nsq_arena_reset(nsq_arena_t *self);

// Self-test; returns 0 on success.
int nsq_arena_test(void);

#endif
