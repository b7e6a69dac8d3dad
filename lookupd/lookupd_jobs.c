/*  lookupd_jobs - the console's actions and what became of them
    SPDX-License-Identifier: MIT

    Jobs sit in a list, newest last; a job's targets in a growing array.
    Finished jobs beyond `keep` are dropped from the front when a job
    finishes; running jobs are never dropped.
*/
#include "lookupd_jobs.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *target;    // node name (owned)
    int state;       // 0 running, 1 ok, 2 failed
    char *message;   // (owned) or NULL
    uint64_t done;   // progress
    uint64_t total;  // 0 = no progress count
} s_target_t;

struct _lookupd_job_t {
    uint64_t id;                // 1, 2, ...
    char *action, *topic;       // owned
    char *channel, *node;       // owned
    char *remote, *user_agent;  // owned
    int64_t started_at;         // Unix ms
    int64_t finished_at;        // Unix ms, 0 while running
    s_target_t *targets;        // owned array
    size_t count, capacity;     // of targets
};

struct _lookupd_jobs_t {
    zlistx_t *jobs;    // lookupd_job_t, oldest first (owned)
    size_t keep;       // finished jobs kept
    uint64_t next_id;  // of the next job
};

static void s_job_destroy(lookupd_job_t **job_p)
{
    lookupd_job_t *job = *job_p;
    if (!job)
        return;
    for (size_t i = 0; i < job->count; i++) {
        free(job->targets[i].target);
        free(job->targets[i].message);
    }
    free(job->targets);
    free(job->action);
    free(job->topic);
    free(job->channel);
    free(job->node);
    free(job->remote);
    free(job->user_agent);
    free(job);
    *job_p = NULL;
}

static void s_job_destructor(void **item)
{
    s_job_destroy((lookupd_job_t **) item);
}

lookupd_jobs_t *lookupd_jobs_new(size_t keep)
{
    lookupd_jobs_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->jobs = zlistx_new();
    if (!self->jobs) {
        free(self);
        return NULL;
    }
    zlistx_set_destructor(self->jobs, s_job_destructor);
    self->keep = keep;
    self->next_id = 1;
    return self;
}

void lookupd_jobs_destroy(lookupd_jobs_t **self_p)
{
    lookupd_jobs_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zlistx_destroy(&self->jobs);
    free(self);
    *self_p = NULL;
}

static char *s_copy(const char *text)
{
    return strdup(text ? text : "");
}

lookupd_job_t *lookupd_jobs_start(lookupd_jobs_t *self, const lookupd_job_what_t *what,
                                  int64_t now_ms)
{
    lookupd_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->action = s_copy(what->action);
    job->topic = s_copy(what->topic);
    job->channel = s_copy(what->channel);
    job->node = s_copy(what->node);
    job->remote = s_copy(what->remote);
    job->user_agent = s_copy(what->user_agent);
    job->started_at = now_ms;
    if (!job->action || !job->topic || !job->channel || !job->node || !job->remote
        || !job->user_agent || !zlistx_add_end(self->jobs, job)) {
        s_job_destroy(&job);
        return NULL;
    }
    job->id = self->next_id++;
    return job;
}

size_t lookupd_job_add_target(lookupd_job_t *job, const char *target)
{
    if (job->count == job->capacity) {
        size_t capacity = job->capacity ? 2 * job->capacity : 4;
        s_target_t *grown = realloc(job->targets, capacity * sizeof *grown);
        if (!grown)
            return SIZE_MAX;
        job->targets = grown;
        job->capacity = capacity;
    }
    job->targets[job->count] = (s_target_t){s_copy(target), 0, NULL, 0, 0};
    return job->count++;
}

void lookupd_job_progress(lookupd_job_t *job, size_t index, uint64_t done, uint64_t total)
{
    if (index >= job->count)
        return;
    job->targets[index].done = done;
    job->targets[index].total = total;
}

void lookupd_job_settle(lookupd_job_t *job, size_t index, bool ok, const char *message)
{
    if (index >= job->count || job->targets[index].state != 0)
        return;
    job->targets[index].state = ok ? 1 : 2;
    job->targets[index].message = s_copy(message);
}

// Drops the oldest finished jobs beyond keep (the list is short).
static void s_trim(lookupd_jobs_t *self)
{
    size_t finished = 0;
    for (lookupd_job_t *job = zlistx_first(self->jobs); job; job = zlistx_next(self->jobs))
        finished += job->finished_at != 0;
    while (finished > self->keep) {
        lookupd_job_t *job = zlistx_first(self->jobs);
        while (job && !job->finished_at)
            job = zlistx_next(self->jobs);
        zlistx_delete(self->jobs, zlistx_cursor(self->jobs));  // the cursor is on job
        finished--;
    }
}

bool lookupd_job_done(lookupd_jobs_t *self, lookupd_job_t *job, int64_t now_ms)
{
    if (job->finished_at)
        return true;
    for (size_t i = 0; i < job->count; i++)
        if (job->targets[i].state == 0)
            return false;
    job->finished_at = now_ms > job->started_at ? now_ms : job->started_at + 1;
    s_trim(self);
    return true;
}

bool lookupd_job_finished(const lookupd_job_t *job)
{
    return job->finished_at != 0;
}

lookupd_job_t *lookupd_jobs_find(lookupd_jobs_t *self, uint64_t id)
{
    for (lookupd_job_t *job = zlistx_first(self->jobs); job; job = zlistx_next(self->jobs))
        if (job->id == id)
            return job;
    return NULL;
}

uint64_t lookupd_job_id(const lookupd_job_t *job)
{
    return job->id;
}

size_t lookupd_job_ok_count(const lookupd_job_t *job)
{
    size_t ok = 0;
    for (size_t i = 0; i < job->count; i++)
        ok += job->targets[i].state == 1;
    return ok;
}

size_t lookupd_job_target_count(const lookupd_job_t *job)
{
    return job->count;
}

json_t *lookupd_job_json(const lookupd_job_t *job)
{
    static const char *const states[] = {"running", "ok", "failed"};
    json_t *targets = json_array();
    for (size_t i = 0; i < job->count; i++) {
        const s_target_t *target = &job->targets[i];
        json_t *row =
            json_pack("{s:s, s:s, s:s}", "target", target->target, "state", states[target->state],
                      "message", target->message ? target->message : "");
        if (target->total || target->done) {
            json_object_set_new(row, "done", json_integer((json_int_t) target->done));
            json_object_set_new(row, "total", json_integer((json_int_t) target->total));
        }
        json_array_append_new(targets, row);
    }
    json_t *doc =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:o}", "id",
                  (json_int_t) job->id, "action", job->action, "topic", job->topic, "channel",
                  job->channel, "node", job->node, "remote", job->remote, "user_agent",
                  job->user_agent, "state", job->finished_at ? "done" : "running", "ok",
                  job->finished_at && lookupd_job_ok_count(job) == job->count, "started_at",
                  (json_int_t) job->started_at, "targets", targets);
    json_object_set_new(doc, "finished_at",
                        job->finished_at ? json_integer(job->finished_at) : json_null());
    return doc;
}

json_t *lookupd_jobs_json(lookupd_jobs_t *self)
{
    json_t *list = json_array();
    for (lookupd_job_t *job = zlistx_last(self->jobs); job; job = zlistx_prev(self->jobs))
        json_array_append_new(list, lookupd_job_json(job));
    return json_pack("{s:o}", "jobs", list);
}

// ---- self-test --------------------------------------------------------------

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lookupd_jobs_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

int lookupd_jobs_test(void)
{
    json_t *doc = NULL;
    lookupd_jobs_t *jobs = lookupd_jobs_new(2);
    S_CHECK(jobs);
    lookupd_job_what_t what = {"pause", "orders", "billing", "", "127.0.0.1", "curl/8"};
    lookupd_job_t *job = lookupd_jobs_start(jobs, &what, 1000);
    S_CHECK(job && lookupd_job_id(job) == 1);
    size_t a = lookupd_job_add_target(job, "b1:4151");
    size_t b = lookupd_job_add_target(job, "b2:4151");
    S_CHECK(!lookupd_job_done(jobs, job, 1001));
    lookupd_job_settle(job, a, true, "");
    lookupd_job_settle(job, a, false, "ignored: settled once");
    lookupd_job_progress(job, b, 5, 10);
    doc = lookupd_job_json(job);
    S_CHECK(streq(json_string_value(json_object_get(doc, "state")), "running"));
    S_CHECK(json_integer_value(
                json_object_get(json_array_get(json_object_get(doc, "targets"), 1), "done"))
            == 5);
    json_decref(doc);
    lookupd_job_settle(job, b, false, "TOPIC_NOT_FOUND");
    S_CHECK(lookupd_job_done(jobs, job, 1002));
    doc = lookupd_job_json(job);
    S_CHECK(!json_is_true(json_object_get(doc, "ok"))
            && json_integer_value(json_object_get(doc, "finished_at")) == 1002);
    json_decref(doc);
    doc = NULL;
    S_CHECK(lookupd_job_ok_count(job) == 1 && lookupd_job_target_count(job) == 2);

    // A running job is kept however many finish after it; finished ones
    // beyond keep go, oldest first.
    lookupd_job_t *running = lookupd_jobs_start(jobs, &what, 1003);
    lookupd_job_add_target(running, "b1:4151");
    for (int i = 0; i < 3; i++)
        S_CHECK(lookupd_job_done(jobs, lookupd_jobs_start(jobs, &what, 1004), 1005));
    S_CHECK(!lookupd_jobs_find(jobs, 1) && lookupd_jobs_find(jobs, 2) == running);
    doc = lookupd_jobs_json(jobs);
    S_CHECK(json_array_size(json_object_get(doc, "jobs")) == 3);
    S_CHECK(
        json_integer_value(json_object_get(json_array_get(json_object_get(doc, "jobs"), 0), "id"))
        == 5);
    json_decref(doc);
    lookupd_jobs_destroy(&jobs);
    return 0;
failed:
    json_decref(doc);
    lookupd_jobs_destroy(&jobs);
    return -1;
}
