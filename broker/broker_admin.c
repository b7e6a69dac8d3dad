/*  broker_admin - HTTP requests as the core thread handles them: publish,
    topic/channel administration and stats snapshots
    SPDX-License-Identifier: MIT

    The HTTP thread has validated names and sizes already; here we act on
    state and fill the reply (status, NSQ error code or body).
*/
#include <errno.h>
#include <string.h>

#include "broker_core.h"
#include "nsq_log.h"

static void s_reply(broker_request_t *request, int status, const char *error_code)
{
    request->status = status;
    request->error_code = error_code;
}

static void s_reply_body(broker_request_t *request, char *body, const char *content_type)
{
    if (!body) {
        s_reply(request, 500, "INTERNAL_ERROR");
        return;
    }
    request->status = 200;
    request->body = body;
    request->content_type = content_type;
}

// Drops the messages of a publish that was refused: the core takes every
// reference whatever it answers (broker_request.h).
static void s_drop_messages(broker_request_t *request)
{
    for (size_t i = 0; i < request->message_count; i++)
        nsq_message_unref(&request->messages[i]);
}

// Answers a request the core could not carry out (errno error): 503
// TOO_MANY_OPEN_FILES when the descriptor table is full, else status and code.
static void s_reply_failure(broker_core_t *self, broker_request_t *request, int error, int status,
                            const char *code)
{
    if (broker_core_out_of_files(self, error, request->topic))
        s_reply(request, 503, "TOO_MANY_OPEN_FILES");
    else
        s_reply(request, status, code);
}

// Returns true if answered, false if durable mode holds the answer.
static bool s_publish(broker_core_t *self, broker_request_t *request)
{
    broker_topic_t *topic = broker_core_topic(self, request->topic, true);
    if (!topic) {
        int error = errno;
        s_drop_messages(request);
        s_reply_failure(self, request, error, 500, "INTERNAL_ERROR");
        return true;
    }
    broker_core_stamp(self, request->messages, request->message_count);
    if (broker_topic_publish(topic, request->messages, request->message_count, request->defer_ms,
                             zclock_mono())) {
        // Memory full without a disk, or the disk write failed (ENOSPC...).
        int error = errno;
        s_drop_messages(request);
        s_reply_failure(self, request, error, 503,
                        topic->disk ? "DISK_WRITE_FAILED" : "QUEUE_FULL");
        return true;
    }
    s_reply_body(request, strdup("OK"), "text/plain; charset=utf-8");
    if (!self->config.durable || request->status != 200)
        return true;
    broker_sync_wait_request(self, request);
    return false;
}

static void s_topic_admin(broker_core_t *self, broker_request_t *request, broker_topic_t *topic)
{
    self->state_changed = true;  // a pause is saved; the fingerprint skips the rest
    switch (request->kind) {
    case BROKER_REQUEST_TOPIC_DELETE:
        broker_core_delete_topic(self, topic);
        break;
    case BROKER_REQUEST_TOPIC_EMPTY:
        broker_topic_empty(topic);
        for (size_t i = 0; i < topic->channel_count; i++)
            broker_channel_empty(topic->channels[i]);
        break;
    case BROKER_REQUEST_TOPIC_PAUSE:
        broker_topic_pause(topic);
        break;
    case BROKER_REQUEST_TOPIC_UNPAUSE:
        broker_topic_unpause(topic, zclock_mono());
        break;
    default:
        break;
    }
    s_reply(request, 200, NULL);
}

static void s_channel_admin(broker_core_t *self, broker_request_t *request, broker_topic_t *topic)
{
    self->state_changed = true;  // a pause is saved; the fingerprint skips the rest
    int64_t now = zclock_mono();
    if (request->kind == BROKER_REQUEST_CHANNEL_CREATE) {
        if (!broker_core_channel(self, topic, request->channel, now))
            s_reply_failure(self, request, errno, 500, "INTERNAL_ERROR");
        else
            s_reply(request, 200, NULL);
        return;
    }
    broker_channel_t *channel = broker_topic_channel(topic, request->channel);
    if (!channel) {
        s_reply(request, 404, "CHANNEL_NOT_FOUND");
        return;
    }
    if (request->kind == BROKER_REQUEST_CHANNEL_DELETE)
        broker_core_delete_channel(self, topic, channel);
    else if (request->kind == BROKER_REQUEST_CHANNEL_EMPTY)
        broker_channel_empty(channel);
    else if (request->kind == BROKER_REQUEST_CHANNEL_PAUSE)
        channel->paused = true;
    else if (request->kind == BROKER_REQUEST_CHANNEL_UNPAUSE) {
        channel->paused = false;
        broker_channel_dispatch(channel, now);
    }
    s_reply(request, 200, NULL);
}

bool broker_core_handle_request(broker_core_t *self, broker_request_t *request)
{
    request->body = NULL;
    request->content_type = NULL;
    request->error_code = NULL;
    switch (request->kind) {
    case BROKER_REQUEST_PUB:
        return s_publish(self, request);
    case BROKER_REQUEST_STATS_JSON:
        s_reply_body(request, broker_stats_json(self, request->topic, request->channel),
                     "application/json; charset=utf-8");
        return true;
    case BROKER_REQUEST_STATS_TEXT:
        s_reply_body(request, broker_stats_text(self, request->topic, request->channel),
                     "text/plain; charset=utf-8");
        return true;
    case BROKER_REQUEST_METRICS:
        s_reply_body(request, broker_stats_metrics(self), "text/plain; version=0.0.4");
        return true;
    default:
        break;
    }
    bool creates = request->kind == BROKER_REQUEST_TOPIC_CREATE
                   || request->kind == BROKER_REQUEST_CHANNEL_CREATE;
    broker_topic_t *topic = broker_core_topic(self, request->topic, creates);
    if (!topic && creates)
        s_reply_failure(self, request, errno, 500, "INTERNAL_ERROR");
    else if (!topic)
        s_reply(request, 404, "TOPIC_NOT_FOUND");
    if (!topic)
        return true;
    if (request->kind == BROKER_REQUEST_TOPIC_CREATE)
        s_reply(request, 200, NULL);
    else if (request->kind >= BROKER_REQUEST_CHANNEL_CREATE)
        s_channel_admin(self, request, topic);
    else
        s_topic_admin(self, request, topic);
    return true;
}
