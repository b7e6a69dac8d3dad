/*  broker_sync - durable mode: a publish is acknowledged only after its
    data is on disk, concurrent publishes sharing one fdatasync per queue
    (group commit)
    SPDX-License-Identifier: MIT

    In durable mode every message of a disk-backed topic or channel is
    written to its disk queue (memory holds only what is read back for
    delivery), and the acknowledgement of a publish waits in a list. The
    kick after the batch starts a group commit if none runs: the waiting
    publishes move into it, and every queue is asked to commit what was
    put so far (nsq_diskqueue_commit: one fdatasync in flight per queue,
    what arrives meanwhile joins the next), plus the state file. Each
    report counts down; the last one answers the publishes, with
    BROKER_SYNC_FAILED if any report carried an error, and starts the next
    commit if publishes arrived meanwhile.

    Only the data is synced per commit; the queues' metadata follows the
    --sync-timeout timer, and opening a queue finds records written after
    its metadata (nsq_diskqueue.h), so nothing acknowledged is lost.

    No publish is acknowledged unless every sync covering it succeeded,
    and none waits for ever: a commit that cannot start counts as a
    failure at once, and the queues report every commit (also when they
    are destroyed or deleted meanwhile).
*/
#include "broker_sync.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_log.h"

typedef struct _commit_t commit_t;

struct _broker_sync_t {
    broker_sync_source_t source;  // the queues, and the state file
    zlistx_t *waiting;            // waits for the next group commit
    commit_t *running;            // the group commit that runs, or NULL
};

// A durable publish waiting for its sync.
typedef struct {
    broker_sync_done_fn *fn;  // its answer
    void *arg;                // fn's argument
} durable_wait_t;

// One group commit: the publishes it answers and the reports it awaits.
struct _commit_t {
    broker_sync_t *sync;  // whose; NULL once the sync is gone
    zlistx_t *waits;      // durable_wait_t it answers
    size_t reports;       // reports still to come
    int error;            // the first failure reported
};

// Answers every wait in list: BROKER_OK, or BROKER_SYNC_FAILED if error.
static void s_answer_all(zlistx_t *list, int error)
{
    if (error && zlistx_size(list) > 0)
        nsq_error("durable sync failed: %s; %zu publishes answered with an error", strerror(error),
                  zlistx_size(list));
    durable_wait_t *wait;
    while ((wait = zlistx_detach(list, NULL))) {
        wait->fn(wait->arg, error ? BROKER_SYNC_FAILED : BROKER_OK);
        free(wait);
    }
}

// One report to a commit; the last answers its publishes and starts the
// next commit.
static void s_report(void *arg, int error)
{
    commit_t *commit = arg;
    if (error && !commit->error)
        commit->error = error;
    if (--commit->reports > 0)
        return;
    broker_sync_t *self = commit->sync;
    if (self)
        self->running = NULL;
    s_answer_all(commit->waits, commit->error);
    zlistx_destroy(&commit->waits);
    free(commit);
    broker_sync_kick(self);
}

// Asks one queue for its commit.
static void s_commit_one(void *arg, nsq_diskqueue_t *disk, const char *name)
{
    commit_t *commit = arg;
    commit->reports++;
    if (nsq_diskqueue_commit(disk, s_report, commit) != 0) {
        nsq_error("queue %s: cannot start a durable commit: %s", name, strerror(errno));
        s_report(commit, errno ? errno : EIO);
    }
}

broker_sync_t *broker_sync_new(const broker_sync_source_t *source)
{
    broker_sync_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->source = *source;
    self->waiting = zlistx_new();
    if (!self->waiting)
        broker_sync_destroy(&self);
    return self;
}

bool broker_sync_is_running(const broker_sync_t *self)
{
    return self && self->running != NULL;
}

void broker_sync_kick(broker_sync_t *self)
{
    if (!self || self->running || zlistx_size(self->waiting) == 0)
        return;
    commit_t *commit = calloc(1, sizeof *commit);
    zlistx_t *fresh = commit ? zlistx_new() : NULL;
    if (!fresh) {
        free(commit);
        s_answer_all(self->waiting, ENOMEM);  // nobody would answer them: never "OK"
        return;
    }
    commit->sync = self;
    commit->waits = self->waiting;
    self->waiting = fresh;
    self->running = commit;
    commit->reports = 1;  // held until every queue was asked
    self->source.each_disk(self->source.arg, s_commit_one, commit);
    if (self->source.flush_state) {
        commit->reports++;
        self->source.flush_state(self->source.arg, s_report, commit);
    }
    s_report(commit, 0);
}

int broker_sync_wait(broker_sync_t *self, broker_sync_done_fn *fn, void *arg)
{
    durable_wait_t *wait = self ? malloc(sizeof *wait) : NULL;
    if (!wait)
        return -1;
    wait->fn = fn;
    wait->arg = arg;
    if (zlistx_add_end(self->waiting, wait))
        return 0;
    free(wait);
    return -1;
}

void broker_sync_destroy(broker_sync_t **self_p)
{
    broker_sync_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->running)
        self->running->sync = NULL;  // its last report answers its publishes
    if (self->waiting)
        s_answer_all(self->waiting, ECANCELED);
    zlistx_destroy(&self->waiting);
    free(self);
    *self_p = NULL;
}
