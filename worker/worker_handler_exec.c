/*  worker_handler_exec - run a shell command per message
    SPDX-License-Identifier: MIT

    Each job runs /bin/sh -c COMMAND in a process group of its own
    (worker_spawn: a signal to the worker does not reach it, and a timeout
    kills the whole group), with the body on stdin and NSQ_MSG_ID,
    NSQ_MSG_ATTEMPTS, NSQ_MSG_TIMESTAMP (ns), NSQ_TOPIC and NSQ_CHANNEL in
    its environment; stderr is the worker's, and so is stdout unless the
    output is captured (--publish-topic): then stdout is read through a
    non-blocking pipe straight into the job's output (more than max_output
    bytes fails the job; the rest is read and dropped so the command never
    blocks on a full pipe). Exit status 0 is OK, anything else RETRY.

    Nothing blocks the loop: the child is started with posix_spawn, the body
    is written through a non-blocking pipe as the child reads it (a writer
    poller on the loop), and the exit is noticed through a pidfd poller.
    Where pidfd_open is refused (kernels before 5.3, valgrind, strict
    seccomp filters) the tick polls waitpid instead, with the tick's latency (100 ms).
    Pollers are looked up by descriptor and stale wake-ups are ignored, since
    zloop may still call a poller that was removed earlier in the same pass.
    The periodic tick sends SIGTERM to a group running past the timeout and
    SIGKILL S_KILL_GRACE_MS later.
*/
#include "worker_handler.h"

#include "nsq_log.h"
#include "worker_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_KILL_GRACE_MS 2000  // SIGTERM, then this long before SIGKILL
#define S_ENV_EXTRA     5     // variables added per message

typedef struct _s_child_t s_child_t;
struct _s_child_t {
    worker_job_t *job;  // what it handles
    pid_t pid;          // the shell; also its process group
    int pidfd;          // readable once it exited
    int stdin_fd;       // write end of its stdin, -1 once closed
    int stdout_fd;      // read end of its stdout when captured, -1 if not or once closed
    bool output_over;   // it wrote more than max_output (or memory ran out)
    size_t written;     // body bytes written so far
    int64_t term_ms;    // when SIGTERM was sent, 0 if not
    bool timed_out;     // stopped by the timeout
    s_child_t *next;    // the handler's list
};

typedef struct {
    worker_handler_t base;             // first: the runtime's view
    worker_handler_context_t context;  // loop and done callback
    char *command;                     // for /bin/sh -c
    s_child_t *children;               // running
    bool poll_exits;                   // no pidfd here: the tick looks for exits
} s_exec_t;

static int s_on_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_writable(zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_output(zloop_t *loop, zmq_pollitem_t *item, void *arg);

// Ends the poller on *fd and closes it; -1 afterwards.
static void s_close_pipe(s_exec_t *self, int *fd, short events)
{
    if (*fd < 0)
        return;
    zmq_pollitem_t item = {NULL, *fd, events, 0};
    zloop_poller_end(self->context.loop, &item);
    close(*fd);
    *fd = -1;
}

// Writes as much of the body as the pipe takes; closes stdin when done or
// when the child stopped reading.
static void s_feed(s_exec_t *self, s_child_t *child)
{
    const char *body = nsq_msg_body(child->job->msg);
    size_t size = nsq_msg_size(child->job->msg);
    while (child->written < size) {
        ssize_t wrote = write(child->stdin_fd, body + child->written, size - child->written);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote < 0 && errno == EAGAIN)
            return;  // the writer poller calls again
        if (wrote < 0)
            break;  // EPIPE: the command does not read its stdin, which is fine
        child->written += (size_t) wrote;
    }
    s_close_pipe(self, &child->stdin_fd, ZMQ_POLLOUT);
}

// Starts the shell with stdin_read and stdout_write (-1: the worker's) and
// the message in its environment. Returns its pid or -1.
static pid_t s_spawn(s_exec_t *self, nsq_msg_t *msg, int stdin_read, int stdout_write)
{
    char extra[S_ENV_EXTRA][96];  // names are at most 64 bytes
    snprintf(extra[0], 96, "NSQ_MSG_ID=%s", nsq_msg_id(msg));
    snprintf(extra[1], 96, "NSQ_MSG_ATTEMPTS=%u", nsq_msg_attempts(msg));
    snprintf(extra[2], 96, "NSQ_MSG_TIMESTAMP=%lld", (long long) nsq_msg_timestamp(msg));
    snprintf(extra[3], 96, "NSQ_TOPIC=%s", self->context.topic);
    snprintf(extra[4], 96, "NSQ_CHANNEL=%s", self->context.channel);
    const char *add[] = {extra[0], extra[1], extra[2], extra[3], extra[4], NULL};
    const int fds[3] = {stdin_read, stdout_write, -1};
    return worker_spawn(self->command, fds, add);
}

// Reads what the command wrote to its stdout so far: into the job's
// output up to max_output, beyond that nowhere. Closes the pipe at its end.
static void s_read_output(s_exec_t *self, s_child_t *child)
{
    uint8_t buffer[16384];
    while (child->stdout_fd >= 0) {
        ssize_t got = read(child->stdout_fd, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return;
        if (got <= 0)
            break;  // EOF
        if (!child->output_over
            && worker_job_output_add(child->job, buffer, (size_t) got, self->context.max_output))
            child->output_over = true;
    }
    s_close_pipe(self, &child->stdout_fd, ZMQ_POLLIN);
}

// The pipe for the command's stdout when the output is captured: fds[0]
// ours (non-blocking), fds[1] its. Returns 0 (fds -1 when not captured),
// or -1.
static int s_output_pipe(s_exec_t *self, int fds[2])
{
    fds[0] = fds[1] = -1;
    if (!self->context.capture_output)
        return 0;
    if (pipe2(fds, O_CLOEXEC))
        return -1;
    fcntl(fds[0], F_SETFL, O_NONBLOCK | fcntl(fds[0], F_GETFL));
    return 0;
}

static int s_start(worker_handler_t *base, worker_job_t *job)
{
    s_exec_t *self = (s_exec_t *) base;
    int fds[2], out[2];
    if (pipe2(fds, O_CLOEXEC)) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, errno, "cannot start the command: %s",
                        strerror(errno));
        return -1;
    }
    if (s_output_pipe(self, out)) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, errno, "cannot start the command: %s",
                        strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    s_child_t *child = calloc(1, sizeof *child);
    pid_t pid = child ? s_spawn(self, job->msg, fds[0], out[1]) : -1;
    close(fds[0]);
    if (out[1] >= 0)
        close(out[1]);
    int pidfd = pid > 0 ? pidfd_open(pid, 0) : -1;
    if (pidfd < 0 && pid > 0 && (errno == ENOSYS || errno == EPERM)) {
        if (!self->poll_exits)
            nsq_warn("exec handler: no pidfd (%s): checking for exits every tick", strerror(errno));
        self->poll_exits = true;  // old kernel, valgrind or a seccomp filter
    } else if (pidfd < 0) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, errno, "cannot start the command: %s",
                        strerror(errno));
        nsq_error("exec handler: %s", job->failure.detail);
        if (pid > 0) {
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        close(fds[1]);
        if (out[0] >= 0)
            close(out[0]);
        free(child);
        return -1;
    }
    fcntl(fds[1], F_SETFL, O_NONBLOCK | fcntl(fds[1], F_GETFL));
    *child = (s_child_t){
        .job = job, .pid = pid, .pidfd = pidfd, .stdin_fd = fds[1], .stdout_fd = out[0]};
    child->next = self->children;
    self->children = child;
    job->state = child;
    if (pidfd >= 0) {
        zmq_pollitem_t exit_item = {NULL, pidfd, ZMQ_POLLIN, 0};
        zloop_poller(self->context.loop, &exit_item, s_on_exit, self);
        zloop_poller_set_tolerant(self->context.loop, &exit_item);
    }
    if (child->stdout_fd >= 0) {
        zmq_pollitem_t output_item = {NULL, child->stdout_fd, ZMQ_POLLIN, 0};
        zloop_poller(self->context.loop, &output_item, s_on_output, self);
        zloop_poller_set_tolerant(self->context.loop, &output_item);
    }
    s_feed(self, child);
    if (child->stdin_fd >= 0) {
        zmq_pollitem_t write_item = {NULL, child->stdin_fd, ZMQ_POLLOUT, 0};
        zloop_poller(self->context.loop, &write_item, s_on_writable, self);
        zloop_poller_set_tolerant(self->context.loop, &write_item);
    }
    nsq_debug("exec handler: message %s started pid %d", nsq_msg_id(job->msg), (int) pid);
    return 0;
}

typedef enum { S_BY_PIDFD, S_BY_STDIN, S_BY_STDOUT } s_by_t;

static s_child_t *s_find(s_exec_t *self, int fd, s_by_t by)
{
    for (s_child_t *child = self->children; child; child = child->next) {
        int mine = by == S_BY_PIDFD   ? child->pidfd
                   : by == S_BY_STDIN ? child->stdin_fd
                                      : child->stdout_fd;
        if (mine == fd)
            return child;
    }
    return NULL;
}

static void s_unlink(s_exec_t *self, s_child_t *child)
{
    for (s_child_t **at = &self->children; *at; at = &(*at)->next)
        if (*at == child) {
            *at = child->next;
            return;
        }
}

// Releases everything the child held; returns its result.
static worker_result_t s_reap(s_exec_t *self, s_child_t *child, int status)
{
    s_close_pipe(self, &child->stdin_fd, ZMQ_POLLOUT);
    s_read_output(self, child);  // what it wrote before it exited
    s_close_pipe(self, &child->stdout_fd,
                 ZMQ_POLLIN);  // a process it left behind may hold the pipe
    if (child->pidfd >= 0) {
        zmq_pollitem_t item = {NULL, child->pidfd, ZMQ_POLLIN, 0};
        zloop_poller_end(self->context.loop, &item);
        close(child->pidfd);
    }
    s_unlink(self, child);
    worker_job_t *job = child->job;
    const char *id = nsq_msg_id(job->msg);
    if (child->timed_out) {
        worker_job_fail(job, NSQ_FAILURE_TIMEOUT, self->context.timeout_ms,
                        "command stopped after the %lld ms timeout",
                        (long long) self->context.timeout_ms);
        nsq_warn("exec handler: message %s: %s", id, job->failure.detail);
        return WORKER_RESULT_RETRY;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && child->output_over) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, 0, "command wrote more than %zu bytes of output",
                        self->context.max_output);
        nsq_warn("exec handler: message %s: %s", id, job->failure.detail);
        return WORKER_RESULT_RETRY;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return WORKER_RESULT_OK;
    if (WIFEXITED(status))
        worker_job_fail(job, NSQ_FAILURE_EXIT, WEXITSTATUS(status), "command exited with %d",
                        WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        worker_job_fail(job, NSQ_FAILURE_SIGNAL, WTERMSIG(status),
                        "command killed by signal %d (%s)", WTERMSIG(status),
                        strsignal(WTERMSIG(status)));
    nsq_info("exec handler: message %s: %s", id, job->failure.detail);
    return WORKER_RESULT_RETRY;
}

// Reports the child's job if it has exited. Returns true if it had.
static bool s_check_exit(s_exec_t *self, s_child_t *child)
{
    int status = 0;
    if (waitpid(child->pid, &status, WNOHANG) != child->pid)
        return false;
    worker_job_t *job = child->job;
    worker_result_t result = s_reap(self, child, status);
    free(child);
    job->state = NULL;
    self->context.done(self->context.done_arg, job, result);
    return true;
}

static int s_on_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    s_exec_t *self = arg;
    s_child_t *child = s_find(self, item->fd, S_BY_PIDFD);
    if (child)
        s_check_exit(self, child);  // a stale wake-up finds no child, or one still running
    return 0;
}

static int s_on_writable(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    s_exec_t *self = arg;
    s_child_t *child = s_find(self, item->fd, S_BY_STDIN);
    if (child)
        s_feed(self, child);
    return 0;
}

static int s_on_output(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    s_exec_t *self = arg;
    s_child_t *child = s_find(self, item->fd, S_BY_STDOUT);
    if (child)
        s_read_output(self, child);
    return 0;
}

static void s_signal(s_child_t *child, int signal)
{
    worker_spawn_signal(child->pid, signal);
}

static void s_tick(worker_handler_t *base, int64_t now)
{
    s_exec_t *self = (s_exec_t *) base;
    if (self->poll_exits) {
        s_child_t *next = NULL;
        for (s_child_t *child = self->children; child; child = next) {
            next = child->next;
            if (child->pidfd < 0)
                s_check_exit(self, child);
        }
    }
    for (s_child_t *child = self->children; child; child = child->next) {
        if (!child->term_ms && self->context.timeout_ms
            && now - child->job->started_ms >= self->context.timeout_ms) {
            child->timed_out = true;
            child->term_ms = now;
            worker_metrics_add(self->context.metrics, WORKER_METRIC_TIMEOUTS, 1);
            s_signal(child, SIGTERM);
        } else if (child->term_ms && now - child->term_ms >= S_KILL_GRACE_MS)
            s_signal(child, SIGKILL);
    }
}

// Kills every child, waits for each, reports RETRY. Blocks only for as long
// as SIGKILLed processes take to die.
static void s_abort_all(worker_handler_t *base)
{
    s_exec_t *self = (s_exec_t *) base;
    while (self->children) {
        s_child_t *child = self->children;
        s_signal(child, SIGKILL);
        int status = 0;
        waitpid(child->pid, &status, 0);
        worker_job_t *job = child->job;
        s_reap(self, child, status);
        free(child);
        job->state = NULL;
        self->context.done(self->context.done_arg, job, WORKER_RESULT_RETRY);
    }
}

static void s_destroy(worker_handler_t *base)
{
    s_exec_t *self = (s_exec_t *) base;
    while (self->children) {
        s_child_t *child = self->children;
        s_signal(child, SIGKILL);
        waitpid(child->pid, NULL, 0);
        s_reap(self, child, 0);
        free(child);
    }
    free(self->command);
    free(self);
}

static const worker_handler_ops_t s_ops = {
    .start = s_start,
    .tick = s_tick,
    .abort_all = s_abort_all,
    .destroy = s_destroy,
};

worker_handler_t *worker_handler_exec_new(const worker_handler_context_t *context,
                                          const char *command)
{
    s_exec_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &s_ops;
    self->base.name = "exec";
    self->context = *context;
    self->command = strdup(command);
    if (!self->command) {
        free(self);
        return NULL;
    }
    return &self->base;
}
