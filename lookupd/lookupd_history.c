/*  lookupd_history - the last hour of every topic and channel, per broker
    SPDX-License-Identifier: MIT

    A series' ring has `slots` buckets; bucket number b (now_ms / step_ms)
    lives in slot b % slots, and `newest` is the newest bucket written.
    Moving newest forward clears the slots passed over, so a slot never
    mixes two buckets. Values are uint32 (saturated): a bucket's counters
    only hold what one bucket adds. Field layout per slot: see s_fields.
    Series sit in a hash (by node, topic, channel) for recording and in a
    list ordered by last update for eviction and expiry (moved to the end
    on each record, O(1)).
*/
#include "lookupd_history.h"

#include <czmq.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MISSING        UINT32_MAX  // in a slot's first field: no poll reached it
#define S_SATURATED      (UINT32_MAX - 1)
#define S_ENTRY_OVERHEAD 96  // hash item, list node and allocator headers per series, counted

// Slot fields of a channel series; a topic series keeps the first two and
// F_MESSAGES onward only (S_TOPIC_FIELDS).
enum {
    F_DEPTH,
    F_BACKEND,
    F_IN_FLIGHT,
    F_DEFERRED,
    F_CLIENTS,
    F_MESSAGES,   // increase in the bucket
    F_REQUEUED,   // increase
    F_TIMED_OUT,  // increase
    F_COVERED,    // milliseconds the increases cover
    S_CHANNEL_FIELDS
};
#define S_TOPIC_FIELDS 4  // depth, backend, messages, covered

typedef struct {
    char *names;           // "node\0topic\0channel\0" (owned)
    const char *node;      // into names
    const char *topic;     // into names
    const char *channel;   // into names; "" for the topic
    int fields;            // S_CHANNEL_FIELDS or S_TOPIC_FIELDS
    int64_t newest;        // newest bucket written
    int64_t last_poll_ms;  // when the counters below were read
    uint64_t last[3];      // message, requeue, timeout counts at last_poll_ms
    void *handle;          // our node in the LRU list
    size_t bytes;          // what we count for this series
    uint32_t *slots;       // slots × fields values (owned)
} s_series_t;

struct _lookupd_history_t {
    int64_t step_ms;      // bucket length
    int64_t window_ms;    // what is kept
    size_t slots;         // buckets per ring: window / step, plus the one in progress
    size_t max_bytes;     // the bound
    size_t bytes;         // counted now
    zhashx_t *series;     // key -> s_series_t (owned)
    zlistx_t *by_update;  // s_series_t, least recently updated first (borrowed)
    uint64_t refused, evicted, expired;
};

static void s_series_destroy(s_series_t **self_p)
{
    s_series_t *self = *self_p;
    if (!self)
        return;
    free(self->names);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static void s_series_destructor(void **item)
{
    s_series_destroy((s_series_t **) item);
}

lookupd_history_t *lookupd_history_new(int64_t step_ms, int64_t window_ms, size_t max_bytes)
{
    if (step_ms <= 0 || window_ms <= 0 || window_ms / step_ms > 1000000) {
        errno = EINVAL;
        return NULL;
    }
    lookupd_history_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->step_ms = step_ms;
    self->slots = (size_t) ((window_ms + step_ms - 1) / step_ms) + 1;
    self->window_ms = (int64_t) (self->slots - 1) * step_ms;
    self->max_bytes = max_bytes;
    self->series = zhashx_new();
    self->by_update = zlistx_new();
    if (!self->series || !self->by_update) {
        lookupd_history_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->series, s_series_destructor);
    return self;
}

void lookupd_history_destroy(lookupd_history_t **self_p)
{
    lookupd_history_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zlistx_destroy(&self->by_update);
    zhashx_destroy(&self->series);
    free(self);
    *self_p = NULL;
}

size_t lookupd_history_series_bytes(lookupd_history_t *self, bool channel)
{
    int fields = channel ? S_CHANNEL_FIELDS : S_TOPIC_FIELDS;
    return sizeof(s_series_t) + self->slots * (size_t) fields * sizeof(uint32_t) + S_ENTRY_OVERHEAD;
}

static void s_key(char *key, size_t size, const char *node, const char *topic, const char *channel)
{
    snprintf(key, size, "%s\n%s:%s", node, topic, channel);
}

static void s_remove(lookupd_history_t *self, s_series_t *series)
{
    char key[512];
    s_key(key, sizeof key, series->node, series->topic, series->channel);
    self->bytes -= series->bytes;
    zlistx_delete(self->by_update, series->handle);
    zhashx_delete(self->series, key);  // frees it
}

// Makes room for bytes more; false if only fresh series are in the way.
static bool s_make_room(lookupd_history_t *self, size_t bytes, int64_t bucket)
{
    while (self->bytes + bytes > self->max_bytes) {
        s_series_t *oldest = zlistx_first(self->by_update);
        if (!oldest || oldest->newest >= bucket - 1)
            return false;
        s_remove(self, oldest);
        self->evicted++;
    }
    return true;
}

static s_series_t *s_series_new(lookupd_history_t *self, const char *key, const char *node,
                                const char *topic, const char *channel, int64_t bucket)
{
    bool is_channel = channel[0] != '\0';
    size_t bytes = lookupd_history_series_bytes(self, is_channel) + strlen(key) + 1;
    if (!s_make_room(self, bytes, bucket)) {
        self->refused++;
        return NULL;
    }
    s_series_t *series = calloc(1, sizeof *series);
    size_t node_size = strlen(node) + 1, topic_size = strlen(topic) + 1;
    if (series) {
        series->fields = is_channel ? S_CHANNEL_FIELDS : S_TOPIC_FIELDS;
        series->names = malloc(node_size + topic_size + strlen(channel) + 1);
        series->slots = malloc(self->slots * (size_t) series->fields * sizeof(uint32_t));
    }
    if (!series || !series->names || !series->slots) {
        s_series_destroy(&series);
        return NULL;
    }
    memcpy(series->names, node, node_size);
    memcpy(series->names + node_size, topic, topic_size);
    strcpy(series->names + node_size + topic_size, channel);
    series->node = series->names;
    series->topic = series->names + node_size;
    series->channel = series->names + node_size + topic_size;
    for (size_t slot = 0; slot < self->slots; slot++)
        series->slots[slot * (size_t) series->fields] = S_MISSING;
    series->newest = bucket;
    series->last_poll_ms = -1;
    series->bytes = bytes;
    series->handle = zlistx_add_end(self->by_update, series);
    if (!series->handle || zhashx_insert(self->series, key, series) != 0) {
        if (series->handle)
            zlistx_delete(self->by_update, series->handle);
        s_series_destroy(&series);
        return NULL;
    }
    self->bytes += bytes;
    return series;
}

static uint32_t s_clamp(uint64_t value)
{
    return value > S_SATURATED ? S_SATURATED : (uint32_t) value;
}

static uint32_t s_add(uint32_t a, uint64_t b)
{
    return s_clamp((uint64_t) a + b);
}

static uint32_t s_max(uint32_t a, uint64_t b)
{
    return a >= b ? a : s_clamp(b);
}

// The increase of a counter since the last poll; a smaller value means the
// broker restarted and counts from zero again.
static uint64_t s_increase(uint64_t now, uint64_t before)
{
    return now >= before ? now - before : now;
}

static void s_merge(s_series_t *series, uint32_t *slot, const lookupd_history_sample_t *sample,
                    int64_t now_ms)
{
    bool fresh = slot[0] == S_MISSING;
    uint64_t counters[3] = {sample->message_count, sample->requeue_count, sample->timeout_count};
    uint64_t increases[3] = {0, 0, 0};
    uint64_t covered = 0;
    if (series->last_poll_ms >= 0 && now_ms > series->last_poll_ms) {
        for (int i = 0; i < 3; i++)
            increases[i] = s_increase(counters[i], series->last[i]);
        covered = (uint64_t) (now_ms - series->last_poll_ms);
    }
    memcpy(series->last, counters, sizeof counters);
    series->last_poll_ms = now_ms;
    if (fresh)
        memset(slot, 0, (size_t) series->fields * sizeof *slot);
    slot[F_DEPTH] = s_max(slot[F_DEPTH], sample->depth);
    slot[F_BACKEND] = s_max(slot[F_BACKEND], sample->backend_depth);
    if (series->fields == S_TOPIC_FIELDS) {
        slot[2] = s_add(slot[2], increases[0]);
        slot[3] = s_add(slot[3], covered);
        return;
    }
    slot[F_IN_FLIGHT] = s_max(slot[F_IN_FLIGHT], sample->in_flight);
    slot[F_DEFERRED] = s_max(slot[F_DEFERRED], sample->deferred);
    slot[F_CLIENTS] = s_max(slot[F_CLIENTS], sample->clients);
    slot[F_MESSAGES] = s_add(slot[F_MESSAGES], increases[0]);
    slot[F_REQUEUED] = s_add(slot[F_REQUEUED], increases[1]);
    slot[F_TIMED_OUT] = s_add(slot[F_TIMED_OUT], increases[2]);
    slot[F_COVERED] = s_add(slot[F_COVERED], covered);
}

int lookupd_history_record(lookupd_history_t *self, const char *node, const char *topic,
                           const char *channel, const lookupd_history_sample_t *sample,
                           int64_t now_ms)
{
    channel = channel ? channel : "";
    int64_t bucket = now_ms / self->step_ms;
    char key[512];
    s_key(key, sizeof key, node, topic, channel);
    s_series_t *series = zhashx_lookup(self->series, key);
    if (!series)
        series = s_series_new(self, key, node, topic, channel, bucket);
    if (!series)
        return -1;
    if (bucket <= series->newest - (int64_t) self->slots)
        return 0;  // older than the window (the clock went back)
    // Clear the slots we pass over: at most one whole ring.
    for (int64_t passed = series->newest + 1;
         passed <= bucket && passed <= series->newest + (int64_t) self->slots; passed++)
        series->slots[(size_t) (passed % (int64_t) self->slots) * (size_t) series->fields] =
            S_MISSING;
    if (bucket > series->newest)
        series->newest = bucket;
    uint32_t *slot =
        series->slots + (size_t) (bucket % (int64_t) self->slots) * (size_t) series->fields;
    s_merge(series, slot, sample, now_ms);
    zlistx_move_end(self->by_update, series->handle);
    return 0;
}

void lookupd_history_expire(lookupd_history_t *self, int64_t now_ms)
{
    int64_t bucket = now_ms / self->step_ms;
    s_series_t *oldest;
    while ((oldest = zlistx_first(self->by_update))
           && oldest->newest <= bucket - (int64_t) self->slots) {
        s_remove(self, oldest);
        self->expired++;
    }
}

// Per second, two decimals; null when the bucket covers no time.
static json_t *s_rate(uint32_t increase, uint32_t covered_ms)
{
    if (covered_ms == 0)
        return json_null();
    double rate = (double) increase * 1000.0 / covered_ms;
    return json_real((double) (int64_t) (rate * 100.0 + 0.5) / 100.0);
}

static json_t *s_point(const lookupd_history_t *self, const s_series_t *series, int64_t bucket,
                       const uint32_t *slot)
{
    json_t *point = json_array();
    json_array_append_new(point, json_integer(bucket * self->step_ms));
    json_array_append_new(point, json_integer(slot[F_DEPTH]));
    json_array_append_new(point, json_integer(slot[F_BACKEND]));
    if (series->fields == S_TOPIC_FIELDS) {
        json_array_append_new(point, s_rate(slot[2], slot[3]));
        return point;
    }
    for (int field = F_IN_FLIGHT; field <= F_CLIENTS; field++)
        json_array_append_new(point, json_integer(slot[field]));
    for (int field = F_MESSAGES; field <= F_TIMED_OUT; field++)
        json_array_append_new(point, s_rate(slot[field], slot[F_COVERED]));
    return point;
}

static json_t *s_series_json(const lookupd_history_t *self, const s_series_t *series)
{
    static const char *const topic_fields[] = {"t", "depth", "backend_depth", "message_rate"};
    static const char *const channel_fields[] = {
        "t",       "depth",        "backend_depth", "in_flight",   "deferred",
        "clients", "message_rate", "requeue_rate",  "timeout_rate"};
    bool is_topic = series->fields == S_TOPIC_FIELDS;
    json_t *fields = json_array(), *points = json_array();
    size_t count = is_topic ? 4 : 9;
    for (size_t i = 0; i < count; i++)
        json_array_append_new(fields, json_string(is_topic ? topic_fields[i] : channel_fields[i]));
    for (int64_t bucket = series->newest - (int64_t) self->slots + 1; bucket <= series->newest;
         bucket++) {
        if (bucket < 0)
            continue;
        const uint32_t *slot =
            series->slots + (size_t) (bucket % (int64_t) self->slots) * (size_t) series->fields;
        if (slot[0] != S_MISSING)
            json_array_append_new(points, s_point(self, series, bucket, slot));
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "node", series->node, "topic", series->topic,
                     "channel", series->channel, "fields", fields, "points", points);
}

static int s_compare_series(const void *a, const void *b)
{
    const s_series_t *left = *(s_series_t *const *) a, *right = *(s_series_t *const *) b;
    int order = strcmp(left->channel, right->channel);
    return order ? order : strcmp(left->node, right->node);
}

json_t *lookupd_history_json(lookupd_history_t *self, const char *topic, const char *channel)
{
    size_t count = 0;
    s_series_t **matches = malloc((zhashx_size(self->series) + 1) * sizeof *matches);
    json_t *list = json_array();
    if (!matches || !list) {
        free(matches);
        json_decref(list);
        return NULL;
    }
    for (s_series_t *series = zhashx_first(self->series); series;
         series = zhashx_next(self->series))
        if (streq(series->topic, topic) && (!channel || streq(series->channel, channel)))
            matches[count++] = series;
    qsort(matches, count, sizeof *matches, s_compare_series);
    for (size_t i = 0; i < count; i++)
        json_array_append_new(list, s_series_json(self, matches[i]));
    free(matches);
    return json_pack("{s:I, s:I, s:o}", "step_ms", (json_int_t) self->step_ms, "window_ms",
                     (json_int_t) self->window_ms, "series", list);
}

void lookupd_history_stats(lookupd_history_t *self, lookupd_history_stats_t *stats)
{
    stats->series = zhashx_size(self->series);
    stats->bytes = self->bytes;
    stats->max_bytes = self->max_bytes;
    stats->refused = self->refused;
    stats->evicted = self->evicted;
    stats->expired = self->expired;
}

// ---- self-test --------------------------------------------------------------

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lookupd_history_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

// The value of field index of point number point of series number index.
static double s_test_value(json_t *doc, size_t index, size_t point, size_t field)
{
    json_t *value = json_array_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(doc, "series"), index), "points"),
            point),
        field);
    return json_is_null(value) ? -1.0 : json_number_value(value);
}

static size_t s_test_points(json_t *doc, size_t index)
{
    return json_array_size(
        json_object_get(json_array_get(json_object_get(doc, "series"), index), "points"));
}

int lookupd_history_test(void)
{
    json_t *doc = NULL;
    // 1 s buckets over 10 s: 11 slots.
    lookupd_history_t *history = lookupd_history_new(1000, 10000, 1 << 20);
    S_CHECK(history);
    int64_t t0 = 1700000000000;
    lookupd_history_sample_t sample = {.depth = 5, .message_count = 100, .requeue_count = 1};
    // Two polls in one bucket: the larger depth stays, counters add up.
    S_CHECK(lookupd_history_record(history, "b1:4151", "orders", "billing", &sample, t0) == 0);
    sample.depth = 9;
    sample.message_count = 150;
    S_CHECK(lookupd_history_record(history, "b1:4151", "orders", "billing", &sample, t0 + 500)
            == 0);
    sample.depth = 2;
    sample.message_count = 250;
    S_CHECK(lookupd_history_record(history, "b1:4151", "orders", "billing", &sample, t0 + 1000)
            == 0);
    // A missed bucket is a gap; a restarted broker's counter counts from 0.
    sample.message_count = 30;
    S_CHECK(lookupd_history_record(history, "b1:4151", "orders", "billing", &sample, t0 + 3000)
            == 0);
    S_CHECK(lookupd_history_record(history, "b2:4151", "orders", "", &sample, t0) == 0);
    S_CHECK(lookupd_history_record(history, "b1:4151", "other", "", &sample, t0) == 0);
    doc = lookupd_history_json(history, "orders", "billing");
    S_CHECK(doc && json_array_size(json_object_get(doc, "series")) == 1);
    S_CHECK(s_test_points(doc, 0) == 3);
    S_CHECK(s_test_value(doc, 0, 0, 1) == 9);      // depth: the larger of 5 and 9
    S_CHECK(s_test_value(doc, 0, 0, 6) == 100.0);  // 50 messages in 500 ms
    S_CHECK(s_test_value(doc, 0, 1, 6) == 200.0);  // 100 in 500 ms
    S_CHECK(s_test_value(doc, 0, 2, 6) == 15.0);   // restarted: 30 over 2 s
    S_CHECK(s_test_value(doc, 0, 2, 0) == (double) (t0 + 3000));
    json_decref(doc);
    // All of a topic: its own series and its channels', every node.
    doc = lookupd_history_json(history, "orders", NULL);
    S_CHECK(doc && json_array_size(json_object_get(doc, "series")) == 2);
    S_CHECK(s_test_value(doc, 0, 0, 3) == -1.0);  // a topic's first poll has no rate yet
    json_decref(doc);
    doc = NULL;

    // A sample a whole window later leaves only itself; expiry drops the rest.
    S_CHECK(lookupd_history_record(history, "b1:4151", "orders", "billing", &sample, t0 + 20000)
            == 0);
    doc = lookupd_history_json(history, "orders", "billing");
    S_CHECK(doc && s_test_points(doc, 0) == 1);
    json_decref(doc);
    doc = NULL;
    lookupd_history_expire(history, t0 + 20000);
    lookupd_history_stats_t stats;
    lookupd_history_stats(history, &stats);
    S_CHECK(stats.series == 1 && stats.expired == 2);
    lookupd_history_destroy(&history);

    // The bound: room for two channel series; a third is refused while
    // both are fresh, and evicts the stale one once one is.
    history = lookupd_history_new(1000, 10000, 0);
    S_CHECK(history);
    size_t one = lookupd_history_series_bytes(history, true) + 32;
    lookupd_history_destroy(&history);
    history = lookupd_history_new(1000, 10000, 2 * one);
    S_CHECK(history);
    S_CHECK(lookupd_history_record(history, "n", "t", "a", &sample, t0) == 0);
    S_CHECK(lookupd_history_record(history, "n", "t", "b", &sample, t0) == 0);
    S_CHECK(lookupd_history_record(history, "n", "t", "c", &sample, t0 + 1000) == -1);
    S_CHECK(lookupd_history_record(history, "n", "t", "b", &sample, t0 + 2000) == 0);
    S_CHECK(lookupd_history_record(history, "n", "t", "c", &sample, t0 + 3000) == 0);
    lookupd_history_stats(history, &stats);
    S_CHECK(stats.series == 2 && stats.refused == 1 && stats.evicted == 1);
    S_CHECK(stats.bytes <= stats.max_bytes);
    doc = lookupd_history_json(history, "t", "a");
    S_CHECK(doc && json_array_size(json_object_get(doc, "series")) == 0);
    json_decref(doc);
    lookupd_history_destroy(&history);
    S_CHECK(!lookupd_history_new(0, 1000, 1) && errno == EINVAL);
    return 0;
failed:
    json_decref(doc);
    lookupd_history_destroy(&history);
    return -1;
}
