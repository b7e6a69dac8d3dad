/*  broker_commands - the ZeroMQ consumer/producer protocol: one handler per
    command of nsq.proto, run on the core thread
    SPDX-License-Identifier: MIT

    State machine per client: NEW --IDENTIFY--> IDENTIFIED --SUB-->
    SUBSCRIBED --CLS--> CLOSING. PUB is allowed in any state (producers need
    not identify). Errors are frames with a code; only protocol misuse that
    leaves the client in an unknown state is fatal. FIN/REQ/TOUCH failures
    are non-fatal, as in NSQ.
*/
#include <stdio.h>
#include <string.h>

#include "broker_core.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "nsq_utf8.h"

// Shortest heartbeat and message timeout a client may ask for.
#define MIN_HEARTBEAT_MS   100
#define MIN_MSG_TIMEOUT_MS 100

static void s_error(broker_client_t *client, const Nsq__Command *command, const char *code,
                    const char *text, int64_t now)
{
    nsq_debug("client %s: %s %s", client->key, code, text);
    broker_client_send_error(client, command->seq, code, text, false, now);
}

static void s_identify(broker_core_t *self, broker_client_t *client, const Nsq__Command *command,
                       int64_t now)
{
    const Nsq__Identify *identify = command->identify;
    if (client->state != BROKER_CLIENT_NEW) {
        s_error(client, command, "E_INVALID", "IDENTIFY only once, first", now);
        return;
    }
    int64_t heartbeat = identify->heartbeat_interval_ms;
    int64_t timeout = identify->msg_timeout_ms;
    if ((heartbeat
         && (heartbeat < MIN_HEARTBEAT_MS || heartbeat > self->config.max_heartbeat_interval_ms))
        || (timeout
            && (timeout < MIN_MSG_TIMEOUT_MS || timeout > self->config.max_msg_timeout_ms))) {
        s_error(client, command, "E_BAD_BODY", "heartbeat_interval or msg_timeout out of range",
                now);
        return;
    }
    client->heartbeat_interval_ms = heartbeat ? heartbeat : self->config.heartbeat_interval_ms;
    client->msg_timeout_ms = timeout ? timeout : self->config.msg_timeout_ms;
    // Shown in /stats and logs: valid UTF-8 without controls, whatever came
    nsq_utf8_sanitize(client->client_id, sizeof client->client_id, identify->client_id,
                      strlen(identify->client_id));
    nsq_utf8_sanitize(client->hostname, sizeof client->hostname, identify->hostname,
                      strlen(identify->hostname));
    nsq_utf8_sanitize(client->user_agent, sizeof client->user_agent, identify->user_agent,
                      strlen(identify->user_agent));
    client->state = BROKER_CLIENT_IDENTIFIED;
    Nsq__IdentifyReply reply = NSQ__IDENTIFY_REPLY__INIT;
    reply.msg_timeout_ms = (uint32_t) client->msg_timeout_ms;
    reply.max_msg_timeout_ms = (uint32_t) self->config.max_msg_timeout_ms;
    reply.max_rdy_count = (uint32_t) self->config.max_rdy_count;
    reply.heartbeat_interval_ms = (uint32_t) client->heartbeat_interval_ms;
    reply.max_msg_size = (uint64_t) self->config.max_msg_size;
    reply.version = NSQ_VERSION;
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = command->seq;
    response.text = "OK";
    response.identify = &reply;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
    frame.response = &response;
    broker_client_send_frame(client, &frame, now);
}

static void s_sub(broker_core_t *self, broker_client_t *client, const Nsq__Command *command,
                  int64_t now)
{
    const Nsq__Sub *sub = command->sub;
    if (client->state != BROKER_CLIENT_IDENTIFIED) {
        s_error(client, command, "E_INVALID", "already subscribed", now);
        return;
    }
    // Names are bytes: every byte is checked, a NUL included (nsq.proto)
    char topic_name[NSQ_NAME_MAX + 1], channel_name[NSQ_NAME_MAX + 1];
    if (nsq_name_copy(topic_name, sub->topic.data, sub->topic.len)) {
        s_error(client, command, "E_BAD_TOPIC", "invalid topic name", now);
        return;
    }
    if (nsq_name_copy(channel_name, sub->channel.data, sub->channel.len)) {
        s_error(client, command, "E_BAD_CHANNEL", "invalid channel name", now);
        return;
    }
    broker_topic_t *topic = broker_core_topic(self, topic_name, true);
    broker_channel_t *channel = topic ? broker_core_channel(self, topic, channel_name, now) : NULL;
    if (!channel || broker_channel_add_client(channel, client)) {
        bool files = broker_core_out_of_files(self, errno, topic_name);
        s_error(client, command, "E_SUB_FAILED", files ? "TOO_MANY_OPEN_FILES" : "out of memory",
                now);
        return;
    }
    client->state = BROKER_CLIENT_SUBSCRIBED;
    nsq_info("client %s (%s): subscribed to %s/%s", client->key, client->client_id, topic_name,
             channel_name);
    broker_client_send_response(client, command->seq, "OK", now);
}

static void s_rdy(broker_core_t *self, broker_client_t *client, const Nsq__Command *command,
                  int64_t now)
{
    if (client->state != BROKER_CLIENT_SUBSCRIBED && client->state != BROKER_CLIENT_CLOSING) {
        s_error(client, command, "E_INVALID", "RDY before SUB", now);
        return;
    }
    if (command->rdy->count > self->config.max_rdy_count) {
        char text[96];
        snprintf(text, sizeof text, "RDY %u is above max-rdy-count %lld", command->rdy->count,
                 (long long) self->config.max_rdy_count);
        s_error(client, command, "E_INVALID", text, now);
        return;
    }
    client->rdy = self->draining ? 0 : command->rdy->count;  // stopping: nothing new
    broker_channel_dispatch(client->channel, now);
}

// Applies one FIN, REQ or TOUCH to id; returns 0 or -1 if id is not in
// flight to client.
static int s_settle_one(broker_client_t *client, const Nsq__Command *command, uint64_t id,
                        int64_t now)
{
    broker_channel_t *channel = client->channel;
    if (!channel)
        return -1;
    if (command->cmd_case == NSQ__COMMAND__CMD_FIN)
        return broker_channel_fin(channel, client, id);
    if (command->cmd_case == NSQ__COMMAND__CMD_TOUCH)
        return broker_channel_touch(channel, client, id, now);
    int64_t delay = command->req->delay_ms;
    int64_t max = channel->config->max_req_timeout_ms;
    return broker_channel_req(channel, client, id, delay < max ? delay : max, now);
}

// Applies FIN, REQ or TOUCH to every id; one error frame names the misses.
static void s_settle(broker_client_t *client, const Nsq__Command *command, int64_t now)
{
    size_t count;
    const uint64_t *ids;
    const char *code;
    if (command->cmd_case == NSQ__COMMAND__CMD_FIN)
        count = command->fin->n_ids, ids = command->fin->ids, code = "E_FIN_FAILED";
    else if (command->cmd_case == NSQ__COMMAND__CMD_REQ)
        count = command->req->n_ids, ids = command->req->ids, code = "E_REQ_FAILED";
    else
        count = command->touch->n_ids, ids = command->touch->ids, code = "E_TOUCH_FAILED";
    size_t failed = 0;
    for (size_t i = 0; i < count; i++)
        failed += s_settle_one(client, command, ids[i], now) != 0;
    if (failed) {
        char text[96];
        snprintf(text, sizeof text, "%zu of %zu ids not in flight to this client", failed, count);
        s_error(client, command, code, text, now);
    }
    if (client->channel && command->cmd_case != NSQ__COMMAND__CMD_TOUCH)
        broker_channel_dispatch(client->channel, now);
}

// Checks a PUB command's topic and sizes and copies the topic into name
// (NSQ_NAME_MAX + 1 bytes); returns the error code or NULL if valid.
static const char *s_pub_invalid(broker_core_t *self, const Nsq__Pub *pub, char *name,
                                 const char **text)
{
    if (nsq_name_copy(name, pub->topic.data, pub->topic.len))
        return *text = "invalid topic name", "E_BAD_TOPIC";
    if (pub->n_bodies == 0)
        return *text = "no message", "E_BAD_MESSAGE";
    if (pub->defer_ms > self->config.max_req_timeout_ms)
        return *text = "defer above max-req-timeout", "E_INVALID";
    size_t total = 0;
    for (size_t i = 0; i < pub->n_bodies; i++) {
        if (pub->bodies[i].len == 0 || pub->bodies[i].len > (size_t) self->config.max_msg_size)
            return *text = "message empty or above max-msg-size", "E_BAD_MESSAGE";
        total += pub->bodies[i].len;
    }
    if (pub->n_bodies > 1 && total > (size_t) self->config.max_body_size)
        return *text = "body above max-body-size", "E_BAD_BODY";
    return NULL;
}

// The detail of an E_PUB_FAILED for errno error (topic NULL: it could not
// be created).
static const char *s_pub_failure(broker_core_t *self, const broker_topic_t *topic, const char *name,
                                 int error)
{
    if (broker_core_out_of_files(self, error, name))
        return "TOO_MANY_OPEN_FILES";
    if (!topic)
        return "out of memory";
    return topic->disk ? "disk write failed" : "queue full";
}

static void s_pub(broker_core_t *self, broker_client_t *client, const Nsq__Command *command,
                  int64_t now)
{
    const Nsq__Pub *pub = command->pub;
    const char *text = "";
    char name[NSQ_NAME_MAX + 1];
    const char *code = s_pub_invalid(self, pub, name, &text);
    if (code) {
        s_error(client, command, code, text, now);
        return;
    }
    nsq_message_t *stack[64];
    nsq_message_t **messages =
        pub->n_bodies <= 64 ? stack : malloc(pub->n_bodies * sizeof *messages);
    size_t made = 0;
    while (messages && made < pub->n_bodies) {
        messages[made] = nsq_message_new(pub->bodies[made].data, pub->bodies[made].len);
        if (!messages[made])
            break;
        made++;
    }
    broker_topic_t *topic = made == pub->n_bodies ? broker_core_topic(self, name, true) : NULL;
    if (topic) {
        broker_core_stamp(self, messages, made);
        if (broker_topic_publish(topic, messages, made, pub->defer_ms, now) == 0) {
            client->publish_count += made;
            if (self->config.durable)
                broker_sync_wait_client(self, client, command->seq);
            else
                broker_client_send_response(client, command->seq, "OK", now);
        } else
            s_error(client, command, "E_PUB_FAILED", s_pub_failure(self, topic, name, errno), now);
    } else
        s_error(client, command, "E_PUB_FAILED", s_pub_failure(self, NULL, name, errno), now);
    for (size_t i = 0; i < made; i++)
        nsq_message_unref(&messages[i]);  // NULL where the topic took them
    if (messages != stack)
        free(messages);
}

static void s_cls(broker_core_t *self, broker_client_t *client, const Nsq__Command *command,
                  int64_t now)
{
    if (command->cls->disconnect) {  // the socket is going away: requeue now
        nsq_info("client %s (%s): disconnected", client->key, client->client_id);
        broker_core_drop_client(self, client);
        return;
    }
    if (client->state == BROKER_CLIENT_SUBSCRIBED)
        client->state = BROKER_CLIENT_CLOSING;
    broker_client_send_response(client, command->seq, "CLOSE_WAIT", now);
}

// A consumer command from a peer we never saw IDENTIFY from usually means
// we restarted under a live consumer: a fatal error makes it reconnect now
// instead of after its liveness timeout. The record is dropped with it.
static bool s_needs_identify(broker_core_t *self, broker_client_t *client,
                             const Nsq__Command *command, int64_t now)
{
    if (client->state != BROKER_CLIENT_NEW)
        return false;
    switch (command->cmd_case) {
    case NSQ__COMMAND__CMD_IDENTIFY:
    case NSQ__COMMAND__CMD_PUB:
    case NSQ__COMMAND__CMD_CLS:
        return false;
    default:
        break;
    }
    broker_client_send_error(client, command->seq, "E_INVALID", "IDENTIFY first", true, now);
    broker_core_drop_client(self, client);
    return true;
}

void broker_core_handle_command(broker_core_t *self, broker_client_t *client,
                                const Nsq__Command *command, int64_t now)
{
    if (s_needs_identify(self, client, command, now))
        return;
    switch (command->cmd_case) {
    case NSQ__COMMAND__CMD_IDENTIFY:
        s_identify(self, client, command, now);
        break;
    case NSQ__COMMAND__CMD_SUB:
        s_sub(self, client, command, now);
        break;
    case NSQ__COMMAND__CMD_RDY:
        s_rdy(self, client, command, now);
        break;
    case NSQ__COMMAND__CMD_FIN:
    case NSQ__COMMAND__CMD_REQ:
    case NSQ__COMMAND__CMD_TOUCH:
        s_settle(client, command, now);
        break;
    case NSQ__COMMAND__CMD_PUB:
        s_pub(self, client, command, now);
        break;
    case NSQ__COMMAND__CMD_CLS:
        s_cls(self, client, command, now);
        break;
    case NSQ__COMMAND__CMD_HEARTBEAT:
        break;  // last_received was already updated
    default:
        self->bad_commands++;
        s_error(client, command, "E_INVALID", "unknown command", now);
        break;
    }
}
