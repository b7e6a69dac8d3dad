/*  lookupd_console - the web console's API: life cycle, requests, reads
    SPDX-License-Identifier: MIT

    Owns the parts the console header lists and the state the console's
    files share (lookupd_console_state.h). A request is an action (a POST,
    lookupd_console_actions.c) or a read (GET), rendered straight from the
    cluster view, the history, the jobs and the peers. The poll timer and
    the fetch thread's reader are lookupd_console_fetches.c's.
*/
#include "lookupd_console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_console_state.h"
#include "nsq_names.h"

#define S_POINTS_MAX 240  // buckets a history window holds at most
#define S_JOBS_KEPT  50   // finished actions listed

static int64_t s_step(const lookupd_console_config_t *config)
{
    int64_t step = config->stats_interval_ms > 0 ? config->stats_interval_ms : 1000;
    int64_t shortest = (config->history_window_ms + S_POINTS_MAX - 1) / S_POINTS_MAX;
    if (step < shortest)  // a multiple of the interval, so every bucket gets as many polls
        step = ((shortest + step - 1) / step) * step;
    return step;
}

lookupd_console_t *lookupd_console_new(const lookupd_console_config_t *config)
{
    lookupd_console_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    bool history = config->history_max_bytes > 0 && config->stats_interval_ms > 0
                   && config->history_window_ms > 0;
    self->history = history ? lookupd_history_new(s_step(config), config->history_window_ms,
                                                  config->history_max_bytes)
                            : NULL;
    self->cluster = lookupd_cluster_new(self->history);
    self->fetch = lookupd_fetch_new(config->auth_secret, &config->tls);
    self->jobs = lookupd_jobs_new(S_JOBS_KEPT);
    self->fetches = zlistx_new();
    self->replays = zlistx_new();
    self->peers = calloc(config->peer_count + 1, sizeof *self->peers);
    if ((history && !self->history) || !self->cluster || !self->fetch || !self->jobs
        || !self->fetches || !self->replays || !self->peers) {
        lookupd_console_destroy(&self);
        return NULL;
    }
    zlistx_set_destructor(self->fetches, lookupd_console_fetch_destructor);
    zlistx_set_destructor(self->replays, lookupd_console_replay_destructor);
    for (size_t i = 0; i < config->peer_count; i++)
        snprintf(self->peers[i].address, sizeof self->peers[i].address, "%s", config->peers[i]);
    self->config.peers = NULL;  // copied above
    snprintf(self->curve_key, sizeof self->curve_key, "%s",
             config->curve_key_file ? config->curve_key_file : "");
    snprintf(self->curve_server_key, sizeof self->curve_server_key, "%s",
             config->curve_server_key_file ? config->curve_server_key_file : "");
    self->config.curve_key_file = self->config.curve_server_key_file = NULL;  // copied too
    self->started_at = zclock_time();
    return self;
}

void lookupd_console_destroy(lookupd_console_t **self_p)
{
    lookupd_console_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zlistx_destroy(&self->replays);  // interrupts them
    if (self->loop && self->fetch)
        zloop_reader_end(self->loop, lookupd_fetch_sock(self->fetch));
    lookupd_fetch_destroy(&self->fetch);
    zlistx_destroy(&self->fetches);
    for (size_t i = 0; self->peers && i < self->config.peer_count; i++)
        json_decref(self->peers[i].info);
    free(self->peers);
    lookupd_jobs_destroy(&self->jobs);
    lookupd_cluster_destroy(&self->cluster);
    lookupd_history_destroy(&self->history);
    json_decref(self->info);
    free(self);
    *self_p = NULL;
}

int lookupd_console_start(lookupd_console_t *self, zloop_t *loop, json_t *info)
{
    self->loop = loop;
    json_decref(self->info);
    self->info = json_incref(info);
    if (zloop_reader(loop, lookupd_fetch_sock(self->fetch), lookupd_console_on_fetch, self))
        return -1;
    if (self->config.stats_interval_ms > 0
        && zloop_timer(loop, (size_t) self->config.stats_interval_ms, 0, lookupd_console_on_poll,
                       self)
               < 0)
        return -1;
    if (self->config.stats_interval_ms > 0)
        lookupd_console_on_poll(loop, 0, self);  // the console has numbers at once
    return 0;
}

// ---- reads ---------------------------------------------------------------------------------

static json_t *s_history_stats(lookupd_console_t *self)
{
    if (!self->history)
        return json_null();
    lookupd_history_stats_t stats;
    lookupd_history_stats(self->history, &stats);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "step_ms",
                     (json_int_t) s_step(&self->config), "window_ms",
                     (json_int_t) self->config.history_window_ms, "series",
                     (json_int_t) stats.series, "bytes", (json_int_t) stats.bytes, "max_bytes",
                     (json_int_t) stats.max_bytes, "refused", (json_int_t) stats.refused, "evicted",
                     (json_int_t) stats.evicted, "expired", (json_int_t) stats.expired,
                     "channel_series_bytes",
                     (json_int_t) lookupd_history_series_bytes(self->history, true));
}

json_t *lookupd_console_info_json(lookupd_console_t *self)
{
    return json_pack("{s:I, s:o}", "stats_interval_ms", (json_int_t) self->config.stats_interval_ms,
                     "history", s_history_stats(self));
}

static json_t *s_lookupd_json(lookupd_console_t *self)
{
    json_t *peers = json_array();
    for (size_t i = 0; i < self->config.peer_count; i++) {
        lookupd_console_peer_t *peer = &self->peers[i];
        json_t *row = json_pack("{s:s, s:s, s:O}", "address", peer->address, "health",
                                peer->error[0] ? "unreachable"
                                : peer->info   ? "OK"
                                               : "unknown",
                                "info", peer->info ? peer->info : json_null());
        json_object_set_new(row, "error", peer->error[0] ? json_string(peer->error) : json_null());
        json_object_set_new(row, "polled_at",
                            peer->polled_at ? json_integer(peer->polled_at) : json_null());
        json_array_append_new(peers, row);
    }
    zlistx_t *nodes = lookupd_cluster_nodes(self->cluster);
    json_t *doc = json_pack(
        "{s:O, s:I, s:I, s:o, s:o}", "info", self->info ? self->info : json_null(), "started_at",
        (json_int_t) self->started_at, "brokers", (json_int_t) (nodes ? zlistx_size(nodes) : 0),
        "console", lookupd_console_info_json(self), "peers", peers);
    zlistx_destroy(&nodes);
    return doc;
}

// The topic and channel arguments of a read: topic required when
// want_topic, channel when want_channel; both optional otherwise.
static bool s_read_args(const lookupd_console_request_t *request, bool want_topic,
                        bool want_channel, lookupd_console_answer_t *answer)
{
    if (want_topic && request->topic_size == 0)
        return lookupd_console_error(answer, 400, "MISSING_ARG_TOPIC"), false;
    if (request->topic_size && !nsq_name_is_valid_n(request->topic, request->topic_size))
        return lookupd_console_error(answer, 400, "INVALID_ARG_TOPIC"), false;
    if (want_channel && request->channel_size == 0)
        return lookupd_console_error(answer, 400, "MISSING_ARG_CHANNEL"), false;
    if (request->channel_size && !nsq_name_is_valid_n(request->channel, request->channel_size))
        return lookupd_console_error(answer, 400, "INVALID_ARG_CHANNEL"), false;
    return true;
}

static void s_read_jobs(lookupd_console_t *self, const lookupd_console_request_t *request,
                        lookupd_console_answer_t *answer)
{
    if (!request->id[0]) {
        lookupd_console_json(answer, 200, lookupd_jobs_json(self->jobs));
        return;
    }
    char *end = NULL;
    unsigned long long id = strtoull(request->id, &end, 10);
    lookupd_job_t *job = end && *end == '\0' ? lookupd_jobs_find(self->jobs, id) : NULL;
    if (!job) {
        lookupd_console_error(answer, 404, "JOB_NOT_FOUND");
        return;
    }
    lookupd_console_json(answer, 200, lookupd_job_json(job));
}

static void s_read(lookupd_console_t *self, const char *path,
                   const lookupd_console_request_t *request, lookupd_console_answer_t *answer)
{
    const char *topic = request->topic_size ? request->topic : NULL;
    const char *channel = request->channel_size ? request->channel : NULL;
    if (streq(path, "/overview"))
        lookupd_console_json(answer, 200,
                             lookupd_cluster_overview_json(self->cluster, zclock_time()));
    else if (streq(path, "/topics")) {
        if (s_read_args(request, false, false, answer))
            lookupd_console_json(answer, 200,
                                 lookupd_cluster_topics_json(self->cluster, topic, channel));
    } else if (streq(path, "/channel")) {
        if (s_read_args(request, true, true, answer))
            lookupd_console_json(answer, 200,
                                 lookupd_cluster_channel_json(self->cluster, topic, channel));
    } else if (streq(path, "/history")) {
        if (!s_read_args(request, true, false, answer))
            return;
        if (!self->history) {
            lookupd_console_error(answer, 404, "HISTORY_OFF");
            return;
        }
        lookupd_console_json(answer, 200,
                             lookupd_history_json(self->history, topic, channel ? channel : NULL));
    } else if (streq(path, "/deadletters"))
        lookupd_console_json(answer, 200, lookupd_cluster_deadletters_json(self->cluster));
    else if (streq(path, "/lookupd"))
        lookupd_console_json(answer, 200, s_lookupd_json(self));
    else if (streq(path, "/jobs"))
        s_read_jobs(self, request, answer);
    else
        lookupd_console_error(answer, 404, "NOT_FOUND");
}

bool lookupd_console_owns(const char *path)
{
    return strncmp(path, "/api/", 5) == 0;
}

void lookupd_console_handle(lookupd_console_t *self, const lookupd_console_request_t *request,
                            lookupd_console_answer_t *answer)
{
    const char *path = request->path + 4;  // after "/api"
    if (lookupd_console_act(self, path, request, answer))
        return;
    if (!streq(request->method, "GET") && !streq(request->method, "HEAD")) {
        lookupd_console_error(answer, 405, "METHOD_NOT_ALLOWED");
        return;
    }
    s_read(self, path, request, answer);
}
