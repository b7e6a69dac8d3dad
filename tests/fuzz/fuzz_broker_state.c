/*  fuzz_broker_state - the broker's state file (nsq-broker.dat) loaded
    from fuzzed bytes, saved, and loaded again
    SPDX-License-Identifier: MIT

    Each run writes the input as nsq-broker.dat into a scratch data path
    and restores it into a broker node the way a starting broker does
    (broker_node_new: topics and channels with their disk queues). A
    file that loads must leave only valid names behind, and saving what was
    restored and loading that again must give the same durable topics,
    channels and paused flags: a restart loses nothing and invents
    nothing. Input: the file's bytes. Seeds: tests/fuzz/corpus/
    fuzz_broker_state (made by seeds.py).
*/
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_channel.h"
#include "broker_node.h"
#include "fuzz_support.h"
#include "nsq_names.h"

// A line per durable topic and channel with its paused flag (a
// broker_server_topic_fn): what a restart must bring back.
static void s_durable_topic(void *arg, broker_topic_t *topic)
{
    zlistx_t *lines = arg;
    const char *name = broker_topic_name(topic);
    FUZZ_ASSERT(nsq_name_is_valid(name));
    if (broker_topic_is_ephemeral(topic))
        return;
    zlistx_add_end(lines, zsys_sprintf("%s %d", name, broker_topic_is_paused(topic)));
    for (size_t i = 0; i < broker_topic_channel_count(topic); i++) {
        broker_channel_t *channel = broker_topic_channel_at(topic, i);
        FUZZ_ASSERT(nsq_name_is_valid(broker_channel_name(channel)));
        if (!broker_channel_is_ephemeral(channel))
            zlistx_add_end(lines, zsys_sprintf("%s/%s %d", name, broker_channel_name(channel),
                                               broker_channel_is_paused(channel)));
    }
}

// Caller destroys.
static zlistx_t *s_durable(broker_node_t *node)
{
    zlistx_t *lines = fuzz_lines_new();
    broker_server_each_topic(broker_node_server(node), s_durable_topic, lines);
    return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    broker_config_t config;
    broker_config_for_test(&config, fuzz_scratch_dir(), 0, 0);
    fuzz_clean_dir(config.data_path);
    fuzz_write_file(config.data_path, "nsq-broker.dat", data, size);

    char error[512];
    broker_node_t *node = broker_node_new(&config, error, sizeof error);
    if (node) {
        zlistx_t *before = s_durable(node);
        FUZZ_ASSERT(broker_node_save_state(node) == 0);
        broker_node_destroy(&node);
        node = broker_node_new(&config, error, sizeof error);
        FUZZ_ASSERT(node != NULL);
        zlistx_t *after = s_durable(node);
        fuzz_lines_expect_same(before, after, "a save and load (durable names)");
        zlistx_destroy(&before);
        zlistx_destroy(&after);
    }
    broker_node_destroy(&node);
    fuzz_clean_dir(config.data_path);
    return 0;
}
