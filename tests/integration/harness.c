/*  harness - what the integration tests need to drive the real binaries
    SPDX-License-Identifier: MIT

    State is per case process (it_run forks one per case): the temporary
    directory, the live children and every log file the case produced. The
    failure path (it_fail) uses _exit so that no library teardown can hang a
    case that is already failing; children are killed by PID first.
*/
#include "harness.h"
#include "nsq_utf8.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define IT_CASE_LIMIT_S 90     // the runner kills a case after this long
#define IT_ALARM_S      80     // a case stops itself (children first) after this long
#define IT_MAX_CHILDREN 32     // live children per case
#define IT_MAX_LOGS     64     // log files per case
#define IT_LOG_TAIL     12000  // bytes of each log printed on failure
#define IT_READY_MS     10000  // how long a broker may take to print READY
#define IT_STOP_MS      10000  // how long SIGTERM may take before SIGKILL
#define IT_MAX_ARGS     48     // arguments of a child, flags included

struct _it_child_t {
    char name[32];      // "broker", "worker", ...
    pid_t pid;          // process id; signals go to it only
    int out_fd;         // read end of the child's stdout pipe
    char buffer[8192];  // stdout bytes read but not yet returned as lines
    size_t length;      // bytes in buffer
    size_t log_index;   // its stderr log in s_logs
};

struct _it_broker_t {
    it_child_t *child;   // the nsq-broker process
    char http[64];       // "127.0.0.1:PORT" from the READY line
    char zmq[64];        // "127.0.0.1:PORT" from the READY line
    char tcp[64];        // "127.0.0.1:PORT" from the READY line, "" if none
    char dir[PATH_MAX];  // its data path
};

typedef struct {
    char name[48];        // "broker-1"
    char path[PATH_MAX];  // the stderr log file
} s_log_t;

static const char *s_case_name = "";             // the running case
static char s_tmp_root[PATH_MAX];                // this case's directory, "" until needed
static it_child_t *s_children[IT_MAX_CHILDREN];  // live children, by slot
static s_log_t s_logs[IT_MAX_LOGS];              // logs of every child started
static size_t s_log_count;                       // entries in s_logs
static int s_child_serial;                       // numbers log names

static const char *s_tmp(void);
static bool s_has_flag(const char *const *flags, const char *prefix);

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

const char *it_tmp_dir(void)
{
    return s_tmp();
}

static const char *s_tmp(void)
{
    if (s_tmp_root[0])
        return s_tmp_root;
    const char *base = getenv("TMPDIR");
    int length =
        snprintf(s_tmp_root, sizeof s_tmp_root, "%s/nsq-it-XXXXXX", base && *base ? base : "/tmp");
    if (length >= (int) sizeof s_tmp_root) {
        s_tmp_root[0] = '\0';
        it_fail(__FILE__, __LINE__, "TMPDIR", "TMPDIR is too long: %s", base);
    }
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
    const char *directory = s_tmp();
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
    const char *argv[IT_MAX_ARGS] = {s_env_binary("NSQ_WORKER"), address, topic_flag, channel_flag};
    size_t count = 4;
    if (!s_has_flag(extra_flags, "--exec=") && !s_has_flag(extra_flags, "--http=")
        && !s_has_flag(extra_flags, "--file=") && !s_has_flag(extra_flags, "--stdout")
        && !s_has_flag(extra_flags, "--process="))
        argv[count++] = "--stdout";
    if (!s_has_flag(extra_flags, "--http-address="))
        argv[count++] = "--http-address=127.0.0.1:0";
    s_append_args(argv, count, extra_flags);
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

// ---- broker -----------------------------------------------------------

// Whether flags (NULL-terminated, may be NULL) set the flag "--name=".
static bool s_has_flag(const char *const *flags, const char *prefix)
{
    for (size_t index = 0; flags && flags[index]; index++)
        if (strncmp(flags[index], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

// Starts nsq-broker in a fresh data dir with the given flags plus the
// harness defaults the flags do not set (the broker refuses a flag given
// twice). Returns the child; fills dir.
static it_child_t *s_broker_spawn(const char *const *flags, char *dir, size_t dir_size)
{
    int length = snprintf(dir, dir_size, "%s/data-XXXXXX", s_tmp());
    IT_ASSERT(length < (int) dir_size, "data path too long under %s", s_tmp());
    IT_ASSERT(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
    char data_flag[PATH_MAX + 16];
    snprintf(data_flag, sizeof data_flag, "--data-path=%s", dir);
    const char *defaults[] = {"--http-address=127.0.0.1:0", "--zmq-address=127.0.0.1:0",
                              "--tcp-address=127.0.0.1:0", data_flag, "--log-level=debug"};
    const char *argv[IT_MAX_ARGS] = {s_env_binary("NSQ_BROKER")};
    size_t count = 1;
    for (size_t index = 0; index < sizeof defaults / sizeof defaults[0]; index++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%.*s", (int) strcspn(defaults[index], "=") + 1,
                 defaults[index]);
        if (!s_has_flag(flags, prefix))
            argv[count++] = defaults[index];
    }
    s_append_args(argv, count, flags);
    return it_child_start("broker", argv);
}

// Reads self's stdout until its READY line; fails the case otherwise.
static void s_wait_ready(it_broker_t *self, const char *program)
{
    char line[512];
    int64_t deadline = it_now_ms() + IT_READY_MS;
    while (true) {
        int got =
            it_child_read_line(self->child, line, sizeof line, (int) (deadline - it_now_ms()));
        if (got < 0) {
            int status = it_child_stop(&self->child, 0, 2000);
            it_fail(__FILE__, __LINE__, "READY", "%s exited (status %d) before READY", program,
                    status);
        }
        IT_ASSERT(got == 1, "%s printed no READY line within %d ms", program, IT_READY_MS);
        if (sscanf(line, "READY http=%63s zmq=%63s tcp=%63s", self->http, self->zmq, self->tcp)
            >= 2)
            break;
        it_note("%s stdout before READY: %s", program, line);
    }
    it_note("%s pid %d http=%s zmq=%s", program, (int) self->child->pid, self->http, self->zmq);
}

it_broker_t *it_broker_start(const char *const *flags)
{
    it_broker_t *self = calloc(1, sizeof *self);
    IT_ASSERT(self, "out of memory");
    self->child = s_broker_spawn(flags, self->dir, sizeof self->dir);
    s_wait_ready(self, "nsq-broker");
    return self;
}

it_broker_t *it_lookupd_start(const char *const *flags)
{
    it_broker_t *self = calloc(1, sizeof *self);
    IT_ASSERT(self, "out of memory");
    const char *defaults[] = {"--http-address=127.0.0.1:0", "--zmq-address=127.0.0.1:0",
                              "--log-level=debug"};
    const char *argv[IT_MAX_ARGS] = {s_env_binary("NSQ_LOOKUPD")};
    size_t count = 1;
    for (size_t index = 0; index < sizeof defaults / sizeof defaults[0]; index++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%.*s", (int) strcspn(defaults[index], "=") + 1,
                 defaults[index]);
        if (!s_has_flag(flags, prefix))
            argv[count++] = defaults[index];
    }
    s_append_args(argv, count, flags);
    self->child = it_child_start("lookupd", argv);
    s_wait_ready(self, "nsq-lookupd");
    return self;
}

int it_broker_refuses(const char *const *flags, char *last_line, size_t size)
{
    char dir[PATH_MAX], line[512];
    it_child_t *child = s_broker_spawn(flags, dir, sizeof dir);
    int got = it_child_read_line(child, line, sizeof line, IT_READY_MS);
    int status = it_child_stop(&child, got == -1 ? 0 : SIGKILL, IT_STOP_MS);
    if (got != -1)
        status = -1;
    last_line[0] = '\0';
    FILE *log = fopen(s_logs[s_log_count - 1].path, "r");
    while (log && fgets(line, sizeof line, log)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(last_line, size, "%s", line);
    }
    if (log)
        fclose(log);
    return status;
}

const char *it_broker_http(it_broker_t *self)
{
    return self->http;
}

const char *it_broker_zmq(it_broker_t *self)
{
    return self->zmq;
}

uint16_t it_broker_tcp_port(it_broker_t *self)
{
    const char *colon = strrchr(self->tcp, ':');
    IT_ASSERT(colon, "the broker announced no NSQ TCP port");
    return (uint16_t) atoi(colon + 1);
}

pid_t it_broker_pid(it_broker_t *self)
{
    return self->child ? self->child->pid : -1;
}

int it_broker_wait_log(it_broker_t *self, const char *text, char *line, size_t size, int timeout_ms)
{
    return self->child ? s_wait_log(self->child->log_index, text, true, line, size, timeout_ms) : 0;
}

// Sends signal (0 = none) and waits, as it_child_stop; frees the broker.
static int s_broker_end(it_broker_t **self_p, int signal)
{
    it_broker_t *self = *self_p;
    *self_p = NULL;
    int status = it_child_stop(&self->child, signal, IT_STOP_MS);
    free(self);
    return status;
}

int it_broker_stop(it_broker_t **self_p)
{
    return s_broker_end(self_p, SIGTERM);
}

int it_broker_wait(it_broker_t **self_p)
{
    return s_broker_end(self_p, 0);
}

// ---- JSON -------------------------------------------------------------
//
// Read with jansson. it_json_get and it_json_find hand out JSON text, as
// their contract says; the text is jansson's compact dump of the value,
// kept until the case's process ends (a few lookups per case). Polling
// helpers (/stats, error codes) read the parsed document directly, so
// polling keeps no text.

static char **s_json_kept;  // texts handed out
static size_t s_json_kept_count;
static size_t s_json_kept_size;  // slots allocated

// The JSON value at the start of text; what follows it is ignored (an
// element inside an array is followed by the rest of the array). NULL if
// it does not parse. Caller decrefs.
static json_t *s_json_parse(const char *text)
{
    json_error_t error;
    return text ? json_loads(text, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &error) : NULL;
}

// value as JSON text, kept until the process ends; NULL if value is.
static const char *s_json_keep(const json_t *value)
{
    if (!value)
        return NULL;
    if (s_json_kept_count == s_json_kept_size) {
        s_json_kept_size = s_json_kept_size ? 2 * s_json_kept_size : 16;
        s_json_kept = realloc(s_json_kept, s_json_kept_size * sizeof *s_json_kept);
        IT_ASSERT(s_json_kept, "out of memory");
    }
    char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
    IT_ASSERT(text, "out of memory");
    return s_json_kept[s_json_kept_count++] = text;
}

// The first object of array whose key is the string value. Borrowed.
static json_t *s_json_find(const json_t *array, const char *key, const char *value)
{
    size_t index;
    json_t *element;
    json_array_foreach(array, index, element)
    {
        const char *found = json_string_value(json_object_get(element, key));
        if (found && strcmp(found, value) == 0)
            return element;
    }
    return NULL;
}

// A number or a boolean (1/0) as an integer. Returns true on success.
static bool s_json_number(const json_t *value, int64_t *out)
{
    if (json_is_integer(value))
        *out = json_integer_value(value);
    else if (json_is_real(value))
        *out = (int64_t) json_real_value(value);
    else if (json_is_boolean(value))
        *out = json_is_true(value);
    else
        return false;
    return true;
}

// Copies a string value, cut to size - 1 bytes. Returns true on success.
static bool s_json_text(const json_t *value, char *out, size_t size)
{
    if (!json_is_string(value) || size == 0)
        return false;
    snprintf(out, size, "%s", json_string_value(value));
    return true;
}

const char *it_json_get(const char *json, const char *key)
{
    json_t *document = s_json_parse(json);
    const char *value = s_json_keep(json_object_get(document, key));
    json_decref(document);
    return value;
}

const char *it_json_find(const char *json, const char *key, const char *value)
{
    json_t *document = s_json_parse(json);
    const char *found = s_json_keep(s_json_find(document, key, value));
    json_decref(document);
    return found;
}

bool it_json_int(const char *value, int64_t *out)
{
    json_t *document = s_json_parse(value);
    bool ok = s_json_number(document, out);
    json_decref(document);
    return ok;
}

bool it_json_string(const char *value, char *out, size_t size)
{
    json_t *document = s_json_parse(value);
    bool ok = s_json_text(document, out, size);
    json_decref(document);
    return ok;
}

// ---- HTTP -------------------------------------------------------------

typedef struct {
    char *data;   // received bytes, NUL-terminated
    size_t size;  // bytes received
} s_buffer_t;

static size_t s_collect(char *data, size_t size, size_t count, void *arg)
{
    s_buffer_t *buffer = arg;
    size_t bytes = size * count;
    char *grown = realloc(buffer->data, buffer->size + bytes + 1);
    if (!grown)
        return 0;
    memcpy(grown + buffer->size, data, bytes);
    buffer->data = grown;
    buffer->size += bytes;
    buffer->data[buffer->size] = '\0';
    return bytes;
}

int it_http(it_broker_t *broker, const char *method, const char *path, const void *body,
            size_t size, char **reply)
{
    return it_http_to(broker->http, method, path, body, size, reply);
}

int it_http_to(const char *address, const char *method, const char *path, const void *body,
               size_t size, char **reply)
{
    CURL *curl = curl_easy_init();
    IT_ASSERT(curl, "curl_easy_init failed");
    char url[2048];
    snprintf(url, sizeof url, "http://%s%s", address, path);
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    s_buffer_t buffer = {calloc(1, 1), 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buffer);
    if (strcmp(method, "GET") == 0 && !body) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (body ? size : 0));
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode code = curl_easy_perform(curl);
    long status = -1;
    if (code == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    else
        it_note("%s %s: %s", method, url, curl_easy_strerror(code));
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (reply)
        *reply = buffer.data;
    else
        free(buffer.data);
    return (int) status;
}

int it_http_status(it_broker_t *broker, const char *method, const char *path, const char *body)
{
    return it_http(broker, method, path, body, body ? strlen(body) : 0, NULL);
}

// Whether message is one of the '|'-separated codes.
static bool s_code_matches(const char *codes, const char *message)
{
    size_t length = strlen(message);
    for (const char *p = codes; p; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL)
        if (strncmp(p, message, length) == 0 && (p[length] == '|' || p[length] == '\0'))
            return length > 0;
    return false;
}

void it_http_expect_at(const char *file, int line, it_broker_t *broker, const char *method,
                       const char *path, const void *body, size_t size, int status,
                       const char *code)
{
    char *reply = NULL;
    int got = it_http(broker, method, path, body, size, &reply);
    char message[128] = "";
    json_t *document = s_json_parse(reply);
    s_json_text(json_object_get(document, "message"), message, sizeof message);
    json_decref(document);
    if (got != status || (code && !s_code_matches(code, message))) {
        char check[256];
        snprintf(check, sizeof check, "%s %s -> %d %s", method, path, status, code ? code : "");
        it_fail(file, line, check, "got %d, body: %.300s", got, reply);
    }
    free(reply);
}

void it_pub(it_broker_t *broker, const char *topic, const char *body)
{
    char path[256];
    snprintf(path, sizeof path, "/pub?topic=%s", topic);
    char *reply = NULL;
    int status = it_http(broker, "POST", path, body, strlen(body), &reply);
    IT_ASSERT(status == 200, "POST %s: %d %.200s", path, status, reply);
    free(reply);
}

void it_post_ok(it_broker_t *broker, const char *path)
{
    char *reply = NULL;
    int status = it_http(broker, "POST", path, NULL, 0, &reply);
    IT_ASSERT(status == 200, "POST %s: %d %.200s", path, status, reply);
    free(reply);
}

static char *s_put_u32(char *out, uint32_t value)
{
    out[0] = (char) (value >> 24);
    out[1] = (char) (value >> 16);
    out[2] = (char) (value >> 8);
    out[3] = (char) value;
    return out + 4;
}

char *it_mpub_binary(uint32_t declared_count, const char *const *bodies, size_t count, size_t *size)
{
    size_t total = 4;
    for (size_t index = 0; index < count; index++)
        total += 4 + strlen(bodies[index]);
    char *buffer = malloc(total);
    IT_ASSERT(buffer, "out of memory");
    char *out = s_put_u32(buffer, declared_count);
    for (size_t index = 0; index < count; index++) {
        size_t length = strlen(bodies[index]);
        out = s_put_u32(out, (uint32_t) length);
        memcpy(out, bodies[index], length);
        out += length;
    }
    *size = total;
    return buffer;
}

// ---- /stats -----------------------------------------------------------

char *it_stats(it_broker_t *broker)
{
    char *reply = NULL;
    int status = it_http(broker, "GET", "/stats?format=json", NULL, 0, &reply);
    static int last_status = 200;  // notes each change only, not every poll
    if (status != last_status)
        it_note("GET /stats?format=json: %d %.200s", status, reply);
    last_status = status;
    if (status == 200)
        return reply;
    free(reply);
    return NULL;
}

// The object of topic (and of channel when not NULL) in a parsed /stats,
// or NULL. Borrowed.
static json_t *s_stats_find(const json_t *stats, const char *topic, const char *channel)
{
    json_t *found = s_json_find(json_object_get(stats, "topics"), "topic_name", topic);
    if (found && channel)
        found = s_json_find(json_object_get(found, "channels"), "channel_name", channel);
    return found;
}

// /stats, parsed; NULL unless 200 and JSON. Caller decrefs.
static json_t *s_stats_parsed(it_broker_t *broker)
{
    char *stats = it_stats(broker);
    json_t *document = s_json_parse(stats);
    free(stats);
    return document;
}

static int64_t s_stat(it_broker_t *broker, const char *topic, const char *channel,
                      const char *field)
{
    json_t *stats = s_stats_parsed(broker);
    json_t *object = s_stats_find(stats, topic, channel);
    int64_t value = -1;
    if (!object || !s_json_number(json_object_get(object, field), &value))
        value = -1;
    json_decref(stats);
    return value;
}

int64_t it_topic_stat(it_broker_t *broker, const char *topic, const char *field)
{
    return s_stat(broker, topic, NULL, field);
}

int64_t it_channel_stat(it_broker_t *broker, const char *topic, const char *channel,
                        const char *field)
{
    return s_stat(broker, topic, channel, field);
}

bool it_channel_exists(it_broker_t *broker, const char *topic, const char *channel)
{
    json_t *stats = s_stats_parsed(broker);
    IT_ASSERT(stats, "GET /stats failed");
    bool exists = s_stats_find(stats, topic, channel) != NULL;
    json_decref(stats);
    return exists;
}

bool it_channel_settled(it_broker_t *broker, const char *topic, const char *channel)
{
    return it_channel_stat(broker, topic, channel, "depth") == 0
           && it_channel_stat(broker, topic, channel, "in_flight_count") == 0
           && it_channel_stat(broker, topic, channel, "deferred_count") == 0;
}

void it_wait_clients(it_broker_t *broker, const char *topic, const char *channel, int clients)
{
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, topic, channel, "client_count") == clients, 5000,
                         "%d consumer(s) did not subscribe to %s/%s", clients, topic, channel);
}

int64_t it_worker_metric(const char *http, const char *name)
{
    char *text = NULL;
    int status = it_http_to(http, "GET", "/metrics", NULL, 0, &text);
    int64_t value = -1;
    size_t length = strlen(name);
    for (const char *at = text; status == 200 && at && *at; at = strchr(at, '\n')) {
        at += *at == '\n';
        if (strncmp(at, name, length) == 0 && at[length] == ' ') {
            value = strtoll(at + length + 1, NULL, 10);
            break;
        }
    }
    free(text);
    return value;
}

int it_count_lines(const char *path, const char *needle)
{
    FILE *file = fopen(path, "r");
    int count = 0;
    char line[4096];
    while (file && fgets(line, sizeof line, file))
        count += !needle || strstr(line, needle) != NULL;
    if (file)
        fclose(file);
    return count;
}

// ---- consumer sink ----------------------------------------------------

struct _it_sink_t {
    nsq_consumer_t *consumer;  // the client API under test
    bool auto_fin;             // FIN in the handler
    it_delivery_t *items;      // every delivery, in arrival order
    size_t count;              // deliveries
    size_t capacity;           // allocated items
};

static void s_sink_handler(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    it_sink_t *self = arg;
    if (self->count == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 64;
        self->items = realloc(self->items, self->capacity * sizeof *self->items);
        IT_ASSERT(self->items, "out of memory");
    }
    it_delivery_t *item = &self->items[self->count++];
    snprintf(item->id, sizeof item->id, "%s", nsq_msg_id(msg));
    item->size = nsq_msg_size(msg);
    item->body = malloc(item->size + 1);
    IT_ASSERT(item->body, "out of memory");
    memcpy(item->body, nsq_msg_body(msg), item->size);
    item->body[item->size] = '\0';
    item->attempts = nsq_msg_attempts(msg);
    item->timestamp = nsq_msg_timestamp(msg);
    item->at_ms = it_now_ms();
    item->msg = msg;
    if (self->auto_fin) {
        nsq_consumer_fin(consumer, msg);
        item->msg = NULL;
    }
}

it_sink_t *it_sink_new(it_broker_t *broker, const char *topic, const char *channel,
                       uint32_t max_in_flight, bool auto_fin)
{
    return it_sink_new_msg_timeout(broker, topic, channel, max_in_flight, auto_fin, 0);
}

it_sink_t *it_sink_new_msg_timeout(it_broker_t *broker, const char *topic, const char *channel,
                                   uint32_t max_in_flight, bool auto_fin, uint32_t msg_timeout_ms)
{
    it_sink_t *self = calloc(1, sizeof *self);
    IT_ASSERT(self, "out of memory");
    self->auto_fin = auto_fin;
    self->consumer = nsq_consumer_new(topic, channel);
    IT_ASSERT(self->consumer, "nsq_consumer_new(%s, %s) returned NULL", topic, channel);
    nsq_consumer_set_handler(self->consumer, s_sink_handler, self);
    nsq_consumer_set_max_in_flight(self->consumer, max_in_flight);
    if (msg_timeout_ms)
        nsq_consumer_set_msg_timeout(self->consumer, msg_timeout_ms);
    IT_ASSERT(nsq_consumer_connect(self->consumer, broker->zmq) == 0,
              "nsq_consumer_connect(%s) failed", broker->zmq);
    return self;
}

void it_sink_destroy(it_sink_t **self_p)
{
    it_sink_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    nsq_consumer_destroy(&self->consumer);
    for (size_t index = 0; index < self->count; index++)
        free(self->items[index].body);
    free(self->items);
    free(self);
}

nsq_consumer_t *it_sink_consumer(it_sink_t *self)
{
    return self->consumer;
}

size_t it_sink_count(it_sink_t *self)
{
    return self->count;
}

it_delivery_t *it_sink_get(it_sink_t *self, size_t index)
{
    IT_ASSERT(index < self->count, "delivery %zu of %zu", index, self->count);
    return &self->items[index];
}

size_t it_sink_count_body(it_sink_t *self, const char *body)
{
    size_t matches = 0;
    for (size_t index = 0; index < self->count; index++)
        matches += strcmp(self->items[index].body, body) == 0;
    return matches;
}

void it_sink_pump(it_sink_t **sinks, size_t count, int milliseconds)
{
    int slice = count ? milliseconds / (int) count : milliseconds;
    for (size_t index = 0; index < count; index++)
        nsq_consumer_poll(sinks[index]->consumer, slice > 0 ? slice : 1);
    if (count == 0)
        it_sleep_ms(milliseconds);
}

bool it_sink_wait(it_sink_t *self, size_t count, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (self->count < count) {
        int64_t remaining = deadline - it_now_ms();
        if (remaining <= 0)
            return false;
        nsq_consumer_poll(self->consumer, remaining < 50 ? (int) remaining : 50);
    }
    return true;
}

static nsq_msg_t *s_sink_take(it_sink_t *self, size_t index, bool keep)
{
    it_delivery_t *item = it_sink_get(self, index);
    IT_ASSERT(item->msg, "delivery %zu (%s) is not held", index, item->id);
    nsq_msg_t *msg = item->msg;
    if (!keep)
        item->msg = NULL;
    return msg;
}

void it_sink_fin(it_sink_t *self, size_t index)
{
    nsq_msg_t *msg = s_sink_take(self, index, false);
    IT_ASSERT(nsq_consumer_fin(self->consumer, msg) == 0, "nsq_consumer_fin failed");
}

void it_sink_req(it_sink_t *self, size_t index, uint32_t delay_ms)
{
    nsq_msg_t *msg = s_sink_take(self, index, false);
    IT_ASSERT(nsq_consumer_req(self->consumer, msg, delay_ms) == 0, "nsq_consumer_req failed");
}

void it_sink_touch(it_sink_t *self, size_t index)
{
    nsq_msg_t *msg = s_sink_take(self, index, true);
    IT_ASSERT(nsq_consumer_touch(self->consumer, msg) == 0, "nsq_consumer_touch failed");
}

// ---- raw protocol client ----------------------------------------------

struct _it_raw_t {
    zsock_t *dealer;  // connected to the broker's ROUTER
    void *handle;     // its libzmq socket
};

it_raw_t *it_raw_new(it_broker_t *broker)
{
    it_raw_t *self = calloc(1, sizeof *self);
    IT_ASSERT(self, "out of memory");
    self->dealer = zsock_new(ZMQ_DEALER);
    IT_ASSERT(self->dealer, "zsock_new(DEALER) failed");
    if (broker->zmq[0] == '[')
        zsock_set_ipv6(self->dealer, 1);  // "[::1]:PORT"
    IT_ASSERT(zsock_connect(self->dealer, "tcp://%s", broker->zmq) == 0, "connect %s failed",
              broker->zmq);
    self->handle = zsock_resolve(self->dealer);
    return self;
}

void it_raw_destroy(it_raw_t **self_p)
{
    it_raw_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    zsock_destroy(&self->dealer);
    free(self);
}

void it_raw_send_bytes(it_raw_t *self, const void *data, size_t size)
{
    IT_ASSERT(zmq_send(self->handle, data, size, 0) == (int) size, "zmq_send: %s",
              zmq_strerror(zmq_errno()));
}

void it_raw_send(it_raw_t *self, Nsq__Command *command, uint64_t seq)
{
    command->seq = seq;
    IT_ASSERT(nsq_wire_send_command(self->handle, command, 0) == 0, "send command: %s",
              zmq_strerror(zmq_errno()));
}

void it_raw_identify(it_raw_t *self, uint64_t seq)
{
    Nsq__Identify identify = NSQ__IDENTIFY__INIT;
    identify.client_id = "it-raw";
    identify.hostname = "localhost";
    identify.user_agent = "it-harness/1";
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    it_raw_send(self, &command, seq);
}

void it_raw_sub(it_raw_t *self, uint64_t seq, const char *topic, const char *channel)
{
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = nsq_wire_bytes(topic);
    sub.channel = nsq_wire_bytes(channel);
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    it_raw_send(self, &command, seq);
}

void it_raw_rdy(it_raw_t *self, uint64_t seq, uint32_t count)
{
    Nsq__Rdy rdy = NSQ__RDY__INIT;
    rdy.count = count;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_RDY;
    command.rdy = &rdy;
    it_raw_send(self, &command, seq);
}

void it_raw_fin(it_raw_t *self, uint64_t seq, uint64_t id)
{
    Nsq__Fin fin = NSQ__FIN__INIT;
    fin.n_ids = 1;
    fin.ids = &id;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_FIN;
    command.fin = &fin;
    it_raw_send(self, &command, seq);
}

static void s_note_skipped(const Nsq__Frame *frame)
{
    if (frame->frame_case == NSQ__FRAME__FRAME_RESPONSE)
        it_note("raw: skipped response seq %llu \"%s\"", (unsigned long long) frame->response->seq,
                frame->response->text);
    else if (frame->frame_case == NSQ__FRAME__FRAME_ERROR)
        it_note("raw: skipped error seq %llu %s %s", (unsigned long long) frame->error->seq,
                frame->error->code, frame->error->text);
    else
        it_note("raw: skipped frame of kind %d", (int) frame->frame_case);
}

// Receives one ZeroMQ message (extra parts dropped); NULL after timeout_ms.
static Nsq__Frame *s_raw_receive(it_raw_t *self, int timeout_ms)
{
    zmq_pollitem_t item = {self->handle, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t part;
    zmq_msg_init(&part);
    IT_ASSERT(zmq_msg_recv(&part, self->handle, 0) >= 0, "zmq_msg_recv failed");
    Nsq__Frame *frame = nsq_wire_frame_unpack(zmq_msg_data(&part), zmq_msg_size(&part));
    size_t size = zmq_msg_size(&part);
    while (zmq_msg_more(&part)) {
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        zmq_msg_recv(&part, self->handle, 0);
    }
    zmq_msg_close(&part);
    IT_ASSERT(frame, "the broker sent %zu bytes that are not a valid Frame", size);
    return frame;
}

Nsq__Frame *it_raw_next(it_raw_t *self, int timeout_ms)
{
    return s_raw_receive(self, timeout_ms);
}

Nsq__Frame *it_raw_expect(it_raw_t *self, Nsq__Frame__FrameCase kind, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (true) {
        int64_t remaining = deadline - it_now_ms();
        if (remaining <= 0)
            return NULL;
        Nsq__Frame *frame = s_raw_receive(self, (int) remaining);
        if (!frame)
            return NULL;
        if (frame->frame_case == kind)
            return frame;
        s_note_skipped(frame);
        nsq__frame__free_unpacked(frame, NULL);
    }
}

// ---- misc -------------------------------------------------------------

int it_port_hold(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    IT_ASSERT(fd >= 0 && bind(fd, (struct sockaddr *) &address, sizeof address) == 0
                  && getsockname(fd, (struct sockaddr *) &address, &length) == 0,
              "cannot hold a loopback port: %s", strerror(errno));
    *port = ntohs(address.sin_port);
    return fd;
}

int it_tcp_connect(const char *address)
{
    char text[128];
    snprintf(text, sizeof text, "%s", address);
    char *colon = strrchr(text, ':'), *host = text;
    if (!colon)
        return -1;
    *colon = '\0';
    if (host[0] == '[' && colon > host + 1 && colon[-1] == ']') {  // "[::1]:PORT"
        host++;
        colon[-1] = '\0';
    }
    struct addrinfo hints = {0}, *found = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &found) != 0)
        return -1;
    int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    return fd;
}

// The framings two HTTP parsers can read differently (request smuggling):
// each must get one 400 and a closed connection, and nothing of it may be
// taken as a request. Each hides a second request that publishes to (or
// creates) "smuggled" after a first body for "smuggle"; the larger lengths
// cover that hidden request (74 bytes) too, as a proxy would read them.
#define S_SMUGGLED                                                                                 \
    "POST /topic/create?topic=smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
static const char *const s_smuggling[] = {
    "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 79\r\n\r\n"
    "hello" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
    "hello" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 89\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
    "chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n" S_SMUGGLED,
};

void it_http_expect_smuggling_refused(const char *address, const char *path)
{
    for (size_t i = 0; i < sizeof s_smuggling / sizeof *s_smuggling; i++) {
        char request[1024], reply[4096];
        snprintf(request, sizeof request, s_smuggling[i], path);
        int status = it_http_raw(address, request, reply, sizeof reply);
        IT_ASSERT(status == 400, "smuggling request %zu to %s answered %d: %.300s", i, address,
                  status, reply);
        const char *second = strstr(reply + 1, "HTTP/1.");
        IT_ASSERT(!second, "smuggling request %zu: a second answer came: %.300s", i, second);
    }
}

// The fallback of it_json_parses: valid UTF-8, no raw control character.
static bool s_json_plausible(const char *text)
{
    for (const char *c = text; *c; c++)
        if ((unsigned char) *c < 0x20 && *c != '\n' && *c != '\r' && *c != '\t' && *c != ' ')
            return false;
    return nsq_utf8_is_valid(text, strlen(text));
}

bool it_json_parses(const char *text, const char *check)
{
    const char *python = "/usr/bin/python3";
    if (access(python, X_OK) != 0) {
        it_note("no %s: JSON checked for UTF-8 and control characters only", python);
        return s_json_plausible(text);
    }
    static int count;
    char path[PATH_MAX], script[1024];
    int length = snprintf(path, sizeof path, "%s/json-%d.json", s_tmp(), ++count);
    IT_ASSERT(length > 0 && (size_t) length < sizeof path, "temporary path too long");
    FILE *file = fopen(path, "wb");
    IT_ASSERT(file && fputs(text, file) >= 0 && fclose(file) == 0, "cannot write %s", path);
    snprintf(script, sizeof script,
             "import json, sys\n"
             "doc = json.loads(open(sys.argv[1], 'rb').read().decode('utf-8', 'strict'))\n"
             "sys.exit(0 if (%s) else 3)\n",
             check ? check : "True");
    const char *argv[] = {python, "-c", script, path, NULL};
    it_child_t *child = it_child_start("json-check", argv);
    char line[256];
    while (it_child_read_line(child, line, sizeof line, 10000) == 1)
        it_note("json check: %s", line);
    int status = it_child_stop(&child, 0, 5000);
    if (status != 0)
        it_note("%s does not parse as JSON%s%s (status %d)", path, check ? " or fails " : "",
                check ? check : "", status);
    return status == 0;
}

int it_http_raw(const char *address, const char *request, char *reply, size_t size)
{
    int fd = it_tcp_connect(address);
    IT_ASSERT(fd >= 0, "cannot connect to %s", address);
    size_t length = strlen(request);
    IT_ASSERT(write(fd, request, length) == (ssize_t) length, "cannot send to %s", address);
    size_t got = 0;
    reply[0] = '\0';
    int64_t deadline = it_now_ms() + 5000;
    while (got < size - 1 && it_now_ms() < deadline) {
        struct pollfd item = {fd, POLLIN, 0};
        if (poll(&item, 1, (int) (deadline - it_now_ms())) <= 0)
            break;
        ssize_t chunk = read(fd, reply + got, size - 1 - got);
        if (chunk <= 0)
            break;  // the server closed the connection
        got += (size_t) chunk;
        reply[got] = '\0';
    }
    close(fd);
    int status = 0;
    sscanf(reply, "HTTP/1.%*d %d", &status);
    return status;
}

const char *it_self_path(void)
{
    static char path[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
    IT_ASSERT(length > 0, "readlink /proc/self/exe: %s", strerror(errno));
    path[length] = '\0';
    return path;
}

// ---- the reference auth server ---------------------------------------------

void it_write_file(const char *path, const char *text)
{
    char temporary[600];
    snprintf(temporary, sizeof temporary, "%s.new", path);
    FILE *file = fopen(temporary, "w");
    IT_ASSERT(file, "cannot write %s", temporary);
    fputs(text, file);
    fclose(file);
    IT_ASSERT(rename(temporary, path) == 0, "cannot rename %s", temporary);
}

it_authd_t it_authd_start(const char *text)
{
    it_authd_t authd = {0};
    snprintf(authd.path, sizeof authd.path, "%s/auth.json", it_tmp_dir());
    it_write_file(authd.path, text);
    char file_flag[600];
    snprintf(file_flag, sizeof file_flag, "--auth-file=%s", authd.path);
    const char *argv[] = {getenv("NSQ_AUTH_SERVER"), file_flag, "--http-address=127.0.0.1:0", NULL};
    IT_ASSERT(argv[0], "NSQ_AUTH_SERVER is not set");
    authd.child = it_child_start("nsq-auth-server", argv);
    char line[128];
    IT_ASSERT(it_child_read_line(authd.child, line, sizeof line, 10000) == 1
                  && strncmp(line, "READY http=", 11) == 0,
              "nsq-auth-server did not get ready");
    snprintf(authd.address, sizeof authd.address, "%.63s", line + 11);
    return authd;
}
