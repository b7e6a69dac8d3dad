/*  broker_http_stats - a stats snapshot as the HTTP door shows it: /stats
    as JSON (NSQ's field names, so nsqadmin-style tools and KEDA's NSQ
    scaler work) or text, and /metrics in Prometheus' text format
    SPDX-License-Identifier: MIT

    Pure functions of the snapshot (broker_stats.h): they run on an HTTP
    thread, never on the core's. Topics come in the snapshot's order.

    API: broker_http_stats_json, broker_http_stats_text,
    broker_http_stats_metrics.
*/
#ifndef BROKER_HTTP_STATS_H
#define BROKER_HTTP_STATS_H

#include "broker_stats.h"

// Each returns a new string; caller frees it. NULL if out of memory.
char *broker_http_stats_json(const broker_stats_t *stats);
char *broker_http_stats_text(const broker_stats_t *stats);
char *broker_http_stats_metrics(const broker_stats_t *stats);

#endif
