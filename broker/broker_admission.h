/*  broker_admission - publishing into existing topics from a door's own
    threads, without waiting for the core: room the core reserved up front
    SPDX-License-Identifier: MIT

    The core thread grants a topic credit: a number of messages and body
    bytes it has reserved in that topic's memory queue (broker_topic_reserve),
    so they will fit whatever happens next. A door's thread (an HTTP thread)
    offers a publish; if the topic holds enough credit, the messages are
    admitted at once: the credit is spent, the messages join the topic's
    pending list, and the door may answer 200 right away, truthfully: they
    are in the topic's queue, counted against its capacity. Without enough
    credit (an unknown topic, a burst, a full queue) the offer is refused
    and the door takes its usual path through the core.

    The core takes the pending messages in batches (it polls one
    descriptor, readable when a take is due: at the first offer after the
    core went idle, then every 500 us while offers keep coming,
    so a busy core is woken once per batch), adds them to their topics
    (broker_topic_admit) and tops the credit up. It revokes a
    topic's credit before the topic goes. Closing refuses every later
    offer; the core then takes what was admitted before.

    One lock guards the table of topics, their credit and pending lists,
    held for a hash lookup and an append. Messages cross threads under it,
    so their plain refcounts are safe. Nothing here knows topics or a wire:
    the core decides which topics get credit and how much.

    API in call order: broker_admission_new, broker_admission_fd,
    broker_admission_grant, broker_admission_offer (any thread),
    broker_admission_take, broker_admission_revoke, broker_admission_close,
    broker_admission_destroy.
*/
#ifndef BROKER_ADMISSION_H
#define BROKER_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nsq_message.h"

typedef struct _broker_admission_t broker_admission_t;

// Called by broker_admission_take for each topic with pending messages:
// count messages in admission order; the callee takes every reference
// (and nulls none: the array is reused after it returns).
typedef void(broker_admission_fn)(void *arg, const char *topic, nsq_message_t **messages,
                                  size_t count);

// Returns an empty admission (no topic has credit). Caller owns it; NULL
// if out of memory or no eventfd could be made.
broker_admission_t *broker_admission_new(void);

// Drops every pending message and frees self. Nulls *self_p; accepts NULL.
void broker_admission_destroy(broker_admission_t **self_p);

// Readable when a take is due (messages are pending, or the sweep after
// the last take is up; a take may find nothing): poll it in the core's
// loop. Borrowed.
int broker_admission_fd(broker_admission_t *self);

// Core thread: adds count messages and bytes body bytes of credit to topic
// (a valid name, copied). Returns 0, or -1 if out of memory or closed (the
// caller keeps its reservation).
int broker_admission_grant(broker_admission_t *self, const char *topic, uint64_t count,
                           uint64_t bytes);

// The credit topic holds now into *count and *bytes (0 if none), for the
// core's top-ups.
void broker_admission_credit(broker_admission_t *self, const char *topic, uint64_t *count,
                             uint64_t *bytes);

// Any thread: admits count messages (count >= 1, ids not yet set) into
// topic if it holds credit for all of them. Returns 0 when admitted (every
// reference moved; the caller's array entries are nulled), or -1 (nothing
// taken: no such topic, not enough credit, closed or out of memory).
int broker_admission_offer(broker_admission_t *self, const char *topic, nsq_message_t **messages,
                           size_t count);

// Core thread: calls fn(arg, topic, messages, count) for each topic with
// pending messages (fn may grant, not revoke). Returns how many messages
// it handed on.
size_t broker_admission_take(broker_admission_t *self, broker_admission_fn *fn, void *arg);

// Core thread: forgets topic: its pending messages are dropped and its
// credit is gone (the caller releases the reservation, if the topic
// stays). Call it before the topic is deleted.
void broker_admission_revoke(broker_admission_t *self, const char *topic);

// Any thread: refuses every later offer and grant. What was admitted
// before waits for broker_admission_take.
void broker_admission_close(broker_admission_t *self);

// Self-test; returns 0 on success.
int broker_admission_test(void);

#endif
