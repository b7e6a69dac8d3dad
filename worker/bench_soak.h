/*  bench_soak - nsq-bench's soak mode: publish and consume at a steady rate
    for a long time and account for every message
    SPDX-License-Identifier: MIT

    One publisher thread sends MPUB batches of sequence-numbered bodies at
    the asked rate and waits for each answer; a batch that fails or times
    out (a broker restarting) is sent again, the same sequence numbers,
    until it is acknowledged. The consumer on the calling thread marks each
    sequence number it receives in a bitmap. At the end it waits until every
    acknowledged message arrived (or nothing arrived for a while) and prints
    one line:
        mode=soak seconds=S rate=R published=P received=N lost=L
        duplicated=D retries=T errors=E
    lost counts acknowledged messages that never arrived, duplicated the
    deliveries of a sequence number seen before, retries the batches sent
    again, errors the batches given up (failing for a minute).

    API: bench_soak_run.
*/
#ifndef BENCH_SOAK_H
#define BENCH_SOAK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *zmq_address;  // broker ZeroMQ host:port (borrowed)
    const char *topic;        // where to publish and consume (borrowed)
    const char *channel;      //
    uint64_t run_id;          // first 8 bytes of every body: ours or not
    int64_t rate;             // messages per second to publish (> 0)
    int64_t duration_ms;      // how long to publish
    size_t size;              // body size, at least 24 bytes
    size_t batch;             // messages per MPUB
    uint32_t max_in_flight;   // consumer credit
} bench_soak_config_t;

// Runs the soak and prints its result line. Returns 0 if nothing was lost,
// duplicated or given up, 1 otherwise.
int bench_soak_run(const bench_soak_config_t *config);

#endif
