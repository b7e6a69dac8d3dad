/*  bench - nsq-bench's run: the configuration its modes share, and the tag
    that starts every body it publishes
    SPDX-License-Identifier: MIT

    bench.c parses the options into bench_config_t and completes it (run id,
    the run's own topic and channel, batch and size defaults), then hands it,
    read-only, to the mode it runs (bench_http, bench_zmq, bench_tcp,
    bench_soak, bench_raw). Header only.
*/
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

// One run, as the options and bench.c's defaults made it.
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
} bench_config_t;

// What every published body starts with (as much of it as --size holds).
typedef struct {
    uint64_t run_id;  // the run that published it
    int64_t sent_ns;  // CLOCK_MONOTONIC when it was published
} bench_tag_t;

#endif
