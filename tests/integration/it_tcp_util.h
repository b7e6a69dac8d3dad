/*  it_tcp_util - what the it_tcp* cases share: V2 commands with checks
    SPDX-License-Identifier: MIT

    The NSQ TCP door's tests (it_tcp, it_tcp_auth, it_tcp_streams) speak
    exact protocol V2 bytes through v2_client.c; these helpers send a
    command and check its answer, failing the case (IT_ASSERT) otherwise.
    Frame types as the protocol numbers them: TCP_RESPONSE, TCP_ERROR,
    TCP_MESSAGE.
*/
#ifndef IT_TCP_UTIL_H
#define IT_TCP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "v2_client.h"

#define TCP_RESPONSE 0
#define TCP_ERROR    1
#define TCP_MESSAGE  2

// Sends line plus its \n and, when body is not NULL, the sized body.
int tcp_cmd(v2_client_t *client, const char *line, const void *body, size_t size);

// A client connected to broker's TCP port that sent the magic.
v2_client_t *tcp_connect(it_broker_t *broker);

// Sends IDENTIFY with json and checks the answer starts with reply.
void tcp_identify(v2_client_t *client, const char *json, const char *reply);

// Sends a command (with an optional string body) and expects OK.
void tcp_ok(v2_client_t *client, const char *line, const char *body);

// Sends a command and expects the error text prefix; a fatal one must
// close the connection, a non-fatal one leave it open (checked with a PUB).
void tcp_error(v2_client_t *client, const char *line, const void *body, size_t size,
               const char *prefix, bool fatal);

// A subscribed consumer with credit rdy (IDENTIFY json first, if given).
v2_client_t *tcp_consumer(it_broker_t *broker, const char *topic, const char *channel, int rdy,
                          const char *json);

typedef struct {
    int attempts;
    char id[17];
    char body[256];
} tcp_message_t;

// Reads the next frame, which must be a message, into out.
void tcp_message(v2_client_t *client, tcp_message_t *out, int timeout_ms);

void tcp_fin(v2_client_t *client, const char *id);

// True if a frame comes within timeout_ms.
bool tcp_frame_comes(v2_client_t *client, int timeout_ms);

// Expects OK, answering heartbeats that come first with NOP.
void tcp_ok_beating(v2_client_t *client, const char *line, const char *body);

// An MPUB body: [int32 count]([int32 size][data])* with count declared.
char *tcp_mpub_body(uint32_t declared, const char *const *bodies, size_t count, size_t *size);

// Appends command line (with its \n) and body (when not NULL) to out.
size_t tcp_append(char *out, size_t at, const char *line, const char *body);

#endif
