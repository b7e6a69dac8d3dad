/*  lookupd_cluster - the console's view of the cluster: every broker's
    last /stats, with rates
    SPDX-License-Identifier: MIT

    Each broker keeps its /nodes entry, its last /stats document and the
    message counts of that document (a JSON object "topic" / "topic:channel"
    -> count), from which the next document's "message_rate" fields are
    computed and written into it. Only this file writes a broker's record;
    the renderers (lookupd_cluster_json.c) read it.
*/
#include "lookupd_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_json.h"

typedef lookupd_cluster_broker_t s_broker_t;  // the file's name for it

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
        snprintf(node, sizeof node, "%s:%llu", lookupd_json_str(producer, "broadcast_address"),
                 (unsigned long long) lookupd_json_uint(producer, "http_port"));
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

// Writes scheme://host:port + path, host (host_size bytes) in brackets if
// it is an IPv6 address without them.
static int s_url(const char *scheme, const char *host, int host_size, unsigned long port,
                 const char *path, char *url, size_t size)
{
    bool ipv6 = memchr(host, ':', (size_t) host_size) != NULL;
    int length = snprintf(url, size, "%s://%s%.*s%s:%lu%s", scheme, ipv6 ? "[" : "", host_size,
                          host, ipv6 ? "]" : "", port, path);
    return length < 0 || (size_t) length >= size ? -1 : 0;
}

int lookupd_cluster_url(const char *address, const char *path, char *url, size_t size)
{
    const char *scheme = "http";
    if (strncmp(address, "https://", 8) == 0)
        scheme = "https", address += 8;
    else if (strncmp(address, "http://", 7) == 0)
        address += 7;
    const char *colon = strrchr(address, ':');
    if (!colon)
        return -1;
    bool bracketed = address[0] == '[' && colon > address && colon[-1] == ']';
    const char *host = address + bracketed;
    return s_url(scheme, host, (int) (colon - host) - bracketed, strtoul(colon + 1, NULL, 10), path,
                 url, size);
}

int lookupd_cluster_broker_url(lookupd_cluster_t *self, const char *node, const char *path,
                               char *url, size_t size)
{
    s_broker_t *broker = zhashx_lookup(self->brokers, node);
    uint64_t https_port = broker ? lookupd_json_uint(broker->info, "https_port") : 0;
    if (https_port == 0 || https_port > 65535)
        return lookupd_cluster_url(node, path, url, size);
    const char *host = lookupd_json_str(broker->info, "broadcast_address");
    return s_url("https", host, (int) strlen(host), (unsigned long) https_port, path, url, size);
}

int lookupd_cluster_zmq_address(lookupd_cluster_t *self, const char *node, char *out, size_t size)
{
    s_broker_t *broker = zhashx_lookup(self->brokers, node);
    if (!broker)
        return -1;
    const char *host = lookupd_json_str(broker->info, "broadcast_address");
    bool ipv6 = strchr(host, ':') != NULL;
    int length = snprintf(out, size, "%s%s%s:%llu", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
                          (unsigned long long) lookupd_json_uint(broker->info, "zmq_port"));
    return length < 0 || (size_t) length >= size ? -1 : 0;
}

// ---- polls --------------------------------------------------------------------------

// Writes "message_rate" into item from its count and the count under key
// at the last poll, and records the count in counts.
static void s_rate(json_t *item, const char *key, json_t *previous, json_t *counts, double seconds)
{
    uint64_t count = lookupd_json_uint(item, "message_count");
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
        lookupd_json_uint(item, "depth"),           lookupd_json_uint(item, "backend_depth"),
        lookupd_json_uint(item, "in_flight_count"), lookupd_json_uint(item, "deferred_count"),
        lookupd_json_uint(item, "client_count"),    lookupd_json_uint(item, "message_count"),
        lookupd_json_uint(item, "requeue_count"),   lookupd_json_uint(item, "timeout_count")};
    lookupd_history_record(self->history, node, lookupd_json_str(topic, "topic_name"),
                           channel ? lookupd_json_str(channel, "channel_name") : NULL, &sample,
                           now_ms);
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
        const char *topic_name = lookupd_json_str(topic, "topic_name");
        s_rate(topic, topic_name, broker->counts, counts, seconds);
        s_record(self, broker->node, topic, NULL, now_ms);
        json_array_foreach(json_object_get(topic, "channels"), j, channel)
        {
            char key[2 * 64 + 2];
            snprintf(key, sizeof key, "%s:%s", topic_name,
                     lookupd_json_str(channel, "channel_name"));
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
            json_t *item =
                lookupd_json_find(json_object_get(broker->stats, "topics"), "topic_name", topic);
            holds = item
                    && (!channel
                        || lookupd_json_find(json_object_get(item, "channels"), "channel_name",
                                             channel));
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

// ---- the renderers' reads --------------------------------------------------------------

const lookupd_cluster_broker_t *lookupd_cluster_first(lookupd_cluster_t *self)
{
    return zhashx_first(self->brokers);
}

const lookupd_cluster_broker_t *lookupd_cluster_next(lookupd_cluster_t *self)
{
    return zhashx_next(self->brokers);
}

const lookupd_cluster_broker_t *lookupd_cluster_find(lookupd_cluster_t *self, const char *node)
{
    return zhashx_lookup(self->brokers, node);
}

json_t *lookupd_cluster_sample(lookupd_cluster_t *self, const char *node, const char *topic)
{
    char key[LOOKUPD_NODE_MAX + 80];
    snprintf(key, sizeof key, "%s %s", node, topic);
    return json_object_get(self->samples, key);
}
