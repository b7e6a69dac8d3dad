/*  broker_mpub - the framing of an /mpub body, text or binary
    SPDX-License-Identifier: MIT

    Text: one message per line ('\n'), empty lines skipped, as nsqd does.
    Binary: [u32 count]([u32 size][size bytes]) * count, big-endian, and
    nothing after the last message; every size 1..max_msg_size.

    The body comes from a peer, so it is checked as a whole before anything
    is taken (a publish is all or nothing); walking a checked body cannot
    run past its end. Plain functions over bytes, no state: the HTTP door
    calls them, and so does a fuzz target.

    API in call order: broker_mpub_check, broker_mpub_next.
*/
#ifndef BROKER_MPUB_H
#define BROKER_MPUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Checks the size bytes at body (NULL when size is 0) and returns how many
// messages they hold, or 0 with *code set to NSQ's error code (a static
// string): MSG_EMPTY (text without a message), MSG_TOO_BIG (a message above
// max_msg_size), BAD_BODY (binary: a count of 0, one that cannot fit in
// max_body_size, or bytes after the last message), BAD_MESSAGE (binary: a
// size of 0 or past the end).
size_t broker_mpub_check(const uint8_t *body, size_t size, bool binary, uint64_t max_msg_size,
                         uint64_t max_body_size, const char **code);

// Walks a body that broker_mpub_check accepted. Start with *offset = 0;
// returns true with the next message at body + *start, *length bytes, or
// false after the last one.
bool broker_mpub_next(const uint8_t *body, size_t size, bool binary, size_t *offset, size_t *start,
                      size_t *length);

// Self-test; returns 0 on success.
int broker_mpub_test(void);

#endif
