/*  bench_tcp - nsq-bench's NSQ TCP (protocol V2) modes: publishing in MPUB
    batches and consuming, with a minimal V2 client of their own
    SPDX-License-Identifier: MIT

    The client speaks plain V2 (no upgrades) over blocking sockets: the
    magic, IDENTIFY, MPUB with --batch messages, SUB, RDY, FIN; it reads
    frames in 64 KiB reads and writes its FINs in one write per read, as a
    client that wants throughput does.

    tcp-pub: --connections threads, each with its own connection, keep
    window MPUBs unanswered (--window messages' worth, at least one MPUB)
    and count the OKs. tcp-consume: like zmq-consume, so that the two
    compare: a TCP consumer subscribes with RDY 0, the caller publishes the
    run's messages (over ZeroMQ, as zmq-consume does), then the consumer
    sets RDY --max-in-flight and is timed from its first message of the run
    to its last; others are finished and counted as foreign.

    API: bench_tcp_publish; bench_tcp_subscribe, bench_tcp_consume,
    bench_tcp_consumer_destroy.
*/
#ifndef BENCH_TCP_H
#define BENCH_TCP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *tcp_address;  // "host:port" of the broker's TCP door
    const char *topic;        // where to publish and consume
    const char *channel;      // what to consume
    uint64_t run_id;          // the first 8 bytes of every body of this run
    int64_t count;            // messages to publish or consume
    size_t size;              // body size (>= 16: run id and send time)
    size_t batch;             // messages per MPUB
    size_t connections;       // publishing connections (threads)
    size_t window;            // unanswered messages per publishing connection
    uint32_t max_in_flight;   // the consumer's RDY
} bench_tcp_config_t;

typedef struct {
    int64_t count;    // messages published (OK) or consumed (ours)
    double seconds;   // how long they took
    int64_t errors;   // messages not published, or error frames
    int64_t foreign;  // consumed messages of other runs
} bench_tcp_result_t;

// Publishes config->count messages in MPUBs. Returns 0 if all were
// acknowledged, else 1 (errors says how many were not).
int bench_tcp_publish(const bench_tcp_config_t *config, bench_tcp_result_t *result);

typedef struct _bench_tcp_consumer_t bench_tcp_consumer_t;

// Connects, identifies and subscribes with RDY 0. Caller owns the result;
// NULL (with a line on stderr) if the broker does not answer OK.
bench_tcp_consumer_t *bench_tcp_subscribe(const bench_tcp_config_t *config);

// Sets RDY to max_in_flight and receives until target of this run's
// messages came (or none came for 10 s). Returns 0 if all came, else 1.
int bench_tcp_consume(bench_tcp_consumer_t *self, int64_t target, bench_tcp_result_t *result);

// Sends CLS, closes the connection and frees. Nulls *self_p; accepts NULL.
void bench_tcp_consumer_destroy(bench_tcp_consumer_t **self_p);

#endif
