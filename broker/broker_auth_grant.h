/*  broker_auth_grant - what an auth server granted one secret: its answer
    parsed and checked, and the permission test every door relies on
    SPDX-License-Identifier: MIT

    The answer is nsqd's: {"ttl": seconds, "identity": "...",
    "identity_url": "...", "authorizations": [{"topic": REGEX, "channels":
    [REGEX...], "permissions": ["subscribe"|"publish"|"admin"]}]}.
    "admin" is our extension (the HTTP door's create, delete, empty, pause
    and unpause). As nsqd does, an answer is refused whole when a
    permission is unknown, a pattern does not compile or the ttl is not
    above 0.

    Matching is nsqd's: an authorization allows (permission, topic,
    channel) when it lists the permission, its topic pattern matches the
    topic, and one of its channel patterns matches the channel, which is
    "" for a publish or a topic's administration (so a pattern list must
    match "" to publish, ".*" does). Patterns are POSIX extended regular
    expressions searched in the name, unanchored as nsqd's Go regexps are:
    write ^orders$ to mean exactly "orders".

    Pure: no I/O, no clock, no globals; safe on any thread (the auth
    client parses on its own thread and hands the grant to the core).

    API: broker_auth_grant_parse, broker_auth_grant_allows, the accessors,
    broker_auth_grant_destroy.
*/
#ifndef BROKER_AUTH_GRANT_H
#define BROKER_AUTH_GRANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _broker_auth_grant_t broker_auth_grant_t;

// What an operation needs. BROKER_PERMIT_IDENTITY asks only for a valid
// identity with at least one authorization (/stats, /metrics).
typedef enum {
    BROKER_PERMIT_IDENTITY = 0,
    BROKER_PERMIT_SUBSCRIBE = 1,
    BROKER_PERMIT_PUBLISH = 2,
    BROKER_PERMIT_ADMIN = 4,
} broker_permit_t;

// Parses and checks an auth server's answer (size bytes of JSON). Caller
// owns the result; NULL with a reason in error (never containing the
// answer's text) if it is not a valid answer or out of memory.
broker_auth_grant_t *broker_auth_grant_parse(const char *json, size_t size, char *error,
                                             size_t error_size);

// Frees the grant. Nulls *self_p; accepts NULL.
void broker_auth_grant_destroy(broker_auth_grant_t **self_p);

// True if one authorization allows permit on topic and channel (channel
// "" for a publish and a topic's administration). BROKER_PERMIT_IDENTITY:
// true if there is any authorization.
bool broker_auth_grant_allows(const broker_auth_grant_t *self, broker_permit_t permit,
                              const char *topic, const char *channel);

// The answer's ttl, in milliseconds (> 0).
int64_t broker_auth_grant_ttl_ms(const broker_auth_grant_t *self);

// The identity and its URL ("" when absent). Borrowed.
const char *broker_auth_grant_identity(const broker_auth_grant_t *self);
const char *broker_auth_grant_identity_url(const broker_auth_grant_t *self);

// How many authorizations it holds (NSQ's AUTH reply permission_count).
size_t broker_auth_grant_count(const broker_auth_grant_t *self);

// Self-test; returns 0 on success.
int broker_auth_grant_test(void);

#endif
