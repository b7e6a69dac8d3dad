/*  lookupd_replay - the console's dead-letter replays and samples, each on
    a thread of its own
    SPDX-License-Identifier: MIT

    nsq_replay blocks (it runs a consumer loop), so each replay or sample
    of one dead topic on one broker runs in a czmq actor that reports over
    its pipe: progress while replaying, then one final event (counts, or
    the sample as a JSON document: how many were looked at, the oldest
    dead_at and first_seen, failures by kind, the first few headers).
    Destroying it interrupts the work (messages in flight go back to the
    broker). A broker that requires CURVE is reached with the keys given
    (lookupd's own key pair and --zmq-curve-broker-key-file).

    API in call order: lookupd_replay_start, lookupd_replay_sock +
    lookupd_replay_recv, lookupd_replay_destroy.
*/
#ifndef LOOKUPD_REPLAY_H
#define LOOKUPD_REPLAY_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "nsq_replay.h"

#define LOOKUPD_SAMPLE_MAX     1000  // messages a sample looks at
#define LOOKUPD_SAMPLE_HEADERS 5     // headers a sample shows
#define LOOKUPD_REPLAY_IDLE_MS 1000  // a replay or sample ends after this long without a message

typedef enum { LOOKUPD_REPLAY_RUN, LOOKUPD_REPLAY_SAMPLE } lookupd_replay_mode_t;

typedef struct _lookupd_replay_t lookupd_replay_t;

typedef struct {
    bool done;          // the final event; else progress
    bool ok;            // (final) it worked
    uint64_t replayed;  // messages replayed (or sampled) so far
    uint64_t unparsed;  // of which had no valid header
    char message[256];  // (final) why it failed, or a summary
    json_t *sample;     // (final, sample mode) the sample document; owned by the event
} lookupd_replay_event_t;

// Starts replaying up to limit messages (or sampling) dead_topic on broker
// (its ZeroMQ "host:port" and CURVE keys: copied). Caller owns the
// result; NULL if out of memory.
lookupd_replay_t *lookupd_replay_start(lookupd_replay_mode_t mode,
                                       const nsq_replay_broker_t *broker, const char *dead_topic,
                                       uint64_t limit);

// Interrupts the work if it still runs, and nulls *self_p; accepts NULL.
void lookupd_replay_destroy(lookupd_replay_t **self_p);

// Readable when an event is waiting. Borrowed.
zsock_t *lookupd_replay_sock(lookupd_replay_t *self);

// Reads one event. Returns 0, or -1 if nothing valid was waiting. Release
// event->sample with json_decref.
int lookupd_replay_recv(lookupd_replay_t *self, lookupd_replay_event_t *event);

#endif
