/*  worker_deadletter - publishes the messages that failed for good to the
    dead-letter topic, on the broker each came from
    SPDX-License-Identifier: MIT

    A dead letter is the header nsq_deadletter.h describes (origin topic,
    channel, id and broker, attempts, when it was first seen and when it
    died, the handler's last failure) followed by the body. It goes to the
    dead-letter topic (--dead-letter-topic, by default "<topic>.dead") on
    the broker the message came from, through one nsq_producer per broker
    (made on first use, with the worker's CURVE keys and auth secret).

    API in call order: worker_deadletter_new, worker_deadletter_publish
    (repeat), worker_deadletter_destroy. Loop thread only.
*/
#ifndef WORKER_DEADLETTER_H
#define WORKER_DEADLETTER_H

#include "nsq.h"
#include "nsq_deadletter.h"
#include "worker.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct _worker_deadletter_t worker_deadletter_t;

// Resolves the dead-letter topic of config (borrowed: topic, channel,
// dead_letter_topic, the CURVE key files and auth_secret must outlive the
// result); curve says whether producers use config's CURVE keys; each
// publish waits up to timeout_ms for the broker's answer. Caller owns the
// result; NULL if out of memory, or (logged) if the topic is not a valid
// name.
worker_deadletter_t *worker_deadletter_new(const worker_config_t *config, bool curve,
                                           int64_t timeout_ms);

// Destroys the producers and nulls *self_p; accepts NULL.
void worker_deadletter_destroy(worker_deadletter_t **self_p);

// Publishes msg's dead letter (failure: why it failed last) and waits for
// the broker's answer. Returns 0 once the broker acknowledged it (a
// warning says where it went), -1 if it could not be built or published
// (logged): the caller then requeues msg. msg is not settled here.
int worker_deadletter_publish(worker_deadletter_t *self, nsq_msg_t *msg,
                              const nsq_failure_t *failure);

#endif
