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

// The IDENTIFY answer: the effective settings and the broker's limits, as
// an IdentifyReply inside the Response (no JSON for the client to parse).
static void s_identify_reply(broker_zmq_peer_t *peer, uint64_t seq,
                             const broker_identify_reply_t *reply, int64_t now)
{
    Nsq__IdentifyReply answer = NSQ__IDENTIFY_REPLY__INIT;
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

static void s_identify(broker_server_t *server, broker_zmq_peer_t *peer,
                       const Nsq__Command *command, int64_t now)
{
    const Nsq__Identify *identify = command->identify;
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
        s_identify_reply(peer, command->seq, &reply, now);
    else if (result == BROKER_BAD_BODY)
        s_error(peer, command, "E_BAD_BODY", "heartbeat_interval or msg_timeout out of range", now);
    else
        s_error(peer, command, "E_INVALID", "IDENTIFY only once, first", now);
}

static void s_sub(broker_server_t *server, broker_zmq_peer_t *peer, const Nsq__Command *command,
                  int64_t now)
{
    const Nsq__Sub *sub = command->sub;
    // Names are bytes: every byte is checked, a NUL included (nsq.proto)
    broker_result_t result =
        broker_server_subscribe(server, broker_zmq_peer_client(peer), sub->topic.data,
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
                                  const Nsq__Command *command, int64_t now)
{
    const Nsq__Pub *pub = command->pub;
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
        return false;
    default:
        break;
    }
    broker_zmq_peer_send_error(peer, command->seq, "E_INVALID", "IDENTIFY first", true, now);
    return true;
}

broker_zmq_outcome_t broker_zmq_commands_handle(broker_server_t *server, broker_zmq_peer_t *peer,
                                                const Nsq__Command *command, int64_t now)
{
    if (s_needs_identify(peer, command, now))
        return BROKER_ZMQ_CLOSE;
    broker_client_t *client = broker_zmq_peer_client(peer);
    switch (command->cmd_case) {
    case NSQ__COMMAND__CMD_IDENTIFY:
        s_identify(server, peer, command, now);
        break;
    case NSQ__COMMAND__CMD_SUB:
        s_sub(server, peer, command, now);
        break;
    case NSQ__COMMAND__CMD_RDY:
        s_rdy(server, peer, command, now);
        break;
    case NSQ__COMMAND__CMD_FIN:
    case NSQ__COMMAND__CMD_REQ:
    case NSQ__COMMAND__CMD_TOUCH:
        s_settle(server, peer, command, now);
        break;
    case NSQ__COMMAND__CMD_PUB:
        return s_pub(server, peer, command, now);
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
