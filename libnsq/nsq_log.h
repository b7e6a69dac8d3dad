/*  nsq_log - leveled logging to stderr, one line per event, plain or JSON
    SPDX-License-Identifier: MIT

    The settings are process-wide: a daemon configures them once from its
    options (--log-level, --log-format) before it starts threads. Logging
    itself is safe from any thread: each event is formatted into a local
    buffer and written with one write(2), so lines never interleave. A line
    longer than NSQ_LOG_LINE_MAX is truncated and marked with "...". Newlines
    and other control characters in a message are escaped, so one event is
    always one line.

    Plain:  2026-11-27T20:54:46.123Z INFO nsq-broker: text
    JSON:   {"ts":"2026-11-27T20:54:46.123Z","level":"info","program":"nsq-broker","msg":"text"}

    API in call order: nsq_log_set_program, nsq_log_level_parse,
    nsq_log_set_level, nsq_log_set_json (nsq_log_set_stream_fd for tests);
    then nsq_debug / nsq_info / nsq_warn / nsq_error, or nsq_log.
*/
#ifndef NSQ_LOG_H
#define NSQ_LOG_H

#include <stdbool.h>

// Longest line written, newline included.
#define NSQ_LOG_LINE_MAX 4096

typedef enum { NSQ_LOG_DEBUG, NSQ_LOG_INFO, NSQ_LOG_WARN, NSQ_LOG_ERROR } nsq_log_level_t;

// Events below level are dropped. The default is NSQ_LOG_INFO.
void nsq_log_set_level(nsq_log_level_t level);

// Parses debug, info, warn, warning or error (any case) into *level.
// Returns 0, or -1 (and leaves *level alone) for anything else or NULL.
int nsq_log_level_parse(const char *text, nsq_log_level_t *level);

// Writes JSON objects instead of plain lines when json is true.
void nsq_log_set_json(bool json);

// Sets the program name shown on every line (copied; at most 63 bytes kept).
// NULL restores the default, "nsq".
void nsq_log_set_program(const char *name);

// Sends lines to fd instead of stderr; a negative fd restores stderr.
// The caller keeps ownership of fd. Meant for tests that capture output.
void nsq_log_set_stream_fd(int fd);

// Returns true if an event at level would be written.
bool nsq_log_enabled(nsq_log_level_t level);

// Writes one event if level is enabled. Keeps errno intact, so a caller may
// log and then return -1 with the errno of the failure it just reported.
void nsq_log(nsq_log_level_t level, const char *format, ...) __attribute__((format(printf, 2, 3)));

// Shorthands; arguments are not evaluated when the level is disabled.
#define nsq_debug(...) NSQ_LOG_IF(NSQ_LOG_DEBUG, __VA_ARGS__)
#define nsq_info(...)  NSQ_LOG_IF(NSQ_LOG_INFO, __VA_ARGS__)
#define nsq_warn(...)  NSQ_LOG_IF(NSQ_LOG_WARN, __VA_ARGS__)
#define nsq_error(...) NSQ_LOG_IF(NSQ_LOG_ERROR, __VA_ARGS__)

#define NSQ_LOG_IF(level, ...)                                                                     \
    do {                                                                                           \
        if (nsq_log_enabled(level))                                                                \
            nsq_log(level, __VA_ARGS__);                                                           \
    } while (0)

// Self-test; returns 0 on success.
int nsq_log_test(void);

#endif
