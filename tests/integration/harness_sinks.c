/*  harness_sinks - a consumer through the client API that records deliveries
    SPDX-License-Identifier: MIT

    An it_sink_t is an nsq_consumer_t whose handler copies every delivery
    (id, body, attempts, timestamps) into an array the case reads. With
    auto_fin the handler settles each message; otherwise the message stays
    held until the case settles it (it_sink_fin, _req, _touch). Messages
    arrive only while a sink is pumped (it_sink_pump, it_sink_wait,
    IT_ASSERT_PUMPED).
*/
#include "harness.h"
#include "harness_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- consumer sink ----------------------------------------------------

struct _it_sink_t {
    nsq_consumer_t *consumer;  // the client API under test
    bool auto_fin;             // FIN in the handler
    it_delivery_t *items;      // every delivery, in arrival order
    size_t count;              // deliveries
    size_t capacity;           // allocated items
};

static void s_sink_handler(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    it_sink_t *self = arg;
    if (self->count == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 64;
        self->items = realloc(self->items, self->capacity * sizeof *self->items);
        IT_ASSERT(self->items, "out of memory");
    }
    it_delivery_t *item = &self->items[self->count++];
    snprintf(item->id, sizeof item->id, "%s", nsq_msg_id(msg));
    item->size = nsq_msg_size(msg);
    item->body = malloc(item->size + 1);
    IT_ASSERT(item->body, "out of memory");
    memcpy(item->body, nsq_msg_body(msg), item->size);
    item->body[item->size] = '\0';
    item->attempts = nsq_msg_attempts(msg);
    item->timestamp = nsq_msg_timestamp(msg);
    item->at_ms = it_now_ms();
    item->msg = msg;
    if (self->auto_fin) {
        nsq_consumer_fin(consumer, msg);
        item->msg = NULL;
    }
}

it_sink_t *it_sink_new(it_broker_t *broker, const char *topic, const char *channel,
                       uint32_t max_in_flight, bool auto_fin)
{
    return it_sink_new_msg_timeout(broker, topic, channel, max_in_flight, auto_fin, 0);
}

it_sink_t *it_sink_new_msg_timeout(it_broker_t *broker, const char *topic, const char *channel,
                                   uint32_t max_in_flight, bool auto_fin, uint32_t msg_timeout_ms)
{
    it_sink_t *self = calloc(1, sizeof *self);
    IT_ASSERT(self, "out of memory");
    self->auto_fin = auto_fin;
    self->consumer = nsq_consumer_new(topic, channel);
    IT_ASSERT(self->consumer, "nsq_consumer_new(%s, %s) returned NULL", topic, channel);
    nsq_consumer_set_handler(self->consumer, s_sink_handler, self);
    nsq_consumer_set_max_in_flight(self->consumer, max_in_flight);
    if (msg_timeout_ms)
        nsq_consumer_set_msg_timeout(self->consumer, msg_timeout_ms);
    IT_ASSERT(nsq_consumer_connect(self->consumer, it_broker_zmq(broker)) == 0,
              "nsq_consumer_connect(%s) failed", it_broker_zmq(broker));
    return self;
}

void it_sink_destroy(it_sink_t **self_p)
{
    it_sink_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    nsq_consumer_destroy(&self->consumer);
    for (size_t index = 0; index < self->count; index++)
        free(self->items[index].body);
    free(self->items);
    free(self);
}

nsq_consumer_t *it_sink_consumer(it_sink_t *self)
{
    return self->consumer;
}

size_t it_sink_count(it_sink_t *self)
{
    return self->count;
}

it_delivery_t *it_sink_get(it_sink_t *self, size_t index)
{
    IT_ASSERT(index < self->count, "delivery %zu of %zu", index, self->count);
    return &self->items[index];
}

size_t it_sink_count_body(it_sink_t *self, const char *body)
{
    size_t matches = 0;
    for (size_t index = 0; index < self->count; index++)
        matches += strcmp(self->items[index].body, body) == 0;
    return matches;
}

void it_sink_pump(it_sink_t **sinks, size_t count, int milliseconds)
{
    int slice = count ? milliseconds / (int) count : milliseconds;
    for (size_t index = 0; index < count; index++)
        nsq_consumer_poll(sinks[index]->consumer, slice > 0 ? slice : 1);
    if (count == 0)
        it_sleep_ms(milliseconds);
}

bool it_sink_wait(it_sink_t *self, size_t count, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (self->count < count) {
        int64_t remaining = deadline - it_now_ms();
        if (remaining <= 0)
            return false;
        nsq_consumer_poll(self->consumer, remaining < 50 ? (int) remaining : 50);
    }
    return true;
}

static nsq_msg_t *s_sink_take(it_sink_t *self, size_t index, bool keep)
{
    it_delivery_t *item = it_sink_get(self, index);
    IT_ASSERT(item->msg, "delivery %zu (%s) is not held", index, item->id);
    nsq_msg_t *msg = item->msg;
    if (!keep)
        item->msg = NULL;
    return msg;
}

void it_sink_fin(it_sink_t *self, size_t index)
{
    nsq_msg_t *msg = s_sink_take(self, index, false);
    IT_ASSERT(nsq_consumer_fin(self->consumer, msg) == 0, "nsq_consumer_fin failed");
}

void it_sink_req(it_sink_t *self, size_t index, uint32_t delay_ms)
{
    nsq_msg_t *msg = s_sink_take(self, index, false);
    IT_ASSERT(nsq_consumer_req(self->consumer, msg, delay_ms) == 0, "nsq_consumer_req failed");
}

void it_sink_touch(it_sink_t *self, size_t index)
{
    nsq_msg_t *msg = s_sink_take(self, index, true);
    IT_ASSERT(nsq_consumer_touch(self->consumer, msg) == 0, "nsq_consumer_touch failed");
}
