/*  lookupd_cluster_json - the console's documents, rendered from the
    cluster view (lookupd_cluster.h)
    SPDX-License-Identifier: MIT

    Each renderer builds one console API answer with jansson (caller owns
    it): an overview of the brokers with totals, topics summed across
    brokers with per-broker and per-channel rows, one channel's clients,
    and the dead-letter topics ("*.dead"). A broker not polled yet shows
    what the registry says it holds, marked stale; one that stopped
    answering shows its last numbers, marked unreachable.

    API: lookupd_cluster_overview_json, lookupd_cluster_topics_json,
    lookupd_cluster_channel_json, lookupd_cluster_deadletters_json,
    lookupd_cluster_dead_count.
*/
#ifndef LOOKUPD_CLUSTER_JSON_H
#define LOOKUPD_CLUSTER_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "lookupd_cluster.h"

// {"brokers":[...],"totals":{...}}: one row per broker (address, version,
// health, uptime, topics, depth, rates).
json_t *lookupd_cluster_overview_json(lookupd_cluster_t *self, int64_t now_ms);

// {"topics":[...]}: every topic (or only topic, and of it only channel,
// when not NULL) summed across brokers, with "brokers" and "channels"
// rows.
json_t *lookupd_cluster_topics_json(lookupd_cluster_t *self, const char *topic,
                                    const char *channel);

// {"topic","channel","brokers":[{node, counters (clients: how many),
// "client_list":[...]}]}: each client as the broker's /stats shows it,
// with "door" (the protocol it came through).
json_t *lookupd_cluster_channel_json(lookupd_cluster_t *self, const char *topic,
                                     const char *channel);

// {"topics":[{"topic","origin","count","brokers":[...],"samples":[...]}]}
// for every "*.dead" topic. A dead topic's count on a broker is what its
// topic queue holds plus what its "replay" channel holds, in flight and
// deferred included (see lookupd_replay.h).
json_t *lookupd_cluster_deadletters_json(lookupd_cluster_t *self);

// The dead-letter count of topic on node as above; 0 if unknown.
uint64_t lookupd_cluster_dead_count(lookupd_cluster_t *self, const char *node, const char *topic);

#endif
