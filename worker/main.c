/*  nsq-worker - consume a channel and hand each message to a handler
    SPDX-License-Identifier: MIT

    A thin shell over the worker runtime (worker.c): the options table
    (flags and NSQ_WORKER_* variables; each row fills its field of the
    worker's config, or of what main applies itself), logging, signals,
    exit code. One handler per process: --exec, --process, --http, --file
    or --stdout.

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
#include "nsq_curve.h"
#include "nsq_http_server.h"
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

// What the command line sets: the worker's own config, and what main
// applies itself.
typedef struct {
    worker_config_t worker;   // what worker_new takes (strings borrowed from the parser)
    const char **brokers;     // --broker-address values
    size_t broker_count;      //
    const char **lookupds;    // --lookupd-http-address values
    size_t lookupd_count;     //
    int64_t lookupd_poll_ms;  // --lookupd-poll-interval
    const char *log_level;    // --log-level
} s_settings_t;

#define FIELD(member) NSQ_OPTION_FIELD(s_settings_t, member)

static const nsq_option_spec_t s_specs[] = {
    {"topic", NSQ_OPTION_STRING, NULL, 0, 0, false, "topic to consume (required)",
     FIELD(worker.topic)},
    {"channel", NSQ_OPTION_STRING, NULL, 0, 0, false, "channel to consume (required)",
     FIELD(worker.channel)},
    {"broker-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "broker ZeroMQ address host:port (repeat for several brokers)",
     NSQ_OPTION_LIST(s_settings_t, brokers, broker_count)},
    {"lookupd-http-address", NSQ_OPTION_STRING, NULL, 0, 0, true,
     "lookupd HTTP address host:port to discover brokers (repeatable)",
     NSQ_OPTION_LIST(s_settings_t, lookupds, lookupd_count)},
    {"lookupd-poll-interval", NSQ_OPTION_DURATION, "60s", 10, 3600000, false,
     "how often lookupds are asked for brokers (with jitter)", FIELD(lookupd_poll_ms)},
    {"max-in-flight", NSQ_OPTION_INT, "200", 1, 1000000, false,
     "messages in flight at once, spread across brokers", FIELD(worker.max_in_flight)},
    {"stdout", NSQ_OPTION_BOOL, "false", 0, 0, false,
     "handler: write each body and a newline to stdout, then FIN", FIELD(worker.to_stdout)},
    {"heartbeat-interval", NSQ_OPTION_DURATION, "0", 0, 3600000, false,
     "heartbeat interval asked of brokers (0 = broker default)",
     FIELD(worker.heartbeat_interval_ms)},
    {"msg-timeout", NSQ_OPTION_DURATION, "0", 0, 3600000, false,
     "message timeout asked of brokers (0 = broker default); a broker whose --max-msg-timeout is "
     "lower gets its maximum instead, with a warning. Running handlers are TOUCHed at half the "
     "timeout each broker grants",
     FIELD(worker.msg_timeout_ms)},
    {"max-messages", NSQ_OPTION_INT, "0", 0, INT64_MAX, false,
     "exit after handling this many messages (0 = unlimited)", FIELD(worker.max_messages)},
    {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "debug, info, warn or error",
     FIELD(log_level)},
    {"auth-secret", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "secret for brokers with --auth-http-address (NSQ's AUTH); prefer the environment "
     "variable, the flag's value is blanked from the process's command line",
     FIELD(worker.auth_secret)},
    {"exec", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "handler: run this /bin/sh command per message (body on stdin); exit 0 = FIN",
     FIELD(worker.exec_command)},
    {"process", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "handler: keep --processes copies of this /bin/sh command running and hand them messages "
     "over stdin/stdout (the --process protocol, see README); they answer fin, req or touch",
     FIELD(worker.process_command)},
    {"processes", NSQ_OPTION_INT, "1", 1, 1024, false, "--process: how many processes",
     FIELD(worker.processes)},
    {"process-window", NSQ_OPTION_INT, "32", 1, 100000, false,
     "--process: messages in flight per process (unless set, --max-in-flight is at least "
     "--processes x this)",
     FIELD(worker.process_window)},
    {"publish-topic", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "publish the handler's output (--process replies, --exec stdout, --http response bodies) "
     "to this topic on the broker the message came from, before the FIN; empty output publishes "
     "nothing, a refused publish means REQ",
     FIELD(worker.publish_topic)},
    {"max-output-size", NSQ_OPTION_SIZE, "1048576", 1, 1073741824, false,
     "largest handler output (--publish-topic; a --process reply announcing more is garbage); "
     "more fails the message",
     FIELD(worker.max_output_size)},
    {"http", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "handler: POST each body to this URL; 2xx = FIN, 4xx = FIN and log, else REQ",
     FIELD(worker.http_url)},
    {"file", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "handler: append each body and a newline to this file (its directory is created), fsync "
     "before FIN",
     FIELD(worker.file_path)},
    {"file-max-bytes", NSQ_OPTION_SIZE, "0", 0, 0, false,
     "rotate --file before a message that would take it beyond this (0 = never)",
     FIELD(worker.file_max_bytes)},
    {"file-rotate-interval", NSQ_OPTION_DURATION, "0", 0, 86400000, false,
     "rotate --file this often (0 = never)", FIELD(worker.file_rotate_interval_ms)},
    {"http-timeout", NSQ_OPTION_DURATION, "20s", 1, 3600000, false,
     "--http: one request at most this long, then REQ", FIELD(worker.http_timeout_ms)},
    {"max-msg-timeout", NSQ_OPTION_DURATION, "15m", 0, 86400000, false,
     "--exec: kill a command running longer (SIGTERM, SIGKILL 2s later), then REQ; --process: "
     "a process holding messages that writes nothing (no answer, no touch) this long is "
     "restarted the same way and its messages REQed; 0 = never",
     FIELD(worker.max_msg_timeout_ms)},
    {"requeue-delay", NSQ_OPTION_DURATION, "90s", 0, 3600000, false,
     "REQ delay after a failure, times the attempt number", FIELD(worker.requeue_delay_ms)},
    {"max-requeue-delay", NSQ_OPTION_DURATION, "15m", 0, 3600000, false, "cap of the REQ delay",
     FIELD(worker.max_requeue_delay_ms)},
    {"max-attempts", NSQ_OPTION_INT, "5", 0, 65535, false,
     "after this many failed attempts, publish to the dead-letter topic and FIN (0 = never)",
     FIELD(worker.max_attempts)},
    {"dead-letter-topic", NSQ_OPTION_STRING, NULL, 0, 0, false,
     "where failed messages go as dead letters (a JSON header line, then the body), on the "
     "broker they came from (default <topic>.dead)",
     FIELD(worker.dead_letter_topic)},
    {"backoff", NSQ_OPTION_DURATION, "1s", 0, 3600000, false,
     "after a failure pause delivery this long, doubling per failure (0 = no backoff)",
     FIELD(worker.backoff_ms)},
    {"max-backoff", NSQ_OPTION_DURATION, "2m", 0, 3600000, false, "longest backoff pause",
     FIELD(worker.max_backoff_ms)},
    {"http-address", NSQ_OPTION_STRING, "0.0.0.0:4171", 0, 0, false,
     "/healthz, /readyz and /metrics on host:port (port 0 = any; empty = off); if the default "
     "is taken the worker warns and runs without them, a given address must be free",
     FIELD(worker.http_address)},
    {"shutdown-timeout", NSQ_OPTION_DURATION, "30s", 0, 3600000, false,
     "on SIGTERM let running handlers finish this long, then stop and requeue them (--process: "
     "the processes then read EOF; those still running at the timeout get SIGTERM)",
     FIELD(worker.shutdown_timeout_ms)},
    NSQ_HTTP_TLS_OPTION_ROWS(s_settings_t, worker.),
    NSQ_CURVE_CLIENT_OPTION_ROWS(s_settings_t, worker.),
};

static int s_handler_count(const worker_config_t *config)
{
    return !!config->exec_command + !!config->process_command + !!config->http_url
           + !!config->file_path + config->to_stdout;
}

// Checks what the option table cannot and sets the log level. Returns 0,
// or -1 with the reason.
static int s_check(const s_settings_t *settings, char *error, size_t size)
{
    const worker_config_t *config = &settings->worker;
    nsq_log_level_t level;
    if (!config->topic || !nsq_name_is_valid(config->topic))
        snprintf(error, size, config->topic ? "invalid --topic %s" : "--topic is required",
                 config->topic);
    else if (!config->channel || !nsq_name_is_valid(config->channel))
        snprintf(error, size, config->channel ? "invalid --channel %s" : "--channel is required",
                 config->channel);
    else if (settings->broker_count == 0 && settings->lookupd_count == 0)
        snprintf(error, size, "--broker-address or --lookupd-http-address is required");
    else if (s_handler_count(config) != 1)
        snprintf(error, size,
                 "exactly one handler is required: --exec, --process, --http, --file or --stdout");
    else if (config->publish_topic && !nsq_name_is_valid(config->publish_topic))
        snprintf(error, size, "invalid --publish-topic %s", config->publish_topic);
    else if (config->publish_topic && (config->file_path || config->to_stdout))
        snprintf(error, size,
                 "--publish-topic needs a handler with output: --process, --exec or --http");
    else if (nsq_log_level_parse(settings->log_level, &level))
        snprintf(error, size, "invalid --log-level %s", settings->log_level);
    else if (nsq_http_tls_check(&NSQ_HTTP_TLS_OF(config), config->https_address, error, size)
             == 0) {
        nsq_log_set_level(level);
        return 0;
    }
    return -1;
}

// With --process and no --max-in-flight given, the credit grows to fill
// every process's window (the rest waits in the worker, hiding the round
// trip to the broker).
static void s_process_credit(worker_config_t *config)
{
    int64_t places = (int64_t) config->processes * config->process_window;
    places = places < 1000000 ? places : 1000000;
    if (places > (int64_t) config->max_in_flight)
        config->max_in_flight = (uint32_t) places;
}

// Creates the worker and connects it to every broker. Returns the worker,
// or NULL with the reason in error ("" when worker_new has logged it).
static worker_t *s_start(const s_settings_t *settings, char *error, size_t size)
{
    worker_t *worker = worker_new(&settings->worker);
    if (!worker)
        return NULL;
    for (size_t i = 0; i < settings->broker_count; i++) {
        if (worker_connect(worker, settings->brokers[i])) {
            snprintf(error, size, "invalid --broker-address %s", settings->brokers[i]);
            worker_destroy(&worker);
            return NULL;
        }
    }
    nsq_consumer_t *consumer = worker_consumer(worker);
    nsq_consumer_set_lookupd_poll_interval(consumer, (uint32_t) settings->lookupd_poll_ms);
    for (size_t i = 0; i < settings->lookupd_count; i++) {
        if (nsq_consumer_connect_lookupd(consumer, settings->lookupds[i])) {
            snprintf(error, size, "invalid --lookupd-http-address %s", settings->lookupds[i]);
            worker_destroy(&worker);
            return NULL;
        }
    }
    return worker;
}

// "READY http=HOST:PORT" on stderr, HOST as --http-address gave it.
static void s_print_ready(worker_t *worker, const char *address)
{
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
    s_settings_t settings = {0};
    int parsed = nsq_options_parse(options, argc, argv, error, sizeof error);
    if (parsed == 0) {
        nsq_options_store(options, &settings);
        // The default address may be taken (warn, run without); a given one must be free
        settings.worker.http_address_optional = !nsq_options_is_set(options, "http-address");
        if (settings.worker.process_command && !nsq_options_is_set(options, "max-in-flight"))
            s_process_credit(&settings.worker);
    }
    if (parsed == 0 && s_check(&settings, error, sizeof error))
        parsed = -1;
    worker_t *worker = NULL;
    if (parsed == 0 && !(worker = s_start(&settings, error, sizeof error)))
        parsed = -1;
    nsq_options_hide(argc, argv, "auth-secret");  // the worker has its copy
    int rc = parsed == 1 ? 0 : 2;
    if (parsed < 0 && *error)
        fprintf(stderr, "nsq-worker: %s\n", error);
    else if (parsed == 0) {
        s_print_ready(worker, settings.worker.http_address);
        rc = worker_run(worker);
    }
    worker_destroy(&worker);
    nsq_options_destroy(&options);
    curl_global_cleanup();
    return rc;
}
