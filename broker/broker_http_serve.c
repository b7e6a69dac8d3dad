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

// What a request needs from the auth server: publish on its topic, admin
// on its topic (and channel), or any identity for stats and metrics.
static broker_permit_t s_permit(broker_http_kind_t kind)
{
    switch (kind) {
    case BROKER_HTTP_PUB:
        return BROKER_PERMIT_PUBLISH;
    case BROKER_HTTP_STATS_JSON:
    case BROKER_HTTP_STATS_TEXT:
    case BROKER_HTTP_METRICS:
        return BROKER_PERMIT_IDENTITY;
    default:
        return BROKER_PERMIT_ADMIN;
    }
}

static void s_on_auth_answer(void *arg, bool cancelled);

// Asks the auth server (through the core's cache) whether request may go
// on. BROKER_OK, a refusal (the request's messages are dropped), or
// BROKER_AUTH_PENDING: s_on_auth_answer serves it again later.
static broker_result_t s_authorize(broker_server_t *server, broker_http_request_t *request,
                                   int64_t now)
{
    if (!request->has_secret)  // auth off (with auth on, the HTTP thread refused it)
        return broker_server_auth_required(server) ? BROKER_AUTH_FAILED : BROKER_OK;
    broker_auth_query_t query = {request->secret, request->secret_size, request->remote_ip, false,
                                 ""};
    bool channel_op = request->kind >= BROKER_HTTP_CHANNEL_CREATE;
    request->server = server;
    broker_result_t result = broker_server_authorize_query(
        server, &query, s_permit(request->kind), request->topic, channel_op ? request->channel : "",
        now, s_on_auth_answer, request);
    if (result != BROKER_OK && result != BROKER_AUTH_PENDING)
        for (size_t i = 0; i < request->message_count; i++)
            nsq_message_unref(&request->messages[i]);
    return result;
}

// The auth server answered for a request that waited: serve it now.
// Cancelled: the broker is stopping, and the door answers it 503.
static void s_on_auth_answer(void *arg, bool cancelled)
{
    broker_http_request_t *request = arg;
    if (cancelled)
        return;
    if (broker_http_serve(request->server, request))
        broker_http_request_done(request);
}

bool broker_http_serve(void *server, broker_http_request_t *request)
{
    int64_t now = zclock_mono();
    request->stats = NULL;
    request->result = s_authorize(server, request, now);
    if (request->result == BROKER_AUTH_PENDING)
        return false;
    if (request->result != BROKER_OK)
        return true;
    switch (request->kind) {
    case BROKER_HTTP_PUB:
        request->result =
            broker_server_publish(server, request->topic, strlen(request->topic), request->messages,
                                  request->message_count, request->defer_ms, now);
        if (request->result == BROKER_OK && !request->defer_ms)
            broker_server_grant(server, request->topic);  // the next ones need not come here
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
