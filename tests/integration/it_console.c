/*  it_console - lookupd's console API against real brokers: its history's
    memory bound with 1,000 topics, who asked for an action, API errors,
    no action from another site's page
    SPDX-License-Identifier: MIT

    The history case prints the figures the documentation quotes (series,
    bytes counted, lookupd's resident memory before and after) as notes.
*/
#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TOPICS 1000

// GET path on lookupd as JSON; NULL unless 200. Caller frees.
static json_t *s_get(it_broker_t *lookupd, const char *path)
{
    char *reply = NULL;
    json_t *doc =
        it_http(lookupd, "GET", path, NULL, 0, &reply) == 200 ? json_loads(reply, 0, NULL) : NULL;
    free(reply);
    return doc;
}

// A number of /info's console.history; -1 if absent.
static int64_t s_history(it_broker_t *lookupd, const char *key)
{
    json_t *info = s_get(lookupd, "/info");
    json_t *value =
        json_object_get(json_object_get(json_object_get(info, "console"), "history"), key);
    int64_t number = json_is_integer(value) ? (int64_t) json_integer_value(value) : -1;
    json_decref(info);
    return number;
}

// Resident memory of a process in KiB (VmRSS), -1 if unknown.
static long s_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long) pid);
    FILE *status = fopen(path, "r");
    long kib = -1;
    while (status && fgets(line, sizeof line, status))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (status)
        fclose(status);
    return kib;
}

static it_broker_t *s_broker(it_broker_t *lookupd)
{
    char flag[96];
    snprintf(flag, sizeof flag, "--lookupd-address=%s", it_broker_zmq(lookupd));
    return it_broker_start((const char *[]){"--broadcast-address=127.0.0.1", flag,
                                            "--lookupd-heartbeat-interval=500ms", NULL});
}

// 1,000 topics with a channel each on two brokers: 4,000 series (a topic
// and a channel series per broker) within the default 64 MiB; then a
// lookupd bounded to 1 MiB stays within it and counts what it refused.
// The topics are ephemeral only so that the brokers do not rewrite and
// fsync their state file 2,000 times (about 30 ms each here); lookupd's
// history treats them like any other.
static void s_case_history_bound(void)
{
    it_broker_t *lookupd = it_lookupd_start((const char *[]){"--stats-interval=200ms", NULL});
    it_broker_t *brokers[2] = {s_broker(lookupd), s_broker(lookupd)};
    long rss_before = s_rss_kib(it_broker_pid(lookupd));
    int64_t started = it_now_ms();
    for (int i = 0; i < 2; i++)
        for (int n = 0; n < S_TOPICS; n++) {
            char path[96];
            snprintf(path, sizeof path,
                     "/channel/create?topic=topic-%04d%%23ephemeral&channel=work", n);
            it_post_ok(brokers[i], path);
        }
    it_note("created in %lld ms", (long long) (it_now_ms() - started));
    IT_ASSERT_EVENTUALLY(s_history(lookupd, "series") == 4 * S_TOPICS, 30000,
                         "4,000 series (have %lld)", (long long) s_history(lookupd, "series"));
    int64_t bytes = s_history(lookupd, "bytes"), bound = s_history(lookupd, "max_bytes");
    IT_ASSERT(bytes > 0 && bytes <= bound, "history holds %lld bytes, bound %lld",
              (long long) bytes, (long long) bound);
    IT_ASSERT_INT(s_history(lookupd, "refused"), ==, 0);
    long rss_after = s_rss_kib(it_broker_pid(lookupd));
    it_note("history with %d topics x 1 channel x 2 brokers: %lld series, %lld bytes counted "
            "(bound %lld); %lld bytes per channel series; lookupd RSS %ld KiB -> %ld KiB",
            S_TOPICS, (long long) s_history(lookupd, "series"), (long long) bytes,
            (long long) bound, (long long) s_history(lookupd, "channel_series_bytes"), rss_before,
            rss_after);

    it_broker_t *small = it_lookupd_start(
        (const char *[]){"--stats-interval=200ms", "--history-max-bytes=1m", NULL});
    // A third broker with the same 1,000 topics, registered with it.
    it_broker_t *third = s_broker(small);
    for (int n = 0; n < S_TOPICS; n++) {
        char path[96];
        snprintf(path, sizeof path, "/channel/create?topic=topic-%04d%%23ephemeral&channel=work",
                 n);
        it_post_ok(third, path);
    }
    IT_ASSERT_EVENTUALLY(s_history(small, "refused") > 0, 30000, "the 1 MiB bound refused series");
    int64_t small_bytes = s_history(small, "bytes");
    IT_ASSERT(small_bytes > 0 && small_bytes <= 1024 * 1024, "bounded history holds %lld bytes",
              (long long) small_bytes);
    it_note("bounded to 1 MiB: %lld series, %lld bytes, %lld refused",
            (long long) s_history(small, "series"), (long long) small_bytes,
            (long long) s_history(small, "refused"));
}

// An action answers 202 with its job, which names who asked; lookupd's log
// says who and what; the job ends with one row per broker.
static void s_case_action_log(void)
{
    it_broker_t *lookupd = it_lookupd_start((const char *[]){"--stats-interval=100ms", NULL});
    it_broker_t *broker = s_broker(lookupd);
    it_post_ok(broker, "/channel/create?topic=orders&channel=billing");
    json_t *doc = NULL;
    IT_ASSERT_EVENTUALLY((json_decref(doc), doc = s_get(lookupd, "/api/topics?topic=orders"),
                          json_array_size(json_object_get(doc, "topics")) == 1),
                         5000, "lookupd polled orders");
    json_decref(doc);
    char reply[4096];
    int status = it_http_raw(it_broker_http(lookupd),
                             "POST /api/channel/pause?topic=orders&channel=billing HTTP/1.1\r\n"
                             "Host: lookupd\r\nUser-Agent: it-console-test\r\n"
                             "Content-Length: 0\r\nConnection: close\r\n\r\n",
                             reply, sizeof reply);
    IT_ASSERT(status == 202 && strstr(reply, "\"action\":\"pause\"")
                  && strstr(reply, "\"remote\":\"127.0.0.1:")
                  && strstr(reply, "\"user_agent\":\"it-console-test\""),
              "answer %d %s", status, reply);
    json_t *job = NULL;
    IT_ASSERT_EVENTUALLY((json_decref(job), job = s_get(lookupd, "/api/jobs?id=1"),
                          json_is_true(json_object_get(job, "ok"))),
                         5000, "job 1 done ok");
    IT_ASSERT_INT(json_array_size(json_object_get(job, "targets")), ==, 1);
    json_decref(job);
    IT_ASSERT_INT(it_channel_stat(broker, "orders", "billing", "paused"), ==, 1);
    // Who and what, in lookupd's log.
    char line[512];
    IT_ASSERT(it_broker_wait_log(
                  lookupd, "console action 1: pause topic=orders channel=billing by 127.0.0.1:",
                  line, sizeof line, 2000),
              "lookupd did not log the action with who asked");
    IT_ASSERT(strstr(line, "(it-console-test)"), "the user agent is not logged: %s", line);
    // API errors are NSQ's: status and {"message":CODE}.
    it_http_expect(lookupd, "POST", "/api/topic/pause", NULL, 0, 400, "MISSING_ARG_TOPIC");
    it_http_expect(lookupd, "POST", "/api/topic/pause?topic=a%00b", NULL, 0, 400,
                   "INVALID_ARG_TOPIC");
    it_http_expect(lookupd, "GET", "/api/topic/pause?topic=orders", NULL, 0, 405,
                   "METHOD_NOT_ALLOWED");
    it_http_expect(lookupd, "POST", "/api/topic/pause?topic=nope", NULL, 0, 404, "TOPIC_NOT_FOUND");
    it_http_expect(lookupd, "POST", "/api/deadletters/replay?topic=orders", NULL, 0, 400,
                   "NOT_A_DEAD_LETTER_TOPIC");
    it_http_expect(lookupd, "GET", "/api/jobs?id=999", NULL, 0, 404, "JOB_NOT_FOUND");
    it_http_expect(lookupd, "GET", "/api/nothing", NULL, 0, 404, "NOT_FOUND");
    it_http_expect(lookupd, "GET", "/console/nothing.js", NULL, 0, 404, "NOT_FOUND");
    // A page of another site cannot make an operator's browser act.
    char request[512];
    snprintf(request, sizeof request,
             "POST /api/topic/delete?topic=orders HTTP/1.1\r\nHost: %s\r\n"
             "Origin: http://evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
             it_broker_http(lookupd));
    IT_ASSERT_INT(it_http_raw(it_broker_http(lookupd), request, reply, sizeof reply), ==, 403);
    IT_ASSERT(strstr(reply, "CROSS_SITE_REQUEST"), "answer: %s", reply);
    IT_ASSERT(it_topic_stat(broker, "orders", "depth") == 0, "the cross-site delete went through");
    // The console itself (same origin) may.
    snprintf(request, sizeof request,
             "POST /api/channel/unpause?topic=orders&channel=billing HTTP/1.1\r\nHost: %s\r\n"
             "Origin: http://%s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
             it_broker_http(lookupd), it_broker_http(lookupd));
    IT_ASSERT_INT(it_http_raw(it_broker_http(lookupd), request, reply, sizeof reply), ==, 202);
}

int main(int argc, char **argv)
{
    static const it_case_t cases[] = {
        {"history_bound", s_case_history_bound},
        {"action_log", s_case_action_log},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof *cases);
}
