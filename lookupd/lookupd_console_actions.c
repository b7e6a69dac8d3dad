/*  lookupd_console_actions - the console's POSTs: checks, the job, and
    the work on every broker that holds the topic
    SPDX-License-Identifier: MIT

    Every action passes through s_act: the one place that checks its
    arguments, logs who asked for what, and where a permission check
    belongs. An action with a registry part (create, delete, tombstone)
    applies it to this lookupd first, as the job's first row, and to the
    peer lookupds with the brokers. Topic and channel actions fan out as
    HTTP calls (lookupd_console_fetches.c); dead-letter replays and samples
    run as lookupd_replay actors, one per dead topic and broker at a time,
    each with its own zloop reader.
*/
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_console_state.h"
#include "lookupd_replay.h"
#include "nsq_log.h"
#include "nsq_names.h"

#define S_ACTION_TIMEOUT 10000  // ms for one broker's action
#define S_PATH_MAX       1200   // an action's path and query, every name escaped

typedef struct {
    lookupd_console_t *console;    // owner
    lookupd_replay_t *replay;      // the work
    lookupd_replay_mode_t mode;    // replay or sample
    uint64_t job_id;               // its job
    size_t row;                    // its target row
    char node[LOOKUPD_NODE_MAX];   // broker
    char topic[NSQ_NAME_MAX + 1];  // dead topic
} s_replay_t;

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

void lookupd_console_replay_destructor(void **item)
{
    s_replay_destroy((s_replay_t **) item);
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
            lookupd_console_job_check(self, job);
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
        lookupd_console_job_check(self, sampling);
    }
    zlistx_delete(self->replays, zlistx_find(self->replays, running));  // waits for its thread
    return true;
}

// Starts a replay (or sample) of topic on node as row of job; settles the
// row at once when there is nothing to do or it cannot start.
static void s_replay_start(lookupd_console_t *self, lookupd_job_t *job, size_t row,
                           lookupd_replay_mode_t mode, const char *node, const char *topic)
{
    char address[LOOKUPD_NODE_MAX];
    nsq_replay_broker_t broker = {address, self->curve_key, self->curve_server_key};
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
    if (replay && lookupd_cluster_zmq_address(self->cluster, node, address, sizeof address) == 0) {
        *replay = (s_replay_t){self, NULL, mode, lookupd_job_id(job), row, "", ""};
        snprintf(replay->node, sizeof replay->node, "%s", node);
        snprintf(replay->topic, sizeof replay->topic, "%s", topic);
        replay->replay = lookupd_replay_start(mode, &broker, topic, limit);
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
        return lookupd_console_error(answer, 400, "MISSING_ARG_TOPIC"), false;
    if (!nsq_name_is_valid_n(request->topic, request->topic_size))
        return lookupd_console_error(answer, 400, "INVALID_ARG_TOPIC"), false;
    if (action->scope == S_DEAD && (length <= 5 || !streq(request->topic + length - 5, ".dead")))
        return lookupd_console_error(answer, 400, "NOT_A_DEAD_LETTER_TOPIC"), false;
    if (action->scope == S_CHANNEL && request->channel_size == 0)
        return lookupd_console_error(answer, 400, "MISSING_ARG_CHANNEL"), false;
    if (action->scope == S_CHANNEL && !nsq_name_is_valid_n(request->channel, request->channel_size))
        return lookupd_console_error(answer, 400, "INVALID_ARG_CHANNEL"), false;
    bool tombstone = streq(action->action, "tombstone");
    if (tombstone && request->node_size == 0)
        return lookupd_console_error(answer, 400, "MISSING_ARG_NODE"), false;
    if (tombstone && strlen(request->node) != request->node_size)
        return lookupd_console_error(answer, 404, "PRODUCER_NOT_FOUND"), false;
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

// Writes arg percent-encoded for a query string into out.
static void s_escape(char *out, size_t size, const char *arg)
{
    char *escaped = curl_easy_escape(NULL, arg, 0);
    snprintf(out, size, "%s", escaped ? escaped : "");
    curl_free(escaped);
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
    char(*urls)[LOOKUPD_CONSOLE_URL_MAX] = calloc(count + 1, LOOKUPD_CONSOLE_URL_MAX);
    char path[S_PATH_MAX];
    s_call_path(action, request, path, sizeof path);
    size_t used = 0;
    for (size_t i = 0; requests && targets && rows && urls && i < count; i++) {
        const char *node = i < peers ? self->peers[i].address
                                     : (i == peers ? zlistx_first(brokers) : zlistx_next(brokers));
        char label[300];
        snprintf(label, sizeof label, "%s%s", i < peers ? "lookupd " : "", node);
        size_t row = lookupd_job_add_target(job, label);
        int rc = i < peers ? lookupd_cluster_url(node, path, urls[used], LOOKUPD_CONSOLE_URL_MAX)
                           : lookupd_cluster_broker_url(self->cluster, node, path, urls[used],
                                                        LOOKUPD_CONSOLE_URL_MAX);
        if (rc) {
            lookupd_job_settle(job, row, false, "address does not fit a URL");
            continue;
        }
        requests[used] = (lookupd_fetch_request_t){"POST", urls[used], S_ACTION_TIMEOUT};
        rows[used] = row;
        targets[used++] = strdup(label);
    }
    if (used
        && lookupd_console_submit(self, false, lookupd_job_id(job), requests, targets, rows, used)
               != 0)
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
        lookupd_console_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    bool tombstone = streq(action->action, "tombstone");
    if (zlistx_size(brokers) == 0 && !action->registry) {
        zlistx_destroy(&brokers);
        {
            lookupd_console_error(
                answer, 404, action->scope == S_CHANNEL ? "CHANNEL_NOT_FOUND" : "TOPIC_NOT_FOUND");
            return;
        }
    }
    char code[64] = "";
    bool registry_ok =
        !action->registry || s_registry_part(self, action, request, code, sizeof code);
    if (tombstone && !registry_ok) {
        zlistx_destroy(&brokers);
        {
            lookupd_console_error(answer, 404, code);
            return;
        }
    }
    lookupd_job_what_t what = {action->action, request->topic,  channel,
                               request->node,  request->remote, request->user_agent};
    lookupd_job_t *job = lookupd_jobs_start(self->jobs, &what, zclock_time());
    if (!job) {
        zlistx_destroy(&brokers);
        {
            lookupd_console_error(answer, 500, "INTERNAL_ERROR");
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
    lookupd_console_job_check(self, job);
    lookupd_console_json(answer, 202, lookupd_job_json(job));
}

bool lookupd_console_act(lookupd_console_t *self, const char *path,
                         const lookupd_console_request_t *request, lookupd_console_answer_t *answer)
{
    for (size_t i = 0; i < sizeof s_actions / sizeof *s_actions; i++)
        if (streq(path, s_actions[i].path)) {
            if (!streq(request->method, "POST")) {
                lookupd_console_error(answer, 405, "METHOD_NOT_ALLOWED");
                return true;
            }
            s_act(self, &s_actions[i], request, answer);
            return true;
        }
    return false;
}
