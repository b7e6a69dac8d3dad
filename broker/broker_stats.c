/*  broker_stats - snapshots of the core's state: /stats (JSON with NSQ's
    field names, so nsqadmin-style tools and KEDA's NSQ scaler work; or
    text) and /metrics (Prometheus text format)
    SPDX-License-Identifier: MIT

    Runs on the core thread, so it reads state without locks; the caller
    gets one malloc'd string. Topics are listed in name order.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_core.h"
#include "nsq_json.h"

static int s_compare_topics(const void *a, const void *b)
{
    return strcmp((*(broker_topic_t *const *) a)->name, (*(broker_topic_t *const *) b)->name);
}

// Returns the topics matching filter ("" = all) in name order, count in *count.
// Caller frees the array (not the topics).
static broker_topic_t **s_sorted_topics(broker_core_t *self, const char *filter, size_t *count)
{
    broker_topic_t **topics = malloc((zhashx_size(self->topics) + 1) * sizeof *topics);
    *count = 0;
    if (!topics)
        return NULL;
    for (broker_topic_t *topic = zhashx_first(self->topics); topic;
         topic = zhashx_next(self->topics))
        if (!*filter || streq(filter, topic->name))
            topics[(*count)++] = topic;
    qsort(topics, *count, sizeof *topics, s_compare_topics);
    return topics;
}

static void s_json_client(FILE *out, const broker_client_t *client)
{
    fputs("{\"client_id\":", out);
    nsq_json_write_string(out, client->client_id);
    fputs(",\"hostname\":", out);
    nsq_json_write_string(out, client->hostname);
    fputs(",\"user_agent\":", out);
    nsq_json_write_string(out, client->user_agent);
    fputs(",\"remote_address\":", out);
    nsq_json_write_string(out, client->remote_address);
    fprintf(out,
            ",\"state\":%d,\"ready_count\":%u,\"in_flight_count\":%u,"
            "\"message_count\":%llu,\"finish_count\":%llu,\"requeue_count\":%llu,"
            "\"connect_ts\":%lld}",
            (int) client->state, client->rdy, client->in_flight,
            (unsigned long long) client->message_count, (unsigned long long) client->finish_count,
            (unsigned long long) client->requeue_count, (long long) client->connect_ts);
}

static void s_json_channel(FILE *out, const broker_channel_t *channel)
{
    fprintf(out,
            "{\"channel_name\":\"%s\",\"depth\":%zu,\"backend_depth\":%zu,\"corrupt_count\":%llu,"
            "\"in_flight_count\":%zu,"
            "\"deferred_count\":%zu,\"memory_bytes\":%llu,\"message_count\":%llu,"
            "\"requeue_count\":%llu,\"timeout_count\":%llu,\"client_count\":%zu,\"clients\":[",
            channel->name, broker_channel_depth(channel), broker_channel_backend_depth(channel),
            (unsigned long long) (channel->disk ? nsq_diskqueue_corrupt_count(channel->disk) : 0),
            broker_inflight_size(channel->in_flight), broker_inflight_size(channel->deferred),
            (unsigned long long) broker_channel_memory_bytes(channel),
            (unsigned long long) channel->message_count,
            (unsigned long long) channel->requeue_count,
            (unsigned long long) channel->timeout_count, channel->client_count);
    for (size_t i = 0; i < channel->client_count; i++) {
        if (i)
            fputc(',', out);
        s_json_client(out, channel->clients[i]);
    }
    fprintf(out, "],\"paused\":%s,\"e2e_processing_latency\":{\"count\":0,\"percentiles\":null}}",
            channel->paused ? "true" : "false");
}

static void s_json_topic(FILE *out, const broker_topic_t *topic, const char *channel_filter)
{
    fprintf(out, "{\"topic_name\":\"%s\",\"channels\":[", topic->name);
    bool first = true;
    for (size_t i = 0; i < topic->channel_count; i++) {
        if (*channel_filter && !streq(channel_filter, topic->channels[i]->name))
            continue;
        if (!first)
            fputc(',', out);
        first = false;
        s_json_channel(out, topic->channels[i]);
    }
    fprintf(out,
            "],\"depth\":%zu,\"backend_depth\":%zu,\"corrupt_count\":%llu,\"memory_bytes\":%llu,"
            "\"message_count\":%llu,\"message_bytes\":%llu,"
            "\"paused\":%s,\"e2e_processing_latency\":{\"count\":0,\"percentiles\":null}}",
            broker_topic_depth(topic), broker_topic_backend_depth(topic),
            (unsigned long long) (topic->disk ? nsq_diskqueue_corrupt_count(topic->disk) : 0),
            (unsigned long long) broker_topic_memory_bytes(topic),
            (unsigned long long) topic->message_count, (unsigned long long) topic->message_bytes,
            topic->paused ? "true" : "false");
}

// Writes one document about the given topics (sorted, filtered) to out.
typedef void(s_writer_fn)(FILE *out, broker_core_t *self, broker_topic_t **topics, size_t count,
                          const char *channel_filter);

// Renders a document with writer into a new string. Caller owns the
// result; NULL if out of memory.
static char *s_render(broker_core_t *self, const char *topic_filter, const char *channel_filter,
                      s_writer_fn *writer)
{
    char *buffer = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buffer, &size);
    if (!out)
        return NULL;
    size_t count;
    broker_topic_t **topics = s_sorted_topics(self, topic_filter, &count);
    if (topics)
        writer(out, self, topics, count, channel_filter);
    free(topics);
    bool failed = !topics || ferror(out);
    if (fclose(out) != 0 || failed) {  // the buffer is only valid after fclose
        free(buffer);
        return NULL;
    }
    return buffer;
}

static void s_write_json(FILE *out, broker_core_t *self, broker_topic_t **topics, size_t count,
                         const char *channel_filter)
{
    fprintf(out, "{\"version\":\"%s\",\"health\":\"OK\",\"start_time\":%lld,\"topics\":[",
            NSQ_VERSION, (long long) self->start_time);
    for (size_t i = 0; i < count; i++) {
        if (i)
            fputc(',', out);
        s_json_topic(out, topics[i], channel_filter);
    }
    fprintf(out, "],\"producers\":[],\"client_count\":%zu,\"send_blocked_count\":%llu}",
            zhashx_size(self->clients), (unsigned long long) self->blocked.count);
}

char *broker_stats_json(broker_core_t *self, const char *topic_filter, const char *channel_filter)
{
    return s_render(self, topic_filter, channel_filter, s_write_json);
}

static void s_write_text(FILE *out, broker_core_t *self, broker_topic_t **topics, size_t count,
                         const char *channel_filter)
{
    fprintf(out, "nsq-broker v%s\nstart_time %lld\nhealth: OK\nsend_blocked_count: %llu\n",
            NSQ_VERSION, (long long) self->start_time, (unsigned long long) self->blocked.count);
    for (size_t i = 0; i < count; i++) {
        broker_topic_t *topic = topics[i];
        fprintf(out, "\n[%-15s] depth: %-5zu be-depth: %-5zu msgs: %-8llu%s\n", topic->name,
                broker_topic_depth(topic), broker_topic_backend_depth(topic),
                (unsigned long long) topic->message_count, topic->paused ? " (paused)" : "");
        for (size_t j = 0; j < topic->channel_count; j++) {
            broker_channel_t *channel = topic->channels[j];
            if (*channel_filter && !streq(channel_filter, channel->name))
                continue;
            fprintf(out,
                    "    [%-15s] depth: %-5zu be-depth: %-5zu inflt: %-4zu def: %-4zu re-q: %-5llu "
                    "timeout: %-5llu msgs: %-8llu clients: %zu%s\n",
                    channel->name, broker_channel_depth(channel),
                    broker_channel_backend_depth(channel), broker_inflight_size(channel->in_flight),
                    broker_inflight_size(channel->deferred),
                    (unsigned long long) channel->requeue_count,
                    (unsigned long long) channel->timeout_count,
                    (unsigned long long) channel->message_count, channel->client_count,
                    channel->paused ? " (paused)" : "");
        }
    }
}

char *broker_stats_text(broker_core_t *self, const char *topic_filter, const char *channel_filter)
{
    return s_render(self, topic_filter, channel_filter, s_write_text);
}

typedef struct {
    const char *name;  // metric name
    const char *type;  // gauge or counter
    const char *help;  // one line
} metric_family_t;

static const metric_family_t s_topic_families[] = {
    {"nsq_topic_depth", "gauge", "Messages held by the topic itself (no channel yet, or paused)."},
    {"nsq_topic_messages_total", "counter", "Messages published to the topic."},
    {"nsq_topic_message_bytes_total", "counter", "Body bytes published to the topic."},
    {"nsq_topic_memory_bytes", "gauge", "Body bytes the topic holds in memory."},
};

static const metric_family_t s_channel_families[] = {
    {"nsq_channel_depth", "gauge", "Messages waiting for delivery."},
    {"nsq_channel_in_flight", "gauge", "Messages delivered and not yet finished."},
    {"nsq_channel_deferred", "gauge", "Messages waiting for their defer or requeue delay."},
    {"nsq_channel_clients", "gauge", "Consumers subscribed."},
    {"nsq_channel_messages_total", "counter", "Messages put into the channel."},
    {"nsq_channel_requeued_total", "counter", "Messages requeued by consumers."},
    {"nsq_channel_timed_out_total", "counter", "Messages whose in-flight timeout passed."},
    {"nsq_channel_memory_bytes", "gauge", "Body bytes queued or deferred in memory."},
};

static unsigned long long s_topic_value(const broker_topic_t *topic, size_t family)
{
    const unsigned long long values[] = {broker_topic_depth(topic), topic->message_count,
                                         topic->message_bytes, broker_topic_memory_bytes(topic)};
    return values[family];
}

static unsigned long long s_channel_value(const broker_channel_t *channel, size_t family)
{
    const unsigned long long values[] = {broker_channel_depth(channel),
                                         broker_inflight_size(channel->in_flight),
                                         broker_inflight_size(channel->deferred),
                                         channel->client_count,
                                         channel->message_count,
                                         channel->requeue_count,
                                         channel->timeout_count,
                                         broker_channel_memory_bytes(channel)};
    return values[family];
}

static void s_family_header(FILE *out, const metric_family_t *family)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", family->name, family->help, family->name,
            family->type);
}

static void s_write_metrics(FILE *out, broker_core_t *self, broker_topic_t **topics, size_t count,
                            const char *channel_filter)
{
    (void) channel_filter;
    for (size_t f = 0; f < sizeof s_topic_families / sizeof *s_topic_families; f++) {
        s_family_header(out, &s_topic_families[f]);
        for (size_t i = 0; i < count; i++)
            fprintf(out, "%s{topic=\"%s\"} %llu\n", s_topic_families[f].name, topics[i]->name,
                    s_topic_value(topics[i], f));
    }
    for (size_t f = 0; f < sizeof s_channel_families / sizeof *s_channel_families; f++) {
        s_family_header(out, &s_channel_families[f]);
        for (size_t i = 0; i < count; i++)
            for (size_t j = 0; j < topics[i]->channel_count; j++)
                fprintf(out, "%s{topic=\"%s\",channel=\"%s\"} %llu\n", s_channel_families[f].name,
                        topics[i]->name, topics[i]->channels[j]->name,
                        s_channel_value(topics[i]->channels[j], f));
    }
    fprintf(out,
            "# HELP nsq_broker_clients Connected ZeroMQ clients.\n# TYPE nsq_broker_clients "
            "gauge\nnsq_broker_clients %zu\n"
            "# HELP nsq_broker_bad_commands_total Frames that were not valid commands.\n"
            "# TYPE nsq_broker_bad_commands_total counter\nnsq_broker_bad_commands_total %llu\n"
            "# HELP nsq_broker_send_blocked_total Frames that found a client's ZeroMQ queue full "
            "(held in its backlog or, for messages, requeued; none dropped).\n"
            "# TYPE nsq_broker_send_blocked_total counter\nnsq_broker_send_blocked_total %llu\n"
            "# HELP nsq_broker_start_time_seconds Unix time the broker started.\n"
            "# TYPE nsq_broker_start_time_seconds gauge\nnsq_broker_start_time_seconds %lld\n",
            zhashx_size(self->clients), (unsigned long long) self->bad_commands,
            (unsigned long long) self->blocked.count, (long long) self->start_time);
}

char *broker_stats_metrics(broker_core_t *self)
{
    return s_render(self, "", "", s_write_metrics);
}
