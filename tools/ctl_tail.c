/*  ctl_tail - nsq-ctl tail: print a topic's new messages (NSQ's nsq_tail)
    SPDX-License-Identifier: MIT

    Subscribes an ephemeral channel ("tail-PID#ephemeral": it takes a copy
    of every message published from now on, disturbs no other channel and
    vanishes with us) through the libnsq consumer, on every broker lookupd
    lists for the topic (asked again every few seconds) or on one broker's
    ZeroMQ endpoint, with the CURVE keys of --zmq-curve-key-file if given
    (for every broker: a cluster's brokers share one key pair). Each body
    goes to stdout followed by a newline, then is finished. Runs until
    --count messages or SIGINT/SIGTERM. A line on stderr says how many
    brokers are subscribed each time that grows, so a script knows when
    publishing will be seen.
*/
#include "ctl.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nsq.h"
#include "nsq_names.h"

#define S_LOOKUPD_POLL_MS 5000
#define S_TICK_MS         50

typedef struct {
    const ctl_t *ctl;
    const char *topic;
    nsq_consumer_t *consumer;
    int64_t printed;   // messages written
    int64_t started;   // zclock_mono
    size_t announced;  // brokers the last "tailing" line counted
    bool unreachable;  // nothing connected in time
} s_tail_t;

static void s_on_message(nsq_consumer_t *consumer, nsq_msg_t *msg, void *arg)
{
    s_tail_t *tail = arg;
    fwrite(nsq_msg_body(msg), 1, nsq_msg_size(msg), stdout);
    fputc('\n', stdout);
    fflush(stdout);
    nsq_consumer_fin(consumer, msg);
    if (++tail->printed == tail->ctl->count)
        nsq_consumer_stop(consumer);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_tail_t *tail = arg;
    size_t connected = nsq_consumer_connected_count(tail->consumer);
    if (connected > tail->announced) {
        fprintf(stderr, "nsq-ctl: tailing %s on %zu broker(s)\n", tail->topic, connected);
        tail->announced = connected;
    }
    if (!tail->announced && zclock_mono() - tail->started > tail->ctl->timeout_ms) {
        tail->unreachable = true;
        return -1;
    }
    return 0;
}

// Through lookupd: the topic must exist (exit codes as for stats).
static int s_check_topic(const ctl_t *ctl, const char *topic)
{
    char topic_q[200], path[300];
    ctl_escape(topic_q, sizeof topic_q, topic);
    snprintf(path, sizeof path, "/lookup?topic=%s", topic_q);
    int code = CTL_OK;
    json_t *doc = ctl_get_json(ctl, false, ctl->lookupd, path, &code);
    json_decref(doc);
    return doc ? CTL_OK : code;
}

// No broker answered in time: a CURVE broker drops clients whose
// handshake fails without a word, so the reason says what to check.
static int s_unreachable(const ctl_t *ctl, const char *topic)
{
    return ctl_fail(CTL_UNREACHABLE, "no broker of %s answered within %lld ms (%s)", topic,
                    (long long) ctl->timeout_ms,
                    ctl->zmq_curve_key_file ? "down, or its CURVE refuses our key"
                                            : "down, or it requires CURVE: --zmq-curve-key-file");
}

int ctl_tail(const ctl_t *ctl, const char *topic)
{
    if (!nsq_name_is_valid(topic))
        return ctl_fail(CTL_USAGE, "'%s' is not a valid topic name", topic);
    if (!ctl->lookupd && !ctl->broker_zmq)
        return ctl_fail(CTL_USAGE,
                        "tail needs --lookupd-http-address or --broker-address (ZeroMQ)");
    int code = ctl->lookupd ? s_check_topic(ctl, topic) : CTL_OK;
    if (code)
        return code;
    char channel[NSQ_NAME_MAX + 1];
    snprintf(channel, sizeof channel, "tail-%ld#ephemeral", (long) getpid());
    s_tail_t tail = {ctl, topic, nsq_consumer_new(topic, channel), 0, zclock_mono(), 0, false};
    if (!tail.consumer)
        return ctl_fail(CTL_FAILED, "cannot create a consumer");
    nsq_consumer_set_handler(tail.consumer, s_on_message, &tail);
    nsq_consumer_set_max_in_flight(tail.consumer, 200);
    nsq_consumer_set_client_id(tail.consumer, "nsq-ctl-tail");
    nsq_consumer_set_auth_secret(tail.consumer, ctl->auth_secret);
    nsq_consumer_set_lookupd_poll_interval(tail.consumer, S_LOOKUPD_POLL_MS);
    nsq_consumer_set_lookupd_tls(tail.consumer, ctl->tls_root_ca_file, ctl->tls_cert,
                                 ctl->tls_key);  // the key was checked at start
    nsq_consumer_set_curve(tail.consumer, ctl->zmq_curve_key_file,
                           ctl->zmq_curve_server_key_file);  // checked at start too
    int rc = ctl->lookupd ? nsq_consumer_connect_lookupd(tail.consumer, ctl->lookupd)
                          : nsq_consumer_connect(tail.consumer, ctl->broker_zmq);
    if (rc == 0
        && zloop_timer(nsq_consumer_loop(tail.consumer), S_TICK_MS, 0, s_on_tick, &tail) >= 0)
        nsq_consumer_run(tail.consumer);
    else
        code = ctl_fail(CTL_USAGE, "bad address %s", ctl->lookupd ? ctl->lookupd : ctl->broker_zmq);
    if (tail.unreachable)
        code = s_unreachable(ctl, topic);
    nsq_consumer_close(tail.consumer, 1000);
    nsq_consumer_destroy(&tail.consumer);
    return code;
}
