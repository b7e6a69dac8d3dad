/*  lookupd_replay - the console's dead-letter replays and samples, each on
    a thread of its own
    SPDX-License-Identifier: MIT

    Thread -> owner: ["PROGRESS", replayed, unparsed] while replaying, then
    ["DONE", ok, replayed, unparsed, message, sample JSON or ""]. The actor
    pipe is also nsq_replay's interrupt: $TERM from zactor_destroy ends the
    work (nsq_replay reads it), and the thread then returns.
*/
#include "lookupd_replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_replay.h"

struct _lookupd_replay_t {
    zactor_t *actor;  // the thread
};

typedef struct {
    lookupd_replay_mode_t mode;
    char address[300];           // the broker's ZeroMQ host:port
    char key_file[1024];         // CURVE: our key pair, "" = plain
    char server_key_file[1024];  // CURVE: the broker's public certificate
    nsq_replay_broker_t broker;  // the three above
    char topic[NSQ_NAME_MAX + 1];
    uint64_t limit;
} s_args_t;

typedef struct {
    zsock_t *pipe;   // to the owner
    json_t *sample;  // the document being built
    uint64_t count;  // messages seen
} s_thread_t;

static void s_on_progress(const nsq_replay_counts_t *counts, void *arg)
{
    s_thread_t *thread = arg;
    zmsg_t *progress = zmsg_new();
    zmsg_addstr(progress, "PROGRESS");
    zmsg_addstrf(progress, "%llu", (unsigned long long) counts->replayed);
    zmsg_addstrf(progress, "%llu", (unsigned long long) counts->unparsed);
    zmsg_send(&progress, thread->pipe);
}

static json_t *s_header_json(const nsq_deadletter_t *header)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:s, s:{s:s, s:I, s:s}}", "topic",
                     header->topic, "channel", header->channel, "id", header->id, "attempts",
                     (int) header->attempts, "first_seen", (json_int_t) header->first_seen,
                     "dead_at", (json_int_t) header->dead_at, "broker", header->broker, "failure",
                     "kind", nsq_failure_kind_name(header->failure.kind), "code",
                     (json_int_t) header->failure.code, "detail", header->failure.detail);
}

// Keeps the smallest (or largest) value of key in the sample.
static void s_extreme(json_t *sample, const char *key, int64_t value, bool smallest)
{
    json_t *current = json_object_get(sample, key);
    int64_t held = json_is_integer(current) ? json_integer_value(current) : 0;
    if (!json_is_integer(current) || (smallest ? value < held : value > held))
        json_object_set_new(sample, key, json_integer(value));
}

static void s_count(json_t *object, const char *key)
{
    json_t *current = json_object_get(object, key);
    json_object_set_new(object, key, json_integer(json_integer_value(current) + 1));
}

static void s_on_sample(const nsq_deadletter_t *header, int parsed, size_t size, void *arg)
{
    (void) size;
    s_thread_t *thread = arg;
    json_t *sample = thread->sample;
    thread->count++;
    if (parsed != 0) {
        s_count(sample, "unparsed");
        return;
    }
    s_extreme(sample, "oldest_dead_at", header->dead_at, true);
    s_extreme(sample, "newest_dead_at", header->dead_at, false);
    s_extreme(sample, "oldest_first_seen", header->first_seen, true);
    char failure[64];
    snprintf(failure, sizeof failure, "%s %lld", nsq_failure_kind_name(header->failure.kind),
             (long long) header->failure.code);
    s_count(json_object_get(sample, "failures"), failure);
    char from[2 * NSQ_NAME_MAX + 2];
    snprintf(from, sizeof from, "%s/%s", header->topic, header->channel);
    s_count(json_object_get(sample, "from"), from);
    json_t *headers = json_object_get(sample, "headers");
    if (json_array_size(headers) < LOOKUPD_SAMPLE_HEADERS)
        json_array_append_new(headers, s_header_json(header));
}

static void s_done(zsock_t *pipe, bool ok, uint64_t replayed, uint64_t unparsed,
                   const char *message, const char *sample)
{
    zmsg_t *done = zmsg_new();
    zmsg_addstr(done, "DONE");
    zmsg_addstr(done, ok ? "1" : "0");
    zmsg_addstrf(done, "%llu", (unsigned long long) replayed);
    zmsg_addstrf(done, "%llu", (unsigned long long) unparsed);
    zmsg_addstr(done, message);
    zmsg_addstr(done, sample ? sample : "");
    zmsg_send(&done, pipe);
}

static void s_sample(s_thread_t *thread, const s_args_t *args)
{
    char error[256];
    thread->sample =
        json_pack("{s:i, s:{}, s:{}, s:[]}", "unparsed", 0, "failures", "from", "headers");
    int64_t sampled =
        nsq_replay_sample(&args->broker, args->topic, (size_t) args->limit, LOOKUPD_REPLAY_IDLE_MS,
                          thread->pipe, s_on_sample, thread, error, sizeof error);
    char *text = NULL;
    if (sampled >= 0 && thread->sample) {
        json_object_set_new(thread->sample, "sampled", json_integer(sampled));
        json_object_set_new(thread->sample, "complete",
                            json_boolean((uint64_t) sampled < args->limit));
        json_object_set_new(thread->sample, "sampled_at", json_integer(zclock_time()));
        text = json_dumps(thread->sample, JSON_COMPACT);
    }
    char summary[64];
    snprintf(summary, sizeof summary, "%lld sampled", (long long) (sampled > 0 ? sampled : 0));
    s_done(thread->pipe, sampled >= 0 && text, (uint64_t) (sampled > 0 ? sampled : 0), 0,
           sampled >= 0 ? summary : error, text);
    free(text);
    json_decref(thread->sample);
}

static void s_actor(zsock_t *pipe, void *arg)
{
    s_args_t *args = arg;
    zsock_signal(pipe, 0);
    s_thread_t thread = {pipe, NULL, 0};
    if (args->mode == LOOKUPD_REPLAY_SAMPLE)
        s_sample(&thread, args);
    else {
        char error[256];
        nsq_replay_counts_t counts;
        int rc = nsq_replay_run(&args->broker, args->topic, args->limit, LOOKUPD_REPLAY_IDLE_MS,
                                pipe, s_on_progress, &thread, &counts, error, sizeof error);
        char summary[96];
        snprintf(summary, sizeof summary, "%llu replayed (%llu without a header)",
                 (unsigned long long) counts.replayed, (unsigned long long) counts.unparsed);
        s_done(pipe, rc == 0, counts.replayed, counts.unparsed, rc == 0 ? summary : error, NULL);
    }
    free(args);
}

lookupd_replay_t *lookupd_replay_start(lookupd_replay_mode_t mode,
                                       const nsq_replay_broker_t *broker, const char *dead_topic,
                                       uint64_t limit)
{
    lookupd_replay_t *self = calloc(1, sizeof *self);
    s_args_t *args = calloc(1, sizeof *args);
    if (!self || !args) {
        free(self);
        free(args);
        return NULL;
    }
    args->mode = mode;
    snprintf(args->address, sizeof args->address, "%s", broker->address);
    snprintf(args->key_file, sizeof args->key_file, "%s", broker->key_file ? broker->key_file : "");
    snprintf(args->server_key_file, sizeof args->server_key_file, "%s",
             broker->server_key_file ? broker->server_key_file : "");
    args->broker = (nsq_replay_broker_t){args->address, args->key_file, args->server_key_file};
    snprintf(args->topic, sizeof args->topic, "%s", dead_topic);
    args->limit = limit;
    self->actor = zactor_new(s_actor, args);  // the thread frees args
    if (!self->actor) {
        free(args);
        free(self);
        return NULL;
    }
    return self;
}

void lookupd_replay_destroy(lookupd_replay_t **self_p)
{
    lookupd_replay_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zactor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}

zsock_t *lookupd_replay_sock(lookupd_replay_t *self)
{
    return zactor_sock(self->actor);
}

int lookupd_replay_recv(lookupd_replay_t *self, lookupd_replay_event_t *event)
{
    memset(event, 0, sizeof *event);
    zmsg_t *message = zmsg_recv(self->actor);
    char *kind = message ? zmsg_popstr(message) : NULL;
    int rc = -1;
    if (kind && streq(kind, "PROGRESS") && zmsg_size(message) == 2) {
        char *replayed = zmsg_popstr(message), *unparsed = zmsg_popstr(message);
        event->replayed = replayed ? strtoull(replayed, NULL, 10) : 0;
        event->unparsed = unparsed ? strtoull(unparsed, NULL, 10) : 0;
        zstr_free(&replayed);
        zstr_free(&unparsed);
        rc = 0;
    } else if (kind && streq(kind, "DONE") && zmsg_size(message) == 5) {
        char *ok = zmsg_popstr(message), *replayed = zmsg_popstr(message);
        char *unparsed = zmsg_popstr(message), *text = zmsg_popstr(message);
        char *sample = zmsg_popstr(message);
        event->done = true;
        event->ok = ok && streq(ok, "1");
        event->replayed = replayed ? strtoull(replayed, NULL, 10) : 0;
        event->unparsed = unparsed ? strtoull(unparsed, NULL, 10) : 0;
        snprintf(event->message, sizeof event->message, "%s", text ? text : "");
        event->sample = sample && *sample ? json_loads(sample, 0, NULL) : NULL;
        zstr_free(&ok);
        zstr_free(&replayed);
        zstr_free(&unparsed);
        zstr_free(&text);
        zstr_free(&sample);
        rc = 0;
    }
    zstr_free(&kind);
    zmsg_destroy(&message);
    return rc;
}
