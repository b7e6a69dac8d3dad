/*  broker_tcp_commands - NSQ TCP V2 commands on the server
    SPDX-License-Identifier: MIT

    Texts follow nsqd's protocolV2 ("PUB failed ...", "FIN <id> failed
    ..."): clients log them and some match on the code.
*/
#include "broker_tcp_commands.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_log.h"

// Queues "code description" (fatal unless FIN/REQ/TOUCH failed).
static void s_error(broker_tcp_session_t *session, const char *code, const char *description)
{
    char text[512];
    snprintf(text, sizeof text, "%s %s", code, description);
    nsq_debug("client %s: %s", broker_tcp_session_name(session), text);
    broker_tcp_session_error(session, text);
}

// IDENTIFY: the parser settled the values; the server takes the client's
// timeouts and identity. The reply (OK or the negotiated JSON) and the
// upgrades are the I/O thread's, behind the answers before it.
static void s_identify(broker_server_t *server, broker_tcp_session_t *session,
                       const broker_tcp_identify_t *identify)
{
    broker_client_t *client = broker_tcp_session_client(session);
    broker_identify_t request = {
        .heartbeat_interval_ms = identify->heartbeat_interval_ms,  // 0 (disabled): the default
        .msg_timeout_ms = identify->msg_timeout_ms,
        .client_id = identify->client_id,
        .client_id_size = strlen(identify->client_id),
        .hostname = identify->hostname,
        .hostname_size = strlen(identify->hostname),
        .user_agent = identify->user_agent,
        .user_agent_size = strlen(identify->user_agent),
    };
    broker_identify_reply_t reply;
    broker_result_t result = broker_server_identify(server, client, &request, &reply);
    if (result == BROKER_OK) {
        broker_client_set_transport(client, identify->tls, identify->deflate, identify->snappy,
                                    identify->sample_rate);
        broker_tcp_session_set_sample_rate(session, identify->sample_rate);
        broker_tcp_session_finished(session, BROKER_TCP_POST_IDENTIFIED);
    } else if (result == BROKER_BAD_BODY) {
        s_error(session, "E_BAD_BODY", "IDENTIFY heartbeat_interval or msg_timeout out of range");
    } else {
        s_error(session, "E_INVALID", "cannot IDENTIFY in current state");
    }
}

// ---- authorization --------------------------------------------------------------------
// As nsqd's CheckAuth: with an auth server, SUB and every publish need a
// grant for their topic (and channel), asked again past its ttl; every
// refusal is fatal, and an auth server that cannot be asked refuses
// (never fails open).

static const char *s_name(broker_tcp_kind_t kind)
{
    return kind == BROKER_TCP_SUB    ? "SUB"
           : kind == BROKER_TCP_MPUB ? "MPUB"
           : kind == BROKER_TCP_DPUB ? "DPUB"
                                     : "PUB";
}

// A waiter for the session's command, for the door's callback; NULL if
// out of memory.
static broker_tcp_auth_wait_t *s_wait_new(broker_tcp_session_t *session)
{
    broker_tcp_auth_wait_t *wait = malloc(sizeof *wait);
    if (wait) {
        wait->door = broker_tcp_session_door(session);
        wait->connection = broker_tcp_session_connection(session);
    }
    return wait;
}

// The answer to an authorization that did not pass (result != BROKER_OK).
// What the auth server said stays in the log, as nsqd keeps it from
// untrusted clients.
static broker_tcp_outcome_t s_refused(broker_tcp_session_t *session,
                                      const broker_tcp_command_t *command, broker_result_t result)
{
    const char *name = s_name(command->kind);
    char text[256];
    switch (result) {
    case BROKER_AUTH_PENDING:
        return BROKER_TCP_HELD;
    case BROKER_AUTH_FIRST:
        snprintf(text, sizeof text, "AUTH required before %s", name);
        s_error(session, "E_AUTH_FIRST", text);
        break;
    case BROKER_UNAUTHORIZED:
        snprintf(text, sizeof text, "AUTH failed for %s on \"%s\" \"%s\"", name, command->topic,
                 command->kind == BROKER_TCP_SUB ? command->channel : "");
        s_error(session, "E_UNAUTHORIZED", text);
        break;
    default:
        nsq_warn("client %s: AUTH failed for %s: %s", broker_tcp_session_name(session), name,
                 result == BROKER_AUTH_FAILED ? "the auth server refused the secret"
                                              : "no auth server answered");
        s_error(session, "E_AUTH_FAILED", "AUTH failed");
        break;
    }
    return BROKER_TCP_ANSWERED;
}

// May the session's client do command (SUB, PUB, MPUB, DPUB)? The waiter
// goes with the question, kept only if the answer is pending.
static broker_result_t s_authorize(broker_server_t *server, broker_tcp_session_t *session,
                                   const broker_tcp_command_t *command,
                                   broker_auth_wait_fn *on_auth, int64_t now)
{
    if (!broker_server_auth_required(server))
        return BROKER_OK;
    broker_tcp_auth_wait_t *wait = s_wait_new(session);
    if (!wait)
        return BROKER_AUTH_UNAVAILABLE;
    bool sub = command->kind == BROKER_TCP_SUB;
    const char *channel = sub ? command->channel : "";
    broker_result_t result = broker_server_authorize(
        server, broker_tcp_session_client(session),
        sub ? BROKER_PERMIT_SUBSCRIBE : BROKER_PERMIT_PUBLISH, command->topic,
        strlen(command->topic), channel, strlen(channel), now, on_auth, wait);
    if (result != BROKER_AUTH_PENDING)
        free(wait);
    if (result == BROKER_BAD_TOPIC || result == BROKER_BAD_CHANNEL)
        return BROKER_OK;  // the operation itself says so, in nsqd's words
    return result;
}

// AUTH <secret>, as nsqd: once per connection, answered with the
// identity the auth server gave.
static broker_tcp_outcome_t s_auth(broker_server_t *server, broker_tcp_session_t *session,
                                   const broker_tcp_event_t *event, broker_auth_wait_fn *on_auth,
                                   int64_t now)
{
    if (!broker_server_auth_required(server)) {
        s_error(session, "E_AUTH_DISABLED", "AUTH disabled");
        return BROKER_TCP_ANSWERED;
    }
    broker_tcp_auth_wait_t *wait = s_wait_new(session);
    broker_auth_reply_t reply;
    broker_result_t result =
        wait ? broker_server_auth(server, broker_tcp_session_client(session), event->secret,
                                  event->secret_size, now, &reply, on_auth, wait)
             : BROKER_AUTH_UNAVAILABLE;
    if (result != BROKER_AUTH_PENDING)
        free(wait);
    switch (result) {
    case BROKER_OK:
        break;
    case BROKER_AUTH_PENDING:
        return BROKER_TCP_HELD;
    case BROKER_INVALID:
        s_error(session, "E_INVALID", "AUTH already set");
        return BROKER_TCP_ANSWERED;
    case BROKER_UNAUTHORIZED:
        s_error(session, "E_UNAUTHORIZED", "AUTH no authorizations found");
        return BROKER_TCP_ANSWERED;
    default:  // refused, or no answer: never a grant
        nsq_warn("client %s: AUTH failed: %s", broker_tcp_session_name(session),
                 result == BROKER_AUTH_FAILED ? "the auth server refused the secret"
                                              : "no auth server answered");
        s_error(session, "E_AUTH_FAILED", "AUTH failed");
        return BROKER_TCP_ANSWERED;
    }
    const char *identity = reply.identity ? reply.identity : "";
    json_t *answer = json_pack("{s:s, s:s, s:I}", "identity", identity, "identity_url",
                               reply.identity_url ? reply.identity_url : "", "permission_count",
                               (json_int_t) reply.permission_count);
    char *text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    if (!text) {
        s_error(session, "E_AUTH_ERROR", "AUTH error out of memory");
        return BROKER_TCP_ANSWERED;
    }
    nsq_info("client %s: AUTH identity %s", broker_tcp_session_name(session), identity);
    broker_tcp_session_respond(session, text);
    free(text);
    return BROKER_TCP_ANSWERED;
}

// ---- commands -------------------------------------------------------------------------

// SUB: nsqd does not require IDENTIFY first; the server does, so a client
// that skipped it is identified with the defaults.
static broker_tcp_outcome_t s_sub(broker_server_t *server, broker_tcp_session_t *session,
                                  const broker_tcp_command_t *command, broker_auth_wait_fn *on_auth,
                                  int64_t now)
{
    broker_client_t *client = broker_tcp_session_client(session);
    if (broker_client_state(client) == BROKER_CLIENT_NEW) {
        broker_identify_t defaults = {0};
        broker_identify_reply_t reply;
        broker_server_identify(server, client, &defaults, &reply);
    }
    broker_result_t allowed = s_authorize(server, session, command, on_auth, now);
    if (allowed != BROKER_OK)
        return s_refused(session, command, allowed);
    const char *topic = command->topic, *channel = command->channel;
    broker_result_t result = broker_server_subscribe(server, client, topic, strlen(topic), channel,
                                                     strlen(channel), now);
    char text[256];
    switch (result) {
    case BROKER_OK:
        broker_tcp_session_respond(session, "OK");
        break;
    case BROKER_BAD_TOPIC:
        snprintf(text, sizeof text, "SUB topic name \"%s\" is not valid", topic);
        s_error(session, "E_BAD_TOPIC", text);
        break;
    case BROKER_BAD_CHANNEL:
        snprintf(text, sizeof text, "SUB channel name \"%s\" is not valid", channel);
        s_error(session, "E_BAD_CHANNEL", text);
        break;
    case BROKER_INVALID:
        s_error(session, "E_INVALID", "cannot SUB in current state");
        break;
    default:
        snprintf(text, sizeof text, "SUB failed %s",
                 result == BROKER_TOO_MANY_FILES ? "TOO_MANY_OPEN_FILES" : "out of memory");
        s_error(session, "E_SUB_FAILED", text);
        break;
    }
    return BROKER_TCP_ANSWERED;
}

static void s_rdy(broker_server_t *server, broker_tcp_session_t *session,
                  const broker_tcp_command_t *command, int64_t now)
{
    broker_result_t result = broker_server_ready(server, broker_tcp_session_client(session),
                                                 (uint64_t) command->count, now);
    if (result == BROKER_OK)
        broker_tcp_session_finished(session, 0);
    else  // the parser checked state and range: the core disagrees
        s_error(session, "E_INVALID", "cannot RDY in current state");
}

// FIN, REQ, TOUCH: an id not in flight to this client is a non-fatal error.
static void s_settle(broker_server_t *server, broker_tcp_session_t *session,
                     const broker_tcp_command_t *command, int64_t now)
{
    broker_client_t *client = broker_tcp_session_client(session);
    size_t failed = 1;
    const char *name = "TOUCH", *code = "E_TOUCH_FAILED";
    if (command->id_valid) {
        if (command->kind == BROKER_TCP_FIN)
            broker_server_finish(server, client, &command->id, 1, &failed, now);
        else if (command->kind == BROKER_TCP_REQ)
            broker_server_requeue(server, client, &command->id, 1, command->ms, &failed, now);
        else
            broker_server_touch(server, client, &command->id, 1, &failed, now);
    }
    if (command->kind == BROKER_TCP_FIN)
        name = "FIN", code = "E_FIN_FAILED";
    else if (command->kind == BROKER_TCP_REQ)
        name = "REQ", code = "E_REQ_FAILED";
    if (!failed) {
        broker_tcp_session_finished(session, 0);
        return;
    }
    char text[96];
    snprintf(text, sizeof text, "%s %s failed ID not in flight", name, command->id_text);
    s_error(session, code, text);
}

// FINs the I/O thread gathered in a row (event->fin_ids): each is one
// command, finished, or answered E_FIN_FAILED, in order.
static void s_finish_gathered(broker_server_t *server, broker_tcp_session_t *session,
                              const broker_tcp_event_t *event, int64_t now)
{
    broker_client_t *client = broker_tcp_session_client(session);
    for (size_t i = 0; i < event->fin_count; i++) {
        size_t failed = 1;
        broker_server_finish(server, client, &event->fin_ids[i], 1, &failed, now);
        if (!failed) {
            broker_tcp_session_finished(session, 0);
            continue;
        }
        char id[NSQ_MESSAGE_ID_HEX_SIZE + 1], text[96];  // as s_settle's: valid ids are
        nsq_message_id_format(event->fin_ids[i], id);    // lowercase hex, as sent
        snprintf(text, sizeof text, "FIN %s failed ID not in flight", id);
        s_error(session, "E_FIN_FAILED", text);
    }
}

// The answer to a publish the server refused.
static void s_publish_refused(broker_tcp_session_t *session, const broker_tcp_command_t *command,
                              broker_result_t result)
{
    const char *name = s_name(command->kind);
    char code[24], text[256];
    switch (result) {
    case BROKER_BAD_TOPIC:
        snprintf(text, sizeof text, "%s topic name \"%s\" is not valid", name, command->topic);
        s_error(session, "E_BAD_TOPIC", text);
        return;
    case BROKER_BAD_MESSAGE:
        snprintf(text, sizeof text, "%s invalid message body size", name);
        s_error(session, "E_BAD_MESSAGE", text);
        return;
    case BROKER_BAD_BODY:
        snprintf(text, sizeof text, "%s body too big", name);
        s_error(session, "E_BAD_BODY", text);
        return;
    case BROKER_OUT_OF_RANGE:
        snprintf(text, sizeof text, "%s timeout %lld out of range", name, (long long) command->ms);
        s_error(session, "E_INVALID", text);
        return;
    default:
        break;
    }
    const char *reason = result == BROKER_QUEUE_FULL       ? "queue full"
                         : result == BROKER_DISK_FAILED    ? "disk write failed"
                         : result == BROKER_TOO_MANY_FILES ? "TOO_MANY_OPEN_FILES"
                         : result == BROKER_EXITING        ? "exiting"
                                                           : "out of memory";
    snprintf(code, sizeof code, "E_%s_FAILED", name);
    snprintf(text, sizeof text, "%s failed %s", name, reason);
    s_error(session, code, text);
}

static broker_tcp_outcome_t s_publish(broker_server_t *server, broker_tcp_session_t *session,
                                      broker_tcp_event_t *event, broker_tcp_wait_t **wait,
                                      broker_auth_wait_fn *on_auth, int64_t now)
{
    const broker_tcp_command_t *command = &event->command;
    broker_result_t allowed = s_authorize(server, session, command, on_auth, now);
    if (allowed != BROKER_OK)
        return s_refused(session, command, allowed);  // held: the messages stay in event
    int64_t defer = command->kind == BROKER_TCP_DPUB ? command->ms : 0;
    broker_result_t result =
        broker_server_publish(server, command->topic, strlen(command->topic), event->messages,
                              event->message_count, defer, now);
    if (result == BROKER_PENDING) {
        *wait = broker_tcp_session_wait(session, command->kind);
        if (*wait)
            return BROKER_TCP_DURABLE;
        result = BROKER_NO_MEMORY;  // it is queued but cannot be acknowledged durably
    }
    if (result == BROKER_OK)
        broker_tcp_session_respond(session, "OK");
    else
        s_publish_refused(session, command, result);
    return BROKER_TCP_ANSWERED;
}

broker_tcp_outcome_t broker_tcp_commands_handle(broker_server_t *server,
                                                broker_tcp_session_t *session,
                                                broker_tcp_event_t *event, broker_tcp_wait_t **wait,
                                                broker_auth_wait_fn *on_auth, int64_t now)
{
    const broker_tcp_command_t *command = &event->command;
    if (broker_tcp_session_closing(session) || !broker_tcp_session_client(session)) {
        broker_tcp_session_finished(session, 0);  // a fatal answer went out: nothing more
        return BROKER_TCP_ANSWERED;
    }
    switch (command->kind) {
    case BROKER_TCP_IDENTIFY:
        s_identify(server, session, &command->identify);
        break;
    case BROKER_TCP_AUTH:
        return s_auth(server, session, event, on_auth, now);
    case BROKER_TCP_SUB:
        return s_sub(server, session, command, on_auth, now);
    case BROKER_TCP_RDY:
        s_rdy(server, session, command, now);
        break;
    case BROKER_TCP_FIN:
        if (event->fin_count > 0)
            s_finish_gathered(server, session, event, now);
        else
            s_settle(server, session, command, now);
        break;
    case BROKER_TCP_REQ:
    case BROKER_TCP_TOUCH:
        s_settle(server, session, command, now);
        break;
    case BROKER_TCP_CLS:
        broker_server_close_wait(server, broker_tcp_session_client(session));
        broker_tcp_session_respond(session, "CLOSE_WAIT");
        break;
    case BROKER_TCP_PUB:
    case BROKER_TCP_MPUB:
    case BROKER_TCP_DPUB:
        return s_publish(server, session, event, wait, on_auth, now);
    case BROKER_TCP_NOP:
        broker_tcp_session_finished(session, 0);  // the I/O thread keeps NOPs; never here
        break;
    }
    return BROKER_TCP_ANSWERED;
}
