/*  fuzz_broker_commands - ZeroMQ command frames through the broker's
    ZeroMQ door and core
    SPDX-License-Identifier: MIT

    Each run builds a broker node (the server with its state file and
    syncer, no loop) and its ZeroMQ door on an unbound ROUTER, plays the
    input against them as a script of steps from three clients, checks the
    server's invariants after every step, and frees them (so LeakSanitizer
    sees every leak). Replies are packed for real and dropped by the
    ROUTER: what is tested is decoding, the state machines, memory safety,
    and that a restart keeps every message.

    Input: one config byte (bits 0-2: --mem-queue-size 0..7; bit 3: a data
    path, so queues spill to disk and restarts are possible), then steps.
    Each step is an op byte: bits 4-5 pick the client (0..2, 3 = 0), bits
    0-3 the action:
        0-8    a frame: [u16 LE length][bytes], handed to the door as its
               ROUTER reader does (broker_zmq_frame: decoding included)
        9-10   FIN/REQ/TOUCH of a message that is really in flight:
               [u8 kind][u8 index][u16 delay], packed as a Command frame
               (ids are clock-based, so the fuzzer cannot guess them)
        11     time passes: [u16] x 10 ms, then the periodic tick
        12     [u8]: even, the client becomes unreachable (EHOSTUNREACH on
               a send); odd, it sends a multi-frame message (refused)
        13     an HTTP request as the HTTP door hands it to the core
               (broker_http_serve; names valid, bodies sized): [u8 kind][string topic]
               [string channel][u16 defer][u8 count] then count bodies as
               strings; kinds: /pub and /mpub, topic and channel create,
               delete, empty, pause, unpause
        14     /stats JSON, text and /metrics: [string topic][string
               channel] filters; the JSON must parse
        15     with a data path, a clean restart: persist, free, start; every
               message of a durable topic or channel (queued, in flight,
               deferred) must come back, none twice (at most S_RESTARTS
               per input: each costs file syncs)
    Seeds: tests/fuzz/corpus/fuzz_broker_commands (made by seeds.py).
*/
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "broker_channel.h"
#include "broker_http_answer.h"
#include "broker_http_serve.h"
#include "broker_http_stats.h"
#include "broker_node.h"
#include "broker_zmq.h"
#include "fuzz_support.h"
#include "nsq_names.h"
#include "nsq_wire.h"

#define S_CLIENTS  3
#define S_RESTARTS 8

// A broker without its loop: the node and its ZeroMQ door.
typedef struct {
    broker_node_t *node;      // server, state file, syncer
    broker_server_t *server;  // the node's
    broker_zmq_t *zmq;        // the door, on fuzz_router()
} fuzz_broker_t;

static broker_config_t s_config(uint8_t bits)
{
    broker_config_t config;
    // Memory only (no disk queues, no state file) unless bit 3 is set.
    broker_config_for_test(&config, bits & 8 ? fuzz_scratch_dir() : "", 0, 0);
    config.max_bytes_per_file = 512;  // segments roll often
    config.mem_queue_size = bits & 7;
    config.max_msg_size = 64;  // small, so the size checks are reachable
    config.max_body_size = 256;
    config.max_rdy_count = 100;
    return config;
}

static void s_start(fuzz_broker_t *broker, const broker_config_t *config)
{
    char error[512];
    broker->node = broker_node_new(config, error, sizeof error);
    FUZZ_ASSERT(broker->node != NULL);
    broker->server = broker_node_server(broker->node);
    broker->zmq = broker_zmq_new(broker->server, fuzz_router());
    FUZZ_ASSERT(broker->zmq != NULL);
}

static void s_stop(fuzz_broker_t *broker)
{
    broker_node_destroy(&broker->node);
    broker_zmq_destroy(&broker->zmq);
}

static void s_identity(int index, char identity[16])
{
    snprintf(identity, 16, "client-%d", index);
}

// The client's record if the door knows it. Borrowed.
static broker_client_t *s_known(fuzz_broker_t *broker, int index)
{
    char identity[16];
    s_identity(index, identity);
    return broker_zmq_client(broker->zmq, identity, strlen(identity));
}

static void s_frame(fuzz_broker_t *broker, int index, const void *body, size_t size, int64_t now)
{
    char identity[16];
    s_identity(index, identity);
    broker_zmq_frame(broker->zmq, identity, strlen(identity), body, size, NULL, now);
}

typedef struct {
    uint8_t pick;               // which one
    broker_channel_t *channel;  // the first channel found with pick in mind
} channel_pick_t;

static void s_pick_channel(void *arg, broker_topic_t *topic)
{
    channel_pick_t *found = arg;
    size_t count = broker_topic_channel_count(topic);
    if (!found->channel && count > 0)
        found->channel = broker_topic_channel_at(topic, found->pick % count);
}

// Picks an id that is in flight (to this client or another), or any id.
static uint64_t s_pick_id(fuzz_broker_t *broker, int index, uint8_t pick)
{
    broker_client_t *client = s_known(broker, index);
    channel_pick_t found = {pick, client ? broker_client_channel(client) : NULL};
    if (!found.channel)
        broker_server_each_topic(broker->server, s_pick_channel, &found);
    broker_inflight_t *in_flight = found.channel ? broker_channel_in_flight(found.channel) : NULL;
    size_t count = in_flight ? broker_inflight_size(in_flight) : 0;
    if (count == 0)
        return pick;
    return broker_inflight_at(in_flight, pick % count)->message->id;
}

static void s_settle(fuzz_broker_t *broker, int index, fuzz_input_t *input, int64_t now)
{
    uint8_t kind = fuzz_u8(input) % 3;
    uint64_t id = s_pick_id(broker, index, fuzz_u8(input));
    uint16_t delay = fuzz_u16(input);
    Nsq__Fin fin = NSQ__FIN__INIT;
    Nsq__Req req = NSQ__REQ__INIT;
    Nsq__Touch touch = NSQ__TOUCH__INIT;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.version = NSQ_WIRE_VERSION;
    command.seq = id;
    if (kind == 0) {
        fin.n_ids = 1, fin.ids = &id;
        command.cmd_case = NSQ__COMMAND__CMD_FIN, command.fin = &fin;
    } else if (kind == 1) {
        req.n_ids = 1, req.ids = &id, req.delay_ms = delay;
        command.cmd_case = NSQ__COMMAND__CMD_REQ, command.req = &req;
    } else {
        touch.n_ids = 1, touch.ids = &id;
        command.cmd_case = NSQ__COMMAND__CMD_TOUCH, command.touch = &touch;
    }
    uint8_t packed[64];
    FUZZ_ASSERT(nsq__command__get_packed_size(&command) <= sizeof packed);
    size_t size = nsq__command__pack(&command, packed);
    s_frame(broker, index, packed, size, now);
}

// The three stats documents, rendered from the server's snapshots as the
// HTTP door does; the JSON must parse.
static void s_stats(fuzz_broker_t *broker, fuzz_input_t *input)
{
    char topic[80], channel[80];
    fuzz_string(input, topic, sizeof topic);
    fuzz_string(input, channel, sizeof channel);
    broker_stats_t *stats = broker_server_stats(broker->server, topic, channel);
    FUZZ_ASSERT(stats != NULL);
    char *json = broker_http_stats_json(stats);
    FUZZ_ASSERT(json != NULL);
    json_decref(fuzz_expect_json(json, "/stats"));
    free(json);
    free(broker_http_stats_text(stats));
    broker_stats_destroy(&stats);
    stats = broker_server_stats(broker->server, "", "");
    FUZZ_ASSERT(stats != NULL);
    free(broker_http_stats_metrics(stats));
    broker_stats_destroy(&stats);
}

// What the HTTP door hands over for the kind the fuzzer picks (seeds.py's
// HTTP_KINDS): 0 a publish, then the topic and channel operations in
// their order (create .. unpause).
static broker_http_kind_t s_kind(uint8_t pick)
{
    int index = pick % (BROKER_HTTP_CHANNEL_UNPAUSE - BROKER_HTTP_TOPIC_CREATE + 2);
    return index == 0 ? BROKER_HTTP_PUB
                      : (broker_http_kind_t) (BROKER_HTTP_TOPIC_CREATE + index - 1);
}

// Makes the request's messages from [u8 count] strings; false (nothing
// made) if the door would refuse them: empty, or above the size limits.
static bool s_request_messages(const broker_config_t *config, broker_http_request_t *request,
                               fuzz_input_t *input, nsq_message_t **messages)
{
    size_t count = fuzz_u8(input) % 4 + 1, total = 0;
    bool valid = true;
    for (size_t i = 0; i < count; i++) {
        char body[256];
        fuzz_string(input, body, sizeof body);
        size_t size = strlen(body);
        total += size;
        valid = valid && size > 0 && size <= (size_t) config->max_msg_size;
        messages[i] = nsq_message_new(body, size);
        FUZZ_ASSERT(messages[i] != NULL);
    }
    if (!valid || total > (size_t) config->max_body_size) {
        for (size_t i = 0; i < count; i++)
            nsq_message_unref(&messages[i]);
        return false;
    }
    request->messages = messages;
    request->message_count = count;
    return true;
}

static void s_request(fuzz_broker_t *broker, fuzz_input_t *input)
{
    broker_http_request_t request;
    memset(&request, 0, sizeof request);
    request.kind = s_kind(fuzz_u8(input));
    fuzz_string(input, request.topic, sizeof request.topic);
    fuzz_string(input, request.channel, sizeof request.channel);
    request.defer_ms = fuzz_u16(input);
    nsq_message_t *messages[4];
    bool pub = request.kind == BROKER_HTTP_PUB;
    bool channel = request.kind >= BROKER_HTTP_CHANNEL_CREATE;
    const broker_config_t *config = broker_server_config(broker->server);
    if (pub && !s_request_messages(config, &request, input, messages))
        return;
    if (!nsq_name_is_valid(request.topic)
        || (channel && !nsq_name_is_valid(request.channel))) {  // the door's 400
        for (size_t i = 0; i < request.message_count; i++)
            nsq_message_unref(&messages[i]);
        return;
    }
    FUZZ_ASSERT(broker_http_serve(broker->server, &request));  // not durable: answered now
    unsigned status = 200;
    const char *code = NULL;
    if (request.result != BROKER_OK)
        broker_http_answer_status(request.result, &status, &code);
    FUZZ_ASSERT(status >= 200 && status < 600);
    for (size_t i = 0; i < request.message_count; i++)
        FUZZ_ASSERT(messages[i] == NULL);  // the core took every reference
    broker_stats_destroy(&request.stats);
}

// The server's clients, for s_check.
static void s_list_client(void *arg, broker_client_t *client)
{
    zlistx_add_end(arg, client);
}

// Every subscribed client is on its channel's list and every in-flight
// message belongs to one of them, counted in its in_flight.
static void s_check_topic(void *arg, broker_topic_t *topic)
{
    zlistx_t *clients = arg;
    for (size_t c = 0; c < broker_topic_channel_count(topic); c++) {
        broker_channel_t *channel = broker_topic_channel_at(topic, c);
        size_t held = 0, subscribed = broker_channel_client_count(channel);
        for (size_t i = 0; i < subscribed; i++) {
            broker_client_t *client = broker_channel_client_at(channel, i);
            FUZZ_ASSERT(zlistx_find(clients, client) != NULL);
            FUZZ_ASSERT(broker_client_channel(client) == channel);
            held += broker_client_in_flight(client);
        }
        broker_inflight_t *in_flight = broker_channel_in_flight(channel);
        size_t count = broker_inflight_size(in_flight);
        FUZZ_ASSERT(held == count);
        for (size_t i = 0; i < count; i++) {
            broker_client_t *owner = broker_inflight_at(in_flight, i)->owner;
            bool listed = false;
            for (size_t k = 0; k < subscribed && !listed; k++)
                listed = broker_channel_client_at(channel, k) == owner;
            FUZZ_ASSERT(listed);
        }
    }
}

static void s_check(fuzz_broker_t *broker)
{
    zlistx_t *clients = zlistx_new();
    FUZZ_ASSERT(clients != NULL);
    broker_server_each_client(broker->server, s_list_client, clients);
    broker_server_each_topic(broker->server, s_check_topic, clients);
    for (broker_client_t *client = zlistx_first(clients); client; client = zlistx_next(clients)) {
        broker_client_state_t state = broker_client_state(client);
        FUZZ_ASSERT(!broker_client_channel(client) || state == BROKER_CLIENT_SUBSCRIBED
                    || state == BROKER_CLIENT_CLOSING);
    }
    zlistx_destroy(&clients);
}

// "name count" per durable topic and channel (a broker_server_topic_fn).
static void s_count_topic(void *arg, broker_topic_t *topic)
{
    zlistx_t *lines = arg;
    const char *name = broker_topic_name(topic);
    if (broker_topic_is_ephemeral(topic))
        return;
    zlistx_add_end(lines, zsys_sprintf("%s %zu", name, broker_topic_depth(topic)));
    for (size_t i = 0; i < broker_topic_channel_count(topic); i++) {
        broker_channel_t *channel = broker_topic_channel_at(topic, i);
        size_t count = broker_channel_depth(channel)
                       + broker_inflight_size(broker_channel_in_flight(channel))
                       + broker_inflight_size(broker_channel_deferred(channel));
        if (!broker_channel_is_ephemeral(channel))
            zlistx_add_end(lines,
                           zsys_sprintf("%s/%s %zu", name, broker_channel_name(channel), count));
    }
}

// The messages a clean restart must bring back. Caller destroys.
static zlistx_t *s_messages(fuzz_broker_t *broker)
{
    zlistx_t *lines = fuzz_lines_new();
    broker_server_each_topic(broker->server, s_count_topic, lines);
    return lines;
}

// Lets the disk I/O actor finish and the node move what it read on, until
// the counts stop changing: a topic's messages read back from disk on their
// way to its channels are counted where they land, before and after a
// restart alike.
static zlistx_t *s_settled_messages(fuzz_broker_t *broker)
{
    zlistx_t *counts = s_messages(broker);
    for (int round = 0; round < 100; round++) {
        broker_node_wait_disk(broker->node);
        broker_node_after_batch(broker->node, zclock_mono());
        broker_node_wait_disk(broker->node);
        zlistx_t *again = s_messages(broker);
        bool same = fuzz_lines_same(counts, again);
        zlistx_destroy(&counts);
        counts = again;
        if (same)
            break;
    }
    return counts;
}

// Persists, frees and starts the broker again, as SIGTERM and a start do
// (with the settings it started with).
static void s_restart(fuzz_broker_t *broker, const broker_config_t *config)
{
    zlistx_t *before = s_settled_messages(broker);
    broker_node_persist(broker->node, zclock_mono());
    s_stop(broker);
    s_start(broker, config);
    zlistx_t *after = s_settled_messages(broker);
    fuzz_lines_expect_same(before, after, "a restart (messages per topic and channel)");
    zlistx_destroy(&before);
    zlistx_destroy(&after);
}

static void s_step(fuzz_broker_t *broker, const broker_config_t *config, fuzz_input_t *input,
                   int64_t *now, int *restarts)
{
    uint8_t op = fuzz_u8(input);
    int index = (op >> 4) % 4 % S_CLIENTS;
    uint8_t action = op & 0x0f;
    if (action <= 8) {
        size_t size;
        const uint8_t *body = fuzz_bytes(input, fuzz_u16(input), &size);
        s_frame(broker, index, body, size, *now);
    } else if (action <= 10) {
        s_settle(broker, index, input, *now);
    } else if (action == 11) {
        *now += 10 * (int64_t) fuzz_u16(input);
        broker_zmq_tick(broker->zmq, *now);
        broker_node_tick(broker->node, *now);
    } else if (action == 12) {
        broker_client_t *client = s_known(broker, index);
        if (fuzz_u8(input) % 2)
            s_frame(broker, index, NULL, 0, *now);
        else if (client)
            broker_client_set_gone(client);
    } else if (action == 13) {
        s_request(broker, input);
    } else if (action == 14) {
        s_stats(broker, input);
    } else if (config->data_path[0] && (*restarts)++ < S_RESTARTS) {
        s_restart(broker, config);
    }
    broker_node_after_batch(broker->node, *now);  // what the actor does after each batch
    s_check(broker);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    fuzz_input_t input;
    fuzz_input_init(&input, data, size);
    broker_config_t config = s_config(fuzz_u8(&input));
    if (config.data_path[0])
        fuzz_clean_dir(config.data_path);
    fuzz_broker_t broker;
    s_start(&broker, &config);
    int64_t now = zclock_mono();
    int restarts = 0;
    while (fuzz_left(&input) > 0)
        s_step(&broker, &config, &input, &now, &restarts);
    s_stop(&broker);
    if (config.data_path[0])
        fuzz_clean_dir(config.data_path);
    return 0;
}
