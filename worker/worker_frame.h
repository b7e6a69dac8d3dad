/*  worker_frame - the --process protocol's framing: message headers out, replies in
    SPDX-License-Identifier: MIT

    Version 1 (README, "Handlers in any language"). Every frame, both ways,
    is one line of compact JSON (the header), a newline, then exactly the
    header's "size" bytes of body, which may hold any byte. To the process:
        {"id":"<16 hex>","attempts":N,"timestamp":NS,"topic":"T","channel":"C","size":N}\n<body>
    From the process:
        {"id":"<16 hex>","op":"fin"|"req"|"touch","delay_ms":N,"size":N}\n<output>
    delay_ms (req only) and size (fin only: the output, default 0) are
    optional; fields a reader does not know are ignored.

        Pure: no I/O and no globals. The writer formats one header into the
    caller's buffer: the strings (topic, channel) are JSON-encoded by
    jansson once per handler (worker_frame_names), the per-message fields
    are an id of 16 hex digits and numbers, printed as they are (a jansson
    object per message cost more than the rest of the worker's work on
    it). The reader is fed the bytes the process wrote, in pieces of any
    size, and hands back one reply at a time (jansson parses each header),
    or says why the bytes are not the protocol (garbage: the caller stops
    the process).

    API in call order: worker_frame_names, worker_frame_header (per
    message); worker_frame_reader_new, worker_frame_reader_feed,
    worker_frame_reader_next (repeat), worker_frame_reader_destroy.
*/
#ifndef WORKER_FRAME_H
#define WORKER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WORKER_FRAME_VERSION    1     // NSQ_PROCESS_PROTOCOL in the process's environment
#define WORKER_FRAME_HEADER_MAX 4096  // longest reply header line, newline included

typedef struct {
    const char *id;     // 16 hex digits
    uint32_t attempts;  // delivery attempt, 1 first
    int64_t timestamp;  // ns since the epoch
    size_t size;        // body bytes that follow
} worker_frame_message_t;

// Writes the fields every header of a handler shares,
// "topic":"T","channel":"C" (JSON strings), into names (size bytes, NUL
// included). Returns 0, or -1 (errno EINVAL: not UTF-8; ENOMEM: does not
// fit).
int worker_frame_names(const char *topic, const char *channel, char *names, size_t size);

// Writes message's header line, newline included, into buffer (no NUL
// needed after it); names comes from worker_frame_names. Returns its
// length, or -1 if it does not fit (errno ENOMEM) or the id is not 16 hex
// digits (EINVAL).
int worker_frame_header(const worker_frame_message_t *message, const char *names, char *buffer,
                        size_t size);

typedef enum {
    WORKER_FRAME_FIN,    // done; may carry output
    WORKER_FRAME_REQ,    // requeue, after delay_ms if given
    WORKER_FRAME_TOUCH,  // still working on it
} worker_frame_op_t;

typedef struct {
    char id[17];           // 16 hex digits and a NUL
    worker_frame_op_t op;  // what the process says
    int64_t delay_ms;      // REQ: the delay asked for, -1 if none
    const uint8_t *body;   // FIN: the output; borrowed until the next reader call
    size_t size;           // its length, 0 if none
} worker_frame_reply_t;

typedef struct _worker_frame_reader_t worker_frame_reader_t;

// A reader that refuses replies whose output exceeds max_output bytes.
// NULL if out of memory. Caller owns the result.
worker_frame_reader_t *worker_frame_reader_new(size_t max_output);

// Destroys *self_p and nulls it; accepts NULL.
void worker_frame_reader_destroy(worker_frame_reader_t **self_p);

// Appends bytes the process wrote. Returns 0, or -1 if out of memory.
int worker_frame_reader_feed(worker_frame_reader_t *self, const void *data, size_t size);

// Takes the next complete reply. Returns 1 with *reply filled, 0 if more
// bytes are needed, or -1 if the bytes are not the protocol, with the
// reason in error (error_size >= 1; always NUL-terminated); the reader is
// then unusable.
int worker_frame_reader_next(worker_frame_reader_t *self, worker_frame_reply_t *reply, char *error,
                             size_t error_size);

// Bytes fed and not yet taken.
size_t worker_frame_reader_buffered(const worker_frame_reader_t *self);

// Self-test; returns 0 on success.
int worker_frame_test(void);

#endif
