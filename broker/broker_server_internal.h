/*  broker_server_internal - the core's state, for the files that carry
    out its operations (broker_server.c, broker_server_admit.c,
    broker_server_each.c); nothing outside the server includes it
    SPDX-License-Identifier: MIT
*/
#ifndef BROKER_SERVER_INTERNAL_H
#define BROKER_SERVER_INTERNAL_H

#include <czmq.h>

#include "broker_admission.h"
#include "broker_pump.h"
#include "broker_server.h"

struct _broker_server_t {
    broker_config_t config;       // settings, read-only after start
    broker_server_hooks_t hooks;  // what the server calls out to
    zhashx_t *topics;             // name -> broker_topic_t, owned (freed by hand)
    broker_pump_t *pump;          // the topics whose held messages can move on now
    zhashx_t *dirty;              // durable: names of the topics published to since the
                                  // last group commit began (values unused); else NULL
    zlistx_t *clients;            // broker_client_t, owned
    broker_counters_t counters;   // what the doors count
    uint64_t last_id;             // last message id handed out
    uint64_t ids_reserved;        // ids below this may be in use (the state file has it)
    int64_t start_time;           // unix seconds
    bool draining;                // no new deliveries
    int64_t files_logged_ms;      // monotonic ms of the last "out of file descriptors" line
    broker_auth_t *auth;          // the auth server client (borrowed); NULL: no auth

    broker_admission_t *admission;  // publishes admitted on other threads (owned)
};

// Gives each message an id and the current timestamp (ids grow, also
// across restarts: see broker_server.c). Core thread only.
void broker_server_stamp(broker_server_t *self, nsq_message_t **messages, size_t count);

#endif
