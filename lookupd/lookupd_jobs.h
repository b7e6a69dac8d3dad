/*  lookupd_jobs - the console's actions and what became of them
    SPDX-License-Identifier: MIT

    Every action (pause a channel on every broker that holds it, replay a
    dead-letter topic, ...) is a job: who asked (remote address, user
    agent), what (action, topic, channel, node), one row per target (a
    broker or a lookupd) that ends ok or failed with a message, and a
    progress count for long work. The HTTP request that starts a job is
    answered at once with the job; clients poll it until it is done, so
    no HTTP thread waits for brokers. The last `keep` finished jobs stay
    listed (the console shows them as recent actions).

    Owned by the lookupd actor's thread; no locks.

    API in call order: lookupd_jobs_new, lookupd_jobs_start,
    lookupd_job_add_target, lookupd_job_progress, lookupd_job_settle,
    lookupd_job_done, lookupd_jobs_find, lookupd_job_json,
    lookupd_jobs_json, lookupd_jobs_destroy.
*/
#ifndef LOOKUPD_JOBS_H
#define LOOKUPD_JOBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _lookupd_jobs_t lookupd_jobs_t;
typedef struct _lookupd_job_t lookupd_job_t;

typedef struct {
    const char *action;      // "pause", "replay", ...
    const char *topic;       // "" if none
    const char *channel;     // "" if none
    const char *node;        // "" if none
    const char *remote;      // who: the client's address
    const char *user_agent;  // who: its User-Agent, "" if none
} lookupd_job_what_t;

// Creates an empty list keeping up to keep finished jobs. Caller owns the
// result; NULL if out of memory.
lookupd_jobs_t *lookupd_jobs_new(size_t keep);

// Frees every job and nulls *self_p; accepts NULL.
void lookupd_jobs_destroy(lookupd_jobs_t **self_p);

// Starts a job (strings copied) at now_ms (Unix ms) with the next id.
// Borrowed; valid until the job is done and `keep` newer ones finished.
// NULL if out of memory.
lookupd_job_t *lookupd_jobs_start(lookupd_jobs_t *self, const lookupd_job_what_t *what,
                                  int64_t now_ms);

// Adds a target row (a node name, copied); returns its index.
size_t lookupd_job_add_target(lookupd_job_t *job, const char *target);

// Sets a target's progress: done of total units (messages, say).
void lookupd_job_progress(lookupd_job_t *job, size_t index, uint64_t done, uint64_t total);

// Ends a target's row: ok or failed, with a message (copied; may be "").
void lookupd_job_settle(lookupd_job_t *job, size_t index, bool ok, const char *message);

// Marks the job finished at now_ms once every target is settled. Returns
// true if it is (now or before); a job with no target is finished at once.
bool lookupd_job_done(lookupd_jobs_t *self, lookupd_job_t *job, int64_t now_ms);

// True once lookupd_job_done found every target settled.
bool lookupd_job_finished(const lookupd_job_t *job);

// The job numbered id; NULL if unknown or dropped.
lookupd_job_t *lookupd_jobs_find(lookupd_jobs_t *self, uint64_t id);

uint64_t lookupd_job_id(const lookupd_job_t *job);

// Targets settled ok, and targets in all.
size_t lookupd_job_ok_count(const lookupd_job_t *job);
size_t lookupd_job_target_count(const lookupd_job_t *job);

// {"id","action","topic","channel","node","remote","user_agent","state":
// "running"|"done","ok":bool,"started_at","finished_at","targets":[{"target",
// "state":"running"|"ok"|"failed","message","done","total"}]}. New reference.
json_t *lookupd_job_json(const lookupd_job_t *job);

// {"jobs":[...]}, newest first. New reference.
json_t *lookupd_jobs_json(lookupd_jobs_t *self);

// Self-test; returns 0 on success.
int lookupd_jobs_test(void);

#endif
