/*  lookupd_registry - which brokers (producers) hold which topics and channels
    SPDX-License-Identifier: MIT

    Two tables: producers (id -> producer, owned) and registrations (key ->
    registration, owned), where the key is "topic" or "topic:channel" (':' is
    not a valid name character). A registration holds borrowed pointers to
    its producers; removing a producer walks every registration, which is
    fine for the hundreds of topics a lookupd serves. JSON is written with
    open_memstream; strings that came from peers are escaped.
*/
#include "lookupd_registry.h"
#include "nsq_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_names.h"

typedef struct {
    char *id;                 // ZeroMQ identity, hex
    char *remote_address;     // peer address of its connection
    char *hostname;           // reported by the broker
    char *broadcast_address;  // what consumers dial
    char *version;            // broker version
    uint32_t http_port;       // broker HTTP port
    uint32_t zmq_port;        // broker ZeroMQ port
    uint32_t tcp_port;        // NSQ TCP port, 0 if none
    uint32_t https_port;      // broker HTTPS port, 0 if none
    int64_t last_update;      // monotonic ms of its last command
    zhashx_t *tombstones;     // topic -> int64_t expiry (owned), while tombstoned
} s_producer_t;

typedef struct {
    char *topic;          // topic name
    char *channel;        // channel name, NULL for a topic registration
    zhashx_t *producers;  // id -> s_producer_t, borrowed
} s_registration_t;

struct _lookupd_registry_t {
    int64_t inactive_timeout_ms;    // producers silent this long are dropped
    int64_t tombstone_lifetime_ms;  // how long a tombstone hides a producer
    zhashx_t *producers;            // id -> s_producer_t, owned
    zhashx_t *registrations;        // key -> s_registration_t, owned
};

// ---- producers and registrations --------------------------------------------

static void s_producer_destroy(s_producer_t **self_p)
{
    s_producer_t *self = *self_p;
    if (!self)
        return;
    free(self->id);
    free(self->remote_address);
    free(self->hostname);
    free(self->broadcast_address);
    free(self->version);
    zhashx_destroy(&self->tombstones);
    free(self);
    *self_p = NULL;
}

static void s_registration_destroy(s_registration_t **self_p)
{
    s_registration_t *self = *self_p;
    if (!self)
        return;
    free(self->topic);
    free(self->channel);
    zhashx_destroy(&self->producers);
    free(self);
    *self_p = NULL;
}

static char *s_strdup(const char *text)
{
    return strdup(text ? text : "");
}

static bool s_channel_given(const char *channel)
{
    return channel && channel[0];
}

static void s_key(char *key, size_t size, const char *topic, const char *channel)
{
    if (s_channel_given(channel))
        snprintf(key, size, "%s:%s", topic, channel);
    else
        snprintf(key, size, "%s", topic);
}

// Returns the registration, creating it when create is true; NULL if absent
// or out of memory. Names must be valid.
static s_registration_t *s_registration(lookupd_registry_t *self, const char *topic,
                                        const char *channel, bool create)
{
    char key[2 * NSQ_NAME_MAX + 2];
    s_key(key, sizeof key, topic, channel);
    s_registration_t *reg = zhashx_lookup(self->registrations, key);
    if (reg || !create)
        return reg;
    reg = calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    reg->topic = strdup(topic);
    reg->channel = s_channel_given(channel) ? strdup(channel) : NULL;
    reg->producers = zhashx_new();
    if (!reg->topic || (s_channel_given(channel) && !reg->channel) || !reg->producers) {
        s_registration_destroy(&reg);
        return NULL;
    }
    zhashx_insert(self->registrations, key, reg);
    return reg;
}

static bool s_names_valid(const char *topic, const char *channel)
{
    return nsq_name_is_valid(topic) && (!s_channel_given(channel) || nsq_name_is_valid(channel));
}

// Removes id from reg; deletes reg if it is ephemeral and left empty.
static void s_registration_drop(lookupd_registry_t *self, s_registration_t *reg, const char *id)
{
    zhashx_delete(reg->producers, id);
    const char *name = reg->channel ? reg->channel : reg->topic;
    if (zhashx_size(reg->producers) == 0 && nsq_name_is_ephemeral(name)) {
        char key[2 * NSQ_NAME_MAX + 2];
        s_key(key, sizeof key, reg->topic, reg->channel);
        zhashx_delete(self->registrations, key);
    }
}

// Registrations matching topic (and channel, or all of the topic's channels
// when channel is NULL, or only channels when channels_only). Caller
// destroys the list; items are borrowed.
static zlistx_t *s_matching(lookupd_registry_t *self, const char *topic, const char *channel,
                            bool channels_only)
{
    zlistx_t *list = zlistx_new();
    if (!list)
        return NULL;
    for (s_registration_t *reg = zhashx_first(self->registrations); reg;
         reg = zhashx_next(self->registrations)) {
        if (strcmp(reg->topic, topic) != 0)
            continue;
        if (s_channel_given(channel) && !(reg->channel && strcmp(reg->channel, channel) == 0))
            continue;
        if (channels_only && !reg->channel)
            continue;
        zlistx_add_end(list, reg);
    }
    return list;
}

// ---- public API -----------------------------------------------------------

static void s_producer_destructor(void **item)
{
    s_producer_destroy((s_producer_t **) item);
}

static void s_registration_destructor(void **item)
{
    s_registration_destroy((s_registration_t **) item);
}

lookupd_registry_t *lookupd_registry_new(int64_t inactive_timeout_ms, int64_t tombstone_lifetime_ms)
{
    lookupd_registry_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->inactive_timeout_ms = inactive_timeout_ms;
    self->tombstone_lifetime_ms = tombstone_lifetime_ms;
    self->producers = zhashx_new();
    self->registrations = zhashx_new();
    if (!self->producers || !self->registrations) {
        lookupd_registry_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->producers, s_producer_destructor);
    zhashx_set_destructor(self->registrations, s_registration_destructor);
    return self;
}

void lookupd_registry_destroy(lookupd_registry_t **self_p)
{
    lookupd_registry_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zhashx_destroy(&self->registrations);  // first: they borrow producers
    zhashx_destroy(&self->producers);
    free(self);
    *self_p = NULL;
}

static void s_producer_fill(s_producer_t *producer, const lookupd_producer_info_t *info)
{
    free(producer->remote_address);
    free(producer->hostname);
    free(producer->broadcast_address);
    free(producer->version);
    producer->remote_address = s_strdup(info->remote_address);
    producer->hostname = s_strdup(info->hostname);
    producer->broadcast_address = s_strdup(info->broadcast_address);
    producer->version = s_strdup(info->version);
    producer->http_port = info->http_port;
    producer->zmq_port = info->zmq_port;
    producer->tcp_port = info->tcp_port;
    producer->https_port = info->https_port;
}

int lookupd_registry_identify(lookupd_registry_t *self, const char *id,
                              const lookupd_producer_info_t *info, int64_t now)
{
    if (!info->broadcast_address || !info->broadcast_address[0] || info->http_port == 0
        || info->http_port > 65535 || info->zmq_port == 0 || info->zmq_port > 65535
        || info->tcp_port > 65535 || info->https_port > 65535) {
        errno = EINVAL;
        return -1;
    }
    s_producer_t *producer = zhashx_lookup(self->producers, id);
    if (!producer) {
        producer = calloc(1, sizeof *producer);
        if (!producer || !(producer->id = strdup(id)) || !(producer->tombstones = zhashx_new())) {
            s_producer_destroy(&producer);
            errno = ENOMEM;
            return -1;
        }
        zhashx_set_destructor(producer->tombstones, (zhashx_destructor_fn *) zstr_free);
        zhashx_insert(self->producers, id, producer);
    }
    s_producer_fill(producer, info);
    producer->last_update = now;
    if (!producer->broadcast_address || !producer->hostname || !producer->version
        || !producer->remote_address) {
        lookupd_registry_remove_producer(self, id);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

bool lookupd_registry_known(lookupd_registry_t *self, const char *id)
{
    return zhashx_lookup(self->producers, id) != NULL;
}

void lookupd_registry_touch(lookupd_registry_t *self, const char *id, int64_t now)
{
    s_producer_t *producer = zhashx_lookup(self->producers, id);
    if (producer)
        producer->last_update = now;
}

int lookupd_registry_register(lookupd_registry_t *self, const char *id, const char *topic,
                              const char *channel)
{
    s_producer_t *producer = zhashx_lookup(self->producers, id);
    if (!s_names_valid(topic, channel) || !producer) {
        errno = producer ? EINVAL : ENOENT;
        return -1;
    }
    s_registration_t *topic_reg = s_registration(self, topic, NULL, true);
    s_registration_t *reg =
        s_channel_given(channel) ? s_registration(self, topic, channel, true) : topic_reg;
    if (!topic_reg || !reg) {
        errno = ENOMEM;
        return -1;
    }
    zhashx_update(topic_reg->producers, id, producer);
    zhashx_update(reg->producers, id, producer);
    return 0;
}

int lookupd_registry_unregister(lookupd_registry_t *self, const char *id, const char *topic,
                                const char *channel)
{
    if (!s_names_valid(topic, channel) || !zhashx_lookup(self->producers, id)) {
        errno = s_names_valid(topic, channel) ? ENOENT : EINVAL;
        return -1;
    }
    zlistx_t *matches = s_matching(self, topic, channel, false);
    if (!matches)
        return -1;
    for (s_registration_t *reg = zlistx_first(matches); reg; reg = zlistx_next(matches))
        s_registration_drop(self, reg, id);
    zlistx_destroy(&matches);
    return 0;
}

void lookupd_registry_remove_producer(lookupd_registry_t *self, const char *id)
{
    if (!zhashx_lookup(self->producers, id))
        return;
    zlistx_t *all = zlistx_new();
    for (s_registration_t *reg = zhashx_first(self->registrations); all && reg;
         reg = zhashx_next(self->registrations))
        zlistx_add_end(all, reg);
    for (s_registration_t *reg = all ? zlistx_first(all) : NULL; reg; reg = zlistx_next(all))
        s_registration_drop(self, reg, id);
    zlistx_destroy(&all);
    zhashx_delete(self->producers, id);
}

int lookupd_registry_create(lookupd_registry_t *self, const char *topic, const char *channel)
{
    if (!s_names_valid(topic, channel)) {
        errno = EINVAL;
        return -1;
    }
    if (!s_registration(self, topic, NULL, true))
        return -1;
    if (s_channel_given(channel) && !s_registration(self, topic, channel, true))
        return -1;
    return 0;
}

int lookupd_registry_delete(lookupd_registry_t *self, const char *topic, const char *channel)
{
    if (!s_names_valid(topic, channel) || !s_registration(self, topic, channel, false)) {
        errno = ENOENT;
        return -1;
    }
    zlistx_t *matches = s_matching(self, topic, channel, false);
    if (!matches)
        return -1;
    for (s_registration_t *reg = zlistx_first(matches); reg; reg = zlistx_next(matches)) {
        char key[2 * NSQ_NAME_MAX + 2];
        s_key(key, sizeof key, reg->topic, reg->channel);
        zhashx_delete(self->registrations, key);
    }
    zlistx_destroy(&matches);
    return 0;
}

int lookupd_registry_tombstone(lookupd_registry_t *self, const char *topic, const char *node,
                               int64_t now)
{
    s_registration_t *reg =
        nsq_name_is_valid(topic) ? s_registration(self, topic, NULL, false) : NULL;
    for (s_producer_t *producer = reg ? zhashx_first(reg->producers) : NULL; producer;
         producer = zhashx_next(reg->producers)) {
        char address[320];
        snprintf(address, sizeof address, "%s:%u", producer->broadcast_address,
                 producer->http_port);
        if (strcmp(address, node) != 0)
            continue;
        char expiry[24];
        snprintf(expiry, sizeof expiry, "%lld", (long long) (now + self->tombstone_lifetime_ms));
        zhashx_update(producer->tombstones, topic, strdup(expiry));
        return 0;
    }
    errno = ENOENT;
    return -1;
}

// Deletes the tombstones of producer that expired by now.
static void s_expire_tombstones(s_producer_t *producer, int64_t now)
{
    zlistx_t *expired = zlistx_new();
    for (char *expiry = zhashx_first(producer->tombstones); expired && expiry;
         expiry = zhashx_next(producer->tombstones))
        if (atoll(expiry) <= now)
            zlistx_add_end(expired, (void *) zhashx_cursor(producer->tombstones));
    for (char *topic = expired ? zlistx_first(expired) : NULL; topic; topic = zlistx_next(expired))
        zhashx_delete(producer->tombstones, topic);
    zlistx_destroy(&expired);
}

size_t lookupd_registry_expire(lookupd_registry_t *self, int64_t now)
{
    zlistx_t *inactive = zlistx_new();
    if (!inactive)
        return 0;
    zlistx_set_duplicator(inactive, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor(inactive, (zlistx_destructor_fn *) zstr_free);
    for (s_producer_t *producer = zhashx_first(self->producers); producer;
         producer = zhashx_next(self->producers)) {
        if (now - producer->last_update > self->inactive_timeout_ms)
            zlistx_add_end(inactive, producer->id);
        else
            s_expire_tombstones(producer, now);
    }
    size_t count = zlistx_size(inactive);
    for (char *id = zlistx_first(inactive); id; id = zlistx_next(inactive))
        lookupd_registry_remove_producer(self, id);
    zlistx_destroy(&inactive);
    return count;
}

size_t lookupd_registry_producer_count(lookupd_registry_t *self)
{
    return zhashx_size(self->producers);
}

bool lookupd_registry_has_topic(lookupd_registry_t *self, const char *topic)
{
    return nsq_name_is_valid(topic) && s_registration(self, topic, NULL, false) != NULL;
}

static int s_compare(const void *a, const void *b)
{
    return strcmp((const char *) a, (const char *) b);
}

static int s_compare_pointers(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

// Sorts a list of strings. Not with zlistx_sort: in czmq 4.2.1 its comb sort
// can stop with the gap at 0 right after a swap, leaving the list unsorted
// (nearly always beyond ~150 items). The items keep their owner: they are
// detached and added back in order.
static void s_sort(zlistx_t *list)
{
    size_t count = zlistx_size(list);
    char **items = count > 1 ? malloc(count * sizeof *items) : NULL;
    if (!items)
        return;
    for (size_t i = 0; i < count; i++)
        items[i] = zlistx_detach(list, NULL);
    qsort(items, count, sizeof *items, s_compare_pointers);
    for (size_t i = 0; i < count; i++)
        zlistx_add_end(list, items[i]);
    free(items);
}

zlistx_t *lookupd_registry_channels(lookupd_registry_t *self, const char *topic)
{
    zlistx_t *names = zlistx_new();
    zlistx_t *matches = names ? s_matching(self, topic, NULL, true) : NULL;
    if (!matches) {
        zlistx_destroy(&names);
        return NULL;
    }
    zlistx_set_destructor(names, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_comparator(names, s_compare);
    for (s_registration_t *reg = zlistx_first(matches); reg; reg = zlistx_next(matches))
        zlistx_add_end(names, strdup(reg->channel));
    s_sort(names);
    zlistx_destroy(&matches);
    return names;
}

// ---- JSON -------------------------------------------------------------------

// Writes a JSON array of the strings in list.
static void s_json_list(FILE *out, zlistx_t *list)
{
    fputc('[', out);
    const char *separator = "";
    for (const char *item = list ? zlistx_first(list) : NULL; item; item = zlistx_next(list)) {
        fputs(separator, out);
        nsq_json_write_string(out, item);
        separator = ",";
    }
    fputc(']', out);
}

// Writes a producer's common fields, without the closing brace.
static void s_json_producer(FILE *out, const s_producer_t *producer)
{
    fputs("{\"remote_address\":", out);
    nsq_json_write_string(out, producer->remote_address);
    fputs(",\"hostname\":", out);
    nsq_json_write_string(out, producer->hostname);
    fputs(",\"broadcast_address\":", out);
    nsq_json_write_string(out, producer->broadcast_address);
    fprintf(out, ",\"tcp_port\":%u,\"http_port\":%u,\"zmq_port\":%u,\"https_port\":%u,\"version\":",
            producer->tcp_port, producer->http_port, producer->zmq_port, producer->https_port);
    nsq_json_write_string(out, producer->version);
}

static bool s_active(lookupd_registry_t *self, const s_producer_t *producer, int64_t now)
{
    return now - producer->last_update <= self->inactive_timeout_ms;
}

static bool s_tombstoned(const s_producer_t *producer, const char *topic, int64_t now)
{
    const char *expiry = zhashx_lookup(producer->tombstones, topic);
    return expiry && atoll(expiry) > now;
}

typedef struct {
    FILE *out;    // the memory stream
    char *text;   // its buffer, once closed
    size_t size;  // its length
} s_json_t;

static bool s_json_open(s_json_t *json)
{
    json->text = NULL;
    json->out = open_memstream(&json->text, &json->size);
    return json->out != NULL;
}

static char *s_json_close(s_json_t *json)
{
    bool failed = ferror(json->out);
    fclose(json->out);
    if (failed) {
        free(json->text);
        return NULL;
    }
    return json->text;
}

char *lookupd_registry_lookup_json(lookupd_registry_t *self, const char *topic, int64_t now)
{
    s_registration_t *reg =
        nsq_name_is_valid(topic) ? s_registration(self, topic, NULL, false) : NULL;
    s_json_t json;
    if (!reg || !s_json_open(&json))
        return NULL;
    zlistx_t *channels = lookupd_registry_channels(self, topic);
    fputs("{\"channels\":", json.out);
    s_json_list(json.out, channels);
    zlistx_destroy(&channels);
    fputs(",\"producers\":[", json.out);
    const char *separator = "";
    for (s_producer_t *producer = zhashx_first(reg->producers); producer;
         producer = zhashx_next(reg->producers)) {
        if (!s_active(self, producer, now) || s_tombstoned(producer, topic, now))
            continue;
        fputs(separator, json.out);
        s_json_producer(json.out, producer);
        fputc('}', json.out);
        separator = ",";
    }
    fputs("]}", json.out);
    return s_json_close(&json);
}

char *lookupd_registry_topics_json(lookupd_registry_t *self)
{
    s_json_t json;
    zlistx_t *topics = zlistx_new();
    if (!topics || !s_json_open(&json)) {
        zlistx_destroy(&topics);
        return NULL;
    }
    zlistx_set_comparator(topics, s_compare);
    for (s_registration_t *reg = zhashx_first(self->registrations); reg;
         reg = zhashx_next(self->registrations))
        if (!reg->channel)
            zlistx_add_end(topics, reg->topic);
    s_sort(topics);
    fputs("{\"topics\":", json.out);
    s_json_list(json.out, topics);
    fputc('}', json.out);
    zlistx_destroy(&topics);
    return s_json_close(&json);
}

char *lookupd_registry_channels_json(lookupd_registry_t *self, const char *topic)
{
    s_json_t json;
    if (!s_json_open(&json))
        return NULL;
    zlistx_t *channels = lookupd_registry_channels(self, topic);
    fputs("{\"channels\":", json.out);
    s_json_list(json.out, channels);
    fputc('}', json.out);
    zlistx_destroy(&channels);
    return s_json_close(&json);
}

// Writes producer's "tombstones" and "topics" arrays (parallel, as NSQ).
static void s_json_node_topics(lookupd_registry_t *self, FILE *out, s_producer_t *producer,
                               int64_t now)
{
    zlistx_t *topics = zlistx_new();
    if (topics) {
        zlistx_set_comparator(topics, s_compare);
        for (s_registration_t *reg = zhashx_first(self->registrations); reg;
             reg = zhashx_next(self->registrations))
            if (!reg->channel && zhashx_lookup(reg->producers, producer->id))
                zlistx_add_end(topics, reg->topic);
        s_sort(topics);
    }
    fputs(",\"tombstones\":[", out);
    const char *separator = "";
    for (const char *topic = topics ? zlistx_first(topics) : NULL; topic;
         topic = zlistx_next(topics)) {
        fprintf(out, "%s%s", separator, s_tombstoned(producer, topic, now) ? "true" : "false");
        separator = ",";
    }
    fputs("],\"topics\":", out);
    s_json_list(out, topics);
    zlistx_destroy(&topics);
}

char *lookupd_registry_nodes_json(lookupd_registry_t *self, int64_t now)
{
    s_json_t json;
    if (!s_json_open(&json))
        return NULL;
    fputs("{\"producers\":[", json.out);
    const char *separator = "";
    for (s_producer_t *producer = zhashx_first(self->producers); producer;
         producer = zhashx_next(self->producers)) {
        if (!s_active(self, producer, now))
            continue;
        fputs(separator, json.out);
        s_json_producer(json.out, producer);
        s_json_node_topics(self, json.out, producer, now);
        fputc('}', json.out);
        separator = ",";
    }
    fputs("]}", json.out);
    return s_json_close(&json);
}
