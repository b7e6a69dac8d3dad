/*  ctl_actions - nsq-ctl pause, unpause, empty, delete, tombstone, replay
    SPDX-License-Identifier: MIT

    Through lookupd, an action is one POST to the console's /api, which
    starts a job on every broker that holds the topic (logged by lookupd
    with who asked); nsq-ctl then follows the job (GET /api/jobs?id=),
    shows a progress line on stderr while it runs longer than a moment,
    and prints one line per target: "ok TARGET" or "failed TARGET REASON".
    Against one broker the action is that broker's own HTTP call; replay
    then runs here (nsq_replay over the broker's ZeroMQ endpoint, with the
    CURVE keys of --zmq-curve-key-file when the broker requires them).
*/
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nsq_names.h"
#include "nsq_replay.h"

#define S_POLL_MS     200
#define S_QUIET_MS    1000  // no progress line for jobs done sooner
#define S_REPLAY_IDLE 1000  // a local replay ends after this long without a message

static int64_t s_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void s_sleep_ms(int milliseconds)
{
    struct timespec delay = {0, (long) milliseconds * 1000000};
    nanosleep(&delay, NULL);
}

// "3/4 targets done, 120/500 messages" into line.
static void s_describe(json_t *job, char *line, size_t size)
{
    size_t done = 0, count = json_array_size(json_object_get(job, "targets"));
    json_int_t messages = 0, total = 0;
    size_t index;
    json_t *target;
    json_array_foreach(json_object_get(job, "targets"), index, target)
    {
        done += strcmp(json_string_value(json_object_get(target, "state")), "running") != 0;
        messages += json_integer_value(json_object_get(target, "done"));
        total += json_integer_value(json_object_get(target, "total"));
    }
    int used = snprintf(line, size, "%zu/%zu targets done", done, count);
    if (total && used > 0 && (size_t) used < size)
        snprintf(line + used, size - (size_t) used, ", %lld/%lld messages", (long long) messages,
                 (long long) total);
}

// Prints the job's outcome per target; returns the exit code.
static int s_report(const ctl_t *ctl, json_t *job)
{
    if (ctl->json) {
        char *text = json_dumps(job, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
    }
    size_t index;
    json_t *target;
    bool ok = true;
    json_array_foreach(json_object_get(job, "targets"), index, target)
    {
        const char *state = json_string_value(json_object_get(target, "state"));
        const char *message = json_string_value(json_object_get(target, "message"));
        ok = ok && strcmp(state, "ok") == 0;
        if (!ctl->json)
            printf("%s %s%s%s\n", strcmp(state, "ok") == 0 ? "ok" : "failed",
                   json_string_value(json_object_get(target, "target")),
                   message && *message ? " " : "", message ? message : "");
    }
    return ok ? CTL_OK : CTL_FAILED;
}

// Follows a lookupd job until it is done; returns the exit code. Progress
// goes to stderr once the job has run S_QUIET_MS, when it changes. A job
// that makes no progress for the timeout is given up on.
static int s_follow(const ctl_t *ctl, json_t *job, const char *label)
{
    int64_t started = s_now_ms(), moved = started;
    char last[128] = "", line[128];
    bool shown = false;
    int code = CTL_OK;
    while (job && strcmp(json_string_value(json_object_get(job, "state")), "done") != 0) {
        s_describe(job, line, sizeof line);
        bool changed = strcmp(line, last) != 0;
        if (changed)
            moved = s_now_ms();
        if (s_now_ms() - started >= S_QUIET_MS && (changed || !shown)) {
            ctl_progress("%s: %s", label, line);
            shown = true;
        }
        snprintf(last, sizeof last, "%s", line);
        if (s_now_ms() - moved > ctl->timeout_ms) {
            json_decref(job);
            ctl_progress_end();
            return ctl_fail(CTL_FAILED, "%s: no progress for %lld ms (%s)", label,
                            (long long) ctl->timeout_ms, line);
        }
        s_sleep_ms(S_POLL_MS);
        char path[64];
        snprintf(path, sizeof path, "/api/jobs?id=%lld",
                 (long long) json_integer_value(json_object_get(job, "id")));
        json_decref(job);
        job = ctl_get_json(ctl, false, ctl->lookupd, path, &code);
    }
    if (shown && job) {
        s_describe(job, line, sizeof line);
        ctl_progress("%s: %s", label, line);
    }
    ctl_progress_end();
    if (!job)
        return code;
    code = s_report(ctl, job);
    json_decref(job);
    return code;
}

static int s_check_names(const char *topic, const char *channel)
{
    if (!nsq_name_is_valid(topic))
        return ctl_fail(CTL_USAGE, "'%s' is not a valid topic name", topic);
    if (channel && !nsq_name_is_valid(channel))
        return ctl_fail(CTL_USAGE, "'%s' is not a valid channel name", channel);
    return CTL_OK;
}

// POST path to lookupd's /api, then follows the job.
static int s_lookupd_job(const ctl_t *ctl, const char *path, const char *label)
{
    int code = CTL_OK;
    json_t *job = ctl_get_json(ctl, true, ctl->lookupd, path, &code);
    return job ? s_follow(ctl, job, label) : code;
}

int ctl_action(const ctl_t *ctl, const char *verb, const char *topic, const char *channel)
{
    int code = s_check_names(topic, channel);
    if (code)
        return code;
    char topic_q[200], channel_q[200] = "", path[512], label[160];
    ctl_escape(topic_q, sizeof topic_q, topic);
    if (channel)
        ctl_escape(channel_q, sizeof channel_q, channel);
    snprintf(label, sizeof label, "%s %s%s%s", verb, topic, channel ? "/" : "",
             channel ? channel : "");
    snprintf(path, sizeof path, "%s/%s/%s?topic=%s%s%s", ctl->lookupd ? "/api" : "",
             channel ? "channel" : "topic", verb, topic_q, channel ? "&channel=" : "", channel_q);
    if (ctl->lookupd)
        return s_lookupd_job(ctl, path, label);
    json_t *answer = NULL;
    char error[512] = "", *body = NULL;
    long status = ctl_http_request(ctl, "POST", ctl->broker_http, path, &body, error, sizeof error);
    if (status == 0)
        return ctl_fail(CTL_UNREACHABLE, "cannot reach %s", error);
    answer = json_loads(body, 0, NULL);
    const char *message = json_string_value(json_object_get(answer, "message"));
    if (status == 200)
        printf("ok %s\n", ctl->broker_http);
    else
        code = ctl_fail(status == 404 ? CTL_NOT_FOUND : CTL_FAILED, "%s: %s answered %ld %s", label,
                        ctl->broker_http, status, message ? message : body);
    json_decref(answer);
    free(body);
    return code;
}

int ctl_tombstone(const ctl_t *ctl, const char *topic, const char *broker)
{
    int code = s_check_names(topic, NULL);
    if (code)
        return code;
    if (!ctl->lookupd)
        return ctl_fail(CTL_USAGE, "tombstone is a lookupd operation: give --lookupd-http-address");
    char topic_q[200], node_q[800], path[1100], label[400];
    ctl_escape(topic_q, sizeof topic_q, topic);
    ctl_escape(node_q, sizeof node_q, broker);
    snprintf(path, sizeof path, "/api/topic/tombstone?topic=%s&node=%s", topic_q, node_q);
    snprintf(label, sizeof label, "tombstone %s on %s", topic, broker);
    return s_lookupd_job(ctl, path, label);
}

static void s_on_progress(const nsq_replay_counts_t *counts, void *arg)
{
    ctl_progress("replay %s: %llu replayed", (const char *) arg,
                 (unsigned long long) counts->replayed);
}

// The dead letters a broker holds for dead_topic (its queue and its
// replay channel); -1 with *code set if it cannot be read.
static int64_t s_dead_count(const ctl_t *ctl, const char *dead_topic, int *code)
{
    char topic_q[200], path[300];
    ctl_escape(topic_q, sizeof topic_q, dead_topic);
    snprintf(path, sizeof path, "/stats?format=json&topic=%s", topic_q);
    json_t *stats = ctl_get_json(ctl, false, ctl->broker_http, path, code);
    json_t *topic = json_array_get(json_object_get(stats, "topics"), 0);
    if (stats && !topic)
        *code = ctl_fail(CTL_NOT_FOUND, "topic %s not found on %s", dead_topic, ctl->broker_http);
    int64_t count = topic ? json_integer_value(json_object_get(topic, "depth")) : -1;
    size_t index;
    json_t *channel;
    json_array_foreach(json_object_get(topic, "channels"), index, channel)
    {
        if (strcmp(json_string_value(json_object_get(channel, "channel_name")), NSQ_REPLAY_CHANNEL))
            continue;
        count += json_integer_value(json_object_get(channel, "depth"))
                 + json_integer_value(json_object_get(channel, "in_flight_count"))
                 + json_integer_value(json_object_get(channel, "deferred_count"));
    }
    json_decref(stats);
    return count;
}

int ctl_replay(const ctl_t *ctl, const char *dead_topic)
{
    size_t length = strlen(dead_topic);
    int code = s_check_names(dead_topic, NULL);
    if (code)
        return code;
    if (length <= 5 || strcmp(dead_topic + length - 5, ".dead") != 0)
        return ctl_fail(CTL_USAGE, "replay takes a dead-letter topic (NAME.dead), not %s",
                        dead_topic);
    char topic_q[200], path[300], label[120];
    ctl_escape(topic_q, sizeof topic_q, dead_topic);
    snprintf(label, sizeof label, "replay %s", dead_topic);
    if (ctl->lookupd) {
        snprintf(path, sizeof path, "/api/deadletters/replay?topic=%s", topic_q);
        return s_lookupd_job(ctl, path, label);
    }
    if (!ctl->broker_zmq)
        return ctl_fail(CTL_USAGE, "replay against a broker needs its --broker-address (ZeroMQ)");
    int64_t limit = 0;  // without the broker's HTTP address: until none is left
    if (ctl->broker_http && (limit = s_dead_count(ctl, dead_topic, &code)) < 0)
        return code;
    if (ctl->broker_http && limit == 0) {
        printf("ok %s no dead letter\n", ctl->broker_zmq);
        return CTL_OK;
    }
    nsq_replay_counts_t counts;
    char error[256];
    nsq_replay_broker_t broker = {ctl->broker_zmq, ctl->zmq_curve_key_file,
                                  ctl->zmq_curve_server_key_file};
    int rc = nsq_replay_run(&broker, dead_topic, (uint64_t) limit, S_REPLAY_IDLE, NULL,
                            s_on_progress, (void *) dead_topic, &counts, error, sizeof error);
    ctl_progress_end();
    if (rc)
        return ctl_fail(rc == NSQ_REPLAY_UNREACHABLE ? CTL_UNREACHABLE : CTL_FAILED,
                        "replay %s on %s: %s", dead_topic, ctl->broker_zmq, error);
    printf("ok %s %llu replayed (%llu without a header)\n", ctl->broker_zmq,
           (unsigned long long) counts.replayed, (unsigned long long) counts.unparsed);
    return CTL_OK;
}
