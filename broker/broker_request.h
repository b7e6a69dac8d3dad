/*  broker_request - one HTTP request handed from an HTTP thread to the core
    SPDX-License-Identifier: MIT

    The HTTP threads parse and validate (names, sizes, mpub framing); the
    core thread owns all topic/channel state and is the only one that acts.
    A request travels by pointer over an inproc socket and comes back by a
    call: the HTTP thread fills it and broker_request_send() passes the
    pointer to the core without waiting (the HTTP layer suspends the
    connection meanwhile, so one HTTP thread keeps many requests in flight
    and the core takes them in batches); the core fills the reply fields
    and calls broker_request_done(), which runs the sender's done callback
    (it resumes the connection). The message bodies are moved, never copied.

    Each HTTP thread keeps its own DEALER (thread-local) connected to the
    core's inproc ROUTER; the core reads [identity][pointer] and sends
    nothing back on the socket.

    API in call order: broker_request_send (HTTP thread),
    broker_request_done (core), broker_request_set_exiting,
    broker_request_shutdown.
*/
#ifndef BROKER_REQUEST_H
#define BROKER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_result.h"
#include "broker_stats.h"
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

typedef struct _broker_request_t broker_request_t;

// Runs on the core thread when the core is done with request; arg as given
// to broker_request_send.
typedef void(broker_request_done_fn)(broker_request_t *request, void *arg);

struct _broker_request_t {
    // ---- filled by the HTTP thread (already validated) ----
    broker_request_kind_t kind;
    char topic[BROKER_NAME_MAX + 1];    // "" when absent (stats without filter)
    char channel[BROKER_NAME_MAX + 1];  // "" when absent
    int64_t defer_ms;                   // PUB: hold back this long; 0 = now
    nsq_message_t **messages;           // PUB: the core takes every reference (the array
                                        // itself stays the HTTP thread's)
    size_t message_count;               // PUB: 1 for /pub, n for /mpub
    // ---- filled by the core before it answers ----
    broker_result_t result;  // what the core answered
    broker_stats_t *stats;   // stats and metrics: the snapshot (the HTTP thread renders and
                             // frees it); NULL if out of memory
    // ---- set by broker_request_send ----
    broker_request_done_fn *done;  // what broker_request_done calls
    void *done_arg;                // its argument
};

// HTTP thread: passes request to the core listening on endpoint, using this
// thread's own socket (created on first use), and returns at once. From 0 on
// the request belongs to the core until it calls broker_request_done, which
// calls done(request, arg) on the core thread; keep the request alive and
// untouched until then. Returns 0, or -1 (errno; done will never be called)
// if the exiting flag is set or the core cannot be reached: result is then
// BROKER_EXITING (or BROKER_TOO_MANY_FILES) and the caller still owns the
// messages.
int broker_request_send(const char *endpoint, broker_request_t *request,
                        broker_request_done_fn *done, void *arg);

// Core thread: the reply fields are filled; gives request back to its sender
// (calls its done callback). The core has taken every message reference,
// whatever it answered, and must not touch request afterwards.
void broker_request_done(broker_request_t *request);

// Sets the process-wide exiting flag (atomic; any thread). While it is true,
// broker_request_send fails at once. The core sets it once it will read no
// more requests; requests sent but never read are then the sender's to
// answer (broker_http_destroy answers them 503).
void broker_request_set_exiting(bool exiting);

// Closes every thread's socket. Call once after all HTTP threads are gone;
// no call may run meanwhile. A later call on any thread opens a new socket.
void broker_request_shutdown(void);

#endif
