/*  nsq_names - NSQ's rules for topic and channel names
    SPDX-License-Identifier: MIT

    A name is 1..NSQ_NAME_MAX characters of [.a-zA-Z0-9_-], optionally ending
    in "#ephemeral" (the suffix counts toward the length). Ephemeral topics
    and channels live in memory only and vanish with their last consumer.
    Names come from peers, so these checks never assert: bad input is false.

    API: nsq_name_is_valid, nsq_name_is_ephemeral.
*/
#ifndef NSQ_NAMES_H
#define NSQ_NAMES_H

#include <stdbool.h>

// Longest valid name, suffix included, without the terminating NUL.
#define NSQ_NAME_MAX 64

// The suffix that makes a topic or channel ephemeral.
#define NSQ_NAME_EPHEMERAL_SUFFIX "#ephemeral"

// Returns true if name matches ^[.a-zA-Z0-9_-]+(#ephemeral)?$ and is 1..64
// characters long. NULL is invalid.
bool nsq_name_is_valid(const char *name);

// Returns true if name ends in "#ephemeral". Does not check the rest of the
// name: call nsq_name_is_valid first. NULL is not ephemeral.
bool nsq_name_is_ephemeral(const char *name);

// Self-test; returns 0 on success.
int nsq_names_test(void);

#endif
