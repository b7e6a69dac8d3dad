/*  worker_spawn - start a handler's shell command, signal its process group
    SPDX-License-Identifier: MIT

    What --exec (a command per message) and --process (long-lived
    commands) share: /bin/sh -c COMMAND started with posix_spawn (no fork
    of the worker's address space) in a process group of its own, so a
    signal meant for the worker (a terminal's Ctrl-C) does not reach it and
    a stop reaches the shell and everything it started. The signals the
    worker ignores or catches (SIGPIPE, SIGINT, SIGTERM) are back at their
    defaults in the command, and its signal mask is empty.

    API: worker_spawn, worker_spawn_signal, worker_spawn_reap.
*/
#ifndef WORKER_SPAWN_H
#define WORKER_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

// Starts /bin/sh -c command with fds[0], fds[1], fds[2] as its stdin,
// stdout and stderr (-1: the worker's own), and the worker's environment
// plus the "NAME=VALUE" strings of add (NULL-terminated, may be NULL).
// Inherited variables named in add, and stale NSQ_MSG_* and NSQ_PROCESS_*
// ones, are left out. Returns the pid, or -1 with errno.
pid_t worker_spawn(const char *command, const int fds[3], const char *const *add);

// Sends signal to pid's process group, or to pid alone once the group is
// gone (the shell may not be reaped yet).
void worker_spawn_signal(pid_t pid, int signal);

// Reaps pid once it exited (blocks until then when wait is true), first
// SIGKILLing what is left of its process group: a command's background
// children would otherwise keep running, and keep its pipes open. While
// pid is not reaped its number (the group's id) cannot be reused, so the
// signal reaches no one else. Returns true with its wait status in
// *status, false if it still runs.
bool worker_spawn_reap(pid_t pid, bool wait, int *status);

#endif
