/*  broker_server_test - broker_server_test(): the core's operations and
    their results, with a fake door (no socket) and recording hooks
    SPDX-License-Identifier: MIT
*/
#include <czmq.h>
#include <string.h>

#include "broker_server.h"

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_server_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);    \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// A fake door: what it was handed and why its client was dropped.
typedef struct {
    size_t delivered;  // messages handed over
    uint64_t last_id;  // the last one's id
    int dropped;       // dropped() calls
    int reason;        // the last one's reason
    char detail[80];   // and its detail
} test_door_t;

static size_t s_test_deliver(void *door, broker_inflight_entry_t **entries, size_t count,
                             int64_t now)
{
    (void) now;
    test_door_t *test = door;
    test->delivered += count;
    test->last_id = entries[count - 1]->message->id;
    return count;
}

static void s_test_dropped(void *door, broker_drop_reason_t reason, const char *detail, int64_t now)
{
    (void) now;
    test_door_t *test = door;
    test->dropped++;
    test->reason = (int) reason;
    snprintf(test->detail, sizeof test->detail, "%s", detail ? detail : "");
}

static const broker_client_sink_t s_test_sink = {s_test_deliver, s_test_dropped, "test"};

// What the hooks saw.
typedef struct {
    int created;  // topics created
    int deleted;  // topics deleted
    int changed;  // state changes
    bool hold;    // what topic_created answers
} test_hooks_t;

static bool s_test_topic_created(void *arg, const char *topic)
{
    (void) topic;
    test_hooks_t *hooks = arg;
    hooks->created++;
    return hooks->hold;
}

static void s_test_topic_deleted(void *arg, const char *topic)
{
    (void) topic;
    ((test_hooks_t *) arg)->deleted++;
}

static void s_test_changed(void *arg)
{
    ((test_hooks_t *) arg)->changed++;
}

static broker_result_t s_test_durable_result = BROKER_OK;

static void s_test_on_durable(void *arg, broker_result_t result)
{
    (void) arg;
    s_test_durable_result = result;
}

// Publishes the bodies (NULL-terminated) to topic.
static broker_result_t s_test_publish(broker_server_t *server, const char *topic,
                                      const char **bodies, int64_t defer_ms)
{
    nsq_message_t *messages[8];
    size_t count = 0;
    while (bodies[count] && count < 8) {
        messages[count] = nsq_message_new(bodies[count], strlen(bodies[count]));
        count++;
    }
    return broker_server_publish(server, topic, strlen(topic), messages, count, defer_ms, 0);
}

// A client of door, identified and subscribed to topic/channel with credit.
static broker_client_t *s_test_consumer(broker_server_t *server, test_door_t *door,
                                        const char *topic, const char *channel, uint64_t credit)
{
    broker_client_t *client = broker_server_client_new(server, &s_test_sink, door, "c", 0);
    broker_identify_t identify = {0};
    broker_identify_reply_t reply;
    if (!client || broker_server_identify(server, client, &identify, &reply) != BROKER_OK
        || broker_server_subscribe(server, client, topic, strlen(topic), channel, strlen(channel),
                                   0)
               != BROKER_OK
        || broker_server_ready(server, client, credit, 0) != BROKER_OK)
        return NULL;
    return client;
}

// Publishing: each refusal has its result, checked before anything is made.
static int s_test_publishing(broker_server_t *server)
{
    int rc = -1;
    S_CHECK(s_test_publish(server, "bad name", (const char *[]){"x", NULL}, 0) == BROKER_BAD_TOPIC);
    S_CHECK(s_test_publish(server, "t", (const char *[]){NULL}, 0) == BROKER_BAD_MESSAGE);
    S_CHECK(s_test_publish(server, "t", (const char *[]){"", NULL}, 0) == BROKER_BAD_MESSAGE);
    S_CHECK(s_test_publish(server, "t", (const char *[]){"x", NULL}, 3600001)
            == BROKER_OUT_OF_RANGE);
    S_CHECK(s_test_publish(server, "t", (const char *[]){"x", NULL}, -1) == BROKER_OUT_OF_RANGE);
    S_CHECK(s_test_publish(server, "t", (const char *[]){"12345678901", NULL}, 0)
            == BROKER_BAD_MESSAGE);  // above max_msg_size
    S_CHECK(s_test_publish(server, "t", (const char *[]){"1234567890", "1234567890", NULL}, 0)
            == BROKER_BAD_BODY);  // above max_body_size together
    S_CHECK(!broker_server_has(server, "t", NULL));
    // Memory only: the topic holds mem_queue_size messages, then refuses.
    S_CHECK(s_test_publish(server, "t", (const char *[]){"a", "b", NULL}, 0) == BROKER_OK);
    S_CHECK(s_test_publish(server, "t", (const char *[]){"c", NULL}, 0) == BROKER_QUEUE_FULL);
    rc = 0;
done:
    return rc;
}

// A consumer's life: the state machine's refusals, delivery, FIN.
static int s_test_consuming(broker_server_t *server)
{
    test_door_t door = {0};
    broker_client_t *client = broker_server_client_new(server, &s_test_sink, &door, "c1", 0);
    broker_identify_t identify = {.heartbeat_interval_ms = 50};
    broker_identify_reply_t reply;
    int rc = -1;
    S_CHECK(client);
    S_CHECK(broker_server_subscribe(server, client, "t", 1, "c", 1, 0) == BROKER_INVALID);
    S_CHECK(broker_server_identify(server, client, &identify, &reply) == BROKER_BAD_BODY);
    identify.heartbeat_interval_ms = 1000;
    S_CHECK(broker_server_identify(server, client, &identify, &reply) == BROKER_OK);
    S_CHECK(reply.heartbeat_interval_ms == 1000 && reply.max_rdy_count == 100);
    S_CHECK(broker_server_identify(server, client, &identify, &reply) == BROKER_INVALID);
    S_CHECK(broker_server_ready(server, client, 1, 0) == BROKER_INVALID);
    S_CHECK(broker_server_subscribe(server, client, "t", 1, "c!", 2, 0) == BROKER_BAD_CHANNEL);
    S_CHECK(broker_server_subscribe(server, client, "t\0", 2, "c", 1, 0) == BROKER_BAD_TOPIC);
    S_CHECK(broker_server_subscribe(server, client, "t", 1, "c", 1, 0) == BROKER_OK);
    S_CHECK(broker_server_ready(server, client, 101, 0) == BROKER_OUT_OF_RANGE);
    // The first channel receives what the topic held.
    S_CHECK(broker_server_ready(server, client, 10, 0) == BROKER_OK && door.delivered == 2);
    S_CHECK(broker_server_in_flight(server) == 2);
    size_t failed = 0;
    uint64_t ids[] = {door.last_id, 42};
    S_CHECK(broker_server_finish(server, client, ids, 2, &failed, 0) == BROKER_NOT_IN_FLIGHT
            && failed == 1 && broker_server_in_flight(server) == 1);
    // Draining: RDY no longer gives credit.
    broker_server_drain(server);
    S_CHECK(broker_server_ready(server, client, 10, 0) == BROKER_OK);
    S_CHECK(s_test_publish(server, "t", (const char *[]){"d", NULL}, 0) == BROKER_OK
            && door.delivered == 2);
    broker_server_client_close(server, &client, 0);
    S_CHECK(!client && broker_server_in_flight(server) == 0);
    rc = 0;
done:
    broker_server_client_close(server, &client, 0);
    return rc;
}

// Administration: not-found results, and a deleted channel drops its
// consumer; an ephemeral channel goes with its last consumer.
static int s_test_admin(broker_server_t *server, test_hooks_t *hooks)
{
    test_door_t door = {0};
    int rc = -1;
    S_CHECK(broker_server_topic(server, BROKER_PAUSE, "none", 4, 0) == BROKER_TOPIC_NOT_FOUND);
    S_CHECK(broker_server_channel(server, BROKER_EMPTY, "t", 1, "none", 4, 0)
            == BROKER_CHANNEL_NOT_FOUND);
    S_CHECK(broker_server_channel(server, BROKER_CREATE, "u", 1, "c", 1, 0) == BROKER_OK
            && broker_server_has(server, "u", "c"));
    S_CHECK(s_test_consumer(server, &door, "u", "c", 5));
    S_CHECK(broker_server_channel(server, BROKER_DELETE, "u", 1, "c", 1, 0) == BROKER_OK);
    S_CHECK(door.dropped == 1 && door.reason == BROKER_DROP_CHANNEL_DELETED
            && streq(door.detail, "c") && !broker_server_has(server, "u", "c"));
    int deleted = hooks->deleted;
    broker_client_t *client = s_test_consumer(server, &door, "e#ephemeral", "c#ephemeral", 5);
    S_CHECK(client && broker_server_has(server, "e#ephemeral", "c#ephemeral"));
    broker_server_client_close(server, &client, 0);
    S_CHECK(!broker_server_has(server, "e#ephemeral", NULL) && hooks->deleted == deleted + 1);
    rc = 0;
done:
    return rc;
}

// The tick drops a silent client (missed heartbeats) and a gone one.
static int s_test_liveness(broker_server_t *server)
{
    test_door_t silent = {0}, gone = {0};
    int rc = -1;
    broker_client_t *quiet = s_test_consumer(server, &silent, "t", "live", 1);
    broker_client_t *away = s_test_consumer(server, &gone, "t", "live", 1);
    S_CHECK(quiet && away);
    broker_client_heard(away, 1000);
    broker_client_set_gone(away);
    broker_server_tick(server, 1000);  // heartbeat 1000 ms: not silent yet
    S_CHECK(silent.dropped == 0 && gone.dropped == 1 && gone.reason == BROKER_DROP_GONE);
    broker_server_tick(server, 2 * 1000 + 501);
    S_CHECK(silent.dropped == 1 && silent.reason == BROKER_DROP_SILENT);
    rc = 0;
done:
    return rc;
}

// A held topic (lookupd's channels are awaited) delivers once released; a
// snapshot lists topics in name order.
static int s_test_hold_and_stats(broker_server_t *server, test_hooks_t *hooks)
{
    test_door_t door = {0};
    int rc = -1;
    hooks->hold = true;
    S_CHECK(s_test_publish(server, "held", (const char *[]){"x", NULL}, 0) == BROKER_OK);
    hooks->hold = false;
    S_CHECK(s_test_consumer(server, &door, "held", "c", 5) && door.delivered == 0);
    broker_server_topic_release(server, "held", 0);
    S_CHECK(door.delivered == 1);
    broker_stats_t *stats = broker_server_stats(server, "", "");
    S_CHECK(stats && stats->topic_count == 2 && streq(stats->topics[0].name, "held")
            && streq(stats->topics[1].name, "t") && stats->topics[0].channels[0].client_count == 1);
    broker_stats_destroy(&stats);
    stats = broker_server_stats(server, "t", "none");
    S_CHECK(stats && stats->topic_count == 1 && stats->topics[0].channel_count == 0);
    broker_stats_destroy(&stats);
    rc = 0;
done:
    return rc;
}

// Offers count 100-byte messages to topic through the admission, as an
// HTTP thread does; returns the offer's result.
static int s_test_offer(broker_server_t *server, const char *topic, size_t count)
{
    nsq_message_t *batch[100];
    char body[100];
    memset(body, 'a', sizeof body);
    for (size_t i = 0; i < count; i++)
        batch[i] = nsq_message_new(body, sizeof body);
    int rc = broker_admission_offer(broker_server_admission(server), topic, batch, count);
    for (size_t i = 0; i < count; i++)
        nsq_message_unref(&batch[i]);  // NULL when admitted
    return rc;
}

// Publishes admitted on other threads reach their topic; the credit stays
// within the topic's memory however often it is topped up (it once
// reserved its bytes anew at each top-up, until publishes spilled to disk
// long before memory was full); persisting takes the admitted ones first.
static int s_test_admission(const char *dir)
{
    broker_config_t config;
    broker_config_for_test(&config, dir, 100000, 8 << 20);
    broker_server_t *server = broker_server_new(&config, NULL);
    broker_stats_t *stats = NULL;
    int rc = -1;
    S_CHECK(server && s_test_offer(server, "a", 1) != 0);  // no credit before a publish
    S_CHECK(s_test_publish(server, "a", (const char *[]){"x", NULL}, 0) == BROKER_OK);
    broker_server_grant(server, "a");
    for (int round = 0; round < 300; round++) {
        S_CHECK(s_test_offer(server, "a", 100) == 0);
        S_CHECK(broker_server_admit(server) == 100);
    }
    S_CHECK(s_test_publish(server, "a", (const char *[]){"y", NULL}, 0) == BROKER_OK);
    stats = broker_server_stats(server, "a", "");
    S_CHECK(stats && stats->topics[0].depth == 30002 && stats->topics[0].backend_depth == 0);
    // Persist takes what was admitted (answered 200) and admits nothing after.
    S_CHECK(s_test_offer(server, "a", 5) == 0);
    S_CHECK(broker_server_persist(server, 0) == 0 && s_test_offer(server, "a", 1) != 0);
    broker_stats_destroy(&stats);
    stats = broker_server_stats(server, "a", "");
    S_CHECK(stats && stats->topics[0].depth == 30007);
    S_CHECK(broker_server_topic(server, BROKER_DELETE, "a", 1, 0) == BROKER_OK);
    rc = 0;
done:
    broker_stats_destroy(&stats);
    broker_server_destroy(&server);
    return rc;
}

int broker_server_test(void)
{
    broker_config_t config;
    broker_config_for_test(&config, "", 2, 0);  // memory only
    config.max_msg_size = 10;
    config.max_body_size = 15;
    config.max_rdy_count = 100;
    config.heartbeat_interval_ms = 1000;
    test_hooks_t seen = {0};
    broker_server_hooks_t hooks = {.arg = &seen,
                                   .topic_created = s_test_topic_created,
                                   .topic_deleted = s_test_topic_deleted,
                                   .state_changed = s_test_changed};
    broker_server_t *server = broker_server_new(&config, &hooks);
    int rc = -1;
    S_CHECK(server);
    S_CHECK(s_test_publishing(server) == 0 && seen.created == 1 && seen.changed > 0);
    S_CHECK(s_test_consuming(server) == 0);
    S_CHECK(s_test_admin(server, &seen) == 0);
    broker_server_destroy(&server);
    server = broker_server_new(&config, &hooks);
    S_CHECK(server && s_test_liveness(server) == 0 && s_test_hold_and_stats(server, &seen) == 0);
    broker_server_destroy(&server);
    // Durable without a syncer: the wait is answered at once, with a failure.
    char dir[] = "/tmp/broker-server-test-XXXXXX";
    S_CHECK(mkdtemp(dir));
    snprintf(config.data_path, sizeof config.data_path, "%s", dir);
    config.durable = true;
    server = broker_server_new(&config, NULL);
    S_CHECK(server
            && s_test_publish(server, "d", (const char *[]){"x", NULL}, 0) == BROKER_PENDING);
    broker_server_wait_durable(server, s_test_on_durable, NULL);
    S_CHECK(s_test_durable_result == BROKER_SYNC_FAILED);
    S_CHECK(broker_server_topic(server, BROKER_DELETE, "d", 1, 0) == BROKER_OK);
    broker_server_destroy(&server);
    S_CHECK(s_test_admission(dir) == 0);
    S_CHECK(rmdir(dir) == 0);
    rc = 0;
done:
    broker_server_destroy(&server);
    broker_server_destroy(&server);  // NULL is accepted
    return rc;
}
