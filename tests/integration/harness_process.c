/*  harness_process - the children a case starts: spawn, stdout lines, logs, stop
    SPDX-License-Identifier: MIT

    Every child gets /dev/null for stdin, a pipe for stdout (read line by
    line with a deadline) and a log file in the case's temporary directory
    for stderr, and PR_SET_PDEATHSIG so it dies with the case. The live
    children are registered here (IT_MAX_CHILDREN slots) so that a failing
    or timed-out case can kill them all by PID (it_children_kill*), and
    every log is listed (IT_MAX_LOGS) so that it_fail can print their
    tails, also of children already stopped. Also nsq-worker, which is a
    plain child with the harness's default flags, and the argument helpers
    the daemons (harness_daemons.c) use too.
*/
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define IT_MAX_CHILDREN 32     // live children per case
#define IT_MAX_LOGS     64     // log files per case
#define IT_LOG_TAIL     12000  // bytes of each log printed on failure

struct _it_child_t {
    char name[32];      // "broker", "worker", ...
    pid_t pid;          // process id; signals go to it only
    int out_fd;         // read end of the child's stdout pipe
    char buffer[8192];  // stdout bytes read but not yet returned as lines
    size_t length;      // bytes in buffer
    size_t log_index;   // its stderr log in s_logs
};

typedef struct {
    char name[48];        // "broker-1"
    char path[PATH_MAX];  // the stderr log file
} s_log_t;

static it_child_t *s_children[IT_MAX_CHILDREN];  // live children, by slot
static s_log_t s_logs[IT_MAX_LOGS];              // logs of every child started
static size_t s_log_count;                       // entries in s_logs
static int s_child_serial;                       // numbers log names

// ---- the registry, for the runner ---------------------------------------

static void s_print_log_tail(const s_log_t *log)
{
    FILE *file = fopen(log->path, "r");
    if (!file)
        return;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    long start = size > IT_LOG_TAIL ? size - IT_LOG_TAIL : 0;
    fseek(file, start, SEEK_SET);
    fprintf(stderr, "---- %s stderr (%s)%s ----\n", log->name, log->path,
            start ? ", last bytes" : "");
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, file)) > 0)
        fwrite(chunk, 1, got, stderr);
    fprintf(stderr, "---- end of %s ----\n", log->name);
    fclose(file);
}

void it_logs_print(void)
{
    for (size_t index = 0; index < s_log_count; index++)
        s_print_log_tail(&s_logs[index]);
}

void it_children_kill(void)
{
    for (size_t slot = 0; slot < IT_MAX_CHILDREN; slot++) {
        it_child_t *child = s_children[slot];
        if (!child)
            continue;
        kill(child->pid, SIGKILL);
        waitpid(child->pid, NULL, 0);
        close(child->out_fd);
        free(child);
        s_children[slot] = NULL;
    }
}

void it_children_kill_now(void)
{
    for (size_t slot = 0; slot < IT_MAX_CHILDREN; slot++)
        if (s_children[slot])
            kill(s_children[slot]->pid, SIGKILL);
}

// ---- child processes --------------------------------------------------

static void s_register(it_child_t *child)
{
    for (size_t slot = 0; slot < IT_MAX_CHILDREN; slot++) {
        if (!s_children[slot]) {
            s_children[slot] = child;
            return;
        }
    }
    kill(child->pid, SIGKILL);
    it_fail(__FILE__, __LINE__, "slot", "more than %d live children", IT_MAX_CHILDREN);
}

static void s_unregister(it_child_t *child)
{
    for (size_t slot = 0; slot < IT_MAX_CHILDREN; slot++)
        if (s_children[slot] == child)
            s_children[slot] = NULL;
}

static const char *s_new_log(const char *name)
{
    IT_ASSERT(s_log_count < IT_MAX_LOGS, "too many logs");
    const char *directory = it_tmp_dir();
    s_log_t *log = &s_logs[s_log_count++];
    snprintf(log->name, sizeof log->name, "%s-%d", name, ++s_child_serial);
    int length =
        snprintf(log->path, sizeof log->path, "%s/%s-%d.log", directory, name, s_child_serial);
    IT_ASSERT(length < (int) sizeof log->path, "log path too long: %s/%s", directory, name);
    return log->path;
}

// In the forked child: wire stdio, die with the parent, exec. Only
// async-signal-safe calls here.
_Noreturn static void s_exec_child(const char *const *argv, int in_fd, int out_fd, int log_fd,
                                   pid_t parent)
{
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(log_fd, 2);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &action, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(argv[0], (char *const *) argv);
    _exit(127);
}

it_child_t *it_child_start(const char *name, const char *const *argv)
{
    const char *log_path = s_new_log(name);
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pipe_fds[2];
    IT_ASSERT(log_fd >= 0 && in_fd >= 0, "cannot open %s: %s", log_path, strerror(errno));
    IT_ASSERT(pipe2(pipe_fds, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    it_child_t *child = calloc(1, sizeof *child);
    IT_ASSERT(child, "out of memory");
    snprintf(child->name, sizeof child->name, "%s", name);
    child->log_index = s_log_count - 1;
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    child->pid = fork();
    if (child->pid == 0)
        s_exec_child(argv, in_fd, pipe_fds[1], log_fd, parent);
    close(pipe_fds[1]);
    close(log_fd);
    close(in_fd);
    IT_ASSERT(child->pid > 0, "fork: %s", strerror(errno));
    child->out_fd = pipe_fds[0];
    s_register(child);
    return child;
}

pid_t it_child_pid(it_child_t *self)
{
    return self->pid;
}

// Moves one complete line from the buffer to line; false if none.
static bool s_take_line(it_child_t *self, char *line, size_t size, bool at_eof)
{
    char *newline = memchr(self->buffer, '\n', self->length);
    if (!newline && !(at_eof && self->length))
        return false;
    size_t taken = newline ? (size_t) (newline - self->buffer) : self->length;
    size_t copied = taken < size - 1 ? taken : size - 1;
    memcpy(line, self->buffer, copied);
    line[copied] = '\0';
    size_t consumed = newline ? taken + 1 : taken;
    memmove(self->buffer, self->buffer + consumed, self->length - consumed);
    self->length -= consumed;
    return true;
}

int it_child_read_line(it_child_t *self, char *line, size_t size, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (!s_take_line(self, line, size, false)) {
        if (self->length == sizeof self->buffer)
            self->length = 0;  // an absurdly long line: drop it
        int remaining = (int) (deadline - it_now_ms());
        if (remaining <= 0)
            return 0;
        struct pollfd item = {self->out_fd, POLLIN, 0};
        if (poll(&item, 1, remaining) <= 0)
            continue;
        ssize_t got =
            read(self->out_fd, self->buffer + self->length, sizeof self->buffer - self->length);
        if (got == 0)
            return s_take_line(self, line, size, true) ? 1 : -1;
        if (got > 0)
            self->length += (size_t) got;
    }
    return 1;
}

int it_child_stop(it_child_t **self_p, int signal, int timeout_ms)
{
    it_child_t *self = *self_p;
    *self_p = NULL;
    if (signal)
        kill(self->pid, signal);
    int64_t deadline = it_now_ms() + timeout_ms;
    int status = 0, result;
    pid_t done;
    while ((done = waitpid(self->pid, &status, WNOHANG)) == 0 && it_now_ms() < deadline)
        it_sleep_ms(5);
    if (done == 0) {
        it_note("%s (pid %d) did not exit within %d ms; SIGKILL", self->name, (int) self->pid,
                timeout_ms);
        kill(self->pid, SIGKILL);
        waitpid(self->pid, &status, 0);
        result = -1;
    } else if (done < 0) {
        result = -1;
    } else {
        result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    s_unregister(self);
    close(self->out_fd);
    free(self);
    return result;
}

const char *it_env_binary(const char *variable)
{
    const char *path = getenv(variable);
    IT_ASSERT(path && *path, "%s is not set (meson sets it)", variable);
    IT_ASSERT(access(path, X_OK) == 0, "%s=%s is not executable", variable, path);
    return path;
}

size_t it_append_args(const char **argv, size_t count, const char *const *extra)
{
    for (size_t index = 0; extra && extra[index]; index++) {
        IT_ASSERT(count < IT_MAX_ARGS - 1, "too many arguments");
        argv[count++] = extra[index];
    }
    argv[count] = NULL;
    return count;
}

bool it_has_flag(const char *const *flags, const char *prefix)
{
    for (size_t index = 0; flags && flags[index]; index++)
        if (strncmp(flags[index], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

it_child_t *it_worker_start(it_broker_t *broker, const char *topic, const char *channel,
                            const char *const *extra_flags)
{
    char address[96], topic_flag[96], channel_flag[96];
    snprintf(address, sizeof address, "--broker-address=%s", it_broker_zmq(broker));
    snprintf(topic_flag, sizeof topic_flag, "--topic=%s", topic);
    snprintf(channel_flag, sizeof channel_flag, "--channel=%s", channel);
    const char *argv[IT_MAX_ARGS] = {it_env_binary("NSQ_WORKER"), address, topic_flag,
                                     channel_flag};
    size_t count = 4;
    if (!it_has_flag(extra_flags, "--exec=") && !it_has_flag(extra_flags, "--http=")
        && !it_has_flag(extra_flags, "--file=") && !it_has_flag(extra_flags, "--stdout")
        && !it_has_flag(extra_flags, "--process="))
        argv[count++] = "--stdout";
    if (!it_has_flag(extra_flags, "--http-address="))
        argv[count++] = "--http-address=127.0.0.1:0";
    it_append_args(argv, count, extra_flags);
    return it_child_start("worker", argv);
}

const char *it_child_log_path(it_child_t *self)
{
    return s_logs[self->log_index].path;
}

// Waits for a line of log number index that starts with text, or holds it
// anywhere when anywhere is true; as it_child_wait_log.
static int s_wait_log(size_t index, const char *text, bool anywhere, char *line, size_t size,
                      int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    char buffer[4096];
    do {
        FILE *log = fopen(s_logs[index].path, "r");
        while (log && fgets(buffer, sizeof buffer, log)) {
            if (anywhere ? strstr(buffer, text) != NULL
                         : strncmp(buffer, text, strlen(text)) == 0) {
                buffer[strcspn(buffer, "\n")] = '\0';
                snprintf(line, size, "%s", buffer);
                fclose(log);
                return 1;
            }
        }
        if (log)
            fclose(log);
        it_sleep_ms(10);
    } while (it_now_ms() < deadline);
    return 0;
}

int it_child_wait_log(it_child_t *self, const char *prefix, char *line, size_t size, int timeout_ms)
{
    return s_wait_log(self->log_index, prefix, false, line, size, timeout_ms);
}

void it_worker_wait_ready(it_child_t *worker, char *http, size_t size)
{
    char line[256];
    IT_ASSERT(it_child_wait_log(worker, "READY http=", line, sizeof line, IT_READY_MS),
              "nsq-worker printed no READY line within %d ms", IT_READY_MS);
    snprintf(http, size, "%s", line + strlen("READY http="));
}

int it_child_wait_text(it_child_t *self, const char *text, char *line, size_t size, int timeout_ms)
{
    return s_wait_log(self->log_index, text, true, line, size, timeout_ms);
}
