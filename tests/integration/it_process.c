/*  it_process - nsq-worker --process (handlers in any language) and --publish-topic (pipelines)
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
    Pipelines: a message passes two stages (--process, then --exec) and
    its result arrives once; --http's response body is an output too; an
    empty output publishes nothing; a refused publish requeues the input;
    a first stage killed with SIGKILL between its publish and its FIN
    (the broker stopped with SIGSTOP, so the publish is on its way and
    unanswered) duplicates the output, never loses it.
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
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_credit"), ==, 200);
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
                           "--process-window=4", "--max-in-flight=8", NULL};
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

// SIGTERM while a process sits on a message (and ignores SIGTERM): at the
// shutdown timeout the message is requeued, the process is SIGTERMed and
// then SIGKILLed, the worker exits 0; the next worker finishes it.
static void s_drain_timeout(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    const char *flags[] = {s_handler(flag, sizeof flag, "echo"), "--shutdown-timeout=500ms", NULL};
    it_child_t *worker = s_worker(broker, "held", flags, http, sizeof http);
    it_pub(broker, "held", "hang");
    IT_ASSERT_EVENTUALLY(s_seen("hang").count == 1, 10000, "the process never got it");
    const char *log = it_child_log_path(worker);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 15000), ==, 0);
    IT_ASSERT_INT(it_count_lines(log, "shutdown timeout: stopping 1 handler(s)"), ==, 1);
    IT_ASSERT_INT(it_count_lines(log, "still runs after SIGTERM: SIGKILL"), ==, 1);
    IT_ASSERT_INT(it_channel_stat(broker, "held", "c", "in_flight_count"), ==, 0);
    worker = s_worker(broker, "held", flags, http, sizeof http);
    IT_ASSERT_EVENTUALLY(s_finished(http) == 1, 10000, "the requeued message was not finished");
    IT_ASSERT_INT(s_seen("hang").max_attempts, ==, 2);
    s_stop_all(&worker, &broker);
}

// Flags that cannot work together are refused at start (exit 2, one line).
static void s_refuses(void)
{
    const char *const cases[][3] = {
        {"--process=cat", "--exec=cat", "exactly one handler is required"},
        {"--file=/dev/null", "--publish-topic=out", "--publish-topic needs a handler with output"},
        {"--process=cat", "--publish-topic=no good", "invalid --publish-topic no good"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {getenv("NSQ_WORKER"), "--broker-address=127.0.0.1:1",
                              "--topic=t",          "--channel=c",
                              "--http-address=",    cases[i][0],
                              cases[i][1],          NULL};
        it_child_t *worker = it_child_start("worker", argv);
        const char *log = it_child_log_path(worker);
        IT_ASSERT_INT(it_child_stop(&worker, 0, 5000), ==, 2);
        IT_ASSERT_INT(it_count_lines(log, cases[i][2]), ==, 1);
    }
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

// The Node.js helper (examples/handlers/upper.js), when node is installed.
static void s_node_helper(void)
{
    if (system("node --version > /dev/null 2>&1") != 0) {
        it_note("node is not installed: the Node.js helper is not tested");
        return;
    }
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64];
    snprintf(flag, sizeof flag, "--process=exec node %s/examples/handlers/upper.js", s_source());
    const char *flags[] = {flag, "--publish-topic=shouted", NULL};
    it_child_t *worker = s_worker(broker, "words", flags, http, sizeof http);
    it_sink_t *sink = it_sink_new(broker, "shouted", "c", 10, true);
    for (int i = 0; i < 10; i++)
        it_pub(broker, "words", "node");
    IT_ASSERT(it_sink_wait(sink, 10, 10000), "the outputs did not arrive");
    IT_ASSERT_INT(it_sink_count_body(sink, "NODE"), ==, 10);
    it_sink_destroy(&sink);
    s_stop_all(&worker, &broker);
}

// ---- pipelines ----------------------------------------------------------

// in -> stage 1 (--process: the body as output) -> mid -> stage 2 (--exec:
// "done-" and the body) -> final: each of 20 messages arrives once.
static void s_two_stages(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64], http2[64];
    const char *first[] = {s_handler(flag, sizeof flag, "echo"), "--publish-topic=mid", NULL};
    it_child_t *stage1 = s_worker(broker, "in", first, http, sizeof http);
    const char *second[] = {"--exec=printf 'done-%s' \"$(cat)\"", "--publish-topic=final", NULL};
    it_child_t *stage2 = s_worker(broker, "mid", second, http2, sizeof http2);
    it_sink_t *sink = it_sink_new(broker, "final", "c", 50, true);
    char body[32];
    for (int i = 0; i < 20; i++) {
        snprintf(body, sizeof body, "hop-%d", i);
        it_pub(broker, "in", body);
    }
    IT_ASSERT(it_sink_wait(sink, 20, 15000), "20 results did not arrive (%zu)",
              it_sink_count(sink));
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "in", "c")
                             && it_channel_settled(broker, "mid", "c"),
                         5000, "the stages did not settle");
    for (int i = 0; i < 20; i++) {
        snprintf(body, sizeof body, "done-hop-%d", i);
        IT_ASSERT_INT(it_sink_count_body(sink, body), ==, 1);
    }
    IT_ASSERT_INT(it_topic_stat(broker, "mid", "message_count"), ==, 20);
    IT_ASSERT_INT(it_topic_stat(broker, "final", "message_count"), ==, 20);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_outputs_published_total"), ==, 20);
    IT_ASSERT_INT(it_worker_metric(http2, "nsq_worker_outputs_published_total"), ==, 20);
    it_sink_destroy(&sink);
    IT_ASSERT_INT(it_child_stop(&stage2, SIGTERM, 15000), ==, 0);
    s_stop_all(&stage1, &broker);
}

// --http's response body is the output: the broker's own /pub answers OK.
static void s_http_output(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char url[256], http[64];
    snprintf(url, sizeof url, "--http=http://%s/pub?topic=copies", it_broker_http(broker));
    const char *flags[] = {url, "--publish-topic=answers", NULL};
    it_child_t *worker = s_worker(broker, "posts", flags, http, sizeof http);
    it_sink_t *answers = it_sink_new(broker, "answers", "c", 10, true);
    it_pub(broker, "posts", "posted");
    IT_ASSERT(it_sink_wait(answers, 1, 10000), "the response body was not published");
    IT_ASSERT_INT(it_sink_count_body(answers, "OK"), ==, 1);
    IT_ASSERT_INT(it_topic_stat(broker, "copies", "message_count"), ==, 1);
    it_sink_destroy(&answers);
    s_stop_all(&worker, &broker);
}

// No output, nothing published: a --process fin of size 0, an --exec
// that prints nothing. The inputs are finished all the same.
static void s_empty_output(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char flag[2048], http[64], http2[64];
    const char *flags[] = {s_handler(flag, sizeof flag, "echo"), "--publish-topic=nothing", NULL};
    it_child_t *worker = s_worker(broker, "silent", flags, http, sizeof http);
    const char *exec[] = {"--exec=cat > /dev/null", "--publish-topic=nothing", NULL};
    it_child_t *quiet = s_worker(broker, "mute", exec, http2, sizeof http2);
    it_pub(broker, "silent", "empty");
    it_pub(broker, "mute", "anything");
    IT_ASSERT_EVENTUALLY(s_finished(http) == 1 && s_finished(http2) == 1, 10000,
                         "the inputs were not finished");
    IT_ASSERT_INT(it_topic_stat(broker, "nothing", "message_count"), <=, 0);
    IT_ASSERT_INT(it_worker_metric(http, "nsq_worker_outputs_published_total"), ==, 0);
    IT_ASSERT_INT(it_worker_metric(http2, "nsq_worker_outputs_published_total"), ==, 0);
    IT_ASSERT_INT(it_child_stop(&quiet, SIGTERM, 15000), ==, 0);
    s_stop_all(&worker, &broker);
}

// A publish the broker refuses (the output is over its --max-msg-size)
// means REQ, never FIN: the input stays in the channel.
static void s_publish_refused(void)
{
    const char *broker_flags[] = {"--max-msg-size=64", NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    char http[64];
    const char *flags[] = {"--exec=cat; head -c 100 /dev/zero | tr '\\0' x",
                           "--publish-topic=big",
                           "--requeue-delay=100ms",
                           "--backoff=0",
                           "--max-attempts=0",
                           NULL};
    it_child_t *worker = s_worker(broker, "grow", flags, http, sizeof http);
    it_pub(broker, "grow", "small");
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, "grow", "c", "requeue_count") >= 2, 10000,
                         "the refused publish did not requeue the input");
    IT_ASSERT_INT(it_channel_stat(broker, "grow", "c", "message_count"), ==, 1);
    IT_ASSERT(!it_channel_settled(broker, "grow", "c"), "the input is gone");
    IT_ASSERT_INT(s_finished(http), ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, "big", "message_count"), <=, 0);
    IT_ASSERT_INT(it_count_lines(it_child_log_path(worker), " refused the output for topic big: "),
                  >=, 2);
    s_stop_all(&worker, &broker);
}

// The first stage dies (SIGKILL) after it sent the output and before it
// could FIN: the broker was stopped (SIGSTOP) so the publish is unanswered.
// Once the broker runs again the input is redelivered and handled again:
// the output may come twice, never zero times.
static void s_kill_between_publish_and_fin(void)
{
    const char *broker_flags[] = {"--durable", "--msg-timeout=1s", NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    char flag[2048], http[64], go[1100];
    const char *flags[] = {s_handler(flag, sizeof flag, "gated"), "--publish-topic=kept",
                           "--log-level=debug", NULL};
    it_child_t *stage1 = s_worker(broker, "precious", flags, http, sizeof http);
    it_sink_t *sink = it_sink_new(broker, "kept", "c", 10, true);
    it_pub(broker, "precious", "keep-me");
    IT_ASSERT_EVENTUALLY(s_seen("keep-me").count == 1, 10000, "the process never got it");
    IT_ASSERT_INT(kill(it_broker_pid(broker), SIGSTOP), ==, 0);
    snprintf(go, sizeof go, "%s.go", s_log());
    FILE *gate = fopen(go, "w");
    IT_ASSERT(gate, "cannot create %s", go);
    fclose(gate);
    IT_ASSERT_EVENTUALLY(
        it_count_lines(it_child_log_path(stage1), ": output of 7 bytes sent to topic kept on ")
            == 1,
        10000, "the output was not sent");
    IT_ASSERT_INT(it_child_stop(&stage1, SIGKILL, 5000), ==, 128 + SIGKILL);
    IT_ASSERT_INT(kill(it_broker_pid(broker), SIGCONT), ==, 0);
    stage1 = s_worker(broker, "precious", flags, http, sizeof http);
    IT_ASSERT_EVENTUALLY(it_channel_settled(broker, "precious", "c"), 15000,
                         "the input was not finished in the end");
    IT_ASSERT(it_sink_wait(sink, 1, 10000), "the output is lost");
    s_seen_t seen = s_seen("keep-me");
    IT_ASSERT_INT(seen.max_attempts, ==, 2);  // the first stage never FINed it
    IT_ASSERT_INT(it_topic_stat(broker, "kept", "message_count"), >=, 1);
    it_note("the output was published %lld time(s)",
            (long long) it_topic_stat(broker, "kept", "message_count"));
    it_sink_destroy(&sink);
    s_stop_all(&stage1, &broker);
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
        {"drain_timeout", s_drain_timeout},
        {"refuses", s_refuses},
        {"python_helper", s_python_helper},
        {"shell_example", s_shell_example},
        {"node_helper", s_node_helper},
        {"two_stages", s_two_stages},
        {"http_output", s_http_output},
        {"empty_output", s_empty_output},
        {"publish_refused", s_publish_refused},
        {"kill_between_publish_and_fin", s_kill_between_publish_and_fin},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
