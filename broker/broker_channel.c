/*  broker_channel - one channel of a topic: its queue, in-flight and deferred
    messages, and the consumers that share it
    SPDX-License-Identifier: MIT
*/
#include "broker_channel.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker_disk.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "nsq_wire.h"

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
        self->disk = broker_disk_open(config, topic, name);
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
    return self->ephemeral || self->disk || s_memory_has_room(self, count, bytes);
}

uint64_t broker_channel_memory_bytes(const broker_channel_t *self)
{
    return broker_queue_bytes(self->queue) + broker_inflight_bytes(self->deferred);
}

// Queues a message that was delivered before (or defers it); never refused.
static void s_requeue(broker_channel_t *self, nsq_message_t *message, uint32_t attempts,
                      int64_t ready_at, int64_t now)
{
    if (ready_at > now) {
        if (broker_inflight_add(self->deferred, message, attempts, ready_at, NULL))
            return;
    } else {
        broker_queue_item_t item = {message, attempts, 0};
        if (broker_queue_push(self->queue, item) == 0)
            return;
    }
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
        && (self->config->durable || !nsq_diskqueue_is_empty(self->disk)
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
        int rc = broker_disk_get(self->disk, &message, &attempts, &ready_at, now);
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
    client->channel = self;
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
    client->channel = NULL;
    // Nothing here may fail for lack of memory: an entry left behind would
    // point at the client after it is freed.
    s_take_back_t back = {self, now};
    broker_inflight_remove_owner(self->in_flight, client, s_take_back, &back);
    client->in_flight = 0;
}

// Moves up to count queued messages in flight to client and sends them.
static void s_deliver(broker_channel_t *self, broker_client_t *client, size_t count, int64_t now)
{
    broker_inflight_entry_t *entries[CHANNEL_TURN_MAX];
    size_t taken = 0;
    broker_queue_item_t item;
    while (taken < count && broker_queue_pop(self->queue, &item) == 0) {
        broker_inflight_entry_t *entry = broker_inflight_add(
            self->in_flight, item.message, item.attempts + 1, now + client->msg_timeout_ms, client);
        if (!entry) {
            nsq_error("channel %s: cannot track message, dropping it", self->name);
            nsq_message_unref(&item.message);
            continue;
        }
        entry->delivered_at = now;
        entries[taken++] = entry;
    }
    client->in_flight += (uint32_t) taken;
    size_t sent = broker_client_send_messages(client, entries, taken, now);
    // What could not be sent (a full queue, a vanished client) goes back at
    // once instead of waiting for its timeout; that attempt never happened.
    for (size_t i = sent; i < taken; i++) {
        uint32_t attempts;
        nsq_message_t *message = broker_inflight_remove(self->in_flight, entries[i], &attempts);
        client->in_flight--;
        s_requeue(self, message, attempts - 1, 0, now);
    }
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
            s_deliver(self, client, want < queued ? want : queued, now);
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
    client->in_flight--;
    client->finish_count++;
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
    client->in_flight--;
    client->requeue_count++;
    self->requeue_count++;
    s_requeue(self, message, attempts, now + delay_ms, now);
    return 0;
}

int broker_channel_touch(broker_channel_t *self, broker_client_t *client, uint64_t id, int64_t now)
{
    broker_inflight_entry_t *entry = s_owned(self, client, id);
    if (!entry)
        return -1;
    int64_t deadline = now + client->msg_timeout_ms;
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
        client->in_flight--;
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
    if (broker_disk_put(self->disk, message, attempts, ready_at, now) != 0)
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
        broker_client_t *client = entry->owner;
        client->in_flight--;
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
    int rc = nsq_diskqueue_sync(self->disk);
    return failed || rc ? -1 : 0;
}

// ---- self-test -----------------------------------------------------------

// Receives one Messages frame on a DEALER; returns its message count (-1 if
// none arrives within a second) and stores the first id.
static int s_test_receive(zsock_t *dealer, uint64_t *first_id)
{
    zpoller_t *poller = zpoller_new(dealer, NULL);
    void *ready = zpoller_wait(poller, 1000);
    zpoller_destroy(&poller);
    if (!ready)
        return -1;
    zframe_t *frame = zframe_recv(dealer);
    Nsq__Frame *decoded = nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame));
    zframe_destroy(&frame);
    int count = -1;
    if (decoded && decoded->frame_case == NSQ__FRAME__FRAME_MESSAGES) {
        count = (int) decoded->messages->n_messages;
        if (count > 0)
            *first_id = decoded->messages->messages[0]->id;
    }
    nsq__frame__free_unpacked(decoded, NULL);
    return count;
}

// Spill-over: past mem_queue_size messages go to disk and are delivered
// after the memory ones; persist writes queued and in-flight messages to
// disk, a new channel object finds them; a message read from disk survives
// a crash until it is finished; delete removes the files.
static int s_test_spill(const char *dir)
{
    broker_config_t config;
    broker_config_defaults(&config);
    config.mem_queue_size = 2;
    snprintf(config.data_path, sizeof config.data_path, "%s", dir);
    zsock_t *router = zsock_new_router("inproc://broker-channel-spill");
    broker_channel_t *channel = broker_channel_new("orders", "billing", &config);
    broker_client_t *client = broker_client_new(zsock_resolve(router), "C2", 2, 0);
    int rc = -1;
    if (!channel || !channel->disk || !client || broker_channel_add_client(channel, client))
        goto done;
    for (uint64_t i = 1; i <= 5; i++) {
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = i;
        if (broker_channel_put(channel, message, 0, 0))
            goto done;
    }
    if (broker_channel_depth(channel) != 5 || broker_channel_backend_depth(channel) != 3)
        goto done;
    client->state = BROKER_CLIENT_SUBSCRIBED;
    client->rdy = 3;
    broker_channel_dispatch(channel, 0);  // two from memory, one read back from disk
    if (client->in_flight != 3 || broker_channel_depth(channel) != 2
        || !broker_inflight_find(channel->in_flight, 3))
        goto done;
    if (broker_channel_persist(channel, 0) || broker_channel_backend_depth(channel) != 5)
        goto done;
    broker_channel_remove_client(channel, client, 0);
    broker_channel_destroy(&channel);
    channel = broker_channel_new("orders", "billing", &config);  // holds 4, 5, 1, 2, 3
    if (!channel || broker_channel_depth(channel) != 5
        || broker_channel_add_client(channel, client))
        goto done;
    client->rdy = 2;
    broker_channel_dispatch(channel, 0);
    if (client->in_flight != 2 || broker_channel_fin(channel, client, 4))
        goto done;
    // A crash now (no persist) must not lose 5, read from disk but unfinished.
    broker_channel_remove_client(channel, client, 0);
    broker_channel_destroy(&channel);
    channel = broker_channel_new("orders", "billing", &config);
    if (!channel || broker_channel_depth(channel) != 4)
        goto done;
    broker_channel_empty(channel);
    if (broker_channel_depth(channel) != 0)
        goto done;
    broker_channel_delete(&channel);
    rc = 0;
done:
    broker_channel_destroy(&channel);
    broker_client_destroy(&client);
    zsock_destroy(&router);
    return rc;
}

// Puts a message of size bytes with the given id.
static int s_test_put_sized(broker_channel_t *channel, uint64_t id, size_t size, int64_t ready_at)
{
    char body[1000] = {0};
    nsq_message_t *message = nsq_message_new(body, size);
    message->id = id;
    return broker_channel_put(channel, message, ready_at, 0);
}

// --mem-queue-bytes: big bodies spill to disk once the memory holds the
// bound (queued plus deferred), though the count would allow more; a
// memory-only channel refuses and an ephemeral one drops past it; delivery
// stays first in, first out and never refills past the bound.
static int s_test_bytes(const char *dir)
{
    broker_config_t config;
    broker_config_defaults(&config);
    config.mem_queue_size = 1000;
    config.mem_queue_bytes = 3000;
    snprintf(config.data_path, sizeof config.data_path, "%s", dir);
    zsock_t *router = zsock_new_router("inproc://broker-channel-bytes");
    broker_channel_t *channel = broker_channel_new("big", "c", &config);
    broker_client_t *client = broker_client_new(zsock_resolve(router), "C3", 2, 0);
    int rc = -1;
    if (!channel || !channel->disk || !client || broker_channel_add_client(channel, client))
        goto done;
    if (s_test_put_sized(channel, 1, 1000, 0) || s_test_put_sized(channel, 2, 1000, 50))
        goto done;  // 2 is deferred: it counts against the bound too
    for (uint64_t id = 3; id <= 6; id++)
        if (s_test_put_sized(channel, id, 1000, 0))
            goto done;
    if (broker_channel_memory_bytes(channel) != 3000 || broker_channel_backend_depth(channel) != 3
        || broker_queue_size(channel->queue) != 2)
        goto done;
    client->state = BROKER_CLIENT_SUBSCRIBED;
    client->rdy = 100;
    broker_channel_dispatch(channel, 0);  // 1 and 3 from memory, then 4, 5, 6 from disk
    if (client->in_flight != 5 || broker_channel_depth(channel) != 0
        || broker_channel_memory_bytes(channel) != 1000)
        goto done;
    broker_channel_remove_client(channel, client, 0);
    broker_channel_delete(&channel);

    config.data_path[0] = '\0';  // memory only: refused past the bound
    channel = broker_channel_new("big", "c", &config);
    if (!channel || !broker_channel_has_room(channel, 3, 3000)
        || broker_channel_has_room(channel, 3, 3001))
        goto done;
    broker_channel_destroy(&channel);
    channel = broker_channel_new("big", "tail#ephemeral", &config);  // drops past it
    for (uint64_t id = 1; id <= 5 && channel; id++)
        if (s_test_put_sized(channel, id, 1000, 0))
            goto done;
    if (!channel || broker_channel_depth(channel) != 3 || channel->dropped_count != 2
        || broker_channel_memory_bytes(channel) != 3000)
        goto done;
    rc = 0;
done:
    broker_channel_delete(&channel);
    broker_client_destroy(&client);
    zsock_destroy(&router);
    return rc;
}

// A consumer whose ZeroMQ queue is full: what cannot be sent goes back to
// the queue at once (not in flight until its timeout), the consumer gets no
// credit until the broker flushes it, then every message reaches it once.
static int s_test_full_queue(void)
{
    broker_config_t config;
    broker_config_defaults(&config);
    config.data_path[0] = '\0';
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_router_mandatory(router, 1);
    zsock_set_sndhwm(router, 2);  // before bind and connect, so they apply
    zsock_bind(router, "inproc://broker-channel-full");
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_identity(dealer, "C3");
    zsock_set_rcvhwm(dealer, 2);
    zsock_connect(dealer, "inproc://broker-channel-full");
    broker_channel_t *channel = broker_channel_new("orders", "full", &config);
    broker_client_t *client = broker_client_new(zsock_resolve(router), "C3", 2, 0);
    int rc = -1;
    if (!channel || !client || broker_channel_add_client(channel, client))
        goto done;
    client->state = BROKER_CLIENT_SUBSCRIBED;
    client->rdy = 100;
    for (uint64_t i = 1; i <= 50; i++) {  // one frame each
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = i;
        broker_channel_put(channel, message, 0, 0);
        broker_channel_dispatch(channel, 0);
    }
    size_t sent = client->in_flight;
    if (!client->blocked || sent == 0 || sent >= 50
        || broker_inflight_size(channel->in_flight) != sent
        || broker_channel_depth(channel) != 50 - sent)
        goto done;
    bool seen[51] = {false};
    size_t received = 0;
    int64_t deadline = zclock_mono() + 5000;
    while (received < 50 && zclock_mono() < deadline) {
        zsock_events(router);  // lets the router see what the dealer read
        if (broker_client_flush(client, 0))
            broker_channel_dispatch(channel, 0);
        zframe_t *frame = zsock_events(dealer) & ZMQ_POLLIN ? zframe_recv(dealer) : NULL;
        Nsq__Frame *decoded =
            frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
        zframe_destroy(&frame);
        bool messages = decoded && decoded->frame_case == NSQ__FRAME__FRAME_MESSAGES;
        for (size_t i = 0; messages && i < decoded->messages->n_messages; i++) {
            uint64_t id = decoded->messages->messages[i]->id;
            if (id < 1 || id > 50 || seen[id])
                break;  // unknown or twice: fails below
            seen[id] = true;
            received++;
            broker_channel_fin(channel, client, id);
        }
        nsq__frame__free_unpacked(decoded, NULL);
    }
    if (received != 50 || channel->timeout_count != 0 || client->in_flight != 0)
        goto done;
    rc = 0;
done:
    broker_channel_destroy(&channel);
    broker_client_destroy(&client);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
    return rc;
}

int broker_channel_test(void)
{
    char dir[] = "/tmp/broker-channel-test-XXXXXX";
    if (!mkdtemp(dir) || s_test_spill(dir) || s_test_bytes(dir)
        || rmdir(dir))  // rmdir: every file was deleted
        return -1;
    if (s_test_full_queue())
        return -1;
    broker_config_t config;
    broker_config_defaults(&config);
    config.mem_queue_size = 3;
    zsock_t *router = zsock_new_router("inproc://broker-channel-test");
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_identity(dealer, "C1");
    zsock_connect(dealer, "inproc://broker-channel-test");
    config.data_path[0] = '\0';  // memory only
    broker_channel_t *channel = broker_channel_new("orders", "billing", &config);
    broker_client_t *client = broker_client_new(zsock_resolve(router), "C1", 2, 0);
    int rc = -1;
    uint64_t id = 0;
    if (!channel || !client || broker_channel_add_client(channel, client))
        goto done;
    client->state = BROKER_CLIENT_SUBSCRIBED;
    client->msg_timeout_ms = 100;
    for (uint64_t i = 1; i <= 3; i++) {
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = i;
        broker_channel_put(channel, message, 0, 0);
    }
    if (broker_channel_has_room(channel, 1, 1))  // the bound holds
        goto done;
    broker_channel_dispatch(channel, 0);  // no credit yet: nothing sent
    client->rdy = 1;
    broker_channel_dispatch(channel, 0);
    if (s_test_receive(dealer, &id) != 1 || id != 1 || client->in_flight != 1)
        goto done;
    broker_channel_dispatch(channel, 0);  // credit used up: still one in flight
    if (client->in_flight != 1 || broker_channel_depth(channel) != 2)
        goto done;
    if (broker_channel_fin(channel, client, 99) == 0)  // unknown id
        goto done;
    // Timeout requeues at the back with attempts counted.
    if (broker_channel_scan(channel, 100) != 1 || channel->timeout_count != 1)
        goto done;
    client->rdy = 10;
    broker_channel_dispatch(channel, 100);
    if (s_test_receive(dealer, &id) != 3 || id != 2 || client->in_flight != 3)
        goto done;
    if (broker_channel_fin(channel, client, 2) || broker_channel_req(channel, client, 3, 50, 100))
        goto done;
    if (broker_inflight_size(channel->deferred) != 1 || broker_channel_scan(channel, 149) != 0)
        goto done;
    if (broker_channel_scan(channel, 150) != 1 || broker_channel_depth(channel) != 1)
        goto done;
    // A vanished consumer's messages return to the queue.
    broker_channel_remove_client(channel, client, 150);
    if (broker_channel_depth(channel) != 2 || broker_inflight_size(channel->in_flight) != 0)
        goto done;
    rc = 0;
done:
    broker_channel_destroy(&channel);
    broker_client_destroy(&client);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
    return rc;
}

// A consumer vanishes while memory is exhausted: its messages still go back
// to the queue, and nothing in flight keeps pointing at it once it is freed
// (the scan would touch it: ASan reports that).
int broker_channel_test_out_of_memory(void (*fail_allocations)(bool fail))
{
    broker_config_t config;
    broker_config_defaults(&config);
    config.data_path[0] = '\0';  // memory only
    zsock_t *router = zsock_new_router("inproc://broker-channel-oom");
    broker_channel_t *channel = broker_channel_new("orders", "billing", &config);
    broker_client_t *gone = broker_client_new(zsock_resolve(router), "F1", 2, 0);
    broker_client_t *stays = broker_client_new(zsock_resolve(router), "F2", 2, 0);
    int rc = -1;
    if (!channel || !gone || !stays || broker_channel_add_client(channel, gone)
        || broker_channel_add_client(channel, stays))
        goto done;
    for (uint64_t id = 1; id <= 6; id++) {
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = id;
        broker_channel_put(channel, message, 0, 0);
    }
    broker_client_t *clients[] = {gone, stays};
    for (size_t i = 0; i < 2; i++) {
        clients[i]->state = BROKER_CLIENT_SUBSCRIBED;
        clients[i]->msg_timeout_ms = 100;
        clients[i]->rdy = 3;
    }
    broker_channel_dispatch(channel, 0);
    if (gone->in_flight != 3 || stays->in_flight != 3)
        goto done;
    fail_allocations(true);
    broker_channel_remove_client(channel, gone, 10);
    fail_allocations(false);
    if (broker_inflight_size(channel->in_flight) != 3 || broker_channel_depth(channel) != 3
        || gone->in_flight != 0)
        goto done;
    broker_client_destroy(&gone);
    // Every deadline has passed: the scan touches the owner of each entry.
    if (broker_channel_scan(channel, 1000) != 3 || stays->in_flight != 0
        || broker_channel_depth(channel) != 6)
        goto done;
    rc = 0;
done:
    fail_allocations(false);
    broker_channel_destroy(&channel);
    broker_client_destroy(&gone);
    broker_client_destroy(&stays);
    zsock_destroy(&router);
    return rc;
}
