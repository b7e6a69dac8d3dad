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

static const broker_client_sink_t s_test_sink = {s_test_deliver, NULL, "test"};

// A client of door named name, as a door would open it.
static broker_client_t *s_test_client(test_door_t *door, const char *name)
{
    return broker_client_new(&s_test_sink, door, name, 30000, 60000, 0);
}

// What each test works on: a channel with one subscribed client (credit
// 0) of a fake door.
typedef struct {
    broker_config_t config;     // the channel's settings
    test_door_t door;           // what it was handed
    broker_client_t *client;    // subscribed (state NEW: the test sets credit)
    broker_channel_t *channel;  // topic/name
} test_t;

// Makes the channel topic/name on dir (with its disk queue; "" = memory
// only) with the memory bounds (0 = default) and subscribes a
// client named client_name (state SUBSCRIBED, no credit yet). Returns 0,
// or -1 (s_test_end still frees).
static int s_test_start(test_t *test, const char *dir, int64_t size, int64_t bytes,
                        const char *topic, const char *name, const char *client_name)
{
    memset(test, 0, sizeof *test);
    broker_config_for_test(&test->config, dir, size, bytes);
    test->channel = broker_channel_new(topic, name, &test->config);
    test->client = s_test_client(&test->door, client_name);
    if (!test->channel || !test->client || (dir[0] && !broker_channel_disk(test->channel))
        || broker_channel_add_client(test->channel, test->client))
        return -1;
    broker_client_set_state(test->client, BROKER_CLIENT_SUBSCRIBED);
    return 0;
}

// Frees the test's channel (keeping its files) and client.
static void s_test_end(test_t *test)
{
    broker_channel_destroy(&test->channel);
    broker_client_destroy(&test->client);
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
    test_t test;
    int rc = -1;
    if (s_test_start(&test, dir, 2, 0, "orders", "billing", "C2"))
        goto done;
    for (uint64_t i = 1; i <= 5; i++) {
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = i;
        if (broker_channel_put(test.channel, message, 0, 0))
            goto done;
    }
    if (broker_channel_depth(test.channel) != 5 || broker_channel_backend_depth(test.channel) != 3)
        goto done;
    broker_client_set_rdy(test.client, 3);
    broker_channel_dispatch(test.channel, 0);  // two from memory, one read back from disk
    if (broker_client_in_flight(test.client) != 3 || broker_channel_depth(test.channel) != 2
        || !broker_inflight_find(broker_channel_in_flight(test.channel), 3))
        goto done;
    if (broker_channel_persist(test.channel, 0) || broker_channel_backend_depth(test.channel) != 5)
        goto done;
    broker_channel_remove_client(test.channel, test.client, 0);
    broker_channel_destroy(&test.channel);
    test.channel = broker_channel_new("orders", "billing", &test.config);  // holds 4, 5, 1, 2, 3
    if (!test.channel || broker_channel_depth(test.channel) != 5
        || broker_channel_add_client(test.channel, test.client))
        goto done;
    broker_client_set_rdy(test.client, 2);
    broker_channel_dispatch(test.channel, 0);
    if (broker_client_in_flight(test.client) != 2
        || broker_channel_fin(test.channel, test.client, 4))
        goto done;
    // A crash now (no persist) must not lose 5, read from disk but unfinished.
    broker_channel_remove_client(test.channel, test.client, 0);
    broker_channel_destroy(&test.channel);
    test.channel = broker_channel_new("orders", "billing", &test.config);
    if (!test.channel || broker_channel_depth(test.channel) != 4)
        goto done;
    broker_channel_empty(test.channel);
    if (broker_channel_depth(test.channel) != 0)
        goto done;
    broker_channel_delete(&test.channel);
    rc = 0;
done:
    s_test_end(&test);
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
    test_t test;
    int rc = -1;
    if (s_test_start(&test, dir, 1000, 3000, "big", "c", "C3"))
        goto done;
    if (s_test_put_sized(test.channel, 1, 1000, 0) || s_test_put_sized(test.channel, 2, 1000, 50))
        goto done;  // 2 is deferred: it counts against the bound too
    for (uint64_t id = 3; id <= 6; id++)
        if (s_test_put_sized(test.channel, id, 1000, 0))
            goto done;
    if (broker_channel_memory_bytes(test.channel) != 3000
        || broker_channel_backend_depth(test.channel) != 3
        || (broker_channel_depth(test.channel) - broker_channel_backend_depth(test.channel)) != 2)
        goto done;
    broker_client_set_rdy(test.client, 100);
    broker_channel_dispatch(test.channel, 0);  // 1 and 3 from memory, then 4, 5, 6 from disk
    if (broker_client_in_flight(test.client) != 5 || broker_channel_depth(test.channel) != 0
        || broker_channel_memory_bytes(test.channel) != 1000)
        goto done;
    broker_channel_remove_client(test.channel, test.client, 0);
    broker_channel_delete(&test.channel);

    test.config.data_path[0] = '\0';  // memory only: refused past the bound
    test.channel = broker_channel_new("big", "c", &test.config);
    if (!test.channel || !broker_channel_has_room(test.channel, 3, 3000)
        || broker_channel_has_room(test.channel, 3, 3001))
        goto done;
    broker_channel_destroy(&test.channel);
    test.channel = broker_channel_new("big", "tail#ephemeral", &test.config);  // drops past it
    for (uint64_t id = 1; id <= 5 && test.channel; id++)
        if (s_test_put_sized(test.channel, id, 1000, 0))
            goto done;
    if (!test.channel || broker_channel_depth(test.channel) != 3
        || broker_channel_dropped_count(test.channel) != 2
        || broker_channel_memory_bytes(test.channel) != 3000)
        goto done;
    rc = 0;
done:
    s_test_end(&test);
    return rc;
}

// Two messages with one id (ids from before a restart with the clock
// stepped back could once collide): the second cannot be in flight beside
// the first, so it waits and comes once the first is finished, never lost.
static int s_test_collision(void)
{
    test_t test;
    int rc = -1;
    uint64_t id = 0;
    if (s_test_start(&test, "", 0, 0, "orders", "billing", "C3"))
        goto done;
    broker_client_set_rdy(test.client, 5);
    for (int i = 0; i < 2; i++) {
        nsq_message_t *message = nsq_message_new(i ? "second" : "first", i ? 6 : 5);
        message->id = 7;
        broker_channel_put(test.channel, message, 0, 0);
    }
    broker_channel_dispatch(test.channel, 0);
    if (s_test_receive(&test.door, &id) != 1 || id != 7 || broker_client_in_flight(test.client) != 1
        || broker_inflight_size(broker_channel_deferred(test.channel)) != 1)
        goto done;
    if (broker_channel_fin(test.channel, test.client, 7)
        || broker_channel_scan(test.channel, 0) != 0)
        goto done;
    if (broker_channel_scan(test.channel, BROKER_CHANNEL_RETRY_MS) != 1)
        goto done;
    broker_channel_dispatch(test.channel, BROKER_CHANNEL_RETRY_MS);
    broker_inflight_entry_t *entry =
        broker_inflight_find(broker_channel_in_flight(test.channel), 7);
    if (s_test_receive(&test.door, &id) != 1 || id != 7 || !entry || entry->message->size != 6)
        goto done;
    rc = 0;
done:
    s_test_end(&test);
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
    test_t test;
    int rc = -1;
    uint64_t id = 0;
    if (s_test_start(&test, "", 3, 0, "orders", "billing", "C1"))
        goto done;
    broker_client_set_timeouts(test.client, 30000, 100);
    for (uint64_t i = 1; i <= 3; i++) {
        nsq_message_t *message = nsq_message_new("m", 1);
        message->id = i;
        broker_channel_put(test.channel, message, 0, 0);
    }
    if (broker_channel_has_room(test.channel, 1, 1))  // the bound holds
        goto done;
    broker_channel_dispatch(test.channel, 0);  // no credit yet: nothing sent
    broker_client_set_rdy(test.client, 1);
    broker_channel_dispatch(test.channel, 0);
    if (s_test_receive(&test.door, &id) != 1 || id != 1
        || broker_client_in_flight(test.client) != 1)
        goto done;
    broker_channel_dispatch(test.channel, 0);  // credit used up: still one in flight
    if (broker_client_in_flight(test.client) != 1 || broker_channel_depth(test.channel) != 2)
        goto done;
    if (broker_channel_fin(test.channel, test.client, 99) == 0)  // unknown id
        goto done;
    // Timeout requeues at the back with attempts counted.
    if (broker_channel_scan(test.channel, 100) != 1 || s_test_timeouts(test.channel) != 1)
        goto done;
    broker_client_set_rdy(test.client, 10);
    broker_channel_dispatch(test.channel, 100);
    if (s_test_receive(&test.door, &id) != 3 || id != 2
        || broker_client_in_flight(test.client) != 3)
        goto done;
    if (broker_channel_fin(test.channel, test.client, 2)
        || broker_channel_req(test.channel, test.client, 3, 50, 100))
        goto done;
    if (broker_inflight_size(broker_channel_deferred(test.channel)) != 1
        || broker_channel_scan(test.channel, 149) != 0)
        goto done;
    if (broker_channel_scan(test.channel, 150) != 1 || broker_channel_depth(test.channel) != 1)
        goto done;
    // A vanished consumer's messages return to the queue.
    broker_channel_remove_client(test.channel, test.client, 150);
    if (broker_channel_depth(test.channel) != 2
        || broker_inflight_size(broker_channel_in_flight(test.channel)) != 0)
        goto done;
    rc = 0;
done:
    s_test_end(&test);
    return rc;
}

// A consumer vanishes while memory is exhausted: its messages still go back
// to the queue, and nothing in flight keeps pointing at it once it is freed
// (the scan would touch it: ASan reports that).
int broker_channel_test_out_of_memory(void (*fail_allocations)(bool fail))
{
    test_t test;
    int rc = -1;
    bool started = s_test_start(&test, "", 0, 0, "orders", "billing", "F1") == 0;
    broker_channel_t *channel = test.channel;
    broker_client_t *gone = test.client, *stays = s_test_client(&test.door, "F2");
    if (!started || !stays || broker_channel_add_client(channel, stays))
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
    test.client = gone;  // NULL once the test freed it
    s_test_end(&test);
    broker_client_destroy(&stays);
    return rc;
}
