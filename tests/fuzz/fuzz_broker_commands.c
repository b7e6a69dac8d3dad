/*  fuzz_broker_commands - ZeroMQ command frames through the broker core
    SPDX-License-Identifier: MIT

    Each run builds a broker core without sockets, plays the input against
    it as a script of steps from three clients, checks the core's
    invariants after every step, and frees it (so LeakSanitizer sees every
    leak). Replies go to an unbound ROUTER, which drops them: what is
    tested is decoding, the state machines, memory safety, and that a
    restart keeps every message.

    Input: one config byte (bits 0-2: --mem-queue-size 0..7; bit 3: a data
    path, so queues spill to disk and restarts are possible), then steps.
    Each step is an op byte: bits 4-5 pick the client (0..2, 3 = 0), bits
    0-3 the action:
        0-8    a frame: [u16 LE length][bytes], decoded and handled as the
               ROUTER reader does (nsq_wire_command_unpack included)
        9-10   FIN/REQ/TOUCH of a message that is really in flight:
               [u8 kind][u8 index][u16 delay], packed as a Command frame
               (ids are clock-based, so the fuzzer cannot guess them)
        11     time passes: [u16] x 10 ms, then the periodic tick
        12     [u8]: even, the client becomes unreachable (EHOSTUNREACH on
               a send); odd, it sends a multi-frame message (refused)
        13     an HTTP request as the HTTP door hands it to the core
               (names valid, bodies sized): [u8 kind][string topic]
               [string channel][u16 defer][u8 count] then count bodies as
               strings; kinds: /pub and /mpub, topic and channel create,
               delete, empty, pause, unpause
        14     /stats JSON, text and /metrics: [string topic][string
               channel] filters; the JSON must parse
        15     with a data path, a clean restart: persist, free, load; every
               message of a durable topic or channel (queued, in flight,
               deferred) must come back, none twice (at most S_RESTARTS
               per input: each costs file syncs)
    Seeds: tests/fuzz/corpus/fuzz_broker_commands (made by seeds.py).
*/
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "broker_core.h"
#include "fuzz_support.h"
#include "nsq_names.h"
#include "nsq_wire.h"

#define S_CLIENTS  3
#define S_RESTARTS 8

static broker_config_t s_config(uint8_t bits)
{
    broker_config_t config;
    broker_config_defaults(&config);
    config.data_path[0] = '\0';  // memory only: no disk queues, no state file
    if (bits & 8)
        snprintf(config.data_path, sizeof config.data_path, "%s", fuzz_scratch_dir());
    config.max_bytes_per_file = 512;  // segments roll often
    config.mem_queue_size = bits & 7;
    config.max_msg_size = 64;  // small, so the size checks are reachable
    config.max_body_size = 256;
    config.max_rdy_count = 100;
    return config;
}

static void s_identity(int index, char identity[16])
{
    snprintf(identity, 16, "client-%d", index);
}

// The client's record if the core knows it. Borrowed.
static broker_client_t *s_known(broker_core_t *core, int index)
{
    char identity[16], key[2 * 16 + 1];
    s_identity(index, identity);
    broker_client_key(identity, strlen(identity), key);
    return zhashx_lookup(core->clients, key);
}

static void s_frame(broker_core_t *core, int index, const void *body, size_t size, int64_t now)
{
    char identity[16];
    s_identity(index, identity);
    broker_client_t *client = broker_core_client(core, identity, strlen(identity), NULL, now);
    FUZZ_ASSERT(client != NULL);
    broker_core_handle_frame(core, client, body, size, now);
}

// Picks an id that is in flight (to this client or another), or any id.
static uint64_t s_pick_id(broker_core_t *core, int index, uint8_t pick)
{
    broker_client_t *client = s_known(core, index);
    broker_channel_t *channel = client ? client->channel : NULL;
    for (broker_topic_t *topic = zhashx_first(core->topics); !channel && topic;
         topic = zhashx_next(core->topics))
        if (topic->channel_count > 0)
            channel = topic->channels[pick % topic->channel_count];
    size_t count = channel ? broker_inflight_size(channel->in_flight) : 0;
    if (count == 0)
        return pick;
    return broker_inflight_at(channel->in_flight, pick % count)->message->id;
}

static void s_settle(broker_core_t *core, int index, fuzz_input_t *input, int64_t now)
{
    uint8_t kind = fuzz_u8(input) % 3;
    uint64_t id = s_pick_id(core, index, fuzz_u8(input));
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
    s_frame(core, index, packed, size, now);
}

static void s_stats(broker_core_t *core, fuzz_input_t *input)
{
    char topic[80], channel[80];
    fuzz_string(input, topic, sizeof topic);
    fuzz_string(input, channel, sizeof channel);
    char *json = broker_stats_json(core, topic, channel);
    FUZZ_ASSERT(json != NULL);
    json_decref(fuzz_expect_json(json, "/stats"));
    free(json);
    free(broker_stats_text(core, topic, channel));
    free(broker_stats_metrics(core));
}

// What the HTTP door hands over for each kind the fuzzer picks.
static const broker_request_kind_t s_kinds[] = {
    BROKER_REQUEST_PUB,
    BROKER_REQUEST_TOPIC_CREATE,
    BROKER_REQUEST_TOPIC_DELETE,
    BROKER_REQUEST_TOPIC_EMPTY,
    BROKER_REQUEST_TOPIC_PAUSE,
    BROKER_REQUEST_TOPIC_UNPAUSE,
    BROKER_REQUEST_CHANNEL_CREATE,
    BROKER_REQUEST_CHANNEL_DELETE,
    BROKER_REQUEST_CHANNEL_EMPTY,
    BROKER_REQUEST_CHANNEL_PAUSE,
    BROKER_REQUEST_CHANNEL_UNPAUSE,
};

// Makes the request's messages from [u8 count] strings; false (nothing
// made) if the door would refuse them: empty, or above the size limits.
static bool s_request_messages(broker_core_t *core, broker_request_t *request, fuzz_input_t *input,
                               nsq_message_t **messages)
{
    size_t count = fuzz_u8(input) % 4 + 1, total = 0;
    bool valid = true;
    for (size_t i = 0; i < count; i++) {
        char body[256];
        fuzz_string(input, body, sizeof body);
        size_t size = strlen(body);
        total += size;
        valid = valid && size > 0 && size <= (size_t) core->config.max_msg_size;
        messages[i] = nsq_message_new(body, size);
        FUZZ_ASSERT(messages[i] != NULL);
    }
    if (!valid || total > (size_t) core->config.max_body_size) {
        for (size_t i = 0; i < count; i++)
            nsq_message_unref(&messages[i]);
        return false;
    }
    request->messages = messages;
    request->message_count = count;
    return true;
}

static void s_request(broker_core_t *core, fuzz_input_t *input)
{
    broker_request_t request;
    memset(&request, 0, sizeof request);
    request.kind = s_kinds[fuzz_u8(input) % (sizeof s_kinds / sizeof *s_kinds)];
    fuzz_string(input, request.topic, sizeof request.topic);
    fuzz_string(input, request.channel, sizeof request.channel);
    request.defer_ms = fuzz_u16(input);
    nsq_message_t *messages[4];
    bool pub = request.kind == BROKER_REQUEST_PUB;
    bool channel = request.kind >= BROKER_REQUEST_CHANNEL_CREATE;
    if (pub && !s_request_messages(core, &request, input, messages))
        return;
    if (!nsq_name_is_valid(request.topic)
        || (channel && !nsq_name_is_valid(request.channel))) {  // the door's 400
        for (size_t i = 0; i < request.message_count; i++)
            nsq_message_unref(&messages[i]);
        return;
    }
    FUZZ_ASSERT(broker_core_handle_request(core, &request));  // not durable: answered now
    FUZZ_ASSERT(request.status >= 200 && request.status < 600);
    for (size_t i = 0; i < request.message_count; i++)
        FUZZ_ASSERT(messages[i] == NULL);  // the core took every reference
    free(request.body);
}

// Every subscribed client is on its channel's list and every in-flight
// message belongs to one of them, counted in its in_flight.
static void s_check(broker_core_t *core)
{
    for (broker_topic_t *topic = zhashx_first(core->topics); topic;
         topic = zhashx_next(core->topics)) {
        for (size_t c = 0; c < topic->channel_count; c++) {
            broker_channel_t *channel = topic->channels[c];
            size_t held = 0;
            for (size_t i = 0; i < channel->client_count; i++) {
                broker_client_t *client = channel->clients[i];
                FUZZ_ASSERT(zhashx_lookup(core->clients, client->key) == client);
                FUZZ_ASSERT(client->channel == channel);
                held += client->in_flight;
            }
            size_t in_flight = broker_inflight_size(channel->in_flight);
            FUZZ_ASSERT(held == in_flight);
            for (size_t i = 0; i < in_flight; i++) {
                broker_client_t *owner = broker_inflight_at(channel->in_flight, i)->owner;
                bool listed = false;
                for (size_t k = 0; k < channel->client_count && !listed; k++)
                    listed = channel->clients[k] == owner;
                FUZZ_ASSERT(listed);
            }
        }
    }
    for (broker_client_t *client = zhashx_first(core->clients); client;
         client = zhashx_next(core->clients))
        FUZZ_ASSERT(!client->channel
                    || (client->state == BROKER_CLIENT_SUBSCRIBED
                        || client->state == BROKER_CLIENT_CLOSING));
}

// "name count" per durable topic and channel: the messages a clean
// restart must bring back. Caller destroys.
static zlistx_t *s_messages(broker_core_t *core)
{
    zlistx_t *lines = fuzz_lines_new();
    for (broker_topic_t *topic = zhashx_first(core->topics); topic;
         topic = zhashx_next(core->topics)) {
        if (topic->ephemeral)
            continue;
        zlistx_add_end(lines, zsys_sprintf("%s %zu", topic->name, broker_topic_depth(topic)));
        for (size_t i = 0; i < topic->channel_count; i++) {
            broker_channel_t *channel = topic->channels[i];
            size_t count = broker_channel_depth(channel) + broker_inflight_size(channel->in_flight)
                           + broker_inflight_size(channel->deferred);
            if (!channel->ephemeral)
                zlistx_add_end(lines, zsys_sprintf("%s/%s %zu", topic->name, channel->name, count));
        }
    }
    return lines;
}

// Persists, frees and loads the core again, as SIGTERM and a start do
// (with the settings it started with: the core's own copy holds state).
static broker_core_t *s_restart(broker_core_t *core, const broker_config_t *config)
{
    zlistx_t *before = s_messages(core);
    broker_state_persist(core);
    broker_core_free(&core);
    core = broker_core_new(config);
    FUZZ_ASSERT(core != NULL);
    core->router = fuzz_router();
    char error[512];
    FUZZ_ASSERT(broker_state_load(core, error, sizeof error) == 0);
    zlistx_t *after = s_messages(core);
    fuzz_lines_expect_same(before, after, "a restart (messages per topic and channel)");
    zlistx_destroy(&before);
    zlistx_destroy(&after);
    return core;
}

static void s_step(broker_core_t **core_p, const broker_config_t *config, fuzz_input_t *input,
                   int64_t *now, int *restarts)
{
    broker_core_t *core = *core_p;
    uint8_t op = fuzz_u8(input);
    int index = (op >> 4) % 4 % S_CLIENTS;
    uint8_t action = op & 0x0f;
    if (action <= 8) {
        size_t size;
        const uint8_t *body = fuzz_bytes(input, fuzz_u16(input), &size);
        s_frame(core, index, body, size, *now);
    } else if (action <= 10) {
        s_settle(core, index, input, *now);
    } else if (action == 11) {
        *now += 10 * (int64_t) fuzz_u16(input);
        broker_core_tick(core, *now);
    } else if (action == 12) {
        broker_client_t *client = s_known(core, index);
        if (fuzz_u8(input) % 2)
            s_frame(core, index, NULL, 0, *now);
        else if (client)
            client->gone = true;
    } else if (action == 13) {
        s_request(core, input);
    } else if (action == 14) {
        s_stats(core, input);
    } else if (core->config.data_path[0] && (*restarts)++ < S_RESTARTS) {
        core = *core_p = s_restart(core, config);
    }
    // What the actor does after each batch of commands.
    broker_state_pump(core, *now);
    broker_state_check(core);
    s_check(core);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    fuzz_input_t input;
    fuzz_input_init(&input, data, size);
    broker_config_t config = s_config(fuzz_u8(&input));
    if (config.data_path[0])
        fuzz_clean_dir(config.data_path);
    broker_core_t *core = broker_core_new(&config);
    FUZZ_ASSERT(core != NULL);
    core->router = fuzz_router();
    int64_t now = zclock_mono();
    int restarts = 0;
    while (fuzz_left(&input) > 0)
        s_step(&core, &config, &input, &now, &restarts);
    broker_core_free(&core);
    if (config.data_path[0])
        fuzz_clean_dir(config.data_path);
    return 0;
}
