/*  broker_config - the broker's settings: the options table and its defaults
    SPDX-License-Identifier: MIT

    broker_config_options is the one place a broker option is written: its
    flag, default (nsqd's where nsqd has one), bounds, help and the field it
    fills. nsq-broker parses it (main.c); broker_config_defaults applies
    its defaults alone, for tests and code that build a config by hand.
*/
#include "broker_config.h"

#include <assert.h>
#include <string.h>

#include "nsq_address.h"
#include "nsq_curve.h"

#define DAY_MS (24LL * 3600 * 1000)

const nsq_option_spec_t broker_config_options[] = {
    {"http-address", NSQ_OPTION_STRING, "0.0.0.0:4151", 0, 0, false,
     "HOST:PORT for the HTTP API (port 0 picks a free port)",
     NSQ_OPTION_FIELD(broker_config_t, http_address)},
    {"zmq-address", NSQ_OPTION_STRING, "0.0.0.0:4152", 0, 0, false,
     "HOST:PORT for ZeroMQ consumers and producers (port 0 picks a free port)",
     NSQ_OPTION_FIELD(broker_config_t, zmq_address)},
    {"tcp-address", NSQ_OPTION_STRING, "0.0.0.0:4150", 0, 0, false,
     "HOST:PORT for NSQ TCP (protocol V2) clients: go-nsq, pynsq, nsqjs... (port 0 picks a free "
     "port; empty: off)",
     NSQ_OPTION_FIELD(broker_config_t, tcp_address)},
    {"deflate", NSQ_OPTION_BOOL, "true", 0, 0, false, "TCP clients may negotiate deflate",
     NSQ_OPTION_FIELD(broker_config_t, deflate)},
    {"max-deflate-level", NSQ_OPTION_INT, "6", 1, 9, false,
     "highest deflate level a TCP client may ask for",
     NSQ_OPTION_FIELD(broker_config_t, max_deflate_level)},
    {"snappy", NSQ_OPTION_BOOL, "true", 0, 0, false, "TCP clients may negotiate snappy",
     NSQ_OPTION_FIELD(broker_config_t, snappy)},
    {"output-buffer-timeout", NSQ_OPTION_DURATION, "250ms", 1, 3600000, false,
     "TCP: longest a message frame waits in a client's output buffer (default)",
     NSQ_OPTION_FIELD(broker_config_t, output_buffer_timeout_ms)},
    {"min-output-buffer-timeout", NSQ_OPTION_DURATION, "25ms", 1, 3600000, false,
     "TCP: shortest output_buffer_timeout a client may ask for",
     NSQ_OPTION_FIELD(broker_config_t, min_output_buffer_timeout_ms)},
    {"max-output-buffer-timeout", NSQ_OPTION_DURATION, "30s", 1, 3600000, false,
     "TCP: longest output_buffer_timeout a client may ask for",
     NSQ_OPTION_FIELD(broker_config_t, max_output_buffer_timeout_ms)},
    {"max-output-buffer-size", NSQ_OPTION_SIZE, "65536", 64, 1LL << 30, false,
     "TCP: largest output_buffer_size a client may ask for",
     NSQ_OPTION_FIELD(broker_config_t, max_output_buffer_size)},
    {"broadcast-address", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "address other nodes dial to reach this broker (default: hostname)",
     NSQ_OPTION_FIELD(broker_config_t, broadcast_address)},
    {"data-path", NSQ_OPTION_STRING, ".", 0, 0, false,
     "directory for queue data and metadata (created, mode 0700, if missing)",
     NSQ_OPTION_FIELD(broker_config_t, data_path)},
    {"lookupd-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "HOST:PORT of a lookupd ZeroMQ endpoint (repeatable)",
     NSQ_OPTION_LIST(broker_config_t, lookupd_addresses, lookupd_count)},
    {"lookupd-heartbeat-interval", NSQ_OPTION_DURATION, "15s", 10, 3600000, false,
     "how often each lookupd hears from this broker (keep below its inactive timeout)",
     NSQ_OPTION_FIELD(broker_config_t, lookupd_heartbeat_ms)},
    {"auth-http-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "HOST:PORT (or URL) of an auth server asked GET /auth?remote_ip=&tls=&secret=&common_name= "
     "as nsqd does (repeatable); set, every publish, subscribe, stats and admin request needs a "
     "secret the auth server grants",
     NSQ_OPTION_LIST(broker_config_t, auth_http_addresses, auth_http_count)},
    {"auth-http-timeout", NSQ_OPTION_DURATION, "5s", 10, 600000, false,
     "longest wait for one auth server's answer (connect included)",
     NSQ_OPTION_FIELD(broker_config_t, auth_http_timeout_ms)},
    {"mem-queue-size", NSQ_OPTION_INT, "10000", 0, 1000000000, false,
     "messages kept in memory per topic and per channel",
     NSQ_OPTION_FIELD(broker_config_t, mem_queue_size)},
    // 16 MiB: the count binds first for bodies up to ~1.6 KB (NSQ's
    // behaviour is kept for small messages), a queue of 1 MiB bodies holds
    // 16 of them instead of 10000, and a whole --max-body-size /mpub fits
    // in an empty memory-only queue.
    {"mem-queue-bytes", NSQ_OPTION_SIZE, "16777216", 0, 1LL << 40, false,
     "message body bytes kept in memory per topic and per channel (with --mem-queue-size, "
     "whichever binds first); the rest goes to disk",
     NSQ_OPTION_FIELD(broker_config_t, mem_queue_bytes)},
    {"max-bytes-per-file", NSQ_OPTION_SIZE, "104857600", 1024, 1LL << 40, false,
     "disk queue segment size", NSQ_OPTION_FIELD(broker_config_t, max_bytes_per_file)},
    {"sync-every", NSQ_OPTION_INT, "2500", 1, 1000000000, false, "disk queue writes between fsyncs",
     NSQ_OPTION_FIELD(broker_config_t, sync_every)},
    {"sync-timeout", NSQ_OPTION_DURATION, "2s", 1, DAY_MS, false, "longest time between fsyncs",
     NSQ_OPTION_FIELD(broker_config_t, sync_timeout_ms)},
    {"durable", NSQ_OPTION_BOOL, "false", 0, 0, false,
     "acknowledge a publish only once it is on disk (group commit); also --sync-every=1",
     NSQ_OPTION_FIELD(broker_config_t, durable)},
    {"msg-timeout", NSQ_OPTION_DURATION, "60s", 100, DAY_MS, false,
     "default time a consumer may hold a message",
     NSQ_OPTION_FIELD(broker_config_t, msg_timeout_ms)},
    {"max-msg-timeout", NSQ_OPTION_DURATION, "15m", 100, 7 * DAY_MS, false,
     "longest message timeout a consumer may ask for, and TOUCH's cap",
     NSQ_OPTION_FIELD(broker_config_t, max_msg_timeout_ms)},
    {"max-req-timeout", NSQ_OPTION_DURATION, "1h", 0, 30 * DAY_MS, false,
     "longest requeue delay and publish defer",
     NSQ_OPTION_FIELD(broker_config_t, max_req_timeout_ms)},
    {"max-msg-size", NSQ_OPTION_SIZE, "1048576", 1, 1LL << 30, false, "largest message body",
     NSQ_OPTION_FIELD(broker_config_t, max_msg_size)},
    {"max-body-size", NSQ_OPTION_SIZE, "5242880", 1, 1LL << 31, false,
     "largest /mpub or MPUB request body", NSQ_OPTION_FIELD(broker_config_t, max_body_size)},
    {"max-rdy-count", NSQ_OPTION_INT, "2500", 1, 1000000, false,
     "largest credit (RDY) a consumer may announce",
     NSQ_OPTION_FIELD(broker_config_t, max_rdy_count)},
    {"heartbeat-interval", NSQ_OPTION_DURATION, "30s", 100, 3600000, false,
     "default heartbeat interval; a client silent for two is dropped",
     NSQ_OPTION_FIELD(broker_config_t, heartbeat_interval_ms)},
    {"max-heartbeat-interval", NSQ_OPTION_DURATION, "60s", 100, 3600000, false,
     "longest heartbeat interval a client may ask for",
     NSQ_OPTION_FIELD(broker_config_t, max_heartbeat_interval_ms)},
    {"drain-timeout", NSQ_OPTION_DURATION, "2s", 0, 3600000, false,
     "on SIGTERM stop delivering and let consumers finish what they hold this long before the "
     "rest is written to disk for the next start (0 = at once)",
     NSQ_OPTION_FIELD(broker_config_t, drain_timeout_ms)},
    {"node-id", NSQ_OPTION_INT, "0", 0, 1023, false, "node number, part of every message id",
     NSQ_OPTION_FIELD(broker_config_t, node_id)},
    {"http-threads", NSQ_OPTION_INT, "2", 1, 64, false, "HTTP server threads",
     NSQ_OPTION_FIELD(broker_config_t, http_threads)},
    NSQ_HTTP_TLS_OPTION_ROWS(broker_config_t, ),
    NSQ_CURVE_SERVER_OPTION_ROWS(broker_config_t, ),
    {"zmq-curve-lookupd-key-file", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "CURVE towards lookupds: their public certificate (this broker's key pair is "
     "--zmq-curve-secret-key-file)",
     NSQ_OPTION_FIELD(broker_config_t, zmq_curve_lookupd_key_file)},
    {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "debug, info, warn or error",
     NSQ_OPTION_NO_FIELD},
    {"log-json", NSQ_OPTION_BOOL, "false", 0, 0, false, "log one JSON object per line",
     NSQ_OPTION_NO_FIELD},
};

const size_t broker_config_option_count =
    sizeof broker_config_options / sizeof *broker_config_options;

void broker_config_defaults(broker_config_t *self)
{
    memset(self, 0, sizeof(*self));
    int rc = nsq_options_store_defaults(broker_config_options, broker_config_option_count, self);
    assert(rc == 0);  // the table is ours: a bad one is a bug, caught by every test
    (void) rc;
    broker_config_default_broadcast(self);
}

void broker_config_default_broadcast(broker_config_t *self)
{
    if (!self->broadcast_address[0])
        nsq_address_hostname(self->broadcast_address, sizeof self->broadcast_address);
}

void broker_config_for_test(broker_config_t *self, const char *data_path, int64_t mem_queue_size,
                            int64_t mem_queue_bytes)
{
    broker_config_defaults(self);
    snprintf(self->data_path, sizeof(self->data_path), "%s", data_path);
    snprintf(self->tcp_address, sizeof(self->tcp_address), "127.0.0.1:0");  // never 4150
    if (mem_queue_size)
        self->mem_queue_size = mem_queue_size;
    if (mem_queue_bytes)
        self->mem_queue_bytes = mem_queue_bytes;
}
