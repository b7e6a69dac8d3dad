/*  nsq_deadletter - the dead-letter format: a JSON header line, then the body
    SPDX-License-Identifier: MIT

    A dead letter is one message on a dead-letter topic (nsq-worker's
    <topic>.dead): a one-line JSON object, a newline, then the original
    body byte for byte (binary-safe; it may itself hold newlines and NULs):

        {"v":1,"topic":"orders","channel":"billing","id":"0a0000000000002a",
         "attempts":5,"first_seen":1764490000000000000,"dead_at":1764490042000000000,
         "broker":"10.0.0.1:4152","failure":{"kind":"exit","code":3,"detail":"exit status 3"}}
        <original body>

    (one line in a real dead letter). first_seen is the original message's
    timestamp and dead_at the time it was dead-lettered, both nanoseconds
    since the epoch; broker is the ZeroMQ address it came from. The failure
    is the last one: exit (code = exit status), signal (code = signal
    number), http (code = HTTP status), timeout (code = the limit in ms, 0
    if unknown) or error (code = errno or a library code, 0 if none), with
    a human-readable detail. Readers ignore fields they do not know; "v"
    changes only if a field changes meaning.

    API: nsq_deadletter_build, nsq_deadletter_parse,
    nsq_failure_kind_name, nsq_failure_kind_parse.
*/
#ifndef NSQ_DEADLETTER_H
#define NSQ_DEADLETTER_H

#include "nsq_message.h"
#include "nsq_names.h"

#include <stddef.h>
#include <stdint.h>

#define NSQ_DEADLETTER_VERSION    1
#define NSQ_DEADLETTER_BROKER_MAX 256  // bytes of broker, NUL included
#define NSQ_FAILURE_DETAIL_MAX    256  // bytes of detail, NUL included

typedef enum {
    NSQ_FAILURE_EXIT,     // the command exited non-zero
    NSQ_FAILURE_SIGNAL,   // the command was killed by a signal
    NSQ_FAILURE_HTTP,     // the endpoint answered a failing status
    NSQ_FAILURE_TIMEOUT,  // no result in time
    NSQ_FAILURE_ERROR,    // anything else (could not start, connection refused, I/O)
} nsq_failure_kind_t;

typedef struct {
    nsq_failure_kind_t kind;              // what went wrong
    int64_t code;                         // exit status, signal, HTTP status, ms or errno
    char detail[NSQ_FAILURE_DETAIL_MAX];  // for people; may be empty
} nsq_failure_t;

typedef struct {
    char topic[NSQ_NAME_MAX + 1];            // where the message was published
    char channel[NSQ_NAME_MAX + 1];          // whose consumer gave up
    char id[NSQ_MESSAGE_ID_HEX_SIZE + 1];    // the original message id, hex
    uint32_t attempts;                       // deliveries, at least 1
    int64_t first_seen;                      // ns since the epoch: published
    int64_t dead_at;                         // ns since the epoch: dead-lettered
    char broker[NSQ_DEADLETTER_BROKER_MAX];  // "host:port" it came from
    nsq_failure_t failure;                   // the last failure
} nsq_deadletter_t;

// Builds a dead letter: header's JSON line, '\n', then size bytes of body.
// Returns the bytes and their length in *out_size; caller frees. NULL with
// errno EINVAL if the header is invalid (a topic or channel that is not a
// valid name, an id that is not 16 hex digits, attempts 0, an empty
// broker, a kind out of range), or ENOMEM. Bytes of detail that are not
// UTF-8 are replaced by '?' (JSON strings are UTF-8).
uint8_t *nsq_deadletter_build(const nsq_deadletter_t *header, const void *body, size_t size,
                              size_t *out_size);

// Parses size bytes of data as a dead letter. Returns 0, fills *header and
// points *body into data (not NUL-terminated; *body_size bytes, possibly
// 0). Returns -1 with errno EINVAL if data is not a dead letter: no
// newline, a first line that is not one JSON object, "v" other than 1, a
// field missing or of the wrong type, a name, id, count or kind that is
// invalid, or a string longer than its field. Data is borrowed.
int nsq_deadletter_parse(const void *data, size_t size, nsq_deadletter_t *header, const void **body,
                         size_t *body_size);

// "exit", "signal", "http", "timeout", "error"; NULL if kind is out of
// range. Static string.
const char *nsq_failure_kind_name(nsq_failure_kind_t kind);

// The kind named name. Returns 0, or -1 (errno EINVAL) if unknown.
int nsq_failure_kind_parse(const char *name, nsq_failure_kind_t *kind);

// Self-test; returns 0 on success.
int nsq_deadletter_test(void);

#endif
