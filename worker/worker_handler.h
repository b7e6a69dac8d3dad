/*  worker_handler - what a message handler is to the worker runtime
    SPDX-License-Identifier: MIT

    The runtime (worker.c) wraps each delivered message in a worker_job_t
    and starts it on the one configured handler. Handlers are asynchronous:
    start only begins the work; the handler reports the result later, from
    the consumer's loop thread, through the context's done callback (never
    from inside start). Until then the job and its message stay valid. A
    handler owns whatever it hangs on job->state and releases it before it
    calls done. A handler that reports RETRY first says why with
    worker_job_fail (the dead letter carries the last reason).

    Output (pipelines): when the context asks for it (capture_output), a
    handler that reports OK may first hang what the work produced on
    job->output (malloc'ed, at most max_output bytes; the runtime frees it)
    and the runtime publishes it before the FIN. A handler may also ask for
    a REQ delay of its own (job->req_delay_ms) and report TOUCHes it
    received through the context's touch callback.

    Handlers: worker_handler_exec_new (a shell command per message),
    worker_handler_process_new (long-lived processes, many messages each),
    worker_handler_http_new (POST to a URL), worker_handler_file_new (append
    to a file, or to stdout). Each embeds worker_handler_t first.

    Calls, on the loop thread: worker_handler_start per job,
    worker_handler_tick periodically (timeouts), worker_handler_abort_all
    at the shutdown timeout, worker_handler_finish once the drain is over
    (then the loop runs until worker_handler_finished or the shutdown
    deadline), worker_handler_destroy.
*/
#ifndef WORKER_HANDLER_H
#define WORKER_HANDLER_H

#include "nsq.h"
#include "nsq_http_client.h"
#include "nsq_deadletter.h"
#include "worker_metrics.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    WORKER_RESULT_OK,      // done: FIN
    WORKER_RESULT_RETRY,   // failed: REQ with backoff, or dead-letter after max attempts
    WORKER_RESULT_REJECT,  // refused for good (HTTP 4xx): FIN and log
} worker_result_t;

typedef struct _worker_job_t worker_job_t;
struct _worker_job_t {
    nsq_msg_t *msg;         // the message; owned by the consumer until the runtime settles it
    int64_t started_ms;     // zclock_mono when the handler got it
    int64_t touched_ms;     // last TOUCH sent for it
    void *state;            // the handler's per-job state
    nsq_failure_t failure;  // why it failed, set with worker_job_fail before RETRY
    uint8_t *output;        // what the handler produced (OK only), NULL if none; runtime frees
    size_t output_size;     // its length
    int64_t req_delay_ms;   // REQ delay the handler asked for (RETRY), -1 = the runtime's
    worker_job_t *prev;     // neighbours on the runtime's list of running jobs
    worker_job_t *next;
};

// Reports a job's result. The runtime settles job->msg and frees job.
typedef void(worker_done_fn)(void *arg, worker_job_t *job, worker_result_t result);

// The handler heard that job is still being worked on: the runtime TOUCHes it.
typedef void(worker_touch_fn)(void *arg, worker_job_t *job);

// Records why job failed (kind, code and a printf-style detail, cut to
// NSQ_FAILURE_DETAIL_MAX); the last one recorded goes into the dead letter.
void worker_job_fail(worker_job_t *job, nsq_failure_kind_t kind, int64_t code, const char *format,
                     ...) __attribute__((format(printf, 4, 5)));

// Appends size bytes of data to job->output, unless that would take it
// beyond max bytes. Returns 0, or -1 (errno EFBIG over max, ENOMEM); the
// output is then unchanged.
int worker_job_output_add(worker_job_t *job, const void *data, size_t size, size_t max);

typedef struct {
    zloop_t *loop;              // the consumer's loop: handlers add readers and timers here
    const char *topic;          // for the handler's environment or headers (borrowed)
    const char *channel;        // likewise
    int64_t timeout_ms;         // a job running longer is stopped and retried (0 = never)
    worker_done_fn *done;       // where results go
    worker_touch_fn *touch;     // where TOUCHes go (same argument)
    void *done_arg;             // its argument
    worker_metrics_t *metrics;  // handlers count their timeouts here
    bool capture_output;        // hang output on the job (--publish-topic)
    size_t max_output;          // more output than this is a failure
    nsq_http_client_tls_t tls;  // --http to https: CA and client certificate (borrowed)
} worker_handler_context_t;

typedef struct _worker_handler_t worker_handler_t;

typedef struct {
    // Begins handling job. Returns 0, or -1 if it could not start (the
    // runtime then retries the message; done is not called).
    int (*start)(worker_handler_t *self, worker_job_t *job);
    // Periodic housekeeping at now (zclock_mono ms): timeouts. May be NULL.
    void (*tick)(worker_handler_t *self, int64_t now);
    // Stops every running job at once and reports each as RETRY (shutdown).
    void (*abort_all)(worker_handler_t *self);
    // The drain is over, no job will come: wind down (processes get EOF).
    // May be NULL.
    void (*finish)(worker_handler_t *self);
    // True once finish has nothing left to wait for. May be NULL (true).
    bool (*finished)(worker_handler_t *self);
    // True once the handler cannot work any more (stdout closed).
    bool (*broken)(worker_handler_t *self);
    // Frees the handler; running jobs are dropped without a result.
    void (*destroy)(worker_handler_t *self);
} worker_handler_ops_t;

struct _worker_handler_t {
    const worker_handler_ops_t *ops;  // the implementation
    const char *name;                 // "exec", "process", "http", "file", "stdout"
};

// Runs a shell command per message (see worker_handler_exec.c). NULL on
// failure. Caller owns the result. command is copied.
worker_handler_t *worker_handler_exec_new(const worker_handler_context_t *context,
                                          const char *command);

// Runs count long-lived copies of a shell command and hands each up to
// window messages at a time over the --process protocol (see
// worker_handler_process.c and worker_frame.h). NULL on failure (logged).
// command is copied.
worker_handler_t *worker_handler_process_new(const worker_handler_context_t *context,
                                             const char *command, int count, int window);

// POSTs each body to url (see worker_handler_http.c). request_timeout_ms
// bounds one request. NULL on failure. url is copied.
worker_handler_t *worker_handler_http_new(const worker_handler_context_t *context, const char *url,
                                          int64_t request_timeout_ms);

// Appends each body and a newline to path, or to stdout when path is NULL
// (see worker_handler_file.c). Rotates at max_bytes (0 = never) or every
// rotate_interval_ms (0 = never). NULL if the file cannot be opened.
worker_handler_t *worker_handler_file_new(const worker_handler_context_t *context, const char *path,
                                          int64_t max_bytes, int64_t rotate_interval_ms);

// Self-test of the file handler; returns 0 on success.
int worker_handler_file_test(void);

static inline int worker_handler_start(worker_handler_t *self, worker_job_t *job)
{
    return self->ops->start(self, job);
}

static inline void worker_handler_tick(worker_handler_t *self, int64_t now)
{
    if (self->ops->tick)
        self->ops->tick(self, now);
}

static inline void worker_handler_abort_all(worker_handler_t *self)
{
    self->ops->abort_all(self);
}

static inline void worker_handler_finish(worker_handler_t *self)
{
    if (self->ops->finish)
        self->ops->finish(self);
}

static inline bool worker_handler_finished(worker_handler_t *self)
{
    return !self->ops->finished || self->ops->finished(self);
}

static inline bool worker_handler_broken(worker_handler_t *self)
{
    return self->ops->broken && self->ops->broken(self);
}

// Destroys *self_p and nulls it; accepts NULL.
static inline void worker_handler_destroy(worker_handler_t **self_p)
{
    if (self_p && *self_p) {
        (*self_p)->ops->destroy(*self_p);
        *self_p = NULL;
    }
}

#endif
