/*  nsq_fake_broker - a scripted broker for the client self-tests
    SPDX-License-Identifier: MIT

    Test code, not used by the library itself. A ROUTER on
    tcp://127.0.0.1:* in the test's own thread: while it waits for the next
    command it calls the test's poll function, which runs the client under
    test (a consumer, a connection) for a few milliseconds, so no second
    thread is needed. The test then answers as a broker would, or would
    not.

    API: nsq_fake_broker_new, _next, _expect, _send, _respond, _identified,
    _error, _heartbeat, _deliver, nsq_fake_broker_destroy; and
    nsq_fake_broker_read_pub for publishers on a router of their own.
*/
#ifndef NSQ_FAKE_BROKER_H
#define NSQ_FAKE_BROKER_H

#include "nsq_wire.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define NSQ_FAKE_BROKER_BATCH_MAX 64  // messages per nsq_fake_broker_deliver

typedef struct {
    zsock_t *router;    // the fake broker's socket
    char endpoint[64];  // where it listens, "127.0.0.1:PORT"
    zframe_t *peer;     // identity of the last command's sender
} nsq_fake_broker_t;

// Runs the client under test for up to timeout_ms.
typedef void(nsq_fake_broker_poll_fn)(void *arg, int timeout_ms);

// A fake broker listening on a free port. Caller owns the result; NULL if
// it cannot bind.
nsq_fake_broker_t *nsq_fake_broker_new(void);

// Nulls *self_p; accepts NULL.
void nsq_fake_broker_destroy(nsq_fake_broker_t **self_p);

// Runs poll(arg, 10) while waiting up to timeout_ms for the next command
// (skipping Heartbeats unless heartbeats is set). NULL on timeout. Caller
// frees (nsq__command__free_unpacked).
Nsq__Command *nsq_fake_broker_next(nsq_fake_broker_t *self, nsq_fake_broker_poll_fn *poll,
                                   void *arg, int timeout_ms, bool heartbeats);

// The next command within 3 s if it is of kind cmd_case (logged if not),
// else NULL. Caller frees.
Nsq__Command *nsq_fake_broker_expect(nsq_fake_broker_t *self, nsq_fake_broker_poll_fn *poll,
                                     void *arg, int cmd_case);

// Sends frame to the last sender.
void nsq_fake_broker_send(nsq_fake_broker_t *self, Nsq__Frame *frame);

// Sends Response{seq, text}.
void nsq_fake_broker_respond(nsq_fake_broker_t *self, uint64_t seq, const char *text);

// Answers IDENTIFY seq with "OK" and reply.
void nsq_fake_broker_identified(nsq_fake_broker_t *self, uint64_t seq,
                                const Nsq__IdentifyReply *reply);

// Sends Error{seq, code, fatal}.
void nsq_fake_broker_error(nsq_fake_broker_t *self, uint64_t seq, const char *code, bool fatal);

// Sends a Heartbeat.
void nsq_fake_broker_heartbeat(nsq_fake_broker_t *self);

// For publishers' self-tests, on any ROUTER: reads one message from router
// and answers a Pub with OK (adding its bodies to *accepted), topic "bad"
// with E_BAD_TOPIC, topic "silent" not at all.
void nsq_fake_broker_read_pub(zsock_t *router, size_t *accepted);

// Sends count (at most NSQ_FAKE_BROKER_BATCH_MAX) messages in one frame,
// ids first_id.., timestamps 1000.., attempts 1, bodies "message <id>".
void nsq_fake_broker_deliver(nsq_fake_broker_t *self, uint64_t first_id, size_t count);

#endif
