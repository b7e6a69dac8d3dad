/*  worker_spawn - start a handler's shell command, signal its process group
    SPDX-License-Identifier: MIT

    See worker_spawn.h. The environment is built per call from environ: the
    worker's own variables are borrowed, only the array is allocated.
*/
#include "worker_spawn.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

// True if the inherited variable entry ("NAME=VALUE") must not pass: a
// name that add sets, or a stale per-message or per-process one.
static bool s_replaced(const char *entry, const char *const *add)
{
    if (strncmp(entry, "NSQ_MSG_", 8) == 0 || strncmp(entry, "NSQ_PROCESS_", 12) == 0)
        return true;
    for (size_t i = 0; add && add[i]; i++) {
        const char *equals = strchr(add[i], '=');
        size_t length = equals ? (size_t) (equals - add[i]) + 1 : strlen(add[i]);
        if (strncmp(entry, add[i], length) == 0)
            return true;
    }
    return false;
}

// environ minus what add replaces, plus add. Caller frees the array only.
static char **s_environment(const char *const *add)
{
    size_t count = 0, extra = 0;
    while (environ[count])
        count++;
    while (add && add[extra])
        extra++;
    char **env = calloc(count + extra + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t used = 0;
    for (size_t i = 0; i < count; i++)
        if (!s_replaced(environ[i], add))
            env[used++] = environ[i];
    for (size_t i = 0; i < extra; i++)
        env[used++] = (char *) add[i];
    return env;
}

pid_t worker_spawn(const char *command, const int fds[3], const char *const *add)
{
    char **env = s_environment(add);
    if (!env)
        return -1;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    for (int target = 0; target < 3; target++)
        if (fds[target] >= 0)
            posix_spawn_file_actions_adddup2(&actions, fds[target], target);
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
    char *argv[] = {"/bin/sh", "-c", (char *) command, NULL};
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

void worker_spawn_signal(pid_t pid, int signal)
{
    if (kill(-pid, signal) && errno == ESRCH)
        kill(pid, signal);
}

bool worker_spawn_reap(pid_t pid, bool wait, int *status)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int flags = WEXITED | WNOWAIT | (wait ? 0 : WNOHANG);
    while (waitid(P_PID, (id_t) pid, &info, flags) && errno == EINTR)
        ;
    if (info.si_pid != pid)
        return false;
    kill(-pid, SIGKILL);  // the leader is a zombie: the group id is still ours
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return true;
}
