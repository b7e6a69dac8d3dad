/*  broker_http_answer - the HTTP door's answers: a core result as NSQ's
    status and JSON code, a stats snapshot as a document, and the fixed
    answers (/ping, /info)
    SPDX-License-Identifier: MIT
*/
#include "broker_http_answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_http_stats.h"
#include "nsq_json.h"

void broker_http_answer_status(broker_result_t result, unsigned *status, const char **code)
{
    switch (result) {
    case BROKER_BAD_TOPIC:
        *status = MHD_HTTP_BAD_REQUEST, *code = "INVALID_TOPIC";
        break;
    case BROKER_BAD_CHANNEL:
        *status = MHD_HTTP_BAD_REQUEST, *code = "INVALID_ARG_CHANNEL";
        break;
    case BROKER_BAD_MESSAGE:
        *status = MHD_HTTP_BAD_REQUEST, *code = "BAD_MESSAGE";
        break;
    case BROKER_BAD_BODY:
        *status = MHD_HTTP_CONTENT_TOO_LARGE, *code = "BAD_BODY";
        break;
    case BROKER_OUT_OF_RANGE:
        *status = MHD_HTTP_BAD_REQUEST, *code = "INVALID_DEFER";
        break;
    case BROKER_TOPIC_NOT_FOUND:
        *status = MHD_HTTP_NOT_FOUND, *code = "TOPIC_NOT_FOUND";
        break;
    case BROKER_CHANNEL_NOT_FOUND:
        *status = MHD_HTTP_NOT_FOUND, *code = "CHANNEL_NOT_FOUND";
        break;
    case BROKER_QUEUE_FULL:  // memory full and no disk
        *status = MHD_HTTP_SERVICE_UNAVAILABLE, *code = "QUEUE_FULL";
        break;
    case BROKER_DISK_FAILED:  // ENOSPC...
        *status = MHD_HTTP_SERVICE_UNAVAILABLE, *code = "DISK_WRITE_FAILED";
        break;
    case BROKER_SYNC_FAILED:
        *status = MHD_HTTP_SERVICE_UNAVAILABLE, *code = "DISK_SYNC_FAILED";
        break;
    case BROKER_TOO_MANY_FILES:
        *status = MHD_HTTP_SERVICE_UNAVAILABLE, *code = "TOO_MANY_OPEN_FILES";
        break;
    case BROKER_EXITING:
        *status = MHD_HTTP_SERVICE_UNAVAILABLE, *code = "EXITING";
        break;
    case BROKER_AUTH_FAILED:  // no secret, or one the auth server refused
        *status = MHD_HTTP_UNAUTHORIZED, *code = "AUTH_FAILED";
        break;
    case BROKER_UNAUTHORIZED:
        *status = MHD_HTTP_FORBIDDEN, *code = "UNAUTHORIZED";
        break;
    case BROKER_AUTH_UNAVAILABLE:  // never fails open
        *status = MHD_HTTP_SERVICE_UNAVAILABLE, *code = "AUTH_UNAVAILABLE";
        break;
    default:  // out of memory, or what no HTTP request can meet
        *status = MHD_HTTP_INTERNAL_SERVER_ERROR, *code = "INTERNAL_ERROR";
        break;
    }
}

static enum MHD_Result s_queue(struct MHD_Connection *mhd, unsigned status,
                               struct MHD_Response *response, const char *content_type)
{
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(response, "X-NSQ-Content-Type", BROKER_HTTP_NSQ_CONTENT_TYPE);
    enum MHD_Result result = MHD_queue_response(mhd, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result s_queue_copy(struct MHD_Connection *mhd, unsigned status, const char *text,
                                    const char *content_type)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_MUST_COPY);
    return s_queue(mhd, status, response, content_type);
}

enum MHD_Result broker_http_answer_error(struct MHD_Connection *mhd, unsigned status,
                                         const char *code)
{
    char escaped[128], text[160];
    nsq_json_escape(escaped, sizeof escaped, code);
    snprintf(text, sizeof text, "{\"message\":\"%s\"}", escaped);
    return s_queue_copy(mhd, status, text, BROKER_HTTP_APPLICATION_JSON);
}

struct MHD_Response *broker_http_answer_shared_new(const char *text)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_PERSISTENT);
    if (response) {
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, BROKER_HTTP_TEXT_PLAIN);
        MHD_add_response_header(response, "X-NSQ-Content-Type", BROKER_HTTP_NSQ_CONTENT_TYPE);
    }
    return response;
}

enum MHD_Result broker_http_answer_shared(struct MHD_Connection *mhd, struct MHD_Response *response)
{
    return MHD_queue_response(mhd, MHD_HTTP_OK, response);
}

// Queues a stats document rendered from the snapshot.
static enum MHD_Result s_answer_stats(struct MHD_Connection *mhd, broker_http_kind_t kind,
                                      const broker_stats_t *stats)
{
    char *body;
    const char *content_type;
    if (kind == BROKER_HTTP_STATS_JSON)
        body = broker_http_stats_json(stats), content_type = BROKER_HTTP_APPLICATION_JSON;
    else if (kind == BROKER_HTTP_STATS_TEXT)
        body = broker_http_stats_text(stats), content_type = BROKER_HTTP_TEXT_PLAIN;
    else
        body = broker_http_stats_metrics(stats), content_type = "text/plain; version=0.0.4";
    if (!body)
        return broker_http_answer_error(mhd, MHD_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR");
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!response)
        free(body);
    return s_queue(mhd, MHD_HTTP_OK, response, content_type);
}

enum MHD_Result broker_http_answer_request(struct MHD_Connection *mhd,
                                           broker_http_request_t *request, struct MHD_Response *ok,
                                           struct MHD_Response *empty)
{
    broker_stats_t *stats = request->stats;
    request->stats = NULL;
    enum MHD_Result answer;
    if (request->result != BROKER_OK) {
        unsigned status;
        const char *code;
        broker_http_answer_status(request->result, &status, &code);
        answer = broker_http_answer_error(mhd, status, code);
    } else if (stats)
        answer = s_answer_stats(mhd, request->kind, stats);
    else
        answer = broker_http_answer_shared(mhd, request->kind == BROKER_HTTP_PUB ? ok : empty);
    broker_stats_destroy(&stats);
    return answer;
}

enum MHD_Result broker_http_answer_info(struct MHD_Connection *mhd, const broker_config_t *config,
                                        const broker_http_info_t *info)
{
    char hostname[256 * 6], broadcast[BROKER_ADDRESS_MAX * 6], text[4096];
    nsq_json_escape(hostname, sizeof hostname, info->hostname);
    nsq_json_escape(broadcast, sizeof broadcast, config->broadcast_address);
    snprintf(text, sizeof text,
             "{\"version\":\"%s\",\"broadcast_address\":\"%s\",\"hostname\":\"%s\","
             "\"http_port\":%u,\"tcp_port\":%u,\"zmq_port\":%u,\"start_time\":%lld,"
             "\"max_msg_size\":%lld,\"max_body_size\":%lld,\"max_rdy_count\":%lld,"
             "\"msg_timeout\":%lld,\"max_msg_timeout\":%lld,\"max_heartbeat_interval\":%lld}",
             NSQ_VERSION, broadcast, hostname, info->http_port, info->tcp_port, info->zmq_port,
             (long long) info->start_time, (long long) config->max_msg_size,
             (long long) config->max_body_size, (long long) config->max_rdy_count,
             (long long) config->msg_timeout_ms, (long long) config->max_msg_timeout_ms,
             (long long) config->max_heartbeat_interval_ms);
    return s_queue_copy(mhd, MHD_HTTP_OK, text, BROKER_HTTP_APPLICATION_JSON);
}
