/*  lookupd_cluster_json - the console's documents, rendered from the
    cluster view
    SPDX-License-Identifier: MIT

    Reads each broker's record through lookupd_cluster_first/next and never
    writes it. Sums are built as JSON objects keyed by name (topic,
    channel, node) and turned into sorted arrays at the end.
*/
#include "lookupd_cluster_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_json.h"
#include "nsq_replay.h"

// ---- sums -----------------------------------------------------------------------------

// Adds value to the integer at key of object (created as 0).
static void s_sum(json_t *object, const char *key, uint64_t value)
{
    json_t *current = json_object_get(object, key);
    json_int_t total = (current ? json_integer_value(current) : 0) + (json_int_t) value;
    json_object_set_new(object, key, json_integer(total));
}

static void s_sum_real(json_t *object, const char *key, double value)
{
    json_t *current = json_object_get(object, key);
    json_object_set_new(object, key, json_real((current ? json_number_value(current) : 0) + value));
}

// The value at key of parent, created empty by make (json_object or
// json_array) when absent. Borrowed.
static json_t *s_child(json_t *parent, const char *key, json_t *(*make)(void) )
{
    json_t *child = json_object_get(parent, key);
    if (!child) {
        child = make();
        json_object_set_new(parent, key, child);
    }
    return child;
}

static int s_compare_by(const void *a, const void *b, const char *key)
{
    return strcmp(lookupd_json_str(*(json_t *const *) a, key),
                  lookupd_json_str(*(json_t *const *) b, key));
}

static int s_compare_topic(const void *a, const void *b)
{
    return s_compare_by(a, b, "topic");
}

static int s_compare_channel(const void *a, const void *b)
{
    return s_compare_by(a, b, "channel");
}

static int s_compare_node(const void *a, const void *b)
{
    return s_compare_by(a, b, "node");
}

// The values of object as an array sorted with compare. Takes object.
static json_t *s_sorted_values(json_t *object, int (*compare)(const void *, const void *))
{
    size_t count = json_object_size(object), index = 0;
    json_t **items = malloc((count + 1) * sizeof *items);
    json_t *array = json_array();
    const char *key;
    json_t *value;
    if (items && array) {
        json_object_foreach(object, key, value) items[index++] = value;
        qsort(items, count, sizeof *items, compare);
        for (size_t i = 0; i < count; i++)
            json_array_append(array, items[i]);
    }
    free(items);
    json_decref(object);
    return array;
}

// ---- documents -------------------------------------------------------------------------

static const char *s_health(const lookupd_cluster_broker_t *broker)
{
    if (broker->error[0])
        return "unreachable";
    if (!broker->stats)
        return "unknown";
    const char *health = lookupd_json_str(broker->stats, "health");
    return health[0] ? health : "unknown";
}

// Depth of a channel as the console counts it: queued, in flight, deferred.
static uint64_t s_channel_pending(json_t *channel)
{
    return lookupd_json_uint(channel, "depth") + lookupd_json_uint(channel, "in_flight_count")
           + lookupd_json_uint(channel, "deferred_count");
}

static json_t *s_broker_row(const lookupd_cluster_broker_t *broker, int64_t now_ms)
{
    json_t *info = broker->info, *stats = broker->stats;
    int64_t start = (int64_t) lookupd_json_uint(stats, "start_time");
    json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s*}", "node",
                            broker->node, "hostname", lookupd_json_str(info, "hostname"),
                            "broadcast_address", lookupd_json_str(info, "broadcast_address"),
                            "remote_address", lookupd_json_str(info, "remote_address"), "http_port",
                            (json_int_t) lookupd_json_uint(info, "http_port"), "zmq_port",
                            (json_int_t) lookupd_json_uint(info, "zmq_port"), "tcp_port",
                            (json_int_t) lookupd_json_uint(info, "tcp_port"), "version",
                            lookupd_json_str(info, "version"), "health", s_health(broker), "error",
                            broker->error[0] ? broker->error : NULL);
    json_object_set_new(row, "start_time", start ? json_integer(start) : json_null());
    json_object_set_new(row, "uptime_s",
                        start && stats ? json_integer(now_ms / 1000 - start) : json_null());
    json_object_set_new(row, "polled_at",
                        broker->polled_at ? json_integer(broker->polled_at) : json_null());
    uint64_t topics = 0, channels = 0, depth = 0, in_flight = 0, clients = 0;
    double rate = 0;
    size_t i, j;
    json_t *topic, *channel;
    json_array_foreach(json_object_get(stats, "topics"), i, topic)
    {
        topics++;
        depth += lookupd_json_uint(topic, "depth");
        rate += lookupd_json_real(topic, "message_rate");
        json_array_foreach(json_object_get(topic, "channels"), j, channel)
        {
            channels++;
            depth += lookupd_json_uint(channel, "depth");
            in_flight += lookupd_json_uint(channel, "in_flight_count");
            clients += lookupd_json_uint(channel, "client_count");
        }
    }
    if (!stats)
        topics = json_array_size(json_object_get(info, "topics"));
    json_object_set_new(row, "topics", json_integer((json_int_t) topics));
    json_object_set_new(row, "channels", stats ? json_integer((json_int_t) channels) : json_null());
    json_object_set_new(row, "depth", stats ? json_integer((json_int_t) depth) : json_null());
    json_object_set_new(row, "in_flight",
                        stats ? json_integer((json_int_t) in_flight) : json_null());
    json_object_set_new(row, "clients", stats ? json_integer((json_int_t) clients) : json_null());
    json_object_set_new(row, "message_rate", stats ? json_real(rate) : json_null());
    return row;
}

// Distinct topic names across brokers (polled, or registered when not).
static size_t s_topic_count(lookupd_cluster_t *self)
{
    json_t *names = json_object();
    for (const lookupd_cluster_broker_t *broker = lookupd_cluster_first(self); broker;
         broker = lookupd_cluster_next(self)) {
        size_t index;
        json_t *item;
        json_array_foreach(json_object_get(broker->stats, "topics"), index, item)
            json_object_set_new(names, lookupd_json_str(item, "topic_name"), json_null());
        if (!broker->stats)
            json_array_foreach(json_object_get(broker->info, "topics"), index,
                               item) if (json_is_string(item))
                json_object_set_new(names, json_string_value(item), json_null());
    }
    size_t count = json_object_size(names);
    json_decref(names);
    return count;
}

json_t *lookupd_cluster_overview_json(lookupd_cluster_t *self, int64_t now_ms)
{
    json_t *rows = json_object(), *totals = json_object();
    for (const lookupd_cluster_broker_t *broker = lookupd_cluster_first(self); broker;
         broker = lookupd_cluster_next(self)) {
        json_t *row = s_broker_row(broker, now_ms);
        s_sum(totals, "brokers", 1);
        s_sum(totals, "healthy", streq(s_health(broker), "OK") ? 1 : 0);
        s_sum(totals, "depth", lookupd_json_uint(row, "depth"));
        s_sum(totals, "in_flight", lookupd_json_uint(row, "in_flight"));
        s_sum(totals, "clients", lookupd_json_uint(row, "clients"));
        s_sum(totals, "channels", lookupd_json_uint(row, "channels"));
        s_sum_real(totals, "message_rate", lookupd_json_real(row, "message_rate"));
        json_object_set_new(rows, broker->node, row);
    }
    s_sum(totals, "topics", s_topic_count(self));
    return json_pack("{s:o, s:o}", "brokers", s_sorted_values(rows, s_compare_node), "totals",
                     totals);
}

// A broker's row for a topic or channel: its numbers under the console's
// names. New reference.
static json_t *s_counts_row(json_t *item, const char *node, bool is_channel)
{
    uint64_t depth = lookupd_json_uint(item, "depth"),
             backend = lookupd_json_uint(item, "backend_depth");
    json_t *rate = json_object_get(item, "message_rate");
    json_t *row =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:O, s:b}", "node", node, "depth", (json_int_t) depth,
                  "backend_depth", (json_int_t) backend, "memory_depth",
                  (json_int_t) (depth > backend ? depth - backend : 0), "message_count",
                  (json_int_t) lookupd_json_uint(item, "message_count"), "message_rate",
                  rate ? rate : json_null(), "paused", lookupd_json_true(item, "paused"));
    static const char *const fields[][2] = {{"in_flight_count", "in_flight"},
                                            {"deferred_count", "deferred"},
                                            {"requeue_count", "requeued"},
                                            {"timeout_count", "timed_out"},
                                            {"client_count", "clients"}};
    for (size_t i = 0; is_channel && i < sizeof fields / sizeof *fields; i++)
        json_object_set_new(row, fields[i][1],
                            json_integer((json_int_t) lookupd_json_uint(item, fields[i][0])));
    return row;
}

// Adds row's numbers to total (paused if any broker is) and row to its
// "brokers". Takes row.
static void s_add_row(json_t *total, json_t *row)
{
    const char *key;
    json_t *value;
    json_object_foreach(row, key, value)
    {
        if (json_is_integer(value))
            s_sum(total, key, (uint64_t) json_integer_value(value));
        else if (json_is_real(value))
            s_sum_real(total, key, json_real_value(value));
    }
    if (!json_object_get(total, "message_rate"))
        json_object_set_new(total, "message_rate", json_null());
    json_object_set_new(
        total, "paused",
        json_boolean(lookupd_json_true(total, "paused") || lookupd_json_true(row, "paused")));
    json_array_append_new(s_child(total, "brokers", json_array), row);
}

// The running total for name under key ("topic" or "channel") in sums.
static json_t *s_total(json_t *sums, const char *key, const char *name)
{
    json_t *total = s_child(sums, name, json_object);
    if (!json_object_get(total, key))
        json_object_set_new(total, key, json_string(name));
    return total;
}

// Sorts a total's "brokers" rows by node, in place.
static void s_sort_brokers(json_t *total)
{
    json_t *rows = json_object_get(total, "brokers");
    json_t *by_node = json_object();
    size_t index;
    json_t *row;
    json_array_foreach(rows, index, row)
        json_object_set(by_node, lookupd_json_str(row, "node"), row);
    json_object_set_new(total, "brokers", s_sorted_values(by_node, s_compare_node));
}

// Adds one broker's topics (matching the filters) to sums.
static void s_sum_broker(json_t *sums, const lookupd_cluster_broker_t *broker,
                         const char *topic_filter, const char *channel_filter)
{
    size_t i, j;
    json_t *topic, *channel, *name;
    if (!broker->stats) {  // not polled yet: what the registry says it holds
        json_array_foreach(json_object_get(broker->info, "topics"), i, name)
        {
            const char *topic_name = json_string_value(name);
            if (!topic_name || (topic_filter && !streq(topic_filter, topic_name)))
                continue;
            json_t *total = s_total(sums, "topic", topic_name);
            json_array_append_new(s_child(total, "brokers", json_array),
                                  json_pack("{s:s, s:b}", "node", broker->node, "stale", 1));
        }
        return;
    }
    json_array_foreach(json_object_get(broker->stats, "topics"), i, topic)
    {
        const char *topic_name = lookupd_json_str(topic, "topic_name");
        if (topic_filter && !streq(topic_filter, topic_name))
            continue;
        json_t *total = s_total(sums, "topic", topic_name);
        json_t *row = s_counts_row(topic, broker->node, false);
        if (broker->error[0])  // its last numbers, from before it stopped answering
            json_object_set_new(row, "unreachable", json_true());
        s_add_row(total, row);
        json_t *channels = s_child(total, "channel_sums", json_object);
        json_array_foreach(json_object_get(topic, "channels"), j, channel)
        {
            const char *channel_name = lookupd_json_str(channel, "channel_name");
            if (channel_filter && !streq(channel_filter, channel_name))
                continue;
            s_add_row(s_total(channels, "channel", channel_name),
                      s_counts_row(channel, broker->node, true));
        }
    }
}

json_t *lookupd_cluster_topics_json(lookupd_cluster_t *self, const char *topic, const char *channel)
{
    json_t *sums = json_object();
    for (const lookupd_cluster_broker_t *broker = lookupd_cluster_first(self); broker;
         broker = lookupd_cluster_next(self))
        s_sum_broker(sums, broker, topic, channel);
    const char *name;
    json_t *total;
    json_object_foreach(sums, name, total)
    {
        s_sort_brokers(total);
        // Ours to pass on: a reference to the sums (a broker never polled
        // has none), or a new empty object.
        json_t *channels = json_incref(json_object_get(total, "channel_sums"));
        if (!channels)
            channels = json_object();
        json_object_del(total, "channel_sums");
        const char *channel_name;
        json_t *channel_total;
        json_object_foreach(channels, channel_name, channel_total) s_sort_brokers(channel_total);
        json_object_set_new(total, "channels", s_sorted_values(channels, s_compare_channel));
        if (!json_object_get(total, "depth"))
            json_object_set_new(total, "depth", json_null());
    }
    return json_pack("{s:o}", "topics", s_sorted_values(sums, s_compare_topic));
}

static json_t *s_client_row(json_t *client)
{
    json_t *row = json_deep_copy(client);
    // Every client of ours speaks ZeroMQ today; a broker that names the
    // door a client came through says so itself.
    if (row && !json_object_get(row, "door"))
        json_object_set_new(row, "door", json_string("zmq"));
    return row;
}

json_t *lookupd_cluster_channel_json(lookupd_cluster_t *self, const char *topic,
                                     const char *channel)
{
    json_t *rows = json_object();
    for (const lookupd_cluster_broker_t *broker = lookupd_cluster_first(self); broker;
         broker = lookupd_cluster_next(self)) {
        json_t *item =
            lookupd_json_find(json_object_get(broker->stats, "topics"), "topic_name", topic);
        item = item ? lookupd_json_find(json_object_get(item, "channels"), "channel_name", channel)
                    : NULL;
        if (!item)
            continue;
        json_t *row = s_counts_row(item, broker->node, true);
        json_t *clients = json_array();
        size_t index;
        json_t *client;
        json_array_foreach(json_object_get(item, "clients"), index, client)
            json_array_append_new(clients, s_client_row(client));
        json_object_set_new(row, "client_list", clients);
        json_object_set_new(rows, broker->node, row);
    }
    return json_pack("{s:s, s:s, s:o}", "topic", topic, "channel", channel, "brokers",
                     s_sorted_values(rows, s_compare_node));
}

static uint64_t s_dead_count(json_t *topic)
{
    json_t *replay =
        lookupd_json_find(json_object_get(topic, "channels"), "channel_name", NSQ_REPLAY_CHANNEL);
    return lookupd_json_uint(topic, "depth") + (replay ? s_channel_pending(replay) : 0);
}

uint64_t lookupd_cluster_dead_count(lookupd_cluster_t *self, const char *node, const char *topic)
{
    const lookupd_cluster_broker_t *broker = lookupd_cluster_find(self, node);
    json_t *item =
        broker ? lookupd_json_find(json_object_get(broker->stats, "topics"), "topic_name", topic)
               : NULL;
    return item ? s_dead_count(item) : 0;
}

static bool s_is_dead(const char *name)
{
    size_t length = strlen(name);
    return length > 5 && streq(name + length - 5, ".dead");
}

json_t *lookupd_cluster_deadletters_json(lookupd_cluster_t *self)
{
    json_t *sums = json_object();
    for (const lookupd_cluster_broker_t *broker = lookupd_cluster_first(self); broker;
         broker = lookupd_cluster_next(self)) {
        size_t index;
        json_t *topic;
        json_array_foreach(json_object_get(broker->stats, "topics"), index, topic)
        {
            const char *name = lookupd_json_str(topic, "topic_name");
            if (!s_is_dead(name))
                continue;
            json_t *total = s_total(sums, "topic", name);
            if (!json_object_get(total, "origin"))
                json_object_set_new(total, "origin", json_stringn(name, strlen(name) - 5));
            uint64_t count = s_dead_count(topic);
            s_sum(total, "count", count);
            json_t *sample = lookupd_cluster_sample(self, broker->node, name);
            json_array_append_new(s_child(total, "brokers", json_array),
                                  json_pack("{s:s, s:I, s:O}", "node", broker->node, "count",
                                            (json_int_t) count, "sample",
                                            sample ? sample : json_null()));
        }
    }
    const char *name;
    json_t *total;
    json_object_foreach(sums, name, total) s_sort_brokers(total);
    return json_pack("{s:o}", "topics", s_sorted_values(sums, s_compare_topic));
}
