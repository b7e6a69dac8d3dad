/*  selftest - runs one class's self-test by name: `selftest nsq_message`
    SPDX-License-Identifier: MIT

    meson registers one test per name (suite 'unit'), so a failure names its
    class. Exit codes: 0 passed, 1 failed, 2 unknown name or bad usage.
    To add a class: include its header and add one line to s_tests.

    The binary is linked with --wrap=malloc,calloc,realloc (tests/meson.build)
    so that fault-injection tests can make every allocation of the code
    linked into it fail (libnsq.so and the system libraries are not wrapped).
*/
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "broker_admission.h"
#include "broker_auth.h"
#include "broker_buffer.h"
#include "broker_channel.h"
#include "broker_client.h"
#include "broker_disk.h"
#include "broker_http.h"
#include "broker_inflight.h"
#include "broker_mpub.h"
#include "broker_pump.h"
#include "broker_queue.h"
#include "broker_server.h"
#include "broker_state.h"
#include "broker_tcp.h"
#include "broker_tcp_codec.h"
#include "broker_tcp_identify.h"
#include "broker_tcp_io.h"
#include "broker_tcp_snappy.h"
#include "broker_tcp_stream.h"
#include "broker_tls.h"
#include "broker_topic.h"
#include "broker_zmq_peer.h"
#include "lookupd.h"
#include "lookupd_assets.h"
#include "lookupd_cluster.h"
#include "lookupd_fetch.h"
#include "lookupd_history.h"
#include "lookupd_jobs.h"
#include "lookupd_registry.h"
#include "nsq_arena.h"
#include "nsq_connection.h"
#include "nsq_crc32c.h"
#include "nsq_curve.h"
#include "nsq_credit.h"
#include "nsq_daemon.h"
#include "nsq_deadletter.h"
#include "nsq_discovery.h"
#include "nsq_diskio.h"
#include "nsq_diskqueue.h"
#include "nsq_address.h"
#include "nsq_duration.h"
#include "nsq_endpoint.h"
#include "nsq_http.h"
#include "nsq_http_client.h"
#include "nsq_http_server.h"
#include "nsq_json.h"
#include "nsq_log.h"
#include "nsq_message.h"
#include "nsq_msg.h"
#include "nsq_names.h"
#include "nsq_secret.h"
#include "nsq_options.h"
#include "nsq_peer.h"
#include "nsq_selftest.h"
#include "nsq_utf8.h"
#include "nsq_wire.h"
#include "nsq_wire_messages.h"
#include "worker.h"
#include "worker_backoff.h"
#include "worker_frame.h"
#include "worker_handler.h"
#include "worker_http.h"
#include "worker_metrics.h"
#include "worker_publisher.h"

// ---- allocation failure on demand ----

static bool s_allocations_fail;  // set by a test around the code under test

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *pointer, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_realloc(void *pointer, size_t size);

void *__wrap_malloc(size_t size)
{
    return s_allocations_fail ? (errno = ENOMEM, NULL) : __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size)
{
    return s_allocations_fail ? (errno = ENOMEM, NULL) : __real_calloc(count, size);
}

void *__wrap_realloc(void *pointer, size_t size)
{
    return s_allocations_fail ? (errno = ENOMEM, NULL) : __real_realloc(pointer, size);
}

static void s_fail_allocations(bool fail)
{
    s_allocations_fail = fail;
}

// The channel's self-test, then its removal under allocation failure.
static int s_broker_channel_test(void)
{
    return broker_channel_test() || broker_channel_test_out_of_memory(s_fail_allocations);
}

typedef struct {
    const char *name;   // what meson passes, the class name
    int (*test)(void);  // returns 0 on success
} selftest_t;

static const selftest_t s_tests[] = {
    {"broker", broker_test},
    {"broker_admission", broker_admission_test},
    {"broker_auth", broker_auth_test},
    {"broker_auth_grant", broker_auth_grant_test},
    {"broker_two_brokers", broker_test_two_brokers},
    {"broker_two_brokers_curve", broker_test_two_brokers_curve},
    {"broker_buffer", broker_buffer_test},
    {"broker_channel", s_broker_channel_test},
    {"broker_client", broker_client_test},
    {"broker_disk", broker_disk_test},
    {"broker_http", broker_http_test},
    {"broker_inflight", broker_inflight_test},
    {"broker_mpub", broker_mpub_test},
    {"broker_queue", broker_queue_test},
    {"broker_server", broker_server_test},
    {"broker_state", broker_state_test},
    {"broker_tcp_codec", broker_tcp_codec_test},
    {"broker_tcp_identify", broker_tcp_identify_test},
    {"broker_tcp_io", broker_tcp_io_test},
    {"broker_tcp", broker_tcp_test},
    {"broker_tcp_snappy", broker_tcp_snappy_test},
    {"broker_tcp_stream", broker_tcp_stream_test},
    {"broker_tls", broker_tls_test},
    {"broker_topic", broker_topic_test},
    {"broker_pump", broker_pump_test},
    {"broker_zmq_peer", broker_zmq_peer_test},
    {"lookupd", lookupd_test},
    {"lookupd_registry", lookupd_registry_test},
    {"lookupd_assets", lookupd_assets_test},
    {"lookupd_fetch", lookupd_fetch_test},
    {"lookupd_history", lookupd_history_test},
    {"lookupd_jobs", lookupd_jobs_test},
    {"lookupd_cluster", lookupd_cluster_test},
    {"nsq_arena", nsq_arena_test},
    {"nsq_connection", nsq_connection_test},
    {"nsq_consumer", nsq_consumer_test},
    {"nsq_credit", nsq_credit_test},
    {"nsq_crc32c", nsq_crc32c_test},
    {"nsq_daemon", nsq_daemon_test},
    {"nsq_deadletter", nsq_deadletter_test},
    {"nsq_discovery", nsq_discovery_test},
    {"nsq_diskio", nsq_diskio_test},
    {"nsq_diskqueue", nsq_diskqueue_test},
    {"nsq_address", nsq_address_test},
    {"nsq_duration", nsq_duration_test},
    {"nsq_endpoint", nsq_endpoint_test},
    {"nsq_http", nsq_http_test},
    {"nsq_http_server", nsq_http_server_test},
    {"nsq_http_client", nsq_http_client_test},
    {"nsq_secret", nsq_secret_test},
    {"nsq_curve", nsq_curve_test},
    {"nsq_json", nsq_json_test},
    {"nsq_log", nsq_log_test},
    {"nsq_message", nsq_message_test},
    {"nsq_msg", nsq_msg_test},
    {"nsq_names", nsq_names_test},
    {"nsq_options", nsq_options_test},
    {"nsq_peer", nsq_peer_test},
    {"nsq_producer", nsq_producer_test},
    {"nsq_utf8", nsq_utf8_test},
    {"nsq_wire", nsq_wire_test},
    {"nsq_wire_messages", nsq_wire_messages_test},
    {"worker", worker_test},
    {"worker_backoff", worker_backoff_test},
    {"worker_frame", worker_frame_test},
    {"worker_handler_file", worker_handler_file_test},
    {"worker_http", worker_http_test},
    {"worker_metrics", worker_metrics_test},
    {"worker_publisher", worker_publisher_test},
};

#define TEST_COUNT (sizeof(s_tests) / sizeof(s_tests[0]))

static void s_usage(FILE *out)
{
    fprintf(out, "usage: selftest NAME | --list\nnames:");
    for (size_t index = 0; index < TEST_COUNT; index++)
        fprintf(out, " %s", s_tests[index].name);
    fprintf(out, "\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t index = 0; index < TEST_COUNT; index++)
            printf("%s\n", s_tests[index].name);
        return 0;
    }
    if (argc != 2) {
        s_usage(stderr);
        return 2;
    }
    for (size_t index = 0; index < TEST_COUNT; index++) {
        if (strcmp(argv[1], s_tests[index].name) == 0) {
            if (s_tests[index].test() == 0)
                return 0;
            printf("%s: FAILED\n", argv[1]);
            return 1;
        }
    }
    fprintf(stderr, "selftest: unknown test '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
