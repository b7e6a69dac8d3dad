/*  broker_channel_test - broker_channel_test(): a channel's queue, spill to
    disk, in-flight tracking, timeouts and requeues, driven through a fake
    door that records what it was handed
    SPDX-License-Identifier: MIT
*/
#include <czmq.h>
#include <stdlib.h>
#include <unistd.h>

#include "broker_channel.h"

// The channel's timeout count.
static uint64_t s_test_timeouts(broker_channel_t *channel)
{
    broker_stats_channel_t figures;
    broker_channel_stats(channel, &figures);
    free(figures.clients);
    return figures.timeout_count;
}

// A fake door: what the channel delivered, one record per deliver call.
typedef struct {
    int counts[64];      // messages per delivery
    uint64_t first[64];  // the first id of each
    size_t head, tail;   // read and write positions
} test_door_t;

static size_t s_test_deliver(void *door, broker_inflight_entry_t **entries, size_t count,
                             int64_t now)
{
    (void) now;
    test_door_t *test = door;
    if (test->tail - test->head < 64) {
        test->counts[test->tail % 64] = (int) count;
        test->first[test->tail % 64] = entries[0]->message->id;
        test->tail++;
    }
    return count;
}

static const broker_client_sink_t s_test_sink = {s_test_deliver, NULL};

// A client of door named name, as a door would open it.
static broker_client_t *s_test_client(test_door_t *door, const char *name)
{
    return broker_client_new(&s_test_sink, door, name, 30000, 60000, 0);
}

// The oldest delivery the door saw: returns its message count (-1 if none)
// and stores its first id.
static int s_test_receive(test_door_t *door, uint64_t *first_id)
{
    if (door->head == door->tail)
        return -1;
    *first_id = door->first[door->head % 64];
    return door->counts[door->head++ % 64];
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
    test_door_t door = {.head = 0};
    broker_channel_t *channel = broker_channel_new("orders", "billing", &config);
    broker_client_t *client = s_test_client(&door, "C2");
    int rc = -1;
    if (!channel || !broker_channel_disk(channel) || !client
        || broker_channel_add_client(channel, client))
        goto done;
    for (uint64_t i = 1; i <= 5; i++) {
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = i;
        if (broker_channel_put(channel, message, 0, 0))
            goto done;
    }
    if (broker_channel_depth(channel) != 5 || broker_channel_backend_depth(channel) != 3)
        goto done;
    broker_client_set_state(client, BROKER_CLIENT_SUBSCRIBED);
    broker_client_set_rdy(client, 3);
    broker_channel_dispatch(channel, 0);  // two from memory, one read back from disk
    if (broker_client_in_flight(client) != 3 || broker_channel_depth(channel) != 2
        || !broker_inflight_find(broker_channel_in_flight(channel), 3))
        goto done;
    if (broker_channel_persist(channel, 0) || broker_channel_backend_depth(channel) != 5)
        goto done;
    broker_channel_remove_client(channel, client, 0);
    broker_channel_destroy(&channel);
    channel = broker_channel_new("orders", "billing", &config);  // holds 4, 5, 1, 2, 3
    if (!channel || broker_channel_depth(channel) != 5
        || broker_channel_add_client(channel, client))
        goto done;
    broker_client_set_rdy(client, 2);
    broker_channel_dispatch(channel, 0);
    if (broker_client_in_flight(client) != 2 || broker_channel_fin(channel, client, 4))
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
    test_door_t door = {.head = 0};
    broker_channel_t *channel = broker_channel_new("big", "c", &config);
    broker_client_t *client = s_test_client(&door, "C3");
    int rc = -1;
    if (!channel || !broker_channel_disk(channel) || !client
        || broker_channel_add_client(channel, client))
        goto done;
    if (s_test_put_sized(channel, 1, 1000, 0) || s_test_put_sized(channel, 2, 1000, 50))
        goto done;  // 2 is deferred: it counts against the bound too
    for (uint64_t id = 3; id <= 6; id++)
        if (s_test_put_sized(channel, id, 1000, 0))
            goto done;
    if (broker_channel_memory_bytes(channel) != 3000 || broker_channel_backend_depth(channel) != 3
        || (broker_channel_depth(channel) - broker_channel_backend_depth(channel)) != 2)
        goto done;
    broker_client_set_state(client, BROKER_CLIENT_SUBSCRIBED);
    broker_client_set_rdy(client, 100);
    broker_channel_dispatch(channel, 0);  // 1 and 3 from memory, then 4, 5, 6 from disk
    if (broker_client_in_flight(client) != 5 || broker_channel_depth(channel) != 0
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
    if (!channel || broker_channel_depth(channel) != 3 || broker_channel_dropped_count(channel) != 2
        || broker_channel_memory_bytes(channel) != 3000)
        goto done;
    rc = 0;
done:
    broker_channel_delete(&channel);
    broker_client_destroy(&client);
    return rc;
}

// Two messages with one id (ids from before a restart with the clock
// stepped back could once collide): the second cannot be in flight beside
// the first, so it waits and comes once the first is finished, never lost.
static int s_test_collision(void)
{
    broker_config_t config;
    broker_config_defaults(&config);
    config.data_path[0] = '\0';  // memory only
    test_door_t door = {.head = 0};
    broker_channel_t *channel = broker_channel_new("orders", "billing", &config);
    broker_client_t *client = s_test_client(&door, "C3");
    int rc = -1;
    uint64_t id = 0;
    if (!channel || !client || broker_channel_add_client(channel, client))
        goto done;
    broker_client_set_state(client, BROKER_CLIENT_SUBSCRIBED);
    broker_client_set_rdy(client, 5);
    for (int i = 0; i < 2; i++) {
        nsq_message_t *message = nsq_message_new(i ? "second" : "first", i ? 6 : 5);
        message->id = 7;
        broker_channel_put(channel, message, 0, 0);
    }
    broker_channel_dispatch(channel, 0);
    if (s_test_receive(&door, &id) != 1 || id != 7 || broker_client_in_flight(client) != 1
        || broker_inflight_size(broker_channel_deferred(channel)) != 1)
        goto done;
    if (broker_channel_fin(channel, client, 7) || broker_channel_scan(channel, 0) != 0)
        goto done;
    if (broker_channel_scan(channel, BROKER_CHANNEL_RETRY_MS) != 1)
        goto done;
    broker_channel_dispatch(channel, BROKER_CHANNEL_RETRY_MS);
    broker_inflight_entry_t *entry = broker_inflight_find(broker_channel_in_flight(channel), 7);
    if (s_test_receive(&door, &id) != 1 || id != 7 || !entry || entry->message->size != 6)
        goto done;
    rc = 0;
done:
    broker_channel_destroy(&channel);
    broker_client_destroy(&client);
    return rc;
}

int broker_channel_test(void)
{
    char dir[] = "/tmp/broker-channel-test-XXXXXX";
    if (!mkdtemp(dir) || s_test_spill(dir) || s_test_bytes(dir)
        || rmdir(dir))  // rmdir: every file was deleted
        return -1;
    if (s_test_collision())
        return -1;
    broker_config_t config;
    broker_config_defaults(&config);
    config.mem_queue_size = 3;
    test_door_t door = {.head = 0};
    config.data_path[0] = '\0';  // memory only
    broker_channel_t *channel = broker_channel_new("orders", "billing", &config);
    broker_client_t *client = s_test_client(&door, "C1");
    int rc = -1;
    uint64_t id = 0;
    if (!channel || !client || broker_channel_add_client(channel, client))
        goto done;
    broker_client_set_state(client, BROKER_CLIENT_SUBSCRIBED);
    broker_client_set_timeouts(client, 30000, 100);
    for (uint64_t i = 1; i <= 3; i++) {
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = i;
        broker_channel_put(channel, message, 0, 0);
    }
    if (broker_channel_has_room(channel, 1, 1))  // the bound holds
        goto done;
    broker_channel_dispatch(channel, 0);  // no credit yet: nothing sent
    broker_client_set_rdy(client, 1);
    broker_channel_dispatch(channel, 0);
    if (s_test_receive(&door, &id) != 1 || id != 1 || broker_client_in_flight(client) != 1)
        goto done;
    broker_channel_dispatch(channel, 0);  // credit used up: still one in flight
    if (broker_client_in_flight(client) != 1 || broker_channel_depth(channel) != 2)
        goto done;
    if (broker_channel_fin(channel, client, 99) == 0)  // unknown id
        goto done;
    // Timeout requeues at the back with attempts counted.
    if (broker_channel_scan(channel, 100) != 1 || s_test_timeouts(channel) != 1)
        goto done;
    broker_client_set_rdy(client, 10);
    broker_channel_dispatch(channel, 100);
    if (s_test_receive(&door, &id) != 3 || id != 2 || broker_client_in_flight(client) != 3)
        goto done;
    if (broker_channel_fin(channel, client, 2) || broker_channel_req(channel, client, 3, 50, 100))
        goto done;
    if (broker_inflight_size(broker_channel_deferred(channel)) != 1
        || broker_channel_scan(channel, 149) != 0)
        goto done;
    if (broker_channel_scan(channel, 150) != 1 || broker_channel_depth(channel) != 1)
        goto done;
    // A vanished consumer's messages return to the queue.
    broker_channel_remove_client(channel, client, 150);
    if (broker_channel_depth(channel) != 2
        || broker_inflight_size(broker_channel_in_flight(channel)) != 0)
        goto done;
    rc = 0;
done:
    broker_channel_destroy(&channel);
    broker_client_destroy(&client);
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
    test_door_t door = {.head = 0};
    broker_channel_t *channel = broker_channel_new("orders", "billing", &config);
    broker_client_t *gone = s_test_client(&door, "F1");
    broker_client_t *stays = s_test_client(&door, "F2");
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
        broker_client_set_state(clients[i], BROKER_CLIENT_SUBSCRIBED);
        broker_client_set_timeouts(clients[i], 30000, 100);
        broker_client_set_rdy(clients[i], 3);
    }
    broker_channel_dispatch(channel, 0);
    if (broker_client_in_flight(gone) != 3 || broker_client_in_flight(stays) != 3)
        goto done;
    fail_allocations(true);
    broker_channel_remove_client(channel, gone, 10);
    fail_allocations(false);
    if (broker_inflight_size(broker_channel_in_flight(channel)) != 3
        || broker_channel_depth(channel) != 3 || broker_client_in_flight(gone) != 0)
        goto done;
    broker_client_destroy(&gone);
    // Every deadline has passed: the scan touches the owner of each entry.
    if (broker_channel_scan(channel, 1000) != 3 || broker_client_in_flight(stays) != 0
        || broker_channel_depth(channel) != 6)
        goto done;
    rc = 0;
done:
    fail_allocations(false);
    broker_channel_destroy(&channel);
    broker_client_destroy(&gone);
    broker_client_destroy(&stays);
    return rc;
}
