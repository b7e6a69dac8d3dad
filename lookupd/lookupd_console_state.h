/*  lookupd_console_state - what the console's files share: its state, the
    answers' helpers, and the functions one file calls in a lower one
    SPDX-License-Identifier: MIT

    Internal to the console: lookupd_console.c (life cycle, requests, the
    reads), lookupd_console_actions.c (the POSTs: checks, fan-outs, dead-
    letter replays) and lookupd_console_fetches.c (requests to brokers and
    peers through the fetch thread, and what their results change). Calls
    go one way: console -> actions -> fetches. Everything runs on the
    lookupd actor's thread.
*/
#ifndef LOOKUPD_CONSOLE_STATE_H
#define LOOKUPD_CONSOLE_STATE_H

#include <czmq.h>
#include <jansson.h>

#include "lookupd_cluster_json.h"
#include "lookupd_console.h"
#include "lookupd_fetch.h"
#include "lookupd_history.h"
#include "lookupd_jobs.h"

#define LOOKUPD_CONSOLE_JSON    "application/json; charset=utf-8"
#define LOOKUPD_CONSOLE_URL_MAX 1600  // a broker's URL with an action's path and query

// A peer lookupd, polled for its /info.
typedef struct {
    char address[256];  // "host:port"
    json_t *info;       // its last /info, or NULL
    char error[256];    // why the last poll failed; "" if it did not
    int64_t polled_at;  // Unix ms
} lookupd_console_peer_t;

struct _lookupd_console_t {
    lookupd_console_config_t config;  // copy
    lookupd_history_t *history;       // NULL when off
    lookupd_cluster_t *cluster;       // the polled view
    lookupd_fetch_t *fetch;           // HTTP thread
    lookupd_jobs_t *jobs;             // actions
    zloop_t *loop;                    // borrowed, once started
    json_t *info;                     // our /info
    zlistx_t *fetches;                // fetch jobs in progress (owned; lookupd_console_fetches.c)
    zlistx_t *replays;                // replays in progress (owned; lookupd_console_actions.c)
    lookupd_console_peer_t *peers;    // config.peer_count entries
    uint64_t next_fetch;              // fetch job numbers
    bool polling;                     // a poll round runs
    int64_t started_at;               // Unix ms
    char curve_key[1024];             // replays: config.curve_key_file, "" = plain
    char curve_server_key[1024];      // replays: config.curve_server_key_file
};

// ---- answers ----------------------------------------------------------------------

// Answers status with {"message":code}.
static inline void lookupd_console_error(lookupd_console_answer_t *answer, int status,
                                         const char *code)
{
    answer->status = status;
    answer->type = LOOKUPD_CONSOLE_JSON;
    answer->body = zsys_sprintf("{\"message\":\"%s\"}", code);
}

// Answers status with doc (taken); 500 if doc is NULL.
static inline void lookupd_console_json(lookupd_console_answer_t *answer, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        lookupd_console_error(answer, 500, "INTERNAL_ERROR");
        return;
    }
    answer->status = status;
    answer->type = LOOKUPD_CONSOLE_JSON;
    answer->body = text;
}

// ---- lookupd_console_actions.c -------------------------------------------------------

// Starts the action at path (after "/api") if path names one: answers
// 405 to anything but POST, a refusal, or 202 with the new job. Returns
// false, answering nothing, when path is no action.
bool lookupd_console_act(lookupd_console_t *self, const char *path,
                         const lookupd_console_request_t *request,
                         lookupd_console_answer_t *answer);

// zlistx destructor of self->replays: interrupts a replay and ends its reader.
void lookupd_console_replay_destructor(void **item);

// ---- lookupd_console_fetches.c -------------------------------------------------------

// Submits count requests as one fetch job, for a poll round or for the
// action job job_id; targets (node name, or "peer N") and rows (the job's
// target rows; NULL for a poll), count entries each, are taken. Returns 0,
// or -1 with everything freed.
int lookupd_console_submit(lookupd_console_t *self, bool poll, uint64_t job_id,
                           const lookupd_fetch_request_t *requests, char **targets, size_t *rows,
                           size_t count);

// Marks job finished if every target has settled, and logs how it went
// (once).
void lookupd_console_job_check(lookupd_console_t *self, lookupd_job_t *job);

// zloop timer (arg: the console): starts a poll round of the registry's
// brokers and the peers, unless the last one is still out.
int lookupd_console_on_poll(zloop_t *loop, int timer_id, void *arg);

// zloop reader of the fetch thread's socket (arg: the console): takes one
// result into the cluster view, a peer, or an action's job.
int lookupd_console_on_fetch(zloop_t *loop, zsock_t *sock, void *arg);

// zlistx destructor of self->fetches.
void lookupd_console_fetch_destructor(void **item);

#endif
