/*  nsq-bench - measure publish, consume and end-to-end rates against a broker
    SPDX-License-Identifier: MIT

    One run per invocation, one result line on stdout:
        mode=M count=N size=S seconds=X msgs_per_sec=Y mb_per_sec=Z [p50_us= p99_us=]
        [errors=E] [foreign=F]
    (bench_report); soak prints its own line (bench_soak.h).

    This file parses the options into bench_config_t (bench.h), completes
    it and runs the mode asked for; the modes live in bench_http (http-*),
    bench_zmq (zmq-*), bench_tcp (tcp-*), bench_soak and bench_raw.

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
#include "bench.h"
#include "bench_http.h"
#include "bench_raw.h"
#include "bench_report.h"
#include "bench_soak.h"
#include "bench_tcp.h"
#include "bench_zmq.h"
#include "nsq.h"
#include "nsq_curve.h"
#include "nsq_log.h"
#include "nsq_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// Each option fills its field of bench_config_t.
static const nsq_option_spec_t s_specs[] = {
    {"mode", NSQ_OPTION_STRING, "zmq-pub", 0, 0, false,
     "http-pub, http-mpub, zmq-pub, zmq-consume, zmq-e2e, tcp-pub, tcp-consume, soak, raw-zmq or "
     "raw-zmq-ping-pong",
     NSQ_OPTION_FIELD(bench_config_t, mode)},
    {"count", NSQ_OPTION_INT, "100000", 1, 1000000000, false, "messages to send or receive",
     NSQ_OPTION_FIELD(bench_config_t, count)},
    {"size", NSQ_OPTION_SIZE, "100", 1, 1048576, false, "message body size in bytes",
     NSQ_OPTION_FIELD(bench_config_t, size)},
    {"batch", NSQ_OPTION_INT, "0", 0, 100000, false,
     "messages per /mpub request or MPUB; 0: 1 for the zmq modes, else 100",
     NSQ_OPTION_FIELD(bench_config_t, batch)},
    {"connections", NSQ_OPTION_INT, "1", 1, 1024, false,
     "concurrent HTTP connections or ZeroMQ producer threads",
     NSQ_OPTION_FIELD(bench_config_t, connections)},
    {"window", NSQ_OPTION_INT, "1000", 1, 65536, false,
     "unacknowledged messages per ZeroMQ producer (at least one PUB)",
     NSQ_OPTION_FIELD(bench_config_t, window)},
    {"max-in-flight", NSQ_OPTION_INT, "2500", 1, 1000000, false, "consumer credit",
     NSQ_OPTION_FIELD(bench_config_t, max_in_flight)},
    {"rate", NSQ_OPTION_INT, "0", 0, 100000000, false,
     "zmq-e2e, soak: messages per second to publish (0 = as fast as possible)",
     NSQ_OPTION_FIELD(bench_config_t, rate)},
    {"duration", NSQ_OPTION_DURATION, "10m", 1000, 86400000, false, "soak: how long to publish",
     NSQ_OPTION_FIELD(bench_config_t, duration_ms)},
    {"http-address", NSQ_OPTION_STRING, "127.0.0.1:4151", 0, 0, false, "broker HTTP address",
     NSQ_OPTION_FIELD(bench_config_t, http_address)},
    {"zmq-address", NSQ_OPTION_STRING, "127.0.0.1:4152", 0, 0, false, "broker ZeroMQ address",
     NSQ_OPTION_FIELD(bench_config_t, zmq_address)},
    {"tcp-address", NSQ_OPTION_STRING, "127.0.0.1:4150", 0, 0, false, "broker NSQ TCP address",
     NSQ_OPTION_FIELD(bench_config_t, tcp_address)},
    {"topic", NSQ_OPTION_STRING, "", 0, 0, false,
     "topic to publish to and consume; empty: bench-RUNID, new for each run",
     NSQ_OPTION_FIELD(bench_config_t, topic)},
    {"channel", NSQ_OPTION_STRING, "", 0, 0, false,
     "channel to consume; empty: bench-RUNID, new for each run",
     NSQ_OPTION_FIELD(bench_config_t, channel)},
    {"log-level", NSQ_OPTION_STRING, "warn", 0, 0, false, "debug, info, warn or error",
     NSQ_OPTION_FIELD(bench_config_t, log_level)},
    NSQ_CURVE_CLIENT_OPTION_ROWS(bench_config_t, ),
    {"auth-secret", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "secret for a broker with --auth-http-address (HTTP: Authorization: Bearer; ZeroMQ: "
     "AUTH); prefer NSQ_BENCH_AUTH_SECRET",
     NSQ_OPTION_FIELD(bench_config_t, auth_secret)},
};

// ---- raw ZeroMQ ceilings ------------------------------------------------------

static int s_raw_bench(const bench_config_t *config, bool ping_pong)
{
    bench_raw_result_t result;
    int rc = ping_pong ? bench_raw_ping_pong(config->count, config->size, &result)
                       : bench_raw_push_pull(config->count, config->size, &result);
    if (rc == 0)
        bench_report(config->mode, config->size, result.count, result.seconds, result.latencies,
                     (size_t) result.count, 0, 0);
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
        id = (uint64_t) bench_clock_ns(CLOCK_REALTIME) ^ ((uint64_t) getpid() << 40);
    if (random)
        fclose(random);
    return id ? id : 1;
}

// Completes the parsed config: the run id, and the run's own topic and
// channel where none was named.
static void s_configure(bench_config_t *config)
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
    if (reads_tags && config->size < sizeof(bench_tag_t))
        config->size = sizeof(bench_tag_t);  // the tag must fit
}

static int s_soak_bench(const bench_config_t *config)
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

static int s_tcp_bench(const bench_config_t *config, bool consume)
{
    bench_tcp_config_t tcp = {config->tcp_address,    config->topic,
                              config->channel,        config->run_id,
                              config->count,          config->size,
                              (size_t) config->batch, (size_t) config->connections,
                              config->window,         config->max_in_flight};
    bench_tcp_result_t result;
    if (!consume) {
        int rc = bench_tcp_publish(&tcp, &result);
        bench_report(config->mode, config->size, result.count, result.seconds, NULL, 0,
                     result.errors, 0);
        return rc;
    }
    // As zmq-consume: subscribed before the (ZeroMQ) publishing, then timed.
    bench_tcp_consumer_t *consumer = bench_tcp_subscribe(&tcp);
    if (!consumer)
        return 1;
    int64_t failed = bench_zmq_publish(config);
    int rc = bench_tcp_consume(consumer, config->count - failed, &result);
    bench_tcp_consumer_destroy(&consumer);
    bench_report(config->mode, config->size, result.count, result.seconds, NULL, 0,
                 failed + result.errors, result.foreign);
    return rc || failed ? 1 : 0;
}

static int s_bench(const bench_config_t *config)
{
    // First: these fork before any ZeroMQ socket or thread exists.
    if (streq(config->mode, "raw-zmq") || streq(config->mode, "zmq-raw-push"))
        return s_raw_bench(config, false);
    if (streq(config->mode, "raw-zmq-ping-pong"))
        return s_raw_bench(config, true);
    if (streq(config->mode, "http-pub"))
        return bench_http_run(config, false);
    if (streq(config->mode, "http-mpub"))
        return bench_http_run(config, true);
    if (streq(config->mode, "zmq-pub"))
        return bench_zmq_pub(config);
    if (streq(config->mode, "zmq-consume"))
        return bench_zmq_consume(config);
    if (streq(config->mode, "zmq-e2e"))
        return bench_zmq_e2e(config);
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
    bench_config_t config = {0};
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
