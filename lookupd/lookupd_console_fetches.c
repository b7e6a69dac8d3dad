/*  lookupd_console_fetches - the console's requests to other processes:
    poll rounds and action fan-outs through the fetch thread, and what
    their results change
    SPDX-License-Identifier: MIT

    Requests go through the fetch thread as numbered fetch jobs; `fetches`
    maps a fetch job to what it is for (a poll round, or an action's job
    with one target row per request). A poll result updates the cluster
    view (a broker's /stats) or a peer (its /info); an action's result
    settles its row of the job. When a round ends the history ages; when
    an action's last row settles, the job is logged.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_console_state.h"
#include "nsq_log.h"

#define S_POLL_TIMEOUT 5000  // ms for one broker's /stats

typedef struct {
    uint64_t fetch_id;  // the fetch job
    bool poll;          // a poll round, else an action
    uint64_t job_id;    // the action's job
    size_t count;       // requests
    char **targets;     // per request: node name, or "peer " + address (owned)
    size_t *rows;       // per request: the job's target row
} s_fetch_t;

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

void lookupd_console_fetch_destructor(void **item)
{
    s_fetch_destroy((s_fetch_t **) item);
}

int lookupd_console_submit(lookupd_console_t *self, bool poll, uint64_t job_id,
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

int lookupd_console_on_poll(zloop_t *loop, int timer_id, void *arg)
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
    char(*urls)[LOOKUPD_CONSOLE_URL_MAX] = calloc(count + 1, LOOKUPD_CONSOLE_URL_MAX);
    size_t used = 0;
    for (const char *node = brokers ? zlistx_first(brokers) : NULL;
         requests && targets && urls && node; node = zlistx_next(brokers))
        if (lookupd_cluster_broker_url(self->cluster, node, "/stats?format=json", urls[used],
                                       LOOKUPD_CONSOLE_URL_MAX)
            == 0) {
            requests[used] = (lookupd_fetch_request_t){"GET", urls[used], S_POLL_TIMEOUT};
            targets[used++] = strdup(node);
        }
    for (size_t i = 0; requests && targets && urls && i < self->config.peer_count; i++)
        if (lookupd_cluster_url(self->peers[i].address, "/info", urls[used],
                                LOOKUPD_CONSOLE_URL_MAX)
            == 0) {
            requests[used] = (lookupd_fetch_request_t){"GET", urls[used], S_POLL_TIMEOUT};
            targets[used++] = zsys_sprintf("peer %zu", i);
        }
    if (requests && targets && urls && used)
        self->polling = lookupd_console_submit(self, true, 0, requests, targets, NULL, used) == 0;
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
    lookupd_console_peer_t *peer = &self->peers[index];
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

void lookupd_console_job_check(lookupd_console_t *self, lookupd_job_t *job)
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

int lookupd_console_on_fetch(zloop_t *loop, zsock_t *sock, void *arg)
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
                lookupd_console_job_check(self, job);
        }
        zlistx_delete(self->fetches, zlistx_find(self->fetches, fetch));
    }
    lookupd_fetch_result_clear(&result);
    return 0;
}
