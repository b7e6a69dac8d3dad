/*  broker_server_each - what the core shows: the /stats snapshot, and
    iterators over topics, channels, clients and disk queues for the
    state file, lookupd and the group commit
    SPDX-License-Identifier: MIT
*/
#include <czmq.h>
#include <stdio.h>

#include "broker_channel.h"
#include "broker_server_internal.h"
#include "broker_topic.h"

// Counts the clients per door (by their sink's name).
static void s_count_doors(broker_server_t *self, broker_stats_t *stats)
{
    for (broker_client_t *client = zlistx_first(self->clients); client;
         client = zlistx_next(self->clients)) {
        broker_stats_client_t one;
        broker_client_stats(client, &one);
        size_t i = 0;
        while (i < stats->door_count && !streq(stats->doors[i].name, one.door))
            i++;
        if (i == BROKER_STATS_DOORS)
            continue;
        if (i == stats->door_count)
            snprintf(stats->doors[stats->door_count++].name, sizeof stats->doors[0].name, "%s",
                     one.door);
        stats->doors[i].count++;
    }
}

broker_stats_t *broker_server_stats(broker_server_t *self, const char *topic_filter,
                                    const char *channel_filter)
{
    size_t count = 0;
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics))
        count += !*topic_filter || streq(topic_filter, broker_topic_name(topic));
    broker_stats_t *stats = broker_stats_new(count);
    if (!stats)
        return NULL;
    stats->start_time = self->start_time;
    stats->client_count = zlistx_size(self->clients);
    s_count_doors(self, stats);
    stats->counters = self->counters;
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics)) {
        if (*topic_filter && !streq(topic_filter, broker_topic_name(topic)))
            continue;
        if (broker_topic_stats(topic, &stats->topics[stats->topic_count++], channel_filter) != 0) {
            broker_stats_destroy(&stats);
            return NULL;
        }
    }
    broker_stats_sort(stats);
    return stats;
}

void broker_server_each(broker_server_t *self, broker_server_each_fn *fn, void *arg)
{
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics)) {
        const char *name = broker_topic_name(topic);
        fn(arg, name, NULL, broker_topic_is_paused(topic));
        for (size_t i = 0; i < broker_topic_channel_count(topic); i++) {
            broker_channel_t *channel = broker_topic_channel_at(topic, i);
            fn(arg, name, broker_channel_name(channel), broker_channel_is_paused(channel));
        }
    }
}

void broker_server_each_topic(broker_server_t *self, broker_server_topic_fn *fn, void *arg)
{
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics))
        fn(arg, topic);
}

void broker_server_each_client(broker_server_t *self, broker_server_client_fn *fn, void *arg)
{
    for (broker_client_t *client = zlistx_first(self->clients); client;
         client = zlistx_next(self->clients))
        fn(arg, client);
}

// Calls fn for the disk queues of topic and of its channels.
static void s_topic_disks(broker_topic_t *topic, broker_server_disk_fn *fn, void *arg)
{
    if (broker_topic_disk(topic))
        fn(arg, broker_topic_disk(topic), broker_topic_name(topic));
    for (size_t i = 0; i < broker_topic_channel_count(topic); i++) {
        broker_channel_t *channel = broker_topic_channel_at(topic, i);
        if (broker_channel_disk(channel))
            fn(arg, broker_channel_disk(channel), broker_channel_name(channel));
    }
}

void broker_server_each_disk(broker_server_t *self, broker_server_disk_fn *fn, void *arg)
{
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics))
        s_topic_disks(topic, fn, arg);
}

void broker_server_each_dirty_disk(broker_server_t *self, broker_server_disk_fn *fn, void *arg)
{
    if (!self->dirty)
        return;
    for (void *item = zhashx_first(self->dirty); item; item = zhashx_next(self->dirty)) {
        broker_topic_t *topic = zhashx_lookup(self->topics, zhashx_cursor(self->dirty));
        if (topic)  // else deleted since
            s_topic_disks(topic, fn, arg);
    }
    zhashx_purge(self->dirty);
}
