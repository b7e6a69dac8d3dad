/*  worker_handler_exec - run a shell command per message
    SPDX-License-Identifier: MIT

    Each job runs /bin/sh -c COMMAND in a process group of its own (so a
    signal to the worker does not reach it, and a timeout kills the whole
    group), with the body on stdin and NSQ_MSG_ID, NSQ_MSG_ATTEMPTS,
    NSQ_MSG_TIMESTAMP (ns), NSQ_TOPIC and NSQ_CHANNEL in its environment;
    stdout and stderr are the worker's. Exit status 0 is OK, anything else
    RETRY.

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

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_KILL_GRACE_MS 2000  // SIGTERM, then this long before SIGKILL
#define S_ENV_EXTRA     5     // variables added per message

extern char **environ;

typedef struct _s_child_t s_child_t;
struct _s_child_t {
    worker_job_t *job;  // what it handles
    pid_t pid;          // the shell; also its process group
    int pidfd;          // readable once it exited
    int stdin_fd;       // write end of its stdin, -1 once closed
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

static void s_close_stdin(s_exec_t *self, s_child_t *child)
{
    if (child->stdin_fd < 0)
        return;
    zmq_pollitem_t item = {NULL, child->stdin_fd, ZMQ_POLLOUT, 0};
    zloop_poller_end(self->context.loop, &item);
    close(child->stdin_fd);
    child->stdin_fd = -1;
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
    s_close_stdin(self, child);
}

// The environment for one message: ours minus stale NSQ_MSG_* and friends,
// plus the message's, formatted into extra. Caller frees the array only.
static char **s_environment(s_exec_t *self, nsq_msg_t *msg, char extra[S_ENV_EXTRA][96])
{
    size_t count = 0;
    while (environ[count])
        count++;
    char **env = calloc(count + S_ENV_EXTRA + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t used = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(environ[i], "NSQ_MSG_", 8) && strncmp(environ[i], "NSQ_TOPIC=", 10)
            && strncmp(environ[i], "NSQ_CHANNEL=", 12))
            env[used++] = environ[i];
    snprintf(extra[0], 96, "NSQ_MSG_ID=%s", nsq_msg_id(msg));
    snprintf(extra[1], 96, "NSQ_MSG_ATTEMPTS=%u", nsq_msg_attempts(msg));
    snprintf(extra[2], 96, "NSQ_MSG_TIMESTAMP=%lld", (long long) nsq_msg_timestamp(msg));
    snprintf(extra[3], 96, "NSQ_TOPIC=%s", self->context.topic);
    snprintf(extra[4], 96, "NSQ_CHANNEL=%s", self->context.channel);
    for (int i = 0; i < S_ENV_EXTRA; i++)
        env[used++] = extra[i];
    return env;
}

// Starts the shell with stdin_read as its stdin. Returns its pid or -1.
static pid_t s_spawn(s_exec_t *self, nsq_msg_t *msg, int stdin_read)
{
    char extra[S_ENV_EXTRA][96];  // names are at most 64 bytes
    char **env = s_environment(self, msg, extra);
    if (!env)
        return -1;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, stdin_read, STDIN_FILENO);
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);  // the worker ignores it; the command must not
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                        | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"/bin/sh", "-c", self->command, NULL};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    free(env);
    if (rc) {
        errno = rc;
        return -1;
    }
    return pid;
}

static int s_start(worker_handler_t *base, worker_job_t *job)
{
    s_exec_t *self = (s_exec_t *) base;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) {
        worker_job_fail(job, NSQ_FAILURE_ERROR, errno, "cannot start the command: %s",
                        strerror(errno));
        return -1;
    }
    s_child_t *child = calloc(1, sizeof *child);
    pid_t pid = child ? s_spawn(self, job->msg, fds[0]) : -1;
    close(fds[0]);
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
        free(child);
        return -1;
    }
    fcntl(fds[1], F_SETFL, O_NONBLOCK | fcntl(fds[1], F_GETFL));
    *child = (s_child_t){.job = job, .pid = pid, .pidfd = pidfd, .stdin_fd = fds[1]};
    child->next = self->children;
    self->children = child;
    job->state = child;
    if (pidfd >= 0) {
        zmq_pollitem_t exit_item = {NULL, pidfd, ZMQ_POLLIN, 0};
        zloop_poller(self->context.loop, &exit_item, s_on_exit, self);
        zloop_poller_set_tolerant(self->context.loop, &exit_item);
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

static s_child_t *s_find(s_exec_t *self, int fd, bool by_pidfd)
{
    for (s_child_t *child = self->children; child; child = child->next)
        if ((by_pidfd ? child->pidfd : child->stdin_fd) == fd)
            return child;
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
    s_close_stdin(self, child);
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
    s_child_t *child = s_find(self, item->fd, true);
    if (child)
        s_check_exit(self, child);  // a stale wake-up finds no child, or one still running
    return 0;
}

static int s_on_writable(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    s_exec_t *self = arg;
    s_child_t *child = s_find(self, item->fd, false);
    if (child)
        s_feed(self, child);
    return 0;
}

static void s_signal(s_child_t *child, int signal)
{
    if (kill(-child->pid, signal) && errno == ESRCH)
        kill(child->pid, signal);  // the group is gone; the shell may not be reaped yet
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
