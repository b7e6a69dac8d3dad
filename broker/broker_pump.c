/*  broker_pump - the topics whose held messages their channels could take
    now: the work after each batch visits these, not every topic
    SPDX-License-Identifier: MIT
*/
#include "broker_pump.h"

#include <stdlib.h>

struct _broker_pump_t {
    broker_topic_t **topics;  // the set, in no order (borrowed)
    size_t count;             // entries used
    size_t capacity;          // entries allocated
};

broker_pump_t *broker_pump_new(void)
{
    return calloc(1, sizeof(broker_pump_t));
}

void broker_pump_destroy(broker_pump_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->topics);  // the topics are not touched: they may be freed already
    free(*self_p);
    *self_p = NULL;
}

void broker_pump_add(broker_pump_t *self, broker_topic_t *topic)
{
    if (broker_topic_pump_slot(topic) != 0 || !broker_topic_wants_pump(topic))
        return;
    if (self->count == self->capacity) {
        size_t capacity = self->capacity ? 2 * self->capacity : 16;
        broker_topic_t **topics = realloc(self->topics, capacity * sizeof *topics);
        if (!topics)
            return;
        self->topics = topics;
        self->capacity = capacity;
    }
    self->topics[self->count++] = topic;
    broker_topic_set_pump_slot(topic, self->count);  // slots count from 1: 0 = not in the set
}

// Takes the entry at index out: the last one moves into its place.
static void s_take_out(broker_pump_t *self, size_t index)
{
    broker_topic_set_pump_slot(self->topics[index], 0);
    self->topics[index] = self->topics[--self->count];
    if (index < self->count)
        broker_topic_set_pump_slot(self->topics[index], index + 1);
}

void broker_pump_remove(broker_pump_t *self, broker_topic_t *topic)
{
    size_t slot = broker_topic_pump_slot(topic);
    if (slot != 0 && slot <= self->count && self->topics[slot - 1] == topic)
        s_take_out(self, slot - 1);
}

void broker_pump_run(broker_pump_t *self, int64_t now)
{
    for (size_t i = 0; i < self->count;) {
        broker_topic_t *topic = self->topics[i];
        if (broker_topic_pump(topic, now) && broker_topic_wants_pump(topic))
            i++;
        else
            s_take_out(self, i);  // the last one moved to i: look at i again
    }
}

size_t broker_pump_size(const broker_pump_t *self)
{
    return self->count;
}

// Publishes one message to topic; returns the publish result.
static int s_test_publish(broker_topic_t *topic, uint64_t id)
{
    nsq_message_t *message = nsq_message_new("body", 4);
    message->id = id;
    int rc = broker_topic_publish(topic, &message, 1, 0, 0);
    nsq_message_unref(&message);  // still ours only if refused
    return rc;
}

int broker_pump_test(void)
{
    broker_config_t config;
    broker_config_for_test(&config, "", 100000, 0);  // memory only
    broker_pump_t *pump = broker_pump_new();
    broker_topic_t *idle = broker_topic_new("idle", &config);
    broker_topic_t *busy = broker_topic_new("busy", &config);
    if (!pump || !idle || !busy || !broker_topic_add_channel(idle, "c", 0))
        return -1;
    // Idle, and a topic holding messages without a channel: neither wants a pump.
    for (uint64_t id = 1; id <= 25000; id++)
        if (s_test_publish(busy, id))
            return -1;
    broker_pump_add(pump, idle);
    broker_pump_add(pump, busy);
    if (broker_pump_size(pump) != 0)
        return -1;
    // Its first channel takes one batch at once; the rest wants pumps.
    broker_channel_t *channel = broker_topic_add_channel(busy, "c", 0);
    broker_pump_add(pump, busy);
    broker_pump_add(pump, busy);  // once only
    if (!channel || broker_pump_size(pump) != 1 || broker_topic_depth(busy) == 0)
        return -1;
    for (int i = 0; i < 10 && broker_pump_size(pump) > 0; i++)
        broker_pump_run(pump, 0);
    if (broker_pump_size(pump) != 0 || broker_topic_depth(busy) != 0
        || broker_channel_depth(channel) != 25000 || broker_topic_pump_slot(busy) != 0)
        return -1;
    // A topic paused while in the set leaves it at the next run, keeping
    // its backlog; unpaused, it is added and drains again.
    broker_topic_pause(busy);
    for (uint64_t id = 30001; id <= 55000; id++)
        if (s_test_publish(busy, id))
            return -1;
    broker_pump_add(pump, busy);
    if (broker_pump_size(pump) != 0)
        return -1;
    broker_topic_unpause(busy, 0);  // hands a batch on at once
    broker_pump_add(pump, busy);
    broker_topic_pause(busy);
    broker_pump_run(pump, 0);
    if (broker_pump_size(pump) != 0 || broker_topic_depth(busy) != 15000)
        return -1;
    broker_topic_unpause(busy, 0);
    broker_pump_add(pump, busy);
    for (int i = 0; i < 10 && broker_pump_size(pump) > 0; i++)
        broker_pump_run(pump, 0);
    if (broker_pump_size(pump) != 0 || broker_topic_depth(busy) != 0)
        return -1;
    broker_pump_remove(pump, idle);  // not in it: nothing happens
    // The server frees its topics before the set: a topic still in it at
    // shutdown (a backlog) is not touched again (ASan would see it).
    broker_topic_pause(busy);
    for (uint64_t id = 60001; id <= 85000; id++)
        if (s_test_publish(busy, id))
            return -1;
    broker_topic_unpause(busy, 0);  // hands a batch on, keeps the rest
    broker_pump_add(pump, busy);
    if (broker_pump_size(pump) != 1)
        return -1;
    broker_topic_destroy(&idle);
    broker_topic_destroy(&busy);
    broker_pump_destroy(&pump);
    return 0;
}
