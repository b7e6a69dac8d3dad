/*  it_security_replay - the operator's tools against brokers that require
    CURVE: nsq-ctl replay and tail, and the console's dead-letter replay
    and sample through a lookupd
    SPDX-License-Identifier: MIT

    Every broker here runs with --zmq-curve-secret-key-file and an allow
    directory holding the public certificates of its clients (nsq-ctl's,
    the lookupd's), and holds dead letters in orders.dead (bodies without a
    header: replay publishes them whole to orders). Checked:
      - nsq-ctl replay with --zmq-curve-key-file and
        --zmq-curve-server-key-file replays them; without the keys it
        exits 4 (the broker did not answer) within seconds with a reason
        that names CURVE, the dead letters untouched; tail behaves alike
        (a message with keys, exit 4 and the same hint without);
      - a lookupd with --zmq-curve-secret-key-file and
        --zmq-curve-broker-key-file samples and replays them through
        POST /api/deadletters/{sample,replay} (the broker registered over
        CURVE too), and nsq-ctl tail through it with keys gets them from
        the broker it lists;
      - bad keys stop lookupd (the broker-key flag without its own key
        pair) and nsq-ctl (one flag alone, a secret key wider than 0600)
        at start, with one line.
    nsq-ctl runs through sh in the case's directory (timeout 30 s), its
    output in tools.log there. Keys come from nsq-keygen.
*/
#include "harness.h"
#include "it_security_util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEAD 3  // dead letters per case

// Keys: broker (the brokers' pair), ctl (nsq-ctl's), lookupd; allow holds
// the broker's clients (ctl and lookupd), brokers the lookupd's (broker).
static void s_keys(void)
{
    sec_keygen("broker");
    sec_keygen("ctl");
    sec_keygen("lookupd");
    sec_run("mkdir -m 700 allow brokers && cp ctl lookupd allow/ && cp broker brokers/");
}

// A broker requiring CURVE, plus extra flags (NULL-terminated, may be
// NULL), with S_DEAD dead letters in orders.dead.
static it_broker_t *s_broker(const char *const *extra)
{
    static char secret[600], allow[600];
    snprintf(secret, sizeof secret, "--zmq-curve-secret-key-file=%s", sec_path("broker_secret"));
    snprintf(allow, sizeof allow, "--zmq-curve-allow-dir=%s", sec_path("allow"));
    const char *flags[16] = {secret, allow, "--broadcast-address=127.0.0.1"};
    for (size_t i = 0; extra && extra[i] && i < 12; i++)
        flags[3 + i] = extra[i];
    it_broker_t *broker = it_broker_start(flags);
    for (int n = 0; n < S_DEAD; n++) {
        char body[32];
        snprintf(body, sizeof body, "curve-%d", n);
        it_pub(broker, "orders.dead", body);
    }
    return broker;
}

// Runs nsq-ctl with args (shell words) in the case's directory; fails the
// case unless it exits code within 30 s and file (ctl.out or ctl.err)
// holds text.
static void s_ctl(const char *args, int code, const char *file, const char *text)
{
    char command[2048];
    snprintf(command, sizeof command,
             "timeout 30 '%s' %s > ctl.out 2> ctl.err; rc=$?; cat ctl.out ctl.err;"
             " test $rc = %d && grep -q '%s' %s",
             getenv("NSQ_CTL"), args, code, text, file);
    sec_run(command);
}

#define S_CTL_KEYS "--zmq-curve-key-file=ctl_secret --zmq-curve-server-key-file=broker"

// The dead letters are all in orders.dead (in the topic, or in replay's
// channel once one ran).
static void s_dead_untouched(it_broker_t *broker)
{
    int64_t depth = it_topic_stat(broker, "orders.dead", "depth");
    int64_t channel = it_channel_stat(broker, "orders.dead", "replay", "depth");
    IT_ASSERT(depth + (channel > 0 ? channel : 0) == S_DEAD, "orders.dead holds %lld + %lld",
              (long long) depth, (long long) channel);
}

static void s_replayed(it_broker_t *broker)
{
    IT_ASSERT_INT(it_topic_stat(broker, "orders", "message_count"), ==, S_DEAD);
    IT_ASSERT_INT(it_topic_stat(broker, "orders.dead", "depth"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "orders.dead", "replay", "depth"), ==, 0);
    IT_ASSERT_INT(it_channel_stat(broker, "orders.dead", "replay", "in_flight_count"), ==, 0);
}

// nsq-ctl replay against one broker: without keys exit 4 and a reason
// within seconds, with them the dead letters go back to orders.
static void ctl_replay(void)
{
    s_keys();
    it_broker_t *broker = s_broker(NULL);
    char target[300], command[1024];
    snprintf(target, sizeof target, "--broker-http-address=%s --broker-address=%s",
             it_broker_http(broker), it_broker_zmq(broker));
    int64_t started = it_now_ms();
    snprintf(command, sizeof command, "%s replay orders.dead", target);
    s_ctl(command, 4, "ctl.err", "no answer from the broker within 5 s.*requires CURVE");
    it_note("refused without keys in %lld ms", (long long) (it_now_ms() - started));
    IT_ASSERT(it_now_ms() - started < 15000, "nsq-ctl took %lld ms to give up",
              (long long) (it_now_ms() - started));
    s_dead_untouched(broker);
    snprintf(command, sizeof command, "%s " S_CTL_KEYS " replay orders.dead", target);
    s_ctl(command, 0, "ctl.out", "3 replayed (3 without a header)");
    s_replayed(broker);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// nsq-ctl tail on one broker: exit 4 naming CURVE without keys; with them
// it prints a message published afterwards.
static void ctl_tail(void)
{
    s_keys();
    it_broker_t *broker = s_broker(NULL);
    char command[1024];
    snprintf(command, sizeof command, "--broker-address=%s --timeout=1s tail orders",
             it_broker_zmq(broker));
    s_ctl(command, 4, "ctl.err", "requires CURVE: --zmq-curve-key-file");
    char zmq_flag[300], key[600], server_key[600], line[256];
    snprintf(zmq_flag, sizeof zmq_flag, "--broker-address=%s", it_broker_zmq(broker));
    snprintf(key, sizeof key, "--zmq-curve-key-file=%s", sec_path("ctl_secret"));
    snprintf(server_key, sizeof server_key, "--zmq-curve-server-key-file=%s", sec_path("broker"));
    const char *argv[] = {getenv("NSQ_CTL"), zmq_flag,    key, server_key, "tail",
                          "orders",          "--count=1", NULL};
    it_child_t *tail = it_child_start("nsq-ctl-tail", argv);
    IT_ASSERT(
        it_child_wait_log(tail, "nsq-ctl: tailing orders on 1 broker(s)", line, sizeof line, 10000),
        "tail did not subscribe");
    it_pub(broker, "orders", SEC_BODY);
    IT_ASSERT(it_child_read_line(tail, line, sizeof line, 5000) == 1, "tail printed nothing");
    IT_ASSERT_STR(line, SEC_BODY);
    IT_ASSERT_INT(it_child_stop(&tail, 0, 5000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Whether the console's job at path (/api/jobs?id=N) is done; ok and its
// first target's message are filled from the last answer.
static bool s_job_done(it_broker_t *lookupd, const char *path, int64_t *ok, char *message,
                       size_t size)
{
    char *reply = NULL, state[16] = "";
    if (it_http(lookupd, "GET", path, NULL, 0, &reply) == 200) {
        it_json_string(it_json_get(reply, "state"), state, sizeof state);
        it_json_int(it_json_get(reply, "ok"), ok);
        const char *targets = it_json_get(reply, "targets");
        it_json_string(it_json_get(targets ? targets + 1 : NULL, "message"), message, size);
    }
    free(reply);
    return strcmp(state, "done") == 0;
}

// POSTs the console action path (job number id), waits for the job to end
// and fails the case unless it ended ok with text in its message.
static void s_job(it_broker_t *lookupd, const char *path, int id, const char *text)
{
    IT_ASSERT_INT(it_http_status(lookupd, "POST", path, NULL), ==, 202);
    char job_path[64], message[256] = "";
    int64_t ok = 0;
    snprintf(job_path, sizeof job_path, "/api/jobs?id=%d", id);
    IT_ASSERT_EVENTUALLY(s_job_done(lookupd, job_path, &ok, message, sizeof message), 20000,
                         "job %d did not end", id);
    IT_ASSERT(ok == 1 && strstr(message, text), "job %d: ok %lld, %s", id, (long long) ok, message);
}

// The depth of orders.dead in lookupd's console API; -1 if absent.
static int64_t s_api_dead_depth(it_broker_t *lookupd)
{
    char *reply = NULL;
    int64_t depth = -1;
    if (it_http(lookupd, "GET", "/api/topics?topic=orders.dead", NULL, 0, &reply) == 200) {
        const char *topics = it_json_get(reply, "topics");
        it_json_int(it_json_get(topics ? topics + 1 : NULL, "depth"), &depth);
    }
    free(reply);
    return depth;
}

// A lookupd with CURVE on both sides: brokers register with it, and its
// console samples and replays on them; tail finds the broker through it.
static void console_replay(void)
{
    s_keys();
    char secret[600], allow[600], broker_key[600];
    snprintf(secret, sizeof secret, "--zmq-curve-secret-key-file=%s", sec_path("lookupd_secret"));
    snprintf(allow, sizeof allow, "--zmq-curve-allow-dir=%s", sec_path("brokers"));
    snprintf(broker_key, sizeof broker_key, "--zmq-curve-broker-key-file=%s", sec_path("broker"));
    it_broker_t *lookupd = it_lookupd_start(
        (const char *[]){secret, allow, broker_key, "--stats-interval=100ms", NULL});
    char to_lookupd[300], lookupd_key[600];
    snprintf(to_lookupd, sizeof to_lookupd, "--lookupd-address=%s", it_broker_zmq(lookupd));
    snprintf(lookupd_key, sizeof lookupd_key, "--zmq-curve-lookupd-key-file=%s",
             sec_path("lookupd"));
    it_broker_t *broker = s_broker(
        (const char *[]){to_lookupd, lookupd_key, "--lookupd-heartbeat-interval=200ms", NULL});
    IT_ASSERT_EVENTUALLY(s_api_dead_depth(lookupd) == S_DEAD, 10000,
                         "lookupd's console counts %d dead letters", S_DEAD);
    s_job(lookupd, "/api/deadletters/sample?topic=orders.dead", 1, "3 sampled");
    s_dead_untouched(broker);
    s_job(lookupd, "/api/deadletters/replay?topic=orders.dead", 2, "3 replayed");
    s_replayed(broker);

    // tail through lookupd, on the broker it lists, with our keys: orders
    // had no channel, so the first one (tail's) gets what was replayed.
    char command[1024];
    snprintf(command, sizeof command,
             "--lookupd-http-address=%s " S_CTL_KEYS " tail orders --count=1",
             it_broker_http(lookupd));
    s_ctl(command, 0, "ctl.out", "^curve-");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// Keys are checked at start, with one line: lookupd's
// --zmq-curve-broker-key-file without its own key pair exits 1 (as a
// broker's --zmq-curve-lookupd-key-file alone); nsq-ctl's client flags
// one without the other, or a secret key wider than 0600, exit 2.
static void keys_at_start(void)
{
    sec_keygen("broker");
    sec_keygen("ctl");
    char command[1024];
    snprintf(
        command, sizeof command,
        "'%s' --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0"
        " --zmq-curve-broker-key-file=broker 2> lookupd.err; test $? = 1"
        " && test $(wc -l < lookupd.err) = 1"
        " && grep -q 'zmq-curve-broker-key-file needs --zmq-curve-secret-key-file' lookupd.err",
        getenv("NSQ_LOOKUPD"));
    sec_run(command);
    s_ctl("--broker-address=127.0.0.1:1 --zmq-curve-key-file=ctl_secret replay orders.dead", 2,
          "ctl.err", "go together");
    sec_run("chmod 644 ctl_secret");
    s_ctl("--broker-address=127.0.0.1:1 " S_CTL_KEYS " tail orders", 2, "ctl.err",
          "ctl_secret: mode 0644 is wider than 0600");
}

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const it_case_t cases[] = {
        {"ctl_replay", ctl_replay},
        {"ctl_tail", ctl_tail},
        {"console_replay", console_replay},
        {"keys_at_start", keys_at_start},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof *cases);
}
