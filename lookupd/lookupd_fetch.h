/*  lookupd_fetch - HTTP requests to brokers and peers, off the actor's thread
    SPDX-License-Identifier: MIT

    lookupd polls every broker's /stats and fans the console's actions out
    to brokers; neither may block its one loop. This class runs a thread
    (czmq actor) with one libcurl multi handle: the owner submits a job (a
    batch of requests), the thread runs them concurrently (each with its
    own timeout) and reports every request as it completes, then the job's
    end. The owner reads results on its loop from lookupd_fetch_sock.

    Jobs are numbered by the owner; results name their job and the
    request's index within it. Answers larger than LOOKUPD_FETCH_BODY_MAX
    are cut off and reported as a failure, so a broken peer cannot make
    lookupd's memory grow without bound.

    API in call order: lookupd_fetch_new, lookupd_fetch_submit,
    lookupd_fetch_sock + lookupd_fetch_recv (+ lookupd_fetch_result_clear),
    lookupd_fetch_destroy.
*/
#ifndef LOOKUPD_FETCH_H
#define LOOKUPD_FETCH_H

#include <czmq.h>
#include <stdbool.h>

#include "nsq_http_client.h"
#include <stddef.h>
#include <stdint.h>

#define LOOKUPD_FETCH_BODY_MAX (64 * 1024 * 1024)  // bytes of one answer we keep

typedef struct _lookupd_fetch_t lookupd_fetch_t;

typedef struct {
    const char *method;  // "GET" or "POST" (POST sends an empty body)
    const char *url;     // "http://host:port/path?query"
    int timeout_ms;      // whole request, connection included
} lookupd_fetch_request_t;

typedef struct {
    uint64_t job;     // as submitted
    bool done;        // the job's last message: every request was reported
    size_t index;     // the request within the job (not set when done)
    long status;      // HTTP status, 0 if no answer came
    char error[256];  // why, when status is 0
    char *body;       // the answer, NUL-terminated; owned by the result
    size_t size;      // its bytes
} lookupd_fetch_result_t;

// Starts the thread. A program calls curl_global_init in main before it
// starts threads (this calls it once more if not, from the calling
// thread). auth_secret (NULL or "": none) goes with every request as
// "Authorization: Bearer", for brokers with --auth-http-address (other
// lookupds ignore it). tls (NULL: none; strings copied) applies to https://
// URLs: the CA to trust and a client certificate. Caller owns the result;
// NULL if out of memory.
lookupd_fetch_t *lookupd_fetch_new(const char *auth_secret, const nsq_http_client_tls_t *tls);

// Stops the thread, abandoning requests in progress, and nulls *self_p;
// accepts NULL. Results not read yet are dropped.
void lookupd_fetch_destroy(lookupd_fetch_t **self_p);

// Submits count requests (strings copied) as job. Returns 0, or -1 if the
// job could not be sent (out of memory).
int lookupd_fetch_submit(lookupd_fetch_t *self, uint64_t job,
                         const lookupd_fetch_request_t *requests, size_t count);

// Readable when a result is waiting. Borrowed.
zsock_t *lookupd_fetch_sock(lookupd_fetch_t *self);

// Reads one result into *result (clear it with lookupd_fetch_result_clear).
// Returns 0, or -1 if nothing valid was waiting.
int lookupd_fetch_recv(lookupd_fetch_t *self, lookupd_fetch_result_t *result);

// Frees what a result owns; accepts a cleared result.
void lookupd_fetch_result_clear(lookupd_fetch_result_t *result);

// Self-test; returns 0 on success.
int lookupd_fetch_test(void);

#endif
