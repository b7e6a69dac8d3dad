/*  broker_http_stats - a stats snapshot as the HTTP door shows it: /stats
    as JSON (NSQ's field names, so nsqadmin-style tools and KEDA's NSQ
    scaler work) or text, and /metrics in Prometheus' text format
    SPDX-License-Identifier: MIT
*/
#include "broker_http_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_json.h"

// Writes one document about stats to out.
typedef void(s_writer_fn)(FILE *out, const broker_stats_t *stats);

// Renders a document with writer into a new string. Caller owns the
// result; NULL if out of memory.
static char *s_render(const broker_stats_t *stats, s_writer_fn *writer)
{
    char *buffer = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buffer, &size);
    if (!out)
        return NULL;
    writer(out, stats);
    bool failed = ferror(out);
    if (fclose(out) != 0 || failed) {  // the buffer is only valid after fclose
        free(buffer);
        return NULL;
    }
    return buffer;
}

static void s_json_client(FILE *out, const broker_stats_client_t *client)
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
            "\"connect_ts\":%lld,\"sample_rate\":%d,\"deflate\":%s,\"snappy\":%s,\"tls\":%s,"
            "\"version\":\"%s\",\"door\":\"%s\"",
            client->state, client->ready_count, client->in_flight_count,
            (unsigned long long) client->message_count, (unsigned long long) client->finish_count,
            (unsigned long long) client->requeue_count, (long long) client->connect_ts,
            client->sample_rate, client->deflate ? "true" : "false",
            client->snappy ? "true" : "false", client->tls ? "true" : "false",
            strcmp(client->door, "tcp") == 0 ? "V2" : client->door, client->door);
    if (client->authed) {  // as nsqd's (omitempty): only for a client that AUTHed
        fputs(",\"authed\":true", out);
        if (client->auth_identity[0]) {
            fputs(",\"auth_identity\":", out);
            nsq_json_write_string(out, client->auth_identity);
        }
        if (client->auth_identity_url[0]) {
            fputs(",\"auth_identity_url\":", out);
            nsq_json_write_string(out, client->auth_identity_url);
        }
    }
    fputc('}', out);
}

static void s_json_channel(FILE *out, const broker_stats_channel_t *channel)
{
    fprintf(out,
            "{\"channel_name\":\"%s\",\"depth\":%zu,\"backend_depth\":%zu,\"corrupt_count\":%llu,"
            "\"in_flight_count\":%zu,"
            "\"deferred_count\":%zu,\"memory_bytes\":%llu,\"message_count\":%llu,"
            "\"requeue_count\":%llu,\"timeout_count\":%llu,\"client_count\":%zu,\"clients\":[",
            channel->name, channel->depth, channel->backend_depth,
            (unsigned long long) channel->corrupt_count, channel->in_flight_count,
            channel->deferred_count, (unsigned long long) channel->memory_bytes,
            (unsigned long long) channel->message_count,
            (unsigned long long) channel->requeue_count,
            (unsigned long long) channel->timeout_count, channel->client_count);
    for (size_t i = 0; i < channel->client_count; i++) {
        if (i)
            fputc(',', out);
        s_json_client(out, &channel->clients[i]);
    }
    fprintf(out, "],\"paused\":%s,\"e2e_processing_latency\":{\"count\":0,\"percentiles\":null}}",
            channel->paused ? "true" : "false");
}

static void s_json_topic(FILE *out, const broker_stats_topic_t *topic)
{
    fprintf(out, "{\"topic_name\":\"%s\",\"channels\":[", topic->name);
    for (size_t i = 0; i < topic->channel_count; i++) {
        if (i)
            fputc(',', out);
        s_json_channel(out, &topic->channels[i]);
    }
    fprintf(out,
            "],\"depth\":%zu,\"backend_depth\":%zu,\"corrupt_count\":%llu,\"memory_bytes\":%llu,"
            "\"message_count\":%llu,\"message_bytes\":%llu,"
            "\"paused\":%s,\"e2e_processing_latency\":{\"count\":0,\"percentiles\":null}}",
            topic->depth, topic->backend_depth, (unsigned long long) topic->corrupt_count,
            (unsigned long long) topic->memory_bytes, (unsigned long long) topic->message_count,
            (unsigned long long) topic->message_bytes, topic->paused ? "true" : "false");
}

static void s_write_json(FILE *out, const broker_stats_t *stats)
{
    fprintf(out, "{\"version\":\"%s\",\"health\":\"OK\",\"start_time\":%lld,\"topics\":[",
            NSQ_VERSION, (long long) stats->start_time);
    for (size_t i = 0; i < stats->topic_count; i++) {
        if (i)
            fputc(',', out);
        s_json_topic(out, &stats->topics[i]);
    }
    fprintf(out, "],\"producers\":[],\"client_count\":%zu,\"send_blocked_count\":%llu}",
            stats->client_count, (unsigned long long) stats->counters.send_blocked);
}

char *broker_http_stats_json(const broker_stats_t *stats)
{
    return s_render(stats, s_write_json);
}

static void s_write_text(FILE *out, const broker_stats_t *stats)
{
    fprintf(out, "nsq-broker v%s\nstart_time %lld\nhealth: OK\nsend_blocked_count: %llu\n",
            NSQ_VERSION, (long long) stats->start_time,
            (unsigned long long) stats->counters.send_blocked);
    for (size_t i = 0; i < stats->topic_count; i++) {
        const broker_stats_topic_t *topic = &stats->topics[i];
        fprintf(out, "\n[%-15s] depth: %-5zu be-depth: %-5zu msgs: %-8llu%s\n", topic->name,
                topic->depth, topic->backend_depth, (unsigned long long) topic->message_count,
                topic->paused ? " (paused)" : "");
        for (size_t j = 0; j < topic->channel_count; j++) {
            const broker_stats_channel_t *channel = &topic->channels[j];
            fprintf(out,
                    "    [%-15s] depth: %-5zu be-depth: %-5zu inflt: %-4zu def: %-4zu re-q: %-5llu "
                    "timeout: %-5llu msgs: %-8llu clients: %zu%s\n",
                    channel->name, channel->depth, channel->backend_depth, channel->in_flight_count,
                    channel->deferred_count, (unsigned long long) channel->requeue_count,
                    (unsigned long long) channel->timeout_count,
                    (unsigned long long) channel->message_count, channel->client_count,
                    channel->paused ? " (paused)" : "");
        }
    }
}

char *broker_http_stats_text(const broker_stats_t *stats)
{
    return s_render(stats, s_write_text);
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

static unsigned long long s_topic_value(const broker_stats_topic_t *topic, size_t family)
{
    const unsigned long long values[] = {topic->depth, topic->message_count, topic->message_bytes,
                                         topic->memory_bytes};
    return values[family];
}

static unsigned long long s_channel_value(const broker_stats_channel_t *channel, size_t family)
{
    const unsigned long long values[] = {channel->depth,          channel->in_flight_count,
                                         channel->deferred_count, channel->client_count,
                                         channel->message_count,  channel->requeue_count,
                                         channel->timeout_count,  channel->memory_bytes};
    return values[family];
}

static void s_family_header(FILE *out, const metric_family_t *family)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", family->name, family->help, family->name,
            family->type);
}

static void s_write_metrics(FILE *out, const broker_stats_t *stats)
{
    const broker_stats_topic_t *topics = stats->topics;
    for (size_t f = 0; f < sizeof s_topic_families / sizeof *s_topic_families; f++) {
        s_family_header(out, &s_topic_families[f]);
        for (size_t i = 0; i < stats->topic_count; i++)
            fprintf(out, "%s{topic=\"%s\"} %llu\n", s_topic_families[f].name, topics[i].name,
                    s_topic_value(&topics[i], f));
    }
    for (size_t f = 0; f < sizeof s_channel_families / sizeof *s_channel_families; f++) {
        s_family_header(out, &s_channel_families[f]);
        for (size_t i = 0; i < stats->topic_count; i++)
            for (size_t j = 0; j < topics[i].channel_count; j++)
                fprintf(out, "%s{topic=\"%s\",channel=\"%s\"} %llu\n", s_channel_families[f].name,
                        topics[i].name, topics[i].channels[j].name,
                        s_channel_value(&topics[i].channels[j], f));
    }
    fputs("# HELP nsq_broker_door_clients Connected clients per door (zmq, tcp).\n"
          "# TYPE nsq_broker_door_clients gauge\n",
          out);
    for (size_t i = 0; i < stats->door_count; i++)
        fprintf(out, "nsq_broker_door_clients{door=\"%s\"} %zu\n", stats->doors[i].name,
                stats->doors[i].count);
    fprintf(out,
            "# HELP nsq_broker_clients Connected clients (every door).\n# TYPE nsq_broker_clients "
            "gauge\nnsq_broker_clients %zu\n"
            "# HELP nsq_broker_bad_commands_total Frames that were not valid commands.\n"
            "# TYPE nsq_broker_bad_commands_total counter\nnsq_broker_bad_commands_total %llu\n"
            "# HELP nsq_broker_send_blocked_total Frames that found a client's ZeroMQ queue full "
            "(held in its backlog or, for messages, requeued; none dropped).\n"
            "# TYPE nsq_broker_send_blocked_total counter\nnsq_broker_send_blocked_total %llu\n"
            "# HELP nsq_broker_start_time_seconds Unix time the broker started.\n"
            "# TYPE nsq_broker_start_time_seconds gauge\nnsq_broker_start_time_seconds %lld\n",
            stats->client_count, (unsigned long long) stats->counters.bad_commands,
            (unsigned long long) stats->counters.send_blocked, (long long) stats->start_time);
}

char *broker_http_stats_metrics(const broker_stats_t *stats)
{
    return s_render(stats, s_write_metrics);
}
