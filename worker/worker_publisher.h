/*  worker_publisher - publish handlers' output without blocking the loop
    SPDX-License-Identifier: MIT

    For pipelines (--publish-topic): each output goes to the broker its
    input came from, and the runtime FINs the input only once that broker
    acknowledged the output (in durable mode: once it is on disk), so a
    crash between the two can duplicate the output but never lose it.

    One DEALER socket per broker endpoint, read by a reader on the worker's
    zloop. Every publish is a Pub command with its own seq; the broker's
    Response or Error echoes it, and the publish's callback runs with the
    result. Publishes still unanswered after the timeout fail with
    E_TIMEOUT and their socket is replaced, so nothing reported failed is
    delivered later by a queue nobody watches.

    API in call order: worker_publisher_new, worker_publisher_send (its
    callback comes later, from the loop), worker_publisher_tick (from a
    periodic timer), worker_publisher_destroy.
*/
#ifndef WORKER_PUBLISHER_H
#define WORKER_PUBLISHER_H

#include "nsq.h"
#include "nsq_curve.h"

#include <stddef.h>
#include <stdint.h>

// A publish's result: error is NULL once the broker acknowledged it, else
// the broker's code ("E_BAD_MESSAGE", ...) or "E_TIMEOUT" (borrowed).
typedef void(worker_published_fn)(void *arg, const char *error);

typedef struct _worker_publisher_t worker_publisher_t;

// A publisher on loop; publishes wait timeout_ms at most for their answer.
// NULL if out of memory. Caller owns the result.
worker_publisher_t *worker_publisher_new(zloop_t *loop, int64_t timeout_ms);

// CURVE keys for the links opened from now on (copied).
void worker_publisher_set_curve(worker_publisher_t *self, const nsq_curve_client_t *curve);

// Destroys *self_p and nulls it; accepts NULL. Publishes still unanswered
// are dropped without their callback.
// The secret sent (as an Auth command) at the start of each session with a
// broker (--auth-secret). Copied; NULL or "" forgets it; set it before the
// first send.
void worker_publisher_set_auth_secret(worker_publisher_t *self, const char *secret);

void worker_publisher_destroy(worker_publisher_t **self_p);

// Publishes size bytes of body (copied) to topic on broker ("tcp://host:port",
// as nsq_msg_broker gives it); done(arg, ...) runs once the broker answers
// or the timeout passes, never from inside this call. Returns 0, or -1 with
// errno (EINVAL malformed broker, EAGAIN the broker's queue is full,
// ENOMEM): done is then never called.
int worker_publisher_send(worker_publisher_t *self, const char *broker, const char *topic,
                          const void *body, size_t size, worker_published_fn *done, void *arg);

// Fails publishes older than the timeout at now (zclock_mono ms).
void worker_publisher_tick(worker_publisher_t *self, int64_t now);

// Publishes sent and not yet answered.
size_t worker_publisher_pending(worker_publisher_t *self);

// Self-test against a fake broker; returns 0 on success.
int worker_publisher_test(void);

#endif
