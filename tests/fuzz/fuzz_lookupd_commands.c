/*  fuzz_lookupd_commands - brokers' LookupCommand frames through lookupd's
    handling, with HTTP-side writes, expiry and queries in between
    SPDX-License-Identifier: MIT

    Each run builds a lookupd core without loop or HTTP server, plays the
    input as a script of steps from three brokers, and frees it (so
    LeakSanitizer sees every leak). Replies go to an unbound ROUTER, which
    drops them. Every JSON answer of the HTTP API must parse: one bad
    registration must never break discovery for every consumer.

    Input: steps, each an op byte: bits 4-5 pick the broker (0..2, 3 = 0),
    bits 0-3 the action:
        0-9, 14, 15  a frame: [u16 LE length][bytes], decoded and handled
                     as the ROUTER reader does
        10  an HTTP write: [u8 kind][string topic][string channel]
            [string node]: /topic/create, /channel/create, /topic/delete,
            /channel/delete or /topic/tombstone
        11  time passes: [u16] x 100 ms, then the expiry scan
        12  the queries: [string topic] for /lookup and /channels, plus
            /topics and /nodes; each answer must be valid JSON, its
            topics and channels sorted
        13  a multi-frame message (refused like a bad frame)
    Strings are [u8 length][bytes]. Seeds: tests/fuzz/corpus/
    fuzz_lookupd_commands (made by seeds.py).
*/
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "lookupd.h"
#include "lookupd_registry.h"

#define S_BROKERS 3

static void s_frame(lookupd_core_t *core, int index, const void *body, size_t size)
{
    char identity[16], address[16];
    snprintf(identity, sizeof identity, "broker-%d", index);
    snprintf(address, sizeof address, "10.0.0.%d", index + 1);
    lookupd_core_handle_frame(core, identity, strlen(identity), address, body, size);
}

static void s_http_write(lookupd_registry_t *registry, fuzz_input_t *input, int64_t now)
{
    uint8_t kind = fuzz_u8(input) % 5;
    char topic[80], channel[80], node[300];
    fuzz_string(input, topic, sizeof topic);
    fuzz_string(input, channel, sizeof channel);
    fuzz_string(input, node, sizeof node);
    if (kind == 0)
        lookupd_registry_create(registry, topic, NULL);
    else if (kind == 1)
        lookupd_registry_create(registry, topic, channel);
    else if (kind == 2)
        lookupd_registry_delete(registry, topic, NULL);
    else if (kind == 3)
        lookupd_registry_delete(registry, topic, channel);
    else
        lookupd_registry_tombstone(registry, topic, node, now);
}

// Frees json after checking that it parses (NULL is allowed where the API
// says so) and that its list (when list names one) is sorted.
static void s_check_json(char *json, bool may_be_null, const char *list)
{
    FUZZ_ASSERT(json || may_be_null);
    if (!json)
        return;
    json_t *parsed = fuzz_expect_json(json, "an HTTP answer");
    if (list)
        fuzz_expect_sorted(json_object_get(parsed, list), list);
    json_decref(parsed);
    free(json);
}

static void s_queries(lookupd_registry_t *registry, fuzz_input_t *input, int64_t now)
{
    char topic[80];
    fuzz_string(input, topic, sizeof topic);
    bool known = lookupd_registry_has_topic(registry, topic);
    s_check_json(lookupd_registry_lookup_json(registry, topic, now), !known, "channels");
    s_check_json(lookupd_registry_channels_json(registry, topic), true, "channels");
    s_check_json(lookupd_registry_topics_json(registry), false, "topics");
    s_check_json(lookupd_registry_nodes_json(registry, now), false, NULL);
    zlistx_t *channels = lookupd_registry_channels(registry, topic);
    zlistx_destroy(&channels);
}

static void s_step(lookupd_core_t *core, fuzz_input_t *input, int64_t *now)
{
    uint8_t op = fuzz_u8(input);
    int index = (op >> 4) % 4 % S_BROKERS;
    uint8_t action = op & 0x0f;
    lookupd_registry_t *registry = lookupd_core_registry(core);
    if (action == 10) {
        s_http_write(registry, input, *now);
    } else if (action == 11) {
        *now += 100 * (int64_t) fuzz_u16(input);
        lookupd_registry_expire(registry, *now);
    } else if (action == 12) {
        s_queries(registry, input, *now);
    } else if (action == 13) {
        s_frame(core, index, NULL, 0);
    } else {
        size_t size;
        const uint8_t *body = fuzz_bytes(input, fuzz_u16(input), &size);
        s_frame(core, index, body, size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    lookupd_config_t config;
    lookupd_config_defaults(&config);
    config.inactive_producer_timeout_ms = 30000;
    config.tombstone_lifetime_ms = 4500;
    lookupd_core_t *core = lookupd_core_new(&config, fuzz_router());
    FUZZ_ASSERT(core != NULL);
    fuzz_input_t input;
    fuzz_input_init(&input, data, size);
    int64_t now = zclock_mono();
    while (fuzz_left(&input) > 0)
        s_step(core, &input, &now);
    lookupd_core_destroy(&core);
    return 0;
}
