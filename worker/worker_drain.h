/*  worker_drain - the worker's shutdown: drain the in-flight messages,
    then let the handler wind down
    SPDX-License-Identifier: MIT

    worker_run calls worker_drain once consuming ends (SIGTERM/SIGINT,
    --max-messages, a broken handler). The runtime's callbacks read the
    two flags it sets: draining (no new work: messages still arriving are
    requeued at once, credit stays 0) and aborting (the shutdown timeout
    passed: results are requeued with no delay, so another worker gets
    them at once).

    API: worker_drain. Loop thread only.
*/
#ifndef WORKER_DRAIN_H
#define WORKER_DRAIN_H

#include "nsq.h"
#include "worker_handler.h"
#include "worker_metrics.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    nsq_consumer_t *consumer;   // borrowed; its loop runs during the drain
    worker_handler_t *handler;  // borrowed
    worker_metrics_t *metrics;  // borrowed
    int64_t timeout_ms;         // the shutdown timeout
    bool draining;              // set when the drain begins
    bool aborting;              // set when the shutdown timeout passed
    int64_t wind_down_until;    // worker_drain's own: wait for the handler until then
} worker_drain_t;

// Drains: sets draining and the metrics (draining, credit 0), closes the
// consumer (RDY 0 and CLS, the loop runs so the handlers can finish) for
// up to timeout_ms; if messages are still unsettled then, sets aborting,
// stops the handler's work (its results requeue the messages) and closes
// again for S_FINAL_FLUSH_MS. Then the handler winds down
// (worker_handler_finish) while the loop runs, until it is finished or the
// shutdown deadline passes, but at least S_FINAL_FLUSH_MS. Returns when
// done; what is left is stopped by destroying the handler.
void worker_drain(worker_drain_t *self);

#endif
