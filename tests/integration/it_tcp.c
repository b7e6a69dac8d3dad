/*  it_tcp - the NSQ TCP door (protocol V2) of the real broker, through a raw
    V2 client (v2_client.c): what go-nsq, pynsq and nsqjs rely on
    SPDX-License-Identifier: MIT

    Every case starts nsq-broker with --tcp-address=127.0.0.1:0 (the
    harness default) and speaks exact bytes: the handshake and feature
    negotiation, every command, fan-out and sharing a channel with a
    ZeroMQ consumer, credit, timeouts, requeues, TOUCH, DPUB, durable
    publishes, heartbeats and the drop after missed ones, CLS, FINs in one
    write, each error code with nsqd's fatal/non-fatal split, and the
    tcp_port lookupd shows. The streams and bad input are in
    it_tcp_streams.c, AUTH in it_tcp_auth.c.
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
#include "it_tcp_util.h"
#include "v2_client.h"

// ---- the handshake and every command ---------------------------------------------

static void s_handshake(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *client = tcp_connect(broker);
    const char *json = "{\"client_id\":\"it\",\"hostname\":\"h\",\"user_agent\":\"it_tcp/1\","
                       "\"feature_negotiation\":true,\"msg_timeout\":5000,\"sample_rate\":0}";
    IT_ASSERT(tcp_cmd(client, "IDENTIFY", json, strlen(json)) == 0, "send");
    char reply[1024];
    int type;
    IT_ASSERT(v2_client_frame(client, &type, reply, sizeof reply, 5000) > 0 && type == TCP_RESPONSE,
              "no IDENTIFY reply");
    IT_ASSERT(it_json_parses(reply, "doc['max_rdy_count'] == 2500 and doc['msg_timeout'] == 5000 "
                                    "and doc['tls_v1'] == False and doc['auth_required'] == False "
                                    "and doc['output_buffer_timeout'] == 250"),
              "IDENTIFY reply %s", reply);
    // NOP has no answer; the next command's answer comes first.
    IT_ASSERT(tcp_cmd(client, "NOP", NULL, 0) == 0, "NOP");
    tcp_ok(client, "PUB hs", "x");
    // /stats shows the TCP client as nsqd does.
    tcp_ok(client, "SUB hs c", NULL);
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
    v2_client_t *producer = tcp_connect(broker);
    tcp_ok(producer, "PUB fan", "one");  // the topic exists before its channels
    v2_client_t *first = tcp_consumer(broker, "fan", "a", 10, NULL);
    v2_client_t *second = tcp_consumer(broker, "fan", "b", 10, "{\"client_id\":\"b\"}");
    it_sink_t *zmq = it_sink_new(broker, "fan", "z", 10, true);
    it_wait_clients(broker, "fan", "z", 1);
    const char *bodies[] = {"two", "three"};
    size_t size;
    char *mpub = tcp_mpub_body(2, bodies, 2, &size);
    IT_ASSERT(tcp_cmd(producer, "MPUB fan", mpub, size) == 0, "MPUB");
    IT_ASSERT(v2_client_expect(producer, TCP_RESPONSE, "OK"), "MPUB: no OK");
    free(mpub);
    it_pub(broker, "fan", "four");
    v2_client_t *consumers[] = {first, second};
    for (int c = 0; c < 2; c++) {
        // "one" waited in the topic for its first channel: only "a" has it.
        const char *expected[] = {"one", "two", "three", "four"};
        for (int i = c; i < 4; i++) {
            tcp_message_t message;
            tcp_message(consumers[c], &message, 5000);
            IT_ASSERT(message.attempts == 1, "attempts %d", message.attempts);
            IT_ASSERT(strcmp(message.body, expected[i]) == 0, "channel %d got %s, not %s", c,
                      message.body, expected[i]);
            tcp_fin(consumers[c], message.id);
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
    v2_client_t *tcp = tcp_consumer(broker, "share", "c", 5, NULL);
    it_sink_t *zmq = it_sink_new(broker, "share", "c", 5, true);
    it_wait_clients(broker, "share", "c", 2);
    enum { COUNT = 400 };
    static char seen[COUNT];
    v2_client_t *producer = tcp_connect(broker);
    for (int i = 0; i < COUNT; i++) {
        char body[16];
        snprintf(body, sizeof body, "%d", i);
        IT_ASSERT(tcp_cmd(producer, "PUB share", body, strlen(body)) == 0, "PUB");
    }
    for (int i = 0; i < COUNT; i++)
        IT_ASSERT(v2_client_expect(producer, TCP_RESPONSE, "OK"), "PUB %d: no OK", i);
    size_t by_tcp = 0;
    int64_t deadline = it_now_ms() + 20000;
    while (by_tcp + it_sink_count(zmq) < COUNT && it_now_ms() < deadline) {
        tcp_message_t message;
        while (v2_client_message(tcp, &message.attempts, message.id, message.body,
                                 sizeof message.body, 10)
               >= 0) {
            int index = atoi(message.body);
            IT_ASSERT(index >= 0 && index < COUNT && !seen[index], "message %s twice",
                      message.body);
            seen[index] = 1;
            by_tcp++;
            tcp_fin(tcp, message.id);
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
    v2_client_t *client = tcp_consumer(broker, "credit", "c", 2, NULL);
    tcp_message_t one, two, three;
    tcp_message(client, &one, 5000);
    tcp_message(client, &two, 5000);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "credit", "c", "in_flight_count") == 2, 5000,
                         "in flight");
    IT_ASSERT(!tcp_frame_comes(client, 300), "a third message came with RDY 2");
    IT_ASSERT_INT(it_channel_stat(broker, "credit", "c", "in_flight_count"), ==, 2);
    tcp_fin(client, one.id);
    tcp_message(client, &three, 5000);
    IT_ASSERT(strcmp(three.id, one.id) && strcmp(three.id, two.id), "a message came twice");
    // RDY 0 stops deliveries; RDY above --max-rdy-count is fatal.
    IT_ASSERT(tcp_cmd(client, "RDY 0", NULL, 0) == 0, "RDY 0");
    tcp_fin(client, two.id);
    tcp_fin(client, three.id);
    IT_ASSERT(!tcp_frame_comes(client, 300), "a message came with RDY 0");
    tcp_error(client, "RDY 2501", NULL, 0, "E_INVALID RDY count 2501 out of range", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// An unsettled message times out and comes back with attempts 2; REQ with
// a delay brings it back too; TOUCH keeps it in flight past its timeout.
static void s_timeouts(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_pub(broker, "late", "x");
    v2_client_t *client = tcp_consumer(broker, "late", "c", 1, "{\"msg_timeout\":1000}");
    tcp_message_t message;
    tcp_message(client, &message, 5000);
    IT_ASSERT_INT(message.attempts, ==, 1);
    tcp_message(client, &message, 5000);  // timed out after 1 s
    IT_ASSERT_INT(message.attempts, ==, 2);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "late", "c", "timeout_count") == 1, 5000,
                         "timeout not counted");
    // REQ 300: back after the delay, attempts 3; deferred meanwhile.
    char line[64];
    snprintf(line, sizeof line, "REQ %s 300", message.id);
    IT_ASSERT(tcp_cmd(client, line, NULL, 0) == 0, "REQ");
    int64_t requeued = it_now_ms();
    tcp_message(client, &message, 5000);
    IT_ASSERT_INT(message.attempts, ==, 3);
    IT_ASSERT(it_now_ms() - requeued >= 250, "REQ 300 came back after %lld ms",
              (long long) (it_now_ms() - requeued));
    IT_ASSERT_INT(it_channel_stat(broker, "late", "c", "requeue_count"), ==, 1);
    // TOUCH twice over 1.4 s, then FIN: the FIN matches (no E_FIN_FAILED
    // before the next PUB's OK), so the message never timed out.
    snprintf(line, sizeof line, "TOUCH %s", message.id);
    for (int i = 0; i < 2; i++) {
        it_sleep_ms(700);
        IT_ASSERT(tcp_cmd(client, line, NULL, 0) == 0, "TOUCH");
    }
    tcp_fin(client, message.id);
    tcp_ok(client, "PUB other", "y");
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "late", "c"), 5000, "not settled");
    IT_ASSERT_INT(it_channel_stat(broker, "late", "c", "timeout_count"), ==, 1);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// DPUB defers a message; out of range is fatal E_INVALID.
static void s_dpub(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *consumer = tcp_consumer(broker, "later", "c", 5, NULL);
    v2_client_t *producer = tcp_connect(broker);
    int64_t sent = it_now_ms();
    tcp_ok(producer, "DPUB later 500", "deferred");
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "later", "c", "deferred_count") == 1, 2000,
                         "not deferred");
    tcp_message_t message;
    tcp_message(consumer, &message, 5000);
    IT_ASSERT(it_now_ms() - sent >= 450, "DPUB 500 came after %lld ms",
              (long long) (it_now_ms() - sent));
    IT_ASSERT_STR(message.body, "deferred");
    tcp_error(producer, "DPUB later 3600001", "x", 1, "E_INVALID DPUB timeout 3600001 out of range",
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
    v2_client_t *client = tcp_connect(broker);
    const char *bodies[] = {"b", "c"};
    size_t size;
    char *mpub = tcp_mpub_body(2, bodies, 2, &size);
    IT_ASSERT(tcp_cmd(client, "PUB sure", "a", 1) == 0, "PUB");
    IT_ASSERT(tcp_cmd(client, "MPUB sure", mpub, size) == 0, "MPUB");
    IT_ASSERT(tcp_cmd(client, "FIN 0000000000000000", NULL, 0) == 0, "FIN");
    IT_ASSERT(tcp_cmd(client, "DPUB sure 10", "d", 1) == 0, "DPUB");
    free(mpub);
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "PUB: no OK");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "MPUB: no OK");
    // FIN before SUB is fatal in nsqd: the DPUB behind it is not carried out.
    IT_ASSERT(v2_client_expect(client, TCP_ERROR, "E_INVALID cannot FIN in current state"),
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
    v2_client_t *client = tcp_consumer(broker, "beat", "c", 1, "{\"heartbeat_interval\":1000}");
    tcp_message_t message;
    tcp_message(client, &message, 5000);
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "_heartbeat_"), "no heartbeat");
    IT_ASSERT(tcp_cmd(client, "NOP", NULL, 0) == 0, "NOP");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "_heartbeat_"), "no second heartbeat");
    // Silent from now on: dropped within two intervals (and a bit).
    int64_t silent = it_now_ms();
    IT_ASSERT(v2_client_ended(client, 6000), "a silent client was not dropped");
    it_note("dropped after %lld ms of silence", (long long) (it_now_ms() - silent));
    v2_client_t *next = tcp_consumer(broker, "beat", "c", 1, NULL);
    tcp_message(next, &message, 5000);  // long before --msg-timeout (60 s)
    IT_ASSERT_INT(message.attempts, ==, 2);
    // heartbeat_interval -1 disables them, and SUB is then refused (fatal).
    v2_client_t *quiet = tcp_connect(broker);
    tcp_identify(quiet, "{\"heartbeat_interval\":-1}", "OK");
    tcp_error(quiet, "SUB beat d", NULL, 0, "E_INVALID cannot SUB with heartbeats disabled", true);
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
    v2_client_t *client = tcp_consumer(broker, "close", "c", 5, NULL);
    tcp_message_t message;
    tcp_message(client, &message, 5000);
    IT_ASSERT(tcp_cmd(client, "CLS", NULL, 0) == 0, "CLS");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "CLOSE_WAIT"), "no CLOSE_WAIT");
    it_pub(broker, "close", "two");
    IT_ASSERT(!tcp_frame_comes(client, 300), "a message came after CLS");
    tcp_fin(client, message.id);
    tcp_ok(client, "PUB close", "three");  // the FIN matched: no error before this OK
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "close", "c", "depth") == 2, 5000, "depth");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// FINs sent in one write (the broker hands FINs in a row to the core
// together): each settles its message, one not in flight in the middle
// gets its own E_FIN_FAILED in its place, and a REQ after them is carried
// out after them.
static void s_fins_in_one_write(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *producer = tcp_connect(broker);
    const char *bodies[] = {"a", "b", "c", "d"};
    size_t size;
    char *mpub = tcp_mpub_body(4, bodies, 4, &size);
    tcp_ok(producer, "PUB batch", "first");  // the topic, before its channel
    v2_client_t *client = tcp_consumer(broker, "batch", "c", 10, NULL);
    IT_ASSERT(tcp_cmd(producer, "MPUB batch", mpub, size) == 0, "MPUB");
    IT_ASSERT(v2_client_expect(producer, TCP_RESPONSE, "OK"), "MPUB: no OK");
    free(mpub);
    tcp_message_t messages[5];
    for (int i = 0; i < 5; i++)
        tcp_message(client, &messages[i], 5000);
    char bytes[512], line[64];
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(line, sizeof line, "FIN %s", messages[i].id);
        at = tcp_append(bytes, at, line, NULL);
        if (i == 1)
            at = tcp_append(bytes, at, "FIN 0123456789abcdef", NULL);
    }
    snprintf(line, sizeof line, "REQ %s 0", messages[4].id);
    at = tcp_append(bytes, at, line, NULL);
    at = tcp_append(bytes, at, "FIN fedcba9876543210", NULL);
    IT_ASSERT(v2_client_send(client, bytes, at) == 0, "send");
    IT_ASSERT(v2_client_expect(client, TCP_ERROR, "E_FIN_FAILED FIN 0123456789abcdef failed"),
              "the FIN in the middle was not refused in its place");
    tcp_message_t again;
    tcp_message(client, &again, 5000);  // the REQ: back with attempts 2
    IT_ASSERT_INT(again.attempts, ==, 2);
    IT_ASSERT_STR(again.body, messages[4].body);
    IT_ASSERT(v2_client_expect(client, TCP_ERROR, "E_FIN_FAILED FIN fedcba9876543210 failed"),
              "the FIN after the REQ");
    tcp_fin(client, again.id);
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
    v2_client_t *client = tcp_consumer(broker, "err", "c", 1, NULL);
    tcp_error(client, "FIN 0123456789abcdef", NULL, 0, "E_FIN_FAILED FIN 0123456789abcdef failed",
              false);
    tcp_error(client, "REQ 0123456789abcdef 0", NULL, 0, "E_REQ_FAILED", false);
    tcp_error(client, "TOUCH 0123456789abcdef", NULL, 0, "E_TOUCH_FAILED", false);
    tcp_error(client, "FIN 12345", NULL, 0, "E_INVALID", true);
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
        client = tcp_connect(broker);
        tcp_error(client, fatal[i].line, fatal[i].body, fatal[i].body ? strlen(fatal[i].body) : 0,
                  fatal[i].code, true);
        v2_client_destroy(&client);
    }
    // The broker serves on.
    client = tcp_connect(broker);
    tcp_ok(client, "PUB err", "fine");
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
    v2_client_t *client = tcp_connect(broker);
    char data[256];
    int type = TCP_RESPONSE, accepted = -1;
    while (type == TCP_RESPONSE && accepted < 1000) {
        IT_ASSERT(tcp_cmd(client, "PUB full", body, sizeof body - 1) == 0, "PUB");
        IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 5000) >= 0, "no answer");
        accepted++;
    }
    it_note("disk full after %d messages of 10 kB", accepted);
    IT_ASSERT(type == TCP_ERROR && strncmp(data, "E_PUB_FAILED PUB failed", 23) == 0, "PUB: %s",
              data);
    IT_ASSERT(v2_client_ended(client, 5000), "E_PUB_FAILED did not close the connection");
    v2_client_destroy(&client);
    const char *bodies[] = {body, body};
    size_t size;
    char *mpub = tcp_mpub_body(2, bodies, 2, &size);
    client = tcp_connect(broker);
    tcp_error(client, "MPUB full", mpub, size, "E_MPUB_FAILED MPUB failed", true);
    v2_client_destroy(&client);
    free(mpub);
    client = tcp_connect(broker);
    tcp_error(client, "DPUB full 10", body, sizeof body - 1, "E_DPUB_FAILED DPUB failed", true);
    v2_client_destroy(&client);
    // It stops without crashing: 0, or 1 if the disk, still full, kept its
    // queue's metadata or the state file from being saved (it_disk
    // full_on_term); which one depends on what the last failed write freed.
    int code = it_broker_stop(&broker);
    IT_ASSERT(code == 0 || code == 1, "the broker stopped with %d", code);
    umount(dir);
    rmdir(dir);
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
    v2_client_t *client = tcp_connect(broker);
    tcp_ok(client, "PUB found", "x");
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
        {"lookupd", s_lookupd},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
