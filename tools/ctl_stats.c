/*  ctl_stats - nsq-ctl topics, stats and watch
    SPDX-License-Identifier: MIT

    All three read one document shape, the console's /api/topics (topics
    with sums across brokers, each with its channels). Against one broker,
    its /stats?format=json is turned into that shape first (s_from_broker),
    so --json prints the same fields whatever nsq-ctl talks to. Rates come
    from lookupd's last two polls; against a broker, watch computes them
    from its own last two reads (stats has none to show).
*/
#include "ctl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t s_interrupted;

static void s_on_signal(int signal)
{
    (void) signal;
    s_interrupted = 1;
}

static json_int_t s_int(json_t *object, const char *key)
{
    return json_integer_value(json_object_get(object, key));
}

static const char *s_str(json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value ? value : "";
}

// A topic or channel of a broker's /stats in the console's shape.
static json_t *s_row(json_t *item, bool is_channel)
{
    json_int_t depth = s_int(item, "depth"), backend = s_int(item, "backend_depth");
    json_t *row =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:n, s:b}", is_channel ? "channel" : "topic",
                  s_str(item, is_channel ? "channel_name" : "topic_name"), "depth", depth,
                  "backend_depth", backend, "memory_depth", depth > backend ? depth - backend : 0,
                  "message_count", s_int(item, "message_count"), "message_rate", "paused",
                  json_is_true(json_object_get(item, "paused")));
    if (is_channel) {
        json_object_set_new(row, "in_flight", json_integer(s_int(item, "in_flight_count")));
        json_object_set_new(row, "deferred", json_integer(s_int(item, "deferred_count")));
        json_object_set_new(row, "requeued", json_integer(s_int(item, "requeue_count")));
        json_object_set_new(row, "timed_out", json_integer(s_int(item, "timeout_count")));
        json_object_set_new(row, "clients", json_integer(s_int(item, "client_count")));
    }
    return row;
}

// Takes a broker's /stats document, returns the console's shape.
static json_t *s_from_broker(json_t *stats)
{
    json_t *topics = json_array();
    size_t i, j;
    json_t *topic, *channel;
    json_array_foreach(json_object_get(stats, "topics"), i, topic)
    {
        json_t *row = s_row(topic, false), *channels = json_array();
        json_array_foreach(json_object_get(topic, "channels"), j, channel)
            json_array_append_new(channels, s_row(channel, true));
        json_object_set_new(row, "channels", channels);
        json_array_append_new(topics, row);
    }
    json_decref(stats);
    return json_pack("{s:o}", "topics", topics);
}

// Reads the topics (filtered); NULL with *code set on failure.
static json_t *s_read(const ctl_t *ctl, const char *topic, const char *channel, int *code)
{
    char path[512], topic_q[200] = "", channel_q[200] = "";
    if (topic)
        ctl_escape(topic_q, sizeof topic_q, topic);
    if (channel)
        ctl_escape(channel_q, sizeof channel_q, channel);
    snprintf(path, sizeof path, "%s%s%s%s%s", ctl->lookupd ? "/api/topics?" : "/stats?format=json&",
             topic ? "topic=" : "", topic_q, channel ? "&channel=" : "", channel_q);
    if (ctl->lookupd)
        return ctl_get_json(ctl, false, ctl->lookupd, path, code);
    json_t *stats = ctl_get_json(ctl, false, ctl->broker_http, path, code);
    return stats ? s_from_broker(stats) : NULL;
}

static void s_number(json_t *row, const char *key, int width)
{
    json_t *value = json_object_get(row, key);
    if (json_is_integer(value))
        printf(" %*lld", width, (long long) json_integer_value(value));
    else
        printf(" %*s", width, "-");
}

static void s_rate(json_t *row, int width)
{
    json_t *value = json_object_get(row, "message_rate");
    if (json_is_number(value))
        printf(" %*.1f", width, json_number_value(value));
    else
        printf(" %*s", width, "-");
}

static void s_print_row(json_t *row, const char *topic, const char *channel, int topic_width,
                        int channel_width)
{
    printf("%-*s %-*s", topic_width, topic, channel_width, channel);
    static const char *const keys[] = {"depth",    "memory_depth", "backend_depth", "in_flight",
                                       "deferred", "requeued",     "timed_out",     "clients"};
    static const int widths[] = {9, 9, 9, 9, 8, 8, 9, 7};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        s_number(row, keys[i], widths[i]);
    s_rate(row, 9);
    printf("%s\n", json_is_true(json_object_get(row, "paused")) ? "  paused" : "");
}

static void s_print_table(json_t *doc)
{
    int topic_width = 5, channel_width = 7;
    size_t i, j;
    json_t *topic, *channel;
    json_array_foreach(json_object_get(doc, "topics"), i, topic)
    {
        int length = (int) strlen(s_str(topic, "topic"));
        topic_width = length > topic_width ? length : topic_width;
        json_array_foreach(json_object_get(topic, "channels"), j, channel)
        {
            length = (int) strlen(s_str(channel, "channel"));
            channel_width = length > channel_width ? length : channel_width;
        }
    }
    printf("%-*s %-*s %9s %9s %9s %9s %8s %8s %9s %7s %9s\n", topic_width, "TOPIC", channel_width,
           "CHANNEL", "DEPTH", "MEMORY", "DISK", "IN_FLIGHT", "DEFERRED", "REQUEUED", "TIMED_OUT",
           "CLIENTS", "MSGS/S");
    json_array_foreach(json_object_get(doc, "topics"), i, topic)
    {
        s_print_row(topic, s_str(topic, "topic"), "-", topic_width, channel_width);
        json_array_foreach(json_object_get(topic, "channels"), j, channel) s_print_row(
            channel, s_str(topic, "topic"), s_str(channel, "channel"), topic_width, channel_width);
    }
}

static void s_print_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text)
        printf("%s\n", text);
    free(text);
}

int ctl_topics(const ctl_t *ctl)
{
    int code = CTL_OK;
    json_t *doc = s_read(ctl, NULL, NULL, &code);
    if (!doc)
        return code;
    json_t *names = json_array();
    size_t i;
    json_t *topic;
    json_array_foreach(json_object_get(doc, "topics"), i, topic)
        json_array_append_new(names, json_string(s_str(topic, "topic")));
    if (ctl->json) {
        json_t *out = json_pack("{s:O}", "topics", names);
        s_print_json(out);
        json_decref(out);
    } else
        json_array_foreach(names, i, topic) printf("%s\n", json_string_value(topic));
    json_decref(names);
    json_decref(doc);
    return CTL_OK;
}

// Checks that a named topic (and channel) is in doc; 0 or CTL_NOT_FOUND.
static int s_found(json_t *doc, const char *topic, const char *channel)
{
    json_t *first = json_array_get(json_object_get(doc, "topics"), 0);
    if (topic && !first)
        return ctl_fail(CTL_NOT_FOUND, "topic %s not found", topic);
    if (channel && json_array_size(json_object_get(first, "channels")) == 0)
        return ctl_fail(CTL_NOT_FOUND, "channel %s/%s not found", topic, channel);
    return CTL_OK;
}

int ctl_stats(const ctl_t *ctl, const char *topic, const char *channel)
{
    int code = CTL_OK;
    json_t *doc = s_read(ctl, topic, channel, &code);
    if (!doc)
        return code;
    code = s_found(doc, topic, channel);
    if (code == CTL_OK)
        ctl->json ? s_print_json(doc) : s_print_table(doc);
    json_decref(doc);
    return code;
}

// The item of array whose key is name; NULL if none.
static json_t *s_named(json_t *array, const char *key, const char *name)
{
    size_t index;
    json_t *item;
    json_array_foreach(array, index, item)
    {
        if (strcmp(s_str(item, key), name) == 0)
            return item;
    }
    return NULL;
}

static void s_set_rate(json_t *row, json_t *before, double seconds)
{
    if (!before || seconds <= 0)
        return;
    double increase = (double) (s_int(row, "message_count") - s_int(before, "message_count"));
    json_object_set_new(row, "message_rate", json_real(increase >= 0 ? increase / seconds : 0));
}

// Against a broker: message rates from the counts of the last read.
static void s_broker_rates(json_t *doc, json_t *previous, double seconds)
{
    size_t i, j;
    json_t *topic, *channel;
    json_array_foreach(json_object_get(doc, "topics"), i, topic)
    {
        json_t *old = s_named(json_object_get(previous, "topics"), "topic", s_str(topic, "topic"));
        s_set_rate(topic, old, seconds);
        json_array_foreach(json_object_get(topic, "channels"), j, channel) s_set_rate(
            channel,
            s_named(json_object_get(old, "channels"), "channel", s_str(channel, "channel")),
            seconds);
    }
}

static void s_sleep_ms(int64_t milliseconds)
{
    struct timespec delay = {milliseconds / 1000, (long) (milliseconds % 1000) * 1000000};
    while (!s_interrupted && nanosleep(&delay, &delay) == -1 && errno == EINTR)
        ;
}

int ctl_watch(const ctl_t *ctl)
{
    struct sigaction action = {.sa_handler = s_on_signal};
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    bool terminal = isatty(STDOUT_FILENO);
    json_t *previous = NULL;
    struct timespec then = {0, 0};
    int code = CTL_OK;
    for (int64_t round = 0; !s_interrupted && (ctl->count == 0 || round < ctl->count); round++) {
        if (round)
            s_sleep_ms(ctl->interval_ms);
        if (s_interrupted)
            break;
        json_t *doc = s_read(ctl, NULL, NULL, &code);
        if (!doc)
            break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!ctl->lookupd && previous)
            s_broker_rates(doc, previous,
                           (double) (now.tv_sec - then.tv_sec)
                               + (double) (now.tv_nsec - then.tv_nsec) / 1e9);
        if (terminal)
            fputs("\033[H\033[2J", stdout);
        time_t wall = time(NULL);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%H:%M:%S", localtime(&wall));
        if (ctl->json)
            s_print_json(doc);
        else {
            printf("nsq-ctl watch: %s, every %lld ms, %s\n",
                   ctl->lookupd ? ctl->lookupd : ctl->broker_http, (long long) ctl->interval_ms,
                   stamp);
            s_print_table(doc);
        }
        fflush(stdout);
        json_decref(previous);
        previous = doc;
        then = now;
        code = CTL_OK;
    }
    json_decref(previous);
    return code;
}
