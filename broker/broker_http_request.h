/*  broker_http_request - one HTTP request as the HTTP door hands it to the
    core thread, and the core's answer
    SPDX-License-Identifier: MIT

    The HTTP threads parse and check a request (broker_http_routes.c) and
    fill the first half; the core thread (broker_http_serve.c) carries it
    out and fills the second; the HTTP thread renders the answer
    (broker_http_answer.c). The request travels by address through the
    door's hand-off (broker_http.c) and is never touched by two threads at
    once. Message bodies are moved, never copied.
*/
#ifndef BROKER_HTTP_REQUEST_H
#define BROKER_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "broker_result.h"
#include "broker_stats.h"
#include "nsq_message.h"
#include "nsq_names.h"

#define BROKER_HTTP_SECRET_MAX 1024  // bytes of an Authorization: Bearer secret

typedef enum {
    BROKER_HTTP_PUB,         // messages[0..count) into topic, defer_ms
    BROKER_HTTP_STATS_JSON,  // /stats?format=json, topic/channel filters
    BROKER_HTTP_STATS_TEXT,  // /stats?format=text
    BROKER_HTTP_METRICS,     // /metrics, Prometheus text
    BROKER_HTTP_TOPIC_CREATE,
    BROKER_HTTP_TOPIC_DELETE,
    BROKER_HTTP_TOPIC_EMPTY,
    BROKER_HTTP_TOPIC_PAUSE,
    BROKER_HTTP_TOPIC_UNPAUSE,
    BROKER_HTTP_CHANNEL_CREATE,
    BROKER_HTTP_CHANNEL_DELETE,
    BROKER_HTTP_CHANNEL_EMPTY,
    BROKER_HTTP_CHANNEL_PAUSE,
    BROKER_HTTP_CHANNEL_UNPAUSE,
} broker_http_kind_t;

typedef struct {
    // ---- filled by the HTTP thread (already checked) ----
    broker_http_kind_t kind;              // what the core is asked to do
    char topic[NSQ_NAME_MAX + 1];         // "" when absent (stats without filter)
    char channel[NSQ_NAME_MAX + 1];       // "" when absent
    int64_t defer_ms;                     // PUB: hold back this long; 0 = now
    nsq_message_t **messages;             // PUB: the core takes every reference (the array
                                          // itself stays the HTTP thread's)
    size_t message_count;                 // PUB: 1 for /pub, n for /mpub
    bool has_secret;                      // auth on: the Bearer secret below was given
    char secret[BROKER_HTTP_SECRET_MAX];  // never logged or shown
    size_t secret_size;                   // its bytes
    char remote_ip[64];                   // the client's address, for the auth server
    void *server;                         // the core, while auth is asked (broker_http_serve)
    // ---- filled by the core before it hands the request back ----
    broker_result_t result;  // what the core answered
    broker_stats_t *stats;   // stats and metrics: the snapshot (the HTTP thread renders and
                             // frees it); NULL if out of memory
} broker_http_request_t;

#endif
