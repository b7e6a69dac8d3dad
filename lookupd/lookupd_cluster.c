/*  lookupd_cluster - what the console shows: every broker's last /stats,
    with rates, summed across the cluster
    SPDX-License-Identifier: MIT

    Each broker keeps its /nodes entry, its last /stats document and the
    message counts of that document (a JSON object "topic" / "topic:channel"
    -> count), from which the next document's "message_rate" fields are
    computed and written into it. Sums are built as JSON objects keyed by
    name and turned into sorted arrays at the end.
*/
#include "lookupd_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_replay.h"

typedef struct {
    char node[LOOKUPD_NODE_MAX];  // "broadcast_address:http_port"
    json_t *info;                 // its /nodes producer object (owned)
    json_t *stats;                // last /stats document with rates (owned), or NULL
    json_t *counts;               // message counts at stats_at (owned), or NULL
    int64_t stats_at;             // Unix ms of stats
    int64_t polled_at;            // Unix ms of the last answer or failure, 0 if none
    char error[256];              // why the last poll failed; "" if it did not
} s_broker_t;

struct _lookupd_cluster_t {
    lookupd_history_t *history;  // borrowed, may be NULL
    zhashx_t *brokers;           // node -> s_broker_t (owned)
    json_t *samples;             // "node topic" -> dead-letter sample (owned)
};

static void s_broker_destroy(s_broker_t **self_p)
{
    s_broker_t *self = *self_p;
    if (!self)
        return;
    json_decref(self->info);
    json_decref(self->stats);
    json_decref(self->counts);
    free(self);
    *self_p = NULL;
}

static void s_broker_destructor(void **item)
{
    s_broker_destroy((s_broker_t **) item);
}

lookupd_cluster_t *lookupd_cluster_new(lookupd_history_t *history)
{
    lookupd_cluster_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->history = history;
    self->brokers = zhashx_new();
    self->samples = json_object();
    if (!self->brokers || !self->samples) {
        lookupd_cluster_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->brokers, s_broker_destructor);
    return self;
}

void lookupd_cluster_destroy(lookupd_cluster_t **self_p)
{
    lookupd_cluster_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zhashx_destroy(&self->brokers);
    json_decref(self->samples);
    free(self);
    *self_p = NULL;
}

// ---- small JSON helpers ---------------------------------------------------------

static uint64_t s_uint(json_t *object, const char *key)
{
    json_int_t value = json_integer_value(json_object_get(object, key));
    return value > 0 ? (uint64_t) value : 0;
}

static const char *s_str(json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value ? value : "";
}

static bool s_true(json_t *object, const char *key)
{
    return json_is_true(json_object_get(object, key));
}

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

// The object at key of parent, created empty when absent. Borrowed.
static json_t *s_child(json_t *parent, const char *key)
{
    json_t *child = json_object_get(parent, key);
    if (!child) {
        child = json_object();
        json_object_set_new(parent, key, child);
    }
    return child;
}

static int s_compare_by(const void *a, const void *b, const char *key)
{
    return strcmp(s_str(*(json_t *const *) a, key), s_str(*(json_t *const *) b, key));
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

// ---- brokers ----------------------------------------------------------------------

int lookupd_cluster_set_nodes(lookupd_cluster_t *self, json_t *nodes)
{
    json_t *producers = json_object_get(nodes, "producers");
    if (!json_is_array(producers))
        return -1;
    zhashx_t *seen = zhashx_new();
    if (!seen)
        return -1;
    size_t index;
    json_t *producer;
    json_array_foreach(producers, index, producer)
    {
        char node[LOOKUPD_NODE_MAX];
        snprintf(node, sizeof node, "%s:%llu", s_str(producer, "broadcast_address"),
                 (unsigned long long) s_uint(producer, "http_port"));
        s_broker_t *broker = zhashx_lookup(self->brokers, node);
        if (!broker) {
            broker = calloc(1, sizeof *broker);
            if (!broker)
                continue;
            snprintf(broker->node, sizeof broker->node, "%s", node);
            zhashx_insert(self->brokers, node, broker);
        }
        json_decref(broker->info);
        broker->info = json_incref(producer);
        zhashx_insert(seen, node, broker);
    }
    zlistx_t *gone = zlistx_new();
    for (s_broker_t *broker = zhashx_first(self->brokers); gone && broker;
         broker = zhashx_next(self->brokers))
        if (!zhashx_lookup(seen, broker->node))
            zlistx_add_end(gone, broker->node);
    for (const char *node = gone ? zlistx_first(gone) : NULL; node; node = zlistx_next(gone))
        zhashx_delete(self->brokers, node);
    zlistx_destroy(&gone);
    zhashx_destroy(&seen);
    return 0;
}

static int s_compare_strings(const void *a, const void *b)
{
    return strcmp(a, b);
}

static zlistx_t *s_string_list(void)
{
    zlistx_t *list = zlistx_new();
    if (!list)
        return NULL;
    zlistx_set_duplicator(list, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor(list, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_comparator(list, (zlistx_comparator_fn *) s_compare_strings);
    return list;
}

zlistx_t *lookupd_cluster_nodes(lookupd_cluster_t *self)
{
    zlistx_t *nodes = s_string_list();
    for (s_broker_t *broker = zhashx_first(self->brokers); nodes && broker;
         broker = zhashx_next(self->brokers))
        zlistx_add_end(nodes, broker->node);
    if (nodes)
        zlistx_sort(nodes);
    return nodes;
}

int lookupd_cluster_url(const char *node, const char *path, char *url, size_t size)
{
    const char *colon = strrchr(node, ':');
    if (!colon)
        return -1;
    int host_size = (int) (colon - node);
    bool ipv6 = memchr(node, ':', (size_t) host_size) != NULL;
    int length = snprintf(url, size, "http://%s%.*s%s%s%s", ipv6 ? "[" : "", host_size, node,
                          ipv6 ? "]" : "", colon, path);
    return length < 0 || (size_t) length >= size ? -1 : 0;
}

int lookupd_cluster_zmq_address(lookupd_cluster_t *self, const char *node, char *out, size_t size)
{
    s_broker_t *broker = zhashx_lookup(self->brokers, node);
    if (!broker)
        return -1;
    const char *host = s_str(broker->info, "broadcast_address");
    bool ipv6 = strchr(host, ':') != NULL;
    int length = snprintf(out, size, "%s%s%s:%llu", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
                          (unsigned long long) s_uint(broker->info, "zmq_port"));
    return length < 0 || (size_t) length >= size ? -1 : 0;
}

// ---- polls --------------------------------------------------------------------------

// Writes "message_rate" into item from its count and the count under key
// at the last poll, and records the count in counts.
static void s_rate(json_t *item, const char *key, json_t *previous, json_t *counts, double seconds)
{
    uint64_t count = s_uint(item, "message_count");
    json_t *before = previous ? json_object_get(previous, key) : NULL;
    if (before && seconds > 0) {
        uint64_t last = (uint64_t) json_integer_value(before);
        double increase = (double) (count >= last ? count - last : count);
        json_object_set_new(item, "message_rate", json_real(increase / seconds));
    } else
        json_object_set_new(item, "message_rate", json_null());
    json_object_set_new(counts, key, json_integer((json_int_t) count));
}

static void s_record(lookupd_cluster_t *self, const char *node, json_t *topic, json_t *channel,
                     int64_t now_ms)
{
    if (!self->history)
        return;
    json_t *item = channel ? channel : topic;
    lookupd_history_sample_t sample = {
        s_uint(item, "depth"),           s_uint(item, "backend_depth"),
        s_uint(item, "in_flight_count"), s_uint(item, "deferred_count"),
        s_uint(item, "client_count"),    s_uint(item, "message_count"),
        s_uint(item, "requeue_count"),   s_uint(item, "timeout_count")};
    lookupd_history_record(self->history, node, s_str(topic, "topic_name"),
                           channel ? s_str(channel, "channel_name") : NULL, &sample, now_ms);
}

// Annotates a fresh /stats document with rates and records it.
static void s_take_stats(lookupd_cluster_t *self, s_broker_t *broker, json_t *stats, int64_t now_ms)
{
    json_t *counts = json_object();
    double seconds = broker->stats_at ? (double) (now_ms - broker->stats_at) / 1000.0 : 0;
    size_t i, j;
    json_t *topic, *channel;
    json_array_foreach(json_object_get(stats, "topics"), i, topic)
    {
        const char *topic_name = s_str(topic, "topic_name");
        s_rate(topic, topic_name, broker->counts, counts, seconds);
        s_record(self, broker->node, topic, NULL, now_ms);
        json_array_foreach(json_object_get(topic, "channels"), j, channel)
        {
            char key[2 * 64 + 2];
            snprintf(key, sizeof key, "%s:%s", topic_name, s_str(channel, "channel_name"));
            s_rate(channel, key, broker->counts, counts, seconds);
            s_record(self, broker->node, topic, channel, now_ms);
        }
    }
    json_decref(broker->stats);
    json_decref(broker->counts);
    broker->stats = stats;
    broker->counts = counts;
    broker->stats_at = now_ms;
}

void lookupd_cluster_update(lookupd_cluster_t *self, const char *node, long status,
                            const char *body, size_t size, const char *error, int64_t now_ms)
{
    s_broker_t *broker = zhashx_lookup(self->brokers, node);
    if (!broker)
        return;
    broker->polled_at = now_ms;
    json_error_t json_error;
    json_t *stats = status == 200 ? json_loadb(body, size, 0, &json_error) : NULL;
    if (stats && json_is_object(stats) && json_is_array(json_object_get(stats, "topics"))) {
        broker->error[0] = '\0';
        s_take_stats(self, broker, stats, now_ms);
        return;
    }
    json_decref(stats);
    if (status == 0)
        snprintf(broker->error, sizeof broker->error, "%s", error && *error ? error : "no answer");
    else if (status != 200)
        snprintf(broker->error, sizeof broker->error, "/stats answered %ld", status);
    else
        snprintf(broker->error, sizeof broker->error, "/stats is not a stats document: %s",
                 json_error.text);
}

// The topic named name in a broker's stats; NULL if absent. Borrowed.
static json_t *s_find(json_t *array, const char *key, const char *name)
{
    size_t index;
    json_t *item;
    json_array_foreach(array, index, item) if (streq(s_str(item, key), name)) return item;
    return NULL;
}

static bool s_registered(s_broker_t *broker, const char *topic)
{
    size_t index;
    json_t *name;
    json_array_foreach(json_object_get(broker->info, "topics"), index,
                       name) if (json_is_string(name)
                                 && streq(json_string_value(name), topic)) return true;
    return false;
}

zlistx_t *lookupd_cluster_holders(lookupd_cluster_t *self, const char *topic, const char *channel)
{
    zlistx_t *nodes = s_string_list();
    for (s_broker_t *broker = zhashx_first(self->brokers); nodes && broker;
         broker = zhashx_next(self->brokers)) {
        bool holds;
        if (broker->stats) {
            json_t *item = s_find(json_object_get(broker->stats, "topics"), "topic_name", topic);
            holds =
                item
                && (!channel || s_find(json_object_get(item, "channels"), "channel_name", channel));
        } else
            holds = s_registered(broker, topic);
        if (holds)
            zlistx_add_end(nodes, broker->node);
    }
    if (nodes)
        zlistx_sort(nodes);
    return nodes;
}

void lookupd_cluster_set_sample(lookupd_cluster_t *self, const char *node, const char *topic,
                                json_t *sample)
{
    char key[LOOKUPD_NODE_MAX + 80];
    snprintf(key, sizeof key, "%s %s", node, topic);
    if (sample)
        json_object_set(self->samples, key, sample);
    else
        json_object_del(self->samples, key);
}

// ---- renderers ------------------------------------------------------------------------

static const char *s_health(const s_broker_t *broker)
{
    if (broker->error[0])
        return "unreachable";
    if (!broker->stats)
        return "unknown";
    const char *health = s_str(broker->stats, "health");
    return health[0] ? health : "unknown";
}

// Depth of a channel as the console counts it: queued, in flight, deferred.
static uint64_t s_channel_pending(json_t *channel)
{
    return s_uint(channel, "depth") + s_uint(channel, "in_flight_count")
           + s_uint(channel, "deferred_count");
}

static double s_real(json_t *object, const char *key)
{
    return json_number_value(json_object_get(object, key));
}

static json_t *s_broker_row(s_broker_t *broker, int64_t now_ms)
{
    json_t *info = broker->info, *stats = broker->stats;
    int64_t start = (int64_t) s_uint(stats, "start_time");
    json_t *row = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s*}", "node", broker->node, "hostname",
        s_str(info, "hostname"), "broadcast_address", s_str(info, "broadcast_address"),
        "remote_address", s_str(info, "remote_address"), "http_port",
        (json_int_t) s_uint(info, "http_port"), "zmq_port", (json_int_t) s_uint(info, "zmq_port"),
        "tcp_port", (json_int_t) s_uint(info, "tcp_port"), "version", s_str(info, "version"),
        "health", s_health(broker), "error", broker->error[0] ? broker->error : NULL);
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
        depth += s_uint(topic, "depth");
        rate += s_real(topic, "message_rate");
        json_array_foreach(json_object_get(topic, "channels"), j, channel)
        {
            channels++;
            depth += s_uint(channel, "depth");
            in_flight += s_uint(channel, "in_flight_count");
            clients += s_uint(channel, "client_count");
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
    for (s_broker_t *broker = zhashx_first(self->brokers); broker;
         broker = zhashx_next(self->brokers)) {
        size_t index;
        json_t *item;
        json_array_foreach(json_object_get(broker->stats, "topics"), index, item)
            json_object_set_new(names, s_str(item, "topic_name"), json_null());
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
    for (s_broker_t *broker = zhashx_first(self->brokers); broker;
         broker = zhashx_next(self->brokers)) {
        json_t *row = s_broker_row(broker, now_ms);
        s_sum(totals, "brokers", 1);
        s_sum(totals, "healthy", streq(s_health(broker), "OK") ? 1 : 0);
        s_sum(totals, "depth", s_uint(row, "depth"));
        s_sum(totals, "in_flight", s_uint(row, "in_flight"));
        s_sum(totals, "clients", s_uint(row, "clients"));
        s_sum(totals, "channels", s_uint(row, "channels"));
        s_sum_real(totals, "message_rate", s_real(row, "message_rate"));
        json_object_set_new(rows, broker->node, row);
    }
    s_sum(totals, "topics", s_topic_count(self));
    return json_pack("{s:o, s:o}", "brokers", s_sorted_values(rows, s_compare_node), "totals",
                     totals);
}

// The array at key of parent, created empty when absent. Borrowed.
static json_t *s_child_array(json_t *parent, const char *key)
{
    json_t *child = json_object_get(parent, key);
    if (!child) {
        child = json_array();
        json_object_set_new(parent, key, child);
    }
    return child;
}

// A broker's row for a topic or channel: its numbers under the console's
// names. New reference.
static json_t *s_counts_row(json_t *item, const char *node, bool is_channel)
{
    uint64_t depth = s_uint(item, "depth"), backend = s_uint(item, "backend_depth");
    json_t *rate = json_object_get(item, "message_rate");
    json_t *row =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:O, s:b}", "node", node, "depth", (json_int_t) depth,
                  "backend_depth", (json_int_t) backend, "memory_depth",
                  (json_int_t) (depth > backend ? depth - backend : 0), "message_count",
                  (json_int_t) s_uint(item, "message_count"), "message_rate",
                  rate ? rate : json_null(), "paused", s_true(item, "paused"));
    static const char *const fields[][2] = {{"in_flight_count", "in_flight"},
                                            {"deferred_count", "deferred"},
                                            {"requeue_count", "requeued"},
                                            {"timeout_count", "timed_out"},
                                            {"client_count", "clients"}};
    for (size_t i = 0; is_channel && i < sizeof fields / sizeof *fields; i++)
        json_object_set_new(row, fields[i][1],
                            json_integer((json_int_t) s_uint(item, fields[i][0])));
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
    json_object_set_new(total, "paused",
                        json_boolean(s_true(total, "paused") || s_true(row, "paused")));
    json_array_append_new(s_child_array(total, "brokers"), row);
}

// The running total for name under key ("topic" or "channel") in sums.
static json_t *s_total(json_t *sums, const char *key, const char *name)
{
    json_t *total = s_child(sums, name);
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
    json_array_foreach(rows, index, row) json_object_set(by_node, s_str(row, "node"), row);
    json_object_set_new(total, "brokers", s_sorted_values(by_node, s_compare_node));
}

// Adds one broker's topics (matching the filters) to sums.
static void s_sum_broker(json_t *sums, s_broker_t *broker, const char *topic_filter,
                         const char *channel_filter)
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
            json_array_append_new(s_child_array(total, "brokers"),
                                  json_pack("{s:s, s:b}", "node", broker->node, "stale", 1));
        }
        return;
    }
    json_array_foreach(json_object_get(broker->stats, "topics"), i, topic)
    {
        const char *topic_name = s_str(topic, "topic_name");
        if (topic_filter && !streq(topic_filter, topic_name))
            continue;
        json_t *total = s_total(sums, "topic", topic_name);
        json_t *row = s_counts_row(topic, broker->node, false);
        if (broker->error[0])  // its last numbers, from before it stopped answering
            json_object_set_new(row, "unreachable", json_true());
        s_add_row(total, row);
        json_t *channels = s_child(total, "channel_sums");
        json_array_foreach(json_object_get(topic, "channels"), j, channel)
        {
            const char *channel_name = s_str(channel, "channel_name");
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
    for (s_broker_t *broker = zhashx_first(self->brokers); broker;
         broker = zhashx_next(self->brokers))
        s_sum_broker(sums, broker, topic, channel);
    const char *name;
    json_t *total;
    json_object_foreach(sums, name, total)
    {
        s_sort_brokers(total);
        json_t *channels = json_object_get(total, "channel_sums");
        json_incref(channels ? channels : (channels = json_object()));
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
    for (s_broker_t *broker = zhashx_first(self->brokers); broker;
         broker = zhashx_next(self->brokers)) {
        json_t *item = s_find(json_object_get(broker->stats, "topics"), "topic_name", topic);
        item = item ? s_find(json_object_get(item, "channels"), "channel_name", channel) : NULL;
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
    json_t *replay = s_find(json_object_get(topic, "channels"), "channel_name", NSQ_REPLAY_CHANNEL);
    return s_uint(topic, "depth") + (replay ? s_channel_pending(replay) : 0);
}

uint64_t lookupd_cluster_dead_count(lookupd_cluster_t *self, const char *node, const char *topic)
{
    s_broker_t *broker = zhashx_lookup(self->brokers, node);
    json_t *item =
        broker ? s_find(json_object_get(broker->stats, "topics"), "topic_name", topic) : NULL;
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
    for (s_broker_t *broker = zhashx_first(self->brokers); broker;
         broker = zhashx_next(self->brokers)) {
        size_t index;
        json_t *topic;
        json_array_foreach(json_object_get(broker->stats, "topics"), index, topic)
        {
            const char *name = s_str(topic, "topic_name");
            if (!s_is_dead(name))
                continue;
            json_t *total = s_total(sums, "topic", name);
            if (!json_object_get(total, "origin"))
                json_object_set_new(total, "origin", json_stringn(name, strlen(name) - 5));
            uint64_t count = s_dead_count(topic);
            s_sum(total, "count", count);
            char key[LOOKUPD_NODE_MAX + 80];
            snprintf(key, sizeof key, "%s %s", broker->node, name);
            json_t *sample = json_object_get(self->samples, key);
            json_array_append_new(s_child_array(total, "brokers"),
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

// ---- self-test ----------------------------------------------------------------------------

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lookupd_cluster_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

static const char *s_test_nodes =
    "{\"producers\":[{\"broadcast_address\":\"10.0.0.1\",\"http_port\":4151,\"zmq_port\":4152,"
    "\"version\":\"0.1.0\",\"topics\":[\"orders\"]},{\"broadcast_address\":\"::1\","
    "\"http_port\":4251,\"zmq_port\":4252,\"topics\":[\"orders\",\"orders.dead\"]}]}";

// A /stats document with one topic "orders" (channel "billing") and a
// dead-letter topic whose "replay" channel holds some.
static char *s_test_stats(int messages, int depth, bool paused)
{
    return zsys_sprintf(
        "{\"version\":\"0.1.0\",\"health\":\"OK\",\"start_time\":1700000000,\"topics\":["
        "{\"topic_name\":\"orders\",\"depth\":1,\"backend_depth\":0,\"message_count\":%d,"
        "\"paused\":false,\"channels\":[{\"channel_name\":\"billing\",\"depth\":%d,"
        "\"backend_depth\":2,\"in_flight_count\":3,\"deferred_count\":0,\"requeue_count\":4,"
        "\"timeout_count\":0,\"client_count\":1,\"message_count\":%d,\"paused\":%s,"
        "\"clients\":[{\"client_id\":\"w1\",\"remote_address\":\"10.0.0.9:5000\"}]}]},"
        "{\"topic_name\":\"orders.dead\",\"depth\":2,\"message_count\":7,\"channels\":["
        "{\"channel_name\":\"replay\",\"depth\":3,\"in_flight_count\":1,\"deferred_count\":0}]}]}",
        messages, depth, messages, paused ? "true" : "false");
}

static json_t *s_test_path(json_t *doc, const char *path)
{
    // "topics.0.channels.0.depth": keys and indexes
    char copy[128];
    snprintf(copy, sizeof copy, "%s", path);
    for (char *part = strtok(copy, "."); doc && part; part = strtok(NULL, "."))
        doc = json_is_array(doc) ? json_array_get(doc, (size_t) atoi(part))
                                 : json_object_get(doc, part);
    return doc;
}

int lookupd_cluster_test(void)
{
    json_t *nodes = json_loads(s_test_nodes, 0, NULL), *doc = NULL;
    lookupd_history_t *history = lookupd_history_new(1000, 60000, 1 << 20);
    lookupd_cluster_t *cluster = lookupd_cluster_new(history);
    zlistx_t *list = NULL;
    char *stats = NULL, url[128];
    S_CHECK(nodes && history && cluster && lookupd_cluster_set_nodes(cluster, nodes) == 0);
    list = lookupd_cluster_nodes(cluster);
    S_CHECK(list && zlistx_size(list) == 2 && streq(zlistx_first(list), "10.0.0.1:4151"));
    zlistx_destroy(&list);
    S_CHECK(lookupd_cluster_url("::1:4251", "/stats", url, sizeof url) == 0
            && streq(url, "http://[::1]:4251/stats"));
    S_CHECK(lookupd_cluster_zmq_address(cluster, "::1:4251", url, sizeof url) == 0
            && streq(url, "[::1]:4252"));
    // Before any poll the registry says who holds a topic.
    list = lookupd_cluster_holders(cluster, "orders.dead", NULL);
    S_CHECK(list && zlistx_size(list) == 1);
    zlistx_destroy(&list);

    // Two polls of one broker a second apart: 50 messages -> 50/s.
    int64_t t0 = 1700000100000;
    stats = s_test_stats(100, 10, false);
    lookupd_cluster_update(cluster, "10.0.0.1:4151", 200, stats, strlen(stats), "", t0);
    zstr_free(&stats);
    stats = s_test_stats(150, 12, true);
    lookupd_cluster_update(cluster, "10.0.0.1:4151", 200, stats, strlen(stats), "", t0 + 1000);
    zstr_free(&stats);
    lookupd_cluster_update(cluster, "::1:4251", 0, NULL, 0, "Connection refused", t0 + 1000);
    doc = lookupd_cluster_topics_json(cluster, "orders", NULL);
    S_CHECK(doc && json_array_size(json_object_get(doc, "topics")) == 1);
    S_CHECK(json_number_value(s_test_path(doc, "topics.0.message_rate")) == 50.0);
    S_CHECK(json_integer_value(s_test_path(doc, "topics.0.channels.0.depth")) == 12);
    S_CHECK(json_integer_value(s_test_path(doc, "topics.0.channels.0.memory_depth")) == 10);
    S_CHECK(json_is_true(s_test_path(doc, "topics.0.channels.0.paused")));
    // The unreachable broker still shows, from the registry, as stale.
    S_CHECK(json_array_size(s_test_path(doc, "topics.0.brokers")) == 2);
    S_CHECK(json_is_true(s_test_path(doc, "topics.0.brokers.1.stale")));
    json_decref(doc);
    doc = lookupd_cluster_overview_json(cluster, t0 + 1000);
    S_CHECK(doc && streq(json_string_value(s_test_path(doc, "brokers.1.health")), "unreachable"));
    S_CHECK(streq(json_string_value(s_test_path(doc, "brokers.0.health")), "OK"));
    S_CHECK(json_integer_value(s_test_path(doc, "brokers.0.uptime_s")) == 101);
    S_CHECK(json_integer_value(s_test_path(doc, "totals.brokers")) == 2);
    S_CHECK(json_integer_value(s_test_path(doc, "totals.topics")) == 2);  // orders, orders.dead
    json_decref(doc);
    doc = lookupd_cluster_channel_json(cluster, "orders", "billing");
    S_CHECK(doc
            && streq(json_string_value(s_test_path(doc, "brokers.0.client_list.0.door")), "zmq"));
    json_decref(doc);
    // A dead topic counts its own queue plus its replay channel's.
    S_CHECK(lookupd_cluster_dead_count(cluster, "10.0.0.1:4151", "orders.dead") == 6);
    doc = lookupd_cluster_deadletters_json(cluster);
    S_CHECK(doc && json_integer_value(s_test_path(doc, "topics.0.count")) == 6);
    S_CHECK(streq(json_string_value(s_test_path(doc, "topics.0.origin")), "orders"));
    json_decref(doc);
    doc = NULL;
    // The history got both polls of every topic and channel.
    lookupd_history_stats_t counters;
    lookupd_history_stats(history, &counters);
    S_CHECK(counters.series == 4);
    // A broker that left is dropped; one never polled is taken at the
    // registry's word (which knows no channels).
    json_array_remove(json_object_get(nodes, "producers"), 0);
    S_CHECK(lookupd_cluster_set_nodes(cluster, nodes) == 0);
    list = lookupd_cluster_holders(cluster, "orders", "billing");
    S_CHECK(list && zlistx_size(list) == 1 && streq(zlistx_first(list), "::1:4251"));
    zlistx_destroy(&list);
    lookupd_cluster_destroy(&cluster);
    lookupd_history_destroy(&history);
    json_decref(nodes);
    return 0;
failed:
    zlistx_destroy(&list);
    zstr_free(&stats);
    json_decref(doc);
    lookupd_cluster_destroy(&cluster);
    lookupd_history_destroy(&history);
    json_decref(nodes);
    return -1;
}
