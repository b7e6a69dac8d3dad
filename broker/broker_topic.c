/*  broker_topic - a named stream: copies each published message to every
    channel, or holds it while the topic has no channel or is paused
    SPDX-License-Identifier: MIT
*/
#include "broker_topic.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_disk.h"
#include "nsq_log.h"
#include "nsq_names.h"

struct _broker_topic_t {
    char name[65];                  // topic name, possibly with #ephemeral
    bool ephemeral;                 // memory only, deleted with its last channel
    bool paused;                    // holds messages instead of copying them on
    bool lookup_hold;               // held until lookupd named its channels (not saved)
    const broker_config_t *config;  // borrowed broker settings
    bool deleted;                   // destroy removes the disk files too
    broker_queue_t *held;           // messages waiting for a channel or unpause
    nsq_diskqueue_t *disk;          // spill-over of held, NULL when memory only
    broker_channel_t **channels;    // owned channels
    size_t channel_count;           // entries used in channels
    uint64_t message_count;         // messages published
    uint64_t message_bytes;         // body bytes published
    uint64_t reserved_count;        // memory promised to admitted publishes (broker_topic_reserve)
    uint64_t reserved_bytes;        //   and their body bytes
    size_t pump_slot;               // its place in the server's broker_pump set + 1, 0 = none
};

// The disk queue can be read again (async): the held messages move on.
static void s_disk_wake(nsq_diskqueue_t *disk, void *arg)
{
    (void) disk;
    broker_topic_pump(arg, zclock_mono());
}

broker_topic_t *broker_topic_new(const char *name, const broker_config_t *config)
{
    broker_topic_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->name, sizeof self->name, "%s", name);
    self->ephemeral = nsq_name_is_ephemeral(name);
    self->config = config;
    self->held = broker_queue_new();
    bool on_disk = config->data_path[0] && !self->ephemeral;
    if (on_disk && self->held)
        self->disk = broker_disk_open(config, name, NULL, s_disk_wake, self);
    if (!self->held || (on_disk && !self->disk)) {
        int saved = errno;
        broker_queue_destroy(&self->held);
        free(self);
        errno = saved;
        return NULL;
    }
    return self;
}

void broker_topic_delete(broker_topic_t **self_p)
{
    if (self_p && *self_p)
        (*self_p)->deleted = true;
    broker_topic_destroy(self_p);
}

void broker_topic_destroy(broker_topic_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_topic_t *self = *self_p;
    for (size_t i = 0; i < self->channel_count; i++) {
        if (self->deleted)
            broker_channel_delete(&self->channels[i]);
        else
            broker_channel_destroy(&self->channels[i]);
    }
    if (self->deleted)
        nsq_diskqueue_delete(&self->disk);
    nsq_diskqueue_destroy(&self->disk);
    free(self->channels);
    broker_queue_destroy(&self->held);
    free(self);
    *self_p = NULL;
}

static bool s_delivers_to_channels(const broker_topic_t *self)
{
    return self->channel_count > 0 && !self->paused && !self->lookup_hold;
}

// True if the topic holds nothing, in memory or on disk.
static bool s_holds_nothing(const broker_topic_t *self)
{
    return broker_queue_size(self->held) == 0
           && (!self->disk || !broker_disk_holds_some(self->disk));
}

// True if count more messages of bytes body bytes fit in the topic's
// memory, by --mem-queue-size and by --mem-queue-bytes.
static bool s_memory_has_room(const broker_topic_t *self, size_t count, uint64_t bytes)
{
    return broker_queue_size(self->held) + self->reserved_count + count
               <= (uint64_t) self->config->mem_queue_size
           && broker_queue_bytes(self->held) + self->reserved_bytes + bytes
                  <= (uint64_t) self->config->mem_queue_bytes;
}

static bool s_has_room(const broker_topic_t *self, size_t count, uint64_t bytes)
{
    // All or none: a publish refused after some of its messages were
    // stored would be stored twice when the client retries it.
    if (!s_delivers_to_channels(self) || !s_holds_nothing(self))
        return self->disk ? broker_disk_has_room(self->disk, count, bytes)
                          : s_memory_has_room(self, count, bytes);
    for (size_t i = 0; i < self->channel_count; i++)
        if (!broker_channel_has_room(self->channels[i], count, bytes))
            return false;
    return true;
}

// Copies one message (the caller's reference moves) to every channel.
// Returns 0, or -1 (errno) if a channel could not take it.
static int s_fan_out(broker_topic_t *self, nsq_message_t *message, int64_t ready_at, int64_t now)
{
    int rc = 0;
    for (size_t i = 1; i < self->channel_count; i++)
        if (broker_channel_put(self->channels[i], nsq_message_ref(message), ready_at, now))
            rc = -1;
    if (broker_channel_put(self->channels[0], message, ready_at, now))
        rc = -1;
    return rc;
}

// Keeps one message (the caller's reference moves on success) in memory,
// or on disk once memory is full or disk holds some. Returns 0, or -1.
static int s_hold(broker_topic_t *self, nsq_message_t **message, int64_t ready_at, int64_t now)
{
    if (self->disk
        && (self->config->durable || broker_disk_holds_some(self->disk)
            || !s_memory_has_room(self, 1, (*message)->size))) {
        if (broker_disk_put(self->disk, *message, 0, ready_at, now) != 0)
            return -1;
        nsq_message_unref(message);
        return 0;
    }
    broker_queue_item_t item = {*message, 0, ready_at};
    if (broker_queue_push(self->held, item) != 0)
        return errno = ENOMEM, -1;
    *message = NULL;
    return 0;
}

// Puts to the topic's and its channels' disk queues leave in one write per
// queue (a write per message was most of the core's time while a backlog
// spilled), as broker_disk_combine says. Returns 0, or -1.
static int s_combine_writes(broker_topic_t *self, bool start, bool report)
{
    int error = 0;
    for (size_t i = 0; i < self->channel_count; i++)
        if (broker_channel_combine_writes(self->channels[i], start, report) != 0 && !error)
            error = errno;
    if (broker_disk_combine(self->disk, self->config->diskio, start, report, &self->message_count)
            != 0
        && !error)
        error = errno;
    errno = error;
    return error ? -1 : 0;
}

static void s_dispatch_all(broker_topic_t *self, int64_t now)
{
    for (size_t i = 0; i < self->channel_count; i++)
        broker_channel_dispatch(self->channels[i], now);
}

int broker_topic_publish(broker_topic_t *self, nsq_message_t **messages, size_t count,
                         int64_t defer_ms, int64_t now)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < count; i++)
        bytes += messages[i]->size;
    errno = ENOBUFS;  // or a disk's write error, which s_has_room sets
    if (!s_has_room(self, count, bytes))
        return -1;
    int64_t ready_at = defer_ms > 0 ? now + defer_ms : 0;
    int rc = 0;
    s_combine_writes(self, true, true);
    for (size_t i = 0; i < count && rc == 0; i++) {
        uint32_t size = messages[i]->size;
        if (s_delivers_to_channels(self) && s_holds_nothing(self)) {
            rc = s_fan_out(self, messages[i], ready_at, now);
            messages[i] = NULL;  // taken, even by only some channels
        } else {
            rc = s_hold(self, &messages[i], ready_at, now);
        }
        if (rc == 0 || !messages[i]) {
            self->message_count++;
            self->message_bytes += size;
        }
    }
    int error = errno;  // the failed write's, for the caller
    if (s_combine_writes(self, false, true) != 0 && rc == 0) {
        rc = -1;
        error = errno;
    }
    s_dispatch_all(self, now);
    errno = error;
    return rc;
}

// True if every channel's disk queue can take one message of size bytes.
static bool s_channels_disk_have_room(const broker_topic_t *self, uint64_t size)
{
    for (size_t i = 0; i < self->channel_count; i++)
        if (!broker_channel_disk_has_room(self->channels[i], 1, size))
            return false;
    return true;
}

// ---- admitted publishes (broker_admission.h) -------------------------------------
// Reserved memory stays free for them: s_memory_has_room counts it. They
// are held in memory even if the disk started holding some meanwhile
// (NSQ's messages have no order), so taking them cannot fail.

void broker_topic_reserve(broker_topic_t *self, uint64_t *count, uint64_t *bytes)
{
    uint64_t held = broker_queue_size(self->held) + self->reserved_count;
    uint64_t held_bytes = broker_queue_bytes(self->held) + self->reserved_bytes;
    uint64_t limit = (uint64_t) self->config->mem_queue_size;
    uint64_t limit_bytes = (uint64_t) self->config->mem_queue_bytes;
    if (!self->disk || self->config->durable || broker_disk_holds_some(self->disk) || held >= limit
        || held_bytes >= limit_bytes) {
        *count = *bytes = 0;
        return;
    }
    *count = *count < limit - held ? *count : limit - held;
    *bytes = *bytes < limit_bytes - held_bytes ? *bytes : limit_bytes - held_bytes;
    self->reserved_count += *count;
    self->reserved_bytes += *bytes;
}

void broker_topic_unreserve(broker_topic_t *self, uint64_t count, uint64_t bytes)
{
    self->reserved_count -= count < self->reserved_count ? count : self->reserved_count;
    self->reserved_bytes -= bytes < self->reserved_bytes ? bytes : self->reserved_bytes;
}

void broker_topic_admit(broker_topic_t *self, nsq_message_t **messages, size_t count, int64_t now)
{
    for (size_t i = 0; i < count; i++) {
        uint32_t size = messages[i]->size;
        broker_topic_unreserve(self, 1, size);
        broker_queue_item_t item = {messages[i], 0, 0};
        if (broker_queue_push(self->held, item) != 0) {
            nsq_error("topic %s: out of memory, dropping an admitted message", self->name);
            nsq_message_unref(&messages[i]);
            continue;
        }
        messages[i] = NULL;
        self->message_count++;
        self->message_bytes += size;
    }
    broker_topic_pump(self, now);
}

// Most held messages handed on per pump, so one topic's backlog does not
// stall the core.
#define TOPIC_PUMP_MAX 10000

bool broker_topic_pump(broker_topic_t *self, int64_t now)
{
    size_t moved = 0;
    s_combine_writes(self, true, false);
    // A channel whose disk lags stops the pump before a message reaches
    // only some of the channels (what is held waits for the next pump).
    while (s_delivers_to_channels(self) && moved < TOPIC_PUMP_MAX
           && s_channels_disk_have_room(self, self->config->max_msg_size)) {
        broker_queue_item_t item = {NULL, 0, 0};
        if (broker_queue_pop(self->held, &item) != 0 && self->disk
            && broker_disk_get(self->disk, &item.message, &item.attempts, &item.ready_at, now,
                               self->config->max_req_timeout_ms)
                   != 1)
            break;
        if (!item.message)
            break;
        moved++;
        if (s_fan_out(self, item.message, item.ready_at, now) != 0) {
            // A full disk: stop here rather than lose the whole backlog.
            nsq_error("topic %s: a channel could not take a held message: %s", self->name,
                      strerror(errno));
            break;
        }
    }
    s_combine_writes(self, false, false);
    if (moved)
        s_dispatch_all(self, now);
    return !s_holds_nothing(self);
}

// Starts handing the held messages to the channels.
static void s_release_held(broker_topic_t *self, int64_t now)
{
    broker_topic_pump(self, now);
    s_dispatch_all(self, now);
}

broker_channel_t *broker_topic_channel(broker_topic_t *self, const char *name)
{
    for (size_t i = 0; i < self->channel_count; i++)
        if (strcmp(broker_channel_name(self->channels[i]), name) == 0)
            return self->channels[i];
    return NULL;
}

broker_channel_t *broker_topic_add_channel(broker_topic_t *self, const char *name, int64_t now)
{
    broker_channel_t *channel = broker_topic_channel(self, name);
    if (channel)
        return channel;
    broker_channel_t **channels =
        realloc(self->channels, (self->channel_count + 1) * sizeof *channels);
    if (!channels)
        return NULL;
    self->channels = channels;
    channel = broker_channel_new(self->name, name, self->config);
    if (!channel)
        return NULL;
    self->channels[self->channel_count++] = channel;
    if (self->channel_count == 1)
        s_release_held(self, now);
    return channel;
}

broker_channel_t *broker_topic_remove_channel(broker_topic_t *self, broker_channel_t *channel)
{
    for (size_t i = 0; i < self->channel_count; i++) {
        if (self->channels[i] == channel) {
            memmove(&self->channels[i], &self->channels[i + 1],
                    (self->channel_count - i - 1) * sizeof *self->channels);
            self->channel_count--;
            return channel;
        }
    }
    return NULL;
}

void broker_topic_hold(broker_topic_t *self, bool hold, int64_t now)
{
    self->lookup_hold = hold;
    if (!hold)
        s_release_held(self, now);
}

void broker_topic_pause(broker_topic_t *self)
{
    self->paused = true;
}

void broker_topic_unpause(broker_topic_t *self, int64_t now)
{
    self->paused = false;
    s_release_held(self, now);
}

void broker_topic_empty(broker_topic_t *self)
{
    broker_queue_clear(self->held);
    if (self->disk && nsq_diskqueue_empty(self->disk) != 0)
        nsq_error("topic %s: cannot empty its disk queue: %s", self->name, strerror(errno));
}

size_t broker_topic_depth(const broker_topic_t *self)
{
    return broker_queue_size(self->held) + broker_topic_backend_depth(self);
}

size_t broker_topic_backend_depth(const broker_topic_t *self)
{
    return self->disk ? (size_t) nsq_diskqueue_depth(self->disk) : 0;
}

uint64_t broker_topic_memory_bytes(const broker_topic_t *self)
{
    return broker_queue_bytes(self->held);
}

// Settles one queue after its messages were written (see persist). In
// async mode its records first reach the file (at shutdown, one queue at
// a time: else every queue's write segment would be open at once).
static int s_settle(const broker_config_t *config, nsq_diskqueue_t *disk)
{
    if (!disk)
        return 0;
    if (config->diskio)
        nsq_diskio_wait(config->diskio, -1);
    return nsq_diskqueue_write_meta(disk);
}

int broker_topic_persist(broker_topic_t *self, int64_t now)
{
    int rc = 0;
    for (size_t i = 0; i < self->channel_count; i++) {
        if (broker_channel_persist(self->channels[i], now) != 0)
            rc = -1;
        if (s_settle(self->config, broker_channel_disk(self->channels[i])) != 0)
            rc = -1;
    }
    if (!self->disk)
        return rc;
    size_t failed = 0;
    broker_queue_item_t item;
    while (broker_queue_pop(self->held, &item) == 0) {
        if (broker_disk_put_waiting(self->disk, self->config->diskio, item.message, 0,
                                    item.ready_at, now)
            != 0)
            failed++;
        nsq_message_unref(&item.message);
    }
    if (failed)
        nsq_error("topic %s: %zu messages could not be written to disk", self->name, failed);
    return failed || rc || s_settle(self->config, self->disk) != 0 ? -1 : 0;
}

const char *broker_topic_name(const broker_topic_t *self)
{
    return self->name;
}

bool broker_topic_is_ephemeral(const broker_topic_t *self)
{
    return self->ephemeral;
}

bool broker_topic_is_paused(const broker_topic_t *self)
{
    return self->paused;
}

size_t broker_topic_channel_count(const broker_topic_t *self)
{
    return self->channel_count;
}

broker_channel_t *broker_topic_channel_at(const broker_topic_t *self, size_t index)
{
    return index < self->channel_count ? self->channels[index] : NULL;
}

nsq_diskqueue_t *broker_topic_disk(const broker_topic_t *self)
{
    return self->disk;
}

bool broker_topic_wants_pump(const broker_topic_t *self)
{
    return s_delivers_to_channels(self) && !s_holds_nothing(self);
}

size_t broker_topic_pump_slot(const broker_topic_t *self)
{
    return self->pump_slot;
}

void broker_topic_set_pump_slot(broker_topic_t *self, size_t slot)
{
    self->pump_slot = slot;
}

int broker_topic_stats(const broker_topic_t *self, broker_stats_topic_t *out,
                       const char *channel_filter)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", self->name);
    out->depth = broker_topic_depth(self);
    out->backend_depth = broker_topic_backend_depth(self);
    out->corrupt_count = self->disk ? nsq_diskqueue_corrupt_count(self->disk) : 0;
    out->memory_bytes = broker_topic_memory_bytes(self);
    out->message_count = self->message_count;
    out->message_bytes = self->message_bytes;
    out->paused = self->paused;
    if (self->channel_count == 0)
        return 0;
    out->channels = calloc(self->channel_count, sizeof *out->channels);
    if (!out->channels)
        return -1;
    for (size_t i = 0; i < self->channel_count; i++) {
        broker_channel_t *channel = self->channels[i];
        if (*channel_filter && strcmp(channel_filter, broker_channel_name(channel)) != 0)
            continue;
        if (broker_channel_stats(channel, &out->channels[out->channel_count++]) != 0)
            return -1;
    }
    return 0;
}

// The message a consumer of channel receives (the test's sink keeps it).
static nsq_message_t *s_test_delivered;
static broker_client_t *s_test_client;

static size_t s_test_deliver(void *door, broker_inflight_entry_t **entries, size_t count,
                             int64_t now)
{
    (void) door;
    (void) now;
    s_test_delivered = count ? entries[0]->message : NULL;
    return count;
}

// Subscribes the test's client to channel with credit 1 and returns the
// message it receives (borrowed: the channel holds it in flight), or NULL.
static nsq_message_t *s_test_take(broker_channel_t *channel)
{
    static const broker_client_sink_t sink = {s_test_deliver, NULL, "test"};
    if (!s_test_client)
        s_test_client = broker_client_new(&sink, NULL, "test", 1000, 1000, 0);
    if (!s_test_client || broker_channel_add_client(channel, s_test_client))
        return NULL;
    broker_client_set_state(s_test_client, BROKER_CLIENT_SUBSCRIBED);
    broker_client_set_rdy(s_test_client, broker_client_in_flight(s_test_client) + 1);
    s_test_delivered = NULL;
    broker_channel_dispatch(channel, 0);
    return s_test_delivered;
}

// Publishes one message with the given id; returns the publish result.
static int s_test_publish(broker_topic_t *topic, uint64_t id)
{
    nsq_message_t *message = nsq_message_new("body", 4);
    message->id = id;
    int rc = broker_topic_publish(topic, &message, 1, 0, 0);
    nsq_message_unref(&message);  // still ours only if refused
    return rc;
}

// A topic without channels spills past mem_queue_size and hands it all to
// its first channel; deleting it removes its files.
static int s_test_spill(const char *dir)
{
    broker_config_t config;
    broker_config_for_test(&config, dir, 2, 0);
    broker_topic_t *topic = broker_topic_new("orders", &config);
    if (!topic || !topic->disk)
        return -1;
    for (uint64_t id = 1; id <= 5; id++)
        if (s_test_publish(topic, id))
            return -1;
    if (broker_topic_depth(topic) != 5 || broker_topic_backend_depth(topic) != 3)
        return -1;
    broker_channel_t *channel = broker_topic_add_channel(topic, "a", 0);
    if (!channel || broker_topic_depth(topic) != 0 || broker_channel_depth(channel) != 5)
        return -1;
    if (s_test_publish(topic, 6) || broker_channel_depth(channel) != 6
        || broker_channel_backend_depth(channel) != 4)
        return -1;
    broker_topic_delete(&topic);
    return 0;
}

// Publishes count bodies of size bytes (ids from first); returns the result.
static int s_test_publish_sized(broker_topic_t *topic, uint64_t first, size_t count, size_t size)
{
    char body[1000] = {0};
    nsq_message_t *messages[4];
    for (size_t i = 0; i < count; i++) {
        messages[i] = nsq_message_new(body, size);
        messages[i]->id = first + i;
    }
    int rc = broker_topic_publish(topic, messages, count, 0, 0);
    for (size_t i = 0; i < count; i++)
        nsq_message_unref(&messages[i]);  // still ours only if refused
    return rc;
}

// --mem-queue-bytes: a topic without channels keeps bodies in memory up to
// the bound and spills the rest, though the count allows more; an
// ephemeral topic refuses a whole publish whose bodies do not fit.
static int s_test_bytes(const char *dir)
{
    broker_config_t config;
    broker_config_for_test(&config, dir, 1000, 3000);
    broker_topic_t *topic = broker_topic_new("big", &config);
    if (!topic || s_test_publish_sized(topic, 1, 4, 1000) || s_test_publish_sized(topic, 5, 1, 10))
        return -1;
    if (broker_topic_memory_bytes(topic) != 3000 || broker_topic_backend_depth(topic) != 2
        || broker_topic_depth(topic) != 5)
        return -1;
    broker_topic_delete(&topic);
    topic = broker_topic_new("big#ephemeral", &config);
    if (!topic || s_test_publish_sized(topic, 1, 2, 1000)
        || s_test_publish_sized(topic, 3, 2, 1000) == 0  // 4000 bytes: refused as a whole
        || s_test_publish_sized(topic, 5, 1, 1000) || broker_topic_depth(topic) != 3
        || broker_topic_memory_bytes(topic) != 3000)
        return -1;
    broker_topic_destroy(&topic);
    return 0;
}

// The disk I/O thread lags (held: the queue's recovery at open waits, so
// records gather in its write buffer): a publish that does not fit in a
// disk queue's write buffer is refused whole, never stored in part (a
// retry would store the part twice), for a topic's own queue and for a
// channel's; once the disk caught up it is taken.
static int s_test_disk_lag(const char *dir)
{
    broker_config_t config;
    broker_config_for_test(&config, dir, 0, 0);
    config.mem_queue_size = 0;  // every message goes to disk
    config.max_msg_size = 1000;
    config.test_disk_pending_max = 4096;  // 7 records of 500-byte bodies
    config.diskio = nsq_diskio_new();
    broker_topic_t *topic = NULL;
    int rc = -1;
    for (int with_channel = 0; config.diskio && with_channel < 2; with_channel++) {
        nsq_diskio_hold(config.diskio, true);
        topic = broker_topic_new(with_channel ? "lag-channel" : "lag", &config);
        broker_channel_t *channel = with_channel ? broker_topic_add_channel(topic, "a", 0) : NULL;
        if (!topic || (with_channel && !channel))
            goto done;
        if (s_test_publish_sized(topic, 1, 4, 500) != 0
            || s_test_publish_sized(topic, 5, 4, 500) == 0)  // over 4096: refused whole
            goto done;
        size_t held = channel ? broker_channel_depth(channel) : broker_topic_depth(topic);
        nsq_diskio_hold(config.diskio, false);
        if (held != 4 || nsq_diskio_wait(config.diskio, 5000) != 0
            || s_test_publish_sized(topic, 5, 4, 500) != 0)
            goto done;
        held = channel ? broker_channel_depth(channel) : broker_topic_depth(topic);
        if (held != 8)
            goto done;
        broker_topic_delete(&topic);
        nsq_diskio_wait(config.diskio, 5000);
    }
    rc = config.diskio ? 0 : -1;
done:
    broker_topic_delete(&topic);
    if (config.diskio)
        nsq_diskio_wait(config.diskio, 5000);
    nsq_diskio_destroy(&config.diskio);
    return rc;
}

int broker_topic_test(void)
{
    char dir[] = "/tmp/broker-topic-test-XXXXXX";
    if (!mkdtemp(dir) || s_test_spill(dir) || s_test_bytes(dir) || s_test_disk_lag(dir)
        || rmdir(dir))  // rmdir: every file was deleted
        return -1;
    broker_config_t config;
    broker_config_for_test(&config, "", 2, 0);  // memory only
    broker_topic_t *topic = broker_topic_new("orders", &config);
    if (!topic || s_test_publish(topic, 1) || s_test_publish(topic, 2))
        return -1;
    if (s_test_publish(topic, 3) == 0)  // held messages are bounded
        return -1;
    broker_channel_t *first = broker_topic_add_channel(topic, "a", 0);
    if (!first || broker_channel_depth(first) != 2 || broker_topic_depth(topic) != 0)
        return -1;
    broker_channel_t *second = broker_topic_add_channel(topic, "b#ephemeral", 0);
    if (!second || !broker_channel_is_ephemeral(second) || broker_channel_depth(second) != 0)
        return -1;
    // "a" is full: an atomic publish is refused everywhere.
    if (s_test_publish(topic, 4) == 0 || broker_channel_depth(second) != 0)
        return -1;
    broker_channel_empty(first);
    if (s_test_publish(topic, 5) || broker_channel_depth(first) != 1
        || broker_channel_depth(second) != 1)
        return -1;
    // Both channels share one copy of the body.
    nsq_message_t *a = s_test_take(first), *b = s_test_take(second);
    if (!a || a != b || a->refs != 2)
        return -1;
    if (broker_channel_fin(first, s_test_client, a->id)
        || broker_channel_fin(second, s_test_client, b->id))
        return -1;
    broker_channel_remove_client(first, s_test_client, 0);
    broker_channel_remove_client(second, s_test_client, 0);
    broker_client_destroy(&s_test_client);
    broker_topic_pause(topic);
    if (s_test_publish(topic, 6) || broker_topic_depth(topic) != 1
        || broker_channel_depth(first) != 0)
        return -1;
    broker_topic_unpause(topic, 0);
    if (broker_topic_depth(topic) != 0 || broker_channel_depth(first) != 1)
        return -1;
    broker_channel_t *removed = broker_topic_remove_channel(topic, second);
    if (removed != second || topic->channel_count != 1)
        return -1;
    broker_channel_destroy(&removed);
    broker_topic_destroy(&topic);
    return 0;
}
