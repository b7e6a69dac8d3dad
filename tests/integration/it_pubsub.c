/*  it_pubsub - publish over HTTP and ZeroMQ, consume with the client API and nsq-worker
    SPDX-License-Identifier: MIT

    What users rely on first: a published message reaches a consumer, every
    channel gets every message (fan-out), consumers of one channel share its
    messages without duplicates (load balancing), and nsq-worker --stdout
    prints what it consumes. Each case starts its own broker.
*/
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Pumps sinks until the channel reports clients subscribers, so that what is
// published next is shared among all of them.
static void s_wait_clients(it_broker_t *broker, it_sink_t **sinks, size_t count, const char *topic,
                           const char *channel, int64_t clients)
{
    IT_ASSERT_PUMPED(
        sinks, count, it_channel_stat(broker, topic, channel, "client_count") == clients, 5000,
        "%s/%s never showed client_count %lld in /stats", topic, channel, (long long) clients);
}

static int64_t s_wall_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}

// Publishes count bodies "PREFIX-NNNN" with binary /mpub in batches of 100.
static void s_publish_numbered(it_broker_t *broker, const char *topic, const char *prefix,
                               size_t count)
{
    char path[128];
    snprintf(path, sizeof path, "/mpub?topic=%s&binary=true", topic);
    char storage[100][32];
    const char *bodies[100];
    for (size_t first = 0; first < count; first += 100) {
        size_t batch = count - first < 100 ? count - first : 100;
        for (size_t index = 0; index < batch; index++) {
            snprintf(storage[index], sizeof storage[index], "%s-%04zu", prefix, first + index);
            bodies[index] = storage[index];
        }
        size_t size;
        char *body = it_mpub_binary((uint32_t) batch, bodies, batch, &size);
        it_http_expect(broker, "POST", path, body, size, 200, NULL);
        free(body);
    }
}

// Counts, per number, how often "PREFIX-NNNN" was delivered to the sinks.
static void s_tally(it_sink_t **sinks, size_t sink_count, const char *prefix, int *seen,
                    size_t count)
{
    memset(seen, 0, count * sizeof *seen);
    size_t prefix_length = strlen(prefix);
    for (size_t s = 0; s < sink_count; s++) {
        for (size_t index = 0; index < it_sink_count(sinks[s]); index++) {
            const char *body = it_sink_get(sinks[s], index)->body;
            IT_ASSERT(strncmp(body, prefix, prefix_length) == 0, "unexpected body %s", body);
            size_t number = strtoul(body + prefix_length + 1, NULL, 10);
            IT_ASSERT(number < count, "unexpected body %s", body);
            seen[number]++;
        }
    }
}

static void s_assert_each_once(const int *seen, size_t count, const char *who)
{
    for (size_t number = 0; number < count; number++)
        IT_ASSERT(seen[number] == 1, "%s got message %zu %d times (want exactly once)", who, number,
                  seen[number]);
}

static void s_ping(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char *reply = NULL;
    IT_ASSERT_INT(it_http(broker, "GET", "/ping", NULL, 0, &reply), ==, 200);
    IT_ASSERT(strncmp(reply, "OK", 2) == 0, "/ping body: %s", reply);
    free(reply);
    IT_ASSERT_INT(it_http(broker, "GET", "/info", NULL, 0, &reply), ==, 200);
    IT_ASSERT(it_json_get(reply, "version"), "/info has no version: %.300s", reply);
    free(reply);
    char *stats = it_stats(broker);
    IT_ASSERT(stats, "GET /stats?format=json failed");
    IT_ASSERT(it_json_get(stats, "version") && it_json_get(stats, "topics"),
              "/stats lacks version or topics: %.300s", stats);
    free(stats);
    IT_ASSERT_INT(it_http(broker, "GET", "/metrics", NULL, 0, NULL), ==, 200);
    it_post_ok(broker, "/channel/create?topic=first&channel=c1");
    it_post_ok(broker, "/channel/create?topic=first&channel=c2");
    it_post_ok(broker, "/topic/create?topic=second");
    IT_ASSERT_INT(
        it_http(broker, "GET", "/stats?format=json&topic=first&channel=c2", NULL, 0, &reply), ==,
        200);
    const char *topics = it_json_get(reply, "topics");
    const char *first = it_json_find(topics, "topic_name", "first");
    IT_ASSERT(first && !it_json_find(topics, "topic_name", "second"),
              "/stats?topic=first does not filter topics: %.400s", reply);
    const char *channels = it_json_get(first, "channels");
    IT_ASSERT(it_json_find(channels, "channel_name", "c2")
                  && !it_json_find(channels, "channel_name", "c1"),
              "/stats?channel=c2 does not filter channels: %.400s", reply);
    free(reply);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_http_publish(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", 10, true);
    s_wait_clients(broker, &sink, 1, "orders", "billing", 1);
    int64_t before_ns = s_wall_ns();
    it_pub(broker, "orders", "hello");
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "the message published with /pub never arrived");
    it_delivery_t *first = it_sink_get(sink, 0);
    IT_ASSERT_STR(first->body, "hello");
    IT_ASSERT_INT(first->attempts, ==, 1);
    IT_ASSERT_INT(strlen(first->id), ==, 16);
    IT_ASSERT(first->timestamp >= before_ns - 5000000000LL
                  && first->timestamp <= s_wall_ns() + 5000000000LL,
              "timestamp %lld is not near now", (long long) first->timestamp);

    it_http_expect(broker, "POST", "/mpub?topic=orders", "one\ntwo\nthree\n", 14, 200, NULL);
    const char *bodies[] = {"bin-a", "bin-b"};
    size_t size;
    char *binary = it_mpub_binary(2, bodies, 2, &size);
    it_http_expect(broker, "POST", "/mpub?topic=orders&binary=true", binary, size, 200, NULL);
    free(binary);
    IT_ASSERT(it_sink_wait(sink, 6, 5000), "only %zu of 6 messages arrived", it_sink_count(sink));
    const char *expected[] = {"one", "two", "three", "bin-a", "bin-b"};
    for (size_t index = 0; index < 5; index++)
        IT_ASSERT_INT(it_sink_count_body(sink, expected[index]), ==, 1);
    IT_ASSERT(strcmp(it_sink_get(sink, 1)->id, first->id) != 0, "two messages share an id");

    IT_ASSERT_EVENTUALLY(it_topic_stat(broker, "orders", "message_count") == 6, 5000,
                         "topic message_count is not 6");
    IT_ASSERT_PUMPED(&sink, 1,
                     it_channel_stat(broker, "orders", "billing", "in_flight_count") == 0
                         && it_channel_stat(broker, "orders", "billing", "depth") == 0,
                     5000, "FINed messages still counted in flight or in depth");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_topic_holds_until_first_channel(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_pub(broker, "early", "before-any-channel");
    IT_ASSERT_EVENTUALLY(it_topic_stat(broker, "early", "depth") == 1, 5000,
                         "a topic without channels does not hold its message (depth != 1)");
    it_sink_t *sink = it_sink_new(broker, "early", "late", 1, true);
    IT_ASSERT(it_sink_wait(sink, 1, 5000),
              "a message published before the first channel existed was not delivered");
    IT_ASSERT_STR(it_sink_get(sink, 0)->body, "before-any-channel");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_zmq_publish(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, "events", "audit", 10, true);
    s_wait_clients(broker, &sink, 1, "events", "audit", 1);
    nsq_producer_t *producer = nsq_producer_new(it_broker_zmq(broker));
    IT_ASSERT(producer, "nsq_producer_new(%s) returned NULL", it_broker_zmq(broker));
    IT_ASSERT(nsq_producer_publish(producer, "events", "zmq-one", 7) == 0,
              "nsq_producer_publish: %s", nsq_producer_error(producer));
    const void *bodies[] = {"zmq-a", "zmq-b", "zmq-c"};
    const size_t sizes[] = {5, 5, 5};
    IT_ASSERT(nsq_producer_mpublish(producer, "events", bodies, sizes, 3) == 0,
              "nsq_producer_mpublish: %s", nsq_producer_error(producer));
    IT_ASSERT(nsq_producer_publish(producer, "bad!topic", "x", 1) == -1,
              "publishing to an invalid topic succeeded");
    IT_ASSERT_STR(nsq_producer_error(producer), "E_BAD_TOPIC");
    IT_ASSERT(nsq_producer_publish(producer, "events", "zmq-after-error", 15) == 0,
              "the producer is unusable after an error: %s", nsq_producer_error(producer));
    IT_ASSERT(it_sink_wait(sink, 5, 5000), "only %zu of 5 messages published over ZeroMQ arrived",
              it_sink_count(sink));
    const char *expected[] = {"zmq-one", "zmq-a", "zmq-b", "zmq-c", "zmq-after-error"};
    for (size_t index = 0; index < 5; index++)
        IT_ASSERT_INT(it_sink_count_body(sink, expected[index]), ==, 1);
    nsq_producer_destroy(&producer);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_fan_out(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sinks[2] = {it_sink_new(broker, "news", "left", 50, true),
                           it_sink_new(broker, "news", "right", 50, true)};
    s_wait_clients(broker, sinks, 2, "news", "left", 1);
    s_wait_clients(broker, sinks, 2, "news", "right", 1);
    s_publish_numbered(broker, "news", "fan", 200);
    IT_ASSERT_PUMPED(sinks, 2, it_sink_count(sinks[0]) >= 200 && it_sink_count(sinks[1]) >= 200,
                     10000, "fan-out: left got %zu, right got %zu of 200", it_sink_count(sinks[0]),
                     it_sink_count(sinks[1]));
    int64_t settle = it_now_ms() + 300;  // bounded: anything extra would be a duplicate
    while (it_now_ms() < settle)
        it_sink_pump(sinks, 2, 20);
    int seen[200];
    s_tally(&sinks[0], 1, "fan", seen, 200);
    s_assert_each_once(seen, 200, "channel left");
    s_tally(&sinks[1], 1, "fan", seen, 200);
    s_assert_each_once(seen, 200, "channel right");
    it_sink_destroy(&sinks[0]);
    it_sink_destroy(&sinks[1]);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_load_balance(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sinks[2] = {it_sink_new(broker, "jobs", "workers", 20, true),
                           it_sink_new(broker, "jobs", "workers", 20, true)};
    s_wait_clients(broker, sinks, 2, "jobs", "workers", 2);
    s_publish_numbered(broker, "jobs", "job", 1000);
    IT_ASSERT_PUMPED(sinks, 2, it_sink_count(sinks[0]) + it_sink_count(sinks[1]) >= 1000, 15000,
                     "load balancing: %zu + %zu of 1000 arrived", it_sink_count(sinks[0]),
                     it_sink_count(sinks[1]));
    int64_t settle = it_now_ms() + 300;  // bounded: anything extra would be a duplicate
    while (it_now_ms() < settle)
        it_sink_pump(sinks, 2, 20);
    int seen[1000];
    s_tally(sinks, 2, "job", seen, 1000);
    s_assert_each_once(seen, 1000, "channel workers");
    it_note("consumer 1 got %zu, consumer 2 got %zu", it_sink_count(sinks[0]),
            it_sink_count(sinks[1]));
    IT_ASSERT(it_sink_count(sinks[0]) > 0 && it_sink_count(sinks[1]) > 0,
              "one consumer got everything: %zu vs %zu", it_sink_count(sinks[0]),
              it_sink_count(sinks[1]));
    IT_ASSERT_PUMPED(sinks, 2,
                     it_channel_stat(broker, "jobs", "workers", "depth") == 0
                         && it_channel_stat(broker, "jobs", "workers", "in_flight_count") == 0,
                     5000, "channel not drained after every FIN");
    IT_ASSERT_INT(it_channel_stat(broker, "jobs", "workers", "requeue_count"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "jobs", "workers", "timeout_count"), ==, 0);
    it_sink_destroy(&sinks[0]);
    it_sink_destroy(&sinks[1]);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_worker_stdout(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_post_ok(broker, "/channel/create?topic=prints&channel=stdout");
    it_pub(broker, "prints", "line-one");
    it_pub(broker, "prints", "line-two");
    it_pub(broker, "prints", "line-three");
    const char *flags[] = {"--max-in-flight=10", NULL};
    it_child_t *worker = it_worker_start(broker, "prints", "stdout", flags);
    const char *expected[] = {"line-one", "line-two", "line-three"};
    bool seen[3] = {false, false, false};
    for (size_t got = 0; got < 3; got++) {
        char line[256];
        int status = it_child_read_line(worker, line, sizeof line, 10000);
        IT_ASSERT(status == 1, "nsq-worker printed %zu of 3 lines (read status %d)", got, status);
        bool known = false;
        for (size_t index = 0; index < 3; index++) {
            if (strcmp(line, expected[index]) == 0) {
                IT_ASSERT(!seen[index], "nsq-worker printed %s twice", line);
                seen[index] = known = true;
            }
        }
        IT_ASSERT(known, "nsq-worker printed an unexpected line: %s", line);
    }
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "prints", "stdout", "in_flight_count") == 0
                             && it_channel_stat(broker, "prints", "stdout", "depth") == 0,
                         5000, "nsq-worker did not FIN what it printed");
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"ping", s_ping},
        {"http_publish", s_http_publish},
        {"topic_holds_until_first_channel", s_topic_holds_until_first_channel},
        {"zmq_publish", s_zmq_publish},
        {"fan_out", s_fan_out},
        {"load_balance", s_load_balance},
        {"worker_stdout", s_worker_stdout},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
