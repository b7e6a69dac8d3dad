/*  broker_http_serve - the HTTP door's work on the core thread: each
    request handed over becomes one server operation
    SPDX-License-Identifier: MIT
*/
#include "broker_http_serve.h"

#include <czmq.h>
#include <string.h>

// Sets a durable publish's result once its sync is done and hands it back.
static void s_on_durable(void *arg, broker_result_t result)
{
    broker_http_request_t *request = arg;
    request->result = result;
    broker_http_request_done(request);
}

// The server's operation for each administrative kind.
static broker_admin_t s_admin_op(broker_http_kind_t kind)
{
    switch (kind) {
    case BROKER_HTTP_TOPIC_DELETE:
    case BROKER_HTTP_CHANNEL_DELETE:
        return BROKER_DELETE;
    case BROKER_HTTP_TOPIC_EMPTY:
    case BROKER_HTTP_CHANNEL_EMPTY:
        return BROKER_EMPTY;
    case BROKER_HTTP_TOPIC_PAUSE:
    case BROKER_HTTP_CHANNEL_PAUSE:
        return BROKER_PAUSE;
    case BROKER_HTTP_TOPIC_UNPAUSE:
    case BROKER_HTTP_CHANNEL_UNPAUSE:
        return BROKER_UNPAUSE;
    default:
        return BROKER_CREATE;
    }
}

bool broker_http_serve(void *server, broker_http_request_t *request)
{
    int64_t now = zclock_mono();
    request->stats = NULL;
    request->result = BROKER_OK;
    switch (request->kind) {
    case BROKER_HTTP_PUB:
        request->result =
            broker_server_publish(server, request->topic, strlen(request->topic), request->messages,
                                  request->message_count, request->defer_ms, now);
        if (request->result != BROKER_PENDING)
            return true;
        broker_server_wait_durable(server, s_on_durable, request);
        return false;
    case BROKER_HTTP_STATS_JSON:
    case BROKER_HTTP_STATS_TEXT:
        request->stats = broker_server_stats(server, request->topic, request->channel);
        break;
    case BROKER_HTTP_METRICS:
        request->stats = broker_server_stats(server, "", "");
        break;
    case BROKER_HTTP_TOPIC_CREATE:
    case BROKER_HTTP_TOPIC_DELETE:
    case BROKER_HTTP_TOPIC_EMPTY:
    case BROKER_HTTP_TOPIC_PAUSE:
    case BROKER_HTTP_TOPIC_UNPAUSE:
        request->result = broker_server_topic(server, s_admin_op(request->kind), request->topic,
                                              strlen(request->topic), now);
        break;
    default:
        request->result = broker_server_channel(server, s_admin_op(request->kind), request->topic,
                                                strlen(request->topic), request->channel,
                                                strlen(request->channel), now);
        break;
    }
    if ((request->kind == BROKER_HTTP_STATS_JSON || request->kind == BROKER_HTTP_STATS_TEXT
         || request->kind == BROKER_HTTP_METRICS)
        && !request->stats)
        request->result = BROKER_NO_MEMORY;
    return true;
}
