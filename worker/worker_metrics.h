/*  worker_metrics - counters and gauges the loop thread writes and /metrics reads
    SPDX-License-Identifier: MIT

    The worker's loop thread is the only writer; the HTTP server's thread
    reads. Every value is a relaxed atomic, so a reader may see counters from
    slightly different instants but never a torn value, and the loop never
    takes a lock. The handler latency histogram has fixed buckets (ms).

    API in call order: worker_metrics_new; from the loop thread
    worker_metrics_add, worker_metrics_set, worker_metrics_observe; from any
    thread worker_metrics_get, worker_metrics_render; worker_metrics_destroy.
*/
#ifndef WORKER_METRICS_H
#define WORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    WORKER_METRIC_RECEIVED,       // counter: messages handed to the worker
    WORKER_METRIC_FINISHED,       // counter: FINned after the handler succeeded
    WORKER_METRIC_REQUEUED,       // counter: REQed (handler failure or drain)
    WORKER_METRIC_DEAD_LETTERED,  // counter: published to the dead-letter topic, then FINned
    WORKER_METRIC_REJECTED,       // counter: FINned although the handler refused (HTTP 4xx)
    WORKER_METRIC_FAILURES,       // counter: handler failures (exit != 0, 5xx, timeout)
    WORKER_METRIC_TIMEOUTS,       // counter: handlers killed or aborted past their timeout
    WORKER_METRIC_BACKOFFS,       // counter: times the worker paused delivery after a failure
    WORKER_METRIC_CONNECTIONS,    // gauge: brokers connected
    WORKER_METRIC_CREDIT,         // gauge: max in flight announced now
    WORKER_METRIC_IN_FLIGHT,      // gauge: messages being handled
    WORKER_METRIC_DRAINING,       // gauge: 1 while shutting down
    WORKER_METRIC_LOOKUPD_OK,     // gauge: 1 once a lookupd answered (even "topic not found")
    WORKER_METRIC_PUBLISHED,      // counter: outputs the broker took (--publish-topic)
    WORKER_METRIC_RESTARTS,       // counter: --process processes started again after a stop
    WORKER_METRIC_PROCESSES,      // gauge: --process processes running
    WORKER_METRIC_COUNT
} worker_metric_t;

typedef struct _worker_metrics_t worker_metrics_t;

// Creates zeroed metrics. NULL if out of memory. Caller owns the result.
worker_metrics_t *worker_metrics_new(void);

// Destroys and nulls *self_p; accepts NULL.
void worker_metrics_destroy(worker_metrics_t **self_p);

// Adds delta to a counter (loop thread).
void worker_metrics_add(worker_metrics_t *self, worker_metric_t metric, uint64_t delta);

// Sets a gauge (loop thread).
void worker_metrics_set(worker_metrics_t *self, worker_metric_t metric, uint64_t value);

// Records one handler run that took milliseconds (loop thread).
void worker_metrics_observe(worker_metrics_t *self, int64_t milliseconds);

// Reads one value (any thread).
uint64_t worker_metrics_get(worker_metrics_t *self, worker_metric_t metric);

// Renders every metric in the Prometheus text format (any thread). NULL if
// out of memory. Caller frees.
char *worker_metrics_render(worker_metrics_t *self);

// Self-test; returns 0 on success.
int worker_metrics_test(void);

#endif
