/*  ctl - what nsq-ctl's commands share: where they talk to, HTTP with
    JSON answers, exit codes
    SPDX-License-Identifier: MIT

    nsq-ctl talks to a lookupd (cluster-wide: the console's /api, see
    lookupd/lookupd_console.h, so every action is logged by lookupd and
    passes its checks) or to one broker (its NSQ-style HTTP API, and its
    ZeroMQ endpoint for tail and replay). One file per job: ctl.c (options,
    dispatch), ctl_http.c (requests), ctl_stats.c (topics, stats, watch),
    ctl_actions.c (pause ... replay), ctl_tail.c (tail).

    API: ctl_http_request, ctl_get_json, ctl_fail, ctl_progress, ctl_progress_end,
    ctl_escape.
*/
#ifndef CTL_H
#define CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Exit codes (documented in --help and the README).
enum {
    CTL_OK = 0,           // done
    CTL_FAILED = 1,       // the operation failed (on at least one broker)
    CTL_USAGE = 2,        // bad command line
    CTL_NOT_FOUND = 3,    // unknown topic or channel (or broker, for tombstone)
    CTL_UNREACHABLE = 4,  // lookupd or the broker did not answer
};

typedef struct {
    const char *lookupd;           // lookupd HTTP host:port, or NULL
    const char *broker_http;       // broker HTTP host:port, or NULL
    const char *broker_zmq;        // broker ZeroMQ host:port, or NULL
    bool json;                     // machine output
    int64_t timeout_ms;            // per request; jobs get this long per broker round
    int64_t interval_ms;           // watch: between refreshes
    int64_t count;                 // watch: refreshes, tail: messages; 0 = no end
    const char *tls_root_ca_file;  // https: CA to trust (NULL = the system's)
    const char *tls_cert;          // https: client certificate, or NULL
    const char *tls_key;           // https: its key, or NULL
    char auth_secret[1024];        // Bearer secret for brokers with --auth-http-address, "" = none
    const char *zmq_curve_key_file;         // tail, replay: CURVE key pair, NULL = plain
    const char *zmq_curve_server_key_file;  // tail, replay: the brokers' public certificate
} ctl_t;

// One HTTP request to address ("host:port", "http://..." or "https://...")
// + path. Returns the status, or
// 0 when no answer came (error says why). *body (may be NULL) gets the
// answer, NUL-terminated; caller frees.
long ctl_http_request(const ctl_t *ctl, const char *method, const char *address, const char *path,
                      char **body, char *error, size_t error_size);

// GET (or POST when post) and parse the JSON answer. Returns the document
// (caller owns it) with *status 200 or 202; otherwise NULL, prints the
// reason ("nsq-ctl: ..." on stderr) and sets *code to the exit code.
json_t *ctl_get_json(const ctl_t *ctl, bool post, const char *address, const char *path, int *code);

// Prints "nsq-ctl: " and the message on stderr; returns code.
int ctl_fail(int code, const char *format, ...) __attribute__((format(printf, 2, 3)));

// Writes a progress line on stderr: on a terminal it overwrites the last
// one, elsewhere it is a line of its own.
void ctl_progress(const char *format, ...) __attribute__((format(printf, 1, 2)));

// Ends the progress line on a terminal (nothing elsewhere).
void ctl_progress_end(void);

// Percent-encodes text for a query string into out.
void ctl_escape(char *out, size_t size, const char *text);

// Commands: each returns an exit code.
int ctl_topics(const ctl_t *ctl);
int ctl_stats(const ctl_t *ctl, const char *topic, const char *channel);
int ctl_watch(const ctl_t *ctl);
int ctl_action(const ctl_t *ctl, const char *verb, const char *topic, const char *channel);
int ctl_tombstone(const ctl_t *ctl, const char *topic, const char *broker);
int ctl_replay(const ctl_t *ctl, const char *dead_topic);
int ctl_tail(const ctl_t *ctl, const char *topic);

#endif
