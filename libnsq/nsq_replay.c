/*  nsq_replay - sends dead letters back to their topic, or looks at them
    SPDX-License-Identifier: MIT

    Both run a consumer of (dead topic, NSQ_REPLAY_CHANNEL) on its own loop
    with two of our readers and timers on it: a 50 ms tick that ends the
    run once nothing arrived for idle_ms (or, without any connection, says
    the broker cannot be reached), and the interrupt socket. Replay
    publishes with a producer on the same broker, one message at a time,
    and finishes the dead letter only after the broker acknowledged its
    publish. Sampling holds every message it receives (so none comes back
    to it) and requeues them all, in order, when it ends.

    CURVE keys, when given, are checked first (a bad file is reported with
    its reason rather than as an unreachable broker) and then set on the
    consumer and the producer before either connects. A CURVE broker
    silently drops a client whose handshake fails, so a missing or refused
    key shows only as "no answer" after S_CONNECT_MAX_MS; that message
    says what to check.
*/
#include "nsq_replay.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq.h"
#include "nsq_curve.h"
#include "nsq_log.h"

#define S_TICK_MS        50
#define S_PROGRESS_MS    100
#define S_CREDIT_MAX     32    // replay: messages held at once
#define S_CLOSE_MS       2000  // to settle and say goodbye
#define S_CONNECT_MAX_MS 5000  // without a connection by then, the broker is unreachable

typedef struct {
    const nsq_replay_broker_t *broker;  // where, and its CURVE keys
    bool curve;                         // keys given
    const char *dead_topic;             // what is read
    char origin[NSQ_NAME_MAX + 1];      // dead_topic without ".dead": for messages with no header
    nsq_consumer_t *consumer;           // of (dead_topic, replay)
    nsq_producer_t *producer;           // replay: to the same broker
    uint64_t limit;                     // messages to take
    int idle_ms;                        // end after this long without a message
    int64_t started, last_message;      // zclock_mono
    int64_t last_progress;              // zclock_mono of the last progress call
    nsq_replay_counts_t counts;         // replay
    nsq_replay_progress_fn *progress;   // replay
    nsq_replay_sample_fn *sample;       // sample
    void *arg;                          // for the callback
    nsq_msg_t **held;                   // sample: messages held, in order
    size_t held_count;                  // sample
    bool closing;                       // sample: requeue what still arrives
    bool failed;                        // stop: error holds why
    bool unreachable;                   // failed: nothing connected in time
    char *error;                        // caller's buffer
    size_t error_size;
} s_run_t;

// Stops the run, keeping the first reason.
static void s_fail(s_run_t *run, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void s_fail(s_run_t *run, const char *format, ...)
{
    if (!run->failed) {
        va_list args;
        va_start(args, format);
        vsnprintf(run->error, run->error_size, format, args);
        va_end(args);
    }
    run->failed = true;
    nsq_consumer_stop(run->consumer);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_run_t *run = arg;
    int64_t now = zclock_mono();
    if (nsq_consumer_connected_count(run->consumer) == 0 && now - run->started > S_CONNECT_MAX_MS) {
        run->unreachable = !run->failed;
        s_fail(run, "no answer from the broker within %d s (%s)", S_CONNECT_MAX_MS / 1000,
               run->curve ? "down, or its CURVE refuses our key or has another server key"
                          : "down, or it requires CURVE keys");
        return -1;
    }
    if (nsq_consumer_connected_count(run->consumer) && now - run->last_message >= run->idle_ms)
        return -1;
    return 0;
}

static int s_on_interrupt(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    s_run_t *run = arg;
    zmsg_t *message = zmsg_recv(sock);
    zmsg_destroy(&message);
    s_fail(run, "interrupted");
    return -1;
}

static void s_report(s_run_t *run, bool force)
{
    int64_t now = zclock_mono();
    if (run->progress && (force || now - run->last_progress >= S_PROGRESS_MS)) {
        run->progress(&run->counts, run->arg);
        run->last_progress = now;
    }
}

static void s_on_replay(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_run_t *run = arg;
    run->last_message = zclock_mono();
    if (run->failed || run->counts.replayed >= run->limit) {
        nsq_consumer_req(consumer, msg, 0);  // beyond what we were asked to take
        return;
    }
    nsq_deadletter_t header;
    const void *body = nsq_msg_body(msg);
    size_t size = nsq_msg_size(msg);
    bool parsed = nsq_deadletter_parse(body, size, &header, &body, &size) == 0;
    const char *topic = parsed ? header.topic : run->origin;
    if (!parsed) {
        body = nsq_msg_body(msg);
        size = nsq_msg_size(msg);
    }
    if (size == 0 || nsq_producer_publish(run->producer, topic, body, size) != 0) {
        const char *reason =
            size == 0 ? "E_BAD_MESSAGE (empty body)" : nsq_producer_error(run->producer);
        nsq_consumer_req(consumer, msg, 0);
        s_fail(run, "publish to %s failed: %s", topic, reason);
        return;
    }
    nsq_consumer_fin(consumer, msg);
    run->counts.replayed++;
    run->counts.unparsed += !parsed;
    s_report(run, false);
    if (run->counts.replayed >= run->limit)
        nsq_consumer_stop(consumer);
}

static void s_on_sample(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_run_t *run = arg;
    run->last_message = zclock_mono();
    if (run->closing || run->held_count >= run->limit) {
        nsq_consumer_req(consumer, msg, 0);
        return;
    }
    nsq_deadletter_t header;
    const void *body;
    size_t size;
    bool parsed =
        nsq_deadletter_parse(nsq_msg_body(msg), nsq_msg_size(msg), &header, &body, &size) == 0;
    run->sample(parsed ? &header : NULL, parsed ? 0 : -1, parsed ? size : nsq_msg_size(msg),
                run->arg);
    run->held[run->held_count++] = msg;
    if (run->held_count >= run->limit)
        nsq_consumer_stop(consumer);
}

// Sets up the consumer on run's broker with handler, credit, tick and
// interrupt.
static int s_start(s_run_t *run, nsq_handler_fn *handler, uint32_t credit, zsock_t *interrupt)
{
    const nsq_replay_broker_t *broker = run->broker;
    size_t length = strlen(run->dead_topic);
    if (length > 5 && strcmp(run->dead_topic + length - 5, ".dead") == 0)
        snprintf(run->origin, sizeof run->origin, "%.*s", (int) (length - 5), run->dead_topic);
    else
        snprintf(run->origin, sizeof run->origin, "%s", run->dead_topic);
    run->consumer = nsq_consumer_new(run->dead_topic, NSQ_REPLAY_CHANNEL);
    if (!run->consumer) {
        snprintf(run->error, run->error_size, "%s is not a valid topic name", run->dead_topic);
        return -1;
    }
    nsq_consumer_set_handler(run->consumer, handler, run);
    nsq_consumer_set_max_in_flight(run->consumer, credit);
    nsq_consumer_set_client_id(run->consumer, "nsq-replay");
    zloop_t *loop = nsq_consumer_loop(run->consumer);
    if ((run->curve
         && nsq_consumer_set_curve(run->consumer, broker->key_file, broker->server_key_file))
        || nsq_consumer_connect(run->consumer, broker->address)
        || zloop_timer(loop, S_TICK_MS, 0, s_on_tick, run) < 0
        || (interrupt && zloop_reader(loop, interrupt, s_on_interrupt, run))) {
        snprintf(run->error, run->error_size, "cannot connect to %s", broker->address);
        return -1;
    }
    run->started = run->last_message = run->last_progress = zclock_mono();
    return 0;
}

static void s_finish(s_run_t *run, zsock_t *interrupt)
{
    if (interrupt)
        zloop_reader_end(nsq_consumer_loop(run->consumer), interrupt);
    nsq_consumer_close(run->consumer, S_CLOSE_MS);
    nsq_consumer_destroy(&run->consumer);
}

// Takes broker (its address and keys) into run and checks the keys.
// Returns 0, or -1 with the reason in run->error.
static int s_broker(s_run_t *run, const nsq_replay_broker_t *broker)
{
    run->broker = broker;
    run->curve = (broker->key_file && broker->key_file[0])
                 || (broker->server_key_file && broker->server_key_file[0]);
    return run->curve ? nsq_curve_client_check(broker->key_file, broker->server_key_file,
                                               run->error, run->error_size)
                      : 0;
}

// Replay's producer on run's broker (with its keys). Returns 0, or -1
// with the reason in run->error.
static int s_producer(s_run_t *run)
{
    const nsq_replay_broker_t *broker = run->broker;
    run->producer = nsq_producer_new(broker->address);
    if (run->producer
        && (!run->curve
            || nsq_producer_set_curve(run->producer, broker->key_file, broker->server_key_file)
                   == 0))
        return 0;
    nsq_producer_destroy(&run->producer);
    snprintf(run->error, run->error_size, "cannot connect to %s", broker->address);
    return -1;
}

int nsq_replay_run(const nsq_replay_broker_t *broker, const char *dead_topic, uint64_t limit,
                   int idle_ms, zsock_t *interrupt, nsq_replay_progress_fn *progress, void *arg,
                   nsq_replay_counts_t *counts, char *error, size_t error_size)
{
    s_run_t run = {.dead_topic = dead_topic,
                   .limit = limit ? limit : UINT64_MAX,
                   .idle_ms = idle_ms,
                   .progress = progress,
                   .arg = arg,
                   .error = error,
                   .error_size = error_size};
    memset(counts, 0, sizeof *counts);
    error[0] = '\0';
    uint32_t credit = limit && limit < S_CREDIT_MAX ? (uint32_t) limit : S_CREDIT_MAX;
    int rc = s_broker(&run, broker) || s_producer(&run)
                 ? -1
                 : s_start(&run, s_on_replay, credit, interrupt);
    if (rc == 0) {
        nsq_consumer_run(run.consumer);
        if (zsys_interrupted)
            s_fail(&run, "interrupted");
    }
    if (run.consumer)
        s_finish(&run, interrupt);
    nsq_producer_destroy(&run.producer);
    s_report(&run, true);
    *counts = run.counts;
    return rc == 0 && !run.failed ? 0 : run.unreachable ? NSQ_REPLAY_UNREACHABLE : -1;
}

int64_t nsq_replay_sample(const nsq_replay_broker_t *broker, const char *dead_topic, size_t max,
                          int idle_ms, zsock_t *interrupt, nsq_replay_sample_fn *fn, void *arg,
                          char *error, size_t error_size)
{
    s_run_t run = {.dead_topic = dead_topic,
                   .limit = max ? max : 1,
                   .idle_ms = idle_ms,
                   .sample = fn,
                   .arg = arg,
                   .error = error,
                   .error_size = error_size};
    error[0] = '\0';
    run.held = calloc(run.limit, sizeof *run.held);
    int rc = !run.held || s_broker(&run, broker)
                 ? -1
                 : s_start(&run, s_on_sample, (uint32_t) run.limit, interrupt);
    if (rc == 0)
        nsq_consumer_run(run.consumer);
    // Back in the order received: the queue keeps its order.
    run.closing = true;
    for (size_t i = 0; run.consumer && i < run.held_count; i++)
        nsq_consumer_req(run.consumer, run.held[i], 0);
    if (run.consumer)
        s_finish(&run, interrupt);
    free(run.held);
    return rc == 0 && !run.failed ? (int64_t) run.held_count
           : run.unreachable      ? NSQ_REPLAY_UNREACHABLE
                                  : -1;
}
