/*  harness_internal - what the harness's own files share, not for the tests
    SPDX-License-Identifier: MIT

    The harness is split by job (harness_runner.c, harness_process.c,
    harness_daemons.c, harness_http.c, harness_sinks.c, harness_raw.c,
    harness_net.c); harness.h is its contract with the tests. Its state
    stays private to the file that owns it: the runner owns the case's name
    and temporary directory (it_tmp_dir), harness_process.c the registry of
    live children and the list of their logs, harness_daemons.c the layout
    of it_broker_t (the others read its addresses with it_broker_http and
    it_broker_zmq). What crosses files is the few functions below.
*/
#ifndef IT_HARNESS_INTERNAL_H
#define IT_HARNESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

#define IT_READY_MS 10000  // how long a daemon may take to print READY
#define IT_STOP_MS  10000  // how long SIGTERM may take before SIGKILL
#define IT_MAX_ARGS 48     // arguments of a child, flags included

// ---- the children's registry (harness_process.c), for the runner --------

// Prints the tail of every log the case's children wrote, to stderr.
void it_logs_print(void);

// Kills every live child by its PID, reaps it and frees it.
void it_children_kill(void);

// Sends SIGKILL to every live child by its PID and nothing more: only
// async-signal-safe calls (the runner's alarm handler uses it).
void it_children_kill_now(void);

// ---- starting children (harness_process.c), for the daemons --------------

// The path in the environment variable (meson sets it); fails the case
// unless it names an executable.
const char *it_env_binary(const char *variable);

// Appends the NULL-terminated extra list (may be NULL) to argv, which is
// count long and IT_MAX_ARGS big, and NULL-terminates it. Returns the new
// count; fails the case if the arguments do not fit.
size_t it_append_args(const char **argv, size_t count, const char *const *extra);

// Whether flags (NULL-terminated, may be NULL) hold one that starts with
// prefix (e.g. "--http-address=").
bool it_has_flag(const char *const *flags, const char *prefix);

// As it_child_wait_log, but the line may hold text anywhere.
int it_child_wait_text(it_child_t *self, const char *text, char *line, size_t size, int timeout_ms);

#endif
