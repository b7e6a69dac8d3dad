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

    Everything runs on the worker's zloop, nothing blocks: pipes are
    non-blocking, headers and bodies leave through writev straight from the
    messages (a writer poller while the pipe is full), replies are read by
    a poller on stdout, stderr lines go to the log by a poller on stderr,
    and exits are noticed by a pidfd poller (or, where pidfd_open is
    refused, by waitpid in the tick). Pollers carry their process and check
    the descriptor, since zloop may still call one that was removed earlier
    in the same pass.

    A message is in flight from dispatch until its reply. A reply that
    comes before its body was fully written (the process did not need the
    body) is kept on the message until the write is done, since the body
    is still being written from the message.

    A process is stopped (stdin closed, SIGTERM to its group, SIGKILL
    S_KILL_GRACE_MS later) and its messages reported RETRY when it writes
    garbage (anything that is not the protocol, or a reply for an id it
    does not hold), is hung (it holds a message untouched for the timeout
    and has written nothing for as long: one message at a time is not a
    hang), or closes its stdout. Whatever the reason, once it exited what
    is left of its process group is killed (worker_spawn_reap) and it
    starts again after a delay that doubles with each short life
    (S_RESTART_FIRST_MS .. S_RESTART_MAX_MS; a life of S_HEALTHY_MS resets
    it). Every stop and exit is logged with the reason and counted.

    Shutdown: abort_all (the shutdown timeout) reports every message RETRY
    and SIGTERMs the processes; finish closes every stdin (the processes
    read EOF, finish and exit) and stops restarts; finished says when all
    have exited; destroy drops what is left without a result, SIGTERMs the
    processes still running, SIGKILLs them S_KILL_GRACE_MS later (one
    grace for all) and reaps them.
*/
#include "worker_handler.h"

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

#define S_KILL_GRACE_MS    2000       // SIGTERM, then this long before SIGKILL
#define S_EOF_GRACE_MS     500        // stdout closed: this long to exit before it is stopped
#define S_RESTART_FIRST_MS 100        // first restart delay, doubled per short life
#define S_RESTART_MAX_MS   10000      // longest restart delay
#define S_HEALTHY_MS       10000      // a process that lived this long restarts at once
#define S_READ_CHUNK       65536      // bytes per read of stdout or stderr
#define S_READS_PER_EVENT  16         // reads per wake-up, so one process cannot starve the loop
#define S_ERR_LINE_MAX     2048       // a longer stderr line is logged in pieces
#define S_IOV_MAX          64         // pieces per writev
#define S_PIPE_SIZE        (1 << 20)  // asked of the kernel for stdin and stdout
#define S_HEADER_MAX       512        // a message's header line

typedef struct _s_proc_t s_proc_t;
typedef struct _s_entry_t s_entry_t;

// One message on its way through a process.
struct _s_entry_t {
    worker_job_t *job;          // the runtime's job (job->state points back here)
    s_proc_t *proc;             // where it went, NULL while pending
    char header[S_HEADER_MAX];  // its header line
    size_t header_size;
    size_t written;          // bytes of header and body written so far
    int64_t alive_ms;        // dispatched, or last touched by the process
    bool answered;           // the reply came before the body was written out
    worker_result_t result;  // that reply
    s_entry_t *next;         // pending FIFO or the process's write queue
};

typedef enum {
    S_DOWN,      // not running; starts at restart_ms unless finishing
    S_RUNNING,   // takes messages
    S_STOPPING,  // told to go (EOF or a signal); waiting for its exit
} s_state_t;

typedef struct _s_process_t s_process_t;

struct _s_proc_t {
    s_process_t *owner;             // the handler
    int index;                      // 0 .. count-1, NSQ_PROCESS_INDEX
    s_state_t state;                // see above
    pid_t pid;                      // 0 when down
    int pidfd;                      // readable at its exit, -1 if none
    int in_fd;                      // its stdin (ours to write), -1 once closed
    int out_fd;                     // its stdout (ours to read), -1 once closed
    int err_fd;                     // its stderr, -1 once closed
    bool writing;                   // a writer poller waits for room in its stdin
    zhashx_t *entries;              // id -> s_entry_t awaiting a reply
    size_t held;                    // messages it holds, answered early ones included
    s_entry_t *queue;               // not yet fully written, oldest first
    s_entry_t *queue_tail;          //
    worker_frame_reader_t *reader;  // its replies
    char err_line[S_ERR_LINE_MAX];  // stderr line in progress
    size_t err_size;                //
    int64_t started_ms;             // zclock_mono at start
    int64_t active_ms;              // its last reply or touch (or its start)
    int64_t eof_ms;                 // when its stdout closed, 0 if open
    int64_t term_ms;                // when SIGTERM was sent, 0 if not
    bool killed;                    // SIGKILL sent
    bool exited;                    // reaped: its pid may belong to another process now
    int64_t restart_ms;             // S_DOWN: when to start it again
    int short_lives;                // in a row, for the restart delay
    bool ever_started;              // a start after this one is a restart
    char stop_reason[200];          // why we stopped it, "" if we did not
};

struct _s_process_t {
    worker_handler_t base;             // first: the runtime's view
    worker_handler_context_t context;  // loop, callbacks, limits
    char *command;                     // for /bin/sh -c
    char names[300];                   // "topic":..,"channel":.. of every header
    int count;                         // processes
    size_t window;                     // messages per process
    s_proc_t *procs;                   // count of them
    s_entry_t *pending;                // jobs waiting for room, oldest first
    s_entry_t *pending_tail;           //
    uint8_t *read_buffer;              // S_READ_CHUNK bytes for reads of stdout
    int flush_timer;                   // dispatches what s_start queued, 0 if not armed
    int next_pick;                     // where the next search for room starts
    bool poll_exits;                   // no pidfd here: the tick looks for exits
    bool finishing;                    // finish was called: no restarts
};

static int s_on_stdout(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_stderr(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_writable(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static void s_dispatch(s_process_t *self);

// ---- descriptors ------------------------------------------------------------

static void s_poller_end(s_process_t *self, int fd, short events)
{
    zmq_pollitem_t item = {NULL, fd, events, 0};
    zloop_poller_end(self->context.loop, &item);
}

static int s_poller(s_process_t *self, int fd, short events, zloop_fn handler, s_proc_t *proc)
{
    zmq_pollitem_t item = {NULL, fd, events, 0};
    if (zloop_poller(self->context.loop, &item, handler, proc))
        return -1;
    zloop_poller_set_tolerant(self->context.loop, &item);
    return 0;
}

static void s_close(s_process_t *self, int *fd, short events)
{
    if (*fd < 0)
        return;
    s_poller_end(self, *fd, events);
    close(*fd);
    *fd = -1;
}

static void s_close_stdin(s_proc_t *proc)
{
    s_close(proc->owner, &proc->in_fd, ZMQ_POLLOUT);
    proc->writing = false;
}

// ---- settling messages ------------------------------------------------------

static void s_entry_free(s_entry_t *entry)
{
    entry->job->state = NULL;
    free(entry);
}

// Reports entry's result to the runtime and frees it.
static void s_report(s_process_t *self, s_entry_t *entry, worker_result_t result)
{
    worker_job_t *job = entry->job;
    if (entry->proc)
        entry->proc->held--;
    s_entry_free(entry);
    self->context.done(self->context.done_arg, job, result);
}

// The process answered entry: report it now, or once its body is written.
static void s_answer(s_proc_t *proc, s_entry_t *entry, worker_result_t result)
{
    zhashx_delete(proc->entries, nsq_msg_id(entry->job->msg));
    size_t total = entry->header_size + nsq_msg_size(entry->job->msg);
    if (entry->written < total) {
        entry->answered = true;
        entry->result = result;
        return;
    }
    s_report(proc->owner, entry, result);
}

// Reports every message proc holds: early answers as answered, the rest
// as RETRY with the failure given. Its stdin must be closed first (a
// message may have been half written).
static void s_release_all(s_proc_t *proc, nsq_failure_kind_t kind, int64_t code, const char *detail)
{
    s_process_t *self = proc->owner;
    while (proc->queue) {
        s_entry_t *entry = proc->queue;
        proc->queue = entry->next;
        if (entry->answered)
            s_report(self, entry, entry->result);
    }
    proc->queue_tail = NULL;
    s_entry_t *entry;
    while ((entry = zhashx_first(proc->entries))) {
        zhashx_delete(proc->entries, nsq_msg_id(entry->job->msg));
        worker_job_fail(entry->job, kind, code, "%s", detail);
        s_report(self, entry, WORKER_RESULT_RETRY);
    }
}

// ---- writing ----------------------------------------------------------------

// Counts wrote bytes off the write queue; reports early answers whose body
// is now out.
static void s_advance(s_proc_t *proc, size_t wrote)
{
    while (proc->queue) {
        s_entry_t *entry = proc->queue;
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
            s_report(proc->owner, entry, entry->result);
    }
}

// The write queue as iovecs. Returns how many.
static int s_gather(s_proc_t *proc, struct iovec *iov)
{
    int count = 0;
    for (s_entry_t *entry = proc->queue; entry && count < S_IOV_MAX - 1; entry = entry->next) {
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
static void s_write(s_proc_t *proc)
{
    s_process_t *self = proc->owner;
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
            s_close_stdin(proc);
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
    s_proc_t *proc = arg;
    if (item->fd == proc->in_fd)
        s_write(proc);
    s_dispatch(proc->owner);  // answers reported on the way may have made room
    return 0;
}

// ---- stopping ---------------------------------------------------------------

// Stops a process that misbehaves: logs why, closes its pipes, reports its
// messages RETRY, SIGTERMs its group (SIGKILL follows from the tick).
static void s_stop(s_proc_t *proc, nsq_failure_kind_t kind, int64_t code, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
static void s_stop(s_proc_t *proc, nsq_failure_kind_t kind, int64_t code, const char *format, ...)
{
    s_process_t *self = proc->owner;
    va_list args;
    va_start(args, format);
    vsnprintf(proc->stop_reason, sizeof proc->stop_reason, format, args);
    va_end(args);
    nsq_warn("process %d (pid %d): %s: stopping it, %zu message(s) requeued", proc->index,
             (int) proc->pid, proc->stop_reason, zhashx_size(proc->entries));
    char detail[NSQ_FAILURE_DETAIL_MAX];
    snprintf(detail, sizeof detail, "process %d: %s", proc->index, proc->stop_reason);
    s_close_stdin(proc);
    s_close(self, &proc->out_fd, ZMQ_POLLIN);
    proc->state = S_STOPPING;
    s_release_all(proc, kind, code, detail);
    if (!proc->term_ms && !proc->exited) {
        worker_spawn_signal(proc->pid, SIGTERM);
        proc->term_ms = zclock_mono();
    }
}

// ---- reading ----------------------------------------------------------------

// Acts on one reply. Returns 0, or -1 if the process was stopped.
static int s_on_reply(s_proc_t *proc, const worker_frame_reply_t *reply)
{
    s_process_t *self = proc->owner;
    s_entry_t *entry = zhashx_lookup(proc->entries, reply->id);
    if (!entry && proc->state != S_RUNNING)
        return 0;  // it was told to go and its messages were reported already
    if (!entry) {
        s_stop(proc, NSQ_FAILURE_ERROR, 0,
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
static int s_take_replies(s_proc_t *proc)
{
    worker_frame_reply_t reply;
    char error[256];
    int rc;
    while ((rc = worker_frame_reader_next(proc->reader, &reply, error, sizeof error)) == 1)
        if (s_on_reply(proc, &reply))
            return -1;
    if (rc == 0)
        return 0;
    if (proc->state == S_RUNNING)
        s_stop(proc, NSQ_FAILURE_ERROR, 0, "garbage on stdout: %s", error);
    else
        s_close(proc->owner, &proc->out_fd, ZMQ_POLLIN);  // leaving anyway: stop listening
    return -1;
}

// Reads what the process wrote to stdout (at most S_READS_PER_EVENT
// chunks, or all of it when it exited) and acts on each reply.
static void s_read_stdout(s_proc_t *proc, bool all)
{
    uint8_t *buffer = proc->owner->read_buffer;
    for (int reads = 0; proc->out_fd >= 0 && (all || reads < S_READS_PER_EVENT); reads++) {
        ssize_t got = read(proc->out_fd, buffer, S_READ_CHUNK);
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
            s_stop(proc, NSQ_FAILURE_ERROR, ENOMEM, "no memory for its replies");
            return;
        }
        if (s_take_replies(proc))
            return;
    }
}

static int s_on_stdout(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    s_proc_t *proc = arg;
    if (item->fd == proc->out_fd)
        s_read_stdout(proc, false);
    s_dispatch(proc->owner);
    return 0;
}

static void s_log_err_line(s_proc_t *proc)
{
    if (proc->err_size)
        nsq_info("process %d: %.*s", proc->index, (int) proc->err_size, proc->err_line);
    proc->err_size = 0;
}

// Logs each line the process wrote to stderr; at its end, what is left.
static void s_read_stderr(s_proc_t *proc, bool all)
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
    s_proc_t *proc = arg;
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
static int s_start_proc(s_proc_t *proc)
{
    s_process_t *self = proc->owner;
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
    *proc = (s_proc_t){.owner = self,
                       .index = proc->index,
                       .state = S_RUNNING,
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

static void s_count_running(s_process_t *self)
{
    uint64_t running = 0;
    for (int i = 0; i < self->count; i++)
        running += self->procs[i].state != S_DOWN;
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
static int64_t s_restart_delay(s_proc_t *proc, int64_t now)
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
static void s_reap(s_proc_t *proc, int status)
{
    s_process_t *self = proc->owner;
    proc->exited = true;
    s_close_stdin(proc);
    s_read_stdout(proc, true);  // replies it wrote before it exited count
    s_read_stderr(proc, true);
    char how[96], detail[NSQ_FAILURE_DETAIL_MAX];
    nsq_failure_kind_t kind;
    int64_t code;
    s_describe_exit(status, how, sizeof how, &kind, &code);
    size_t lost = zhashx_size(proc->entries);
    snprintf(detail, sizeof detail, "process %d %s", proc->index, how);
    s_release_all(proc, kind, code, detail);
    s_close(self, &proc->out_fd, ZMQ_POLLIN);
    s_close(self, &proc->err_fd, ZMQ_POLLIN);
    s_close(self, &proc->pidfd, ZMQ_POLLIN);
    worker_frame_reader_destroy(&proc->reader);
    proc->reader = worker_frame_reader_new(self->context.max_output);
    int64_t now = zclock_mono();
    proc->state = S_DOWN;
    proc->restart_ms = now + s_restart_delay(proc, now);
    bool expected = self->finishing || proc->stop_reason[0];
    if (self->finishing)
        nsq_info("process %d (pid %d) %s", proc->index, (int) proc->pid, how);
    else
        nsq_log(expected ? NSQ_LOG_INFO : NSQ_LOG_WARN,
                "process %d (pid %d) %s%s%s, %zu message(s) requeued; restarting it in %lld ms",
                proc->index, (int) proc->pid, how, expected ? " after: " : "", proc->stop_reason,
                lost, (long long) (proc->restart_ms - now));
    proc->pid = 0;
    s_count_running(self);
}

// Reaps proc if it exited. Returns true if it had.
static bool s_check_exit(s_proc_t *proc)
{
    int status = 0;
    if (proc->state == S_DOWN || !worker_spawn_reap(proc->pid, false, &status))
        return false;
    s_reap(proc, status);
    return true;
}

static int s_on_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    s_proc_t *proc = arg;
    if (item->fd == proc->pidfd)
        s_check_exit(proc);  // a stale wake-up finds it down, or still running
    return 0;
}

// ---- dispatch ---------------------------------------------------------------

// The running process with the fewest messages (with room, and not holding
// a message with the same id), searching from next_pick so that ties
// rotate. NULL if none.
static s_proc_t *s_pick(s_process_t *self, const char *id)
{
    s_proc_t *best = NULL;
    for (int n = 0; n < self->count; n++) {
        s_proc_t *proc = &self->procs[(self->next_pick + n) % self->count];
        if (proc->state != S_RUNNING || proc->in_fd < 0 || proc->held >= self->window
            || (best && proc->held >= best->held) || zhashx_lookup(proc->entries, id))
            continue;
        best = proc;
    }
    if (best)
        self->next_pick = (best->index + 1) % self->count;
    return best;
}

// Hands pending messages to processes with room, then writes.
static void s_dispatch(s_process_t *self)
{
    while (self->pending) {
        s_entry_t *entry = self->pending;
        s_proc_t *proc = s_pick(self, nsq_msg_id(entry->job->msg));
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
            s_write(&self->procs[i]);
}

// ---- the handler ------------------------------------------------------------

static int s_on_flush(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_process_t *self = arg;
    self->flush_timer = 0;  // one-shot: zloop removes it after we return
    s_dispatch(self);
    return 0;
}

static int s_start(worker_handler_t *base, worker_job_t *job)
{
    s_process_t *self = (s_process_t *) base;
    s_entry_t *entry = calloc(1, sizeof *entry);
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
static s_entry_t *s_overdue(s_process_t *self, s_proc_t *proc, int64_t now)
{
    if (!self->context.timeout_ms || now - proc->active_ms < self->context.timeout_ms)
        return NULL;
    for (s_entry_t *entry = zhashx_first(proc->entries); entry; entry = zhashx_next(proc->entries))
        if (now - entry->alive_ms >= self->context.timeout_ms)
            return entry;
    return NULL;
}

// Timeouts, signals, restarts for one process.
static void s_tick_proc(s_process_t *self, s_proc_t *proc, int64_t now)
{
    if (self->poll_exits && proc->pidfd < 0 && s_check_exit(proc))
        return;
    if (proc->state == S_DOWN) {
        if (!self->finishing && now >= proc->restart_ms) {
            bool restart = proc->ever_started;
            if (s_start_proc(proc) == 0 && restart)
                worker_metrics_add(self->context.metrics, WORKER_METRIC_RESTARTS, 1);
            else if (proc->state == S_DOWN)
                proc->restart_ms = now + s_restart_delay(proc, now);
            s_count_running(self);
        }
        return;
    }
    s_entry_t *late = proc->state == S_RUNNING ? s_overdue(self, proc, now) : NULL;
    if (late) {
        worker_metrics_add(self->context.metrics, WORKER_METRIC_TIMEOUTS, 1);
        s_stop(proc, NSQ_FAILURE_TIMEOUT, self->context.timeout_ms,
               "no answer or touch for message %s within %lld ms", nsq_msg_id(late->job->msg),
               (long long) self->context.timeout_ms);
    } else if (proc->state == S_RUNNING && proc->eof_ms && now - proc->eof_ms >= S_EOF_GRACE_MS)
        s_stop(proc, NSQ_FAILURE_ERROR, 0, "it closed its stdout but did not exit");
    else if (proc->term_ms && !proc->killed && now - proc->term_ms >= S_KILL_GRACE_MS) {
        nsq_warn("process %d (pid %d) still runs %d ms after SIGTERM: SIGKILL", proc->index,
                 (int) proc->pid, S_KILL_GRACE_MS);
        worker_spawn_signal(proc->pid, SIGKILL);
        proc->killed = true;
    }
}

static void s_tick(worker_handler_t *base, int64_t now)
{
    s_process_t *self = (s_process_t *) base;
    for (int i = 0; i < self->count; i++)
        s_tick_proc(self, &self->procs[i], now);
    s_dispatch(self);
}

// Reports the pending jobs RETRY.
static void s_release_pending(s_process_t *self, const char *detail)
{
    while (self->pending) {
        s_entry_t *entry = self->pending;
        self->pending = entry->next;
        worker_job_fail(entry->job, NSQ_FAILURE_TIMEOUT, 0, "%s", detail);
        s_report(self, entry, WORKER_RESULT_RETRY);
    }
    self->pending_tail = NULL;
}

// The shutdown timeout passed: every message is reported RETRY and every
// process told to go (EOF and SIGTERM).
static void s_abort_all(worker_handler_t *base)
{
    s_process_t *self = (s_process_t *) base;
    const char *detail = "still running at the shutdown timeout";
    s_release_pending(self, detail);
    for (int i = 0; i < self->count; i++) {
        s_proc_t *proc = &self->procs[i];
        if (proc->state == S_DOWN)
            continue;
        s_close_stdin(proc);
        s_release_all(proc, NSQ_FAILURE_TIMEOUT, 0, detail);
        proc->state = S_STOPPING;
        snprintf(proc->stop_reason, sizeof proc->stop_reason, "the shutdown timeout");
        if (!proc->term_ms) {
            worker_spawn_signal(proc->pid, SIGTERM);
            proc->term_ms = zclock_mono();
        }
    }
}

static void s_finish(worker_handler_t *base)
{
    s_process_t *self = (s_process_t *) base;
    self->finishing = true;
    s_release_pending(self, "the worker is shutting down");
    for (int i = 0; i < self->count; i++) {
        s_proc_t *proc = &self->procs[i];
        if (proc->state != S_RUNNING)
            continue;
        s_close_stdin(proc);  // EOF: finish and exit
        proc->state = S_STOPPING;
    }
}

static bool s_finished(worker_handler_t *base)
{
    s_process_t *self = (s_process_t *) base;
    for (int i = 0; i < self->count; i++)
        if (self->procs[i].state != S_DOWN)
            return false;
    return true;
}

// Stops every process for good: EOF, SIGTERM to those still running (if
// not sent yet), SIGKILL to what is left S_KILL_GRACE_MS later; reaps
// each. Blocks for the grace at most, once for all of them.
static void s_kill_all(s_process_t *self)
{
    bool running = false;
    for (int i = 0; i < self->count; i++) {
        s_proc_t *proc = &self->procs[i];
        if (proc->state == S_DOWN)
            continue;
        s_close_stdin(proc);
        if (s_check_exit(proc))
            continue;
        running = true;
        if (!proc->term_ms) {
            nsq_warn("process %d (pid %d) did not exit after EOF: SIGTERM", proc->index,
                     (int) proc->pid);
            worker_spawn_signal(proc->pid, SIGTERM);
            proc->term_ms = zclock_mono();
        }
    }
    for (int64_t deadline = zclock_mono() + S_KILL_GRACE_MS; running && zclock_mono() < deadline;) {
        zclock_sleep(10);
        running = false;
        for (int i = 0; i < self->count; i++)
            if (self->procs[i].state != S_DOWN && !s_check_exit(&self->procs[i]))
                running = true;
    }
    for (int i = 0; running && i < self->count; i++) {
        s_proc_t *proc = &self->procs[i];
        if (proc->state == S_DOWN)
            continue;
        nsq_warn("process %d (pid %d) still runs after SIGTERM: SIGKILL", proc->index,
                 (int) proc->pid);
        worker_spawn_signal(proc->pid, SIGKILL);
        int status = 0;
        worker_spawn_reap(proc->pid, true, &status);
        s_reap(proc, status);
    }
}

// Forgets every message proc holds, without a result.
static void s_drop_all(s_proc_t *proc)
{
    s_close_stdin(proc);  // a message may be half written
    while (proc->queue) {
        s_entry_t *entry = proc->queue;
        proc->queue = entry->next;
        if (entry->answered)  // no longer among the entries below
            s_entry_free(entry);
    }
    proc->queue_tail = NULL;
    s_entry_t *entry;
    while (proc->entries && (entry = zhashx_first(proc->entries))) {
        zhashx_delete(proc->entries, nsq_msg_id(entry->job->msg));
        s_entry_free(entry);
    }
    proc->held = 0;
}

static void s_destroy(worker_handler_t *base)
{
    s_process_t *self = (s_process_t *) base;
    self->finishing = true;
    if (self->flush_timer)
        zloop_timer_end(self->context.loop, self->flush_timer);
    while (self->pending) {  // dropped without a result, as the contract says
        s_entry_t *entry = self->pending;
        self->pending = entry->next;
        s_entry_free(entry);
    }
    for (int i = 0; self->procs && i < self->count; i++)
        s_drop_all(&self->procs[i]);
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
    s_process_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &s_ops;
    self->base.name = "process";
    self->context = *context;
    self->count = count > 0 ? count : 1;
    self->window = window > 0 ? (size_t) window : 1;
    self->command = strdup(command);
    self->procs = calloc((size_t) self->count, sizeof *self->procs);
    self->read_buffer = malloc(S_READ_CHUNK);
    bool ok =
        self->command && self->procs && self->read_buffer
        && worker_frame_names(context->topic, context->channel, self->names, sizeof self->names)
               == 0;
    for (int i = 0; self->procs && i < self->count; i++) {
        s_proc_t *proc = &self->procs[i];
        *proc = (s_proc_t){.owner = self,
                           .index = i,
                           .state = S_DOWN,
                           .pidfd = -1,
                           .in_fd = -1,
                           .out_fd = -1,
                           .err_fd = -1};
        proc->entries = zhashx_new();
        proc->reader = worker_frame_reader_new(context->max_output);
        ok = ok && proc->entries && proc->reader;
    }
    for (int i = 0; ok && i < self->count; i++)
        ok = s_start_proc(&self->procs[i]) == 0;
    if (ok)
        s_count_running(self);
    if (!ok) {
        nsq_error("process handler: cannot start %d process(es) of: %s", self->count, command);
        s_destroy(&self->base);
        return NULL;
    }
    return &self->base;
}
