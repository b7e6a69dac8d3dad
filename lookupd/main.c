/*  nsq-lookupd - which brokers hold which topics: brokers register over
    ZeroMQ, consumers and tools ask over HTTP
    SPDX-License-Identifier: MIT

    A thin shell: options (flags and NSQ_LOOKUPD_* environment), logging,
    start the lookupd actor, print the READY line, wait for SIGTERM/SIGINT,
    stop the actor, exit 0. Bad configuration or a failed start exits 1 with
    one line on stderr.
*/
#include <czmq.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "lookupd.h"
#include "nsq_daemon.h"
#include "nsq_log.h"
#include "nsq_options.h"

#define DAY_MS (24LL * 3600 * 1000)

static const nsq_option_spec_t s_options[] = {
    {"http-address", NSQ_OPTION_STRING, "0.0.0.0:4161", 0, 0, false,
     "HOST:PORT for the HTTP API (port 0 picks a free port)"},
    {"zmq-address", NSQ_OPTION_STRING, "0.0.0.0:4160", 0, 0, false,
     "HOST:PORT where brokers register (port 0 picks a free port)"},
    {"broadcast-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "address of this lookupd reported by /info (default: hostname)"},
    {"inactive-producer-timeout", NSQ_OPTION_DURATION, "300s", 100, DAY_MS, false,
     "forget a broker that sent nothing for this long"},
    {"tombstone-lifetime", NSQ_OPTION_DURATION, "45s", 1, DAY_MS, false,
     "how long a tombstoned producer stays hidden from /lookup"},
    {"stats-interval", NSQ_OPTION_DURATION, "5s", 0, 3600000, false,
     "console: how often every broker's /stats is polled (0 = never: no depths, no history)"},
    {"history-window", NSQ_OPTION_DURATION, "1h", 1000, DAY_MS, false,
     "console: how much history is kept per topic and channel (at most 240 points each)"},
    {"history-max-bytes", NSQ_OPTION_SIZE, "64m", 0, 1LL << 40, false,
     "console: memory bound of the history; past it stale series go, then new ones are refused "
     "(0 = no history)"},
    {"peer-http-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "console: another lookupd's HTTP host:port, listed and checked, and told of topic "
     "creations, deletions and tombstones (repeatable)"},
    {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "debug, info, warn or error"},
    {"log-json", NSQ_OPTION_BOOL, "false", 0, 0, false, "log one JSON object per line"},
};

static void s_copy(char *target, size_t size, const char *value)
{
    snprintf(target, size, "%s", value ? value : "");
}

// Fills config from parsed options. Returns 0, or -1 with a reason.
static int s_configure(nsq_options_t *options, void *config_p, char *error, size_t size)
{
    lookupd_config_t *config = config_p;
    lookupd_config_defaults(config);
    s_copy(config->http_address, sizeof config->http_address,
           nsq_options_string(options, "http-address"));
    s_copy(config->zmq_address, sizeof config->zmq_address,
           nsq_options_string(options, "zmq-address"));
    if (nsq_options_is_set(options, "broadcast-address"))
        s_copy(config->broadcast_address, sizeof config->broadcast_address,
               nsq_options_string(options, "broadcast-address"));
    config->inactive_producer_timeout_ms = nsq_options_int(options, "inactive-producer-timeout");
    config->tombstone_lifetime_ms = nsq_options_int(options, "tombstone-lifetime");
    config->stats_interval_ms = nsq_options_int(options, "stats-interval");
    config->history_window_ms = nsq_options_int(options, "history-window");
    config->history_max_bytes = (size_t) nsq_options_int(options, "history-max-bytes");
    config->peer_count = nsq_options_count(options, "peer-http-address");
    if (config->peer_count > LOOKUPD_PEERS_MAX)
        return snprintf(error, size, "at most %d --peer-http-address", LOOKUPD_PEERS_MAX), -1;
    for (size_t i = 0; i < config->peer_count; i++) {
        const char *peer = nsq_options_string_at(options, "peer-http-address", i);
        if (!strrchr(peer, ':'))
            return snprintf(error, size, "--peer-http-address %s is not HOST:PORT", peer), -1;
        s_copy(config->peers[i], sizeof config->peers[i], peer);
    }
    if (!strrchr(config->http_address, ':') || !strrchr(config->zmq_address, ':'))
        return snprintf(error, size, "--http-address and --zmq-address must be HOST:PORT"), -1;
    return 0;
}

int main(int argc, char **argv)
{
    lookupd_config_t config;
    int exit_code = nsq_daemon_configure("nsq-lookupd", "NSQ_LOOKUPD", s_options,
                                         sizeof s_options / sizeof *s_options, argc, argv,
                                         s_configure, &config);
    if (exit_code >= 0)
        return exit_code;
    // libcurl (the console's polls) is set up here, before any thread: its
    // TLS library keeps per-thread state for the thread that initialises it.
    curl_global_init(CURL_GLOBAL_DEFAULT);
    exit_code = nsq_daemon_run(lookupd_actor, &config, config.http_address, config.zmq_address);
    curl_global_cleanup();
    return exit_code;
}
