/*  lookupd_config - nsq-lookupd's settings: the struct, its options table, its defaults
    SPDX-License-Identifier: MIT

    Each option of lookupd_config_options names the field it fills, so the
    table is the one place an option and its default are written: the
    program parses it (main.c), lookupd_config_defaults applies its
    defaults alone (for tests that build a config by hand).

    API: lookupd_config_options, lookupd_config_defaults,
    lookupd_config_default_broadcast.
*/
#ifndef LOOKUPD_CONFIG_H
#define LOOKUPD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "nsq_options.h"

#define LOOKUPD_ADDRESS_MAX 256

typedef struct {
    char http_address[LOOKUPD_ADDRESS_MAX];       // host:port for HTTP; port 0 = any
    char zmq_address[LOOKUPD_ADDRESS_MAX];        // host:port for brokers; port 0 = any
    char broadcast_address[LOOKUPD_ADDRESS_MAX];  // reported by /info
    int64_t inactive_producer_timeout_ms;         // forget a broker silent this long
    int64_t tombstone_lifetime_ms;                // how long a tombstone hides a producer
} lookupd_config_t;

// nsq-lookupd's options: one row per flag, with its default and its field.
extern const nsq_option_spec_t lookupd_config_options[];
extern const size_t lookupd_config_option_count;

// Fills config with the defaults of lookupd_config_options (NSQ's: 300s and
// 45s), zeroes the rest, and sets the broadcast address to the hostname.
void lookupd_config_defaults(lookupd_config_t *config);

// Sets an empty broadcast address to the hostname ("localhost" if none).
void lookupd_config_default_broadcast(lookupd_config_t *config);

#endif
