/*  lookupd_history - the last hour of every topic and channel, per broker
    SPDX-License-Identifier: MIT

    lookupd polls each broker's /stats every few seconds and records each
    topic and channel here, so the console can chart the last hour without
    Graphite or Prometheus. A series is one (broker, topic, channel) —
    channel "" for the topic itself — and holds a ring of buckets of
    step_ms each covering window_ms (plus the bucket in progress). Polls
    that fall in one bucket merge: gauges keep their largest value (a spike
    between two points stays visible), counters are kept as the increase
    and the milliseconds it covered, so rates are exact even when a poll is
    missed. A bucket no poll reached stays empty (a gap, not a zero).

    Memory is bounded: every series allocates its whole ring when it is
    created (a channel series 36 bytes per bucket, a topic series 16), and
    a series that would take the total past max_bytes first evicts the
    least recently updated series if that one is stale (not updated in the
    current or the previous bucket: its topic, channel or broker went
    away); otherwise it is refused and counted. Series with no data left in
    the window expire. Owned by the lookupd actor's thread; no locks.

    API in call order: lookupd_history_new, lookupd_history_record (per
    topic and channel per poll), lookupd_history_expire (after a poll
    round), lookupd_history_json, lookupd_history_stats_json,
    lookupd_history_destroy.
*/
#ifndef LOOKUPD_HISTORY_H
#define LOOKUPD_HISTORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _lookupd_history_t lookupd_history_t;

// One poll of a topic or channel, as /stats reports it. Counters are the
// broker's totals since it started; a smaller value than the last one
// means the broker restarted. Topics use depth, backend_depth and
// message_count only.
typedef struct {
    uint64_t depth;          // queued, memory and disk
    uint64_t backend_depth;  // of which on disk
    uint64_t in_flight;      // delivered, not finished
    uint64_t deferred;       // waiting for a defer or requeue delay
    uint64_t clients;        // subscribed consumers
    uint64_t message_count;  // counter: messages put
    uint64_t requeue_count;  // counter: requeued by consumers
    uint64_t timeout_count;  // counter: in-flight timeouts
} lookupd_history_sample_t;

// Counters for /info and /metrics.
typedef struct {
    size_t series;     // held now
    size_t bytes;      // counted memory of all series
    size_t max_bytes;  // the bound
    uint64_t refused;  // series not created because the bound was reached
    uint64_t evicted;  // stale series dropped to make room
    uint64_t expired;  // series dropped after a window without data
} lookupd_history_stats_t;

// Creates an empty history of buckets of step_ms over window_ms (both > 0,
// window_ms a multiple of step_ms or rounded up to one), holding at most
// max_bytes. Caller owns the result; NULL if out of memory or an argument
// is out of range (errno EINVAL).
lookupd_history_t *lookupd_history_new(int64_t step_ms, int64_t window_ms, size_t max_bytes);

// Frees everything and nulls *self_p; accepts NULL.
void lookupd_history_destroy(lookupd_history_t **self_p);

// Records sample for (node, topic, channel; NULL or "" = the topic) at
// now_ms (Unix milliseconds). Returns 0, or -1 if the series could not be
// created (the bound was reached: counted as refused; or out of memory).
// A sample older than the window is ignored.
int lookupd_history_record(lookupd_history_t *self, const char *node, const char *topic,
                           const char *channel, const lookupd_history_sample_t *sample,
                           int64_t now_ms);

// Drops series with no sample in the window ending at now_ms.
void lookupd_history_expire(lookupd_history_t *self, int64_t now_ms);

// The series of topic: all of its series (topic and channels, every node)
// when channel is NULL, else only that channel's ("" = the topic's own).
// {"step_ms":S,"window_ms":W,"series":[{"node":N,"topic":T,"channel":C,
// "fields":[...],"points":[[t_ms,...],...]}]}, points oldest first, gaps
// left out, rates per second. Caller owns the result; NULL if out of
// memory.
json_t *lookupd_history_json(lookupd_history_t *self, const char *topic, const char *channel);

// The counters. Borrowed view copied into *stats.
void lookupd_history_stats(lookupd_history_t *self, lookupd_history_stats_t *stats);

// Bytes one series of each kind takes (for the documentation and tests).
size_t lookupd_history_series_bytes(lookupd_history_t *self, bool channel);

// Self-test; returns 0 on success.
int lookupd_history_test(void);

#endif
