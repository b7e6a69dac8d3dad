/*  lookupd_cluster_test - the cluster view's self-test: two brokers, polls
    a second apart, the documents rendered from them and the history they
    fill
    SPDX-License-Identifier: MIT
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_cluster_json.h"

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lookupd_cluster_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

static const char *s_test_nodes =
    "{\"producers\":[{\"broadcast_address\":\"10.0.0.1\",\"http_port\":4151,\"zmq_port\":4152,"
    "\"https_port\":4153,\"version\":\"0.1.0\",\"topics\":[\"orders\"]},{\"broadcast_address\":\"::"
    "1\","
    "\"http_port\":4251,\"zmq_port\":4252,\"topics\":[\"orders\",\"orders.dead\"]}]}";

// A /stats document with one topic "orders" (channel "billing") and a
// dead-letter topic whose "replay" channel holds some.
static char *s_test_stats(int messages, int depth, bool paused)
{
    return zsys_sprintf(
        "{\"version\":\"0.1.0\",\"health\":\"OK\",\"start_time\":1700000000,\"topics\":["
        "{\"topic_name\":\"orders\",\"depth\":1,\"backend_depth\":0,\"message_count\":%d,"
        "\"paused\":false,\"channels\":[{\"channel_name\":\"billing\",\"depth\":%d,"
        "\"backend_depth\":2,\"in_flight_count\":3,\"deferred_count\":0,\"requeue_count\":4,"
        "\"timeout_count\":0,\"client_count\":1,\"message_count\":%d,\"paused\":%s,"
        "\"clients\":[{\"client_id\":\"w1\",\"remote_address\":\"10.0.0.9:5000\"}]}]},"
        "{\"topic_name\":\"orders.dead\",\"depth\":2,\"message_count\":7,\"channels\":["
        "{\"channel_name\":\"replay\",\"depth\":3,\"in_flight_count\":1,\"deferred_count\":0}]}]}",
        messages, depth, messages, paused ? "true" : "false");
}

static json_t *s_test_path(json_t *doc, const char *path)
{
    // "topics.0.channels.0.depth": keys and indexes
    char copy[128];
    snprintf(copy, sizeof copy, "%s", path);
    for (char *part = strtok(copy, "."); doc && part; part = strtok(NULL, "."))
        doc = json_is_array(doc) ? json_array_get(doc, (size_t) atoi(part))
                                 : json_object_get(doc, part);
    return doc;
}

// jansson's allocations still live while s_test_stale_topics runs.
static long s_test_live;

static void *s_test_malloc(size_t size)
{
    void *block = malloc(size);
    if (block)
        s_test_live++;
    return block;
}

static void s_test_free(void *block)
{
    if (block)
        s_test_live--;
    free(block);
}

// The topics of brokers never polled (what the registry says) render with
// no channels, and the document and cluster free every jansson object they
// made (an empty "channels" object once kept one reference too many, so
// each such answer leaked it).
static int s_test_stale_topics(void)
{
    json_set_alloc_funcs(s_test_malloc, s_test_free);
    s_test_live = 0;
    json_t *nodes = json_loads(s_test_nodes, 0, NULL), *doc = NULL;
    lookupd_cluster_t *cluster = lookupd_cluster_new(NULL);
    int rc = -1;
    S_CHECK(nodes && cluster && lookupd_cluster_set_nodes(cluster, nodes) == 0);
    doc = lookupd_cluster_topics_json(cluster, NULL, NULL);
    S_CHECK(doc && json_array_size(json_object_get(doc, "topics")) == 2);
    S_CHECK(json_is_array(s_test_path(doc, "topics.0.channels"))
            && json_array_size(s_test_path(doc, "topics.0.channels")) == 0);
    S_CHECK(json_is_true(s_test_path(doc, "topics.0.brokers.0.stale")));
    rc = 0;
failed:
    json_decref(doc);
    lookupd_cluster_destroy(&cluster);
    json_decref(nodes);
    json_set_alloc_funcs(malloc, free);
    if (rc == 0 && s_test_live != 0) {
        fprintf(stderr, "lookupd_cluster_test: %ld jansson allocations leaked\n", s_test_live);
        rc = -1;
    }
    return rc;
}

int lookupd_cluster_test(void)
{
    if (s_test_stale_topics() != 0)
        return -1;
    json_t *nodes = json_loads(s_test_nodes, 0, NULL), *doc = NULL;
    lookupd_history_t *history = lookupd_history_new(1000, 60000, 1 << 20);
    lookupd_cluster_t *cluster = lookupd_cluster_new(history);
    zlistx_t *list = NULL;
    char *stats = NULL, url[128];
    S_CHECK(nodes && history && cluster && lookupd_cluster_set_nodes(cluster, nodes) == 0);
    list = lookupd_cluster_nodes(cluster);
    S_CHECK(list && zlistx_size(list) == 2 && streq(zlistx_first(list), "10.0.0.1:4151"));
    zlistx_destroy(&list);
    S_CHECK(lookupd_cluster_url("::1:4251", "/stats", url, sizeof url) == 0
            && streq(url, "http://[::1]:4251/stats"));
    S_CHECK(lookupd_cluster_url("https://[::1]:4263", "/info", url, sizeof url) == 0
            && streq(url, "https://[::1]:4263/info"));
    S_CHECK(lookupd_cluster_url("http://peer:4161", "/info", url, sizeof url) == 0
            && streq(url, "http://peer:4161/info"));
    // A broker that announced HTTPS is reached there; one that did not, over HTTP.
    S_CHECK(lookupd_cluster_broker_url(cluster, "10.0.0.1:4151", "/stats", url, sizeof url) == 0
            && streq(url, "https://10.0.0.1:4153/stats"));
    S_CHECK(lookupd_cluster_broker_url(cluster, "::1:4251", "/stats", url, sizeof url) == 0
            && streq(url, "http://[::1]:4251/stats"));
    S_CHECK(lookupd_cluster_zmq_address(cluster, "::1:4251", url, sizeof url) == 0
            && streq(url, "[::1]:4252"));
    // Before any poll the registry says who holds a topic.
    list = lookupd_cluster_holders(cluster, "orders.dead", NULL);
    S_CHECK(list && zlistx_size(list) == 1);
    zlistx_destroy(&list);

    // Two polls of one broker a second apart: 50 messages -> 50/s.
    int64_t t0 = 1700000100000;
    stats = s_test_stats(100, 10, false);
    lookupd_cluster_update(cluster, "10.0.0.1:4151", 200, stats, strlen(stats), "", t0);
    zstr_free(&stats);
    stats = s_test_stats(150, 12, true);
    lookupd_cluster_update(cluster, "10.0.0.1:4151", 200, stats, strlen(stats), "", t0 + 1000);
    zstr_free(&stats);
    lookupd_cluster_update(cluster, "::1:4251", 0, NULL, 0, "Connection refused", t0 + 1000);
    doc = lookupd_cluster_topics_json(cluster, "orders", NULL);
    S_CHECK(doc && json_array_size(json_object_get(doc, "topics")) == 1);
    S_CHECK(json_number_value(s_test_path(doc, "topics.0.message_rate")) == 50.0);
    S_CHECK(json_integer_value(s_test_path(doc, "topics.0.channels.0.depth")) == 12);
    S_CHECK(json_integer_value(s_test_path(doc, "topics.0.channels.0.memory_depth")) == 10);
    S_CHECK(json_is_true(s_test_path(doc, "topics.0.channels.0.paused")));
    // The unreachable broker still shows, from the registry, as stale.
    S_CHECK(json_array_size(s_test_path(doc, "topics.0.brokers")) == 2);
    S_CHECK(json_is_true(s_test_path(doc, "topics.0.brokers.1.stale")));
    json_decref(doc);
    doc = lookupd_cluster_overview_json(cluster, t0 + 1000);
    S_CHECK(doc && streq(json_string_value(s_test_path(doc, "brokers.1.health")), "unreachable"));
    S_CHECK(streq(json_string_value(s_test_path(doc, "brokers.0.health")), "OK"));
    S_CHECK(json_integer_value(s_test_path(doc, "brokers.0.uptime_s")) == 101);
    S_CHECK(json_integer_value(s_test_path(doc, "totals.brokers")) == 2);
    S_CHECK(json_integer_value(s_test_path(doc, "totals.topics")) == 2);  // orders, orders.dead
    json_decref(doc);
    doc = lookupd_cluster_channel_json(cluster, "orders", "billing");
    S_CHECK(doc
            && streq(json_string_value(s_test_path(doc, "brokers.0.client_list.0.door")), "zmq"));
    json_decref(doc);
    // A dead topic counts its own queue plus its replay channel's.
    S_CHECK(lookupd_cluster_dead_count(cluster, "10.0.0.1:4151", "orders.dead") == 6);
    doc = lookupd_cluster_deadletters_json(cluster);
    S_CHECK(doc && json_integer_value(s_test_path(doc, "topics.0.count")) == 6);
    S_CHECK(streq(json_string_value(s_test_path(doc, "topics.0.origin")), "orders"));
    json_decref(doc);
    doc = NULL;
    // The history got both polls of every topic and channel.
    lookupd_history_stats_t counters;
    lookupd_history_stats(history, &counters);
    S_CHECK(counters.series == 4);
    // A broker that left is dropped; one never polled is taken at the
    // registry's word (which knows no channels).
    json_array_remove(json_object_get(nodes, "producers"), 0);
    S_CHECK(lookupd_cluster_set_nodes(cluster, nodes) == 0);
    list = lookupd_cluster_holders(cluster, "orders", "billing");
    S_CHECK(list && zlistx_size(list) == 1 && streq(zlistx_first(list), "::1:4251"));
    zlistx_destroy(&list);
    lookupd_cluster_destroy(&cluster);
    lookupd_history_destroy(&history);
    json_decref(nodes);
    return 0;
failed:
    zlistx_destroy(&list);
    zstr_free(&stats);
    json_decref(doc);
    lookupd_cluster_destroy(&cluster);
    lookupd_history_destroy(&history);
    json_decref(nodes);
    return -1;
}
