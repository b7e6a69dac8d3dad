/*  lookupd_cluster - what the console shows: every broker's last /stats,
    with rates, summed across the cluster
    SPDX-License-Identifier: MIT

    The broker list comes from the registry (a /nodes document, so this
    class needs nothing of the registry's internals); each broker is known
    by its node name "broadcast_address:http_port", the name tombstones
    use. The lookupd actor polls each broker's /stats?format=json (see
    lookupd_fetch.h) and hands every answer to lookupd_cluster_update,
    which keeps the document, computes messages per second from the
    previous one, and records each topic and channel in the history.

    The *_json renderers build the console API's answers (jansson; caller
    owns them): an overview of the brokers with totals, topics summed
    across brokers with per-broker and per-channel rows, one channel's
    clients, and the dead-letter topics ("*.dead"). Owned by the actor's
    thread; no locks.

    API in call order: lookupd_cluster_new, lookupd_cluster_set_nodes,
    lookupd_cluster_nodes (what to poll) and lookupd_cluster_url,
    lookupd_cluster_update, lookupd_cluster_holders (for actions),
    lookupd_cluster_set_sample, the renderers, lookupd_cluster_destroy.
*/
#ifndef LOOKUPD_CLUSTER_H
#define LOOKUPD_CLUSTER_H

#include <czmq.h>
#include <jansson.h>
#include <stdint.h>

#include "lookupd_history.h"

#define LOOKUPD_NODE_MAX 272  // "host:port": a 253-byte host, brackets, a port

typedef struct _lookupd_cluster_t lookupd_cluster_t;

// Creates an empty view recording into history (borrowed; may be NULL: no
// history). Caller owns the result; NULL if out of memory.
lookupd_cluster_t *lookupd_cluster_new(lookupd_history_t *history);

// Frees everything and nulls *self_p; accepts NULL.
void lookupd_cluster_destroy(lookupd_cluster_t **self_p);

// Makes the broker list that of nodes (a /nodes document: {"producers":
// [...]}, borrowed): new brokers are added, gone ones dropped (their
// history stays until it expires). Returns 0, or -1 if nodes has no
// producers array.
int lookupd_cluster_set_nodes(lookupd_cluster_t *self, json_t *nodes);

// The node names of the brokers, sorted. Caller destroys the list (it owns
// its strings).
zlistx_t *lookupd_cluster_nodes(lookupd_cluster_t *self);

// Writes "http://host:port" of node (brackets around an IPv6 host) and
// path into url. Returns 0, or -1 if it does not fit.
int lookupd_cluster_url(const char *node, const char *path, char *url, size_t size);

// Takes one poll's answer for node: status 200 and a /stats document (body,
// size bytes) replace its stats, anything else (error says why when status
// is 0) marks it unreachable and keeps the last stats. Unknown nodes are
// ignored. now_ms is Unix milliseconds.
void lookupd_cluster_update(lookupd_cluster_t *self, const char *node, long status,
                            const char *body, size_t size, const char *error, int64_t now_ms);

// The nodes that hold topic (channel NULL) or (topic, channel): per their
// last stats, or per the registry for a broker not polled yet. Caller
// destroys the list (it owns its strings).
zlistx_t *lookupd_cluster_holders(lookupd_cluster_t *self, const char *topic, const char *channel);

// The ZeroMQ address "host:port" of node into out; -1 if node is unknown.
int lookupd_cluster_zmq_address(lookupd_cluster_t *self, const char *node, char *out, size_t size);

// Keeps sample (a dead-letter sample document; reference taken) for
// (node, topic), replacing the last one; NULL forgets it.
void lookupd_cluster_set_sample(lookupd_cluster_t *self, const char *node, const char *topic,
                                json_t *sample);

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

// Self-test; returns 0 on success.
int lookupd_cluster_test(void);

#endif
