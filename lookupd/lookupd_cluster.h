/*  lookupd_cluster - the console's view of the cluster: every broker's
    last /stats, with rates
    SPDX-License-Identifier: MIT

    The broker list comes from the registry (a /nodes document, so this
    class needs nothing of the registry's internals); each broker is known
    by its node name "broadcast_address:http_port", the name tombstones
    use. The lookupd console polls each broker's /stats?format=json (see
    lookupd_fetch.h) and hands every answer to lookupd_cluster_update,
    which keeps the document, computes messages per second from the
    previous one, and records each topic and channel in the history.
    Owned by the actor's thread; no locks.

    The console's documents (overview, topics, a channel's clients, dead
    letters) are rendered from this view by lookupd_cluster_json.h, which
    reads each broker's record through lookupd_cluster_first/next.

    API in call order: lookupd_cluster_new, lookupd_cluster_set_nodes,
    lookupd_cluster_nodes (what to poll) and lookupd_cluster_broker_url,
    lookupd_cluster_update, lookupd_cluster_holders and
    lookupd_cluster_zmq_address (for actions), lookupd_cluster_set_sample,
    the renderers' reads, lookupd_cluster_destroy.
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

// Writes the URL of path at address ("host:port", "http://host:port" or
// "https://host:port"; brackets added around an IPv6 host) into url.
// Returns 0, or -1 if address has no port or the URL does not fit.
int lookupd_cluster_url(const char *address, const char *path, char *url, size_t size);

// Writes the URL of path on broker node into url: https://host:https_port
// when the broker announced an HTTPS port (so a broker with --tls-required
// is reached), else http://node. Returns 0, or -1 as lookupd_cluster_url.
int lookupd_cluster_broker_url(lookupd_cluster_t *self, const char *node, const char *path,
                               char *url, size_t size);

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

// ---- for the renderers (lookupd_cluster_json.h) ---------------------------------

// One broker as the view last saw it. Written only by lookupd_cluster.c;
// read through the functions below.
typedef struct {
    char node[LOOKUPD_NODE_MAX];  // "broadcast_address:http_port"
    json_t *info;                 // its /nodes producer object (owned)
    json_t *stats;                // last /stats document with rates (owned), or NULL
    json_t *counts;               // message counts at stats_at (owned), or NULL
    int64_t stats_at;             // Unix ms of stats
    int64_t polled_at;            // Unix ms of the last answer or failure, 0 if none
    char error[256];              // why the last poll failed; "" if it did not
} lookupd_cluster_broker_t;

// The first broker (in no order), then the next; NULL after the last. One
// walk at a time. Borrowed; valid until self changes.
const lookupd_cluster_broker_t *lookupd_cluster_first(lookupd_cluster_t *self);
const lookupd_cluster_broker_t *lookupd_cluster_next(lookupd_cluster_t *self);

// The broker named node; NULL if unknown. Borrowed; valid until self changes.
const lookupd_cluster_broker_t *lookupd_cluster_find(lookupd_cluster_t *self, const char *node);

// The dead-letter sample kept for (node, topic); NULL if none. Borrowed.
json_t *lookupd_cluster_sample(lookupd_cluster_t *self, const char *node, const char *topic);

// Self-test; returns 0 on success.
int lookupd_cluster_test(void);

#endif
