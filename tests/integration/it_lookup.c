/*  it_lookup - nsq-lookupd, broker registration and consumer discovery
    SPDX-License-Identifier: MIT

    What users rely on when they scale out: a consumer given only lookupd
    addresses finds every broker that holds its topic and receives every
    message from all of them; brokers added later are found, stopped ones are
    dropped; a lookupd restart loses nothing (brokers register again) and
    consumers keep consuming while no lookupd answers; a tombstone hides a
    producer; a worker (and nsq-pub) find their brokers, and a worker whose
    topic does not exist yet is ready once a lookupd answers. Everything
    runs on 127.0.0.1 with short heartbeats and poll intervals so that each
    case takes seconds. Bad input and IPv6 are in it_lookup_input.c.
*/
#include "harness.h"
#include "it_lookup_util.h"
#include "nsq_address.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// True if lookupd lists broker (by its HTTP port) for topic.
static bool s_lists(it_broker_t *lookupd, const char *topic, it_broker_t *broker)
{
    char path[128], *reply = NULL, needle[64];
    snprintf(path, sizeof path, "/lookup?topic=%s", topic);
    snprintf(needle, sizeof needle, "\"http_port\":%s", strrchr(it_broker_http(broker), ':') + 1);
    bool listed = it_http(lookupd, "GET", path, NULL, 0, &reply) == 200 && strstr(reply, needle);
    free(reply);
    return listed;
}

// Publishes count bodies "PREFIX-N" (N from first) to topic on broker.
static void s_publish(it_broker_t *broker, const char *prefix, size_t first, size_t count)
{
    char path[128], storage[100][32];
    const char *bodies[100];
    snprintf(path, sizeof path, "/mpub?topic=%s&binary=true", LOOKUP_TOPIC);
    for (size_t done = 0; done < count; done += 100) {
        size_t batch = count - done < 100 ? count - done : 100;
        for (size_t i = 0; i < batch; i++) {
            snprintf(storage[i], sizeof storage[i], "%s-%zu", prefix, first + done + i);
            bodies[i] = storage[i];
        }
        size_t size;
        char *body = it_mpub_binary((uint32_t) batch, bodies, batch, &size);
        it_http_expect(broker, "POST", path, body, size, 200, NULL);
        free(body);
    }
}

// A consumer that counts the bodies it receives (auto-FIN).
typedef struct {
    nsq_consumer_t *consumer;
    zhashx_t *bodies;   // body -> count, as a pointer-sized integer
    size_t received;    // deliveries
    size_t duplicates;  // deliveries of a body seen before
} s_counter_t;

static void s_count(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_counter_t *self = arg;
    const char *body = nsq_msg_body(msg);
    size_t seen = (size_t) zhashx_lookup(self->bodies, body);
    if (seen)
        self->duplicates++;
    zhashx_update(self->bodies, body, (void *) (seen + 1));
    self->received++;
    nsq_consumer_fin(consumer, msg);
}

static s_counter_t *s_counter_new(it_broker_t *const *lookupds, uint32_t max_in_flight)
{
    s_counter_t *self = calloc(1, sizeof *self);
    IT_ASSERT(self, "out of memory");
    self->bodies = zhashx_new();
    self->consumer = nsq_consumer_new(LOOKUP_TOPIC, LOOKUP_CHANNEL);
    IT_ASSERT(self->consumer && self->bodies, "cannot create the consumer");
    nsq_consumer_set_handler(self->consumer, s_count, self);
    nsq_consumer_set_max_in_flight(self->consumer, max_in_flight);
    nsq_consumer_set_heartbeat_interval(self->consumer, 1000);
    nsq_consumer_set_lookupd_poll_interval(self->consumer, LOOKUP_POLL_MS);
    for (size_t i = 0; lookupds[i]; i++)
        IT_ASSERT_INT(nsq_consumer_connect_lookupd(self->consumer, it_broker_http(lookupds[i])), ==,
                      0);
    return self;
}

static void s_counter_destroy(s_counter_t **self_p)
{
    s_counter_t *self = *self_p;
    nsq_consumer_destroy(&self->consumer);
    zhashx_destroy(&self->bodies);
    free(self);
    *self_p = NULL;
}

// Runs the consumer for about milliseconds; returns true (for use in checks).
static bool s_pump(s_counter_t *self, int milliseconds)
{
    nsq_consumer_poll(self->consumer, milliseconds);
    return true;
}

// Checks that "PREFIX-N" for N < count all arrived exactly once.
static void s_assert_all_once(s_counter_t *self, const char *prefix, size_t count)
{
    for (size_t n = 0; n < count; n++) {
        char body[32];
        snprintf(body, sizeof body, "%s-%zu", prefix, n);
        size_t seen = (size_t) zhashx_lookup(self->bodies, body);
        IT_ASSERT(seen == 1, "%s arrived %zu times (want once)", body, seen);
    }
}

// Sum of the RDY counts the brokers' clients announced (one client each here).
static int64_t s_ready_sum(it_broker_t *const *brokers, size_t count)
{
    int64_t sum = 0;
    for (size_t b = 0; b < count; b++) {
        char *stats = it_stats(brokers[b]);
        IT_ASSERT(stats, "no /stats from a broker");
        for (const char *at = stats; (at = strstr(at, "\"ready_count\":")); at++)
            sum += atoll(at + strlen("\"ready_count\":"));
        free(stats);
    }
    return sum;
}

#define S_PUMP_UNTIL(counter, expr, timeout_ms, ...)                                               \
    IT_ASSERT_EVENTUALLY(s_pump((counter), 20) && (expr), timeout_ms, __VA_ARGS__)

// ---- cases --------------------------------------------------------------------

// Two lookupds, three brokers (the third registers with the second lookupd
// only): a consumer given both lookupds gets every message of all three.
static void s_discovery(void)
{
    it_broker_t *lookupds[] = {it_lookupd_start(NULL), it_lookupd_start(NULL), NULL};
    it_broker_t *both[] = {lookupds[0], lookupds[1], NULL};
    it_broker_t *second_only[] = {lookupds[1], NULL};
    it_broker_t *brokers[] = {lookup_broker(both), lookup_broker(both), lookup_broker(second_only)};
    for (size_t b = 0; b < 3; b++) {
        char prefix[8];
        snprintf(prefix, sizeof prefix, "b%zu", b);
        s_publish(brokers[b], prefix, 0, 200);
    }
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[1], LOOKUP_TOPIC) == 3, 5000,
                         "the second lookupd never listed all three brokers");
    IT_ASSERT_INT(lookup_producers(lookupds[0], LOOKUP_TOPIC), ==, 2);

    s_counter_t *counter = s_counter_new(lookupds, 10);
    S_PUMP_UNTIL(counter, counter->received >= 600, 10000, "only %zu of 600 messages arrived",
                 counter->received);
    IT_ASSERT_INT(nsq_consumer_connection_count(counter->consumer), ==, 3);
    // max-in-flight 10 over three brokers: 4 + 3 + 3, never more in total.
    S_PUMP_UNTIL(counter, s_ready_sum(brokers, 3) == 10, 3000, "RDY total is %lld, not 10",
                 (long long) s_ready_sum(brokers, 3));
    s_pump(counter, 200);
    IT_ASSERT_INT(counter->duplicates, ==, 0);
    s_assert_all_once(counter, "b0", 200);
    s_assert_all_once(counter, "b1", 200);
    s_assert_all_once(counter, "b2", 200);
    // The lookupd lists the channel the consumer created on the brokers.
    char *reply = NULL;
    IT_ASSERT_INT(it_http(lookupds[0], "GET", "/channels?topic=" LOOKUP_TOPIC, NULL, 0, &reply), ==,
                  200);
    IT_ASSERT(strstr(reply, "\"" LOOKUP_CHANNEL "\""), "/channels lacks the channel: %s", reply);
    free(reply);
    s_counter_destroy(&counter);
    for (size_t b = 0; b < 3; b++)
        IT_ASSERT_INT(it_broker_stop(&brokers[b]), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupds[0]), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupds[1]), ==, 0);
}

// Max-in-flight 1 across three brokers: credit rotates, none starves.
static void s_scarce_credit(void)
{
    it_broker_t *lookupds[] = {it_lookupd_start(NULL), NULL};
    it_broker_t *brokers[] = {lookup_broker(lookupds), lookup_broker(lookupds),
                              lookup_broker(lookupds)};
    for (size_t b = 0; b < 3; b++) {
        char prefix[8];
        snprintf(prefix, sizeof prefix, "b%zu", b);
        s_publish(brokers[b], prefix, 0, 2);
    }
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 3, 5000,
                         "lookupd never listed all three brokers");
    s_counter_t *counter = s_counter_new(lookupds, 1);
    S_PUMP_UNTIL(counter, counter->received >= 6, 30000, "only %zu of 6 messages arrived",
                 counter->received);
    for (size_t b = 0; b < 3; b++) {
        char prefix[8];
        snprintf(prefix, sizeof prefix, "b%zu", b);
        s_assert_all_once(counter, prefix, 2);
    }
    s_counter_destroy(&counter);
    for (size_t b = 0; b < 3; b++)
        it_broker_stop(&brokers[b]);
    it_broker_stop(&lookupds[0]);
}

// A broker added mid-stream is found within a poll interval or two; a
// broker stopped (SIGTERM: goodbye) or killed (inactive timeout) is dropped.
static void s_membership(void)
{
    const char *lookupd_flags[] = {"--inactive-producer-timeout=1s", NULL};
    it_broker_t *lookupds[] = {it_lookupd_start(lookupd_flags), NULL};
    it_broker_t *first = lookup_broker(lookupds);
    s_publish(first, "first", 0, 100);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 1, 5000,
                         "no producer listed");
    s_counter_t *counter = s_counter_new(lookupds, 50);
    S_PUMP_UNTIL(counter, counter->received >= 100, 5000, "only %zu of 100 arrived",
                 counter->received);

    it_broker_t *second = lookup_broker(lookupds);
    it_broker_t *third = lookup_broker(lookupds);
    s_publish(second, "second", 0, 100);
    s_publish(third, "third", 0, 100);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 3, 5000,
                         "the new brokers were never listed");
    // Found within one poll interval (plus the poll itself and slack).
    S_PUMP_UNTIL(counter, nsq_consumer_connection_count(counter->consumer) == 3,
                 LOOKUP_POLL_MS + 1200, "the consumer has %zu connections, not 3",
                 nsq_consumer_connection_count(counter->consumer));
    S_PUMP_UNTIL(counter, counter->received >= 300, 5000, "only %zu of 300 arrived",
                 counter->received);
    s_assert_all_once(counter, "second", 100);
    s_assert_all_once(counter, "third", 100);

    IT_ASSERT_INT(it_broker_stop(&second), ==, 0);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 2, 3000,
                         "a stopped broker is still listed");
    S_PUMP_UNTIL(counter, nsq_consumer_connection_count(counter->consumer) == 2, 3000,
                 "the stopped broker was not dropped");
    kill(it_broker_pid(third), SIGKILL);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 1, 5000,
                         "a killed broker is still listed after the inactive timeout");
    S_PUMP_UNTIL(counter, nsq_consumer_connection_count(counter->consumer) == 1, 3000,
                 "the killed broker was not dropped");
    s_publish(first, "first", 100, 50);
    S_PUMP_UNTIL(counter, counter->received >= 350, 5000, "only %zu of 350 arrived",
                 counter->received);
    s_assert_all_once(counter, "first", 150);
    s_counter_destroy(&counter);
    it_broker_stop(&third);
    IT_ASSERT_INT(it_broker_stop(&first), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupds[0]), ==, 0);
}

// A lookupd restart: consumers keep consuming meanwhile, and the broker
// registers everything again (topic and channels) once it is back.
static void s_lookupd_restart(void)
{
    it_broker_t *lookupds[] = {it_lookupd_start(NULL), NULL};
    char http_flag[96], zmq_flag[96];
    snprintf(http_flag, sizeof http_flag, "--http-address=%s", it_broker_http(lookupds[0]));
    snprintf(zmq_flag, sizeof zmq_flag, "--zmq-address=%s", it_broker_zmq(lookupds[0]));
    it_broker_t *broker = lookup_broker(lookupds);
    it_post_ok(broker, "/channel/create?topic=" LOOKUP_TOPIC "&channel=audit");
    it_post_ok(broker, "/channel/create?topic=" LOOKUP_TOPIC "&channel=" LOOKUP_CHANNEL);
    s_publish(broker, "m", 0, 50);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 1, 5000,
                         "no producer listed");
    s_counter_t *counter = s_counter_new(lookupds, 20);
    S_PUMP_UNTIL(counter, counter->received >= 50, 5000, "only %zu of 50 arrived",
                 counter->received);

    IT_ASSERT_INT(it_broker_stop(&lookupds[0]), ==, 0);
    s_publish(broker, "m", 50, 50);  // no lookupd now: the known broker still delivers
    S_PUMP_UNTIL(counter, counter->received >= 100, 5000,
                 "only %zu of 100 arrived while the lookupd was down", counter->received);
    IT_ASSERT_INT(nsq_consumer_connection_count(counter->consumer), ==, 1);

    const char *flags[] = {http_flag, zmq_flag, NULL};
    lookupds[0] = it_lookupd_start(flags);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 1, 5000,
                         "the broker did not register again after the lookupd restart");
    char *reply = NULL;
    IT_ASSERT_EVENTUALLY(
        it_http(lookupds[0], "GET", "/channels?topic=" LOOKUP_TOPIC, NULL, 0, &reply) == 200
            && strstr(reply, "\"audit\"") && strstr(reply, "\"" LOOKUP_CHANNEL "\""),
        5000, "channels not registered again: %s", reply ? reply : "(none)");
    free(reply);
    s_publish(broker, "m", 100, 50);
    S_PUMP_UNTIL(counter, counter->received >= 150, 5000, "only %zu of 150 arrived",
                 counter->received);
    s_assert_all_once(counter, "m", 150);
    s_counter_destroy(&counter);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupds[0]), ==, 0);
}

// A topic new to a broker starts with the channels lookupd knows for it,
// so a channel created elsewhere (or through lookupd) misses none of this
// broker's first messages; the topic is not left paused.
static void s_precreate(void)
{
    it_broker_t *lookupds[] = {it_lookupd_start(NULL), NULL};
    it_broker_t *first = lookup_broker(lookupds), *second = lookup_broker(lookupds);
    it_post_ok(first, "/channel/create?topic=" LOOKUP_TOPIC "&channel=" LOOKUP_CHANNEL);
    it_post_ok(lookupds[0], "/channel/create?topic=" LOOKUP_TOPIC "&channel=audit");
    char *reply = NULL;
    IT_ASSERT_EVENTUALLY(
        it_http(lookupds[0], "GET", "/channels?topic=" LOOKUP_TOPIC, NULL, 0, &reply) == 200
            && strstr(reply, "\"" LOOKUP_CHANNEL "\""),
        5000, "lookupd never listed the channel: %s", reply ? reply : "(none)");
    free(reply);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 1, 5000,
                         "no producer listed");
    // The second broker has never seen the topic: its first publish creates it.
    it_pub(second, LOOKUP_TOPIC, "first message");
    it_pub(second, LOOKUP_TOPIC, "second message");
    IT_ASSERT_EVENTUALLY(it_channel_stat(second, LOOKUP_TOPIC, LOOKUP_CHANNEL, "depth") == 2
                             && it_channel_stat(second, LOOKUP_TOPIC, "audit", "depth") == 2,
                         3000, "the pre-created channels do not hold both messages");
    IT_ASSERT_EVENTUALLY(it_topic_stat(second, LOOKUP_TOPIC, "paused") == 0, 3000,
                         "the topic stayed paused");
    it_http_expect(second, "POST", "/channel/delete?topic=" LOOKUP_TOPIC "&channel=audit", NULL, 0,
                   200, NULL);
    it_broker_stop(&first);
    it_broker_stop(&second);
    it_broker_stop(&lookupds[0]);
}

// A tombstone hides one producer of one topic until its lifetime ends.
static void s_tombstone(void)
{
    const char *lookupd_flags[] = {"--tombstone-lifetime=1500ms", NULL};
    it_broker_t *lookupds[] = {it_lookupd_start(lookupd_flags), NULL};
    it_broker_t *kept = lookup_broker(lookupds), *hidden = lookup_broker(lookupds);
    it_post_ok(kept, "/topic/create?topic=" LOOKUP_TOPIC);
    it_post_ok(hidden, "/topic/create?topic=" LOOKUP_TOPIC);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 2, 5000, "not both listed");
    char path[160];
    snprintf(path, sizeof path, "/topic/tombstone?topic=%s&node=%s", LOOKUP_TOPIC,
             it_broker_http(hidden));
    it_http_expect(lookupds[0], "GET", path, NULL, 0, 405, "METHOD_NOT_ALLOWED");
    it_http_expect(lookupds[0], "POST", path, NULL, 0, 200, NULL);
    IT_ASSERT(!s_lists(lookupds[0], LOOKUP_TOPIC, hidden)
                  && s_lists(lookupds[0], LOOKUP_TOPIC, kept),
              "the tombstone did not hide exactly the one producer");
    char *reply = NULL;
    IT_ASSERT_INT(it_http(lookupds[0], "GET", "/nodes", NULL, 0, &reply), ==, 200);
    IT_ASSERT(strstr(reply, "\"tombstones\":[true]") && strstr(reply, "\"tombstones\":[false]"),
              "/nodes does not show the tombstone: %s", reply);
    free(reply);
    it_http_expect(lookupds[0], "POST", "/topic/tombstone?topic=" LOOKUP_TOPIC "&node=10.9.9.9:1",
                   NULL, 0, 404, "PRODUCER_NOT_FOUND");
    IT_ASSERT_EVENTUALLY(s_lists(lookupds[0], LOOKUP_TOPIC, hidden), 5000,
                         "the producer stayed hidden after the tombstone lifetime");
    it_broker_stop(&kept);
    it_broker_stop(&hidden);
    it_broker_stop(&lookupds[0]);
}

// nsq-worker --lookupd-http-address prints what it finds through lookupd.
static void s_worker(void)
{
    it_broker_t *lookupds[] = {it_lookupd_start(NULL), NULL};
    it_broker_t *broker = lookup_broker(lookupds);
    it_pub(broker, LOOKUP_TOPIC, "via-lookupd");
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 1, 5000,
                         "no producer listed");
    char lookupd_flag[96];
    snprintf(lookupd_flag, sizeof lookupd_flag, "--lookupd-http-address=%s",
             it_broker_http(lookupds[0]));
    const char *argv[] = {getenv("NSQ_WORKER"),
                          "--topic=" LOOKUP_TOPIC,
                          "--channel=" LOOKUP_CHANNEL,
                          "--stdout",
                          "--http-address=127.0.0.1:0",
                          lookupd_flag,
                          "--lookupd-http-address=no-such-host.invalid:30161",
                          "--lookupd-poll-interval=200ms",
                          NULL};
    IT_ASSERT(argv[0], "NSQ_WORKER is not set");
    it_child_t *worker = it_child_start("worker", argv);
    char line[256];
    IT_ASSERT_INT(it_child_read_line(worker, line, sizeof line, 5000), ==, 1);
    IT_ASSERT_STR(line, "via-lookupd");
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 5000), ==, 0);
    it_broker_stop(&broker);
    it_broker_stop(&lookupds[0]);
}

// Starts nsq-worker on topic with one lookupd address and a probe port;
// copies the probe's HOST:PORT into http.
static it_child_t *s_worker_on(const char *name, const char *topic, const char *lookupd, char *http,
                               size_t size)
{
    char topic_flag[96], lookupd_flag[96];
    snprintf(topic_flag, sizeof topic_flag, "--topic=%s", topic);
    snprintf(lookupd_flag, sizeof lookupd_flag, "--lookupd-http-address=%s", lookupd);
    const char *argv[] = {getenv("NSQ_WORKER"),
                          topic_flag,
                          "--channel=" LOOKUP_CHANNEL,
                          "--stdout",
                          lookupd_flag,
                          "--lookupd-poll-interval=200ms",
                          "--http-address=127.0.0.1:0",
                          NULL};
    IT_ASSERT(argv[0], "NSQ_WORKER is not set");
    it_child_t *worker = it_child_start(name, argv);
    it_worker_wait_ready(worker, http, size);
    return worker;
}

// A fresh install: the worker's topic does not exist yet (lookupd answers
// 404), yet the worker is ready, since it reached a lookupd and will find
// the brokers as soon as the topic appears; it then consumes what is
// published. A worker that reaches no lookupd stays not ready.
static void s_ready_new_topic(void)
{
    it_broker_t *lookupds[] = {it_lookupd_start(NULL), NULL};
    it_broker_t *broker = lookup_broker(lookupds);
    IT_ASSERT_INT(lookup_producers(lookupds[0], "fresh"), ==, -1);
    char http[64], lost_http[64];
    it_child_t *worker =
        s_worker_on("worker", "fresh", it_broker_http(lookupds[0]), http, sizeof http);
    it_child_t *lost = s_worker_on("lost", "fresh", "127.0.0.1:1", lost_http, sizeof lost_http);
    IT_ASSERT_EVENTUALLY(it_http_to(http, "GET", "/readyz", NULL, 0, NULL) == 200, 5000,
                         "a worker whose topic does not exist yet never became ready");
    it_pub(broker, "fresh", "first");
    char line[256];
    IT_ASSERT_INT(it_child_read_line(worker, line, sizeof line, 5000), ==, 1);
    IT_ASSERT_STR(line, "first");
    IT_ASSERT_INT(it_http_to(lost_http, "GET", "/readyz", NULL, 0, NULL), ==, 503);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 5000), ==, 0);
    IT_ASSERT_INT(it_child_stop(&lost, SIGTERM, 5000), ==, 0);
    it_broker_stop(&broker);
    it_broker_stop(&lookupds[0]);
}

// Whether a line of path holds text.
static bool s_file_has(const char *path, const char *text)
{
    FILE *file = fopen(path, "r");
    char line[1024];
    bool found = false;
    while (file && !found && fgets(line, sizeof line, file))
        found = strstr(line, text) != NULL;
    if (file)
        fclose(file);
    return found;
}

// Runs nsq-pub with flag (and a 2 s publish timeout), stdin from printf
// format; returns its exit status. When complaint is not NULL, a line of
// its stderr must hold it.
static int s_run_pub(const char *input, const char *flag, const char *complaint)
{
    const char *pub = getenv("NSQ_PUB");
    IT_ASSERT(pub, "NSQ_PUB is not set");
    char command[1024];
    snprintf(command, sizeof command, "printf '%s' | '%s' --topic=piped --timeout=2s '%s'", input,
             pub, flag);
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    it_child_t *child = it_child_start("pub", argv);
    const char *log = it_child_log_path(child);
    char line[256];
    IT_ASSERT_INT(it_child_read_line(child, line, sizeof line, 10000), ==, -1);
    int status = it_child_stop(&child, 0, 5000);
    IT_ASSERT(!complaint || s_file_has(log, complaint), "nsq-pub did not say \"%s\"", complaint);
    return status;
}

// nsq-pub publishes each non-empty line, over HTTP and over ZeroMQ, and
// fails clearly, naming the address, when the broker cannot be reached.
static void s_pub_tool(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_sink_t *sink = it_sink_new(broker, "piped", "c", 100, true);
    char http_flag[96], zmq_flag[96];
    snprintf(http_flag, sizeof http_flag, "--http-address=%s", it_broker_http(broker));
    snprintf(zmq_flag, sizeof zmq_flag, "--broker-address=%s", it_broker_zmq(broker));
    IT_ASSERT_INT(s_run_pub("h1\\nh2\\r\\n\\nh3", http_flag, NULL), ==, 0);
    IT_ASSERT_INT(s_run_pub("z1\\nz2\\n", zmq_flag, NULL), ==, 0);
    IT_ASSERT(it_sink_wait(sink, 5, 5000), "only %zu of 5 lines arrived", it_sink_count(sink));
    const char *expected[] = {"h1", "h2", "h3", "z1", "z2"};
    for (size_t i = 0; i < 5; i++)
        IT_ASSERT_INT(it_sink_count_body(sink, expected[i]), ==, 1);
    IT_ASSERT_INT(s_run_pub("x\\n", "--http-address=127.0.0.1:1", "publish to 127.0.0.1:1 failed"),
                  ==, 1);
    // Nothing answers on a ZeroMQ address.
    int port = 0, held = it_port_hold(&port);
    char gone[96], complaint[128];
    snprintf(gone, sizeof gone, "--broker-address=127.0.0.1:%d", port);
    snprintf(complaint, sizeof complaint, "publish to 127.0.0.1:%d failed", port);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(s_run_pub("x\\n", gone, complaint), ==, 1);
    close(held);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"discovery", s_discovery},
        {"scarce_credit", s_scarce_credit},
        {"membership", s_membership},
        {"lookupd_restart", s_lookupd_restart},
        {"precreate", s_precreate},
        {"tombstone", s_tombstone},
        {"worker", s_worker},
        {"pub_tool", s_pub_tool},
        {"ready_new_topic", s_ready_new_topic},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
