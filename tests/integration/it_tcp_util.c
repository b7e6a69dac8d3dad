/*  it_tcp_util - what the it_tcp* cases share: V2 commands with checks
    SPDX-License-Identifier: MIT

    Each helper sends through v2_client.c and fails the case (IT_ASSERT)
    when the broker does not answer as the protocol says.
*/
#include "it_tcp_util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

int tcp_cmd(v2_client_t *client, const char *line, const void *body, size_t size)
{
    char text[20100];
    IT_ASSERT(strlen(line) < sizeof text - 1, "line too long");
    snprintf(text, sizeof text, "%.20000s\n", line);
    return v2_client_command(client, text, body, size);
}

v2_client_t *tcp_connect(it_broker_t *broker)
{
    v2_client_t *client = v2_client_connect(it_broker_tcp_port(broker));
    IT_ASSERT(client, "cannot connect to the TCP port");
    IT_ASSERT(v2_client_send(client, "  V2", 4) == 0, "cannot send the magic");
    return client;
}

void tcp_identify(v2_client_t *client, const char *json, const char *reply)
{
    IT_ASSERT(tcp_cmd(client, "IDENTIFY", json, strlen(json)) == 0, "send IDENTIFY");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, reply), "IDENTIFY %s: no %s", json, reply);
}

void tcp_ok(v2_client_t *client, const char *line, const char *body)
{
    IT_ASSERT(tcp_cmd(client, line, body, body ? strlen(body) : 0) == 0, "send %s", line);
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "%s: no OK", line);
}

void tcp_error(v2_client_t *client, const char *line, const void *body, size_t size,
               const char *prefix, bool fatal)
{
    IT_ASSERT(tcp_cmd(client, line, body, size) == 0, "send %s", line);
    IT_ASSERT(v2_client_expect(client, TCP_ERROR, prefix), "%s: no %s", line, prefix);
    if (fatal)
        IT_ASSERT(v2_client_ended(client, 5000), "%s: %s did not close the connection", line,
                  prefix);
    else
        tcp_ok(client, "PUB after-error", "still open");
}

v2_client_t *tcp_consumer(it_broker_t *broker, const char *topic, const char *channel, int rdy,
                          const char *json)
{
    v2_client_t *client = tcp_connect(broker);
    if (json)
        tcp_identify(client, json, "OK");
    char line[256];
    snprintf(line, sizeof line, "SUB %s %s", topic, channel);
    tcp_ok(client, line, NULL);
    snprintf(line, sizeof line, "RDY %d", rdy);
    IT_ASSERT(tcp_cmd(client, line, NULL, 0) == 0, "send RDY");
    return client;
}

void tcp_message(v2_client_t *client, tcp_message_t *out, int timeout_ms)
{
    int length =
        v2_client_message(client, &out->attempts, out->id, out->body, sizeof out->body, timeout_ms);
    IT_ASSERT(length >= 0, "no message within %d ms", timeout_ms);
}

void tcp_fin(v2_client_t *client, const char *id)
{
    char line[32];
    snprintf(line, sizeof line, "FIN %s", id);
    IT_ASSERT(tcp_cmd(client, line, NULL, 0) == 0, "send FIN");
}

bool tcp_frame_comes(v2_client_t *client, int timeout_ms)
{
    char data[256];
    int type;
    return v2_client_frame(client, &type, data, sizeof data, timeout_ms) >= 0;
}

void tcp_ok_beating(v2_client_t *client, const char *line, const char *body)
{
    IT_ASSERT(tcp_cmd(client, line, body, strlen(body)) == 0, "send %s", line);
    char data[256];
    int type;
    while (v2_client_frame(client, &type, data, sizeof data, 5000) >= 0) {
        if (type == TCP_RESPONSE && strcmp(data, "_heartbeat_") == 0) {
            IT_ASSERT(tcp_cmd(client, "NOP", NULL, 0) == 0, "NOP");
            continue;
        }
        IT_ASSERT(type == TCP_RESPONSE && strcmp(data, "OK") == 0, "%s: %d %s", line, type, data);
        return;
    }
    IT_ASSERT(false, "%s: no answer", line);
}

char *tcp_mpub_body(uint32_t declared, const char *const *bodies, size_t count, size_t *size)
{
    return it_mpub_binary(declared, bodies, count, size);
}

size_t tcp_append(char *out, size_t at, const char *line, const char *body)
{
    at += (size_t) sprintf(out + at, "%s\n", line);
    if (body) {
        uint32_t size = htonl((uint32_t) strlen(body));
        memcpy(out + at, &size, 4);
        memcpy(out + at + 4, body, strlen(body));
        at += 4 + strlen(body);
    }
    return at;
}
