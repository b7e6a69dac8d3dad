/*  harness - what the integration tests need to drive the real binaries
    SPDX-License-Identifier: MIT

    State is per case process (it_run forks one per case): the temporary
    directory, the live children and every log file the case produced. The
    failure path (it_fail) uses _exit so that no library teardown can hang a
    case that is already failing; children are killed by PID first.
*/
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define IT_CASE_LIMIT_S  90   // the runner kills a case after this long
#define IT_ALARM_S       80   // a case stops itself (children first) after this long
#define IT_MAX_CHILDREN  32   // live children per case
#define IT_MAX_LOGS      64   // log files per case
#define IT_LOG_TAIL      12000  // bytes of each log printed on failure
#define IT_READY_MS      10000  // how long a broker may take to print READY
#define IT_STOP_MS       10000  // how long SIGTERM may take before SIGKILL
#define IT_MAX_ARGS      48   // arguments of a child, flags included

struct _it_child_t {
    char name[32];      // "broker", "worker", ...
    pid_t pid;          // process id; signals go to it only
    int out_fd;         // read end of the child's stdout pipe
    char buffer[8192];  // stdout bytes read but not yet returned as lines
    size_t length;      // bytes in buffer
};

struct _it_broker_t {
    it_child_t *child;  // the nsq-broker process
    char http[64];      // "127.0.0.1:PORT" from the READY line
    char zmq[64];       // "127.0.0.1:PORT" from the READY line
    char dir[PATH_MAX];  // its data path
};

typedef struct {
    char name[48];       // "broker-1"
    char path[PATH_MAX];  // the stderr log file
} s_log_t;

static const char *s_case_name = "";              // the running case
static char s_tmp_root[PATH_MAX];                 // this case's directory, "" until needed
static it_child_t *s_children[IT_MAX_CHILDREN];  // live children, by slot
static s_log_t s_logs[IT_MAX_LOGS];               // logs of every child started
static size_t s_log_count;                        // entries in s_logs
static int s_child_serial;                        // numbers log names

// ---- time -------------------------------------------------------------

int64_t it_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void it_sleep_ms(int milliseconds)
{
    struct timespec pause = {milliseconds / 1000, (long) (milliseconds % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) == -1 && errno == EINTR)
        ;
}

bool it_wait_until(bool (*condition)(void *arg), void *arg, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (!condition(arg)) {
        if (it_now_ms() >= deadline)
            return false;
        it_sleep_ms(10);
    }
    return true;
}

// ---- failure and cleanup ----------------------------------------------

void it_note(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "[%s] ", s_case_name);
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
}

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

// Kills every live child by its PID and reaps it.
static void s_kill_children(void)
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

static int s_remove_entry(const char *path, const struct stat *info, int flag, struct FTW *ftw)
{
    (void) info;
    (void) flag;
    (void) ftw;
    remove(path);
    return 0;
}

void it_fail(const char *file, int line, const char *check, const char *format, ...)
{
    fflush(stdout);
    fprintf(stderr, "\nFAIL [%s] %s:%d: %s\n    ", s_case_name, file, line, check);
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, "\n");
    for (size_t index = 0; index < s_log_count; index++)
        s_print_log_tail(&s_logs[index]);
    s_kill_children();
    if (s_tmp_root[0])
        fprintf(stderr, "temporary files kept in %s\n", s_tmp_root);
    fflush(stderr);
    _exit(1);
}

static void s_alarm(int signal)
{
    (void) signal;
    static const char text[] = "\nFAIL: case ran out of time; killing its children\n";
    if (write(2, text, sizeof text - 1) < 0)
        _exit(1);
    for (size_t slot = 0; slot < IT_MAX_CHILDREN; slot++)
        if (s_children[slot])
            kill(s_children[slot]->pid, SIGKILL);
    _exit(1);
}

static const char *s_tmp(void)
{
    if (s_tmp_root[0])
        return s_tmp_root;
    const char *base = getenv("TMPDIR");
    snprintf(s_tmp_root, sizeof s_tmp_root, "%s/nsq-it-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(s_tmp_root)) {
        int saved = errno;
        s_tmp_root[0] = '\0';
        it_fail(__FILE__, __LINE__, "mkdtemp", "%s", strerror(saved));
    }
    return s_tmp_root;
}

// ---- running cases ----------------------------------------------------

_Noreturn static void s_case_main(const it_case_t *test_case)
{
    s_case_name = test_case->name;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, s_alarm);
    alarm(IT_ALARM_S);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_case->fn();
    s_kill_children();
    if (s_tmp_root[0])
        nftw(s_tmp_root, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    fflush(stdout);
    fflush(stderr);
    _exit(0);  // skip library teardown: a case's leftovers must not hang it
}

// Waits for a case process; kills it after the limit. Returns its status.
static int s_wait_case(pid_t pid)
{
    int64_t deadline = it_now_ms() + IT_CASE_LIMIT_S * 1000;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (it_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        it_sleep_ms(20);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

static bool s_selected(int argc, char **argv, const char *name)
{
    if (argc < 2)
        return true;
    for (int index = 1; index < argc; index++)
        if (strcmp(argv[index], name) == 0)
            return true;
    return false;
}

int it_run(int argc, char **argv, const it_case_t *cases, size_t count)
{
    size_t passed = 0, failed = 0;
    for (size_t index = 0; index < count; index++) {
        if (!s_selected(argc, argv, cases[index].name))
            continue;
        fflush(stdout);
        fflush(stderr);
        int64_t start = it_now_ms();
        pid_t pid = fork();
        if (pid == 0)
            s_case_main(&cases[index]);
        int status = pid > 0 ? s_wait_case(pid) : -1;
        long elapsed = (long) (it_now_ms() - start);
        if (status == 0) {
            passed++;
            printf("ok     %s (%ld ms)\n", cases[index].name, elapsed);
        } else {
            failed++;
            printf("FAILED %s (%ld ms, status %d)\n", cases[index].name, elapsed, status);
        }
    }
    printf("%zu passed, %zu failed\n", passed, failed);
    return passed + failed == 0 || failed ? 1 : 0;
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
    s_log_t *log = &s_logs[s_log_count++];
    snprintf(log->name, sizeof log->name, "%s-%d", name, ++s_child_serial);
    snprintf(log->path, sizeof log->path, "%s/%s.log", s_tmp(), log->name);
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

static const char *s_env_binary(const char *variable)
{
    const char *path = getenv(variable);
    IT_ASSERT(path && *path, "%s is not set (meson sets it)", variable);
    IT_ASSERT(access(path, X_OK) == 0, "%s=%s is not executable", variable, path);
    return path;
}

// Appends the NULL-terminated extra list to argv (already count long).
static size_t s_append_args(const char **argv, size_t count, const char *const *extra)
{
    for (size_t index = 0; extra && extra[index]; index++) {
        IT_ASSERT(count < IT_MAX_ARGS - 1, "too many arguments");
        argv[count++] = extra[index];
    }
    argv[count] = NULL;
    return count;
}

it_child_t *it_worker_start(it_broker_t *broker, const char *topic, const char *channel,
                            const char *const *extra_flags)
{
    char address[96], topic_flag[96], channel_flag[96];
    snprintf(address, sizeof address, "--broker-address=%s", broker->zmq);
    snprintf(topic_flag, sizeof topic_flag, "--topic=%s", topic);
    snprintf(channel_flag, sizeof channel_flag, "--channel=%s", channel);
    const char *argv[IT_MAX_ARGS] = {s_env_binary("NSQ_WORKER"), address, topic_flag,
                                     channel_flag, "--stdout"};
    s_append_args(argv, 5, extra_flags);
    return it_child_start("worker", argv);
}
