/*  it_tcp - the NSQ TCP door (protocol V2) of the real broker, through a raw
    V2 client (v2_client.c): what go-nsq, pynsq and nsqjs rely on
    SPDX-License-Identifier: MIT

    Every case starts nsq-broker with --tcp-address=127.0.0.1:0 (the
    harness default) and speaks exact bytes: the handshake and feature
    negotiation, every command, fan-out and sharing a channel with a
    ZeroMQ consumer, credit, timeouts, requeues, TOUCH, DPUB, durable
    publishes, heartbeats and the drop after missed ones, CLS, each error
    code with nsqd's fatal/non-fatal split, the deflate, snappy and TLS
    streams, and bad input (wrong magic, oversized frames, MPUB whose
    count lies, silent and vanishing clients) while others are served;
    AUTH against the reference auth server (nsq-auth-server) and a fake
    one that shows what the broker asks.
*/
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_tls.h"
#include "v2_client.h"

#define S_RESPONSE 0
#define S_ERROR    1
#define S_MESSAGE  2

// ---- helpers ------------------------------------------------------------------

// Sends line plus its \n and, when body is not NULL, the sized body.
static int s_cmd(v2_client_t *client, const char *line, const void *body, size_t size)
{
    char text[20100];
    IT_ASSERT(strlen(line) < sizeof text - 1, "line too long");
    snprintf(text, sizeof text, "%.20000s\n", line);
    return v2_client_command(client, text, body, size);
}

// A client connected to broker's TCP port that sent the magic.
static v2_client_t *s_connect(it_broker_t *broker)
{
    v2_client_t *client = v2_client_connect(it_broker_tcp_port(broker));
    IT_ASSERT(client, "cannot connect to the TCP port");
    IT_ASSERT(v2_client_send(client, "  V2", 4) == 0, "cannot send the magic");
    return client;
}

// Sends IDENTIFY with json and checks the answer starts with reply.
static void s_identify(v2_client_t *client, const char *json, const char *reply)
{
    IT_ASSERT(s_cmd(client, "IDENTIFY", json, strlen(json)) == 0, "send IDENTIFY");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, reply), "IDENTIFY %s: no %s", json, reply);
}

// Sends a command (with an optional string body) and expects OK.
static void s_ok(v2_client_t *client, const char *line, const char *body)
{
    IT_ASSERT(s_cmd(client, line, body, body ? strlen(body) : 0) == 0, "send %s", line);
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "%s: no OK", line);
}

// Sends a command and expects the error text prefix; a fatal one must
// close the connection, a non-fatal one leave it open (checked with a PUB).
static void s_error(v2_client_t *client, const char *line, const void *body, size_t size,
                    const char *prefix, bool fatal)
{
    IT_ASSERT(s_cmd(client, line, body, size) == 0, "send %s", line);
    IT_ASSERT(v2_client_expect(client, S_ERROR, prefix), "%s: no %s", line, prefix);
    if (fatal)
        IT_ASSERT(v2_client_ended(client, 5000), "%s: %s did not close the connection", line,
                  prefix);
    else
        s_ok(client, "PUB after-error", "still open");
}

// A subscribed consumer with credit rdy (IDENTIFY json first, if given).
static v2_client_t *s_consumer(it_broker_t *broker, const char *topic, const char *channel, int rdy,
                               const char *json)
{
    v2_client_t *client = s_connect(broker);
    if (json)
        s_identify(client, json, "OK");
    char line[256];
    snprintf(line, sizeof line, "SUB %s %s", topic, channel);
    s_ok(client, line, NULL);
    snprintf(line, sizeof line, "RDY %d", rdy);
    IT_ASSERT(s_cmd(client, line, NULL, 0) == 0, "send RDY");
    return client;
}

typedef struct {
    int attempts;
    char id[17];
    char body[256];
} s_message_t;

// Reads the next frame, which must be a message, into out.
static void s_message(v2_client_t *client, s_message_t *out, int timeout_ms)
{
    int length =
        v2_client_message(client, &out->attempts, out->id, out->body, sizeof out->body, timeout_ms);
    IT_ASSERT(length >= 0, "no message within %d ms", timeout_ms);
}

static void s_fin(v2_client_t *client, const char *id)
{
    char line[32];
    snprintf(line, sizeof line, "FIN %s", id);
    IT_ASSERT(s_cmd(client, line, NULL, 0) == 0, "send FIN");
}

// True if a frame comes within timeout_ms.
static bool s_frame_comes(v2_client_t *client, int timeout_ms)
{
    char data[256];
    int type;
    return v2_client_frame(client, &type, data, sizeof data, timeout_ms) >= 0;
}

// Expects OK, answering heartbeats that come first with NOP.
static void s_ok_beating(v2_client_t *client, const char *line, const char *body)
{
    IT_ASSERT(s_cmd(client, line, body, strlen(body)) == 0, "send %s", line);
    char data[256];
    int type;
    while (v2_client_frame(client, &type, data, sizeof data, 5000) >= 0) {
        if (type == S_RESPONSE && strcmp(data, "_heartbeat_") == 0) {
            IT_ASSERT(s_cmd(client, "NOP", NULL, 0) == 0, "NOP");
            continue;
        }
        IT_ASSERT(type == S_RESPONSE && strcmp(data, "OK") == 0, "%s: %d %s", line, type, data);
        return;
    }
    IT_ASSERT(false, "%s: no answer", line);
}

// An MPUB body: [int32 count]([int32 size][data])* with count declared.
static char *s_mpub_body(uint32_t declared, const char *const *bodies, size_t count, size_t *size)
{
    return it_mpub_binary(declared, bodies, count, size);
}

// ---- the handshake and every command ---------------------------------------------

static void s_handshake(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *client = s_connect(broker);
    const char *json = "{\"client_id\":\"it\",\"hostname\":\"h\",\"user_agent\":\"it_tcp/1\","
                       "\"feature_negotiation\":true,\"msg_timeout\":5000,\"sample_rate\":0}";
    IT_ASSERT(s_cmd(client, "IDENTIFY", json, strlen(json)) == 0, "send");
    char reply[1024];
    int type;
    IT_ASSERT(v2_client_frame(client, &type, reply, sizeof reply, 5000) > 0 && type == S_RESPONSE,
              "no IDENTIFY reply");
    IT_ASSERT(it_json_parses(reply, "doc['max_rdy_count'] == 2500 and doc['msg_timeout'] == 5000 "
                                    "and doc['tls_v1'] == False and doc['auth_required'] == False "
                                    "and doc['output_buffer_timeout'] == 250"),
              "IDENTIFY reply %s", reply);
    // NOP has no answer; the next command's answer comes first.
    IT_ASSERT(s_cmd(client, "NOP", NULL, 0) == 0, "NOP");
    s_ok(client, "PUB hs", "x");
    // /stats shows the TCP client as nsqd does.
    s_ok(client, "SUB hs c", NULL);
    char *stats = it_stats(broker);
    IT_ASSERT(stats
                  && it_json_parses(stats, "[c for t in doc['topics'] for ch in t['channels'] "
                                           "for c in ch['clients']][0]['user_agent'] == "
                                           "'it_tcp/1'"),
              "stats %s", stats ? stats : "(none)");
    const char *clients = strstr(stats, "\"clients\":[");
    IT_ASSERT(clients && strstr(clients, "\"door\":\"tcp\"") && strstr(clients, "\"tls\":false")
                  && strstr(clients, "\"remote_address\":\"127.0.0.1:"),
              "stats client %s", clients ? clients : stats);
    free(stats);
    // /info and /metrics
    char *info = NULL;
    IT_ASSERT_INT(it_http(broker, "GET", "/info", NULL, 0, &info), ==, 200);
    char port[32];
    snprintf(port, sizeof port, "\"tcp_port\":%u", it_broker_tcp_port(broker));
    IT_ASSERT(strstr(info, port), "/info %s has no %s", info, port);
    free(info);
    char *metrics = NULL;
    IT_ASSERT_INT(it_http(broker, "GET", "/metrics", NULL, 0, &metrics), ==, 200);
    IT_ASSERT(strstr(metrics, "nsq_broker_door_clients{door=\"tcp\"} 1"), "metrics %s", metrics);
    free(metrics);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// PUB, MPUB, SUB, RDY, FIN; fan-out to two channels; a TCP publish reaches
// a ZeroMQ consumer and an HTTP publish a TCP consumer.
static void s_pubsub(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *producer = s_connect(broker);
    s_ok(producer, "PUB fan", "one");  // the topic exists before its channels
    v2_client_t *first = s_consumer(broker, "fan", "a", 10, NULL);
    v2_client_t *second = s_consumer(broker, "fan", "b", 10, "{\"client_id\":\"b\"}");
    it_sink_t *zmq = it_sink_new(broker, "fan", "z", 10, true);
    it_wait_clients(broker, "fan", "z", 1);
    const char *bodies[] = {"two", "three"};
    size_t size;
    char *mpub = s_mpub_body(2, bodies, 2, &size);
    IT_ASSERT(s_cmd(producer, "MPUB fan", mpub, size) == 0, "MPUB");
    IT_ASSERT(v2_client_expect(producer, S_RESPONSE, "OK"), "MPUB: no OK");
    free(mpub);
    it_pub(broker, "fan", "four");
    v2_client_t *consumers[] = {first, second};
    for (int c = 0; c < 2; c++) {
        // "one" waited in the topic for its first channel: only "a" has it.
        const char *expected[] = {"one", "two", "three", "four"};
        for (int i = c; i < 4; i++) {
            s_message_t message;
            s_message(consumers[c], &message, 5000);
            IT_ASSERT(message.attempts == 1, "attempts %d", message.attempts);
            IT_ASSERT(strcmp(message.body, expected[i]) == 0, "channel %d got %s, not %s", c,
                      message.body, expected[i]);
            s_fin(consumers[c], message.id);
        }
    }
    IT_ASSERT(it_sink_wait(zmq, 3, 5000), "the ZeroMQ consumer got %zu of 3", it_sink_count(zmq));
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "fan", "a")
                             && it_channel_settled(broker, "fan", "b"),
                         5000, "FINs did not settle the channels");
    IT_ASSERT_INT(it_channel_stat(broker, "fan", "a", "message_count"), ==, 4);
    it_sink_destroy(&zmq);
    v2_client_destroy(&first);
    v2_client_destroy(&second);
    v2_client_destroy(&producer);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// One channel, a TCP and a ZeroMQ consumer: each message goes to exactly
// one of them, and both get some.
static void s_balance(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *tcp = s_consumer(broker, "share", "c", 5, NULL);
    it_sink_t *zmq = it_sink_new(broker, "share", "c", 5, true);
    it_wait_clients(broker, "share", "c", 2);
    enum { COUNT = 400 };
    static char seen[COUNT];
    v2_client_t *producer = s_connect(broker);
    for (int i = 0; i < COUNT; i++) {
        char body[16];
        snprintf(body, sizeof body, "%d", i);
        IT_ASSERT(s_cmd(producer, "PUB share", body, strlen(body)) == 0, "PUB");
    }
    for (int i = 0; i < COUNT; i++)
        IT_ASSERT(v2_client_expect(producer, S_RESPONSE, "OK"), "PUB %d: no OK", i);
    size_t by_tcp = 0;
    int64_t deadline = it_now_ms() + 20000;
    while (by_tcp + it_sink_count(zmq) < COUNT && it_now_ms() < deadline) {
        s_message_t message;
        while (v2_client_message(tcp, &message.attempts, message.id, message.body,
                                 sizeof message.body, 10)
               >= 0) {
            int index = atoi(message.body);
            IT_ASSERT(index >= 0 && index < COUNT && !seen[index], "message %s twice",
                      message.body);
            seen[index] = 1;
            by_tcp++;
            s_fin(tcp, message.id);
        }
        it_sink_pump(&zmq, 1, 10);
    }
    size_t by_zmq = it_sink_count(zmq);
    for (size_t i = 0; i < by_zmq; i++) {
        int index = atoi(it_sink_get(zmq, i)->body);
        IT_ASSERT(index >= 0 && index < COUNT && !seen[index], "message %d twice", index);
        seen[index] = 1;
    }
    it_note("tcp %zu, zmq %zu", by_tcp, by_zmq);
    IT_ASSERT_INT(by_tcp + by_zmq, ==, COUNT);
    IT_ASSERT(by_tcp > 0 && by_zmq > 0, "one door got nothing (tcp %zu, zmq %zu)", by_tcp, by_zmq);
    it_sink_destroy(&zmq);
    v2_client_destroy(&tcp);
    v2_client_destroy(&producer);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// RDY 2 holds two messages in flight and no more; a FIN lets the next go.
static void s_rdy(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    for (int i = 0; i < 5; i++)
        it_pub(broker, "credit", "m");
    v2_client_t *client = s_consumer(broker, "credit", "c", 2, NULL);
    s_message_t one, two, three;
    s_message(client, &one, 5000);
    s_message(client, &two, 5000);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "credit", "c", "in_flight_count") == 2, 5000,
                         "in flight");
    IT_ASSERT(!s_frame_comes(client, 300), "a third message came with RDY 2");
    IT_ASSERT_INT(it_channel_stat(broker, "credit", "c", "in_flight_count"), ==, 2);
    s_fin(client, one.id);
    s_message(client, &three, 5000);
    IT_ASSERT(strcmp(three.id, one.id) && strcmp(three.id, two.id), "a message came twice");
    // RDY 0 stops deliveries; RDY above --max-rdy-count is fatal.
    IT_ASSERT(s_cmd(client, "RDY 0", NULL, 0) == 0, "RDY 0");
    s_fin(client, two.id);
    s_fin(client, three.id);
    IT_ASSERT(!s_frame_comes(client, 300), "a message came with RDY 0");
    s_error(client, "RDY 2501", NULL, 0, "E_INVALID RDY count 2501 out of range", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// An unsettled message times out and comes back with attempts 2; REQ with
// a delay brings it back too; TOUCH keeps it in flight past its timeout.
static void s_timeouts(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_pub(broker, "late", "x");
    v2_client_t *client = s_consumer(broker, "late", "c", 1, "{\"msg_timeout\":1000}");
    s_message_t message;
    s_message(client, &message, 5000);
    IT_ASSERT_INT(message.attempts, ==, 1);
    s_message(client, &message, 5000);  // timed out after 1 s
    IT_ASSERT_INT(message.attempts, ==, 2);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "late", "c", "timeout_count") == 1, 5000,
                         "timeout not counted");
    // REQ 300: back after the delay, attempts 3; deferred meanwhile.
    char line[64];
    snprintf(line, sizeof line, "REQ %s 300", message.id);
    IT_ASSERT(s_cmd(client, line, NULL, 0) == 0, "REQ");
    int64_t requeued = it_now_ms();
    s_message(client, &message, 5000);
    IT_ASSERT_INT(message.attempts, ==, 3);
    IT_ASSERT(it_now_ms() - requeued >= 250, "REQ 300 came back after %lld ms",
              (long long) (it_now_ms() - requeued));
    IT_ASSERT_INT(it_channel_stat(broker, "late", "c", "requeue_count"), ==, 1);
    // TOUCH twice over 1.4 s, then FIN: the FIN matches (no E_FIN_FAILED
    // before the next PUB's OK), so the message never timed out.
    snprintf(line, sizeof line, "TOUCH %s", message.id);
    for (int i = 0; i < 2; i++) {
        it_sleep_ms(700);
        IT_ASSERT(s_cmd(client, line, NULL, 0) == 0, "TOUCH");
    }
    s_fin(client, message.id);
    s_ok(client, "PUB other", "y");
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "late", "c"), 5000, "not settled");
    IT_ASSERT_INT(it_channel_stat(broker, "late", "c", "timeout_count"), ==, 1);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// DPUB defers a message; out of range is fatal E_INVALID.
static void s_dpub(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *consumer = s_consumer(broker, "later", "c", 5, NULL);
    v2_client_t *producer = s_connect(broker);
    int64_t sent = it_now_ms();
    s_ok(producer, "DPUB later 500", "deferred");
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "later", "c", "deferred_count") == 1, 2000,
                         "not deferred");
    s_message_t message;
    s_message(consumer, &message, 5000);
    IT_ASSERT(it_now_ms() - sent >= 450, "DPUB 500 came after %lld ms",
              (long long) (it_now_ms() - sent));
    IT_ASSERT_STR(message.body, "deferred");
    s_error(producer, "DPUB later 3600001", "x", 1, "E_INVALID DPUB timeout 3600001 out of range",
            true);
    v2_client_destroy(&consumer);
    v2_client_destroy(&producer);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Durable mode: PUB and MPUB are answered after the sync, in order, also
// when pipelined with other commands.
static void s_durable(void)
{
    const char *flags[] = {"--durable", NULL};
    it_broker_t *broker = it_broker_start(flags);
    v2_client_t *client = s_connect(broker);
    const char *bodies[] = {"b", "c"};
    size_t size;
    char *mpub = s_mpub_body(2, bodies, 2, &size);
    IT_ASSERT(s_cmd(client, "PUB sure", "a", 1) == 0, "PUB");
    IT_ASSERT(s_cmd(client, "MPUB sure", mpub, size) == 0, "MPUB");
    IT_ASSERT(s_cmd(client, "FIN 0000000000000000", NULL, 0) == 0, "FIN");
    IT_ASSERT(s_cmd(client, "DPUB sure 10", "d", 1) == 0, "DPUB");
    free(mpub);
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "PUB: no OK");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "MPUB: no OK");
    // FIN before SUB is fatal in nsqd: the DPUB behind it is not carried out.
    IT_ASSERT(v2_client_expect(client, S_ERROR, "E_INVALID cannot FIN in current state"),
              "FIN: no E_INVALID");
    IT_ASSERT(v2_client_ended(client, 5000), "not closed after a fatal error");
    IT_ASSERT_EVENTUALLY(it_topic_stat(broker, "sure", "depth") == 3, 5000, "depth");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Heartbeats at the negotiated interval; a client that stops answering is
// dropped after two and its message goes to another consumer at once.
static void s_heartbeats(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_pub(broker, "beat", "held");
    v2_client_t *client = s_consumer(broker, "beat", "c", 1, "{\"heartbeat_interval\":1000}");
    s_message_t message;
    s_message(client, &message, 5000);
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "_heartbeat_"), "no heartbeat");
    IT_ASSERT(s_cmd(client, "NOP", NULL, 0) == 0, "NOP");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "_heartbeat_"), "no second heartbeat");
    // Silent from now on: dropped within two intervals (and a bit).
    int64_t silent = it_now_ms();
    IT_ASSERT(v2_client_ended(client, 6000), "a silent client was not dropped");
    it_note("dropped after %lld ms of silence", (long long) (it_now_ms() - silent));
    v2_client_t *next = s_consumer(broker, "beat", "c", 1, NULL);
    s_message(next, &message, 5000);  // long before --msg-timeout (60 s)
    IT_ASSERT_INT(message.attempts, ==, 2);
    // heartbeat_interval -1 disables them, and SUB is then refused (fatal).
    v2_client_t *quiet = s_connect(broker);
    s_identify(quiet, "{\"heartbeat_interval\":-1}", "OK");
    s_error(quiet, "SUB beat d", NULL, 0, "E_INVALID cannot SUB with heartbeats disabled", true);
    v2_client_destroy(&quiet);
    v2_client_destroy(&client);
    v2_client_destroy(&next);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// CLS: CLOSE_WAIT, no new messages, the ones held may still be finished.
static void s_cls(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_pub(broker, "close", "one");
    v2_client_t *client = s_consumer(broker, "close", "c", 5, NULL);
    s_message_t message;
    s_message(client, &message, 5000);
    IT_ASSERT(s_cmd(client, "CLS", NULL, 0) == 0, "CLS");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "CLOSE_WAIT"), "no CLOSE_WAIT");
    it_pub(broker, "close", "two");
    IT_ASSERT(!s_frame_comes(client, 300), "a message came after CLS");
    s_fin(client, message.id);
    s_ok(client, "PUB close", "three");  // the FIN matched: no error before this OK
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "close", "c", "depth") == 2, 5000, "depth");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Appends line and its sized body (if any) to out at at; returns the end.
static size_t s_append(char *out, size_t at, const char *line, const char *body);

// FINs sent in one write (the broker hands FINs in a row to the core
// together): each settles its message, one not in flight in the middle
// gets its own E_FIN_FAILED in its place, and a REQ after them is carried
// out after them.
static void s_fins_in_one_write(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *producer = s_connect(broker);
    const char *bodies[] = {"a", "b", "c", "d"};
    size_t size;
    char *mpub = s_mpub_body(4, bodies, 4, &size);
    s_ok(producer, "PUB batch", "first");  // the topic, before its channel
    v2_client_t *client = s_consumer(broker, "batch", "c", 10, NULL);
    IT_ASSERT(s_cmd(producer, "MPUB batch", mpub, size) == 0, "MPUB");
    IT_ASSERT(v2_client_expect(producer, S_RESPONSE, "OK"), "MPUB: no OK");
    free(mpub);
    s_message_t messages[5];
    for (int i = 0; i < 5; i++)
        s_message(client, &messages[i], 5000);
    char bytes[512], line[64];
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(line, sizeof line, "FIN %s", messages[i].id);
        at = s_append(bytes, at, line, NULL);
        if (i == 1)
            at = s_append(bytes, at, "FIN 0123456789abcdef", NULL);
    }
    snprintf(line, sizeof line, "REQ %s 0", messages[4].id);
    at = s_append(bytes, at, line, NULL);
    at = s_append(bytes, at, "FIN fedcba9876543210", NULL);
    IT_ASSERT(v2_client_send(client, bytes, at) == 0, "send");
    IT_ASSERT(v2_client_expect(client, S_ERROR, "E_FIN_FAILED FIN 0123456789abcdef failed"),
              "the FIN in the middle was not refused in its place");
    s_message_t again;
    s_message(client, &again, 5000);  // the REQ: back with attempts 2
    IT_ASSERT_INT(again.attempts, ==, 2);
    IT_ASSERT_STR(again.body, messages[4].body);
    IT_ASSERT(v2_client_expect(client, S_ERROR, "E_FIN_FAILED FIN fedcba9876543210 failed"),
              "the FIN after the REQ");
    s_fin(client, again.id);
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "batch", "c"), 5000,
                         "the FINs did not settle the channel");
    IT_ASSERT_INT(it_channel_stat(broker, "batch", "c", "requeue_count"), ==, 1);
    v2_client_destroy(&client);
    v2_client_destroy(&producer);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// ---- errors --------------------------------------------------------------------

static void s_errors(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    // Non-fatal: FIN, REQ and TOUCH of an id not in flight.
    v2_client_t *client = s_consumer(broker, "err", "c", 1, NULL);
    s_error(client, "FIN 0123456789abcdef", NULL, 0, "E_FIN_FAILED FIN 0123456789abcdef failed",
            false);
    s_error(client, "REQ 0123456789abcdef 0", NULL, 0, "E_REQ_FAILED", false);
    s_error(client, "TOUCH 0123456789abcdef", NULL, 0, "E_TOUCH_FAILED", false);
    s_error(client, "FIN 12345", NULL, 0, "E_INVALID", true);
    v2_client_destroy(&client);
    struct {
        const char *line, *body, *code;
    } fatal[] = {
        {"HELLO", NULL, "E_INVALID invalid command HELLO"},
        {"PUB bad!topic", "x", "E_BAD_TOPIC PUB topic name \"bad!topic\" is not valid"},
        {"SUB err bad!channel", NULL, "E_BAD_CHANNEL SUB channel name \"bad!channel\""},
        {"PUB err", "", "E_BAD_MESSAGE PUB invalid message body size 0"},
        {"IDENTIFY", "{not json", "E_BAD_BODY"},
        {"IDENTIFY", "{\"feature_negotiation\":true,\"snappy\":true,\"deflate\":true}",
         "E_IDENTIFY_FAILED"},
        {"AUTH", "secret", "E_AUTH_DISABLED AUTH disabled"},
        {"RDY 1", NULL, "E_INVALID cannot RDY in current state"},
        {"CLS", NULL, "E_INVALID cannot CLS in current state"},
    };
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        client = s_connect(broker);
        s_error(client, fatal[i].line, fatal[i].body, fatal[i].body ? strlen(fatal[i].body) : 0,
                fatal[i].code, true);
        v2_client_destroy(&client);
    }
    // The broker serves on.
    client = s_connect(broker);
    s_ok(client, "PUB err", "fine");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// E_PUB_FAILED, E_MPUB_FAILED, E_DPUB_FAILED: the core cannot store the
// message (a full disk; needs root for a 2 MiB tmpfs in a private mount
// namespace, gone with the case).
static void s_publish_failed(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0
        || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("SKIP publish_failed: needs root to mount a small tmpfs\n");
        return;
    }
    char dir[] = "/tmp/it_tcp_full_XXXXXX", data_flag[64];
    IT_ASSERT(mkdtemp(dir), "mkdtemp");
    IT_ASSERT(mount("tmpfs", dir, "tmpfs", 0, "size=2m") == 0, "mount: %s", strerror(errno));
    snprintf(data_flag, sizeof data_flag, "--data-path=%s", dir);
    const char *flags[] = {data_flag, "--mem-queue-size=0", "--max-bytes-per-file=262144", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_post_ok(broker, "/channel/create?topic=full&channel=c");
    static char body[10001];  // 10 kB and a NUL (MPUB bodies are strings)
    memset(body, 'x', sizeof body - 1);
    v2_client_t *client = s_connect(broker);
    char data[256];
    int type = S_RESPONSE, accepted = -1;
    while (type == S_RESPONSE && accepted < 1000) {
        IT_ASSERT(s_cmd(client, "PUB full", body, sizeof body - 1) == 0, "PUB");
        IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 5000) >= 0, "no answer");
        accepted++;
    }
    it_note("disk full after %d messages of 10 kB", accepted);
    IT_ASSERT(type == S_ERROR && strncmp(data, "E_PUB_FAILED PUB failed", 23) == 0, "PUB: %s",
              data);
    IT_ASSERT(v2_client_ended(client, 5000), "E_PUB_FAILED did not close the connection");
    v2_client_destroy(&client);
    const char *bodies[] = {body, body};
    size_t size;
    char *mpub = s_mpub_body(2, bodies, 2, &size);
    client = s_connect(broker);
    s_error(client, "MPUB full", mpub, size, "E_MPUB_FAILED MPUB failed", true);
    v2_client_destroy(&client);
    free(mpub);
    client = s_connect(broker);
    s_error(client, "DPUB full 10", body, sizeof body - 1, "E_DPUB_FAILED DPUB failed", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    umount(dir);
    rmdir(dir);
}

// ---- streams -------------------------------------------------------------------

// A publish and a delivery through an upgraded stream.
static void s_round_trip(v2_client_t *client, const char *topic)
{
    char line[128];
    snprintf(line, sizeof line, "PUB %s", topic);
    s_ok(client, line, "through the stream");
    snprintf(line, sizeof line, "SUB %s c", topic);
    s_ok(client, line, NULL);
    IT_ASSERT(s_cmd(client, "RDY 1", NULL, 0) == 0, "RDY");
    s_message_t message;
    s_message(client, &message, 5000);
    IT_ASSERT_STR(message.body, "through the stream");
    s_fin(client, message.id);
}

static void s_compression(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *client = s_connect(broker);
    s_identify(client, "{\"feature_negotiation\":true,\"deflate\":true,\"deflate_level\":9}", "{");
    v2_client_compress(client, false, 6);
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "no OK after deflate");
    s_round_trip(client, "deflated");
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_identify(client, "{\"feature_negotiation\":true,\"snappy\":true}", "{");
    v2_client_compress(client, true, 0);
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "no OK after snappy");
    s_round_trip(client, "snappied");
    char *stats = it_stats(broker);
    IT_ASSERT(stats && strstr(stats, "\"snappy\":true"), "stats show no snappy client");
    free(stats);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_tls(void)
{
    char dir[] = "/tmp/it_tcp_tls_XXXXXX";
    IT_ASSERT(mkdtemp(dir), "mkdtemp");
    char cert[64], key[64], cert_flag[96], key_flag[96];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    IT_ASSERT(broker_tls_write_test_pair(cert, key) == 0, "cannot write a test certificate");
    snprintf(cert_flag, sizeof cert_flag, "--tls-cert=%s", cert);
    snprintf(key_flag, sizeof key_flag, "--tls-key=%s", key);
    const char *required[] = {cert_flag, key_flag, "--tls-required", NULL};
    it_broker_t *broker = it_broker_start(required);
    // --tls-required: nothing but IDENTIFY before TLS (plain HTTP is refused
    // too, as nsqd's --tls-required=true, so /stats is read from a second
    // broker below).
    v2_client_t *client = s_connect(broker);
    s_error(client, "PUB t", "x", 1, "E_INVALID", true);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_identify(client, "{\"feature_negotiation\":true,\"tls_v1\":true}", "{");
    IT_ASSERT(v2_client_start_tls(client, cert) == 0, "TLS handshake failed");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "no OK after TLS");
    s_round_trip(client, "secret");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    const char *optional[] = {cert_flag, key_flag, NULL};
    broker = it_broker_start(optional);
    client = s_connect(broker);
    s_identify(client, "{\"feature_negotiation\":true,\"tls_v1\":true}", "{");
    IT_ASSERT(v2_client_start_tls(client, cert) == 0, "TLS handshake failed");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "no OK after TLS");
    s_round_trip(client, "secret");
    char *stats = it_stats(broker);
    IT_ASSERT(stats && strstr(stats, "\"tls\":true"), "stats show no TLS client");
    free(stats);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

// ---- AUTH ----------------------------------------------------------------------
// Against the reference auth server (nsq-auth-server), as nsqd: AUTH once,
// then every SUB and publish needs a grant for its topic (and channel),
// asked again past its ttl; every refusal is fatal, and an auth server
// that cannot be asked never lets a command through.

// "pub-a" publishes on topic a only; "sub-a" subscribes to a's channel
// billing only; "ops" may do everything; "none" is known but granted
// nothing; "brief" and "short" publish on a for one second at a time.
static const char *s_auth_file =
    "{\"secrets\": {\n"
    " \"pub-a\": {\"ttl\": 60, \"identity\": \"producer-a\", \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\".*\"], \"permissions\": [\"publish\"]}]},\n"
    " \"sub-a\": {\"ttl\": 60, \"identity\": \"consumer-a\", \"identity_url\": \"https://id/c\",\n"
    "   \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\"^billing$\"], \"permissions\": [\"subscribe\"]}]},\n"
    " \"ops\": {\"ttl\": 60, \"identity\": \"ops\", \"authorizations\": [\n"
    "   {\"topic\": \".*\", \"channels\": [\".*\"],\n"
    "    \"permissions\": [\"admin\", \"publish\", \"subscribe\"]}]},\n"
    " \"none\": {\"ttl\": 60, \"identity\": \"nobody\", \"authorizations\": []},\n"
    " \"brief\": {\"ttl\": 1, \"identity\": \"brief\", \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\".*\"], \"permissions\": [\"publish\"]}]},\n"
    " \"short\": {\"ttl\": 1, \"identity\": \"short\", \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\".*\"], \"permissions\": [\"publish\"]}]}\n"
    "}}\n";

// A broker asking the auth server at address; timeout is its
// --auth-http-timeout, more (or NULL) one more flag.
static it_broker_t *s_auth_broker(const char *address, const char *timeout, const char *more)
{
    char flag[128], timeout_flag[64];
    snprintf(flag, sizeof flag, "--auth-http-address=%s", address);
    snprintf(timeout_flag, sizeof timeout_flag, "--auth-http-timeout=%s", timeout);
    const char *flags[] = {flag, timeout_flag, more, NULL};
    return it_broker_start(flags);
}

// Reads the AUTH answer and checks it is nsqd's JSON with identity.
static void s_auth_answer(v2_client_t *client, const char *identity)
{
    char data[512], check[256];
    int type = -1;
    IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 10000) > 0, "no AUTH answer");
    IT_ASSERT(type == S_RESPONSE, "AUTH answered %d %s", type, data);
    snprintf(check, sizeof check,
             "doc['identity'] == '%s' and doc['permission_count'] == 1 and 'identity_url' in doc",
             identity);
    IT_ASSERT(it_json_parses(data, check), "AUTH answer %s", data);
}

// Sends AUTH secret and expects nsqd's JSON answer with identity.
static void s_auth_ok(v2_client_t *client, const char *secret, const char *identity)
{
    IT_ASSERT(s_cmd(client, "AUTH", secret, strlen(secret)) == 0, "send AUTH");
    s_auth_answer(client, identity);
}

// The body of GET /stats?format=json of a broker with auth (Bearer ops);
// caller frees.
static char *s_auth_stats(it_broker_t *broker)
{
    size_t size = 1 << 16;
    char *reply = malloc(size);
    IT_ASSERT(reply, "out of memory");
    IT_ASSERT_INT(it_http_raw(it_broker_http(broker),
                              "GET /stats?format=json HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: Bearer ops\r\nConnection: close\r\n\r\n",
                              reply, size),
                  ==, 200);
    char *body = strstr(reply, "\r\n\r\n");
    IT_ASSERT(body, "no body in %s", reply);
    memmove(reply, body + 4, strlen(body + 4) + 1);
    return reply;
}

// Publishing: refused before AUTH (the door fails closed), allowed on
// topic a, E_UNAUTHORIZED (fatal) on topic b.
static void s_auth_publish(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = s_connect(broker);
    IT_ASSERT(s_cmd(client, "IDENTIFY", "{\"feature_negotiation\":true}", 28) == 0, "IDENTIFY");
    char data[1024];
    int type = -1;
    IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 5000) > 0, "no IDENTIFY reply");
    IT_ASSERT(it_json_parses(data, "doc['auth_required'] == True"), "IDENTIFY reply %s", data);
    s_error(client, "PUB a", "x", 1, "E_AUTH_FIRST AUTH required before PUB", true);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_error(client, "MPUB a", "\0\0\0\1\0\0\0\1x", 9, "E_AUTH_FIRST AUTH required before MPUB",
            true);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_auth_ok(client, "pub-a", "producer-a");
    s_ok(client, "PUB a", "allowed");
    s_ok(client, "DPUB a 10", "deferred");
    s_error(client, "PUB b", "x", 1, "E_UNAUTHORIZED AUTH failed for PUB on \"b\" \"\"", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// Subscribing: before AUTH refused; a channel outside the grant's regex is
// E_UNAUTHORIZED (fatal); the granted channel gets its messages; /stats
// shows who AUTHed, as nsqd's.
static void s_auth_subscribe(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = s_connect(broker);
    s_error(client, "SUB a billing", NULL, 0, "E_AUTH_FIRST AUTH required before SUB", true);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_auth_ok(client, "sub-a", "consumer-a");
    s_error(client, "SUB a audit", NULL, 0, "E_UNAUTHORIZED AUTH failed for SUB on \"a\" \"audit\"",
            true);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_auth_ok(client, "pub-a", "producer-a");
    s_error(client, "SUB a billing", NULL, 0, "E_UNAUTHORIZED", true);  // publish only
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_auth_ok(client, "sub-a", "consumer-a");
    s_ok(client, "SUB a billing", NULL);
    IT_ASSERT(s_cmd(client, "RDY 1", NULL, 0) == 0, "RDY");
    v2_client_t *producer = s_connect(broker);
    s_auth_ok(producer, "pub-a", "producer-a");
    s_ok(producer, "PUB a", "for billing");
    s_message_t message;
    s_message(client, &message, 5000);
    IT_ASSERT_STR(message.body, "for billing");
    char *stats = s_auth_stats(broker);
    IT_ASSERT(strstr(stats, "\"authed\":true,\"auth_identity\":\"consumer-a\","
                            "\"auth_identity_url\":\"https://id/c\""),
              "stats %s", stats);
    free(stats);
    v2_client_destroy(&producer);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// AUTH's own errors, as nsqd's: an unknown secret, a second AUTH, a secret
// granted nothing; all fatal.
static void s_auth_errors(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = s_connect(broker);
    s_error(client, "AUTH", "not-a-secret", 12, "E_AUTH_FAILED AUTH failed", true);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_auth_ok(client, "pub-a", "producer-a");
    s_error(client, "AUTH", "ops", 3, "E_INVALID AUTH already set", true);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_error(client, "AUTH", "none", 4, "E_UNAUTHORIZED AUTH no authorizations found", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// Appends command line (with its \n) and body (when not NULL) to out.
static size_t s_append(char *out, size_t at, const char *line, const char *body)
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

// Commands sent in one write right behind AUTH wait for its answer (the
// auth server is asked first) and are answered after it, in order.
static void s_auth_pipelined(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = s_connect(broker);
    char bytes[512];
    size_t size = s_append(bytes, 0, "AUTH", "pub-a");
    size = s_append(bytes, size, "PUB a", "one");
    size = s_append(bytes, size, "NOP", NULL);
    size = s_append(bytes, size, "MPUB a", NULL);
    memcpy(bytes + size, "\0\0\0\x0e\0\0\0\2\0\0\0\1x\0\0\0\1y", 18);
    size += 18;
    size = s_append(bytes, size, "PUB b", "refused");
    size = s_append(bytes, size, "PUB a", "never");
    IT_ASSERT(v2_client_send(client, bytes, size) == 0, "send");
    s_auth_answer(client, "producer-a");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "PUB a behind AUTH: no OK");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "MPUB a behind AUTH: no OK");
    IT_ASSERT(v2_client_expect(client, S_ERROR, "E_UNAUTHORIZED"), "PUB b behind AUTH");
    IT_ASSERT(v2_client_ended(client, 5000), "E_UNAUTHORIZED did not close the connection");
    v2_client_destroy(&client);
    char *stats = s_auth_stats(broker);
    IT_ASSERT(it_json_parses(stats, "[t['message_count'] for t in doc['topics'] "
                                    "if t['topic_name'] == 'a'] == [3]"),
              "topic a should hold the 3 messages published before the refusal: %s", stats);
    free(stats);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// An auth server that takes connections and never answers: what a client
// pipelines behind its AUTH is held, but not without bound (past it the
// client is refused, long before the auth server's timeout), and the
// AUTH itself ends refused, never granted.
static void s_auth_hold_bound(void)
{
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // not the broker's
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t length = sizeof address;
    IT_ASSERT(listener >= 0 && bind(listener, (struct sockaddr *) &address, sizeof address) == 0
                  && listen(listener, 16) == 0
                  && getsockname(listener, (struct sockaddr *) &address, &length) == 0,
              "cannot listen");
    char silent[64];
    snprintf(silent, sizeof silent, "127.0.0.1:%u", ntohs(address.sin_port));
    it_broker_t *broker = s_auth_broker(silent, "60s", NULL);
    v2_client_t *client = s_connect(broker);
    IT_ASSERT(s_cmd(client, "AUTH", "pub-a", 5) == 0, "send AUTH");
    size_t size = 1 << 20;  // --max-msg-size
    char *body = malloc(size);
    IT_ASSERT(body, "out of memory");
    memset(body, 'x', size);
    // 20 MiB behind the AUTH; the broker may close before all of it is sent.
    for (int i = 0; i < 20 && s_cmd(client, "PUB a", body, size) == 0; i++)
        ;
    free(body);
    char data[256];
    int type = -1;
    if (v2_client_frame(client, &type, data, sizeof data, 20000) > 0)
        IT_ASSERT(type == S_ERROR && strncmp(data, "E_AUTH_FAILED", 13) == 0, "answered %d %s",
                  type, data);
    IT_ASSERT(v2_client_ended(client, 5000),
              "still open while the auth server is silent: the hold has no bound");
    v2_client_destroy(&client);
    close(listener);  // the broker's question fails now: refused, not granted
    client = s_connect(broker);
    s_error(client, "AUTH", "pub-a", 5, "E_AUTH_FAILED AUTH failed", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A grant past its ttl is asked again: a secret revoked in the auth
// server's file stops publishing on the open connection (fatal); with the
// auth server gone, a grant past its ttl never lets a publish through.
static void s_auth_ttl(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = s_connect(broker);
    s_auth_ok(client, "short", "short");
    s_ok(client, "PUB a", "while granted");
    char revoked[4096];
    snprintf(revoked, sizeof revoked, "%s", s_auth_file);
    char *entry = strstr(revoked, ",\n \"short\"");
    IT_ASSERT(entry, "the file has no short entry");
    snprintf(entry, sizeof revoked - (size_t) (entry - revoked), "\n}}\n");
    it_write_file(authd.path, revoked);
    char data[256];
    int type = S_RESPONSE;
    int64_t deadline = it_now_ms() + 10000;
    while (type == S_RESPONSE && it_now_ms() < deadline) {
        IT_ASSERT(s_cmd(client, "PUB a", "until revoked", 13) == 0, "send PUB");
        IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 5000) > 0, "no answer");
    }
    IT_ASSERT(type == S_ERROR && strncmp(data, "E_AUTH_FAILED AUTH failed", 25) == 0,
              "a revoked secret still publishes after its ttl: %d %s", type, data);
    IT_ASSERT(v2_client_ended(client, 5000), "not closed after E_AUTH_FAILED");
    v2_client_destroy(&client);
    // The auth server goes: a grant past its ttl is refused, never kept.
    client = s_connect(broker);
    s_auth_ok(client, "brief", "brief");
    IT_ASSERT_INT(it_child_stop(&authd.child, SIGTERM, 5000), ==, 0);
    type = S_RESPONSE;
    deadline = it_now_ms() + 10000;
    while (type == S_RESPONSE && it_now_ms() < deadline) {
        IT_ASSERT(s_cmd(client, "PUB a", "until expired", 13) == 0, "send PUB");
        IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 5000) > 0, "no answer");
    }
    IT_ASSERT(type == S_ERROR && strncmp(data, "E_AUTH_FAILED AUTH failed", 25) == 0,
              "an expired grant still publishes with the auth server down: %d %s", type, data);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_error(client, "AUTH", "pub-a", 5, "E_AUTH_FAILED AUTH failed", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A fake auth server (libmicrohttpd) that keeps the tls and common_name of
// the last query and grants everything.
typedef struct {
    pthread_mutex_t lock;
    char tls[16];          // the last query's tls
    char common_name[64];  // and its common_name
} s_fake_auth_t;

static enum MHD_Result s_fake_auth_answer(void *cls, struct MHD_Connection *connection,
                                          const char *url, const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **state)
{
    (void) url, (void) method, (void) version, (void) upload_data, (void) upload_data_size;
    (void) state;
    s_fake_auth_t *fake = cls;
    const char *tls = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "tls");
    const char *name =
        MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "common_name");
    pthread_mutex_lock(&fake->lock);
    snprintf(fake->tls, sizeof fake->tls, "%s", tls ? tls : "(none)");
    snprintf(fake->common_name, sizeof fake->common_name, "%s", name ? name : "(none)");
    pthread_mutex_unlock(&fake->lock);
    static const char grant[] =
        "{\"ttl\":60,\"identity\":\"fake\",\"authorizations\":[{\"topic\":\".*\","
        "\"channels\":[\".*\"],\"permissions\":[\"publish\",\"subscribe\"]}]}";
    struct MHD_Response *response =
        MHD_create_response_from_buffer(sizeof grant - 1, (void *) grant, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result result = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response);
    return result;
}

// What the fake auth server saw last: "tls=... common_name=...".
static void s_fake_auth_query(s_fake_auth_t *fake, char *query, size_t size)
{
    pthread_mutex_lock(&fake->lock);
    snprintf(query, size, "tls=%s common_name=%s", fake->tls, fake->common_name);
    pthread_mutex_unlock(&fake->lock);
}

// Starts a broker with TLS (the test pair in it_tmp_dir: cert.pem, key.pem)
// asking the auth server at address; more: one more flag or NULL.
static it_broker_t *s_tls_auth_broker(const char *address, const char *more, char *cert, char *key,
                                      size_t size)
{
    snprintf(cert, size, "%s/cert.pem", it_tmp_dir());
    snprintf(key, size, "%s/key.pem", it_tmp_dir());
    if (access(cert, R_OK) != 0)
        IT_ASSERT(broker_tls_write_test_pair(cert, key) == 0, "cannot write a test certificate");
    char cert_flag[700], key_flag[700], auth_flag[128], ca_flag[700];
    snprintf(cert_flag, sizeof cert_flag, "--tls-cert=%s", cert);
    snprintf(key_flag, sizeof key_flag, "--tls-key=%s", key);
    snprintf(ca_flag, sizeof ca_flag, "--tls-root-ca-file=%s", cert);
    snprintf(auth_flag, sizeof auth_flag, "--auth-http-address=%s", address);
    const char *flags[] = {auth_flag, cert_flag, key_flag, ca_flag, more, NULL};
    return it_broker_start(flags);
}

// A client over tls_v1 (showing the test pair as its certificate when
// with_cert) that AUTHs; returns what the auth server was told.
static void s_tls_auth_query(it_broker_t *broker, s_fake_auth_t *fake, const char *cert,
                             const char *key, bool with_cert, char *query, size_t size)
{
    v2_client_t *client = s_connect(broker);
    s_identify(client, "{\"feature_negotiation\":true,\"tls_v1\":true}", "{");
    IT_ASSERT(v2_client_start_tls_as(client, cert, with_cert ? cert : NULL, with_cert ? key : NULL)
                  == 0,
              "TLS handshake failed");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "no OK after TLS");
    IT_ASSERT(s_cmd(client, "AUTH", "over-tls", 8) == 0, "send AUTH");
    s_auth_answer(client, "fake");
    s_fake_auth_query(fake, query, size);
    s_ok(client, "PUB t", "over tls");
    v2_client_destroy(&client);
}

// After a tls_v1 upgrade the auth server hears tls=true, as nsqd tells it
// (a plain connection tls=false), and with --tls-client-auth-policy the
// common name of the client's certificate.
static void s_auth_tls(void)
{
    static s_fake_auth_t fake = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct MHD_Daemon *daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, s_fake_auth_answer, &fake,
        MHD_OPTION_SOCK_ADDR,
        &(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)},
        MHD_OPTION_END);
    IT_ASSERT(daemon, "cannot start the fake auth server");
    char address[64], cert[600], key[600], query[128];
    snprintf(address, sizeof address, "127.0.0.1:%u",
             MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT)->port);
    it_broker_t *broker = s_tls_auth_broker(address, NULL, cert, key, sizeof cert);
    s_tls_auth_query(broker, &fake, cert, key, false, query, sizeof query);
    IT_ASSERT_STR(query, "tls=true common_name=");
    v2_client_t *client = s_connect(broker);
    IT_ASSERT(s_cmd(client, "AUTH", "in-clear", 8) == 0, "send AUTH");
    s_auth_answer(client, "fake");
    s_fake_auth_query(&fake, query, sizeof query);
    IT_ASSERT_STR(query, "tls=false common_name=");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    // require-verify: the certificate's common name (the test pair's).
    broker = s_tls_auth_broker(address, "--tls-client-auth-policy=require-verify", cert, key,
                               sizeof cert);
    s_tls_auth_query(broker, &fake, cert, key, true, query, sizeof query);
    IT_ASSERT_STR(query, "tls=true common_name=127.0.0.1");
    // No certificate, or one the root CA did not sign: no TLS session.
    char other_cert[700], other_key[700];
    snprintf(other_cert, sizeof other_cert, "%s/other-cert.pem", it_tmp_dir());
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", it_tmp_dir());
    IT_ASSERT(broker_tls_write_test_pair(other_cert, other_key) == 0, "cannot write a pair");
    for (int i = 0; i < 2; i++) {
        client = s_connect(broker);
        s_identify(client, "{\"feature_negotiation\":true,\"tls_v1\":true}", "{");
        IT_ASSERT(v2_client_start_tls_as(client, cert, i ? other_cert : NULL, other_key) != 0
                      || !v2_client_expect(client, S_RESPONSE, "OK"),
                  "TLS %s under require-verify",
                  i ? "with a certificate the root CA did not sign" : "without a certificate");
        v2_client_destroy(&client);
    }
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    MHD_stop_daemon(daemon);
}

// ---- bad input -------------------------------------------------------------------

static void s_bad_input(void)
{
    const char *flags[] = {"--max-msg-size=100", "--max-body-size=1000", NULL};
    it_broker_t *broker = it_broker_start(flags);
    // A wrong magic: E_BAD_PROTOCOL, closed.
    v2_client_t *client = v2_client_connect(it_broker_tcp_port(broker));
    IT_ASSERT(client && v2_client_send(client, "  V1", 4) == 0, "connect");
    IT_ASSERT(v2_client_expect(client, S_ERROR, "E_BAD_PROTOCOL"), "wrong magic");
    IT_ASSERT(v2_client_ended(client, 5000), "not closed after a wrong magic");
    v2_client_destroy(&client);
    char big[200];
    memset(big, 'x', sizeof big);
    struct {
        const char *line;
        const void *body;
        size_t size;
        const char *code;
    } cases[] = {
        {"PUB big", big, 101, "E_BAD_MESSAGE PUB message too big 101 > 100"},
        {"DPUB big 0", big, 101, "E_BAD_MESSAGE DPUB message too big"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        client = s_connect(broker);
        s_error(client, cases[i].line, cases[i].body, cases[i].size, cases[i].code, true);
        v2_client_destroy(&client);
    }
    // MPUB over --max-body-size, with a message over --max-msg-size, and
    // with a count that does not match its data.
    const char *long_bodies[] = {big};
    big[150] = '\0';
    size_t size;
    char *mpub = s_mpub_body(1, long_bodies, 1, &size);
    client = s_connect(broker);
    s_error(client, "MPUB big", mpub, size, "E_BAD_MESSAGE", true);
    v2_client_destroy(&client);
    free(mpub);
    const char *bodies[] = {"a", "b"};
    mpub = s_mpub_body(3, bodies, 2, &size);
    client = s_connect(broker);
    s_error(client, "MPUB lie", mpub, size,
            "E_BAD_MESSAGE MPUB failed to read message(2) body size", true);
    v2_client_destroy(&client);
    free(mpub);
    char *huge = calloc(1, 1100);
    IT_ASSERT(huge, "oom");
    client = s_connect(broker);
    s_error(client, "MPUB huge", huge, 1100, "E_BAD_BODY MPUB body too big 1100 > 1000", true);
    v2_client_destroy(&client);
    client = s_connect(broker);
    s_error(client, "IDENTIFY", huge, 1001, "E_BAD_BODY IDENTIFY body too big 1001 > 1000", true);
    v2_client_destroy(&client);
    free(huge);
    // A line longer than nsqd's 16 KiB buffer.
    char *line = malloc(20000);
    IT_ASSERT(line, "oom");
    memset(line, 'A', 19999);
    line[19999] = '\0';
    client = s_connect(broker);
    IT_ASSERT(v2_client_send(client, line, 19999) == 0, "send");
    IT_ASSERT(v2_client_expect(client, S_ERROR, "E_INVALID"), "long line");
    IT_ASSERT(v2_client_ended(client, 5000), "not closed after a long line");
    v2_client_destroy(&client);
    free(line);
    client = s_connect(broker);
    s_ok(client, "PUB after", "served");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A client that connects and says nothing is dropped after two heartbeat
// intervals; 1,000 that connect and vanish cost nothing; others are served
// meanwhile.
static void s_silent_and_vanishing(void)
{
    const char *flags[] = {"--heartbeat-interval=500ms", NULL};
    it_broker_t *broker = it_broker_start(flags);
    v2_client_t *silent = v2_client_connect(it_broker_tcp_port(broker));
    IT_ASSERT(silent, "connect");
    v2_client_t *producer = s_connect(broker);
    for (int i = 0; i < 1000; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in address = {.sin_family = AF_INET,
                                      .sin_port = htons(it_broker_tcp_port(broker))};
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        IT_ASSERT(fd >= 0 && connect(fd, (struct sockaddr *) &address, sizeof address) == 0,
                  "connect %d", i);
        if (i % 3 == 1)
            IT_ASSERT(write(fd, "  V2PUB x\n\0\0", 12) > 0, "write");  // half a command
        close(fd);
        if (i % 100 == 0)
            s_ok_beating(producer, "PUB alive", "x");
    }
    IT_ASSERT(v2_client_ended(silent, 5000), "a silent client was not dropped");
    v2_client_destroy(&silent);
    IT_ASSERT_EVENTUALLY(it_topic_stat(broker, "alive", "message_count") == 10, 5000, "count");
    v2_client_destroy(&producer);
    char *metrics = NULL;
    IT_ASSERT_EVENTUALLY((free(metrics), metrics = NULL,
                          it_http(broker, "GET", "/metrics", NULL, 0, &metrics) == 200
                              && strstr(metrics, "nsq_broker_clients 0")),
                         10000, "clients left: %s", metrics ? metrics : "");
    free(metrics);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// The broker registers its real tcp_port: lookupd's /lookup and /nodes
// show it as nsqlookupd does, so NSQ clients that discover brokers find
// the TCP door.
static void s_lookupd(void)
{
    it_broker_t *lookupd = it_lookupd_start(NULL);
    char flag[96];
    snprintf(flag, sizeof flag, "--lookupd-address=%s", it_broker_zmq(lookupd));
    const char *flags[] = {flag, NULL};
    it_broker_t *broker = it_broker_start(flags);
    v2_client_t *client = s_connect(broker);
    s_ok(client, "PUB found", "x");
    char expected[32], *reply = NULL;
    snprintf(expected, sizeof expected, "\"tcp_port\":%u", it_broker_tcp_port(broker));
    IT_ASSERT_EVENTUALLY((free(reply), reply = NULL,
                          it_http(lookupd, "GET", "/lookup?topic=found", NULL, 0, &reply) == 200
                              && strstr(reply, expected)),
                         10000, "/lookup: %s", reply ? reply : "");
    free(reply);
    IT_ASSERT_INT(it_http(lookupd, "GET", "/nodes", NULL, 0, &reply), ==, 200);
    IT_ASSERT(strstr(reply, expected), "/nodes: %s", reply);
    free(reply);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"handshake", s_handshake},
        {"pubsub", s_pubsub},
        {"balance", s_balance},
        {"rdy", s_rdy},
        {"timeouts", s_timeouts},
        {"dpub", s_dpub},
        {"durable", s_durable},
        {"heartbeats", s_heartbeats},
        {"cls", s_cls},
        {"fins_in_one_write", s_fins_in_one_write},
        {"errors", s_errors},
        {"publish_failed", s_publish_failed},
        {"compression", s_compression},
        {"tls", s_tls},
        {"auth_publish", s_auth_publish},
        {"auth_subscribe", s_auth_subscribe},
        {"auth_errors", s_auth_errors},
        {"auth_pipelined", s_auth_pipelined},
        {"auth_hold_bound", s_auth_hold_bound},
        {"auth_ttl", s_auth_ttl},
        {"auth_tls", s_auth_tls},
        {"bad_input", s_bad_input},
        {"silent_and_vanishing", s_silent_and_vanishing},
        {"lookupd", s_lookupd},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
