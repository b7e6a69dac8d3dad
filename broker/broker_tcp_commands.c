/*  broker_tcp_commands - NSQ TCP V2 commands on the server
    SPDX-License-Identifier: MIT

    Texts follow nsqd's protocolV2 ("PUB failed ...", "FIN <id> failed
    ..."): clients log them and some match on the code.
*/
#include "broker_tcp_commands.h"

#include <stdio.h>
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

// AUTH. Without an auth server nsqd's answer (the parser has read the
// body). With one (--auth-http-address) this door does not carry AUTH out
// yet (the ZeroMQ and HTTP doors do): it refuses, and refuses every SUB and
// publish, so a broker with authorization never serves an unauthenticated
// TCP client (fatal errors, as nsqd's for a failed AUTH).
static void s_auth(broker_server_t *server, broker_tcp_session_t *session)
{
    if (!broker_server_auth_required(server))
        s_error(session, "E_AUTH_DISABLED", "AUTH disabled");
    else
        s_error(session, "E_AUTH_FAILED",
                "AUTH failed: not supported on the NSQ TCP door yet (use ZeroMQ or HTTP)");
}

// SUB: nsqd does not require IDENTIFY first; the server does, so a client
// that skipped it is identified with the defaults.
static void s_sub(broker_server_t *server, broker_tcp_session_t *session,
                  const broker_tcp_command_t *command, int64_t now)
{
    broker_client_t *client = broker_tcp_session_client(session);
    if (broker_client_state(client) == BROKER_CLIENT_NEW) {
        broker_identify_t defaults = {0};
        broker_identify_reply_t reply;
        broker_server_identify(server, client, &defaults, &reply);
    }
    if (broker_server_auth_required(server)) {  // see s_auth: never fail open
        s_error(session, "E_AUTH_FIRST", "AUTH required before SUB");
        return;
    }
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

// The answer to a publish the server refused.
static void s_publish_refused(broker_tcp_session_t *session, const broker_tcp_command_t *command,
                              broker_result_t result)
{
    const char *name = command->kind == BROKER_TCP_MPUB   ? "MPUB"
                       : command->kind == BROKER_TCP_DPUB ? "DPUB"
                                                          : "PUB";
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
                                      int64_t now)
{
    const broker_tcp_command_t *command = &event->command;
    if (broker_server_auth_required(server)) {  // see s_auth: never fail open
        const char *name = command->kind == BROKER_TCP_MPUB   ? "MPUB"
                           : command->kind == BROKER_TCP_DPUB ? "DPUB"
                                                              : "PUB";
        char text[64];
        snprintf(text, sizeof text, "AUTH required before %s", name);
        s_error(session, "E_AUTH_FIRST", text);
        return BROKER_TCP_ANSWERED;
    }
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
                                                int64_t now)
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
        s_auth(server, session);
        break;
    case BROKER_TCP_SUB:
        s_sub(server, session, command, now);
        break;
    case BROKER_TCP_RDY:
        s_rdy(server, session, command, now);
        break;
    case BROKER_TCP_FIN:
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
        return s_publish(server, session, event, wait, now);
    case BROKER_TCP_NOP:
        broker_tcp_session_finished(session, 0);  // the I/O thread keeps NOPs; never here
        break;
    }
    return BROKER_TCP_ANSWERED;
}
