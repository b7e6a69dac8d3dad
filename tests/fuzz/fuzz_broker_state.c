/*  fuzz_broker_state - the broker's state file (nsq-broker.dat) loaded
    from fuzzed bytes, saved, and loaded again
    SPDX-License-Identifier: MIT

    Each run writes the input as nsq-broker.dat into a scratch data path
    and restores it into a broker core the way a starting broker does
    (broker_state_load: topics and channels with their disk queues). A
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

#include "broker_core.h"
#include "fuzz_support.h"
#include "nsq_names.h"

static broker_core_t *s_load(const broker_config_t *config, bool *loaded)
{
    broker_core_t *core = broker_core_new(config);
    FUZZ_ASSERT(core != NULL);
    char error[512];
    *loaded = broker_state_load(core, error, sizeof error) == 0;
    return core;
}

// A line per durable topic and channel with its paused flag: what a
// restart must bring back. Caller destroys.
static zlistx_t *s_durable(broker_core_t *core)
{
    zlistx_t *lines = fuzz_lines_new();
    for (broker_topic_t *topic = zhashx_first(core->topics); topic;
         topic = zhashx_next(core->topics)) {
        FUZZ_ASSERT(nsq_name_is_valid(topic->name));
        if (topic->ephemeral)
            continue;
        zlistx_add_end(lines, zsys_sprintf("%s %d", topic->name, topic->paused));
        for (size_t i = 0; i < topic->channel_count; i++) {
            broker_channel_t *channel = topic->channels[i];
            FUZZ_ASSERT(nsq_name_is_valid(channel->name));
            if (!channel->ephemeral)
                zlistx_add_end(
                    lines, zsys_sprintf("%s/%s %d", topic->name, channel->name, channel->paused));
        }
    }
    return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    broker_config_t config;
    broker_config_defaults(&config);
    snprintf(config.data_path, sizeof config.data_path, "%s", fuzz_scratch_dir());
    fuzz_clean_dir(config.data_path);
    fuzz_write_file(config.data_path, "nsq-broker.dat", data, size);

    bool loaded;
    broker_core_t *core = s_load(&config, &loaded);
    if (loaded) {
        zlistx_t *before = s_durable(core);
        FUZZ_ASSERT(broker_state_save(core) == 0);
        broker_core_free(&core);
        core = s_load(&config, &loaded);
        FUZZ_ASSERT(loaded);
        zlistx_t *after = s_durable(core);
        fuzz_lines_expect_same(before, after, "a save and load (durable names)");
        zlistx_destroy(&before);
        zlistx_destroy(&after);
    }
    broker_core_free(&core);
    fuzz_clean_dir(config.data_path);
    return 0;
}
