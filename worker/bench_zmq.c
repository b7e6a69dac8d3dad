/*  bench_zmq - nsq-bench's ZeroMQ modes: zmq-pub, zmq-consume, zmq-e2e
    SPDX-License-Identifier: MIT

    Publishing: --connections threads, each with its own nsq_producer,
    share --count messages; each sends MPUBs of --batch bodies (PUB for 1)
    with --window messages (at least one MPUB) unanswered, paced by --rate
    if given, and stamps every body with the run's tag (bench.h) at send
    time. A failed publish counts its messages as failed.

    Consuming: one nsq_consumer on the calling thread, connected (IDENTIFY
    answered) before anything is published, counts the bodies that carry
    this run's id (FIN) and finishes others as foreign. zmq-consume holds
    its credit at 0 while the publishers run, then opens it and is timed
    from its first message of the run to its last; zmq-e2e consumes while
    the publishers run and records each message's latency from the send
    time in its body (one process, one monotonic clock). A run gives up
    when none of its messages came for S_IDLE_LIMIT_MS.
*/
#include "bench_zmq.h"

#include "bench_report.h"
#include "nsq.h"
#include "nsq_log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---- publishing ----------------------------------------------------------------

typedef struct {
    const bench_config_t *config;
    int64_t count;   // messages this thread publishes
    int64_t failed;  // messages whose publish failed (roughly: a failure is seen late)
    int64_t end_ns;  // monotonic ns when its last publish was answered
} s_publisher_t;

// Sleeps until message number index is due at config->rate per second.
static void s_pace(const bench_config_t *config, int64_t start, int64_t index)
{
    if (config->rate <= 0)
        return;
    int64_t due = start + index * 1000000000 / config->rate;
    int64_t wait = due - bench_now_ns();
    if (wait > 0) {
        struct timespec delay = {wait / 1000000000, wait % 1000000000};
        nanosleep(&delay, NULL);
    }
}

// Writes this run's tag, stamped now, into body (as much of it as fits).
static void s_stamp(const bench_config_t *config, char *body)
{
    bench_tag_t tag = {config->run_id, bench_now_ns()};
    memcpy(body, &tag, config->size < sizeof tag ? config->size : sizeof tag);
}

// Publishes self->count messages in PUBs of up to config->batch bodies,
// with config->window messages (at least one PUB) unanswered.
static void *s_publisher_run(void *arg)
{
    s_publisher_t *self = arg;
    const bench_config_t *config = self->config;
    size_t batch = (size_t) config->batch;
    size_t window = config->window / batch ? config->window / batch : 1;  // in PUBs
    nsq_producer_t *producer = nsq_producer_new(config->zmq_address);
    if (producer && config->zmq_curve_key_file
        && nsq_producer_set_curve(producer, config->zmq_curve_key_file,
                                  config->zmq_curve_server_key_file))
        nsq_producer_destroy(&producer);
    if (producer)
        nsq_producer_set_auth_secret(producer, config->auth_secret);
    char *buffer = calloc(batch, config->size);
    const void **bodies = calloc(batch, sizeof *bodies);
    size_t *sizes = calloc(batch, sizeof *sizes);
    if (!producer || !buffer || !bodies || !sizes)
        self->failed = self->count;
    for (size_t i = 0; !self->failed && i < batch; i++) {
        bodies[i] = buffer + i * config->size;
        sizes[i] = config->size;
    }
    if (buffer)
        memset(buffer, 'z', batch * config->size);
    int64_t start = bench_now_ns();
    for (int64_t i = 0; !self->failed && i < self->count && !zsys_interrupted;) {
        size_t count = (size_t) (self->count - i) < batch ? (size_t) (self->count - i) : batch;
        s_pace(config, start, i);
        for (size_t j = 0; j < count; j++)
            s_stamp(config, buffer + j * config->size);
        if (nsq_producer_mpublish_async(producer, config->topic, bodies, sizes, count, window))
            self->failed += (int64_t) count;
        i += (int64_t) count;
    }
    if (producer && nsq_producer_flush(producer))
        self->failed++;
    self->end_ns = bench_now_ns();
    if (self->failed)
        nsq_warn("publisher: %lld failure(s), last %s", (long long) self->failed,
                 producer ? nsq_producer_error(producer) : "E_NOMEM");
    nsq_producer_destroy(&producer);
    free(buffer);
    free(bodies);
    free(sizes);
    return NULL;
}

// Starts threads publishers sharing count messages. Caller joins them.
static s_publisher_t *s_publishers_start(const bench_config_t *config, size_t threads,
                                         pthread_t *ids)
{
    s_publisher_t *publishers = calloc(threads, sizeof *publishers);
    for (size_t i = 0; publishers && i < threads; i++) {
        publishers[i].config = config;
        publishers[i].count = config->count / (int64_t) threads
                              + ((int64_t) i < config->count % (int64_t) threads ? 1 : 0);
        pthread_create(&ids[i], NULL, s_publisher_run, &publishers[i]);
    }
    return publishers;
}

// Joins the publishers; returns the number of failures. *end_ns (if not
// NULL) becomes the time the last of them finished.
static int64_t s_publishers_join(s_publisher_t *publishers, size_t threads, pthread_t *ids,
                                 int64_t *end_ns)
{
    int64_t failed = 0;
    for (size_t i = 0; publishers && i < threads; i++) {
        pthread_join(ids[i], NULL);
        failed += publishers[i].failed;
        if (end_ns && publishers[i].end_ns > *end_ns)
            *end_ns = publishers[i].end_ns;
    }
    free(publishers);
    return failed;
}

int64_t bench_zmq_publish(const bench_config_t *config)
{
    size_t threads = (size_t) config->connections;
    pthread_t ids[1024];
    s_publisher_t *publishers = s_publishers_start(config, threads, ids);
    return s_publishers_join(publishers, threads, ids, NULL);
}

int bench_zmq_pub(const bench_config_t *config)
{
    int64_t start = bench_now_ns();
    int64_t failed = bench_zmq_publish(config);
    double seconds = (double) (bench_now_ns() - start) / 1e9;
    bench_report(config->mode, config->size, config->count - failed, seconds, NULL, 0, failed, 0);
    return failed ? 1 : 0;
}

// ---- consuming -----------------------------------------------------------------

// A consuming run gives up when none of its messages came for this long.
#define S_IDLE_LIMIT_MS 10000

typedef struct {
    uint64_t run_id;     // ours; others are foreign
    int64_t target;      // stop after this many of ours
    int64_t received;    // ours
    int64_t foreign;     // not ours: finished, not counted
    int64_t first_ns;    // monotonic time of our first
    int64_t last_ns;     // and of our last
    int64_t *latencies;  // e2e: ns per message, NULL otherwise
    int64_t idle_count;  // received at the last idle check
    int64_t idle_since;  // monotonic ns since when received has not moved
} s_counter_t;

static void s_count_handler(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_counter_t *self = arg;
    int64_t now = bench_now_ns();
    bench_tag_t tag = {0, 0};
    if (nsq_msg_size(msg) >= sizeof tag)
        memcpy(&tag, nsq_msg_body(msg), sizeof tag);
    if (tag.run_id != self->run_id) {
        self->foreign++;  // left over from another run, or another publisher's
        nsq_consumer_fin(consumer, msg);
        return;
    }
    if (self->latencies && self->received < self->target)
        self->latencies[self->received] = now > tag.sent_ns ? now - tag.sent_ns : 0;
    if (self->received++ == 0)
        self->first_ns = now;
    self->last_ns = now;
    nsq_consumer_fin(consumer, msg);
    if (self->received >= self->target)
        nsq_consumer_stop(consumer);
}

// Ends the consumer's run when none of our messages came for a while
// (publishes that failed never arrive).
static int s_on_idle_check(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_counter_t *self = arg;
    int64_t now = bench_now_ns();
    if (self->idle_since == 0 || self->received != self->idle_count) {
        self->idle_count = self->received;
        self->idle_since = now;
    }
    if (now - self->idle_since < (int64_t) S_IDLE_LIMIT_MS * 1000000)
        return 0;
    fprintf(stderr, "nsq-bench: none of this run's messages came for %d s; stopping\n",
            S_IDLE_LIMIT_MS / 1000);
    return -1;
}

// A consumer of the run's topic and channel with credit max_in_flight,
// connected (IDENTIFY answered) or NULL.
static nsq_consumer_t *s_consumer_start(const bench_config_t *config, s_counter_t *counter,
                                        uint32_t max_in_flight)
{
    nsq_consumer_t *consumer = nsq_consumer_new(config->topic, config->channel);
    if (consumer && config->zmq_curve_key_file
        && nsq_consumer_set_curve(consumer, config->zmq_curve_key_file,
                                  config->zmq_curve_server_key_file))
        nsq_consumer_destroy(&consumer);
    if (consumer)
        nsq_consumer_set_auth_secret(consumer, config->auth_secret);
    if (consumer && nsq_consumer_connect(consumer, config->zmq_address) == 0) {
        nsq_consumer_set_handler(consumer, s_count_handler, counter);
        nsq_consumer_set_max_in_flight(consumer, max_in_flight);
        zloop_timer(nsq_consumer_loop(consumer), 1000, 0, s_on_idle_check, counter);
        int64_t deadline = bench_now_ns() + 10000000000LL;
        while (nsq_consumer_connected_count(consumer) == 0 && !zsys_interrupted
               && bench_now_ns() < deadline)
            nsq_consumer_poll(consumer, 50);
        if (nsq_consumer_connected_count(consumer) > 0)
            return consumer;
    }
    fprintf(stderr, "nsq-bench: cannot consume %s/%s from %s\n", config->topic, config->channel,
            config->zmq_address);
    nsq_consumer_destroy(&consumer);
    return NULL;
}

int bench_zmq_consume(const bench_config_t *config)
{
    s_counter_t counter = {.run_id = config->run_id};
    // Subscribed before publishing, so the channel gets every message.
    nsq_consumer_t *consumer = s_consumer_start(config, &counter, 0);
    if (!consumer)
        return 1;
    int64_t failed = bench_zmq_publish(config);
    counter.target = config->count - failed;  // a failed publish never arrives
    nsq_consumer_set_max_in_flight(consumer, config->max_in_flight);
    if (counter.target > 0)
        nsq_consumer_run(consumer);
    nsq_consumer_close(consumer, 1000);
    nsq_consumer_destroy(&consumer);
    double seconds = (double) (counter.last_ns - counter.first_ns) / 1e9;
    bench_report(config->mode, config->size, counter.received, seconds, NULL, 0, failed,
                 counter.foreign);
    return counter.received >= counter.target && !failed ? 0 : 1;
}

int bench_zmq_e2e(const bench_config_t *config)
{
    s_counter_t counter = {.run_id = config->run_id, .target = config->count};
    counter.latencies = calloc((size_t) config->count, sizeof(int64_t));
    nsq_consumer_t *consumer =
        counter.latencies ? s_consumer_start(config, &counter, config->max_in_flight) : NULL;
    if (!consumer) {
        free(counter.latencies);
        return 1;
    }
    size_t threads = (size_t) config->connections;
    pthread_t ids[1024];
    int64_t start = bench_now_ns();
    s_publisher_t *publishers = s_publishers_start(config, threads, ids);
    nsq_consumer_run(consumer);
    double seconds = (double) (bench_now_ns() - start) / 1e9;
    int64_t published_ns = start;
    int64_t failed = s_publishers_join(publishers, threads, ids, &published_ns);
    nsq_consumer_close(consumer, 1000);
    nsq_consumer_destroy(&consumer);
    size_t measured =
        (size_t) (counter.received < counter.target ? counter.received : counter.target);
    bench_report(config->mode, config->size, counter.received, seconds, counter.latencies, measured,
                 failed, counter.foreign);
    bench_report("zmq-e2e-publish", config->size, config->count - failed,
                 (double) (published_ns - start) / 1e9, NULL, 0, failed, 0);
    free(counter.latencies);
    return counter.received >= counter.target && !failed ? 0 : 1;
}
