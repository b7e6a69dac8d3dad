/*  broker_zmq_commands - the ZeroMQ protocol's commands: each Command of
    nsq.proto becomes one server operation, and its result an answer frame
    SPDX-License-Identifier: MIT

    Error codes and texts are the protocol's (the integration tests assert
    them): the server's result picks the code, the command the text.
*/
#include "broker_zmq_commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_log.h"

static void s_error(broker_zmq_peer_t *peer, const Nsq__Command *command, const char *code,
                    const char *text, int64_t now)
{
    nsq_debug("client %s: %s %s", broker_zmq_peer_key(peer), code, text);
    broker_zmq_peer_send_error(peer, command->seq, code, text, false, now);
}

// ---- authorization ------------------------------------------------------------------

// A waiter for this peer's held command; NULL if out of memory.
static broker_zmq_auth_wait_t *s_wait_new(broker_zmq_peer_t *peer)
{
    broker_zmq_auth_wait_t *wait = malloc(sizeof *wait);
    if (wait) {
        wait->door = broker_zmq_peer_owner(peer);
        snprintf(wait->key, sizeof wait->key, "%s", broker_zmq_peer_key(peer));
    }
    return wait;
}

// Answers an authorization that did not pass (result != BROKER_OK).
static broker_zmq_outcome_t s_auth_refused(broker_zmq_peer_t *peer, const Nsq__Command *command,
                                           broker_result_t result, int64_t now)
{
    switch (result) {
    case BROKER_AUTH_PENDING:
        return BROKER_ZMQ_HOLD;
    case BROKER_AUTH_FAILED:  // no secret, or one the auth server refused: the session ends
        nsq_info("client %s: AUTH failed", broker_zmq_peer_key(peer));
        broker_zmq_peer_send_error(peer, command->seq, "E_AUTH_FAILED", "AUTH failed", true, now);
        return BROKER_ZMQ_CLOSE;
    case BROKER_UNAUTHORIZED:
        s_error(peer, command, "E_UNAUTHORIZED", "AUTH not authorized for this", now);
        break;
    case BROKER_AUTH_FIRST:
        s_error(peer, command, "E_AUTH_FIRST", "AUTH required first", now);
        break;
    case BROKER_AUTH_DISABLED:
        s_error(peer, command, "E_AUTH_DISABLED", "AUTH disabled", now);
        break;
    case BROKER_INVALID:
        s_error(peer, command, "E_INVALID", "AUTH already set", now);
        break;
    default:  // never a grant: the auth server could not be asked
        s_error(peer, command, "E_AUTH_UNAVAILABLE", "auth server unavailable", now);
        break;
    }
    return BROKER_ZMQ_DONE;
}

// May peer's client do permit on topic and channel? A waiter goes with the
// question, kept only if the answer is pending.
static broker_result_t s_authorize(broker_server_t *server, broker_zmq_peer_t *peer,
                                   broker_permit_t permit, ProtobufCBinaryData topic,
                                   ProtobufCBinaryData channel, int64_t now,
                                   broker_auth_wait_fn *on_auth)
{
    if (!broker_server_auth_required(server))
        return BROKER_OK;
    broker_zmq_auth_wait_t *wait = s_wait_new(peer);
    if (!wait)
        return BROKER_AUTH_UNAVAILABLE;
    broker_result_t result =
        broker_server_authorize(server, broker_zmq_peer_client(peer), permit, topic.data, topic.len,
                                channel.data, channel.len, now, on_auth, wait);
    if (result != BROKER_AUTH_PENDING)
        free(wait);
    if (result == BROKER_BAD_TOPIC || result == BROKER_BAD_CHANNEL)
        return BROKER_OK;  // the operation itself says so, in its words
    return result;
}

// AUTH of secret for peer's client (reply filled on BROKER_OK).
static broker_result_t s_auth(broker_server_t *server, broker_zmq_peer_t *peer,
                              ProtobufCBinaryData secret, broker_auth_reply_t *reply, int64_t now,
                              broker_auth_wait_fn *on_auth)
{
    if (!broker_server_auth_required(server))
        return BROKER_AUTH_DISABLED;
    broker_zmq_auth_wait_t *wait = s_wait_new(peer);
    if (!wait)
        return BROKER_AUTH_UNAVAILABLE;
    broker_result_t result = broker_server_auth(server, broker_zmq_peer_client(peer), secret.data,
                                                secret.len, now, reply, on_auth, wait);
    if (result != BROKER_AUTH_PENDING)
        free(wait);
    return result;
}

static void s_auth_reply_fill(Nsq__AuthReply *answer, const broker_auth_reply_t *reply)
{
    answer->identity = (char *) reply->identity;
    answer->identity_url = (char *) reply->identity_url;
    answer->permission_count = (uint32_t) reply->permission_count;
}

static broker_zmq_outcome_t s_auth_command(broker_server_t *server, broker_zmq_peer_t *peer,
                                           const Nsq__Command *command, int64_t now,
                                           broker_auth_wait_fn *on_auth)
{
    broker_auth_reply_t reply;
    broker_result_t result = s_auth(server, peer, command->auth->secret, &reply, now, on_auth);
    if (result != BROKER_OK)
        return s_auth_refused(peer, command, result, now);
    nsq_info("client %s: AUTH identity %s", broker_zmq_peer_key(peer), reply.identity);
    Nsq__AuthReply answer = NSQ__AUTH_REPLY__INIT;
    s_auth_reply_fill(&answer, &reply);
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = command->seq;
    response.text = "OK";
    response.auth = &answer;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
    frame.response = &response;
    broker_zmq_peer_send_frame(peer, &frame, now);
    return BROKER_ZMQ_DONE;
}

// ---- commands -----------------------------------------------------------------------

// The IDENTIFY answer: the effective settings and the broker's limits, as
// an IdentifyReply inside the Response (no JSON for the client to parse).
static void s_identify_reply(broker_zmq_peer_t *peer, uint64_t seq,
                             const broker_identify_reply_t *reply, bool auth_required,
                             const broker_auth_reply_t *auth, int64_t now)
{
    Nsq__IdentifyReply answer = NSQ__IDENTIFY_REPLY__INIT;
    Nsq__AuthReply auth_answer = NSQ__AUTH_REPLY__INIT;
    answer.auth_required = auth_required;
    if (auth) {
        s_auth_reply_fill(&auth_answer, auth);
        answer.auth = &auth_answer;
    }
    answer.msg_timeout_ms = (uint32_t) reply->msg_timeout_ms;
    answer.max_msg_timeout_ms = (uint32_t) reply->max_msg_timeout_ms;
    answer.max_rdy_count = (uint32_t) reply->max_rdy_count;
    answer.heartbeat_interval_ms = (uint32_t) reply->heartbeat_interval_ms;
    answer.max_msg_size = (uint64_t) reply->max_msg_size;
    answer.version = (char *) reply->version;
    Nsq__Response response = NSQ__RESPONSE__INIT;
    response.seq = seq;
    response.text = "OK";
    response.identify = &answer;
    Nsq__Frame frame = NSQ__FRAME__INIT;
    frame.frame_case = NSQ__FRAME__FRAME_RESPONSE;
    frame.response = &response;
    broker_zmq_peer_send_frame(peer, &frame, now);
}

// IDENTIFY, with its auth secret first when it carries one (a held
// IDENTIFY comes back whole: nothing of it was applied).
static broker_zmq_outcome_t s_identify(broker_server_t *server, broker_zmq_peer_t *peer,
                                       const Nsq__Command *command, int64_t now,
                                       broker_auth_wait_fn *on_auth)
{
    const Nsq__Identify *identify = command->identify;
    broker_auth_reply_t auth;
    bool authed = identify->auth_secret.len > 0;
    if (authed && broker_client_state(broker_zmq_peer_client(peer)) != BROKER_CLIENT_NEW) {
        s_error(peer, command, "E_INVALID", "IDENTIFY only once, first", now);
        return BROKER_ZMQ_DONE;
    }
    if (authed) {
        broker_result_t result = s_auth(server, peer, identify->auth_secret, &auth, now, on_auth);
        if (result != BROKER_OK)
            return s_auth_refused(peer, command, result, now);
        nsq_info("client %s: AUTH identity %s", broker_zmq_peer_key(peer), auth.identity);
    }
    broker_identify_t request = {
        .heartbeat_interval_ms = identify->heartbeat_interval_ms,
        .msg_timeout_ms = identify->msg_timeout_ms,
        .client_id = identify->client_id,
        .client_id_size = strlen(identify->client_id),
        .hostname = identify->hostname,
        .hostname_size = strlen(identify->hostname),
        .user_agent = identify->user_agent,
        .user_agent_size = strlen(identify->user_agent),
    };
    broker_identify_reply_t reply;
    broker_result_t result =
        broker_server_identify(server, broker_zmq_peer_client(peer), &request, &reply);
    if (result == BROKER_OK)
        s_identify_reply(peer, command->seq, &reply, broker_server_auth_required(server),
                         authed ? &auth : NULL, now);
    else if (result == BROKER_BAD_BODY)
        s_error(peer, command, "E_BAD_BODY", "heartbeat_interval or msg_timeout out of range", now);
    else
        s_error(peer, command, "E_INVALID", "IDENTIFY only once, first", now);
    return BROKER_ZMQ_DONE;
}

static broker_zmq_outcome_t s_sub(broker_server_t *server, broker_zmq_peer_t *peer,
                                  const Nsq__Command *command, int64_t now,
                                  broker_auth_wait_fn *on_auth)
{
    const Nsq__Sub *sub = command->sub;
    broker_result_t result =
        s_authorize(server, peer, BROKER_PERMIT_SUBSCRIBE, sub->topic, sub->channel, now, on_auth);
    if (result != BROKER_OK)
        return s_auth_refused(peer, command, result, now);
    // Names are bytes: every byte is checked, a NUL included (nsq.proto)
    result = broker_server_subscribe(server, broker_zmq_peer_client(peer), sub->topic.data,
                                     sub->topic.len, sub->channel.data, sub->channel.len, now);
    if (result == BROKER_OK)
        broker_zmq_peer_send_response(peer, command->seq, "OK", now);
    else if (result == BROKER_INVALID)
        s_error(peer, command, "E_INVALID", "already subscribed", now);
    else if (result == BROKER_BAD_TOPIC)
        s_error(peer, command, "E_BAD_TOPIC", "invalid topic name", now);
    else if (result == BROKER_BAD_CHANNEL)
        s_error(peer, command, "E_BAD_CHANNEL", "invalid channel name", now);
    else
        s_error(peer, command, "E_SUB_FAILED",
                result == BROKER_TOO_MANY_FILES ? "TOO_MANY_OPEN_FILES" : "out of memory", now);
    return BROKER_ZMQ_DONE;
}

static void s_rdy(broker_server_t *server, broker_zmq_peer_t *peer, const Nsq__Command *command,
                  int64_t now)
{
    broker_result_t result =
        broker_server_ready(server, broker_zmq_peer_client(peer), command->rdy->count, now);
    if (result == BROKER_INVALID)
        s_error(peer, command, "E_INVALID", "RDY before SUB", now);
    else if (result == BROKER_OUT_OF_RANGE) {
        char text[96];
        snprintf(text, sizeof text, "RDY %u is above max-rdy-count %lld", command->rdy->count,
                 (long long) broker_server_config(server)->max_rdy_count);
        s_error(peer, command, "E_INVALID", text, now);
    }
}

// Applies FIN, REQ or TOUCH to every id; one error frame names the misses.
static void s_settle(broker_server_t *server, broker_zmq_peer_t *peer, const Nsq__Command *command,
                     int64_t now)
{
    broker_client_t *client = broker_zmq_peer_client(peer);
    size_t count, failed = 0;
    const char *code;
    if (command->cmd_case == NSQ__COMMAND__CMD_FIN) {
        count = command->fin->n_ids, code = "E_FIN_FAILED";
        broker_server_finish(server, client, command->fin->ids, count, &failed, now);
    } else if (command->cmd_case == NSQ__COMMAND__CMD_REQ) {
        count = command->req->n_ids, code = "E_REQ_FAILED";
        broker_server_requeue(server, client, command->req->ids, count, command->req->delay_ms,
                              &failed, now);
    } else {
        count = command->touch->n_ids, code = "E_TOUCH_FAILED";
        broker_server_touch(server, client, command->touch->ids, count, &failed, now);
    }
    if (failed) {
        char text[96];
        snprintf(text, sizeof text, "%zu of %zu ids not in flight to this client", failed, count);
        s_error(peer, command, code, text, now);
    }
}

// The answer to a PUB the server refused (or could not carry out).
static void s_pub_refused(broker_zmq_peer_t *peer, const Nsq__Command *command,
                          broker_result_t result, int64_t now)
{
    switch (result) {
    case BROKER_BAD_TOPIC:
        s_error(peer, command, "E_BAD_TOPIC", "invalid topic name", now);
        break;
    case BROKER_BAD_MESSAGE:
        s_error(peer, command, "E_BAD_MESSAGE",
                command->pub->n_bodies == 0 ? "no message" : "message empty or above max-msg-size",
                now);
        break;
    case BROKER_OUT_OF_RANGE:
        s_error(peer, command, "E_INVALID", "defer above max-req-timeout", now);
        break;
    case BROKER_BAD_BODY:
        s_error(peer, command, "E_BAD_BODY", "body above max-body-size", now);
        break;
    case BROKER_TOO_MANY_FILES:
        s_error(peer, command, "E_PUB_FAILED", "TOO_MANY_OPEN_FILES", now);
        break;
    case BROKER_DISK_FAILED:
        s_error(peer, command, "E_PUB_FAILED", "disk write failed", now);
        break;
    case BROKER_QUEUE_FULL:
        s_error(peer, command, "E_PUB_FAILED", "queue full", now);
        break;
    default:
        s_error(peer, command, "E_PUB_FAILED", "out of memory", now);
        break;
    }
}

static broker_zmq_outcome_t s_pub(broker_server_t *server, broker_zmq_peer_t *peer,
                                  const Nsq__Command *command, int64_t now,
                                  broker_auth_wait_fn *on_auth)
{
    const Nsq__Pub *pub = command->pub;
    ProtobufCBinaryData no_channel = {0, NULL};
    broker_result_t allowed =
        s_authorize(server, peer, BROKER_PERMIT_PUBLISH, pub->topic, no_channel, now, on_auth);
    if (allowed != BROKER_OK)
        return s_auth_refused(peer, command, allowed, now);
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
    broker_result_t result = BROKER_NO_MEMORY;
    if (made == pub->n_bodies)
        result = broker_server_publish(server, pub->topic.data, pub->topic.len, messages, made,
                                       pub->defer_ms, now);
    else
        for (size_t i = 0; i < made; i++)
            nsq_message_unref(&messages[i]);
    if (messages != stack)
        free(messages);
    if (result == BROKER_PENDING)
        return BROKER_ZMQ_DURABLE;
    if (result == BROKER_OK)
        broker_zmq_peer_send_response(peer, command->seq, "OK", now);
    else
        s_pub_refused(peer, command, result, now);
    return BROKER_ZMQ_DONE;
}

void broker_zmq_commands_answer_durable(broker_zmq_peer_t *peer, uint64_t seq,
                                        broker_result_t result, int64_t now)
{
    if (result == BROKER_OK)
        broker_zmq_peer_send_response(peer, seq, "OK", now);
    else
        broker_zmq_peer_send_error(peer, seq, "E_PUB_FAILED", "disk sync failed", false, now);
}

// A consumer command from a peer we never saw IDENTIFY from usually means
// we restarted under a live consumer: a fatal error makes it reconnect now
// instead of after its liveness timeout. The record is dropped with it.
static bool s_needs_identify(broker_zmq_peer_t *peer, const Nsq__Command *command, int64_t now)
{
    if (broker_client_state(broker_zmq_peer_client(peer)) != BROKER_CLIENT_NEW)
        return false;
    switch (command->cmd_case) {
    case NSQ__COMMAND__CMD_IDENTIFY:
    case NSQ__COMMAND__CMD_PUB:
    case NSQ__COMMAND__CMD_CLS:
    case NSQ__COMMAND__CMD_AUTH:
        return false;
    default:
        break;
    }
    broker_zmq_peer_send_error(peer, command->seq, "E_INVALID", "IDENTIFY first", true, now);
    return true;
}

broker_zmq_outcome_t broker_zmq_commands_handle(broker_server_t *server, broker_zmq_peer_t *peer,
                                                const Nsq__Command *command, int64_t now,
                                                broker_auth_wait_fn *on_auth)
{
    if (s_needs_identify(peer, command, now))
        return BROKER_ZMQ_CLOSE;
    broker_client_t *client = broker_zmq_peer_client(peer);
    switch (command->cmd_case) {
    case NSQ__COMMAND__CMD_IDENTIFY:
        return s_identify(server, peer, command, now, on_auth);
    case NSQ__COMMAND__CMD_AUTH:
        return s_auth_command(server, peer, command, now, on_auth);
    case NSQ__COMMAND__CMD_SUB:
        return s_sub(server, peer, command, now, on_auth);
    case NSQ__COMMAND__CMD_RDY:
        s_rdy(server, peer, command, now);
        break;
    case NSQ__COMMAND__CMD_FIN:
    case NSQ__COMMAND__CMD_REQ:
    case NSQ__COMMAND__CMD_TOUCH:
        s_settle(server, peer, command, now);
        break;
    case NSQ__COMMAND__CMD_PUB:
        return s_pub(server, peer, command, now, on_auth);
    case NSQ__COMMAND__CMD_CLS:
        if (command->cls->disconnect) {  // the socket is going away: requeue now
            nsq_info("client %s (%s): disconnected", broker_zmq_peer_key(peer),
                     broker_client_id(client));
            return BROKER_ZMQ_CLOSE;
        }
        broker_server_close_wait(server, client);
        broker_zmq_peer_send_response(peer, command->seq, "CLOSE_WAIT", now);
        break;
    case NSQ__COMMAND__CMD_HEARTBEAT:
        break;  // the door noted that it heard from the client
    default:
        broker_server_counters(server)->bad_commands++;
        s_error(peer, command, "E_INVALID", "unknown command", now);
        break;
    }
    return BROKER_ZMQ_DONE;
}
