/*  nsq_consumer_internal - the consumer's state, shared by the files that
    make up the class (not installed, not for other classes)
    SPDX-License-Identifier: MIT

    The class is split by job; each file starts with its own design
    comment:
        nsq_consumer.c          the set: creation, settings, connections,
                                credit, delivery, settling, the tick
        nsq_consumer_run.c      running the zloop (run, poll, stop), the
                                flush and break timers, close and drain
        nsq_consumer_lookupd.c  lookupd discovery: the poller, its TLS and
                                interval, connecting and dropping the
                                brokers it finds and loses
    Internal functions carry the consumer_ prefix; all run on the thread
    that owns the consumer.
*/
#ifndef NSQ_CONSUMER_INTERNAL_H
#define NSQ_CONSUMER_INTERNAL_H

#include "nsq.h"
#include "nsq_arena.h"
#include "nsq_connection.h"
#include "nsq_credit.h"
#include "nsq_discovery.h"
#include "nsq_msg.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct _nsq_consumer_t {
    char *topic;  // subscription
    char *channel;
    char *client_id;                     // announced in IDENTIFY
    char *auth_secret;                   // sent in IDENTIFY, never logged
    char hostname[256];                  // announced in IDENTIFY
    nsq_connection_settings_t settings;  // what every connection asks for
    nsq_handler_fn *handler;             // user's message handler
    void *handler_arg;
    uint32_t max_in_flight;          // total credit
    zloop_t *loop;                   // everything runs on it
    nsq_arena_t *arena;              // where frames are unpacked
    int flush_timer;                 // pending zero-delay flush, 0 if none
    int break_timer;                 // pending stop request, 0 if none
    nsq_connection_t **connections;  // live connections, in connect order
    nsq_credit_slot_t *credit;       // one per connection, same order
    size_t connection_count;         //
    size_t connection_capacity;      // of both arrays
    zlistx_t *addresses;             // interned endpoints, kept until destroy
    nsq_msg_list_t unsettled;        // handed-out messages
    uint64_t received;               // counters since creation
    uint64_t finished;               //
    uint64_t requeued;               //
    size_t rotation;                 // RDY rotation offset
    int64_t rotate_at;               // next rotation
    nsq_connection_t *reading;       // connection being read, NULL if none
    bool break_requested;            // leave the loop after this event
    bool polling;                    // nsq_consumer_poll: break after a delivery
    bool draining;                   // nsq_consumer_close: break once drained
    bool closing;                    // CLS sent: RDY 0, no reconnects
    nsq_discovery_t *discovery;      // lookupd poller, NULL until connect_lookupd
    char *lookupd_tls[3];            // https lookupds: CA file, client cert, key (NULL = unset)
    bool lookupd_answered;           // some lookupd answered a query (even "topic not found")
    uint32_t lookupd_poll_ms;        // poll interval, 0 = the default
};

// ---- nsq_consumer.c ----

// Gives each connection its share of max_in_flight (0 while closing) and
// announces RDY where the share changed.
void consumer_credit_update(nsq_consumer_t *self);

// Sends every connection's batched FIN/REQ/TOUCH now.
void consumer_flush_all(nsq_consumer_t *self);

// ---- nsq_consumer_run.c ----

// Stops and restarts self->loop once, so that zloop_timer_end removes
// timers at once from then on (it defers removal until a zloop stopped
// once). Called once, by nsq_consumer_new.
void consumer_loop_prime(nsq_consumer_t *self);

// Has settles made outside a read flushed at the start of the next loop
// pass (one zero-delay timer; none needed while reading, as the reader
// flushes when it is done).
void consumer_schedule_flush(nsq_consumer_t *self);

// During nsq_consumer_close, leaves the loop once drained: nothing handed
// out is unsettled and each connection answered CLS (or has no socket or
// no subscription yet).
void consumer_check_drained(nsq_consumer_t *self);

// ---- nsq_consumer_lookupd.c ----

// Stops the lookupd poller, if any, and frees the lookupd settings. For
// nsq_consumer_destroy.
void consumer_lookupd_destroy(nsq_consumer_t *self);

#endif
