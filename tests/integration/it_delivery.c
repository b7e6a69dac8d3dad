/*  it_delivery - credit, timeouts, REQ, TOUCH, dead consumers, defer, pause, ephemeral
    SPDX-License-Identifier: MIT

    The delivery guarantees users build on: a consumer never holds more than
    its credit; an unsettled message comes back (attempts + 1) after its
    timeout, after REQ's delay, or when its consumer dies, and not while it
    is being touched; deferred and paused messages wait; ephemeral channels
    vanish with their last consumer; SIGTERM ends the broker with status 0.

    Negative conditions ("nothing more arrives") are checked over a bounded
    window; everything else is polled against a deadline. The helper mode
    `it_delivery --child-consumer ADDRESS TOPIC CHANNEL CREDIT` is the
    consumer that the killed_consumer case SIGKILLs.
*/
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_wait_clients(it_broker_t *broker, it_sink_t *sink, const char *topic,
                           const char *channel, int64_t clients)
{
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, topic, channel, "client_count") == clients,
                     5000, "%s/%s never showed client_count %lld in /stats", topic, channel,
                     (long long) clients);
}

// Pumps the sink for milliseconds; a bounded window for "nothing happens".
static void s_pump_for(it_sink_t *sink, int milliseconds)
{
    int64_t end = it_now_ms() + milliseconds;
    while (it_now_ms() < end)
        it_sink_pump(&sink, 1, 20);
}

static void s_credit(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, "credit", "one", 1, false);
    s_wait_clients(broker, sink, "credit", "one", 1);
    for (int index = 0; index < 10; index++) {
        char body[16];
        snprintf(body, sizeof body, "credit-%d", index);
        it_pub(broker, "credit", body);
    }
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "no message arrived");
    s_pump_for(sink, 1000);
    IT_ASSERT(it_sink_count(sink) == 1, "max_in_flight 1 but %zu messages arrived unsettled",
              it_sink_count(sink));
    IT_ASSERT_INT(it_channel_stat(broker, "credit", "one", "in_flight_count"), ==, 1);
    it_sink_fin(sink, 0);
    IT_ASSERT(it_sink_wait(sink, 2, 5000), "after FIN the next message did not arrive");
    s_pump_for(sink, 300);
    IT_ASSERT(it_sink_count(sink) == 2, "after one FIN, %zu messages arrived (want 2)",
              it_sink_count(sink));
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "credit", "one", "depth") == 8, 5000,
                         "channel depth is not 8 with 2 of 10 delivered");
    it_sink_fin(sink, 1);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Holds one message past a 1 s timeout and checks its redelivery.
static void s_check_redelivery(it_broker_t *broker, it_sink_t *sink, const char *topic,
                               const char *channel)
{
    it_pub(broker, topic, "slow");
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "the message did not arrive");
    IT_ASSERT(it_sink_wait(sink, 2, 6000),
              "a message held past its 1 s timeout was not redelivered");
    it_delivery_t *first = it_sink_get(sink, 0), *again = it_sink_get(sink, 1);
    IT_ASSERT_STR(again->id, first->id);
    IT_ASSERT_STR(again->body, "slow");
    IT_ASSERT_INT(first->attempts, ==, 1);
    IT_ASSERT_INT(again->attempts, ==, 2);
    IT_ASSERT(again->at_ms - first->at_ms >= 900,
              "redelivered after %lld ms, before the 1 s timeout",
              (long long) (again->at_ms - first->at_ms));
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, topic, channel, "timeout_count") >= 1, 5000,
                         "/stats timeout_count did not count the timeout");
    it_sink_fin(sink, 1);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, topic, channel, "in_flight_count") == 0,
                     5000, "the redelivered message stays in flight after FIN");
}

static void s_timeout_redelivery(void)
{
    const char *flags[] = {"--msg-timeout=1s", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_sink_t *sink = it_sink_new(broker, "slow", "c", 1, false);
    s_wait_clients(broker, sink, "slow", "c", 1);
    s_check_redelivery(broker, sink, "slow", "c");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_timeout_from_identify(void)
{
    it_broker_t *broker = it_broker_start(NULL);  // broker default: 60 s
    it_sink_t *sink = it_sink_new_msg_timeout(broker, "slow", "c", 1, false, 1000);
    s_wait_clients(broker, sink, "slow", "c", 1);
    s_check_redelivery(broker, sink, "slow", "c");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_req_delay(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, "retry", "c", 1, false);
    s_wait_clients(broker, sink, "retry", "c", 1);
    it_pub(broker, "retry", "again");
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "the message did not arrive");
    int64_t requeued_at = it_now_ms();
    it_sink_req(sink, 0, 1500);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "retry", "c", "deferred_count") == 1, 1000,
                     "a REQ with delay is not counted in deferred_count");
    IT_ASSERT(it_sink_wait(sink, 2, 6000), "the requeued message never came back");
    it_delivery_t *first = it_sink_get(sink, 0), *again = it_sink_get(sink, 1);
    IT_ASSERT_STR(again->id, first->id);
    IT_ASSERT_INT(again->attempts, ==, 2);
    IT_ASSERT(again->at_ms - requeued_at >= 1500, "redelivered %lld ms after REQ 1500 ms",
              (long long) (again->at_ms - requeued_at));
    IT_ASSERT_INT(it_channel_stat(broker, "retry", "c", "requeue_count"), >=, 1);
    it_sink_fin(sink, 1);
    IT_ASSERT_PUMPED(&sink, 1,
                     it_channel_stat(broker, "retry", "c", "in_flight_count") == 0
                         && it_channel_stat(broker, "retry", "c", "deferred_count") == 0,
                     5000, "requeued message still counted after FIN");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_touch(void)
{
    const char *flags[] = {"--msg-timeout=1s", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_sink_t *sink = it_sink_new(broker, "long", "c", 1, false);
    s_wait_clients(broker, sink, "long", "c", 1);
    it_pub(broker, "long", "keep-me");
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "the message did not arrive");
    int64_t end = it_now_ms() + 2500, next_touch = it_now_ms() + 300;
    while (it_now_ms() < end) {
        if (it_now_ms() >= next_touch) {
            it_sink_touch(sink, 0);
            next_touch += 300;
        }
        it_sink_pump(&sink, 1, 20);
    }
    IT_ASSERT(it_sink_count(sink) == 1, "touched every 300 ms with a 1 s timeout, yet redelivered");
    IT_ASSERT_INT(it_channel_stat(broker, "long", "c", "timeout_count"), ==, 0);
    it_sink_fin(sink, 0);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "long", "c", "in_flight_count") == 0, 5000,
                     "touched message still in flight after FIN");
    s_pump_for(sink, 1200);
    IT_ASSERT(it_sink_count(sink) == 1, "a FINed message came back");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Helper process: consumes with the client API and never settles; prints
// "GOT body" for each message. Ends by itself after 60 s at the latest.
static void s_child_handler(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    (void) consumer;
    (void) arg;
    printf("GOT %.*s\n", (int) nsq_msg_size(msg), (const char *) nsq_msg_body(msg));
    fflush(stdout);
}

static int s_child_consumer(char **argv)
{
    nsq_consumer_t *consumer = nsq_consumer_new(argv[3], argv[4]);
    if (!consumer)
        return 2;
    nsq_consumer_set_handler(consumer, s_child_handler, NULL);
    nsq_consumer_set_max_in_flight(consumer, (uint32_t) atoi(argv[5]));
    if (nsq_consumer_connect(consumer, argv[2]) != 0)
        return 3;
    int64_t end = it_now_ms() + 60000;
    while (it_now_ms() < end)
        nsq_consumer_poll(consumer, 100);
    nsq_consumer_destroy(&consumer);
    return 0;
}

static void s_killed_consumer(void)
{
    const char *flags[] = {"--msg-timeout=3s", "--heartbeat-interval=1s", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_post_ok(broker, "/channel/create?topic=crash&channel=c");
    const char *argv[] = {
        it_self_path(), "--child-consumer", it_broker_zmq(broker), "crash", "c", "5", NULL};
    it_child_t *child = it_child_start("consumer", argv);
    for (int index = 0; index < 5; index++) {
        char body[16];
        snprintf(body, sizeof body, "crash-%d", index);
        it_pub(broker, "crash", body);
    }
    for (int got = 0; got < 5; got++) {
        char line[64];
        IT_ASSERT(it_child_read_line(child, line, sizeof line, 10000) == 1,
                  "the child consumer received only %d of 5", got);
    }
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "crash", "c", "in_flight_count") == 5, 5000,
                         "the child's 5 messages are not in flight");
    it_sink_t *sink = it_sink_new(broker, "crash", "c", 10, true);
    s_wait_clients(broker, sink, "crash", "c", 2);
    IT_ASSERT_INT(it_child_stop(&child, SIGKILL, 5000), ==, 128 + SIGKILL);
    IT_ASSERT(it_sink_wait(sink, 5, 15000),
              "only %zu of the killed consumer's 5 messages reached the other consumer",
              it_sink_count(sink));
    for (size_t index = 0; index < 5; index++) {
        it_delivery_t *delivery = it_sink_get(sink, index);
        IT_ASSERT(strncmp(delivery->body, "crash-", 6) == 0, "unexpected body %s", delivery->body);
        IT_ASSERT_INT(delivery->attempts, ==, 2);
    }
    for (int index = 0; index < 5; index++) {
        char body[16];
        snprintf(body, sizeof body, "crash-%d", index);
        IT_ASSERT_INT(it_sink_count_body(sink, body), ==, 1);
    }
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A consumer that closes cleanly tells the broker, which requeues what it
// held at once: with the default 60 s timeout and 30 s heartbeats, the other
// consumer still gets the messages within seconds, and /stats forgets it.
static void s_closed_consumer(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *holder = it_sink_new(broker, "bye", "c", 3, false);
    s_wait_clients(broker, holder, "bye", "c", 1);
    for (int index = 0; index < 3; index++)
        it_pub(broker, "bye", "held");
    IT_ASSERT(it_sink_wait(holder, 3, 5000), "the first consumer did not get its 3 messages");
    it_sink_t *other = it_sink_new(broker, "bye", "c", 10, true);
    s_wait_clients(broker, other, "bye", "c", 2);
    it_sink_destroy(&holder);
    IT_ASSERT(it_sink_wait(other, 3, 5000),
              "only %zu of the closed consumer's 3 messages reached the other one within 5 s",
              it_sink_count(other));
    for (size_t index = 0; index < 3; index++)
        IT_ASSERT_INT(it_sink_get(other, index)->attempts, ==, 2);
    s_wait_clients(broker, other, "bye", "c", 1);
    IT_ASSERT_INT(it_channel_stat(broker, "bye", "c", "timeout_count"), ==, 0);
    it_sink_destroy(&other);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A broker restarted on the same address: the consumer notices the lost
// connection and subscribes again within seconds, not after its heartbeat
// interval (30 s by default).
static void s_broker_restart(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char zmq_flag[96];
    snprintf(zmq_flag, sizeof zmq_flag, "--zmq-address=%s", it_broker_zmq(broker));
    it_sink_t *sink = it_sink_new(broker, "again", "c", 10, true);
    s_wait_clients(broker, sink, "again", "c", 1);
    it_pub(broker, "again", "before");
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "nothing arrived before the restart");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    const char *flags[] = {zmq_flag, NULL};
    broker = it_broker_start(flags);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "again", "c", "client_count") == 1, 5000,
                     "the consumer did not subscribe to the restarted broker within 5 s");
    it_pub(broker, "again", "after");
    IT_ASSERT(it_sink_wait(sink, 2, 5000), "nothing arrived after the restart");
    IT_ASSERT_STR(it_sink_get(sink, 1)->body, "after");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// /mpub?defer= holds every message of the batch back like /pub's defer
// (text and binary framing), within the same bounds.
static void s_mpub_defer(void)
{
    const char *flags[] = {"--max-req-timeout=5s", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_sink_t *sink = it_sink_new(broker, "batch", "c", 10, true);
    s_wait_clients(broker, sink, "batch", "c", 1);
    it_http_expect(broker, "POST", "/mpub?topic=batch&defer=-1", "x\ny", 3, 400, "INVALID_DEFER");
    it_http_expect(broker, "POST", "/mpub?topic=batch&defer=5001", "x\ny", 3, 400, "INVALID_DEFER");
    it_http_expect(broker, "POST", "/mpub?topic=batch&defer=1s", "x\ny", 3, 400, "INVALID_DEFER");
    const char *bodies[] = {"binary-1", "binary-2"};
    size_t size;
    char *binary = it_mpub_binary(2, bodies, 2, &size);
    int64_t published_at = it_now_ms();
    it_http_expect(broker, "POST", "/mpub?topic=batch&defer=1000", "text-1\ntext-2", 13, 200, NULL);
    it_http_expect(broker, "POST", "/mpub?topic=batch&binary=true&defer=1000", binary, size, 200,
                   NULL);
    free(binary);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "batch", "c", "deferred_count") == 4, 700,
                     "an /mpub with defer is not counted in deferred_count");
    while (it_now_ms() < published_at + 900)
        it_sink_pump(&sink, 1, 20);
    IT_ASSERT(it_sink_count(sink) == 0,
              "a message of an /mpub deferred by 1000 ms arrived after %lld ms",
              (long long) (it_sink_get(sink, 0)->at_ms - published_at));
    IT_ASSERT(it_sink_wait(sink, 4, 5000), "only %zu of 4 deferred /mpub messages arrived",
              it_sink_count(sink));
    const char *expected[] = {"text-1", "text-2", "binary-1", "binary-2"};
    for (size_t i = 0; i < 4; i++) {
        IT_ASSERT_INT(it_sink_count_body(sink, expected[i]), ==, 1);
        IT_ASSERT(it_sink_get(sink, i)->at_ms - published_at >= 990,
                  "deferred 1000 ms, came after %lld",
                  (long long) (it_sink_get(sink, i)->at_ms - published_at));
    }
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_defer(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, "later", "c", 10, true);
    s_wait_clients(broker, sink, "later", "c", 1);
    int64_t published_at = it_now_ms();
    it_http_expect(broker, "POST", "/pub?topic=later&defer=1000", "deferred", 8, 200, NULL);
    IT_ASSERT_PUMPED(&sink, 1, it_channel_stat(broker, "later", "c", "deferred_count") == 1, 700,
                     "a deferred message is not counted in deferred_count");
    while (it_now_ms() < published_at + 900)
        it_sink_pump(&sink, 1, 20);
    IT_ASSERT(it_sink_count(sink) == 0, "a message deferred by 1000 ms arrived after %lld ms",
              (long long) (it_sink_get(sink, 0)->at_ms - published_at));
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "the deferred message never arrived");
    IT_ASSERT_STR(it_sink_get(sink, 0)->body, "deferred");
    IT_ASSERT(it_sink_get(sink, 0)->at_ms - published_at >= 990,
              "deferred 1000 ms, came after %lld",
              (long long) (it_sink_get(sink, 0)->at_ms - published_at));
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "later", "c", "deferred_count") == 0, 5000,
                         "deferred_count stays above 0 after delivery");
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Pauses with pause_path, publishes 5, checks nothing arrives, unpauses.
static void s_check_pause(const char *topic, const char *pause_path, const char *unpause_path,
                          bool channel_level)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, topic, "c", 10, true);
    s_wait_clients(broker, sink, topic, "c", 1);
    it_post_ok(broker, pause_path);
    IT_ASSERT_EVENTUALLY((channel_level ? it_channel_stat(broker, topic, "c", "paused")
                                        : it_topic_stat(broker, topic, "paused"))
                             == 1,
                         5000, "/stats does not show paused after %s", pause_path);
    for (int index = 0; index < 5; index++)
        it_pub(broker, topic, "while-paused");
    s_pump_for(sink, 700);
    IT_ASSERT(it_sink_count(sink) == 0, "%zu messages delivered while paused (%s)",
              it_sink_count(sink), pause_path);
    it_post_ok(broker, unpause_path);
    IT_ASSERT(it_sink_wait(sink, 5, 5000), "after %s only %zu of 5 arrived", unpause_path,
              it_sink_count(sink));
    IT_ASSERT_EVENTUALLY((channel_level ? it_channel_stat(broker, topic, "c", "paused")
                                        : it_topic_stat(broker, topic, "paused"))
                             == 0,
                         5000, "/stats still shows paused after %s", unpause_path);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_pause_channel(void)
{
    s_check_pause("pausech", "/channel/pause?topic=pausech&channel=c",
                  "/channel/unpause?topic=pausech&channel=c", true);
}

static void s_pause_topic(void)
{
    s_check_pause("pausetp", "/topic/pause?topic=pausetp", "/topic/unpause?topic=pausetp", false);
}

static void s_ephemeral_channel(void)
{
    const char *flags[] = {"--heartbeat-interval=1s", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_sink_t *sinks[2] = {it_sink_new(broker, "eph", "gone#ephemeral", 10, true),
                           it_sink_new(broker, "eph", "stays", 10, true)};
    s_wait_clients(broker, sinks[0], "eph", "gone#ephemeral", 1);
    s_wait_clients(broker, sinks[1], "eph", "stays", 1);
    it_pub(broker, "eph", "hello");
    IT_ASSERT(it_sink_wait(sinks[0], 1, 5000), "the ephemeral channel's consumer got nothing");
    IT_ASSERT(it_sink_wait(sinks[1], 1, 5000), "the durable channel's consumer got nothing");
    for (int index = 0; index < 2; index++) {
        nsq_consumer_close(it_sink_consumer(sinks[index]), 2000);
        it_sink_destroy(&sinks[index]);
    }
    IT_ASSERT_EVENTUALLY(!it_channel_exists(broker, "eph", "gone#ephemeral"), 10000,
                         "the ephemeral channel outlived its last consumer");
    IT_ASSERT(it_channel_exists(broker, "eph", "stays"),
              "a durable channel vanished with its consumer");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_sigterm(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, "busy", "c", 5, false);
    s_wait_clients(broker, sink, "busy", "c", 1);
    for (int index = 0; index < 8; index++)
        it_pub(broker, "busy", "pending");
    IT_ASSERT(it_sink_wait(sink, 5, 5000), "messages did not arrive");
    int64_t start = it_now_ms();
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);  // with 5 in flight and 3 queued
    it_note("SIGTERM to exit took %lld ms", (long long) (it_now_ms() - start));
    it_sink_destroy(&sink);
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--child-consumer") == 0)
        return s_child_consumer(argv);
    const it_case_t cases[] = {
        {"credit", s_credit},
        {"timeout_redelivery", s_timeout_redelivery},
        {"timeout_from_identify", s_timeout_from_identify},
        {"req_delay", s_req_delay},
        {"touch", s_touch},
        {"killed_consumer", s_killed_consumer},
        {"closed_consumer", s_closed_consumer},
        {"broker_restart", s_broker_restart},
        {"defer", s_defer},
        {"mpub_defer", s_mpub_defer},
        {"pause_channel", s_pause_channel},
        {"pause_topic", s_pause_topic},
        {"ephemeral_channel", s_ephemeral_channel},
        {"sigterm", s_sigterm},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
