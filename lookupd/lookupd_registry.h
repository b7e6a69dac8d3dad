/*  lookupd_registry - which brokers (producers) hold which topics and channels
    SPDX-License-Identifier: MIT

    Owned by the lookupd actor's thread; no locks. A producer is a broker
    known by its ZeroMQ identity (id); it must identify before it registers.
    Registrations are NSQ's: a topic, or a (topic, channel) pair, each with
    the set of producers that hold it. A registration may have no producer
    (created over HTTP, or its producers went away): it stays listed, as in
    nsqlookupd, except ephemeral ones, which go with their last producer.

    Liveness: every command refreshes a producer (lookupd_registry_touch);
    lookupd_registry_expire drops producers silent for longer than the
    inactive timeout and forgets tombstones past their lifetime. A tombstone
    hides one producer from /lookup of one topic until it expires.

    API in call order: lookupd_registry_new, lookupd_registry_identify,
    lookupd_registry_known, lookupd_registry_touch, lookupd_registry_register,
    lookupd_registry_unregister, lookupd_registry_remove_producer,
    lookupd_registry_create, lookupd_registry_delete, lookupd_registry_tombstone,
    lookupd_registry_expire, the queries (lookupd_registry_has_topic,
    lookupd_registry_channels, the *_json renderers), lookupd_registry_destroy.
*/
#ifndef LOOKUPD_REGISTRY_H
#define LOOKUPD_REGISTRY_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *remote_address;     // where its connection came from
    const char *hostname;           // as the broker reported it
    const char *broadcast_address;  // what consumers dial; required
    const char *version;            // broker version
    uint32_t http_port;             // required
    uint32_t zmq_port;              // required
    uint32_t tcp_port;              // NSQ-compatible TCP port, 0 if none
    uint32_t https_port;            // HTTPS port, 0 if none (ours: nsqd announces none)
} lookupd_producer_info_t;

typedef struct _lookupd_registry_t lookupd_registry_t;

// Creates an empty registry. Timeouts in milliseconds. Caller owns it; NULL
// if out of memory.
lookupd_registry_t *lookupd_registry_new(int64_t inactive_timeout_ms,
                                         int64_t tombstone_lifetime_ms);

// Frees everything and nulls *self_p; accepts NULL.
void lookupd_registry_destroy(lookupd_registry_t **self_p);

// Adds producer id, or updates its info (an identify again keeps its
// registrations). Strings are copied. Returns 0, or -1 if the info lacks
// broadcast_address, http_port or zmq_port, or a port is past 65535
// (errno EINVAL), or out of memory.
int lookupd_registry_identify(lookupd_registry_t *self, const char *id,
                              const lookupd_producer_info_t *info, int64_t now);

// True if producer id has identified and was not removed since.
bool lookupd_registry_known(lookupd_registry_t *self, const char *id);

// Marks producer id alive at now; no-op if unknown.
void lookupd_registry_touch(lookupd_registry_t *self, const char *id, int64_t now);

// Registers topic (channel NULL or "") or (topic, channel) for producer id,
// and the topic too when a channel is given. Returns 0, or -1 if a name is
// invalid or id unknown (errno EINVAL / ENOENT).
int lookupd_registry_register(lookupd_registry_t *self, const char *id, const char *topic,
                              const char *channel);

// Removes producer id from (topic, channel), or from topic and all its
// channels when channel is NULL or "". Ephemeral registrations left without
// producers are deleted. Returns 0, or -1 as lookupd_registry_register.
int lookupd_registry_unregister(lookupd_registry_t *self, const char *id, const char *topic,
                                const char *channel);

// Forgets producer id and its registrations; no-op if unknown.
void lookupd_registry_remove_producer(lookupd_registry_t *self, const char *id);

// Creates a registration without a producer (HTTP /topic/create,
// /channel/create). Returns 0, or -1 if a name is invalid.
int lookupd_registry_create(lookupd_registry_t *self, const char *topic, const char *channel);

// Deletes (topic, channel), or the topic and all its channels when channel
// is NULL or "". Returns 0, or -1 if it does not exist.
int lookupd_registry_delete(lookupd_registry_t *self, const char *topic, const char *channel);

// Hides the producer whose "broadcast_address:http_port" is node from
// lookups of topic for the tombstone lifetime. Returns 0, or -1 if no such
// producer holds topic.
int lookupd_registry_tombstone(lookupd_registry_t *self, const char *topic, const char *node,
                               int64_t now);

// Drops producers inactive past the timeout and expired tombstones. Returns
// how many producers were dropped.
size_t lookupd_registry_expire(lookupd_registry_t *self, int64_t now);

// Number of identified producers.
size_t lookupd_registry_producer_count(lookupd_registry_t *self);

// True if topic is registered.
bool lookupd_registry_has_topic(lookupd_registry_t *self, const char *topic);

// The channels registered for topic, sorted. Caller destroys the list (it
// owns its strings).
zlistx_t *lookupd_registry_channels(lookupd_registry_t *self, const char *topic);

// JSON bodies of the HTTP API, NSQ's shapes. Caller frees; NULL if out of
// memory, or for lookup_json if topic is not registered.
char *lookupd_registry_lookup_json(lookupd_registry_t *self, const char *topic, int64_t now);
char *lookupd_registry_topics_json(lookupd_registry_t *self);
char *lookupd_registry_channels_json(lookupd_registry_t *self, const char *topic);
char *lookupd_registry_nodes_json(lookupd_registry_t *self, int64_t now);

// Self-test; returns 0 on success.
int lookupd_registry_test(void);

#endif
