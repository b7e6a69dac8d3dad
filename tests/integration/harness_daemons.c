/*  harness_daemons - nsq-broker, nsq-lookupd and nsq-auth-server for a case
    SPDX-License-Identifier: MIT

    A daemon is a child (harness_process.c) started on 127.0.0.1 with
    ephemeral ports unless the case's flags set them, the broker with a
    fresh data directory under the case's temporary directory. The harness
    reads its stdout until the READY line and keeps the addresses it
    announces (it_broker_t); the case stops it by PID with SIGTERM.
    it_broker_refuses starts a broker expected to exit and reports how.
*/
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _it_broker_t {
    it_child_t *child;   // the nsq-broker process
    char http[64];       // "127.0.0.1:PORT" from the READY line
    char zmq[64];        // "127.0.0.1:PORT" from the READY line
    char tcp[64];        // "127.0.0.1:PORT" from the READY line, "" if none
    char dir[PATH_MAX];  // its data path
};

// ---- broker -----------------------------------------------------------

// Fills argv after argv[0] with the defaults (count of them) whose flag
// flags do not set (a daemon refuses a flag given twice), then flags.
static void s_add_args(const char **argv, const char *const *defaults, size_t count,
                       const char *const *flags)
{
    size_t used = 1;
    for (size_t index = 0; index < count; index++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%.*s", (int) strcspn(defaults[index], "=") + 1,
                 defaults[index]);
        if (!it_has_flag(flags, prefix))
            argv[used++] = defaults[index];
    }
    it_append_args(argv, used, flags);
}

// Starts nsq-broker in a fresh data dir with the given flags plus the
// harness defaults the flags do not set (the broker refuses a flag given
// twice). Returns the child; fills dir.
static it_child_t *s_broker_spawn(const char *const *flags, char *dir, size_t dir_size)
{
    int length = snprintf(dir, dir_size, "%s/data-XXXXXX", it_tmp_dir());
    IT_ASSERT(length < (int) dir_size, "data path too long under %s", it_tmp_dir());
    IT_ASSERT(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
    char data_flag[PATH_MAX + 16];
    snprintf(data_flag, sizeof data_flag, "--data-path=%s", dir);
    const char *defaults[] = {"--http-address=127.0.0.1:0", "--zmq-address=127.0.0.1:0",
                              "--tcp-address=127.0.0.1:0", data_flag, "--log-level=debug"};
    const char *argv[IT_MAX_ARGS] = {it_env_binary("NSQ_BROKER")};
    s_add_args(argv, defaults, sizeof defaults / sizeof defaults[0], flags);
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
    it_note("%s pid %d http=%s zmq=%s", program, (int) it_child_pid(self->child), self->http,
            self->zmq);
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
    const char *argv[IT_MAX_ARGS] = {it_env_binary("NSQ_LOOKUPD")};
    s_add_args(argv, defaults, sizeof defaults / sizeof defaults[0], flags);
    self->child = it_child_start("lookupd", argv);
    s_wait_ready(self, "nsq-lookupd");
    return self;
}

int it_broker_refuses(const char *const *flags, char *last_line, size_t size)
{
    char dir[PATH_MAX], line[512];
    it_child_t *child = s_broker_spawn(flags, dir, sizeof dir);
    const char *log_path = it_child_log_path(child);  // stays after the child stops
    int got = it_child_read_line(child, line, sizeof line, IT_READY_MS);
    int status = it_child_stop(&child, got == -1 ? 0 : SIGKILL, IT_STOP_MS);
    if (got != -1)
        status = -1;
    last_line[0] = '\0';
    FILE *log = fopen(log_path, "r");
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
    return self->child ? it_child_pid(self->child) : -1;
}

int it_broker_wait_log(it_broker_t *self, const char *text, char *line, size_t size, int timeout_ms)
{
    return self->child ? it_child_wait_text(self->child, text, line, size, timeout_ms) : 0;
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

// ---- the reference auth server ---------------------------------------------

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
