/*  bench_soak - nsq-bench's soak mode (see bench_soak.h)
    SPDX-License-Identifier: MIT

    The publisher thread owns next_seq and the list of batches given up;
    the consumer's thread owns the bitmap and its counters. What they share
    (acknowledged count, done flag, given-up ranges) is atomic or behind one
    mutex, read by the consumer's timer only.
*/
#include "bench_soak.h"

#include "bench_report.h"
#include "nsq.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// A batch failing this long is given up (counted in errors).
#define S_GIVE_UP_MS 60000
// Once publishing ended, the consumer waits this long for the rest.
#define S_TAIL_IDLE_MS 30000
// What every body starts with.
typedef struct {
    uint64_t run_id;  // the soak that published it
    uint64_t seq;     // 0, 1, 2, ... in publishing order
    int64_t sent_ns;  // CLOCK_MONOTONIC at publishing
} s_tag_t;

typedef struct {
    const bench_soak_config_t *config;
    uint64_t capacity;          // sequence numbers the bitmap holds
    uint8_t *seen;              // bit per sequence number: received
    atomic_uint_fast64_t sent;  // sequence numbers handed out (acked or given up)
    atomic_uint_fast64_t acked;
    atomic_uint_fast64_t retries;
    atomic_uint_fast64_t errors;  // messages in batches given up
    atomic_bool publishing;       // the publisher still runs
    pthread_mutex_t lock;         // guards given_up
    uint64_t (*given_up)[2];      // [first, count) ranges never acknowledged
    size_t given_up_count;
    // consumer thread only
    uint64_t received;    // distinct sequence numbers seen
    uint64_t duplicated;  // deliveries of one seen before
    uint64_t foreign;     // not ours
    uint64_t max_seq;     // highest seen + 1
    int64_t last_arrival_ms;
    int64_t start_ms;
    int64_t last_report_ms;
} s_soak_t;

static int64_t s_now_ms(void)
{
    return bench_now_ns() / 1000000;
}

// Sends one batch until it is acknowledged or given up.
static void s_publish_batch(s_soak_t *self, nsq_producer_t *producer, char *bodies,
                            const void **pointers, const size_t *sizes, uint64_t first,
                            size_t count)
{
    const bench_soak_config_t *config = self->config;
    for (size_t i = 0; i < count; i++) {
        s_tag_t tag = {config->run_id, first + i, bench_now_ns()};
        memcpy(bodies + i * config->size, &tag, sizeof tag);
    }
    int64_t started = s_now_ms();
    while (nsq_producer_mpublish(producer, config->topic, pointers, sizes, count) != 0) {
        atomic_fetch_add(&self->retries, 1);
        fprintf(stderr, "soak: batch at %llu failed (%s), sending it again\n",
                (unsigned long long) first, nsq_producer_error(producer));
        if (s_now_ms() - started > S_GIVE_UP_MS) {
            pthread_mutex_lock(&self->lock);
            uint64_t(*grown)[2] =
                realloc(self->given_up, (self->given_up_count + 1) * sizeof *self->given_up);
            if (grown) {
                self->given_up = grown;
                self->given_up[self->given_up_count][0] = first;
                self->given_up[self->given_up_count++][1] = count;
            }
            pthread_mutex_unlock(&self->lock);
            atomic_fetch_add(&self->errors, count);
            return;
        }
        struct timespec pause = {0, 100 * 1000000};
        nanosleep(&pause, NULL);
    }
    atomic_fetch_add(&self->acked, count);
}

static void *s_publisher(void *arg)
{
    s_soak_t *self = arg;
    const bench_soak_config_t *config = self->config;
    nsq_producer_t *producer = nsq_producer_new(config->zmq_address);
    char *bodies = calloc(config->batch, config->size);
    const void **pointers = calloc(config->batch, sizeof *pointers);
    size_t *sizes = calloc(config->batch, sizeof *sizes);
    if (producer && bodies && pointers && sizes) {
        nsq_producer_set_timeout(producer, 2000);
        for (size_t i = 0; i < config->batch; i++) {
            pointers[i] = bodies + i * config->size;
            sizes[i] = config->size;
            memset(bodies + i * config->size, 's', config->size);
        }
        int64_t start = bench_now_ns(), end_ms = s_now_ms() + config->duration_ms;
        uint64_t next = 0;
        while (!zsys_interrupted && s_now_ms() < end_ms) {
            int64_t due = start + (int64_t) (next * 1000000000 / (uint64_t) config->rate);
            int64_t wait = due - bench_now_ns();
            if (wait > 0) {
                struct timespec pause = {wait / 1000000000, wait % 1000000000};
                nanosleep(&pause, NULL);
            }
            size_t count = config->batch;
            if (next + count > self->capacity)
                break;
            s_publish_batch(self, producer, bodies, pointers, sizes, next, count);
            next += count;
            atomic_store(&self->sent, next);
        }
    }
    nsq_producer_destroy(&producer);
    free(bodies);
    free(pointers);
    free(sizes);
    atomic_store(&self->publishing, false);
    return NULL;
}

static void s_on_message(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_soak_t *self = arg;
    s_tag_t tag = {0, 0, 0};
    if (nsq_msg_size(msg) >= sizeof tag)
        memcpy(&tag, nsq_msg_body(msg), sizeof tag);
    if (tag.run_id != self->config->run_id || tag.seq >= self->capacity) {
        self->foreign++;
    } else {
        uint8_t bit = (uint8_t) (1u << (tag.seq % 8));
        if (self->seen[tag.seq / 8] & bit) {
            self->duplicated++;
        } else {
            self->seen[tag.seq / 8] |= bit;
            self->received++;
        }
        if (tag.seq + 1 > self->max_seq)
            self->max_seq = tag.seq + 1;
        self->last_arrival_ms = s_now_ms();
    }
    nsq_consumer_fin(consumer, msg);
}

static bool s_given_up(s_soak_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->given_up_count; i++)
        if (seq >= self->given_up[i][0] && seq < self->given_up[i][0] + self->given_up[i][1])
            return true;
    return false;
}

// Acknowledged sequence numbers that never arrived.
static uint64_t s_lost(s_soak_t *self)
{
    uint64_t sent = atomic_load(&self->sent), lost = 0;
    pthread_mutex_lock(&self->lock);
    for (uint64_t seq = 0; seq < sent; seq++)
        if (!(self->seen[seq / 8] & (1u << (seq % 8))) && !s_given_up(self, seq))
            lost++;
    pthread_mutex_unlock(&self->lock);
    return lost;
}

// Every second: a progress line every 10 s; ends the run once publishing
// ended and everything acknowledged arrived, or nothing came for a while.
static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_soak_t *self = arg;
    int64_t now = s_now_ms();
    uint64_t acked = atomic_load(&self->acked);
    if (now - self->last_report_ms >= 10000) {
        fprintf(stderr, "soak: %llds acked=%llu received=%llu duplicated=%llu retries=%llu\n",
                (long long) (now - self->start_ms) / 1000, (unsigned long long) acked,
                (unsigned long long) self->received, (unsigned long long) self->duplicated,
                (unsigned long long) atomic_load(&self->retries));
        self->last_report_ms = now;
    }
    if (atomic_load(&self->publishing))
        return 0;
    if (self->received >= acked || now - self->last_arrival_ms > S_TAIL_IDLE_MS)
        return -1;
    return 0;
}

int bench_soak_run(const bench_soak_config_t *config)
{
    s_soak_t self = {.config = config};
    // Room for the whole run at the asked rate, and some.
    self.capacity = (uint64_t) config->rate * (uint64_t) (config->duration_ms / 1000 + 10) + 1024;
    self.seen = calloc(self.capacity / 8 + 1, 1);
    pthread_mutex_init(&self.lock, NULL);
    atomic_init(&self.publishing, true);
    nsq_consumer_t *consumer = nsq_consumer_new(config->topic, config->channel);
    if (!self.seen || !consumer || nsq_consumer_connect(consumer, config->zmq_address) != 0) {
        fprintf(stderr, "nsq-bench: cannot consume %s/%s from %s\n", config->topic, config->channel,
                config->zmq_address);
        nsq_consumer_destroy(&consumer);
        free(self.seen);
        return 1;
    }
    nsq_consumer_set_handler(consumer, s_on_message, &self);
    nsq_consumer_set_max_in_flight(consumer, config->max_in_flight);
    while (nsq_consumer_connected_count(consumer) == 0 && !zsys_interrupted)
        nsq_consumer_poll(consumer, 50);  // subscribed before the first publish
    self.start_ms = self.last_report_ms = self.last_arrival_ms = s_now_ms();
    zloop_timer(nsq_consumer_loop(consumer), 1000, 0, s_on_tick, &self);
    pthread_t publisher;
    pthread_create(&publisher, NULL, s_publisher, &self);
    nsq_consumer_run(consumer);
    pthread_join(publisher, NULL);
    nsq_consumer_close(consumer, 2000);
    nsq_consumer_destroy(&consumer);
    double seconds = (double) (s_now_ms() - self.start_ms) / 1000;
    uint64_t lost = s_lost(&self), errors = atomic_load(&self.errors);
    printf("mode=soak seconds=%.0f rate=%lld published=%llu received=%llu lost=%llu "
           "duplicated=%llu retries=%llu errors=%llu foreign=%llu\n",
           seconds, (long long) config->rate, (unsigned long long) atomic_load(&self.acked),
           (unsigned long long) self.received, (unsigned long long) lost,
           (unsigned long long) self.duplicated, (unsigned long long) atomic_load(&self.retries),
           (unsigned long long) errors, (unsigned long long) self.foreign);
    fflush(stdout);
    free(self.seen);
    free(self.given_up);
    pthread_mutex_destroy(&self.lock);
    return lost || self.duplicated || errors ? 1 : 0;
}
