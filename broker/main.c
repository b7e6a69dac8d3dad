/*  nsq-broker - holds topics and channels; HTTP publishes, ZeroMQ consumers
    SPDX-License-Identifier: MIT

    A thin shell: options (flags and NSQ_BROKER_* environment), logging,
    start the broker actor, print the READY line, wait for SIGTERM/SIGINT,
    stop the actor, exit 0. Bad configuration or a failed start exits 1
    with one line on stderr.
*/
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "broker_config.h"
#include "nsq_daemon.h"
#include "nsq_log.h"
#include "nsq_options.h"

#define DAY_MS (24LL * 3600 * 1000)

static const nsq_option_spec_t s_options[] = {
    {"http-address", NSQ_OPTION_STRING, "0.0.0.0:4151", 0, 0, false,
     "HOST:PORT for the HTTP API (port 0 picks a free port)"},
    {"zmq-address", NSQ_OPTION_STRING, "0.0.0.0:4152", 0, 0, false,
     "HOST:PORT for ZeroMQ consumers and producers (port 0 picks a free port)"},
    {"broadcast-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "address other nodes dial to reach this broker (default: hostname)"},
    {"data-path", NSQ_OPTION_STRING, ".", 0, 0, false,
     "directory for queue data and metadata (created, mode 0700, if missing)"},
    {"lookupd-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "HOST:PORT of a lookupd ZeroMQ endpoint (repeatable)"},
    {"lookupd-heartbeat-interval", NSQ_OPTION_DURATION, "15s", 10, 3600000, false,
     "how often each lookupd hears from this broker (keep below its inactive timeout)"},
    {"mem-queue-size", NSQ_OPTION_INT, "10000", 0, 1000000000, false,
     "messages kept in memory per topic and per channel"},
    {"mem-queue-bytes", NSQ_OPTION_SIZE, "16777216", 0, 1LL << 40, false,
     "message body bytes kept in memory per topic and per channel (with --mem-queue-size, "
     "whichever binds first); the rest goes to disk"},
    {"max-bytes-per-file", NSQ_OPTION_SIZE, "104857600", 1024, 1LL << 40, false,
     "disk queue segment size"},
    {"sync-every", NSQ_OPTION_INT, "2500", 1, 1000000000, false,
     "disk queue writes between fsyncs"},
    {"sync-timeout", NSQ_OPTION_DURATION, "2s", 1, DAY_MS, false, "longest time between fsyncs"},
    {"durable", NSQ_OPTION_BOOL, "false", 0, 0, false,
     "acknowledge a publish only once it is on disk (group commit); also --sync-every=1"},
    {"msg-timeout", NSQ_OPTION_DURATION, "60s", 100, DAY_MS, false,
     "default time a consumer may hold a message"},
    {"max-msg-timeout", NSQ_OPTION_DURATION, "15m", 100, 7 * DAY_MS, false,
     "longest message timeout a consumer may ask for, and TOUCH's cap"},
    {"max-req-timeout", NSQ_OPTION_DURATION, "1h", 0, 30 * DAY_MS, false,
     "longest requeue delay and publish defer"},
    {"max-msg-size", NSQ_OPTION_SIZE, "1048576", 1, 1LL << 30, false, "largest message body"},
    {"max-body-size", NSQ_OPTION_SIZE, "5242880", 1, 1LL << 31, false,
     "largest /mpub or MPUB request body"},
    {"max-rdy-count", NSQ_OPTION_INT, "2500", 1, 1000000, false,
     "largest credit (RDY) a consumer may announce"},
    {"heartbeat-interval", NSQ_OPTION_DURATION, "30s", 100, 3600000, false,
     "default heartbeat interval; a client silent for two is dropped"},
    {"max-heartbeat-interval", NSQ_OPTION_DURATION, "60s", 100, 3600000, false,
     "longest heartbeat interval a client may ask for"},
    {"drain-timeout", NSQ_OPTION_DURATION, "2s", 0, 3600000, false,
     "on SIGTERM stop delivering and let consumers finish what they hold this long before the "
     "rest is written to disk for the next start (0 = at once)"},
    {"node-id", NSQ_OPTION_INT, "0", 0, 1023, false, "node number, part of every message id"},
    {"http-threads", NSQ_OPTION_INT, "2", 1, 64, false, "HTTP server threads"},
    {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "debug, info, warn or error"},
    {"log-json", NSQ_OPTION_BOOL, "false", 0, 0, false, "log one JSON object per line"},
};

static void s_copy(char *target, size_t size, const char *value)
{
    snprintf(target, size, "%s", value ? value : "");
}

// Creates the data path and its missing parents (mode 0700, as mkdir -p
// would) and checks that it is a writable directory. Returns 0, or -1
// with a reason in error.
static int s_data_path_ready(const char *path, char *error, size_t size)
{
    char partial[sizeof((broker_config_t *) 0)->data_path];
    snprintf(partial, sizeof partial, "%s", path);
    for (char *next = partial + 1; path[0]; next++) {
        if (*next != '/' && *next != '\0')
            continue;
        char kept = *next;
        *next = '\0';
        if (mkdir(partial, 0700) != 0 && errno != EEXIST)
            return snprintf(error, size, "cannot create --data-path %.400s: %s", partial,
                            strerror(errno)),
                   -1;
        *next = kept;
        if (kept == '\0')
            break;
    }
    struct stat status;
    if (stat(path, &status) != 0 || !S_ISDIR(status.st_mode) || access(path, W_OK) != 0)
        return snprintf(error, size, "--data-path %.400s is not a writable directory", path), -1;
    return 0;
}

// Fills config from parsed options. Returns 0, or -1 with a reason.
static int s_configure(nsq_options_t *options, void *config_p, char *error, size_t size)
{
    broker_config_t *config = config_p;
    broker_config_defaults(config);
    s_copy(config->http_address, sizeof config->http_address,
           nsq_options_string(options, "http-address"));
    s_copy(config->zmq_address, sizeof config->zmq_address,
           nsq_options_string(options, "zmq-address"));
    if (nsq_options_is_set(options, "broadcast-address"))
        s_copy(config->broadcast_address, sizeof config->broadcast_address,
               nsq_options_string(options, "broadcast-address"));
    s_copy(config->data_path, sizeof config->data_path, nsq_options_string(options, "data-path"));
    config->mem_queue_size = nsq_options_int(options, "mem-queue-size");
    config->mem_queue_bytes = nsq_options_int(options, "mem-queue-bytes");
    config->max_bytes_per_file = nsq_options_int(options, "max-bytes-per-file");
    config->sync_every = nsq_options_int(options, "sync-every");
    config->sync_timeout_ms = nsq_options_int(options, "sync-timeout");
    config->durable = nsq_options_bool(options, "durable") || config->sync_every == 1;
    config->msg_timeout_ms = nsq_options_int(options, "msg-timeout");
    config->max_msg_timeout_ms = nsq_options_int(options, "max-msg-timeout");
    config->max_req_timeout_ms = nsq_options_int(options, "max-req-timeout");
    config->max_msg_size = nsq_options_int(options, "max-msg-size");
    config->max_body_size = nsq_options_int(options, "max-body-size");
    config->max_rdy_count = nsq_options_int(options, "max-rdy-count");
    config->heartbeat_interval_ms = nsq_options_int(options, "heartbeat-interval");
    config->max_heartbeat_interval_ms = nsq_options_int(options, "max-heartbeat-interval");
    config->drain_timeout_ms = nsq_options_int(options, "drain-timeout");
    config->node_id = nsq_options_int(options, "node-id");
    config->http_threads = (int) nsq_options_int(options, "http-threads");
    config->lookupd_heartbeat_ms = nsq_options_int(options, "lookupd-heartbeat-interval");
    size_t lookupds = nsq_options_count(options, "lookupd-address");
    if (lookupds > BROKER_LOOKUPD_MAX)
        return snprintf(error, size, "at most %d --lookupd-address values", BROKER_LOOKUPD_MAX), -1;
    for (size_t i = 0; i < lookupds; i++) {
        const char *address = nsq_options_string_at(options, "lookupd-address", i);
        const char *colon = strrchr(address, ':');
        if (!colon || colon == address || !colon[1]
            || strspn(colon + 1, "0123456789") != strlen(colon + 1))
            return snprintf(error, size, "--lookupd-address %.300s is not HOST:PORT", address), -1;
        s_copy(config->lookupd_addresses[config->lookupd_count++],
               sizeof config->lookupd_addresses[0], address);
    }
    if (config->msg_timeout_ms > config->max_msg_timeout_ms)
        return snprintf(error, size, "--msg-timeout is above --max-msg-timeout"), -1;
    if (config->max_msg_size > config->max_body_size)
        return snprintf(error, size, "--max-msg-size is above --max-body-size"), -1;
    if (config->mem_queue_bytes > 0 && config->mem_queue_bytes < config->max_msg_size)
        return snprintf(error, size,
                        "--mem-queue-bytes is below --max-msg-size (0 keeps nothing in memory)"),
               -1;
    return s_data_path_ready(config->data_path, error, size);
}

int main(int argc, char **argv)
{
    broker_config_t config;
    int exit_code = nsq_daemon_configure("nsq-broker", "NSQ_BROKER", s_options,
                                         sizeof s_options / sizeof *s_options, argc, argv,
                                         s_configure, &config);
    if (exit_code >= 0)
        return exit_code;
    return nsq_daemon_run(broker_actor, &config, config.http_address, config.zmq_address);
}
