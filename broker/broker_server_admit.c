/*  broker_server_admit - the core's side of publishes admitted on the
    HTTP threads (broker_admission.h): the credit each topic gets (its
    memory reserved first) and the admitted messages taken into their
    topics
    SPDX-License-Identifier: MIT
*/
#include <czmq.h>

#include "broker_server_internal.h"
#include "broker_topic.h"
#include "nsq_log.h"

// Credit a topic keeps: enough for a burst between two takes, at most a
// quarter of its memory queue so that other publishes keep most of it.
#define S_CREDIT_COUNT 4096
#define S_CREDIT_BYTES (16ULL << 20)

broker_admission_t *broker_server_admission(broker_server_t *self)
{
    return self->admission;
}

// Tops topic's credit up (reserving its memory), unless auth is on (every
// publish is checked then).
static void s_credit(broker_server_t *self, broker_topic_t *topic)
{
    uint64_t count = (uint64_t) self->config.mem_queue_size / 4;
    uint64_t bytes = (uint64_t) self->config.mem_queue_bytes / 4;
    count = count < S_CREDIT_COUNT ? count : S_CREDIT_COUNT;
    bytes = bytes < S_CREDIT_BYTES ? bytes : S_CREDIT_BYTES;
    if (count == 0)
        return;  // a memory queue too small to share (--mem-queue-size below 4)
    const char *name = broker_topic_name(topic);
    uint64_t count_left = count, bytes_left = bytes;
    if (!self->auth)  // with auth on, each publish is checked: no credit
        broker_admission_credit(self->admission, name, &count_left, &bytes_left);
    if (count_left * 2 >= count && bytes_left * 2 >= bytes)
        return;  // half of it left: most takes skip the reservation
    count = count_left < count ? count - count_left : 0;
    bytes = bytes_left < bytes ? bytes - bytes_left : 0;
    broker_topic_reserve(topic, &count, &bytes);
    if ((count || bytes) && broker_admission_grant(self->admission, name, count, bytes) == 0)
        return;
    broker_topic_unreserve(topic, count, bytes);
}

void broker_server_grant(broker_server_t *self, const char *topic)
{
    broker_topic_t *found = zhashx_lookup(self->topics, topic);
    if (found)
        s_credit(self, found);
}

static void s_admit(void *arg, const char *topic, nsq_message_t **messages, size_t count)
{
    broker_server_t *self = arg;
    broker_topic_t *found = zhashx_lookup(self->topics, topic);
    if (!found) {  // revoked before its topic goes: cannot happen
        nsq_error("topic %s: %zu admitted messages without their topic", topic, count);
        for (size_t i = 0; i < count; i++)
            nsq_message_unref(&messages[i]);
        return;
    }
    broker_server_stamp(self, messages, count);
    broker_topic_admit(found, messages, count, zclock_mono());
    broker_pump_add(self->pump, found);  // it may hold some (no durable mode here: no dirty set)
    s_credit(self, found);
}

size_t broker_server_admit(broker_server_t *self)
{
    return broker_admission_take(self->admission, s_admit, self);
}
