/*  worker_metrics - counters and gauges the loop thread writes and /metrics reads
    SPDX-License-Identifier: MIT

    An array of relaxed atomics indexed by worker_metric_t, plus cumulative
    histogram buckets kept as per-bucket counts (summed when rendered). See
    worker_metrics.h for the threading contract.
*/
#include "worker_metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Upper bounds of the latency buckets, milliseconds; +Inf follows.
static const int64_t s_bounds_ms[] = {1,   5,    10,   25,   50,    100,   250,
                                      500, 1000, 2500, 5000, 10000, 30000, 60000};
#define S_BUCKETS (sizeof s_bounds_ms / sizeof s_bounds_ms[0])

typedef struct {
    const char *name;  // Prometheus name
    const char *type;  // "counter" or "gauge"
    const char *help;  // one line
} s_describe_t;

static const s_describe_t s_describe[WORKER_METRIC_COUNT] = {
    {"nsq_worker_messages_received_total", "counter", "Messages handed to the worker."},
    {"nsq_worker_messages_finished_total", "counter",
     "Messages FINned after the handler succeeded."},
    {"nsq_worker_messages_requeued_total", "counter", "Messages REQed (handler failure or drain)."},
    {"nsq_worker_messages_dead_lettered_total", "counter",
     "Messages published to the dead-letter topic after max attempts."},
    {"nsq_worker_messages_rejected_total", "counter",
     "Messages FINned although the HTTP endpoint refused them (4xx)."},
    {"nsq_worker_handler_failures_total", "counter", "Handler failures."},
    {"nsq_worker_handler_timeouts_total", "counter", "Handlers stopped past their timeout."},
    {"nsq_worker_backoffs_total", "counter", "Times delivery was paused after a failure."},
    {"nsq_worker_connections", "gauge", "Brokers connected."},
    {"nsq_worker_credit", "gauge", "Max in flight announced now."},
    {"nsq_worker_in_flight", "gauge", "Messages being handled."},
    {"nsq_worker_draining", "gauge", "1 while shutting down."},
    {"nsq_worker_lookupd_answered", "gauge",
     "1 once a lookupd answered a query (also for a topic that does not exist yet)."},
    {"nsq_worker_outputs_published_total", "counter",
     "Handler outputs the broker acknowledged (--publish-topic)."},
    {"nsq_worker_process_restarts_total", "counter",
     "--process processes started again after they exited or were stopped."},
    {"nsq_worker_processes", "gauge", "--process processes running."},
};

struct _worker_metrics_t {
    atomic_uint_fast64_t values[WORKER_METRIC_COUNT];  // counters and gauges
    atomic_uint_fast64_t buckets[S_BUCKETS + 1];       // latency counts per bucket, last = +Inf
    atomic_uint_fast64_t latency_count;                // observations
    atomic_uint_fast64_t latency_sum_ms;               // their sum
};

worker_metrics_t *worker_metrics_new(void)
{
    worker_metrics_t *self = calloc(1, sizeof *self);
    return self;  // zeroed memory is a valid initial state for these atomics
}

void worker_metrics_destroy(worker_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

void worker_metrics_add(worker_metrics_t *self, worker_metric_t metric, uint64_t delta)
{
    atomic_fetch_add_explicit(&self->values[metric], delta, memory_order_relaxed);
}

void worker_metrics_set(worker_metrics_t *self, worker_metric_t metric, uint64_t value)
{
    atomic_store_explicit(&self->values[metric], value, memory_order_relaxed);
}

void worker_metrics_observe(worker_metrics_t *self, int64_t milliseconds)
{
    if (milliseconds < 0)
        milliseconds = 0;
    size_t bucket = 0;
    while (bucket < S_BUCKETS && milliseconds > s_bounds_ms[bucket])
        bucket++;
    atomic_fetch_add_explicit(&self->buckets[bucket], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->latency_sum_ms, (uint64_t) milliseconds, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->latency_count, 1, memory_order_relaxed);
}

uint64_t worker_metrics_get(worker_metrics_t *self, worker_metric_t metric)
{
    return atomic_load_explicit(&self->values[metric], memory_order_relaxed);
}

typedef struct {
    char *data;       // NUL-terminated text so far
    size_t length;    // bytes used
    size_t capacity;  // bytes allocated
    bool failed;      // out of memory
} s_text_t;

static void s_append(s_text_t *text, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void s_append(s_text_t *text, const char *format, ...)
{
    while (!text->failed) {
        va_list args;
        va_start(args, format);
        int wrote =
            vsnprintf(text->data + text->length, text->capacity - text->length, format, args);
        va_end(args);
        if (wrote >= 0 && (size_t) wrote < text->capacity - text->length) {
            text->length += (size_t) wrote;
            return;
        }
        size_t capacity = text->capacity * 2 + (wrote > 0 ? (size_t) wrote : 0);
        char *grown = realloc(text->data, capacity);
        if (!grown)
            text->failed = true;
        else {
            text->data = grown;
            text->capacity = capacity;
        }
    }
}

static void s_render_histogram(worker_metrics_t *self, s_text_t *text)
{
    const char *name = "nsq_worker_handler_duration_seconds";
    s_append(text, "# HELP %s Time from delivery to the handler's result.\n# TYPE %s histogram\n",
             name, name);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= S_BUCKETS; i++) {
        cumulative += atomic_load_explicit(&self->buckets[i], memory_order_relaxed);
        if (i < S_BUCKETS)
            s_append(text, "%s_bucket{le=\"%g\"} %llu\n", name, (double) s_bounds_ms[i] / 1000.0,
                     (unsigned long long) cumulative);
        else
            s_append(text, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long) cumulative);
    }
    uint64_t sum = atomic_load_explicit(&self->latency_sum_ms, memory_order_relaxed);
    uint64_t count = atomic_load_explicit(&self->latency_count, memory_order_relaxed);
    s_append(text, "%s_sum %.3f\n%s_count %llu\n", name, (double) sum / 1000.0, name,
             (unsigned long long) count);
}

char *worker_metrics_render(worker_metrics_t *self)
{
    s_text_t text = {.data = malloc(4096), .capacity = 4096};
    if (!text.data)
        return NULL;
    text.data[0] = '\0';
    for (int i = 0; i < WORKER_METRIC_COUNT; i++)
        s_append(&text, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", s_describe[i].name,
                 s_describe[i].help, s_describe[i].name, s_describe[i].type, s_describe[i].name,
                 (unsigned long long) worker_metrics_get(self, (worker_metric_t) i));
    s_render_histogram(self, &text);
    if (text.failed) {
        free(text.data);
        return NULL;
    }
    return text.data;
}

int worker_metrics_test(void)
{
    worker_metrics_t *self = worker_metrics_new();
    if (!self)
        return -1;
    worker_metrics_add(self, WORKER_METRIC_RECEIVED, 3);
    worker_metrics_set(self, WORKER_METRIC_CREDIT, 7);
    worker_metrics_observe(self, 0);
    worker_metrics_observe(self, 30);
    worker_metrics_observe(self, 99999);
    char *text = worker_metrics_render(self);
    int rc = text && strstr(text, "nsq_worker_messages_received_total 3\n")
                     && strstr(text, "nsq_worker_credit 7\n")
                     && strstr(text, "nsq_worker_handler_duration_seconds_bucket{le=\"0.001\"} 1\n")
                     && strstr(text, "nsq_worker_handler_duration_seconds_bucket{le=\"0.05\"} 2\n")
                     && strstr(text, "nsq_worker_handler_duration_seconds_bucket{le=\"+Inf\"} 3\n")
                     && strstr(text, "nsq_worker_handler_duration_seconds_count 3\n")
                 ? 0
                 : -1;
    free(text);
    worker_metrics_destroy(&self);
    worker_metrics_destroy(&self);
    return rc;
}
