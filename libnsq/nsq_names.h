/*  nsq_names - NSQ's rules for topic and channel names
    SPDX-License-Identifier: MIT

    A name is 1..NSQ_NAME_MAX characters of [.a-zA-Z0-9_-], optionally ending
    in "#ephemeral" (the suffix counts toward the length). Ephemeral topics
    and channels live in memory only and vanish with their last consumer.
    Names come from peers, so these checks never assert: bad input is false.
    A name that arrives with a length (an HTTP argument, a protobuf `bytes`
    field) is checked with that length, so an embedded NUL or a byte past
    the first NUL can never make a different, shorter name valid.

    API: nsq_name_is_valid, nsq_name_is_valid_n, nsq_name_copy,
    nsq_name_is_ephemeral.
*/
#ifndef NSQ_NAMES_H
#define NSQ_NAMES_H

#include <stdbool.h>
#include <stddef.h>

// Longest valid name, suffix included, without the terminating NUL.
#define NSQ_NAME_MAX 64

// The suffix that makes a topic or channel ephemeral.
#define NSQ_NAME_EPHEMERAL_SUFFIX "#ephemeral"

// Returns true if name matches ^[.a-zA-Z0-9_-]+(#ephemeral)?$ and is 1..64
// characters long. NULL is invalid.
bool nsq_name_is_valid(const char *name);

// The same check on size bytes at data (no terminating NUL needed): every
// byte counts, so "a\0b" is invalid. NULL data is invalid.
bool nsq_name_is_valid_n(const void *data, size_t size);

// Checks size bytes at data as nsq_name_is_valid_n does and, if valid,
// copies them into out (NSQ_NAME_MAX + 1 bytes) with a terminating NUL.
// Returns 0, or -1 if the name is invalid (out is then an empty string).
int nsq_name_copy(char *out, const void *data, size_t size);

// Returns true if name ends in "#ephemeral". Does not check the rest of the
// name: call nsq_name_is_valid first. NULL is not ephemeral.
bool nsq_name_is_ephemeral(const char *name);

// Self-test; returns 0 on success.
int nsq_names_test(void);

#endif
