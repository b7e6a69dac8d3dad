/*  broker_request - one HTTP request handed from an HTTP thread to the core
    SPDX-License-Identifier: MIT

    The HTTP threads parse and validate (names, sizes, mpub framing); the
    core thread owns all topic/channel state and is the only one that acts.
    A request travels by pointer over an inproc socket: the HTTP thread
    fills it, broker_request_call() sends the pointer to the core and
    blocks until the core has filled the reply fields and answered. The
    message bodies are moved, never copied.

    Each HTTP thread keeps its own DEALER (thread-local) connected to the
    core's inproc ROUTER; the core reads [identity][pointer] and answers
    [identity][""] once it has filled the reply fields.
*/
#ifndef BROKER_REQUEST_H
#define BROKER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nsq_message.h"

#define BROKER_NAME_MAX 64

typedef enum {
    BROKER_REQUEST_PUB,         // messages[0..count) into topic, defer_ms
    BROKER_REQUEST_STATS_JSON,  // /stats?format=json, topic/channel filters
    BROKER_REQUEST_STATS_TEXT,  // /stats?format=text
    BROKER_REQUEST_METRICS,     // /metrics, Prometheus text
    BROKER_REQUEST_TOPIC_CREATE,
    BROKER_REQUEST_TOPIC_DELETE,
    BROKER_REQUEST_TOPIC_EMPTY,
    BROKER_REQUEST_TOPIC_PAUSE,
    BROKER_REQUEST_TOPIC_UNPAUSE,
    BROKER_REQUEST_CHANNEL_CREATE,
    BROKER_REQUEST_CHANNEL_DELETE,
    BROKER_REQUEST_CHANNEL_EMPTY,
    BROKER_REQUEST_CHANNEL_PAUSE,
    BROKER_REQUEST_CHANNEL_UNPAUSE,
} broker_request_kind_t;

typedef struct {
    // ---- filled by the HTTP thread (already validated) ----
    broker_request_kind_t kind;
    char topic[BROKER_NAME_MAX + 1];    // "" when absent (stats without filter)
    char channel[BROKER_NAME_MAX + 1];  // "" when absent
    int64_t defer_ms;                   // PUB: hold back this long; 0 = now
    nsq_message_t **messages;           // PUB: the core takes every reference (the array
                                        // itself stays the HTTP thread's)
    size_t message_count;               // PUB: 1 for /pub, n for /mpub
    // ---- filled by the core before it answers ----
    int status;                // HTTP status, e.g. 200, 404, 503
    const char *error_code;    // static NSQ code ("TOPIC_NOT_FOUND") when status >= 400
    char *body;                // success body (malloc'd; the HTTP thread frees it), or NULL
    const char *content_type;  // static, e.g. "application/json"; NULL = text/plain
} broker_request_t;

// Sends request to the core listening on endpoint and waits for its answer,
// using this thread's own socket (created on first use). On return the reply
// fields are filled. Returns 0, or -1 (errno) if the core cannot be reached
// or broker_request_set_exiting(true) was called before the answer came
// (status is then set to 503 with error_code "EXITING"). On 0 the core has
// taken every message reference, whatever status it answered; on -1 the
// caller still owns them. Waits in 100 ms slices, so it gives up at most
// 100 ms after the exiting flag is set.
int broker_request_call(const char *endpoint, broker_request_t *request);

// Sets the process-wide exiting flag (atomic; any thread). While it is true,
// broker_request_call fails at once and calls already waiting give up. The
// core sets it once it will read no more requests; a request it read but did
// not answer must not be touched afterwards (its HTTP thread reuses it).
void broker_request_set_exiting(bool exiting);

// Closes every thread's socket. Call once after all HTTP threads are gone;
// no call may run meanwhile. A later call on any thread opens a new socket.
void broker_request_shutdown(void);

#endif
