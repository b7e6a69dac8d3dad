/*  worker_handler_process - long-lived handler processes, many messages each
    SPDX-License-Identifier: MIT

    Runs `count` copies of /bin/sh -c COMMAND (worker_spawn: a process
    group each) and speaks the --process protocol (worker_frame.h) over
    their stdin and stdout: each message goes to one process as a header
    line and its body; the process answers fin (with an optional output),
    req (with an optional delay) or touch, by id, in any order. Each
    process holds at most `window` messages; jobs beyond that wait in
    `pending` (FIFO) until a process has room; the messages that arrive in
    one loop event are handed out together at the start of the next (a
    zero-delay timer), so that one write carries many. The environment carries
    NSQ_TOPIC, NSQ_CHANNEL, NSQ_PROCESS_INDEX, NSQ_PROCESS_WINDOW and
    NSQ_PROCESS_PROTOCOL.

    Everything runs on the worker's zloop, nothing blocks. This file is the
    pool (pending messages, dispatch, timeouts, restarts, shutdown);
    worker_process_child.c is one process (its non-blocking pipes, writes,
    replies, stderr lines, stop and exit); worker_process.h holds what
    they share. Where pidfd_open is refused, the tick looks for exits with
    waitpid.

    A message is in flight from dispatch until its reply. A reply that
    comes before its body was fully written (the process did not need the
    body) is kept on the message until the write is done, since the body
    is still being written from the message.

    A process is stopped (stdin closed, SIGTERM to its group, SIGKILL a
    grace later: WORKER_PROCESS_KILL_GRACE_MS) and its messages reported
    RETRY when it writes garbage (anything that is not the protocol, or a reply for an id it
    does not hold), is hung (it holds a message untouched for the timeout
    and has written nothing for as long: one message at a time is not a
    hang), or closes its stdout. Whatever the reason, once it exited what
    is left of its process group is killed (worker_spawn_reap) and it
    starts again after a delay that doubles with each short life
    (100 ms .. 10 s, worker_process_child.c; a healthy life of 10 s resets
    it). Every stop and exit is logged with the reason and counted.

    Shutdown: abort_all (the shutdown timeout) reports every message RETRY
    and SIGTERMs the processes; finish closes every stdin (the processes
    read EOF, finish and exit) and stops restarts; finished says when all
    have exited; destroy drops what is left without a result, SIGTERMs the
    processes still running, SIGKILLs them a grace later (one grace for
    all) and reaps them.
*/
#include "worker_process.h"

#include "nsq_log.h"
#include "worker_spawn.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EOF_GRACE_MS 500  // stdout closed: this long to exit before it is stopped

// ---- dispatch ---------------------------------------------------------------

// The running process with the fewest messages (with room, and not holding
// a message with the same id), searching from next_pick so that ties
// rotate. NULL if none.
static worker_process_child_t *s_pick(worker_process_t *self, const char *id)
{
    worker_process_child_t *best = NULL;
    for (int n = 0; n < self->count; n++) {
        worker_process_child_t *proc = &self->procs[(self->next_pick + n) % self->count];
        if (proc->state != WORKER_CHILD_RUNNING || proc->in_fd < 0 || proc->held >= self->window
            || (best && proc->held >= best->held) || zhashx_lookup(proc->entries, id))
            continue;
        best = proc;
    }
    if (best)
        self->next_pick = (best->index + 1) % self->count;
    return best;
}

// Hands pending messages to processes with room, then writes.
static void s_dispatch(worker_process_t *self)
{
    while (self->pending) {
        worker_process_entry_t *entry = self->pending;
        worker_process_child_t *proc = s_pick(self, nsq_msg_id(entry->job->msg));
        if (!proc)
            break;
        self->pending = entry->next;
        if (!self->pending)
            self->pending_tail = NULL;
        entry->next = NULL;
        entry->proc = proc;
        entry->alive_ms = zclock_mono();
        proc->held++;
        zhashx_insert(proc->entries, nsq_msg_id(entry->job->msg), entry);
        if (proc->queue_tail)
            proc->queue_tail->next = entry;
        else
            proc->queue = entry;
        proc->queue_tail = entry;
    }
    for (int i = 0; i < self->count; i++)
        if (self->procs[i].queue && !self->procs[i].writing)
            worker_process_child_write(&self->procs[i]);
}

// ---- the handler ------------------------------------------------------------

static int s_on_flush(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    worker_process_t *self = arg;
    self->flush_timer = 0;  // one-shot: zloop removes it after we return
    s_dispatch(self);
    return 0;
}

static int s_start(worker_handler_t *base, worker_job_t *job)
{
    worker_process_t *self = (worker_process_t *) base;
    worker_process_entry_t *entry = calloc(1, sizeof *entry);
    if (!entry) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, ENOMEM, "no memory to hand it to a process");
        return -1;
    }
    nsq_msg_t *msg = job->msg;
    worker_frame_message_t message = {nsq_msg_id(msg), nsq_msg_attempts(msg),
                                      nsq_msg_timestamp(msg), nsq_msg_size(msg)};
    int length = worker_frame_header(&message, self->names, entry->header, sizeof entry->header);
    if (length < 0) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, errno, "cannot write its header");
        free(entry);
        return -1;
    }
    entry->header_size = (size_t) length;
    entry->job = job;
    job->state = entry;
    if (self->pending_tail)
        self->pending_tail->next = entry;
    else
        self->pending = entry;
    self->pending_tail = entry;
    if (!self->flush_timer) {  // the other messages of this loop event go in the same write
        self->flush_timer = zloop_timer(self->context.loop, 0, 1, s_on_flush, self);
        if (self->flush_timer < 0) {
            self->flush_timer = 0;
            s_dispatch(self);
        }
    }
    return 0;
}

// A message proc left without an answer or touch for the timeout while
// it said nothing about any other either, NULL if none: a process that
// works through its window one message at a time, answering or touching
// each, is not hung because the last message waits its turn.
static worker_process_entry_t *s_overdue(worker_process_t *self, worker_process_child_t *proc,
                                         int64_t now)
{
    if (!self->context.timeout_ms || now - proc->active_ms < self->context.timeout_ms)
        return NULL;
    for (worker_process_entry_t *entry = zhashx_first(proc->entries); entry;
         entry = zhashx_next(proc->entries))
        if (now - entry->alive_ms >= self->context.timeout_ms)
            return entry;
    return NULL;
}

// Timeouts, signals, restarts for one process.
static void s_tick_proc(worker_process_t *self, worker_process_child_t *proc, int64_t now)
{
    if (self->poll_exits && proc->pidfd < 0 && worker_process_child_check_exit(proc))
        return;
    if (proc->state == WORKER_CHILD_DOWN) {
        if (!self->finishing && now >= proc->restart_ms) {
            bool restart = proc->ever_started;
            if (worker_process_child_start(proc) == 0 && restart)
                worker_metrics_add(self->context.metrics, WORKER_METRIC_RESTARTS, 1);
            else if (proc->state == WORKER_CHILD_DOWN)
                proc->restart_ms = now + worker_process_child_restart_delay(proc, now);
            worker_process_count_running(self);
        }
        return;
    }
    worker_process_entry_t *late =
        proc->state == WORKER_CHILD_RUNNING ? s_overdue(self, proc, now) : NULL;
    if (late) {
        worker_metrics_add(self->context.metrics, WORKER_METRIC_TIMEOUTS, 1);
        worker_process_child_stop(proc, NSQ_FAILURE_TIMEOUT, self->context.timeout_ms,
                                  "no answer or touch for message %s within %lld ms",
                                  nsq_msg_id(late->job->msg), (long long) self->context.timeout_ms);
    } else if (proc->state == WORKER_CHILD_RUNNING && proc->eof_ms
               && now - proc->eof_ms >= S_EOF_GRACE_MS)
        worker_process_child_stop(proc, NSQ_FAILURE_ERROR, 0,
                                  "it closed its stdout but did not exit");
    else if (proc->term_ms && !proc->killed
             && now - proc->term_ms >= WORKER_PROCESS_KILL_GRACE_MS) {
        nsq_warn("process %d (pid %d) still runs %d ms after SIGTERM: SIGKILL", proc->index,
                 (int) proc->pid, WORKER_PROCESS_KILL_GRACE_MS);
        worker_spawn_signal(proc->pid, SIGKILL);
        proc->killed = true;
    }
}

static void s_tick(worker_handler_t *base, int64_t now)
{
    worker_process_t *self = (worker_process_t *) base;
    for (int i = 0; i < self->count; i++)
        s_tick_proc(self, &self->procs[i], now);
    s_dispatch(self);
}

// Reports the pending jobs RETRY.
static void s_release_pending(worker_process_t *self, const char *detail)
{
    while (self->pending) {
        worker_process_entry_t *entry = self->pending;
        self->pending = entry->next;
        worker_job_fail(entry->job, NSQ_FAILURE_TIMEOUT, 0, "%s", detail);
        worker_process_report(self, entry, WORKER_RESULT_RETRY);
    }
    self->pending_tail = NULL;
}

// The shutdown timeout passed: every message is reported RETRY and every
// process told to go (EOF and SIGTERM).
static void s_abort_all(worker_handler_t *base)
{
    worker_process_t *self = (worker_process_t *) base;
    const char *detail = "still running at the shutdown timeout";
    s_release_pending(self, detail);
    for (int i = 0; i < self->count; i++) {
        worker_process_child_t *proc = &self->procs[i];
        if (proc->state == WORKER_CHILD_DOWN)
            continue;
        worker_process_child_close_stdin(proc);
        worker_process_child_release_all(proc, NSQ_FAILURE_TIMEOUT, 0, detail);
        proc->state = WORKER_CHILD_STOPPING;
        snprintf(proc->stop_reason, sizeof proc->stop_reason, "the shutdown timeout");
        if (!proc->term_ms) {
            worker_spawn_signal(proc->pid, SIGTERM);
            proc->term_ms = zclock_mono();
        }
    }
}

static void s_finish(worker_handler_t *base)
{
    worker_process_t *self = (worker_process_t *) base;
    self->finishing = true;
    s_release_pending(self, "the worker is shutting down");
    for (int i = 0; i < self->count; i++) {
        worker_process_child_t *proc = &self->procs[i];
        if (proc->state != WORKER_CHILD_RUNNING)
            continue;
        worker_process_child_close_stdin(proc);  // EOF: finish and exit
        proc->state = WORKER_CHILD_STOPPING;
    }
}

static bool s_finished(worker_handler_t *base)
{
    worker_process_t *self = (worker_process_t *) base;
    for (int i = 0; i < self->count; i++)
        if (self->procs[i].state != WORKER_CHILD_DOWN)
            return false;
    return true;
}

// Stops every process for good: EOF, SIGTERM to those still running (if
// not sent yet), SIGKILL to what is left WORKER_PROCESS_KILL_GRACE_MS later; reaps
// each. Blocks for the grace at most, once for all of them.
static void s_kill_all(worker_process_t *self)
{
    bool running = false;
    for (int i = 0; i < self->count; i++) {
        worker_process_child_t *proc = &self->procs[i];
        if (proc->state == WORKER_CHILD_DOWN)
            continue;
        worker_process_child_close_stdin(proc);
        if (worker_process_child_check_exit(proc))
            continue;
        running = true;
        if (!proc->term_ms) {
            nsq_warn("process %d (pid %d) did not exit after EOF: SIGTERM", proc->index,
                     (int) proc->pid);
            worker_spawn_signal(proc->pid, SIGTERM);
            proc->term_ms = zclock_mono();
        }
    }
    for (int64_t deadline = zclock_mono() + WORKER_PROCESS_KILL_GRACE_MS;
         running && zclock_mono() < deadline;) {
        zclock_sleep(10);
        running = false;
        for (int i = 0; i < self->count; i++)
            if (self->procs[i].state != WORKER_CHILD_DOWN
                && !worker_process_child_check_exit(&self->procs[i]))
                running = true;
    }
    for (int i = 0; running && i < self->count; i++) {
        worker_process_child_t *proc = &self->procs[i];
        if (proc->state == WORKER_CHILD_DOWN)
            continue;
        nsq_warn("process %d (pid %d) still runs after SIGTERM: SIGKILL", proc->index,
                 (int) proc->pid);
        worker_spawn_signal(proc->pid, SIGKILL);
        int status = 0;
        worker_spawn_reap(proc->pid, true, &status);
        worker_process_child_reap(proc, status);
    }
}

static void s_destroy(worker_handler_t *base)
{
    worker_process_t *self = (worker_process_t *) base;
    self->finishing = true;
    if (self->flush_timer)
        zloop_timer_end(self->context.loop, self->flush_timer);
    while (self->pending) {  // dropped without a result, as the contract says
        worker_process_entry_t *entry = self->pending;
        self->pending = entry->next;
        worker_process_entry_free(entry);
    }
    for (int i = 0; self->procs && i < self->count; i++)
        worker_process_child_drop_all(&self->procs[i]);
    if (self->procs)
        s_kill_all(self);
    for (int i = 0; self->procs && i < self->count; i++) {
        zhashx_destroy(&self->procs[i].entries);
        worker_frame_reader_destroy(&self->procs[i].reader);
    }
    free(self->procs);
    free(self->read_buffer);
    free(self->command);
    free(self);
}

static const worker_handler_ops_t s_ops = {
    .start = s_start,
    .tick = s_tick,
    .abort_all = s_abort_all,
    .finish = s_finish,
    .finished = s_finished,
    .destroy = s_destroy,
};

worker_handler_t *worker_handler_process_new(const worker_handler_context_t *context,
                                             const char *command, int count, int window)
{
    worker_process_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &s_ops;
    self->base.name = "process";
    self->dispatch = s_dispatch;
    self->context = *context;
    self->count = count > 0 ? count : 1;
    self->window = window > 0 ? (size_t) window : 1;
    self->command = strdup(command);
    self->procs = calloc((size_t) self->count, sizeof *self->procs);
    self->read_buffer = malloc(WORKER_PROCESS_READ_CHUNK);
    bool ok =
        self->command && self->procs && self->read_buffer
        && worker_frame_names(context->topic, context->channel, self->names, sizeof self->names)
               == 0;
    for (int i = 0; self->procs && i < self->count; i++) {
        worker_process_child_t *proc = &self->procs[i];
        *proc = (worker_process_child_t){.owner = self,
                                         .index = i,
                                         .state = WORKER_CHILD_DOWN,
                                         .pidfd = -1,
                                         .in_fd = -1,
                                         .out_fd = -1,
                                         .err_fd = -1};
        proc->entries = zhashx_new();
        proc->reader = worker_frame_reader_new(context->max_output);
        ok = ok && proc->entries && proc->reader;
    }
    for (int i = 0; ok && i < self->count; i++)
        ok = worker_process_child_start(&self->procs[i]) == 0;
    if (ok)
        worker_process_count_running(self);
    if (!ok) {
        nsq_error("process handler: cannot start %d process(es) of: %s", self->count, command);
        s_destroy(&self->base);
        return NULL;
    }
    return &self->base;
}
