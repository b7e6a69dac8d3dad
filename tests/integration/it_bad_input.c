/*  it_bad_input - bad names, bodies, framing, methods, protocol misuse and config
    SPDX-License-Identifier: MIT

    Every bad input gets NSQ's status and error code (or a protobuf Error
    frame), never a crash: after each case's abuse the broker still answers
    /ping and still delivers a freshly published message to a normal
    consumer. A rejected publish must leave no trace: nothing from it is
    ever delivered.
*/
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The admin endpoints (/topic/*, /channel/*) may answer with NSQ's own
// admin codes (INVALID_ARG_*) or with the codes /pub uses.
#define S_INVALID_TOPIC   "INVALID_TOPIC|INVALID_ARG_TOPIC"
#define S_INVALID_CHANNEL "INVALID_CHANNEL|INVALID_ARG_CHANNEL"

// The broker survived: /ping answers OK and a new consumer of a fresh
// topic gets a fresh message.
static void s_assert_still_serving(it_broker_t *broker)
{
    char *reply = NULL;
    IT_ASSERT_INT(it_http(broker, "GET", "/ping", NULL, 0, &reply), ==, 200);
    IT_ASSERT(strncmp(reply, "OK", 2) == 0, "/ping body: %s", reply);
    free(reply);
    it_sink_t *sink = it_sink_new(broker, "survivor", "check", 1, true);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "survivor", "check", "client_count") == 1,
                     5000, "a new consumer did not subscribe");
    it_pub(broker, "survivor", "still-alive");
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "a normal consumer got nothing after the bad input");
    IT_ASSERT_STR(it_sink_get(sink, 0)->body, "still-alive");
    it_sink_destroy(&sink);
}

static void s_bad_names(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char long_name[66], max_name[65], path[160];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    memset(max_name, 'b', 64);
    max_name[64] = '\0';

    it_http_expect(broker, "POST", "/pub?topic=bad!name", "x", 1, 400, "INVALID_TOPIC");
    it_http_expect(broker, "POST", "/pub?topic=a%20b", "x", 1, 400, "INVALID_TOPIC");
    it_http_expect(broker, "POST", "/pub?topic=x%23notephemeral", "x", 1, 400, "INVALID_TOPIC");
    snprintf(path, sizeof path, "/pub?topic=%s", long_name);
    it_http_expect(broker, "POST", path, "x", 1, 400, "INVALID_TOPIC");
    snprintf(path, sizeof path, "/pub?topic=%s", max_name);
    it_http_expect(broker, "POST", path, "x", 1, 200, NULL);  // 64 characters are fine
    it_http_expect(broker, "POST", "/pub", "x", 1, 400, "MISSING_ARG_TOPIC");
    it_http_expect(broker, "POST", "/topic/create?topic=bad!name", NULL, 0, 400, S_INVALID_TOPIC);
    it_http_expect(broker, "POST", "/channel/create?topic=bad!name&channel=c", NULL, 0, 400,
                   S_INVALID_TOPIC);
    snprintf(path, sizeof path, "/channel/create?topic=%s&channel=c", long_name);
    it_http_expect(broker, "POST", path, NULL, 0, 400, S_INVALID_TOPIC);
    it_post_ok(broker, "/topic/create?topic=names");
    it_http_expect(broker, "POST", "/channel/create?topic=names&channel=bad!ch", NULL, 0, 400,
                   S_INVALID_CHANNEL);
    snprintf(path, sizeof path, "/channel/create?topic=names&channel=%s", long_name);
    it_http_expect(broker, "POST", path, NULL, 0, 400, S_INVALID_CHANNEL);

    IT_ASSERT(nsq_consumer_new("bad!name", "c") == NULL, "client API accepted topic bad!name");
    IT_ASSERT(nsq_consumer_new("t", long_name) == NULL, "client API accepted a 65-char channel");
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Names are checked whole, with their length: an escaped NUL ("%00") or a
// NUL inside a protobuf name must not cut the name short to one that is
// valid ("a%00b" is not "a"), at any entry point.
static void s_nul_in_names_http(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_post_ok(broker, "/topic/create?topic=qq");
    it_http_expect(broker, "POST", "/pub?topic=a%00b", "x", 1, 400, "INVALID_TOPIC");
    it_http_expect(broker, "POST", "/pub?topic=a%00", "x", 1, 400, "INVALID_TOPIC");
    it_http_expect(broker, "POST", "/mpub?topic=a%00b", "x\ny", 3, 400, "INVALID_TOPIC");
    it_http_expect(broker, "POST", "/mpub?topic=a%00b&binary=true", "x", 1, 400, "INVALID_TOPIC");
    it_http_expect(broker, "POST", "/pub?topic=qq&defer=10%00x", "x", 1, 400, "INVALID_DEFER");
    it_http_expect(broker, "POST", "/topic/create?topic=qq%00x", NULL, 0, 400, S_INVALID_TOPIC);
    it_http_expect(broker, "POST", "/topic/pause?topic=qq%00x", NULL, 0, 400, S_INVALID_TOPIC);
    it_http_expect(broker, "POST", "/topic/delete?topic=qq%00x", NULL, 0, 400, S_INVALID_TOPIC);
    it_http_expect(broker, "POST", "/channel/create?topic=qq%00x&channel=c", NULL, 0, 400,
                   S_INVALID_TOPIC);
    it_http_expect(broker, "POST", "/channel/create?topic=qq&channel=c%00!", NULL, 0, 400,
                   S_INVALID_CHANNEL);
    it_http_expect(broker, "POST", "/channel/create?topic=qq&channel=c%00", NULL, 0, 400,
                   S_INVALID_CHANNEL);
    it_http_expect(broker, "GET", "/stats?format=json&topic=qq%00x", NULL, 0, 400, S_INVALID_TOPIC);
    it_http_expect(broker, "GET", "/stats?format=json%00x", NULL, 0, 400, "INVALID_FORMAT");
    // Nothing was published, created, paused or deleted under the short names
    IT_ASSERT_INT(it_topic_stat(broker, "a", "message_count"), ==, -1);
    IT_ASSERT(!it_channel_exists(broker, "qq", "c"), "channel c%%00! created channel c");
    IT_ASSERT_INT(it_topic_stat(broker, "qq", "paused"), ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, "qq", "message_count"), ==, 0);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_bad_bodies(void)
{
    const char *flags[] = {"--max-msg-size=1024", "--max-body-size=4096", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_post_ok(broker, "/channel/create?topic=sizes&channel=c");
    char *big = malloc(5001);
    IT_ASSERT(big, "out of memory");
    memset(big, 'z', 5000);
    big[5000] = '\0';

    it_http_expect(broker, "POST", "/pub?topic=sizes", "", 0, 400, "MSG_EMPTY");
    it_http_expect(broker, "POST", "/pub?topic=sizes", big, 1025, 413, "MSG_TOO_BIG");
    it_http_expect(broker, "POST", "/pub?topic=sizes&defer=-1", "x", 1, 400, "INVALID_DEFER");
    it_http_expect(broker, "POST", "/pub?topic=sizes&defer=soon", "x", 1, 400, "INVALID_DEFER");
    for (size_t index = 100; index < 5000; index += 101)
        big[index] = '\n';  // text /mpub of short lines, 5000 bytes in all
    it_http_expect(broker, "POST", "/mpub?topic=sizes", big, 5000, 413, "BODY_TOO_BIG");
    memset(big, 'z', 5000);
    big[1030] = '\n';  // a 1030-byte line within a 1200-byte body
    it_http_expect(broker, "POST", "/mpub?topic=sizes", big, 1200, 413, "MSG_TOO_BIG");
    it_http_expect(broker, "POST", "/pub?topic=sizes", big, 1024, 200, NULL);  // exactly the max

    it_sink_t *sink = it_sink_new(broker, "sizes", "c", 10, true);
    it_pub(broker, "sizes", "marker");
    IT_ASSERT_PUMPED(&sink, 1, it_sink_count_body(sink, "marker") == 1, 5000,
                     "the marker published after the rejected bodies never arrived");
    int64_t end = it_now_ms() + 300;  // bounded: a rejected body must never show up
    while (it_now_ms() < end)
        it_sink_pump(&sink, 1, 20);
    IT_ASSERT(it_sink_count(sink) == 2,
              "%zu messages delivered, want the 1024-byte one and the marker", it_sink_count(sink));
    it_sink_destroy(&sink);
    free(big);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Posts a malformed binary /mpub and checks it is refused with 413 and one
// of NSQ's framing codes.
static void s_expect_framing_error(it_broker_t *broker, const void *body, size_t size)
{
    char *reply = NULL;
    int status = it_http(broker, "POST", "/mpub?topic=atomic&binary=true", body, size, &reply);
    char code[64] = "";
    it_json_string(it_json_get(reply, "message"), code, sizeof code);
    IT_ASSERT(status == 413 && (strcmp(code, "BAD_BODY") == 0 || strcmp(code, "BAD_MESSAGE") == 0),
              "malformed binary /mpub answered %d %.200s (want 413 BAD_BODY or BAD_MESSAGE)",
              status, reply);
    free(reply);
}

static void s_bad_mpub_is_atomic(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_post_ok(broker, "/channel/create?topic=atomic&channel=c");
    const char *bodies[] = {"part-1", "part-2", "part-3"};
    size_t size;
    char *body = it_mpub_binary(5, bodies, 3, &size);  // says 5, holds 3
    s_expect_framing_error(broker, body, size);
    body[4 + 3] = 100;  // first message claims 100 bytes of 6; count fixed below
    body[3] = 3;
    s_expect_framing_error(broker, body, size);
    s_expect_framing_error(broker, body, 6);  // cut inside a size field
    free(body);

    it_sink_t *sink = it_sink_new(broker, "atomic", "c", 10, true);
    it_pub(broker, "atomic", "marker");
    IT_ASSERT_PUMPED(&sink, 1, it_sink_count_body(sink, "marker") == 1, 5000,
                     "the marker never arrived");
    int64_t end = it_now_ms() + 300;  // bounded: no part of a refused /mpub may show up
    while (it_now_ms() < end)
        it_sink_pump(&sink, 1, 20);
    for (size_t index = 0; index < it_sink_count(sink); index++)
        IT_ASSERT(strcmp(it_sink_get(sink, index)->body, "marker") == 0,
                  "a message of a refused /mpub was delivered: %s", it_sink_get(sink, index)->body);
    IT_ASSERT_INT(it_topic_stat(broker, "atomic", "message_count"), ==, 1);
    it_sink_destroy(&sink);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_http_methods_and_paths(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_http_expect(broker, "GET", "/pub?topic=t", NULL, 0, 405, "METHOD_NOT_ALLOWED");
    it_http_expect(broker, "GET", "/mpub?topic=t", NULL, 0, 405, "METHOD_NOT_ALLOWED");
    it_http_expect(broker, "GET", "/no/such/path", NULL, 0, 404, "NOT_FOUND");
    it_http_expect(broker, "POST", "/topic/delete?topic=ghost", NULL, 0, 404, "TOPIC_NOT_FOUND");
    it_http_expect(broker, "POST", "/topic/pause?topic=ghost", NULL, 0, 404, "TOPIC_NOT_FOUND");
    it_post_ok(broker, "/topic/create?topic=real");
    it_http_expect(broker, "POST", "/channel/delete?topic=real&channel=ghost", NULL, 0, 404,
                   "CHANNEL_NOT_FOUND");
    it_http_expect(broker, "POST", "/channel/create?topic=ghost2&channel=c", NULL, 0, 200, NULL);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Sends a request head announcing content_length bytes but no body, and
// returns the status of the answer (0 if none came within 5 s). The broker
// answers without waiting for the body, and hangs up.
static int s_announce_huge_body(it_broker_t *broker, const char *path, const char *length)
{
    char head[512], reply[512];
    snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %s\r\n\r\n", path,
             it_broker_http(broker), length);
    return it_http_raw(it_broker_http(broker), head, reply, sizeof reply);
}

static void s_smuggling_broker(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_http_expect_smuggling_refused(it_broker_http(broker), "/pub?topic=smuggle");
    it_http_expect_smuggling_refused(it_broker_http(broker), "/mpub?topic=smuggle");
    IT_ASSERT_INT(it_topic_stat(broker, "smuggle", "message_count"), ==, -1);
    IT_ASSERT_INT(it_topic_stat(broker, "smuggled", "message_count"), ==, -1);
    // Plain framings still work, keep-alive included
    char reply[4096];
    IT_ASSERT_INT(it_http_raw(it_broker_http(broker),
                              "POST /pub?topic=plain HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                              "\r\nhelloPOST /pub?topic=plain HTTP/1.1\r\nHost: x\r\n"
                              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                              "3\r\nabc\r\n0\r\n\r\n",
                              reply, sizeof reply),
                  ==, 200);
    IT_ASSERT_INT(it_topic_stat(broker, "plain", "message_count"), ==, 2);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// The worker's probe server refuses the same framings.
static void s_smuggling_worker(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_child_t *worker = it_worker_start(broker, "probe", "c", NULL);
    char http[128];
    it_worker_wait_ready(worker, http, sizeof http);
    it_http_expect_smuggling_refused(http, "/healthz");
    IT_ASSERT_INT(it_http_to(http, "GET", "/healthz", NULL, 0, NULL), ==, 200);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_huge_bodies(void)
{
    it_broker_t *broker = it_broker_start(NULL);  // defaults: 1 MiB message, 5 MiB body
    IT_ASSERT_INT(s_announce_huge_body(broker, "/pub?topic=huge", "100000000000"), ==, 413);
    IT_ASSERT_INT(s_announce_huge_body(broker, "/mpub?topic=huge", "100000000000"), ==, 413);
    size_t size = 2 * 1024 * 1024;
    char *big = malloc(size);
    IT_ASSERT(big, "out of memory");
    memset(big, 'h', size);
    it_http_expect(broker, "POST", "/pub?topic=huge", big, size, 413, "MSG_TOO_BIG");
    free(big);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_topic_stat(broker, "huge", "message_count"), <=, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Waits for an Error frame on raw; returns it (caller frees).
static Nsq__Frame *s_expect_error(it_raw_t *raw, const char *after)
{
    Nsq__Frame *frame = it_raw_expect(raw, NSQ__FRAME__FRAME_ERROR, 3000);
    IT_ASSERT(frame, "no Error frame within 3 s after %s", after);
    it_note("after %s: Error seq %llu %s \"%s\" fatal=%d", after,
            (unsigned long long) frame->error->seq, frame->error->code, frame->error->text,
            (int) frame->error->fatal);
    return frame;
}

// Waits for the Error frame code answering seq.
static void s_expect_error_code(it_raw_t *raw, const char *after, const char *code, uint64_t seq)
{
    Nsq__Frame *frame = s_expect_error(raw, after);
    IT_ASSERT_STR(frame->error->code, code);
    IT_ASSERT_INT(frame->error->seq, ==, seq);
    nsq__frame__free_unpacked(frame, NULL);
}

// Sends SUB with topic and channel as raw bytes (a NUL may be among them).
static void s_raw_sub_bytes(it_raw_t *raw, uint64_t seq, ProtobufCBinaryData topic,
                            ProtobufCBinaryData channel)
{
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = topic;
    sub.channel = channel;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    it_raw_send(raw, &command, seq);
}

static void s_nul_in_names_zmq(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_raw_t *raw = it_raw_new(broker);
    it_raw_identify(raw, 1);
    Nsq__Frame *frame = it_raw_expect(raw, NSQ__FRAME__FRAME_RESPONSE, 3000);
    IT_ASSERT(frame, "no Response to IDENTIFY within 3 s");
    nsq__frame__free_unpacked(frame, NULL);
    s_raw_sub_bytes(raw, 2, (ProtobufCBinaryData){3, (uint8_t *) "a\0b"}, nsq_wire_bytes("c"));
    s_expect_error_code(raw, "SUB a\\0b", "E_BAD_TOPIC", 2);
    s_raw_sub_bytes(raw, 3, nsq_wire_bytes("t"), (ProtobufCBinaryData){3, (uint8_t *) "c\0!"});
    s_expect_error_code(raw, "SUB t c\\0!", "E_BAD_CHANNEL", 3);

    ProtobufCBinaryData body = {1, (uint8_t *) "x"};
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.topic = (ProtobufCBinaryData){3, (uint8_t *) "a\0b"};
    pub.n_bodies = 1;
    pub.bodies = &body;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    it_raw_send(raw, &command, 4);
    s_expect_error_code(raw, "PUB a\\0b", "E_BAD_TOPIC", 4);
    it_raw_destroy(&raw);
    IT_ASSERT_INT(it_topic_stat(broker, "a", "message_count"), ==, -1);
    IT_ASSERT_INT(it_topic_stat(broker, "t", "message_count"), ==, -1);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A client whose IDENTIFY holds bytes that are not UTF-8, control
// characters and JSON's specials: /stats must still parse, for every
// consumer of it, with the bad bytes replaced.
static void s_bad_utf8_identify(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    const char *ids[][3] = {
        {"\xff", "\xff\xfe", "ua\xc0\xaf"},                  // not UTF-8, overlong '/'
        {"q\"\\", "h\x01\x1f\x7f", "\xed\xa0\x80\xf4\x90"},  // specials, controls, surrogate
    };
    it_raw_t *raws[2];
    for (size_t i = 0; i < 2; i++) {
        raws[i] = it_raw_new(broker);
        Nsq__Identify identify = NSQ__IDENTIFY__INIT;
        identify.client_id = (char *) ids[i][0];
        identify.hostname = (char *) ids[i][1];
        identify.user_agent = (char *) ids[i][2];
        Nsq__Command command = NSQ__COMMAND__INIT;
        command.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
        command.identify = &identify;
        it_raw_send(raws[i], &command, 1);
        Nsq__Frame *frame = it_raw_expect(raws[i], NSQ__FRAME__FRAME_RESPONSE, 3000);
        IT_ASSERT(frame, "no Response to IDENTIFY within 3 s");
        nsq__frame__free_unpacked(frame, NULL);
        it_raw_sub(raws[i], 2, "utf8", "c");
    }
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "utf8", "c", "client_count") == 2, 5000,
                         "the two raw clients did not subscribe");
    char *stats = NULL;
    IT_ASSERT_INT(it_http(broker, "GET", "/stats?format=json", NULL, 0, &stats), ==, 200);
    IT_ASSERT(it_json_parses(stats, "sorted(c['client_id'] for t in doc['topics'] "
                                    "for ch in t['channels'] for c in ch['clients']) "
                                    "== ['q\"\\\\', '\\ufffd']"),
              "/stats?format=json is not valid JSON, or lost the client ids: %.300s", stats);
    free(stats);
    for (size_t i = 0; i < 2; i++)
        it_raw_destroy(&raws[i]);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_raw_garbage(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_raw_t *raw = it_raw_new(broker);
    static const unsigned char garbage[] = {0x0f, 0xff, 0xff, 0xff, 0x01};  // wire type 7
    it_raw_send_bytes(raw, garbage, sizeof garbage);
    Nsq__Frame *frame = s_expect_error(raw, "bytes that are not protobuf");
    IT_ASSERT(strcmp(frame->error->code, "E_BAD_COMMAND") == 0
                  || strcmp(frame->error->code, "E_INVALID") == 0,
              "garbage answered %s (want E_BAD_COMMAND or E_INVALID)", frame->error->code);
    nsq__frame__free_unpacked(frame, NULL);
    it_raw_destroy(&raw);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_sub_before_identify(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_raw_t *raw = it_raw_new(broker);
    it_raw_sub(raw, 7, "early", "c");
    Nsq__Frame *frame = s_expect_error(raw, "SUB without IDENTIFY");
    IT_ASSERT_STR(frame->error->code, "E_INVALID");
    IT_ASSERT_INT(frame->error->seq, ==, 7);
    nsq__frame__free_unpacked(frame, NULL);
    it_raw_destroy(&raw);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// IDENTIFY (answered, seq echoed) and SUB on a fresh raw client.
static it_raw_t *s_raw_subscribed(it_broker_t *broker, const char *topic, const char *channel)
{
    it_raw_t *raw = it_raw_new(broker);
    it_raw_identify(raw, 1);
    Nsq__Frame *frame = it_raw_expect(raw, NSQ__FRAME__FRAME_RESPONSE, 3000);
    IT_ASSERT(frame, "no Response to IDENTIFY within 3 s");
    IT_ASSERT_INT(frame->response->seq, ==, 1);
    nsq__frame__free_unpacked(frame, NULL);
    it_raw_sub(raw, 2, topic, channel);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, topic, channel, "client_count") == 1, 5000,
                         "raw SUB did not register a client on %s/%s", topic, channel);
    return raw;
}

static void s_fin_unknown_id(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_raw_t *raw = s_raw_subscribed(broker, "finbad", "c");
    it_raw_rdy(raw, 3, 1);
    it_raw_fin(raw, 4, 0x1234567890abcdefULL);
    Nsq__Frame *frame = s_expect_error(raw, "FIN of an unknown id");
    IT_ASSERT_STR(frame->error->code, "E_FIN_FAILED");
    IT_ASSERT_INT(frame->error->seq, ==, 4);
    IT_ASSERT(!frame->error->fatal, "E_FIN_FAILED must not be fatal");
    nsq__frame__free_unpacked(frame, NULL);

    it_pub(broker, "finbad", "after-bad-fin");
    frame = it_raw_expect(raw, NSQ__FRAME__FRAME_MESSAGES, 5000);
    IT_ASSERT(frame, "after E_FIN_FAILED the connection no longer receives messages");
    IT_ASSERT_INT(frame->messages->n_messages, ==, 1);
    Nsq__Message *message = frame->messages->messages[0];
    IT_ASSERT(message->body.len == 13 && memcmp(message->body.data, "after-bad-fin", 13) == 0,
              "unexpected body of %zu bytes", message->body.len);
    IT_ASSERT_INT(message->attempts, ==, 1);
    it_raw_fin(raw, 5, message->id);
    nsq__frame__free_unpacked(frame, NULL);
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "finbad", "c", "in_flight_count") == 0, 5000,
                         "a raw FIN of a real id did not settle it");
    Nsq__Cls cls = NSQ__CLS__INIT;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_CLS;
    command.cls = &cls;
    it_raw_send(raw, &command, 6);
    frame = it_raw_expect(raw, NSQ__FRAME__FRAME_RESPONSE, 3000);
    IT_ASSERT(frame, "no Response to CLS within 3 s");
    IT_ASSERT_INT(frame->response->seq, ==, 6);
    IT_ASSERT_STR(frame->response->text, "CLOSE_WAIT");
    nsq__frame__free_unpacked(frame, NULL);
    it_raw_destroy(&raw);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_rdy_above_max(void)
{
    const char *flags[] = {"--max-rdy-count=10", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_raw_t *raw = s_raw_subscribed(broker, "rdy", "c");
    it_raw_rdy(raw, 3, 11);
    Nsq__Frame *frame = s_expect_error(raw, "RDY 11 with --max-rdy-count=10");
    IT_ASSERT_STR(frame->error->code, "E_INVALID");
    IT_ASSERT_INT(frame->error->seq, ==, 3);
    nsq__frame__free_unpacked(frame, NULL);
    it_raw_destroy(&raw);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Memory is bounded: where there is no disk to spill to (an ephemeral
// topic) a publish past --mem-queue-size is refused with 503, nothing
// refused is delivered, and publishing works again once consumers drained
// the queue. (Durable topics spill to disk instead: it_disk.)
static void s_queue_full(void)
{
    const char *flags[] = {"--mem-queue-size=5", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_post_ok(broker, "/channel/create?topic=full%23ephemeral&channel=c");
    for (int i = 0; i < 5; i++)
        it_http_expect(broker, "POST", "/pub?topic=full%23ephemeral", "kept", 4, 200, NULL);
    it_http_expect(broker, "POST", "/pub?topic=full%23ephemeral", "refused", 7, 503, NULL);
    it_http_expect(broker, "POST", "/mpub?topic=full%23ephemeral", "a\nb", 3, 503, NULL);
    IT_ASSERT_INT(it_channel_stat(broker, "full#ephemeral", "c", "depth"), ==, 5);
    it_sink_t *sink = it_sink_new(broker, "full#ephemeral", "c", 10, true);
    IT_ASSERT(it_sink_wait(sink, 5, 5000), "the five kept messages were not delivered");
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "full#ephemeral", "c", "depth") == 0, 5000,
                     "the queue did not drain");
    it_http_expect(broker, "POST", "/pub?topic=full%23ephemeral", "again", 5, 200, NULL);
    IT_ASSERT(it_sink_wait(sink, 6, 5000), "publishing did not work again after draining");
    for (size_t i = 0; i < 6; i++)
        IT_ASSERT(strcmp(it_sink_get(sink, i)->body, "refused") != 0, "a refused message arrived");
    IT_ASSERT_STR(it_sink_get(sink, 5)->body, "again");
    it_sink_destroy(&sink);
    s_assert_still_serving(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_bad_config(void)
{
    const char *const bad[][2] = {
        {"--mem-queue-size=banana", NULL},
        {"--msg-timeout=soon", NULL},
        {"--http-address=not-an-address", NULL},
        {"--no-such-flag=1", NULL},
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        char line[512];
        int status = it_broker_refuses(bad[index], line, sizeof line);
        it_note("%s -> status %d, \"%s\"", bad[index][0], status, line);
        IT_ASSERT(status > 0 && status < 128, "nsq-broker %s: status %d (want a non-zero exit)",
                  bad[index][0], status);
        IT_ASSERT(line[0], "nsq-broker %s exited without saying why on stderr", bad[index][0]);
    }
    it_broker_t *first = it_broker_start(NULL);  // a taken port: exit non-zero, not a warning
    char taken[96], line[512];
    snprintf(taken, sizeof taken, "--http-address=%s", it_broker_http(first));
    const char *flags[] = {taken, NULL};
    int status = it_broker_refuses(flags, line, sizeof line);
    it_note("%s (taken) -> status %d, \"%s\"", taken, status, line);
    IT_ASSERT(status > 0 && status < 128, "a second broker on a taken port: status %d", status);
    IT_ASSERT_INT(it_broker_stop(&first), ==, 0);
}

// A value longer than its setting holds is refused, not cut short: a
// --data-path cut at 1023 bytes would put the queues in another directory,
// a cut --broadcast-address would send consumers elsewhere.
static void s_config_too_long(void)
{
    static char data_path[1200], broadcast[300], flag[1300];
    int length = snprintf(data_path, sizeof data_path, "%s", it_tmp_dir());
    while (length < 1100)
        length += snprintf(data_path + length, sizeof data_path - (size_t) length, "/directory");
    memset(broadcast, 'b', sizeof broadcast - 1);
    const char *values[][2] = {{"--data-path", data_path}, {"--broadcast-address", broadcast}};
    for (size_t index = 0; index < sizeof values / sizeof values[0]; index++) {
        snprintf(flag, sizeof flag, "%s=%s", values[index][0], values[index][1]);
        const char *flags[] = {flag, NULL};
        char line[512];
        int status = it_broker_refuses(flags, line, sizeof line);
        it_note("%s (%zu bytes) -> status %d, \"%.200s\"", values[index][0],
                strlen(values[index][1]), status, line);
        IT_ASSERT(status > 0 && status < 128, "nsq-broker %s too long: status %d", values[index][0],
                  status);
        IT_ASSERT(strstr(line, "longer than"), "nsq-broker %s too long: \"%s\"", values[index][0],
                  line);
    }
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"bad_names", s_bad_names},
        {"nul_in_names_http", s_nul_in_names_http},
        {"nul_in_names_zmq", s_nul_in_names_zmq},
        {"bad_utf8_identify", s_bad_utf8_identify},
        {"bad_bodies", s_bad_bodies},
        {"bad_mpub_is_atomic", s_bad_mpub_is_atomic},
        {"http_methods_and_paths", s_http_methods_and_paths},
        {"huge_bodies", s_huge_bodies},
        {"smuggling_broker", s_smuggling_broker},
        {"smuggling_worker", s_smuggling_worker},
        {"raw_garbage", s_raw_garbage},
        {"sub_before_identify", s_sub_before_identify},
        {"fin_unknown_id", s_fin_unknown_id},
        {"rdy_above_max", s_rdy_above_max},
        {"queue_full", s_queue_full},
        {"bad_config", s_bad_config},
        {"config_too_long", s_config_too_long},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
