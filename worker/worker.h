/*  worker - the nsq-worker runtime: consume, hand to a handler, settle
    SPDX-License-Identifier: MIT

    Owns the consumer, the one handler (exec, process, http, file or
    stdout), the backoff, the dead letters (worker_deadletter), the drain
    (worker_drain), the output publisher (pipelines), the metrics and the
    HTTP probes. All of it runs on the consumer's zloop on the caller's
    thread, except the HTTP server, which reads the metrics from its own
    thread.

    API in call order: worker_new, worker_connect (repeat) or worker_consumer,
    worker_http_port_bound, worker_run, worker_destroy.
*/
#ifndef WORKER_H
#define WORKER_H

#include "nsq.h"
#include "nsq_http_server.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *topic;                // subscription (required; borrowed, must outlive the worker)
    const char *channel;              //
    uint32_t max_in_flight;           // credit when healthy
    uint32_t heartbeat_interval_ms;   // asked of brokers (0 = broker default)
    uint32_t msg_timeout_ms;          // asked of brokers (0 = broker default); clamped to their max
    int64_t max_messages;             // stop after this many results (0 = never)
    const char *exec_command;         // handler: run this per message, or NULL
    const char *process_command;      // handler: long-lived processes running this, or NULL
    int processes;                    // how many (at least 1)
    int process_window;               // messages in flight per process (at least 1)
    const char *http_url;             // handler: POST here, or NULL
    const char *file_path;            // handler: append here, or NULL
    bool to_stdout;                   // handler: write to stdout
    int64_t file_max_bytes;           // rotate the file beyond this (0 = never)
    int64_t file_rotate_interval_ms;  // rotate the file this often (0 = never)
    int64_t http_timeout_ms;          // one HTTP request at most
    int64_t max_msg_timeout_ms;       // an exec command is killed after this (0 = never)
    int64_t requeue_delay_ms;         // REQ delay per attempt
    int64_t max_requeue_delay_ms;     // cap of the REQ delay
    int64_t max_attempts;             // then dead-letter (0 = never)
    const char *dead_letter_topic;    // NULL = "<topic>.dead"
    int64_t backoff_ms;               // first backoff pause (0 = no backoff)
    int64_t max_backoff_ms;           // longest backoff pause
    const char *http_address;         // probes and metrics, NULL or "" = none
    bool http_address_optional;       // the default: if it cannot be bound, warn and run without
    int64_t shutdown_timeout_ms;      // drain at most this long
    const char *publish_topic;        // handlers' output goes here (NULL = not captured)
    const char *auth_secret;          // for brokers with an auth server (copied), NULL = none
    size_t max_output_size;           // output beyond this fails the message (0 = 1 MiB)
    NSQ_HTTP_TLS_FIELDS;  // HTTPS probes; the cert, key and CA serve libcurl's requests too
    char zmq_curve_key_file[1024];         // CURVE towards brokers: our key pair ("" = off)
    char zmq_curve_server_key_file[1024];  // CURVE: the brokers' public certificate
} worker_config_t;

typedef struct _worker_t worker_t;

// Creates the worker: consumer, handler, HTTP server. NULL with the reason
// logged (bad names, a file that cannot be opened, an address that cannot be
// bound unless http_address_optional). Caller owns the result.
worker_t *worker_new(const worker_config_t *config);

// Destroys the worker and nulls *self_p; accepts NULL.
void worker_destroy(worker_t **self_p);

// Connects to a broker's ZeroMQ address. Returns 0, or -1 if malformed.
int worker_connect(worker_t *self, const char *address);

// The worker's consumer, for settings this runtime does not wrap (e.g. more
// ways to discover brokers). Borrowed; valid until worker_destroy. Do not
// change its handler or its credit.
nsq_consumer_t *worker_consumer(worker_t *self);

// The HTTP port bound (the real one for port 0), 0 if none.
uint16_t worker_http_port_bound(worker_t *self);

// Consumes until SIGTERM/SIGINT, --max-messages or a broken handler, then
// drains: credit 0 and CLS everywhere, in-flight handlers get up to the
// shutdown timeout, are settled (stragglers are stopped and requeued).
// Returns the exit code: 0, or 1 if the handler broke.
int worker_run(worker_t *self);

// Self-test; returns 0 on success.
int worker_test(void);

#endif
