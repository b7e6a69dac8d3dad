/*  broker_channel - one channel of a topic: its queue, in-flight and deferred
    messages, and the consumers that share it
    SPDX-License-Identifier: MIT
*/
#include "broker_channel.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "broker_disk.h"
#include "nsq_log.h"
#include "nsq_names.h"

struct _broker_channel_t {
    char name[65];                     // channel name, possibly with #ephemeral
    bool ephemeral;                    // memory only, deleted with its last consumer
    bool paused;                       // keeps messages, delivers none
    const broker_config_t *config;     // borrowed broker settings
    broker_queue_t *queue;             // ready to deliver
    nsq_diskqueue_t *disk;             // spill-over, NULL when memory only
    struct broker_channel_kept *kept;  // ring of disk positions read and not yet finished
    size_t kept_head;                  // index of the oldest entry in kept
    size_t kept_count;                 // entries used in kept
    size_t kept_capacity;              // entries allocated in kept
    bool disk_failing;                 // the last disk read failed (logged once)
    broker_inflight_t *in_flight;      // delivered, waiting for FIN/REQ/timeout
    broker_inflight_t *deferred;       // waiting until their deadline
    broker_client_t **clients;         // subscribed consumers (borrowed)
    size_t client_count;               // entries used in clients
    size_t client_capacity;            // entries allocated in clients
    size_t next_client;                // round-robin start for the next dispatch
    uint64_t message_count;            // messages put into the channel
    uint64_t requeue_count;            // REQs
    uint64_t timeout_count;            // in-flight timeouts
    uint64_t dropped_count;            // ephemeral overflow drops
};

// A message read from the disk queue and not finished yet.
struct broker_channel_kept {
    uint64_t position;  // its position in the disk queue
    bool done;          // finished; dropped once every older one is too
};

// Tells the disk queue which records are still needed.
static void s_kept_publish(broker_channel_t *self)
{
    if (self->kept_count == 0)
        nsq_diskqueue_keep_from(self->disk, NSQ_DISKQUEUE_KEEP_NONE, 0);
    else
        nsq_diskqueue_keep_from(self->disk, self->kept[self->kept_head].position,
                                (int64_t) self->kept_count);
}

// Remembers that message was read from disk at the disk queue's last
// position. Returns 0, or -1 if out of memory (it is then not kept).
static int s_kept_add(broker_channel_t *self, nsq_message_t *message)
{
    if (self->kept_count == self->kept_capacity) {
        size_t capacity = self->kept_capacity ? 2 * self->kept_capacity : 64;
        struct broker_channel_kept *kept = malloc(capacity * sizeof *kept);
        if (!kept)
            return -1;
        for (size_t i = 0; i < self->kept_count; i++)
            kept[i] = self->kept[(self->kept_head + i) % self->kept_capacity];
        free(self->kept);
        self->kept = kept;
        self->kept_head = 0;
        self->kept_capacity = capacity;
    }
    uint64_t position = nsq_diskqueue_position(self->disk);
    size_t slot = (self->kept_head + self->kept_count++) % self->kept_capacity;
    self->kept[slot] = (struct broker_channel_kept){position, false};
    message->disk_position = position + 1;
    return 0;
}

// Marks message finished; releases the records older than every unfinished one.
static void s_kept_done(broker_channel_t *self, const nsq_message_t *message)
{
    if (!self->disk || message->disk_position == 0 || self->kept_count == 0)
        return;
    uint64_t position = message->disk_position - 1;
    size_t low = 0, high = self->kept_count;  // positions ascend from the head
    while (low < high) {
        size_t middle = (low + high) / 2;
        if (self->kept[(self->kept_head + middle) % self->kept_capacity].position < position)
            low = middle + 1;
        else
            high = middle;
    }
    struct broker_channel_kept *entry = &self->kept[(self->kept_head + low) % self->kept_capacity];
    if (low == self->kept_count || entry->position != position)
        return;  // not kept (the queue was emptied since)
    entry->done = true;
    while (self->kept_count > 0 && self->kept[self->kept_head].done) {
        self->kept_head = (self->kept_head + 1) % self->kept_capacity;
        self->kept_count--;
    }
    s_kept_publish(self);
}

// Forgets every kept position (the queue was emptied or everything in
// memory was written back to disk).
static void s_kept_clear(broker_channel_t *self)
{
    self->kept_count = 0;
    self->kept_head = 0;
    if (self->disk)
        s_kept_publish(self);
}

// Most messages handed to one consumer per turn, so that consumers sharing
// a channel take turns even when each has a large credit.
#define CHANNEL_TURN_MAX 256

// The disk queue can be read again (async): consumers waiting get messages.
static void s_disk_wake(nsq_diskqueue_t *disk, void *arg)
{
    (void) disk;
    broker_channel_dispatch(arg, zclock_mono());
}

broker_channel_t *broker_channel_new(const char *topic, const char *name,
                                     const broker_config_t *config)
{
    broker_channel_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->name, sizeof self->name, "%s", name);
    self->ephemeral = nsq_name_is_ephemeral(name);
    self->config = config;
    self->queue = broker_queue_new();
    self->in_flight = broker_inflight_new();
    self->deferred = broker_inflight_new();
    bool on_disk = config->data_path[0] && !self->ephemeral && !nsq_name_is_ephemeral(topic);
    if (on_disk && self->queue)
        self->disk = broker_disk_open(config, topic, name, s_disk_wake, self);
    if (!self->queue || !self->in_flight || !self->deferred || (on_disk && !self->disk))
        broker_channel_destroy(&self);
    else if (self->disk)
        s_kept_publish(self);  // the channel decides when read records are done
    return self;
}

void broker_channel_delete(broker_channel_t **self_p)
{
    if (self_p && *self_p)
        nsq_diskqueue_delete(&(*self_p)->disk);
    broker_channel_destroy(self_p);
}

void broker_channel_destroy(broker_channel_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_channel_t *self = *self_p;
    nsq_diskqueue_destroy(&self->disk);
    free(self->kept);
    broker_queue_destroy(&self->queue);
    broker_inflight_destroy(&self->in_flight);
    broker_inflight_destroy(&self->deferred);
    free(self->clients);
    free(self);
    *self_p = NULL;
}

// True if count more messages of bytes body bytes fit in memory (queued
// plus deferred), by count and by bytes.
static bool s_memory_has_room(const broker_channel_t *self, size_t count, uint64_t bytes)
{
    size_t held = broker_queue_size(self->queue) + broker_inflight_size(self->deferred);
    uint64_t held_bytes = broker_channel_memory_bytes(self);
    return held + count <= (size_t) self->config->mem_queue_size
           && held_bytes + bytes <= (uint64_t) self->config->mem_queue_bytes;
}

bool broker_channel_has_room(const broker_channel_t *self, size_t count, uint64_t bytes)
{
    if (self->ephemeral)
        return true;
    return self->disk ? broker_disk_has_room(self->disk, count, bytes)
                      : s_memory_has_room(self, count, bytes);
}

bool broker_channel_disk_has_room(const broker_channel_t *self, size_t count, uint64_t bytes)
{
    return self->ephemeral || !self->disk || broker_disk_has_room(self->disk, count, bytes);
}

uint64_t broker_channel_memory_bytes(const broker_channel_t *self)
{
    return broker_queue_bytes(self->queue) + broker_inflight_bytes(self->deferred);
}

// Queues a message that was delivered before (or defers it); never refused.
// A deferral the table cannot take (its id is deferred already, or memory
// ran out) is queued at once instead: early beats lost.
static void s_requeue(broker_channel_t *self, nsq_message_t *message, uint32_t attempts,
                      int64_t ready_at, int64_t now)
{
    if (ready_at > now && broker_inflight_add(self->deferred, message, attempts, ready_at, NULL))
        return;
    broker_queue_item_t item = {message, attempts, 0};
    if (broker_queue_push(self->queue, item) == 0)
        return;
    nsq_error("channel %s: out of memory, dropping message", self->name);
    nsq_message_unref(&message);
}

int broker_channel_put(broker_channel_t *self, nsq_message_t *message, int64_t ready_at,
                       int64_t now)
{
    self->message_count++;
    if (self->ephemeral && !s_memory_has_room(self, 1, message->size)) {
        self->dropped_count++;
        nsq_message_unref(&message);
        return 0;
    }
    if (self->disk
        && (self->config->durable || broker_disk_holds_some(self->disk)
            || !s_memory_has_room(self, 1, message->size))) {
        int rc = broker_disk_put(self->disk, message, 0, ready_at, now);
        nsq_message_unref(&message);
        if (rc != 0)
            self->message_count--;
        return rc;
    }
    s_requeue(self, message, 0, ready_at, now);
    return 0;
}

int broker_channel_combine_writes(broker_channel_t *self, bool start, bool report)
{
    return broker_disk_combine(self->disk, self->config->diskio, start, report,
                               &self->message_count);
}

// Moves up to want ready messages from disk into the memory queue (deferred
// ones on the way go to the deferred table), and stops once the queue holds
// --mem-queue-bytes (big bodies: fewer at a time; always at least one).
static void s_refill(broker_channel_t *self, size_t want, int64_t now)
{
    uint64_t bound = (uint64_t) self->config->mem_queue_bytes;
    while (self->disk && want > 0
           && (broker_queue_size(self->queue) == 0 || broker_queue_bytes(self->queue) < bound)) {
        nsq_message_t *message;
        uint32_t attempts;
        int64_t ready_at;
        int rc = broker_disk_get(self->disk, &message, &attempts, &ready_at, now,
                                 self->config->max_req_timeout_ms);
        if (rc < 0 && !self->disk_failing)
            nsq_error("channel %s: cannot read its disk queue: %s", self->name, strerror(errno));
        self->disk_failing = rc < 0;
        if (rc != 1)
            break;
        if (s_kept_add(self, message) != 0)
            nsq_warn("channel %s: out of memory, a crash may lose a message", self->name);
        s_requeue(self, message, attempts, ready_at, now);
        if (ready_at <= now)
            want--;
    }
    if (self->disk)
        s_kept_publish(self);
}

// Messages ready in memory, refilled from disk with up to want when empty.
static size_t s_ready(broker_channel_t *self, size_t want, int64_t now)
{
    if (broker_queue_size(self->queue) == 0)
        s_refill(self, want, now);
    return broker_queue_size(self->queue);
}

int broker_channel_add_client(broker_channel_t *self, broker_client_t *client)
{
    if (self->client_count == self->client_capacity) {
        size_t capacity = self->client_capacity ? self->client_capacity * 2 : 4;
        broker_client_t **clients = realloc(self->clients, capacity * sizeof *clients);
        if (!clients)
            return -1;
        self->clients = clients;
        self->client_capacity = capacity;
    }
    self->clients[self->client_count++] = client;
    broker_client_set_channel(client, self);
    return 0;
}

// Where a vanished consumer's messages go back to, and when.
typedef struct {
    broker_channel_t *channel;
    int64_t now;
} s_take_back_t;

// Puts one of a vanished consumer's messages back in the queue (attempts kept).
static void s_take_back(void *arg, nsq_message_t *message, uint32_t attempts)
{
    s_take_back_t *back = arg;
    s_requeue(back->channel, message, attempts, 0, back->now);
}

void broker_channel_remove_client(broker_channel_t *self, broker_client_t *client, int64_t now)
{
    for (size_t i = 0; i < self->client_count; i++) {
        if (self->clients[i] == client) {
            self->clients[i] = self->clients[--self->client_count];
            break;
        }
    }
    broker_client_set_channel(client, NULL);
    // Nothing here may fail for lack of memory: an entry left behind would
    // point at the client after it is freed.
    s_take_back_t back = {self, now};
    broker_inflight_remove_owner(self->in_flight, client, s_take_back, &back);
    broker_client_released_all(client);
}

// Moves up to count queued messages in flight to client and sends them.
// Returns how many it sent. A message that cannot be tracked (its id is
// in flight already, or memory ran out) waits BROKER_CHANNEL_RETRY_MS and is
// tried again; failures end the turn after count of them, so a message
// that comes straight back to the queue is never spun on.
static size_t s_deliver(broker_channel_t *self, broker_client_t *client, size_t count, int64_t now)
{
    broker_inflight_entry_t *entries[CHANNEL_TURN_MAX];
    size_t taken = 0, failed = 0;
    broker_queue_item_t item;
    while (taken < count && failed < count && broker_queue_pop(self->queue, &item) == 0) {
        broker_inflight_entry_t *entry =
            broker_inflight_add(self->in_flight, item.message, item.attempts + 1,
                                now + broker_client_msg_timeout(client), client);
        if (!entry) {
            nsq_warn("channel %s: cannot track message %016" PRIx64 " (its id is in flight "
                     "already, or out of memory), retrying it in %d ms",
                     self->name, item.message->id, BROKER_CHANNEL_RETRY_MS);
            s_requeue(self, item.message, item.attempts, now + BROKER_CHANNEL_RETRY_MS, now);
            failed++;
            continue;
        }
        entry->delivered_at = now;
        entries[taken++] = entry;
    }
    size_t sent = broker_client_deliver(client, entries, taken, now);
    // What could not be sent (a full queue, a vanished client) goes back at
    // once instead of waiting for its timeout; that attempt never happened.
    for (size_t i = sent; i < taken; i++) {
        uint32_t attempts;
        nsq_message_t *message = broker_inflight_remove(self->in_flight, entries[i], &attempts);
        s_requeue(self, message, attempts - 1, 0, now);
    }
    return sent;
}

void broker_channel_dispatch(broker_channel_t *self, int64_t now)
{
    if (self->paused || self->client_count == 0)
        return;
    bool progress = true;
    while (progress) {
        progress = false;
        for (size_t i = 0; i < self->client_count; i++) {
            broker_client_t *client = self->clients[(self->next_client + i) % self->client_count];
            size_t credit = broker_client_credit(client);
            if (credit == 0)
                continue;
            size_t want = credit < CHANNEL_TURN_MAX ? credit : CHANNEL_TURN_MAX;
            size_t queued = s_ready(self, want, now);
            if (queued == 0)
                return;
            if (s_deliver(self, client, want < queued ? want : queued, now) > 0)
                progress = true;
        }
        self->next_client = (self->next_client + 1) % self->client_count;
    }
}

// Finds id in flight to client; NULL if it is unknown or someone else's.
static broker_inflight_entry_t *s_owned(broker_channel_t *self, broker_client_t *client,
                                        uint64_t id)
{
    broker_inflight_entry_t *entry = broker_inflight_find(self->in_flight, id);
    return entry && entry->owner == client ? entry : NULL;
}

int broker_channel_fin(broker_channel_t *self, broker_client_t *client, uint64_t id)
{
    broker_inflight_entry_t *entry = s_owned(self, client, id);
    if (!entry)
        return -1;
    nsq_message_t *message = broker_inflight_remove(self->in_flight, entry, NULL);
    s_kept_done(self, message);
    nsq_message_unref(&message);
    broker_client_released(client, BROKER_RELEASE_FINISHED);
    return 0;
}

int broker_channel_req(broker_channel_t *self, broker_client_t *client, uint64_t id,
                       int64_t delay_ms, int64_t now)
{
    broker_inflight_entry_t *entry = s_owned(self, client, id);
    if (!entry)
        return -1;
    uint32_t attempts;
    nsq_message_t *message = broker_inflight_remove(self->in_flight, entry, &attempts);
    broker_client_released(client, BROKER_RELEASE_REQUEUED);
    self->requeue_count++;
    s_requeue(self, message, attempts, now + delay_ms, now);
    return 0;
}

int broker_channel_touch(broker_channel_t *self, broker_client_t *client, uint64_t id, int64_t now)
{
    broker_inflight_entry_t *entry = s_owned(self, client, id);
    if (!entry)
        return -1;
    int64_t deadline = now + broker_client_msg_timeout(client);
    int64_t cap = entry->delivered_at + self->config->max_msg_timeout_ms;
    broker_inflight_set_deadline(self->in_flight, entry, deadline < cap ? deadline : cap);
    return 0;
}

size_t broker_channel_scan(broker_channel_t *self, int64_t now)
{
    size_t moved = 0;
    broker_inflight_entry_t *entry;
    while ((entry = broker_inflight_peek(self->in_flight)) && entry->deadline <= now) {
        broker_client_t *client = entry->owner;
        uint32_t attempts;
        nsq_message_t *message = broker_inflight_remove(self->in_flight, entry, &attempts);
        broker_client_released(client, BROKER_RELEASE_RETURNED);
        self->timeout_count++;
        s_requeue(self, message, attempts, 0, now);
        moved++;
    }
    while ((entry = broker_inflight_peek(self->deferred)) && entry->deadline <= now) {
        uint32_t attempts;
        nsq_message_t *message = broker_inflight_remove(self->deferred, entry, &attempts);
        s_requeue(self, message, attempts, 0, now);
        moved++;
    }
    return moved;
}

void broker_channel_empty(broker_channel_t *self)
{
    broker_queue_clear(self->queue);
    s_kept_clear(self);
    if (self->disk && nsq_diskqueue_empty(self->disk) != 0)
        nsq_error("channel %s: cannot empty its disk queue: %s", self->name, strerror(errno));
    broker_inflight_entry_t *entry;
    while ((entry = broker_inflight_peek(self->deferred))) {
        nsq_message_t *message = broker_inflight_remove(self->deferred, entry, NULL);
        nsq_message_unref(&message);
    }
}

size_t broker_channel_depth(const broker_channel_t *self)
{
    return broker_queue_size(self->queue) + broker_channel_backend_depth(self);
}

size_t broker_channel_backend_depth(const broker_channel_t *self)
{
    return self->disk ? (size_t) nsq_diskqueue_depth(self->disk) : 0;
}

// Writes one message to disk and drops the reference; counts failures.
static void s_persist_one(broker_channel_t *self, nsq_message_t *message, uint32_t attempts,
                          int64_t ready_at, int64_t now, size_t *failed)
{
    if (broker_disk_put_waiting(self->disk, self->config->diskio, message, attempts, ready_at, now)
        != 0)
        (*failed)++;
    nsq_message_unref(&message);
}

int broker_channel_persist(broker_channel_t *self, int64_t now)
{
    if (!self->disk)
        return 0;
    size_t failed = 0;
    broker_queue_item_t item;
    while (broker_queue_pop(self->queue, &item) == 0)
        s_persist_one(self, item.message, item.attempts, 0, now, &failed);
    broker_inflight_entry_t *entry;
    while ((entry = broker_inflight_peek(self->in_flight))) {
        broker_client_released(entry->owner, BROKER_RELEASE_RETURNED);
        uint32_t attempts;
        nsq_message_t *message = broker_inflight_remove(self->in_flight, entry, &attempts);
        s_persist_one(self, message, attempts, 0, now, &failed);
    }
    while ((entry = broker_inflight_peek(self->deferred))) {
        int64_t ready_at = entry->deadline;
        uint32_t attempts;
        nsq_message_t *message = broker_inflight_remove(self->deferred, entry, &attempts);
        s_persist_one(self, message, attempts, ready_at, now, &failed);
    }
    if (failed)
        nsq_error("channel %s: %zu messages could not be written to disk", self->name, failed);
    s_kept_clear(self);  // all of them are unread records again
    return failed ? -1 : 0;
}

const char *broker_channel_name(const broker_channel_t *self)
{
    return self->name;
}

bool broker_channel_is_ephemeral(const broker_channel_t *self)
{
    return self->ephemeral;
}

bool broker_channel_is_paused(const broker_channel_t *self)
{
    return self->paused;
}

size_t broker_channel_client_count(const broker_channel_t *self)
{
    return self->client_count;
}

broker_client_t *broker_channel_client_at(const broker_channel_t *self, size_t index)
{
    return index < self->client_count ? self->clients[index] : NULL;
}

nsq_diskqueue_t *broker_channel_disk(const broker_channel_t *self)
{
    return self->disk;
}

broker_inflight_t *broker_channel_in_flight(const broker_channel_t *self)
{
    return self->in_flight;
}

broker_inflight_t *broker_channel_deferred(const broker_channel_t *self)
{
    return self->deferred;
}

uint64_t broker_channel_dropped_count(const broker_channel_t *self)
{
    return self->dropped_count;
}

void broker_channel_set_paused(broker_channel_t *self, bool paused, int64_t now)
{
    self->paused = paused;
    if (!paused)
        broker_channel_dispatch(self, now);
}

int broker_channel_stats(const broker_channel_t *self, broker_stats_channel_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", self->name);
    out->depth = broker_channel_depth(self);
    out->backend_depth = broker_channel_backend_depth(self);
    out->corrupt_count = self->disk ? nsq_diskqueue_corrupt_count(self->disk) : 0;
    out->in_flight_count = broker_inflight_size(self->in_flight);
    out->deferred_count = broker_inflight_size(self->deferred);
    out->memory_bytes = broker_channel_memory_bytes(self);
    out->message_count = self->message_count;
    out->requeue_count = self->requeue_count;
    out->timeout_count = self->timeout_count;
    out->paused = self->paused;
    if (self->client_count == 0)
        return 0;
    out->clients = malloc(self->client_count * sizeof *out->clients);
    if (!out->clients)
        return -1;
    out->client_count = self->client_count;
    for (size_t i = 0; i < self->client_count; i++)
        broker_client_stats(self->clients[i], &out->clients[i]);
    return 0;
}
