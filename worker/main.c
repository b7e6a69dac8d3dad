/*  nsq-worker - consume a channel and hand each message to a handler
    SPDX-License-Identifier: MIT

    A thin shell over the libnsq consumer: options (flags and NSQ_WORKER_*
    variables), logging, signals, one handler, exit code. The only handler
    so far is --stdout: each body and a newline go to stdout; a batch is
    flushed once (fflush after the last message of a read, by a zero-delay
    timer on the consumer's loop) and only then FINned, so a message is
    acknowledged only after it was written.

    Exit codes: 0 after SIGTERM/SIGINT (graceful close, up to 5 s) or
    --max-messages; 1 when stdout fails; 2 on bad configuration.
*/
#include "nsq.h"
#include "nsq_log.h"
#include "nsq_names.h"
#include "nsq_options.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PENDING_MAX      1024  // messages written and waiting for one fflush
#define S_CLOSE_TIMEOUT_MS 5000

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
     "message timeout asked of brokers (0 = broker default)"},
    {"max-messages", NSQ_OPTION_INT, "0", 0, INT64_MAX, false,
     "exit after handling this many messages (0 = unlimited)"},
    {"log-level", NSQ_OPTION_STRING, "info", 0, 0, false, "debug, info, warn or error"},
};

typedef struct {
    nsq_consumer_t *consumer;           // the subscription
    nsq_msg_t *pending[S_PENDING_MAX];  // written, not yet flushed and FINned
    size_t pending_count;
    int flush_timer;       // zero-delay timer armed, 0 if none
    int64_t max_messages;  // stop after this many, 0 = never
    int64_t handled;       // messages written so far
    bool failed;           // stdout failed: exit 1
} s_worker_t;

// Flushes stdout, then FINs the pending messages (REQs them if the write
// failed). Stops the consumer when done or failed.
static void s_worker_flush(s_worker_t *self)
{
    bool ok = !self->failed && fflush(stdout) == 0 && !ferror(stdout);
    if (!ok && !self->failed) {
        nsq_error("cannot write to stdout: %s", strerror(errno));
        self->failed = true;
    }
    for (size_t i = 0; i < self->pending_count; i++) {
        if (ok)
            nsq_consumer_fin(self->consumer, self->pending[i]);
        else
            nsq_consumer_req(self->consumer, self->pending[i], 0);
    }
    self->pending_count = 0;
    bool done = self->max_messages && self->handled >= self->max_messages;
    if (self->failed || done)
        nsq_consumer_stop(self->consumer);
}

static int s_flush_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_worker_t *self = arg;
    self->flush_timer = 0;
    s_worker_flush(self);
    return 0;
}

static void s_stdout_handler(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_worker_t *self = arg;
    bool done = self->max_messages && self->handled >= self->max_messages;
    if (self->failed || done) {
        nsq_consumer_req(consumer, msg, 0);  // not ours to handle any more
        return;
    }
    fwrite(nsq_msg_body(msg), 1, nsq_msg_size(msg), stdout);
    fputc('\n', stdout);
    self->pending[self->pending_count++] = msg;
    self->handled++;
    if (self->pending_count == S_PENDING_MAX)
        s_worker_flush(self);
    else if (!self->flush_timer) {
        // Runs after the consumer has handed out the rest of this read.
        self->flush_timer = zloop_timer(nsq_consumer_loop(consumer), 0, 1, s_flush_timer, self);
        if (self->flush_timer < 0) {
            self->flush_timer = 0;
            s_worker_flush(self);
        }
    }
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
    else if (!nsq_options_bool(options, "stdout"))
        snprintf(error, size, "a handler is required: --stdout");
    else if (nsq_log_level_parse(nsq_options_string(options, "log-level"), &level))
        snprintf(error, size, "invalid --log-level %s", nsq_options_string(options, "log-level"));
    else {
        nsq_log_set_level(level);
        return 0;
    }
    return -1;
}

// Creates the consumer and connects it to every broker. Returns 0, or -1
// with the reason in error.
static int s_worker_start(s_worker_t *self, nsq_options_t *options, char *error, size_t size)
{
    self->consumer = nsq_consumer_new(nsq_options_string(options, "topic"),
                                      nsq_options_string(options, "channel"));
    if (!self->consumer) {
        snprintf(error, size, "cannot create the consumer: %s", strerror(errno));
        return -1;
    }
    nsq_consumer_set_handler(self->consumer, s_stdout_handler, self);
    nsq_consumer_set_max_in_flight(self->consumer,
                                   (uint32_t) nsq_options_int(options, "max-in-flight"));
    nsq_consumer_set_heartbeat_interval(self->consumer,
                                        (uint32_t) nsq_options_int(options, "heartbeat-interval"));
    nsq_consumer_set_msg_timeout(self->consumer,
                                 (uint32_t) nsq_options_int(options, "msg-timeout"));
    self->max_messages = nsq_options_int(options, "max-messages");
    for (size_t i = 0; i < nsq_options_count(options, "broker-address"); i++) {
        const char *address = nsq_options_string_at(options, "broker-address", i);
        if (nsq_consumer_connect(self->consumer, address)) {
            snprintf(error, size, "invalid --broker-address %s", address);
            return -1;
        }
    }
    nsq_consumer_set_lookupd_poll_interval(
        self->consumer, (uint32_t) nsq_options_int(options, "lookupd-poll-interval"));
    for (size_t i = 0; i < nsq_options_count(options, "lookupd-http-address"); i++) {
        const char *address = nsq_options_string_at(options, "lookupd-http-address", i);
        if (nsq_consumer_connect_lookupd(self->consumer, address)) {
            snprintf(error, size, "invalid --lookupd-http-address %s", address);
            return -1;
        }
    }
    return 0;
}

static int s_worker_run(s_worker_t *self, nsq_options_t *options)
{
    nsq_info("consuming topic %s channel %s from %zu broker(s), max-in-flight %lld",
             nsq_options_string(options, "topic"), nsq_options_string(options, "channel"),
             nsq_consumer_connection_count(self->consumer),
             (long long) nsq_options_int(options, "max-in-flight"));
    nsq_consumer_run(self->consumer);
    if (zsys_interrupted)
        nsq_info("signal received, draining");
    if (nsq_consumer_close(self->consumer, S_CLOSE_TIMEOUT_MS))
        nsq_warn("%zu message(s) still in flight after %d ms, the broker will requeue them",
                 nsq_consumer_in_flight(self->consumer), S_CLOSE_TIMEOUT_MS);
    nsq_info("exiting: received %llu, finished %llu, requeued %llu",
             (unsigned long long) nsq_consumer_received(self->consumer),
             (unsigned long long) nsq_consumer_finished(self->consumer),
             (unsigned long long) nsq_consumer_requeued(self->consumer));
    return self->failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);    // a closed stdout is an error, not a crash
    zsys_init();                 // SIGINT/SIGTERM set zsys_interrupted
    zsys_set_logstream(stderr);  // keep czmq's own messages off stdout
    nsq_log_set_program("nsq-worker");
    static char buffer[1 << 16];
    setvbuf(stdout, buffer, _IOFBF, sizeof buffer);

    nsq_options_t *options =
        nsq_options_new("nsq-worker", "NSQ_WORKER", s_specs, sizeof s_specs / sizeof s_specs[0]);
    if (!options)
        return 2;
    char error[256] = "";
    int parsed = nsq_options_parse(options, argc, argv, error, sizeof error);
    if (parsed == 0 && s_check(options, error, sizeof error))
        parsed = -1;
    s_worker_t worker = {0};
    if (parsed == 0 && s_worker_start(&worker, options, error, sizeof error))
        parsed = -1;
    int rc = parsed == 1 ? 0 : 2;
    if (parsed < 0)
        fprintf(stderr, "nsq-worker: %s\n", error);
    else if (parsed == 0)
        rc = s_worker_run(&worker, options);
    nsq_consumer_destroy(&worker.consumer);
    nsq_options_destroy(&options);
    return rc;
}
