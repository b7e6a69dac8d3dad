/*  it_process - nsq-worker --process: handlers in any language as long-lived processes
    SPDX-License-Identifier: MIT

    Each case starts a broker and an nsq-worker whose --process runs
    tests/integration/process_handler.py (the protocol spoken by hand, so
    the worker is what is tested), the Python helper through
    helper_handler.py, or the plain-shell example. The handler notes every
    message it reads in a log ("index attempts id ms body"), which is how
    the cases see who got what, how often and when.

    What users rely on: fin, req with the process's own delay, touch past
    the broker's and the worker's timeouts; a full window across several
    processes; bodies of every byte value and of 1 MiB both ways; a process
    that exits, hangs or writes garbage loses nothing (its messages are
    requeued, it is restarted, the log says why, /metrics counts); SIGTERM
    drains (in-flight finish, processes read EOF and exit 0); the helpers.
*/
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- helpers ------------------------------------------------------------

static const char *s_python(void)
{
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static const char *s_source(void)
{
    const char *dir = getenv("NSQ_SOURCE_DIR");
    IT_ASSERT(dir, "NSQ_SOURCE_DIR is not set (meson sets it)");
    return dir;
}

// The handler's log.
static const char *s_log(void)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/handled.log", it_tmp_dir());
    return path;
}

// "--process=python3 .../process_handler.py MODE LOG" into flag.
static const char *s_handler(char *flag, size_t size, const char *mode)
{
    snprintf(flag, size, "--process=exec %s %s/tests/integration/process_handler.py %s %s",
             s_python(), s_source(), mode, s_log());
    return flag;
}

typedef struct {
    int count;         // log lines for the body
    int max_attempts;  // highest attempt seen
    int64_t first_ms;  // wall clock of attempt 1, 0 if none
    int64_t last_ms;   // of the last line
    int indexes[16];   // lines per process index
} s_seen_t;

// What the log says about body (every body when NULL).
static s_seen_t s_seen(const char *body)
{
    s_seen_t seen = {0};
    FILE *log = fopen(s_log(), "r");
    char line[4096], name[4000], id[32];
    int index, attempts;
    long long ms;
    while (log && fgets(line, sizeof line, log)) {
        if (sscanf(line, "%d %d %31s %lld %3999s", &index, &attempts, id, &ms, name) != 5
            || (body && strcmp(name, body)))
            continue;
        seen.count++;
        seen.max_attempts = attempts > seen.max_attempts ? attempts : seen.max_attempts;
        seen.first_ms = attempts == 1 ? ms : seen.first_ms;
        seen.last_ms = ms;
        if (index >= 0 && index < 16)
            seen.indexes[index]++;
    }
    if (log)
        fclose(log);
    return seen;
}

// Starts a worker on topic/channel "c" with flags, waits until it listens
// and is subscribed; its probe address goes to http.
static it_child_t *s_worker(it_broker_t *broker, const char *topic, const char *const *flags,
                            char *http, size_t size)
{
    it_child_t *worker = it_worker_start(broker, topic, "c", flags);
    it_worker_wait_ready(worker, http, size);
    it_wait_clients(broker, topic, "c", 1);
    return worker;
}

static int64_t s_finished(const char *http)
{
    return it_worker_metric(http, "nsq_worker_messages_finished_total");
}

static void s_stop_all(it_child_t **worker, it_broker_t **broker)
{
    IT_ASSERT_INT(it_child_stop(worker, SIGTERM, 15000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(broker), ==, 0);
}

// ---- cases --------------------------------------------------------------

// fin, and req with the process's own delay: the worker's --requeue-delay
// (90 s) would keep the message far longer.
static void s_fin_req(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    const char *flags[] = {s_handler(flag, sizeof flag, "echo"), "--backoff=0", NULL};
    it_child_t *worker = s_worker(broker, "jobs", flags, http, sizeof http);
    it_pub(broker, "jobs", "fin-1");
    it_pub(broker, "jobs", "req:600");
    IT_ASSERT_EVENTUALLY(s_finished(http) == 2, 10000, "fin-1 and req:600 were not finished");
    s_seen_t fin = s_seen("fin-1"), req = s_seen("req:600");
    IT_ASSERT_INT(fin.count, ==, 1);
    IT_ASSERT_INT(req.count, ==, 2);
    IT_ASSERT_INT(req.max_attempts, ==, 2);
    IT_ASSERT_INT(req.last_ms - req.first_ms, >=, 500);
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "jobs", "c"), 5000, "not settled");
    IT_ASSERT_INT(it_channel_stat(broker, "jobs", "c", "requeue_count"), ==, 1);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_process_restarts_total"), ==, 0);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_processes"), ==, 1);
    s_stop_all(&worker, &broker);
}

// A process that works on a message for 2.5 s and touches it every 200 ms
// outlives both the broker's 1 s message timeout and the worker's 1 s
// --max-msg-timeout: one delivery, no restart.
static void s_touch(void)
{
    const char *broker_flags[] = {"--msg-timeout=1s", NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    char flag[2048], http[64];
    const char *flags[] = {s_handler(flag, sizeof flag, "echo"), "--msg-timeout=1s",
                           "--max-msg-timeout=1s", NULL};
    it_child_t *worker = s_worker(broker, "long", flags, http, sizeof http);
    it_pub(broker, "long", "touch:2500");
    IT_ASSERT_EVENTUALLY(s_finished(http) == 1, 10000, "the touched message was not finished");
    IT_ASSERT_INT(s_seen("touch:2500").count, ==, 1);
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "long", "c"), 5000, "not settled");
    IT_ASSERT_INT(it_channel_stat(broker, "long", "c", "timeout_count"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "long", "c", "requeue_count"), ==, 0);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_handler_timeouts_total"), ==, 0);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_process_restarts_total"), ==, 0);
    s_stop_all(&worker, &broker);
}

// 100 messages in flight at once across 4 processes: each process answers
// only once it holds 25, so all 100 finish only if every window is full.
static void s_window(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64], body[1024] = "";
    const char *flags[] = {s_handler(flag, sizeof flag, "batch"), "--processes=4",
                           "--process-window=25", NULL};
    it_child_t *worker = s_worker(broker, "wide", flags, http, sizeof http);
    for (int i = 0; i < 100; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body), "w%d\n", i);
    IT_ASSERT_INT(it_http(broker, "POST", "/mpub?topic=wide", body, strlen(body), NULL), ==, 200);
    IT_ASSERT_EVENTUALLY(s_finished(http) == 100, 15000, "not all 100 messages were finished");
    s_seen_t seen = s_seen(NULL);
    IT_ASSERT_INT(seen.count, ==, 100);
    for (int i = 0; i < 4; i++)
        IT_ASSERT_INT(seen.indexes[i], ==, 25);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_processes"), ==, 4);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_credit"), ==, 100);
    s_stop_all(&worker, &broker);
}

// Bodies of every byte value and of 1 MiB go to the process and come back
// as its output, byte for byte.
static void s_binary(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    const char *flags[] = {s_handler(flag, sizeof flag, "echo"), "--publish-topic=back", NULL};
    it_child_t *worker = s_worker(broker, "bytes", flags, http, sizeof http);
    it_sink_t *sink = it_sink_new(broker, "back", "c", 10, true);
    char every[256];
    for (int i = 0; i < 256; i++)
        every[i] = (char) (255 - i);  // starts with 0xff: not "fin", "req:", ...
    size_t big_size = 1 << 20;
    char *big = malloc(big_size);
    IT_ASSERT(big, "no memory");
    for (size_t i = 0; i < big_size; i++)
        big[i] = (char) ((i * 7919) >> 3);
    big[0] = '\n';
    IT_ASSERT_INT(it_http(broker, "POST", "/pub?topic=bytes", every, sizeof every, NULL), ==, 200);
    IT_ASSERT_INT(it_http(broker, "POST", "/pub?topic=bytes", big, big_size, NULL), ==, 200);
    IT_ASSERT(it_sink_wait(sink, 2, 15000), "the outputs did not arrive (%zu)",
              it_sink_count(sink));
    for (size_t i = 0; i < 2; i++) {
        it_delivery_t *got = it_sink_get(sink, i);
        bool small = got->size == sizeof every;
        IT_ASSERT(small || got->size == big_size, "output of %zu bytes", got->size);
        IT_ASSERT(memcmp(got->body, small ? every : big, got->size) == 0,
                  "output %zu differs from its input", i);
    }
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "bytes", "c"), 5000, "not settled");
    free(big);
    it_sink_destroy(&sink);
    s_stop_all(&worker, &broker);
}

// A process that exits in the middle of its messages: they are requeued,
// it is restarted, every message is finished once in the end.
static void s_exit_mid_message(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    const char *flags[] = {s_handler(flag, sizeof flag, "echo"), "--requeue-delay=100ms",
                           "--backoff=0", NULL};
    it_child_t *worker = it_worker_start(broker, "fragile", "c", flags);
    it_worker_wait_ready(worker, http, sizeof http);
    const char *bodies[] = {"fin-a", "fin-b", "crash", "fin-c", "fin-d"};
    char *batch = NULL;
    size_t batch_size = 0;
    FILE *out = open_memstream(&batch, &batch_size);
    for (size_t i = 0; i < 5; i++)
        fprintf(out, "%s\n", bodies[i]);
    fclose(out);
    IT_ASSERT_INT(it_http(broker, "POST", "/mpub?topic=fragile", batch, batch_size, NULL), ==,
                  200);  // before the worker subscribes: all five arrive at once
    free(batch);
    IT_ASSERT_EVENTUALLY(s_finished(http) == 5, 10000, "not every message was finished");
    for (size_t i = 0; i < 5; i++)
        IT_ASSERT(s_seen(bodies[i]).count >= 1, "%s was never handled", bodies[i]);
    IT_ASSERT_INT(s_seen("crash").count, ==, 2);
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "fragile", "c"), 5000, "not settled");
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_process_restarts_total"), ==, 1);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_processes"), ==, 1);
    IT_ASSERT_INT(it_count_lines(it_child_log_path(worker), "process 0 (pid "), >=, 1);
    IT_ASSERT_INT(it_count_lines(it_child_log_path(worker), ") exited with code 3, "), ==, 1);
    s_stop_all(&worker, &broker);
}

// A process that leaves a message unanswered past --max-msg-timeout (and
// ignores SIGTERM) is killed and restarted; the message is requeued and
// finished on its second attempt.
static void s_hang(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    const char *flags[] = {s_handler(flag, sizeof flag, "echo"), "--max-msg-timeout=1s",
                           "--requeue-delay=100ms", "--backoff=0", NULL};
    it_child_t *worker = s_worker(broker, "stuck", flags, http, sizeof http);
    it_pub(broker, "stuck", "hang");
    IT_ASSERT_EVENTUALLY(s_finished(http) == 1, 15000, "the message was not finished");
    IT_ASSERT_INT(s_seen("hang").count, ==, 2);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_handler_timeouts_total"), ==, 1);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_process_restarts_total"), ==, 1);
    const char *log = it_child_log_path(worker);
    IT_ASSERT_INT(it_count_lines(log, "): no answer or touch for message "), ==, 1);
    IT_ASSERT_INT(it_count_lines(log, "still runs 2000 ms after SIGTERM: SIGKILL"), ==, 1);
    s_stop_all(&worker, &broker);
}

// Garbage on stdout: one clear log line, the messages requeued, the
// process restarted.
static void s_garbage(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    const char *flags[] = {s_handler(flag, sizeof flag, "echo"), "--requeue-delay=100ms",
                           "--backoff=0", NULL};
    it_child_t *worker = s_worker(broker, "noisy", flags, http, sizeof http);
    it_pub(broker, "noisy", "garbage");
    IT_ASSERT_EVENTUALLY(s_finished(http) == 1, 10000, "the message was not finished");
    IT_ASSERT_INT(s_seen("garbage").count, ==, 2);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_process_restarts_total"), ==, 1);
    IT_ASSERT_INT(it_count_lines(it_child_log_path(worker),
                                 "): garbage on stdout: not a JSON object header line: \"this is "
                                 "not json\": stopping it, 1 message(s) requeued"),
                  ==, 1);
    s_stop_all(&worker, &broker);
}

// SIGTERM: the worker stops taking messages, what the processes hold is
// finished, they read EOF and exit 0, the worker exits 0; a second worker
// gets the rest. Every message is handled, none is left over.
static void s_sigterm_drain(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64], body[1024] = "";
    const char *flags[] = {s_handler(flag, sizeof flag, "slow"), "--processes=2",
                           "--process-window=4", NULL};
    it_child_t *worker = s_worker(broker, "drain", flags, http, sizeof http);
    for (int i = 0; i < 60; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body), "d%d\n", i);
    IT_ASSERT_INT(it_http(broker, "POST", "/mpub?topic=drain", body, strlen(body), NULL), ==, 200);
    IT_ASSERT_EVENTUALLY(s_seen(NULL).count >= 10, 10000, "the processes got nothing");
    const char *log = it_child_log_path(worker);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 15000), ==, 0);
    IT_ASSERT_INT(it_count_lines(log, ") exited with code 0"), ==, 2);
    IT_ASSERT_INT(it_count_lines(log, "SIGTERM"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "drain", "c", "in_flight_count"), ==, 0);
    int first = s_seen(NULL).count;
    IT_ASSERT(first < 60, "the first worker handled everything before SIGTERM");
    worker = s_worker(broker, "drain", flags, http, sizeof http);
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "drain", "c"), 15000, "not drained");
    for (int i = 0; i < 60; i++) {
        char name[16];
        snprintf(name, sizeof name, "d%d", i);
        IT_ASSERT(s_seen(name).count == 1, "%s was handled %d times", name, s_seen(name).count);
    }
    IT_ASSERT_INT(it_channel_stat(broker, "drain", "c", "timeout_count"), ==, 0);
    s_stop_all(&worker, &broker);
}

// The Python helper (examples/handlers/nsq_process.py) for real: output,
// an exception (logged, requeued), Requeue with a delay, no output, touch.
static void s_python_helper(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    snprintf(flag, sizeof flag, "--process=%s %s/tests/integration/helper_handler.py", s_python(),
             s_source());
    const char *flags[] = {flag,
                           "--publish-topic=loud",
                           "--backoff=0",
                           "--requeue-delay=100ms",
                           "--max-msg-timeout=1s",
                           NULL};
    it_child_t *worker = s_worker(broker, "quiet", flags, http, sizeof http);
    it_sink_t *sink = it_sink_new(broker, "loud", "c", 10, true);
    const char *bodies[] = {"hello", "boom", "later", "quiet", "long"};
    for (size_t i = 0; i < 5; i++)
        it_pub(broker, "quiet", bodies[i]);
    IT_ASSERT(it_sink_wait(sink, 4, 15000), "4 outputs did not arrive (%zu)", it_sink_count(sink));
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "quiet", "c"), 5000, "not settled");
    const char *expected[] = {"HELLO", "BOOM", "LATER", "LONG"};
    for (size_t i = 0; i < 4; i++)
        IT_ASSERT_INT(it_sink_count_body(sink, expected[i]), ==, 1);
    IT_ASSERT_INT(it_sink_count(sink), ==, 4);
    IT_ASSERT_INT(it_channel_stat(broker, "quiet", "c", "requeue_count"), ==, 2);
    IT_ASSERT_INT(it_count_lines(it_child_log_path(worker),
                                 "process 0: ValueError: boom on the first attempt"),
                  ==, 1);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_process_restarts_total"), ==, 0);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_outputs_published_total"), ==, 4);
    it_sink_destroy(&sink);
    s_stop_all(&worker, &broker);
}

// The plain-shell example (examples/handlers/upper.sh), no helper.
static void s_shell_example(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    snprintf(flag, sizeof flag, "--process=sh %s/examples/handlers/upper.sh", s_source());
    const char *flags[] = {flag, "--publish-topic=shouted", NULL};
    it_child_t *worker = s_worker(broker, "words", flags, http, sizeof http);
    it_sink_t *sink = it_sink_new(broker, "shouted", "c", 10, true);
    it_pub(broker, "words", "hello, shell\nsecond line");
    it_pub(broker, "words", "again");
    IT_ASSERT(it_sink_wait(sink, 2, 10000), "the outputs did not arrive");
    IT_ASSERT_INT(it_sink_count_body(sink, "HELLO, SHELL\nSECOND LINE"), ==, 1);
    IT_ASSERT_INT(it_sink_count_body(sink, "AGAIN"), ==, 1);
    it_sink_destroy(&sink);
    s_stop_all(&worker, &broker);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"fin_req", s_fin_req},
        {"touch", s_touch},
        {"window", s_window},
        {"binary", s_binary},
        {"exit_mid_message", s_exit_mid_message},
        {"hang", s_hang},
        {"garbage", s_garbage},
        {"sigterm_drain", s_sigterm_drain},
        {"python_helper", s_python_helper},
        {"shell_example", s_shell_example},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
