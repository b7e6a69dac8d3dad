/*  broker_stats - a snapshot of the core's topics, channels and clients as
    plain data, for /stats and /metrics
    SPDX-License-Identifier: MIT
*/
#include "broker_stats.h"

#include <stdlib.h>
#include <string.h>

broker_stats_t *broker_stats_new(size_t topic_count)
{
    broker_stats_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->topics = calloc(topic_count ? topic_count : 1, sizeof *self->topics);
    if (!self->topics) {
        free(self);
        return NULL;
    }
    return self;
}

static int s_compare_topics(const void *a, const void *b)
{
    return strcmp(((const broker_stats_topic_t *) a)->name,
                  ((const broker_stats_topic_t *) b)->name);
}

void broker_stats_sort(broker_stats_t *self)
{
    qsort(self->topics, self->topic_count, sizeof *self->topics, s_compare_topics);
}

void broker_stats_destroy(broker_stats_t **self_p)
{
    broker_stats_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->topic_count; i++) {
        broker_stats_topic_t *topic = &self->topics[i];
        for (size_t j = 0; j < topic->channel_count; j++)
            free(topic->channels[j].clients);
        free(topic->channels);
    }
    free(self->topics);
    free(self);
    *self_p = NULL;
}
