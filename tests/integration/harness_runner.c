/*  harness_runner - runs the cases, each in a process of its own, and ends them
    SPDX-License-Identifier: MIT

    it_run forks one process per selected case and kills it after
    IT_CASE_LIMIT_S; inside, an alarm at IT_ALARM_S kills the case's
    children first. State here is per case process: the case's name (for
    it_note and it_fail) and its temporary directory, made on first use and
    removed when the case passes. The failure path (it_fail) prints every
    log the case's children wrote, kills them by PID (harness_process.c
    keeps them) and uses _exit so that no library teardown can hang a case
    that is already failing. Also the time helpers and the small file
    helpers the cases share.
*/
#include "harness.h"
#include "harness_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IT_CASE_LIMIT_S 90  // the runner kills a case after this long
#define IT_ALARM_S      80  // a case stops itself (children first) after this long

static const char *s_case_name = "";  // the running case
static char s_tmp_root[PATH_MAX];     // this case's directory, "" until needed

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
    it_logs_print();
    it_children_kill();
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
    it_children_kill_now();
    _exit(1);
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

const char *it_tmp_dir(void)
{
    return s_tmp();
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
    it_children_kill();
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

// ---- files ------------------------------------------------------------

const char *it_self_path(void)
{
    static char path[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
    IT_ASSERT(length > 0, "readlink /proc/self/exe: %s", strerror(errno));
    path[length] = '\0';
    return path;
}

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
