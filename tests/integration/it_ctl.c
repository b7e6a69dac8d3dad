/*  it_ctl - nsq-ctl against a real cluster: one nsq-lookupd (polling every
    100 ms) and two nsq-brokers on 127.0.0.1
    SPDX-License-Identifier: MIT

    Every command, through lookupd and against one broker, checked on the
    brokers' own /stats; and what scripts rely on when things go wrong:
    the exit code (2 bad command line, 3 unknown topic/channel/broker, 4
    lookupd or broker not answering, 1 failed on a broker that is down,
    naming it) and one "nsq-ctl: ..." line on stderr.
*/
#include "harness.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_deadletter.h"

#define S_OUT_MAX 32768

typedef struct {
    it_broker_t *lookupd;
    it_broker_t *brokers[2];
    char lookupd_flag[96];  // --lookupd-http-address=...
} s_cluster_t;

typedef struct {
    int code;             // exit status
    char out[S_OUT_MAX];  // stdout
    char err[512];        // the first "nsq-ctl:" line of stderr, "" if none
} s_run_t;

static s_run_t *s_run_new(void)
{
    s_run_t *run = calloc(1, sizeof *run);
    IT_ASSERT(run, "out of memory");
    return run;
}

// Runs nsq-ctl with args (NULL-terminated) and waits for it to exit.
static void s_ctl(s_run_t *run, const char *const *args)
{
    const char *argv[32] = {getenv("NSQ_CTL")};
    IT_ASSERT(argv[0], "NSQ_CTL is not set");
    size_t count = 1;
    for (size_t i = 0; args[i] && count < 31; i++)
        argv[count++] = args[i];
    it_child_t *child = it_child_start("nsq-ctl", argv);
    char line[4096];
    size_t used = 0;
    run->out[0] = '\0';
    while (it_child_read_line(child, line, sizeof line, 20000) == 1) {
        int wrote = snprintf(run->out + used, sizeof run->out - used, "%s\n", line);
        if (wrote > 0 && (size_t) wrote < sizeof run->out - used)
            used += (size_t) wrote;
    }
    run->err[0] = '\0';
    it_child_wait_log(child, "nsq-ctl:", run->err, sizeof run->err, 0);
    run->code = it_child_stop(&child, 0, 10000);
}

#define S_CTL(run, ...) s_ctl((run), (const char *const[]){__VA_ARGS__, NULL})

// Expects exit code and, when not NULL, text in stdout.
#define S_EXPECT(run, want_code, text)                                                             \
    do {                                                                                           \
        IT_ASSERT((run)->code == (want_code), "exit %d, want %d; stdout:\n%s\nstderr: %s",         \
                  (run)->code, (want_code), (run)->out, (run)->err);                               \
        IT_ASSERT(!(text) || strstr((run)->out, (text) ? (text) : ""), "stdout lacks \"%s\":\n%s", \
                  (text) ? (text) : "", (run)->out);                                               \
    } while (0)

// "127.0.0.1:PORT" of a broker's HTTP API, as lookupd names it.
static const char *s_node(it_broker_t *broker)
{
    return it_broker_http(broker);
}

// Sum of the depth of topic/channel in lookupd's console API; -1 if absent.
static int64_t s_api_depth(s_cluster_t *cluster, const char *topic, const char *channel)
{
    char path[256], *reply = NULL;
    snprintf(path, sizeof path, "/api/topics?topic=%s&channel=%s", topic, channel);
    int status = it_http(cluster->lookupd, "GET", path, NULL, 0, &reply);
    json_t *doc = status == 200 ? json_loads(reply, 0, NULL) : NULL;
    free(reply);
    json_t *item = json_array_get(
        json_object_get(json_array_get(json_object_get(doc, "topics"), 0), "channels"), 0);
    int64_t depth = json_is_integer(json_object_get(item, "depth"))
                        ? (int64_t) json_integer_value(json_object_get(item, "depth"))
                        : -1;
    json_decref(doc);
    return depth;
}

// lookupd polling every 100 ms, two brokers registered with it, topic
// orders with channel billing on both: 3 messages on the first, 2 on the
// second; returns once lookupd's view has all 5.
static void s_cluster(s_cluster_t *cluster)
{
    cluster->lookupd = it_lookupd_start((const char *[]){"--stats-interval=100ms", NULL});
    char lookupd_address[96];
    snprintf(lookupd_address, sizeof lookupd_address, "--lookupd-address=%s",
             it_broker_zmq(cluster->lookupd));
    snprintf(cluster->lookupd_flag, sizeof cluster->lookupd_flag, "--lookupd-http-address=%s",
             it_broker_http(cluster->lookupd));
    for (int i = 0; i < 2; i++) {
        cluster->brokers[i] =
            it_broker_start((const char *[]){"--broadcast-address=127.0.0.1", lookupd_address,
                                             "--lookupd-heartbeat-interval=200ms", NULL});
        it_post_ok(cluster->brokers[i], "/channel/create?topic=orders&channel=billing");
        for (int n = 0; n < 3 - i; n++)
            it_pub(cluster->brokers[i], "orders", "hello");
    }
    IT_ASSERT_EVENTUALLY(s_api_depth(cluster, "orders", "billing") == 5, 10000,
                         "lookupd's console shows 5 messages on orders/billing");
}

// The depth of topic itself, summed, in lookupd's console API; -1 if absent.
static int64_t s_api_topic_depth(s_cluster_t *cluster, const char *topic)
{
    char path[256], *reply = NULL;
    snprintf(path, sizeof path, "/api/topics?topic=%s", topic);
    int status = it_http(cluster->lookupd, "GET", path, NULL, 0, &reply);
    json_t *doc = status == 200 ? json_loads(reply, 0, NULL) : NULL;
    free(reply);
    json_t *depth = json_object_get(json_array_get(json_object_get(doc, "topics"), 0), "depth");
    int64_t value = json_is_integer(depth) ? (int64_t) json_integer_value(depth) : -1;
    json_decref(doc);
    return value;
}

static int64_t s_paused(it_broker_t *broker, const char *channel)
{
    return channel ? it_channel_stat(broker, "orders", channel, "paused")
                   : it_topic_stat(broker, "orders", "paused");
}

// ---- cases ----------------------------------------------------------------------

static void s_case_read(void)
{
    s_cluster_t cluster;
    s_cluster(&cluster);
    s_run_t *run = s_run_new();
    const char *broker_flag = NULL;
    char broker_storage[96];
    snprintf(broker_storage, sizeof broker_storage, "--broker-http-address=%s",
             it_broker_http(cluster.brokers[0]));
    broker_flag = broker_storage;

    S_CTL(run, cluster.lookupd_flag, "topics");
    S_EXPECT(run, 0, "orders\n");
    S_CTL(run, broker_flag, "topics", "--json");
    S_EXPECT(run, 0, "{\"topics\":[\"orders\"]}");
    // The table: a topic row and a channel row with the summed depth.
    S_CTL(run, cluster.lookupd_flag, "stats");
    S_EXPECT(run, 0, "TOPIC");
    IT_ASSERT(strstr(run->out, "orders billing ") && strstr(run->out, "       5 "),
              "no billing row with depth 5:\n%s", run->out);
    // --json has the same shape through lookupd and against a broker.
    S_CTL(run, cluster.lookupd_flag, "stats", "orders", "billing", "--json");
    S_EXPECT(run, 0, "\"channel\":\"billing\",\"depth\":5");
    S_CTL(run, broker_flag, "stats", "orders", "billing", "--json");
    S_EXPECT(run, 0, "\"channel\":\"billing\",\"depth\":3");
    S_CTL(run, cluster.lookupd_flag, "watch", "--count=2", "--interval=100ms");
    S_EXPECT(run, 0, "nsq-ctl watch: ");
    IT_ASSERT(strstr(strstr(run->out, "nsq-ctl watch: ") + 1, "nsq-ctl watch: "),
              "watch --count=2 did not refresh twice:\n%s", run->out);
    S_CTL(run, broker_flag, "watch", "--count=2", "--interval=100ms", "--json");
    S_EXPECT(run, 0, "\"topic\":\"orders\"");
    free(run);
}

static void s_case_actions(void)
{
    s_cluster_t cluster;
    s_cluster(&cluster);
    s_run_t *run = s_run_new();
    it_broker_t **brokers = cluster.brokers;
    // Through lookupd: one line per broker, the change on both.
    S_CTL(run, cluster.lookupd_flag, "pause", "orders", "billing");
    S_EXPECT(run, 0, "ok ");
    IT_ASSERT(strstr(run->out, s_node(brokers[0])) && strstr(run->out, s_node(brokers[1])),
              "not one line per broker:\n%s", run->out);
    IT_ASSERT(s_paused(brokers[0], "billing") == 1 && s_paused(brokers[1], "billing") == 1,
              "billing not paused on both brokers");
    S_CTL(run, cluster.lookupd_flag, "unpause", "orders", "billing");
    S_EXPECT(run, 0, "ok ");
    IT_ASSERT(s_paused(brokers[0], "billing") == 0 && s_paused(brokers[1], "billing") == 0,
              "billing still paused");
    S_CTL(run, cluster.lookupd_flag, "pause", "orders");
    S_EXPECT(run, 0, "ok ");
    IT_ASSERT(s_paused(brokers[0], NULL) == 1 && s_paused(brokers[1], NULL) == 1,
              "topic orders not paused on both brokers");
    S_CTL(run, cluster.lookupd_flag, "unpause", "orders");
    S_EXPECT(run, 0, "ok ");
    IT_ASSERT(s_paused(brokers[0], NULL) == 0, "topic orders still paused");
    S_CTL(run, cluster.lookupd_flag, "empty", "orders", "billing");
    S_EXPECT(run, 0, "ok ");
    IT_ASSERT(it_channel_stat(brokers[0], "orders", "billing", "depth") == 0
                  && it_channel_stat(brokers[1], "orders", "billing", "depth") == 0,
              "billing not emptied on both brokers");
    // Against one broker: only that one changes.
    char broker_flag[96];
    snprintf(broker_flag, sizeof broker_flag, "--broker-http-address=%s",
             it_broker_http(brokers[1]));
    S_CTL(run, broker_flag, "pause", "orders", "billing");
    S_EXPECT(run, 0, "ok ");
    IT_ASSERT(s_paused(brokers[1], "billing") == 1 && s_paused(brokers[0], "billing") == 0,
              "broker-mode pause did not touch exactly one broker");
    S_CTL(run, cluster.lookupd_flag, "delete", "orders", "billing");
    S_EXPECT(run, 0, "ok ");
    IT_ASSERT(!it_channel_exists(brokers[0], "orders", "billing")
                  && !it_channel_exists(brokers[1], "orders", "billing"),
              "billing not deleted on both brokers");
    // Tombstone: lookupd stops listing the first broker for orders.
    S_CTL(run, cluster.lookupd_flag, "tombstone", "orders", s_node(brokers[0]));
    S_EXPECT(run, 0, "ok lookupd");
    char *reply = NULL;
    IT_ASSERT(it_http(cluster.lookupd, "GET", "/lookup?topic=orders", NULL, 0, &reply) == 200,
              "/lookup failed");
    char port[16];
    snprintf(port, sizeof port, "\"http_port\":%s", strrchr(s_node(brokers[0]), ':') + 1);
    IT_ASSERT(!strstr(reply, port), "the tombstoned broker is still listed: %s", reply);
    free(reply);
    S_CTL(run, cluster.lookupd_flag, "delete", "orders");
    S_EXPECT(run, 0, "ok ");
    IT_ASSERT(it_topic_stat(brokers[0], "orders", "depth") == -1
                  && it_topic_stat(brokers[1], "orders", "depth") == -1,
              "orders not deleted on both brokers");
    free(run);
}

// Publishes count dead letters of orders/billing to orders.dead on broker,
// bodies "PREFIX-N".
static void s_dead_letters(it_broker_t *broker, const char *prefix, int count)
{
    for (int n = 0; n < count; n++) {
        nsq_deadletter_t header = {"orders", "billing", "", 5, 1, 2, "", {NSQ_FAILURE_EXIT, 3, ""}};
        snprintf(header.id, sizeof header.id, "%016x", 0xd000 + n);
        snprintf(header.broker, sizeof header.broker, "%s", it_broker_zmq(broker));
        char body[64];
        snprintf(body, sizeof body, "%s-%d", prefix, n);
        size_t size;
        uint8_t *letter = nsq_deadletter_build(&header, body, strlen(body), &size);
        IT_ASSERT(letter, "nsq_deadletter_build failed");
        IT_ASSERT(it_http(broker, "POST", "/pub?topic=orders.dead", letter, size, NULL) == 200,
                  "publishing a dead letter failed");
        free(letter);
    }
}

// Receives count messages of orders/billing on broker; fails unless they
// are exactly PREFIX-0 .. PREFIX-(count-1).
static void s_expect_bodies(it_broker_t *broker, const char *prefix, int count)
{
    it_sink_t *sink = it_sink_new(broker, "orders", "billing", 100, true);
    IT_ASSERT(it_sink_wait(sink, (size_t) count, 10000), "only %zu of %d messages back",
              it_sink_count(sink), count);
    for (int n = 0; n < count; n++) {
        char body[64];
        snprintf(body, sizeof body, "%s-%d", prefix, n);
        IT_ASSERT(it_sink_count_body(sink, body) == 1, "%s came back %zu times", body,
                  it_sink_count_body(sink, body));
    }
    it_sink_destroy(&sink);
}

static void s_case_replay(void)
{
    s_cluster_t cluster;
    s_cluster(&cluster);
    s_run_t *run = s_run_new();
    it_broker_t **brokers = cluster.brokers;
    S_CTL(run, cluster.lookupd_flag, "empty", "orders", "billing");
    S_EXPECT(run, 0, "ok ");
    s_dead_letters(brokers[0], "first", 4);
    s_dead_letters(brokers[1], "second", 3);
    // lookupd must have seen them (its count is what a replay takes).
    IT_ASSERT_EVENTUALLY(s_api_topic_depth(&cluster, "orders.dead") == 7, 5000,
                         "lookupd counts 7 dead letters");
    S_CTL(run, cluster.lookupd_flag, "replay", "orders.dead");
    S_EXPECT(run, 0, "4 replayed");
    IT_ASSERT(strstr(run->out, "3 replayed"), "the second broker's 3 not replayed:\n%s", run->out);
    for (int i = 0; i < 2; i++) {
        IT_ASSERT(it_topic_stat(brokers[i], "orders.dead", "depth") == 0
                      && it_channel_stat(brokers[i], "orders.dead", "replay", "depth") == 0
                      && it_channel_stat(brokers[i], "orders.dead", "replay", "in_flight_count")
                             == 0,
                  "orders.dead not empty on broker %d", i);
    }
    s_expect_bodies(brokers[0], "first", 4);
    s_expect_bodies(brokers[1], "second", 3);
    // Against one broker: nsq-ctl replays over its ZeroMQ endpoint itself.
    s_dead_letters(brokers[0], "again", 2);
    char http_flag[96], zmq_flag[96];
    snprintf(http_flag, sizeof http_flag, "--broker-http-address=%s", it_broker_http(brokers[0]));
    snprintf(zmq_flag, sizeof zmq_flag, "--broker-address=%s", it_broker_zmq(brokers[0]));
    S_CTL(run, http_flag, zmq_flag, "replay", "orders.dead");
    S_EXPECT(run, 0, "2 replayed");
    s_expect_bodies(brokers[0], "again", 2);
    free(run);
}

static void s_case_tail(void)
{
    s_cluster_t cluster;
    s_cluster(&cluster);
    const char *argv[] = {getenv("NSQ_CTL"), cluster.lookupd_flag, "tail",
                          "orders",          "--count=2",          NULL};
    it_child_t *tail = it_child_start("nsq-ctl-tail", argv);
    char line[256];
    IT_ASSERT(
        it_child_wait_log(tail, "nsq-ctl: tailing orders on 2 broker(s)", line, sizeof line, 10000),
        "tail did not subscribe on both brokers");
    it_pub(cluster.brokers[0], "orders", "from-first");
    it_pub(cluster.brokers[1], "orders", "from-second");
    char got[2][256];
    for (int i = 0; i < 2; i++)
        IT_ASSERT(it_child_read_line(tail, got[i], sizeof got[i], 5000) == 1,
                  "tail printed %d of 2 messages", i);
    IT_ASSERT((!strcmp(got[0], "from-first") && !strcmp(got[1], "from-second"))
                  || (!strcmp(got[1], "from-first") && !strcmp(got[0], "from-second")),
              "tail printed \"%s\" and \"%s\"", got[0], got[1]);
    IT_ASSERT_INT(it_child_stop(&tail, 0, 5000), ==, 0);
    // The other channel kept its copies: tail took nothing from billing.
    IT_ASSERT_INT(it_channel_stat(cluster.brokers[0], "orders", "billing", "depth"), ==, 4);
    // Against one broker's ZeroMQ endpoint.
    char zmq_flag[96];
    snprintf(zmq_flag, sizeof zmq_flag, "--broker-address=%s", it_broker_zmq(cluster.brokers[1]));
    const char *direct[] = {getenv("NSQ_CTL"), zmq_flag, "tail", "orders", "--count=1", NULL};
    tail = it_child_start("nsq-ctl-tail", direct);
    IT_ASSERT(
        it_child_wait_log(tail, "nsq-ctl: tailing orders on 1 broker(s)", line, sizeof line, 10000),
        "tail did not subscribe");
    it_pub(cluster.brokers[1], "orders", "direct");
    IT_ASSERT(it_child_read_line(tail, line, sizeof line, 5000) == 1 && !strcmp(line, "direct"),
              "tail printed \"%s\"", line);
    IT_ASSERT_INT(it_child_stop(&tail, 0, 5000), ==, 0);
}

static void s_case_errors(void)
{
    s_cluster_t cluster;
    s_cluster(&cluster);
    s_run_t *run = s_run_new();
    const char *lookupd = cluster.lookupd_flag;
    // Bad command lines: 2.
    S_CTL(run, "topics");
    S_EXPECT(run, 2, NULL);
    S_CTL(run, lookupd, "frobnicate");
    S_EXPECT(run, 2, NULL);
    S_CTL(run, lookupd, "pause");
    S_EXPECT(run, 2, NULL);
    S_CTL(run, lookupd, "pause", "not a topic!");
    S_EXPECT(run, 2, NULL);
    S_CTL(run, lookupd, "replay", "orders");
    S_EXPECT(run, 2, NULL);
    S_CTL(run, "--broker-http-address=127.0.0.1:1", "tombstone", "orders", "x:1");
    S_EXPECT(run, 2, NULL);
    S_CTL(run, lookupd, "--timeout=forever", "topics");
    S_EXPECT(run, 2, NULL);
    IT_ASSERT(strncmp(run->err, "nsq-ctl: ", 9) == 0, "no reason on stderr");
    // Unknown topic, channel or broker: 3.
    S_CTL(run, lookupd, "stats", "nope");
    S_EXPECT(run, 3, NULL);
    IT_ASSERT(strstr(run->err, "nope"), "stderr does not name the topic: %s", run->err);
    S_CTL(run, lookupd, "stats", "orders", "nope");
    S_EXPECT(run, 3, NULL);
    S_CTL(run, lookupd, "pause", "nope");
    S_EXPECT(run, 3, NULL);
    S_CTL(run, lookupd, "empty", "orders", "nope");
    S_EXPECT(run, 3, NULL);
    S_CTL(run, lookupd, "replay", "nope.dead");
    S_EXPECT(run, 3, NULL);
    S_CTL(run, lookupd, "tail", "nope");
    S_EXPECT(run, 3, NULL);
    S_CTL(run, lookupd, "tombstone", "orders", "10.9.9.9:30151");
    S_EXPECT(run, 3, NULL);
    // A broker that is down (killed: lookupd still lists it): the action
    // fails there, works on the other, and says which is which.
    IT_ASSERT(kill(it_broker_pid(cluster.brokers[1]), SIGKILL) == 0, "kill failed");
    S_CTL(run, lookupd, "pause", "orders", "billing");
    S_EXPECT(run, 1, "failed ");
    char expect[128];
    snprintf(expect, sizeof expect, "failed %s", s_node(cluster.brokers[1]));
    IT_ASSERT(strstr(run->out, expect), "the down broker is not named:\n%s", run->out);
    snprintf(expect, sizeof expect, "ok %s", s_node(cluster.brokers[0]));
    IT_ASSERT(strstr(run->out, expect), "the live broker is not ok:\n%s", run->out);
    IT_ASSERT(s_paused(cluster.brokers[0], "billing") == 1, "the live broker was not paused");
    char dead_flag[96];
    snprintf(dead_flag, sizeof dead_flag, "--broker-http-address=%s",
             it_broker_http(cluster.brokers[1]));
    S_CTL(run, dead_flag, "stats");
    S_EXPECT(run, 4, NULL);
    // lookupd down: 4.
    IT_ASSERT_INT(it_broker_stop(&cluster.lookupd), ==, 0);
    S_CTL(run, lookupd, "topics");
    S_EXPECT(run, 4, NULL);
    S_CTL(run, lookupd, "pause", "orders");
    S_EXPECT(run, 4, NULL);
    S_CTL(run, lookupd, "tail", "orders");
    S_EXPECT(run, 4, NULL);
    IT_ASSERT(strstr(run->err, "cannot reach"), "stderr: %s", run->err);
    free(run);
}

int main(int argc, char **argv)
{
    static const it_case_t cases[] = {
        {"read", s_case_read}, {"actions", s_case_actions}, {"replay", s_case_replay},
        {"tail", s_case_tail}, {"errors", s_case_errors},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof *cases);
}
