/*  lookupd_config - nsq-lookupd's settings: the struct, its options table, its defaults
    SPDX-License-Identifier: MIT
*/
#include "lookupd_config.h"

#include <assert.h>
#include <string.h>

#include "nsq_address.h"
#include "nsq_curve.h"

#define DAY_MS (24LL * 3600 * 1000)

const nsq_option_spec_t lookupd_config_options[] = {
    {"http-address", NSQ_OPTION_STRING, "0.0.0.0:4161", 0, 0, false,
     "HOST:PORT for the HTTP API (port 0 picks a free port)",
     NSQ_OPTION_FIELD(lookupd_config_t, http_address)},
    {"zmq-address", NSQ_OPTION_STRING, "0.0.0.0:4160", 0, 0, false,
     "HOST:PORT where brokers register (port 0 picks a free port)",
     NSQ_OPTION_FIELD(lookupd_config_t, zmq_address)},
    {"broadcast-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "address of this lookupd reported by /info (default: hostname)",
     NSQ_OPTION_FIELD(lookupd_config_t, broadcast_address)},
    {"inactive-producer-timeout", NSQ_OPTION_DURATION, "300s", 100, DAY_MS, false,
     "forget a broker that sent nothing for this long",
     NSQ_OPTION_FIELD(lookupd_config_t, inactive_producer_timeout_ms)},
    {"tombstone-lifetime", NSQ_OPTION_DURATION, "45s", 1, DAY_MS, false,
     "how long a tombstoned producer stays hidden from /lookup",
     NSQ_OPTION_FIELD(lookupd_config_t, tombstone_lifetime_ms)},
    {"stats-interval", NSQ_OPTION_DURATION, "5s", 0, 3600000, false,
     "console: how often every broker's /stats is polled (0 = never: no depths, no history)",
     NSQ_OPTION_FIELD(lookupd_config_t, stats_interval_ms)},
    {"history-window", NSQ_OPTION_DURATION, "1h", 1000, DAY_MS, false,
     "console: how much history is kept per topic and channel (at most 240 points each)",
     NSQ_OPTION_FIELD(lookupd_config_t, history_window_ms)},
    {"history-max-bytes", NSQ_OPTION_SIZE, "64m", 0, 1LL << 40, false,
     "console: memory bound of the history; past it stale series go, then new ones are refused "
     "(0 = no history)",
     NSQ_OPTION_FIELD(lookupd_config_t, history_max_bytes)},
    {"peer-http-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "console: another lookupd's HTTP host:port, listed and checked, and told of topic "
     "creations, deletions and tombstones (repeatable)",
     NSQ_OPTION_LIST(lookupd_config_t, peers, peer_count)},
    NSQ_HTTP_TLS_OPTION_ROWS(lookupd_config_t, ),
    NSQ_CURVE_SERVER_OPTION_ROWS(lookupd_config_t, ),
    {"zmq-curve-broker-key-file", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "console: CURVE towards brokers (dead-letter replays and samples): their public "
     "certificate (this lookupd's key pair is --zmq-curve-secret-key-file)",
     NSQ_OPTION_FIELD(lookupd_config_t, zmq_curve_broker_key_file)},
    {"auth-secret", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "console: secret sent to brokers with --auth-http-address (Authorization: Bearer) for "
     "their /stats and the console's actions; it needs admin there. Prefer "
     "NSQ_LOOKUPD_AUTH_SECRET: the flag's value is blanked from the command line",
     NSQ_OPTION_FIELD(lookupd_config_t, auth_secret)},
    {"http-client-tls-root-ca-file", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "console: PEM CA certificates brokers' (and peers') HTTPS certificates must chain to "
     "(default: the system's); a broker that announces an HTTPS port is polled there",
     NSQ_OPTION_FIELD(lookupd_config_t, http_client_tls_root_ca_file)},
    {"http-client-tls-cert", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "console: client certificate (PEM) for brokers with --tls-client-auth-policy",
     NSQ_OPTION_FIELD(lookupd_config_t, http_client_tls_cert)},
    {"http-client-tls-key", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "console: the client certificate's key (PEM, mode 0600)",
     NSQ_OPTION_FIELD(lookupd_config_t, http_client_tls_key)},
    {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "debug, info, warn or error",
     NSQ_OPTION_NO_FIELD},
    {"log-json", NSQ_OPTION_BOOL, "false", 0, 0, false, "log one JSON object per line",
     NSQ_OPTION_NO_FIELD},
};

const size_t lookupd_config_option_count =
    sizeof lookupd_config_options / sizeof *lookupd_config_options;

void lookupd_config_defaults(lookupd_config_t *config)
{
    memset(config, 0, sizeof *config);
    int rc =
        nsq_options_store_defaults(lookupd_config_options, lookupd_config_option_count, config);
    assert(rc == 0);  // the table is ours: a bad one is a bug, caught by every test
    (void) rc;
    lookupd_config_default_broadcast(config);
}

void lookupd_config_default_broadcast(lookupd_config_t *config)
{
    if (!config->broadcast_address[0])
        nsq_address_hostname(config->broadcast_address, sizeof config->broadcast_address);
}
