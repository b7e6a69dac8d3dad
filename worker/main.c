/*  nsq-worker - consume a channel and hand each message to a handler
    SPDX-License-Identifier: MIT

    A thin shell over the worker runtime (worker.c): the options table
    (flags and NSQ_WORKER_* variables), logging, signals, exit code. One
    handler per process: --exec, --process, --http, --file or --stdout.

    Once its HTTP server listens and its broker connections are under way,
    it prints "READY http=HOST:PORT" on stderr (the port
    actually bound, useful with --http-address=127.0.0.1:0; "READY http=off"
    without an HTTP server) so scripts and tests can find /healthz, /readyz
    and /metrics.

    Exit codes: 0 after SIGTERM/SIGINT (drain up to --shutdown-timeout) or
    --max-messages; 1 when the handler breaks (stdout closed); 2 on bad
    configuration or startup failure.

    With --process, --max-in-flight defaults to at least --processes x
    --process-window, so that every window can be full.
*/
#include "nsq.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "nsq_options.h"
#include "worker.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const nsq_option_spec_t s_specs[] = {
    {"topic", NSQ_OPTION_STRING, NULL, 0, 0, false, "topic to consume (required)"},
    {"channel", NSQ_OPTION_STRING, NULL, 0, 0, false, "channel to consume (required)"},
    {"broker-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "broker ZeroMQ address host:port (repeat for several brokers)"},
    {"lookupd-http-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "lookupd HTTP address host:port to discover brokers (repeatable)"},
    {"lookupd-poll-interval", NSQ_OPTION_DURATION, "60s", 10, 3600000, false,
     "how often lookupds are asked for brokers (with jitter)"},
    {"max-in-flight", NSQ_OPTION_INT, "200", 1, 1000000, false,
     "messages in flight at once, spread across brokers"},
    {"stdout", NSQ_OPTION_BOOL, "false", 0, 0, false,
     "handler: write each body and a newline to stdout, then FIN"},
    {"heartbeat-interval", NSQ_OPTION_DURATION, "0", 0, 3600000, false,
     "heartbeat interval asked of brokers (0 = broker default)"},
    {"msg-timeout", NSQ_OPTION_DURATION, "0", 0, 3600000, false,
     "message timeout asked of brokers (0 = broker default); a broker whose --max-msg-timeout is "
     "lower gets its maximum instead, with a warning. Running handlers are TOUCHed at half the "
     "timeout each broker grants"},
    {"max-messages", NSQ_OPTION_INT, "0", 0, INT64_MAX, false,
     "exit after handling this many messages (0 = unlimited)"},
    {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "debug, info, warn or error"},
    {"exec", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "handler: run this /bin/sh command per message (body on stdin); exit 0 = FIN"},
    {"process", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "handler: keep --processes copies of this /bin/sh command running and hand them messages "
     "over stdin/stdout (the --process protocol, see README); they answer fin, req or touch"},
    {"processes", NSQ_OPTION_INT, "1", 1, 1024, false, "--process: how many processes"},
    {"process-window", NSQ_OPTION_INT, "32", 1, 100000, false,
     "--process: messages in flight per process (unless set, --max-in-flight is at least "
     "--processes x this)"},
    {"publish-topic", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "publish the handler's output (--process replies, --exec stdout, --http response bodies) "
     "to this topic on the broker the message came from, before the FIN; empty output publishes "
     "nothing, a refused publish means REQ"},
    {"max-output-size", NSQ_OPTION_SIZE, "1048576", 1, 1073741824, false,
     "largest handler output (--publish-topic; a --process reply announcing more is garbage); "
     "more fails the message"},
    {"http", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "handler: POST each body to this URL; 2xx = FIN, 4xx = FIN and log, else REQ"},
    {"file", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "handler: append each body and a newline to this file (its directory is created), fsync "
     "before FIN"},
    {"file-max-bytes", NSQ_OPTION_SIZE, "0", 0, 0, false,
     "rotate --file before a message that would take it beyond this (0 = never)"},
    {"file-rotate-interval", NSQ_OPTION_DURATION, "0", 0, 86400000, false,
     "rotate --file this often (0 = never)"},
    {"http-timeout", NSQ_OPTION_DURATION, "20s", 1, 3600000, false,
     "--http: one request at most this long, then REQ"},
    {"max-msg-timeout", NSQ_OPTION_DURATION, "15m", 0, 86400000, false,
     "--exec: kill a command running longer (SIGTERM, SIGKILL 2s later), then REQ; --process: "
     "a process holding messages that writes nothing (no answer, no touch) this long is "
     "restarted the same way and its messages REQed; 0 = never"},
    {"requeue-delay", NSQ_OPTION_DURATION, "90s", 0, 3600000, false,
     "REQ delay after a failure, times the attempt number"},
    {"max-requeue-delay", NSQ_OPTION_DURATION, "15m", 0, 3600000, false, "cap of the REQ delay"},
    {"max-attempts", NSQ_OPTION_INT, "5", 0, 65535, false,
     "after this many failed attempts, publish to the dead-letter topic and FIN (0 = never)"},
    {"dead-letter-topic", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "where failed messages go as dead letters (a JSON header line, then the body), on the "
     "broker they came from (default <topic>.dead)"},
    {"backoff", NSQ_OPTION_DURATION, "1s", 0, 3600000, false,
     "after a failure pause delivery this long, doubling per failure (0 = no backoff)"},
    {"max-backoff", NSQ_OPTION_DURATION, "2m", 0, 3600000, false, "longest backoff pause"},
    {"http-address", NSQ_OPTION_STRING, "0.0.0.0:4171", 0, 0, false,
     "/healthz, /readyz and /metrics on host:port (port 0 = any; empty = off); if the default "
     "is taken the worker warns and runs without them, a given address must be free"},
    {"shutdown-timeout", NSQ_OPTION_DURATION, "30s", 0, 3600000, false,
     "on SIGTERM let running handlers finish this long, then stop and requeue them (--process: "
     "the processes then read EOF; those still running at the timeout get SIGTERM)"},
};

static int s_handler_count(nsq_options_t *options)
{
    return nsq_options_is_set(options, "exec") + nsq_options_is_set(options, "process")
           + nsq_options_is_set(options, "http") + nsq_options_is_set(options, "file")
           + nsq_options_bool(options, "stdout");
}

// Checks what the option table cannot. Returns 0, or -1 with the reason.
static int s_check(nsq_options_t *options, char *error, size_t size)
{
    const char *topic = nsq_options_string(options, "topic");
    const char *channel = nsq_options_string(options, "channel");
    nsq_log_level_t level;
    if (!topic || !nsq_name_is_valid(topic))
        snprintf(error, size, topic ? "invalid --topic %s" : "--topic is required", topic);
    else if (!channel || !nsq_name_is_valid(channel))
        snprintf(error, size, channel ? "invalid --channel %s" : "--channel is required", channel);
    else if (nsq_options_count(options, "broker-address") == 0
             && nsq_options_count(options, "lookupd-http-address") == 0)
        snprintf(error, size, "--broker-address or --lookupd-http-address is required");
    else if (s_handler_count(options) != 1)
        snprintf(error, size,
                 "exactly one handler is required: --exec, --process, --http, --file or --stdout");
    else if (nsq_options_is_set(options, "publish-topic")
             && !nsq_name_is_valid(nsq_options_string(options, "publish-topic")))
        snprintf(error, size, "invalid --publish-topic %s",
                 nsq_options_string(options, "publish-topic"));
    else if (nsq_options_is_set(options, "publish-topic")
             && (nsq_options_is_set(options, "file") || nsq_options_bool(options, "stdout")))
        snprintf(error, size,
                 "--publish-topic needs a handler with output: --process, --exec or --http");
    else if (nsq_log_level_parse(nsq_options_string(options, "log-level"), &level))
        snprintf(error, size, "invalid --log-level %s", nsq_options_string(options, "log-level"));
    else {
        nsq_log_set_level(level);
        return 0;
    }
    return -1;
}

// --max-in-flight; with --process its default grows to fill every
// process's window (the rest waits in the worker, hiding the round trip to
// the broker).
static uint32_t s_max_in_flight(nsq_options_t *options)
{
    int64_t credit = nsq_options_int(options, "max-in-flight");
    if (nsq_options_is_set(options, "max-in-flight") || !nsq_options_is_set(options, "process"))
        return (uint32_t) credit;
    int64_t places =
        nsq_options_int(options, "processes") * nsq_options_int(options, "process-window");
    places = places < 1000000 ? places : 1000000;
    return (uint32_t) (places > credit ? places : credit);
}

static worker_config_t s_config(nsq_options_t *options)
{
    return (worker_config_t){
        .topic = nsq_options_string(options, "topic"),
        .channel = nsq_options_string(options, "channel"),
        .max_in_flight = s_max_in_flight(options),
        .heartbeat_interval_ms = (uint32_t) nsq_options_int(options, "heartbeat-interval"),
        .msg_timeout_ms = (uint32_t) nsq_options_int(options, "msg-timeout"),
        .max_messages = nsq_options_int(options, "max-messages"),
        .exec_command = nsq_options_string(options, "exec"),
        .process_command = nsq_options_string(options, "process"),
        .processes = (int) nsq_options_int(options, "processes"),
        .process_window = (int) nsq_options_int(options, "process-window"),
        .http_url = nsq_options_string(options, "http"),
        .file_path = nsq_options_string(options, "file"),
        .to_stdout = nsq_options_bool(options, "stdout"),
        .file_max_bytes = nsq_options_int(options, "file-max-bytes"),
        .file_rotate_interval_ms = nsq_options_int(options, "file-rotate-interval"),
        .http_timeout_ms = nsq_options_int(options, "http-timeout"),
        .max_msg_timeout_ms = nsq_options_int(options, "max-msg-timeout"),
        .requeue_delay_ms = nsq_options_int(options, "requeue-delay"),
        .max_requeue_delay_ms = nsq_options_int(options, "max-requeue-delay"),
        .max_attempts = nsq_options_int(options, "max-attempts"),
        .dead_letter_topic = nsq_options_string(options, "dead-letter-topic"),
        .backoff_ms = nsq_options_int(options, "backoff"),
        .max_backoff_ms = nsq_options_int(options, "max-backoff"),
        .http_address = nsq_options_string(options, "http-address"),
        .http_address_optional = !nsq_options_is_set(options, "http-address"),
        .shutdown_timeout_ms = nsq_options_int(options, "shutdown-timeout"),
        .publish_topic = nsq_options_string(options, "publish-topic"),
        .max_output_size = (size_t) nsq_options_int(options, "max-output-size"),
    };
}

// Creates the worker and connects it to every broker. Returns the worker,
// or NULL with the reason in error ("" when worker_new has logged it).
static worker_t *s_start(nsq_options_t *options, char *error, size_t size)
{
    worker_config_t config = s_config(options);
    worker_t *worker = worker_new(&config);
    if (!worker)
        return NULL;
    for (size_t i = 0; i < nsq_options_count(options, "broker-address"); i++) {
        const char *address = nsq_options_string_at(options, "broker-address", i);
        if (worker_connect(worker, address)) {
            snprintf(error, size, "invalid --broker-address %s", address);
            worker_destroy(&worker);
            return NULL;
        }
    }
    nsq_consumer_t *consumer = worker_consumer(worker);
    nsq_consumer_set_lookupd_poll_interval(
        consumer, (uint32_t) nsq_options_int(options, "lookupd-poll-interval"));
    for (size_t i = 0; i < nsq_options_count(options, "lookupd-http-address"); i++) {
        const char *address = nsq_options_string_at(options, "lookupd-http-address", i);
        if (nsq_consumer_connect_lookupd(consumer, address)) {
            snprintf(error, size, "invalid --lookupd-http-address %s", address);
            worker_destroy(&worker);
            return NULL;
        }
    }
    return worker;
}

// "READY http=HOST:PORT" on stderr, HOST as --http-address gave it.
static void s_print_ready(worker_t *worker, nsq_options_t *options)
{
    const char *address = nsq_options_string(options, "http-address");
    const char *colon = address ? strrchr(address, ':') : NULL;
    if (!worker_http_port_bound(worker) || !colon)
        fprintf(stderr, "READY http=off\n");
    else
        fprintf(stderr, "READY http=%.*s:%u\n", (int) (colon - address), address,
                worker_http_port_bound(worker));
    fflush(stderr);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);    // a closed stdout or a command that stops reading is an error
    zsys_init();                 // SIGINT/SIGTERM set zsys_interrupted
    zsys_set_logstream(stderr);  // keep czmq's own messages off stdout
    curl_global_init(CURL_GLOBAL_DEFAULT);
    nsq_log_set_program("nsq-worker");

    nsq_options_t *options =
        nsq_options_new("nsq-worker", "NSQ_WORKER", s_specs, sizeof s_specs / sizeof s_specs[0]);
    if (!options)
        return 2;
    char error[256] = "";
    int parsed = nsq_options_parse(options, argc, argv, error, sizeof error);
    if (parsed == 0 && s_check(options, error, sizeof error))
        parsed = -1;
    worker_t *worker = NULL;
    if (parsed == 0 && !(worker = s_start(options, error, sizeof error)))
        parsed = -1;
    int rc = parsed == 1 ? 0 : 2;
    if (parsed < 0 && *error)
        fprintf(stderr, "nsq-worker: %s\n", error);
    else if (parsed == 0) {
        s_print_ready(worker, options);
        rc = worker_run(worker);
    }
    worker_destroy(&worker);
    nsq_options_destroy(&options);
    curl_global_cleanup();
    return rc;
}
