/*  broker_pump - the topics whose held messages their channels could take
    now: the work after each batch visits these, not every topic
    SPDX-License-Identifier: MIT

    A topic holds messages while it has no channel, is paused or waits for
    lookupd, and then behind a backlog (memory or disk) until it drained;
    broker_topic_pump hands a bounded batch on each time. Scanning every
    topic after each batch cost the core thread time in proportion to the
    topic count (1,000 idle topics: about 190,000 instructions per batch,
    40 times a PUB's own work). The set holds each topic that may want a
    pump (broker_topic_wants_pump) once; the server adds a topic after any
    operation that can make it want one (publish, first channel, unpause,
    release), the tick adds any it missed, and broker_pump_run drops a
    topic once it no longer wants one. The position of a topic in the set
    lives in the topic (broker_topic_pump_slot), so add and remove cost
    O(1).

    Owned by the server, on the core thread.

    API: broker_pump_new, broker_pump_add, broker_pump_remove,
    broker_pump_run, broker_pump_size, broker_pump_destroy.
*/
#ifndef BROKER_PUMP_H
#define BROKER_PUMP_H

#include <stddef.h>
#include <stdint.h>

#include "broker_topic.h"

typedef struct _broker_pump_t broker_pump_t;

// Returns an empty set. Caller owns it; NULL if out of memory.
broker_pump_t *broker_pump_new(void);

// Frees the set, touching none of its topics (the server frees them
// first). Nulls *self_p; accepts NULL.
void broker_pump_destroy(broker_pump_t **self_p);

// Adds topic (borrowed) if it wants a pump and is not in the set yet.
// Out of memory leaves it out; the next tick adds it again.
void broker_pump_add(broker_pump_t *self, broker_topic_t *topic);

// Takes topic out of the set, if it is in it (before the topic is freed).
void broker_pump_remove(broker_pump_t *self, broker_topic_t *topic);

// Pumps each topic of the set once; drops those that want no more.
void broker_pump_run(broker_pump_t *self, int64_t now);

// Topics in the set.
size_t broker_pump_size(const broker_pump_t *self);

// Self-test; returns 0 on success.
int broker_pump_test(void);

#endif
