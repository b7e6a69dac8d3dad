/*  broker_auth - the auth server client: asks --auth-http-address servers
    what a secret may do (nsqd's GET /auth?remote_ip=&tls=&secret=
    &common_name=), off the core thread, and keeps the answers for their ttl
    SPDX-License-Identifier: MIT

    The core thread asks (broker_auth_lookup); a cached answer that has not
    expired is used at once. Otherwise the question goes to the client's
    own thread (a czmq actor driving libcurl's multi interface, so one slow
    auth server does not hold the others' answers), the caller gets
    BROKER_AUTH_PENDING and registers a callback; when the answer is back
    (the core's loop reads broker_auth_socket and calls broker_auth_on_answer)
    every callback waiting for that question is called, on the core thread,
    and its owner asks again. Questions asked while one is on its way wait
    for the same answer.

    Answers: 200 with a valid body (broker_auth_grant.h) is a grant, kept
    for its ttl and asked again after it; 4xx is a refusal (AUTH_FAILED);
    anything else (no connection, a timeout, 5xx, a body that does not
    parse) tries the next server, and when none answers is
    AUTH_UNAVAILABLE, logged: never a grant. Refusals and failures are kept
    one second, so the callbacks can read them and a flood of bad secrets
    does not flood the auth server. Servers are tried from a random one
    on, as nsqd does.

    Secrets never reach a log line: the query that holds one is the cache's
    key and the request's URL, nothing else.

    API in call order: broker_auth_new, broker_auth_socket,
    broker_auth_lookup, broker_auth_on_answer, broker_auth_tick,
    broker_auth_destroy.
*/
#ifndef BROKER_AUTH_H
#define BROKER_AUTH_H

#include <czmq.h>
#include <stdbool.h>

#include "broker_auth_grant.h"
#include "broker_result.h"

#define BROKER_AUTH_SECRET_MAX 1024  // bytes; a longer secret is refused (AUTH_FAILED)

typedef struct _broker_auth_t broker_auth_t;

// Who asks: the secret (bytes and size), the peer's IP ("" when unknown),
// whether its link is encrypted, its certificate's common name ("").
typedef struct {
    const char *secret;
    size_t secret_size;
    const char *remote_ip;
    bool tls;
    const char *common_name;
} broker_auth_query_t;

// The answer to a question that was pending is in: ask again. cancelled:
// the client is being destroyed and nothing will be asked (free arg only).
typedef void(broker_auth_wait_fn)(void *arg, bool cancelled);

// Starts the client thread for count addresses ("host:port" as nsqd's
// flag, or a full "http[s]://host:port/path" URL), each request limited to
// timeout_ms. addresses are copied. A program calls curl_global_init in
// main before it starts threads (this calls it once more, from the
// calling thread). Caller owns the result; NULL if out of memory or the
// thread cannot start.
broker_auth_t *broker_auth_new(const char *const *addresses, int count, int64_t timeout_ms);

// Stops the thread, frees every answer, and calls every callback still
// waiting with cancelled true. Nulls *self_p; accepts NULL.
void broker_auth_destroy(broker_auth_t **self_p);

// The socket the core's loop reads; on input call broker_auth_on_answer.
// Borrowed.
zsock_t *broker_auth_socket(broker_auth_t *self);

// Looks query up (core thread). BROKER_OK with *grant (borrowed: valid
// until the loop's next broker_auth_on_answer or broker_auth_tick),
// BROKER_AUTH_FAILED (the server refused the secret, or it is longer than
// BROKER_AUTH_SECRET_MAX), BROKER_AUTH_UNAVAILABLE
// (no server answered, too many questions at once, out of memory), or
// BROKER_AUTH_PENDING: fn(arg) is called once the answer is in (fn NULL:
// nothing is called; the question is still asked).
broker_result_t broker_auth_lookup(broker_auth_t *self, const broker_auth_query_t *query,
                                   int64_t now, const broker_auth_grant_t **grant,
                                   broker_auth_wait_fn *fn, void *arg);

// Takes the answers the thread sent and calls their callbacks.
void broker_auth_on_answer(broker_auth_t *self, int64_t now);

// Forgets answers that expired and that nobody waits for.
void broker_auth_tick(broker_auth_t *self, int64_t now);

// Questions sent to the auth servers so far (tests count round trips).
uint64_t broker_auth_asked(const broker_auth_t *self);

// Self-test against a local fake auth server; returns 0 on success.
int broker_auth_test(void);

#endif
