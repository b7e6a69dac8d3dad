/*  nsq-bench - measure publish, consume and end-to-end rates against a broker
    SPDX-License-Identifier: MIT

    One run per invocation, one result line on stdout:
        mode=M count=N size=S seconds=X msgs_per_sec=Y mb_per_sec=Z [p50_us= p99_us=]
        [errors=E] [foreign=F]

    Every run has a random run id. Unless --topic / --channel name them, it
    publishes to and consumes from its own topic and channel (bench-RUNID),
    so nothing left over from an earlier run is counted. Every body starts
    with the run id and the send time (16 bytes; --size is raised to that
    where a mode reads them back), and the consuming modes count only their
    own messages: others are finished and reported as foreign=F.

    Modes:
        http-pub      N x POST /pub over --connections keep-alive connections
                      (libcurl multi, one easy handle per connection)
        http-mpub     the same with /mpub?binary=true, --batch messages each
        zmq-pub       nsq_producer_publish_async (--batch 1) or
                      nsq_producer_mpublish_async (MPUBs of --batch) with
                      --window messages unanswered, --connections producers
                      in threads
        zmq-consume   publishes N messages (as zmq-pub, consumer subscribed but
                      paused), then a consumer with --max-in-flight receives
                      them; timed from its first to its last message
        zmq-e2e       publisher threads (optionally paced by --rate) and a
                      consumer at once; latency from the send time in the body
                      to receipt (one process, one monotonic clock); a second
                      line, mode=zmq-e2e-publish, gives the publishers' rate
        soak          --rate messages per second for --duration, published in
                      MPUBs of --batch (a failed batch is sent again) and
                      consumed at once; reports messages lost and duplicated
                      (bench_soak.h); bench/soak.sh restarts the broker midway
        tcp-pub       MPUBs of --batch over --connections NSQ TCP (V2)
                      connections, --window messages unanswered on each
        tcp-consume   as zmq-consume, the consumer on NSQ TCP (bench_tcp.h)
        raw-zmq       plain zmq_send/zmq_recv PUSH/PULL between two processes
                      over tcp loopback: the ceiling for zmq-consume and
                      batched zmq-pub (alias zmq-raw-push; bench_raw.h)
        raw-zmq-ping-pong  plain DEALER/ROUTER, one message of --size out
                      and back at a time: the ceiling for zmq-pub with
                      --batch=1 --window=1; reports the round trip's p50/p99
*/
#include "bench_raw.h"
#include "bench_soak.h"
#include "bench_tcp.h"
#include "nsq.h"
#include "nsq_curve.h"
#include "nsq_log.h"
#include "nsq_options.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    const char *mode;                       // --mode
    int64_t count;                          // messages
    size_t size;                            // body bytes
    int64_t batch;                          // messages per /mpub or MPUB
    int64_t connections;                    // HTTP connections or producer threads
    size_t window;                          // unacknowledged ZeroMQ publishes
    uint32_t max_in_flight;                 // consumer credit
    int64_t rate;                           // messages per second, 0 = unpaced
    int64_t duration_ms;                    // soak: how long to publish
    const char *http_address;               // broker HTTP
    const char *zmq_address;                // broker ZeroMQ
    const char *tcp_address;                // broker NSQ TCP
    const char *log_level;                  // --log-level
    uint64_t run_id;                        // starts every body this run publishes
    char topic[65];                         // --topic, or bench-RUNID
    char channel[65];                       // --channel, or bench-RUNID
    const char *zmq_curve_key_file;         // CURVE: our key pair, NULL = plain
    const char *zmq_curve_server_key_file;  // CURVE: the broker's public certificate
    char auth_secret[1024];  // --auth-secret, "" = none (blanked in argv once copied)
} s_config_t;

// Each option fills its field of s_config_t.
static const nsq_option_spec_t s_specs[] = {
    {"mode", NSQ_OPTION_STRING, "zmq-pub", 0, 0, false,
     "http-pub, http-mpub, zmq-pub, zmq-consume, zmq-e2e, tcp-pub, tcp-consume, soak, raw-zmq or "
     "raw-zmq-ping-pong",
     NSQ_OPTION_FIELD(s_config_t, mode)},
    {"count", NSQ_OPTION_INT, "100000", 1, 1000000000, false, "messages to send or receive",
     NSQ_OPTION_FIELD(s_config_t, count)},
    {"size", NSQ_OPTION_SIZE, "100", 1, 1048576, false, "message body size in bytes",
     NSQ_OPTION_FIELD(s_config_t, size)},
    {"batch", NSQ_OPTION_INT, "0", 0, 100000, false,
     "messages per /mpub request or MPUB; 0: 1 for the zmq modes, else 100",
     NSQ_OPTION_FIELD(s_config_t, batch)},
    {"connections", NSQ_OPTION_INT, "1", 1, 1024, false,
     "concurrent HTTP connections or ZeroMQ producer threads",
     NSQ_OPTION_FIELD(s_config_t, connections)},
    {"window", NSQ_OPTION_INT, "1000", 1, 65536, false,
     "unacknowledged messages per ZeroMQ producer (at least one PUB)",
     NSQ_OPTION_FIELD(s_config_t, window)},
    {"max-in-flight", NSQ_OPTION_INT, "2500", 1, 1000000, false, "consumer credit",
     NSQ_OPTION_FIELD(s_config_t, max_in_flight)},
    {"rate", NSQ_OPTION_INT, "0", 0, 100000000, false,
     "zmq-e2e, soak: messages per second to publish (0 = as fast as possible)",
     NSQ_OPTION_FIELD(s_config_t, rate)},
    {"duration", NSQ_OPTION_DURATION, "10m", 1000, 86400000, false, "soak: how long to publish",
     NSQ_OPTION_FIELD(s_config_t, duration_ms)},
    {"http-address", NSQ_OPTION_STRING, "127.0.0.1:4151", 0, 0, false, "broker HTTP address",
     NSQ_OPTION_FIELD(s_config_t, http_address)},
    {"zmq-address", NSQ_OPTION_STRING, "127.0.0.1:4152", 0, 0, false, "broker ZeroMQ address",
     NSQ_OPTION_FIELD(s_config_t, zmq_address)},
    {"tcp-address", NSQ_OPTION_STRING, "127.0.0.1:4150", 0, 0, false, "broker NSQ TCP address",
     NSQ_OPTION_FIELD(s_config_t, tcp_address)},
    {"topic", NSQ_OPTION_STRING, "", 0, 0, false,
     "topic to publish to and consume; empty: bench-RUNID, new for each run",
     NSQ_OPTION_FIELD(s_config_t, topic)},
    {"channel", NSQ_OPTION_STRING, "", 0, 0, false,
     "channel to consume; empty: bench-RUNID, new for each run",
     NSQ_OPTION_FIELD(s_config_t, channel)},
    {"log-level", NSQ_OPTION_STRING, "warn", 0, 0, false, "debug, info, warn or error",
     NSQ_OPTION_FIELD(s_config_t, log_level)},
    NSQ_CURVE_CLIENT_OPTION_ROWS(s_config_t, ),
    {"auth-secret", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "secret for a broker with --auth-http-address (HTTP: Authorization: Bearer; ZeroMQ: "
     "AUTH); prefer NSQ_BENCH_AUTH_SECRET",
     NSQ_OPTION_FIELD(s_config_t, auth_secret)},
};

// What every published body starts with.
typedef struct {
    uint64_t run_id;  // the run that published it
    int64_t sent_ns;  // CLOCK_MONOTONIC when it was published
} s_tag_t;

static int64_t s_clock_ns(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}

static int s_compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

// Prints the result line. latencies (ns, count of them) may be NULL.
static void s_report(const s_config_t *config, int64_t count, double seconds, int64_t *latencies,
                     size_t latency_count, int64_t errors, int64_t foreign)
{
    double rate = seconds > 0 ? (double) count / seconds : 0;
    printf("mode=%s count=%lld size=%zu seconds=%.3f msgs_per_sec=%.0f mb_per_sec=%.2f",
           config->mode, (long long) count, config->size, seconds, rate,
           rate * (double) config->size / 1e6);
    if (latencies && latency_count) {
        qsort(latencies, latency_count, sizeof *latencies, s_compare_int64);
        printf(" p50_us=%lld p99_us=%lld", (long long) latencies[latency_count / 2] / 1000,
               (long long) latencies[latency_count * 99 / 100] / 1000);
    }
    if (errors)
        printf(" errors=%lld", (long long) errors);
    if (foreign)
        printf(" foreign=%lld", (long long) foreign);
    printf("\n");
    fflush(stdout);
}

// ---- HTTP --------------------------------------------------------------------

static size_t s_discard(char *data, size_t size, size_t count, void *arg)
{
    (void) data;
    (void) arg;
    return size * count;
}

// Builds an /mpub?binary=true body of count messages of size bytes.
static char *s_mpub_body(size_t count, size_t size, size_t *length)
{
    *length = 4 + count * (4 + size);
    char *body = malloc(*length);
    if (!body)
        return NULL;
    uint32_t header = htonl((uint32_t) count);
    memcpy(body, &header, 4);
    char *at = body + 4;
    for (size_t i = 0; i < count; i++) {
        uint32_t message_size = htonl((uint32_t) size);
        memcpy(at, &message_size, 4);
        memset(at + 4, 'm', size);
        at += 4 + size;
    }
    return body;
}

typedef struct {
    CURL *easy;  // one keep-alive connection
    char *body;  // request body
    size_t length;
    int64_t messages;  // messages in this request
} s_http_slot_t;

// Points slot at its next request: messages messages (1 for /pub).
static int s_http_prepare(s_http_slot_t *slot, const s_config_t *config, const char *url,
                          int64_t messages, bool mpub)
{
    if (slot->messages != messages || !slot->body) {
        free(slot->body);
        slot->body = mpub ? s_mpub_body((size_t) messages, config->size, &slot->length)
                          : malloc(config->size);
        if (!slot->body)
            return -1;
        if (!mpub) {
            slot->length = config->size;
            memset(slot->body, 'p', config->size);
        }
        slot->messages = messages;
    }
    curl_easy_setopt(slot->easy, CURLOPT_URL, url);
    curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, slot->body);
    curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) slot->length);
    curl_easy_setopt(slot->easy, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(slot->easy, CURLOPT_PRIVATE, slot);
    return 0;
}

typedef struct {
    const s_config_t *config;
    CURLM *multi;
    char url[512];
    bool mpub;
    int64_t issued;     // messages put in requests so far
    int64_t completed;  // messages whose request finished
    int64_t errors;     // failed messages
    struct curl_slist *headers;
} s_http_run_t;

// Starts slot's next request if messages remain. Returns 1 if started.
static int s_http_issue(s_http_run_t *run, s_http_slot_t *slot)
{
    int64_t left = run->config->count - run->issued;
    if (left <= 0)
        return 0;
    int64_t messages = run->mpub ? (left < run->config->batch ? left : run->config->batch) : 1;
    if (s_http_prepare(slot, run->config, run->url, messages, run->mpub))
        return 0;
    curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, run->headers);
    run->issued += messages;
    curl_multi_add_handle(run->multi, slot->easy);
    return 1;
}

// Collects finished requests and reuses their handles.
static void s_http_collect(s_http_run_t *run)
{
    int queued;
    CURLMsg *info;
    while ((info = curl_multi_info_read(run->multi, &queued))) {
        if (info->msg != CURLMSG_DONE)
            continue;
        s_http_slot_t *slot = NULL;
        long status = 0;
        curl_easy_getinfo(info->easy_handle, CURLINFO_PRIVATE, (char **) &slot);
        curl_easy_getinfo(info->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (info->data.result != CURLE_OK || status != 200)
            run->errors += slot->messages;
        run->completed += slot->messages;
        curl_multi_remove_handle(run->multi, slot->easy);
        s_http_issue(run, slot);
    }
}

static int s_http_bench(const s_config_t *config, bool mpub)
{
    s_http_run_t run = {.config = config, .mpub = mpub};
    snprintf(run.url, sizeof run.url, "http://%s/%s?topic=%s%s", config->http_address,
             mpub ? "mpub" : "pub", config->topic, mpub ? "&binary=true" : "");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run.multi = curl_multi_init();
    run.headers = curl_slist_append(NULL, "Expect:");
    if (config->auth_secret[0]) {
        char header[sizeof config->auth_secret + 32];
        snprintf(header, sizeof header, "Authorization: Bearer %s", config->auth_secret);
        run.headers = curl_slist_append(run.headers, header);
    }
    size_t slots_count = (size_t) config->connections;
    s_http_slot_t *slots = calloc(slots_count, sizeof *slots);
    int64_t start = s_clock_ns(CLOCK_MONOTONIC);
    for (size_t i = 0; i < slots_count; i++) {
        slots[i].easy = curl_easy_init();
        s_http_issue(&run, &slots[i]);
    }
    while (run.completed < run.issued && !zsys_interrupted) {
        int running = 0;
        curl_multi_perform(run.multi, &running);
        s_http_collect(&run);
        if (run.completed < run.issued)
            curl_multi_poll(run.multi, NULL, 0, 100, NULL);
    }
    double seconds = (double) (s_clock_ns(CLOCK_MONOTONIC) - start) / 1e9;
    s_report(config, run.completed - run.errors, seconds, NULL, 0, run.errors, 0);
    for (size_t i = 0; i < slots_count; i++) {
        curl_multi_remove_handle(run.multi, slots[i].easy);
        curl_easy_cleanup(slots[i].easy);
        free(slots[i].body);
    }
    free(slots);
    curl_slist_free_all(run.headers);
    curl_multi_cleanup(run.multi);
    curl_global_cleanup();
    return run.errors ? 1 : 0;
}

// ---- ZeroMQ publishing ---------------------------------------------------------

typedef struct {
    const s_config_t *config;
    int64_t count;   // messages this thread publishes
    int64_t failed;  // messages whose publish failed (roughly: a failure is seen late)
    int64_t end_ns;  // monotonic ns when its last publish was answered
} s_publisher_t;

// Sleeps until message number index is due at config->rate per second.
static void s_pace(const s_config_t *config, int64_t start, int64_t index)
{
    if (config->rate <= 0)
        return;
    int64_t due = start + index * 1000000000 / config->rate;
    int64_t wait = due - s_clock_ns(CLOCK_MONOTONIC);
    if (wait > 0) {
        struct timespec delay = {wait / 1000000000, wait % 1000000000};
        nanosleep(&delay, NULL);
    }
}

// Writes this run's tag, stamped now, into body (as much of it as fits).
static void s_stamp(const s_config_t *config, char *body)
{
    s_tag_t tag = {config->run_id, s_clock_ns(CLOCK_MONOTONIC)};
    memcpy(body, &tag, config->size < sizeof tag ? config->size : sizeof tag);
}

// Publishes self->count messages in PUBs of up to config->batch bodies,
// with config->window messages (at least one PUB) unanswered.
static void *s_publisher_run(void *arg)
{
    s_publisher_t *self = arg;
    const s_config_t *config = self->config;
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
    int64_t start = s_clock_ns(CLOCK_MONOTONIC);
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
    self->end_ns = s_clock_ns(CLOCK_MONOTONIC);
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
static s_publisher_t *s_publishers_start(const s_config_t *config, size_t threads, pthread_t *ids)
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

static int s_zmq_pub_bench(const s_config_t *config)
{
    size_t threads = (size_t) config->connections;
    pthread_t ids[1024];
    int64_t start = s_clock_ns(CLOCK_MONOTONIC);
    s_publisher_t *publishers = s_publishers_start(config, threads, ids);
    int64_t failed = s_publishers_join(publishers, threads, ids, NULL);
    double seconds = (double) (s_clock_ns(CLOCK_MONOTONIC) - start) / 1e9;
    s_report(config, config->count - failed, seconds, NULL, 0, failed, 0);
    return failed ? 1 : 0;
}

// ---- ZeroMQ consuming ----------------------------------------------------------

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
    int64_t now = s_clock_ns(CLOCK_MONOTONIC);
    s_tag_t tag = {0, 0};
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
    int64_t now = s_clock_ns(CLOCK_MONOTONIC);
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
static nsq_consumer_t *s_consumer_start(const s_config_t *config, s_counter_t *counter,
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
        int64_t deadline = s_clock_ns(CLOCK_MONOTONIC) + 10000000000LL;
        while (nsq_consumer_connected_count(consumer) == 0 && !zsys_interrupted
               && s_clock_ns(CLOCK_MONOTONIC) < deadline)
            nsq_consumer_poll(consumer, 50);
        if (nsq_consumer_connected_count(consumer) > 0)
            return consumer;
    }
    fprintf(stderr, "nsq-bench: cannot consume %s/%s from %s\n", config->topic, config->channel,
            config->zmq_address);
    nsq_consumer_destroy(&consumer);
    return NULL;
}

static int s_zmq_consume_bench(const s_config_t *config)
{
    s_counter_t counter = {.run_id = config->run_id};
    // Subscribed before publishing, so the channel gets every message.
    nsq_consumer_t *consumer = s_consumer_start(config, &counter, 0);
    if (!consumer)
        return 1;
    size_t threads = (size_t) config->connections;
    pthread_t ids[1024];
    s_publisher_t *publishers = s_publishers_start(config, threads, ids);
    int64_t failed = s_publishers_join(publishers, threads, ids, NULL);
    counter.target = config->count - failed;  // a failed publish never arrives
    nsq_consumer_set_max_in_flight(consumer, config->max_in_flight);
    if (counter.target > 0)
        nsq_consumer_run(consumer);
    nsq_consumer_close(consumer, 1000);
    nsq_consumer_destroy(&consumer);
    double seconds = (double) (counter.last_ns - counter.first_ns) / 1e9;
    s_report(config, counter.received, seconds, NULL, 0, failed, counter.foreign);
    return counter.received >= counter.target && !failed ? 0 : 1;
}

static int s_zmq_e2e_bench(const s_config_t *config)
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
    int64_t start = s_clock_ns(CLOCK_MONOTONIC);
    s_publisher_t *publishers = s_publishers_start(config, threads, ids);
    nsq_consumer_run(consumer);
    double seconds = (double) (s_clock_ns(CLOCK_MONOTONIC) - start) / 1e9;
    int64_t published_ns = start;
    int64_t failed = s_publishers_join(publishers, threads, ids, &published_ns);
    nsq_consumer_close(consumer, 1000);
    nsq_consumer_destroy(&consumer);
    size_t measured =
        (size_t) (counter.received < counter.target ? counter.received : counter.target);
    s_report(config, counter.received, seconds, counter.latencies, measured, failed,
             counter.foreign);
    s_config_t publishing = *config;
    publishing.mode = "zmq-e2e-publish";
    s_report(&publishing, config->count - failed, (double) (published_ns - start) / 1e9, NULL, 0,
             failed, 0);
    free(counter.latencies);
    return counter.received >= counter.target && !failed ? 0 : 1;
}

// ---- raw ZeroMQ ceilings ------------------------------------------------------

static int s_raw_bench(const s_config_t *config, bool ping_pong)
{
    bench_raw_result_t result;
    int rc = ping_pong ? bench_raw_ping_pong(config->count, config->size, &result)
                       : bench_raw_push_pull(config->count, config->size, &result);
    if (rc == 0)
        s_report(config, result.count, result.seconds, result.latencies, (size_t) result.count, 0,
                 0);
    free(result.latencies);
    return rc;
}

// ---- main ----------------------------------------------------------------------

// A random run id (never 0, so a zeroed body is never ours).
static uint64_t s_run_id(void)
{
    uint64_t id = 0;
    FILE *random = fopen("/dev/urandom", "rb");
    if (!random || fread(&id, sizeof id, 1, random) != 1)
        id = (uint64_t) s_clock_ns(CLOCK_REALTIME) ^ ((uint64_t) getpid() << 40);
    if (random)
        fclose(random);
    return id ? id : 1;
}

// Completes the parsed config: the run id, and the run's own topic and
// channel where none was named.
static void s_configure(s_config_t *config)
{
    config->run_id = s_run_id();
    char own[32];
    snprintf(own, sizeof own, "bench-%08x", (unsigned) (config->run_id & 0xffffffffu));
    if (!config->topic[0])
        snprintf(config->topic, sizeof config->topic, "%s", own);
    if (!config->channel[0])
        snprintf(config->channel, sizeof config->channel, "%s", own);
    bool reads_tags = streq(config->mode, "zmq-consume") || streq(config->mode, "zmq-e2e")
                      || streq(config->mode, "tcp-consume");
    bool zmq_mode = strncmp(config->mode, "zmq-", 4) == 0;
    if (config->batch == 0)
        config->batch = zmq_mode ? 1 : 100;
    if (streq(config->mode, "soak") && config->size < 24)
        config->size = 24;  // run id, sequence number, send time
    if (reads_tags && config->size < sizeof(s_tag_t))
        config->size = sizeof(s_tag_t);  // the tag must fit
}

static int s_soak_bench(const s_config_t *config)
{
    if (config->rate <= 0) {
        fprintf(stderr, "nsq-bench: --mode=soak needs --rate\n");
        return 2;
    }
    bench_soak_config_t soak = {
        .zmq_address = config->zmq_address,
        .topic = config->topic,
        .channel = config->channel,
        .run_id = config->run_id,
        .rate = config->rate,
        .duration_ms = config->duration_ms,
        .size = config->size,
        .batch = (size_t) config->batch,
        .max_in_flight = config->max_in_flight,
    };
    return bench_soak_run(&soak);
}

// ---- NSQ TCP ------------------------------------------------------------------

static int s_tcp_bench(const s_config_t *config, bool consume)
{
    bench_tcp_config_t tcp = {config->tcp_address,    config->topic,
                              config->channel,        config->run_id,
                              config->count,          config->size,
                              (size_t) config->batch, (size_t) config->connections,
                              config->window,         config->max_in_flight};
    bench_tcp_result_t result;
    if (!consume) {
        int rc = bench_tcp_publish(&tcp, &result);
        s_report(config, result.count, result.seconds, NULL, 0, result.errors, 0);
        return rc;
    }
    // As zmq-consume: subscribed before the (ZeroMQ) publishing, then timed.
    bench_tcp_consumer_t *consumer = bench_tcp_subscribe(&tcp);
    if (!consumer)
        return 1;
    pthread_t ids[1024];
    s_publisher_t *publishers = s_publishers_start(config, (size_t) config->connections, ids);
    int64_t failed = s_publishers_join(publishers, (size_t) config->connections, ids, NULL);
    int rc = bench_tcp_consume(consumer, config->count - failed, &result);
    bench_tcp_consumer_destroy(&consumer);
    s_report(config, result.count, result.seconds, NULL, 0, failed + result.errors, result.foreign);
    return rc || failed ? 1 : 0;
}

static int s_bench(const s_config_t *config)
{
    // First: these fork before any ZeroMQ socket or thread exists.
    if (streq(config->mode, "raw-zmq") || streq(config->mode, "zmq-raw-push"))
        return s_raw_bench(config, false);
    if (streq(config->mode, "raw-zmq-ping-pong"))
        return s_raw_bench(config, true);
    if (streq(config->mode, "http-pub"))
        return s_http_bench(config, false);
    if (streq(config->mode, "http-mpub"))
        return s_http_bench(config, true);
    if (streq(config->mode, "zmq-pub"))
        return s_zmq_pub_bench(config);
    if (streq(config->mode, "zmq-consume"))
        return s_zmq_consume_bench(config);
    if (streq(config->mode, "zmq-e2e"))
        return s_zmq_e2e_bench(config);
    if (streq(config->mode, "soak"))
        return s_soak_bench(config);
    if (streq(config->mode, "tcp-pub") || streq(config->mode, "tcp-consume"))
        return s_tcp_bench(config, streq(config->mode, "tcp-consume"));
    fprintf(stderr, "nsq-bench: unknown --mode %s\n", config->mode);
    return 2;
}

int main(int argc, char **argv)
{
    // Before any thread: two publisher threads creating the first sockets at
    // once would both initialise czmq.
    zsys_init();
    nsq_log_set_program("nsq-bench");
    nsq_options_t *options =
        nsq_options_new("nsq-bench", "NSQ_BENCH", s_specs, sizeof s_specs / sizeof s_specs[0]);
    if (!options)
        return 2;
    char error[512] = "";
    s_config_t config = {0};
    int parsed = nsq_options_parse(options, argc, argv, error, sizeof error);
    if (parsed == 0)
        nsq_options_store(options, &config);
    nsq_options_hide(argc, argv, "auth-secret");  // config has its copy
    nsq_log_level_t level = NSQ_LOG_WARN;
    if (parsed == 0 && nsq_log_level_parse(config.log_level, &level)) {
        snprintf(error, sizeof error, "invalid --log-level");
        parsed = -1;
    }
    if (parsed == 0
        && nsq_curve_client_check(config.zmq_curve_key_file, config.zmq_curve_server_key_file,
                                  error, sizeof error))
        parsed = -1;  // a refused key stops here, not in every publisher thread
    if (parsed < 0)
        fprintf(stderr, "nsq-bench: %s\n", error);
    int rc = parsed < 0 ? 2 : 0;
    if (parsed == 0) {
        nsq_log_set_level(level);
        s_configure(&config);
        rc = s_bench(&config);
    }
    nsq_options_destroy(&options);
    return rc;
}
