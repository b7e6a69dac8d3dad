/*  it_lookup_util - what the it_lookup* cases share: names, registered brokers
    SPDX-License-Identifier: MIT

    The lookupd tests (it_lookup, it_lookup_input) start brokers that
    register with their lookupds under short heartbeats, and count the
    producers a lookupd lists for a topic.
*/
#ifndef IT_LOOKUP_UTIL_H
#define IT_LOOKUP_UTIL_H

#include "harness.h"

#define LOOKUP_TOPIC          "orders"
#define LOOKUP_CHANNEL        "billing"
#define LOOKUP_POLL_MS        300  // consumer's lookupd poll interval
#define LOOKUP_HEARTBEAT_FLAG "--lookupd-heartbeat-interval=200ms"

// Starts a broker that registers with the given lookupds (NULL-terminated).
it_broker_t *lookup_broker(it_broker_t *const *lookupds);

// Number of producers /lookup?topic= lists on lookupd (-1 on 404).
int lookup_producers(it_broker_t *lookupd, const char *topic);

#endif
