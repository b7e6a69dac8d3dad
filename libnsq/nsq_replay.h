/*  nsq_replay - sends dead letters back to their topic, or looks at them
    SPDX-License-Identifier: MIT

    A dead-letter topic (nsq-worker's <topic>.dead, see nsq_deadletter.h)
    is read through one channel, NSQ_REPLAY_CHANNEL, by both operations:
    a dead topic nobody consumes keeps its messages in the topic itself
    until a first channel appears, which then gets them all; so the first
    replay or sample creates "replay" and from then on every new dead
    letter waits there. (A channel of your own on a dead topic keeps its
    own copies; replay does not touch it.)

    Replay takes the messages one at a time from a broker's ZeroMQ
    endpoint, publishes each body to the topic its header names (a message
    without a valid header goes whole to the dead topic's name without
    ".dead") on the same broker, and only then finishes it: a crash in
    between delivers a message twice, never loses it. It stops after
    `limit` messages (pass the count present when it started, so messages
    that die again while it runs are not replayed in a loop), or when none
    arrived for idle_ms.

    Sampling receives up to `max` messages and requeues each at once, in
    the order received: the broker puts requeued messages at the back of
    the queue, so when max covers the whole queue its order is unchanged.
    Each sampled message's attempts count grows by one (a dead letter's
    own attempts mean nothing; its header keeps the original's).

    Both block the calling thread (they run their own consumer loop) and
    stop early when `interrupt` (may be NULL) becomes readable, or on
    SIGINT/SIGTERM. A broker that requires CURVE is reached with the
    client keys of nsq_replay_broker_t, used by both the consumer and the
    producer; without them (or with keys it refuses) nothing connects and
    both fail within a few seconds.

    API: nsq_replay_run, nsq_replay_sample.
*/
#ifndef NSQ_REPLAY_H
#define NSQ_REPLAY_H

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#include "nsq_deadletter.h"

#define NSQ_REPLAY_CHANNEL     "replay"  // the dead topic's channel replay and sampling read
#define NSQ_REPLAY_UNREACHABLE (-2)      // what both return when nothing connected within 5 s

// The broker to work on, and how to reach it.
typedef struct {
    const char *address;          // its ZeroMQ endpoint, "host:port"
    const char *key_file;         // CURVE: our czmq secret certificate; NULL or "" = plain
    const char *server_key_file;  // CURVE: the broker's public certificate; NULL or "" = plain
} nsq_replay_broker_t;

typedef struct {
    uint64_t replayed;  // published to their topic and finished
    uint64_t unparsed;  // of which had no valid header (published whole)
} nsq_replay_counts_t;

// Called after each replayed message (at most every 100 ms) and once at
// the end.
typedef void(nsq_replay_progress_fn)(const nsq_replay_counts_t *counts, void *arg);

// Called per sampled message: its header when parsed is 0, else NULL;
// size is the original body's (or the whole message's) length.
typedef void(nsq_replay_sample_fn)(const nsq_deadletter_t *header, int parsed, size_t size,
                                   void *arg);

// Replays dead letters of dead_topic on broker (borrowed for the call) as
// described above. progress may be NULL. Returns 0 (counts filled), or -1
// with a one-line reason in error (a publish failed: that message was
// requeued and replay stopped; a key file cannot be read), or
// NSQ_REPLAY_UNREACHABLE with one (no connection: the broker is down, or
// its CURVE keys do not match ours).
int nsq_replay_run(const nsq_replay_broker_t *broker, const char *dead_topic, uint64_t limit,
                   int idle_ms, zsock_t *interrupt, nsq_replay_progress_fn *progress, void *arg,
                   nsq_replay_counts_t *counts, char *error, size_t error_size);

// Samples up to max dead letters of dead_topic on broker, calling fn for
// each. Returns how many were sampled, or -1 or NSQ_REPLAY_UNREACHABLE
// (as nsq_replay_run) with a reason in error.
int64_t nsq_replay_sample(const nsq_replay_broker_t *broker, const char *dead_topic, size_t max,
                          int idle_ms, zsock_t *interrupt, nsq_replay_sample_fn *fn, void *arg,
                          char *error, size_t error_size);

#endif
