/*  worker_deadletter - publishes the messages that failed for good to the
    dead-letter topic, on the broker each came from (see worker_deadletter.h)
    SPDX-License-Identifier: MIT

    Publishing waits for the broker's acknowledgement (a local broker, a
    fraction of a millisecond; the timeout at worst), on the loop thread;
    the caller requeues the message if it fails, so nothing is lost. The
    letter names the broker as --broker-address takes it (no tcp://).
*/
#include "worker_deadletter.h"

#include "nsq_log.h"
#include "nsq_names.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct _worker_deadletter_t {
    const worker_config_t *config;  // borrowed: topic, channel, CURVE keys, auth secret
    char topic[128];                // the dead-letter topic, resolved
    bool curve;                     // producers use config's CURVE keys
    int64_t timeout_ms;             // for a publish's answer
    zhashx_t *producers;            // broker endpoint -> nsq_producer_t
};

worker_deadletter_t *worker_deadletter_new(const worker_config_t *config, bool curve,
                                           int64_t timeout_ms)
{
    worker_deadletter_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = config;
    self->curve = curve;
    self->timeout_ms = timeout_ms;
    self->producers = zhashx_new();
    if (!self->producers) {
        worker_deadletter_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->producers, (zhashx_destructor_fn *) nsq_producer_destroy);
    if (config->dead_letter_topic)
        snprintf(self->topic, sizeof self->topic, "%s", config->dead_letter_topic);
    else
        snprintf(self->topic, sizeof self->topic, "%s.dead", config->topic);
    if (!nsq_name_is_valid(self->topic)) {
        nsq_error("invalid dead-letter topic %s (set --dead-letter-topic)", self->topic);
        worker_deadletter_destroy(&self);
    }
    return self;
}

void worker_deadletter_destroy(worker_deadletter_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy(&(*self_p)->producers);
    free(*self_p);
    *self_p = NULL;
}

static nsq_producer_t *s_producer(worker_deadletter_t *self, const char *broker)
{
    nsq_producer_t *producer = zhashx_lookup(self->producers, broker);
    if (!producer) {
        producer = nsq_producer_new(broker);
        if (!producer)
            return NULL;
        nsq_producer_set_timeout(producer, self->timeout_ms);
        if (self->curve
            && nsq_producer_set_curve(producer, self->config->zmq_curve_key_file,
                                      self->config->zmq_curve_server_key_file)) {
            nsq_producer_destroy(&producer);
            return NULL;
        }
        nsq_producer_set_auth_secret(producer, self->config->auth_secret);
        zhashx_insert(self->producers, broker, producer);
    }
    return producer;
}

static int64_t s_wall_clock_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}

// msg's dead letter: where it came from, why it failed, its body. Caller
// frees; NULL with the reason logged.
static uint8_t *s_build(worker_deadletter_t *self, nsq_msg_t *msg, const nsq_failure_t *failure,
                        size_t *size)
{
    nsq_deadletter_t header = {
        .attempts = nsq_msg_attempts(msg),
        .first_seen = nsq_msg_timestamp(msg),
        .dead_at = s_wall_clock_ns(),
        .failure = *failure,
    };
    const char *broker = nsq_msg_broker(msg);
    if (strncmp(broker, "tcp://", 6) == 0)
        broker += 6;  // the ZeroMQ address as --broker-address takes it
    snprintf(header.topic, sizeof header.topic, "%s", self->config->topic);
    snprintf(header.channel, sizeof header.channel, "%s", self->config->channel);
    snprintf(header.id, sizeof header.id, "%s", nsq_msg_id(msg));
    snprintf(header.broker, sizeof header.broker, "%s", broker);
    uint8_t *letter = nsq_deadletter_build(&header, nsq_msg_body(msg), nsq_msg_size(msg), size);
    if (!letter)
        nsq_error("cannot build the dead letter of message %s: %s", nsq_msg_id(msg),
                  strerror(errno));
    return letter;
}

// Publishes msg's dead letter to the dead-letter topic on its broker, then

int worker_deadletter_publish(worker_deadletter_t *self, nsq_msg_t *msg,
                              const nsq_failure_t *failure)
{
    const char *broker = nsq_msg_broker(msg);
    size_t size = 0;
    uint8_t *letter = s_build(self, msg, failure, &size);
    nsq_producer_t *producer = letter ? s_producer(self, broker) : NULL;
    if (!producer || nsq_producer_publish(producer, self->topic, letter, size)) {
        nsq_error("cannot publish message %s to %s on %s (%s): requeued", nsq_msg_id(msg),
                  self->topic, broker, producer ? nsq_producer_error(producer) : "");
        free(letter);
        return -1;
    }
    free(letter);
    nsq_warn("message %s failed %u attempt(s), last: %s %lld (%s): moved to topic %s on %s",
             nsq_msg_id(msg), nsq_msg_attempts(msg), nsq_failure_kind_name(failure->kind),
             (long long) failure->code, failure->detail, self->topic, broker);
    return 0;
}
