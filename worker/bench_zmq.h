/*  bench_zmq - nsq-bench's ZeroMQ modes: publishing with nsq_producer
    threads (zmq-pub), consuming with nsq_consumer (zmq-consume), both at
    once with latencies (zmq-e2e)
    SPDX-License-Identifier: MIT

    API: bench_zmq_pub, bench_zmq_consume, bench_zmq_e2e; bench_zmq_publish
    for modes that consume another way (tcp-consume).
*/
#ifndef BENCH_ZMQ_H
#define BENCH_ZMQ_H

#include "bench.h"

#include <stdint.h>

// Publishes config->count tagged messages to config->topic over
// config->connections producer threads and waits for them. Returns the
// number of messages whose publish failed (0 if all were acknowledged).
int64_t bench_zmq_publish(const bench_config_t *config);

// zmq-pub: publishes as bench_zmq_publish, timed; prints the result line.
// Returns 0 if every message was acknowledged, else 1.
int bench_zmq_pub(const bench_config_t *config);

// zmq-consume: subscribes with credit 0, publishes the run's messages,
// then consumes them with config->max_in_flight, timed from the first to
// the last; prints the result line. Returns 0 if all came, else 1 (also
// when the consumer cannot connect).
int bench_zmq_consume(const bench_config_t *config);

// zmq-e2e: consumes while publishing; prints the consumer's line with
// latencies and a second line (mode zmq-e2e-publish) for the publishers.
// Returns 0 if all came, else 1.
int bench_zmq_e2e(const bench_config_t *config);

#endif
