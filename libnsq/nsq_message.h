/*  nsq_message - a published message, refcounted so fan-out never copies it
    SPDX-License-Identifier: MIT

    One allocation holds the header and the body. Publishing to a topic with
    N channels takes N references, not N copies. Per-delivery state
    (attempts, deadlines) lives with the channel that delivers it, because
    every channel counts its own attempts.

    The refcount is not atomic: a message belongs to one thread at a time
    (the HTTP thread that built it, then the broker's core thread).

    API in call order: nsq_message_new / nsq_message_new_uninit, nsq_message_ref,
    nsq_message_unref; nsq_message_id_format / nsq_message_id_parse for the
    16-character hex id users see.
*/
#ifndef NSQ_MESSAGE_H
#define NSQ_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

// Length of an id written as hex, without the terminating NUL.
#define NSQ_MESSAGE_ID_HEX_SIZE 16

typedef struct {
    uint64_t id;        // unique per broker (snowflake-like), 0 until assigned
    int64_t timestamp;  // ns since the epoch, set when the broker accepts it
    uint64_t
        disk_position;  // 1 + where its holder read it from its disk queue, 0 = not read from disk
    uint32_t refs;      // owners; freed when it drops to 0
    uint32_t size;      // body length in bytes
    uint8_t body[];     // the body, size bytes
} nsq_message_t;

// Returns a message holding a copy of body (size bytes), refs 1, id 0.
// Caller owns the result. NULL if out of memory or size > UINT32_MAX.
nsq_message_t *nsq_message_new(const void *body, size_t size);

// Returns a message whose body (size bytes) is uninitialized, for callers
// that read the body straight into place. Caller owns the result.
nsq_message_t *nsq_message_new_uninit(size_t size);

// Takes one more reference; returns self.
nsq_message_t *nsq_message_ref(nsq_message_t *self);

// Drops the caller's reference and nulls *self_p; frees on the last one.
// Accepts NULL and *self_p == NULL.
void nsq_message_unref(nsq_message_t **self_p);

// Writes id as 16 lowercase hex characters plus NUL into out.
void nsq_message_id_format(uint64_t id, char out[NSQ_MESSAGE_ID_HEX_SIZE + 1]);

// Parses 16 hex characters into *id. Returns 0, or -1 if text is not exactly
// 16 hex characters.
int nsq_message_id_parse(const char *text, uint64_t *id);

// Self-test; returns 0 on success.
int nsq_message_test(void);

#endif
