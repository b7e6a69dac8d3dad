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

#include "nsq_http_server.h"
#include "nsq_options.h"

#define LOOKUPD_ADDRESS_MAX 256
#define LOOKUPD_PEERS_MAX   16

typedef struct {
    char http_address[LOOKUPD_ADDRESS_MAX];              // host:port for HTTP; port 0 = any
    char zmq_address[LOOKUPD_ADDRESS_MAX];               // host:port for brokers; port 0 = any
    char broadcast_address[LOOKUPD_ADDRESS_MAX];         // reported by /info
    int64_t inactive_producer_timeout_ms;                // forget a broker silent this long
    int64_t tombstone_lifetime_ms;                       // how long a tombstone hides a producer
    int64_t stats_interval_ms;                           // console: poll brokers' /stats; 0 = never
    int64_t history_window_ms;                           // console: history kept
    size_t history_max_bytes;                            // console: its memory bound; 0 = none
    char peers[LOOKUPD_PEERS_MAX][LOOKUPD_ADDRESS_MAX];  // console: other lookupds' HTTP
    size_t peer_count;                                   // entries in peers
    NSQ_HTTP_TLS_FIELDS;                      // --https-address, --tls-* (nsq_http_server.h)
    char zmq_curve_secret_key_file[1024];     // CURVE server key pair ("" = no CURVE)
    char zmq_curve_allow_dir[1024];           // allowed brokers' public keys ("" = any)
    char zmq_curve_broker_key_file[1024];     // console: brokers' public certificate ("" = plain)
    char auth_secret[1024];                   // console: Bearer secret for brokers
    char http_client_tls_root_ca_file[1024];  // console: CA of brokers' HTTPS ("" = system's)
    char http_client_tls_cert[1024];          // console: client certificate for brokers, or ""
    char http_client_tls_key[1024];           // console: its key (mode 0600), or ""
} lookupd_config_t;

// nsq-lookupd's options: one row per flag, with its default and its field.
extern const nsq_option_spec_t lookupd_config_options[];
extern const size_t lookupd_config_option_count;

// Fills config with the defaults of lookupd_config_options (NSQ's: 300s and
// 45s; the console polls every 5 s and keeps an hour in at most 64 MiB),
// zeroes the rest, and sets the broadcast address to the hostname.
void lookupd_config_defaults(lookupd_config_t *config);

// Sets an empty broadcast address to the hostname ("localhost" if none).
void lookupd_config_default_broadcast(lookupd_config_t *config);

#endif
