/*  worker_process_child - one long-lived handler process of --process:
    its pipes, the writes of its messages, its replies, its stderr lines,
    its stop and its exit
    SPDX-License-Identifier: MIT

    Pipes are non-blocking: headers and bodies leave through writev straight
    from the messages (a writer poller while the pipe is full), replies are
    read by a poller on stdout, stderr lines go to the log by a poller on
    stderr, and exits are noticed by a pidfd poller (or, where pidfd_open
    is refused, by the pool's tick). Pollers carry their process and check
    the descriptor, since zloop may still call one that was removed earlier
    in the same pass. The design of the whole is in
    worker_handler_process.c.
*/
#include "worker_process.h"

#include "nsq_log.h"
#include "worker_frame.h"
#include "worker_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_RESTART_FIRST_MS 100        // first restart delay, doubled per short life
#define S_RESTART_MAX_MS   10000      // longest restart delay
#define S_HEALTHY_MS       10000      // a process that lived this long restarts at once
#define S_READS_PER_EVENT  16         // reads per wake-up, so one process cannot starve the loop
#define S_IOV_MAX          64         // pieces per writev
#define S_PIPE_SIZE        (1 << 20)  // asked of the kernel for stdin and stdout

static int s_on_stdout(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_stderr(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_writable(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg);

// ---- descriptors ------------------------------------------------------------

static void s_poller_end(worker_process_t *self, int fd, short events)
{
    zmq_pollitem_t item = {NULL, fd, events, 0};
    zloop_poller_end(self->context.loop, &item);
}

static int s_poller(worker_process_t *self, int fd, short events, zloop_fn handler,
                    worker_process_child_t *proc)
{
    zmq_pollitem_t item = {NULL, fd, events, 0};
    if (zloop_poller(self->context.loop, &item, handler, proc))
        return -1;
    zloop_poller_set_tolerant(self->context.loop, &item);
    return 0;
}

static void s_close(worker_process_t *self, int *fd, short events)
{
    if (*fd < 0)
        return;
    s_poller_end(self, *fd, events);
    close(*fd);
    *fd = -1;
}

void worker_process_child_close_stdin(worker_process_child_t *proc)
{
    s_close(proc->owner, &proc->in_fd, ZMQ_POLLOUT);
    proc->writing = false;
}

// ---- settling messages ------------------------------------------------------

void worker_process_entry_free(worker_process_entry_t *entry)
{
    entry->job->state = NULL;
    free(entry);
}

// Reports entry's result to the runtime and frees it.
void worker_process_report(worker_process_t *self, worker_process_entry_t *entry,
                           worker_result_t result)
{
    worker_job_t *job = entry->job;
    if (entry->proc)
        entry->proc->held--;
    worker_process_entry_free(entry);
    self->context.done(self->context.done_arg, job, result);
}

// The process answered entry: report it now, or once its body is written.
static void s_answer(worker_process_child_t *proc, worker_process_entry_t *entry,
                     worker_result_t result)
{
    zhashx_delete(proc->entries, nsq_msg_id(entry->job->msg));
    size_t total = entry->header_size + nsq_msg_size(entry->job->msg);
    if (entry->written < total) {
        entry->answered = true;
        entry->result = result;
        return;
    }
    worker_process_report(proc->owner, entry, result);
}

// Reports every message proc holds: early answers as answered, the rest
// as RETRY with the failure given. Its stdin must be closed first (a
// message may have been half written).
void worker_process_child_release_all(worker_process_child_t *proc, nsq_failure_kind_t kind,
                                      int64_t code, const char *detail)
{
    worker_process_t *self = proc->owner;
    while (proc->queue) {
        worker_process_entry_t *entry = proc->queue;
        proc->queue = entry->next;
        if (entry->answered)
            worker_process_report(self, entry, entry->result);
    }
    proc->queue_tail = NULL;
    worker_process_entry_t *entry;
    while ((entry = zhashx_first(proc->entries))) {
        zhashx_delete(proc->entries, nsq_msg_id(entry->job->msg));
        worker_job_fail(entry->job, kind, code, "%s", detail);
        worker_process_report(self, entry, WORKER_RESULT_RETRY);
    }
}

// ---- writing ----------------------------------------------------------------

// Counts wrote bytes off the write queue; reports early answers whose body
// is now out.
static void s_advance(worker_process_child_t *proc, size_t wrote)
{
    while (proc->queue) {
        worker_process_entry_t *entry = proc->queue;
        size_t total = entry->header_size + nsq_msg_size(entry->job->msg);
        size_t step = total - entry->written < wrote ? total - entry->written : wrote;
        entry->written += step;
        wrote -= step;
        if (entry->written < total)
            return;
        proc->queue = entry->next;
        if (!proc->queue)
            proc->queue_tail = NULL;
        if (entry->answered)
            worker_process_report(proc->owner, entry, entry->result);
    }
}

// The write queue as iovecs. Returns how many.
static int s_gather(worker_process_child_t *proc, struct iovec *iov)
{
    int count = 0;
    for (worker_process_entry_t *entry = proc->queue; entry && count < S_IOV_MAX - 1;
         entry = entry->next) {
        size_t done = entry->written;
        if (done < entry->header_size)
            iov[count++] = (struct iovec){entry->header + done, entry->header_size - done};
        size_t body_done = done > entry->header_size ? done - entry->header_size : 0;
        size_t size = nsq_msg_size(entry->job->msg);
        if (body_done < size)
            iov[count++] = (struct iovec){(char *) nsq_msg_body(entry->job->msg) + body_done,
                                          size - body_done};
    }
    return count;
}

// Writes as much of the queue as the pipe takes; a writer poller waits for
// room when it is full.
void worker_process_child_write(worker_process_child_t *proc)
{
    worker_process_t *self = proc->owner;
    while (proc->queue && proc->in_fd >= 0) {
        struct iovec iov[S_IOV_MAX];
        ssize_t wrote = writev(proc->in_fd, iov, s_gather(proc, iov));
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote < 0 && errno == EAGAIN) {
            if (!proc->writing
                && s_poller(self, proc->in_fd, ZMQ_POLLOUT, s_on_writable, proc) == 0)
                proc->writing = true;
            return;
        }
        if (wrote < 0) {  // EPIPE: it closed its stdin; its exit or the timeout will tell
            nsq_warn("process %d (pid %d): cannot write to its stdin: %s", proc->index,
                     (int) proc->pid, strerror(errno));
            worker_process_child_close_stdin(proc);
            return;
        }
        s_advance(proc, (size_t) wrote);
    }
    if (proc->writing && !proc->queue) {
        s_poller_end(self, proc->in_fd, ZMQ_POLLOUT);
        proc->writing = false;
    }
}

static int s_on_writable(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    worker_process_child_t *proc = arg;
    if (item->fd == proc->in_fd)
        worker_process_child_write(proc);
    proc->owner->dispatch(proc->owner);  // answers reported on the way may have made room
    return 0;
}

// ---- stopping ---------------------------------------------------------------

// Stops a process that misbehaves: logs why, closes its pipes, reports its
// messages RETRY, SIGTERMs its group (SIGKILL follows from the tick).
void worker_process_child_stop(worker_process_child_t *proc, nsq_failure_kind_t kind, int64_t code,
                               const char *format, ...)
{
    worker_process_t *self = proc->owner;
    va_list args;
    va_start(args, format);
    vsnprintf(proc->stop_reason, sizeof proc->stop_reason, format, args);
    va_end(args);
    nsq_warn("process %d (pid %d): %s: stopping it, %zu message(s) requeued", proc->index,
             (int) proc->pid, proc->stop_reason, zhashx_size(proc->entries));
    char detail[NSQ_FAILURE_DETAIL_MAX];
    snprintf(detail, sizeof detail, "process %d: %s", proc->index, proc->stop_reason);
    worker_process_child_close_stdin(proc);
    s_close(self, &proc->out_fd, ZMQ_POLLIN);
    proc->state = WORKER_CHILD_STOPPING;
    worker_process_child_release_all(proc, kind, code, detail);
    if (!proc->term_ms && !proc->exited) {
        worker_spawn_signal(proc->pid, SIGTERM);
        proc->term_ms = zclock_mono();
    }
}

// ---- reading ----------------------------------------------------------------

// Acts on one reply. Returns 0, or -1 if the process was stopped.
static int s_on_reply(worker_process_child_t *proc, const worker_frame_reply_t *reply)
{
    worker_process_t *self = proc->owner;
    worker_process_entry_t *entry = zhashx_lookup(proc->entries, reply->id);
    if (!entry && proc->state != WORKER_CHILD_RUNNING)
        return 0;  // it was told to go and its messages were reported already
    if (!entry) {
        worker_process_child_stop(proc, NSQ_FAILURE_ERROR, 0,
                                  "garbage on stdout: a reply for message %s, which it "
                                  "does not hold",
                                  reply->id);
        return -1;
    }
    worker_job_t *job = entry->job;
    proc->active_ms = zclock_mono();
    if (reply->op == WORKER_FRAME_TOUCH) {
        entry->alive_ms = zclock_mono();
        self->context.touch(self->context.done_arg, job);
        return 0;
    }
    if (reply->op == WORKER_FRAME_REQ) {
        job->req_delay_ms = reply->delay_ms;
        worker_job_fail(job, NSQ_FAILURE_ERROR, 0, "process %d asked to requeue it", proc->index);
        s_answer(proc, entry, WORKER_RESULT_RETRY);
        return 0;
    }
    if (self->context.capture_output
        && worker_job_output_add(job, reply->body, reply->size, self->context.max_output)) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, errno, "no memory for its output");
        s_answer(proc, entry, WORKER_RESULT_RETRY);
        return 0;
    }
    s_answer(proc, entry, WORKER_RESULT_OK);
    return 0;
}

// Takes every complete reply the reader holds. Returns 0, or -1 if the
// process was stopped.
static int s_take_replies(worker_process_child_t *proc)
{
    worker_frame_reply_t reply;
    char error[256];
    int rc;
    while ((rc = worker_frame_reader_next(proc->reader, &reply, error, sizeof error)) == 1)
        if (s_on_reply(proc, &reply))
            return -1;
    if (rc == 0)
        return 0;
    if (proc->state == WORKER_CHILD_RUNNING)
        worker_process_child_stop(proc, NSQ_FAILURE_ERROR, 0, "garbage on stdout: %s", error);
    else
        s_close(proc->owner, &proc->out_fd, ZMQ_POLLIN);  // leaving anyway: stop listening
    return -1;
}

// Reads what the process wrote to stdout (at most S_READS_PER_EVENT
// chunks, or all of it when it exited) and acts on each reply.
static void s_read_stdout(worker_process_child_t *proc, bool all)
{
    uint8_t *buffer = proc->owner->read_buffer;
    for (int reads = 0; proc->out_fd >= 0 && (all || reads < S_READS_PER_EVENT); reads++) {
        ssize_t got = read(proc->out_fd, buffer, WORKER_PROCESS_READ_CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return;
        if (got <= 0) {  // EOF: it exited, or closed stdout and can no longer answer
            s_close(proc->owner, &proc->out_fd, ZMQ_POLLIN);
            proc->eof_ms = zclock_mono();
            return;
        }
        if (worker_frame_reader_feed(proc->reader, buffer, (size_t) got)) {
            worker_process_child_stop(proc, NSQ_FAILURE_ERROR, ENOMEM, "no memory for its replies");
            return;
        }
        if (s_take_replies(proc))
            return;
    }
}

static int s_on_stdout(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    worker_process_child_t *proc = arg;
    if (item->fd == proc->out_fd)
        s_read_stdout(proc, false);
    proc->owner->dispatch(proc->owner);
    return 0;
}

static void s_log_err_line(worker_process_child_t *proc)
{
    if (proc->err_size)
        nsq_info("process %d: %.*s", proc->index, (int) proc->err_size, proc->err_line);
    proc->err_size = 0;
}

// Logs each line the process wrote to stderr; at its end, what is left.
static void s_read_stderr(worker_process_child_t *proc, bool all)
{
    char buffer[4096];
    for (int reads = 0; proc->err_fd >= 0 && (all || reads < S_READS_PER_EVENT); reads++) {
        ssize_t got = read(proc->err_fd, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return;
        if (got <= 0) {
            s_log_err_line(proc);
            s_close(proc->owner, &proc->err_fd, ZMQ_POLLIN);
            return;
        }
        for (ssize_t i = 0; i < got; i++) {
            if (buffer[i] == '\n')
                s_log_err_line(proc);
            else {
                proc->err_line[proc->err_size++] = buffer[i];
                if (proc->err_size == sizeof proc->err_line)
                    s_log_err_line(proc);
            }
        }
    }
}

static int s_on_stderr(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    worker_process_child_t *proc = arg;
    if (item->fd == proc->err_fd)
        s_read_stderr(proc, false);
    return 0;
}

// ---- starting and exits -----------------------------------------------------

// Creates three pipes: in[0] its stdin, out[1] its stdout, err[1] its
// stderr; our ends non-blocking. Returns 0, or -1 (all closed).
static int s_pipes(int in[2], int out[2], int err[2])
{
    in[0] = in[1] = out[0] = out[1] = err[0] = err[1] = -1;
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
        int fds[] = {in[0], in[1], out[0], out[1], err[0], err[1]};
        for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        return -1;
    }
    fcntl(in[1], F_SETPIPE_SZ, S_PIPE_SIZE);  // fewer wake-ups; the default is fine too
    fcntl(out[0], F_SETPIPE_SZ, S_PIPE_SIZE);
    int ours[] = {in[1], out[0], err[0]};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        fcntl(ours[i], F_SETFL, O_NONBLOCK | fcntl(ours[i], F_GETFL));
    return 0;
}

// Starts proc. Returns 0, or -1 (logged; the caller schedules a retry).
int worker_process_child_start(worker_process_child_t *proc)
{
    worker_process_t *self = proc->owner;
    char vars[5][96];
    snprintf(vars[0], sizeof vars[0], "NSQ_TOPIC=%s", self->context.topic);
    snprintf(vars[1], sizeof vars[1], "NSQ_CHANNEL=%s", self->context.channel);
    snprintf(vars[2], sizeof vars[2], "NSQ_PROCESS_INDEX=%d", proc->index);
    snprintf(vars[3], sizeof vars[3], "NSQ_PROCESS_WINDOW=%zu", self->window);
    snprintf(vars[4], sizeof vars[4], "NSQ_PROCESS_PROTOCOL=%d", WORKER_FRAME_VERSION);
    const char *add[] = {vars[0], vars[1], vars[2], vars[3], vars[4], NULL};
    int in[2], out[2], err[2];
    if (s_pipes(in, out, err)) {
        nsq_error("process %d: cannot create its pipes: %s", proc->index, strerror(errno));
        return -1;
    }
    const int fds[3] = {in[0], out[1], err[1]};
    pid_t pid = worker_spawn(self->command, fds, add);
    int spawn_errno = errno;
    close(in[0]);
    close(out[1]);
    close(err[1]);
    int pidfd = pid > 0 ? pidfd_open(pid, 0) : -1;
    if (pid > 0 && pidfd < 0 && !self->poll_exits) {
        nsq_warn("process handler: no pidfd (%s): checking for exits every tick", strerror(errno));
        self->poll_exits = true;  // old kernel, valgrind or a seccomp filter
    }
    if (pid < 0) {
        nsq_error("process %d: cannot start /bin/sh: %s", proc->index, strerror(spawn_errno));
        close(in[1]);
        close(out[0]);
        close(err[0]);
        return -1;
    }
    *proc = (worker_process_child_t){.owner = self,
                                     .index = proc->index,
                                     .state = WORKER_CHILD_RUNNING,
                                     .pid = pid,
                                     .pidfd = pidfd,
                                     .in_fd = in[1],
                                     .out_fd = out[0],
                                     .err_fd = err[0],
                                     .entries = proc->entries,
                                     .reader = proc->reader,
                                     .started_ms = zclock_mono(),
                                     .active_ms = zclock_mono(),
                                     .short_lives = proc->short_lives,
                                     .ever_started = true};
    s_poller(self, proc->out_fd, ZMQ_POLLIN, s_on_stdout, proc);
    s_poller(self, proc->err_fd, ZMQ_POLLIN, s_on_stderr, proc);
    if (proc->pidfd >= 0)
        s_poller(self, proc->pidfd, ZMQ_POLLIN, s_on_exit, proc);
    nsq_info("process %d started: pid %d, up to %zu message(s) at a time", proc->index, (int) pid,
             self->window);
    return 0;
}

void worker_process_count_running(worker_process_t *self)
{
    uint64_t running = 0;
    for (int i = 0; i < self->count; i++)
        running += self->procs[i].state != WORKER_CHILD_DOWN;
    worker_metrics_set(self->context.metrics, WORKER_METRIC_PROCESSES, running);
}

// "exited with code 3" or "killed by signal 9 (Killed)".
static void s_describe_exit(int status, char *text, size_t size, nsq_failure_kind_t *kind,
                            int64_t *code)
{
    if (WIFSIGNALED(status)) {
        *kind = NSQ_FAILURE_SIGNAL;
        *code = WTERMSIG(status);
        snprintf(text, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        *kind = NSQ_FAILURE_EXIT;
        *code = WEXITSTATUS(status);
        snprintf(text, size, "exited with code %d", WEXITSTATUS(status));
    }
}

// The delay before proc starts again: doubles per short life.
int64_t worker_process_child_restart_delay(worker_process_child_t *proc, int64_t now)
{
    if (now - proc->started_ms >= S_HEALTHY_MS)
        proc->short_lives = 0;
    int64_t delay = S_RESTART_FIRST_MS;
    for (int i = 0; i < proc->short_lives && delay < S_RESTART_MAX_MS; i++)
        delay *= 2;
    proc->short_lives++;
    return delay < S_RESTART_MAX_MS ? delay : S_RESTART_MAX_MS;
}

// Takes proc's exit (status): its last replies and stderr lines, reports
// what it still held as RETRY, closes everything and schedules the
// restart.
void worker_process_child_reap(worker_process_child_t *proc, int status)
{
    worker_process_t *self = proc->owner;
    proc->exited = true;
    worker_process_child_close_stdin(proc);
    s_read_stdout(proc, true);  // replies it wrote before it exited count
    s_read_stderr(proc, true);
    char how[96], detail[NSQ_FAILURE_DETAIL_MAX];
    nsq_failure_kind_t kind;
    int64_t code;
    s_describe_exit(status, how, sizeof how, &kind, &code);
    size_t lost = zhashx_size(proc->entries);
    snprintf(detail, sizeof detail, "process %d %s", proc->index, how);
    worker_process_child_release_all(proc, kind, code, detail);
    s_close(self, &proc->out_fd, ZMQ_POLLIN);
    s_close(self, &proc->err_fd, ZMQ_POLLIN);
    s_close(self, &proc->pidfd, ZMQ_POLLIN);
    worker_frame_reader_destroy(&proc->reader);
    proc->reader = worker_frame_reader_new(self->context.max_output);
    int64_t now = zclock_mono();
    proc->state = WORKER_CHILD_DOWN;
    proc->restart_ms = now + worker_process_child_restart_delay(proc, now);
    bool expected = self->finishing || proc->stop_reason[0];
    if (self->finishing)
        nsq_info("process %d (pid %d) %s", proc->index, (int) proc->pid, how);
    else
        nsq_log(expected ? NSQ_LOG_INFO : NSQ_LOG_WARN,
                "process %d (pid %d) %s%s%s, %zu message(s) requeued; restarting it in %lld ms",
                proc->index, (int) proc->pid, how, expected ? " after: " : "", proc->stop_reason,
                lost, (long long) (proc->restart_ms - now));
    proc->pid = 0;
    worker_process_count_running(self);
}

// Reaps proc if it exited. Returns true if it had.
bool worker_process_child_check_exit(worker_process_child_t *proc)
{
    int status = 0;
    if (proc->state == WORKER_CHILD_DOWN || !worker_spawn_reap(proc->pid, false, &status))
        return false;
    worker_process_child_reap(proc, status);
    return true;
}

static int s_on_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    worker_process_child_t *proc = arg;
    if (item->fd == proc->pidfd)
        worker_process_child_check_exit(proc);  // a stale wake-up finds it down, or still running
    return 0;
}

// Forgets every message proc holds, without a result.
void worker_process_child_drop_all(worker_process_child_t *proc)
{
    worker_process_child_close_stdin(proc);  // a message may be half written
    while (proc->queue) {
        worker_process_entry_t *entry = proc->queue;
        proc->queue = entry->next;
        if (entry->answered)  // no longer among the entries below
            worker_process_entry_free(entry);
    }
    proc->queue_tail = NULL;
    worker_process_entry_t *entry;
    while (proc->entries && (entry = zhashx_first(proc->entries))) {
        zhashx_delete(proc->entries, nsq_msg_id(entry->job->msg));
        worker_process_entry_free(entry);
    }
    proc->held = 0;
}
