/*  it_worker_util - what the it_worker* cases share: metrics, probes, counts
    SPDX-License-Identifier: MIT

    Small readers over the harness for the nsq-worker tests (it_worker,
    it_worker_output): a worker's /metrics and probes, lines and files it
    wrote, and the broker's view of the channel it consumes.
*/
#ifndef IT_WORKER_UTIL_H
#define IT_WORKER_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

// A value from the worker's /metrics, -1 if absent or unreachable.
int64_t worker_metric(const char *http, const char *name);

// The status of GET path at the worker's http (HOST:PORT), -1 if none.
int worker_probe(const char *http, const char *path);

// Lines of path (0 if absent) that contain needle (all lines if NULL).
int worker_count_lines(const char *path, const char *needle);

// Waits up to 5 s for one consumer on the channel; fails the case otherwise.
void worker_wait_subscribed(it_broker_t *broker, const char *topic, const char *channel);

// Files in the case's directory whose name starts with prefix.
int worker_count_files(const char *prefix);

// The channel is empty: nothing queued, in flight or deferred.
bool worker_settled(it_broker_t *broker, const char *topic, const char *channel);

#endif
