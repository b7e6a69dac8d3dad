/*  bench_raw - nsq-bench's ceilings: plain libzmq between two processes
    over tcp loopback, with no broker and no protocol, for the broker's
    figures to be read against
    SPDX-License-Identifier: MIT

    push-pull: a PUSH sends count messages of size bytes as fast as it can,
    a PULL receives them; timed from the first message to the last. The
    ceiling for zmq-consume and for batched zmq-pub.
    ping-pong: a DEALER sends one message of size bytes and waits for a
    ROUTER to echo it, count times (one outstanding); each round trip is
    timed. The ceiling for zmq-pub with one message per PUB and --window=1.

    Each run forks: call it before any ZeroMQ context or thread exists.
*/
#ifndef BENCH_RAW_H
#define BENCH_RAW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t count;       // messages (push-pull) or round trips (ping-pong)
    double seconds;      // how long they took
    int64_t *latencies;  // ping-pong: ns per round trip (count of them), else NULL; caller frees
} bench_raw_result_t;

// Runs PUSH/PULL. Returns 0, or 1 if the run failed.
int bench_raw_push_pull(int64_t count, size_t size, bench_raw_result_t *result);

// Runs DEALER/ROUTER ping-pong. Returns 0, or 1 if the run failed.
int bench_raw_ping_pong(int64_t count, size_t size, bench_raw_result_t *result);

#endif
