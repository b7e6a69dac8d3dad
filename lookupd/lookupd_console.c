/*  lookupd_console - the web console's API
    SPDX-License-Identifier: MIT

    Requests to other processes go through the fetch thread as numbered
    fetch jobs; `fetches` maps a fetch job to what it is for (a poll round,
    or an action's job with one target row per request). Replays run as
    lookupd_replay actors, each with its own zloop reader. Reads (GET) are
    rendered straight from the cluster view and the history.
*/
#include "lookupd_console.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_cluster.h"
#include "lookupd_fetch.h"
#include "lookupd_history.h"
#include "lookupd_jobs.h"
#include "lookupd_replay.h"
#include "nsq_log.h"
#include "nsq_names.h"

#define S_JSON           "application/json; charset=utf-8"
#define S_POINTS_MAX     240    // buckets a history window holds at most
#define S_JOBS_KEPT      50     // finished actions listed
#define S_POLL_TIMEOUT   5000   // ms for one broker's /stats
#define S_ACTION_TIMEOUT 10000  // ms for one broker's action
#define S_PATH_MAX       1200   // an action's path and query, every name escaped
#define S_URL_MAX        1600

typedef struct {
    uint64_t fetch_id;  // the fetch job
    bool poll;          // a poll round, else an action
    uint64_t job_id;    // the action's job
    size_t count;       // requests
    char **targets;     // per request: node name, or "peer " + address (owned)
    size_t *rows;       // per request: the job's target row
} s_fetch_t;

typedef struct {
    char address[256];  // "host:port"
    json_t *info;       // its last /info, or NULL
    char error[256];    // why the last poll failed; "" if it did not
    int64_t polled_at;  // Unix ms
} s_peer_t;

typedef struct {
    lookupd_console_t *console;    // owner
    lookupd_replay_t *replay;      // the work
    lookupd_replay_mode_t mode;    // replay or sample
    uint64_t job_id;               // its job
    size_t row;                    // its target row
    char node[LOOKUPD_NODE_MAX];   // broker
    char topic[NSQ_NAME_MAX + 1];  // dead topic
} s_replay_t;

struct _lookupd_console_t {
    lookupd_console_config_t config;  // copy
    lookupd_history_t *history;       // NULL when off
    lookupd_cluster_t *cluster;       // the polled view
    lookupd_fetch_t *fetch;           // HTTP thread
    lookupd_jobs_t *jobs;             // actions
    zloop_t *loop;                    // borrowed, once started
    json_t *info;                     // our /info
    zlistx_t *fetches;                // s_fetch_t in progress (owned)
    zlistx_t *replays;                // s_replay_t in progress (owned)
    s_peer_t *peers;                  // config.peer_count entries
    uint64_t next_fetch;              // fetch job numbers
    bool polling;                     // a poll round runs
    int64_t started_at;               // Unix ms
};

static void s_fetch_destroy(s_fetch_t **self_p)
{
    s_fetch_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        free(self->targets[i]);
    free(self->targets);
    free(self->rows);
    free(self);
    *self_p = NULL;
}

static void s_replay_destroy(s_replay_t **self_p)
{
    s_replay_t *self = *self_p;
    if (!self)
        return;
    if (self->console->loop && self->replay)
        zloop_reader_end(self->console->loop, lookupd_replay_sock(self->replay));
    lookupd_replay_destroy(&self->replay);
    free(self);
    *self_p = NULL;
}

static void s_fetch_destructor(void **item)
{
    s_fetch_destroy((s_fetch_t **) item);
}

static void s_replay_destructor(void **item)
{
    s_replay_destroy((s_replay_t **) item);
}

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
    self->fetch = lookupd_fetch_new(config->auth_secret);
    self->jobs = lookupd_jobs_new(S_JOBS_KEPT);
    self->fetches = zlistx_new();
    self->replays = zlistx_new();
    self->peers = calloc(config->peer_count + 1, sizeof *self->peers);
    if ((history && !self->history) || !self->cluster || !self->fetch || !self->jobs
        || !self->fetches || !self->replays || !self->peers) {
        lookupd_console_destroy(&self);
        return NULL;
    }
    zlistx_set_destructor(self->fetches, s_fetch_destructor);
    zlistx_set_destructor(self->replays, s_replay_destructor);
    for (size_t i = 0; i < config->peer_count; i++)
        snprintf(self->peers[i].address, sizeof self->peers[i].address, "%s", config->peers[i]);
    self->config.peers = NULL;  // copied above
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

// ---- answers ----------------------------------------------------------------------

static void s_error(lookupd_console_answer_t *answer, int status, const char *code)
{
    answer->status = status;
    answer->type = S_JSON;
    answer->body = zsys_sprintf("{\"message\":\"%s\"}", code);
}

// Answers status with doc (taken); 500 if doc is NULL.
static void s_json(lookupd_console_answer_t *answer, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        s_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    answer->status = status;
    answer->type = S_JSON;
    answer->body = text;
}

// Writes arg percent-encoded for a query string into out.
static void s_escape(char *out, size_t size, const char *arg)
{
    char *escaped = curl_easy_escape(NULL, arg, 0);
    snprintf(out, size, "%s", escaped ? escaped : "");
    curl_free(escaped);
}

// ---- fetches: polls and action fan-outs --------------------------------------------

// Submits count requests; targets and rows (count entries each, may hold
// NULL rows for a poll) are taken. Returns 0, or -1 (everything freed).
static int s_submit(lookupd_console_t *self, bool poll, uint64_t job_id,
                    const lookupd_fetch_request_t *requests, char **targets, size_t *rows,
                    size_t count)
{
    s_fetch_t *fetch = calloc(1, sizeof *fetch);
    if (fetch) {
        *fetch = (s_fetch_t){++self->next_fetch, poll, job_id, count, targets, rows};
        if (zlistx_add_end(self->fetches, fetch)
            && lookupd_fetch_submit(self->fetch, fetch->fetch_id, requests, count) == 0)
            return 0;
        void *handle = zlistx_find(self->fetches, fetch);
        if (handle)
            zlistx_detach(self->fetches, handle);
        s_fetch_destroy(&fetch);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        free(targets[i]);
    free(targets);
    free(rows);
    return -1;
}

static int s_on_poll(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    lookupd_console_t *self = arg;
    if (self->polling)
        return 0;  // the last round is still out: this one waits
    char *text = self->config.nodes(self->config.arg);
    json_t *nodes = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!nodes || lookupd_cluster_set_nodes(self->cluster, nodes)) {
        json_decref(nodes);
        return 0;
    }
    json_decref(nodes);
    zlistx_t *brokers = lookupd_cluster_nodes(self->cluster);
    size_t count = (brokers ? zlistx_size(brokers) : 0) + self->config.peer_count;
    lookupd_fetch_request_t *requests = calloc(count + 1, sizeof *requests);
    char **targets = calloc(count + 1, sizeof *targets);
    char(*urls)[S_URL_MAX] = calloc(count + 1, S_URL_MAX);
    size_t used = 0;
    for (const char *node = brokers ? zlistx_first(brokers) : NULL;
         requests && targets && urls && node; node = zlistx_next(brokers))
        if (lookupd_cluster_url(node, "/stats?format=json", urls[used], S_URL_MAX) == 0) {
            requests[used] = (lookupd_fetch_request_t){"GET", urls[used], S_POLL_TIMEOUT};
            targets[used++] = strdup(node);
        }
    for (size_t i = 0; requests && targets && urls && i < self->config.peer_count; i++)
        if (lookupd_cluster_url(self->peers[i].address, "/info", urls[used], S_URL_MAX) == 0) {
            requests[used] = (lookupd_fetch_request_t){"GET", urls[used], S_POLL_TIMEOUT};
            targets[used++] = zsys_sprintf("peer %zu", i);
        }
    if (requests && targets && urls && used)
        self->polling = s_submit(self, true, 0, requests, targets, NULL, used) == 0;
    else {
        for (size_t i = 0; targets && i < used; i++)
            free(targets[i]);
        free(targets);
        if (self->history)  // no round to end: the history still ages
            lookupd_history_expire(self->history, zclock_time());
    }
    free(requests);
    free(urls);
    zlistx_destroy(&brokers);
    return 0;
}

static void s_peer_update(lookupd_console_t *self, size_t index,
                          const lookupd_fetch_result_t *result, int64_t now)
{
    if (index >= self->config.peer_count)
        return;
    s_peer_t *peer = &self->peers[index];
    peer->polled_at = now;
    json_t *info = result->status == 200 ? json_loadb(result->body, result->size, 0, NULL) : NULL;
    if (json_is_object(info)) {
        json_decref(peer->info);
        peer->info = info;
        peer->error[0] = '\0';
        return;
    }
    json_decref(info);
    if (result->status)
        snprintf(peer->error, sizeof peer->error, "/info answered %ld", result->status);
    else
        snprintf(peer->error, sizeof peer->error, "%s", result->error);
}

// What a failed action request says: the broker's NSQ code, curl's reason
// or the status.
static void s_failure(const lookupd_fetch_result_t *result, char *message, size_t size)
{
    json_t *doc = result->size ? json_loadb(result->body, result->size, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(doc, "message"));
    if (code)
        snprintf(message, size, "%s (HTTP %ld)", code, result->status);
    else if (result->status)
        snprintf(message, size, "HTTP %ld", result->status);
    else
        snprintf(message, size, "%s", result->error[0] ? result->error : "no answer");
    json_decref(doc);
}

// Marks job finished if it is, and logs how it went (once): what, and
// each target that failed.
static void s_job_check(lookupd_console_t *self, lookupd_job_t *job)
{
    if (lookupd_job_finished(job) || !lookupd_job_done(self->jobs, job, zclock_time()))
        return;
    json_t *doc = lookupd_job_json(job);
    char failures[512] = "";
    size_t used = 0, index;
    json_t *target;
    json_array_foreach(json_object_get(doc, "targets"), index, target)
    {
        if (streq(json_string_value(json_object_get(target, "state")), "ok") || used >= 400)
            continue;
        int wrote = snprintf(failures + used, sizeof failures - used, "; %s: %s",
                             json_string_value(json_object_get(target, "target")),
                             json_string_value(json_object_get(target, "message")));
        used += wrote > 0 ? (size_t) wrote : 0;
    }
    nsq_info("console action %llu done: %s topic=%s%s%s, %zu of %zu targets ok%s",
             (unsigned long long) lookupd_job_id(job),
             json_string_value(json_object_get(doc, "action")),
             json_string_value(json_object_get(doc, "topic")),
             *json_string_value(json_object_get(doc, "channel")) ? " channel=" : "",
             json_string_value(json_object_get(doc, "channel")), lookupd_job_ok_count(job),
             lookupd_job_target_count(job), failures);
    json_decref(doc);
}

static s_fetch_t *s_fetch_find(lookupd_console_t *self, uint64_t fetch_id)
{
    for (s_fetch_t *fetch = zlistx_first(self->fetches); fetch; fetch = zlistx_next(self->fetches))
        if (fetch->fetch_id == fetch_id)
            return fetch;
    return NULL;
}

static void s_on_result(lookupd_console_t *self, s_fetch_t *fetch,
                        const lookupd_fetch_result_t *result)
{
    int64_t now = zclock_time();
    if (result->index >= fetch->count)
        return;
    const char *target = fetch->targets[result->index];
    if (fetch->poll) {
        if (strncmp(target, "peer ", 5) == 0)
            s_peer_update(self, (size_t) atol(target + 5), result, now);
        else
            lookupd_cluster_update(self->cluster, target, result->status, result->body,
                                   result->size, result->error, now);
        return;
    }
    lookupd_job_t *job = lookupd_jobs_find(self->jobs, fetch->job_id);
    if (!job)
        return;
    char message[300] = "";
    bool ok = result->status == 200;
    if (!ok)
        s_failure(result, message, sizeof message);
    lookupd_job_settle(job, fetch->rows[result->index], ok, message);
}

static int s_on_fetch(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    lookupd_console_t *self = arg;
    lookupd_fetch_result_t result;
    if (lookupd_fetch_recv(self->fetch, &result))
        return 0;
    s_fetch_t *fetch = s_fetch_find(self, result.job);
    if (fetch && !result.done)
        s_on_result(self, fetch, &result);
    else if (fetch) {
        if (fetch->poll) {
            self->polling = false;
            if (self->history)
                lookupd_history_expire(self->history, zclock_time());
        } else {
            lookupd_job_t *job = lookupd_jobs_find(self->jobs, fetch->job_id);
            if (job)
                s_job_check(self, job);
        }
        zlistx_delete(self->fetches, zlistx_find(self->fetches, fetch));
    }
    lookupd_fetch_result_clear(&result);
    return 0;
}

int lookupd_console_start(lookupd_console_t *self, zloop_t *loop, json_t *info)
{
    self->loop = loop;
    json_decref(self->info);
    self->info = json_incref(info);
    if (zloop_reader(loop, lookupd_fetch_sock(self->fetch), s_on_fetch, self))
        return -1;
    if (self->config.stats_interval_ms > 0
        && zloop_timer(loop, (size_t) self->config.stats_interval_ms, 0, s_on_poll, self) < 0)
        return -1;
    if (self->config.stats_interval_ms > 0)
        s_on_poll(loop, 0, self);  // the console has numbers at once
    return 0;
}

// ---- dead-letter replays and samples ----------------------------------------------------

static int s_on_replay(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    s_replay_t *replay = arg;
    lookupd_console_t *self = replay->console;
    lookupd_replay_event_t event;
    if (lookupd_replay_recv(replay->replay, &event))
        return 0;
    lookupd_job_t *job = lookupd_jobs_find(self->jobs, replay->job_id);
    if (job && !event.done)
        lookupd_job_progress(job, replay->row, event.replayed, 0);
    if (event.done) {
        // A replay makes the last sample of that broker's dead topic wrong.
        if (event.sample || replay->mode == LOOKUPD_REPLAY_RUN)
            lookupd_cluster_set_sample(self->cluster, replay->node, replay->topic, event.sample);
        if (job) {
            lookupd_job_progress(job, replay->row, event.replayed, event.replayed);
            lookupd_job_settle(job, replay->row, event.ok, event.message);
            s_job_check(self, job);
        }
        // Ends its reader and its actor: safe inside the reader, zloop
        // works on a copy of its readers during a pass.
        zlistx_delete(self->replays, zlistx_find(self->replays, replay));
    }
    json_decref(event.sample);
    return 0;
}

static s_replay_t *s_replay_find(lookupd_console_t *self, const char *node, const char *topic)
{
    for (s_replay_t *replay = zlistx_first(self->replays); replay;
         replay = zlistx_next(self->replays))
        if (streq(replay->node, node) && streq(replay->topic, topic))
            return replay;
    return NULL;
}

// One replay or sample per dead topic and broker at a time: a replay
// interrupts a sample (which puts back what it held first); anything else
// finds it busy. Returns true if the new one may start.
static bool s_replay_claim(lookupd_console_t *self, lookupd_job_t *job, size_t row,
                           lookupd_replay_mode_t mode, const char *node, const char *topic)
{
    s_replay_t *running = s_replay_find(self, node, topic);
    if (!running)
        return true;
    if (mode == LOOKUPD_REPLAY_SAMPLE || running->mode == LOOKUPD_REPLAY_RUN) {
        lookupd_job_settle(job, row, mode == LOOKUPD_REPLAY_SAMPLE,
                           running->mode == LOOKUPD_REPLAY_RUN ? "a replay is running"
                                                               : "a sample is running");
        return false;
    }
    lookupd_job_t *sampling = lookupd_jobs_find(self->jobs, running->job_id);
    if (sampling) {
        lookupd_job_settle(sampling, running->row, true, "interrupted by a replay");
        s_job_check(self, sampling);
    }
    zlistx_delete(self->replays, zlistx_find(self->replays, running));  // waits for its thread
    return true;
}

// Starts a replay (or sample) of topic on node as row of job; settles the
// row at once when there is nothing to do or it cannot start.
static void s_replay_start(lookupd_console_t *self, lookupd_job_t *job, size_t row,
                           lookupd_replay_mode_t mode, const char *node, const char *topic)
{
    char broker[LOOKUPD_NODE_MAX];
    uint64_t limit = lookupd_cluster_dead_count(self->cluster, node, topic);
    if (mode == LOOKUPD_REPLAY_SAMPLE && limit > LOOKUPD_SAMPLE_MAX)
        limit = LOOKUPD_SAMPLE_MAX;
    if (limit == 0) {
        lookupd_job_settle(job, row, true, "no dead letter");
        return;
    }
    if (!s_replay_claim(self, job, row, mode, node, topic))
        return;
    s_replay_t *replay = calloc(1, sizeof *replay);
    if (replay && lookupd_cluster_zmq_address(self->cluster, node, broker, sizeof broker) == 0) {
        *replay = (s_replay_t){self, NULL, mode, lookupd_job_id(job), row, "", ""};
        snprintf(replay->node, sizeof replay->node, "%s", node);
        snprintf(replay->topic, sizeof replay->topic, "%s", topic);
        replay->replay = lookupd_replay_start(mode, broker, topic, limit);
    }
    if (replay && replay->replay && zlistx_add_end(self->replays, replay)) {
        lookupd_job_progress(job, row, 0, mode == LOOKUPD_REPLAY_RUN ? limit : 0);
        if (zloop_reader(self->loop, lookupd_replay_sock(replay->replay), s_on_replay, replay) == 0)
            return;
        zlistx_delete(self->replays, zlistx_find(self->replays, replay));
    } else
        s_replay_destroy(&replay);
    lookupd_job_settle(job, row, false, "could not start");
}

// ---- actions ------------------------------------------------------------------------------

typedef enum { S_TOPIC, S_CHANNEL, S_DEAD } s_scope_t;

typedef struct {
    const char *path;    // after "/api"
    const char *action;  // its name in jobs and logs
    s_scope_t scope;     // what it acts on
    bool registry;       // also this lookupd's registry and the peers'
} s_action_t;

static const s_action_t s_actions[] = {
    {"/topic/create", "create", S_TOPIC, true},
    {"/topic/pause", "pause", S_TOPIC, false},
    {"/topic/unpause", "unpause", S_TOPIC, false},
    {"/topic/empty", "empty", S_TOPIC, false},
    {"/topic/delete", "delete", S_TOPIC, true},
    {"/topic/tombstone", "tombstone", S_TOPIC, true},
    {"/channel/create", "create", S_CHANNEL, true},
    {"/channel/pause", "pause", S_CHANNEL, false},
    {"/channel/unpause", "unpause", S_CHANNEL, false},
    {"/channel/empty", "empty", S_CHANNEL, false},
    {"/channel/delete", "delete", S_CHANNEL, true},
    {"/deadletters/replay", "replay", S_DEAD, false},
    {"/deadletters/sample", "sample", S_DEAD, false},
};

// Checks the arguments an action needs; fills an error answer and returns
// false if one is missing or invalid.
static bool s_args_ok(const s_action_t *action, const lookupd_console_request_t *request,
                      lookupd_console_answer_t *answer)
{
    size_t length = strlen(request->topic);
    if (request->topic_size == 0)
        return s_error(answer, 400, "MISSING_ARG_TOPIC"), false;
    if (!nsq_name_is_valid_n(request->topic, request->topic_size))
        return s_error(answer, 400, "INVALID_ARG_TOPIC"), false;
    if (action->scope == S_DEAD && (length <= 5 || !streq(request->topic + length - 5, ".dead")))
        return s_error(answer, 400, "NOT_A_DEAD_LETTER_TOPIC"), false;
    if (action->scope == S_CHANNEL && request->channel_size == 0)
        return s_error(answer, 400, "MISSING_ARG_CHANNEL"), false;
    if (action->scope == S_CHANNEL && !nsq_name_is_valid_n(request->channel, request->channel_size))
        return s_error(answer, 400, "INVALID_ARG_CHANNEL"), false;
    bool tombstone = streq(action->action, "tombstone");
    if (tombstone && request->node_size == 0)
        return s_error(answer, 400, "MISSING_ARG_NODE"), false;
    if (tombstone && strlen(request->node) != request->node_size)
        return s_error(answer, 404, "PRODUCER_NOT_FOUND"), false;
    return true;
}

// The brokers an action goes to. Caller destroys the list.
static zlistx_t *s_targets(lookupd_console_t *self, const s_action_t *action, const char *topic,
                           const char *channel)
{
    bool create = streq(action->action, "create");
    if (streq(action->action, "tombstone"))
        return lookupd_cluster_holders(self->cluster, "", NULL);  // none: lookupds only
    if (create && action->scope == S_TOPIC)
        return lookupd_cluster_nodes(self->cluster);
    return lookupd_cluster_holders(self->cluster, topic,
                                   action->scope == S_CHANNEL && !create ? channel : NULL);
}

// The path and query of the HTTP call that does action on a broker (or, on
// a peer lookupd, its registry part) into path.
static void s_call_path(const s_action_t *action, const lookupd_console_request_t *request,
                        char *path, size_t size)
{
    char topic[3 * NSQ_NAME_MAX + 1], channel[3 * NSQ_NAME_MAX + 1], node[3 * 272 + 1];
    s_escape(topic, sizeof topic, request->topic);
    s_escape(channel, sizeof channel, request->channel);
    s_escape(node, sizeof node, request->node);
    if (action->scope == S_CHANNEL)
        snprintf(path, size, "/channel/%s?topic=%s&channel=%s", action->action, topic, channel);
    else if (streq(action->action, "tombstone"))
        snprintf(path, size, "/topic/tombstone?topic=%s&node=%s", topic, node);
    else
        snprintf(path, size, "/topic/%s?topic=%s", action->action, topic);
}

// Sends the action to brokers (and peers when it has a registry part) as
// rows of job.
static void s_fan_out(lookupd_console_t *self, lookupd_job_t *job, const s_action_t *action,
                      const lookupd_console_request_t *request, zlistx_t *brokers)
{
    size_t peers = action->registry ? self->config.peer_count : 0;
    size_t count = zlistx_size(brokers) + peers;
    lookupd_fetch_request_t *requests = calloc(count + 1, sizeof *requests);
    char **targets = calloc(count + 1, sizeof *targets);
    size_t *rows = calloc(count + 1, sizeof *rows);
    char(*urls)[S_URL_MAX] = calloc(count + 1, S_URL_MAX);
    char path[S_PATH_MAX];
    s_call_path(action, request, path, sizeof path);
    size_t used = 0;
    for (size_t i = 0; requests && targets && rows && urls && i < count; i++) {
        const char *node = i < peers ? self->peers[i].address
                                     : (i == peers ? zlistx_first(brokers) : zlistx_next(brokers));
        char label[300];
        snprintf(label, sizeof label, "%s%s", i < peers ? "lookupd " : "", node);
        size_t row = lookupd_job_add_target(job, label);
        if (lookupd_cluster_url(node, path, urls[used], S_URL_MAX)) {
            lookupd_job_settle(job, row, false, "address does not fit a URL");
            continue;
        }
        requests[used] = (lookupd_fetch_request_t){"POST", urls[used], S_ACTION_TIMEOUT};
        rows[used] = row;
        targets[used++] = strdup(label);
    }
    if (used && s_submit(self, false, lookupd_job_id(job), requests, targets, rows, used) != 0)
        for (size_t i = 0; i < used; i++)
            lookupd_job_settle(job, rows[i], false, "out of memory");
    if (!used) {
        free(targets);
        free(rows);
    }
    free(requests);
    free(urls);
}

// Applies the registry part on this lookupd as the job's first row.
// Returns false with an error answer when that is all the action does and
// it failed (a tombstone for a broker that does not hold the topic).
static bool s_registry_part(lookupd_console_t *self, const s_action_t *action,
                            const lookupd_console_request_t *request, char *code, size_t size)
{
    const char *channel = action->scope == S_CHANNEL ? request->channel : "";
    return self->config.registry(self->config.arg, action->action, request->topic, channel,
                                 request->node, code, size)
           == 0;
}

// Every action passes here: checks, logs who asked for what, starts the
// job. (The `admin` permission check belongs here too.)
static void s_act(lookupd_console_t *self, const s_action_t *action,
                  const lookupd_console_request_t *request, lookupd_console_answer_t *answer)
{
    if (!s_args_ok(action, request, answer))
        return;
    const char *channel = action->scope == S_CHANNEL ? request->channel : "";
    zlistx_t *brokers = s_targets(self, action, request->topic, channel);
    if (!brokers) {
        s_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    bool tombstone = streq(action->action, "tombstone");
    if (zlistx_size(brokers) == 0 && !action->registry) {
        zlistx_destroy(&brokers);
        {
            s_error(answer, 404,
                    action->scope == S_CHANNEL ? "CHANNEL_NOT_FOUND" : "TOPIC_NOT_FOUND");
            return;
        }
    }
    char code[64] = "";
    bool registry_ok =
        !action->registry || s_registry_part(self, action, request, code, sizeof code);
    if (tombstone && !registry_ok) {
        zlistx_destroy(&brokers);
        {
            s_error(answer, 404, code);
            return;
        }
    }
    lookupd_job_what_t what = {action->action, request->topic,  channel,
                               request->node,  request->remote, request->user_agent};
    lookupd_job_t *job = lookupd_jobs_start(self->jobs, &what, zclock_time());
    if (!job) {
        zlistx_destroy(&brokers);
        {
            s_error(answer, 500, "INTERNAL_ERROR");
            return;
        }
    }
    nsq_info("console action %llu: %s topic=%s%s%s%s%s by %s (%s), %zu broker(s)",
             (unsigned long long) lookupd_job_id(job), action->action, request->topic,
             channel[0] ? " channel=" : "", channel, tombstone ? " node=" : "",
             tombstone ? request->node : "", request->remote,
             request->user_agent[0] ? request->user_agent : "no user agent", zlistx_size(brokers));
    if (action->registry)  // absent from our registry is fine for delete
        lookupd_job_settle(job, lookupd_job_add_target(job, "lookupd (this)"), true,
                           registry_ok ? "" : code);
    if (action->scope == S_DEAD)
        for (const char *node = zlistx_first(brokers); node; node = zlistx_next(brokers))
            s_replay_start(self, job, lookupd_job_add_target(job, node),
                           streq(action->action, "replay") ? LOOKUPD_REPLAY_RUN
                                                           : LOOKUPD_REPLAY_SAMPLE,
                           node, request->topic);
    else
        s_fan_out(self, job, action, request, brokers);
    zlistx_destroy(&brokers);
    s_job_check(self, job);
    s_json(answer, 202, lookupd_job_json(job));
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
        s_peer_t *peer = &self->peers[i];
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
        return s_error(answer, 400, "MISSING_ARG_TOPIC"), false;
    if (request->topic_size && !nsq_name_is_valid_n(request->topic, request->topic_size))
        return s_error(answer, 400, "INVALID_ARG_TOPIC"), false;
    if (want_channel && request->channel_size == 0)
        return s_error(answer, 400, "MISSING_ARG_CHANNEL"), false;
    if (request->channel_size && !nsq_name_is_valid_n(request->channel, request->channel_size))
        return s_error(answer, 400, "INVALID_ARG_CHANNEL"), false;
    return true;
}

static void s_read_jobs(lookupd_console_t *self, const lookupd_console_request_t *request,
                        lookupd_console_answer_t *answer)
{
    if (!request->id[0]) {
        s_json(answer, 200, lookupd_jobs_json(self->jobs));
        return;
    }
    char *end = NULL;
    unsigned long long id = strtoull(request->id, &end, 10);
    lookupd_job_t *job = end && *end == '\0' ? lookupd_jobs_find(self->jobs, id) : NULL;
    if (!job) {
        s_error(answer, 404, "JOB_NOT_FOUND");
        return;
    }
    s_json(answer, 200, lookupd_job_json(job));
}

static void s_read(lookupd_console_t *self, const char *path,
                   const lookupd_console_request_t *request, lookupd_console_answer_t *answer)
{
    const char *topic = request->topic_size ? request->topic : NULL;
    const char *channel = request->channel_size ? request->channel : NULL;
    if (streq(path, "/overview"))
        s_json(answer, 200, lookupd_cluster_overview_json(self->cluster, zclock_time()));
    else if (streq(path, "/topics")) {
        if (s_read_args(request, false, false, answer))
            s_json(answer, 200, lookupd_cluster_topics_json(self->cluster, topic, channel));
    } else if (streq(path, "/channel")) {
        if (s_read_args(request, true, true, answer))
            s_json(answer, 200, lookupd_cluster_channel_json(self->cluster, topic, channel));
    } else if (streq(path, "/history")) {
        if (!s_read_args(request, true, false, answer))
            return;
        if (!self->history) {
            s_error(answer, 404, "HISTORY_OFF");
            return;
        }
        s_json(answer, 200, lookupd_history_json(self->history, topic, channel ? channel : NULL));
    } else if (streq(path, "/deadletters"))
        s_json(answer, 200, lookupd_cluster_deadletters_json(self->cluster));
    else if (streq(path, "/lookupd"))
        s_json(answer, 200, s_lookupd_json(self));
    else if (streq(path, "/jobs"))
        s_read_jobs(self, request, answer);
    else
        s_error(answer, 404, "NOT_FOUND");
}

bool lookupd_console_owns(const char *path)
{
    return strncmp(path, "/api/", 5) == 0;
}

void lookupd_console_handle(lookupd_console_t *self, const lookupd_console_request_t *request,
                            lookupd_console_answer_t *answer)
{
    const char *path = request->path + 4;  // after "/api"
    for (size_t i = 0; i < sizeof s_actions / sizeof *s_actions; i++)
        if (streq(path, s_actions[i].path)) {
            if (!streq(request->method, "POST")) {
                s_error(answer, 405, "METHOD_NOT_ALLOWED");
                return;
            }
            {
                s_act(self, &s_actions[i], request, answer);
                return;
            }
        }
    if (!streq(request->method, "GET") && !streq(request->method, "HEAD")) {
        s_error(answer, 405, "METHOD_NOT_ALLOWED");
        return;
    }
    s_read(self, path, request, answer);
}
