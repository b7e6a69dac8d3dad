/*  it_worker - nsq-worker's exec handler, retries, dead letters and backoff
    SPDX-License-Identifier: MIT

    Each case starts a broker and an nsq-worker with short delays and
    timeouts (flags), publishes, and checks what users rely on: the exec
    handler's result decides FIN or REQ, long commands are kept alive with
    TOUCH, failures back off and end in the dead-letter topic (a JSON
    header that says where the message came from and why it failed, then
    the body intact), /metrics counts. The http and file handlers and the
    worker's life as a pod are in it_worker_output.c.
*/
#include "harness.h"
#include "it_worker_util.h"
#include "nsq_deadletter.h"

#include <dirent.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t s_wall_clock_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}

// Reads the dead letter of the sink's delivery index into header and
// checks its body. Fails the case if it does not parse.
static void s_expect_dead_letter(it_sink_t *sink, size_t index, nsq_deadletter_t *header,
                                 const void *body, size_t size)
{
    it_delivery_t *dead = it_sink_get(sink, index);
    const void *original = NULL;
    size_t original_size = 0;
    IT_ASSERT(nsq_deadletter_parse(dead->body, dead->size, header, &original, &original_size) == 0,
              "not a dead letter: %.*s", (int) dead->size, dead->body);
    IT_ASSERT_INT(original_size, ==, size);
    IT_ASSERT(memcmp(original, body, size) == 0, "the dead letter's body differs");
}

// ---- exec ---------------------------------------------------------------

// Fails on attempt 1, succeeds on attempt 2; the environment and the body
// land in the output file each time.
static void s_exec_retry(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char out[1024], exec[4096];
    snprintf(out, sizeof out, "%s/exec.out", it_tmp_dir());
    snprintf(exec, sizeof exec,
             "--exec=printf '%%s %%s %%s %%s ' \"$NSQ_MSG_ATTEMPTS\" \"$NSQ_MSG_ID\" "
             "\"$NSQ_TOPIC\" \"$NSQ_CHANNEL\" >> %s; cat >> %s; echo >> %s; "
             "[ \"$NSQ_MSG_ATTEMPTS\" -ge 2 ]",
             out, out, out);
    const char *flags[] = {exec, "--requeue-delay=50ms", "--backoff=50ms", NULL};
    it_child_t *worker = it_worker_start(broker, "jobs", "exec", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(broker, "jobs", "exec");
    it_pub(broker, "jobs", "payload-1");
    IT_ASSERT_EVENTUALLY(worker_count_lines(out, "payload-1") == 2
                             && worker_settled(broker, "jobs", "exec"),
                         10000, "the message was not run twice and finished (%d runs)",
                         worker_count_lines(out, "payload-1"));
    IT_ASSERT_INT(worker_count_lines(out, "1 "), ==, 1);
    IT_ASSERT_INT(worker_count_lines(out, " jobs exec payload-1"), ==, 2);
    IT_ASSERT_INT(it_channel_stat(broker, "jobs", "exec", "requeue_count"), ==, 1);
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_messages_finished_total") == 1, 2000,
                         "/metrics does not count the FIN");
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_messages_requeued_total"), ==, 1);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_messages_received_total"), ==, 2);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_handler_failures_total"), ==, 1);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_handler_duration_seconds_count"), ==, 2);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_connections"), ==, 1);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Four commands that each wait until all four run: passes only if the
// worker runs them concurrently.
static void s_exec_concurrent(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char exec[4096];
    snprintf(exec, sizeof exec,
             "--exec=cat > /dev/null; touch %s/run.$NSQ_MSG_ID; i=0; while [ $i -lt 200 ]; do "
             "[ $(ls %s | grep -c '^run[.]') -ge 4 ] && exit 0; sleep 0.05; i=$((i+1)); done; "
             "exit 1",
             it_tmp_dir(), it_tmp_dir());
    const char *flags[] = {exec, "--max-in-flight=4", "--max-attempts=1", NULL};
    it_child_t *worker = it_worker_start(broker, "many", "exec", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(broker, "many", "exec");
    for (int i = 0; i < 4; i++)
        it_pub(broker, "many", "together");
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_messages_finished_total") == 4, 15000,
                         "four concurrent commands did not all succeed");
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_handler_failures_total"), ==, 0);
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "many", "exec"), 5000, "the channel is not empty");
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A command that outlives the broker's 1 s message timeout is kept alive by
// TOUCH: it runs once and the broker never times the message out.
static void s_exec_touch(void)
{
    const char *broker_flags[] = {"--msg-timeout=1s", NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    char out[1024], exec[4096];
    snprintf(out, sizeof out, "%s/touch.out", it_tmp_dir());
    snprintf(exec, sizeof exec, "--exec=cat >> %s; echo >> %s; sleep 2.5", out, out);
    const char *flags[] = {exec, "--msg-timeout=1s", NULL};
    it_child_t *worker = it_worker_start(broker, "long", "exec", flags);
    worker_wait_subscribed(broker, "long", "exec");
    it_pub(broker, "long", "takes-a-while");
    IT_ASSERT_EVENTUALLY(worker_count_lines(out, "takes-a-while") == 1, 5000,
                         "the command never ran");
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "long", "exec"), 10000,
                         "the message was not finished");
    IT_ASSERT_INT(it_channel_stat(broker, "long", "exec", "timeout_count"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "long", "exec", "requeue_count"), ==, 0);
    IT_ASSERT_INT(worker_count_lines(out, "takes-a-while"), ==, 1);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// The reproduction: the broker's --msg-timeout is 1 s and the
// worker asks for nothing; a 3 s command still runs once, because the
// worker TOUCHes at half the timeout the broker told it, and the broker
// counts no timeout.
static void s_exec_touch_broker_timeout(void)
{
    const char *broker_flags[] = {"--msg-timeout=1s", NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    char log[1024], exec[4096];
    snprintf(log, sizeof log, "%s/log", it_tmp_dir());
    snprintf(exec, sizeof exec, "--exec=echo $NSQ_MSG_ATTEMPTS >>%s; sleep 3", log);
    const char *flags[] = {exec, "--max-in-flight=1", NULL};
    it_child_t *worker = it_worker_start(broker, "repro", "exec", flags);
    worker_wait_subscribed(broker, "repro", "exec");
    it_pub(broker, "repro", "slow");
    IT_ASSERT_EVENTUALLY(worker_count_lines(log, NULL) >= 1, 5000, "the command never ran");
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "repro", "exec"), 15000,
                         "the message was not finished");
    IT_ASSERT_INT(worker_count_lines(log, NULL), ==, 1);
    IT_ASSERT_INT(worker_count_lines(log, "1"), ==, 1);
    IT_ASSERT_INT(it_channel_stat(broker, "repro", "exec", "timeout_count"), ==, 0);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A --msg-timeout above the broker's --max-msg-timeout is clamped to it
// with a warning: the worker subscribes and works (the broker refuses such
// an IDENTIFY, which used to leave the worker reconnecting for ever).
static void s_msg_timeout_clamped(void)
{
    const char *broker_flags[] = {"--msg-timeout=500ms", "--max-msg-timeout=2s", NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    char out[1024], exec[4096];
    snprintf(out, sizeof out, "%s/ran", it_tmp_dir());
    snprintf(exec, sizeof exec, "--exec=cat >>%s; echo >>%s; sleep 1.2", out, out);
    const char *flags[] = {exec, "--msg-timeout=10m", NULL};
    it_child_t *worker = it_worker_start(broker, "clamp", "exec", flags);
    const char *log = it_child_log_path(worker);
    worker_wait_subscribed(broker, "clamp", "exec");
    IT_ASSERT_INT(worker_count_lines(log, "max_msg_timeout: using 2000 ms"), ==, 1);
    it_pub(broker, "clamp", "clamped");
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "clamp", "exec"), 10000,
                         "the message was not finished");
    IT_ASSERT_INT(worker_count_lines(out, "clamped"), ==, 1);
    IT_ASSERT_INT(it_channel_stat(broker, "clamp", "exec", "timeout_count"), ==, 0);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A body far larger than a pipe's buffer reaches the command whole (the
// worker feeds stdin as the command reads it).
static void s_exec_big_body(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char out[1024], exec[4096];
    snprintf(out, sizeof out, "%s/size.out", it_tmp_dir());
    snprintf(exec, sizeof exec, "--exec=sleep 0.2; cksum > %s", out);
    it_child_t *worker = it_worker_start(broker, "big", "exec", (const char *[]){exec, NULL});
    worker_wait_subscribed(broker, "big", "exec");
    size_t size = 900 * 1024;
    char *body = malloc(size);
    IT_ASSERT(body, "out of memory");
    for (size_t i = 0; i < size; i++)
        body[i] = (char) ('a' + i % 26);
    IT_ASSERT_INT(it_http(broker, "POST", "/pub?topic=big", body, size, NULL), ==, 200);
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "big", "exec"), 10000,
                         "the big message was not FINned");
    char expected[1024], command[4096];
    snprintf(expected, sizeof expected, "%s/body", it_tmp_dir());
    FILE *file = fopen(expected, "w");
    IT_ASSERT(file && fwrite(body, 1, size, file) == size, "cannot write %s", expected);
    fclose(file);
    free(body);
    snprintf(command, sizeof command, "cksum < %s | cmp -s - %s", expected, out);
    IT_ASSERT_INT(system(command), ==, 0);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// ---- dead letters -------------------------------------------------------

// A body with a newline, a NUL and high bytes, always refused by the command:
// after --max-attempts it is in <topic>.dead as a dead letter that names
// its origin and its last failure, with the body byte for byte, and FINned.
static void s_dead_letter(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_post_ok(broker, "/channel/create?topic=orders.dead&channel=inspect");
    char ids[1024], exec[4096];
    snprintf(ids, sizeof ids, "%s/ids", it_tmp_dir());
    snprintf(exec, sizeof exec, "--exec=echo $NSQ_MSG_ID >> %s; cat > /dev/null; exit 3", ids);
    const char *flags[] = {exec, "--max-attempts=3", "--requeue-delay=20ms", "--backoff=0", NULL};
    it_child_t *worker = it_worker_start(broker, "orders", "exec", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(broker, "orders", "exec");
    const char body[] = "line one\nline two\0\xff\xfe end";
    int64_t before = s_wall_clock_ns();
    IT_ASSERT_INT(it_http(broker, "POST", "/pub?topic=orders", body, sizeof body - 1, NULL), ==,
                  200);
    int64_t after = s_wall_clock_ns();
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_messages_dead_lettered_total") == 1, 10000,
                         "the message was not dead-lettered");
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "orders", "exec"), 5000,
                         "the message stays queued");
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "exec", "requeue_count"), ==, 2);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_handler_failures_total"), ==, 3);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_messages_requeued_total"), ==, 2);
    it_sink_t *sink = it_sink_new(broker, "orders.dead", "inspect", 1, true);
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "nothing in orders.dead");
    IT_ASSERT_INT(it_sink_get(sink, 0)->attempts, ==, 1);
    nsq_deadletter_t header;
    s_expect_dead_letter(sink, 0, &header, body, sizeof body - 1);
    IT_ASSERT_STR(header.topic, "orders");
    IT_ASSERT_STR(header.channel, "exec");
    char id[64] = "";
    FILE *file = fopen(ids, "r");
    IT_ASSERT(file && fgets(id, sizeof id, file), "the command did not record the id");
    fclose(file);
    id[strcspn(id, "\n")] = '\0';
    IT_ASSERT_STR(header.id, id);
    IT_ASSERT_INT(header.attempts, ==, 3);
    IT_ASSERT(header.first_seen >= before && header.first_seen <= after,
              "first_seen %lld is not the publish time", (long long) header.first_seen);
    IT_ASSERT(header.dead_at >= header.first_seen && header.dead_at <= s_wall_clock_ns(),
              "dead_at %lld is not when it was dead-lettered", (long long) header.dead_at);
    IT_ASSERT_STR(header.broker, it_broker_zmq(broker));
    IT_ASSERT_STR(nsq_failure_kind_name(header.failure.kind), "exit");
    IT_ASSERT_INT(header.failure.code, ==, 3);
    IT_ASSERT(strstr(header.failure.detail, "3"), "detail: %s", header.failure.detail);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// With two brokers, a message is dead-lettered on the broker it came from.
static void s_dead_letter_same_broker(void)
{
    it_broker_t *first = it_broker_start(NULL), *second = it_broker_start(NULL);
    char other[96];
    snprintf(other, sizeof other, "--broker-address=%s", it_broker_zmq(second));
    const char *flags[] = {other, "--exec=cat > /dev/null; exit 1", "--max-attempts=1",
                           "--backoff=0", NULL};
    it_child_t *worker = it_worker_start(first, "pay", "exec", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(first, "pay", "exec");
    worker_wait_subscribed(second, "pay", "exec");
    it_pub(second, "pay", "from-second");
    IT_ASSERT_EVENTUALLY(it_topic_stat(second, "pay.dead", "message_count") == 1, 10000,
                         "the dead letter is not on the broker the message came from");
    IT_ASSERT_EVENTUALLY(worker_settled(second, "pay", "exec"), 5000, "the message stays queued");
    IT_ASSERT_INT(it_topic_stat(first, "pay.dead", "message_count"), ==, -1);
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_messages_dead_lettered_total"), ==, 1);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&first), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&second), ==, 0);
}

// A command that hangs is killed at --max-msg-timeout, retried, and
// dead-lettered to the topic --dead-letter-topic names.
static void s_exec_timeout(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    it_post_ok(broker, "/channel/create?topic=stuck-letters&channel=inspect");
    const char *flags[] = {"--exec=cat > /dev/null; sleep 30",
                           "--max-msg-timeout=300ms",
                           "--max-attempts=2",
                           "--requeue-delay=20ms",
                           "--backoff=0",
                           "--dead-letter-topic=stuck-letters",
                           NULL};
    it_child_t *worker = it_worker_start(broker, "stuck", "exec", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(broker, "stuck", "exec");
    it_pub(broker, "stuck", "never-ends");
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_messages_dead_lettered_total") == 1, 10000,
                         "the hanging command was not stopped and dead-lettered");
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_handler_timeouts_total"), ==, 2);
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "stuck", "exec"), 5000, "the message stays queued");
    it_sink_t *sink = it_sink_new(broker, "stuck-letters", "inspect", 1, true);
    IT_ASSERT(it_sink_wait(sink, 1, 5000), "nothing in stuck-letters");
    nsq_deadletter_t header;
    s_expect_dead_letter(sink, 0, &header, "never-ends", 10);
    IT_ASSERT_STR(header.topic, "stuck");
    IT_ASSERT_INT(header.attempts, ==, 2);
    IT_ASSERT_STR(nsq_failure_kind_name(header.failure.kind), "timeout");
    IT_ASSERT_INT(header.failure.code, ==, 300);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// ---- backoff ------------------------------------------------------------

// Failures pause delivery (credit 0), then probe with credit 1; once the
// command succeeds again, full credit comes back.
static void s_backoff(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char ok[1024], exec[4096];
    snprintf(ok, sizeof ok, "%s/healthy", it_tmp_dir());
    snprintf(exec, sizeof exec, "--exec=cat > /dev/null; [ -e %s ]", ok);
    const char *flags[] = {exec,
                           "--max-in-flight=5",
                           "--max-attempts=0",
                           "--requeue-delay=10ms",
                           "--backoff=1s",
                           "--max-backoff=1s",
                           NULL};
    it_child_t *worker = it_worker_start(broker, "flaky", "exec", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    worker_wait_subscribed(broker, "flaky", "exec");
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_credit"), ==, 5);
    for (int i = 0; i < 5; i++)
        it_pub(broker, "flaky", "try");
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_credit") == 0, 5000,
                         "a failure did not pause delivery");
    // The probe (credit 1) fails within milliseconds and pauses again: a
    // second pause shows that the first one ended with a probe.
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_backoffs_total") >= 2, 5000,
                         "the pause did not end with a probe that paused again");
    FILE *marker = fopen(ok, "w");
    IT_ASSERT(marker, "cannot create %s", ok);
    fclose(marker);
    for (int i = 0; i < 10; i++)
        it_pub(broker, "flaky", "fine");
    IT_ASSERT_EVENTUALLY(worker_metric(http, "nsq_worker_credit") == 5, 15000,
                         "full credit did not come back after successes");
    IT_ASSERT_EVENTUALLY(worker_settled(broker, "flaky", "exec"), 10000, "messages stay queued");
    IT_ASSERT_INT(worker_metric(http, "nsq_worker_messages_finished_total"), ==, 15);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"exec_retry", s_exec_retry},
        {"exec_concurrent", s_exec_concurrent},
        {"exec_touch", s_exec_touch},
        {"exec_touch_broker_timeout", s_exec_touch_broker_timeout},
        {"msg_timeout_clamped", s_msg_timeout_clamped},
        {"exec_big_body", s_exec_big_body},
        {"exec_timeout", s_exec_timeout},
        {"dead_letter", s_dead_letter},
        {"dead_letter_same_broker", s_dead_letter_same_broker},
        {"backoff", s_backoff},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
