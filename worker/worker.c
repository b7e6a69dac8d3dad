/*  worker - the nsq-worker runtime: consume, hand to a handler, settle
    SPDX-License-Identifier: MIT

    Each delivered message becomes a worker_job_t on a list and goes to the
    handler; the handler's result comes back to s_on_done, which settles the
    message:
        OK      FIN; the backoff level drops
        REJECT  FIN and a warning (the endpoint refuses this body for good)
        RETRY   the backoff level rises (credit 0 on every connection, then
                a probe with credit 1); REQ with requeue_delay * attempts
                (capped), or, at max_attempts, publish a dead letter
                (worker_deadletter: origin, attempts, the handler's last
                failure, the body) to the dead-letter topic on the broker
                it came from, then FIN
    A message that arrives with attempts already beyond max_attempts (its
    handler kept timing out) is dead-lettered without running the handler.

    One periodic tick (S_TICK_MS) TOUCHes each running job at half the
    msg_timeout its broker gave its connection (nsq_msg_timeout_ms), lets
    the handler enforce its timeouts, ends backoff pauses, publishes the
    gauges, and warns every S_NO_BROKER_WARN_MS while no broker is
    connected (one info line once one is).

    HTTP probes: worker_http_start (worker_http.h) decides whether an
    address that cannot be bound stops the worker.

    Drain (worker_run after SIGTERM, --max-messages or a broken handler):
    worker_drain (worker_drain.h); while its flags say draining, messages
    still arriving are requeued at once, and once it aborts (shutdown
    timeout) results are requeued with no delay.

    Dead letters go through worker_deadletter, which waits for the
    broker's acknowledgement; if it fails the message is requeued instead,
    so nothing is lost.

    Pipelines (--publish-topic): a job that ends OK with output stays on
    the list (TOUCHed as before) while worker_publisher sends the output
    to the broker its message came from without blocking the loop; the
    broker's OK brings the FIN, a refusal or a timeout a REQ (a failure
    like any other). So the output is stored before its input is FINed: a
    crash in between duplicates it, never loses it.
*/
#include "worker.h"

#include "nsq.h"
#include "nsq_curve.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "worker_backoff.h"
#include "worker_deadletter.h"
#include "worker_drain.h"
#include "worker_handler.h"
#include "worker_http.h"
#include "worker_metrics.h"
#include "worker_publisher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TICK_MS            100
#define S_PUBLISH_TIMEOUT_MS 2000       // dead letters and output: a publish's answer
#define S_NO_BROKER_WARN_MS  5000       // how often to say that no broker is connected
#define S_OUTPUT_MAX_DEFAULT (1 << 20)  // --max-output-size 0

struct _worker_t {
    worker_config_t config;             // copy; strings borrowed but auth_secret (ours)
    char *auth_secret;                  // the copy config.auth_secret points to
    nsq_consumer_t *consumer;           // the subscription
    nsq_curve_client_t curve;           // CURVE keys towards brokers (disabled = plain)
    worker_handler_t *handler;          // the one handler
    worker_backoff_t *backoff;          // failure pauses
    worker_metrics_t *metrics;          // shared with the HTTP thread
    worker_http_t *http;                // probes and metrics, NULL if none
    worker_deadletter_t *dead_letters;  // publishes the messages that failed for good
    worker_publisher_t *publisher;      // handlers' output (--publish-topic), NULL if none
    worker_job_t *jobs;                 // running jobs, newest first
    int tick_timer;                     // the periodic tick
    int64_t without_broker_since;       // zclock_mono since when none is connected, 0 while one is
    int64_t without_broker_said;        // when that was last logged
    uint32_t credit;                    // credit announced now
    int64_t started;                    // jobs handed to the handler
    int64_t handled;                    // results received
    worker_drain_t drain;               // shutting down: no new work; aborting: requeue at once
    bool broken;                        // the handler cannot go on: exit 1
};

// A job as the runtime allocates it: the handlers' view, and the way back
// from a publish callback.
typedef struct {
    worker_job_t job;  // first
    worker_t *worker;  // owner
} s_job_t;

static void s_job_link(worker_t *self, worker_job_t *job)
{
    job->prev = NULL;
    job->next = self->jobs;
    if (self->jobs)
        self->jobs->prev = job;
    self->jobs = job;
}

static void s_job_unlink(worker_t *self, worker_job_t *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        self->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
}

static void s_requeue(worker_t *self, nsq_msg_t *msg, int64_t delay_ms)
{
    nsq_consumer_req(self->consumer, msg, (uint32_t) delay_ms);
    worker_metrics_add(self->metrics, WORKER_METRIC_REQUEUED, 1);
}

static int64_t s_requeue_delay(worker_t *self, nsq_msg_t *msg)
{
    int64_t delay = self->config.requeue_delay_ms * (int64_t) nsq_msg_attempts(msg);
    return delay > self->config.max_requeue_delay_ms ? self->config.max_requeue_delay_ms : delay;
}

// Publishes msg's dead letter, then FINs it; requeues it if that fails.
static void s_dead_letter(worker_t *self, nsq_msg_t *msg, const nsq_failure_t *failure)
{
    if (worker_deadletter_publish(self->dead_letters, msg, failure)) {
        s_requeue(self, msg, self->config.max_requeue_delay_ms);
        return;
    }
    nsq_consumer_fin(self->consumer, msg);
    worker_metrics_add(self->metrics, WORKER_METRIC_DEAD_LETTERED, 1);
}

// Announces the credit the backoff allows, if it changed.
static void s_apply_credit(worker_t *self)
{
    if (self->drain.draining)
        return;  // nsq_consumer_close holds credit at 0
    uint32_t credit =
        worker_backoff_credit(self->backoff, self->config.max_in_flight, zclock_mono());
    if (credit != self->credit) {
        if (credit < self->credit)
            nsq_info("backoff level %d: credit %u", worker_backoff_level(self->backoff), credit);
        else
            nsq_info("backoff level %d: credit %u restored", worker_backoff_level(self->backoff),
                     credit);
        self->credit = credit;
        nsq_consumer_set_max_in_flight(self->consumer, credit);
        worker_metrics_set(self->metrics, WORKER_METRIC_CREDIT, credit);
    }
}

// delay_ms: the REQ delay the handler asked for (capped), or -1 for the
// runtime's own.
static void s_on_failure(worker_t *self, nsq_msg_t *msg, const nsq_failure_t *failure,
                         int64_t delay_ms)
{
    worker_metrics_add(self->metrics, WORKER_METRIC_FAILURES, 1);
    if (worker_backoff_failure(self->backoff, zclock_mono()))
        worker_metrics_add(self->metrics, WORKER_METRIC_BACKOFFS, 1);
    if (delay_ms < 0)
        delay_ms = s_requeue_delay(self, msg);
    else if (delay_ms > self->config.max_requeue_delay_ms)
        delay_ms = self->config.max_requeue_delay_ms;
    if (self->config.max_attempts && nsq_msg_attempts(msg) >= self->config.max_attempts)
        s_dead_letter(self, msg, failure);
    else
        s_requeue(self, msg, delay_ms);
}

// Settles job's message by result and frees job.
static void s_settle(worker_t *self, worker_job_t *job, worker_result_t result)
{
    int64_t now = zclock_mono();
    s_job_unlink(self, job);
    nsq_msg_t *msg = job->msg;
    if (result == WORKER_RESULT_RETRY && (self->drain.aborting || self->broken))
        s_requeue(self, msg, 0);  // not the message's fault: let another worker have it now
    else if (result == WORKER_RESULT_RETRY)
        s_on_failure(self, msg, &job->failure, job->req_delay_ms);
    else {
        nsq_consumer_fin(self->consumer, msg);
        worker_metrics_add(
            self->metrics,
            result == WORKER_RESULT_OK ? WORKER_METRIC_FINISHED : WORKER_METRIC_REJECTED, 1);
        worker_backoff_success(self->backoff, now);
    }
    free(job->output);
    free(job);
    self->handled++;
    bool done = self->config.max_messages && self->handled >= self->config.max_messages;
    if ((done || self->broken) && !self->drain.draining)
        nsq_consumer_stop(self->consumer);
    s_apply_credit(self);
}

// The broker answered the publish of a job's output: FIN or REQ its input.
static void s_on_published(void *arg, const char *error)
{
    s_job_t *owned = arg;
    worker_t *self = owned->worker;
    worker_job_t *job = &owned->job;
    if (!error) {
        worker_metrics_add(self->metrics, WORKER_METRIC_PUBLISHED, 1);
        s_settle(self, job, WORKER_RESULT_OK);
        return;
    }
    worker_job_fail(job, NSQ_FAILURE_ERROR, 0, "%s refused the output for topic %s: %s",
                    nsq_msg_broker(job->msg), self->config.publish_topic, error);
    nsq_warn("message %s: %s: requeued", nsq_msg_id(job->msg), job->failure.detail);
    s_settle(self, job, WORKER_RESULT_RETRY);
}

// Sends job's output to the publish topic on the broker its message came
// from; the answer settles the job.
static void s_publish_output(worker_t *self, worker_job_t *job)
{
    const char *broker = nsq_msg_broker(job->msg);
    if (worker_publisher_send(self->publisher, broker, self->config.publish_topic, job->output,
                              job->output_size, s_on_published, job)) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, errno, "cannot publish the output to %s: %s",
                        broker, strerror(errno));
        nsq_warn("message %s: %s: requeued", nsq_msg_id(job->msg), job->failure.detail);
        s_settle(self, job, WORKER_RESULT_RETRY);
        return;
    }
    nsq_debug("message %s: output of %zu bytes sent to topic %s on %s", nsq_msg_id(job->msg),
              job->output_size, self->config.publish_topic, broker);
    free(job->output);  // the publisher keeps its own copy
    job->output = NULL;
}

static void s_on_done(void *arg, worker_job_t *job, worker_result_t result)
{
    worker_t *self = arg;
    worker_metrics_observe(self->metrics, zclock_mono() - job->started_ms);
    if (worker_handler_broken(self->handler))
        self->broken = true;
    if (result == WORKER_RESULT_OK && job->output_size && self->publisher && !self->broken)
        s_publish_output(self, job);
    else
        s_settle(self, job, result);
}

static void s_on_touch(void *arg, worker_job_t *job)
{
    worker_t *self = arg;
    nsq_consumer_touch(self->consumer, job->msg);
    job->touched_ms = zclock_mono();
}

static void s_on_message(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    (void) consumer;
    worker_t *self = arg;
    worker_metrics_add(self->metrics, WORKER_METRIC_RECEIVED, 1);
    bool enough = self->config.max_messages && self->started >= self->config.max_messages;
    if (self->drain.draining || self->broken || enough) {
        s_requeue(self, msg, 0);  // not ours to handle any more
        return;
    }
    if (self->config.max_attempts && nsq_msg_attempts(msg) > self->config.max_attempts) {
        nsq_failure_t failure = {NSQ_FAILURE_TIMEOUT, nsq_msg_timeout_ms(msg), ""};
        snprintf(failure.detail, sizeof failure.detail,
                 "delivered %u times without a result: the broker timed it out",
                 nsq_msg_attempts(msg));
        s_dead_letter(self, msg, &failure);  // its handler kept timing out
        return;
    }
    s_job_t *owned = calloc(1, sizeof *owned);
    if (!owned) {
        s_requeue(self, msg, 0);
        return;
    }
    owned->worker = self;
    worker_job_t *job = &owned->job;
    job->msg = msg;
    job->req_delay_ms = -1;
    job->started_ms = job->touched_ms = zclock_mono();
    worker_job_fail(job, NSQ_FAILURE_ERROR, 0, "the %s handler could not start",
                    self->handler->name);  // the handler may say more
    s_job_link(self, job);
    self->started++;
    if (worker_handler_start(self->handler, job)) {
        s_job_unlink(self, job);
        s_on_failure(self, msg, &job->failure, -1);
        free(job->output);
        free(job);
    }
}

// TOUCH once half of the message's timeout has passed since the last one
// (a tick early, as the tick may come late): the broker's deadline then
// stays at least half a timeout ahead.
static bool s_touch_due(const worker_job_t *job, int64_t now)
{
    return now - job->touched_ms >= (int64_t) nsq_msg_timeout_ms(job->msg) / 2 - S_TICK_MS;
}

// Warns every S_NO_BROKER_WARN_MS while no broker is connected; says once
// when one is.
static void s_watch_brokers(worker_t *self, size_t connected, int64_t now)
{
    if (connected) {
        if (self->without_broker_since)
            nsq_info("connected to %zu broker(s)", connected);
        self->without_broker_since = 0;
        return;
    }
    if (self->drain.draining)
        return;
    if (!self->without_broker_since)
        self->without_broker_since = self->without_broker_said = now;
    if (now - self->without_broker_said < S_NO_BROKER_WARN_MS)
        return;
    self->without_broker_said = now;
    size_t known = nsq_consumer_connection_count(self->consumer);
    long long seconds = (long long) ((now - self->without_broker_since) / 1000);
    if (known)
        nsq_warn("no broker reachable for %llds: none of %zu answers, still trying", seconds,
                 known);
    else
        nsq_warn("no broker reachable for %llds: no lookupd lists one for topic %s yet", seconds,
                 self->config.topic);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    worker_t *self = arg;
    int64_t now = zclock_mono();
    for (worker_job_t *job = self->jobs; job; job = job->next)
        if (s_touch_due(job, now)) {
            nsq_consumer_touch(self->consumer, job->msg);
            job->touched_ms = now;
        }
    worker_handler_tick(self->handler, now);
    if (self->publisher)
        worker_publisher_tick(self->publisher, now);
    s_apply_credit(self);
    size_t connected = nsq_consumer_connected_count(self->consumer);
    worker_metrics_set(self->metrics, WORKER_METRIC_CONNECTIONS, connected);
    worker_metrics_set(self->metrics, WORKER_METRIC_LOOKUPD_OK,
                       nsq_consumer_lookupd_answered(self->consumer));
    s_watch_brokers(self, connected, now);
    worker_metrics_set(self->metrics, WORKER_METRIC_IN_FLIGHT,
                       nsq_consumer_in_flight(self->consumer));
    return 0;
}

static worker_handler_t *s_handler_new(worker_t *self)
{
    worker_handler_context_t context = {
        .loop = nsq_consumer_loop(self->consumer),
        .topic = self->config.topic,
        .channel = self->config.channel,
        .timeout_ms = self->config.max_msg_timeout_ms,
        .done = s_on_done,
        .touch = s_on_touch,
        .done_arg = self,
        .metrics = self->metrics,
        .capture_output = self->config.publish_topic != NULL,
        .max_output = self->config.max_output_size,
        .tls = {self->config.tls_root_ca_file, self->config.tls_cert, self->config.tls_key},
    };
    const worker_config_t *config = &self->config;
    if (config->exec_command)
        return worker_handler_exec_new(&context, config->exec_command);
    if (config->process_command)
        return worker_handler_process_new(&context, config->process_command, config->processes,
                                          config->process_window);
    if (config->http_url)
        return worker_handler_http_new(&context, config->http_url, config->http_timeout_ms);
    if (config->file_path)
        return worker_handler_file_new(&context, config->file_path, config->file_max_bytes,
                                       config->file_rotate_interval_ms);
    return worker_handler_file_new(&context, NULL, 0, 0);
}

// The publisher of --publish-topic. Returns 0, or -1 (logged).
static int s_publisher_start(worker_t *self)
{
    if (!self->config.publish_topic)
        return 0;
    if (!nsq_name_is_valid(self->config.publish_topic)) {
        nsq_error("invalid --publish-topic %s", self->config.publish_topic);
        return -1;
    }
    self->publisher = worker_publisher_new(nsq_consumer_loop(self->consumer), S_PUBLISH_TIMEOUT_MS);
    if (self->publisher) {
        worker_publisher_set_curve(self->publisher, &self->curve);
        worker_publisher_set_auth_secret(self->publisher, self->config.auth_secret);
    }
    return self->publisher ? 0 : -1;
}

worker_t *worker_new(const worker_config_t *config)
{
    worker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->auth_secret = config->auth_secret ? strdup(config->auth_secret) : NULL;
    self->config.auth_secret = self->auth_secret;
    if (!self->config.max_output_size)
        self->config.max_output_size = S_OUTPUT_MAX_DEFAULT;
    self->without_broker_since = self->without_broker_said = zclock_mono();
    self->credit = config->max_in_flight;
    self->metrics = worker_metrics_new();
    self->backoff = worker_backoff_new(config->backoff_ms, config->max_backoff_ms);
    self->consumer = nsq_consumer_new(config->topic, config->channel);
    char curve_error[512];
    if (nsq_curve_client_load(&self->curve, config->zmq_curve_key_file,
                              config->zmq_curve_server_key_file, curve_error, sizeof curve_error)) {
        nsq_error("%s", curve_error);
        worker_destroy(&self);
        return NULL;
    }
    if (self->consumer && self->curve.enabled
        && nsq_consumer_set_curve(self->consumer, config->zmq_curve_key_file,
                                  config->zmq_curve_server_key_file)) {
        worker_destroy(&self);
        return NULL;
    }
    if (self->consumer)
        nsq_consumer_set_lookupd_tls(self->consumer, config->tls_root_ca_file, config->tls_cert,
                                     config->tls_key);
    if (!self->metrics || !self->backoff || !self->consumer
        || !(self->dead_letters =
                 worker_deadletter_new(&self->config, self->curve.enabled, S_PUBLISH_TIMEOUT_MS))
        || s_publisher_start(self) || !(self->handler = s_handler_new(self))) {
        if (!self->consumer)
            nsq_error("cannot create the consumer: %s", strerror(errno));
        worker_destroy(&self);
        return NULL;
    }
    nsq_consumer_set_handler(self->consumer, s_on_message, self);
    nsq_consumer_set_auth_secret(self->consumer, self->config.auth_secret);
    nsq_consumer_set_max_in_flight(self->consumer, config->max_in_flight);
    nsq_consumer_set_heartbeat_interval(self->consumer, config->heartbeat_interval_ms);
    nsq_consumer_set_msg_timeout(self->consumer, config->msg_timeout_ms);
    worker_metrics_set(self->metrics, WORKER_METRIC_CREDIT, config->max_in_flight);
    self->tick_timer =
        zloop_timer(nsq_consumer_loop(self->consumer), S_TICK_MS, 0, s_on_tick, self);
    if (worker_http_start(&self->config, self->metrics, &self->http)) {
        worker_destroy(&self);
        return NULL;
    }
    return self;
}

void worker_destroy(worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    worker_t *self = *self_p;
    worker_http_destroy(&self->http);
    worker_handler_destroy(&self->handler);
    worker_publisher_destroy(&self->publisher);
    while (self->jobs) {
        worker_job_t *job = self->jobs;
        s_job_unlink(self, job);
        free(job->output);
        free(job);
    }
    if (self->consumer && self->tick_timer > 0)
        zloop_timer_end(nsq_consumer_loop(self->consumer), self->tick_timer);
    nsq_consumer_destroy(&self->consumer);
    worker_deadletter_destroy(&self->dead_letters);
    worker_backoff_destroy(&self->backoff);
    worker_metrics_destroy(&self->metrics);
    if (self->auth_secret)
        memset(self->auth_secret, 0, strlen(self->auth_secret));
    free(self->auth_secret);
    free(self);
    *self_p = NULL;
}

int worker_connect(worker_t *self, const char *address)
{
    return nsq_consumer_connect(self->consumer, address);
}

nsq_consumer_t *worker_consumer(worker_t *self)
{
    return self->consumer;
}

uint16_t worker_http_port_bound(worker_t *self)
{
    return self->http ? worker_http_port(self->http) : 0;
}

int worker_run(worker_t *self)
{
    nsq_info("consuming topic %s channel %s with the %s handler, max-in-flight %u",
             self->config.topic, self->config.channel, self->handler->name,
             self->config.max_in_flight);
    nsq_consumer_run(self->consumer);
    if (zsys_interrupted)
        nsq_info("signal received, draining");
    self->drain.consumer = self->consumer;
    self->drain.handler = self->handler;
    self->drain.metrics = self->metrics;
    self->drain.timeout_ms = self->config.shutdown_timeout_ms;
    worker_drain(&self->drain);
    nsq_info("exiting: received %llu, finished %llu, requeued %llu, dead-lettered %llu",
             (unsigned long long) worker_metrics_get(self->metrics, WORKER_METRIC_RECEIVED),
             (unsigned long long) worker_metrics_get(self->metrics, WORKER_METRIC_FINISHED),
             (unsigned long long) worker_metrics_get(self->metrics, WORKER_METRIC_REQUEUED),
             (unsigned long long) worker_metrics_get(self->metrics, WORKER_METRIC_DEAD_LETTERED));
    return self->broken ? 1 : 0;
}

// ---- self-test ------------------------------------------------------------------

// The default --http-address may be taken (the worker runs without probes);
// an address asked for must be free.
int worker_test(void)
{
    worker_metrics_t *metrics = worker_metrics_new();
    char error[320], taken[64];
    worker_http_t *holder =
        metrics ? worker_http_new("127.0.0.1:0", NULL, NULL, metrics, error, sizeof error) : NULL;
    if (!holder) {
        worker_metrics_destroy(&metrics);
        return -1;
    }
    snprintf(taken, sizeof taken, "127.0.0.1:%u", worker_http_port(holder));
    worker_config_t config = {
        .topic = "t",
        .channel = "c",
        .max_in_flight = 1,
        .to_stdout = true,
        .http_address = taken,
        .http_address_optional = true,
    };
    worker_t *worker = worker_new(&config);
    int failed = !worker || worker_http_port_bound(worker) != 0;
    worker_destroy(&worker);
    config.http_address_optional = false;
    worker = worker_new(&config);
    failed |= worker != NULL;
    worker_destroy(&worker);
    config.http_address = "127.0.0.1:0";
    worker = worker_new(&config);
    failed |= !worker || worker_http_port_bound(worker) == 0;
    worker_destroy(&worker);
    worker_http_destroy(&holder);
    worker_metrics_destroy(&metrics);
    return failed ? -1 : 0;
}
